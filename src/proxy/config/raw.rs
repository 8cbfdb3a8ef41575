//! The first stage: settings as strings from the command line, the environment and the JSON
//! file, merged (flags over environment over file), then validated into a [`Config`] with
//! every error naming its setting.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

// The validated types and defaults this stage produces.
use super::*;
use crate::cli::{self, Args, UsageError};
use crate::health::HealthConfig;
use crate::http::head::DEFAULT_MAX_HEAD;
use crate::logging::{self, LogFormat};

/// Settings as strings, before validation; `None` means not given at this layer.
#[derive(Clone, Debug, Default)]
pub struct RawConfig {
    workers: Option<String>,
    admin: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    access_log: Option<bool>,
    drain_timeout: Option<String>,
    mode: Option<String>,
    health: Option<String>,
    listen: Option<String>,
    backends: Option<String>,
    config: Option<String>,
    connect_timeout: Option<String>,
    head_timeout: Option<String>,
    backend_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_conns: Option<String>,
    max_head: Option<String>,
    buffer_size: Option<String>,
    pool_size: Option<String>,
    pipeline: Option<String>,
    backend_header: Option<bool>,
    health_path: Option<String>,
    health_interval: Option<String>,
    health_timeout: Option<String>,
    health_fall: Option<String>,
    health_rise: Option<String>,
    eject_after: Option<String>,
    eject_5xx: Option<bool>,
    eject_base: Option<String>,
    eject_max: Option<String>,
    max_ejected_percent: Option<String>,
    slow_factor: Option<String>,
}

/// What the command line asked for.
pub enum Command {
    /// Print the help and exit 0.
    Help,
    /// Run with these settings.
    Run(Box<Config>),
}

/// Reads the command line, the environment and the config file into a validated config.
pub fn from_args(
    args: impl Iterator<Item = String>,
    env_backends: Option<String>,
) -> Result<Command, UsageError> {
    let args: Vec<String> = args.collect();
    let origin = Origin {
        args: args.clone(),
        env_backends: env_backends.clone(),
    };
    let mut raw = RawConfig::default();
    let mut a = Args::new(args.into_iter());
    while let Some(flag) = a.next_flag() {
        let flag = flag?;
        let slot = match flag.as_str() {
            "help" => return Ok(Command::Help),
            "no-backend-header" => {
                raw.backend_header = Some(false);
                continue;
            }
            "eject-5xx" => {
                raw.eject_5xx = Some(true);
                continue;
            }
            "access-log" => {
                raw.access_log = Some(true);
                continue;
            }
            name => raw.slot(name),
        };
        match slot {
            Some(slot) => *slot = Some(a.value()?),
            None => return Err(UsageError(format!("unknown flag --{flag} (see --help)"))),
        }
    }
    if raw.backends.is_none() {
        raw.backends = env_backends.filter(|s| !s.trim().is_empty());
    }
    if let Some(path) = raw.config.clone() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| UsageError(format!("--config {path:?}: {e}")))?;
        let file = RawConfig::from_json(&text)
            .map_err(|e| UsageError(format!("--config {path:?}: {e}")))?;
        raw = raw.over(file);
    }
    let mut cfg = raw.validate()?;
    cfg.origin = origin;
    Ok(Command::Run(Box::new(cfg)))
}

impl RawConfig {
    /// The string setting a flag or JSON key names.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "listen" => &mut self.listen,
            "admin" => &mut self.admin,
            "workers" => &mut self.workers,
            "log-level" => &mut self.log_level,
            "log-format" => &mut self.log_format,
            "drain-timeout" => &mut self.drain_timeout,
            "mode" => &mut self.mode,
            "health" => &mut self.health,
            "backends" => &mut self.backends,
            "config" => &mut self.config,
            "connect-timeout" => &mut self.connect_timeout,
            "head-timeout" => &mut self.head_timeout,
            "backend-timeout" => &mut self.backend_timeout,
            "idle-timeout" => &mut self.idle_timeout,
            "max-conns" => &mut self.max_conns,
            "max-head" => &mut self.max_head,
            "buffer-size" => &mut self.buffer_size,
            "pool-size" => &mut self.pool_size,
            "pipeline" => &mut self.pipeline,
            "health-path" => &mut self.health_path,
            "health-interval" => &mut self.health_interval,
            "health-timeout" => &mut self.health_timeout,
            "health-fall" => &mut self.health_fall,
            "health-rise" => &mut self.health_rise,
            "eject-after" => &mut self.eject_after,
            "eject-base" => &mut self.eject_base,
            "eject-max" => &mut self.eject_max,
            "max-ejected-percent" => &mut self.max_ejected_percent,
            "slow-factor" => &mut self.slow_factor,
            _ => return None,
        })
    }

    /// Reads a JSON object whose keys are the flag names with `_` (or `-`). Numbers are taken
    /// as written, lists of backends as lists.
    pub fn from_json(text: &str) -> Result<RawConfig, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or_else(|| "expected a JSON object".to_string())?;
        let mut raw = RawConfig::default();
        for (key, v) in obj {
            let name = key.replace('_', "-");
            let flag = match name.as_str() {
                "backend-header" => Some(&mut raw.backend_header),
                "eject-5xx" => Some(&mut raw.eject_5xx),
                "access-log" => Some(&mut raw.access_log),
                _ => None,
            };
            if let Some(flag) = flag {
                let b = v
                    .as_bool()
                    .ok_or_else(|| format!("{key}: expected true or false"))?;
                *flag = Some(b);
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Array(items) if name == "backends" => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("{key}: expected a list of strings"))?
                    .join(","),
                _ => return Err(format!("{key}: expected a string or a number")),
            };
            match raw.slot(&name) {
                Some(slot) if name != "config" => *slot = Some(text),
                _ => return Err(format!("unknown setting {key:?}")),
            }
        }
        Ok(raw)
    }

    /// `self` with every unset setting taken from `lower`.
    fn over(self, lower: RawConfig) -> RawConfig {
        RawConfig {
            workers: self.workers.or(lower.workers),
            admin: self.admin.or(lower.admin),
            log_level: self.log_level.or(lower.log_level),
            log_format: self.log_format.or(lower.log_format),
            access_log: self.access_log.or(lower.access_log),
            drain_timeout: self.drain_timeout.or(lower.drain_timeout),
            mode: self.mode.or(lower.mode),
            health: self.health.or(lower.health),
            listen: self.listen.or(lower.listen),
            backends: self.backends.or(lower.backends),
            config: self.config,
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            head_timeout: self.head_timeout.or(lower.head_timeout),
            backend_timeout: self.backend_timeout.or(lower.backend_timeout),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            max_conns: self.max_conns.or(lower.max_conns),
            max_head: self.max_head.or(lower.max_head),
            buffer_size: self.buffer_size.or(lower.buffer_size),
            pool_size: self.pool_size.or(lower.pool_size),
            pipeline: self.pipeline.or(lower.pipeline),
            backend_header: self.backend_header.or(lower.backend_header),
            health_path: self.health_path.or(lower.health_path),
            health_interval: self.health_interval.or(lower.health_interval),
            health_timeout: self.health_timeout.or(lower.health_timeout),
            health_fall: self.health_fall.or(lower.health_fall),
            health_rise: self.health_rise.or(lower.health_rise),
            eject_after: self.eject_after.or(lower.eject_after),
            eject_5xx: self.eject_5xx.or(lower.eject_5xx),
            eject_base: self.eject_base.or(lower.eject_base),
            eject_max: self.eject_max.or(lower.eject_max),
            max_ejected_percent: self.max_ejected_percent.or(lower.max_ejected_percent),
            slow_factor: self.slow_factor.or(lower.slow_factor),
        }
    }

    /// Turns strings into typed settings; every error names its setting.
    pub fn validate(self) -> Result<Config, UsageError> {
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = resolve(listen_text).map_err(|e| named("listen", listen_text, &e))?;
        let backends_text = self.backends.as_deref().ok_or_else(|| {
            UsageError("no backends: give --backends host:port,... or set BACKEND_SERVERS".into())
        })?;
        let backends =
            parse_backends(backends_text).map_err(|e| named("backends", backends_text, &e))?;
        let dur =
            |name, v: &Option<String>, default| setting(name, v, default, cli::parse_duration);
        let connect_timeout = dur(
            "connect-timeout",
            &self.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?;
        let head_timeout = dur("head-timeout", &self.head_timeout, DEFAULT_HEAD_TIMEOUT)?;
        let backend_timeout = dur(
            "backend-timeout",
            &self.backend_timeout,
            DEFAULT_BACKEND_TIMEOUT,
        )?;
        let idle_timeout = dur("idle-timeout", &self.idle_timeout, DEFAULT_IDLE_TIMEOUT)?;
        let max_conns = setting(
            "max-conns",
            &self.max_conns,
            DEFAULT_MAX_CONNS,
            cli::parse_num,
        )?;
        let max_head = setting(
            "max-head",
            &self.max_head,
            DEFAULT_MAX_HEAD,
            cli::parse_size,
        )?;
        let buffer_size = setting(
            "buffer-size",
            &self.buffer_size,
            DEFAULT_BUFFER_SIZE,
            cli::parse_size,
        )?;
        let pool_size = setting(
            "pool-size",
            &self.pool_size,
            DEFAULT_POOL_SIZE,
            cli::parse_num,
        )?;
        let pipeline = setting("pipeline", &self.pipeline, DEFAULT_PIPELINE, cli::parse_num)?;
        let rules: [(&str, bool, &str); 7] = [
            (
                "pipeline",
                (1..=MAX_PIPELINE).contains(&pipeline),
                "must be between 1 and 16",
            ),
            ("max-conns", max_conns >= 1, "must be at least 1"),
            (
                "max-head",
                (256..=1 << 20).contains(&max_head),
                "must be between 256 and 1M",
            ),
            (
                "buffer-size",
                (1024..=16 << 20).contains(&buffer_size),
                "must be between 1K and 16M",
            ),
            (
                "connect-timeout",
                !connect_timeout.is_zero(),
                "must be more than zero",
            ),
            (
                "head-timeout",
                !head_timeout.is_zero(),
                "must be more than zero",
            ),
            (
                "backend-timeout",
                !backend_timeout.is_zero(),
                "must be more than zero",
            ),
        ];
        if let Some((name, _, why)) = rules.iter().find(|(_, ok, _)| !ok) {
            return Err(UsageError(format!("--{name}: {why}")));
        }
        let probe = self.probe_config()?;
        let health = self.health_config()?;
        let mode = match self.mode.as_deref().unwrap_or("http") {
            "http" => Mode::Http,
            "tcp" => Mode::Tcp,
            other => return Err(named("mode", other, "must be http or tcp")),
        };
        let drain_timeout = dur("drain-timeout", &self.drain_timeout, DEFAULT_DRAIN_TIMEOUT)?;
        let workers = setting("workers", &self.workers, 1, cli::parse_num::<usize>)?;
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(UsageError(format!("--workers: must be 1 to {MAX_WORKERS}")));
        }
        let admin = match &self.admin {
            Some(text) => Some(resolve(text).map_err(|e| named("admin", text, &e))?),
            None => None,
        };
        if let Some(level) = &self.log_level {
            logging::check_level(level).map_err(|e| named("log-level", level, e.as_str()))?;
        }
        let log_format = match self.log_format.as_deref() {
            None => LogFormat::Text,
            Some(f) => f
                .parse()
                .map_err(|_| named("log-format", f, "must be text or json"))?,
        };
        Ok(Config {
            workers,
            admin,
            log_level: self.log_level.clone(),
            log_format,
            access_log: self.access_log.unwrap_or(false),
            drain_timeout,
            origin: Origin::default(),
            mode,
            probe,
            health,
            listen,
            backends,
            connect_timeout,
            head_timeout,
            backend_timeout,
            idle_timeout,
            max_conns,
            max_conns_set: self.max_conns.is_some(),
            max_head,
            buffer_size,
            pool_size,
            pipeline,
            backend_header: self.backend_header.unwrap_or(true),
        })
    }
}

impl RawConfig {
    fn probe_config(&self) -> Result<ProbeConfig, UsageError> {
        let path = self
            .health_path
            .clone()
            .unwrap_or_else(|| "/healthz".into());
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(named(
                "health-path",
                &path,
                "must start with / and hold no spaces",
            ));
        }
        let dur =
            |name, v: &Option<String>, default| setting(name, v, default, cli::parse_duration);
        let interval = dur(
            "health-interval",
            &self.health_interval,
            Duration::from_secs(2),
        )?;
        let timeout = dur(
            "health-timeout",
            &self.health_timeout,
            Duration::from_secs(1),
        )?;
        if timeout.is_zero() {
            return Err(UsageError(
                "--health-timeout: must be more than zero".into(),
            ));
        }
        let kind = match self.health.as_deref().unwrap_or("http") {
            "http" => ProbeKind::Http,
            "tcp" => ProbeKind::Tcp,
            other => return Err(named("health", other, "must be http or tcp")),
        };
        Ok(ProbeConfig {
            kind,
            path,
            interval,
            timeout,
        })
    }

    fn health_config(&self) -> Result<HealthConfig, UsageError> {
        let d = HealthConfig::default();
        let num =
            |name, v: &Option<String>, default| setting(name, v, default, cli::parse_num::<u32>);
        let dur =
            |name, v: &Option<String>, default| setting(name, v, default, cli::parse_duration);
        let h = HealthConfig {
            rise: num("health-rise", &self.health_rise, d.rise)?,
            fall: num("health-fall", &self.health_fall, d.fall)?,
            eject_after: num("eject-after", &self.eject_after, d.eject_after)?,
            eject_5xx: self.eject_5xx.unwrap_or(d.eject_5xx),
            eject_base: dur("eject-base", &self.eject_base, d.eject_base)?,
            eject_max: dur("eject-max", &self.eject_max, d.eject_max)?,
            max_ejected_percent: num(
                "max-ejected-percent",
                &self.max_ejected_percent,
                d.max_ejected_percent,
            )?,
            slow_factor: setting(
                "slow-factor",
                &self.slow_factor,
                d.slow_factor,
                cli::parse_num,
            )?,
        };
        let rules: [(&str, bool, &str); 5] = [
            ("health-rise", h.rise >= 1, "must be at least 1"),
            ("health-fall", h.fall >= 1, "must be at least 1"),
            (
                "eject-base",
                !h.eject_base.is_zero(),
                "must be more than zero",
            ),
            (
                "eject-max",
                h.eject_max >= h.eject_base,
                "must be at least --eject-base",
            ),
            (
                "max-ejected-percent",
                h.max_ejected_percent <= 100,
                "must be 0 to 100",
            ),
        ];
        if let Some((name, _, why)) = rules.iter().find(|(_, ok, _)| !ok) {
            return Err(UsageError(format!("--{name}: {why}")));
        }
        if !(h.slow_factor == 0.0 || (1.0..=1000.0).contains(&h.slow_factor)) {
            return Err(UsageError(
                "--slow-factor: must be 0 (off) or 1 to 1000".into(),
            ));
        }
        Ok(h)
    }
}

fn named(name: &str, value: &str, why: &str) -> UsageError {
    UsageError(format!("--{name} {value:?}: {why}"))
}

fn setting<T>(
    name: &str,
    value: &Option<String>,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, UsageError> {
    match value {
        None => Ok(default),
        Some(v) => parse(v).map_err(|e| named(name, v, &e)),
    }
}

/// Resolves `host:port` once, preferring an IPv4 address.
fn resolve(text: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| "resolves to no address".to_string())
}

/// `a:1,http://b:2=3,c:3` → backends; `http://`, a trailing `/` and a `=weight` are accepted.
pub fn parse_backends(text: &str) -> Result<Vec<BackendAddr>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (item, weight) = match item.rsplit_once('=') {
            Some((addr, w)) => match w.trim().parse::<u32>() {
                Ok(w) if (1..=MAX_WEIGHT).contains(&w) => (addr.trim(), w),
                _ => return Err(format!("{item:?}: weight must be 1 to {MAX_WEIGHT}")),
            },
            None => (item, 1),
        };
        let name = item.strip_prefix("http://").unwrap_or(item);
        let name = name.strip_suffix('/').unwrap_or(name);
        if name.contains('/') || name.contains("://") {
            return Err(format!("{item:?} is not host:port"));
        }
        let addr = resolve(name).map_err(|e| format!("{item:?}: {e}"))?;
        if addr.port() == 0 {
            return Err(format!("{item:?}: port 0 cannot be dialled"));
        }
        out.push(BackendAddr {
            addr,
            name: name.to_string(),
            weight,
        });
    }
    if out.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: Option<&str>) -> Result<Config, String> {
        let args = args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match from_args(args.into_iter(), env.map(str::to_string)) {
            Ok(Command::Run(c)) => Ok(*c),
            Ok(Command::Help) => Err("help".into()),
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn defaults_and_backends() {
        let c = parse(
            &["--backends", "127.0.0.1:8081, http://127.0.0.1:8082/"],
            None,
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.backends[1].name, "127.0.0.1:8082");
        assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.max_head, DEFAULT_MAX_HEAD);
        assert!(c.backend_header);
        let err = parse(&["--backends", "127.0.0.1:0"], None).unwrap_err();
        assert!(err.contains("backends") && err.contains("port 0"), "{err}");
        let err = parse(
            &["--backends", "127.0.0.1:1", "--idle-timeout", "9999999m"],
            None,
        );
        assert!(err.unwrap_err().contains("idle-timeout"));
    }

    #[test]
    fn weights_and_health_settings() {
        let c = parse(
            &[
                "--backends",
                "127.0.0.1:1=5,127.0.0.1:2",
                "--health-interval",
                "0s",
                "--eject-5xx",
                "--eject-after=2",
            ],
            None,
        )
        .unwrap();
        let weights: Vec<u32> = c.backends.iter().map(|b| b.weight).collect();
        assert_eq!(weights, [5, 1]);
        assert!(c.probe.interval.is_zero());
        assert_eq!(c.probe.path, "/healthz");
        assert!(c.health.eject_5xx);
        assert_eq!(c.health.eject_after, 2);
        for bad in ["127.0.0.1:1=0", "127.0.0.1:1=x", "127.0.0.1:1=1001"] {
            let err = parse(&["--backends", bad], None).unwrap_err();
            assert!(err.contains("weight"), "{err}");
        }
        let cases: &[(&str, &str)] = &[
            ("--health-rise", "0"),
            ("--health-timeout", "0s"),
            ("--max-ejected-percent", "101"),
            ("--slow-factor", "0.5"),
            ("--health-path", "healthz"),
            ("--eject-max", "1ms"),
        ];
        for (flag, value) in cases {
            let err = parse(&["--backends", "127.0.0.1:1", flag, value], None).unwrap_err();
            assert!(err.contains(&flag[2..]), "{flag}: {err}");
        }
    }

    #[test]
    fn max_conns_is_lowered_to_fit_the_open_file_limit() {
        let mut c = parse(
            &["--backends", "127.0.0.1:1,127.0.0.1:2", "--pool-size", "10"],
            None,
        )
        .unwrap();
        let mut asked =
            parse(&["--backends", "127.0.0.1:1", "--max-conns", "12000"], None).unwrap();
        let warning = asked.fit_descriptors(1024).unwrap();
        assert!(warning.contains("kept as asked"), "{warning}");
        assert_eq!(asked.max_conns, 12000);
        assert_eq!(c.fit_descriptors(1 << 20), None, "plenty");
        // A total over the workers, each taking its share.
        let four = [
            "--backends",
            "127.0.0.1:1",
            "--max-conns",
            "10",
            "--workers",
            "4",
        ];
        assert_eq!(parse(&four, None).unwrap().max_conns_per_worker(), 3);
        assert_eq!(
            c.fit_descriptors(20_000),
            None,
            "short by less than a tenth"
        );
        // 1024 - 32 reserved - 2 probes = 990, two each: 495. Pools are not counted: the loop
        // closes parked connections when it runs short.
        let changed = c.fit_descriptors(1024).unwrap();
        assert_eq!(changed, "--max-conns 10000 -> 495");
        assert_eq!(c.fit_descriptors(1024), None, "fits now");
        assert_eq!(c.pool_size, 10, "pools left alone");
        // 96 - 32 - 2 = 62: 31 clients.
        assert_eq!(c.fit_descriptors(96).unwrap(), "--max-conns 495 -> 31");
        c.fit_descriptors(10);
        assert_eq!(c.max_conns, 1, "never below one client");
    }

    #[test]
    fn descriptors_wanted_counts_clients_twice_and_a_pool_and_probe_per_backend() {
        let c = parse(
            &["--backends", "127.0.0.1:1,127.0.0.1:2", "--pool-size", "10"],
            None,
        )
        .unwrap();
        // 32 reserved + 2 backends x (1 probe + 10 pooled) + 10 000 clients x 2.
        assert_eq!(c.descriptors_wanted(), 32 + 22 + 20_000);
        let mut two = c.clone();
        two.workers = 2;
        assert_eq!(two.descriptors_wanted(), 32 + 44 + 20_000);
        // What it asks for is what fit_descriptors takes as enough.
        let mut fitted = c.clone();
        assert_eq!(fitted.fit_descriptors(c.descriptors_wanted()), None);
    }

    #[test]
    fn environment_fills_in_backends() {
        let c = parse(&["--listen=127.0.0.1:0"], Some("127.0.0.1:9000")).unwrap();
        assert_eq!(c.backends[0].addr, "127.0.0.1:9000".parse().unwrap());
        let c = parse(&["--backends", "127.0.0.1:1"], Some("127.0.0.1:9000")).unwrap();
        assert_eq!(c.backends[0].addr.port(), 1);
    }

    #[test]
    fn errors_name_the_setting() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "no backends"),
            (&["--backends", ""], "--backends"),
            (&["--backends", "127.0.0.1"], "--backends"),
            (&["--backends", "http://a:1/x"], "--backends"),
            (
                &["--backends", "127.0.0.1:1", "--listen", "nope"],
                "--listen",
            ),
            (
                &["--backends", "127.0.0.1:1", "--connect-timeout", "3"],
                "--connect-timeout",
            ),
            (
                &["--backends", "127.0.0.1:1", "--max-conns", "0"],
                "--max-conns",
            ),
            (
                &["--backends", "127.0.0.1:1", "--max-head", "1G"],
                "--max-head",
            ),
            (&["--backends", "127.0.0.1:1", "--bogus", "1"], "--bogus"),
            (
                &["--backends", "127.0.0.1:1", "--config", "/nonexistent.json"],
                "--config",
            ),
        ];
        for (args, want) in cases {
            let err = parse(args, None).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn json_file_under_flags() {
        let file = RawConfig::from_json(
            r#"{"backends": ["127.0.0.1:1", "127.0.0.1:2"], "connect_timeout": "1s",
                "max_conns": 5, "backend_header": false}"#,
        )
        .unwrap();
        let flags = RawConfig {
            max_conns: Some("7".into()),
            ..RawConfig::default()
        };
        let c = flags.over(file).validate().unwrap();
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.max_conns, 7);
        assert!(!c.backend_header);
        assert!(RawConfig::from_json(r#"{"nope": 1}"#).is_err());
        assert!(RawConfig::from_json("[1]").is_err());
    }
}
