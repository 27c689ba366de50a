//! Frame hints: where a page was last seen, so that an engine that
//! remembers it can skip the page table.
//!
//! A descent through a tree pays, at every level, for translating the
//! child's page id into its frame: a page-table bucket, a cache line that
//! misses once the tree is larger than the caches, and only then the
//! child's state word and data (which depend on the frame). A
//! [`FrameHint`] is that frame, as a number an engine stores beside the
//! page id it belongs to (a B+-tree beside each child pointer, in the
//! parent node) and gives back with
//! [`OptimisticGuard::child_hinted`]. With a right hint the step to the
//! child is its state word and its data, fetched together.
//!
//! # Protocol
//!
//! A hint is never trusted. `child_hinted` validates the parent first (as
//! [`child`](OptimisticGuard::child) does), pins, and then starts on the
//! hinted frame only if all of these hold, read in this order:
//!
//! 1. the hint names a frame of this pool (a bounds check: the hint may
//!    be any number, read from any bytes);
//! 2. the frame's state word lets an optimistic read begin (no `EXCL`,
//!    no `FREE`), `Acquire`;
//! 3. the frame's page id is the child's.
//!
//! State first, page id second, as every lookup of the page table does
//! (`pool.rs`, "Waiting only for what can end"): a frame's page id changes
//! only while it is `EXCL` or `FREE`, and every such period ends with a
//! new version, so a page id seen after a begin belongs to the tenancy of
//! that begin, and the guard's validation fails if the tenancy ended
//! since. Any other hint — out of range, another page's frame, a free or
//! latched frame — falls back to the page table (`child`'s path), so a
//! wrong hint costs a state-word load and never a wrong page. This is the
//! reasoning that already makes the table's own answers hints (`table.rs`:
//! a slot can name the frame of the slot's next tenant).
//!
//! The pin is taken before step 2, so the frame cannot be recycled under
//! the reads that follow (docs/design.md rule 6).
//!
//! # Keeping hints fresh
//!
//! A hint goes stale when its page is evicted and loaded into another
//! frame, or when the file is opened by another pool. The engine learns
//! it when the child's guard names another frame
//! ([`OptimisticGuard::frame_hint`]) than the hint it gave, and can write
//! the new one into the parent with [`OptimisticGuard::store_frame_hint`]:
//! one compare-and-swap that takes the parent's exclusive latch only if
//! the parent is unchanged since its guard began (as
//! [`upgrade`](OptimisticGuard::upgrade)), the store, and a release that
//! advances the version without marking the page dirty. The guard goes on
//! from the new version, since nothing but its own store happened under
//! the latch. The store is *unlogged*: the page is not made dirty for it,
//! so it reaches the file only with a later change of the page, and a
//! clean eviction forgets it. That is what a hint may be: bytes an engine
//! reads only as a hint, which any value (a stale one, a lost one, one
//! from another process) leaves correct.
//!
//! An unlogged store makes a clean frame differ from the page as written
//! (and from the checksum stamped into the frame's trailer then). Nothing
//! reads a clean frame as the file's copy except the image the pool keeps
//! of a page evicted before its file is synced (`miss/clock.rs`), which is
//! stamped again when it is taken; every write stamps the frame anew.
//!
//! Writers store hints as ordinary bytes (a page's new frame is
//! [`PageMut::frame_hint`]); those stores are logged and dirty the page
//! like any other.

use crate::page::PageId;
use crate::stats::Counter;
use crate::view::{check, store_bytes, OutOfBounds};

use super::{OlcError, OptimisticGuard, PageMut, PageRef};

/// A frame of the pool, as an engine remembers it beside a page id: see
/// the module docs. Any value is safe to pass back; only a right one is
/// fast.
///
/// ```
/// use pagepool::FrameHint;
/// let hint = FrameHint::from_bits(17);
/// assert_eq!(hint.to_bits(), 17);
/// assert_eq!(FrameHint::from_bits(FrameHint::NONE.to_bits()), FrameHint::NONE);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameHint(u32);

impl FrameHint {
    /// No frame in particular: a placeholder for a page whose frame is not
    /// known (checked like any other hint, as every value is).
    pub const NONE: FrameHint = FrameHint(u32::MAX);

    /// The hint stored as `bits` (from [`to_bits`](Self::to_bits), or any
    /// bytes at all).
    #[inline]
    pub const fn from_bits(bits: u32) -> FrameHint {
        FrameHint(bits)
    }

    /// The hint as a number to store.
    #[inline]
    pub const fn to_bits(self) -> u32 {
        self.0
    }

    /// The frame of `frame_id` (frame ids fit 32 bits: `MAX_FRAMES`).
    #[inline]
    pub(crate) fn of(frame_id: usize) -> FrameHint {
        FrameHint(frame_id as u32)
    }
}

impl<'pool> OptimisticGuard<'pool> {
    /// The frame this guard reads, as a hint for the next descent to its
    /// page.
    #[inline]
    pub fn frame_hint(&self) -> FrameHint {
        FrameHint::of(self.frame_id)
    }

    /// [`child`](Self::child), starting on the frame `hint` names if it
    /// holds `child` (module docs): no page-table lookup with a right
    /// hint; the table's path, unchanged, with any other.
    #[inline]
    pub fn child_hinted(
        &self,
        child: PageId,
        hint: FrameHint,
    ) -> Result<OptimisticGuard<'pool>, OlcError> {
        self.couple(|| match self.start_at_hint(child, hint) {
            Some(guard) => Ok(guard),
            None => {
                self.slot.stats.bump(Counter::FrameHintMisses);
                self.pool.start_optimistic_guard(child, &self.slot)
            }
        })
    }

    /// A guard on `page_id` at the frame `hint` names, if the frame holds
    /// it and can be read optimistically now (steps 1–3 of the module
    /// docs).
    #[inline]
    fn start_at_hint(&self, page_id: PageId, hint: FrameHint) -> Option<OptimisticGuard<'pool>> {
        let frame_id = hint.0 as usize;
        let frames = self.pool.frames();
        if frame_id >= frames.frame_count() {
            return None;
        }
        let pin = self.slot.pin();
        frames.prefetch(frame_id, super::optimistic_guard::GUARD_PREFETCH_LINES);
        let meta = frames.meta(frame_id);
        let begin = meta.latch.optimistic_begin().ok()?;
        if meta.page_id_raw() != page_id.raw() {
            return None;
        }
        Some(
            self.pool
                .begun_guard(&self.slot, frame_id, page_id, begin, pin),
        )
    }

    /// Stores `hint` (its bits, little-endian) at `offset` of this guard's
    /// page without making the page dirty, if the page is unchanged since
    /// the guard began and nobody holds a latch on it; the guard then goes
    /// on from the page's new version. `Ok(false)`: nothing was stored and
    /// the guard is as it was (a later [`check`](Self::check) says whether
    /// it still validates). See the module docs: such a store is unlogged,
    /// and a clean eviction forgets it.
    ///
    /// Never waits: one compare-and-swap, a store, a release.
    pub fn store_frame_hint(
        &mut self,
        offset: usize,
        hint: FrameHint,
    ) -> Result<bool, OutOfBounds> {
        let bytes = hint.0.to_le_bytes();
        check(offset, bytes.len())?;
        let frames = self.pool.frames();
        let meta = frames.meta(self.frame_id);
        if !meta.latch.try_upgrade_optimistic(self.begin) {
            return Ok(false);
        }
        // EXCL is held, and `try_upgrade_optimistic` issued the writer's
        // release fence: the stores are a writer's (docs/design.md rule 4).
        meta.access
            .write(|| store_bytes(frames.words(self.frame_id), offset, &bytes));
        let (state, wake) = meta.latch.unlock_exclusive_unlogged();
        self.slot.stats.bump(Counter::FrameHintStores);
        if wake {
            self.pool.queues.wake(self.frame_id);
        }
        debug_assert!(state & (crate::latch::EXCL | crate::latch::FREE) == 0);
        self.begin = state;
        Ok(true)
    }
}

impl PageRef<'_> {
    /// The frame this guard latches, as a hint for later reads of its page.
    #[inline]
    pub fn frame_hint(&self) -> FrameHint {
        FrameHint::of(self.frame_id)
    }
}

impl PageMut<'_> {
    /// The frame this guard latches, as a hint for later reads of its page
    /// (a tree stores a new node's hint in its parent).
    #[inline]
    pub fn frame_hint(&self) -> FrameHint {
        FrameHint::of(self.frame_id)
    }
}
