//! Counters, kept per thread so that counting a hit writes no shared
//! cache line, and the gauges read off the frames when asked.
//!
//! Each thread that uses a pool gets its own [`ThreadStats`], written only
//! by that thread (a plain load and store, no read-modify-write) and read
//! by [`BufferPool::stats`](crate::BufferPool::stats), which sums every
//! thread's counters. A thread's counters outlive the thread, so totals
//! never go down.

use crate::sync::{Ordering, PlainCounter};

/// What a pool has done since it opened. Sum of every thread's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Accesses that found their page resident.
    pub hits: u64,
    /// Accesses that had to load their page.
    pub misses: u64,
    /// Pages evicted to make room.
    pub evictions: u64,
    /// Dirty pages written back (by eviction or flush).
    pub write_backs: u64,
    /// Optimistic reads that failed validation and ran again.
    pub optimistic_retries: u64,
    /// Optimistic reads that gave up and took the shared latch.
    pub optimistic_fallbacks: u64,
    /// Page reads issued to storage.
    pub io_reads: u64,
    /// Page writes issued to storage.
    pub io_writes: u64,
    /// Syncs (`fdatasync`) issued to storage.
    pub io_syncs: u64,
    /// Optimistic guards that ended in [`Restart`](crate::Restart): a
    /// failed validation or upgrade, or a page that was not ready.
    pub restarts: u64,
    /// Pages freed to a file's free list.
    pub pages_freed: u64,
    /// Pages handed out by `allocate` from a free list.
    pub pages_reused: u64,
    /// Page reads started without waiting for them (`prefetch`,
    /// `read_many`, the async API), also counted in `io_reads`.
    pub reads_started: u64,
    /// Started reads that failed (I/O error, short read, bad checksum):
    /// the page was not published.
    pub read_failures: u64,
    /// Write-backs done by the background writer (also in `write_backs`).
    pub writer_write_backs: u64,
    /// Write-backs done by faulting threads evicting a dirty victim (also
    /// in `write_backs`): what the background writer is there to avoid.
    pub eviction_write_backs: u64,
    /// Batches of write-backs (one WAL hook call and one submission each).
    pub write_batches: u64,
    /// Calls of the WAL hook.
    pub wal_flushes: u64,
    /// Passes of the background writer.
    pub writer_passes: u64,
    /// Page loads that ended (read in, failed, or a new page that needs
    /// no read): `misses` minus this is how many are in flight
    /// ([`Stats::loading_frames`]).
    pub loads_ended: u64,
    /// Optimistic guards started from a [`FrameHint`](crate::FrameHint)
    /// that did not name the page's frame (so through the page table).
    pub frame_hint_misses: u64,
    /// Frame hints stored by `store_frame_hint` (unlogged).
    pub frame_hint_stores: u64,
    /// Sleeps of checkpoints (`flush_until`) held back by their pace: a
    /// rate (`checkpoint_pages_per_sec`) or a share of the device
    /// (`checkpoint_io_share_pct`).
    pub checkpoint_pace_waits: u64,
    /// Gauge: frames holding a page (loaded, or being loaded).
    pub resident_frames: u64,
    /// Gauge: frames whose page differs from the file (not written back
    /// yet; pages written and not yet synced are not counted).
    pub dirty_frames: u64,
    /// Gauge: frames holding no page (free, or evicted and waiting for the
    /// epoch to let them go).
    pub free_frames: u64,
    /// Gauge: frames whose page is being read in.
    pub loading_frames: u64,
    /// Which I/O engine runs the started reads.
    pub engine: crate::EngineKind,
    /// Whether the frame arena is registered with io_uring as fixed
    /// buffers.
    pub fixed_buffers: bool,
    /// Whether the frame arena is advised to use 2 MiB pages
    /// (`MADV_HUGEPAGE` taken, transparent huge pages not off; arenas of
    /// 2 MiB and more). `pagepool doctor` says whether the kernel backs it.
    pub arena_huge_pages: bool,
}

impl Stats {
    /// Fraction of accesses that hit, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// What the pool tells an operator through `log` (see [`Reports`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Report {
    /// A page failed its check on load.
    Corrupt,
    /// A write-back failed; the page stays dirty.
    FailedWriteBack,
    /// A sync failed; the pages it covered are written again.
    FailedSync,
    /// Pages a failed sync covered are being written again.
    Rewrite,
    /// A miss has waited long for a free frame.
    SlowFrameWait,
    /// A miss gave up waiting for a free frame.
    FrameWaitTimeout,
    /// A read started without waiting failed.
    FailedRead,
}

const REPORTS: usize = 7;

/// How often each [`Report`] happened in this pool, so that only the 1st,
/// 2nd, 4th, 8th ... of a kind is logged: a failing disk is reported at
/// once, and a thousand failures log ten lines, not a thousand. Plain
/// `std` atomics: bookkeeping, not a protocol of the pool.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    seen: [std::sync::atomic::AtomicU64; REPORTS],
}

impl Reports {
    /// Logs one `report` through `log_line(n)` (`n`: how many of its kind
    /// so far) if it is one of those logged. A logger that panics is
    /// ignored: logging never fails a pool call.
    pub(crate) fn report(&self, report: Report, log_line: impl FnOnce(u64)) {
        let seen = &self.seen[report as usize];
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            let logged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| log_line(n)));
            drop(logged);
        }
    }
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Hits,
    Misses,
    Evictions,
    WriteBacks,
    OptimisticRetries,
    OptimisticFallbacks,
    IoReads,
    IoWrites,
    IoSyncs,
    Restarts,
    PagesFreed,
    PagesReused,
    ReadsStarted,
    ReadFailures,
    WriterWriteBacks,
    EvictionWriteBacks,
    WriteBatches,
    WalFlushes,
    WriterPasses,
    LoadsEnded,
    FrameHintMisses,
    FrameHintStores,
    CheckpointPaceWaits,
    /// Hits of reads under a session pin (`ThreadSlot::session_read`),
    /// counted apart because their count tells whether one is in
    /// progress; part of [`Stats::hits`].
    SessionHits,
}

const COUNTERS: usize = 24;

/// One thread's counters. Only the owning thread writes them. Aligned to
/// two cache lines (the adjacent-line prefetcher pairs lines) so that two
/// threads' counters, allocated one after the other, never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ThreadStats {
    counters: [PlainCounter; COUNTERS],
}

impl ThreadStats {
    /// Adds one to `counter`. Must only be called by the owning thread
    /// (the load-then-store would lose updates otherwise).
    #[inline]
    pub(crate) fn bump(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// The count of `counter` (the owning thread's own view).
    #[inline(always)]
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }

    /// [`bump`](Self::bump), returning the new count.
    #[inline(always)]
    pub(crate) fn bump_and_get(&self, counter: Counter) -> u64 {
        let cell = &self.counters[counter as usize];
        let count = cell.load(Ordering::Relaxed) + 1;
        cell.store(count, Ordering::Relaxed);
        count
    }

    /// Adds `n` to `counter`; as [`bump`](Self::bump), only from the
    /// owning thread.
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let cell = &self.counters[counter as usize];
        cell.store(cell.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Adds this thread's counters into `total`.
    pub(crate) fn add_to(&self, total: &mut Stats) {
        let get = |counter: Counter| self.counters[counter as usize].load(Ordering::Relaxed);
        total.hits += get(Counter::Hits) + get(Counter::SessionHits);
        total.misses += get(Counter::Misses);
        total.evictions += get(Counter::Evictions);
        total.write_backs += get(Counter::WriteBacks);
        total.optimistic_retries += get(Counter::OptimisticRetries);
        total.optimistic_fallbacks += get(Counter::OptimisticFallbacks);
        total.io_reads += get(Counter::IoReads);
        total.io_writes += get(Counter::IoWrites);
        total.io_syncs += get(Counter::IoSyncs);
        total.restarts += get(Counter::Restarts);
        total.pages_freed += get(Counter::PagesFreed);
        total.pages_reused += get(Counter::PagesReused);
        total.reads_started += get(Counter::ReadsStarted);
        total.read_failures += get(Counter::ReadFailures);
        total.writer_write_backs += get(Counter::WriterWriteBacks);
        total.eviction_write_backs += get(Counter::EvictionWriteBacks);
        total.write_batches += get(Counter::WriteBatches);
        total.wal_flushes += get(Counter::WalFlushes);
        total.writer_passes += get(Counter::WriterPasses);
        total.loads_ended += get(Counter::LoadsEnded);
        total.frame_hint_misses += get(Counter::FrameHintMisses);
        total.frame_hint_stores += get(Counter::FrameHintStores);
        total.checkpoint_pace_waits += get(Counter::CheckpointPaceWaits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_and_ratio() {
        let stats = ThreadStats::default();
        stats.bump(Counter::Hits);
        stats.bump(Counter::Hits);
        stats.bump(Counter::Hits);
        stats.bump(Counter::Misses);
        stats.bump(Counter::IoSyncs);
        let mut total = Stats::default();
        stats.add_to(&mut total);
        stats.add_to(&mut total);
        assert_eq!((total.hits, total.misses, total.io_syncs), (6, 2, 2));
        assert_eq!(total.hit_ratio(), 0.75);
        assert_eq!(Stats::default().hit_ratio(), 0.0);
    }
}
