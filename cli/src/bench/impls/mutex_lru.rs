//! `mutex-lru`: one `Mutex` around an `lru::LruCache` of page buffers,
//! plus `O_DIRECT` pread/pwrite (pagepool's page format, at most
//! `pool_frames` pages: the same memory budget as pagepool).
//!
//! Every access takes the mutex (an LRU hit reorders the list, so even
//! reads write shared state). I/O happens outside it: a page being loaded,
//! or being written back before its buffer is reused, is a `Busy` entry,
//! and threads that want it wait on a condition variable, so no page is
//! loaded twice and no write is lost to a reload of a stale copy.

use std::fs::File;

use lru::LruCache;
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::page_file::{open_direct, read_page, write_page, AlignedPage};
use super::{load_u64, sum_words, Counters, Instance, LocalCounters, Setup, SharedCounters};
use crate::bench::driver::Driver;
use crate::bench::workload::Op;
use crate::error::Result;

enum Slot {
    Ready {
        buf: Box<AlignedPage>,
        dirty: bool,
    },
    /// Being loaded, or being written back before eviction.
    Busy,
}

/// The pool.
pub struct MutexLru {
    lru: Mutex<LruCache<u64, Slot>>,
    changed: Condvar,
    capacity: usize,
    file: File,
    counters: SharedCounters,
}

impl MutexLru {
    /// An empty pool of `setup.pool_frames` pages over the data file.
    pub fn open(setup: &Setup<'_>) -> Result<MutexLru> {
        Ok(MutexLru {
            lru: Mutex::new(LruCache::unbounded()),
            changed: Condvar::new(),
            capacity: setup.pool_frames.max(1),
            file: open_direct(setup.path, setup.writes)?,
            counters: SharedCounters::default(),
        })
    }

    /// A whole-page scan, out of line so that the point-read arm stays
    /// small enough to inline into the driver's loop (as in every pool).
    #[inline(never)]
    fn scan(&self, page: u64, local: &mut LocalCounters) -> Result<u64> {
        self.with_page(page, local, |buf, _| sum_words(buf.data()))
    }

    /// Runs `f` on page `page` (and its dirty flag) under the mutex,
    /// loading the page on a miss.
    #[inline]
    fn with_page<R>(
        &self,
        page: u64,
        local: &mut LocalCounters,
        f: impl FnOnce(&mut AlignedPage, &mut bool) -> R,
    ) -> Result<R> {
        let mut lru = self.lru.lock();
        loop {
            match lru.get_mut(&page) {
                Some(Slot::Ready { buf, dirty }) => {
                    local.hits += 1;
                    return Ok(f(buf, dirty));
                }
                Some(Slot::Busy) => self.changed.wait(&mut lru),
                None => return self.load(lru, page, local, f),
            }
        }
    }

    #[cold]
    fn load<R>(
        &self,
        mut lru: MutexGuard<'_, LruCache<u64, Slot>>,
        page: u64,
        local: &mut LocalCounters,
        f: impl FnOnce(&mut AlignedPage, &mut bool) -> R,
    ) -> Result<R> {
        local.misses += 1;
        lru.put(page, Slot::Busy);
        let (mut lru, buf) = self.take_buffer(lru, local);
        let loaded = buf.and_then(|mut buf| {
            MutexGuard::unlocked(&mut lru, || read_page(&self.file, page, &mut buf)).map(|()| buf)
        });
        let mut buf = match loaded {
            Ok(buf) => buf,
            Err(error) => {
                lru.pop(&page);
                self.changed.notify_all();
                return Err(error);
            }
        };
        local.io_reads += 1;
        let mut dirty = false;
        let result = f(&mut buf, &mut dirty);
        lru.put(page, Slot::Ready { buf, dirty });
        self.changed.notify_all();
        Ok(result)
    }

    /// A buffer for a new page: a fresh one while the cache is within
    /// capacity, else the least recently used ready page's (written back
    /// first, outside the lock, if dirty).
    fn take_buffer<'a>(
        &'a self,
        mut lru: MutexGuard<'a, LruCache<u64, Slot>>,
        local: &mut LocalCounters,
    ) -> (
        MutexGuard<'a, LruCache<u64, Slot>>,
        Result<Box<AlignedPage>>,
    ) {
        loop {
            if lru.len() <= self.capacity {
                return (lru, Ok(AlignedPage::boxed()));
            }
            let victim = lru
                .iter()
                .rev()
                .find(|(_, slot)| matches!(slot, Slot::Ready { .. }))
                .map(|(&page, _)| page);
            let Some(victim) = victim else {
                // Every page is busy: wait for a load or write to finish.
                self.changed.wait(&mut lru);
                continue;
            };
            let Some(Slot::Ready { mut buf, dirty }) = lru.pop(&victim) else {
                unreachable!("the victim was found ready under the lock");
            };
            if !dirty {
                return (lru, Ok(buf));
            }
            // Readers of the victim wait while it is written back.
            lru.put(victim, Slot::Busy);
            let written =
                MutexGuard::unlocked(&mut lru, || write_page(&self.file, victim, &mut buf));
            self.changed.notify_all();
            match written {
                Ok(()) => {
                    local.io_writes += 1;
                    lru.pop(&victim);
                    return (lru, Ok(buf));
                }
                Err(error) => {
                    lru.put(victim, Slot::Ready { buf, dirty: true });
                    return (lru, Err(error));
                }
            }
        }
    }
}

impl Instance for MutexLru {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        let mut local = LocalCounters::default();
        let result = driver.drive(
            #[inline(always)]
            |op| match op {
                Op::Point { page, offset } => {
                    self.with_page(page, &mut local, |buf, _| load_u64(buf.data(), offset))?
                }
                Op::Scan { page } => self.scan(page, &mut local),
                Op::Write {
                    page,
                    offset,
                    value,
                } => {
                    self.with_page(page, &mut local, |buf, dirty| {
                        *dirty = true;
                        buf.store_u64(offset, value)
                    })??;
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
        let mut lru = self.lru.lock();
        for (&page, slot) in lru.iter_mut() {
            if let Slot::Ready { buf, dirty } = slot {
                if *dirty {
                    write_page(&self.file, page, buf)?;
                    *dirty = false;
                }
            }
        }
        self.file.sync_data()?;
        Ok(())
    }
}
