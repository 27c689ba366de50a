//! The `ops` target with `Faulty` storage under the pool and the fault
//! schedule in the input: errors only where a fault was injected, no
//! acknowledged write lost, torn pages reported corrupt, nothing leaked.
//! See `pagepool_fuzz::run_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pagepool_fuzz::{run_ops, Input};

fuzz_target!(|input: Input| run_ops(&input, true));
