//! One request and its response: what the proxy keeps of a request, the step that moves it
//! along, and the request side of it (the body framed in the client's buffer and sent from
//! there with the rewritten head). Choosing a backend and retrying are in `dial`; the response
//! is in `respond`.

use std::time::Instant;

use super::dial::Failure;
use super::session::{Phase, Session, Step};
use super::upstream::{self, Link, Upstream};
use super::Proxy;
use crate::http::framing::{BodyDecoder, BodyKind};
use crate::http::head::{Method, Request, Version};
use crate::http::response::Canned;
use crate::net::io::{self, Io};

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
    /// The request is conditional, so its answer may be a 304.
    pub conditional: bool,
    /// The request has no `Host` and no absolute-form target to take one from (HTTP/1.0):
    /// the backend's name is sent instead.
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
            needs_host: req.fields.hosts == 0 && req.authority.is_none(),
            head_base,
            raw: false,
            method: req.method,
            version: req.version,
            keep_alive: req.keep_alive(),
            expect_continue: req.expects_continue(),
            upgrade: req.is_upgrade(),
            conditional: req.fields.conditional,
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
    /// The send waits for the end of the batch of events (see `pipeline`).
    pub held: bool,
    /// Sent on another request's backend connection (this key), waiting for its turn.
    pub queued: Option<usize>,
    /// Taken out of a pipeline that broke before its turn: to be sent again.
    pub requeue: bool,
    /// How many times it waited in a pipeline (bounded, then it goes alone).
    pub follows: u8,
    /// Its connection was handed on from the request before it in a pipeline.
    pub handed: bool,
    /// Interim (1xx) answers passed on so far: bounded, see `respond`.
    pub interim: u8,
}

impl Exchange {
    /// A TCP-mode exchange: only a backend to dial.
    pub fn raw(now: Instant) -> Exchange {
        let meta = Meta {
            method: Method::Other,
            version: Version::Http11,
            keep_alive: false,
            expect_continue: false,
            upgrade: false,
            conditional: false,
            needs_host: false,
            head_base: 0,
            raw: true,
        };
        Exchange::new(meta, BodyKind::Empty, now)
    }

    /// A request whose head has been read, with a body of `body`.
    pub fn new(meta: Meta, body: BodyKind, now: Instant) -> Exchange {
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
            started: now,
            resp: Resp::Head,
            held: false,
            queued: None,
            requeue: false,
            follows: 0,
            handed: false,
            interim: 0,
        }
    }
}

/// The exchange a session is running, if it is running one.
pub(super) fn exchange(s: &mut Session) -> Option<&mut Exchange> {
    match &mut s.phase {
        Phase::Exchange(ex) => Some(ex),
        _ => None,
    }
}

impl Proxy {
    /// All the work a request in flight can do now.
    pub(super) fn on_exchange(&mut self, key: usize, s: &mut Session, now: Instant) -> Step {
        if let Some(ex) = exchange(s) {
            if ex.queued.is_some() {
                return Step::Idle; // the session ahead of it has the connection
            }
            if ex.requeue {
                ex.requeue = false;
                return self.attach(key, s, now, None);
            }
        }
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
        // A backend connection takes a relay buffer when it has bytes (or its end) to read:
        // a request waiting on a slow backend holds none. It keeps it only if the answer needs
        // it: an answer whose first read fits a head buffer moves into one, so thousands of
        // small answers in flight hold 4 KiB each, not a relay buffer each; a head buffer that
        // fills up grows back.
        let mut first_read = false;
        if let Some(up) = exchange(s).and_then(|ex| ex.up.as_mut()) {
            if up.readable && up.inbuf.is_detached() {
                up.inbuf = self.bufs.take();
                first_read = true;
            } else if up.readable
                && up.inbuf.is_full()
                && up.inbuf.capacity() < self.cfg.buffer_size
            {
                self.grow(&mut up.inbuf);
            }
        }
        step = step.or(read_backend(s));
        if first_read {
            if let Some(up) = exchange(s).and_then(|ex| ex.up.as_mut()) {
                self.shrink(&mut up.inbuf);
            }
        }
        // Progress either way moves the backend's deadline on, except the bytes of a response
        // head: those have one deadline for the whole head (`response_head` moves it when a
        // head is whole), or a backend sending one byte at a time could hold the client for
        // as long as it likes.
        let head_begun = exchange(s).is_some_and(|ex| {
            matches!(ex.resp, Resp::Head) && ex.up.as_ref().is_some_and(|u| !u.inbuf.is_empty())
        });
        if step == Step::Progress && !head_begun {
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
}

/// Extends the known request body over what the client has sent.
pub(super) fn frame_request(s: &mut Session) -> Step {
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
    if ex.held
        || up.link != Link::Open
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
            Io::Failed(e) if upstream::is_reset(&e) => {
                up.reset = true;
                up.closed_first = upstream::closed_first(&e);
                return Err(());
            }
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
        Io::Closed => {
            up.eof = true;
            Step::Progress
        }
        Io::Failed(e) => {
            up.eof = true;
            up.reset = upstream::is_reset(&e);
            up.closed_first = upstream::closed_first(&e);
            Step::Progress
        }
    }
}
