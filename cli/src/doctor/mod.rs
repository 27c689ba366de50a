//! `pagepool doctor`: will zero-copy actually be zero-copy on this machine?
//!
//! Each check looks at the directory where the data files will live, at
//! this process, and at what the kernel says in `/proc` and `/sys`, and
//! answers with a [`Status`]: `ok`, `warn` (pagepool works, slower or with
//! a copy it exists to avoid), `fail` (it will not work as built), or
//! `unknown` (the machine does not say; the line says why, and never
//! claims `ok`). Every line says what it means for pagepool and what to do.
//!
//! | check | looks at |
//! |-------|----------|
//! | `o_direct` | a 4 KiB aligned `O_DIRECT` write and read of a scratch file in the directory (removed after); the file system's type |
//! | `block_size` | the device's logical and physical block size (`/sys/dev/block/M:m/queue`) |
//! | `memory_encryption` | SEV, SEV-ES, SEV-SNP or TDX guest (CPU flags in `/proc/cpuinfo`, `/dev/sev-guest`, `/dev/tdx_guest`, `/sys/kernel/config/tsm`, the kernel log) |
//! | `bounce_buffers` | swiotlb forced or in use (the kernel command line, `/sys/kernel/debug/swiotlb`, the kernel log) |
//! | `io_uring` | `kernel.io_uring_disabled`, then a ring actually set up by a pool |
//! | `fixed_buffers` | whether an arena of `--pool-mib` registers as fixed buffers (`RLIMIT_MEMLOCK`, `CAP_IPC_LOCK`, then the pool's answer) |
//! | `huge_pages` | transparent huge pages: the system setting, and whether `MADV_HUGEPAGE` takes on a test mapping |
//! | `device_queue` | the device's request queue depth, scheduler, and whether it rotates |
//! | `numa` | NUMA nodes |
//!
//! `--root` (hidden) reads `/proc` and `/sys` under another directory: the
//! tests stand a fake machine up there (a bounce-buffered guest, a kernel
//! with io_uring disabled). What this process does itself (the `O_DIRECT`
//! probe, the ring, the test mapping) is always real.
//!
//! # JSON (`--json`)
//!
//! ```text
//! { "schema": 1,
//!   "dir": "<the directory checked>", "pool_mib": <n>,
//!   "checks": [ { "name": "o_direct", "status": "ok|warn|fail|unknown",
//!                 "result": "<what was found>", "meaning": "<for pagepool>",
//!                 "advice": "<what to do>" | null }, ... ],
//!   "summary": { "ok": n, "warn": n, "fail": n, "unknown": n } }
//! ```
//!
//! The exit status is 1 when any check fails, else 0.

mod probes;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;

/// `pagepool doctor`'s arguments.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Directory where the data files will live (a scratch file is
    /// written and removed there) [default: ./target/pagepool-bench, or
    /// the current directory if that does not exist].
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Size of the frame arena to check against the memory-lock limit.
    #[arg(long, default_value_t = 64)]
    pub pool_mib: usize,

    /// Print the report as JSON (schema in the module docs and the README).
    #[arg(long)]
    pub json: bool,

    /// Read /proc and /sys under this directory instead of / (tests).
    #[arg(long, hide = true, default_value = "/")]
    pub root: PathBuf,
}

/// A check's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works as pagepool intends.
    Ok,
    /// Works, slower or with a copy pagepool exists to avoid.
    Warn,
    /// Will not work as built.
    Fail,
    /// The machine does not say.
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Unknown => "unknown",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The check's name (stable: scripts match on it).
    pub name: &'static str,
    /// Its answer.
    pub status: Status,
    /// What was found.
    pub result: String,
    /// What it means for pagepool.
    pub meaning: String,
    /// What to do, if anything.
    pub advice: Option<String>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The JSON schema's version.
    pub schema: u32,
    /// The directory checked.
    pub dir: PathBuf,
    /// The arena size checked.
    pub pool_mib: usize,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// How many checks gave each answer.
    pub summary: Summary,
}

/// Counts of each answer.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    ok: usize,
    warn: usize,
    fail: usize,
    unknown: usize,
}

/// What the checks read and where.
pub struct Env {
    /// Stands for `/` when reading `/proc` and `/sys`.
    pub root: PathBuf,
    /// The data directory.
    pub dir: PathBuf,
    /// The arena size, in MiB.
    pub pool_mib: usize,
}

impl Env {
    /// `path` (absolute, as on a real machine) under the root.
    pub fn sys(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The file at `path` under the root, trimmed, if readable.
    pub fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.sys(path))
            .ok()
            .map(|text| text.trim().to_string())
    }
}

/// Runs every check.
pub fn examine(env: &Env) -> Report {
    let checks = probes::all(env);
    let mut summary = Summary::default();
    for check in &checks {
        match check.status {
            Status::Ok => summary.ok += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
            Status::Unknown => summary.unknown += 1,
        }
    }
    Report {
        schema: 1,
        dir: env.dir.clone(),
        pool_mib: env.pool_mib,
        checks,
        summary,
    }
}

/// Runs `pagepool doctor`; returns whether every check passed (no fail).
pub fn run(args: &DoctorArgs) -> Result<bool> {
    if args.pool_mib == 0 || args.pool_mib > pagepool::MAX_FRAMES / 256 {
        crate::bail!("--pool-mib {}: expected at least 1", args.pool_mib);
    }
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None if Path::new("target/pagepool-bench").is_dir() => {
            PathBuf::from("target/pagepool-bench")
        }
        None => PathBuf::from("."),
    };
    if !dir.is_dir() {
        crate::bail!("{} is not a directory", dir.display());
    }
    let env = Env {
        root: args.root.clone(),
        dir,
        pool_mib: args.pool_mib,
    };
    let report = examine(&env);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(report.summary.fail == 0)
}

/// The report as text: one block per check.
fn text(report: &Report) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "pagepool doctor: {} (arena {} MiB)\n\n",
        report.dir.display(),
        report.pool_mib
    );
    for check in &report.checks {
        out += &format!(
            "[{:>7}] {:width$}  {}\n",
            check.status.label(),
            check.name,
            check.result
        );
        out += &format!("          {:width$}  → {}\n", "", check.meaning);
        if let Some(advice) = &check.advice {
            out += &format!("          {:width$}  ⇒ {}\n", "", advice);
        }
    }
    let s = &report.summary;
    out += &format!(
        "\n{} ok, {} warn, {} fail, {} unknown\n",
        s.ok, s.warn, s.fail, s.unknown
    );
    out
}
