//! Several cores: `--workers N` threads, each with its own event loop, slab, pools and health
//! view, all accepting on one port through SO_REUSEPORT so the kernel spreads connections.
//! Nothing is shared on the request path. Each worker publishes a snapshot of its counters a
//! few times a second, and the worker serving `/metrics` and `/status` adds them up.
//!
//! Health is probed by every worker on its own: probes are a handful of requests per interval,
//! and a worker that judges for itself needs no lock and no message on the request path.
//!
//! A reload is read once, by the first worker, and taken by the others from here when they
//! publish next: had each read the file on its own, a file changing in between would leave
//! workers on different settings.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::Config;
use super::control::Stop;
use super::listen::Listeners;
use super::Proxy;
use crate::metrics::Metrics;

/// How often a worker publishes its snapshot: `/metrics` lags the truth by at most this.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// What one worker last published.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Its counters.
    pub metrics: Option<Metrics>,
    /// Its open client connections.
    pub clients: usize,
    /// Its requests in flight per backend.
    pub inflight: Vec<u32>,
}

/// The snapshots of every worker, and the last config reloaded.
#[derive(Debug)]
pub struct Shared {
    slots: Vec<Mutex<Snapshot>>,
    /// How many reloads were published, and the last one.
    config: Mutex<(u64, Option<Config>)>,
}

impl Shared {
    /// Room for `n` workers.
    pub fn new(n: usize) -> Arc<Shared> {
        Arc::new(Shared {
            slots: (0..n).map(|_| Mutex::new(Snapshot::default())).collect(),
            config: Mutex::new((0, None)),
        })
    }

    /// Hands a reloaded config to every other worker; returns its generation.
    pub fn publish_config(&self, cfg: &Config) -> u64 {
        match self.config.lock() {
            Ok(mut c) => {
                *c = (c.0 + 1, Some(cfg.clone()));
                c.0
            }
            Err(_) => 0,
        }
    }

    /// The last reloaded config, if it is newer than generation `seen`, with its generation.
    pub fn config_since(&self, seen: u64) -> Option<(u64, Config)> {
        let c = self.config.lock().ok()?;
        match &c.1 {
            Some(cfg) if c.0 > seen => Some((c.0, cfg.clone())),
            _ => None,
        }
    }

    /// How many workers there are.
    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// Replaces worker `i`'s snapshot.
    pub fn publish(&self, i: usize, snap: Snapshot) {
        if let Some(Ok(mut slot)) = self.slots.get(i).map(Mutex::lock) {
            *slot = snap;
        }
    }

    /// Every snapshot but worker `me`'s.
    pub fn others(&self, me: usize) -> Vec<Snapshot> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .filter_map(|(_, s)| s.lock().ok().map(|s| s.clone()))
            .collect()
    }
}

/// Runs `workers` event loops on threads, the first on `listeners`, the others on listeners of
/// their own bound to the same port; returns when all have stopped, with the worst outcome.
pub fn run_workers(listeners: Listeners, cfg: Config, workers: usize) -> io::Result<Stop> {
    if workers <= 1 {
        return Proxy::new(listeners, cfg)?.serve();
    }
    let shared = Shared::new(workers);
    let mut all = Vec::with_capacity(workers);
    for _ in 1..workers {
        all.push(listeners.another()?);
    }
    all.insert(0, listeners);
    let threads: Vec<_> = all
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let (cfg, shared) = (cfg.clone(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || -> io::Result<Stop> {
                    let mut p = Proxy::new(l, cfg)?;
                    p.join_workers(i, shared);
                    p.serve()
                })
        })
        .collect::<io::Result<_>>()?;
    let mut worst = Stop::Drained;
    for t in threads {
        let stop = t
            .join()
            .map_err(|_| io::Error::other("a worker panicked"))??;
        worst = worst.max(stop);
    }
    Ok(worst)
}
