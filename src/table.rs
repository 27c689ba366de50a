//! The page table: page id → frame id, looked up without locks.
//!
//! A fixed array of buckets (a power of two, at least twice the frame
//! count, allocated at open; the table never resizes because it never holds
//! more entries than there are frames). Each bucket is a singly linked list
//! of immutable entries.
//!
//! # Protocol
//!
//! - **Lookup** (no lock): with an epoch guard pinned, walk the bucket's
//!   list with `Acquire` loads and return the frame of the entry whose page
//!   id matches. The answer is a hint: the caller validates it against the
//!   frame's own page id and state word (the frame may be mid-eviction).
//! - **Insert / remove** take the bucket's mutex (never held across I/O).
//!   Insert pushes a fully initialised entry at the head with a `Release`
//!   store. Remove unlinks with a `Release` store of the successor and hands
//!   the entry to the epoch: it is freed only when no pinned reader can
//!   still be walking over it.
//!
//! # Invariants
//!
//! 1. At most one entry per page id (insert checks under the bucket lock).
//! 2. An entry's fields never change after publication, except `next`,
//!    which is only written under the bucket lock.
//! 3. An unlinked entry is freed only through `Guard::defer_destroy`.

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use crate::frames::FrameId;
use crate::page::PageId;
use crate::sync::{lock, Mutex, Ordering};

struct Entry {
    page_id: PageId,
    frame_id: FrameId,
    next: Atomic<Entry>,
}

struct Bucket {
    head: Atomic<Entry>,
    /// Serialises writers of this bucket; readers never take it.
    writer: Mutex<()>,
}

/// The page table. See the module docs.
pub(crate) struct PageTable {
    buckets: Box<[Bucket]>,
    /// `64 - log2(buckets.len())`: the hash keeps the top bits.
    shift: u32,
}

impl std::fmt::Debug for PageTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTable")
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

impl PageTable {
    /// A table for a pool of `frame_count` frames.
    pub(crate) fn new(frame_count: usize) -> PageTable {
        let bucket_count = frame_count.max(1).saturating_mul(2).next_power_of_two();
        let buckets = (0..bucket_count)
            .map(|_| Bucket {
                head: Atomic::null(),
                writer: Mutex::new(()),
            })
            .collect();
        PageTable {
            buckets,
            shift: 64 - bucket_count.trailing_zeros(),
        }
    }

    #[inline]
    fn bucket(&self, page_id: PageId) -> &Bucket {
        // Fibonacci hashing: multiply by 2^64/φ and keep the top bits.
        let hash = page_id.raw().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = if self.shift == 64 {
            0
        } else {
            hash >> self.shift
        };
        &self.buckets[index as usize]
    }

    /// The frame the table maps `page_id` to, if any. Lock-free.
    #[inline]
    pub(crate) fn lookup(&self, page_id: PageId, guard: &Guard) -> Option<FrameId> {
        let mut current = self.bucket(page_id).head.load(Ordering::Acquire, guard);
        // SAFETY: entries reachable from a bucket while `guard` is pinned
        // are freed only through `defer_destroy` after unlinking
        // (invariant 3), so they stay valid for the guard's lifetime.
        while let Some(entry) = unsafe { current.as_ref() } {
            if entry.page_id == page_id {
                return Some(entry.frame_id);
            }
            current = entry.next.load(Ordering::Acquire, guard);
        }
        None
    }

    /// Maps `page_id` to `frame_id` unless it is already mapped, in which
    /// case the existing frame is returned as the error.
    pub(crate) fn insert(
        &self,
        page_id: PageId,
        frame_id: FrameId,
        guard: &Guard,
    ) -> Result<(), FrameId> {
        let bucket = self.bucket(page_id);
        let _writer = lock(&bucket.writer);
        if let Some(existing) = self.lookup(page_id, guard) {
            return Err(existing);
        }
        let head = bucket.head.load(Ordering::Relaxed, guard);
        let entry = Owned::new(Entry {
            page_id,
            frame_id,
            next: Atomic::from(head),
        });
        bucket.head.store(entry, Ordering::Release);
        Ok(())
    }

    /// Removes the mapping `page_id → frame_id`; returns false if the table
    /// does not hold exactly that mapping.
    pub(crate) fn remove(&self, page_id: PageId, frame_id: FrameId, guard: &Guard) -> bool {
        let bucket = self.bucket(page_id);
        let _writer = lock(&bucket.writer);
        let mut link = &bucket.head;
        loop {
            let current = link.load(Ordering::Relaxed, guard);
            // SAFETY: we hold the bucket's writer lock, so no entry of this
            // bucket is unlinked (and thus none freed) while we walk it.
            let Some(entry) = (unsafe { current.as_ref() }) else {
                return false;
            };
            if entry.page_id == page_id {
                if entry.frame_id != frame_id {
                    return false;
                }
                let next = entry.next.load(Ordering::Relaxed, guard);
                link.store(next, Ordering::Release);
                // SAFETY: the entry is unlinked, so no new reader can reach
                // it; readers already on it are pinned, and the epoch frees
                // it only after they unpin (invariant 3).
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
        for bucket in self.buckets.iter() {
            let mut current: Shared<'_, Entry> = bucket.head.load(Ordering::Relaxed, guard);
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
