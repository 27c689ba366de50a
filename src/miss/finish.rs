//! Ending a load: checking the page that came in and publishing it, or
//! unmapping it. Runs on whichever thread holds the load: the loader
//! itself for a synchronous miss, the I/O engine's thread for a read that
//! was started without waiting (`batch.rs`).
//!
//! # In flight
//!
//! A started read's frame is claimed for its page (`EXCL`, mapped in the
//! table) by no thread: no thread's record of held latches names it, so a
//! thread that wants the page simply waits for the frame like for any
//! loader. The engine reports the read once; [`PoolCore::finish_load`]
//! then either releases `EXCL` (the version moves, waiters wake and find
//! the page) or records the error and unmaps the frame (waiters wake, find
//! no page, and the thread that started the read finds the error, see
//! [`LoadFailures`]).
//!
//! # Held for the starter
//!
//! A read started by someone who will come for the page (`read_many`, a
//! future) must not lose it to the clock between the read's end and that
//! look: with many more requests than frames, the hand would otherwise go
//! round between the two and every read be wasted. Such a read is
//! *wanted* ([`ReadIntents`]): its end turns `EXCL` into one shared latch
//! held for the starter, who takes it over when it looks. Per frame:
//!
//! | intent   | set by                                  | means                                   |
//! |----------|-----------------------------------------|-----------------------------------------|
//! | `NONE`   | start; a failed read; collect; abandon  | nobody waits for this frame's read      |
//! | `WANTED` | the starter, before it submits          | the read is in flight for its starter   |
//! | `READY`  | the read's end, after its downgrade     | one shared latch is held for the starter |
//!
//! The end of a wanted read downgrades first and then moves `WANTED` to
//! `READY`; if the starter abandoned the read meanwhile (`WANTED` →
//! `NONE`, a dropped future), that move fails and the end releases the
//! latch itself. The starter collects with `READY` → `NONE` and owns the
//! latch. Exactly one of the two releases it.

use std::collections::VecDeque;
use std::io;

use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::latch::{version, PageLatch};
use crate::page::{check_page, PageId, PAGE_SIZE};
use crate::pool::{DataFile, PoolCore};
use crate::stats::{Counter, Report};
use crate::sync::{lock, AtomicU64, Mutex, Ordering};
use crate::undo::Undo;

/// An intent word: the claim version of the read it is about (the
/// frame's tenancy), shifted, and the intent in the low two bits. A word
/// of another tenancy never matches, so a starter whose read failed (and
/// whose frame went on to another page's wanted read) cannot take that
/// read's latch.
const NONE: u64 = 0;
const WANTED: u64 = 1;
const READY: u64 = 2;
const INTENT_BITS: u64 = 0b11;

fn intent(claim_version: u64, intent: u64) -> u64 {
    (claim_version << 2) | intent
}

/// Each frame's [intent](self#held-for-the-starter): whether its read in
/// flight is wanted by its starter, and whether the latch is held for it.
#[derive(Debug)]
pub(crate) struct ReadIntents {
    intents: Box<[AtomicU64]>,
}

/// What a starter found when it looked for its read's page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Collected {
    /// The page is in; the shared latch held for it is the starter's now.
    Latched,
    /// The read has not ended yet (or is ending: its latch not yet handed
    /// over).
    InFlight,
    /// The read failed (its error is in [`LoadFailures`]).
    Failed,
}

impl ReadIntents {
    pub(crate) fn new(frame_count: usize) -> ReadIntents {
        ReadIntents {
            intents: (0..frame_count).map(|_| AtomicU64::new(NONE)).collect(),
        }
    }

    /// Marks the read the caller is about to submit into `frame_id` (which
    /// it claimed at `claim_version`) as wanted.
    pub(crate) fn want(&self, frame_id: FrameId, claim_version: u64) {
        let previous = self.intents[frame_id].swap(intent(claim_version, WANTED), Ordering::AcqRel);
        debug_assert_eq!(
            previous & INTENT_BITS,
            NONE,
            "frame {frame_id} had a read wanted already"
        );
    }

    /// The starter's look: takes the latch if its read is in.
    pub(crate) fn collect(&self, frame_id: FrameId, claim_version: u64) -> Collected {
        let ready = intent(claim_version, READY);
        match self.intents[frame_id].compare_exchange(
            ready,
            NONE,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Collected::Latched,
            Err(now) if now == intent(claim_version, WANTED) => Collected::InFlight,
            Err(_) => Collected::Failed,
        }
    }

    /// The starter gives up on its read (a dropped future, an unwinding
    /// batch): returns true if the latch was already held for it, which
    /// the caller must then release.
    pub(crate) fn abandon(&self, frame_id: FrameId, claim_version: u64) -> bool {
        let wanted = intent(claim_version, WANTED);
        self.intents[frame_id]
            .compare_exchange(wanted, NONE, Ordering::AcqRel, Ordering::Acquire)
            .is_err_and(|_| self.collect(frame_id, claim_version) == Collected::Latched)
    }

    /// The end of a read that succeeded, on `latch` (held exclusively by
    /// the read): releases it, or for a wanted read downgrades it to the
    /// shared latch and hands that to the starter, releasing it after all
    /// if the starter abandoned the read meanwhile (see the module docs).
    /// Returns whether waiters must be woken.
    #[must_use]
    pub(crate) fn end_read(
        &self,
        latch: &PageLatch,
        frame_id: FrameId,
        claim_version: u64,
    ) -> bool {
        let (wanted, ready) = (intent(claim_version, WANTED), intent(claim_version, READY));
        let intent = &self.intents[frame_id];
        if intent.load(Ordering::Acquire) != wanted {
            return latch.unlock_exclusive(false);
        }
        let mut wake = latch.downgrade_clean();
        if intent
            .compare_exchange(wanted, ready, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Abandoned meanwhile: nobody will take the latch.
            wake |= latch.unlock_shared();
        }
        wake
    }

    /// A failed read: nobody will collect a latch.
    pub(crate) fn failed(&self, frame_id: FrameId, claim_version: u64) {
        let wanted = intent(claim_version, WANTED);
        let _ = self.intents[frame_id].compare_exchange(
            wanted,
            NONE,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// How many failed started reads are kept for their starters to collect;
/// older ones (a prefetch nobody followed) are dropped.
const KEPT_FAILURES: usize = 256;

/// Errors of started reads, kept until the thread that started each read
/// comes for it. A read is named by its frame and the version the frame
/// had when it was claimed: one tenancy of one frame.
#[derive(Debug, Default)]
pub(crate) struct LoadFailures {
    failed: Mutex<VecDeque<(FrameId, u64, Error)>>,
}

impl LoadFailures {
    fn record(&self, frame_id: FrameId, claim_version: u64, error: Error) {
        let mut failed = lock(&self.failed);
        if failed.len() == KEPT_FAILURES {
            failed.pop_front();
        }
        failed.push_back((frame_id, claim_version, error));
    }

    /// The error of the read that claimed `frame_id` at `claim_version`,
    /// if it failed (and was not collected yet).
    pub(crate) fn take(&self, frame_id: FrameId, claim_version: u64) -> Option<Error> {
        let mut failed = lock(&self.failed);
        let index = failed
            .iter()
            .position(|&(frame, claimed, _)| frame == frame_id && claimed == claim_version)?;
        failed.remove(index).map(|(_, _, error)| error)
    }
}

impl PoolCore {
    /// Ends a read the engine reports for `frame_id` (see the module
    /// docs): `Some(result)` is the kernel's, `None` asks for the read to
    /// be done now, on this thread. Never panics out: a panic in the
    /// storage counts as a failed read.
    pub(crate) fn finish_load(&self, frame_id: FrameId, outcome: Option<io::Result<usize>>) {
        let slot = self.epoch.slot();
        let meta = self.frames.meta(frame_id);
        let Some(page_id) = meta.page_id() else {
            unreachable!("an in-flight frame {frame_id} holds no page");
        };
        let claim_version = version(meta.latch.load());
        // However the load ends (a panic too), it is counted as ended, and
        // before the page is published: a thread that reads the page and
        // then the stats sees no load in flight for it.
        let ended = Undo::new(|| slot.stats.bump(Counter::LoadsEnded));
        let failed = Undo::new(|| {
            let error = Error::Read {
                page_id,
                source: io::Error::other("the storage panicked"),
            };
            self.fail_load(frame_id, page_id, claim_version, error, &slot);
        });
        let result = self.file(page_id.file_id()).and_then(|file| match outcome {
            None => self.read_into(frame_id, page_id, &file, &slot),
            Some(result) => self.check_ring_read(frame_id, page_id, &file, result, &slot),
        });
        failed.disarm();
        self.metrics.load_ended(frame_id);
        drop(ended);
        match result {
            Ok(()) => self.publish_read(frame_id, claim_version),
            Err(error) => self.fail_load(frame_id, page_id, claim_version, error, &slot),
        }
    }

    /// Publishes a page read in: releases `EXCL`, or for a wanted read
    /// turns it into the shared latch held for the starter (see the module
    /// docs).
    fn publish_read(&self, frame_id: FrameId, claim_version: u64) {
        let latch = &self.frames.meta(frame_id).latch;
        if self.read_intents.end_read(latch, frame_id, claim_version) {
            self.queues.wake(frame_id);
        }
    }

    fn fail_load(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        claim_version: u64,
        error: Error,
        slot: &ThreadSlot,
    ) {
        slot.stats.bump(Counter::ReadFailures);
        self.reports.report(Report::FailedRead, |n| {
            let pool = &self.config.name;
            log::warn!("pagepool {pool}: a started read failed ({n} so far): {error}");
        });
        self.read_intents.failed(frame_id, claim_version);
        // Recorded before the frame is unmapped: a starter that finds the
        // page gone finds its error.
        self.load_failures.record(frame_id, claim_version, error);
        self.unmap_and_retire(frame_id, page_id, slot);
    }

    /// [`read_into`](Self::read_into) for a synchronous load: its latency
    /// goes to the metrics (`metrics.rs`).
    pub(crate) fn timed_read_into(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        file: &DataFile,
        slot: &ThreadSlot,
    ) -> Result<()> {
        self.metrics
            .time(|| self.read_into(frame_id, page_id, file, slot))
    }

    /// Reads `page_id` from storage (or from its retained image) into the
    /// claimed frame `frame_id` and checks it.
    pub(crate) fn read_into(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        file: &DataFile,
        slot: &ThreadSlot,
    ) -> Result<()> {
        // The frame came off the free queue after its epoch grace period,
        // and a reader that finds it through the table sees `EXCL` first.
        // SAFETY: held exclusively (by the load) and unreachable
        // (`fill_bytes` contract).
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
    }

    /// Checks a page the kernel read into the frame: short means the end
    /// of the file (the rest was never written), then the store's say,
    /// then the checksum.
    fn check_ring_read(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        file: &DataFile,
        result: io::Result<usize>,
        slot: &ThreadSlot,
    ) -> Result<()> {
        slot.stats.bump(Counter::IoReads);
        // The kernel's write into the frame happened before its completion
        // was reaped; the frame is still claimed by the load.
        // SAFETY: held exclusively (by the load) and unreachable
        // (`fill_bytes` contract).
        unsafe {
            self.frames.fill_bytes(frame_id, |bytes| {
                let result = result.map(|read_bytes| {
                    if read_bytes < PAGE_SIZE {
                        bytes[read_bytes..].fill(0);
                    }
                });
                file.storage
                    .complete_read(page_id.page_no(), bytes, result)
                    .map_err(|source| Error::Read { page_id, source })?;
                self.check_loaded(page_id, bytes)
            })
        }
    }

    pub(crate) fn check_loaded(&self, page_id: PageId, bytes: &[u8]) -> Result<()> {
        if !self.config.verify_checksums {
            return Ok(());
        }
        let Some(reason) = check_page(bytes, page_id.page_no()).corruption() else {
            return Ok(());
        };
        self.reports.report(Report::Corrupt, |n| {
            let pool = &self.config.name;
            log::error!(
                "pagepool {pool}: {page_id} is corrupt ({reason}); {n} corrupt loads so far"
            );
        });
        Err(Error::Corrupt { page_id, reason })
    }

    /// Removes the table entry of a frame this thread holds exclusively,
    /// marks it free and retires it through the epoch.
    pub(crate) fn unmap_and_retire(&self, frame_id: FrameId, page_id: PageId, slot: &ThreadSlot) {
        let meta = self.frames.meta(frame_id);
        let guard = slot.pin();
        let removed = self.table.remove(page_id, frame_id, &guard);
        assert!(removed, "{page_id} was not mapped to frame {frame_id}");
        meta.set_page_id(None);
        // A discarded page's changes go with it (an evicted one's were
        // recorded when written): the next tenant starts clean.
        self.recovery_lsns.clear(frame_id);
        if meta.latch.evict() {
            self.queues.wake(frame_id);
        }
        self.free.retire(frame_id, &guard);
    }

    /// Gives back a frame taken from the free queue and never published.
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
}
