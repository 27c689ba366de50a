//! Writers: upsert, split, remove, and freeing empty leaves.
//!
//! Every exclusive latch here comes from an upgrade of an optimistic guard
//! (it succeeds only if the node is unchanged since the descent read it,
//! and never waits), so the tree's writers cannot deadlock one another.
//! The calls that may wait — `allocate` for a split's new nodes,
//! `free_page` for an empty leaf — run once every optimistic guard is
//! gone, holding only the tree latches they need; the pool's free-list
//! protocol never waits for a tree page, so those waits end too.

use pagepool::PageMut;

use crate::descend::{Descent, Step, StepResult};
use crate::node::{self, Image, Torn};
use crate::{corrupt, BTreeError, Session, ROOT_AT, ROOT_HINT_AT};

/// What an insert attempt found.
enum Inserted {
    Done,
    /// The leaf has no room: split it, then try again.
    Full,
}

/// What a split attempt found.
enum Split {
    /// Split, or no longer needed.
    Done,
    /// The parent has no room for the separator: split it first.
    ParentFull,
}

fn image(page: &PageMut<'_>) -> StepResult<Image> {
    Image::load(page)
        .map_err(|Torn| Step::Fail(corrupt(page.page_id(), "bad node under the latch")))
}

fn store(image: &mut Image, page: &mut PageMut<'_>) -> StepResult<()> {
    image
        .store(page)
        .map_err(|Torn| Step::Fail(corrupt(page.page_id(), "cannot store a node")))
}

impl Session<'_> {
    pub(crate) fn upsert(&self, key: &[u8], value: &[u8]) -> Result<(), BTreeError> {
        loop {
            match self.retry(|| self.try_upsert(key, value))? {
                Inserted::Done => return Ok(()),
                Inserted::Full => self.make_room(key, key.len() + value.len())?,
            }
        }
    }

    fn try_upsert(&self, key: &[u8], value: &[u8]) -> StepResult<Inserted> {
        let Descent {
            parent, node: leaf, ..
        } = self.descend(key, false, 0, false)?;
        drop(parent);
        let mut page = leaf.upgrade()?;
        let mut leaf = image(&page)?;
        let (index, found) = leaf.search(key, false);
        if found {
            if leaf.value(index) == value {
                return Ok(Inserted::Done);
            }
            leaf.remove_at(index);
        }
        if !leaf.insert_at(index, key, value) {
            // Not changed: the page stays as it was (the image is dropped).
            return Ok(Inserted::Full);
        }
        store(&mut leaf, &mut page)?;
        Ok(Inserted::Done)
    }

    /// Splits the leaf for `key` until an entry of `size` bytes fits,
    /// splitting full ancestors first.
    fn make_room(&self, key: &[u8], size: usize) -> Result<(), BTreeError> {
        let mut level = 0u8;
        // Each round splits a node or finds it split; a path has at most
        // 64 levels, so this bound is met only under endless interference.
        for _ in 0..crate::MAX_RESTARTS {
            match self.retry(|| self.try_split(key, level, size))? {
                Split::Done if level == 0 => return Ok(()),
                // An ancestor was split: now try the level below again.
                Split::Done => level -= 1,
                Split::ParentFull => level += 1,
            }
        }
        Err(BTreeError::TooManyRestarts)
    }

    /// Splits the node at `level` on the path of `key` if an entry of
    /// `size` bytes (a separator's, above the leaves) does not fit it.
    fn try_split(&self, key: &[u8], level: u8, size: usize) -> StepResult<Split> {
        let descent = self.descend(key, false, level, false)?;
        let size = if level == 0 {
            size
        } else {
            node::MAX_SEPARATOR_ENTRY
        };
        let is_root = descent.parent.page_id() == self.tree.meta;
        let position = descent.position;
        let mut parent = descent.parent.upgrade()?;
        let mut node = descent.node.upgrade()?;
        let mut left = image(&node)?;
        if left.fits(size) {
            return Ok(Split::Done);
        }
        if is_root {
            return self.split_root(&mut parent, &mut node, left);
        }
        let mut above = image(&parent)?;
        if !above.fits(node::MAX_SEPARATOR_ENTRY) {
            return Ok(Split::ParentFull);
        }
        if above.child(position) != node.page_id().page_no() {
            return Err(Step::Fail(corrupt(
                parent.page_id(),
                "parent does not point at its child",
            )));
        }
        let (separator, mut right) = left.split();
        let (right_id, mut right_page) = self.tree.pool.allocate(self.tree.meta.file_id())?;
        store(&mut right, &mut right_page)?;
        store(&mut left, &mut node)?;
        // The pointer that named the node now names its right half; the
        // left half (still the node's page) goes in before it.
        above.set_child(position, right_id.page_no(), right_page.frame_hint());
        let fitted = above.insert_child(
            position,
            &separator,
            node.page_id().page_no(),
            node.frame_hint(),
        );
        debug_assert!(fitted, "room was checked");
        store(&mut above, &mut parent)?;
        Ok(Split::Done)
    }

    /// Splits the root: its halves go under a new root, which the meta
    /// page (latched as `meta`) then names.
    fn split_root(
        &self,
        meta: &mut PageMut<'_>,
        root: &mut PageMut<'_>,
        mut left: Image,
    ) -> StepResult<Split> {
        let level = left.head().level;
        let (separator, mut right) = left.split();
        let file = self.tree.meta.file_id();
        let (right_id, mut right_page) = self.tree.pool.allocate(file)?;
        let (new_root_id, mut new_root_page) = self.tree.pool.allocate(file)?;
        let mut new_root = Image::new(node::INNER, level + 1);
        new_root.insert_child(0, &separator, root.page_id().page_no(), root.frame_hint());
        new_root.set_upper(right_id.page_no(), right_page.frame_hint());
        store(&mut right, &mut right_page)?;
        store(&mut new_root, &mut new_root_page)?;
        store(&mut left, root)?;
        meta.store_u64(ROOT_AT, new_root_id.page_no())
            .and_then(|()| meta.store_u32(ROOT_HINT_AT, new_root_page.frame_hint().to_bits()))
            .map_err(|e| Step::Fail(pagepool::Error::from(e).into()))?;
        Ok(Split::Done)
    }

    pub(crate) fn delete(&self, key: &[u8]) -> Result<bool, BTreeError> {
        let (removed, emptied) = self.retry(|| {
            let Descent {
                parent, node: leaf, ..
            } = self.descend(key, false, 0, false)?;
            let is_root = parent.page_id() == self.tree.meta;
            drop(parent);
            let mut page = leaf.upgrade()?;
            let mut leaf = image(&page)?;
            let (index, found) = leaf.search(key, false);
            if !found {
                return Ok((false, false));
            }
            leaf.remove_at(index);
            store(&mut leaf, &mut page)?;
            Ok((true, leaf.head().count == 0 && !is_root))
        })?;
        if emptied {
            self.retry(|| self.free_if_empty(key))?;
        }
        Ok(removed)
    }

    /// Unlinks the leaf on `key`'s path from its parent and frees it, if
    /// it is (still) empty and not its parent's only child.
    fn free_if_empty(&self, key: &[u8]) -> StepResult<()> {
        let descent = self.descend(key, false, 0, false)?;
        if descent.parent.page_id() == self.tree.meta || descent.head.count != 0 {
            return Ok(());
        }
        let position = descent.position;
        let mut parent = descent.parent.upgrade()?;
        let leaf = descent.node.upgrade()?;
        let mut above = image(&parent)?;
        let count = above.head().count;
        if image(&leaf)?.head().count != 0 || count == 0 {
            return Ok(());
        }
        if above.child(position) != leaf.page_id().page_no() {
            return Err(Step::Fail(corrupt(
                parent.page_id(),
                "parent does not point at its child",
            )));
        }
        match self.tree.pool.free_page(leaf) {
            Ok(()) => {}
            // A file without a free list keeps its empty leaves.
            Err(pagepool::Error::NoFileHeader { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        if position < count {
            // c_i goes; its keys now fall to c_{i+1} (or upper).
            above.remove_at(position);
        } else {
            // The upper child goes; the last entry's child takes its place.
            let last = above.child_with_hint(count - 1);
            above.remove_at(count - 1);
            above.set_upper(last.0, last.1);
        }
        store(&mut above, &mut parent)?;
        Ok(())
    }
}
