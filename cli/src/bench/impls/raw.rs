//! `raw`: the machine's limit. The working set sits in one anonymous
//! mapping with transparent huge pages (as pagepool's frame arena does), in
//! pagepool's page layout, and an operation is a plain load (or a summing
//! loop the compiler vectorises) at the page's address: no lookup, no
//! latch, no bounds check, no counter. Every ratio is taken against it.

use pagepool::{PAGE_DATA_SIZE, PAGE_SIZE};

use super::{Counters, Instance, Setup};
use crate::bail;
use crate::bench::data;
use crate::bench::driver::Driver;
use crate::bench::workload::{Op, PAGE_WORDS};
use crate::error::{Context, Result};

const HUGE_PAGE: usize = 2 << 20;

/// The pages, in memory.
pub struct Raw {
    base: *mut u8,
    map_len: usize,
    pages: u64,
}

// SAFETY: the mapping is written only in `open`, before the instance is
// shared, and only read afterwards; it is unmapped in `Drop`.
unsafe impl Sync for Raw {}
// SAFETY: as above; the pointer owns the mapping.
unsafe impl Send for Raw {}

impl Raw {
    /// Maps `setup.file_pages` pages and fills them with the data file's
    /// contents (computed, not read: they are the same values).
    pub fn open(setup: &Setup<'_>) -> Result<Raw> {
        if setup.writes {
            bail!("raw is read-only: it runs the hot workloads only");
        }
        let pages = setup.file_pages;
        let len = usize::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(PAGE_SIZE))
            .filter(|&len| len > 0)
            .context("raw: bad page count")?;
        let map_len = len.div_ceil(HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("raw: mmap");
        }
        let raw = Raw {
            base: map.cast(),
            map_len,
            pages,
        };
        let aligned = raw.aligned_base();
        // SAFETY: `aligned .. aligned + len` lies inside the mapping (it
        // was over-allocated by one huge page for the alignment).
        // MADV_HUGEPAGE is a hint: failure only costs TLB misses.
        unsafe { libc::madvise(aligned.cast(), len, libc::MADV_HUGEPAGE) };
        for page in 0..pages {
            let image = data::page_image(page);
            // SAFETY: page < pages, so its 4096 bytes lie inside
            // `aligned .. aligned + len`; nothing else references them yet.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    image.as_ptr(),
                    aligned.add(page as usize * PAGE_SIZE),
                    PAGE_DATA_SIZE,
                );
            }
        }
        Ok(raw)
    }

    /// The first page's address; page `p` starts `p * PAGE_SIZE` bytes
    /// later, for `p` below [`pages`](Self::pages). The memory is only
    /// read after `open`.
    pub fn base(&self) -> *const u8 {
        self.aligned_base()
    }

    /// Pages in the mapping.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    fn aligned_base(&self) -> *mut u8 {
        let offset = self.base.align_offset(HUGE_PAGE);
        // SAFETY: the mapping is `map_len` ≥ len + HUGE_PAGE bytes, and
        // `offset < HUGE_PAGE`.
        unsafe { self.base.add(offset) }
    }
}

impl Instance for Raw {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        // Every operation the driver hands out names a page below its page
        // limit and an 8-aligned offset whose word lies in the data area
        // (workload.rs builds them so); checked once here, not per read.
        if driver.page_limit() > self.pages {
            bail!(
                "raw holds {} pages, the workload ranges over {}",
                self.pages,
                driver.page_limit()
            );
        }
        let base = self.aligned_base() as *const u8;
        // `move`: the closure holds the base address itself; borrowing it
        // cost a load through a pointer per operation, which the wide scan
        // showed (`raw` at 0.84–0.89× `raw-loop` at one thread on hot-scan
        // before, 0.90–0.97× with the move; BENCHMARKS.md).
        driver.drive(
            #[inline(always)]
            move |op| match op {
                Op::Point { page, offset } => {
                    // SAFETY: page < pages (checked against the driver's limit
                    // above) and offset + 8 <= PAGE_DATA_SIZE with offset
                    // 8-aligned (the driver's contract), so the aligned u64 lies
                    // inside the filled mapping, which is only read now.
                    let word = unsafe {
                        base.add(page as usize * PAGE_SIZE + offset)
                            .cast::<u64>()
                            .read()
                    };
                    Ok(u64::from_le(word))
                }
                Op::Scan { page } => {
                    // SAFETY: as above: the page's data bytes lie inside the
                    // filled mapping, which no one writes any more.
                    let bytes = unsafe {
                        std::slice::from_raw_parts(
                            base.add(page as usize * PAGE_SIZE),
                            PAGE_WORDS as usize * 8,
                        )
                    };
                    // The sum every slice implementation runs, at the
                    // processor's widest vectors.
                    Ok(super::sum_words(bytes))
                }
                Op::Write { .. } => bail!("raw is read-only"),
            },
        )
    }

    fn counters(&self) -> Option<Counters> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; no reference
        // into it outlives `self`.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}
