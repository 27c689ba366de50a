//! Page lifecycle: file headers, freeing and reusing pages, root slots and
//! discarding cached pages (issue 13, item 3).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pagepool::{BufferPool, Error, FileId, MemoryStorage, PageId, PoolConfig};

fn open(storage: &Arc<MemoryStorage>, frames: usize) -> (BufferPool, FileId) {
    let pool = BufferPool::open(
        PoolConfig::new(frames).latch_wait_timeout(std::time::Duration::from_millis(10_000)),
    )
    .unwrap();
    let file = pool.open_storage(Box::new(storage.clone())).unwrap();
    (pool, file)
}

fn allocate(pool: &BufferPool, file: FileId, tag: u64) -> PageId {
    let (page_id, mut page) = pool.allocate(file).unwrap();
    assert_eq!(page.view().load_u64(0).unwrap(), 0, "handed out zeroed");
    page.store_u64(0, tag).unwrap();
    page_id
}

#[test]
fn freed_pages_are_reused_zeroed_and_never_twice() {
    let storage = Arc::new(MemoryStorage::new());
    let (pool, file) = open(&storage, 16);
    pool.format_file(file).unwrap();
    pool.format_file(file).unwrap(); // idempotent
    let pages: Vec<_> = (1..=10).map(|tag| allocate(&pool, file, tag)).collect();
    assert!(
        pages.iter().all(|p| p.page_no() != 0),
        "page 0 is the header"
    );
    for &page_id in &pages[..5] {
        pool.free_page(pool.write(page_id).unwrap()).unwrap();
    }
    assert_eq!(pool.free_page_count(file).unwrap(), 5);
    let page_count = pool.page_count(file).unwrap();
    let reused: HashSet<_> = (0..5).map(|tag| allocate(&pool, file, 100 + tag)).collect();
    assert_eq!(reused, pages[..5].iter().copied().collect());
    assert_eq!(
        pool.page_count(file).unwrap(),
        page_count,
        "nothing appended"
    );
    assert_eq!(pool.free_page_count(file).unwrap(), 0);
    let appended = allocate(&pool, file, 7);
    assert_eq!(appended.page_no(), page_count);
    let stats = pool.stats();
    assert_eq!((stats.pages_freed, stats.pages_reused), (5, 5));
}

#[test]
fn the_free_list_and_roots_survive_close_and_reopen() {
    let dir = common::scratch_dir("free-list-reopen");
    let path = dir.join("data.db");
    let freed: HashSet<PageId>;
    {
        let pool = BufferPool::open(PoolConfig::new(16)).unwrap();
        let file = pool.open_file(&path).unwrap();
        pool.format_file(file).unwrap();
        let pages: Vec<_> = (0..40).map(|tag| allocate(&pool, file, tag)).collect();
        freed = pages[10..30].iter().copied().collect();
        for &page_id in &freed {
            pool.free_page(pool.write(page_id).unwrap()).unwrap();
        }
        pool.set_root(file, 3, Some(pages[0].page_no())).unwrap();
        pool.close().unwrap();
    }
    let pool = BufferPool::open(PoolConfig::new(16)).unwrap();
    let file = pool.open_file(&path).unwrap();
    assert_eq!(pool.free_page_count(file).unwrap(), 20);
    assert_eq!(pool.root(file, 3).unwrap(), Some(1));
    assert_eq!(pool.root(file, 4).unwrap(), None);
    let reused: HashSet<_> = (0..20).map(|tag| allocate(&pool, file, tag)).collect();
    assert_eq!(reused, freed);
    pool.close().unwrap();
}

/// A crash after `flush_all`: the storage keeps what was written, the pool
/// is gone without closing.
#[test]
fn the_free_list_survives_a_crash_after_flush_all() {
    let storage = Arc::new(MemoryStorage::new());
    let freed: HashSet<PageId> = {
        let (pool, file) = open(&storage, 8);
        pool.format_file(file).unwrap();
        let pages: Vec<_> = (0..20).map(|tag| allocate(&pool, file, tag)).collect();
        for &page_id in &pages[5..12] {
            pool.free_page(pool.write(page_id).unwrap()).unwrap();
        }
        pool.flush_all().unwrap();
        // Changes after the flush are lost with the crash.
        pool.free_page(pool.write(pages[0]).unwrap()).unwrap();
        std::mem::forget(pool);
        pages[5..12].iter().copied().collect()
    };
    let (pool, file) = open(&storage, 8);
    let reused: HashSet<_> = (0..7).map(|tag| allocate(&pool, file, tag)).collect();
    assert_eq!(reused, freed);
    assert_eq!(pool.free_page_count(file).unwrap(), 0);
}

/// A crash that kept the header's new free head but not the freed page's
/// mark: the list is dropped (pages leak), and no page is handed out that
/// is still in use.
#[test]
fn a_free_list_whose_head_lost_its_mark_is_dropped_not_followed() {
    let storage = Arc::new(MemoryStorage::new());
    let (victim, live) = {
        let (pool, file) = open(&storage, 8);
        pool.format_file(file).unwrap();
        let pages: Vec<_> = (0..4).map(|tag| allocate(&pool, file, 1 + tag)).collect();
        pool.flush_all().unwrap();
        pool.free_page(pool.write(pages[2]).unwrap()).unwrap();
        // Only the header reaches the disk.
        pool.flush(PageId::new(file, 0)).unwrap();
        std::mem::forget(pool);
        (pages[2], pages)
    };
    let (pool, file) = open(&storage, 8);
    assert_eq!(pool.free_page_count(file).unwrap(), 1);
    let page_id = allocate(&pool, file, 99);
    assert!(!live.contains(&page_id), "{page_id} is in use");
    // The victim's data is still there, untouched.
    let value = pool.optimistic(victim, |v| v.load_u64(0)).unwrap().unwrap();
    assert_eq!(value, 3);
    assert_eq!(pool.free_page_count(file).unwrap(), 0);
}

#[test]
fn bad_frees_and_headerless_files_are_errors() {
    let storage = Arc::new(MemoryStorage::new());
    let (pool, file) = open(&storage, 8);
    let plain = allocate(&pool, file, 1);
    let result = pool.free_page(pool.write(plain).unwrap());
    assert!(
        matches!(result, Err(Error::NoFileHeader { .. })),
        "{result:?}"
    );
    assert!(matches!(
        pool.format_file(file),
        Err(Error::NoFileHeader { .. })
    ));
    assert!(matches!(
        pool.root(file, 0),
        Err(Error::NoFileHeader { .. })
    ));
    assert_eq!(pool.free_page_count(file).unwrap(), 0);

    let other = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    pool.format_file(other).unwrap();
    let page_id = allocate(&pool, other, 5);
    let header = pool.write(PageId::new(other, 0)).unwrap();
    assert!(matches!(
        pool.free_page(header),
        Err(Error::NotFreeable { .. })
    ));
    pool.free_page(pool.write(page_id).unwrap()).unwrap();
    let again = pool.free_page(pool.write(page_id).unwrap());
    assert!(matches!(again, Err(Error::NotFreeable { .. })), "{again:?}");
    assert_eq!(pool.free_page_count(other).unwrap(), 1);
    assert!(pool.root(other, pagepool::ROOT_SLOTS).is_err());
    assert!(pool.set_root(other, 0, Some(0)).is_err());
}

#[test]
fn a_discarded_page_is_not_written_back() {
    let storage = Arc::new(MemoryStorage::new());
    let (pool, file) = open(&storage, 8);
    let page_id = allocate(&pool, file, 11);
    pool.flush_all().unwrap();
    let mut page = pool.write(page_id).unwrap();
    page.store_u64(0, 12).unwrap();
    let writes = pool.stats().io_writes;
    pool.discard(page);
    pool.flush_all().unwrap();
    assert_eq!(pool.stats().io_writes, writes, "nothing written");
    let value = pool
        .optimistic(page_id, |v| v.load_u64(0))
        .unwrap()
        .unwrap();
    assert_eq!(value, 11, "the file's version is back");
    // Discarding a page never written at all leaves a zero page.
    let fresh = allocate(&pool, file, 13);
    pool.discard(pool.write(fresh).unwrap());
    let value = pool.optimistic(fresh, |v| v.load_u64(0)).unwrap().unwrap();
    assert_eq!(value, 0);
}

/// Threads allocate and free pages of one file while holding exclusive
/// latches on pages of their own: no call deadlocks (every wait has a 10 s
/// deadline, which would fail the test), and no page is ever owned by two
/// threads at once.
#[test]
fn concurrent_allocate_and_free_while_holding_latches() {
    const THREADS: usize = 4;
    const STEPS: usize = 400;
    let storage = Arc::new(MemoryStorage::new());
    let (pool, file) = open(&storage, 32);
    pool.format_file(file).unwrap();
    let owned: Vec<AtomicBool> = (0..THREADS * STEPS + 8)
        .map(|_| AtomicBool::new(false))
        .collect();
    let handed_out = AtomicU64::new(0);
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (pool, owned, handed_out) = (&pool, &owned, &handed_out);
            s.spawn(move || {
                let mut rng = common::Rng::new(common::seed("alloc-free") + thread as u64);
                let anchor = allocate(pool, file, 1);
                assert!(!owned[anchor.page_no() as usize].swap(true, Ordering::SeqCst));
                let mut mine = Vec::new();
                for _ in 0..STEPS {
                    // Hold a latch on a page of our own across the call.
                    let _held = pool.write(anchor).unwrap();
                    if mine.is_empty() || rng.below(3) != 0 {
                        let (page_id, mut page) = pool.allocate(file).unwrap();
                        let was = owned[page_id.page_no() as usize].swap(true, Ordering::SeqCst);
                        assert!(!was, "{page_id} handed out twice");
                        page.store_u64(0, thread as u64).unwrap();
                        handed_out.fetch_add(1, Ordering::Relaxed);
                        mine.push(page_id);
                    } else {
                        let index = rng.below(mine.len() as u64) as usize;
                        let page_id = mine.swap_remove(index);
                        let page = pool.write(page_id).unwrap();
                        assert_eq!(page.view().load_u64(0).unwrap(), thread as u64);
                        owned[page_id.page_no() as usize].store(false, Ordering::SeqCst);
                        pool.free_page(page).unwrap();
                    }
                }
            });
        }
    });
    let appended = pool.page_count(file).unwrap() - 1;
    let free = pool.free_page_count(file).unwrap();
    let in_use = owned.iter().filter(|o| o.load(Ordering::SeqCst)).count() as u64;
    assert_eq!(
        appended,
        in_use + free,
        "every page is in use or free, once"
    );
    assert!(
        handed_out.load(Ordering::Relaxed) > appended,
        "pages were reused"
    );
}
