//! The one place that names atomics, locks, fences, thread-locals and
//! cells.
//!
//! Every concurrent module imports these names from here, never from `std`
//! directly, so the same protocol code compiles against three back ends:
//!
//! | build                                   | back end                         |
//! |-----------------------------------------|----------------------------------|
//! | default                                 | `std`                            |
//! | `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"` | `loom` (exhaustive models)  |
//! | `--features shuttle`                    | `shuttle` (randomized schedules) |
//!
//! Under either checker, frame memory is the checker's atomics too (so the
//! seqlock's data loads and stores are modelled), pages are small
//! ([`PAGE_SIZE`](crate::PAGE_SIZE) = 32 bytes under loom, 64 under
//! shuttle) and guards have no `Deref` to bytes (use `view()`). Under loom
//! every frame also carries an [`AccessTracker`]: bulk, non-atomic access
//! to a frame (an `O_DIRECT` read into it, a write-back out of it) and
//! optimistic reads of it are declared to loom, which reports any that are
//! not ordered by happens-before (a frame reused while a reader may still
//! be reading it).

#[cfg(all(loom, feature = "shuttle"))]
compile_error!("choose one model checker: `--cfg loom` or `--features shuttle`, not both");

#[cfg(not(any(loom, feature = "shuttle")))]
mod imp {
    pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use std::thread;
    pub(crate) use std::thread::yield_now;
    pub(crate) use std::thread_local;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use loom::thread;
    pub(crate) use loom::thread::yield_now;
    pub(crate) use loom::thread_local;
}

#[cfg(feature = "shuttle")]
mod imp {
    pub(crate) use shuttle::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
    pub(crate) use shuttle::sync::{Condvar, Mutex, MutexGuard, RwLock};
    pub(crate) use shuttle::thread;
    pub(crate) use shuttle::thread::yield_now;
    pub(crate) use shuttle::thread_local;
}

pub(crate) use imp::*;
pub(crate) use std::sync::atomic::Ordering;

#[cfg(any(loom, feature = "shuttle"))]
pub(crate) use imp::AtomicU64 as FrameWord;
/// The word type of frame memory: the checker's atomics under a checker
/// (data loads and stores are part of the model: a reader can be
/// interleaved inside a writer's page update), `std`'s otherwise (a plain,
/// 4096-aligned arena that storage reads and writes in place).
#[cfg(not(any(loom, feature = "shuttle")))]
pub(crate) use std::sync::atomic::AtomicU64 as FrameWord;

/// Counters that are not part of any protocol (statistics): always `std`,
/// so they add no states to a model.
pub(crate) use std::sync::atomic::AtomicU64 as PlainCounter;

/// A fresh id for a pool, never reused within the process.
pub(crate) fn next_pool_uid() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
///
/// The pool's mutexes guard plain bookkeeping (free-frame queues, wait
/// queues, bucket writers) whose invariants hold at every unlock, so
/// poisoning carries no information worth a panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sleeps on `condvar` (releasing `guard`) until notified or, in the std
/// build, until `deadline`; returns the guard and whether the deadline has
/// passed. The model checkers have no clock: there the deadline is ignored
/// and only a notification (or a spurious wake-up) ends the sleep.
pub(crate) fn sleep_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
) -> (MutexGuard<'a, T>, bool) {
    #[cfg(not(any(loom, feature = "shuttle")))]
    if let Some(deadline) = deadline {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return (guard, true);
        };
        let (guard, result) = condvar
            .wait_timeout(guard, left)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        return (guard, result.timed_out());
    }
    #[cfg(any(loom, feature = "shuttle"))]
    let _ = deadline;
    let guard = condvar
        .wait(guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (guard, false)
}

/// Pauses a thread that waits for something another thread must do
/// (frames coming back through the epoch): sleeps briefly in production,
/// yields to the scheduler under a model checker (which has no clock).
pub(crate) fn pause() {
    #[cfg(not(any(loom, feature = "shuttle")))]
    std::thread::sleep(std::time::Duration::from_micros(50));
    #[cfg(any(loom, feature = "shuttle"))]
    imp::yield_now();
}

/// Declares accesses to a frame's memory to loom; free otherwise.
///
/// `read` spans an optimistic read or a bulk copy out of the frame;
/// `write` spans a bulk (non-atomic) fill of the frame from storage. Loom
/// checks that every `write` is ordered by happens-before after every
/// earlier `read` and `write` of the same frame, which is exactly the
/// epoch's promise (docs/design.md rule 6).
#[derive(Debug, Default)]
pub(crate) struct AccessTracker {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<()>,
}

// SAFETY: the tracker holds no data (`()`); it only reports accesses to
// loom, which checks them across threads. Sharing it is what it is for.
#[cfg(loom)]
unsafe impl Sync for AccessTracker {}

impl AccessTracker {
    /// Runs `f` as a read of the frame.
    #[inline]
    pub(crate) fn read<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(loom)]
        return self.cell.with(|_| f());
        #[cfg(not(loom))]
        f()
    }

    /// Starts a read of the frame that lasts until the returned span
    /// drops (an optimistic guard's reads, which are not one closure).
    #[inline]
    pub(crate) fn begin_read(&self) -> ReadSpan {
        #[cfg(loom)]
        return ReadSpan(self.cell.get());
        #[cfg(not(loom))]
        ReadSpan()
    }

    /// Runs `f` as an exclusive write of the frame.
    #[inline]
    pub(crate) fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(loom)]
        return self.cell.with_mut(|_| f());
        #[cfg(not(loom))]
        f()
    }
}

/// A read of a frame declared to loom for as long as it lives (see
/// [`AccessTracker::begin_read`]); nothing otherwise.
#[derive(Debug)]
pub(crate) struct ReadSpan(
    // Held only for its drop, which ends the access loom tracks.
    #[cfg(loom)]
    #[allow(dead_code)]
    loom::cell::ConstPtr<()>,
);

/// Bulk relaxed loads of frame words: a copy and a sum, with vector loads
/// where the hardware makes them word-atomic.
///
/// Rule 1 (docs/design.md) lets optimistic readers touch frame memory only
/// through relaxed atomic loads of whole words, and the compiler never
/// merges or vectorises atomic loads: a whole-page read that way is 510
/// scalar loads. On x86-64 an aligned 16-byte SSE load is two naturally
/// aligned quadword accesses at least (one 16-byte atomic access on every
/// processor with AVX; Intel SDM vol. 3A §9.1.1, AMD APM vol. 2 §7.3.2),
/// and a naturally aligned quadword access is atomic. For wider loads (32
/// bytes with AVX2, 64 with AVX-512) the manuals say only that an access
/// larger than a quadword may be carried out as several accesses; they do
/// not promise, in so many words, that none of those is narrower than a
/// quadword. That is this module's assumption, and the one every
/// vectorised seqlock reader on x86 makes: every element here is a
/// naturally aligned quadword (frame words are 8-aligned), and the wide
/// loops start on a 64-byte boundary (the SSE2 ones on a 16-byte one), so
/// no load crosses a cache line and each is served from one line. (A torn
/// quadword would also be harmless to the values: a frame changes only
/// under a new version, and validation would discard the read.) So an
/// inline-assembly block of such loads does what a sequence of relaxed
/// `AtomicU64::load`s of the same words does, which is what a Rust program may do with frame memory; the
/// compiler sees only an opaque block that reads memory (it is ordered by
/// the surrounding Acquire load and fence as any other read is). Under a
/// model checker, and on other architectures, the words are loaded one by
/// one.
///
/// # Which loop sums
///
/// The sum picks, per call, the widest loop the processor runs: AVX-512F
/// (one load per cache line), else AVX2 (two), else SSE2 (four; every
/// x86-64 has it), from `std`'s cached feature detection (a load and a
/// test). The width matters more than it seems. A reading (this project's
/// VM has no core counters to confirm it): a scan is as fast as the number
/// of its lines in flight, and the reorder window, which holds a fixed
/// number of instructions, holds more lines the fewer instructions each
/// takes. Measured on this project's 2-core AMD VM: pagepool's hot-scan
/// went from 1.9 to 3.3 M pages/s at one thread with one load per line
/// instead of four, and to 4.0 M once `sum_u64` inlined the dispatch (BENCHMARKS.md, "Scans at the vector
/// width"). The copy keeps the SSE2 loop: it stores what it loads, and its
/// users copy values, not pages. On some older Intel cores (Skylake-SP)
/// 512-bit instructions lower the core's clock for a while; loads and adds
/// are the lightest class, and the pick is per call, so a program that
/// never sums whole pages never runs them.
#[cfg(all(target_arch = "x86_64", not(any(loom, feature = "shuttle"))))]
mod bulk {
    use super::{scalar_copy, scalar_sum, FrameWord};
    use std::arch::asm;

    /// Words in a cache line: the block of the SSE2 loops (four 16-byte
    /// loads) and of the AVX-512 loop (one 64-byte load).
    const LINE_WORDS: usize = 8;

    /// Splits `words` into a head (to reach an `align`-byte boundary),
    /// whole blocks of `block` words, and a tail.
    #[inline]
    fn split(
        words: &[FrameWord],
        align: usize,
        block: usize,
    ) -> (&[FrameWord], &[FrameWord], &[FrameWord]) {
        let misaligned_words = (words.as_ptr() as usize).wrapping_neg() % align / 8;
        let (head, rest) = words.split_at(misaligned_words.min(words.len()));
        let (body, tail) = rest.split_at(rest.len() / block * block);
        debug_assert!((body.as_ptr() as usize).is_multiple_of(align) || body.is_empty());
        (head, body, tail)
    }

    /// The sum of `words`' head and tail (the words outside whole
    /// `block`-word blocks from an `align`-byte boundary), loaded one by
    /// one, and the blocks between them, for a vector loop to sum.
    #[inline]
    fn edges_and_body(words: &[FrameWord], align: usize, block: usize) -> (u64, &[FrameWord]) {
        let (head, body, tail) = split(words, align, block);
        (scalar_sum(head).wrapping_add(scalar_sum(tail)), body)
    }

    /// The wrapping sum of `words` as little-endian `u64`s, by the widest
    /// loop the processor has (module docs).
    #[inline]
    pub(crate) fn sum_words(words: &[FrameWord]) -> u64 {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor (and the OS, which saves the state)
            // supports AVX-512F, just detected.
            return unsafe { sum_avx512(words) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor and the OS support AVX2, just detected.
            return unsafe { sum_avx2(words) };
        }
        sum_sse2(words)
    }

    /// [`sum_words`] with 64-byte loads: eight lines per iteration, then
    /// one at a time, then the words left one by one.
    ///
    /// # Safety
    ///
    /// The processor supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum_avx512(words: &[FrameWord]) -> u64 {
        let (edges, body) = edges_and_body(words, 64, LINE_WORDS);
        let lines = body.len() / LINE_WORDS;
        if lines == 0 {
            return edges;
        }
        let body_sum: u64;
        // SAFETY: `body` is `lines * 64` bytes of live frame words starting
        // on a 64-byte boundary (`split`): every `vpaddq` memory operand is
        // one whole cache line inside it, its eight quadwords word-atomic
        // (module docs); the first loop reads `lines / 8 * 512` bytes, the
        // second the remaining `lines % 8` lines. The block only reads
        // memory (`readonly`) and does not touch the stack. It writes its
        // named registers and, with `vzeroupper` (which clears the upper
        // halves before code that may use SSE runs), the upper bits of
        // zmm4–zmm15: all declared as clobbered. The caller
        // guarantees AVX-512F (this function's contract); the `ymm`/`xmm`
        // forms used are AVX2 and AVX, which every AVX-512F processor has.
        unsafe {
            asm!(
                "vpxorq zmm0, zmm0, zmm0",
                "vpxorq zmm1, zmm1, zmm1",
                "vpxorq zmm2, zmm2, zmm2",
                "vpxorq zmm3, zmm3, zmm3",
                "test {q}, {q}",
                "jz 3f",
                "2:",
                "vpaddq zmm0, zmm0, zmmword ptr [{p}]",
                "vpaddq zmm1, zmm1, zmmword ptr [{p} + 64]",
                "vpaddq zmm2, zmm2, zmmword ptr [{p} + 128]",
                "vpaddq zmm3, zmm3, zmmword ptr [{p} + 192]",
                "vpaddq zmm0, zmm0, zmmword ptr [{p} + 256]",
                "vpaddq zmm1, zmm1, zmmword ptr [{p} + 320]",
                "vpaddq zmm2, zmm2, zmmword ptr [{p} + 384]",
                "vpaddq zmm3, zmm3, zmmword ptr [{p} + 448]",
                "add {p}, 512",
                "dec {q}",
                "jnz 2b",
                "3:",
                "test {r}, {r}",
                "jz 5f",
                "4:",
                "vpaddq zmm0, zmm0, zmmword ptr [{p}]",
                "add {p}, 64",
                "dec {r}",
                "jnz 4b",
                "5:",
                "vpaddq zmm0, zmm0, zmm1",
                "vpaddq zmm2, zmm2, zmm3",
                "vpaddq zmm0, zmm0, zmm2",
                "vextracti64x4 ymm1, zmm0, 1",
                "vpaddq ymm0, ymm0, ymm1",
                "vextracti128 xmm1, ymm0, 1",
                "vpaddq xmm0, xmm0, xmm1",
                "vmovq {s}, xmm0",
                "vpextrq {t}, xmm0, 1",
                "add {s}, {t}",
                "vzeroupper",
                p = inout(reg) body.as_ptr() => _,
                q = inout(reg) lines / 8 => _,
                r = inout(reg) lines % 8 => _,
                s = out(reg) body_sum,
                t = out(reg) _,
                out("zmm0") _,
                out("zmm1") _,
                out("zmm2") _,
                out("zmm3") _,
                out("zmm4") _,
                out("zmm5") _,
                out("zmm6") _,
                out("zmm7") _,
                out("zmm8") _,
                out("zmm9") _,
                out("zmm10") _,
                out("zmm11") _,
                out("zmm12") _,
                out("zmm13") _,
                out("zmm14") _,
                out("zmm15") _,
                options(readonly, nostack),
            );
        }
        edges.wrapping_add(body_sum)
    }

    /// [`sum_words`] with 32-byte loads: four lines per iteration, then
    /// half a line at a time, then the words left one by one.
    ///
    /// # Safety
    ///
    /// The processor supports AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_avx2(words: &[FrameWord]) -> u64 {
        const HALF_LINE_WORDS: usize = 4;
        let (edges, body) = edges_and_body(words, 64, HALF_LINE_WORDS);
        let halves = body.len() / HALF_LINE_WORDS;
        if halves == 0 {
            return edges;
        }
        let body_sum: u64;
        // SAFETY: `body` is `halves * 32` bytes of live frame words
        // starting on a 64-byte boundary (`split`): every `vpaddq` memory
        // operand is a 32-byte half of one cache line inside it, its four
        // quadwords word-atomic (module docs); the first loop reads
        // `halves / 8 * 256` bytes, the second the remaining `halves % 8`
        // halves. The block only reads memory (`readonly`) and does not
        // touch the stack. It writes its named registers and, with
        // `vzeroupper` (upper halves cleared before SSE code runs), the
        // upper bits of ymm4–ymm15: all declared as clobbered. The caller
        // guarantees AVX2.
        unsafe {
            asm!(
                "vpxor ymm0, ymm0, ymm0",
                "vpxor ymm1, ymm1, ymm1",
                "vpxor ymm2, ymm2, ymm2",
                "vpxor ymm3, ymm3, ymm3",
                "test {q}, {q}",
                "jz 3f",
                "2:",
                "vpaddq ymm0, ymm0, ymmword ptr [{p}]",
                "vpaddq ymm1, ymm1, ymmword ptr [{p} + 32]",
                "vpaddq ymm2, ymm2, ymmword ptr [{p} + 64]",
                "vpaddq ymm3, ymm3, ymmword ptr [{p} + 96]",
                "vpaddq ymm0, ymm0, ymmword ptr [{p} + 128]",
                "vpaddq ymm1, ymm1, ymmword ptr [{p} + 160]",
                "vpaddq ymm2, ymm2, ymmword ptr [{p} + 192]",
                "vpaddq ymm3, ymm3, ymmword ptr [{p} + 224]",
                "add {p}, 256",
                "dec {q}",
                "jnz 2b",
                "3:",
                "test {r}, {r}",
                "jz 5f",
                "4:",
                "vpaddq ymm0, ymm0, ymmword ptr [{p}]",
                "add {p}, 32",
                "dec {r}",
                "jnz 4b",
                "5:",
                "vpaddq ymm0, ymm0, ymm1",
                "vpaddq ymm2, ymm2, ymm3",
                "vpaddq ymm0, ymm0, ymm2",
                "vextracti128 xmm1, ymm0, 1",
                "vpaddq xmm0, xmm0, xmm1",
                "vmovq {s}, xmm0",
                "vpextrq {t}, xmm0, 1",
                "add {s}, {t}",
                "vzeroupper",
                p = inout(reg) body.as_ptr() => _,
                q = inout(reg) halves / 8 => _,
                r = inout(reg) halves % 8 => _,
                s = out(reg) body_sum,
                t = out(reg) _,
                out("ymm0") _,
                out("ymm1") _,
                out("ymm2") _,
                out("ymm3") _,
                out("ymm4") _,
                out("ymm5") _,
                out("ymm6") _,
                out("ymm7") _,
                out("ymm8") _,
                out("ymm9") _,
                out("ymm10") _,
                out("ymm11") _,
                out("ymm12") _,
                out("ymm13") _,
                out("ymm14") _,
                out("ymm15") _,
                options(readonly, nostack),
            );
        }
        edges.wrapping_add(body_sum)
    }

    /// [`sum_words`] with 16-byte SSE2 loads, which every x86-64 has.
    pub(super) fn sum_sse2(words: &[FrameWord]) -> u64 {
        let (edges, body) = edges_and_body(words, 16, LINE_WORDS);
        let blocks = body.len() / LINE_WORDS;
        if blocks == 0 {
            return edges;
        }
        let body_sum: u64;
        // SAFETY: `body` is `blocks * 64` bytes of live frame words starting
        // on a 16-byte boundary (`split`), so every `paddq` memory operand
        // is an aligned 16-byte load inside it (the legacy SSE encoding
        // faults on a misaligned one; none is). The block only reads that
        // memory (`readonly`), as word-atomic loads (module docs), and
        // writes only its declared registers; it does not touch the stack.
        // x86-64 is little-endian, so the lanes add the words' values.
        unsafe {
            asm!(
                "pxor {a}, {a}",
                "pxor {b}, {b}",
                "pxor {c}, {c}",
                "pxor {d}, {d}",
                "2:",
                "paddq {a}, xmmword ptr [{p}]",
                "paddq {b}, xmmword ptr [{p} + 16]",
                "paddq {c}, xmmword ptr [{p} + 32]",
                "paddq {d}, xmmword ptr [{p} + 48]",
                "add {p}, 64",
                "dec {n}",
                "jnz 2b",
                "paddq {a}, {b}",
                "paddq {c}, {d}",
                "paddq {a}, {c}",
                "movq {s}, {a}",
                "punpckhqdq {a}, {a}",
                "movq {t}, {a}",
                "add {s}, {t}",
                p = inout(reg) body.as_ptr() => _,
                n = inout(reg) blocks => _,
                s = out(reg) body_sum,
                t = out(reg) _,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                d = out(xmm_reg) _,
                options(readonly, nostack),
            );
        }
        edges.wrapping_add(body_sum)
    }

    /// Copies `words` into `out` (`8 * words.len()` bytes), each word's
    /// bytes in memory order.
    pub(crate) fn load_words(words: &[FrameWord], out: &mut [u8]) {
        assert_eq!(out.len(), words.len() * 8, "load_words: lengths differ");
        let (head, body, tail) = split(words, 16, LINE_WORDS);
        let (out_head, rest) = out.split_at_mut(head.len() * 8);
        let (out_body, out_tail) = rest.split_at_mut(body.len() * 8);
        scalar_copy(head, out_head);
        scalar_copy(tail, out_tail);
        let blocks = body.len() / LINE_WORDS;
        if blocks == 0 {
            return;
        }
        // SAFETY: `body` is `blocks * 64` bytes of live frame words starting
        // on a 16-byte boundary (`split`): every `movdqa` is an aligned
        // 16-byte load inside it, word-atomic (module docs). `out_body` is
        // the same length (the assertion and the splits above), borrowed
        // mutably here, so the unaligned `movdqu` stores write only bytes
        // this function owns. Only the declared registers are written; the
        // stack is not touched.
        unsafe {
            asm!(
                "2:",
                "movdqa {a}, xmmword ptr [{p}]",
                "movdqa {b}, xmmword ptr [{p} + 16]",
                "movdqa {c}, xmmword ptr [{p} + 32]",
                "movdqa {d}, xmmword ptr [{p} + 48]",
                "movdqu xmmword ptr [{q}], {a}",
                "movdqu xmmword ptr [{q} + 16], {b}",
                "movdqu xmmword ptr [{q} + 32], {c}",
                "movdqu xmmword ptr [{q} + 48], {d}",
                "add {p}, 64",
                "add {q}, 64",
                "dec {n}",
                "jnz 2b",
                p = inout(reg) body.as_ptr() => _,
                q = inout(reg) out_body.as_mut_ptr() => _,
                n = inout(reg) blocks => _,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                d = out(xmm_reg) _,
                options(nostack),
            );
        }
    }
}

/// Every summing loop this processor runs, against word-by-word loads
/// (the dispatching `sum_words` is tested through `OptimisticView` in
/// `view.rs`).
#[cfg(all(test, target_arch = "x86_64", not(any(loom, feature = "shuttle"))))]
mod bulk_tests {
    use super::{bulk, scalar_sum, FrameWord};

    #[test]
    fn each_vector_width_sums_as_word_by_word_loads_do() {
        let words: Vec<FrameWord> = (0..600u64)
            .map(|i| FrameWord::new((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 59)))
            .collect();
        let avx2 = std::is_x86_feature_detected!("avx2");
        let avx512 = std::is_x86_feature_detected!("avx512f");
        for start in 0..9 {
            for len in (0..200).chain([509, 510, 511, 591 - start]) {
                let src = &words[start..start + len];
                let expected = scalar_sum(src);
                assert_eq!(bulk::sum_sse2(src), expected, "sse2, {start} {len}");
                if avx2 {
                    // SAFETY: AVX2 was detected above.
                    let sum = unsafe { bulk::sum_avx2(src) };
                    assert_eq!(sum, expected, "avx2, {start} {len}");
                }
                if avx512 {
                    // SAFETY: AVX-512F was detected above.
                    let sum = unsafe { bulk::sum_avx512(src) };
                    assert_eq!(sum, expected, "avx512, {start} {len}");
                }
            }
        }
        eprintln!("vector widths tested: sse2, avx2 {avx2}, avx512f {avx512}");
    }
}

/// Word by word where there is no vector path (a model checker's atomics,
/// another architecture): the same results.
#[cfg(not(all(target_arch = "x86_64", not(any(loom, feature = "shuttle")))))]
mod bulk {
    use super::{scalar_copy, scalar_sum, FrameWord, Ordering};

    /// The wrapping sum of `words` as little-endian `u64`s.
    pub(crate) fn sum_words(words: &[FrameWord]) -> u64 {
        // Eight independent sums: one running sum would chain every
        // addition and make the scan latency-bound.
        const LANES: usize = 8;
        let chunks = words.chunks_exact(LANES);
        let tail = scalar_sum(chunks.remainder());
        let mut sums = [0u64; LANES];
        for chunk in chunks {
            for (sum, word) in sums.iter_mut().zip(chunk) {
                *sum = sum.wrapping_add(u64::from_le(word.load(Ordering::Relaxed)));
            }
        }
        sums.iter()
            .fold(tail, |total, &sum| total.wrapping_add(sum))
    }

    /// Copies `words` into `out` (`8 * words.len()` bytes), each word's
    /// bytes in memory order.
    pub(crate) fn load_words(words: &[FrameWord], out: &mut [u8]) {
        assert_eq!(out.len(), words.len() * 8, "load_words: lengths differ");
        scalar_copy(words, out);
    }
}

/// The wrapping sum of `words` as little-endian `u64`s, one load at a time.
#[inline]
fn scalar_sum(words: &[FrameWord]) -> u64 {
    words.iter().fold(0u64, |sum, word| {
        sum.wrapping_add(u64::from_le(word.load(Ordering::Relaxed)))
    })
}

/// Copies `words` into `out`, one load and one 8-byte store per word.
#[inline]
fn scalar_copy(words: &[FrameWord], out: &mut [u8]) {
    for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
    }
}

pub(crate) use bulk::{load_words, sum_words};
