//! A client connection from accept to close: reading request heads, handing each request to an
//! [`Exchange`], relaying bytes back, tunnelling after an upgrade, and closing politely.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::exchange::{exchange, frame_request, Exchange, Meta, Resp};
use super::ledger::Ledger;
use super::tunnel::{closing, tunnel};
use super::upstream::Upstream;
use super::{rewrite, Conn, Proxy, Timer};
use crate::http::date::DateCache;
use crate::http::framing::BodyKind;
use crate::http::head::{self, Method, Parse, Request, Version, EMPTY_HEADERS};
use crate::http::response::{self, After, Canned};
use crate::net::buffer::Buffer;
use crate::net::io::{self, Io};
use crate::net::outbox::Outbox;
use crate::timer::TimerId;

/// Passes of one session's pump before it yields to the others; it is driven again after the
/// current batch of events, so a fast client cannot starve the rest.
const ROUNDS: usize = 16;

/// Head vectors kept for reuse by new connections.
const VECS_KEPT: usize = 512;
/// A head vector grown past this (by a huge head) goes back to the allocator instead.
const VEC_KEPT_MAX: usize = 16 * 1024;

/// How long a closing connection may take to read its last answer and hang up.
const LINGER: Duration = Duration::from_secs(2);

/// What the session is doing.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for a request head; `started` once a byte of it arrived.
    Head { started: bool },
    /// A request is in flight.
    Exchange(Box<Exchange>),
    /// After `101 Switching Protocols`: raw bytes both ways.
    Tunnel(Box<Upstream>),
    /// The connection is ending.
    Closing(Ending),
}

/// One client connection.
#[derive(Debug)]
pub struct Session {
    /// The client's socket.
    pub sock: TcpStream,
    /// The client's address, for `X-Forwarded-For` and logs.
    pub peer: SocketAddr,
    /// The same address as text, for `X-Forwarded-For`.
    pub client: rewrite::ClientAddr,
    /// Readable since the last `WouldBlock`.
    pub readable: bool,
    /// Writable since the last `WouldBlock`.
    pub writable: bool,
    /// The client hung up (seen in an event): its end of stream is waiting to be read.
    pub hup: bool,
    /// The proxy shut the client's sending side (a tunnel passing the backend's end on).
    pub write_shut: bool,
    /// The client shut its sending side.
    pub eof: bool,
    /// The connection ends abnormally (a side reset, a stream cut short): both sockets are
    /// reset rather than closed, so neither peer takes what it got for the whole.
    pub abort: bool,
    /// Bytes from the client: request heads, and request bodies on their way to a backend.
    pub inbuf: Buffer,
    /// Bytes the proxy itself sends to the client, before any passthrough bytes.
    pub out: Outbox,
    /// How far `find_head_end` has looked into `inbuf`.
    pub scanned: usize,
    /// The rewritten request head, kept until the response begins so a retry can resend it.
    pub reqhead: Vec<u8>,
    /// What it is doing.
    pub phase: Phase,
    /// Its one timer in the wheel.
    pub timer: Option<TimerId>,
    /// When the current wait ends; activity moves it later without touching the wheel.
    pub deadline: Instant,
    /// Requests answered on this connection.
    pub served: u32,
    /// Quick ACKs were turned back on (see [`Session::awaits_client`]).
    pub quick_ack: bool,
    /// A backend connection dropped by [`Session::answer`], waiting to be closed.
    pub orphan: Option<Upstream>,
    /// TCP mode: bytes are relayed untouched, and the proxy never writes HTTP of its own.
    pub raw: bool,
    /// The current request's account.
    pub ledger: Ledger,
    /// A canned answer queued by [`Session::answer`] and why, waiting to be recorded.
    pub answered: Option<(u16, &'static str)>,
    /// The last request's exchange, kept so the next one reuses its allocation.
    pub spare: Option<Box<Exchange>>,
    /// The loop's `Date`, for [`Session::answer`], which is called where the loop is out of
    /// reach.
    pub date: Rc<DateCache>,
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Writing the last answer; then close, or first `linger` when the client may still be
    /// sending (a refused request, a body not read): closing on unread bytes sends a reset
    /// that can destroy the answer before the client reads it.
    Flush { linger: bool },
    /// Half-closed, reading and dropping what the client still sends until it hangs up.
    Lingering,
}

/// The outcome of one piece of work on a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Bytes moved or the state changed: go round again.
    Progress,
    /// Nothing more to do until an event.
    Idle,
    /// Close the connection now.
    Close,
}

impl Step {
    /// The combined outcome of two pieces of work.
    pub fn or(self, other: Step) -> Step {
        match (self, other) {
            (Step::Close, _) | (_, Step::Close) => Step::Close,
            (Step::Progress, _) | (_, Step::Progress) => Step::Progress,
            _ => Step::Idle,
        }
    }
}

/// Whether to keep the session after a drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Open,
    Again,
    Close,
}

impl Session {
    /// A new client connection waiting for its first request head.
    pub fn new(
        sock: TcpStream,
        peer: SocketAddr,
        inbuf: Buffer,
        timer: TimerId,
        deadline: Instant,
        date: Rc<DateCache>,
    ) -> Session {
        Session {
            sock,
            peer,
            client: rewrite::ClientAddr::new(peer.ip()),
            readable: false,
            writable: false,
            hup: false,
            write_shut: false,
            eof: false,
            abort: false,
            inbuf,
            out: Outbox::default(),
            scanned: 0,
            reqhead: Vec::new(),
            phase: Phase::Head { started: false },
            timer: Some(timer),
            deadline,
            served: 0,
            quick_ack: false,
            orphan: None,
            raw: false,
            ledger: Ledger::new(deadline),
            answered: None,
            spare: None,
            date,
        }
    }

    /// Makes this a TCP-mode session: a raw exchange waiting for its backend connection.
    pub fn start_raw(&mut self, now: Instant) {
        self.raw = true;
        self.phase = Phase::Exchange(Box::new(Exchange::raw(now)));
    }

    /// Waiting for a request that has not begun, with nothing buffered either way.
    fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head { started: false })
            && self.inbuf.is_empty()
            && self.out.is_empty()
    }

    /// Whether the session waits for more of a request the client has begun: the rest of a
    /// head, or of a body.
    ///
    /// A connection starts with delayed ACKs (see `listen`), which saves a packet when the
    /// answer follows the request. A client that sends a request in pieces, with Nagle's
    /// algorithm on (the socket default), waits for the ACK of one piece before it sends the
    /// next, so that delay would hold every such request for the kernel's delayed-ACK timer
    /// (40 ms). Quick ACKs go back on for the connection the first time this is true.
    fn awaits_client(&self) -> bool {
        match &self.phase {
            Phase::Head { started } => *started && !self.inbuf.is_empty(),
            Phase::Exchange(ex) => !ex.body.is_done() && ex.body_framed == self.inbuf.len(),
            Phase::Tunnel(_) | Phase::Closing(_) => false,
        }
    }

    /// The backend connection it holds, if any.
    pub fn upstream_mut(&mut self) -> Option<&mut Upstream> {
        match &mut self.phase {
            Phase::Exchange(ex) => ex.up.as_mut(),
            Phase::Tunnel(up) => Some(up),
            _ => None,
        }
    }

    /// Queues a canned answer, dated now, and moves to closing. A backend connection the
    /// session held is set aside in `orphan`, for the loop to close: the session cannot reach
    /// the slab.
    ///
    /// The answer to a HEAD has no body (RFC 9110 §9.3.2). The method is the exchange's once
    /// a head was parsed; before that (a head refused, or timed out) it is read from the
    /// buffered request line, so a HEAD refused for a missing `Host` still gets no body. When
    /// even that is unknown the body is sent: the answer closes the connection, so a client
    /// reading to the end cannot mistake it for the start of another answer.
    pub fn answer(&mut self, canned: Canned, why: &'static str) {
        if !self.raw {
            let head_only = match &self.phase {
                Phase::Exchange(ex) => ex.meta.method == Method::Head,
                Phase::Head { .. } => response::is_head_request(self.inbuf.data()),
                Phase::Tunnel(_) | Phase::Closing(_) => false,
            };
            canned.write(self.out.vec(), &self.date.bytes(), head_only);
            self.answered = Some((canned.status(), why));
        }
        self.close_after_answer();
    }

    /// Moves to closing once an answer of the session's own is queued. A backend connection
    /// the session held is set aside in `orphan`, for the loop to close.
    fn close_after_answer(&mut self) {
        let old = std::mem::replace(
            &mut self.phase,
            Phase::Closing(Ending::Flush { linger: true }),
        );
        self.orphan = match old {
            Phase::Exchange(ex) => ex.up,
            Phase::Tunnel(up) => Some(*up),
            _ => None,
        };
    }
}

impl Proxy {
    /// Does all the work a session can do now.
    pub(super) fn drive(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Conn::Client(mut s) = std::mem::replace(slot, Conn::Busy) else {
            return;
        };
        if s.inbuf.is_detached() {
            s.inbuf = if s.raw {
                self.bufs.take()
            } else {
                self.heads.take()
            };
        }
        let flow = self.pump(key, &mut s);
        if flow == Flow::Open && s.is_idle() {
            // Between requests a keep-alive connection holds no buffer: 10 000 idle clients
            // cost their sessions, not 10 000 buffers.
            let buf = std::mem::replace(&mut s.inbuf, Buffer::detached());
            self.give_buf(buf);
        }
        match flow {
            Flow::Open => self.conns[key] = Conn::Client(s),
            Flow::Again => {
                self.conns[key] = Conn::Client(s);
                self.again.push(key);
            }
            Flow::Close => self.close_session(key, s),
        }
    }

    fn pump(&mut self, key: usize, s: &mut Session) -> Flow {
        let now = self.now;
        for _ in 0..ROUNDS {
            let read = read_client(s);
            let work = match s.phase {
                Phase::Head { .. } => self.on_head(key, s, now),
                Phase::Exchange(_) => self.on_exchange(key, s, now),
                Phase::Tunnel(_) => tunnel(s, now, self.cfg.idle_timeout),
                Phase::Closing(_) => closing(s),
            };
            if let Some(up) = s.orphan.take() {
                self.release(up, false);
            }
            let answered = s.answered.take();
            if let Some(answer) = answered {
                self.record_answer(s, answer, now);
            }
            if answered.is_some() || s.timer.is_none() {
                // An answer of the proxy's own gets a short while to reach the client, whatever
                // the session waited for before; so does whatever follows a deadline that
                // fired and set no new one (it left the session without a timer).
                s.deadline = now + LINGER;
                self.arm(key, &mut s.timer, s.deadline);
            }
            if !s.quick_ack && !s.raw && s.awaits_client() {
                s.quick_ack = true;
                // Best effort: at worst the next piece waits for the delayed ACK.
                let _ = socket2::SockRef::from(&s.sock).set_tcp_quickack(true);
            }
            match read.or(work).or(write_client(s)) {
                Step::Close => return Flow::Close,
                Step::Idle => return Flow::Open,
                Step::Progress => {}
            }
        }
        Flow::Again
    }

    /// Waits for, parses and dispatches one request head.
    fn on_head(&mut self, key: usize, s: &mut Session, now: Instant) -> Step {
        let Phase::Head { started } = &mut s.phase else {
            return Step::Idle;
        };
        // Empty lines before a request line are dropped (RFC 9112 §2.2), so that they are
        // never taken for the end of a head, nor fill the buffer a head needs.
        let empty = s.inbuf.len() - head::after_empty_lines(s.inbuf.data()).len();
        if empty > 0 {
            s.inbuf.consume(empty);
            s.scanned = 0;
        }
        if s.inbuf.is_empty() {
            return if s.eof { Step::Close } else { Step::Idle };
        }
        if !*started {
            *started = true;
            self.lend_vecs(s);
            s.ledger = Ledger::new(now);
            if s.served > 0 {
                s.deadline = now + self.cfg.head_timeout;
                self.arm(key, &mut s.timer, s.deadline);
            }
        }
        let max_head = self.cfg.max_head;
        let data = s.inbuf.data();
        if head::find_head_end(data, s.scanned).is_none() {
            return self.head_incomplete(s);
        }
        let mut headers = EMPTY_HEADERS;
        let req = match head::parse_request(data, &mut headers, max_head) {
            Ok(Parse::Complete(req)) => req,
            Ok(Parse::Partial) => return self.head_incomplete(s),
            Err(head::HeadError::TooLarge) => {
                too_large(s, max_head);
                return Step::Progress;
            }
            Err(e) => {
                refuse(s, e);
                return Step::Progress;
            }
        };
        if req.method == Method::Connect {
            s.answer(Canned::NotImplemented, "CONNECT is not proxied");
            return Step::Progress;
        }
        if matches!(req.method, Method::Options | Method::Trace)
            && req.fields.max_forwards == Some(0)
        {
            let date = s.date.bytes();
            last_hop(s.out.vec(), &mut s.reqhead, &req, &date);
            s.answered = Some((200, "Max-Forwards reached 0"));
            s.close_after_answer();
            return Step::Progress;
        }
        if req.fields.expect_other {
            // RFC 9110 §10.1.1: an expectation nobody here can meet. Neither the proxy nor a
            // backend behind it knows any but 100-continue, so the answer is the proxy's.
            s.answer(Canned::ExpectationFailed, "unsupported expectation");
            return Step::Progress;
        }
        s.reqhead.clear();
        rewrite::request_head(&mut s.reqhead, &req, &s.client);
        let meta = Meta::of(&req, s.reqhead.len());
        let body = req.body;
        let head_len = req.head_len;
        let has_body = body != BodyKind::Empty;
        s.ledger.parsed = true;
        s.ledger.bytes_in += head_len as u64;
        s.inbuf.consume(head_len);
        s.scanned = 0;
        // A body still to come (or a tunnel) moves through a relay buffer; one that arrived
        // whole with its head, as most small POSTs do, is sent from the head buffer.
        let body_here = matches!(body, BodyKind::Length(n) if n <= s.inbuf.len() as u64);
        let room_needed = meta.upgrade || (has_body && !body_here);
        if room_needed && s.inbuf.capacity() < self.cfg.buffer_size {
            self.grow(&mut s.inbuf);
        }
        let ex = match s.spare.take() {
            Some(mut b) => {
                *b = Exchange::new(meta, body, now);
                b
            }
            None => Box::new(Exchange::new(meta, body, now)),
        };
        s.phase = Phase::Exchange(ex);
        self.attach(key, s, now, None)
    }

    /// A head that has not all arrived: refused early if its bytes already show it is bad,
    /// else room made for the rest of it, or an answer when it cannot fit.
    fn head_incomplete(&mut self, s: &mut Session) -> Step {
        let max_head = self.cfg.max_head;
        let data = s.inbuf.data();
        // Bytes that can never start a valid head (a TLS handshake, a bad field line) are
        // refused now rather than at the head deadline. The partial head is parsed again
        // only on its first bytes and when a line was completed: a head that trickles in
        // costs a parse per line (at most MAX_HEADERS of them), not per byte.
        let fresh = &data[s.scanned.min(data.len())..];
        if s.scanned == 0 || fresh.contains(&b'\n') {
            let window = &data[..data.len().min(max_head)];
            if let Err(e) = head::check_partial_request(window) {
                refuse(s, e);
                return Step::Progress;
            }
        }
        s.scanned = data.len();
        if s.inbuf.is_full() && data.len() < max_head && self.grow(&mut s.inbuf) {
            return Step::Progress; // a long head: room to read the rest of it
        }
        let data = s.inbuf.data();
        if data.len() >= max_head {
            too_large(s, max_head);
            return Step::Progress;
        }
        if s.eof {
            Step::Close
        } else if s.readable && !s.inbuf.is_full() {
            // Bytes this loop has not read yet may hold the rest (the buffer had filled, and
            // room was made since): read on, for no new readiness will announce them.
            Step::Progress
        } else {
            Step::Idle
        }
    }

    /// Ends a request: the backend connection back to its pool or closed, the client
    /// connection back to waiting for a head or closing.
    pub(super) fn finish(&mut self, key: usize, s: &mut Session, now: Instant, close_client: bool) {
        self.record(s, None, now);
        self.settle(key, s, now, close_client);
    }

    /// Answers, by itself, a request no backend answered (502, 503, 504). When the whole
    /// request has been read and nothing of an answer has gone out yet, the client connection
    /// stays open for its next request, as it would after a backend's answer: the request's
    /// body is dropped from the buffer, so what follows it is read as the next head, framed by
    /// the same rules as when the body is forwarded. Otherwise, as after any canned answer, it
    /// closes: where the next request would start is not known.
    pub(super) fn gateway_answer(
        &mut self,
        key: usize,
        s: &mut Session,
        now: Instant,
        canned: Canned,
        why: &'static str,
    ) -> Step {
        if exchange(s).is_some_and(|ex| !ex.body.is_done() && matches!(ex.resp, Resp::Head)) {
            // A body that arrived with the head has not been framed yet when no backend was
            // found for it.
            match frame_request(s) {
                Step::Close => return Step::Close,
                _ if exchange(s).is_none() => return Step::Progress, // a bad body: 400
                _ => {}
            }
        }
        let Phase::Exchange(ex) = &mut s.phase else {
            return Step::Close;
        };
        let keep = ex.meta.keep_alive
            && ex.body.is_done()
            && matches!(ex.resp, Resp::Head)
            && ex.queued.is_none()
            && self.draining.is_none();
        if !keep {
            s.answer(canned, why);
            return Step::Progress;
        }
        s.inbuf.consume(ex.body_framed);
        ex.body_framed = 0;
        ex.body_sent = 0;
        s.scanned = 0;
        let after = match ex.meta.version {
            Version::Http10 => After::KeepHttp10,
            Version::Http11 => After::Keep,
        };
        let head_only = ex.meta.method == Method::Head;
        canned.write_then(s.out.vec(), &self.date.bytes(), head_only, after);
        self.record_answer(s, (canned.status(), why), now);
        // A client that half-closed gets the answers to what it sent before, then the end.
        let close = s.eof && s.inbuf.is_empty();
        self.settle(key, s, now, close);
        Step::Progress
    }

    /// After a request's answer: the backend connection back to its pool or closed, the
    /// client connection back to waiting for a head, or closing.
    fn settle(&mut self, key: usize, s: &mut Session, now: Instant, close_client: bool) {
        let phase = std::mem::replace(&mut s.phase, Phase::Head { started: false });
        if let Phase::Exchange(mut ex) = phase {
            let request_done = ex.body.is_done();
            let reuse = matches!(ex.resp, Resp::Body { reuse: true, .. }) && request_done;
            if let Some(up) = ex.up.take() {
                self.release(up, reuse);
            }
            s.spare = Some(ex);
            if close_client || !request_done || self.draining.is_some() {
                // Linger only when the client may still be sending.
                let linger = !request_done || !s.inbuf.is_empty();
                s.phase = Phase::Closing(Ending::Flush { linger });
                s.deadline = now + LINGER;
                self.arm(key, &mut s.timer, s.deadline);
                return;
            }
        }
        s.served += 1;
        s.deadline = now + self.cfg.idle_timeout;
        self.arm(key, &mut s.timer, s.deadline);
        // An idle keep-alive connection holds no head vectors: the next head takes them back.
        if s.out.is_empty() {
            let out = std::mem::take(s.out.vec());
            self.give_vec(out);
            let reqhead = std::mem::take(&mut s.reqhead);
            self.give_vec(reqhead);
        }
    }

    /// Gives a session the vectors a request needs (its rewritten head, the bytes queued for
    /// the client), from the loop's pool: a session holds them only while it has work.
    pub(super) fn lend_vecs(&mut self, s: &mut Session) {
        if s.reqhead.capacity() == 0 {
            s.reqhead = self.vecs.pop().unwrap_or_default();
        }
        if s.out.vec().capacity() == 0 {
            *s.out.vec() = self.vecs.pop().unwrap_or_default();
        }
    }

    /// Keeps a vector for the next session that needs one, within bounds.
    fn give_vec(&mut self, mut v: Vec<u8>) {
        if v.capacity() > 0 && self.vecs.len() < VECS_KEPT && v.capacity() <= VEC_KEPT_MAX {
            v.clear();
            self.vecs.push(v);
        }
    }

    /// Parks a backend connection for reuse, or closes it.
    pub(super) fn release(&mut self, mut up: Upstream, reuse: bool) {
        if !up.followers.is_empty() {
            // Others wait on this connection: the next takes it, or all are sent again.
            if reuse && !up.eof && !up.dirty {
                match self.hand_on(up) {
                    None => return,
                    Some(back) => up = back,
                }
            }
            self.bounce(&mut up);
        }
        let key = up.key;
        if let Some(n) = self.inflight.get_mut(up.backend) {
            *n = n.saturating_sub(1);
        }
        let retired = self.retired.get(up.backend).copied().unwrap_or(true);
        let reusable = reuse && !retired && !up.eof && !up.dirty && up.inbuf.is_empty();
        if reusable && self.pools[up.backend].park(key, self.cfg.pool_size) {
            up.reused = true;
            // A parked connection needs no buffer until it is used again.
            let buf = std::mem::replace(&mut up.inbuf, Buffer::detached());
            self.give_buf(buf);
            self.conns[key] = Conn::Pooled(up);
            return;
        }
        self.conns.try_remove(key);
        self.give_buf(up.inbuf);
    }

    /// Closes an idle session (a drain does this to keep-alive connections between requests).
    pub(super) fn close_idle(&mut self, key: usize) {
        if let Some(Conn::Client(_)) = self.conns.get(key) {
            if let Conn::Client(s) = std::mem::replace(&mut self.conns[key], Conn::Busy) {
                self.close_session(key, s);
            }
        }
    }

    fn close_session(&mut self, key: usize, mut s: Box<Session>) {
        if let Some(id) = s.timer.take() {
            self.timers.cancel(id);
        }
        if let Some(up) = s.orphan.take() {
            self.release(up, false);
        }
        if s.abort {
            io::reset_on_close(&s.sock);
        }
        let up = match std::mem::replace(&mut s.phase, Phase::Closing(Ending::Lingering)) {
            Phase::Exchange(ex) => ex.up,
            Phase::Tunnel(up) => Some(*up),
            _ => None,
        };
        if let Some(up) = up {
            if s.abort {
                io::reset_on_close(&up.sock);
            }
            self.release(up, false);
        }
        self.conns.try_remove(key);
        if s.raw || s.ledger.status == 101 {
            // Tunnels count their bytes when they end.
            self.metrics
                .record_bytes(s.ledger.bytes_in, s.ledger.bytes_out);
        }
        let Session {
            inbuf,
            reqhead,
            out,
            ..
        } = *s;
        self.give_buf(inbuf);
        self.give_vec(reqhead);
        self.give_vec(out.into_vec());
        self.clients = self.clients.saturating_sub(1);
        self.resume_accept();
    }

    /// A session's deadline passed (or was moved later, then it waits on).
    pub(super) fn on_deadline(&mut self, key: usize, id: TimerId, now: Instant) {
        let Some(Conn::Client(s)) = self.conns.get_mut(key) else {
            return;
        };
        if s.timer != Some(id) {
            return;
        }
        if now < s.deadline {
            // Activity moved the deadline on; the timer that fired is gone from the wheel, so
            // a new one waits for the rest.
            let deadline = s.deadline;
            s.timer = Some(self.timers.insert(deadline, Timer::Session(key)));
            return;
        }
        s.timer = None;
        let Conn::Client(mut s) = std::mem::replace(&mut self.conns[key], Conn::Busy) else {
            return;
        };
        let keep = match &s.phase {
            Phase::Head { started } => {
                // A connection that never sent a byte of this head (a preconnect, a port
                // scan, an idle keep-alive) is closed without a word, as nginx does: a 408 to
                // a client that asked nothing would be read as the answer to its next request.
                // Empty lines before a request line count as nothing (RFC 9112 §2.2).
                let asked = !head::after_empty_lines(s.inbuf.data()).is_empty();
                if *started && asked {
                    s.answer(Canned::RequestTimeout, "request head timed out");
                    true
                } else {
                    false
                }
            }
            Phase::Exchange(_) => self.exchange_timeout(key, &mut s, now),
            Phase::Tunnel(up) => {
                // Idle with bytes still in flight (a side that stopped reading): cut, not
                // ended.
                s.abort = !s.inbuf.is_empty() || !up.inbuf.is_empty();
                false
            }
            Phase::Closing(_) => false,
        };
        if keep {
            self.conns[key] = Conn::Client(s);
            self.drive(key);
        } else {
            self.close_session(key, s);
        }
    }
}

/// Answers, as the last hop, an OPTIONS or TRACE whose `Max-Forwards` reached 0 (RFC 9110
/// §7.6.2). OPTIONS learns what the proxy forwards; TRACE gets its own head back as
/// `message/http` (RFC 9110 §9.3.8), less the fields likely to carry credentials. `scratch`
/// holds the echo while its length goes into the head. The connection closes after it, as
/// after a canned answer.
fn last_hop(out: &mut Vec<u8>, scratch: &mut Vec<u8>, req: &Request<'_, '_>, date: &[u8]) {
    if req.method == Method::Trace {
        scratch.clear();
        rewrite::trace_echo(scratch, req);
        let fields: &[(&str, &[u8])] = &[("Content-Type", b"message/http")];
        response::write_head(out, 200, date, fields, scratch.len(), true);
        out.extend_from_slice(scratch);
    } else {
        let fields: &[(&str, &[u8])] = &[("Allow", response::PROXY_ALLOW)];
        response::write_head(out, 200, date, fields, 0, true);
    }
}

/// Answers a head over the cap: 414 when the request line alone leaves no room in it, not even
/// for the empty line that ends the head (RFC 9110 §15.5.15), else 431.
fn too_large(s: &mut Session, max_head: usize) {
    let line = s.inbuf.data().iter().position(|&b| b == b'\n');
    if line.is_some_and(|i| i + 3 <= max_head) {
        s.answer(Canned::HeaderFieldsTooLarge, "request head too large");
    } else {
        s.answer(Canned::UriTooLong, "request line too long");
    }
}

/// Answers a request head that cannot be served with the status its error calls for.
fn refuse(s: &mut Session, e: head::HeadError) {
    log::debug!("{}: bad request: {e}", s.peer);
    let canned = Canned::for_status(e.status()).unwrap_or(Canned::BadRequest);
    s.answer(canned, e.as_str());
}

/// Reads from the client while it has bytes and there is room for them.
fn read_client(s: &mut Session) -> Step {
    if !s.readable || s.eof || s.inbuf.is_full() {
        return Step::Idle;
    }
    let room = s.inbuf.space().len();
    match io::read(&mut s.sock, s.inbuf.space()) {
        Io::Progress(n) => {
            s.inbuf.commit(n);
            s.readable = io::still_readable(n, room, s.hup);
            if let Phase::Closing(Ending::Lingering) = s.phase {
                s.inbuf.clear(); // lingering: what the client still sends is dropped
            }
            Step::Progress
        }
        Io::WouldBlock => {
            s.readable = false;
            Step::Idle
        }
        Io::Closed => {
            s.eof = true;
            Step::Progress
        }
        Io::Failed(_) => abort(s),
    }
}

/// Ends the session abnormally (see [`Session::abort`]).
pub(super) fn abort(s: &mut Session) -> Step {
    s.abort = true;
    Step::Close
}

/// Writes what the proxy has for the client, then body bytes passing through from a backend.
fn write_client(s: &mut Session) -> Step {
    let mut step = Step::Idle;
    while s.writable {
        // What the proxy wrote itself (a response head, say), then the body bytes passing
        // through after it, in one system call.
        let through: &[u8] = match &s.phase {
            Phase::Exchange(ex) => match (&ex.resp, &ex.up) {
                (Resp::Body { framed, .. }, Some(up)) => &up.inbuf.data()[..*framed],
                _ => &[],
            },
            Phase::Tunnel(up) => up.inbuf.data(),
            _ => &[],
        };
        let own = s.out.data();
        if own.is_empty() && through.is_empty() {
            break;
        }
        let wanted = own.len() + through.len();
        match io::write_pair(&mut s.sock, own, through) {
            Io::Progress(n) => {
                step = Step::Progress;
                s.ledger.bytes_out += n as u64;
                let from_out = n.min(s.out.len());
                s.out.consume(from_out);
                if n > from_out {
                    passed_through(s, n - from_out);
                }
                s.writable = n == wanted;
            }
            Io::WouldBlock => s.writable = false,
            Io::Closed | Io::Failed(_) => return abort(s),
        }
    }
    step
}

/// `n` bytes of the backend's buffer reached the client.
fn passed_through(s: &mut Session, n: usize) {
    match &mut s.phase {
        Phase::Exchange(ex) => {
            if let (Resp::Body { framed, .. }, Some(up)) = (&mut ex.resp, &mut ex.up) {
                *framed -= n;
                up.inbuf.consume(n);
            }
        }
        Phase::Tunnel(up) => up.inbuf.consume(n),
        _ => {}
    }
}
