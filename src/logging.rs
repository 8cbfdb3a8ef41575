//! Logging: the process log through env_logger, as text or as one JSON object per line, and
//! the access log, one line per request, formatted without allocating.
//!
//! Access lines go through the `log` facade under the target [`ACCESS_TARGET`], so one filter
//! (`--log-level warn,access=info`) turns them on and they share stderr, and its ordering, with
//! everything else. They are off by default: a line per request costs a write system call.
//!
//! Whatever a client sent (method, path) and whatever a message holds is escaped before it is
//! written, in both formats, so no request can forge or split a log line.

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Record};

/// The log target of access lines. The formatter writes their message as it is: it is
/// already a complete line in the chosen format, escaped by [`write_access`]. Only
/// [`log_access`] should log under it.
pub const ACCESS_TARGET: &str = "access";

/// The filter when neither `--log-level` nor `RUST_LOG` gives one: problems only, so that a
/// busy proxy writes nothing per request unless asked to.
const DEFAULT_FILTER: &str = "warn";

/// How log lines look (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: `<time> <LEVEL> <target>: <message>`.
    #[default]
    Text,
    /// For collectors: one JSON object per line.
    Json,
}

/// A `--log-format` other than `text` or `json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownFormat;

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected text or json")
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for LogFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<LogFormat, UnknownFormat> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownFormat),
        }
    }
}

/// Why a `--log-level` (or `RUST_LOG`) value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelError {
    /// Nothing in it.
    Empty,
    /// A word that is not a level.
    UnknownLevel,
    /// An item that is neither `LEVEL` nor `TARGET=LEVEL`.
    Malformed,
    /// A `/message` filter: not offered on the command line (and at most one in `RUST_LOG`).
    Filter,
}

impl LevelError {
    /// The message, for the caller to prefix with the flag and the value.
    pub fn as_str(self) -> &'static str {
        match self {
            LevelError::Empty => "no level given",
            LevelError::UnknownLevel => "unknown level (off, error, warn, info, debug, trace)",
            LevelError::Malformed => "expected LEVEL or TARGET=LEVEL items, comma-separated",
            LevelError::Filter => "message filters (/...) are not supported",
        }
    }
}

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for LevelError {}

/// Checks a `--log-level` value: `LEVEL` and `TARGET=LEVEL` items separated by commas, such as
/// `info` or `warn,access=info`. Stricter than `RUST_LOG`, where a bare word is a target
/// logged at `trace`: on a command line that is far more likely a mistyped level.
pub fn check_level(spec: &str) -> Result<(), LevelError> {
    check_filter(spec, true)
}

/// `strict` for the flag; otherwise refuses only what env_logger itself would complain about.
fn check_filter(spec: &str, strict: bool) -> Result<(), LevelError> {
    let (items, message) = match spec.split_once('/') {
        Some((items, message)) => (items, Some(message)),
        None => (spec, None),
    };
    if message.is_some_and(|m| strict || m.contains('/')) {
        return Err(LevelError::Filter);
    }
    let is_level = |s: &str| LevelFilter::from_str(s.trim()).is_ok();
    let mut any = false;
    for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        any = true;
        match item.split_once('=') {
            None if strict && !is_level(item) => return Err(LevelError::UnknownLevel),
            None => {}
            Some((_, level)) if level.contains('=') => return Err(LevelError::Malformed),
            Some((target, level)) if strict && (target.trim().is_empty() || level.is_empty()) => {
                return Err(LevelError::Malformed)
            }
            Some((_, level)) if !level.trim().is_empty() && !is_level(level) => {
                return Err(LevelError::UnknownLevel)
            }
            Some(_) => {}
        }
    }
    if strict && !any {
        return Err(LevelError::Empty);
    }
    Ok(())
}

/// The filter to use, and which source was refused and why: the flag, else `RUST_LOG`, else
/// `warn`. A refused value never reaches env_logger, which would only print its own warning,
/// and that print panics when stderr is a closed pipe.
fn choose_filter<'a>(
    flag: Option<&'a str>,
    env: Option<&'a str>,
) -> (&'a str, Option<(&'static str, LevelError)>) {
    let (source, spec, strict) = match (flag, env) {
        (Some(flag), _) => ("--log-level", flag, true),
        (None, Some(env)) if !env.trim().is_empty() => ("RUST_LOG", env, false),
        _ => return (DEFAULT_FILTER, None),
    };
    match check_filter(spec, strict) {
        Ok(()) => (spec, None),
        Err(e) => (DEFAULT_FILTER, Some((source, e))),
    }
}

/// Installs the logger: the filter from `level` (`--log-level`, best checked first with
/// [`check_level`]), else `RUST_LOG`, else `warn`; lines in `format` on stderr. Write errors
/// are dropped, so a closed stderr costs the lines, not the process. A second call keeps the
/// first logger.
pub fn init(level: Option<&str>, format: LogFormat) {
    let env = std::env::var("RUST_LOG").ok();
    let (filter, refused) = choose_filter(level, env.as_deref());
    let mut builder = env_logger::Builder::new();
    builder
        .parse_filters(filter)
        // Lines carry no colour codes (ESC is escaped), so they go out as they are: any other
        // style scans every line for codes to strip.
        .write_style(env_logger::WriteStyle::Always)
        .format(move |out, record| write_record(out, SystemTime::now(), record, format));
    if builder.try_init().is_err() {
        return;
    }
    if let Some((source, e)) = refused {
        log::warn!("{source} ignored: {e}; logging at {DEFAULT_FILTER}");
    }
}

/// One log line, `now` being the time to show.
fn write_record<W: Write>(
    w: &mut W,
    now: SystemTime,
    r: &Record<'_>,
    format: LogFormat,
) -> io::Result<()> {
    if r.target() == ACCESS_TARGET {
        return writeln!(w, "{}", r.args());
    }
    match format {
        LogFormat::Text => {
            write_timestamp(w, now)?;
            write!(w, " {:<5} ", r.level())?;
            escape(w, r.target(), Style::Bare)?;
            w.write_all(b": ")?;
            escape_args(w, r.args(), Style::Bare)?;
        }
        LogFormat::Json => {
            w.write_all(b"{\"ts\":\"")?;
            write_timestamp(w, now)?;
            write!(w, "\",\"level\":\"{}\",\"target\":\"", r.level())?;
            escape(w, r.target(), Style::Json)?;
            w.write_all(b"\",\"msg\":\"")?;
            escape_args(w, r.args(), Style::Json)?;
            w.write_all(b"\"}")?;
        }
    }
    w.write_all(b"\n")
}

/// One request as the access log tells it.
#[derive(Clone, Copy, Debug)]
pub struct AccessRecord<'a> {
    /// When the response ended: the line's timestamp. Passed in so that formatting reads no
    /// clock and tests can pin it.
    pub time: SystemTime,
    /// The client's address.
    pub client: SocketAddr,
    /// The request method, `-` if the head never parsed.
    pub method: &'a str,
    /// The request target as sent, `-` if the head never parsed.
    pub path: &'a str,
    /// The status the client got.
    pub status: u16,
    /// The backend's name; `None` when the proxy answered by itself.
    pub backend: Option<&'a str>,
    /// Bytes of the request read from the client.
    pub bytes_in: u64,
    /// Bytes of the response written to the client.
    pub bytes_out: u64,
    /// From the request head read to the response's end.
    pub duration: Duration,
    /// Why the proxy answered by itself ("backend timeout", "bad request: ...").
    pub reason: Option<&'static str>,
}

/// Appends `rec` to `out` as one line, ending in `\n`. Text: `<time> <client> "<method>
/// <path>" <status> in=<bytes> out=<bytes> <ms>ms backend=<name|->[ reason="<why>"]`. JSON:
/// an object with keys `ts client method path status backend bytes_in bytes_out duration_ms
/// reason` (`backend` and `reason` may be `null`). Only `out` grows, so a buffer reused per
/// request stops allocating once it has held the longest line.
pub fn write_access(out: &mut Vec<u8>, rec: &AccessRecord<'_>, format: LogFormat) {
    // Writing to a Vec cannot fail.
    let _ = match format {
        LogFormat::Text => access_text(out, rec),
        LogFormat::Json => access_json(out, rec),
    };
}

fn access_text(out: &mut Vec<u8>, r: &AccessRecord<'_>) -> io::Result<()> {
    write_timestamp(out, r.time)?;
    write!(out, " {} \"", r.client)?;
    escape(out, r.method, Style::Quoted)?;
    out.push(b' ');
    escape(out, r.path, Style::Quoted)?;
    let ms = r.duration.as_secs_f64() * 1e3;
    let (bytes_in, bytes_out) = (r.bytes_in, r.bytes_out);
    write!(
        out,
        "\" {} in={bytes_in} out={bytes_out} {ms:.3}ms backend=",
        r.status
    )?;
    escape(out, r.backend.unwrap_or("-"), Style::Bare)?;
    if let Some(reason) = r.reason {
        out.extend_from_slice(b" reason=\"");
        escape(out, reason, Style::Quoted)?;
        out.push(b'"');
    }
    out.write_all(b"\n")
}

fn access_json(out: &mut Vec<u8>, r: &AccessRecord<'_>) -> io::Result<()> {
    out.extend_from_slice(b"{\"ts\":\"");
    write_timestamp(out, r.time)?;
    write!(out, "\",\"client\":\"{}\",\"method\":\"", r.client)?;
    escape(out, r.method, Style::Json)?;
    out.extend_from_slice(b"\",\"path\":\"");
    escape(out, r.path, Style::Json)?;
    write!(out, "\",\"status\":{},\"backend\":", r.status)?;
    json_or_null(out, r.backend)?;
    let ms = r.duration.as_secs_f64() * 1e3;
    let (bytes_in, bytes_out) = (r.bytes_in, r.bytes_out);
    write!(
        out,
        ",\"bytes_in\":{bytes_in},\"bytes_out\":{bytes_out},\"duration_ms\":{ms:.3}"
    )?;
    out.extend_from_slice(b",\"reason\":");
    json_or_null(out, r.reason)?;
    out.write_all(b"}\n")
}

fn json_or_null(out: &mut Vec<u8>, s: Option<&str>) -> io::Result<()> {
    let Some(s) = s else {
        return out.write_all(b"null");
    };
    out.push(b'"');
    escape(out, s, Style::Json)?;
    out.write_all(b"\"")
}

/// Logs `rec` under [`ACCESS_TARGET`] at `info`, formatted in `buf` (cleared first; keep one
/// per event loop). When access logging is off this is one comparison: nothing is formatted.
pub fn log_access(buf: &mut Vec<u8>, rec: &AccessRecord<'_>, format: LogFormat) {
    if !log::log_enabled!(target: ACCESS_TARGET, Level::Info) {
        return;
    }
    buf.clear();
    write_access(buf, rec, format);
    let line = buf.strip_suffix(b"\n").unwrap_or(buf);
    if let Ok(line) = std::str::from_utf8(line) {
        log::info!(target: ACCESS_TARGET, "{line}");
    }
}

/// The method and target of a request head's first line (such as the rewritten head a
/// session keeps until its next request), for the access log; `-` for what is not there.
pub fn request_line(head: &[u8]) -> (&str, &str) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let mut word = || {
        words
            .next()
            .and_then(|w| std::str::from_utf8(w).ok())
            .filter(|w| !w.is_empty())
            .unwrap_or("-")
    };
    (word(), word())
}

/// Writes `t` as RFC 3339 in UTC with milliseconds (`2024-05-01T12:00:00.123Z`). Times before
/// 1970 show as 1970: a clock that far off is not worth a branch per line.
pub fn write_timestamp<W: Write>(w: &mut W, t: SystemTime) -> io::Result<()> {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let (hh, mm, ss) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let ms = since.subsec_millis();
    write!(w, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar: Howard
/// Hinnant's `civil_from_days`, which counts in 400-year eras of 146 097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year, from March 1st
    let mp = (5 * doy + 2) / 153; // month, from March
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Where escaped text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// Inside a JSON string.
    Json,
    /// Inside double quotes in a text line.
    Quoted,
    /// Unquoted in a text line: quotes stay as they are.
    Bare,
}

/// Writes `s` with backslash, control characters (line feeds above all), DEL and the Unicode
/// line separators escaped, and double quotes too unless `Bare`: `\n`, `\"`, `\\`; others as
/// `\u00XX` in JSON and `\u{XX}` in text.
fn escape<W: Write>(w: &mut W, s: &str, style: Style) -> io::Result<()> {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let special = matches!(
            c,
            '\\' | '\0'..='\x1f' | '\x7f' | '\u{85}' | '\u{2028}' | '\u{2029}'
        ) || c == '"' && style != Style::Bare;
        if !special {
            continue;
        }
        w.write_all(&s.as_bytes()[start..i])?;
        start = i + c.len_utf8();
        match (c, style) {
            ('\\' | '"', _) => w.write_all(&[b'\\', c as u8])?,
            ('\n', _) => w.write_all(b"\\n")?,
            ('\r', _) => w.write_all(b"\\r")?,
            ('\t', _) => w.write_all(b"\\t")?,
            (_, Style::Json) => write!(w, "\\u{:04x}", u32::from(c))?,
            _ => write!(w, "\\u{{{:x}}}", u32::from(c))?,
        }
    }
    w.write_all(&s.as_bytes()[start..])
}

/// [`escape`] for a format string's output, streamed piece by piece: no intermediate string.
fn escape_args<W: Write>(w: &mut W, args: &fmt::Arguments<'_>, style: Style) -> io::Result<()> {
    struct Escaper<'w, W> {
        w: &'w mut W,
        style: Style,
        result: io::Result<()>,
    }
    impl<W: Write> fmt::Write for Escaper<'_, W> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            escape(self.w, s, self.style).map_err(|e| {
                self.result = Err(e);
                fmt::Error
            })
        }
    }
    let mut escaper = Escaper {
        w,
        style,
        result: Ok(()),
    };
    // A `Display` that fails leaves a shortened message; only an I/O error is reported.
    let _ = fmt::write(&mut escaper, *args);
    escaper.result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::process::{Command, Stdio};

    /// 2023-11-14T22:13:20.123Z
    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    }

    fn record(format: LogFormat, target: &str, msg: &str) -> String {
        let mut out = Vec::new();
        write_record(
            &mut out,
            t0(),
            &Record::builder()
                .args(format_args!("{msg}"))
                .level(Level::Warn)
                .target(target)
                .build(),
            format,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    const EVIL: &str = "/a\"b\\c\nGET /forged HTTP/1.1\r\x1b[31m\u{2028}end";

    fn access(path: &str) -> AccessRecord<'_> {
        AccessRecord {
            time: t0(),
            client: "192.0.2.7:40001".parse().unwrap(),
            method: "GET",
            path,
            status: 200,
            backend: Some("127.0.0.1:8081"),
            bytes_in: 78,
            bytes_out: 1432,
            duration: Duration::from_micros(1234),
            reason: None,
        }
    }

    fn line(rec: &AccessRecord<'_>, format: LogFormat) -> String {
        let mut out = Vec::new();
        write_access(&mut out, rec, format);
        String::from_utf8(out).unwrap()
    }

    fn one_json_line(s: &str) -> Value {
        assert_eq!(s.matches('\n').count(), 1, "{s:?}");
        assert!(s.ends_with('\n'));
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn log_format_from_flag() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("xml".parse::<LogFormat>(), Err(UnknownFormat));
        assert_eq!("".parse::<LogFormat>(), Err(UnknownFormat));
    }

    #[test]
    fn level_specs() {
        use LevelError::*;
        for (spec, strict, lenient) in [
            ("info", Ok(()), Ok(())),
            ("WARN", Ok(()), Ok(())),
            ("warn,access=info", Ok(()), Ok(())),
            (" off , rr_proxy::proxy = debug ", Ok(()), Ok(())),
            ("", Err(Empty), Ok(())),
            ("inf", Err(UnknownLevel), Ok(())),
            ("rr_proxy", Err(UnknownLevel), Ok(())),
            ("access=", Err(Malformed), Ok(())),
            ("=info", Err(Malformed), Ok(())),
            ("access=loud", Err(UnknownLevel), Err(UnknownLevel)),
            ("a=b=c", Err(Malformed), Err(Malformed)),
            ("info/timeout", Err(Filter), Ok(())),
            ("info/a/b", Err(Filter), Err(Filter)),
        ] {
            assert_eq!(check_filter(spec, true), strict, "{spec:?} strict");
            assert_eq!(check_filter(spec, false), lenient, "{spec:?} lenient");
        }
    }

    #[test]
    fn filter_comes_from_flag_then_env_then_default() {
        assert_eq!(choose_filter(Some("debug"), Some("info")), ("debug", None));
        assert_eq!(choose_filter(None, Some("rr_proxy")), ("rr_proxy", None));
        assert_eq!(choose_filter(None, Some("  ")), ("warn", None));
        assert_eq!(choose_filter(None, None), ("warn", None));
        let refused = Some(("--log-level", LevelError::UnknownLevel));
        assert_eq!(
            choose_filter(Some("verbose"), Some("info")),
            ("warn", refused)
        );
        let refused = Some(("RUST_LOG", LevelError::Malformed));
        assert_eq!(choose_filter(None, Some("a=b=c")), ("warn", refused));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |ms: u64| {
            let mut out = Vec::new();
            write_timestamp(&mut out, UNIX_EPOCH + Duration::from_millis(ms)).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(at(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        let mut out = Vec::new();
        write_timestamp(&mut out, UNIX_EPOCH - Duration::from_secs(5)).unwrap();
        assert_eq!(out, b"1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn json_records_parse_back() {
        let v = one_json_line(&record(LogFormat::Json, "rr_proxy::proxy", EVIL));
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "rr_proxy::proxy");
        assert_eq!(v["msg"], EVIL);
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    #[test]
    fn text_records_are_one_escaped_line() {
        let got = record(
            LogFormat::Text,
            "rr_proxy::proxy",
            "connect 10.0.0.1:80: refused\nx",
        );
        let want =
            "2023-11-14T22:13:20.123Z WARN  rr_proxy::proxy: connect 10.0.0.1:80: refused\\nx\n";
        assert_eq!(got, want);
        let got = record(LogFormat::Text, "t", EVIL);
        assert_eq!(got.matches('\n').count(), 1);
        assert!(!got.contains(['\r', '\x1b', '\u{2028}']), "{got:?}");
    }

    #[test]
    fn access_records_pass_the_formatter_as_they_are() {
        let text = line(&access("/"), LogFormat::Text);
        let msg = text.trim_end_matches('\n');
        assert_eq!(record(LogFormat::Json, ACCESS_TARGET, msg), text);
    }

    #[test]
    fn access_json_parses_back() {
        let v = one_json_line(&line(&access("/index.html?q=1"), LogFormat::Json));
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["client"], "192.0.2.7:40001");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/index.html?q=1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["backend"], "127.0.0.1:8081");
        assert_eq!(v["bytes_in"], 78);
        assert_eq!(v["bytes_out"], 1432);
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["reason"], Value::Null);
        let own = AccessRecord {
            status: 504,
            backend: None,
            reason: Some("backend timeout"),
            client: "[2001:db8::1]:443".parse().unwrap(),
            ..access("/")
        };
        let v = one_json_line(&line(&own, LogFormat::Json));
        assert_eq!(v["client"], "[2001:db8::1]:443");
        assert_eq!(
            (&v["backend"], &v["reason"]),
            (&Value::Null, &Value::from("backend timeout"))
        );
    }

    #[test]
    fn access_text_has_the_fields() {
        let got = line(&access("/index.html"), LogFormat::Text);
        let want = "2023-11-14T22:13:20.123Z 192.0.2.7:40001 \"GET /index.html\" 200 in=78 \
                    out=1432 1.234ms backend=127.0.0.1:8081\n";
        assert_eq!(got, want);
        let own = AccessRecord {
            status: 400,
            backend: None,
            reason: Some("bad request: invalid Content-Length"),
            ..access("/")
        };
        let got = line(&own, LogFormat::Text);
        let tail = " 400 in=78 out=1432 1.234ms backend=- reason=\"bad request: invalid Content-Length\"\n";
        assert!(got.ends_with(tail), "{got}");
    }

    #[test]
    fn paths_cannot_forge_lines() {
        let json = line(&access(EVIL), LogFormat::Json);
        assert_eq!(one_json_line(&json)["path"], EVIL);
        let text = line(&access(EVIL), LogFormat::Text);
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        assert!(!text.contains(['\r', '\x1b', '\u{2028}']), "{text:?}");
        let quoted = r#""GET /a\"b\\c\nGET /forged HTTP/1.1\r\u{1b}[31m\u{2028}end""#;
        assert!(text.contains(quoted), "{text}");
    }

    #[test]
    fn access_lines_into_a_reused_buffer_do_not_allocate() {
        let mut buf = Vec::with_capacity(1024);
        let rec = AccessRecord {
            reason: Some("backend timeout"),
            ..access(EVIL)
        };
        let n = crate::metrics::tests::allocations(|| {
            for format in [LogFormat::Text, LogFormat::Json] {
                buf.clear();
                write_access(&mut buf, &rec, format);
            }
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn request_line_takes_method_and_target() {
        let head = b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(request_line(head), ("POST", "/upload?x=1"));
        assert_eq!(request_line(b""), ("-", "-"));
        assert_eq!(request_line(b"GET"), ("GET", "-"));
        assert_eq!(request_line(b"GET /\xff HTTP/1.1\r\n"), ("GET", "-"));
    }

    /// Set in the child process of `a_closed_stderr_does_not_panic`.
    const CHILD: &str = "RR_PROXY_LOGGING_CHILD";

    #[test]
    fn a_closed_stderr_does_not_panic() {
        if std::env::var_os(CHILD).is_some() {
            // The child: stderr's reader is gone, so every write fails with EPIPE.
            init(Some("trace"), LogFormat::Json);
            let mut buf = Vec::new();
            for i in 0..2000 {
                log::error!("line {i}");
                log_access(&mut buf, &access("/"), LogFormat::Text);
            }
            return;
        }
        let name = "logging::tests::a_closed_stderr_does_not_panic";
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stderr.take());
        assert!(child.wait().unwrap().success());
    }
}
