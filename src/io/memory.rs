//! In-memory storage for tests and models.

use std::io;

use crate::page::PAGE_SIZE;
use crate::sync::{lock, Mutex};

/// Pages kept in memory. Cloning shares nothing; use `Arc` to share.
///
/// ```
/// use pagepool::{MemoryStorage, Storage, PAGE_SIZE};
/// let storage = MemoryStorage::new();
/// storage.write_page(3, &[7u8; PAGE_SIZE]).unwrap();
/// assert_eq!(storage.page_count().unwrap(), 4);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStorage {
    pages: Mutex<Vec<Box<[u8]>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// A store holding `page_count` zero pages.
    pub fn with_pages(page_count: u64) -> MemoryStorage {
        let storage = MemoryStorage::new();
        lock(&storage.pages).resize_with(page_count as usize, zero_page);
        storage
    }
}

fn zero_page() -> Box<[u8]> {
    vec![0u8; PAGE_SIZE].into_boxed_slice()
}

fn check_len(len: usize) -> io::Result<()> {
    if len == PAGE_SIZE {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("buffer of {len} bytes is not one page"),
        ))
    }
}

impl super::Storage for MemoryStorage {
    fn page_count(&self) -> io::Result<u64> {
        Ok(lock(&self.pages).len() as u64)
    }

    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        check_len(buf.len())?;
        match lock(&self.pages).get(page_no as usize) {
            Some(page) => buf.copy_from_slice(page),
            None => buf.fill(0),
        }
        Ok(())
    }

    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        check_len(buf.len())?;
        let index = usize::try_from(page_no)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "page number too large"))?;
        let mut pages = lock(&self.pages);
        if pages.len() <= index {
            pages.resize_with(index + 1, zero_page);
        }
        pages[index].copy_from_slice(buf);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Storage;

    #[test]
    fn round_trip_and_holes_read_as_zero() {
        let storage = MemoryStorage::with_pages(1);
        let mut buf = vec![1u8; PAGE_SIZE];
        storage.read_page(5, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        storage.write_page(2, &[9u8; PAGE_SIZE]).unwrap();
        assert_eq!(storage.page_count().unwrap(), 3);
        storage.read_page(2, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 9));
        assert!(storage.write_page(0, &[0u8; 10]).is_err());
    }
}
