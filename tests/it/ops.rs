//! Operating rr-proxy: SIGTERM drains and exits 0, a second signal stops at once, SIGHUP
//! reloads the config file under traffic, and a bad file is refused.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rr_proxy::http::head::Method;

use crate::backend::{ok_response, Backend, Reply};
use crate::proxy::proxy;
use crate::util::{self, Proc};

/// A backend that tells the test when a request for `/slow` arrived and answers it only when
/// told to; other requests are answered at once.
fn gated_backend() -> (Backend, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (arrived_tx, arrived_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let arrived = Mutex::new(arrived_tx);
    let release = Mutex::new(release_rx);
    let b = Backend::start(move |seen| {
        if !seen.head.starts_with("GET /slow ") {
            return Reply::Bytes(ok_response("quick"));
        }
        if let Ok(tx) = arrived.lock() {
            let _ = tx.send(());
        }
        if let Ok(rx) = release.lock() {
            let _ = rx.recv_timeout(util::DEADLINE);
        }
        Reply::Bytes(ok_response("slow but fine"))
    });
    (b, arrived_rx, release_tx)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let (b, arrived, release) = gated_backend();
    let mut p = proxy(&[b.addr], &[]);
    let mut idle = p.client();
    assert_eq!(idle.request(GET).status, 200); // a keep-alive connection, now idle
    let mut busy = p.client();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    arrived
        .recv_timeout(util::DEADLINE)
        .expect("the request reached the backend");
    p.signal("TERM");
    // The idle connection is closed at once; the busy one is answered, with Connection: close.
    idle.expect_closed();
    release.send(()).expect("release");
    let r = busy.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "slow but fine"));
    assert_eq!(r.header("connection"), Some("close"));
    busy.expect_closed();
    assert_eq!(p.wait_exit(), Some(0));
}

#[test]
fn a_second_signal_stops_at_once() {
    let b = Backend::start(|_| Reply::Silence);
    let mut p = proxy(&[b.addr], &["--drain-timeout", "1m"]);
    let mut c = p.client();
    c.send(GET);
    // The request is in flight once the backend has it.
    let deadline = Instant::now() + util::DEADLINE;
    while b.seen().is_empty() {
        assert!(Instant::now() < deadline, "request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    p.signal("TERM");
    p.signal("TERM");
    assert_eq!(p.wait_exit(), Some(1));
}

fn write_config(path: &std::path::Path, backends: &[SocketAddr]) {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    let json = format!(
        "{{\"backends\": [{}], \"health_interval\": \"0s\"}}",
        list.join(",")
    );
    // Whole or not at all, as an operator should: a reload never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).expect("write config");
    std::fs::rename(&tmp, path).expect("move config in place");
}

fn temp_config(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rr-proxy-test-{tag}-{}.json", std::process::id()))
}

/// Which instances answer the next `n` requests.
fn names(p: &Proc, n: usize) -> Vec<String> {
    let mut c = p.client();
    (0..n)
        .map(|_| {
            let r = c.request(HEALTHZ);
            assert_eq!(r.status, 200, "no request fails across a reload");
            r.header("x-echo-instance").unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn sighup_swaps_backends_under_traffic_without_a_failed_request() {
    let e: Vec<Proc> = (1..=3)
        .map(|i| util::echo(&["--name", &format!("e{i}")]))
        .collect();
    let path = temp_config("reload");
    write_config(&path, &[e[0].addr(), e[1].addr()]);
    let p = util::proxy_on(&["--config", path.to_str().unwrap_or("")]);
    let mut got = names(&p, 4);
    got.sort();
    assert_eq!(got, ["e1", "e1", "e2", "e2"]);
    // Traffic keeps flowing on another connection while the config changes.
    let addr = p.addr();
    let traffic = std::thread::spawn(move || {
        let mut c = util::Client::connect(addr);
        for _ in 0..300 {
            assert_eq!(c.request(HEALTHZ).status, 200);
        }
    });
    write_config(&path, &[e[1].addr(), e[2].addr()]);
    p.signal("HUP");
    let deadline = Instant::now() + util::DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "reload never took effect");
        let now: Vec<String> = names(&p, 6);
        if now.iter().all(|n| n != "e1") && now.iter().any(|n| n == "e3") {
            break;
        }
    }
    traffic.join().expect("no failed request during the reload");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_bad_config_on_sighup_is_refused_and_the_old_one_serves() {
    let e1 = util::echo(&["--name", "e1"]);
    let e2 = util::echo(&["--name", "e2"]);
    let path = temp_config("bad");
    write_config(&path, &[e1.addr()]);
    let p = util::proxy_on(&["--config", path.to_str().unwrap_or("")]);
    assert_eq!(names(&p, 2), ["e1", "e1"]);
    std::fs::write(&path, "{\"backends\": [\"127.0.0.1:1\"], \"max_conns\": 0").expect("write");
    p.signal("HUP");
    let deadline = Instant::now() + util::DEADLINE;
    while !p.stderr().contains("reload refused") {
        assert!(Instant::now() < deadline, "no refusal logged");
        assert_eq!(names(&p, 1), ["e1"]);
    }
    assert_eq!(names(&p, 3), ["e1", "e1", "e1"]);
    // A valid file afterwards is taken.
    write_config(&path, &[e2.addr()]);
    p.signal("HUP");
    let deadline = Instant::now() + util::DEADLINE;
    while names(&p, 1) != ["e2"] {
        assert!(Instant::now() < deadline, "the good config was not taken");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_second_proxy_on_a_port_in_use_exits_1_naming_it() {
    // The listener shares its port among the proxy's own workers (SO_REUSEPORT); another
    // proxy must not join it and take half the traffic unnoticed.
    let b = Backend::ok("x");
    let first = proxy(&[b.addr], &[]);
    let port = first.addr().to_string();
    let backends = b.addr.to_string();
    let exit = util::run_to_exit(util::PROXY, &["--listen", &port, "--backends", &backends]);
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    assert!(exit.stderr.contains(&port), "{}", exit.stderr);
    // Busy as the admin port: the message names that address, not --listen.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let args = ["--listen", &free, "--backends", &backends, "--admin", &port];
    let exit = util::run_to_exit(util::PROXY, &args);
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    assert!(
        exit.stderr.contains(&port) && !exit.stderr.contains(&free),
        "{}",
        exit.stderr
    );
    assert_eq!(
        first
            .client()
            .request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .status,
        200
    );
}

#[test]
fn every_worker_takes_the_same_reload_even_if_the_file_changes_again() {
    // The file is rewritten right after the signal: workers that each read it could land on
    // different lists. One reads it for all, so all serve one list, whichever it read.
    let e: Vec<Proc> = (1..=3)
        .map(|i| util::echo(&["--name", &format!("e{i}")]))
        .collect();
    let path = temp_config("reload-workers");
    write_config(&path, &[e[0].addr()]);
    let p = util::proxy_on(&["--config", path.to_str().unwrap_or(""), "--workers", "3"]);
    // One request per connection, so the kernel spreads them over the workers; served, each
    // worker has its signal handling in place.
    let fresh = |n: usize| -> Vec<String> { (0..n).flat_map(|_| names(&p, 1)).collect() };
    assert!(fresh(30).iter().all(|n| n == "e1"));
    write_config(&path, &[e[1].addr()]);
    p.signal("HUP");
    write_config(&path, &[e[2].addr()]);
    let deadline = Instant::now() + util::DEADLINE;
    while fresh(30).iter().any(|n| n == "e1") {
        assert!(Instant::now() < deadline, "a worker never reloaded");
    }
    let mut seen = fresh(60);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1, "workers serve different lists: {seen:?}");
    let _ = std::fs::remove_file(&path);
}

/// The hard open-file limit of this test process (what a child started from it inherits).
fn hard_open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let hard = line["Max open files".len()..].split_whitespace().nth(1)?;
    Some(hard.parse().unwrap_or(u64::MAX)) // "unlimited"
}

/// rr-proxy in front of `backend`, started from a shell that first runs `ulimit LIMIT`.
fn proxy_under_ulimit(limit: &str, backend: SocketAddr, extra: &[&str]) -> Proc {
    let script = format!("ulimit {limit} && exec \"$0\" \"$@\"");
    let backends = backend.to_string();
    let mut args = vec!["-c", &script, util::PROXY, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(&["--backends", &backends, "--health-interval", "0s"]);
    args.extend_from_slice(extra);
    Proc::spawn("sh", &args)
}

#[test]
fn a_low_soft_open_file_limit_is_raised_so_clients_are_not_turned_away() {
    // Started from a shell whose soft limit is 64, the proxy would fit about 15 clients in it
    // and leave the rest unaccepted. It raises the soft limit towards the hard one instead.
    const CLIENTS: usize = 200;
    if hard_open_files_limit().is_none_or(|hard| hard < 4 * CLIENTS as u64) {
        eprintln!("skipped: the hard open-file limit is too low to raise the soft one past it");
        return;
    }
    let b = Backend::ok("x");
    let p = proxy_under_ulimit("-Sn 64", b.addr, &[]);
    // Every client connected and answered while all the others stay open.
    let mut clients: Vec<util::Client> = (0..CLIENTS).map(|_| p.client()).collect();
    for c in &mut clients {
        assert_eq!(c.request(GET).status, 200, "{}", p.stderr());
    }
    assert!(!p.stderr().contains("open-file limit"), "{}", p.stderr());
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", p.id())).unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(soft.is_some_and(|n| n > 2 * CLIENTS as u64), "{limits}");
}

/// A backend that holds every `/slow` answer until `n` of them have arrived, so that `n` of
/// its connections are busy at once.
fn barrier_backend(n: usize) -> Backend {
    let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
    Backend::start(move |seen| {
        if seen.head.starts_with("GET /slow ") {
            let (count, all_in) = &*arrived;
            if let Ok(mut c) = count.lock() {
                *c += 1;
                all_in.notify_all();
                let _ = all_in.wait_timeout_while(c, util::DEADLINE, |c| *c < n);
            }
        }
        Reply::Bytes(ok_response("x"))
    })
}

#[test]
fn parked_backend_connections_give_their_descriptors_to_new_clients() {
    // Under `ulimit -n 64`, 24 requests at once leave 24 backend connections parked. Then 45
    // clients connect and stay, each asking once: with the parked ones that is more than 64
    // descriptors, so a client is only served if the proxy closes parked connections for it.
    const HELD: usize = 24;
    const CLIENTS: usize = 45;
    let b = barrier_backend(HELD);
    let p = proxy_under_ulimit("-n 64", b.addr, &["--pipeline", "1", "--max-conns", "50"]);
    let mut first: Vec<util::Client> = (0..HELD).map(|_| p.client()).collect();
    for c in &mut first {
        c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    for c in &mut first {
        assert_eq!(c.read_response().status, 200, "{}", p.stderr());
    }
    drop(first);
    let mut clients = Vec::new();
    for n in 1..=CLIENTS {
        let mut c = p.client();
        c.send(GET);
        // Well inside the 10 s after which the test backend closes idle connections itself.
        let by = Instant::now() + Duration::from_secs(3);
        let answer = c.try_read_response_by(Method::Get, by);
        assert!(
            answer.as_ref().is_ok_and(|r| r.status == 200),
            "client {n} of {CLIENTS}: {answer:?}; stderr:\n{}",
            p.stderr()
        );
        clients.push(c);
    }
}
