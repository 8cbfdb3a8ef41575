//! rr-proxy: a small, fast, single-threaded round-robin load balancer for HTTP/1.1 and TCP,
//! and `rr-echo`, the backend it is tested against.
//!
//! # Data flow
//!
//! ```text
//!  client ──► listener ──► conn (head parser) ──► balancer ──► backend (pool, connect)
//!    ▲                        │  http::head, http::framing        │
//!    └──────── relay ◄────────┴──────────── relay ◄───────────────┘
//!                  (fixed buffers, backpressure, body framing)
//! ```
//!
//! Everything runs on one mio event loop per worker. Deadlines (connect, head, response, idle,
//! probes) live in one timer wheel owned by the loop.
//!
//! # Layout
//!
//! - [`http`]: the HTTP/1.1 code both programs share. Heads are parsed with httparse into views
//!   over the caller's bytes; framing applies RFC 9112 §6; the chunked decoder is an incremental
//!   byte state machine; canned answers are static bytes.
//! - [`net`]: the one read/write helper every socket goes through, and the fixed-size buffer.
//! - [`timer`]: the hashed timer wheel; it reads no clock, `now` is passed in.
//! - [`rng`]: a small seeded generator for jitter and simulated misbehaviour.
//! - [`balancer`]: smooth weighted round robin, apart from health.
//! - [`cli`]: flag reading and the duration and size syntax both binaries share.
//! - [`fuzzing`]: the entry points the fuzz targets and the corpus replay test share.
//! - [`health`]: up/down from probes, ejection from real traffic, slowness; pure.
//! - [`metrics`]: the proxy's counters and gauges, and their Prometheus text; pure.
//! - [`logging`]: the process log (text or JSON lines) and the access-log line.
//! - [`echo`]: the `rr-echo` backend server.
//! - [`proxy`]: the `rr-proxy` load balancer.

pub mod balancer;
pub mod cli;
pub mod echo;
pub mod fuzzing;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod proxy;
pub mod rng;
pub mod timer;
