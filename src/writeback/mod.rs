//! Write-back: getting dirty pages to the disk, in batches, off the
//! critical path, in the order a write-ahead log needs.
//!
//! | file            | holds                                                        |
//! |-----------------|--------------------------------------------------------------|
//! | `dirty.rs`      | each frame's recovery LSN; `dirty_pages`, `min_recovery_lsn` |
//! | `batch.rs`      | writing a batch of dirty frames: one WAL flush, many writes in flight |
//! | `flush.rs`      | `flush`, `flush_file`, `flush_all`, `flush_until`; the one-page path eviction and waits use; syncs |
//! | `pace.rs`       | how fast a flush writes: batch, rate, and a share of the device while the foreground reads |
//! | `writer.rs`     | the background writer: keeps the frames ahead of the clock hand clean |
//! | `recovery.rs`   | `write_new` and `extend_file`, the writes redo needs          |
//! | `durability.rs` | what each file has written but not yet synced                 |
//!
//! # A page's way to the disk
//!
//! | state of the frame                      | `DIRTY` | recovery LSN | in the file's unsynced set |
//! |-----------------------------------------|---------|--------------|----------------------------|
//! | clean and durable                       | no      | none         | no                         |
//! | changed (a writer released it dirty)    | yes     | the page's LSN at the first change since clean | maybe (an older write) |
//! | being written (a batch holds it shared) | no      | kept         | maybe                      |
//! | written, not synced                     | no      | none         | yes, with the recovery LSN |
//! | synced                                  | no      | none         | no                         |
//!
//! Invariants:
//!
//! 1. A frame's recovery LSN is set only by a thread holding the frame
//!    exclusively, and only if the page was clean: at its first `set_lsn`
//!    since (a hold that logs two changes records the first), or at the
//!    release that makes it dirty without one; lowered to a lost write's
//!    after a failed sync; cleared only after the write it covers has been
//!    recorded in the file's unsynced set, by the thread that wrote it
//!    (holding the latch), and when the page is unmapped.
//! 2. So a change that is not yet durable is always visible to
//!    [`dirty_pages`](crate::BufferPool::dirty_pages): in a frame's
//!    recovery LSN, or in a file's unsynced set, or both for a moment.
//!    `dirty_pages` reads the frames first and the files second, so a
//!    page that moves from one to the other while it looks is seen at
//!    least once; of each frame it reads the state word before the
//!    recovery LSN, so a writer's release between the two is seen.
//! 3. No page is written before the WAL hook has returned `Ok` for an
//!    LSN at least the page's: a batch stamps and latches its pages, calls
//!    the hook once with their highest LSN, and only then writes. A page's
//!    LSN cannot change in between (its latch is held).
//! 4. A write that fails (or a hook that fails or panics) leaves the page
//!    dirty, with its recovery LSN, and resident: nothing is dropped.

mod batch;
mod dirty;
pub(crate) mod durability;
mod flush;
mod pace;
mod recovery;
mod writer;

pub(crate) use batch::WriteOrigin;
pub use dirty::DirtyPage;
pub(crate) use dirty::RecoveryLsns;
pub(crate) use writer::{BackgroundWriter, WriterSignal};
