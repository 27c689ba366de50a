//! `pagepool bench`: throughput and latency of page reads, for each
//! combination of implementation, workload and thread count.
//!
//! The data file lives in `--dir` (default `target/pagepool-bench` under
//! the current directory: `/tmp` and `/dev/shm` may be tmpfs, which can
//! refuse `O_DIRECT`). It is named after its size, written once through
//! the pool, and reused by later runs. Each measurement opens a fresh pool;
//! see [`runner`] for what one measurement does.

pub mod data;
pub mod impls;
pub mod report;
pub mod runner;
pub mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pagepool::{PoolConfig, MAX_FRAMES, MAX_PAGES_PER_FILE, PAGE_SIZE};

use crate::bail;
use crate::error::{Context, Result};
use crate::machine::Machine;
use impls::{ImplKind, Setup};
use report::RunResult;
use runner::RunSpec;
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
}

impl BenchArgs {
    fn validate(&self) -> Result<()> {
        if self.workloads.is_empty() || self.impls.is_empty() || self.threads.is_empty() {
            bail!("--workload, --impl and --threads each need at least one value");
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
        let max_file_mib = MAX_PAGES_PER_FILE / 256;
        if let Some(mib) = self.file_mib.filter(|&mib| mib == 0 || mib > max_file_mib) {
            bail!("--file-mib {mib}: expected 1 to {max_file_mib} MiB");
        }
        Ok(())
    }
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
    data::ensure(&path, data_pages, 4)?;

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

    let timer_overhead_ns = runner::timer_overhead_ns();
    let duration = Duration::from_secs_f64(args.seconds);
    let setup = Setup {
        path: &path,
        file_pages: data_pages,
        pool_frames,
    };
    let mut results = Vec::new();
    for &workload in &args.workloads {
        for &imp in &args.impls {
            if !imp.supports(workload) {
                eprintln!("skipping {} {}: not supported", imp.name(), workload.name());
                continue;
            }
            for &threads in &args.threads {
                let spec = RunSpec {
                    imp,
                    workload,
                    threads,
                    duration,
                    setup,
                    pages: workload.pages(frames, file_pages),
                    timer_overhead_ns,
                };
                let what = format!(
                    "{} {} with {threads} thread{}",
                    imp.name(),
                    workload.name(),
                    if threads == 1 { "" } else { "s" }
                );
                eprintln!("running {what} ...");
                let outcome = runner::run(&spec).context(&what)?;
                results.push(RunResult {
                    imp: imp.name().to_string(),
                    workload: workload.name().to_string(),
                    threads,
                    ops_per_sec: outcome.ops_per_sec,
                    cpu_seconds: outcome.cpu_seconds,
                    hit_ratio: outcome.counters.map(|c| c.hit_ratio()),
                    io_reads: outcome.counters.map(|c| c.io_reads),
                    io_writes: outcome.counters.map(|c| c.io_writes),
                    p50_ns: outcome.p50_ns,
                    p99_ns: outcome.p99_ns,
                });
                let mut note =
                    format!("  {} ops, {} latency samples", outcome.ops, outcome.samples);
                if let Some(c) = outcome.counters {
                    note += &format!(
                        ", {} hits, {} misses, {} optimistic retries, {} fallbacks",
                        c.hits, c.misses, c.optimistic_retries, c.optimistic_fallbacks
                    );
                }
                eprintln!("{note}");
            }
        }
    }

    println!();
    print!("{}", report::table(&results));
    println!(
        "latency: every {}th operation timed with Instant (timer cost {timer_overhead_ns} ns subtracted)",
        runner::SAMPLE_EVERY
    );
    if let Some(json) = &args.json {
        report::write_json(json, &machine, &results)?;
        println!("wrote {}", json.display());
    }
    Ok(())
}
