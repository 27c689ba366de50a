//! Multi-threaded stress on tiny pools: every page carries an invariant that
//! writers keep (a sequence number, the page number, and every other word
//! derived from both), and no validated optimistic read and no shared read
//! may ever see it broken. Each thread also checks that the sequence number
//! it sees for a page never goes backwards (no lost write-back), and at the
//! end every page's sequence number equals the number of writes made to it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::Rng;
use std::time::{Duration, Instant};

use pagepool::{BufferPool, FileId, MemoryStorage, PageId, PoolConfig, PAGE_DATA_SIZE};

const WORDS: usize = PAGE_DATA_SIZE / 8;
const MAX_PAGES: usize = 48;

fn word(page_no: u64, seq: u64, index: usize) -> u64 {
    match index {
        0 => seq,
        1 => page_no,
        _ => (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ page_no.rotate_left(29) ^ index as u64)
            .wrapping_mul(0xFF51_AFD7_ED55_8CCD),
    }
}

/// Checks a page image; returns its sequence number.
fn check(page_no: u64, words: &[u64]) -> Result<u64, String> {
    let seq = words[0];
    for (index, &value) in words.iter().enumerate() {
        if value != word(page_no, seq, index) {
            return Err(format!(
                "page {page_no} seq {seq}: word {index} is {value:#x}, expected {:#x}",
                word(page_no, seq, index)
            ));
        }
    }
    Ok(seq)
}

fn words_of(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

struct Shared {
    pool: BufferPool,
    file: FileId,
    /// Writes made to each page (bumped under the page's exclusive latch).
    writes: Vec<AtomicU64>,
    pages: AtomicU64,
    /// Pages whose first contents are written.
    ready: Vec<AtomicBool>,
    /// Allocations made or about to be made (bounds the page count).
    reserved: AtomicU64,
    stop: AtomicBool,
}

fn write_page(shared: &Shared, page_id: PageId) {
    let mut page = shared.pool.write(page_id).unwrap();
    let seq = check(page_id.page_no(), &words_of(&page[..WORDS * 8])).unwrap() + 1;
    for index in 0..WORDS {
        page.store_u64(index * 8, word(page_id.page_no(), seq, index))
            .unwrap();
    }
    shared.writes[page_id.page_no() as usize].fetch_add(1, Ordering::SeqCst);
}

fn worker(shared: &Shared, seed: u64, max_ops: u64, use_pin: bool) -> u64 {
    let mut rng = Rng::new(seed);
    let mut last_seen = vec![0u64; MAX_PAGES];
    let _pin = use_pin.then(|| shared.pool.pin_thread());
    let mut ops = 0;
    while ops < max_ops && !shared.stop.load(Ordering::Relaxed) {
        ops += 1;
        let pages = shared.pages.load(Ordering::SeqCst);
        let page_no = rng.below(pages);
        if !shared.ready[page_no as usize].load(Ordering::SeqCst) {
            continue; // its allocation is still in flight on another thread
        }
        let page_id = PageId::new(shared.file, page_no);
        let seen = match rng.below(100) {
            0..=44 => {
                // A whole-page copy (the vector loads of `copy_to`).
                let image = shared
                    .pool
                    .optimistic(page_id, |view| {
                        let mut bytes = vec![0u8; WORDS * 8];
                        view.copy_to(0, &mut bytes).map(|()| bytes)
                    })
                    .unwrap()
                    .unwrap();
                Some(check(page_no, &words_of(&image)))
            }
            45..=64 => {
                let page = shared.pool.read(page_id).unwrap();
                Some(check(page_no, &words_of(&page[..WORDS * 8])))
            }
            65..=92 => {
                write_page(shared, page_id);
                None
            }
            93..=95 if shared.reserved.fetch_add(1, Ordering::SeqCst) < MAX_PAGES as u64 => {
                let (new_id, mut page) = shared.pool.allocate(shared.file).unwrap();
                for index in 0..WORDS {
                    page.store_u64(index * 8, word(new_id.page_no(), 0, index))
                        .unwrap();
                }
                drop(page);
                shared
                    .pages
                    .fetch_max(new_id.page_no() + 1, Ordering::SeqCst);
                None
            }
            96..=97 => {
                shared.pool.flush(page_id).unwrap();
                None
            }
            98 => {
                shared.pool.flush_all().unwrap();
                None
            }
            _ => {
                // A whole-page optimistic check without a copy.
                let ok = shared
                    .pool
                    .optimistic(page_id, |view| {
                        let seq = view.load_u64(0).unwrap();
                        let words_ok =
                            (0..WORDS).all(|i| view.load_u64(i * 8) == Ok(word(page_no, seq, i)));
                        // The vector-load sum, racing the same writers.
                        let sum =
                            (0..WORDS).fold(0u64, |sum, i| sum.wrapping_add(word(page_no, seq, i)));
                        words_ok && view.sum_u64() == sum
                    })
                    .unwrap();
                assert!(ok, "validated optimistic scan saw a broken page {page_no}");
                None
            }
        };
        if let Some(result) = seen {
            let seq = result.unwrap_or_else(|e| panic!("torn read: {e}"));
            let last = &mut last_seen[page_no as usize];
            assert!(
                seq >= *last,
                "page {page_no} went back from seq {last} to {seq}"
            );
            *last = seq;
        }
    }
    ops
}

fn run(frames: usize, initial_pages: u64, threads: usize, max_ops: u64, deadline: Duration) {
    let pool =
        BufferPool::open(PoolConfig::new(frames).optimistic_retries(4).evict_batch(2)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    for page_no in 0..initial_pages {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        assert_eq!(page_id.page_no(), page_no);
        for index in 0..WORDS {
            page.store_u64(index * 8, word(page_no, 0, index)).unwrap();
        }
    }
    let shared = Shared {
        pool,
        file,
        writes: (0..MAX_PAGES).map(|_| AtomicU64::new(0)).collect(),
        pages: AtomicU64::new(initial_pages),
        reserved: AtomicU64::new(initial_pages),
        ready: (0..MAX_PAGES as u64)
            .map(|n| AtomicBool::new(n < initial_pages))
            .collect(),
        stop: AtomicBool::new(false),
    };
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let shared = &shared;
                scope.spawn(move || {
                    worker(shared, 0x1234_5678 * (t as u64 + 1), max_ops, t % 2 == 0)
                })
            })
            .collect();
        while started.elapsed() < deadline && !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        shared.stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    // Every write survived eviction and write-back.
    let pages = shared.pages.load(Ordering::SeqCst);
    for page_no in 0..pages {
        let page = shared.pool.read(PageId::new(file, page_no)).unwrap();
        let seq = check(page_no, &words_of(&page[..WORDS * 8])).unwrap();
        assert_eq!(
            seq,
            shared.writes[page_no as usize].load(Ordering::SeqCst),
            "page {page_no}"
        );
    }
    let stats = shared.pool.stats();
    if frames < MAX_PAGES {
        assert!(stats.evictions > 0 && stats.write_backs > 0, "{stats:?}");
    }
    eprintln!("{total} ops in {:?}: {stats:?}", started.elapsed());
}

#[test]
fn stress_three_frames_six_threads() {
    run(3, 24, 6, 40_000, Duration::from_secs(4));
}

#[test]
fn stress_two_frames_four_threads_growing_file() {
    run(2, 8, 4, 30_000, Duration::from_secs(3));
}

#[test]
fn stress_hot_pages_without_eviction_pressure() {
    // More frames than pages: optimistic readers race writers on resident
    // pages only, the case where validation alone keeps reads whole.
    run(64, 4, 6, 60_000, Duration::from_secs(3));
}
