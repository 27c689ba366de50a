//! Randomized schedules of optimistic lock coupling and upgrades, through
//! the real pool (64-byte pages under shuttle).
//!
//! Run with `cargo test --release --features shuttle,internals --test shuttle_olc`;
//! `SHUTTLE_ITERATIONS` and `SHUTTLE_SEED` as in `shuttle_pool.rs`.
//!
//! - **Coupling**: a writer moves a parent page between two children,
//!   rewriting each child (with the parent's next generation) before the
//!   parent points at it; a reader couples parent → child. A validated
//!   read must find the child holding the parent's generation. A reader
//!   that skipped either of `child`'s parent checks can validate a child
//!   the writer had already moved on from.
//! - **Hinted coupling**: the same writer, a third thread that reads
//!   other pages so that the children are evicted and their frames
//!   reused, and a reader that couples with `child_hinted` from the hint
//!   in the parent, storing the child's frame there with
//!   `store_frame_hint` whenever the hint was not it (the parent's hint
//!   goes stale when the writer moves it to the other child, or the
//!   child moves frame). A validated child must be the page asked for
//!   (each page holds its own number) and hold the parent's generation. A
//!   hint trusted without its page id, or a hint store that ignored the
//!   parent's version, breaks one of the two.
//! - **Upgrades**: threads increment a counter on a page by reading it
//!   optimistically and upgrading; an upgrade that ignored the version
//!   would lose increments.
#![cfg(feature = "shuttle")]

mod common;

use std::sync::Arc;

use pagepool::{
    BufferPool, FileId, FrameHint, MemoryStorage, OlcError, PageId, PoolConfig, Restart,
};
use shuttle::scheduler::{PctScheduler, RandomScheduler};
use shuttle::{Config, Runner};

fn pool(pages: u64) -> (Arc<BufferPool>, FileId, Vec<PageId>) {
    let pool = BufferPool::open(PoolConfig::new(4).evict_batch(1)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let ids = (0..pages).map(|_| pool.allocate(file).unwrap().0).collect();
    (Arc::new(pool), file, ids)
}

const GENERATIONS: u64 = 3;

fn coupling() {
    let (pool, file, pages) = pool(3);
    let (parent_id, children) = (pages[0], [pages[1], pages[2]]);
    pool.write(parent_id)
        .unwrap()
        .store_u64(0, children[0].page_no())
        .unwrap();
    let writer = {
        let pool = Arc::clone(&pool);
        shuttle::thread::spawn(move || {
            for generation in 1..=GENERATIONS {
                let target = children[(generation % 2) as usize];
                pool.write(target)
                    .unwrap()
                    .store_u64(8, generation)
                    .unwrap();
                let mut parent = pool.write(parent_id).unwrap();
                parent.store_u64(0, target.page_no()).unwrap();
                parent.store_u64(8, generation).unwrap();
            }
        })
    };
    let pin = pool.pin_thread();
    for _ in 0..3 {
        let read = || -> Result<(u64, u64), OlcError> {
            let parent = pin.optimistic_guard(parent_id)?;
            let child_no = parent.view().load_u64(0).map_err(|_| Restart)?;
            let generation = parent.view().load_u64(8).map_err(|_| Restart)?;
            let child = parent.child(PageId::new(file, child_no))?;
            let seen = child.view().load_u64(8).map_err(|_| Restart)?;
            Ok((generation, child.finish(seen)?))
        };
        match read() {
            Ok((generation, seen)) => assert_eq!(seen, generation, "a stale child validated"),
            Err(OlcError::Restart) => {}
            Err(OlcError::Pool(error)) => panic!("{error}"),
        }
    }
    drop(pin);
    writer.join().unwrap();
}

/// Offsets in the hinted model's pages: the parent's child number and
/// generation (as in `coupling`), the child's frame hint (low 32 bits of
/// a word), and every page's own number.
const CHILD_AT: usize = 0;
const GENERATION_AT: usize = 8;
const HINT_AT: usize = 16;
const SELF_AT: usize = 24;

fn hinted_coupling() {
    // Parent, two children, three pages that push the children out of a
    // pool of four frames.
    let (pool, file, pages) = pool(6);
    for &page_id in &pages {
        pool.write(page_id)
            .unwrap()
            .store_u64(SELF_AT, page_id.page_no())
            .unwrap();
    }
    let (parent_id, children, others) = (
        pages[0],
        [pages[1], pages[2]],
        [pages[3], pages[4], pages[5]],
    );
    {
        // No hint yet: the reader stores each one it learns.
        let mut parent = pool.write(parent_id).unwrap();
        parent.store_u64(CHILD_AT, children[0].page_no()).unwrap();
        parent
            .store_u64(HINT_AT, FrameHint::NONE.to_bits().into())
            .unwrap();
    }
    let writer = {
        let pool = Arc::clone(&pool);
        shuttle::thread::spawn(move || {
            for generation in 1..=GENERATIONS {
                let target = children[(generation % 2) as usize];
                pool.write(target)
                    .unwrap()
                    .store_u64(GENERATION_AT, generation)
                    .unwrap();
                let mut parent = pool.write(parent_id).unwrap();
                parent.store_u64(CHILD_AT, target.page_no()).unwrap();
                parent.store_u64(GENERATION_AT, generation).unwrap();
            }
        })
    };
    let evicter = {
        let pool = Arc::clone(&pool);
        shuttle::thread::spawn(move || {
            for &page_id in others.iter().chain(&others) {
                drop(pool.read(page_id).unwrap());
            }
        })
    };
    let pin = pool.pin_thread();
    for _ in 0..4 {
        let read = || -> Result<(u64, u64, u64, u64), OlcError> {
            let mut parent = pin.optimistic_guard(parent_id)?;
            let load = |guard: &pagepool::OptimisticGuard<'_>, offset| {
                guard.view().load_u64(offset).map_err(|_| Restart)
            };
            let child_no = load(&parent, CHILD_AT)?;
            let generation = load(&parent, GENERATION_AT)?;
            let hint = FrameHint::from_bits(load(&parent, HINT_AT)? as u32);
            let child = parent.child_hinted(PageId::new(file, child_no), hint)?;
            let own_no = load(&child, SELF_AT)?;
            let seen = load(&child, GENERATION_AT)?;
            if child.frame_hint() != hint {
                // A refused store leaves the guard as it was.
                let _ = parent.store_frame_hint(HINT_AT, child.frame_hint());
            }
            let (own_no, seen) = child.finish((own_no, seen))?;
            // The parent's guard goes on after its own store: what it
            // reads now must be what it read before.
            let again = load(&parent, GENERATION_AT)?;
            parent.check()?;
            assert_eq!(again, generation, "a hint store hid a writer's change");
            Ok((child_no, own_no, generation, seen))
        };
        match read() {
            Ok((child_no, own_no, generation, seen)) => {
                assert_eq!(own_no, child_no, "a hint gave another page");
                assert_eq!(seen, generation, "a stale child validated");
            }
            Err(OlcError::Restart) => {}
            Err(OlcError::Pool(error)) => panic!("{error}"),
        }
    }
    drop(pin);
    writer.join().unwrap();
    evicter.join().unwrap();
}

const INCREMENTERS: usize = 2;
const INCREMENTS: u64 = 2;

fn upgrades() {
    let (pool, _, pages) = pool(1);
    let page_id = pages[0];
    let threads: Vec<_> = (0..INCREMENTERS)
        .map(|_| {
            let pool = Arc::clone(&pool);
            shuttle::thread::spawn(move || {
                let pin = pool.pin_thread();
                for _ in 0..INCREMENTS {
                    loop {
                        let guard = pin.optimistic_guard(page_id).unwrap();
                        let value = guard.view().load_u64(0).unwrap();
                        if let Ok(mut page) = guard.upgrade() {
                            page.store_u64(0, value + 1).unwrap();
                            break;
                        }
                        // Back off as an engine would: the holder that
                        // made the upgrade fail must get to run.
                        shuttle::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let total = pool
        .optimistic(page_id, |v| v.load_u64(0))
        .unwrap()
        .unwrap();
    assert_eq!(
        total,
        INCREMENTERS as u64 * INCREMENTS,
        "an increment was lost"
    );
}

#[test]
fn coupling_under_pct_schedules() {
    Runner::new(
        PctScheduler::new_from_seed(common::shuttle_seed(), 3, common::shuttle_iterations()),
        Config::new(),
    )
    .run(coupling);
}

#[test]
fn coupling_under_random_schedules() {
    Runner::new(
        RandomScheduler::new_from_seed(common::shuttle_seed(), common::shuttle_iterations()),
        Config::new(),
    )
    .run(coupling);
}

#[test]
fn hinted_coupling_under_pct_schedules() {
    Runner::new(
        PctScheduler::new_from_seed(common::shuttle_seed(), 3, common::shuttle_iterations()),
        Config::new(),
    )
    .run(hinted_coupling);
}

#[test]
fn hinted_coupling_under_random_schedules() {
    Runner::new(
        RandomScheduler::new_from_seed(common::shuttle_seed(), common::shuttle_iterations()),
        Config::new(),
    )
    .run(hinted_coupling);
}

#[test]
fn upgrades_under_pct_schedules() {
    Runner::new(
        PctScheduler::new_from_seed(common::shuttle_seed(), 3, common::shuttle_iterations()),
        Config::new(),
    )
    .run(upgrades);
}
