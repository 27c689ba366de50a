//! Writing a batch of dirty frames: one WAL flush, many writes in flight.
//!
//! # Steps
//!
//! 1. **Take** each candidate that is dirty and latched by nobody: try its
//!    exclusive latch (never wait: a frame someone holds is left to the
//!    caller, see [`Batch::busy`]), stamp the checksum into its trailer,
//!    note its LSN and recovery LSN, and downgrade to a shared latch,
//!    clearing `DIRTY` (readers go on during the I/O; writers wait). A
//!    frame whose clock mark was set keeps it: cleaning a page does not
//!    give it a second chance.
//! 2. **Log**: call the WAL hook once, with every page and the batch's
//!    highest LSN (module invariant 3). If it fails or panics, every page
//!    is made dirty again and released.
//! 3. **Write** every page: through the io_uring engine all at once (runs
//!    of consecutive pages as one request), else one `write_page` after
//!    the other.
//! 4. **End** each page: a written one is recorded in its file's unsynced
//!    set with its recovery LSN, then its recovery LSN is cleared
//!    (invariant 1); a failed one is made dirty again. Either way its
//!    latch is released.
//!
//! The batch syncs nothing: its caller syncs the files it wrote to, once
//! for all its batches.
//!
//! The shared latches are the pool's internal holds, not guards: the
//! thread records none of them ([`crate::held`]), so it must not wait for
//! a latch while it holds them, and it does not (the hook must not call
//! into the pool). Every way out, a panic included, releases them
//! ([`Taken`]'s owner, [`Batch`], ends what is left).

use std::sync::Arc;

use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::io::{Engine, FrameIo};
use crate::latch::{DIRTY, EXCL, MARK};
use crate::page::{checksum, trailer_word, PageId, CHECKSUM_OFFSET, PAGE_SIZE};
use crate::pool::{DataFile, PoolCore};
use crate::stats::{Counter, Report};
use crate::sync::Ordering;
use crate::view::load_lsn;
use crate::WalFlush;

/// Who is writing: the counters say who did the write-backs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteOrigin {
    /// The background writer.
    Writer,
    /// A flush or a checkpoint.
    Flush,
    /// A faulting thread evicting a dirty victim.
    Eviction,
}

/// A frame taken for write-back: stamped, held shared, `DIRTY` cleared.
struct Taken {
    frame_id: FrameId,
    page_id: PageId,
    lsn: u64,
    recovery_lsn: u64,
}

/// The frames a batch holds, released on every way out.
struct Batch<'a> {
    core: &'a PoolCore,
    taken: Vec<Taken>,
}

impl Drop for Batch<'_> {
    /// What was not ended stays dirty (a failed hook, a panic).
    fn drop(&mut self) {
        for taken in self.taken.drain(..) {
            self.core.frames.meta(taken.frame_id).latch.redirty();
            self.core.release_shared(taken.frame_id);
        }
    }
}

/// What one batch did.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    /// Pages written.
    pub(crate) written: usize,
    /// Dirty candidates someone else held: not written, not waited for.
    pub(crate) busy: Vec<(FrameId, PageId)>,
    /// The first error (the hook's, or a write's).
    pub(crate) error: Option<Error>,
}

impl PoolCore {
    /// Writes back the dirty frames among `candidates` as one batch (see
    /// the module docs). The caller is unpinned and may block; it syncs.
    pub(crate) fn write_batch(
        &self,
        engine: &Engine,
        candidates: &[FrameId],
        slot: &ThreadSlot,
        origin: WriteOrigin,
    ) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let mut batch = Batch {
            core: self,
            taken: Vec::with_capacity(candidates.len()),
        };
        for &frame_id in candidates {
            match self.take_for_write(frame_id) {
                Take::Taken(taken) => batch.taken.push(taken),
                Take::Busy(page_id) => outcome.busy.push((frame_id, page_id)),
                Take::Clean => {}
            }
        }
        if batch.taken.is_empty() {
            return outcome;
        }
        if let Err(error) = self.log_batch(&batch.taken, slot) {
            outcome.error = Some(error);
            return outcome; // `batch` drops: every page dirty again.
        }
        let results = self.write_taken(engine, &batch.taken, slot);
        for (taken, result) in std::mem::take(&mut batch.taken).into_iter().zip(results) {
            match self.end_write(&taken, result, slot, origin) {
                Ok(()) => outcome.written += 1,
                Err(error) => {
                    outcome.error.get_or_insert(error);
                }
            }
        }
        outcome
    }

    /// Step 1 for one frame.
    fn take_for_write(&self, frame_id: FrameId) -> Take {
        let meta = self.frames.meta(frame_id);
        let before = meta.latch.load();
        // A frame latched exclusively is a candidate only because the
        // caller waits for its holder (`flush_until`): busy, never clean.
        if before & (DIRTY | EXCL) == 0 && self.recovery_lsns.get(frame_id).is_none() {
            return Take::Clean;
        }
        if meta.latch.try_lock_exclusive().is_err() {
            return match meta.page_id() {
                Some(page_id) => Take::Busy(page_id),
                None => Take::Clean,
            };
        }
        let page_id = match meta.page_id() {
            Some(page_id) if meta.latch.load() & DIRTY != 0 => page_id,
            // Written meanwhile by someone else, or evicted and reused.
            _ => {
                self.release_exclusive(frame_id, false);
                return Take::Clean;
            }
        };
        self.stamp_checksum(frame_id, page_id);
        let lsn = load_lsn(self.frames.words(frame_id));
        let recovery_lsn = self.recovery_lsns.get(frame_id).unwrap_or(lsn);
        if meta.latch.downgrade_clean() {
            self.queues.wake(frame_id);
        }
        if before & MARK != 0 {
            meta.latch.set_mark();
        }
        Take::Taken(Taken {
            frame_id,
            page_id,
            lsn,
            recovery_lsn,
        })
    }

    /// Stamps the checksum and magic into the trailer. The caller holds
    /// the frame exclusively.
    pub(crate) fn stamp_checksum(&self, frame_id: FrameId, page_id: PageId) {
        // SAFETY: the caller holds the exclusive latch and nothing stores
        // to the frame while the closure runs (the stamp is stored after).
        let crc = unsafe {
            self.frames
                .with_bytes(frame_id, |bytes| checksum(bytes, page_id.page_no()))
        };
        let trailer = trailer_word(crc);
        self.frames.words(frame_id)[CHECKSUM_OFFSET / 8].store(trailer.to_le(), Ordering::Relaxed);
    }

    /// Step 2: one call of the WAL hook for the whole batch.
    fn log_batch(&self, taken: &[Taken], slot: &ThreadSlot) -> Result<()> {
        if self.config.wal_hook.is_none() {
            return Ok(());
        }
        let pages: Vec<(PageId, u64)> = taken.iter().map(|t| (t.page_id, t.lsn)).collect();
        self.flush_log(&pages, slot)
    }

    /// Calls the WAL hook once for `pages` (page id and LSN each, at least
    /// one): the log must be durable up to their highest LSN. A failure
    /// names the page with that LSN.
    pub(crate) fn flush_log(&self, pages: &[(PageId, u64)], slot: &ThreadSlot) -> Result<()> {
        let Some(hook) = &self.config.wal_hook else {
            return Ok(());
        };
        slot.stats.bump(Counter::WalFlushes);
        hook(&WalFlush::new(pages)).map_err(|source| {
            let (page_id, lsn) = pages
                .iter()
                .copied()
                .max_by_key(|&(_, lsn)| lsn)
                .expect("a batch has pages");
            Error::WalHook {
                page_id,
                lsn,
                source,
            }
        })
    }

    /// Step 3: every page's write, in order.
    fn write_taken(
        &self,
        engine: &Engine,
        taken: &[Taken],
        slot: &ThreadSlot,
    ) -> Vec<Result<Arc<DataFile>>> {
        slot.stats.bump(Counter::WriteBatches);
        let mut results: Vec<Option<Result<Arc<DataFile>>>> =
            (0..taken.len()).map(|_| None).collect();
        let mut ring: Vec<(usize, FrameIo, Arc<DataFile>)> = Vec::new();
        for (index, page) in taken.iter().enumerate() {
            let file = match self.file(page.page_id.file_id()) {
                Ok(file) => file,
                Err(error) => {
                    results[index] = Some(Err(error));
                    continue;
                }
            };
            slot.stats.bump(Counter::IoWrites);
            let fd = file.storage.ring_fd();
            if file.storage.ring_writes() && engine.writes_through(fd) {
                let fd = fd.expect("a ring write has a descriptor");
                ring.push((
                    index,
                    FrameIo {
                        frame_id: page.frame_id,
                        fd,
                        offset: page.page_id.page_no() * PAGE_SIZE as u64,
                        buf: self.frames.io_ptr(page.frame_id),
                    },
                    file,
                ));
                continue;
            }
            // SAFETY: the batch holds the frame's shared latch, so no
            // store races the write (docs/design.md rule 3).
            let written = unsafe {
                self.frames.with_bytes(page.frame_id, |bytes| {
                    file.storage.write_page(page.page_id.page_no(), bytes)
                })
            };
            let page_id = page.page_id;
            results[index] = Some(
                written
                    .map(|()| file)
                    .map_err(|source| Error::Write { page_id, source }),
            );
        }
        if !ring.is_empty() {
            let writes: Vec<FrameIo> = ring.iter().map(|(_, write, _)| *write).collect();
            for ((index, _, file), result) in ring.into_iter().zip(engine.write(&writes)) {
                let page_id = taken[index].page_id;
                results[index] = Some(
                    result
                        .map(|_| file)
                        .map_err(|source| Error::Write { page_id, source }),
                );
            }
        }
        results
            .into_iter()
            .map(|result| result.expect("every page written or failed"))
            .collect()
    }

    /// Step 4 for one page: `written` is its file if the write succeeded.
    fn end_write(
        &self,
        taken: &Taken,
        written: Result<Arc<DataFile>>,
        slot: &ThreadSlot,
        origin: WriteOrigin,
    ) -> Result<()> {
        let page_id = taken.page_id;
        let meta = self.frames.meta(taken.frame_id);
        match written {
            Ok(file) => {
                file.sync
                    .note_written(page_id.page_no(), taken.recovery_lsn);
                self.recovery_lsns.clear(taken.frame_id);
                self.count_write_back(slot, origin);
                self.release_shared(taken.frame_id);
                Ok(())
            }
            Err(error) => {
                meta.latch.redirty();
                self.release_shared(taken.frame_id);
                self.log_failed_write_back(&error);
                Err(error)
            }
        }
    }

    /// Counts one write-back and who did it.
    pub(crate) fn count_write_back(&self, slot: &ThreadSlot, origin: WriteOrigin) {
        slot.stats.bump(Counter::WriteBacks);
        match origin {
            WriteOrigin::Writer => slot.stats.bump(Counter::WriterWriteBacks),
            WriteOrigin::Eviction => slot.stats.bump(Counter::EvictionWriteBacks),
            WriteOrigin::Flush => {}
        }
    }
}

/// What taking one frame found.
enum Take {
    Taken(Taken),
    /// Dirty (or being written), and held by someone.
    Busy(PageId),
    Clean,
}

impl PoolCore {
    /// Logs a failed write-back (the page stays dirty), rate-limited.
    pub(crate) fn log_failed_write_back(&self, error: &Error) {
        self.reports.report(Report::FailedWriteBack, |n| {
            let pool = &self.config.name;
            log::warn!(
                "pagepool {pool}: a write-back failed, the page stays dirty ({n} so far): {error}"
            );
        });
    }
}
