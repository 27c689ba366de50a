//! A point read (one u64) of a resident page, several ways, what the epoch
//! pin costs (docs/design.md rule 6), and where the hit path's time goes:
//!
//! - `optimistic_handle`: `ThreadPin::optimistic`, the per-thread handle
//!   (how hot loops should read);
//! - `optimistic_amortised`: `BufferPool::optimistic` with a `ThreadPin`
//!   held across the loop (finds the thread's state in a thread-local);
//! - `optimistic_pin_per_op`: the same without a `ThreadPin` (each read pins
//!   and unpins: a full fence);
//! - `shared_amortised` / `shared_pin_per_op`: `BufferPool::read` (shared
//!   latch, `&[u8]` in place);
//! - `raw_slice`: the same word read from an aligned in-memory array with
//!   huge pages (the limit);
//! - `raw_model_table_state_data`: the memory accesses of a hit (table
//!   slot, state word and page id, data, state word again) with none of the
//!   pool's code: what the accesses alone cost;
//! - `raw_model_table_latch_sum`: a shared scan's accesses and its two
//!   locked instructions (latch acquire and release) without the pool;
//! - `raw_slice_plus_64_nops` (x86-64): the raw read plus 64 `nop`s, which
//!   only occupy the reorder window: what instructions cost when every
//!   read misses the cache.
//!
//! Two working sets: `one_page` (everything in L1: the pure instruction
//! cost) and `random_16k` (16384 pages = a 64 MiB pool, a uniform random
//! page per read: what the cache misses cost). One element = one read.
//!
//! ```sh
//! cargo bench --bench read_paths
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use pagepool::{BufferPool, FileId, MemoryStorage, PageId, PoolConfig, PAGE_DATA_SIZE, PAGE_SIZE};

const PAGES: usize = 16384;
const HUGE: usize = 2 << 20;

/// A stream of (page, offset) targets: page below `pages`, 8-aligned
/// offset in the data area, from a wyrand generator (a few instructions,
/// and no table whose own cache lines would warm the working set).
#[derive(Clone)]
struct Targets {
    state: u64,
    pages: u64,
}

impl Targets {
    fn new(pages: usize) -> Targets {
        Targets {
            state: 0x5EED,
            pages: pages as u64,
        }
    }

    #[inline]
    fn next(&mut self) -> (u64, usize) {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        let r = ((t >> 64) as u64) ^ (t as u64);
        let page = ((u128::from(r) * u128::from(self.pages)) >> 64) as u64;
        // Low bits: a word index below 510 (9 bits give 0..512; fold).
        let word = (r & 511) as usize % (PAGE_DATA_SIZE / 8);
        (page, word * 8)
    }
}

/// `PAGES` pages in an anonymous huge-page mapping, word `i` of page `p`
/// holding `p ^ i`.
struct RawPages {
    base: *mut u8,
    len: usize,
}

impl RawPages {
    fn new() -> RawPages {
        let len = PAGES * PAGE_SIZE + HUGE;
        // SAFETY: a fresh private anonymous mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let raw = RawPages {
            base: base.cast(),
            len,
        };
        // SAFETY: the range lies inside the mapping; a hint only.
        unsafe { libc::madvise(raw.pages().cast(), PAGES * PAGE_SIZE, libc::MADV_HUGEPAGE) };
        for p in 0..PAGES {
            for i in 0..PAGE_SIZE / 8 {
                // SAFETY: in bounds of the mapping, 8-aligned, not shared.
                unsafe {
                    raw.pages()
                        .add(p * PAGE_SIZE + i * 8)
                        .cast::<u64>()
                        .write((p ^ i) as u64)
                };
            }
        }
        raw
    }

    fn pages(&self) -> *mut u8 {
        // SAFETY: the mapping is one huge page longer than the pages.
        unsafe { self.base.add(self.base.align_offset(HUGE)) }
    }

    /// The data words of `page` (< PAGES).
    #[inline]
    fn words(&self, page: u64) -> &[u64] {
        assert!((page as usize) < PAGES);
        // SAFETY: page < PAGES, so its data words lie inside the mapping,
        // which is only read now; 8-aligned.
        unsafe {
            std::slice::from_raw_parts(
                self.pages().add(page as usize * PAGE_SIZE).cast::<u64>(),
                PAGE_DATA_SIZE / 8,
            )
        }
    }

    #[inline]
    fn read(&self, page: u64, offset: usize) -> u64 {
        debug_assert!((page as usize) < PAGES && offset + 8 <= PAGE_DATA_SIZE);
        // SAFETY: page < PAGES and offset in the data area (the targets are
        // built so), 8-aligned; the mapping is only read now.
        unsafe {
            self.pages()
                .add(page as usize * PAGE_SIZE + offset)
                .cast::<u64>()
                .read()
        }
    }
}

impl Drop for RawPages {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `new`.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn pool() -> (BufferPool, FileId) {
    let pool = BufferPool::open(PoolConfig::new(PAGES)).expect("pool");
    let file = pool
        .open_storage(Box::new(MemoryStorage::new()))
        .expect("storage");
    for p in 0..PAGES as u64 {
        let (_, mut page) = pool.allocate(file).expect("allocate");
        for i in 0..PAGE_DATA_SIZE / 8 {
            page.store_u64(i * 8, p ^ i as u64).expect("store");
        }
    }
    (pool, file)
}

fn run_set(
    group: &mut BenchmarkGroup<'_, WallTime>,
    pool: &BufferPool,
    file: FileId,
    raw: &RawPages,
    targets: &Targets,
) {
    let optimistic = |b: &mut criterion::Bencher<'_>| {
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            pool.optimistic(PageId::new(file, page), |view| view.load_u64(offset))
                .expect("resident")
                .expect("in bounds")
        })
    };
    let shared = |b: &mut criterion::Bencher<'_>| {
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            let guard = pool.read(PageId::new(file, page)).expect("resident");
            u64::from_le_bytes(guard[offset..offset + 8].try_into().expect("8 bytes"))
        })
    };
    group.bench_function("optimistic_handle", |b| {
        let pin = pool.pin_thread();
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            pin.optimistic(PageId::new(file, page), |view| view.load_u64(offset))
                .expect("resident")
                .expect("in bounds")
        })
    });
    group.bench_function("optimistic_amortised", |b| {
        let _pin = pool.pin_thread();
        optimistic(b)
    });
    group.bench_function("optimistic_pin_per_op", optimistic);
    group.bench_function("shared_amortised", |b| {
        let _pin = pool.pin_thread();
        shared(b)
    });
    group.bench_function("shared_pin_per_op", shared);
    // Latched hits through the thread's handle: what a guard costs to take
    // and drop (the latch word's two atomic RMWs, and the thread's record
    // of held latches).
    group.bench_function("shared_handle", |b| {
        let pin = pool.pin_thread();
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            let guard = pin.read(PageId::new(file, page)).expect("resident");
            u64::from_le_bytes(guard[offset..offset + 8].try_into().expect("8 bytes"))
        })
    });
    group.bench_function("exclusive_handle", |b| {
        let pin = pool.pin_thread();
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            let guard = pin.write(PageId::new(file, page)).expect("resident");
            u64::from_le_bytes(guard[offset..offset + 8].try_into().expect("8 bytes"))
        })
    });
    group.bench_function("raw_slice", |b| {
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            raw.read(black_box(page), offset)
        })
    });
    // What the hit path's memory accesses cost without its code: a hash
    // table of page → frame (one 32-byte slot per frame, as the pool's
    // buckets hold), a 16-byte state word and page id per frame, the data
    // word, and the state word again (validation).
    group.bench_function("raw_model_table_state_data", |b| {
        let model = HitModel::new(targets.pages);
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            model.read(raw, black_box(page), offset)
        })
    });
    // The raw read with 64 `nop`s after it: instructions alone (no memory
    // access, no dependency) that occupy the core's reorder window and so
    // limit how many reads' cache misses overlap.
    #[cfg(target_arch = "x86_64")]
    group.bench_function("raw_slice_plus_64_nops", |b| {
        let mut targets = targets.clone();
        b.iter(|| {
            let (page, offset) = targets.next();
            let word = raw.read(black_box(page), offset);
            nops_64();
            word
        })
    });
}

/// The memory accesses of a pool hit, with none of its code: see
/// `raw_model_table_state_data`.
struct HitModel {
    /// Frame of each page, one per 32 bytes (4 words).
    table: Vec<u64>,
    /// State word and page id per frame.
    state: Vec<u64>,
    /// The same, as atomics, for the scan model's latch.
    latches: Vec<AtomicU64>,
}

impl HitModel {
    fn new(pages: u64) -> HitModel {
        let pages = pages as usize;
        // A fixed permutation, so frame ≠ page as in a pool.
        let frame_of = |p: usize| (p * 7919) % pages;
        HitModel {
            table: (0..pages * 4).map(|i| frame_of(i / 4) as u64).collect(),
            state: (0..pages * 2).map(|i| (i % 2) as u64).collect(),
            latches: (0..pages * 2).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[inline]
    fn scan(&self, raw: &RawPages, page: u64) -> u64 {
        let frame = self.table[page as usize * 4];
        let latch = &self.latches[frame as usize * 2];
        latch.fetch_add(1, Ordering::Acquire);
        let sum = raw
            .words(frame)
            .iter()
            .fold(0u64, |s, &w| s.wrapping_add(u64::from_le(w)));
        latch.fetch_sub(1, Ordering::Release);
        sum
    }

    #[inline]
    fn read(&self, raw: &RawPages, page: u64, offset: usize) -> u64 {
        let frame = self.table[page as usize * 4];
        let begin = self.state[frame as usize * 2];
        let held = self.state[frame as usize * 2 + 1];
        let word = raw.read(frame, offset);
        let end = black_box(&self.state)[frame as usize * 2];
        if begin != end || held > 1 {
            return 0;
        }
        word
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn nops_64() {
    // SAFETY: `nop`s touch no memory, register or flag.
    unsafe {
        std::arch::asm!(
            ".rept 64",
            "nop",
            ".endr",
            options(nomem, nostack, preserves_flags)
        );
    }
}

fn read_paths(c: &mut Criterion) {
    let (pool, file) = pool();
    let raw = RawPages::new();
    let mut group = c.benchmark_group("point_read_one_page");
    group.throughput(Throughput::Elements(1));
    run_set(&mut group, &pool, file, &raw, &Targets::new(1));
    group.finish();

    let mut group = c.benchmark_group("point_read_random_16k");
    group.throughput(Throughput::Elements(1));
    run_set(&mut group, &pool, file, &raw, &Targets::new(PAGES));
    group.finish();

    // Whole-page scans: sum the data area's u64 words of a random page.
    let mut group = c.benchmark_group("scan_random_16k");
    group.throughput(Throughput::Bytes(PAGE_DATA_SIZE as u64));
    let _pin = pool.pin_thread();
    let random = Targets::new(PAGES);
    group.bench_function("optimistic_sum_u64_handle", |b| {
        let mut targets = random.clone();
        b.iter(|| {
            let (page, _) = targets.next();
            _pin.optimistic(PageId::new(file, page), |view| view.sum_u64())
                .expect("resident")
        })
    });
    group.bench_function("optimistic_sum_u64", |b| {
        let mut targets = random.clone();
        b.iter(|| {
            let (page, _) = targets.next();
            pool.optimistic(PageId::new(file, page), |view| view.sum_u64())
                .expect("resident")
        })
    });
    group.bench_function("shared_slice_sum", |b| {
        let mut targets = random.clone();
        b.iter(|| {
            let (page, _) = targets.next();
            let guard = pool.read(PageId::new(file, page)).expect("resident");
            guard
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
                .fold(0u64, u64::wrapping_add)
        })
    });
    // A shared scan's memory accesses and atomics without the pool's code:
    // a table slot, an atomic increment of a state word, the sum, and the
    // decrement (a latch taken and released with two locked instructions).
    group.bench_function("raw_model_table_latch_sum", |b| {
        let model = HitModel::new(PAGES as u64);
        let mut targets = random.clone();
        b.iter(|| {
            let (page, _) = targets.next();
            model.scan(&raw, black_box(page))
        })
    });
    group.bench_function("raw_slice_sum", |b| {
        let mut targets = random.clone();
        b.iter(|| {
            let (page, _) = targets.next();
            raw.words(black_box(page))
                .iter()
                .fold(0u64, |s, &w| s.wrapping_add(u64::from_le(w)))
        })
    });
    group.finish();
    drop(_pin);
    drop(pool);
}

criterion_group!(benches, read_paths);
criterion_main!(benches);
