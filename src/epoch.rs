//! Epoch pins, amortised per thread, and the per-thread state of a pool.
//!
//! Each pool owns a `crossbeam_epoch::Collector`. A thread that uses the
//! pool registers once and keeps a [`ThreadSlot`] in a thread-local list:
//! its `LocalHandle` with that collector, its [`ThreadStats`] and the
//! latches it holds ([`HeldLatches`]).
//!
//! # Why pins are amortised, and how
//!
//! Pinning an unpinned thread costs a full fence, which stalls the core's
//! overlapping of cache misses and costs more than a hit itself. Pinning a
//! thread that is already pinned is a thread-local counter increment.
//! So a thread may hold a *session pin* ([`ThreadPin`](crate::ThreadPin)):
//! while it lives, every pool call on that thread nests inside it and runs
//! no fence. The session pin is refreshed (`repin`) every
//! [`REPIN_EVERY_OPS`] operations (and every as many session hits, below)
//! so the global epoch keeps moving, except while a session read is in
//! progress.
//!
//! # Session reads: a hit with no guard of its own
//!
//! A hit through a `ThreadPin` ([`ThreadSlot::session_read`]) takes no
//! nested crossbeam guard: the session pin already protects the frame, as
//! long as it is neither refreshed nor suspended before the read ends. So
//! the slot counts the session reads begun (`session_reads`), and the
//! hits among them (`Counter::SessionHits`, part of `Stats::hits`); one is
//! in progress while the two differ. The protocol, all on the owning
//! thread:
//!
//! | step | begun | hits | session pin |
//! |---|---|---|---|
//! | begin (only with no suspension: the `SUSPENDED` bit clear) | + 1 | | held by the `ThreadPin` |
//! | a hit ends it | | + 1 | refreshed every [`REPIN_EVERY_OPS`] hits, if none is in progress |
//! | a failed read (or a panicking closure) ends it | − 1 | | |
//! | `pin`'s refresh, every [`REPIN_EVERY_OPS`] operations | | | skipped while one is in progress |
//! | `suspend` (`block`) | sets `SUSPENDED` | | kept while one is in progress, so `block` refuses |
//!
//! The frame comes from the page table's direct-mapped front (no guard
//! needed), else from its buckets under the session pin's own guard
//! ([`ThreadSlot::with_session_guard`]); under loom, where the front is
//! off, every session read takes the second way, so the models run the
//! protocol.
//!
//! Invariants: hits ≤ begun (the low 63 bits; 2^63 reads would take
//! centuries); while a `ThreadPin` is
//! alive and `SUSPENDED` is clear, the session pin is held; a read in
//! progress sees the same pin from its start to its end, as a nested guard
//! would (which is what it replaces: a hit then stores two counters
//! instead of a guard's count twice, a repin count and a hit count).
//!
//! # Nothing blocks while pinned
//!
//! A pinned thread holds back reclamation for the whole pool: frames
//! evicted after it pinned cannot return to the free list until it
//! unpins, so a pinned thread that waits (for I/O, a latch, a free frame,
//! the WAL hook's log flush) can starve every miss of frames. So before
//! anything that can block, the pool calls [`ThreadSlot::block`], which
//! drops the session pin (until the returned [`Suspended`] token drops;
//! suspensions nest; a session read in progress keeps it) and **refuses**
//! with [`Error::WouldBlockWhilePinned`] if the thread is still pinned:
//! that happens only when the call runs inside an optimistic read's
//! closure, whose pin the pool cannot drop under it.
//!
//! A session pin is explicit rather than kept silently in a thread-local
//! because a thread that pins and then idles (blocked on a socket, say)
//! would stop epoch reclamation for the whole pool, and with it the supply
//! of free frames. The owner of a `ThreadPin` decides when its thread idles.
//!
//! # The registry, bounded under thread churn
//!
//! The pool sums its statistics over a registry of every live thread's
//! counters. A thread's slot lives in its thread-local list until the
//! thread exits; the slot's drop then folds its counters into the
//! registry's retired totals and removes them from the list, so a pool
//! used by short-lived threads (`spawn_blocking`, recycled thread pools)
//! keeps a registry as large as the threads alive at once, and totals
//! never go down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Weak};

use crossbeam_epoch::{Collector, Guard, LocalHandle};

use crate::error::{Error, Result};
use crate::held::HeldLatches;
use crate::page::PageId;
use crate::stats::{Counter, Stats, ThreadStats};
use crate::sync::{lock, next_pool_uid, thread_local, Mutex};

/// A session pin is refreshed after this many operations (a small number
/// under loom, so that the models reach `repin`).
#[cfg(not(loom))]
pub(crate) const REPIN_EVERY_OPS: u32 = 128;
/// A session pin is refreshed after this many operations (see above).
#[cfg(loom)]
pub(crate) const REPIN_EVERY_OPS: u32 = 2;

/// The flag of `ThreadSlot::session_reads` set while a suspension is; the
/// bits below it count the session reads begun.
const SUSPENDED: u64 = 1 << 63;

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
    /// Thread slots hold a `Weak` to it: it tells them the pool is alive.
    registry: Arc<Registry>,
}

/// Every live thread's counters, and the totals of those that exited.
struct Registry {
    state: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    live: Vec<Arc<ThreadStats>>,
    retired: Stats,
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
    /// The session pin, when a `ThreadPin` is alive and no suspension is.
    /// Declared before `handle` so it is dropped first.
    session: RefCell<Option<Guard>>,
    session_depth: Cell<u32>,
    suspend_depth: Cell<u32>,
    ops_since_repin: Cell<u32>,
    /// The session reads begun (see [`session_read`](Self::session_read)),
    /// less those that failed, in the low 63 bits; [`SUSPENDED`] while a
    /// suspension is, so that a hit checks both with one load. Those that
    /// hit are counted in `stats` (`Counter::SessionHits`), so one is in
    /// progress while the two counts differ.
    session_reads: Cell<u64>,
    /// Refreshes of the session pin, for the tests.
    #[cfg(test)]
    repins: Cell<u32>,
    handle: LocalHandle,
    pub(crate) stats: Arc<ThreadStats>,
    /// The latches this thread holds on the pool's frames.
    pub(crate) held: HeldLatches,
    /// Live [`OptimisticGuard`](crate::OptimisticGuard)s of this thread:
    /// while any is alive the thread is pinned and may not block.
    pub(crate) optimistic_guards: Cell<u32>,
    /// A page an optimistic guard could not start on without blocking (a
    /// miss, a latched frame): loaded or waited for by the next guard
    /// that starts with none alive (see `access/optimistic_guard.rs`).
    pub(crate) deferred: Cell<Option<PageId>>,
    pool_uid: u64,
    registry: Weak<Registry>,
}

impl EpochDomain {
    pub(crate) fn new() -> EpochDomain {
        EpochDomain {
            collector: Collector::new(),
            uid: next_pool_uid(),
            registry: Arc::new(Registry {
                state: Mutex::new(RegistryState::default()),
            }),
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
        lock(&self.registry.state).live.push(Arc::clone(&stats));
        let slot = Rc::new(ThreadSlot {
            session: RefCell::new(None),
            session_depth: Cell::new(0),
            suspend_depth: Cell::new(0),
            ops_since_repin: Cell::new(0),
            session_reads: Cell::new(0),
            #[cfg(test)]
            repins: Cell::new(0),
            handle: self.collector.register(),
            stats,
            held: HeldLatches::default(),
            optimistic_guards: Cell::new(0),
            deferred: Cell::new(None),
            pool_uid: self.uid,
            registry: Arc::downgrade(&self.registry),
        });
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            // Slots of dropped pools keep their collector alive; shed them.
            slots.retain(|slot| slot.registry.strong_count() > 0);
            slots.push(Rc::clone(&slot));
        });
        slot
    }

    /// Sum of every thread's counters, those of exited threads included.
    pub(crate) fn stats(&self) -> Stats {
        let state = lock(&self.registry.state);
        let mut total = state.retired;
        for stats in &state.live {
            stats.add_to(&mut total);
        }
        total
    }

    /// How many threads' slots the registry holds now.
    #[cfg(test)]
    pub(crate) fn registered_threads(&self) -> usize {
        lock(&self.registry.state).live.len()
    }
}

impl Registry {
    /// Folds an exiting thread's counters into the totals.
    fn retire(&self, stats: &Arc<ThreadStats>) {
        let mut state = lock(&self.state);
        let Some(index) = state.live.iter().position(|live| Arc::ptr_eq(live, stats)) else {
            debug_assert!(false, "a thread slot retired twice");
            return;
        };
        let retired = state.live.swap_remove(index);
        retired.add_to(&mut state.retired);
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // Runs when the thread exits (its thread-local list drops), or
        // when a later registration on this thread sheds the slot of a
        // dropped pool (then the registry is gone too).
        debug_assert_eq!(
            self.held.count(),
            0,
            "a thread slot dropped with latches held"
        );
        if let Some(registry) = self.registry.upgrade() {
            registry.retire(&self.stats);
        }
    }
}

impl ThreadSlot {
    /// Pins for one operation: nested (no fence) inside a session pin,
    /// which is refreshed every [`REPIN_EVERY_OPS`] operations.
    #[inline(always)]
    pub(crate) fn pin(&self) -> Guard {
        self.count_op();
        self.handle.pin()
    }

    /// Counts one operation, and refreshes the session pin when
    /// [`REPIN_EVERY_OPS`] have passed and no session read is in
    /// progress (one in progress leans on the session pin itself, so the
    /// refresh waits for the next operation that starts outside one).
    #[inline(always)]
    fn count_op(&self) {
        let ops = self.ops_since_repin.get().saturating_add(1);
        if ops >= REPIN_EVERY_OPS && !self.in_session_read() {
            self.repin_session();
        } else {
            self.ops_since_repin.set(ops);
        }
    }

    #[cold]
    #[inline(never)]
    fn repin_session(&self) {
        self.ops_since_repin.set(0);
        #[cfg(test)]
        self.repins.set(self.repins.get() + 1);
        if let Some(session) = self.session.borrow_mut().as_mut() {
            // A no-op while an outer guard is alive; crossbeam checks.
            session.repin();
        }
    }

    /// Starts a read that the session pin protects with no guard of its
    /// own, if this thread's session pin is held now (a `ThreadPin` is
    /// alive, as the caller guarantees, and no suspension is); `None`
    /// otherwise, and the caller pins with [`pin`](Self::pin).
    ///
    /// While the returned token lives, the session pin stays: it is not
    /// refreshed (see `count_op`) and a suspension keeps it (see
    /// [`suspend`](Self::suspend)), so [`block`](Self::block) refuses as it
    /// does under a guard.
    #[inline(always)]
    pub(crate) fn session_read(&self) -> Option<SessionRead<'_>> {
        let begun = self.session_reads.get();
        if begun & SUSPENDED != 0 {
            return None;
        }
        debug_assert!(
            self.session_depth.get() > 0,
            "a session read with no session"
        );
        self.session_reads.set(begun + 1);
        Some(SessionRead { slot: self })
    }

    /// Runs `f` with the session pin's guard, which a session read in
    /// progress (`_reading`) keeps held: for a lookup that needs a guard
    /// (the page table's buckets). `None` if there is none, which a
    /// session read's start rules out.
    #[inline]
    pub(crate) fn with_session_guard<R>(
        &self,
        _reading: &SessionRead<'_>,
        f: impl FnOnce(&Guard) -> R,
    ) -> Option<R> {
        self.session.borrow().as_ref().map(f)
    }

    /// Whether a session read is in progress on this thread: more begun
    /// (and not failed) than hit.
    fn in_session_read(&self) -> bool {
        let begun = self.session_reads.get() & !SUSPENDED;
        begun != self.stats.get(Counter::SessionHits)
    }

    /// Refreshes the session pin if no session read is in progress.
    #[cold]
    #[inline(never)]
    fn repin_if_idle(&self) {
        if !self.in_session_read() {
            self.repin_session();
        }
    }

    /// Drops the session pin until the returned token (and every other
    /// suspension) is dropped, so that this thread does not hold the epoch
    /// back while it blocks. Prefer [`block`](Self::block), which also
    /// checks that nothing else keeps the thread pinned.
    pub(crate) fn suspend(&self) -> Suspended<'_> {
        let depth = self.suspend_depth.get();
        self.suspend_depth.set(depth + 1);
        if depth == 0 {
            self.session_reads.set(self.session_reads.get() | SUSPENDED);
        }
        // A session read in progress leans on the session pin: it stays,
        // and `block` sees the thread pinned.
        if !self.in_session_read() {
            drop(self.session.borrow_mut().take());
        }
        Suspended { slot: self }
    }

    /// Suspends the session pin before this thread blocks on something
    /// (I/O, a latch, a free frame, the WAL hook), or refuses with
    /// [`Error::WouldBlockWhilePinned`] (naming `page_id`) if the thread
    /// would still be pinned: the call runs inside an optimistic read's
    /// closure, and blocking under its pin would hold back frame
    /// reclamation for the whole pool. Only slow paths call this.
    pub(crate) fn block(&self, page_id: Option<PageId>) -> Result<Suspended<'_>> {
        let suspended = self.suspend();
        if self.handle.is_pinned() {
            drop(suspended);
            return Err(Error::WouldBlockWhilePinned { page_id });
        }
        Ok(suspended)
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
        if depth == 0 && self.suspend_depth.get() == 0 {
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

/// A read under the session pin ([`ThreadSlot::session_read`]).
pub(crate) struct SessionRead<'a> {
    slot: &'a ThreadSlot,
}

impl SessionRead<'_> {
    /// Ends the read as a hit: counts it, and refreshes the session pin
    /// every [`REPIN_EVERY_OPS`] hits when no other read is in progress.
    #[inline(always)]
    pub(crate) fn hit(self) {
        let slot = self.slot;
        std::mem::forget(self);
        let hits = slot.stats.bump_and_get(Counter::SessionHits);
        if hits.is_multiple_of(u64::from(REPIN_EVERY_OPS)) {
            slot.repin_if_idle();
        }
    }
}

impl Drop for SessionRead<'_> {
    /// A read that failed, or whose closure panicked: no longer begun.
    fn drop(&mut self) {
        let begun = self.slot.session_reads.get();
        debug_assert!(begun & !SUSPENDED > self.slot.stats.get(Counter::SessionHits));
        self.slot.session_reads.set(begun - 1);
    }
}

/// While alive, the thread's session pin is released; when the last
/// suspension drops, the session pin is taken again if a session is open.
pub(crate) struct Suspended<'a> {
    slot: &'a ThreadSlot,
}

impl Drop for Suspended<'_> {
    fn drop(&mut self) {
        let depth = self.slot.suspend_depth.get() - 1;
        self.slot.suspend_depth.set(depth);
        if depth == 0 {
            let begun = self.slot.session_reads.get();
            self.slot.session_reads.set(begun & !SUSPENDED);
        }
        if depth == 0 && self.slot.session_depth.get() > 0 {
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

    /// 10,000 threads that each use the pool once and exit leave a
    /// registry about as large as the threads alive at once, and every one
    /// of their counts in the totals.
    #[test]
    fn exited_threads_leave_the_registry_and_keep_their_counts() {
        const THREADS: u64 = 10_000;
        const AT_ONCE: u64 = 8;
        // A joined scoped thread may still be running its thread-local
        // destructors, so a few slots of the last rounds may linger.
        const BOUND: usize = 1 + 4 * AT_ONCE as usize;
        let domain = EpochDomain::new();
        let _ = domain.slot();
        for _ in 0..THREADS / AT_ONCE {
            std::thread::scope(|scope| {
                for _ in 0..AT_ONCE {
                    scope.spawn(|| domain.slot().stats.bump(Counter::Hits));
                }
            });
            let registered = domain.registered_threads();
            assert!(
                registered <= BOUND,
                "{registered} slots registered with at most {AT_ONCE} threads alive"
            );
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while domain.registered_threads() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(
            domain.registered_threads(),
            1,
            "only this thread's slot is left"
        );
        assert_eq!(domain.stats().hits, THREADS);
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
            {
                let _inner = slot.suspend();
            }
            assert!(
                slot.session.borrow().is_none(),
                "an inner suspension's end does not re-pin under an outer one"
            );
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

    #[test]
    fn a_session_read_needs_a_session_pin_that_is_not_suspended() {
        let domain = EpochDomain::new();
        let slot = domain.slot();
        slot.begin_session();
        let suspended = slot.suspend();
        assert!(
            slot.session_read().is_none(),
            "no session read while the session pin is suspended"
        );
        {
            let _inner = slot.suspend();
            assert!(slot.session_read().is_none());
        }
        assert!(slot.session_read().is_none(), "still under the outer one");
        drop(suspended);
        assert!(slot.session_read().is_some());
        slot.end_session();
    }

    #[test]
    fn the_session_pin_is_not_refreshed_under_a_session_read() {
        let domain = EpochDomain::new();
        let slot = domain.slot();
        slot.begin_session();
        let reading = slot.session_read().expect("a session");
        for _ in 0..(3 * REPIN_EVERY_OPS) {
            drop(slot.pin());
        }
        assert_eq!(slot.repins.get(), 0, "refreshed under a session read");
        // A nested read that hits on a refresh's count does not refresh
        // either.
        for _ in 0..(3 * REPIN_EVERY_OPS) {
            slot.session_read().expect("nested").hit();
        }
        assert_eq!(slot.repins.get(), 0, "a nested hit refreshed");
        reading.hit();
        drop(slot.pin());
        assert_eq!(slot.repins.get(), 1, "refreshed by the first pin after it");
        for _ in 0..REPIN_EVERY_OPS {
            slot.session_read().expect("a session").hit();
        }
        assert_eq!(slot.repins.get(), 2, "session hits refresh on their own");
        assert_eq!(
            slot.stats.get(Counter::SessionHits),
            u64::from(4 * REPIN_EVERY_OPS + 1)
        );
        slot.end_session();
    }

    #[test]
    fn a_failed_session_read_is_no_longer_in_progress() {
        let domain = EpochDomain::new();
        let slot = domain.slot();
        slot.begin_session();
        drop(slot.session_read().expect("a session"));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _reading = slot.session_read().expect("a session");
            panic!("a closure panics");
        }));
        assert!(panicked.is_err());
        assert!(!slot.in_session_read());
        for _ in 0..REPIN_EVERY_OPS {
            drop(slot.pin());
        }
        assert_eq!(slot.repins.get(), 1);
        assert!(slot.block(None).is_ok(), "the session pin is suspended");
        slot.end_session();
    }

    #[test]
    fn blocking_is_refused_under_a_session_read_and_keeps_its_pin() {
        let domain = EpochDomain::new();
        let slot = domain.slot();
        slot.begin_session();
        let reading = slot.session_read().expect("a session");
        assert!(matches!(
            slot.block(None),
            Err(Error::WouldBlockWhilePinned { page_id: None })
        ));
        {
            let _suspended = slot.suspend();
            assert!(slot.handle.is_pinned(), "the read's pin stays");
        }
        assert!(slot.session.borrow().is_some());
        reading.hit();
        assert!(slot.block(None).is_ok());
        slot.end_session();
    }

    #[test]
    fn blocking_is_refused_under_an_outer_pin_only() {
        let domain = EpochDomain::new();
        let slot = domain.slot();
        slot.begin_session();
        let suspended = slot.block(None).expect("a session pin is suspended");
        assert!(!slot.handle.is_pinned());
        drop(suspended);
        assert!(slot.handle.is_pinned(), "the session pin is back");
        let outer = slot.pin();
        let refused = slot.block(None);
        assert!(
            matches!(refused, Err(Error::WouldBlockWhilePinned { page_id: None })),
            "{:?}",
            refused.err()
        );
        drop(outer);
        assert!(
            slot.session.borrow().is_some(),
            "a refusal keeps the session"
        );
        slot.end_session();
    }
}
