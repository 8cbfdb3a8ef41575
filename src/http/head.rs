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

/// The protocol version of a message. httparse accepts only these two.
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
    /// An HTTP version other than 1.0 or 1.1 (505).
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
/// malformed request line that httparse happens to stop at the version (400).
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

/// The first line's version token (the last word of a request line, the first of a status
/// line) reads `HTTP/<digit>.<digit>`.
fn looks_like_version(buf: &[u8]) -> bool {
    let line = buf
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty() && l != b"\r");
    let Some(line) = line else { return false };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let is_version = |w: &[u8]| {
        matches!(w, [b'H', b'T', b'T', b'P', b'/', a, b'.', b]
            if a.is_ascii_digit() && b.is_ascii_digit())
    };
    let mut words = line.split(|&b| b == b' ');
    let first = words.next().unwrap_or_default();
    is_version(first)
        || (line.iter().filter(|&&b| b == b' ').count() == 2
            && is_version(words.next_back().unwrap_or_default()))
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
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(window).map_err(|e| syntax(e, window))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if buf.len() >= max_head => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Ok(Parse::Partial),
    };
    let method_str = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let version = Version::from_minor(req.version);
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let method = Method::from_token(method_str);
    check_target(method, target)?;
    let fields = framing::scan_fields(headers)?;
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1; at most one in HTTP/1.0; a valid one.
    if fields.hosts > 1 || (version == Version::Http11 && fields.hosts == 0) || fields.bad_host {
        return Err(HeadError::BadHost);
    }
    let body = framing::request_body(version, &fields)?;
    Ok(Parse::Complete(Request {
        method,
        method_str,
        target,
        version,
        headers,
        head_len,
        body,
        fields,
    }))
}

/// RFC 9112 §3.2: origin-form (`/path`) or absolute-form (`http://…`) for every method,
/// asterisk-form only for OPTIONS, authority-form only for CONNECT.
fn check_target(method: Method, target: &str) -> Result<(), HeadError> {
    let t = target.as_bytes();
    let ok = match t.first() {
        Some(b'/') => true,
        Some(b'*') => method == Method::Options && t.len() == 1,
        Some(_) if method == Method::Connect => !t.contains(&b'/'),
        Some(_) => {
            let lower = |n: usize| t.get(..n).map(|p| p.to_ascii_lowercase());
            lower(7).as_deref() == Some(b"http://") || lower(8).as_deref() == Some(b"https://")
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(HeadError::BadTarget)
    }
}

/// Parses a response head from the start of `buf`, looking at no more than `max_head` bytes.
pub fn parse_response<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    max_head: usize,
) -> Result<Parse<Response<'h, 'b>>, HeadError> {
    let window = &buf[..buf.len().min(max_head)];
    let mut resp = httparse::Response::new(headers);
    let head_len = match resp.parse(window).map_err(|e| syntax(e, window))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if buf.len() >= max_head => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Ok(Parse::Partial),
    };
    let status = resp.code.unwrap_or(0);
    if !(100..=999).contains(&status) {
        return Err(HeadError::Syntax("invalid status code"));
    }
    let reason = resp.reason.unwrap_or("");
    let version = Version::from_minor(resp.version);
    let headers: &'h [httparse::Header<'b>] = resp.headers;
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
            // Version.
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
            // Target forms.
            (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
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
}
