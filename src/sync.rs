//! The one place that names atomics, locks, fences and thread-locals.
//!
//! Every concurrent module imports these names from here, never from `std`
//! directly, so that the same protocol code can be compiled against a model
//! checker (`loom`, `shuttle`) by swapping this module alone. Today it
//! re-exports `std`; the checker variants plug in here.

pub(crate) use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, RwLock};
pub(crate) use std::thread_local;

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
///
/// The pool's mutexes guard plain bookkeeping (free-frame stacks, wait
/// queues) whose invariants hold at every unlock, so poisoning carries no
/// information worth a panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
