//! The frame arena: one aligned, zero-initialised block of `N × 4096`
//! bytes, allocated once when the pool opens and freed when it drops, plus
//! each frame's metadata (its page-state word and the page it holds).
//!
//! # Invariants
//!
//! 1. Frame memory is only ever accessed as atomic words, except through
//!    [`Frames::with_bytes`] and [`Frames::fill_bytes`], whose callers
//!    guarantee exclusion (docs/design.md rules 1–3 and 6).
//! 2. `frame_id < frame_count` for every frame id the pool hands around;
//!    the accessors assert it, or ([`Frames::frame`], for a hint straight
//!    from the page table's direct-mapped front) answer `None`.
//! 3. `FrameMeta::page_id` changes only while the frame's latch is held
//!    exclusively, or while the frame is `FREE` and off the free list just
//!    before [`FrameMeta::claim`]; optimistic readers read it inside their
//!    validated window, so a stale value never validates, and a waiter
//!    that sees a claimed state sees the page id recorded before it.
//!
//! Under a model checker the arena is a boxed slice of the checker's
//! atomics (no byte views; the bulk accessors copy word by word) and pages
//! are a few words; see [`crate::sync`].

use crate::latch::PageLatch;
use crate::page::{PageId, PAGE_SIZE, PAGE_WORDS};
use crate::sync::{AccessTracker, AtomicU64, FrameWord, Ordering};

/// Index of a frame in the arena.
pub(crate) type FrameId = usize;

/// Per-frame metadata: the state word and the page id, 16 bytes, packed
/// four to a cache line as vmcache packs its page states. A hit reads one
/// line here, and the whole array (a 256th of the arena) stays in cache.
/// Neighbouring frames' latches share a line; their writes (latching,
/// eviction) are rare next to optimistic reads, which write nothing.
#[derive(Debug)]
pub(crate) struct FrameMeta {
    /// The page-state word.
    pub(crate) latch: PageLatch,
    /// The raw [`PageId`] held, or [`PageId::NONE_RAW`].
    page_id: AtomicU64,
    /// Declares bulk and optimistic accesses to loom (free otherwise).
    pub(crate) access: AccessTracker,
}

impl FrameMeta {
    /// The raw page id this frame holds, or [`PageId::NONE_RAW`]
    /// (meaningful under a latch or inside a validated optimistic read).
    #[inline(always)]
    pub(crate) fn page_id_raw(&self) -> u64 {
        self.page_id.load(Ordering::Relaxed)
    }

    /// The page this frame holds (meaningful under a latch or inside a
    /// validated optimistic read).
    #[inline]
    pub(crate) fn page_id(&self) -> Option<PageId> {
        match self.page_id.load(Ordering::Relaxed) {
            PageId::NONE_RAW => None,
            raw => Some(PageId::from_raw(raw)),
        }
    }

    /// Takes a free frame (`FREE`, off the free list) for `page_id`: records
    /// the page id, then takes the latch exclusively with a `Release`
    /// store, so that whoever sees the claimed state sees the page id.
    pub(crate) fn claim(&self, page_id: PageId) {
        self.set_page_id(Some(page_id));
        self.latch.claim_free();
    }

    /// Records the page held. The caller holds the latch exclusively.
    pub(crate) fn set_page_id(&self, page_id: Option<PageId>) {
        let raw = page_id.map_or(PageId::NONE_RAW, PageId::raw);
        self.page_id.store(raw, Ordering::Relaxed);
    }
}

/// The arena and the metadata of every frame.
pub(crate) struct Frames {
    arena: arena::Arena,
    meta: Box<[FrameMeta]>,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("frame_count", &self.meta.len())
            .finish_non_exhaustive()
    }
}

/// Builds a boxed slice of `len` values of `make`, asking the kernel to
/// back it with transparent huge pages before it is first touched.
///
/// The pool's large per-frame and per-bucket arrays are read at random on
/// every access (a bucket line, a state word); with 4 KiB pages most such
/// reads would miss the TLB as well as the cache once the arrays outgrow
/// what the TLB maps (a few MiB), and the walk would cost as much again.
pub(crate) fn huge_slice<T>(len: usize, make: impl FnMut(usize) -> T) -> Box<[T]> {
    let mut values: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(values.as_ptr().cast(), len * std::mem::size_of::<T>());
    values.extend((0..len).map(make));
    values.into_boxed_slice()
}

/// `madvise(MADV_HUGEPAGE)` on the whole 2 MiB pages inside
/// `start..start + len`; a hint, ignored where unsupported.
fn advise_huge_pages(start: *const u8, len: usize) {
    #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
    {
        const HUGE: usize = 2 << 20;
        let begin = (start as usize).next_multiple_of(HUGE);
        let end = (start as usize).saturating_add(len) & !(HUGE - 1);
        if end > begin {
            // SAFETY: the range lies inside an allocation this process
            // owns (the caller's reserved capacity); MADV_HUGEPAGE changes
            // how it is backed, never its contents or its validity.
            let _ = unsafe {
                libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_HUGEPAGE)
            };
        }
    }
    #[cfg(not(all(target_os = "linux", not(any(loom, feature = "shuttle")))))]
    let _ = (start, len);
}

impl Frames {
    /// Allocates `frame_count` zeroed frames, or `None` if the allocator
    /// refuses (or the size overflows, or `frame_count` is 0).
    pub(crate) fn new(frame_count: usize) -> Option<Frames> {
        let arena = arena::Arena::new(frame_count)?;
        let meta = huge_slice(frame_count, |_| FrameMeta {
            latch: PageLatch::new_free(),
            page_id: AtomicU64::new(PageId::NONE_RAW),
            access: AccessTracker::default(),
        });
        // `frame` leans on this: a frame id below the metadata's length is
        // inside the arena.
        assert_eq!(arena.frame_count(), meta.len());
        Some(Frames { arena, meta })
    }

    /// The metadata and memory of `frame_id`, or `None` past the last
    /// frame: one bounds check for both (a hit's table hint is checked
    /// here, not again by each accessor).
    #[inline(always)]
    pub(crate) fn frame(&self, frame_id: FrameId) -> Option<(&FrameMeta, &[FrameWord])> {
        let meta = self.meta.get(frame_id)?;
        // SAFETY: `new` built `meta` with one entry per frame of the
        // arena, so `frame_id < meta.len()` is in the arena's bounds.
        let words = unsafe { self.arena.words_unchecked(frame_id) };
        Some((meta, words))
    }

    /// How many frames the arena holds.
    pub(crate) fn frame_count(&self) -> usize {
        self.meta.len()
    }

    /// The metadata of `frame_id`.
    #[inline]
    pub(crate) fn meta(&self, frame_id: FrameId) -> &FrameMeta {
        &self.meta[frame_id]
    }

    /// The frame's memory as atomic words. Always safe: atomics may be
    /// shared and raced on.
    #[inline]
    pub(crate) fn words(&self, frame_id: FrameId) -> &[FrameWord] {
        // The arena checks `frame_id` against its frame count, which is
        // the metadata's length.
        self.arena.words(frame_id)
    }

    /// Asks the core to start loading the first `lines` cache lines of the
    /// frame, so that they are in flight while the caller waits for the
    /// frame's state word (they depend only on the frame id). A hint: it
    /// reads nothing into the program and has no effect on its meaning.
    #[inline(always)]
    pub(crate) fn prefetch(&self, frame_id: FrameId, lines: usize) {
        let words = self.words(frame_id);
        #[cfg(all(target_arch = "x86_64", not(any(loom, feature = "shuttle"))))]
        for line in 0..lines.min(PAGE_SIZE / 64) {
            let address = words[line * 8..].as_ptr().cast::<i8>();
            // SAFETY: a prefetch never faults and changes no memory or
            // program state; `address` is inside the arena.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(address)
            };
        }
        #[cfg(not(all(target_arch = "x86_64", not(any(loom, feature = "shuttle")))))]
        let _ = (words, lines);
    }

    /// The arena's memory, `(first byte, length)`, for an I/O engine to
    /// register with the kernel; `None` under the model checkers, whose
    /// frames are not plain memory.
    pub(crate) fn huge_pages(&self) -> bool {
        self.arena.huge_pages
    }

    pub(crate) fn region(&self) -> Option<(*mut u8, usize)> {
        #[cfg(not(any(loom, feature = "shuttle")))]
        return Some((
            self.words(0).as_ptr().cast::<u8>().cast_mut(),
            self.frame_count() * PAGE_SIZE,
        ));
        #[cfg(any(loom, feature = "shuttle"))]
        None
    }

    /// The first byte of a frame, for an I/O engine to read into (null
    /// under the model checkers, whose engine reads through
    /// [`Frames::fill_bytes`]). Using it is the engine's business: the
    /// pointer itself is only an address.
    pub(crate) fn io_ptr(&self, frame_id: FrameId) -> *mut u8 {
        #[cfg(not(any(loom, feature = "shuttle")))]
        return self.words(frame_id).as_ptr().cast::<u8>().cast_mut();
        #[cfg(any(loom, feature = "shuttle"))]
        {
            let _ = frame_id;
            std::ptr::null_mut()
        }
    }

    /// Zeroes a frame with atomic stores (for freshly allocated pages).
    pub(crate) fn zero(&self, frame_id: FrameId) {
        for word in self.words(frame_id) {
            word.store(0, Ordering::Relaxed);
        }
    }

    /// Runs `f` on the frame's bytes (in place; a copy under loom).
    ///
    /// # Safety
    ///
    /// While `f` runs, no thread stores to this frame: the caller holds the
    /// frame's latch shared, or exclusively without storing through it
    /// meanwhile (docs/design.md rule 3).
    pub(crate) unsafe fn with_bytes<R>(&self, frame_id: FrameId, f: impl FnOnce(&[u8]) -> R) -> R {
        let words = self.words(frame_id);
        self.meta(frame_id).access.read(|| {
            // SAFETY: forwarded from this function's contract.
            unsafe { arena::with_bytes(words, f) }
        })
    }

    /// Runs `f` on the frame's bytes for filling from storage (in place; a
    /// copy under loom).
    ///
    /// # Safety
    ///
    /// While `f` runs, no other thread accesses this frame at all: the
    /// caller holds the latch exclusively and the frame is unreachable to
    /// optimistic readers (it came off the free list after its epoch grace
    /// period, and no reader proceeds past an `EXCL` state word)
    /// (docs/design.md rules 2 and 6).
    pub(crate) unsafe fn fill_bytes<R>(
        &self,
        frame_id: FrameId,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        let words = self.words(frame_id);
        self.meta(frame_id).access.write(|| {
            // SAFETY: forwarded from this function's contract.
            unsafe { arena::fill_bytes(words, f) }
        })
    }

    /// The frame's data as a byte slice borrowed for as long as the
    /// caller's latch.
    ///
    /// # Safety
    ///
    /// For the lifetime of the slice, no thread stores to this frame (as
    /// for [`Frames::with_bytes`]).
    #[cfg(not(any(loom, feature = "shuttle")))]
    #[inline]
    pub(crate) unsafe fn bytes(&self, frame_id: FrameId) -> &[u8] {
        // SAFETY: forwarded from this function's contract.
        unsafe { arena::bytes(self.words(frame_id)) }
    }
}

/// The `std` arena: one anonymous mapping, viewed as words or bytes.
///
/// Mapped with `mmap` (zero-filled by the kernel, faulted in on first
/// touch) rather than the global allocator, so that arenas of 2 MiB and
/// more can start on a 2 MiB boundary and be backed by transparent huge
/// pages (`MADV_HUGEPAGE`): a hit then costs one TLB entry per 2 MiB of
/// frames instead of one per frame.
#[cfg(not(any(loom, feature = "shuttle")))]
mod arena {
    use std::ptr::NonNull;

    use super::{FrameWord, PAGE_SIZE, PAGE_WORDS};

    const HUGE_PAGE: usize = 2 << 20;

    pub(super) struct Arena {
        /// The start of the frames: `frame_count * PAGE_SIZE` bytes inside
        /// the mapping, 4096-aligned (2 MiB-aligned for large arenas),
        /// zeroed, owned by this struct.
        base: NonNull<FrameWord>,
        frame_count: usize,
        /// The whole mapping, unmapped in `drop`.
        mapping: NonNull<libc::c_void>,
        mapping_len: usize,
        /// Whether the kernel took `MADV_HUGEPAGE` on the arena and
        /// transparent huge pages are not off.
        pub(super) huge_pages: bool,
    }

    // SAFETY: the arena is only accessed through atomic words, or through
    // byte views whose callers guarantee exclusion (see `Frames`), so
    // sharing it is as safe as sharing `[AtomicU64]`.
    unsafe impl Send for Arena {}
    // SAFETY: as for `Send`.
    unsafe impl Sync for Arena {}

    impl Arena {
        pub(super) fn new(frame_count: usize) -> Option<Arena> {
            let size = frame_count
                .checked_mul(PAGE_SIZE)
                .filter(|&size| size > 0)?;
            let huge = size >= HUGE_PAGE;
            let mapping_len = if huge {
                size.checked_add(HUGE_PAGE)?
            } else {
                size
            };
            // SAFETY: an anonymous private mapping of a non-zero length at an
            // address of the kernel's choosing touches no existing memory.
            let mapping = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    mapping_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if mapping == libc::MAP_FAILED {
                return None;
            }
            let mapping = NonNull::new(mapping)?;
            let start = mapping.as_ptr() as usize;
            let offset = if huge {
                start.next_multiple_of(HUGE_PAGE) - start
            } else {
                0
            };
            // SAFETY: `offset + size <= mapping_len`, so the pointer stays in
            // the mapping.
            let base = unsafe { mapping.as_ptr().cast::<u8>().add(offset) };
            // A hint: without transparent huge pages the arena still works.
            let advised = huge && {
                // SAFETY: the range lies inside our own mapping.
                unsafe { libc::madvise(base.cast(), size, libc::MADV_HUGEPAGE) == 0 }
            };
            let thp_off = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
                .is_ok_and(|setting| setting.contains("[never]"));
            Some(Arena {
                base: NonNull::new(base.cast::<FrameWord>())?,
                frame_count,
                mapping,
                mapping_len,
                huge_pages: advised && !thp_off,
            })
        }

        pub(super) fn frame_count(&self) -> usize {
            self.frame_count
        }

        /// [`words`](Self::words) without the bounds check.
        ///
        /// # Safety
        /// `frame_id` is below the arena's frame count.
        #[inline(always)]
        pub(super) unsafe fn words_unchecked(&self, frame_id: usize) -> &[FrameWord] {
            debug_assert!(frame_id < self.frame_count);
            // SAFETY: the caller keeps `frame_id < frame_count`, so the
            // range lies inside the mapping (as in `words`).
            unsafe {
                std::slice::from_raw_parts(
                    self.base.as_ptr().add(frame_id * PAGE_WORDS),
                    PAGE_WORDS,
                )
            }
        }

        #[inline]
        pub(super) fn words(&self, frame_id: usize) -> &[FrameWord] {
            assert!(frame_id < self.frame_count);
            // SAFETY: `frame_id < frame_count`, so the range lies inside the
            // mapping, which the kernel zero-filled (a valid `AtomicU64` bit
            // pattern), is suitably aligned, and lives as long as `self`.
            unsafe {
                std::slice::from_raw_parts(
                    self.base.as_ptr().add(frame_id * PAGE_WORDS),
                    PAGE_WORDS,
                )
            }
        }
    }

    impl Drop for Arena {
        fn drop(&mut self) {
            // SAFETY: the mapping was created in `new` with this length and is
            // unmapped once, here; `&mut self` proves no view is alive.
            unsafe { libc::munmap(self.mapping.as_ptr(), self.mapping_len) };
        }
    }

    /// # Safety
    /// No thread stores to `words` while the slice lives.
    #[inline]
    pub(super) unsafe fn bytes(words: &[FrameWord]) -> &[u8] {
        // SAFETY: the words are `PAGE_SIZE` initialised bytes; the caller
        // guarantees no concurrent store, so concurrent atomic loads are
        // reads racing reads, which is not a data race.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), PAGE_SIZE) }
    }

    /// # Safety
    /// No thread stores to `words` while `f` runs.
    pub(super) unsafe fn with_bytes<R>(words: &[FrameWord], f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: forwarded.
        f(unsafe { bytes(words) })
    }

    /// # Safety
    /// No other thread accesses `words` at all while `f` runs.
    pub(super) unsafe fn fill_bytes<R>(words: &[FrameWord], f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: as for `bytes`, plus the caller's guarantee that nothing
        // else reads or writes the frame while the slice lives, so this is
        // the only reference to these bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_ptr() as *mut u8, PAGE_SIZE) };
        f(bytes)
    }
}

/// The model checkers' arena: their atomics, copied to and from byte
/// buffers.
#[cfg(any(loom, feature = "shuttle"))]
mod arena {
    use super::{FrameWord, Ordering, PAGE_SIZE, PAGE_WORDS};

    pub(super) struct Arena {
        words: Box<[FrameWord]>,
        pub(super) huge_pages: bool,
    }

    impl Arena {
        pub(super) fn new(frame_count: usize) -> Option<Arena> {
            if frame_count == 0 {
                return None;
            }
            let words = (0..frame_count * PAGE_WORDS)
                .map(|_| FrameWord::new(0))
                .collect();
            Some(Arena {
                words,
                huge_pages: false,
            })
        }

        pub(super) fn frame_count(&self) -> usize {
            self.words.len() / PAGE_WORDS
        }

        pub(super) fn words(&self, frame_id: usize) -> &[FrameWord] {
            &self.words[frame_id * PAGE_WORDS..(frame_id + 1) * PAGE_WORDS]
        }

        /// # Safety
        /// None needed under loom (checked indexing); kept for one
        /// signature.
        pub(super) unsafe fn words_unchecked(&self, frame_id: usize) -> &[FrameWord] {
            self.words(frame_id)
        }
    }

    /// # Safety
    /// None needed under loom (a copy); kept for one signature.
    pub(super) unsafe fn with_bytes<R>(words: &[FrameWord], f: impl FnOnce(&[u8]) -> R) -> R {
        let mut bytes = [0u8; PAGE_SIZE];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        f(&bytes)
    }

    /// # Safety
    /// None needed under loom (a copy); kept for one signature.
    pub(super) unsafe fn fill_bytes<R>(words: &[FrameWord], f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut bytes = [0u8; PAGE_SIZE];
        let result = f(&mut bytes);
        for (chunk, word) in bytes.chunks_exact(8).zip(words) {
            word.store(
                u64::from_ne_bytes(chunk.try_into().unwrap()),
                Ordering::Relaxed,
            );
        }
        result
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
    fn byte_views_and_words_agree() {
        let frames = Frames::new(1).unwrap();
        // SAFETY: single-threaded test; nothing else touches the frame.
        unsafe { frames.fill_bytes(0, |bytes| bytes[8..16].copy_from_slice(&7u64.to_ne_bytes())) };
        assert_eq!(frames.words(0)[1].load(Ordering::Relaxed), 7);
        // SAFETY: as above.
        let seen = unsafe { frames.with_bytes(0, |bytes| bytes[8]) };
        assert_eq!(seen, 7u64.to_ne_bytes()[0]);
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
