//! `pagepool-shared`: reads through `BufferPool::read` (a shared latch,
//! `&[u8]` in place), with a `ThreadPin` per worker.

use pagepool::{BufferPool, FileId, PageId, ThreadPin};

use super::{load_u64, open_pool, pool_counters, pool_write, sum_words, Counters, Instance, Setup};
use crate::bench::driver::Driver;
use crate::bench::workload::Op;
use crate::error::Result;

/// A pool read under shared latches.
pub struct Shared {
    pool: BufferPool,
    file: FileId,
}

impl Shared {
    /// Opens a fresh pool over the data file.
    pub fn open(setup: &Setup<'_>) -> Result<Shared> {
        let (pool, file) = open_pool(setup)?;
        Ok(Shared { pool, file })
    }
}

impl Instance for Shared {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        let pool = &self.pool;
        let file = self.file;
        let pin = &pool.pin_thread();
        driver.drive(
            #[inline(always)]
            move |op| match op {
                Op::Point { page, offset } => load_u64(&pin.read(PageId::new(file, page))?, offset),
                Op::Scan { page } => scan(pin, PageId::new(file, page)),
                Op::Write {
                    page,
                    offset,
                    value,
                } => pool_write(pin, PageId::new(file, page), offset, value),
            },
        )
    }

    fn conditions(&self) -> Option<String> {
        super::pool_conditions(&self.pool)
    }

    fn counters(&self) -> Option<Counters> {
        Some(pool_counters(self.pool.stats()))
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.pool.close()?)
    }

    fn checkpoint(&self) -> Option<Result<()>> {
        Some(super::pool_checkpoint(&self.pool))
    }
}

/// A whole-page scan, out of line so that the point-read arm stays small
/// enough to inline into the driver's loop (as in every pool).
#[inline(never)]
fn scan(pin: &ThreadPin<'_>, page_id: PageId) -> Result<u64> {
    Ok(sum_words(&pin.read(page_id)?))
}
