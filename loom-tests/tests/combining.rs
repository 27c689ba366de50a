//! Exhaustive model of combined io_uring entries (src/io/combining.rs):
//! submitters push entries (a tail the kernel reads), and one at a time
//! enters the kernel for all of them. In every interleaving, once every
//! submitter has returned, some entry has read a tail that covers every
//! push: no entry is left in the queue with no one to submit it.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use pagepool::__model::{Combining, Turn};

mod common;
use common::run;

/// Preemption bound of this model when `LOOM_MAX_PREEMPTIONS` is unset.
const COMBINING_BOUND: usize = 2;

/// The ring as the model sees it: the submission queue's tail, and the
/// highest tail an entry into the kernel has read.
#[derive(Default)]
struct Ring {
    tail: AtomicU32,
    submitted: AtomicU32,
    combining: Combining,
}

impl Ring {
    /// One submitter: push one entry (the tail's release store), then
    /// enter or leave it to the thread entering.
    fn submit(&self) {
        self.tail.fetch_add(1, Ordering::Release);
        if self.combining.pushed() == Turn::Left {
            return;
        }
        loop {
            // The kernel submits everything published before it reads.
            let tail = self.tail.load(Ordering::Acquire);
            self.submitted.fetch_max(tail, Ordering::Relaxed);
            if !self.combining.again() {
                return;
            }
        }
    }
}

#[test]
fn every_pushed_entry_is_entered_by_someone() {
    run(COMBINING_BOUND, || {
        let ring = Arc::new(Ring::default());
        let submitters: Vec<_> = (0..3)
            .map(|_| {
                let ring = ring.clone();
                thread::spawn(move || ring.submit())
            })
            .collect();
        for submitter in submitters {
            submitter.join().unwrap();
        }
        assert_eq!(
            ring.submitted.load(Ordering::Relaxed),
            3,
            "an entry was pushed and never submitted"
        );
    });
}
