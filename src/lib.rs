#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod access;
mod config;
mod epoch;
mod error;
mod frames;
mod held;
mod io;
mod latch;
mod lifecycle;
mod miss;
mod page;
mod pool;
mod stats;
mod sync;
mod table;
mod undo;
mod view;
mod writeback;

pub use access::{OlcError, OptimisticGuard, PageMut, PageRef, Restart, ThreadPin};
pub use access::{OwnedPageMut, OwnedPageRef, ReadFuture, WriteFuture};
pub use config::{PoolConfig, WalFlush, WalHook, WriterConfig, MAX_FRAMES};
pub use error::{Error, Result};
pub use held::GuardKind;
pub use io::{DirectFile, EngineKind, FileIdentity, IoEngine, IoMode, MemoryStorage, Storage};
pub use io::{FaultController, FaultKind, FaultStats, Faulty, IoOp};
pub use lifecycle::ROOT_SLOTS;
pub use page::{FileId, PageId, MAX_FILES, MAX_PAGES_PER_FILE, PAGE_DATA_SIZE, PAGE_SIZE};
pub use pool::{BufferPool, CloseError};
pub use stats::Stats;
pub use view::{OptimisticView, OutOfBounds};
pub use writeback::DirtyPage;

// Typed zero-copy views and the slotted heap page (issue 7).
#[cfg(not(any(loom, feature = "shuttle")))]
pub mod heap;
pub mod typed;
pub use typed::TypedError;

#[cfg(any(loom, test, feature = "internals"))]
#[doc(hidden)]
pub mod __model;
