//! The admin listener (`--admin ADDR`, off unless given): `GET /metrics` in the Prometheus
//! text format, `GET /status` as JSON, and the proxy's own `GET /healthz`. One short request
//! per connection, answered and closed, on the same event loop as the traffic.

use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use serde_json::json;

use super::config::Mode;
use super::workers::Snapshot;
use super::{token, Conn, Proxy, Timer};
use crate::http::head::{find_head_end, parse_request, Method, Parse, EMPTY_HEADERS};
use crate::http::response::{is_head_request, write_head, Canned};
use crate::metrics::CONTENT_TYPE;
use crate::net::io::{self, Io};
use crate::timer::TimerId;

/// The largest admin request head read; anything longer is refused.
const ADMIN_HEAD_MAX: usize = 8 * 1024;
/// Admin connections served at once; more are closed as they come, so the admin port cannot
/// take the descriptors the traffic needs.
pub const MAX_ADMIN_CONNS: usize = 32;
/// How long an admin connection may take from accept to its answer being written.
const ADMIN_DEADLINE: Duration = Duration::from_secs(5);

/// One admin connection.
#[derive(Debug)]
pub struct AdminConn {
    sock: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    timer: TimerId,
}

impl Proxy {
    /// Starts serving the admin listener.
    pub(super) fn open_admin(&mut self, l: std::net::TcpListener) -> std::io::Result<()> {
        l.set_nonblocking(true)?;
        let mut l = TcpListener::from_std(l);
        self.poll
            .registry()
            .register(&mut l, token::ADMIN, Interest::READABLE)?;
        log::info!("admin on {}", l.local_addr()?);
        self.admin = Some(l);
        Ok(())
    }

    /// Accepts admin connections until `WouldBlock`.
    pub(super) fn accept_admin(&mut self, now: Instant) {
        loop {
            let Some(l) = self.admin.as_ref() else {
                return;
            };
            let (mut sock, _) = match l.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("admin accept: {e}");
                    return;
                }
            };
            if self.admin_conns >= MAX_ADMIN_CONNS {
                continue; // closed as it is dropped
            }
            let Ok(key) = self.register(&mut sock) else {
                continue;
            };
            self.admin_conns += 1;
            let timer = self.timers.insert(now + ADMIN_DEADLINE, Timer::Admin(key));
            self.conns[key] = Conn::Admin(Box::new(AdminConn {
                sock,
                inbuf: Vec::new(),
                out: Vec::new(),
                sent: 0,
                timer,
            }));
        }
    }

    /// Reads the request, answers it, closes.
    pub(super) fn on_admin_event(&mut self, key: usize) {
        let Some(Conn::Admin(mut a)) = self
            .conns
            .get_mut(key)
            .map(|c| std::mem::replace(c, Conn::Busy))
        else {
            return;
        };
        let done = self.admin_step(&mut a);
        if done {
            self.timers.cancel(a.timer);
            self.conns.try_remove(key);
            self.admin_conns -= 1;
        } else {
            self.conns[key] = Conn::Admin(a);
        }
    }

    /// The admin connection at `key` ran out of time.
    pub(super) fn admin_timeout(&mut self, key: usize, id: TimerId) {
        if matches!(self.conns.get(key), Some(Conn::Admin(a)) if a.timer == id) {
            self.conns.try_remove(key);
            self.admin_conns -= 1;
        }
    }

    /// Moves one admin connection along; true when it is finished.
    fn admin_step(&mut self, a: &mut AdminConn) -> bool {
        if a.out.is_empty() {
            let mut chunk = [0u8; 2048];
            loop {
                match io::read(&mut a.sock, &mut chunk) {
                    Io::Progress(n) => a.inbuf.extend_from_slice(&chunk[..n]),
                    Io::WouldBlock => break,
                    Io::Closed | Io::Failed(_) => return true,
                }
                if a.inbuf.len() >= ADMIN_HEAD_MAX {
                    break;
                }
            }
            if find_head_end(&a.inbuf, 0).is_none() && a.inbuf.len() < ADMIN_HEAD_MAX {
                return false;
            }
            let inbuf = std::mem::take(&mut a.inbuf);
            self.admin_answer(&inbuf, &mut a.out);
        }
        while a.sent < a.out.len() {
            match io::write(&mut a.sock, &a.out[a.sent..]) {
                Io::Progress(n) => a.sent += n,
                Io::WouldBlock => return false,
                Io::Closed | Io::Failed(_) => return true,
            }
        }
        true
    }

    /// The whole answer to one admin request.
    fn admin_answer(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let date = self.date.bytes();
        let mut headers = EMPTY_HEADERS;
        let (method, path) = match parse_request(raw, &mut headers, ADMIN_HEAD_MAX) {
            Ok(Parse::Complete(r)) => (r.method, r.target.split('?').next().unwrap_or("")),
            Ok(Parse::Partial) => {
                return Canned::HeaderFieldsTooLarge.write(out, &date, is_head_request(raw))
            }
            Err(e) => {
                let c = Canned::for_status(e.status()).unwrap_or(Canned::BadRequest);
                return c.write(out, &date, is_head_request(raw));
            }
        };
        let known = matches!(path, "/metrics" | "/status" | "/healthz");
        if !known {
            return Canned::NotFound.write(out, &date, method == Method::Head);
        }
        if method != Method::Get && method != Method::Head {
            let body = b"only GET and HEAD\n";
            write_head(
                out,
                405,
                &date,
                &[("Allow", b"GET, HEAD")],
                body.len(),
                true,
            );
            return out.extend_from_slice(body);
        }
        let now = Instant::now();
        let (status, ctype, body): (u16, &str, Vec<u8>) = match path {
            "/metrics" => (200, CONTENT_TYPE, self.metrics_text(now)),
            "/status" => (200, "application/json", self.status_json(now)),
            _ if self.draining.is_some() => (
                503,
                "application/json",
                br#"{"status":"draining"}"#.to_vec(),
            ),
            _ => (200, "application/json", br#"{"status":"ok"}"#.to_vec()),
        };
        write_head(
            out,
            status,
            &date,
            &[("Content-Type", ctype.as_bytes())],
            body.len(),
            true,
        );
        if method == Method::Get {
            out.extend_from_slice(&body);
        }
    }

    /// This worker's metrics, with every worker's added when there are several.
    fn metrics_text(&mut self, now: Instant) -> Vec<u8> {
        self.refresh_gauges(now);
        let mut all = self.metrics.clone();
        for snap in self.other_workers() {
            if let Some(m) = &snap.metrics {
                all.merge(m);
            }
        }
        let mut out = Vec::with_capacity(8 * 1024);
        all.render(&mut out);
        out
    }

    /// Brings the gauges the loop does not keep per request up to date.
    pub(super) fn refresh_gauges(&mut self, now: Instant) {
        for i in 0..self.cfg.backends.len() {
            let up = !self.retired[i] && self.health.usable(i, now);
            self.metrics.set_backend_up(i, up);
        }
        let backends = self.conns.len().saturating_sub(self.clients);
        self.metrics.set_open(self.clients, backends);
    }

    fn other_workers(&self) -> Vec<Snapshot> {
        self.shared
            .as_ref()
            .map_or_else(Vec::new, |(me, s)| s.others(*me))
    }

    /// Every backend and the settings, as JSON, every worker added up.
    fn status_json(&mut self, now: Instant) -> Vec<u8> {
        let others = self.other_workers();
        let mut metrics = self.metrics.clone();
        let mut inflight = self.inflight.clone();
        let mut clients = self.clients;
        for snap in &others {
            if let Some(m) = &snap.metrics {
                metrics.merge(m);
            }
            for (mine, theirs) in inflight.iter_mut().zip(&snap.inflight) {
                *mine += theirs;
            }
            clients += snap.clients;
        }
        let backends: Vec<serde_json::Value> = self
            .cfg
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (probes_up, ejected) = self.health.describe(i, now);
                let state = if self.retired[i] {
                    "retired"
                } else if !probes_up {
                    "down"
                } else if ejected.is_some() {
                    "ejected"
                } else {
                    "up"
                };
                json!({
                    "address": b.addr.to_string(),
                    "name": b.name,
                    "weight": b.weight,
                    "state": state,
                    "why": match state {
                        "down" => "failed active health checks",
                        "ejected" => "failed requests in a row",
                        "retired" => "removed by a reload",
                        _ => "",
                    },
                    "ejected_for_ms": ejected.map(|d| d.as_millis() as u64),
                    "in_flight": inflight.get(i).copied().unwrap_or(0),
                    "requests_total": metrics.requests_of(i),
                })
            })
            .collect();
        let c = &self.cfg;
        let doc = json!({
            "mode": if c.mode == Mode::Tcp { "tcp" } else { "http" },
            "listen": c.listen.to_string(),
            "workers": others.len() + 1,
            "draining": self.draining.is_some(),
            "open_client_connections": clients,
            "backends": backends,
            "settings": {
                "connect_timeout_ms": c.connect_timeout.as_millis() as u64,
                "head_timeout_ms": c.head_timeout.as_millis() as u64,
                "backend_timeout_ms": c.backend_timeout.as_millis() as u64,
                "idle_timeout_ms": c.idle_timeout.as_millis() as u64,
                "max_conns": c.max_conns,
                "max_head": c.max_head,
                "buffer_size": c.buffer_size,
                "pool_size": c.pool_size,
                "pipeline": c.pipeline,
                "health_path": c.probe.path,
                "health_interval_ms": c.probe.interval.as_millis() as u64,
                "health_timeout_ms": c.probe.timeout.as_millis() as u64,
                "health_rise": c.health.rise,
                "health_fall": c.health.fall,
                "eject_after": c.health.eject_after,
                "eject_5xx": c.health.eject_5xx,
                "max_ejected_percent": c.health.max_ejected_percent,
                "slow_factor": c.health.slow_factor,
            },
        });
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }
}
