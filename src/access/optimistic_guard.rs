//! Optimistic guards: the pieces an engine builds optimistic lock coupling
//! from.
//!
//! An [`OptimisticGuard`] is an optimistic read that stays open: it records
//! the page's version when it starts, hands out an [`OptimisticView`] of
//! the frame for as long as it lives, and validates on demand
//! ([`check`](OptimisticGuard::check)) and once more when it is turned into
//! a result ([`finish`](OptimisticGuard::finish)) or a latch
//! ([`upgrade`](OptimisticGuard::upgrade), [`share`](OptimisticGuard::share)).
//!
//! # Coupling
//!
//! A tree descends by reading a child's page id out of a node it holds
//! optimistically. That id may be torn (a writer was changing the node),
//! so [`child`](OptimisticGuard::child) validates the parent *before* it
//! does anything with the id — no lookup, no load, no wait on a torn id —
//! and once more *after* it has recorded the child's version, which closes
//! the window in which the child could have been split, freed or reused
//! between the two: a change to the child after that second check moves
//! the child's own version.
//!
//! ```text
//! parent.check()?            the id was read from a consistent parent
//! look up child, begin       record the child's version
//! parent.check()?            the parent still points at this child
//! ```
//!
//! # Never blocking while pinned
//!
//! A guard holds this thread's epoch pin (that is what keeps its frame from
//! being recycled under its view; docs/design.md rule 6). A pinned thread must
//! not block: it would hold back frame reclamation for the whole pool. So
//! a guard that cannot start at once — its page is not resident, or a
//! writer or loader holds it — does not wait while another guard of the
//! thread is alive. It records the page as *deferred* and returns
//! [`Restart`]; the engine drops its guards and goes back to its root, and
//! the next guard that starts with no other guard alive first loads (or
//! waits for) the deferred page, unpinned, then goes on. A guard started
//! with no other guard alive loads or waits at once and returns a fresh
//! guard. Every wait ends: a load or wait takes the ordinary paths, with
//! their deadlines (`latch_wait_timeout`, `frame_wait_timeout`).
//!
//! # What a caller may do while it holds a guard
//!
//! | call                                            | while a guard is alive                                  |
//! |-------------------------------------------------|---------------------------------------------------------|
//! | `check`, `view`, `child`, `upgrade`, `share`    | yes (they never block)                                  |
//! | `ThreadPin::try_read` / `try_write`             | yes (they never block)                                  |
//! | `read` / `write` / `optimistic` that hit        | yes                                                     |
//! | any call that would load, wait or write back    | [`Error::WouldBlockWhilePinned`], nothing changed        |
//! | `allocate`, `free_page`, `flush*`               | [`Error::WouldBlockWhilePinned`] (they may do I/O)       |
//!
//! A guard is not `Send` (its pin belongs to its thread) and borrows the
//! pool, so a pool cannot be closed under it.
//!
//! # Restart is not an error
//!
//! [`Restart`] says "what you read may be inconsistent; go back and read
//! again". It carries nothing and costs nothing to build. Calls that can
//! also fail for real (a page that cannot be read) return [`OlcError`],
//! which is either a restart or a pool [`Error`].

use std::rc::Rc;

use crossbeam_epoch::Guard;

use crate::epoch::ThreadSlot;
use crate::error::Error;
use crate::frames::FrameId;
use crate::held::GuardKind;
use crate::latch::Blocked;
use crate::page::PageId;
use crate::pool::BufferPool;
use crate::stats::Counter;
use crate::sync::ReadSpan;
use crate::view::OptimisticView;

use super::{PageMut, PageRef};

/// An optimistic read did not validate, an upgrade lost a race, or a page
/// was not ready: go back (to the root) and read again.
///
/// Cheap by design: no payload, no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Restart;

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("optimistic read interrupted: restart")
    }
}

impl std::error::Error for Restart {}

/// The outcome of a coupling step that did not give a guard: a restart,
/// or a real error of the pool (which a restart would not cure).
#[derive(Debug)]
pub enum OlcError {
    /// Go back and read again (see [`Restart`]).
    Restart,
    /// The pool failed: the page cannot be read, the thread would block,
    /// a deadline passed.
    Pool(Error),
}

impl From<Restart> for OlcError {
    #[inline]
    fn from(_: Restart) -> OlcError {
        OlcError::Restart
    }
}

impl From<Error> for OlcError {
    fn from(error: Error) -> OlcError {
        OlcError::Pool(error)
    }
}

impl std::fmt::Display for OlcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OlcError::Restart => Restart.fmt(f),
            OlcError::Pool(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for OlcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OlcError::Restart => None,
            OlcError::Pool(error) => Some(error),
        }
    }
}

/// How many times a guard looks a page up again (stale table hints, a
/// frame evicted between lookup and begin, a load it raced) before it
/// gives up with [`Restart`].
const MAX_START_ATTEMPTS: u32 = 64;

/// Cache lines of a page a starting guard prefetches: what a tree node
/// keeps first (a header and search hints) is read next.
pub(super) const GUARD_PREFETCH_LINES: usize = 8;

/// An open optimistic read of one page; see the module docs.
///
/// ```
/// # use pagepool::*;
/// # fn demo(pool: &BufferPool, root: PageId) -> std::result::Result<u64, OlcError> {
/// let pin = pool.pin_thread();
/// loop {
///     let descend = || -> std::result::Result<u64, OlcError> {
///         let parent = pin.optimistic_guard(root)?;
///         let child_no = parent.view().load_u64(0).map_err(|_| Restart)?;
///         // `child` validates `parent` before it touches `child_no`.
///         let child = parent.child(PageId::new(root.file_id(), child_no))?;
///         let value = child.view().load_u64(8).map_err(|_| Restart)?;
///         Ok(child.finish(value)?)
///     };
///     match descend() {
///         Err(OlcError::Restart) => continue,
///         other => return other,
///     }
/// }
/// # }
/// ```
#[must_use = "a guard validates nothing until it is checked or finished"]
pub struct OptimisticGuard<'pool> {
    pub(super) pool: &'pool BufferPool,
    pub(super) slot: Rc<ThreadSlot>,
    pub(super) frame_id: FrameId,
    pub(super) page_id: PageId,
    /// The state word when the guard started (or when its own hint store
    /// ended, `frame_hint.rs`): no `EXCL`, no `FREE`.
    pub(super) begin: u64,
    /// Declares the guard's reads of the frame to loom (nothing otherwise).
    /// Before `_pin`, so the read ends before the pin does.
    pub(super) _span: ReadSpan,
    /// Keeps the frame from being recycled while the view can be read.
    pub(super) _pin: Guard,
}

impl std::fmt::Debug for OptimisticGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptimisticGuard")
            .field("page_id", &self.page_id)
            .field("frame_id", &self.frame_id)
            .finish_non_exhaustive()
    }
}

impl<'pool> OptimisticGuard<'pool> {
    /// The page this guard reads.
    #[inline]
    pub fn page_id(&self) -> PageId {
        self.page_id
    }

    /// The page's data, read through atomic loads; what it shows counts
    /// only once [`check`](Self::check) succeeds after it was read.
    #[inline]
    pub fn view(&self) -> OptimisticView<'_> {
        OptimisticView::new(self.pool.frames().words(self.frame_id))
    }

    /// Validates: `Ok` iff no writer and no eviction has touched the page
    /// since the guard started, so everything read through the view
    /// before this call was consistent. May be called any number of times.
    #[inline]
    pub fn check(&self) -> Result<(), Restart> {
        if self
            .pool
            .frames()
            .meta(self.frame_id)
            .latch
            .optimistic_validate(self.begin)
        {
            Ok(())
        } else {
            self.slot.stats.bump(Counter::Restarts);
            Err(Restart)
        }
    }

    /// Validates one last time and ends the read: `value` (computed from
    /// the view) if it counts.
    #[inline]
    pub fn finish<T>(self, value: T) -> Result<T, Restart> {
        self.check().map(|()| value)
    }

    /// Starts a guard on `child`, a page id read from this guard's view:
    /// validates this guard first (a torn id is never looked up), records
    /// the child's version, and validates this guard again. A child that
    /// is not resident, or latched by a writer, is deferred and the call
    /// returns [`OlcError::Restart`] (module docs).
    #[inline]
    pub fn child(&self, child: PageId) -> Result<OptimisticGuard<'pool>, OlcError> {
        self.couple(|| self.pool.start_optimistic_guard(child, &self.slot))
    }

    /// The coupling step every child start goes through ([`child`],
    /// [`child_hinted`]): validate this guard, `start` the child's guard
    /// (which records its version), validate this guard again. The first
    /// check keeps a torn id from being looked up, the second a child the
    /// writer has moved on from (unlinked, split away) from validating.
    ///
    /// [`child`]: Self::child
    /// [`child_hinted`]: Self::child_hinted
    #[inline]
    pub(super) fn couple(
        &self,
        start: impl FnOnce() -> Result<OptimisticGuard<'pool>, OlcError>,
    ) -> Result<OptimisticGuard<'pool>, OlcError> {
        self.check()?;
        let guard = start()?;
        self.check()?;
        Ok(guard)
    }

    /// Optimistic → exclusive, in one compare-and-swap: succeeds only if
    /// the page is unchanged since the guard started and no one holds it;
    /// otherwise [`Restart`] (the guard is gone either way).
    pub fn upgrade(self) -> Result<PageMut<'pool>, Restart> {
        let meta = self.pool.frames().meta(self.frame_id);
        if !meta.latch.try_upgrade_optimistic(self.begin) {
            self.slot.stats.bump(Counter::Restarts);
            return Err(Restart);
        }
        // Same version as at the start, when the frame held `page_id`:
        // it still does.
        Ok(PageMut::new(
            self.pool,
            self.frame_id,
            self.page_id,
            false,
            &self.slot,
        ))
    }

    /// Optimistic → shared: a shared latch, only if the page is unchanged
    /// since the guard started and no writer holds or waits for it;
    /// otherwise [`Restart`].
    pub fn share(self) -> Result<PageRef<'pool>, Restart> {
        let meta = self.pool.frames().meta(self.frame_id);
        if !meta.latch.try_share_optimistic(self.begin) {
            self.slot.stats.bump(Counter::Restarts);
            return Err(Restart);
        }
        Ok(PageRef::new(
            self.pool,
            self.frame_id,
            self.page_id,
            &self.slot,
        ))
    }
}

impl Drop for OptimisticGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let live = self.slot.optimistic_guards.get();
        debug_assert!(live > 0);
        self.slot.optimistic_guards.set(live - 1);
    }
}

impl BufferPool {
    /// Starts an optimistic guard on `page_id` for the thread of `slot`.
    /// With no other guard of the thread alive it first settles a deferred
    /// page, and loads or waits itself where it must; with one alive it
    /// defers instead (module docs).
    pub(crate) fn start_optimistic_guard(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
    ) -> Result<OptimisticGuard<'_>, OlcError> {
        if slot.optimistic_guards.get() == 0 {
            if let Some(deferred) = slot.deferred.take() {
                drop(self.read_with(deferred, slot)?);
            }
        }
        let mut exact = false;
        for _ in 0..MAX_START_ATTEMPTS {
            let pin = slot.pin();
            let Some(frame_id) = self.find(page_id, exact, &pin) else {
                drop(pin);
                self.load_or_defer(page_id, slot)?;
                exact = false;
                continue;
            };
            // The page's first lines (a node's header and search hints)
            // load while the state word does.
            self.frames.prefetch(frame_id, GUARD_PREFETCH_LINES);
            let meta = self.frames.meta(frame_id);
            // State first, page id second (see `pool.rs`, "Waiting only for
            // what can end").
            let begun = meta.latch.optimistic_begin();
            if meta.page_id_raw() != page_id.raw() {
                exact = true;
                continue;
            }
            match begun {
                Ok(begin) => return Ok(self.begun_guard(slot, frame_id, page_id, begin, pin)),
                Err(Blocked::Free) => exact = true,
                Err(_) => {
                    if slot.held.holds(frame_id) == Some(GuardKind::Exclusive) {
                        return Err(OlcError::Pool(Error::SelfDeadlock {
                            page_id,
                            held: GuardKind::Exclusive,
                            wanted: GuardKind::Shared,
                        }));
                    }
                    drop(pin);
                    self.load_or_defer(page_id, slot)?;
                    exact = false;
                }
            }
        }
        slot.stats.bump(Counter::Restarts);
        Err(OlcError::Restart)
    }

    /// The guard of an optimistic read of `page_id` begun at `begin` on
    /// `frame_id` (whose page id the caller checked after the begin), with
    /// the pin taken before the begin.
    #[inline]
    pub(super) fn begun_guard(
        &self,
        slot: &Rc<ThreadSlot>,
        frame_id: FrameId,
        page_id: PageId,
        begin: u64,
        pin: Guard,
    ) -> OptimisticGuard<'_> {
        let meta = self.frames.meta(frame_id);
        // An access: the clock's second chance (writes only if the mark is
        // set, so a hot node's start stays read-only).
        meta.latch.clear_mark(begin);
        slot.stats.bump(Counter::Hits);
        slot.optimistic_guards.set(slot.optimistic_guards.get() + 1);
        OptimisticGuard {
            pool: self,
            slot: Rc::clone(slot),
            frame_id,
            page_id,
            begin,
            _span: meta.access.begin_read(),
            _pin: pin,
        }
    }

    /// A guard could not start on `page_id` without blocking. With another
    /// guard of this thread alive (so it is pinned), defer the page (if it
    /// is a page at all) and restart; with none, load or wait for it now, through the shared
    /// latch (which ends every wait or errors), and let the caller look
    /// again.
    fn load_or_defer(&self, page_id: PageId, slot: &Rc<ThreadSlot>) -> Result<(), OlcError> {
        if slot.optimistic_guards.get() > 0 {
            // A page id that names no page is the caller's error, now; a
            // restart would only meet it again.
            self.check_page_id(page_id)?;
            slot.deferred.set(Some(page_id));
            slot.stats.bump(Counter::Restarts);
            return Err(OlcError::Restart);
        }
        drop(self.read_with(page_id, slot)?);
        Ok(())
    }
}
