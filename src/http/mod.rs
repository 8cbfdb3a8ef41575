//! The HTTP/1.1 code shared by the proxy and the echo backend: head parsing, message framing,
//! the chunked decoder, the `Date` field and canned answers. Nothing here touches a socket or
//! reads a clock.

pub mod chunked;
pub mod date;
pub mod framing;
pub mod head;
pub mod response;
