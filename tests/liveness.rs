//! Liveness: every wait ends. A call that could only wait for its own
//! thread is an error; a panic in user code (a `Storage`, the WAL hook, an
//! optimistic closure, code holding a guard) leaves no page wedged; and no
//! thread waits while an optimistic read's pin holds reclamation back.
//!
//! Each scenario runs on its own thread under a watchdog ([`within`]), and
//! the pools wait for latches at most a few seconds, so a regression fails
//! the test instead of hanging the suite.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use pagepool::heap::HeapPageMut;
use pagepool::{BufferPool, Error, FileId, GuardKind, MemoryStorage, PageId, PoolConfig, Storage};

/// Runs `scenario` on a thread of its own and fails if it does not finish
/// within `seconds` (a hung thread is left behind; the test fails).
fn within<T: Send + 'static>(seconds: u64, scenario: impl FnOnce() -> T + Send + 'static) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(scenario));
        let _ = done_tx.send(());
        result
    });
    match done_rx.recv_timeout(Duration::from_secs(seconds)) {
        Ok(()) => match thread.join().expect("the scenario thread") {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(_) => panic!("the scenario did not finish within {seconds} s: it hangs"),
    }
}

/// A short latch wait, so that a wait that should not happen ends the test
/// with `LatchTimeout` rather than the watchdog.
fn config(frames: usize) -> PoolConfig {
    PoolConfig::new(frames).latch_wait_timeout(std::time::Duration::from_millis(3_000))
}

/// In-memory storage that panics on its next reads, writes or syncs when
/// told to, and can hold a read until released.
#[derive(Debug, Default)]
struct Panicky {
    inner: MemoryStorage,
    panic_reads: AtomicU32,
    panic_writes: AtomicU32,
    panic_syncs: AtomicU32,
    /// When set, the next read announces itself and waits for the signal.
    hold_read: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Storage for Panicky {
    fn page_count(&self) -> io::Result<u64> {
        self.inner.page_count()
    }

    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        let hold = self.hold_read.lock().unwrap().take();
        if let Some((inside, release)) = hold {
            inside.send(()).unwrap();
            release.recv().unwrap();
        }
        if take_one(&self.panic_reads) {
            panic!("injected: read_page panics");
        }
        self.inner.read_page(page_no, buf)
    }

    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        if take_one(&self.panic_writes) {
            panic!("injected: write_page panics");
        }
        self.inner.write_page(page_no, buf)
    }

    fn sync(&self) -> io::Result<()> {
        if take_one(&self.panic_syncs) {
            panic!("injected: sync panics");
        }
        self.inner.sync()
    }
}

/// A pool over `storage` holding `pages` pages, page `n` holding `n` in
/// its first word, written and synced, then reopened so that every access
/// loads.
fn reopened(
    storage: &Arc<Panicky>,
    frames: usize,
    pages: u64,
    cfg: PoolConfig,
) -> (Arc<BufferPool>, FileId) {
    {
        let setup = BufferPool::open(PoolConfig::new(pages as usize)).unwrap();
        let file = setup.open_storage(Box::new(storage.clone())).unwrap();
        for n in 0..pages {
            let (_, mut page) = setup.allocate(file).unwrap();
            page.store_u64(0, n).unwrap();
        }
        setup.close().unwrap();
    }
    let mut cfg = cfg;
    cfg.frames = frames;
    let pool = BufferPool::open(cfg).unwrap();
    let file = pool.open_storage(Box::new(storage.clone())).unwrap();
    (Arc::new(pool), file)
}

fn word0(pool: &BufferPool, page_id: PageId) -> u64 {
    pool.optimistic(page_id, |view| view.load_u64(0).unwrap())
        .unwrap()
}

fn assert_self_deadlock(err: Error, page_id: PageId, held: GuardKind, wanted: GuardKind) {
    match err {
        Error::SelfDeadlock {
            page_id: p,
            held: h,
            wanted: w,
        } if (p, h, w) == (page_id, held, wanted) => {}
        other => panic!("expected SelfDeadlock({held} held, {wanted} wanted), got: {other}"),
    }
}

// ---- calls that would wait for their own thread -------------------------

#[test]
fn write_while_holding_a_shared_guard_is_an_error_not_a_hang() {
    let storage = Arc::new(Panicky::default());
    let (pool, file) = reopened(&storage, 4, 2, config(4));
    let p = PageId::new(file, 0);
    within(10, move || {
        let shared = pool.read(p).unwrap();
        let err = pool.write(p).map(|_| ()).unwrap_err();
        assert_self_deadlock(err, p, GuardKind::Shared, GuardKind::Exclusive);
        let again = pool.read(p).expect("a second shared guard is fine");
        drop((shared, again));
        pool.write(p).unwrap().store_u64(0, 9).unwrap();
        assert_eq!(word0(&pool, p), 9);
    });
}

#[test]
fn reads_while_holding_the_page_mut_error_or_see_the_writers_page() {
    let storage = Arc::new(Panicky::default());
    let (pool, file) = reopened(&storage, 4, 2, config(4));
    let p = PageId::new(file, 1);
    within(10, move || {
        let mut page = pool.write(p).unwrap();
        page.store_u64(0, 77).unwrap();
        let err = pool.read(p).map(|_| ()).unwrap_err();
        assert_self_deadlock(err, p, GuardKind::Exclusive, GuardKind::Shared);
        let err = pool.write(p).map(|_| ()).unwrap_err();
        assert_self_deadlock(err, p, GuardKind::Exclusive, GuardKind::Exclusive);
        // The optimistic answer is well defined: this thread is the writer.
        let seen = pool
            .optimistic(p, |view| view.load_u64(0).unwrap())
            .unwrap();
        assert_eq!(seen, 77, "the writer reads its own unpublished store");
        let pin = pool.pin_thread();
        assert_eq!(
            pin.optimistic(p, |view| view.load_u64(0).unwrap()).unwrap(),
            77
        );
        drop(pin);
        drop(page);
        assert_eq!(word0(&pool, p), 77);
        // Another page is unaffected.
        assert_eq!(word0(&pool, PageId::new(file, 0)), 0);
    });
}

#[test]
fn flushes_of_pages_the_thread_holds_error_and_the_rest_is_written() {
    let storage = Arc::new(Panicky::default());
    let (pool, file) = reopened(&storage, 8, 4, config(8));
    let [p, q, r, s] = [0, 1, 2, 3].map(|n| PageId::new(file, n));
    within(10, move || {
        for page_id in [p, q] {
            pool.write(page_id).unwrap().store_u64(0, 100).unwrap();
        }
        let shared = pool.read(p).unwrap();
        let err = pool.flush(p).unwrap_err();
        assert_self_deadlock(err, p, GuardKind::Shared, GuardKind::Exclusive);
        let writes = pool.stats().io_writes;
        let err = pool.flush_all().unwrap_err();
        assert_self_deadlock(err, p, GuardKind::Shared, GuardKind::Exclusive);
        assert_eq!(
            pool.stats().io_writes,
            writes + 1,
            "q was written, p was not"
        );
        drop(shared);
        pool.flush(p).unwrap();
        assert_eq!(pool.stats().io_writes, writes + 2);
        // A clean page under this thread's shared guard needs nothing.
        let shared = pool.read(r).unwrap();
        pool.flush(r).unwrap();
        drop(shared);
        // Under its exclusive guard the page's state is the guard's
        // business: flushing it is refused.
        let mut page = pool.write(s).unwrap();
        page.store_u64(0, 5).unwrap();
        let err = pool.flush(s).unwrap_err();
        assert_self_deadlock(err, s, GuardKind::Exclusive, GuardKind::Exclusive);
        drop(page);
        pool.flush_all().unwrap();
    });
    let (pool, file) = {
        let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
        let file = pool.open_storage(Box::new(storage.clone())).unwrap();
        (pool, file)
    };
    for (n, expected) in [(0, 100), (1, 100), (2, 2), (3, 5)] {
        assert_eq!(
            word0(&pool, PageId::new(file, n)),
            expected,
            "page {n} on disk"
        );
    }
}

#[test]
fn a_closure_that_writes_its_own_page_under_the_fallback_gets_an_error() {
    let storage = Arc::new(Panicky::default());
    let (pool, file) = reopened(&storage, 4, 1, config(4).optimistic_retries(0));
    let p = PageId::new(file, 0);
    within(10, move || {
        assert_eq!(
            word0(&pool, p),
            0,
            "resident, so the first run is optimistic"
        );
        let mut runs = 0;
        let outcome = pool
            .optimistic(p, |_view| {
                runs += 1;
                if runs == 1 {
                    // Another thread's write makes this run fail validation,
                    // so the next one runs under the shared latch.
                    std::thread::scope(|s| {
                        s.spawn(|| pool.write(p).unwrap().store_u64(0, 1).unwrap());
                    });
                    return None;
                }
                Some(pool.write(p).map(|_| ()))
            })
            .unwrap();
        assert_eq!(runs, 2);
        let err = outcome.expect("the fallback run").unwrap_err();
        assert_self_deadlock(err, p, GuardKind::Shared, GuardKind::Exclusive);
        assert_eq!(pool.stats().optimistic_fallbacks, 1);
        pool.write(p).unwrap().store_u64(0, 2).unwrap();
    });
}

// ---- panics in user code -----------------------------------------------

fn panics<T>(call: impl FnOnce() -> T) -> bool {
    catch_unwind(AssertUnwindSafe(call)).is_err()
}

#[test]
fn a_storage_read_that_panics_leaves_the_page_loadable_and_wakes_its_waiters() {
    let storage = Arc::new(Panicky::default());
    let (pool, file) = reopened(&storage, 4, 2, config(4));
    let p = PageId::new(file, 1);
    let storage2 = Arc::clone(&storage);
    within(20, move || {
        storage2.panic_reads.store(1, Ordering::SeqCst);
        assert!(panics(|| pool.read(p)));
        assert_eq!(word0(&pool, p), 1, "loaded again after the panic");

        // Now with a waiter parked on the load that panics.
        let pool2 = BufferPool::open(config(4)).unwrap();
        let file2 = pool2.open_storage(Box::new(storage2.clone())).unwrap();
        let p2 = PageId::new(file2, 1);
        let pool2 = Arc::new(pool2);
        let (inside_tx, inside_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *storage2.hold_read.lock().unwrap() = Some((inside_tx, release_rx));
        storage2.panic_reads.store(1, Ordering::SeqCst);
        let loader = {
            let pool2 = Arc::clone(&pool2);
            std::thread::spawn(move || panics(|| pool2.read(p2)))
        };
        inside_rx.recv().unwrap();
        let waiter = {
            let pool2 = Arc::clone(&pool2);
            std::thread::spawn(move || word0(&pool2, p2))
        };
        // Give the waiter time to find the frame latched and park.
        std::thread::sleep(Duration::from_millis(100));
        release_tx.send(()).unwrap();
        assert!(loader.join().unwrap(), "the loader's storage panicked");
        assert_eq!(
            waiter.join().unwrap(),
            1,
            "the waiter loaded the page itself"
        );
    });
}

/// A WAL hook that panics while `armed`, else accepts.
fn panicking_hook(armed: &Arc<AtomicBool>) -> impl Fn(u64) -> io::Result<()> + Send + Sync {
    let armed = Arc::clone(armed);
    move |_lsn| {
        if armed.load(Ordering::SeqCst) {
            panic!("injected: the WAL hook panics");
        }
        Ok(())
    }
}

#[test]
fn a_wal_hook_that_panics_during_eviction_keeps_the_page_dirty_and_resident() {
    let storage = Arc::new(Panicky::default());
    let armed = Arc::new(AtomicBool::new(false));
    let cfg = config(2).wal_hook(panicking_hook(&armed)).evict_batch(1);
    let (pool, file) = reopened(&storage, 2, 3, cfg);
    let [p, q, r] = [0, 1, 2].map(|n| PageId::new(file, n));
    let storage2 = Arc::clone(&storage);
    within(20, move || {
        for page_id in [p, q] {
            let mut page = pool.write(page_id).unwrap();
            page.store_u64(0, 50 + page_id.page_no()).unwrap();
            page.set_lsn(7);
        }
        armed.store(true, Ordering::SeqCst);
        // Loading r must evict a dirty page: its hook panics.
        assert!(panics(|| pool.read(r)));
        armed.store(false, Ordering::SeqCst);
        // Both dirty pages are still there and reachable.
        assert_eq!(word0(&pool, p), 50);
        assert_eq!(word0(&pool, q), 51);
        pool.write(q).unwrap().store_u64(8, 1).unwrap();
        assert_eq!(word0(&pool, r), 2);
        pool.flush_all().unwrap();
        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = pool.open_storage(Box::new(storage2)).unwrap();
        assert_eq!(word0(&pool, PageId::new(file, 0)), 50);
        assert_eq!(word0(&pool, PageId::new(file, 1)), 51);
    });
}

#[test]
fn a_wal_hook_or_a_storage_that_panics_during_a_flush_loses_nothing() {
    let storage = Arc::new(Panicky::default());
    let armed = Arc::new(AtomicBool::new(false));
    let (pool, file) = reopened(&storage, 4, 2, config(4).wal_hook(panicking_hook(&armed)));
    let p = PageId::new(file, 0);
    let storage2 = Arc::clone(&storage);
    within(20, move || {
        let mut page = pool.write(p).unwrap();
        page.store_u64(0, 1234).unwrap();
        page.set_lsn(3);
        drop(page);
        // The hook panics while the flush holds the page exclusively.
        armed.store(true, Ordering::SeqCst);
        assert!(panics(|| pool.flush(p)));
        armed.store(false, Ordering::SeqCst);
        assert_eq!(word0(&pool, p), 1234, "the latch was released");
        // The write panics while the flush holds it shared.
        storage2.panic_writes.store(1, Ordering::SeqCst);
        assert!(panics(|| pool.flush(p)));
        pool.write(p).unwrap().store_u64(8, 1).unwrap();
        // The sync panics: what it covered is written again.
        storage2.panic_syncs.store(1, Ordering::SeqCst);
        assert!(panics(|| pool.flush_all()));
        pool.flush_all().unwrap();
        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = pool.open_storage(Box::new(storage2)).unwrap();
        assert_eq!(
            word0(&pool, PageId::new(file, 0)),
            1234,
            "still dirty after each panic"
        );
    });
}

#[test]
fn an_optimistic_closure_or_a_guard_holder_that_panics_wedges_nothing() {
    let storage = Arc::new(Panicky::default());
    let (pool, file) = reopened(&storage, 4, 2, config(4));
    let [p, q] = [0, 1].map(|n| PageId::new(file, n));
    within(20, move || {
        assert!(panics(|| pool.optimistic(p, |_| panic!("user closure"))));
        {
            let pin = pool.pin_thread();
            assert!(panics(|| pin.optimistic(p, |_| panic!("user closure"))));
            assert_eq!(pin.optimistic(p, |v| v.load_u64(0).unwrap()).unwrap(), 0);
        }
        // A panic under the shared-latch fallback (a miss runs it there).
        assert!(panics(|| pool.optimistic(q, |_| panic!("user closure"))));
        pool.write(q).unwrap().store_u64(0, 3).unwrap();
        // A panic while heap code holds the page exclusively.
        assert!(panics(|| {
            let mut page = pool.write(p).unwrap();
            let mut heap = HeapPageMut::init(&mut page).unwrap();
            heap.insert(b"a record").unwrap();
            panic!("user code holding a heap page");
        }));
        let mut page = pool.write(p).expect("the latch was released");
        HeapPageMut::init(&mut page).unwrap();
        drop(page);
        assert_eq!(word0(&pool, q), 3);
        pool.flush_all().unwrap();
    });
}

// ---- nothing waits while pinned -------------------------------------------

/// A thread holding a `ThreadPin` flushes a dirty page whose WAL hook
/// blocks until another thread has completed a miss that needs a frame
/// back from the epoch. If the hook ran pinned, the epoch could not pass
/// the flushing thread and the miss would run out of frames.
#[test]
fn the_wal_hook_runs_unpinned() {
    let storage = Arc::new(Panicky::default());
    let (miss_tx, miss_rx) = mpsc::channel::<pagepool::Result<u64>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let miss_rx = Mutex::new(miss_rx);
    let first = AtomicBool::new(true);
    let hook = move |_lsn| {
        if !first.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        go_tx.send(()).unwrap();
        let outcome = miss_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(io::Error::other(format!(
                "the concurrent miss failed: {err}"
            ))),
            Err(_) => Err(io::Error::other("the concurrent miss never finished")),
        }
    };
    let cfg = config(2)
        .wal_hook(hook)
        .frame_wait_timeout(std::time::Duration::from_millis(2_000))
        .evict_batch(1);
    let (pool, file) = reopened(&storage, 2, 3, cfg);
    let [p, q, r] = [0, 1, 2].map(|n| PageId::new(file, n));
    within(30, move || {
        pool.write(p).unwrap().store_u64(0, 8).unwrap();
        assert_eq!(word0(&pool, q), 1);
        let other = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                go_rx.recv().unwrap();
                // The pool is full (p latched by the flush, q resident):
                // q is evicted, and its frame must come back through the
                // epoch while the flushing thread is inside the hook.
                let _ = miss_tx.send(pool.optimistic(r, |v| v.load_u64(0).unwrap()));
            })
        };
        let pin = pool.pin_thread();
        pool.flush(p)
            .expect("the miss completed while the hook ran");
        drop(pin);
        other.join().unwrap();
    });
}

/// The same through a `ThreadPin`, whose hits lean on its session pin
/// (no guard of their own): a nested call that would wait must not
/// suspend the session pin under the read.
#[test]
fn a_call_that_would_wait_inside_a_thread_pins_optimistic_closure_is_refused() {
    let storage = Arc::new(Panicky::default());
    let cfg = config(2)
        .frame_wait_timeout(std::time::Duration::from_millis(5_000))
        .evict_batch(1);
    let (pool, file) = reopened(&storage, 2, 3, cfg);
    let [p, q, r] = [0, 1, 2].map(|n| PageId::new(file, n));
    within(30, move || {
        assert_eq!(word0(&pool, p), 0);
        assert_eq!(word0(&pool, q), 1);
        let pin = pool.pin_thread();
        let nested = pin
            .optimistic(p, |_| pin.read(r).map(|page| page.page_id()))
            .unwrap();
        assert!(
            matches!(nested, Err(Error::WouldBlockWhilePinned { page_id: Some(page) }) if page == r),
            "{nested:?}"
        );
        let nested = pin.optimistic_try(p, |_| pool.read(r).map(|page| page.page_id()));
        assert!(
            matches!(nested, Err(Error::WouldBlockWhilePinned { page_id: Some(page) }) if page == r),
            "{nested:?}"
        );
        // Nested session reads, and a nested hit, are fine.
        let nested = pin
            .optimistic(p, |_| pin.optimistic(q, |view| view.load_u64(0)))
            .unwrap();
        assert_eq!(nested.unwrap().unwrap(), 1);
        let nested = pin
            .optimistic(p, |_| pin.read(q).map(|page| page[0]))
            .unwrap();
        assert_eq!(nested.unwrap(), 1);
        drop(pin);
        // Outside the closure the same call works.
        assert_eq!(word0(&pool, r), 2);
    });
}

#[test]
fn a_call_that_would_wait_inside_an_optimistic_closure_is_refused() {
    let storage = Arc::new(Panicky::default());
    let cfg = config(2)
        .frame_wait_timeout(std::time::Duration::from_millis(5_000))
        .evict_batch(1);
    let (pool, file) = reopened(&storage, 2, 3, cfg);
    let [p, q, r] = [0, 1, 2].map(|n| PageId::new(file, n));
    within(30, move || {
        assert_eq!(word0(&pool, p), 0);
        assert_eq!(word0(&pool, q), 1);
        // A nested miss: it would do I/O (and here evict, and wait for the
        // epoch this closure holds back) under the closure's pin.
        let started = std::time::Instant::now();
        let nested = pool
            .optimistic(p, |_| pool.read(r).map(|page| page.page_id()))
            .unwrap();
        assert!(
            matches!(nested, Err(Error::WouldBlockWhilePinned { page_id: Some(page) }) if page == r),
            "{nested:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused at once, not after a wait"
        );
        // A nested hit is fine.
        let nested = pool
            .optimistic(p, |_| pool.read(q).map(|page| page[0]))
            .unwrap();
        assert_eq!(nested.unwrap(), 1);
        // A nested wait for another thread's latch is refused too.
        let (latched_tx, latched_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let holder = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let page = pool.write(q).unwrap();
                latched_tx.send(()).unwrap();
                done_rx.recv().unwrap();
                drop(page);
            })
        };
        latched_rx.recv().unwrap();
        let nested = pool.optimistic(p, |_| pool.read(q).map(|_| ())).unwrap();
        assert!(
            matches!(nested, Err(Error::WouldBlockWhilePinned { .. })),
            "{nested:?}"
        );
        let nested = pool.optimistic(p, |_| pool.flush_all()).unwrap();
        assert!(matches!(
            nested,
            Err(Error::WouldBlockWhilePinned { page_id: None })
        ));
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        // Outside the closure the same calls work.
        assert_eq!(word0(&pool, r), 2);
        pool.flush_all().unwrap();
    });
}

/// A batch that asks for a page its own thread holds, while a writer
/// waits for that thread's latch: every poll steps aside for the writer,
/// and the wait finds the caller's own latch. The batch must take another
/// shared latch at once and hand it over; spinning until the writer's
/// latch wait times out is the hang this catches (the writer would fail).
#[test]
fn read_many_of_a_page_the_thread_holds_with_a_writer_waiting_ends() {
    within(30, || {
        let pool = Arc::new(BufferPool::open(config(8)).unwrap());
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let (page_id, page) = pool.allocate(file).unwrap();
        drop(page);
        let held = pool.read(page_id).unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let writer = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                started_tx.send(()).unwrap();
                pool.write(page_id)
                    .map(|mut page| page.store_u64(0, 9).unwrap())
            })
        };
        started_rx.recv().unwrap();
        // Let the writer reach its wait (and set PENDING).
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut handed = 0;
        pool.read_many(&[page_id, page_id], |id, page| {
            assert_eq!(id, page_id);
            assert_eq!(page.unwrap().view().load_u64(0).unwrap(), 0);
            handed += 1;
        });
        assert_eq!(handed, 2);
        drop(held);
        writer
            .join()
            .unwrap()
            .expect("the writer got the latch, no timeout");
        assert_eq!(word0(&pool, page_id), 9);
    });
}
