//! Waiting for a page-state word: spin briefly, then park.
//!
//! # What a waiter waits for
//!
//! A waiter comes with the state it saw when it found the frame holding its
//! page (`seen`) and what it [`Want`]s. It waits until the state no longer
//! blocks it **or the version moves**, whichever comes first. The version
//! moves when the holder it waits for releases `EXCL` or when the frame is
//! evicted, and it never moves back within a tenancy (see the module docs
//! of [`crate::latch`]), so a waiter never waits for a *later* holder of
//! the frame: if the frame was evicted and reloaded with another page while
//! it slept, its wait ends and it looks its page up again. Waiting for the
//! new page's holder could deadlock with a thread that waits for a guard
//! the waiter holds.
//!
//! | want         | blocked by                         | may set   |
//! |--------------|------------------------------------|-----------|
//! | `Optimistic` | `EXCL`                             |           |
//! | `Shared`     | `EXCL`, `PENDING`                  | `WAITERS` |
//! | `Exclusive`  | `EXCL`, shared count > 0           | `WAITERS`, `PENDING` (only while held off by readers) |
//!
//! A `FREE` frame blocks nobody: the waiter looks the page up again.
//!
//! # Parking without lost wake-ups
//!
//! Each frame hashes to a [`WaitQueues`] slot (mutex + condvar). A waiter
//! locks the slot's mutex, re-reads the state, and only if it still blocks
//! it with the same version sets `WAITERS` with a CAS on exactly that state
//! (`announce_waiter`), then sleeps on the condvar. Every transition that
//! can end a wait clears `WAITERS` in the same atomic step and, if it was
//! set, calls [`WaitQueues::wake`], which locks the same mutex before
//! notifying: a release that lands after the waiter's check makes the CAS
//! fail (the waiter re-reads), one that lands after the CAS finds `WAITERS`
//! and cannot notify before the waiter sleeps (it needs the mutex). Those
//! transitions: `unlock_exclusive`, `downgrade_clean`, `evict` (all
//! releases of `EXCL`), the last `unlock_shared`, and `withdraw_pending`.
//! A wake-up also rouses the slot's other frames' waiters, which re-check
//! and sleep again.
//!
//! # Tasks
//!
//! An async task cannot park its thread. It registers its `Waker` in the
//! same slot instead ([`WaitQueues::register_waker`]), under the same
//! mutex and with the same re-check and `announce_waiter` CAS, and returns
//! `Pending`; [`WaitQueues::wake`] wakes the slot's wakers registered for
//! that frame along with the parked threads, and the task looks again
//! when it is polled. A task never sets `PENDING` (a task that is dropped
//! while it waits could not withdraw it), so async writers do not hold
//! new readers off.
//!
//! # Writers first
//!
//! A writer held off by shared holders sets `PENDING` (while spinning with
//! [`PageLatch::mark_pending`], or with `WAITERS` when it parks). From then
//! on no new shared latch is granted, the count can only fall, and the last
//! release wakes the writer: a parked writer gets the latch after no more
//! than the shared acquisitions already granted when it asked. The writer
//! that takes `EXCL` clears `PENDING`; one that gives up (its deadline
//! passed) withdraws it and wakes the queue, so that readers held off by it
//! go on and other waiting writers set it again.
//!
//! # Bounded
//!
//! A wait with a deadline returns [`TimedOut`] once it passes (in the std
//! build; the model checkers have no clock and wait without one). The spin
//! phase is skipped under loom, whose scheduler would otherwise run the
//! holder to its release during the spin and never explore the parking
//! code.

use std::task::Waker;
use std::time::Instant;

#[cfg(not(loom))]
use crossbeam_utils::Backoff;
use crossbeam_utils::CachePadded;

use super::{shared_count, version, PageLatch, EXCL, FREE, PENDING};
use crate::sync::{lock, sleep_until, Condvar, Mutex};

/// What a waiting thread is waiting to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Read without a latch: only an exclusive holder is in the way.
    Optimistic,
    /// Take a shared latch: an exclusive holder or a pending writer is in
    /// the way.
    Shared,
    /// Take the exclusive latch: any holder is in the way.
    Exclusive,
}

impl Want {
    /// Whether `state` keeps this access from going ahead now.
    pub(crate) fn blocked_by(self, state: u64) -> bool {
        if state & FREE != 0 {
            return false;
        }
        match self {
            Want::Optimistic => state & EXCL != 0,
            Want::Shared => state & (EXCL | PENDING) != 0,
            Want::Exclusive => state & EXCL != 0 || shared_count(state) != 0,
        }
    }
}

/// A wait's deadline passed while the frame still blocked the waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// Parking places for threads blocked on a latch, shared among frames by
/// hashing the frame id.
#[derive(Debug)]
pub(crate) struct WaitQueues {
    slots: Box<[CachePadded<WaitSlot>]>,
}

#[derive(Debug, Default)]
struct WaitSlot {
    /// The tasks waiting on this slot's frames: `(frame id, waker)`.
    mutex: Mutex<Vec<(usize, Waker)>>,
    condvar: Condvar,
}

impl WaitQueues {
    /// `slot_count` parking places (at least one).
    pub(crate) fn new(slot_count: usize) -> WaitQueues {
        WaitQueues {
            slots: (0..slot_count.max(1))
                .map(|_| CachePadded::new(WaitSlot::default()))
                .collect(),
        }
    }

    fn slot(&self, frame_id: usize) -> &WaitSlot {
        &self.slots[frame_id % self.slots.len()]
    }

    /// Wakes every thread parked for `frame_id` (and its hash neighbours,
    /// which re-check and sleep again).
    pub(crate) fn wake(&self, frame_id: usize) {
        let slot = self.slot(frame_id);
        let mut tasks = lock(&slot.mutex);
        let woken: Vec<Waker> = if tasks.is_empty() {
            Vec::new()
        } else {
            let mut woken = Vec::new();
            tasks.retain(|(frame, waker)| {
                if *frame == frame_id {
                    woken.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            woken
        };
        drop(tasks);
        slot.condvar.notify_all();
        for waker in woken {
            waker.wake();
        }
    }

    /// The task's side of [`wait`](Self::wait): registers `waker` to be
    /// woken when the state may no longer block `want` (see the module
    /// docs), or returns true without registering if it already does not
    /// (or its version moved): the caller looks again instead of waiting.
    pub(crate) fn register_waker(
        &self,
        latch: &PageLatch,
        frame_id: usize,
        seen: u64,
        want: Want,
        waker: &Waker,
    ) -> bool {
        let settled = |state: u64| version(state) != version(seen) || !want.blocked_by(state);
        let slot = self.slot(frame_id);
        let mut tasks = lock(&slot.mutex);
        loop {
            let state = latch.load();
            if settled(state) {
                return true;
            }
            if latch.announce_waiter(state, false) {
                break;
            }
        }
        if !tasks
            .iter()
            .any(|(frame, known)| *frame == frame_id && known.will_wake(waker))
        {
            tasks.push((frame_id, waker.clone()));
        }
        false
    }

    /// Waits until `latch` no longer blocks `want`, or its version differs
    /// from `seen`'s (see the module docs), or `deadline` passes. The
    /// caller must hold no epoch pin and no latch that the awaited holder
    /// could need.
    pub(crate) fn wait(
        &self,
        latch: &PageLatch,
        frame_id: usize,
        seen: u64,
        want: Want,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        let settled = |state: u64| version(state) != version(seen) || !want.blocked_by(state);
        #[cfg(not(loom))]
        {
            let backoff = Backoff::new();
            while !backoff.is_completed() {
                let state = latch.load();
                if settled(state) {
                    return Ok(());
                }
                if want == Want::Exclusive {
                    latch.mark_pending(state);
                }
                backoff.snooze();
            }
        }
        let slot = self.slot(frame_id);
        let mut guard = lock(&slot.mutex);
        loop {
            let state = latch.load();
            if settled(state) {
                return Ok(());
            }
            // A writer held off by readers (not by another writer) asks
            // them to step aside.
            let pending = want == Want::Exclusive && state & EXCL == 0;
            if !latch.announce_waiter(state, pending) {
                continue;
            }
            let (woken, timed_out) = sleep_until(&slot.condvar, guard, deadline);
            guard = woken;
            if timed_out && !settled(latch.load()) {
                drop(guard);
                return Err(self.give_up(latch, frame_id, want));
            }
        }
    }

    /// Leaves a wait whose deadline passed: a writer withdraws `PENDING`.
    fn give_up(&self, latch: &PageLatch, frame_id: usize, want: Want) -> TimedOut {
        if want == Want::Exclusive && latch.withdraw_pending() {
            self.wake(frame_id);
        }
        TimedOut
    }
}
