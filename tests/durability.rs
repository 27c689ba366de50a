//! Durability round trips on real files opened with `O_DIRECT`.

mod common;

use pagepool::{BufferPool, Error, IoMode, PageId, PoolConfig, PAGE_DATA_SIZE, PAGE_SIZE};

fn pattern(page_no: u64, round: u64) -> Vec<u8> {
    (0..PAGE_DATA_SIZE)
        .map(|i| (page_no as usize * 31 + i * 7 + round as usize * 13) as u8)
        .collect()
}

#[test]
fn write_close_reopen_read_back_byte_for_byte() {
    let dir = common::scratch_dir("durability-round-trip");
    let path = dir.join("data.db");
    {
        // 8 frames for 64 pages: most pages reach the file through eviction.
        let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
        let file = pool.open_file(&path).unwrap();
        for page_no in 0..64 {
            let (page_id, mut page) = pool.allocate(file).unwrap();
            assert_eq!(page_id.page_no(), page_no);
            page.write_at(0, &pattern(page_no, 0)).unwrap();
            page.set_lsn(page_no + 1);
        }
        // Rewrite some pages after they were evicted.
        for page_no in (0..64).step_by(5) {
            let mut page = pool.write(PageId::new(file, page_no)).unwrap();
            page.write_at(0, &pattern(page_no, 1)).unwrap();
        }
        pool.close().unwrap();
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        64 * PAGE_SIZE as u64
    );
    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let file = pool.open_file(&path).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 64);
    for page_no in 0..64 {
        let round = u64::from(page_no % 5 == 0);
        let page = pool.read(PageId::new(file, page_no)).unwrap();
        assert_eq!(&page[..], &pattern(page_no, round)[..], "page {page_no}");
        assert_eq!(page.lsn(), page_no + 1);
    }
    let stats = pool.stats();
    assert_eq!(stats.io_reads, 64);
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flush_all_makes_pages_durable_without_close() {
    let dir = common::scratch_dir("durability-flush");
    let path = dir.join("data.db");
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    let file = pool.open_file(&path).unwrap();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.write_at(0, b"durable").unwrap();
    drop(page);
    pool.flush_all().unwrap();
    // The bytes are on disk, whatever the pool does next: read them with
    // plain buffered I/O while the pool still holds the file.
    let bytes = std::fs::read(&path).unwrap();
    let offset = page_id.page_no() as usize * pagepool::PAGE_SIZE;
    assert_eq!(&bytes[offset..offset + 7], b"durable");
    // Its pages have one owner: a second pool cannot open the file until
    // the first lets go of it.
    let other = BufferPool::open(PoolConfig::new(4)).unwrap();
    let err = other.open_file(&path).unwrap_err();
    assert!(matches!(err, Error::FileLocked { .. }), "{err}");
    drop(pool);
    let other_file = other.open_file(&path).unwrap();
    let page = other
        .read(PageId::new(other_file, page_id.page_no()))
        .unwrap();
    assert_eq!(&page[..7], b"durable");
    drop(page);
    drop(other);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One file, one owner: within a pool a second open of the same file, by
/// any path, names the file id it is open under; another pool, or another
/// process, finds it locked until the owner lets go.
#[test]
fn a_data_file_has_one_owner() {
    let dir = common::scratch_dir("durability-one-owner");
    let path = dir.join("data.db");
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    let file = pool.open_file(&path).unwrap();
    drop(pool.allocate(file).unwrap());
    let link = dir.join("link.db");
    std::fs::hard_link(&path, &link).unwrap();
    let dotted = dir.join(".").join("data.db");
    for same in [&path, &link, &dotted] {
        let err = pool.open_file(same).unwrap_err();
        assert!(
            matches!(err, Error::AlreadyOpen { file_id, .. } if file_id == file),
            "{}: {err}",
            same.display()
        );
        assert!(
            err.to_string()
                .contains("already open in this pool as file 0"),
            "{err}"
        );
    }
    let direct = pagepool::DirectFile::open(dir.join("other.db"), IoMode::Direct).unwrap();
    let identity = direct.identity();
    let other_id = pool.open_storage(Box::new(direct)).unwrap();
    let again = std::sync::Arc::new(pagepool::MemoryStorage::new());
    pool.open_storage(Box::new(again))
        .expect("stores that are not files are not checked");
    assert_eq!(
        pagepool::FileIdentity::of_path(dir.join("other.db")).unwrap(),
        identity
    );
    assert_ne!(other_id, file);

    let second = BufferPool::open(PoolConfig::new(4)).unwrap();
    let err = second.open_file(&link).unwrap_err();
    assert!(matches!(err, Error::FileLocked { .. }), "{err}");
    assert!(err.to_string().contains("locked by another owner"), "{err}");
    drop(pool);
    second.open_file(&link).expect("the owner has let go");
    drop(second);

    // Another process holds the lock.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_holder", "--ignored", "--nocapture"])
        .env(LOCK_HOLDER_PATH, &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    assert!(
        lines.any(|line| line.unwrap().trim() == "LOCKED"),
        "the child never took the lock"
    );
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    let err = pool.open_file(&path).unwrap_err();
    assert!(matches!(err, Error::FileLocked { .. }), "{err}");
    drop(child.stdin.take()); // the child exits, and its lock goes with it
    assert!(child.wait().unwrap().success());
    pool.open_file(&path).expect("the other process has let go");
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

const LOCK_HOLDER_PATH: &str = "PAGEPOOL_TEST_LOCK_HOLDER_PATH";

/// The other process of `a_data_file_has_one_owner`: opens the file, says
/// so, and holds it until its stdin closes.
#[test]
#[ignore = "a child process of a_data_file_has_one_owner"]
fn lock_holder() {
    let Some(path) = std::env::var_os(LOCK_HOLDER_PATH) else {
        return;
    };
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    pool.open_file(path).unwrap();
    println!("\nLOCKED");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
}

#[test]
fn hostile_files_are_refused_or_reported_never_returned() {
    let dir = common::scratch_dir("durability-hostile");
    let odd = dir.join("odd.db");
    std::fs::write(&odd, vec![1u8; PAGE_SIZE * 2 + 1]).unwrap();
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    let err = pool.open_file(&odd).unwrap_err();
    assert!(matches!(err, Error::BadFileLength { .. }), "{err}");
    assert!(err.to_string().contains("odd.db"), "{err}");

    let junk = dir.join("junk.db");
    let bytes: Vec<u8> = (0..PAGE_SIZE * 3).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&junk, bytes).unwrap();
    let file = pool.open_file(&junk).unwrap();
    for page_no in 0..3 {
        let err = pool.read(PageId::new(file, page_no)).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
    let err = pool.read(PageId::new(file, 3)).unwrap_err();
    assert!(matches!(err, Error::PageOutOfRange { .. }), "{err}");
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn buffered_mode_is_an_explicit_choice_and_round_trips() {
    let dir = common::scratch_dir("durability-buffered");
    let path = dir.join("data.db");
    let pool = BufferPool::open(PoolConfig::new(2).io_mode(IoMode::Buffered)).unwrap();
    let file = pool.open_file(&path).unwrap();
    for _ in 0..5 {
        let (_, mut page) = pool.allocate(file).unwrap();
        page.fill(0xAB);
    }
    pool.close().unwrap();
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_file(&path).unwrap();
    assert!(pool
        .read(PageId::new(file, 4))
        .unwrap()
        .iter()
        .all(|&b| b == 0xAB));
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}
