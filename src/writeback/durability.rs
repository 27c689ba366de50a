//! What a file has written but not yet made durable.
//!
//! After a failed `fdatasync` the writes it covered may be gone from the
//! device (a volatile write cache), and the kernel will not report the
//! failure again (PostgreSQL's 2018 lesson): retrying the sync proves
//! nothing, the pages must be written again, and their bytes must come
//! from memory, not from the medium that may have lost them.
//!
//! So each file keeps a [`SyncTracker`]:
//!
//! | set        | holds                                               | emptied when |
//! |------------|-----------------------------------------------------|--------------|
//! | `unsynced` | page → sequence number of its last write-back, and the oldest recovery LSN it was written with | a sync that began after that write succeeds |
//! | `retained` | the image of each unsynced page that was evicted    | the same     |
//! | `rewrite`  | pages a failed sync covered                         | a flush has marked them dirty again |
//!
//! Invariants:
//! 1. Every unsynced page is resident, or its image is retained: the
//!    evictor retains the image of an unsynced page before freeing its
//!    frame, and a load of a retained page copies the image, never the
//!    medium.
//! 2. An entry leaves `unsynced` only when a sync that started after its
//!    write succeeded (the sequence number tells a later write apart), and
//!    not while the page waits in `rewrite` (a sync that succeeds before
//!    the page is written again does not make the lost write durable).
//! 3. `retained` holds at most [`MAX_RETAINED_PAGES`] images; past that the
//!    evictor syncs the file first, and if the sync fails, it does not
//!    evict the page.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::page::PAGE_SIZE;
use crate::sync::{lock, Mutex};

/// The most page images a file retains before an eviction syncs it.
pub(crate) const MAX_RETAINED_PAGES: usize = 1024;
/// The most unsynced pages a file tracks before a write-back syncs it.
pub(crate) const MAX_UNSYNCED_PAGES: usize = 1 << 20;

/// A page image aligned for direct I/O.
#[repr(C, align(4096))]
struct AlignedPage([u8; PAGE_SIZE]);

#[derive(Default)]
struct TrackerState {
    next_seq: u64,
    /// page → (sequence number, recovery LSN).
    unsynced: BTreeMap<u64, (u64, u64)>,
    retained: HashMap<u64, Box<AlignedPage>>,
    rewrite: BTreeSet<u64>,
}

/// The unsynced writes of one file. See the module docs.
#[derive(Default)]
pub(crate) struct SyncTracker {
    state: Mutex<TrackerState>,
}

/// The unsynced pages when a sync began.
pub(crate) struct SyncSnapshot(BTreeMap<u64, u64>);

impl std::fmt::Debug for SyncTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("SyncTracker")
            .field("unsynced", &state.unsynced.len())
            .field("retained", &state.retained.len())
            .field("rewrite", &state.rewrite.len())
            .finish()
    }
}

impl SyncTracker {
    /// Records a completed write-back of `page_no`, whose recovery LSN
    /// (the first change since it was last durable) was `recovery_lsn`;
    /// returns how many pages are now unsynced. A page written twice
    /// before a sync keeps the older recovery LSN: its first change is
    /// still not durable.
    pub(crate) fn note_written(&self, page_no: u64, recovery_lsn: u64) -> usize {
        let mut state = lock(&self.state);
        state.next_seq += 1;
        let seq = state.next_seq;
        let entry = state.unsynced.entry(page_no).or_insert((seq, recovery_lsn));
        *entry = (seq, entry.1.min(recovery_lsn));
        state.unsynced.len()
    }

    /// Every unsynced page and its recovery LSN, in page order.
    pub(crate) fn unsynced_pages(&self) -> Vec<(u64, u64)> {
        let state = lock(&self.state);
        state
            .unsynced
            .iter()
            .map(|(&page, &(_, lsn))| (page, lsn))
            .collect()
    }

    /// Whether a background pass should sync the file: the retained
    /// images have reached half their bound (an eviction would sync at
    /// the bound), or the unsynced record a sixteenth of its.
    pub(crate) fn wants_sync(&self) -> bool {
        let state = lock(&self.state);
        state.retained.len() >= MAX_RETAINED_PAGES / 2
            || state.unsynced.len() >= MAX_UNSYNCED_PAGES / 16
    }

    /// Whether a failed sync left pages to be written again.
    pub(crate) fn has_rewrites(&self) -> bool {
        !lock(&self.state).rewrite.is_empty()
    }

    /// The recovery LSN `page_no` was last written with, if unsynced.
    pub(crate) fn unsynced_lsn(&self, page_no: u64) -> Option<u64> {
        lock(&self.state)
            .unsynced
            .get(&page_no)
            .map(|entry| entry.1)
    }

    /// Whether any page is written and not yet synced.
    pub(crate) fn has_unsynced(&self) -> bool {
        !lock(&self.state).unsynced.is_empty()
    }

    /// Whether `page_no` was written since the last successful sync.
    pub(crate) fn is_unsynced(&self, page_no: u64) -> bool {
        lock(&self.state).unsynced.contains_key(&page_no)
    }

    /// Whether the retained images have reached [`MAX_RETAINED_PAGES`].
    pub(crate) fn retained_full(&self) -> bool {
        lock(&self.state).retained.len() >= MAX_RETAINED_PAGES
    }

    /// Keeps the image of `page_no`, whose frame is being freed, if the
    /// page is unsynced (checked under the same lock as the insertion, so a
    /// sync completing meanwhile cannot strand the image).
    pub(crate) fn retain_if_unsynced(&self, page_no: u64, image_of: impl FnOnce(&mut [u8])) {
        let mut state = lock(&self.state);
        if state.unsynced.contains_key(&page_no) {
            let mut image = Box::new(AlignedPage([0; PAGE_SIZE]));
            image_of(&mut image.0);
            state.retained.insert(page_no, image);
        }
    }

    /// Runs `f` on the retained image of `page_no`, if there is one.
    pub(crate) fn with_retained<R>(&self, page_no: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        lock(&self.state)
            .retained
            .get(&page_no)
            .map(|image| f(&image.0))
    }

    /// Notes the pages a sync about to start covers.
    pub(crate) fn begin_sync(&self) -> SyncSnapshot {
        let state = lock(&self.state);
        SyncSnapshot(
            state
                .unsynced
                .iter()
                .map(|(&page, &(seq, _))| (page, seq))
                .collect(),
        )
    }

    /// The sync succeeded: its pages are durable unless written since, or
    /// still waiting to be written again after an earlier failed sync (the
    /// medium may hold an older image of those).
    pub(crate) fn sync_succeeded(&self, snapshot: SyncSnapshot) {
        let mut state = lock(&self.state);
        for (page_no, seq) in snapshot.0 {
            let same_write = state.unsynced.get(&page_no).map(|entry| entry.0) == Some(seq);
            if same_write && !state.rewrite.contains(&page_no) {
                state.unsynced.remove(&page_no);
                state.retained.remove(&page_no);
            }
        }
    }

    /// The sync failed: every page it covered must be written again.
    pub(crate) fn sync_failed(&self, snapshot: SyncSnapshot) {
        lock(&self.state).rewrite.extend(snapshot.0.into_keys());
    }

    /// The pages waiting to be written again.
    pub(crate) fn pending_rewrites(&self) -> Vec<u64> {
        lock(&self.state).rewrite.iter().copied().collect()
    }

    /// `page_no` is dirty in the pool again: the next write-back and sync
    /// take care of it.
    pub(crate) fn rewrite_scheduled(&self, page_no: u64) {
        lock(&self.state).rewrite.remove(&page_no);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successful_sync_clears_only_the_writes_it_covered() {
        let tracker = SyncTracker::default();
        tracker.note_written(1, 10);
        tracker.note_written(2, 20);
        tracker.retain_if_unsynced(2, |image| image.fill(7));
        tracker.retain_if_unsynced(9, |image| image.fill(7)); // never written: not kept
        let snapshot = tracker.begin_sync();
        tracker.note_written(1, 30); // written again while the sync runs
        tracker.sync_succeeded(snapshot);
        assert!(tracker.is_unsynced(1), "the later write is not covered");
        assert_eq!(
            tracker.unsynced_pages(),
            vec![(1, 10)],
            "the older recovery LSN stays"
        );
        assert!(!tracker.is_unsynced(2));
        assert!(tracker.with_retained(2, |_| ()).is_none());
        assert!(tracker.with_retained(9, |_| ()).is_none());
        assert!(tracker.pending_rewrites().is_empty());
    }

    #[test]
    fn a_failed_sync_keeps_everything_and_schedules_rewrites() {
        let tracker = SyncTracker::default();
        tracker.note_written(3, 5);
        tracker.retain_if_unsynced(3, |image| image.fill(9));
        let snapshot = tracker.begin_sync();
        tracker.sync_failed(snapshot);
        assert!(tracker.is_unsynced(3));
        assert_eq!(tracker.with_retained(3, |image| image[0]), Some(9));
        assert_eq!(tracker.pending_rewrites(), vec![3]);
        // A later sync that succeeds before the rewrite keeps it all.
        tracker.sync_succeeded(tracker.begin_sync());
        assert!(tracker.is_unsynced(3));
        assert_eq!(tracker.with_retained(3, |image| image[0]), Some(9));
        tracker.rewrite_scheduled(3);
        assert!(tracker.pending_rewrites().is_empty());
    }

    #[test]
    fn retained_images_are_aligned_for_direct_io() {
        let tracker = SyncTracker::default();
        tracker.note_written(0, 0);
        tracker.retain_if_unsynced(0, |image| image.fill(1));
        let addr = tracker
            .with_retained(0, |image| image.as_ptr() as usize)
            .unwrap();
        assert_eq!(addr % 4096, 0);
    }
}
