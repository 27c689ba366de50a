//! An arbitrary sequence of operations on a small pool over in-memory
//! storage (close and reopen, drop and reopen, crash and reopen included),
//! checked against a model of every page. See `pagepool_fuzz::run_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pagepool_fuzz::{run_ops, Input};

fuzz_target!(|input: Input| run_ops(&input, false));
