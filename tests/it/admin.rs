//! The operator's view: `/metrics` parsed as Prometheus text and matched against the traffic
//! sent, `/status` JSON matched against the backends, JSON log lines parsed, and several
//! workers serving one port.

use std::net::SocketAddr;
use std::time::Instant;

use prometheus_parse::{Scrape, Value};
use rr_proxy::http::head::Method;

use crate::util::{self, Client, Proc};

/// rr-proxy with an admin listener; returns it and the admin address.
pub(crate) fn proxy_with_admin(backends: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let list: Vec<String> = backends.iter().map(|a| a.to_string()).collect();
    proxy_with_admin_list(&list.join(","), extra)
}

/// The same with the `--backends` list written out (weights and all).
fn proxy_with_admin_list(list: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--backends", list, "--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let p = util::proxy_on(&args);
    let line = p.next_stdout_line().unwrap_or_default();
    let admin = line
        .strip_prefix("admin on ")
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no admin line, got {line:?}"));
    (p, admin)
}

fn get(addr: SocketAddr, path: &str) -> util::Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n");
    Client::connect(addr).request(req.as_bytes())
}

/// The value of the sample `name` whose labels include all of `labels`.
pub(crate) fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            _ => f64::NAN,
        })
        .unwrap_or(0.0)
}

pub(crate) fn scrape(admin: SocketAddr) -> Scrape {
    let r = get(admin, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    Scrape::parse(r.text().lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn metrics_count_the_traffic_sent() {
    let e1 = util::echo(&["--name", "e1"]);
    let e2 = util::echo(&["--name", "e2"]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let (p, admin) = proxy_with_admin(
        &[e1.addr(), e2.addr(), dead],
        &["--health-interval", "0s", "--eject-after", "0"],
    );
    let mut c = p.client();
    for _ in 0..6 {
        assert_eq!(c.request(HEALTHZ).status, 200);
    }
    let r = c.request(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 404);
    let bad = p
        .client()
        .request(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(bad.status, 400);
    let m = scrape(admin);
    let (n1, n2) = (e1.addr().to_string(), e2.addr().to_string());
    let e1_2xx = sample(
        &m,
        "rr_proxy_requests_total",
        &[("backend", &n1), ("class", "2xx")],
    );
    let e2_2xx = sample(
        &m,
        "rr_proxy_requests_total",
        &[("backend", &n2), ("class", "2xx")],
    );
    let e_4xx = sample(&m, "rr_proxy_requests_total", &[("class", "4xx")]);
    assert_eq!(e1_2xx + e2_2xx, 6.0);
    assert_eq!(e_4xx, 1.0, "the 404 came from a backend");
    let own = sample(
        &m,
        "rr_proxy_requests_total",
        &[("backend", "none"), ("class", "4xx")],
    );
    assert_eq!(own, 1.0, "the 400 came from the proxy");
    // Every turn of the dead backend was a refused connect and a retry elsewhere.
    let dead_name = dead.to_string();
    let failures = sample(
        &m,
        "rr_proxy_connect_failures_total",
        &[("backend", &dead_name)],
    );
    let retries = sample(&m, "rr_proxy_retries_total", &[("backend", &dead_name)]);
    assert!(
        failures >= 2.0 && failures == retries,
        "{failures} {retries}"
    );
    assert_eq!(
        sample(&m, "rr_proxy_request_duration_seconds_count", &[]),
        8.0
    );
    assert!(sample(&m, "rr_proxy_bytes_total", &[("direction", "out")]) > 0.0);
    // The refused client's close reaches the proxy on its own time: look until it has.
    let deadline = Instant::now() + util::DEADLINE;
    let mut open = sample(&m, "rr_proxy_open_connections", &[("side", "client")]);
    while open > 1.0 && Instant::now() < deadline {
        open = sample(
            &scrape(admin),
            "rr_proxy_open_connections",
            &[("side", "client")],
        );
    }
    assert_eq!(
        open, 1.0,
        "the keep-alive client is still open, the refused one closed"
    );
}

#[test]
fn status_describes_every_backend_and_the_settings() {
    let e1 = util::echo(&["--name", "e1"]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let list = format!("{}=3,{dead}", e1.addr());
    let (_p, admin) = proxy_with_admin_list(&list, &["--health-interval", "100ms"]);
    let deadline = Instant::now() + util::DEADLINE;
    let doc = loop {
        let doc = get(admin, "/status").json();
        if doc["backends"][1]["state"] == "down" {
            break doc;
        }
        assert!(
            Instant::now() < deadline,
            "dead backend never shown down: {doc}"
        );
    };
    let b = &doc["backends"];
    assert_eq!(b.as_array().map(Vec::len), Some(2));
    assert_eq!(b[0]["address"], e1.addr().to_string());
    assert_eq!(b[0]["weight"], 3);
    assert_eq!(b[0]["state"], "up");
    assert_eq!(b[1]["why"], "failed active health checks");
    assert_eq!(doc["mode"], "http");
    assert_eq!(doc["settings"]["health_interval_ms"], 100);
    let h = get(admin, "/healthz");
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));
    assert_eq!(get(admin, "/other").status, 404);
}

#[test]
fn json_log_lines_parse_and_the_access_log_has_every_field() {
    let e1 = util::echo(&["--name", "e1"]);
    let p = util::proxy_on(&[
        "--backends",
        &e1.addr().to_string(),
        "--health-interval",
        "0s",
        "--log-format",
        "json",
        "--access-log",
    ]);
    let mut c = p.client();
    assert_eq!(c.request(HEALTHZ).status, 200);
    let r = p
        .client()
        .request(b"GET /\"x\nforged HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 400);
    let deadline = Instant::now() + util::DEADLINE;
    let lines = loop {
        let err = p.stderr();
        let lines: Vec<serde_json::Value> = err
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        if lines.iter().filter(|v| v.get("status").is_some()).count() >= 2 {
            break lines;
        }
        assert!(Instant::now() < deadline, "access lines missing: {err}");
        // Refresh by doing something observable: the log is written by another process.
        assert_eq!(c.request(HEALTHZ).status, 200);
    };
    let ok = lines
        .iter()
        .find(|v| v["status"] == 200)
        .expect("a 200 line");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/healthz");
    assert_eq!(ok["backend"], e1.addr().to_string());
    assert!(ok["bytes_in"].as_u64() > Some(0) && ok["bytes_out"].as_u64() > Some(0));
    assert!(ok["duration_ms"].is_number() && ok["client"].is_string());
    let refused = lines
        .iter()
        .find(|v| v["status"] == 400)
        .expect("a 400 line");
    assert!(refused["reason"].is_string(), "{refused}");
    assert!(refused["backend"].is_null());
}

#[test]
fn two_workers_serve_every_request_and_add_up_their_metrics() {
    let e1 = util::echo(&["--name", "e1"]);
    let (p, admin) = proxy_with_admin(&[e1.addr()], &["--workers", "2", "--health-interval", "0s"]);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let addr = p.addr();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert_eq!(Client::connect(addr).request(HEALTHZ).status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("every request served");
    }
    // Workers publish a few times a second: the sum reaches the total shortly.
    let deadline = Instant::now() + util::DEADLINE;
    loop {
        let m = scrape(admin);
        let total = sample(&m, "rr_proxy_requests_total", &[("class", "2xx")]);
        if total == 400.0 {
            break;
        }
        assert!(total <= 400.0 && Instant::now() < deadline, "total {total}");
    }
    assert_eq!(get(admin, "/status").json()["workers"], 2);
}

#[test]
fn silent_admin_connections_are_capped_and_never_starve_traffic() {
    // The admin port serves a bounded number at once; the rest are closed as they come, so
    // it cannot take the descriptors client and backend connections need.
    let e = util::echo(&["--name", "e"]);
    let (p, admin) = proxy_with_admin(&[e.addr()], &["--health-interval", "0s"]);
    let cap = rr_proxy::proxy::MAX_ADMIN_CONNS;
    let mut held = Vec::new();
    for _ in 0..cap + 8 {
        let s = std::net::TcpStream::connect(admin).expect("connect admin");
        s.set_nonblocking(true).expect("nonblocking");
        held.push((s, false));
    }
    // Those over the cap are closed at once: each reads its end while the others, within
    // the admin deadline of 5 s, still wait for a request.
    let deadline = Instant::now() + util::DEADLINE;
    let mut closed = 0;
    while closed < 8 {
        assert!(
            Instant::now() < deadline,
            "{closed} closed beyond the cap of {cap}"
        );
        for (s, seen) in held.iter_mut().filter(|(_, seen)| !*seen) {
            if matches!(std::io::Read::read(s, &mut [0u8; 1]), Ok(0)) {
                *seen = true;
                closed += 1;
            }
        }
    }
    let mut open = 0;
    for (s, seen) in &held {
        let got = std::io::Read::read(&mut &*s, &mut [0u8; 1]);
        if !*seen && matches!(got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            open += 1;
        }
    }
    assert_eq!(open, cap, "the first {cap} are served");
    assert_eq!(p.client().request(HEALTHZ).status, 200);
    drop(held);
    // Once they are gone, the admin port answers again. Until the proxy has seen them go, a
    // new connection is still one over the cap and is closed unanswered.
    let deadline = Instant::now() + util::DEADLINE;
    loop {
        let mut c = Client::connect(admin);
        c.send(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n");
        if c.try_read_response(Method::Get)
            .is_ok_and(|r| r.status == 200)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the admin port never came back");
    }
}
