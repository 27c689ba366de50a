//! `pagepool-async`: `--tasks` async tasks over the `--threads` threads,
//! each thread a single-threaded tokio runtime running its share of the
//! tasks. Every task reads one u64 of a page drawn by the workload's
//! sampler, through `read_async` (and every third through
//! `optimistic_async`), checks it, and goes on; a miss suspends the task
//! on its read, so a thread keeps as many reads in flight as it has tasks
//! waiting. The tasks run in rounds of [`ROUND`] (each task until the
//! round's end), between which the thread looks at the stop flag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagepool::{BufferPool, FileId, PageId};

use super::{open_pool, pool_counters, pool_engine, Counters, Instance, Setup};
use crate::bail;
use crate::bench::data;
use crate::bench::driver::Driver;
use crate::bench::workload::{Op, Rng, Sampler, Shape};
use crate::error::{Error, Result};

/// How long a round of tasks runs before the thread looks at the stop
/// flag.
const ROUND: Duration = Duration::from_millis(50);

/// A pool shared by tasks.
pub struct Tasks {
    pool: Arc<BufferPool>,
    file: FileId,
    /// Tasks per thread.
    tasks_per_thread: usize,
}

impl Tasks {
    /// Opens a fresh pool over the data file.
    pub fn open(setup: &Setup<'_>) -> Result<Tasks> {
        let (pool, file) = open_pool(setup)?;
        Ok(Tasks {
            pool: Arc::new(pool),
            file,
            tasks_per_thread: setup.tasks.div_ceil(setup.threads.max(1)).max(1),
        })
    }

    /// One round: this thread's tasks, each reading until `ROUND` ends.
    fn round(
        &self,
        runtime: &tokio::runtime::Runtime,
        tasks: usize,
        sampler: &Sampler,
        rng: &mut Rng,
    ) -> Result<u64> {
        let done = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + ROUND;
        let result: Result<()> = runtime.block_on(async {
            let mut handles = Vec::with_capacity(tasks);
            for _ in 0..tasks {
                let (pool, done, sampler) =
                    (Arc::clone(&self.pool), Arc::clone(&done), sampler.clone());
                let mut rng = Rng::new(rng.next_u64(), rng.next_u64());
                let file = self.file;
                handles.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < until {
                        let page = sampler.page(&mut rng);
                        let offset = Sampler::point_offset(&mut rng);
                        let page_id = PageId::new(file, page);
                        let value = if n % 3 == 2 {
                            pool.optimistic_async(page_id, |view| view.load_u64(offset))
                                .await??
                        } else {
                            pool.read_async(page_id).await?.view().load_u64(offset)?
                        };
                        if value != data::value_at(page, offset) {
                            return Err(Error::msg(format!(
                                "WRONG VALUE: read {value:#018x} at offset {offset} of page {page}"
                            )));
                        }
                        n += 1;
                    }
                    done.fetch_add(n, Ordering::Relaxed);
                    Ok::<(), Error>(())
                }));
            }
            for handle in handles {
                handle
                    .await
                    .map_err(|e| Error::msg(format!("a task failed: {e}")))??;
            }
            Ok(())
        });
        result?;
        Ok(done.load(Ordering::Relaxed))
    }
}

impl Instance for Tasks {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        if !driver.is_timed() {
            let pin = self.pool.pin_thread();
            let file = self.file;
            return driver.drive(|op| match op {
                Op::Point { page, offset } => {
                    pin.optimistic_try(PageId::new(file, page), |view| Ok(view.load_u64(offset)?))
                }
                Op::Scan { page } => {
                    Ok(pin.optimistic(PageId::new(file, page), |view| view.sum_u64())?)
                }
                Op::Write { .. } => bail!("pagepool-async does not write"),
            });
        }
        if !matches!(driver.shape(), Shape::UniformPoint | Shape::ZipfPoint) {
            bail!("pagepool-async runs the point-read miss workloads only");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::msg(format!("starting a tokio runtime: {e}")))?;
        let tasks = self.tasks_per_thread;
        driver.run_chunks(|sampler, rng, _| self.round(&runtime, tasks, sampler, rng))
    }

    fn conditions(&self) -> Option<String> {
        super::pool_conditions(&self.pool)
    }

    fn counters(&self) -> Option<Counters> {
        Some(pool_counters(self.pool.stats()))
    }

    fn close(self: Box<Self>) -> Result<()> {
        match Arc::try_unwrap(self.pool) {
            Ok(pool) => Ok(pool.close()?),
            Err(_) => bail!("a task still holds the pool"),
        }
    }

    fn engine(&self) -> (String, usize) {
        pool_engine(&self.pool, self.tasks_per_thread)
    }
}
