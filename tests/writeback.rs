//! Write-back (issue 15): recovery LSNs and `dirty_pages`, the batched
//! WAL contract, `flush_until`, the background writer, the recovery
//! writes, and faults in the middle of batches and checkpoints.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pagepool::testing::{FaultKind, Faulty, IoOp};
use pagepool::{
    BufferPool, DirectFile, DirtyPage, Error, IoEngine, IoMode, MemoryStorage, PageId, PoolConfig,
    Storage, WriterConfig, PAGE_DATA_SIZE,
};

fn lsn_of(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[PAGE_DATA_SIZE..PAGE_DATA_SIZE + 8].try_into().unwrap())
}

/// A store that checks the WAL rule on every write: the page's LSN must be
/// at most what the log has made durable. Its writes can be held at a
/// gate, to look at the pool while a write is in progress.
#[derive(Debug, Default)]
struct WalChecked {
    inner: MemoryStorage,
    durable_lsn: AtomicU64,
    violations: AtomicU64,
    writes: AtomicU64,
    gate: Gate,
}

#[derive(Debug, Default)]
struct Gate {
    closed: Mutex<bool>,
    changed: Condvar,
    waiting: AtomicUsize,
}

impl Gate {
    fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }
    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.changed.notify_all();
    }
    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while *closed {
            closed = self.changed.wait(closed).unwrap();
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
    fn wait_for_someone(&self) {
        while self.waiting.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[derive(Debug)]
struct Checked(Arc<WalChecked>);

impl Storage for Checked {
    fn page_count(&self) -> io::Result<u64> {
        self.0.inner.page_count()
    }
    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.inner.read_page(page_no, buf)
    }
    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        self.0.gate.pass();
        if lsn_of(buf) > self.0.durable_lsn.load(Ordering::SeqCst) {
            self.0.violations.fetch_add(1, Ordering::SeqCst);
        }
        self.0.writes.fetch_add(1, Ordering::SeqCst);
        self.0.inner.write_page(page_no, buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.inner.sync()
    }
}

/// A pool on a `WalChecked` store whose hook makes the log durable up to
/// the batch's LSN, counting calls.
fn checked_pool(frames: usize) -> (BufferPool, Arc<WalChecked>, Arc<AtomicU64>) {
    let store = Arc::new(WalChecked::default());
    let calls = Arc::new(AtomicU64::new(0));
    let (log, counted) = (Arc::clone(&store), Arc::clone(&calls));
    let config = PoolConfig::new(frames)
        .checkpoint_pages_in_flight(64)
        .wal_hook(move |lsn| {
            counted.fetch_add(1, Ordering::SeqCst);
            log.durable_lsn.fetch_max(lsn, Ordering::SeqCst);
            Ok(())
        });
    let pool = BufferPool::open(config).unwrap();
    (pool, store, calls)
}

#[test]
fn recovery_lsns_are_the_first_change_since_clean() {
    let pool = BufferPool::open(PoolConfig::new(16)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    assert_eq!(pool.min_recovery_lsn(), None);
    let mut ids = Vec::new();
    for lsn in [30, 10, 20] {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        page.set_lsn(lsn);
        ids.push(page_id);
    }
    // A second change keeps the first change's LSN.
    let mut page = pool.write(ids[0]).unwrap();
    page.set_lsn(40);
    drop(page);
    let dirty = pool.dirty_pages();
    let expect = |page_id, recovery_lsn| DirtyPage {
        page_id,
        recovery_lsn,
    };
    assert_eq!(
        dirty,
        vec![expect(ids[0], 30), expect(ids[1], 10), expect(ids[2], 20)]
    );
    assert_eq!(pool.min_recovery_lsn(), Some(10));
    // A read leaves it alone; a flush of the page makes it durable.
    drop(pool.read(ids[1]).unwrap());
    pool.flush(ids[1]).unwrap();
    assert_eq!(pool.min_recovery_lsn(), Some(20));
    // A change after clean starts again from its own LSN.
    pool.write(ids[1]).unwrap().set_lsn(50);
    assert!(pool.dirty_pages().contains(&expect(ids[1], 50)));
}

#[test]
fn flush_until_writes_only_what_is_older_and_one_wal_call_covers_a_batch() {
    let (pool, store, calls) = checked_pool(256);
    let file = pool
        .open_storage(Box::new(Checked(Arc::clone(&store))))
        .unwrap();
    for lsn in 1..=200u64 {
        let (_, mut page) = pool.allocate(file).unwrap();
        page.store_u64(0, lsn).unwrap();
        page.set_lsn(lsn);
    }
    pool.flush_until(101).unwrap();
    assert_eq!(store.writes.load(Ordering::SeqCst), 100);
    assert_eq!(pool.min_recovery_lsn(), Some(101));
    // 100 pages in batches of 64: two log flushes, not 100.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(store.durable_lsn.load(Ordering::SeqCst), 100);
    pool.flush_all().unwrap();
    assert_eq!(store.writes.load(Ordering::SeqCst), 200);
    assert_eq!(pool.min_recovery_lsn(), None);
    assert_eq!(store.violations.load(Ordering::SeqCst), 0);
    let stats = pool.stats();
    assert_eq!((stats.write_backs, stats.wal_flushes), (200, 4));
    assert_eq!(stats.write_batches, 4);
}

#[test]
fn a_page_being_written_stays_in_dirty_pages_and_flush_until_waits_for_it() {
    let (pool, store, _) = checked_pool(8);
    let pool = Arc::new(pool);
    let file = pool
        .open_storage(Box::new(Checked(Arc::clone(&store))))
        .unwrap();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.set_lsn(7);
    drop(page);
    store.gate.close();
    let flusher = {
        let pool = Arc::clone(&pool);
        std::thread::spawn(move || pool.flush_all())
    };
    store.gate.wait_for_someone();
    // The write is in progress: the page is clean in memory, not yet on
    // disk, and a checkpoint must still see it.
    assert_eq!(pool.min_recovery_lsn(), Some(7), "{:?}", pool.dirty_pages());
    let done = Arc::new(AtomicBool::new(false));
    let checkpoint = {
        let (pool, done) = (Arc::clone(&pool), Arc::clone(&done));
        std::thread::spawn(move || {
            pool.flush_until(8).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !done.load(Ordering::SeqCst),
        "flush_until returned while a page below its LSN was still being written"
    );
    store.gate.open();
    flusher.join().unwrap().unwrap();
    checkpoint.join().unwrap();
    assert_eq!(pool.min_recovery_lsn(), None);
    assert_eq!(lsn_of(&store_page(&store.inner, page_id.page_no())), 7);
}

fn store_page(store: &MemoryStorage, page_no: u64) -> Vec<u8> {
    let mut page = pagepool_page();
    store.read_page(page_no, &mut page.0).unwrap();
    page.0.to_vec()
}

#[repr(C, align(4096))]
struct Aligned([u8; pagepool::PAGE_SIZE]);

fn pagepool_page() -> Box<Aligned> {
    Box::new(Aligned([0; pagepool::PAGE_SIZE]))
}

#[test]
fn a_failing_wal_hook_keeps_the_whole_batch_dirty_and_reaches_the_flusher() {
    let failing = Arc::new(AtomicBool::new(true));
    let fail = Arc::clone(&failing);
    let pool = BufferPool::open(PoolConfig::new(32).wal_hook(move |_| {
        if fail.load(Ordering::SeqCst) {
            Err(io::Error::other("log device gone"))
        } else {
            Ok(())
        }
    }))
    .unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    for lsn in 1..=10 {
        pool.allocate(file).unwrap().1.set_lsn(lsn);
    }
    let error = pool.flush_all().unwrap_err();
    assert!(matches!(error, Error::WalHook { lsn: 10, .. }), "{error}");
    assert_eq!(pool.dirty_pages().len(), 10);
    assert_eq!(pool.stats().io_writes, 0);
    // The latches were released: writers get in.
    pool.write(PageId::new(file, 3))
        .unwrap()
        .store_u64(0, 1)
        .unwrap();
    failing.store(false, Ordering::SeqCst);
    pool.flush_all().unwrap();
    assert!(pool.dirty_pages().is_empty());
}

#[test]
fn a_panicking_wal_hook_in_a_batch_loses_nothing() {
    let armed = Arc::new(AtomicBool::new(true));
    let arm = Arc::clone(&armed);
    let pool = BufferPool::open(PoolConfig::new(32).wal_hook(move |_| {
        if arm.swap(false, Ordering::SeqCst) {
            panic!("the log panicked");
        }
        Ok(())
    }))
    .unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    for lsn in 1..=5 {
        pool.allocate(file).unwrap().1.set_lsn(lsn);
    }
    let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.flush_all()));
    assert!(flushed.is_err());
    assert_eq!(pool.dirty_pages().len(), 5);
    pool.write(PageId::new(file, 0))
        .unwrap()
        .store_u64(8, 2)
        .unwrap();
    pool.flush_all().unwrap();
    assert!(pool.dirty_pages().is_empty());
}

/// Faults in the middle of a batch: the failed pages stay dirty, the
/// others are written, and a retry loses nothing. Also the sync failing in
/// the middle of a checkpoint, with a volatile cache that loses what it
/// covered.
#[test]
fn faults_in_batches_and_checkpoints_lose_nothing() {
    let memory = Arc::new(MemoryStorage::new());
    let faulty = Faulty::new(Box::new(Arc::clone(&memory)));
    let faults = faulty.controller();
    faults.set_volatile_cache(true);
    let pool = BufferPool::open(PoolConfig::new(64).wal_hook(|_| Ok(()))).unwrap();
    let file = pool.open_storage(Box::new(faulty)).unwrap();
    let mut ids = Vec::new();
    for n in 0..40u64 {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        page.store_u64(0, n).unwrap();
        page.set_lsn(n + 1);
        ids.push(page_id);
    }
    faults.fail_after(IoOp::Write, 3, FaultKind::Eio, 1);
    faults.fail_after(IoOp::Write, 10, FaultKind::NoSpace, 1);
    let error = pool.flush_until(30).unwrap_err();
    assert!(matches!(error, Error::Write { .. }), "{error}");
    let dirty = pool.dirty_pages();
    // The two failed pages are dirty; the 27 written ones are synced.
    assert_eq!(
        dirty.iter().filter(|p| p.recovery_lsn < 30).count(),
        2,
        "{dirty:?}"
    );
    // A sync that fails in the middle of the next checkpoint: everything
    // it covered (written since the last good sync) is lost by the cache.
    faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
    let error = pool.flush_until(41).unwrap_err();
    assert!(matches!(error, Error::Sync { .. }), "{error}");
    assert!(faults.stats().lost_writes > 0);
    assert!(
        pool.min_recovery_lsn().is_some(),
        "the lost writes are still owed"
    );
    pool.flush_until(41).unwrap();
    assert_eq!(pool.min_recovery_lsn(), None);
    drop(pool);
    for (n, page_id) in ids.iter().enumerate() {
        let page = store_page(&memory, page_id.page_no());
        assert_eq!(u64::from_le_bytes(page[..8].try_into().unwrap()), n as u64);
    }
}

/// The background writer cleans pages before the clock evicts them: the
/// faulting threads write few of them back themselves. Reads are slowed
/// to disk speed, and the writer gets its passes (every millisecond)
/// however loaded the machine is.
#[test]
fn the_background_writer_does_the_write_backs_and_stops_with_the_pool() {
    for writer_on in [false, true] {
        let faulty = Faulty::new(Box::new(MemoryStorage::new()));
        let faults = faulty.controller();
        let mut config = PoolConfig::new(64).wal_hook(|_| Ok(()));
        if writer_on {
            config = config.background_writer(
                WriterConfig::default()
                    .clean_ahead_percent(50)
                    .interval(std::time::Duration::from_millis(1)),
            );
        }
        let pool = BufferPool::open(config).unwrap();
        let file = pool.open_storage(Box::new(faulty)).unwrap();
        for n in 0..256u64 {
            pool.allocate(file).unwrap().1.store_u64(0, n).unwrap();
        }
        pool.flush_all().unwrap();
        let before = pool.stats();
        faults.set_probability(
            IoOp::Read,
            FaultKind::Latency(Duration::from_micros(300)),
            1.0,
            1,
        );
        let mut rng = common::Rng::new(7);
        for op in 0..1500 {
            let page_id = PageId::new(file, rng.below(256));
            let mut page = pool.write(page_id).unwrap();
            let n = page.view().load_u64(0).unwrap();
            assert_eq!(n % 256, page_id.page_no());
            page.store_u64(0, n + 256).unwrap();
            drop(page);
            // The writer is a thread of its own: on a loaded machine (CI
            // runs tests side by side) it may not be scheduled for a
            // while. Let it run two passes every 8 operations, as a disk
            // slower than this one would.
            if writer_on && op % 8 == 7 {
                let passes = pool.stats().writer_passes;
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while pool.stats().writer_passes < passes + 2
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        let stats = pool.stats();
        let write_backs = stats.write_backs - before.write_backs;
        let by_faulting = stats.eviction_write_backs - before.eviction_write_backs;
        assert!(write_backs > 500, "{stats:?}");
        eprintln!(
            "writer {writer_on}: {by_faulting} of {write_backs} write-backs by faulting threads"
        );
        if writer_on {
            assert!(
                by_faulting * 4 < write_backs,
                "faulting threads did {by_faulting} of {write_backs} write-backs: {stats:?}"
            );
            assert!(stats.writer_write_backs > 0 && stats.writer_passes > 0);
        } else {
            assert_eq!(by_faulting, write_backs);
            assert_eq!(stats.writer_passes, 0);
        }
        pool.close().unwrap();
    }
}

#[test]
fn write_new_restores_a_torn_page_that_every_other_access_refuses() {
    let memory = Arc::new(MemoryStorage::new());
    {
        let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
        let file = pool.open_storage(Box::new(Arc::clone(&memory))).unwrap();
        for n in 0..4u64 {
            pool.allocate(file).unwrap().1.store_u64(0, n).unwrap();
        }
        pool.close().unwrap();
    }
    // Tear page 2: half of it overwritten.
    let mut torn = pagepool_page();
    memory.read_page(2, &mut torn.0).unwrap();
    torn.0[..2048].fill(0xAB);
    memory.write_page(2, &torn.0).unwrap();

    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let file = pool.open_storage(Box::new(Arc::clone(&memory))).unwrap();
    let torn_id = PageId::new(file, 2);
    assert!(matches!(pool.read(torn_id), Err(Error::Corrupt { .. })));
    assert!(matches!(pool.write(torn_id), Err(Error::Corrupt { .. })));
    let mut page = pool.write_new(torn_id).unwrap();
    assert_eq!(page.view().load_u64(0).unwrap(), 0, "handed out zeroed");
    page.store_u64(0, 2).unwrap();
    page.set_lsn(9);
    drop(page);
    assert_eq!(pool.min_recovery_lsn(), Some(9));
    // Past the end: the file grows to it; extend_file grows it further.
    pool.write_new(PageId::new(file, 9))
        .unwrap()
        .store_u64(0, 9)
        .unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 10);
    pool.extend_file(file, 12).unwrap();
    pool.extend_file(file, 5).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 12);
    pool.close().unwrap();

    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let file = pool.open_storage(Box::new(Arc::clone(&memory))).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 12);
    for (page_no, value) in [(0, 0), (2, 2), (3, 3), (9, 9), (5, 0), (11, 0)] {
        let got = pool.read(PageId::new(file, page_no)).unwrap();
        assert_eq!(u64::from_le_bytes(got[..8].try_into().unwrap()), value);
    }
}

/// Through io_uring: a flush's batches are written by the ring (many
/// writes in flight) and read back right after a reopen.
#[test]
fn ring_writes_round_trip_through_a_direct_file() {
    let dir = common::scratch_dir("ring-writes");
    let path = dir.join("data.db");
    let config = || PoolConfig::new(512).io_engine(IoEngine::Auto);
    {
        let pool = BufferPool::open(config()).unwrap();
        let file = pool.open_file(&path).unwrap();
        for n in 0..300u64 {
            let (_, mut page) = pool.allocate(file).unwrap();
            page.store_u64(0, n * 3).unwrap();
            page.set_lsn(n);
        }
        pool.flush_all().unwrap();
        let stats = pool.stats();
        assert!(
            stats.write_batches >= 5 && stats.eviction_write_backs == 0,
            "{stats:?}"
        );
        pool.close().unwrap();
    }
    // Read back with the plain file, not the ring.
    let file = DirectFile::open(&path, IoMode::Direct).unwrap();
    assert_eq!(file.page_count().unwrap(), 300);
    let mut page = pagepool_page();
    for n in 0..300u64 {
        file.read_page(n, &mut page.0).unwrap();
        assert_eq!(u64::from_le_bytes(page.0[..8].try_into().unwrap()), n * 3);
        assert_eq!(lsn_of(&page.0), n);
    }
}

/// The background writer meets failing writes (EIO, ENOSPC) and a failing
/// sync while threads keep changing pages that are being evicted: nothing
/// is lost, and once the faults stop a flush writes everything.
#[test]
fn faults_in_the_background_writers_batches_lose_nothing() {
    let memory = Arc::new(MemoryStorage::new());
    let faulty = Faulty::new(Box::new(Arc::clone(&memory)));
    let faults = faulty.controller();
    faults.set_volatile_cache(true);
    let config = PoolConfig::new(32).wal_hook(|_| Ok(())).background_writer(
        WriterConfig::default()
            .clean_ahead_percent(100)
            .interval(std::time::Duration::from_millis(1))
            .batch_pages(8),
    );
    let pool = BufferPool::open(config).unwrap();
    let file = pool.open_storage(Box::new(faulty)).unwrap();
    const PAGES: u64 = 128;
    for n in 0..PAGES {
        pool.allocate(file).unwrap().1.store_u64(0, n).unwrap();
    }
    pool.flush_all().unwrap();
    faults.set_probability(IoOp::Write, FaultKind::Eio, 0.2, 11);
    faults.set_probability(IoOp::Write, FaultKind::NoSpace, 0.1, 12);
    faults.set_probability(IoOp::Sync, FaultKind::Eio, 0.3, 13);
    let mut expected: Vec<u64> = (0..PAGES).collect();
    let mut rng = common::Rng::new(5);
    let mut errors = 0;
    for round in 0..3000u64 {
        let page_no = rng.below(PAGES);
        // A faulting thread may meet a write error evicting a dirty victim
        // (the writer could not clean it): the change is not made, and
        // nothing is lost.
        match pool.write(PageId::new(file, page_no)) {
            Ok(mut page) => {
                let value = round * PAGES + page_no;
                page.store_u64(0, value).unwrap();
                expected[page_no as usize] = value;
            }
            Err(Error::Write { .. } | Error::WalHook { .. } | Error::Sync { .. }) => errors += 1,
            Err(error) => panic!("{error}"),
        }
        // A checkpoint now and then: its writes and its sync may fail, and
        // a failed sync loses what it covered (a volatile cache).
        if round % 500 == 499 {
            match pool.flush_until(u64::MAX) {
                Ok(()) => {}
                Err(Error::Write { .. } | Error::Sync { .. }) => errors += 1,
                Err(error) => panic!("{error}"),
            }
        }
    }
    let stats = pool.stats();
    assert!(stats.writer_write_backs > 0, "{stats:?}");
    assert!(faults.stats().faults() > 0 && errors > 0);
    eprintln!(
        "{errors} errors met; {:?}; writer {} of {} write-backs",
        faults.stats(),
        stats.writer_write_backs,
        stats.write_backs
    );
    faults.clear();
    pool.flush_all().unwrap();
    assert!(pool.dirty_pages().is_empty());
    pool.close().unwrap();
    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let file = pool.open_storage(Box::new(Arc::clone(&memory))).unwrap();
    for (page_no, &value) in expected.iter().enumerate() {
        let page = pool.read(PageId::new(file, page_no as u64)).unwrap();
        assert_eq!(
            page.view().load_u64(0).unwrap(),
            value,
            "page {page_no} ({errors} errors met)"
        );
    }
}

/// A paced checkpoint writes no faster than its rate (a lower bound on
/// its length: sleeping, not speed).
#[test]
fn a_paced_checkpoint_keeps_to_its_rate() {
    let pool = BufferPool::open(
        PoolConfig::new(256)
            .checkpoint_pages_in_flight(4)
            .checkpoint_pages_per_sec(1000),
    )
    .unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    for lsn in 1..=100 {
        pool.allocate(file).unwrap().1.set_lsn(lsn);
    }
    let started = std::time::Instant::now();
    pool.flush_until(101).unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(90),
        "100 pages at 1000/s in {took:?}"
    );
    assert!(pool.stats().checkpoint_pace_waits > 0);
    assert_eq!(pool.min_recovery_lsn(), None);
    // flush_all is not paced.
    for lsn in 1..=100 {
        pool.allocate(file).unwrap().1.set_lsn(lsn);
    }
    pool.flush_all().unwrap();
    assert_eq!(pool.min_recovery_lsn(), None);
}

/// A checkpoint paced by a share of the device, on a pool nobody else
/// uses: past its first burst it waits until the device looks idle (no
/// read for 5 ms), once, then writes the rest unpaced. It ends (within a
/// deadline: a wait for reads that never come would hang), its waits are
/// counted, and the pages are clean. An unpaced one never waits.
#[test]
fn a_share_paced_checkpoint_on_an_idle_pool_waits_once_and_ends() {
    for share_pct in [20, 100] {
        let pool = Arc::new(
            BufferPool::open(
                PoolConfig::new(256)
                    .checkpoint_pages_in_flight(4)
                    .checkpoint_io_share_pct(share_pct),
            )
            .unwrap(),
        );
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let (done, ended) = std::sync::mpsc::channel();
        let checkpoints = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                for round in 0..4u64 {
                    for lsn in 1..=40 {
                        pool.allocate(file).unwrap().1.set_lsn(round * 100 + lsn);
                    }
                    pool.flush_until(round * 100 + 101).unwrap();
                    assert_eq!(pool.min_recovery_lsn(), None, "round {round}");
                    assert!(pool.dirty_pages().is_empty(), "round {round}");
                }
                done.send(()).unwrap();
            })
        };
        match ended.recv_timeout(Duration::from_secs(20)) {
            Ok(()) => checkpoints.join().unwrap(),
            // The checkpoints' thread failed: its panic is the error.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => checkpoints.join().unwrap(),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "four checkpoints of an idle pool at a {share_pct} % share did not end in 20 s"
                )
            }
        }
        let waits = pool.stats().checkpoint_pace_waits;
        if share_pct == 100 {
            assert_eq!(waits, 0, "unpaced checkpoints waited");
        } else {
            // Each checkpoint, past its 16-page burst with no read seen,
            // waits for the device to look idle.
            assert!(
                waits >= 4,
                "{waits} waits: the share did not pace the checkpoints"
            );
        }
        Arc::try_unwrap(pool).ok().unwrap().close().unwrap();
    }
}

/// One exclusive hold that logs two changes: the recovery LSN is the
/// first's, while the page is still latched and after.
#[test]
fn a_hold_that_logs_two_changes_keeps_the_first_lsn() {
    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let (page_id, page) = pool.allocate(file).unwrap();
    drop(page);
    pool.flush_all().unwrap();
    assert_eq!(pool.min_recovery_lsn(), None);
    let mut page = pool.write(page_id).unwrap();
    page.set_lsn(10);
    page.store_u64(0, 1).unwrap();
    page.set_lsn(20);
    assert_eq!(pool.min_recovery_lsn(), Some(10), "while latched");
    drop(page);
    assert_eq!(pool.min_recovery_lsn(), Some(10), "after the release");
    // A checkpoint between the two changes' LSNs must write it.
    pool.flush_until(15).unwrap();
    assert_eq!(pool.min_recovery_lsn(), None);
}

/// A write lost by a failed sync, then a later change of the page: the
/// page's recovery LSN stays the lost write's, so a checkpoint between the
/// two writes it again.
#[test]
fn a_write_lost_by_a_failed_sync_keeps_its_recovery_lsn() {
    let memory = Arc::new(MemoryStorage::new());
    let faulty = Faulty::new(Box::new(Arc::clone(&memory)));
    let faults = faulty.controller();
    faults.set_volatile_cache(true);
    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let file = pool.open_storage(Box::new(faulty)).unwrap();
    let (page_id, page) = pool.allocate(file).unwrap();
    drop(page);
    pool.flush_all().unwrap();
    let mut page = pool.write(page_id).unwrap();
    page.store_u64(0, 10).unwrap();
    page.set_lsn(10);
    drop(page);
    faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
    assert!(matches!(pool.flush_all(), Err(Error::Sync { .. })));
    assert_eq!(faults.stats().lost_writes, 1);
    let mut page = pool.write(page_id).unwrap();
    page.store_u64(0, 50).unwrap();
    page.set_lsn(50);
    drop(page);
    assert_eq!(pool.min_recovery_lsn(), Some(10));
    pool.flush_until(30).unwrap();
    let stored = store_page(&memory, page_id.page_no());
    assert_eq!(
        lsn_of(&stored),
        50,
        "the lost change 10 was not written again"
    );
    assert_eq!(pool.min_recovery_lsn(), None);
}

/// A discarded dirty page leaves no recovery LSN behind on its frame.
#[test]
fn a_discarded_page_leaves_no_recovery_lsn_to_the_next_tenant() {
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    for _ in 0..4 {
        drop(pool.allocate(file).unwrap());
    }
    pool.flush_all().unwrap();
    let mut page = pool.write(PageId::new(file, 0)).unwrap();
    page.set_lsn(5);
    pool.discard(page);
    assert_eq!(pool.min_recovery_lsn(), None);
    // Its frame goes to other pages, clean (both frames, several times).
    for round in 0..4 {
        for page_no in 1..4 {
            drop(pool.read(PageId::new(file, page_no)).unwrap());
            assert_eq!(pool.dirty_pages(), vec![], "round {round}, page {page_no}");
        }
    }
    pool.flush_all().unwrap();
    assert_eq!(pool.dirty_pages(), vec![]);
}

/// An extension that cannot latch its last page (every frame latched)
/// fails with the error and leaves the page count where it was, so that
/// redo can retry it; an allocation beside it is never touched.
#[test]
fn a_failed_extend_file_gives_the_page_count_back() {
    let config = PoolConfig::new(2).frame_wait_timeout(Duration::from_millis(50));
    let pool = BufferPool::open(config).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let (first, mut a) = pool.allocate(file).unwrap();
    a.store_u64(0, 1).unwrap();
    let (_, b) = pool.allocate(file).unwrap();
    // Both frames latched by this thread: write_new finds no frame.
    let err = pool.extend_file(file, 10).unwrap_err();
    assert!(matches!(err, Error::NoFreeFrame { .. }), "{err}");
    assert_eq!(pool.page_count(file).unwrap(), 2, "the count went back");
    drop((a, b));
    pool.extend_file(file, 10).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 10);
    assert_eq!(pool.optimistic(first, |v| v.load_u64(0)).unwrap(), Ok(1));
    let (next, _) = pool.allocate(file).unwrap();
    assert_eq!(next.page_no(), 10, "allocations go past the extension");
}
