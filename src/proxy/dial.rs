//! Getting a request to a backend: choosing one (the balancer asks health), reusing a pooled
//! connection or dialling a new one, noticing the handshake finish, and deciding after a
//! failure whether the request can safely go to another connection.

use std::time::{Duration, Instant};

use super::exchange::{exchange, Meta, Resp};
use super::session::{Phase, Session, Step};
use super::upstream::{self, Followers, Link, Upstream};
use super::{pipeline, rewrite, Conn, Proxy};
use crate::health::Outcome;
use crate::http::response::{Canned, CONTINUE};
use crate::net::buffer::Buffer;

/// Most backends one request tries before it is answered with 502: bounded, so a long list of
/// dead backends cannot hold a client for a connect timeout each.
const MAX_ATTEMPTS: u32 = 8;

/// Why no connection to a backend could be opened.
enum Dial {
    /// This backend refused or could not be reached: the next one may do.
    Failed,
    /// The proxy has no descriptor (or buffer) left for any connection.
    NoDescriptor,
}

/// Why a backend connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The connect was refused or timed out: nothing was sent.
    Connect,
    /// The connection broke or closed before any response byte.
    BeforeResponse,
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
                        let (canned, why) = if ex.attempts == 0 {
                            log::warn!("{}: no usable backend (all down or ejected)", s.peer);
                            (Canned::ServiceUnavailable, "no usable backend")
                        } else {
                            log::warn!("{}: every backend tried failed", s.peer);
                            (Canned::BadGateway, "every backend tried failed")
                        };
                        return self.gateway_answer(key, s, now, canned, why);
                    };
                    ex.started = now;
                    ex.tried |= bit(b);
                    ex.attempts += 1;
                    // A request that must not be sent twice goes only on a connection the
                    // kernel says is still open: see `fail`.
                    let check = !ex.meta.method.is_idempotent();
                    if let Some(up) = self.take_pooled(b, key, check) {
                        self.inflight[b] += 1;
                        self.end_head(&mut s.reqhead, &ex.meta, b);
                        if self.cfg.pipeline > 1 && pipeline::pipelinable(ex) {
                            ex.held = true;
                            self.held.push((b, key));
                        }
                        ex.up = Some(up);
                        s.deadline = now + self.cfg.backend_timeout;
                        self.arm(key, &mut s.timer, s.deadline);
                        return Step::Progress;
                    }
                    b
                }
            };
            match self.connect(backend, key) {
                Ok(up) => {
                    self.inflight[backend] += 1;
                    ex.started = now;
                    self.end_head(&mut s.reqhead, &ex.meta, backend);
                    ex.up = Some(up);
                    s.deadline = now + self.cfg.connect_timeout;
                    self.arm(key, &mut s.timer, s.deadline);
                    return Step::Progress;
                }
                Err(Dial::Failed) => {} // the next backend
                Err(Dial::NoDescriptor) => {
                    // Every backend would meet the same wall: the shortage is the proxy's.
                    let why = "no descriptor for a backend";
                    return self.gateway_answer(key, s, now, Canned::ServiceUnavailable, why);
                }
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

    /// The backend's most recently parked connection, now owned by the session at `owner`.
    /// With `check_open`, connections the backend has closed since the loop last looked are
    /// closed here and the next one is tried.
    fn take_pooled(&mut self, backend: usize, owner: usize, check_open: bool) -> Option<Upstream> {
        loop {
            let key = self.pools[backend].take()?;
            let up = match std::mem::replace(self.conns.get_mut(key)?, Conn::Attached { owner }) {
                Conn::Pooled(up) => up,
                other => {
                    self.conns[key] = other;
                    return None;
                }
            };
            if check_open && !upstream::still_open(&up.sock) {
                self.conns.try_remove(key);
                continue;
            }
            return Some(up); // its buffer comes with the answer (see `on_exchange`)
        }
    }

    fn connect(&mut self, backend: usize, owner: usize) -> Result<Upstream, Dial> {
        let addr = self.cfg.backends[backend].addr;
        let mut tried = upstream::connect(addr);
        if tried.as_ref().is_err_and(upstream::is_local_shortage) && self.shed_idle() {
            // An idle pooled connection gave its descriptor to this one.
            tried = upstream::connect(addr);
        }
        let mut sock = match tried {
            Ok(sock) => sock,
            Err(e) if upstream::is_local_shortage(&e) => {
                log::warn!("connect {addr}: {e}");
                return Err(Dial::NoDescriptor);
            }
            Err(e) => {
                log::warn!("connect {addr}: {e}");
                self.metrics.record_connect_failure(backend);
                return Err(Dial::Failed);
            }
        };
        let key = match self.register(&mut sock) {
            Ok(key) => key,
            Err(e) => {
                log::warn!("register backend {addr}: {e}");
                return Err(Dial::Failed);
            }
        };
        self.conns[key] = Conn::Attached { owner };
        Ok(Upstream {
            sock,
            key,
            backend,
            link: Link::Connecting,
            reused: false,
            readable: false,
            writable: false,
            hup: false,
            eof: false,
            reset: false,
            closed_first: false,
            write_shut: false,
            inbuf: Buffer::detached(),
            followers: Followers::default(),
            dirty: false,
        })
    }

    /// Finishes a connect when the socket says so.
    pub(super) fn connected(
        &mut self,
        key: usize,
        s: &mut Session,
        now: Instant,
    ) -> Result<Step, Failure> {
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
    pub(super) fn fail(&mut self, key: usize, s: &mut Session, now: Instant, why: Failure) -> Step {
        let Some(ex) = exchange(s) else {
            return Step::Close;
        };
        let Some(up) = ex.up.take() else {
            return Step::Close;
        };
        let backend = up.backend;
        let reused = up.reused;
        // Whether the backend's application cannot have read the request: nothing of it was
        // written, or it met a socket the backend had closed before it came (the kernel may
        // keep that error behind an end of stream read first). A clean close, or a reset out
        // of the blue, may follow a request it read and acted on.
        let unread = ex.head_sent == 0
            || up.closed_first
            || matches!(up.sock.take_error(), Ok(Some(e)) if upstream::closed_first(&e));
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
        ex.held = false; // a retry sends on its own, at once
        ex.handed = false;
        let resend = !ex.committed;
        if why == Failure::Connect {
            self.metrics.record_retry(backend);
            return self.attach(key, s, now, None);
        }
        // The classic stale keep-alive: the backend closed it while it sat in the pool. A
        // request that is not idempotent goes again only if the backend cannot have read it
        // (RFC 9112 §9.3.1: a proxy MUST NOT retry those automatically otherwise); `attach`
        // checked its pooled connection was still open, which leaves only a close racing it.
        let may_resend = ex.meta.method.is_idempotent() || unread;
        if resend && reused && may_resend && !ex.stale_retried {
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
        let why = "backend failed before answering";
        self.gateway_answer(key, s, now, Canned::BadGateway, why)
    }

    /// Tells health how a request to `backend` went, and logs what that changed.
    pub(super) fn passive(
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

    /// The session's deadline passed during an exchange. Returns whether the session lives on.
    pub(super) fn exchange_timeout(&mut self, key: usize, s: &mut Session, now: Instant) -> bool {
        let Phase::Exchange(ex) = &mut s.phase else {
            return false;
        };
        if ex.requeue {
            return true; // a pipeline gave it back: it is about to be sent again
        }
        if self.leave_queue(ex) {
            log::debug!(
                "{}: waited too long behind another request: sent again",
                s.peer
            );
            return true;
        }
        let connecting = ex.up.as_ref().is_some_and(|u| u.link == Link::Connecting);
        let waiting_head = matches!(ex.resp, Resp::Head);
        if connecting {
            log::warn!("{}: connect timed out", s.peer);
            return self.fail(key, s, now, Failure::Connect) != Step::Close;
        }
        if !waiting_head {
            // Stalled mid-body: only closing tells the client, and only a reset tells it
            // for sure (a close-delimited answer would end looking whole).
            s.abort = true;
            return false;
        }
        let handed_on = ex.up.as_ref().filter(|_| ex.handed).map(|u| u.backend);
        if handed_on.is_some_and(|b| self.pipelining_failed(b)) {
            return self.fail(key, s, now, Failure::BeforeResponse) != Step::Close;
        }
        // Who stalled: the client, when the proxy waits for body bytes it has not sent;
        // the backend, when it does not answer a whole request or does not take the bytes
        // the proxy holds for it (504, as nginx answers a timeout while sending a request).
        let backend_stalled = ex.body.is_done() || ex.body_sent < ex.body_framed;
        let (canned, why) = if backend_stalled {
            log::warn!("{}: backend timed out", s.peer);
            (Canned::GatewayTimeout, "backend timed out")
        } else {
            (Canned::RequestTimeout, "request body timed out")
        };
        if let Some(up) = ex.up.take() {
            if backend_stalled {
                self.passive(up.backend, Outcome::Timeout, None, now);
            }
            self.release(up, false);
        }
        if backend_stalled {
            self.gateway_answer(key, s, now, canned, why);
        } else {
            s.answer(canned, why);
        }
        true
    }
}

pub(super) fn bit(i: usize) -> u64 {
    1u64 << (i % 64)
}
