//! Latch guards and the thread's handle: borrowed access to a resident page.
//!
//! - [`PageRef`]: a shared latch; derefs to the page's data as `&[u8]`, in
//!   place in the frame (no copy). Writers wait until it is dropped;
//!   optimistic readers do not.
//! - [`PageMut`]: the exclusive latch; writes go through same-width atomic
//!   stores (optimistic readers may be reading the frame meanwhile), and
//!   reads through `Deref`. Dropping it publishes the writes by advancing
//!   the page's version and marks the page dirty if anything was written.
//! - [`ThreadPin`]: keeps this thread's epoch pin across calls, so hits run
//!   no fence.
//!
//! The latch guards are not `Send`: each records its latch in its thread's
//! [`HeldLatches`](crate::held) when it is made and erases it when it is
//! dropped, which is how the pool turns a wait a thread would make for its
//! own guard into [`Error::SelfDeadlock`](crate::Error::SelfDeadlock). They
//! are `Sync`: another thread may read through `&PageRef`.
//!
//! ```compile_fail
//! # use pagepool::*;
//! # fn demo(pool: &BufferPool, page_id: PageId) -> Result<()> {
//! let page = pool.read(page_id)?;
//! std::thread::scope(|s| {
//!     s.spawn(move || drop(page)); // error: `PageRef` cannot be sent between threads
//! });
//! # Ok(()) }
//! ```
//!
//! Guards borrow the pool, and the bytes borrow the guard:
//!
//! ```compile_fail
//! # use pagepool::*;
//! # fn demo(pool: &BufferPool, page_id: PageId) -> Result<()> {
//! let bytes: &[u8] = {
//!     let page = pool.read(page_id)?;
//!     &page[..16] // error: `page` does not live long enough
//! };
//! # let _ = bytes; Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use pagepool::*;
//! # fn demo(config: PoolConfig, page_id: PageId) -> Result<()> {
//! let pool = BufferPool::open(config)?;
//! let page = pool.read(page_id)?;
//! drop(pool); // error: cannot move out of `pool` because it is borrowed
//! # drop(page); Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use pagepool::*;
//! # fn demo(pool: &BufferPool, page_id: PageId) -> Result<()> {
//! let mut page = pool.write(page_id)?;
//! let bytes: &[u8] = &page[..8];
//! page.store_u64(0, 1)?; // error: `page` is also borrowed as immutable
//! # let _ = bytes; Ok(()) }
//! ```

#[cfg(not(any(loom, feature = "shuttle")))]
use std::ops::Deref;
use std::rc::Rc;

use crate::epoch::ThreadSlot;
use crate::error::Result;
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::page::{PageId, LSN_OFFSET, PAGE_DATA_SIZE};
use crate::pool::{BufferPool, PoolCore};
use crate::view::{check, load_lsn, store_bytes, OptimisticView, OutOfBounds};

/// A shared latch on a resident page. Derefs to the page's data area
/// ([`PAGE_DATA_SIZE`] bytes) in the frame itself.
///
/// ```
/// # use pagepool::*;
/// # fn demo(pool: &BufferPool, page_id: PageId) -> Result<()> {
/// let page = pool.read(page_id)?;
/// let header: &[u8] = &page[..8]; // borrowed from the frame, no copy
/// # let _ = header; Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard releases the latch at once"]
pub struct PageRef<'pool> {
    pub(super) pool: &'pool BufferPool,
    pub(super) frame_id: FrameId,
    pub(super) page_id: PageId,
    pub(super) owner: Owner,
}

/// The slot of the thread that took a guard's latch, where the latch is
/// recorded until the guard drops. `None` only in a guard whose latch has
/// been handed on to another guard (an upgrade or a downgrade), whose drop
/// then releases nothing.
pub(super) struct Owner(Option<Rc<ThreadSlot>>);

// SAFETY: the `Rc` is cloned in the guards' constructors and dropped in
// their `Drop`, both on the thread that owns the guard (guards are not
// `Send`); no method taking `&self` touches it, so sharing `&Owner` (and
// with it `&PageRef`, `&PageMut`) across threads shares nothing that is
// not thread-safe.
unsafe impl Sync for Owner {}

impl Owner {
    /// Records `kind` on `frame_id` in the slot.
    #[inline]
    pub(super) fn record(slot: &Rc<ThreadSlot>, frame_id: FrameId, kind: GuardKind) -> Owner {
        slot.held.acquired(frame_id, kind);
        Owner(Some(Rc::clone(slot)))
    }

    /// Hands the latch on: this guard's drop will release nothing. The
    /// caller records the latch under its new kind.
    pub(super) fn hand_on(&mut self) -> Option<Rc<ThreadSlot>> {
        self.0.take()
    }
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Owner")
    }
}

impl<'pool> PageRef<'pool> {
    /// Wraps a shared latch this thread (`slot`) has taken on `frame_id`.
    #[inline]
    pub(crate) fn new(
        pool: &'pool BufferPool,
        frame_id: FrameId,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
    ) -> Self {
        PageRef {
            pool,
            frame_id,
            page_id,
            owner: Owner::record(slot, frame_id, GuardKind::Shared),
        }
    }

    /// The page this guard latches.
    pub fn page_id(&self) -> PageId {
        self.page_id
    }

    /// Sets the frame's clock mark: the hand's next visit evicts the page
    /// unless another access clears the mark first (a scan's pages go
    /// before the hot set's).
    pub(crate) fn mark_for_eviction(&self) {
        self.pool.frames().meta(self.frame_id).latch.set_mark();
    }

    /// The page's LSN.
    pub fn lsn(&self) -> u64 {
        load_lsn(self.pool.frames().words(self.frame_id))
    }

    /// The page as an [`OptimisticView`] (atomic loads), for code written
    /// against that interface.
    pub fn view(&self) -> OptimisticView<'_> {
        OptimisticView::new(self.pool.frames().words(self.frame_id))
    }
}

#[cfg(not(any(loom, feature = "shuttle")))]
impl Deref for PageRef<'_> {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: this guard holds the frame's shared latch for as long as
        // the returned slice can live (it borrows `self`), so no writer
        // stores to the frame meanwhile (docs/design.md rule 3).
        let bytes = unsafe { self.pool.frames().bytes(self.frame_id) };
        &bytes[..PAGE_DATA_SIZE]
    }
}

impl Drop for PageRef<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(slot) = &self.owner.0 {
            slot.held.released(self.frame_id, GuardKind::Shared);
            self.pool.release_shared(self.frame_id);
        }
    }
}

macro_rules! stores {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        #[inline]
        pub fn $name(&mut self, offset: usize, value: $ty) -> Result<(), OutOfBounds> {
            self.write_at(offset, &value.to_le_bytes())
        }
    )*};
}

/// The writes of an exclusive guard ([`PageMut`], and the owned
/// [`OwnedPageMut`](super::OwnedPageMut)): a type with fields `pool`
/// (anything that derefs to the pool), `frame_id` and `wrote`, which holds
/// the frame's exclusive latch.
macro_rules! exclusive_writes {
    () => {
        /// Writes `bytes` at `offset` of the data area.
        pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
            check(offset, bytes.len())?;
            store_bytes(self.pool.frames().words(self.frame_id), offset, bytes);
            self.wrote = true;
            Ok(())
        }

        stores! {
            /// Stores a little-endian `u64` at `offset` (any alignment).
            store_u64: u64;
            /// Stores a little-endian `u32` at `offset`.
            store_u32: u32;
            /// Stores a little-endian `u16` at `offset`.
            store_u16: u16;
            /// Stores a byte at `offset`.
            store_u8: u8;
        }

        /// Sets every byte of the data area to `byte`.
        pub fn fill(&mut self, byte: u8) {
            let word = u64::from_ne_bytes([byte; 8]);
            let words = self.pool.frames().words(self.frame_id);
            for cell in &words[..PAGE_DATA_SIZE / 8] {
                cell.store(word, crate::sync::Ordering::Relaxed);
            }
            self.wrote = true;
        }

        /// Sets the page's LSN: before this page is written back, the pool
        /// calls the write-ahead-log hook with it. The first LSN set since
        /// the page was last clean is its recovery LSN (see
        /// [`BufferPool::dirty_pages`](crate::BufferPool::dirty_pages)),
        /// however many changes this guard logs; 0 is no LSN.
        pub fn set_lsn(&mut self, lsn: u64) {
            let words = self.pool.frames().words(self.frame_id);
            words[LSN_OFFSET / 8].store(lsn.to_le(), crate::sync::Ordering::Relaxed);
            if lsn != 0 {
                self.pool.recovery_lsns.dirtied(self.frame_id, lsn);
            }
            self.wrote = true;
        }

        /// The page's LSN.
        pub fn lsn(&self) -> u64 {
            load_lsn(self.pool.frames().words(self.frame_id))
        }
    };
}
pub(super) use {exclusive_writes, stores};

/// The exclusive latch on a resident page.
///
/// Reads through `Deref` (`&[u8]` over the frame); writes through the
/// store methods, which take `&mut self`, so no byte slice from this guard
/// is alive while a store happens.
///
/// ```
/// # use pagepool::*;
/// # fn demo(pool: &BufferPool, page_id: PageId) -> Result<()> {
/// let mut page = pool.write(page_id)?;
/// page.store_u64(0, 42)?;
/// page.write_at(8, b"hello")?;
/// page.set_lsn(1001);
/// assert_eq!(&page[8..13], b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard releases the latch at once"]
pub struct PageMut<'pool> {
    pub(super) pool: &'pool BufferPool,
    pub(super) frame_id: FrameId,
    pub(super) page_id: PageId,
    pub(super) wrote: bool,
    pub(super) owner: Owner,
}

impl<'pool> PageMut<'pool> {
    /// Wraps the exclusive latch this thread (`slot`) holds on `frame_id`.
    /// `dirty` marks the page dirty on release even without a store (new
    /// pages).
    #[inline]
    pub(crate) fn new(
        pool: &'pool BufferPool,
        frame_id: FrameId,
        page_id: PageId,
        dirty: bool,
        slot: &Rc<ThreadSlot>,
    ) -> Self {
        PageMut {
            pool,
            frame_id,
            page_id,
            wrote: dirty,
            owner: Owner::record(slot, frame_id, GuardKind::Exclusive),
        }
    }

    /// The page this guard latches.
    pub fn page_id(&self) -> PageId {
        self.page_id
    }

    exclusive_writes!();

    /// Ends this guard without releasing its latch: the caller takes over
    /// the exclusive hold of the frame (and must end it), and this
    /// thread's record of held latches forgets it.
    pub(crate) fn hand_on_exclusive(mut self) -> (FrameId, PageId, Rc<ThreadSlot>) {
        let slot = self.owner.hand_on().expect("a live guard has its owner");
        slot.held.released(self.frame_id, GuardKind::Exclusive);
        (self.frame_id, self.page_id, slot)
    }

    /// Marks the page dirty without changing it, so the next flush writes
    /// it (used to write again pages whose sync failed), with a recovery
    /// LSN no later than `recovery_lsn` (the lost write's).
    pub(crate) fn mark_dirty(&mut self, recovery_lsn: Option<u64>) {
        if let Some(lsn) = recovery_lsn {
            self.pool.recovery_lsns.lower(self.frame_id, lsn);
        }
        self.wrote = true;
    }

    /// The page as an [`OptimisticView`] (atomic loads).
    pub fn view(&self) -> OptimisticView<'_> {
        OptimisticView::new(self.pool.frames().words(self.frame_id))
    }
}

#[cfg(not(any(loom, feature = "shuttle")))]
impl Deref for PageMut<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // Our own stores need `&mut self`, which the borrow of the returned
        // slice rules out; racing optimistic loads are reads (docs/design.md rules 2–3).
        // SAFETY: exclusive latch held: no other thread stores to the frame.
        let bytes = unsafe { self.pool.frames().bytes(self.frame_id) };
        &bytes[..PAGE_DATA_SIZE]
    }
}

impl Drop for PageMut<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(slot) = &self.owner.0 {
            slot.held.released(self.frame_id, GuardKind::Exclusive);
            self.pool.release_exclusive(self.frame_id, self.wrote);
        }
    }
}

/// Keeps the current thread pinned in the pool's epoch across operations,
/// so that hits on this thread run no fence (see
/// [`BufferPool::pin_thread`]). Not `Send`: it belongs to its thread.
///
/// It is also the thread's handle on the pool: its [`optimistic`],
/// [`read`] and [`write`] are the pool's, with the thread's state already
/// in hand (the pool's own methods look it up in a thread-local first), so
/// a loop of hits through the handle is the fastest path there is: an
/// optimistic hit through it takes no pin of its own and leans on the
/// handle's (see `src/epoch.rs`, "Session reads").
///
/// The pin is refreshed every 128 operations and released whenever the
/// pool blocks (I/O, latch waits), but never while one of the handle's
/// optimistic reads is in progress (a call inside its closure that would
/// block is refused instead). Drop it before this thread idles or
/// blocks outside the pool: while it lives, evicted frames cannot be
/// reclaimed past this thread's epoch.
///
/// ```
/// # use pagepool::*;
/// # fn demo(pool: &BufferPool, pages: &[PageId]) -> Result<u64> {
/// let pin = pool.pin_thread();
/// let mut sum = 0;
/// for &page_id in pages {
///     sum += pin.optimistic(page_id, |view| view.load_u64(0))??;
/// }
/// # Ok(sum) }
/// ```
///
/// [`optimistic`]: ThreadPin::optimistic
/// [`read`]: ThreadPin::read
/// [`write`]: ThreadPin::write
#[must_use = "the pin lasts only as long as the handle"]
pub struct ThreadPin<'pool> {
    pub(super) pool: &'pool BufferPool,
    /// The pool's core, kept so that a hit through the handle starts from
    /// it (no load of the pool's pointer to it first).
    core: &'pool PoolCore,
    pub(super) slot: Rc<ThreadSlot>,
}

impl<'pool> ThreadPin<'pool> {
    pub(crate) fn new(pool: &'pool BufferPool, slot: Rc<ThreadSlot>) -> ThreadPin<'pool> {
        slot.begin_session();
        ThreadPin {
            pool,
            core: &pool.core,
            slot,
        }
    }

    /// [`BufferPool::optimistic`] on this thread's handle, leaning on the
    /// handle's pin.
    #[inline(always)]
    pub fn optimistic<R>(
        &self,
        page_id: PageId,
        read: impl FnMut(OptimisticView<'_>) -> R,
    ) -> Result<R> {
        self.pool
            .optimistic_session(self.core, page_id, &self.slot, read)
    }

    /// [`BufferPool::optimistic_try`] on this thread's handle: one flat
    /// `Result`, and the fastest hit.
    #[inline(always)]
    pub fn optimistic_try<T, E: From<crate::Error>>(
        &self,
        page_id: PageId,
        read: impl FnMut(OptimisticView<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.pool
            .optimistic_try_session(self.core, page_id, &self.slot, read)
    }

    /// [`BufferPool::read`] on this thread's handle.
    #[inline(always)]
    pub fn read(&self, page_id: PageId) -> Result<PageRef<'pool>> {
        self.pool.read_in(self.core, page_id, &self.slot)
    }

    /// [`BufferPool::write`] on this thread's handle.
    #[inline]
    pub fn write(&self, page_id: PageId) -> Result<PageMut<'pool>> {
        self.pool.write_with(page_id, &self.slot)
    }

    /// The pool this handle belongs to.
    pub fn pool(&self) -> &'pool BufferPool {
        self.pool
    }
}

impl std::fmt::Debug for ThreadPin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadPin")
    }
}

impl Drop for ThreadPin<'_> {
    fn drop(&mut self) {
        self.slot.end_session();
    }
}

/// Typed, zero-copy reads under a latch (see [`crate::typed`]): the same
/// two accessors for both guards, over their `&[u8]` data area.
macro_rules! typed_reads {
    ($guard:ident, $latch:literal) => {
        #[cfg(not(any(loom, feature = "shuttle")))]
        impl $guard<'_> {
            #[doc = concat!("A `&T` at `offset` of the data area, in the frame (no copy), borrowed from this guard (", $latch, " latch). Errors if the value does not fit the data area or `offset` is not a multiple of `T`'s alignment.")]
            pub fn get<T>(&self, offset: usize) -> Result<&T, crate::typed::TypedError>
            where
                T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable,
            {
                crate::typed::ref_at(self, offset)
            }

            /// A `&[T]` of `count` elements at `offset` of the data area, in
            /// the frame (no copy), borrowed from this guard. Errors as
            /// [`Self::get`].
            pub fn get_slice<T>(
                &self,
                offset: usize,
                count: usize,
            ) -> Result<&[T], crate::typed::TypedError>
            where
                T: zerocopy::FromBytes + zerocopy::Immutable,
            {
                crate::typed::slice_at(self, offset, count)
            }
        }
    };
}

typed_reads!(PageRef, "shared");
typed_reads!(
    PageMut,
    "exclusive; while the reference lives the guard cannot store, since stores take `&mut self`"
);

/// Typed stores under the exclusive latch (see [`crate::typed`]).
impl PageMut<'_> {
    /// Stores `value`'s bytes at `offset` of the data area through the
    /// atomic write path (like [`Self::write_at`]); any alignment. `T` may
    /// be a slice (`&[u32]`, `&[Entry]`).
    ///
    /// ```
    /// # use pagepool::*;
    /// # fn demo(pool: &BufferPool, page_id: PageId) -> Result<()> {
    /// let mut page = pool.write(page_id)?;
    /// page.put(0, &[1u32, 2, 3][..])?;
    /// # Ok(()) }
    /// ```
    pub fn put<T>(&mut self, offset: usize, value: &T) -> Result<(), OutOfBounds>
    where
        T: zerocopy::IntoBytes + zerocopy::Immutable + ?Sized,
    {
        self.write_at(offset, value.as_bytes())
    }
}
