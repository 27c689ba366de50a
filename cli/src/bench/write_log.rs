//! A thread's log of the writes it made in `mixed`: an append-only array
//! in its own anonymous mapping, grown with `mremap`. Being its own
//! mapping (never memory the allocator hands back and reuses), the log's
//! share of the process's resident memory is exactly the pages its entries
//! touched, so the runner can take it out of the implementation's memory.

use std::ptr::NonNull;

/// A written word: `page << 12 | offset`, and the value.
pub type Written = (u64, u64);

const PAGE: usize = 4096;
const ENTRY: usize = std::mem::size_of::<Written>();
/// The first mapping: 1 MiB of entries' address space (touched lazily).
const FIRST_BYTES: usize = 1 << 20;

/// The log. Empty logs map nothing.
#[derive(Default)]
pub struct WriteLog {
    base: Option<NonNull<Written>>,
    len: usize,
    /// Mapped bytes.
    mapped: usize,
}

// SAFETY: the log owns its mapping exclusively; moving it to another
// thread moves that ownership.
unsafe impl Send for WriteLog {}

impl WriteLog {
    /// Appends an entry.
    #[inline]
    pub fn push(&mut self, entry: Written) {
        if (self.len + 1) * ENTRY > self.mapped {
            self.grow();
        }
        let base = self.base.expect("grow maps the log");
        // SAFETY: `len < mapped / ENTRY` after `grow`, so the slot lies in
        // the mapping, which is writable, 16-aligned and ours alone.
        unsafe { base.as_ptr().add(self.len).write(entry) };
        self.len += 1;
    }

    #[cold]
    fn grow(&mut self) {
        let new = (self.mapped * 2).max(FIRST_BYTES);
        let map = match self.base {
            // SAFETY: a fresh private anonymous mapping.
            None => unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    new,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            },
            // SAFETY: `base .. base + mapped` is our mapping; MREMAP_MAYMOVE
            // keeps its contents (and residency) at the returned address.
            Some(base) => unsafe {
                libc::mremap(base.as_ptr().cast(), self.mapped, new, libc::MREMAP_MAYMOVE)
            },
        };
        assert!(
            map != libc::MAP_FAILED,
            "mapping {new} bytes for the write log: {}",
            std::io::Error::last_os_error()
        );
        self.base = NonNull::new(map.cast());
        self.mapped = new;
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Written] {
        match self.base {
            // SAFETY: the first `len` entries were written by `push`.
            Some(base) => unsafe { std::slice::from_raw_parts(base.as_ptr(), self.len) },
            None => &[],
        }
    }

    /// Entries logged.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Resident bytes the log accounts for (the pages its entries touched).
    pub fn resident_bytes(&self) -> usize {
        (self.len * ENTRY).div_ceil(PAGE) * PAGE
    }
}

impl Drop for WriteLog {
    fn drop(&mut self) {
        if let Some(base) = self.base {
            // SAFETY: unmaps exactly our mapping; no slice of it outlives
            // `self` (`entries` borrows it).
            unsafe { libc::munmap(base.as_ptr().cast(), self.mapped) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_keeps_order() {
        let mut log = WriteLog::default();
        assert!(log.entries().is_empty());
        let n = 3 * FIRST_BYTES / ENTRY + 7;
        for i in 0..n as u64 {
            log.push((i, !i));
        }
        assert_eq!(log.len(), n);
        assert!(log
            .entries()
            .iter()
            .enumerate()
            .all(|(i, &(k, v))| k == i as u64 && v == !k));
        assert_eq!(log.resident_bytes(), (n * 16).div_ceil(4096) * 4096);
        let moved = std::thread::spawn(move || log.entries().len())
            .join()
            .unwrap();
        assert_eq!(moved, n);
    }
}
