//! Randomized schedules of write-back: the background writer racing a
//! writer thread, evictions and a fuzzy checkpoint.
//!
//! Run with `cargo test --release --features shuttle,internals --test shuttle_writeback`
//! (`SHUTTLE_ITERATIONS`, `SHUTTLE_SEED` as for `shuttle_pool`).
//!
//! The model: three pages, two frames (every read of a third page evicts),
//! the background writer on (the whole pool ahead of the hand, batches of
//! two; under shuttle it runs when an eviction that had to write kicks it).
//! A writer thread changes pages under their exclusive latch and logs each
//! change while it holds the latch (a record in a shared log, its index
//! the LSN); a reader thread reads pages; a checkpoint thread takes the
//! log's length `L`, asks `min_recovery_lsn`, then `flush_until(L + 1)`.
//!
//! What each schedule checks:
//! - the WAL rule: no page reaches the store with an LSN above what the
//!   hook has made durable;
//! - `min_recovery_lsn` covers every logged change that is not in the
//!   store: its LSN is at most that change's;
//! - after `flush_until(L + 1)`, every change logged before it (LSN ≤ L)
//!   is in the store;
//! - every page read is one the writer wrote, whole (value and LSN agree);
//! - no lost wake-up or latch left held (shuttle reports a deadlock).
//!
//! A second, smaller model races one writer's release against one
//! checkpoint scan (`min_recovery_lsn`, then `flush_until`): a change
//! logged before the scan must be stored or covered, and stored after the
//! checkpoint, whichever load of the scan the release falls between.
#![cfg(feature = "shuttle")]

mod common;

use std::io;
use std::sync::Arc;

use pagepool::{
    BufferPool, IoEngine, MemoryStorage, PageId, PoolConfig, Storage, WriterConfig, PAGE_DATA_SIZE,
    PAGE_SIZE,
};
use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::sync::atomic::{AtomicU64, Ordering};
use shuttle::sync::Mutex;
use shuttle::Runner;

const PAGES: u64 = 3;

fn lsn_of(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[PAGE_DATA_SIZE..PAGE_DATA_SIZE + 8].try_into().unwrap())
}

/// The store: memory, checking the WAL rule on every write.
#[derive(Debug)]
struct Checked {
    inner: Arc<MemoryStorage>,
    durable: Arc<AtomicU64>,
    violations: Arc<AtomicU64>,
}

impl Storage for Checked {
    fn page_count(&self) -> io::Result<u64> {
        self.inner.page_count()
    }
    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_page(page_no, buf)
    }
    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        if lsn_of(buf) > self.durable.load(Ordering::SeqCst) {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.write_page(page_no, buf)
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

fn stored_lsn(store: &MemoryStorage, page_no: u64) -> u64 {
    let mut page = vec![0u8; PAGE_SIZE];
    store.read_page(page_no, &mut page).unwrap();
    lsn_of(&page)
}

fn seeded() -> Arc<MemoryStorage> {
    let memory = Arc::new(MemoryStorage::new());
    let pool = BufferPool::open(PoolConfig::new(4).io_engine(IoEngine::Sync)).unwrap();
    let file = pool.open_storage(Box::new(Arc::clone(&memory))).unwrap();
    for _ in 0..PAGES {
        drop(pool.allocate(file).unwrap());
    }
    pool.close().unwrap();
    memory
}

fn scenario() {
    let memory = seeded();
    let durable = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(AtomicU64::new(0));
    let hook_durable = Arc::clone(&durable);
    let config = PoolConfig::new(2)
        .io_engine(IoEngine::Sync)
        .background_writer(
            WriterConfig::default()
                .clean_ahead_percent(100)
                .batch_pages(2),
        )
        .wal_hook(move |lsn| {
            hook_durable.fetch_max(lsn, Ordering::SeqCst);
            Ok(())
        });
    let pool = Arc::new(BufferPool::open(config).unwrap());
    let file = pool
        .open_storage(Box::new(Checked {
            inner: Arc::clone(&memory),
            durable: Arc::clone(&durable),
            violations: Arc::clone(&violations),
        }))
        .unwrap();
    // The log: (page, value) per record; a record's LSN is its index + 1.
    let log: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));

    let writer = {
        let (pool, log) = (Arc::clone(&pool), Arc::clone(&log));
        shuttle::thread::spawn(move || {
            for page_no in [0, 1] {
                let mut page = pool.write(PageId::new(file, page_no)).unwrap();
                let lsn = {
                    let mut log = log.lock().unwrap();
                    log.push(page_no);
                    log.len() as u64
                };
                page.store_u64(0, lsn).unwrap();
                page.set_lsn(lsn);
            }
        })
    };
    let reader = {
        let pool = Arc::clone(&pool);
        shuttle::thread::spawn(move || {
            for page_no in [2, 0] {
                let page = pool.read(PageId::new(file, page_no)).unwrap();
                let view = page.view();
                assert_eq!(view.load_u64(0).unwrap(), page.lsn(), "page {page_no} torn");
            }
        })
    };
    let checkpoint = {
        let (pool, log, memory) = (Arc::clone(&pool), Arc::clone(&log), Arc::clone(&memory));
        shuttle::thread::spawn(move || {
            let logged: Vec<u64> = log.lock().unwrap().clone();
            let redo_from = pool.min_recovery_lsn();
            for (index, &page_no) in logged.iter().enumerate() {
                let lsn = index as u64 + 1;
                let stored = stored_lsn(&memory, page_no);
                assert!(
                    stored >= lsn || redo_from.is_some_and(|from| from <= lsn),
                    "change {lsn} of page {page_no} is neither stored ({stored}) nor covered \
                     by min_recovery_lsn {redo_from:?}"
                );
            }
            pool.flush_until(logged.len() as u64 + 1).unwrap();
            for (index, &page_no) in logged.iter().enumerate() {
                let stored = stored_lsn(&memory, page_no);
                assert!(
                    stored > index as u64,
                    "flush_until returned without change {} of page {page_no} (stored {stored})",
                    index + 1
                );
            }
        })
    };
    writer.join().unwrap();
    reader.join().unwrap();
    checkpoint.join().unwrap();
    pool.flush_all().unwrap();
    assert_eq!(pool.min_recovery_lsn(), None);
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "a page was written before its log"
    );
}

/// The smallest race of a checkpoint's scan against a writer's release:
/// one resident page, one change logged under its latch, and `check` on
/// the main thread. Whatever the interleaving, a change logged before the
/// scan began must be stored or covered.
fn release_racing(check: fn(&BufferPool, &MemoryStorage, u64)) {
    let memory = seeded();
    let pool = Arc::new(BufferPool::open(PoolConfig::new(2).io_engine(IoEngine::Sync)).unwrap());
    let file = pool.open_storage(Box::new(Arc::clone(&memory))).unwrap();
    drop(pool.read(PageId::new(file, 0)).unwrap());
    let log = Arc::new(AtomicU64::new(0));
    let writer = {
        let (pool, log) = (Arc::clone(&pool), Arc::clone(&log));
        shuttle::thread::spawn(move || {
            let mut page = pool.write(PageId::new(file, 0)).unwrap();
            log.store(1, Ordering::SeqCst);
            page.set_lsn(1);
        })
    };
    check(&pool, &memory, log.load(Ordering::SeqCst));
    writer.join().unwrap();
}

/// `min_recovery_lsn` covers a change logged before it was called.
fn scan_covers(pool: &BufferPool, memory: &MemoryStorage, logged: u64) {
    let redo_from = pool.min_recovery_lsn();
    if logged == 1 {
        assert!(
            stored_lsn(memory, 0) >= 1 || redo_from.is_some_and(|from| from <= 1),
            "change 1 was logged before the scan, and min_recovery_lsn is {redo_from:?}"
        );
    }
}

/// `flush_until` stores a change logged before it was called.
fn checkpoint_stores(pool: &BufferPool, memory: &MemoryStorage, logged: u64) {
    pool.flush_until(logged + 1).unwrap();
    if logged == 1 {
        assert!(
            stored_lsn(memory, 0) >= 1,
            "flush_until(2) left change 1 unstored"
        );
    }
}

#[test]
fn a_release_racing_min_recovery_lsn() {
    let iterations = common::shuttle_iterations() / 2;
    let seed = common::shuttle_seed();
    let config = common::shuttle_config;
    Runner::new(PctScheduler::new_from_seed(seed, 3, iterations), config())
        .run(|| release_racing(scan_covers));
    Runner::new(RandomScheduler::new_from_seed(seed, iterations), config())
        .run(|| release_racing(scan_covers));
}

#[test]
fn a_release_racing_flush_until() {
    let iterations = common::shuttle_iterations() / 2;
    let seed = common::shuttle_seed();
    let config = common::shuttle_config;
    Runner::new(PctScheduler::new_from_seed(seed, 3, iterations), config())
        .run(|| release_racing(checkpoint_stores));
    Runner::new(RandomScheduler::new_from_seed(seed, iterations), config())
        .run(|| release_racing(checkpoint_stores));
}

/// Redo extending a file while another thread allocates in it: the page
/// the allocation hands out is the allocator's, whatever the interleaving
/// (`extend_file` must not zero it), and the file ends at least as long
/// as both asked.
fn extend_racing_allocate() {
    let pool = Arc::new(BufferPool::open(PoolConfig::new(3).io_engine(IoEngine::Sync)).unwrap());
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let allocator = {
        let pool = Arc::clone(&pool);
        shuttle::thread::spawn(move || {
            let (page_id, mut page) = pool.allocate(file).unwrap();
            page.store_u64(0, 77).unwrap();
            drop(page);
            page_id
        })
    };
    pool.extend_file(file, 1).unwrap();
    let page_id = allocator.join().unwrap();
    let value = pool.optimistic(page_id, |view| view.load_u64(0)).unwrap();
    assert_eq!(
        value,
        Ok(77),
        "the allocated {page_id} was zeroed by extend_file"
    );
    assert!(pool.page_count(file).unwrap() >= 1);
    assert!(pool.page_count(file).unwrap() > page_id.page_no());
}

#[test]
fn extend_file_racing_allocate() {
    let iterations = common::shuttle_iterations() / 2;
    let seed = common::shuttle_seed();
    let config = common::shuttle_config;
    Runner::new(PctScheduler::new_from_seed(seed, 3, iterations), config())
        .run(extend_racing_allocate);
    Runner::new(RandomScheduler::new_from_seed(seed, iterations), config())
        .run(extend_racing_allocate);
}

fn run(scheduler: impl Scheduler + 'static) {
    Runner::new(scheduler, common::shuttle_config()).run(scenario);
}

#[test]
fn write_back_under_pct_schedules() {
    run(PctScheduler::new_from_seed(
        common::shuttle_seed(),
        3,
        common::shuttle_iterations() / 4,
    ));
}

#[test]
fn write_back_under_random_schedules() {
    run(RandomScheduler::new_from_seed(
        common::shuttle_seed(),
        common::shuttle_iterations() / 4,
    ));
}
