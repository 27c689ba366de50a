//! `pagepool`: benchmarks and file verification for the pagepool buffer
//! pool.
//!
//! - `pagepool bench ...`: see [`bench`].
//! - `pagepool verify PATH`: see [`verify`].
//! - `pagepool report JSON`: a saved bench report's tables, again.
//!
//! Exit status: 0 on success; 1 when `verify` found bad pages; 2 on any
//! error (also clap's status for bad usage).

mod bench;
mod doctor;
mod error;
mod machine;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pagepool",
    version,
    about = "Benchmarks and file checks for the pagepool buffer pool"
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
    Verify {
        /// The data file.
        path: PathBuf,
    },
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
        Command::Verify { path } => {
            verify::run(path, &mut std::io::stdout().lock()).map(|summary| {
                if summary.bad == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            })
        }
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })
}
