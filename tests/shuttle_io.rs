//! Randomized schedules of reads in flight: the worker engine (a thread of
//! the pool's) runs the reads that `prefetch`, `read_many` and the async
//! API start, while other threads and a task want the same pages.
//!
//! Run with `cargo test --release --features shuttle,internals --test shuttle_io`
//! (`SHUTTLE_ITERATIONS`, `SHUTTLE_SEED` as for `shuttle_pool`).
//!
//! What each schedule checks:
//! - every page anyone gets is whole and the one asked for;
//! - the one read that fails (page 1's first) reaches only the thread
//!   whose read it was, as `Error::Read` with the page's id, and publishes
//!   nothing: every later read of the page gets it whole;
//! - waiters of a read that completes, fails, or whose frame is evicted
//!   and reused all go on (a lost wake-up is a deadlock shuttle reports);
//! - no latch is left behind: a read the task started and then abandoned
//!   (its future dropped after one poll), and every read held for a
//!   starter, end released, so that afterwards every page can be latched
//!   exclusively (a latch left held makes that write wait for ever, a
//!   deadlock shuttle reports).
#![cfg(feature = "shuttle")]

mod common;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Context;

use pagepool::{
    BufferPool, Error, IoEngine, MemoryStorage, PageId, PoolConfig, Storage, PAGE_DATA_SIZE,
};
use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::Runner;

const PAGES: u64 = 4;
const WORDS: usize = PAGE_DATA_SIZE / 8;
/// The page whose first read fails.
const FLAKY: u64 = 1;

fn word(page_no: u64, index: usize) -> u64 {
    (page_no + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64
}

fn check(page_no: u64, load: impl Fn(usize) -> u64) {
    for index in 0..WORDS {
        assert_eq!(
            load(index),
            word(page_no, index),
            "page {page_no} word {index}"
        );
    }
}

/// Memory storage whose first read of page `FLAKY` fails with `EIO`.
#[derive(Debug)]
struct Flaky {
    inner: Arc<MemoryStorage>,
    failed_once: AtomicBool,
    reads: AtomicU64,
}

impl Storage for Flaky {
    fn page_count(&self) -> io::Result<u64> {
        self.inner.page_count()
    }

    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if page_no == FLAKY && !self.failed_once.swap(true, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.read_page(page_no, buf)
    }

    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        self.inner.write_page(page_no, buf)
    }

    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}

fn seeded() -> Arc<MemoryStorage> {
    let storage = Arc::new(MemoryStorage::new());
    let pool = BufferPool::open(PoolConfig::new(2).io_engine(IoEngine::Sync)).unwrap();
    let file = pool.open_storage(Box::new(storage.clone())).unwrap();
    for page_no in 0..PAGES {
        let (_, mut page) = pool.allocate(file).unwrap();
        for index in 0..WORDS {
            page.store_u64(index * 8, word(page_no, index)).unwrap();
        }
    }
    pool.close().unwrap();
    storage
}

/// A page's outcome for one caller: whole, or the flaky page's one error.
fn outcome(page_id: PageId, got: Result<impl Fn(usize) -> u64, Error>, failures: &AtomicU64) {
    match got {
        Ok(load) => check(page_id.page_no(), load),
        Err(error) => {
            assert!(matches!(error, Error::Read { .. }), "{error}");
            assert_eq!(error.page_id(), Some(page_id));
            assert_eq!(page_id.page_no(), FLAKY, "only the flaky page fails");
            failures.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn scenario() {
    let storage = seeded();
    // Three frames for four pages: reads evict pages other reads wait for.
    let config = PoolConfig::new(3)
        .evict_batch(1)
        .io_engine(IoEngine::Worker);
    let pool = Arc::new(BufferPool::open(config).unwrap());
    let flaky = Arc::new(Flaky {
        inner: storage,
        failed_once: AtomicBool::new(false),
        reads: AtomicU64::new(0),
    });
    let file = pool.open_storage(Box::new(flaky.clone())).unwrap();
    let page = move |page_no| PageId::new(file, page_no);
    let failures = Arc::new(AtomicU64::new(0));

    let batch = {
        let (pool, failures) = (pool.clone(), failures.clone());
        shuttle::thread::spawn(move || {
            let ids = [page(0), page(1), page(2)];
            let mut seen = 0;
            pool.read_many(&ids, |page_id, got| {
                seen += 1;
                let got = got.map(|guard| move |i: usize| guard.view().load_u64(i * 8).unwrap());
                outcome(page_id, got, &failures);
            });
            assert_eq!(seen, 3);
        })
    };
    let reader = {
        let (pool, failures) = (pool.clone(), failures.clone());
        shuttle::thread::spawn(move || {
            pool.prefetch(&[page(3)]).unwrap();
            let got = pool
                .read(page(FLAKY))
                .map(|guard| move |i: usize| guard.view().load_u64(i * 8).unwrap());
            outcome(page(FLAKY), got, &failures);
        })
    };
    let task = {
        let (pool, failures) = (pool.clone(), failures.clone());
        shuttle::thread::spawn(move || {
            // A read started and abandoned: polled once, then dropped.
            {
                let waker = common::noop_waker();
                let mut cx = Context::from_waker(&waker);
                let abandoned = pin!(pool.read_async(page(3)));
                let _ = abandoned.poll(&mut cx);
            }
            let got = shuttle::future::block_on(pool.read_async(page(2)))
                .map(|guard| move |i: usize| guard.view().load_u64(i * 8).unwrap());
            outcome(page(2), got, &failures);
            let got = shuttle::future::block_on(pool.optimistic_async(page(FLAKY), |view| {
                (0..WORDS)
                    .map(|i| view.load_u64(i * 8).unwrap())
                    .collect::<Vec<_>>()
            }))
            .map(|words| move |i: usize| words[i]);
            outcome(page(FLAKY), got, &failures);
        })
    };
    for thread in [batch, reader, task] {
        thread.join().unwrap();
    }
    // The flaky read failed at most once, and only its starter saw it
    // (a synchronous reader of a page whose started read failed reads it
    // again itself).
    assert!(failures.load(Ordering::SeqCst) <= 1);
    // Nothing left latched or half-published: a latch left held would
    // make this write wait for ever (a deadlock, which shuttle reports).
    for page_no in 0..PAGES {
        let guard = pool.write(page(page_no)).unwrap();
        check(page_no, |i| guard.view().load_u64(i * 8).unwrap());
    }
    drop(pool);
}

fn run(scheduler: impl Scheduler + 'static) {
    Runner::new(scheduler, common::shuttle_config()).run(scenario);
}

#[test]
fn reads_in_flight_under_pct_schedules() {
    run(PctScheduler::new_from_seed(
        common::shuttle_seed(),
        3,
        common::shuttle_iterations() / 4,
    ));
}

#[test]
fn reads_in_flight_under_random_schedules() {
    run(RandomScheduler::new_from_seed(
        common::shuttle_seed(),
        common::shuttle_iterations() / 4,
    ));
}
