//! The implementations a benchmark can run against, behind one trait.
//!
//! An implementation opens an [`Instance`] over the data file; the runner
//! then calls [`Instance::run_thread`] on each worker thread. The instance
//! sets up its per-thread state (an epoch pin, a scratch buffer) and hands
//! the [`Driver`] a closure that performs one [`Op`](super::workload::Op);
//! `Driver::drive` is generic over that closure, so each implementation's
//! loop is compiled on its own, with no dynamic call per operation.
//!
//! Each baseline is one module here plus a variant of [`ImplKind`]:
//!
//! - `raw`: the pages in an anonymous huge-page mapping, read in place
//!   with no checks: the machine's limit (hot workloads only).
//! - `raw-loop`: the same memory as `raw`, read by a loop of its own that
//!   checks nothing and times nothing (two random numbers, one load, a
//!   running sum): the check on `raw`, which runs through the benchmark's
//!   driver. `raw` within 0.9× of it means the driver measures the
//!   implementations, not itself.
//! - `dashmap-rwlock`: `DashMap<u64, Arc<RwLock<Frame>>>`, its own
//!   second-chance eviction, `O_DIRECT` reads and write-back.
//! - `mutex-lru`: one `Mutex` around an `lru::LruCache`, `O_DIRECT` I/O
//!   outside the lock.
//! - `mmap`: the file mapped with memmap2, read (and written) in place;
//!   the kernel's page cache is the pool.
//! - `pread`: buffered `pread` of the page into a stack buffer, no pool.
//! - `mmap-capped`, `pread-capped`: the same two with the kernel's page
//!   cache capped at the pool's size by a memory cgroup (see
//!   [`cgroup`](super::cgroup)): the kernel-cache baselines with the memory
//!   pagepool gets.
//!
//! Implementations that keep counters keep them per thread and publish
//! them when the thread finishes, so counting puts no shared write on a
//! hit.

mod dashmap_rwlock;
mod mmap;
mod mutex_lru;
mod page_file;
mod pagepool_async;
mod pagepool_batch;
mod pagepool_optimistic;
mod pagepool_shared;
mod pread;
mod raw;
mod raw_loop;

use std::path::Path;

use clap::ValueEnum;

use super::driver::Driver;
use super::workload::Workload;
use crate::error::Result;

/// Which implementation to benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImplKind {
    /// pagepool, optimistic reads (`BufferPool::optimistic`).
    Pagepool,
    /// pagepool, shared-latch reads (`BufferPool::read`).
    PagepoolShared,
    /// pagepool, batches of `--batch` pages through `read_many` (misses
    /// overlap); `scan-miss` through `BufferPool::scan` with a read-ahead
    /// window of `--read-ahead` pages (miss workloads only).
    PagepoolBatch,
    /// pagepool, `--tasks` async tasks (`read_async`, `optimistic_async`)
    /// on the `--threads` threads, each a tokio runtime (point-read miss
    /// workloads only).
    PagepoolAsync,
    /// The pages in memory, read in place: the machine's limit (hot
    /// workloads only).
    Raw,
    /// `raw`'s memory read by a bare loop that checks and times nothing:
    /// the check on the driver (hot workloads only).
    RawLoop,
    /// `DashMap<page, Arc<RwLock<page>>>` with its own eviction and
    /// `O_DIRECT` I/O.
    DashmapRwlock,
    /// One mutex around an LRU map, plus `O_DIRECT` pread/pwrite.
    MutexLru,
    /// The file mapped with memmap2 (the kernel's page cache).
    Mmap,
    /// Buffered pread of each page, no pool of its own.
    Pread,
    /// `mmap` with the page cache capped at the pool's size (a memory
    /// cgroup; needs root).
    MmapCapped,
    /// `pread` with the page cache capped at the pool's size (a memory
    /// cgroup; needs root).
    PreadCapped,
    /// The B+-tree of `pagepool-btree` (B+-tree workloads only).
    PagepoolBtree,
    /// redb, its cache set to the pool's size (B+-tree workloads only).
    Redb,
    /// `RwLock<BTreeMap>`, in memory (B+-tree workloads only).
    BtreemapRwlock,
}

impl ImplKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ImplKind::Pagepool => "pagepool",
            ImplKind::PagepoolShared => "pagepool-shared",
            ImplKind::PagepoolBatch => "pagepool-batch",
            ImplKind::PagepoolAsync => "pagepool-async",
            ImplKind::Raw => "raw",
            ImplKind::RawLoop => "raw-loop",
            ImplKind::DashmapRwlock => "dashmap-rwlock",
            ImplKind::MutexLru => "mutex-lru",
            ImplKind::Mmap => "mmap",
            ImplKind::Pread => "pread",
            ImplKind::MmapCapped => "mmap-capped",
            ImplKind::PreadCapped => "pread-capped",
            ImplKind::PagepoolBtree => "pagepool-btree",
            ImplKind::Redb => "redb",
            ImplKind::BtreemapRwlock => "btreemap-rwlock",
        }
    }

    /// Whether this is a key-value store for the B+-tree workloads.
    pub fn is_tree(self) -> bool {
        matches!(
            self,
            ImplKind::PagepoolBtree | ImplKind::Redb | ImplKind::BtreemapRwlock
        )
    }

    /// Whether this is pagepool's own pool (which runs on an I/O engine).
    pub fn is_pool(self) -> bool {
        matches!(
            self,
            ImplKind::Pagepool
                | ImplKind::PagepoolShared
                | ImplKind::PagepoolBatch
                | ImplKind::PagepoolAsync
        )
    }

    /// Whether this implementation runs inside a memory cgroup capped at
    /// the pool's size.
    pub fn memory_capped(self) -> bool {
        matches!(self, ImplKind::MmapCapped | ImplKind::PreadCapped)
    }

    /// Whether this implementation can run `workload` (an in-memory array
    /// cannot miss, for one).
    pub fn supports(self, workload: Workload) -> bool {
        match self {
            _ if self.is_tree() || workload.is_tree() => self.is_tree() && workload.is_tree(),
            ImplKind::Raw | ImplKind::RawLoop => workload.is_hot(),
            ImplKind::PagepoolBatch => {
                matches!(
                    workload,
                    Workload::UniformMiss | Workload::Zipf | Workload::ScanMiss
                )
            }
            ImplKind::PagepoolAsync => matches!(workload, Workload::UniformMiss | Workload::Zipf),
            _ => true,
        }
    }

    /// Opens a fresh instance over the data file.
    pub fn open(self, setup: &Setup<'_>) -> Result<Box<dyn Instance>> {
        Ok(match self {
            ImplKind::Pagepool => Box::new(pagepool_optimistic::Optimistic::open(setup)?),
            ImplKind::PagepoolShared => Box::new(pagepool_shared::Shared::open(setup)?),
            ImplKind::PagepoolBatch => Box::new(pagepool_batch::Batched::open(setup)?),
            ImplKind::PagepoolAsync => Box::new(pagepool_async::Tasks::open(setup)?),
            ImplKind::Raw => Box::new(raw::Raw::open(setup)?),
            ImplKind::RawLoop => Box::new(raw_loop::RawLoop::open(setup)?),
            ImplKind::DashmapRwlock => Box::new(dashmap_rwlock::DashmapRwlock::open(setup)?),
            ImplKind::MutexLru => Box::new(mutex_lru::MutexLru::open(setup)?),
            ImplKind::Mmap => Box::new(mmap::Mapped::open(setup)?),
            ImplKind::MmapCapped => Box::new(mmap::Mapped::open_random(setup)?),
            ImplKind::Pread | ImplKind::PreadCapped => Box::new(pread::Pread::open(setup)?),
            ImplKind::PagepoolBtree | ImplKind::Redb | ImplKind::BtreemapRwlock => {
                crate::bail!(
                    "{} runs the B+-tree workloads only (bench/tree/)",
                    self.name()
                )
            }
        })
    }
}

/// What an instance is opened with.
#[derive(Clone, Copy, Debug)]
pub struct Setup<'a> {
    /// The data file.
    pub path: &'a Path,
    /// Pages the data file holds.
    pub file_pages: u64,
    /// Pool size in 4 KiB frames (for implementations with a pool).
    pub pool_frames: usize,
    /// Whether the workload writes (the file is then this
    /// implementation's own copy).
    pub writes: bool,
    /// pagepool's I/O engine.
    pub engine: pagepool::IoEngine,
    /// Pages per `read_many` batch (`pagepool-batch`).
    pub batch: usize,
    /// Pages a scan keeps in flight ahead of its cursor (`pagepool-batch`
    /// on `scan-miss`).
    pub read_ahead: usize,
    /// Async tasks in all (`pagepool-async`), spread over the threads.
    pub tasks: usize,
    /// Worker threads of the run.
    pub threads: usize,
    /// Whether the workload reads whole pages in order (`scan-miss`).
    pub workload_scans: bool,
    /// Whether pagepool's pool runs its background writer.
    pub writer: bool,
    /// pagepool's checkpoint pace (`PoolConfig::checkpoint_pages_per_sec`).
    pub checkpoint_pages_per_sec: u64,
    /// pagepool's checkpoint batch (`PoolConfig::checkpoint_pages_in_flight`;
    /// 0: the pool's default).
    pub checkpoint_pages_in_flight: usize,
    /// pagepool's checkpoint share of the device
    /// (`PoolConfig::checkpoint_io_share_pct`; 100: none).
    pub checkpoint_io_share_pct: u32,
}

/// Per-thread counts of a baseline, published into [`SharedCounters`]
/// when the thread finishes.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalCounters {
    /// Accesses that found their page cached.
    pub hits: u64,
    /// Accesses that loaded their page.
    pub misses: u64,
    /// Page reads issued.
    pub io_reads: u64,
    /// Page writes issued.
    pub io_writes: u64,
}

/// A baseline's counters, summed over finished threads.
#[derive(Debug, Default)]
pub struct SharedCounters {
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
    io_reads: std::sync::atomic::AtomicU64,
    io_writes: std::sync::atomic::AtomicU64,
}

impl SharedCounters {
    /// Adds one thread's counts.
    pub fn publish(&self, local: &LocalCounters) {
        use std::sync::atomic::Ordering::Relaxed;
        self.hits.fetch_add(local.hits, Relaxed);
        self.misses.fetch_add(local.misses, Relaxed);
        self.io_reads.fetch_add(local.io_reads, Relaxed);
        self.io_writes.fetch_add(local.io_writes, Relaxed);
    }

    /// The sums so far.
    pub fn get(&self) -> Counters {
        use std::sync::atomic::Ordering::Relaxed;
        Counters {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            io_reads: self.io_reads.load(Relaxed),
            io_writes: self.io_writes.load(Relaxed),
            ..Counters::default()
        }
    }
}

/// Cache counters of an implementation that has a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Accesses that found their page cached.
    pub hits: u64,
    /// Accesses that loaded their page.
    pub misses: u64,
    /// Page reads issued to storage.
    pub io_reads: u64,
    /// Page writes issued to storage.
    pub io_writes: u64,
    /// Pages evicted.
    pub evictions: u64,
    /// Optimistic reads that failed validation.
    pub optimistic_retries: u64,
    /// Optimistic reads that fell back to a latch.
    pub optimistic_fallbacks: u64,
    /// Write-backs done by threads that evicted a dirty page themselves.
    pub eviction_write_backs: u64,
    /// Write-backs done by a background writer.
    pub writer_write_backs: u64,
}

impl Counters {
    /// The counts from `earlier` to `self`.
    pub fn since(self, earlier: Counters) -> Counters {
        Counters {
            hits: self.hits.saturating_sub(earlier.hits),
            misses: self.misses.saturating_sub(earlier.misses),
            io_reads: self.io_reads.saturating_sub(earlier.io_reads),
            io_writes: self.io_writes.saturating_sub(earlier.io_writes),
            evictions: self.evictions.saturating_sub(earlier.evictions),
            optimistic_retries: self
                .optimistic_retries
                .saturating_sub(earlier.optimistic_retries),
            optimistic_fallbacks: self
                .optimistic_fallbacks
                .saturating_sub(earlier.optimistic_fallbacks),
            eviction_write_backs: self
                .eviction_write_backs
                .saturating_sub(earlier.eviction_write_backs),
            writer_write_backs: self
                .writer_write_backs
                .saturating_sub(earlier.writer_write_backs),
        }
    }

    /// Fraction of accesses that hit (0 when there were none).
    pub fn hit_ratio(self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// An implementation opened over the data file, shared by the threads.
pub trait Instance: Sync {
    /// Runs one thread: set up per-thread state, then `driver.drive(op)`.
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()>;

    /// Cache counters so far, if the implementation keeps any.
    fn counters(&self) -> Option<Counters>;

    /// Releases the instance, reporting any error doing so.
    fn close(self: Box<Self>) -> Result<()>;

    /// The I/O engine that read the pages (pagepool's, or what the
    /// implementation does itself), and the most reads one thread keeps
    /// in flight.
    fn engine(&self) -> (String, usize) {
        ("sync".to_string(), 1)
    }

    /// What the pool ran with (engine, fixed buffers, huge pages), for
    /// pagepool's rows.
    fn conditions(&self) -> Option<String> {
        None
    }

    /// Runs a fuzzy checkpoint (every change so far made durable while the
    /// threads go on), if the implementation has one.
    fn checkpoint(&self) -> Option<Result<()>> {
        None
    }
}

/// The LSN of the last write of any pagepool row: each write takes the
/// next one, as a WAL engine's log would give it.
pub static LAST_LSN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a pool runs with, as a row's `conditions`.
fn pool_conditions(pool: &pagepool::BufferPool) -> Option<String> {
    let stats = pool.stats();
    Some(format!(
        "engine {}, {}fixed buffers, huge pages {}",
        stats.engine.name(),
        if stats.fixed_buffers { "" } else { "no " },
        if stats.arena_huge_pages {
            "advised"
        } else {
            "not advised"
        }
    ))
}

/// A fuzzy checkpoint of a pool: every page changed so far is written and
/// synced, while the threads go on.
fn pool_checkpoint(pool: &pagepool::BufferPool) -> Result<()> {
    let lsn = LAST_LSN.load(std::sync::atomic::Ordering::Relaxed);
    Ok(pool.flush_until(lsn + 1)?)
}

/// What pagepool's pool reports as its engine, with the reads in flight
/// per thread the implementation allows.
fn pool_engine(pool: &pagepool::BufferPool, in_flight: usize) -> (String, usize) {
    let stats = pool.stats();
    let mut name = stats.engine.name().to_string();
    if stats.engine == pagepool::EngineKind::Uring {
        name += if stats.fixed_buffers { "+fixed" } else { "" };
    }
    let in_flight = if stats.engine == pagepool::EngineKind::Sync {
        1
    } else {
        in_flight
    };
    (name, in_flight)
}

/// Sums a page's data as little-endian u64 words (wrapping), as
/// `OptimisticView::sum_u64` does, compiled for the widest vectors the
/// processor has: the fold below is compiled three times (AVX-512F, AVX2,
/// the SSE2 every x86-64 has) and picked per call from `std`'s cached
/// feature detection, as the library picks its own summing loop. Without
/// that, every implementation that sums a slice (and `raw`, and
/// `raw-loop`) ran SSE2 code with four loads per cache line, and `raw`'s
/// hot-scan was half of what this machine does (BENCHMARKS.md, "Scans at
/// the vector width").
#[inline]
pub fn sum_words(bytes: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor and the OS support AVX-512F, just
            // detected: the only requirement of a target-feature function.
            return unsafe { sum_words_avx512(bytes) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            return unsafe { sum_words_avx2(bytes) };
        }
    }
    fold_page_or_words(bytes)
}

/// The fold [`sum_words`] compiles for each vector width. Written so that
/// it vectorises (a `chunks_exact` + `copy_from_slice` fold did not, once
/// inlined: 922 instructions per page under callgrind).
#[inline(always)]
fn fold_words(bytes: &[u8]) -> u64 {
    let (words, _) = bytes.as_chunks::<8>();
    words.iter().fold(0u64, |sum, word| {
        sum.wrapping_add(u64::from_le_bytes(*word))
    })
}

/// Bytes of a page's data words, the length every scan sums.
const PAGE_DATA_BYTES: usize = crate::bench::workload::PAGE_WORDS as usize * 8;

/// [`fold_words`], with a page's length as a constant where the slice has
/// it: the compiler then unrolls the whole page (one load per line with
/// AVX-512, no loop), which is what a program compiled for this processor
/// alone does.
#[inline(always)]
fn fold_page_or_words(bytes: &[u8]) -> u64 {
    match <&[u8; PAGE_DATA_BYTES]>::try_from(bytes) {
        Ok(page) => fold_words(page),
        Err(_) => fold_words(bytes),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_words_avx512(bytes: &[u8]) -> u64 {
    fold_page_or_words(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_words_avx2(bytes: &[u8]) -> u64 {
    fold_page_or_words(bytes)
}

/// Reads the little-endian u64 at `offset` of `bytes`.
#[inline]
pub fn load_u64(bytes: &[u8], offset: usize) -> Result<u64> {
    match bytes.get(offset..offset.wrapping_add(8)) {
        Some(slice) => {
            let mut word = [0u8; 8];
            word.copy_from_slice(slice);
            Ok(u64::from_le_bytes(word))
        }
        None => crate::bail!("offset {offset} is outside the {}-byte page", bytes.len()),
    }
}

/// Converts pool counters.
fn pool_counters(stats: pagepool::Stats) -> Counters {
    Counters {
        hits: stats.hits,
        misses: stats.misses,
        io_reads: stats.io_reads,
        io_writes: stats.io_writes,
        evictions: stats.evictions,
        optimistic_retries: stats.optimistic_retries,
        optimistic_fallbacks: stats.optimistic_fallbacks,
        eviction_write_backs: stats.eviction_write_backs,
        writer_write_backs: stats.writer_write_backs,
    }
}

/// Stores `value` at `offset` of a pagepool page under its exclusive latch.
fn pool_write(
    pin: &pagepool::ThreadPin<'_>,
    page_id: pagepool::PageId,
    offset: usize,
    value: u64,
) -> Result<u64> {
    let mut page = pin.write(page_id)?;
    page.store_u64(offset, value)?;
    page.set_lsn(LAST_LSN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
    Ok(value)
}

/// Opens a pagepool pool of `setup.pool_frames` frames over the data file.
fn open_pool(setup: &Setup<'_>) -> Result<(pagepool::BufferPool, pagepool::FileId)> {
    use crate::error::Context;
    let mut config = pagepool::PoolConfig::new(setup.pool_frames)
        .io_mode(pagepool::IoMode::Direct)
        .io_engine(setup.engine)
        .checkpoint_pages_per_sec(setup.checkpoint_pages_per_sec)
        .checkpoint_io_share_pct(setup.checkpoint_io_share_pct);
    if setup.checkpoint_pages_in_flight > 0 {
        config = config.checkpoint_pages_in_flight(setup.checkpoint_pages_in_flight);
    }
    if setup.writer {
        config = config.background_writer(pagepool::WriterConfig::default());
    }
    let pool = pagepool::BufferPool::open(config).context("opening the pool")?;
    let file = pool
        .open_file(setup.path)
        .with_context(|| format!("opening {}", setup.path.display()))?;
    let pages = pool.page_count(file)?;
    if pages < setup.file_pages {
        crate::bail!(
            "{} has {pages} pages, expected {}",
            setup.path.display(),
            setup.file_pages
        );
    }
    Ok((pool, file))
}
