//! Exhaustive models of waiting (src/latch/wait.rs): the parking code,
//! which loom reaches because the spin phase is skipped under it. Every
//! model ends only if no wake-up is lost (loom reports a deadlock if all
//! threads sleep) and no waiter waits for a holder that can never leave.
#![cfg(loom)]

mod common;

use common::run;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use pagepool::__model::{self as model, Acquired, Parking, EXCL, PENDING, WAITERS};

/// Preemption bound of these models when `LOOM_MAX_PREEMPTIONS` is unset.
const PARKING_BOUND: usize = 3;

fn assert_unlatched(parking: &Parking) {
    let state = parking.state();
    assert_eq!(model::shared_count(state), 0, "{state:#x}");
    assert_eq!(state & (EXCL | PENDING), 0, "{state:#x}");
}

/// A reader parks against a writer's release.
#[test]
fn a_waiter_parks_against_a_release() {
    run(PARKING_BOUND, || {
        let parking = Arc::new(Parking::new());
        assert_eq!(parking.lock_exclusive(), Acquired::Held);
        let reader = {
            let parking = parking.clone();
            thread::spawn(move || {
                assert_eq!(parking.lock_shared(), Acquired::Held);
                parking.unlock_shared();
            })
        };
        parking.unlock_exclusive();
        reader.join().unwrap();
        assert_unlatched(&parking);
        assert_eq!(parking.state() & WAITERS, 0, "WAITERS left behind");
    });
}

/// Two waiters (a reader and a writer) park against one holder: both get
/// through, whichever wakes first.
#[test]
fn a_waiter_parks_against_a_second_waiter() {
    run(PARKING_BOUND, || {
        let parking = Arc::new(Parking::new());
        assert_eq!(parking.lock_exclusive(), Acquired::Held);
        let reader = {
            let parking = parking.clone();
            thread::spawn(move || {
                assert_eq!(parking.lock_shared(), Acquired::Held);
                parking.unlock_shared();
            })
        };
        let writer = {
            let parking = parking.clone();
            thread::spawn(move || {
                assert_eq!(parking.lock_exclusive(), Acquired::Held);
                parking.unlock_exclusive();
            })
        };
        parking.unlock_exclusive();
        reader.join().unwrap();
        writer.join().unwrap();
        assert_unlatched(&parking);
    });
}

/// A writer held off by a reader sets PENDING; a second reader then waits
/// for the writer (or got in before it asked); the first reader's release
/// lets the writer in, and the writer's release the second reader.
#[test]
fn a_pending_writer_and_a_reader_parked_behind_it_both_get_through() {
    run(PARKING_BOUND, || {
        let parking = Arc::new(Parking::new());
        assert_eq!(parking.lock_shared(), Acquired::Held);
        let writer = {
            let parking = parking.clone();
            thread::spawn(move || {
                assert_eq!(parking.lock_exclusive(), Acquired::Held);
                parking.unlock_exclusive();
            })
        };
        let reader = {
            let parking = parking.clone();
            thread::spawn(move || {
                assert_eq!(parking.lock_shared(), Acquired::Held);
                parking.unlock_shared();
            })
        };
        parking.unlock_shared();
        writer.join().unwrap();
        reader.join().unwrap();
        assert_unlatched(&parking);
    });
}

/// Item 1 of the liveness issue at the latch: a waiter waits for tenant
/// 1's exclusive holder; the holder evicts the frame and claims it again
/// for tenant 2, and then — like a thread that holds `PageMut(Z)` and
/// wants a guard the waiter holds — does not release until the waiter has
/// given up. The waiter must stop waiting when the frame changes hands.
#[test]
fn a_waiter_parks_against_an_eviction_of_its_frame() {
    run(PARKING_BOUND, || {
        let parking = Arc::new(Parking::new());
        let waiter_done = Arc::new(AtomicBool::new(false));
        assert_eq!(parking.lock_exclusive(), Acquired::Held);
        let waiter = {
            let (parking, waiter_done) = (parking.clone(), waiter_done.clone());
            thread::spawn(move || {
                let outcome = parking.wait_optimistic();
                waiter_done.store(true, Ordering::SeqCst);
                outcome
            })
        };
        parking.evict();
        parking.claim(2);
        while !waiter_done.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        parking.unlock_exclusive();
        // The waiter may have seen the holder of tenant 1 leave (Moved:
        // the frame is free or holds tenant 2), never waited past it.
        assert_eq!(waiter.join().unwrap(), Acquired::Moved);
        assert_eq!(parking.tenant(), 2);
    });
}
