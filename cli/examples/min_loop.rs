//! The smallest independent program that does a hot workload's work: the
//! check on `pagepool bench`'s `raw-loop` row (which is itself the check on
//! `raw`). It shares no code with the benchmark: its own generator (the
//! same wyrand construction), its own memory (a `Vec`, filled with
//! non-zero words, no huge-page hint), its own threads and clock.
//!
//! ```sh
//! cargo run --release -p pagepool-cli --example min_loop -- 64 2 point
//! #                                          MiB of pages ┘  │  └ point | scan
//! #                                                 threads ┘
//! ```
//!
//! It prints the operations per second summed over the threads, as the
//! benchmark does (each thread's operations over its own time).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PAGE_WORDS: usize = 512;
const DATA_WORDS: u64 = 510;
const RUN: Duration = Duration::from_secs(2);

fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

fn below(state: &mut u64, n: u64) -> u64 {
    ((u128::from(wyrand(state)) * u128::from(n)) >> 64) as u64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: min_loop MIB THREADS point|scan";
    let mib: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let threads: usize = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let scan = match args.get(3).map(String::as_str) {
        Some("point") => false,
        Some("scan") => true,
        _ => panic!("{usage}"),
    };
    let pages = (mib << 20) / (PAGE_WORDS * 8);
    let words: Vec<u64> = (0..pages * PAGE_WORDS).map(|i| i as u64 | 1).collect();
    let stop = AtomicBool::new(false);
    let total: f64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (words, stop) = (&words, &stop);
                s.spawn(move || {
                    let mut rng = 0x5EED ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let (mut sum, mut ops) = (0u64, 0u64);
                    let started = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..1024 {
                            let page = below(&mut rng, pages as u64) as usize * PAGE_WORDS;
                            if scan {
                                let data = &words[page..page + DATA_WORDS as usize];
                                let page_sum = data.iter().fold(0u64, |a, &w| a.wrapping_add(w));
                                sum = sum.wrapping_add(page_sum);
                            } else {
                                sum = sum.wrapping_add(
                                    words[page + below(&mut rng, DATA_WORDS) as usize],
                                );
                            }
                        }
                        ops += 1024;
                    }
                    std::hint::black_box(sum);
                    ops as f64 / started.elapsed().as_secs_f64()
                })
            })
            .collect();
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let what = if scan { "scan" } else { "point" };
    println!("min_loop {mib} MiB, {threads} threads, {what}: {total:.0} ops/s");
}
