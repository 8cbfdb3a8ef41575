//! `Date` on the wire, and the proxy's own answers kept conformant: every final answer carries
//! one `Date` in IMF-fixdate form (RFC 9110 §6.6.1, §5.6.7), a HEAD gets a head and no content
//! (§9.3.2), and CONNECT gets 501 (§15.6.2).

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use rr_proxy::http::date::imf_fixdate;
use rr_proxy::http::head::{parse_response, Method, Parse, EMPTY_HEADERS};

use crate::proxy::proxy;
use crate::util::{echo, get, Client, Response};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Asserts `r` has exactly one `Date`, that it has the shape of an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, checked field by field, not with the formatter under
/// test), and that it names a second between `before` and now (a second of slack each way for
/// the truncation to whole seconds).
pub fn assert_dated(r: &Response, before: SystemTime) {
    let dates: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("date"))
        .map(|(_, v)| v.as_str())
        .collect();
    let [date] = dates[..] else {
        panic!("want one Date, got {dates:?} in {}", head_text(r));
    };
    let b = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let shape = b.len() == 29
        && DAYS.contains(&&date[0..3])
        && &date[3..5] == ", "
        && digits(5..7)
        && b[7] == b' '
        && MONTHS.contains(&&date[8..11])
        && b[11] == b' '
        && digits(12..16)
        && b[16] == b' '
        && digits(17..19)
        && b[19] == b':'
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
        && &date[25..] == " GMT";
    assert!(shape, "not an IMF-fixdate: {date:?}");
    let after = SystemTime::now() + Duration::from_secs(1);
    let mut t = before - Duration::from_secs(1);
    while t <= after {
        if imf_fixdate(t) == b {
            return;
        }
        t += Duration::from_secs(1);
    }
    panic!("Date {date:?} is not the time of the request");
}

fn head_text(r: &Response) -> String {
    String::from_utf8_lossy(&r.head).into_owned()
}

/// Sends `req` on a new connection and reads everything until the server closes: the answer
/// must be one head and exactly its body (`with_body`) or nothing after the head.
fn answer_then_close(addr: SocketAddr, req: &[u8], with_body: bool) -> (Response, usize) {
    let mut c = Client::connect(addr);
    let before = SystemTime::now();
    c.send(req);
    // The read timeout Client::connect set bounds this read.
    let mut raw = Vec::new();
    if let Err(e) = c.writer().read_to_end(&mut raw) {
        panic!(
            "reading to close: {e}; got {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    let mut h = EMPTY_HEADERS;
    let Ok(Parse::Complete(p)) = parse_response(&raw, &mut h, raw.len()) else {
        panic!("no whole head: {:?}", String::from_utf8_lossy(&raw));
    };
    let length: usize = p
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
        .and_then(|f| std::str::from_utf8(f.value).ok()?.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {:?}", String::from_utf8_lossy(&raw)));
    let after_head = raw.len() - p.head_len;
    let want = if with_body { length } else { 0 };
    assert_eq!(
        after_head,
        want,
        "bytes after the head: {:?}",
        String::from_utf8_lossy(&raw)
    );
    let r = Response {
        status: p.status,
        headers: p
            .headers
            .iter()
            .map(|f| {
                let v = String::from_utf8_lossy(f.value).into_owned();
                (f.name.to_string(), v)
            })
            .collect(),
        head: raw[..p.head_len].to_vec(),
        body: raw[p.head_len..].to_vec(),
        keep_alive: p.keep_alive(),
    };
    assert_dated(&r, before);
    (r, length)
}

/// A port nothing listens on: bound, read, closed.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local_addr")
}

#[test]
fn a_get_through_the_proxy_has_exactly_one_date() {
    let e = echo(&[]);
    let p = proxy(&[e.addr()], &[]);
    let mut c = p.client();
    for path in ["/healthz", "/nope"] {
        let before = SystemTime::now();
        let r = c.request(&get(path));
        assert!(r.status == 200 || r.status == 404, "{}", head_text(&r));
        assert_dated(&r, before);
    }
}

#[test]
fn rr_echo_dates_every_answer_and_sends_no_body_to_a_refused_head() {
    let e = echo(&["--header-timeout", "300ms"]);
    let mut c = e.client();
    let before = SystemTime::now();
    for path in ["/healthz", "/", "/nope"] {
        assert_dated(&c.request(&get(path)), before);
    }
    // Refused heads: a GET gets its error body, a HEAD the same head and nothing else.
    let (g, len) = answer_then_close(e.addr(), b"GET / HTTP/1.1\r\nBad Field\r\n\r\n", true);
    let (h, head_len) = answer_then_close(e.addr(), b"HEAD / HTTP/1.1\r\nBad Field\r\n\r\n", false);
    assert_eq!((g.status, h.status), (400, 400));
    assert_eq!(len, head_len);
    // A head that never finishes: 408, dated, still no body for HEAD.
    let (r, _) = answer_then_close(e.addr(), b"HEAD / HTTP/1.1\r\nHost: t\r\n", false);
    assert_eq!(r.status, 408);
}

#[test]
fn the_proxys_own_answers_are_dated() {
    let p = proxy(&[closed_port()], &["--head-timeout", "300ms"]);
    let req = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let (r, _) = answer_then_close(p.addr(), req, true);
    assert_eq!(r.status, 502);
    assert!(!r.keep_alive);
    let (r, _) = answer_then_close(p.addr(), b"GET / HTTP/1.1\r\n\r\n", true);
    assert_eq!((r.status, r.body.as_slice()), (400, &b"Bad Request\n"[..]));
    let (r, _) = answer_then_close(p.addr(), b"GET / HTTP/1.1\r\nHost: t\r\n", true);
    assert_eq!(r.status, 408);
}

/// RFC 9110 §9.3.2: no content in the answer to HEAD, even one the proxy makes itself; its
/// head still shows the length a GET would get.
#[test]
fn the_proxys_own_answers_to_head_have_no_body() {
    let p = proxy(&[closed_port()], &["--head-timeout", "300ms"]);
    let (get, get_len) = answer_then_close(p.addr(), b"GET /x HTTP/1.1\r\n\r\n", true);
    let (head, head_len) = answer_then_close(p.addr(), b"HEAD /x HTTP/1.1\r\n\r\n", false);
    assert_eq!((get.status, head.status), (400, 400));
    assert_eq!((get_len, head_len), (12, 12));
    // Known from the parsed request (a 502 after the backend failed)...
    let req = b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let (r, len) = answer_then_close(p.addr(), req, false);
    assert_eq!((r.status, len), (502, 12));
    // ...and from the request line of a head that timed out.
    let (r, _) = answer_then_close(p.addr(), b"HEAD / HTTP/1.1\r\nHost: t\r\n", false);
    assert_eq!(r.status, 408);
}

/// RFC 9110 §15.6.2: the 501 for CONNECT is dated and framed like every other answer.
#[test]
fn connect_gets_a_dated_501() {
    let p = proxy(&[closed_port()], &[]);
    let req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    let (r, _) = answer_then_close(p.addr(), req, true);
    assert_eq!(r.status, 501);
    assert_eq!(r.header("Allow"), None);
}

/// The client reads a HEAD's answer with HEAD framing and the connection stays usable.
#[test]
fn a_head_through_the_proxy_is_dated_and_bodiless() {
    let e = echo(&[]);
    let p = proxy(&[e.addr()], &[]);
    let mut c = p.client();
    let before = SystemTime::now();
    c.send(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_to(Method::Head);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_dated(&r, before);
    assert_dated(&c.request(&get("/healthz")), before);
}

#[test]
fn the_proxy_dates_a_backend_answer_that_has_none() {
    // RFC 9110 §6.6.1: whoever forwards an undated response and has a clock dates it.
    let b = crate::backend::Backend::ok("x");
    let p = proxy(&[b.addr], &[]);
    let before = SystemTime::now();
    let r = p.client().request(&get("/"));
    assert_eq!(r.status, 200);
    assert_dated(&r, before);
}
