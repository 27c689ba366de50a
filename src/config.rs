//! Pool configuration.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{IoEngine, IoMode};

/// The write-ahead-log hook: called before a batch of dirty pages is
/// written, with the pages and their LSNs; it must return only once the
/// log is durable up to [`WalFlush::max_lsn`]. An error keeps every page
/// of the batch dirty and unwritten, and reaches whoever waits for them.
///
/// It runs on the thread that writes the batch (the background writer, a
/// flush, an eviction), unpinned, while that thread holds shared latches
/// on the batch's pages: readers go on, writers of those pages wait. It
/// must not call into the pool.
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
    pub interval_ms: u64,
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
            interval_ms: 10,
            batch_pages: 64,
        }
    }
}

impl WriterConfig {
    /// Sets the share of frames ahead of the hand kept clean.
    pub fn clean_ahead_percent(mut self, percent: u32) -> WriterConfig {
        self.clean_ahead_percent = percent;
        self
    }

    /// Sets the sleep between passes.
    pub fn interval_ms(mut self, interval_ms: u64) -> WriterConfig {
        self.interval_ms = interval_ms;
        self
    }

    /// Sets the most pages per batch.
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
    /// How long a miss waits for a frame when every frame is latched.
    pub frame_wait_timeout_ms: u64,
    /// How long a thread waits for a latch another thread holds before it
    /// gives up with [`Error::LatchTimeout`](crate::Error::LatchTimeout);
    /// `u64::MAX` waits without a limit.
    pub latch_wait_timeout_ms: u64,
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
            frame_wait_timeout_ms: 10_000,
            latch_wait_timeout_ms: 10_000,
            optimistic_retries: 8,
            evict_batch: 16,
            io_engine: IoEngine::Auto,
            queue_depth: 128,
        }
    }

    /// A pool of about `mib` MiB of frames.
    pub fn with_mib(mib: usize) -> PoolConfig {
        PoolConfig::new(mib.saturating_mul(256))
    }

    /// Sets the I/O mode.
    pub fn io_mode(mut self, io_mode: IoMode) -> PoolConfig {
        self.io_mode = io_mode;
        self
    }

    /// Turns checksum verification on load on or off.
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
    /// (default 64).
    pub fn flush_batch_pages(mut self, pages: usize) -> PoolConfig {
        self.flush_batch_pages = pages;
        self
    }

    /// Sets the pages a checkpoint (`flush_until`) keeps in flight
    /// (default 4). More finish a checkpoint sooner and take more of the
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

    /// Sets how long a miss waits for a free frame.
    pub fn frame_wait_timeout_ms(mut self, timeout_ms: u64) -> PoolConfig {
        self.frame_wait_timeout_ms = timeout_ms;
        self
    }

    /// Sets how long a thread waits for a latch that another thread holds
    /// (`u64::MAX`: no limit). A latch is normally held for microseconds;
    /// a wait this long means threads wait for each other's guards in a
    /// cycle, or a guard is kept across something slow.
    pub fn latch_wait_timeout_ms(mut self, timeout_ms: u64) -> PoolConfig {
        self.latch_wait_timeout_ms = timeout_ms;
        self
    }

    /// The deadline of a latch wait that starts now, if it has one.
    pub(crate) fn latch_deadline(&self) -> Option<std::time::Instant> {
        // The model checkers have no clock (and must not branch on one).
        if cfg!(any(loom, feature = "shuttle")) {
            return None;
        }
        std::time::Instant::now()
            .checked_add(std::time::Duration::from_millis(self.latch_wait_timeout_ms))
    }

    /// Sets the optimistic attempts before the shared-latch fallback.
    pub fn optimistic_retries(mut self, retries: u32) -> PoolConfig {
        self.optimistic_retries = retries;
        self
    }

    /// Chooses the I/O engine (default [`IoEngine::Auto`]).
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

    /// Sets the clock's sweep step.
    pub fn evict_batch(mut self, frames: usize) -> PoolConfig {
        self.evict_batch = frames;
        self
    }

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
        }
        if self.flush_batch_pages == 0 || self.checkpoint_pages_in_flight == 0 {
            return Err(Error::InvalidConfig(
                "flush_batch_pages and checkpoint_pages_in_flight must be at least 1".into(),
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
            .field("frame_wait_timeout_ms", &self.frame_wait_timeout_ms)
            .field("latch_wait_timeout_ms", &self.latch_wait_timeout_ms)
            .field("optimistic_retries", &self.optimistic_retries)
            .field("evict_batch", &self.evict_batch)
            .field("io_engine", &self.io_engine)
            .field("queue_depth", &self.queue_depth)
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
        PoolConfig::with_mib(1).validate().unwrap();
        assert_eq!(PoolConfig::with_mib(2).frames, 512);
    }
}
