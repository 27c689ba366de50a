//! The page-state latch (one `AtomicU64` per frame), uncontended: acquire
//! and release in each mode, and an optimistic read's begin + validate.
//! One element = one acquire/release pair (or one begin/validate pair).
//!
//! ```sh
//! cargo bench --features internals --bench latch
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pagepool::__model::Latch;

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("latch");
    group.throughput(Throughput::Elements(1));
    let latch = Latch::new_resident();

    group.bench_function("optimistic_begin_validate", |b| {
        b.iter(|| {
            let begin = black_box(&latch).optimistic_begin().expect("unlocked");
            black_box(latch.optimistic_validate(begin))
        })
    });
    group.bench_function("shared_lock_unlock", |b| {
        b.iter(|| {
            let latch = black_box(&latch);
            assert!(latch.try_lock_shared());
            latch.unlock_shared();
        })
    });
    group.bench_function("exclusive_lock_unlock", |b| {
        b.iter(|| {
            let latch = black_box(&latch);
            assert!(latch.try_lock_exclusive());
            latch.unlock_exclusive();
        })
    });
    group.finish();
}

/// The same pairs while a second thread does the same on the same latch
/// (the cache line moves between cores on every shared acquire; the
/// optimistic reader writes nothing, so it keeps its copy).
fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("latch_two_threads");
    group.throughput(Throughput::Elements(1));
    let latch = Latch::new_resident();
    let with_neighbour = |b: &mut criterion::Bencher<'_>, op: &(dyn Fn(&Latch) + Sync)| {
        b.iter_custom(|iters| {
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        op(&latch);
                    }
                });
                let start = Instant::now();
                for _ in 0..iters {
                    op(black_box(&latch));
                }
                let elapsed = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                elapsed.max(Duration::from_nanos(1))
            })
        })
    };
    group.bench_function("optimistic_begin_validate", |b| {
        with_neighbour(b, &|latch: &Latch| {
            if let Some(begin) = latch.optimistic_begin() {
                black_box(latch.optimistic_validate(begin));
            }
        })
    });
    group.bench_function("shared_lock_unlock", |b| {
        with_neighbour(b, &|latch: &Latch| {
            if latch.try_lock_shared() {
                latch.unlock_shared();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
