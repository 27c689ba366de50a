//! The one place that names atomics, locks, fences, thread-locals and
//! cells.
//!
//! Every concurrent module imports these names from here, never from `std`
//! directly, so the same protocol code compiles against three back ends:
//!
//! | build                                   | back end                         |
//! |-----------------------------------------|----------------------------------|
//! | default                                 | `std`                            |
//! | `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"` | `loom` (exhaustive models)  |
//! | `--features shuttle`                    | `shuttle` (randomized schedules) |
//!
//! Under either checker, frame memory is the checker's atomics too (so the
//! seqlock's data loads and stores are modelled), pages are small
//! ([`PAGE_SIZE`](crate::PAGE_SIZE) = 32 bytes under loom, 64 under
//! shuttle) and guards have no `Deref` to bytes (use `view()`). Under loom
//! every frame also carries an [`AccessTracker`]: bulk, non-atomic access
//! to a frame (an `O_DIRECT` read into it, a write-back out of it) and
//! optimistic reads of it are declared to loom, which reports any that are
//! not ordered by happens-before (a frame reused while a reader may still
//! be reading it).

#[cfg(all(loom, feature = "shuttle"))]
compile_error!("choose one model checker: `--cfg loom` or `--features shuttle`, not both");

#[cfg(not(any(loom, feature = "shuttle")))]
mod imp {
    pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use std::thread;
    pub(crate) use std::thread::yield_now;
    pub(crate) use std::thread_local;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use loom::thread;
    pub(crate) use loom::thread::yield_now;
    pub(crate) use loom::thread_local;
}

#[cfg(feature = "shuttle")]
mod imp {
    pub(crate) use shuttle::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
    pub(crate) use shuttle::sync::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use shuttle::thread;
    pub(crate) use shuttle::thread::yield_now;
    pub(crate) use shuttle::thread_local;
}

pub(crate) use imp::*;
pub(crate) use std::sync::atomic::Ordering;

#[cfg(any(loom, feature = "shuttle"))]
pub(crate) use imp::AtomicU64 as FrameWord;
/// The word type of frame memory: the checker's atomics under a checker
/// (data loads and stores are part of the model: a reader can be
/// interleaved inside a writer's page update), `std`'s otherwise (a plain,
/// 4096-aligned arena that storage reads and writes in place).
#[cfg(not(any(loom, feature = "shuttle")))]
pub(crate) use std::sync::atomic::AtomicU64 as FrameWord;

/// Counters that are not part of any protocol (statistics): always `std`,
/// so they add no states to a model.
pub(crate) use std::sync::atomic::AtomicU64 as PlainCounter;

/// A fresh id for a pool, never reused within the process.
pub(crate) fn next_pool_uid() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
///
/// The pool's mutexes guard plain bookkeeping (free-frame queues, wait
/// queues, bucket writers) whose invariants hold at every unlock, so
/// poisoning carries no information worth a panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sleeps on `condvar` (releasing `guard`) until notified or, in the std
/// build, until `deadline`; returns the guard and whether the deadline has
/// passed. The model checkers have no clock: there the deadline is ignored
/// and only a notification (or a spurious wake-up) ends the sleep.
pub(crate) fn sleep_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
) -> (MutexGuard<'a, T>, bool) {
    #[cfg(not(any(loom, feature = "shuttle")))]
    if let Some(deadline) = deadline {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return (guard, true);
        };
        let (guard, result) = condvar
            .wait_timeout(guard, left)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        return (guard, result.timed_out());
    }
    #[cfg(any(loom, feature = "shuttle"))]
    let _ = deadline;
    let guard = condvar
        .wait(guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (guard, false)
}

/// Pauses a thread that waits for something another thread must do
/// (frames coming back through the epoch): sleeps briefly in production,
/// yields to the scheduler under a model checker (which has no clock).
pub(crate) fn pause() {
    #[cfg(not(any(loom, feature = "shuttle")))]
    std::thread::sleep(std::time::Duration::from_micros(50));
    #[cfg(any(loom, feature = "shuttle"))]
    imp::yield_now();
}

/// Declares accesses to a frame's memory to loom; free otherwise.
///
/// `read` spans an optimistic read or a bulk copy out of the frame;
/// `write` spans a bulk (non-atomic) fill of the frame from storage. Loom
/// checks that every `write` is ordered by happens-before after every
/// earlier `read` and `write` of the same frame, which is exactly the
/// epoch's promise (docs/design.md rule 6).
#[derive(Debug, Default)]
pub(crate) struct AccessTracker {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<()>,
}

// SAFETY: the tracker holds no data (`()`); it only reports accesses to
// loom, which checks them across threads. Sharing it is what it is for.
#[cfg(loom)]
unsafe impl Sync for AccessTracker {}

impl AccessTracker {
    /// Runs `f` as a read of the frame.
    #[inline]
    pub(crate) fn read<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(loom)]
        return self.cell.with(|_| f());
        #[cfg(not(loom))]
        f()
    }

    /// Starts a read of the frame that lasts until the returned span
    /// drops (an optimistic guard's reads, which are not one closure).
    #[inline]
    pub(crate) fn begin_read(&self) -> ReadSpan {
        #[cfg(loom)]
        return ReadSpan(self.cell.get());
        #[cfg(not(loom))]
        ReadSpan()
    }

    /// Runs `f` as an exclusive write of the frame.
    #[inline]
    pub(crate) fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(loom)]
        return self.cell.with_mut(|_| f());
        #[cfg(not(loom))]
        f()
    }
}

/// A read of a frame declared to loom for as long as it lives (see
/// [`AccessTracker::begin_read`]); nothing otherwise.
#[derive(Debug)]
pub(crate) struct ReadSpan(
    // Held only for its drop, which ends the access loom tracks.
    #[cfg(loom)]
    #[allow(dead_code)]
    loom::cell::ConstPtr<()>,
);
