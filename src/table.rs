//! The page table: page id → frame id, looked up without locks.
//!
//! A fixed array of buckets, about one per two frames, allocated at open;
//! the table never resizes because it never holds more entries than there
//! are frames. A bucket is one cache line holding up to [`SLOTS`] mappings
//! inline; the rare bucket that holds more keeps the rest in an overflow
//! list of immutable, epoch-reclaimed entries, kept beside the buckets so
//! that the array a hit touches stays small (32 bytes per frame) and stays
//! in cache. In front of the buckets, a direct-mapped array indexed by
//! page number ([`direct`], 16 bytes per frame) answers most lookups
//! from a line that neighbouring pages share, and the buckets are read
//! only when it has no word for the page. A hit is one cache line here,
//! after which the frame's state word and its data are fetched in
//! parallel.
//!
//! ```text
//! Bucket (64 bytes, std build):
//!   pages[SLOTS]     AtomicU64  raw page id, or NONE_RAW when vacant
//!   frames[SLOTS]    AtomicU32  frame of the page in the same slot
//!   overflow_len     AtomicU32  entries in this bucket's overflow list
//! Beside the buckets, one each per bucket:
//!   overflow         Atomic<Entry>  singly linked, immutable entries
//!   writer           Mutex<()>      serialises writers; readers never take it
//! ```
//!
//! # Protocol
//!
//! - **Lookup** (no lock, epoch-pinned): the direct map's word, if it
//!   names a frame for the page (its answers are hints of the same kind:
//!   `table/direct.rs`); otherwise compare every slot's page id
//!   (`Acquire`), pick the one that matches without a branch per slot, and
//!   read its frame. If none does and `overflow_len` is non-zero, walk the
//!   list with `Acquire` loads. The answer is a **hint**: a slot may be
//!   vacated and refilled while it is read, so a lookup can pair a page
//!   with the frame of the slot's next tenant, or miss a page inserted
//!   meanwhile. Every caller checks the frame's own page id and state word
//!   under its latch or optimistic validation; a miss is settled by
//!   `insert`, which is exact, and a caller whose hint named a frame
//!   holding another page looks again with `lookup_exact` (the buckets
//!   alone, under the bucket's lock), so it cannot keep reading the same
//!   stale slot or word.
//! - **Insert / remove** take the bucket's writer mutex (never held across
//!   I/O). Insert fills a vacant slot (frame first, then the page id with
//!   `Release`), or pushes a fully initialised entry at the head of the
//!   list with a `Release` store and then counts it. Remove vacates the
//!   slot (`Release`), or unlinks the entry with a `Release` store of its
//!   successor, uncounts it, and hands it to the epoch: it is freed only
//!   when no pinned reader can still be walking over it. Under the same
//!   lock, an insert then points the page's direct word at the frame, and
//!   a remove empties the word if it still names the removed mapping.
//!
//! # Invariants
//!
//! 1. At most one mapping per page id (insert checks under the writer
//!    lock, where slots and list are stable).
//! 2. A mapping never moves between slots and list while it exists, so a
//!    lookup of a page that stays mapped finds it.
//! 3. An entry's fields never change after publication, except `next`,
//!    which is only written under the writer lock.
//! 4. An unlinked entry is freed only through `Guard::defer_destroy`.
//! 5. A slot's frame is always a frame id below the frame count (it is only
//!    ever written with one), so even a stale hint indexes in bounds.
//! 6. `overflow_len` is the length of the bucket's list whenever the writer
//!    lock is free.

mod direct;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use direct::DirectMap;

use crate::frames::FrameId;
use crate::page::PageId;
use crate::sync::{lock, AccessTracker, AtomicU32, AtomicU64, Mutex, Ordering};

/// Mappings held inline per bucket. Two under loom: enough for a slot to
/// be vacated and refilled under a reader of another slot, and few enough
/// that three pages reach the overflow list.
#[cfg(not(loom))]
pub(crate) const SLOTS: usize = 5;
/// Mappings held inline per bucket (see above).
#[cfg(loom)]
pub(crate) const SLOTS: usize = 2;

const VACANT: u64 = PageId::NONE_RAW;

struct Entry {
    page_id: PageId,
    frame_id: FrameId,
    next: Atomic<Entry>,
    /// Declares reads of the entry and its destruction to loom, which
    /// reports a free not ordered after every read (invariant 4).
    access: AccessTracker,
}

#[cfg(loom)]
impl Drop for Entry {
    fn drop(&mut self) {
        self.access.write(|| ());
    }
}

#[repr(align(64))]
struct Bucket {
    pages: [AtomicU64; SLOTS],
    frames: [AtomicU32; SLOTS],
    overflow_len: AtomicU32,
}

// One bucket, one cache line.
#[cfg(not(any(loom, feature = "shuttle")))]
const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

/// The page table. See the module docs.
pub(crate) struct PageTable {
    buckets: Box<[Bucket]>,
    /// The overflow list of each bucket (same index).
    overflow: Box<[Atomic<Entry>]>,
    /// The writer lock of each bucket (same index).
    writers: Box<[Mutex<()>]>,
    /// The direct-mapped hints read before the buckets (`table/direct.rs`).
    direct: DirectMap,
}

impl std::fmt::Debug for PageTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTable")
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

impl PageTable {
    /// A table for a pool of `frame_count` frames (at most 2^32, so that a
    /// frame id fits a slot).
    pub(crate) fn new(frame_count: usize) -> PageTable {
        assert!(frame_count as u64 <= 1 << 32, "too many frames");
        // About two mappings per bucket of five slots: one page in a
        // hundred lands in an overflow list (Poisson, mean 2).
        let bucket_count = frame_count.div_ceil(2).max(1);
        PageTable {
            buckets: crate::frames::huge_slice(bucket_count, |_| Bucket {
                pages: std::array::from_fn(|_| AtomicU64::new(VACANT)),
                frames: std::array::from_fn(|_| AtomicU32::new(0)),
                overflow_len: AtomicU32::new(0),
            }),
            overflow: (0..bucket_count).map(|_| Atomic::null()).collect(),
            writers: (0..bucket_count).map(|_| Mutex::new(())).collect(),
            direct: DirectMap::new(frame_count),
        }
    }

    /// The bucket index of `page_id`: a Fibonacci-hash multiply, then the
    /// high half of `hash × bucket count` (any count, no modulo).
    #[inline]
    fn index(&self, page_id: PageId) -> usize {
        let hash = page_id.raw().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((u128::from(hash) * self.buckets.len() as u128) >> 64) as usize
    }

    /// The direct-mapped front's hint for `page_id`, if it has one: no
    /// pin needed (the front is an array of words, never freed). The
    /// frame id is not checked against the pool's frames: the caller
    /// checks it (`Frames::frame`).
    #[inline(always)]
    pub(crate) fn direct_hint(&self, page_id: PageId) -> Option<FrameId> {
        self.direct.get_unbounded(page_id)
    }

    /// Points the direct-mapped front's word of `page_id` at `frame_id`,
    /// whatever the buckets say: a stale hint, for the tests.
    #[cfg(test)]
    pub(crate) fn point_direct_for_test(&self, page_id: PageId, frame_id: FrameId) {
        self.direct.set(page_id, frame_id);
    }

    /// The frame the table maps `page_id` to, if any: a hint (see the
    /// module docs). Lock-free.
    #[inline]
    pub(crate) fn lookup(&self, page_id: PageId, guard: &Guard) -> Option<FrameId> {
        if let Some(frame_id) = self.direct.get(page_id) {
            return Some(frame_id);
        }
        self.lookup_buckets(page_id, guard)
    }

    /// The buckets' answer for `page_id` (a hint unless the caller holds
    /// the bucket's writer lock, where it is exact).
    #[inline]
    fn lookup_buckets(&self, page_id: PageId, guard: &Guard) -> Option<FrameId> {
        let index = self.index(page_id);
        let bucket = &self.buckets[index];
        let raw = page_id.raw();
        // Branch-free over the slots: which slot holds a page is random, and
        // a mispredicted branch here would throw away the cache misses the
        // core is overlapping with the caller's other work. A select
        // (`found = if matches { slot } else { found }`) was compiled into
        // a chain of branches once inlined into a caller's loop; a bit
        // mask has no branch to become: bit `s` is set where slot `s`
        // holds the page, and the lowest set bit is the slot (32, past
        // every slot, when none is set).
        let mut hits = 0u32;
        for (slot, page) in bucket.pages.iter().enumerate() {
            hits |= u32::from(page.load(Ordering::Acquire) == raw) << slot;
        }
        let found = hits.trailing_zeros() as usize;
        if let Some(frame) = bucket.frames.get(found) {
            return Some(frame.load(Ordering::Relaxed) as FrameId);
        }
        if bucket.overflow_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.lookup_overflow(index, page_id, guard)
    }

    #[inline(never)]
    fn lookup_overflow(&self, index: usize, page_id: PageId, guard: &Guard) -> Option<FrameId> {
        let mut current = self.overflow[index].load(Ordering::Acquire, guard);
        // SAFETY: entries reachable from a list while `guard` is pinned are
        // freed only through `defer_destroy` after unlinking (invariant 4),
        // so they stay valid for the guard's lifetime.
        while let Some(entry) = unsafe { current.as_ref() } {
            let found = entry
                .access
                .read(|| (entry.page_id == page_id).then_some(entry.frame_id));
            if found.is_some() {
                return found;
            }
            current = entry.next.load(Ordering::Acquire, guard);
        }
        None
    }

    /// The frame `page_id` is mapped to, exactly: read under the bucket's
    /// writer lock, so it is ordered after every insert and remove of the
    /// bucket so far. For a thread whose hint proved wrong (a slot refilled
    /// while it was read): looking again without the lock could, in
    /// principle, keep reading the same stale slot.
    pub(crate) fn lookup_exact(&self, page_id: PageId, guard: &Guard) -> Option<FrameId> {
        let _writer = lock(&self.writers[self.index(page_id)]);
        self.lookup_buckets(page_id, guard)
    }

    /// Maps `page_id` to `frame_id` unless it is already mapped, in which
    /// case the existing frame is returned as the error.
    pub(crate) fn insert(
        &self,
        page_id: PageId,
        frame_id: FrameId,
        guard: &Guard,
    ) -> Result<(), FrameId> {
        assert!(
            frame_id as u64 <= u64::from(u32::MAX),
            "frame id {frame_id}"
        );
        let index = self.index(page_id);
        let _writer = lock(&self.writers[index]);
        // Exact under the lock: no writer can change the bucket.
        if let Some(existing) = self.lookup_buckets(page_id, guard) {
            // The racing loader's mapping: the word may have lost it to a
            // page that shares it.
            self.direct.set(page_id, existing);
            return Err(existing);
        }
        self.insert_locked(index, page_id, frame_id, guard);
        self.direct.set(page_id, frame_id);
        Ok(())
    }

    /// Adds the mapping to bucket `index`, whose writer lock the caller
    /// holds and which does not map the page.
    fn insert_locked(&self, index: usize, page_id: PageId, frame_id: FrameId, guard: &Guard) {
        let bucket = &self.buckets[index];
        if let Some(slot) = bucket
            .pages
            .iter()
            .position(|page| page.load(Ordering::Relaxed) == VACANT)
        {
            bucket.frames[slot].store(frame_id as u32, Ordering::Relaxed);
            bucket.pages[slot].store(page_id.raw(), Ordering::Release);
            return;
        }
        let head = &self.overflow[index];
        let entry = Owned::new(Entry {
            page_id,
            frame_id,
            next: Atomic::from(head.load(Ordering::Relaxed, guard)),
            access: AccessTracker::default(),
        });
        head.store(entry, Ordering::Release);
        let len = bucket.overflow_len.load(Ordering::Relaxed);
        bucket.overflow_len.store(len + 1, Ordering::Release);
    }

    /// Removes the mapping `page_id → frame_id`; returns false if the table
    /// does not hold exactly that mapping.
    pub(crate) fn remove(&self, page_id: PageId, frame_id: FrameId, guard: &Guard) -> bool {
        let index = self.index(page_id);
        let _writer = lock(&self.writers[index]);
        let removed = self.remove_locked(index, page_id, frame_id, guard);
        if removed {
            self.direct.clear(page_id, frame_id);
        }
        removed
    }

    /// Removes the mapping from bucket `index`, whose writer lock the
    /// caller holds.
    fn remove_locked(
        &self,
        index: usize,
        page_id: PageId,
        frame_id: FrameId,
        guard: &Guard,
    ) -> bool {
        let bucket = &self.buckets[index];
        let raw = page_id.raw();
        for (page, frame) in bucket.pages.iter().zip(&bucket.frames) {
            if page.load(Ordering::Relaxed) == raw {
                if frame.load(Ordering::Relaxed) as FrameId != frame_id {
                    return false;
                }
                page.store(VACANT, Ordering::Release);
                return true;
            }
        }
        let mut link = &self.overflow[index];
        loop {
            let current = link.load(Ordering::Relaxed, guard);
            // SAFETY: we hold the bucket's writer lock, so no entry of this
            // list is unlinked (and thus none freed) while we walk it.
            let Some(entry) = (unsafe { current.as_ref() }) else {
                return false;
            };
            if entry.page_id == page_id {
                if entry.frame_id != frame_id {
                    return false;
                }
                let next = entry.next.load(Ordering::Relaxed, guard);
                link.store(next, Ordering::Release);
                let len = bucket.overflow_len.load(Ordering::Relaxed);
                assert!(len > 0, "overflow count out of step with its list");
                bucket.overflow_len.store(len - 1, Ordering::Release);
                // SAFETY: the entry is unlinked, so no new reader can reach
                // it; readers already on it are pinned, and the epoch frees
                // it only after they unpin (invariant 4).
                unsafe { guard.defer_destroy(current) };
                return true;
            }
            link = &entry.next;
        }
    }
}

impl Drop for PageTable {
    fn drop(&mut self) {
        // SAFETY: `&mut self` proves no other thread can reach the table, so
        // the unprotected guard is sound and each entry is freed once.
        let guard = unsafe { epoch::unprotected() };
        for head in self.overflow.iter() {
            let mut current: Shared<'_, Entry> = head.load(Ordering::Relaxed, guard);
            while !current.is_null() {
                // SAFETY: as above; `current` is non-null and owned by the
                // table, freed exactly once here.
                let owned = unsafe { current.into_owned() };
                current = owned.next.load(Ordering::Relaxed, guard);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::FileId;
    use crossbeam_epoch::Collector;

    fn page(n: u64) -> PageId {
        PageId::new(FileId(0), n)
    }

    #[test]
    fn insert_lookup_remove() {
        let collector = Collector::new();
        let handle = collector.register();
        let guard = handle.pin();
        let table = PageTable::new(2);
        assert_eq!(table.lookup(page(1), &guard), None);
        table.insert(page(1), 0, &guard).unwrap();
        assert_eq!(table.insert(page(1), 1, &guard), Err(0));
        assert_eq!(table.lookup(page(1), &guard), Some(0));
        assert!(!table.remove(page(1), 1, &guard), "wrong frame");
        assert!(table.remove(page(1), 0, &guard));
        assert!(!table.remove(page(1), 0, &guard));
        assert_eq!(table.lookup(page(1), &guard), None);
    }

    #[test]
    fn colliding_pages_share_a_bucket_and_stay_distinct() {
        let collector = Collector::new();
        let handle = collector.register();
        let guard = handle.pin();
        // One bucket pair for 1 frame: many pages collide.
        let table = PageTable::new(1);
        for n in 0..50 {
            table.insert(page(n), n as usize, &guard).unwrap();
        }
        for n in (0..50).step_by(3) {
            assert!(table.remove(page(n), n as usize, &guard));
        }
        for n in 0..50 {
            let expected = (n % 3 != 0).then_some(n as usize);
            assert_eq!(table.lookup(page(n), &guard), expected, "page {n}");
        }
    }

    #[test]
    fn a_vacated_slot_is_reused_and_overflow_entries_stay_found() {
        let collector = Collector::new();
        let handle = collector.register();
        let guard = handle.pin();
        let table = PageTable::new(1);
        // Fill the slots, then two more pages go to the overflow list.
        let pages = SLOTS as u64 + 2;
        for n in 0..pages {
            table.insert(page(n), n as usize, &guard).unwrap();
        }
        // Vacate one slot; a new page takes it; the overflow pages are
        // still found (mappings never move).
        assert!(table.remove(page(0), 0, &guard));
        table.insert(page(100), 100, &guard).unwrap();
        assert_eq!(table.lookup(page(0), &guard), None);
        assert_eq!(table.lookup(page(100), &guard), Some(100));
        for n in 1..pages {
            assert_eq!(table.lookup(page(n), &guard), Some(n as usize), "page {n}");
        }
        // Removing an overflow page leaves the slots alone, and the page
        // can come back (into the list or a slot).
        assert!(table.remove(page(pages - 1), pages as usize - 1, &guard));
        assert_eq!(table.lookup(page(pages - 1), &guard), None);
        table.insert(page(pages - 1), 7, &guard).unwrap();
        assert_eq!(table.insert(page(pages - 1), 8, &guard), Err(7));
        assert_eq!(table.lookup(page(pages - 1), &guard), Some(7));
    }

    #[test]
    fn pages_that_meet_in_the_direct_map_are_found_through_the_buckets() {
        let collector = Collector::new();
        let handle = collector.register();
        let guard = handle.pin();
        let table = PageTable::new(8);
        // 16 words: page n and page n + 16 share one.
        table.insert(page(1), 1, &guard).unwrap();
        table.insert(page(17), 2, &guard).unwrap();
        assert_eq!(table.lookup(page(1), &guard), Some(1), "displaced: buckets");
        assert_eq!(table.lookup(page(17), &guard), Some(2));
        // Page 1 moves to another frame; the word of page 17 stays.
        assert!(table.remove(page(1), 1, &guard));
        assert_eq!(table.lookup(page(1), &guard), None);
        assert_eq!(table.lookup(page(17), &guard), Some(2));
        table.insert(page(1), 3, &guard).unwrap();
        assert_eq!(table.lookup(page(1), &guard), Some(3));
        assert_eq!(
            table.lookup(page(17), &guard),
            Some(2),
            "displaced: buckets"
        );
        assert_eq!(table.lookup_exact(page(17), &guard), Some(2));
        // A racing insert's loser puts the winner's frame back in the word.
        assert_eq!(table.insert(page(17), 4, &guard), Err(2));
        assert_eq!(table.direct.get(page(17)), Some(2));
        assert!(table.remove(page(17), 2, &guard));
        assert_eq!(table.lookup(page(17), &guard), None);
        assert_eq!(table.lookup(page(1), &guard), Some(3));
    }

    #[test]
    fn concurrent_inserts_of_one_page_admit_one() {
        let collector = Collector::new();
        let table = PageTable::new(4);
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|frame_id| {
                    let (table, collector) = (&table, &collector);
                    scope.spawn(move || {
                        let handle = collector.register();
                        let guard = handle.pin();
                        usize::from(table.insert(page(7), frame_id, &guard).is_ok())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1);
    }
}
