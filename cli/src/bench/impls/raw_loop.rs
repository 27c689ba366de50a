//! `raw-loop`: the check on `raw`. The same memory, read by the smallest
//! loop that does a hot workload's work: draw a page (and a word) with the
//! same generator, load, add to a running sum. It checks no value, times
//! no operation, and has no `Op`, no closure and no `Result` per
//! operation; it reads the stop flag once per [`CHUNK`] operations. The
//! driver runs everything else the same way as for `raw`: the gate, the
//! count of operations, the time from the gate to the stop flag.
//!
//! Outside the timed part (the warm-up) it is `raw`.

use pagepool::PAGE_SIZE;

use super::raw::Raw;
use super::{Counters, Instance, Setup};
use crate::bail;
use crate::bench::driver::Driver;
use crate::bench::workload::{Rng, Shape, PAGE_WORDS};
use crate::error::Result;

/// Operations between two reads of the stop flag.
const CHUNK: u64 = 1024;

/// `raw`'s pages, read by a bare loop.
pub struct RawLoop {
    raw: Raw,
}

impl RawLoop {
    /// Maps and fills the pages as `raw` does.
    pub fn open(setup: &Setup<'_>) -> Result<RawLoop> {
        Ok(RawLoop {
            raw: Raw::open(setup)?,
        })
    }
}

impl Instance for RawLoop {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        if !driver.is_timed() {
            return self.raw.run_thread(driver);
        }
        let pages = driver.page_limit();
        if pages > self.raw.pages() {
            bail!(
                "raw-loop holds {} pages, the workload ranges over {pages}",
                self.raw.pages()
            );
        }
        let base = self.raw.base();
        match driver.shape() {
            Shape::UniformPoint => driver.free_run(|rng| point_chunk(base, pages, rng)),
            Shape::UniformScan => driver.free_run(|rng| scan_chunk(base, pages, rng)),
            shape => bail!("raw-loop runs the hot workloads only, not {shape:?}"),
        }
    }

    fn counters(&self) -> Option<Counters> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// [`CHUNK`] point reads: a uniform page and word, one load, a sum.
#[inline(never)]
fn point_chunk(base: *const u8, pages: u64, rng: &mut Rng) -> u64 {
    let mut sum = 0u64;
    for _ in 0..CHUNK {
        let page = rng.below(pages);
        let word = rng.below(PAGE_WORDS);
        // SAFETY: page < pages <= the mapping's pages (checked by the
        // caller) and word < PAGE_WORDS, so the aligned u64 lies in the
        // filled mapping, which is only read now.
        let value = unsafe {
            base.add(page as usize * PAGE_SIZE + word as usize * 8)
                .cast::<u64>()
                .read()
        };
        sum = sum.wrapping_add(value);
    }
    std::hint::black_box(sum);
    CHUNK
}

/// [`CHUNK`] page scans: a uniform page, the sum of its data words.
#[inline(never)]
fn scan_chunk(base: *const u8, pages: u64, rng: &mut Rng) -> u64 {
    let mut sum = 0u64;
    for _ in 0..CHUNK {
        let page = rng.below(pages);
        // SAFETY: as in `point_chunk`: the page's data words lie in the
        // filled, read-only mapping.
        let bytes = unsafe {
            std::slice::from_raw_parts(base.add(page as usize * PAGE_SIZE), PAGE_WORDS as usize * 8)
        };
        // Each page summed from zero, as `raw` does: seeding the page's
        // vector sum with the running total would chain every page's
        // additions behind the previous page's last one. The sum is the
        // bench's one summing loop, at the processor's widest vectors.
        let page_sum = super::sum_words(bytes);
        sum = sum.wrapping_add(page_sum);
    }
    std::hint::black_box(sum);
    CHUNK
}
