//! Typed, zero-copy views of page bytes, with [`zerocopy`] instead of
//! hand-written casts.
//!
//! The layers above the pool (heap pages, index nodes) describe their
//! on-page structures as `#[repr(C)]` types deriving zerocopy's traits, and
//! read and write them through the guards in the three access modes:
//!
//! | mode | call | what you get | needs |
//! |------|------|--------------|-------|
//! | shared latch ([`PageRef`](crate::PageRef)) | `page.get::<T>(offset)`, `page.get_slice::<T>(offset, count)` | `&T` / `&[T]` borrowed from the guard, in the frame (no copy) | `T: FromBytes + KnownLayout + Immutable` |
//! | exclusive latch ([`PageMut`](crate::PageMut)) | `page.get`, `page.get_slice` as above; `page.put(offset, &value)` | stores through the atomic write path | `T: IntoBytes + Immutable` |
//! | optimistic ([`OptimisticView`](crate::OptimisticView)) | `view.load::<T>(offset)`, `view.load_into(offset, &mut out)` | a copy of that value only, validated with the rest of the closure | `T: FromBytes + IntoBytes` |
//!
//! References are checked before they are made: a request that does not
//! lie inside the page's data area is [`TypedError::OutOfBounds`], one
//! whose offset is not a multiple of `align_of::<T>()` is
//! [`TypedError::Misaligned`] (the data area starts at a 4096-aligned
//! frame, so offsets within the page are as aligned as addresses). Types
//! built from zerocopy's byte-order-aware integers
//! (`zerocopy::byteorder::U32<LE>` and friends) are `Unaligned` and fit at
//! any offset. `FromBytes` means every byte pattern is a valid value, so
//! no page content makes any of these calls panic or misbehave.
//!
//! Copies (`put`, `load`) need no alignment: they move bytes through the
//! page's atomic words.
//!
//! ```
//! use pagepool::{BufferPool, MemoryStorage, PoolConfig, TypedError};
//! use zerocopy::byteorder::{LE, U16, U64};
//! use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};
//!
//! #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
//! #[repr(C)]
//! struct NodeHeader {
//!     level: u8,
//!     flags: u8,
//!     key_count: U16<LE>,
//!     right_sibling: U64<LE>,
//! }
//!
//! let pool = BufferPool::open(PoolConfig::new(8))?;
//! let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
//! let (page_id, mut page) = pool.allocate(file)?;
//! page.put(0, &NodeHeader { level: 1, flags: 0, key_count: 3.into(), right_sibling: 9.into() })?;
//! page.put(16, &[10u64, 20, 30][..])?;
//! drop(page);
//!
//! let page = pool.read(page_id)?;
//! let header: &NodeHeader = page.get(0)?;            // in the frame, no copy
//! let keys: &[u64] = page.get_slice(16, usize::from(header.key_count.get()))?;
//! assert_eq!(keys, &[10, 20, 30]);
//! assert_eq!(page.get::<u64>(3), Err(TypedError::Misaligned { offset: 3, align: 8 }));
//! drop(page);
//!
//! // Optimistic: copy only the value, validated with the closure.
//! let sibling = pool.optimistic(page_id, |view| view.load::<NodeHeader>(0))??.right_sibling;
//! assert_eq!(sibling.get(), 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Native integers (`u64` above) are stored in the machine's byte order by
//! `put`; the pool's own accessors (`store_u64`, `load_u64`) are
//! little-endian. Use zerocopy's `byteorder` types for a portable format.

use std::fmt;

use zerocopy::{ConvertError, FromBytes, Immutable, KnownLayout};

use crate::view::OutOfBounds;

/// A typed access the page cannot satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypedError {
    /// The offset is not a multiple of the type's alignment, so no
    /// reference can be made there (a copy — `load`, `put` — could).
    Misaligned {
        /// Byte offset of the access within the page's data area.
        offset: usize,
        /// Alignment the type needs.
        align: usize,
    },
    /// The access does not lie inside the page's data area.
    OutOfBounds {
        /// Byte offset of the access.
        offset: usize,
        /// Length of the access in bytes (saturated at `usize::MAX` when a
        /// slice's length overflows).
        len: usize,
    },
}

impl fmt::Display for TypedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TypedError::Misaligned { offset, align } => write!(
                f,
                "offset {offset} is not a multiple of the type's alignment {align}"
            ),
            TypedError::OutOfBounds { offset, len } => write!(
                f,
                "typed access of {len} bytes at offset {offset} is outside the page data"
            ),
        }
    }
}

impl std::error::Error for TypedError {}

impl From<OutOfBounds> for TypedError {
    fn from(e: OutOfBounds) -> TypedError {
        TypedError::OutOfBounds {
            offset: e.offset,
            len: e.len,
        }
    }
}

/// The `len` bytes of `bytes` at `offset`, or the error naming them.
fn range(bytes: &[u8], offset: usize, len: Option<usize>) -> Result<&[u8], TypedError> {
    let out_of_bounds = TypedError::OutOfBounds {
        offset,
        len: len.unwrap_or(usize::MAX),
    };
    let end = len
        .and_then(|len| offset.checked_add(len))
        .ok_or(out_of_bounds)?;
    bytes.get(offset..end).ok_or(out_of_bounds)
}

fn misaligned<T>(offset: usize) -> TypedError {
    TypedError::Misaligned {
        offset,
        align: std::mem::align_of::<T>(),
    }
}

/// A `&T` over `bytes[offset..offset + size_of::<T>()]`, without copying.
///
/// This is what [`PageRef::get`](crate::PageRef::get) and
/// [`PageMut::get`](crate::PageMut::get) run on the page's data area; it
/// works on any byte slice (a page image in a buffer, a snapshot).
pub fn ref_at<T>(bytes: &[u8], offset: usize) -> Result<&T, TypedError>
where
    T: FromBytes + KnownLayout + Immutable,
{
    let src = range(bytes, offset, Some(std::mem::size_of::<T>()))?;
    match T::ref_from_bytes(src) {
        Ok(value) => Ok(value),
        Err(ConvertError::Alignment(_)) => Err(misaligned::<T>(offset)),
        Err(ConvertError::Size(_)) => Err(TypedError::OutOfBounds {
            offset,
            len: src.len(),
        }),
        Err(ConvertError::Validity(never)) => match never {},
    }
}

/// A `&[T]` of `count` elements starting at `bytes[offset]`, without
/// copying. See [`ref_at`].
pub fn slice_at<T>(bytes: &[u8], offset: usize, count: usize) -> Result<&[T], TypedError>
where
    T: FromBytes + Immutable,
{
    let src = range(bytes, offset, count.checked_mul(std::mem::size_of::<T>()))?;
    match <[T]>::ref_from_bytes_with_elems(src, count) {
        Ok(values) => Ok(values),
        Err(ConvertError::Alignment(_)) => Err(misaligned::<T>(offset)),
        Err(ConvertError::Size(_)) => Err(TypedError::OutOfBounds {
            offset,
            len: src.len(),
        }),
        Err(ConvertError::Validity(never)) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Aligned([u8; 64]);

    #[test]
    fn refs_check_bounds_and_alignment() {
        let mut buf = Aligned([0; 64]);
        buf.0[8..16].copy_from_slice(&7u64.to_ne_bytes());
        let bytes = &buf.0[..];
        assert_eq!(ref_at::<u64>(bytes, 8), Ok(&7));
        assert_eq!(
            ref_at::<u64>(bytes, 4),
            Err(TypedError::Misaligned {
                offset: 4,
                align: 8
            })
        );
        assert_eq!(
            ref_at::<u64>(bytes, 64),
            Err(TypedError::OutOfBounds { offset: 64, len: 8 })
        );
        assert_eq!(
            ref_at::<u64>(bytes, usize::MAX),
            Err(TypedError::OutOfBounds {
                offset: usize::MAX,
                len: 8
            })
        );
        assert_eq!(slice_at::<u64>(bytes, 8, 2), Ok(&[7, 0][..]));
        assert_eq!(slice_at::<u32>(bytes, 60, 0), Ok(&[][..]));
        assert!(matches!(
            slice_at::<u32>(bytes, 0, usize::MAX),
            Err(TypedError::OutOfBounds {
                len: usize::MAX,
                ..
            })
        ));
        assert_eq!(
            slice_at::<()>(bytes, 64, usize::MAX).map(<[()]>::len),
            Ok(usize::MAX)
        );
        assert!(slice_at::<()>(bytes, 65, 1).is_err());
    }

    #[test]
    fn errors_read_well() {
        let e = TypedError::from(OutOfBounds { offset: 5, len: 9 });
        assert_eq!(e, TypedError::OutOfBounds { offset: 5, len: 9 });
        assert!(e.to_string().contains("offset 5"), "{e}");
        let e = TypedError::Misaligned {
            offset: 3,
            align: 8,
        };
        assert!(e.to_string().contains("alignment 8"), "{e}");
    }
}
