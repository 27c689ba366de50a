//! The results table and the JSON report.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{Context, Result};
use crate::machine::Machine;

/// One row of the report (field names are the JSON interface).
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Implementation name.
    #[serde(rename = "impl")]
    pub imp: String,
    /// Workload name.
    pub workload: String,
    /// Worker threads.
    pub threads: usize,
    /// Operations per second over all threads.
    pub ops_per_sec: f64,
    /// CPU seconds (user + system) the process spent over the timed part.
    pub cpu_seconds: f64,
    /// Hits / (hits + misses) over the timed part; `null` for an
    /// implementation without a cache.
    pub hit_ratio: Option<f64>,
    /// Page reads issued to storage over the timed part.
    pub io_reads: Option<u64>,
    /// Page writes issued to storage over the timed part.
    pub io_writes: Option<u64>,
    /// Median latency of the sampled operations, in ns.
    pub p50_ns: u64,
    /// 99th percentile latency of the sampled operations, in ns.
    pub p99_ns: u64,
}

/// The JSON document written by `--json`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Where the numbers were measured.
    pub machine: &'a Machine,
    /// One entry per (implementation, workload, threads).
    pub results: &'a [RunResult],
}

/// Writes the JSON report to `path`.
pub fn write_json(path: &Path, machine: &Machine, results: &[RunResult]) -> Result<()> {
    let report = Report { machine, results };
    let mut text = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `12345678.9` as `12,345,679`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The results as an aligned text table.
pub fn table(results: &[RunResult]) -> String {
    let header = [
        "impl",
        "workload",
        "threads",
        "ops/s",
        "cpu s",
        "hit ratio",
        "io reads",
        "p50 ns",
        "p99 ns",
    ];
    let rows: Vec<[String; 9]> = results
        .iter()
        .map(|r| {
            [
                r.imp.clone(),
                r.workload.clone(),
                r.threads.to_string(),
                thousands(r.ops_per_sec),
                format!("{:.2}", r.cpu_seconds),
                or_dash(r.hit_ratio.map(|h| format!("{h:.4}"))),
                or_dash(r.io_reads),
                r.p50_ns.to_string(),
                r.p99_ns.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            // Names left-aligned, numbers right-aligned.
            if i < 2 {
                let _ = write!(text, "{cell:<width$}");
            } else {
                let _ = write!(text, "{cell:>width$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(12_345_678.9), "12,345,679");
    }

    #[test]
    fn table_aligns_columns() {
        let row = RunResult {
            imp: "pagepool".into(),
            workload: "hot-point".into(),
            threads: 2,
            ops_per_sec: 1234567.0,
            cpu_seconds: 3.5,
            hit_ratio: Some(1.0),
            io_reads: Some(0),
            io_writes: Some(0),
            p50_ns: 40,
            p99_ns: 900,
        };
        let text = table(&[row]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("impl"));
        assert!(lines[1].contains("1,234,567"), "{text}");
        assert!(lines[1].contains("1.0000"), "{text}");
    }
}
