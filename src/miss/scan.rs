//! Sequential scans: read-ahead, and pages that do not push the hot set
//! out.
//!
//! [`BufferPool::scan`] reads a range of pages in order and keeps up to
//! `window` reads in flight ahead of its cursor (started as `prefetch`
//! starts them, so the device works on the next pages while the caller
//! works on this one). Each page it hands over has its clock mark set
//! first: the hand's next visit evicts it, unless another access of the
//! page clears the mark before (see [`crate::latch`], `MARK`). A scan of a
//! file many times the pool therefore recycles its own frames, and the
//! pages the rest of the workload keeps touching stay.

use std::ops::{ControlFlow, Range};

use super::batch::{Begun, Submission};
use crate::access::PageRef;
use crate::error::{Error, Result};
use crate::page::{FileId, PageId};
use crate::pool::BufferPool;

/// Pages of one run of reads (what a submission for runs holds).
const RUN_PAGES: u64 = crate::io::MAX_RUN_PAGES as u64;

impl BufferPool {
    /// Reads pages `pages` of `file_id` in order under shared latches,
    /// calling `each(page_id, page)` for each until it returns
    /// `ControlFlow::Break`, with up to `window` reads in flight ahead of
    /// the page being handed over (clamped to between 1 and a quarter of
    /// the pool's frames). A page that cannot be read comes as its error
    /// (and the scan goes on if `each` continues).
    ///
    /// Under the io_uring engine the reads ahead go as runs of up to 1024
    /// pages (4 MiB requests); a disk reaches its sequential speed with
    /// several such requests in flight, so a window of a few thousand pages
    /// (4096: 16 MiB) is the one to start from, where the pool has frames
    /// for it (`docs/io.md`, "Scans and the clock").
    ///
    /// The scan's pages go first when frames are needed (see the module
    /// docs of `miss/scan.rs`): scanning a file larger than the pool does
    /// not evict the pages other accesses keep using.
    ///
    /// A range past the file's end is [`Error::PageOutOfRange`], before
    /// anything is read.
    ///
    /// ```
    /// # use pagepool::*;
    /// # use std::ops::ControlFlow;
    /// # fn demo(pool: &BufferPool, file: FileId) -> Result<u64> {
    /// let mut sum = 0u64;
    /// pool.scan(file, 0..pool.page_count(file)?, 64, |_, page| {
    ///     sum += page.map_or(0, |page| u64::from(page[0]));
    ///     ControlFlow::Continue(())
    /// })?;
    /// # Ok(sum) }
    /// ```
    pub fn scan<'pool>(
        &'pool self,
        file_id: FileId,
        pages: Range<u64>,
        window: usize,
        mut each: impl FnMut(PageId, Result<PageRef<'pool>>) -> ControlFlow<()>,
    ) -> Result<()> {
        let page_count = self.page_count(file_id)?;
        if pages.end > page_count {
            return Err(Error::PageOutOfRange {
                page_id: PageId::new(file_id, pages.end - 1),
                page_count,
            });
        }
        let window = window.clamp(1, (self.frame_count() / 4).max(1)) as u64;
        let slot = self.thread_slot();
        let mut ahead = pages.start;
        // Top the window up once a whole run fits (half the window, at
        // most one run of the engine's): reads go in runs, not one by one,
        // and a large window stays nearly full instead of swinging
        // between half and full.
        let top_up = (window / 2).clamp(1, RUN_PAGES);
        for page_no in pages.clone() {
            if ahead + top_up <= page_no + window {
                let mut submission = Submission::for_runs(self);
                while ahead < pages.end && ahead < page_no + window {
                    let page_id = PageId::new(file_id, ahead);
                    if self.lookup(page_id, &slot, false).is_none() {
                        // The scan holds no latch and wants none of its
                        // reads held (they are evictable once in), so it
                        // may wait for a frame. An error: the page's own
                        // read below reports it.
                        let begun = self.start_load(page_id, &slot, &mut submission, true, false);
                        if matches!(begun, Ok(Begun::NoFrame) | Err(_)) {
                            break;
                        }
                    }
                    ahead += 1;
                }
            }
            let page_id = PageId::new(file_id, page_no);
            let page = self.read_with(page_id, &slot);
            if let Ok(page) = &page {
                page.mark_for_eviction();
            }
            if each(page_id, page).is_break() {
                break;
            }
        }
        Ok(())
    }
}
