//! The event loop: poll, hand each event to its connection, fire due timers, remove what the
//! handlers finished, and accept while under the connection cap.

use std::io;
use std::time::{Duration, Instant, SystemTime};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::behaviour::Behaviour;
use super::config::Config;
use super::conn::{Conn, Due, Limits, Next, Shared};
use crate::http::date::DateCache;
use crate::timer::{TimerId, TimerWheel};

/// The listener's token; connection tokens are slab keys, which stay far below it.
const LISTENER: Token = Token(usize::MAX);
/// Events taken per poll.
const EVENTS: usize = 1024;
/// Timer wheel resolution. Firing is exact whatever the tick; a coarse one keeps the slot walk
/// behind each poll timeout short for the 10 s deadlines every connection carries.
const TICK: Duration = Duration::from_millis(100);
/// Slots in the wheel: 256 ticks of 100 ms cover 25 s per revolution.
const SLOTS: usize = 256;
/// How long to wait before accepting again after the system ran out of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Timers fired per turn at most, so a burst cannot keep the loop from polling.
const MAX_FIRED_PER_TURN: usize = 4096;

/// Whether connections may be waiting in the listener's backlog.
#[derive(Debug, PartialEq, Eq)]
enum Listen {
    /// Accepted until the backlog was empty; the next arrival raises an event.
    Drained,
    /// Stopped at the connection cap: accept again when a connection closes.
    Full,
    /// Stopped on an error: accept again when this timer fires.
    Backoff(TimerId),
}

/// Everything the loop owns.
struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    wheel: TimerWheel<Due>,
    behaviour: Behaviour,
    limits: Limits,
    /// The `Date` of this turn's answers; formatted once per second, not once per answer.
    date: DateCache,
    max_conns: usize,
    listen: Listen,
    /// Connections finished this turn; removed at its end, so a handler never removes one.
    closing: Vec<usize>,
    /// Connections that spent their read budget this turn, pumped again next turn.
    again: Vec<usize>,
    /// Last turn's `again`, being served; kept to reuse its allocation.
    resuming: Vec<usize>,
}

/// Serves on `listener` until an unrecoverable poll error. The instance name defaults to
/// `echo-<port>` with the port actually bound.
pub fn run(listener: std::net::TcpListener, config: Config) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let name = config
        .name
        .unwrap_or_else(|| format!("echo-{}", addr.port()));
    log::info!("{name} serving on {addr}");
    let mut server = Server {
        poll,
        listener,
        conns: Slab::with_capacity(config.max_conns.min(1024)),
        wheel: TimerWheel::new(TICK, SLOTS, Instant::now()),
        behaviour: Behaviour::new(config.settings),
        limits: Limits {
            max_head: config.max_head,
            max_body: config.max_body,
            timeout: config.header_timeout,
            name: name.into_boxed_str(),
        },
        date: DateCache::new(Instant::now(), SystemTime::now()),
        max_conns: config.max_conns,
        listen: Listen::Drained,
        closing: Vec::new(),
        again: Vec::new(),
        resuming: Vec::new(),
    };
    let mut events = Events::with_capacity(EVENTS);
    loop {
        server.turn(&mut events)?;
    }
}

impl Server {
    /// One turn of the loop.
    fn turn(&mut self, events: &mut Events) -> io::Result<()> {
        let timeout = if self.again.is_empty() {
            self.wheel.poll_timeout(Instant::now())
        } else {
            Some(Duration::ZERO)
        };
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        self.date.refresh(now, SystemTime::now);
        std::mem::swap(&mut self.again, &mut self.resuming);
        for ev in events.iter() {
            match ev.token() {
                LISTENER => self.accept(now),
                Token(key) => self.with_conn(key, now, |c, sh| c.on_event(ev, sh)),
            }
        }
        let mut resuming = std::mem::take(&mut self.resuming);
        for &key in &resuming {
            self.with_conn(key, now, |c, sh| c.pump(sh));
        }
        resuming.clear();
        self.resuming = resuming;
        self.fire(now);
        self.reap(now);
        Ok(())
    }

    /// Runs a handler on connection `key`, if it still exists (a stale token or timer is
    /// skipped), and records what it asked for.
    fn with_conn(
        &mut self,
        key: usize,
        now: Instant,
        f: impl FnOnce(&mut Conn, &mut Shared<'_>) -> Next,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut sh = Shared {
            now,
            wheel: &mut self.wheel,
            behaviour: &mut self.behaviour,
            limits: &self.limits,
            date: &self.date,
        };
        match f(conn, &mut sh) {
            Next::Wait => {}
            Next::Again => self.again.push(key),
            Next::Close => self.closing.push(key),
        }
    }

    /// Hands each due timer to its owner.
    fn fire(&mut self, now: Instant) {
        for _ in 0..MAX_FIRED_PER_TURN {
            let Some((id, due)) = self.wheel.pop_expired(now) else {
                return;
            };
            match due {
                Due::Deadline(key) => self.with_conn(key, now, |c, sh| c.on_deadline(id, sh)),
                Due::Delay(key) => self.with_conn(key, now, |c, sh| c.on_delay(id, sh)),
                Due::AcceptRetry if self.listen == Listen::Backoff(id) => self.accept(now),
                Due::AcceptRetry => {}
            }
        }
    }

    /// Removes the connections finished this turn, then accepts any that waited for room.
    fn reap(&mut self, now: Instant) {
        if self.closing.is_empty() {
            return;
        }
        for key in self.closing.drain(..) {
            // A key listed twice is gone the second time.
            if let Some(conn) = self.conns.try_remove(key) {
                log::debug!("conn {key}: closed");
                conn.close(self.poll.registry(), &mut self.wheel);
            }
        }
        if self.listen == Listen::Full {
            self.accept(now);
        }
    }

    /// Accepts until the backlog is empty or the cap is reached.
    fn accept(&mut self, now: Instant) {
        loop {
            if self.conns.len() >= self.max_conns {
                self.listen = Listen::Full;
                return;
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    log::debug!("accepted {peer}");
                    self.admit(stream, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listen = Listen::Drained;
                    return;
                }
                // The client gave up while waiting in the backlog: take the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                // Out of descriptors or memory: retrying at once would spin.
                Err(e) => {
                    log::warn!("accept failed, retrying shortly: {e}");
                    let id = self.wheel.insert(now + ACCEPT_BACKOFF, Due::AcceptRetry);
                    if let Listen::Backoff(old) =
                        std::mem::replace(&mut self.listen, Listen::Backoff(id))
                    {
                        self.wheel.cancel(old);
                    }
                    return;
                }
            }
        }
    }

    /// Registers a new connection under its slab key: reserve, register, then insert, so the
    /// token is never used before the entry exists.
    fn admit(&mut self, mut stream: TcpStream, now: Instant) {
        // Answers are written whole; waiting for more to coalesce would only add latency.
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("set_nodelay: {e}");
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), interest)
        {
            log::warn!("register: {e}");
            return;
        }
        entry.insert(Conn::new(key, stream, now, &self.limits));
        // Arms the first head's deadline; any bytes already there raise an event.
        self.with_conn(key, now, |c, sh| c.pump(sh));
    }
}
