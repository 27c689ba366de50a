//! Combined entries: one submitter at a time enters the kernel, for every
//! request pushed meanwhile.
//!
//! Entering the kernel (`io_uring_enter`) to submit takes the ring's lock
//! in the kernel (`uring_lock`) and rings the device's doorbell (on a
//! virtual machine, a write that exits to the hypervisor). Two threads
//! that enter at once spin on that lock, and the second usually finds
//! nothing left to submit: the first took every entry published before
//! it read the tail. So a submitter that finds another thread entering
//! does not enter: it leaves a mark, and the thread that is entering
//! enters once more for it (flat combining).
//!
//! # The word
//!
//! | bit | name | set by | cleared by |
//! |-----|------|--------|------------|
//! | 0 | `ENTERING` | a submitter that finds it clear: it is now the enterer | the enterer, when no `MORE` is set |
//! | 1 | `MORE` | a submitter that finds `ENTERING` set, after its push | the enterer, before it enters again |
//!
//! A submitter, after pushing its entries (published by the tail's
//! release store): one RMW. `ENTERING` clear: set it and enter, then RMW
//! again: `MORE` set → clear it and enter again; else clear `ENTERING` and
//! return. `ENTERING` set: set `MORE` and return without entering.
//!
//! # Invariants
//!
//! 1. At most one thread is the enterer (`ENTERING` is set by the RMW that
//!    found it clear, and cleared only by that thread).
//! 2. A submitter that set `MORE` did so before (in the word's
//!    modification order) the enterer's RMW that clears it, or that ends
//!    its turn: the enterer's last RMW ends its turn only if it reads no
//!    `MORE`. So the mark is read by an RMW of the enterer that is followed
//!    by another entry; the mark's RMW released the push and that RMW
//!    acquires it, so the entry sees and submits the entries.
//! 3. An enterer enters once more per RMW that found `MORE`: its turn
//!    ends once submitters stop coming (each comes with entries, which
//!    the completion queue's reservation bounds).
//!
//! An enterer's turn has no bound in time: under a steady stream of
//! submitters it keeps entering for them (each entry submits only entries
//! pushed since the last, and every push holds a completion-queue
//! reservation, so it never enters for nothing). A thread that must not
//! be held so (one holding frame latches, such as the writer of a batch)
//! is held at most while others keep pushing. (Turn lengths are not
//! measured.)
//!
//! The reaper's own entry (`submit_and_wait`) stays outside this word: it
//! submits whatever is queued and then sleeps, and needs no one else.
//!
//! `loom-tests/tests/combining.rs` checks invariant 2 exhaustively: three
//! submitters, no reaper, and every pushed entry is seen by an entry.

use std::sync::atomic::Ordering;

use crate::sync::AtomicU32;

/// A thread is entering the kernel for the ring's submissions.
const ENTERING: u32 = 1;
/// Entries were pushed while it was: it must enter again.
const MORE: u32 = 2;

/// The word of the module docs.
#[derive(Debug, Default)]
pub struct Combining {
    word: AtomicU32,
}

/// What a submitter that has pushed does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Enter the kernel, then [`Combining::again`].
    Enter,
    /// Nothing: the thread that is entering enters again for it.
    Left,
}

impl Combining {
    /// A submitter, after its push.
    pub fn pushed(&self) -> Turn {
        // One RMW: a mark set by a second RMW could land after the
        // enterer's last `again` and be left with no one to enter for it.
        let step = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                debug_assert!(word & ENTERING != 0 || word == 0, "MORE without an enterer");
                Some(if word & ENTERING == 0 {
                    ENTERING
                } else {
                    ENTERING | MORE
                })
            });
        let before = step.unwrap_or_else(|word| word);
        if before & ENTERING == 0 {
            Turn::Enter
        } else {
            Turn::Left
        }
    }

    /// The enterer, after an entry: true if it must enter again (entries
    /// were pushed meanwhile by submitters that left them to it); false
    /// ends its turn.
    pub fn again(&self) -> bool {
        let step = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                debug_assert!(word & ENTERING != 0, "again() without the turn");
                Some(if word & MORE != 0 { ENTERING } else { 0 })
            });
        let before = step.unwrap_or_else(|word| word);
        before & MORE != 0
    }
}

#[cfg(all(test, not(any(loom, feature = "shuttle"))))]
mod tests {
    use super::*;

    #[test]
    fn a_submitter_that_finds_an_enterer_leaves_its_entries_to_it() {
        let combining = Combining::default();
        assert_eq!(combining.pushed(), Turn::Enter);
        assert_eq!(combining.pushed(), Turn::Left);
        assert_eq!(combining.pushed(), Turn::Left);
        assert!(combining.again(), "two marks: one more entry covers both");
        assert!(!combining.again(), "nothing pushed since");
        assert_eq!(combining.pushed(), Turn::Enter, "the turn has ended");
        assert!(!combining.again());
    }
}
