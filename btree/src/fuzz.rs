//! The fuzz harness's check (fuzz/fuzz_targets/btree_ops.rs): an operation
//! sequence decoded from arbitrary bytes, run against a `BTreeMap` model
//! on a tree in a small pool (so nodes are evicted and reloaded), with
//! reopens. Panics on any disagreement. Not part of the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagepool::{BufferPool, FileId, MemoryStorage, PoolConfig};

use crate::{BTree, MAX_ENTRY, MAX_KEY};

/// Reads bytes off the input, zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn key(input: &mut Input<'_>) -> Vec<u8> {
    let n = input.byte() % 64;
    let extra = match input.byte() % 8 {
        7 => MAX_KEY - 4,
        len => usize::from(len) * 5,
    };
    let mut key = vec![b'k', n / 10, n % 10];
    key.resize((3 + extra).min(MAX_KEY), n);
    key
}

fn value(input: &mut Input<'_>, key_len: usize) -> Vec<u8> {
    let len = match input.byte() {
        255 => MAX_ENTRY - key_len,
        len => usize::from(len),
    };
    let fill = input.byte();
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn open(storage: &Arc<MemoryStorage>) -> (BufferPool, FileId) {
    let pool = BufferPool::open(PoolConfig::new(16)).expect("a pool of 16 frames");
    let file = pool
        .open_storage(Box::new(storage.clone()))
        .expect("in-memory storage");
    if pool.page_count(file).expect("the file") == 0 {
        pool.format_file(file).expect("an empty file formats");
    }
    (pool, file)
}

/// Runs the operations `data` encodes; panics if the tree and the model
/// ever disagree.
pub fn fuzz_check(data: &[u8]) {
    let storage = Arc::new(MemoryStorage::new());
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut input = Input(data);
    while !input.is_empty() {
        let (pool, file) = open(&storage);
        let tree = BTree::open_or_create(&pool, file, 0).expect("the tree");
        let mut out = Vec::new();
        loop {
            if input.is_empty() {
                break;
            }
            match input.byte() % 8 {
                0..=2 => {
                    let k = key(&mut input);
                    let v = value(&mut input, k.len());
                    tree.insert(&k, &v).expect("insert");
                    model.insert(k, v);
                }
                3 => {
                    let k = key(&mut input);
                    assert_eq!(tree.remove(&k).expect("remove"), model.remove(&k).is_some());
                }
                4 | 5 => {
                    let k = key(&mut input);
                    let found = tree.get(&k, &mut out).expect("get");
                    assert_eq!(found.then_some(&out), model.get(&k));
                }
                6 => {
                    let start = key(&mut input);
                    let limit = usize::from(input.byte() % 32);
                    let got: Vec<_> = tree
                        .range(&start)
                        .take(limit)
                        .collect::<Result<_, _>>()
                        .expect("range");
                    let want: Vec<_> = model
                        .range(start..)
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    assert!(got == want, "a range differs from the model");
                }
                _ => break, // close and reopen
            }
        }
        let all: Vec<_> = tree.range(b"").collect::<Result<_, _>>().expect("scan");
        assert_eq!(all.len(), model.len());
        pool.close().expect("close");
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    /// The harness on pseudo-random inputs, so it runs without cargo-fuzz.
    #[test]
    fn random_inputs_agree_with_the_model() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..40 {
            let data: Vec<u8> = (0..1_500)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            super::fuzz_check(&data);
        }
    }
}
