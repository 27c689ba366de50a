//! Misses that overlap: reads started without waiting for them.
//!
//! - [`BufferPool::prefetch`] starts the reads of the pages that are not
//!   resident and returns.
//! - [`BufferPool::read_many`] starts the reads of a batch's misses
//!   together, then hands each page to the caller's closure as it becomes
//!   resident: hits first, then misses in the order their reads complete.
//!
//! A started read is a frame claimed for its page and mapped in the
//! table, but held by no thread (see `finish.rs`): a later access of the
//! page waits for that frame like for any loader and never issues a second
//! read. Every frame claimed here is handed to the engine by a
//! [`Submission`], whose drop submits whatever it holds, so an early
//! return or a panic between claim and submit cannot leave a frame
//! claimed with no read to end it.
//!
//! A started read's frame has no clock mark (a claimed frame otherwise
//! starts marked, see [`crate::latch`]): the page survives one pass of the
//! hand between the read's end and its reader's look.
//!
//! With the sync engine (and for stores that the engine cannot read, see
//! [`crate::io`]) the read is done on the calling thread, at once.

use std::rc::Rc;

use super::Collected;
use crate::access::PageRef;
use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::io::FrameIo;
use crate::latch::{Blocked, Want};
use crate::page::{PageId, PAGE_SIZE};
use crate::pool::{BufferPool, WaitEnd};
use crate::stats::Counter;
use crate::undo::Undo;

/// A read this thread started: the frame claimed for the page, and the
/// version it was claimed at (what its failure is recorded under).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Started {
    pub(crate) frame_id: FrameId,
    pub(crate) claim_version: u64,
}

/// What `start_load` did.
pub(crate) enum Begun {
    /// The read is in flight.
    Started(Started),
    /// The page was read on this thread, and is resident.
    ReadNow,
    /// Another thread is loading the page.
    Raced,
    /// No frame was free without waiting (only when asked not to wait).
    NoFrame,
}

impl Begun {
    fn started(&self) -> Option<Started> {
        match self {
            Begun::Started(started) => Some(*started),
            Begun::ReadNow | Begun::Raced | Begun::NoFrame => None,
        }
    }
}

/// Claimed frames waiting to be handed to the engine; submitted on drop.
pub(crate) struct Submission<'pool> {
    pool: &'pool BufferPool,
    reads: Vec<FrameIo>,
    /// Reads queued before they go to the engine without waiting for the
    /// rest of the batch.
    submit_every: usize,
}

impl<'pool> Submission<'pool> {
    /// For reads of pages anywhere: submitted every [`SUBMIT_EVERY`].
    pub(crate) fn new(pool: &'pool BufferPool) -> Submission<'pool> {
        Submission::submitting_every(pool, SUBMIT_EVERY)
    }

    /// For a scan's read-ahead, pages in order: submitted every
    /// [`MAX_RUN_PAGES`](crate::io::MAX_RUN_PAGES), so that the engine can
    /// read them as runs that long (one device request each).
    pub(crate) fn for_runs(pool: &'pool BufferPool) -> Submission<'pool> {
        Submission::submitting_every(pool, crate::io::MAX_RUN_PAGES)
    }

    fn submitting_every(pool: &'pool BufferPool, submit_every: usize) -> Submission<'pool> {
        Submission {
            pool,
            reads: Vec::new(),
            submit_every,
        }
    }
}

impl Submission<'_> {
    /// Hands the queued reads to the engine now.
    pub(crate) fn flush(&mut self) {
        if !self.reads.is_empty() {
            self.pool.engine.submit(&self.reads);
            self.reads.clear();
        }
    }
}

impl Drop for Submission<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Reads queued before a submission goes to the engine without waiting
/// for the rest of the batch: the device starts on the first ones while
/// the rest are claimed.
const SUBMIT_EVERY: usize = 32;

/// Where a page of a batch stands.
pub(crate) enum Poll<'pool> {
    /// Latched shared, for the caller.
    Ready(PageRef<'pool>),
    /// Its read is in flight (or a writer holds it): wait on this frame.
    Busy(FrameId),
    /// Neither resident nor loading.
    Absent,
    /// A page the caller cannot have (too many shared guards).
    Failed(Error),
}

impl BufferPool {
    /// Starts loading every page of `page_ids` that is neither resident
    /// nor already loading, and returns without waiting for the reads
    /// (with the sync engine, after reading them). Returns how many pages
    /// it read or started reading. A later access of such a page waits for its read; a
    /// read that fails leaves the page absent (and is logged), so that
    /// access reads it again and gets the error itself.
    ///
    /// Every id is checked first: an unknown file or a page past its end
    /// is an error, and nothing is started. Each started read takes a
    /// frame (evicting, if need be, as a miss does) that the clock may
    /// evict again before the page is used if the pool is small for the
    /// batch: prefetch what will be read soon.
    ///
    /// ```
    /// # use pagepool::*;
    /// # fn demo(pool: &BufferPool, pages: &[PageId]) -> Result<u64> {
    /// pool.prefetch(pages)?; // the reads overlap
    /// let mut sum = 0;
    /// for &page_id in pages {
    ///     sum += pool.read(page_id)?.view().load_u64(0)?; // waits for its read only
    /// }
    /// # Ok(sum) }
    /// ```
    pub fn prefetch(&self, page_ids: &[PageId]) -> Result<usize> {
        for &page_id in page_ids {
            self.check_page_id(page_id)?;
        }
        let slot = self.thread_slot();
        let mut submission = Submission::new(self);
        let mut started = 0;
        for &page_id in page_ids {
            if self.lookup(page_id, &slot, false).is_some() {
                continue;
            }
            if matches!(
                self.start_load(page_id, &slot, &mut submission, true, false)?,
                Begun::Started(_) | Begun::ReadNow
            ) {
                started += 1;
            }
        }
        Ok(started)
    }

    /// Reads every page of `page_ids` under a shared latch, calling
    /// `each(page_id, guard)` once per page (also for each repeat of an
    /// id): resident pages first, then the others in the order their reads
    /// complete. The reads of the misses are started together, before the
    /// first call, so they overlap each other and the calls.
    ///
    /// A page that cannot be read comes to `each` as its error (a failed
    /// read with the page's id, a bad page id); the other pages still come.
    /// The guard is the closure's for the call: it may keep it (and the
    /// page latched) only by holding on to it past the call, as with any
    /// guard.
    ///
    /// ```
    /// # use pagepool::*;
    /// # fn demo(pool: &BufferPool, pages: &[PageId]) -> Result<u64> {
    /// let mut sum = 0;
    /// let mut first_error = None;
    /// pool.read_many(pages, |page_id, page| match page {
    ///     Ok(page) => sum += u64::from(page.view().load_u8(0).unwrap()),
    ///     Err(error) => { first_error.get_or_insert((page_id, error)); }
    /// });
    /// # Ok(sum) }
    /// ```
    pub fn read_many<'pool>(
        &'pool self,
        page_ids: &[PageId],
        mut each: impl FnMut(PageId, Result<PageRef<'pool>>),
    ) {
        let slot = self.thread_slot();
        let mut batch = Batch {
            pool: self,
            waiting: Vec::with_capacity(page_ids.len()),
        };
        let mut next = 0;
        while next < page_ids.len() || !batch.waiting.is_empty() {
            // Start every read there is a frame for without waiting.
            let mut out_of_frames = false;
            {
                let mut submission = Submission::new(self);
                while next < page_ids.len() {
                    let page_id = page_ids[next];
                    let begun = if self.lookup(page_id, &slot, false).is_some() {
                        Ok(Begun::Raced)
                    } else {
                        self.start_load(page_id, &slot, &mut submission, false, true)
                    };
                    match begun {
                        Ok(Begun::NoFrame) => {
                            out_of_frames = true;
                            break;
                        }
                        Ok(begun) => batch.waiting.push((page_id, begun.started())),
                        Err(error) => each(page_id, Err(error)),
                    }
                    next += 1;
                }
            }
            // Hand over every page that is in (which frees frames): the
            // pages that were resident first, then the reads that ended (a
            // read may end before the hits' turn comes). The first pass
            // does nothing that may wait: a page gone meanwhile (`Absent`,
            // a blocking read) waits for the second.
            let before = batch.waiting.len();
            let mut wait_on = None;
            for hits_only in [true, false] {
                batch.waiting.retain(|&(page_id, started)| {
                    if hits_only && started.is_some() {
                        return true;
                    }
                    match self.poll_started(page_id, started, &slot) {
                        Poll::Ready(page) => each(page_id, Ok(page)),
                        Poll::Failed(error) => each(page_id, Err(error)),
                        Poll::Absent if hits_only => return true,
                        Poll::Absent => each(page_id, self.read_with(page_id, &slot)),
                        Poll::Busy(frame_id) => {
                            if !hits_only {
                                wait_on.get_or_insert((page_id, frame_id));
                            }
                            return true;
                        }
                    }
                    false
                });
            }
            if batch.waiting.len() < before {
                continue;
            }
            match wait_on {
                Some((page_id, frame_id)) => {
                    if let Some(settled) = self.wait_in_batch(&slot, frame_id, page_id) {
                        batch.remove(page_id);
                        each(page_id, settled);
                    }
                }
                // Nothing in flight and no frame free without waiting:
                // read the next page the way a single read does.
                None if out_of_frames => {
                    each(page_ids[next], self.read_with(page_ids[next], &slot));
                    next += 1;
                }
                None => {}
            }
        }
    }

    /// Waits for the frame of a batch's page: `Some` settles the page (its
    /// guard, or the error that ends it), `None` asks for another poll.
    fn wait_in_batch<'pool>(
        &'pool self,
        slot: &Rc<ThreadSlot>,
        frame_id: FrameId,
        page_id: PageId,
    ) -> Option<Result<PageRef<'pool>>> {
        match self.wait_for_page(slot, frame_id, page_id, Want::Shared) {
            // Also the moment between a read's end and its hand-over (the
            // frame latched shared, not yet ours): let the ender finish.
            Ok(WaitEnd::Retry | WaitEnd::Moved) => {
                crate::sync::yield_now();
                None
            }
            // The caller holds the page itself (it was resident, and a
            // writer waits for the caller's latch, so polls keep stepping
            // aside): a single read takes another shared latch at once,
            // and that guard is the page's.
            Ok(WaitEnd::HeldByCaller(_)) => Some(self.read_with(page_id, slot)),
            Err(error) => Some(Err(error)),
        }
    }

    /// Starts the read of `page_id` into a frame claimed for it, queued in
    /// `submission`; or, where the engine does not take the store's reads
    /// (or the page has a retained image), reads it now and publishes it.
    /// Without `wait`, gives up with [`Begun::NoFrame`] where taking a
    /// frame would wait. A `wanted` read is held for the caller when it
    /// ends (see `finish.rs`): the caller must collect or abandon it.
    pub(crate) fn start_load(
        &self,
        page_id: PageId,
        slot: &ThreadSlot,
        submission: &mut Submission<'_>,
        wait: bool,
        wanted: bool,
    ) -> Result<Begun> {
        let file = self.file_of(page_id)?;
        let _unpinned = slot.block(Some(page_id))?;
        if submission.reads.len() >= submission.submit_every {
            submission.flush();
        }
        // Frames come back only from reads the engine has: a batch must not
        // wait for a frame while it holds reads it has not submitted. So it
        // looks without waiting first (the clock hands most frames over
        // so), and submits before it waits. (One that may not wait gives
        // up instead, and submits before it waits.) Submitting whenever
        // the free list is empty would cut a scan's runs to one page: a
        // file larger than the pool empties it for good.
        let frame_id = match self.take_free_frame_now(slot)? {
            Some(frame_id) => frame_id,
            None if !wait => return Ok(Begun::NoFrame),
            None => {
                submission.flush();
                self.take_free_frame(slot)?
            }
        };
        let Some(claim_version) = self.claim_frame(frame_id, page_id, slot) else {
            return Ok(Begun::Raced);
        };
        let fd = file.storage.ring_fd();
        let retained = file.sync.with_retained(page_id.page_no(), |_| ()).is_some();
        if retained || !self.engine.takes(fd) {
            let _holding = slot.held.hold(frame_id, GuardKind::Exclusive);
            let _ended = Undo::new(|| slot.stats.bump(Counter::LoadsEnded));
            let undo = Undo::new(|| self.unmap_and_retire(frame_id, page_id, slot));
            self.timed_read_into(frame_id, page_id, &file, slot)?;
            undo.disarm();
            drop(_holding);
            self.release_exclusive(frame_id, false);
            return Ok(Begun::ReadNow);
        }
        // A claimed frame starts with the clock's mark set (a page read
        // once goes at the hand's first visit). A started read is a page
        // someone asked for and has not seen yet: it gets the second
        // chance, or the clock could take it between the read's end and
        // its reader's look.
        let meta = self.frames.meta(frame_id);
        meta.latch.clear_mark(meta.latch.load());
        if wanted {
            self.read_intents.want(frame_id, claim_version);
        }
        slot.stats.bump(Counter::ReadsStarted);
        self.metrics.load_started(frame_id);
        submission.reads.push(FrameIo {
            frame_id,
            fd: fd.unwrap_or(-1),
            offset: page_id.page_no() * PAGE_SIZE as u64,
            buf: self.frames.io_ptr(frame_id),
        });
        Ok(Begun::Started(Started {
            frame_id,
            claim_version,
        }))
    }

    /// Where `page_id` stands, without waiting; `started` is the read this
    /// thread started for it (wanted), whose latch or error it collects.
    pub(crate) fn poll_started(
        &self,
        page_id: PageId,
        started: Option<Started>,
        slot: &Rc<ThreadSlot>,
    ) -> Poll<'_> {
        if let Some(started) = started {
            return match self.collect_started(started) {
                StartedRead::Latched => {
                    Poll::Ready(PageRef::new(self, started.frame_id, page_id, slot))
                }
                StartedRead::InFlight => Poll::Busy(started.frame_id),
                StartedRead::Failed(Some(error)) => Poll::Failed(error),
                StartedRead::Failed(None) => Poll::Absent,
            };
        }
        let mut exact = false;
        loop {
            let Some(frame_id) = self.lookup(page_id, slot, exact) else {
                return Poll::Absent;
            };
            let meta = self.frames.meta(frame_id);
            match meta.latch.try_lock_shared() {
                Ok(()) if meta.page_id() == Some(page_id) => {
                    slot.stats.bump(Counter::Hits);
                    return Poll::Ready(PageRef::new(self, frame_id, page_id, slot));
                }
                Ok(()) => {
                    self.release_shared(frame_id);
                    exact = true;
                }
                Err(Blocked::Exclusive | Blocked::Pending) if meta.page_id() == Some(page_id) => {
                    return Poll::Busy(frame_id)
                }
                Err(Blocked::Overflow) => {
                    return Poll::Failed(Error::TooManySharedGuards { page_id })
                }
                Err(_) if exact => return Poll::Absent,
                Err(_) => exact = true,
            }
        }
    }
}

/// A batch's pages not yet handed over; on an unwind (a panicking
/// closure) the reads still wanted are abandoned, so no latch is left
/// held for a batch that is gone.
struct Batch<'pool> {
    pool: &'pool BufferPool,
    waiting: Vec<(PageId, Option<Started>)>,
}

impl Batch<'_> {
    fn remove(&mut self, page_id: PageId) {
        if let Some(index) = self.waiting.iter().position(|&(p, _)| p == page_id) {
            let (_, started) = self.waiting.remove(index);
            if let Some(started) = started {
                self.pool.abandon(started);
            }
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        for (_, started) in self.waiting.drain(..) {
            if let Some(started) = started {
                self.pool.abandon(started);
            }
        }
    }
}

/// Where a wanted read stands for its starter ([`BufferPool::collect_started`]).
pub(crate) enum StartedRead {
    /// The page is in; its shared latch is the starter's now.
    Latched,
    /// The read has not ended (or is handing its latch over).
    InFlight,
    /// The read failed: its error, unless it was dropped (too many kept),
    /// in which case the starter looks the page up again.
    Failed(Option<Error>),
}

impl BufferPool {
    /// The starter's look at its wanted read: takes over the latch held
    /// for it, or collects the read's error.
    pub(crate) fn collect_started(&self, started: Started) -> StartedRead {
        match self
            .read_intents
            .collect(started.frame_id, started.claim_version)
        {
            Collected::Latched => StartedRead::Latched,
            Collected::InFlight => StartedRead::InFlight,
            Collected::Failed => StartedRead::Failed(
                self.load_failures
                    .take(started.frame_id, started.claim_version),
            ),
        }
    }

    /// Gives up on a wanted read: releases the latch if it was already
    /// held for the caller.
    pub(crate) fn abandon(&self, started: Started) {
        if self
            .read_intents
            .abandon(started.frame_id, started.claim_version)
        {
            self.release_shared(started.frame_id);
        }
    }
}
