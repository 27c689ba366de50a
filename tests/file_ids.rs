//! Persistent file identity: files opened under ids an engine chose, the
//! same pages under the same ids after a restart, and every clash refused.

mod common;

use pagepool::{BufferPool, Error, FileId, MemoryStorage, PageId, PoolConfig, MAX_FILES};

fn id(index: u16) -> FileId {
    FileId::new(index).unwrap()
}

#[test]
fn file_ids_below_the_limit_exist_and_the_rest_do_not() {
    assert_eq!(id(0).index(), 0);
    assert_eq!(id((MAX_FILES - 1) as u16).index(), MAX_FILES - 1);
    assert_eq!(FileId::new(MAX_FILES as u16), None);
    assert_eq!(FileId::new(u16::MAX), None);
}

#[test]
fn a_chosen_id_names_its_file_and_a_second_file_under_it_is_refused() {
    let pool = BufferPool::open(PoolConfig::new(16)).unwrap();
    pool.open_storage_as(id(9), Box::new(MemoryStorage::new()))
        .unwrap();
    let (page_id, mut page) = pool.allocate(id(9)).unwrap();
    assert_eq!(page_id.file_id(), id(9));
    page.store_u64(0, 99).unwrap();
    drop(page);

    let err = pool
        .open_storage_as(id(9), Box::new(MemoryStorage::new()))
        .unwrap_err();
    assert!(matches!(err, Error::FileIdInUse(f) if f == id(9)), "{err}");
    assert!(err.to_string().contains("file 9"), "{err}");
    // The refused open lost nothing: the first file is still under 9.
    assert_eq!(pool.optimistic(page_id, |v| v.load_u64(0)).unwrap(), Ok(99));
    assert_eq!(pool.page_count(id(9)).unwrap(), 1);
    assert!(matches!(pool.page_count(id(8)), Err(Error::UnknownFile(_))));
}

#[test]
fn files_without_an_id_take_the_lowest_free_one() {
    let pool = BufferPool::open(PoolConfig::new(16)).unwrap();
    let mem = || Box::new(MemoryStorage::new());
    pool.open_storage_as(id(2), mem()).unwrap();
    assert_eq!(pool.open_storage(mem()).unwrap(), id(0));
    assert_eq!(pool.open_storage(mem()).unwrap(), id(1));
    assert_eq!(pool.open_storage(mem()).unwrap(), id(3));
    pool.open_storage_as(id(100), mem()).unwrap();
    assert_eq!(pool.open_storage(mem()).unwrap(), id(4));
    assert_eq!(
        pool.file_ids(),
        vec![id(0), id(1), id(2), id(3), id(4), id(100)]
    );
    // A flush walks every file, holes in the ids included.
    let (page_id, page) = pool.allocate(id(100)).unwrap();
    drop(page);
    pool.flush_all().unwrap();
    assert!(pool.dirty_pages().is_empty());
    assert_eq!(page_id.file_id(), id(100));
}

#[test]
fn page_ids_logged_before_a_restart_name_the_same_pages_after_it() {
    let dir = common::scratch_dir("file_ids_restart");
    let (orders, index) = (dir.join("orders.db"), dir.join("orders.idx"));
    let mut logged = Vec::new();
    {
        let pool = BufferPool::open(PoolConfig::new(32)).unwrap();
        pool.open_file_as(id(3), &orders).unwrap();
        pool.open_file_as(id(9), &index).unwrap();
        for (file_id, value) in [(id(3), 30), (id(9), 90), (id(3), 31)] {
            let (page_id, mut page) = pool.allocate(file_id).unwrap();
            page.store_u64(0, value).unwrap();
            logged.push((page_id, value));
        }
        pool.close().unwrap();
    }
    // Opened again in the other order: the ids, not the order, decide.
    let pool = BufferPool::open(PoolConfig::new(32)).unwrap();
    pool.open_file_as(id(9), &index).unwrap();
    pool.open_file_as(id(3), &orders).unwrap();
    for (page_id, value) in logged {
        let page_id = PageId::new(page_id.file_id(), page_id.page_no());
        let got = pool.optimistic(page_id, |v| v.load_u64(0)).unwrap();
        assert_eq!(got, Ok(value), "{page_id:?}");
    }
    // One file under two ids, and two files under one id, are refused.
    let err = pool.open_file_as(id(4), &orders).unwrap_err();
    assert!(
        matches!(err, Error::AlreadyOpen { file_id, .. } if file_id == id(3)),
        "{err}"
    );
    let err = pool.open_file_as(id(3), dir.join("other.db")).unwrap_err();
    assert!(matches!(err, Error::FileIdInUse(f) if f == id(3)), "{err}");
    assert!(
        !dir.join("other.db").exists(),
        "a refused open creates nothing"
    );
}
