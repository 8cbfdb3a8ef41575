//! A response head, parsed with two caps, then framed for each kind of request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rr_proxy::fuzzing::response_head(data));
