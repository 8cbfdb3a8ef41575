//! The proxy's settings in two stages: raw strings gathered from the command line, the
//! `BACKEND_SERVERS` environment variable and a JSON file, then one validation step that turns
//! them into typed values or an error naming the setting.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::UsageError;
use crate::health::HealthConfig;
use crate::logging::LogFormat;

mod raw;

pub use raw::{from_args, parse_backends, Command, RawConfig};

/// One backend as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendAddr {
    /// Where to connect (the name resolved once, at start).
    pub addr: SocketAddr,
    /// As the user wrote it, for logs and the `X-Backend-Server` header.
    pub name: String,
    /// Its share of the rotation (`host:port=W`), 1 unless given.
    pub weight: u32,
}

/// What the proxy speaks to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// HTTP/1.1: a backend per request.
    Http,
    /// Plain TCP: a backend per connection, bytes relayed untouched.
    Tcp,
}

/// What an active health check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// `GET <path>`; a 2xx passes.
    Http,
    /// A TCP connect; success passes.
    Tcp,
}

/// Active health checks: one probe per backend per interval, inside the event loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// HTTP request or plain connect.
    pub kind: ProbeKind,
    /// The path probed.
    pub path: String,
    /// Time between probes of one backend; zero turns probing off.
    pub interval: Duration,
    /// Longest a probe may take, connect included.
    pub timeout: Duration,
}

/// Validated settings. Every field has a default a production user can live with.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTP or TCP.
    pub mode: Mode,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The backends, in rotation order.
    pub backends: Vec<BackendAddr>,
    /// Longest wait for a backend's TCP handshake before trying the next backend.
    pub connect_timeout: Duration,
    /// Longest a client may take to send a whole request head (answered with 408).
    pub head_timeout: Duration,
    /// Longest wait for a whole response head (answered with 504), then for each next body
    /// byte.
    pub backend_timeout: Duration,
    /// How long an idle keep-alive client connection is kept.
    pub idle_timeout: Duration,
    /// Most client connections open at once, over all workers; beyond it the proxy stops
    /// accepting.
    pub max_conns: usize,
    /// `max_conns` was given (a flag or the file), not the default: it is kept as it is.
    pub max_conns_set: bool,
    /// Largest request or response head (431 / 502 beyond it).
    pub max_head: usize,
    /// Size of each relay buffer: bytes move through it, so it bounds memory per connection.
    pub buffer_size: usize,
    /// Idle keep-alive connections kept per backend for reuse.
    pub pool_size: usize,
    /// Most GET requests sent together on one idle backend connection when they arrive at
    /// once; 1 sends every request on a connection of its own.
    pub pipeline: usize,
    /// Add `X-Backend-Server` to responses.
    pub backend_header: bool,
    /// Active health checks.
    pub probe: ProbeConfig,
    /// Rise and fall, ejection and slowness rules.
    pub health: HealthConfig,
    /// After SIGTERM, how long requests in flight may take before the proxy exits anyway.
    pub drain_timeout: Duration,
    /// Where the settings came from, so SIGHUP can read them again the same way.
    pub origin: Origin,
    /// Where `/metrics`, `/status` and `/healthz` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    /// The log filter (`--log-level`), else `RUST_LOG`, else `warn`.
    pub log_level: Option<String>,
    /// Text or JSON lines.
    pub log_format: LogFormat,
    /// One line per request under the `access` target.
    pub access_log: bool,
    /// Event loops (threads) sharing the listening port.
    pub workers: usize,
}

/// The command line and environment a config was made from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The arguments after the program name.
    pub args: Vec<String>,
    /// `BACKEND_SERVERS`, if set.
    pub env_backends: Option<String>,
}

impl Config {
    /// Reads the settings again from the same flags, environment and `--config` file: what
    /// SIGHUP does. The file is the part that can have changed.
    pub fn reread(&self) -> Result<Config, UsageError> {
        let o = &self.origin;
        match from_args(o.args.clone().into_iter(), o.env_backends.clone())? {
            Command::Run(mut cfg) => {
                if let Some(limit) = crate::net::limit::raise_open_files(cfg.descriptors_wanted()) {
                    cfg.fit_descriptors(limit);
                }
                Ok(*cfg)
            }
            Command::Help => Err(UsageError("--help on reload".into())),
        }
    }

    /// Each worker's share of `max_conns` (rounded up: the kernel spreads connections over
    /// the workers' sockets by hash, not evenly).
    pub fn max_conns_per_worker(&self) -> usize {
        self.max_conns.div_ceil(self.workers.max(1))
    }

    /// The descriptors these settings can use at once: the reserve, and per worker a probe
    /// and a full pool per backend; for each client its connection and one to a backend.
    pub fn descriptors_wanted(&self) -> u64 {
        let backends = self.backends.len().max(1) as u64;
        let per_worker = backends * (1 + self.pool_size as u64);
        RESERVED_DESCRIPTORS
            .saturating_add(per_worker.saturating_mul(self.workers.max(1) as u64))
            .saturating_add((self.max_conns as u64).saturating_mul(2))
    }

    /// Fits the settings to `limit` descriptors (the process's `ulimit -n`, once raised as far
    /// as it goes), as HAProxy derives its default maxconn: a client accepted near the limit
    /// would find no descriptor left for its backend connection and get 503, where one waiting
    /// in the listen backlog would have been served. The default `max_conns` is lowered until
    /// each client has room for a backend connection too; a `max_conns` that was asked for is
    /// kept, with a warning. Idle pooled connections are not counted: the loop closes them
    /// when it runs short, so they only use descriptors nothing else wants. A limit within a
    /// tenth of what the settings need is left alone: only every client busy at once could
    /// come short, and idle keep-alive clients, which hold no backend connection, would be
    /// refused for nothing (10 000 of them under `ulimit -n 20000`). Says what it changed or
    /// why it warns.
    pub fn fit_descriptors(&mut self, limit: u64) -> Option<String> {
        let backends = self.backends.len().max(1) as u64;
        let workers = self.workers.max(1) as u64;
        // Per worker: a probe per backend, and for each client its connection and one to a
        // backend.
        let room = (limit.saturating_sub(RESERVED_DESCRIPTORS) / workers).saturating_sub(backends);
        let clients = usize::try_from((room / 2 * workers).max(1)).unwrap_or(usize::MAX);
        if self.max_conns <= clients || clients >= self.max_conns / 10 * 9 {
            return None;
        }
        if self.max_conns_set {
            return Some(format!(
                "--max-conns {} kept as asked; about {clients} fit with a backend connection \
                 each, more busy at once may get 503",
                self.max_conns
            ));
        }
        let changed = format!("--max-conns {} -> {clients}", self.max_conns);
        self.max_conns = clients;
        Some(changed)
    }
}

/// Descriptors kept aside from clients and backends: listeners, the poller and its waker,
/// signals, logs, the admin port.
const RESERVED_DESCRIPTORS: u64 = 32;

/// The defaults, also printed by `--help`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// See [`Config::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// See [`Config::head_timeout`].
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`Config::backend_timeout`].
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(30);
/// See [`Config::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// See [`Config::max_conns`].
pub const DEFAULT_MAX_CONNS: usize = 10_000;
/// See [`Config::buffer_size`]: a 64 KiB body and a head of up to 8 KiB move in one read and
/// one write. At exactly 64 KiB the head pushed such a message into a second read and write:
/// a 64 KiB POST echoed back took 5.4 reads and 2.7 writes per request, 72 KiB takes 3.6 and
/// 1.8. Only connections moving bytes hold one; heads are read into small buffers first.
pub const DEFAULT_BUFFER_SIZE: usize = 72 * 1024;
/// See [`Config::pool_size`]: enough that a few thousand busy clients find a parked
/// connection instead of paying a handshake per request (wrk over 3 backends, 4 000 clients:
/// 64 parked gave half the req/s of 1 024 at twice the CPU per request; 1 000 clients: 0.62x
/// the req/s at 1.65x the CPU). A parked connection holds no buffer, and the loop closes
/// parked connections when descriptors run short.
pub const DEFAULT_POOL_SIZE: usize = 1024;
/// See [`Config::pipeline`]. On, because it is most of the proxy's lead in CPU per small
/// GET (`scripts/bench.sh`, 3 rounds: at 50 clients 0.69-0.85 of the best peer with it, 0.97
/// without; at 200, 0.46 against 0.75; `Connection: close` clients fall behind HAProxy
/// without it). What it trusts the backend with is in `pipeline.rs`; `--pipeline 1` for
/// backends that may send more than their `Content-Length` says.
pub const DEFAULT_PIPELINE: usize = 8;
/// The ceiling of [`Config::pipeline`].
pub use crate::proxy::upstream::MAX_PIPELINE;
/// The most workers: more threads than this many cores only add contention.
pub const MAX_WORKERS: usize = 256;
/// See [`Config::drain_timeout`].
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a weight can be: enough for any real ratio, small enough that credit sums stay far
/// from overflow.
pub const MAX_WEIGHT: u32 = 1000;

/// The text of `--help`.
pub const HELP: &str = "\
rr-proxy: a round-robin HTTP/1.1 reverse proxy on one event loop

USAGE:
    rr-proxy [--listen ADDR] [--backends LIST] [OPTIONS]

OPTIONS:
    --listen ADDR            address to accept clients on [default: 0.0.0.0:8080]
    --mode http|tcp          HTTP/1.1 with a backend per request, or plain TCP with a
                             backend per connection [default: http]
    --backends LIST          comma-separated host:port list, `http://` accepted;
                             when absent, BACKEND_SERVERS is read
    --config FILE            JSON file with the same settings (keys as the flags,
                             with _ for -); flags win over the file
    --connect-timeout DUR    backend connect deadline [default: 3s]
    --head-timeout DUR       deadline for a whole request head, 408 after [default: 10s]
    --backend-timeout DUR    wait for a whole response head, then for each body
                             byte; 504 after [default: 30s]
    --idle-timeout DUR       idle keep-alive client connection lifetime [default: 60s]
    --max-conns N            most client connections at once [default: 10000]
    --max-head SIZE          largest request or response head [default: 64K]
    --buffer-size SIZE       size of each relay buffer, held only while bytes move
                             [default: 72K]
    --pool-size N            idle connections kept per backend [default: 1024]
    --pipeline N             GET requests without a body that arrive together may
                             share one idle backend connection, N at most
                             (1 to 16); 1 gives every request its own [default: 8]
    --no-backend-header      do not add X-Backend-Server to responses
    --drain-timeout DUR      after SIGTERM or SIGINT, longest wait for requests in
                             flight before exiting [default: 10s]

OPERATIONS:
    --workers N              event loops, one thread each, sharing the port through
                             SO_REUSEPORT [default: 1]
    --admin ADDR             serve GET /metrics, /status and /healthz there [default: off]
    --log-level FILTER       error, warn, info, debug, or env_logger filters such as
                             warn,rr_proxy=debug [default: RUST_LOG, else warn]
    --log-format text|json   one line per event, as text or a JSON object [default: text]
    --access-log             one line per request: client, method, path, status,
                             backend, bytes each way, duration, and why the proxy
                             answered by itself when it did

HEALTH:
    --health http|tcp        probe with GET PATH, or with a TCP connect only [default: http]
    --health-path PATH       path of the active probe [default: /healthz]
    --health-interval DUR    time between probes of a backend, 0s for none [default: 2s]
    --health-timeout DUR     deadline of one probe [default: 1s]
    --health-fall N          failed probes in a row that take a backend down [default: 3]
    --health-rise N          good probes in a row that bring it back [default: 2]
    --eject-after N          failed requests in a row that eject a backend, 0 for
                             never [default: 3]
    --eject-5xx              count 5xx answers as failed requests
    --eject-base DUR         first ejection; each next one doubles [default: 1s]
    --eject-max DUR          longest ejection [default: 30s]
    --max-ejected-percent P  most backends ejected at once, in percent [default: 50]
    --slow-factor F          skip turns of a backend F times slower than the fastest,
                             0 for off [default: 0]
    --help                   print this text

Backends take a weight as host:port=W (default 1): weights 3,1,1 send three of
every five requests to the first, spread out, never in a burst.

DUR is a number with a unit: 500ms, 3s, 1m. SIZE is bytes, or with K, M or G.
";
