//! Reading one record without a latch.

use super::{Corruption, Header, HeapError, SlotEntry, HEADER_SIZE, SLOT_SIZE};
use crate::page::{PageId, PAGE_DATA_SIZE};
use crate::pool::BufferPool;
use crate::view::OptimisticView;

/// Copies the record in `slot` of the heap page `page_id` into `buf`
/// through an optimistic read (no latch; see
/// [`BufferPool::optimistic`]), and returns its length, or `None` if the
/// slot is free.
///
/// Only the header, the slot's entry and the record are read, each with a
/// bounds-checked atomic load; every offset and length read from the page
/// is checked before it is used, so a page changing underneath (or any
/// byte pattern at all) yields at worst an error that validation then
/// discards. The result, error or not, is that of a validated read.
///
/// ```
/// # use pagepool::*; use pagepool::heap::*;
/// # fn demo(pool: &BufferPool, page_id: PageId) -> std::result::Result<(), HeapError> {
/// let mut buf = [0u8; MAX_RECORD_LEN];
/// if let Some(len) = read_record(pool, page_id, 3, &mut buf)? {
///     println!("slot 3: {:?}", &buf[..len]);
/// }
/// # Ok(()) }
/// ```
pub fn read_record(
    pool: &BufferPool,
    page_id: PageId,
    slot: u16,
    buf: &mut [u8],
) -> Result<Option<usize>, HeapError> {
    pool.optimistic(page_id, |view| read_in(view, slot, buf))?
}

/// The optimistic closure of [`read_record`].
pub(crate) fn read_in(
    view: OptimisticView<'_>,
    slot: u16,
    buf: &mut [u8],
) -> Result<Option<usize>, HeapError> {
    let too_short = Corruption::TooShort {
        len: PAGE_DATA_SIZE,
    };
    let header: Header = view.load(0).map_err(|_| too_short)?;
    let geo = header.geometry()?;
    if usize::from(slot) >= geo.slot_count {
        return Err(HeapError::NoSuchSlot {
            slot,
            slot_count: geo.slot_count,
        });
    }
    let entry: SlotEntry = view
        .load(HEADER_SIZE + SLOT_SIZE * usize::from(slot))
        .map_err(|_| too_short)?;
    let Some((offset, len)) = entry.record(slot, &geo)? else {
        return Ok(None);
    };
    let capacity = buf.len();
    let out = buf
        .get_mut(..len)
        .ok_or(HeapError::BufferTooSmall { len, capacity })?;
    view.copy_to(offset, out)
        .map_err(|_| Corruption::BadSlot { slot, offset, len })?;
    Ok(Some(len))
}
