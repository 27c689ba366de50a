#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod error;
mod frames;
mod io;
mod latch;
mod page;
mod sync;
mod table;

pub use error::{Error, Result};
pub use io::{DirectFile, IoMode, MemoryStorage, Storage};
pub(crate) use frames::Frames;
pub use page::{FileId, PageId, MAX_FILES, MAX_PAGES_PER_FILE, PAGE_DATA_SIZE, PAGE_SIZE};
