//! Operating the running proxy. Signals arrive through self-pipes that the event loop polls
//! like any socket, so nothing happens inside a signal handler: SIGTERM and SIGINT start a
//! drain (a second one stops at once), SIGHUP re-reads the config and applies what can change
//! without dropping a connection.

use std::io::{self, Read};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use mio::net::UnixStream;
use mio::{Interest, Registry};
use signal_hook::consts::{SIGHUP, SIGINT, SIGPIPE, SIGTERM};

use super::config::{Config, ProbeKind};
use super::session::Phase;
use super::upstream::Pool;
use super::{probe, token, Conn, Proxy, Timer};
use crate::balancer::Balancer;

/// How the loop ended, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Every connection finished after SIGTERM or SIGINT.
    Drained,
    /// The drain timeout passed with connections still open.
    DrainTimedOut,
    /// A second stop signal during the drain.
    Forced,
}

/// The read ends of the signal pipes.
pub struct Signals {
    stop: UnixStream,
    reload: UnixStream,
}

impl Signals {
    /// Routes SIGTERM and SIGINT to one pipe and SIGHUP to another, both polled by the loop.
    pub fn install(registry: &Registry) -> io::Result<Signals> {
        // A write to a peer that has reset raises SIGPIPE, and `writev` cannot ask not to.
        // Rust's `main` ignores it, but a process that embeds `run` may not: with a handler
        // in place the write fails with EPIPE, which the loop handles, instead of killing it.
        // Once per process: every worker and every `run` would otherwise add one more.
        static SIGPIPE_HANDLED: OnceLock<()> = OnceLock::new();
        if SIGPIPE_HANDLED.get().is_none() {
            signal_hook::flag::register(SIGPIPE, Arc::new(AtomicBool::new(false)))?;
            let _ = SIGPIPE_HANDLED.set(());
        }
        let (stop_r, stop_w) = StdUnixStream::pair()?;
        signal_hook::low_level::pipe::register(SIGTERM, stop_w.try_clone()?)?;
        signal_hook::low_level::pipe::register(SIGINT, stop_w)?;
        let (reload_r, reload_w) = StdUnixStream::pair()?;
        signal_hook::low_level::pipe::register(SIGHUP, reload_w)?;
        stop_r.set_nonblocking(true)?;
        reload_r.set_nonblocking(true)?;
        let mut stop = UnixStream::from_std(stop_r);
        let mut reload = UnixStream::from_std(reload_r);
        registry.register(&mut stop, token::STOP, Interest::READABLE)?;
        registry.register(&mut reload, token::RELOAD, Interest::READABLE)?;
        Ok(Signals { stop, reload })
    }
}

/// Reads what the pipe holds; each byte is one signal.
fn count(pipe: &mut UnixStream) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 64];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return total,
        }
    }
}

impl Proxy {
    /// SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight
    /// finish; a second one (or two at once) stops at once.
    pub(super) fn on_stop_signal(&mut self, now: Instant) {
        let n = self.signals.as_mut().map_or(0, |s| count(&mut s.stop));
        if n == 0 {
            return;
        }
        if self.draining.is_some() || n > 1 {
            log::warn!(
                "second stop signal: exiting with {} connections open",
                self.clients
            );
            self.stopped = Some(Stop::Forced);
            return;
        }
        log::warn!(
            "stop signal: draining {} connections for up to {:?}",
            self.clients,
            self.cfg.drain_timeout
        );
        self.draining = Some(now);
        self.accept_paused = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.timers
            .insert(now + self.cfg.drain_timeout, Timer::DrainDeadline);
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter_map(|(key, c)| match c {
                Conn::Client(s)
                    if matches!(s.phase, Phase::Head { started: false })
                        && s.inbuf.is_empty()
                        && s.out.is_empty() =>
                {
                    Some(key)
                }
                _ => None,
            })
            .collect();
        for key in idle {
            self.close_idle(key);
        }
    }

    /// The drain took too long.
    pub(super) fn drain_deadline(&mut self) {
        log::warn!("drain timeout: cutting {} connections", self.clients);
        self.stopped = Some(Stop::DrainTimedOut);
    }

    /// SIGHUP: read the config again; apply it, or keep the running one if it is invalid.
    pub(super) fn on_reload_signal(&mut self, now: Instant) {
        let n = self.signals.as_mut().map_or(0, |s| count(&mut s.reload));
        if n == 0 || self.shared.as_ref().is_some_and(|(me, _)| *me != 0) {
            return; // with several workers, the first reads the file for all
        }
        match self.cfg.reread() {
            Ok(new) => {
                if let Some((_, shared)) = &self.shared {
                    // Taken here already: not again from `shared` at the next publish.
                    self.config_gen = shared.publish_config(&new);
                }
                self.apply(new, now);
            }
            Err(e) => log::error!("reload refused, the running config stays: {e}"),
        }
    }

    /// Swaps in a new config. Backends keep their index for as long as they are listed, so
    /// requests in flight on a removed backend finish there; removed ones are retired, and a
    /// retired slot with nothing in flight is reused.
    pub(super) fn apply(&mut self, mut new: Config, now: Instant) {
        let fixed = new.listen != self.cfg.listen
            || new.mode != self.cfg.mode
            || new.buffer_size != self.cfg.buffer_size
            || new.max_head != self.cfg.max_head
            || new.workers != self.cfg.workers
            || new.admin != self.cfg.admin;
        if fixed {
            log::warn!(
                "reload: --listen, --mode, --buffer-size, --max-head, --workers and --admin \
                 need a restart"
            );
            new.listen = self.cfg.listen;
            new.mode = self.cfg.mode;
            new.buffer_size = self.cfg.buffer_size;
            new.max_head = self.cfg.max_head;
            new.workers = self.cfg.workers;
            new.admin = self.cfg.admin;
        }
        let mut slots = self.cfg.backends.clone();
        let mut retired = vec![true; slots.len()];
        for b in std::mem::take(&mut new.backends) {
            let same = slots.iter().position(|s| s.addr == b.addr);
            let free = (0..slots.len()).find(|&i| retired[i] && self.slot_is_free(i));
            let i = match (same, free) {
                (Some(i), _) => i,
                (None, Some(i)) => {
                    self.health.reset(i);
                    i
                }
                (None, None) => {
                    slots.push(b.clone());
                    retired.push(true);
                    slots.len() - 1
                }
            };
            slots[i] = b;
            retired[i] = false;
        }
        let n = slots.len();
        for (i, gone) in retired.iter().enumerate() {
            if *gone {
                while let Some(key) = self.pools.get_mut(i).and_then(Pool::take) {
                    self.close_pooled(key);
                }
            }
        }
        self.pools.resize_with(n, Pool::default);
        self.inflight.resize(n, 0);
        // A slot may hold another server now: what was learnt of pipelining starts again.
        self.pipelining = vec![Default::default(); n];
        self.probing.resize(n, false);
        self.health.resize(n);
        self.health.set_config(new.health.clone());
        let weights: Vec<u32> = slots.iter().map(|b| b.weight).collect();
        self.balancer = Balancer::new(&weights);
        let names: Vec<String> = slots.iter().map(|b| b.name.clone()).collect();
        self.metrics.set_backends(&names);
        self.probe_requests = probe::requests(new.probe.kind, &new.probe.path, &names);
        new.backends = slots;
        self.retired = retired;
        self.cfg = new;
        self.schedule_probes(now);
        let live = self.retired.iter().filter(|r| !**r).count();
        log::warn!("reloaded: {live} backends in rotation");
        if self.cfg.probe.kind == ProbeKind::Tcp {
            log::info!("probes: TCP connect");
        }
        self.resume_accept();
    }

    /// Nothing uses backend slot `i`: no request in flight, no pooled connection, no probe.
    fn slot_is_free(&self, i: usize) -> bool {
        self.inflight.get(i) == Some(&0)
            && self.pools.get(i).is_none_or(Pool::is_empty)
            && !self.probing.get(i).copied().unwrap_or(false)
    }
}
