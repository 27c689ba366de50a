//! One test per row of the transition table in the module docs.

use super::*;

/// A resident page that has been read since it was loaded (mark clear).
fn resident() -> PageLatch {
    let latch = PageLatch::new_free();
    latch.claim_free();
    assert!(!latch.unlock_exclusive(false));
    let begin = latch.optimistic_begin().unwrap();
    latch.clear_mark(begin);
    assert_eq!(latch.load() & MARK, 0);
    latch
}

#[test]
fn free_frame_blocks_everything() {
    let latch = PageLatch::new_free();
    assert_eq!(latch.optimistic_begin(), Err(Blocked::Free));
    assert_eq!(latch.try_lock_shared(), Err(Blocked::Free));
    assert_eq!(latch.try_lock_exclusive(), Err(Blocked::Free));
    assert_eq!(latch.clock_visit(), ClockVisit::Skip);
}

#[test]
fn claim_free_takes_exclusive_and_publish_bumps_version() {
    let latch = PageLatch::new_free();
    let before = version(latch.load());
    latch.claim_free();
    assert_eq!(latch.load() & (EXCL | FREE), EXCL);
    assert_eq!(latch.optimistic_begin(), Err(Blocked::Exclusive));
    assert!(!latch.unlock_exclusive(false));
    assert_eq!(version(latch.load()), before + 1);
    assert_eq!(latch.load() & (EXCL | FREE | DIRTY), 0);
    // A new page is on probation: marked, so the clock's first visit
    // evicts it unless it is read again first.
    assert_ne!(latch.load() & MARK, 0);
    assert_eq!(latch.clock_visit(), ClockVisit::Victim);
}

#[test]
fn a_new_page_read_again_loses_its_mark_and_survives_one_visit() {
    let latch = PageLatch::new_free();
    latch.claim_free();
    assert!(!latch.unlock_exclusive(false));
    let begin = latch.optimistic_begin().unwrap();
    assert!(latch.optimistic_validate(begin));
    latch.clear_mark(begin);
    assert_eq!(latch.load() & MARK, 0);
    assert_eq!(latch.clock_visit(), ClockVisit::Marked);
    assert_eq!(latch.clock_visit(), ClockVisit::Victim);
}

#[test]
fn optimistic_read_validates_only_without_writer() {
    let latch = resident();
    let begin = latch.optimistic_begin().unwrap();
    assert!(latch.optimistic_validate(begin));
    latch.try_lock_exclusive().unwrap();
    assert!(!latch.optimistic_validate(begin), "EXCL held");
    assert!(!latch.unlock_exclusive(true));
    assert!(!latch.optimistic_validate(begin), "version advanced");
    let begin = latch.optimistic_begin().unwrap();
    assert!(latch.optimistic_validate(begin));
}

#[test]
fn shared_holders_do_not_change_version_and_exclude_writers() {
    let latch = resident();
    let begin = latch.optimistic_begin().unwrap();
    latch.try_lock_shared().unwrap();
    latch.try_lock_shared().unwrap();
    assert_eq!(shared_count(latch.load()), 2);
    assert_eq!(latch.try_lock_exclusive(), Err(Blocked::Shared));
    assert!(latch.optimistic_validate(begin));
    assert!(!latch.unlock_shared());
    assert!(!latch.unlock_shared());
    assert_eq!(shared_count(latch.load()), 0);
    latch.try_lock_exclusive().unwrap();
    assert_eq!(latch.try_lock_shared(), Err(Blocked::Exclusive));
    assert_eq!(latch.try_lock_exclusive(), Err(Blocked::Exclusive));
    assert!(!latch.unlock_exclusive(false));
}

#[test]
fn unlock_exclusive_sets_and_keeps_dirty() {
    let latch = resident();
    latch.try_lock_exclusive().unwrap();
    assert!(!latch.unlock_exclusive(true));
    assert_ne!(latch.load() & DIRTY, 0);
    latch.try_lock_exclusive().unwrap();
    assert!(!latch.unlock_exclusive(false));
    assert_ne!(
        latch.load() & DIRTY,
        0,
        "a clean release keeps an earlier dirty bit"
    );
}

#[test]
fn downgrade_clean_leaves_one_shared_holder_and_redirty_restores() {
    let latch = resident();
    latch.try_lock_exclusive().unwrap();
    assert!(!latch.unlock_exclusive(true));
    let v = version(latch.load());
    latch.try_lock_exclusive().unwrap();
    assert!(!latch.downgrade_clean());
    let state = latch.load();
    assert_eq!((shared_count(state), state & (EXCL | DIRTY)), (1, 0));
    assert_eq!(version(state), v + 1);
    latch.redirty();
    assert_ne!(latch.load() & DIRTY, 0);
    assert!(!latch.unlock_shared());
}

#[test]
fn clock_marks_then_evicts_and_access_gives_second_chance() {
    let latch = resident();
    assert_eq!(latch.clock_visit(), ClockVisit::Marked);
    assert_ne!(latch.load() & MARK, 0);
    let begin = latch.optimistic_begin().unwrap();
    latch.clear_mark(begin);
    assert_eq!(latch.load() & MARK, 0);
    assert!(
        latch.optimistic_validate(begin),
        "clearing the mark keeps the version"
    );
    assert_eq!(latch.clock_visit(), ClockVisit::Marked);
    assert_eq!(latch.clock_visit(), ClockVisit::Victim);
    assert_eq!(latch.load() & EXCL, EXCL);
    let v = version(latch.load());
    assert!(!latch.evict());
    let state = latch.load();
    assert_eq!(state & (FREE | EXCL | DIRTY), FREE);
    assert_eq!(version(state), v + 1);
}

#[test]
fn latched_frames_are_skipped_by_the_clock() {
    let latch = resident();
    latch.try_lock_shared().unwrap();
    assert_eq!(latch.clock_visit(), ClockVisit::Skip);
    assert!(!latch.unlock_shared());
    latch.try_lock_exclusive().unwrap();
    assert_eq!(latch.clock_visit(), ClockVisit::Skip);
    assert!(!latch.unlock_exclusive(false));
}

#[test]
fn shared_latch_clears_mark() {
    let latch = resident();
    assert_eq!(latch.clock_visit(), ClockVisit::Marked);
    latch.try_lock_shared().unwrap();
    assert_eq!(latch.load() & MARK, 0);
    assert!(!latch.unlock_shared());
}

#[test]
fn version_wraps_inside_its_field() {
    let state = VERSION_MASK | SHARED_ONE | DIRTY;
    let next = bump_version(state);
    assert_eq!(version(next), 0);
    assert_eq!(next & !VERSION_MASK, state & !VERSION_MASK);
}

#[test]
fn shared_count_overflow_is_reported() {
    let latch = PageLatch {
        state: AtomicU64::new(MAX_SHARED << SHARED_SHIFT),
    };
    assert_eq!(latch.try_lock_shared(), Err(Blocked::Overflow));
}

#[test]
fn waiter_is_woken_by_exclusive_release() {
    use std::sync::Arc;
    let latch = Arc::new(resident());
    let queues = Arc::new(WaitQueues::new(4));
    latch.try_lock_exclusive().unwrap();
    let waiter = {
        let (latch, queues) = (Arc::clone(&latch), Arc::clone(&queues));
        std::thread::spawn(move || {
            queues.wait_while(&latch, 1, blocks_reader);
            latch.try_lock_shared().unwrap();
            assert!(!latch.unlock_shared());
        })
    };
    // Let the waiter reach the parked phase.
    while latch.load() & WAITERS == 0 {
        std::thread::yield_now();
    }
    assert!(
        latch.unlock_exclusive(true),
        "release must report the parked waiter"
    );
    queues.wake(1);
    waiter.join().unwrap();
    assert_eq!(latch.load() & WAITERS, 0);
}

#[test]
fn writer_parked_on_shared_holders_is_woken_by_last_release() {
    use std::sync::Arc;
    let latch = Arc::new(resident());
    let queues = Arc::new(WaitQueues::new(1));
    latch.try_lock_shared().unwrap();
    latch.try_lock_shared().unwrap();
    let writer = {
        let (latch, queues) = (Arc::clone(&latch), Arc::clone(&queues));
        std::thread::spawn(move || {
            queues.wait_while(&latch, 0, blocks_writer);
            latch.try_lock_exclusive().unwrap();
            assert!(!latch.unlock_exclusive(true));
        })
    };
    while latch.load() & WAITERS == 0 {
        std::thread::yield_now();
    }
    assert!(!latch.unlock_shared(), "one holder left: no wake yet");
    assert!(latch.unlock_shared(), "last holder wakes the writer");
    queues.wake(0);
    writer.join().unwrap();
}
