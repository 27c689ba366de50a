//! Reporting through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`), so that the exporter a service already uses
//! (Prometheus, OpenTelemetry, StatsD) shows the pool.
//!
//! # What is reported, and when
//!
//! | metric                                  | kind      | from                                  |
//! |-----------------------------------------|-----------|---------------------------------------|
//! | `pagepool_<counter>_total`              | counter   | each counter of [`Stats`], published  |
//! | `pagepool_frames_{resident,dirty,free,loading}` | gauge | the gauges of [`Stats`], published  |
//! | `pagepool_miss_latency_seconds`         | histogram | every load that reads, as it ends     |
//!
//! Every metric has the label `pool`, the pool's
//! [`PoolConfig::name`](crate::PoolConfig::name).
//!
//! The hit path records nothing: hits are counted in each thread's own
//! counters as always (`stats.rs`), and a thread of the pool's,
//! `pagepool-metrics`, publishes a [`Stats`] snapshot every
//! [`PoolConfig::metrics_interval`](crate::PoolConfig::metrics_interval)
//! (counters as absolute values, gauges set).
//! [`BufferPool::publish_metrics`](crate::BufferPool::publish_metrics)
//! publishes one at once. A load's latency is recorded on the thread that
//! ends the load, into a histogram handle registered at open: for a
//! synchronous load, its read and check; for a read started without
//! waiting (`prefetch`, `read_many`, the async API), from its submission
//! to the page checked or the failure. A new page (`allocate`) reads
//! nothing and records nothing. A load costs two clock reads more.
//!
//! Install the recorder before opening the pool: the histogram handle is
//! registered at open, and a handle taken before any recorder is
//! installed records nothing. (Counters and gauges are registered again at
//! each publication, so they find a recorder installed later.)
//!
//! Without the feature every type here is empty and every call does
//! nothing.

#[cfg(all(feature = "metrics", not(any(loom, feature = "shuttle"))))]
mod enabled {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use metrics::{Histogram, Label};

    use crate::frames::FrameId;
    use crate::stats::Stats;

    /// A load's start, per frame, and the latency histogram.
    ///
    /// Rule: `started_ns[f]` is written by the thread that claimed frame
    /// `f` for a load, before the read is submitted, and read by the
    /// thread that ends that load. The submission (a lock or the ring's
    /// release) orders the two; a stale value only skews one sample.
    pub(crate) struct PoolMetrics {
        labels: Vec<Label>,
        base: Instant,
        started_ns: Box<[AtomicU64]>,
        miss_latency: Histogram,
    }

    impl PoolMetrics {
        pub(crate) fn new(frame_count: usize, name: &str) -> PoolMetrics {
            let labels = vec![Label::new("pool", name.to_string())];
            describe();
            PoolMetrics {
                miss_latency: metrics::histogram!("pagepool_miss_latency_seconds", labels.iter()),
                labels,
                base: Instant::now(),
                started_ns: (0..frame_count).map(|_| AtomicU64::new(0)).collect(),
            }
        }

        /// Notes that a load into `frame_id` starts now.
        #[inline]
        pub(crate) fn load_started(&self, frame_id: FrameId) {
            let now = self.base.elapsed().as_nanos() as u64;
            self.started_ns[frame_id].store(now, Ordering::Relaxed);
        }

        /// Records the latency of the load into `frame_id` that ends now.
        #[inline]
        pub(crate) fn load_ended(&self, frame_id: FrameId) {
            let started = self.started_ns[frame_id].load(Ordering::Relaxed);
            let now = self.base.elapsed().as_nanos() as u64;
            self.miss_latency
                .record(now.saturating_sub(started) as f64 * 1e-9);
        }

        /// Runs `load` (a synchronous read), recording its latency.
        #[inline]
        pub(crate) fn time<T>(&self, load: impl FnOnce() -> T) -> T {
            let started = Instant::now();
            let result = load();
            self.miss_latency.record(started.elapsed().as_secs_f64());
            result
        }

        /// Publishes `stats`: counters as absolute values, gauges set.
        pub(crate) fn publish(&self, stats: &Stats) {
            for (name, value, _) in counters(stats) {
                metrics::counter!(name, self.labels.iter()).absolute(value);
            }
            for (name, value, _) in gauges(stats) {
                metrics::gauge!(name, self.labels.iter()).set(value as f64);
            }
        }
    }

    type Row = (&'static str, u64, &'static str);

    fn counters(s: &Stats) -> [Row; 23] {
        [
            (
                "pagepool_hits_total",
                s.hits,
                "accesses that found their page resident",
            ),
            (
                "pagepool_misses_total",
                s.misses,
                "accesses that loaded their page",
            ),
            (
                "pagepool_evictions_total",
                s.evictions,
                "pages evicted to make room",
            ),
            (
                "pagepool_write_backs_total",
                s.write_backs,
                "dirty pages written back",
            ),
            (
                "pagepool_eviction_write_backs_total",
                s.eviction_write_backs,
                "write-backs by faulting threads",
            ),
            (
                "pagepool_writer_write_backs_total",
                s.writer_write_backs,
                "write-backs by the background writer",
            ),
            ("pagepool_io_reads_total", s.io_reads, "page reads issued"),
            (
                "pagepool_io_writes_total",
                s.io_writes,
                "page writes issued",
            ),
            ("pagepool_io_syncs_total", s.io_syncs, "syncs issued"),
            (
                "pagepool_read_failures_total",
                s.read_failures,
                "started reads that failed",
            ),
            (
                "pagepool_optimistic_retries_total",
                s.optimistic_retries,
                "optimistic reads run again",
            ),
            (
                "pagepool_optimistic_fallbacks_total",
                s.optimistic_fallbacks,
                "optimistic reads that took the latch",
            ),
            (
                "pagepool_restarts_total",
                s.restarts,
                "optimistic guards that restarted",
            ),
            (
                "pagepool_wal_flushes_total",
                s.wal_flushes,
                "calls of the WAL hook",
            ),
            (
                "pagepool_pages_freed_total",
                s.pages_freed,
                "pages freed to a free list",
            ),
            (
                "pagepool_pages_reused_total",
                s.pages_reused,
                "pages allocated from a free list",
            ),
            (
                "pagepool_reads_started_total",
                s.reads_started,
                "reads started without waiting",
            ),
            (
                "pagepool_write_batches_total",
                s.write_batches,
                "batches of write-backs (one WAL hook call each)",
            ),
            (
                "pagepool_writer_passes_total",
                s.writer_passes,
                "passes of the background writer",
            ),
            (
                "pagepool_loads_ended_total",
                s.loads_ended,
                "page loads that ended (read in, failed, or new)",
            ),
            (
                "pagepool_frame_hint_misses_total",
                s.frame_hint_misses,
                "guards started from a frame hint that named another frame",
            ),
            (
                "pagepool_frame_hint_stores_total",
                s.frame_hint_stores,
                "frame hints stored (unlogged)",
            ),
            (
                "pagepool_checkpoint_pace_waits_total",
                s.checkpoint_pace_waits,
                "sleeps of checkpoints held back by their pace",
            ),
        ]
    }

    fn gauges(s: &Stats) -> [Row; 4] {
        [
            (
                "pagepool_frames_resident",
                s.resident_frames,
                "frames holding a page",
            ),
            (
                "pagepool_frames_dirty",
                s.dirty_frames,
                "frames not yet written back",
            ),
            (
                "pagepool_frames_free",
                s.free_frames,
                "frames holding no page",
            ),
            (
                "pagepool_frames_loading",
                s.loading_frames,
                "frames being read in",
            ),
        ]
    }

    fn describe() {
        let stats = Stats::default();
        for (name, _, help) in counters(&stats) {
            metrics::describe_counter!(name, metrics::Unit::Count, help);
        }
        for (name, _, help) in gauges(&stats) {
            metrics::describe_gauge!(name, metrics::Unit::Count, help);
        }
        metrics::describe_histogram!(
            "pagepool_miss_latency_seconds",
            metrics::Unit::Seconds,
            "a load that reads: the read and the check of the page"
        );
    }

    /// The `pagepool-metrics` thread: publishes a snapshot every interval
    /// until dropped (which stops and joins it; the wait is a condition
    /// variable, so the drop never waits out an interval).
    pub(crate) struct MetricsPublisher {
        stop: Arc<(Mutex<bool>, Condvar)>,
        thread: Option<JoinHandle<()>>,
    }

    impl MetricsPublisher {
        /// Starts the thread; `snapshot` gives the stats to publish through
        /// `metrics`.
        pub(crate) fn start(
            interval: Duration,
            metrics: Arc<PoolMetrics>,
            snapshot: impl Fn() -> Stats + Send + 'static,
        ) -> std::io::Result<MetricsPublisher> {
            let stop = Arc::new((Mutex::new(false), Condvar::new()));
            let signal = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name("pagepool-metrics".into())
                .spawn(move || {
                    let (stopped, wake) = &*signal;
                    let mut stopped = stopped.lock().unwrap_or_else(|p| p.into_inner());
                    while !*stopped {
                        drop(stopped);
                        metrics.publish(&snapshot());
                        stopped = signal.0.lock().unwrap_or_else(|p| p.into_inner());
                        if !*stopped {
                            stopped = wake
                                .wait_timeout(stopped, interval)
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                    }
                })?;
            Ok(MetricsPublisher {
                stop,
                thread: Some(thread),
            })
        }
    }

    impl Drop for MetricsPublisher {
        fn drop(&mut self) {
            let (stopped, wake) = &*self.stop;
            *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
            wake.notify_all();
            if let Some(thread) = self.thread.take() {
                if thread.join().is_err() {
                    log::error!("pagepool: the metrics publisher panicked");
                }
            }
        }
    }
}

#[cfg(not(all(feature = "metrics", not(any(loom, feature = "shuttle")))))]
mod enabled {
    use crate::frames::FrameId;
    use crate::stats::Stats;

    /// Without the `metrics` feature: records nothing.
    pub(crate) struct PoolMetrics;

    impl PoolMetrics {
        pub(crate) fn new(_frame_count: usize, _name: &str) -> PoolMetrics {
            PoolMetrics
        }

        #[inline(always)]
        pub(crate) fn load_started(&self, _frame_id: FrameId) {}

        #[inline(always)]
        pub(crate) fn load_ended(&self, _frame_id: FrameId) {}

        #[inline(always)]
        pub(crate) fn time<T>(&self, load: impl FnOnce() -> T) -> T {
            load()
        }

        #[allow(dead_code)]
        pub(crate) fn publish(&self, _stats: &Stats) {}
    }
}

pub(crate) use enabled::*;
