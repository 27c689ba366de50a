//! Pool configuration.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{IoEngine, IoMode};

/// The write-ahead-log hook: called with a dirty page's LSN before the page
/// is written; it must return only once the log is durable up to that LSN.
/// An error keeps the page dirty and unwritten.
pub type WalHook = Arc<dyn Fn(u64) -> io::Result<()> + Send + Sync>;

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
    /// Called before each dirty page is written.
    pub wal_hook: Option<WalHook>,
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

    /// Installs the write-ahead-log hook.
    pub fn wal_hook(
        mut self,
        hook: impl Fn(u64) -> io::Result<()> + Send + Sync + 'static,
    ) -> PoolConfig {
        self.wal_hook = Some(Arc::new(hook));
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
            .field("wal_hook", &self.wal_hook.as_ref().map(|_| "Fn(u64)"))
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
