//! The pool's open data files, by [`FileId`].
//!
//! A file id is the high 16 bits of every [`PageId`](crate::PageId) of the
//! file, so it is what a write-ahead log records and what an engine's
//! catalog names a file by. It must mean the same file after a restart:
//! [`BufferPool::open_file_as`](crate::BufferPool::open_file_as) opens a
//! file under an id the caller chose, and `open_file` takes the lowest id
//! that is free. The table refuses a second file under one id, and a file
//! that is already open under another.
//!
//! Invariants:
//! 1. `slots[i]` is `Some` exactly when file id `i` is open; `slots` never
//!    has a trailing `None` (its length is one past the highest open id).
//! 2. No two open files share a [`FileIdentity`] (device and inode).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::FileIdentity;
use crate::page::{FileId, MAX_FILES};
use crate::pool::DataFile;

/// The open files, indexed by file id. Guarded by the pool's `RwLock`:
/// opening a file writes it, every lookup reads it.
#[derive(Debug, Default)]
pub(crate) struct FileTable {
    slots: Vec<Option<Arc<DataFile>>>,
    /// How many slots are `Some`: when it is `slots.len()`, there is no
    /// hole and the lowest free id is the length (no scan).
    open: usize,
}

impl FileTable {
    /// The file open under `file_id`.
    pub(crate) fn get(&self, file_id: FileId) -> Option<&Arc<DataFile>> {
        self.slots.get(file_id.index())?.as_ref()
    }

    /// Every open file with its id, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (FileId, &Arc<DataFile>)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let file = slot.as_ref()?;
            Some((FileId(index as u16), file))
        })
    }

    /// A copy of the open files and their ids, for work that must not
    /// hold the table's lock (flushes).
    pub(crate) fn snapshot(&self) -> Vec<(FileId, Arc<DataFile>)> {
        self.iter()
            .map(|(file_id, file)| (file_id, Arc::clone(file)))
            .collect()
    }

    /// Errors if a file with `identity` is open already (invariant 2).
    pub(crate) fn refuse_open_twice(
        &self,
        identity: Option<FileIdentity>,
        path: impl FnOnce() -> PathBuf,
    ) -> Result<()> {
        let Some(identity) = identity else {
            return Ok(());
        };
        match self
            .iter()
            .find(|(_, file)| file.identity == Some(identity))
        {
            Some((file_id, _)) => Err(Error::AlreadyOpen {
                path: path(),
                file_id,
            }),
            None => Ok(()),
        }
    }

    /// The id a file opened without one gets: the lowest that is free.
    pub(crate) fn lowest_free(&self) -> Result<FileId> {
        let index = if self.open == self.slots.len() {
            self.slots.len()
        } else {
            let hole = self.slots.iter().position(Option::is_none);
            debug_assert!(hole.is_some(), "fewer open files than slots: a hole");
            hole.unwrap_or(self.slots.len())
        };
        if index >= MAX_FILES {
            return Err(Error::TooManyFiles(MAX_FILES));
        }
        Ok(FileId(index as u16))
    }

    /// Registers `file` under `file_id`, or errors if that id is taken
    /// (invariant 1).
    pub(crate) fn insert(&mut self, file_id: FileId, file: Arc<DataFile>) -> Result<()> {
        let index = file_id.index();
        debug_assert!(index < MAX_FILES, "FileId constructors check the range");
        if self.get(file_id).is_some() {
            return Err(Error::FileIdInUse(file_id));
        }
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(file);
        self.open += 1;
        debug_assert!(self.slots.last().is_some_and(Option::is_some));
        debug_assert!(self.open <= self.slots.len());
        Ok(())
    }
}
