//! `rr-echo`: the backend rr-proxy is tested and benchmarked against. It echoes JSON bodies,
//! answers health checks, names itself on every answer (`X-Echo-Instance`) so a rotation can
//! be watched from the client, and misbehaves on demand: failures, delays, sickness.
//!
//! # Data flow
//!
//! ```text
//! listener ─► conn: input ─► request::read_head ─► body (framing) ─► reply::answer ─► out
//!                                                                       │  ▲
//!                                                   behaviour (seeded) ─┘  └─ delay timer
//! ```
//!
//! # Layout
//!
//! - `server`: the event loop; owns the connections, the timer wheel and the settings.
//! - `conn`: one connection's buffers, phases and handlers.
//! - `request`: a head's bytes to a route, a body framing and a persistence rule (pure).
//! - `reply`: the answer to a complete request, and its bytes (pure).
//! - `behaviour`: failures and delays drawn from a seeded generator (pure).
//! - `control`: the JSON of `/control`.
//! - `config`: flags to a validated [`Config`].

mod behaviour;
mod config;
mod conn;
mod control;
mod reply;
mod request;
mod server;

pub use behaviour::{DelayMs, Settings, SettingsError, MAX_DELAY_MS};
pub use config::{parse_args, Command, Config, HELP};
pub use server::run;
