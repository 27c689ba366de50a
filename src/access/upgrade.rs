//! Moving a hold from one kind to another without letting go, and taking
//! latches without waiting (see the table in `access/mod.rs`).
//!
//! Each conversion consumes the guard it starts from, so no two guards
//! ever claim the same hold: the old guard hands its latch on
//! ([`Owner::hand_on`](super::guards)) and drops releasing nothing, and
//! the thread's record of held latches ([`crate::held`]) is rewritten to
//! the new kind.

use std::rc::Rc;

use crate::epoch::ThreadSlot;
use crate::error::Result;
use crate::held::GuardKind;
use crate::page::PageId;
use crate::pool::BufferPool;
use crate::stats::Counter;

use super::{OlcError, OptimisticGuard, PageMut, PageRef, ThreadPin};

impl<'pool> PageRef<'pool> {
    /// Shared → exclusive, if this guard is the page's only shared holder;
    /// otherwise the guard comes back unchanged in `Err`, at once (waiting
    /// for the other holders could deadlock with one that waits to upgrade
    /// too). The version does not move until the exclusive latch is
    /// released, and optimistic readers of the page fail validation from
    /// now on.
    pub fn try_upgrade(mut self) -> std::result::Result<PageMut<'pool>, PageRef<'pool>> {
        let latch = &self.pool.frames().meta(self.frame_id).latch;
        if !latch.try_upgrade_shared() {
            return Err(self);
        }
        let slot = self.owner.hand_on().expect("a live guard has its owner");
        slot.held.released(self.frame_id, GuardKind::Shared);
        Ok(PageMut::new(
            self.pool,
            self.frame_id,
            self.page_id,
            false,
            &slot,
        ))
    }
}

impl<'pool> PageMut<'pool> {
    /// Exclusive → shared: publishes the writes (the version advances,
    /// the page is marked dirty if anything was written) and keeps a
    /// shared latch, so no writer gets in between.
    pub fn downgrade(mut self) -> PageRef<'pool> {
        let slot = self.owner.hand_on().expect("a live guard has its owner");
        slot.held.released(self.frame_id, GuardKind::Exclusive);
        if self.wrote {
            self.pool.note_dirtied(self.frame_id);
        }
        if self
            .pool
            .frames()
            .meta(self.frame_id)
            .latch
            .downgrade(self.wrote)
        {
            self.pool.queues.wake(self.frame_id);
        }
        PageRef::new(self.pool, self.frame_id, self.page_id, &slot)
    }
}

impl<'pool> ThreadPin<'pool> {
    /// Starts an optimistic guard on `page_id` (see [`OptimisticGuard`]).
    ///
    /// With no other guard of this thread alive, a page that is not
    /// resident is loaded first (and a page latched by a writer waited
    /// for), and a page deferred by an earlier restart is settled. With
    /// another guard alive the call never blocks: it defers the page and
    /// returns [`OlcError::Restart`].
    #[inline]
    pub fn optimistic_guard(
        &self,
        page_id: PageId,
    ) -> std::result::Result<OptimisticGuard<'pool>, OlcError> {
        self.pool.start_optimistic_guard(page_id, &self.slot)
    }

    /// A shared latch on `page_id` if it can be had without waiting: `None`
    /// if a writer holds or waits for it, or the page is not resident
    /// (loading it would wait for I/O). Errors only for a page id that
    /// names no page.
    #[inline]
    pub fn try_read(&self, page_id: PageId) -> Result<Option<PageRef<'pool>>> {
        self.pool.try_read_with(page_id, &self.slot)
    }

    /// The exclusive latch on `page_id` if it can be had without waiting:
    /// `None` if anyone holds it or the page is not resident.
    #[inline]
    pub fn try_write(&self, page_id: PageId) -> Result<Option<PageMut<'pool>>> {
        self.pool.try_write_with(page_id, &self.slot)
    }
}

impl BufferPool {
    /// [`ThreadPin::try_read`] without a handle.
    pub fn try_read(&self, page_id: PageId) -> Result<Option<PageRef<'_>>> {
        self.try_read_with(page_id, &self.thread_slot())
    }

    /// [`ThreadPin::try_write`] without a handle.
    pub fn try_write(&self, page_id: PageId) -> Result<Option<PageMut<'_>>> {
        self.try_write_with(page_id, &self.thread_slot())
    }

    fn try_read_with(&self, page_id: PageId, slot: &Rc<ThreadSlot>) -> Result<Option<PageRef<'_>>> {
        for exact in [false, true] {
            let Some(frame_id) = self.lookup(page_id, slot, exact) else {
                break;
            };
            let meta = self.frames().meta(frame_id);
            if meta.latch.try_lock_shared().is_err() {
                // Latched, or a stale hint to a frame another page holds:
                // only the exact lookup tells which.
                continue;
            }
            if meta.page_id() == Some(page_id) {
                slot.stats.bump(Counter::Hits);
                return Ok(Some(PageRef::new(self, frame_id, page_id, slot)));
            }
            self.release_shared(frame_id);
        }
        self.check_page_id(page_id)?;
        Ok(None)
    }

    fn try_write_with(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
    ) -> Result<Option<PageMut<'_>>> {
        for exact in [false, true] {
            let Some(frame_id) = self.lookup(page_id, slot, exact) else {
                break;
            };
            let meta = self.frames().meta(frame_id);
            if meta.latch.try_lock_exclusive().is_err() {
                continue;
            }
            if meta.page_id() == Some(page_id) {
                slot.stats.bump(Counter::Hits);
                return Ok(Some(PageMut::new(self, frame_id, page_id, false, slot)));
            }
            self.release_exclusive(frame_id, false);
        }
        self.check_page_id(page_id)?;
        Ok(None)
    }
}
