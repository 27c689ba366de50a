//! Many requests on few threads: a tokio server-shaped loop in which each
//! request is a task that reads a few random pages of a file much larger
//! than the pool. A miss suspends its task (not its thread) on its read,
//! so two runtime threads keep dozens of reads in flight; the same
//! requests are then run again with blocking reads on the same two
//! threads, and both rates are printed.
//!
//! ```sh
//! cargo run --release --example async_reads -- [--tasks N] [--pages P]
//!     [--pool-mib M] [--seconds S] [--path FILE]
//! ```
//!
//! The file (default `target/async_reads.db`, `P` pages, 64 Ki by default)
//! is written once and reused; it must be on a file system that takes
//! `O_DIRECT`.

#[cfg(not(any(loom, feature = "shuttle")))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo::main()
}

#[cfg(any(loom, feature = "shuttle"))]
fn main() {
    eprintln!("async_reads needs the default build (no loom, no shuttle)");
}

#[cfg(not(any(loom, feature = "shuttle")))]
mod demo {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use pagepool::{BufferPool, FileId, PageId, PoolConfig};

    struct Args {
        tasks: usize,
        pages: u64,
        pool_mib: usize,
        seconds: f64,
        path: PathBuf,
    }

    fn args() -> Result<Args, Box<dyn std::error::Error>> {
        let mut args = Args {
            tasks: 64,
            pages: 64 * 1024,
            pool_mib: 32,
            seconds: 3.0,
            path: PathBuf::from("target/async_reads.db"),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--tasks" => args.tasks = value.parse()?,
                "--pages" => args.pages = value.parse()?,
                "--pool-mib" => args.pool_mib = value.parse()?,
                "--seconds" => args.seconds = value.parse()?,
                "--path" => args.path = value.into(),
                _ => return Err(format!("unknown flag {flag}").into()),
            }
        }
        Ok(args)
    }

    /// Page `n` holds `n` in its first word.
    fn ensure_file(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
        let want = args.pages * pagepool::PAGE_SIZE as u64;
        if std::fs::metadata(&args.path).is_ok_and(|m| m.len() == want) {
            return Ok(());
        }
        let _ = std::fs::remove_file(&args.path);
        if let Some(dir) = args.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        eprintln!("writing {} ({} pages) ...", args.path.display(), args.pages);
        let pool = BufferPool::open(PoolConfig::with_mib(8))?;
        let file = pool.open_file(&args.path)?;
        for n in 0..args.pages {
            let (_, mut page) = pool.allocate(file)?;
            page.store_u64(0, n)?;
        }
        pool.close()?;
        Ok(())
    }

    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// One request: four random pages, each checked.
    async fn request(
        pool: &Arc<BufferPool>,
        file: FileId,
        pages: u64,
        x: &mut u64,
    ) -> pagepool::Result<()> {
        for _ in 0..4 {
            let page_no = next(x) % pages;
            let page = pool.read_async(PageId::new(file, page_no)).await?;
            assert_eq!(page.view().load_u64(0)?, page_no, "page {page_no}");
        }
        Ok(())
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error>> {
        let args = args()?;
        ensure_file(&args)?;
        let pool = Arc::new(BufferPool::open(PoolConfig::with_mib(args.pool_mib))?);
        let file = pool.open_file(&args.path)?;
        let stats = pool.stats();
        println!(
            "engine {} (fixed buffers: {}), {} MiB pool, {} pages, {} tasks on 2 threads",
            stats.engine.name(),
            stats.fixed_buffers,
            args.pool_mib,
            args.pages,
            args.tasks
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()?;
        let run_for = Duration::from_secs_f64(args.seconds);

        // Async: every task loops on requests until the time is up.
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for task in 0..args.tasks as u64 {
                let (pool, done) = (Arc::clone(&pool), Arc::clone(&done));
                let pages = args.pages;
                tasks.push(tokio::spawn(async move {
                    let mut x = (task + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    while started.elapsed() < run_for {
                        request(&pool, file, pages, &mut x).await?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), pagepool::Error>(())
                }));
            }
            for task in tasks {
                task.await.expect("a task panicked")?;
            }
            Ok::<(), pagepool::Error>(())
        })?;
        let async_rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();

        // Blocking: the same requests, one per thread at a time.
        let done = AtomicU64::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for thread in 0..2u64 {
                let (pool, done) = (&pool, &done);
                s.spawn(move || {
                    let mut x = (thread + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    while started.elapsed() < run_for {
                        for _ in 0..4 {
                            let page_no = next(&mut x) % args.pages;
                            let page = pool.read(PageId::new(file, page_no)).unwrap();
                            assert_eq!(page.view().load_u64(0).unwrap(), page_no);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let blocking_rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        println!(
            "requests/s: async {async_rate:.0}, blocking {blocking_rate:.0} ({:.1}x)",
            async_rate / blocking_rate
        );
        drop(runtime);
        match Arc::try_unwrap(pool) {
            Ok(pool) => pool.close()?,
            Err(_) => unreachable!("every task has ended"),
        }
        Ok(())
    }
}
