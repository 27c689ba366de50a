//! The page-state word: one `AtomicU64` per frame that is at once a
//! shared/exclusive latch, a seqlock version, the dirty flag, the clock's
//! second-chance mark and the flags of the threads waiting for it.
//!
//! # Layout
//!
//! ```text
//!  63    62    61     60    59       58       57 ........ 40  39 ............ 0
//! [EXCL][FREE][DIRTY][MARK][WAITERS][PENDING][ shared (18) ][ version (40 bits) ]
//! ```
//!
//! - `EXCL`: one exclusive holder (a writer, a loader filling the frame, or
//!   the evictor). Never set together with a non-zero shared count.
//! - `FREE`: the frame holds no page (free, or evicted and awaiting epoch
//!   reclamation). Readers that see it look the page up again.
//! - `DIRTY`: the frame differs from the page on disk.
//! - `MARK`: the clock's mark. The clock sets it on its first visit; any
//!   access that finds it set clears it (second chance); a visit that finds
//!   it still set evicts. An access that finds it clear writes nothing. A
//!   frame claimed for a new page starts with it set (the access that
//!   loaded the page does not count): a page read once and never again
//!   goes at the hand's first visit instead of its second, which keeps
//!   one-off pages from crowding out re-read ones (zipf: hit ratio +1 pt).
//! - `WAITERS`: some thread is parked in the wait queue for this frame; the
//!   next release that can unblock it must wake the queue.
//! - `PENDING`: a writer waits for the shared holders to leave. New shared
//!   acquisitions step aside ([`Blocked::Pending`]) until it has had its
//!   turn, so overlapping readers cannot starve it: once `PENDING` is set,
//!   the shared count only goes down (except for a thread that already
//!   holds a shared latch on the frame and takes another,
//!   [`PageLatch::lock_shared_again`], which must not wait for a writer
//!   that waits for it). Optimistic readers ignore it.
//! - shared count: holders of shared guards (at most [`MAX_SHARED`]).
//! - version: advanced (mod 2^40) by every release of `EXCL` and by every
//!   eviction; never by shared holders, marks, flags or dirty-bit changes.
//!   A frame's tenancies (one page from claim to eviction) therefore never
//!   share a version, which is how a waiter tells that the holder it waits
//!   for is gone (see [`wait`]).
//!
//! # Transitions
//!
//! | operation             | from                                         | to                                           | order   |
//! |-----------------------|----------------------------------------------|----------------------------------------------|---------|
//! | `optimistic_begin`    | no EXCL, no FREE                             | (read only)                                  | Acquire |
//! | `optimistic_validate` | version v                                    | (read only) ok iff no EXCL/FREE, v           | fence(Acquire) + Relaxed |
//! | `try_lock_shared`     | no EXCL, FREE, PENDING; count < MAX          | count + 1, MARK cleared                      | Acquire |
//! | `lock_shared_again`   | count ≥ 1, one of them the caller's          | count + 1 (PENDING ignored)                  | Acquire |
//! | `unlock_shared`       | count ≥ 1                                    | count − 1 (WAITERS cleared at 0)             | Release |
//! | `try_lock_exclusive`  | no EXCL, no FREE, count 0                    | EXCL, MARK and PENDING cleared, then fence(Release) | Acquire |
//! | `unlock_exclusive`    | EXCL                                         | version + 1, DIRTY if written, WAITERS cleared | Release |
//! | `unlock_exclusive_unlogged` | EXCL (taken by `try_upgrade_optimistic`) | version + 1, DIRTY as it was, WAITERS cleared; gives the new state | Release |
//! | `downgrade_clean`     | EXCL                                         | count 1, version + 1, DIRTY and WAITERS cleared | Release |
//! | `try_upgrade_optimistic` | version v, no EXCL/FREE, count 0 (flags may differ) | EXCL, MARK and PENDING cleared, then fence(Release) | Acquire |
//! | `try_share_optimistic` | version v, no EXCL/FREE/PENDING, count < MAX | count + 1, MARK cleared                      | Acquire |
//! | `try_upgrade_shared`  | count = 1 (the caller), no EXCL              | EXCL, count 0, MARK and PENDING cleared, then fence(Release) | Acquire |
//! | `downgrade`           | EXCL                                         | count 1, version + 1, DIRTY if written, WAITERS cleared | Release |
//! | `redirty`             | count ≥ 1 (caller holds shared)              | DIRTY set                                    | Relaxed |
//! | `mark_pending`        | count ≥ 1, no EXCL, no FREE (a writer waits) | PENDING set                                  | Relaxed |
//! | `withdraw_pending`    | PENDING (a waiting writer gives up)          | PENDING and WAITERS cleared                  | Relaxed |
//! | `announce_waiter`     | exactly the state the waiter saw, blocked    | WAITERS set (and PENDING, for a writer held off by readers) | Relaxed |
//! | `clock_visit`         | no EXCL, no FREE, count 0, no MARK           | MARK set                                     | Relaxed |
//! | `clock_visit`         | no EXCL, no FREE, count 0, MARK              | EXCL (victim), no fence                      | Acquire |
//! | `clear_mark`          | MARK                                         | MARK cleared                                 | Relaxed |
//! | `set_mark`            | count ≥ 1 (caller holds shared)              | MARK set (a scan's page goes first)          | Relaxed |
//! | `evict`               | EXCL                                         | FREE, version + 1, DIRTY, WAITERS and PENDING cleared | Release |
//! | `claim`               | FREE, unreachable, page id already recorded  | EXCL, MARK (flags cleared), no fence         | Release |
//!
//! Every release of `EXCL` and every eviction advances the version, so an
//! optimistic read whose two loads see the same version with neither `EXCL`
//! nor `FREE` overlapped no writer and no eviction.
//!
//! Why the two exclusive acquisitions without a release fence are safe:
//!
//! - **The clock's victim CAS.** The fence after `try_lock_exclusive`
//!   keeps a writer's *data* stores from being seen before its `EXCL`. The
//!   evictor stores no data: its only store to the frame is the checksum
//!   word of the trailer (when it writes a dirty victim back), which lies
//!   outside the data area that optimistic views can read, and it ends
//!   with `evict` (Release, version + 1) or `unlock_exclusive`, so a reader
//!   overlapping it fails validation either way.
//! - **`claim`.** The frame is unreachable to optimistic readers: it left
//!   the table before it was retired, and came off the free list only
//!   after the epoch passed every reader pinned at the time (docs/design.md rule 6), so no
//!   reader can load its data until the loader's release publishes the
//!   page. The store is a `Release` only so that a *waiter* that sees the
//!   claimed state (with `Acquire`) also sees the new page id, which the
//!   loader records before claiming: a waiter reads the state, then the
//!   page id, and if the page id is its page the state's version belongs
//!   to that page's tenancy.
//!
//! `announce_waiter`, `mark_pending` and `withdraw_pending` change only
//! flags: no version, no holder. `announce_waiter` runs under the wait
//! queue's mutex (see [`wait`]); the other two may race anything, and a
//! lost race only delays the flag to the writer's next look.
//!
//! # Seqlock fences
//!
//! Reader: `optimistic_begin` (Acquire) → relaxed data loads →
//! `optimistic_validate` = `fence(Acquire)` + Relaxed load → compare.
//! Writer: `try_lock_exclusive` (Acquire CAS) → `fence(Release)` → relaxed
//! data stores → `unlock_exclusive` (Release). If a reader's data load sees a
//! writer's store, the reader's acquire fence synchronises with the writer's
//! release fence, so the reader's second load sees `EXCL` or a later version.

use crate::sync::{fence, AtomicU64, Ordering};

mod wait;
pub(crate) use wait::{TimedOut, WaitQueues, Want};

/// Exclusive holder present.
pub(crate) const EXCL: u64 = 1 << 63;
/// Frame holds no page.
pub(crate) const FREE: u64 = 1 << 62;
/// Frame differs from disk.
pub(crate) const DIRTY: u64 = 1 << 61;
/// Clock mark.
pub(crate) const MARK: u64 = 1 << 60;
/// Parked waiters to wake.
pub(crate) const WAITERS: u64 = 1 << 59;
/// A writer waits for the shared holders; new shared holders step aside.
pub(crate) const PENDING: u64 = 1 << 58;
const SHARED_SHIFT: u32 = 40;
const SHARED_BITS: u32 = 18;
const SHARED_ONE: u64 = 1 << SHARED_SHIFT;
const SHARED_MASK: u64 = ((1 << SHARED_BITS) - 1) << SHARED_SHIFT;
/// The most shared holders one latch counts.
pub(crate) const MAX_SHARED: u64 = (1 << SHARED_BITS) - 1;
const VERSION_MASK: u64 = (1 << SHARED_SHIFT) - 1;

// The fields tile the word without overlap.
const _: () = assert!(
    EXCL | FREE | DIRTY | MARK | WAITERS | PENDING | SHARED_MASK | VERSION_MASK == u64::MAX
);
const _: () = assert!(PENDING & SHARED_MASK == 0 && (PENDING >> 1) & SHARED_MASK != 0);

/// The version field of a state word.
pub(crate) fn version(state: u64) -> u64 {
    state & VERSION_MASK
}

/// The shared-holder count of a state word.
pub(crate) fn shared_count(state: u64) -> u64 {
    (state & SHARED_MASK) >> SHARED_SHIFT
}

/// `state` with its version advanced by one (wrapping inside the field).
fn bump_version(state: u64) -> u64 {
    (state & !VERSION_MASK) | (version(state).wrapping_add(1) & VERSION_MASK)
}

/// Why a latch could not be taken right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// An exclusive holder (writer, loader, evictor); wait for it.
    Exclusive,
    /// Shared holders block an exclusive request; wait for them.
    Shared,
    /// The frame no longer holds the page; look it up again.
    Free,
    /// The shared count is at [`MAX_SHARED`].
    Overflow,
    /// A writer is waiting for the shared holders (`PENDING`); a new
    /// shared holder waits for it.
    Pending,
}

/// What one clock visit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClockVisit {
    /// Latched, free, or lost a race: leave it.
    Skip,
    /// Mark set; evicted on the next visit unless accessed first.
    Marked,
    /// Exclusive taken for eviction; the caller must `evict` or release.
    Victim,
}

/// One frame's page-state word. See the module docs for the protocol.
#[derive(Debug)]
pub(crate) struct PageLatch {
    state: AtomicU64,
}

impl PageLatch {
    /// A latch for a frame that holds no page.
    pub(crate) fn new_free() -> PageLatch {
        PageLatch {
            state: AtomicU64::new(FREE),
        }
    }

    /// The raw state word.
    pub(crate) fn load(&self) -> u64 {
        self.state.load(Ordering::Acquire)
    }

    /// The atomic itself, for protocol variants in the loom models.
    #[cfg(any(loom, test, feature = "internals"))]
    pub(crate) fn raw(&self) -> &AtomicU64 {
        &self.state
    }

    /// Starts an optimistic read: the version to validate against, or why
    /// the frame cannot be read now.
    #[inline]
    pub(crate) fn optimistic_begin(&self) -> Result<u64, Blocked> {
        let state = self.state.load(Ordering::Acquire);
        if state & FREE != 0 {
            Err(Blocked::Free)
        } else if state & EXCL != 0 {
            Err(Blocked::Exclusive)
        } else {
            Ok(state)
        }
    }

    /// Ends an optimistic read begun at `begin_state`: true iff no writer
    /// and no eviction overlapped it.
    #[inline]
    pub(crate) fn optimistic_validate(&self, begin_state: u64) -> bool {
        fence(Ordering::Acquire);
        let state = self.state.load(Ordering::Relaxed);
        // `begin_state` had neither EXCL nor FREE (`optimistic_begin`), so
        // one masked comparison checks both "still unlatched" and "same
        // version".
        debug_assert!(begin_state & (EXCL | FREE) == 0);
        (state ^ begin_state) & (EXCL | FREE | VERSION_MASK) == 0
    }

    /// Clears the clock mark if `seen_state` has it; writes nothing
    /// otherwise, so a hot page's hit path stays read-only.
    #[inline]
    pub(crate) fn clear_mark(&self, seen_state: u64) {
        if seen_state & MARK != 0 {
            self.state.fetch_and(!MARK, Ordering::Relaxed);
        }
    }

    /// Sets the clock mark, so that the hand's next visit evicts the frame
    /// unless someone reads it first: a page a scan has read. The caller
    /// holds the latch shared (the frame holds its page throughout).
    pub(crate) fn set_mark(&self) {
        debug_assert!(shared_count(self.load()) > 0);
        self.state.fetch_or(MARK, Ordering::Relaxed);
    }

    /// Takes a shared latch.
    #[inline]
    pub(crate) fn try_lock_shared(&self) -> Result<(), Blocked> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & FREE != 0 {
                return Err(Blocked::Free);
            }
            if state & EXCL != 0 {
                return Err(Blocked::Exclusive);
            }
            if state & PENDING != 0 {
                return Err(Blocked::Pending);
            }
            if shared_count(state) == MAX_SHARED {
                return Err(Blocked::Overflow);
            }
            let next = (state + SHARED_ONE) & !MARK;
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => state = actual,
            }
        }
    }

    /// Takes one more shared latch for a thread that already holds one on
    /// this frame, ignoring a pending writer: that writer waits for the
    /// caller's first latch, so making the caller wait for the writer
    /// would deadlock (a recursive read).
    pub(crate) fn lock_shared_again(&self) -> Result<(), Blocked> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            debug_assert!(
                shared_count(state) >= 1 && state & (EXCL | FREE) == 0,
                "{state:#x}"
            );
            if shared_count(state) == MAX_SHARED {
                return Err(Blocked::Overflow);
            }
            match self.state.compare_exchange_weak(
                state,
                state + SHARED_ONE,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => state = actual,
            }
        }
    }

    /// Releases a shared latch. Returns true if parked waiters must be woken.
    #[must_use]
    #[inline]
    pub(crate) fn unlock_shared(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(shared_count(state) >= 1 && state & EXCL == 0, "{state:#x}");
            let mut next = state - SHARED_ONE;
            if shared_count(next) == 0 {
                next &= !WAITERS;
            }
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return state & WAITERS != 0 && next & WAITERS == 0,
                Err(actual) => state = actual,
            }
        }
    }

    /// Takes the exclusive latch, then issues the writer's release fence
    /// so that no data store is seen before the `EXCL` bit.
    #[inline]
    pub(crate) fn try_lock_exclusive(&self) -> Result<(), Blocked> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & FREE != 0 {
                return Err(Blocked::Free);
            }
            if state & EXCL != 0 {
                return Err(Blocked::Exclusive);
            }
            if shared_count(state) != 0 {
                return Err(Blocked::Shared);
            }
            match self.state.compare_exchange_weak(
                state,
                (state | EXCL) & !(MARK | PENDING),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    fence(Ordering::Release);
                    return Ok(());
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Releases the exclusive latch, advancing the version; sets `DIRTY`
    /// when `wrote` (it stays set if it was). Returns true if waiters must
    /// be woken.
    #[must_use]
    #[inline]
    pub(crate) fn unlock_exclusive(&self, wrote: bool) -> bool {
        let dirty = if wrote { DIRTY } else { 0 };
        self.release_exclusive(|state| bump_version(state & !(EXCL | WAITERS)) | dirty)
    }

    /// Releases an exclusive latch taken by `try_upgrade_optimistic` for a
    /// store the file need not see (a frame hint): as `unlock_exclusive`
    /// without a write (version + 1, `DIRTY` as it was), and it also gives
    /// the state it stored, from which the caller's optimistic read goes on
    /// (nothing but the caller's own store happened under its `EXCL`), and
    /// whether waiters must be woken.
    #[must_use]
    pub(crate) fn unlock_exclusive_unlogged(&self) -> (u64, bool) {
        self.release_exclusive_to(|state| bump_version(state & !(EXCL | WAITERS)))
    }

    /// Turns the exclusive latch into one shared latch and clears `DIRTY`
    /// (the caller is about to write the page back and holds off writers).
    /// Advances the version: the caller may have stamped the trailer.
    #[must_use]
    pub(crate) fn downgrade_clean(&self) -> bool {
        self.release_exclusive(|state| {
            bump_version(state & !(EXCL | WAITERS | DIRTY | SHARED_MASK)) | SHARED_ONE
        })
    }

    /// Optimistic → exclusive: takes `EXCL` only if the state still has
    /// the version, and none of the holders, of `begin_state` (which an
    /// optimistic read recorded). Flag changes (mark, waiters, dirty) do
    /// not fail it; a new version, a holder or `FREE` does. On success it
    /// issues the writer's release fence, as `try_lock_exclusive` does.
    pub(crate) fn try_upgrade_optimistic(&self, begin_state: u64) -> bool {
        debug_assert!(begin_state & (EXCL | FREE) == 0);
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if (state ^ begin_state) & (EXCL | FREE | VERSION_MASK) != 0 || shared_count(state) != 0
            {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                (state | EXCL) & !(MARK | PENDING),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    fence(Ordering::Release);
                    return true;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Optimistic → shared: one more shared holder, only if the state
    /// still has the version of `begin_state`, no `EXCL`, no `FREE` and no
    /// pending writer (a reader that would wait gives up instead).
    pub(crate) fn try_share_optimistic(&self, begin_state: u64) -> bool {
        debug_assert!(begin_state & (EXCL | FREE) == 0);
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if (state ^ begin_state) & (EXCL | FREE | VERSION_MASK) != 0
                || state & PENDING != 0
                || shared_count(state) == MAX_SHARED
            {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                (state + SHARED_ONE) & !MARK,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// Shared → exclusive for the only shared holder: fails (and changes
    /// nothing) if anyone else holds the latch shared. The version does
    /// not move (shared holders changed nothing); the release of `EXCL`
    /// advances it. Ends with the writer's release fence.
    pub(crate) fn try_upgrade_shared(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            debug_assert!(
                shared_count(state) >= 1 && state & (EXCL | FREE) == 0,
                "{state:#x}"
            );
            if shared_count(state) != 1 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                ((state - SHARED_ONE) | EXCL) & !(MARK | PENDING),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    fence(Ordering::Release);
                    return true;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Exclusive → shared: publishes the writes (version + 1, `DIRTY` if
    /// `wrote`) and keeps one shared latch. Returns true if waiters must
    /// be woken (readers may come in now).
    #[must_use]
    pub(crate) fn downgrade(&self, wrote: bool) -> bool {
        let dirty = if wrote { DIRTY } else { 0 };
        self.release_exclusive(|state| {
            bump_version(state & !(EXCL | WAITERS | SHARED_MASK)) | SHARED_ONE | dirty
        })
    }

    /// Marks the page dirty again after a failed write-back; the caller
    /// holds a shared latch, so no writer races this.
    pub(crate) fn redirty(&self) {
        debug_assert!(shared_count(self.state.load(Ordering::Relaxed)) >= 1);
        self.state.fetch_or(DIRTY, Ordering::Relaxed);
    }

    /// Ends an exclusive hold by evicting: the frame holds no page any more.
    /// The caller must have removed the page-table entry first and must
    /// have written back any dirty data.
    #[must_use]
    pub(crate) fn evict(&self) -> bool {
        self.release_exclusive(|state| {
            bump_version(state & !(EXCL | WAITERS | DIRTY | PENDING)) | FREE
        })
    }

    /// Takes a free frame for loading. The frame is unreachable (off the
    /// page table and past its epoch grace period), so no CAS is needed;
    /// the store is `Release` so that a waiter that sees the claimed state
    /// sees the page id recorded before it (see the module docs). Use
    /// [`FrameMeta::claim`](crate::frames::FrameMeta::claim), which records
    /// the page id first.
    pub(crate) fn claim_free(&self) {
        let state = self.state.load(Ordering::Relaxed);
        debug_assert!(state & FREE != 0 && state & EXCL == 0, "{state:#x}");
        self.state
            .store(version(state) | EXCL | MARK, Ordering::Release);
    }

    /// Sets `PENDING` if `state` is still current and is a state in which
    /// a writer waits for shared holders. Returns whether `PENDING` is set
    /// now (by this call or before it).
    #[cfg_attr(loom, allow(dead_code))] // loom skips the spin phase
    pub(crate) fn mark_pending(&self, state: u64) -> bool {
        if state & PENDING != 0 {
            return true;
        }
        if state & (EXCL | FREE) != 0 || shared_count(state) == 0 {
            return false;
        }
        self.state
            .compare_exchange(state, state | PENDING, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Clears `PENDING` (and `WAITERS`): a waiting writer gives up. Returns
    /// true if parked threads must be woken: readers held off by the flag,
    /// and other waiting writers, which set it again.
    #[must_use]
    pub(crate) fn withdraw_pending(&self) -> bool {
        let previous = self
            .state
            .fetch_and(!(PENDING | WAITERS), Ordering::Relaxed);
        previous & WAITERS != 0
    }

    /// One visit of the clock hand.
    pub(crate) fn clock_visit(&self) -> ClockVisit {
        let state = self.state.load(Ordering::Relaxed);
        if state & (EXCL | FREE) != 0 || shared_count(state) != 0 {
            return ClockVisit::Skip;
        }
        if state & MARK == 0 {
            // A lost race with an access only costs this page its mark.
            let _ = self.state.compare_exchange(
                state,
                state | MARK,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return ClockVisit::Marked;
        }
        match self
            .state
            .compare_exchange(state, state | EXCL, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => ClockVisit::Victim,
            Err(_) => ClockVisit::Skip,
        }
    }

    #[inline]
    fn release_exclusive(&self, next_of: impl Fn(u64) -> u64) -> bool {
        self.release_exclusive_to(next_of).1
    }

    /// [`release_exclusive`](Self::release_exclusive) that also gives the
    /// state it stored.
    fn release_exclusive_to(&self, next_of: impl Fn(u64) -> u64) -> (u64, bool) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(state & EXCL != 0 && shared_count(state) == 0, "{state:#x}");
            let next = next_of(state);
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (next, state & WAITERS != 0),
                Err(actual) => state = actual,
            }
        }
    }

    /// Sets `WAITERS` (and with `pending`, `PENDING`) if `state` is still
    /// current. Called with the frame's wait-queue mutex held. Returns
    /// whether the flags are set now, so the caller may sleep.
    fn announce_waiter(&self, state: u64, pending: bool) -> bool {
        let flags = if pending { WAITERS | PENDING } else { WAITERS };
        state & flags == flags
            || self
                .state
                .compare_exchange(state, state | flags, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests;
