//! Freeing pages to a file's free list and reusing them (protocol in
//! `lifecycle/mod.rs`).

use crate::access::PageMut;
use crate::error::{Error, Result};
use crate::page::{FileId, PageId};
use crate::pool::{BufferPool, DataFile};
use crate::stats::Counter;

use super::header::{FREE_COUNT_AT, FREE_HEAD_AT, FREE_MAGIC, MAGIC_AT, NEXT_FREE_AT, NO_PAGE};

impl BufferPool {
    /// Frees the page `page` latches: it goes on its file's free list, and
    /// a later [`allocate`](Self::allocate) of the file hands it out again
    /// (zeroed). Its contents are gone. The file must have a header
    /// ([`format_file`](Self::format_file)); the header page itself cannot
    /// be freed, nor a page already free.
    ///
    /// Taking the guard proves that no other thread holds the page; the
    /// call takes only the header's latch besides, so it does not deadlock
    /// with latches the caller holds on other pages (`lifecycle/mod.rs`).
    /// The free list is durable with the next `flush_all`.
    pub fn free_page(&self, mut page: PageMut<'_>) -> Result<()> {
        let page_id = page.page_id();
        let file_id = page_id.file_id();
        self.require_header(file_id)?;
        if page_id.page_no() == 0 {
            return Err(Error::NotFreeable {
                page_id,
                reason: "page 0 is the file's header",
            });
        }
        if page.view().load_u64(MAGIC_AT)? == FREE_MAGIC {
            return Err(Error::NotFreeable {
                page_id,
                reason: "the page is free already",
            });
        }
        let mut header = self.write(PageId::new(file_id, 0))?;
        let head = header.view().load_u64(FREE_HEAD_AT)?;
        let count = header.view().load_u64(FREE_COUNT_AT)?;
        page.fill(0);
        page.set_lsn(0);
        page.store_u64(MAGIC_AT, FREE_MAGIC)?;
        page.store_u64(NEXT_FREE_AT, head)?;
        header.store_u64(FREE_HEAD_AT, page_id.page_no())?;
        header.store_u64(FREE_COUNT_AT, count + 1)?;
        drop(header);
        drop(page);
        self.thread_slot().stats.bump(Counter::PagesFreed);
        Ok(())
    }

    /// Pages on `file_id`'s free list (0 for a file without a header).
    pub fn free_page_count(&self, file_id: FileId) -> Result<u64> {
        let file = self.file(file_id)?;
        if !self.is_formatted(file_id, &file)? {
            return Ok(0);
        }
        let header = self.read(PageId::new(file_id, 0))?;
        Ok(header.view().load_u64(FREE_COUNT_AT)?)
    }

    /// A page off `file_id`'s free list, zeroed and latched exclusively,
    /// or `None` if the file has no (readable) header or its list is
    /// empty.
    pub(crate) fn allocate_free(
        &self,
        file_id: FileId,
        file: &DataFile,
    ) -> Result<Option<(PageId, PageMut<'_>)>> {
        // A header that cannot be read (corrupt, an I/O error) is not used:
        // appending is always safe, and `free_page` reports the error.
        if !self.is_formatted(file_id, file).unwrap_or(false) {
            return Ok(None);
        }
        let header_id = PageId::new(file_id, 0);
        // Most allocations find the list empty: look without the header's
        // latch first, so they do not queue on it. A page freed just after
        // the look is appended around (never handed out twice).
        if let Ok(Ok(NO_PAGE)) = self.optimistic(header_id, |v| v.load_u64(FREE_HEAD_AT)) {
            return Ok(None);
        }
        let mut header = self.write(header_id)?;
        let head = header.view().load_u64(FREE_HEAD_AT)?;
        if head == NO_PAGE {
            return Ok(None);
        }
        let page_id = PageId::new(file_id, head);
        let count = header.view().load_u64(FREE_COUNT_AT)?;
        let marked = match self.check_page_id(page_id) {
            Ok(()) => Some(self.write(page_id)?),
            Err(_) => None,
        };
        let mut page = match marked {
            Some(page) if page.view().load_u64(MAGIC_AT)? == FREE_MAGIC => page,
            _ => {
                log::error!(
                    "pagepool: the free list of {file_id} names {page_id}, which is not \
                     marked free (a crash before the free list was flushed?); dropping the \
                     rest of the list ({count} pages leak) and appending instead"
                );
                header.store_u64(FREE_HEAD_AT, NO_PAGE)?;
                header.store_u64(FREE_COUNT_AT, 0)?;
                return Ok(None);
            }
        };
        let next = page.view().load_u64(NEXT_FREE_AT)?;
        header.store_u64(FREE_HEAD_AT, next)?;
        header.store_u64(FREE_COUNT_AT, count.saturating_sub(1))?;
        drop(header);
        page.fill(0);
        page.set_lsn(0);
        self.thread_slot().stats.bump(Counter::PagesReused);
        Ok(Some((page_id, page)))
    }
}
