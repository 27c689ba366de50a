//! The clock: finding a free frame, evicting a victim to make one.
//!
//! See the parent module's docs ("Free frames and eviction").

use std::time::Instant;

use crossbeam_utils::Backoff;

use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::latch::{ClockVisit, DIRTY};
use crate::page::{stamp_image, PageId};
use crate::pool::BufferPool;
use crate::stats::{Counter, Report};
use crate::sync::{pause, Ordering};
use crate::undo::Undo;

/// How many times a search that may not wait nudges the epoch for the
/// frames it (or others) just evicted before it gives up.
const NOWAIT_COLLECTS: u32 = 8;

/// A frame wait this long is logged once (a warning): a pool this busy
/// is too small, or a caller holds many guards across something slow.
const SLOW_FRAME_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl BufferPool {
    /// A free frame (still `FREE`, off the free queue, unreachable; the
    /// caller claims it for a page or gives it back); evicts if needed.
    /// The caller has made sure the thread may block ([`ThreadSlot::block`]).
    ///
    /// Sweeps without pause while the clock has not yet gone twice round
    /// the pool (the first pass only sets marks); after that, and while
    /// enough retired frames are already on their way back through the
    /// epoch, it nudges the epoch and backs off instead of evicting more.
    pub(crate) fn take_free_frame(&self, slot: &ThreadSlot) -> Result<FrameId> {
        let found = self.find_free_frame(slot, true)?;
        Ok(found.expect("a search that waits ends with a frame or an error"))
    }

    /// [`take_free_frame`](Self::take_free_frame) without waiting: `None`
    /// where it would back off and wait for frames to come back (every
    /// frame latched or in flight, or retired frames still in their grace
    /// period after [`NOWAIT_COLLECTS`] nudges of the epoch). For callers
    /// that must not block their thread (tasks, batches holding latches).
    pub(crate) fn take_free_frame_now(&self, slot: &ThreadSlot) -> Result<Option<FrameId>> {
        self.find_free_frame(slot, false)
    }

    fn find_free_frame(&self, slot: &ThreadSlot, wait: bool) -> Result<Option<FrameId>> {
        let started = Instant::now();
        let timeout = self.config.frame_wait_timeout;
        let full_sweeps = 2 * self.frames.frame_count();
        let mut visited_without_eviction = 0;
        let mut collects_left = NOWAIT_COLLECTS;
        let backoff = Backoff::new();
        let mut warned = false;
        loop {
            if let Some(frame_id) = self.free.pop() {
                return Ok(Some(frame_id));
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
            if !wait {
                // Frames just evicted come back once the epoch has moved
                // on twice; nudging it is cheap, waiting is not allowed.
                if pending == 0 || collects_left == 0 {
                    return Ok(None);
                }
                collects_left -= 1;
                continue;
            }
            let waited = started.elapsed();
            if waited >= timeout {
                self.reports.report(Report::FrameWaitTimeout, |n| {
                    let pool = &self.config.name;
                    log::error!(
                        "pagepool {pool}: no frame became free in {waited:?}: every frame is \
                         latched; the pool is too small for the guards held at once ({n} so far)"
                    );
                });
                return Err(Error::NoFreeFrame {
                    waited_ms: waited.as_millis() as u64,
                });
            }
            if !warned && waited >= SLOW_FRAME_WAIT {
                warned = true;
                self.reports.report(Report::SlowFrameWait, |n| {
                    let pool = &self.config.name;
                    log::warn!(
                        "pagepool {pool}: a miss has waited {waited:?} for a free frame (every \
                         frame latched or awaiting reclamation; it gives up after {timeout:?}; \
                         {n} slow waits so far)"
                    );
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
            // The hand outran the background writer (if there is one).
            self.writer_signal.kick();
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
                file.sync.retain_if_unsynced(page_no, |image| {
                    image.copy_from_slice(bytes);
                    // A clean frame may differ from what was written by
                    // unlogged stores (frame hints, `access/frame_hint.rs`)
                    // made after its stamp: the image is stamped again so
                    // that it checks as the page it is.
                    stamp_image(image, page_no);
                })
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
