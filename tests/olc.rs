//! Optimistic guards, coupling, upgrades and try-latches (issue 13).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pagepool::{BufferPool, Error, FileId, MemoryStorage, OlcError, PageId, PoolConfig, Restart};

/// A pool of `frames` frames over an in-memory store of `pages` pages,
/// page `n` holding `n` in word 0 and `100 + n` in word 1.
fn pool_with(frames: usize, pages: u64) -> (BufferPool, FileId, Vec<PageId>) {
    let pool = BufferPool::open(
        PoolConfig::new(frames).latch_wait_timeout(std::time::Duration::from_millis(5_000)),
    )
    .unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let mut ids = Vec::new();
    for n in 0..pages {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        page.store_u64(0, n).unwrap();
        page.store_u64(8, 100 + n).unwrap();
        ids.push(page_id);
    }
    (pool, file, ids)
}

/// Reads `others` round and round (more pages than frames) until the
/// pages not among them have been evicted.
fn push_out(pool: &BufferPool, others: &[PageId]) {
    for _ in 0..4 {
        for &page_id in others {
            drop(pool.read(page_id).unwrap());
        }
    }
}

/// Runs `f` while another thread holds a shared latch on `page_id`.
fn while_read_elsewhere(pool: &BufferPool, page_id: PageId, f: impl FnOnce()) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let page = pool.read(page_id).unwrap();
            tx.send(()).unwrap();
            done_rx.recv().unwrap();
            drop(page);
        });
        rx.recv().unwrap();
        f();
        done_tx.send(()).unwrap();
    });
}

fn restart<T: std::fmt::Debug>(result: Result<T, OlcError>) {
    assert!(
        matches!(result, Err(OlcError::Restart)),
        "expected a restart, got {result:?}"
    );
}

#[test]
fn a_guard_validates_until_a_writer_changes_the_page() {
    let (pool, _, pages) = pool_with(8, 2);
    let pin = pool.pin_thread();
    let guard = pin.optimistic_guard(pages[1]).unwrap();
    assert_eq!(guard.page_id(), pages[1]);
    assert_eq!(guard.view().load_u64(8).unwrap(), 101);
    guard.check().unwrap();
    guard.check().unwrap();
    // Another thread writes: every later check fails, and so does finish.
    std::thread::scope(|s| {
        s.spawn(|| pool.write(pages[1]).unwrap().store_u64(8, 7).unwrap());
    });
    assert_eq!(guard.check(), Err(Restart));
    assert_eq!(guard.finish(1), Err(Restart));
    let guard = pin.optimistic_guard(pages[1]).unwrap();
    let value = guard.view().load_u64(8).unwrap();
    assert_eq!(guard.finish(value), Ok(7));
    assert!(pool.stats().restarts >= 2);
}

/// The parent is validated before the child id is used: a torn id (here,
/// one past the end of the file, which a lookup would refuse with an
/// error) read from a parent that a writer changed is never looked up.
#[test]
fn coupling_checks_the_parent_before_the_child_id_is_used() {
    let (pool, file, pages) = pool_with(8, 2);
    let pin = pool.pin_thread();
    let parent = pin.optimistic_guard(pages[0]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| pool.write(pages[0]).unwrap().store_u64(0, 1_000).unwrap());
    });
    let torn = PageId::new(file, parent.view().load_u64(0).unwrap());
    let reads = pool.stats().io_reads;
    restart(parent.child(torn));
    assert_eq!(pool.stats().io_reads, reads);
    // A valid parent: the child comes, and the parent is still valid.
    let parent = pin.optimistic_guard(pages[0]).unwrap();
    let child = parent.child(pages[1]).unwrap();
    assert_eq!(child.view().load_u64(0).unwrap(), 1);
    parent.check().unwrap();
    assert_eq!(child.finish(()), Ok(()));
    // A bad id from a *valid* parent is a real error, not a restart.
    let parent = pin.optimistic_guard(pages[0]).unwrap();
    let result = parent.child(PageId::new(file, 99));
    assert!(
        matches!(result, Err(OlcError::Pool(Error::PageOutOfRange { .. }))),
        "{result:?}"
    );
}

/// A child that is not resident is not loaded under the parent's pin: the
/// call restarts, and the next guard started with none alive loads it
/// (unpinned), after which the descent hits.
#[test]
fn a_miss_under_a_guard_defers_the_load_to_the_restart() {
    let (pool, _, pages) = pool_with(4, 12);
    pool.flush_all().unwrap();
    let root = pages[0];
    let far = pages[11];
    // Push `far` out: read the others until it is gone.
    push_out(&pool, &pages[..11]);
    let pin = pool.pin_thread();
    let reads = pool.stats().io_reads;
    let parent = pin.optimistic_guard(root).unwrap();
    let reads_after_root = pool.stats().io_reads;
    restart(parent.child(far));
    assert_eq!(
        pool.stats().io_reads,
        reads_after_root,
        "no I/O under the guard"
    );
    drop(parent);
    // The restart: the root guard first settles the deferred load.
    let parent = pin.optimistic_guard(root).unwrap();
    assert!(
        pool.stats().io_reads > reads,
        "the deferred page was loaded"
    );
    let child = parent.child(far).expect("the child is resident now");
    assert_eq!(child.view().load_u64(0).unwrap(), 11);
    child.finish(()).unwrap();
}

#[test]
fn a_root_guard_on_a_page_that_is_not_resident_loads_it() {
    let (pool, _, pages) = pool_with(4, 12);
    pool.flush_all().unwrap();
    push_out(&pool, &pages[1..]);
    let pin = pool.pin_thread();
    let guard = pin.optimistic_guard(pages[0]).unwrap();
    assert_eq!(guard.view().load_u64(8).unwrap(), 100);
    guard.finish(()).unwrap();
}

#[test]
fn a_page_latched_by_a_writer_is_deferred_under_a_guard_and_waited_for_without_one() {
    let (pool, _, pages) = pool_with(8, 2);
    let held = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut page = pool.write(pages[1]).unwrap();
            held.store(true, Ordering::SeqCst);
            while !release.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            page.store_u64(0, 55).unwrap();
        });
        while !held.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let pin = pool.pin_thread();
        let parent = pin.optimistic_guard(pages[0]).unwrap();
        restart(parent.child(pages[1]));
        drop(parent);
        release.store(true, Ordering::SeqCst);
        // No guard alive: this one waits for the writer, then reads.
        let guard = pin.optimistic_guard(pages[1]).unwrap();
        assert_eq!(guard.view().load_u64(0).unwrap(), 55);
        guard.finish(()).unwrap();
    });
}

#[test]
fn upgrade_succeeds_only_on_an_unchanged_unheld_page() {
    let (pool, _, pages) = pool_with(8, 1);
    let pin = pool.pin_thread();
    let guard = pin.optimistic_guard(pages[0]).unwrap();
    let mut page = guard.upgrade().unwrap();
    page.store_u64(0, 9).unwrap();
    drop(page);
    // Changed since the guard started.
    let guard = pin.optimistic_guard(pages[0]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| pool.write(pages[0]).unwrap().store_u64(0, 10).unwrap());
    });
    assert_eq!(guard.upgrade().err(), Some(Restart));
    // A shared holder on another thread: no exclusive latch, no waiting.
    let guard = pin.optimistic_guard(pages[0]).unwrap();
    while_read_elsewhere(&pool, pages[0], || {
        assert_eq!(guard.upgrade().err(), Some(Restart));
    });
    assert_eq!(
        pool.optimistic(pages[0], |v| v.load_u64(0)).unwrap(),
        Ok(10)
    );
}

#[test]
fn share_turns_an_unchanged_guard_into_a_shared_latch() {
    let (pool, _, pages) = pool_with(8, 1);
    let pin = pool.pin_thread();
    let page = pin.optimistic_guard(pages[0]).unwrap().share().unwrap();
    assert_eq!(&page[..8], &0u64.to_le_bytes());
    assert!(pin.try_write(pages[0]).unwrap().is_none(), "shared is held");
    drop(page);
    let guard = pin.optimistic_guard(pages[0]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| pool.write(pages[0]).unwrap().store_u64(0, 3).unwrap());
    });
    assert_eq!(guard.share().err(), Some(Restart));
}

#[test]
fn shared_upgrades_only_as_the_only_holder_and_exclusive_downgrades() {
    let (pool, _, pages) = pool_with(8, 1);
    let first = pool.read(pages[0]).unwrap();
    let second = pool.read(pages[0]).unwrap();
    let first = first.try_upgrade().expect_err("two holders");
    drop(second);
    let mut page = first.try_upgrade().expect("the only holder");
    page.store_u64(0, 77).unwrap();
    let pin = pool.pin_thread();
    std::thread::scope(|s| {
        s.spawn(|| {
            let pin = pool.pin_thread();
            // The page is latched exclusively: no guard, and no latch
            // without waiting.
            assert!(pin.try_read(pages[0]).unwrap().is_none());
            assert!(pin.try_write(pages[0]).unwrap().is_none());
        })
        .join()
        .unwrap();
    });
    let page = page.downgrade();
    assert_eq!(&page[..8], &77u64.to_le_bytes());
    // Shared again: readers come in, writers wait, and the page is dirty.
    std::thread::scope(|s| {
        s.spawn(|| {
            let pin = pool.pin_thread();
            assert!(pin.try_read(pages[0]).unwrap().is_some());
            assert!(pin.try_write(pages[0]).unwrap().is_none());
        });
    });
    drop(page);
    let guard = pin.optimistic_guard(pages[0]).unwrap();
    assert_eq!(guard.view().load_u64(0).unwrap(), 77);
    guard.finish(()).unwrap();
    let writes = pool.stats().io_writes;
    pool.flush_all().unwrap();
    assert!(
        pool.stats().io_writes > writes,
        "the downgraded page was dirty"
    );
}

#[test]
fn try_latches_never_wait_and_refuse_bad_ids() {
    let (pool, file, pages) = pool_with(4, 12);
    pool.flush_all().unwrap();
    push_out(&pool, &pages[1..]);
    // Not resident: loading it would wait for I/O.
    assert!(pool.try_read(pages[0]).unwrap().is_none());
    assert!(pool.try_write(pages[0]).unwrap().is_none());
    let last = *pages.last().unwrap();
    assert!(pool.try_read(last).unwrap().is_some());
    let mut page = pool.try_write(last).unwrap().unwrap();
    page.store_u64(0, 1).unwrap();
    drop(page);
    assert!(matches!(
        pool.try_read(PageId::new(file, 500)),
        Err(Error::PageOutOfRange { .. })
    ));
}

/// What a caller may not do under a guard is an error, never a wait.
#[test]
fn blocking_calls_under_a_guard_are_errors() {
    let (pool, file, pages) = pool_with(4, 12);
    pool.flush_all().unwrap();
    push_out(&pool, &pages[1..]);
    let pin = pool.pin_thread();
    let guard = pin.optimistic_guard(pages[11]).unwrap();
    let blocked = |result: pagepool::Result<()>| {
        assert!(
            matches!(result, Err(Error::WouldBlockWhilePinned { .. })),
            "{result:?}"
        );
    };
    blocked(pool.read(pages[0]).map(drop));
    blocked(pin.read(pages[0]).map(drop));
    blocked(pool.allocate(file).map(drop));
    blocked(pool.flush_all());
    // A hit is fine.
    drop(pin.read(pages[11]).unwrap());
    guard.finish(()).unwrap();
}

/// A guard on a page this thread holds exclusively can never validate:
/// an error, not a restart loop.
#[test]
fn a_guard_on_a_page_the_thread_writes_is_a_self_deadlock() {
    let (pool, _, pages) = pool_with(4, 1);
    let pin = pool.pin_thread();
    let page = pin.write(pages[0]).unwrap();
    let result = pin.optimistic_guard(pages[0]);
    assert!(
        matches!(result, Err(OlcError::Pool(Error::SelfDeadlock { .. }))),
        "{result:?}"
    );
    drop(page);
}

/// Readers couple from a parent page to the child it names while a writer
/// moves the parent between two children, rewriting each child before the
/// parent points at it. A validated read always finds the child holding
/// the parent's generation; a reader that started on the child without
/// the parent's checks would find one that the writer had already moved
/// on from.
#[test]
fn coupled_reads_see_a_child_consistent_with_its_parent() {
    const ROUNDS: u64 = 20_000;
    let (pool, file, pages) = pool_with(8, 3);
    let pool = Arc::new(pool);
    let (parent_id, children) = (pages[0], [pages[1], pages[2]]);
    {
        let mut parent = pool.write(parent_id).unwrap();
        parent.store_u64(0, children[0].page_no()).unwrap();
        parent.store_u64(8, 0).unwrap();
        let mut child = pool.write(children[0]).unwrap();
        child.store_u64(8, 0).unwrap();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for generation in 1..=ROUNDS {
                let target = children[(generation % 2) as usize];
                pool.write(target)
                    .unwrap()
                    .store_u64(8, generation)
                    .unwrap();
                let mut parent = pool.write(parent_id).unwrap();
                parent.store_u64(0, target.page_no()).unwrap();
                parent.store_u64(8, generation).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        s.spawn(|| {
            let pin = pool.pin_thread();
            let mut validated = 0u64;
            while !done.load(Ordering::SeqCst) {
                let read = || -> Result<(u64, u64), OlcError> {
                    let parent = pin.optimistic_guard(parent_id)?;
                    let view = parent.view();
                    let child_no = view.load_u64(0).map_err(|_| Restart)?;
                    let generation = view.load_u64(8).map_err(|_| Restart)?;
                    let child = parent.child(PageId::new(file, child_no))?;
                    let seen = child.view().load_u64(8).map_err(|_| Restart)?;
                    let seen = child.finish(seen)?;
                    Ok((generation, seen))
                };
                match read() {
                    Ok((generation, seen)) => {
                        assert_eq!(seen, generation, "a child from another generation");
                        validated += 1;
                    }
                    Err(OlcError::Restart) => {}
                    Err(OlcError::Pool(error)) => panic!("{error}"),
                }
            }
            assert!(validated > 0);
        });
    });
}

/// A right hint starts the child on its frame without the page table (no
/// table hit is counted differently, so the proof is the frame: the
/// child's guard names the hinted frame, and the hit counter still moves).
#[test]
fn a_right_frame_hint_starts_the_child_on_that_frame() {
    let (pool, _, pages) = pool_with(8, 3);
    let pin = pool.pin_thread();
    let hint = pin.optimistic_guard(pages[1]).unwrap().frame_hint();
    let parent = pin.optimistic_guard(pages[0]).unwrap();
    let misses = pool.stats().frame_hint_misses;
    let child = parent.child_hinted(pages[1], hint).unwrap();
    assert_eq!(pool.stats().frame_hint_misses, misses, "the hint was used");
    assert_eq!(child.frame_hint(), hint);
    assert_eq!(child.page_id(), pages[1]);
    assert_eq!(child.view().load_u64(0).unwrap(), 1);
    assert_eq!(child.finish(()), Ok(()));
    parent.check().unwrap();
    // The writer's guard names the same frame.
    assert_eq!(pool.write(pages[1]).unwrap().frame_hint(), hint);
    assert_eq!(pool.read(pages[1]).unwrap().frame_hint(), hint);
}

/// Every wrong hint (out of range, NONE, another page's frame, the frame
/// of a page that was evicted and reloaded elsewhere) gives the right page
/// through the table: a wrong hint is slow, never wrong.
#[test]
fn a_wrong_frame_hint_falls_back_to_the_table() {
    let (pool, _, pages) = pool_with(4, 12);
    pool.flush_all().unwrap();
    let pin = pool.pin_thread();
    let other = pin.optimistic_guard(pages[2]).unwrap().frame_hint();
    let stale = pin.optimistic_guard(pages[1]).unwrap().frame_hint();
    for hint in [
        pagepool::FrameHint::NONE,
        pagepool::FrameHint::from_bits(4),
        pagepool::FrameHint::from_bits(u32::MAX - 1),
        other,
    ] {
        let parent = pin.optimistic_guard(pages[0]).unwrap();
        let misses = pool.stats().frame_hint_misses;
        let child = parent.child_hinted(pages[1], hint).unwrap();
        assert_eq!(pool.stats().frame_hint_misses, misses + 1);
        assert_eq!(child.page_id(), pages[1]);
        assert_eq!(child.view().load_u64(0).unwrap(), 1, "{hint:?}");
        assert_eq!(child.frame_hint(), stale);
        child.finish(()).unwrap();
    }
    // Page 1 leaves; its old frame holds another page (or nothing). The
    // stale hint gives page 1 (loaded again, at the restart) and the
    // frame it is in now.
    push_out(&pool, &pages[4..]);
    let mut found = None;
    for _ in 0..4 {
        let parent = pin.optimistic_guard(pages[0]).unwrap();
        match parent.child_hinted(pages[1], stale) {
            Ok(child) => {
                assert_eq!(child.view().load_u64(0).unwrap(), 1);
                found = Some(child.frame_hint());
                child.finish(()).unwrap();
                break;
            }
            Err(OlcError::Restart) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
    let fresh = found.expect("the child loads within a few restarts");
    let parent = pin.optimistic_guard(pages[0]).unwrap();
    assert_eq!(
        parent.child_hinted(pages[1], fresh).unwrap().frame_hint(),
        fresh
    );
}

/// A hinted child is coupled like any other: a parent changed before the
/// child starts restarts the step, the child is not read.
#[test]
fn a_hinted_child_checks_the_parent() {
    let (pool, _, pages) = pool_with(8, 2);
    let pin = pool.pin_thread();
    let hint = pin.optimistic_guard(pages[1]).unwrap().frame_hint();
    let parent = pin.optimistic_guard(pages[0]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| pool.write(pages[0]).unwrap().store_u64(0, 5).unwrap());
    });
    restart(parent.child_hinted(pages[1], hint));
}

/// `store_frame_hint` stores the bits without making the page dirty,
/// and the guard goes on validating from the new version; it refuses
/// (stores nothing) when the page changed or a latch is held.
#[test]
fn store_frame_hint_is_unlogged_and_needs_an_unchanged_page() {
    let (pool, _, pages) = pool_with(8, 2);
    pool.flush_all().unwrap();
    assert_eq!(pool.stats().dirty_frames, 0);
    let pin = pool.pin_thread();
    let mut guard = pin.optimistic_guard(pages[0]).unwrap();
    let hint = pagepool::FrameHint::from_bits(0x0102_0304);
    assert_eq!(guard.store_frame_hint(16, hint), Ok(true));
    assert_eq!(pool.stats().frame_hint_stores, 1);
    assert_eq!(guard.view().load_u32(16).unwrap(), 0x0102_0304);
    guard.check().unwrap();
    assert_eq!(guard.finish(()), Ok(()));
    assert_eq!(pool.stats().dirty_frames, 0, "a hint store is unlogged");
    let writes = pool.stats().io_writes;
    pool.flush_all().unwrap();
    assert_eq!(pool.stats().io_writes, writes);
    // A reader started before the store fails validation: the store moved
    // the version.
    let before = pin.optimistic_guard(pages[0]).unwrap();
    let mut guard = pin.optimistic_guard(pages[0]).unwrap();
    assert_eq!(
        guard.store_frame_hint(16, pagepool::FrameHint::from_bits(9)),
        Ok(true)
    );
    assert_eq!(before.check(), Err(Restart));
    guard.check().unwrap();
    drop((before, guard));
    // Out of bounds: an error, nothing stored.
    let mut guard = pin.optimistic_guard(pages[0]).unwrap();
    assert!(guard.store_frame_hint(4094, hint).is_err());
    // Changed since the guard began: refused, the bytes are the writer's.
    std::thread::scope(|s| {
        s.spawn(|| pool.write(pages[0]).unwrap().store_u32(16, 77).unwrap());
    });
    assert_eq!(guard.store_frame_hint(16, hint), Ok(false));
    assert_eq!(guard.check(), Err(Restart));
    assert_eq!(pool.read(pages[0]).unwrap()[16..20], 77u32.to_le_bytes());
    drop(guard);
    // A shared latch held elsewhere: refused, and the guard still holds.
    let mut guard = pin.optimistic_guard(pages[0]).unwrap();
    while_read_elsewhere(&pool, pages[0], || {
        assert_eq!(guard.store_frame_hint(16, hint), Ok(false));
    });
    guard.check().unwrap();
    assert_eq!(pool.read(pages[0]).unwrap()[16..20], 77u32.to_le_bytes());
    // A dirty page stays dirty across a hint store.
    drop(guard);
    let dirty = pool.stats().dirty_frames;
    assert!(dirty >= 1);
    let mut guard = pin.optimistic_guard(pages[0]).unwrap();
    assert_eq!(guard.store_frame_hint(20, hint), Ok(true));
    drop(guard);
    assert_eq!(pool.stats().dirty_frames, dirty);
    drop(pin);
    pool.flush_all().unwrap();
    assert_eq!(pool.stats().dirty_frames, 0);
}

/// A clean page whose frame took a hint store after it was written, and
/// that leaves the pool before the file is synced, comes back intact: the
/// image the pool keeps of an unsynced page is stamped again (it differs
/// from what was written by the hint's bytes).
#[test]
fn a_hinted_clean_page_evicted_before_the_sync_comes_back_intact() {
    let (pool, _, pages) = pool_with(4, 12);
    // Page 0 is written back by eviction (no sync), then read again.
    push_out(&pool, &pages[4..]);
    let pin = pool.pin_thread();
    for _ in 0..4 {
        match pin.optimistic_guard(pages[0]) {
            Ok(mut guard) => {
                assert_eq!(
                    guard.store_frame_hint(16, pagepool::FrameHint::from_bits(5)),
                    Ok(true)
                );
                guard.finish(()).unwrap();
                break;
            }
            Err(OlcError::Restart) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(pool.stats().io_syncs, 0, "the write-back is not synced yet");
    drop(pin);
    push_out(&pool, &pages[4..]);
    let page = pool.read(pages[0]).unwrap();
    assert_eq!(page[16..20], 5u32.to_le_bytes());
    assert_eq!(page[..8], 0u64.to_le_bytes());
}
