//! The one integration-test binary: real processes and real sockets on 127.0.0.1, port 0.
//! Shared helpers live in `util`; each module tests one program or one concern.

mod admin;
mod backend;
mod conformance;
mod corpus;
mod dates;
mod echo;
mod health;
mod ops;
mod pipeline;
mod proxy;
mod tcp;
mod util;
