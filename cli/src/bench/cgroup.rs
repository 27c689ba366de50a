//! A memory cap for the kernel-cache baselines (`mmap-capped`,
//! `pread-capped`): the benchmark process moves into a fresh memory cgroup
//! for the length of one run, so that the page cache those baselines fill
//! (and the process's own new memory) is limited to what pagepool's pool
//! is given, and the kernel's reclaim, not the machine's free memory,
//! decides what stays cached.
//!
//! Page cache is charged to the cgroup of the process that faults it in,
//! and the runner drops the file's cached pages before every run, so every
//! page of the run is charged here. Memory the process touched before
//! entering stays charged where it was.
//!
//! Works with the cgroup v1 memory controller, or v2 where the process's
//! cgroup delegates the memory controller; needs permission to create a
//! cgroup (root, usually). Otherwise [`MemoryCap::enter`] fails with the
//! reason, and the runner skips the row.

use std::fs;
use std::path::{Path, PathBuf};

use crate::bail;
use crate::error::{Context, Result};

/// What the process itself may grow by during a run on top of the pool's
/// size: thread stacks, latency histograms, `mixed`'s write logs (4 MiB,
/// and 256 KiB more per worker thread; 32 threads grew the process by
/// 5–6 MiB). What it does not use, the page cache gets, which gives the
/// capped baselines a little more memory than pagepool's pool, never less.
pub fn process_allowance_bytes(threads: usize) -> u64 {
    (4 << 20) + (256 << 10) * threads as u64
}

/// Which cgroup interface the memory controller is on.
#[derive(Clone, Copy, Debug)]
enum Version {
    V1,
    V2,
}

/// The process, inside a memory-capped cgroup until this is dropped.
#[derive(Debug)]
pub struct MemoryCap {
    /// The cgroup made for the run.
    dir: PathBuf,
    /// The cgroup the process came from (and returns to).
    home: PathBuf,
    version: Version,
}

impl MemoryCap {
    /// Makes a cgroup limited to `limit_bytes` below the process's own and
    /// moves the whole process into it.
    pub fn enter(limit_bytes: u64) -> Result<MemoryCap> {
        let (home, version) = memory_cgroup()?;
        let dir = home.join(format!("pagepool-bench-{}", std::process::id()));
        if !dir.exists() {
            fs::create_dir(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
        }
        let cap = MemoryCap { dir, home, version };
        let limit_file = match version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        write(&cap.dir.join(limit_file), &limit_bytes.to_string())?;
        write(
            &cap.dir.join("cgroup.procs"),
            &std::process::id().to_string(),
        )?;
        Ok(cap)
    }

    /// The most memory the cgroup has held, page cache included.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        let moved = write(
            &self.home.join("cgroup.procs"),
            &std::process::id().to_string(),
        );
        // Emptied of processes, the cgroup can go (v1 hands its page cache
        // charges to the parent).
        if let Err(error) = moved.and_then(|()| {
            fs::remove_dir(&self.dir).with_context(|| format!("removing {}", self.dir.display()))
        }) {
            eprintln!("note: leaving the memory cgroup: {error:#}");
        }
    }
}

/// Whether a capped run can work here: the process's memory cgroup is
/// found and a child can be made in it (made and removed again).
pub fn check_available() -> Result<()> {
    let (home, _) = memory_cgroup()?;
    let probe = home.join(format!("pagepool-bench-probe-{}", std::process::id()));
    fs::create_dir(&probe).with_context(|| format!("creating cgroup {}", probe.display()))?;
    fs::remove_dir(&probe).with_context(|| format!("removing {}", probe.display()))
}

/// The process's memory cgroup directory, and its interface version.
fn memory_cgroup() -> Result<(PathBuf, Version)> {
    let table = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    for line in table.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let dir = Path::new("/sys/fs/cgroup/memory").join(relative);
            if dir.join("memory.limit_in_bytes").exists() {
                return Ok((dir, Version::V1));
            }
        }
        if controllers.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let dir = Path::new(root).join(relative);
                let delegated = fs::read_to_string(dir.join("cgroup.subtree_control"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
                if delegated {
                    return Ok((dir, Version::V2));
                }
            }
        }
    }
    bail!("no memory cgroup this process can create a child in (needs the cgroup v1 memory controller, or v2 with memory delegated)")
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).with_context(|| format!("writing {value} to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_memory_cgroup() -> String {
        let table = fs::read_to_string("/proc/self/cgroup").unwrap();
        table
            .lines()
            .find(|line| line.contains(":memory:") || line.starts_with("0::"))
            .unwrap_or_default()
            .to_string()
    }

    /// Enters a capped cgroup, sees the limit and itself inside, and
    /// comes back out; skipped (with a note) where cgroups are not ours to
    /// make.
    #[test]
    fn enter_caps_and_leaving_comes_home() {
        if let Err(error) = check_available() {
            eprintln!("skipped: {error:#}");
            return;
        }
        let home = own_memory_cgroup();
        let limit = 256 << 20;
        {
            let cap = MemoryCap::enter(limit).unwrap();
            let limit_file = match cap.version {
                Version::V1 => "memory.limit_in_bytes",
                Version::V2 => "memory.max",
            };
            let set: u64 = fs::read_to_string(cap.dir.join(limit_file))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert_eq!(set, limit);
            assert!(own_memory_cgroup().contains("pagepool-bench-"), "moved in");
            let peak = cap.peak_bytes().expect("a peak");
            assert!(peak <= limit, "peak {peak} over the limit {limit}");
        }
        assert_eq!(own_memory_cgroup(), home, "moved back");
    }
}
