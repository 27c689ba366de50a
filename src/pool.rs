//! The buffer pool: the public API over frames, latches, table and storage.
//!
//! # Access protocol
//!
//! Every access starts with a lock-free page-table lookup under an epoch
//! pin, then works on the frame's state word:
//!
//! - `read`: take the shared latch; check that the frame still holds the
//!   page (it may have been recycled between lookup and latch); hand out a
//!   [`PageRef`].
//! - `write`: the same with the exclusive latch and a [`PageMut`].
//! - `optimistic`: no latch. Record the version, note the frame's page id,
//!   run the closure on atomic loads, validate the version and the page id.
//!   The epoch pin held throughout keeps the frame from being reused (and
//!   overwritten by an `O_DIRECT` read) under the closure. The table's
//!   answer is only a hint (a slot can be refilled while it is read, see
//!   `table.rs`), so the page-id check is what proves the frame held this
//!   page; a version that validates proves it held it throughout. After
//!   `optimistic_retries` failed validations, take the shared latch.
//!
//! The first optimistic attempt is inlined into the caller (a hit is a
//! bucket line, a state word and the data); everything else — retries,
//! waits, misses, the fallback — is one out-of-line call. [`ThreadPin`]'s
//! methods are these with the thread's slot in hand; the pool's own find
//! the slot in a thread-local first.
//! - a miss loads the page (see `miss.rs`) and returns its frame still held
//!   exclusively, so the caller that paid for the load gets the page.
//!
//! A thread that must wait (for a writer, or another thread's load of the
//! same page) drops its epoch pin first and parks; see [`crate::latch`].
//!
//! # Waiting only for what can end
//!
//! Before a thread waits for a frame, `wait_for_page` checks, in order:
//!
//! 1. The frame holds the page (a table hint can name another page's
//!    frame; waiting for that page's holder could deadlock). The state is
//!    read before the page id, and a claim publishes the page id before
//!    its state, so the state's version belongs to this page's tenancy.
//! 2. The state still blocks the access.
//! 3. This thread does not hold a latch on the frame itself (its
//!    [`HeldLatches`](crate::held)): if it does, waiting would never end.
//!    A shared holder asking for another shared latch while a writer is
//!    pending takes it at once (the writer waits for the first one); an
//!    optimistic read of a page the thread holds exclusively reads it
//!    directly (no one else can change it); everything else is
//!    [`Error::SelfDeadlock`].
//! 4. The thread is not pinned by an optimistic read's closure
//!    ([`Error::WouldBlockWhilePinned`]).
//!
//! The wait itself ends when the state stops blocking, when the version
//! moves (the frame may hold another page now), or after
//! `latch_wait_timeout` ([`Error::LatchTimeout`]). Only these slow paths
//! pay for the checks; a hit runs none of them.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::access::{PageMut, PageRef, ThreadPin};
use crate::config::PoolConfig;
use crate::epoch::{EpochDomain, SessionRead, ThreadSlot};
use crate::error::{Error, Result};
use crate::file_table::FileTable;
use crate::frames::{FrameId, FrameMeta, Frames};
use crate::held::GuardKind;
use crate::io::{CompletionFn, DirectFile, Engine, FileIdentity, Storage};
use crate::latch::{Blocked, TimedOut, WaitQueues, Want, DIRTY, FREE};
use crate::lifecycle::HeaderState;
#[cfg(all(feature = "metrics", not(any(loom, feature = "shuttle"))))]
use crate::metrics::MetricsPublisher;
use crate::metrics::PoolMetrics;
use crate::miss::{FreeFrames, Load, LoadFailures, ReadIntents};
use crate::page::{FileId, PageId, MAX_PAGES_PER_FILE};
use crate::stats::{Counter, Reports, Stats};
use crate::sync::{AtomicU64, AtomicUsize, FrameWord, Ordering, RwLock};
use crate::table::PageTable;
use crate::view::OptimisticView;
use crate::writeback::durability::SyncTracker;
use crate::writeback::{BackgroundWriter, RecoveryLsns, WriterSignal};

/// Cache lines of a page that a shared read's hit asks for before it
/// takes the latch (see `read_in`).
const READ_PREFETCH_LINES: usize = 2;

/// Why an optimistic attempt on a frame did not produce a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The frame was latched exclusively or free: nothing was read.
    NotBegun,
    /// The closure ran, but the version moved or the frame held another
    /// page.
    NotValidated,
}

/// What a wait for a page's frame came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// Try the frame again: the holder left, or the version moved.
    Retry,
    /// The frame holds another page: look the page up again, exactly.
    Moved,
    /// This thread itself holds a latch on the frame (which holds the
    /// page), of this kind: the caller decides, since waiting cannot end.
    HeldByCaller(GuardKind),
}

/// A data file registered in the pool.
#[derive(Debug)]
pub(crate) struct DataFile {
    pub(crate) storage: Box<dyn Storage>,
    /// The file's device and inode, if the store is a file.
    pub(crate) identity: Option<FileIdentity>,
    /// Pages in the file, allocated pages included; only grows.
    pub(crate) page_count: AtomicU64,
    /// Writes not yet made durable (see `durability.rs`).
    pub(crate) sync: SyncTracker,
    /// Whether page 0 is a header with a free list (see `lifecycle/`).
    pub(crate) header: HeaderState,
}

/// A buffer pool: a fixed set of 4 KiB frames caching pages of one or more
/// files, shared by many threads.
///
/// ```
/// use pagepool::{BufferPool, MemoryStorage, PoolConfig};
///
/// let pool = BufferPool::open(PoolConfig::new(64))?;
/// let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
///
/// let (page_id, mut page) = pool.allocate(file)?;
/// page.store_u64(0, 42)?;
/// drop(page);
///
/// let value = pool.optimistic(page_id, |view| view.load_u64(0))??;
/// assert_eq!(value, 42);
/// assert_eq!(&pool.read(page_id)?[..8], &42u64.to_le_bytes());
/// pool.close()?;
/// # Ok::<(), pagepool::Error>(())
/// ```
pub struct BufferPool {
    /// Everything a thread other than the caller's may need: the I/O
    /// engine's completion thread finishes loads through it.
    pub(crate) core: Arc<PoolCore>,
    /// The background writer, if configured: stopped and joined first
    /// when the pool drops.
    writer: Option<BackgroundWriter>,
    /// The I/O engine (its completion thread holds `core`; the writer
    /// holds it too). Dropped after
    /// the final flush, which joins the thread.
    pub(crate) engine: Arc<Engine>,
    /// Set once `close` has flushed everything; `Drop` then skips flushing.
    closed: bool,
    /// The `pagepool-metrics` thread (holds `core` and `engine`): stopped
    /// and joined first when the pool drops.
    #[cfg(all(feature = "metrics", not(any(loom, feature = "shuttle"))))]
    metrics_publisher: Option<MetricsPublisher>,
}

/// The pool's shared state: frames, table, wait queues, files, epoch.
/// [`BufferPool`] derefs to it, so the pool's code reads `self.frames`.
/// (`pub` in a private module: nameable nowhere outside the crate, and
/// with no public field or method.)
pub struct PoolCore {
    pub(crate) frames: Frames,
    pub(crate) table: PageTable,
    pub(crate) queues: WaitQueues,
    pub(crate) files: RwLock<FileTable>,
    pub(crate) free: Arc<FreeFrames>,
    pub(crate) clock_hand: CachePadded<AtomicUsize>,
    pub(crate) epoch: EpochDomain,
    pub(crate) config: PoolConfig,
    /// Errors of started reads, for their starters (`miss/finish.rs`).
    pub(crate) load_failures: LoadFailures,
    /// Whether each frame's read in flight is wanted (`miss/finish.rs`).
    pub(crate) read_intents: ReadIntents,
    /// Each frame's recovery LSN (`writeback/dirty.rs`).
    pub(crate) recovery_lsns: RecoveryLsns,
    /// Wakes the background writer (`writeback/writer.rs`).
    pub(crate) writer_signal: WriterSignal,
    /// Load latencies and the `metrics` facade (feature `metrics`).
    pub(crate) metrics: Arc<PoolMetrics>,
    /// How often each kind of log line happened (rate limit).
    pub(crate) reports: Reports,
}

/// A session read begun on a frame (`PoolCore::session_begin`).
pub(crate) struct SessionAttempt<'a> {
    reading: SessionRead<'a>,
    frame_id: FrameId,
    meta: &'a FrameMeta,
    words: &'a [FrameWord],
    /// The state word at the start.
    begin: u64,
    /// The frame's page id at the start.
    held: u64,
}

impl<'a> SessionAttempt<'a> {
    #[inline(always)]
    fn view(&self) -> OptimisticView<'a> {
        OptimisticView::new(self.words)
    }

    /// Ends the read: a hit if it validates (and the frame held
    /// `page_id`), else why not.
    #[inline(always)]
    fn end(self, page_id: PageId) -> std::result::Result<(), Option<(FrameId, Attempt)>> {
        // `page_id.raw()` is never NONE_RAW, so a free frame cannot match.
        if self.meta.latch.optimistic_validate(self.begin) && self.held == page_id.raw() {
            self.meta.latch.clear_mark(self.begin);
            self.reading.hit();
            Ok(())
        } else {
            Err(Some((self.frame_id, Attempt::NotValidated)))
        }
    }
}

/// A session read whose closure returned an error: the error if the read
/// validates, else it is dropped and the read fails.
#[cold]
#[inline(never)]
fn session_error<T, E>(
    attempt: SessionAttempt<'_>,
    page_id: PageId,
    error: E,
) -> std::result::Result<std::result::Result<T, E>, Option<(FrameId, Attempt)>> {
    attempt.end(page_id)?;
    Ok(Err(error))
}

#[doc(hidden)]
impl std::ops::Deref for BufferPool {
    type Target = PoolCore;

    #[inline(always)]
    fn deref(&self) -> &PoolCore {
        &self.core
    }
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// [`BufferPool::close`] could not write everything back. The pool is
/// handed back, every page that failed still dirty, so the caller can retry
/// or inspect; converting this into [`Error`] drops the pool, which tries
/// once more and logs what it still could not write.
#[derive(Debug)]
pub struct CloseError {
    /// The first error met.
    pub error: Error,
    /// The pool, still open.
    pub pool: Box<BufferPool>,
}

impl std::fmt::Display for CloseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "closing the pool failed: {}", self.error)
    }
}

impl std::error::Error for CloseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<CloseError> for Error {
    fn from(e: CloseError) -> Error {
        e.error
    }
}

impl BufferPool {
    /// Opens a pool: allocates and zeroes every frame now, once.
    pub fn open(config: PoolConfig) -> Result<BufferPool> {
        config.validate()?;
        let frames = Frames::new(config.frames).ok_or_else(|| {
            Error::InvalidConfig(format!("cannot allocate {} frames", config.frames))
        })?;
        let frame_count = config.frames;
        let config_name = config.name.clone();
        let core = Arc::new(PoolCore {
            table: PageTable::new(config.frames),
            queues: WaitQueues::new(config.frames.clamp(1, 1024)),
            files: RwLock::new(FileTable::default()),
            free: FreeFrames::new(config.frames),
            clock_hand: CachePadded::new(AtomicUsize::new(0)),
            epoch: EpochDomain::new(),
            frames,
            config,
            load_failures: LoadFailures::default(),
            read_intents: ReadIntents::new(frame_count),
            recovery_lsns: RecoveryLsns::new(frame_count),
            writer_signal: WriterSignal::new(),
            metrics: Arc::new(PoolMetrics::new(frame_count, &config_name)),
            reports: Reports::default(),
        });
        let engine = Arc::new(Self::start_engine(&core)?);
        log::info!(
            "pagepool: {} frames ({} MiB), huge pages {}, I/O engine {}{}",
            core.frames.frame_count(),
            core.frames.frame_count() >> 8,
            if core.frames.huge_pages() {
                "advised"
            } else {
                "not advised"
            },
            engine.kind().name(),
            if engine.fixed_buffers() {
                " with fixed buffers"
            } else {
                ""
            },
        );
        let writer = match core.config.background_writer {
            Some(writer) => Some(BackgroundWriter::start(&core, &engine, writer)?),
            None => None,
        };
        Ok(BufferPool {
            #[cfg(all(feature = "metrics", not(any(loom, feature = "shuttle"))))]
            metrics_publisher: Some(Self::start_metrics(&core, &engine)?),
            core,
            writer,
            engine,
            closed: false,
        })
    }

    /// Starts the thread that publishes the stats through `metrics`.
    #[cfg(all(feature = "metrics", not(any(loom, feature = "shuttle"))))]
    fn start_metrics(core: &Arc<PoolCore>, engine: &Arc<Engine>) -> Result<MetricsPublisher> {
        let (snapshot_core, snapshot_engine) = (Arc::clone(core), Arc::clone(engine));
        MetricsPublisher::start(
            core.config.metrics_interval,
            Arc::clone(&core.metrics),
            move || snapshot_core.stats_snapshot(&snapshot_engine),
        )
        .map_err(|source| Error::EngineStart { source })
    }

    /// Publishes the counters and gauges through the `metrics` facade now
    /// (the pool also does every
    /// [`metrics_interval`](PoolConfig::metrics_interval)); see
    /// [`Stats`] for what each means.
    ///
    /// ```
    /// # use pagepool::*;
    /// // With a recorder installed (metrics_exporter_prometheus, say):
    /// let pool = BufferPool::open(PoolConfig::new(64).name("orders"))?;
    /// pool.publish_metrics(); // pagepool_hits_total{pool="orders"} ...
    /// # Ok::<(), pagepool::Error>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn publish_metrics(&self) {
        self.metrics.publish(&self.stats());
    }

    /// Starts the configured I/O engine; its completions end loads
    /// through `core`, on the engine's thread.
    fn start_engine(core: &Arc<PoolCore>) -> Result<Engine> {
        let finisher = Arc::clone(core);
        let complete: CompletionFn = Arc::new(move |frame_id, outcome| {
            let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                finisher.finish_load(frame_id, outcome)
            }));
            if finished.is_err() {
                log::error!("pagepool: ending the read into frame {frame_id} panicked");
            }
        });
        Engine::start(
            core.config.io_engine,
            core.frames.region(),
            core.config.queue_depth,
            complete,
        )
    }

    /// Opens (creating with mode 0600 if absent) a data file with the
    /// configured [`IoMode`](crate::IoMode), and locks it for this pool,
    /// under the lowest file id that is free (0 for the first).
    ///
    /// A file already open in this pool, under any path, is
    /// [`Error::AlreadyOpen`]; one locked by another open (another process,
    /// another pool) is [`Error::FileLocked`].
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<FileId> {
        self.open_file_under(None, path.as_ref())
    }

    /// Opens a data file as [`open_file`](BufferPool::open_file) does, under
    /// the file id `file_id`: the id an engine's catalog or log recorded
    /// for it, so that the page ids it logged name the same pages after a
    /// restart. An id another open file has is [`Error::FileIdInUse`].
    ///
    /// ```no_run
    /// # use pagepool::*;
    /// # fn demo(pool: &BufferPool) -> Result<()> {
    /// // The catalog says: id 3 is orders.db, id 9 is orders.idx.
    /// pool.open_file_as(FileId::new(3).unwrap(), "orders.db")?;
    /// pool.open_file_as(FileId::new(9).unwrap(), "orders.idx")?;
    /// # Ok(()) }
    /// ```
    pub fn open_file_as(&self, file_id: FileId, path: impl AsRef<Path>) -> Result<FileId> {
        self.open_file_under(Some(file_id), path.as_ref())
    }

    fn open_file_under(&self, file_id: Option<FileId>, path: &Path) -> Result<FileId> {
        // The table stays locked from the checks to the insert, so a
        // refused open (the id taken, no id left) creates no file on disk.
        // The open itself is a few system calls; lookups wait for them.
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        // Before the open: our own lock would make a second open of a file
        // this pool holds look like someone else's.
        files.refuse_open_twice(FileIdentity::of_path(path).ok(), || path.to_path_buf())?;
        let file_id = Self::choose_file_id(&files, file_id)?;
        let file = DirectFile::open(path, self.config.io_mode)?;
        Self::register(&mut files, file_id, Box::new(file))
    }

    /// Registers any [`Storage`] as a data file (in-memory stores for tests,
    /// fault injectors), under the lowest free file id. A store whose
    /// [`Storage::file_identity`] is that of a file already open here is
    /// refused ([`Error::AlreadyOpen`]).
    pub fn open_storage(&self, storage: Box<dyn Storage>) -> Result<FileId> {
        self.open_storage_under(None, storage)
    }

    /// Registers a [`Storage`] under the file id `file_id` (see
    /// [`open_file_as`](BufferPool::open_file_as)).
    pub fn open_storage_as(&self, file_id: FileId, storage: Box<dyn Storage>) -> Result<FileId> {
        self.open_storage_under(Some(file_id), storage)
    }

    fn open_storage_under(
        &self,
        file_id: Option<FileId>,
        storage: Box<dyn Storage>,
    ) -> Result<FileId> {
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        files.refuse_open_twice(storage.file_identity(), || {
            PathBuf::from(format!("{storage:?}"))
        })?;
        let file_id = Self::choose_file_id(&files, file_id)?;
        Self::register(&mut files, file_id, storage)
    }

    /// The id a file opens under: the one asked for if it is free, else
    /// the lowest free one.
    fn choose_file_id(files: &FileTable, file_id: Option<FileId>) -> Result<FileId> {
        match file_id {
            Some(file_id) if files.get(file_id).is_some() => Err(Error::FileIdInUse(file_id)),
            Some(file_id) => Ok(file_id),
            None => files.lowest_free(),
        }
    }

    /// Adds `storage` to the table under `file_id` (checked free).
    fn register(
        files: &mut FileTable,
        file_id: FileId,
        storage: Box<dyn Storage>,
    ) -> Result<FileId> {
        let page_count = storage.page_count().map_err(|source| Error::Open {
            path: PathBuf::from(format!("{storage:?}")),
            source,
        })?;
        let identity = storage.file_identity();
        let file = Arc::new(DataFile {
            storage,
            identity,
            page_count: AtomicU64::new(page_count),
            sync: SyncTracker::default(),
            header: HeaderState::at_open(page_count),
        });
        files.insert(file_id, file)?;
        Ok(file_id)
    }

    /// The ids of the open files, in id order.
    pub fn file_ids(&self) -> Vec<FileId> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        files.iter().map(|(file_id, _)| file_id).collect()
    }

    /// Pages in `file_id`, allocated pages included.
    pub fn page_count(&self, file_id: FileId) -> Result<u64> {
        Ok(self.file(file_id)?.page_count.load(Ordering::Acquire))
    }

    /// Number of frames.
    pub fn frame_count(&self) -> usize {
        self.frames.frame_count()
    }

    /// The configuration the pool was opened with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Counters summed over every thread, and the frames' gauges.
    ///
    /// The gauges are read off every frame's state word, about a
    /// nanosecond a frame (a few milliseconds for a pool of 16 GiB): call
    /// it to report, not on every operation. Each counter and gauge is
    /// read at a slightly different moment, so two of them need not add
    /// up exactly while the pool is busy.
    ///
    /// ```
    /// # use pagepool::*;
    /// let pool = BufferPool::open(PoolConfig::new(8))?;
    /// let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    /// let (_page_id, page) = pool.allocate(file)?;
    /// drop(page);
    /// let stats = pool.stats();
    /// assert_eq!((stats.resident_frames, stats.dirty_frames, stats.free_frames), (1, 1, 7));
    /// # Ok::<(), pagepool::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.stats_snapshot(&self.engine)
    }

    /// Keeps this thread pinned in the pool's epoch until the returned
    /// token drops, so hits run no fence. Hold one around a batch of
    /// operations; drop it before the thread idles.
    ///
    /// ```
    /// # use pagepool::*;
    /// # fn demo(pool: &BufferPool, pages: &[PageId]) -> Result<u64> {
    /// let _pin = pool.pin_thread();
    /// let mut sum = 0;
    /// for &page_id in pages {
    ///     sum += pool.optimistic(page_id, |view| view.load_u64(0))??;
    /// }
    /// # Ok(sum) }
    /// ```
    pub fn pin_thread(&self) -> ThreadPin<'_> {
        ThreadPin::new(self, self.epoch.slot())
    }

    /// Takes a shared latch on `page_id`, loading it on a miss.
    ///
    /// A thread that already holds a shared guard on the page gets another
    /// at once, even while a writer waits for the first. One that holds
    /// the page's [`PageMut`] gets [`Error::SelfDeadlock`].
    pub fn read(&self, page_id: PageId) -> Result<PageRef<'_>> {
        let slot = self.epoch.slot();
        self.read_with(page_id, &slot)
    }

    /// `read` with this thread's slot in hand: a hit (the table's frame
    /// holds the page and its shared latch is free to take) is inlined
    /// into the caller; everything else is `read_slow`, out of line.
    #[inline(always)]
    pub(crate) fn read_with(&self, page_id: PageId, slot: &Rc<ThreadSlot>) -> Result<PageRef<'_>> {
        self.read_in(&self.core, page_id, slot)
    }

    /// [`read_with`](Self::read_with) with the pool's core in hand: a
    /// thread's handle keeps it, so its hits load no pointer to it first
    /// (one dependent load less before the page table's bucket).
    #[inline(always)]
    pub(crate) fn read_in(
        &self,
        core: &PoolCore,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
    ) -> Result<PageRef<'_>> {
        if let Some(frame_id) = core.lookup(page_id, slot, false) {
            let meta = core.frames.meta(frame_id);
            // The latch's locked RMW waits for the state word's line, and
            // on x86 no later load is performed before it completes: the
            // page's first lines (a node's header, which a reader reads
            // first) are requested now, to arrive with the state word.
            core.frames.prefetch(frame_id, READ_PREFETCH_LINES);
            // The page id is read under the latch: a frame latched shared
            // cannot change tenants.
            if meta.latch.try_lock_shared().is_ok() {
                if meta.page_id() == Some(page_id) {
                    slot.stats.bump(Counter::Hits);
                    return Ok(PageRef::new(self, frame_id, page_id, slot));
                }
                // A stale hint: the next lookup takes the bucket's lock.
                self.release_shared(frame_id);
                return self.read_slow(page_id, slot, true);
            }
        }
        self.read_slow(page_id, slot, false)
    }

    /// Everything of `read` but a first-try hit: misses, waits for a
    /// writer, a frame that changed tenants, a recursive read.
    #[inline(never)]
    fn read_slow(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        mut exact: bool,
    ) -> Result<PageRef<'_>> {
        loop {
            let Some(frame_id) = self.lookup(page_id, slot, exact) else {
                if let Load::Loaded(frame_id) = self.load(page_id, slot)? {
                    if self.frames.meta(frame_id).latch.downgrade_clean() {
                        self.queues.wake(frame_id);
                    }
                    return Ok(PageRef::new(self, frame_id, page_id, slot));
                }
                continue;
            };
            let meta = self.frames.meta(frame_id);
            match meta.latch.try_lock_shared() {
                Ok(()) if meta.page_id() == Some(page_id) => {
                    slot.stats.bump(Counter::Hits);
                    return Ok(PageRef::new(self, frame_id, page_id, slot));
                }
                Ok(()) => {
                    self.release_shared(frame_id);
                    exact = true;
                }
                Err(Blocked::Exclusive | Blocked::Pending) => {
                    match self.wait_for_page(slot, frame_id, page_id, Want::Shared)? {
                        WaitEnd::Retry => exact = false,
                        WaitEnd::Moved => exact = true,
                        WaitEnd::HeldByCaller(GuardKind::Shared) => {
                            // A recursive read while a writer waits for this
                            // thread's first latch: it must not wait for that
                            // writer.
                            meta.latch
                                .lock_shared_again()
                                .map_err(|_| Error::TooManySharedGuards { page_id })?;
                            slot.stats.bump(Counter::Hits);
                            return Ok(PageRef::new(self, frame_id, page_id, slot));
                        }
                        WaitEnd::HeldByCaller(held) => {
                            return Err(Error::SelfDeadlock {
                                page_id,
                                held,
                                wanted: GuardKind::Shared,
                            })
                        }
                    }
                }
                Err(Blocked::Overflow) => return Err(Error::TooManySharedGuards { page_id }),
                Err(Blocked::Free | Blocked::Shared) => exact = true,
            }
        }
    }

    /// Takes the exclusive latch on `page_id`, loading it on a miss.
    ///
    /// Once this call waits for the page's shared holders, new shared
    /// guards wait for it (writers go first), so a stream of overlapping
    /// readers cannot starve it. A thread that holds any guard on the page
    /// gets [`Error::SelfDeadlock`].
    pub fn write(&self, page_id: PageId) -> Result<PageMut<'_>> {
        let slot = self.epoch.slot();
        self.write_with(page_id, &slot)
    }

    pub(crate) fn write_with(&self, page_id: PageId, slot: &Rc<ThreadSlot>) -> Result<PageMut<'_>> {
        let mut exact = false;
        loop {
            let Some(frame_id) = self.lookup(page_id, slot, exact) else {
                if let Load::Loaded(frame_id) = self.load(page_id, slot)? {
                    return Ok(PageMut::new(self, frame_id, page_id, false, slot));
                }
                continue;
            };
            let meta = self.frames.meta(frame_id);
            match meta.latch.try_lock_exclusive() {
                Ok(()) if meta.page_id() == Some(page_id) => {
                    slot.stats.bump(Counter::Hits);
                    return Ok(PageMut::new(self, frame_id, page_id, false, slot));
                }
                Ok(()) => {
                    self.release_exclusive(frame_id, false);
                    exact = true;
                }
                Err(Blocked::Exclusive | Blocked::Shared) => {
                    match self.wait_for_page(slot, frame_id, page_id, Want::Exclusive)? {
                        WaitEnd::Retry => exact = false,
                        WaitEnd::Moved => exact = true,
                        WaitEnd::HeldByCaller(held) => {
                            return Err(Error::SelfDeadlock {
                                page_id,
                                held,
                                wanted: GuardKind::Exclusive,
                            })
                        }
                    }
                }
                Err(Blocked::Free | Blocked::Overflow | Blocked::Pending) => exact = true,
            }
        }
    }

    /// Reads `page_id` without latching: runs `read` on a view of the
    /// frame and returns its result once the page's version validates.
    ///
    /// `read` may run several times, and may see bytes that a concurrent
    /// writer is changing; only the run that validates counts. See
    /// [`OptimisticView`]. After `optimistic_retries` failed validations
    /// the read runs once more under the shared latch. On a miss the page
    /// is loaded and `read` runs under the shared latch.
    ///
    /// If this thread holds the page's [`PageMut`], `read` runs once on the
    /// page as the guard has left it (no other thread can change it).
    ///
    /// Inside `read`, pool calls that hit are allowed; one that would wait
    /// (for a latch, a free frame or I/O) returns
    /// [`Error::WouldBlockWhilePinned`] instead, since the closure's epoch
    /// pin must not be held while waiting.
    pub fn optimistic<R>(
        &self,
        page_id: PageId,
        read: impl FnMut(OptimisticView<'_>) -> R,
    ) -> Result<R> {
        let slot = self.epoch.slot();
        self.optimistic_with(page_id, &slot, read)
    }

    /// [`optimistic`](Self::optimistic) for a closure that returns a
    /// `Result`: the pool's own errors convert into the closure's error
    /// type (anything `From<pagepool::Error>`), and the caller gets one
    /// `Result` instead of two. Prefer it on hot paths: a hit returns the
    /// closure's value as it is, with no nested `Result` to build.
    ///
    /// A closure's error, like its value, counts only from a run that
    /// validates: an error computed from bytes a writer was changing is
    /// thrown away with them and the read runs again.
    ///
    /// ```
    /// # fn main() -> Result<(), pagepool::Error> {
    /// # let dir = std::env::temp_dir().join(format!("pagepool-doc-try-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// use pagepool::{BufferPool, IoMode, PoolConfig};
    /// let pool = BufferPool::open(PoolConfig::new(16).io_mode(IoMode::Buffered))?;
    /// let file = pool.open_file(dir.join("data.db"))?;
    /// let (page_id, mut page) = pool.allocate(file)?;
    /// page.store_u64(8, 42)?;
    /// drop(page);
    /// // One `?`: an out-of-bounds offset and a pool error alike.
    /// let value = pool.optimistic_try(page_id, |view| Ok::<_, pagepool::Error>(view.load_u64(8)?))?;
    /// assert_eq!(value, 42);
    /// # drop(pool);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn optimistic_try<T, E: From<Error>>(
        &self,
        page_id: PageId,
        read: impl FnMut(OptimisticView<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let slot = self.epoch.slot();
        self.optimistic_try_with(page_id, &slot, read)
    }

    /// `optimistic` with this thread's slot in hand. The first attempt is
    /// inlined; anything but a validated hit goes to `optimistic_retry`.
    #[inline(always)]
    pub(crate) fn optimistic_with<R>(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        read: impl FnMut(OptimisticView<'_>) -> R,
    ) -> Result<R> {
        self.optimistic_in(&self.core, page_id, slot, read)
    }

    /// [`optimistic_with`](Self::optimistic_with) with the pool's core in
    /// hand (see [`read_in`](Self::read_in)).
    #[inline(always)]
    pub(crate) fn optimistic_in<R>(
        &self,
        core: &PoolCore,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        mut read: impl FnMut(OptimisticView<'_>) -> R,
    ) -> Result<R> {
        match core.optimistic_first(page_id, slot, &mut read) {
            Ok(result) => Ok(result),
            Err(failed) => self.optimistic_retry(page_id, slot, failed, read),
        }
    }

    /// [`optimistic_with`](Self::optimistic_with) for a closure that
    /// returns a `Result` of its own: the pool's errors convert into the
    /// closure's error type, so the caller gets one flat `Result`.
    ///
    /// Not only shorter to use than `optimistic(..)??`: a hit returns the
    /// closure's value as it is, where a `Result<Result<T, E>, Error>`
    /// is built in memory, and the nested layout (the inner value sharing
    /// bytes with the variants of [`Error`]) was stored in pieces and read
    /// back whole, which the core cannot forward from its store buffer: a
    /// stall on every hit (BENCHMARKS.md, "closing the hit-path gap").
    #[inline(always)]
    pub(crate) fn optimistic_try_with<T, E: From<Error>>(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        read: impl FnMut(OptimisticView<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.optimistic_try_in(&self.core, page_id, slot, read)
    }

    /// [`optimistic_try_with`](Self::optimistic_try_with) with the pool's
    /// core in hand (see [`read_in`](Self::read_in)).
    #[inline(always)]
    pub(crate) fn optimistic_try_in<T, E: From<Error>>(
        &self,
        core: &PoolCore,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        mut read: impl FnMut(OptimisticView<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let first = core.optimistic_first(page_id, slot, &mut read);
        self.flat_or_retry(page_id, slot, first, read)
    }

    /// The flat result of a first attempt that gave one, else of
    /// `optimistic_retry`, the pool's error converted into the closure's.
    #[inline(always)]
    fn flat_or_retry<T, E: From<Error>>(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        first: std::result::Result<std::result::Result<T, E>, Option<(FrameId, Attempt)>>,
        read: impl FnMut(OptimisticView<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        match first {
            Ok(result) => result,
            Err(failed) => match self.optimistic_retry(page_id, slot, failed, read) {
                Ok(result) => result,
                Err(error) => Err(E::from(error)),
            },
        }
    }

    /// [`optimistic_try_in`](Self::optimistic_try_in) for a thread that
    /// holds a session pin (a `ThreadPin`'s slot): the first attempt
    /// leans on the session pin ([`PoolCore::optimistic_session_first`]).
    #[inline(always)]
    pub(crate) fn optimistic_try_session<T, E: From<Error>>(
        &self,
        core: &PoolCore,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        mut read: impl FnMut(OptimisticView<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let first = core.optimistic_session_try_first(page_id, slot, &mut read);
        self.flat_or_retry(page_id, slot, first, read)
    }

    /// [`optimistic_in`](Self::optimistic_in) for a thread that holds a
    /// session pin (see [`optimistic_try_session`](Self::optimistic_try_session)).
    #[inline(always)]
    pub(crate) fn optimistic_session<R>(
        &self,
        core: &PoolCore,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        mut read: impl FnMut(OptimisticView<'_>) -> R,
    ) -> Result<R> {
        match core.optimistic_session_first(page_id, slot, &mut read) {
            Ok(result) => Ok(result),
            Err(failed) => self.optimistic_retry(page_id, slot, failed, read),
        }
    }

    /// An optimistic read that only hits: the validated result, or `None`
    /// when the page is not resident, is latched exclusively, or keeps
    /// failing validation (`optimistic_retries` times). Never waits.
    pub(crate) fn optimistic_hit<R>(
        &self,
        page_id: PageId,
        read: &mut impl FnMut(OptimisticView<'_>) -> R,
    ) -> Option<R> {
        let slot = self.thread_slot();
        for _ in 0..=self.config.optimistic_retries {
            match self.optimistic_first(page_id, &slot, read) {
                Ok(result) => return Some(result),
                Err(Some((_, Attempt::NotValidated))) => {
                    slot.stats.bump(Counter::OptimisticRetries)
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// The rest of `optimistic` after a first attempt that failed on the
    /// given frame (`None`: the table had no frame): waits for a writer,
    /// retries, loads on a miss, and falls back to the shared latch after
    /// `optimistic_retries` failed validations. Every failed validation
    /// counts, whether or not a writer is still there afterwards, so a
    /// stream of writers cannot starve the reader.
    #[inline(never)]
    pub(crate) fn optimistic_retry<R>(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        mut failed: Option<(FrameId, Attempt)>,
        mut read: impl FnMut(OptimisticView<'_>) -> R,
    ) -> Result<R> {
        let mut failures = 0;
        let mut exact = false;
        loop {
            if let Some((frame_id, attempt)) = failed.take() {
                if attempt == Attempt::NotValidated {
                    slot.stats.bump(Counter::OptimisticRetries);
                    failures += 1;
                    if failures > self.config.optimistic_retries {
                        slot.stats.bump(Counter::OptimisticFallbacks);
                        let page = self.read_with(page_id, slot)?;
                        return Ok(read(page.view()));
                    }
                }
                match self.wait_for_page(slot, frame_id, page_id, Want::Optimistic)? {
                    WaitEnd::Retry | WaitEnd::HeldByCaller(GuardKind::Shared) => exact = false,
                    WaitEnd::Moved => exact = true,
                    WaitEnd::HeldByCaller(GuardKind::Exclusive) => {
                        // This thread is the page's writer: nobody else can
                        // store to it, so the read sees the page as this
                        // thread's guard has left it.
                        slot.stats.bump(Counter::Hits);
                        let meta = self.frames.meta(frame_id);
                        let words = self.frames.words(frame_id);
                        return Ok(meta.access.read(|| read(OptimisticView::new(words))));
                    }
                }
            }
            let guard = slot.pin();
            let Some(frame_id) = self.find(page_id, exact, &guard) else {
                drop(guard);
                if let Load::Loaded(frame_id) = self.load(page_id, slot)? {
                    if self.frames.meta(frame_id).latch.downgrade_clean() {
                        self.queues.wake(frame_id);
                    }
                    let page = PageRef::new(self, frame_id, page_id, slot);
                    return Ok(read(page.view()));
                }
                continue;
            };
            match self.try_optimistic(page_id, frame_id, slot, &mut read) {
                Ok(result) => return Ok(result),
                Err(attempt) => failed = Some((frame_id, attempt)),
            }
        }
    }

    /// A new zeroed page of `file_id`, latched exclusively (and dirty: it
    /// reaches the file at the next write-back): a page off the file's
    /// free list if it has one with pages on it (see
    /// [`format_file`](Self::format_file), [`free_page`](Self::free_page)),
    /// else a page appended to the file.
    pub fn allocate(&self, file_id: FileId) -> Result<(PageId, PageMut<'_>)> {
        let file = self.file(file_id)?;
        if let Some(reused) = self.allocate_free(file_id, &file)? {
            return Ok(reused);
        }
        self.append_page(file_id, &file)
    }

    /// Appends a new zeroed page to the file, latched exclusively.
    pub(crate) fn append_page(
        &self,
        file_id: FileId,
        file: &DataFile,
    ) -> Result<(PageId, PageMut<'_>)> {
        let slot = self.epoch.slot();
        // Taking a frame may evict (I/O) or wait for the epoch.
        let _unpinned = slot.block(None)?;
        let frame_id = self.take_free_frame(&slot)?;
        let page_no = file.page_count.fetch_add(1, Ordering::AcqRel);
        if page_no >= MAX_PAGES_PER_FILE {
            file.page_count.fetch_sub(1, Ordering::AcqRel);
            self.free.give_back(frame_id);
            return Err(Error::PageOutOfRange {
                page_id: PageId::new(file_id, page_no),
                page_count: MAX_PAGES_PER_FILE,
            });
        }
        let page_id = PageId::new(file_id, page_no);
        self.frames.meta(frame_id).claim(page_id);
        self.frames.zero(frame_id);
        let inserted = {
            let guard = slot.pin();
            self.table.insert(page_id, frame_id, &guard)
        };
        slot.stats.bump(Counter::Misses);
        // A new page: no read, so its load ends here.
        slot.stats.bump(Counter::LoadsEnded);
        if inserted.is_ok() {
            return Ok((page_id, PageMut::new(self, frame_id, page_id, true, &slot)));
        }
        // Another thread read the new page number between our bump of the
        // page count and our insert, and loaded it (as a never-written zero
        // page). Use its frame: take it exclusively and hand it out zeroed.
        self.frames.meta(frame_id).set_page_id(None);
        self.free_unpublished(frame_id);
        let mut page = self.write_with(page_id, &slot)?;
        page.fill(0);
        page.set_lsn(0);
        Ok((page_id, page))
    }

    /// Writes every dirty page back, syncs every file, and closes the pool.
    /// On failure the pool comes back inside the error, still open.
    pub fn close(mut self) -> std::result::Result<(), CloseError> {
        match self.flush_all() {
            Ok(()) => {
                self.closed = true;
                Ok(())
            }
            Err(error) => Err(CloseError {
                error,
                pool: Box::new(self),
            }),
        }
    }

    /// Waits on `frame_id` for `want`, after the checks of the module
    /// docs ("Waiting only for what can end"): the frame must hold
    /// `page_id`, still block `want`, and not be latched by this thread;
    /// the thread must not be pinned by an optimistic closure. The wait
    /// ends when the state stops blocking, when its version moves, or with
    /// [`Error::LatchTimeout`].
    pub(crate) fn wait_for_page(
        &self,
        slot: &ThreadSlot,
        frame_id: FrameId,
        page_id: PageId,
        want: Want,
    ) -> Result<WaitEnd> {
        let meta = self.frames.meta(frame_id);
        // State first, page id second: see the module docs.
        let seen = meta.latch.load();
        if meta.page_id_raw() != page_id.raw() {
            return Ok(WaitEnd::Moved);
        }
        if !want.blocked_by(seen) {
            return Ok(WaitEnd::Retry);
        }
        if let Some(held) = slot.held.holds(frame_id) {
            return Ok(WaitEnd::HeldByCaller(held));
        }
        let _unpinned = slot.block(Some(page_id))?;
        let deadline = self.config.latch_deadline();
        match self
            .queues
            .wait(&meta.latch, frame_id, seen, want, deadline)
        {
            Ok(()) => Ok(WaitEnd::Retry),
            Err(TimedOut) => Err(Error::LatchTimeout {
                page_id,
                waited_ms: u64::try_from(self.config.latch_wait_timeout.as_millis())
                    .unwrap_or(u64::MAX),
            }),
        }
    }

    /// This thread's slot in the pool.
    pub(crate) fn thread_slot(&self) -> Rc<ThreadSlot> {
        self.epoch.slot()
    }
}

impl PoolCore {
    /// [`BufferPool::stats`], for the pool's own threads too.
    pub(crate) fn stats_snapshot(&self, engine: &Engine) -> Stats {
        let mut stats = self.epoch.stats();
        stats.engine = engine.kind();
        stats.fixed_buffers = engine.fixed_buffers();
        stats.arena_huge_pages = self.frames.huge_pages();
        for frame_id in 0..self.frames.frame_count() {
            let state = self.frames.meta(frame_id).latch.load();
            if state & FREE != 0 {
                stats.free_frames += 1;
            } else {
                stats.resident_frames += 1;
                stats.dirty_frames += u64::from(state & DIRTY != 0);
            }
        }
        stats.loading_frames = stats.misses.saturating_sub(stats.loads_ended);
        stats
    }

    /// The first, inlined attempt of an optimistic read: the validated
    /// result of a hit, or what `optimistic_retry` needs to go on (`None`:
    /// the table had no frame for the page).
    #[inline(always)]
    pub(crate) fn optimistic_first<R>(
        &self,
        page_id: PageId,
        slot: &Rc<ThreadSlot>,
        read: &mut impl FnMut(OptimisticView<'_>) -> R,
    ) -> std::result::Result<R, Option<(FrameId, Attempt)>> {
        let guard = slot.pin();
        let frame_id = self.table.lookup(page_id, &guard).ok_or(None)?;
        self.try_optimistic(page_id, frame_id, slot, read)
            .map_err(|attempt| Some((frame_id, attempt)))
    }

    /// [`optimistic_first`](Self::optimistic_first) for a caller whose
    /// thread holds a session pin (a `ThreadPin`): the read leans on the
    /// session pin ([`ThreadSlot::session_read`]); with the session
    /// suspended, or a page the table does not map, it fails with `None`
    /// for `optimistic_retry`, which pins as any read does.
    #[inline(always)]
    pub(crate) fn optimistic_session_first<R>(
        &self,
        page_id: PageId,
        slot: &ThreadSlot,
        read: &mut impl FnMut(OptimisticView<'_>) -> R,
    ) -> std::result::Result<R, Option<(FrameId, Attempt)>> {
        let attempt = self.session_begin(page_id, slot)?;
        let result = attempt.meta.access.read(|| read(attempt.view()));
        attempt.end(page_id)?;
        Ok(result)
    }

    /// [`optimistic_session_first`](Self::optimistic_session_first) for a
    /// closure that returns a `Result`: a hit holds only the closure's
    /// value across validation. (Holding the whole `Result`, whose error
    /// may need dropping if validation fails, made the compiler build it
    /// on the stack on every hit; an error goes out of line instead.)
    #[inline(always)]
    pub(crate) fn optimistic_session_try_first<T, E>(
        &self,
        page_id: PageId,
        slot: &ThreadSlot,
        read: &mut impl FnMut(OptimisticView<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<std::result::Result<T, E>, Option<(FrameId, Attempt)>> {
        let attempt = self.session_begin(page_id, slot)?;
        match attempt.meta.access.read(|| read(attempt.view())) {
            Ok(value) => {
                attempt.end(page_id)?;
                Ok(Ok(value))
            }
            Err(error) => session_error(attempt, page_id, error),
        }
    }

    /// The table's hint for a page the direct-mapped front did not
    /// answer, under the session pin's guard (the buckets' entries are
    /// freed through the epoch).
    #[cold]
    #[inline(never)]
    fn session_lookup(
        &self,
        page_id: PageId,
        slot: &ThreadSlot,
        reading: &SessionRead<'_>,
    ) -> Option<FrameId> {
        slot.with_session_guard(reading, |guard| self.table.lookup(page_id, guard))
            .flatten()
    }

    /// The start of a session read of `page_id`: its frame, by the
    /// direct-mapped front or else the buckets, and the frame's state.
    #[inline(always)]
    fn session_begin<'a>(
        &'a self,
        page_id: PageId,
        slot: &'a ThreadSlot,
    ) -> std::result::Result<SessionAttempt<'a>, Option<(FrameId, Attempt)>> {
        let reading = slot.session_read().ok_or(None)?;
        let frame_id = match self.table.direct_hint(page_id) {
            Some(frame_id) => frame_id,
            None => self.session_lookup(page_id, slot, &reading).ok_or(None)?,
        };
        let (meta, words) = self.frames.frame(frame_id).ok_or(None)?;
        let begin = meta
            .latch
            .optimistic_begin()
            .map_err(|_| Some((frame_id, Attempt::NotBegun)))?;
        Ok(SessionAttempt {
            reading,
            frame_id,
            meta,
            words,
            begin,
            held: meta.page_id_raw(),
        })
    }

    /// One optimistic read of `frame_id`, which the table gave as the frame
    /// of `page_id`: the result if it validates, else why not. The caller
    /// is pinned, so the frame cannot be recycled between the state check
    /// and validation; the table's answer is only a hint, so the frame's
    /// page id is validated with its version.
    #[inline(always)]
    pub(crate) fn try_optimistic<R>(
        &self,
        page_id: PageId,
        frame_id: FrameId,
        slot: &ThreadSlot,
        read: &mut impl FnMut(OptimisticView<'_>) -> R,
    ) -> std::result::Result<R, Attempt> {
        let meta = self.frames.meta(frame_id);
        let begin = meta
            .latch
            .optimistic_begin()
            .map_err(|_| Attempt::NotBegun)?;
        let held = meta.page_id_raw();
        let words = self.frames.words(frame_id);
        let result = meta.access.read(|| read(OptimisticView::new(words)));
        // `page_id.raw()` is never NONE_RAW, so a free frame cannot match.
        if meta.latch.optimistic_validate(begin) && held == page_id.raw() {
            meta.latch.clear_mark(begin);
            slot.stats.bump(Counter::Hits);
            Ok(result)
        } else {
            Err(Attempt::NotValidated)
        }
    }

    /// The frame the table maps `page_id` to, if any (a hint: the caller
    /// checks the frame under its latch or validation), pinned for the
    /// lookup only. See [`find`](Self::find) for `exact`.
    #[inline(always)]
    pub(crate) fn lookup(
        &self,
        page_id: PageId,
        slot: &ThreadSlot,
        exact: bool,
    ) -> Option<FrameId> {
        let guard = slot.pin();
        self.find(page_id, exact, &guard)
    }

    /// The table's hint for `page_id`, or with `exact` its exact answer
    /// (`PageTable::lookup_exact`), for a caller whose previous hint named
    /// a frame holding another page.
    #[inline]
    pub(crate) fn find(
        &self,
        page_id: PageId,
        exact: bool,
        guard: &crossbeam_epoch::Guard,
    ) -> Option<FrameId> {
        if exact {
            self.table.lookup_exact(page_id, guard)
        } else {
            self.table.lookup(page_id, guard)
        }
    }

    #[inline(always)]
    pub(crate) fn release_shared(&self, frame_id: FrameId) {
        if self.frames.meta(frame_id).latch.unlock_shared() {
            self.queues.wake(frame_id);
        }
    }

    #[inline]
    pub(crate) fn release_exclusive(&self, frame_id: FrameId, wrote: bool) {
        if wrote {
            self.note_dirtied(frame_id);
        }
        if self.frames.meta(frame_id).latch.unlock_exclusive(wrote) {
            self.queues.wake(frame_id);
        }
    }

    pub(crate) fn frames(&self) -> &Frames {
        &self.frames
    }

    pub(crate) fn file(&self, file_id: FileId) -> Result<Arc<DataFile>> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        files
            .get(file_id)
            .cloned()
            .ok_or(Error::UnknownFile(file_id))
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        // The writer first: no pass runs during or after the final flush.
        drop(self.writer.take());
        #[cfg(all(feature = "metrics", not(any(loom, feature = "shuttle"))))]
        drop(self.metrics_publisher.take());
        if self.closed {
            return;
        }
        // The flush runs user code (the WAL hook, the storage); a panic
        // there must not escape a drop (during an unwind it would abort).
        let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.flush_all()));
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => log::error!("pagepool: dropping the pool lost dirty pages: {error}"),
            Err(_) => {
                log::error!("pagepool: dropping the pool lost dirty pages: a panic in the flush")
            }
        }
    }
}

#[cfg(all(test, not(any(loom, feature = "shuttle"))))]
mod tests {
    use super::*;
    use crate::io::MemoryStorage;

    /// A table hint can pair a page with another page's frame (a slot
    /// vacated and refilled while it is read). Such an attempt reads a
    /// frame whose version is perfectly stable, so only the page-id check
    /// keeps it from validating; the retry loop then looks the page up
    /// again.
    #[test]
    fn an_optimistic_attempt_on_another_pages_frame_never_validates() {
        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let mut pages = Vec::new();
        for value in [11u64, 22] {
            let (page_id, mut page) = pool.allocate(file).unwrap();
            page.store_u64(0, value).unwrap();
            pages.push(page_id);
        }
        let slot = pool.thread_slot();
        let frame_of = |page_id| pool.lookup(page_id, &slot, false).unwrap();
        let (p, q) = (pages[0], pages[1]);
        let read = &mut |view: OptimisticView<'_>| view.load_u64(0).unwrap();
        let guard = slot.pin();
        assert_eq!(pool.try_optimistic(p, frame_of(p), &slot, read), Ok(11));
        assert_eq!(pool.try_optimistic(q, frame_of(q), &slot, read), Ok(22));
        assert_eq!(
            pool.try_optimistic(p, frame_of(q), &slot, read),
            Err(Attempt::NotValidated),
            "page {p} validated on the frame of {q}"
        );
        drop(guard);
        assert_eq!(pool.optimistic(p, |view| view.load_u64(0)).unwrap(), Ok(11));
    }

    /// The same through a `ThreadPin`'s session read, which takes its
    /// frame from the direct-mapped front: a word naming another page's
    /// frame (a stale hint) never validates, and the read gets its own
    /// page from the general path.
    #[test]
    fn a_session_read_on_another_pages_frame_never_validates() {
        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let mut pages = Vec::new();
        for value in [11u64, 22] {
            let (page_id, mut page) = pool.allocate(file).unwrap();
            page.store_u64(0, value).unwrap();
            pages.push(page_id);
        }
        let (p, q) = (pages[0], pages[1]);
        let pin = pool.pin_thread();
        let slot = pool.thread_slot();
        let frame_of = |page_id| pool.lookup(page_id, &slot, false).unwrap();
        let read = &mut |view: OptimisticView<'_>| view.load_u64(0).unwrap();
        assert_eq!(pool.optimistic_session_first(p, &slot, read), Ok(11));
        let try_read = &mut |view: OptimisticView<'_>| view.load_u64(0);
        assert_eq!(
            pool.optimistic_session_try_first(q, &slot, try_read),
            Ok(Ok(22))
        );
        pool.table.point_direct_for_test(p, frame_of(q));
        assert_eq!(
            pool.optimistic_session_first(p, &slot, read),
            Err(Some((frame_of(q), Attempt::NotValidated))),
            "page {p} validated on the frame of {q}"
        );
        assert_eq!(
            pool.optimistic_session_try_first(p, &slot, try_read),
            Err(Some((frame_of(q), Attempt::NotValidated))),
        );
        let out_of_bounds = &mut |view: OptimisticView<'_>| view.load_u64(crate::PAGE_DATA_SIZE);
        assert_eq!(
            pool.optimistic_session_try_first(p, &slot, out_of_bounds),
            Err(Some((frame_of(q), Attempt::NotValidated))),
            "an error from another page's frame counted"
        );
        assert_eq!(pin.optimistic(p, |view| view.load_u64(0)).unwrap(), Ok(11));
        assert_eq!(
            pin.optimistic_try(p, |view| Ok::<_, Error>(view.load_u64(0)?))
                .unwrap(),
            11
        );
    }

    /// A reader given such a hint must not park on the other page's frame:
    /// whoever holds that page may be waiting for a guard this reader's
    /// thread holds. `wait_for_page` returns at once instead.
    #[test]
    fn no_wait_on_a_frame_that_holds_another_page() {
        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let (p, page) = pool.allocate(file).unwrap();
        drop(page);
        let (q, page) = pool.allocate(file).unwrap();
        drop(page);
        let frame_of_q = pool.lookup(q, &pool.thread_slot(), false).unwrap();
        std::thread::scope(|s| {
            let held_q = pool.write(q).unwrap();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let pool = &pool;
            s.spawn(move || {
                let slot = pool.thread_slot();
                let end = pool.wait_for_page(&slot, frame_of_q, p, Want::Shared);
                assert_eq!(end.unwrap(), WaitEnd::Moved);
                done_tx.send(()).unwrap();
            });
            let waited = done_rx.recv_timeout(std::time::Duration::from_secs(5));
            drop(held_q);
            assert!(waited.is_ok(), "parked on the frame of {q} for {p}");
        });
    }

    /// A relay of readers that overlap without end — each takes the
    /// page's shared latch before the one before it lets go — and one
    /// writer. The shared count never reaches zero on its own, so the
    /// writer gets through only if readers step aside once it waits: after
    /// it is pending, no reader that was not already in may enter
    /// (`late` counts those that did; a reader that entered just before
    /// the writer arrived can count too, at most one per reader). A holder
    /// lets go without the next reader only when that reader has been
    /// trying for a while and a writer is pending: with readers that step
    /// aside it never gets in, and the writer must go first.
    #[test]
    fn a_writer_is_not_starved_by_overlapping_readers() {
        use crate::latch::PENDING;
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::{Condvar, Mutex};
        const READERS: usize = 3;
        const STEPS: usize = 3_000;
        const WRITER_FROM: usize = 10;
        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let (page_id, page) = pool.allocate(file).unwrap();
        drop(page);
        let frame_id = pool.lookup(page_id, &pool.thread_slot(), false).unwrap();
        let pending = || pool.frames.meta(frame_id).latch.load() & PENDING != 0;
        let turn = (Mutex::new(0usize), Condvar::new());
        let wait_turn = |step: usize| {
            let mut now = turn.0.lock().unwrap();
            while *now < step {
                now = turn.1.wait(now).unwrap();
            }
        };
        let acquired = AtomicUsize::new(0);
        let entering = AtomicUsize::new(0);
        let late = AtomicUsize::new(0);
        let writer_done = AtomicBool::new(false);
        std::thread::scope(|s| {
            for reader in 0..READERS {
                let (pool, wait_turn, turn) = (&pool, &wait_turn, &turn);
                let (acquired, entering, late, pending) = (&acquired, &entering, &late, &pending);
                s.spawn(move || {
                    for step in (reader..STEPS).step_by(READERS) {
                        wait_turn(step);
                        entering.store(step + 1, Ordering::SeqCst);
                        let guard = pool.read(page_id).unwrap();
                        if pending() {
                            late.fetch_add(1, Ordering::SeqCst);
                        }
                        acquired.store(step + 1, Ordering::SeqCst);
                        *turn.0.lock().unwrap() = step + 1;
                        turn.1.notify_all();
                        // Overlap: hold on until the next reader is in, or
                        // has been held off for 20 ms while a writer waits.
                        let mut trying_since = None;
                        while step + 1 < STEPS && acquired.load(Ordering::SeqCst) < step + 2 {
                            if pending() && entering.load(Ordering::SeqCst) == step + 2 {
                                let since =
                                    *trying_since.get_or_insert_with(std::time::Instant::now);
                                if since.elapsed() > std::time::Duration::from_millis(20) {
                                    break;
                                }
                            }
                            std::thread::yield_now();
                        }
                        drop(guard);
                    }
                });
            }
            s.spawn(|| {
                wait_turn(WRITER_FROM);
                pool.write(page_id).unwrap().store_u64(0, 1).unwrap();
                writer_done.store(true, Ordering::SeqCst);
            });
        });
        assert!(writer_done.load(Ordering::SeqCst));
        let late = late.load(Ordering::SeqCst);
        assert!(
            late <= READERS,
            "{late} shared latches were granted while a writer waited"
        );
    }

    /// A loader that lost the race to insert its page gives its frame back
    /// unpublished; a thread parked on that frame (it found it, under a
    /// stale hint, claimed for the same page) must be woken to look again.
    #[test]
    fn giving_back_an_unpublished_frame_wakes_its_waiters() {
        use crate::latch::WAITERS;
        let pool = BufferPool::open(
            PoolConfig::new(2).latch_wait_timeout(std::time::Duration::from_millis(5_000)),
        )
        .unwrap();
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let (page_id, page) = pool.allocate(file).unwrap();
        drop(page);
        let slot = pool.thread_slot();
        let frame_id = pool.take_free_frame(&slot).unwrap();
        pool.frames.meta(frame_id).claim(page_id);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let slot = pool.thread_slot();
                pool.wait_for_page(&slot, frame_id, page_id, Want::Shared)
            });
            while pool.frames.meta(frame_id).latch.load() & WAITERS == 0 {
                std::thread::yield_now();
            }
            pool.frames.meta(frame_id).set_page_id(None);
            let freed = std::time::Instant::now();
            pool.free_unpublished(frame_id);
            let woken = waiter.join().unwrap();
            assert_eq!(woken.unwrap(), WaitEnd::Retry);
            // Woken, not ended by its 5 s deadline.
            let waited = freed.elapsed();
            assert!(
                waited < std::time::Duration::from_millis(2_500),
                "woken after {waited:?}"
            );
        });
    }

    /// A thread that holds a shared guard takes another while a writer
    /// waits for the first: the writer waits for this thread, so this
    /// thread must not wait for the writer.
    #[test]
    fn a_recursive_read_goes_ahead_of_a_pending_writer() {
        use crate::latch::PENDING;
        let pool = BufferPool::open(
            PoolConfig::new(4).latch_wait_timeout(std::time::Duration::from_millis(5_000)),
        )
        .unwrap();
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let (page_id, page) = pool.allocate(file).unwrap();
        drop(page);
        let frame_id = pool.lookup(page_id, &pool.thread_slot(), false).unwrap();
        std::thread::scope(|s| {
            let first = pool.read(page_id).unwrap();
            let writer = s.spawn(|| pool.write(page_id).map(|_| ()));
            while pool.frames.meta(frame_id).latch.load() & PENDING == 0 {
                std::thread::yield_now();
            }
            let second = pool.read(page_id).expect("a recursive read does not wait");
            let pin = pool.pin_thread();
            let third = pin.read(page_id).expect("nor through the thread's handle");
            drop((first, second, third, pin));
            writer
                .join()
                .unwrap()
                .expect("the writer got in once the reads ended");
        });
    }
}
