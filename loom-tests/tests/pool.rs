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

// Each model's preemption bound when `LOOM_MAX_PREEMPTIONS` is unset (CI
// runs them so): the highest that keeps the model within about a minute on
// the 2-core CI machine. Executions at these bounds are in the README.
const EVICTION_RACING_BOUND: usize = 3;
const EPOCH_REUSE_BOUND: usize = 2;
const SESSION_READS_BOUND: usize = 2;
const CONCURRENT_MISSES_BOUND: usize = 3;
/// Three threads on the whole miss path grow fastest: 7,892 executions at
/// bound 0, 532,677 (100 s) at 1.
const THREE_THREADS_BOUND: usize = 1;
const FLUSH_PATH_BOUND: usize = 2;
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
        .frame_wait_timeout(std::time::Duration::from_millis(3_600_000))
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
    run(EVICTION_RACING_BOUND, || {
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
    run(EPOCH_REUSE_BOUND, || {
        // The reader holds a session pin (the amortised protocol) across
        // two reads (under loom the session is refreshed every 2
        // operations, so the second read runs `repin`); the loader
        // recycles the only frame in between. Loom
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
fn session_reads_keep_the_session_pin_until_they_end() {
    run(SESSION_READS_BOUND, || {
        // A read through a `ThreadPin` leans on its session pin, with no
        // guard of its own (under loom the direct-mapped front is off, so
        // it looks its frame up in the buckets under the session pin's
        // guard). Inside its closure two nested reads of the
        // same page each count an operation (`pin`); under loom the
        // session is refreshed every 2, and that refresh must wait for the
        // outer read to end. The loader recycles the only frame
        // meanwhile; loom fails the model if the frame is refilled while
        // the outer read may still be reading it. (A refresh under the
        // read, planted, is not found at this bound: the loader must evict,
        // move the epoch and refill between three steps of the reader. The
        // unit tests of `src/epoch.rs`, which see each refresh, catch it.)
        let (pool, file) = pool_with_pages(1, 2);
        let page = PageId::new(file, 0);
        drop(pool.read(page).unwrap());
        let loader = {
            let pool = pool.clone();
            thread::spawn(move || drop(pool.read(PageId::new(file, 1)).unwrap()))
        };
        {
            let pin = pool.pin_thread();
            let (a, b) = pin
                .optimistic(page, |view| {
                    // Refused (a miss would block) or a hit: either is
                    // fine here, what counts is the outer read's pin.
                    for _ in 0..2 {
                        let _ = pool.optimistic(page, |inner| inner.load_u64(8));
                    }
                    (view.load_u64(0).unwrap(), view.load_u64(8).unwrap())
                })
                .unwrap();
            assert_eq!((a, b), (1, 1), "page 0 read another page's bytes");
        }
        loader.join().unwrap();
        assert_quiescent(&pool);
    });
}

#[test]
fn concurrent_misses_of_one_page_load_it_once_and_both_see_it() {
    run(CONCURRENT_MISSES_BOUND, || {
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

#[test]
fn a_reader_an_evictor_and_a_reloader_on_two_frames_see_only_their_pages() {
    run(THREE_THREADS_BOUND, || {
        // Two frames, three pages. Page 1 is latched throughout, so page
        // 2's miss (the evictor) must evict page 0 from the other frame,
        // and page 0's reload must then evict page 2 from it again, while
        // the reader reads page 0 optimistically: whichever tenant the
        // frame holds, the reader validates only page 0's bytes.
        let (pool, file) = pool_with_pages(2, 3);
        drop(pool.read(PageId::new(file, 0)).unwrap());
        let held = pool.read(PageId::new(file, 1)).unwrap();
        let evictor = {
            let pool = pool.clone();
            thread::spawn(move || check_optimistic(&pool, file, 2))
        };
        check_optimistic(&pool, file, 0);
        let reloader = {
            let pool = pool.clone();
            thread::spawn(move || check_optimistic(&pool, file, 0))
        };
        evictor.join().unwrap();
        reloader.join().unwrap();
        drop(held);
        assert_quiescent(&pool);
    });
}

/// A store whose first page write fails, then works.
#[derive(Debug)]
struct FailFirstWrite {
    inner: Arc<MemoryStorage>,
    failed: std::sync::atomic::AtomicBool,
}

impl pagepool::Storage for FailFirstWrite {
    fn page_count(&self) -> std::io::Result<u64> {
        self.inner.page_count()
    }
    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_page(page_no, buf)
    }
    fn write_page(&self, page_no: u64, buf: &[u8]) -> std::io::Result<()> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        self.inner.write_page(page_no, buf)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
}

/// The flush path against a writer and an allocator: the first write-back
/// fails after `downgrade_clean` (the page is re-dirtied, the flush
/// reports it), a second flush writes it; meanwhile another thread
/// allocates a page and reads the flushed one. Everything written reaches
/// the store, and no latch is left behind.
#[test]
fn a_failed_write_back_redirties_and_a_later_flush_writes_while_others_allocate() {
    run(FLUSH_PATH_BOUND, || {
        let storage = Arc::new(MemoryStorage::new());
        let config =
            PoolConfig::new(3).frame_wait_timeout(std::time::Duration::from_millis(3_600_000));
        let pool = Arc::new(BufferPool::open(config).unwrap());
        let file = pool
            .open_storage(Box::new(FailFirstWrite {
                inner: storage.clone(),
                failed: std::sync::atomic::AtomicBool::new(false),
            }))
            .unwrap();
        let (page_id, mut page) = pool.allocate(file).unwrap();
        page.store_u64(0, 7).unwrap();
        drop(page);
        let other = {
            let pool = pool.clone();
            thread::spawn(move || {
                let (new_id, mut page) = pool.allocate(file).unwrap();
                page.store_u64(0, 9).unwrap();
                drop(page);
                let seen = pool
                    .optimistic(page_id, |v| v.load_u64(0).unwrap())
                    .unwrap();
                assert_eq!(seen, 7);
                new_id
            })
        };
        assert!(pool.flush(page_id).is_err(), "the first write-back fails");
        pool.flush(page_id).unwrap();
        let new_id = other.join().unwrap();
        pool.flush_all().unwrap();
        assert_quiescent(&pool);
        drop(pool);
        let reopened = BufferPool::open(PoolConfig::new(2)).unwrap();
        let file = reopened.open_storage(Box::new(storage)).unwrap();
        let word = |n| {
            reopened
                .optimistic(PageId::new(file, n), |v| v.load_u64(0).unwrap())
                .unwrap()
        };
        assert_eq!(word(page_id.page_no()), 7);
        assert_eq!(word(new_id.page_no()), 9);
    });
}
