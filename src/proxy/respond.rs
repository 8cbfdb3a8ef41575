//! The response on its way back: the head parsed, judged and rewritten for the client (1xx
//! passed on, 101 turned into a tunnel), then the body framed in the backend's buffer and
//! written from there, or decoded for an HTTP/1.0 client.

use std::time::Instant;

use super::dial::Failure;
use super::exchange::{exchange, Exchange, Resp};
use super::session::{Ending, Phase, Session, Step};
use super::{rewrite, Proxy};
use crate::health::Outcome;
use crate::http::framing::{BodyDecoder, BodyKind};
use crate::http::head::{self, Method, Parse, Version, EMPTY_HEADERS};
use crate::http::response::Canned;

/// Interim (1xx) answers passed on for one request before the backend is deemed broken (502).
/// Real backends send one or two (`100 Continue`, `103 Early Hints`); each may restart the
/// backend deadline, so the bound is what keeps the wait for a final answer finite.
const MAX_INTERIM: u8 = 16;

impl Proxy {
    /// Reads and passes on the response head (and any 1xx before it).
    pub(super) fn response_head(&mut self, key: usize, s: &mut Session, now: Instant) -> Step {
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
        if s.out.len() >= self.cfg.buffer_size {
            return Step::Idle; // interim answers the client has not taken yet: let it catch up
        }
        // A head that fills the buffer without ending gets a head-sized one, once.
        let unfinished = up.inbuf.is_full() && head::find_head_end(up.inbuf.data(), 0).is_none();
        if unfinished && !up.eof && self.grow(&mut up.inbuf) {
            return Step::Progress;
        }
        let mut headers = EMPTY_HEADERS;
        let resp = match head::parse_response(up.inbuf.data(), &mut headers, self.cfg.max_head) {
            Ok(Parse::Complete(resp)) => resp,
            Ok(Parse::Partial) if !up.eof && !up.inbuf.is_full() => return Step::Idle,
            Ok(Parse::Partial) => return self.broken_head(key, s, now, "incomplete response head"),
            Err(e) => return self.broken_head(key, s, now, e.as_str()),
        };
        let status = resp.status;
        if !(100..=599).contains(&status) {
            // RFC 9110 §15: codes outside 100-599 are invalid; a client cannot act on them.
            return self.broken_head(key, s, now, "status code out of range");
        }
        // A whole head: the wait for what comes next (a body, or the answer after an interim
        // one) starts now.
        s.deadline = now + self.cfg.backend_timeout;
        if status == 101 || status >= 200 {
            if ex.handed {
                self.pipelining_works(up.backend);
            }
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
        let date = self.date.bytes();
        let mut edits = rewrite::ResponseEdits {
            backend: self.cfg.backend_header.then_some(name),
            close: false,
            client_version: ex.meta.version,
            dechunk: false,
            switching: false,
            date: &date,
        };
        let head_len = resp.head_len;
        // Requests queued behind this answer wait only for a final one that is whole here and
        // leaves the connection usable; anything else could keep them for long.
        let mut spoil = true;
        let next = match status {
            // A switch must say what it switches to (RFC 9110 §15.2.2), which must be one of
            // the protocols passed on (RFC 9110 §7.8; never h2c).
            101 if ex.meta.upgrade && rewrite::switch_was_offered(&s.reqhead, &resp) => {
                edits.switching = true;
                rewrite::response_head(s.out.vec(), &resp, edits);
                None
            }
            101 => return self.bad_gateway(key, s, now, "101 without an upgrade asked and named"),
            100..=199 => {
                // Each one restarts the backend's deadline and is queued for the client:
                // without a bound, a backend could hold the request and fill memory forever.
                ex.interim += 1;
                if ex.interim > MAX_INTERIM {
                    let why = "too many interim (1xx) responses";
                    return self.bad_gateway(key, s, now, why);
                }
                let duplicate = status == 100 && ex.continue_sent;
                if ex.meta.version == Version::Http11 && !duplicate {
                    rewrite::response_head(s.out.vec(), &resp, edits);
                }
                up.inbuf.consume(head_len);
                self.bounce(up);
                return Step::Progress;
            }
            _ => {
                let kind = match resp.body(ex.meta.method) {
                    Ok(kind) => kind,
                    Err(e) => return self.broken_head(key, s, now, e.as_str()),
                };
                if kind == BodyKind::UntilClose && !up.followers.is_empty() {
                    // The backend has the heads of the requests behind this one: were it to
                    // answer them before closing, their answers would become this one's body.
                    // Nothing reached the client yet; it goes again, alone.
                    log::debug!("{}: answer to the close in a pipeline: sent again", s.peer);
                    return self.fail(key, s, now, Failure::BeforeResponse);
                }
                let reuse = resp.keep_alive() && kind != BodyKind::UntilClose;
                let whole = match kind {
                    BodyKind::Empty => true,
                    BodyKind::Length(n) => n <= (up.inbuf.len() - head_len) as u64,
                    BodyKind::Chunked | BodyKind::UntilClose => false,
                };
                // No body by rule (RFC 9112 §6.3 items 1-2), whatever the fields say: bytes
                // sent after it anyway would pass for the next answer.
                let bodiless = matches!(status, 204 | 304) || ex.meta.method == Method::Head;
                spoil = !(reuse && whole) || bodiless;
                let dechunk = kind == BodyKind::Chunked && ex.meta.version == Version::Http10;
                edits.dechunk = dechunk;
                // An answer before the whole request body arrived ends the connection (the
                // rest of the body is not read): the client is told (RFC 9112 §9.6).
                edits.close = !ex.meta.keep_alive
                    || kind == BodyKind::UntilClose
                    || dechunk
                    || !ex.body.is_done()
                    || self.draining.is_some();
                rewrite::response_head(s.out.vec(), &resp, edits);
                Some(Resp::Body {
                    dec: BodyDecoder::new(kind),
                    framed: 0,
                    dechunk,
                    close_client: edits.close,
                    reuse,
                })
            }
        };
        up.inbuf.consume(head_len);
        if spoil {
            self.bounce(up);
        }
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
    pub(super) fn start_tunnel(&mut self, key: usize, s: &mut Session, now: Instant) {
        let phase = std::mem::replace(&mut s.phase, Phase::Head { started: false });
        s.phase = match phase {
            Phase::Exchange(ex) => match ex.up {
                Some(mut up) => {
                    if up.inbuf.is_detached() {
                        up.inbuf = self.bufs.take();
                    } else if up.inbuf.capacity() < self.cfg.buffer_size {
                        self.grow(&mut up.inbuf);
                    }
                    Phase::Tunnel(Box::new(up))
                }
                None => Phase::Closing(Ending::Flush { linger: true }),
            },
            _ => Phase::Closing(Ending::Flush { linger: true }),
        };
        s.deadline = now + self.cfg.idle_timeout;
        self.arm(key, &mut s.timer, s.deadline);
    }

    /// Frames response body bytes for the client; finishes the exchange at the body's end.
    pub(super) fn response_body(&mut self, key: usize, s: &mut Session, now: Instant) -> Step {
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
                return cut_short(&mut s.abort, *dechunk);
            };
            if *dechunk {
                s.out.vec().extend_from_slice(&input[d.data]);
                up.inbuf.consume(d.consumed);
            } else {
                *framed += d.consumed;
            }
            step = Step::Progress;
        }
        if up.eof && !dec.is_done() && *framed == up.inbuf.len() {
            // The backend died mid-body: the client must not take what it got as complete.
            // A body that ends at the close is cut too when the close was a reset: the
            // backend aborted, and what it had not sent yet was thrown away.
            if up.reset {
                return cut_short(&mut s.abort, true);
            }
            if dec.finish_at_eof().is_err() {
                return cut_short(&mut s.abort, *dechunk);
            }
        }
        let others_wait = !up.followers.is_empty();
        if dec.is_done() && *framed > 0 && others_wait && !s.writable {
            // A client slow to read must not hold up the requests queued behind its answer:
            // the rest of it (whole, so at most a buffer) joins the client's own queue.
            s.out.vec().extend_from_slice(&up.inbuf.data()[..*framed]);
            up.inbuf.consume(*framed);
            *framed = 0;
        }
        if dec.is_done() && *framed == 0 && (s.out.is_empty() || others_wait) {
            // A client that half-closed after pipelining still gets an answer to every
            // request it sent whole; the connection ends when none is left.
            let close = *close_client || (s.eof && s.inbuf.is_empty());
            self.finish(key, s, now, close);
            return Step::Progress;
        }
        step
    }
}

impl Proxy {
    /// A response head that cannot be used. When the request waited behind another on a
    /// shared connection, what looks broken may be the leftovers of the answer before it (a
    /// backend whose length lied): the request goes once more, alone on a fresh connection.
    fn broken_head(
        &mut self,
        key: usize,
        s: &mut Session,
        now: Instant,
        why: &'static str,
    ) -> Step {
        if exchange(s).is_some_and(|ex| ex.follows > 0 && !ex.stale_retried) {
            log::debug!(
                "{}: bad answer after a pipeline ({why}): sent again",
                s.peer
            );
            return self.fail(key, s, now, Failure::BeforeResponse);
        }
        // Likewise on a reused connection: late leftovers of an earlier answer (the body of
        // a HEAD answer, bytes after a declared length) are not this request's answer. Bytes
        // that start like a status line are the backend's own answer, broken: not retried.
        let leftovers = |ex: &Exchange| {
            ex.up
                .as_ref()
                .is_some_and(|u| u.reused && !u.inbuf.data().starts_with(b"HTTP/"))
        };
        if exchange(s)
            .is_some_and(|ex| leftovers(ex) && ex.meta.method.is_idempotent() && !ex.stale_retried)
        {
            log::debug!(
                "{}: bad answer on a reused connection ({why}): sent again",
                s.peer
            );
            return self.fail(key, s, now, Failure::BeforeResponse);
        }
        self.bad_gateway(key, s, now, why)
    }

    fn bad_gateway(
        &mut self,
        key: usize,
        s: &mut Session,
        now: Instant,
        why: &'static str,
    ) -> Step {
        log::warn!("{}: bad response from backend: {why}", s.peer);
        self.gateway_answer(key, s, now, Canned::BadGateway, why)
    }
}

/// Ends a client connection whose answer was cut short. Where the client's framing is the
/// close itself (a chunked answer decoded for an HTTP/1.0 client), an orderly close would pass
/// the truncated body off as complete: the session is aborted (reset) instead.
fn cut_short(abort: &mut bool, reset: bool) -> Step {
    *abort |= reset;
    Step::Close
}
