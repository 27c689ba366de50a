//! Flushing, and the one-page write-back that evictions and waiting
//! flushes use.
//!
//! `flush_all`, `flush_file` and `flush_until` go through batches
//! (`batch.rs`): one WAL flush per batch, many writes in flight. A page
//! that a batch finds latched by someone is written afterwards on its
//! own, by the path below, which waits for its latch.
//!
//! # Writing one page back
//!
//! Under the exclusive latch: call the write-ahead-log hook with the page's
//! LSN (if it fails, stop: the page stays dirty), then stamp the checksum
//! and magic into the trailer with an atomic store. Then write the frame's
//! bytes to storage: eviction keeps the exclusive latch for the write (the
//! page is cold and about to go); a flush first downgrades to a shared
//! latch, clearing `DIRTY`, so optimistic and shared readers carry on
//! during the I/O while writers wait. If the write fails, `DIRTY` is set
//! again: the page stays dirty and resident and a later flush retries.
//!
//! The whole flush runs unpinned (the WAL hook's log flush and the page
//! I/O must not hold frame reclamation back for the pool), and each latch
//! it holds is recorded as this thread's ([`crate::held`]) and undone if
//! the hook or the storage panics ([`crate::undo`]): exclusive before the
//! write starts (the page stays dirty), shared during it (the page is made
//! dirty again). A flush of a page this thread holds a guard on cannot take
//! the latch it needs: a dirty page there is [`Error::SelfDeadlock`], a
//! clean one under a shared guard needs nothing.
//!
//! # Durability
//!
//! `flush_all` writes every dirty page and then syncs every file: pages
//! evicted earlier were written before their frames were freed, so after
//! `flush_all` returns `Ok`, everything written before the call is durable.
//!
//! # A failed sync
//!
//! A failed `fdatasync` schedules every page it covered to be written again
//! by the next flush, from memory: the pages still resident are marked
//! dirty, the evicted ones load from the images the evictor retained (see
//! [`crate::writeback::durability`]), never from the medium that may have lost them.

use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::io::Engine;
use crate::latch::{Blocked, Want, DIRTY, EXCL, FREE};
use crate::page::{FileId, PageId};
use crate::pool::{BufferPool, DataFile, PoolCore, WaitEnd};
use crate::stats::{Counter, Report};
use crate::undo::Undo;
use crate::view::load_lsn;
use crate::writeback::durability::{SyncSnapshot, MAX_UNSYNCED_PAGES};
use crate::writeback::pace::Pace;
use crate::writeback::WriteOrigin;

use std::panic::AssertUnwindSafe;

/// What flushing one frame found.
enum FrameFlush {
    /// The page was clean or has been written.
    Done,
    /// The frame no longer holds the page; look it up again.
    Moved,
}

impl BufferPool {
    /// Marks dirty every page a failed sync of `file_id` covered, loading
    /// those that were evicted, so that this flush writes them again.
    fn schedule_rewrites(&self, file_id: FileId, file: &DataFile) -> Result<()> {
        let rewrites = file.sync.pending_rewrites();
        if !rewrites.is_empty() {
            self.reports.report(Report::Rewrite, |n| {
                let (pool, pages) = (&self.config.name, rewrites.len());
                log::warn!(
                    "pagepool {pool}: retrying after a failed sync of {file_id}: writing \
                     {pages} pages again ({n} retries so far)"
                );
            });
        }
        for page_no in rewrites {
            let lost_since = file.sync.unsynced_lsn(page_no);
            self.write(PageId::new(file_id, page_no))?
                .mark_dirty(lost_since);
            file.sync.rewrite_scheduled(page_no);
        }
        Ok(())
    }

    /// Writes `page_id` back if it is dirty, then syncs its file.
    pub fn flush(&self, page_id: PageId) -> Result<()> {
        let file = self.file(page_id.file_id())?;
        let slot = self.thread_slot();
        let _unpinned = slot.block(Some(page_id))?;
        self.schedule_rewrites(page_id.file_id(), &file)?;
        let mut found = self.lookup(page_id, &slot, false);
        while let Some(frame_id) = found {
            if let FrameFlush::Done = self.flush_frame(frame_id, page_id, &slot)? {
                break;
            }
            // The hint named a frame that no longer holds the page.
            found = self.lookup(page_id, &slot, true);
        }
        self.sync_files(&[(page_id.file_id(), &file)], &slot, &self.engine)
    }

    /// Writes back every dirty page of `file_id`, then syncs the file.
    pub fn flush_file(&self, file_id: FileId) -> Result<()> {
        let file = self.file(file_id)?;
        let slot = self.thread_slot();
        let _unpinned = slot.block(None)?;
        self.schedule_rewrites(file_id, &file)?;
        let written = self.flush_frames(&slot, Pace::flush(&self.config), |page_id, _, _| {
            page_id.file_id() == file_id
        });
        let synced = self.sync_files(&[(file_id, &file)], &slot, &self.engine);
        written.and(synced)
    }

    /// Writes back every dirty page, then syncs every file. Every page is
    /// attempted, in batches (one WAL flush each, many writes in flight);
    /// the first error is returned and the pages that failed stay dirty.
    pub fn flush_all(&self) -> Result<()> {
        self.flush_matching(Pace::flush(&self.config), |_, _, _| true)
    }

    /// A fuzzy checkpoint's flush: writes back and syncs every page whose
    /// recovery LSN is below `lsn` (see
    /// [`dirty_pages`](Self::dirty_pages)), in batches of
    /// [`PoolConfig::checkpoint_pages_in_flight`](crate::PoolConfig::checkpoint_pages_in_flight)
    /// pages in page order (consecutive pages as one request), while
    /// other threads go on reading and writing. When it
    /// returns `Ok`, every change made before the call whose page had a
    /// recovery LSN below `lsn` is durable, so redo may start at `lsn`
    /// (or at [`min_recovery_lsn`](Self::min_recovery_lsn), if lower).
    ///
    /// ```
    /// use pagepool::{BufferPool, MemoryStorage, PoolConfig};
    ///
    /// let pool = BufferPool::open(PoolConfig::new(8))?;
    /// let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    /// for lsn in [10, 20, 30] {
    ///     let (_, mut page) = pool.allocate(file)?;
    ///     page.set_lsn(lsn);
    /// }
    /// pool.flush_until(25)?;
    /// assert_eq!(pool.min_recovery_lsn(), Some(30));
    /// # Ok::<(), pagepool::Error>(())
    /// ```
    pub fn flush_until(&self, lsn: u64) -> Result<()> {
        // A page latched exclusively may hold a change its writer logged
        // (below `lsn`) and has not released yet: wait for it too.
        self.flush_matching(Pace::checkpoint(&self.config), |_, recovery_lsn, state| {
            match recovery_lsn {
                Some(rec) => rec < lsn,
                None => state & (EXCL | FREE) == EXCL,
            }
        })
    }

    /// Writes the frames `wanted` accepts (page id, recovery LSN, state
    /// word), then syncs every file with unsynced writes.
    fn flush_matching(
        &self,
        pace: Pace,
        wanted: impl Fn(PageId, Option<u64>, u64) -> bool,
    ) -> Result<()> {
        let slot = self.thread_slot();
        let _unpinned = slot.block(None)?;
        let files = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        let mut result = Ok(());
        for (file_id, file) in &files {
            result = result.and(self.schedule_rewrites(*file_id, file));
        }
        result = result.and(self.flush_frames(&slot, pace, wanted));
        let to_sync: Vec<(FileId, &DataFile)> = files
            .iter()
            .filter(|(_, file)| file.sync.has_unsynced() || file.sync.has_rewrites())
            .map(|(file_id, file)| (*file_id, &**file))
            .collect();
        result.and(self.sync_files(&to_sync, &slot, &self.engine))
    }

    /// Writes back, in batches, every frame `wanted` accepts (given its
    /// recovery LSN and state) that is dirty or being written, or that it
    /// accepts while latched exclusively; a frame someone holds is then
    /// written on its own, waiting for its latch.
    fn flush_frames(
        &self,
        slot: &ThreadSlot,
        pace: Pace,
        wanted: impl Fn(PageId, Option<u64>, u64) -> bool,
    ) -> Result<()> {
        let batch_pages = pace.batch_pages.max(1);
        let mut result = Ok(());
        let mut candidates = Vec::new();
        for frame_id in 0..self.frames.frame_count() {
            let meta = self.frames.meta(frame_id);
            // The state before the LSN: see `dirty_frames`.
            let state = meta.latch.load();
            let recovery_lsn = self.recovery_lsns.get(frame_id);
            if state & (DIRTY | EXCL) == 0 && recovery_lsn.is_none() {
                continue;
            }
            let Some(page_id) = meta.page_id() else {
                continue;
            };
            if wanted(page_id, recovery_lsn, state) {
                candidates.push(frame_id);
            }
        }
        // In page order: consecutive pages of a batch go as one request.
        candidates.sort_unstable_by_key(|&frame_id| self.frames.meta(frame_id).page_id_raw());
        let mut busy = Vec::new();
        // The foreground's reads, for a share-paced checkpoint.
        let mut pacer = pace.start(|| self.epoch.stats().io_reads);
        for (index, batch) in candidates.chunks(batch_pages).enumerate() {
            let sleeps = pacer.wait(index * batch_pages + batch.len());
            slot.stats.add(Counter::CheckpointPaceWaits, sleeps);
            let outcome = self.write_batch(&self.engine, batch, slot, WriteOrigin::Flush);
            busy.extend(outcome.busy);
            if let Some(error) = outcome.error {
                result = result.and(Err(error));
            }
        }
        for (frame_id, page_id) in busy {
            if let Err(error) = self.flush_frame(frame_id, page_id, slot) {
                result = result.and(Err(error));
            }
        }
        result
    }

    /// Writes back `frame_id` if it still holds `page_id` and is dirty.
    /// The caller has made sure the thread may block.
    fn flush_frame(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        slot: &ThreadSlot,
    ) -> Result<FrameFlush> {
        let meta = self.frames.meta(frame_id);
        loop {
            match meta.latch.try_lock_exclusive() {
                Ok(()) => break,
                // Evicted: the eviction wrote it back.
                Err(Blocked::Free) => return Ok(FrameFlush::Moved),
                Err(_) => match self.wait_for_page(slot, frame_id, page_id, Want::Exclusive)? {
                    WaitEnd::Retry => {}
                    WaitEnd::Moved => return Ok(FrameFlush::Moved),
                    WaitEnd::HeldByCaller(held) => {
                        let clean = meta.latch.load() & DIRTY == 0;
                        if clean && held == GuardKind::Shared {
                            return Ok(FrameFlush::Done);
                        }
                        return Err(Error::SelfDeadlock {
                            page_id,
                            held,
                            wanted: GuardKind::Exclusive,
                        });
                    }
                },
            }
        }
        let mut holding = slot.held.hold(frame_id, GuardKind::Exclusive);
        // Every way out before the downgrade (a moved page, a clean one, a
        // failing or panicking WAL hook) releases the latch; DIRTY stays.
        let exclusive = Undo::new(|| self.release_exclusive(frame_id, false));
        if meta.page_id() != Some(page_id) {
            return Ok(FrameFlush::Moved);
        }
        if meta.latch.load() & DIRTY == 0 {
            return Ok(FrameFlush::Done);
        }
        self.stamp(frame_id, page_id, slot)?;
        exclusive.disarm();
        if meta.latch.downgrade_clean() {
            self.queues.wake(frame_id);
        }
        holding.downgrade();
        // A failing or panicking write leaves the page dirty again.
        let shared = Undo::new(|| {
            meta.latch.redirty();
            self.release_shared(frame_id);
        });
        self.write_frame(frame_id, page_id, slot, WriteOrigin::Flush)?;
        shared.disarm();
        self.release_shared(frame_id);
        Ok(FrameFlush::Done)
    }
}

impl PoolCore {
    /// Stamps and writes a frame held exclusively (eviction by a
    /// faulting thread: the write-back the background writer is there to
    /// make rare).
    pub(crate) fn write_back_exclusive(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        slot: &ThreadSlot,
    ) -> Result<()> {
        self.stamp(frame_id, page_id, slot)?;
        self.write_frame(frame_id, page_id, slot, WriteOrigin::Eviction)
    }

    /// Calls the WAL hook with the page's LSN (a batch of one), then
    /// stamps the checksum and magic. The caller holds the frame
    /// exclusively.
    fn stamp(&self, frame_id: FrameId, page_id: PageId, slot: &ThreadSlot) -> Result<()> {
        let lsn = load_lsn(self.frames.words(frame_id));
        self.flush_log(&[(page_id, lsn)], slot)?;
        self.stamp_checksum(frame_id, page_id);
        Ok(())
    }

    /// Writes a frame to its file and records the write (with the frame's
    /// recovery LSN, which it then clears). The caller holds a latch on
    /// the frame and stores nothing to it meanwhile.
    fn write_frame(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        slot: &ThreadSlot,
        origin: WriteOrigin,
    ) -> Result<()> {
        let file = self.file(page_id.file_id())?;
        slot.stats.bump(Counter::IoWrites);
        // SAFETY: the caller holds the frame's latch (shared, or exclusive
        // without storing), so no store races the write (docs/design.md rule 3).
        let written = unsafe {
            self.frames.with_bytes(frame_id, |bytes| {
                file.storage.write_page(page_id.page_no(), bytes)
            })
        };
        if let Err(source) = written {
            let error = Error::Write { page_id, source };
            self.log_failed_write_back(&error);
            return Err(error);
        }
        self.count_write_back(slot, origin);
        let recovery_lsn = self
            .recovery_lsns
            .get(frame_id)
            .unwrap_or_else(|| load_lsn(self.frames.words(frame_id)));
        let noted = self.note_written(page_id, recovery_lsn, &file, slot);
        self.recovery_lsns.clear(frame_id);
        noted
    }

    /// Syncs every file of `files`. Where at least
    /// [`PoolConfig::ring_sync_min_files`](crate::PoolConfig::ring_sync_min_files)
    /// of them write through the io_uring engine
    /// (their store allows it), those get one `fdatasync` each through the
    /// ring, all in flight at once; the others, or all of them when fewer,
    /// sync one by one through their store ([`sync_file`](Self::sync_file)).
    /// Every file is synced; the first error is returned.
    pub(crate) fn sync_files(
        &self,
        files: &[(FileId, &DataFile)],
        slot: &ThreadSlot,
        engine: &Engine,
    ) -> Result<()> {
        let through_ring = |file: &DataFile| {
            file.storage.ring_writes() && engine.writes_through(file.storage.ring_fd())
        };
        let (mut ring, mut own): (Vec<_>, Vec<_>) =
            files.iter().partition(|(_, file)| through_ring(file));
        if ring.len() < self.config.ring_sync_min_files {
            own.append(&mut ring);
        }
        let mut result = Ok(());
        if !ring.is_empty() {
            let _suspended = slot.suspend();
            let covered: Vec<_> = ring
                .iter()
                .map(|(_, file)| {
                    slot.stats.bump(Counter::IoSyncs);
                    file.sync.begin_sync()
                })
                .collect();
            let fds: Vec<_> = ring
                .iter()
                .filter_map(|(_, file)| file.storage.ring_fd())
                .collect();
            debug_assert_eq!(fds.len(), ring.len(), "writes_through needs a descriptor");
            let synced = engine.sync(&fds);
            for ((&(file_id, file), covered), synced) in ring.iter().zip(covered).zip(synced) {
                result = result.and(self.end_sync(file_id, file, covered, synced));
            }
        }
        for (file_id, file) in own {
            result = result.and(self.sync_file(file_id, file, slot));
        }
        result
    }

    /// Syncs a file through its store. On failure, every page written
    /// since the last successful sync is scheduled to be written again.
    pub(crate) fn sync_file(
        &self,
        file_id: FileId,
        file: &DataFile,
        slot: &ThreadSlot,
    ) -> Result<()> {
        let _suspended = slot.suspend();
        let covered = file.sync.begin_sync();
        slot.stats.bump(Counter::IoSyncs);
        // A panicking sync is a failed one: what it covered is written
        // again, then the panic goes on.
        let synced = std::panic::catch_unwind(AssertUnwindSafe(|| file.storage.sync()));
        match synced {
            Ok(synced) => self.end_sync(file_id, file, covered, synced),
            Err(panic) => {
                file.sync.sync_failed(covered);
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Records how a sync of `file` that covered `covered` ended.
    fn end_sync(
        &self,
        file_id: FileId,
        file: &DataFile,
        covered: SyncSnapshot,
        synced: std::io::Result<()>,
    ) -> Result<()> {
        match synced {
            Ok(()) => {
                file.sync.sync_succeeded(covered);
                Ok(())
            }
            Err(source) => {
                file.sync.sync_failed(covered);
                self.reports.report(Report::FailedSync, |n| {
                    let pool = &self.config.name;
                    log::error!(
                        "pagepool {pool}: sync of {file_id} failed ({source}); the pages it \
                         covered will be written again before the next sync ({n} failed syncs \
                         so far)"
                    );
                });
                Err(Error::Sync { file_id, source })
            }
        }
    }

    /// Records a page write-back for the next sync; syncs unasked when the
    /// record is full.
    fn note_written(
        &self,
        page_id: PageId,
        recovery_lsn: u64,
        file: &DataFile,
        slot: &ThreadSlot,
    ) -> Result<()> {
        if file.sync.note_written(page_id.page_no(), recovery_lsn) >= MAX_UNSYNCED_PAGES {
            self.sync_file(page_id.file_id(), file, slot)?;
        }
        Ok(())
    }
}
