//! One client connection: its buffers, where it stands in the request it is serving, and the
//! handlers the event loop calls on readiness and on timers.
//!
//! A connection serves its requests strictly one after the other: while an answer is held back
//! by a delay, later pipelined requests wait in the input buffer, so answers leave in request
//! order without a queue of them. All answers found in one read are written with one write.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;

use super::behaviour::Behaviour;
use super::reply::{self, Reply};
use super::request::{self, HeadStep, Pending, Persist, Route};
use crate::http::framing::{BodyDecoder, BodyError, BodyKind};
use crate::http::head::find_head_end;
use crate::http::response::CONTINUE;
use crate::net::buffer::Buffer;
use crate::net::io::{self as sockio, Io};
use crate::timer::{TimerId, TimerWheel};

/// First size of a connection's input buffer: heads are usually a few hundred bytes. It grows
/// (by four) up to `--max-head` only for a client that sends a larger head.
const INITIAL_INPUT: usize = 8 * 1024;
/// New requests are not started while this many answer bytes wait for the client to read
/// them, so a pipelining client that never reads is held back instead of buffered without end.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Body and output capacity kept between requests; more is freed, so one large echo does not
/// pin megabytes to a connection that then sits idle.
const RETAIN: usize = 64 * 1024;
/// Reads one turn may do for one connection before the others get theirs; a client streaming
/// a large body must not starve the rest of the loop.
const READ_BUDGET: usize = 64;
/// How long, at most, to wait for the client to close after the last answer, reading and
/// dropping what it still sends, so that closing with unread input (which sends RST) does not
/// destroy the answer before the client reads it.
const LINGER: Duration = Duration::from_secs(2);
/// How refused requests end: `Connection: close`, whatever the client asked for.
const REFUSED: Pending = Pending {
    route: Route::NotFound,
    head_only: false,
    persist: Persist::Close,
};

/// What a timer in the loop's wheel is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// The connection with this key may have passed its deadline.
    Deadline(usize),
    /// The held-back answer of the connection with this key may go out.
    Delay(usize),
    /// Accepting failed for lack of resources; try again.
    AcceptRetry,
}

/// Settings every connection shares.
#[derive(Debug)]
pub struct Limits {
    /// Cap on a request head.
    pub max_head: usize,
    /// Cap on a request body.
    pub max_body: usize,
    /// Time allowed for a head, and for each stretch of body or write progress.
    pub timeout: Duration,
    /// Sent as `X-Echo-Instance`.
    pub name: Box<str>,
}

/// What the handlers need from the loop: the time of this turn and the shared state.
pub struct Shared<'a> {
    /// Read once per turn by the loop; handlers never read the clock.
    pub now: Instant,
    /// Every deadline of the loop.
    pub wheel: &'a mut TimerWheel<Due>,
    /// The misbehaviour settings and generator.
    pub behaviour: &'a mut Behaviour,
    /// Shared limits.
    pub limits: &'a Limits,
}

/// What the loop should do with a connection after a handler ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing until its next event or timer.
    Wait,
    /// It stopped on its read budget with input still waiting: call [`Conn::pump`] next turn.
    Again,
    /// Remove it.
    Close,
}

/// Where the connection stands; one variant per stage, holding what that stage needs.
#[derive(Debug)]
enum Phase {
    /// Waiting for a request head; `scanned` bytes of input were already searched for its end.
    Head { scanned: usize },
    /// Collecting the body of `req`.
    Body { req: Pending, decoder: BodyDecoder },
    /// The answer to `req` is decided and held back until `timer` fires.
    Delayed {
        timer: TimerId,
        req: Pending,
        reply: Reply,
    },
    /// The last answer is queued; once written, the write side is shut.
    Closing,
    /// The write side is shut; input is read and dropped until the client closes.
    Lingering,
    /// Done; the loop removes it.
    Closed,
}

/// Readiness as last reported, cleared only when the socket says it would block, as
/// edge-triggered events are not repeated.
#[derive(Debug, Default)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// The client's FIN was reported: a short read no longer proves the socket is drained.
    read_closed: bool,
}

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    /// Slab key and token; timers name the connection by it.
    key: usize,
    stream: TcpStream,
    phase: Phase,
    /// Bytes read and not yet consumed: heads, body bytes, pipelined requests.
    input: Buffer,
    /// The body of the current request, bounded by `--max-body`.
    body: Vec<u8>,
    /// Answers waiting to be written; `written` bytes of it already were.
    out: Vec<u8>,
    written: usize,
    ready: Readiness,
    /// The client closed its side; no more requests will come.
    eof: bool,
    /// Requests answered, so a timeout knows whether this is still the first.
    served: u64,
    /// When the current wait (head, body progress, write progress, linger) runs out.
    deadline: Instant,
    /// The armed deadline timer and when it fires; it may fire before `deadline`, which is
    /// then re-armed, so pushing the deadline back costs nothing per request.
    timer: Option<(TimerId, Instant)>,
}

impl Conn {
    /// A freshly accepted connection, waiting for its first head.
    pub fn new(key: usize, stream: TcpStream, now: Instant, limits: &Limits) -> Conn {
        Conn {
            key,
            stream,
            phase: Phase::Head { scanned: 0 },
            input: Buffer::with_capacity(INITIAL_INPUT.min(limits.max_head)),
            body: Vec::new(),
            out: Vec::new(),
            written: 0,
            ready: Readiness::default(),
            eof: false,
            served: 0,
            deadline: now + limits.timeout,
            timer: None,
        }
    }

    /// Readiness reported by the poll.
    pub fn on_event(&mut self, ev: &Event, sh: &mut Shared<'_>) -> Next {
        self.ready.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
        self.ready.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
        self.ready.read_closed |= ev.is_read_closed();
        self.pump(sh)
    }

    /// The deadline timer `id` fired.
    pub fn on_deadline(&mut self, id: TimerId, sh: &mut Shared<'_>) -> Next {
        if self.timer.map(|(t, _)| t) != Some(id) {
            return Next::Wait;
        }
        self.timer = None;
        if sh.now < self.deadline {
            self.arm(sh);
            return Next::Wait;
        }
        self.expire(sh);
        self.pump(sh)
    }

    /// The delay timer `id` fired: the held-back answer goes out, and the requests behind it
    /// are served.
    pub fn on_delay(&mut self, id: TimerId, sh: &mut Shared<'_>) -> Next {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Delayed { timer, req, reply } if timer == id => {
                self.emit(req, &reply, sh);
                self.pump(sh)
            }
            other => {
                self.phase = other;
                Next::Wait
            }
        }
    }

    /// Serves what is buffered, writes, and reads, until the socket would block or the read
    /// budget is spent.
    pub fn pump(&mut self, sh: &mut Shared<'_>) -> Next {
        let mut budget = READ_BUDGET;
        loop {
            self.process(sh);
            self.flush(sh);
            if matches!(self.phase, Phase::Closed) {
                return Next::Close;
            }
            if !self.ready.readable || !self.wants_input(sh.limits) {
                break;
            }
            if budget == 0 {
                self.arm(sh);
                return Next::Again;
            }
            budget -= 1;
            self.fill(sh.limits);
        }
        self.arm(sh);
        Next::Wait
    }

    /// Releases what the connection holds in the loop: its timers and its registration.
    pub fn close(mut self, registry: &mio::Registry, wheel: &mut TimerWheel<Due>) {
        if let Some((id, _)) = self.timer {
            wheel.cancel(id);
        }
        if let Phase::Delayed { timer, .. } = self.phase {
            wheel.cancel(timer);
        }
        // Dropping the stream closes it, which also removes it from the poll; deregistering
        // first only makes that explicit.
        let _ = registry.deregister(&mut self.stream);
    }

    /// Handles buffered input for as long as it moves the connection on.
    fn process(&mut self, sh: &mut Shared<'_>) {
        loop {
            let moved = match self.phase {
                Phase::Head { .. } => self.on_head(sh),
                Phase::Body { .. } => self.on_body(sh),
                Phase::Lingering => {
                    self.input.clear();
                    if self.eof {
                        self.phase = Phase::Closed;
                    }
                    false
                }
                Phase::Delayed { .. } | Phase::Closing | Phase::Closed => false,
            };
            if !moved {
                return;
            }
        }
    }

    /// Looks for a whole head; true if the phase changed.
    fn on_head(&mut self, sh: &mut Shared<'_>) -> bool {
        let Phase::Head { scanned } = self.phase else {
            return false;
        };
        if self.out.len() - self.written > OUT_HIGH_WATER {
            return false;
        }
        let data = self.input.data();
        let max = sh.limits.max_head;
        // Parse only once the end is in sight, so a head that trickles in is scanned once.
        let whole = find_head_end(data, scanned).is_some() || data.len() >= max;
        let step = if whole {
            request::read_head(data, max)
        } else {
            HeadStep::Partial
        };
        match step {
            HeadStep::Partial if self.eof => self.phase = Phase::Closing,
            HeadStep::Partial => {
                self.phase = Phase::Head {
                    scanned: data.len(),
                };
                return false;
            }
            HeadStep::Bad(e) => self.refuse(e.status(), e.as_str(), sh),
            HeadStep::Ready(head) => {
                self.input.consume(head.head_len);
                if matches!(head.body, BodyKind::Length(n) if n > sh.limits.max_body as u64) {
                    self.refuse(413, "body larger than the limit", sh);
                    return true;
                }
                if head.expect_continue {
                    self.out.extend_from_slice(CONTINUE);
                }
                self.body.clear();
                self.deadline = sh.now + sh.limits.timeout;
                self.phase = Phase::Body {
                    req: head.pending,
                    decoder: BodyDecoder::new(head.body),
                };
            }
        }
        true
    }

    /// Moves body bytes out of the input; true if the phase changed.
    fn on_body(&mut self, sh: &mut Shared<'_>) -> bool {
        let Conn {
            phase, input, body, ..
        } = self;
        let Phase::Body { req, decoder } = phase else {
            return false;
        };
        let req = *req;
        let collected = collect(decoder, input, body, sh.limits.max_body);
        let done = decoder.is_done();
        match collected {
            Err(Refusal::TooLarge) => self.refuse(413, "body larger than the limit", sh),
            Err(Refusal::Framing(e)) => self.refuse(400, &e.to_string(), sh),
            Ok(_) if done => self.complete(req, sh),
            Ok(_) if self.eof => self.phase = Phase::Closing,
            Ok(moved) => {
                if moved > 0 {
                    self.deadline = sh.now + sh.limits.timeout;
                }
                return false;
            }
        }
        true
    }

    /// The request is whole: decide its answer, and write it now or hold it back.
    fn complete(&mut self, req: Pending, sh: &mut Shared<'_>) {
        self.served += 1;
        let (reply, delay) = reply::answer(req.route, &self.body, sh.behaviour, &sh.limits.name);
        if delay.is_zero() {
            self.emit(req, &reply, sh);
        } else {
            let timer = sh.wheel.insert(sh.now + delay, Due::Delay(self.key));
            self.phase = Phase::Delayed { timer, req, reply };
        }
    }

    /// Queues the answer and moves on to the next request, or to closing.
    fn emit(&mut self, req: Pending, reply: &Reply, sh: &Shared<'_>) {
        reply::write(
            &mut self.out,
            reply,
            req,
            &self.body,
            sh.limits.name.as_bytes(),
        );
        if self.body.capacity() > RETAIN {
            self.body = Vec::new();
        }
        self.body.clear();
        self.deadline = sh.now + sh.limits.timeout;
        self.phase = match req.persist {
            Persist::Close => Phase::Closing,
            Persist::KeepAlive | Persist::KeepAlive10 => Phase::Head { scanned: 0 },
        };
    }

    /// Queues an error answer and ends the connection after it: after a refused head or body
    /// there is no telling where the next request would start.
    fn refuse(&mut self, status: u16, msg: &str, sh: &Shared<'_>) {
        let reply = Reply::error(status, msg);
        reply::write(
            &mut self.out,
            &reply,
            REFUSED,
            b"",
            sh.limits.name.as_bytes(),
        );
        self.input.clear();
        self.deadline = sh.now + sh.limits.timeout;
        self.phase = Phase::Closing;
    }

    /// The deadline passed: 408 for a client in the middle of a request (or that never sent
    /// its first), a plain close for an idle keep-alive connection or a stalled write.
    fn expire(&mut self, sh: &mut Shared<'_>) {
        let unsent = self.out.len() > self.written;
        let mid_request = match self.phase {
            Phase::Head { .. } => !self.input.is_empty() || self.served == 0,
            Phase::Body { .. } => true,
            // Waiting on our own timer, not on the client.
            Phase::Delayed { .. } => return,
            Phase::Closing | Phase::Lingering | Phase::Closed => false,
        };
        if mid_request && !unsent {
            log::debug!("conn {}: request timeout", self.key);
            self.refuse(408, "request timeout", sh);
        } else {
            self.phase = Phase::Closed;
        }
    }

    /// Writes queued answers until done or the socket would block.
    fn flush(&mut self, sh: &Shared<'_>) {
        while self.written < self.out.len() && self.ready.writable {
            match sockio::write(&mut self.stream, &self.out[self.written..]) {
                Io::Progress(n) => {
                    self.written += n;
                    self.deadline = self.deadline.max(sh.now + sh.limits.timeout);
                }
                Io::WouldBlock => self.ready.writable = false,
                Io::Closed | Io::Failed(_) => {
                    self.phase = Phase::Closed;
                    return;
                }
            }
        }
        if self.written < self.out.len() {
            return;
        }
        self.written = 0;
        if self.out.capacity() > RETAIN {
            self.out = Vec::new();
        }
        self.out.clear();
        if matches!(self.phase, Phase::Closing) {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.phase = if self.eof {
                Phase::Closed
            } else {
                self.deadline = sh.now + LINGER.min(sh.limits.timeout);
                Phase::Lingering
            };
        }
    }

    /// Whether reading now would be of use, and there is room to read into.
    fn wants_input(&self, limits: &Limits) -> bool {
        let room = !self.input.is_full() || self.input.capacity() < limits.max_head;
        match self.phase {
            Phase::Head { .. } | Phase::Body { .. } => {
                !self.eof && room && self.out.len() - self.written <= OUT_HIGH_WATER
            }
            // Reading ahead while an answer is held back finds pipelined requests and EOF.
            Phase::Delayed { .. } => !self.eof && room,
            Phase::Lingering => !self.eof,
            Phase::Closing | Phase::Closed => false,
        }
    }

    /// Reads once into the input buffer, growing it first if a head needs the room.
    fn fill(&mut self, limits: &Limits) {
        if self.input.is_full() && self.input.capacity() < limits.max_head {
            let mut bigger =
                Buffer::with_capacity((self.input.capacity() * 4).min(limits.max_head));
            bigger.push(self.input.data());
            self.input = bigger;
        }
        let space = self.input.space();
        let asked = space.len();
        match sockio::read(&mut self.stream, space) {
            Io::Progress(n) => {
                self.input.commit(n);
                // A short read emptied the socket: the next byte to arrive raises a new edge,
                // so the read that would only say "would block" can be skipped. Not once the
                // FIN was reported, which raises no further edge.
                if n < asked && !self.ready.read_closed {
                    self.ready.readable = false;
                }
            }
            Io::WouldBlock => self.ready.readable = false,
            Io::Closed => {
                self.eof = true;
                self.ready.readable = false;
            }
            Io::Failed(_) => self.phase = Phase::Closed,
        }
    }

    /// Makes sure a timer fires no later than the deadline. A timer already armed earlier is
    /// left alone: when it fires, the deadline is checked and the timer re-armed.
    fn arm(&mut self, sh: &mut Shared<'_>) {
        if matches!(self.phase, Phase::Delayed { .. } | Phase::Closed) {
            return;
        }
        match self.timer {
            Some((_, at)) if at <= self.deadline => return,
            Some((id, _)) => {
                sh.wheel.cancel(id);
            }
            None => {}
        }
        let id = sh.wheel.insert(self.deadline, Due::Deadline(self.key));
        self.timer = Some((id, self.deadline));
    }
}

/// Why a body was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// It is over the limit (413).
    TooLarge,
    /// Its framing is broken (400).
    Framing(BodyError),
}

/// Moves the body bytes at the front of `input` into `body`, at most `max` in all. Returns how
/// many input bytes were consumed; stops when the input is used up or the body is complete.
fn collect(
    decoder: &mut BodyDecoder,
    input: &mut Buffer,
    body: &mut Vec<u8>,
    max: usize,
) -> Result<usize, Refusal> {
    let mut moved = 0;
    while !decoder.is_done() && !input.is_empty() {
        let step = decoder.decode(input.data()).map_err(Refusal::Framing)?;
        let data = &input.data()[step.data];
        if body.len().saturating_add(data.len()) > max {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(data);
        input.consume(step.consumed);
        moved += step.consumed;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::chunked::ChunkedError;

    fn run(kind: BodyKind, chunks: &[&[u8]], max: usize) -> (Result<Vec<u8>, Refusal>, Vec<u8>) {
        let mut dec = BodyDecoder::new(kind);
        let mut input = Buffer::with_capacity(64);
        let mut body = Vec::new();
        for c in chunks {
            input.push(c);
            if let Err(e) = collect(&mut dec, &mut input, &mut body, max) {
                return (Err(e), input.data().to_vec());
            }
        }
        assert!(dec.is_done(), "body not complete");
        (Ok(body), input.data().to_vec())
    }

    #[test]
    fn collects_bodies_and_leaves_the_next_request() {
        let (body, rest) = run(BodyKind::Length(5), &[b"ab", b"cdeGET"], 10);
        assert_eq!((body, rest), (Ok(b"abcde".to_vec()), b"GET".to_vec()));
        let (body, rest) = run(
            BodyKind::Chunked,
            &[b"3\r\nabc\r\n", b"2\r\nde\r", b"\n0\r\n\r\nNEXT"],
            10,
        );
        assert_eq!((body, rest), (Ok(b"abcde".to_vec()), b"NEXT".to_vec()));
    }

    #[test]
    fn refuses_as_soon_as_the_limit_is_passed() {
        let (r, _) = run(BodyKind::Chunked, &[b"4\r\nabcd\r\n", b"2\r\nef"], 5);
        assert_eq!(r, Err(Refusal::TooLarge));
        let (r, _) = run(BodyKind::Chunked, &[b"5\r\nabcde\r\n0\r\n\r\n"], 5);
        assert_eq!(r, Ok(b"abcde".to_vec()));
        let (r, _) = run(BodyKind::Chunked, &[b"zz\r\n"], 5);
        assert_eq!(
            r,
            Err(Refusal::Framing(BodyError::Chunked(ChunkedError::BadSize)))
        );
    }
}
