//! Exhaustive models of a read held for its starter (src/miss/finish.rs,
//! "Held for the starter"): the read's end against the starter's look or
//! its abandon. In every interleaving the frame's latch is released
//! exactly once: afterwards nobody holds it (no shared count, no `EXCL`)
//! and nothing was released twice (an unlock of a free shared count
//! would have underflowed into the exclusive bit).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use pagepool::__model::{self as model, Collected, WantedRead, EXCL};

mod common;
use common::run;

/// Preemption bound of these models when `LOOM_MAX_PREEMPTIONS` is unset.
const INTENTS_BOUND: usize = 3;

fn released(read: &WantedRead) {
    let state = read.state();
    assert_eq!(
        model::shared_count(state),
        0,
        "the latch is still held: {state:#x}"
    );
    assert_eq!(
        state & EXCL,
        0,
        "the read's latch was never released: {state:#x}"
    );
}

/// The starter collects (looking until the read has ended) and releases.
#[test]
fn a_collected_read_is_released_once() {
    run(INTENTS_BOUND, || {
        let read = Arc::new(WantedRead::new());
        let end = {
            let read = read.clone();
            thread::spawn(move || read.end())
        };
        loop {
            match read.collect() {
                Collected::Latched => break,
                Collected::InFlight => thread::yield_now(),
                Collected::Failed => panic!("a read that succeeded looked failed"),
            }
        }
        // The latch is ours: the end has released EXCL, and nobody else
        // may release our shared latch.
        let state = read.state();
        assert_eq!(model::shared_count(state), 1, "{state:#x}");
        read.release_shared();
        end.join().unwrap();
        released(&read);
    });
}

/// The starter abandons the read at any point of its end.
#[test]
fn an_abandoned_read_is_released_once() {
    run(INTENTS_BOUND, || {
        let read = Arc::new(WantedRead::new());
        let end = {
            let read = read.clone();
            thread::spawn(move || read.end())
        };
        if read.abandon() {
            read.release_shared();
        }
        end.join().unwrap();
        released(&read);
    });
}

/// A failed read: the starter finds it failed (never a latch).
#[test]
fn a_failed_read_gives_its_starter_no_latch() {
    run(INTENTS_BOUND, || {
        let read = Arc::new(WantedRead::new());
        let end = {
            let read = read.clone();
            thread::spawn(move || read.fail())
        };
        loop {
            match read.collect() {
                Collected::Failed => break,
                Collected::InFlight => thread::yield_now(),
                Collected::Latched => panic!("a failed read handed over a latch"),
            }
        }
        end.join().unwrap();
        assert_eq!(read.state() & EXCL, 0);
        assert!(!read.abandon(), "nothing to release after a failed read");
    });
}
