//! The crate's one error type.
//!
//! Every fallible call returns [`Result<T>`]. I/O errors carry the page (or
//! file) they concern and the OS error; nothing in the crate panics on I/O
//! failure, bad input or a corrupt file.

use std::io;
use std::path::PathBuf;

use crate::held::GuardKind;
use crate::page::{FileId, PageId};

/// The result type of every fallible pool operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a page from storage failed. The frame went back to the pool;
    /// a later read retries.
    #[error("I/O error reading {page_id}: {source}")]
    Read {
        /// The page being loaded.
        page_id: PageId,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing a page back failed. The page stays dirty and resident; a
    /// later flush retries.
    #[error("I/O error writing {page_id}: {source}")]
    Write {
        /// The page being written.
        page_id: PageId,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `fdatasync` (or the storage's equivalent) failed: pages written since
    /// the last successful sync of this file may not be durable.
    #[error("I/O error syncing {file_id}: {source}")]
    Sync {
        /// The file being synced.
        file_id: FileId,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The write-ahead-log hook refused to make the log durable up to the
    /// page's LSN, so the page was not written and stays dirty.
    #[error("write-ahead-log hook failed for {page_id} at LSN {lsn}: {source}")]
    WalHook {
        /// The page that was about to be written.
        page_id: PageId,
        /// The page's LSN, passed to the hook.
        lsn: u64,
        /// The hook's error.
        #[source]
        source: io::Error,
    },
    /// A page loaded from storage failed its checksum or format check. Its
    /// bytes were never handed to a reader.
    #[error("{page_id} is corrupt: {reason}")]
    Corrupt {
        /// The corrupt page.
        page_id: PageId,
        /// What the check found.
        reason: String,
    },
    /// Opening a data file failed.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file system refuses `O_DIRECT` for this file.
    #[error(
        "the file system holding {} refuses O_DIRECT (ramfs, tmpfs before Linux 6.6, some FUSE and network file systems do): put the file on a \
         file system that supports direct I/O (ext4, xfs), or open the pool with \
         IoMode::Buffered to go through the kernel page cache",
        path.display()
    )]
    DirectIoUnsupported {
        /// The file.
        path: PathBuf,
    },
    /// A data file's length is not a multiple of the page size.
    #[error(
        "{} is {len_bytes} bytes long, not a multiple of the {page_size}-byte page size; \
         it is not a pagepool data file or it was truncated",
        path.display()
    )]
    BadFileLength {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len_bytes: u64,
        /// The page size it should be a multiple of.
        page_size: usize,
    },
    /// The page number is past the end of its file.
    #[error("{page_id} is out of range: the file has {page_count} pages")]
    PageOutOfRange {
        /// The page asked for.
        page_id: PageId,
        /// How many pages the file has (allocated pages included).
        page_count: u64,
    },
    /// The file id does not name a file opened in this pool.
    #[error("{0} is not open in this pool")]
    UnknownFile(FileId),
    /// The pool already has the most files it allows.
    #[error("the pool already has {0} files open, the most it allows")]
    TooManyFiles(usize),
    /// Every frame stayed latched (or awaiting reclamation) for the whole
    /// wait: the pool is too small for the pages callers hold at once.
    #[error(
        "no frame became free within {waited_ms} ms: every frame is latched; the pool is \
         too small for the number of guards held at once"
    )]
    NoFreeFrame {
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// A file is open under this id already
    /// ([`BufferPool::open_file_as`](crate::BufferPool::open_file_as)).
    #[error("{0} is taken: another data file is open under it")]
    FileIdInUse(FileId),
    /// A page already has the most shared guards the latch can count.
    #[error("{page_id} already has the most shared guards a latch can count")]
    TooManySharedGuards {
        /// The page.
        page_id: PageId,
    },
    /// An access outside the page's data area.
    #[error("access of {len} bytes at offset {offset} is outside the {limit}-byte page data")]
    OutOfBounds {
        /// First byte of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Size of the data area.
        limit: usize,
    },
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The call would wait for a latch that this thread itself holds (on
    /// the page, through a guard it has not dropped): it could never end.
    /// Nothing was changed; drop the guard first.
    #[error(
        "{page_id}: this thread holds a {held} guard on it, and a {wanted} latch would \
         wait for that guard forever; drop the guard first"
    )]
    SelfDeadlock {
        /// The page.
        page_id: PageId,
        /// The latch this thread holds on it.
        held: GuardKind,
        /// The latch the call needed.
        wanted: GuardKind,
    },
    /// The call had to wait (for a latch, a free frame, or I/O) while the
    /// thread was inside an optimistic read's closure, whose epoch pin
    /// must not be held while waiting: it would stop frame reclamation for
    /// the whole pool. Nothing was changed; the closure's validation
    /// decides whether the error counts. Do the waiting call after the
    /// closure returns.
    #[error(
        "{}: a pool call inside an optimistic read had to wait or do I/O, which it may \
         not do under the read's epoch pin; make the call after the closure returns",
        match page_id { Some(page_id) => page_id.to_string(), None => "the pool".into() }
    )]
    WouldBlockWhilePinned {
        /// The page the call needed, if it concerned one.
        page_id: Option<PageId>,
    },
    /// Another thread held the page's latch for longer than
    /// `latch_wait_timeout` (a lock-order cycle between threads, or a
    /// guard kept across a long operation).
    #[error(
        "{page_id}: waited {waited_ms} ms for a latch another thread holds; a cycle of \
         threads waiting for each other's guards, or a guard held too long"
    )]
    LatchTimeout {
        /// The page.
        page_id: PageId,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// The data file is locked by another open (another process, or
    /// another pool in this one): two owners would overwrite each other's
    /// pages.
    #[error(
        "{} is locked by another owner (another process or pool has it open); a data file \
         has one owner at a time",
        path.display()
    )]
    FileLocked {
        /// The file.
        path: PathBuf,
    },
    /// The file is already open in this pool (the same device and inode,
    /// perhaps under another path): its pages would be cached twice.
    #[error("{} is already open in this pool as {file_id}", path.display())]
    AlreadyOpen {
        /// The path given now.
        path: PathBuf,
        /// The id it is open under.
        file_id: FileId,
    },
    /// The file has no header (it was not formatted with
    /// [`BufferPool::format_file`](crate::BufferPool::format_file)), so it
    /// has no free list and no root slots; or it cannot be formatted.
    #[error("{file_id} has no header: {reason}")]
    NoFileHeader {
        /// The file.
        file_id: FileId,
        /// Why.
        reason: &'static str,
    },
    /// The page cannot be freed (the header, or a page already free).
    /// Nothing was changed.
    #[error("{page_id} cannot be freed: {reason}")]
    NotFreeable {
        /// The page.
        page_id: PageId,
        /// Why.
        reason: &'static str,
    },
    /// The configuration asked for the io_uring engine
    /// ([`IoEngine::Uring`](crate::IoEngine::Uring)) and the kernel (or a
    /// sandbox, a seccomp profile, `kernel.io_uring_disabled`) refused to
    /// set up a ring. [`IoEngine::Auto`](crate::IoEngine::Auto) runs the
    /// sync engine there instead.
    #[error("the io_uring engine is unavailable: {source}")]
    UringUnavailable {
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The I/O engine's thread could not be started.
    #[error("cannot start the I/O engine: {source}")]
    EngineStart {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The page this error concerns, when it concerns one.
    pub fn page_id(&self) -> Option<PageId> {
        match self {
            Error::Read { page_id, .. }
            | Error::Write { page_id, .. }
            | Error::WalHook { page_id, .. }
            | Error::Corrupt { page_id, .. }
            | Error::PageOutOfRange { page_id, .. }
            | Error::TooManySharedGuards { page_id }
            | Error::SelfDeadlock { page_id, .. }
            | Error::LatchTimeout { page_id, .. }
            | Error::NotFreeable { page_id, .. } => Some(*page_id),
            Error::WouldBlockWhilePinned { page_id } => *page_id,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_page_and_the_way_out() {
        let page_id = PageId::new(FileId(2), 9);
        let err = Error::Read {
            page_id,
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        assert!(err.to_string().contains("page 9 of file 2"), "{err}");
        assert_eq!(err.page_id(), Some(page_id));
        let err = Error::DirectIoUnsupported {
            path: "/dev/shm/x".into(),
        };
        let text = err.to_string();
        assert!(
            text.contains("/dev/shm/x") && text.contains("IoMode::Buffered"),
            "{text}"
        );
        assert_eq!(err.page_id(), None);
    }
}
