//! The benchmark's data file: its contents, and creating it through the
//! pool (pages carry a checksummed trailer, so the file cannot be written
//! with raw bytes).
//!
//! Word `i` of page `p`'s data area holds `p + i·K` (wrapping, K odd):
//! word 0 is the page number, and every word read, and the sum of a page,
//! can be checked against the page and offset it was read from.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pagepool::{BufferPool, IoMode, PoolConfig, PAGE_DATA_SIZE, PAGE_SIZE};

use crate::bail;
use crate::bench::workload::PAGE_WORDS;
use crate::error::{Context, Result};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The value of word `index` of page `page`.
#[inline]
pub fn word(page: u64, index: u64) -> u64 {
    page.wrapping_add(index.wrapping_mul(K))
}

/// The value at byte `offset` (8-aligned) of page `page`.
#[inline]
pub fn value_at(page: u64, offset: usize) -> u64 {
    word(page, (offset / 8) as u64)
}

/// The wrapping sum of every word of page `page`.
#[inline]
pub fn page_sum(page: u64) -> u64 {
    const INDEX_SUM: u64 = PAGE_WORDS * (PAGE_WORDS - 1) / 2;
    page.wrapping_mul(PAGE_WORDS)
        .wrapping_add(INDEX_SUM.wrapping_mul(K))
}

/// The data area of page `page`.
fn page_image(page: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PAGE_DATA_SIZE);
    for index in 0..PAGE_WORDS {
        bytes.extend_from_slice(&word(page, index).to_le_bytes());
    }
    bytes
}

/// The data file of `pages` pages in `dir`.
pub fn path_for(dir: &Path, pages: u64) -> PathBuf {
    let bytes = pages * PAGE_SIZE as u64;
    if bytes.is_multiple_of(1 << 20) {
        dir.join(format!("pages-{}mib.db", bytes >> 20))
    } else {
        dir.join(format!("pages-{pages}p.db"))
    }
}

/// Makes sure `path` holds `pages` pages of benchmark data: reuses the
/// file if it has the right size, otherwise (re)creates it through a pool
/// with `threads` writers. Returns whether it was created.
pub fn ensure(path: &Path, pages: u64, threads: usize) -> Result<bool> {
    let want = pages * PAGE_SIZE as u64;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == want => return Ok(false),
        Ok(meta) if !meta.is_file() => bail!("{} exists and is not a file", path.display()),
        _ => {}
    }
    if let Some(free) = free_bytes(path.parent().unwrap_or(Path::new("."))) {
        if free < want {
            bail!(
                "creating {} needs {} MiB, and its file system has {} MiB free",
                path.display(),
                want >> 20,
                free >> 20
            );
        }
    }
    let started = Instant::now();
    eprintln!(
        "creating {} ({} pages, {} MiB) ...",
        path.display(),
        pages,
        want >> 20
    );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let created = create(&tmp, pages, threads).and_then(|()| {
        let len = std::fs::metadata(&tmp)
            .with_context(|| format!("reading the size of {}", tmp.display()))?
            .len();
        if len != want {
            bail!(
                "{} is {len} bytes after writing {pages} pages, expected {want}",
                tmp.display()
            );
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if let Err(error) = created {
        let _ = std::fs::remove_file(&tmp);
        return Err(error.context(format!("creating data file {}", path.display())));
    }
    eprintln!(
        "created {} in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

fn create(path: &Path, pages: u64, threads: usize) -> Result<()> {
    let pool = BufferPool::open(PoolConfig::new(2048).io_mode(IoMode::Direct))?;
    let file = pool.open_file(path)?;
    if pool.page_count(file)? != 0 {
        bail!("{} is not empty", path.display());
    }
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let _pin = pool.pin_thread();
                    while next.fetch_add(1, Ordering::Relaxed) < pages {
                        let (page_id, mut page) = pool.allocate(file)?;
                        page.write_at(0, &page_image(page_id.page_no()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| crate::error::Error::msg("a writer thread panicked"))??;
        }
        Ok(())
    })?;
    pool.close()?;
    Ok(())
}

/// Bytes available to this user on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero `statvfs` is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a writable
    // `statvfs`, both valid for the duration of the call.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    // The field types are platform-defined (32 bits on some targets).
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    (rc == 0).then(|| blocks.saturating_mul(block_size))
}

/// Asks the kernel to drop its cached pages of `path` (harmless, and
/// usually a no-op, when the file is only read with `O_DIRECT`).
pub fn drop_cache(path: &Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: `file` is an open descriptor for the duration of the call;
    // posix_fadvise only reads its arguments.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc))
            .with_context(|| format!("posix_fadvise(DONTNEED) on {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_matches_the_words() {
        for page in [0, 1, 77, 1 << 40] {
            let sum = (0..PAGE_WORDS).fold(0u64, |s, i| s.wrapping_add(word(page, i)));
            assert_eq!(sum, page_sum(page));
            assert_eq!(value_at(page, 0), page);
            let image = page_image(page);
            assert_eq!(image.len(), PAGE_DATA_SIZE);
            assert_eq!(&image[16..24], &word(page, 2).to_le_bytes());
        }
    }

    #[test]
    fn file_names_carry_the_size() {
        assert_eq!(
            path_for(Path::new("d"), 256),
            Path::new("d").join("pages-1mib.db")
        );
        assert_eq!(
            path_for(Path::new("d"), 3),
            Path::new("d").join("pages-3p.db")
        );
    }
}
