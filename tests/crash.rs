//! Crash test (issue 5): a child process writes pages to a real `O_DIRECT`
//! file and acknowledges each successful `flush_all()`; the parent kills it
//! with SIGKILL at random moments, reopens the file and checks that every
//! page holds at least what the last acknowledged flush made durable, and
//! that a torn page is reported as `Error::Corrupt`, never returned.
//!
//! The child is this test binary run again with only `child_writer`
//! selected and `PAGEPOOL_CRASH_CHILD` naming the data file. Every page
//! write stores one sequence number in every word of the page's data area
//! (and as its LSN), so a page mixing two writes is recognisable even
//! where a checksum would miss it. The page a sequence number goes to is a
//! function of the seed, so the parent knows what each acknowledged flush
//! covered. Half of the rounds wrap the file in `Faulty` writes that reach
//! the disk in two steps with a pause between, so kills do land inside a
//! page write and leave torn pages behind.
//!
//! Reproduce a failure with the printed seed: `PAGEPOOL_SEED=<seed> cargo
//! test --test crash`.

mod common;

use common::{env_u64, mix};

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pagepool::testing::{FaultKind, Faulty, IoOp};
use pagepool::{
    BufferPool, DirectFile, Error, IoMode, PageId, PoolConfig, PAGE_DATA_SIZE, PAGE_SIZE,
};

/// Pages in the data file.
const PAGES: u64 = 24;
/// Frames of the child's pool: fewer than the pages, so eviction writes too.
const CHILD_FRAMES: usize = 6;
/// Kills (and reopen checks) per run.
const ROUNDS: u64 = 30;
/// Sequence numbers of round `r` start at `r * ROUND_SPAN + 1`.
const ROUND_SPAN: u64 = 1 << 32;
/// The longest a child runs if nobody kills it.
const CHILD_LIFETIME: Duration = Duration::from_secs(15);

const ENV_PATH: &str = "PAGEPOOL_CRASH_CHILD";
const ENV_SEED: &str = "PAGEPOOL_CRASH_SEED";
const ENV_BASE: &str = "PAGEPOOL_CRASH_BASE";
const ENV_SPLIT: &str = "PAGEPOOL_CRASH_SPLIT";

/// The page sequence number `seq` is written to.
fn page_of(seed: u64, seq: u64) -> u64 {
    mix(seed ^ mix(seq)) % PAGES
}

/// Whether the child calls `flush_all` after writing `seq`.
fn flushes_after(seed: u64, seq: u64) -> bool {
    mix(seed.rotate_left(7) ^ seq).is_multiple_of(6)
}

/// Words of the data area.
const DATA_WORDS: usize = PAGE_DATA_SIZE / 8;

fn page_bytes(seq: u64) -> Vec<u8> {
    seq.to_le_bytes().repeat(DATA_WORDS)
}

fn words(data: &[u8]) -> impl Iterator<Item = u64> + '_ {
    data[..DATA_WORDS * 8]
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
}

/// The child: writes forever, acknowledging each `flush_all` that
/// returned `Ok` with "ACK <seq>" on stdout (every write up to `seq` was
/// made before that flush started). Does nothing unless run by the parent.
#[test]
#[ignore = "the crash test's child process; runs only when started by crash_kill_reopen_verify"]
fn child_writer() {
    let Some(path) = std::env::var_os(ENV_PATH) else {
        return;
    };
    let seed = env_u64(ENV_SEED);
    let base = env_u64(ENV_BASE);
    let split = env_u64(ENV_SPLIT) != 0;
    let pool = BufferPool::open(PoolConfig::new(CHILD_FRAMES)).unwrap();
    let file = if split {
        let direct = DirectFile::open(&path, IoMode::Direct).unwrap();
        let faulty = Faulty::new(Box::new(direct));
        let pause = Duration::from_micros(500 + seed % 1500);
        let kind = FaultKind::Split {
            bytes: (seed as usize % 15 + 1) * 256,
            pause,
        };
        faulty
            .controller()
            .set_probability(IoOp::Write, kind, 0.5, seed);
        pool.open_storage(Box::new(faulty)).unwrap()
    } else {
        pool.open_file(&path).unwrap()
    };
    while pool.page_count(file).unwrap() < PAGES {
        drop(pool.allocate(file).unwrap());
    }
    let mut out = std::io::stdout().lock();
    // A line of its own: libtest has printed "test child_writer ... ".
    writeln!(out, "\nREADY").unwrap();
    out.flush().unwrap();
    let started = Instant::now();
    let mut seq = base;
    while started.elapsed() < CHILD_LIFETIME {
        let mut page = pool.write(PageId::new(file, page_of(seed, seq))).unwrap();
        page.write_at(0, &page_bytes(seq)).unwrap();
        page.set_lsn(seq);
        drop(page);
        if flushes_after(seed, seq) {
            pool.flush_all().unwrap();
            writeln!(out, "ACK {seq}").unwrap();
            out.flush().unwrap();
        }
        seq += 1;
    }
}

/// What the parent learnt from one child.
struct Round {
    /// The highest acknowledged sequence number, if any.
    acked: Option<u64>,
    acks: usize,
}

impl Round {
    fn note(&mut self, line: &str) {
        if let Some(seq) = line.strip_prefix("ACK ") {
            let seq: u64 = seq.trim().parse().unwrap();
            if let Some(previous) = self.acked {
                assert!(seq > previous, "acks out of order");
            }
            self.acked = Some(seq);
            self.acks += 1;
        }
    }
}

fn run_child(path: &Path, seed: u64, base: u64, split: bool, rng: &mut u64) -> Round {
    let stderr_path = path.with_extension("stderr");
    let envs = [
        (ENV_PATH, path.display().to_string()),
        (ENV_SEED, seed.to_string()),
        (ENV_BASE, base.to_string()),
        (ENV_SPLIT, u64::from(split).to_string()),
    ];
    let mut child = common::spawn_child_test("child_writer", &envs, &stderr_path);
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let child_died = |why: &str| -> ! {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        panic!("the child {why} before it was killed; its stderr:\n{stderr}");
    };
    let mut round = Round {
        acked: None,
        acks: 0,
    };
    // Wait until the child has opened the file and allocated its pages.
    loop {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line == "READY" => break,
            Ok(line) => round.note(&line),
            Err(_) => child_died("never became ready"),
        }
    }
    // Kill at a random time, or right after a random number of acks.
    *rng = mix(*rng);
    if (*rng).is_multiple_of(3) {
        let wanted = 1 + (*rng >> 8) % 6;
        let deadline = Instant::now() + Duration::from_secs(3);
        while (round.acks as u64) < wanted && Instant::now() < deadline {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
                round.note(&line);
            }
        }
    } else {
        std::thread::sleep(Duration::from_micros(2_000 + (*rng >> 8) % 200_000));
    }
    if let Err(why) = common::kill_child(&mut child) {
        child_died(&why);
    }
    reader.join().unwrap();
    // Acks written before the kill are in the pipe: read them all.
    while let Ok(line) = lines.try_recv() {
        round.note(&line);
    }
    round
}

/// The distinct sequence numbers in a page's data area.
fn distinct(data: &[u8]) -> Vec<u64> {
    let mut values: Vec<u64> = words(data).collect();
    values.sort_unstable();
    values.dedup();
    values
}

#[test]
fn crash_kill_reopen_verify() {
    let started = Instant::now();
    let seed = common::seed("crash test");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crash-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.db");

    // What each page held after the last reopen: the floor for the next
    // round until an ack raises it.
    let mut floor = vec![0u64; PAGES as usize];
    let mut rng = seed;
    let (mut total_acks, mut torn_pages, mut split_rounds) = (0, 0, 0);
    for round in 0..ROUNDS {
        let base = round * ROUND_SPAN + 1;
        let split = round % 2 == 1;
        split_rounds += u64::from(split);
        let Round { acked, acks } = run_child(&path, seed, base, split, &mut rng);
        total_acks += acks;

        // The floor each page must meet: what it held, raised by every
        // write of this round that an acknowledged flush covered.
        let mut required = floor.clone();
        if let Some(acked) = acked {
            for seq in base..=acked {
                let page_no = page_of(seed, seq) as usize;
                required[page_no] = required[page_no].max(seq);
            }
        }
        // A page holds what it held at the last reopen, or a write of this
        // round meant for it.
        let valid_for = |page_no: u64, value: u64| {
            value == floor[page_no as usize]
                || ((base..base + ROUND_SPAN).contains(&value) && page_of(seed, value) == page_no)
        };

        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = common::open_after_kill(&pool, &path);
        let page_count = pool.page_count(file).unwrap();
        let raw = std::fs::read(&path).unwrap();
        let mut torn = Vec::new();
        let mut next_floor = floor.clone();
        for page_no in 0..PAGES {
            let context = format!(
                "seed {seed}, round {round} (split writes: {split}), page {page_no}, \
                 acked {acked:?}, required {}",
                required[page_no as usize]
            );
            if page_no >= page_count {
                assert_eq!(required[page_no as usize], 0, "{context}: page lost");
                continue;
            }
            match pool.read(PageId::new(file, page_no)) {
                Ok(page) => {
                    let values = distinct(&page);
                    assert_eq!(values.len(), 1, "{context}: a mixed page returned as data");
                    let value = values[0];
                    assert!(valid_for(page_no, value), "{context}: value {value}");
                    assert!(
                        value >= required[page_no as usize],
                        "{context}: holds {value}, an acknowledged write was lost"
                    );
                    assert_eq!(page.lsn(), value, "{context}");
                    next_floor[page_no as usize] = value;
                }
                Err(Error::Corrupt { page_id, .. }) => {
                    assert_eq!(page_id.page_no(), page_no, "{context}");
                    // Torn: the part the interrupted write did not reach
                    // still holds the durable (older) contents.
                    let offset = page_no as usize * PAGE_SIZE;
                    let values = distinct(&raw[offset..offset + PAGE_SIZE]);
                    assert!(values.len() <= 2, "{context}: torn page {values:?}");
                    for &value in &values {
                        assert!(valid_for(page_no, value), "{context}: torn {values:?}");
                    }
                    assert!(
                        values[0] >= required[page_no as usize],
                        "{context}: torn page {values:?} lost an acknowledged write"
                    );
                    torn.push(page_no);
                }
                Err(other) => panic!("{context}: {other}"),
            }
        }
        drop(pool);
        floor = next_floor;
        // Restore torn pages (as recovery from a log would) so the next
        // child can load them.
        if !torn.is_empty() {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            for &page_no in &torn {
                file.write_all_at(&[0u8; PAGE_SIZE], page_no * PAGE_SIZE as u64)
                    .unwrap();
                floor[page_no as usize] = 0;
            }
            file.sync_all().unwrap();
            torn_pages += torn.len();
        }
    }
    eprintln!(
        "{ROUNDS} kills ({split_rounds} with two-step writes), {total_acks} acknowledged \
         flushes, {torn_pages} torn pages reported as corrupt, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(total_acks > 0, "no flush was ever acknowledged");
    std::fs::remove_dir_all(&dir).unwrap();
}
