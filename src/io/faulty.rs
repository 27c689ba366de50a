//! Fault injection: a [`Storage`] that makes another one misbehave on
//! purpose, by schedule or by seeded chance. See [`Faulty`].

use std::collections::HashMap;
use std::io;
// The controller's lock guards test bookkeeping, not a protocol of the
// pool: like `sync::PlainCounter` it is always `std`, so it adds no states
// to a model checker's run.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Storage;
use crate::page::PAGE_SIZE;

/// A storage operation, as seen by [`Faulty`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoOp {
    /// [`Storage::read_page`].
    Read,
    /// [`Storage::write_page`].
    Write,
    /// [`Storage::sync`].
    Sync,
}

/// What to inject; see the table in [`Faulty`]'s docs for which operations
/// each applies to ([`FaultKind::applies_to`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Fail with `EIO`, doing nothing.
    Eio,
    /// Fail a write with `ENOSPC`, writing nothing.
    NoSpace,
    /// Fail a write with `ENOSPC` only when it extends the storage (the
    /// page number is at or past the inner storage's page count); other
    /// writes pass and do not use up a scheduled count.
    NoSpaceOnExtend,
    /// A short transfer: only the first `bytes` bytes move. A read leaves
    /// the rest of the buffer as it was and fails with `UnexpectedEof`; a
    /// write leaves the rest of the page on the medium as it was and fails
    /// with `WriteZero`.
    Short {
        /// Bytes transferred (clamped to the page).
        bytes: usize,
    },
    /// A torn write: only the first `bytes` bytes reach the medium. Fails
    /// with `EIO`, or reports success if `silent`.
    Torn {
        /// Bytes that reach the medium (clamped to the page).
        bytes: usize,
        /// Report success although the page is torn.
        silent: bool,
    },
    /// A write that reaches the medium in two steps: the first `bytes`
    /// bytes, then after `pause` the whole page. Succeeds; a crash during
    /// the pause leaves a torn page behind.
    Split {
        /// Bytes written in the first step (clamped to the page).
        bytes: usize,
        /// Time between the two steps.
        pause: Duration,
    },
    /// Sleep this long, then do the operation normally.
    Latency(Duration),
}

impl FaultKind {
    /// Whether this kind can be injected into `op`.
    pub fn applies_to(self, op: IoOp) -> bool {
        match self {
            FaultKind::Eio | FaultKind::Latency(_) => true,
            FaultKind::Short { .. } => op != IoOp::Sync,
            FaultKind::NoSpace
            | FaultKind::NoSpaceOnExtend
            | FaultKind::Torn { .. }
            | FaultKind::Split { .. } => op == IoOp::Write,
        }
    }
}

/// Counts of what a [`FaultController`] saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// `read_page` calls.
    pub reads: u64,
    /// `write_page` calls.
    pub writes: u64,
    /// `sync` calls.
    pub syncs: u64,
    /// Reads failed by an injected fault.
    pub read_errors: u64,
    /// Writes failed by an injected fault.
    pub write_errors: u64,
    /// Syncs failed by an injected fault.
    pub sync_errors: u64,
    /// Writes that left only a prefix of the page on the medium (short and
    /// torn writes, silent or not).
    pub torn_writes: u64,
    /// Torn writes reported as successful: the caller believes the page
    /// was written.
    pub silent_torn_writes: u64,
    /// Writes done in two steps ([`FaultKind::Split`]).
    pub split_writes: u64,
    /// Calls delayed by [`FaultKind::Latency`].
    pub delays: u64,
    /// Page writes undone by a failed sync with the volatile cache on
    /// ([`FaultController::set_volatile_cache`]).
    pub lost_writes: u64,
}

impl FaultStats {
    /// Injected faults that changed an outcome: every injected error plus
    /// every silent torn write. Latency and split writes are not counted.
    pub fn faults(&self) -> u64 {
        self.read_errors + self.write_errors + self.sync_errors + self.silent_torn_writes
    }
}

/// A small seeded generator (SplitMix64): no dependency, reproducible.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
struct Scheduled {
    op: IoOp,
    kind: FaultKind,
    /// Matching calls still to let through before firing.
    skip: u64,
    /// Matching calls still to fail.
    count: u64,
}

#[derive(Debug)]
struct Rule {
    op: IoOp,
    kind: FaultKind,
    probability: f64,
    rng: SplitMix64,
}

#[derive(Debug, Default)]
struct State {
    schedule: Vec<Scheduled>,
    rules: Vec<Rule>,
    stats: FaultStats,
    volatile_cache: bool,
}

/// The schedule and counters of one or more [`Faulty`] storages. Shared
/// through an `Arc`: change it at any time from any thread.
#[derive(Debug, Default)]
pub struct FaultController {
    state: Mutex<State>,
}

/// What to do for one call.
#[derive(Debug, Default)]
struct Decision {
    delay: Duration,
    fault: Option<FaultKind>,
}

impl FaultController {
    /// A controller that injects nothing (yet).
    pub fn new() -> Arc<FaultController> {
        Arc::new(FaultController::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Injects `kind` into the next `count` calls of `op` (for
    /// [`FaultKind::NoSpaceOnExtend`]: the next `count` extending writes).
    ///
    /// # Panics
    ///
    /// If `kind` does not apply to `op` ([`FaultKind::applies_to`]).
    pub fn fail_next(&self, op: IoOp, kind: FaultKind, count: u64) {
        self.fail_after(op, 0, kind, count);
    }

    /// Lets `skip` calls of `op` through, then injects `kind` into the
    /// following `count`. Entries count calls independently and fire in
    /// the order they were added.
    ///
    /// # Panics
    ///
    /// If `kind` does not apply to `op` ([`FaultKind::applies_to`]).
    pub fn fail_after(&self, op: IoOp, skip: u64, kind: FaultKind, count: u64) {
        assert!(
            kind.applies_to(op),
            "{kind:?} cannot be injected into {op:?}"
        );
        if count > 0 {
            self.state().schedule.push(Scheduled {
                op,
                kind,
                skip,
                count,
            });
        }
    }

    /// Injects `kind` into each call of `op` with probability
    /// `probability`, drawn from a generator seeded with `seed`. Replaces
    /// the rule for the same `op` and `kind`; a probability of 0 (or less)
    /// removes it.
    ///
    /// # Panics
    ///
    /// If `kind` does not apply to `op` ([`FaultKind::applies_to`]).
    pub fn set_probability(&self, op: IoOp, kind: FaultKind, probability: f64, seed: u64) {
        assert!(
            kind.applies_to(op),
            "{kind:?} cannot be injected into {op:?}"
        );
        let mut state = self.state();
        state.rules.retain(|r| !(r.op == op && r.kind == kind));
        if probability > 0.0 {
            state.rules.push(Rule {
                op,
                kind,
                probability,
                rng: SplitMix64(seed),
            });
        }
    }

    /// Removes every scheduled fault and every probability rule; the
    /// counters are kept.
    pub fn clear(&self) {
        let mut state = self.state();
        state.schedule.clear();
        state.rules.clear();
    }

    /// With `on`, a sync failed by an injected fault also loses data: every
    /// page written since the storage's last successful sync goes back to
    /// what it held before (a volatile write cache that lost its contents,
    /// or a kernel that dropped the dirty pages of a failed `fdatasync`).
    /// Each [`Faulty`] then keeps the prior image of every page it writes
    /// until the next successful sync. Off by default; [`clear`] leaves it
    /// as it is.
    ///
    /// [`clear`]: FaultController::clear
    pub fn set_volatile_cache(&self, on: bool) {
        self.state().volatile_cache = on;
    }

    fn volatile_cache(&self) -> bool {
        self.state().volatile_cache
    }

    /// Whether any fault is scheduled or any rule is set.
    pub fn is_armed(&self) -> bool {
        let state = self.state();
        !state.schedule.is_empty() || !state.rules.is_empty()
    }

    /// What the controller has seen and injected so far.
    pub fn stats(&self) -> FaultStats {
        self.state().stats
    }

    /// Counts the call and picks its faults. `extending` is asked only
    /// when a [`FaultKind::NoSpaceOnExtend`] entry or rule is consulted.
    fn decide(&self, op: IoOp, extending: impl FnOnce() -> bool) -> Decision {
        let mut state = self.state();
        let state = &mut *state;
        match op {
            IoOp::Read => state.stats.reads += 1,
            IoOp::Write => state.stats.writes += 1,
            IoOp::Sync => state.stats.syncs += 1,
        }
        let mut extending = Some(extending);
        let mut extends = None;
        let mut matches = |kind: FaultKind| {
            kind != FaultKind::NoSpaceOnExtend
                || *extends.get_or_insert_with(|| extending.take().is_some_and(|f| f()))
        };
        let mut decision = Decision::default();
        for entry in &mut state.schedule {
            if entry.op != op || !matches(entry.kind) {
                continue;
            }
            if entry.skip > 0 {
                entry.skip -= 1;
                continue;
            }
            match entry.kind {
                FaultKind::Latency(delay) => decision.delay += delay,
                _ if decision.fault.is_some() => continue,
                kind => decision.fault = Some(kind),
            }
            entry.count -= 1;
        }
        state.schedule.retain(|entry| entry.count > 0);
        for rule in &mut state.rules {
            if rule.op != op || !matches(rule.kind) {
                continue;
            }
            let is_latency = matches!(rule.kind, FaultKind::Latency(_));
            if decision.fault.is_some() && !is_latency {
                continue;
            }
            if rule.rng.next_f64() >= rule.probability {
                continue;
            }
            match rule.kind {
                FaultKind::Latency(delay) => decision.delay += delay,
                kind => decision.fault = Some(kind),
            }
        }
        if !decision.delay.is_zero() {
            state.stats.delays += 1;
        }
        decision
    }

    fn record(&self, update: impl FnOnce(&mut FaultStats)) {
        update(&mut self.state().stats);
    }
}

/// A page-aligned page buffer, so prefix writes work on `O_DIRECT` files.
#[repr(C, align(4096))]
struct AlignedPage([u8; PAGE_SIZE]);

impl std::fmt::Debug for AlignedPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlignedPage")
    }
}

impl AlignedPage {
    fn zeroed() -> Box<AlignedPage> {
        Box::new(AlignedPage([0; PAGE_SIZE]))
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// A [`Storage`] that makes another one misbehave on purpose, by schedule
/// or by seeded chance.
///
/// `Faulty` wraps any storage and consults a [`FaultController`] before
/// every read, write and sync. The controller is shared (`Arc`), so a test
/// keeps a handle and changes the schedule while the pool owns the storage.
///
/// | [`FaultKind`]            | read | write | sync | what happens                                              |
/// |--------------------------|------|-------|------|-----------------------------------------------------------|
/// | `Eio`                    | ✓    | ✓     | ✓    | nothing is done; `EIO` is returned                        |
/// | `NoSpace`                |      | ✓     |      | nothing is written; `ENOSPC`                              |
/// | `NoSpaceOnExtend`        |      | ✓     |      | like `NoSpace`, only for writes past the current end      |
/// | `Short { bytes }`        | ✓    | ✓     |      | read: only a prefix lands in the buffer (the rest is left as it was), `UnexpectedEof`; write: only a prefix reaches the medium, `WriteZero` |
/// | `Torn { bytes, silent }` |      | ✓     |      | only a prefix reaches the medium; `EIO`, or `Ok` if `silent` |
/// | `Split { bytes, pause }` |      | ✓     |      | the prefix reaches the medium, then after `pause` the rest; `Ok` (a crash in between leaves a torn page) |
/// | `Latency(d)`             | ✓    | ✓     | ✓    | sleeps `d`, then does the operation normally              |
///
/// A prefix write reads the old page from the inner storage, overlays the
/// first `bytes` bytes of the new one and writes the merged page: exactly
/// what a medium that tore the write would hold.
///
/// Faults come from two sources, consulted on every call:
///
/// - the schedule ([`FaultController::fail_next`],
///   [`FaultController::fail_after`]): explicit entries, fired in the order
///   they were added;
/// - chance ([`FaultController::set_probability`]): one rule per operation
///   and kind, each with its own seeded generator, so a single-threaded run
///   is reproducible from its seeds.
///
/// At most one fault that changes the outcome is injected per call (the
/// first that fires; the schedule before chance); `Latency` adds up on top.
/// [`FaultController::stats`] counts calls and injected faults.
///
/// By default a failed sync loses nothing: the writes it covered stay on
/// the medium. [`FaultController::set_volatile_cache`] models the worse,
/// real case (a device's volatile write cache, or a kernel that drops the
/// dirty pages of a failed `fdatasync`): every page written since the last
/// successful sync goes back to what it held before, when an injected
/// fault fails the sync.
///
/// ```
/// use pagepool::testing::{FaultKind, Faulty, IoOp};
/// use pagepool::{BufferPool, Error, MemoryStorage, PoolConfig};
///
/// let faulty = Faulty::new(Box::new(MemoryStorage::new()));
/// let faults = faulty.controller();
/// let pool = BufferPool::open(PoolConfig::new(8))?;
/// let file = pool.open_storage(Box::new(faulty))?;
/// let (page_id, mut page) = pool.allocate(file)?;
/// page.store_u64(0, 7)?;
/// drop(page);
///
/// faults.fail_next(IoOp::Write, FaultKind::Eio, 1);
/// assert!(matches!(pool.flush(page_id), Err(Error::Write { .. })));
/// pool.flush(page_id)?; // the page stayed dirty; this writes it
/// assert_eq!(faults.stats().write_errors, 1);
/// # Ok::<(), pagepool::Error>(())
/// ```
#[derive(Debug)]
pub struct Faulty {
    inner: Box<dyn Storage>,
    controller: Arc<FaultController>,
    /// With the volatile cache on: what each page written since the last
    /// successful sync held before that write.
    unsynced: Mutex<HashMap<u64, Box<AlignedPage>>>,
}

impl Faulty {
    /// Wraps `inner` with a fresh controller that injects nothing until
    /// told to.
    pub fn new(inner: Box<dyn Storage>) -> Faulty {
        Faulty::with_controller(inner, FaultController::new())
    }

    /// Wraps `inner` with an existing controller (one schedule for several
    /// files, or for a storage reopened after a simulated restart).
    pub fn with_controller(inner: Box<dyn Storage>, controller: Arc<FaultController>) -> Faulty {
        Faulty {
            inner,
            controller,
            unsynced: Mutex::default(),
        }
    }

    fn unsynced(&self) -> MutexGuard<'_, HashMap<u64, Box<AlignedPage>>> {
        self.unsynced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// With the volatile cache on, remembers what page `page_no` holds
    /// before its first write since the last successful sync.
    fn remember_prior_image(&self, page_no: u64, len: usize) {
        if len != PAGE_SIZE || !self.controller.volatile_cache() {
            return;
        }
        let mut unsynced = self.unsynced();
        if unsynced.contains_key(&page_no) {
            return;
        }
        let mut prior = AlignedPage::zeroed();
        if self.inner.read_page(page_no, &mut prior.0).is_ok() {
            unsynced.insert(page_no, prior);
        }
    }

    /// A sync failed: with the volatile cache on, the writes since the
    /// last successful sync are lost.
    fn lose_unsynced_writes(&self) {
        let lost = std::mem::take(&mut *self.unsynced());
        if !self.controller.volatile_cache() {
            return;
        }
        let mut count = 0;
        for (page_no, prior) in lost {
            if self.inner.write_page(page_no, &prior.0).is_ok() {
                count += 1;
            }
        }
        self.controller.record(|s| s.lost_writes += count);
    }

    /// The controller: keep it to change the schedule while a pool owns
    /// this storage.
    pub fn controller(&self) -> Arc<FaultController> {
        Arc::clone(&self.controller)
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &dyn Storage {
        &*self.inner
    }

    /// Unwraps the inner storage.
    pub fn into_inner(self) -> Box<dyn Storage> {
        self.inner
    }

    /// Writes only the first `bytes` bytes of `buf` as page `page_no`: the
    /// rest of the page keeps what the medium held.
    fn write_prefix(&self, page_no: u64, buf: &[u8], bytes: usize) -> io::Result<()> {
        if buf.len() != PAGE_SIZE {
            // Let the inner storage refuse the buffer with its own error.
            return self.inner.write_page(page_no, buf);
        }
        let mut merged = AlignedPage::zeroed();
        self.inner.read_page(page_no, &mut merged.0)?;
        let bytes = bytes.min(PAGE_SIZE);
        merged.0[..bytes].copy_from_slice(&buf[..bytes]);
        self.inner.write_page(page_no, &merged.0)
    }
}

impl Storage for Faulty {
    fn page_count(&self) -> io::Result<u64> {
        self.inner.page_count()
    }

    fn file_identity(&self) -> Option<super::FileIdentity> {
        self.inner.file_identity()
    }

    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.ring_fd()
    }

    /// Never: every write must pass [`write_page`](Storage::write_page),
    /// where its fault is decided (a torn or short write cannot be made
    /// out of a completion the kernel already wrote in full).
    fn ring_writes(&self) -> bool {
        false
    }

    /// A read an io_uring engine did: the fault is decided here, as
    /// [`read_page`](Storage::read_page) decides it for the other engines
    /// (the same schedule, the same counts). A short read fails with
    /// `UnexpectedEof` and leaves the page's first `bytes` bytes, the rest
    /// zeroed.
    fn complete_read(
        &self,
        page_no: u64,
        buf: &mut [u8],
        result: io::Result<()>,
    ) -> io::Result<()> {
        let result = self.inner.complete_read(page_no, buf, result);
        let decision = self.controller.decide(IoOp::Read, || false);
        if !decision.delay.is_zero() {
            std::thread::sleep(decision.delay);
        }
        match decision.fault {
            None => result,
            Some(FaultKind::Short { bytes }) => {
                let bytes = bytes.min(buf.len());
                buf[bytes..].fill(0);
                self.controller.record(|s| s.read_errors += 1);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("injected short read: {bytes} of {PAGE_SIZE} bytes"),
                ))
            }
            Some(_) => {
                self.controller.record(|s| s.read_errors += 1);
                Err(eio())
            }
        }
    }

    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        let decision = self.controller.decide(IoOp::Read, || false);
        if !decision.delay.is_zero() {
            std::thread::sleep(decision.delay);
        }
        match decision.fault {
            None => self.inner.read_page(page_no, buf),
            Some(FaultKind::Short { bytes }) if buf.len() == PAGE_SIZE => {
                let mut page = AlignedPage::zeroed();
                self.inner.read_page(page_no, &mut page.0)?;
                let bytes = bytes.min(PAGE_SIZE);
                buf[..bytes].copy_from_slice(&page.0[..bytes]);
                self.controller.record(|s| s.read_errors += 1);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("injected short read: {bytes} of {PAGE_SIZE} bytes"),
                ))
            }
            // Not a page-sized buffer: let the inner storage refuse it.
            Some(FaultKind::Short { .. }) => self.inner.read_page(page_no, buf),
            Some(_) => {
                self.controller.record(|s| s.read_errors += 1);
                Err(eio())
            }
        }
    }

    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        let decision = self.controller.decide(IoOp::Write, || {
            self.inner
                .page_count()
                .is_ok_and(|page_count| page_no >= page_count)
        });
        if !decision.delay.is_zero() {
            std::thread::sleep(decision.delay);
        }
        self.remember_prior_image(page_no, buf.len());
        let Some(kind) = decision.fault else {
            return self.inner.write_page(page_no, buf);
        };
        let (result, torn, silent) = match kind {
            FaultKind::NoSpace | FaultKind::NoSpaceOnExtend => (Err(enospc()), false, false),
            FaultKind::Short { bytes } => {
                let written = self.write_prefix(page_no, buf, bytes);
                let reached = written.is_ok();
                let result = written.and_then(|()| {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!(
                            "injected short write: {} of {PAGE_SIZE} bytes",
                            bytes.min(PAGE_SIZE)
                        ),
                    ))
                });
                (result, reached, false)
            }
            FaultKind::Torn { bytes, silent } => {
                let written = self.write_prefix(page_no, buf, bytes);
                let reached = written.is_ok();
                let result = written.and(if silent { Ok(()) } else { Err(eio()) });
                (result, reached, silent && reached)
            }
            FaultKind::Split { bytes, pause } => {
                self.controller.record(|s| s.split_writes += 1);
                let result = self.write_prefix(page_no, buf, bytes).and_then(|()| {
                    std::thread::sleep(pause);
                    self.inner.write_page(page_no, buf)
                });
                return result;
            }
            FaultKind::Eio | FaultKind::Latency(_) => (Err(eio()), false, false),
        };
        self.controller.record(|s| {
            s.torn_writes += u64::from(torn);
            s.silent_torn_writes += u64::from(silent);
            s.write_errors += u64::from(result.is_err());
        });
        result
    }

    fn sync(&self) -> io::Result<()> {
        let decision = self.controller.decide(IoOp::Sync, || false);
        if !decision.delay.is_zero() {
            std::thread::sleep(decision.delay);
        }
        match decision.fault {
            None => {
                let synced = self.inner.sync();
                if synced.is_ok() {
                    self.unsynced().clear();
                }
                synced
            }
            Some(_) => {
                self.lose_unsynced_writes();
                self.controller.record(|s| s.sync_errors += 1);
                Err(eio())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::MemoryStorage;

    fn faulty() -> (Faulty, Arc<FaultController>) {
        let faulty = Faulty::new(Box::new(MemoryStorage::new()));
        let controller = faulty.controller();
        (faulty, controller)
    }

    fn page(byte: u8) -> Box<AlignedPage> {
        let mut page = AlignedPage::zeroed();
        page.0.fill(byte);
        page
    }

    fn read(storage: &dyn Storage, page_no: u64) -> Box<AlignedPage> {
        let mut page = AlignedPage::zeroed();
        storage.read_page(page_no, &mut page.0).unwrap();
        page
    }

    #[test]
    fn passes_through_when_nothing_is_scheduled() {
        let (storage, faults) = faulty();
        storage.write_page(1, &page(5).0).unwrap();
        assert_eq!(storage.page_count().unwrap(), 2);
        assert!(read(&storage, 1).0.iter().all(|&b| b == 5));
        storage.sync().unwrap();
        let stats = faults.stats();
        assert_eq!((stats.reads, stats.writes, stats.syncs), (1, 1, 1));
        assert_eq!(stats.faults(), 0);
        assert!(!faults.is_armed());
    }

    #[test]
    fn scheduled_errors_fire_in_order_then_stop() {
        let (storage, faults) = faulty();
        faults.fail_next(IoOp::Write, FaultKind::Eio, 2);
        faults.fail_next(IoOp::Write, FaultKind::NoSpace, 1);
        faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
        faults.fail_next(IoOp::Read, FaultKind::Eio, 1);
        let buf = page(1);
        let codes: Vec<_> = (0..4)
            .map(|_| {
                storage
                    .write_page(0, &buf.0)
                    .err()
                    .and_then(|e| e.raw_os_error())
            })
            .collect();
        assert_eq!(
            codes,
            [Some(libc::EIO), Some(libc::EIO), Some(libc::ENOSPC), None]
        );
        assert_eq!(storage.sync().unwrap_err().raw_os_error(), Some(libc::EIO));
        storage.sync().unwrap();
        let mut out = AlignedPage::zeroed();
        assert!(storage.read_page(0, &mut out.0).is_err());
        storage.read_page(0, &mut out.0).unwrap();
        assert_eq!(out.0, buf.0);
        let stats = faults.stats();
        assert_eq!(
            (stats.write_errors, stats.sync_errors, stats.read_errors),
            (3, 1, 1)
        );
        assert_eq!(stats.faults(), 5);
        assert!(!faults.is_armed());
    }

    #[test]
    fn fail_after_lets_calls_through_first() {
        let (storage, faults) = faulty();
        faults.fail_after(IoOp::Write, 2, FaultKind::Eio, 1);
        let buf = page(1);
        assert!(storage.write_page(0, &buf.0).is_ok());
        assert!(storage.write_page(1, &buf.0).is_ok());
        assert!(storage.write_page(2, &buf.0).is_err());
        assert!(storage.write_page(2, &buf.0).is_ok());
    }

    #[test]
    fn enospc_on_extend_spares_writes_inside_the_file() {
        let (storage, faults) = faulty();
        storage.write_page(1, &page(1).0).unwrap();
        faults.fail_next(IoOp::Write, FaultKind::NoSpaceOnExtend, 1);
        storage.write_page(0, &page(2).0).unwrap();
        storage.write_page(1, &page(2).0).unwrap();
        let err = storage.write_page(2, &page(2).0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(storage.page_count().unwrap(), 2);
        storage.write_page(2, &page(2).0).unwrap();
        assert_eq!(storage.page_count().unwrap(), 3);
    }

    #[test]
    fn torn_and_short_writes_leave_a_prefix_over_the_old_page() {
        let (storage, faults) = faulty();
        storage.write_page(0, &page(0xAA).0).unwrap();
        faults.fail_next(
            IoOp::Write,
            FaultKind::Torn {
                bytes: 100,
                silent: true,
            },
            1,
        );
        storage.write_page(0, &page(0xBB).0).unwrap();
        let torn = read(&storage, 0);
        assert!(torn.0[..100].iter().all(|&b| b == 0xBB));
        assert!(torn.0[100..].iter().all(|&b| b == 0xAA));

        faults.fail_next(
            IoOp::Write,
            FaultKind::Torn {
                bytes: 8,
                silent: false,
            },
            1,
        );
        let err = storage.write_page(0, &page(0xCC).0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        faults.fail_next(IoOp::Write, FaultKind::Short { bytes: 4 }, 1);
        let err = storage.write_page(0, &page(0xDD).0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
        let now = read(&storage, 0);
        assert!(now.0[..4].iter().all(|&b| b == 0xDD));
        assert!(now.0[4..8].iter().all(|&b| b == 0xCC));
        assert!(now.0[8..100].iter().all(|&b| b == 0xBB));
        assert!(now.0[100..].iter().all(|&b| b == 0xAA));

        // A torn write past the end lands over zeros.
        faults.fail_next(
            IoOp::Write,
            FaultKind::Torn {
                bytes: PAGE_SIZE / 2,
                silent: true,
            },
            1,
        );
        storage.write_page(3, &page(0xEE).0).unwrap();
        let half = read(&storage, 3);
        assert!(half.0[..PAGE_SIZE / 2].iter().all(|&b| b == 0xEE));
        assert!(half.0[PAGE_SIZE / 2..].iter().all(|&b| b == 0));

        let stats = faults.stats();
        assert_eq!((stats.torn_writes, stats.silent_torn_writes), (4, 2));
        assert_eq!(stats.write_errors, 2);
        assert_eq!(stats.faults(), 4);
    }

    #[test]
    fn short_read_fills_a_prefix_and_fails() {
        let (storage, faults) = faulty();
        storage.write_page(0, &page(7).0).unwrap();
        faults.fail_next(IoOp::Read, FaultKind::Short { bytes: 10 }, 1);
        let mut buf = page(1);
        let err = storage.read_page(0, &mut buf.0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(buf.0[..10].iter().all(|&b| b == 7));
        assert!(buf.0[10..].iter().all(|&b| b == 1), "rest left as it was");
        assert_eq!(faults.stats().read_errors, 1);
    }

    #[test]
    fn split_write_completes_and_latency_delays() {
        let (storage, faults) = faulty();
        faults.fail_next(
            IoOp::Write,
            FaultKind::Split {
                bytes: 64,
                pause: Duration::from_millis(1),
            },
            1,
        );
        faults.fail_next(IoOp::Sync, FaultKind::Latency(Duration::from_millis(20)), 1);
        storage.write_page(0, &page(3).0).unwrap();
        assert!(read(&storage, 0).0.iter().all(|&b| b == 3));
        let started = std::time::Instant::now();
        storage.sync().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
        let stats = faults.stats();
        assert_eq!(
            (stats.split_writes, stats.delays, stats.faults()),
            (1, 1, 0)
        );
    }

    #[test]
    fn latency_adds_to_an_error_in_the_same_call() {
        let (storage, faults) = faulty();
        faults.fail_next(IoOp::Sync, FaultKind::Latency(Duration::from_millis(5)), 1);
        faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
        let started = std::time::Instant::now();
        assert!(storage.sync().is_err());
        assert!(started.elapsed() >= Duration::from_millis(5));
        storage.sync().unwrap();
    }

    #[test]
    fn probability_is_seeded_and_reproducible() {
        let run = |seed| {
            let (storage, faults) = faulty();
            faults.set_probability(IoOp::Read, FaultKind::Eio, 0.3, seed);
            let mut buf = AlignedPage::zeroed();
            let pattern: Vec<bool> = (0..200)
                .map(|_| storage.read_page(0, &mut buf.0).is_err())
                .collect();
            (pattern, faults.stats().read_errors)
        };
        let (a, errors) = run(42);
        assert_eq!(a, run(42).0);
        assert_ne!(a, run(43).0);
        assert!((30..=90).contains(&errors), "{errors} of 200 at p = 0.3");

        let (storage, faults) = faulty();
        faults.set_probability(IoOp::Sync, FaultKind::Eio, 1.0, 1);
        assert!(storage.sync().is_err());
        faults.set_probability(IoOp::Sync, FaultKind::Eio, 0.0, 1);
        storage.sync().unwrap();
        faults.set_probability(IoOp::Sync, FaultKind::Eio, 1.0, 1);
        faults.fail_next(IoOp::Read, FaultKind::Eio, 5);
        assert!(faults.is_armed());
        faults.clear();
        assert!(!faults.is_armed());
        storage.sync().unwrap();
        assert_eq!(faults.stats().sync_errors, 1);
    }

    #[test]
    fn a_failed_sync_with_a_volatile_cache_loses_the_unsynced_writes() {
        let (storage, faults) = faulty();
        storage.write_page(0, &page(1).0).unwrap();
        storage.write_page(1, &page(1).0).unwrap();
        storage.sync().unwrap();
        // Off: a failed sync loses nothing.
        storage.write_page(0, &page(2).0).unwrap();
        faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
        assert!(storage.sync().is_err());
        assert!(read(&storage, 0).0.iter().all(|&b| b == 2));

        faults.set_volatile_cache(true);
        storage.sync().unwrap();
        storage.write_page(0, &page(3).0).unwrap();
        storage.write_page(0, &page(4).0).unwrap();
        storage.write_page(1, &page(5).0).unwrap();
        storage.write_page(2, &page(6).0).unwrap();
        faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
        assert!(storage.sync().is_err());
        assert!(
            read(&storage, 0).0.iter().all(|&b| b == 2),
            "back to the synced image"
        );
        assert!(read(&storage, 1).0.iter().all(|&b| b == 1));
        assert!(
            read(&storage, 2).0.iter().all(|&b| b == 0),
            "an extension is lost too"
        );
        assert_eq!(faults.stats().lost_writes, 3);
        // Writes synced successfully stay.
        storage.write_page(1, &page(7).0).unwrap();
        storage.sync().unwrap();
        faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
        assert!(storage.sync().is_err());
        assert!(read(&storage, 1).0.iter().all(|&b| b == 7));
        assert_eq!(faults.stats().lost_writes, 3);
    }

    #[test]
    #[should_panic(expected = "cannot be injected")]
    fn kinds_that_do_not_apply_are_refused() {
        FaultController::new().fail_next(IoOp::Read, FaultKind::NoSpace, 1);
    }

    #[test]
    fn applies_to_matches_the_table() {
        use FaultKind::*;
        let kinds = [
            Eio,
            NoSpace,
            NoSpaceOnExtend,
            Short { bytes: 1 },
            Torn {
                bytes: 1,
                silent: false,
            },
            Split {
                bytes: 1,
                pause: Duration::ZERO,
            },
            Latency(Duration::ZERO),
        ];
        let table: Vec<[bool; 3]> = kinds
            .iter()
            .map(|k| [IoOp::Read, IoOp::Write, IoOp::Sync].map(|op| k.applies_to(op)))
            .collect();
        assert_eq!(
            table,
            [
                [true, true, true],
                [false, true, false],
                [false, true, false],
                [true, true, false],
                [false, true, false],
                [false, true, false],
                [true, true, true],
            ]
        );
    }
}
