//! Write-back and flushing.
//!
//! # Writing a page back
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
//! [`crate::durability`]), never from the medium that may have lost them.

use crate::durability::MAX_UNSYNCED_PAGES;
use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::latch::{Blocked, Want, DIRTY};
use crate::page::{checksum, FileId, PageId, CHECKSUM_OFFSET, MAGIC};
use crate::pool::{BufferPool, DataFile, WaitEnd};
use crate::stats::Counter;
use crate::sync::Ordering;
use crate::undo::Undo;
use crate::view::load_lsn;
use std::panic::AssertUnwindSafe;

/// What flushing one frame found.
enum FrameFlush {
    /// The page was clean or has been written.
    Done,
    /// The frame no longer holds the page; look it up again.
    Moved,
}

impl BufferPool {
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
        self.sync_file(page_id.file_id(), &file, &slot)
    }

    /// Writes back every dirty page of `file_id`, then syncs the file.
    pub fn flush_file(&self, file_id: FileId) -> Result<()> {
        let file = self.file(file_id)?;
        let slot = self.thread_slot();
        let _unpinned = slot.block(None)?;
        self.schedule_rewrites(file_id, &file)?;
        let written = self.flush_frames(Some(file_id), &slot);
        let synced = self.sync_file(file_id, &file, &slot);
        written.and(synced)
    }

    /// Writes back every dirty page, then syncs every file. Every page is
    /// attempted; the first error is returned and the pages that failed
    /// stay dirty.
    pub fn flush_all(&self) -> Result<()> {
        let slot = self.thread_slot();
        let _unpinned = slot.block(None)?;
        let files = self.files.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut result = Ok(());
        for (index, file) in files.iter().enumerate() {
            result = result.and(self.schedule_rewrites(FileId(index as u16), file));
        }
        result = result.and(self.flush_frames(None, &slot));
        for (index, file) in files.iter().enumerate() {
            let synced = self.sync_file(FileId(index as u16), file, &slot);
            result = result.and(synced);
        }
        result
    }

    fn flush_frames(&self, only: Option<FileId>, slot: &ThreadSlot) -> Result<()> {
        let mut result = Ok(());
        for frame_id in 0..self.frames.frame_count() {
            let meta = self.frames.meta(frame_id);
            if meta.latch.load() & DIRTY == 0 {
                continue;
            }
            let Some(page_id) = meta.page_id() else {
                continue;
            };
            if only.is_some_and(|file_id| file_id != page_id.file_id()) {
                continue;
            }
            if let Err(error) = self.flush_frame(frame_id, page_id, slot) {
                if result.is_ok() {
                    result = Err(error);
                }
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
        self.stamp(frame_id, page_id)?;
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
        self.write_frame(frame_id, page_id, slot)?;
        shared.disarm();
        self.release_shared(frame_id);
        Ok(FrameFlush::Done)
    }

    /// Stamps and writes a frame held exclusively (eviction).
    pub(crate) fn write_back_exclusive(
        &self,
        frame_id: FrameId,
        page_id: PageId,
        slot: &ThreadSlot,
    ) -> Result<()> {
        self.stamp(frame_id, page_id)?;
        self.write_frame(frame_id, page_id, slot)
    }

    /// Calls the WAL hook with the page's LSN, then stamps the checksum and
    /// magic. The caller holds the frame exclusively.
    fn stamp(&self, frame_id: FrameId, page_id: PageId) -> Result<()> {
        let words = self.frames.words(frame_id);
        if let Some(hook) = &self.config.wal_hook {
            let lsn = load_lsn(words);
            hook(lsn).map_err(|source| Error::WalHook {
                page_id,
                lsn,
                source,
            })?;
        }
        // SAFETY: the caller holds the exclusive latch and nothing stores to
        // the frame while the closure runs (the stamp is stored after).
        let crc = unsafe {
            self.frames
                .with_bytes(frame_id, |bytes| checksum(bytes, page_id.page_no()))
        };
        let trailer = u64::from(crc) | (u64::from(u32::from_le_bytes(MAGIC)) << 32);
        words[CHECKSUM_OFFSET / 8].store(trailer.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// Writes a frame to its file. The caller holds a latch on the frame
    /// and stores nothing to it meanwhile.
    fn write_frame(&self, frame_id: FrameId, page_id: PageId, slot: &ThreadSlot) -> Result<()> {
        let file = self.file(page_id.file_id())?;
        slot.stats.bump(Counter::IoWrites);
        // SAFETY: the caller holds the frame's latch (shared, or exclusive
        // without storing), so no store races the write (DESIGN.md rule 3).
        let written = unsafe {
            self.frames.with_bytes(frame_id, |bytes| {
                file.storage.write_page(page_id.page_no(), bytes)
            })
        };
        written.map_err(|source| Error::Write { page_id, source })?;
        slot.stats.bump(Counter::WriteBacks);
        self.note_written(page_id, &file, slot)
    }

    /// Syncs a file. On failure, every page written since the last
    /// successful sync is scheduled to be written again.
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
            Ok(Ok(())) => {
                file.sync.sync_succeeded(covered);
                Ok(())
            }
            Ok(Err(source)) => {
                file.sync.sync_failed(covered);
                Err(Error::Sync { file_id, source })
            }
            Err(panic) => {
                file.sync.sync_failed(covered);
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Records a page write-back for the next sync; syncs unasked when the
    /// record is full.
    fn note_written(&self, page_id: PageId, file: &DataFile, slot: &ThreadSlot) -> Result<()> {
        if file.sync.note_written(page_id.page_no()) >= MAX_UNSYNCED_PAGES {
            self.sync_file(page_id.file_id(), file, slot)?;
        }
        Ok(())
    }

    /// Marks dirty every page a failed sync of `file_id` covered, loading
    /// those that were evicted, so that this flush writes them again.
    fn schedule_rewrites(&self, file_id: FileId, file: &DataFile) -> Result<()> {
        for page_no in file.sync.pending_rewrites() {
            self.write(PageId::new(file_id, page_no))?.mark_dirty();
            file.sync.rewrite_scheduled(page_no);
        }
        Ok(())
    }
}
