//! Owned guards: latches that hold their own `Arc` of the pool instead of
//! a borrow, for tasks (held across `.await`), callbacks and structs.
//!
//! An owned guard holds only its latch: no epoch pin (a latched frame
//! cannot be evicted, so none is needed), and no entry in a thread's
//! record of held latches, so it may move between threads (`Send`) and
//! be shared (`Sync`). The price of the second: the pool cannot tell that
//! the thread asking for a page is the one that holds its owned guard. A
//! thread that holds an [`OwnedPageMut`] and asks for the same page waits
//! for itself until `latch_wait_timeout` ([`Error::LatchTimeout`]),
//! where a borrowed guard gets [`Error::SelfDeadlock`] at once.
//!
//! [`Error::LatchTimeout`]: crate::Error::LatchTimeout
//! [`Error::SelfDeadlock`]: crate::Error::SelfDeadlock

#[cfg(not(any(loom, feature = "shuttle")))]
use std::ops::Deref;
use std::sync::Arc;

use super::guards::{exclusive_writes, stores, PageMut, PageRef};
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::page::{PageId, LSN_OFFSET, PAGE_DATA_SIZE};
use crate::pool::BufferPool;
use crate::view::{check, load_lsn, store_bytes, OptimisticView, OutOfBounds};

/// A shared latch on a resident page that owns its `Arc` of the pool
/// ([`BufferPool::read_owned`], [`BufferPool::read_async`]). Derefs to the
/// page's data, in place.
///
/// ```
/// # use pagepool::*;
/// # use std::sync::Arc;
/// # fn demo(pool: Arc<BufferPool>, page_id: PageId) -> Result<()> {
/// let page = pool.read_owned(page_id)?;
/// let handle = std::thread::spawn(move || page[0]); // it moves
/// handle.join().unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard releases the latch at once"]
pub struct OwnedPageRef {
    pool: Arc<BufferPool>,
    frame_id: FrameId,
    page_id: PageId,
}

/// The exclusive latch on a resident page, owning its `Arc` of the pool
/// ([`BufferPool::write_owned`], [`BufferPool::write_async`]): the stores
/// of [`PageMut`], and a `Deref` to the page's data.
#[derive(Debug)]
#[must_use = "dropping the guard releases the latch at once"]
pub struct OwnedPageMut {
    pool: Arc<BufferPool>,
    frame_id: FrameId,
    page_id: PageId,
    wrote: bool,
}

impl OwnedPageRef {
    /// Wraps a shared latch taken on `frame_id` and recorded nowhere.
    pub(crate) fn new(pool: Arc<BufferPool>, frame_id: FrameId, page_id: PageId) -> Self {
        OwnedPageRef {
            pool,
            frame_id,
            page_id,
        }
    }

    /// Turns a borrowed shared guard into an owned one (same latch, no
    /// wait); `pool` must be the guard's pool.
    pub(crate) fn from_ref(pool: &Arc<BufferPool>, mut page: PageRef<'_>) -> Self {
        assert!(std::ptr::eq(page.pool, &**pool), "a guard of another pool");
        let slot = page.owner.hand_on().expect("a live guard has its owner");
        slot.held.released(page.frame_id, GuardKind::Shared);
        OwnedPageRef::new(Arc::clone(pool), page.frame_id, page.page_id)
    }

    /// The page this guard latches.
    pub fn page_id(&self) -> PageId {
        self.page_id
    }

    /// The page's LSN.
    pub fn lsn(&self) -> u64 {
        load_lsn(self.pool.frames().words(self.frame_id))
    }

    /// The page as an [`OptimisticView`] (atomic loads).
    pub fn view(&self) -> OptimisticView<'_> {
        OptimisticView::new(self.pool.frames().words(self.frame_id))
    }

    /// The pool this guard holds.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }
}

#[cfg(not(any(loom, feature = "shuttle")))]
impl Deref for OwnedPageRef {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: this guard holds the frame's shared latch for as long as
        // the returned slice can live (it borrows `self`), so no writer
        // stores to the frame meanwhile (docs/design.md rule 3).
        let bytes = unsafe { self.pool.frames().bytes(self.frame_id) };
        &bytes[..PAGE_DATA_SIZE]
    }
}

impl Drop for OwnedPageRef {
    fn drop(&mut self) {
        self.pool.release_shared(self.frame_id);
    }
}

impl OwnedPageMut {
    /// Wraps the exclusive latch taken on `frame_id` and recorded nowhere.
    pub(crate) fn new(pool: Arc<BufferPool>, frame_id: FrameId, page_id: PageId) -> Self {
        OwnedPageMut {
            pool,
            frame_id,
            page_id,
            wrote: false,
        }
    }

    /// Turns a borrowed exclusive guard into an owned one (same latch).
    pub(crate) fn from_mut(pool: &Arc<BufferPool>, page: PageMut<'_>) -> Self {
        assert!(std::ptr::eq(page.pool, &**pool), "a guard of another pool");
        let wrote = page.wrote;
        let (frame_id, page_id, _slot) = page.hand_on_exclusive();
        OwnedPageMut {
            pool: Arc::clone(pool),
            frame_id,
            page_id,
            wrote,
        }
    }

    /// The page this guard latches.
    pub fn page_id(&self) -> PageId {
        self.page_id
    }

    exclusive_writes!();

    /// The page as an [`OptimisticView`] (atomic loads).
    pub fn view(&self) -> OptimisticView<'_> {
        OptimisticView::new(self.pool.frames().words(self.frame_id))
    }

    /// The pool this guard holds.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }
}

#[cfg(not(any(loom, feature = "shuttle")))]
impl Deref for OwnedPageMut {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: exclusive latch held; our own stores need `&mut self`,
        // which the borrow of the returned slice rules out.
        let bytes = unsafe { self.pool.frames().bytes(self.frame_id) };
        &bytes[..PAGE_DATA_SIZE]
    }
}

impl Drop for OwnedPageMut {
    fn drop(&mut self) {
        self.pool.release_exclusive(self.frame_id, self.wrote);
    }
}
