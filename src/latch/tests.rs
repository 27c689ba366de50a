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

/// Parks a thread on `latch` (frame 1 of `queues`) for `want`, from the
/// state seen now; returns its handle once it has parked (WAITERS set).
fn park(
    latch: &std::sync::Arc<PageLatch>,
    queues: &std::sync::Arc<WaitQueues>,
    want: Want,
    deadline: Option<std::time::Instant>,
) -> std::thread::JoinHandle<Result<(), TimedOut>> {
    let seen = latch.load();
    assert!(want.blocked_by(seen));
    let waiter = {
        let (latch, queues) = (std::sync::Arc::clone(latch), std::sync::Arc::clone(queues));
        std::thread::spawn(move || queues.wait(&latch, 1, seen, want, deadline))
    };
    while latch.load() & WAITERS == 0 {
        std::thread::yield_now();
    }
    waiter
}

#[test]
fn waiter_is_woken_by_exclusive_release() {
    use std::sync::Arc;
    let latch = Arc::new(resident());
    let queues = Arc::new(WaitQueues::new(4));
    latch.try_lock_exclusive().unwrap();
    let waiter = park(&latch, &queues, Want::Shared, None);
    assert!(
        latch.unlock_exclusive(true),
        "release must report the parked waiter"
    );
    queues.wake(1);
    assert_eq!(waiter.join().unwrap(), Ok(()));
    assert_eq!(latch.load() & WAITERS, 0);
    latch.try_lock_shared().unwrap();
    assert!(!latch.unlock_shared());
}

#[test]
fn writer_parked_on_shared_holders_is_woken_by_last_release() {
    use std::sync::Arc;
    let latch = Arc::new(resident());
    let queues = Arc::new(WaitQueues::new(1));
    latch.try_lock_shared().unwrap();
    latch.try_lock_shared().unwrap();
    let writer = park(&latch, &queues, Want::Exclusive, None);
    assert_ne!(latch.load() & PENDING, 0, "a parked writer is pending");
    assert_eq!(latch.try_lock_shared(), Err(Blocked::Pending));
    assert!(!latch.unlock_shared(), "one holder left: no wake yet");
    assert!(latch.unlock_shared(), "last holder wakes the writer");
    queues.wake(1);
    assert_eq!(writer.join().unwrap(), Ok(()));
    latch.try_lock_exclusive().unwrap();
    assert_eq!(
        latch.load() & PENDING,
        0,
        "the writer's acquisition clears PENDING"
    );
    assert!(!latch.unlock_exclusive(true));
}

/// A waiter must not go on waiting for the frame's next tenant: it slept
/// through the eviction (no wake-up reached it), and the frame was claimed
/// and latched again for another page. Its version moved, so it stops.
#[test]
fn a_wait_ends_when_the_frame_changes_hands_unseen() {
    use std::sync::Arc;
    let latch = Arc::new(resident());
    let queues = Arc::new(WaitQueues::new(4));
    latch.try_lock_exclusive().unwrap();
    let seen = latch.load();
    // Evicted and reclaimed without a wake-up: the waiter, had it parked
    // on `seen`, would see EXCL again now.
    let _ = latch.evict();
    latch.claim_free();
    assert!(Want::Shared.blocked_by(latch.load()));
    // A deadline only so that a regression fails instead of hanging.
    let deadline = || Some(std::time::Instant::now() + std::time::Duration::from_secs(5));
    assert_eq!(
        queues.wait(&latch, 1, seen, Want::Shared, deadline()),
        Ok(())
    );
    // And one that parked is woken by the version move, not by the holder
    // of the next tenancy.
    let waiter = park(&latch, &queues, Want::Exclusive, deadline());
    let _ = latch.evict();
    latch.claim_free();
    queues.wake(1);
    assert_eq!(waiter.join().unwrap(), Ok(()));
    assert_ne!(
        latch.load() & EXCL,
        0,
        "the new tenant's loader still holds it"
    );
}

#[test]
fn pending_writer_lets_holders_take_more_but_no_one_new() {
    let latch = resident();
    latch.try_lock_shared().unwrap();
    assert!(latch.mark_pending(latch.load()));
    assert_eq!(latch.try_lock_shared(), Err(Blocked::Pending));
    let begin = latch
        .optimistic_begin()
        .expect("optimistic readers ignore PENDING");
    assert!(latch.optimistic_validate(begin));
    latch.lock_shared_again().unwrap();
    assert_eq!(shared_count(latch.load()), 2);
    assert!(!latch.unlock_shared());
    assert!(!latch.unlock_shared());
    assert_eq!(latch.clock_visit(), ClockVisit::Marked);
    assert!(!latch.mark_pending(latch.load()) || latch.load() & PENDING != 0);
    latch.try_lock_exclusive().unwrap();
    assert_eq!(latch.load() & PENDING, 0);
    assert!(!latch.unlock_exclusive(false));
}

#[test]
fn a_writer_that_times_out_withdraws_pending_and_wakes_readers() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let latch = Arc::new(resident());
    let queues = Arc::new(WaitQueues::new(4));
    latch.try_lock_shared().unwrap();
    latch.mark_pending(latch.load());
    // A reader held off by the pending writer parks too.
    let reader = park(&latch, &queues, Want::Shared, None);
    let deadline = Instant::now() + Duration::from_millis(50);
    let seen = latch.load();
    assert_eq!(
        queues.wait(&latch, 1, seen, Want::Exclusive, Some(deadline)),
        Err(TimedOut)
    );
    assert_eq!(latch.load() & PENDING, 0, "withdrawn");
    assert_eq!(reader.join().unwrap(), Ok(()), "the reader was woken");
    latch.try_lock_shared().unwrap();
    assert_eq!(shared_count(latch.load()), 2);
}

#[test]
fn eviction_clears_pending_and_a_claim_starts_clean() {
    let latch = resident();
    latch.try_lock_shared().unwrap();
    latch.mark_pending(latch.load());
    assert!(!latch.unlock_shared());
    assert_eq!(latch.clock_visit(), ClockVisit::Marked);
    assert_eq!(latch.clock_visit(), ClockVisit::Victim);
    let _ = latch.evict();
    assert_eq!(latch.load() & (PENDING | WAITERS | EXCL), 0);
    latch.claim_free();
    assert_eq!(latch.load() & (PENDING | WAITERS | DIRTY | FREE), 0);
}
