//! The frame arena: one aligned, zero-initialised block of `N × 4096`
//! bytes, allocated once when the pool opens and freed when it drops, plus
//! each frame's metadata (its page-state word and the page it holds).
//!
//! # Invariants
//!
//! 1. Frame memory is only ever accessed as `AtomicU64` words, except for
//!    the byte views below, whose preconditions make them race-free
//!    (DESIGN.md, memory-model rules 1–3).
//! 2. `frame_id < frame_count` for every frame id the pool hands around;
//!    the accessors assert it.
//! 3. `FrameMeta::page_id` changes only while the frame's latch is held
//!    exclusively (loading) and is read by optimistic readers inside their
//!    validated window, so a stale value never validates.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use crossbeam_utils::CachePadded;

use crate::latch::PageLatch;
use crate::page::{PageId, PAGE_SIZE, PAGE_WORDS};
use crate::sync::{AtomicU64, Ordering};

/// Index of a frame in the arena.
pub(crate) type FrameId = usize;

/// Per-frame metadata, one cache line each.
#[derive(Debug)]
pub(crate) struct FrameMeta {
    /// The page-state word.
    pub(crate) latch: PageLatch,
    /// The raw [`PageId`] held, or [`PageId::NONE_RAW`].
    page_id: AtomicU64,
}

impl FrameMeta {
    /// The page this frame holds (meaningful under a latch or inside a
    /// validated optimistic read).
    pub(crate) fn page_id(&self) -> Option<PageId> {
        match self.page_id.load(Ordering::Relaxed) {
            PageId::NONE_RAW => None,
            raw => Some(PageId::from_raw(raw)),
        }
    }

    /// Records the page held. The caller holds the latch exclusively.
    pub(crate) fn set_page_id(&self, page_id: Option<PageId>) {
        let raw = page_id.map_or(PageId::NONE_RAW, PageId::raw);
        self.page_id.store(raw, Ordering::Relaxed);
    }
}

/// The arena and the metadata of every frame.
pub(crate) struct Frames {
    /// Start of the arena: `frame_count * PAGE_SIZE` bytes, 4096-aligned,
    /// owned by this struct (allocated in `new`, freed in `drop`).
    base: NonNull<AtomicU64>,
    frame_count: usize,
    meta: Box<[CachePadded<FrameMeta>]>,
}

// SAFETY: the arena is only accessed through `AtomicU64` words or through the
// byte views whose callers guarantee exclusion (see their `# Safety`), so
// sharing `Frames` between threads is as safe as sharing `[AtomicU64]`.
unsafe impl Send for Frames {}
// SAFETY: as for `Send`.
unsafe impl Sync for Frames {}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("frame_count", &self.frame_count)
            .finish_non_exhaustive()
    }
}

impl Frames {
    /// Allocates `frame_count` zeroed frames, or `None` if the allocator
    /// refuses (or the size overflows).
    pub(crate) fn new(frame_count: usize) -> Option<Frames> {
        let layout = Self::layout(frame_count)?;
        // SAFETY: `layout` has a non-zero size (frame_count ≥ 1 is checked
        // in `layout`).
        let base = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(base.cast::<AtomicU64>())?;
        let meta = (0..frame_count)
            .map(|_| {
                CachePadded::new(FrameMeta {
                    latch: PageLatch::new_free(),
                    page_id: AtomicU64::new(PageId::NONE_RAW),
                })
            })
            .collect();
        Some(Frames {
            base,
            frame_count,
            meta,
        })
    }

    fn layout(frame_count: usize) -> Option<Layout> {
        if frame_count == 0 {
            return None;
        }
        let size = frame_count.checked_mul(PAGE_SIZE)?;
        Layout::from_size_align(size, PAGE_SIZE).ok()
    }

    /// How many frames the arena holds.
    pub(crate) fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// The metadata of `frame_id`.
    #[inline]
    pub(crate) fn meta(&self, frame_id: FrameId) -> &FrameMeta {
        &self.meta[frame_id]
    }

    /// The frame's memory as atomic words. Always safe: atomics may be
    /// shared and raced on.
    #[inline]
    pub(crate) fn words(&self, frame_id: FrameId) -> &[AtomicU64] {
        assert!(frame_id < self.frame_count);
        // SAFETY: `frame_id < frame_count`, so the range lies inside the
        // arena allocated in `new`, which is zero-initialised (a valid
        // `AtomicU64` bit pattern) and lives as long as `self`.
        unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(frame_id * PAGE_WORDS), PAGE_WORDS)
        }
    }

    /// The frame's memory as bytes.
    ///
    /// # Safety
    ///
    /// For the lifetime of the slice, no thread stores to this frame: the
    /// caller holds the frame's latch shared, or exclusively without
    /// storing through it meanwhile (DESIGN.md rule 3).
    #[inline]
    pub(crate) unsafe fn bytes(&self, frame_id: FrameId) -> &[u8] {
        let words = self.words(frame_id);
        // SAFETY: the words are `PAGE_SIZE` initialised bytes; the caller
        // guarantees no concurrent store, so concurrent atomic loads are
        // reads racing reads, which is not a data race.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), PAGE_SIZE) }
    }

    /// The frame's memory as mutable bytes, for a load from storage.
    ///
    /// # Safety
    ///
    /// For the lifetime of the slice, no other thread accesses this frame
    /// at all: the caller holds the latch exclusively and the frame is
    /// unreachable to optimistic readers (it came off the free list after
    /// its epoch grace period, and no reader proceeds past an `EXCL` state
    /// word) (DESIGN.md rules 2 and 6).
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self, frame_id: FrameId) -> &mut [u8] {
        let words = self.words(frame_id);
        // SAFETY: as for `bytes`, plus the caller's guarantee that nothing
        // else reads or writes the frame while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(words.as_ptr() as *mut u8, PAGE_SIZE) }
    }

    /// Zeroes a frame with atomic stores (for freshly allocated pages).
    pub(crate) fn zero(&self, frame_id: FrameId) {
        for word in self.words(frame_id) {
            word.store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.frame_count) {
            // SAFETY: `base` was allocated in `new` with this same layout and
            // is freed exactly once, here; `&mut self` proves no view into
            // the arena is alive.
            unsafe { dealloc(self.base.as_ptr().cast::<u8>(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_aligned_zeroed_and_disjoint() {
        let frames = Frames::new(3).unwrap();
        for frame_id in 0..3 {
            let words = frames.words(frame_id);
            assert_eq!(words.as_ptr() as usize % PAGE_SIZE, 0);
            assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
            words[0].store(frame_id as u64 + 1, Ordering::Relaxed);
        }
        for frame_id in 0..3 {
            assert_eq!(
                frames.words(frame_id)[0].load(Ordering::Relaxed),
                frame_id as u64 + 1
            );
            assert_eq!(frames.meta(frame_id).page_id(), None);
        }
    }

    #[test]
    fn zero_frames_and_overflowing_sizes_are_refused() {
        assert!(Frames::new(0).is_none());
        assert!(Frames::new(usize::MAX / 2).is_none());
    }

    #[test]
    #[should_panic]
    fn out_of_range_frame_id_panics_inside_the_crate() {
        let frames = Frames::new(1).unwrap();
        let _ = frames.words(1);
    }
}
