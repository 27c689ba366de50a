//! The implementations a benchmark can run against, behind one trait.
//!
//! An implementation opens an [`Instance`] over the data file; the runner
//! then calls [`Instance::run_thread`] on each worker thread. The instance
//! sets up its per-thread state (an epoch pin, a scratch buffer) and hands
//! the [`Driver`] a closure that performs one [`Op`](super::workload::Op);
//! `Driver::drive` is generic over that closure, so each implementation's
//! loop is compiled on its own, with no dynamic call per operation.
//!
//! Adding a baseline (raw, dashmap-rwlock, mutex-lru, mmap, pread) is one
//! module here plus a variant of [`ImplKind`].

mod pagepool_optimistic;
mod pagepool_shared;

use std::path::Path;

use clap::ValueEnum;

use super::runner::Driver;
use super::workload::Workload;
use crate::error::Result;

/// Which implementation to benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImplKind {
    /// pagepool, optimistic reads (`BufferPool::optimistic`).
    Pagepool,
    /// pagepool, shared-latch reads (`BufferPool::read`).
    PagepoolShared,
}

impl ImplKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ImplKind::Pagepool => "pagepool",
            ImplKind::PagepoolShared => "pagepool-shared",
        }
    }

    /// Whether this implementation can run `workload` (an in-memory array
    /// cannot miss, for one).
    pub fn supports(self, _workload: Workload) -> bool {
        true
    }

    /// Opens a fresh instance over the data file.
    pub fn open(self, setup: &Setup<'_>) -> Result<Box<dyn Instance>> {
        Ok(match self {
            ImplKind::Pagepool => Box::new(pagepool_optimistic::Optimistic::open(setup)?),
            ImplKind::PagepoolShared => Box::new(pagepool_shared::Shared::open(setup)?),
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
    /// Optimistic reads that failed validation.
    pub optimistic_retries: u64,
    /// Optimistic reads that fell back to a latch.
    pub optimistic_fallbacks: u64,
}

impl Counters {
    /// The counts from `earlier` to `self`.
    pub fn since(self, earlier: Counters) -> Counters {
        Counters {
            hits: self.hits.saturating_sub(earlier.hits),
            misses: self.misses.saturating_sub(earlier.misses),
            io_reads: self.io_reads.saturating_sub(earlier.io_reads),
            io_writes: self.io_writes.saturating_sub(earlier.io_writes),
            optimistic_retries: self
                .optimistic_retries
                .saturating_sub(earlier.optimistic_retries),
            optimistic_fallbacks: self
                .optimistic_fallbacks
                .saturating_sub(earlier.optimistic_fallbacks),
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
}

/// Sums a page's data as little-endian u64 words (wrapping), as
/// `OptimisticView::sum_u64` does.
#[inline]
pub fn sum_words(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(0u64, |sum, chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        sum.wrapping_add(u64::from_le_bytes(word))
    })
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
        optimistic_retries: stats.optimistic_retries,
        optimistic_fallbacks: stats.optimistic_fallbacks,
    }
}

/// Opens a pagepool pool of `setup.pool_frames` frames over the data file.
fn open_pool(setup: &Setup<'_>) -> Result<(pagepool::BufferPool, pagepool::FileId)> {
    use crate::error::Context;
    let config = pagepool::PoolConfig::new(setup.pool_frames).io_mode(pagepool::IoMode::Direct);
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
