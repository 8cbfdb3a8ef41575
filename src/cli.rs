//! Command-line plumbing shared by both binaries: a flag reader that accepts `--flag value` and
//! `--flag=value`, and parsers for durations and sizes whose errors name the flag.
//!
//! Each binary turns these raw strings into its own validated config; this module only knows
//! the syntax.

use std::time::Duration;

/// A bad command line, with the message to print. Binaries exit with code 2 on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// One item of the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Arg {
    /// `--name value` or `--name=value`; `value` is `None` for a flag given without one.
    Flag(String, Option<String>),
    /// Anything not starting with `--`.
    Positional(String),
}

/// Reads arguments one at a time. Whether a flag takes a value is the caller's business:
/// it calls [`Args::value`] for flags that take one, which also accepts the next argument.
pub struct Args<I: Iterator<Item = String>> {
    rest: std::iter::Peekable<I>,
    pending: Option<String>,
    flag: String,
}

impl<I: Iterator<Item = String>> Args<I> {
    /// Wraps the arguments after the program name.
    pub fn new(args: I) -> Self {
        Args {
            rest: args.peekable(),
            pending: None,
            flag: String::new(),
        }
    }

    /// The next flag name (without `--`), or `Err` for a positional argument, or `None` at the
    /// end.
    pub fn next_flag(&mut self) -> Option<Result<String, UsageError>> {
        if let Some(v) = self.pending.take() {
            return Some(Err(UsageError(format!(
                "--{} does not take a value (got {v:?})",
                self.flag
            ))));
        }
        let arg = self.rest.next()?;
        let Some(body) = arg.strip_prefix("--") else {
            return Some(Err(UsageError(format!("unexpected argument {arg:?}"))));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        self.flag = name.clone();
        self.pending = value;
        Some(Ok(name))
    }

    /// The value of the flag just read.
    pub fn value(&mut self) -> Result<String, UsageError> {
        if let Some(v) = self.pending.take() {
            return Ok(v);
        }
        match self.rest.next() {
            Some(v) if !v.starts_with("--") => Ok(v),
            _ => Err(UsageError(format!("--{} needs a value", self.flag))),
        }
    }

    /// The value of the flag just read, parsed by `parse`; errors name the flag.
    pub fn parsed<T>(
        &mut self,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, UsageError> {
        let v = self.value()?;
        parse(&v).map_err(|e| UsageError(format!("--{} {v:?}: {e}", self.flag)))
    }
}

/// A duration with a unit: `250ms`, `3s`, `2m`. A bare number is refused, because `3` could
/// mean seconds or milliseconds and a wrong guess is a timeout off by a thousand.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a number with a unit, such as 500ms, 3s or 1m".to_string())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "" => return Err("needs a unit: ms, s or m".into()),
        _ => return Err(format!("unknown unit {unit:?}: use ms, s or m")),
    };
    if d > MAX_DURATION {
        return Err("must be at most a day (1440m)".into());
    }
    Ok(d)
}

/// The longest duration any setting takes: a deadline this far out is as good as none, and
/// a longer one could overflow the clock when added to it.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A byte count, optionally with a binary suffix: `512`, `64K`, `8M`, `1G` (K = 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| "expected a byte count such as 65536, 64K or 8M".to_string())?;
    let mult: usize = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("unknown size unit {unit:?}: use K, M or G")),
    };
    n.checked_mul(mult).ok_or_else(|| "too large".to_string())
}

/// A plain number of the given type, with a readable error.
pub fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a number, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args<std::vec::IntoIter<String>> {
        Args::new(
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }

    #[test]
    fn flags_with_and_without_equals() {
        let mut a = args(&["--port", "80", "--name=x", "--verbose", "--max", "--y"]);
        assert_eq!(a.next_flag(), Some(Ok("port".into())));
        assert_eq!(a.value(), Ok("80".into()));
        assert_eq!(a.next_flag(), Some(Ok("name".into())));
        assert_eq!(a.value(), Ok("x".into()));
        assert_eq!(a.next_flag(), Some(Ok("verbose".into())));
        assert_eq!(a.next_flag(), Some(Ok("max".into())));
        assert!(a.value().unwrap_err().0.contains("--max needs a value"));
        assert_eq!(a.next_flag(), None);
    }

    #[test]
    fn stray_values_are_errors() {
        let mut a = args(&["--verbose=1"]);
        assert_eq!(a.next_flag(), Some(Ok("verbose".into())));
        assert!(a.next_flag().unwrap().is_err());
        let mut a = args(&["oops"]);
        assert!(a.next_flag().unwrap().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("3").unwrap_err().contains("unit"));
        assert!(parse_duration("3h").is_err());
        assert_eq!(parse_duration("1440m"), Ok(MAX_DURATION));
        assert!(parse_duration("1441m").unwrap_err().contains("at most"));
        assert!(parse_duration("18446744073709551615s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_num::<f64>("0.5"), Ok(0.5));
        assert!(parse_num::<u32>("x").is_err());
    }
}
