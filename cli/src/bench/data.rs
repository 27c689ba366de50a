//! The benchmark's data file: its contents, and creating it through the
//! pool (pages carry a checksummed trailer, so the file cannot be written
//! with raw bytes).
//!
//! Word `i` of page `p`'s data area holds `p + i·K` (wrapping, K odd):
//! word 0 is the page number, and every word read, and the sum of a page,
//! can be checked against the page and offset it was read from.
//!
//! `mixed` writes, so it runs on a copy of the file per implementation
//! ([`ensure_copy`]), never on the file the read-only workloads check
//! against. A value it writes carries a 16-bit tag of the word's page and
//! offset ([`written_value`]): a read may find the original value or any
//! value written to that very word (by this run or an earlier one on the
//! same copy), and nothing else.

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

/// The wrapping sum of [`value_at`] over operations whose pages, each
/// shifted left by 12 bits, add up to `shifted_pages`, and whose word
/// indexes (offset / 8) add up to `words`. `value_at` is linear in both,
/// so a batch of point reads can be checked against running sums; the
/// page is tallied as `page << 12` because that is the value the address
/// computation already holds.
#[inline(always)]
pub fn sum_of_values(shifted_pages: u64, words: u64) -> u64 {
    (shifted_pages >> 12).wrapping_add(words.wrapping_mul(K))
}

/// The wrapping sum of [`page_sum`] over `count` pages whose numbers,
/// each shifted left by 12 bits, add up to `shifted_pages`.
#[inline(always)]
pub fn sum_of_page_sums(shifted_pages: u64, count: u64) -> u64 {
    (shifted_pages >> 12)
        .wrapping_mul(PAGE_WORDS)
        .wrapping_add(count.wrapping_mul(page_sum(0)))
}

/// The tag of the word at `offset` of page `page`, in the top 16 bits.
#[inline]
fn word_tag(page: u64, offset: usize) -> u64 {
    let key = (page << 12) ^ offset as u64;
    key.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29) >> 48 << 48
}

/// Bits of a written value that hold the write's sequence number.
const SEQ_BITS: u32 = 36;

/// The value thread `thread` writes to `offset` of page `page` in its
/// `seq`-th write: the word's tag, the thread (12 bits), the sequence
/// number (36 bits).
#[inline]
pub fn written_value(page: u64, offset: usize, thread: u64, seq: u64) -> u64 {
    word_tag(page, offset) | ((thread & 0xFFF) << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))
}

/// Whether `value` is something `mixed` may have written to `offset` of
/// page `page` (its tag matches).
#[inline]
pub fn is_written_value(page: u64, offset: usize, value: u64) -> bool {
    value >> 48 << 48 == word_tag(page, offset)
}

/// The data area of page `page`.
pub fn page_image(page: u64) -> Vec<u8> {
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

/// The copy of the first `pages` pages of `base` that `mixed` writes to
/// for implementation `imp`: created once, then reused (its values drift
/// from the base file's only in words `mixed` wrote, which reads accept).
pub fn ensure_copy(base: &Path, imp: &str, pages: u64) -> Result<PathBuf> {
    let dir = base.parent().unwrap_or(Path::new("."));
    let name = path_for(Path::new(""), pages);
    let path = dir.join(format!("{imp}-{}", name.display()));
    let want = pages * PAGE_SIZE as u64;
    if std::fs::metadata(&path).is_ok_and(|meta| meta.is_file() && meta.len() == want) {
        return Ok(path);
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let copied = (|| -> Result<()> {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let mut from = File::open(base)
            .with_context(|| format!("opening {}", base.display()))?
            .take(want);
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let copied = std::io::copy(&mut from, &mut to)?;
        if copied != want {
            bail!("{} holds {copied} bytes, expected {want}", base.display());
        }
        to.flush()?;
        to.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    })();
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(error.context(format!("copying {} to {}", base.display(), path.display())));
    }
    eprintln!("created {} (copy for mixed)", path.display());
    Ok(path)
}

/// Bytes of `path` the kernel's page cache holds now (`mincore` over a
/// mapping of the file; mapping it faults nothing in).
pub fn cached_bytes(path: &Path) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len() as usize;
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: a fresh shared read-only mapping of an open file; it is only
    // passed to mincore and unmapped below, never read through.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error()).context("mmap for mincore");
    }
    let pages = len.div_ceil(4096);
    let mut resident = vec![0u8; pages];
    // SAFETY: `map` is a live mapping of `len` bytes and `resident` has one
    // byte per 4 KiB page of it.
    let rc = unsafe { libc::mincore(map, len, resident.as_mut_ptr()) };
    let error = std::io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(map, len) };
    if rc != 0 {
        return Err(error).context("mincore");
    }
    Ok(resident.iter().filter(|&&b| b & 1 != 0).count() as u64 * 4096)
}

/// Asks the kernel to drop its cached pages of `path` (harmless, and
/// usually a no-op, when the file is only read with `O_DIRECT`). Dirty
/// pages (left by the buffered writers of `mixed`) are written first, or
/// the kernel would keep them.
pub fn drop_cache(path: &Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.sync_data()
        .with_context(|| format!("fdatasync on {}", path.display()))?;
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
    fn batch_sums_match_the_values_they_stand_for() {
        let ops = [(3u64, 16usize), (70_000, 4072), (0, 0), (1 << 36, 8)];
        let shifted_pages = ops.iter().map(|&(page, _)| page << 12).sum::<u64>();
        let words = ops.iter().map(|&(_, offset)| (offset / 8) as u64).sum();
        let values = ops.iter().fold(0u64, |sum, &(page, offset)| {
            sum.wrapping_add(value_at(page, offset))
        });
        assert_eq!(sum_of_values(shifted_pages, words), values);
        let sums = ops
            .iter()
            .fold(0u64, |sum, &(page, _)| sum.wrapping_add(page_sum(page)));
        assert_eq!(sum_of_page_sums(shifted_pages, ops.len() as u64), sums);
    }

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
    fn written_values_are_tagged_by_their_word() {
        let mut accepted = 0;
        for page in 0..64 {
            for offset in (0..PAGE_DATA_SIZE).step_by(8) {
                let value = written_value(page, offset, 3, 77);
                assert!(is_written_value(page, offset, value));
                accepted += u32::from(is_written_value(page + 1, offset, value));
                accepted += u32::from(is_written_value(page, offset ^ 8, value));
                // Original data is not mistaken for a write (in practice).
                accepted += u32::from(is_written_value(page, offset, value_at(page, offset)));
            }
        }
        assert!(accepted < 5, "{accepted} false tags");
        assert_ne!(written_value(1, 8, 0, 1), written_value(1, 8, 1, 1));
        assert_ne!(written_value(1, 8, 0, 1), written_value(1, 8, 0, 2));
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
