//! Slotted heap pages (issue 7): random operation sequences against a
//! model, on byte images and through the pool's guards; arbitrary and
//! corrupted page bytes fed to every reader; records read optimistically
//! while a writer changes the page; heap pages surviving flush and reopen.
#![cfg(not(any(loom, feature = "shuttle")))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pagepool::heap::{
    self, fuzz_check, HeapError, HeapPageMut, HeapPageView, HEADER_SIZE, MAX_RECORD_LEN, SLOT_SIZE,
};
use pagepool::{BufferPool, IoMode, MemoryStorage, PageId, PoolConfig, PAGE_DATA_SIZE};

/// SplitMix64: a small deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Random bytes, of a random length below `max`.
    fn record(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        self.bytes(len)
    }
}

/// Cases per property test (`HEAP_PROPTEST_CASES=N` to override).
const CASES: usize = if cfg!(debug_assertions) { 120 } else { 600 };

fn iterations(default: usize) -> usize {
    std::env::var("HEAP_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Op bytes for `fuzz_check`, biased towards long sequences of small
/// records that fill the page, with deletes and updates mixed in.
fn ops(rng: &mut Rng) -> Vec<u8> {
    let mut ops = Vec::new();
    for _ in 0..rng.below(400) + 20 {
        match rng.below(10) {
            0..=3 => ops.extend([0, rng.next() as u8]),
            4 => ops.extend([0x80, rng.next() as u8, rng.below(16) as u8]),
            5 | 6 => ops.extend([3, rng.next() as u8]),
            7 | 8 => ops.extend([5, rng.next() as u8, rng.next() as u8]),
            _ => ops.push(rng.next() as u8),
        }
    }
    ops
}

#[test]
fn random_operation_sequences_match_the_model() {
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..iterations(CASES) {
        fuzz_check(&[], &ops(&mut rng));
    }
}

#[test]
fn arbitrary_page_bytes_never_panic() {
    let mut rng = Rng(0x5EED_0002);
    for case in 0..iterations(CASES) {
        let len = match case % 3 {
            0 => rng.below(PAGE_DATA_SIZE + 100),
            _ => PAGE_DATA_SIZE,
        };
        let mut bytes = rng.bytes(len);
        if case % 2 == 0 && len >= HEADER_SIZE {
            // A plausible header, so the readers get past the magic.
            bytes[..4].copy_from_slice(&heap::MAGIC);
            let slots = rng.below(40) as u16;
            bytes[4..6].copy_from_slice(&slots.to_le_bytes());
            let start = (HEADER_SIZE + SLOT_SIZE * usize::from(slots) + rng.below(3000)) as u16;
            bytes[6..8].copy_from_slice(&start.to_le_bytes());
            bytes[8..10].copy_from_slice(&(rng.below(40) as u16).to_le_bytes());
            bytes[10..12].copy_from_slice(&(rng.below(100) as u16).to_le_bytes());
        }
        let ops = rng.record(200);
        fuzz_check(&bytes, &ops);
    }
}

/// A valid page built from random operations, then a few bytes of its
/// header or directory changed: the readers and writers meet pages that
/// are almost right, which random bytes rarely are.
#[test]
fn corrupted_valid_pages_never_panic() {
    let mut rng = Rng(0x5EED_0003);
    let mut still_valid = 0;
    for _ in 0..iterations(CASES) {
        let mut page = [0u8; PAGE_DATA_SIZE];
        let mut heap = HeapPageMut::init(&mut page).unwrap();
        for _ in 0..rng.below(60) {
            match rng.below(4) {
                0 | 1 => drop(heap.insert(&rng.record(120))),
                2 => drop(heap.delete(rng.below(30) as u16)),
                _ => drop(heap.update(rng.below(30) as u16, &rng.record(200))),
            }
        }
        let slots = usize::from(heap.view().unwrap().slot_count());
        let hot = HEADER_SIZE + SLOT_SIZE * slots;
        for _ in 0..rng.below(4) + 1 {
            let at = if rng.below(4) == 0 {
                rng.below(PAGE_DATA_SIZE)
            } else {
                rng.below(hot)
            };
            page[at] = match rng.below(3) {
                0 => page[at] ^ (1 << rng.below(8)),
                1 => rng.next() as u8,
                _ => page[at].wrapping_add(1),
            };
        }
        // Some changes leave a valid page (a changed record byte, a
        // consistent header): those are model-checked by `fuzz_check`.
        if HeapPageView::new(&page).is_ok_and(|view| view.validate().is_ok()) {
            still_valid += 1;
        }
        fuzz_check(&page, &ops(&mut rng));
    }
    assert!(still_valid > 0);
}

fn pool(frames: usize) -> (BufferPool, pagepool::FileId) {
    let pool = BufferPool::open(PoolConfig::new(frames)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    (pool, file)
}

/// The same model check, through the pool: `HeapPageMut` over a
/// `PageMut`, reads through a shared guard and optimistically.
#[test]
fn operations_through_the_pool_match_the_model() {
    let (pool, file) = pool(4);
    let mut rng = Rng(0x5EED_0004);
    for _ in 0..iterations(30) {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        HeapPageMut::init(&mut page).unwrap();
        drop(page);
        let mut model: Vec<Option<Vec<u8>>> = Vec::new();
        for _ in 0..200 {
            let mut page = pool.write(page_id).unwrap();
            let mut heap = HeapPageMut::open(&mut page).unwrap();
            let slot = rng.below(model.len() + 1) as u16;
            let record = rng.record(300);
            match rng.below(3) {
                0 => {
                    if let Ok(slot) = heap.insert(&record) {
                        let slot = usize::from(slot);
                        model.resize(model.len().max(slot + 1), None);
                        assert!(model[slot].is_none());
                        model[slot] = Some(record);
                    }
                }
                1 => {
                    if heap.delete(slot).is_ok() {
                        model[usize::from(slot)] = None;
                        while let Some(None) = model.last() {
                            model.pop();
                        }
                    }
                }
                _ => {
                    if heap.update(slot, &record).is_ok() {
                        model[usize::from(slot)] = Some(record);
                    }
                }
            }
            drop(page);

            let page = pool.read(page_id).unwrap();
            let view = HeapPageView::new(&page).unwrap();
            view.validate().unwrap();
            assert_eq!(usize::from(view.slot_count()), model.len());
            let mut buf = [0u8; MAX_RECORD_LEN];
            for (slot, expected) in model.iter().enumerate() {
                let slot = slot as u16;
                assert_eq!(view.record(slot).unwrap(), expected.as_deref());
                let len = heap::read_record(&pool, page_id, slot, &mut buf).unwrap();
                assert_eq!(len.map(|len| &buf[..len]), expected.as_deref());
            }
        }
    }
}

/// Random bytes in a pool page: the optimistic reader and the shared
/// reader agree, and neither panics.
#[test]
fn optimistic_reads_of_arbitrary_pages_are_total() {
    let (pool, file) = pool(4);
    let mut rng = Rng(0x5EED_0005);
    let mut buf = [0u8; PAGE_DATA_SIZE];
    for case in 0..iterations(200) {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        let mut bytes = rng.bytes(PAGE_DATA_SIZE);
        if case % 2 == 0 {
            bytes[..4].copy_from_slice(&heap::MAGIC);
            bytes[4..6].copy_from_slice(&(rng.below(64) as u16).to_le_bytes());
            bytes[6..8].copy_from_slice(&(300 + rng.below(3700) as u16).to_le_bytes());
            bytes[8..12].fill(0);
        }
        page.write_at(0, &bytes).unwrap();
        drop(page);
        let page = pool.read(page_id).unwrap();
        let view = HeapPageView::new(&page);
        for slot in 0..70 {
            let in_place = view.as_ref().map_err(|_| ()).and_then(|view| {
                view.record(slot)
                    .map(|r| r.map(<[u8]>::to_vec))
                    .map_err(drop)
            });
            let copied = heap::read_record(&pool, page_id, slot, &mut buf)
                .map(|len| len.map(|len| buf[..len].to_vec()))
                .map_err(drop);
            assert_eq!(in_place, copied, "slot {slot}");
        }
    }
}

/// A record whose bytes say what they should be: `v` (8 bytes), then
/// `v % 300` bytes of `v as u8 ^ 0x5A`, so a torn read is detectable.
fn versioned(v: u64) -> Vec<u8> {
    let mut record = v.to_le_bytes().to_vec();
    record.resize(8 + (v % 300) as usize, v as u8 ^ 0x5A);
    record
}

fn check(record: &[u8]) -> bool {
    let Some((head, tail)) = record.split_first_chunk::<8>() else {
        return false;
    };
    let v = u64::from_le_bytes(*head);
    tail.len() == (v % 300) as usize && tail.iter().all(|&b| b == v as u8 ^ 0x5A)
}

#[test]
fn optimistic_record_reads_never_see_a_torn_record() {
    let (pool, file) = pool(4);
    let (page_id, mut page) = pool.allocate(file).unwrap();
    let mut heap = HeapPageMut::init(&mut page).unwrap();
    for slot in 0..8u64 {
        heap.insert(&versioned(slot)).unwrap();
    }
    drop(page);
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(0x5EED_0006);
            let deadline = Instant::now() + Duration::from_millis(400);
            while Instant::now() < deadline {
                let mut page = pool.write(page_id).unwrap();
                let mut heap = HeapPageMut::open(&mut page).unwrap();
                let slot = rng.below(8) as u16;
                heap.update(slot, &versioned(rng.next())).unwrap();
                if rng.below(50) == 0 {
                    heap.compact().unwrap();
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        for t in 0..3u16 {
            let (pool, stop, reads) = (&pool, &stop, &reads);
            s.spawn(move || {
                let _pin = pool.pin_thread();
                let mut buf = [0u8; 512];
                let mut slot = t;
                while !stop.load(Ordering::Relaxed) {
                    slot = (slot + 1) % 8;
                    let len = heap::read_record(pool, page_id, slot, &mut buf)
                        .unwrap()
                        .expect("live");
                    assert!(check(&buf[..len]), "torn record {:?}", &buf[..len]);
                    if slot == 0 {
                        let page = pool.read(page_id).unwrap();
                        for record in HeapPageView::new(&page).unwrap().records() {
                            assert!(check(record.unwrap().1));
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert!(reads.load(Ordering::Relaxed) > 0);
}

#[test]
fn heap_pages_survive_flush_and_reopen() {
    let dir = common::scratch_dir("heap-reopen");
    let path = dir.join("heap.db");
    let config = || PoolConfig::new(8).io_mode(IoMode::Buffered);
    let mut expected = Vec::new();
    {
        let pool = BufferPool::open(config()).unwrap();
        let file = pool.open_file(&path).unwrap();
        let mut rng = Rng(0x5EED_0007);
        for _ in 0..20 {
            let (page_id, mut page) = pool.allocate(file).unwrap();
            let mut heap = HeapPageMut::init(&mut page).unwrap();
            loop {
                let record = rng.record(200);
                match heap.insert(&record) {
                    Ok(slot) => expected.push((page_id, slot, record)),
                    Err(HeapError::PageFull { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        pool.close().unwrap();
    }
    let pool = BufferPool::open(config()).unwrap();
    let file = pool.open_file(&path).unwrap();
    assert_eq!(pool.page_count(file).unwrap(), 20);
    let mut buf = [0u8; MAX_RECORD_LEN];
    for (page_id, slot, record) in &expected {
        let page = pool.read(*page_id).unwrap();
        assert_eq!(
            HeapPageView::new(&page).unwrap().record(*slot).unwrap(),
            Some(&record[..])
        );
        drop(page);
        let len = heap::read_record(&pool, *page_id, *slot, &mut buf).unwrap();
        assert_eq!(len.map(|len| &buf[..len]), Some(&record[..]));
    }
    let missing = PageId::new(file, 99);
    assert!(matches!(
        heap::read_record(&pool, missing, 0, &mut buf),
        Err(HeapError::Pool(pagepool::Error::PageOutOfRange { .. }))
    ));
    let mut small = [0u8; 2];
    let (page_id, slot, record) = expected.iter().find(|(_, _, r)| r.len() > 2).unwrap();
    assert!(matches!(
        heap::read_record(&pool, *page_id, *slot, &mut small),
        Err(HeapError::BufferTooSmall { len, capacity: 2 }) if len == record.len()
    ));
    let _ = std::fs::remove_dir_all(dir);
}
