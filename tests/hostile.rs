//! Hostile files (issue 5): truncated files, random bytes, flipped bits,
//! misplaced pages and lengths that are not a page multiple give clear
//! errors (`BadFileLength`, `Corrupt`, `PageOutOfRange`), never a panic
//! and never wrong data.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pagepool::{
    BufferPool, Error, FileId, MemoryStorage, PageId, PoolConfig, Storage, PAGE_DATA_SIZE,
    PAGE_SIZE,
};

fn pattern(page_no: u64) -> Vec<u8> {
    (0..PAGE_DATA_SIZE)
        .map(|i| (i as u64 * 131 + page_no * 7 + 1) as u8)
        .collect()
}

/// A data file of `pages` valid pages, page `n` holding `pattern(n)`.
fn valid_file(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let path = dir.join(name);
    let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
    let file = pool.open_file(&path).unwrap();
    for page_no in 0..pages {
        let (_, mut page) = pool.allocate(file).unwrap();
        page.write_at(0, &pattern(page_no)).unwrap();
        page.set_lsn(page_no + 100);
    }
    pool.close().unwrap();
    path
}

/// The raw image (trailer included) of a valid page, as the pool writes it.
fn valid_image(page_no: u64) -> Vec<u8> {
    let dir = common::scratch_dir(&format!("hostile-image-{page_no}"));
    let path = valid_file(&dir, "image.db", page_no + 1);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes[page_no as usize * PAGE_SIZE..][..PAGE_SIZE].to_vec()
}

/// Every way to reach a page reports it corrupt; none hands out bytes.
fn assert_corrupt_everywhere(pool: &BufferPool, page_id: PageId, context: &str) {
    match pool.read(page_id) {
        Err(Error::Corrupt { page_id: p, reason }) => {
            assert_eq!(p, page_id, "{context}");
            assert!(!reason.is_empty(), "{context}");
        }
        Err(other) => panic!("{context}: read gave {other}"),
        Ok(page) => panic!("{context}: read returned data {:?}", &page[..16]),
    }
    match pool.optimistic(page_id, |view| view.load_u64(0)) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("{context}: optimistic gave {other:?}"),
    }
    match pool.write(page_id) {
        Err(Error::Corrupt { .. }) => {}
        Err(other) => panic!("{context}: write gave {other}"),
        Ok(_) => panic!("{context}: write latched a corrupt page"),
    }
}

#[test]
fn length_not_a_page_multiple_is_refused_naming_the_file() {
    let dir = common::scratch_dir("hostile-length");
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    for len in [1, 100, PAGE_SIZE - 1, PAGE_SIZE + 1, 3 * PAGE_SIZE + 2048] {
        let path = dir.join(format!("len-{len}.db"));
        std::fs::write(&path, vec![0xA5u8; len]).unwrap();
        match pool.open_file(&path) {
            Err(
                ref error @ Error::BadFileLength {
                    len_bytes,
                    page_size,
                    ..
                },
            ) => {
                assert_eq!((len_bytes, page_size), (len as u64, PAGE_SIZE));
                let text = error.to_string();
                assert!(text.contains(&format!("len-{len}.db")), "{text}");
                assert!(text.contains("not a multiple"), "{text}");
            }
            other => panic!("length {len}: {other:?}"),
        }
    }
    // An empty file is a valid file of no pages.
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let file = pool.open_file(&empty).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 0);
    assert!(matches!(
        pool.read(PageId::new(file, 0)),
        Err(Error::PageOutOfRange { page_count: 0, .. })
    ));
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_files_are_refused_or_end_early_never_invent_pages() {
    let dir = common::scratch_dir("hostile-truncated");
    // Truncated inside a page: refused at open.
    let path = valid_file(&dir, "mid-page.db", 4);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(3 * PAGE_SIZE as u64 + 1000).unwrap();
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    assert!(matches!(
        pool.open_file(&path),
        Err(Error::BadFileLength {
            len_bytes: 13288,
            ..
        })
    ));

    // Truncated at a page boundary: the pages left are intact, the rest
    // are out of range.
    file.set_len(2 * PAGE_SIZE as u64).unwrap();
    let id = pool.open_file(&path).unwrap();
    assert_eq!(pool.page_count(id).unwrap(), 2);
    for page_no in 0..2 {
        assert_eq!(
            &pool.read(PageId::new(id, page_no)).unwrap()[..],
            &pattern(page_no)[..]
        );
    }
    for page_no in [2, 3, 1 << 40] {
        match pool.read(PageId::new(id, page_no)) {
            Err(Error::PageOutOfRange {
                page_id,
                page_count: 2,
            }) => assert_eq!(page_id.page_no(), page_no),
            other => panic!("page {page_no}: {other:?}"),
        }
    }
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_truncated_inside_a_page_while_open_reports_that_page_corrupt() {
    let dir = common::scratch_dir("hostile-truncated-open");
    let path = valid_file(&dir, "data.db", 4);
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_file(&path).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 4);
    // Someone else cuts the file inside page 2 (not a page multiple).
    let handle = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    handle
        .set_len(2 * PAGE_SIZE as u64 + PAGE_SIZE as u64 / 2)
        .unwrap();
    assert_corrupt_everywhere(&pool, PageId::new(file, 2), "half a page left");
    assert_eq!(
        &pool.read(PageId::new(file, 1)).unwrap()[..],
        &pattern(1)[..]
    );
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_of_random_bytes_is_corrupt_page_by_page() {
    let dir = common::scratch_dir("hostile-random");
    let path = dir.join("random.db");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut bytes: Vec<u8> = (0..8 * PAGE_SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    // Pages 4..8 carry the format magic, so the checksum itself is what
    // catches them.
    for page in 4..8 {
        bytes[page * PAGE_SIZE + PAGE_SIZE - 4..][..4].copy_from_slice(b"PGP1");
    }
    std::fs::write(&path, &bytes).unwrap();
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_file(&path).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 8);
    for page_no in 0..8 {
        assert_corrupt_everywhere(&pool, PageId::new(file, page_no), "random bytes");
    }
    for page_no in 0..8 {
        let error = pool.read(PageId::new(file, page_no)).unwrap_err();
        let reason = error.to_string();
        if page_no < 4 {
            assert!(reason.contains("trailer"), "{reason}");
        } else {
            assert!(reason.contains("checksum"), "{reason}");
        }
    }
    assert!(matches!(
        pool.read(PageId::new(file, 8)),
        Err(Error::PageOutOfRange { .. })
    ));
    // Two frames, 48 failed loads: no frame leaked, the pool still works.
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.write_at(0, b"fine").unwrap();
    drop(page);
    assert_eq!(&pool.read(page_id).unwrap()[..4], b"fine");
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pool_over(image: &[u8], page_no: u64) -> (BufferPool, FileId) {
    let memory = Arc::new(MemoryStorage::new());
    memory.write_page(page_no, image).unwrap();
    let pool = BufferPool::open(PoolConfig::new(1)).unwrap();
    let file = pool.open_storage(Box::new(memory)).unwrap();
    (pool, file)
}

#[test]
fn every_single_bit_flip_and_sampled_double_flips_are_corrupt() {
    let image = valid_image(3);
    let (pool, file) = pool_over(&image, 3);
    assert_eq!(
        &pool.read(PageId::new(file, 3)).unwrap()[..],
        &pattern(3)[..]
    );
    drop(pool);
    // CRC-32C catches every single-bit error, in the data, the LSN, the
    // checksum and the magic alike.
    for bit in 0..PAGE_SIZE * 8 {
        let mut flipped = image.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let (pool, file) = pool_over(&flipped, 3);
        match pool.read(PageId::new(file, 3)) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("bit {bit}: {:?}", other.map(|p| p[..8].to_vec())),
        };
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..2_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (a, b) = (
            (state >> 20) as usize % (PAGE_SIZE * 8),
            (state >> 40) as usize % (PAGE_SIZE * 8),
        );
        if a == b {
            continue;
        }
        let mut flipped = image.clone();
        flipped[a / 8] ^= 1 << (a % 8);
        flipped[b / 8] ^= 1 << (b % 8);
        let (pool, file) = pool_over(&flipped, 3);
        assert!(
            matches!(pool.read(PageId::new(file, 3)), Err(Error::Corrupt { .. })),
            "bits {a} and {b}"
        );
    }
}

#[test]
fn flipped_bits_in_a_real_file_are_corrupt_and_spare_the_other_pages() {
    let dir = common::scratch_dir("hostile-flipped");
    let path = valid_file(&dir, "data.db", 4);
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // One bit in the data of page 1, the LSN of page 2 and the checksum of
    // page 3; page 0 left alone.
    for (page_no, byte) in [(1u64, 17usize), (2, PAGE_DATA_SIZE + 1), (3, PAGE_SIZE - 6)] {
        let offset = page_no * PAGE_SIZE as u64 + byte as u64;
        let mut b = [0u8];
        handle.read_exact_at(&mut b, offset).unwrap();
        handle.write_all_at(&[b[0] ^ 0x08], offset).unwrap();
    }
    handle.sync_all().unwrap();
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_file(&path).unwrap();
    for page_no in 1..4 {
        assert_corrupt_everywhere(&pool, PageId::new(file, page_no), "flipped bit");
    }
    let page = pool.read(PageId::new(file, 0)).unwrap();
    assert_eq!(&page[..], &pattern(0)[..]);
    assert_eq!(page.lsn(), 100);
    drop(page);
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_valid_page_at_the_wrong_offset_is_corrupt() {
    let dir = common::scratch_dir("hostile-swapped");
    let path = valid_file(&dir, "data.db", 3);
    let mut bytes = std::fs::read(&path).unwrap();
    // Swap pages 0 and 2: both are valid images, at the wrong page number.
    let (head, tail) = bytes.split_at_mut(2 * PAGE_SIZE);
    head[..PAGE_SIZE].swap_with_slice(&mut tail[..PAGE_SIZE]);
    std::fs::write(&path, &bytes).unwrap();
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_file(&path).unwrap();
    assert_corrupt_everywhere(&pool, PageId::new(file, 0), "page 2's image at 0");
    assert_corrupt_everywhere(&pool, PageId::new(file, 2), "page 0's image at 2");
    assert_eq!(
        &pool.read(PageId::new(file, 1)).unwrap()[..],
        &pattern(1)[..]
    );
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_page_stays_corrupt_for_concurrent_readers_and_leaks_no_frame() {
    let mut image = valid_image(0);
    image[5] ^= 0x40;
    let (pool, file) = pool_over(&image, 0);
    let page_id = PageId::new(file, 0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    match pool.optimistic(page_id, |view| view.load_u64(0)) {
                        Err(Error::Corrupt { .. }) => {}
                        other => panic!("{other:?}"),
                    }
                    assert!(matches!(pool.read(page_id), Err(Error::Corrupt { .. })));
                }
            });
        }
    });
    // The pool has one frame; it is still usable.
    let (new_id, mut page) = pool.allocate(file).unwrap();
    page.store_u64(0, 77).unwrap();
    drop(page);
    assert_eq!(pool.optimistic(new_id, |v| v.load_u64(0)).unwrap(), Ok(77));
    // Every miss but the allocation read the page, and failed.
    let stats = pool.stats();
    assert_eq!(stats.misses, stats.io_reads + 1);
}

/// Design question, reported (not decided): the page format accepts a page
/// of 4096 zero bytes as "never written" and hands it out as an empty page.
/// So a page that was written and later zeroed on the medium (a block
/// zeroed by a file-system crash, or a file cut back to a page boundary
/// while the pool has it open: reads past the end yield zeros) is returned
/// as an empty page, not reported: wrong data without an error. Telling a
/// hole from a lost page needs more than the page itself (a high-water mark
/// in a file header, or a non-zero "empty page" image written at allocation).
#[test]
#[ignore = "design question: a written page zeroed on the medium reads back as an empty page"]
fn a_written_page_zeroed_on_the_medium_is_not_returned_as_an_empty_page() {
    let dir = common::scratch_dir("hostile-zeroed");
    let path = valid_file(&dir, "data.db", 3);
    let handle = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    handle
        .write_all_at(&[0u8; PAGE_SIZE], PAGE_SIZE as u64)
        .unwrap();
    handle.sync_all().unwrap();
    let pool = BufferPool::open(PoolConfig::new(2)).unwrap();
    let file = pool.open_file(&path).unwrap();
    let result = pool.read(PageId::new(file, 1)).map(|page| page.to_vec());
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(result, Err(Error::Corrupt { .. })),
        "a lost page came back as {:?}",
        result.map(|data| data.iter().all(|&b| b == 0))
    );
}
