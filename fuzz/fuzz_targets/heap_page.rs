//! Arbitrary heap-page bytes and an arbitrary operation sequence: the
//! slotted heap page never panics on any byte pattern, and on a page it
//! initialised itself it agrees with a model. See
//! `pagepool::heap::fuzz_check`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8])| pagepool::heap::fuzz_check(input.0, input.1));
