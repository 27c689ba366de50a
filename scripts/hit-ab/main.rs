//! Two builds of pagepool in one process, timed in alternating rounds:
//! the hit path's A/B harness (`scripts/hit-ab.sh` writes its Cargo.toml
//! and runs it; BENCHMARKS.md, "Where a hit's time goes").
//!
//! Each build opens its own pool over its own copy of a 256 MiB file,
//! reads every page in, and then runs optimistic point reads of random
//! words through a `ThreadPin`, alternating A and B in rounds of
//! `ROUND_OPS`. Both see the same pages and offsets in each round, and
//! their sums must agree. It prints each build's median rate and the
//! median and quartiles of the per-round ratio B / A: on a noisy host a
//! per-round ratio is steadier than either rate.

use std::time::Instant;

const PAGES: u64 = 65_536;
const ROUND_OPS: u64 = 2_000_000;
const ROUNDS: usize = 31;
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// wyrand, as the bench's.
struct Rng(u64);

impl Rng {
    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    }

    #[inline(always)]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Words in a page's data area.
const DATA_WORDS: u64 = (pp_a::PAGE_DATA_SIZE / 8) as u64;

/// A file of `PAGES` pages whose word `i` of page `p` is `p + i * K`,
/// written through build A's pool (which stamps each page's trailer).
fn make_file(path: &std::path::Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == PAGES * 4096) {
        return;
    }
    let _ = std::fs::remove_file(path);
    let pool = pp_a::BufferPool::open(pp_a::PoolConfig::new(2048).io_mode(pp_a::IoMode::Direct)).unwrap();
    let file = pool.open_file(path).unwrap();
    let _pin = pool.pin_thread();
    for page in 0..PAGES {
        let (_, mut frame) = pool.allocate(file).unwrap();
        let image: Vec<u8> = (0..DATA_WORDS)
            .flat_map(|index| page.wrapping_add(index.wrapping_mul(K)).to_le_bytes())
            .collect();
        frame.write_at(0, &image).unwrap();
    }
    drop(_pin);
    pool.close().unwrap();
}

macro_rules! runner {
    ($krate:ident, $path:expr) => {{
        use $krate as pp;
        let config = pp::PoolConfig::new(PAGES as usize).io_mode(pp::IoMode::Direct);
        let pool: &'static pp::BufferPool = Box::leak(Box::new(pp::BufferPool::open(config).unwrap()));
        let file = pool.open_file($path).unwrap();
        let pin: &'static pp::ThreadPin<'static> = Box::leak(Box::new(pool.pin_thread()));
        for page in 0..PAGES {
            let first = pin.optimistic(pp::PageId::new(file, page), |view| view.load_u64(0)).unwrap();
            assert_eq!(first.unwrap(), page, "page {page} of {}", $path.display());
        }
        #[inline(never)]
        fn run(pin: &pp::ThreadPin<'_>, file: pp::FileId, seed: u64, ops: u64) -> u64 {
            let mut rng = Rng(seed);
            let mut sum = 0u64;
            for _ in 0..ops {
                let page = rng.below(PAGES);
                let offset = (rng.below(DATA_WORDS) * 8) as usize;
                let read = pin.optimistic_try(pp::PageId::new(file, page), |view| {
                    Ok::<u64, pp::Error>(view.load_u64(offset)?)
                });
                sum = sum.wrapping_add(read.unwrap());
            }
            sum
        }
        move |seed: u64| run(pin, file, seed, ROUND_OPS)
    }};
}

fn median(values: &mut [f64], quantile: f64) -> f64 {
    values.sort_by(|x, y| x.total_cmp(y));
    values[((values.len() - 1) as f64 * quantile).round() as usize]
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("a data directory"));
    let (path_a, path_b) = (dir.join("hit-ab-a.db"), dir.join("hit-ab-b.db"));
    make_file(&path_a);
    make_file(&path_b);
    let a = runner!(pp_a, &path_a);
    let b = runner!(pp_b, &path_b);
    let (mut rate_a, mut rate_b, mut ratio) = (vec![], vec![], vec![]);
    for round in 0..ROUNDS as u64 {
        let started = Instant::now();
        let sum_a = a(round);
        let a_per_sec = ROUND_OPS as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        let sum_b = b(round);
        let b_per_sec = ROUND_OPS as f64 / started.elapsed().as_secs_f64();
        assert_eq!(sum_a, sum_b, "round {round}: the builds read different values");
        rate_a.push(a_per_sec / 1e6);
        rate_b.push(b_per_sec / 1e6);
        ratio.push(b_per_sec / a_per_sec);
    }
    println!(
        "A {:.1} M/s, B {:.1} M/s (medians of {ROUNDS} rounds); B / A median {:.3}, quartiles {:.3} .. {:.3}",
        median(&mut rate_a, 0.5),
        median(&mut rate_b, 0.5),
        median(&mut ratio, 0.5),
        median(&mut ratio, 0.25),
        median(&mut ratio, 0.75),
    );
}
