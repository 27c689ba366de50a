//! A description of the machine a benchmark ran on, read from `/proc`.
//! Anything that cannot be read is left out (`null` in JSON) rather than
//! failing the run.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;

use serde::Serialize;

/// What the benchmark numbers depend on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model name (`model name` in `/proc/cpuinfo`).
    pub cpu_model: Option<String>,
    /// Logical CPUs this process may run on.
    pub logical_cpus: usize,
    /// Physical cores (distinct `physical id` / `core id` pairs).
    pub physical_cores: Option<usize>,
    /// Total memory in bytes (`MemTotal`).
    pub memory_bytes: Option<u64>,
    /// Kernel release (`uname -r`).
    pub kernel: Option<String>,
    /// Operating system (`PRETTY_NAME` in `/etc/os-release`).
    pub os: Option<String>,
    /// CPU architecture.
    pub arch: &'static str,
}

impl Machine {
    /// Reads the description of this machine.
    pub fn detect() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cpu_model: cpu_model(&cpuinfo),
            logical_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            physical_cores: physical_cores(&cpuinfo),
            memory_bytes: fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|text| mem_total(&text)),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            os: fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|text| os_name(&text)),
            arch: std::env::consts::ARCH,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} CPUs",
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.logical_cpus
        )?;
        if let Some(cores) = self.physical_cores {
            write!(f, " ({cores} cores)")?;
        }
        if let Some(bytes) = self.memory_bytes {
            write!(f, ", {:.1} GiB", bytes as f64 / (1u64 << 30) as f64)?;
        }
        if let Some(kernel) = &self.kernel {
            write!(f, ", Linux {kernel}")?;
        }
        if let Some(os) = &self.os {
            write!(f, ", {os}")?;
        }
        Ok(())
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once(':')?;
    (key.trim() == name).then(|| value.trim())
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|line| field(line, "model name").or_else(|| field(line, "Model")))
        .map(str::to_string)
}

fn physical_cores(cpuinfo: &str) -> Option<usize> {
    let mut cores = BTreeSet::new();
    let mut physical = None;
    for line in cpuinfo.lines() {
        if let Some(id) = field(line, "physical id") {
            physical = Some(id.to_string());
        } else if let Some(core) = field(line, "core id") {
            cores.insert((physical.clone(), core.to_string()));
        } else if line.trim().is_empty() {
            physical = None;
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let value = meminfo.lines().find_map(|line| field(line, "MemTotal"))?;
    let kib: u64 = value.trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn os_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))?;
    Some(value.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let cpuinfo =
            "processor\t: 0\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                       processor\t: 1\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                       processor\t: 2\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: 1\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Test CPU"));
        assert_eq!(physical_cores(cpuinfo), Some(2));
        assert_eq!(mem_total("MemTotal:       1024 kB\n"), Some(1 << 20));
        assert_eq!(
            os_name("NAME=x\nPRETTY_NAME=\"Debian 12\"\n").as_deref(),
            Some("Debian 12")
        );
    }
}
