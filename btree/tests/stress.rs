//! Many threads on one tree in a tiny pool: inserts, removes, splits,
//! frees, scans and evictions race. Checks that scans see keys in order
//! and values that belong to their keys, and that no acknowledged insert
//! or remove is lost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use pagepool::{BufferPool, MemoryStorage, PoolConfig};
use pagepool_btree::BTree;

const WRITERS: u64 = 4;
const READERS: usize = 2;
const OPS: u64 = 20_000;
const KEYS_PER_WRITER: u64 = 1_500;

/// Keys of different writers interleave, so they share leaves.
fn key(n: u64, writer: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&n.to_be_bytes());
    key[8] = writer as u8;
    key
}

/// A value that names its key and a version, 40 to 200 bytes long.
fn value(key: &[u8], version: u64) -> Vec<u8> {
    let mut value = key.to_vec();
    value.extend_from_slice(&version.to_le_bytes());
    let len = 40 + (version as usize * 37 + key[7] as usize) % 160;
    value.resize(len, key[7] ^ 0x5A);
    value
}

fn belongs(key: &[u8], value: &[u8]) -> bool {
    value.len() >= 17 && &value[..9] == key && {
        let version = u64::from_le_bytes(value[9..17].try_into().unwrap());
        value == &self::value(key, version)[..]
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn writers_readers_and_evictions_race_without_losing_anything() {
    let pool = BufferPool::open(
        PoolConfig::new(48).latch_wait_timeout(std::time::Duration::from_millis(20_000)),
    )
    .unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    pool.format_file(file).unwrap();
    let tree = BTree::create(&pool, file).unwrap();
    let done = AtomicBool::new(false);
    let models: Vec<BTreeMap<[u8; 9], Vec<u8>>> = std::thread::scope(|s| {
        for reader in 0..READERS {
            let (tree, done) = (&tree, &done);
            s.spawn(move || {
                let session = tree.session();
                let mut rng = Rng(0x51 + reader as u64);
                let mut scans = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let start = key(rng.below(KEYS_PER_WRITER), 0);
                    let mut last: Option<Vec<u8>> = None;
                    session
                        .scan(&start, |k, v| {
                            assert!(k >= &start[..], "a key below the start");
                            if let Some(last) = &last {
                                assert!(k > &last[..], "keys out of order");
                            }
                            assert!(belongs(k, v), "a value that is not its key's");
                            last = Some(k.to_vec());
                            true
                        })
                        .unwrap();
                    let probe = key(rng.below(KEYS_PER_WRITER), rng.below(WRITERS));
                    if let Some(ok) = session.get_with(&probe, |v| belongs(&probe, v)).unwrap() {
                        assert!(ok, "a lookup found another key's value");
                    }
                    scans += 1;
                }
                assert!(scans > 0);
            });
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let tree = &tree;
                s.spawn(move || {
                    let session = tree.session();
                    let mut rng = Rng(0x9E37_79B9 + writer);
                    let mut model = BTreeMap::new();
                    for version in 0..OPS {
                        let k = key(rng.below(KEYS_PER_WRITER), writer);
                        if rng.below(4) == 0 {
                            let removed = session.remove(&k).unwrap();
                            assert_eq!(removed, model.remove(&k).is_some());
                        } else {
                            let v = value(&k, version);
                            session.insert(&k, &v).unwrap();
                            model.insert(k, v);
                        }
                    }
                    model
                })
            })
            .collect();
        let models = writers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        models
    });
    let mut expected = BTreeMap::new();
    for model in models {
        expected.extend(model);
    }
    let found: Vec<_> = tree.range(b"").collect::<Result<_, _>>().unwrap();
    assert_eq!(found.len(), expected.len(), "entries lost or resurrected");
    for ((k, v), (ek, ev)) in found.iter().zip(&expected) {
        assert_eq!(&k[..], &ek[..]);
        assert_eq!(v, ev, "a stale value for {k:?}");
    }
    let stats = pool.stats();
    assert!(
        stats.evictions > 0,
        "the pool was not small enough to evict"
    );
    assert!(stats.restarts > 0, "nothing raced");
}
