//! Heads as the proxy passes them on: hop-by-hop fields removed in both directions (RFC 9110
//! §7.6.1), `X-Forwarded-*` added to requests, `X-Backend-Server` and the client-side
//! `Connection` added to responses. Pure functions from a parsed head to bytes.

use std::io::Write;
use std::net::IpAddr;

use crate::http::framing::{list_items, upgrade_offerable, BodyKind, Encoding};
use crate::http::head::{Method, Request, Response, Version};

/// Fields that describe one hop and never pass a proxy (RFC 9110 §7.6.1), plus the ones the
/// proxy writes itself. `Transfer-Encoding` is not here: chunked bodies pass through as they
/// are, so the field stays true for the next hop too. `HTTP2-Settings` belongs to an `h2c`
/// upgrade, which is never passed on (see `framing`).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Fields a `Connection` option may not remove, because the message's framing or routing
/// depends on them: `Connection: content-length` must not turn a body into a new request.
const PROTECTED: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// Whether the field `name` is dropped when forwarding a message whose fields are `all`.
/// `keep_upgrade` keeps `Upgrade` while a protocol switch is being agreed.
fn is_hop_by_hop(name: &str, all: &[httparse::Header<'_>], keep_upgrade: bool) -> bool {
    if keep_upgrade && name.eq_ignore_ascii_case("upgrade") {
        return false;
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return true;
    }
    if PROTECTED.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return false;
    }
    all.iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| list_items(h.value))
        .any(|opt| opt.eq_ignore_ascii_case(name.as_bytes()))
}

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A client's address as text, made once per connection for `X-Forwarded-For`.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr {
    text: [u8; 48],
    len: usize,
}

impl ClientAddr {
    /// Formats `ip` (the longest IPv6 form is 45 bytes).
    pub fn new(ip: IpAddr) -> ClientAddr {
        let mut text = [0u8; 48];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as usize;
        ClientAddr { text, len }
    }

    /// The text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

/// The name the proxy gives itself in `Via` (RFC 9110 §7.6.3 allows a pseudonym in place of
/// a host name; the backends need not learn the proxy's address from it).
const VIA_NAME: &[u8] = b"rr-proxy";

/// Writes the request head the backend sees, all but its blank last line (see [`end_head`]):
/// always HTTP/1.1 (the proxy keeps its backend connections alive whatever the client speaks),
/// hop-by-hop fields removed, `Expect` removed (the proxy answers `100 Continue` itself),
/// `X-Forwarded-For` extended with the client's address, `X-Forwarded-Proto` set, and `Via`
/// extended with the proxy (RFC 9110 §7.6.3: a proxy MUST send it on forwarded messages).
///
/// An absolute-form target is sent in origin-form, which every server understands, and its
/// authority becomes `Host` in place of the client's (RFC 9112 §3.2.2: a server MUST ignore
/// Host and use the target's authority, so the backend must see what the proxy went by).
///
/// A chunked body's `Transfer-Encoding` is sent as one line listing the codings without empty
/// elements, so a backend that reads one line, or trips on `,chunked`, frames the body as the
/// proxy did.
pub fn request_head(out: &mut Vec<u8>, req: &Request<'_, '_>, client: &ClientAddr) {
    let upgrade = req.is_upgrade();
    out.extend_from_slice(req.method_str.as_bytes());
    out.push(b' ');
    write_target(out, req);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = req.authority {
        field(out, "Host", authority.as_bytes());
    }
    let chunked = req.body == BodyKind::Chunked;
    let hop_limited = matches!(req.method, Method::Options | Method::Trace);
    let (mut coding_written, mut max_forwards_written) = (false, false);
    let (mut forwarded_for, mut via) = (false, false);
    for h in req.headers {
        let name = h.name;
        // `Upgrade` is written again below, with only the protocols passed on.
        if is_hop_by_hop(name, req.headers, false)
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("x-forwarded-proto")
            || (req.authority.is_some() && name.eq_ignore_ascii_case("host"))
        {
            continue;
        }
        if chunked && name.eq_ignore_ascii_case("transfer-encoding") {
            if !coding_written {
                coding_written = true;
                out.extend_from_slice(b"Transfer-Encoding: ");
                write_items(out, req.headers, name, |_| true);
                out.extend_from_slice(b"\r\n");
            }
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            // Appended below as one field, earlier hops first (RFC 7239 §5.2 style).
            forwarded_for = true;
            continue;
        }
        if name.eq_ignore_ascii_case("via") {
            via = true; // appended below, like X-Forwarded-For
            continue;
        }
        if h.value.len() > 1 && h.value[0] == b'0' && name.eq_ignore_ascii_case("content-length") {
            // Leading zeros go: a backend reading the number as C's `strtol(s, 0)` would take
            // `010` for eight.
            let n = req.fields.content_length.unwrap_or_default();
            let _ = write!(out, "Content-Length: {n}\r\n");
            continue;
        }
        if hop_limited && name.eq_ignore_ascii_case("max-forwards") {
            // RFC 9110 §7.6.2: one less for the next hop (0 was answered here), as one
            // field: the value the proxy went by.
            if let Some(n) = req.fields.max_forwards {
                if !max_forwards_written {
                    max_forwards_written = true;
                    let _ = write!(out, "Max-Forwards: {}\r\n", n.saturating_sub(1));
                }
                continue;
            }
        }
        field(out, name, h.value);
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    if forwarded_for && write_items(out, req.headers, "x-forwarded-for", |_| true) {
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.as_bytes());
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: http\r\nVia: ");
    if via && write_items(out, req.headers, "via", |_| true) {
        out.extend_from_slice(b", ");
    }
    // RFC 9110 §7.6.3: the protocol the request was received with; "HTTP/" may be left out.
    out.extend_from_slice(match req.version {
        Version::Http10 => b"1.0 ",
        Version::Http11 => b"1.1 ",
    });
    out.extend_from_slice(VIA_NAME);
    out.extend_from_slice(b"\r\n");
    if upgrade {
        out.extend_from_slice(b"Upgrade: ");
        write_items(out, req.headers, "upgrade", upgrade_offerable);
        out.extend_from_slice(b"\r\nConnection: upgrade\r\n");
    }
}

/// Whether every protocol a `101` names was offered in `sent`, the request head as it was
/// forwarded (RFC 9110 §7.8: a server MUST NOT switch to a protocol the client did not
/// indicate). A 101 naming none is refused too (RFC 9110 §15.2.2).
pub fn switch_was_offered(sent: &[u8], resp: &Response<'_, '_>) -> bool {
    const LINE: &[u8] = b"\r\nUpgrade: ";
    let Some(at) = sent.windows(LINE.len()).position(|w| w == LINE) else {
        return false;
    };
    let rest = &sent[at + LINE.len()..];
    let offer = &rest[..rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len())];
    let mut named = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .flat_map(|h| list_items(h.value))
        .peekable();
    named.peek().is_some() && named.all(|p| list_items(offer).any(|o| o.eq_ignore_ascii_case(p)))
}

/// The content of the proxy's answer to a TRACE it may not forward (RFC 9110 §9.3.8): the
/// request as received, less the fields likely to carry credentials, which the RFC asks the
/// last recipient to leave out.
pub fn trace_echo(out: &mut Vec<u8>, req: &Request<'_, '_>) {
    out.extend_from_slice(req.method_str.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(match req.version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    });
    const SECRET: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];
    for h in req.headers {
        if !SECRET.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
            field(out, h.name, h.value);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The request target in origin-form: an absolute-form target loses its scheme and authority
/// and gets `/` for an empty path (RFC 9112 §3.2.1), or `*` for an OPTIONS request without
/// path or query (RFC 9112 §3.2.4); any other form is sent as received.
fn write_target(out: &mut Vec<u8>, req: &Request<'_, '_>) {
    if req.authority.is_none() {
        out.extend_from_slice(req.target.as_bytes());
    } else if req.path.is_empty() && req.method == Method::Options {
        out.push(b'*');
    } else {
        if !req.path.starts_with('/') {
            out.push(b'/');
        }
        out.extend_from_slice(req.path.as_bytes());
    }
}

/// Every value of the fields called `name`, in order, each followed by `, `.
/// Every element of every `name` field, in order, as one list, read with the same rules the
/// framing decision used ([`list_items`]: empty elements and whitespace gone), less those
/// `keep` refuses. Whether any was written.
fn write_items(
    out: &mut Vec<u8>,
    all: &[httparse::Header<'_>],
    name: &str,
    keep: fn(&[u8]) -> bool,
) -> bool {
    let mut first = true;
    let named = all.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    for item in named.flat_map(|h| list_items(h.value)).filter(|i| keep(i)) {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        out.extend_from_slice(item);
    }
    !first
}

/// Ends a head written by [`request_head`] for one particular backend: an HTTP/1.0 request
/// may come without `Host`, which HTTP/1.1 requires, so the backend's name stands in.
/// `base` is the length [`request_head`] left, so a retry can end it again for another backend.
pub fn end_head(out: &mut Vec<u8>, base: usize, host: Option<&str>) {
    out.truncate(base);
    if let Some(host) = host {
        field(out, "Host", host.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response head is adapted to the client.
#[derive(Clone, Copy, Debug)]
pub struct ResponseEdits<'a> {
    /// The name to put in `X-Backend-Server`, if the header is on.
    pub backend: Option<&'a str>,
    /// The client connection ends after this response.
    pub close: bool,
    /// The client speaks HTTP/1.0 (it needs `Connection: keep-alive` to stay open).
    pub client_version: Version,
    /// The body is decoded from chunked and sent until close: drop `Transfer-Encoding`.
    pub dechunk: bool,
    /// A `101 Switching Protocols` being passed on: keep `Upgrade`, say `Connection: upgrade`.
    pub switching: bool,
    /// The time now, for a final answer the backend sent without `Date`.
    pub date: &'a [u8],
}

/// Writes the response head the client sees.
pub fn response_head(out: &mut Vec<u8>, resp: &Response<'_, '_>, edits: ResponseEdits<'_>) {
    // httparse takes exactly three digits, so the status is written without formatting.
    let s = resp.status;
    let digits = [s / 100 % 10, s / 10 % 10, s % 10].map(|d| b'0' + d as u8);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(resp.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    // No framing fields on answers that never have content (RFC 9112 §6.1, RFC 9110 §8.6),
    // and no Transfer-Encoding to an HTTP/1.0 client, which cannot read it (RFC 9112 §6.1).
    let bodiless = s < 200 || s == 204;
    let drop_te = edits.dechunk || bodiless || edits.client_version == Version::Http10;
    // A head with both is refused when it frames a body; a 304 or an answer to HEAD frames
    // none, so it gets here. Transfer-Encoding wins and Content-Length goes (RFC 9112 §6.3
    // item 3): a sender must never send both (§6.2), and a client could frame by either.
    let drop_cl = bodiless || resp.fields.encoding != Encoding::Absent;
    // A length the backend repeated (`5, 5`) goes on once.
    let one_cl = resp.fields.length_repeated && !drop_cl;
    let mut dated = false;
    for h in resp.headers {
        let name = h.name;
        dated |= name.eq_ignore_ascii_case("date");
        if is_hop_by_hop(name, resp.headers, edits.switching)
            || (drop_te && name.eq_ignore_ascii_case("transfer-encoding"))
            || ((drop_cl || one_cl) && name.eq_ignore_ascii_case("content-length"))
            || (edits.backend.is_some() && name.eq_ignore_ascii_case("x-backend-server"))
        {
            continue;
        }
        field(out, name, h.value);
    }
    if let (true, Some(n)) = (one_cl, resp.fields.content_length) {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    if let Some(name) = edits.backend {
        field(out, "X-Backend-Server", name.as_bytes());
    }
    // RFC 9110 §6.6.1: a recipient with a clock forwarding a response without Date adds one.
    if !dated && s >= 200 {
        field(out, "Date", edits.date);
    }
    if edits.switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if edits.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if edits.client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response, Parse, EMPTY_HEADERS};

    #[test]
    fn client_addresses_of_every_length_are_kept_whole() {
        for ip in [
            "10.0.0.9",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:1.2.3.4",
            "::1",
        ] {
            let addr = ClientAddr::new(ip.parse().unwrap());
            assert_eq!(addr.as_bytes(), ip.as_bytes());
        }
    }

    #[test]
    fn status_lines_keep_the_code_and_reason() {
        for raw in [
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.0 999 Odd\r\n\r\n",
            "HTTP/1.1 100 \r\n\r\n",
        ] {
            let mut h = EMPTY_HEADERS;
            let Ok(Parse::Complete(resp)) = parse_response(raw.as_bytes(), &mut h, 4096) else {
                panic!("bad test response {raw:?}");
            };
            let mut out = Vec::new();
            let edits = ResponseEdits {
                backend: None,
                close: false,
                client_version: Version::Http11,
                dechunk: false,
                switching: false,
                date: b"Sun, 06 Nov 1994 08:49:37 GMT",
            };
            response_head(&mut out, &resp, edits);
            let line = String::from_utf8(out).unwrap();
            let want = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason);
            assert!(line.starts_with(&want), "{line:?}");
        }
    }

    #[test]
    fn max_forwards_counts_down_for_options_and_trace_only() {
        let got = rewrite_request(b"OPTIONS * HTTP/1.1\r\nHost: a\r\nMax-Forwards: 10\r\n\r\n");
        assert!(got.contains("\r\nMax-Forwards: 9\r\n"), "{got}");
        let got = rewrite_request(b"GET / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 10\r\n\r\n");
        assert!(got.contains("\r\nMax-Forwards: 10\r\n"), "{got}");
        // One field goes on: the one the proxy went by, counted down.
        let got = rewrite_request(
            b"TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 5\r\nMax-Forwards: 9\r\n\r\n",
        );
        assert!(got.contains("\r\nMax-Forwards: 4\r\n"), "{got}");
        assert_eq!(got.matches("Max-Forwards").count(), 1, "{got}");
    }

    #[test]
    fn trace_echo_leaves_out_credentials() {
        let raw =
            b"TRACE /t HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\nCookie: y\r\nX-A: 1\r\n\r\n";
        let mut h = EMPTY_HEADERS;
        let Ok(Parse::Complete(req)) = parse_request(raw, &mut h, 4096) else {
            panic!("bad test request")
        };
        let mut out = Vec::new();
        trace_echo(&mut out, &req);
        assert_eq!(out, b"TRACE /t HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n");
    }

    fn rewrite_request(raw: &[u8]) -> String {
        let mut h = EMPTY_HEADERS;
        let Ok(Parse::Complete(req)) = parse_request(raw, &mut h, 4096) else {
            panic!("bad test request")
        };
        let mut out = Vec::new();
        request_head(
            &mut out,
            &req,
            &ClientAddr::new("10.0.0.9".parse().unwrap()),
        );
        let base = out.len();
        let needs_host = req.fields.hosts == 0 && req.authority.is_none();
        end_head(&mut out, base, needs_host.then_some("b:1"));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_hop_by_hop_fields_are_removed() {
        let got = rewrite_request(
            b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive, X-Secret, Content-Length\r\n\
              Keep-Alive: 5\r\nX-Secret: 1\r\nTE: trailers\r\nTrailer: X\r\nProxy-Connection: x\r\n\
              Upgrade: websocket\r\nExpect: 100-continue\r\nX-Forwarded-Proto: https\r\n\
              X-Keep: yes\r\n\r\n",
        );
        assert_eq!(
            got,
            "GET /a HTTP/1.1\r\nHost: h\r\nX-Keep: yes\r\nX-Forwarded-For: 10.0.0.9\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.0 rr-proxy\r\n\r\n"
        );
    }

    #[test]
    fn http10_without_host_gets_the_backend_name() {
        let got = rewrite_request(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            got,
            "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n\
             Via: 1.0 rr-proxy\r\nHost: b:1\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_is_sent_in_origin_form_with_its_authority_as_host() {
        let cases = [
            (
                "GET http://b.example:81/p?q=1 HTTP/1.1\r\nhost: a.example\r\nX: 1\r\n\r\n",
                "GET /p?q=1 HTTP/1.1\r\nHost: b.example:81\r\nX: 1\r\n",
            ),
            (
                "GET HTTPS://b HTTP/1.1\r\nHost: a\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: b\r\nX-Forwarded-For",
            ),
            (
                "GET http://b?x=1 HTTP/1.1\r\nHost: b\r\n\r\n",
                "GET /?x=1 HTTP/1.1\r\nHost: b\r\nX-Forwarded-For",
            ),
            // RFC 9112 §3.2.4: OPTIONS to an origin with an empty path asks about the server.
            (
                "OPTIONS http://b:8080 HTTP/1.1\r\nHost: b:8080\r\n\r\n",
                "OPTIONS * HTTP/1.1\r\nHost: b:8080\r\nX-Forwarded-For",
            ),
            (
                "OPTIONS http://b/ HTTP/1.1\r\nHost: b\r\n\r\n",
                "OPTIONS / HTTP/1.1\r\nHost: b\r\nX-Forwarded-For",
            ),
            // An HTTP/1.0 request without Host takes it from the target, not the backend.
            (
                "GET http://b.example/ HTTP/1.0\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: b.example\r\nX-Forwarded-For",
            ),
            // Other forms pass as they are.
            (
                "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                "OPTIONS * HTTP/1.1\r\nHost: h\r\nX-Forwarded-For",
            ),
        ];
        for (raw, start) in cases {
            let got = rewrite_request(raw.as_bytes());
            assert!(got.starts_with(start), "{raw:?} became {got:?}");
            assert_eq!(
                got.to_ascii_lowercase().matches("\r\nhost:").count(),
                1,
                "{got:?}"
            );
        }
    }

    #[test]
    fn via_names_the_proxy_after_earlier_hops() {
        let got = rewrite_request(
            b"GET / HTTP/1.1\r\nVia: 1.1 a\r\nHost: h\r\nvia: 1.0 b, 1.1 c\r\n\r\n",
        );
        assert!(
            got.contains("\r\nVia: 1.1 a, 1.0 b, 1.1 c, 1.1 rr-proxy\r\n"),
            "{got}"
        );
        assert_eq!(got.to_ascii_lowercase().matches("via:").count(), 1, "{got}");
        // The version the request came with, even when it is read as 1.1.
        let got = rewrite_request(b"GET / HTTP/1.0\r\n\r\n");
        assert!(got.contains("\r\nVia: 1.0 rr-proxy\r\n"), "{got}");
        let got = rewrite_request(b"GET / HTTP/1.3\r\nHost: h\r\n\r\n");
        assert!(got.contains("\r\nVia: 1.1 rr-proxy\r\n"), "{got}");
    }

    #[test]
    fn transfer_codings_are_sent_as_one_clean_line() {
        let cases = [
            ("Transfer-Encoding: ,chunked\r\n", "chunked"),
            ("Transfer-Encoding: chunked,\r\n", "chunked"),
            ("transfer-encoding:  \tCHUNKED \r\n", "CHUNKED"),
            (
                "Transfer-Encoding: ,\r\nX: 1\r\nTransfer-Encoding:\r\nTransfer-Encoding: , chunked\r\n",
                "chunked",
            ),
        ];
        for (fields, want) in cases {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\n{fields}\r\n");
            let got = rewrite_request(raw.as_bytes());
            let line = format!("\r\nTransfer-Encoding: {want}\r\n");
            assert!(got.contains(&line), "{fields:?} became {got:?}");
            let lines = got
                .to_ascii_lowercase()
                .matches("transfer-encoding")
                .count();
            assert_eq!(lines, 1, "{got:?}");
        }
    }

    #[test]
    fn forwarded_for_is_appended() {
        let got = rewrite_request(
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: h\r\nx-forwarded-for: 2.2.2.2\r\n\r\n",
        );
        assert!(
            got.contains("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n"),
            "{got}"
        );
        assert_eq!(got.matches("orwarded-For").count(), 1);
        // Empty elements are not passed on as `, ` before the client.
        let got =
            rewrite_request(b"GET / HTTP/1.1\r\nX-Forwarded-For:\r\nVia: ,\r\nHost: h\r\n\r\n");
        assert!(got.contains("\r\nX-Forwarded-For: 10.0.0.9\r\n"), "{got}");
        assert!(got.contains("\r\nVia: 1.1 rr-proxy\r\n"), "{got}");
    }

    #[test]
    fn upgrade_requests_keep_upgrade() {
        let got = rewrite_request(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(got.contains("Upgrade: websocket\r\n"), "{got}");
        assert!(got.ends_with("Connection: upgrade\r\n\r\n"), "{got}");
        // One list of the protocols passed on: no h2c, nothing malformed.
        let got = rewrite_request(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket/13\r\n\
              upgrade: x;, H2C/2, foo\r\n\r\n",
        );
        assert!(got.contains("\r\nUpgrade: websocket/13, foo\r\n"), "{got}");
        assert_eq!(
            got.to_ascii_lowercase().matches("upgrade:").count(),
            1,
            "{got}"
        );
    }

    #[test]
    fn a_switch_must_name_protocols_the_request_offered() {
        let sent = rewrite_request(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c, WebSocket\r\n\r\n",
        );
        for (upgrade, ok) in [
            ("websocket", true),
            ("h2c", false),
            ("websocket, h2c", false),
            ("other", false),
            ("", false),
        ] {
            let raw = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: {upgrade}\r\n\r\n");
            let mut h = EMPTY_HEADERS;
            let Ok(Parse::Complete(resp)) = parse_response(raw.as_bytes(), &mut h, 4096) else {
                panic!("bad test response {raw:?}");
            };
            assert_eq!(
                switch_was_offered(sent.as_bytes(), &resp),
                ok,
                "{upgrade:?}"
            );
        }
    }

    #[test]
    fn content_length_goes_on_without_leading_zeros() {
        let got = rewrite_request(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0010\r\n\r\n");
        assert!(got.contains("\r\nContent-Length: 10\r\n"), "{got}");
        let got = rewrite_request(b"POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n");
        assert!(got.contains("\r\ncontent-length: 0\r\n"), "{got}");
    }

    #[test]
    fn framing_fields_survive_connection_options() {
        let got = rewrite_request(
            b"POST / HTTP/1.1\r\nHost: h\r\nConnection: content-length, host\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert!(
            got.contains("Content-Length: 2\r\n") && got.contains("Host: h\r\n"),
            "{got}"
        );
    }

    fn rewrite_response(raw: &[u8], edits: ResponseEdits<'_>) -> String {
        let mut h = EMPTY_HEADERS;
        let Ok(Parse::Complete(resp)) = parse_response(raw, &mut h, 4096) else {
            panic!("bad test response")
        };
        let mut out = Vec::new();
        response_head(&mut out, &resp, edits);
        String::from_utf8(out).unwrap()
    }

    /// A response rewritten with the default edits, less `X-Backend-Server`.
    fn rewrite_plain(raw: &[u8]) -> String {
        rewrite_response(
            raw,
            ResponseEdits {
                backend: None,
                ..EDITS
            },
        )
    }

    const EDITS: ResponseEdits<'static> = ResponseEdits {
        backend: Some("b1:80"),
        close: false,
        client_version: Version::Http11,
        dechunk: false,
        switching: false,
        date: b"Sun, 06 Nov 1994 08:49:37 GMT",
    };

    #[test]
    fn response_fields() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n\
                    X-Hop: 1\r\nTransfer-Encoding: chunked\r\nX-Backend-Server: spoof\r\nDate: d\r\n\r\n";
        let got = rewrite_response(raw, EDITS);
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: d\r\nX-Backend-Server: b1:80\r\n\r\n"
        );
        let got = rewrite_response(
            raw,
            ResponseEdits {
                dechunk: true,
                close: true,
                client_version: Version::Http10,
                ..EDITS
            },
        );
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nDate: d\r\nX-Backend-Server: b1:80\r\nConnection: close\r\n\r\n"
        );
        let got = rewrite_response(
            b"HTTP/1.1 204 No Content\r\nDate: d\r\n\r\n",
            ResponseEdits {
                backend: None,
                client_version: Version::Http10,
                ..EDITS
            },
        );
        assert_eq!(
            got,
            "HTTP/1.1 204 No Content\r\nDate: d\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn answers_without_content_carry_no_framing_fields() {
        for status in ["204 No Content", "103 Early Hints", "100 Continue"] {
            let raw = format!(
                "HTTP/1.1 {status}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\
                 X-A: 1\r\nDate: d\r\n\r\n"
            );
            let got = rewrite_plain(raw.as_bytes());
            assert_eq!(
                got,
                format!("HTTP/1.1 {status}\r\nX-A: 1\r\nDate: d\r\n\r\n")
            );
        }
        // A 304 and a HEAD answer may say what the content would be: kept, for HTTP/1.1.
        let raw = b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nDate: d\r\n\r\n";
        let kept = rewrite_plain(raw);
        assert_eq!(
            kept,
            "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nDate: d\r\n\r\n"
        );
    }

    #[test]
    fn a_repeated_content_length_goes_on_once() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nX: 1\r\ncontent-length: 5\r\n\
                    Date: d\r\n\r\n";
        let got = rewrite_plain(raw);
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nX: 1\r\nDate: d\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn content_length_beside_transfer_encoding_is_never_passed_on() {
        // A 304, or an answer to HEAD, frames no body, so both fields reach the rewrite; the
        // client must not get both (RFC 9112 §6.2), and Transfer-Encoding wins (§6.3 item 3).
        for status in ["304 Not Modified", "200 OK"] {
            let raw = format!(
                "HTTP/1.1 {status}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\
                 Date: d\r\n\r\n"
            );
            let got = rewrite_plain(raw.as_bytes());
            assert_eq!(
                got,
                format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\nDate: d\r\n\r\n")
            );
        }
        // Without Transfer-Encoding, a HEAD answer keeps the length the content would have.
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: d\r\n\r\n";
        let got = rewrite_plain(raw);
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: d\r\n\r\n"
        );
    }

    #[test]
    fn final_answers_without_a_date_get_one() {
        let edits = ResponseEdits {
            backend: None,
            ..EDITS
        };
        let got = rewrite_response(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", edits);
        assert_eq!(
            got,
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        // The backend's own is kept, whatever its case; interim answers need none.
        let got = rewrite_response(b"HTTP/1.1 200 OK\r\ndate: mine\r\n\r\n", edits);
        assert_eq!(got, "HTTP/1.1 200 OK\r\ndate: mine\r\n\r\n");
        let got = rewrite_response(b"HTTP/1.1 103 Early Hints\r\n\r\n", edits);
        assert_eq!(got, "HTTP/1.1 103 Early Hints\r\n\r\n");
    }

    #[test]
    fn http10_clients_never_see_transfer_encoding() {
        let edits = ResponseEdits {
            backend: None,
            client_version: Version::Http10,
            close: true,
            ..EDITS
        };
        for raw in [
            &b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            let got = rewrite_response(raw, edits);
            assert!(
                !got.to_ascii_lowercase().contains("transfer-encoding"),
                "{got}"
            );
        }
    }

    #[test]
    fn switching_protocols_keeps_upgrade() {
        let got = rewrite_response(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            ResponseEdits {
                switching: true,
                ..EDITS
            },
        );
        assert_eq!(
            got,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Backend-Server: b1:80\r\n\
             Connection: upgrade\r\n\r\n"
        );
    }
}
