//! One worker thread's loop: the operations it runs, how every value it
//! reads is checked, and how latencies are sampled, without the loop
//! setting the pace of what it measures.
//!
//! # Why the loop has this shape
//!
//! A hot-point operation over memory larger than the caches is one DRAM
//! miss, about 100 ns. A core still finishes one every ~20 ns, because it
//! keeps several operations' loads in flight at once (memory-level
//! parallelism): the out-of-order window holds the next operations while
//! the earlier loads wait. Anything that makes the core wait for a load
//! before it can start the next operation, or that fills the window with
//! instructions between loads, takes that parallelism away and becomes
//! the pace of every implementation. The first driver did three such
//! things; its `raw` row ran at 0.38× of a minimal loop (BENCHMARKS.md
//! measures each step):
//!
//! 1. It timed every 64th operation with a pair of `Instant::now()`. The
//!    vDSO clock read orders `rdtsc` behind a fence that waits for every
//!    earlier load, so each sample drained the window, twice.
//! 2. It checked each value in a call of its own, with a branch per value.
//! 3. It drew each operation through the general sampler (a branch on the
//!    distribution, the scan flag and the write share) and an `Op`
//!    dispatch: dozens of instructions between two loads.
//!
//! # What it does now
//!
//! - **Batches checked by their sum.** Operations run in batches of
//!   [`BATCH`]; the stop flag is read once per batch. Where the workload
//!   only reads, a value is linear in its page and word index
//!   (`data.rs`), so the sum of a batch's values is known from the sums of
//!   its pages and word indexes: the loop keeps three running sums (the
//!   values, the pages shifted left by 12 — the value the address
//!   computation already holds — and the word indexes), two additions
//!   more than a bare loop, and compares once per batch. Any single wrong
//!   value changes the sum; several cancel only if their errors add up to
//!   zero modulo 2^64 within one batch. (An OR of per-value differences,
//!   `bad |= value ^ expected`, cannot cancel at all, and was the first
//!   version; it costs two instructions more per operation, and measured
//!   0.89–0.92× `raw-loop` where the sums measure 0.94–0.97×.) A bad batch
//!   is replayed operation by operation from the generator's state at its
//!   start and the first wrong value is named; if the replay reads only
//!   right values the run fails all the same, as a transient wrong value.
//!   `mixed`, where a read may find a written value, checks each
//!   operation as it completes; it is bound by misses, not by the loop.
//! - **A loop per shape.** The loop is compiled once per [`Shape`]. For
//!   the hot workloads an operation is drawn with its random numbers
//!   alone, and the implementation's closure receives a constant `Op`
//!   variant, so its `match` folds away when it is inlined.
//! - **Latency in separate stretches.** Latency is sampled in *timed
//!   batches*, each of whose operations is timed alone with `Instant` (a
//!   sample is the latency of one operation with nothing else in flight,
//!   as before). Before each timed batch the driver times one untimed
//!   batch whole; the difference is what timing costs, and the number of
//!   untimed batches until the next timed one is set so that this cost
//!   stays under 1/[`SAMPLE_COST_SHARE`] of the run (and at most
//!   `MAX_SAMPLE_PERIOD` untimed batches pass between two timed ones).
//!   Timing a hit costs more than the hit, so hot runs take a timed batch
//!   every 10 ms or so (some 25 000 samples a second per thread); timing a
//!   miss costs next to nothing, so miss runs time every other batch.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::data;
use super::workload::{Lane, Op, Rng, Sampler, Shape};
use super::write_log::{WriteLog, Written};
use crate::bail;
use crate::error::{Error, Result};

/// Operations per batch: the unit of checking and of reading the stop flag.
pub const BATCH: u64 = 256;
/// Workloads over at most this many pages are checked by batch sums: a
/// batch's sum of `page << 12` then cannot wrap, so shifting it back gives
/// the exact sum of its pages (`data::sum_of_values`). Larger ones (files
/// of more than 64 PiB) are checked operation by operation.
const MAX_SUMMED_PAGES: u64 = 1 << (64 - 12 - BATCH.ilog2());

/// Timing costs at most one part in this many of a thread's run.
pub const SAMPLE_COST_SHARE: u64 = 200;
/// At most this many untimed batches between two timed ones.
const MAX_SAMPLE_PERIOD: u64 = 1 << 12;
/// Highest latency the histograms track (larger ones are clamped).
pub const MAX_LATENCY_NS: u64 = 60_000_000_000;
const SEED: u64 = 0x5EED_0FBA_5EBA_1100;

/// The start gate and stop flag the threads of one run share.
#[derive(Debug, Default)]
pub struct Gate {
    /// Operations done so far by the general loop (`mixed`,
    /// `write-heavy`), a batch at a time: what the checkpoint thread
    /// measures throughput with.
    pub(super) progress: std::sync::atomic::AtomicU64,
    pub(super) ready: AtomicUsize,
    pub(super) go: AtomicBool,
    pub(super) stop: AtomicBool,
    pub(super) failed: AtomicBool,
}

impl Gate {
    pub(super) fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a driver does.
pub(super) enum Mode<'a> {
    /// Read ranks `next, next + step, ...` below `end`, word 0 of each.
    Warm { next: u64, step: u64, end: u64 },
    /// Random operations between the gate and the stop flag.
    Timed { gate: &'a Gate },
    /// Read each word back and compare it with the value last written.
    Check { expected: &'a [Written] },
}

/// One thread's loop state: what to do, and what it measured.
///
/// Contract with the implementations: every [`Op`] a driver hands out
/// names a page below [`Driver::page_limit`] and, for point reads and
/// writes, an 8-aligned offset whose word lies inside the page's data area.
pub struct Driver<'a> {
    mode: Mode<'a>,
    sampler: &'a Sampler,
    rng: Rng,
    timer_overhead_ns: u64,
    pub(super) ops: u64,
    pub(super) elapsed: Duration,
    pub(super) histogram: Histogram<u64>,
    /// The words this thread may write (`mixed`).
    lane: Lane,
    /// This thread's number, stamped into the values it writes.
    thread: u64,
    /// Writes so far (the next value's sequence number).
    seq: u64,
    /// Whether reads may find written values (`mixed`).
    writes: bool,
    /// The next page of a sequential workload (`scan-miss`): thread `i`
    /// starts at `1/8 + i/4` of the file, past the pages the warm-up loads
    /// (the first eighth, a pool's worth) and a quarter (two pools) from
    /// the next thread, so that threads do not read each other's pages.
    cursor: u64,
    /// Every write, in order (`mixed`).
    pub(super) log: WriteLog,
}

impl<'a> Driver<'a> {
    pub(super) fn new(
        mode: Mode<'a>,
        sampler: &'a Sampler,
        stream: u64,
        timer_overhead_ns: u64,
    ) -> Result<Self> {
        Ok(Driver {
            mode,
            sampler,
            rng: Rng::new(SEED, stream),
            timer_overhead_ns,
            ops: 0,
            elapsed: Duration::ZERO,
            histogram: new_histogram()?,
            lane: Lane::whole(),
            thread: 0,
            seq: 0,
            writes: false,
            log: WriteLog::default(),
            cursor: sampler.pages() / 8,
        })
    }

    /// Makes this thread writer `index` of `count` (a workload that writes
    /// gets one writer per word).
    pub(super) fn writer(mut self, index: usize, count: usize, writes: bool) -> Self {
        self.lane = Lane::new(index, count);
        self.thread = index as u64;
        let pages = self.sampler.pages();
        self.cursor = (pages / 8 + index as u64 * (pages / 4)) % pages;
        self.writes = writes;
        self
    }

    /// Every page an operation of this driver names is below this.
    pub fn page_limit(&self) -> u64 {
        self.sampler.pages()
    }

    /// How the workload draws its operations.
    pub fn shape(&self) -> Shape {
        self.sampler.shape()
    }

    /// Whether this is the timed part of a run (not the warm-up or the
    /// check of written values).
    pub fn is_timed(&self) -> bool {
        matches!(self.mode, Mode::Timed { .. })
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
                    check(read, op(read)?, self.writes)?;
                    self.ops += 1;
                    rank += step;
                }
                Ok(())
            }
            Mode::Check { expected } => {
                for &(key, want) in expected {
                    let (page, offset) = (key >> 12, (key & 0xFFF) as usize);
                    let value = op(Op::Point { page, offset })?;
                    if value != want {
                        bail!(
                            "LOST WRITE: the u64 at offset {offset} of page {page} reads \
                             {value:#018x}, its last write stored {want:#018x}"
                        );
                    }
                    self.ops += 1;
                }
                Ok(())
            }
            Mode::Timed { gate } => {
                self.between_gate_and_stop(gate, |driver| driver.timed_loop(gate, &mut op))
            }
        }
    }

    /// Runs `chunk` between the gate and the stop flag, adding the number
    /// of operations each call returns; nothing is checked or timed. The
    /// `raw-loop` row uses it to run a loop of its own (`chunk` draws its
    /// pages from the generator it is given).
    pub fn free_run<C>(&mut self, mut chunk: C) -> Result<()>
    where
        C: FnMut(&mut Rng) -> u64,
    {
        let Mode::Timed { gate } = self.mode else {
            bail!("free_run runs only in the timed part of a run");
        };
        self.between_gate_and_stop(gate, |driver| {
            while !gate.stopped() {
                driver.ops += chunk(&mut driver.rng);
            }
            Ok(())
        })
    }

    /// Runs `chunk` between the gate and the stop flag, adding the number
    /// of operations each call returns, for implementations whose
    /// operations are not one `Op` each (batches, tasks, scans): `chunk`
    /// draws its pages with the sampler and generator it is given (or
    /// takes them in order from the cursor), checks every value itself,
    /// and returns how many it read. Nothing is timed (no latency rows).
    pub fn run_chunks<C>(&mut self, mut chunk: C) -> Result<()>
    where
        C: FnMut(&Sampler, &mut Rng, &mut u64) -> Result<u64>,
    {
        let Mode::Timed { gate } = self.mode else {
            bail!("run_chunks runs only in the timed part of a run");
        };
        let sampler = self.sampler;
        self.between_gate_and_stop(gate, |driver| {
            while !gate.stopped() {
                driver.ops += chunk(sampler, &mut driver.rng, &mut driver.cursor)?;
            }
            Ok(())
        })
    }

    /// Waits at the gate, runs `body`, and records how long it ran.
    fn between_gate_and_stop(
        &mut self,
        gate: &Gate,
        body: impl FnOnce(&mut Self) -> Result<()>,
    ) -> Result<()> {
        gate.ready.fetch_add(1, Ordering::SeqCst);
        while !gate.go.load(Ordering::Acquire) {
            if gate.stopped() {
                return Ok(());
            }
            std::thread::yield_now();
        }
        let started = Instant::now();
        let result = body(self);
        self.elapsed = started.elapsed();
        result
    }

    /// The timed loop, compiled once per shape (see the module docs).
    #[inline(always)]
    fn timed_loop<F>(&mut self, gate: &Gate, op: &mut F) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
    {
        let sampler = self.sampler;
        let summed = !self.writes && sampler.pages() <= MAX_SUMMED_PAGES;
        match (sampler.shape(), summed) {
            (Shape::UniformPoint, true) => self.summed_loop(gate, op, UniformPoint(sampler)),
            (Shape::UniformScan, true) => self.summed_loop(gate, op, UniformScan(sampler)),
            (Shape::ZipfPoint, true) => self.summed_loop(gate, op, AnyPoint(sampler)),
            (Shape::Sequential, _) => self.sampled_loop(
                gate,
                op,
                |driver, op| driver.sequential_batch(op, false),
                |driver, op| driver.sequential_batch(op, true),
            ),
            _ => self.sampled_loop(
                gate,
                op,
                |driver, op| driver.checked_batch(op, false),
                |driver, op| driver.checked_batch(op, true),
            ),
        }
    }

    /// The timed loop of a read-only workload drawn by `draw`.
    #[inline(always)]
    fn summed_loop<F, G>(&mut self, gate: &Gate, op: &mut F, draw: G) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
        G: Draw,
    {
        self.sampled_loop(
            gate,
            op,
            |driver, op| driver.summed_batch(op, &draw),
            |driver, op| driver.timed_summed_batch(op, &draw),
        )
    }

    /// Runs untimed batches, and a timed batch every so often (see the
    /// module docs), until the stop flag is raised.
    #[inline(always)]
    fn sampled_loop<F, U, T>(&mut self, gate: &Gate, op: &mut F, untimed: U, timed: T) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
        U: Fn(&mut Self, &mut F) -> Result<()>,
        T: Fn(&mut Self, &mut F) -> Result<()>,
    {
        let mut period = 1;
        loop {
            for _ in 0..period {
                untimed(self, op)?;
                if gate.stopped() {
                    return Ok(());
                }
            }
            let before_untimed = Instant::now();
            untimed(self, op)?;
            let before_timed = Instant::now();
            timed(self, op)?;
            let untimed_cost = before_timed - before_untimed;
            period = sample_period(untimed_cost, before_timed.elapsed());
            if gate.stopped() {
                return Ok(());
            }
        }
    }

    /// [`BATCH`] operations drawn by `draw`, checked once at the end.
    #[inline(always)]
    fn summed_batch<F, G>(&mut self, op: &mut F, draw: &G) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
        G: Draw,
    {
        let start = self.rng.clone();
        let mut rng = start.clone();
        let mut sum = 0u64;
        let (mut shifted_pages, mut words) = (0u64, 0u64);
        for _ in 0..BATCH {
            let next = draw.draw(&mut rng);
            sum = sum.wrapping_add(op(next)?);
            match next {
                Op::Point { page, offset } => {
                    shifted_pages = shifted_pages.wrapping_add(page << 12);
                    words = words.wrapping_add((offset / 8) as u64);
                }
                Op::Scan { page } => shifted_pages = shifted_pages.wrapping_add(page << 12),
                Op::Write { .. } => {}
            }
        }
        self.rng = rng;
        if sum != G::expected_sum(shifted_pages, words, BATCH) {
            return Err(self.replay(start, op, draw));
        }
        self.ops += BATCH;
        Ok(())
    }

    /// Replays a batch whose check failed, operation by operation from
    /// the generator's state at its start, and names the first wrong
    /// value (or reports a transient one).
    #[cold]
    #[inline(never)]
    fn replay<F, G>(&mut self, start: Rng, op: &mut F, draw: &G) -> Error
    where
        F: FnMut(Op) -> Result<u64>,
        G: Draw,
    {
        let mut rng = start;
        for _ in 0..BATCH {
            let next = draw.draw(&mut rng);
            match op(next) {
                Ok(value) => {
                    if let Err(wrong) = check(next, value, false) {
                        return wrong;
                    }
                }
                Err(error) => return error,
            }
        }
        Error::msg(format!(
            "WRONG VALUE: a batch of {BATCH} reads returned a value that differs from the \
             file; read again, every value was right (a transient wrong value)"
        ))
    }

    /// [`BATCH`] operations drawn by `draw`, each timed and checked alone.
    #[inline(never)]
    fn timed_summed_batch<F, G>(&mut self, op: &mut F, draw: &G) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
        G: Draw,
    {
        for _ in 0..BATCH {
            let next = draw.draw(&mut self.rng);
            let before = Instant::now();
            let value = op(next)?;
            let nanos = before.elapsed().as_nanos() as u64;
            check(next, value, false)?;
            self.record(nanos);
        }
        self.ops += BATCH;
        Ok(())
    }

    /// [`BATCH`] whole pages in order from the cursor, each checked (and,
    /// if `timed`, timed) alone.
    #[inline(never)]
    fn sequential_batch<F>(&mut self, op: &mut F, timed: bool) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
    {
        let pages = self.sampler.pages();
        for _ in 0..BATCH {
            let next = Op::Scan { page: self.cursor };
            self.cursor = (self.cursor + 1) % pages;
            let before = timed.then(Instant::now);
            let value = op(next)?;
            if let Some(before) = before {
                self.record(before.elapsed().as_nanos() as u64);
            }
            check(next, value, false)?;
        }
        self.ops += BATCH;
        Ok(())
    }

    /// [`BATCH`] operations from the general sampler, each checked (and,
    /// if `timed`, timed) alone; writes are logged.
    #[inline(always)]
    fn checked_batch<F>(&mut self, op: &mut F, timed: bool) -> Result<()>
    where
        F: FnMut(Op) -> Result<u64>,
    {
        for _ in 0..BATCH {
            let next = self.next_op();
            let before = timed.then(Instant::now);
            let value = op(next)?;
            if let Some(before) = before {
                self.record(before.elapsed().as_nanos() as u64);
            }
            self.finish(next, value)?;
        }
        self.ops += BATCH;
        if let Mode::Timed { gate } = self.mode {
            gate.progress.fetch_add(BATCH, Ordering::Relaxed);
        }
        Ok(())
    }

    fn record(&mut self, nanos: u64) {
        self.histogram
            .saturating_record(nanos.saturating_sub(self.timer_overhead_ns).max(1));
    }

    /// The next operation from the general sampler, a write's value filled
    /// in.
    #[inline]
    fn next_op(&mut self) -> Op {
        let mut op = self.sampler.next(&mut self.rng, self.lane);
        if let Op::Write {
            page,
            offset,
            value,
        } = &mut op
        {
            self.seq += 1;
            *value = data::written_value(*page, *offset, self.thread, self.seq);
        }
        op
    }

    /// Checks what `op` returned, and logs a write.
    #[inline]
    fn finish(&mut self, op: Op, value: u64) -> Result<()> {
        check(op, value, self.writes)?;
        if let Op::Write { page, offset, .. } = op {
            self.log.push((page << 12 | offset as u64, value));
        }
        Ok(())
    }
}

/// Draws the operations of one [`Shape`] of read-only workload. A trait
/// with `#[inline(always)]` methods rather than a closure, so that the
/// draw is inlined into each batch loop and the `Op` it returns is a
/// constant variant there.
trait Draw {
    fn draw(&self, rng: &mut Rng) -> Op;

    /// The wrapping sum of the values of `count` operations of this shape
    /// whose pages (shifted left by 12) and word indexes add up as given.
    fn expected_sum(shifted_pages: u64, words: u64, count: u64) -> u64;
}

/// [`Shape::UniformPoint`].
struct UniformPoint<'a>(&'a Sampler);

impl Draw for UniformPoint<'_> {
    #[inline(always)]
    fn draw(&self, rng: &mut Rng) -> Op {
        Op::Point {
            page: self.0.uniform_page(rng),
            offset: Sampler::point_offset(rng),
        }
    }

    #[inline(always)]
    fn expected_sum(shifted_pages: u64, words: u64, _count: u64) -> u64 {
        data::sum_of_values(shifted_pages, words)
    }
}

/// [`Shape::UniformScan`].
struct UniformScan<'a>(&'a Sampler);

impl Draw for UniformScan<'_> {
    #[inline(always)]
    fn draw(&self, rng: &mut Rng) -> Op {
        Op::Scan {
            page: self.0.uniform_page(rng),
        }
    }

    #[inline(always)]
    fn expected_sum(shifted_pages: u64, _words: u64, count: u64) -> u64 {
        data::sum_of_page_sums(shifted_pages, count)
    }
}

/// [`Shape::ZipfPoint`]: a point read of a page from the workload's
/// distribution.
struct AnyPoint<'a>(&'a Sampler);

impl Draw for AnyPoint<'_> {
    #[inline(always)]
    fn draw(&self, rng: &mut Rng) -> Op {
        Op::Point {
            page: self.0.page(rng),
            offset: Sampler::point_offset(rng),
        }
    }

    #[inline(always)]
    fn expected_sum(shifted_pages: u64, words: u64, _count: u64) -> u64 {
        data::sum_of_values(shifted_pages, words)
    }
}

/// A latency histogram with the benchmark's bounds.
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .map_err(|e| Error::msg(format!("creating a latency histogram: {e}")))
}

/// Untimed batches until the next timed one: enough that a timed batch's
/// cost beyond an untimed one (`timed - untimed`) is at most
/// 1/[`SAMPLE_COST_SHARE`] of the time between timed batches.
fn sample_period(untimed: Duration, timed: Duration) -> u64 {
    let extra_ns = timed.saturating_sub(untimed).as_nanos() as u64;
    let untimed_ns = (untimed.as_nanos() as u64).max(1);
    (extra_ns * SAMPLE_COST_SHARE)
        .div_ceil(untimed_ns)
        .clamp(1, MAX_SAMPLE_PERIOD)
}

/// The value a read-only operation must return.
#[inline(always)]
fn expected(op: Op) -> u64 {
    match op {
        Op::Point { page, offset } => data::value_at(page, offset),
        Op::Scan { page } => data::page_sum(page),
        Op::Write { value, .. } => value,
    }
}

/// Fails unless `value` is what the data file holds for `op` (or, where
/// the workload writes, a value written to that word; or, for a write,
/// the value written).
#[inline]
pub(super) fn check(op: Op, value: u64, writes: bool) -> Result<()> {
    let expected = expected(op);
    if value == expected {
        return Ok(());
    }
    if let Op::Point { page, offset } = op {
        if writes && data::is_written_value(page, offset, value) {
            return Ok(());
        }
    }
    Err(wrong_value(op, value, expected))
}

#[cold]
#[inline(never)]
fn wrong_value(op: Op, value: u64, expected: u64) -> Error {
    let what = match op {
        Op::Point { page, offset } => format!("the u64 at offset {offset} of page {page}"),
        Op::Scan { page } => format!("the sum of page {page}"),
        Op::Write { page, offset, .. } => {
            format!("the result of writing the u64 at offset {offset} of page {page}")
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workload::Workload;

    /// Runs `op` through a timed driver over `pages` pages of `workload`
    /// until `op` fails or `ops` operations have run.
    fn timed_run(
        workload: Workload,
        pages: u64,
        ops: u64,
        mut op: impl FnMut(u64, Op) -> Result<u64>,
    ) -> (Result<()>, Driver<'static>) {
        let gate: &'static Gate = Box::leak(Box::default());
        let sampler: &'static Sampler = Box::leak(Box::new(Sampler::new(workload, pages)));
        gate.go.store(true, Ordering::SeqCst);
        let mut driver = Driver::new(Mode::Timed { gate }, sampler, 7, 0)
            .unwrap()
            .writer(0, 1, workload.writes());
        let mut done = 0;
        let result = driver.drive(|next| {
            done += 1;
            if done == ops {
                gate.stop.store(true, Ordering::SeqCst);
            }
            op(done, next)
        });
        (result, driver)
    }

    /// What a correct implementation returns for a read-only operation.
    fn right(next: Op) -> u64 {
        expected(next)
    }

    #[test]
    fn wrong_values_are_errors() {
        let point = Op::Point {
            page: 3,
            offset: 16,
        };
        assert!(check(point, data::value_at(3, 16), false).is_ok());
        let err = check(point, data::value_at(4, 16), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WRONG VALUE") && err.contains("page 3"),
            "{err}"
        );
        let scan = Op::Scan { page: 9 };
        assert!(check(scan, data::page_sum(9), false).is_ok());
        assert!(check(scan, data::page_sum(9) + 1, false).is_err());
        // A written value is accepted only where the workload writes, and
        // only at the word it was written to.
        let written = data::written_value(3, 16, 1, 5);
        assert!(check(point, written, true).is_ok());
        assert!(check(point, written, false).is_err());
        assert!(check(
            Op::Point {
                page: 3,
                offset: 24
            },
            written,
            true
        )
        .is_err());
    }

    #[test]
    fn a_wrong_value_anywhere_in_a_batch_fails_the_run_and_is_named() {
        for workload in [Workload::HotPoint, Workload::HotScan, Workload::Zipf] {
            // The 1000th operation (in the middle of some batch, not at its
            // end) reads a wrong value; every other value is right.
            let (result, _) = timed_run(workload, 1000, 1_000_000, |n, next| {
                Ok(right(next) ^ u64::from(n == 1000) << 40)
            });
            let err = result.unwrap_err().to_string();
            assert!(err.contains("WRONG VALUE"), "{workload:?}: {err}");
            // The replay reads the same operation again and gets a right
            // value, so this wrong value was transient.
            assert!(err.contains("transient"), "{workload:?}: {err}");
        }
    }

    #[test]
    fn a_value_that_stays_wrong_is_named_by_its_page() {
        // Page 17 always reads wrong: the replay finds it.
        let (result, _) = timed_run(Workload::HotPoint, 64, 1_000_000, |_, next| {
            let Op::Point { page, .. } = next else {
                panic!("hot-point draws point reads, not {next:?}")
            };
            Ok(right(next) + u64::from(page == 17))
        });
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("WRONG VALUE") && err.contains("of page 17"),
            "{err}"
        );
    }

    #[test]
    fn mixed_checks_every_operation_and_logs_its_writes() {
        let (result, driver) = timed_run(Workload::Mixed, 100, 5000, |_, next| match next {
            Op::Write { value, .. } => Ok(value),
            _ => Ok(right(next)),
        });
        result.unwrap();
        assert!(
            driver.log.len() > 0,
            "mixed writes a tenth of its operations"
        );
        // The first read from operation 300 on returns a wrong value.
        let mut flipped = false;
        let (result, _) = timed_run(Workload::Mixed, 100, 5000, |n, next| match next {
            Op::Write { value, .. } => Ok(value),
            _ if n >= 300 && !flipped => {
                flipped = true;
                Ok(right(next) ^ 1)
            }
            _ => Ok(right(next)),
        });
        assert!(result.unwrap_err().to_string().contains("WRONG VALUE"));
    }

    #[test]
    fn latency_is_sampled_and_operations_counted() {
        let (result, driver) =
            timed_run(Workload::HotPoint, 64, 3_000_000, |_, next| Ok(right(next)));
        result.unwrap();
        assert_eq!(driver.ops % BATCH, 0);
        assert!(driver.ops >= 3_000_000 - BATCH, "ops {}", driver.ops);
        let samples = driver.histogram.len();
        assert!(
            samples >= BATCH,
            "a run of {} operations took {samples} samples",
            driver.ops
        );
        assert!(
            samples < driver.ops / 2,
            "{samples} samples of {} operations",
            driver.ops
        );
    }

    #[test]
    fn timed_batches_are_spaced_by_what_timing_costs() {
        let us = Duration::from_micros;
        // Timing costs ten untimed batches: a timed batch every 1000
        // batches keeps that at 1/100.
        assert_eq!(sample_period(us(1), us(11)), 10 * SAMPLE_COST_SHARE);
        // Timing costs nothing (misses): every other batch is timed.
        assert_eq!(sample_period(us(100), us(100)), 1);
        assert_eq!(sample_period(us(100), us(90)), 1);
        // A preempted timed batch does not stop sampling for long.
        assert_eq!(
            sample_period(us(1), Duration::from_secs(1)),
            MAX_SAMPLE_PERIOD
        );
        assert_eq!(sample_period(Duration::ZERO, us(5)), MAX_SAMPLE_PERIOD);
    }

    #[test]
    fn a_free_run_counts_what_its_chunks_report() {
        let gate: &'static Gate = Box::leak(Box::default());
        let sampler = Sampler::new(Workload::HotPoint, 8);
        gate.go.store(true, Ordering::SeqCst);
        let mut driver = Driver::new(Mode::Timed { gate }, &sampler, 1, 0).unwrap();
        let mut chunks = 0;
        driver
            .free_run(|rng| {
                chunks += 1;
                assert!(sampler.uniform_page(rng) < 8);
                if chunks == 10 {
                    gate.stop.store(true, Ordering::SeqCst);
                }
                5
            })
            .unwrap();
        assert_eq!((chunks, driver.ops), (10, 50));
        assert!(driver.histogram.is_empty(), "a free run times nothing");
        let warm = Mode::Warm {
            next: 0,
            step: 1,
            end: 1,
        };
        let mut warm = Driver::new(warm, &sampler, 1, 0).unwrap();
        assert!(
            warm.free_run(|_| 1).is_err(),
            "only the timed part runs free"
        );
    }
}
