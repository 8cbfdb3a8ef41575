//! Request and response heads: httparse over the caller's bytes, then, in one pass over the
//! fields, what a proxy must know before it moves a byte of body: framing, persistence,
//! `Expect: 100-continue` and `Upgrade`.
//!
//! Nothing is allocated: the caller owns the header array and the bytes, and gets back views
//! into both.

use super::framing::{self, BodyKind, Fields, FramingError};

/// The default cap on a head (request or status line plus fields), as nginx and HAProxy allow
/// about as much; a larger head is answered with 431.
pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;

/// How many header fields one head may carry; the caller sizes its header array with this.
/// More are answered with 431.
pub const MAX_HEADERS: usize = 100;

/// An empty header array of the size [`parse_request`] and [`parse_response`] expect.
pub const EMPTY_HEADERS: [httparse::Header<'static>; MAX_HEADERS] =
    [httparse::EMPTY_HEADER; MAX_HEADERS];

/// The protocol version of a message: 1.0 or 1.1. A request's `HTTP/1.2` to `HTTP/1.9` is
/// read as 1.1 (RFC 9110 §2.5); any other version is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: persistent only with `Connection: keep-alive`, never chunked.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
}

impl Version {
    /// The version as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }

    fn from_minor(minor: Option<u8>) -> Version {
        if minor == Some(0) {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// The request methods a proxy treats differently; the rest are `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Safe and idempotent.
    Get,
    /// Its response never has a body.
    Head,
    /// Neither safe nor idempotent.
    Post,
    /// Idempotent.
    Put,
    /// Idempotent.
    Delete,
    /// Safe; the only method allowed with the `*` target.
    Options,
    /// Safe.
    Trace,
    /// Turns the connection into a tunnel; uses the authority form.
    Connect,
    /// Any other token.
    Other,
}

impl Method {
    fn from_token(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: a request that can be repeated without a different effect, and so
    /// retried on another backend when the first one failed before answering.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }

    /// How the response to this method is framed.
    pub fn request_kind(self) -> framing::RequestKind {
        match self {
            Method::Head => framing::RequestKind::Head,
            Method::Connect => framing::RequestKind::Connect,
            _ => framing::RequestKind::Other,
        }
    }
}

/// The answer of a parse over bytes that may not hold a whole head yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// A whole head was read.
    Complete(T),
    /// More bytes are needed.
    Partial,
}

/// Why a head was refused. Each maps to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than the cap (431).
    TooLarge,
    /// More than [`MAX_HEADERS`] fields (431).
    TooManyHeaders,
    /// The bytes are not HTTP/1.x syntax (400).
    Syntax(&'static str),
    /// A well-formed HTTP version of a major version other than 1 (505).
    Version,
    /// A request target in none of the forms its method allows (400).
    BadTarget,
    /// HTTP/1.1 without Host, more than one, or an invalid one (RFC 9112 §3.2: 400).
    BadHost,
    /// The body's length cannot be told for sure (400, or 501 for an unknown coding).
    Framing(FramingError),
}

impl HeadError {
    /// The status code a server answers this error with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::Version => 505,
            HeadError::Framing(FramingError::UnknownCoding) => 501,
            HeadError::Syntax(_)
            | HeadError::BadTarget
            | HeadError::BadHost
            | HeadError::Framing(_) => 400,
        }
    }

    /// A short reason, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            HeadError::TooLarge => "head too large",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::Syntax(s) => s,
            HeadError::Version => "unsupported HTTP version",
            HeadError::BadTarget => "invalid request target",
            HeadError::BadHost => "missing, repeated or invalid Host",
            HeadError::Framing(f) => f.as_str(),
        }
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<FramingError> for HeadError {
    fn from(e: FramingError) -> Self {
        HeadError::Framing(e)
    }
}

/// Maps httparse's error; `buf` tells a well-formed but unsupported version (505) from a
/// malformed status line that httparse happens to stop at the version (400). Requests read
/// their version token themselves (see [`parse_raw`]).
fn syntax(e: httparse::Error, buf: &[u8]) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version if looks_like_version(buf) => HeadError::Version,
        other => HeadError::Syntax(match other {
            httparse::Error::HeaderName => "invalid header name",
            httparse::Error::HeaderValue => "invalid header value",
            httparse::Error::NewLine => "invalid line ending",
            httparse::Error::Status => "invalid status line",
            _ => "invalid request line",
        }),
    }
}

/// What follows the empty lines (CRLF, or a bare LF) a message may start with (RFC 9112 §2.2
/// lets a server ignore them before a request line). A CR alone is not an empty line.
pub fn after_empty_lines(mut buf: &[u8]) -> &[u8] {
    loop {
        buf = match buf {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => rest,
            _ => return buf,
        }
    }
}

/// The status line's version token (its first word) reads `HTTP/<digit>.<digit>`.
fn looks_like_version(buf: &[u8]) -> bool {
    let word = after_empty_lines(buf)
        .split(|&b| matches!(b, b' ' | b'\r' | b'\n'))
        .next()
        .unwrap_or_default();
    matches!(word, [b'H', b'T', b'T', b'P', b'/', a, b'.', b]
        if a.is_ascii_digit() && b.is_ascii_digit())
}

/// A parsed request head: views into the caller's bytes and header array, plus what the fields
/// mean.
#[derive(Debug)]
pub struct Request<'h, 'b> {
    /// The method, classified.
    pub method: Method,
    /// The method token as sent.
    pub method_str: &'b str,
    /// The request target as sent.
    pub target: &'b str,
    /// The authority of an absolute-form target (RFC 9112 §3.2.2): it names the origin, so it
    /// replaces any `Host` when the request is forwarded.
    pub authority: Option<&'b str>,
    /// What follows the authority in an absolute-form target (path and query, either may be
    /// empty); for every other form, the target as sent.
    pub path: &'b str,
    /// The protocol version.
    pub version: Version,
    /// Every field, in order.
    pub headers: &'h [httparse::Header<'b>],
    /// How many bytes the head took, including the blank line.
    pub head_len: usize,
    /// How the body is framed.
    pub body: BodyKind,
    /// The framing and connection fields.
    pub fields: Fields,
}

impl Request<'_, '_> {
    /// The client allows the connection to stay open after this exchange
    /// (RFC 9112 §9.3: 1.1 unless `close`; 1.0 only with `keep-alive`).
    pub fn keep_alive(&self) -> bool {
        persistent(self.version, &self.fields)
    }

    /// The client asks to switch protocols, and may (RFC 9110 §7.8: ignored in HTTP/1.0).
    pub fn is_upgrade(&self) -> bool {
        self.version == Version::Http11 && self.fields.upgrade && self.fields.connection_upgrade
    }

    /// The client waits for `100 Continue` before sending its body.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11
            && self.fields.expect_continue
            && self.body != BodyKind::Empty
    }
}

/// A parsed response head.
#[derive(Debug)]
pub struct Response<'h, 'b> {
    /// The status code.
    pub status: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: &'b str,
    /// The protocol version.
    pub version: Version,
    /// Every field, in order.
    pub headers: &'h [httparse::Header<'b>],
    /// How many bytes the head took, including the blank line.
    pub head_len: usize,
    /// The framing and connection fields.
    pub fields: Fields,
}

impl Response<'_, '_> {
    /// The server allows the connection to stay open after this exchange.
    pub fn keep_alive(&self) -> bool {
        persistent(self.version, &self.fields)
    }

    /// How the body is framed, given the method of the request it answers.
    pub fn body(&self, method: Method) -> Result<BodyKind, FramingError> {
        framing::response_body(
            method.request_kind(),
            self.status,
            self.version,
            &self.fields,
        )
    }
}

fn persistent(version: Version, f: &Fields) -> bool {
    !f.close && (version == Version::Http11 || f.keep_alive)
}

/// Where the head in `buf` ends, just past the blank line, looking no further back than `from`
/// minus three bytes: a caller that remembers how far it looked scans each byte once however the
/// head trickles in, and parses only when this says the head is whole.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while let Some(off) = buf
        .get(i..)
        .and_then(|s| s.iter().position(|&b| b == b'\n'))
    {
        let lf = i + off;
        match buf.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if buf.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// Parses a request head from the start of `buf`, looking at no more than `max_head` bytes.
pub fn parse_request<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    max_head: usize,
) -> Result<Parse<Request<'h, 'b>>, HeadError> {
    let window = &buf[..buf.len().min(max_head)];
    let raw = match parse_raw(window, headers)? {
        Raw::Complete(raw) => raw,
        Raw::Partial { .. } if buf.len() >= max_head => return Err(HeadError::TooLarge),
        Raw::Partial { .. } => return Ok(Parse::Partial),
    };
    let method = Method::from_token(raw.method_str);
    let target = split_target(method, raw.target)?;
    let fields = framing::scan_fields(raw.headers)?;
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (even with an absolute-form target); at most
    // one in HTTP/1.0; a valid one.
    let version = raw.version;
    if fields.hosts > 1 || (version == Version::Http11 && fields.hosts == 0) || fields.bad_host {
        return Err(HeadError::BadHost);
    }
    let body = framing::request_body(version, &fields)?;
    Ok(Parse::Complete(Request {
        method,
        method_str: raw.method_str,
        target: raw.target,
        authority: target.authority,
        path: target.path,
        version,
        headers: raw.headers,
        head_len: raw.head_len,
        body,
        fields,
    }))
}

/// Says early whether `buf`, the start of a request head whose end has not arrived yet, is
/// already refused, with the error the whole head would get: a TLS handshake, a bad method
/// token or a bad field line is answered at once instead of at the head deadline. Rules that
/// need every field (Host, framing) wait for the whole head.
pub fn check_partial_request(buf: &[u8]) -> Result<(), HeadError> {
    let mut headers = EMPTY_HEADERS;
    match parse_raw(buf, &mut headers)? {
        Raw::Partial {
            line: Some((method, target)),
        } => split_target(Method::from_token(method), target).map(|_| ()),
        _ => Ok(()),
    }
}

/// The start line and field lines as httparse reads them, before their meaning is checked.
struct RawHead<'h, 'b> {
    method_str: &'b str,
    target: &'b str,
    version: Version,
    headers: &'h [httparse::Header<'b>],
    head_len: usize,
}

/// What httparse made of the bytes at hand.
enum Raw<'h, 'b> {
    Complete(RawHead<'h, 'b>),
    /// More bytes are needed; `line` holds the method and target once the request line is
    /// known to be complete and of a version we take.
    Partial {
        line: Option<(&'b str, &'b str)>,
    },
}

/// httparse over `window`, taking `HTTP/1.2` to `HTTP/1.9` as HTTP/1.1: RFC 9110 §2.5 asks a
/// recipient to process a higher minor version of a major version it implements as the
/// highest minor it implements. httparse refuses them, so on its version error the version
/// token is read here and, if it is one of those, the field lines are parsed on their own.
fn parse_raw<'h, 'b>(
    window: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
) -> Result<Raw<'h, 'b>, HeadError> {
    let mut req = httparse::Request::new(headers);
    match req.parse(window) {
        Ok(httparse::Status::Complete(head_len)) => Ok(Raw::Complete(RawHead {
            method_str: req.method.unwrap_or(""),
            target: req.path.unwrap_or(""),
            version: Version::from_minor(req.version),
            headers: req.headers,
            head_len,
        })),
        Ok(httparse::Status::Partial) => Ok(Raw::Partial {
            line: req.version.and(req.method.zip(req.path)),
        }),
        Err(httparse::Error::Version) => {
            let (Some(method_str), Some(target)) = (req.method, req.path) else {
                return Err(HeadError::Syntax("invalid request line"));
            };
            // httparse allows one space between target and version, and `target` lies in
            // `window`, so the version token starts just past it.
            let start = target.as_ptr() as usize - window.as_ptr() as usize + target.len() + 1;
            let Some(line_len) = version_token(window.get(start..).unwrap_or_default())? else {
                return Ok(Raw::Partial { line: None });
            };
            let fields_at = start + line_len;
            let headers = std::mem::take(&mut req.headers);
            match httparse::parse_headers(&window[fields_at..], headers) {
                Ok(httparse::Status::Complete((n, headers))) => Ok(Raw::Complete(RawHead {
                    method_str,
                    target,
                    version: Version::Http11,
                    headers,
                    head_len: fields_at + n,
                })),
                Ok(httparse::Status::Partial) => Ok(Raw::Partial {
                    line: Some((method_str, target)),
                }),
                Err(e) => Err(syntax(e, window)),
            }
        }
        Err(e) => Err(syntax(e, window)),
    }
}

/// Reads a request line's version token that httparse refused, from its first byte to the end
/// of the line (RFC 9112 §2.3: `HTTP-version = "HTTP/" DIGIT "." DIGIT`). Answers the length
/// of the token and its line ending for `HTTP/1.2` to `HTTP/1.9`; `None` while the bytes so
/// far could still become a version line; 505 for another major version; 400 for anything
/// else (`HTTP/1.10`, `http/1.1`, `HTTP/01.1`, a space).
fn version_token(rest: &[u8]) -> Result<Option<usize>, HeadError> {
    const SHAPE: &[u8; 9] = b"HTTP/#.#\r";
    let malformed = HeadError::Syntax("invalid HTTP version");
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        let prefix = rest.len() <= SHAPE.len()
            && rest.iter().zip(SHAPE).all(|(&b, &s)| match s {
                b'#' => b.is_ascii_digit(),
                _ => b == s,
            });
        return if prefix { Ok(None) } else { Err(malformed) };
    };
    let token = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
    match token {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => Ok(Some(lf + 1)),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HeadError::Version)
        }
        _ => Err(malformed),
    }
}

/// Reads a status line whose version httparse refused: `HTTP/1.2` to `HTTP/1.9`, a space,
/// three digits, and an optional space and reason phrase (RFC 9112 §4: HTAB, SP, VCHAR and
/// obs-text; a reason that is not UTF-8 reads as empty, as httparse has it). Answers the line's
/// length with its ending, the code and the reason; `None` while the line is not whole; 505
/// for another version, 400 for anything else malformed.
fn later_minor_status_line(window: &[u8]) -> Result<Option<(usize, u16, &str)>, HeadError> {
    // Empty lines before the status line are skipped, as httparse does.
    let skipped = window.len() - after_empty_lines(window).len();
    let Some(lf) = window[skipped..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|at| skipped + at)
    else {
        // Whatever comes, it is not HTTP/1.0 or 1.1; wait for the line (or the cap) to judge.
        return Ok(None);
    };
    let line = &window[skipped..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let bad = HeadError::Syntax("invalid status line");
    let [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9', after @ ..] = line else {
        return Err(if looks_like_version(window) {
            HeadError::Version
        } else {
            bad
        });
    };
    let [b' ', d0, d1, d2, rest @ ..] = after else {
        return Err(bad);
    };
    if ![d0, d1, d2].iter().all(|d| d.is_ascii_digit()) {
        return Err(bad);
    }
    let code = [d0, d1, d2]
        .iter()
        .fold(0u16, |n, &&d| n * 10 + u16::from(d - b'0'));
    let reason = match rest {
        [] => &[][..],
        [b' ', reason @ ..] => reason,
        _ => return Err(bad),
    };
    if !reason
        .iter()
        .all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80)
    {
        return Err(bad);
    }
    Ok(Some((
        lf + 1,
        code,
        std::str::from_utf8(reason).unwrap_or(""),
    )))
}

/// The parts of a request target the proxy rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Target<'b> {
    /// The authority of an absolute-form target.
    authority: Option<&'b str>,
    /// The rest of an absolute-form target, or the whole target of another form.
    path: &'b str,
}

/// RFC 9112 §3.2: origin-form (`/path`) or absolute-form (`http://…`) for every method,
/// asterisk-form only for OPTIONS, authority-form only for CONNECT; no fragment in any of them
/// (RFC 9112 §3.2 has no `#` in its grammar: a fragment is for the client alone). An
/// absolute-form target is split into its authority and the rest, and refused (RFC 9110 §4.2)
/// with a scheme other than http or https, an empty host, userinfo (§4.2.4: deprecated, and a
/// way to make a URI look like it names another host), or a host or port that is not
/// `uri-host [":" port]`.
fn split_target(method: Method, target: &str) -> Result<Target<'_>, HeadError> {
    let t = target.as_bytes();
    let whole = Target {
        authority: None,
        path: target,
    };
    if t.contains(&b'#') {
        return Err(HeadError::BadTarget);
    }
    let ok = match t.first() {
        Some(b'/') => return Ok(whole),
        Some(b'*') => method == Method::Options && t.len() == 1,
        Some(_) if method == Method::Connect => !t.contains(&b'/'),
        Some(_) => return absolute_form(target).ok_or(HeadError::BadTarget),
        None => false,
    };
    if ok {
        Ok(whole)
    } else {
        Err(HeadError::BadTarget)
    }
}

/// Splits `http://authority/rest` (scheme in any case), or `None` if it is not one we take.
fn absolute_form(target: &str) -> Option<Target<'_>> {
    let scheme_len = target.find("://")?;
    let scheme = &target[..scheme_len];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &target[scheme_len + 3..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host_empty = authority.is_empty() || authority.starts_with(':');
    if host_empty || authority.contains('@') || !framing::valid_host(authority.as_bytes()) {
        return None;
    }
    Some(Target {
        authority: Some(authority),
        path,
    })
}

/// Parses a response head from the start of `buf`, looking at no more than `max_head` bytes.
pub fn parse_response<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    max_head: usize,
) -> Result<Parse<Response<'h, 'b>>, HeadError> {
    let window = &buf[..buf.len().min(max_head)];
    let mut resp = httparse::Response::new(headers);
    type Head<'h, 'b> = (usize, u16, &'b str, Version, &'h [httparse::Header<'b>]);
    let parsed: Option<Head<'h, 'b>> = match resp.parse(window) {
        Ok(httparse::Status::Complete(n)) => Some((
            n,
            resp.code.unwrap_or(0),
            resp.reason.unwrap_or(""),
            Version::from_minor(resp.version),
            resp.headers,
        )),
        Ok(httparse::Status::Partial) => None,
        // RFC 9110 §2.5, as for requests: `HTTP/1.2` to `HTTP/1.9` is read as HTTP/1.1, so
        // the status line is read here and the field lines by httparse on their own.
        Err(httparse::Error::Version) => match later_minor_status_line(window)? {
            None => None,
            Some((line_len, code, reason)) => {
                let headers = std::mem::take(&mut resp.headers);
                match httparse::parse_headers(&window[line_len..], headers) {
                    Ok(httparse::Status::Complete((n, headers))) => {
                        Some((line_len + n, code, reason, Version::Http11, headers))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => return Err(syntax(e, window)),
                }
            }
        },
        Err(e) => return Err(syntax(e, window)),
    };
    let Some((head_len, status, reason, version, headers)) = parsed else {
        return if buf.len() >= max_head {
            Err(HeadError::TooLarge)
        } else {
            Ok(Parse::Partial)
        };
    };
    if !(100..=999).contains(&status) {
        return Err(HeadError::Syntax("invalid status code"));
    }
    let fields = framing::scan_fields(headers)?;
    Ok(Parse::Complete(Response {
        status,
        reason,
        version,
        headers,
        head_len,
        fields,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a test compares: method, version, body, keep-alive, head length.
    type Summary = (Method, Version, BodyKind, bool, usize);

    fn req(raw: &[u8]) -> Result<Parse<Summary>, HeadError> {
        let mut h = EMPTY_HEADERS;
        Ok(match parse_request(raw, &mut h, DEFAULT_MAX_HEAD)? {
            Parse::Complete(r) => {
                Parse::Complete((r.method, r.version, r.body, r.keep_alive(), r.head_len))
            }
            Parse::Partial => Parse::Partial,
        })
    }

    fn err(raw: &[u8]) -> u16 {
        match req(raw) {
            Err(e) => e.status(),
            Ok(other) => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn only_whole_empty_lines_are_skipped() {
        assert_eq!(after_empty_lines(b"\r\n\n\r\nGET"), b"GET");
        assert_eq!(
            after_empty_lines(b"\r\n\r"),
            b"\r",
            "a CR alone waits for its LF"
        );
        assert_eq!(
            after_empty_lines(b"\rGET"),
            b"\rGET",
            "a bare CR is not an empty line"
        );
        assert_eq!(after_empty_lines(b""), b"");
    }

    #[test]
    fn good_requests() {
        use BodyKind::*;
        use Method::*;
        use Version::*;
        type Case<'a> = (&'a [u8], (Method, Version, BodyKind, bool));
        let cases: &[Case<'_>] = &[
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                (Get, Http11, Empty, true),
            ),
            (b"GET / HTTP/1.0\r\n\r\n", (Get, Http10, Empty, false)),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                (Get, Http10, Empty, true),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                (Get, Http11, Empty, false),
            ),
            (
                b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
                (Post, Http11, Length(3), true),
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                (Put, Http11, Chunked, true),
            ),
            (
                b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
                (Options, Http11, Empty, true),
            ),
            (
                b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
                (Get, Http11, Empty, true),
            ),
            (
                b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
                (Connect, Http11, Empty, true),
            ),
            (
                b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n",
                (Other, Http11, Empty, true),
            ),
            // RFC 9112 §2.2: a bare LF may end a line.
            (b"GET / HTTP/1.1\nHost: a\n\n", (Get, Http11, Empty, true)),
            // RFC 9110 §2.5: a higher minor version is read as the highest we implement.
            (
                b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
                (Get, Http11, Empty, true),
            ),
            (
                b"POST / HTTP/1.9\nHost: a\nContent-Length: 2\n\nhi",
                (Post, Http11, Length(2), true),
            ),
            (
                b"\r\nGET / HTTP/1.5\r\nHost: a\r\nConnection: close\r\n\r\n",
                (Get, Http11, Empty, false),
            ),
            (
                b"GET HTTPS://b.example:81/p?q HTTP/1.1\r\nHost: a\r\n\r\n",
                (Get, Http11, Empty, true),
            ),
            (
                b"GET http://b HTTP/1.0\r\n\r\n",
                (Get, Http10, Empty, false),
            ),
        ];
        for (raw, want) in cases {
            match req(raw) {
                Ok(Parse::Complete((m, v, b, k, _))) => {
                    assert_eq!((m, v, b, k), *want, "{:?}", String::from_utf8_lossy(raw))
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
            }
        }
    }

    #[test]
    fn head_length_excludes_the_body() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(
            req(raw).unwrap(),
            Parse::Complete((Method::Post, Version::Http11, BodyKind::Length(3), true, 47))
        );
    }

    #[test]
    fn rejected_requests() {
        let cases: &[(&[u8], u16)] = &[
            // Syntax.
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400), // bare CR
            (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400), // NUL in a value
            (b"GET / HTTP/1.1\r\nX\x01: a\r\nHost: a\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            // Version (RFC 9112 §2.3: "HTTP/" DIGIT "." DIGIT, case-sensitive).
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
            (b"GET / HTTP/3.0\nHost: a\n\n", 505),
            (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/01.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.2 \r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.2\rHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.\r\nHost: a\r\n\r\n", 400),
            (b"GET / x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.2\r\nHost : a\r\n\r\n", 400),
            (b"GET / HTTP/1.3\r\n\r\n", 400), // read as 1.1, so Host is required
            // Target forms.
            (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http://b/p#x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http://:80/p HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http://u:p@b/p HTTP/1.1\r\nHost: b\r\n\r\n", 400),
            (b"GET http://@b/p HTTP/1.1\r\nHost: b\r\n\r\n", 400),
            (b"GET http://b:8x/p HTTP/1.1\r\nHost: b\r\n\r\n", 400),
            (b"GET http://b%zz/ HTTP/1.1\r\nHost: b\r\n\r\n", 400),
            (b"GET http:/b/p HTTP/1.1\r\nHost: b\r\n\r\n", 400),
            (b"GET httpx://b/p HTTP/1.1\r\nHost: b\r\n\r\n", 400),
            (b"GET http://b/p HTTP/1.1\r\n\r\n", 400), // still needs Host
            // Host.
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
            // Framing (the full table is in framing.rs).
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: br, chunked\r\n\r\n",
                501,
            ),
        ];
        for (raw, status) in cases {
            assert_eq!(err(raw), *status, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn absolute_form_is_split_into_authority_and_path() {
        let cases: &[(&[u8], Option<&str>, &str)] = &[
            (
                b"GET http://b.example:81/p?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                Some("b.example:81"),
                "/p?q=1",
            ),
            (b"GET Http://b HTTP/1.1\r\nHost: a\r\n\r\n", Some("b"), ""),
            (
                b"GET https://b?q HTTP/1.1\r\nHost: a\r\n\r\n",
                Some("b"),
                "?q",
            ),
            (
                b"GET http://[::1]:8080/x HTTP/1.1\r\nHost: a\r\n\r\n",
                Some("[::1]:8080"),
                "/x",
            ),
            (b"GET /p?q HTTP/1.1\r\nHost: a\r\n\r\n", None, "/p?q"),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", None, "*"),
        ];
        for (raw, authority, path) in cases {
            let mut h = EMPTY_HEADERS;
            let Ok(Parse::Complete(r)) = parse_request(raw, &mut h, DEFAULT_MAX_HEAD) else {
                panic!("{:?} not parsed", String::from_utf8_lossy(raw));
            };
            assert_eq!((r.authority, r.path), (*authority, *path));
        }
    }

    #[test]
    fn higher_minor_versions_keep_their_fields() {
        let mut h = EMPTY_HEADERS;
        let raw = b"PUT /x HTTP/1.7\r\nHost: a\r\nX-A: 1\r\n\r\nrest";
        let Ok(Parse::Complete(r)) = parse_request(raw, &mut h, DEFAULT_MAX_HEAD) else {
            panic!("not parsed")
        };
        assert_eq!(
            (r.method_str, r.target, r.version),
            ("PUT", "/x", Version::Http11)
        );
        assert_eq!(
            (r.headers.len(), r.headers[1].name, r.head_len),
            (2, "X-A", 36)
        );
        // Cut short anywhere, it waits; over the cap, it is too large.
        for cut in 0..36 {
            let mut h = EMPTY_HEADERS;
            let got = parse_request(&raw[..cut], &mut h, DEFAULT_MAX_HEAD)
                .map(|p| matches!(p, Parse::Partial));
            assert_eq!(got.ok(), Some(true), "cut {cut}");
        }
        let mut h = EMPTY_HEADERS;
        assert_eq!(
            parse_request(&raw[..30], &mut h, 30).map(|_| ()),
            Err(HeadError::TooLarge)
        );
    }

    /// Bytes a whole head would be refused for are refused as soon as they arrive, with the
    /// same status.
    #[test]
    fn partial_heads_are_refused_early() {
        let cases: &[(&[u8], u16)] = &[
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400), // TLS ClientHello
            (b"G(T /x HTTP/1.1", 400),
            (b"GET /x HTTP/1.1\r\nHost : a", 400),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nX\x01", 400),
            (b"GET /x HTTP/2.0\r\n", 505),
            (b"GET /x HTTP/1.10", 400),
            (b"GET /x HTTP/1.1x", 400),
            (b"GET /x http", 400),
            (b"GET /a#b HTTP/1.1\r\n", 400),
            (b"GET /a#b HTTP/1.9\r\n", 400),
            (b"GET http://u@b/ HTTP/1.1\r\nHo", 400),
            (b"GET * HTTP/1.1\n", 400),
        ];
        for (raw, status) in cases {
            assert_eq!(
                check_partial_request(raw).map_err(HeadError::status),
                Err(*status),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let waiting: &[&[u8]] = &[
            b"",
            b"G",
            b"GET /a#b",          // the version may still be 2.0, which is a 505
            b"GET /x HTTP/2",     // the line may still be HTTP/2.0 or garbage
            b"GET /x HTTP/1.2\r", // the version line may still end well
            b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n", // Host rules need every field
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n",
        ];
        for raw in waiting {
            assert_eq!(
                check_partial_request(raw),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    /// The early check never refuses a prefix of a head the parser takes, and never answers a
    /// prefix with another status than the whole head gets.
    #[test]
    fn early_and_late_verdicts_agree() {
        let heads: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.4\r\nHost: a\r\n\r\n",
            b"GET http://b:1/p HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n",
            b"OPTIONS * HTTP/1.0\n\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
            b"GET / HTTP/1.10\r\nHost: a\r\n\r\n",
            b"GET / HTTP/21.1\r\nHost: a\r\n\r\n",
            b"GET /#x HTTP/3.0\r\nHost: a\r\n\r\n",
            b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET /x HTTP/1.1\r\n\r\n",
            b"G(T /x HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for raw in heads {
            let mut h = EMPTY_HEADERS;
            let whole = parse_request(raw, &mut h, DEFAULT_MAX_HEAD).map(|_| ());
            for cut in 0..raw.len() {
                if let Err(e) = check_partial_request(&raw[..cut]) {
                    let show = String::from_utf8_lossy(&raw[..cut]);
                    assert_eq!(
                        whole.map_err(HeadError::status),
                        Err(e.status()),
                        "{show:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn size_and_count_limits() {
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        big.resize(DEFAULT_MAX_HEAD + 1, b'a');
        assert_eq!(err(&big), 431);
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(err(&many), 431);
        // Exactly at the cap is fine.
        let mut h = EMPTY_HEADERS;
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(matches!(
            parse_request(head, &mut h, head.len()),
            Ok(Parse::Complete(_))
        ));
        assert_eq!(
            parse_request(&head[..20], &mut h, 20).map(|_| ()),
            Err(HeadError::TooLarge)
        );
    }

    #[test]
    fn partial_heads_wait_at_every_split() {
        let raw = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
        let whole = req(raw).unwrap();
        let head_len = 48;
        for cut in 0..raw.len() {
            let got = req(&raw[..cut]).unwrap();
            if cut < head_len {
                assert_eq!(got, Parse::Partial, "cut {cut}");
                assert_eq!(find_head_end(&raw[..cut], 0), None, "cut {cut}");
            } else {
                assert_eq!(got, whole, "cut {cut}");
            }
            // Scanning in two steps finds the same end as scanning at once.
            assert_eq!(
                find_head_end(raw, cut.min(head_len)),
                Some(head_len),
                "from {cut}"
            );
        }
    }

    #[test]
    fn head_end_with_bare_lf() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\nHost: a\n\nrest", 0),
            Some(24)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
    }

    #[test]
    fn request_flags() {
        let mut h = EMPTY_HEADERS;
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let Ok(Parse::Complete(r)) = parse_request(raw, &mut h, DEFAULT_MAX_HEAD) else {
            panic!("not parsed")
        };
        assert!(r.expects_continue());
        assert!(r.is_upgrade());
        assert_eq!(r.target, "/");
        assert_eq!(r.method_str, "POST");
        assert_eq!(r.headers.len(), 5);
    }

    #[test]
    fn responses() {
        let mut h = EMPTY_HEADERS;
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let Ok(Parse::Complete(r)) = parse_response(raw, &mut h, DEFAULT_MAX_HEAD) else {
            panic!("not parsed")
        };
        assert_eq!((r.status, r.reason, r.head_len), (200, "OK", 38));
        assert!(r.keep_alive());
        assert_eq!(r.body(Method::Get), Ok(BodyKind::Length(2)));
        assert_eq!(r.body(Method::Head), Ok(BodyKind::Empty));

        let mut h = EMPTY_HEADERS;
        let raw = b"HTTP/1.0 200 OK\r\n\r\n";
        let Ok(Parse::Complete(r)) = parse_response(raw, &mut h, DEFAULT_MAX_HEAD) else {
            panic!("not parsed")
        };
        assert!(!r.keep_alive());
        assert_eq!(r.body(Method::Get), Ok(BodyKind::UntilClose));

        let mut h = EMPTY_HEADERS;
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", &mut h, 100)
                .map(|_| ()),
            Err(HeadError::Framing(FramingError::BadContentLength))
        );
        let mut h = EMPTY_HEADERS;
        assert!(parse_response(b"HTTP/1.1 20 OK\r\n\r\n", &mut h, 100).is_err());
        let mut h = EMPTY_HEADERS;
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n", &mut h, 100).map(|_| ()),
            Ok(())
        );
    }

    /// RFC 9110 §2.5: a later minor version of HTTP/1 is read as HTTP/1.1, in responses as in
    /// requests; the line around it is held to the same grammar httparse applies.
    #[test]
    fn responses_of_a_later_minor_version_read_as_http11() {
        type Got = Result<Option<(u16, String, Version, usize, usize)>, HeadError>;
        let parse = |raw: &[u8]| -> Got {
            let mut h = EMPTY_HEADERS;
            parse_response(raw, &mut h, 100).map(|p| match p {
                Parse::Complete(r) => Some((
                    r.status,
                    r.reason.to_string(),
                    r.version,
                    r.headers.len(),
                    r.head_len,
                )),
                Parse::Partial => None,
            })
        };
        let ok = |code, reason: &str, fields, len| {
            Ok(Some((code, reason.into(), Version::Http11, fields, len)))
        };
        assert_eq!(
            parse(b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
            ok(200, "OK", 1, 38)
        );
        assert_eq!(parse(b"HTTP/1.9 204\r\n\r\n"), ok(204, "", 0, 16));
        assert_eq!(parse(b"\r\n\nHTTP/1.9 204\r\n\r\n"), ok(204, "", 0, 19));
        assert_eq!(
            parse(b"HTTP/1.5 404 Not  Found\n\n"),
            ok(404, "Not  Found", 0, 25)
        );
        assert_eq!(parse(b"HTTP/1.2 200 \xffK\r\n\r\n"), ok(200, "", 0, 19));
        // Not whole yet: the status line, then the fields.
        assert_eq!(parse(b"HTTP/1.2 20"), Ok(None));
        assert_eq!(parse(b"HTTP/1.2 200 OK\r\nX: 1\r\n"), Ok(None));
        let bad = Err(HeadError::Syntax("invalid status line"));
        for raw in [
            &b"HTTP/1.2 20 OK\r\n\r\n"[..],
            b"HTTP/1.2 2000 OK\r\n\r\n",
            b"HTTP/1.2  200 OK\r\n\r\n",
            b"HTTP/1.2 200 O\x01K\r\n\r\n",
            b"HTTP/1.2\r\n\r\n",
        ] {
            assert_eq!(parse(raw), bad, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(
            parse(b"HTTP/1.2 200 OK\r\nX : 1\r\n\r\n"),
            Err(HeadError::Syntax("invalid header name"))
        );
        assert_eq!(parse(b"HTTP/2.0 200 OK\r\n\r\n"), Err(HeadError::Version));
        assert_eq!(
            parse(b"HTTP/1.2 099 X\r\n\r\n").map(|_| ()),
            Err(HeadError::Syntax("invalid status code"))
        );
        // A line that never ends is over the cap like any other head.
        assert_eq!(
            parse(&[&b"HTTP/1.2 200 "[..], &[b'a'; 100]].concat()),
            Err(HeadError::TooLarge)
        );
    }
}
