//! The client-facing side of rr-proxy against RFC 9110 and RFC 9112: what a client sees and
//! what reaches the backend for request targets, versions, `Via`, `Expect`, `Transfer-Encoding`
//! and heads that are broken or never come.

use rr_proxy::http::head::Method;

use crate::backend::Backend;
use crate::proxy::proxy;
use crate::util::Proc;

/// A proxy in front of one scripted backend answering `200 OK`.
fn setup(extra: &[&str]) -> (Backend, Proc) {
    let b = Backend::ok("ok");
    let p = proxy(&[b.addr], extra);
    (b, p)
}

/// Sends `raw` on a new connection and answers the status of the response.
fn status_of(p: &Proc, raw: &[u8]) -> u16 {
    let mut c = p.client();
    c.send(raw);
    c.read_response_to(Method::Get).status
}

#[test]
fn absolute_form_reaches_the_backend_in_origin_form_with_its_authority_as_host() {
    let (b, p) = setup(&[]);
    let cases: [(&[u8], &str, &str); 3] = [
        (
            b"GET http://b.example:81/p?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "/p?q=1",
            "b.example:81",
        ),
        (
            b"GET HTTP://b.example HTTP/1.1\r\nHost: b.example\r\n\r\n",
            "/",
            "b.example",
        ),
        // HTTP/1.0 without Host: the target names the origin, not the backend's address.
        (
            b"GET http://c.example/x HTTP/1.0\r\n\r\n",
            "/x",
            "c.example",
        ),
    ];
    for (raw, _, _) in cases {
        assert_eq!(
            status_of(&p, raw),
            200,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let seen = b.seen();
    assert_eq!(seen.len(), cases.len());
    for (s, (raw, path, host)) in seen.iter().zip(cases) {
        let show = String::from_utf8_lossy(raw);
        assert_eq!(s.path(), path, "{show:?} became {:?}", s.head);
        assert_eq!(s.header("host").as_deref(), Some(host), "{:?}", s.head);
        let hosts = s.head.to_ascii_lowercase().matches("\r\nhost:").count();
        assert_eq!(hosts, 1, "{:?}", s.head);
    }
}

#[test]
fn targets_that_name_no_valid_origin_or_carry_a_fragment_get_400() {
    let (b, p) = setup(&[]);
    let bad: [&[u8]; 7] = [
        b"GET http:///p HTTP/1.1\r\nHost: b\r\n\r\n",
        b"GET http://u:p@b.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n",
        b"GET ftp://b.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n",
        b"GET http://b.example:8x/p HTTP/1.1\r\nHost: b.example\r\n\r\n",
        b"GET http://b.example/p HTTP/1.1\r\n\r\n",
        b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://b.example/#frag HTTP/1.1\r\nHost: b.example\r\n\r\n",
    ];
    for raw in bad {
        let mut c = p.client();
        c.send(raw);
        let r = c.read_response_to(Method::Get);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
        assert!(!r.keep_alive);
    }
    assert!(b.seen().is_empty(), "{:?}", b.seen());
}

#[test]
fn higher_minor_versions_are_served_as_http11_and_other_versions_refused() {
    let (b, p) = setup(&[]);
    for v in ["1.2", "1.9"] {
        let raw = format!("GET /v{v} HTTP/{v}\r\nHost: a\r\n\r\n");
        let mut c = p.client();
        c.send(raw.as_bytes());
        let r = c.read_response_to(Method::Get);
        assert_eq!((r.status, r.keep_alive), (200, true), "HTTP/{v}");
        // Kept alive as 1.1 is: a second request on the same connection is served too.
        c.send(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(c.read_response_to(Method::Get).status, 200);
    }
    let seen = b.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen[0].head.starts_with("GET /v1.2 HTTP/1.1\r\n"),
        "{:?}",
        seen[0].head
    );
    assert!(seen[0].head.contains("\r\nVia: 1.1 rr-proxy\r\n"));
    let refused: [(&[u8], u16); 4] = [
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/01.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    ];
    for (raw, status) in refused {
        assert_eq!(
            status_of(&p, raw),
            status,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(b.seen().len(), 4);
}

#[test]
fn via_is_added_after_earlier_hops_with_the_clients_version() {
    let (b, p) = setup(&[]);
    status_of(&p, b"GET /1 HTTP/1.1\r\nHost: a\r\nVia: 1.1 other\r\n\r\n");
    status_of(&p, b"GET /2 HTTP/1.0\r\n\r\n");
    let seen = b.seen();
    assert_eq!(
        seen[0].header("via").as_deref(),
        Some("1.1 other, 1.1 rr-proxy")
    );
    assert_eq!(seen[0].head.to_ascii_lowercase().matches("via:").count(), 1);
    assert_eq!(seen[1].header("via").as_deref(), Some("1.0 rr-proxy"));
}

#[test]
fn an_unknown_expectation_gets_417_and_is_not_forwarded() {
    let (b, p) = setup(&[]);
    let mut c = p.client();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: foo\r\n\r\nhello");
    let r = c.read_response_to(Method::Post);
    assert_eq!((r.status, r.keep_alive), (417, false));
    // 100-continue still works, in any case.
    let mut c = p.client();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n");
    assert_eq!(c.read_response_to(Method::Post).status, 100);
    c.send(b"hello");
    assert_eq!(c.read_response_to(Method::Post).status, 200);
    let seen = b.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, b"hello");
}

#[test]
fn a_chunked_request_reaches_the_backend_with_one_clean_transfer_encoding_line() {
    let (b, p) = setup(&[]);
    let cases: [(&str, &str); 3] = [
        ("Transfer-Encoding: ,chunked\r\n", "chunked"),
        (
            "Transfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n",
            "chunked",
        ),
        ("transfer-encoding: chunked, \r\n", "chunked"),
    ];
    for (fields, _) in cases {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(status_of(&p, raw.as_bytes()), 200, "{fields:?}");
    }
    let seen = b.seen();
    assert_eq!(seen.len(), cases.len());
    for (s, (fields, want)) in seen.iter().zip(cases) {
        let lines = s
            .head
            .to_ascii_lowercase()
            .matches("transfer-encoding")
            .count();
        assert_eq!(lines, 1, "{fields:?} became {:?}", s.head);
        assert_eq!(s.header("transfer-encoding").as_deref(), Some(want));
        assert_eq!(s.body, b"hello");
    }
}

/// The proxy decodes no coding but chunked, so it sends none on: a backend that frames by
/// `chunked` alone would take `gzip, chunked` for a body-less request and the body for the
/// next one (RFC 9112 §6.1: 501 for a coding not implemented).
#[test]
fn a_request_coded_with_more_than_chunked_gets_501_and_is_not_forwarded() {
    let (b, p) = setup(&[]);
    for fields in [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: deflate,chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: identity, chunked\r\n",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(status_of(&p, raw.as_bytes()), 501, "{fields:?}");
    }
    assert!(b.seen().is_empty(), "forwarded: {:?}", b.seen());
}

/// With a head deadline far beyond the test client's read deadline, an answer at all proves
/// it came at once, not at the deadline.
#[test]
fn broken_heads_are_refused_before_they_end() {
    let (b, p) = setup(&["--head-timeout", "60s"]);
    let partial: [(&[u8], u16); 5] = [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400), // a TLS ClientHello
        (b"G(T /x HTTP/1.1", 400),
        (b"GET /x HTTP/1.1\r\nHost : a", 400),
        (b"GET /x HTTP/3.0\r\nHost: a\r\n", 505),
        (b"GET /a#b HTTP/1.1\r\n", 400),
    ];
    for (raw, status) in partial {
        let mut c = p.client();
        c.send(raw);
        let r = c.read_response_to(Method::Get);
        assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(raw));
        assert!(!r.keep_alive);
    }
    // A head that arrives line by line is checked as each line ends.
    let mut c = p.client();
    c.send(b"GET /x HTTP/1.1\r\n");
    c.send(b"Host: a\r\n");
    assert!(!c.has_pending_bytes());
    c.send(b"X-Bad\x01: 1\r\n");
    assert_eq!(c.read_response_to(Method::Get).status, 400);
    assert!(b.seen().is_empty());
}

#[test]
fn a_connection_that_sends_nothing_is_closed_without_408() {
    let (b, p) = setup(&["--head-timeout", "300ms"]);
    let mut silent = p.client();
    silent.expect_closed();
    // Empty lines are not a request yet (RFC 9112 §2.2).
    let mut blank = p.client();
    blank.send(b"\r\n\r\n");
    blank.expect_closed();
    // One that sent part of a head is still told why it is closed.
    let mut partial = p.client();
    partial.send(b"GET / HTTP/1.1\r\nHo");
    assert_eq!(partial.read_response_to(Method::Get).status, 408);
    partial.expect_closed();
    assert!(b.seen().is_empty());
}

#[test]
fn empty_lines_before_a_request_are_skipped_however_many_and_whatever_follows() {
    // RFC 9112 §2.2. Two cases that once hung until the head timeout: empty lines between
    // pipelined requests, before a head larger than the first head buffer; and more empty
    // lines than that buffer holds.
    let (b, p) = setup(&["--head-timeout", "5s"]);
    let cookie = "c".repeat(5000);
    let mut c = p.client();
    c.send(
        format!(
            "GET /small HTTP/1.1\r\nHost: a\r\n\r\n\r\n\r\n\
             GET /big HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(c.read_response_to(Method::Get).status, 200);
    assert_eq!(c.read_response_to(Method::Get).status, 200);
    let mut c = p.client();
    c.send(
        format!(
            "{}GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
            "\r\n".repeat(3000)
        )
        .as_bytes(),
    );
    assert_eq!(c.read_response_to(Method::Get).status, 200);
    let paths: Vec<String> = b.seen().iter().map(|r| r.path().to_string()).collect();
    assert_eq!(paths, ["/small", "/big", "/after"]);
}

#[test]
fn max_forwards_is_answered_at_zero_and_counted_down_otherwise() {
    // RFC 9110 §7.6.2, for OPTIONS and TRACE only.
    let (b, p) = setup(&[]);
    let mut c = p.client();
    c.send(b"OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n");
    let r = c.read_response_to(Method::Options);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));

    let mut c = p.client();
    c.send(b"TRACE /t HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nCookie: secret\r\nX-A: 1\r\n\r\n");
    let r = c.read_response_to(Method::Trace);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("message/http"));
    let echo = r.text();
    assert!(echo.starts_with("TRACE /t HTTP/1.1\r\n"), "{echo}");
    assert!(
        echo.contains("X-A: 1\r\n") && !echo.contains("secret"),
        "{echo}"
    );
    assert!(b.seen().is_empty(), "neither went past the proxy");

    let mut c = p.client();
    c.send(b"OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 3\r\n\r\n");
    assert_eq!(c.read_response_to(Method::Options).status, 200);
    c.send(b"GET /y HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n");
    assert_eq!(c.read_response_to(Method::Get).status, 200);
    let seen = b.seen();
    assert_eq!(seen[0].header("max-forwards").as_deref(), Some("2"));
    assert_eq!(
        seen[1].header("max-forwards").as_deref(),
        Some("0"),
        "a GET ignores it"
    );
}
