//! Exhaustive models of the page-state word (src/latch.rs), one per row
//! group of its transition table, and of the seqlock fences.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use pagepool::__model::{self as model, Latch, EXCL};

/// A page of two data words guarded by a latch, as the pool keeps frames.
struct Page {
    latch: Latch,
    words: [AtomicU64; 2],
}

impl Page {
    fn new() -> Page {
        Page {
            latch: Latch::new_resident(),
            words: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

mod common;
use common::run;

/// Preemption bound of these models when `LOOM_MAX_PREEMPTIONS` is unset.
const LATCH_BOUND: usize = 4;

/// The production writer: exclusive latch (with its release fence), two
/// relaxed stores of the same new value, release.
fn write(page: &Page, value: u64) {
    while !page.latch.try_lock_exclusive() {
        thread::yield_now();
    }
    page.words[0].store(value, Ordering::Relaxed);
    page.words[1].store(value, Ordering::Relaxed);
    page.latch.unlock_exclusive();
}

/// The production reader: both data words, if the version validates.
fn read_optimistically(page: &Page) -> Option<(u64, u64)> {
    let begin = page.latch.optimistic_begin()?;
    let a = page.words[0].load(Ordering::Relaxed);
    let b = page.words[1].load(Ordering::Relaxed);
    page.latch.optimistic_validate(begin).then_some((a, b))
}

/// Also the control for the two fence-removal models below: the same shape
/// with the production reader and writer never fails.
#[test]
fn optimistic_read_racing_writer_never_validates_a_torn_page() {
    run(LATCH_BOUND, || {
        let page = Arc::new(Page::new());
        let writer = {
            let page = page.clone();
            thread::spawn(move || write(&page, 1))
        };
        if let Some((a, b)) = read_optimistically(&page) {
            assert_eq!(a, b, "validated a torn page");
        }
        writer.join().unwrap();
    });
}

/// Each thread tries its latch once (no spinning, so the model stays
/// small at a higher preemption bound) and touches the guarded data only
/// if it got it: loom reports any two accesses that overlap.
#[test]
fn shared_and_exclusive_holders_exclude_each_other_and_the_count_returns_to_zero() {
    fn read_once(latch: &Latch, data: &UnsafeCell<u64>) {
        if latch.try_lock_shared() {
            // SAFETY (model): loom reports this read if it races a write.
            data.with(|value| unsafe { assert!(*value <= 1) });
            latch.unlock_shared();
        }
    }
    run(LATCH_BOUND, || {
        let latch = Arc::new(Latch::new_resident());
        let data = Arc::new(UnsafeCell::new(0u64));
        let reader = {
            let (latch, data) = (latch.clone(), data.clone());
            thread::spawn(move || read_once(&latch, &data))
        };
        let writer = {
            let (latch, data) = (latch.clone(), data.clone());
            thread::spawn(move || {
                let won = latch.try_lock_exclusive();
                if won {
                    // SAFETY (model): loom reports this write if it races anything.
                    data.with_mut(|value| unsafe { *value += 1 });
                    latch.unlock_exclusive();
                }
                won
            })
        };
        read_once(&latch, &data);
        reader.join().unwrap();
        let wrote = writer.join().unwrap();
        let state = latch.state();
        assert_eq!(model::shared_count(state), 0);
        assert_eq!(state & EXCL, 0);
        assert_eq!(
            model::version(state),
            1 + u64::from(wrote),
            "one bump per exclusive release"
        );
    });
}

/// The reader of the seqlock with its acquire fence removed.
fn read_without_acquire_fence(page: &Page) -> Option<(u64, u64)> {
    let begin = page.latch.raw().load(Ordering::Acquire);
    if begin & EXCL != 0 {
        return None;
    }
    let a = page.words[0].load(Ordering::Relaxed);
    let b = page.words[1].load(Ordering::Relaxed);
    let end = page.latch.raw().load(Ordering::Relaxed); // no fence(Acquire) before
    (end & EXCL == 0 && model::version(end) == model::version(begin)).then_some((a, b))
}

/// The writer of the seqlock with its release fence removed.
fn write_without_release_fence(page: &Page, value: u64) {
    loop {
        let state = page.latch.raw().load(Ordering::Relaxed);
        if state & EXCL == 0
            && page
                .latch
                .raw()
                .compare_exchange(state, state | EXCL, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            break; // no fence(Release) after
        }
        thread::yield_now();
    }
    page.words[0].store(value, Ordering::Relaxed);
    page.words[1].store(value, Ordering::Relaxed);
    page.latch.unlock_exclusive();
}

#[test]
#[should_panic(expected = "validated a torn page")]
fn without_the_readers_acquire_fence_a_torn_read_validates() {
    run(LATCH_BOUND, || {
        let page = Arc::new(Page::new());
        let writer = {
            let page = page.clone();
            thread::spawn(move || write(&page, 1))
        };
        if let Some((a, b)) = read_without_acquire_fence(&page) {
            assert_eq!(a, b, "validated a torn page");
        }
        writer.join().unwrap();
    });
}

#[test]
#[should_panic(expected = "validated a torn page")]
fn without_the_writers_release_fence_a_torn_read_validates() {
    run(LATCH_BOUND, || {
        let page = Arc::new(Page::new());
        let writer = {
            let page = page.clone();
            thread::spawn(move || write_without_release_fence(&page, 1))
        };
        if let Some((a, b)) = read_optimistically(&page) {
            assert_eq!(a, b, "validated a torn page");
        }
        writer.join().unwrap();
    });
}

/// `try_upgrade_optimistic`: two threads increment a counter by reading it
/// optimistically and upgrading from the version they read; an upgrade
/// from a stale version must fail, so no increment is lost. A third
/// thread's optimistic read never validates a torn page.
#[test]
fn upgrades_from_a_read_version_lose_no_update() {
    run(3, || {
        let page = Arc::new(Page::new());
        let incrementers: Vec<_> = (0..2)
            .map(|_| {
                let page = page.clone();
                thread::spawn(move || loop {
                    let Some(begin) = page.latch.optimistic_begin() else {
                        thread::yield_now();
                        continue;
                    };
                    let value = page.words[0].load(Ordering::Relaxed);
                    if page.latch.try_upgrade_optimistic(begin) {
                        page.words[0].store(value + 1, Ordering::Relaxed);
                        page.words[1].store(value + 1, Ordering::Relaxed);
                        page.latch.unlock_exclusive();
                        return;
                    }
                    thread::yield_now();
                })
            })
            .collect();
        if let Some((a, b)) = read_optimistically(&page) {
            assert_eq!(a, b, "a torn read validated");
        }
        for thread in incrementers {
            thread.join().unwrap();
        }
        assert_eq!(
            page.words[0].load(Ordering::Relaxed),
            2,
            "an increment was lost"
        );
        assert_eq!(model::shared_count(page.latch.state()), 0);
        assert_eq!(page.latch.state() & EXCL, 0);
    });
}

/// `try_upgrade_shared`, `downgrade` and `try_share_optimistic`: a shared
/// holder upgrades only while it is the only one, writes, and downgrades
/// (publishing the version); a second thread's optimistic read that turns
/// into a shared latch sees the page whole, before or after.
#[test]
fn shared_upgrade_and_downgrade_exclude_and_publish() {
    run(LATCH_BOUND, || {
        let page = Arc::new(Page::new());
        let writer = {
            let page = page.clone();
            thread::spawn(move || {
                while !page.latch.try_lock_shared() {
                    thread::yield_now();
                }
                if page.latch.try_upgrade_shared() {
                    page.words[0].store(7, Ordering::Relaxed);
                    page.words[1].store(7, Ordering::Relaxed);
                    page.latch.downgrade();
                }
                page.latch.unlock_shared();
            })
        };
        if let Some(begin) = page.latch.optimistic_begin() {
            let a = page.words[0].load(Ordering::Relaxed);
            if page.latch.try_share_optimistic(begin) {
                // Shared now, at the version read: no writer since.
                let b = page.words[1].load(Ordering::Relaxed);
                assert_eq!(a, b, "a shared latch from a stale version");
                page.latch.unlock_shared();
            }
        }
        writer.join().unwrap();
        assert_eq!(model::shared_count(page.latch.state()), 0);
        assert_eq!(page.latch.state() & EXCL, 0);
    });
}
