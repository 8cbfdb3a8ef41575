//! Several safe requests on one backend connection.
//!
//! Requests whose send to an idle (pooled) backend connection could wait are held until the
//! current batch of events has been handled. Then the held GETs without a body that go to the
//! same backend leave together: their heads in one `writev` on one connection, which
//! the backend answers in order (RFC 9112 §9.3.2). The first request of the batch owns the
//! connection; the others wait in its `followers` and the connection passes to the next one as
//! each answer ends. One write and one read then carry several requests, and the backend is
//! woken once for them: that write and read were about half of a small request's CPU.
//!
//! What keeps a slow or misbehaving answer from hurting the requests behind it:
//! - only a connection that already served a request is used, so the backend keeps them open;
//! - followers stay only while the answer ahead of them is whole in the buffer and leaves the
//!   connection reusable; otherwise they are sent again elsewhere at once, and the connection,
//!   which may still carry their answers, is never reused;
//! - the same after a 204 or 304, which has no body whatever its fields say: bytes a backend
//!   sends after one anyway cannot be told from the next answer, so none is taken from there;
//! - an answer that ends only when the backend closes is not passed on while requests wait
//!   behind it: a backend answering them anyway would make their answers its body. It is sent
//!   again alone, where it can end at the close;
//! - a follower whose turn does not come within the backend timeout leaves the queue and is
//!   sent again, as is every follower when the connection fails;
//! - a follower's own answer that turns out broken is retried alone on a fresh connection;
//! - a backend gets pipelines of two until it has answered a request handed on behind
//!   another, and none after it left one unanswered for a second (`Pipelining`).
//!
//! What none of that catches: a backend whose `Content-Length` is shorter than what it sends,
//! where the excess is itself a well-formed answer. That one reaches the request behind, as it
//! would on any reused connection if it came late (nginx and HAProxy alike); `--pipeline 1`
//! leaves only the late case.
//!
//! Sending a GET again is safe (RFC 9110 §9.2.2), and nothing of its answer had reached the
//! client. A request waits in a pipeline at most twice, then it goes alone.

use std::io::IoSlice;
use std::net::Shutdown;
use std::time::Duration;

use super::dial::bit;
use super::exchange::Exchange;
use super::session::Phase;
use super::upstream::{Link, Upstream, MAX_PIPELINE};
use super::{Conn, Proxy, Timer};
use crate::http::head::Method;
use crate::net::io::{self, Io};

/// Most bytes of request heads one batch writes: far below any socket's send buffer, so the
/// write is whole.
const BATCH_BYTES: usize = 16 * 1024;

/// Times one request may wait in a pipeline before it is only ever sent alone.
const MAX_FOLLOWS: u8 = 2;

/// How long a request handed on behind another waits for its answer while the backend has
/// not yet shown it reads pipelines. A backend that drops what follows the first request in
/// a read would otherwise cost the whole backend timeout (30 s by default) to find out; this
/// bounds that to once and briefly. One that answers pipelines but slowly just loses them.
const PROBATION: Duration = Duration::from_secs(1);

/// What the proxy has learnt of a backend and pipelined requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pipelining {
    /// Not known yet: batches of two at most until one answer behind another arrives.
    #[default]
    Untried,
    /// It answered a request that waited behind another.
    Works,
    /// A request handed on behind another was never answered: one at a time from now on.
    Off,
}

/// Whether a request may share a backend connection with others: a GET with no body, not
/// asking to upgrade or for `100 Continue`, and not conditional. A HEAD, or a GET likely to get
/// a 304, has an answer with no body whatever its fields say: a backend that sends one anyway
/// would have it read as the answer to the request behind (see `response_head`), so those go
/// alone, where such bytes are found and the connection dropped.
pub(super) fn pipelinable(ex: &Exchange) -> bool {
    ex.meta.method == Method::Get
        && ex.body.is_done()
        && !ex.meta.upgrade
        && !ex.meta.expect_continue
        && !ex.meta.conditional
        && !ex.meta.raw
        && ex.follows < MAX_FOLLOWS
}

/// What became of a held request by the time the batch is sent.
enum Held {
    /// Still held, on an open connection to the batch's backend: its head is this long.
    Ready(usize),
    /// Still held, but its connection changed (a retry): it goes alone.
    Alone,
    /// Sent, answered or gone.
    No,
}

impl Proxy {
    /// Sends what was held during the batch of events: together where it can, alone otherwise.
    pub(super) fn send_held(&mut self) {
        while !self.held.is_empty() {
            // Swap the two lists, so requests held while these are sent wait for the next
            // pass, and neither list is ever reallocated.
            let spare = std::mem::take(&mut self.held_spare);
            let mut held = std::mem::replace(&mut self.held, spare);
            held.sort_unstable();
            let mut i = 0;
            while i < held.len() {
                let backend = held[i].0;
                let end = i + held[i..].iter().take_while(|h| h.0 == backend).count();
                let depth = match self.pipelining.get(backend).copied().unwrap_or_default() {
                    Pipelining::Works => self.cfg.pipeline,
                    Pipelining::Untried => self.cfg.pipeline.min(2),
                    Pipelining::Off => 1,
                };
                for batch in held[i..end].chunks(depth) {
                    self.send_batch(batch);
                }
                i = end;
            }
            held.clear();
            self.held_spare = held;
        }
    }

    /// Writes the heads of `batch` (same backend) on the first one's connection.
    fn send_batch(&mut self, batch: &[(usize, usize)]) {
        let mut members = [0usize; MAX_PIPELINE];
        let mut lens = [0usize; MAX_PIPELINE];
        let mut m = 0;
        let mut bytes = 0;
        for &(backend, key) in batch {
            match self.held_request(key, backend) {
                Held::Ready(len) if m < MAX_PIPELINE && bytes + len <= BATCH_BYTES => {
                    members[m] = key;
                    lens[m] = len;
                    m += 1;
                    bytes += len;
                }
                Held::Ready(_) | Held::Alone => self.send_alone(key),
                Held::No => {}
            }
        }
        if m < 2 {
            for &key in &members[..m] {
                self.send_alone(key);
            }
            return;
        }
        let written = match self.write_batch(&members[..m]) {
            Io::Progress(n) => n,
            // Nothing left: each goes its own way, and meets the error there.
            _ => 0,
        };
        if written < lens[0] {
            // Not even the first head went whole: no one can follow it, and the first sends
            // the rest of its own head.
            if let Some(Conn::Client(s)) = self.conns.get_mut(members[0]) {
                if let Phase::Exchange(ex) = &mut s.phase {
                    ex.head_sent = written;
                }
            }
            for &key in &members[..m] {
                self.send_alone(key);
            }
            return;
        }
        let leader = members[0];
        let Some(leader_up) = self.upstream_key(leader) else {
            return;
        };
        let mut sent = lens[0];
        let mut queued = 0;
        for i in 1..m {
            if sent >= written {
                self.send_alone(members[i]);
                continue;
            }
            sent += lens[i];
            queued += 1;
            self.follow(members[i], leader_up);
        }
        let cut = sent > written;
        let Some(Conn::Client(s)) = self.conns.get_mut(leader) else {
            return;
        };
        let Phase::Exchange(ex) = &mut s.phase else {
            return;
        };
        ex.held = false;
        ex.head_sent = lens[0];
        if let Some(up) = ex.up.as_mut() {
            for &key in &members[1..=queued] {
                up.followers.push(key);
            }
            if cut {
                // A head went out in part: the connection cannot carry anything more. The
                // leader sees it fail, and every follower is sent again.
                up.dirty = true;
                let _ = up.sock.shutdown(Shutdown::Both);
            }
        }
    }

    /// Whether `key` still holds a request for `backend`, and can it be sent together with
    /// others (the length of its head) or only alone (its connection changed since).
    fn held_request(&self, key: usize, backend: usize) -> Held {
        let Some(Conn::Client(s)) = self.conns.get(key) else {
            return Held::No;
        };
        let Phase::Exchange(ex) = &s.phase else {
            return Held::No;
        };
        if !ex.held {
            return Held::No;
        }
        match &ex.up {
            Some(up) if up.link == Link::Open && up.backend == backend => {
                Held::Ready(s.reqhead.len())
            }
            _ => Held::Alone,
        }
    }

    /// The heads of `members` in one system call on the first one's connection.
    fn write_batch(&self, members: &[usize]) -> Io {
        let empty: &[u8] = &[];
        let mut iov = [IoSlice::new(empty); MAX_PIPELINE];
        for (slot, &key) in iov.iter_mut().zip(members) {
            if let Some(Conn::Client(s)) = self.conns.get(key) {
                *slot = IoSlice::new(&s.reqhead);
            }
        }
        let Some(Conn::Client(s)) = self.conns.get(members[0]) else {
            return Io::Closed;
        };
        let Phase::Exchange(ex) = &s.phase else {
            return Io::Closed;
        };
        let Some(up) = ex.up.as_ref() else {
            return Io::Closed;
        };
        let mut sock = &up.sock;
        io::write_vectored(&mut sock, &iov[..members.len()])
    }

    /// Lets a held request send on its own connection.
    fn send_alone(&mut self, key: usize) {
        if let Some(Conn::Client(s)) = self.conns.get_mut(key) {
            if let Phase::Exchange(ex) = &mut s.phase {
                ex.held = false;
            }
            self.drive(key);
        }
    }

    /// The key of the backend connection `key`'s exchange holds.
    fn upstream_key(&self, key: usize) -> Option<usize> {
        match self.conns.get(key) {
            Some(Conn::Client(s)) => match &s.phase {
                Phase::Exchange(ex) => ex.up.as_ref().map(|u| u.key),
                _ => None,
            },
            _ => None,
        }
    }

    /// `key`'s head went out on connection `on`: it gives back its own and waits.
    fn follow(&mut self, key: usize, on: usize) {
        let Some(Conn::Client(s)) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Exchange(ex) = &mut s.phase else {
            return;
        };
        ex.held = false;
        ex.queued = Some(on);
        ex.follows += 1;
        ex.head_sent = s.reqhead.len();
        if let Some(up) = ex.up.take() {
            self.release(up, true);
        }
    }

    /// A connection whose answer ended passes to the next follower still waiting for it.
    /// Gives the connection back when the next one has gone: the answer at the front of it
    /// is nobody's now, so it cannot be used any more.
    pub(super) fn hand_on(&mut self, mut up: Upstream) -> Option<Upstream> {
        let next = up.followers.pop()?;
        let Some(Conn::Client(s)) = self.conns.get_mut(next) else {
            return Some(up);
        };
        let Phase::Exchange(ex) = &mut s.phase else {
            return Some(up);
        };
        if ex.queued != Some(up.key) {
            return Some(up);
        }
        ex.queued = None;
        ex.handed = true;
        // Its wait for the backend starts now; the timer catches up lazily, except for a
        // wait cut short while the backend is on probation, which needs the timer sooner.
        if self.pipelining.get(up.backend) == Some(&Pipelining::Untried) {
            s.deadline = self.now + self.cfg.backend_timeout.min(PROBATION);
            match s.timer {
                Some(id) if self.timers.reschedule(id, s.deadline) => {}
                _ => s.timer = Some(self.timers.insert(s.deadline, Timer::Session(next))),
            }
        } else {
            s.deadline = self.now + self.cfg.backend_timeout;
        }
        let up_key = up.key;
        ex.up = Some(up);
        self.conns[up_key] = Conn::Attached { owner: next };
        // Its answer may be in the buffer already: no event will come for that.
        self.again.push(next);
        None
    }

    /// Sends every follower of `up` again elsewhere; the connection may still carry their
    /// answers, so it is marked never to be reused.
    pub(super) fn bounce(&mut self, up: &mut Upstream) {
        if up.followers.is_empty() {
            return;
        }
        up.dirty = true;
        while let Some(key) = up.followers.pop() {
            let Some(Conn::Client(s)) = self.conns.get_mut(key) else {
                continue;
            };
            let Phase::Exchange(ex) = &mut s.phase else {
                continue;
            };
            if ex.queued != Some(up.key) {
                continue;
            }
            ex.queued = None;
            ex.requeue = true;
            ex.head_sent = 0;
            // A fresh wait, however long it waited here.
            s.deadline = self.now + self.cfg.backend_timeout;
            // It never had its turn: this backend is not a failed try.
            ex.tried &= !bit(up.backend);
            ex.attempts = ex.attempts.saturating_sub(1);
            self.again.push(key);
            self.metrics.record_retry(up.backend);
        }
    }

    /// A request handed on behind another got its answer: the backend reads pipelines.
    pub(super) fn pipelining_works(&mut self, backend: usize) {
        if let Some(p @ Pipelining::Untried) = self.pipelining.get_mut(backend) {
            *p = Pipelining::Works;
        }
    }

    /// A request handed on behind another met the backend timeout without an answer. Unless
    /// the backend has answered pipelines before (then it is merely slow), it is taken to
    /// read one request per connection at a time, and gets no more pipelines. True when the
    /// request should be sent again alone rather than answered 504.
    pub(super) fn pipelining_failed(&mut self, backend: usize) -> bool {
        match self.pipelining.get_mut(backend) {
            Some(Pipelining::Works) | None => false,
            Some(p) => {
                if *p != Pipelining::Off {
                    log::warn!(
                        "backend {} left a pipelined request unanswered: sending it one \
                         request per connection from now on",
                        self.cfg.backends[backend].name
                    );
                }
                *p = Pipelining::Off;
                true
            }
        }
    }

    /// A follower's deadline passed before its turn: it leaves the queue (the connection it
    /// waited on is spoiled) and is sent again. False when it was not waiting in one.
    pub(super) fn leave_queue(&mut self, ex: &mut Exchange) -> bool {
        let Some(up_key) = ex.queued.take() else {
            return false;
        };
        if let Some(&Conn::Attached { owner }) = self.conns.get(up_key) {
            if let Some(Conn::Client(s)) = self.conns.get_mut(owner) {
                if let Some(up) = s.upstream_mut() {
                    if up.key == up_key {
                        up.dirty = true;
                    }
                }
            }
        }
        ex.requeue = true;
        ex.head_sent = 0;
        true
    }
}
