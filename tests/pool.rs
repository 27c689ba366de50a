//! Functional tests of the pool's API, its error paths and its guarantees.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use common::{Instrumented, Shared};
use pagepool::{
    BufferPool, Error, FileId, MemoryStorage, PageId, PoolConfig, Storage, PAGE_DATA_SIZE,
    PAGE_SIZE,
};

fn pool(frames: usize) -> BufferPool {
    BufferPool::open(PoolConfig::new(frames)).unwrap()
}

fn instrumented_pool(frames: usize) -> (BufferPool, FileId, Arc<Instrumented>) {
    let pool = pool(frames);
    let storage = Instrumented::new();
    let file = pool
        .open_storage(Box::new(Shared(Arc::clone(&storage))))
        .unwrap();
    (pool, file, storage)
}

/// Allocates `count` pages, word 0 of each holding its page number.
fn fill(pool: &BufferPool, file: FileId, count: u64) -> Vec<PageId> {
    (0..count)
        .map(|n| {
            let (page_id, mut page) = pool.allocate(file).unwrap();
            assert_eq!(page_id.page_no(), n);
            page.store_u64(0, n).unwrap();
            page_id
        })
        .collect()
}

#[test]
fn three_access_modes_see_the_same_bytes() {
    let (pool, file, _) = instrumented_pool(8);
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.store_u64(0, 0xDEAD_BEEF).unwrap();
    page.write_at(100, b"hello").unwrap();
    page.store_u16(4070, 7).unwrap();
    page.store_u8(PAGE_DATA_SIZE - 1, 9).unwrap();
    page.store_u32(13, 0x0102_0304).unwrap();
    drop(page);

    let shared = pool.read(page_id).unwrap();
    assert_eq!(shared.len(), PAGE_DATA_SIZE);
    assert_eq!(&shared[100..105], b"hello");
    assert_eq!(shared[PAGE_DATA_SIZE - 1], 9);
    let opt = pool
        .optimistic(page_id, |view| {
            let mut hello = [0u8; 5];
            view.copy_to(100, &mut hello)?;
            Ok::<_, pagepool::OutOfBounds>((
                view.load_u64(0)?,
                hello,
                view.load_u16(4070)?,
                view.load_u32(13)?,
            ))
        })
        .unwrap()
        .unwrap();
    assert_eq!(opt, (0xDEAD_BEEF, *b"hello", 7, 0x0102_0304));
    drop(shared);
}

#[test]
fn out_of_bounds_writes_are_errors_and_change_nothing() {
    let (pool, file, _) = instrumented_pool(4);
    let (page_id, mut page) = pool.allocate(file).unwrap();
    assert!(page.store_u64(PAGE_DATA_SIZE - 4, 1).is_err());
    assert!(page.write_at(usize::MAX, b"x").is_err());
    let err: Error = page.write_at(PAGE_DATA_SIZE, b"x").unwrap_err().into();
    assert!(matches!(err, Error::OutOfBounds { .. }), "{err}");
    drop(page);
    assert!(pool.read(page_id).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn bad_page_ids_are_clear_errors() {
    let (pool, file, _) = instrumented_pool(4);
    fill(&pool, file, 2);
    let err = pool.read(PageId::new(file, 2)).unwrap_err();
    assert!(
        matches!(err, Error::PageOutOfRange { page_count: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("page 2 of file 0"), "{err}");
    let err = pool.write(PageId::new(file, u64::MAX)).unwrap_err();
    assert!(matches!(err, Error::PageOutOfRange { .. }), "{err}");
    let other = pool2_file();
    let err = pool.optimistic(PageId::new(other, 0), |_| ()).unwrap_err();
    assert!(matches!(err, Error::UnknownFile(_)), "{err}");
    assert!(matches!(pool.allocate(other), Err(Error::UnknownFile(_))));
    assert!(matches!(
        pool.flush(PageId::new(other, 0)),
        Err(Error::UnknownFile(_))
    ));
    assert!(matches!(pool.flush_file(other), Err(Error::UnknownFile(_))));
}

/// A file id that the one-file pools of these tests do not have (the
/// second file of another pool).
fn pool2_file() -> FileId {
    let pool = pool(1);
    pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    pool.open_storage(Box::new(MemoryStorage::new())).unwrap()
}

#[test]
fn eviction_writes_dirty_pages_back_and_reloads_them() {
    let (pool, file, storage) = instrumented_pool(4);
    let pages = fill(&pool, file, 32);
    assert!(
        storage.writes.load(Ordering::SeqCst) >= 28,
        "evicted pages were written back"
    );
    // Until a sync succeeds, evicted pages reload from the images the pool
    // retained; after it, from storage.
    pool.flush_all().unwrap();
    for (n, &page_id) in pages.iter().enumerate() {
        assert_eq!(pool.read(page_id).unwrap()[..8], (n as u64).to_le_bytes());
        let value = pool
            .optimistic(page_id, |v| v.load_u64(0))
            .unwrap()
            .unwrap();
        assert_eq!(value, n as u64);
    }
    let stats = pool.stats();
    assert!(stats.evictions >= 28, "{stats:?}");
    assert!(stats.io_reads >= 24, "{stats:?}");
    assert_eq!(stats.io_reads, storage.reads.load(Ordering::SeqCst));
    assert_eq!(stats.io_writes, storage.writes.load(Ordering::SeqCst));
}

#[test]
fn concurrent_misses_of_one_page_issue_one_read() {
    let (pool, file, storage) = instrumented_pool(8);
    let pages = fill(&pool, file, 16);
    pool.flush_all().unwrap();
    // Push page 0 out: touch the others until it is gone.
    let page0 = pages[0];
    let reads_before = loop {
        for &p in &pages[1..] {
            drop(pool.read(p).unwrap());
        }
        let reads = storage.reads.load(Ordering::SeqCst);
        let before = pool.stats().evictions;
        if before > 0 && !resident(&pool, page0) {
            break reads;
        }
    };
    storage.read_delay_ms.store(50, Ordering::SeqCst);
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                let v = pool.optimistic(page0, |v| v.load_u64(0)).unwrap().unwrap();
                assert_eq!(v, 0);
            });
        }
    });
    storage.read_delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(storage.reads.load(Ordering::SeqCst) - reads_before, 1);
}

/// Whether `page_id` is resident, judged by whether reading it issues I/O.
fn resident(pool: &BufferPool, page_id: PageId) -> bool {
    let before = pool.stats().io_reads;
    let _ = pool.optimistic(page_id, |_| ());
    pool.stats().io_reads == before
}

#[test]
fn misses_of_different_pages_load_in_parallel() {
    let (pool, file, storage) = instrumented_pool(16);
    fill(&pool, file, 8);
    pool.close().unwrap();
    let pool2 = pool_over(&storage, 16);
    storage.read_delay_ms.store(100, Ordering::SeqCst);
    std::thread::scope(|scope| {
        for n in 0..4 {
            let pool2 = &pool2;
            scope.spawn(move || drop(pool2.read(PageId::new(first_file(), n)).unwrap()));
        }
    });
    assert!(storage.max_in_flight_reads.load(Ordering::SeqCst) >= 2);
}

/// The id of the first file opened in a pool (ids are given in order).
fn first_file() -> FileId {
    let pool = pool(1);
    pool.open_storage(Box::new(MemoryStorage::new())).unwrap()
}

fn pool_over(storage: &Arc<Instrumented>, frames: usize) -> BufferPool {
    let pool = pool(frames);
    pool.open_storage(Box::new(Shared(Arc::clone(storage))))
        .unwrap();
    pool
}

#[test]
fn reads_load_straight_into_the_frame() {
    let (pool, file, storage) = instrumented_pool(4);
    let pages = fill(&pool, file, 8);
    pool.flush_all().unwrap();
    storage.read_buffers.lock().unwrap().clear();
    let page = pool.read(pages[0]).unwrap();
    let buffers = storage.read_buffers.lock().unwrap().clone();
    assert_eq!(
        buffers,
        vec![page.as_ptr() as usize],
        "the read went into the frame itself"
    );
    assert_eq!(
        page.as_ptr() as usize % PAGE_SIZE,
        0,
        "frames are 4096-aligned"
    );
}

#[test]
fn failed_read_returns_the_frame_and_a_later_read_works() {
    let (pool, file, storage) = instrumented_pool(2);
    let pages = fill(&pool, file, 6);
    pool.flush_all().unwrap();
    storage.fail_reads.store(true, Ordering::SeqCst);
    for &page_id in &pages {
        match pool.read(page_id) {
            Ok(_) => {}
            Err(Error::Read { page_id: p, .. }) => assert_eq!(p, page_id),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    storage.fail_reads.store(false, Ordering::SeqCst);
    for (n, &page_id) in pages.iter().enumerate() {
        assert_eq!(pool.read(page_id).unwrap()[..8], (n as u64).to_le_bytes());
    }
}

#[test]
fn failed_write_back_keeps_the_page_dirty_and_a_later_flush_writes_it() {
    let (pool, file, storage) = instrumented_pool(4);
    let pages = fill(&pool, file, 2);
    storage.fail_writes.store(true, Ordering::SeqCst);
    let err = pool.flush_all().unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert_eq!(err.page_id().map(|p| p.file_id()), Some(file));
    // Resident and still readable with its data.
    assert_eq!(pool.read(pages[1]).unwrap()[..8], 1u64.to_le_bytes());
    storage.fail_writes.store(false, Ordering::SeqCst);
    pool.flush_all().unwrap();
    let mut buf = vec![0u8; PAGE_SIZE];
    storage.inner.read_page(1, &mut buf).unwrap();
    assert_eq!(buf[..8], 1u64.to_le_bytes());
}

#[test]
fn eviction_under_write_failure_reports_the_error_and_loses_nothing() {
    let (pool, file, storage) = instrumented_pool(2);
    let pages = fill(&pool, file, 2);
    storage.fail_writes.store(true, Ordering::SeqCst);
    // Both frames are dirty: allocating needs an eviction, which fails.
    let err = pool.allocate(file).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    storage.fail_writes.store(false, Ordering::SeqCst);
    let (_, page) = pool.allocate(file).unwrap();
    drop(page);
    for (n, &page_id) in pages.iter().enumerate() {
        assert_eq!(pool.read(page_id).unwrap()[..8], (n as u64).to_le_bytes());
    }
}

#[test]
fn failed_sync_is_reported() {
    let (pool, file, storage) = instrumented_pool(2);
    let pages = fill(&pool, file, 1);
    storage.fail_syncs.store(true, Ordering::SeqCst);
    let err = pool.flush(pages[0]).unwrap_err();
    assert!(
        matches!(err, Error::Sync { file_id, .. } if file_id == file),
        "{err}"
    );
    storage.fail_syncs.store(false, Ordering::SeqCst);
    pool.flush(pages[0]).unwrap();
}

#[test]
fn wal_hook_runs_before_each_write_and_its_failure_keeps_the_page_dirty() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = {
        let (seen, refuse) = (Arc::clone(&seen), Arc::clone(&refuse));
        PoolConfig::new(4).wal_hook(move |lsn| {
            if refuse.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("log device gone"));
            }
            seen.lock().unwrap().push(lsn);
            Ok(())
        })
    };
    let pool = BufferPool::open(config).unwrap();
    let storage = Instrumented::new();
    let file = pool
        .open_storage(Box::new(Shared(Arc::clone(&storage))))
        .unwrap();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.set_lsn(77);
    assert_eq!(page.lsn(), 77);
    drop(page);
    refuse.store(true, Ordering::SeqCst);
    let err = pool.flush(page_id).unwrap_err();
    assert!(matches!(err, Error::WalHook { lsn: 77, .. }), "{err}");
    assert_eq!(
        storage.writes.load(Ordering::SeqCst),
        0,
        "not written before the log"
    );
    refuse.store(false, Ordering::SeqCst);
    pool.flush(page_id).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![77]);
    assert_eq!(storage.writes.load(Ordering::SeqCst), 1);
    assert_eq!(pool.read(page_id).unwrap().lsn(), 77);
}

#[test]
fn corrupt_pages_are_errors_and_never_reach_a_reader() {
    let storage = Arc::new(Instrumented::default());
    {
        let pool = pool_over(&storage, 4);
        fill(&pool, first_file(), 3);
        pool.close().unwrap();
    }
    // Flip a bit in page 1, and make page 2 a page of junk without trailer.
    let mut buf = vec![0u8; PAGE_SIZE];
    storage.inner.read_page(1, &mut buf).unwrap();
    buf[200] ^= 0x04;
    storage.inner.write_page(1, &buf).unwrap();
    storage.inner.write_page(2, &[0x5A; PAGE_SIZE]).unwrap();

    let pool = pool_over(&storage, 4);
    let file = first_file();
    let mut ran = false;
    let err = pool
        .optimistic(PageId::new(file, 1), |_| ran = true)
        .unwrap_err();
    assert!(!ran, "the closure never saw the corrupt bytes");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    let err = pool.read(PageId::new(file, 2)).unwrap_err();
    assert!(err.to_string().contains("no page trailer"), "{err}");
    assert!(matches!(
        pool.write(PageId::new(file, 1)),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(
        pool.read(PageId::new(file, 0)).unwrap()[..8],
        0u64.to_le_bytes()
    );
    // Pages moved to another offset are caught too (page number in the CRC).
    storage.inner.read_page(0, &mut buf).unwrap();
    storage.inner.write_page(1, &buf).unwrap();
    let pool = pool_over(&storage, 4);
    assert!(matches!(
        pool.read(PageId::new(first_file(), 1)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn never_written_pages_read_as_zeros() {
    let storage = Arc::new(Instrumented::default());
    storage.inner.write_page(3, &[0u8; PAGE_SIZE]).unwrap();
    let pool = pool_over(&storage, 4);
    assert_eq!(pool.page_count(first_file()).unwrap(), 4);
    let page = pool.read(PageId::new(first_file(), 2)).unwrap();
    assert!(page.iter().all(|&b| b == 0));
    assert_eq!(page.lsn(), 0);
}

#[test]
fn checksum_verification_can_be_turned_off() {
    let storage = Arc::new(Instrumented::default());
    storage.inner.write_page(0, &[0x5A; PAGE_SIZE]).unwrap();
    let pool = BufferPool::open(PoolConfig::new(2).verify_checksums(false)).unwrap();
    let file = pool.open_storage(Box::new(Shared(storage))).unwrap();
    assert_eq!(pool.read(PageId::new(file, 0)).unwrap()[0], 0x5A);
}

#[test]
fn pool_too_small_for_the_guards_held_times_out_with_a_clear_error() {
    let pool = BufferPool::open(
        PoolConfig::new(2).frame_wait_timeout(std::time::Duration::from_millis(50)),
    )
    .unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let (_a, guard_a) = pool.allocate(file).unwrap();
    let (_b, guard_b) = pool.allocate(file).unwrap();
    let err = pool.allocate(file).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::NoFreeFrame { .. }), "{err}");
    drop((guard_a, guard_b));
    drop(pool.allocate(file).unwrap());
}

#[test]
fn stats_count_hits_misses_and_optimistic_paths() {
    let (pool, file, _) = instrumented_pool(4);
    let pages = fill(&pool, file, 2);
    let before = pool.stats();
    for _ in 0..10 {
        pool.optimistic(pages[0], |v| v.load_u64(0))
            .unwrap()
            .unwrap();
        drop(pool.read(pages[1]).unwrap());
    }
    let after = pool.stats();
    assert_eq!(after.hits - before.hits, 20);
    assert_eq!(after.misses, before.misses);
    assert_eq!(before.misses, 2, "two allocations");
    assert!(after.hit_ratio() > 0.8);
}

#[test]
fn optimistic_falls_back_to_the_shared_latch_when_validation_keeps_failing() {
    let pool = BufferPool::open(PoolConfig::new(4).optimistic_retries(2)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let (page_id, page) = pool.allocate(file).unwrap();
    drop(page);
    let mut runs = 0;
    // The closure itself writes the page (through another path) on every
    // optimistic run, so validation cannot succeed; the fallback run holds
    // the shared latch, so the write attempt there must not happen.
    let value = pool
        .optimistic(page_id, |view| {
            runs += 1;
            if runs <= 3 {
                std::thread::scope(|s| {
                    s.spawn(|| pool.write(page_id).unwrap().store_u64(0, runs).unwrap());
                });
            }
            view.load_u64(0).unwrap()
        })
        .unwrap();
    assert_eq!(runs, 4, "three optimistic runs, then one under the latch");
    assert_eq!(value, 3);
    let stats = pool.stats();
    assert_eq!(stats.optimistic_retries, 3);
    assert_eq!(stats.optimistic_fallbacks, 1);
}

/// `optimistic_try`: one flat `Result` whose error is the closure's own
/// type; the pool's errors convert into it, and an error computed in a run
/// that does not validate is thrown away with that run.
#[test]
fn optimistic_try_flattens_errors_and_keeps_only_validated_ones() {
    #[derive(Debug, PartialEq)]
    enum AppError {
        Pool(String),
        Torn,
    }
    impl From<Error> for AppError {
        fn from(error: Error) -> AppError {
            AppError::Pool(error.to_string())
        }
    }
    impl From<pagepool::OutOfBounds> for AppError {
        fn from(error: pagepool::OutOfBounds) -> AppError {
            AppError::from(Error::from(error))
        }
    }
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let pages = fill(&pool, file, 4);
    // Hits and misses (two frames, four pages) alike.
    for _ in 0..2 {
        for (n, &page_id) in pages.iter().enumerate() {
            let value = pool.optimistic_try(page_id, |view| -> Result<u64, AppError> {
                Ok(view.load_u64(0)?)
            });
            assert_eq!(value, Ok(n as u64));
        }
    }
    let pin = pool.pin_thread();
    assert_eq!(
        pin.optimistic_try(pages[1], |view| Ok::<_, Error>(view.load_u64(0)?))
            .unwrap(),
        1
    );
    // The closure's error, converted from the view's.
    let out = pin.optimistic_try(pages[1], |view| {
        Ok::<_, Error>(view.load_u64(PAGE_DATA_SIZE)?)
    });
    assert!(matches!(out, Err(Error::OutOfBounds { .. })), "{out:?}");
    // The pool's error, converted into the closure's type.
    let beyond = PageId::new(file, 1000);
    let out = pin.optimistic_try(beyond, |view| -> Result<u64, AppError> {
        Ok(view.load_u64(0)?)
    });
    assert!(
        matches!(&out, Err(AppError::Pool(m)) if m.contains("1000")),
        "{out:?}"
    );
    drop(pin);
    // A run that a writer invalidates returns an error; the error is not
    // what the caller sees, the validated rerun is. (The page is made
    // resident first, so the first run is optimistic, not latched.)
    let last = pages[2];
    pool.optimistic_try(last, |view| Ok::<_, Error>(view.load_u64(0)?))
        .unwrap();
    let mut runs = 0;
    let value = pool.optimistic_try(last, |view| {
        runs += 1;
        if runs == 1 {
            std::thread::scope(|s| {
                s.spawn(|| pool.write(last).unwrap().store_u64(0, 22).unwrap());
            });
            return Err(AppError::Torn);
        }
        Ok(view.load_u64(0)?)
    });
    assert_eq!((value, runs), (Ok(22), 2));
    // The same through a `ThreadPin`, whose hits lean on its session pin
    // and take a closure's error out of line.
    let pin = pool.pin_thread();
    let mut runs = 0;
    let value = pin.optimistic_try(last, |view| {
        runs += 1;
        if runs == 1 {
            std::thread::scope(|s| {
                s.spawn(|| pool.write(last).unwrap().store_u64(0, 33).unwrap());
            });
            return Err(AppError::Torn);
        }
        Ok(view.load_u64(0)?)
    });
    assert_eq!((value, runs), (Ok(33), 2));
    drop(pin);
}

/// The same, but each writer still holds the page's exclusive latch when
/// the reader finds its validation failed, so the reader parks before
/// retrying: those failures count too, or a stream of writers could keep
/// the reader from ever falling back.
#[test]
fn optimistic_falls_back_even_when_each_writer_is_still_latched_at_the_check() {
    use std::sync::mpsc;
    let pool = BufferPool::open(PoolConfig::new(4).optimistic_retries(2)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let (page_id, page) = pool.allocate(file).unwrap();
    drop(page);
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let (latched_tx, latched_rx) = mpsc::channel::<()>();
    let mut runs = 0;
    let value = std::thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            // Per signal: take the exclusive latch, say so, and hold it a
            // while (the reader meanwhile fails validation and parks).
            for value in go_rx {
                let mut page = pool.write(page_id).unwrap();
                latched_tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
                page.store_u64(0, value).unwrap();
            }
        });
        let value = pool
            .optimistic(page_id, |view| {
                runs += 1;
                if runs <= 3 {
                    go_tx.send(runs).unwrap();
                    latched_rx.recv().unwrap();
                }
                view.load_u64(0).unwrap()
            })
            .unwrap();
        drop(go_tx);
        value
    });
    assert_eq!(runs, 4, "three optimistic runs, then one under the latch");
    assert_eq!(value, 3);
    let stats = pool.stats();
    assert_eq!(stats.optimistic_retries, 3);
    assert_eq!(stats.optimistic_fallbacks, 1);
}

#[test]
fn close_hands_the_pool_back_when_it_cannot_write() {
    let (pool, file, storage) = instrumented_pool(4);
    let pages = fill(&pool, file, 1);
    storage.fail_writes.store(true, Ordering::SeqCst);
    let failed = pool.close().unwrap_err();
    assert!(matches!(failed.error, Error::Write { .. }));
    storage.fail_writes.store(false, Ordering::SeqCst);
    let pool = failed.pool;
    assert_eq!(pool.read(pages[0]).unwrap()[..8], 0u64.to_le_bytes());
    pool.close().unwrap();
    assert_eq!(storage.inner.page_count().unwrap(), 1);
}

#[test]
fn dropping_the_pool_flushes() {
    let storage = Arc::new(Instrumented::default());
    {
        let pool = pool_over(&storage, 4);
        fill(&pool, first_file(), 3);
    }
    assert_eq!(storage.inner.page_count().unwrap(), 3);
    let pool = pool_over(&storage, 4);
    assert_eq!(
        pool.read(PageId::new(first_file(), 2)).unwrap()[..8],
        2u64.to_le_bytes()
    );
}

#[test]
fn several_files_are_independent() {
    let pool = pool(8);
    let a = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let b = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    assert_ne!(a, b);
    let pa = fill(&pool, a, 3);
    let (pb, mut page) = pool.allocate(b).unwrap();
    page.store_u64(0, 999).unwrap();
    drop(page);
    assert_eq!(pa[0].page_no(), pb.page_no());
    assert_eq!(pool.read(pa[0]).unwrap()[..8], 0u64.to_le_bytes());
    assert_eq!(pool.read(pb).unwrap()[..8], 999u64.to_le_bytes());
    assert_eq!(pool.page_count(a).unwrap(), 3);
    assert_eq!(pool.page_count(b).unwrap(), 1);
    pool.flush_file(b).unwrap();
}

#[test]
fn thread_pin_amortises_and_is_released_for_blocking() {
    let (pool, file, _) = instrumented_pool(2);
    let pages = fill(&pool, file, 8);
    let pin = pool.pin_thread();
    // Misses under a pin need frames back from the epoch: the pin must be
    // dropped while waiting or this would time out.
    for _ in 0..3 {
        for (n, &page_id) in pages.iter().enumerate() {
            let v = pool
                .optimistic(page_id, |v| v.load_u64(0))
                .unwrap()
                .unwrap();
            assert_eq!(v, n as u64);
        }
    }
    drop(pin);
}

#[test]
fn reading_a_page_while_it_is_being_allocated_is_safe() {
    let pool = pool(16);
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..3000 {
                let (page_id, mut page) = pool.allocate(file).unwrap();
                assert_eq!(page.load_zeroed(), 0, "a new page is zeroed");
                page.store_u64(0, page_id.page_no() + 1).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let count = pool.page_count(file).unwrap();
                if count == 0 {
                    continue;
                }
                let page = pool.read(PageId::new(file, count - 1)).unwrap();
                let value = u64::from_le_bytes(page[..8].try_into().unwrap());
                assert!(
                    value == 0 || value == count,
                    "page {} holds {value}",
                    count - 1
                );
            }
        });
    });
    for page_no in 0..3000 {
        let page = pool.read(PageId::new(file, page_no)).unwrap();
        assert_eq!(page[..8], (page_no + 1).to_le_bytes());
    }
}

trait LoadZeroed {
    fn load_zeroed(&self) -> u64;
}

impl LoadZeroed for pagepool::PageMut<'_> {
    /// Sum of every byte: 0 iff the data area is all zeros.
    fn load_zeroed(&self) -> u64 {
        self.iter().map(|&b| u64::from(b)).sum()
    }
}

#[test]
fn pages_covered_by_a_failed_sync_are_written_again_by_the_next_flush() {
    // Two frames, four pages: pages 0 and 1 reach storage by eviction,
    // pages 2 and 3 by the flush; then the sync fails.
    let (pool, file, storage) = instrumented_pool(2);
    let pages = fill(&pool, file, 4);
    storage.fail_syncs.store(true, Ordering::SeqCst);
    let err = pool.flush_all().unwrap_err();
    assert!(matches!(err, Error::Sync { .. }), "{err}");
    let writes_after_failure = storage.writes.load(Ordering::SeqCst);
    assert_eq!(writes_after_failure, 4);

    // The fault clears. A retried sync alone would prove nothing: the next
    // flush writes all four pages again (reloading the evicted ones).
    storage.fail_syncs.store(false, Ordering::SeqCst);
    pool.flush_all().unwrap();
    assert_eq!(
        storage.writes.load(Ordering::SeqCst) - writes_after_failure,
        4
    );
    // And once synced, a flush writes nothing more.
    pool.flush_all().unwrap();
    assert_eq!(
        storage.writes.load(Ordering::SeqCst) - writes_after_failure,
        4
    );
    for (n, &page_id) in pages.iter().enumerate() {
        assert_eq!(pool.read(page_id).unwrap()[..8], (n as u64).to_le_bytes());
    }
}

#[test]
fn flush_of_one_page_rewrites_after_a_failed_sync_too() {
    let (pool, file, storage) = instrumented_pool(4);
    let pages = fill(&pool, file, 1);
    storage.fail_syncs.store(true, Ordering::SeqCst);
    assert!(pool.flush(pages[0]).is_err());
    storage.fail_syncs.store(false, Ordering::SeqCst);
    let before = storage.writes.load(Ordering::SeqCst);
    pool.flush(pages[0]).unwrap();
    assert_eq!(storage.writes.load(Ordering::SeqCst) - before, 1);
}

#[test]
fn the_file_limit_is_a_clear_error() {
    let pool = pool(1);
    for _ in 0..pagepool::MAX_FILES {
        pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    }
    let err = pool
        .open_storage(Box::new(MemoryStorage::new()))
        .unwrap_err();
    assert!(
        matches!(err, Error::TooManyFiles(n) if n == pagepool::MAX_FILES),
        "{err}"
    );
}

#[test]
fn the_shared_guard_limit_is_a_clear_error_and_the_latch_recovers() {
    let (pool, file, _) = instrumented_pool(2);
    let pages = fill(&pool, file, 1);
    let mut guards = Vec::new();
    let err = loop {
        match pool.read(pages[0]) {
            Ok(guard) => guards.push(guard),
            Err(err) => break err,
        }
    };
    assert!(matches!(err, Error::TooManySharedGuards { .. }), "{err}");
    assert_eq!(guards.len(), (1 << 18) - 1);
    drop(guards);
    let mut page = pool.write(pages[0]).unwrap();
    page.store_u64(0, 5).unwrap();
}

#[test]
fn evicted_pages_not_yet_synced_reload_from_memory_not_from_storage() {
    let (pool, file, storage) = instrumented_pool(2);
    let pages = fill(&pool, file, 6);
    // Pages 0..4 were written back by eviction and never synced: storage
    // may still lose them, so their reload must not come from it.
    let reads = storage.reads.load(Ordering::SeqCst);
    for (n, &page_id) in pages.iter().enumerate().take(4) {
        assert_eq!(pool.read(page_id).unwrap()[..8], (n as u64).to_le_bytes());
    }
    assert_eq!(storage.reads.load(Ordering::SeqCst), reads);
    // Once synced, the retained images are dropped.
    pool.flush_all().unwrap();
    for &page_id in &pages[..4] {
        drop(pool.read(page_id).unwrap());
    }
    assert!(storage.reads.load(Ordering::SeqCst) > reads);
}

/// What may cross threads, pinned at compile time (what may not is
/// `tests/ui/borrowed_guards_are_not_send.rs`).
#[test]
fn the_pool_and_its_values_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BufferPool>();
    send_sync::<PoolConfig>();
    send_sync::<pagepool::Stats>();
    send_sync::<Error>();
    send_sync::<FileId>();
    send_sync::<PageId>();
    send_sync::<pagepool::OwnedPageRef>();
    send_sync::<pagepool::OwnedPageMut>();
    send_sync::<pagepool::Restart>();
    send_sync::<pagepool::DirtyPage>();
}
