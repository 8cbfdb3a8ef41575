//! rr-echo over real sockets: the real binary on port 0, raw request bytes, answers read with
//! the crate's own parser.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use rr_proxy::http::head::Method;
use serde_json::json;

use crate::dates::assert_dated;
use crate::util::{echo, get, post, run_to_exit, Client, ECHO};

/// Posts `n` bodies one after another on one connection and returns the statuses.
fn statuses(c: &mut Client, n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| c.request(&post("/", format!("[{i}]").as_bytes())).status)
        .collect()
}

#[test]
fn echo_round_trip_is_byte_exact() {
    let server = echo(&["--name", "e1"]);
    let body = br#"{"k":[1,2.5,{"x":"y\u00e9"}],"n":null,"t":true}"#;
    let mut c = server.client();
    let before = SystemTime::now();
    let r = c.request(&post("/", body));
    // The Date differs from run to run: checked on its own, then the rest byte for byte.
    assert_dated(&r, before);
    let want_head = format!(
        "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: application/json\r\n\
         X-Echo-Instance: e1\r\nContent-Length: {}\r\n\r\n",
        r.header("Date").unwrap_or_default(),
        body.len()
    );
    assert_eq!(String::from_utf8_lossy(&r.head), want_head);
    assert_eq!(r.body, body);
    // /reflect is the same endpoint; whitespace around the value is part of the echo.
    let padded = b"  [1, 2]\r\n";
    assert_eq!(c.request(&post("/reflect", padded)).body, padded);

    // Without --name the instance is named after the bound port.
    let plain = echo(&[]);
    let r = plain.client().request(&get("/healthz"));
    let want = format!("echo-{}", plain.addr().port());
    assert_eq!(r.header("X-Echo-Instance"), Some(want.as_str()));
}

#[test]
fn invalid_json_is_400_and_keeps_the_connection() {
    let server = echo(&[]);
    let mut c = server.client();
    let r = c.request(&post("/", b"{\"a\": "));
    assert_eq!(r.status, 400);
    assert!(r.keep_alive);
    let msg = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(msg.starts_with("invalid JSON: "), "{msg}");
    assert!(r.header("X-Echo-Instance").is_some());
    assert_eq!(c.request(&post("/", b"{} trailing")).status, 400);
    assert_eq!(c.request(&get("/healthz")).status, 200);
}

#[test]
fn hundred_requests_on_one_keep_alive_connection() {
    let server = echo(&[]);
    let mut c = server.client();
    for i in 0..100 {
        let body = format!(r#"{{"i":{i}}}"#);
        let r = c.request(&post("/", body.as_bytes()));
        assert_eq!((r.status, r.text()), (200, body), "request {i}");
        assert!(r.keep_alive);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_even_when_delayed() {
    // Random delays of 0 to 40 ms would reorder answers that were not kept in order.
    let server = echo(&["--delay", "0-40", "--seed", "3"]);
    let mut c = server.client();
    let mut batch = Vec::new();
    for i in 0..10 {
        if i == 5 {
            batch.extend_from_slice(&get("/healthz"));
        }
        batch.extend_from_slice(&post("/", format!(r#"{{"seq":{i}}}"#).as_bytes()));
    }
    c.send(&batch);
    for i in 0..10 {
        if i == 5 {
            assert_eq!(c.read_response().text(), r#"{"status":"ok"}"#);
        }
        let r = c.read_response();
        assert_eq!((r.status, r.text()), (200, format!(r#"{{"seq":{i}}}"#)));
    }
}

#[test]
fn chunked_request_body_is_echoed_with_a_length() {
    let server = echo(&[]);
    let mut c = server.client();
    c.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          4\r\n{\"a\"\r\n3;ext=1\r\n:[1\r\n",
    );
    c.send(b"A\r\n,2,3,4,5]}\r\n0\r\nX-Trailer: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"a":[1,2,3,4,5]}"#);
    assert_eq!(r.header("Content-Length"), Some("17"));
    assert_eq!(r.header("Transfer-Encoding"), None);
    assert_eq!(c.request(&get("/healthz")).status, 200);
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

#[test]
fn ten_mib_body_round_trips() {
    let server = echo(&["--max-body", "12M"]);
    let mut body = Vec::with_capacity(10 << 20);
    body.extend_from_slice(b"[\"");
    let mut x = 1u32;
    while body.len() < (10 << 20) - 2 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        body.push(b'a' + (x >> 16) as u8 % 26);
    }
    body.extend_from_slice(b"\"]");
    let mut c = server.client();
    // The answer starts only after the whole body, and the body does not fit the socket
    // buffers, so the writing happens on another thread while this one reads.
    let mut w = c.writer();
    let req = post("/", &body);
    let writer = thread::spawn(move || w.write_all(&req).map_err(|e| e.to_string()));
    let r = c.read_response();
    assert_eq!(writer.join().ok(), Some(Ok(())));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert_eq!(hash(&r.body), hash(&body));
    // The connection is still good afterwards.
    assert_eq!(c.request(&get("/healthz")).status, 200);
}

#[test]
fn oversize_head_gets_431_and_close() {
    let server = echo(&["--max-head", "1K"]);
    let mut c = server.client();
    let mut req = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    req.resize(2048, b'x');
    req.extend_from_slice(b"\r\n\r\n");
    let r = c.request(&req);
    assert_eq!(r.status, 431);
    assert!(!r.keep_alive);
    assert!(r.header("X-Echo-Instance").is_some());
    c.expect_closed();
}

#[test]
fn trickling_client_gets_408_and_close() {
    let server = echo(&["--header-timeout", "300ms"]);
    let mut c = server.client();
    c.send(b"GET /healthz HTTP/1.1\r\nHo");
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(!r.keep_alive);
    c.expect_closed();

    // A first request that never starts is answered 408 too.
    let mut silent = server.client();
    assert_eq!(silent.read_response().status, 408);
    silent.expect_closed();
}

#[test]
fn idle_keep_alive_connection_is_closed_without_an_answer() {
    let server = echo(&["--header-timeout", "300ms"]);
    let mut c = server.client();
    assert_eq!(c.request(&get("/healthz")).status, 200);
    c.expect_closed();
}

#[test]
fn slow_body_is_cut_with_408() {
    let server = echo(&["--header-timeout", "300ms"]);
    let mut c = server.client();
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n[1,");
    assert_eq!(c.read_response().status, 408);
    c.expect_closed();
}

#[test]
fn delayed_answer_does_not_block_another_client() {
    let server = echo(&["--delay", "1000"]);
    let started = Instant::now();
    let mut slow = server.client();
    slow.send(&post("/", b"[\"slow\"]"));
    let mut quick = server.client();
    // /healthz is exempt from the delay, and is answered while the delayed answer waits.
    assert_eq!(quick.request(&get("/healthz")).status, 200);
    assert!(
        !slow.has_pending_bytes(),
        "the delayed answer came before another client's"
    );
    let r = slow.read_response();
    assert_eq!((r.status, r.text()), (200, "[\"slow\"]".to_string()));
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

#[test]
fn error_rate_is_reproducible_from_the_seed() {
    let run = || {
        statuses(
            &mut echo(&["--error-rate", "0.5", "--seed", "7"]).client(),
            32,
        )
    };
    let first = run();
    assert_eq!(first, run());
    assert!(first.contains(&200) && first.contains(&500), "{first:?}");
    assert!(first.iter().all(|s| [200, 500].contains(s)));
}

#[test]
fn fail_every_two_alternates() {
    let server = echo(&["--fail-every", "2"]);
    let mut c = server.client();
    let mut got = Vec::new();
    for i in 0..8 {
        // Health checks in between neither fail nor count.
        assert_eq!(c.request(&get("/healthz")).status, 200);
        let r = c.request(&post("/", format!("[{i}]").as_bytes()));
        if r.status == 500 {
            assert_eq!(r.json(), json!({"error": "simulated failure"}));
            assert!(r.keep_alive);
        }
        got.push(r.status);
    }
    assert_eq!(got, [200, 500, 200, 500, 200, 500, 200, 500]);
}

#[test]
fn control_endpoint_flips_health() {
    let server = echo(&["--name", "c1"]);
    let mut c = server.client();
    let r = c.request(&get("/control"));
    assert_eq!(
        r.json(),
        json!({"name":"c1","healthy":true,"error_rate":0.0,"delay_ms":[0,0],
               "fail_every":0,"seed":1,"requests":0})
    );
    let r = c.request(&post("/control", br#"{"healthy":false}"#));
    assert_eq!((r.status, r.json()["healthy"].clone()), (200, json!(false)));
    let r = c.request(&get("/healthz"));
    assert_eq!(
        (r.status, r.text()),
        (503, r#"{"status":"unhealthy"}"#.into())
    );
    c.send(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_to(Method::Head);
    assert_eq!((r.status, r.body.len()), (503, 0));
    assert_eq!(r.header("Content-Length"), Some("22"));
    c.request(&post("/control", br#"{"healthy":true,"delay_ms":[1,2]}"#));
    assert_eq!(c.request(&get("/healthz")).status, 200);
    let r = c.request(&post("/control", br#"{"error_rate":3}"#));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("error_rate")));
    let state = c.request(&get("/control")).json();
    assert_eq!(
        (state["error_rate"].clone(), state["delay_ms"].clone()),
        (json!(0.0), json!([1, 2]))
    );
}

#[test]
fn wrong_method_gets_405_with_allow() {
    let server = echo(&[]);
    let mut c = server.client();
    let cases = [
        ("GET / HTTP/1.1", "POST"),
        ("PUT /reflect HTTP/1.1", "POST"),
        ("DELETE /healthz HTTP/1.1", "GET, HEAD"),
        ("PUT /control HTTP/1.1", "GET, POST"),
    ];
    for (line, allow) in cases {
        let r = c.request(format!("{line}\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!((r.status, r.header("Allow")), (405, Some(allow)), "{line}");
        assert!(r.keep_alive);
    }
}

#[test]
fn unknown_path_gets_404() {
    let server = echo(&["--fail-every", "1"]);
    let mut c = server.client();
    let r = c.request(&get("/nope"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"error": "not found"}));
    assert_eq!(c.request(&post("/nope", b"{}")).status, 404);
}

#[test]
fn body_over_max_body_gets_413_and_close() {
    let server = echo(&["--max-body", "1K"]);
    // Known from Content-Length: refused before the body is read, 100-continue not sent.
    let mut c = server.client();
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.keep_alive), (413, false));
    c.expect_closed();
    // Chunked: refused as soon as the decoded size passes the limit.
    let mut c = server.client();
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("300\r\n{}\r\n", "x".repeat(0x300));
    c.send(chunk.as_bytes());
    c.send(chunk.as_bytes());
    assert_eq!(c.read_response().status, 413);
    c.expect_closed();
    // Exactly at the limit is fine.
    let body = format!("[\"{}\"]", "y".repeat(1020));
    assert_eq!(
        server.client().request(&post("/", body.as_bytes())).status,
        200
    );
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    let server = echo(&[]);
    let mut c = server.client();
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(c.read_response().status, 100);
    let r = c.request(b"[]");
    assert_eq!((r.status, r.text()), (200, "[]".to_string()));
}

#[test]
fn http10_keeps_alive_only_when_asked() {
    let server = echo(&[]);
    let mut c = server.client();
    let r = c.request(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    let r = c.request(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.header("Connection")), (200, Some("close")));
    c.expect_closed();
}

#[test]
fn malformed_requests_get_their_status_and_close() {
    let server = echo(&[]);
    let cases: [(&[u8], u16); 4] = [
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: br, chunked\r\n\r\n",
            501,
        ),
    ];
    for (raw, status) in cases {
        let mut c = server.client();
        let r = c.request(raw);
        assert_eq!(
            (r.status, r.keep_alive),
            (status, false),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
        c.expect_closed();
    }
}

#[test]
fn at_the_connection_cap_new_clients_wait_for_a_free_slot() {
    let server = echo(&["--max-conns", "1"]);
    let mut first = server.client();
    assert_eq!(first.request(&get("/healthz")).status, 200);
    // The second connection completes in the kernel's backlog but is not taken in.
    let mut second = server.client();
    second.send(&get("/healthz"));
    // A round trip on the first proves the server ran past the second's arrival.
    assert_eq!(first.request(&get("/healthz")).status, 200);
    assert!(!second.has_pending_bytes(), "served over the cap");
    drop(first);
    assert_eq!(second.read_response().status, 200);
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, flag) in [
        (&["--port", "0", "--error-rate", "2"][..], "--error-rate"),
        (&["--port", "x"][..], "--port"),
        (&["--port", "0", "--delay", "9-3"][..], "--delay"),
        (&["--port", "0", "--host", "nowhere"][..], "--host"),
    ] {
        let exit = run_to_exit(ECHO, args);
        assert_eq!(exit.code, Some(2), "{args:?}: {exit:?}");
        assert!(exit.stderr.contains(flag), "{args:?}: {}", exit.stderr);
        assert!(exit.stdout.is_empty(), "{args:?} started: {}", exit.stdout);
    }
    let help = run_to_exit(ECHO, &["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("--fail-every") && help.stdout.contains("[default: 10s]"));
}
