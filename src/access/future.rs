//! The async API: page accesses that suspend the task, not the thread.
//!
//! [`BufferPool::read_async`] and [`BufferPool::write_async`] return
//! futures of owned guards (`owned.rs`); [`BufferPool::optimistic_async`]
//! runs an optimistic read. Each poll:
//!
//! 1. looks the page up (pinned for the lookup only: nothing is pinned
//!    between polls, so a task that waits holds no epoch back);
//! 2. a resident page whose latch is free: takes it, `Ready` (a hit
//!    completes in its first poll, without suspending);
//! 3. a frame that blocks it (a read in flight, a writer, readers for a
//!    writer): registers the task's waker on the frame's wait-queue slot
//!    (`latch/wait.rs`) and returns `Pending`; the release, the read's
//!    completion or the eviction that ends the block wakes it;
//! 4. a page that is neither: starts its read (`miss/batch.rs`), then as
//!    3. If a read this future started failed, it returns that error. If
//!    no frame is free without waiting (every frame latched or in
//!    flight), the task yields (wakes itself and returns `Pending`)
//!    instead of blocking its thread.
//!
//! With the io_uring and worker engines no thread blocks on a miss. With
//! the sync engine a miss is read in the poll itself, on the executor's
//! thread (the engine has no one else to read it). Finding a free frame
//! can still write a dirty victim back in the poll, as it does for a
//! synchronous miss.
//!
//! A task's wait has no deadline of its own (the pool has no timer to
//! wake it with): bound it with the executor's timeout
//! (`tokio::time::timeout`). Dropping the future abandons the wait; a read
//! it started goes on and its page stays cached.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::owned::{OwnedPageMut, OwnedPageRef};
use crate::error::{Error, Result};
use crate::frames::FrameId;
use crate::latch::{Blocked, Want};
use crate::miss::{Begun, Started, StartedRead, Submission};
use crate::page::PageId;
use crate::pool::BufferPool;
use crate::stats::Counter;
use crate::view::OptimisticView;

/// Lookups a poll makes before it yields to the executor (a page that
/// keeps moving between frames under it).
const LOOKS_PER_POLL: u32 = 64;

/// The future of [`BufferPool::read_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ReadFuture {
    access: Access,
}

/// The future of [`BufferPool::write_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WriteFuture {
    access: Access,
}

#[derive(Debug)]
struct Access {
    pool: Arc<BufferPool>,
    page_id: PageId,
    want: Want,
    /// The read this future started, if any, whose error it collects.
    started: Option<Started>,
}

impl Future for ReadFuture {
    type Output = Result<OwnedPageRef>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let access = &mut self.get_mut().access;
        access.poll(cx).map(|latched| {
            latched.map(|frame_id| {
                OwnedPageRef::new(Arc::clone(&access.pool), frame_id, access.page_id)
            })
        })
    }
}

impl Future for WriteFuture {
    type Output = Result<OwnedPageMut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let access = &mut self.get_mut().access;
        access.poll(cx).map(|latched| {
            latched.map(|frame_id| {
                OwnedPageMut::new(Arc::clone(&access.pool), frame_id, access.page_id)
            })
        })
    }
}

impl Access {
    /// Steps 1–4 of the module docs; `Ready` with the frame latched as
    /// `want` asks.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<FrameId>> {
        if let Some(started) = self.started {
            return self.poll_started(started, cx);
        }
        let pool = &*self.pool;
        let page_id = self.page_id;
        let slot = pool.thread_slot();
        let mut exact = false;
        for _ in 0..LOOKS_PER_POLL {
            let Some(frame_id) = pool.lookup(page_id, &slot, exact) else {
                let mut submission = Submission::new(pool);
                // Only a reader can take over the latch a read ends with.
                let wanted = self.want == Want::Shared;
                match pool.start_load(page_id, &slot, &mut submission, false, wanted) {
                    Err(error) => return Poll::Ready(Err(error)),
                    Ok(Begun::Started(started)) if wanted => {
                        self.started = Some(started);
                        drop(submission);
                        return self.poll_started(started, cx);
                    }
                    Ok(Begun::Started(_) | Begun::ReadNow | Begun::Raced) => {}
                    // Every frame is latched or in flight: let other tasks
                    // (and the reads) run, and look again.
                    Ok(Begun::NoFrame) => break,
                }
                continue;
            };
            let meta = pool.frames.meta(frame_id);
            let taken = match self.want {
                Want::Exclusive => meta.latch.try_lock_exclusive(),
                _ => meta.latch.try_lock_shared(),
            };
            match taken {
                Ok(()) if meta.page_id() == Some(page_id) => {
                    slot.stats.bump(Counter::Hits);
                    return Poll::Ready(Ok(frame_id));
                }
                Ok(()) => {
                    self.release(frame_id);
                    exact = true;
                }
                Err(Blocked::Overflow) => {
                    return Poll::Ready(Err(Error::TooManySharedGuards { page_id }))
                }
                Err(Blocked::Free) => exact = true,
                Err(_) => {
                    // State first, page id second (see pool.rs).
                    let seen = meta.latch.load();
                    if meta.page_id_raw() != page_id.raw() {
                        exact = true;
                        continue;
                    }
                    if !pool.queues.register_waker(
                        &meta.latch,
                        frame_id,
                        seen,
                        self.want,
                        cx.waker(),
                    ) {
                        return Poll::Pending;
                    }
                    exact = false;
                }
            }
        }
        yield_task(cx)
    }

    /// Polls the read this future started: its latch, its error, or a
    /// wait for it.
    fn poll_started(&mut self, started: Started, cx: &mut Context<'_>) -> Poll<Result<FrameId>> {
        let pool = &*self.pool;
        let frame_id = started.frame_id;
        let latch = &pool.frames.meta(frame_id).latch;
        match pool.collect_started(started) {
            StartedRead::Latched => {
                self.started = None;
                Poll::Ready(Ok(frame_id))
            }
            StartedRead::Failed(error) => {
                self.started = None;
                match error {
                    Some(error) => Poll::Ready(Err(error)),
                    // Its error was dropped (too many kept): look again.
                    None => self.poll(cx),
                }
            }
            StartedRead::InFlight => {
                let seen = latch.load();
                let waker = cx.waker();
                if !pool
                    .queues
                    .register_waker(latch, frame_id, seen, Want::Optimistic, waker)
                {
                    return Poll::Pending;
                }
                // Settled: the read is ending; its hand-over follows at
                // once. Let it run, and look again.
                yield_task(cx)
            }
        }
    }

    fn release(&self, frame_id: FrameId) {
        match self.want {
            Want::Exclusive => self.pool.release_exclusive(frame_id, false),
            _ => self.pool.release_shared(frame_id),
        }
    }
}

/// Gives the thread and the executor to others, and asks to be polled
/// again: for waits that end without a wake-up of their own (a read's
/// hand-over, a frame coming free).
fn yield_task<T>(cx: &mut Context<'_>) -> Poll<T> {
    crate::sync::yield_now();
    cx.waker().wake_by_ref();
    Poll::Pending
}

impl Drop for Access {
    fn drop(&mut self) {
        if let Some(started) = self.started.take() {
            self.pool.abandon(started);
        }
    }
}

impl BufferPool {
    /// A shared latch on `page_id` for a task: a future of an
    /// [`OwnedPageRef`], which the task may hold across `.await`s (it pins
    /// nothing). A hit completes in the first poll; a miss starts the read
    /// and suspends the task until the read completes (see the module
    /// docs of `access/future.rs` for the engines).
    ///
    /// ```
    /// # use pagepool::*;
    /// # use std::sync::Arc;
    /// # async fn demo(pool: Arc<BufferPool>, page_id: PageId) -> Result<u64> {
    /// let page = pool.read_async(page_id).await?;
    /// let value = page.view().load_u64(0)?;
    /// # Ok(value) }
    /// ```
    pub fn read_async(self: &Arc<Self>, page_id: PageId) -> ReadFuture {
        ReadFuture {
            access: Access {
                pool: Arc::clone(self),
                page_id,
                want: Want::Shared,
                started: None,
            },
        }
    }

    /// The exclusive latch on `page_id` for a task: a future of an
    /// [`OwnedPageMut`], as [`read_async`](Self::read_async). A task that
    /// waits for readers does not hold new readers off (see the module
    /// docs of `latch/wait.rs`).
    pub fn write_async(self: &Arc<Self>, page_id: PageId) -> WriteFuture {
        WriteFuture {
            access: Access {
                pool: Arc::clone(self),
                page_id,
                want: Want::Exclusive,
                started: None,
            },
        }
    }

    /// An optimistic read for a task: runs `read` on the page and returns
    /// its result once the version validates, without a latch, on a hit
    /// without suspending. Otherwise (a miss, a writer, validations that
    /// keep failing) it waits for a shared latch as
    /// [`read_async`](Self::read_async) and runs `read` under it.
    pub async fn optimistic_async<R>(
        self: &Arc<Self>,
        page_id: PageId,
        mut read: impl FnMut(OptimisticView<'_>) -> R,
    ) -> Result<R> {
        if let Some(result) = self.optimistic_hit(page_id, &mut read) {
            return Ok(result);
        }
        let page = self.read_async(page_id).await?;
        Ok(read(page.view()))
    }

    /// [`read`](Self::read) with an owned guard (see [`OwnedPageRef`]).
    pub fn read_owned(self: &Arc<Self>, page_id: PageId) -> Result<OwnedPageRef> {
        let page = self.read(page_id)?;
        Ok(OwnedPageRef::from_ref(self, page))
    }

    /// [`write`](Self::write) with an owned guard (see [`OwnedPageMut`]).
    pub fn write_owned(self: &Arc<Self>, page_id: PageId) -> Result<OwnedPageMut> {
        let page = self.write(page_id)?;
        Ok(OwnedPageMut::from_mut(self, page))
    }
}
