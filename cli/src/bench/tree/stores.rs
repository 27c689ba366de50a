//! The key-value stores the B+-tree workloads run against, behind one
//! trait: `pagepool-btree`, `redb` (equal cache size; a Rust user's
//! embedded alternative) and `btreemap-rwlock` (a `RwLock<BTreeMap>`, in
//! memory only).
//!
//! Each worker thread gets its own [`Worker`] (a pagepool session holds
//! the thread's pin; a redb worker holds a read transaction, renewed
//! every [`REDB_READS_PER_TXN`] operations so that it sees recent writes),
//! and each operation is one dynamic call: a lookup costs a microsecond,
//! the call a nanosecond.

use std::collections::BTreeMap;
use std::path::Path;

use pagepool::{BufferPool, IoMode, PoolConfig, Stats};
use pagepool_btree::{BTree, Session};
use parking_lot::RwLock;
use redb::TableDefinition;

use crate::error::{Context, Result};

/// What one worker thread does to a store.
pub trait Worker {
    /// Copies the value of `key` into `out`; false if absent.
    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<bool>;
    /// Inserts or replaces.
    fn upsert(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Calls `f` on up to `limit` entries from `start` on, in order.
    fn scan(&mut self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<()>;
}

/// A store opened for a run.
pub trait Store: Sync {
    /// A worker for the calling thread.
    fn worker(&self) -> Result<Box<dyn Worker + '_>>;
    /// The pool's counters, for a store with a pool of its own pages.
    fn stats(&self) -> Option<Stats> {
        None
    }
    /// Fills the store's cache before a timed run, if it has a faster way
    /// than reading the entries (true if it did).
    fn warm(&self) -> Result<bool> {
        Ok(false)
    }
}

/// `pagepool-btree` over a pagepool file.
pub struct PagepoolTree {
    pool: BufferPool,
    meta: pagepool::PageId,
}

impl PagepoolTree {
    /// Opens (creating if absent) the tree in root slot 0 of `path`, with
    /// a pool of `frames` frames.
    pub fn open(path: &Path, frames: usize) -> Result<PagepoolTree> {
        let pool = BufferPool::open(PoolConfig::new(frames).io_mode(IoMode::Direct))
            .context("opening the pool")?;
        let file = pool
            .open_file(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if pool.page_count(file)? == 0 {
            pool.format_file(file)?;
        }
        let meta = BTree::open_or_create(&pool, file, 0)
            .context("opening the tree")?
            .meta_page();
        Ok(PagepoolTree { pool, meta })
    }

    fn tree(&self) -> BTree<'_> {
        BTree::open(&self.pool, self.meta).expect("the meta page was checked at open")
    }

    /// Writes everything back and closes the pool.
    pub fn close(self) -> Result<()> {
        self.pool.close().map_err(|e| e.error)?;
        Ok(())
    }
}

impl Store for PagepoolTree {
    fn worker(&self) -> Result<Box<dyn Worker + '_>> {
        Ok(Box::new(PagepoolWorker(self.tree().session())))
    }

    fn stats(&self) -> Option<Stats> {
        Some(self.pool.stats())
    }

    /// Reads the file's pages in file order (two threads), as many as the
    /// pool holds: sequential reads fill it far sooner than a walk of the
    /// tree, whose nodes lie in allocation order. Then, if the whole tree
    /// is resident, one scan of it: its descents (one per leaf) store the
    /// frame hints of this pool in place of the loading pool's, as a
    /// running engine's lookups would over time (unlogged, so nothing is
    /// written).
    fn warm(&self) -> Result<bool> {
        const READERS: u64 = 2;
        let file = self.meta.file_id();
        let pages = self
            .pool
            .page_count(file)?
            .min(self.pool.frame_count() as u64);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..READERS)
                .map(|t| {
                    let pool = &self.pool;
                    s.spawn(move || -> Result<()> {
                        let mut page_no = t;
                        while page_no < pages {
                            drop(pool.read(pagepool::PageId::new(file, page_no))?);
                            page_no += READERS;
                        }
                        Ok(())
                    })
                })
                .collect();
            readers.into_iter().try_for_each(|r| {
                r.join()
                    .map_err(|_| crate::error::Error::msg("a warm-up reader panicked"))?
            })
        })?;
        if pages == self.pool.page_count(file)? {
            for entry in self.tree().range(b"") {
                entry?;
            }
        }
        Ok(true)
    }
}

struct PagepoolWorker<'pool>(Session<'pool>);

impl Worker for PagepoolWorker<'_> {
    #[inline]
    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        Ok(self.0.get(key, out)?)
    }

    fn upsert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.0.insert(key, value)?)
    }

    fn scan(&mut self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        let mut left = limit;
        self.0.scan(start, |k, v| {
            f(k, v);
            left -= 1;
            left > 0
        })?;
        Ok(())
    }
}

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

/// A redb worker renews its read transaction after this many operations.
pub const REDB_READS_PER_TXN: u32 = 1_000;

/// `redb` with its cache set to the pool's size.
pub struct Redb {
    db: redb::Database,
}

impl Redb {
    /// Opens (creating if absent) `path` with a cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Redb> {
        let db = redb::Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .with_context(|| format!("opening redb {}", path.display()))?;
        let txn = db.begin_write().context("redb write")?;
        txn.open_table(TABLE).context("redb table")?;
        txn.commit().context("redb commit")?;
        Ok(Redb { db })
    }

    /// Inserts many entries in one write transaction.
    pub fn load(&self, entries: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<()> {
        let mut txn = self.db.begin_write().context("redb write")?;
        txn.set_durability(redb::Durability::None);
        {
            let mut table = txn.open_table(TABLE).context("redb table")?;
            for (k, v) in entries {
                table.insert(&k[..], &v[..]).context("redb insert")?;
            }
        }
        txn.commit().context("redb commit")?;
        Ok(())
    }

    /// Makes everything durable (a commit with full durability).
    pub fn sync(&self) -> Result<()> {
        let txn = self.db.begin_write().context("redb write")?;
        txn.commit().context("redb commit")?;
        Ok(())
    }
}

impl Store for Redb {
    fn worker(&self) -> Result<Box<dyn Worker + '_>> {
        Ok(Box::new(RedbWorker {
            db: &self.db,
            read: None,
            ops: 0,
        }))
    }
}

struct RedbWorker<'a> {
    db: &'a redb::Database,
    read: Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>,
    ops: u32,
}

impl RedbWorker<'_> {
    fn table(&mut self) -> Result<&redb::ReadOnlyTable<&'static [u8], &'static [u8]>> {
        self.ops += 1;
        if self.ops >= REDB_READS_PER_TXN {
            self.ops = 0;
            self.read = None;
        }
        if self.read.is_none() {
            let txn = self.db.begin_read().context("redb read")?;
            self.read = Some(txn.open_table(TABLE).context("redb table")?);
        }
        Ok(self.read.as_ref().expect("just opened"))
    }
}

impl Worker for RedbWorker<'_> {
    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        match self.table()?.get(key).context("redb get")? {
            Some(value) => {
                out.clear();
                out.extend_from_slice(value.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn upsert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        // One write transaction per upsert, not synced (like the pool's
        // writes, durable only at a checkpoint).
        let mut txn = self.db.begin_write().context("redb write")?;
        txn.set_durability(redb::Durability::None);
        txn.open_table(TABLE)
            .context("redb table")?
            .insert(key, value)
            .context("redb insert")?;
        txn.commit().context("redb commit")?;
        Ok(())
    }

    fn scan(&mut self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for entry in self
            .table()?
            .range(start..)
            .context("redb range")?
            .take(limit)
        {
            let (k, v) = entry.context("redb range")?;
            f(k.value(), v.value());
        }
        Ok(())
    }
}

type Map = BTreeMap<Box<[u8]>, Box<[u8]>>;

/// `RwLock<BTreeMap>`: in memory only.
#[derive(Default)]
pub struct BTreeMapRwLock {
    map: RwLock<Map>,
}

impl BTreeMapRwLock {
    /// Inserts many entries.
    pub fn load(&self, entries: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>) {
        let mut map = self.map.write();
        for (k, v) in entries {
            map.insert(k.into(), v.into());
        }
    }
}

impl Store for BTreeMapRwLock {
    fn worker(&self) -> Result<Box<dyn Worker + '_>> {
        Ok(Box::new(MapWorker(&self.map)))
    }
}

struct MapWorker<'a>(&'a RwLock<Map>);

impl Worker for MapWorker<'_> {
    fn get(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        match self.0.read().get(key) {
            Some(value) => {
                out.clear();
                out.extend_from_slice(value);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn upsert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.write().insert(key.into(), value.into());
        Ok(())
    }

    fn scan(&mut self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        let map = self.0.read();
        for (k, v) in map
            .range::<[u8], _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .take(limit)
        {
            f(k, v);
        }
        Ok(())
    }
}
