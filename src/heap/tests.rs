use super::*;

fn fresh() -> [u8; PAGE_DATA_SIZE] {
    let mut page = [0xAA; PAGE_DATA_SIZE];
    HeapPageMut::init(&mut page).unwrap();
    page
}

fn records(page: &[u8]) -> Vec<(u16, Vec<u8>)> {
    HeapPageView::new(page)
        .unwrap()
        .records()
        .map(|r| r.map(|(slot, bytes)| (slot, bytes.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn layout_constants_match_the_docs() {
    assert_eq!(std::mem::size_of::<Header>(), HEADER_SIZE);
    assert_eq!(std::mem::size_of::<SlotEntry>(), SLOT_SIZE);
    assert_eq!(MAX_RECORD_LEN, 4060);
    let page = fresh();
    assert_eq!(&page[..4], b"HPG1");
    assert_eq!(&page[4..16], &[0, 0, 0xF0, 0x0F, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn insert_delete_update_compact() {
    let mut page = fresh();
    let mut heap = HeapPageMut::open(&mut page).unwrap();
    assert_eq!(heap.insert(b"one").unwrap(), 0);
    assert_eq!(heap.insert(b"two").unwrap(), 1);
    assert_eq!(heap.insert(b"").unwrap(), 2);
    assert_eq!(heap.insert(b"four").unwrap(), 3);
    heap.delete(1).unwrap();
    assert_eq!(heap.record(1).unwrap(), None);
    assert!(matches!(
        heap.delete(1),
        Err(HeapError::NoRecord { slot: 1 })
    ));
    assert!(matches!(
        heap.delete(9),
        Err(HeapError::NoSuchSlot {
            slot: 9,
            slot_count: 4
        })
    ));
    // Reuses the free slot.
    assert_eq!(heap.insert(b"TWO").unwrap(), 1);
    // Grows the lowest record in place, relocates another.
    heap.update(1, b"TWO, longer").unwrap();
    heap.update(0, b"one, relocated").unwrap();
    heap.update(3, b"4").unwrap();
    let view = heap.view().unwrap();
    view.validate().unwrap();
    assert!(view.fragmented() > 0);
    heap.compact().unwrap();
    let view = heap.view().unwrap();
    view.validate().unwrap();
    assert_eq!(view.fragmented(), 0);
    assert_eq!(
        records(&page),
        vec![
            (0, b"one, relocated".to_vec()),
            (1, b"TWO, longer".to_vec()),
            (2, vec![]),
            (3, b"4".to_vec()),
        ]
    );
}

#[test]
fn deleting_the_last_slots_shrinks_the_directory_and_empties_the_page() {
    let mut page = fresh();
    let mut heap = HeapPageMut::open(&mut page).unwrap();
    for i in 0..4u8 {
        heap.insert(&[i; 10]).unwrap();
    }
    heap.delete(1).unwrap();
    heap.delete(2).unwrap();
    heap.delete(3).unwrap();
    assert_eq!(heap.view().unwrap().slot_count(), 1);
    heap.delete(0).unwrap();
    let view = heap.view().unwrap();
    assert_eq!(view.slot_count(), 0);
    assert_eq!(view.free_space(), PAGE_DATA_SIZE - HEADER_SIZE);
    assert_eq!(view.contiguous_free(), PAGE_DATA_SIZE - HEADER_SIZE);
}

#[test]
fn fills_up_compacts_and_reports_full() {
    let mut page = fresh();
    let mut heap = HeapPageMut::open(&mut page).unwrap();
    assert!(matches!(
        heap.insert(&[1; MAX_RECORD_LEN + 1]),
        Err(HeapError::TooLarge { .. })
    ));
    let mut slots = Vec::new();
    while let Ok(slot) = heap.insert(&[7; 100]) {
        slots.push(slot);
    }
    assert_eq!(slots.len(), (PAGE_DATA_SIZE - HEADER_SIZE) / 104);
    assert!(matches!(
        heap.insert(&[7; 100]),
        Err(HeapError::PageFull { .. })
    ));
    // Free every other record: only compaction makes room for a big one.
    for slot in slots.iter().step_by(2) {
        heap.delete(*slot).unwrap();
    }
    let view = heap.view().unwrap();
    assert!(view.contiguous_free() < 300 && view.fits(300));
    let slot = heap.insert(&[9; 300]).unwrap();
    assert_eq!(slot, 0);
    assert_eq!(heap.record(slot).unwrap(), Some(&[9; 300][..]));
    heap.view().unwrap().validate().unwrap();
    // One record as long as a page holds.
    let mut page = fresh();
    let mut heap = HeapPageMut::open(&mut page).unwrap();
    heap.insert(&[3; MAX_RECORD_LEN]).unwrap();
    assert_eq!(heap.view().unwrap().free_space(), 0);
    assert!(matches!(
        heap.insert(b""),
        Err(HeapError::PageFull {
            needed: 4,
            available: 0
        })
    ));
}

#[test]
fn broken_pages_are_errors() {
    let zero = [0u8; PAGE_DATA_SIZE];
    assert!(matches!(
        HeapPageView::new(&zero),
        Err(HeapError::Corrupt(Corruption::BadMagic(_)))
    ));
    assert!(matches!(
        HeapPageView::new(&zero[..100]),
        Err(HeapError::Corrupt(Corruption::TooShort { len: 100 }))
    ));
    let mut page = fresh();
    HeapPageMut::open(&mut page)
        .unwrap()
        .insert(b"abc")
        .unwrap();
    let mut bad = page;
    bad[6..8].copy_from_slice(&5000u16.to_le_bytes()); // record_start past the end
    assert!(matches!(
        HeapPageView::new(&bad),
        Err(HeapError::Corrupt(Corruption::BadHeader { .. }))
    ));
    let mut bad = page;
    bad[16..18].copy_from_slice(&4079u16.to_le_bytes()); // 3 bytes at 4079
    let view = HeapPageView::new(&bad).unwrap();
    assert!(matches!(
        view.record(0),
        Err(HeapError::Corrupt(Corruption::BadSlot {
            slot: 0,
            offset: 4079,
            len: 3
        }))
    ));
    assert!(matches!(
        HeapPageMut::open(&mut bad).unwrap().delete(0),
        Err(HeapError::Corrupt(_))
    ));
    assert!(matches!(
        HeapPageMut::open(&mut bad).unwrap().compact(),
        Err(HeapError::Corrupt(_))
    ));
    let mut bad = page;
    bad[8..10].copy_from_slice(&0u16.to_le_bytes()); // live_count 0
    assert!(matches!(
        HeapPageView::new(&bad).unwrap().validate(),
        Err(HeapError::Corrupt(Corruption::BadCounts { .. }))
    ));
    let e = HeapError::from(Corruption::Overlap { slot: 1, other: 2 });
    assert!(e.to_string().contains("slots 1 and 2 overlap"), "{e}");
}

#[test]
fn fuzz_check_smoke() {
    fuzz_check(&[], &[]);
    fuzz_check(
        &fresh(),
        &[0, 10, 0, 20, 3, 0, 5, 1, 40, 7, 0x80, 0xFF, 0x0F],
    );
}
