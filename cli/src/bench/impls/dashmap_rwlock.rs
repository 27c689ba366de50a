//! `dashmap-rwlock`: the pool a Rust developer would write first. A
//! `DashMap<u64, Arc<RwLock<Frame>>>` maps page numbers to frames; each
//! frame has a parking_lot `RwLock` (readers share it, writers take it
//! exclusively) and a second-chance bit; a FIFO queue of page numbers is
//! the eviction order. Pages are read and written back with `O_DIRECT`,
//! in pagepool's format, so the pool holds at most `pool_frames` pages and
//! the page cache holds none: the same memory budget as pagepool.
//!
//! - Hit: a shard read lock, then `try_read` on the frame while the shard
//!   guard is held (no `Arc` clone). If the frame is busy (being loaded or
//!   written), clone the `Arc`, drop the shard guard and block on the frame
//!   (blocking under the shard guard could deadlock with an evictor).
//! - Miss: insert a frame whose write lock the loader holds, so others
//!   wait for the load instead of loading twice; evict down to capacity;
//!   read; downgrade to a read lock.
//! - Eviction: pop the queue; a referenced frame gets a second chance; a
//!   dirty one is written back under its write lock; then it is removed
//!   only if nobody holds a clone of its `Arc` and it is still clean, all
//!   under the shard's write lock, so no write is lost.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use super::page_file::{open_direct, read_page, write_page, AlignedPage};
use super::{load_u64, sum_words, Counters, Instance, LocalCounters, Setup, SharedCounters};
use crate::bench::driver::Driver;
use crate::bench::workload::Op;
use crate::error::Result;

/// A frame: a page buffer and its state.
struct Frame {
    /// Second-chance bit, set by hits (only when clear).
    referenced: AtomicBool,
    /// The page holds its data (false while loading, or after a failed
    /// load: then the frame is being removed).
    loaded: bool,
    dirty: bool,
    buf: Box<AlignedPage>,
}

type Slot = Arc<RwLock<Frame>>;

/// The pool.
pub struct DashmapRwlock {
    map: DashMap<u64, Slot>,
    fifo: Mutex<VecDeque<u64>>,
    capacity: usize,
    file: File,
    counters: SharedCounters,
}

impl DashmapRwlock {
    /// An empty pool of `setup.pool_frames` frames over the data file.
    pub fn open(setup: &Setup<'_>) -> Result<DashmapRwlock> {
        Ok(DashmapRwlock {
            map: DashMap::with_capacity(setup.pool_frames),
            fifo: Mutex::new(VecDeque::with_capacity(setup.pool_frames + 1)),
            capacity: setup.pool_frames.max(1),
            file: open_direct(setup.path, setup.writes)?,
            counters: SharedCounters::default(),
        })
    }

    /// A whole-page scan, out of line so that the point-read arm stays
    /// small enough to inline into the driver's loop (as in every pool).
    #[inline(never)]
    fn scan(&self, page: u64, local: &mut LocalCounters) -> Result<u64> {
        self.with_page(page, local, |f| sum_words(f.buf.data()))
    }

    /// Runs `f` on page `page` under its read lock, loading it on a miss.
    #[inline]
    fn with_page<R>(
        &self,
        page: u64,
        local: &mut LocalCounters,
        f: impl FnOnce(&Frame) -> R,
    ) -> Result<R> {
        loop {
            let slot = match self.map.get(&page) {
                Some(entry) => {
                    if let Some(frame) = entry.try_read() {
                        if frame.loaded {
                            if !frame.referenced.load(Ordering::Relaxed) {
                                frame.referenced.store(true, Ordering::Relaxed);
                            }
                            local.hits += 1;
                            return Ok(f(&frame));
                        }
                        continue;
                    }
                    Arc::clone(entry.value())
                }
                None => match self.load(page, local)? {
                    Some(frame) => return Ok(f(&frame)),
                    None => continue,
                },
            };
            let frame = slot.read();
            if frame.loaded {
                local.hits += 1;
                return Ok(f(&frame));
            }
        }
    }

    /// Runs `f` on page `page` under its write lock (marking it dirty),
    /// loading it on a miss.
    fn with_page_mut<R>(
        &self,
        page: u64,
        local: &mut LocalCounters,
        f: impl FnOnce(&mut AlignedPage) -> R,
    ) -> Result<R> {
        loop {
            let slot = match self.map.get(&page) {
                Some(entry) => {
                    if let Some(mut frame) = entry.try_write() {
                        if frame.loaded {
                            local.hits += 1;
                            frame.dirty = true;
                            return Ok(f(&mut frame.buf));
                        }
                        continue;
                    }
                    Arc::clone(entry.value())
                }
                None => {
                    // Load, then come round again for the write lock.
                    drop(self.load(page, local)?);
                    continue;
                }
            };
            let mut frame = slot.write();
            if frame.loaded {
                local.hits += 1;
                frame.dirty = true;
                return Ok(f(&mut frame.buf));
            }
        }
    }

    /// Loads `page` into a new frame and returns it read-locked, or `None`
    /// if another thread got there first (the caller looks it up again).
    #[cold]
    fn load(
        &self,
        page: u64,
        local: &mut LocalCounters,
    ) -> Result<Option<parking_lot::ArcRwLockReadGuard<parking_lot::RawRwLock, Frame>>> {
        let slot: Slot = Arc::new(RwLock::new(Frame {
            referenced: AtomicBool::new(false),
            loaded: false,
            dirty: false,
            buf: AlignedPage::boxed(),
        }));
        let mut frame = slot.write_arc();
        match self.map.entry(page) {
            Entry::Occupied(_) => return Ok(None),
            Entry::Vacant(vacant) => {
                vacant.insert(slot);
            }
        }
        self.fifo.lock().push_back(page);
        local.misses += 1;
        let loaded = self
            .make_room(local)
            .and_then(|()| read_page(&self.file, page, &mut frame.buf));
        if let Err(error) = loaded {
            // Waiters see `loaded == false` and look again; nobody can be
            // holding a clone when the entry goes, bar those waiters.
            self.map.remove(&page);
            return Err(error);
        }
        local.io_reads += 1;
        frame.loaded = true;
        Ok(Some(parking_lot::ArcRwLockWriteGuard::downgrade(frame)))
    }

    /// Evicts until the map holds at most `capacity` pages.
    fn make_room(&self, local: &mut LocalCounters) -> Result<()> {
        let mut attempts = 0usize;
        while self.map.len() > self.capacity {
            attempts += 1;
            if attempts > 4 * self.capacity + 64 {
                // Everything is pinned or busy: let the others finish.
                std::thread::yield_now();
                attempts = 0;
            }
            let Some(victim) = self.fifo.lock().pop_front() else {
                return Ok(());
            };
            let Some(slot) = self.map.get(&victim).map(|e| Arc::clone(e.value())) else {
                continue;
            };
            let requeue = || self.fifo.lock().push_back(victim);
            let Some(mut frame) = slot.try_write() else {
                requeue();
                continue;
            };
            if !frame.loaded {
                requeue();
                continue;
            }
            if frame.referenced.swap(false, Ordering::Relaxed) {
                drop(frame);
                requeue();
                continue;
            }
            if frame.dirty {
                write_page(&self.file, victim, &mut frame.buf)?;
                frame.dirty = false;
                local.io_writes += 1;
            }
            drop(frame);
            drop(slot);
            let removed = self.map.remove_if(&victim, |_, slot| {
                Arc::strong_count(slot) == 1 && slot.try_read().is_some_and(|f| !f.dirty)
            });
            if removed.is_none() {
                requeue();
            }
        }
        Ok(())
    }
}

impl Instance for DashmapRwlock {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        let mut local = LocalCounters::default();
        let result = driver.drive(
            #[inline(always)]
            |op| match op {
                Op::Point { page, offset } => {
                    self.with_page(page, &mut local, |f| load_u64(f.buf.data(), offset))?
                }
                Op::Scan { page } => self.scan(page, &mut local),
                Op::Write {
                    page,
                    offset,
                    value,
                } => {
                    self.with_page_mut(page, &mut local, |buf| buf.store_u64(offset, value))??;
                    Ok(value)
                }
            },
        );
        self.counters.publish(&local);
        result
    }

    fn counters(&self) -> Option<Counters> {
        Some(self.counters.get())
    }

    fn close(self: Box<Self>) -> Result<()> {
        for entry in self.map.iter() {
            let mut frame = entry.value().write();
            if frame.loaded && frame.dirty {
                write_page(&self.file, *entry.key(), &mut frame.buf)?;
                frame.dirty = false;
            }
        }
        self.file.sync_data()?;
        Ok(())
    }
}
