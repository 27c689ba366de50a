//! Typed zero-copy views (issue 7): `get`/`get_slice` under shared and
//! exclusive guards, `put` through the atomic write path, `load` in
//! optimistic reads; misaligned and out-of-range requests are errors, and
//! no byte pattern makes any access panic.
#![cfg(not(any(loom, feature = "shuttle")))]

use pagepool::{
    BufferPool, FileId, MemoryStorage, OutOfBounds, PoolConfig, TypedError, PAGE_DATA_SIZE,
};
use zerocopy::byteorder::{LE, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// An unaligned, portable on-page structure (little-endian fields).
#[derive(Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Entry {
    key: U64<LE>,
    len: U16<LE>,
    tag: u8,
    flags: u8,
}

/// An aligned structure of native integers (8-byte alignment, no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Pair {
    a: u64,
    b: u32,
    c: u32,
}

fn pool() -> (BufferPool, FileId) {
    let pool = BufferPool::open(PoolConfig::new(8)).unwrap();
    let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
    (pool, file)
}

fn entry(key: u64) -> Entry {
    Entry {
        key: U64::new(key),
        len: U16::new(key as u16),
        tag: 7,
        flags: 0,
    }
}

#[test]
fn typed_values_round_trip_in_every_mode() {
    let (pool, file) = pool();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    let pair = Pair { a: 1, b: 2, c: 3 };
    page.put(0, &pair).unwrap();
    page.put(17, &entry(42)).unwrap(); // unaligned: any offset
    let entries: Vec<Entry> = (0..10).map(entry).collect();
    page.put(100, &entries[..]).unwrap();
    page.put(PAGE_DATA_SIZE - 4, &U32::<LE>::new(0xDEAD_BEEF))
        .unwrap();
    // Reads under the exclusive guard see the stores.
    assert_eq!(page.get::<Pair>(0), Ok(&pair));
    assert_eq!(page.get::<Entry>(17), Ok(&entry(42)));
    drop(page);

    let page = pool.read(page_id).unwrap();
    let got: &Pair = page.get(0).unwrap();
    assert_eq!(got, &pair);
    // Borrowed from the frame, not copied.
    assert_eq!(
        got as *const Pair as *const u8,
        page.as_ptr(),
        "the reference points into the frame"
    );
    assert_eq!(page.get::<Entry>(17).unwrap(), &entry(42));
    let slice: &[Entry] = page.get_slice(100, 10).unwrap();
    assert_eq!(slice, &entries[..]);
    assert_eq!(
        page.get::<U32<LE>>(PAGE_DATA_SIZE - 4).unwrap().get(),
        0xDEAD_BEEF
    );
    // The little-endian fields agree with the pool's own accessors.
    assert_eq!(page.view().load_u64(17).unwrap(), 42);
    drop(page);

    let loaded: Entry = pool
        .optimistic(page_id, |view| view.load(17))
        .unwrap()
        .unwrap();
    assert_eq!(loaded, entry(42));
    let pair_loaded: Pair = pool
        .optimistic(page_id, |view| view.load(0))
        .unwrap()
        .unwrap();
    assert_eq!(pair_loaded, pair);
    let mut many = [Pair { a: 0, b: 0, c: 0 }; 2];
    pool.optimistic(page_id, |view| view.load_into(0, &mut many[..]))
        .unwrap()
        .unwrap();
    assert_eq!(many[0], pair);
}

#[test]
fn misaligned_and_out_of_range_requests_are_errors() {
    let (pool, file) = pool();
    let (page_id, page) = pool.allocate(file).unwrap();
    drop(page);
    let page = pool.read(page_id).unwrap();
    assert_eq!(
        page.get::<u64>(4),
        Err(TypedError::Misaligned {
            offset: 4,
            align: 8
        })
    );
    assert_eq!(
        page.get::<Pair>(8).map(drop),
        Ok(()),
        "8 is aligned for Pair"
    );
    assert_eq!(
        page.get_slice::<u32>(2, 3),
        Err(TypedError::Misaligned {
            offset: 2,
            align: 4
        })
    );
    assert_eq!(
        page.get::<u64>(PAGE_DATA_SIZE),
        Err(TypedError::OutOfBounds {
            offset: PAGE_DATA_SIZE,
            len: 8
        })
    );
    assert_eq!(
        page.get::<u64>(PAGE_DATA_SIZE - 8).map(drop),
        Ok(()),
        "the last word of the data area"
    );
    assert!(matches!(
        page.get_slice::<u64>(8, PAGE_DATA_SIZE / 8),
        Err(TypedError::OutOfBounds { .. })
    ));
    assert!(matches!(
        page.get_slice::<Pair>(0, usize::MAX),
        Err(TypedError::OutOfBounds { .. })
    ));
    assert!(matches!(
        page.get::<Entry>(usize::MAX - 3),
        Err(TypedError::OutOfBounds { .. })
    ));
    // The trailer (LSN, checksum) is not part of the data area.
    assert!(page.get::<[u8; 16]>(PAGE_DATA_SIZE).is_err());
    let err = page.get::<u32>(PAGE_DATA_SIZE).unwrap_err();
    assert!(err.to_string().contains("outside the page data"), "{err}");
    drop(page);

    let mut page = pool.write(page_id).unwrap();
    assert_eq!(
        page.put(PAGE_DATA_SIZE - 3, &0u32),
        Err(OutOfBounds {
            offset: PAGE_DATA_SIZE - 3,
            len: 4
        })
    );
    assert!(page.put(usize::MAX, &[1u8, 2][..]).is_err());
    let err: pagepool::Error = page.put(PAGE_DATA_SIZE, &1u8).unwrap_err().into();
    assert!(matches!(err, pagepool::Error::OutOfBounds { .. }));
    drop(page);

    let result = pool.optimistic(page_id, |view| view.load::<Pair>(PAGE_DATA_SIZE - 15));
    assert!(matches!(result, Ok(Err(OutOfBounds { .. }))));
}

/// Every byte pattern is a valid value of a `FromBytes` type: reading a
/// page of random bytes at every offset returns values or errors, never
/// panics.
#[test]
fn any_bytes_read_as_values() {
    let (pool, file) = pool();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    let mut x = 0x1234_5678_9ABC_DEF0u64;
    let bytes: Vec<u8> = (0..PAGE_DATA_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    page.write_at(0, &bytes).unwrap();
    drop(page);
    let page = pool.read(page_id).unwrap();
    let mut ok = 0;
    for offset in (0..PAGE_DATA_SIZE + 9).step_by(3) {
        ok += page.get::<Pair>(offset).is_ok() as usize;
        ok += page.get::<Entry>(offset).is_ok() as usize;
        ok += page.get_slice::<u16>(offset, 5).is_ok() as usize;
        ok += page.view().load::<Pair>(offset).is_ok() as usize;
        if let Ok(entry) = page.get::<Entry>(offset) {
            assert_eq!(entry.as_bytes(), &bytes[offset..offset + 12]);
        }
    }
    assert!(ok > 0);
}

#[test]
fn typed_reads_in_optimistic_closures_validate() {
    let (pool, file) = pool();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.put(0, &Pair { a: 0, b: 0, c: !0 }).unwrap();
    drop(page);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=2000u64 {
                let mut page = pool.write(page_id).unwrap();
                page.put(
                    0,
                    &Pair {
                        a: i,
                        b: i as u32,
                        c: !(i as u32),
                    },
                )
                .unwrap();
            }
        });
        s.spawn(|| {
            let _pin = pool.pin_thread();
            let mut last = 0;
            while last < 2000 {
                let p: Pair = pool.optimistic(page_id, |v| v.load(0)).unwrap().unwrap();
                assert!(p.b == p.a as u32 && p.c == !p.b, "torn typed read {p:?}");
                assert!(p.a >= last, "went backwards");
                last = p.a;
            }
        });
    });
}
