//! One request and its response: choosing and connecting a backend, sending the rewritten head
//! and the body, reading and rewriting the response head, relaying the body by its framing, and
//! retrying on another connection when that is safe.

use std::time::{Duration, Instant};

use super::session::{Phase, Session, Step};
use super::upstream::{self, Link, Upstream};
use super::{rewrite, Conn, Proxy};
use crate::health::Outcome;
use crate::http::framing::{BodyDecoder, BodyKind};
use crate::http::head::{self, Method, Parse, Request, Version, EMPTY_HEADERS};
use crate::http::response::{Canned, CONTINUE};
use crate::net::io::{self, Io};

/// Most backends one request tries before it is answered with 502: bounded, so a long list of
/// dead backends cannot hold a client for a connect timeout each.
const MAX_ATTEMPTS: u32 = 8;

/// What the proxy remembers of a request once its head has been rewritten.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// The method, for the response's framing and for retries.
    pub method: Method,
    /// The client's version: a 1.0 client never gets chunked bytes.
    pub version: Version,
    /// The client allows the connection to stay open.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before its body.
    pub expect_continue: bool,
    /// The client asked to switch protocols.
    pub upgrade: bool,
    /// The request has no `Host` (HTTP/1.0): the backend's name is sent instead.
    pub needs_host: bool,
    /// Length of the rewritten head before its per-backend ending.
    pub head_base: usize,
    /// TCP mode: no request at all, the connection becomes a tunnel once the backend answers
    /// the handshake.
    pub raw: bool,
}

impl Meta {
    /// Takes what matters from a parsed request whose rewritten head is `head_base` long.
    pub fn of(req: &Request<'_, '_>, head_base: usize) -> Meta {
        Meta {
            needs_host: req.fields.hosts == 0,
            head_base,
            raw: false,
            method: req.method,
            version: req.version,
            keep_alive: req.keep_alive(),
            expect_continue: req.expects_continue(),
            upgrade: req.is_upgrade(),
        }
    }
}

/// Where the response stands.
#[derive(Debug)]
pub enum Resp {
    /// Waiting for (the rest of) a response head.
    Head,
    /// Relaying the body.
    Body {
        /// Finds the end of the body.
        dec: BodyDecoder,
        /// Bytes at the front of the backend's buffer known to be body, not yet sent.
        framed: usize,
        /// The body is chunked and the client speaks 1.0: send only the data, end by closing.
        dechunk: bool,
        /// The client connection ends after this response.
        close_client: bool,
        /// The backend connection can serve another request afterwards.
        reuse: bool,
    },
}

/// Why a backend connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The connect was refused or timed out: nothing was sent.
    Connect,
    /// The connection broke or closed before any response byte.
    BeforeResponse,
}

/// One request in flight.
#[derive(Debug)]
pub struct Exchange {
    /// The request, as far as the relay cares.
    pub meta: Meta,
    /// The backend connection serving it.
    pub up: Option<Upstream>,
    /// How much of the rewritten head the current connection has taken.
    pub head_sent: usize,
    /// Finds the end of the request body in the client's bytes.
    pub body: BodyDecoder,
    /// Bytes at the front of the client buffer known to be request body.
    pub body_framed: usize,
    /// Of those, how many the current connection has taken.
    pub body_sent: usize,
    /// Body bytes have left the client buffer: the request can no longer be sent again.
    pub committed: bool,
    /// Backends tried, as bits (index modulo 64).
    pub tried: u64,
    /// Connections tried.
    pub attempts: u32,
    /// A stale pooled connection was already replaced once.
    pub stale_retried: bool,
    /// `100 Continue` was sent to the client.
    pub continue_sent: bool,
    /// When the current attempt began, for the backend's response time.
    pub started: Instant,
    /// The response.
    pub resp: Resp,
}

impl Exchange {
    /// A TCP-mode exchange: only a backend to dial.
    pub fn raw() -> Exchange {
        let meta = Meta {
            method: Method::Other,
            version: Version::Http11,
            keep_alive: false,
            expect_continue: false,
            upgrade: false,
            needs_host: false,
            head_base: 0,
            raw: true,
        };
        Exchange::new(meta, BodyKind::Empty)
    }

    /// A request whose head has been read, with a body of `body`.
    pub fn new(meta: Meta, body: BodyKind) -> Exchange {
        Exchange {
            meta,
            up: None,
            head_sent: 0,
            body: BodyDecoder::new(body),
            body_framed: 0,
            body_sent: 0,
            committed: false,
            tried: 0,
            attempts: 0,
            stale_retried: false,
            continue_sent: false,
            started: Instant::now(),
            resp: Resp::Head,
        }
    }
}

fn exchange(s: &mut Session) -> Option<&mut Exchange> {
    match &mut s.phase {
        Phase::Exchange(ex) => Some(ex),
        _ => None,
    }
}

impl Proxy {
    /// Gives the exchange a backend connection: `same` retries that backend on a fresh
    /// connection; otherwise the next untried backend in the rotation, pooled connection first.
    pub(super) fn attach(
        &mut self,
        key: usize,
        s: &mut Session,
        now: Instant,
        same: Option<usize>,
    ) -> Step {
        let limit = MAX_ATTEMPTS.min(self.cfg.backends.len() as u32);
        let mut same = same;
        loop {
            let Phase::Exchange(ex) = &mut s.phase else {
                return Step::Close;
            };
            let backend = match same.take() {
                Some(b) => b,
                None => {
                    let tried = ex.tried;
                    let health = &mut self.health;
                    let pick = if ex.attempts >= limit {
                        None
                    } else {
                        let retired = &self.retired;
                        self.balancer.next(|i| {
                            tried & bit(i) == 0 && !retired[i] && health.take_turn(i, now)
                        })
                    };
                    let Some(b) = pick else {
                        if ex.attempts == 0 {
                            log::warn!("{}: no usable backend (all down or ejected)", s.peer);
                            s.answer(Canned::ServiceUnavailable, "no usable backend");
                        } else {
                            log::warn!("{}: every backend tried failed", s.peer);
                            s.answer(Canned::BadGateway, "every backend tried failed");
                        }
                        return Step::Progress;
                    };
                    ex.started = now;
                    ex.tried |= bit(b);
                    ex.attempts += 1;
                    if let Some(up) = self.take_pooled(b, key) {
                        self.inflight[b] += 1;
                        self.end_head(&mut s.reqhead, &ex.meta, b);
                        ex.up = Some(up);
                        s.deadline = now + self.cfg.backend_timeout;
                        self.arm(key, &mut s.timer, s.deadline);
                        return Step::Progress;
                    }
                    b
                }
            };
            if let Some(up) = self.connect(backend, key) {
                self.inflight[backend] += 1;
                ex.started = now;
                self.end_head(&mut s.reqhead, &ex.meta, backend);
                ex.up = Some(up);
                s.deadline = now + self.cfg.connect_timeout;
                self.arm(key, &mut s.timer, s.deadline);
                return Step::Progress;
            }
        }
    }

    fn end_head(&self, reqhead: &mut Vec<u8>, meta: &Meta, backend: usize) {
        if meta.raw {
            return;
        }
        let host = meta
            .needs_host
            .then(|| self.cfg.backends[backend].name.as_str());
        rewrite::end_head(reqhead, meta.head_base, host);
    }

    fn take_pooled(&mut self, backend: usize, owner: usize) -> Option<Upstream> {
        let key = self.pools[backend].take()?;
        match std::mem::replace(self.conns.get_mut(key)?, Conn::Attached { owner }) {
            Conn::Pooled(mut up) => {
                up.inbuf = self.bufs.take();
                Some(up)
            }
            other => {
                self.conns[key] = other;
                None
            }
        }
    }

    fn connect(&mut self, backend: usize, owner: usize) -> Option<Upstream> {
        let addr = self.cfg.backends[backend].addr;
        let mut sock = match upstream::connect(addr) {
            Ok(sock) => sock,
            Err(e) => {
                log::warn!("connect {addr}: {e}");
                self.metrics.record_connect_failure(backend);
                return None;
            }
        };
        let key = match self.register(&mut sock) {
            Ok(key) => key,
            Err(e) => {
                log::warn!("register backend {addr}: {e}");
                return None;
            }
        };
        self.conns[key] = Conn::Attached { owner };
        Some(Upstream {
            sock,
            key,
            backend,
            link: Link::Connecting,
            reused: false,
            readable: false,
            writable: false,
            hup: false,
            eof: false,
            inbuf: self.bufs.take(),
        })
    }

    /// All the work a request in flight can do now.
    pub(super) fn on_exchange(&mut self, key: usize, s: &mut Session, now: Instant) -> Step {
        let mut step = match self.connected(key, s, now) {
            Ok(step) => step,
            Err(failure) => return self.fail(key, s, now, failure),
        };
        step = step.or(frame_request(s));
        if step == Step::Close {
            return Step::Close;
        }
        match send_request(s) {
            Ok(st) => step = step.or(st),
            Err(()) => return self.fail(key, s, now, Failure::BeforeResponse),
        }
        step = step.or(read_backend(s));
        if step == Step::Progress {
            s.deadline = now + self.cfg.backend_timeout;
        }
        if exchange(s).is_some_and(|ex| matches!(ex.resp, Resp::Head)) {
            step = step.or(self.response_head(key, s, now));
        }
        // Straight on to the body, so the head and the first body bytes leave together.
        if exchange(s).is_some_and(|ex| matches!(ex.resp, Resp::Body { .. })) {
            step = step.or(self.response_body(key, s, now));
        }
        step
    }

    /// Finishes a connect when the socket says so.
    fn connected(&mut self, key: usize, s: &mut Session, now: Instant) -> Result<Step, Failure> {
        let Some(ex) = exchange(s) else {
            return Ok(Step::Idle);
        };
        let Some(up) = ex.up.as_mut() else {
            return Ok(Step::Idle);
        };
        if up.link == Link::Open {
            // The backend is there: a client waiting for `100 Continue` may send its body.
            if ex.meta.expect_continue && !ex.continue_sent {
                ex.continue_sent = true;
                s.out.vec().extend_from_slice(CONTINUE);
                return Ok(Step::Progress);
            }
            return Ok(Step::Idle);
        }
        if !up.writable {
            return Ok(Step::Idle);
        }
        match upstream::finish_connect(&up.sock) {
            Ok(true) => {
                up.link = Link::Open;
                if ex.meta.raw {
                    let backend = up.backend;
                    self.passive(backend, Outcome::Ok, None, now);
                    self.start_tunnel(key, s, now);
                    return Ok(Step::Progress);
                }
                s.deadline = now + self.cfg.backend_timeout;
                self.arm(key, &mut s.timer, s.deadline);
                Ok(Step::Progress)
            }
            Ok(false) => {
                up.writable = false;
                Ok(Step::Idle)
            }
            Err(e) => {
                log::warn!("connect {}: {e}", self.cfg.backends[up.backend].name);
                Err(Failure::Connect)
            }
        }
    }

    /// The backend connection failed before any response byte: retry where that is safe,
    /// answer 502 otherwise.
    fn fail(&mut self, key: usize, s: &mut Session, now: Instant, why: Failure) -> Step {
        let Some(ex) = exchange(s) else {
            return Step::Close;
        };
        let Some(up) = ex.up.take() else {
            return Step::Close;
        };
        let backend = up.backend;
        let reused = up.reused;
        self.release(up, false);
        if why == Failure::Connect {
            self.metrics.record_connect_failure(backend);
        }
        let outcome = match why {
            Failure::Connect => Some(Outcome::ConnectFailed),
            // A pooled connection closed while idle says nothing about the backend.
            Failure::BeforeResponse if reused => None,
            Failure::BeforeResponse => Some(Outcome::Reset),
        };
        if let Some(outcome) = outcome {
            self.passive(backend, outcome, None, now);
        }
        let Phase::Exchange(ex) = &mut s.phase else {
            return Step::Close;
        };
        if !matches!(ex.resp, Resp::Head) {
            return Step::Close;
        }
        ex.head_sent = 0;
        ex.body_sent = 0;
        let resend = !ex.committed;
        if why == Failure::Connect {
            self.metrics.record_retry(backend);
            return self.attach(key, s, now, None);
        }
        if resend && reused && !ex.stale_retried {
            // The classic stale keep-alive: the backend closed it while it sat in the pool.
            ex.stale_retried = true;
            self.metrics.record_retry(backend);
            return self.attach(key, s, now, Some(backend));
        }
        if resend && ex.meta.method.is_idempotent() {
            self.metrics.record_retry(backend);
            return self.attach(key, s, now, None);
        }
        log::warn!(
            "{}: backend {} failed before answering",
            s.peer,
            self.cfg.backends[backend].name
        );
        s.answer(Canned::BadGateway, "backend failed before answering");
        Step::Progress
    }

    /// Tells health how a request to `backend` went, and logs what that changed.
    fn passive(
        &mut self,
        backend: usize,
        outcome: Outcome,
        latency: Option<Duration>,
        now: Instant,
    ) {
        let jitter = self.rng.next_f64();
        let t = self.health.request(backend, outcome, latency, now, jitter);
        self.note(t);
    }

    /// Reads and passes on the response head (and any 1xx before it).
    fn response_head(&mut self, key: usize, s: &mut Session, now: Instant) -> Step {
        let Phase::Exchange(ex) = &mut s.phase else {
            return Step::Idle;
        };
        let Some(up) = ex.up.as_mut() else {
            return Step::Idle;
        };
        if up.inbuf.is_empty() {
            if up.eof {
                return self.fail(key, s, now, Failure::BeforeResponse);
            }
            return Step::Idle;
        }
        let mut headers = EMPTY_HEADERS;
        let resp = match head::parse_response(up.inbuf.data(), &mut headers, self.cfg.max_head) {
            Ok(Parse::Complete(resp)) => resp,
            Ok(Parse::Partial) if !up.eof && !up.inbuf.is_full() => return Step::Idle,
            Ok(Parse::Partial) => return bad_gateway(s, "incomplete response head"),
            Err(e) => return bad_gateway(s, e.as_str()),
        };
        let status = resp.status;
        if status == 101 || status >= 200 {
            s.ledger.status = status;
            s.ledger.backend = Some(up.backend);
            // A final answer: how long the backend took, and whether it was a server error.
            let outcome = if status >= 500 {
                Outcome::ServerError
            } else {
                Outcome::Ok
            };
            let latency = now.saturating_duration_since(ex.started);
            let (backend, jitter) = (up.backend, self.rng.next_f64());
            let t = self
                .health
                .request(backend, outcome, Some(latency), now, jitter);
            self.note(t);
        }
        let name = self.cfg.backends[up.backend].name.as_str();
        let mut edits = rewrite::ResponseEdits {
            backend: self.cfg.backend_header.then_some(name),
            close: false,
            client_version: ex.meta.version,
            dechunk: false,
            switching: false,
        };
        let head_len = resp.head_len;
        let next = match status {
            101 if ex.meta.upgrade => {
                edits.switching = true;
                rewrite::response_head(s.out.vec(), &resp, edits);
                None
            }
            101 => return bad_gateway(s, "101 without an upgrade request"),
            100..=199 => {
                let duplicate = status == 100 && ex.continue_sent;
                if ex.meta.version == Version::Http11 && !duplicate {
                    rewrite::response_head(s.out.vec(), &resp, edits);
                }
                up.inbuf.consume(head_len);
                return Step::Progress;
            }
            _ => {
                let kind = match resp.body(ex.meta.method) {
                    Ok(kind) => kind,
                    Err(e) => return bad_gateway(s, e.as_str()),
                };
                let dechunk = kind == BodyKind::Chunked && ex.meta.version == Version::Http10;
                edits.dechunk = dechunk;
                edits.close = !ex.meta.keep_alive
                    || kind == BodyKind::UntilClose
                    || dechunk
                    || self.draining.is_some();
                rewrite::response_head(s.out.vec(), &resp, edits);
                Some(Resp::Body {
                    dec: BodyDecoder::new(kind),
                    framed: 0,
                    dechunk,
                    close_client: edits.close,
                    reuse: resp.keep_alive() && kind != BodyKind::UntilClose,
                })
            }
        };
        up.inbuf.consume(head_len);
        // The response has begun: the request will not be sent again.
        s.inbuf.consume(ex.body_sent);
        ex.body_framed -= ex.body_sent;
        ex.body_sent = 0;
        ex.committed = true;
        match next {
            Some(resp) => ex.resp = resp,
            None => self.start_tunnel(key, s, now),
        }
        Step::Progress
    }

    /// Turns the exchange's backend connection into a raw two-way tunnel, timed by idleness.
    fn start_tunnel(&mut self, key: usize, s: &mut Session, now: Instant) {
        let phase = std::mem::replace(&mut s.phase, Phase::Head { started: false });
        s.phase = match phase {
            Phase::Exchange(ex) => match ex.up {
                Some(up) => Phase::Tunnel(Box::new(up)),
                None => Phase::Closing { shut: false },
            },
            _ => Phase::Closing { shut: false },
        };
        s.deadline = now + self.cfg.idle_timeout;
        self.arm(key, &mut s.timer, s.deadline);
    }

    /// Frames response body bytes for the client; finishes the exchange at the body's end.
    fn response_body(&mut self, key: usize, s: &mut Session, now: Instant) -> Step {
        let buffer_size = self.cfg.buffer_size;
        let Phase::Exchange(ex) = &mut s.phase else {
            return Step::Idle;
        };
        let Some(up) = ex.up.as_mut() else {
            return Step::Close;
        };
        let Resp::Body {
            dec,
            framed,
            dechunk,
            close_client,
            ..
        } = &mut ex.resp
        else {
            return Step::Idle;
        };
        let mut step = Step::Idle;
        while !dec.is_done() && *framed < up.inbuf.len() {
            if *dechunk && s.out.len() >= buffer_size {
                break;
            }
            let input = &up.inbuf.data()[*framed..];
            let Ok(d) = dec.decode(input) else {
                log::warn!("{}: invalid response body from backend", s.peer);
                return Step::Close;
            };
            if *dechunk {
                s.out.vec().extend_from_slice(&input[d.data]);
                up.inbuf.consume(d.consumed);
            } else {
                *framed += d.consumed;
            }
            step = Step::Progress;
        }
        if up.eof && !dec.is_done() && *framed == up.inbuf.len() && dec.finish_at_eof().is_err() {
            // The backend died mid-body: the client must not take what it got as complete.
            return Step::Close;
        }
        if dec.is_done() && *framed == 0 && s.out.is_empty() {
            let close = *close_client || s.eof;
            self.finish(key, s, now, close);
            return Step::Progress;
        }
        step
    }

    /// The session's deadline passed during an exchange. Returns whether the session lives on.
    pub(super) fn exchange_timeout(&mut self, key: usize, s: &mut Session, now: Instant) -> bool {
        let Phase::Exchange(ex) = &mut s.phase else {
            return false;
        };
        let connecting = ex.up.as_ref().is_some_and(|u| u.link == Link::Connecting);
        let waiting_head = matches!(ex.resp, Resp::Head);
        if connecting {
            log::warn!("{}: connect timed out", s.peer);
            return self.fail(key, s, now, Failure::Connect) != Step::Close;
        }
        if !waiting_head {
            return false; // stalled mid-body: only closing tells the client
        }
        let canned = if ex.body.is_done() {
            log::warn!("{}: backend timed out", s.peer);
            Canned::GatewayTimeout
        } else {
            Canned::RequestTimeout
        };
        if let Some(up) = ex.up.take() {
            if canned == Canned::GatewayTimeout {
                self.passive(up.backend, Outcome::Timeout, None, now);
            }
            self.release(up, false);
        }
        let why = if canned == Canned::GatewayTimeout {
            "backend timed out"
        } else {
            "request body timed out"
        };
        s.answer(canned, why);
        true
    }
}

fn bit(i: usize) -> u64 {
    1u64 << (i % 64)
}

fn bad_gateway(s: &mut Session, why: &'static str) -> Step {
    log::warn!("{}: bad response from backend: {why}", s.peer);
    s.answer(Canned::BadGateway, why);
    Step::Progress
}

/// Extends the known request body over what the client has sent.
fn frame_request(s: &mut Session) -> Step {
    let Phase::Exchange(ex) = &mut s.phase else {
        return Step::Idle;
    };
    let mut step = Step::Idle;
    while !ex.body.is_done() && ex.body_framed < s.inbuf.len() {
        match ex.body.decode(&s.inbuf.data()[ex.body_framed..]) {
            Ok(d) => {
                ex.body_framed += d.consumed;
                s.ledger.bytes_in += d.consumed as u64;
            }
            Err(e) => {
                log::debug!("{}: bad request body: {e}", s.peer);
                if matches!(ex.resp, Resp::Head) && s.out.is_empty() {
                    s.answer(Canned::BadRequest, e.as_str());
                    return Step::Progress;
                }
                return Step::Close;
            }
        }
        step = Step::Progress;
    }
    if s.eof && !ex.body.is_done() && ex.body_framed == s.inbuf.len() {
        return Step::Close; // the client gave up mid-body
    }
    step
}

/// Sends the rewritten head, then the framed body bytes, to the backend.
fn send_request(s: &mut Session) -> Result<Step, ()> {
    let Phase::Exchange(ex) = &mut s.phase else {
        return Ok(Step::Idle);
    };
    let Some(up) = ex.up.as_mut() else {
        return Ok(Step::Idle);
    };
    if up.link != Link::Open
        || !matches!(ex.resp, Resp::Head) && ex.body.is_done() && ex.body_sent == ex.body_framed
    {
        return Ok(Step::Idle);
    }
    let mut step = Step::Idle;
    while up.writable {
        // The rest of the head and the body bytes known so far, in one system call.
        let head = &s.reqhead[ex.head_sent.min(s.reqhead.len())..];
        let body = &s.inbuf.data()[ex.body_sent..ex.body_framed];
        if head.is_empty() && body.is_empty() {
            break;
        }
        let wanted = head.len() + body.len();
        match io::write_pair(&mut up.sock, head, body) {
            Io::Progress(n) => {
                let to_head = n.min(head.len());
                ex.head_sent += to_head;
                ex.body_sent += n - to_head;
                // A short write means the socket buffer is full: wait for the next edge.
                up.writable = n == wanted;
                step = Step::Progress;
            }
            Io::WouldBlock => up.writable = false,
            Io::Closed | Io::Failed(_) => return Err(()),
        }
    }
    // A body larger than the buffer: make room, giving up the chance to send it again.
    if s.inbuf.is_full() && ex.body_sent == ex.body_framed && !ex.body.is_done() {
        s.inbuf.consume(ex.body_sent);
        ex.body_framed = 0;
        ex.body_sent = 0;
        ex.committed = true;
        step = Step::Progress;
    }
    // Once the response is under way, sent body bytes need not be kept.
    if !matches!(ex.resp, Resp::Head) && ex.body_sent > 0 {
        s.inbuf.consume(ex.body_sent);
        ex.body_framed -= ex.body_sent;
        ex.body_sent = 0;
    }
    Ok(step)
}

/// Reads from the backend while there is room.
fn read_backend(s: &mut Session) -> Step {
    let Phase::Exchange(ex) = &mut s.phase else {
        return Step::Idle;
    };
    let Some(up) = ex.up.as_mut() else {
        return Step::Idle;
    };
    if up.link != Link::Open || !up.readable || up.eof || up.inbuf.is_full() {
        return Step::Idle;
    }
    let room = up.inbuf.space().len();
    match io::read(&mut up.sock, up.inbuf.space()) {
        Io::Progress(n) => {
            up.inbuf.commit(n);
            up.readable = io::still_readable(n, room, up.hup);
            Step::Progress
        }
        Io::WouldBlock => {
            up.readable = false;
            Step::Idle
        }
        // A reset reads as the end: before a response it is retried, mid-body it truncates.
        Io::Closed | Io::Failed(_) => {
            up.eof = true;
            Step::Progress
        }
    }
}
