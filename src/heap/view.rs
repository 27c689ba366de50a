//! Reading a heap page in place.

use super::{Corruption, Geometry, Header, HeapError, SlotEntry, HEADER_SIZE, SLOT_SIZE};
use crate::page::PAGE_DATA_SIZE;
use crate::typed::{ref_at, slice_at};

/// A heap page read in place: records are `&'a [u8]` borrowed from the
/// bytes the view was made from (a guard's frame), with no copy.
///
/// Made from a shared guard (`HeapPageView::new(&page_ref)`), from the
/// exclusive guard, or from any slice of at least [`PAGE_DATA_SIZE`]
/// bytes (a snapshot; only the first `PAGE_DATA_SIZE` are read). The
/// header is checked when the view is made; each record when it is read.
///
/// The view cannot outlive the guard, and neither can its records:
///
/// ```compile_fail
/// # use pagepool::*; use pagepool::heap::*;
/// # fn demo(pool: &BufferPool, page_id: PageId) -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let record = {
///     let page = pool.read(page_id)?;
///     HeapPageView::new(&page)?.record(0)?
/// }; // error: `page` does not live long enough
/// # let _ = record; Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct HeapPageView<'a> {
    data: &'a [u8],
    slots: &'a [SlotEntry],
    geo: Geometry,
}

impl std::fmt::Debug for HeapPageView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapPageView")
            .field("slot_count", &self.geo.slot_count)
            .field("record_start", &self.geo.record_start)
            .field("live_count", &self.geo.live_count)
            .field("fragmented", &self.geo.fragmented)
            .finish_non_exhaustive()
    }
}

impl<'a> HeapPageView<'a> {
    /// A view of the heap page in `page` (a guard, or the page's data area
    /// as bytes). Errors if the bytes are too short or the header is not a
    /// well-formed heap page header.
    pub fn new(page: &'a [u8]) -> Result<HeapPageView<'a>, HeapError> {
        let too_short = Corruption::TooShort { len: page.len() };
        let data = page.get(..PAGE_DATA_SIZE).ok_or(too_short)?;
        let header: &Header = ref_at(data, 0).map_err(|_| too_short)?;
        let geo = header.geometry()?;
        // In bounds: the header check puts the directory's end at or
        // before `record_start <= PAGE_DATA_SIZE`.
        let slots = slice_at(data, HEADER_SIZE, geo.slot_count).map_err(|_| too_short)?;
        Ok(HeapPageView { data, slots, geo })
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Slots in the directory, live and free; valid slot numbers are
    /// `0..slot_count()`.
    pub fn slot_count(&self) -> u16 {
        self.slots.len() as u16
    }

    /// Live records, as the header counts them.
    pub fn live_count(&self) -> u16 {
        self.geo.live_count as u16
    }

    /// Bytes free for records and slots once the page is compacted: the
    /// free space between directory and records plus the fragments.
    pub fn free_space(&self) -> usize {
        self.geo.contiguous() + self.geo.fragmented
    }

    /// Bytes free between the directory and the records, usable without
    /// compaction.
    pub fn contiguous_free(&self) -> usize {
        self.geo.contiguous()
    }

    /// Bytes of the record area that belong to no live record (reclaimed
    /// by compaction).
    pub fn fragmented(&self) -> usize {
        self.geo.fragmented
    }

    /// Whether a record of `len` bytes can be inserted (compacting first
    /// if need be).
    pub fn fits(&self, len: usize) -> bool {
        let slot = if self.first_free_slot().is_some() {
            0
        } else {
            SLOT_SIZE
        };
        len <= super::MAX_RECORD_LEN && len + slot <= self.free_space()
    }

    /// The lowest free slot, if any.
    pub(crate) fn first_free_slot(&self) -> Option<usize> {
        self.slots.iter().position(|e| e.offset.get() == 0)
    }

    /// The record in `slot`, in place: `None` if the slot is free.
    ///
    /// A slot past the end of the directory is [`HeapError::NoSuchSlot`];
    /// deleting the record of the last slot drops it from the directory,
    /// so treat that error as "no record" where slot numbers can be stale.
    pub fn record(&self, slot: u16) -> Result<Option<&'a [u8]>, HeapError> {
        let Some((offset, len)) = self.entry(slot)? else {
            return Ok(None);
        };
        let bytes = self.data.get(offset..offset + len);
        Ok(Some(bytes.ok_or(Corruption::BadSlot {
            slot,
            offset,
            len,
        })?))
    }

    /// The `(offset, len)` of the record in `slot`, `None` if it is free.
    pub(crate) fn entry(&self, slot: u16) -> Result<Option<(usize, usize)>, HeapError> {
        let entry = self
            .slots
            .get(usize::from(slot))
            .ok_or(HeapError::NoSuchSlot {
                slot,
                slot_count: self.slots.len(),
            })?;
        Ok(entry.record(slot, &self.geo)?)
    }

    /// The `(offset, len)` of the live record in `slot`: errors if the slot
    /// does not exist or is free.
    pub(crate) fn live_entry(&self, slot: u16) -> Result<(usize, usize), HeapError> {
        self.entry(slot)?.ok_or(HeapError::NoRecord { slot })
    }

    /// The live records in slot order, as `(slot, record)`. A slot that
    /// points outside the record area yields an error and the iteration
    /// goes on with the next slot.
    pub fn records(&self) -> Records<'a> {
        Records {
            view: *self,
            next: 0,
        }
    }

    /// Checks the whole page: every slot in bounds, no two records
    /// overlapping, and the header's `live_count` and `fragmented` exact.
    /// Costs a sort of the directory; views and writes do not need it to
    /// be safe (they check what they touch), but a page read from an
    /// untrusted source can be checked once with it.
    pub fn validate(&self) -> Result<(), HeapError> {
        let mut spans = Vec::with_capacity(self.slots.len());
        let mut live_bytes = 0;
        for slot in 0..self.slot_count() {
            if let Some((offset, len)) = self.entry(slot)? {
                spans.push((offset, len, slot));
                live_bytes += len;
            }
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            let [(offset, len, slot), (next, _, other)] = [pair[0], pair[1]];
            if offset + len > next {
                return Err(Corruption::Overlap { slot, other }.into());
            }
        }
        let area = PAGE_DATA_SIZE - self.geo.record_start;
        // No overlap and every record inside the area: `live_bytes <= area`.
        let actual_fragmented = area.saturating_sub(live_bytes);
        if spans.len() != self.geo.live_count || actual_fragmented != self.geo.fragmented {
            return Err(Corruption::BadCounts {
                live_count: self.geo.live_count,
                actual_live: spans.len(),
                fragmented: self.geo.fragmented,
                actual_fragmented,
            }
            .into());
        }
        Ok(())
    }
}

/// The live records of a heap page, as `(slot, record)` in slot order
/// (see [`HeapPageView::records`]).
#[derive(Clone, Debug)]
pub struct Records<'a> {
    view: HeapPageView<'a>,
    next: u16,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u16, &'a [u8]), HeapError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.view.slot_count() {
            let slot = self.next;
            self.next += 1;
            match self.view.record(slot) {
                Ok(None) => continue,
                Ok(Some(record)) => return Some(Ok((slot, record))),
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.view.slot_count().saturating_sub(self.next));
        (0, Some(left))
    }
}

impl std::iter::FusedIterator for Records<'_> {}
