//! The miss path: free frames, the clock, eviction and loading.
//!
//! # Loading a page
//!
//! 1. Check the page id against its file (unknown file, page past the end),
//!    and that the thread may block (not inside an optimistic closure).
//! 2. Take a free frame ([`BufferPool::take_free_frame`]); it comes back
//!    free and unreachable, off the free list.
//! 3. Claim it for the page (the page id first, then `EXCL`, see
//!    `FrameMeta::claim`) and insert `page → frame` in the table. If
//!    another thread inserted the page first, give the frame back (it was
//!    never published) and let the caller wait on the winner: one read per
//!    page, however many threads miss it.
//! 4. Read the page from storage straight into the frame, unpinned; check
//!    its checksum.
//! 5. On failure — an error, or a panic in the `Storage` — unmap the page
//!    and retire the frame through the epoch (an [`Undo`] does it on both
//!    ways out); waiters see `FREE` and look again. On success the caller
//!    gets the frame still latched exclusively.
//!
//! # Free frames and eviction
//!
//! Free frames wait in a queue, oldest first. When it is empty the clock hand sweeps a
//! batch of frames: a first visit sets the mark, an access clears it, a
//! second visit with the mark still set takes the frame exclusively. A
//! dirty victim is written back first (WAL hook, checksum stamp, write); if
//! that fails, or the hook or the storage panics, the page stays dirty and
//! resident and the frame is released. The victim's table entry
//! is removed and the frame retired: it returns to the queue through an
//! epoch-deferred closure, only when no pinned reader can still be reading
//! it (docs/design.md rule 6).
//!
//! The queue is first in, first out so that frames come back in the order
//! the hand swept them, ascending: a scan's read-ahead then claims
//! consecutive frames for consecutive pages, which on the arena's huge
//! pages are one physically contiguous buffer, and a run of them goes to
//! the device as a few large segments instead of one per page (a stack
//! handed them out descending: measured on this VM's virtio disk, 512 KiB
//! requests of 128 scattered pages ran at about half the speed of the
//! same requests in one buffer). A thread short of frames keeps nudging the epoch
//! forward until frames come back, or gives up after
//! `frame_wait_timeout` with [`Error::NoFreeFrame`].

use std::collections::VecDeque;
use std::sync::Arc;

use crossbeam_epoch::Guard;

use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::latch::DIRTY;
use crate::page::PageId;
use crate::pool::{BufferPool, DataFile};
use crate::stats::Counter;
use crate::sync::{lock, AtomicUsize, Mutex, Ordering};
use crate::undo::Undo;

mod batch;
mod clock;
mod finish;
mod scan;

pub(crate) use batch::{Begun, Started, StartedRead, Submission};
pub(crate) use finish::{Collected, LoadFailures, ReadIntents};

/// Outcome of a load attempt.
pub(crate) enum Load {
    /// The page is resident in this frame, latched exclusively by the caller.
    Loaded(FrameId),
    /// Another thread is loading (or has loaded) the page; look it up again.
    Raced,
}

/// Frames holding no page.
#[derive(Debug)]
pub(crate) struct FreeFrames {
    /// Oldest first (see the module docs, "Free frames and eviction").
    queue: Mutex<VecDeque<FrameId>>,
    /// Frames retired but not yet back in the queue (awaiting the epoch).
    pending: AtomicUsize,
}

impl FreeFrames {
    /// Every one of `frame_count` frames free.
    pub(crate) fn new(frame_count: usize) -> Arc<FreeFrames> {
        Arc::new(FreeFrames {
            queue: Mutex::new((0..frame_count).collect()),
            pending: AtomicUsize::new(0),
        })
    }

    fn pop(&self) -> Option<FrameId> {
        lock(&self.queue).pop_front()
    }

    fn push(&self, frame_id: FrameId) {
        lock(&self.queue).push_back(frame_id);
    }

    /// Returns a frame taken from the queue and never claimed, to the
    /// front, where it was.
    pub(crate) fn give_back(&self, frame_id: FrameId) {
        lock(&self.queue).push_front(frame_id);
    }

    /// Returns `frame_id` to the queue once every reader pinned now has
    /// unpinned.
    fn retire(self: &Arc<Self>, frame_id: FrameId, guard: &Guard) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let free = Arc::clone(self);
        guard.defer(move || {
            free.push(frame_id);
            free.pending.fetch_sub(1, Ordering::Relaxed);
        });
        // Hand the deferred closure to the global queue now, so any thread
        // advancing the epoch can run it.
        guard.flush();
    }

    fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

impl BufferPool {
    /// Loads `page_id` into a frame; see the module docs.
    pub(crate) fn load(&self, page_id: PageId, slot: &ThreadSlot) -> Result<Load> {
        let file = self.file_of(page_id)?;
        let _unpinned = slot.block(Some(page_id))?;
        let frame_id = self.take_free_frame(slot)?;
        let Some(claim_version) = self.claim_frame(frame_id, page_id, slot) else {
            return Ok(Load::Raced);
        };
        let _ = claim_version;
        let _holding = slot.held.hold(frame_id, GuardKind::Exclusive);
        // An error or a panic in the storage: waiters see `FREE` and load
        // the page again.
        // However the load ends (a panic too), it is counted as ended.
        let _ended = Undo::new(|| slot.stats.bump(Counter::LoadsEnded));
        let undo = Undo::new(|| self.unmap_and_retire(frame_id, page_id, slot));
        self.timed_read_into(frame_id, page_id, &file, slot)?;
        undo.disarm();
        debug_assert_eq!(self.frames.meta(frame_id).latch.load() & DIRTY, 0);
        Ok(Load::Loaded(frame_id))
    }

    /// Step 3 of a load: claims the free frame `frame_id` (taken off the
    /// free queue) for `page_id` and maps the page to it; returns the
    /// version it was claimed at, or `None` (the frame given back) if
    /// another thread mapped the page first. The caller must end the load
    /// (read, then publish or unmap).
    pub(crate) fn claim_frame(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        slot: &ThreadSlot,
    ) -> Option<u64> {
        let meta = self.frames.meta(frame_id);
        meta.claim(page_id);
        let claim_version = crate::latch::version(meta.latch.load());
        let guard = slot.pin();
        if self.table.insert(page_id, frame_id, &guard).is_err() {
            meta.set_page_id(None);
            self.free_unpublished(frame_id);
            return None;
        }
        slot.stats.bump(Counter::Misses);
        Some(claim_version)
    }

    /// Errors if `page_id` names no page: an unknown file, or a page past
    /// the file's end.
    pub(crate) fn check_page_id(&self, page_id: PageId) -> Result<()> {
        self.file_of(page_id).map(|_| ())
    }

    /// The file of `page_id`, checking the page number against its size.
    pub(crate) fn file_of(&self, page_id: PageId) -> Result<Arc<DataFile>> {
        let file = self.file(page_id.file_id())?;
        let page_count = file.page_count.load(Ordering::Acquire);
        if page_id.page_no() >= page_count {
            return Err(Error::PageOutOfRange {
                page_id,
                page_count,
            });
        }
        Ok(file)
    }
}

#[cfg(all(test, not(any(loom, feature = "shuttle"))))]
mod tests {
    use super::FreeFrames;

    #[test]
    fn free_frames_come_back_in_the_order_they_were_freed() {
        let free = FreeFrames::new(3);
        let taken: Vec<_> = std::iter::from_fn(|| free.pop()).collect();
        assert_eq!(taken, [0, 1, 2], "ascending at open");
        // The clock frees frames in sweep order; a scan's read-ahead must
        // get them in that order (consecutive frames: large segments).
        for frame_id in [7, 8, 9] {
            free.push(frame_id);
        }
        let first = free.pop().unwrap();
        free.give_back(first);
        let taken: Vec<_> = std::iter::from_fn(|| free.pop()).collect();
        assert_eq!(
            taken,
            [7, 8, 9],
            "first in, first out; a frame given back first"
        );
    }
}
