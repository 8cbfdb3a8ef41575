//! Health end to end: real rr-echo backends that die, come back, fail, stall and lie, behind
//! the real rr-proxy with short probe intervals and ejection times passed as flags.

use std::time::{Duration, Instant};

use crate::proxy::proxy;
use crate::util::{self, Client, Proc};

/// How long any "eventually" in these tests may take before it fails.
const EVENTUALLY: Duration = Duration::from_secs(10);

fn echo_named(name: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra);
    util::echo(&args)
}

/// Restarts an echo instance on the port a dead one had.
fn echo_on(port: u16, name: &str) -> Proc {
    let port = port.to_string();
    Proc::spawn(util::ECHO, &["--port", &port, "--name", name])
}

const POST: &[u8] =
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

/// One request; the status and the instance that answered ("" for the proxy itself).
fn ask(c: &mut Client) -> (u16, String) {
    let r = c.request(POST);
    let name = r.header("x-echo-instance").unwrap_or("").to_string();
    (r.status, name)
}

/// Sends requests until `done` says so, asserting each answer with `check`; fails after
/// [`EVENTUALLY`].
fn until(
    c: &mut Client,
    mut check: impl FnMut(u16, &str),
    mut done: impl FnMut(u16, &str) -> bool,
) {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        assert!(Instant::now() < deadline, "condition not reached in time");
        let (status, name) = ask(c);
        check(status, &name);
        if done(status, &name) {
            return;
        }
    }
}

#[test]
fn a_killed_backend_stops_getting_traffic_and_returns_when_restarted() {
    let e1 = echo_named("e1", &[]);
    let e2 = echo_named("e2", &[]);
    let e3 = echo_named("e3", &[]);
    let port2 = e2.addr().port();
    let p = proxy(
        &[e1.addr(), e2.addr(), e3.addr()],
        &["--health-interval", "100ms", "--health-timeout", "100ms"],
    );
    let mut c = p.client();
    until(&mut c, |s, _| assert_eq!(s, 200), |_, n| n == "e2");
    drop(e2);
    // No request fails while e2 is dead: a refused connect goes to the next backend.
    let dead_since = Instant::now();
    until(
        &mut c,
        |s, _| assert_eq!(s, 200),
        |_, _| dead_since.elapsed() > Duration::from_millis(400), // fall × interval, and margin
    );
    for _ in 0..30 {
        let (status, name) = ask(&mut c);
        assert_eq!(status, 200);
        assert_ne!(name, "e2");
    }
    let _e2 = echo_on(port2, "e2");
    until(&mut c, |s, _| assert_eq!(s, 200), |_, n| n == "e2");
}

#[test]
fn an_erroring_backend_is_ejected_and_readmitted_once_fixed() {
    let e1 = echo_named("e1", &[]);
    let bad = echo_named("bad", &["--error-rate", "1"]);
    let e3 = echo_named("e3", &[]);
    let p = proxy(
        &[e1.addr(), bad.addr(), e3.addr()],
        &["--eject-5xx", "--eject-after", "2", "--eject-base", "500ms"],
    );
    let mut c = p.client();
    let mut errors = 0;
    // Without ejection it would get 4 of these 12 and fail them all.
    for _ in 0..12 {
        let (status, name) = ask(&mut c);
        if status == 500 {
            assert_eq!(name, "bad");
            errors += 1;
        }
    }
    assert_eq!(errors, 2, "ejected after two errors in a row");
    // Fix it through its control endpoint; after the ejection it serves again.
    let fix = util::Client::connect(bad.addr()).request(
        b"POST /control HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n{\"error_rate\":0}",
    );
    assert_eq!(fix.status, 200, "{}", fix.text());
    until(&mut c, |s, _| assert_eq!(s, 200), |_, n| n == "bad");
}

#[test]
fn a_stalled_backend_gets_504_then_ejection() {
    let e1 = echo_named("e1", &[]);
    let slow = echo_named("slow", &["--delay", "2000"]);
    let p = proxy(
        &[e1.addr(), slow.addr()],
        &[
            "--backend-timeout",
            "200ms",
            "--eject-after",
            "2",
            "--eject-base",
            "5s",
        ],
    );
    let mut c = p.client();
    let mut timeouts = 0;
    for _ in 0..4 {
        let r = c.request(POST);
        if r.status == 504 {
            timeouts += 1;
            assert_eq!(r.header("connection"), None, "a 504 keeps the connection");
        }
    }
    assert_eq!(timeouts, 2);
    for _ in 0..10 {
        assert_eq!(ask(&mut c), (200, "e1".to_string()));
    }
}

#[test]
fn a_moderately_slow_backend_gets_less_traffic_with_slow_factor() {
    let fast1 = echo_named("f1", &[]);
    let fast2 = echo_named("f2", &[]);
    let slow = echo_named("slow", &["--delay", "40"]);
    let p = proxy(
        &[fast1.addr(), fast2.addr(), slow.addr()],
        &["--slow-factor", "3"],
    );
    let mut c = p.client();
    let mut slow_count = 0;
    for _ in 0..60 {
        let (status, name) = ask(&mut c);
        assert_eq!(status, 200);
        slow_count += usize::from(name == "slow");
    }
    // Plain rotation would give it 20; it still gets some.
    assert!(
        (1..=12).contains(&slow_count),
        "slow got {slow_count} of 60"
    );
}

#[test]
fn all_backends_down_is_503_at_once_and_recovers() {
    let e1 = echo_named("e1", &[]);
    let e2 = echo_named("e2", &[]);
    let ports = (e1.addr().port(), e2.addr().port());
    let p = proxy(
        &[e1.addr(), e2.addr()],
        &["--health-interval", "100ms", "--health-timeout", "100ms"],
    );
    drop(e1);
    drop(e2);
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        assert!(Instant::now() < deadline, "never answered 503");
        let started = Instant::now();
        let r = p.client().request(POST);
        assert!(r.status == 502 || r.status == 503, "{}", r.status);
        if r.status == 503 {
            assert!(started.elapsed() < Duration::from_millis(200));
            break;
        }
    }
    let _e1 = echo_on(ports.0, "e1");
    let _e2 = echo_on(ports.1, "e2");
    let deadline = Instant::now() + EVENTUALLY;
    while p.client().request(POST).status != 200 {
        assert!(Instant::now() < deadline, "never recovered");
    }
}

#[test]
fn weights_5_1_1_rotate_smoothly_and_exactly() {
    let a = echo_named("a", &[]);
    let b = echo_named("b", &[]);
    let c3 = echo_named("c", &[]);
    let list = [
        format!("{}=5", a.addr()),
        b.addr().to_string(),
        c3.addr().to_string(),
    ]
    .join(",");
    let p = util::proxy_on(&["--backends", &list, "--health-interval", "0s"]);
    let mut c = p.client();
    let names: Vec<String> = (0..700).map(|_| ask(&mut c).1).collect();
    for window in names.windows(7) {
        let count = |n: &str| window.iter().filter(|x| *x == n).count();
        assert_eq!(
            (count("a"), count("b"), count("c")),
            (5, 1, 1),
            "{window:?}"
        );
    }
    let total = |n: &str| names.iter().filter(|x| *x == n).count();
    assert_eq!((total("a"), total("b"), total("c")), (500, 100, 100));
}
