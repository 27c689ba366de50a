//! The `metrics` feature, through a recorder of the test's own: every
//! counter and gauge published equals `stats()`, loads land in the
//! latency histogram, the publisher thread publishes by itself and stops
//! when the pool drops.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use pagepool::{BufferPool, MemoryStorage, PoolConfig};

/// One metric's value: counters and gauges keep the last value, a
/// histogram its samples.
#[derive(Default)]
struct Cell {
    value: AtomicU64,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.value.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.value.fetch_max(value, Ordering::SeqCst);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        GaugeFn::set(
            self,
            f64::from_bits(self.value.load(Ordering::SeqCst)) + value,
        );
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Ordering::SeqCst);
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().push(value);
    }
}

/// Metrics by name and `pool` label.
#[derive(Default)]
struct TestRecorder {
    cells: Mutex<HashMap<(String, String), Arc<Cell>>>,
    described: Mutex<Vec<String>>,
}

impl TestRecorder {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let pool = key
            .labels()
            .find(|label| label.key() == "pool")
            .map(|label| label.value().to_string())
            .unwrap_or_default();
        let mut cells = self.cells.lock().unwrap();
        Arc::clone(cells.entry((key.name().to_string(), pool)).or_default())
    }

    fn get(&self, name: &str, pool: &str) -> Option<Arc<Cell>> {
        let cells = self.cells.lock().unwrap();
        cells.get(&(name.to_string(), pool.to_string())).cloned()
    }

    fn counter(&self, name: &str, pool: &str) -> u64 {
        let cell = self.get(name, pool).unwrap_or_else(|| panic!("no {name}"));
        cell.value.load(Ordering::SeqCst)
    }

    fn gauge(&self, name: &str, pool: &str) -> f64 {
        let cell = self.get(name, pool).unwrap_or_else(|| panic!("no {name}"));
        f64::from_bits(cell.value.load(Ordering::SeqCst))
    }

    fn samples(&self, name: &str, pool: &str) -> Vec<f64> {
        let cell = self.get(name, pool).unwrap_or_else(|| panic!("no {name}"));
        let samples = cell.samples.lock().unwrap().clone();
        samples
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push(key.as_str().to_string());
    }
    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push(key.as_str().to_string());
    }
    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push(key.as_str().to_string());
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

/// The process's recorder (one per process; each test names its pool).
fn recorder() -> &'static TestRecorder {
    static RECORDER: OnceLock<&'static TestRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static TestRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(recorder).expect("the only recorder");
        recorder
    })
}

/// Drops `pool` on another thread and fails if that takes more than 10 s
/// (a drop that joins a metrics thread that never stops must fail the
/// test, not hang it).
fn drop_within_bound<T: Send + 'static>(pool: T) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(pool);
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("dropping a pool stops its metrics thread");
}

#[test]
fn published_counters_and_gauges_are_the_stats_and_loads_are_timed() {
    let recorder = recorder();
    // A long interval: only the explicit publication below counts.
    let config = PoolConfig::new(8)
        .name("explicit")
        .metrics_interval(Duration::from_secs(3600));
    let pool = BufferPool::open(config).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let mut pages = Vec::new();
    for value in 0..12u64 {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        page.store_u64(0, value).unwrap();
        pages.push(page_id);
    }
    for &page_id in &pages {
        pool.optimistic(page_id, |view| view.load_u64(0))
            .unwrap()
            .unwrap();
        pool.optimistic(page_id, |view| view.load_u64(0))
            .unwrap()
            .unwrap();
    }
    pool.publish_metrics();
    let stats = pool.stats();
    assert!(
        stats.misses >= 4 && stats.hits >= 12 && stats.evictions >= 4,
        "{stats:?}"
    );
    let pool_label = "explicit";
    for (name, value) in [
        ("pagepool_hits_total", stats.hits),
        ("pagepool_misses_total", stats.misses),
        ("pagepool_evictions_total", stats.evictions),
        ("pagepool_io_reads_total", stats.io_reads),
        ("pagepool_io_writes_total", stats.io_writes),
        ("pagepool_write_backs_total", stats.write_backs),
        (
            "pagepool_optimistic_retries_total",
            stats.optimistic_retries,
        ),
        (
            "pagepool_optimistic_fallbacks_total",
            stats.optimistic_fallbacks,
        ),
        (
            "pagepool_eviction_write_backs_total",
            stats.eviction_write_backs,
        ),
        (
            "pagepool_writer_write_backs_total",
            stats.writer_write_backs,
        ),
        ("pagepool_read_failures_total", stats.read_failures),
        ("pagepool_restarts_total", stats.restarts),
        ("pagepool_wal_flushes_total", stats.wal_flushes),
        ("pagepool_pages_freed_total", stats.pages_freed),
        ("pagepool_pages_reused_total", stats.pages_reused),
        ("pagepool_reads_started_total", stats.reads_started),
        ("pagepool_write_batches_total", stats.write_batches),
        ("pagepool_writer_passes_total", stats.writer_passes),
        ("pagepool_loads_ended_total", stats.loads_ended),
        ("pagepool_frame_hint_misses_total", stats.frame_hint_misses),
        ("pagepool_frame_hint_stores_total", stats.frame_hint_stores),
        (
            "pagepool_checkpoint_pace_waits_total",
            stats.checkpoint_pace_waits,
        ),
        ("pagepool_io_syncs_total", stats.io_syncs),
    ] {
        assert_eq!(recorder.counter(name, pool_label), value, "{name}");
    }
    // Every counter of `Stats` is published (23 of them), and no other.
    let published: Vec<String> = {
        let cells = recorder.cells.lock().unwrap();
        let mut names: Vec<String> = cells
            .keys()
            .filter(|(name, pool)| pool == pool_label && name.ends_with("_total"))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(published.len(), 23, "{published:?}");
    assert_eq!(
        recorder.gauge("pagepool_frames_resident", pool_label),
        stats.resident_frames as f64
    );
    assert_eq!(
        recorder.gauge("pagepool_frames_free", pool_label),
        stats.free_frames as f64
    );
    assert_eq!(
        recorder.gauge("pagepool_frames_dirty", pool_label),
        stats.dirty_frames as f64
    );
    assert_eq!(recorder.gauge("pagepool_frames_loading", pool_label), 0.0);
    assert_eq!(stats.resident_frames + stats.free_frames, 8);
    // Every load that read a page was timed, once.
    let samples = recorder.samples("pagepool_miss_latency_seconds", pool_label);
    // (The 12 allocations read nothing, and are not timed.)
    assert_eq!(samples.len() as u64, stats.misses - 12, "{stats:?}");
    assert_eq!(stats.loads_ended, stats.misses, "{stats:?}");
    assert!(
        samples.iter().all(|&s| (0.0..10.0).contains(&s)),
        "{samples:?}"
    );
    assert!(recorder
        .described
        .lock()
        .unwrap()
        .iter()
        .any(|name| name == "pagepool_miss_latency_seconds"));
    drop_within_bound(pool);
}

#[test]
fn the_publisher_thread_publishes_by_itself_and_stops_with_the_pool() {
    let recorder = recorder();
    let config = PoolConfig::new(8)
        .name("periodic")
        .metrics_interval(Duration::from_millis(5));
    let pool = BufferPool::open(config).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let (page_id, page) = pool.allocate(file).unwrap();
    drop(page);
    for _ in 0..100 {
        pool.optimistic(page_id, |view| view.load_u64(0))
            .unwrap()
            .unwrap();
    }
    let hits = pool.stats().hits;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let published = recorder
            .get("pagepool_hits_total", "periodic")
            .map(|cell| cell.value.load(Ordering::SeqCst));
        if published == Some(hits) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never published {hits} hits: {published:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Dropping the pool stops and joins the thread, without waiting out an
    // interval (a long one here), and within a bound.
    let config = PoolConfig::new(8)
        .name("stopping")
        .metrics_interval(Duration::from_secs(3600));
    let slow = BufferPool::open(config).unwrap();
    // Both at once: a panic here must not leave one to drop on unwinding.
    drop_within_bound((slow, pool));
}

#[test]
fn started_reads_are_timed_from_submission_to_completion() {
    let recorder = recorder();
    let dir = std::env::temp_dir().join(format!("pagepool-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("started.db");
    let _ = std::fs::remove_file(&path);
    // Buffered: the test must also run where O_DIRECT is refused (tmpfs).
    let config = PoolConfig::new(16)
        .name("started")
        .io_mode(pagepool::IoMode::Buffered)
        .metrics_interval(Duration::from_secs(3600));
    let pool = BufferPool::open(config).unwrap();
    let file = pool.open_file(&path).unwrap();
    let pages: Vec<_> = (0..32).map(|_| pool.allocate(file).unwrap().0).collect();
    pool.flush_all().unwrap();
    let before = recorder.get("pagepool_miss_latency_seconds", "started");
    let before = before.map_or(0, |cell| cell.samples.lock().unwrap().len());
    let stats_before = pool.stats();
    pool.prefetch(&pages[..16]).unwrap();
    for &page_id in &pages[..16] {
        pool.optimistic(page_id, |view| view.load_u64(0))
            .unwrap()
            .unwrap();
    }
    let stats = pool.stats();
    let loads = stats.misses - stats_before.misses;
    assert!(loads > 0, "{stats:?}");
    let samples = recorder.samples("pagepool_miss_latency_seconds", "started");
    assert_eq!((samples.len() - before) as u64, loads, "{stats:?}");
    assert_eq!(stats.loading_frames, 0, "{stats:?}");
    drop_within_bound(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}
