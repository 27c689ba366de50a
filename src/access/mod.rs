//! The ways a caller reaches a page, from the cheapest to the strongest.
//!
//! | type                 | holds                       | gives                         | file                  |
//! |----------------------|-----------------------------|-------------------------------|-----------------------|
//! | [`OptimisticGuard`]  | the epoch pin, a version    | an `OptimisticView`, `check`  | `optimistic_guard.rs` |
//! | [`FrameHint`]        | nothing (a frame's number)  | a child's guard without the page table | `frame_hint.rs` |
//! | [`PageRef`]          | a shared latch              | `&[u8]` of the frame          | `guards.rs`           |
//! | [`PageMut`]          | the exclusive latch         | atomic stores, `&[u8]`        | `guards.rs`           |
//! | [`ThreadPin`]        | the thread's session pin    | the calls above, fence-free   | `guards.rs`           |
//! | [`OwnedPageRef`]     | a shared latch, an `Arc` of the pool | `&[u8]`; `Send`, held across `.await` | `owned.rs` |
//! | [`OwnedPageMut`]     | the exclusive latch, an `Arc` of the pool | atomic stores; `Send`  | `owned.rs`            |
//!
//! The async API (`read_async`, `write_async`, `optimistic_async`) is in
//! `future.rs`: futures of the owned guards.
//!
//! Moving between them without letting go (`upgrade.rs`):
//!
//! | from → to               | call                          | fails when                                  |
//! |-------------------------|-------------------------------|---------------------------------------------|
//! | optimistic → exclusive  | `OptimisticGuard::upgrade`    | the version moved, or anyone holds a latch  |
//! | optimistic → shared     | `OptimisticGuard::share`      | the version moved, or a writer holds/waits  |
//! | shared → exclusive      | `PageRef::try_upgrade`        | another shared holder exists (no waiting)   |
//! | exclusive → shared      | `PageMut::downgrade`          | never (publishes the writes)                |
//! | none → shared/exclusive | `ThreadPin::try_read`/`try_write` | it would wait for a latch or for I/O    |

mod frame_hint;
mod future;
mod guards;
mod optimistic_guard;
mod owned;
mod upgrade;

pub use frame_hint::FrameHint;
pub use future::{ReadFuture, WriteFuture};
pub use guards::{PageMut, PageRef, ThreadPin};
pub use optimistic_guard::{OlcError, OptimisticGuard, Restart};
pub use owned::{OwnedPageMut, OwnedPageRef};
