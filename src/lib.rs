//! rr-proxy: a small, fast, single-threaded round-robin load balancer for HTTP/1.1 and TCP,
//! and `rr-echo`, the backend it is tested against.
//!
//! # Data flow
//!
//! ```text
//!  client ──► listener ──► session ──► head parser ──► balancer ──► dial (pool or connect)
//!    ▲          (accept)     │         http::head        │ asks health      │
//!    │                       │         http::framing     │                  ▼
//!    └──── respond ◄──────── relay ◄──── response head ◄──────────── backend
//!         (rewrite)   (one buffer per direction, backpressure, body framing)
//! ```
//!
//! Everything runs on one mio event loop per worker. Every deadline (connect, head, backend
//! response, idle, probes, ejections, drain) lives in one timer wheel owned by the loop; the
//! policy modules (`balancer`, `health`, `timer`, `http`) read no clock and do no I/O.
//!
//! # Layout
//!
//! - [`http`]: the HTTP/1.1 code both programs share. Heads are parsed with httparse into views
//!   over the caller's bytes; framing applies RFC 9112 §6; the chunked decoder is an incremental
//!   byte state machine; canned answers are written at answer time, stamped with the `Date`
//!   the loop keeps (`http::date`).
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
