//! A chunked body, decoded step by step to its end or first error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rr_proxy::fuzzing::chunked(data));
