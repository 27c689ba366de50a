//! Recovery LSNs: for each frame, the LSN of the first change since its
//! page was last clean, and the checkpoint's view of what is not durable.
//!
//! See the parent module's table and invariants 1–2. The LSNs live in an
//! array of their own, not in the frame metadata: a hit reads the metadata
//! (four frames to a cache line) and never this.

use crate::frames::FrameId;
use crate::latch::{EXCL, FREE};
use crate::page::PageId;
use crate::pool::{BufferPool, PoolCore};
use crate::sync::{AtomicU64, Ordering};
use crate::view::load_lsn;

/// No recovery LSN: the frame's page is clean (or being written by
/// someone who has recorded the write already).
const CLEAN: u64 = u64::MAX;

/// A page that is not yet durable, as [`BufferPool::dirty_pages`] lists
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtyPage {
    /// The page.
    pub page_id: PageId,
    /// The LSN of its first change since it was last durable: redo of
    /// this page starts there.
    pub recovery_lsn: u64,
}

/// Each frame's recovery LSN, or [`CLEAN`].
pub(crate) struct RecoveryLsns(Box<[AtomicU64]>);

impl std::fmt::Debug for RecoveryLsns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryLsns")
            .field("frames", &self.0.len())
            .finish()
    }
}

impl RecoveryLsns {
    pub(crate) fn new(frames: usize) -> RecoveryLsns {
        RecoveryLsns((0..frames).map(|_| AtomicU64::new(CLEAN)).collect())
    }

    /// The frame's recovery LSN, if its page is dirty or being written.
    #[inline]
    pub(crate) fn get(&self, frame_id: FrameId) -> Option<u64> {
        match self.0[frame_id].load(Ordering::Acquire) {
            CLEAN => None,
            lsn => Some(lsn),
        }
    }

    /// A writer that changed the frame is releasing it (it holds the
    /// latch exclusively): a page clean until now takes `page_lsn`, the
    /// LSN its first change carries; a dirty one keeps its older LSN.
    #[inline]
    pub(crate) fn dirtied(&self, frame_id: FrameId, page_lsn: u64) {
        let cell = &self.0[frame_id];
        if cell.load(Ordering::Relaxed) == CLEAN {
            // `CLEAN` itself is no LSN: an LSN of u64::MAX is kept as the
            // largest one that is.
            cell.store(page_lsn.min(CLEAN - 1), Ordering::Release);
        }
    }

    /// Lowers the frame's recovery LSN to `lsn` (a write of the page was
    /// lost: its changes since `lsn` are not durable). The caller holds
    /// the latch exclusively.
    pub(crate) fn lower(&self, frame_id: FrameId, lsn: u64) {
        self.0[frame_id].fetch_min(lsn.min(CLEAN - 1), Ordering::AcqRel);
    }

    /// The write the LSN covered is recorded as unsynced (invariant 1):
    /// the frame is clean.
    #[inline]
    pub(crate) fn clear(&self, frame_id: FrameId) {
        self.0[frame_id].store(CLEAN, Ordering::Release);
    }
}

impl PoolCore {
    /// Records the first change since clean of a frame this thread holds
    /// exclusively and is releasing dirty.
    #[inline]
    pub(crate) fn note_dirtied(&self, frame_id: FrameId) {
        let lsn = load_lsn(self.frames.words(frame_id));
        self.recovery_lsns.dirtied(frame_id, lsn);
    }

    /// The frames whose page is dirty or being written, with their
    /// recovery LSNs (see [`dirty_pages`](BufferPool::dirty_pages)).
    fn dirty_frames(&self) -> Vec<DirtyPage> {
        let mut found = Vec::new();
        for frame_id in 0..self.frames.frame_count() {
            let meta = self.frames.meta(frame_id);
            // The state first (Acquire), the LSN second: a writer stores
            // the LSN before the release that clears `EXCL`, so a state
            // seen released comes with its LSN (the other order can miss
            // a release that falls between the two loads).
            let state = meta.latch.load();
            let recovery_lsn = match self.recovery_lsns.get(frame_id) {
                Some(lsn) => lsn,
                // Latched exclusively: its holder may have logged a change
                // it has not released (nor stamped) yet; the LSN the page
                // carries now is at most that change's.
                None if state & (EXCL | FREE) == EXCL => load_lsn(self.frames.words(frame_id)),
                None => continue,
            };
            // Read after the LSN (Acquire): the page id of the tenancy
            // that set it, or a later one's (then the earlier page is in
            // its file's unsynced set, read next).
            let Some(page_id) = meta.page_id() else {
                continue;
            };
            if meta.latch.load() & FREE != 0 {
                continue;
            }
            found.push(DirtyPage {
                page_id,
                recovery_lsn,
            });
        }
        found
    }
}

impl BufferPool {
    /// Every page that is not yet durable, with its recovery LSN: pages
    /// changed in memory, pages being written, and pages written but not
    /// yet synced. One entry per page, in page order.
    ///
    /// For a fuzzy checkpoint: every change logged before the call that is
    /// still not durable when it returns is covered by an entry whose
    /// recovery LSN is at most that change's LSN, provided the engine logs
    /// a change while it holds the page's exclusive latch (the WAL rule):
    /// a page latched exclusively while the call looks at it is listed
    /// with the LSN it carries then, since its holder may have logged a
    /// change it has not released yet. A page changed while the call runs
    /// may or may not appear (its LSN is then newer than any the engine
    /// logged before the call). Nothing is stopped or latched.
    ///
    /// ```
    /// use pagepool::{BufferPool, MemoryStorage, PoolConfig};
    ///
    /// let pool = BufferPool::open(PoolConfig::new(8))?;
    /// let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    /// let (page_id, mut page) = pool.allocate(file)?;
    /// page.set_lsn(41);
    /// drop(page);
    /// assert_eq!(pool.dirty_pages()[0].recovery_lsn, 41);
    /// assert_eq!(pool.min_recovery_lsn(), Some(41));
    /// pool.flush_all()?;
    /// assert!(pool.dirty_pages().is_empty());
    /// # Ok::<(), pagepool::Error>(())
    /// ```
    pub fn dirty_pages(&self) -> Vec<DirtyPage> {
        // Frames first, files second (module invariant 2).
        let mut pages = self.dirty_frames();
        let files = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        for (file_id, file) in files {
            pages.extend(
                file.sync
                    .unsynced_pages()
                    .into_iter()
                    .map(|(page_no, recovery_lsn)| DirtyPage {
                        page_id: PageId::new(file_id, page_no),
                        recovery_lsn,
                    }),
            );
        }
        pages.sort_unstable_by_key(|page| (page.page_id, page.recovery_lsn));
        pages.dedup_by_key(|page| page.page_id);
        pages
    }

    /// The oldest recovery LSN of any page that is not yet durable (where
    /// redo would have to start), or `None` when everything is durable.
    /// A checkpoint may truncate the log below it.
    pub fn min_recovery_lsn(&self) -> Option<u64> {
        self.dirty_pages()
            .iter()
            .map(|page| page.recovery_lsn)
            .min()
    }
}
