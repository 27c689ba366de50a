//! Pool configuration.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::{IoEngine, IoMode};

/// The write-ahead-log hook: called before a batch of dirty pages is
/// written, with the pages and their LSNs; it must return only once the
/// log is durable up to [`WalFlush::max_lsn`]. An error keeps every page
/// of the batch dirty and unwritten, and reaches whoever waits for them.
///
/// It runs on the thread that writes the batch (the background writer, a
/// flush, an eviction), unpinned, while that thread holds shared latches
/// on the batch's pages (readers go on, writers of those pages wait), or,
/// for a single page written back alone (an eviction, `flush(page)`), its
/// exclusive latch. It must not call into the pool.
pub type WalHook = Arc<dyn Fn(&WalFlush<'_>) -> io::Result<()> + Send + Sync>;

/// What the [`WalHook`] is asked to make durable: a batch of pages about
/// to be written, one log flush for all of them.
#[derive(Debug)]
pub struct WalFlush<'a> {
    pages: &'a [(crate::PageId, u64)],
    max_lsn: u64,
}

impl<'a> WalFlush<'a> {
    /// A request covering `pages` (page id and LSN each; at least one).
    pub(crate) fn new(pages: &'a [(crate::PageId, u64)]) -> WalFlush<'a> {
        let max_lsn = pages.iter().map(|&(_, lsn)| lsn).max().unwrap_or(0);
        WalFlush { pages, max_lsn }
    }

    /// The highest LSN of the batch: the log must be durable up to it.
    pub fn max_lsn(&self) -> u64 {
        self.max_lsn
    }

    /// The pages of the batch and the LSN each carries.
    pub fn pages(&self) -> &'a [(crate::PageId, u64)] {
        self.pages
    }
}

/// The background writer's settings (see
/// [`PoolConfig::background_writer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterConfig {
    /// The share of the frames, ahead of the clock hand, that the writer
    /// keeps clean, in percent (1 to 100).
    pub clean_ahead_percent: u32,
    /// How long the writer sleeps between passes when nobody wakes it.
    pub interval: Duration,
    /// The most pages one batch writes (one WAL flush, that many writes
    /// in flight).
    pub batch_pages: usize,
}

impl Default for WriterConfig {
    /// 10 % of the frames ahead of the hand, a pass every 10 ms, batches
    /// of 64 pages.
    fn default() -> WriterConfig {
        WriterConfig {
            clean_ahead_percent: 10,
            interval: Duration::from_millis(10),
            batch_pages: 64,
        }
    }
}

impl WriterConfig {
    /// Sets the share of the frames, ahead of the clock hand, that the
    /// writer keeps clean (default 10 %, between 1 and 100). Raise it
    /// when faulting threads still write dirty victims back
    /// ([`Stats::eviction_write_backs`](crate::Stats::eviction_write_backs)
    /// grows) under a write-heavy load; every percent more writes some
    /// pages back earlier, and a page changed again is written twice.
    pub fn clean_ahead_percent(mut self, percent: u32) -> WriterConfig {
        self.clean_ahead_percent = percent;
        self
    }

    /// Sets the sleep between passes when no miss wakes the writer
    /// (default 10 ms; at least 1 ms). A faulting thread that finds the
    /// clean window short wakes it at once, so this only bounds how stale
    /// the window gets in a quiet pool.
    pub fn interval(mut self, interval: Duration) -> WriterConfig {
        self.interval = interval;
        self
    }

    /// Sets the most pages per batch (default 64, at least 1): one WAL
    /// hook call and up to this many writes in flight. Lower it when the
    /// WAL hook is slow and batches hold shared latches too long; raise
    /// it for a device that wants deeper write queues.
    pub fn batch_pages(mut self, pages: usize) -> WriterConfig {
        self.batch_pages = pages;
        self
    }
}

/// The most frames a pool may have (16 TiB of 4 KiB frames; a frame id
/// fits in 32 bits).
pub const MAX_FRAMES: usize = 1 << 32;

/// How to open a [`BufferPool`](crate::BufferPool).
///
/// ```
/// use pagepool::{IoMode, PoolConfig};
/// let config = PoolConfig::new(1024)          // 4 MiB of frames
///     .io_mode(IoMode::Direct)
///     .verify_checksums(true)
///     .wal_hook(|lsn| { let _ = lsn; Ok(()) });
/// assert_eq!(config.frames, 1024);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Number of 4 KiB frames, allocated once at open.
    pub frames: usize,
    /// How data files opened with `open_file` are opened.
    pub io_mode: IoMode,
    /// Verify each page's checksum when it is loaded (pages are always
    /// stamped when written).
    pub verify_checksums: bool,
    /// Called before each batch of dirty pages is written.
    pub wal_hook: Option<WalHook>,
    /// The background writer, if the pool runs one (default: none).
    pub background_writer: Option<WriterConfig>,
    /// Pages per batch of `flush_all`, `flush_file` and `close` (one WAL
    /// hook call and this many writes in flight each).
    pub flush_batch_pages: usize,
    /// Pages per batch of `flush_until` (a checkpoint): few, so that the
    /// checkpoint leaves the device to the foreground reads (see
    /// [`PoolConfig::checkpoint_pages_in_flight`]).
    pub checkpoint_pages_in_flight: usize,
    /// The most pages a second a checkpoint (`flush_until`) writes; 0 (the
    /// default): as fast as its batches go. PostgreSQL's
    /// `checkpoint_completion_target`, as a rate.
    pub checkpoint_pages_per_sec: u64,
    /// About how much of the device's operations, in percent, a
    /// checkpoint takes while the foreground reads (1–100; 100, the
    /// default: no such limit). See [`PoolConfig::checkpoint_io_share_pct`].
    pub checkpoint_io_share_pct: u32,
    /// How long a miss waits for a frame when every frame is latched.
    pub frame_wait_timeout: Duration,
    /// How long a thread waits for a latch another thread holds before it
    /// gives up with [`Error::LatchTimeout`](crate::Error::LatchTimeout);
    /// [`Duration::MAX`] waits without a limit.
    pub latch_wait_timeout: Duration,
    /// Optimistic attempts before falling back to the shared latch.
    pub optimistic_retries: u32,
    /// Frames the clock examines per sweep step.
    pub evict_batch: usize,
    /// Who runs the reads the pool starts without waiting for them
    /// (`prefetch`, `read_many`, the async API).
    pub io_engine: IoEngine,
    /// The most reads the io_uring engine keeps in flight at once is twice
    /// this (its submission queue's size).
    pub queue_depth: u32,
    /// The fewest files a flush syncs through the io_uring engine at once
    /// (else each through its store); see
    /// [`PoolConfig::ring_sync_min_files`].
    pub ring_sync_min_files: usize,
    /// The pool's name: the `pool` label of its metrics.
    pub name: String,
    /// How often the pool publishes its [`Stats`](crate::Stats) through
    /// the `metrics` facade (feature `metrics`; ignored without it).
    pub metrics_interval: Duration,
}

impl PoolConfig {
    /// Defaults for a pool of `frames` frames: direct I/O, checksums
    /// verified, no WAL hook, a 10 s frame wait, a 10 s latch wait, 8
    /// optimistic attempts, sweeps of 16 frames.
    pub fn new(frames: usize) -> PoolConfig {
        PoolConfig {
            frames,
            io_mode: IoMode::Direct,
            verify_checksums: true,
            wal_hook: None,
            background_writer: None,
            flush_batch_pages: 64,
            checkpoint_pages_in_flight: 4,
            checkpoint_pages_per_sec: 0,
            checkpoint_io_share_pct: 100,
            frame_wait_timeout: Duration::from_secs(10),
            latch_wait_timeout: Duration::from_secs(10),
            optimistic_retries: 8,
            evict_batch: 16,
            io_engine: IoEngine::Auto,
            queue_depth: 128,
            ring_sync_min_files: 8,
            name: "pagepool".to_string(),
            metrics_interval: Duration::from_secs(1),
        }
    }

    /// A pool of about `mib` MiB of frames (256 frames a MiB).
    ///
    /// The frames are allocated, and registered with io_uring, once at
    /// open; size the pool for the working set the engine wants cached,
    /// since nothing grows it later.
    pub fn with_mib(mib: usize) -> PoolConfig {
        PoolConfig::new(mib.saturating_mul(256))
    }

    /// Sets how `open_file` opens data files (default
    /// [`IoMode::Direct`]: `O_DIRECT`, no copy in the kernel's page
    /// cache). [`IoMode::Buffered`] is for file systems that refuse
    /// `O_DIRECT` (tmpfs before Linux 6.6, ramfs), where open says so with
    /// [`Error::DirectIoUnsupported`](crate::Error::DirectIoUnsupported).
    pub fn io_mode(mut self, io_mode: IoMode) -> PoolConfig {
        self.io_mode = io_mode;
        self
    }

    /// Turns checksum verification on load on or off (default on). Pages
    /// are stamped when written either way; turning it off saves a
    /// CRC-32C of 4 KiB per miss (about a microsecond) and lets a
    /// corrupt page through as data. Leave it on unless the layer below
    /// already checks.
    pub fn verify_checksums(mut self, verify: bool) -> PoolConfig {
        self.verify_checksums = verify;
        self
    }

    /// Installs a write-ahead-log hook that is told the LSN the log must
    /// be durable up to (a batch's highest); see [`WalHook`].
    pub fn wal_hook(
        mut self,
        hook: impl Fn(u64) -> io::Result<()> + Send + Sync + 'static,
    ) -> PoolConfig {
        self.wal_hook = Some(Arc::new(move |flush: &WalFlush<'_>| hook(flush.max_lsn())));
        self
    }

    /// Installs a write-ahead-log hook that sees the whole batch (each
    /// page and its LSN); see [`WalHook`].
    pub fn wal_batch_hook(
        mut self,
        hook: impl Fn(&WalFlush<'_>) -> io::Result<()> + Send + Sync + 'static,
    ) -> PoolConfig {
        self.wal_hook = Some(Arc::new(hook));
        self
    }

    /// Runs a background writer (see [`WriterConfig`]): a thread of the
    /// pool's that writes dirty pages back in batches before the clock
    /// reaches them, so that a miss finds a clean victim.
    ///
    /// ```
    /// use pagepool::{PoolConfig, WriterConfig};
    /// let config = PoolConfig::new(1024)
    ///     .background_writer(WriterConfig::default().clean_ahead_percent(20));
    /// assert!(config.background_writer.is_some());
    /// ```
    pub fn background_writer(mut self, writer: WriterConfig) -> PoolConfig {
        self.background_writer = Some(writer);
        self
    }

    /// Sets the pages per batch of `flush_all`, `flush_file` and `close`
    /// (default 64; at least 1): one WAL hook call and this many writes in
    /// flight each.
    pub fn flush_batch_pages(mut self, pages: usize) -> PoolConfig {
        self.flush_batch_pages = pages;
        self
    }

    /// Sets the pages a checkpoint (`flush_until`) keeps in flight
    /// (default 4; at least 1). More finish a checkpoint sooner and take more of the
    /// device from the foreground's misses while it runs: measured on a
    /// 2-core VM under `mixed`, the throughput during a checkpoint was
    /// 0.41× of the throughput outside one with 64 in flight, 0.73× with
    /// 8 and 0.81× with 2 (BENCHMARKS.md).
    pub fn checkpoint_pages_in_flight(mut self, pages: usize) -> PoolConfig {
        self.checkpoint_pages_in_flight = pages;
        self
    }

    /// Paces checkpoints (`flush_until`) to at most `pages` pages a
    /// second (0: unpaced, the default): a checkpoint then takes longer
    /// and leaves more of the device to the foreground while it runs.
    pub fn checkpoint_pages_per_sec(mut self, pages: u64) -> PoolConfig {
        self.checkpoint_pages_per_sec = pages;
        self
    }

    /// Paces checkpoints (`flush_until`) by the foreground's reads: while
    /// they go on, a checkpoint takes about `pct` percent of the device's
    /// operations (after a burst of 16 pages, one page written per
    /// `(100 − pct) / pct` pages the pool has read since the checkpoint
    /// began: at 20, one per four; the foreground's own writes are not
    /// counted), and never less than 1,000 pages a second; when no read
    /// has been counted for 5 ms it writes unpaced. 1–100; 100 (the
    /// default) sets no such limit. Unlike
    /// [`checkpoint_pages_per_sec`](Self::checkpoint_pages_per_sec) it
    /// needs no knowledge of the device: a checkpoint under a busy
    /// foreground takes longer, one on an idle pool runs at full speed.
    /// Both limits apply when both are set; `Stats::checkpoint_pace_waits`
    /// counts the sleeps they cause.
    ///
    /// ```
    /// use pagepool::PoolConfig;
    ///
    /// let config = PoolConfig::new(1024).checkpoint_io_share_pct(20);
    /// assert_eq!(config.checkpoint_io_share_pct, 20);
    /// ```
    pub fn checkpoint_io_share_pct(mut self, pct: u32) -> PoolConfig {
        self.checkpoint_io_share_pct = pct;
        self
    }

    /// Sets how long a miss waits for a free frame when every frame is
    /// latched (default 10 s; more than zero). The wait ends early as
    /// soon as a guard is dropped; it times out
    /// ([`Error::NoFreeFrame`](crate::Error::NoFreeFrame)) only when the
    /// callers hold more guards at once than the pool has frames. Lower it
    /// for a service that should shed load instead of queueing.
    ///
    /// ```
    /// # use pagepool::PoolConfig;
    /// # use std::time::Duration;
    /// let config = PoolConfig::new(64).frame_wait_timeout(Duration::from_millis(500));
    /// # assert_eq!(config.frame_wait_timeout, Duration::from_millis(500));
    /// ```
    pub fn frame_wait_timeout(mut self, timeout: Duration) -> PoolConfig {
        self.frame_wait_timeout = timeout;
        self
    }

    /// Sets how long a thread waits for a latch that another thread holds
    /// (default 10 s; more than zero; [`Duration::MAX`]: no limit). A
    /// latch is normally held for microseconds; a wait this long means
    /// threads wait for each other's guards in a cycle, or a guard is
    /// kept across something slow. Not waiting at all is
    /// [`ThreadPin::try_read`](crate::ThreadPin::try_read) and
    /// [`ThreadPin::try_write`](crate::ThreadPin::try_write).
    pub fn latch_wait_timeout(mut self, timeout: Duration) -> PoolConfig {
        self.latch_wait_timeout = timeout;
        self
    }

    /// The deadline of a latch wait that starts now, if it has one.
    pub(crate) fn latch_deadline(&self) -> Option<std::time::Instant> {
        // The model checkers have no clock (and must not branch on one).
        if cfg!(any(loom, feature = "shuttle")) {
            return None;
        }
        std::time::Instant::now().checked_add(self.latch_wait_timeout)
    }

    /// Sets the optimistic attempts of [`BufferPool::optimistic`] before
    /// it falls back to the shared latch (default 8; 0 goes to the latch
    /// at once). A read retries only when a writer changed the page under
    /// it; raise it for pages written very often, where the latch would
    /// queue behind the writer anyway.
    ///
    /// [`BufferPool::optimistic`]: crate::BufferPool::optimistic
    pub fn optimistic_retries(mut self, retries: u32) -> PoolConfig {
        self.optimistic_retries = retries;
        self
    }

    /// Chooses the I/O engine (default [`IoEngine::Auto`]: io_uring where
    /// the kernel allows it, else [`IoEngine::Sync`]).
    /// [`IoEngine::Uring`] makes a kernel or sandbox that refuses io_uring
    /// an error at open instead of a quiet fallback; [`Stats::engine`]
    /// says which one runs.
    ///
    /// [`Stats::engine`]: crate::Stats::engine
    pub fn io_engine(mut self, engine: IoEngine) -> PoolConfig {
        self.io_engine = engine;
        self
    }

    /// Sets the io_uring engine's submission queue size (default 128; the
    /// engine keeps up to twice this many reads in flight). Raise it for a
    /// device that wants deeper queues; between 1 and 4096.
    pub fn queue_depth(mut self, entries: u32) -> PoolConfig {
        self.queue_depth = entries;
        self
    }

    /// Sets how many frames the clock examines per sweep step (default
    /// 16; at least 1). Larger steps take the clock's shared hand less
    /// often under many faulting threads, and clear more reference marks
    /// at a time.
    pub fn evict_batch(mut self, frames: usize) -> PoolConfig {
        self.evict_batch = frames;
        self
    }

    /// Sets the fewest files a flush (`flush_all`, `flush_until`, the
    /// background writer's pass) must sync at once for their `fdatasync`s
    /// to go through the io_uring engine, all in flight together (default
    /// 8; `usize::MAX`: never). Fewer go one after the other through their
    /// stores: the ring hands each sync to a kernel worker, which costs
    /// more than it saves for a few files. Measured on this project's VM
    /// (ext4 on a virtual disk, `examples/flush_files.rs`, medians of 60
    /// rounds, `docs/bench-ring-sync.txt`): the ring loses below 8 files
    /// (1 file: 279 against 218 µs; 4: 461 against 420 µs), wins from 8
    /// (709 against 813 µs) and more with more files (32: 1.28 against
    /// 2.23 ms). A device with more parallelism may want it lower.
    pub fn ring_sync_min_files(mut self, files: usize) -> PoolConfig {
        self.ring_sync_min_files = files;
        self
    }

    /// Names the pool (default `"pagepool"`): the `pool` label of every
    /// metric it reports, so that two pools of one process are told apart.
    pub fn name(mut self, name: impl Into<String>) -> PoolConfig {
        self.name = name.into();
        self
    }

    /// Sets how often the pool publishes its counters and gauges through
    /// the `metrics` facade (feature `metrics`; default 1 s, at least
    /// 1 ms). Each publication reads every frame's state word (see
    /// [`BufferPool::stats`](crate::BufferPool::stats)); match it to the
    /// exporter's scrape interval.
    pub fn metrics_interval(mut self, interval: Duration) -> PoolConfig {
        self.metrics_interval = interval;
        self
    }

    /// Refuses the settings that cannot work, with what to change.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.frames == 0 || self.frames > MAX_FRAMES {
            return Err(Error::InvalidConfig(format!(
                "frames must be between 1 and {MAX_FRAMES}, not {}",
                self.frames
            )));
        }
        if !(1..=4096).contains(&self.queue_depth) {
            return Err(Error::InvalidConfig(format!(
                "queue_depth must be between 1 and 4096, not {}",
                self.queue_depth
            )));
        }
        if let Some(writer) = &self.background_writer {
            if !(1..=100).contains(&writer.clean_ahead_percent) || writer.batch_pages == 0 {
                return Err(Error::InvalidConfig(format!(
                    "background_writer needs clean_ahead_percent in 1..=100 and batch_pages ≥ 1, not {writer:?}"
                )));
            }
            if writer.interval < Duration::from_millis(1) {
                return Err(Error::InvalidConfig(format!(
                    "background_writer's interval must be at least 1 ms (it would spin), not {:?}",
                    writer.interval
                )));
            }
        }
        if self.frame_wait_timeout.is_zero() || self.latch_wait_timeout.is_zero() {
            return Err(Error::InvalidConfig(format!(
                "frame_wait_timeout and latch_wait_timeout must be more than zero (a zero wait \
                 fails every contended access; ThreadPin::try_read and try_write do not wait), \
                 not {:?} and {:?}",
                self.frame_wait_timeout, self.latch_wait_timeout
            )));
        }
        if !(1..=100).contains(&self.checkpoint_io_share_pct) {
            return Err(Error::InvalidConfig(format!(
                "checkpoint_io_share_pct must be 1 to 100 (100: no share limit), not {}",
                self.checkpoint_io_share_pct
            )));
        }
        if self.flush_batch_pages == 0 || self.checkpoint_pages_in_flight == 0 {
            return Err(Error::InvalidConfig(
                "flush_batch_pages and checkpoint_pages_in_flight must be at least 1".into(),
            ));
        }
        if cfg!(feature = "metrics") && self.metrics_interval < Duration::from_millis(1) {
            return Err(Error::InvalidConfig(format!(
                "metrics_interval must be at least 1 ms, not {:?}",
                self.metrics_interval
            )));
        }
        if self.ring_sync_min_files == 0 {
            return Err(Error::InvalidConfig(
                "ring_sync_min_files must be at least 1 (usize::MAX: never through the ring)"
                    .into(),
            ));
        }
        if self.evict_batch == 0 {
            return Err(Error::InvalidConfig(
                "evict_batch must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConfig")
            .field("frames", &self.frames)
            .field("io_mode", &self.io_mode)
            .field("verify_checksums", &self.verify_checksums)
            .field("wal_hook", &self.wal_hook.as_ref().map(|_| "Fn(&WalFlush)"))
            .field("background_writer", &self.background_writer)
            .field("flush_batch_pages", &self.flush_batch_pages)
            .field(
                "checkpoint_pages_in_flight",
                &self.checkpoint_pages_in_flight,
            )
            .field("checkpoint_pages_per_sec", &self.checkpoint_pages_per_sec)
            .field("checkpoint_io_share_pct", &self.checkpoint_io_share_pct)
            .field("frame_wait_timeout", &self.frame_wait_timeout)
            .field("latch_wait_timeout", &self.latch_wait_timeout)
            .field("optimistic_retries", &self.optimistic_retries)
            .field("evict_batch", &self.evict_batch)
            .field("io_engine", &self.io_engine)
            .field("queue_depth", &self.queue_depth)
            .field("ring_sync_min_files", &self.ring_sync_min_files)
            .field("name", &self.name)
            .field("metrics_interval", &self.metrics_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let err = PoolConfig::new(0).validate().unwrap_err();
        assert!(err.to_string().contains("frames"), "{err}");
        let err = PoolConfig::new(4).evict_batch(0).validate().unwrap_err();
        assert!(err.to_string().contains("evict_batch"), "{err}");
        let err = PoolConfig::new(4)
            .latch_wait_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("latch_wait_timeout"), "{err}");
        let err = PoolConfig::new(4)
            .frame_wait_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("frame_wait_timeout"), "{err}");
        let writer = WriterConfig::default().interval(Duration::ZERO);
        let err = PoolConfig::new(4)
            .background_writer(writer)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("interval"), "{err}");
        let err = PoolConfig::new(4)
            .ring_sync_min_files(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("ring_sync_min_files"), "{err}");
        let err = PoolConfig::new(4).queue_depth(0).validate().unwrap_err();
        assert!(err.to_string().contains("queue_depth"), "{err}");
        let err = PoolConfig::new(4)
            .flush_batch_pages(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("flush_batch_pages"), "{err}");
        for pct in [0, 101] {
            let err = PoolConfig::new(4)
                .checkpoint_io_share_pct(pct)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("checkpoint_io_share_pct"), "{err}");
        }
        PoolConfig::new(4)
            .checkpoint_io_share_pct(1)
            .validate()
            .unwrap();
        PoolConfig::new(4)
            .latch_wait_timeout(Duration::MAX)
            .validate()
            .unwrap();
        PoolConfig::with_mib(1).validate().unwrap();
        assert_eq!(PoolConfig::with_mib(2).frames, 512);
    }
}
