//! The tree against a `BTreeMap` model: random operation sequences, with
//! pools small enough that nodes are evicted and reloaded, and reopens.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagepool::{BufferPool, FileId, MemoryStorage, PoolConfig};
use pagepool_btree::{BTree, BTreeError, MAX_ENTRY, MAX_KEY};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(rng: &mut Rng, space: u64) -> Vec<u8> {
    let n = rng.below(space);
    // Keys of varied length sharing prefixes, so that comparisons cross
    // word boundaries.
    let mut key = format!("key-{:06}", n).into_bytes();
    key.extend(std::iter::repeat_n(b'x', (n % 23) as usize));
    key
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => rng.below(600) as usize,
        _ => rng.below(40) as usize,
    };
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ rng.next() as u8)
        .collect()
}

fn open(storage: &Arc<MemoryStorage>, frames: usize) -> (BufferPool, FileId) {
    let pool = BufferPool::open(PoolConfig::new(frames)).unwrap();
    let file = pool.open_storage(Box::new(storage.clone())).unwrap();
    if pool.page_count(file).unwrap() == 0 {
        pool.format_file(file).unwrap();
    }
    (pool, file)
}

fn check_equal(tree: &BTree<'_>, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let scanned: Vec<_> = tree.range(b"").collect::<Result<_, _>>().unwrap();
    let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(scanned.len(), expected.len());
    assert!(scanned == expected, "a full scan differs from the model");
    let mut out = Vec::new();
    for (k, v) in model {
        assert!(tree.get(k, &mut out).unwrap());
        assert_eq!(&out, v);
    }
}

fn run(seed: u64, ops: usize, space: u64, frames: usize) {
    let storage = Arc::new(MemoryStorage::new());
    let mut model = BTreeMap::new();
    let mut rng = Rng(seed);
    for round in 0..3 {
        let (pool, file) = open(&storage, frames);
        let tree = BTree::open_or_create(&pool, file, 0).unwrap();
        let session = tree.session();
        let mut out = Vec::new();
        for step in 0..ops {
            match rng.below(10) {
                0..=4 => {
                    let (k, v) = (key(&mut rng, space), value(&mut rng));
                    session.insert(&k, &v).unwrap();
                    model.insert(k, v);
                }
                5..=6 => {
                    let k = key(&mut rng, space);
                    assert_eq!(
                        session.remove(&k).unwrap(),
                        model.remove(&k).is_some(),
                        "remove {k:?}"
                    );
                }
                7..=8 => {
                    let k = key(&mut rng, space);
                    let found = session.get(&k, &mut out).unwrap();
                    assert_eq!(
                        found.then(|| out.clone()),
                        model.get(&k).cloned(),
                        "get {k:?} at {step}"
                    );
                }
                _ => {
                    let start = key(&mut rng, space);
                    let mut seen = Vec::new();
                    session
                        .scan(&start, |k, v| {
                            seen.push((k.to_vec(), v.to_vec()));
                            seen.len() < 20
                        })
                        .unwrap();
                    let expected: Vec<_> = model
                        .range(start.clone()..)
                        .take(20)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    assert!(seen == expected, "scan from {start:?} at {step}");
                }
            }
        }
        drop(session);
        check_equal(&tree, &model);
        if round == 1 {
            // Remove almost everything: leaves empty out and are freed.
            let keys: Vec<_> = model.keys().cloned().collect();
            for k in keys.iter().skip(3) {
                assert!(tree.remove(k).unwrap());
                model.remove(k);
            }
            check_equal(&tree, &model);
            assert!(pool.stats().pages_freed > 0, "empty leaves were freed");
        }
        pool.close().unwrap();
    }
}

#[test]
fn random_operations_match_the_model_in_memory() {
    run(0x1234_5678, 6_000, 2_000, 4_096);
}

#[test]
fn random_operations_match_the_model_with_evictions() {
    run(0xDEAD_BEEF, 4_000, 3_000, 24);
}

#[test]
fn freed_leaves_are_reused_by_later_splits() {
    let storage = Arc::new(MemoryStorage::new());
    let (pool, file) = open(&storage, 256);
    let tree = BTree::create(&pool, file).unwrap();
    let value = [7u8; 200];
    for n in 0..2_000u32 {
        tree.insert(&n.to_be_bytes(), &value).unwrap();
    }
    let grown = pool.page_count(file).unwrap();
    for n in 0..2_000u32 {
        assert!(tree.remove(&n.to_be_bytes()).unwrap());
    }
    let freed = pool.free_page_count(file).unwrap();
    assert!(freed > 50, "{freed} pages freed");
    for n in 0..2_000u32 {
        tree.insert(&n.to_be_bytes(), &value).unwrap();
    }
    assert!(
        pool.page_count(file).unwrap() <= grown + 8,
        "the second fill reused the freed leaves"
    );
    assert!(pool.stats().pages_reused > 50);
}

#[test]
fn several_trees_share_a_file_and_a_pool_and_reopen() {
    let storage = Arc::new(MemoryStorage::new());
    let other = Arc::new(MemoryStorage::new());
    {
        let (pool, file) = open(&storage, 64);
        let second_file = pool.open_storage(Box::new(other.clone())).unwrap();
        pool.format_file(second_file).unwrap();
        let trees = [
            BTree::open_or_create(&pool, file, 0).unwrap(),
            BTree::open_or_create(&pool, file, 1).unwrap(),
            BTree::open_or_create(&pool, second_file, 0).unwrap(),
        ];
        for n in 0..3_000u32 {
            for (i, tree) in trees.iter().enumerate() {
                tree.insert(&n.to_be_bytes(), &[i as u8; 16]).unwrap();
            }
        }
        pool.close().unwrap();
    }
    let (pool, file) = open(&storage, 64);
    let second_file = pool.open_storage(Box::new(other.clone())).unwrap();
    let trees = [
        BTree::open_or_create(&pool, file, 0).unwrap(),
        BTree::open_or_create(&pool, file, 1).unwrap(),
        BTree::open_or_create(&pool, second_file, 0).unwrap(),
    ];
    let mut out = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        let count = tree.range(b"").count();
        assert_eq!(count, 3_000);
        assert!(tree.get(&1_234u32.to_be_bytes(), &mut out).unwrap());
        assert_eq!(out, [i as u8; 16]);
    }
    assert!(matches!(
        BTree::open(&pool, pagepool::PageId::new(file, 0)),
        Err(BTreeError::NotATree { .. })
    ));
}

#[test]
fn oversized_keys_and_entries_are_errors() {
    let storage = Arc::new(MemoryStorage::new());
    let (pool, file) = open(&storage, 64);
    let tree = BTree::create(&pool, file).unwrap();
    let long_key = vec![1u8; MAX_KEY + 1];
    assert!(matches!(
        tree.insert(&long_key, b""),
        Err(BTreeError::KeyTooLong { .. })
    ));
    let big = vec![2u8; MAX_ENTRY];
    assert!(matches!(
        tree.insert(b"k", &big),
        Err(BTreeError::EntryTooLarge { .. })
    ));
    // The largest allowed entries, many of them: splits always find room.
    let key = vec![3u8; MAX_KEY];
    let value = vec![4u8; MAX_ENTRY - MAX_KEY];
    for n in 0..200u32 {
        let mut k = key.clone();
        k[..4].copy_from_slice(&n.to_be_bytes());
        tree.insert(&k, &value).unwrap();
    }
    assert_eq!(tree.range(b"").count(), 200);
    assert!(!tree.remove(&long_key).unwrap());
}

/// Descents follow the frame hints the tree keeps beside its child
/// pointers: with the whole tree resident, a second pass of lookups
/// misses no hint and stores none. In a new pool over the same file every
/// page is in another frame than the hints say: the first pass stores the
/// right ones (unlogged: nothing becomes dirty), and the next misses none.
#[test]
fn descents_follow_frame_hints_and_refresh_stale_ones() {
    let storage = Arc::new(MemoryStorage::new());
    let mut rng = Rng(0x51ed_2701);
    let mut model = BTreeMap::new();
    let meta = {
        let (pool, file) = open(&storage, 1024);
        let tree = BTree::create(&pool, file).unwrap();
        for _ in 0..6_000 {
            let (k, v) = (key(&mut rng, 1_000_000), value(&mut rng));
            tree.insert(&k, &v).unwrap();
            model.insert(k, v);
        }
        check_equal(&tree, &model);
        let before = pool.stats();
        check_equal(&tree, &model);
        let after = pool.stats();
        assert_eq!(after.frame_hint_misses, before.frame_hint_misses);
        assert_eq!(after.frame_hint_stores, before.frame_hint_stores);
        pool.flush_all().unwrap();
        tree.meta_page()
    };
    let (pool, file) = open(&storage, 1024);
    // Load the pages in another order than they were created: leaves
    // first (a scan from the end would do as well; this reads every page).
    let tree = BTree::open(&pool, pagepool::PageId::new(file, meta.page_no())).unwrap();
    let pages = pool.page_count(file).unwrap();
    for page_no in (1..pages).rev() {
        drop(pool.read(pagepool::PageId::new(file, page_no)).unwrap());
    }
    let start = pool.stats();
    check_equal(&tree, &model);
    let first = pool.stats();
    assert!(
        first.frame_hint_stores > start.frame_hint_stores,
        "stale hints were refreshed"
    );
    assert_eq!(first.dirty_frames, 0, "hint stores dirty nothing");
    check_equal(&tree, &model);
    let second = pool.stats();
    assert_eq!(second.frame_hint_misses, first.frame_hint_misses);
    assert_eq!(second.frame_hint_stores, first.frame_hint_stores);
}
