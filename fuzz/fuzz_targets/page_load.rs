//! Arbitrary page bytes (optionally with a valid checksum stamped, then
//! bits flipped) loaded from storage: never a panic; the page is returned
//! byte for byte exactly when it is valid, and is `Error::Corrupt`
//! otherwise. See `pagepool_fuzz::run_page_load`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[derive(arbitrary::Arbitrary, Debug)]
struct PageInput {
    page_no: u8,
    fix_checksum: bool,
    flips: Vec<u16>,
    bytes: Vec<u8>,
}

fuzz_target!(|input: PageInput| {
    pagepool_fuzz::run_page_load(
        input.page_no,
        input.fix_checksum,
        &input.flips,
        &input.bytes,
    )
});
