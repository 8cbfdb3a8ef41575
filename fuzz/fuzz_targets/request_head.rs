//! A request head, parsed with two caps and checked against the head-end scan.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rr_proxy::fuzzing::request_head(data));
