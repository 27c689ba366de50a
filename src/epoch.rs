//! Epoch pins, amortised per thread, and the per-thread state of a pool.
//!
//! Each pool owns a `crossbeam_epoch::Collector`. A thread that uses the
//! pool registers once and keeps a [`ThreadSlot`] in a thread-local list:
//! its `LocalHandle` with that collector and its [`ThreadStats`].
//!
//! # Why pins are amortised, and how
//!
//! Pinning an unpinned thread costs a full fence, which stalls the core's
//! overlapping of cache misses and costs more than a hit itself. Pinning a
//! thread that is already pinned is a thread-local counter increment.
//! So a thread may hold a *session pin* ([`ThreadPin`](crate::ThreadPin)):
//! while it lives, every pool call on that thread nests inside it and runs
//! no fence. The session pin is refreshed (`repin`) every
//! [`REPIN_EVERY_OPS`] operations so the global epoch keeps moving, and it
//! is dropped ([`ThreadSlot::suspend`]) before anything that can block:
//! I/O, waiting on a latch, waiting for a free frame. Without a session,
//! each call pins for its own duration (one fence).
//!
//! A session pin is explicit rather than kept silently in a thread-local
//! because a thread that pins and then idles (blocked on a socket, say)
//! would stop epoch reclamation for the whole pool, and with it the supply
//! of free frames. The owner of a `ThreadPin` decides when its thread idles.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Weak};

use crossbeam_epoch::{Collector, Guard, LocalHandle};

use crate::stats::{Stats, ThreadStats};
use crate::sync::{lock, next_pool_uid, thread_local, Mutex};

/// A session pin is refreshed after this many operations.
pub(crate) const REPIN_EVERY_OPS: u32 = 128;

thread_local! {
    // Not `const`-initialised: loom's and shuttle's `thread_local!` do not
    // accept that form.
    #[allow(clippy::missing_const_for_thread_local)]
    static SLOTS: RefCell<Vec<Rc<ThreadSlot>>> = RefCell::new(Vec::new());
}

/// A pool's epoch domain: its collector and the registry of per-thread
/// counters.
pub(crate) struct EpochDomain {
    collector: Collector,
    uid: u64,
    /// Dropped with the pool; thread slots hold a `Weak` to notice that.
    alive: Arc<()>,
    thread_stats: Mutex<Vec<Arc<ThreadStats>>>,
}

impl std::fmt::Debug for EpochDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochDomain")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

/// One thread's state for one pool. Only that thread touches it.
pub(crate) struct ThreadSlot {
    /// The session pin, when a `ThreadPin` is alive (and not suspended).
    /// Declared before `handle` so it is dropped first.
    session: RefCell<Option<Guard>>,
    session_depth: Cell<u32>,
    ops_since_repin: Cell<u32>,
    handle: LocalHandle,
    pub(crate) stats: Arc<ThreadStats>,
    pool_uid: u64,
    pool_alive: Weak<()>,
}

impl EpochDomain {
    pub(crate) fn new() -> EpochDomain {
        EpochDomain {
            collector: Collector::new(),
            uid: next_pool_uid(),
            alive: Arc::new(()),
            thread_stats: Mutex::new(Vec::new()),
        }
    }

    /// This thread's slot, registering it on first use.
    #[inline]
    pub(crate) fn slot(&self) -> Rc<ThreadSlot> {
        let found = SLOTS.with(|slots| {
            slots
                .borrow()
                .iter()
                .find(|slot| slot.pool_uid == self.uid)
                .cloned()
        });
        found.unwrap_or_else(|| self.register())
    }

    #[cold]
    fn register(&self) -> Rc<ThreadSlot> {
        let stats = Arc::new(ThreadStats::default());
        lock(&self.thread_stats).push(Arc::clone(&stats));
        let slot = Rc::new(ThreadSlot {
            session: RefCell::new(None),
            session_depth: Cell::new(0),
            ops_since_repin: Cell::new(0),
            handle: self.collector.register(),
            stats,
            pool_uid: self.uid,
            pool_alive: Arc::downgrade(&self.alive),
        });
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            // Slots of dropped pools keep their collector alive; shed them.
            slots.retain(|slot| slot.pool_alive.strong_count() > 0);
            slots.push(Rc::clone(&slot));
        });
        slot
    }

    /// Sum of every thread's counters.
    pub(crate) fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for stats in lock(&self.thread_stats).iter() {
            stats.add_to(&mut total);
        }
        total
    }
}

impl ThreadSlot {
    /// Pins for one operation: nested (no fence) inside a session pin,
    /// which is refreshed every [`REPIN_EVERY_OPS`] operations.
    #[inline(always)]
    pub(crate) fn pin(&self) -> Guard {
        let ops = self.ops_since_repin.get() + 1;
        if ops >= REPIN_EVERY_OPS {
            self.ops_since_repin.set(0);
            if let Some(session) = self.session.borrow_mut().as_mut() {
                // A no-op while an outer guard is alive; crossbeam checks.
                session.repin();
            }
        } else {
            self.ops_since_repin.set(ops);
        }
        self.handle.pin()
    }

    /// Drops the session pin until the returned token is dropped, so that
    /// this thread does not hold the epoch back while it blocks. The caller
    /// must hold no guard of its own.
    pub(crate) fn suspend(&self) -> Suspended<'_> {
        drop(self.session.borrow_mut().take());
        Suspended { slot: self }
    }

    /// Pins, asks the collector to advance and run due destructors, and
    /// unpins: used while waiting for frames to come back from the epoch.
    pub(crate) fn collect(&self) {
        let suspended = self.suspend();
        let guard = self.handle.pin();
        guard.flush();
        drop(guard);
        drop(suspended);
    }

    /// Starts (or nests) a session pin.
    pub(crate) fn begin_session(&self) {
        let depth = self.session_depth.get();
        if depth == 0 {
            *self.session.borrow_mut() = Some(self.handle.pin());
        }
        self.session_depth.set(depth + 1);
    }

    /// Ends one level of session pin.
    pub(crate) fn end_session(&self) {
        let depth = self.session_depth.get();
        debug_assert!(depth > 0);
        self.session_depth.set(depth - 1);
        if depth == 1 {
            drop(self.session.borrow_mut().take());
        }
    }
}

/// While alive, the thread's session pin is released; dropping it re-pins
/// if a session is still open.
pub(crate) struct Suspended<'a> {
    slot: &'a ThreadSlot,
}

impl Drop for Suspended<'_> {
    fn drop(&mut self) {
        if self.slot.session_depth.get() > 0 {
            let mut session = self.slot.session.borrow_mut();
            if session.is_none() {
                *session = Some(self.slot.handle.pin());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counter;

    #[test]
    fn one_slot_per_thread_and_pool_and_stats_sum_across_threads() {
        let domain = EpochDomain::new();
        let a = domain.slot();
        let b = domain.slot();
        assert!(Rc::ptr_eq(&a, &b));
        a.stats.bump(Counter::Hits);
        std::thread::scope(|scope| {
            scope.spawn(|| domain.slot().stats.bump(Counter::Hits));
        });
        assert_eq!(domain.stats().hits, 2);
    }

    #[test]
    fn slots_of_dropped_pools_are_shed() {
        for _ in 0..10 {
            let domain = EpochDomain::new();
            let _ = domain.slot();
        }
        let domain = EpochDomain::new();
        let _ = domain.slot();
        let live = SLOTS.with(|slots| slots.borrow().len());
        assert!(live <= 2, "{live} slots kept");
    }

    #[test]
    fn session_pin_nests_and_suspends() {
        let domain = EpochDomain::new();
        let slot = domain.slot();
        slot.begin_session();
        slot.begin_session();
        assert!(slot.session.borrow().is_some());
        {
            let _suspended = slot.suspend();
            assert!(slot.session.borrow().is_none());
        }
        assert!(
            slot.session.borrow().is_some(),
            "re-pinned after suspension"
        );
        slot.end_session();
        assert!(slot.session.borrow().is_some());
        slot.end_session();
        assert!(slot.session.borrow().is_none());
        for _ in 0..(3 * REPIN_EVERY_OPS) {
            drop(slot.pin());
        }
    }
}
