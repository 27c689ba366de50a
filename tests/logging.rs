//! What the pool tells an operator through `log`: the engine at open, a
//! failed write-back, a failed sync and its retry, a corrupt page, a slow
//! frame wait. One logger per process, so one test.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pagepool::testing::{FaultKind, Faulty, IoOp};
use pagepool::{BufferPool, Error, MemoryStorage, PoolConfig};

struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        self.0.lock().unwrap().push((record.level(), line));
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

/// Takes the lines logged so far.
fn take() -> Vec<(log::Level, String)> {
    std::mem::take(&mut *capture().0.lock().unwrap())
}

fn logged(lines: &[(log::Level, String)], level: log::Level, words: &[&str]) -> bool {
    lines
        .iter()
        .any(|(l, line)| *l == level && words.iter().all(|w| line.contains(w)))
}

#[test]
fn the_pool_logs_what_an_operator_must_know() {
    capture();
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    let lines = take();
    assert!(
        logged(&lines, log::Level::Info, &["I/O engine"]),
        "{lines:?}"
    );

    // A failed write-back, then a failed sync and its retry.
    let storage = Faulty::new(Box::new(MemoryStorage::new()));
    let faults = storage.controller();
    let file = pool.open_storage(Box::new(storage)).unwrap();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.store_u64(0, 7).unwrap();
    drop(page);
    faults.fail_next(IoOp::Write, FaultKind::Eio, 1);
    assert!(matches!(pool.flush_all(), Err(Error::Write { .. })));
    let lines = take();
    assert!(
        logged(
            &lines,
            log::Level::Warn,
            &["write-back failed", "stays dirty"]
        ),
        "{lines:?}"
    );
    faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
    assert!(matches!(pool.flush_all(), Err(Error::Sync { .. })));
    pool.flush_all().unwrap();
    let lines = take();
    assert!(
        logged(&lines, log::Level::Error, &["sync of file", "failed"]),
        "{lines:?}"
    );
    assert!(
        logged(&lines, log::Level::Warn, &["retrying", "1 pages again"]),
        "{lines:?}"
    );

    // A corrupt page: a torn write reported as done, synced, evicted, read.
    let mut page = pool.write(page_id).unwrap();
    page.store_u64(8, 8).unwrap();
    drop(page);
    faults.fail_next(
        IoOp::Write,
        FaultKind::Torn {
            bytes: 100,
            silent: true,
        },
        1,
    );
    pool.flush_all().unwrap();
    for _ in 0..8 {
        drop(pool.allocate(file).unwrap());
    }
    pool.flush_all().unwrap();
    assert!(matches!(pool.read(page_id), Err(Error::Corrupt { .. })));
    let lines = take();
    assert!(
        logged(&lines, log::Level::Error, &["corrupt", "checksum"]),
        "{lines:?}"
    );

    // A slow frame wait: every frame latched for longer than the warning.
    let pool = Arc::new(BufferPool::open(PoolConfig::new(2)).unwrap());
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    let pages: Vec<_> = (0..3).map(|_| pool.allocate(file).unwrap().0).collect();
    pool.flush_all().unwrap();
    let held: Vec<_> = pages[..2]
        .iter()
        .map(|&p| pool.read_owned(p).unwrap())
        .collect();
    let waiter = {
        let pool = Arc::clone(&pool);
        let page_id = pages[2];
        std::thread::spawn(move || pool.read(page_id).map(|_| ()))
    };
    std::thread::sleep(Duration::from_millis(400));
    drop(held);
    waiter.join().unwrap().unwrap();
    let lines = take();
    assert!(
        logged(&lines, log::Level::Warn, &["waited", "free frame"]),
        "{lines:?}"
    );
}
