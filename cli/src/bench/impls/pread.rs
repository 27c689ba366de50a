//! `pread`: no pool of its own. Each read is a buffered `pread` of the
//! whole page into a stack buffer (the kernel's page cache does the
//! caching, with no bound from `--pool-mib`); `mixed` writes the 8 bytes
//! with `pwrite`. What a program that trusts the kernel would do.

use std::fs::File;
use std::os::unix::fs::FileExt;

use pagepool::PAGE_SIZE;

use super::{load_u64, sum_words, Counters, Instance, Setup};
use crate::bench::driver::Driver;
use crate::bench::workload::Op;
use crate::error::{Context, Result};
use pagepool::PAGE_DATA_SIZE;

/// The data file, opened buffered.
pub struct Pread {
    file: File,
}

impl Pread {
    /// Opens the data file (read-write for a workload that writes).
    pub fn open(setup: &Setup<'_>) -> Result<Pread> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(setup.writes)
            .open(setup.path)
            .with_context(|| format!("opening {}", setup.path.display()))?;
        Ok(Pread { file })
    }

    #[inline]
    fn read(&self, page: u64, buf: &mut [u8; PAGE_SIZE]) -> Result<()> {
        self.file
            .read_exact_at(buf, page * PAGE_SIZE as u64)
            .with_context(|| format!("pread of page {page}"))
    }
}

impl Instance for Pread {
    fn run_thread(&self, driver: &mut Driver<'_>) -> Result<()> {
        driver.drive(
            #[inline(always)]
            |op| {
                let mut buf = [0u8; PAGE_SIZE];
                match op {
                    Op::Point { page, offset } => {
                        self.read(page, &mut buf)?;
                        load_u64(&buf[..PAGE_DATA_SIZE], offset)
                    }
                    Op::Scan { page } => {
                        self.read(page, &mut buf)?;
                        Ok(sum_words(&buf[..PAGE_DATA_SIZE]))
                    }
                    Op::Write {
                        page,
                        offset,
                        value,
                    } => {
                        self.file
                            .write_all_at(
                                &value.to_le_bytes(),
                                page * PAGE_SIZE as u64 + offset as u64,
                            )
                            .with_context(|| format!("pwrite to page {page}"))?;
                        Ok(value)
                    }
                }
            },
        )
    }

    fn counters(&self) -> Option<Counters> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.file.sync_data().context("fdatasync")?;
        Ok(())
    }
}
