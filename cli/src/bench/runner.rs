//! Running one (implementation, workload, threads) measurement.
//!
//! 1. Open a fresh instance (a fresh pool) over the data file.
//! 2. Warm up: read the `min(pool frames, pages)` most popular pages of the
//!    workload once, from several threads (I/O bound). For the hot
//!    workloads that is the whole working set; for the miss workloads it
//!    fills the pool, so the clock measures the steady state, not the
//!    filling of free frames.
//! 3. Start the worker threads; each sets up its per-thread state and
//!    waits at the gate. Take counters and `getrusage`, open the gate,
//!    sleep for the run's length, raise the stop flag, join.
//!
//! 4. For `mixed`: every word written in the run is read back through the
//!    instance and compared with the last value its (only) writer stored;
//!    then the instance is closed, a fresh one opened on the same file, and
//!    the words checked again (write-back and flush lost nothing).
//!
//! Every value read is checked against what the data file holds at that
//! page and offset (see `data.rs`); a wrong value fails the run. The
//! per-thread loop, its batched checks and its latency sampling are in
//! [`driver`](super::driver). Around the timed part the runner reads the process's CPU time, page
//! faults and storage traffic ([`resources`](super::resources)); after it,
//! the anonymous memory grown since before the instance was opened and the
//! bytes of the data file in the kernel's page cache.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use pagepool::PAGE_SIZE;

use super::driver::{new_histogram, Driver, Gate, Mode};
use super::impls::{Counters, ImplKind, Instance, Setup};
use super::resources::{self, Snapshot};
use super::workload::{Sampler, Workload};
use super::write_log::{WriteLog, Written};
use super::{cgroup, data};
use crate::bail;
use crate::error::{Context, Error, Result};

/// Threads used to warm a pool up (the warm-up waits on I/O).
const WARM_THREADS: u64 = 4;
/// Runs at least this long show a progress bar (on a terminal).
const PROGRESS_FROM: Duration = Duration::from_secs(3);

/// One run's parameters.
#[derive(Clone, Copy, Debug)]
pub struct RunSpec<'a> {
    /// The implementation.
    pub imp: ImplKind,
    /// The workload.
    pub workload: Workload,
    /// Worker threads.
    pub threads: usize,
    /// Length of the timed part.
    pub duration: Duration,
    /// The data file and pool size.
    pub setup: Setup<'a>,
    /// Pages of the data file this workload ranges over.
    pub pages: u64,
    /// Cost of one `Instant::now()` pair, subtracted from each sample.
    pub timer_overhead_ns: u64,
    /// What the progress bar says.
    pub label: &'a str,
    /// Run a fuzzy checkpoint this often during the timed part (0: none;
    /// writing workloads on implementations that have one).
    pub checkpoint_ms: u64,
}

/// What the checkpoints of a run cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckpointCost {
    /// Checkpoints completed.
    pub count: u64,
    /// Their total time, in ms.
    pub busy_ms: f64,
    /// Throughput while a checkpoint ran over throughput while none did.
    pub ops_ratio: f64,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Operations completed.
    pub ops: u64,
    /// Operations per second, summed over threads (each thread's own ops
    /// over its own time between the gate and the stop flag).
    pub ops_per_sec: f64,
    /// User + system CPU time of the process over the timed part.
    pub cpu_seconds: f64,
    /// Cache counters over the timed part.
    pub counters: Option<Counters>,
    /// Median sampled latency.
    pub p50_ns: u64,
    /// 99th percentile sampled latency.
    pub p99_ns: u64,
    /// Latency samples taken.
    pub samples: u64,
    /// The process's CPU, fault and storage counts over the timed part.
    pub os: Snapshot,
    /// Anonymous memory grown from before the instance opened to the end
    /// of the timed part (bytes; negative if it shrank).
    pub rss_delta_bytes: i64,
    /// Bytes of the data file in the kernel's page cache after the timed
    /// part.
    pub cache_bytes: u64,
    /// Distinct words written and checked afterwards (`mixed`).
    pub checked_words: Option<u64>,
    /// For a capped run: the memory cgroup's limit and the most it held
    /// (bytes).
    pub memory_cap: Option<(u64, Option<u64>)>,
    /// The engine that read the pages, and the most reads one thread kept
    /// in flight ([`Instance::engine`]).
    pub engine: (String, usize),
    /// With `--checkpoint-ms`: what the checkpoints cost.
    pub checkpoint: Option<CheckpointCost>,
    /// Whether the pool ran its background writer (`on`, `off`).
    pub writer: &'static str,
    /// What the pool ran with ([`Instance::conditions`]).
    pub conditions: Option<String>,
}

/// Marks the gate failed if its thread unwinds, so nobody waits for it.
struct FailOnUnwind<'a>(&'a Gate);

impl Drop for FailOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

/// Runs one measurement; see the module docs.
pub fn run(spec: &RunSpec<'_>) -> Result<RunOutcome> {
    // Start every run from the disk, not the kernel's cache.
    data::drop_cache(spec.setup.path)?;
    resources::trim_heap();
    // The capped kernel-cache baselines run in a memory cgroup limited to
    // the pool's size (plus the process's own allowance); the process
    // leaves it when this returns.
    let limit_bytes = spec.setup.pool_frames as u64 * PAGE_SIZE as u64
        + cgroup::process_allowance_bytes(spec.threads);
    let cap = if spec.imp.memory_capped() {
        Some(
            cgroup::MemoryCap::enter(limit_bytes)
                .context("capping the page cache (a memory cgroup)")?,
        )
    } else {
        None
    };
    let anon_before = resources::rss_anon_bytes();
    let instance = spec.imp.open(&spec.setup)?;
    let sampler = Sampler::new(spec.workload, spec.pages);
    let outcome = warm_up(&*instance, &sampler, spec)
        .context("warming up")
        .and_then(|()| measure(&*instance, &sampler, spec, anon_before))
        .and_then(|(outcome, logs)| {
            if !spec.workload.writes() {
                return Ok((outcome, Vec::new()));
            }
            let expected = last_writes(logs);
            check_writes(&*instance, &sampler, &expected).context("reading the writes back")?;
            Ok((outcome, expected))
        });
    let closed = instance.close().context("closing");
    let (mut outcome, expected) = outcome?;
    closed?;
    if spec.workload.writes() {
        let reopened = spec.imp.open(&spec.setup).context("reopening")?;
        let checked = check_writes(&*reopened, &sampler, &expected)
            .context("reading the writes back after closing and reopening");
        let closed = reopened.close().context("closing");
        checked?;
        closed?;
        outcome.checked_words = Some(expected.len() as u64);
    }
    outcome.memory_cap = cap.map(|cap| (limit_bytes, cap.peak_bytes()));
    Ok(outcome)
}

/// The last value written to each word, from the threads' logs (each word
/// has a single writer, so its log's order is the word's order).
fn last_writes(logs: Vec<WriteLog>) -> Vec<Written> {
    let mut last = HashMap::with_capacity(logs.iter().map(WriteLog::len).sum::<usize>() / 2);
    for log in logs {
        for &(key, value) in log.entries() {
            last.insert(key, value);
        }
    }
    let mut expected: Vec<Written> = last.into_iter().collect();
    // Page order: a reopened pool then loads each page once.
    expected.sort_unstable();
    expected
}

/// Reads every word of `expected` back through `instance`, from a few
/// threads, and fails at the first that differs.
fn check_writes(instance: &dyn Instance, sampler: &Sampler, expected: &[Written]) -> Result<()> {
    if expected.is_empty() {
        return Ok(());
    }
    let chunk = expected.len().div_ceil(WARM_THREADS as usize);
    let gate = Gate::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = expected
            .chunks(chunk)
            .enumerate()
            .map(|(index, expected)| {
                let gate = &gate;
                scope.spawn(move || -> Result<()> {
                    let _unwind = FailOnUnwind(gate);
                    let mode = Mode::Check { expected };
                    let mut driver =
                        Driver::new(mode, sampler, index as u64, 0)?.writer(0, 1, true);
                    instance.run_thread(&mut driver)
                })
            })
            .collect();
        join_all(workers).map(|_| ())
    })
}

fn warm_up(instance: &dyn Instance, sampler: &Sampler, spec: &RunSpec<'_>) -> Result<()> {
    let end = sampler.pages().min(spec.setup.pool_frames as u64);
    let step = WARM_THREADS.min(end.max(1));
    let gate = Gate::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..step)
            .map(|first| {
                let gate = &gate;
                scope.spawn(move || -> Result<()> {
                    let _unwind = FailOnUnwind(gate);
                    let mode = Mode::Warm {
                        next: first,
                        step,
                        end,
                    };
                    let mut driver =
                        Driver::new(mode, sampler, first, 0)?.writer(0, 1, spec.workload.writes());
                    instance.run_thread(&mut driver)
                })
            })
            .collect();
        join_all(workers).map(|_| ())
    })
}

fn progress_bar(spec: &RunSpec<'_>) -> Option<ProgressBar> {
    if spec.duration < PROGRESS_FROM {
        return None;
    }
    let bar = ProgressBar::new(spec.duration.as_millis() as u64);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {elapsed}/{duration}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(spec.label.to_string());
    Some(bar)
}

fn measure(
    instance: &dyn Instance,
    sampler: &Sampler,
    spec: &RunSpec<'_>,
    anon_before: u64,
) -> Result<(RunOutcome, Vec<WriteLog>)> {
    let gate = Gate::default();
    let writes = spec.workload.writes();
    let (results, before, os_before, os_after) = std::thread::scope(|scope| -> Result<_> {
        let workers: Vec<_> = (0..spec.threads)
            .map(|index| {
                let gate = &gate;
                scope.spawn(move || -> Result<Driver<'_>> {
                    let _unwind = FailOnUnwind(gate);
                    let stream = 1000 + index as u64;
                    let mut driver = Driver::new(
                        Mode::Timed { gate },
                        sampler,
                        stream,
                        spec.timer_overhead_ns,
                    )?
                    .writer(index, spec.threads, writes);
                    match instance.run_thread(&mut driver) {
                        Ok(()) => Ok(driver),
                        Err(error) => {
                            gate.fail();
                            Err(error.context(format!("thread {index}")))
                        }
                    }
                })
            })
            .collect();
        while gate.ready.load(Ordering::SeqCst) < spec.threads
            && !gate.failed.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let bar = progress_bar(spec);
        let before = instance.counters();
        let os_before = Snapshot::now();
        gate.go.store(true, Ordering::Release);
        let started = Instant::now();
        let checkpoints = (spec.checkpoint_ms > 0 && writes).then(|| {
            let gate = &gate;
            scope.spawn(move || checkpoint_loop(instance, gate, spec.checkpoint_ms, started))
        });
        let deadline = started + spec.duration;
        loop {
            let now = Instant::now();
            if now >= deadline || gate.failed.load(Ordering::SeqCst) {
                break;
            }
            if let Some(bar) = &bar {
                bar.set_position((now - started).as_millis() as u64);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
        gate.stop.store(true, Ordering::SeqCst);
        let checkpoint = match checkpoints.map(|thread| thread.join()) {
            Some(Ok(cost)) => Some(cost?),
            Some(Err(_)) => bail!("the checkpoint thread panicked"),
            None => None,
        };
        let results = join_all(workers).map(|drivers| (drivers, checkpoint));
        let os_after = Snapshot::now();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok((results, before, os_before, os_after))
    })?;
    let (drivers, checkpoint) = results?;
    let after = instance.counters();
    let os = os_after?.since(os_before?);
    // The write logs of `mixed` are the benchmark's memory, not the
    // implementation's.
    let log_bytes: usize = drivers.iter().map(|d| d.log.resident_bytes()).sum();
    let rss_delta_bytes =
        resources::rss_anon_bytes() as i64 - anon_before as i64 - log_bytes as i64;
    let cache_bytes = data::cached_bytes(spec.setup.path)?;

    let mut histogram = new_histogram()?;
    let mut ops = 0;
    let mut ops_per_sec = 0.0;
    for driver in &drivers {
        histogram
            .add(&driver.histogram)
            .map_err(|e| Error::msg(format!("merging latency histograms: {e}")))?;
        ops += driver.ops;
        if !driver.elapsed.is_zero() {
            ops_per_sec += driver.ops as f64 / driver.elapsed.as_secs_f64();
        }
    }
    if ops == 0 {
        bail!("no operation completed in {:?}", spec.duration);
    }
    let outcome = RunOutcome {
        ops,
        ops_per_sec,
        cpu_seconds: os.cpu.as_secs_f64(),
        counters: after.zip(before).map(|(after, before)| after.since(before)),
        p50_ns: histogram.value_at_quantile(0.50),
        p99_ns: histogram.value_at_quantile(0.99),
        samples: histogram.len(),
        os,
        rss_delta_bytes,
        cache_bytes,
        checked_words: None,
        memory_cap: None,
        engine: instance.engine(),
        checkpoint,
        writer: if spec.setup.writer { "on" } else { "off" },
        conditions: instance.conditions(),
    };
    let logs = drivers.into_iter().map(|driver| driver.log).collect();
    Ok((outcome, logs))
}

/// Runs a checkpoint every `every_ms` until the run stops; measures the
/// throughput (from the gate's progress count) while one runs and while
/// none does.
fn checkpoint_loop(
    instance: &dyn Instance,
    gate: &Gate,
    every_ms: u64,
    started: Instant,
) -> Result<CheckpointCost> {
    let progress = || gate.progress.load(Ordering::Relaxed);
    let (mut busy_ops, mut busy) = (0u64, Duration::ZERO);
    let mut count = 0;
    loop {
        let next = Instant::now() + Duration::from_millis(every_ms);
        while Instant::now() < next {
            if gate.stop.load(Ordering::SeqCst) {
                let total = started.elapsed();
                let idle = total.saturating_sub(busy).as_secs_f64();
                let idle_ops = progress().saturating_sub(busy_ops) as f64;
                let busy_rate = busy_ops as f64 / busy.as_secs_f64().max(1e-9);
                let idle_rate = idle_ops / idle.max(1e-9);
                return Ok(CheckpointCost {
                    count,
                    busy_ms: busy.as_secs_f64() * 1e3,
                    ops_ratio: if count == 0 {
                        0.0
                    } else {
                        busy_rate / idle_rate.max(1e-9)
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let (ops_before, at) = (progress(), Instant::now());
        match instance.checkpoint() {
            Some(done) => done.context("checkpoint")?,
            None => bail!("--checkpoint-ms: this implementation has no checkpoint"),
        }
        busy += at.elapsed();
        busy_ops += progress() - ops_before;
        count += 1;
    }
}

/// Joins every worker, returning their results or the first error (a
/// panicked worker is an error, not a panic of the command).
fn join_all<T>(workers: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>) -> Result<Vec<T>> {
    let mut values = Vec::with_capacity(workers.len());
    let mut first_error = None;
    for worker in workers {
        match worker.join() {
            Ok(Ok(value)) => values.push(value),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                first_error
                    .get_or_insert(Error::msg(format!("a worker thread panicked: {message}")));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workload::Op;

    /// Words in a map; optionally forgets writes to one page.
    struct Fake {
        words: std::sync::Mutex<HashMap<u64, u64>>,
        forget_page: Option<u64>,
    }

    impl Instance for Fake {
        fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
            driver.drive(|op| match op {
                Op::Point { page, offset } => Ok(*self
                    .words
                    .lock()
                    .unwrap()
                    .get(&(page << 12 | offset as u64))
                    .unwrap_or(&data::value_at(page, offset))),
                Op::Scan { page } => Ok(data::page_sum(page)),
                Op::Write {
                    page,
                    offset,
                    value,
                } => {
                    if self.forget_page != Some(page) {
                        self.words
                            .lock()
                            .unwrap()
                            .insert(page << 12 | offset as u64, value);
                    }
                    Ok(value)
                }
            })
        }
        fn counters(&self) -> Option<Counters> {
            None
        }
        fn close(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_lost_write_fails_the_check() {
        let sampler = Sampler::new(Workload::Mixed, 64);
        let expected: Vec<Written> = (0..64u64)
            .map(|page| (page << 12 | 8, data::written_value(page, 8, 0, page + 1)))
            .collect();
        let fill = |fake: &Fake| {
            let mut words = fake.words.lock().unwrap();
            for &(key, value) in &expected {
                words.insert(key, value);
            }
        };
        let good = Fake {
            words: Default::default(),
            forget_page: None,
        };
        fill(&good);
        check_writes(&good, &sampler, &expected).unwrap();
        let lossy = Fake {
            words: Default::default(),
            forget_page: None,
        };
        fill(&lossy);
        lossy.words.lock().unwrap().remove(&(17 << 12 | 8));
        let err = check_writes(&lossy, &sampler, &expected)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LOST WRITE") && err.contains("page 17"),
            "{err}"
        );
    }

    #[test]
    fn timed_writes_are_logged_and_checked() {
        let sampler = Sampler::new(Workload::Mixed, 32);
        let gate = Gate::default();
        gate.go.store(true, Ordering::SeqCst);
        let fake = Fake {
            words: Default::default(),
            forget_page: None,
        };
        let logs: Vec<WriteLog> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..3)
                .map(|index| {
                    let (gate, sampler, fake) = (&gate, &sampler, &fake);
                    scope.spawn(move || {
                        let mut driver = Driver::new(Mode::Timed { gate }, sampler, index, 0)
                            .unwrap()
                            .writer(index as usize, 3, true);
                        fake.run_thread(&mut driver).unwrap();
                        driver.log
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            gate.stop.store(true, Ordering::SeqCst);
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(logs.iter().all(|log| log.len() > 0));
        let expected = last_writes(logs);
        check_writes(&fake, &sampler, &expected).unwrap();
        let forgetful = Fake {
            words: Default::default(),
            forget_page: Some(expected[0].0 >> 12),
        };
        for &(key, value) in &expected {
            forgetful.words.lock().unwrap().insert(key, value);
        }
        forgetful.words.lock().unwrap().remove(&expected[0].0);
        assert!(check_writes(&forgetful, &sampler, &expected).is_err());
    }

    #[test]
    fn the_last_write_of_each_word_wins() {
        let log = |entries: &[Written]| {
            let mut log = WriteLog::default();
            for &entry in entries {
                log.push(entry);
            }
            log
        };
        let logs = vec![
            log(&[(1 << 12 | 8, 10), (2 << 12, 20), (1 << 12 | 8, 11)]),
            log(&[(1 << 12 | 16, 30)]),
        ];
        assert_eq!(
            last_writes(logs),
            vec![(1 << 12 | 8, 11), (1 << 12 | 16, 30), (2 << 12, 20)]
        );
    }
}
