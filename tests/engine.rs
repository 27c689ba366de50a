//! The I/O engines: started reads (prefetch, batched reads) give the same
//! pages, read once each, and the same errors, with every engine.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use pagepool::testing::{FaultController, FaultKind, Faulty, IoOp};
use pagepool::{
    BufferPool, DirectFile, EngineKind, Error, FileId, IoEngine, IoMode, PageId, PoolConfig,
    Storage,
};

const PAGES: u64 = 64;

/// Every engine, with the kind it must run as here (this kernel allows
/// io_uring; a machine that does not skips the uring cases with a note).
fn engines() -> Vec<(IoEngine, EngineKind)> {
    let mut engines = vec![
        (IoEngine::Sync, EngineKind::Sync),
        (IoEngine::Worker, EngineKind::Worker),
    ];
    match BufferPool::open(PoolConfig::new(4).io_engine(IoEngine::Uring)) {
        Ok(_) => engines.push((IoEngine::Uring, EngineKind::Uring)),
        Err(error) => eprintln!("io_uring unavailable here, not tested: {error}"),
    }
    engines
}

/// Writes `PAGES` pages (page `n` holds `n * 1000 + 7` at offset 0) into
/// a fresh file at `path`.
fn make_file(path: &Path) {
    let pool = BufferPool::open(PoolConfig::new(16).io_engine(IoEngine::Sync)).unwrap();
    let file = pool.open_file(path).unwrap();
    for n in 0..PAGES {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        assert_eq!(page_id.page_no(), n);
        page.store_u64(0, n * 1000 + 7).unwrap();
    }
    pool.close().unwrap();
}

fn value(page_id: PageId) -> u64 {
    page_id.page_no() * 1000 + 7
}

fn open(
    engine: IoEngine,
    path: &Path,
    frames: usize,
) -> (BufferPool, FileId, Arc<FaultController>) {
    let pool = BufferPool::open(PoolConfig::new(frames).io_engine(engine)).unwrap();
    let controller = FaultController::new();
    let direct = DirectFile::open(path, IoMode::Direct).unwrap();
    let storage: Box<dyn Storage> = Box::new(Faulty::with_controller(
        Box::new(direct),
        controller.clone(),
    ));
    let file = pool.open_storage(storage).unwrap();
    (pool, file, controller)
}

fn pages(file: FileId) -> Vec<PageId> {
    (0..PAGES).map(|n| PageId::new(file, n)).collect()
}

#[test]
fn auto_runs_uring_here_and_says_so() {
    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let stats = pool.stats();
    // This machine's kernel allows io_uring (kernel.io_uring_disabled = 0).
    if std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").is_ok_and(|v| v.trim() == "0")
    {
        assert_eq!(stats.engine, EngineKind::Uring);
    }
    let sync = BufferPool::open(PoolConfig::new(8).io_engine(IoEngine::Sync)).unwrap();
    assert_eq!(sync.stats().engine, EngineKind::Sync);
    assert!(!sync.stats().fixed_buffers);
}

#[test]
fn prefetched_pages_are_read_once_and_then_hit() {
    let dir = common::scratch_dir("engine-prefetch");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let (pool, file, faults) = open(engine, &path, 128);
        assert_eq!(pool.stats().engine, kind);
        let ids = pages(file);
        let started = pool.prefetch(&ids).unwrap();
        assert_eq!(started as u64, PAGES, "{kind:?}");
        // A second prefetch of the same pages starts nothing.
        assert_eq!(pool.prefetch(&ids).unwrap(), 0, "{kind:?}");
        for &page_id in &ids {
            let got = pool.read(page_id).unwrap().view().load_u64(0).unwrap();
            assert_eq!(got, value(page_id), "{kind:?} {page_id}");
        }
        let stats = pool.stats();
        assert_eq!(
            faults.stats().reads,
            PAGES,
            "{kind:?}: every page read exactly once"
        );
        assert_eq!(stats.io_reads, PAGES, "{kind:?}");
        assert_eq!(stats.read_failures, 0, "{kind:?}");
        pool.close().unwrap();
    }
}

#[test]
fn read_many_hands_every_page_once_hits_first() {
    let dir = common::scratch_dir("engine-read-many");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let (pool, file, faults) = open(engine, &path, 128);
        let ids = pages(file);
        // Pages 0..8 resident before the batch.
        for &page_id in &ids[..8] {
            drop(pool.read(page_id).unwrap());
        }
        // The batch asks for every page, the resident ones last, one twice.
        let mut batch: Vec<PageId> = ids[8..].to_vec();
        batch.extend_from_slice(&ids[..8]);
        batch.push(ids[20]);
        let mut seen = Vec::new();
        pool.read_many(&batch, |page_id, page| {
            let page = page.unwrap();
            assert_eq!(page.page_id(), page_id);
            assert_eq!(page.view().load_u64(0).unwrap(), value(page_id));
            seen.push(page_id);
        });
        assert_eq!(seen.len(), batch.len(), "{kind:?}");
        let distinct: HashSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), PAGES as usize, "{kind:?}");
        if kind != EngineKind::Sync {
            // Resident pages need no read: they come before any miss.
            let first: HashSet<_> = seen[..8].iter().copied().collect();
            let resident: HashSet<_> = ids[..8].iter().copied().collect();
            assert_eq!(first, resident, "{kind:?}: hits first");
        }
        assert_eq!(faults.stats().reads, PAGES, "{kind:?}: one read per page");
        pool.close().unwrap();
    }
}

#[test]
fn a_failed_read_in_a_batch_reaches_its_page_and_no_other() {
    let dir = common::scratch_dir("engine-batch-eio");
    let path = dir.join("data.db");
    make_file(&path);
    for fault in [FaultKind::Eio, FaultKind::Short { bytes: 100 }] {
        for (engine, kind) in engines() {
            let (pool, file, faults) = open(engine, &path, 128);
            let ids = pages(file);
            faults.fail_after(IoOp::Read, 5, fault, 1);
            let mut failed = Vec::new();
            let mut ok = 0;
            pool.read_many(&ids, |page_id, page| match page {
                Ok(page) => {
                    assert_eq!(page.view().load_u64(0).unwrap(), value(page_id));
                    ok += 1;
                }
                Err(error) => {
                    assert!(matches!(error, Error::Read { .. }), "{kind:?}: {error}");
                    assert_eq!(error.page_id(), Some(page_id), "{kind:?}");
                    failed.push(page_id);
                }
            });
            assert_eq!(
                failed.len(),
                1,
                "{kind:?} {fault:?}: exactly the faulty read fails"
            );
            assert_eq!(ok, PAGES - 1, "{kind:?}");
            // Nothing of the failed read was published: reading the page
            // again reads it again, and gets it.
            let again = pool.read(failed[0]).unwrap().view().load_u64(0).unwrap();
            assert_eq!(again, value(failed[0]), "{kind:?}");
            assert_eq!(faults.stats().reads, PAGES + 1, "{kind:?}");
            if kind != EngineKind::Sync {
                assert_eq!(pool.stats().read_failures, 1, "{kind:?}");
            }
            pool.close().unwrap();
        }
    }
}

#[test]
fn a_prefetch_that_fails_leaves_the_page_to_a_later_read() {
    let dir = common::scratch_dir("engine-prefetch-eio");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        if kind == EngineKind::Sync {
            continue; // its prefetch reads at once and reports the error
        }
        let (pool, file, faults) = open(engine, &path, 128);
        let ids = pages(file);
        faults.fail_next(IoOp::Read, FaultKind::Eio, 1);
        pool.prefetch(&ids[..1]).unwrap();
        // The read of page 0 failed in the engine; a read of it reads it
        // again (or waits for the failing read and then reads again).
        let got = pool.read(ids[0]).unwrap().view().load_u64(0).unwrap();
        assert_eq!(got, value(ids[0]), "{kind:?}");
        assert_eq!(faults.stats().reads, 2, "{kind:?}");
        pool.close().unwrap();
    }
}

#[test]
fn a_corrupt_page_in_a_batch_is_an_error_for_that_page() {
    let dir = common::scratch_dir("engine-corrupt");
    let path = dir.join("data.db");
    make_file(&path);
    // Flip a byte of page 3 on disk.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_at(&[0xEE], 3 * 4096 + 100).unwrap();
    }
    for (engine, kind) in engines() {
        let (pool, file, _faults) = open(engine, &path, 128);
        let ids = pages(file);
        let mut corrupt = Vec::new();
        pool.read_many(&ids, |page_id, page| {
            if let Err(error) = page {
                assert!(matches!(error, Error::Corrupt { .. }), "{kind:?}: {error}");
                corrupt.push(page_id);
            }
        });
        assert_eq!(corrupt, vec![ids[3]], "{kind:?}");
        drop(pool);
    }
}

#[test]
fn bad_page_ids_are_refused_before_anything_starts() {
    let dir = common::scratch_dir("engine-bad-ids");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let (pool, file, faults) = open(engine, &path, 16);
        let bad = PageId::new(file, PAGES + 5);
        let err = pool.prefetch(&[PageId::new(file, 1), bad]).unwrap_err();
        assert!(
            matches!(err, Error::PageOutOfRange { .. }),
            "{kind:?}: {err}"
        );
        assert_eq!(faults.stats().reads, 0, "{kind:?}");
        let mut errors = 0;
        pool.read_many(&[bad, PageId::new(file, 2)], |page_id, page| {
            if page_id == bad {
                assert!(matches!(page, Err(Error::PageOutOfRange { .. })));
                errors += 1;
            } else {
                drop(page.unwrap());
            }
        });
        assert_eq!(errors, 1);
    }
}

#[test]
fn a_pool_dropped_with_reads_in_flight_ends_them_first() {
    let dir = common::scratch_dir("engine-drop-in-flight");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        for _ in 0..20 {
            let (pool, file, faults) = open(engine, &path, 128);
            faults.fail_next(
                IoOp::Read,
                FaultKind::Latency(std::time::Duration::from_millis(1)),
                4,
            );
            pool.prefetch(&pages(file)).unwrap();
            drop(pool);
        }
        eprintln!("{kind:?}: dropped with reads in flight, 20 times");
    }
}

#[test]
fn a_batch_larger_than_the_pool_still_reads_every_page() {
    let dir = common::scratch_dir("engine-small-pool");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        // 8 frames for 64 pages: the batch's own pages are evicted to
        // make room for the rest, and come back when their turn comes.
        let (pool, file, _faults) = open(engine, &path, 8);
        let mut seen = 0;
        pool.read_many(&pages(file), |page_id, page| {
            let page = page.unwrap();
            assert_eq!(page.view().load_u64(0).unwrap(), value(page_id), "{kind:?}");
            seen += 1;
        });
        assert_eq!(seen, PAGES, "{kind:?}");
    }
}

/// A prefetch of more pages than the pool has frames: once every frame
/// holds a read it started, the next needs a frame that only those reads
/// can give back, so it must have handed them to the engine first (or it
/// waits for itself until `NoFreeFrame`).
#[test]
fn a_prefetch_larger_than_the_pool_does_not_wait_for_itself() {
    let dir = common::scratch_dir("engine-prefetch-large");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let pool = BufferPool::open(
            PoolConfig::new(8)
                .io_engine(engine)
                .frame_wait_timeout(std::time::Duration::from_millis(3_000)),
        )
        .unwrap();
        let file = pool.open_file(&path).unwrap();
        let started = pool.prefetch(&pages(file));
        assert_eq!(started.unwrap() as u64, PAGES, "{kind:?}");
        let last = PageId::new(file, PAGES - 1);
        assert_eq!(
            pool.read(last).unwrap().view().load_u64(0).unwrap(),
            value(last)
        );
    }
}

#[test]
fn a_scan_reads_every_page_once_in_order() {
    let dir = common::scratch_dir("engine-scan");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let (pool, file, faults) = open(engine, &path, 32);
        let mut seen = Vec::new();
        pool.scan(file, 0..PAGES, 8, |page_id, page| {
            assert_eq!(page.unwrap().view().load_u64(0).unwrap(), value(page_id));
            seen.push(page_id.page_no());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, (0..PAGES).collect::<Vec<_>>(), "{kind:?}");
        assert_eq!(faults.stats().reads, PAGES, "{kind:?}: one read per page");
        // A range past the end is refused before anything is read.
        let err = pool.scan(file, 0..PAGES + 1, 8, |_, _| {
            std::ops::ControlFlow::Continue(())
        });
        assert!(matches!(err, Err(Error::PageOutOfRange { .. })), "{kind:?}");
        // Break stops it.
        let mut count = 0;
        pool.scan(file, 0..PAGES, 8, |_, _| {
            count += 1;
            std::ops::ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(count, 1);
    }
}

/// A hot set of 8 pages in a 32-frame pool, then a scan of 44 other
/// pages, 20 more than the free frames: under the clock, a frame that
/// loses its mark at a visit goes at the next, so the hand may pass the
/// hot set once but not twice. The scan's pages go at the hand's first
/// visit, so 20 evictions take under one turn of the hand and the hot set
/// stays; pages given the usual second chance would take two turns, and
/// the second would evict the hot set.
#[test]
fn a_scan_does_not_push_the_hot_set_out() {
    let dir = common::scratch_dir("engine-scan-resistance");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let (pool, file, _faults) = open(engine, &path, 32);
        let hot: Vec<PageId> = (0..8).map(|n| PageId::new(file, n)).collect();
        let touch_hot = || {
            for &page_id in &hot {
                drop(pool.read(page_id).unwrap());
            }
        };
        // Loaded, then read again: a page read once goes first itself.
        touch_hot();
        touch_hot();
        pool.scan(file, 8..52, 4, |_, page| {
            drop(page.unwrap());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        let misses = pool.stats().misses;
        touch_hot();
        let lost = pool.stats().misses - misses;
        assert_eq!(
            lost, 0,
            "{kind:?}: {lost} hot pages were evicted by the scan"
        );
    }
}

/// A direct file that counts the syncs it is asked for itself (the ring's
/// go past it, to its descriptor).
#[derive(Debug)]
struct CountedSyncs {
    inner: DirectFile,
    own_syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl Storage for CountedSyncs {
    fn page_count(&self) -> std::io::Result<u64> {
        self.inner.page_count()
    }
    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_page(page_no, buf)
    }
    fn write_page(&self, page_no: u64, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_page(page_no, buf)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.own_syncs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.sync()
    }
    fn file_identity(&self) -> Option<pagepool::FileIdentity> {
        self.inner.file_identity()
    }
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.ring_fd()
    }
    fn ring_writes(&self) -> bool {
        self.inner.ring_writes()
    }
}

/// Files a flush must sync at once for the syncs to go through the ring
/// (`PoolConfig::ring_sync_min_files`, default 8).
const RING_SYNC_MIN_FILES: u64 = 8;

#[test]
fn flushes_of_many_files_sync_through_the_ring_where_it_runs() {
    let dir = common::scratch_dir("engine-ring-sync");
    for (engine, kind) in engines() {
        let own_syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let own = || own_syncs.load(std::sync::atomic::Ordering::SeqCst);
        let paths: Vec<_> = (0..RING_SYNC_MIN_FILES)
            .map(|n| dir.join(format!("{kind:?}-{n}.db")))
            .collect();
        let pool = BufferPool::open(PoolConfig::new(16).io_engine(engine)).unwrap();
        let mut logged = Vec::new();
        for (n, path) in paths.iter().enumerate() {
            let storage = CountedSyncs {
                inner: DirectFile::open(path, IoMode::Direct).unwrap(),
                own_syncs: Arc::clone(&own_syncs),
            };
            let file = pool.open_storage(Box::new(storage)).unwrap();
            let (page_id, mut page) = pool.allocate(file).unwrap();
            page.store_u64(0, 100 + n as u64).unwrap();
            logged.push((path.clone(), page_id.page_no(), 100 + n as u64));
        }
        let before = pool.stats().io_syncs;
        pool.flush_all().unwrap();
        let syncs = pool.stats().io_syncs - before;
        assert_eq!(syncs, RING_SYNC_MIN_FILES, "{kind:?}: one sync a file");
        let recorded = pool.dirty_pages().is_empty();
        assert!(recorded, "{kind:?}: every sync recorded");
        let by_stores = if kind == EngineKind::Uring { 0 } else { syncs };
        assert_eq!(own(), by_stores, "{kind:?}: the ring syncs many files");
        // One file (flush(page), flush_file): its store syncs it, whatever
        // the engine (one sync gains nothing from the ring's hand-off).
        let file = FileId::new(0).unwrap();
        let mut page = pool.write(PageId::new(file, 0)).unwrap();
        page.store_u64(8, 1).unwrap();
        drop(page);
        pool.flush(PageId::new(file, 0)).unwrap();
        pool.flush_file(file).unwrap();
        assert_eq!(own(), by_stores + 2, "{kind:?}: one file, its store");
        pool.close().unwrap();
        for (path, page_no, value) in logged {
            let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
            let file = pool.open_file(&path).unwrap();
            let page_id = PageId::new(file, page_no);
            assert_eq!(
                pool.optimistic(page_id, |v| v.load_u64(0)).unwrap(),
                Ok(value)
            );
        }
    }
}

/// Many threads submit at once (batches and prefetches of pages that
/// mostly miss in a pool of 16 frames): under io_uring most find another
/// thread entering the kernel and leave their reads to it
/// (`src/io/combining.rs`). Every page still comes, right, within the
/// bounded waits.
#[test]
fn many_threads_submitting_at_once_each_get_their_pages() {
    let dir = common::scratch_dir("engine-many-submitters");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let pool = BufferPool::open(
            PoolConfig::new(16)
                .io_engine(engine)
                .frame_wait_timeout(std::time::Duration::from_secs(20))
                .latch_wait_timeout(std::time::Duration::from_secs(20)),
        )
        .unwrap();
        let file = pool
            .open_storage(Box::new(DirectFile::open(&path, IoMode::Direct).unwrap()))
            .unwrap();
        let ids = pages(file);
        std::thread::scope(|scope| {
            for thread in 0..8u64 {
                let (pool, ids) = (&pool, &ids);
                scope.spawn(move || {
                    let mut seed = thread * 7919 + 1;
                    for round in 0..150u64 {
                        let batch: Vec<PageId> = (0..3)
                            .map(|_| {
                                seed = seed
                                    .wrapping_mul(6364136223846793005)
                                    .wrapping_add(1442695040888963407);
                                ids[((seed >> 33) % PAGES) as usize]
                            })
                            .collect();
                        if round % 4 == 0 {
                            pool.prefetch(&batch).unwrap();
                        }
                        pool.read_many(&batch, |page_id, page| {
                            let page = page.unwrap_or_else(|e| panic!("{kind:?} {page_id}: {e}"));
                            assert_eq!(page.view().load_u64(0).unwrap(), value(page_id));
                        });
                    }
                });
            }
        });
        let stats = pool.stats();
        assert_eq!(stats.read_failures, 0, "{kind:?}");
        assert!(stats.io_reads > 16, "{kind:?}: the pages missed");
        pool.close().unwrap();
    }
}

/// A thread prefetches and exits at once: the kernel ties a request to
/// the thread that entered it and cancels, at that thread's exit, what it
/// had not started (`ECANCELED`); the engine submits those again from its
/// reaper. Every page still comes, read without a failure. (On the
/// kernel here an `O_DIRECT` read of a file starts at once and none was
/// cancelled, with or without the resubmission: the test guards the
/// case, it did not find it.)
#[test]
fn reads_started_by_a_thread_that_exits_still_complete() {
    let dir = common::scratch_dir("engine-exiting-starter");
    let path = dir.join("data.db");
    make_file(&path);
    for (engine, kind) in engines() {
        let (pool, file, _faults) = open(engine, &path, 128);
        let ids = pages(file);
        for round in 0..20 {
            std::thread::scope(|scope| {
                scope.spawn(|| pool.prefetch(&ids).unwrap());
            });
            for &page_id in &ids {
                let got = pool.read(page_id).unwrap().view().load_u64(0).unwrap();
                assert_eq!(got, value(page_id), "{kind:?} round {round}");
            }
            // Out again (unchanged, so nothing is lost), for the next round.
            for &page_id in &ids {
                pool.discard(pool.write(page_id).unwrap());
            }
        }
        assert_eq!(pool.stats().read_failures, 0, "{kind:?}");
        pool.close().unwrap();
    }
}
