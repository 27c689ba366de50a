//! Page identifiers and the on-disk page format.
//!
//! # On-disk page format
//!
//! Every page is [`PAGE_SIZE`] = 4096 bytes. The first [`PAGE_DATA_SIZE`] =
//! 4080 bytes belong to the caller; the last 16 bytes are the pool's trailer:
//!
//! | offset | size | field                                                     |
//! |--------|------|-----------------------------------------------------------|
//! | 0      | 4080 | caller data                                               |
//! | 4080   | 8    | LSN (little-endian u64), set with `PageMut::set_lsn`       |
//! | 4088   | 4    | CRC-32C (little-endian) of bytes 0..4088, then the page number (le u64) |
//! | 4092   | 4    | format magic `b"PGP1"`                                    |
//!
//! The page number is folded into the checksum, so a page written to the
//! wrong offset is detected as corrupt, not returned as data.
//!
//! A page that was never written reads back as 4096 zero bytes (a hole or a
//! freshly extended file). It has no magic and no checksum; the pool
//! recognises it explicitly (every byte zero) and hands it out as an empty
//! page. Any other page without the magic, or whose checksum does not
//! match, is [`Error::Corrupt`](crate::Error::Corrupt).

use std::fmt;

/// Size of a page on disk and of a frame in memory, in bytes.
#[cfg(not(any(loom, feature = "shuttle")))]
pub const PAGE_SIZE: usize = 4096;
/// Size of a page under the loom model checker: four words, two of data.
#[cfg(loom)]
pub const PAGE_SIZE: usize = 32;
/// Size of a page under the shuttle checker: eight words, six of data.
#[cfg(all(feature = "shuttle", not(feature = "shuttle-large-pages")))]
pub const PAGE_SIZE: usize = 64;
/// Size of a page under the shuttle checker with `shuttle-large-pages`
/// (for structures built on the pool, a B+-tree's nodes, that need more
/// room than six words): 64 words, 62 of data.
#[cfg(all(feature = "shuttle", feature = "shuttle-large-pages"))]
pub const PAGE_SIZE: usize = 512;
/// Bytes of a page available to the caller; the rest is the pool's trailer.
pub const PAGE_DATA_SIZE: usize = PAGE_SIZE - TRAILER_SIZE;
/// Size of the pool's trailer at the end of every page.
pub const TRAILER_SIZE: usize = 16;
/// Number of 64-bit words in a page.
pub const PAGE_WORDS: usize = PAGE_SIZE / 8;

/// Byte offset of the LSN in the trailer.
pub(crate) const LSN_OFFSET: usize = PAGE_DATA_SIZE;
/// Byte offset of the checksum in the trailer.
pub(crate) const CHECKSUM_OFFSET: usize = PAGE_DATA_SIZE + 8;
/// Byte offset of the format magic in the trailer.
pub(crate) const MAGIC_OFFSET: usize = PAGE_DATA_SIZE + 12;
/// Format magic: identifies a page written by this version of the pool.
pub(crate) const MAGIC: [u8; 4] = *b"PGP1";

/// The most files one pool can have open (file ids `0..MAX_FILES`).
pub const MAX_FILES: usize = 1 << 15;
/// The most pages one file can hold (page numbers `0..MAX_PAGES_PER_FILE`).
pub const MAX_PAGES_PER_FILE: u64 = 1 << 47;

/// A data file opened in a pool: the high 16 bits of each of its
/// [`PageId`]s.
///
/// [`BufferPool::open_file`](crate::BufferPool::open_file) gives a file the
/// lowest free id. An engine whose log or catalog names pages across
/// restarts opens each file under the id it recorded,
/// with [`BufferPool::open_file_as`](crate::BufferPool::open_file_as):
///
/// ```
/// use pagepool::{BufferPool, FileId, MemoryStorage, PoolConfig};
/// let pool = BufferPool::open(PoolConfig::new(16))?;
/// let orders = FileId::new(7).expect("below MAX_FILES");
/// pool.open_storage_as(orders, Box::new(MemoryStorage::new()))?;
/// assert_eq!(pool.page_count(orders)?, 0);
/// # Ok::<(), pagepool::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub(crate) u16);

impl FileId {
    /// The file id `index`, or `None` at or above [`MAX_FILES`].
    pub const fn new(index: u16) -> Option<FileId> {
        if (index as usize) < MAX_FILES {
            Some(FileId(index))
        } else {
            None
        }
    }

    /// The file's index in its pool (0 for the first file opened).
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file {}", self.0)
    }
}

/// A page of a file: the file id and the page number within the file.
///
/// Packed into one `u64` (file in the high 16 bits, page number in the low
/// 48), which is what the page table keys on.
///
/// ```
/// use pagepool::{FileId, PageId};
/// # fn demo(file: FileId) {
/// let page_id = PageId::new(file, 7);
/// assert_eq!(page_id.page_no(), 7);
/// assert_eq!(page_id.file_id(), file);
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageId(u64);

impl PageId {
    const PAGE_BITS: u32 = 48;
    const PAGE_MASK: u64 = (1 << Self::PAGE_BITS) - 1;
    /// Marks a frame that holds no page; no valid `PageId` packs to it
    /// because page numbers stay below [`MAX_PAGES_PER_FILE`].
    pub(crate) const NONE_RAW: u64 = u64::MAX;

    /// Names page `page_no` of file `file_id`. Page numbers at or above
    /// [`MAX_PAGES_PER_FILE`] are rejected by the pool with
    /// [`Error::PageOutOfRange`](crate::Error::PageOutOfRange).
    pub fn new(file_id: FileId, page_no: u64) -> PageId {
        PageId((u64::from(file_id.0) << Self::PAGE_BITS) | (page_no & Self::PAGE_MASK))
            .with_overflow_marker(page_no)
    }

    /// Keeps out-of-range page numbers recognisable instead of silently
    /// wrapping them onto another page: they map to the largest packable
    /// page number, which is itself out of range.
    fn with_overflow_marker(self, page_no: u64) -> PageId {
        if page_no >= MAX_PAGES_PER_FILE {
            PageId(self.0 | Self::PAGE_MASK)
        } else {
            self
        }
    }

    /// The file this page belongs to.
    pub fn file_id(self) -> FileId {
        FileId((self.0 >> Self::PAGE_BITS) as u16)
    }

    /// The page number within its file (byte offset / [`PAGE_SIZE`]).
    pub fn page_no(self) -> u64 {
        self.0 & Self::PAGE_MASK
    }

    /// The packed representation used as the page-table key.
    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    /// Inverse of [`PageId::raw`].
    pub(crate) fn from_raw(raw: u64) -> PageId {
        PageId(raw)
    }
}

impl fmt::Display for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "page {} of file {}", self.page_no(), self.file_id().0)
    }
}

/// What the pool's check of a page image finds: the check every load
/// runs, for tools that read data files without a pool (`pagepool
/// inspect`, a backup verifier).
///
/// ```
/// use pagepool::{PageCheck, PAGE_SIZE};
/// let page = [0u8; PAGE_SIZE];
/// assert_eq!(PageCheck::of(&page, 3), PageCheck::NeverWritten);
/// let mut torn = page;
/// torn[10] = 1;
/// assert!(PageCheck::of(&torn, 3).corruption().unwrap().contains("trailer"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCheck {
    /// Magic and checksum match.
    Valid,
    /// All 4096 bytes are zero: a page that was never written.
    NeverWritten,
    /// No magic, and not all zero.
    BadMagic,
    /// Magic present, checksum does not match.
    BadChecksum {
        /// The checksum in the trailer.
        stored: u32,
        /// The checksum of the bytes, at this page number.
        computed: u32,
    },
}

impl PageCheck {
    /// Checks `page` as page `page_no` of its file (the page number is
    /// part of the checksum: a page at the wrong offset fails).
    pub fn of(page: &[u8; PAGE_SIZE], page_no: u64) -> PageCheck {
        check_page(page, page_no)
    }

    /// Why the page is corrupt, or `None` for a valid or never-written
    /// page: the reason [`Error::Corrupt`](crate::Error::Corrupt) carries.
    pub fn corruption(&self) -> Option<String> {
        match *self {
            PageCheck::Valid | PageCheck::NeverWritten => None,
            PageCheck::BadMagic => {
                Some("no page trailer (not written by pagepool, or overwritten)".into())
            }
            PageCheck::BadChecksum { stored, computed } => Some(format!(
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            )),
        }
    }
}

/// Computes the checksum of a page image (bytes `0..4088`, then the page
/// number).
pub(crate) fn checksum(page: &[u8], page_no: u64) -> u32 {
    debug_assert_eq!(page.len(), PAGE_SIZE);
    let crc = crc32c::crc32c(&page[..CHECKSUM_OFFSET]);
    crc32c::crc32c_append(crc, &page_no.to_le_bytes())
}

/// The trailer word (little-endian in the page) of a page whose checksum
/// is `crc`: the checksum, then the magic.
pub(crate) fn trailer_word(crc: u32) -> u64 {
    u64::from(crc) | (u64::from(u32::from_le_bytes(MAGIC)) << 32)
}

/// Stamps the checksum and magic of `page` (an image outside the pool's
/// frames) into its trailer, for page `page_no`.
pub(crate) fn stamp_image(page: &mut [u8], page_no: u64) {
    let word = trailer_word(checksum(page, page_no));
    page[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 8].copy_from_slice(&word.to_le_bytes());
}

/// Checks a page image as loaded from disk.
pub(crate) fn check_page(page: &[u8], page_no: u64) -> PageCheck {
    debug_assert_eq!(page.len(), PAGE_SIZE);
    if page[MAGIC_OFFSET..] != MAGIC {
        return if page.iter().all(|&b| b == 0) {
            PageCheck::NeverWritten
        } else {
            PageCheck::BadMagic
        };
    }
    let stored = u32::from_le_bytes(read4(page, CHECKSUM_OFFSET));
    let computed = checksum(page, page_no);
    if stored == computed {
        PageCheck::Valid
    } else {
        PageCheck::BadChecksum { stored, computed }
    }
}

fn read4(page: &[u8], offset: usize) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&page[offset..offset + 4]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(page_no: u64, fill: u8) -> Vec<u8> {
        let mut page = vec![fill; PAGE_SIZE];
        page[MAGIC_OFFSET..].copy_from_slice(&MAGIC);
        let crc = checksum(&page, page_no);
        page[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        page
    }

    #[test]
    fn page_id_packs_file_and_page() {
        let page_id = PageId::new(FileId(3), 12345);
        assert_eq!(page_id.file_id(), FileId(3));
        assert_eq!(page_id.page_no(), 12345);
        assert_eq!(PageId::from_raw(page_id.raw()), page_id);
        assert_ne!(page_id.raw(), PageId::NONE_RAW);
        assert_eq!(page_id.to_string(), "page 12345 of file 3");
    }

    #[test]
    fn page_id_out_of_range_does_not_alias_a_valid_page() {
        let page_id = PageId::new(FileId(1), MAX_PAGES_PER_FILE + 5);
        assert_eq!(page_id.file_id(), FileId(1));
        assert!(
            page_id.page_no() >= MAX_PAGES_PER_FILE,
            "stays out of range"
        );
        assert_ne!(page_id, PageId::new(FileId(1), 5));
    }

    #[test]
    fn zero_page_is_never_written() {
        assert_eq!(check_page(&[0u8; PAGE_SIZE], 9), PageCheck::NeverWritten);
    }

    #[test]
    fn stamped_page_is_valid_only_at_its_own_page_number() {
        let page = stamped(4, 0xAB);
        assert_eq!(check_page(&page, 4), PageCheck::Valid);
        assert!(matches!(
            check_page(&page, 5),
            PageCheck::BadChecksum { .. }
        ));
    }

    #[test]
    fn flipped_bit_and_missing_magic_are_detected() {
        let mut page = stamped(0, 1);
        page[100] ^= 0x10;
        assert!(matches!(
            check_page(&page, 0),
            PageCheck::BadChecksum { .. }
        ));
        let mut page = vec![0u8; PAGE_SIZE];
        page[17] = 1;
        assert_eq!(check_page(&page, 0), PageCheck::BadMagic);
    }
}
