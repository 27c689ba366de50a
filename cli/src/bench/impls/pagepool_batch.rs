//! `pagepool-batch`: misses that overlap on one thread. Point workloads
//! read `--batch` random pages at a time through `BufferPool::read_many`
//! (their misses are submitted together and handed back as they
//! complete); `scan-miss` reads its pages through `BufferPool::scan`
//! with a read-ahead window of `--read-ahead` pages. Every value is
//! checked.

use std::ops::ControlFlow;

use pagepool::{BufferPool, FileId, PageId};

use super::{open_pool, pool_counters, pool_engine, Counters, Instance, Setup};
use crate::bail;
use crate::bench::data;
use crate::bench::driver::Driver;
use crate::bench::workload::{Sampler, Shape};
use crate::error::{Error, Result};

/// Pages a scan chunk reads before it looks at the stop flag.
const SCAN_CHUNK: u64 = 16_384;

/// A pool read in batches.
pub struct Batched {
    pool: BufferPool,
    file: FileId,
    batch: usize,
    read_ahead: usize,
    scans: bool,
}

impl Batched {
    /// Opens a fresh pool over the data file.
    pub fn open(setup: &Setup<'_>) -> Result<Batched> {
        let (pool, file) = open_pool(setup)?;
        Ok(Batched {
            pool,
            file,
            batch: setup.batch.max(1),
            read_ahead: setup.read_ahead.max(1),
            scans: setup.workload_scans,
        })
    }

    /// `batch` point reads drawn by the sampler, through one `read_many`.
    fn points(&self, sampler: &Sampler, rng: &mut crate::bench::workload::Rng) -> Result<u64> {
        let mut ids = Vec::with_capacity(self.batch);
        let mut offsets = Vec::with_capacity(self.batch);
        for _ in 0..self.batch {
            ids.push(PageId::new(self.file, sampler.page(rng)));
            offsets.push(Sampler::point_offset(rng));
        }
        let mut first_error: Option<Error> = None;
        let mut next = 0;
        // Pages come back in completion order: find each one's offset by
        // its position (a page drawn twice takes its offsets in turn).
        let mut taken = vec![false; ids.len()];
        self.pool.read_many(&ids, |page_id, page| {
            let Some(index) = (0..ids.len()).find(|&i| !taken[i] && ids[i] == page_id) else {
                first_error
                    .get_or_insert_with(|| Error::msg(format!("{page_id} came back unasked")));
                return;
            };
            taken[index] = true;
            next += 1;
            let offset = offsets[index];
            let value = page
                .map_err(Error::from)
                .and_then(|page| Ok(page.view().load_u64(offset)?));
            match value {
                Ok(value) if value == data::value_at(page_id.page_no(), offset) => {}
                Ok(value) => {
                    first_error.get_or_insert_with(|| {
                        Error::msg(format!(
                            "WRONG VALUE: read {value:#018x} at offset {offset} of page {}",
                            page_id.page_no()
                        ))
                    });
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        });
        if let Some(error) = first_error {
            return Err(error);
        }
        if next != ids.len() {
            bail!("read_many handed back {next} of {} pages", ids.len());
        }
        Ok(ids.len() as u64)
    }

    /// [`SCAN_CHUNK`] pages in order from `cursor` through `scan`.
    fn scan(&self, pages: u64, cursor: &mut u64) -> Result<u64> {
        let start = *cursor;
        let end = (start + SCAN_CHUNK).min(pages);
        let mut first_error: Option<Error> = None;
        self.pool
            .scan(self.file, start..end, self.read_ahead, |page_id, page| {
                let sum = page.map(|page| page.view().sum_u64());
                match sum {
                    Ok(sum) if sum == data::page_sum(page_id.page_no()) => {
                        ControlFlow::Continue(())
                    }
                    Ok(sum) => {
                        first_error = Some(Error::msg(format!(
                            "WRONG VALUE: page {} sums to {sum:#018x}",
                            page_id.page_no()
                        )));
                        ControlFlow::Break(())
                    }
                    Err(error) => {
                        first_error = Some(error.into());
                        ControlFlow::Break(())
                    }
                }
            })?;
        if let Some(error) = first_error {
            return Err(error);
        }
        *cursor = end % pages;
        Ok(end - start)
    }
}

impl Instance for Batched {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        if !driver.is_timed() {
            // The warm-up and checks: one page at a time.
            let pin = self.pool.pin_thread();
            let file = self.file;
            return driver.drive(|op| match op {
                crate::bench::workload::Op::Point { page, offset } => {
                    pin.optimistic_try(PageId::new(file, page), |view| Ok(view.load_u64(offset)?))
                }
                crate::bench::workload::Op::Scan { page } => {
                    Ok(pin.optimistic(PageId::new(file, page), |view| view.sum_u64())?)
                }
                crate::bench::workload::Op::Write { .. } => bail!("pagepool-batch does not write"),
            });
        }
        let pages = driver.page_limit();
        match driver.shape() {
            Shape::UniformPoint | Shape::ZipfPoint => {
                driver.run_chunks(|sampler, rng, _| self.points(sampler, rng))
            }
            Shape::Sequential => driver.run_chunks(|_, _, cursor| self.scan(pages, cursor)),
            shape => bail!(
                "pagepool-batch runs the point-read miss workloads and scan-miss, not {shape:?}"
            ),
        }
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

    fn engine(&self) -> (String, usize) {
        let in_flight = if self.scans {
            self.read_ahead
        } else {
            self.batch
        };
        pool_engine(&self.pool, in_flight)
    }
}
