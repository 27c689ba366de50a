//! Changing a heap page under the exclusive latch.

use zerocopy::IntoBytes;

use super::{
    Corruption, Geometry, HeapError, HeapPageView, SlotEntry, HEADER_SIZE, MAX_RECORD_LEN,
    SLOT_SIZE,
};
use crate::access::PageMut;
use crate::page::PAGE_DATA_SIZE;
use crate::view::OutOfBounds;

/// A page [`HeapPageMut`] can work on: its data area as bytes, and a way
/// to write them.
///
/// Implemented for [`PageMut`] (writes are the guard's atomic stores) and
/// for a page image in memory, `[u8; PAGE_DATA_SIZE]` (to build a page
/// before writing it in one `write_at`, or to test).
pub trait WritePage {
    /// The page's data area ([`PAGE_DATA_SIZE`] bytes).
    fn data(&self) -> &[u8];
    /// Writes `bytes` at `offset` of the data area.
    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds>;
}

impl WritePage for PageMut<'_> {
    fn data(&self) -> &[u8] {
        self
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        self.write_at(offset, bytes)
    }
}

impl WritePage for [u8; PAGE_DATA_SIZE] {
    fn data(&self) -> &[u8] {
        self
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        let out_of_bounds = OutOfBounds {
            offset,
            len: bytes.len(),
        };
        let end = offset.checked_add(bytes.len()).ok_or(out_of_bounds)?;
        self.get_mut(offset..end)
            .ok_or(out_of_bounds)?
            .copy_from_slice(bytes);
        Ok(())
    }
}

/// A heap page being changed under the exclusive latch.
///
/// Borrows the guard mutably, so nothing else writes the page meanwhile;
/// records read through it ([`Self::record`], [`Self::view`]) borrow it, so
/// none is alive across a change:
///
/// ```compile_fail
/// # use pagepool::*; use pagepool::heap::*;
/// # fn demo(mut page: PageMut<'_>) -> std::result::Result<(), HeapError> {
/// let mut heap = HeapPageMut::open(&mut page)?;
/// let first = heap.record(0)?;
/// heap.insert(b"more")?; // error: `heap` is also borrowed as immutable
/// # let _ = first; Ok(()) }
/// ```
///
/// Every operation checks the page before changing it and leaves a
/// well-formed page well-formed (module docs); on a broken page it returns
/// [`HeapError::Corrupt`] rather than make things worse where it can tell.
pub struct HeapPageMut<'a> {
    page: &'a mut (dyn WritePage + 'a),
}

impl std::fmt::Debug for HeapPageMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("HeapPageMut");
        match self.view() {
            Ok(view) => out
                .field("slot_count", &view.slot_count())
                .field("live_count", &view.live_count())
                .field("free_space", &view.free_space()),
            Err(e) => out.field("error", &e),
        };
        out.finish_non_exhaustive()
    }
}

impl<'a> HeapPageMut<'a> {
    /// Makes `page` an empty heap page (writes a fresh header; the rest of
    /// the page is left as it is and ignored).
    pub fn init<P: WritePage>(page: &'a mut P) -> Result<HeapPageMut<'a>, HeapError> {
        let mut heap = HeapPageMut { page };
        heap.write_header(Geometry::EMPTY)?;
        Ok(heap)
    }

    /// Opens the heap page in `page`: errors if its header is not a
    /// well-formed heap page header.
    pub fn open<P: WritePage>(page: &'a mut P) -> Result<HeapPageMut<'a>, HeapError> {
        let heap = HeapPageMut { page };
        heap.view()?;
        Ok(heap)
    }

    /// The page as a [`HeapPageView`], borrowed from this.
    pub fn view(&self) -> Result<HeapPageView<'_>, HeapError> {
        HeapPageView::new(self.page.data())
    }

    /// The record in `slot`, in place: `None` if the slot is free.
    pub fn record(&self, slot: u16) -> Result<Option<&[u8]>, HeapError> {
        self.view()?.record(slot)
    }

    /// Inserts `record` and returns its slot: the lowest free slot, or a
    /// new one at the end of the directory. Compacts the page first if
    /// only fragmentation stands in the way.
    pub fn insert(&mut self, record: &[u8]) -> Result<u16, HeapError> {
        let len = record.len();
        if len > MAX_RECORD_LEN {
            return Err(HeapError::TooLarge {
                len,
                max: MAX_RECORD_LEN,
            });
        }
        let (mut geo, free_slot) = {
            let view = self.view()?;
            (view.geometry(), view.first_free_slot())
        };
        let (slot, new_slot) = match free_slot {
            Some(slot) => (slot, false),
            None => (geo.slot_count, true),
        };
        let needed = len + if new_slot { SLOT_SIZE } else { 0 };
        if geo.contiguous() < needed {
            let available = geo.contiguous() + geo.fragmented;
            if available < needed {
                return Err(HeapError::PageFull { needed, available });
            }
            geo = self.rebuild(None)?;
            if geo.contiguous() < needed {
                let available = geo.contiguous();
                return Err(HeapError::PageFull { needed, available });
            }
        }
        let offset = if len == 0 {
            PAGE_DATA_SIZE
        } else {
            geo.record_start - len
        };
        let mut next = geo;
        if new_slot {
            next.slot_count += 1;
        }
        next.record_start = offset.min(geo.record_start);
        next.live_count += 1;
        let header = next.to_header()?;
        self.write(offset, record)?;
        self.write_slot(slot, SlotEntry::live(offset, len))?;
        self.write(0, header.as_bytes())?;
        Ok(slot as u16)
    }

    /// Deletes the record in `slot`; the slot becomes free (and free slots
    /// at the end of the directory are dropped). Its bytes are reclaimed at
    /// once if it was the lowest record of the page, otherwise by the next
    /// compaction.
    pub fn delete(&mut self, slot: u16) -> Result<(), HeapError> {
        let (geo, (offset, len), slot_count) = {
            let view = self.view()?;
            let entry = view.live_entry(slot)?;
            // Free slots at the end of the directory go (this one included).
            let mut slot_count = view.slot_count();
            while slot_count > 0
                && (slot_count - 1 == slot || view.entry(slot_count - 1)?.is_none())
            {
                slot_count -= 1;
            }
            (view.geometry(), entry, usize::from(slot_count))
        };
        let next = if slot_count == 0 {
            Geometry::EMPTY
        } else {
            let mut next = geo;
            next.slot_count = slot_count;
            next.live_count = geo.live_count.checked_sub(1).ok_or(bad_header(&geo))?;
            if len > 0 && offset == geo.record_start {
                next.record_start += len;
            } else {
                next.fragmented += len;
            }
            next
        };
        let header = next.to_header()?;
        self.write_slot(usize::from(slot), SlotEntry::FREE)?;
        self.write(0, header.as_bytes())
    }

    /// Replaces the record in `slot` with `record`, keeping its slot: in
    /// place if it is no longer than before or can grow into the free
    /// space next to it, otherwise relocated (compacting the page first if
    /// only fragmentation stands in the way).
    pub fn update(&mut self, slot: u16, record: &[u8]) -> Result<(), HeapError> {
        let len = record.len();
        if len > MAX_RECORD_LEN {
            return Err(HeapError::TooLarge {
                len,
                max: MAX_RECORD_LEN,
            });
        }
        let (geo, (offset, old_len)) = {
            let view = self.view()?;
            (view.geometry(), view.live_entry(slot)?)
        };
        let mut next = geo;
        let new_offset = if len == 0 {
            // Empty records live at the end of the page; free the old bytes.
            if old_len > 0 && offset == geo.record_start {
                next.record_start += old_len;
            } else {
                next.fragmented += old_len;
            }
            PAGE_DATA_SIZE
        } else if len <= old_len {
            // Shrink in place; the tail becomes a fragment.
            next.fragmented += old_len - len;
            offset
        } else if offset == geo.record_start && len - old_len <= geo.contiguous() {
            // The lowest record grows down into the free space.
            next.record_start = offset + old_len - len;
            next.record_start
        } else if len <= geo.contiguous() {
            // Relocate into the free space; the old bytes become a fragment.
            next.record_start = geo.record_start - len;
            next.fragmented += old_len;
            next.record_start
        } else {
            let available = geo.contiguous() + geo.fragmented + old_len;
            if available < len {
                return Err(HeapError::PageFull {
                    needed: len,
                    available,
                });
            }
            self.rebuild(Some((usize::from(slot), record)))?;
            return Ok(());
        };
        let header = next.to_header()?;
        self.write(new_offset, record)?;
        self.write_slot(usize::from(slot), SlotEntry::live(new_offset, len))?;
        self.write(0, header.as_bytes())
    }

    /// Moves every live record to the end of the page, in slot order, so
    /// that all free space is contiguous. Slots keep their numbers.
    pub fn compact(&mut self) -> Result<(), HeapError> {
        self.rebuild(None).map(drop)
    }

    /// Rewrites the page with its live records packed at the end (the
    /// record of `replace.0` replaced by `replace.1`, which must be a live
    /// slot), and the free space zeroed; returns the new geometry.
    fn rebuild(&mut self, replace: Option<(usize, &[u8])>) -> Result<Geometry, HeapError> {
        let mut image = [0u8; PAGE_DATA_SIZE];
        let next = {
            let view = self.view()?;
            let geo = view.geometry();
            let dir_end = geo.dir_end();
            let record = |slot: u16| -> Result<Option<&[u8]>, HeapError> {
                match replace {
                    Some((replaced, record)) if replaced == usize::from(slot) => Ok(Some(record)),
                    _ => view.record(slot),
                }
            };
            let mut needed = 0;
            for slot in 0..view.slot_count() {
                needed += record(slot)?.map_or(0, <[u8]>::len);
            }
            let available = PAGE_DATA_SIZE - dir_end;
            if needed > available {
                // Only a page whose counts lie gets here.
                return Err(HeapError::PageFull { needed, available });
            }
            let mut cursor = PAGE_DATA_SIZE;
            let mut live_count = 0;
            for slot in 0..view.slot_count() {
                let Some(bytes) = record(slot)? else {
                    continue;
                };
                let offset = if bytes.is_empty() {
                    PAGE_DATA_SIZE
                } else {
                    cursor -= bytes.len();
                    image[cursor..cursor + bytes.len()].copy_from_slice(bytes);
                    cursor
                };
                let at = HEADER_SIZE + SLOT_SIZE * usize::from(slot);
                image[at..at + SLOT_SIZE]
                    .copy_from_slice(SlotEntry::live(offset, bytes.len()).as_bytes());
                live_count += 1;
            }
            Geometry {
                slot_count: geo.slot_count,
                record_start: cursor,
                live_count,
                fragmented: 0,
            }
        };
        image[..HEADER_SIZE].copy_from_slice(next.to_header()?.as_bytes());
        self.write(0, &image)?;
        Ok(next)
    }

    fn write_slot(&mut self, slot: usize, entry: SlotEntry) -> Result<(), HeapError> {
        self.write(HEADER_SIZE + SLOT_SIZE * slot, entry.as_bytes())
    }

    fn write_header(&mut self, geo: Geometry) -> Result<(), HeapError> {
        let header = geo.to_header()?;
        self.write(0, header.as_bytes())
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), HeapError> {
        let len = self.page.data().len();
        self.page
            .write(offset, bytes)
            .map_err(|_| Corruption::TooShort { len }.into())
    }
}

fn bad_header(geo: &Geometry) -> Corruption {
    Corruption::BadHeader {
        slot_count: geo.slot_count,
        record_start: geo.record_start,
        live_count: geo.live_count,
        fragmented: geo.fragmented,
    }
}
