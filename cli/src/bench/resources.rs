//! What a run costs the machine, read from the kernel: CPU time and page
//! faults (`getrusage`), storage traffic (`/proc/self/io`), anonymous
//! memory (`RssAnon` in `/proc/self/status`). Unreadable `/proc` files read
//! as zero rather than failing the run.

use std::time::Duration;

use crate::error::{Context, Result};

/// Counters of this process at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Page faults that had to read from storage.
    pub major_faults: u64,
    /// Bytes this process caused to be read from storage.
    pub read_bytes: u64,
    /// Bytes this process caused to be written to storage (counted when
    /// pages are dirtied).
    pub write_bytes: u64,
    /// CPU time every process on the machine spent (busy time in
    /// `/proc/stat`, all CPUs), to tell how much of it was not ours.
    pub machine_busy: Duration,
}

impl Snapshot {
    /// The counters now.
    pub fn now() -> Result<Snapshot> {
        let usage = rusage(libc::RUSAGE_SELF)?;
        let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        Ok(Snapshot {
            cpu: cpu_of(&usage),
            major_faults: usage.ru_majflt.max(0) as u64,
            read_bytes: proc_field(&io, "read_bytes").unwrap_or(0),
            write_bytes: proc_field(&io, "write_bytes").unwrap_or(0),
            machine_busy: machine_busy(),
        })
    }

    /// CPU time other processes used over this delta (the machine's busy
    /// time less ours; both sampled at tick granularity).
    pub fn others_cpu(&self) -> Duration {
        self.machine_busy.saturating_sub(self.cpu)
    }

    /// The counts from `earlier` to `self`.
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            major_faults: self.major_faults.saturating_sub(earlier.major_faults),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            machine_busy: self.machine_busy.saturating_sub(earlier.machine_busy),
        }
    }
}

/// Busy CPU time of the whole machine since boot: the `cpu` line of
/// `/proc/stat` less idle and iowait (steal included: a hypervisor taking
/// the CPU is noise too).
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return Duration::ZERO;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    // SAFETY: sysconf only reads its argument.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(total.saturating_sub(idle) as f64 / hz)
}

fn rusage(who: libc::c_int) -> Result<libc::rusage> {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the call's duration.
    let rc = unsafe { libc::getrusage(who, &mut usage) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage");
    }
    Ok(usage)
}

fn cpu_of(usage: &libc::rusage) -> Duration {
    let time = |tv: libc::timeval| {
        Duration::new(tv.tv_sec.max(0) as u64, (tv.tv_usec.max(0) as u32) * 1000)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// User + system CPU time of this process's waited-for children (fio).
pub fn children_cpu() -> Result<Duration> {
    Ok(cpu_of(&rusage(libc::RUSAGE_CHILDREN)?))
}

/// Hands the heap's free memory back to the kernel (glibc keeps what
/// earlier runs freed, which the next run's allocations would then reuse
/// without growing the resident set: the next delta would read low).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Anonymous resident memory of this process, in bytes (frame arenas,
/// page buffers, heaps; not file pages mapped from the page cache).
pub fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    proc_field(&status, "RssAnon").map_or(0, |kib| kib * 1024)
}

/// The number after `name:` in a `/proc` key-value file.
fn proc_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key.trim() != name {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_fields() {
        let text = "rchar: 10\nread_bytes: 4096\nRssAnon:\t  1234 kB\n";
        assert_eq!(proc_field(text, "read_bytes"), Some(4096));
        assert_eq!(proc_field(text, "RssAnon"), Some(1234));
        assert_eq!(proc_field(text, "write_bytes"), None);
        let now = Snapshot::now().unwrap();
        assert!(now.cpu > Duration::ZERO);
        assert!(rss_anon_bytes() > 0);
    }
}
