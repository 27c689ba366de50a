//! The io_uring engine: many page reads in flight from few threads.
//!
//! # Shape
//!
//! One ring per pool. Any thread submits: it reserves room for its reads
//! in the completion queue (`in_flight` never exceeds the CQ's size, so
//! the kernel never has to hold completions back), pushes one entry per
//! read under the submission lock and, after the lock, enters the kernel
//! once for the batch, or, if another thread is entering at that moment,
//! leaves its entries to that thread, which enters once more
//! (`combining.rs`: one thread in the kernel's submission path at a time,
//! one entry for many submitters' reads). One thread of the engine's, the
//! reaper, is the only reader of the completion queue: it sleeps in `io_uring_enter` until at least one
//! read completes, then reports every completed read to the pool (which
//! publishes the page and wakes its waiters) and frees its reservation.
//!
//! # Requests
//!
//! Reads handed over together whose pages follow each other in one file
//! (a scan's read-ahead) go as one request: a run of up to
//! [`MAX_RUN_PAGES`] frames read by one `READV`, one device request of
//! many pages instead of many of one (a single page is a `READ_FIXED`).
//! Each entry's `user_data` is a `Box<Run>` (its reads, and the iovecs the
//! kernel reads through) given to the kernel (`Box::into_raw`) and taken
//! back by the reaper (`Box::from_raw`) exactly once, when its completion
//! is reaped; `0` is the stop request. A request that the kernel ends with
//! `EAGAIN` or `EINTR` is submitted again under the same box; any other
//! error, and every success, is reported, frame by frame: a run's bytes
//! are its frames' in order (a frame past the bytes read was past the end
//! of the file), its error every frame's.
//!
//! # Writes
//!
//! A batch of writes ([`Uring::write`]) goes the same way, grouped into
//! runs the same way (`WRITE_FIXED` for one page, `WRITEV` for several),
//! but its completions are not reported to the pool: each run carries the
//! batch's [`WriteWait`] and its first write's index in the batch, the
//! reaper records each write's result there, and the writer, asleep on
//! the wait, wakes when the last one is in. A run that wrote fewer bytes
//! than it holds fails its frames past the bytes written (`WriteZero`).
//!
//! # Syncs
//!
//! [`Uring::sync`] submits one `FSYNC` with `IORING_FSYNC_DATASYNC` (an
//! `fdatasync`) per file, all at once, and waits on a [`WriteWait`] the
//! same way: a flush of many files waits for the slowest sync, not for
//! their sum (the pool uses it from `ring_sync_min_files` files on). Its
//! run holds no frame (`reads` is empty); the descriptor is in
//! [`Waiter::Sync`].
//!
//! # Fixed buffers
//!
//! At start the frame arena is registered as fixed buffers, in chunks of
//! at most 1 GiB (the kernel's limit per buffer): a read into a frame is
//! then `READ_FIXED` with the chunk's index, and the kernel does not pin
//! and unpin the frame's page on every read. Registration pins the whole
//! arena in memory; where the memory-lock limit refuses it, the engine
//! logs why and reads with plain `READ` (the answer is in
//! [`Uring::describe`]).
//!
//! # Stopping
//!
//! Dropping the engine submits the stop request and joins the reaper,
//! which exits only once the stop request and every read submitted before
//! it have been reaped: no read is left in flight into the frames.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use io_uring::{opcode, squeue, types, IoUring};

use super::combining::{Combining, Turn};
use super::engine::{CompletionFn, FrameIo};
use super::MAX_RUN_PAGES;
use crate::page::PAGE_SIZE;
use crate::sync::lock;

/// The largest buffer the kernel registers (`SZ_1G`).
const FIXED_CHUNK_BYTES: usize = 1 << 30;
/// The kernel's limit on registered buffers (`IORING_MAX_REG_BUFFERS`).
const MAX_FIXED_CHUNKS: usize = 1 << 14;
/// `user_data` of the stop request.
const STOP: u64 = 0;

/// One request: frames of consecutive pages of one file, or a sync.
struct Run {
    reads: Vec<FrameIo>,
    /// For a run of several frames: one iovec per frame, which the kernel
    /// reads through until the request completes (the box keeps them).
    iovecs: Vec<libc::iovec>,
    /// Who hears of its end.
    waiter: Waiter,
}

/// Who a request's completion goes to.
enum Waiter {
    /// A read: reported to the pool, frame by frame.
    Read,
    /// A write: the batch waiting for it, and the index of the run's first
    /// write in the batch.
    Write(Arc<WriteWait>, usize),
    /// A sync of the file `fd`: the batch of syncs waiting for it, and its
    /// index there.
    Sync(Arc<WriteWait>, usize, std::os::fd::RawFd),
}

/// A batch of writes in flight: each write's result, and how many are
/// still out.
struct WriteWait {
    state: Mutex<(Vec<Option<io::Result<usize>>>, usize)>,
    done: std::sync::Condvar,
}

impl WriteWait {
    fn new(count: usize) -> WriteWait {
        WriteWait {
            state: Mutex::new(((0..count).map(|_| None).collect(), count)),
            done: std::sync::Condvar::new(),
        }
    }

    /// Records the result of write `index`.
    fn record(&self, index: usize, result: io::Result<usize>) {
        let mut state = lock(&self.state);
        debug_assert!(state.0[index].is_none(), "write {index} reported twice");
        state.0[index] = Some(result);
        state.1 -= 1;
        if state.1 == 0 {
            self.done.notify_all();
        }
    }

    /// Waits for every write (each is reaped exactly once, so it ends).
    fn wait(&self) -> Vec<io::Result<usize>> {
        let mut state = lock(&self.state);
        while state.1 > 0 {
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::take(&mut state.0)
            .into_iter()
            .map(|result| result.expect("every write reported"))
            .collect()
    }
}

/// A running io_uring engine.
pub(crate) struct Uring {
    shared: Arc<Shared>,
    reaper: Option<JoinHandle<()>>,
}

struct Shared {
    ring: IoUring,
    /// Held while pushing entries: the submission queue has one producer
    /// at a time.
    submitting: Mutex<()>,
    /// Requests submitted and not yet reaped; at most `capacity`.
    in_flight: AtomicUsize,
    /// Who enters the kernel for a pushed request (`combining.rs`).
    combining: Combining,
    capacity: usize,
    /// The registered arena, if registration succeeded.
    fixed: Option<FixedArena>,
    /// Why the arena is not registered, if it is not.
    unregistered_because: Option<String>,
}

#[derive(Clone, Copy)]
struct FixedArena {
    base: usize,
    len: usize,
}

impl Uring {
    /// Sets up a ring of `queue_depth` submission entries (the completion
    /// queue is twice that), registers `arena`, and starts the reaper.
    pub(crate) fn start(
        arena: Option<(*mut u8, usize)>,
        queue_depth: u32,
        complete: CompletionFn,
    ) -> io::Result<Uring> {
        let ring = IoUring::builder()
            .setup_cqsize(queue_depth.saturating_mul(2).max(2))
            .build(queue_depth.max(1))?;
        let capacity = ring.params().cq_entries() as usize;
        let (fixed, unregistered_because) = match arena {
            Some((base, len)) => match register(&ring, base, len) {
                Ok(fixed) => (Some(fixed), None),
                Err(error) => {
                    log::info!(
                        "pagepool: the frame arena is not registered with io_uring ({error}); plain reads"
                    );
                    (None, Some(error.to_string()))
                }
            },
            None => (None, Some("no arena".into())),
        };
        let shared = Arc::new(Shared {
            ring,
            submitting: Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            combining: Combining::default(),
            capacity,
            fixed,
            unregistered_because,
        });
        let reap = Arc::clone(&shared);
        let reaper = std::thread::Builder::new()
            .name("pagepool-uring".into())
            .spawn(move || reap.reap(&complete))?;
        Ok(Uring {
            shared,
            reaper: Some(reaper),
        })
    }

    /// Queue depth and whether the arena is registered, for logs.
    pub(crate) fn describe(&self) -> String {
        match &self.shared.unregistered_because {
            None => format!("{} in flight, fixed buffers", self.shared.capacity),
            Some(why) => format!(
                "{} in flight, no fixed buffers: {why}",
                self.shared.capacity
            ),
        }
    }

    /// Whether the arena is registered as fixed buffers.
    pub(crate) fn fixed_buffers(&self) -> bool {
        self.shared.fixed.is_some()
    }

    /// Submits `reads` (runs of consecutive pages as one request each),
    /// in batches as room in the completion queue allows.
    pub(crate) fn submit(&self, reads: &[FrameIo]) {
        self.submit_runs(runs(reads));
    }

    /// Writes `writes` (runs of consecutive pages as one request each)
    /// and waits until every one has ended: one result per write.
    pub(crate) fn write(&self, writes: &[FrameIo]) -> Vec<io::Result<usize>> {
        if writes.is_empty() {
            return Vec::new();
        }
        let wait = Arc::new(WriteWait::new(writes.len()));
        let mut runs = runs(writes);
        let mut first = 0;
        for run in &mut runs {
            run.waiter = Waiter::Write(Arc::clone(&wait), first);
            first += run.reads.len();
        }
        self.submit_runs(runs);
        wait.wait()
    }

    /// Syncs (`fdatasync`) every file of `fds`, all at once, and waits
    /// until every sync has ended: one result per file, in order.
    pub(crate) fn sync(&self, fds: &[std::os::fd::RawFd]) -> Vec<io::Result<()>> {
        if fds.is_empty() {
            return Vec::new();
        }
        let wait = Arc::new(WriteWait::new(fds.len()));
        let runs = fds
            .iter()
            .enumerate()
            .map(|(index, &fd)| Run {
                reads: Vec::new(),
                iovecs: Vec::new(),
                waiter: Waiter::Sync(Arc::clone(&wait), index, fd),
            })
            .collect();
        self.submit_runs(runs);
        wait.wait()
            .into_iter()
            .map(|result| result.map(|_| ()))
            .collect()
    }

    fn submit_runs(&self, mut runs: Vec<Run>) {
        while !runs.is_empty() {
            let granted = self.shared.reserve(runs.len());
            let later = runs.split_off(granted);
            let entries = runs.into_iter().map(|run| {
                // The iovecs' buffer does not move with the box.
                let entry = self.shared.entry(&run);
                entry.user_data(Box::into_raw(Box::new(run)) as u64)
            });
            self.shared.push(entries);
            self.shared.enter();
            runs = later;
        }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        self.shared.reserve(1);
        let stop = opcode::Nop::new().build().user_data(STOP);
        self.shared.push(std::iter::once(stop));
        self.shared.enter();
        if let Some(reaper) = self.reaper.take() {
            if reaper.join().is_err() {
                log::error!("pagepool: the io_uring reaper panicked");
            }
        }
    }
}

/// Groups `reads` into runs: consecutive reads of one descriptor whose
/// offsets follow each other, at most [`MAX_RUN_PAGES`] each.
fn runs(reads: &[FrameIo]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for read in reads {
        if let Some(run) = runs.last_mut() {
            let last = run.reads[run.reads.len() - 1];
            if run.reads.len() < MAX_RUN_PAGES
                && last.fd == read.fd
                && last.offset + PAGE_SIZE as u64 == read.offset
            {
                run.reads.push(*read);
                continue;
            }
        }
        runs.push(Run {
            reads: vec![*read],
            iovecs: Vec::new(),
            waiter: Waiter::Read,
        });
    }
    for run in &mut runs {
        if run.reads.len() > 1 {
            run.iovecs = run
                .reads
                .iter()
                .map(|read| libc::iovec {
                    iov_base: read.buf.cast(),
                    iov_len: PAGE_SIZE,
                })
                .collect();
        }
    }
    runs
}

/// Registers `[base, base + len)` as fixed buffers of at most
/// [`FIXED_CHUNK_BYTES`] each.
fn register(ring: &IoUring, base: *mut u8, len: usize) -> io::Result<FixedArena> {
    if len.div_ceil(FIXED_CHUNK_BYTES) > MAX_FIXED_CHUNKS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the arena is larger than the kernel registers",
        ));
    }
    let iovecs: Vec<libc::iovec> = (0..len)
        .step_by(FIXED_CHUNK_BYTES)
        .map(|start| libc::iovec {
            iov_base: base.wrapping_add(start).cast(),
            iov_len: FIXED_CHUNK_BYTES.min(len - start),
        })
        .collect();
    // The arena outlives the engine: the engine's completion function
    // holds the pool's core, and the reaper is joined before it drops.
    // SAFETY: every iovec lies inside the arena, mapped while the ring lives.
    unsafe { ring.submitter().register_buffers(&iovecs)? };
    Ok(FixedArena {
        base: base as usize,
        len,
    })
}

impl Shared {
    /// Reserves room for up to `want` requests (at least one), waiting for
    /// the reaper while the completion queue is full. Every reserved
    /// request completes, so the wait ends.
    fn reserve(&self, want: usize) -> usize {
        let mut backoff = 0u32;
        loop {
            let in_flight = self.in_flight.load(Ordering::Relaxed);
            let room = self.capacity.saturating_sub(in_flight);
            if room > 0 {
                let granted = room.min(want);
                if self
                    .in_flight
                    .compare_exchange(
                        in_flight,
                        in_flight + granted,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return granted;
                }
                continue;
            }
            backoff = (backoff + 1).min(10);
            if backoff < 10 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }

    /// The entry that reads `run`: `READV` for several frames, else one
    /// read (fixed if the frame is registered); for a write, the same
    /// with writes; for a sync, an `FSYNC` of its file's data.
    fn entry(&self, run: &Run) -> squeue::Entry {
        if let Waiter::Sync(_, _, fd) = run.waiter {
            return opcode::Fsync::new(types::Fd(fd))
                .flags(types::FsyncFlags::DATASYNC)
                .build();
        }
        let first = &run.reads[0];
        let index = self.fixed_index(first.buf);
        /// One request of `run`, with the opcodes of its direction.
        macro_rules! request {
            ($vectored:ident, $fixed:ident, $plain:ident) => {{
                let fd = types::Fd(first.fd);
                if run.reads.len() > 1 {
                    opcode::$vectored::new(fd, run.iovecs.as_ptr(), run.iovecs.len() as u32)
                        .offset(first.offset)
                        .build()
                } else if let Some(index) = index {
                    opcode::$fixed::new(fd, first.buf, PAGE_SIZE as u32, index)
                        .offset(first.offset)
                        .build()
                } else {
                    opcode::$plain::new(fd, first.buf, PAGE_SIZE as u32)
                        .offset(first.offset)
                        .build()
                }
            }};
        }
        match run.waiter {
            Waiter::Read => request!(Readv, ReadFixed, Read),
            _ => request!(Writev, WriteFixed, Write),
        }
    }

    /// The registered buffer that holds the frame at `buf`, if any.
    fn fixed_index(&self, buf: *mut u8) -> Option<u16> {
        let fixed = self.fixed?;
        let address = buf as usize;
        (address >= fixed.base && address + PAGE_SIZE <= fixed.base + fixed.len)
            .then(|| ((address - fixed.base) / FIXED_CHUNK_BYTES) as u16)
    }

    /// Pushes `entries` (room reserved), entering the kernel early
    /// whenever the submission queue is full; the caller then [`enter`]s
    /// for what is left (the reaper need not: its wait submits).
    ///
    /// [`enter`]: Self::enter
    fn push(&self, entries: impl Iterator<Item = squeue::Entry>) {
        let submitting = lock(&self.submitting);
        // SAFETY: `submitting` is held, so this is the only submission
        // queue handle alive (the reaper never takes one).
        let mut queue = unsafe { self.ring.submission_shared() };
        for entry in entries {
            loop {
                // The entry's buffers are claimed frames (a read), frames
                // latched by the writer that waits for this write, or none
                // (a sync, whose file the waiting syncer keeps open; the
                // stop request); its user data is a box the reaper
                // takes back once, which owns the iovecs of a vectored one.
                // SAFETY: those buffers stay mapped and unstored-to until reaped.
                let pushed = unsafe { queue.push(&entry) };
                if pushed.is_ok() {
                    break;
                }
                queue.sync();
                self.enter_submit();
                queue.sync();
            }
        }
        // Publishes the tail (a release store) before the caller's
        // `enter`, whose RMW the enterer's next one acquires
        // (`combining.rs`, invariant 2).
        queue.sync();
        drop(queue);
        drop(submitting);
    }

    /// Enters the kernel for what this thread just pushed, or leaves it to
    /// the thread entering now, which enters once more for it
    /// (`combining.rs`). The kernel submits every entry published before
    /// it reads the tail, whoever enters, so this runs outside the
    /// submission lock: the next submitter pushes meanwhile instead of
    /// sleeping on the lock for the length of a syscall (and a device
    /// doorbell), and no two submitters spin on the kernel's ring lock.
    fn enter(&self) {
        if self.combining.pushed() == Turn::Left {
            return;
        }
        loop {
            self.enter_submit();
            if !self.combining.again() {
                return;
            }
        }
    }

    /// Submits what is queued; retries what the kernel says to retry.
    fn enter_submit(&self) {
        loop {
            match self.ring.submitter().submit() {
                Ok(_) => return,
                Err(error)
                    if matches!(
                        error.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) =>
                {
                    std::thread::yield_now()
                }
                Err(error) => {
                    // The entries stay queued; the next enter (the
                    // reaper's wait submits too) takes them.
                    log::error!("pagepool: io_uring submit failed: {error}");
                    return;
                }
            }
        }
    }

    /// The reaper: reports completions until stopped with none in flight.
    fn reap(&self, complete: &CompletionFn) {
        let mut stopping = false;
        let mut done: Vec<(u64, i32)> = Vec::with_capacity(self.capacity);
        loop {
            // SAFETY: the reaper is the only thread that takes the
            // completion queue.
            done.extend(
                unsafe { self.ring.completion_shared() }.map(|cqe| (cqe.user_data(), cqe.result())),
            );
            let mut reaped = 0;
            for (user_data, result) in done.drain(..) {
                if user_data == STOP {
                    stopping = true;
                    reaped += 1;
                } else if self.report(user_data, result, complete) {
                    reaped += 1;
                }
            }
            let left = self.in_flight.fetch_sub(reaped, Ordering::AcqRel) - reaped;
            if stopping && left == 0 {
                return;
            }
            if let Err(error) = self.ring.submitter().submit_and_wait(1) {
                if error.raw_os_error() != Some(libc::EINTR) {
                    log::error!("pagepool: io_uring wait failed: {error}");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    /// Reports one completed request, frame by frame, or submits it
    /// again (`EAGAIN`, `EINTR`, `ECANCELED`; then it is still in flight
    /// and this returns false).
    fn report(&self, user_data: u64, result: i32, complete: &CompletionFn) -> bool {
        let raw = user_data as *mut Run;
        // ECANCELED: the thread that entered this request exited and the
        // kernel cancelled what it had not started (a request belongs to
        // the thread that entered it, which with combined entries may be
        // any submitter). Nothing here cancels requests, so it is that:
        // the reaper, which lives as long as the ring, submits it again.
        if result == -libc::EAGAIN || result == -libc::EINTR || result == -libc::ECANCELED {
            // SAFETY: `raw` came from `Box::into_raw` in `submit` and has
            // not been taken back: it is only read here, not freed, and
            // given to the kernel again under the same user data.
            let entry = self.entry(unsafe { &*raw }).user_data(user_data);
            // The reaper's `submit_and_wait`, after this round's reports,
            // submits it (it is still in flight, so the reaper goes on).
            self.push(std::iter::once(entry));
            return false;
        }
        // SAFETY: as above; this completion is the box's last use.
        let run = unsafe { Box::from_raw(raw) };
        if let Waiter::Sync(wait, index, _) = &run.waiter {
            let outcome = if result < 0 {
                Err(io::Error::from_raw_os_error(-result))
            } else {
                Ok(0)
            };
            wait.record(*index, outcome);
            return true;
        }
        if let Waiter::Write(wait, first) = &run.waiter {
            for index in 0..run.reads.len() {
                let outcome = if result < 0 {
                    Err(io::Error::from_raw_os_error(-result))
                } else if (result as usize) < (index + 1) * PAGE_SIZE {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!(
                            "short write: {result} bytes of a {}-page run",
                            run.reads.len()
                        ),
                    ))
                } else {
                    Ok(PAGE_SIZE)
                };
                wait.record(first + index, outcome);
            }
            return true;
        }
        for (index, read) in run.reads.iter().enumerate() {
            let outcome = if result < 0 {
                Err(io::Error::from_raw_os_error(-result))
            } else {
                Ok((result as usize)
                    .saturating_sub(index * PAGE_SIZE)
                    .min(PAGE_SIZE))
            };
            complete(read.frame_id, Some(outcome));
        }
        true
    }
}
