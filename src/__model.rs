//! Internals exposed to the loom models in `loom-tests/` (under
//! `--cfg loom`) and to the criterion benches (feature `internals`). Thin
//! wrappers: models and benches drive the real protocol code through them.
//! Not part of the API: no stability promise.

use crossbeam_epoch::Guard;

use crate::latch::{self, PageLatch};
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
    /// The raw state word.
    pub fn state(&self) -> u64 {
        self.0.load()
    }
    /// The raw atomic, for protocol variants written in the models.
    pub fn raw(&self) -> &StateWord {
        self.0.raw()
    }
}

/// The page table, keyed by page number of file 0.
#[derive(Debug)]
pub struct Table(PageTable);

impl Table {
    /// A table sized for `frames` frames.
    pub fn new(frames: usize) -> Table {
        Table(PageTable::new(frames))
    }
    /// See `PageTable::lookup`.
    pub fn lookup(&self, page_no: u64, guard: &Guard) -> Option<usize> {
        self.0.lookup(PageId::new(FileId(0), page_no), guard)
    }
    /// See `PageTable::insert`.
    pub fn insert(&self, page_no: u64, frame_id: usize, guard: &Guard) -> Result<(), usize> {
        self.0
            .insert(PageId::new(FileId(0), page_no), frame_id, guard)
    }
    /// See `PageTable::remove`.
    pub fn remove(&self, page_no: u64, frame_id: usize, guard: &Guard) -> bool {
        self.0
            .remove(PageId::new(FileId(0), page_no), frame_id, guard)
    }
}

/// Every frame's state word, for end-of-model checks.
pub fn frame_states(pool: &BufferPool) -> Vec<u64> {
    (0..pool.frame_count())
        .map(|frame_id| pool.frames().meta(frame_id).latch.load())
        .collect()
}
