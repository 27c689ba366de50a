//! The lines a pagepool whole-page hit touches, and nothing else: how
//! fast can random page scans go that must first translate the page into
//! its frame? No pool, no bench driver, no code shared with either
//! (BENCHMARKS.md, "Scans at the vector width").
//!
//! ```sh
//! cargo run --release -p pagepool-cli --example scan_chain
//! ```
//!
//! Over 65,536 frames of 4 KiB (256 MiB, huge pages advised, as the pool's
//! arena and the bench's `raw`), with pages mapped to frames in a shuffled
//! order, one thread sums the 510 data words of random pages three ways,
//! each compiled for AVX-512F where the processor has it (else AVX2, else
//! SSE2), with the page's length a constant:
//!
//! - `raw`: the page's words at `page * 4096`, no translation;
//! - `direct`: the page's direct-map word first (two 8-byte words per
//!   frame, as the pool's), then the words of the frame it names;
//! - `checked`: that, plus the frame's state word and page id (16 bytes
//!   per frame) before the words and the state word again after them,
//!   with a branch on each check, as an optimistic hit does.
//!
//! The loops take turns, five rounds; it prints each round's pages per
//! second and the medians' ratios to `raw`.

use std::time::Instant;

const FRAMES: usize = 65_536;
const PAGE_WORDS: usize = 512;
/// Words a scan sums: the page's data area, as the bench's hot-scan.
const DATA_WORDS: usize = 510;
const SCANS: u64 = 8_000_000;
const ROUNDS: usize = 5;
const HUGE_PAGE: usize = 2 << 20;

fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

fn below(state: &mut u64, n: u64) -> u64 {
    ((u128::from(wyrand(state)) * u128::from(n)) >> 64) as u64
}

/// `len` (> 0) words on 2 MiB-aligned memory with huge pages advised,
/// filled by `value`, kept for the rest of the process.
fn huge_words(len: usize, value: impl Fn(usize) -> u64) -> &'static [u64] {
    assert!(len > 0, "an empty arena");
    let layout = std::alloc::Layout::from_size_align(len * 8, HUGE_PAGE).expect("layout");
    // SAFETY: the layout's size is not zero (asserted above).
    let ptr = unsafe { std::alloc::alloc(layout) }.cast::<u64>();
    assert!(!ptr.is_null(), "out of memory");
    // SAFETY: `ptr .. ptr + len * 8` is this fresh allocation; the advice
    // is only a hint.
    unsafe { libc::madvise(ptr.cast(), len * 8, libc::MADV_HUGEPAGE) };
    for i in 0..len {
        // SAFETY: i < len, inside the allocation, which nothing else
        // refers to yet.
        unsafe { ptr.add(i).write(value(i)) };
    }
    // SAFETY: `len` initialised words, never freed (leaked on purpose),
    // only read from now on.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// The sum of one page's data words, at the processor's widest vectors.
fn sum_page(words: &[u64; DATA_WORDS]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F detected, the function's one requirement.
            return unsafe { sum_avx512(words) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 detected.
            return unsafe { sum_avx2(words) };
        }
    }
    fold(words)
}

#[inline(always)]
fn fold(words: &[u64; DATA_WORDS]) -> u64 {
    words.iter().fold(0u64, |sum, &w| sum.wrapping_add(w))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_avx512(words: &[u64; DATA_WORDS]) -> u64 {
    fold(words)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_avx2(words: &[u64; DATA_WORDS]) -> u64 {
    fold(words)
}

/// The data words of frame `frame` (< FRAMES).
fn frame_words(data: &[u64], frame: usize) -> &[u64; DATA_WORDS] {
    data[frame * PAGE_WORDS..][..DATA_WORDS]
        .try_into()
        .expect("a page's data words")
}

#[cold]
#[inline(never)]
fn wrong(what: &str) -> ! {
    panic!("{what}")
}

/// `SCANS` scans of random pages by `scan` (generic, so that each loop is
/// compiled with its scan inline, as the pool's hit is in the bench);
/// pages per second.
fn time(scan: impl Fn(usize) -> u64) -> f64 {
    let mut rng = 42;
    let started = Instant::now();
    let mut sum = 0u64;
    for _ in 0..SCANS {
        let page = below(&mut rng, FRAMES as u64) as usize;
        sum = sum.wrapping_add(scan(page));
    }
    std::hint::black_box(sum);
    SCANS as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // A shuffled page -> frame map (Fisher-Yates).
    let mut frame_of: Vec<usize> = (0..FRAMES).collect();
    let mut rng = 7;
    for i in (1..FRAMES).rev() {
        frame_of.swap(i, below(&mut rng, i as u64 + 1) as usize);
    }
    let mut page_of = vec![0u64; FRAMES];
    for (page, &frame) in frame_of.iter().enumerate() {
        page_of[frame] = page as u64;
    }
    let data = huge_words(FRAMES * PAGE_WORDS, |i| (i as u64).wrapping_mul(0x9E37));
    // Page p's word at p: its frame, tag 0; the second half empty.
    let direct = huge_words(2 * FRAMES, |i| {
        frame_of.get(i).map_or(u64::MAX, |&f| f as u64)
    });
    // Frame f's state word at 2f and its page at 2f + 1.
    let meta = huge_words(2 * FRAMES, |i| if i % 2 == 0 { 8 } else { page_of[i / 2] });

    let raw = |page: usize| sum_page(frame_words(data, page));
    let direct_scan = |page: usize| {
        let frame = direct[page] as usize & (FRAMES - 1);
        sum_page(frame_words(data, frame))
    };
    let checked = |page: usize| {
        let entry = direct[page & (2 * FRAMES - 1)];
        if entry >> 32 != 0 {
            wrong("tag")
        }
        let frame = entry as usize & (FRAMES - 1);
        let state = meta[2 * frame];
        if state >> 62 != 0 {
            wrong("state")
        }
        let held = meta[2 * frame + 1];
        let sum = sum_page(frame_words(data, frame));
        // Single-threaded, the state is unchanged; a volatile read makes
        // the compiler load it again after the data, as validation does.
        // SAFETY: a reference to a live, initialised, aligned u64.
        let again = unsafe { std::ptr::read_volatile(&meta[2 * frame]) };
        if again != state || held != page as u64 {
            wrong("validation")
        }
        sum
    };
    let names = ["raw", "direct", "checked"];
    let mut rates = vec![Vec::new(); names.len()];
    for round in 1..=ROUNDS {
        let round_rates = [time(raw), time(direct_scan), time(checked)];
        let line: Vec<String> = names
            .iter()
            .zip(&round_rates)
            .map(|(name, rate)| format!("{name} {:.2} M", rate / 1e6))
            .collect();
        for (rates, rate) in rates.iter_mut().zip(round_rates) {
            rates.push(rate);
        }
        println!("round {round}: {} pages/s", line.join(", "));
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let medians: Vec<f64> = rates.iter_mut().map(median).collect();
    for (name, rate) in names.iter().zip(&medians) {
        println!(
            "{name:8} median {:.2} M pages/s, {:.2} x raw",
            rate / 1e6,
            rate / medians[0]
        );
    }
}
