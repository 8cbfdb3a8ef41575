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
use super::reply::Reply;
use super::request::{Pending, Persist, Route};
use crate::http::date::DateCache;
use crate::http::framing::BodyDecoder;
use crate::net::buffer::Buffer;
use crate::net::io::{self as sockio, Io};
use crate::timer::{TimerId, TimerWheel};

mod exchange;

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
    /// The `Date` every answer carries, refreshed by the loop once per turn.
    pub date: &'a DateCache,
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
