//! The file header's layout (see the table in `lifecycle/mod.rs`) and the
//! per-file record of whether a file has one.

use crate::error::{Error, Result};
use crate::page::{FileId, PageId};
use crate::pool::{BufferPool, DataFile};
use crate::sync::{AtomicU32, Ordering};
use crate::view::OutOfBounds;
use crate::PageMut;

/// Root slots in a file header: 64 (fewer only under the model checkers'
/// small pages).
pub const ROOT_SLOTS: usize = if crate::PAGE_DATA_SIZE >= ROOTS_AT + 8 * 64 {
    64
} else if HEADERS_FIT {
    (crate::PAGE_DATA_SIZE - ROOTS_AT) / 8
} else {
    0
};

/// Whether a header fits a page (not under loom's or shuttle's smallest
/// pages, where every file is plain).
const HEADERS_FIT: bool = crate::PAGE_DATA_SIZE >= 2 * ROOTS_AT;

pub(super) const HEADER_MAGIC: u64 = u64::from_le_bytes(*b"PGPHEAD1");
pub(super) const FREE_MAGIC: u64 = u64::from_le_bytes(*b"PGPFREE1");
const VERSION: u64 = 1;
pub(super) const NO_PAGE: u64 = u64::MAX;

pub(super) const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 8;
pub(super) const FREE_HEAD_AT: usize = 16;
pub(super) const FREE_COUNT_AT: usize = 24;
const ROOTS_AT: usize = 64;
/// In a free page: the next free page number.
pub(super) const NEXT_FREE_AT: usize = 8;

const _: () = assert!(!HEADERS_FIT || ROOTS_AT + 8 * ROOT_SLOTS <= crate::PAGE_DATA_SIZE);

/// Whether a file has a header, as far as the pool knows.
#[derive(Debug)]
pub(crate) struct HeaderState(AtomicU32);

const UNKNOWN: u32 = 0;
const FORMATTED: u32 = 1;
const PLAIN: u32 = 2;

impl HeaderState {
    /// The state of a file opened with `page_count` pages: an empty file
    /// is plain until formatted; any other is read at first use.
    /// Under the model checkers pages are too small for a header, and
    /// every file is plain (the models stay as they were).
    pub(crate) fn at_open(page_count: u64) -> HeaderState {
        let checker = cfg!(any(loom, feature = "shuttle"));
        let state = if page_count == 0 || checker {
            PLAIN
        } else {
            UNKNOWN
        };
        HeaderState(AtomicU32::new(state))
    }

    fn set(&self, formatted: bool) {
        let state = if formatted { FORMATTED } else { PLAIN };
        self.0.store(state, Ordering::Release);
    }
}

/// Writes an empty header into `page` (page 0 of its file).
fn write_header(page: &mut PageMut<'_>) -> Result<(), OutOfBounds> {
    page.fill(0);
    page.store_u64(MAGIC_AT, HEADER_MAGIC)?;
    page.store_u64(VERSION_AT, VERSION)?;
    page.store_u64(FREE_HEAD_AT, NO_PAGE)?;
    page.store_u64(FREE_COUNT_AT, 0)
}

fn root_offset(file_id: FileId, slot: usize) -> Result<usize> {
    if !(0..ROOT_SLOTS).contains(&slot) {
        return Err(Error::InvalidConfig(format!(
            "root slot {slot} of {file_id}: a header has {ROOT_SLOTS} slots"
        )));
    }
    Ok(ROOTS_AT + 8 * slot)
}

impl BufferPool {
    /// Formats `file_id` with a header at page 0, which gives it a free
    /// list ([`free_page`](Self::free_page), reuse by
    /// [`allocate`](Self::allocate)) and [`ROOT_SLOTS`] root slots. The
    /// file must be empty, or formatted already (then this does nothing).
    ///
    /// ```
    /// # use pagepool::*;
    /// let pool = BufferPool::open(PoolConfig::new(16))?;
    /// let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    /// pool.format_file(file)?;
    /// let (page_id, page) = pool.allocate(file)?;
    /// assert_eq!(page_id.page_no(), 1); // page 0 is the header
    /// pool.free_page(page)?;
    /// let (again, _page) = pool.allocate(file)?;
    /// assert_eq!(again, page_id); // reused
    /// # Ok::<(), pagepool::Error>(())
    /// ```
    pub fn format_file(&self, file_id: FileId) -> Result<()> {
        if !HEADERS_FIT {
            return Err(Error::NoFileHeader {
                file_id,
                reason: "pages under this model checker are too small for a header",
            });
        }
        let file = self.file(file_id)?;
        if self.is_formatted(file_id, &file)? {
            return Ok(());
        }
        if file.page_count.load(Ordering::Acquire) != 0 {
            return Err(Error::NoFileHeader {
                file_id,
                reason: "a file can be formatted only while it is empty",
            });
        }
        let (page_id, mut page) = self.append_page(file_id, &file)?;
        if page_id.page_no() != 0 {
            // Someone appended first: the file was not empty.
            drop(page);
            return Err(Error::NoFileHeader {
                file_id,
                reason: "a file can be formatted only while it is empty",
            });
        }
        write_header(&mut page)?;
        drop(page);
        file.header.set(true);
        Ok(())
    }

    /// The page number in root slot `slot` of `file_id`'s header, `None`
    /// if the slot is empty.
    pub fn root(&self, file_id: FileId, slot: usize) -> Result<Option<u64>> {
        let at = root_offset(file_id, slot)?;
        self.require_header(file_id)?;
        let header = self.read(PageId::new(file_id, 0))?;
        let value = header.view().load_u64(at)?;
        Ok((value != 0).then_some(value))
    }

    /// Sets root slot `slot` of `file_id`'s header (`None` empties it).
    /// Durable with the next flush, like any page.
    pub fn set_root(&self, file_id: FileId, slot: usize, page_no: Option<u64>) -> Result<()> {
        let at = root_offset(file_id, slot)?;
        self.require_header(file_id)?;
        if page_no == Some(0) {
            return Err(Error::InvalidConfig(format!(
                "root slot {slot} of {file_id}: page 0 is the header, not a root"
            )));
        }
        let mut header = self.write(PageId::new(file_id, 0))?;
        header.store_u64(at, page_no.unwrap_or(0))?;
        Ok(())
    }

    /// Errors unless `file_id` has a header.
    pub(super) fn require_header(&self, file_id: FileId) -> Result<()> {
        let file = self.file(file_id)?;
        if self.is_formatted(file_id, &file)? {
            Ok(())
        } else {
            Err(Error::NoFileHeader {
                file_id,
                reason: "the file was not formatted (BufferPool::format_file)",
            })
        }
    }

    /// Whether the file has a header, reading page 0 the first time.
    pub(crate) fn is_formatted(&self, file_id: FileId, file: &DataFile) -> Result<bool> {
        match file.header.0.load(Ordering::Acquire) {
            FORMATTED => return Ok(true),
            PLAIN => return Ok(false),
            _ => {}
        }
        let page = self.read(PageId::new(file_id, 0))?;
        let formatted = page.view().load_u64(MAGIC_AT)? == HEADER_MAGIC;
        drop(page);
        file.header.set(formatted);
        Ok(formatted)
    }
}
