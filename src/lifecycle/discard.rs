//! Dropping a cached page without writing it back.

use crate::access::PageMut;
use crate::pool::BufferPool;
use crate::stats::Counter;

impl BufferPool {
    /// Drops the page `page` latches from the cache **without writing it
    /// back**: whatever was changed since its last write-back is gone, and
    /// the next access loads it from the file. For pages an engine has
    /// dropped (a temporary page, a page of a table being deleted), whose
    /// write would be wasted I/O.
    ///
    /// Not for a page just freed with [`free_page`](Self::free_page): its
    /// free mark must reach the file.
    pub fn discard(&self, page: PageMut<'_>) {
        let (frame_id, page_id, slot) = page.hand_on_exclusive();
        // The caller's exclusive latch, now ours: unmap the page, mark the
        // frame free (which clears DIRTY and wakes waiters) and retire it.
        self.unmap_and_retire(frame_id, page_id, &slot);
        slot.stats.bump(Counter::Evictions);
    }
}
