//! The writes redo needs: a page latched without being read (to restore
//! a torn or never-written page from a full-page image, as PostgreSQL's
//! `RBM_ZERO_AND_LOCK`), and a file extended to a page count (redo of an
//! allocation that reached the log but not the file).
//!
//! A torn page stays an error ([`Error::Corrupt`]) for every other access:
//! only [`write_new`](BufferPool::write_new) skips the read, and it hands
//! the page out zeroed, so nothing of the torn image is ever seen.

use crate::error::{Error, Result};
use crate::page::{FileId, PageId, MAX_PAGES_PER_FILE};
use crate::pool::BufferPool;
use crate::stats::Counter;
use crate::sync::Ordering;
use crate::PageMut;

/// How many times `write_new` looks again when another thread loads or
/// maps the page while it claims a frame for it.
const MAX_ATTEMPTS: u32 = 16;

impl BufferPool {
    /// Latches `page_id` exclusively without reading it from the file: the
    /// guard holds a zeroed page (LSN 0), dirty, for the caller to fill
    /// (redo restoring a full-page image). A resident page is latched
    /// and zeroed in place. A page past the file's end extends the file
    /// to it (the pages between read as zeros, never written).
    ///
    /// ```
    /// use pagepool::{BufferPool, MemoryStorage, PoolConfig, PageId};
    ///
    /// let pool = BufferPool::open(PoolConfig::new(8))?;
    /// let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    /// let mut page = pool.write_new(PageId::new(file, 5))?;
    /// page.store_u64(0, 99)?;
    /// page.set_lsn(7);
    /// drop(page);
    /// assert_eq!(pool.page_count(file)?, 6);
    /// # Ok::<(), pagepool::Error>(())
    /// ```
    pub fn write_new(&self, page_id: PageId) -> Result<PageMut<'_>> {
        let file = self.file(page_id.file_id())?;
        if page_id.page_no() >= MAX_PAGES_PER_FILE {
            return Err(Error::PageOutOfRange {
                page_id,
                page_count: MAX_PAGES_PER_FILE,
            });
        }
        let slot = self.thread_slot();
        let mut last_error = None;
        for attempt in 0..MAX_ATTEMPTS {
            if self.lookup(page_id, &slot, attempt > 0).is_some() {
                match self.write_with(page_id, &slot) {
                    Ok(mut page) => {
                        page.fill(0);
                        page.set_lsn(0);
                        page.mark_dirty(None);
                        return Ok(page);
                    }
                    // The resident copy was a load of the torn page that
                    // failed (and is gone now): claim a frame instead.
                    Err(error @ (Error::Corrupt { .. } | Error::Read { .. })) => {
                        last_error = Some(error);
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            }
            let _unpinned = slot.block(Some(page_id))?;
            let frame_id = self.take_free_frame(&slot)?;
            self.frames.meta(frame_id).claim(page_id);
            self.frames.zero(frame_id);
            let inserted = {
                let guard = slot.pin();
                self.table.insert(page_id, frame_id, &guard)
            };
            if inserted.is_ok() {
                file.page_count
                    .fetch_max(page_id.page_no() + 1, Ordering::AcqRel);
                slot.stats.bump(Counter::Misses);
                // A new page: no read, so its load ends here.
                slot.stats.bump(Counter::LoadsEnded);
                return Ok(PageMut::new(self, frame_id, page_id, true, &slot));
            }
            // Someone mapped the page meanwhile: latch theirs.
            self.frames.meta(frame_id).set_page_id(None);
            self.free_unpublished(frame_id);
        }
        Err(last_error.unwrap_or(Error::LatchTimeout {
            page_id,
            waited_ms: 0,
        }))
    }

    /// Extends `file_id` to at least `page_count` pages (redo of an
    /// allocation that reached the log but not the file): the new last
    /// page is written as a zero page at the next write-back, and the
    /// pages before it read as zeros. A file already that long is left as
    /// it is.
    ///
    /// Safe beside `allocate` in the same file: the new page count is
    /// taken in one compare-and-swap before any page is touched, so an
    /// allocation that runs meanwhile gets a page number past the extension
    /// (or, before it, one the extension does not touch), and no page an
    /// allocation handed out is zeroed. If the last page cannot be latched
    /// (no free frame), the count goes back where it was, unless an
    /// allocation has moved it on since, and the error is returned.
    pub fn extend_file(&self, file_id: FileId, page_count: u64) -> Result<()> {
        let file = self.file(file_id)?;
        if page_count > MAX_PAGES_PER_FILE {
            return Err(Error::PageOutOfRange {
                page_id: PageId::new(file_id, page_count - 1),
                page_count: MAX_PAGES_PER_FILE,
            });
        }
        let extended = file
            .page_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (page_count > count).then_some(page_count)
            });
        let Ok(old_count) = extended else {
            return Ok(()); // Already that long.
        };
        // Pages `old_count..page_count` are the extension's: no allocation
        // hands them out. The last one is written (as zeros) to give the
        // file its length.
        match self.write_new(PageId::new(file_id, page_count - 1)) {
            Ok(page) => {
                drop(page);
                Ok(())
            }
            Err(error) => {
                let _ = file.page_count.compare_exchange(
                    page_count,
                    old_count,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                Err(error)
            }
        }
    }
}
