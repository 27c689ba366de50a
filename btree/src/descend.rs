//! The optimistic descent every operation starts with, the restart loop
//! around it, and lookups.

use pagepool::{FrameHint, OlcError, OptimisticGuard, PageId, Restart};

use crate::node::{self, Bytes, Head, Torn};
use crate::{corrupt, BTreeError, Session, MAX_RESTARTS, ROOT_AT, ROOT_HINT_AT};

/// Deeper than any tree of 2^64 entries with two children per node.
const MAX_DEPTH: usize = 64;

/// Why one attempt of an operation ended early.
pub(crate) enum Step {
    /// Start again from the meta page.
    Restart,
    /// A real error (not cured by restarting).
    Fail(BTreeError),
}

impl From<OlcError> for Step {
    #[inline]
    fn from(error: OlcError) -> Step {
        match error {
            OlcError::Restart => Step::Restart,
            OlcError::Pool(error) => Step::Fail(error.into()),
        }
    }
}

impl From<Restart> for Step {
    #[inline]
    fn from(_: Restart) -> Step {
        Step::Restart
    }
}

impl From<pagepool::Error> for Step {
    fn from(error: pagepool::Error) -> Step {
        Step::Fail(error.into())
    }
}

impl From<BTreeError> for Step {
    fn from(error: BTreeError) -> Step {
        Step::Fail(error)
    }
}

pub(crate) type StepResult<T> = Result<T, Step>;

/// Bytes read through `guard` made no sense: a restart if the guard no
/// longer validates (a writer was changing the page), corruption if it
/// does.
pub(crate) fn torn(guard: &OptimisticGuard<'_>, reason: &'static str) -> Step {
    match guard.check() {
        Err(Restart) => Step::Restart,
        Ok(()) => Step::Fail(corrupt(guard.page_id(), reason)),
    }
}

/// Backs off after the `attempt`-th restart in a row: spins briefly, then
/// yields, so that whoever made the attempt fail gets to run.
fn back_off(attempt: u32) {
    if attempt < 4 {
        for _ in 0..(1 << attempt) {
            std::hint::spin_loop();
        }
    } else {
        #[cfg(feature = "shuttle")]
        shuttle::thread::yield_now();
        #[cfg(not(feature = "shuttle"))]
        std::thread::yield_now();
    }
}

/// Where a descent ended: the node at the wanted level and its parent
/// (the meta page for the root), both still optimistic.
pub(crate) struct Descent<'pool> {
    pub(crate) parent: OptimisticGuard<'pool>,
    pub(crate) node: OptimisticGuard<'pool>,
    pub(crate) head: Head,
    /// The position in `parent` of the pointer to `node` (unused for the
    /// root).
    pub(crate) position: usize,
    /// The least key above everything `node` covers, if any (filled only
    /// when asked for).
    pub(crate) upper_fence: Option<Vec<u8>>,
}

impl<'pool> Session<'pool> {
    /// Runs `attempt` until it does not restart.
    pub(crate) fn retry<T>(
        &self,
        mut attempt: impl FnMut() -> StepResult<T>,
    ) -> Result<T, BTreeError> {
        for restarts in 0..MAX_RESTARTS {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Step::Fail(error)) => return Err(error),
                Err(Step::Restart) => back_off(restarts),
            }
        }
        Err(BTreeError::TooManyRestarts)
    }

    /// The page id of page `page_no` of the tree's file.
    pub(crate) fn page(&self, page_no: u64) -> PageId {
        PageId::new(self.tree.meta.file_id(), page_no)
    }

    /// Descends towards `key` (the first key `> key` with `exclusive`)
    /// to the node at `level` (0: the leaf), coupling each step. Each
    /// step starts on the frame the parent's hint names if it holds the
    /// child (`node.rs`), and a stale hint is replaced by the child's
    /// frame on the way (unlogged: a hint store does not dirty the page).
    pub(crate) fn descend(
        &self,
        key: &[u8],
        exclusive: bool,
        level: u8,
        want_fence: bool,
    ) -> StepResult<Descent<'pool>> {
        let mut meta = self.pin.optimistic_guard(self.tree.meta)?;
        let root = node::Child {
            page_no: meta
                .view()
                .load_u64(ROOT_AT)
                .map_err(|_| torn(&meta, "meta page"))?,
            frame_hint: FrameHint::from_bits(
                meta.view()
                    .load_u32(ROOT_HINT_AT)
                    .map_err(|_| torn(&meta, "meta page"))?,
            ),
            hint_at: ROOT_HINT_AT,
        };
        let mut node = self.step(&mut meta, root)?;
        let mut parent = meta;
        let mut position = 0;
        let mut fence: Option<Vec<u8>> = None;
        let mut above: Option<u8> = None;
        for _ in 0..MAX_DEPTH {
            let view = node.view();
            let head = node::head(view).map_err(|Torn| torn(&node, "bad node header"))?;
            if above.is_some_and(|above| head.level + 1 != above) || head.level < level {
                return Err(torn(&node, "node at the wrong level"));
            }
            if head.level == level {
                return Ok(Descent {
                    parent,
                    node,
                    head,
                    position,
                    upper_fence: fence,
                });
            }
            let (index, _) = node::search(view, head, key, exclusive)
                .map_err(|Torn| torn(&node, "bad inner node"))?;
            if want_fence && index < head.count {
                let mut separator = Vec::new();
                node::key_into(view, head, index, &mut separator)
                    .map_err(|Torn| torn(&node, "bad separator"))?;
                fence = Some(separator);
            }
            let child =
                node::child_at(view, head, index).map_err(|Torn| torn(&node, "bad child"))?;
            let next = self.step(&mut node, child)?;
            above = Some(head.level);
            position = index;
            parent = node;
            node = next;
        }
        Err(torn(&node, "tree deeper than any tree can be"))
    }

    /// One step of a descent: the guard of `child` of `node` (coupled),
    /// whose hint in `node` is brought up to date if it was stale.
    #[inline]
    fn step(
        &self,
        node: &mut OptimisticGuard<'pool>,
        child: node::Child,
    ) -> StepResult<OptimisticGuard<'pool>> {
        let next = node.child_hinted(self.page(child.page_no), child.frame_hint)?;
        if next.frame_hint() != child.frame_hint {
            // Refused if the node changed or is latched: the next descent
            // tries again. Either way `node` is as valid as it was.
            let _ = node.store_frame_hint(child.hint_at, next.frame_hint());
        }
        Ok(next)
    }

    /// Finds `key` and copies its value into `out` (validated); false if
    /// the key is absent.
    pub(crate) fn lookup(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, BTreeError> {
        self.retry(|| {
            let Descent {
                parent,
                node: leaf,
                head,
                ..
            } = self.descend(key, false, 0, false)?;
            drop(parent);
            let view = leaf.view();
            let (index, found) =
                node::search(view, head, key, false).map_err(|Torn| torn(&leaf, "bad leaf"))?;
            if !found {
                return Ok(leaf.finish(false)?);
            }
            let slot = node::slot(view, head, index).map_err(|Torn| torn(&leaf, "bad slot"))?;
            if slot.value_len > node::MAX_ENTRY {
                return Err(torn(&leaf, "value too long"));
            }
            // Straight into the caller's buffer: what a failed validation
            // leaves there is overwritten by the next attempt.
            out.resize(slot.value_len, 0);
            view.copy(slot.value_at(), out)
                .map_err(|Torn| torn(&leaf, "value out of the page"))?;
            Ok(leaf.finish(true)?)
        })
    }
}
