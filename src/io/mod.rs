//! Storage back ends: where pages live when they are not in a frame.
//!
//! The pool talks to storage only through [`Storage`], page by page, and
//! hands it the frame's own memory: a back end reads straight into the
//! frame and writes straight out of it (no bounce buffer). Buffers are
//! always exactly [`PAGE_SIZE`](crate::PAGE_SIZE) bytes, 4096-aligned.
//!
//! - [`DirectFile`]: a file opened with `O_DIRECT` (or buffered, when the
//!   configuration asks), `pread`/`pwrite`, `fdatasync`; locked with an
//!   exclusive `flock` for as long as it is open, so that a data file has
//!   one owner at a time.
//! - [`MemoryStorage`]: pages in memory, for tests and models.
//!
//! # Engines
//!
//! Who runs a read is the pool's [I/O engine](IoEngine) (`engine.rs`):
//! the calling thread (`Sync`), a worker thread of the pool's (`Worker`),
//! or the kernel through an io_uring (`Uring`, `uring.rs`), which reads
//! straight into the frame through the store's descriptor
//! ([`Storage::ring_fd`]) and hands each completion to the store
//! ([`Storage::complete_read`]) before the pool checks the page. The
//! io_uring engine also writes batches of pages straight out of their
//! frames through the descriptor, for stores that take ring writes
//! ([`Storage::ring_writes`]), and syncs their files with one `fdatasync`
//! each through the ring when a flush syncs many at once
//! (`PoolConfig::ring_sync_min_files`, 8); other writes and syncs go
//! through [`Storage::write_page`] and [`Storage::sync`] on the writing
//! thread.

#[cfg(any(loom, all(target_os = "linux", not(feature = "shuttle"))))]
pub(crate) mod combining;
mod direct;
mod engine;
mod faulty;
mod memory;
#[cfg(all(target_os = "linux", not(any(loom, feature = "shuttle"))))]
mod uring;

pub use direct::{DirectFile, FileIdentity, IoMode};

/// The most pages one io_uring request reads or writes: 4 MiB, the
/// kernel's limit on the iovecs of one `READV` (`UIO_MAXIOV`). A scan's
/// frames are consecutive (the free queue hands them out in sweep order),
/// so such a run is a few large segments; the block layer splits it where
/// the device wants smaller requests (`max_sectors_kb`). A scan's
/// read-ahead submits this many reads at a time, one run.
pub(crate) const MAX_RUN_PAGES: usize = 1024;
pub(crate) use engine::{CompletionFn, Engine, FrameIo};
pub use engine::{EngineKind, IoEngine};
pub use faulty::{FaultController, FaultKind, FaultStats, Faulty, IoOp};
pub use memory::MemoryStorage;

use std::io;

/// A page store. Implementations must be safe to call from many threads at
/// once, for different pages and for the same page.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// How many pages the store holds now.
    fn page_count(&self) -> io::Result<u64>;

    /// Reads page `page_no` into `buf` (exactly one page). Reading a page
    /// past the end of the store yields zeros.
    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `buf` (exactly one page) as page `page_no`, extending the
    /// store if needed.
    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()>;

    /// Makes every completed write durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;

    /// The file this store is, if it is one: a pool refuses a second store
    /// with the same identity (the same pages cached twice would lose
    /// updates). `None` (the default) for stores that are not files.
    fn file_identity(&self) -> Option<FileIdentity> {
        None
    }

    /// A descriptor an io_uring engine may read this store's pages from
    /// (page `n` at byte `n * PAGE_SIZE`, into 4096-aligned frames), kept
    /// open for as long as the store lives. `None` (the default): the
    /// engine runs [`read_page`](Self::read_page) instead.
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Whether an io_uring engine may write this store's pages through
    /// [`ring_fd`](Self::ring_fd) instead of calling
    /// [`write_page`](Self::write_page). The default: no (a store that
    /// gives a descriptor for reads keeps seeing every write);
    /// [`DirectFile`] says yes.
    fn ring_writes(&self) -> bool {
        false
    }

    /// Sees a read that an engine did through [`ring_fd`](Self::ring_fd)
    /// before the pool checks the page: `result` is the kernel's, `buf`
    /// the page as read. The default passes it through; a fault injector
    /// fails it here.
    fn complete_read(
        &self,
        page_no: u64,
        buf: &mut [u8],
        result: io::Result<()>,
    ) -> io::Result<()> {
        let _ = (page_no, buf);
        result
    }
}

/// A shared store is a store: lets a test or a tool keep a handle on the
/// storage it gives the pool (`pool.open_storage(Box::new(arc.clone()))`),
/// or give the same storage to a reopened pool.
impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    fn page_count(&self) -> io::Result<u64> {
        (**self).page_count()
    }

    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_page(page_no, buf)
    }

    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        (**self).write_page(page_no, buf)
    }

    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }

    fn file_identity(&self) -> Option<FileIdentity> {
        (**self).file_identity()
    }

    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        (**self).ring_fd()
    }

    fn ring_writes(&self) -> bool {
        (**self).ring_writes()
    }

    fn complete_read(
        &self,
        page_no: u64,
        buf: &mut [u8],
        result: io::Result<()>,
    ) -> io::Result<()> {
        (**self).complete_read(page_no, buf, result)
    }
}
