//! What the baselines with a pool of their own (`dashmap-rwlock`,
//! `mutex-lru`) share: 4096-aligned page buffers, `O_DIRECT` page reads and
//! writes, and pagepool's on-disk page format (they read and write the
//! same files, so they check and stamp the same CRC-32C trailer; that keeps
//! their work per page load equal to pagepool's).

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use pagepool::{PAGE_DATA_SIZE, PAGE_SIZE};

use crate::bail;
use crate::error::{Context, Result};

/// Where the checksum lives in the trailer (see pagepool's `page.rs`).
const CHECKSUM_OFFSET: usize = PAGE_DATA_SIZE + 8;
/// Where the format magic lives.
const MAGIC_OFFSET: usize = PAGE_DATA_SIZE + 12;
const MAGIC: [u8; 4] = *b"PGP1";

/// One page of memory, aligned for `O_DIRECT`.
#[repr(C, align(4096))]
pub struct AlignedPage(pub [u8; PAGE_SIZE]);

impl AlignedPage {
    /// A zeroed page on the heap.
    pub fn boxed() -> Box<AlignedPage> {
        // Boxing a zeroed array this size compiles to a zeroed allocation.
        Box::new(AlignedPage([0; PAGE_SIZE]))
    }

    /// The caller's data area.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.0[..PAGE_DATA_SIZE]
    }

    /// Stores `value` little-endian at `offset` of the data area.
    #[inline]
    pub fn store_u64(&mut self, offset: usize, value: u64) -> Result<()> {
        match self.0[..PAGE_DATA_SIZE].get_mut(offset..offset.wrapping_add(8)) {
            Some(slot) => {
                slot.copy_from_slice(&value.to_le_bytes());
                Ok(())
            }
            None => bail!("offset {offset} is outside the page"),
        }
    }
}

/// Opens `path` for `O_DIRECT` reads (and writes, if `write`).
pub fn open_direct(path: &Path, write: bool) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("opening {} with O_DIRECT", path.display()))
}

fn checksum(page: &[u8; PAGE_SIZE], page_no: u64) -> u32 {
    let crc = crc32c::crc32c(&page[..CHECKSUM_OFFSET]);
    crc32c::crc32c_append(crc, &page_no.to_le_bytes())
}

/// Reads page `page_no` into `buf` and checks its trailer.
pub fn read_page(file: &File, page_no: u64, buf: &mut AlignedPage) -> Result<()> {
    file.read_exact_at(&mut buf.0, page_no * PAGE_SIZE as u64)
        .with_context(|| format!("reading page {page_no}"))?;
    let stored = u32::from_le_bytes(
        buf.0[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4]
            .try_into()
            .expect("4 bytes"),
    );
    if buf.0[MAGIC_OFFSET..] != MAGIC || stored != checksum(&buf.0, page_no) {
        bail!("page {page_no} is corrupt (bad magic or checksum)");
    }
    Ok(())
}

/// Stamps `buf`'s trailer and writes it as page `page_no`.
pub fn write_page(file: &File, page_no: u64, buf: &mut AlignedPage) -> Result<()> {
    buf.0[MAGIC_OFFSET..].copy_from_slice(&MAGIC);
    let crc = checksum(&buf.0, page_no);
    buf.0[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&buf.0, page_no * PAGE_SIZE as u64)
        .with_context(|| format!("writing page {page_no}"))
}
