//! The B+-tree workloads: `btree-lookup`, `btree-insert`, `btree-scan`,
//! `btree-mixed`, over the stores of [`stores`].
//!
//! - Tuples: `--tuples N` keys `0..N` as 8-byte big-endian integers, each
//!   with a 120-byte value that starts with the key (little-endian) and a
//!   version; loaded in a fixed pseudo-random order (the same for every
//!   store), the shape of vmcache's `rndread`.
//! - `btree-lookup`: uniform random keys, the value copied out; every
//!   lookup must find its key and the value must start with it.
//! - `btree-scan`: 100 entries from a uniform random key; the keys must be
//!   exactly the next 100 integers, each value its key's.
//! - `btree-mixed`: 90 % lookups as above, 10 % upserts of an existing key
//!   with a new version.
//! - `btree-insert`: new keys in random order into an empty store; after
//!   the run, a sample of what each thread inserted is looked up.
//!
//! Lookup, scan and mixed run on a store loaded once per tuple count and
//! kept in the bench directory (`btree-N.db`, `redb-N.redb`; mixed's
//! upserts keep keys and value sizes, so the file stays a valid input);
//! `btreemap-rwlock` is loaded in memory before each run. Each run opens
//! the store fresh (pool or cache of `--pool-mib`) after dropping the
//! kernel's cache of its file, warms it (pagepool: its file's pages read
//! in order until the pool is full, then, if the tree is all resident, a
//! scan of it, which refreshes the frame hints; the others: a scan until
//! the cache is full or the tree is read), then times `--seconds`. Rows count operations
//! (lookups, scans, inserts), not pages; `pages/op` is the pool's page
//! accesses per operation.

pub mod stores;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::data;
use super::impls::ImplKind;
use super::report::RunResult;
use super::resources::Snapshot;
use super::workload::Workload;
use crate::bail;
use crate::error::{Context, Result};
use stores::{BTreeMapRwLock, PagepoolTree, Redb, Store, Worker};

/// Bytes of a value.
pub const VALUE_BYTES: usize = 120;
/// Entries a `btree-scan` operation reads.
pub const SCAN_LENGTH: u64 = 100;
/// Share of `btree-mixed` operations that upsert, in percent.
pub const MIXED_UPSERT_PERCENT: u64 = 10;
/// One operation in this many is timed for the latency histogram.
const SAMPLE_EVERY: u64 = 128;
/// Loading stride: a prime above any tuple count, so `i * STRIDE mod N`
/// visits every key once.
const STRIDE: u64 = 2_654_435_761;

/// What a B+-tree run needs from the command line.
#[derive(Clone, Copy, Debug)]
pub struct TreeSpec<'a> {
    /// Where the stores' files live.
    pub dir: &'a Path,
    /// Tuples loaded.
    pub tuples: u64,
    /// Pool (or cache) size in 4 KiB frames.
    pub pool_frames: usize,
    /// Timed length of each run.
    pub duration: Duration,
}

fn key(k: u64) -> [u8; 8] {
    k.to_be_bytes()
}

fn value(k: u64, version: u64) -> Vec<u8> {
    let mut value = vec![(k as u8) ^ 0xA5; VALUE_BYTES];
    value[..8].copy_from_slice(&k.to_le_bytes());
    value[8..16].copy_from_slice(&version.to_le_bytes());
    value
}

fn value_is_of(v: &[u8], k: u64) -> bool {
    v.len() == VALUE_BYTES && v[..8] == k.to_le_bytes()
}

/// The `i`-th key of the load order.
fn load_key(i: u64, tuples: u64) -> u64 {
    ((i as u128 * STRIDE as u128) % tuples as u128) as u64
}

/// An invertible mix of `n` (a bijection of u64): keys of `btree-insert`.
fn scatter(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Rng(u64);

impl Rng {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        (t >> 64) as u64 ^ t as u64
    }

    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Frames a loading pool gets: the tree's estimated size and a margin, at
/// most a third of the machine's memory.
fn load_frames(tuples: u64) -> usize {
    let pages = tuples * 136 * 10 / 7 / 4096 + 1024;
    let memory_pages = crate::machine::Machine::detect()
        .memory_bytes
        .map_or(u64::MAX, |bytes| bytes / 3 / 4096);
    pages.min(memory_pages).min(pagepool::MAX_FRAMES as u64) as usize
}

/// Loads keys `0..tuples` through workers of `store`, two threads, in the
/// load order.
fn load_through(store: &dyn Store, tuples: u64) -> Result<()> {
    const LOADERS: u64 = 2;
    std::thread::scope(|s| {
        let loaders: Vec<_> = (0..LOADERS)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    let mut worker = store.worker()?;
                    let mut i = t;
                    while i < tuples {
                        let k = load_key(i, tuples);
                        worker.upsert(&key(k), &value(k, 0))?;
                        i += LOADERS;
                    }
                    Ok(())
                })
            })
            .collect();
        loaders.into_iter().try_for_each(|l| {
            l.join()
                .map_err(|_| crate::error::Error::msg("a loader panicked"))?
        })
    })
}

/// The loaded file of `imp` for `tuples`, built if it is not there yet
/// (a `.done` marker says a build finished).
fn loaded_path(imp: ImplKind, spec: &TreeSpec<'_>) -> Result<PathBuf> {
    let name = match imp {
        ImplKind::PagepoolBtree => format!(
            "btree-v{}-{}.db",
            pagepool_btree::FORMAT_VERSION,
            spec.tuples
        ),
        _ => format!("redb-{}.redb", spec.tuples),
    };
    let path = spec.dir.join(name);
    let done = path.with_extension("done");
    if done.exists() && path.exists() {
        return Ok(path);
    }
    let _ = std::fs::remove_file(&path);
    eprintln!("loading {} tuples into {} ...", spec.tuples, path.display());
    let started = Instant::now();
    match imp {
        ImplKind::PagepoolBtree => {
            let tree = PagepoolTree::open(&path, load_frames(spec.tuples))?;
            load_through(&tree, spec.tuples)?;
            tree.close()?;
        }
        _ => {
            let db = Redb::open(&path, load_frames(spec.tuples) * 4096)?;
            let tuples = spec.tuples;
            db.load(&mut (0..tuples).map(|i| {
                let k = load_key(i, tuples);
                (key(k).to_vec(), value(k, 0))
            }))?;
            db.sync()?;
        }
    }
    std::fs::write(&done, b"").with_context(|| format!("writing {}", done.display()))?;
    eprintln!("  loaded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(path)
}

/// The file a run of `imp` uses: an empty one (removed first) for a fresh
/// store, else the loaded one with the kernel's cache of it dropped.
fn run_path(imp: ImplKind, fresh: bool, spec: &TreeSpec<'_>) -> Result<PathBuf> {
    if fresh {
        let name = match imp {
            ImplKind::PagepoolBtree => "btree-insert.db",
            _ => "redb-insert.redb",
        };
        let path = spec.dir.join(name);
        let _ = std::fs::remove_file(&path);
        return Ok(path);
    }
    let path = loaded_path(imp, spec)?;
    data::drop_cache(&path)?;
    Ok(path)
}

/// A store for one run.
fn open_store(imp: ImplKind, workload: Workload, spec: &TreeSpec<'_>) -> Result<Box<dyn Store>> {
    let fresh = workload == Workload::BtreeInsert;
    let cache_bytes = spec.pool_frames * 4096;
    Ok(match imp {
        ImplKind::PagepoolBtree => Box::new(PagepoolTree::open(
            &run_path(imp, fresh, spec)?,
            spec.pool_frames,
        )?),
        ImplKind::Redb => Box::new(Redb::open(&run_path(imp, fresh, spec)?, cache_bytes)?),
        ImplKind::BtreemapRwlock => {
            let map = BTreeMapRwLock::default();
            if !fresh {
                let tuples = spec.tuples;
                map.load(&mut (0..tuples).map(|i| {
                    let k = load_key(i, tuples);
                    (key(k).to_vec(), value(k, 0))
                }));
            }
            Box::new(map)
        }
        other => bail!("{} does not run B+-tree workloads", other.name()),
    })
}

/// Fills the store's cache so the timed part starts warm: the store's own
/// way if it has one (pagepool reads its file's pages in order, as many
/// as the pool holds), else a read in key order until its cache is full
/// or the tree ends.
fn warm_up(store: &dyn Store, spec: &TreeSpec<'_>) -> Result<()> {
    if store.warm()? {
        return Ok(());
    }
    let mut worker = store.worker()?;
    let budget_entries = (spec.pool_frames as u64 * 4096 / 200).min(spec.tuples);
    let mut next = 0u64;
    while next < budget_entries {
        let mut last = None;
        worker.scan(&key(next), 10_000, &mut |k, _| last = Some(k.to_vec()))?;
        let Some(last) = last else { break };
        next = u64::from_be_bytes(last[..8].try_into().unwrap_or([0xFF; 8])).saturating_add(1);
        if let Some(stats) = store.stats() {
            if stats.misses >= spec.pool_frames as u64 {
                break;
            }
        }
    }
    Ok(())
}

/// One thread's share of a timed run.
struct ThreadRun {
    ops: u64,
    histogram: Histogram<u64>,
}

fn one_op(
    worker: &mut dyn Worker,
    workload: Workload,
    rng: &mut Rng,
    tuples: u64,
    insert_next: &mut u64,
    out: &mut Vec<u8>,
) -> Result<()> {
    match workload {
        Workload::BtreeLookup => lookup(worker, rng.below(tuples), out),
        Workload::BtreeMixed if rng.below(100) < MIXED_UPSERT_PERCENT => {
            let k = rng.below(tuples);
            worker.upsert(&key(k), &value(k, rng.next()))
        }
        Workload::BtreeMixed => lookup(worker, rng.below(tuples), out),
        Workload::BtreeScan => {
            let first = rng.below(tuples);
            let mut expected = first;
            let mut bad = None;
            worker.scan(&key(first), SCAN_LENGTH as usize, &mut |k, v| {
                let got = u64::from_be_bytes(k.try_into().unwrap_or([0xFF; 8]));
                if got != expected || !value_is_of(v, got) {
                    bad.get_or_insert(got);
                }
                expected += 1;
            })?;
            let want = SCAN_LENGTH.min(tuples - first);
            if bad.is_some() || expected - first != want {
                bail!(
                    "a scan from {first} read {} entries, wrong at {bad:?}",
                    expected - first
                );
            }
            Ok(())
        }
        Workload::BtreeInsert => {
            let k = scatter(*insert_next);
            *insert_next += 1;
            worker.upsert(&key(k), &value(k, 0))
        }
        other => bail!("{} is not a B+-tree workload", other.name()),
    }
}

#[inline]
fn lookup(worker: &mut dyn Worker, k: u64, out: &mut Vec<u8>) -> Result<()> {
    if !worker.get(&key(k), out)? || !value_is_of(out, k) {
        bail!("the lookup of key {k} did not find its value");
    }
    Ok(())
}

/// Runs one (store, workload, threads) measurement.
pub fn run_one(
    imp: ImplKind,
    workload: Workload,
    threads: usize,
    spec: &TreeSpec<'_>,
) -> Result<RunResult> {
    super::resources::trim_heap();
    let anon_before = super::resources::rss_anon_bytes();
    let store = open_store(imp, workload, spec)?;
    if workload != Workload::BtreeInsert {
        warm_up(&*store, spec)?;
    }
    let stats_before = store.stats();
    let before = Snapshot::now()?;
    let started = Instant::now();
    let deadline = started + spec.duration;
    let stop = AtomicBool::new(false);
    let failed = AtomicU64::new(0);
    let runs: Vec<Result<ThreadRun>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (store, stop, failed) = (&*store, &stop, &failed);
                s.spawn(move || -> Result<ThreadRun> {
                    let mut worker = store.worker()?;
                    let mut rng = Rng(0x5EED ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let mut histogram = Histogram::new_with_bounds(1, 60_000_000_000, 3)
                        .map_err(|e| crate::error::Error::msg(format!("histogram: {e}")))?;
                    let mut out = Vec::with_capacity(VALUE_BYTES);
                    let mut insert_next = (t as u64) << 40;
                    let mut ops = 0u64;
                    let result = loop {
                        if ops.is_multiple_of(64)
                            && (stop.load(Ordering::Relaxed) || Instant::now() >= deadline)
                        {
                            break Ok(());
                        }
                        let timed = ops.is_multiple_of(SAMPLE_EVERY);
                        let op_started = timed.then(Instant::now);
                        if let Err(e) = one_op(
                            &mut *worker,
                            workload,
                            &mut rng,
                            spec.tuples,
                            &mut insert_next,
                            &mut out,
                        ) {
                            break Err(e);
                        }
                        if let Some(op_started) = op_started {
                            let _ = histogram.record(op_started.elapsed().as_nanos().max(1) as u64);
                        }
                        ops += 1;
                    };
                    if result.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                    }
                    result?;
                    if workload == Workload::BtreeInsert {
                        // The last keys this thread inserted are there.
                        let first = (t as u64) << 40;
                        for n in (first..insert_next).rev().take(1_000) {
                            let k = scatter(n);
                            if !worker.get(&key(k), &mut out)? || !value_is_of(&out, k) {
                                bail!("inserted key {k} is missing");
                            }
                        }
                    }
                    Ok(ThreadRun { ops, histogram })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(crate::error::Error::msg("a worker panicked")))
            })
            .collect()
    });
    let elapsed = started
        .elapsed()
        .min(spec.duration + Duration::from_secs(60));
    let usage = Snapshot::now()?.since(before);
    let mut ops = 0;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| crate::error::Error::msg(format!("histogram: {e}")))?;
    for run in runs {
        let run = run?;
        ops += run.ops;
        let _ = histogram.add(&run.histogram);
    }
    let stats = store.stats().zip(stats_before).map(|(after, before)| {
        (
            after.hits - before.hits,
            after.misses - before.misses,
            after.io_reads - before.io_reads,
            after.io_writes - before.io_writes,
        )
    });
    let anon_mib =
        (super::resources::rss_anon_bytes() as f64 - anon_before as f64) / f64::from(1 << 20);
    drop(store);
    let seconds = elapsed.as_secs_f64();
    let ops_f = ops.max(1) as f64;
    let (hit_ratio, pages_per_op, io_reads, io_writes) = match stats {
        Some((hits, misses, reads, writes)) => (
            Some(hits as f64 / (hits + misses).max(1) as f64),
            Some((hits + misses) as f64 / ops_f),
            Some(reads),
            Some(writes),
        ),
        None => (
            None,
            None,
            Some(usage.read_bytes / 4096),
            Some(usage.write_bytes / 4096),
        ),
    };
    Ok(RunResult {
        imp: imp.name().to_string(),
        workload: workload.name().to_string(),
        threads,
        ops_per_sec: ops as f64 / seconds,
        cpu_seconds: usage.cpu.as_secs_f64(),
        hit_ratio,
        io_reads,
        io_writes,
        p50_ns: histogram.value_at_quantile(0.5),
        p99_ns: histogram.value_at_quantile(0.99),
        ops,
        seconds,
        cpu_ns_per_op: usage.cpu.as_secs_f64() * 1e9 / ops_f,
        cpu_us_per_read: io_reads
            .filter(|&r| r > 0)
            .map(|r| usage.cpu.as_secs_f64() * 1e6 / r as f64),
        major_faults: usage.major_faults,
        others_cpu_seconds: usage.others_cpu().as_secs_f64(),
        pages_per_op,
        anon_mib,
        note: Some(format!(
            "{} tuples of an 8-byte key and a {VALUE_BYTES}-byte value; pool/cache {} MiB",
            spec.tuples,
            spec.pool_frames / 256
        )),
        ..RunResult::default()
    })
}
