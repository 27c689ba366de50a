//! The heap page checked against a model, on arbitrary input: the core of
//! the `heap_page` fuzz target and of the property tests.

use super::optimistic::read_in;
use super::{HeapError, HeapPageMut, HeapPageView, HEADER_SIZE, MAX_RECORD_LEN, SLOT_SIZE};
use crate::page::{PAGE_DATA_SIZE, PAGE_WORDS};
use crate::sync::{FrameWord, Ordering};
use crate::view::OptimisticView;

/// Most operations decoded from one input.
const MAX_OPS: usize = 4096;

/// Feeds `bytes` to every reader of a heap page as a page (of any
/// length, then padded or cut to a data area), then decodes `ops` into
/// inserts, deletes, updates and compactions and applies them: to that
/// page (against a model if it is a valid heap page, otherwise only
/// checking that nothing panics) and to a freshly initialised page
/// against a model. Panics on any disagreement.
///
/// `ops` encoding, one operation per leading byte `code`:
/// `code % 8` is 0–2 insert, 3–4 delete, 5–6 update, 7 compact; lengths
/// come from the following byte (small) or two bytes (`code & 0x80`,
/// anything up to past [`MAX_RECORD_LEN`]); slots from the next byte, or
/// two bytes (`code & 0x40`), so that free and missing slots are hit.
#[doc(hidden)]
pub fn fuzz_check(bytes: &[u8], ops: &[u8]) {
    read_everything(bytes);
    let mut page = [0u8; PAGE_DATA_SIZE];
    let n = bytes.len().min(PAGE_DATA_SIZE);
    page[..n].copy_from_slice(&bytes[..n]);
    read_everything(&page);
    match Model::of(&page) {
        Some(model) => run(&mut page, Some(model), ops),
        None => run(&mut page, None, ops),
    }

    let mut fresh = [0u8; PAGE_DATA_SIZE];
    HeapPageMut::init(&mut fresh).expect("init");
    run(&mut fresh, Some(Model::default()), ops);
}

/// What the page should hold: a slot directory of records.
#[derive(Debug, Default)]
struct Model {
    slots: Vec<Option<Vec<u8>>>,
}

impl Model {
    /// The model of a page, if it is a valid heap page.
    fn of(page: &[u8]) -> Option<Model> {
        let view = HeapPageView::new(page).ok()?;
        view.validate().ok()?;
        let slots = (0..view.slot_count())
            .map(|slot| view.record(slot).map(|r| r.map(<[u8]>::to_vec)))
            .collect::<Result<_, _>>()
            .expect("a valid page reads");
        Some(Model { slots })
    }

    fn live_bytes(&self) -> usize {
        self.slots.iter().flatten().map(Vec::len).sum()
    }

    /// Free bytes after compaction.
    fn free(&self) -> usize {
        PAGE_DATA_SIZE - HEADER_SIZE - SLOT_SIZE * self.slots.len() - self.live_bytes()
    }

    fn first_free(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    fn live(&self, slot: u16) -> Result<&[u8], &'static str> {
        match self.slots.get(usize::from(slot)) {
            None => Err("no such slot"),
            Some(None) => Err("no record"),
            Some(Some(record)) => Ok(record),
        }
    }

    fn trim(&mut self) {
        while let Some(None) = self.slots.last() {
            self.slots.pop();
        }
    }
}

/// Decodes operations from the op bytes.
struct Ops<'a> {
    bytes: std::slice::Iter<'a, u8>,
    serial: u32,
}

enum Op {
    Insert(Vec<u8>),
    Delete(u16),
    Update(u16, Vec<u8>),
    Compact,
}

impl Ops<'_> {
    fn byte(&mut self) -> u8 {
        self.bytes.next().copied().unwrap_or(0)
    }

    fn wide(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn record(&mut self, code: u8) -> Vec<u8> {
        let len = if code & 0x80 != 0 {
            usize::from(self.wide()) % (MAX_RECORD_LEN + 8)
        } else {
            usize::from(self.byte() % 96)
        };
        self.serial = self.serial.wrapping_add(1);
        let seed = self.serial.wrapping_mul(0x9E37_79B9);
        (0..len)
            .map(|i| (seed.wrapping_add(i as u32 * 131) >> 7) as u8)
            .collect()
    }

    fn slot(&mut self, code: u8) -> u16 {
        if code & 0x40 != 0 {
            self.wide()
        } else {
            u16::from(self.byte() % 64)
        }
    }
}

impl Iterator for Ops<'_> {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        let code = *self.bytes.next()?;
        Some(match code % 8 {
            0..=2 => Op::Insert(self.record(code)),
            3 | 4 => Op::Delete(self.slot(code)),
            5 | 6 => {
                let slot = self.slot(code);
                Op::Update(slot, self.record(code))
            }
            _ => Op::Compact,
        })
    }
}

/// Applies the operations to `page`, checking every result and the whole
/// page after each against `model` when there is one.
fn run(page: &mut [u8; PAGE_DATA_SIZE], mut model: Option<Model>, ops: &[u8]) {
    let ops = Ops {
        bytes: ops.iter(),
        serial: 0,
    };
    for op in ops.take(MAX_OPS) {
        let result = {
            let Ok(mut heap) = HeapPageMut::open(page) else {
                assert!(model.is_none(), "a valid page stays a heap page");
                return;
            };
            match &op {
                Op::Insert(record) => heap.insert(record).map(Some),
                Op::Delete(slot) => heap.delete(*slot).map(|()| None),
                Op::Update(slot, record) => heap.update(*slot, record).map(|()| None),
                Op::Compact => heap.compact().map(|()| None),
            }
        };
        match &mut model {
            Some(model) => {
                expect(model, &op, result);
                check_page(page, model);
                if let Op::Compact = op {
                    let view = HeapPageView::new(page).expect("view");
                    assert_eq!(view.fragmented(), 0, "compaction leaves no fragments");
                }
            }
            None => read_everything(page),
        }
    }
}

/// Checks one operation's result against the model, and applies it there.
fn expect(model: &mut Model, op: &Op, result: Result<Option<u16>, HeapError>) {
    let too_large = |len: usize| len > MAX_RECORD_LEN;
    match (op, result) {
        (Op::Insert(record), result) if too_large(record.len()) => {
            assert!(
                matches!(result, Err(HeapError::TooLarge { .. })),
                "{result:?}"
            );
        }
        (Op::Insert(record), result) => {
            let expected = model.first_free().unwrap_or(model.slots.len());
            let needed = record.len()
                + if expected == model.slots.len() {
                    SLOT_SIZE
                } else {
                    0
                };
            if needed <= model.free() {
                let slot = result.expect("insert that fits").expect("a slot");
                assert_eq!(
                    usize::from(slot),
                    expected,
                    "insert takes the lowest free slot"
                );
                if expected == model.slots.len() {
                    model.slots.push(None);
                }
                model.slots[expected] = Some(record.clone());
            } else {
                assert!(
                    matches!(result, Err(HeapError::PageFull { .. })),
                    "{result:?}"
                );
            }
        }
        (Op::Delete(slot), result) => match model.live(*slot) {
            Ok(_) => {
                result.expect("delete of a live record");
                model.slots[usize::from(*slot)] = None;
                model.trim();
            }
            Err("no record") => assert!(matches!(result, Err(HeapError::NoRecord { .. }))),
            Err(_) => assert!(matches!(result, Err(HeapError::NoSuchSlot { .. }))),
        },
        (Op::Update(_, record), result) if too_large(record.len()) => {
            assert!(
                matches!(result, Err(HeapError::TooLarge { .. })),
                "{result:?}"
            );
        }
        (Op::Update(slot, record), result) => match model.live(*slot) {
            Ok(old) => {
                if record.len() <= old.len() + model.free() {
                    result.expect("update that fits");
                    model.slots[usize::from(*slot)] = Some(record.clone());
                } else {
                    assert!(
                        matches!(result, Err(HeapError::PageFull { .. })),
                        "{result:?}"
                    );
                }
            }
            Err("no record") => assert!(matches!(result, Err(HeapError::NoRecord { .. }))),
            Err(_) => assert!(matches!(result, Err(HeapError::NoSuchSlot { .. }))),
        },
        (Op::Compact, result) => {
            result.expect("compaction of a valid page");
        }
    }
}

/// Checks every reader of the page against the model.
fn check_page(page: &[u8; PAGE_DATA_SIZE], model: &Model) {
    let view = HeapPageView::new(page).expect("a heap page");
    if let Err(e) = view.validate() {
        panic!("page broken after an operation: {e}");
    }
    assert_eq!(usize::from(view.slot_count()), model.slots.len());
    assert_eq!(
        usize::from(view.live_count()),
        model.slots.iter().flatten().count()
    );
    assert_eq!(view.free_space(), model.free());
    let words = words(page);
    let optimistic = OptimisticView::new(&words);
    let mut buf = vec![0u8; MAX_RECORD_LEN];
    for (slot, expected) in model.slots.iter().enumerate() {
        let slot = slot as u16;
        assert_eq!(view.record(slot).expect("record"), expected.as_deref());
        let len = read_in(optimistic, slot, &mut buf).expect("optimistic record");
        assert_eq!(len.map(|len| &buf[..len]), expected.as_deref());
    }
    let live: Vec<(u16, &[u8])> = model
        .slots
        .iter()
        .enumerate()
        .filter_map(|(slot, record)| Some((slot as u16, record.as_deref()?)))
        .collect();
    let records: Vec<(u16, &[u8])> = view.records().collect::<Result<_, _>>().expect("records");
    assert_eq!(records, live);
    let missing = model.slots.len() as u16;
    assert!(matches!(
        view.record(missing),
        Err(HeapError::NoSuchSlot { .. })
    ));
    assert!(matches!(
        read_in(optimistic, missing, &mut buf),
        Err(HeapError::NoSuchSlot { .. })
    ));
}

/// Runs every reader over `bytes`; they may fail but must not panic, and
/// the in-place and optimistic readers must agree.
fn read_everything(bytes: &[u8]) {
    let view = HeapPageView::new(bytes);
    let words = (bytes.len() >= PAGE_DATA_SIZE).then(|| words(bytes));
    let optimistic = words.as_deref().map(OptimisticView::new);
    let mut buf = vec![0u8; MAX_RECORD_LEN];
    let Ok(view) = view else {
        if let Some(optimistic) = optimistic {
            assert!(read_in(optimistic, 0, &mut buf).is_err(), "not a heap page");
        }
        return;
    };
    let _ = (view.live_count(), view.free_space(), view.fits(10));
    let _ = view.validate();
    let _ = view.records().count();
    for slot in 0..=view.slot_count().saturating_add(1) {
        let in_place = view.record(slot);
        let Some(optimistic) = optimistic else {
            continue;
        };
        let copied = read_in(optimistic, slot, &mut buf);
        match (in_place, copied) {
            (Ok(a), Ok(b)) => assert_eq!(a, b.map(|len| &buf[..len])),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("readers disagree on slot {slot}: {a:?} / {b:?}"),
        }
        // A short buffer is an error, never a panic.
        let _ = read_in(optimistic, slot, &mut buf[..3]);
    }
}

/// A page image as frame words (the layout the optimistic view reads).
fn words(bytes: &[u8]) -> Vec<FrameWord> {
    let mut words: Vec<FrameWord> = (0..PAGE_WORDS).map(|_| FrameWord::new(0)).collect();
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut raw = [0u8; 8];
        raw[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_ne_bytes(raw), Ordering::Relaxed);
    }
    words
}
