//! A flush of several files: each round dirties a few pages of each of
//! `--files` files and times `flush_all` (write-back, then one sync a
//! file) on two pools with the io_uring engine: one syncs through the ring
//! (every file's `fdatasync` in flight at once:
//! `ring_sync_min_files(1)`), the other through each file's store, one
//! after the other (`ring_sync_min_files(usize::MAX)`). The writes are the
//! same (ring batches) in both. Rounds alternate, so both see the same
//! machine. Prints the median and the p90 of each: what
//! `PoolConfig::ring_sync_min_files` is set from.
//!
//! ```sh
//! cargo run --release --example flush_files -- [--files N] [--pages P] [--rounds R] [--dir D]
//! ```
//!
//! The files go in `--dir` (default `target/flush_files`), which must take
//! `O_DIRECT`.

#[cfg(not(any(loom, feature = "shuttle")))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo::main()
}

#[cfg(any(loom, feature = "shuttle"))]
fn main() {
    eprintln!("flush_files needs the default build (no loom, no shuttle)");
}

#[cfg(not(any(loom, feature = "shuttle")))]
mod demo {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use pagepool::{BufferPool, FileId, IoEngine, PageId, PoolConfig};

    struct Args {
        files: usize,
        pages: u64,
        rounds: usize,
        dir: PathBuf,
    }

    fn args() -> Result<Args, String> {
        let mut args = Args {
            files: 8,
            pages: 4,
            rounds: 40,
            dir: PathBuf::from("target/flush_files"),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or(format!("{flag} needs a value"))?;
            let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
            match flag.as_str() {
                "--files" => args.files = number()? as usize,
                "--pages" => args.pages = number()?,
                "--rounds" => args.rounds = number()? as usize,
                "--dir" => args.dir = PathBuf::from(&value),
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if args.files == 0 || args.pages == 0 || args.rounds == 0 {
            return Err("--files, --pages and --rounds must be at least 1".into());
        }
        Ok(args)
    }

    struct Setup {
        pool: BufferPool,
        files: Vec<FileId>,
    }

    fn setup(args: &Args, ring_sync_min_files: usize, name: &str) -> pagepool::Result<Setup> {
        let frames = (args.files as u64 * args.pages * 2).max(64) as usize;
        let config = PoolConfig::new(frames)
            .io_engine(IoEngine::Uring)
            .ring_sync_min_files(ring_sync_min_files);
        let pool = BufferPool::open(config)?;
        let mut files = Vec::new();
        for n in 0..args.files {
            let path = args.dir.join(format!("{name}-{n}.db"));
            let _ = std::fs::remove_file(&path);
            let file = pool.open_file(&path)?;
            for _ in 0..args.pages {
                drop(pool.allocate(file)?);
            }
            files.push(file);
        }
        pool.flush_all()?;
        Ok(Setup { pool, files })
    }

    /// Dirties every page, then times the flush.
    fn round(setup: &Setup, pages: u64, value: u64) -> pagepool::Result<Duration> {
        for &file in &setup.files {
            for page_no in 0..pages {
                setup
                    .pool
                    .write(PageId::new(file, page_no))?
                    .store_u64(0, value)?;
            }
        }
        let started = Instant::now();
        setup.pool.flush_all()?;
        Ok(started.elapsed())
    }

    fn quantile(times: &mut [Duration], q: f64) -> Duration {
        times.sort_unstable();
        times[((times.len() - 1) as f64 * q).round() as usize]
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error>> {
        let args = args()?;
        std::fs::create_dir_all(&args.dir)?;
        let ring = setup(&args, 1, "ring")?;
        let sync = setup(&args, usize::MAX, "store")?;
        let (mut ring_times, mut sync_times) = (Vec::new(), Vec::new());
        for n in 0..args.rounds {
            ring_times.push(round(&ring, args.pages, n as u64)?);
            sync_times.push(round(&sync, args.pages, n as u64)?);
        }
        let syncs = |setup: &Setup| setup.pool.stats().io_syncs;
        println!(
            "flush_all of {} files x {} dirty pages, {} rounds each, alternating",
            args.files, args.pages, args.rounds
        );
        for (name, setup, times) in [
            ("syncs through the ring, at once", &ring, &mut ring_times),
            (
                "syncs through the stores, one by one",
                &sync,
                &mut sync_times,
            ),
        ] {
            println!(
                "{name:45} median {:>8.2?}  p90 {:>8.2?}  ({} syncs)",
                quantile(times, 0.5),
                quantile(times, 0.9),
                syncs(setup)
            );
        }
        let ratio = quantile(&mut sync_times, 0.5).as_secs_f64()
            / quantile(&mut ring_times, 0.5).as_secs_f64();
        println!("stores / ring, median: {ratio:.2}x (above 1: the ring is faster)");
        Ok(())
    }
}
