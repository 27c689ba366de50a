//! Reading and writing page bytes through atomic words.
//!
//! Frame memory is `AtomicU64` words (docs/design.md rule 1). A byte at offset
//! `o` is byte `o % 8` of word `o / 8` in memory order, so the words and a
//! byte view of the same frame agree; multi-byte values are little-endian
//! on disk and in these accessors. Every accessor is bounds-checked against
//! the page's data area and total: no byte pattern makes it panic.

use crate::page::{LSN_OFFSET, PAGE_DATA_SIZE};
use crate::sync::{load_words, sum_words, FrameWord as AtomicU64, Ordering};

/// Copies of at least this many whole words use the vector loads.
const BULK_MIN_WORDS: usize = 8;

/// An access fell outside the page's data area
/// ([`PAGE_DATA_SIZE`](crate::PAGE_DATA_SIZE) bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// First byte of the access.
    pub offset: usize,
    /// Length of the access.
    pub len: usize,
}

impl std::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "access of {} bytes at offset {} is outside the {PAGE_DATA_SIZE}-byte page data",
            self.len, self.offset
        )
    }
}

impl std::error::Error for OutOfBounds {}

impl From<OutOfBounds> for crate::Error {
    fn from(e: OutOfBounds) -> crate::Error {
        crate::Error::OutOfBounds {
            offset: e.offset,
            len: e.len,
            limit: PAGE_DATA_SIZE,
        }
    }
}

#[inline]
pub(crate) fn check(offset: usize, len: usize) -> Result<(), OutOfBounds> {
    match offset.checked_add(len) {
        Some(end) if end <= PAGE_DATA_SIZE => Ok(()),
        _ => Err(OutOfBounds { offset, len }),
    }
}

/// Copies `out.len()` bytes starting at `offset` (in bounds) out of `words`.
pub(crate) fn load_bytes(words: &[AtomicU64], offset: usize, out: &mut [u8]) {
    if offset.is_multiple_of(8) {
        // Word-aligned (a record, a value, a node): whole words, then the
        // tail. A long copy goes through the vector loads of
        // `sync::load_words`; a short one is a load and a store per word.
        let first = offset / 8;
        let full = out.len() / 8;
        if full >= BULK_MIN_WORDS {
            load_words(&words[first..first + full], &mut out[..full * 8]);
            let tail = &mut out[full * 8..];
            if !tail.is_empty() {
                let word = words[first + full].load(Ordering::Relaxed).to_ne_bytes();
                tail.copy_from_slice(&word[..tail.len()]);
            }
            return;
        }
        let mut chunks = out.chunks_exact_mut(8);
        for (chunk, word) in (&mut chunks).zip(&words[first..]) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let word = words[first + full].load(Ordering::Relaxed).to_ne_bytes();
            tail.copy_from_slice(&word[..tail.len()]);
        }
        return;
    }
    let mut done = 0;
    while done < out.len() {
        let at = offset + done;
        let word = words[at / 8].load(Ordering::Relaxed).to_ne_bytes();
        let skip = at % 8;
        let take = (8 - skip).min(out.len() - done);
        out[done..done + take].copy_from_slice(&word[skip..skip + take]);
        done += take;
    }
}

/// Stores `src` at `offset` (in bounds) into `words`: whole words are
/// stored, partial words are load-merge-stored. The caller holds the
/// frame's latch exclusively, so the merge races no other writer.
pub(crate) fn store_bytes(words: &[AtomicU64], offset: usize, src: &[u8]) {
    let mut done = 0;
    while done < src.len() {
        let at = offset + done;
        let cell = &words[at / 8];
        let skip = at % 8;
        let take = (8 - skip).min(src.len() - done);
        let mut word = if take == 8 {
            [0u8; 8]
        } else {
            cell.load(Ordering::Relaxed).to_ne_bytes()
        };
        word[skip..skip + take].copy_from_slice(&src[done..done + take]);
        cell.store(u64::from_ne_bytes(word), Ordering::Relaxed);
        done += take;
    }
}

/// Reads the LSN from a frame's trailer.
pub(crate) fn load_lsn(words: &[AtomicU64]) -> u64 {
    u64::from_le(words[LSN_OFFSET / 8].load(Ordering::Relaxed))
}

macro_rules! loads {
    ($($(#[$doc:meta])* $name:ident -> $ty:ty;)*) => {$(
        $(#[$doc])*
        #[inline]
        pub fn $name(&self, offset: usize) -> Result<$ty, OutOfBounds> {
            const LEN: usize = std::mem::size_of::<$ty>();
            check(offset, LEN)?;
            let mut bytes = [0u8; LEN];
            load_bytes(self.words, offset, &mut bytes);
            Ok(<$ty>::from_le_bytes(bytes))
        }
    )*};
}

/// A page read without a latch, inside
/// [`BufferPool::optimistic`](crate::BufferPool::optimistic).
///
/// Every value read here may be garbage until the pool validates the
/// page's version after the closure returns; the pool discards the
/// closure's result and runs it again if validation fails. So use what you
/// read only to compute the result, never as a pointer or an unchecked
/// index: every accessor here is bounds-checked and total.
///
/// ```
/// # use pagepool::*;
/// # fn demo(pool: &BufferPool, page_id: PageId) -> pagepool::Result<()> {
/// let first = pool.optimistic(page_id, |view| view.load_u64(0))??;
/// # let _ = first; Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OptimisticView<'a> {
    words: &'a [AtomicU64],
}

impl<'a> OptimisticView<'a> {
    #[inline(always)]
    pub(crate) fn new(words: &'a [AtomicU64]) -> OptimisticView<'a> {
        OptimisticView { words }
    }

    /// Loads the little-endian `u64` at `offset` (any alignment).
    #[inline(always)]
    pub fn load_u64(&self, offset: usize) -> Result<u64, OutOfBounds> {
        // `offset` rotated right by 3 is `offset / 8` when `offset` is a
        // multiple of 8, and at least 2^61 otherwise: one comparison checks
        // both alignment and range (the data area ends on a word boundary).
        let index = offset.rotate_right(3);
        if index < PAGE_DATA_SIZE / 8 {
            return Ok(u64::from_le(self.words[index].load(Ordering::Relaxed)));
        }
        self.load_u64_unaligned(offset)
    }

    #[inline(never)]
    fn load_u64_unaligned(&self, offset: usize) -> Result<u64, OutOfBounds> {
        check(offset, 8)?;
        let mut bytes = [0u8; 8];
        load_bytes(self.words, offset, &mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    loads! {
        /// Loads the little-endian `u32` at `offset`.
        load_u32 -> u32;
        /// Loads the little-endian `u16` at `offset`.
        load_u16 -> u16;
        /// Loads the byte at `offset`.
        load_u8 -> u8;
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`.
    ///
    /// A word-aligned copy of 64 bytes or more (a node, a record array, a
    /// whole page) reads the frame with aligned 16-byte vector loads on
    /// x86-64, each as atomic per word as the scalar loads of shorter
    /// copies (docs/design.md, rule 1); the bytes are the same either way.
    pub fn copy_to(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        check(offset, out.len())?;
        load_bytes(self.words, offset, out);
        Ok(())
    }

    /// Sum of the page's data area as little-endian `u64` words (the last,
    /// partial word counted as its zero-padded value); a whole-page scan
    /// in one call. On x86-64 it reads with the widest vector loads the
    /// processor has (AVX-512F, AVX2 or SSE2, detected at run time), as
    /// atomic per word as scalar loads (docs/design.md, rule 1), into four
    /// independent running sums, so it runs at the memory's rate rather
    /// than at an addition per word.
    // `#[inline]`: the width's dispatch is then compiled into the caller's
    // crate, and a page costs one direct call (to the loop) instead of a
    // call through the global offset table and another from there
    // (BENCHMARKS.md, "Scans at the vector width": 6.4 → 7.2 M pages/s).
    #[inline]
    pub fn sum_u64(&self) -> u64 {
        sum_words(&self.words[..PAGE_DATA_SIZE / 8])
    }

    /// The page's LSN.
    pub fn lsn(&self) -> u64 {
        load_lsn(self.words)
    }
}

/// Typed loads (see [`crate::typed`]): copies of one value, validated with
/// the rest of the optimistic closure.
impl OptimisticView<'_> {
    /// Copies the `T` at `offset` (any alignment) out of the page: only
    /// its `size_of::<T>()` bytes are read. Every byte pattern is a valid
    /// `T` (`FromBytes`), so a torn or garbage read is a harmless value
    /// that validation then discards.
    ///
    /// ```
    /// # use pagepool::*;
    /// # fn demo(pool: &BufferPool, page_id: PageId) -> Result<()> {
    /// let pair: [u32; 2] = pool.optimistic(page_id, |view| view.load(8))??;
    /// # let _ = pair; Ok(()) }
    /// ```
    #[inline]
    pub fn load<T>(&self, offset: usize) -> Result<T, OutOfBounds>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes,
    {
        let mut value = T::new_zeroed();
        self.copy_to(offset, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Copies the bytes at `offset` into `out` (a value or a slice of
    /// values, any alignment): [`Self::load`] for unsized `T`.
    #[inline]
    pub fn load_into<T>(&self, offset: usize, out: &mut T) -> Result<(), OutOfBounds>
    where
        T: zerocopy::FromBytes + zerocopy::IntoBytes + ?Sized,
    {
        self.copy_to(offset, out.as_mut_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::PAGE_WORDS;

    fn words() -> Vec<AtomicU64> {
        (0..PAGE_WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn stores_and_loads_agree_at_every_alignment() {
        let words = words();
        for offset in [0, 1, 7, 8, 13, PAGE_DATA_SIZE - 8] {
            store_bytes(&words, offset, &0x1122_3344_5566_7788u64.to_le_bytes());
            let view = OptimisticView::new(&words);
            assert_eq!(
                view.load_u64(offset),
                Ok(0x1122_3344_5566_7788),
                "offset {offset}"
            );
            assert_eq!(view.load_u8(offset), Ok(0x88));
            assert_eq!(view.load_u16(offset), Ok(0x7788));
            assert_eq!(view.load_u32(offset + 4), Ok(0x1122_3344));
        }
    }

    #[test]
    fn partial_stores_keep_neighbouring_bytes() {
        let words = words();
        store_bytes(&words, 0, &[0xFF; 16]);
        store_bytes(&words, 3, &[1, 2, 3]);
        let mut out = [0u8; 16];
        OptimisticView::new(&words).copy_to(0, &mut out).unwrap();
        assert_eq!(
            out,
            [
                0xFF, 0xFF, 0xFF, 1, 2, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF
            ]
        );
    }

    #[test]
    fn out_of_bounds_is_an_error_never_a_panic() {
        let words = words();
        let view = OptimisticView::new(&words);
        assert!(view.load_u64(PAGE_DATA_SIZE - 7).is_err());
        assert!(view.load_u8(PAGE_DATA_SIZE).is_err());
        assert!(view.load_u32(usize::MAX).is_err());
        assert!(view.copy_to(usize::MAX - 1, &mut [0u8; 4]).is_err());
        assert!(view.copy_to(0, &mut [0u8; PAGE_DATA_SIZE + 1]).is_err());
        let err: crate::Error = view.load_u16(5000).unwrap_err().into();
        assert!(err.to_string().contains("offset 5000"), "{err}");
    }

    #[test]
    fn sum_covers_the_data_area_only() {
        let words = words();
        for w in &words {
            w.store(u64::to_le(1), Ordering::Relaxed);
        }
        assert_eq!(
            OptimisticView::new(&words).sum_u64(),
            (PAGE_DATA_SIZE / 8) as u64
        );
    }

    /// A page of distinct, irregular words (every byte differs from its
    /// neighbours), so a misplaced or dropped word changes the result.
    fn patterned_words() -> Vec<AtomicU64> {
        (0..PAGE_WORDS as u64)
            .map(|i| AtomicU64::new((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 56)))
            .collect()
    }

    #[test]
    fn bulk_loads_equal_word_by_word_loads_at_every_start_and_length() {
        let words = patterned_words();
        let plain: Vec<u64> = words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
        // Starts 0 to 8 cover every 16- and 64-byte phase of the vector
        // loops; lengths to 140 words cover each loop's unrolled body, its
        // one-block loop and its scalar tail.
        for start in 0..9 {
            for len in (0..140).chain([PAGE_WORDS - start - 1, PAGE_WORDS - start]) {
                let src = &words[start..start + len];
                let expected = plain[start..start + len]
                    .iter()
                    .fold(0u64, |sum, &w| sum.wrapping_add(u64::from_le(w)));
                assert_eq!(sum_words(src), expected, "sum, start {start} len {len}");
                let mut out = vec![0u8; len * 8];
                load_words(src, &mut out);
                let bytes: Vec<u8> = plain[start..start + len]
                    .iter()
                    .flat_map(|w| w.to_ne_bytes())
                    .collect();
                assert_eq!(out, bytes, "copy, start {start} len {len}");
            }
        }
    }

    #[test]
    fn long_copies_equal_short_ones_at_every_offset() {
        let words = patterned_words();
        let view = OptimisticView::new(&words);
        for offset in [0, 8, 16, 24, 40, 3, 9, PAGE_DATA_SIZE - 200] {
            for len in [63, 64, 65, 100, 200, 513] {
                if offset + len > PAGE_DATA_SIZE {
                    continue;
                }
                let mut long = vec![0u8; len];
                view.copy_to(offset, &mut long).unwrap();
                let short: Vec<u8> = (offset..offset + len)
                    .map(|at| view.load_u8(at).unwrap())
                    .collect();
                assert_eq!(long, short, "offset {offset} len {len}");
            }
        }
    }
}
