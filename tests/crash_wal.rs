//! Crash test with a write-ahead log (issue 15): a child process changes
//! pages through the pool with the background writer and fuzzy
//! checkpoints running, logging every change first; the parent kills it
//! at random, recovers from the last checkpoint with the log and the
//! recovery writes, and checks that every logged change is there and
//! every torn page repaired.
//!
//! The log is a test-only one (`Log`): fixed 32-byte records appended to
//! a file, written and `fdatasync`ed in groups (at a commit, and whenever
//! the pool's WAL hook asks for an LSN not yet durable). A change sets
//! every word of a page's data area to one value, so its record is a
//! full-page image in 8 bytes: redo of a record restores the whole page,
//! torn or not.
//!
//! The child (this binary run again with only `wal_child` selected):
//! - latches the page, appends the change's record (its index is the
//!   LSN), writes the page and sets its LSN, releases it: the log record
//!   is written while the page is latched, as `dirty_pages` and
//!   `flush_until` require;
//! - extends the file with `allocate` when a change goes past its end;
//! - commits (log flush) every few changes, and every so often runs a
//!   fuzzy checkpoint: `L` = the next LSN, `flush_until(L)`, then a
//!   checkpoint record naming `L` as the redo start, flushed;
//! - in half of the rounds its data file writes reach the disk in two
//!   steps with a pause between (`FaultKind::Split`), so kills tear pages.
//!
//! The parent's recovery: the redo start is the last checkpoint record's
//! `L` (0 if none); every record at or after it whose page is torn or
//! carries an older LSN is redone with `extend_file` and `write_new`
//! (the page is not read: it may be torn); then `flush_all`. The check:
//! every page holds exactly its last logged change (value in every word,
//! LSN), and no page is torn. The log then goes on in the next round, so
//! recovery also runs over recovered data.
//!
//! Kills per run: `PAGEPOOL_CRASH_KILLS` (default 200). Reproduce a
//! failure with the printed seed: `PAGEPOOL_SEED=<seed> cargo test --test crash_wal`.

mod common;

use common::{env_u64, mix};

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pagepool::testing::{FaultKind, Faulty, IoOp};
use pagepool::{
    BufferPool, DirectFile, Error, FileId, IoMode, PageId, PoolConfig, WriterConfig, PAGE_DATA_SIZE,
};

/// Pages the child spreads its changes over.
const PAGES: u64 = 24;
/// Frames of the child's pool: fewer than the pages, so pages are evicted
/// (by the background writer's cleaning, mostly) all the time.
const CHILD_FRAMES: usize = 8;
const RECORD_BYTES: usize = 32;
const UPDATE: u32 = 1;
const CHECKPOINT: u32 = 2;
const ENV_DIR: &str = "PAGEPOOL_WAL_CHILD";
const ENV_SEED: &str = "PAGEPOOL_WAL_SEED";
const ENV_SPLIT: &str = "PAGEPOOL_WAL_SPLIT";
const DATA_WORDS: usize = PAGE_DATA_SIZE / 8;

/// One log record: an update of `page` to `value` (every word), or a
/// checkpoint whose redo starts at `page` (an LSN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    lsn: u64,
    page: u64,
    value: u64,
    kind: u32,
}

impl Record {
    fn check(&self) -> u32 {
        mix(self.lsn ^ mix(self.page ^ mix(self.value ^ u64::from(self.kind)))) as u32
    }

    fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut bytes = [0; RECORD_BYTES];
        bytes[0..8].copy_from_slice(&self.lsn.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.page.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.value.to_le_bytes());
        bytes[24..28].copy_from_slice(&self.kind.to_le_bytes());
        bytes[28..32].copy_from_slice(&self.check().to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Record> {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let record = Record {
            lsn: u64_at(0),
            page: u64_at(8),
            value: u64_at(16),
            kind: u32_at(24),
        };
        (record.check() == u32_at(28)).then_some(record)
    }
}

/// Every whole record of the log, up to the first torn or missing one.
fn read_log(path: &Path) -> Vec<Record> {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        file.read_to_end(&mut bytes).unwrap();
    }
    let mut records = Vec::new();
    for (index, chunk) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        match Record::decode(chunk) {
            Some(record) if record.lsn == index as u64 + 1 => records.push(record),
            _ => break,
        }
    }
    records
}

/// The child's log: records buffered in memory until a flush writes and
/// syncs them. LSN n is the n-th record.
struct Log {
    file: File,
    pending: Vec<u8>,
    next_lsn: u64,
    durable_lsn: u64,
}

impl Log {
    fn open(path: &Path) -> Log {
        let records = read_log(path);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .unwrap();
        // Cut a torn tail off before appending.
        file.set_len((records.len() * RECORD_BYTES) as u64).unwrap();
        let next_lsn = records.len() as u64 + 1;
        Log {
            file,
            pending: Vec::new(),
            next_lsn,
            durable_lsn: next_lsn - 1,
        }
    }

    fn append(&mut self, page: u64, value: u64, kind: u32) -> u64 {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        let record = Record {
            lsn,
            page,
            value,
            kind,
        };
        self.pending.extend_from_slice(&record.encode());
        lsn
    }

    /// Makes every record up to `lsn` durable (all pending ones).
    fn flush_to(&mut self, lsn: u64) -> std::io::Result<()> {
        if lsn <= self.durable_lsn {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let at = (self.durable_lsn as usize * RECORD_BYTES) as u64;
        self.file.write_all_at(&self.pending, at)?;
        self.file.sync_data()?;
        self.durable_lsn = self.next_lsn - 1;
        self.pending.clear();
        Ok(())
    }
}

#[test]
#[ignore = "the WAL crash test's child process; runs only when started by wal_crash_recover_verify"]
fn wal_child() {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let seed = env_u64(ENV_SEED);
    let split = env_u64(ENV_SPLIT) != 0;
    let log = Arc::new(Mutex::new(Log::open(&dir.join("wal.log"))));
    let hook_log = Arc::clone(&log);
    let config = PoolConfig::new(CHILD_FRAMES)
        .background_writer(
            WriterConfig::default()
                .clean_ahead_percent(50)
                .interval(std::time::Duration::from_millis(1))
                .batch_pages(4),
        )
        .wal_hook(move |lsn| hook_log.lock().unwrap().flush_to(lsn));
    let pool = BufferPool::open(config).unwrap();
    let path = dir.join("data.db");
    let file = if split {
        let faulty = Faulty::new(Box::new(DirectFile::open(&path, IoMode::Direct).unwrap()));
        let kind = FaultKind::Split {
            bytes: (seed as usize % 15 + 1) * 256,
            pause: Duration::from_micros(1_000 + seed % 3_000),
        };
        faulty
            .controller()
            .set_probability(IoOp::Write, kind, 0.5, seed);
        pool.open_storage(Box::new(faulty)).unwrap()
    } else {
        pool.open_file(&path).unwrap()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nREADY").unwrap();
    out.flush().unwrap();
    let started = Instant::now();
    let mut rng = seed;
    while started.elapsed() < Duration::from_secs(15) {
        rng = mix(rng);
        let page_no = rng % PAGES;
        while pool.page_count(file).unwrap() <= page_no {
            drop(pool.allocate(file).unwrap());
        }
        let mut page = pool.write(PageId::new(file, page_no)).unwrap();
        // Logged while the page is latched (the WAL rule).
        let value = mix(rng ^ 0x5EED);
        let lsn = log.lock().unwrap().append(page_no, value, UPDATE);
        for word in 0..DATA_WORDS {
            page.store_u64(word * 8, value).unwrap();
        }
        page.set_lsn(lsn);
        drop(page);
        match (rng >> 40) % 64 {
            0..=7 => {
                let mut log = log.lock().unwrap();
                let lsn = log.next_lsn - 1;
                log.flush_to(lsn).unwrap();
            }
            8 => {
                // A fuzzy checkpoint: redo may start at `redo_from` once
                // every change logged before it is on disk.
                let redo_from = log.lock().unwrap().next_lsn;
                pool.flush_until(redo_from).unwrap();
                let mut log = log.lock().unwrap();
                let lsn = log.append(redo_from, 0, CHECKPOINT);
                log.flush_to(lsn).unwrap();
                drop(log);
                writeln!(out, "CHECKPOINT {redo_from}").unwrap();
                out.flush().unwrap();
            }
            _ => {}
        }
    }
}

/// Recovers the data file from the log; returns the pages repaired from a
/// torn state.
fn recover(dir: &Path, records: &[Record]) -> u64 {
    let redo_from = records
        .iter()
        .rev()
        .find(|record| record.kind == CHECKPOINT)
        .map_or(0, |record| record.page);
    let pool = BufferPool::open(PoolConfig::new(16)).unwrap();
    let file = common::open_after_kill(&pool, &dir.join("data.db"));
    let mut repaired = 0;
    for record in records
        .iter()
        .filter(|r| r.kind == UPDATE && r.lsn >= redo_from)
    {
        let page_id = PageId::new(file, record.page);
        let current = if record.page < pool.page_count(file).unwrap() {
            match pool.read(page_id) {
                Ok(page) => Some(page.lsn()),
                Err(Error::Corrupt { .. }) => {
                    repaired += 1;
                    None
                }
                Err(error) => panic!("recovery read of {page_id}: {error}"),
            }
        } else {
            None
        };
        if current.is_some_and(|lsn| lsn >= record.lsn) {
            continue;
        }
        pool.extend_file(file, record.page + 1).unwrap();
        let mut page = pool.write_new(page_id).unwrap();
        for word in 0..DATA_WORDS {
            page.store_u64(word * 8, record.value).unwrap();
        }
        page.set_lsn(record.lsn);
    }
    pool.close().unwrap();
    repaired
}

/// Every page holds its last logged change, whole.
fn verify(dir: &Path, records: &[Record], context: &str) {
    let mut last: Vec<Option<Record>> = vec![None; PAGES as usize];
    for record in records.iter().filter(|r| r.kind == UPDATE) {
        last[record.page as usize] = Some(*record);
    }
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    let file: FileId = pool.open_file(dir.join("data.db")).unwrap();
    let page_count = pool.page_count(file).unwrap();
    for (page_no, last) in last.iter().enumerate() {
        let page_no = page_no as u64;
        let Some(last) = last else { continue };
        assert!(
            page_no < page_count,
            "{context}: page {page_no} (last change {}) is past the file's end {page_count}",
            last.lsn
        );
        let page = pool
            .read(PageId::new(file, page_no))
            .unwrap_or_else(|e| panic!("{context}: page {page_no} after recovery: {e}"));
        assert_eq!(
            page.lsn(),
            last.lsn,
            "{context}: page {page_no} carries LSN {} but its last logged change is {}",
            page.lsn(),
            last.lsn
        );
        let view = page.view();
        for word in 0..DATA_WORDS {
            assert_eq!(
                view.load_u64(word * 8).unwrap(),
                last.value,
                "{context}: page {page_no} word {word} is not its last logged change {}",
                last.lsn
            );
        }
    }
    pool.close().unwrap();
}

/// When the parent kills a child.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after it is ready.
    After(Duration),
    /// Right after it reports its n-th completed checkpoint (pages other
    /// threads were writing during the checkpoint may still be on their
    /// way: the moment a checkpoint that did not wait for them would lose
    /// them).
    AtCheckpoint(u32),
}

/// Runs one child until the kill.
fn run_child(dir: &Path, seed: u64, split: bool, kill: Kill) {
    let stderr_path = dir.join("child.stderr");
    let envs = [
        (ENV_DIR, dir.display().to_string()),
        (ENV_SEED, seed.to_string()),
        (ENV_SPLIT, u64::from(split).to_string()),
    ];
    let mut child = common::spawn_child_test("wal_child", &envs, &stderr_path);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let died = |why: &str| -> ! {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        panic!("the child {why} before it was killed; its stderr:\n{stderr}");
    };
    loop {
        match lines.next() {
            Some(Ok(line)) if line == "READY" => break,
            Some(Ok(_)) => {}
            _ => died("never became ready"),
        }
    }
    match kill {
        Kill::After(run_for) => std::thread::sleep(run_for),
        Kill::AtCheckpoint(wanted) => {
            let mut seen = 0;
            while seen < wanted {
                match lines.next() {
                    Some(Ok(line)) if line.starts_with("CHECKPOINT") => seen += 1,
                    Some(Ok(_)) => {}
                    _ => died("stopped reporting"),
                }
            }
        }
    }
    if let Err(why) = common::kill_child(&mut child) {
        died(&why);
    }
}

#[test]
fn wal_crash_recover_verify() {
    let seed = common::seed("WAL crash test");
    let kills: u64 = std::env::var("PAGEPOOL_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crash-wal-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = seed;
    let (mut repaired, mut checkpoints, mut changes) = (0, 0, 0);
    for round in 0..kills {
        rng = mix(rng);
        let split = rng.is_multiple_of(2);
        let kill = if (rng >> 4).is_multiple_of(3) {
            Kill::AtCheckpoint(1 + (rng >> 8) as u32 % 2)
        } else {
            Kill::After(Duration::from_micros(1_000 + (rng >> 8) % 40_000))
        };
        run_child(&dir, mix(rng ^ round), split, kill);
        let records = read_log(&dir.join("wal.log"));
        let context = format!(
            "seed {seed}, round {round} (split writes: {split}, kill {kill:?}), {} records",
            records.len()
        );
        repaired += recover(&dir, &records);
        verify(&dir, &records, &context);
        checkpoints = records.iter().filter(|r| r.kind == CHECKPOINT).count();
        changes = records.len() - checkpoints;
    }
    eprintln!(
        "WAL crash test: {kills} kills, {changes} logged changes, {checkpoints} checkpoints, \
         {repaired} torn pages repaired, 0 lost"
    );
    assert!(checkpoints > 0, "no checkpoint ever completed");
    let _ = std::fs::remove_dir_all(&dir);
}
