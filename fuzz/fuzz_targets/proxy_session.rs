//! The whole proxy over loopback sockets: client bytes in, a scripted backend's bytes back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: rr_proxy::fuzzing::session::survive_sigpipe(),
    |data: &[u8]| rr_proxy::fuzzing::session::proxy_session(data)
);
