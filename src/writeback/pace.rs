//! How fast a flush writes: pages per batch, a rate, and a share of the
//! device while the foreground reads.
//!
//! A checkpoint (`flush_until`) competes with the foreground's misses for
//! the device. On a disk where a write costs about what a read does, each
//! write the checkpoint has in flight takes a read's turn, so even one at
//! a time cost `mixed` a fifth to a quarter of its throughput on the
//! project's test machine (BENCHMARKS.md): only pacing brings the cost
//! down. Two limits, both off by default, apply together, checked before
//! each batch:
//!
//! - **Rate** (`checkpoint_pages_per_sec`): at most that many pages a
//!   second since the flush began. The engine has to know its device.
//! - **Share** (`checkpoint_io_share_pct`, PostgreSQL's bgwriter and
//!   InnoDB's `io_capacity` in spirit, but measured rather than
//!   configured): the checkpoint takes at most that percentage of the
//!   device's operations while the foreground reads. After `r` foreground
//!   reads (`Stats::io_reads`, counted from the share's start) it may have
//!   written `SHARE_BURST_PAGES + r × share / (100 − share)` pages: at
//!   20 %, one page per four reads. The foreground's reads are the
//!   measure of how much of the device it wants, so the checkpoint keeps
//!   up with a busy foreground's need and never takes more than its share.
//!
//! **Idle.** When no foreground read has completed for `IDLE`, the device
//! is the checkpoint's: it writes on unpaced, and the share's count
//! starts again where it stands, so a foreground that comes back gets its
//! share at once rather than after a burst of banked writes.
//!
//! **Every wait ends.** The share's wait wakes every `PROBE` and ends as
//! soon as the reads have grown enough, or have not grown for `IDLE`; the
//! rate's wait is one sleep of known length. Under loom and shuttle
//! neither waits (their clocks are not the models').

use std::time::{Duration, Instant};

/// Pages a share-paced flush may write before the foreground has read
/// anything (one batch at the default `checkpoint_pages_in_flight`, four
/// times over), so that it starts at once.
pub(crate) const SHARE_BURST_PAGES: usize = 16;
/// With no foreground read completed for this long, the device is idle.
pub(crate) const IDLE: Duration = Duration::from_millis(5);
/// How often a share-paced flush looks at the reads while it waits.
const PROBE: Duration = Duration::from_micros(500);

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
            last_reads: at_start,
            last_read_at: now,
            idle,
        }
    }
}

/// Pages a share-paced flush may have written after `reads` foreground
/// reads at `share_pct` percent (below 100) of the device.
pub(crate) fn share_allowance(reads: u64, share_pct: u32) -> usize {
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
    /// The reads when they last changed, and when that was seen.
    last_reads: u64,
    last_read_at: Instant,
    /// No read for this long: the device is idle.
    idle: Duration,
}

impl<R: Fn() -> u64> Pacer<R> {
    /// Waits, unpinned, until the flush may go on past `written` pages.
    pub(crate) fn wait(&mut self, written: usize) {
        if cfg!(any(loom, feature = "shuttle")) {
            return;
        }
        self.wait_rate(written);
        self.wait_share(written);
    }

    fn wait_rate(&self, written: usize) {
        if self.pace.pages_per_sec == 0 {
            return;
        }
        let due = Duration::from_secs_f64(written as f64 / self.pace.pages_per_sec as f64);
        if let Some(left) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(left);
        }
    }

    fn wait_share(&mut self, written: usize) {
        if self.pace.share_pct >= 100 {
            return;
        }
        loop {
            let now = Instant::now();
            let reads = (self.reads)();
            if reads != self.last_reads {
                self.last_reads = reads;
                self.last_read_at = now;
            }
            let earned = reads.saturating_sub(self.share_reads);
            let allowed = self
                .share_written
                .saturating_add(share_allowance(earned, self.pace.share_pct));
            if written <= allowed {
                return;
            }
            if now.duration_since(self.last_read_at) >= self.idle {
                // The device is idle: write on, and count the share again
                // from here.
                self.share_reads = reads;
                self.share_written = written;
                return;
            }
            std::thread::sleep(PROBE);
        }
    }
}

#[cfg(all(test, not(any(loom, feature = "shuttle"))))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
        let mut pacer = shared(20).start_with_idle(|| 7, idle);
        let started = Instant::now();
        // The burst goes at once; past it, the reads do not move, so the
        // flush waits for the device to look idle, once.
        pacer.wait(SHARE_BURST_PAGES);
        pacer.wait(SHARE_BURST_PAGES + 4);
        let first = started.elapsed();
        assert!(first >= idle, "waited {first:?}");
        // Still idle: no more waiting, however far the flush goes (ten
        // more waits of the idle time would take two seconds).
        let still = Instant::now();
        for written in (1..=10).map(|batch| SHARE_BURST_PAGES + 4 + batch * 1_000) {
            pacer.wait(written);
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
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // A foreground that reads steadily: never idle for IDLE.
                while !stop.load(Ordering::Relaxed) {
                    reads.fetch_add(4, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
            // An idle time no scheduling stall reaches: the flush must
            // keep pace with the reads, never run ahead of them.
            let mut pacer = shared(20)
                .start_with_idle(|| reads.load(Ordering::Relaxed), Duration::from_secs(30));
            for written in (0..=SHARE_BURST_PAGES + 64).step_by(4) {
                pacer.wait(written);
                // Never ahead of the share of what has been read so far.
                let earned = reads.load(Ordering::Relaxed);
                assert!(
                    written <= share_allowance(earned, 20),
                    "{written} pages after {earned} reads"
                );
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    #[test]
    fn a_foreground_that_comes_back_gets_its_share_at_once() {
        let reads = AtomicU64::new(0);
        // Long enough that no scheduling stall of the reader below looks
        // like an idle device.
        let idle = Duration::from_millis(250);
        let mut pacer = shared(20).start_with_idle(|| reads.load(Ordering::Relaxed), idle);
        // Idle: the flush writes 1,000 pages unpaced.
        pacer.wait(SHARE_BURST_PAGES + 4);
        pacer.wait(1_000);
        // The foreground reads again: the share counts from 1,000 pages,
        // not from the start: 20 pages past the burst wait for 80 reads.
        reads.fetch_add(40, Ordering::Relaxed);
        let started = Instant::now();
        let read = std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(1));
                    reads.fetch_add(40, Ordering::Relaxed);
                }
            });
            pacer.wait(1_000 + SHARE_BURST_PAGES + 20);
            reads.load(Ordering::Relaxed)
        });
        assert!(
            read >= 80,
            "went on after {read} reads, {:?}: the idle spell was banked",
            started.elapsed()
        );
    }
}
