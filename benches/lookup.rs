//! The page table: a lock-free lookup that hits, one that misses, with the
//! epoch guard pinned once outside the loop (as a `ThreadPin` does), and a
//! hit that pins per lookup (a full fence each: what amortising saves).
//! The table is sized for 16384 frames (a 64 MiB pool) and holds that many
//! pages; lookups go to random pages (the same random stream for every variant). One element = one lookup.
//!
//! ```sh
//! cargo bench --features internals --bench lookup
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pagepool::__model::Table;

const FRAMES: usize = 16384;

/// Random page numbers below `range` (wyrand: a few instructions per
/// number, and no table to warm the caches).
struct Pages {
    state: u64,
    range: u64,
}

impl Pages {
    fn new(range: u64, seed: u64) -> Pages {
        Pages { state: seed, range }
    }

    #[inline]
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        let r = ((t >> 64) as u64) ^ (t as u64);
        ((u128::from(r) * u128::from(self.range)) >> 64) as u64
    }
}

fn lookup(c: &mut Criterion) {
    let table = Table::new(FRAMES);
    let handle = table.register();
    {
        let guard = handle.pin();
        for page in 0..FRAMES as u64 {
            table
                .insert(page, page as usize, &guard)
                .expect("fresh page");
        }
    }

    let mut group = c.benchmark_group("page_table");
    group.throughput(Throughput::Elements(1));
    group.bench_function("lookup_hit_pinned", |b| {
        let guard = handle.pin();
        let mut pages = Pages::new(FRAMES as u64, 1);
        b.iter(|| black_box(table.lookup(pages.next(), &guard)))
    });
    group.bench_function("lookup_miss_pinned", |b| {
        // Pages FRAMES.. are absent.
        let guard = handle.pin();
        let mut pages = Pages::new(FRAMES as u64, 2);
        b.iter(|| black_box(table.lookup(pages.next() + FRAMES as u64, &guard)))
    });
    group.bench_function("lookup_hit_pin_per_op", |b| {
        let mut pages = Pages::new(FRAMES as u64, 1);
        b.iter(|| {
            let guard = handle.pin();
            black_box(table.lookup(pages.next(), &guard))
        })
    });
    group.bench_function("lookup_same_page_pinned", |b| {
        let guard = handle.pin();
        b.iter(|| black_box(table.lookup(black_box(7), &guard)))
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
