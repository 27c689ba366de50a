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

mod direct;
mod faulty;
mod memory;

pub use direct::{DirectFile, FileIdentity, IoMode};
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
}
