//! `mmap`: the data file mapped with memmap2 and read in place, as a Rust
//! developer would write it (`Mmap::map`, no `madvise`): the kernel's page
//! cache is the pool, page faults are the misses, and its memory is not
//! bounded by `--pool-mib` (see the page-cache column of the report).
//!
//! `mmap-capped` is the same mapping with `MADV_RANDOM`, run in a memory
//! cgroup (see `cgroup.rs`).
//!
//! `mixed` maps the file read-write and stores words in place (the kernel
//! writes dirty pages back). Words are read and written as `AtomicU64`
//! there, since other threads store to the same mapping; the read-only
//! workloads read plain bytes.

use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Advice, Mmap, MmapOptions, MmapRaw};
use pagepool::PAGE_SIZE;

use super::{load_u64, sum_words, Counters, Instance, Setup};
use crate::bail;
use crate::bench::driver::Driver;
use crate::bench::workload::{Op, PAGE_WORDS};
use crate::error::{Context, Result};

enum Map {
    ReadOnly(Mmap),
    ReadWrite(MmapRaw),
}

/// The mapped file.
pub struct Mapped {
    map: Map,
    len: usize,
}

impl Mapped {
    /// Maps the data file (read-write for a workload that writes).
    pub fn open(setup: &Setup<'_>) -> Result<Mapped> {
        Mapped::open_with(setup, false)
    }

    /// Maps the data file and advises the kernel that access is random
    /// (`MADV_RANDOM`): no readahead. `mmap-capped` needs it: under a memory
    /// cap, each fault's readahead would evict pages still in use for
    /// pages that are never read (it measured 270 ops/s on zipf without).
    pub fn open_random(setup: &Setup<'_>) -> Result<Mapped> {
        Mapped::open_with(setup, true)
    }

    fn open_with(setup: &Setup<'_>, random: bool) -> Result<Mapped> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(setup.writes)
            .open(setup.path)
            .with_context(|| format!("opening {}", setup.path.display()))?;
        let len = (setup.file_pages as usize)
            .checked_mul(PAGE_SIZE)
            .context("mmap: file too large")?;
        if file.metadata()?.len() < len as u64 {
            bail!("{} is shorter than {len} bytes", setup.path.display());
        }
        let map = if setup.writes {
            Map::ReadWrite(MmapOptions::new().len(len).map_raw(&file)?)
        } else {
            // SAFETY: nothing modifies or truncates the data file while it
            // is mapped: the benchmark's read-only workloads never write it,
            // and the writing one uses its own copy (mapped as `MmapRaw`).
            Map::ReadOnly(unsafe { MmapOptions::new().len(len).map(&file)? })
        };
        if random {
            match &map {
                Map::ReadOnly(map) => map.advise(Advice::Random),
                Map::ReadWrite(map) => map.advise(Advice::Random),
            }
            .context("madvise(MADV_RANDOM)")?;
        }
        Ok(Mapped { map, len })
    }

    /// The word at byte `pos` of a read-write mapping, as an atomic.
    #[inline]
    fn word(raw: &MmapRaw, len: usize, pos: usize) -> Result<&AtomicU64> {
        if !pos.is_multiple_of(8) || pos.checked_add(8).is_none_or(|end| end > len) {
            bail!("mmap: byte {pos} is not a word of the file");
        }
        // SAFETY: `pos` is 8-aligned and in bounds (checked above) of a
        // page-aligned shared mapping that lives as long as `raw`'s borrow;
        // every access to the mapping goes through atomics.
        Ok(unsafe { AtomicU64::from_ptr(raw.as_mut_ptr().add(pos).cast()) })
    }
}

impl Instance for Mapped {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        let len = self.len;
        match &self.map {
            Map::ReadOnly(map) => {
                let bytes: &[u8] = map;
                driver.drive(
                    #[inline(always)]
                    |op| {
                        let page_at = |page: u64| {
                            let start = page as usize * PAGE_SIZE;
                            bytes
                                .get(start..start + PAGE_SIZE)
                                .context("page past the end of the mapping")
                        };
                        match op {
                            Op::Point { page, offset } => load_u64(page_at(page)?, offset),
                            Op::Scan { page } => {
                                Ok(sum_words(&page_at(page)?[..PAGE_WORDS as usize * 8]))
                            }
                            Op::Write { .. } => bail!("the mapping is read-only"),
                        }
                    },
                )
            }
            Map::ReadWrite(raw) => driver.drive(
                #[inline(always)]
                |op| match op {
                    Op::Point { page, offset } => {
                        let word = Self::word(raw, len, page as usize * PAGE_SIZE + offset)?;
                        Ok(u64::from_le(word.load(Ordering::Relaxed)))
                    }
                    Op::Scan { page } => {
                        let mut sum = 0u64;
                        for index in 0..PAGE_WORDS as usize {
                            let word = Self::word(raw, len, page as usize * PAGE_SIZE + index * 8)?;
                            sum = sum.wrapping_add(u64::from_le(word.load(Ordering::Relaxed)));
                        }
                        Ok(sum)
                    }
                    Op::Write {
                        page,
                        offset,
                        value,
                    } => {
                        let word = Self::word(raw, len, page as usize * PAGE_SIZE + offset)?;
                        word.store(value.to_le(), Ordering::Relaxed);
                        Ok(value)
                    }
                },
            ),
        }
    }

    fn counters(&self) -> Option<Counters> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        if let Map::ReadWrite(raw) = &self.map {
            raw.flush().context("msync")?;
        }
        Ok(())
    }
}
