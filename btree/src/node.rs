//! The node format, read in place (optimistically, through atomic loads)
//! and rewritten through a local image under the exclusive latch.
//!
//! # Layout (the page's data area, little-endian)
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 1    | kind: 1 leaf, 2 inner, 3 meta                                 |
//! | 1      | 1    | level: 0 for leaves, child's level + 1 for inner nodes        |
//! | 2      | 2    | slot count                                                   |
//! | 4      | 2    | heap start: the lowest byte of the entry heap                 |
//! | 8      | 8    | inner: the rightmost child's page number ("upper")            |
//! | 16     | 4    | inner: the upper child's frame hint (then 4 bytes of 0)       |
//! | 24     | 8 × 16 | search hints: the heads of 16 evenly spaced slots (below)  |
//! | 152    | 16 × count | slots, sorted by key: entry offset (u16), key length (u16), then a leaf's value length (u16, then 0 as u16) or an inner node's child frame hint (u32), then the key's head: its first 8 bytes as a big-endian `u64`, zero-padded |
//! | heap   |      | entries, key then value, packed from the end of the page down |
//!
//! A leaf's values are the caller's; an inner node's are 8-byte child page
//! numbers, and each child's *frame hint* (`pagepool::FrameHint`: the
//! frame the child was last seen in) lies in its slot, on the cache line
//! the search for it has just read, so that a descent with a right hint
//! goes from the node to the child's frame without the page table. A hint
//! is never trusted (the pool checks it) and may be anything: a new child
//! gets its frame when it is created, a reader that finds a hint stale
//! stores the right one (`store_frame_hint`, which does not dirty the
//! page), and every image stored carries the hints it read. Inner entry `i` holds separator `k_i` and child `c_i`, which
//! covers the keys in `(k_{i-1}, k_i]`; `upper` covers the keys above the
//! last separator. A split of a node keeps the lower half in place and
//! moves the upper half to a new right sibling.
//!
//! The head makes a binary search touch only the slot array: two keys whose
//! heads differ are ordered by their heads (a zero-padded shorter key is
//! a prefix, and a prefix sorts first), and only keys with equal heads are
//! compared further, from byte 8, in the heap. Keys of up to 8 bytes never
//! leave the slots.
//!
//! The hints narrow a search before it starts: hint `i` is the head of
//! slot `(i + 1) · count / 17`, so one pass over two cache lines of hints
//! (which a starting guard prefetches with the header) leaves a seventeenth
//! of the slots to search. They are rewritten with every stored image and
//! used only in nodes of more than 32 slots.
//!
//! Every read here is bounds-checked and total ([`Torn`] on anything out
//! of place): an optimistic reader may see any bytes at all, and only a
//! later validation says whether what it read counts.

use std::cmp::Ordering;

use pagepool::{FrameHint, OptimisticView, PageMut, PAGE_DATA_SIZE};

/// A leaf node.
pub(crate) const LEAF: u8 = 1;
/// An inner node.
pub(crate) const INNER: u8 = 2;
/// The tree's meta page.
pub(crate) const META: u8 = 3;

const HINTS: usize = 16;
const HINTS_AT: usize = 24;
const HEADER: usize = HINTS_AT + 8 * HINTS;
const SLOT: usize = 16;
const UPPER_AT: usize = 8;
const UPPER_HINT_AT: usize = 16;
/// Where a slot's third field (a leaf's value length, an inner node's
/// child frame hint) lies in the slot.
const SLOT_TAIL_AT: usize = 4;
/// An inner node's value: a child page number.
const CHILD: usize = 8;

/// The most bytes of key plus value one entry may have: four of the
/// largest entries fit in a node, so either half of a split has room for
/// one more.
pub const MAX_ENTRY: usize = (PAGE_DATA_SIZE - HEADER) / 4 - SLOT;
/// The longest key: 512 bytes (less only under the model checker's small
/// pages), so that an inner entry (key and child) is never larger than a
/// leaf's largest.
pub const MAX_KEY: usize = if MAX_ENTRY - CHILD < 512 {
    MAX_ENTRY - CHILD
} else {
    512
};

/// The bytes of an inner entry with the longest key: the room a node must
/// have for a separator from below.
pub(crate) const MAX_SEPARATOR_ENTRY: usize = MAX_KEY + CHILD;

/// The node's bytes were not a node (an optimistic read saw a writer's
/// half-done work, or the page was freed): validate to tell which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Torn;

impl From<pagepool::OutOfBounds> for Torn {
    fn from(_: pagepool::OutOfBounds) -> Torn {
        Torn
    }
}

/// Read access to a node's bytes: a frame (optimistic atomic loads) or a
/// local image.
pub(crate) trait Bytes: Copy {
    fn u64_at(self, offset: usize) -> Result<u64, Torn>;
    fn copy(self, offset: usize, out: &mut [u8]) -> Result<(), Torn>;
}

impl Bytes for OptimisticView<'_> {
    #[inline]
    fn u64_at(self, offset: usize) -> Result<u64, Torn> {
        Ok(self.load_u64(offset)?)
    }

    #[inline]
    fn copy(self, offset: usize, out: &mut [u8]) -> Result<(), Torn> {
        Ok(self.copy_to(offset, out)?)
    }
}

impl Bytes for &[u8] {
    #[inline]
    fn u64_at(self, offset: usize) -> Result<u64, Torn> {
        let bytes = self.get(offset..offset + 8).ok_or(Torn)?;
        Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| Torn)?))
    }

    #[inline]
    fn copy(self, offset: usize, out: &mut [u8]) -> Result<(), Torn> {
        let bytes = self.get(offset..offset + out.len()).ok_or(Torn)?;
        out.copy_from_slice(bytes);
        Ok(())
    }
}

/// One slot, decoded and checked to lie inside the page.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) offset: usize,
    pub(crate) key_len: usize,
    pub(crate) value_len: usize,
    /// The slot's third field as stored: a leaf's value length, an inner
    /// node's child frame hint.
    tail: u32,
}

impl Slot {
    pub(crate) fn value_at(self) -> usize {
        self.offset + self.key_len
    }

    fn size(self) -> usize {
        self.key_len + self.value_len
    }
}

/// The first word of a node: kind, level, slot count, heap start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub(crate) kind: u8,
    pub(crate) level: u8,
    pub(crate) count: usize,
    heap_start: usize,
}

impl Head {
    pub(crate) fn is_leaf(self) -> bool {
        self.kind == LEAF
    }
}

/// Reads and checks a node's header.
#[inline]
pub(crate) fn head(bytes: impl Bytes) -> Result<Head, Torn> {
    let word = bytes.u64_at(0)?;
    let head = Head {
        kind: word as u8,
        level: (word >> 8) as u8,
        count: (word >> 16) as u16 as usize,
        heap_start: (word >> 32) as u16 as usize,
    };
    let slots_end = HEADER + SLOT * head.count;
    let kind_ok =
        matches!((head.kind, head.level), (LEAF, 0)) || (head.kind == INNER && head.level > 0);
    if !kind_ok || slots_end > head.heap_start || head.heap_start > PAGE_DATA_SIZE {
        return Err(Torn);
    }
    Ok(head)
}

/// Slot `index` of a node with header `head`.
#[inline]
pub(crate) fn slot(bytes: impl Bytes, head: Head, index: usize) -> Result<Slot, Torn> {
    if index >= head.count {
        return Err(Torn);
    }
    let word = bytes.u64_at(HEADER + SLOT * index)?;
    let tail = (word >> 32) as u32;
    let slot = Slot {
        offset: word as u16 as usize,
        key_len: (word >> 16) as u16 as usize,
        value_len: if head.is_leaf() {
            tail as u16 as usize
        } else {
            CHILD
        },
        tail,
    };
    if slot.offset < head.heap_start || slot.offset + slot.size() > PAGE_DATA_SIZE {
        return Err(Torn);
    }
    Ok(slot)
}

/// The head of `key`: its first 8 bytes as a big-endian integer,
/// zero-padded.
#[inline]
pub(crate) fn key_head(key: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let len = key.len().min(8);
    head[..len].copy_from_slice(&key[..len]);
    u64::from_be_bytes(head)
}

/// Compares the key in slot `index` with `key` (whose head is `head`),
/// lexicographically by bytes: by the heads in the slot array, and only
/// for equal heads by the rest of the key in the heap.
#[inline]
fn compare_at(
    bytes: impl Bytes,
    node: Head,
    index: usize,
    key: &[u8],
    head: u64,
) -> Result<Ordering, Torn> {
    if index >= node.count {
        return Err(Torn);
    }
    let stored_head = bytes.u64_at(HEADER + SLOT * index + 8)?;
    if stored_head != head {
        return Ok(stored_head.cmp(&head));
    }
    let slot = slot(bytes, node, index)?;
    if slot.key_len <= 8 || key.len() <= 8 {
        return Ok(slot.key_len.cmp(&key.len()));
    }
    compare_from(bytes, slot, key, 8)
}

/// Compares the key of `slot` with `key` from byte `done` on (the bytes
/// before it are equal).
#[inline]
fn compare_from(
    bytes: impl Bytes,
    slot: Slot,
    key: &[u8],
    mut done: usize,
) -> Result<Ordering, Torn> {
    let common = slot.key_len.min(key.len());
    while done + 8 <= common {
        let stored = bytes.u64_at(slot.offset + done)?.swap_bytes();
        let wanted = u64::from_be_bytes(key[done..done + 8].try_into().map_err(|_| Torn)?);
        if stored != wanted {
            return Ok(stored.cmp(&wanted));
        }
        done += 8;
    }
    if done < common {
        let mut tail = [0u8; 8];
        let rest = common - done;
        bytes.copy(slot.offset + done, &mut tail[..rest])?;
        let order = tail[..rest].cmp(&key[done..common]);
        if order != Ordering::Equal {
            return Ok(order);
        }
    }
    Ok(slot.key_len.cmp(&key.len()))
}

/// The first slot whose key is `>= key` (or `> key` with `exclusive`),
/// `count` if none, and whether that slot's key equals `key`.
#[inline]
pub(crate) fn search(
    bytes: impl Bytes,
    head: Head,
    key: &[u8],
    exclusive: bool,
) -> Result<(usize, bool), Torn> {
    let key_head = key_head(key);
    let (low, high) = hinted_range(bytes, head, key_head)?;
    search_within(bytes, head, key, key_head, exclusive, low, high)
}

/// [`search`] among slots `low..high`, which must hold the answer.
#[inline]
fn search_within(
    bytes: impl Bytes,
    head: Head,
    key: &[u8],
    key_head: u64,
    exclusive: bool,
    mut low: usize,
    mut high: usize,
) -> Result<(usize, bool), Torn> {
    let mut equal = false;
    while low < high {
        let middle = (low + high) / 2;
        let order = compare_at(bytes, head, middle, key, key_head)?;
        if order == Ordering::Less || (exclusive && order == Ordering::Equal) {
            low = middle + 1;
        } else {
            equal = order == Ordering::Equal;
            high = middle;
        }
    }
    Ok((low, equal && low < head.count))
}

/// The slots a search for a key with head `key_head` must look at: all of
/// them in a small node, else the stretch between the hints around it.
/// Always within `0..=count`, whatever the hints hold.
#[inline]
fn hinted_range(bytes: impl Bytes, head: Head, key_head: u64) -> Result<(usize, usize), Torn> {
    if head.count <= 2 * HINTS {
        return Ok((0, head.count));
    }
    let spacing = head.count / (HINTS + 1);
    let mut first = HINTS;
    for i in 0..HINTS {
        if bytes.u64_at(HINTS_AT + 8 * i)? >= key_head {
            first = i;
            break;
        }
    }
    let mut last = first;
    while last < HINTS && bytes.u64_at(HINTS_AT + 8 * last)? <= key_head {
        last += 1;
    }
    let low = spacing * first;
    let high = if last < HINTS {
        spacing * (last + 1) + 1
    } else {
        head.count
    };
    Ok((low, high.min(head.count)))
}

/// A child of an inner node, as read from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Child {
    pub(crate) page_no: u64,
    pub(crate) frame_hint: FrameHint,
    /// Where `frame_hint` lies in the node (for `store_frame_hint`).
    pub(crate) hint_at: usize,
}

/// The child of an inner node at position `index` (`count`: the upper
/// child).
#[inline]
pub(crate) fn child_at(bytes: impl Bytes, head: Head, index: usize) -> Result<Child, Torn> {
    if head.is_leaf() {
        return Err(Torn);
    }
    if index == head.count {
        return Ok(Child {
            page_no: bytes.u64_at(UPPER_AT)?,
            frame_hint: FrameHint::from_bits(bytes.u64_at(UPPER_HINT_AT)? as u32),
            hint_at: UPPER_HINT_AT,
        });
    }
    let slot = slot(bytes, head, index)?;
    Ok(Child {
        page_no: bytes.u64_at(slot.value_at())?,
        frame_hint: FrameHint::from_bits(slot.tail),
        hint_at: HEADER + SLOT * index + SLOT_TAIL_AT,
    })
}

/// Copies the key of slot `index` into `out`.
pub(crate) fn key_into(
    bytes: impl Bytes,
    head: Head,
    index: usize,
    out: &mut Vec<u8>,
) -> Result<(), Torn> {
    let slot = slot(bytes, head, index)?;
    out.resize(slot.key_len, 0);
    bytes.copy(slot.offset, out)
}

/// A node's bytes in local memory, for a writer that holds the exclusive
/// latch: read whole, changed here, written back whole.
pub(crate) struct Image {
    bytes: Box<[u8; PAGE_DATA_SIZE]>,
}

impl Image {
    /// An empty node.
    pub(crate) fn new(kind: u8, level: u8) -> Image {
        let mut image = Image {
            bytes: Box::new([0u8; PAGE_DATA_SIZE]),
        };
        image.set_head(kind, level, 0, PAGE_DATA_SIZE);
        image
    }

    /// The node in `page` (latched exclusively by the caller).
    pub(crate) fn load(page: &PageMut<'_>) -> Result<Image, Torn> {
        let mut bytes = Box::new([0u8; PAGE_DATA_SIZE]);
        page.view().copy_to(0, &mut bytes[..])?;
        Image::checked(bytes)
    }

    /// An image whose header and every slot are valid, or `Torn`: the
    /// accessors below may then assume them.
    fn checked(bytes: Box<[u8; PAGE_DATA_SIZE]>) -> Result<Image, Torn> {
        let image = Image { bytes };
        let head = head(image.view())?;
        for index in 0..head.count {
            slot(image.view(), head, index)?;
        }
        Ok(image)
    }

    /// The node as read (optimistically) through `view`; the caller
    /// validates before using it.
    pub(crate) fn copy_of(view: OptimisticView<'_>) -> Result<Image, Torn> {
        let mut bytes = Box::new([0u8; PAGE_DATA_SIZE]);
        view.copy_to(0, &mut bytes[..])?;
        Image::checked(bytes)
    }

    /// Writes the image into `page`, its search hints brought up to date.
    pub(crate) fn store(&mut self, page: &mut PageMut<'_>) -> Result<(), Torn> {
        self.refresh_hints();
        Ok(page.write_at(0, &self.bytes[..])?)
    }

    fn refresh_hints(&mut self) {
        let count = self.head().count;
        let spacing = count / (HINTS + 1);
        for i in 0..HINTS {
            let hint = if count > 2 * HINTS {
                let at = HEADER + SLOT * (spacing * (i + 1)) + 8;
                u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
            } else {
                0
            };
            let at = HINTS_AT + 8 * i;
            self.bytes[at..at + 8].copy_from_slice(&hint.to_le_bytes());
        }
    }

    pub(crate) fn view(&self) -> &[u8] {
        &self.bytes[..]
    }

    pub(crate) fn head(&self) -> Head {
        head(self.view()).expect("an image holds a valid node")
    }

    fn set_head(&mut self, kind: u8, level: u8, count: usize, heap_start: usize) {
        let word = u64::from(kind)
            | u64::from(level) << 8
            | (count as u64) << 16
            | (heap_start as u64) << 32;
        self.bytes[..8].copy_from_slice(&word.to_le_bytes());
    }

    /// The upper child's page number and frame hint.
    pub(crate) fn upper(&self) -> (u64, FrameHint) {
        let child = self.child_at(self.head().count);
        (child.page_no, child.frame_hint)
    }

    pub(crate) fn set_upper(&mut self, page_no: u64, hint: FrameHint) {
        self.bytes[UPPER_AT..UPPER_AT + 8].copy_from_slice(&page_no.to_le_bytes());
        self.bytes[UPPER_HINT_AT..UPPER_HINT_AT + 8]
            .copy_from_slice(&u64::from(hint.to_bits()).to_le_bytes());
    }

    pub(crate) fn slot(&self, index: usize) -> Slot {
        slot(self.view(), self.head(), index).expect("an image's slots are valid")
    }

    pub(crate) fn key(&self, index: usize) -> &[u8] {
        let slot = self.slot(index);
        &self.bytes[slot.offset..slot.offset + slot.key_len]
    }

    pub(crate) fn value(&self, index: usize) -> &[u8] {
        let slot = self.slot(index);
        &self.bytes[slot.value_at()..slot.value_at() + slot.value_len]
    }

    /// The page number of child `index` (`count`: the upper child).
    pub(crate) fn child(&self, index: usize) -> u64 {
        self.child_at(index).page_no
    }

    /// The page number and frame hint of child `index`.
    pub(crate) fn child_with_hint(&self, index: usize) -> (u64, FrameHint) {
        let child = self.child_at(index);
        (child.page_no, child.frame_hint)
    }

    fn child_at(&self, index: usize) -> Child {
        child_at(self.view(), self.head(), index).expect("an inner image's children are valid")
    }

    /// [`search`] over every slot: an image's hints are brought up to
    /// date only when it is stored.
    pub(crate) fn search(&self, key: &[u8], exclusive: bool) -> (usize, bool) {
        let head = self.head();
        search_within(
            self.view(),
            head,
            key,
            key_head(key),
            exclusive,
            0,
            head.count,
        )
        .expect("an image is a valid node")
    }

    /// Bytes free for slots and entries once the heap is compacted.
    pub(crate) fn free_after_compaction(&self) -> usize {
        let head = self.head();
        let live: usize = (0..head.count).map(|i| self.slot(i).size()).sum();
        PAGE_DATA_SIZE - HEADER - SLOT * head.count - live
    }

    /// Whether an entry of `size` bytes (key and value) fits.
    pub(crate) fn fits(&self, size: usize) -> bool {
        self.free_after_compaction() >= size + SLOT
    }

    /// Inserts `key` → `value` at slot `index` of a leaf (the caller
    /// searched); false if it does not fit.
    pub(crate) fn insert_at(&mut self, index: usize, key: &[u8], value: &[u8]) -> bool {
        assert!(self.head().is_leaf(), "an inner entry is a child");
        self.insert_entry(index, key, value, value.len() as u32)
    }

    /// Inserts separator `key` with child `page_no`, last seen in frame
    /// `hint`, at slot `index` of an inner node; false if it does not fit.
    pub(crate) fn insert_child(
        &mut self,
        index: usize,
        key: &[u8],
        page_no: u64,
        hint: FrameHint,
    ) -> bool {
        assert!(!self.head().is_leaf(), "a leaf's values are the caller's");
        self.insert_entry(index, key, &page_no.to_le_bytes(), hint.to_bits())
    }

    /// An entry as stored: key, value and the slot's third field.
    fn entry(&self, index: usize) -> (Vec<u8>, Vec<u8>, u32) {
        let tail = self.slot(index).tail;
        (self.key(index).to_vec(), self.value(index).to_vec(), tail)
    }

    fn insert_entry(&mut self, index: usize, key: &[u8], value: &[u8], tail: u32) -> bool {
        let size = key.len() + value.len();
        if !self.fits(size) {
            return false;
        }
        let head = self.head();
        if head.heap_start - (HEADER + SLOT * head.count) < size + SLOT {
            self.compact();
        }
        let head = self.head();
        let offset = head.heap_start - size;
        self.bytes[offset..offset + key.len()].copy_from_slice(key);
        self.bytes[offset + key.len()..offset + size].copy_from_slice(value);
        let at = HEADER + SLOT * index;
        let end = HEADER + SLOT * head.count;
        self.bytes.copy_within(at..end, at + SLOT);
        let word = offset as u64 | (key.len() as u64) << 16 | u64::from(tail) << 32;
        self.bytes[at..at + 8].copy_from_slice(&word.to_le_bytes());
        self.bytes[at + 8..at + SLOT].copy_from_slice(&key_head(key).to_le_bytes());
        self.set_head(head.kind, head.level, head.count + 1, offset);
        true
    }

    /// Removes slot `index` (its heap bytes are reclaimed by the next
    /// compaction).
    pub(crate) fn remove_at(&mut self, index: usize) {
        let head = self.head();
        assert!(index < head.count);
        let at = HEADER + SLOT * index;
        let end = HEADER + SLOT * head.count;
        self.bytes.copy_within(at + SLOT..end, at);
        self.bytes[end - SLOT..end].fill(0);
        self.set_head(head.kind, head.level, head.count - 1, head.heap_start);
    }

    /// Sets the child of inner slot `index` (`count`: the upper child)
    /// and its frame hint.
    pub(crate) fn set_child(&mut self, index: usize, page_no: u64, hint: FrameHint) {
        let head = self.head();
        if index == head.count {
            return self.set_upper(page_no, hint);
        }
        let at = self.slot(index).value_at();
        self.bytes[at..at + 8].copy_from_slice(&page_no.to_le_bytes());
        let at = HEADER + SLOT * index + SLOT_TAIL_AT;
        self.bytes[at..at + 4].copy_from_slice(&hint.to_bits().to_le_bytes());
    }

    /// Rewrites the heap without the bytes of removed entries.
    fn compact(&mut self) {
        let head = self.head();
        let entries: Vec<_> = (0..head.count).map(|i| self.entry(i)).collect();
        let upper = self.bytes[UPPER_AT..UPPER_AT + 16].to_vec();
        *self = Image::new(head.kind, head.level);
        self.bytes[UPPER_AT..UPPER_AT + 16].copy_from_slice(&upper);
        for (index, (key, value, tail)) in entries.iter().enumerate() {
            let fitted = self.insert_entry(index, key, value, *tail);
            debug_assert!(fitted);
        }
    }

    /// Splits the node: keeps the lower half here, returns the upper half
    /// as a new node and the separator to insert above (every key here is
    /// `<=` it, every key there `>` it).
    pub(crate) fn split(&mut self) -> (Vec<u8>, Image) {
        let head = self.head();
        assert!(head.count >= 2, "a node splits only when full");
        let total: usize = (0..head.count).map(|i| self.slot(i).size() + SLOT).sum();
        let mut left_bytes = 0;
        let mut middle = 0;
        while middle < head.count - 1 && left_bytes < total / 2 {
            left_bytes += self.slot(middle).size() + SLOT;
            middle += 1;
        }
        let middle = middle.max(1);
        let entries: Vec<_> = (0..head.count).map(|i| self.entry(i)).collect();
        let mut left = Image::new(head.kind, head.level);
        let mut right = Image::new(head.kind, head.level);
        let separator;
        if head.is_leaf() {
            // Leaves: [0, middle) stay, [middle, count) move; the
            // separator is the left half's last key.
            separator = entries[middle - 1].0.clone();
            left.insert_all(&entries[..middle]);
            right.insert_all(&entries[middle..]);
        } else {
            // Inner: entry `middle` moves up; its child becomes the left
            // half's upper child.
            let middle = middle.min(head.count - 1);
            separator = entries[middle].0.clone();
            let moved_up = self.child_at(middle);
            let (upper, upper_hint) = self.upper();
            left.insert_all(&entries[..middle]);
            left.set_upper(moved_up.page_no, moved_up.frame_hint);
            right.insert_all(&entries[middle + 1..]);
            right.set_upper(upper, upper_hint);
        }
        *self = left;
        (separator, right)
    }

    /// Appends `entries` (as [`entry`](Self::entry) gives them, in order)
    /// to an empty node that has room for them.
    fn insert_all(&mut self, entries: &[(Vec<u8>, Vec<u8>, u32)]) {
        for (index, (key, value, tail)) in entries.iter().enumerate() {
            let fitted = self.insert_entry(index, key, value, *tail);
            debug_assert!(fitted, "half of a node fits a node");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    #[test]
    fn insert_search_remove_and_compact_keep_order() {
        let mut leaf = Image::new(LEAF, 0);
        for n in (0..150u32).rev() {
            let k = key(n * 2);
            let (index, found) = leaf.search(&k, false);
            assert!(!found);
            assert!(leaf.insert_at(index, &k, &[n as u8; 3]));
        }
        for n in 0..150u32 {
            let (index, found) = leaf.search(&key(n * 2), false);
            assert!(found && index == n as usize);
            let (index, found) = leaf.search(&key(n * 2 + 1), false);
            assert!(!found && index == n as usize + 1);
            let (index, _) = leaf.search(&key(n * 2), true);
            assert_eq!(
                index,
                n as usize + 1,
                "exclusive search skips the equal key"
            );
        }
        for n in (0..150).step_by(2) {
            let (index, found) = leaf.search(&key(n * 2), false);
            assert!(found);
            leaf.remove_at(index);
        }
        assert_eq!(leaf.head().count, 75);
        // Fill until full: compaction reclaims the removed entries' bytes.
        let mut n = 1_000u32;
        loop {
            let k = key(n);
            let (index, _) = leaf.search(&k, false);
            if !leaf.insert_at(index, &k, &[1; 3]) {
                break;
            }
            n += 1;
        }
        let count = leaf.head().count;
        // 23 bytes an entry (a 16-byte slot, 4 + 3 bytes): 171 fit.
        assert!(count > 165, "{count} entries");
        let keys: Vec<_> = (0..count).map(|i| leaf.key(i).to_vec()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    /// A search narrowed by the hints finds what a search of every slot
    /// finds, for keys present, absent, below and above all, equal heads
    /// with longer tails, and both search kinds.
    #[test]
    fn hinted_searches_agree_with_full_searches() {
        for (kind, level) in [(LEAF, 0), (INNER, 1)] {
            let mut node = Image::new(kind, level);
            let mut n = 0u32;
            loop {
                let mut k = key(n * 3).to_vec();
                if n.is_multiple_of(5) {
                    k.extend_from_slice(b"-tail-beyond-eight");
                }
                let (index, _) = node.search(&k, false);
                let fitted = if kind == LEAF {
                    node.insert_at(index, &k, &[0u8; 8])
                } else {
                    node.insert_child(index, &k, 0, FrameHint::NONE)
                };
                if !fitted {
                    break;
                }
                n += 1;
            }
            assert!(node.head().count > 2 * HINTS);
            node.refresh_hints();
            let head = node.head();
            for probe in 0..(n * 3 + 4) {
                for suffix in [&b""[..], b"-tail", b"-tail-beyond-eight", b"-zz"] {
                    let mut k = key(probe).to_vec();
                    k.extend_from_slice(suffix);
                    for exclusive in [false, true] {
                        let hinted = search(node.view(), head, &k, exclusive).unwrap();
                        assert_eq!(hinted, node.search(&k, exclusive), "{k:?} {exclusive}");
                    }
                }
            }
        }
    }

    #[test]
    fn splits_divide_by_bytes_and_separate_correctly() {
        let mut leaf = Image::new(LEAF, 0);
        let mut n = 0u32;
        while leaf.insert_at(n as usize, &key(n), &[7; 100]) {
            n += 1;
        }
        let (separator, right) = leaf.split();
        let (lh, rh) = (leaf.head(), right.head());
        assert_eq!(lh.count + rh.count, n as usize);
        assert!(lh.count.abs_diff(rh.count) <= 1);
        assert_eq!(leaf.key(lh.count - 1), &separator[..]);
        assert!(right.key(0) > &separator[..]);
        assert!(leaf.fits(MAX_ENTRY) && right.fits(MAX_ENTRY));

        // Inner nodes: each child keeps its frame hint through the split
        // (and through the compactions of the inserts).
        let mut inner = Image::new(INNER, 1);
        let hint = |n: u32| FrameHint::from_bits(n * 7 + 1);
        let mut n = 0u32;
        while inner.insert_child(n as usize, &key(n), u64::from(n), hint(n)) {
            n += 1;
        }
        inner.set_upper(9_999, hint(9_999));
        let (separator, right) = inner.split();
        let (lh, rh) = (inner.head(), right.head());
        assert_eq!(lh.count + rh.count + 1, n as usize);
        let middle = u32::from_be_bytes(separator[..].try_into().unwrap());
        assert_eq!(inner.upper(), (u64::from(middle), hint(middle)));
        assert_eq!(right.upper(), (9_999, hint(9_999)));
        assert!(right.key(0) > &separator[..]);
        for (node, first) in [(&inner, 0), (&right, middle + 1)] {
            for i in 0..node.head().count {
                let n = first + i as u32;
                assert_eq!(node.child_with_hint(i), (u64::from(n), hint(n)));
                let child = child_at(node.view(), node.head(), i).unwrap();
                let at = child.hint_at;
                assert_eq!(node.view()[at..at + 4], hint(n).to_bits().to_le_bytes());
            }
        }
        // set_child rewrites both.
        inner.set_child(1, 77, hint(77));
        assert_eq!(inner.child_with_hint(1), (77, hint(77)));
        assert_eq!(inner.child_with_hint(0), (0, hint(0)));
    }

    /// A compaction (inserts after removals) keeps every child's hint
    /// with its child, the upper one included.
    #[test]
    fn compaction_keeps_children_with_their_hints() {
        let mut inner = Image::new(INNER, 1);
        let hint = |n: u64| FrameHint::from_bits(n as u32 ^ 0x5a5a);
        inner.set_upper(u64::MAX >> 20, hint(3));
        let mut n = 0u64;
        while inner.insert_child(n as usize, &key(n as u32), n, hint(n)) {
            n += 1;
        }
        for i in (0..inner.head().count).rev().step_by(2) {
            inner.remove_at(i);
        }
        let mut m = 100_000u64;
        loop {
            let k = key(m as u32);
            let (index, _) = inner.search(&k, false);
            if !inner.insert_child(index, &k, m, hint(m)) {
                break;
            }
            m += 1;
        }
        assert!(m > 100_001, "the removals made room");
        for i in 0..inner.head().count {
            let (page_no, frame_hint) = inner.child_with_hint(i);
            assert_eq!(frame_hint, hint(page_no));
        }
        assert_eq!(inner.upper(), (u64::MAX >> 20, hint(3)));
    }

    #[test]
    fn garbage_is_torn_never_a_panic() {
        let mut bytes = vec![0u8; PAGE_DATA_SIZE];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..2_000 {
            for byte in bytes.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            // Make the header plausible half the time.
            if round % 2 == 0 {
                bytes[0] = LEAF;
                bytes[1] = 0;
                bytes[2] = (state % 40) as u8;
                bytes[3] = 0;
            }
            let view: &[u8] = &bytes;
            if let Ok(head) = head(view) {
                let _ = search(view, head, b"some key", false);
                let _ = child_at(view, head, head.count);
            }
        }
    }
}
