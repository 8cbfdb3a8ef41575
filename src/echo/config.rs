//! rr-echo's command line: flags read raw, then checked into a [`Config`] whose every field is
//! known good, so the server never meets a setting it has to second-guess.

use std::net::IpAddr;
use std::time::Duration;

use super::behaviour::{DelayMs, Settings, SettingsError};
use crate::cli::{self, Args, UsageError};
use crate::http::head::DEFAULT_MAX_HEAD;

/// The default cap on one request body, which rr-echo holds in memory whole before echoing it.
pub const DEFAULT_MAX_BODY: usize = 8 << 20;
/// Above this a body cap is a typo: every connection may hold that much at once.
pub const MAX_MAX_BODY: usize = 1 << 30;
/// The smallest head cap accepted: below it an ordinary request line and Host do not fit.
pub const MIN_MAX_HEAD: usize = 256;
/// The largest head cap accepted; the input buffer of a connection may grow to it.
pub const MAX_MAX_HEAD: usize = 16 << 20;
/// The default connection cap: far above any test, low enough to stay under common fd limits.
pub const DEFAULT_MAX_CONNS: usize = 10_000;
/// Slab keys are tokens, and the listener's token sits above every key.
pub const MAX_MAX_CONNS: usize = 1 << 20;
/// How long a head (or the next stretch of body) may take by default, as in nginx's
/// `client_header_timeout` default of 60 s but shorter, since rr-echo only meets test clients.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest header timeout accepted; beyond it a stuck client is never cut in practice.
pub const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest instance name, which is sent on every response.
pub const MAX_NAME_LEN: usize = 128;

/// The usage text; `--help` prints it and it lists every flag with its default.
pub const HELP: &str = "\
rr-echo: the backend rr-proxy is tested against. Echoes JSON, answers health checks, and
misbehaves on demand.

USAGE: rr-echo --port PORT [FLAGS]

FLAGS:
  --port PORT             TCP port to listen on, 0 for any free one (required)
  --host IP               address to bind [default: 127.0.0.1]
  --name NAME             sent as X-Echo-Instance on every response [default: echo-<port>]
  --max-body SIZE         largest request body, e.g. 512K, 8M [default: 8M]
  --max-head SIZE         largest request head [default: 64K]
  --max-conns N           open connections at most; more wait in the backlog [default: 10000]
  --header-timeout DUR    time allowed for a head, and for body or write progress
                          (e.g. 300ms, 10s, 1m) [default: 10s]
  --seed N                seed of the misbehaviour generator [default: 1]
  --error-rate F          fraction of application requests answered 500, 0..=1 [default: 0]
  --delay MS|MIN-MAX      hold application answers back, in milliseconds [default: 0]
  --fail-every N          answer every Nth application request with 500, N >= 1 [default: off]
  --help                  print this text

ENDPOINTS:
  POST / and POST /reflect   echo a JSON body (400 if it is not JSON)
  GET|HEAD /healthz          200 {\"status\":\"ok\"} or 503 {\"status\":\"unhealthy\"}
  GET /control               the current settings as JSON
  POST /control              change any of healthy, error_rate, delay_ms, fail_every, seed

Logging goes to stderr; set RUST_LOG=debug for more.
";

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind; 0 lets the system choose, and the bound port is printed.
    pub port: u16,
    /// The instance name; `None` means `echo-<bound port>`, known only after binding.
    pub name: Option<String>,
    /// The largest request body accepted (413 above it).
    pub max_body: usize,
    /// The largest request head accepted (431 above it).
    pub max_head: usize,
    /// The most connections open at once.
    pub max_conns: usize,
    /// How long a head may take, and how long body reads or writes may stall.
    pub header_timeout: Duration,
    /// The misbehaviour in force at start.
    pub settings: Settings,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Serve with this configuration.
    Run(Config),
    /// Print [`HELP`] and exit successfully.
    Help,
}

/// The flags as given, before the rules that join several of them are checked.
#[derive(Default)]
struct Raw {
    host: Option<IpAddr>,
    port: Option<u16>,
    name: Option<String>,
    max_body: Option<usize>,
    max_head: Option<usize>,
    max_conns: Option<usize>,
    header_timeout: Option<Duration>,
    seed: Option<u64>,
    error_rate: Option<f64>,
    delay: Option<DelayMs>,
    fail_every: Option<u64>,
}

/// Reads the arguments after the program name. Every error names the flag at fault.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, UsageError> {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "-h") {
        return Ok(Command::Help);
    }
    let mut raw = Raw::default();
    let mut it = Args::new(args.into_iter());
    while let Some(flag) = it.next_flag() {
        match flag?.as_str() {
            "help" => return Ok(Command::Help),
            "host" => raw.host = Some(it.parsed(parse_ip)?),
            "port" => raw.port = Some(it.parsed(cli::parse_num)?),
            "name" => raw.name = Some(it.parsed(parse_name)?),
            "max-body" => raw.max_body = Some(it.parsed(cli::parse_size)?),
            "max-head" => raw.max_head = Some(it.parsed(cli::parse_size)?),
            "max-conns" => raw.max_conns = Some(it.parsed(cli::parse_num)?),
            "header-timeout" => raw.header_timeout = Some(it.parsed(cli::parse_duration)?),
            "seed" => raw.seed = Some(it.parsed(cli::parse_num)?),
            "error-rate" => raw.error_rate = Some(it.parsed(cli::parse_num)?),
            "delay" => raw.delay = Some(it.parsed(parse_delay)?),
            "fail-every" => raw.fail_every = Some(it.parsed(cli::parse_num)?),
            other => return Err(UsageError(format!("unknown flag --{other} (see --help)"))),
        }
    }
    raw.validate().map(Command::Run)
}

impl Raw {
    /// Applies defaults and checks the ranges; errors name the flag.
    fn validate(self) -> Result<Config, UsageError> {
        let Some(port) = self.port else {
            return bad("port", &"is required (0 picks a free port)");
        };
        let max_body = self.max_body.unwrap_or(DEFAULT_MAX_BODY);
        if max_body > MAX_MAX_BODY {
            return bad("max-body", &"may be at most 1G");
        }
        let max_head = self.max_head.unwrap_or(DEFAULT_MAX_HEAD);
        if !(MIN_MAX_HEAD..=MAX_MAX_HEAD).contains(&max_head) {
            return bad("max-head", &"must be between 256 and 16M");
        }
        let max_conns = self.max_conns.unwrap_or(DEFAULT_MAX_CONNS);
        if !(1..=MAX_MAX_CONNS).contains(&max_conns) {
            return bad("max-conns", &"must be between 1 and 1048576");
        }
        let header_timeout = self.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT);
        if header_timeout.is_zero() || header_timeout > MAX_HEADER_TIMEOUT {
            return bad("header-timeout", &"must be above 0 and at most 1h");
        }
        let settings = self.settings()?;
        Ok(Config {
            host: self.host.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            port,
            name: self.name,
            max_body,
            max_head,
            max_conns,
            header_timeout,
            settings,
        })
    }

    /// The misbehaviour flags, checked by the same rules `/control` applies.
    fn settings(&self) -> Result<Settings, UsageError> {
        if self.fail_every == Some(0) {
            return bad(
                "fail-every",
                &"must be at least 1 (leave it out to never fail)",
            );
        }
        let settings = Settings {
            healthy: true,
            error_rate: self.error_rate.unwrap_or(0.0),
            delay: self.delay.unwrap_or_default(),
            fail_every: self.fail_every.unwrap_or(0),
            seed: self.seed.unwrap_or(1),
        };
        settings.validate().map_err(|e| {
            let flag = match e {
                SettingsError::ErrorRate => "error-rate",
                SettingsError::DelayOrder | SettingsError::DelayTooLong => "delay",
            };
            UsageError(format!("--{flag}: {e}"))
        })?;
        Ok(settings)
    }
}

/// A usage error naming `flag`.
fn bad<T>(flag: &str, why: &dyn std::fmt::Display) -> Result<T, UsageError> {
    Err(UsageError(format!("--{flag}: {why}")))
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| "expected an IP address such as 127.0.0.1 or ::1".to_string())
}

/// The name goes into a header field, so it must be visible ASCII without spaces at the ends.
fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NAME_LEN} characters"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') || s.trim() != s {
        return Err("may hold only visible ASCII and inner spaces".into());
    }
    Ok(s.to_string())
}

/// `MS` or `MIN-MAX`, in milliseconds. Order and the upper bound are checked with the other
/// settings, so flags and `/control` report them alike.
pub fn parse_delay(s: &str) -> Result<DelayMs, String> {
    let ms = |p: &str| {
        p.trim().parse::<u64>().map_err(|_| {
            "expected milliseconds as MS or MIN-MAX, such as 200 or 100-500".to_string()
        })
    };
    match s.split_once('-') {
        Some((lo, hi)) => Ok(DelayMs {
            min: ms(lo)?,
            max: ms(hi)?,
        }),
        None => {
            let d = ms(s)?;
            Ok(DelayMs { min: d, max: d })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn config(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Command::Run(c)) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = config(&["--port", "8081"]);
        assert_eq!(c.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.port, 8081);
        assert_eq!(c.name, None);
        assert_eq!(c.max_body, 8 << 20);
        assert_eq!(c.max_head, 64 << 10);
        assert_eq!(c.max_conns, 10_000);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.settings, Settings::default());
    }

    #[test]
    fn every_flag() {
        let c = config(&[
            "--port=0",
            "--host",
            "::1",
            "--name",
            "e1",
            "--max-body",
            "16M",
            "--max-head",
            "8K",
            "--max-conns",
            "5",
            "--header-timeout",
            "300ms",
            "--seed",
            "7",
            "--error-rate",
            "0.25",
            "--delay",
            "10-20",
            "--fail-every",
            "2",
        ]);
        assert_eq!(c.host, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(c.name.as_deref(), Some("e1"));
        assert_eq!(
            (c.max_body, c.max_head, c.max_conns),
            (16 << 20, 8 << 10, 5)
        );
        assert_eq!(c.header_timeout, Duration::from_millis(300));
        let s = c.settings;
        assert_eq!((s.seed, s.error_rate, s.fail_every), (7, 0.25, 2));
        assert_eq!(s.delay, DelayMs { min: 10, max: 20 });
        assert_eq!(
            config(&["--port", "1", "--delay", "500"])
                .settings
                .delay
                .max,
            500
        );
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["--port", "x", "-h"]), Ok(Command::Help));
        for flag in [
            "--port",
            "--host",
            "--name",
            "--max-body",
            "--max-head",
            "--max-conns",
            "--header-timeout",
            "--seed",
            "--error-rate",
            "--delay",
            "--fail-every",
        ] {
            assert!(HELP.contains(flag), "{flag} missing from --help");
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--port"),
            (&["--port", "x"], "--port"),
            (&["--port", "65536"], "--port"),
            (&["--port", "-1"], "--port"),
            (&["--port", "1", "--host", "localhost"], "--host"),
            (&["--port", "1", "--error-rate", "2"], "--error-rate"),
            (&["--port", "1", "--error-rate", "-0.5"], "--error-rate"),
            (&["--port", "1", "--error-rate", "NaN"], "--error-rate"),
            (&["--port", "1", "--delay", "9-3"], "--delay"),
            (&["--port", "1", "--delay", "fast"], "--delay"),
            (&["--port", "1", "--delay", "99999999"], "--delay"),
            (&["--port", "1", "--fail-every", "0"], "--fail-every"),
            (&["--port", "1", "--max-body", "2G"], "--max-body"),
            (&["--port", "1", "--max-head", "10"], "--max-head"),
            (&["--port", "1", "--max-conns", "0"], "--max-conns"),
            (
                &["--port", "1", "--header-timeout", "10"],
                "--header-timeout",
            ),
            (
                &["--port", "1", "--header-timeout", "0s"],
                "--header-timeout",
            ),
            (&["--port", "1", "--name", "a\tb"], "--name"),
            (&["--port", "1", "--name", ""], "--name"),
            (&["--port", "1", "--seed"], "--seed"),
            (&["--port", "1", "--bogus"], "--bogus"),
        ];
        for (args, flag) in cases {
            match parse(args) {
                Err(UsageError(msg)) => assert!(msg.contains(flag), "{args:?}: {msg}"),
                Ok(c) => panic!("{args:?} accepted: {c:?}"),
            }
        }
    }
}
