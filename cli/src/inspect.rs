//! `pagepool inspect PATH [--json]`: what a data file holds, read with
//! plain buffered reads (never through a pool, never `O_DIRECT`, never
//! writing; it works on any file system, tmpfs included).
//!
//! It reports the file's size and page count; whether page 0 is a file
//! header (a formatted file) and if so its format version, free-list head,
//! free count and set root slots; by scanning every page, how many are the
//! header, data, marked free, zero (never written) and corrupt (bad magic
//! or checksum; the first few listed), and the range of nonzero LSNs over
//! the valid pages; and, for a formatted file, the free list walked from
//! the header (at most one step per page), its length, whether that is the
//! header's count, and each problem (a cycle, a link past the end of the
//! file or to a page not marked free).
//!
//! Exit status: 0 nothing wrong; 1 problems found (corrupt pages, a
//! trailing partial page, a broken free list, a bad header); 2 error.
//!
//! `--json` prints one object (schema 1); its shape:
//!
//! ```json
//! { "schema": 1, "path": "data.db", "file_size": 40960, "page_size": 4096,
//!   "pages": 10, "trailing_bytes": 0, "formatted": true,
//!   "header": { "version": 1, "checksum_ok": true, "free_head": 7,
//!               "free_count": 2, "roots": [ { "slot": 0, "page_no": 2 } ] },
//!   "counts": { "header": 1, "data": 6, "free": 2, "zero": 1, "corrupt": 0 },
//!   "corrupt_pages": [ { "page_no": 4, "byte_offset": 16384,
//!                        "reason": "checksum mismatch: ..." } ],
//!   "lsn_range": { "min": 5, "max": 42 },
//!   "free_list": { "walked": 2, "header_count": 2, "matches_header": true,
//!                  "consistent": true, "marked_free_off_list": 0,
//!                  "problems": [] },
//!   "problems": [] }
//! ```
//!
//! `header` and `free_list` are `null` for a plain file, `lsn_range` when
//! no valid page has a nonzero LSN, `free_head` when the list is empty;
//! `corrupt_pages` lists at most [`CORRUPT_LISTED`] pages (`counts.corrupt`
//! counts them all).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::verify::{data_file_metadata, io_message, BadPage, SCHEMA};

use format::*;

/// The on-disk formats, mirrored from the library: keep these in step with
/// it (the asserts below check what the library exports).
pub mod format {
    // The page trailer: src/page.rs (`LSN_OFFSET`, `CHECKSUM_OFFSET`,
    // `MAGIC_OFFSET`, `MAGIC`); the check itself is the library's
    // (`pagepool::PageCheck`).
    /// Bytes in a page.
    pub const PAGE_SIZE: usize = 4096;
    /// The trailer's LSN (le u64).
    pub const LSN_OFFSET: usize = 4080;
    /// The trailer's CRC-32C (le u32) of bytes `0..CHECKSUM_OFFSET`, then
    /// the page number as a le u64 (the tests stamp pages with it).
    #[cfg(test)]
    pub const CHECKSUM_OFFSET: usize = 4088;
    /// The trailer's format magic.
    #[cfg(test)]
    pub const MAGIC_OFFSET: usize = 4092;
    /// The format magic of every written page.
    #[cfg(test)]
    pub const PAGE_MAGIC: [u8; 4] = *b"PGP1";

    // The file header (page 0) and free pages: src/lifecycle/header.rs
    // (the table is in src/lifecycle/mod.rs).
    /// The header's magic, at offset 0 of page 0.
    pub const HEADER_MAGIC: [u8; 8] = *b"PGPHEAD1";
    /// The header's format version (le u64).
    pub const VERSION_AT: usize = 8;
    /// The format version this build knows.
    pub const VERSION: u64 = 1;
    /// The first free page (le u64), or [`NO_PAGE`].
    pub const FREE_HEAD_AT: usize = 16;
    /// The free pages on the list, as the header counts them (le u64).
    pub const FREE_COUNT_AT: usize = 24;
    /// The first root slot (le u64 each; 0 = empty).
    pub const ROOTS_AT: usize = 64;
    /// Root slots in a header.
    pub const ROOT_SLOTS: usize = 64;
    /// A free page's magic, at offset 0.
    pub const FREE_MAGIC: [u8; 8] = *b"PGPFREE1";
    /// In a free page: the next free page (le u64), or [`NO_PAGE`].
    pub const NEXT_FREE_AT: usize = 8;
    /// The end of the free list.
    pub const NO_PAGE: u64 = u64::MAX;

    const _: () = assert!(PAGE_SIZE == pagepool::PAGE_SIZE);
    const _: () = assert!(LSN_OFFSET == pagepool::PAGE_DATA_SIZE);
    const _: () = assert!(ROOT_SLOTS == pagepool::ROOT_SLOTS);
    const _: () = assert!(ROOTS_AT + 8 * ROOT_SLOTS <= LSN_OFFSET);
}

/// At most this many corrupt pages are listed (all are counted).
pub const CORRUPT_LISTED: usize = 10;

/// `pagepool inspect`'s arguments.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The data file (it is only read, never created or changed).
    pub path: std::path::PathBuf,

    /// Print one JSON object (schema 1) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `inspect --help`'s examples.
pub const EXAMPLES: &str = "\
Examples:
  pagepool inspect data.db
  pagepool inspect --json data.db | jq '.header.roots'
  pagepool inspect --json data.db | jq '.counts.free, .free_list.consistent'
  pagepool inspect data.db | grep '^summary:'
      summary: pages=10 header=1 data=6 free=2 zero=1 corrupt=0 problems=0

It reads the file with ordinary buffered reads and never writes it, so it
is safe on a file a running pool has open (pages still in that pool's
memory are not seen) and works on any file system.

Exit status: 0 nothing wrong; 1 problems found (corrupt pages, a trailing
partial page, a broken free list or header); 2 error (missing or
unreadable file, bad usage).
See also `pagepool verify FILE`: the checksums as the pool itself checks
them.";

/// What one page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageKind {
    /// A valid page 0 with the header magic.
    Header,
    /// A valid page: the caller's data.
    Data,
    /// A valid page marked free (in a formatted file), and its link.
    Free {
        /// The next page on the list, or [`NO_PAGE`].
        next: u64,
    },
    /// All zero: never written.
    Zero,
    /// Not a valid page: the library's reason.
    Corrupt(String),
}

impl PageKind {
    fn describe(&self) -> String {
        match self {
            PageKind::Header => "the header".into(),
            PageKind::Data => "a data page".into(),
            PageKind::Free { .. } => "a free page".into(),
            PageKind::Zero => "a zero page (never written)".into(),
            PageKind::Corrupt(reason) => format!("corrupt: {reason}"),
        }
    }
}

fn u64_at(page: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&page[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Whether the page's checksum and magic are good, by the library's own
/// check ([`pagepool::PageCheck`]): `Ok(true)` valid, `Ok(false)` all
/// zero, `Err(reason)` corrupt (the reason a load would give).
pub fn check_page(page: &[u8], page_no: u64) -> std::result::Result<bool, String> {
    let page: &[u8; PAGE_SIZE] = page
        .try_into()
        .map_err(|_| format!("a partial page of {} bytes", page.len()))?;
    match pagepool::PageCheck::of(page, page_no) {
        pagepool::PageCheck::Valid => Ok(true),
        pagepool::PageCheck::NeverWritten => Ok(false),
        check => Err(check.corruption().unwrap_or_else(|| format!("{check:?}"))),
    }
}

/// What page `page_no` holds; free marks count only in a formatted file.
pub fn classify(page: &[u8], page_no: u64, formatted: bool) -> PageKind {
    match check_page(page, page_no) {
        Err(reason) => PageKind::Corrupt(reason),
        Ok(false) => PageKind::Zero,
        Ok(true) if page_no == 0 && page[..8] == HEADER_MAGIC => PageKind::Header,
        Ok(true) if formatted && page_no != 0 && page[..8] == FREE_MAGIC => PageKind::Free {
            next: u64_at(page, NEXT_FREE_AT),
        },
        Ok(true) => PageKind::Data,
    }
}

/// A set root slot.
#[derive(Debug, Serialize)]
pub struct Root {
    /// The slot's index.
    pub slot: usize,
    /// The page it names.
    pub page_no: u64,
}

/// The file header's fields.
#[derive(Debug, Serialize)]
pub struct Header {
    /// The format version.
    pub version: u64,
    /// Whether page 0's checksum is good (the fields are shown either way).
    pub checksum_ok: bool,
    /// The first free page, `None` for an empty list.
    pub free_head: Option<u64>,
    /// The free pages on the list, as the header counts them.
    pub free_count: u64,
    /// The set root slots, in slot order.
    pub roots: Vec<Root>,
}

/// Page counts by kind (they add up to the page count).
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// The header page (0 or 1).
    pub header: u64,
    /// Valid pages that are neither header nor free.
    pub data: u64,
    /// Valid pages marked free.
    pub free: u64,
    /// Zero pages (never written).
    pub zero: u64,
    /// Pages with a bad magic or checksum.
    pub corrupt: u64,
}

/// The smallest and largest nonzero LSN over the valid pages.
#[derive(Debug, Serialize)]
pub struct LsnRange {
    /// The smallest.
    pub min: u64,
    /// The largest.
    pub max: u64,
}

/// The free list as walked from the header.
#[derive(Debug, Serialize)]
pub struct FreeList {
    /// Free pages walked before the end of the list (or a problem).
    pub walked: u64,
    /// The header's count.
    pub header_count: u64,
    /// Whether the walk reached the end and found the header's count.
    pub matches_header: bool,
    /// Whether no problem was found.
    pub consistent: bool,
    /// Pages marked free that the walk did not reach (leaked: after a
    /// crash, or a list the pool dropped; they are not reused, harmless).
    pub marked_free_off_list: u64,
    /// What is wrong with the list.
    pub problems: Vec<String>,
}

/// What `inspect` found (the `--json` object).
#[derive(Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The file, as given.
    pub path: String,
    /// The file's size in bytes.
    pub file_size: u64,
    /// [`PAGE_SIZE`].
    pub page_size: usize,
    /// Whole pages in the file.
    pub pages: u64,
    /// Bytes after the last whole page (0 in a sound file).
    pub trailing_bytes: u64,
    /// Whether page 0 holds a file header.
    pub formatted: bool,
    /// The header, for a formatted file.
    pub header: Option<Header>,
    /// Pages by kind.
    pub counts: Counts,
    /// The first [`CORRUPT_LISTED`] corrupt pages.
    pub corrupt_pages: Vec<BadPage>,
    /// Nonzero LSNs over the valid pages; `None` if there are none.
    pub lsn_range: Option<LsnRange>,
    /// The free list, for a formatted file.
    pub free_list: Option<FreeList>,
    /// Everything wrong, one sentence each (exit status 1 if any).
    pub problems: Vec<String>,
}

/// Inspects `path` and prints the report to `out`.
pub fn run(args: &InspectArgs, out: &mut impl Write) -> Result<Report> {
    let report = inspect(&args.path)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)
    } else {
        print_text(&report, out)
    }
    .context("writing the report")?;
    Ok(report)
}

/// Reads `path` and works out what it holds.
pub fn inspect(path: &Path) -> Result<Report> {
    let meta = data_file_metadata(path)?;
    let cannot_read = |error: std::io::Error| {
        Error::msg(format!(
            "cannot read {}: {}; pass the path of a pagepool data file",
            path.display(),
            io_message(&error)
        ))
    };
    // Read-only: inspecting never creates or changes the file.
    let file = File::open(path).map_err(cannot_read)?;
    let file_size = meta.len();
    let pages = file_size / PAGE_SIZE as u64;
    let trailing_bytes = file_size % PAGE_SIZE as u64;

    let mut report = Report {
        schema: SCHEMA,
        path: path.display().to_string(),
        file_size,
        page_size: PAGE_SIZE,
        pages,
        trailing_bytes,
        formatted: false,
        header: None,
        counts: Counts::default(),
        corrupt_pages: Vec::new(),
        lsn_range: None,
        free_list: None,
        problems: Vec::new(),
    };

    let mut reader = BufReader::with_capacity(64 * PAGE_SIZE, &file);
    let mut page = vec![0u8; PAGE_SIZE];
    // Free pages and their links, for the walk.
    let mut free: HashMap<u64, u64> = HashMap::new();
    let mut lsns: Option<(u64, u64)> = None;
    for page_no in 0..pages {
        reader.read_exact(&mut page).map_err(|error| {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::msg(format!(
                    "{} shrank while being read (at page {page_no}); is something \
                     truncating it? Run inspect again when it is not in use",
                    path.display()
                ))
            } else {
                cannot_read(error).context(format!("reading page {page_no}"))
            }
        })?;
        if page_no == 0 && page[..8] == HEADER_MAGIC {
            report.formatted = true;
            report.header = Some(parse_header(&page, check_page(&page, 0).is_ok()));
        }
        let kind = classify(&page, page_no, report.formatted);
        if matches!(
            kind,
            PageKind::Header | PageKind::Data | PageKind::Free { .. }
        ) {
            let lsn = u64_at(&page, LSN_OFFSET);
            if lsn != 0 {
                let (min, max) = lsns.unwrap_or((lsn, lsn));
                lsns = Some((min.min(lsn), max.max(lsn)));
            }
        }
        match kind {
            PageKind::Header => report.counts.header += 1,
            PageKind::Data => report.counts.data += 1,
            PageKind::Free { next } => {
                report.counts.free += 1;
                free.insert(page_no, next);
            }
            PageKind::Zero => report.counts.zero += 1,
            PageKind::Corrupt(reason) => {
                report.counts.corrupt += 1;
                if report.corrupt_pages.len() < CORRUPT_LISTED {
                    report.corrupt_pages.push(BadPage {
                        page_no,
                        byte_offset: page_no * PAGE_SIZE as u64,
                        reason,
                    });
                }
            }
        }
    }
    report.lsn_range = lsns.map(|(min, max)| LsnRange { min, max });

    if trailing_bytes != 0 {
        report.problems.push(format!(
            "the file ends in a partial page: {trailing_bytes} bytes after the last whole \
             page ({pages} pages of {PAGE_SIZE}); a torn extend, a truncated copy, or \
             not a pagepool file (the pool refuses to open it)"
        ));
    }
    if report.counts.corrupt != 0 {
        let first: Vec<String> = report
            .corrupt_pages
            .iter()
            .map(|bad| bad.page_no.to_string())
            .collect();
        let more = if report.counts.corrupt as usize > first.len() {
            ", ..."
        } else {
            ""
        };
        report.problems.push(format!(
            "{} corrupt pages (bad magic or checksum): {}{more}",
            report.counts.corrupt,
            first.join(", ")
        ));
    }
    if let Some(header) = &report.header {
        if !header.checksum_ok {
            report.problems.push(
                "the header (page 0) is corrupt: its fields below may be wrong, and the \
                 pool will refuse to use the free list and roots"
                    .into(),
            );
        }
        if header.version != VERSION {
            report.problems.push(format!(
                "the header's format version is {}; this build knows version {VERSION}",
                header.version
            ));
        }
        for root in &header.roots {
            if root.page_no >= pages {
                report.problems.push(format!(
                    "root slot {} names page {}, past the end of the file ({pages} pages)",
                    root.slot, root.page_no
                ));
            } else if free.contains_key(&root.page_no) {
                report.problems.push(format!(
                    "root slot {} names page {}, which is marked free",
                    root.slot, root.page_no
                ));
            }
        }
        let list = walk_free_list(&file, header, pages, &free);
        report
            .problems
            .extend(list.problems.iter().map(|p| format!("free list: {p}")));
        report.free_list = Some(list);
    }
    Ok(report)
}

fn parse_header(page: &[u8], checksum_ok: bool) -> Header {
    let head = u64_at(page, FREE_HEAD_AT);
    let roots = (0..ROOT_SLOTS)
        .map(|slot| Root {
            slot,
            page_no: u64_at(page, ROOTS_AT + 8 * slot),
        })
        .filter(|root| root.page_no != 0)
        .collect();
    Header {
        version: u64_at(page, VERSION_AT),
        checksum_ok,
        free_head: (head != NO_PAGE).then_some(head),
        free_count: u64_at(page, FREE_COUNT_AT),
        roots,
    }
}

/// Walks the free list from the header, at most one step per page of the
/// file, stopping at the first problem.
fn walk_free_list(file: &File, header: &Header, pages: u64, free: &HashMap<u64, u64>) -> FreeList {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut from = "the header".to_string();
    let mut at = header.free_head.unwrap_or(NO_PAGE);
    let mut completed = false;
    let mut steps = 0u64;
    loop {
        if at == NO_PAGE {
            completed = true;
            break;
        }
        if steps >= pages {
            problems.push(format!(
                "the walk did not reach the end within {pages} steps (one per page)"
            ));
            break;
        }
        if at >= pages {
            problems.push(format!(
                "{from} links to page {at}, past the end of the file ({pages} pages)"
            ));
            break;
        }
        if !seen.insert(at) {
            problems.push(format!(
                "a cycle: {from} links back to page {at}, already on the list"
            ));
            break;
        }
        let Some(&next) = free.get(&at) else {
            problems.push(format!(
                "{from} links to page {at}, which is not marked free ({})",
                describe_page(file, at)
            ));
            break;
        };
        steps += 1;
        from = format!("free page {at}");
        at = next;
    }
    let walked = steps;
    let matches_header = completed && walked == header.free_count;
    if completed && !matches_header {
        problems.push(format!(
            "the header counts {} free pages, the list holds {walked}",
            header.free_count
        ));
    }
    FreeList {
        walked,
        header_count: header.free_count,
        matches_header,
        consistent: problems.is_empty(),
        marked_free_off_list: free.keys().filter(|p| !seen.contains(*p)).count() as u64,
        problems,
    }
}

/// What page `page_no` holds, read again (for a free-list problem).
fn describe_page(file: &File, page_no: u64) -> String {
    let mut page = vec![0u8; PAGE_SIZE];
    match file.read_exact_at(&mut page, page_no * PAGE_SIZE as u64) {
        Ok(()) => classify(&page, page_no, true).describe(),
        Err(error) => format!("unreadable: {}", io_message(&error)),
    }
}

fn print_text(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "file:       {}", report.path)?;
    write!(
        out,
        "size:       {} bytes, {} pages of {}",
        report.file_size, report.pages, report.page_size
    )?;
    if report.trailing_bytes != 0 {
        write!(out, " + a partial page of {} bytes", report.trailing_bytes)?;
    }
    writeln!(out)?;
    match &report.header {
        None if report.pages == 0 => writeln!(out, "header:     none (empty file)")?,
        None => writeln!(
            out,
            "header:     none (a plain file: page 0 is not a header)"
        )?,
        Some(header) => {
            let corrupt = if header.checksum_ok {
                ""
            } else {
                " (CORRUPT: bad checksum)"
            };
            writeln!(
                out,
                "header:     page 0, format version {}{corrupt}",
                header.version
            )?;
            let head = match header.free_head {
                Some(page_no) => format!("page {page_no}"),
                None => "none (empty)".into(),
            };
            writeln!(
                out,
                "  free list head: {head}; free count in the header: {}",
                header.free_count
            )?;
            if header.roots.is_empty() {
                writeln!(out, "  root slots: none set")?;
            } else {
                let roots: Vec<String> = header
                    .roots
                    .iter()
                    .map(|root| format!("{} -> page {}", root.slot, root.page_no))
                    .collect();
                writeln!(out, "  root slots: {}", roots.join(", "))?;
            }
        }
    }
    let c = &report.counts;
    writeln!(
        out,
        "pages:      {} header, {} data, {} free, {} zero (never written), {} corrupt",
        c.header, c.data, c.free, c.zero, c.corrupt
    )?;
    for bad in &report.corrupt_pages {
        writeln!(
            out,
            "  corrupt page {} at byte offset {}: {}",
            bad.page_no, bad.byte_offset, bad.reason
        )?;
    }
    if c.corrupt as usize > report.corrupt_pages.len() {
        writeln!(
            out,
            "  ... and {} more (`pagepool verify` lists them all)",
            c.corrupt as usize - report.corrupt_pages.len()
        )?;
    }
    match &report.lsn_range {
        Some(range) => writeln!(out, "LSN range:  {}..={}", range.min, range.max)?,
        None => writeln!(out, "LSN range:  none (no valid page has a nonzero LSN)")?,
    }
    if let Some(list) = &report.free_list {
        let verdict = if list.consistent {
            "consistent, matches the header's count".to_string()
        } else {
            "INCONSISTENT (see problems below)".to_string()
        };
        writeln!(
            out,
            "free list:  {} pages walked from the header; {verdict}",
            list.walked
        )?;
        if list.marked_free_off_list != 0 {
            writeln!(
                out,
                "  {} pages are marked free but not on the list (leaked, not reused; \
                 harmless)",
                list.marked_free_off_list
            )?;
        }
    }
    if report.problems.is_empty() {
        writeln!(out, "problems:   none")?;
    } else {
        writeln!(out, "problems:")?;
        for problem in &report.problems {
            writeln!(out, "  - {problem}")?;
        }
    }
    writeln!(
        out,
        "summary: pages={} header={} data={} free={} zero={} corrupt={} problems={}",
        report.pages,
        c.header,
        c.data,
        c.free,
        c.zero,
        c.corrupt,
        report.problems.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum, computed here independently of the library: bytes
    /// `0..CHECKSUM_OFFSET`, then the page number (le u64).
    fn checksum(page: &[u8], page_no: u64) -> u32 {
        let crc = crc32c::crc32c(&page[..CHECKSUM_OFFSET]);
        crc32c::crc32c_append(crc, &page_no.to_le_bytes())
    }

    fn stamped(page_no: u64, fill: u8) -> Vec<u8> {
        let mut page = vec![fill; PAGE_SIZE];
        page[MAGIC_OFFSET..].copy_from_slice(&PAGE_MAGIC);
        let crc = checksum(&page, page_no);
        page[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        page
    }

    #[test]
    fn a_stamped_page_checks_only_at_its_own_number_and_unflipped() {
        let page = stamped(4, 0xAB);
        assert_eq!(check_page(&page, 4), Ok(true));
        assert!(check_page(&page, 5).unwrap_err().contains("checksum"));
        let mut flipped = page.clone();
        flipped[100] ^= 0x10;
        assert!(check_page(&flipped, 4).unwrap_err().contains("checksum"));
        assert_eq!(check_page(&[0u8; PAGE_SIZE], 9), Ok(false));
        let mut stray = vec![0u8; PAGE_SIZE];
        stray[17] = 1;
        assert!(check_page(&stray, 0).unwrap_err().contains("trailer"));
    }

    #[test]
    fn io_messages_lose_the_os_error_suffix() {
        let error = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_message(&error), "No such file or directory");
    }
}
