//! A slotted heap page: variable-length records read in place.
//!
//! The classic layout of a heap file's pages (PostgreSQL, SQLite, the
//! seed blog post): a header, a directory of slots growing up from it,
//! and records growing down from the end of the page's data area. A
//! record is named by its slot number, which stays the same when the
//! record moves inside the page (update by relocation, compaction).
//!
//! - [`HeapPageView`] reads a page in place: under a shared latch
//!   (`HeapPageView::new(&page_ref)`), under the exclusive latch, or over
//!   any byte slice of the data area (a snapshot). Records are `&[u8]`
//!   borrowed from the guard, with no copy.
//! - [`HeapPageMut`] changes a page under the exclusive latch: [`init`],
//!   [`insert`], [`delete`], [`update`] (in place when the record shrinks
//!   or can grow into the free space next to it, otherwise by relocation),
//!   [`compact`] (run by itself when fragmentation is all that stands in
//!   the way of an insert or update). Every write goes through
//!   [`PageMut`](crate::PageMut)'s atomic stores.
//! - [`read_record`] copies one record into the caller's buffer through an
//!   optimistic read: no latch, validated by the pool.
//!
//! # Layout
//!
//! All integers are little-endian `u16`s; offsets are bytes from the start
//! of the page's data area ([`PAGE_DATA_SIZE`] = 4080 bytes; the pool's
//! 16-byte trailer follows it and is not part of the heap page).
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0      | 4    | magic `b"HPG1"` |
//! | 4      | 2    | `slot_count`: entries in the slot directory, live and free |
//! | 6      | 2    | `record_start`: lowest byte of the record area |
//! | 8      | 2    | `live_count`: live records |
//! | 10     | 2    | `fragmented`: bytes of the record area that belong to no live record |
//! | 12     | 4    | reserved, written as zero |
//! | 16     | 4 × `slot_count` | slot directory: per slot, record `offset` (u16) then `len` (u16) |
//! | `dir_end` = 16 + 4 × `slot_count` | `record_start` − `dir_end` | free space |
//! | `record_start` | 4080 − `record_start` | records (and fragments), packed towards the end |
//!
//! A slot whose `offset` is 0 is free (its record was deleted); insert
//! reuses the lowest free slot, and delete drops free slots from the end of
//! the directory, so a slot number past the directory
//! ([`HeapError::NoSuchSlot`]) may also name a deleted record. A record of
//! length 0 has `offset` 4080.
//!
//! # Well-formed pages
//!
//! A page is a heap page when its header holds the magic,
//! `dir_end ≤ record_start ≤ 4080`, `live_count ≤ slot_count` and
//! `fragmented ≤ 4080 − record_start`; every view and write checks this
//! first, and each access checks the slot it reads (`record_start ≤ offset`,
//! `offset + len ≤ 4080`). Anything else is [`HeapError::Corrupt`], never a
//! panic or an out-of-bounds access, whatever the page's bytes: pages come
//! from disk and from optimistic reads, where any byte pattern is possible.
//! [`HeapPageView::validate`] checks the whole page: also that no two
//! records overlap and that `live_count` and `fragmented` are exact. Every
//! operation of [`HeapPageMut`] keeps a valid page valid.
//!
//! # Example
//!
//! ```
//! use pagepool::heap::{self, HeapPageMut, HeapPageView};
//! use pagepool::{BufferPool, MemoryStorage, PoolConfig};
//!
//! let pool = BufferPool::open(PoolConfig::new(8))?;
//! let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
//!
//! let (page_id, mut page) = pool.allocate(file)?;
//! let mut heap = HeapPageMut::init(&mut page)?;
//! let alice = heap.insert(b"alice")?;
//! let bob = heap.insert(b"bob")?;
//! let carol = heap.insert(b"carol")?;
//! heap.update(alice, b"alice, again and longer")?; // relocated in the page
//! heap.delete(bob)?;
//! drop(page);
//!
//! let page = pool.read(page_id)?;                   // shared latch
//! let view = HeapPageView::new(&page)?;
//! assert_eq!(view.record(alice)?, Some(&b"alice, again and longer"[..])); // in the frame
//! assert_eq!(view.record(bob)?, None);            // a free slot
//! assert_eq!(view.records().count(), 2);           // alice, carol
//! for record in view.records() {
//!     let (slot, bytes) = record?;
//!     println!("{slot}: {bytes:?}");
//! }
//! # let _ = carol;
//! drop(page);
//!
//! let mut buf = [0u8; 64];                          // no latch, validated
//! let len = heap::read_record(&pool, page_id, alice, &mut buf)?;
//! assert_eq!(len.map(|len| &buf[..len]), Some(&b"alice, again and longer"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`init`]: HeapPageMut::init
//! [`insert`]: HeapPageMut::insert
//! [`delete`]: HeapPageMut::delete
//! [`update`]: HeapPageMut::update
//! [`compact`]: HeapPageMut::compact

use std::fmt;

use zerocopy::byteorder::{LE, U16};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::page::PAGE_DATA_SIZE;

mod check;
mod optimistic;
mod view;
mod write;

#[doc(hidden)]
pub use check::fuzz_check;
pub use optimistic::read_record;
pub use view::{HeapPageView, Records};
pub use write::{HeapPageMut, WritePage};

/// The magic at the start of every heap page.
pub const MAGIC: [u8; 4] = *b"HPG1";
/// Size of the page header in bytes.
pub const HEADER_SIZE: usize = 16;
/// Size of one slot directory entry in bytes.
pub const SLOT_SIZE: usize = 4;
/// The longest record a heap page holds: the data area less the header
/// and one slot.
pub const MAX_RECORD_LEN: usize = PAGE_DATA_SIZE - HEADER_SIZE - SLOT_SIZE;

/// The page header as stored (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Header {
    magic: [u8; 4],
    slot_count: U16<LE>,
    record_start: U16<LE>,
    live_count: U16<LE>,
    fragmented: U16<LE>,
    reserved: [u8; 4],
}

/// One slot directory entry as stored.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct SlotEntry {
    offset: U16<LE>,
    len: U16<LE>,
}

/// A header that passed its checks, in `usize`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) slot_count: usize,
    pub(crate) record_start: usize,
    pub(crate) live_count: usize,
    pub(crate) fragmented: usize,
}

impl Geometry {
    /// The header of an empty page.
    pub(crate) const EMPTY: Geometry = Geometry {
        slot_count: 0,
        record_start: PAGE_DATA_SIZE,
        live_count: 0,
        fragmented: 0,
    };

    /// First byte past the slot directory.
    pub(crate) fn dir_end(&self) -> usize {
        HEADER_SIZE + SLOT_SIZE * self.slot_count
    }

    /// Free bytes between the directory and the records.
    pub(crate) fn contiguous(&self) -> usize {
        self.record_start.saturating_sub(self.dir_end())
    }

    /// Checks the header invariants (module docs, "Well-formed pages").
    fn check(self) -> Result<Geometry, Corruption> {
        let ok = self.dir_end() <= self.record_start
            && self.record_start <= PAGE_DATA_SIZE
            && self.live_count <= self.slot_count
            && self.fragmented <= PAGE_DATA_SIZE - self.record_start;
        if ok {
            Ok(self)
        } else {
            Err(Corruption::BadHeader {
                slot_count: self.slot_count,
                record_start: self.record_start,
                live_count: self.live_count,
                fragmented: self.fragmented,
            })
        }
    }

    /// The stored form; refuses a geometry that breaks the invariants
    /// (which only a corrupt page can lead to), so no write ever stores a
    /// broken header.
    pub(crate) fn to_header(self) -> Result<Header, HeapError> {
        let geo = self.check()?;
        let narrow = |v: usize| U16::new(v as u16); // all below 4096 after `check`
        Ok(Header {
            magic: MAGIC,
            slot_count: narrow(geo.slot_count),
            record_start: narrow(geo.record_start),
            live_count: narrow(geo.live_count),
            fragmented: narrow(geo.fragmented),
            reserved: [0; 4],
        })
    }
}

impl Header {
    /// The header's geometry, if it is a well-formed heap page header.
    pub(crate) fn geometry(&self) -> Result<Geometry, Corruption> {
        if self.magic != MAGIC {
            return Err(Corruption::BadMagic(self.magic));
        }
        Geometry {
            slot_count: usize::from(self.slot_count.get()),
            record_start: usize::from(self.record_start.get()),
            live_count: usize::from(self.live_count.get()),
            fragmented: usize::from(self.fragmented.get()),
        }
        .check()
    }
}

impl SlotEntry {
    /// A free slot.
    pub(crate) const FREE: SlotEntry = SlotEntry {
        offset: U16::ZERO,
        len: U16::ZERO,
    };

    /// The entry of a live record at `offset` (below 4096) of `len` bytes.
    pub(crate) fn live(offset: usize, len: usize) -> SlotEntry {
        SlotEntry {
            offset: U16::new(offset as u16),
            len: U16::new(len as u16),
        }
    }

    /// The record's `(offset, len)`, `None` for a free slot, or the
    /// corruption if it points outside the record area.
    pub(crate) fn record(
        &self,
        slot: u16,
        geo: &Geometry,
    ) -> Result<Option<(usize, usize)>, Corruption> {
        let offset = usize::from(self.offset.get());
        let len = usize::from(self.len.get());
        if offset == 0 {
            return Ok(None);
        }
        // `&&` short-circuits: the subtraction runs only once
        // `offset <= PAGE_DATA_SIZE` holds.
        let ok = geo.record_start <= offset
            && offset <= PAGE_DATA_SIZE
            && len <= PAGE_DATA_SIZE - offset
            && (len != 0 || offset == PAGE_DATA_SIZE);
        if ok {
            Ok(Some((offset, len)))
        } else {
            Err(Corruption::BadSlot { slot, offset, len })
        }
    }
}

/// What is broken in a page that is not a well-formed heap page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The bytes are shorter than a page's data area.
    TooShort {
        /// Their length.
        len: usize,
    },
    /// The page does not start with [`MAGIC`]: it is not a heap page (or
    /// was never initialised).
    BadMagic([u8; 4]),
    /// The header's fields contradict each other.
    BadHeader {
        /// Slots in the directory.
        slot_count: usize,
        /// Start of the record area.
        record_start: usize,
        /// Live records.
        live_count: usize,
        /// Fragmented bytes.
        fragmented: usize,
    },
    /// A slot points outside the record area.
    BadSlot {
        /// The slot.
        slot: u16,
        /// Its record's offset.
        offset: usize,
        /// Its record's length.
        len: usize,
    },
    /// Two records overlap (found by [`HeapPageView::validate`]).
    Overlap {
        /// The slot of one record.
        slot: u16,
        /// The slot of a record it overlaps.
        other: u16,
    },
    /// `live_count` or `fragmented` disagrees with the slot directory
    /// (found by [`HeapPageView::validate`]).
    BadCounts {
        /// Live records according to the header.
        live_count: usize,
        /// Live records in the directory.
        actual_live: usize,
        /// Fragmented bytes according to the header.
        fragmented: usize,
        /// Fragmented bytes according to the directory.
        actual_fragmented: usize,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corruption::TooShort { len } => {
                write!(
                    f,
                    "{len} bytes are shorter than a page's {PAGE_DATA_SIZE}-byte data area"
                )
            }
            Corruption::BadMagic(magic) => {
                write!(f, "magic {magic:02x?} is not a heap page's {MAGIC:02x?}")
            }
            Corruption::BadHeader {
                slot_count,
                record_start,
                live_count,
                fragmented,
            } => write!(
                f,
                "inconsistent header: {slot_count} slots, records from byte {record_start}, \
                 {live_count} live, {fragmented} fragmented bytes"
            ),
            Corruption::BadSlot { slot, offset, len } => write!(
                f,
                "slot {slot} points outside the record area ({len} bytes at offset {offset})"
            ),
            Corruption::Overlap { slot, other } => {
                write!(f, "the records of slots {slot} and {other} overlap")
            }
            Corruption::BadCounts {
                live_count,
                actual_live,
                fragmented,
                actual_fragmented,
            } => write!(
                f,
                "header counts {live_count} live records and {fragmented} fragmented bytes, \
                 the directory {actual_live} and {actual_fragmented}"
            ),
        }
    }
}

/// What a heap page operation could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeapError {
    /// The page is not a well-formed heap page.
    #[error("broken heap page: {0}")]
    Corrupt(Corruption),
    /// The slot is past the end of the slot directory.
    #[error("slot {slot} does not exist: the page has {slot_count} slots")]
    NoSuchSlot {
        /// The slot asked for.
        slot: u16,
        /// Slots in the directory.
        slot_count: usize,
    },
    /// The slot is free: its record was deleted.
    #[error("slot {slot} holds no record")]
    NoRecord {
        /// The slot asked for.
        slot: u16,
    },
    /// The record is longer than any heap page can hold.
    #[error("a record of {len} bytes is longer than the {max} bytes a heap page holds")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// [`MAX_RECORD_LEN`].
        max: usize,
    },
    /// Not enough free space in the page, even after compaction.
    #[error("the page has {available} bytes free, {needed} are needed")]
    PageFull {
        /// Bytes the operation needs (the record, plus a slot for an
        /// insert that cannot reuse one).
        needed: usize,
        /// Bytes the page can give it (after compaction).
        available: usize,
    },
    /// The caller's buffer is shorter than the record.
    #[error("the record is {len} bytes, the buffer {capacity}")]
    BufferTooSmall {
        /// The record's length.
        len: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// The pool could not provide the page.
    #[error(transparent)]
    Pool(#[from] crate::Error),
}

impl From<Corruption> for HeapError {
    fn from(c: Corruption) -> HeapError {
        HeapError::Corrupt(c)
    }
}

#[cfg(test)]
mod tests;
