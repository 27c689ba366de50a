//! How fast a flush writes: pages per batch, a rate, and a share of the
//! device while the foreground reads.
//!
//! A checkpoint (`flush_until`) competes with the foreground's misses for
//! the device. On a disk where a write costs about what a read does, each
//! write the checkpoint has in flight takes a read's turn, so even one at
//! a time cost `mixed` a fifth to a quarter of its throughput on the
//! project's test machine (BENCHMARKS.md): only pacing brings the cost
//! down. Two limits, both off by default, apply together; before each
//! batch the flush asks whether it may have written the pages it will
//! have written once that batch is done:
//!
//! - **Rate** (`checkpoint_pages_per_sec`): at most that many pages a
//!   second since the flush began. The engine has to know its device.
//! - **Share** (`checkpoint_io_share_pct`; PostgreSQL's bgwriter and
//!   InnoDB's `io_capacity` in spirit, but measured rather than
//!   configured): about that percentage of the device's operations while
//!   the foreground reads. After `r` foreground reads (`Stats::io_reads`,
//!   counted from the share's start; a read is counted when it is issued
//!   or when it ends, depending on the path) it may have written
//!   `SHARE_BURST_PAGES + r × share / (100 − share)` pages: at 20 %, one
//!   page per four reads. The foreground's reads measure how much of the
//!   device it wants; its own writes and syncs are not counted, so under
//!   a write-heavy foreground the checkpoint's part is larger than `pct`.
//!
//! **Idle.** When no foreground read has been counted for `IDLE`, the
//! device is the checkpoint's: it writes on unpaced, and the share's count
//! starts again where it stands, so a foreground that comes back finds no
//! banked writes, only one more burst.
//!
//! **A floor.** A foreground that reads a little but never pauses for
//! `IDLE` (one read every few milliseconds) would hold a share-paced
//! checkpoint to a trickle while leaving the device mostly free: the share
//! never allows fewer than `SHARE_FLOOR_PAGES_PER_SEC` pages a second
//! since its start.
//!
//! **Every wait ends.** The share's wait wakes every `PROBE` and ends as
//! soon as the reads have grown enough, the floor allows the pages, or no
//! read has been counted for `IDLE`; the rate's wait is one sleep of known
//! length. Under loom and shuttle neither waits (their clocks are not the
//! models'). Each sleep counts in `Stats::checkpoint_pace_waits`.

use std::time::{Duration, Instant};

/// Pages a share-paced flush may write before the foreground has read
/// anything (one batch at the default `checkpoint_pages_in_flight`, four
/// times over), so that it starts at once.
const SHARE_BURST_PAGES: usize = 16;
/// With no foreground read completed for this long, the device is idle.
const IDLE: Duration = Duration::from_millis(5);
/// How often a share-paced flush looks at the reads while it waits.
const PROBE: Duration = Duration::from_micros(500);
/// The fewest pages a second a share-paced flush is allowed (4 MiB/s).
const SHARE_FLOOR_PAGES_PER_SEC: u64 = 1_000;

/// How fast a flush writes. See the module docs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    /// Pages per batch (one WAL hook call, this many writes in flight).
    pub(crate) batch_pages: usize,
    /// The most pages a second; 0: no rate limit.
    pages_per_sec: u64,
    /// The most percent of the device's operations while the foreground
    /// reads; 100: no share limit.
    share_pct: u32,
}

impl Pace {
    /// `flush_all`'s and `flush_file`'s: big batches, unpaced.
    pub(crate) fn flush(config: &crate::PoolConfig) -> Pace {
        Pace {
            batch_pages: config.flush_batch_pages,
            pages_per_sec: 0,
            share_pct: 100,
        }
    }

    /// A checkpoint's (`flush_until`): its batches, rate and share.
    pub(crate) fn checkpoint(config: &crate::PoolConfig) -> Pace {
        Pace {
            batch_pages: config.checkpoint_pages_in_flight,
            pages_per_sec: config.checkpoint_pages_per_sec,
            share_pct: config.checkpoint_io_share_pct,
        }
    }

    /// Starts pacing a flush; `reads` gives the foreground's reads so far
    /// (a count that never goes down).
    pub(crate) fn start<R: Fn() -> u64>(self, reads: R) -> Pacer<R> {
        self.start_with_idle(reads, IDLE)
    }

    /// [`start`](Self::start) with another idle time (the tests').
    fn start_with_idle<R: Fn() -> u64>(self, reads: R, idle: Duration) -> Pacer<R> {
        let now = Instant::now();
        let at_start = if self.share_pct < 100 { reads() } else { 0 };
        Pacer {
            pace: self,
            started: now,
            reads,
            share_reads: at_start,
            share_written: 0,
            share_started: now,
            last_reads: at_start,
            last_read_at: now,
            idle,
        }
    }
}

/// Pages a share-paced flush may have written after `reads` foreground
/// reads at `share_pct` percent (below 100) of the device.
fn share_allowance(reads: u64, share_pct: u32) -> usize {
    debug_assert!(share_pct > 0 && share_pct < 100, "share {share_pct} %");
    let share = u64::from(share_pct);
    let earned = reads.saturating_mul(share) / (100 - share);
    SHARE_BURST_PAGES.saturating_add(usize::try_from(earned).unwrap_or(usize::MAX))
}

/// One flush's pacing state.
pub(crate) struct Pacer<R> {
    pace: Pace,
    started: Instant,
    reads: R,
    /// The foreground's reads and the pages written where the share's
    /// count (re)started.
    share_reads: u64,
    share_written: usize,
    share_started: Instant,
    /// The reads when they last changed, and when that was seen.
    last_reads: u64,
    last_read_at: Instant,
    /// No read for this long: the device is idle.
    idle: Duration,
}

impl<R: Fn() -> u64> Pacer<R> {
    /// Waits, unpinned, until the flush may have written `after` pages
    /// (those it will have written once its next batch is done). Returns
    /// how many times it slept.
    pub(crate) fn wait(&mut self, after: usize) -> u64 {
        if cfg!(any(loom, feature = "shuttle")) {
            return 0;
        }
        self.wait_rate(after) + self.wait_share(after)
    }

    fn wait_rate(&self, after: usize) -> u64 {
        if self.pace.pages_per_sec == 0 {
            return 0;
        }
        let due = Duration::from_secs_f64(after as f64 / self.pace.pages_per_sec as f64);
        match due.checked_sub(self.started.elapsed()) {
            Some(left) if !left.is_zero() => {
                std::thread::sleep(left);
                1
            }
            _ => 0,
        }
    }

    fn wait_share(&mut self, after: usize) -> u64 {
        if self.pace.share_pct >= 100 {
            return 0;
        }
        let mut sleeps = 0;
        loop {
            let now = Instant::now();
            let reads = (self.reads)();
            if reads != self.last_reads {
                self.last_reads = reads;
                self.last_read_at = now;
            }
            if after
                <= self
                    .share_written
                    .saturating_add(self.share_allowed(reads, now))
            {
                return sleeps;
            }
            if now.duration_since(self.last_read_at) >= self.idle {
                // The device is idle: write on, and count the share again
                // from here.
                self.share_reads = reads;
                self.share_written = after;
                self.share_started = now;
                return sleeps;
            }
            std::thread::sleep(PROBE);
            sleeps += 1;
        }
    }

    /// Pages the share allows since its start, at `reads` foreground
    /// reads: its part of the reads, or the floor's rate if more.
    fn share_allowed(&self, reads: u64, now: Instant) -> usize {
        let earned = share_allowance(reads.saturating_sub(self.share_reads), self.pace.share_pct);
        let floor =
            now.duration_since(self.share_started).as_secs_f64() * SHARE_FLOOR_PAGES_PER_SEC as f64;
        earned.max(floor as usize)
    }
}

#[cfg(all(test, not(any(loom, feature = "shuttle"))))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A foreground that reads `step` pages every `every` until `stop`.
    fn read_until(reads: &AtomicU64, stop: &AtomicBool, step: u64, every: Duration) {
        while !stop.load(Ordering::Relaxed) {
            reads.fetch_add(step, Ordering::Relaxed);
            std::thread::sleep(every);
        }
    }

    fn shared(pct: u32) -> Pace {
        Pace {
            batch_pages: 4,
            pages_per_sec: 0,
            share_pct: pct,
        }
    }

    #[test]
    fn a_share_allows_its_part_of_the_reads_after_a_burst() {
        assert_eq!(share_allowance(0, 20), SHARE_BURST_PAGES);
        // 20 %: one write per four reads.
        assert_eq!(share_allowance(400, 20), SHARE_BURST_PAGES + 100);
        // 50 %: one write per read.
        assert_eq!(share_allowance(400, 50), SHARE_BURST_PAGES + 400);
        assert_eq!(share_allowance(3, 20), SHARE_BURST_PAGES);
        assert_eq!(share_allowance(u64::MAX, 99), usize::MAX);
    }

    #[test]
    fn an_idle_foreground_leaves_the_device_to_the_flush() {
        let idle = Duration::from_millis(200);
        let started = Instant::now();
        let mut pacer = shared(20).start_with_idle(|| 7, idle);
        // The burst goes at once; past it, the reads do not move, so the
        // flush waits for the device to look idle, once (1,000 pages more
        // would take the floor a second).
        assert_eq!(pacer.wait(SHARE_BURST_PAGES), 0);
        assert!(pacer.wait(SHARE_BURST_PAGES + 1_000) > 0);
        let first = started.elapsed();
        assert!(first >= idle, "waited {first:?}");
        // Still idle: no more waiting, however far the flush goes (ten
        // more waits of the idle time would take two seconds).
        let still = Instant::now();
        for after in (2..=11).map(|batch| SHARE_BURST_PAGES + batch * 1_000) {
            assert_eq!(pacer.wait(after), 0, "{after} pages");
        }
        assert!(
            still.elapsed() < idle,
            "waited {:?} while idle",
            still.elapsed()
        );
    }

    #[test]
    fn a_busy_foreground_gets_its_share_and_the_flush_keeps_going() {
        let reads = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        // (pages the flush may write after the wait, reads by then)
        let seen = std::thread::scope(|scope| {
            // A foreground that reads steadily: never idle for long.
            scope.spawn(|| read_until(&reads, &stop, 4, Duration::from_micros(200)));
            // An idle time no scheduling stall reaches: the flush must
            // keep pace with the reads, never run ahead of them.
            let mut pacer = shared(20)
                .start_with_idle(|| reads.load(Ordering::Relaxed), Duration::from_secs(30));
            let started = Instant::now();
            let mut seen = Vec::new();
            for after in (4..=SHARE_BURST_PAGES + 64).step_by(4) {
                pacer.wait(after);
                seen.push((after, reads.load(Ordering::Relaxed), started.elapsed()));
            }
            stop.store(true, Ordering::Relaxed);
            seen
        });
        for (after, earned, elapsed) in seen {
            let floor = (elapsed.as_secs_f64() * SHARE_FLOOR_PAGES_PER_SEC as f64) as usize + 1;
            assert!(
                after <= share_allowance(earned, 20).max(floor),
                "{after} pages after {earned} reads in {elapsed:?}"
            );
        }
    }

    #[test]
    fn a_light_foreground_still_lets_the_flush_go_at_the_floor() {
        let reads = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let pages = SHARE_BURST_PAGES + 200;
        let took = std::thread::scope(|scope| {
            // One read a millisecond: never idle, and its share alone
            // would allow 250 pages a second.
            scope.spawn(|| read_until(&reads, &stop, 1, Duration::from_millis(1)));
            let mut pacer = shared(20)
                .start_with_idle(|| reads.load(Ordering::Relaxed), Duration::from_secs(30));
            let started = Instant::now();
            for after in (4..=pages).step_by(4) {
                pacer.wait(after);
            }
            stop.store(true, Ordering::Relaxed);
            started.elapsed()
        });
        // 200 pages past the burst: 0.2 s at the floor, 0.8 s by the
        // share alone. Paced (most of the floor's time), and by the floor.
        assert!(
            took >= Duration::from_millis(150),
            "{pages} pages in {took:?}"
        );
        assert!(
            took < Duration::from_millis(600),
            "{pages} pages in {took:?}: no floor"
        );
    }

    #[test]
    fn a_foreground_that_comes_back_gets_its_share_at_once() {
        let reads = AtomicU64::new(0);
        // Long enough that no scheduling stall of the reader below looks
        // like an idle device.
        let idle = Duration::from_millis(250);
        let mut pacer = shared(20).start_with_idle(|| reads.load(Ordering::Relaxed), idle);
        // Idle: once the device looks idle the flush writes 2,000 pages
        // unpaced (the floor alone would take two seconds).
        assert!(pacer.wait(1_000) > 0);
        assert_eq!(pacer.wait(2_000), 0);
        // The foreground reads again: the share counts from 2,000 pages,
        // not from the start: 20 pages past the burst wait for 80 reads
        // (or 36 ms of the floor).
        reads.fetch_add(40, Ordering::Relaxed);
        let started = Instant::now();
        let read = std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(1));
                    reads.fetch_add(40, Ordering::Relaxed);
                }
            });
            pacer.wait(2_000 + SHARE_BURST_PAGES + 20);
            reads.load(Ordering::Relaxed)
        });
        assert!(
            read >= 80,
            "went on after {read} reads, {:?}: the idle spell was banked",
            started.elapsed()
        );
    }
}
