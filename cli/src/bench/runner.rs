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
//! Every value read is checked against what the data file holds at that
//! page and offset (see `data.rs`); a wrong value fails the run. Every
//! 64th operation is timed with `Instant` into a per-thread histogram.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::data;
use super::impls::{Counters, ImplKind, Instance, Setup};
use super::workload::{Op, Rng, Sampler, Workload};
use crate::bail;
use crate::error::{Context, Error, Result};

/// One operation in this many is timed.
pub const SAMPLE_EVERY: u64 = 64;
/// Threads used to warm a pool up (the warm-up waits on I/O).
const WARM_THREADS: u64 = 4;
/// Highest latency the histograms track (larger ones are clamped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
const SEED: u64 = 0x5EED_0FBA_5EBA_1100;

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
}

/// The start gate and stop flag the threads of one run share.
#[derive(Debug, Default)]
pub struct Gate {
    ready: AtomicUsize,
    go: AtomicBool,
    stop: AtomicBool,
    failed: AtomicBool,
}

impl Gate {
    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }
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

enum Mode<'a> {
    /// Read ranks `next, next + step, ...` below `end`, word 0 of each.
    Warm { next: u64, step: u64, end: u64 },
    /// Random operations between the gate and the stop flag.
    Timed { gate: &'a Gate },
}

/// One thread's loop state: what to do, and what it measured.
pub struct Driver<'a> {
    mode: Mode<'a>,
    sampler: &'a Sampler,
    rng: Rng,
    timer_overhead_ns: u64,
    ops: u64,
    elapsed: Duration,
    histogram: Histogram<u64>,
}

impl<'a> Driver<'a> {
    fn new(
        mode: Mode<'a>,
        sampler: &'a Sampler,
        stream: u64,
        timer_overhead_ns: u64,
    ) -> Result<Self> {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
            .map_err(|e| Error::msg(format!("creating a latency histogram: {e}")))?;
        Ok(Driver {
            mode,
            sampler,
            rng: Rng::new(SEED, stream),
            timer_overhead_ns,
            ops: 0,
            elapsed: Duration::ZERO,
            histogram,
        })
    }

    /// Runs the thread's operations through `op`, which performs one and
    /// returns the value it read (the u64, or the page's sum). Returns
    /// when the run stops, or at the first error or wrong value.
    #[inline]
    pub fn drive<F>(&mut self, mut op: F) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
    {
        match self.mode {
            Mode::Warm { next, step, end } => {
                let mut rank = next;
                while rank < end {
                    let page = self.sampler.page_of_rank(rank);
                    let read = Op::Point { page, offset: 0 };
                    check(read, op(read)?)?;
                    self.ops += 1;
                    rank += step;
                }
                Ok(())
            }
            Mode::Timed { gate } => {
                gate.ready.fetch_add(1, Ordering::SeqCst);
                while !gate.go.load(Ordering::Acquire) {
                    if gate.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    std::thread::yield_now();
                }
                let started = Instant::now();
                let result = self.timed_loop(gate, &mut op);
                self.elapsed = started.elapsed();
                result
            }
        }
    }

    #[inline]
    fn timed_loop<F>(&mut self, gate: &Gate, op: &mut F) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
    {
        let sampler = self.sampler;
        loop {
            let timed = sampler.next(&mut self.rng);
            let before = Instant::now();
            let value = op(timed)?;
            let nanos = before.elapsed().as_nanos() as u64;
            check(timed, value)?;
            self.histogram
                .saturating_record(nanos.saturating_sub(self.timer_overhead_ns).max(1));
            for _ in 1..SAMPLE_EVERY {
                let next = sampler.next(&mut self.rng);
                let value = op(next)?;
                check(next, value)?;
            }
            self.ops += SAMPLE_EVERY;
            if gate.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }
}

/// Fails unless `value` is what the data file holds for `op`.
#[inline]
fn check(op: Op, value: u64) -> Result<()> {
    let expected = match op {
        Op::Point { page, offset } => data::value_at(page, offset),
        Op::Scan { page } => data::page_sum(page),
    };
    if value == expected {
        Ok(())
    } else {
        Err(wrong_value(op, value, expected))
    }
}

#[cold]
#[inline(never)]
fn wrong_value(op: Op, value: u64, expected: u64) -> Error {
    let what = match op {
        Op::Point { page, offset } => format!("the u64 at offset {offset} of page {page}"),
        Op::Scan { page } => format!("the sum of page {page}"),
    };
    Error::msg(format!(
        "WRONG VALUE: read {value:#018x} as {what}, the file holds {expected:#018x}"
    ))
}

/// The median cost of timing an empty region with `Instant`.
pub fn timer_overhead_ns() -> u64 {
    let mut samples: Vec<u64> = (0..10_001)
        .map(|_| {
            let before = Instant::now();
            std::hint::black_box(());
            before.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Result<Duration> {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the call's duration.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage");
    }
    let time = |tv: libc::timeval| {
        Duration::new(tv.tv_sec.max(0) as u64, (tv.tv_usec.max(0) as u32) * 1000)
    };
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

/// Runs one measurement; see the module docs.
pub fn run(spec: &RunSpec<'_>) -> Result<RunOutcome> {
    // Start every run from the disk, not the kernel's cache.
    data::drop_cache(spec.setup.path)?;
    let instance = spec.imp.open(&spec.setup)?;
    let sampler = Sampler::new(spec.workload, spec.pages);
    let outcome = warm_up(&*instance, &sampler, spec)
        .context("warming up")
        .and_then(|()| measure(&*instance, &sampler, spec));
    let closed = instance.close().context("closing");
    let outcome = outcome?;
    closed?;
    Ok(outcome)
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
                    let mut driver = Driver::new(mode, sampler, first, 0)?;
                    instance.run_thread(&mut driver)
                })
            })
            .collect();
        join_all(workers).map(|_| ())
    })
}

fn measure(instance: &dyn Instance, sampler: &Sampler, spec: &RunSpec<'_>) -> Result<RunOutcome> {
    let gate = Gate::default();
    let (results, before, cpu_before, cpu_after) = std::thread::scope(|scope| -> Result<_> {
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
                    )?;
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
        let before = instance.counters();
        let cpu_before = cpu_time();
        gate.go.store(true, Ordering::Release);
        let deadline = Instant::now() + spec.duration;
        loop {
            let now = Instant::now();
            if now >= deadline || gate.failed.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
        gate.stop.store(true, Ordering::SeqCst);
        let results = join_all(workers);
        let cpu_after = cpu_time();
        Ok((results, before, cpu_before, cpu_after))
    })?;
    let drivers = results?;
    let after = instance.counters();
    let cpu_seconds = cpu_after?.saturating_sub(cpu_before?).as_secs_f64();

    let mut histogram = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .map_err(|e| Error::msg(format!("creating a latency histogram: {e}")))?;
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
    Ok(RunOutcome {
        ops,
        ops_per_sec,
        cpu_seconds,
        counters: after.zip(before).map(|(after, before)| after.since(before)),
        p50_ns: histogram.value_at_quantile(0.50),
        p99_ns: histogram.value_at_quantile(0.99),
        samples: histogram.len(),
    })
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

    #[test]
    fn wrong_values_are_errors() {
        let point = Op::Point {
            page: 3,
            offset: 16,
        };
        assert!(check(point, data::value_at(3, 16)).is_ok());
        let err = check(point, data::value_at(4, 16)).unwrap_err().to_string();
        assert!(
            err.contains("WRONG VALUE") && err.contains("page 3"),
            "{err}"
        );
        let scan = Op::Scan { page: 9 };
        assert!(check(scan, data::page_sum(9)).is_ok());
        assert!(check(scan, data::page_sum(9) + 1).is_err());
    }
}
