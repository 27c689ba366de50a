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
//! Free frames sit on a stack. When it is empty the clock hand sweeps a
//! batch of frames: a first visit sets the mark, an access clears it, a
//! second visit with the mark still set takes the frame exclusively. A
//! dirty victim is written back first (WAL hook, checksum stamp, write); if
//! that fails, or the hook or the storage panics, the page stays dirty and
//! resident and the frame is released. The victim's table entry
//! is removed and the frame retired: it returns to the stack through an
//! epoch-deferred closure, only when no pinned reader can still be reading
//! it (DESIGN.md rule 6). A thread short of frames keeps nudging the epoch
//! forward until frames come back, or gives up after
//! `frame_wait_timeout_ms` with [`Error::NoFreeFrame`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_epoch::Guard;
use crossbeam_utils::Backoff;

use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::latch::{ClockVisit, DIRTY};
use crate::page::{check_page, PageCheck, PageId};
use crate::pool::{BufferPool, DataFile};
use crate::stats::Counter;
use crate::sync::{lock, pause, AtomicUsize, Mutex, Ordering};
use crate::undo::Undo;

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
    stack: Mutex<Vec<FrameId>>,
    /// Frames retired but not yet back on the stack (awaiting the epoch).
    pending: AtomicUsize,
}

impl FreeFrames {
    /// Every one of `frame_count` frames free.
    pub(crate) fn new(frame_count: usize) -> Arc<FreeFrames> {
        Arc::new(FreeFrames {
            stack: Mutex::new((0..frame_count).rev().collect()),
            pending: AtomicUsize::new(0),
        })
    }

    fn pop(&self) -> Option<FrameId> {
        lock(&self.stack).pop()
    }

    fn push(&self, frame_id: FrameId) {
        lock(&self.stack).push(frame_id);
    }

    /// Returns a frame taken from the stack and never claimed.
    pub(crate) fn give_back(&self, frame_id: FrameId) {
        self.push(frame_id);
    }

    /// Returns `frame_id` to the stack once every reader pinned now has
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
        let meta = self.frames.meta(frame_id);
        meta.claim(page_id);
        {
            let guard = slot.pin();
            if self.table.insert(page_id, frame_id, &guard).is_err() {
                meta.set_page_id(None);
                self.free_unpublished(frame_id);
                return Ok(Load::Raced);
            }
        }
        slot.stats.bump(Counter::Misses);
        let _holding = slot.held.hold(frame_id, GuardKind::Exclusive);
        // An error or a panic in the storage: waiters see `FREE` and load
        // the page again.
        let undo = Undo::new(|| self.unmap_and_retire(frame_id, page_id, slot));
        let read = {
            // The frame came off the free stack after its epoch grace period,
            // and a reader that finds it through the table sees `EXCL` first.
            // SAFETY: held exclusively and unreachable (`fill_bytes` contract).
            unsafe {
                self.frames.fill_bytes(frame_id, |bytes| {
                    // An evicted page not yet synced loads from its retained
                    // image: the medium may have lost it (durability.rs).
                    let retained = file
                        .sync
                        .with_retained(page_id.page_no(), |image| bytes.copy_from_slice(image));
                    if retained.is_none() {
                        slot.stats.bump(Counter::IoReads);
                        if let Err(source) = file.storage.read_page(page_id.page_no(), bytes) {
                            return Err(Error::Read { page_id, source });
                        }
                    }
                    self.check_loaded(page_id, bytes)
                })
            }
        };
        read?;
        undo.disarm();
        debug_assert_eq!(meta.latch.load() & DIRTY, 0);
        Ok(Load::Loaded(frame_id))
    }

    fn check_loaded(&self, page_id: PageId, bytes: &[u8]) -> Result<()> {
        if !self.config.verify_checksums {
            return Ok(());
        }
        let reason = match check_page(bytes, page_id.page_no()) {
            PageCheck::Valid | PageCheck::NeverWritten => return Ok(()),
            PageCheck::BadMagic => {
                "no page trailer (not written by pagepool, or overwritten)".into()
            }
            PageCheck::BadChecksum { stored, computed } => {
                format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
        };
        Err(Error::Corrupt { page_id, reason })
    }

    /// Errors if `page_id` names no page: an unknown file, or a page past
    /// the file's end.
    pub(crate) fn check_page_id(&self, page_id: PageId) -> Result<()> {
        self.file_of(page_id).map(|_| ())
    }

    /// The file of `page_id`, checking the page number against its size.
    fn file_of(&self, page_id: PageId) -> Result<Arc<DataFile>> {
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

    /// Removes the table entry of a frame this thread holds exclusively,
    /// marks it free and retires it through the epoch.
    pub(crate) fn unmap_and_retire(&self, frame_id: FrameId, page_id: PageId, slot: &ThreadSlot) {
        let meta = self.frames.meta(frame_id);
        let guard = slot.pin();
        let removed = self.table.remove(page_id, frame_id, &guard);
        assert!(removed, "{page_id} was not mapped to frame {frame_id}");
        meta.set_page_id(None);
        if meta.latch.evict() {
            self.queues.wake(frame_id);
        }
        self.free.retire(frame_id, &guard);
    }

    /// Gives back a frame taken from the free stack and never published.
    ///
    /// It can still have waiters: a thread that looked the frame up for
    /// the page it held before it was recycled may have parked on it, seen
    /// `EXCL` (ours) and set `WAITERS`; it must be woken to look again.
    pub(crate) fn free_unpublished(&self, frame_id: FrameId) {
        if self.frames.meta(frame_id).latch.evict() {
            self.queues.wake(frame_id);
        }
        self.free.push(frame_id);
    }

    /// A free frame (still `FREE`, off the free stack, unreachable; the
    /// caller claims it for a page or gives it back); evicts if needed.
    /// The caller has made sure the thread may block ([`ThreadSlot::block`]).
    ///
    /// Sweeps without pause while the clock has not yet gone twice round
    /// the pool (the first pass only sets marks); after that, and while
    /// enough retired frames are already on their way back through the
    /// epoch, it nudges the epoch and backs off instead of evicting more.
    pub(crate) fn take_free_frame(&self, slot: &ThreadSlot) -> Result<FrameId> {
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config.frame_wait_timeout_ms);
        let full_sweeps = 2 * self.frames.frame_count();
        let mut visited_without_eviction = 0;
        let backoff = Backoff::new();
        loop {
            if let Some(frame_id) = self.free.pop() {
                return Ok(frame_id);
            }
            let pending = self.free.pending();
            let swept = if pending >= self.config.evict_batch {
                Ok(0)
            } else {
                self.sweep(slot)
            };
            if pending > 0 {
                slot.collect();
            }
            match swept {
                Ok(0) if visited_without_eviction < full_sweeps && pending == 0 => {
                    visited_without_eviction += self.config.evict_batch;
                    continue;
                }
                Ok(0) => {}
                Ok(_) => {
                    visited_without_eviction = 0;
                    continue;
                }
                // Every candidate failed to write back and nothing else is
                // coming: report the write error rather than wait.
                Err(error) if pending == 0 => return Err(error),
                Err(_) => {}
            }
            if started.elapsed() >= timeout {
                return Err(Error::NoFreeFrame {
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            if backoff.is_completed() {
                let _suspended = slot.suspend();
                pause();
            } else {
                backoff.snooze();
            }
        }
    }

    /// Advances the clock hand over one batch of frames, evicting those
    /// whose mark survived since the last visit. Returns how many were
    /// evicted, or the first write-back error if none was.
    fn sweep(&self, slot: &ThreadSlot) -> Result<usize> {
        let frame_count = self.frames.frame_count();
        let batch = self.config.evict_batch.min(frame_count);
        let start = self.clock_hand.fetch_add(batch, Ordering::Relaxed);
        let mut evicted = 0;
        let mut first_error = None;
        for step in 0..batch {
            let frame_id = start.wrapping_add(step) % frame_count;
            if self.frames.meta(frame_id).latch.clock_visit() != ClockVisit::Victim {
                continue;
            }
            match self.evict(frame_id, slot) {
                Ok(()) => evicted += 1,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if evicted == 0 => Err(error),
            _ => Ok(evicted),
        }
    }

    /// Makes a victim safe to drop from memory: writes it back if dirty,
    /// and if it is not yet synced, keeps its image until it is (syncing
    /// the file first when the retained images are at their bound).
    fn prepare_eviction(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        slot: &ThreadSlot,
    ) -> Result<()> {
        let _suspended = slot.suspend();
        if self.frames.meta(frame_id).latch.load() & DIRTY != 0 {
            self.write_back_exclusive(frame_id, page_id, slot)?;
        }
        let file = self.file(page_id.file_id())?;
        let page_no = page_id.page_no();
        if file.sync.is_unsynced(page_no) && file.sync.retained_full() {
            self.sync_file(page_id.file_id(), &file, slot)?;
        }
        // SAFETY: the clock holds the frame exclusively and stores nothing
        // while the image is copied.
        unsafe {
            self.frames.with_bytes(frame_id, |bytes| {
                file.sync
                    .retain_if_unsynced(page_no, |image| image.copy_from_slice(bytes))
            })
        };
        Ok(())
    }

    /// Evicts a frame the clock latched exclusively: writes it back if
    /// dirty, unmaps and retires it. On a write-back failure the page stays
    /// resident and dirty.
    fn evict(&self, frame_id: FrameId, slot: &ThreadSlot) -> Result<()> {
        let meta = self.frames.meta(frame_id);
        let Some(page_id) = meta.page_id() else {
            // Only loaders hold page-less frames, and they hold them
            // exclusively, so the clock cannot have taken one.
            unreachable!("clock victim {frame_id} holds no page");
        };
        let _holding = slot.held.hold(frame_id, GuardKind::Exclusive);
        // A failed (or panicking) write-back or WAL hook: the page stays
        // resident and dirty, and the frame is released.
        let undo = Undo::new(|| self.release_exclusive(frame_id, false));
        self.prepare_eviction(frame_id, page_id, slot)?;
        undo.disarm();
        self.unmap_and_retire(frame_id, page_id, slot);
        slot.stats.bump(Counter::Evictions);
        Ok(())
    }
}
