//! The page table's direct-mapped front: one word per page-number slot,
//! read before the buckets.
//!
//! A bucket lookup hashes the page id, so the buckets a stream of
//! lookups touches are scattered over the whole bucket array (32 bytes per
//! frame), one line per lookup; a workload that reads whole pages pushes
//! those lines out of the caches between two visits, and every lookup
//! then waits for memory before the frame's own lines can be asked for.
//! This array is indexed by the page number itself (plus a per-file
//! offset), so neighbouring pages share a line: eight to a line, the
//! lines of a file's hot range few and warm. Where it answers, the
//! buckets are not read at all. It is what vmcache gets from indexing its
//! page-state array by page number, kept bounded: its size is fixed at
//! open (two words per frame, rounded up to a power of two), and pages
//! that meet in a word displace each other.
//!
//! ```text
//! word (AtomicU64):  tag (high 32 bits) | frame id (low 32 bits)
//!   tag   = high half of (raw page id × 2^64/φ): tells apart the pages
//!           that share the word (they differ in the bits above the index)
//!   EMPTY = u64::MAX (frame u32::MAX, never a frame id: see `with_words`)
//! index  = (page_no + file offset) mod entries
//! ```
//!
//! # Protocol
//!
//! - **Set** (`PageTable::insert`, under the page's bucket lock, after the
//!   bucket holds the mapping): store `tag | frame`, `Release`. A page
//!   that meets another in the word takes it over.
//! - **Clear** (`PageTable::remove`, under the same lock): compare-and-swap
//!   `tag | frame` → EMPTY, so it clears only the mapping being removed,
//!   never a newer page's word.
//! - **Get** (lookup, lock-free): load the word (`Acquire`); if its tag is
//!   the page's and its frame is a frame of this pool, that frame is the
//!   answer, else the buckets are asked.
//!
//! # Invariants
//!
//! 1. A word is `tag(p) | f` only while `p → f` is in the buckets, or
//!    has just been removed by a thread still about to clear the word:
//!    set and clear of `p` run under `p`'s bucket lock, after its insert
//!    and before its remove, and no other page's writes produce `tag(p) |
//!    f` but one whose tag collides (one in 2^32 of the pages that share
//!    the word).
//! 2. Its answers are therefore hints of the same kind as the buckets'
//!    (`table.rs`, "Lookup"): a frame that held the page at some point,
//!    possibly no longer, or (a tag collision) a frame of another page.
//!    Every caller checks the frame's page id under its latch or
//!    optimistic validation, and one whose hint proved wrong asks again
//!    with `lookup_exact`, which reads the buckets only.
//! 3. A frame read from a word is checked against the frame count before
//!    it is returned, so a hint always indexes in bounds: by `get`, or,
//!    for `get_unbounded` (a `ThreadPin`'s hit), by its caller's
//!    `Frames::frame`, the one check that also bounds the frame's
//!    metadata and memory.
//!
//! Under loom the array is off (every get asks the buckets): the loom
//! models keep their state space, and invariant 2 reduces the array's
//! answers to the buckets' stale hints, which they already explore.
//! Shuttle and the std tests run with it.

use crate::frames::FrameId;
use crate::page::PageId;
use crate::sync::{AtomicU64, Ordering};

const EMPTY: u64 = u64::MAX;
const FIB: u64 = 0x9E37_79B9_7F4A_7C15;

/// Whether the array answers at all (see the module docs on loom).
const ENABLED: bool = !cfg!(loom);

/// The direct-mapped hints in front of the buckets. See the module docs.
pub(crate) struct DirectMap {
    /// A power of two of them, so that the index is a mask of the length.
    words: Box<[AtomicU64]>,
    /// `words.len() - 1`.
    mask: usize,
    /// Frames of the pool: a word's frame at or above it is no answer.
    frame_count: u64,
}

impl DirectMap {
    /// The array for a pool of `frame_count` frames: two words per frame,
    /// rounded up to a power of two.
    pub(crate) fn new(frame_count: usize) -> DirectMap {
        DirectMap::with_words(frame_count, (frame_count * 2).next_power_of_two())
    }

    /// `word_count` words (a power of two) for `frame_count` frames; the
    /// tests use few words to make pages meet.
    pub(crate) fn with_words(frame_count: usize, word_count: usize) -> DirectMap {
        assert!(word_count.is_power_of_two(), "{word_count} words");
        // A frame id below u32::MAX, so that EMPTY's frame is none.
        assert!(
            (frame_count as u64) < u64::from(u32::MAX),
            "too many frames"
        );
        let word_count = if ENABLED { word_count } else { 1 };
        DirectMap {
            words: crate::frames::huge_slice(word_count, |_| AtomicU64::new(EMPTY)),
            mask: word_count - 1,
            frame_count: frame_count as u64,
        }
    }

    /// The word of `page_id`, and the page's tag (in the high 32 bits,
    /// the low ones zero).
    #[inline(always)]
    fn slot(&self, page_id: PageId) -> (&AtomicU64, u64) {
        let file_offset = u64::from(page_id.file_id().0).wrapping_mul(FIB) >> 40;
        let index = page_id.page_no().wrapping_add(file_offset) as usize & self.mask;
        let tag = page_id.raw().wrapping_mul(FIB) & !u64::from(u32::MAX);
        (&self.words[index], tag)
    }

    /// The frame the word of `page_id` names for it, if its tag matches,
    /// not checked against the pool's frames: for a caller that checks
    /// the frame id itself (`Frames::frame`) before it uses it.
    #[inline(always)]
    pub(crate) fn get_unbounded(&self, page_id: PageId) -> Option<FrameId> {
        if !ENABLED {
            return None;
        }
        let (word, tag) = self.slot(page_id);
        let value = word.load(Ordering::Acquire);
        if (value ^ tag) >> 32 == 0 {
            Some((value & u64::from(u32::MAX)) as FrameId)
        } else {
            None
        }
    }

    /// The frame the word of `page_id` names for it, if any: a hint
    /// (invariant 2).
    #[inline(always)]
    pub(crate) fn get(&self, page_id: PageId) -> Option<FrameId> {
        // A frame in range (invariant 3).
        self.get_unbounded(page_id)
            .filter(|&frame| (frame as u64) < self.frame_count)
    }

    /// Points the word of `page_id` at `frame_id`. The caller holds the
    /// page's bucket lock and the buckets hold the mapping. (A frame past
    /// the pool's, which only the table's own tests insert, is stored and
    /// never answered.)
    pub(crate) fn set(&self, page_id: PageId, frame_id: FrameId) {
        if !ENABLED {
            return;
        }
        let (word, tag) = self.slot(page_id);
        word.store(tag | frame_id as u64, Ordering::Release);
    }

    /// Empties the word of `page_id` if it still names `frame_id` for it.
    /// The caller holds the page's bucket lock and has just removed the
    /// mapping from the buckets.
    pub(crate) fn clear(&self, page_id: PageId, frame_id: FrameId) {
        if !ENABLED {
            return;
        }
        let (word, tag) = self.slot(page_id);
        let _ = word.compare_exchange(
            tag | frame_id as u64,
            EMPTY,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::FileId;

    fn page(file: u16, n: u64) -> PageId {
        PageId::new(FileId(file), n)
    }

    #[test]
    fn a_set_page_is_found_and_a_cleared_one_is_not() {
        let map = DirectMap::new(8);
        assert_eq!(map.get(page(0, 3)), None);
        map.set(page(0, 3), 5);
        assert_eq!(map.get(page(0, 3)), Some(5));
        assert_eq!(map.get(page(1, 3)), None, "another file's page 3");
        map.clear(page(0, 3), 4);
        assert_eq!(map.get(page(0, 3)), Some(5), "another frame's clear");
        map.clear(page(0, 3), 5);
        assert_eq!(map.get(page(0, 3)), None);
    }

    #[test]
    fn pages_that_share_a_word_displace_each_other_and_clear_only_their_own() {
        // One word: every page meets every other.
        let map = DirectMap::with_words(8, 1);
        map.set(page(0, 1), 1);
        map.set(page(0, 2), 2);
        assert_eq!(map.get(page(0, 1)), None, "displaced, not misattributed");
        assert_eq!(map.get(page(0, 2)), Some(2));
        map.clear(page(0, 1), 1);
        assert_eq!(map.get(page(0, 2)), Some(2), "a displaced page's clear");
    }

    #[test]
    fn neighbouring_pages_take_neighbouring_words() {
        let map = DirectMap::new(64);
        for n in 0..64 {
            map.set(page(2, n), n as usize);
        }
        for n in 0..64 {
            assert_eq!(map.get(page(2, n)), Some(n as usize), "page {n}");
        }
    }

    #[test]
    fn a_word_naming_a_frame_out_of_range_is_no_answer() {
        // A word with the page's tag and a frame past the pool's (what a
        // stray write would leave): the frame check keeps the hint in
        // bounds (invariant 3).
        let map = DirectMap::new(16);
        let (word, tag) = map.slot(page(0, 1));
        word.store(tag | 16, Ordering::Relaxed);
        assert_eq!(map.get(page(0, 1)), None);
        word.store(tag | 15, Ordering::Relaxed);
        assert_eq!(map.get(page(0, 1)), Some(15));
    }
}
