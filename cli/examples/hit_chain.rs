//! The lines a pagepool hit touches, and nothing else: how fast can
//! random point reads go that must follow the same chain? No pool, no
//! bench driver, no code shared with either (BENCHMARKS.md, "Where a hit's
//! time goes").
//!
//! ```sh
//! cargo run --release -p pagepool-cli --example hit_chain
//! ```
//!
//! Over 65,536 frames of 4 KiB (256 MiB), with pages mapped to frames in a
//! shuffled order, one thread times four loops of random reads:
//!
//! - `raw`: one load of a random word of a random page;
//! - `direct`: the page's direct-map word (two 8-byte words per frame, as
//!   the pool's), then the word of the frame it names;
//! - `checked`: that, plus the frame's state word and page id (16 bytes
//!   per frame), the state word again after the data, and a branch on
//!   each check, as a hit's validation does;
//! - `checked-vec`: the same with the arrays' bounds checks the pool's
//!   safe indexing pays.
//!
//! It prints each loop's reads per second and its ratio to `raw`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const FRAMES: usize = 65_536;
const PAGE_WORDS: usize = 512;
const READS: u64 = 50_000_000;

fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

fn below(state: &mut u64, n: u64) -> u64 {
    ((u128::from(wyrand(state)) * u128::from(n)) >> 64) as u64
}

fn words(count: usize, value: impl Fn(usize) -> u64) -> Vec<AtomicU64> {
    (0..count).map(|i| AtomicU64::new(value(i))).collect()
}

struct Memory {
    /// Word `i` of frame `f` at `f * PAGE_WORDS + i`.
    data: Vec<AtomicU64>,
    /// Page `p`'s word at `p` (its frame), an empty one at `p + FRAMES`.
    direct: Vec<AtomicU64>,
    /// Frame `f`'s state word at `2f` and its page at `2f + 1`.
    meta: Vec<AtomicU64>,
}

impl Memory {
    fn new() -> Memory {
        // A shuffled page -> frame map (Fisher-Yates).
        let mut frame_of: Vec<usize> = (0..FRAMES).collect();
        let mut rng = 7;
        for i in (1..FRAMES).rev() {
            frame_of.swap(i, below(&mut rng, i as u64 + 1) as usize);
        }
        let mut page_of = vec![0; FRAMES];
        for (page, &frame) in frame_of.iter().enumerate() {
            page_of[frame] = page as u64;
        }
        Memory {
            data: words(FRAMES * PAGE_WORDS, |i| (i as u64).wrapping_mul(0x9E37)),
            direct: words(2 * FRAMES, |i| {
                frame_of.get(i).map_or(u64::MAX, |&f| f as u64)
            }),
            meta: words(2 * FRAMES, |i| if i % 2 == 0 { 8 } else { page_of[i / 2] }),
        }
    }
}

#[cold]
#[inline(never)]
fn wrong(what: &str) -> ! {
    panic!("{what}")
}

/// `READS` reads by `read` (page, word) -> value; the reads per second.
fn time(name: &str, read: impl Fn(usize, usize) -> u64) -> f64 {
    let mut rng = 42;
    let started = Instant::now();
    let mut sum = 0u64;
    for _ in 0..READS {
        let page = below(&mut rng, FRAMES as u64) as usize;
        let word = below(&mut rng, PAGE_WORDS as u64) as usize;
        sum = sum.wrapping_add(read(page, word));
    }
    let per_sec = READS as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    println!("{name:12} {:6.1} M reads/s", per_sec / 1e6);
    per_sec
}

fn main() {
    let memory = Memory::new();
    let (data, direct, meta) = (&memory.data[..], &memory.direct[..], &memory.meta[..]);
    let raw = time("raw", |page, word| {
        data[page * PAGE_WORDS + word].load(Ordering::Relaxed)
    });
    let direct_rate = time("direct", |page, word| {
        let frame = direct[page].load(Ordering::Acquire) as usize & (FRAMES - 1);
        data[frame * PAGE_WORDS + word].load(Ordering::Relaxed)
    });
    // `checked`: every index masked into range, so no bounds check is
    // left to branch on; `checked-vec` checks them as safe indexing does.
    let checked = time("checked", |page, word| {
        let entry = direct[page & (2 * FRAMES - 1)].load(Ordering::Acquire);
        if entry >> 32 != 0 {
            wrong("tag")
        }
        let frame = entry as usize & (FRAMES - 1);
        let state = meta[2 * frame].load(Ordering::Acquire);
        if state >> 62 != 0 {
            wrong("state")
        }
        let held = meta[2 * frame + 1].load(Ordering::Relaxed);
        let value =
            data[(frame * PAGE_WORDS + word) & (FRAMES * PAGE_WORDS - 1)].load(Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Acquire);
        if meta[2 * frame].load(Ordering::Relaxed) != state || held != page as u64 {
            wrong("validation")
        }
        value
    });
    let checked_vec = time("checked-vec", |page, word| {
        let entry = direct[page].load(Ordering::Acquire);
        let frame = entry as usize;
        if entry >> 32 != 0 || frame >= FRAMES {
            wrong("tag")
        }
        let state = meta[2 * frame].load(Ordering::Acquire);
        if state >> 62 != 0 {
            wrong("state")
        }
        let held = meta[2 * frame + 1].load(Ordering::Relaxed);
        let value = data[frame * PAGE_WORDS + word].load(Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Acquire);
        if meta[2 * frame].load(Ordering::Relaxed) != state || held != page as u64 {
            wrong("validation")
        }
        value
    });
    for (name, rate) in [
        ("direct", direct_rate),
        ("checked", checked),
        ("checked-vec", checked_vec),
    ] {
        println!("{name:12} / raw = {:.2}", rate / raw);
    }
}
