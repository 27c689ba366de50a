//! `pagepool`: reads through `BufferPool::optimistic` (no latch, version
//! validation), through a `ThreadPin` handle per worker: hits run no fence and no
//! thread-local lookup.

use pagepool::{BufferPool, FileId, PageId, ThreadPin};

use super::{open_pool, pool_counters, pool_write, Counters, Instance, Setup};
use crate::bench::driver::Driver;
use crate::bench::workload::Op;
use crate::error::Result;

/// A pool read optimistically.
pub struct Optimistic {
    pool: BufferPool,
    file: FileId,
}

impl Optimistic {
    /// Opens a fresh pool over the data file.
    pub fn open(setup: &Setup<'_>) -> Result<Optimistic> {
        let (pool, file) = open_pool(setup)?;
        Ok(Optimistic { pool, file })
    }
}

impl Instance for Optimistic {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        let pool = &self.pool;
        let file = self.file;
        let pin = &pool.pin_thread();
        // `move`: the closures hold the file id and the offset themselves,
        // not references to them that each read would follow.
        driver.drive(
            #[inline(always)]
            move |op| match op {
                Op::Point { page, offset } => pin
                    .optimistic_try(PageId::new(file, page), move |view| {
                        Ok(view.load_u64(offset)?)
                    }),
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
/// enough to inline into the driver's loop (each workload uses one arm).
#[inline(never)]
fn scan(pin: &ThreadPin<'_>, page_id: PageId) -> Result<u64> {
    Ok(pin.optimistic(page_id, |view| view.sum_u64())?)
}
