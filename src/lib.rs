#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(clippy::undocumented_unsafe_blocks)]

mod access;
mod config;
mod epoch;
mod error;
mod file_table;
mod frames;
mod held;
mod io;
mod latch;
mod lifecycle;
mod metrics;
mod miss;
mod page;
mod pool;
mod stats;
mod sync;
mod table;
mod undo;
mod view;
mod writeback;

pub use access::{FrameHint, OlcError, OptimisticGuard, PageMut, PageRef, Restart, ThreadPin};
pub use access::{OwnedPageMut, OwnedPageRef, ReadFuture, WriteFuture};
pub use config::{PoolConfig, WalFlush, WalHook, WriterConfig, MAX_FRAMES};
pub use error::{Error, Result};
pub use held::GuardKind;
pub use io::{DirectFile, EngineKind, FileIdentity, IoEngine, IoMode, MemoryStorage, Storage};
pub use lifecycle::ROOT_SLOTS;
pub use page::{
    FileId, PageCheck, PageId, MAX_FILES, MAX_PAGES_PER_FILE, PAGE_DATA_SIZE, PAGE_SIZE,
};
pub use pool::{BufferPool, CloseError};
pub use stats::Stats;
pub use view::{OptimisticView, OutOfBounds};
pub use writeback::DirtyPage;

// Typed zero-copy views and the slotted heap page (issue 7).
#[cfg(not(any(loom, feature = "shuttle")))]
pub mod heap;
pub mod typed;
pub use typed::TypedError;

/// Guides: the design, choosing an access mode, and the rules of use
/// (the repository's `docs/`, as pages of these docs).
pub mod guide {
    #[doc = include_str!("../docs/design.md")]
    pub mod design {}
    #[doc = include_str!("../docs/access-modes.md")]
    pub mod access_modes {}
    #[doc = include_str!("../docs/rules-of-use.md")]
    pub mod rules_of_use {}
}

/// Fault injection, for an engine's own tests: a [`Storage`] wrapper that
/// fails reads, writes and syncs on purpose (`EIO`, `ENOSPC`, short and
/// torn transfers, flipped bits, delays), on a schedule or by seeded
/// chance, so that the engine's error paths run under test.
///
/// Not for production stores: every operation takes a mutex.
///
/// ```
/// use pagepool::testing::{FaultKind, Faulty, IoOp};
/// use pagepool::{BufferPool, MemoryStorage, PoolConfig};
///
/// let storage = Faulty::new(Box::new(MemoryStorage::new()));
/// let faults = storage.controller();
/// let pool = BufferPool::open(PoolConfig::new(16))?;
/// let file = pool.open_storage(Box::new(storage))?;
/// faults.fail_next(IoOp::Sync, FaultKind::Eio, 1);
/// let (_page_id, page) = pool.allocate(file)?;
/// drop(page);
/// assert!(pool.flush_all().is_err()); // the sync failed; the page is kept
/// pool.flush_all()?;                  // and written again
/// # Ok::<(), pagepool::Error>(())
/// ```
pub mod testing {
    pub use crate::io::{FaultController, FaultKind, FaultStats, Faulty, IoOp};
}

#[cfg(any(loom, test, feature = "internals"))]
#[doc(hidden)]
pub mod __model;
