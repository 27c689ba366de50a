//! Forward scans: leaf by leaf, each leaf copied and validated before any
//! of it is handed out, the next leaf found by descending again with the
//! current leaf's upper fence (the separator above it). No leaf links are
//! needed, so freeing a leaf touches only its parent.

use crate::descend::{torn, Descent};
use crate::node::{Image, Torn};
use crate::{BTree, BTreeError, Session};

/// One validated leaf: its entries `>= from` (or `> from`), and the fence
/// to continue from.
struct Batch {
    image: Image,
    first: usize,
    upper_fence: Option<Vec<u8>>,
}

impl Session<'_> {
    fn leaf_batch(&self, from: &[u8], exclusive: bool) -> Result<Batch, BTreeError> {
        self.retry(|| {
            let Descent {
                parent,
                node: leaf,
                upper_fence,
                ..
            } = self.descend(from, exclusive, 0, true)?;
            drop(parent);
            let image = Image::copy_of(leaf.view()).map_err(|Torn| torn(&leaf, "bad leaf"))?;
            leaf.check()?;
            let (first, _) = image.search(from, exclusive);
            Ok(Batch {
                image,
                first,
                upper_fence,
            })
        })
    }

    pub(crate) fn scan_from(
        &self,
        start: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BTreeError> {
        let mut from = start.to_vec();
        let mut exclusive = false;
        loop {
            let batch = self.leaf_batch(&from, exclusive)?;
            for index in batch.first..batch.image.head().count {
                if !f(batch.image.key(index), batch.image.value(index)) {
                    return Ok(());
                }
            }
            match batch.upper_fence {
                Some(fence) => {
                    from = fence;
                    exclusive = true;
                }
                None => return Ok(()),
            }
        }
    }
}

/// The entries of a tree from a start key on, in key order
/// ([`BTree::range`]): owned `(key, value)` pairs, fetched a validated leaf
/// at a time.
pub struct Range<'pool> {
    tree: BTree<'pool>,
    from: Option<Vec<u8>>,
    exclusive: bool,
    pending: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Range<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Range")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl<'pool> Range<'pool> {
    pub(crate) fn new(tree: BTree<'pool>, start: &[u8]) -> Range<'pool> {
        Range {
            tree,
            from: Some(start.to_vec()),
            exclusive: false,
            pending: Vec::new().into_iter(),
        }
    }
}

impl Iterator for Range<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), BTreeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.pending.next() {
                return Some(Ok(entry));
            }
            let from = self.from.take()?;
            let session = self.tree.session();
            let batch = match session.leaf_batch(&from, self.exclusive) {
                Ok(batch) => batch,
                Err(error) => return Some(Err(error)),
            };
            let entries: Vec<_> = (batch.first..batch.image.head().count)
                .map(|i| (batch.image.key(i).to_vec(), batch.image.value(i).to_vec()))
                .collect();
            self.pending = entries.into_iter();
            self.from = batch.upper_fence;
            self.exclusive = true;
        }
    }
}
