//! Files read and written with `O_DIRECT`: pages go between the device and
//! frame memory with no copy through the kernel page cache.
//!
//! # One owner
//!
//! Two opens of one data file would each cache its pages and overwrite
//! each other's writes. So an open takes an exclusive, non-blocking
//! `flock` on the file, held until the `DirectFile` drops (the kernel
//! drops it with the descriptor, also when the process dies): a second
//! open — from another process, or another pool in this one — fails with
//! [`Error::FileLocked`]. The lock is advisory (it keeps out other
//! pagepool opens, not a process that ignores it). A file system that
//! cannot lock at all (`ENOLCK`, `EOPNOTSUPP`) is logged and opened
//! anyway. Within one pool, the pool itself refuses a second open of the
//! same [`FileIdentity`] with [`Error::AlreadyOpen`], naming the file id
//! it is open under.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::page::PAGE_SIZE;

/// How data files are opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// `O_DIRECT`: no kernel page cache. Opening fails with
    /// [`Error::DirectIoUnsupported`] where the file system refuses it.
    #[default]
    Direct,
    /// Buffered I/O through the kernel page cache. Only when chosen
    /// explicitly: the pool never falls back to it silently.
    Buffered,
}

/// Which file a store is: the device and inode it lives at, the same
/// under every path (hard links, symlinks, `..`) that leads to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// `st_dev`.
    pub device: u64,
    /// `st_ino`.
    pub inode: u64,
}

impl FileIdentity {
    /// The identity of the file at `path`, if it exists.
    pub fn of_path(path: impl AsRef<Path>) -> io::Result<FileIdentity> {
        Ok(FileIdentity::of(&std::fs::metadata(path)?))
    }

    fn of(metadata: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// A data file of whole pages. New files are created with mode 0600, and
/// every open file is locked (see the module docs).
#[derive(Debug)]
pub struct DirectFile {
    file: File,
    path: PathBuf,
    mode: IoMode,
    identity: FileIdentity,
}

impl DirectFile {
    /// Opens (creating if absent) the data file at `path` and locks it.
    ///
    /// Fails if another open holds the file's lock
    /// ([`Error::FileLocked`]), if the file's length is not a multiple of
    /// the page size, or if `mode` is [`IoMode::Direct`] and the file
    /// system refuses `O_DIRECT`.
    pub fn open(path: impl AsRef<Path>, mode: IoMode) -> Result<DirectFile> {
        let path = path.as_ref().to_path_buf();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).mode(0o600);
        let mut flags = libc::O_CLOEXEC;
        if mode == IoMode::Direct {
            flags |= libc::O_DIRECT;
        }
        options.custom_flags(flags);
        let file = options
            .open(&path)
            .map_err(|source| open_error(&path, source))?;
        let metadata = file.metadata().map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        lock_exclusive(&file, &path)?;
        let identity = FileIdentity::of(&metadata);
        let direct = DirectFile {
            file,
            path,
            mode,
            identity,
        };
        let len_bytes = metadata.len();
        if len_bytes % PAGE_SIZE as u64 != 0 {
            return Err(Error::BadFileLength {
                path: direct.path,
                len_bytes,
                page_size: PAGE_SIZE,
            });
        }
        if len_bytes > 0 && mode == IoMode::Direct {
            direct.probe_direct_read()?;
        }
        Ok(direct)
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The I/O mode the file was opened with.
    pub fn mode(&self) -> IoMode {
        self.mode
    }

    /// The file's device and inode.
    pub fn identity(&self) -> FileIdentity {
        self.identity
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Some file systems accept the `O_DIRECT` flag at open and refuse the
    /// I/O itself; read page 0 once so that refusal surfaces at open.
    fn probe_direct_read(&self) -> Result<()> {
        let layout = std::alloc::Layout::from_size_align(PAGE_SIZE, PAGE_SIZE)
            .map_err(|_| Error::InvalidConfig("page layout".into()))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Error::InvalidConfig(
                "out of memory for a probe page".into(),
            ));
        }
        // SAFETY: `ptr` is a fresh, zeroed, exclusively owned allocation of
        // `PAGE_SIZE` bytes, freed below after the slice's last use.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr, PAGE_SIZE) };
        let result = self.file.read_at(buf, 0);
        // SAFETY: allocated above with the same layout; `buf` is dead.
        unsafe { std::alloc::dealloc(ptr, layout) };
        match result {
            Ok(_) => Ok(()),
            Err(source) => Err(open_error(&self.path, source)),
        }
    }
}

/// Takes the file's exclusive lock without waiting (see the module docs).
fn lock_exclusive(file: &File, path: &Path) -> Result<()> {
    loop {
        // SAFETY: `flock` on a descriptor this `File` owns and keeps open;
        // it touches no memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let source = io::Error::last_os_error();
        match source.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => {
                return Err(Error::FileLocked {
                    path: path.to_path_buf(),
                })
            }
            Some(libc::ENOLCK | libc::EOPNOTSUPP) => {
                log::warn!(
                    "pagepool: {} cannot be locked ({source}); opened without an owner lock",
                    path.display()
                );
                return Ok(());
            }
            _ => {
                return Err(Error::Open {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Maps an error from opening (or probing) a file, recognising the
/// file system's refusal of `O_DIRECT`.
fn open_error(path: &Path, source: io::Error) -> Error {
    if source.raw_os_error() == Some(libc::EINVAL) {
        Error::DirectIoUnsupported {
            path: path.to_path_buf(),
        }
    } else {
        Error::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn check_buf(buf_len: usize, buf_addr: usize) -> io::Result<()> {
    if buf_len != PAGE_SIZE || !buf_addr.is_multiple_of(PAGE_SIZE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "page buffers must be one page, 4096-aligned",
        ));
    }
    Ok(())
}

fn offset_of(page_no: u64) -> io::Result<u64> {
    page_no
        .checked_mul(PAGE_SIZE as u64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "page offset overflows"))
}

impl super::Storage for DirectFile {
    fn page_count(&self) -> io::Result<u64> {
        Ok(self.len_bytes()? / PAGE_SIZE as u64)
    }

    fn file_identity(&self) -> Option<FileIdentity> {
        Some(self.identity)
    }

    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn ring_writes(&self) -> bool {
        true
    }

    fn read_page(&self, page_no: u64, buf: &mut [u8]) -> io::Result<()> {
        check_buf(buf.len(), buf.as_ptr() as usize)?;
        let offset = offset_of(page_no)?;
        let mut done = 0;
        while done < PAGE_SIZE {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                // Past the end of the file: the rest of the page was never
                // written. A torn page then fails its checksum.
                Ok(0) => {
                    buf[done..].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_page(&self, page_no: u64, buf: &[u8]) -> io::Result<()> {
        check_buf(buf.len(), buf.as_ptr() as usize)?;
        // `write_all_at` retries short writes and EINTR.
        self.file.write_all_at(buf, offset_of(page_no)?)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::Frames;
    use crate::io::Storage;

    fn scratch(name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/unit-scratch");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn direct_round_trip_through_frame_memory() {
        let path = scratch("direct-round-trip");
        let file = DirectFile::open(&path, IoMode::Direct).unwrap();
        let frames = Frames::new(2).unwrap();
        // SAFETY: single-threaded test; nothing else touches the frames.
        let a: Vec<u8> = unsafe {
            frames.fill_bytes(0, |a| {
                a.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
                file.write_page(2, a).unwrap();
                a.to_vec()
            })
        };
        assert_eq!(file.page_count().unwrap(), 3);
        // SAFETY: as above.
        unsafe {
            frames.fill_bytes(1, |b| {
                file.read_page(2, b).unwrap();
                assert_eq!(&a[..], &b[..]);
                file.read_page(0, b).unwrap();
                assert!(b.iter().all(|&x| x == 0), "hole reads as zeros");
                file.read_page(9, b).unwrap();
                assert!(b.iter().all(|&x| x == 0), "past the end reads as zeros");
            })
        };
        file.sync().unwrap();
        let mode = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unaligned_buffers_are_refused_not_passed_to_the_kernel() {
        let path = scratch("direct-unaligned");
        let file = DirectFile::open(&path, IoMode::Direct).unwrap();
        let mut buf = [0u8; PAGE_SIZE + 1];
        let unaligned = if (buf.as_ptr() as usize).is_multiple_of(PAGE_SIZE) {
            &mut buf[1..]
        } else {
            &mut buf[..PAGE_SIZE]
        };
        let err = file.read_page(0, unaligned).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn file_of_odd_length_is_refused() {
        let path = scratch("direct-odd-length");
        std::fs::write(&path, vec![0u8; PAGE_SIZE + 100]).unwrap();
        let err = DirectFile::open(&path, IoMode::Direct).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadFileLength {
                    len_bytes: 4196,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("not a multiple"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn einval_at_open_means_no_direct_io() {
        let err = open_error(
            Path::new("/mnt/x"),
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(matches!(err, Error::DirectIoUnsupported { .. }));
        let err = open_error(
            Path::new("/mnt/x"),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(matches!(err, Error::Open { .. }));
    }

    #[test]
    fn missing_directory_is_an_open_error_naming_the_path() {
        let err = DirectFile::open("/nonexistent-dir/pages.db", IoMode::Direct).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/pages.db"),
            "{err}"
        );
    }

    #[test]
    fn buffered_mode_opens_and_round_trips() {
        let path = scratch("buffered");
        let file = DirectFile::open(&path, IoMode::Buffered).unwrap();
        let frames = Frames::new(1).unwrap();
        // SAFETY: single-threaded test.
        unsafe {
            frames.fill_bytes(0, |page| {
                page.fill(3);
                file.write_page(0, page).unwrap();
                page.fill(0);
                file.read_page(0, page).unwrap();
                assert!(page.iter().all(|&x| x == 3));
            })
        };
        std::fs::remove_file(&path).unwrap();
    }
}
