//! The background writer: a thread of the pool's that keeps the frames
//! the clock hand is about to reach clean, so that a miss finds a clean
//! victim and writes nothing.
//!
//! # What it writes
//!
//! Each pass looks at the window of frames just ahead of the hand
//! ([`WriterConfig::clean_ahead_percent`] of the pool) and writes the
//! dirty pages there whose clock mark is set: the pages the hand will
//! evict when it gets there (a page without its mark gets a second
//! chance at the hand's next visit, and may be changed again before it
//! goes; writing it now would be a write for nothing). It writes them in
//! batches of [`WriterConfig::batch_pages`] (one WAL hook call each, the
//! whole batch in flight through the io_uring engine). It syncs a file
//! only when the images that evictions of its unsynced pages retain
//! (`durability.rs`) reach half their bound, so that a faulting thread
//! never has to sync: durability is the checkpoint's job, and a sync per
//! pass (tried first) cost `mixed` 10–20 % of its throughput here.
//!
//! Pacing: it writes only those pages, so a workload that evicts nothing
//! gets no writes from it, and it never writes a page twice for one
//! eviction. It sleeps [`WriterConfig::interval`] between passes, or
//! less: a faulting thread that had to write a dirty victim itself wakes
//! it ([`WriterSignal::kick`]), because the hand has outrun it.
//!
//! # Errors and stopping
//!
//! A failed batch leaves its pages dirty (`batch.rs`); the writer logs the
//! error (the first, then one in every [`LOG_EVERY`]) and goes on: the
//! page is then written by whoever needs it clean (an eviction, a flush),
//! who gets the error. A panic in a pass (the WAL hook's) is caught and
//! logged the same way; the thread never dies of one. Dropping the pool
//! stops the thread and joins it before the final flush.
//!
//! Under the model checkers there is no clock: the writer sleeps until it
//! is kicked or stopped.

use std::sync::Arc;

use crate::config::WriterConfig;
use crate::epoch::ThreadSlot;
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::io::Engine;
use crate::latch::{DIRTY, EXCL, FREE, MARK};
use crate::page::FileId;
use crate::pool::PoolCore;
use crate::stats::Counter;
use crate::sync::{lock, sleep_until, thread, AtomicU32, Condvar, Mutex, Ordering};
use crate::writeback::WriteOrigin;

/// Log one writer error in this many.
const LOG_EVERY: u64 = 1000;

/// How the pool wakes its writer.
#[derive(Debug)]
pub(crate) struct WriterSignal {
    state: Mutex<SignalState>,
    wake: Condvar,
    /// Set while a kick is waiting to be seen: later kicks take no lock.
    kicked: AtomicU32,
}

#[derive(Debug, Default)]
struct SignalState {
    kicked: bool,
    stopping: bool,
}

impl WriterSignal {
    pub(crate) fn new() -> WriterSignal {
        WriterSignal {
            state: Mutex::new(SignalState::default()),
            wake: Condvar::new(),
            kicked: AtomicU32::new(0),
        }
    }

    /// Wakes the writer for a pass now (cheap when one is already due).
    pub(crate) fn kick(&self) {
        if self.kicked.swap(1, Ordering::AcqRel) == 1 {
            return;
        }
        lock(&self.state).kicked = true;
        self.wake.notify_one();
    }

    /// Sleeps until kicked, stopped or `interval` has passed; false
    /// once stopped.
    fn wait(&self, interval: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now().checked_add(interval);
        let mut state = lock(&self.state);
        loop {
            if state.stopping {
                return false;
            }
            if state.kicked {
                state.kicked = false;
                self.kicked.store(0, Ordering::Release);
                return true;
            }
            let (next, timed_out) = sleep_until(&self.wake, state, deadline);
            state = next;
            if timed_out {
                return !state.stopping;
            }
        }
    }

    fn stop(&self) {
        lock(&self.state).stopping = true;
        self.wake.notify_all();
    }
}

/// The running writer: stopped and joined on drop.
pub(crate) struct BackgroundWriter {
    core: Arc<PoolCore>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for BackgroundWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackgroundWriter")
    }
}

impl BackgroundWriter {
    /// Starts the writer thread on `core`, writing through `engine`.
    pub(crate) fn start(
        core: &Arc<PoolCore>,
        engine: &Arc<Engine>,
        config: WriterConfig,
    ) -> Result<BackgroundWriter> {
        let run_core = Arc::clone(core);
        let engine = Arc::clone(engine);
        let thread = thread::Builder::new()
            .name("pagepool-writer".into())
            .spawn(move || run_core.run_writer(&engine, config))
            .map_err(|source| Error::EngineStart { source })?;
        Ok(BackgroundWriter {
            core: Arc::clone(core),
            thread: Some(thread),
        })
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.core.writer_signal.stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("pagepool: the background writer panicked");
            }
        }
    }
}

impl PoolCore {
    /// The writer thread's loop.
    fn run_writer(&self, engine: &Engine, config: WriterConfig) {
        let slot = self.epoch.slot();
        let mut errors = 0u64;
        while self.writer_signal.wait(config.interval) {
            let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.writer_pass(engine, &slot, config)
            }));
            let failure = match pass {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error.to_string(),
                Err(_) => "a panic (in the WAL hook or the storage)".to_string(),
            };
            if errors.is_multiple_of(LOG_EVERY) {
                log::warn!(
                    "pagepool: background write-back failed ({} so far), pages stay dirty: {failure}",
                    errors + 1
                );
            }
            errors += 1;
        }
    }

    /// One pass: writes the marked dirty pages of the window ahead of the
    /// hand, in batches, then syncs the files written to.
    pub(crate) fn writer_pass(
        &self,
        engine: &Engine,
        slot: &ThreadSlot,
        config: WriterConfig,
    ) -> Result<()> {
        let _unpinned = slot.block(None)?;
        slot.stats.bump(Counter::WriterPasses);
        let frame_count = self.frames.frame_count();
        let window = (frame_count * config.clean_ahead_percent as usize / 100).max(1);
        let hand = self.clock_hand.load(Ordering::Relaxed);
        let mut candidates: Vec<FrameId> = Vec::new();
        let mut written_to: Vec<FileId> = Vec::new();
        for step in 0..window.min(frame_count) {
            let frame_id = hand.wrapping_add(step) % frame_count;
            let meta = self.frames.meta(frame_id);
            if meta.latch.load() & (DIRTY | MARK | EXCL | FREE) != DIRTY | MARK {
                continue;
            }
            candidates.push(frame_id);
            if let Some(page_id) = meta.page_id() {
                if !written_to.contains(&page_id.file_id()) {
                    written_to.push(page_id.file_id());
                }
            }
        }
        let mut first_error = None;
        for batch in candidates.chunks(config.batch_pages) {
            let outcome = self.write_batch(engine, batch, slot, WriteOrigin::Writer);
            if let Some(error) = outcome.error {
                first_error.get_or_insert(error);
            }
        }
        let mut to_sync = Vec::new();
        for file_id in written_to {
            let file = self.file(file_id)?;
            if file.sync.wants_sync() {
                to_sync.push((file_id, file));
            }
        }
        let to_sync: Vec<_> = to_sync.iter().map(|(id, file)| (*id, &**file)).collect();
        if let Err(error) = self.sync_files(&to_sync, slot, engine) {
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    }
}
