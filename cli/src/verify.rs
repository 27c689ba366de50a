//! `pagepool verify PATH [--json]`: reads every page of a data file and
//! checks it as the pool does on every load ([`pagepool::PageCheck`]:
//! the trailer's magic and the checksum at the page's own number), and
//! lists the pages that fail.
//!
//! The file is opened read-only (a read-only file or mount can be
//! verified) under a shared lock: a file a running pool holds (its
//! exclusive lock) is refused, since pages it is writing would look torn.
//!
//! Text output: one `bad page N at byte offset B: REASON` line per bad
//! page, then `PATH: all N pages OK` or `PATH: B of N pages bad`, then a
//! line for scripts that grep: `summary: pages=N ok_pages=K bad_pages=B`.
//!
//! `--json` prints one object instead (schema 1):
//!
//! ```json
//! { "schema": 1, "path": "data.db", "pages": 8, "ok_pages": 6,
//!   "bad_page_count": 2,
//!   "bad_pages": [ { "page_no": 3, "byte_offset": 12288,
//!                    "reason": "checksum mismatch: ..." } ] }
//! ```
//!
//! On an error (exit status 2) `--json` prints `{ "schema": 1, "path": ..,
//! "error": "..." }` (and the error goes to stderr as well).

use std::fs::{File, Metadata, TryLockError};
use std::io::{BufReader, Read, Write};
use std::path::Path;

use pagepool::{PageCheck, PAGE_SIZE};
use serde::Serialize;

use crate::error::{Context, Error, Result};

/// The schema number of `verify --json` (and `inspect --json`).
pub const SCHEMA: u32 = 1;

/// `pagepool verify`'s arguments.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The data file (never created or changed).
    pub path: std::path::PathBuf,

    /// Print one JSON object (schema 1) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `verify --help`'s examples.
pub const EXAMPLES: &str = "\
Examples:
  pagepool verify data.db
      bad page 3 at byte offset 12288: checksum mismatch: ...
      data.db: 1 of 8 pages bad
      summary: pages=8 ok_pages=7 bad_pages=1
  pagepool verify --json data.db | jq '.bad_pages[].page_no'
  pagepool verify data.db >/dev/null || echo \"exit $?: 1 = bad pages, 2 = error\"

Exit status: 0 every page is good (never-written zero pages count as good);
1 bad pages were found; 2 error (missing or unreadable file, a size that is
not a whole number of pages, bad usage).
See also `pagepool inspect FILE`: the header, free list and roots.";

/// A page that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadPage {
    /// Its page number.
    pub page_no: u64,
    /// Where it starts in the file.
    pub byte_offset: u64,
    /// Why it failed (the pool's message).
    pub reason: String,
}

/// What verifying a file found (the `--json` object).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The JSON schema's version, [`SCHEMA`].
    pub schema: u32,
    /// The file, as given.
    pub path: String,
    /// Pages in the file.
    pub pages: u64,
    /// Pages that loaded.
    pub ok_pages: u64,
    /// Pages that failed to load.
    pub bad_page_count: u64,
    /// Each of them, in page order.
    pub bad_pages: Vec<BadPage>,
}

/// Checks every page of `path`, printing the report to `out` (text, each
/// bad page as it is found; or one JSON object at the end).
pub fn run(args: &VerifyArgs, out: &mut impl Write) -> Result<Summary> {
    let path = &args.path;
    let meta = data_file_metadata(path)?;
    let size = meta.len();
    if size % PAGE_SIZE as u64 != 0 {
        crate::bail!(
            "{}: {size} bytes is not a multiple of the page size ({PAGE_SIZE} bytes: a torn \
             extension, or not a pagepool file); `pagepool inspect {}` shows what the file holds",
            path.display(),
            path.display()
        );
    }
    let mut reader = BufReader::with_capacity(1 << 20, open_shared(path)?);
    let pages = size / PAGE_SIZE as u64;
    let mut summary = Summary {
        schema: SCHEMA,
        path: path.display().to_string(),
        pages,
        ok_pages: 0,
        bad_page_count: 0,
        bad_pages: Vec::new(),
    };
    let mut page = Box::new([0u8; PAGE_SIZE]);
    for page_no in 0..pages {
        reader
            .read_exact(&mut page[..])
            .with_context(|| format!("reading page {page_no} of {}", path.display()))?;
        let Some(reason) = PageCheck::of(&page, page_no).corruption() else {
            continue;
        };
        let bad = BadPage {
            page_no,
            byte_offset: page_no * PAGE_SIZE as u64,
            reason,
        };
        if !args.json {
            writeln!(
                out,
                "bad page {} at byte offset {}: {}",
                bad.page_no, bad.byte_offset, bad.reason
            )
            .context("writing the report")?;
        }
        summary.bad_pages.push(bad);
    }
    summary.bad_page_count = summary.bad_pages.len() as u64;
    summary.ok_pages = pages - summary.bad_page_count;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)
            .context("writing the report")?;
        return Ok(summary);
    }
    if summary.bad_page_count == 0 {
        writeln!(out, "{}: all {pages} pages OK", path.display())
    } else {
        writeln!(
            out,
            "{}: {} of {pages} pages bad",
            path.display(),
            summary.bad_page_count
        )
    }
    .context("writing the report")?;
    writeln!(
        out,
        "summary: pages={pages} ok_pages={} bad_pages={}",
        summary.ok_pages, summary.bad_page_count
    )
    .context("writing the report")?;
    Ok(summary)
}

/// Opens `path` read-only under a shared lock, refusing a file a running
/// pool holds (the pool locks its files exclusively).
fn open_shared(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|error| {
        Error::msg(format!(
            "cannot open {}: {}",
            path.display(),
            io_message(&error)
        ))
    })?;
    match file.try_lock_shared() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::msg(format!(
            "{} is open in a running pool (it holds the file's lock); verify it after the \
             pool closes, or verify a copy",
            path.display()
        ))),
        Err(TryLockError::Error(error)) => Err(Error::msg(format!(
            "cannot lock {}: {}",
            path.display(),
            io_message(&error)
        ))),
    }
}

/// The metadata of the data file at `path`, or an error that says what to
/// pass instead: for a missing or unreadable path, a directory, or
/// something other than a regular file. (The pool creates missing files;
/// `verify` and `inspect` must not, so they look first.)
pub fn data_file_metadata(path: &Path) -> Result<Metadata> {
    const PASS: &str = "pass the path of a pagepool data file";
    let meta = std::fs::metadata(path).map_err(|error| {
        let hint = match error.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "check its permissions (or run as a user that may read it)"
            }
            _ => PASS,
        };
        Error::msg(format!(
            "cannot read {}: {}; {hint}",
            path.display(),
            io_message(&error)
        ))
    })?;
    if meta.is_dir() {
        crate::bail!(
            "{} is a directory; {PASS} (a file in it, not the directory)",
            path.display()
        );
    }
    if !meta.is_file() {
        crate::bail!("{} is not a regular file; {PASS}", path.display());
    }
    Ok(meta)
}

/// An I/O error's message without its ` (os error N)` suffix.
pub fn io_message(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// The `--json` object printed when the command fails (exit status 2).
#[derive(Serialize)]
pub struct ErrorReport<'a> {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The file, as given.
    pub path: String,
    /// The error, as printed on stderr.
    pub error: &'a str,
}

/// Prints `error` as the `--json` error object for `path` to stdout.
pub fn print_json_error(path: &Path, error: &str) {
    let report = ErrorReport {
        schema: SCHEMA,
        path: path.display().to_string(),
        error,
    };
    if let Ok(json) = serde_json::to_string_pretty(&report) {
        println!("{json}");
    }
}
