//! The miss path on in-memory storage (no device: what the pool itself
//! costs per page it loads) and eviction throughput.
//!
//! - `miss_clean`: read a page that is not resident; the pool is full of
//!   clean pages, so the read evicts one (clock sweep), copies the page in
//!   from `MemoryStorage`, checks its CRC-32C, and maps it. Pages are read
//!   in a cycle over 4× the pool, so every read misses.
//! - `miss_dirty`: the same but writing one u64 to each page, so every
//!   eviction first writes a dirty page back (checksum stamped).
//! - `hit_after_load`: for scale, a shared read of a resident page.
//!
//! One element = one page read (and one page evicted). The pool has 1024
//! frames (4 MiB).
//!
//! ```sh
//! cargo bench --bench miss_path
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pagepool::{BufferPool, FileId, MemoryStorage, PageId, PoolConfig, PAGE_SIZE};

const FRAMES: usize = 1024;
const FILE_PAGES: u64 = 4 * FRAMES as u64;

fn pool() -> (BufferPool, FileId) {
    let pool = BufferPool::open(PoolConfig::new(FRAMES)).expect("pool");
    let file = pool
        .open_storage(Box::new(MemoryStorage::new()))
        .expect("storage");
    for p in 0..FILE_PAGES {
        let (_, mut page) = pool.allocate(file).expect("allocate");
        page.store_u64(0, p).expect("store");
    }
    pool.flush_all().expect("flush");
    (pool, file)
}

fn miss_path(c: &mut Criterion) {
    let (pool, file) = pool();
    let mut group = c.benchmark_group("miss_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("miss_clean", |b| {
        let _pin = pool.pin_thread();
        let mut next = 0u64;
        b.iter(|| {
            next = (next + 1) % FILE_PAGES;
            let page = pool.read(PageId::new(file, next)).expect("read");
            black_box(page[0])
        })
    });
    group.bench_function("miss_dirty", |b| {
        let _pin = pool.pin_thread();
        let mut next = 0u64;
        b.iter(|| {
            next = (next + 1) % FILE_PAGES;
            let mut page = pool.write(PageId::new(file, next)).expect("write");
            page.store_u64(8, next).expect("store");
        })
    });
    group.bench_function("hit_after_load", |b| {
        let _pin = pool.pin_thread();
        let page_id = PageId::new(file, 1);
        drop(pool.read(page_id).expect("read"));
        b.iter(|| black_box(pool.read(page_id).expect("read")[0]))
    });
    group.finish();

    let stats = pool.stats();
    eprintln!(
        "miss_path: {} misses, {} evictions, {} write-backs over the run",
        stats.misses, stats.evictions, stats.write_backs
    );

    let mut group = c.benchmark_group("miss_path_bytes");
    group.throughput(Throughput::Bytes(PAGE_SIZE as u64));
    group.bench_function("miss_clean", |b| {
        let _pin = pool.pin_thread();
        let mut next = 0u64;
        b.iter(|| {
            next = (next + 7) % FILE_PAGES;
            let page = pool.read(PageId::new(file, next)).expect("read");
            black_box(page[0])
        })
    });
    group.finish();
    pool.close().expect("close");
}

criterion_group!(benches, miss_path);
criterion_main!(benches);
