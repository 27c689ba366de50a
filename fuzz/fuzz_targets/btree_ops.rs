//! Arbitrary operation sequences on a B+-tree in a 16-frame pool, against
//! a `BTreeMap` model, with reopens. See `pagepool_btree::fuzz::fuzz_check`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pagepool_btree::fuzz::fuzz_check(data));
