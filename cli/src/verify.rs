//! `pagepool verify PATH`: reads every page of a data file through a small
//! pool, which checks each page's checksum on load, and lists the pages
//! that fail.

use std::io::Write;
use std::path::Path;

use pagepool::{BufferPool, Error as PoolError, IoMode, PageId, PoolConfig, PAGE_SIZE};

use crate::bail;
use crate::error::{Context, Result};

/// What verifying a file found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Pages in the file.
    pub pages: u64,
    /// Pages that failed to load.
    pub bad: u64,
}

/// Checks every page of `path`, printing each bad page and a summary line
/// to `out`.
pub fn run(path: &Path, out: &mut impl Write) -> Result<Summary> {
    // The pool creates missing files; verifying must not.
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let (pool, file) = match open(path, IoMode::Direct) {
        Err(PoolError::DirectIoUnsupported { .. }) => open(path, IoMode::Buffered),
        other => other,
    }
    .with_context(|| format!("opening {}", path.display()))?;

    let pages = pool.page_count(file)?;
    let mut summary = Summary {
        pages,
        ..Summary::default()
    };
    for page_no in 0..pages {
        let reason = match pool.read(PageId::new(file, page_no)) {
            Ok(_) => continue,
            Err(PoolError::Corrupt { reason, .. }) => reason,
            Err(error) => error.to_string(),
        };
        summary.bad += 1;
        writeln!(
            out,
            "bad page {page_no} at byte offset {}: {reason}",
            page_no * PAGE_SIZE as u64
        )
        .context("writing the report")?;
    }
    pool.close()?;
    if summary.bad == 0 {
        writeln!(out, "{}: all {pages} pages OK", path.display())
    } else {
        writeln!(
            out,
            "{}: {} of {pages} pages bad",
            path.display(),
            summary.bad
        )
    }
    .context("writing the report")?;
    Ok(summary)
}

fn open(path: &Path, mode: IoMode) -> pagepool::Result<(BufferPool, pagepool::FileId)> {
    let pool = BufferPool::open(PoolConfig::new(16).io_mode(mode))?;
    let file = pool.open_file(path)?;
    Ok((pool, file))
}
