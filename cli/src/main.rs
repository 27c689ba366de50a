//! `pagepool`: benchmarks, machine checks and data-file tools for the
//! pagepool buffer pool.
//!
//! - `pagepool bench ...`: throughput and latency; see [`bench`].
//! - `pagepool report JSON`: a saved bench report's tables, again.
//! - `pagepool doctor`: what this machine offers pagepool; see [`doctor`].
//! - `pagepool verify FILE [--json]`: every page's checksum, checked through
//!   a pool, and the bad pages listed; see [`verify`].
//! - `pagepool inspect FILE [--json]`: what a data file holds (header, root
//!   slots, free list, pages by kind, LSN range), read without a pool and
//!   never written; see [`inspect`].
//!
//! `verify` and `inspect` never create or change the file; with `--json`
//! each prints one JSON object (`"schema": 1`) for scripts, and their text
//! output ends in a `summary: key=value ...` line for grep.
//!
//! Exit status: 0 on success; 1 when `verify` found bad pages, `inspect`
//! found problems (corrupt pages, a partial trailing page, a broken free
//! list or header) or a `doctor` check failed; 2 on any error (also clap's
//! status for bad usage). With `--json`, an error of `verify` or `inspect`
//! also prints `{"schema": 1, "path": .., "error": ..}` on stdout.

mod bench;
mod doctor;
mod error;
mod inspect;
mod machine;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pagepool",
    version,
    about = "Benchmarks, machine checks and data-file tools for the pagepool buffer pool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure page-read throughput and latency (prints a table).
    Bench(Box<bench::BenchArgs>),
    /// Check every page's checksum in a data file and list the bad pages.
    #[command(
        long_about = "Check every page's checksum in a data file, reading it through a small \
                      pool exactly as an engine would, and list the bad pages (page number, \
                      byte offset, reason). The file is never created or changed.",
        after_help = verify::EXAMPLES
    )]
    Verify(verify::VerifyArgs),
    /// Show what a data file holds: header, root slots, free list, pages
    /// by kind, LSN range.
    #[command(
        long_about = "Show what a data file holds: its size and pages; whether page 0 is a \
                      file header and, if so, its format version, free-list head and count \
                      and the set root slots; every page by kind (header, data, free, zero, \
                      corrupt); the range of nonzero LSNs; and whether the free list, walked \
                      from the header, is consistent. The file is only read (plain buffered \
                      reads, no pool).",
        after_help = inspect::EXAMPLES
    )]
    Inspect(inspect::InspectArgs),
    /// Check this machine for what pagepool relies on: O_DIRECT on the
    /// data directory, no bounce buffering (swiotlb, memory encryption),
    /// io_uring and fixed buffers, huge pages, the device's queue, NUMA.
    /// Run it first on a new machine; exits 1 if a check fails.
    Doctor(doctor::DoctorArgs),
    /// Print the tables and targets of a `bench --json` report again
    /// (and redraw its plot, or rewrite it with the targets recomputed).
    Report(bench::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Command::Doctor(args) => doctor::run(args).map(|passed| {
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
        Command::Report(args) => bench::report_again(args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::run(args, &mut std::io::stdout().lock())
            .map(|summary| status(summary.bad_page_count == 0))
            .inspect_err(|error| json_error(args.json, &args.path, error)),
        Command::Inspect(args) => inspect::run(args, &mut std::io::stdout().lock())
            .map(|report| status(report.problems.is_empty()))
            .inspect_err(|error| json_error(args.json, &args.path, error)),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })
}

/// 0 if all is well, else 1.
fn status(good: bool) -> ExitCode {
    if good {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// With `--json`, an error is a JSON object on stdout too.
fn json_error(json: bool, path: &Path, error: &error::Error) {
    if json {
        verify::print_json_error(path, &error.to_string());
    }
}
