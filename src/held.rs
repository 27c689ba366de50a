//! The latches one thread holds, so that a wait that only the thread itself
//! could end is refused instead of entered.
//!
//! A thread that holds a shared guard on a page and asks for its exclusive
//! latch would wait for itself; so would one that holds the exclusive latch
//! and asks for any latch on the page, or flushes it. The latch word counts
//! shared holders but does not say who they are, so each thread keeps its
//! own record: every guard writes its frame here when it is created and
//! erases it when it is dropped, and the pool's internal holds (a loader
//! filling a frame, an evictor or a flush writing one back while user code
//! — a `Storage`, the WAL hook — runs) do the same.
//!
//! Only the owning thread touches the record (guards are not `Send`, so
//! they are dropped where they were made). Writing it is a few
//! instructions on a thread-local line; reading it happens only on the
//! slow path, just before a thread would wait for a frame.

use std::cell::{Cell, RefCell};

/// The kind of latch a guard holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardKind {
    /// A shared latch ([`PageRef`](crate::PageRef)).
    Shared,
    /// The exclusive latch ([`PageMut`](crate::PageMut)).
    Exclusive,
}

impl std::fmt::Display for GuardKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuardKind::Shared => "shared",
            GuardKind::Exclusive => "exclusive",
        })
    }
}

/// Entries held without allocating; a thread that holds more spills the
/// rest into a vector.
const INLINE: usize = 8;

/// One thread's held latches, as `frame_id << 1 | exclusive` codes.
#[derive(Debug, Default)]
pub(crate) struct HeldLatches {
    inline: [Cell<u64>; INLINE],
    len: Cell<usize>,
    spill: RefCell<Vec<u64>>,
}

fn code(frame_id: usize, kind: GuardKind) -> u64 {
    ((frame_id as u64) << 1) | u64::from(kind == GuardKind::Exclusive)
}

impl HeldLatches {
    /// Records a latch this thread has just taken.
    #[inline]
    pub(crate) fn acquired(&self, frame_id: usize, kind: GuardKind) {
        let len = self.len.get();
        match self.inline.get(len) {
            Some(cell) => {
                cell.set(code(frame_id, kind));
                self.len.set(len + 1);
            }
            None => self.spill.borrow_mut().push(code(frame_id, kind)),
        }
    }

    /// Erases a latch this thread is releasing (one of them, if it holds
    /// several of the same kind on the frame).
    #[inline]
    pub(crate) fn released(&self, frame_id: usize, kind: GuardKind) {
        let wanted = code(frame_id, kind);
        let len = self.len.get();
        // The common case: the newest latch goes first, nothing spilled.
        if let Some(last) = len.checked_sub(1).filter(|&last| last + 1 < INLINE) {
            if self.inline.get(last).map(Cell::get) == Some(wanted) {
                self.len.set(last);
                return;
            }
        }
        self.release_any(wanted, len);
    }

    #[inline(never)]
    fn release_any(&self, wanted: u64, len: usize) {
        if let Some(index) = (0..len).rev().find(|&i| self.inline[i].get() == wanted) {
            self.inline[index].set(self.inline[len - 1].get());
            // Only a full inline array can have spilled.
            let spilled = if len == INLINE {
                self.spill.borrow_mut().pop()
            } else {
                None
            };
            match spilled {
                Some(spilled) => self.inline[len - 1].set(spilled),
                None => self.len.set(len - 1),
            }
            return;
        }
        self.release_spilled(wanted);
    }

    #[cold]
    fn release_spilled(&self, wanted: u64) {
        let mut spill = self.spill.borrow_mut();
        let index = spill.iter().rposition(|&held| held == wanted);
        debug_assert!(index.is_some(), "released a latch that was not recorded");
        if let Some(index) = index {
            spill.swap_remove(index);
        }
    }

    /// The strongest latch this thread holds on `frame_id`, if any.
    pub(crate) fn holds(&self, frame_id: usize) -> Option<GuardKind> {
        let shared = code(frame_id, GuardKind::Shared);
        let spill = self.spill.borrow();
        let held = self.inline[..self.len.get()]
            .iter()
            .map(Cell::get)
            .chain(spill.iter().copied());
        let mut found = None;
        for entry in held {
            if entry == shared | 1 {
                return Some(GuardKind::Exclusive);
            }
            if entry == shared {
                found = Some(GuardKind::Shared);
            }
        }
        found
    }

    /// Records a latch the pool itself holds on this thread while it runs
    /// code that could call back into the pool (a `Storage`, the WAL
    /// hook), until the returned token drops.
    pub(crate) fn hold(&self, frame_id: usize, kind: GuardKind) -> Holding<'_> {
        self.acquired(frame_id, kind);
        Holding {
            held: self,
            frame_id,
            kind,
        }
    }

    /// How many latches this thread holds.
    pub(crate) fn count(&self) -> usize {
        self.len.get() + self.spill.borrow().len()
    }
}

/// A latch recorded by [`HeldLatches::hold`], erased when this drops.
pub(crate) struct Holding<'a> {
    held: &'a HeldLatches,
    frame_id: usize,
    kind: GuardKind,
}

impl Holding<'_> {
    /// The pool turned its exclusive latch into a shared one.
    pub(crate) fn downgrade(&mut self) {
        debug_assert_eq!(self.kind, GuardKind::Exclusive);
        self.held.released(self.frame_id, self.kind);
        self.kind = GuardKind::Shared;
        self.held.acquired(self.frame_id, self.kind);
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.held.released(self.frame_id, self.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_nest_spill_and_erase_in_any_order() {
        let held = HeldLatches::default();
        assert_eq!(held.holds(3), None);
        held.acquired(3, GuardKind::Shared);
        held.acquired(3, GuardKind::Shared);
        assert_eq!(held.holds(3), Some(GuardKind::Shared));
        for frame_id in 10..30 {
            held.acquired(frame_id, GuardKind::Exclusive);
        }
        assert_eq!(held.count(), 22);
        assert_eq!(held.holds(25), Some(GuardKind::Exclusive));
        held.released(3, GuardKind::Shared);
        assert_eq!(held.holds(3), Some(GuardKind::Shared), "one of two left");
        for frame_id in (10..30).step_by(2) {
            held.released(frame_id, GuardKind::Exclusive);
        }
        held.released(3, GuardKind::Shared);
        assert_eq!(held.holds(3), None);
        assert_eq!(held.holds(10), None);
        assert_eq!(held.holds(11), Some(GuardKind::Exclusive));
        for frame_id in (11..30).step_by(2) {
            held.released(frame_id, GuardKind::Exclusive);
        }
        assert_eq!(held.count(), 0);
    }

    #[test]
    fn exclusive_is_reported_over_shared() {
        let held = HeldLatches::default();
        held.acquired(5, GuardKind::Shared);
        held.acquired(5, GuardKind::Exclusive);
        assert_eq!(held.holds(5), Some(GuardKind::Exclusive));
        held.released(5, GuardKind::Exclusive);
        assert_eq!(held.holds(5), Some(GuardKind::Shared));
    }
}
