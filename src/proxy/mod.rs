//! The `rr-proxy` event loop: one thread, one mio `Poll`, one slab of connections and one
//! timer wheel. The loop only dispatches; what a connection does is in the modules below, named
//! in the order a request meets them.
//!
//! A client connection is a `session::Session`. While it has a request in flight it owns the
//! backend connection serving it; between requests, backend connections wait in a per-backend
//! pool, and their slab entry holds them.
//!
//! - `listen`, `token`: the sockets listened on, and which event belongs to whom.
//! - `session`: a client connection from accept to close; reads heads, starts exchanges.
//! - `exchange`: one request in flight, and its request side (head and body to the backend).
//! - `dial`: choosing a backend, reusing a pooled connection or connecting, retrying.
//! - `pipeline`: GETs that arrive together sent on one pooled connection, passed along it.
//! - `respond`: the response head rewritten for the client, and its body relayed.
//! - `rewrite`: hop-by-hop fields out, forwarding fields in, as pure functions.
//! - `tunnel`: raw two-way relay (after 101, and TCP mode), and the polite close.
//! - `ledger`: what each request cost, for metrics and the access log.
//! - `probe`: active health checks on the same loop.
//! - `admin`, `control`, `workers`, `config`: operating it (metrics and status, signals and
//!   reload, several cores, settings).

mod admin;
pub mod config;
pub mod control;
mod dial;
mod exchange;
mod ledger;
pub mod listen;
mod pipeline;
mod probe;
mod respond;
mod rewrite;
mod session;
pub mod token;
mod tunnel;
pub mod upstream;
pub mod workers;

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll};
use slab::Slab;

use crate::balancer::Balancer;
use crate::health::Health;
use crate::http::date::DateCache;
use crate::metrics::Metrics;
use crate::net::buffer::{Buffer, BufferPool};
use crate::rng::Rng;
use crate::timer::{TimerId, TimerWheel};
pub use admin::MAX_ADMIN_CONNS;
pub use config::Config;
use control::{Signals, Stop};
pub use listen::Listeners;
use session::Session;
use std::sync::Arc;
use token::Source;
use upstream::{Pool, Upstream};
use workers::{Shared, Snapshot};

/// How often the wheel ticks; every deadline is kept to this precision at worst.
const TIMER_TICK: Duration = Duration::from_millis(5);
/// Slots in the wheel: 4096 × 5 ms ≈ 20 s per revolution, so most deadlines need one.
const TIMER_SLOTS: usize = 4096;
/// How long accepting pauses when the process is out of file descriptors, so the loop does
/// not spin on an accept that cannot succeed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The buffer a client's request head is read into first: room for any ordinary head and a
/// few pipelined ones.
const HEAD_BUFFER: usize = 4 * 1024;
/// Free head buffers kept for reuse.
const HEAD_BUFFERS_KEPT: usize = 1024;
/// Free buffers kept for reuse (each `--buffer-size` bytes).
const BUFFERS_KEPT: usize = 256;
/// Relay buffers set aside at start. A backend connection holds one only while an answer
/// arrives, so the most in use at once is reached by chance, long after warm-up: a reserve
/// keeps such a peak from costing an allocation in the middle of a request.
const BUFFERS_PREFILLED: usize = 32;
/// Free head-sized buffers kept for reuse: big heads are rare.
const BIG_BUFFERS_KEPT: usize = 8;
/// Events taken from the kernel per poll.
const EVENTS_PER_POLL: usize = 1024;
/// Polls without waiting that may run while requests are held (see `pipeline`): each one
/// that finds events adds their requests to the batch; the first that finds none sends it.
const GATHER_POLLS: u32 = 3;

/// A slab entry.
#[derive(Debug)]
enum Conn {
    /// A client connection and, while a request is in flight, its backend connection.
    Client(Box<Session>),
    /// A backend socket that lives inside the session at slab key `owner`.
    Attached { owner: usize },
    /// An idle backend connection waiting in its backend's pool.
    Pooled(Upstream),
    /// An active health check in flight.
    Probe(Box<probe::Probe>),
    /// A request to the admin listener.
    Admin(Box<admin::AdminConn>),
    /// Taken out of the slab while a handler works on it.
    Busy,
}

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// The one deadline of the session at this slab key.
    Session(usize),
    /// Accepting paused for lack of file descriptors; try again.
    ResumeAccept,
    /// Time to probe this backend.
    ProbeDue(usize),
    /// The probe at this slab key ran out of time.
    ProbeTimeout(usize),
    /// This backend's ejection ends.
    EjectionEnd(usize, Instant),
    /// The drain after a stop signal has taken long enough.
    DrainDeadline,
    /// The admin connection at this slab key has taken long enough.
    Admin(usize),
    /// Time to publish this worker's counters.
    Publish,
}

/// Everything the loop owns.
pub struct Proxy {
    poll: Poll,
    /// Closed (`None`) once a drain starts, so new clients are refused rather than left waiting.
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    timers: TimerWheel<Timer>,
    cfg: Config,
    balancer: Balancer,
    health: Health,
    pools: Vec<Pool>,
    /// Jitter for probe times and ejection lengths.
    rng: Rng,
    /// Each backend's probe request, made once.
    probe_requests: Vec<Vec<u8>>,
    /// Client connections open, checked against `max_conns`.
    clients: usize,
    /// Accepting stopped: at `max_conns`, or backing off after running out of descriptors.
    accept_paused: bool,
    /// Sessions that stopped for fairness with work left; driven again after this batch.
    again: Vec<usize>,
    /// Requests whose send to a pooled backend connection waits for the end of this batch of
    /// events, with their backend (see `pipeline`).
    held: Vec<(usize, usize)>,
    /// The other half of `held`, swapped in while those are sent.
    held_spare: Vec<(usize, usize)>,
    /// Per backend: does it answer pipelined requests?
    pipelining: Vec<pipeline::Pipelining>,
    /// The time, read once after each poll and after the timers: what sessions go by.
    now: Instant,
    /// The `Date` for answers the proxy writes and responses it forwards without one (RFC
    /// 9110 §6.6.1), refreshed with `now` and formatted at most once a second. Sessions hold a
    /// handle to it, because they write their canned answers where the loop is out of reach.
    date: Rc<DateCache>,
    /// Small buffers a client's request heads are read into (most heads are short, and a
    /// slow client holding one costs little).
    heads: BufferPool,
    /// Relay buffers (`--buffer-size`), for connections moving bodies or responses.
    bufs: BufferPool,
    /// Head-sized buffers (`--max-head`), for the rare head that outgrows a normal buffer.
    big: BufferPool,
    /// Head vectors (rewritten request heads, response heads) reused across connections, so
    /// a new connection does not grow them from nothing again.
    vecs: Vec<Vec<u8>>,
    /// The signal pipes, if they could be set up.
    signals: Option<Signals>,
    /// Since when a stop signal has the proxy draining.
    draining: Option<Instant>,
    /// Set when the loop is to end.
    stopped: Option<Stop>,
    /// Backends removed by a reload: no new requests, in-flight ones finish (same index).
    retired: Vec<bool>,
    /// Backend connections attached to a request, per backend.
    inflight: Vec<u32>,
    /// Whether a backend's chain of probe timers is running.
    probing: Vec<bool>,
    /// Counters for `/metrics`.
    metrics: Metrics,
    /// Where access-log lines are formatted, reused.
    access_buf: Vec<u8>,
    /// The admin listener, when `--admin` is given.
    admin: Option<TcpListener>,
    /// Admin connections open now (at most `admin::MAX_ADMIN_CONNS`).
    admin_conns: usize,
    /// With several workers: where this one publishes its counters, and which it is.
    shared: Option<(usize, Arc<Shared>)>,
    /// The last reload taken from `shared`.
    config_gen: u64,
}

/// Runs the proxy on `listener` until a stop signal has been handled, or an unrecoverable
/// error.
pub fn run(listeners: impl Into<Listeners>, cfg: Config) -> io::Result<Stop> {
    let workers = cfg.workers;
    workers::run_workers(listeners.into(), cfg, workers)
}

impl Proxy {
    /// Sets up the loop around bound listeners.
    pub fn new(listeners: Listeners, cfg: Config) -> io::Result<Proxy> {
        let Listeners { traffic, admin, .. } = listeners;
        traffic.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(traffic);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, token::LISTENER, Interest::READABLE)?;
        let n = cfg.backends.len();
        let signals = Signals::install(poll.registry())
            .map_err(|e| log::warn!("signals: {e}; SIGTERM and SIGHUP will not be handled"))
            .ok();
        let names: Vec<&str> = cfg.backends.iter().map(|b| b.name.as_str()).collect();
        let metrics = Metrics::new(&names);
        let mut proxy = Proxy {
            metrics,
            access_buf: Vec::new(),
            admin: None,
            admin_conns: 0,
            shared: None,
            config_gen: 0,
            signals,
            draining: None,
            stopped: None,
            retired: vec![false; n],
            inflight: vec![0; n],
            probing: vec![false; n],
            poll,
            listener: Some(listener),
            conns: Slab::with_capacity(1024),
            timers: TimerWheel::new(TIMER_TICK, TIMER_SLOTS, Instant::now()),
            balancer: Balancer::new(&cfg.backends.iter().map(|b| b.weight).collect::<Vec<_>>()),
            health: Health::new(n, cfg.health.clone()),
            rng: Rng::new(seed()),
            probe_requests: probe::requests(
                cfg.probe.kind,
                &cfg.probe.path,
                &cfg.backends
                    .iter()
                    .map(|b| b.name.clone())
                    .collect::<Vec<_>>(),
            ),
            pools: (0..n).map(|_| Pool::default()).collect(),
            clients: 0,
            accept_paused: false,
            again: Vec::new(),
            held: Vec::new(),
            held_spare: Vec::new(),
            now: Instant::now(),
            date: Rc::new(DateCache::new(Instant::now(), SystemTime::now())),
            pipelining: vec![pipeline::Pipelining::default(); n],
            vecs: Vec::new(),
            heads: BufferPool::new(HEAD_BUFFER.min(cfg.buffer_size), HEAD_BUFFERS_KEPT),
            bufs: {
                let mut pool = BufferPool::new(cfg.buffer_size, BUFFERS_KEPT);
                pool.prefill(BUFFERS_PREFILLED);
                pool
            },
            big: BufferPool::new(cfg.max_head.max(cfg.buffer_size), BIG_BUFFERS_KEPT),
            cfg,
        };
        if let Some(admin) = admin {
            proxy.open_admin(admin)?;
        }
        Ok(proxy)
    }

    /// The loop: poll, dispatch each event by token, expire timers, until stopped.
    pub fn serve(&mut self) -> io::Result<Stop> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        self.schedule_probes(Instant::now());
        // Polls in a row that found more events while requests were held.
        let mut gathered = 0;
        loop {
            // Held requests wait while more events keep arriving (a few polls at most), so
            // that more of them leave together; they go before the loop would sleep.
            let gather = !self.held.is_empty() && gathered < GATHER_POLLS;
            if !gather {
                self.send_held();
                gathered = 0;
            }
            let timeout = if gather || !self.again.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.timers.poll_timeout(Instant::now())
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.tick();
            if gather {
                gathered += 1;
                if events.is_empty() {
                    self.send_held();
                    gathered = 0;
                }
            }
            for event in events.iter() {
                match token::source(event.token()) {
                    Source::Listener => self.accept(),
                    Source::Conn(key) => self.on_event(key, event),
                    Source::Stop => self.on_stop_signal(Instant::now()),
                    Source::Reload => self.on_reload_signal(Instant::now()),
                    Source::Admin => self.accept_admin(Instant::now()),
                    Source::Unused => {}
                }
            }
            // Those queued now; a session that yields again is queued behind them. Draining in
            // place keeps the vector's capacity, so a yield costs no allocation.
            let due = self.again.len();
            for i in 0..due {
                let key = self.again[i];
                self.drive(key);
            }
            self.again.drain(..due);
            self.tick();
            self.expire(self.now);
            if let Some(stop) = self.stopped {
                return Ok(stop);
            }
            if self.draining.is_some() && self.clients == 0 {
                log::warn!("drained: exiting");
                return Ok(Stop::Drained);
            }
        }
    }

    /// Accepts until `WouldBlock`, the connection cap, or a lack of descriptors.
    fn accept(&mut self) {
        while !self.accept_paused {
            if self.clients >= self.cfg.max_conns_per_worker() {
                log::warn!("at --max-conns {}: not accepting", self.cfg.max_conns);
                self.accept_paused = true;
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((sock, peer)) => self.open_session(sock, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if upstream::is_local_shortage(&e) => {
                    // A parked backend connection gives its descriptor to the next client.
                    if self.shed_idle() {
                        continue;
                    }
                    log::warn!("accept: {e}; pausing {ACCEPT_BACKOFF:?}");
                    self.accept_paused = true;
                    self.timers
                        .insert(Instant::now() + ACCEPT_BACKOFF, Timer::ResumeAccept);
                    return;
                }
                // The client gave up between SYN and accept, and the like: next one.
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    fn resume_accept(&mut self) {
        if self.accept_paused
            && self.draining.is_none()
            && self.clients < self.cfg.max_conns_per_worker()
        {
            self.accept_paused = false;
            self.accept();
        }
    }

    fn open_session(&mut self, mut sock: mio::net::TcpStream, peer: std::net::SocketAddr) {
        let _ = sock.set_nodelay(true);
        let key = match self.register(&mut sock) {
            Ok(key) => key,
            Err(e) => return log::warn!("register client {peer}: {e}"),
        };
        let now = Instant::now();
        let deadline = now + self.cfg.head_timeout;
        let timer = self.timers.insert(deadline, Timer::Session(key));
        let inbuf = self.heads.take();
        let date = Rc::clone(&self.date);
        // Its head vectors come with its first head (`lend_vecs`): a connection that never
        // sends holds none.
        let mut session = Box::new(Session::new(sock, peer, inbuf, timer, deadline, date));
        self.clients += 1;
        if self.cfg.mode == config::Mode::Tcp {
            // A backend per connection: choose and dial it now; client bytes wait in the buffer.
            session.start_raw(now);
            self.grow(&mut session.inbuf);
            self.attach(key, &mut session, now, None);
        }
        self.conns[key] = Conn::Client(session);
    }

    /// One readiness event for a connection.
    fn on_event(&mut self, key: usize, event: &mio::event::Event) {
        let hup = event.is_read_closed() || event.is_error();
        let readable = event.is_readable() || hup;
        let writable = event.is_writable() || event.is_write_closed() || event.is_error();
        match self.conns.get_mut(key) {
            Some(Conn::Client(s)) => {
                s.readable |= readable;
                s.writable |= writable;
                s.hup |= hup;
                self.drive(key);
            }
            Some(Conn::Attached { owner }) => {
                let owner = *owner;
                if let Some(Conn::Client(s)) = self.conns.get_mut(owner) {
                    if let Some(up) = s.upstream_mut() {
                        up.readable |= readable;
                        up.writable |= writable;
                        up.hup |= hup;
                    }
                }
                self.drive(owner);
            }
            Some(Conn::Pooled(_)) if readable => {
                // An idle backend connection has nothing to say: this is its close (or junk).
                self.close_pooled(key);
            }
            Some(Conn::Pooled(up)) => up.writable = true,
            Some(Conn::Probe(_)) => self.on_probe_event(key),
            Some(Conn::Admin(_)) => self.on_admin_event(key),
            Some(Conn::Busy) | None => {}
        }
    }

    /// Reads the time this part of the turn goes by, and keeps the `Date` in step with it.
    fn tick(&mut self) {
        self.now = Instant::now();
        self.date.refresh(self.now, SystemTime::now);
    }

    /// Fires every due timer.
    fn expire(&mut self, now: Instant) {
        while let Some((id, timer)) = self.timers.pop_expired(now) {
            match timer {
                Timer::ResumeAccept => {
                    if self.draining.is_none() {
                        self.accept_paused = false;
                        self.accept();
                    }
                }
                Timer::DrainDeadline => self.drain_deadline(),
                Timer::Admin(key) => self.admin_timeout(key, id),
                Timer::Publish => self.publish(now),
                Timer::Session(key) => self.on_deadline(key, id, now),
                Timer::ProbeDue(backend) => self.start_probe(backend, now),
                Timer::ProbeTimeout(key) => self.on_probe_timeout(key, id, now),
                Timer::EjectionEnd(backend, until) => self.ejection_over(backend, until, now),
            }
        }
    }

    fn close_pooled(&mut self, key: usize) {
        if let Some(Conn::Pooled(up)) = self.conns.try_remove(key) {
            self.pools[up.backend].remove(key);
            self.give_buf(up.inbuf);
        }
    }

    /// Closes the idle connection parked longest ago in the fullest pool, to free a
    /// descriptor for a client or a request: a pooled connection only saves a handshake. False
    /// when every pool is empty.
    fn shed_idle(&mut self) -> bool {
        let Some(fullest) = self.pools.iter_mut().max_by_key(|p| p.len()) else {
            return false;
        };
        let Some(key) = fullest.take_oldest() else {
            return false;
        };
        if let Some(Conn::Pooled(up)) = self.conns.try_remove(key) {
            self.give_buf(up.inbuf);
        }
        true
    }

    /// Gives a buffer's storage back to the pool of its size.
    fn give_buf(&mut self, buf: Buffer) {
        let cap = buf.capacity();
        if cap == self.cfg.buffer_size {
            self.bufs.give(buf);
        } else if cap == self.heads.size() {
            self.heads.give(buf);
        } else {
            self.big.give(buf);
        }
    }

    /// Moves what `buf` holds into a head-sized buffer when it fits in one, and gives the
    /// larger buffer back.
    fn shrink(&mut self, buf: &mut Buffer) {
        let small_size = self.heads.size();
        if buf.capacity() <= small_size || buf.len() > small_size {
            return;
        }
        let mut small = self.heads.take();
        small.push(buf.data());
        let big = std::mem::replace(buf, small);
        self.give_buf(big);
    }

    /// Moves what `buf` holds into the next size up: a head buffer into a relay buffer, a
    /// relay buffer into a head-limit one. False when there is no larger size.
    fn grow(&mut self, buf: &mut Buffer) -> bool {
        let cap = buf.capacity();
        let mut big = if cap < self.cfg.buffer_size {
            self.bufs.take()
        } else if cap < self.cfg.max_head {
            self.big.take()
        } else {
            return false;
        };
        big.push(buf.data());
        let small = std::mem::replace(buf, big);
        self.give_buf(small);
        true
    }

    /// Reserves a slab entry for `sock` (as `Busy`, for the caller to fill) and registers the
    /// socket for both directions under the entry's token: reserve, register, then insert.
    /// Nothing deregisters a socket it is about to drop: on Linux closing the descriptor takes
    /// it out of the epoll set, and an explicit deregistration is one more system call per
    /// connection.
    fn register(&mut self, sock: &mut mio::net::TcpStream) -> io::Result<usize> {
        let key = self.conns.insert(Conn::Busy);
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self
            .poll
            .registry()
            .register(sock, token::of(key), interest)
        {
            Ok(()) => Ok(key),
            Err(e) => {
                self.conns.remove(key);
                Err(e)
            }
        }
    }

    /// Arms the session's timer for `deadline`, reusing its entry when it still has one.
    fn arm(&mut self, key: usize, timer: &mut Option<TimerId>, deadline: Instant) {
        if let Some(id) = *timer {
            if self.timers.reschedule(id, deadline) {
                return;
            }
        }
        *timer = Some(self.timers.insert(deadline, Timer::Session(key)));
    }
}

impl Proxy {
    /// Makes this loop worker `me` of several, publishing its counters to `shared`.
    pub fn join_workers(&mut self, me: usize, shared: Arc<Shared>) {
        self.shared = Some((me, shared));
        self.publish(Instant::now());
    }

    /// Publishes a snapshot of this worker's counters and schedules the next.
    fn publish(&mut self, now: Instant) {
        let Some((me, shared)) = self.shared.clone() else {
            return;
        };
        if let Some((gen, cfg)) = shared.config_since(self.config_gen) {
            self.config_gen = gen;
            self.apply(cfg, now);
        }
        self.refresh_gauges(now);
        shared.publish(
            me,
            Snapshot {
                metrics: Some(self.metrics.clone()),
                clients: self.clients,
                inflight: self.inflight.clone(),
            },
        );
        self.timers
            .insert(now + workers::PUBLISH_EVERY, Timer::Publish);
    }
}

/// A seed for jitter that differs between processes, so that several proxies in front of the
/// same backends do not probe them in step.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()).rotate_left(32)
}
