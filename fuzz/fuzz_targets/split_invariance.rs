//! Bytes fed whole and in pieces to the head-end scan and the body decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rr_proxy::fuzzing::split_invariance(data));
