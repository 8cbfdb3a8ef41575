//! Answers a server gives by itself: the error statuses, written at answer time so that they
//! carry the current `Date`, and a writer for the head of a response whose body length is
//! known.

use std::io::Write;

use crate::http::head::after_empty_lines;

/// The answers either program gives without asking anyone else. Each is a `text/plain` body
/// of its reason phrase and a newline, and most end the connection (see [`After`]). To add
/// one: a variant, its code in [`Canned::status`] and in [`Canned::ALL`], and its phrase in
/// [`reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canned {
    /// 400: the request cannot be parsed or framed.
    BadRequest,
    /// 404: no such path (the admin listener).
    NotFound,
    /// 408: the head did not arrive before its deadline.
    RequestTimeout,
    /// 413: the body is over the configured limit.
    PayloadTooLarge,
    /// 414: the request line alone is over the head cap.
    UriTooLong,
    /// 417: an `Expect` other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationFailed,
    /// 431: the head is over its size or field-count cap.
    HeaderFieldsTooLarge,
    /// 500: the server failed.
    InternalError,
    /// 501: a transfer coding we do not implement, or CONNECT, which a reverse proxy does not
    /// tunnel (RFC 9110 §9.3.6, §15.6.2).
    NotImplemented,
    /// 502: the backend could not be reached or answered garbage.
    BadGateway,
    /// 503: no backend is usable.
    ServiceUnavailable,
    /// 504: the backend did not answer in time.
    GatewayTimeout,
    /// 505: not HTTP/1.0 or 1.1.
    VersionNotSupported,
}

/// What a canned answer says of the connection after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// `Connection: close`: the connection ends.
    Close,
    /// Nothing: an HTTP/1.1 connection stays open by default.
    Keep,
    /// `Connection: keep-alive`, which an HTTP/1.0 client needs to keep it open.
    KeepHttp10,
}

/// What the proxy lists in `Allow` when it answers an OPTIONS as the last hop. It forwards
/// every method but CONNECT; the field names the standard ones (RFC 9110 §9, and PATCH from
/// RFC 5789), since an open set of extension methods cannot be listed.
pub const PROXY_ALLOW: &[u8] = b"GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

impl Canned {
    /// Every canned answer.
    pub const ALL: [Canned; 13] = [
        Canned::BadRequest,
        Canned::NotFound,
        Canned::RequestTimeout,
        Canned::PayloadTooLarge,
        Canned::UriTooLong,
        Canned::ExpectationFailed,
        Canned::HeaderFieldsTooLarge,
        Canned::InternalError,
        Canned::NotImplemented,
        Canned::BadGateway,
        Canned::ServiceUnavailable,
        Canned::GatewayTimeout,
        Canned::VersionNotSupported,
    ];

    /// The answer for a head refused with this status, if there is one.
    pub fn for_status(status: u16) -> Option<Canned> {
        Canned::ALL.into_iter().find(|c| c.status() == status)
    }

    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            Canned::BadRequest => 400,
            Canned::NotFound => 404,
            Canned::RequestTimeout => 408,
            Canned::PayloadTooLarge => 413,
            Canned::UriTooLong => 414,
            Canned::ExpectationFailed => 417,
            Canned::HeaderFieldsTooLarge => 431,
            Canned::InternalError => 500,
            Canned::NotImplemented => 501,
            Canned::BadGateway => 502,
            Canned::ServiceUnavailable => 503,
            Canned::GatewayTimeout => 504,
            Canned::VersionNotSupported => 505,
        }
    }

    /// Appends the whole answer to `out`, stamped with `date` (an IMF-fixdate, RFC 9110
    /// §6.6.1), with `Connection: close`: after most of these the server cannot be sure where
    /// the next request would start, or has no reason to wait for one.
    ///
    /// `head_only` is for a HEAD request: RFC 9110 §9.3.2 gives its answer no content, but the
    /// same fields a GET would get, `Content-Length` included. These are error paths; writing
    /// into a `Vec` with spare capacity does not allocate.
    pub fn write(self, out: &mut Vec<u8>, date: &[u8], head_only: bool) {
        self.write_then(out, date, head_only, After::Close);
    }

    /// [`Canned::write`], saying `after` of the connection instead of always closing it.
    pub fn write_then(self, out: &mut Vec<u8>, date: &[u8], head_only: bool, after: After) {
        let status = self.status();
        let body = reason(status).as_bytes();
        let mut fields: [(&str, &[u8]); 2] = [("Content-Type", b"text/plain"), ("", b"")];
        let mut n = 1;
        if after == After::KeepHttp10 {
            fields[n] = ("Connection", b"keep-alive");
            n += 1;
        }
        let close = after == After::Close;
        write_head(out, status, date, &fields[..n], body.len() + 1, close);
        if !head_only {
            out.extend_from_slice(body);
            out.push(b'\n');
        }
    }
}

/// Whether the request at the front of `raw`, whole or not, parsable or not, is a HEAD: its
/// method token, the bytes before the first space, is exactly `HEAD` (methods are
/// case-sensitive, RFC 9110 §9.1). Empty lines before the request line are skipped, as RFC
/// 9112 §2.2 lets a server do. Lets an answer to a head that failed to parse (no `Host`, a bad
/// field) still leave out its content when the client asked for HEAD.
pub fn is_head_request(raw: &[u8]) -> bool {
    after_empty_lines(raw).starts_with(b"HEAD ")
}

/// The reason phrase for the codes these programs send.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `100 Continue`, sent when a client that asked for it may send its body. It has no `Date`:
/// RFC 9110 §6.6.1 leaves the field optional on 1xx, and the final answer that follows has one.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends a response head with a known body length to `out`: status line, `Date` (an
/// IMF-fixdate: every final answer these programs make carries one, RFC 9110 §6.6.1), the
/// given extra fields (each written as `name: value`), `Content-Length`, and
/// `Connection: close` when the connection ends after this answer. Writing into a `Vec` with
/// spare capacity does not allocate.
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    date: &[u8],
    extra: &[(&str, &[u8])],
    content_length: usize,
    close: bool,
) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\nDate: ", reason(status));
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "Content-Length: {content_length}\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::date::{imf_fixdate, IMF_FIXDATE_LEN};
    use crate::http::framing::BodyKind;
    use crate::http::head::Method;
    use crate::http::head::{parse_response, Parse, EMPTY_HEADERS};
    use std::time::{Duration, UNIX_EPOCH};

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    /// One parsed answer: status, reason, fields, body length by the framing rules for
    /// `method`, the bytes after the head, and whether the connection is kept.
    struct Parsed {
        status: u16,
        reason: String,
        fields: Vec<(String, Vec<u8>)>,
        body: Result<BodyKind, String>,
        rest: Vec<u8>,
        keep_alive: bool,
    }

    fn parse(bytes: &[u8], method: Method) -> Parsed {
        let mut h = EMPTY_HEADERS;
        let Ok(Parse::Complete(r)) = parse_response(bytes, &mut h, 4096) else {
            panic!("does not parse: {:?}", String::from_utf8_lossy(bytes));
        };
        Parsed {
            status: r.status,
            reason: r.reason.to_string(),
            fields: r
                .headers
                .iter()
                .map(|f| (f.name.to_string(), f.value.to_vec()))
                .collect(),
            body: r.body(method).map_err(|e| e.to_string()),
            rest: bytes[r.head_len..].to_vec(),
            keep_alive: r.keep_alive(),
        }
    }

    impl Parsed {
        fn all(&self, name: &str) -> Vec<&[u8]> {
            let named = self
                .fields
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name));
            named.map(|(_, v)| v.as_slice()).collect()
        }
    }

    #[test]
    fn canned_answers_are_valid_dated_and_framed_exactly() {
        for c in Canned::ALL {
            let code = c.status();
            assert_eq!(Canned::for_status(code), Some(c));
            let mut bytes = Vec::new();
            c.write(&mut bytes, DATE, false);
            let r = parse(&bytes, Method::Get);
            assert_eq!(r.status, code);
            assert_eq!(r.reason, reason(code));
            assert!(!r.keep_alive, "{code} must close");
            assert_eq!(r.all("Date"), [DATE], "{code}");
            assert_eq!(r.body, Ok(BodyKind::Length(r.rest.len() as u64)), "{code}");
            assert_eq!(r.rest, format!("{}\n", reason(code)).as_bytes());
            assert!(r.all("Allow").is_empty(), "{code}");
        }
        assert_eq!(Canned::for_status(200), None);
    }

    /// RFC 9110 §9.3.2: the answer to HEAD is the GET answer's head, `Content-Length` and
    /// all, with nothing after it.
    #[test]
    fn canned_answers_to_head_have_the_same_head_and_no_body() {
        for c in Canned::ALL {
            let (mut get, mut head) = (Vec::new(), Vec::new());
            c.write(&mut get, DATE, false);
            c.write(&mut head, DATE, true);
            let (g, h) = (parse(&get, Method::Get), parse(&head, Method::Head));
            assert!(h.rest.is_empty(), "{c:?} sent a body to HEAD");
            assert_eq!(g.fields, h.fields, "{c:?}");
            assert_eq!(h.body, Ok(BodyKind::Empty), "{c:?}");
            assert_eq!(get[..head.len()], head[..], "{c:?}");
        }
    }

    #[test]
    fn canned_answers_carry_the_date_given() {
        let date = imf_fixdate(UNIX_EPOCH + Duration::from_secs(951_782_400));
        let mut out = Vec::new();
        Canned::BadGateway.write(&mut out, &date, false);
        assert_eq!(parse(&out, Method::Get).all("date"), [&date[..]]);
        assert_eq!(date.len(), IMF_FIXDATE_LEN);
    }

    #[test]
    fn canned_answers_say_what_happens_to_the_connection() {
        let cases: [(After, bool, &[&[u8]]); 3] = [
            (After::Close, false, &[b"close"]),
            (After::Keep, true, &[]),
            (After::KeepHttp10, true, &[b"keep-alive"]),
        ];
        for (after, kept, connection) in cases {
            let mut out = Vec::new();
            Canned::BadGateway.write_then(&mut out, DATE, false, after);
            let r = parse(&out, Method::Get);
            assert_eq!(r.keep_alive, kept, "{after:?}");
            assert_eq!(r.all("connection"), connection, "{after:?}");
            assert_eq!(r.body, Ok(BodyKind::Length(12)), "{after:?}");
            assert_eq!(r.rest, b"Bad Gateway\n", "{after:?}");
        }
    }

    #[test]
    fn head_requests_are_recognised_by_their_method_token() {
        let cases: &[(&[u8], bool)] = &[
            (b"HEAD /x HTTP/1.1\r\n\r\n", true),
            (b"HEAD /x HTTP/1.1\r\nBad Field\r\n", true),
            (b"HEAD /aaaa", true),
            (b"\r\nHEAD / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\n\r\n", false),
            (b"head / HTTP/1.1\r\n\r\n", false),
            (b"HEADER / HTTP/1.1\r\n\r\n", false),
            (b"HEAD", false),
            (b"", false),
            (b"\x00\xffHEAD ", false),
        ];
        for (raw, want) in cases {
            let got = is_head_request(raw);
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn written_heads_parse_back() {
        let mut out = Vec::new();
        write_head(&mut out, 200, DATE, &[("X-Backend", b"e1")], 5, false);
        out.extend_from_slice(b"hello");
        let r = parse(&out, Method::Get);
        assert_eq!(r.status, 200);
        assert!(r.keep_alive);
        assert_eq!(r.fields[0], ("Date".to_string(), DATE.to_vec()));
        assert_eq!(r.all("X-Backend"), [b"e1"]);
        assert_eq!(r.body, Ok(BodyKind::Length(5)));
    }
}
