//! Exhaustive models of eviction, loading, epoch-deferred frame reuse and
//! the flush path, driven through the real pool on 32-byte pages (two data
//! words). The page table's own models are in `table.rs`.
//!
//! Frame reuse is checked by loom itself: every bulk fill of a frame from
//! storage and every optimistic read of it is declared to loom
//! (`AccessTracker` in src/sync.rs), and loom reports a fill that is not
//! ordered after a read that could still be running.
#![cfg(loom)]

mod common;

use std::sync::Arc;

use common::run;

/// Preemption bound of these models when `LOOM_MAX_PREEMPTIONS` is unset.
const POOL_BOUND: usize = 3;
use loom::thread;
use pagepool::__model::{self as model, EXCL, FREE};
use pagepool::{BufferPool, FileId, MemoryStorage, PageId, PoolConfig};

/// A pool of `frames` frames over a store holding `pages` pages, page `n`
/// holding `n + 1` in both data words (written through a setup pool so the
/// checksums are right).
fn pool_with_pages(frames: usize, pages: u64) -> (Arc<BufferPool>, FileId) {
    let storage = Arc::new(MemoryStorage::new());
    {
        let setup = BufferPool::open(PoolConfig::new(pages as usize)).unwrap();
        let file = setup.open_storage(Box::new(storage.clone())).unwrap();
        for n in 0..pages {
            let (_, mut page) = setup.allocate(file).unwrap();
            page.store_u64(0, n + 1).unwrap();
            page.store_u64(8, n + 1).unwrap();
        }
        setup.close().unwrap();
    }
    let config = PoolConfig::new(frames)
        .frame_wait_timeout_ms(3_600_000)
        .evict_batch(1);
    let pool = BufferPool::open(config).unwrap();
    let file = pool.open_storage(Box::new(storage)).unwrap();
    (Arc::new(pool), file)
}

/// Reads both data words of `page_no` optimistically and checks they are
/// the page's own.
fn check_optimistic(pool: &BufferPool, file: FileId, page_no: u64) {
    let (a, b) = pool
        .optimistic(PageId::new(file, page_no), |view| {
            (view.load_u64(0).unwrap(), view.load_u64(8).unwrap())
        })
        .unwrap();
    assert_eq!(
        (a, b),
        (page_no + 1, page_no + 1),
        "page {page_no} read another page's bytes"
    );
}

fn assert_quiescent(pool: &BufferPool) {
    for state in model::frame_states(pool) {
        assert_eq!(
            model::shared_count(state),
            0,
            "a shared latch leaked: {state:#x}"
        );
        assert!(state & EXCL == 0, "an exclusive latch leaked: {state:#x}");
    }
}

#[test]
fn eviction_racing_an_optimistic_reader_and_a_loader_never_validates_another_page() {
    run(POOL_BOUND, || {
        // One frame, two pages: loading page 1 must evict page 0 under the
        // reader of page 0.
        let (pool, file) = pool_with_pages(1, 2);
        drop(pool.read(PageId::new(file, 0)).unwrap());
        let loader = {
            let pool = pool.clone();
            thread::spawn(move || check_optimistic(&pool, file, 1))
        };
        check_optimistic(&pool, file, 0);
        loader.join().unwrap();
        assert_quiescent(&pool);
    });
}

#[test]
fn epoch_deferred_reuse_waits_for_a_pinned_reader_across_operations() {
    run(POOL_BOUND, || {
        // The reader holds a session pin (the amortised protocol) across
        // two reads; the loader recycles the only frame in between. Loom
        // fails the model if the frame is refilled while the reader may
        // still be reading it.
        let (pool, file) = pool_with_pages(1, 2);
        drop(pool.read(PageId::new(file, 0)).unwrap());
        let loader = {
            let pool = pool.clone();
            thread::spawn(move || drop(pool.read(PageId::new(file, 1)).unwrap()))
        };
        {
            let _pin = pool.pin_thread();
            check_optimistic(&pool, file, 0);
            check_optimistic(&pool, file, 0);
        }
        loader.join().unwrap();
        assert_quiescent(&pool);
        let states = model::frame_states(&pool);
        assert!(
            states.iter().all(|s| s & FREE == 0),
            "the frame holds a page at the end"
        );
    });
}

#[test]
fn concurrent_misses_of_one_page_load_it_once_and_both_see_it() {
    run(POOL_BOUND, || {
        let (pool, file) = pool_with_pages(2, 1);
        let other = {
            let pool = pool.clone();
            thread::spawn(move || check_optimistic(&pool, file, 0))
        };
        let page = pool.read(PageId::new(file, 0)).unwrap();
        assert_eq!(page.view().load_u64(0).unwrap(), 1);
        drop(page);
        other.join().unwrap();
        assert_eq!(pool.stats().io_reads, 1, "one read for two misses");
        assert_quiescent(&pool);
    });
}
