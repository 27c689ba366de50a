//! `--fio`: the device's own limit, measured by fio on the same file, over
//! the same pages, with the same thread count as the `uniform-miss` rows:
//!
//! - `fio-psync`: `ioengine=psync`, one job (thread) per benchmark thread,
//!   one 4 KiB `O_DIRECT` random read at a time each;
//! - `fio-uring`: `ioengine=io_uring`, the same jobs at queue depth 32.
//!
//! CPU time is fio's own, from `getrusage(RUSAGE_CHILDREN)` around it
//! (user + system of all its threads, its start-up included); latency is
//! fio's completion latency (`clat`) percentiles.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::report::RunResult;
use super::resources;
use crate::bail;
use crate::error::{Context, Result};

/// The fio engines compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Synchronous pread, queue depth 1 per job.
    Psync,
    /// io_uring at queue depth 32 per job.
    Uring,
    /// Sequential reads, io_uring at queue depth 32 per job (`scan-miss`).
    Seq,
}

impl Engine {
    /// The row's implementation name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Psync => "fio-psync",
            Engine::Uring => "fio-uring",
            Engine::Seq => "fio-seq",
        }
    }

    /// The workload whose rows it sits beside.
    pub fn workload(self) -> &'static str {
        match self {
            Engine::Psync | Engine::Uring => "uniform-miss",
            Engine::Seq => "scan-miss",
        }
    }

    /// fio's `ioengine` and `iodepth`, for the row.
    fn engine_and_depth(self) -> (&'static str, usize) {
        match self {
            Engine::Psync => ("fio psync", 1),
            Engine::Uring | Engine::Seq => ("fio io_uring", 32),
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Engine::Psync => &["--ioengine=psync", "--iodepth=1", "--rw=randread"],
            Engine::Uring => &["--ioengine=io_uring", "--iodepth=32", "--rw=randread"],
            Engine::Seq => &["--ioengine=io_uring", "--iodepth=32", "--rw=read"],
        }
    }
}

/// fio's version, or `None` if it is not installed.
pub fn version() -> Option<String> {
    let out = Command::new("fio").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs fio: random 4 KiB direct reads of the first `pages` pages of
/// `path` from `threads` jobs for `duration`.
pub fn run(
    path: &Path,
    pages: u64,
    threads: usize,
    duration: Duration,
    engine: Engine,
) -> Result<RunResult> {
    let mut command = Command::new("fio");
    command
        .arg("--output-format=json")
        .arg("--name=pagepool-bench")
        .arg(format!("--filename={}", path.display()))
        .args([
            "--readonly",
            "--bs=4096",
            "--direct=1",
            "--thread",
            "--group_reporting",
            "--time_based",
            "--norandommap",
            "--randrepeat=0",
        ])
        .args(engine.args())
        .arg(format!("--numjobs={threads}"))
        .arg(format!("--size={}", pages * 4096))
        .arg(format!("--runtime={}ms", duration.as_millis().max(1)));
    let cpu_before = resources::children_cpu()?;
    let out = command.output().context("running fio")?;
    let cpu = resources::children_cpu()?.saturating_sub(cpu_before);
    if !out.status.success() {
        bail!(
            "fio failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    // fio may print notes before the JSON document.
    let json = stdout.find('{').map_or("", |at| &stdout[at..]);
    let report: Value = serde_json::from_str(json).context("parsing fio's JSON output")?;
    parse(&report, engine, threads, cpu)
}

fn parse(report: &Value, engine: Engine, threads: usize, cpu: Duration) -> Result<RunResult> {
    let job = &report["jobs"][0];
    let read = &job["read"];
    let Some(iops) = read["iops"].as_f64() else {
        bail!("fio's output has no read IOPS");
    };
    let ios = read["total_ios"].as_u64().unwrap_or(0);
    let runtime_s = read["runtime"].as_f64().unwrap_or(0.0) / 1000.0;
    let percentile = |p: &str| {
        read["clat_ns"]["percentile"][p]
            .as_u64()
            .or_else(|| read["clat_ns"]["percentile"][p].as_f64().map(|v| v as u64))
            .unwrap_or(0)
    };
    let cpu_seconds = cpu.as_secs_f64();
    let fio_cpu = (job["usr_cpu"].as_f64().unwrap_or(0.0) + job["sys_cpu"].as_f64().unwrap_or(0.0))
        / 100.0
        * runtime_s;
    Ok(RunResult {
        imp: engine.name().to_string(),
        workload: engine.workload().to_string(),
        threads,
        ops_per_sec: iops,
        cpu_seconds,
        hit_ratio: None,
        io_reads: Some(ios),
        io_writes: Some(0),
        p50_ns: percentile("50.000000"),
        p99_ns: percentile("99.000000"),
        ops: ios,
        seconds: runtime_s,
        cpu_ns_per_op: if ios == 0 {
            0.0
        } else {
            cpu_seconds * 1e9 / ios as f64
        },
        cpu_us_per_read: (ios > 0).then(|| cpu_seconds * 1e6 / ios as f64),
        engine: Some(engine.engine_and_depth().0.to_string()),
        queue_depth: Some(engine.engine_and_depth().1),
        note: Some(format!(
            "fio {} numjobs={threads}; cpu from getrusage(RUSAGE_CHILDREN), fio's own usr+sys: {fio_cpu:.2} s",
            engine.args().join(" ")
        )),
        ..RunResult::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fio_json() {
        let report: Value = serde_json::from_str(
            r#"{"jobs": [{"usr_cpu": 10.0, "sys_cpu": 30.0,
                "read": {"iops": 20000.5, "total_ios": 40001, "runtime": 2000,
                         "clat_ns": {"percentile": {"50.000000": 45000, "99.000000": 120000}}}}]}"#,
        )
        .unwrap();
        let row = parse(&report, Engine::Uring, 32, Duration::from_millis(500)).unwrap();
        assert_eq!(row.imp, "fio-uring");
        assert_eq!(row.threads, 32);
        assert_eq!((row.p50_ns, row.p99_ns), (45000, 120000));
        assert_eq!(row.io_reads, Some(40001));
        assert!((row.cpu_seconds - 0.5).abs() < 1e-9);
        assert!(row.note.unwrap().contains("0.80 s"));
        assert!(parse(&serde_json::json!({}), Engine::Psync, 1, Duration::ZERO).is_err());
    }
}
