//! Randomized schedules of concurrent inserts with splits against lookups
//! and scans, through the real pool (512-byte pages under shuttle).
//!
//! Run with `cargo test -p pagepool-btree --release --features shuttle --test shuttle_btree`;
//! `SHUTTLE_ITERATIONS` (default 2,000 per scheduler) and `SHUTTLE_SEED`
//! (default 1) as in the pool's shuttle suites.
//!
//! Keys present before the threads start are never removed, so every
//! lookup of one must find it and every scan must pass through all of
//! them in order, whatever the writers' splits do meanwhile. A reader that
//! followed a child id without validating the parent lands, now and then,
//! in the left half of a node split under it and misses a key that moved
//! right.
#![cfg(feature = "shuttle")]

use std::sync::Arc;

use pagepool::{BufferPool, MemoryStorage, PoolConfig};
use pagepool_btree::BTree;
use shuttle::scheduler::{PctScheduler, RandomScheduler};
use shuttle::{Config, Runner};

fn iterations() -> usize {
    std::env::var("SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn seed() -> u64 {
    std::env::var("SHUTTLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Permanent keys: 0, 4, 8, ..; the writers add the others.
const PERMANENT: u64 = 16;

fn scenario() {
    let pool = BufferPool::open(PoolConfig::new(24)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    pool.format_file(file).unwrap();
    let pool = Arc::new(pool);
    let meta = {
        let tree = BTree::create(&pool, file).unwrap();
        for n in 0..PERMANENT {
            tree.insert(&key(n * 4), &[n as u8; 8]).unwrap();
        }
        tree.meta_page()
    };
    let writers: Vec<_> = (1..=2u64)
        .map(|offset| {
            let pool = Arc::clone(&pool);
            shuttle::thread::spawn(move || {
                let tree = BTree::open(&pool, meta).unwrap();
                let session = tree.session();
                for n in 0..PERMANENT {
                    session.insert(&key(n * 4 + offset), &[0xEE; 8]).unwrap();
                }
            })
        })
        .collect();
    let tree = BTree::open(&pool, meta).unwrap();
    let session = tree.session();
    for round in 0..2u64 {
        for n in (round..PERMANENT).step_by(3) {
            let found = session
                .get_with(&key(n * 4), |v| v == [n as u8; 8])
                .unwrap();
            assert_eq!(found, Some(true), "permanent key {} missed", n * 4);
        }
        let mut next_permanent = 0;
        let mut last = None;
        session
            .scan(&key(0), |k, _| {
                let k = u64::from_be_bytes(k.try_into().unwrap());
                assert!(last.map_or(true, |last| k > last), "scan out of order");
                if k % 4 == 0 {
                    assert_eq!(k, next_permanent * 4, "the scan skipped a permanent key");
                    next_permanent += 1;
                }
                last = Some(k);
                true
            })
            .unwrap();
        assert_eq!(next_permanent, PERMANENT, "the scan ended early");
    }
    drop(session);
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(tree.range(&key(0)).count() as u64, 3 * PERMANENT);
}

#[test]
fn inserts_with_splits_against_lookups_and_scans_pct() {
    Runner::new(
        PctScheduler::new_from_seed(seed(), 3, iterations()),
        Config::new(),
    )
    .run(scenario);
}

#[test]
fn inserts_with_splits_against_lookups_and_scans_random() {
    Runner::new(
        RandomScheduler::new_from_seed(seed(), iterations()),
        Config::new(),
    )
    .run(scenario);
}
