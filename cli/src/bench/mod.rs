//! `pagepool bench`: throughput and latency of page reads, for each
//! combination of implementation, workload and thread count.
//!
//! The data file lives in `--dir` (default `target/pagepool-bench` under
//! the current directory: `/tmp` and `/dev/shm` may be tmpfs, which can
//! refuse `O_DIRECT`). It is named after its size, written once through
//! the pool, and reused by later runs; `mixed` writes to a copy per
//! implementation, also kept. Each measurement opens a fresh instance (a
//! fresh pool) after dropping the kernel's cache of its file; see
//! [`runner`] for what one measurement does.
//!
//! At the end: the full table, a side-by-side summary, the target
//! ratios that the rows allow, and with `--json`, `--plot` the report and
//! the chart. `--fio` adds fio's rows next to `uniform-miss`.

pub mod cgroup;
pub mod data;
pub mod driver;
pub mod fio;
pub mod impls;
pub mod plot;
pub mod report;
pub mod resources;
pub mod runner;
pub mod tree;
pub mod workload;
pub mod write_log;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pagepool::{PoolConfig, MAX_FRAMES, MAX_PAGES_PER_FILE, PAGE_SIZE};

use crate::bail;
use crate::error::{Context, Result};
use crate::machine::Machine;
use impls::{ImplKind, Setup};
use report::RunResult;
use runner::{RunOutcome, RunSpec};
use workload::Workload;

/// Options of `pagepool bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated.
    #[arg(long = "workload", value_enum, value_delimiter = ',',
          default_values_t = [Workload::HotPoint, Workload::UniformMiss])]
    pub workloads: Vec<Workload>,

    /// Implementations to run, comma-separated.
    #[arg(long = "impl", value_enum, value_delimiter = ',',
          default_values_t = [ImplKind::Pagepool])]
    pub impls: Vec<ImplKind>,

    /// Worker thread counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    pub threads: Vec<usize>,

    /// Length of each timed run, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,

    /// Pool size in MiB (256 frames of 4 KiB per MiB).
    #[arg(long, default_value_t = 64)]
    pub pool_mib: usize,

    /// Size of the file the miss workloads range over, in MiB (default:
    /// 4× the pool for zipf, 8× for uniform-miss). The hot workloads always
    /// use as many pages as the pool holds.
    #[arg(long)]
    pub file_mib: Option<u64>,

    /// Directory for the data file [default: ./target/pagepool-bench].
    /// Must be on a file system that supports O_DIRECT.
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Also draw ops/s against threads, one chart per workload, to this
    /// file (PNG, or SVG if it ends in .svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// Also run fio (if installed) on the uniform-miss pages at each thread
    /// count: psync with one job per thread, and io_uring at queue depth 32
    /// (rows fio-psync and fio-uring).
    #[arg(long)]
    pub fio: bool,

    /// pagepool's I/O engines to run the pagepool rows on, side by side
    /// (comma-separated: auto, sync, worker, uring). With more than one,
    /// each pagepool row's name says its engine, as `pagepool-batch[uring]`.
    #[arg(long = "engine", value_delimiter = ',', default_values_t = [EngineArg::Auto])]
    pub engines: Vec<EngineArg>,

    /// Whether pagepool's pools run the background writer, side by side
    /// (comma-separated: off, on). With both, each pagepool row's name says
    /// which, as `pagepool[writer]` and `pagepool[no-writer]`.
    #[arg(long = "writer", value_delimiter = ',', default_values_t = [WriterArg::Off])]
    pub writers: Vec<WriterArg>,

    /// Run a fuzzy checkpoint (`flush_until` of every change so far) this
    /// often during the writing workloads' runs, in ms (0: none), and
    /// report the throughput while one runs against while none does.
    #[arg(long, default_value_t = 0)]
    pub checkpoint_ms: u64,

    /// Pace those checkpoints to at most this many pages a second (0:
    /// unpaced; `PoolConfig::checkpoint_pages_per_sec`).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_pages_per_sec: u64,

    /// Pages those checkpoints write at once (0: the pool's default;
    /// `PoolConfig::checkpoint_pages_in_flight`).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_pages_in_flight: usize,

    /// Pace those checkpoints by the foreground's reads: at most this
    /// percent of the device's operations while they go on (100: no such
    /// limit, the pool's default; `PoolConfig::checkpoint_io_share_pct`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub checkpoint_io_share_pct: u32,

    /// Pages per `read_many` batch (pagepool-batch).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,

    /// Pages a scan keeps in flight ahead of its cursor (pagepool-batch on
    /// scan-miss; the pool clamps it to a quarter of its frames). The
    /// default, 16 MiB, is about what the kernel keeps ahead of a buffered
    /// sequential reader on a disk with an 8 MiB `read_ahead_kb`.
    #[arg(long, default_value_t = 4096)]
    pub read_ahead: usize,

    /// Async tasks in all, spread over the threads (pagepool-async).
    #[arg(long, default_value_t = 64)]
    pub tasks: usize,

    /// Tuples the B+-tree workloads load (keys 0..N, 120-byte values).
    #[arg(long, default_value_t = 1_000_000)]
    pub tuples: u64,

    /// Run each (workload, threads, implementation) this many times and
    /// report the fastest run (a busy neighbour only ever slows a run
    /// down); every run's ops/s is kept in the JSON.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// A `--writer` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WriterArg {
    /// No background writer: faulting threads write dirty victims back.
    Off,
    /// The pool's background writer keeps the frames ahead of the clock
    /// clean.
    On,
}

impl std::fmt::Display for WriterArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriterArg::Off => "off",
            WriterArg::On => "on",
        })
    }
}

/// A `--engine` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// What the pool chooses (io_uring where the kernel allows it).
    Auto,
    /// Reads on the calling thread.
    Sync,
    /// Reads on the pool's worker thread.
    Worker,
    /// io_uring.
    Uring,
}

impl EngineArg {
    fn engine(self) -> pagepool::IoEngine {
        match self {
            EngineArg::Auto => pagepool::IoEngine::Auto,
            EngineArg::Sync => pagepool::IoEngine::Sync,
            EngineArg::Worker => pagepool::IoEngine::Worker,
            EngineArg::Uring => pagepool::IoEngine::Uring,
        }
    }

    fn name(self) -> &'static str {
        match self {
            EngineArg::Auto => "auto",
            EngineArg::Sync => "sync",
            EngineArg::Worker => "worker",
            EngineArg::Uring => "uring",
        }
    }
}

impl std::fmt::Display for EngineArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl BenchArgs {
    fn validate(&self) -> Result<()> {
        if self.engines.is_empty() || self.writers.is_empty() {
            bail!("--engine and --writer need at least one value");
        }
        if self.batch == 0 || self.batch > 4096 {
            bail!("--batch {}: expected 1 to 4096", self.batch);
        }
        if self.read_ahead == 0 || self.read_ahead > 1 << 20 {
            bail!("--read-ahead {}: expected 1 to 2^20 pages", self.read_ahead);
        }
        if self.tasks == 0 || self.tasks > 1 << 20 {
            bail!("--tasks {}: expected 1 to 2^20", self.tasks);
        }
        if self.workloads.is_empty() || self.impls.is_empty() || self.threads.is_empty() {
            bail!("--workload, --impl and --threads each need at least one value");
        }
        if self.repeat == 0 || self.repeat > 100 {
            bail!("--repeat {}: expected 1 to 100", self.repeat);
        }
        if let Some(&zero) = self.threads.iter().find(|&&t| t == 0) {
            bail!("--threads {zero}: a run needs at least one thread");
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 86_400.0) {
            bail!(
                "--seconds {}: expected a positive number of seconds",
                self.seconds
            );
        }
        let max_pool_mib = MAX_FRAMES / 256;
        if self.pool_mib == 0 || self.pool_mib > max_pool_mib {
            bail!(
                "--pool-mib {}: expected 1 to {max_pool_mib} MiB",
                self.pool_mib
            );
        }
        if self.tuples == 0 || self.tuples > 1 << 40 {
            bail!("--tuples {}: expected 1 to 2^40", self.tuples);
        }
        let max_file_mib = MAX_PAGES_PER_FILE / 256;
        if let Some(mib) = self.file_mib.filter(|&mib| mib == 0 || mib > max_file_mib) {
            bail!("--file-mib {mib}: expected 1 to {max_file_mib} MiB");
        }
        Ok(())
    }
}

/// Options of `pagepool report`.
#[derive(Args, Clone, Debug)]
pub struct ReportArgs {
    /// A report written by `pagepool bench --json`.
    pub input: PathBuf,

    /// Draw its plot to this file (PNG, or SVG if it ends in .svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// Write it again to this file, with the targets recomputed.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `pagepool report`: prints a saved report's table, summary and targets
/// (recomputed from its rows), and optionally redraws or rewrites it.
pub fn report_again(args: &ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", args.input.display()))?;
    let results: Vec<RunResult> = serde_json::from_value(report["results"].clone())
        .with_context(|| format!("reading the results of {}", args.input.display()))?;
    let command = report["command"].as_str().unwrap_or("").to_string();
    if !command.is_empty() {
        println!("command: {command}");
    }
    print!("{}", report::table(&results));
    println!();
    print!("{}", report::summary(&results));
    let targets = report::targets(&results);
    if !targets.is_empty() {
        println!("targets (ratios from this report):");
        print!("{}", report::targets_table(&targets));
    }
    if let Some(json) = &args.json {
        report::write_json(json, &report["machine"], &results, &command, &targets)?;
        println!("wrote {}", json.display());
    }
    if let Some(plot_path) = &args.plot {
        plot::draw(
            plot_path,
            &plot_title(&command, &report["machine"]),
            &results,
        )?;
        println!("wrote {}", plot_path.display());
    }
    Ok(())
}

/// The plot's title: the command's settings and the machine.
fn plot_title(command: &str, machine: &serde_json::Value) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let mut settings: Vec<String> = Vec::new();
    for w in words.windows(2) {
        let setting = format!("{} {}", w[0].trim_start_matches("--"), w[1]);
        if matches!(w[0], "--pool-mib" | "--seconds" | "--repeat") && !settings.contains(&setting) {
            settings.push(setting);
        }
    }
    format!(
        "pagepool bench ({}): {}, {} CPUs",
        if settings.is_empty() {
            "defaults".to_string()
        } else {
            settings.join(", ")
        },
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["logical_cpus"].as_u64().unwrap_or(0)
    )
}

/// Runs the benchmark and prints (and optionally writes) its report.
pub fn run(args: &BenchArgs) -> Result<()> {
    args.validate()?;
    let machine = Machine::detect();
    let pool_frames = PoolConfig::with_mib(args.pool_mib).frames;
    let frames = pool_frames as u64;
    let file_pages = args
        .file_mib
        .map(|mib| mib * ((1 << 20) / PAGE_SIZE as u64));
    let data_pages = args
        .workloads
        .iter()
        .filter(|w| !w.is_tree())
        .map(|w| w.pages(frames, file_pages))
        .max()
        .unwrap_or(frames);

    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir()
            .context("finding the current directory")?
            .join("target")
            .join("pagepool-bench"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(memory) = machine.memory_bytes {
        let pool_bytes = (pool_frames * PAGE_SIZE) as u64;
        if pool_bytes > memory / 10 * 9 {
            bail!(
                "--pool-mib {}: the pool would not fit in this machine's {} MiB of memory",
                args.pool_mib,
                memory >> 20
            );
        }
    }
    let path = data::path_for(&dir, data_pages);
    if args.workloads.iter().any(|w| !w.is_tree()) {
        data::ensure(&path, data_pages, 4)?;
    }

    let command: Vec<String> = std::env::args().collect();
    println!("command: {}", command.join(" "));
    println!("machine: {machine}");
    println!(
        "pool {} MiB ({pool_frames} frames), {} s per run, data file {} ({} MiB)",
        args.pool_mib,
        args.seconds,
        path.display(),
        (data_pages * PAGE_SIZE as u64) >> 20
    );

    let mut impls = args.impls.clone();
    if impls.iter().any(|i| i.memory_capped()) {
        if let Err(error) = cgroup::check_available() {
            eprintln!("note: skipping mmap-capped and pread-capped: {error:#}");
            impls.retain(|i| !i.memory_capped());
        }
    }
    let timer_overhead_ns = driver::timer_overhead_ns();
    let duration = Duration::from_secs_f64(args.seconds);
    let total_runs: usize = args
        .workloads
        .iter()
        .map(|&w| {
            variants(&impls, &args.engines, &args.writers)
                .filter(|(i, _, _)| i.supports(w))
                .count()
                * args.threads.len()
        })
        .sum::<usize>()
        * args.repeat;
    let mut done = 0;
    let mut results = Vec::new();
    // Thread counts outside, implementations inside: the rows compared
    // with each other are measured minutes apart at most, so a noisy
    // neighbour on this shared machine tends to hit them alike.
    for &workload in &args.workloads {
        if workload.is_tree() {
            let spec = tree::TreeSpec {
                dir: &dir,
                tuples: args.tuples,
                pool_frames,
                duration,
            };
            for &threads in &args.threads {
                for &imp in impls.iter().filter(|i| i.supports(workload)) {
                    let what = format!("{} {} with {threads} threads", imp.name(), workload.name());
                    let mut best = Best::default();
                    for _ in 0..args.repeat {
                        done += 1;
                        eprintln!("running [{done}/{total_runs}] {what} ...");
                        let row = tree::run_one(imp, workload, threads, &spec).context(&what)?;
                        eprintln!(
                            "  {} ops/s, {:.2} cpu s, hit ratio {:?}, pages/op {:?}, {:?} reads",
                            row.ops_per_sec.round(),
                            row.cpu_seconds,
                            row.hit_ratio,
                            row.pages_per_op,
                            row.io_reads
                        );
                        best.add(row);
                    }
                    results.extend(best.finish());
                }
            }
            continue;
        }
        let pages = workload.pages(frames, file_pages);
        for &threads in &args.threads {
            // Every variant's run of a round before any variant's next
            // round: the rows compared in one ratio are measured minutes
            // apart at most, and each row's best run comes from the same
            // stretch of the host's weather as the others'.
            let mut cells = Vec::new();
            for (imp, engine, writer) in variants(&impls, &args.engines, &args.writers) {
                let name = row_name(imp, engine, writer, args);
                if !imp.supports(workload) {
                    if threads == args.threads[0] {
                        eprintln!("skipping {name} {}: not supported", workload.name());
                    }
                    continue;
                }
                let run_path = if workload.writes() {
                    data::ensure_copy(&path, &format!("{}-{}", workload.name(), name), pages)?
                } else {
                    path.clone()
                };
                let what = format!(
                    "{name} {} with {threads} thread{}",
                    workload.name(),
                    if threads == 1 { "" } else { "s" }
                );
                cells.push((imp, engine, writer, name, run_path, what, Best::default()));
            }
            for round in 0..args.repeat {
                for (imp, engine, writer, name, run_path, what, best) in &mut cells {
                    let (imp, engine, writer) = (*imp, *engine, *writer);
                    done += 1;
                    let label = if args.repeat > 1 {
                        format!("[{done}/{total_runs}] {what} (round {})", round + 1)
                    } else {
                        format!("[{done}/{total_runs}] {what}")
                    };
                    let spec = RunSpec {
                        imp,
                        workload,
                        threads,
                        duration,
                        setup: Setup {
                            path: run_path,
                            file_pages: pages,
                            pool_frames,
                            writes: workload.writes(),
                            engine: engine.engine(),
                            batch: args.batch,
                            read_ahead: args.read_ahead,
                            tasks: args.tasks,
                            threads,
                            workload_scans: workload == Workload::ScanMiss,
                            writer: writer == WriterArg::On,
                            checkpoint_pages_per_sec: args.checkpoint_pages_per_sec,
                            checkpoint_pages_in_flight: args.checkpoint_pages_in_flight,
                            checkpoint_io_share_pct: args.checkpoint_io_share_pct,
                        },
                        pages,
                        timer_overhead_ns,
                        label: &label,
                        checkpoint_ms: if imp.is_pool() { args.checkpoint_ms } else { 0 },
                    };
                    eprintln!("running {label} ...");
                    let outcome = runner::run(&spec).context(&*what)?;
                    let mut result = to_result(imp, workload, threads, &outcome);
                    result.imp = name.clone();
                    eprintln!("{}", run_note(&outcome, &result));
                    best.add(result);
                }
            }
            for (.., best) in cells {
                results.extend(best.finish());
            }
            if args.fio && matches!(workload, Workload::UniformMiss | Workload::ScanMiss) {
                results.extend(run_fio(&path, pages, threads, args, duration, workload)?);
            }
        }
    }
    // Report order: workload, implementation, threads (fio last).
    let rank = |r: &RunResult| {
        let w = args
            .workloads
            .iter()
            .position(|w| w.name() == r.workload)
            .unwrap_or(usize::MAX);
        let base = r.imp.split('[').next().unwrap_or(&r.imp);
        let i = args
            .impls
            .iter()
            .position(|i| i.name() == base)
            .unwrap_or(args.impls.len() + usize::from(r.imp == "fio-uring"));
        let suffix = r.imp.split('[').nth(1).unwrap_or("");
        let e = args
            .engines
            .iter()
            .position(|e| suffix.split([',', ']']).any(|part| part == e.name()))
            .unwrap_or(0);
        let writer = usize::from(suffix.contains("no-writer"));
        (w, i, e, writer, r.threads)
    };
    results.sort_by_key(rank);
    if args.fio
        && !args
            .workloads
            .iter()
            .any(|w| matches!(w, Workload::UniformMiss | Workload::ScanMiss))
    {
        eprintln!("note: --fio runs next to uniform-miss and scan-miss only, neither asked for");
    }

    println!();
    print!("{}", report::table(&results));
    println!(
        "latency: operations timed one at a time with Instant in separate batches of {}, costing under 1/{} of \
         each run (timer cost {timer_overhead_ns} ns subtracted); anon MiB: anonymous memory grown; cache MiB: the file's pages in the kernel's page cache; \
         others cpu s: CPU other processes used meanwhile (noise)",
        driver::BATCH,
        driver::SAMPLE_COST_SHARE
    );
    println!();
    print!("{}", report::summary(&results));
    let targets = report::targets(&results);
    if !targets.is_empty() {
        println!("targets (ratios from this run):");
        print!("{}", report::targets_table(&targets));
    }
    let command_line = command.join(" ");
    if let Some(json) = &args.json {
        report::write_json(json, &machine, &results, &command_line, &targets)?;
        println!("wrote {}", json.display());
    }
    if let Some(plot_path) = &args.plot {
        let title = format!(
            "pagepool bench: {} MiB pool, {} s runs, best of {}; {}",
            args.pool_mib, args.seconds, args.repeat, machine
        );
        plot::draw(plot_path, &title, &results)?;
        println!("wrote {}", plot_path.display());
    }
    Ok(())
}

/// Each implementation with each engine and writer setting it runs
/// with: pagepool's with every `--engine` and `--writer`, the others once.
fn variants<'a>(
    impls: &'a [ImplKind],
    engines: &'a [EngineArg],
    writers: &'a [WriterArg],
) -> impl Iterator<Item = (ImplKind, EngineArg, WriterArg)> + 'a {
    impls.iter().flat_map(move |&imp| {
        let (engines, writers): (&[EngineArg], &[WriterArg]) = if imp.is_pool() {
            (engines, writers)
        } else {
            (&[EngineArg::Auto], &[WriterArg::Off])
        };
        engines
            .iter()
            .flat_map(move |&engine| writers.iter().map(move |&writer| (imp, engine, writer)))
    })
}

/// A row's implementation name: with its engine and writer setting when
/// pagepool's rows run with several, as `pagepool[uring,writer]`.
fn row_name(imp: ImplKind, engine: EngineArg, writer: WriterArg, args: &BenchArgs) -> String {
    let mut parts = Vec::new();
    if imp.is_pool() && args.engines.len() > 1 {
        parts.push(engine.name().to_string());
    }
    if imp.is_pool() && args.writers.len() > 1 {
        parts.push(match writer {
            WriterArg::On => "writer".to_string(),
            WriterArg::Off => "no-writer".to_string(),
        });
    }
    if parts.is_empty() {
        imp.name().to_string()
    } else {
        format!("{}[{}]", imp.name(), parts.join(","))
    }
}

/// The fastest of the repeated runs of one cell (a busy neighbour only
/// ever slows a run down), with every run's ops/s when there were several.
#[derive(Default)]
struct Best {
    best: Option<RunResult>,
    runs: Vec<f64>,
}

impl Best {
    fn add(&mut self, row: RunResult) {
        self.runs.push(row.ops_per_sec);
        if self
            .best
            .as_ref()
            .is_none_or(|b| row.ops_per_sec > b.ops_per_sec)
        {
            self.best = Some(row);
        }
    }

    fn finish(self) -> Option<RunResult> {
        let mut best = self.best?;
        if self.runs.len() > 1 {
            best.ops_per_sec_runs = Some(self.runs);
        }
        Some(best)
    }
}

/// The report row of one measurement.
fn to_result(imp: ImplKind, workload: Workload, threads: usize, o: &RunOutcome) -> RunResult {
    const PAGE: u64 = PAGE_SIZE as u64;
    let ops = o.ops.max(1) as f64;
    let (hit_ratio, io_reads, io_writes) = match o.counters {
        Some(c) => (Some(c.hit_ratio()), Some(c.io_reads), Some(c.io_writes)),
        None => {
            // No cache of its own: count what the kernel read and dirtied.
            let reads = o.os.read_bytes / PAGE;
            // Their cache is the kernel's: a page read from storage is a
            // miss (readahead included, so this is approximate).
            let misses = matches!(
                imp,
                ImplKind::Mmap | ImplKind::Pread | ImplKind::MmapCapped | ImplKind::PreadCapped
            )
            .then_some(reads);
            let hit_ratio = misses.map(|m| (1.0 - m as f64 / ops).clamp(0.0, 1.0));
            (
                hit_ratio,
                Some(reads),
                Some(o.os.write_bytes.div_ceil(PAGE)),
            )
        }
    };
    let seconds = o.ops as f64 / o.ops_per_sec.max(f64::MIN_POSITIVE);
    RunResult {
        imp: imp.name().to_string(),
        workload: workload.name().to_string(),
        threads,
        ops_per_sec: o.ops_per_sec,
        cpu_seconds: o.cpu_seconds,
        hit_ratio,
        io_reads,
        io_writes,
        p50_ns: o.p50_ns,
        p99_ns: o.p99_ns,
        ops: o.ops,
        seconds: seconds / threads as f64,
        cpu_ns_per_op: o.cpu_seconds * 1e9 / ops,
        cpu_us_per_read: io_reads
            .filter(|&r| r > 0)
            .map(|r| o.cpu_seconds * 1e6 / r as f64),
        anon_mib: o.rss_delta_bytes as f64 / f64::from(1 << 20),
        page_cache_mib: o.cache_bytes as f64 / f64::from(1 << 20),
        major_faults: o.os.major_faults,
        others_cpu_seconds: o.os.others_cpu().as_secs_f64(),
        checked_words: o.checked_words,
        ops_per_sec_runs: None,
        pages_per_op: None,
        engine: Some(o.engine.0.clone()),
        queue_depth: Some(o.engine.1),
        writer: imp.is_pool().then(|| o.writer.to_string()),
        conditions: o.conditions.clone(),
        eviction_write_backs: o
            .counters
            .filter(|_| imp.is_pool())
            .map(|c| c.eviction_write_backs),
        writer_write_backs: o
            .counters
            .filter(|_| imp.is_pool())
            .map(|c| c.writer_write_backs),
        checkpoints: o.checkpoint.map(|c| c.count),
        checkpoint_ms: o.checkpoint.map(|c| c.busy_ms),
        checkpoint_ops_ratio: o.checkpoint.filter(|c| c.count > 0).map(|c| c.ops_ratio),
        note: o.memory_cap.map(|(limit, peak)| {
            let mib = |bytes: u64| bytes >> 20;
            match peak {
                Some(peak) => format!(
                    "memory cgroup limit {} MiB (pool + {:.1} MiB for the process), peak {} MiB",
                    mib(limit),
                    cgroup::process_allowance_bytes(threads) as f64 / f64::from(1 << 20),
                    mib(peak)
                ),
                None => format!("memory cgroup limit {} MiB", mib(limit)),
            }
        }),
    }
}

fn run_note(o: &RunOutcome, r: &RunResult) -> String {
    let mut note = format!(
        "  {} ops/s, {} ops, {} latency samples, {:.2} cpu s",
        r.ops_per_sec.round(),
        o.ops,
        o.samples,
        o.cpu_seconds
    );
    if let Some(c) = o.counters {
        note += &format!(
            ", {} hits, {} misses, {} evictions, {} reads, {} writes, {} optimistic retries, {} fallbacks",
            c.hits,
            c.misses,
            c.evictions,
            c.io_reads,
            c.io_writes,
            c.optimistic_retries,
            c.optimistic_fallbacks
        );
        if c.eviction_write_backs + c.writer_write_backs > 0 {
            note += &format!(
                ", write-backs: {} by faulting threads, {} by the background writer",
                c.eviction_write_backs, c.writer_write_backs
            );
        }
        if let Some(conditions) = &o.conditions {
            note += &format!(", {conditions}");
        }
        if let Some(cost) = o.checkpoint {
            note += &format!(
                ", {} checkpoints ({:.0} ms), throughput during them {:.2}x",
                cost.count, cost.busy_ms, cost.ops_ratio
            );
        }
    } else {
        note += &format!(
            ", {} storage reads, {} major faults",
            o.os.read_bytes / PAGE_SIZE as u64,
            o.os.major_faults
        );
    }
    note += &format!(
        ", anon {:+.0} MiB, page cache {:.0} MiB, other processes {:.2} cpu s",
        r.anon_mib, r.page_cache_mib, r.others_cpu_seconds
    );
    if let Some(words) = o.checked_words {
        note += &format!(", {words} written words read back OK (live and reopened)");
    }
    if let Some(cap) = &r.note {
        note += &format!(", {cap}");
    }
    note
}

/// fio's rows for the uniform-miss pages, or none (with a note) when fio
/// is not installed.
fn run_fio(
    path: &std::path::Path,
    pages: u64,
    threads: usize,
    args: &BenchArgs,
    duration: Duration,
    workload: Workload,
) -> Result<Vec<RunResult>> {
    let Some(version) = fio::version() else {
        if threads == args.threads[0] {
            eprintln!("note: --fio: fio is not installed (apt-get install fio); no fio rows");
        }
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    let engines: &[fio::Engine] = if workload == Workload::ScanMiss {
        &[fio::Engine::Seq]
    } else {
        &[fio::Engine::Psync, fio::Engine::Uring]
    };
    for &engine in engines {
        eprintln!(
            "running {version} {} with {threads} jobs ...",
            engine.name()
        );
        let mut best = Best::default();
        for _ in 0..args.repeat {
            data::drop_cache(path)?;
            match fio::run(path, pages, threads, duration, engine) {
                Ok(row) => {
                    eprintln!(
                        "  {} IOPS, {:.2} cpu s",
                        row.ops_per_sec.round(),
                        row.cpu_seconds
                    );
                    best.add(row);
                }
                // io_uring may be disabled by the kernel: skip, say so.
                Err(error) => {
                    eprintln!("note: {} skipped: {error}", engine.name());
                    break;
                }
            }
        }
        rows.extend(best.finish());
    }
    Ok(rows)
}
