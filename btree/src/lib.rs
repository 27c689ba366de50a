//! A B+-tree on pagepool's optimistic guards.
//!
//! Keys and values are byte strings (a key up to [`MAX_KEY`] bytes, key
//! plus value up to [`MAX_ENTRY`]: 512 and 966 bytes on 4 KiB pages),
//! ordered by their bytes. Nodes are pool pages (format in `node.rs`); the
//! tree's root is named by a meta page, so a tree is found again after a
//! reopen, and several trees share a pool and a file.
//!
//! # Concurrency
//!
//! - **Readers** descend with optimistic lock coupling: an
//!   [`OptimisticGuard`](pagepool::OptimisticGuard) on the meta page, then
//!   on each node through its parent
//!   ([`child`](pagepool::OptimisticGuard::child), which validates the
//!   parent before the child id is used and again after the child's
//!   version is recorded). They write nothing shared. Any failed
//!   validation restarts the operation from the meta page.
//! - **Writers** descend the same way, then upgrade the leaf to the
//!   exclusive latch (one CAS that fails if it changed) and change it. A
//!   full node is split with its parent and itself upgraded (a full parent
//!   is split first, from above), and a leaf left empty is unlinked from
//!   its parent and freed to the file's free list, where a later split
//!   finds it again.
//! - No path waits for a latch while it holds one of the tree's: every
//!   latch is taken by upgrade or not at all, so writers cannot deadlock.
//!   The pool's own waits (a page load, a free-list change) happen with no
//!   optimistic guard alive.
//! - Restarts back off (spin, then yield) and are bounded: an operation
//!   that restarts [`MAX_RESTARTS`] times ends with
//!   [`BTreeError::TooManyRestarts`] instead of spinning forever.
//!
//! ```
//! use pagepool::{BufferPool, MemoryStorage, PoolConfig};
//! use pagepool_btree::BTree;
//!
//! let pool = BufferPool::open(PoolConfig::new(256))?;
//! let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
//! pool.format_file(file)?;
//! let tree = BTree::open_or_create(&pool, file, 0)?;
//! tree.insert(b"apple", b"red")?;
//! tree.insert(b"banana", b"yellow")?;
//!
//! let mut value = Vec::new();
//! assert!(tree.get(b"apple", &mut value)?);
//! assert_eq!(value, b"red");
//!
//! let keys: Vec<Vec<u8>> = tree.range(b"b").map(|entry| entry.map(|(k, _)| k)).collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![b"banana".to_vec()]);
//! # Ok::<(), pagepool_btree::BTreeError>(())
//! ```

mod descend;
#[doc(hidden)]
pub mod fuzz;
mod node;
mod scan;
mod write;

use pagepool::{BufferPool, FileId, PageId, ThreadPin};

pub use node::{MAX_ENTRY, MAX_KEY};
pub use scan::Range;

/// An operation gives up after this many restarts in a row.
pub const MAX_RESTARTS: u32 = 1 << 20;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BTreeError {
    /// The pool failed (I/O, a corrupt page, a deadline).
    #[error(transparent)]
    Pool(#[from] pagepool::Error),
    /// A key longer than [`MAX_KEY`].
    #[error("a key of {len} bytes is longer than the {MAX_KEY} a node allows")]
    KeyTooLong {
        /// The key's length.
        len: usize,
    },
    /// Key and value together longer than [`MAX_ENTRY`].
    #[error("a key and value of {len} bytes together exceed the {MAX_ENTRY} a node allows")]
    EntryTooLarge {
        /// Key plus value length.
        len: usize,
    },
    /// A page of the tree does not hold what the tree expects (validated:
    /// no writer was changing it).
    #[error("{page_id} is not a valid node of this tree: {reason}")]
    Corrupt {
        /// The page.
        page_id: PageId,
        /// What was wrong.
        reason: &'static str,
    },
    /// The page named as a tree's meta page is not one.
    #[error("{page_id} is not a B+-tree meta page")]
    NotATree {
        /// The page.
        page_id: PageId,
    },
    /// The tree was written with another version of the node format.
    #[error(
        "{page_id}: a tree of node format {version}; this version reads format {FORMAT_VERSION}"
    )]
    UnknownFormat {
        /// The meta page.
        page_id: PageId,
        /// The format it records.
        version: u64,
    },
    /// An operation restarted [`MAX_RESTARTS`] times (a livelock, or a
    /// pool far too small for the tree's working set).
    #[error("gave up after {MAX_RESTARTS} restarts")]
    TooManyRestarts,
}

/// Offset of the root page number in the meta page.
const ROOT_AT: usize = 8;
/// Offset of the root's frame hint (`node.rs`) in the meta page.
const ROOT_HINT_AT: usize = 32;
/// Offset of the meta page's magic.
const MAGIC_AT: usize = 16;
const MAGIC: u64 = u64::from_le_bytes(*b"PGPBTREE");
/// Offset of the node format's version in the meta page.
const VERSION_AT: usize = 24;

/// The version of the node format (`node.rs`) a tree's meta page records;
/// [`BTree::open`] refuses another.
pub const FORMAT_VERSION: u64 = 4;

/// A B+-tree: its pool and its meta page. Cheap to copy; share it between
/// threads freely (each operation pins its own thread).
#[derive(Clone, Copy, Debug)]
pub struct BTree<'pool> {
    pool: &'pool BufferPool,
    meta: PageId,
}

impl<'pool> BTree<'pool> {
    /// Creates an empty tree in `file_id` (a meta page and an empty root
    /// leaf). The file needs a header
    /// ([`BufferPool::format_file`](pagepool::BufferPool::format_file)) for
    /// empty leaves to be freed and reused.
    pub fn create(pool: &'pool BufferPool, file_id: FileId) -> Result<BTree<'pool>, BTreeError> {
        let (meta, mut meta_page) = pool.allocate(file_id)?;
        let (root, mut root_page) = pool.allocate(file_id)?;
        node::Image::new(node::LEAF, 0)
            .store(&mut root_page)
            .map_err(|_| corrupt(root, "cannot write the root"))?;
        meta_page
            .store_u8(0, node::META)
            .map_err(pagepool::Error::from)?;
        meta_page
            .store_u64(ROOT_AT, root.page_no())
            .map_err(pagepool::Error::from)?;
        meta_page
            .store_u32(ROOT_HINT_AT, root_page.frame_hint().to_bits())
            .map_err(pagepool::Error::from)?;
        meta_page
            .store_u64(MAGIC_AT, MAGIC)
            .map_err(pagepool::Error::from)?;
        meta_page
            .store_u64(VERSION_AT, FORMAT_VERSION)
            .map_err(pagepool::Error::from)?;
        Ok(BTree { pool, meta })
    }

    /// The tree whose meta page is `meta` (as [`meta_page`](Self::meta_page)
    /// returned it).
    pub fn open(pool: &'pool BufferPool, meta: PageId) -> Result<BTree<'pool>, BTreeError> {
        let page = pool.read(meta)?;
        let view = page.view();
        let is_meta =
            view.load_u8(0).ok() == Some(node::META) && view.load_u64(MAGIC_AT).ok() == Some(MAGIC);
        if !is_meta {
            return Err(BTreeError::NotATree { page_id: meta });
        }
        let version = view.load_u64(VERSION_AT).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(BTreeError::UnknownFormat {
                page_id: meta,
                version,
            });
        }
        Ok(BTree { pool, meta })
    }

    /// The tree named by root slot `slot` of the file's header, created
    /// (and recorded there) if the slot is empty.
    pub fn open_or_create(
        pool: &'pool BufferPool,
        file_id: FileId,
        slot: usize,
    ) -> Result<BTree<'pool>, BTreeError> {
        if let Some(page_no) = pool.root(file_id, slot)? {
            return BTree::open(pool, PageId::new(file_id, page_no));
        }
        let tree = BTree::create(pool, file_id)?;
        pool.set_root(file_id, slot, Some(tree.meta.page_no()))?;
        Ok(tree)
    }

    /// The tree's meta page: what [`open`](Self::open) takes.
    pub fn meta_page(&self) -> PageId {
        self.meta
    }

    /// The pool the tree lives in.
    pub fn pool(&self) -> &'pool BufferPool {
        self.pool
    }

    /// A session: this thread's pin on the pool held across operations,
    /// so that each runs without a fence. Use one per thread for a run of
    /// operations; drop it before the thread idles.
    pub fn session(&self) -> Session<'pool> {
        Session {
            tree: *self,
            pin: self.pool.pin_thread(),
        }
    }

    /// Copies the value of `key` into `out`; false if absent.
    pub fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, BTreeError> {
        self.session().get(key, out)
    }

    /// Inserts `key` → `value`, replacing a value already there.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), BTreeError> {
        self.session().insert(key, value)
    }

    /// Removes `key`; false if it was absent.
    pub fn remove(&self, key: &[u8]) -> Result<bool, BTreeError> {
        self.session().remove(key)
    }

    /// The entries with keys `>= start`, in order.
    pub fn range(&self, start: &[u8]) -> Range<'pool> {
        Range::new(*self, start)
    }
}

/// A thread's run of operations on one tree (see [`BTree::session`]). Not
/// `Send`: it holds the thread's pin.
#[derive(Debug)]
pub struct Session<'pool> {
    tree: BTree<'pool>,
    pin: ThreadPin<'pool>,
}

impl<'pool> Session<'pool> {
    /// Copies the value of `key` into `out` (resized to the value's
    /// length); false if the key is absent (`out` is then unspecified).
    pub fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, BTreeError> {
        self.lookup(key, out)
    }

    /// Runs `f` on the value of `key` (validated bytes, copied out of the
    /// page once) and returns its result; `None` if the key is absent.
    pub fn get_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, BTreeError> {
        let mut value = Vec::new();
        Ok(self.lookup(key, &mut value)?.then(|| f(&value)))
    }

    /// Inserts `key` → `value`, replacing a value already there.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), BTreeError> {
        check_sizes(key, value)?;
        self.upsert(key, value)
    }

    /// Removes `key`; false if it was absent.
    pub fn remove(&self, key: &[u8]) -> Result<bool, BTreeError> {
        if key.len() > MAX_KEY {
            return Ok(false);
        }
        self.delete(key)
    }

    /// Calls `f` on each entry with a key `>= start`, in order, until it
    /// returns false. Each leaf is copied and validated before `f` sees
    /// any of it.
    pub fn scan(
        &self,
        start: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BTreeError> {
        self.scan_from(start, f)
    }

    /// The tree this session works on.
    pub fn tree(&self) -> BTree<'pool> {
        self.tree
    }
}

fn check_sizes(key: &[u8], value: &[u8]) -> Result<(), BTreeError> {
    if key.len() > MAX_KEY {
        return Err(BTreeError::KeyTooLong { len: key.len() });
    }
    if key.len() + value.len() > MAX_ENTRY {
        return Err(BTreeError::EntryTooLarge {
            len: key.len() + value.len(),
        });
    }
    Ok(())
}

fn corrupt(page_id: PageId, reason: &'static str) -> BTreeError {
    BTreeError::Corrupt { page_id, reason }
}
