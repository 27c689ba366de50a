//! Internals exposed to the loom models in `loom-tests/` (under
//! `--cfg loom`) and to the criterion benches (feature `internals`). Thin
//! wrappers: models and benches drive the real protocol code through them.
//! Not part of the API: no stability promise.

use crossbeam_epoch::Guard;

use crate::latch::{self, Blocked, PageLatch, WaitQueues, Want};
use crate::page::{FileId, PageId};
use crate::pool::BufferPool;
use crate::table::PageTable;

/// The atomic type of a state word.
#[cfg(loom)]
pub type StateWord = loom::sync::atomic::AtomicU64;
/// The atomic type of a state word.
#[cfg(feature = "shuttle")]
pub type StateWord = shuttle::sync::atomic::AtomicU64;
/// The atomic type of a state word.
#[cfg(not(any(loom, feature = "shuttle")))]
pub type StateWord = std::sync::atomic::AtomicU64;

/// Exclusive-holder bit of a state word.
pub const EXCL: u64 = latch::EXCL;
/// Free-frame bit of a state word.
pub const FREE: u64 = latch::FREE;
/// Dirty bit of a state word.
pub const DIRTY: u64 = latch::DIRTY;
/// Parked-waiters bit of a state word.
pub const WAITERS: u64 = latch::WAITERS;
/// Writer-pending bit of a state word.
pub const PENDING: u64 = latch::PENDING;
pub use crossbeam_epoch as epoch;

/// The io_uring engine's combined entries (`src/io/combining.rs`): the
/// production word, driven by the model's submitters.
#[cfg(any(loom, all(target_os = "linux", not(feature = "shuttle"))))]
pub use crate::io::combining::{Combining, Turn};

/// The shared-holder count of a state word.
pub fn shared_count(state: u64) -> u64 {
    latch::shared_count(state)
}

/// The version of a state word.
pub fn version(state: u64) -> u64 {
    latch::version(state)
}

/// One page-state word, driven through the production transitions.
#[derive(Debug)]
pub struct Latch(PageLatch);

impl Default for Latch {
    fn default() -> Self {
        Self::new_resident()
    }
}

impl Latch {
    /// A latch for a resident, unlocked page.
    pub fn new_resident() -> Latch {
        let latch = PageLatch::new_free();
        latch.claim_free();
        let _ = latch.unlock_exclusive(false);
        // Read since it was loaded: off probation, mark clear.
        latch.clear_mark(latch.load());
        Latch(latch)
    }
    /// See `PageLatch::optimistic_begin`.
    pub fn optimistic_begin(&self) -> Option<u64> {
        self.0.optimistic_begin().ok()
    }
    /// See `PageLatch::optimistic_validate`.
    pub fn optimistic_validate(&self, begin: u64) -> bool {
        self.0.optimistic_validate(begin)
    }
    /// See `PageLatch::try_lock_shared`.
    pub fn try_lock_shared(&self) -> bool {
        self.0.try_lock_shared().is_ok()
    }
    /// See `PageLatch::unlock_shared`.
    pub fn unlock_shared(&self) {
        let _ = self.0.unlock_shared();
    }
    /// See `PageLatch::try_lock_exclusive`.
    pub fn try_lock_exclusive(&self) -> bool {
        self.0.try_lock_exclusive().is_ok()
    }
    /// See `PageLatch::unlock_exclusive`.
    pub fn unlock_exclusive(&self) {
        let _ = self.0.unlock_exclusive(true);
    }
    /// See `PageLatch::try_upgrade_optimistic`.
    pub fn try_upgrade_optimistic(&self, begin: u64) -> bool {
        self.0.try_upgrade_optimistic(begin)
    }
    /// See `PageLatch::try_share_optimistic`.
    pub fn try_share_optimistic(&self, begin: u64) -> bool {
        self.0.try_share_optimistic(begin)
    }
    /// See `PageLatch::try_upgrade_shared`.
    pub fn try_upgrade_shared(&self) -> bool {
        self.0.try_upgrade_shared()
    }
    /// See `PageLatch::downgrade` (with a write).
    pub fn downgrade(&self) {
        let _ = self.0.downgrade(true);
    }
    /// The raw state word.
    pub fn state(&self) -> u64 {
        self.0.load()
    }
    /// The raw atomic, for protocol variants written in the models.
    pub fn raw(&self) -> &StateWord {
        self.0.raw()
    }
}

/// One frame's latch with its wait queue, driven through the production
/// acquisition, waiting and release code: the parking models of
/// `loom-tests/tests/parking.rs`. The acquisitions mirror the pool's loops
/// (try, else wait from the state seen, and stop when the version moves).
#[derive(Debug)]
pub struct Parking {
    latch: PageLatch,
    queues: WaitQueues,
    /// Stands for the frame's page id: which tenant holds it.
    tenant: crate::sync::AtomicU64,
}

/// How a blocking acquisition of [`Parking`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The latch is held.
    Held,
    /// The frame changed hands (its version moved or it was freed) while
    /// the thread waited: the pool would look the page up again.
    Moved,
}

impl Default for Parking {
    fn default() -> Self {
        Self::new()
    }
}

impl Parking {
    /// A resident, unlatched frame and one wait slot.
    pub fn new() -> Parking {
        Parking {
            latch: Latch::new_resident().0,
            queues: WaitQueues::new(1),
            tenant: crate::sync::AtomicU64::new(1),
        }
    }
    /// The raw state word.
    pub fn state(&self) -> u64 {
        self.latch.load()
    }
    /// The frame's tenant (1 until a `claim` names another).
    pub fn tenant(&self) -> u64 {
        self.tenant.load(crate::sync::Ordering::Relaxed)
    }
    /// As the pool's loops: try; if blocked, read the state, then the
    /// tenant (as `wait_for_page` reads the state, then the page id); stop
    /// if the frame is free or holds another tenant; else wait from that
    /// state and try again.
    fn acquire(&self, want: Want, attempt: impl Fn(&PageLatch) -> Result<(), Blocked>) -> Acquired {
        loop {
            match attempt(&self.latch) {
                Ok(()) if self.tenant() == 1 => return Acquired::Held,
                Ok(()) => {
                    // Another tenant's latch: give it back, look again.
                    match want {
                        Want::Shared => self.unlock_shared(),
                        Want::Exclusive => {
                            if self.latch.unlock_exclusive(false) {
                                self.queues.wake(0);
                            }
                        }
                        Want::Optimistic => {}
                    }
                    return Acquired::Moved;
                }
                Err(Blocked::Free) => return Acquired::Moved,
                Err(_) => {}
            }
            let seen = self.latch.load();
            if seen & FREE != 0 || self.tenant() != 1 {
                return Acquired::Moved;
            }
            let _ = self.queues.wait(&self.latch, 0, seen, want, None);
        }
    }
    /// Takes a shared latch, waiting as `PoolBuffer::read` does.
    pub fn lock_shared(&self) -> Acquired {
        self.acquire(Want::Shared, PageLatch::try_lock_shared)
    }
    /// Takes the exclusive latch, waiting as `BufferPool::write` does.
    pub fn lock_exclusive(&self) -> Acquired {
        self.acquire(Want::Exclusive, PageLatch::try_lock_exclusive)
    }
    /// Waits until an optimistic read could begin (no exclusive holder),
    /// as the optimistic retry loop does.
    pub fn wait_optimistic(&self) -> Acquired {
        self.acquire(Want::Optimistic, |latch| {
            latch.optimistic_begin().map(|_| ())
        })
    }
    /// Releases a shared latch, waking the queue if the release says so.
    pub fn unlock_shared(&self) {
        if self.latch.unlock_shared() {
            self.queues.wake(0);
        }
    }
    /// Releases the exclusive latch (dirty), waking the queue if needed.
    pub fn unlock_exclusive(&self) {
        if self.latch.unlock_exclusive(true) {
            self.queues.wake(0);
        }
    }
    /// Ends an exclusive hold by evicting, waking the queue if needed.
    pub fn evict(&self) {
        if self.latch.evict() {
            self.queues.wake(0);
        }
    }
    /// Claims the freed frame for tenant `tenant` (exclusive): the tenant
    /// is recorded first, as `FrameMeta::claim` records the page id.
    pub fn claim(&self, tenant: u64) {
        self.tenant.store(tenant, crate::sync::Ordering::Relaxed);
        self.latch.claim_free();
    }
}

/// The page table, keyed by page number of file 0, with the epoch
/// collector that reclaims its overflow entries.
///
/// The table frees an unlinked entry when no thread pinned *in its
/// collector* can still read it, so a guard of any other collector would
/// not protect a reader: every method checks that its guard is one of this
/// table's ([`Table::register`]) and panics otherwise, which keeps this
/// safe API sound. (The pool's own table is only ever used with the pool's
/// collector.)
#[derive(Debug)]
pub struct Table {
    table: PageTable,
    collector: epoch::Collector,
}

impl Table {
    /// A table sized for `frames` frames, with a collector of its own.
    pub fn new(frames: usize) -> Table {
        Table {
            table: PageTable::new(frames),
            collector: epoch::Collector::new(),
        }
    }
    /// A handle of this table's collector for the calling thread; pin it to
    /// get the guards the methods take.
    pub fn register(&self) -> epoch::LocalHandle {
        self.collector.register()
    }
    fn check(&self, guard: &Guard) {
        assert!(
            guard.collector() == Some(&self.collector),
            "a page-table guard must come from the table's own collector (Table::register)"
        );
    }
    /// See `PageTable::lookup`.
    pub fn lookup(&self, page_no: u64, guard: &Guard) -> Option<usize> {
        self.check(guard);
        self.table.lookup(PageId::new(FileId(0), page_no), guard)
    }
    /// See `PageTable::insert`.
    pub fn insert(&self, page_no: u64, frame_id: usize, guard: &Guard) -> Result<(), usize> {
        self.check(guard);
        self.table
            .insert(PageId::new(FileId(0), page_no), frame_id, guard)
    }
    /// See `PageTable::remove`.
    pub fn remove(&self, page_no: u64, frame_id: usize, guard: &Guard) -> bool {
        self.check(guard);
        self.table
            .remove(PageId::new(FileId(0), page_no), frame_id, guard)
    }
    /// See `PageTable::lookup_exact`.
    pub fn lookup_exact(&self, page_no: u64, guard: &Guard) -> Option<usize> {
        self.check(guard);
        self.table
            .lookup_exact(PageId::new(FileId(0), page_no), guard)
    }
}

/// Every frame's state word, for end-of-model checks.
pub fn frame_states(pool: &BufferPool) -> Vec<u64> {
    (0..pool.frame_count())
        .map(|frame_id| pool.frames().meta(frame_id).latch.load())
        .collect()
}

#[cfg(all(test, not(any(loom, feature = "shuttle"))))]
mod tests {
    use super::*;

    #[test]
    fn the_table_takes_guards_of_its_own_collector_only() {
        let table = Table::new(2);
        let handle = table.register();
        let guard = handle.pin();
        table.insert(1, 0, &guard).unwrap();
        assert_eq!(table.lookup(1, &guard), Some(0));
        let stranger = epoch::Collector::new();
        let stranger_handle = stranger.register();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            table.remove(1, 0, &stranger_handle.pin())
        }));
        assert!(outcome.is_err(), "a foreign guard was accepted");
        assert_eq!(table.lookup(1, &guard), Some(0), "nothing was removed");
    }
}

/// One frame's read in flight and its starter (`miss/finish.rs`, "Held
/// for the starter"): the production intent word and the frame's latch.
#[derive(Debug)]
pub struct WantedRead {
    intents: crate::miss::ReadIntents,
    latch: PageLatch,
    claim_version: u64,
}

/// What a starter's look found ([`WantedRead::collect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collected {
    /// The latch is the starter's.
    Latched,
    /// The read has not ended.
    InFlight,
    /// The read failed.
    Failed,
}

impl Default for WantedRead {
    fn default() -> Self {
        Self::new()
    }
}

impl WantedRead {
    /// A frame claimed for a read (`EXCL`) that its starter wants.
    pub fn new() -> WantedRead {
        let latch = PageLatch::new_free();
        latch.claim_free();
        let claim_version = latch::version(latch.load());
        let intents = crate::miss::ReadIntents::new(1);
        intents.want(0, claim_version);
        WantedRead {
            intents,
            latch,
            claim_version,
        }
    }

    /// The read's successful end.
    pub fn end(&self) {
        let _ = self.intents.end_read(&self.latch, 0, self.claim_version);
    }

    /// The read's failed end (before the frame is evicted).
    pub fn fail(&self) {
        self.intents.failed(0, self.claim_version);
        let _ = self.latch.evict();
    }

    /// The starter's look.
    pub fn collect(&self) -> Collected {
        match self.intents.collect(0, self.claim_version) {
            crate::miss::Collected::Latched => Collected::Latched,
            crate::miss::Collected::InFlight => Collected::InFlight,
            crate::miss::Collected::Failed => Collected::Failed,
        }
    }

    /// The starter gives up: true if it must release the latch.
    pub fn abandon(&self) -> bool {
        self.intents.abandon(0, self.claim_version)
    }

    /// Releases a shared latch (the starter's, once collected).
    pub fn release_shared(&self) {
        let _ = self.latch.unlock_shared();
    }

    /// The frame's state word.
    pub fn state(&self) -> u64 {
        self.latch.load()
    }
}
