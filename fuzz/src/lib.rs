//! Shared harness of the pagepool fuzz targets.
//!
//! - [`run_ops`] drives a small pool through an arbitrary sequence of
//!   [`Op`]s (allocate, write, read, optimistic read, several guards at
//!   once, flush, close and reopen, drop and reopen, crash and reopen) and
//!   checks every result against a model of each page. With `faults` it
//!   puts a [`Faulty`] storage under the pool and lets the input schedule
//!   faults too.
//! - [`run_page_load`] loads one arbitrary page image through every access
//!   path and checks it is either returned exactly or reported corrupt.
//!
//! # What is checked
//!
//! The model keeps, per page, the latest bytes written (data area and LSN)
//! and the history of every version it has held. The storage stack is
//! `pool → Recorder → Faulty → SharedMemory`: the recorder notes each
//! write that `Faulty` tore (left only a prefix on the medium), and the
//! harness reads the medium (`SharedMemory`) directly.
//!
//! - **Reads.** A read, write guard or validated optimistic read returns
//!   the page's latest bytes. A page whose medium image a torn write may
//!   have damaged (a *suspect* page) may instead come back as
//!   `Error::Corrupt`, or as a version it really held (the torn image can
//!   happen to equal an older or newer whole version); never as other
//!   bytes.
//! - **Errors.** `Error::Read` / `Write` / `Sync` only when `Faulty`
//!   injected a read / write / sync fault during that operation;
//!   `Error::NoFreeFrame` never (the harness never asks for a frame while
//!   it holds a guard on every frame, and the wait is long);
//!   `PageOutOfRange` exactly for pages past the end;
//!   `OutOfBounds` exactly for accesses past the data area. Nothing else,
//!   and never a panic.
//! - **Acknowledged writes.** A write is *acknowledged* when a flush
//!   covering its page (`flush(page)`, `flush_file`, `flush_all` or
//!   `close`) that started after the write returned `Ok`. At that moment
//!   the medium must hold exactly the page's latest bytes with a valid
//!   checksum (for every page that is not suspect: a write that `Faulty`
//!   silently tore and reported as done is a lie no pool can detect at
//!   write time). After a crash (the medium is copied as it is and the
//!   pool abandoned) or a drop and reopen, every page that is not suspect
//!   must load as exactly what the medium holds, and that version must be
//!   its acknowledged version or a later one: no acknowledged write is
//!   ever lost, even when faults failed flushes in between.
//! - **No leaks.** After the sequence, faults are cleared, every page is
//!   read and written again through the pool (so every frame still
//!   cycles), `flush_all` and `close` must succeed, and a fresh pool over
//!   the medium must read every page's latest bytes.

use std::hash::{Hash, Hasher};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::Arbitrary;
use pagepool::{BufferPool, Error, FileId, MemoryStorage, PageId, PageMut, PageRef, PoolConfig, Storage, PAGE_DATA_SIZE, PAGE_SIZE};
use pagepool::testing::{FaultController, FaultKind, Faulty, IoOp};

/// Files each pool opens.
pub const FILES: usize = 2;
/// Data area plus LSN: the part of a page the caller controls.
pub const IMAGE: usize = PAGE_DATA_SIZE + 8;
/// Operations run per input at most.
const MAX_OPS: usize = 256;

/// Whether `image` (a whole page as stored) passes the pool's check for
/// page `page_no`, per the on-disk format in `pagepool`'s `page` module:
/// all zero (never written), or magic `PGP1` at 4092 and a CRC-32C of
/// bytes `0..4088` followed by the page number at 4088.
pub fn image_is_valid(image: &[u8], page_no: u64) -> bool {
    if image[PAGE_SIZE - 4..] != *b"PGP1" {
        return image.iter().all(|&b| b == 0);
    }
    let crc = crc32c::crc32c(&image[..IMAGE]);
    let crc = crc32c::crc32c_append(crc, &page_no.to_le_bytes());
    image[IMAGE..IMAGE + 4] == crc.to_le_bytes()
}

/// Stamps a valid trailer (checksum and magic) into `image`.
pub fn stamp(image: &mut [u8], page_no: u64) {
    image[PAGE_SIZE - 4..].copy_from_slice(b"PGP1");
    let crc = crc32c::crc32c(&image[..IMAGE]);
    let crc = crc32c::crc32c_append(crc, &page_no.to_le_bytes());
    image[IMAGE..IMAGE + 4].copy_from_slice(&crc.to_le_bytes());
}

/// One in-memory medium, shared by every pool opened over it.
#[derive(Debug, Clone, Default)]
pub struct SharedMemory(pub Arc<MemoryStorage>);

impl SharedMemory {
    /// Page `page_no` as stored.
    pub fn image(&self, page_no: u64) -> Vec<u8> {
        let mut page = vec![0u8; PAGE_SIZE];
        self.0.read_page(page_no, &mut page).unwrap();
        page
    }

    /// A copy of the medium as it is now: what survives a crash.
    pub fn snapshot(&self) -> SharedMemory {
        let copy = SharedMemory::default();
        for page_no in 0..self.0.page_count().unwrap() {
            copy.0.write_page(page_no, &self.image(page_no)).unwrap();
        }
        copy
    }
}

impl Storage for SharedMemory {
    fn page_count(&self) -> io::Result<u64> {
        self.0.page_count()
    }
    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_page(page_no, buf)
    }
    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        self.0.write_page(page_no, buf)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync()
    }
}

/// One page write as the recorder saw it.
#[derive(Debug, Clone)]
struct WriteRecord {
    file: usize,
    page_no: u64,
    /// `Faulty` left only a prefix of the page on the medium.
    torn: bool,
    /// The write reported success.
    ok: bool,
    /// Data area and LSN of the page written.
    image: Vec<u8>,
}

/// Notes every page write and whether `Faulty` tore it.
#[derive(Debug)]
struct Recorder {
    inner: Box<dyn Storage>,
    faults: Option<Arc<FaultController>>,
    file: usize,
    log: Arc<Mutex<Vec<WriteRecord>>>,
}

impl Storage for Recorder {
    fn page_count(&self) -> io::Result<u64> {
        self.inner.page_count()
    }
    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_page(page_no, buf)
    }
    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        let torn_before = self.faults.as_ref().map(|f| f.stats().torn_writes);
        let result = self.inner.write_page(page_no, buf);
        let torn = torn_before != self.faults.as_ref().map(|f| f.stats().torn_writes);
        self.log.lock().unwrap().push(WriteRecord {
            file: self.file,
            page_no,
            torn,
            ok: result.is_ok(),
            image: buf[..IMAGE.min(buf.len())].to_vec(),
        });
        result
    }
    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}

/// Which storage operation a fault targets.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum OpSel {
    /// Reads.
    Read,
    /// Writes.
    Write,
    /// Syncs.
    Sync,
}

/// A fault kind, mapped onto one that applies to the operation.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum KindSel {
    /// `EIO`.
    Eio,
    /// `ENOSPC`.
    NoSpace,
    /// `ENOSPC` when extending.
    NoSpaceOnExtend,
    /// A short transfer of this many bytes.
    Short(u16),
    /// A torn write of this many bytes, silent or not.
    Torn(u16, bool),
    /// A two-step write (no pause).
    Split(u16),
    /// A tiny delay.
    Latency,
}

impl OpSel {
    fn op(self) -> IoOp {
        match self {
            OpSel::Read => IoOp::Read,
            OpSel::Write => IoOp::Write,
            OpSel::Sync => IoOp::Sync,
        }
    }
}

impl KindSel {
    fn kind_for(self, op: IoOp) -> FaultKind {
        let bytes = |b: u16| usize::from(b) % (PAGE_SIZE + 1);
        let kind = match self {
            KindSel::Eio => FaultKind::Eio,
            KindSel::NoSpace => FaultKind::NoSpace,
            KindSel::NoSpaceOnExtend => FaultKind::NoSpaceOnExtend,
            KindSel::Short(b) => FaultKind::Short { bytes: bytes(b) },
            KindSel::Torn(b, silent) => FaultKind::Torn {
                bytes: bytes(b),
                silent,
            },
            KindSel::Split(b) => FaultKind::Split {
                bytes: bytes(b),
                pause: Duration::ZERO,
            },
            KindSel::Latency => FaultKind::Latency(Duration::from_nanos(1)),
        };
        if kind.applies_to(op) {
            kind
        } else {
            FaultKind::Eio
        }
    }
}

/// A change to the fault schedule.
#[derive(Arbitrary, Debug, Clone)]
pub enum FaultOp {
    /// `fail_after(op, skip, kind, count)`.
    Next {
        /// Operation.
        op: OpSel,
        /// Kind.
        kind: KindSel,
        /// Calls let through first.
        skip: u8,
        /// Calls failed.
        count: u8,
    },
    /// `set_probability(op, kind, percent / 255, seed)`.
    Chance {
        /// Operation.
        op: OpSel,
        /// Kind.
        kind: KindSel,
        /// Probability in 255ths.
        percent: u8,
        /// Generator seed.
        seed: u64,
    },
    /// `clear()`.
    Clear,
}

/// One step of a fuzz input. Page numbers are taken modulo the file's
/// page count, except 240 and above, which name pages past the end.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// `allocate`, then fill the new page with a byte.
    Allocate {
        /// File index.
        file: u8,
        /// Fill byte (0 leaves the page zero).
        fill: u8,
    },
    /// `write` then `write_at(offset, [byte; len])`.
    Write {
        /// File index.
        file: u8,
        /// Page.
        page: u8,
        /// Offset in the data area (may be out of bounds).
        offset: u16,
        /// Length.
        len: u8,
        /// Byte.
        byte: u8,
    },
    /// `write` then `fill(byte)` and `set_lsn(lsn)`.
    Fill {
        /// File index.
        file: u8,
        /// Page.
        page: u8,
        /// Byte.
        byte: u8,
        /// LSN.
        lsn: u64,
    },
    /// `read`, compare the whole page.
    Read {
        /// File index.
        file: u8,
        /// Page.
        page: u8,
    },
    /// `optimistic`: one u64 and the LSN.
    Optimistic {
        /// File index.
        file: u8,
        /// Page.
        page: u8,
        /// Offset (may be out of bounds).
        offset: u16,
    },
    /// Up to three shared guards held at once.
    ReadMany {
        /// File index.
        file: u8,
        /// Pages.
        pages: [u8; 3],
    },
    /// Hold a shared guard on one page while writing another.
    ReadThenWrite {
        /// File index.
        file: u8,
        /// Page read.
        read: u8,
        /// Page written.
        write: u8,
        /// Byte written at offset 0.
        byte: u8,
    },
    /// `flush(page)`.
    Flush {
        /// File index.
        file: u8,
        /// Page.
        page: u8,
    },
    /// `flush_file`.
    FlushFile {
        /// File index.
        file: u8,
    },
    /// `flush_all`.
    FlushAll,
    /// `close`, then open a new pool over the same media.
    CloseReopen,
    /// Drop the pool (it flushes what it can), then reopen.
    DropReopen,
    /// Crash: keep the media as they are now, abandon the pool, reopen.
    CrashReopen,
    /// Change the fault schedule (ignored without faults).
    Fault(FaultOp),
}

/// A whole fuzz input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// Frames in the pool: 1 + this % 6.
    pub frames: u8,
    /// The operations.
    pub ops: Vec<Op>,
}

fn digest(image: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    image.hash(&mut hasher);
    hasher.finish()
}

/// What the model knows of one page.
#[derive(Debug, Clone)]
struct PageModel {
    /// Data area and LSN the pool should hand out.
    latest: Vec<u8>,
    /// Digests of every version the page has held, in order.
    history: Vec<u64>,
    /// Index in `history` of the acknowledged version.
    acked: usize,
    /// Whether a flush covering the page has returned `Ok` since it was
    /// allocated or loaded (it is then on the medium).
    acked_ever: bool,
    /// A torn write may have damaged the medium's image.
    suspect: bool,
    /// Loaded and found corrupt (only ever for suspect pages).
    corrupt: bool,
}

impl PageModel {
    fn new(latest: Vec<u8>) -> PageModel {
        PageModel {
            history: vec![digest(&latest)],
            latest,
            acked: 0,
            acked_ever: false,
            suspect: false,
            corrupt: false,
        }
    }

    fn set(&mut self, latest: Vec<u8>) {
        let d = digest(&latest);
        if self.history.last() != Some(&d) {
            self.history.push(d);
        }
        self.latest = latest;
    }

    fn held(&self, image: &[u8]) -> bool {
        self.history.contains(&digest(image))
    }
}

struct Harness {
    frames: usize,
    with_faults: bool,
    faults: Arc<FaultController>,
    media: Vec<SharedMemory>,
    writes: Arc<Mutex<Vec<WriteRecord>>>,
    files: Vec<FileId>,
    model: Vec<Vec<PageModel>>,
}

/// The page id an input byte names, and whether it is in range.
fn target(page: u8, count: u64) -> (u64, bool) {
    if page >= 240 || count == 0 {
        (count + u64::from(page.saturating_sub(240)), false)
    } else {
        (u64::from(page) % count, true)
    }
}

/// What a write guard saw before and after a store, and the store's
/// result.
type Written = pagepool::Result<(Vec<u8>, Result<(), pagepool::OutOfBounds>, Vec<u8>)>;

/// The fault counters an operation moved.
#[derive(Clone, Copy, Debug)]
struct Delta {
    read: bool,
    write: bool,
    sync: bool,
}

impl Delta {
    const NONE: Delta = Delta {
        read: false,
        write: false,
        sync: false,
    };
}

impl Harness {
    fn new(frames: usize, with_faults: bool) -> Harness {
        Harness {
            frames,
            with_faults,
            faults: FaultController::new(),
            media: (0..FILES).map(|_| SharedMemory::default()).collect(),
            writes: Arc::default(),
            files: Vec::new(),
            model: vec![Vec::new(); FILES],
        }
    }

    fn open(&mut self) -> BufferPool {
        // Generous: a frame on its way back through the epoch must never
        // time out, however slow the machine. The input never holds a
        // guard on every frame, so no wait is ever long.
        let config = PoolConfig::new(self.frames).frame_wait_timeout(std::time::Duration::from_millis(2_000));
        let pool = BufferPool::open(config).unwrap();
        self.files.clear();
        for (index, medium) in self.media.iter().enumerate() {
            let (storage, faults): (Box<dyn Storage>, _) = if self.with_faults {
                let faulty = Faulty::with_controller(Box::new(medium.clone()), self.faults.clone());
                (Box::new(faulty), Some(self.faults.clone()))
            } else {
                (Box::new(medium.clone()), None)
            };
            let recorder = Recorder {
                inner: storage,
                faults,
                file: index,
                log: self.writes.clone(),
            };
            let file = pool.open_storage(Box::new(recorder)).unwrap();
            assert_eq!(file.index(), index);
            self.files.push(file);
        }
        pool
    }

    fn file(&self, file: u8) -> usize {
        usize::from(file) % FILES
    }

    fn page(&self, file: usize, page: u8) -> (PageId, usize, bool) {
        let (page_no, in_range) = target(page, self.model[file].len() as u64);
        (
            PageId::new(self.files[file], page_no),
            page_no as usize,
            in_range,
        )
    }

    /// Runs `f`, then marks the pages it tore as suspect (and those it
    /// wrote whole as sound again) and reports which fault kinds fired.
    fn faulted<R>(&mut self, f: impl FnOnce(&mut Harness) -> R) -> (R, Delta) {
        let before = self.faults.stats();
        let result = f(self);
        let after = self.faults.stats();
        self.drain_writes();
        let delta = Delta {
            read: after.read_errors > before.read_errors,
            write: after.write_errors > before.write_errors,
            sync: after.sync_errors > before.sync_errors,
        };
        (result, delta)
    }

    /// Accounts for the page writes the pool issued: a torn one makes its
    /// page suspect; a whole one must carry the page's latest bytes (or,
    /// for a suspect page, a version it held, which the pool reloaded from
    /// a torn medium that happened to be whole) and makes it sound again.
    fn drain_writes(&mut self) {
        let writes = std::mem::take(&mut *self.writes.lock().unwrap());
        for write in writes {
            let file = write.file;
            let Some(page) = self.model[file].get_mut(write.page_no as usize) else {
                continue;
            };
            if write.torn {
                page.suspect = true;
            } else if write.ok {
                if write.image != page.latest {
                    assert!(
                        page.suspect && page.held(&write.image),
                        "file {file} page {}: the pool wrote bytes other than the page's \
                         latest version",
                        write.page_no
                    );
                    page.set(write.image);
                }
                page.suspect = false;
            }
        }
    }

    /// Checks an error against what the operation may report; notes a
    /// page found corrupt.
    fn allowed(&mut self, error: &Error, delta: Delta, held: usize) {
        let ok = match error {
            Error::Read { .. } => delta.read,
            Error::Write { .. } => delta.write,
            Error::Sync { .. } => delta.sync,
            // Never legitimate here: an operation that needs a frame
            // always finds one unlatched.
            Error::NoFreeFrame { .. } => false,
            // The page asked for, or one a flush had to load again (pages
            // a failed sync covered are rewritten): only if a torn write
            // may have damaged it.
            Error::Corrupt { page_id, .. } => self
                .model
                .get(page_id.file_id().index())
                .and_then(|model| model.get(page_id.page_no() as usize))
                .is_some_and(|p| p.suspect),
            _ => false,
        };
        assert!(
            ok,
            "unexpected error {error} (held {held} guards, {delta:?})"
        );
        if let Error::Corrupt { page_id, .. } = error {
            let file = page_id.file_id().index();
            self.note_corrupt(file, page_id.page_no() as usize);
        }
    }

    /// Checks bytes the pool handed out for a page (data area and LSN).
    fn check_bytes(&mut self, file: usize, page_no: usize, image: &[u8]) {
        let page = &mut self.model[file][page_no];
        if image == page.latest {
            return;
        }
        assert!(
            page.suspect && page.held(image),
            "file {file} page {page_no}: the pool returned bytes the page never held"
        );
        // The torn image happened to be a whole older or newer version,
        // which the pool now holds.
        page.set(image.to_vec());
        page.suspect = false;
    }

    fn note_corrupt(&mut self, file: usize, page_no: usize) {
        self.model[file][page_no].corrupt = true;
    }

    /// A flush covering these pages returned `Ok`: the medium holds their
    /// latest bytes, validly stamped, and those become acknowledged.
    fn acknowledge(&mut self, file: usize, pages: impl Iterator<Item = usize>) {
        let medium = self.media[file].clone();
        for page_no in pages {
            let page = &mut self.model[file][page_no];
            if page.suspect || page.corrupt {
                continue;
            }
            let image = medium.image(page_no as u64);
            let hole =
                (page_no as u64) < medium.page_count().unwrap() && image.iter().all(|&b| b == 0);
            if hole && page.latest.iter().all(|&b| b == 0) {
                // Loaded from a hole (never written) and still zero: clean,
                // so nothing was written.
                page.acked = page.history.len() - 1;
                page.acked_ever = true;
                continue;
            }
            assert!(
                image_is_valid(&image, page_no as u64),
                "file {file} page {page_no}: flush returned Ok but the medium image is invalid"
            );
            assert!(
                image[..IMAGE] == page.latest[..],
                "file {file} page {page_no}: flush returned Ok but the medium lacks the \
                 latest write"
            );
            page.acked = page.history.len() - 1;
            page.acked_ever = true;
        }
    }

    fn op(&mut self, pool: &mut Option<BufferPool>, op: &Op) {
        match op {
            Op::Allocate { file, fill } => {
                let file = self.file(*file);
                let p = pool.as_ref().unwrap();
                let file_id = self.files[file];
                let (result, delta) = self.faulted(|_| {
                    p.allocate(file_id).map(|(page_id, mut page)| {
                        let fresh = page.iter().all(|&b| b == 0) && page.lsn() == 0;
                        if *fill != 0 {
                            page.fill(*fill);
                        }
                        (page_id, fresh, image_of_mut(&page))
                    })
                });
                match result {
                    Ok((page_id, fresh, image)) => {
                        assert!(fresh, "allocate handed out a page that was not zero");
                        assert_eq!(page_id.page_no() as usize, self.model[file].len());
                        self.model[file].push(PageModel::new(vec![0; IMAGE]));
                        let page_no = self.model[file].len() - 1;
                        self.model[file][page_no].set(image);
                    }
                    Err(error) => self.allowed(&error, delta, 0),
                }
            }
            Op::Write {
                file,
                page,
                offset,
                len,
                byte,
            } => {
                let file = self.file(*file);
                let (page_id, page_no, in_range) = self.page(file, *page);
                let p = pool.as_ref().unwrap();
                let offset = usize::from(*offset) % (PAGE_DATA_SIZE + 64);
                let bytes = vec![*byte; usize::from(*len)];
                let (result, delta) = self.faulted(|_| {
                    p.write(page_id).map(|mut guard| {
                        let before = image_of_mut(&guard);
                        let stored = guard.write_at(offset, &bytes);
                        (before, stored, image_of_mut(&guard))
                    })
                });
                self.after_write(file, page_no, in_range, result, delta, |stored| {
                    assert_eq!(stored.is_ok(), offset + bytes.len() <= PAGE_DATA_SIZE);
                });
            }
            Op::Fill {
                file,
                page,
                byte,
                lsn,
            } => {
                let file = self.file(*file);
                let (page_id, page_no, in_range) = self.page(file, *page);
                let p = pool.as_ref().unwrap();
                let (result, delta) = self.faulted(|_| {
                    p.write(page_id).map(|mut guard| {
                        let before = image_of_mut(&guard);
                        guard.fill(*byte);
                        guard.set_lsn(*lsn);
                        (before, Ok(()), image_of_mut(&guard))
                    })
                });
                self.after_write(file, page_no, in_range, result, delta, |_| {});
            }
            Op::Read { file, page } => {
                let file = self.file(*file);
                let (page_id, page_no, in_range) = self.page(file, *page);
                let p = pool.as_ref().unwrap();
                let (result, delta) =
                    self.faulted(|_| p.read(page_id).map(|guard| image_of(&guard)));
                self.after_read(file, page_no, in_range, result, delta, 0);
            }
            Op::Optimistic { file, page, offset } => {
                let file = self.file(*file);
                let (page_id, page_no, in_range) = self.page(file, *page);
                let p = pool.as_ref().unwrap();
                let offset = usize::from(*offset) % (PAGE_DATA_SIZE + 16);
                let (result, delta) = self
                    .faulted(|_| p.optimistic(page_id, |view| (view.load_u64(offset), view.lsn())));
                match result {
                    Ok((word, lsn)) => {
                        assert!(in_range, "optimistic read of a page past the end");
                        let page = &self.model[file][page_no];
                        assert!(!page.corrupt, "a corrupt page read back");
                        let expected_word = (offset + 8 <= PAGE_DATA_SIZE).then(|| {
                            u64::from_le_bytes(page.latest[offset..offset + 8].try_into().unwrap())
                        });
                        let expected_lsn =
                            u64::from_le_bytes(page.latest[PAGE_DATA_SIZE..].try_into().unwrap());
                        if word.ok() != expected_word || lsn != expected_lsn {
                            // Only a suspect page may differ; read it whole.
                            assert!(page.suspect, "optimistic read returned wrong bytes");
                            let (result, delta) =
                                self.faulted(|_| p.read(page_id).map(|guard| image_of(&guard)));
                            self.after_read(file, page_no, in_range, result, delta, 0);
                        }
                    }
                    Err(error) => self.read_error(error, delta, 0, in_range),
                }
            }
            Op::ReadMany { file, pages } => {
                let file = self.file(*file);
                let p = pool.as_ref().unwrap();
                let targets: Vec<_> = pages.iter().map(|&page| self.page(file, page)).collect();
                let mut guards: Vec<PageRef<'_>> = Vec::new();
                let mut distinct: Vec<PageId> = Vec::new();
                for (page_id, page_no, in_range) in targets {
                    let held = distinct.len();
                    if held >= self.frames && !distinct.contains(&page_id) {
                        // Holding every frame, a miss would wait for the
                        // whole timeout (Error::NoFreeFrame, by design).
                        continue;
                    }
                    let (result, delta) = self.faulted(|_| p.read(page_id));
                    match result {
                        Ok(guard) => {
                            let image = image_of(&guard);
                            if !distinct.contains(&page_id) {
                                distinct.push(page_id);
                            }
                            guards.push(guard);
                            self.after_read(file, page_no, in_range, Ok(image), delta, held);
                        }
                        Err(error) => self.read_error(error, delta, held, in_range),
                    }
                }
                drop(guards);
            }
            Op::ReadThenWrite {
                file,
                read,
                write,
                byte,
            } => {
                let file = self.file(*file);
                let p = pool.as_ref().unwrap();
                let (read_id, read_no, read_in) = self.page(file, *read);
                let (write_id, write_no, write_in) = self.page(file, *write);
                if read_id == write_id || self.frames == 1 {
                    // A thread that writes a page it holds shared waits for
                    // itself: a caller bug the pool does not detect.
                    return;
                }
                let (result, delta) = self.faulted(|_| p.read(read_id));
                let guard = match result {
                    Ok(guard) => guard,
                    Err(error) => return self.read_error(error, delta, 0, read_in),
                };
                self.after_read(file, read_no, read_in, Ok(image_of(&guard)), delta, 0);
                let (result, delta) = self.faulted(|_| {
                    p.write(write_id).map(|mut page| {
                        let before = image_of_mut(&page);
                        let stored = page.store_u8(0, *byte);
                        (before, stored, image_of_mut(&page))
                    })
                });
                self.after_write_held(file, write_no, write_in, result, delta, 1);
                drop(guard);
            }
            Op::Flush { file, page } => {
                let file = self.file(*file);
                let (page_id, page_no, in_range) = self.page(file, *page);
                let p = pool.as_ref().unwrap();
                let (result, delta) = self.faulted(|_| p.flush(page_id));
                match result {
                    Ok(()) if in_range => self.acknowledge(file, std::iter::once(page_no)),
                    Ok(()) => {}
                    Err(Error::PageOutOfRange { .. }) => assert!(!in_range),
                    Err(error) => self.allowed(&error, delta, 0),
                }
            }
            Op::FlushFile { file } => {
                let file = self.file(*file);
                let p = pool.as_ref().unwrap();
                let file_id = self.files[file];
                let (result, delta) = self.faulted(|_| p.flush_file(file_id));
                match result {
                    Ok(()) => self.acknowledge(file, 0..self.model[file].len()),
                    Err(error) => self.allowed(&error, delta, 0),
                }
            }
            Op::FlushAll => {
                let p = pool.as_ref().unwrap();
                let (result, delta) = self.faulted(|_| p.flush_all());
                match result {
                    Ok(()) => self.acknowledge_all(),
                    Err(error) => self.allowed(&error, delta, 0),
                }
            }
            Op::CloseReopen => {
                let p = pool.take().unwrap();
                let (result, delta) = self.faulted(|_| p.close());
                match result {
                    Ok(()) => {
                        self.acknowledge_all();
                        *pool = Some(self.reopen(Reopen::Clean));
                    }
                    Err(closed) => {
                        self.allowed(&closed.error, delta, 0);
                        *pool = Some(*closed.pool);
                    }
                }
            }
            Op::DropReopen => {
                let (_, _) = self.faulted(|_| drop(pool.take()));
                // Without faults, dropping the pool flushes everything.
                let mode = if self.with_faults {
                    Reopen::Crash
                } else {
                    Reopen::Clean
                };
                *pool = Some(self.reopen(mode));
            }
            Op::CrashReopen => {
                let crashed: Vec<SharedMemory> = self.media.iter().map(|m| m.snapshot()).collect();
                // The abandoned pool still flushes when dropped, into the
                // old media, which nobody reads again.
                drop(pool.take());
                std::mem::take(&mut *self.writes.lock().unwrap());
                self.media = crashed;
                *pool = Some(self.reopen(Reopen::Crash));
            }
            Op::Fault(fault) => {
                if !self.with_faults {
                    return;
                }
                match *fault {
                    FaultOp::Next {
                        op,
                        kind,
                        skip,
                        count,
                    } => {
                        let io_op = op.op();
                        self.faults.fail_after(
                            io_op,
                            u64::from(skip % 16),
                            kind.kind_for(io_op),
                            u64::from(count % 8),
                        );
                    }
                    FaultOp::Chance {
                        op,
                        kind,
                        percent,
                        seed,
                    } => {
                        let io_op = op.op();
                        let probability = f64::from(percent) / 255.0 * 0.5;
                        self.faults
                            .set_probability(io_op, kind.kind_for(io_op), probability, seed);
                    }
                    FaultOp::Clear => self.faults.clear(),
                }
            }
        }
    }

    fn acknowledge_all(&mut self) {
        for file in 0..FILES {
            let count = self.model[file].len();
            self.acknowledge(file, 0..count);
        }
    }

    fn after_write(
        &mut self,
        file: usize,
        page_no: usize,
        in_range: bool,
        result: Written,
        delta: Delta,
        check_store: impl FnOnce(&Result<(), pagepool::OutOfBounds>),
    ) {
        if let Ok((_, stored, _)) = &result {
            check_store(stored);
        }
        self.after_write_held(file, page_no, in_range, result, delta, 0);
    }

    fn after_write_held(
        &mut self,
        file: usize,
        page_no: usize,
        in_range: bool,
        result: Written,
        delta: Delta,
        held: usize,
    ) {
        match result {
            Ok((before, _, after)) => {
                assert!(in_range, "write latched a page past the end");
                assert!(!self.model[file][page_no].corrupt, "a corrupt page latched");
                self.check_bytes(file, page_no, &before);
                self.model[file][page_no].set(after);
            }
            Err(error) => self.read_error(error, delta, held, in_range),
        }
    }

    fn after_read(
        &mut self,
        file: usize,
        page_no: usize,
        in_range: bool,
        result: pagepool::Result<Vec<u8>>,
        delta: Delta,
        held: usize,
    ) {
        match result {
            Ok(image) => {
                assert!(in_range, "read a page past the end");
                assert!(
                    !self.model[file][page_no].corrupt,
                    "a corrupt page read back"
                );
                self.check_bytes(file, page_no, &image);
            }
            Err(error) => self.read_error(error, delta, held, in_range),
        }
    }

    fn read_error(&mut self, error: Error, delta: Delta, held: usize, in_range: bool) {
        match error {
            Error::PageOutOfRange { .. } => assert!(!in_range, "{error} for a page in range"),
            _ if !in_range => panic!("page past the end gave {error}, not PageOutOfRange"),
            _ => self.allowed(&error, delta, held),
        }
    }

    /// Opens a new pool over the media and verifies what every page
    /// loads as (through a separate pool without faults).
    fn reopen(&mut self, mode: Reopen) -> BufferPool {
        let pool = self.open();
        let verifier = BufferPool::open(PoolConfig::new(2)).unwrap();
        for file in 0..FILES {
            let medium = self.media[file].clone();
            let count = medium.page_count().unwrap() as usize;
            let file_id = verifier.open_storage(Box::new(medium.clone())).unwrap();
            for (page_no, page) in self.model[file].iter().enumerate().skip(count) {
                assert!(
                    !page.acked_ever,
                    "file {file} page {page_no}: an acknowledged page is past the end of \
                     the medium"
                );
            }
            self.model[file].truncate(count);
            for page_no in 0..count {
                let loaded = verifier
                    .read(PageId::new(file_id, page_no as u64))
                    .map(|g| image_of(&g));
                let page = &mut self.model[file][page_no];
                let torn = page.suspect || page.corrupt;
                match loaded {
                    Ok(image) => {
                        if torn {
                            assert!(
                                page.held(&image),
                                "file {file} page {page_no}: a torn page loaded as bytes it \
                                 never held"
                            );
                        } else if mode == Reopen::Clean {
                            assert!(
                                image == page.latest,
                                "file {file} page {page_no}: the pool closed cleanly but the \
                                 reopened page differs"
                            );
                        } else {
                            let raw = medium.image(page_no as u64);
                            assert_eq!(image[..], raw[..IMAGE], "load differs from the medium");
                            let d = digest(&image);
                            let at = page.history.iter().rposition(|&h| h == d);
                            assert!(
                                at.is_some_and(|at| at >= page.acked),
                                "file {file} page {page_no}: reopened at version {at:?}, older \
                                 than the acknowledged one ({}): an acknowledged write was lost",
                                page.acked
                            );
                        }
                        *page = PageModel::new(image);
                        page.acked_ever = true;
                    }
                    Err(Error::Corrupt { .. }) => {
                        assert!(
                            torn,
                            "file {file} page {page_no}: corrupt without a torn write"
                        );
                        page.suspect = true;
                        page.corrupt = true;
                    }
                    Err(other) => panic!("file {file} page {page_no}: reopen read gave {other}"),
                }
            }
        }
        drop(verifier);
        pool
    }
}

/// How the previous pool ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reopen {
    /// `close` returned `Ok` (or a drop without faults): every page as
    /// last written.
    Clean,
    /// A crash, or a drop that may have failed to write: every page at
    /// its acknowledged version or later.
    Crash,
}

fn image_of(page: &PageRef<'_>) -> Vec<u8> {
    let mut image = page.to_vec();
    image.extend_from_slice(&page.lsn().to_le_bytes());
    image
}

fn image_of_mut(page: &PageMut<'_>) -> Vec<u8> {
    let mut image = page.to_vec();
    image.extend_from_slice(&page.lsn().to_le_bytes());
    image
}

/// Runs an op sequence; see the crate docs.
pub fn run_ops(input: &Input, with_faults: bool) {
    let frames = 1 + usize::from(input.frames) % 6;
    let mut harness = Harness::new(frames, with_faults);
    let mut pool = Some(harness.open());
    for op in input.ops.iter().take(MAX_OPS) {
        harness.op(&mut pool, op);
    }
    // Faults off: everything must work again, nothing was leaked.
    harness.faults.clear();
    let p = pool.take().unwrap();
    for file in 0..FILES {
        for page_no in 0..harness.model[file].len() {
            if harness.model[file][page_no].corrupt {
                continue;
            }
            let page_id = PageId::new(harness.files[file], page_no as u64);
            let image = p.read(page_id).map(|g| image_of(&g));
            harness.drain_writes();
            match image {
                Ok(image) => harness.check_bytes(file, page_no, &image),
                Err(Error::Corrupt { .. }) if harness.model[file][page_no].suspect => {
                    harness.note_corrupt(file, page_no);
                    continue;
                }
                Err(error) => panic!("file {file} page {page_no} after the faults: {error}"),
            }
            let mut guard = p.write(page_id).unwrap();
            harness.drain_writes();
            guard.store_u8(0, 0xEE).unwrap();
            let image = image_of_mut(&guard);
            drop(guard);
            harness.model[file][page_no].set(image);
        }
    }
    let flushed = p.flush_all();
    harness.drain_writes();
    match flushed {
        Ok(()) => {
            harness.acknowledge_all();
            p.close().unwrap();
            harness.reopen(Reopen::Clean);
        }
        // A page that a failed sync covered is rewritten from memory (the
        // frame, or the image retained at eviction), never reloaded from
        // the medium, so once the faults clear the flush must succeed
        // (tests/faults.rs,
        // `a_page_lost_to_a_failed_sync_does_not_wedge_later_flushes`).
        Err(error) => panic!("flush_all after the faults cleared: {error}"),
    }
}

/// Loads one page image (possibly with its checksum fixed up and then
/// bits flipped) through every access path: it must come back exactly, if
/// valid, or as `Error::Corrupt`; nothing else, never a panic.
pub fn run_page_load(page_no: u8, fix_checksum: bool, flips: &[u16], bytes: &[u8]) {
    let page_no = u64::from(page_no % 4);
    let mut image = vec![0u8; PAGE_SIZE];
    let n = bytes.len().min(PAGE_SIZE);
    image[..n].copy_from_slice(&bytes[..n]);
    if fix_checksum {
        stamp(&mut image, page_no);
    }
    for &bit in flips.iter().take(8) {
        let bit = usize::from(bit) % (PAGE_SIZE * 8);
        image[bit / 8] ^= 1 << (bit % 8);
    }
    let valid = image_is_valid(&image, page_no);
    let medium = SharedMemory::default();
    for other in 0..4 {
        medium.0.write_page(other, &[0u8; PAGE_SIZE]).unwrap();
    }
    medium.0.write_page(page_no, &image).unwrap();
    let pool = BufferPool::open(PoolConfig::new(1)).unwrap();
    let file = pool.open_storage(Box::new(medium.clone())).unwrap();
    let page_id = PageId::new(file, page_no);
    let expect = |result: pagepool::Result<Vec<u8>>, path: &str| match result {
        Ok(got) => {
            assert!(valid, "{path}: an invalid page was returned as data");
            assert_eq!(got[..], image[..IMAGE], "{path}: wrong bytes");
        }
        Err(Error::Corrupt { page_id: p, .. }) => {
            assert!(!valid, "{path}: a valid page reported corrupt");
            assert_eq!(p, page_id);
        }
        Err(other) => panic!("{path}: {other}"),
    };
    expect(pool.read(page_id).map(|g| image_of(&g)), "read");
    // Evict it (one frame) so the next paths load it again.
    let other = PageId::new(file, (page_no + 1) % 4);
    drop(pool.read(other).unwrap());
    expect(
        pool.optimistic(page_id, |view| {
            let mut data = vec![0u8; PAGE_DATA_SIZE];
            view.copy_to(0, &mut data).unwrap();
            data.extend_from_slice(&view.lsn().to_le_bytes());
            data
        }),
        "optimistic",
    );
    drop(pool.read(other).unwrap());
    expect(pool.write(page_id).map(|g| image_of_mut(&g)), "write");
    // Hits of a valid page agree too.
    if valid {
        expect(pool.read(page_id).map(|g| image_of(&g)), "read hit");
        let sum = pool.optimistic(page_id, |view| view.sum_u64()).unwrap();
        let expected = image[..PAGE_DATA_SIZE]
            .chunks(8)
            .map(|w| {
                let mut word = [0u8; 8];
                word[..w.len()].copy_from_slice(w);
                u64::from_le_bytes(word)
            })
            .fold(0u64, u64::wrapping_add);
        assert_eq!(sum, expected, "sum_u64");
    }
    // The pool wrote nothing back (a read never dirties).
    assert_eq!(medium.image(page_no), image);
    pool.close().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(frames: u8, ops: Vec<Op>) -> Input {
        Input { frames, ops }
    }

    fn write(page: u8, byte: u8) -> Op {
        Op::Write {
            file: 0,
            page,
            offset: 8,
            len: 100,
            byte,
        }
    }

    fn fault(op: OpSel, kind: KindSel, count: u8) -> Op {
        Op::Fault(FaultOp::Next {
            op,
            kind,
            skip: 0,
            count,
        })
    }

    #[test]
    fn model_follows_every_kind_of_reopen() {
        let mut ops = Vec::new();
        for page in 0..5u8 {
            ops.push(Op::Allocate {
                file: 0,
                fill: page,
            });
            ops.push(Op::Allocate { file: 1, fill: 0 });
        }
        ops.extend([
            write(1, 9),
            Op::FlushAll,
            write(2, 7),
            Op::CrashReopen,
            Op::Read { file: 0, page: 2 },
            write(3, 3),
            Op::DropReopen,
            Op::ReadMany {
                file: 0,
                pages: [0, 1, 2],
            },
            Op::ReadThenWrite {
                file: 0,
                read: 0,
                write: 4,
                byte: 1,
            },
            Op::CloseReopen,
            Op::Read { file: 0, page: 250 },
            Op::Optimistic {
                file: 0,
                page: 3,
                offset: 4075,
            },
        ]);
        run_ops(&input(1, ops.clone()), false);
        run_ops(&input(2, ops), true);
    }

    #[test]
    fn torn_pages_are_tracked_through_crashes() {
        let ops = vec![
            Op::Allocate { file: 0, fill: 1 },
            Op::Allocate { file: 0, fill: 2 },
            Op::FlushAll,
            write(0, 5),
            fault(OpSel::Write, KindSel::Torn(100, true), 1),
            Op::FlushAll,
            write(1, 6),
            fault(OpSel::Write, KindSel::Short(3000), 1),
            fault(OpSel::Read, KindSel::Eio, 1),
            Op::FlushFile { file: 0 },
            Op::Read { file: 0, page: 0 },
            Op::CrashReopen,
            Op::Read { file: 0, page: 0 },
            Op::Read { file: 0, page: 1 },
            write(0, 1),
        ];
        run_ops(&input(3, ops), true);
    }

    #[test]
    fn errors_only_where_faults_were_injected() {
        let ops = vec![
            Op::Allocate { file: 1, fill: 1 },
            Op::Allocate { file: 1, fill: 2 },
            fault(OpSel::Write, KindSel::NoSpaceOnExtend, 3),
            fault(OpSel::Sync, KindSel::Eio, 1),
            Op::FlushAll,
            Op::CloseReopen,
            Op::Fault(FaultOp::Chance {
                op: OpSel::Read,
                kind: KindSel::Short(10),
                percent: 255,
                seed: 1,
            }),
            Op::Read { file: 1, page: 1 },
            Op::Fault(FaultOp::Clear),
            Op::Read { file: 1, page: 1 },
        ];
        run_ops(&input(0, ops), true);
    }

    #[test]
    #[should_panic(expected = "corrupt without a torn write")]
    fn a_page_damaged_behind_the_pools_back_is_caught() {
        let mut harness = Harness::new(2, false);
        let mut pool = Some(harness.open());
        harness.op(&mut pool, &Op::Allocate { file: 0, fill: 3 });
        harness.op(&mut pool, &Op::FlushAll);
        let mut image = harness.media[0].image(0);
        image[10] ^= 1;
        harness.media[0].0.write_page(0, &image).unwrap();
        harness.op(&mut pool, &Op::CrashReopen);
    }

    #[test]
    #[should_panic(expected = "an acknowledged write was lost")]
    fn a_lost_acknowledged_write_is_caught() {
        let mut harness = Harness::new(2, false);
        let mut pool = Some(harness.open());
        harness.op(&mut pool, &Op::Allocate { file: 0, fill: 3 });
        harness.op(&mut pool, &Op::FlushAll);
        let old = harness.media[0].image(0);
        harness.op(&mut pool, &write(0, 4));
        harness.op(&mut pool, &Op::FlushAll);
        // The medium goes back to the older, valid image.
        harness.media[0].0.write_page(0, &old).unwrap();
        harness.op(&mut pool, &Op::CrashReopen);
    }

    #[test]
    fn page_load_accepts_valid_and_rejects_damaged_images() {
        run_page_load(1, true, &[], &[7u8; 300]);
        run_page_load(2, true, &[5], &[7u8; 300]);
        run_page_load(3, false, &[], &[1, 2, 3]);
        run_page_load(0, false, &[], &[]);
        run_page_load(0, true, &[32767], &[0xFF; 5000]);
    }
}
