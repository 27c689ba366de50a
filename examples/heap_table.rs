//! A table of variable-length records in slotted heap pages, end to end:
//! load it into a file, flush and close, reopen, verify, then scan it with
//! several threads in three ways and print records/s for each:
//!
//! - `shared`: a shared latch per page, records read in place in the frame
//!   (`HeapPageView` over the `PageRef`, no copy);
//! - `optimistic-page`: one optimistic read per page that copies the data
//!   area, then a `HeapPageView` over the validated copy;
//! - `optimistic-record`: one optimistic read per record
//!   (`heap::read_record`: header, slot and record only).
//!
//! ```sh
//! cargo run --release --example heap_table -- [--records N] [--threads T]
//!     [--seconds S] [--pool-mib M] [--path FILE]
//! ```
//!
//! The file defaults to `target/heap_table.db` (O_DIRECT; falls back to
//! buffered I/O, and says so, on a file system that refuses it).

#[cfg(not(any(loom, feature = "shuttle")))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    table::main()
}

#[cfg(any(loom, feature = "shuttle"))]
fn main() {
    eprintln!("heap_table needs the default build (no loom, no shuttle)");
}

#[cfg(not(any(loom, feature = "shuttle")))]
mod table {
    use std::error::Error;
    use std::hint::black_box;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use pagepool::heap::{self, HeapError, HeapPageMut, HeapPageView};
    use pagepool::{BufferPool, FileId, IoMode, PageId, PoolConfig, PAGE_DATA_SIZE, PAGE_SIZE};

    struct Args {
        records: u64,
        threads: usize,
        seconds: f64,
        pool_mib: usize,
        path: PathBuf,
    }

    fn args() -> Result<Args, Box<dyn Error>> {
        let mut args = Args {
            records: 200_000,
            threads: std::thread::available_parallelism().map_or(4, |n| n.get().min(4)),
            seconds: 0.5,
            pool_mib: 64,
            path: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/heap_table.db"),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--records" => args.records = value.parse()?,
                "--threads" => args.threads = value.parse::<usize>()?.max(1),
                "--seconds" => args.seconds = value.parse()?,
                "--pool-mib" => args.pool_mib = value.parse()?,
                "--path" => args.path = value.into(),
                _ => return Err(format!("unknown flag {flag}").into()),
            }
        }
        Ok(args)
    }

    /// The `n`th record: its id, then 8–232 bytes of text (deterministic).
    fn record(n: u64, out: &mut Vec<u8>) {
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let len = 8 + next() % 225;
        out.clear();
        out.extend_from_slice(&n.to_le_bytes());
        out.extend((0..len).map(|_| b'a' + (next() % 26) as u8));
    }

    /// Order-independent digest of a set of records (sum of FNV-1a).
    fn digest(record: &[u8]) -> u64 {
        record.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        })
    }

    fn open(args: &Args) -> Result<(BufferPool, FileId), Box<dyn Error>> {
        let config = || PoolConfig::with_mib(args.pool_mib);
        let pool = BufferPool::open(config())?;
        match pool.open_file(&args.path) {
            Ok(file) => Ok((pool, file)),
            Err(pagepool::Error::DirectIoUnsupported { .. }) => {
                eprintln!("note: O_DIRECT refused here; using buffered I/O");
                let pool = BufferPool::open(config().io_mode(IoMode::Buffered))?;
                let file = pool.open_file(&args.path)?;
                Ok((pool, file))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Loads the table; returns its page count, bytes and digest.
    fn load(
        pool: &BufferPool,
        file: FileId,
        records: u64,
    ) -> Result<(u64, u64, u64), Box<dyn Error>> {
        let (mut bytes, mut sum) = (0u64, 0u64);
        let mut buf = Vec::new();
        let (_, mut page) = pool.allocate(file)?;
        let mut heap = HeapPageMut::init(&mut page)?;
        let mut pages = 1;
        for n in 0..records {
            record(n, &mut buf);
            match heap.insert(&buf) {
                Ok(_) => {}
                Err(HeapError::PageFull { .. }) => {
                    drop(page);
                    (_, page) = pool.allocate(file)?;
                    heap = HeapPageMut::init(&mut page)?;
                    heap.insert(&buf)?;
                    pages += 1;
                }
                Err(e) => return Err(e.into()),
            }
            bytes += buf.len() as u64;
            sum = sum.wrapping_add(digest(&buf));
        }
        drop(page);
        Ok((pages, bytes, sum))
    }

    #[derive(Clone, Copy, Debug)]
    enum Mode {
        Shared,
        OptimisticPage,
        OptimisticRecord,
    }

    impl Mode {
        fn name(self) -> &'static str {
            match self {
                Mode::Shared => "shared",
                Mode::OptimisticPage => "optimistic-page",
                Mode::OptimisticRecord => "optimistic-record",
            }
        }
    }

    /// Scans one page in `mode`, calling `each` on every record; returns
    /// the number of records.
    fn scan_page(
        pool: &BufferPool,
        page_id: PageId,
        mode: Mode,
        snapshot: &mut [u8; PAGE_DATA_SIZE],
        mut each: impl FnMut(&[u8]),
    ) -> Result<u64, Box<dyn Error>> {
        let mut count = 0;
        match mode {
            Mode::Shared => {
                let page = pool.read(page_id)?;
                for record in HeapPageView::new(&page)?.records() {
                    each(record?.1);
                    count += 1;
                }
            }
            Mode::OptimisticPage => {
                pool.optimistic(page_id, |view| view.copy_to(0, snapshot))??;
                for record in HeapPageView::new(snapshot)?.records() {
                    each(record?.1);
                    count += 1;
                }
            }
            Mode::OptimisticRecord => {
                for slot in 0.. {
                    match heap::read_record(pool, page_id, slot, snapshot) {
                        Ok(Some(len)) => {
                            each(&snapshot[..len]);
                            count += 1;
                        }
                        Ok(None) => {}
                        Err(HeapError::NoSuchSlot { .. }) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(count)
    }

    /// One pass over the table in `mode`: its record count and digest.
    fn verify(
        pool: &BufferPool,
        file: FileId,
        pages: u64,
        mode: Mode,
    ) -> Result<(u64, u64), Box<dyn Error>> {
        let mut snapshot = [0u8; PAGE_DATA_SIZE];
        let (mut count, mut sum) = (0, 0u64);
        for page_no in 0..pages {
            count += scan_page(pool, PageId::new(file, page_no), mode, &mut snapshot, |r| {
                sum = sum.wrapping_add(digest(r))
            })?;
        }
        Ok((count, sum))
    }

    /// `threads` threads scan the table in `mode` for `seconds`, each from
    /// its own starting page; returns records/s.
    fn throughput(
        pool: &BufferPool,
        file: FileId,
        pages: u64,
        mode: Mode,
        args: &Args,
    ) -> Result<f64, Box<dyn Error>> {
        let total = AtomicU64::new(0);
        let run_for = Duration::from_secs_f64(args.seconds);
        let start = Instant::now();
        std::thread::scope(|s| -> Result<(), Box<dyn Error>> {
            let workers: Vec<_> = (0..args.threads as u64)
                .map(|t| {
                    let total = &total;
                    s.spawn(move || -> Result<(), String> {
                        let _pin = pool.pin_thread();
                        let mut snapshot = [0u8; PAGE_DATA_SIZE];
                        let mut page_no = t * pages / args.threads as u64;
                        let (mut count, mut ids) = (0u64, 0u64);
                        while start.elapsed() < run_for {
                            for _ in 0..64 {
                                let page_id = PageId::new(file, page_no);
                                count += scan_page(pool, page_id, mode, &mut snapshot, |r| {
                                    ids = ids.wrapping_add(r[0] as u64 + r.len() as u64)
                                })
                                .map_err(|e| e.to_string())?;
                                page_no = (page_no + 1) % pages;
                            }
                        }
                        black_box(ids);
                        total.fetch_add(count, Ordering::Relaxed);
                        Ok(())
                    })
                })
                .collect();
            for worker in workers {
                worker.join().map_err(|_| "scan thread panicked")??;
            }
            Ok(())
        })?;
        Ok(total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
    }

    fn rate(per_sec: f64) -> String {
        match per_sec {
            r if r >= 1e6 => format!("{:.1} M", r / 1e6),
            r if r >= 1e3 => format!("{:.1} k", r / 1e3),
            r => format!("{r:.0} "),
        }
    }

    pub fn main() -> Result<(), Box<dyn Error>> {
        let args = args()?;
        if let Some(dir) = args.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(&args.path);

        let (pool, file) = open(&args)?;
        let started = Instant::now();
        let (pages, bytes, sum) = load(&pool, file, args.records)?;
        let loaded = started.elapsed();
        let started = Instant::now();
        pool.close()?;
        let closed = started.elapsed();
        println!(
            "heap_table: {} records of 16-240 bytes ({:.1} MB) in {pages} heap pages ({:.1} MB) of {}",
            args.records,
            bytes as f64 / 1e6,
            (pages * PAGE_SIZE as u64) as f64 / 1e6,
            args.path.display()
        );
        println!(
            "load       {:>8.3} s   {}records/s",
            loaded.as_secs_f64(),
            rate(args.records as f64 / loaded.as_secs_f64())
        );
        println!(
            "close      {:>8.3} s   (write-back + fdatasync)",
            closed.as_secs_f64()
        );

        let (pool, file) = open(&args)?;
        if pool.page_count(file)? != pages {
            return Err(format!(
                "reopened file has {} pages, not {pages}",
                pool.page_count(file)?
            )
            .into());
        }
        let started = Instant::now();
        for mode in [Mode::Shared, Mode::OptimisticPage, Mode::OptimisticRecord] {
            let (count, got) = verify(&pool, file, pages, mode)?;
            if (count, got) != (args.records, sum) {
                return Err(format!(
                    "{}: read back {count} records, digest {got:x}, expected {} and {sum:x}",
                    mode.name(),
                    args.records
                )
                .into());
            }
        }
        println!(
            "reopen     {:>8.3} s   verified every record in 3 modes (first pass cold: {} page reads)",
            started.elapsed().as_secs_f64(),
            pool.stats().io_reads
        );

        println!(
            "scan with {} threads, {} s per mode (pool {} MiB, all pages resident):",
            args.threads, args.seconds, args.pool_mib
        );
        for mode in [Mode::Shared, Mode::OptimisticPage, Mode::OptimisticRecord] {
            let per_sec = throughput(&pool, file, pages, mode, &args)?;
            println!("  {:<18} {:>10}records/s", mode.name(), rate(per_sec));
        }
        pool.close()?;
        Ok(())
    }
}
