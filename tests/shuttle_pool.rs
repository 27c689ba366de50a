//! Randomized schedule exploration of the whole pool with shuttle.
//!
//! Run with `cargo test --release --features shuttle,internals --test shuttle_pool`.
//! `SHUTTLE_ITERATIONS` sets the iteration count (default 10,000 per
//! scheduler: at 2,000, a planted bug, `skip-version-bump`, was caught
//! under two seeds of five once the hit paths were inlined, at 10,000
//! under every seed tried); the schedules come from a fixed seed (`SHUTTLE_SEED=N` for
//! others), so a run is repeatable. A failing schedule is saved under
//! `target/shuttle-failures/`; replay it with
//! `SHUTTLE_REPLAY=<file> cargo test --release --features shuttle,internals --test shuttle_pool replay -- --ignored`.
//!
//! The scenario: three threads share a 3-frame pool over in-memory storage
//! holding 8 pages (growing to 12), mixing optimistic and shared reads,
//! writes, allocations and flushes; then the pool is closed and reopened
//! and the threads go again. Each page's content is derived from a
//! per-page write counter, so every read is checked against the model:
//! the page is whole, its counter never goes back for a thread, and after
//! every round it equals the number of writes made to it.
#![cfg(feature = "shuttle")]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pagepool::{BufferPool, FileId, MemoryStorage, PageId, PoolConfig, PAGE_DATA_SIZE};
use shuttle::rand::{thread_rng, Rng};
use shuttle::scheduler::{PctScheduler, RandomScheduler, ReplayScheduler, Scheduler};
use shuttle::{Config, FailurePersistence, Runner};

const WORDS: usize = PAGE_DATA_SIZE / 8;
const INITIAL_PAGES: u64 = 8;
const MAX_PAGES: u64 = 12;
const THREADS: usize = 3;
const OPS_PER_THREAD: usize = 8;
const ROUNDS: usize = 2;

fn word(page_no: u64, counter: u64, index: usize) -> u64 {
    match index {
        0 => counter,
        1 => page_no,
        _ => (counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ page_no.rotate_left(29) ^ index as u64)
            .wrapping_mul(0xFF51_AFD7_ED55_8CCD),
    }
}

/// The counter of a whole page, or a description of how it is broken.
fn counter_of(page_no: u64, words: impl Fn(usize) -> u64) -> Result<u64, String> {
    let counter = words(0);
    for index in 0..WORDS {
        let expected = word(page_no, counter, index);
        if words(index) != expected {
            return Err(format!(
                "page {page_no} counter {counter}: word {index} broken"
            ));
        }
    }
    Ok(counter)
}

/// The sequential model: writes per page, and which pages exist.
struct Model {
    writes: Vec<AtomicU64>,
    ready: Vec<AtomicBool>,
    reserved: AtomicU64,
}

fn open(storage: &Arc<MemoryStorage>) -> (Arc<BufferPool>, FileId) {
    let config = PoolConfig::new(3).evict_batch(1).optimistic_retries(2);
    let pool = BufferPool::open(config).unwrap();
    let file = pool.open_storage(Box::new(storage.clone())).unwrap();
    (Arc::new(pool), file)
}

fn write(pool: &BufferPool, model: &Model, page_id: PageId) {
    let mut page = pool.write(page_id).unwrap();
    let page_no = page_id.page_no();
    let view = page.view();
    let counter = counter_of(page_no, |i| view.load_u64(i * 8).unwrap()).unwrap() + 1;
    for index in 0..WORDS {
        page.store_u64(index * 8, word(page_no, counter, index))
            .unwrap();
    }
    model.writes[page_no as usize].fetch_add(1, Ordering::SeqCst);
}

/// One thread's random operations. A `pinned` worker holds a `ThreadPin`
/// throughout and reads optimistically through it (session reads, which
/// lean on its pin), while the others evict and wait for its epoch.
fn worker(pool: &BufferPool, file: FileId, model: &Model, pinned: bool) {
    let pin = pinned.then(|| pool.pin_thread());
    let mut rng = thread_rng();
    let mut last_seen = [0u64; MAX_PAGES as usize];
    for _ in 0..OPS_PER_THREAD {
        let page_no = rng.gen_range(0..MAX_PAGES);
        if !model.ready[page_no as usize].load(Ordering::SeqCst) {
            continue;
        }
        let page_id = PageId::new(file, page_no);
        let seen = match rng.gen_range(0..100) {
            0..=34 => {
                let read = |view: pagepool::OptimisticView<'_>| {
                    counter_of(page_no, |i| view.load_u64(i * 8).unwrap_or(u64::MAX))
                };
                Some(match &pin {
                    Some(pin) => pin.optimistic(page_id, read).unwrap(),
                    None => pool.optimistic(page_id, read).unwrap(),
                })
            }
            35..=54 => {
                let page = pool.read(page_id).unwrap();
                let view = page.view();
                Some(counter_of(page_no, |i| view.load_u64(i * 8).unwrap()))
            }
            55..=84 => {
                write(pool, model, page_id);
                None
            }
            85..=92 if model.reserved.fetch_add(1, Ordering::SeqCst) < MAX_PAGES => {
                let (new_id, mut page) = pool.allocate(file).unwrap();
                for index in 0..WORDS {
                    page.store_u64(index * 8, word(new_id.page_no(), 0, index))
                        .unwrap();
                }
                drop(page);
                model.ready[new_id.page_no() as usize].store(true, Ordering::SeqCst);
                None
            }
            85..=96 => {
                pool.flush(page_id).unwrap();
                None
            }
            _ => {
                pool.flush_all().unwrap();
                None
            }
        };
        if let Some(result) = seen {
            let counter = result.unwrap_or_else(|e| panic!("broken read: {e}"));
            let last = &mut last_seen[page_no as usize];
            assert!(
                counter >= *last,
                "page {page_no} went back from {last} to {counter}"
            );
            *last = counter;
        }
    }
}

fn scenario() {
    let storage = Arc::new(MemoryStorage::new());
    let model = Arc::new(Model {
        writes: (0..MAX_PAGES).map(|_| AtomicU64::new(0)).collect(),
        ready: (0..MAX_PAGES)
            .map(|n| AtomicBool::new(n < INITIAL_PAGES))
            .collect(),
        reserved: AtomicU64::new(INITIAL_PAGES),
    });
    {
        let (pool, file) = open(&storage);
        for page_no in 0..INITIAL_PAGES {
            let (_, mut page) = pool.allocate(file).unwrap();
            for index in 0..WORDS {
                page.store_u64(index * 8, word(page_no, 0, index)).unwrap();
            }
        }
        Arc::into_inner(pool).unwrap().close().unwrap();
    }
    for _ in 0..ROUNDS {
        let (pool, file) = open(&storage);
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (pool, model) = (pool.clone(), model.clone());
                shuttle::thread::spawn(move || worker(&pool, file, &model, thread % 2 == 1))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // Close, reopen, and check every page against the model.
        Arc::into_inner(pool).unwrap().close().unwrap();
        let (pool, file) = open(&storage);
        for page_no in 0..MAX_PAGES {
            if !model.ready[page_no as usize].load(Ordering::SeqCst) {
                continue;
            }
            let counter = pool
                .optimistic(PageId::new(file, page_no), |view| {
                    counter_of(page_no, |i| view.load_u64(i * 8).unwrap())
                })
                .unwrap()
                .unwrap();
            assert_eq!(
                counter,
                model.writes[page_no as usize].load(Ordering::SeqCst)
            );
        }
        Arc::into_inner(pool).unwrap().close().unwrap();
    }
}

fn failure_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../shuttle-failures");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(scheduler: impl Scheduler + 'static) {
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(failure_dir()));
    Runner::new(scheduler, config).run(scenario);
}

#[test]
fn pool_under_pct_schedules() {
    run(PctScheduler::new_from_seed(
        common::shuttle_seed(),
        3,
        common::shuttle_iterations(),
    ));
}

#[test]
fn pool_under_random_schedules() {
    run(RandomScheduler::new_from_seed(
        common::shuttle_seed(),
        common::shuttle_iterations(),
    ));
}

/// Many concurrent misses of the same few pages on a 2-frame pool: loads
/// race (the loser gives its frame back unpublished) and readers park on
/// frames that are recycled under them. Every parked reader must be woken.
fn contended_misses() {
    let storage = Arc::new(MemoryStorage::new());
    {
        let (pool, file) = open(&storage);
        for page_no in 0..3 {
            let (_, mut page) = pool.allocate(file).unwrap();
            for index in 0..WORDS {
                page.store_u64(index * 8, word(page_no, 0, index)).unwrap();
            }
        }
        Arc::into_inner(pool).unwrap().close().unwrap();
    }
    let pool = BufferPool::open(PoolConfig::new(2).evict_batch(1)).unwrap();
    let file = pool.open_storage(Box::new(storage)).unwrap();
    let pool = Arc::new(pool);
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let pool = pool.clone();
            shuttle::thread::spawn(move || {
                for step in 0..4 {
                    let page_no = (t + step) % 3;
                    let counter = pool
                        .optimistic(PageId::new(file, page_no), |view| {
                            counter_of(page_no, |i| view.load_u64(i * 8).unwrap_or(u64::MAX))
                        })
                        .unwrap();
                    assert_eq!(counter, Ok(0));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn contended_misses_under_pct_schedules() {
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(failure_dir()));
    Runner::new(
        PctScheduler::new_from_seed(common::shuttle_seed(), 3, common::shuttle_iterations()),
        config,
    )
    .run(contended_misses);
}

/// A store of `pages` pages, page `n` whole with counter 0.
fn seeded(pages: u64) -> Arc<MemoryStorage> {
    let storage = Arc::new(MemoryStorage::new());
    let (pool, file) = open(&storage);
    for page_no in 0..pages {
        let (_, mut page) = pool.allocate(file).unwrap();
        for index in 0..WORDS {
            page.store_u64(index * 8, word(page_no, 0, index)).unwrap();
        }
    }
    Arc::into_inner(pool).unwrap().close().unwrap();
    storage
}

/// Item 1 of the liveness issue: T holds `PageMut(Y)` and waits for X;
/// U's miss of Z evicts X and reloads its frame with Z, and U, holding
/// `PageMut(Z)`, wants Y. A waiter that kept waiting on the frame (now
/// Z's) would wait for U, who waits for T: the run must complete.
fn frame_changes_hands_under_a_waiter() {
    const Y: u64 = 0;
    const X: u64 = 1;
    const W: u64 = 2;
    const Z: u64 = 3;
    let storage = seeded(4);
    let pool = BufferPool::open(PoolConfig::new(3).evict_batch(1)).unwrap();
    let file = pool.open_storage(Box::new(storage)).unwrap();
    let page = move |n| PageId::new(file, n);
    // Y, X, W in frames 0, 1, 2; Y and W read twice (off probation), so
    // the clock's first victim is X.
    for n in [Y, Y, X, W, W] {
        drop(pool.read(page(n)).unwrap());
    }
    let pool = Arc::new(pool);
    let t = {
        let pool = pool.clone();
        shuttle::thread::spawn(move || {
            let y = pool.write(page(Y)).unwrap();
            let x = pool.write(page(X)).unwrap();
            drop((x, y));
        })
    };
    let u = {
        let pool = pool.clone();
        shuttle::thread::spawn(move || {
            let z = pool.write(page(Z)).unwrap();
            let y = pool.write(page(Y)).unwrap();
            drop((y, z));
        })
    };
    t.join().unwrap();
    u.join().unwrap();
}

#[test]
fn a_waiter_never_waits_for_its_frames_next_tenant() {
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(failure_dir()));
    Runner::new(
        PctScheduler::new_from_seed(common::shuttle_seed(), 3, common::shuttle_iterations()),
        config,
    )
    .run(frame_changes_hands_under_a_waiter);
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(failure_dir()));
    Runner::new(
        RandomScheduler::new_from_seed(common::shuttle_seed(), common::shuttle_iterations()),
        config,
    )
    .run(frame_changes_hands_under_a_waiter);
}

/// Item 3: readers that overlap without end (each takes the shared latch
/// before the one before it lets go) and one writer. Once the writer is
/// pending, a reader that was not already in must not get in (`late`
/// counts those that did; one that entered just before the writer came
/// may count, at most one per reader). A holder lets go without the next
/// reader only when that reader has been trying for a while and a writer
/// is pending.
fn overlapping_readers_and_a_writer() {
    use pagepool::__model::{frame_states, PENDING};
    use shuttle::sync::atomic::AtomicUsize;
    use shuttle::sync::{Condvar, Mutex};
    const READERS: usize = 3;
    const STEPS: usize = 18;
    const WRITER_FROM: usize = 2;
    const PATIENCE: usize = 12;
    let storage = seeded(1);
    let (pool, file) = open(&storage);
    let page_id = PageId::new(file, 0);
    drop(pool.read(page_id).unwrap());
    struct Relay {
        turn: Mutex<usize>,
        turned: Condvar,
        acquired: AtomicUsize,
        entering: AtomicUsize,
        late: AtomicUsize,
    }
    let relay = Arc::new(Relay {
        turn: Mutex::new(0),
        turned: Condvar::new(),
        acquired: AtomicUsize::new(0),
        entering: AtomicUsize::new(0),
        late: AtomicUsize::new(0),
    });
    let wait_turn = |relay: &Relay, step: usize| {
        let mut now = relay.turn.lock().unwrap();
        while *now < step {
            now = relay.turned.wait(now).unwrap();
        }
    };
    let pending = |pool: &BufferPool| frame_states(pool).iter().any(|s| s & PENDING != 0);
    let mut threads = Vec::new();
    for reader in 0..READERS {
        let (pool, relay) = (pool.clone(), relay.clone());
        threads.push(shuttle::thread::spawn(move || {
            for step in (reader..STEPS).step_by(READERS) {
                wait_turn(&relay, step);
                relay.entering.store(step + 1, Ordering::SeqCst);
                let guard = pool.read(page_id).unwrap();
                if pending(&pool) {
                    relay.late.fetch_add(1, Ordering::SeqCst);
                }
                relay.acquired.store(step + 1, Ordering::SeqCst);
                *relay.turn.lock().unwrap() = step + 1;
                relay.turned.notify_all();
                let mut tried = 0;
                while step + 1 < STEPS && relay.acquired.load(Ordering::SeqCst) < step + 2 {
                    if pending(&pool) && relay.entering.load(Ordering::SeqCst) == step + 2 {
                        tried += 1;
                        if tried > PATIENCE {
                            break;
                        }
                    }
                    shuttle::thread::yield_now();
                }
                drop(guard);
            }
        }));
    }
    {
        let (pool, relay) = (pool.clone(), relay.clone());
        threads.push(shuttle::thread::spawn(move || {
            wait_turn(&relay, WRITER_FROM);
            pool.write(page_id).unwrap().store_u64(0, 0).unwrap();
        }));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let late = relay.late.load(Ordering::SeqCst);
    assert!(
        late <= READERS,
        "{late} shared latches were granted while a writer waited"
    );
}

#[test]
fn a_writer_is_not_starved_by_overlapping_readers() {
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(failure_dir()));
    Runner::new(
        RandomScheduler::new_from_seed(common::shuttle_seed(), common::shuttle_iterations() / 4),
        config,
    )
    .run(overlapping_readers_and_a_writer);
}

/// Replays a saved failing schedule: `SHUTTLE_REPLAY=<file>`.
#[test]
#[ignore = "replays the schedule named by SHUTTLE_REPLAY"]
fn replay() {
    let path = std::env::var("SHUTTLE_REPLAY").expect("set SHUTTLE_REPLAY to a saved schedule");
    let scheduler = ReplayScheduler::new_from_file(path).expect("readable schedule");
    Runner::new(scheduler, Config::new()).run(scenario);
}
