//! Undo on every way out: a step the pool must take back if the code that
//! follows returns early or unwinds.
//!
//! The pool holds frames exclusively while it runs user code: a
//! [`Storage`](crate::Storage) filling or writing a frame, the write-ahead
//! log hook before a write-back. If that code panics, the frame must not
//! stay latched (every later access of the page would wait forever): each
//! such hold is paired with an [`Undo`] that releases or evicts the frame
//! and wakes its waiters, and that the success path disarms.

/// Runs its closure when dropped, unless [`disarm`](Undo::disarm)ed first:
/// on an early return (`?`) or while a panic unwinds through the scope.
#[must_use = "an undo dropped at once runs at once"]
pub(crate) struct Undo<F: FnOnce()> {
    undo: Option<F>,
}

impl<F: FnOnce()> Undo<F> {
    /// Arms `undo`.
    pub(crate) fn new(undo: F) -> Undo<F> {
        Undo { undo: Some(undo) }
    }

    /// The step stands: do not undo it.
    pub(crate) fn disarm(mut self) {
        self.undo = None;
    }
}

impl<F: FnOnce()> Drop for Undo<F> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn runs_on_early_return_and_unwind_but_not_once_disarmed() {
        let undone = Cell::new(0);
        let early = || -> Result<(), ()> {
            let _undo = Undo::new(|| undone.set(undone.get() + 1));
            Err(())?;
            Ok(())
        };
        assert!(early().is_err());
        assert_eq!(undone.get(), 1);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _undo = Undo::new(|| undone.set(undone.get() + 1));
            panic!("user code");
        }));
        assert!(unwound.is_err());
        assert_eq!(undone.get(), 2);
        Undo::new(|| undone.set(undone.get() + 1)).disarm();
        assert_eq!(undone.get(), 2);
    }
}
