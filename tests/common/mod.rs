//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pagepool::{MemoryStorage, Storage};

/// A fresh directory for this test on the project's file system (which
/// accepts `O_DIRECT`; /tmp or /dev/shm may not).
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// In-memory storage that counts I/O, records the buffers it was handed,
/// can fail reads, writes or syncs on demand, and can slow reads down.
#[derive(Debug, Default)]
pub struct Instrumented {
    pub inner: MemoryStorage,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub syncs: AtomicU64,
    pub fail_reads: AtomicBool,
    pub fail_writes: AtomicBool,
    pub fail_syncs: AtomicBool,
    pub read_delay_ms: AtomicU64,
    pub read_buffers: Mutex<Vec<usize>>,
    pub in_flight_reads: AtomicUsize,
    pub max_in_flight_reads: AtomicUsize,
}

impl Instrumented {
    pub fn new() -> Arc<Instrumented> {
        Arc::new(Instrumented::default())
    }
}

/// Shares an `Arc<Instrumented>` with the pool.
#[derive(Debug)]
pub struct Shared(pub Arc<Instrumented>);

impl Storage for Shared {
    fn page_count(&self) -> io::Result<u64> {
        self.0.inner.page_count()
    }

    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        let s = &self.0;
        s.reads.fetch_add(1, Ordering::SeqCst);
        s.read_buffers.lock().unwrap().push(buf.as_ptr() as usize);
        let now = s.in_flight_reads.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight_reads.fetch_max(now, Ordering::SeqCst);
        let delay = s.read_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        s.in_flight_reads.fetch_sub(1, Ordering::SeqCst);
        if s.fail_reads.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc_eio()));
        }
        s.inner.read_page(page_no, buf)
    }

    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        self.0.writes.fetch_add(1, Ordering::SeqCst);
        if self.0.fail_writes.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.0.inner.write_page(page_no, buf)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.syncs.fetch_add(1, Ordering::SeqCst);
        if self.0.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc_eio()));
        }
        Ok(())
    }
}

fn libc_eio() -> i32 {
    5
}

/// A small xorshift generator for test workloads (reproducible per seed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed of a randomized test: `PAGEPOOL_SEED` if set, else the clock;
/// printed so that a failure can be rerun.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("PAGEPOOL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test} seed {seed} (rerun with PAGEPOOL_SEED={seed})");
    seed
}

/// The shuttle suites' iteration count per scheduler: `SHUTTLE_ITERATIONS`,
/// else 10,000.
pub fn shuttle_iterations() -> usize {
    std::env::var("SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// The shuttle suites' schedule seed: `SHUTTLE_SEED`, else 1 (fixed, so
/// that a run, and a planted bug's catch, is the same every time).
pub fn shuttle_seed() -> u64 {
    std::env::var("SHUTTLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A waker that does nothing (`Waker::noop` is newer than the crate's
/// minimum Rust version).
pub fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    std::task::Waker::from(Arc::new(Noop))
}

/// Kills a child process with SIGKILL and reaps it; `Err` says how it
/// had already ended, or ended other than by the kill.
pub fn kill_child(child: &mut std::process::Child) -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!("exited ({status})"));
    }
    // SAFETY: `kill` has no memory-safety preconditions; the pid is our
    // own child, not yet reaped (try_wait above saw it running).
    let killed = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(killed, 0, "kill failed: {}", io::Error::last_os_error());
    let status = child.wait().unwrap();
    if status.signal() != Some(libc::SIGKILL) {
        return Err(format!("exited ({status})"));
    }
    Ok(())
}

/// Opens a data file a killed child had open. Its io_uring writes still
/// in flight at the kill hold the file (and its lock) until the kernel has
/// ended them, a moment after the child is reaped: wait for that.
pub fn open_after_kill(pool: &pagepool::BufferPool, path: &std::path::Path) -> pagepool::FileId {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match pool.open_file(path) {
            Ok(file) => return file,
            Err(pagepool::Error::FileLocked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(error) => panic!("reopening {} after the kill: {error}", path.display()),
        }
    }
}

/// A shuttle configuration that saves a failing schedule in
/// `target/shuttle-failures/` (replayable).
#[cfg(feature = "shuttle")]
pub fn shuttle_config() -> shuttle::Config {
    let mut config = shuttle::Config::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../shuttle-failures");
    std::fs::create_dir_all(&dir).unwrap();
    config.failure_persistence = shuttle::FailurePersistence::File(Some(dir));
    config
}

/// SplitMix64's finaliser: a well-mixed function of `z`.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The environment variable `name`, which must hold a u64.
pub fn env_u64(name: &str) -> u64 {
    std::env::var(name).unwrap().parse().unwrap()
}

/// Starts this test binary again running only the ignored test `test`
/// (a crash test's child), with `envs`, stdout piped, stderr to `stderr`.
pub fn spawn_child_test(
    test: &str,
    envs: &[(&str, String)],
    stderr: &std::path::Path,
) -> std::process::Child {
    use std::process::{Command, Stdio};
    Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .envs(envs.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}
