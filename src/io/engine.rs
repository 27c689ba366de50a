//! I/O engines: who runs the reads that the pool starts without waiting
//! for them (prefetch, batched reads, async misses).
//!
//! | engine   | who reads                                   | the caller                     |
//! |----------|---------------------------------------------|--------------------------------|
//! | `Sync`   | the calling thread, at once                 | returns once the page is in    |
//! | `Worker` | one thread of the pool's, one read at a time | returns at once               |
//! | `Uring`  | the kernel, many reads in flight (`uring.rs`); one thread of the pool's reaps completions | returns at once |
//!
//! A read the pool hands an engine is a frame it has claimed for a page
//! (latched exclusively by no thread, mapped in the table: "in flight").
//! The engine reports each one exactly once through the pool's
//! [`CompletionFn`], on its own thread: `(frame_id, Some(result))` when it
//! did the I/O (`Uring`: the kernel's result, the bytes read), or
//! `(frame_id, None)` when the pool is to do the read now, on the
//! engine's thread (`Worker`). The pool then checks the page and publishes
//! it, or unmaps it; waiters of the frame wake either way.
//!
//! An engine stops when the pool drops it: it first waits for every read
//! it was given to be reported (so no read lands in a frame after the pool
//! is gone), then joins its thread.
//!
//! # Writes
//!
//! [`Engine::write`] writes a batch of frames and returns once every
//! write has ended, with one result per frame (the bytes written). Under
//! `Uring` the whole batch is in flight at once (runs of consecutive pages
//! as one `WRITEV`); the other engines, and stores that do not take ring
//! writes ([`Storage::ring_writes`](super::Storage::ring_writes)), are
//! written by the pool itself, one `write_page` at a time
//! ([`Engine::writes_through`] says which).
//!
//! A store without a descriptor ([`Storage::ring_fd`](super::Storage::ring_fd)
//! `None`, such as [`MemoryStorage`](super::MemoryStorage)) cannot be read
//! by the kernel: under `Uring` the pool reads its pages on the calling
//! thread, as `Sync` does.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sync::{lock, thread, Condvar, Mutex};

/// Which I/O engine a pool runs for the reads it starts without waiting
/// (see [`PoolConfig::io_engine`](crate::PoolConfig::io_engine)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoEngine {
    /// `Uring` where the kernel allows it, else `Sync`; the choice is
    /// logged and reported in [`Stats::engine`](crate::Stats::engine).
    #[default]
    Auto,
    /// Every read on the thread that asks for it: `prefetch` and the
    /// async API complete their misses before they return.
    Sync,
    /// Reads on one background thread of the pool's, one at a time:
    /// overlaps a miss with the caller's work, not misses with each other.
    /// Works with any [`Storage`](super::Storage); the models use it.
    Worker,
    /// io_uring: many reads in flight from few threads, read straight into
    /// the frames (registered as fixed buffers where the memory-lock limit
    /// allows). Opening a pool fails where the kernel refuses io_uring.
    Uring,
}

/// The engine a pool runs (what [`IoEngine::Auto`] chose).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// Reads on the calling thread.
    #[default]
    Sync,
    /// Reads on the pool's worker thread.
    Worker,
    /// Reads through io_uring.
    Uring,
}

impl EngineKind {
    /// A short name: `sync`, `worker`, `uring`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Sync => "sync",
            EngineKind::Worker => "worker",
            EngineKind::Uring => "uring",
        }
    }
}

/// How an engine reports a read it was given: the frame, and the result of
/// the I/O it did (`None`: do the read now, on this thread). Runs on the
/// engine's thread; must not panic (the pool's catches its own).
pub(crate) type CompletionFn = Arc<dyn Fn(usize, Option<io::Result<usize>>) + Send + Sync>;

/// One page transfer for the kernel: `PAGE_SIZE` bytes at `offset` of
/// `fd` into (a read) or out of (a write) the frame at `buf`.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(any(loom, feature = "shuttle"), allow(dead_code))]
pub(crate) struct FrameIo {
    pub(crate) frame_id: usize,
    pub(crate) fd: RawFd,
    pub(crate) offset: u64,
    /// The frame's first byte. A read's frame is claimed for it, so
    /// nothing else touches it until the read is reported; a write's frame
    /// is latched (shared) by the writer until the write has ended, so
    /// nothing stores to it.
    pub(crate) buf: *mut u8,
}

/// A running engine.
pub(crate) enum Engine {
    Sync,
    Worker(Worker),
    #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
    Uring(super::uring::Uring),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind().name())
    }
}

impl Engine {
    /// Starts the engine `choice` names. `arena` is the frame memory (for
    /// `Uring` to register); `complete` is called for every read given.
    pub(crate) fn start(
        choice: IoEngine,
        arena: Option<(*mut u8, usize)>,
        queue_depth: u32,
        complete: CompletionFn,
    ) -> Result<Engine> {
        match choice {
            IoEngine::Sync => Ok(Engine::Sync),
            IoEngine::Worker => Worker::start(complete).map(Engine::Worker),
            IoEngine::Uring | IoEngine::Auto => {
                Self::start_uring(choice, arena, queue_depth, complete)
            }
        }
    }

    #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
    fn start_uring(
        choice: IoEngine,
        arena: Option<(*mut u8, usize)>,
        queue_depth: u32,
        complete: CompletionFn,
    ) -> Result<Engine> {
        match super::uring::Uring::start(arena, queue_depth, complete) {
            Ok(uring) => {
                log::info!("pagepool: I/O engine io_uring ({})", uring.describe());
                Ok(Engine::Uring(uring))
            }
            Err(source) if choice == IoEngine::Auto => {
                log::info!("pagepool: io_uring refused ({source}); I/O engine sync");
                Ok(Engine::Sync)
            }
            Err(source) => Err(Error::UringUnavailable { source }),
        }
    }

    #[cfg(not(all(target_os = "linux", not(any(loom, feature = "shuttle")))))]
    fn start_uring(
        choice: IoEngine,
        _arena: Option<(*mut u8, usize)>,
        _queue_depth: u32,
        _complete: CompletionFn,
    ) -> Result<Engine> {
        match choice {
            IoEngine::Auto => Ok(Engine::Sync),
            _ => Err(Error::UringUnavailable {
                source: io::Error::new(io::ErrorKind::Unsupported, "not built with io_uring"),
            }),
        }
    }

    /// Which engine this is.
    pub(crate) fn kind(&self) -> EngineKind {
        match self {
            Engine::Sync => EngineKind::Sync,
            Engine::Worker(_) => EngineKind::Worker,
            #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
            Engine::Uring(_) => EngineKind::Uring,
        }
    }

    /// Whether the arena is registered with the kernel as fixed buffers.
    pub(crate) fn fixed_buffers(&self) -> bool {
        match self {
            #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
            Engine::Uring(uring) => uring.fixed_buffers(),
            _ => false,
        }
    }

    /// Whether reads of a store with this descriptor go to the engine
    /// (else the caller reads at once).
    pub(crate) fn takes(&self, fd: Option<RawFd>) -> bool {
        let _ = fd;
        match self {
            Engine::Sync => false,
            Engine::Worker(_) => true,
            #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
            Engine::Uring(_) => fd.is_some(),
        }
    }

    /// Whether writes of a store with this descriptor go to the engine
    /// ([`write`](Self::write)); else the pool writes them itself.
    pub(crate) fn writes_through(&self, fd: Option<RawFd>) -> bool {
        let _ = fd;
        match self {
            #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
            Engine::Uring(_) => fd.is_some(),
            _ => false,
        }
    }

    /// Writes every frame of `writes` (each of which
    /// [`writes_through`](Self::writes_through) accepted) and returns once
    /// all have ended: one result per write, in order, the bytes written.
    pub(crate) fn write(&self, writes: &[FrameIo]) -> Vec<io::Result<usize>> {
        let _ = writes;
        match self {
            #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
            Engine::Uring(uring) => uring.write(writes),
            _ => unreachable!("only the io_uring engine takes writes"),
        }
    }

    /// Syncs (`fdatasync`) the files of `fds` (each of which
    /// [`writes_through`](Self::writes_through) accepted), all at once, and
    /// returns once all have ended: one result per file, in order.
    pub(crate) fn sync(&self, fds: &[RawFd]) -> Vec<io::Result<()>> {
        let _ = fds;
        match self {
            #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
            Engine::Uring(uring) => uring.sync(fds),
            _ => unreachable!("only the io_uring engine takes syncs"),
        }
    }

    /// Hands over reads (every one of which [`takes`](Self::takes)
    /// accepted); each is reported once through the completion function.
    /// Never fails: a read the kernel refuses is reported with its error.
    pub(crate) fn submit(&self, reads: &[FrameIo]) {
        match self {
            Engine::Sync => unreachable!("the sync engine takes no reads"),
            Engine::Worker(worker) => worker.submit(reads),
            #[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
            Engine::Uring(uring) => uring.submit(reads),
        }
    }
}

/// The `Worker` engine: a queue of frames and a thread that hands each
/// back to the pool to read.
pub(crate) struct Worker {
    shared: Arc<WorkerShared>,
    thread: Option<thread::JoinHandle<()>>,
}

struct WorkerShared {
    state: Mutex<WorkerState>,
    ready: Condvar,
}

#[derive(Default)]
struct WorkerState {
    queue: std::collections::VecDeque<usize>,
    stopping: bool,
}

impl Worker {
    fn start(complete: CompletionFn) -> Result<Worker> {
        let shared = Arc::new(WorkerShared {
            state: Mutex::new(WorkerState::default()),
            ready: Condvar::new(),
        });
        let run = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("pagepool-io".into())
            .spawn(move || run.run(&complete))
            .map_err(|source| Error::EngineStart { source })?;
        Ok(Worker {
            shared,
            thread: Some(thread),
        })
    }

    fn submit(&self, reads: &[FrameIo]) {
        let mut state = lock(&self.shared.state);
        state.queue.extend(reads.iter().map(|read| read.frame_id));
        drop(state);
        self.shared.ready.notify_one();
    }
}

impl WorkerShared {
    /// Reports queued frames until stopped with an empty queue.
    fn run(&self, complete: &CompletionFn) {
        let mut state = lock(&self.state);
        loop {
            if let Some(frame_id) = state.queue.pop_front() {
                drop(state);
                complete(frame_id, None);
                state = lock(&self.state);
            } else if state.stopping {
                return;
            } else {
                state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("pagepool: the I/O worker thread panicked");
            }
        }
    }
}
