//! Active health checks inside the event loop: every interval (with jitter, so probes do not
//! march in step), one non-blocking `GET <path>` with `Connection: close` per backend. A 2xx
//! status passes; anything else, a refused connect or the probe's timeout fails.

use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::config::ProbeKind;
use super::{upstream, Conn, Proxy, Timer};
use crate::health::Transition;
use crate::http::head::{parse_response, Parse, EMPTY_HEADERS};
use crate::net::io::{self, Io};
use crate::timer::TimerId;

/// The most of a probe's answer that is read: the status line and fields are all it needs.
const PROBE_READ_MAX: usize = 4096;

/// Where a probe stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The handshake is in progress.
    Connecting,
    /// This many bytes of the request are written.
    Sending(usize),
    /// Waiting for the status line.
    Reading,
}

/// One probe in flight.
#[derive(Debug)]
pub struct Probe {
    sock: TcpStream,
    backend: usize,
    stage: Stage,
    buf: Vec<u8>,
    timer: TimerId,
}

/// The request bytes of each backend's probe, made once; none for a connect-only probe.
pub fn requests(kind: ProbeKind, path: &str, names: &[String]) -> Vec<Vec<u8>> {
    if kind == ProbeKind::Tcp {
        return vec![Vec::new(); names.len()];
    }
    names
        .iter()
        .map(|host| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rr-proxy-health\r\n\
                 Connection: close\r\n\r\n"
            )
            .into_bytes()
        })
        .collect()
}

/// What a probe's bytes say: `Some(ok, detail)` once decided.
fn verdict(buf: &[u8], eof: bool) -> Option<(bool, String)> {
    let mut headers = EMPTY_HEADERS;
    match parse_response(buf, &mut headers, PROBE_READ_MAX) {
        Ok(Parse::Complete(r)) => Some((
            (200..300).contains(&r.status),
            format!("status {}", r.status),
        )),
        Ok(Parse::Partial) if eof => Some((false, "closed before answering".into())),
        Ok(Parse::Partial) => None,
        Err(e) => Some((false, format!("invalid response: {e}"))),
    }
}

impl Proxy {
    /// Schedules every backend's first probe at a random point of the first interval.
    pub(super) fn schedule_probes(&mut self, now: Instant) {
        let interval = self.cfg.probe.interval;
        if interval.is_zero() {
            return;
        }
        for b in 0..self.cfg.backends.len() {
            if self.retired[b] || self.probing[b] {
                continue;
            }
            self.probing[b] = true;
            let at = now + interval.mul_f64(self.rng.next_f64());
            self.timers.insert(at, Timer::ProbeDue(b));
        }
    }

    /// Starts a probe of `backend`.
    pub(super) fn start_probe(&mut self, backend: usize, now: Instant) {
        let retired = self.retired.get(backend).copied().unwrap_or(true);
        if retired || self.cfg.probe.interval.is_zero() {
            // Removed by a reload, or probing turned off: this chain of probes ends.
            if let Some(p) = self.probing.get_mut(backend) {
                *p = false;
            }
            return;
        }
        let Some(b) = self.cfg.backends.get(backend) else {
            return;
        };
        let mut sock = match upstream::connect(b.addr) {
            Ok(sock) => sock,
            Err(e) if upstream::is_local_shortage(&e) => {
                // The proxy's own shortage is no verdict on the backend: try again later.
                log::warn!("probe of {}: {e}", b.name);
                return self.next_probe(backend, now);
            }
            Err(e) => return self.probe_result(backend, false, &e.to_string(), now),
        };
        let key = match self.register(&mut sock) {
            Ok(key) => key,
            Err(e) => return self.probe_result(backend, false, &e.to_string(), now),
        };
        let timer = self
            .timers
            .insert(now + self.cfg.probe.timeout, Timer::ProbeTimeout(key));
        self.conns[key] = Conn::Probe(Box::new(Probe {
            sock,
            backend,
            stage: Stage::Connecting,
            buf: Vec::with_capacity(PROBE_READ_MAX),
            timer,
        }));
    }

    /// A readiness event for the probe at `key`: moves it as far as it can go.
    pub(super) fn on_probe_event(&mut self, key: usize) {
        let Some(Conn::Probe(p)) = self.conns.get_mut(key) else {
            return;
        };
        let request = self
            .probe_requests
            .get(p.backend)
            .map_or(&[][..], |r| &r[..]);
        let outcome = advance(p, request);
        if let Some((ok, detail)) = outcome {
            self.finish_probe(key, ok, &detail, Instant::now());
        }
    }

    /// The probe at `key` ran out of time.
    pub(super) fn on_probe_timeout(&mut self, key: usize, id: TimerId, now: Instant) {
        if matches!(self.conns.get(key), Some(Conn::Probe(p)) if p.timer == id) {
            self.finish_probe(key, false, "timed out", now);
        }
    }

    fn finish_probe(&mut self, key: usize, ok: bool, detail: &str, now: Instant) {
        let Some(Conn::Probe(p)) = self.conns.try_remove(key) else {
            return;
        };
        self.timers.cancel(p.timer);
        self.probe_result(p.backend, ok, detail, now);
    }

    /// Records a result and schedules the next probe.
    fn probe_result(&mut self, backend: usize, ok: bool, detail: &str, now: Instant) {
        self.metrics.record_probe(backend, ok);
        let t = self.health.probe(backend, ok, detail);
        self.note(t);
        self.next_probe(backend, now);
    }

    /// Schedules the next probe of `backend`.
    fn next_probe(&mut self, backend: usize, now: Instant) {
        let interval = self.cfg.probe.interval;
        // ±10 %: probes of backends that started together drift apart.
        let jitter = interval.mul_f64(0.2 * self.rng.next_f64());
        let next = now + interval.mul_f64(0.9) + jitter;
        self.timers.insert(
            next.max(now + Duration::from_millis(1)),
            Timer::ProbeDue(backend),
        );
    }

    /// Logs a health transition once; an ejection also gets a timer for its end, so the return
    /// to probation is logged when it happens.
    pub(super) fn note(&mut self, t: Option<Transition>) {
        let Some(t) = t else {
            return;
        };
        let name = self.backend_name(t.backend);
        let state = if t.usable { "up" } else { "down" };
        log::warn!("backend {name} {state}: {}", t.reason);
        if let Some(until) = t.until {
            self.metrics.record_ejection(t.backend);
            self.timers
                .insert(until, Timer::EjectionEnd(t.backend, until));
        }
    }

    /// An ejection's time is over.
    /// Logs only an ejection that really ran its course: one that probes cleared, or that a
    /// later ejection replaced, ended otherwise.
    pub(super) fn ejection_over(&self, backend: usize, until: Instant, now: Instant) {
        let same = self.health.ejected_until(backend) == Some(until);
        if same && self.health.usable(backend, now) {
            let name = self.backend_name(backend);
            log::warn!("backend {name} on probation: ejection over");
        }
    }

    fn backend_name(&self, backend: usize) -> &str {
        self.cfg
            .backends
            .get(backend)
            .map_or("?", |b| b.name.as_str())
    }
}

/// Connect, write, read: as far as the socket allows. `Some` once the probe is decided.
fn advance(p: &mut Probe, request: &[u8]) -> Option<(bool, String)> {
    if p.stage == Stage::Connecting {
        match upstream::finish_connect(&p.sock) {
            Ok(true) if request.is_empty() => return Some((true, "connected".into())),
            Ok(true) => p.stage = Stage::Sending(0),
            Ok(false) => return None,
            Err(e) => return Some((false, e.to_string())),
        }
    }
    while let Stage::Sending(sent) = p.stage {
        if sent >= request.len() {
            p.stage = Stage::Reading;
            break;
        }
        match io::write(&mut p.sock, &request[sent..]) {
            Io::Progress(n) => p.stage = Stage::Sending(sent + n),
            Io::WouldBlock => return None,
            Io::Closed => return Some((false, "closed before answering".into())),
            Io::Failed(e) => return Some((false, e.to_string())),
        }
    }
    let mut chunk = [0u8; 1024];
    loop {
        let room = PROBE_READ_MAX - p.buf.len();
        if room == 0 {
            return verdict(&p.buf, true);
        }
        let want = room.min(chunk.len());
        match io::read(&mut p.sock, &mut chunk[..want]) {
            Io::Progress(n) => {
                p.buf.extend_from_slice(&chunk[..n]);
                if let Some(v) = verdict(&p.buf, false) {
                    return Some(v);
                }
            }
            Io::WouldBlock => return None,
            Io::Closed => return verdict(&p.buf, true),
            Io::Failed(e) => return Some((false, e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false),
            Some((true, "status 200".into()))
        );
        assert_eq!(
            verdict(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", false),
            Some((false, "status 503".into()))
        );
        assert_eq!(verdict(b"HTTP/1.1 200 OK\r\n", false), None);
        assert_eq!(
            verdict(b"HTTP/1.1 200 OK\r\n", true),
            Some((false, "closed before answering".into()))
        );
        assert!(matches!(
            verdict(b"SSH-2.0\r\n\r\n", false),
            Some((false, _))
        ));
    }

    #[test]
    fn probe_requests_name_each_backend() {
        let r = requests(ProbeKind::Http, "/hz", &["a:1".into(), "b:2".into()]);
        assert!(requests(ProbeKind::Tcp, "/hz", &["a:1".into()])[0].is_empty());
        assert!(r[1].starts_with(b"GET /hz HTTP/1.1\r\nHost: b:2\r\n"));
        assert!(r[0].ends_with(b"Connection: close\r\n\r\n"));
    }
}
