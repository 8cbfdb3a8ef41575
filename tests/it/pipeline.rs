//! Requests that arrive together sharing one backend connection (`--pipeline`).
//!
//! To make "arrive together" exact rather than likely, the proxy is stopped (SIGSTOP) while the
//! clients write, and let go (SIGCONT) once every request sits in its socket: the proxy's next
//! wait returns them all in one batch of events.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin::{proxy_with_admin, sample, scrape};
use crate::backend::{ok_response, Backend, Reply, Seen};
use crate::proxy::proxy;
use crate::util::{Client, Proc};
use rr_proxy::http::head::Method;

/// Runs `send` with the proxy stopped, so what it writes is read in one batch afterwards.
fn while_stopped(p: &Proc, send: impl FnOnce()) {
    p.signal("STOP");
    wait_for_state(p, 'T');
    send();
    p.signal("CONT");
}

/// Waits (bounded) until the process's state letter in /proc is `state`.
fn wait_for_state(p: &Proc, state: char) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.id())).unwrap_or_default();
        let now = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.trim().chars().next());
        if now == Some(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "proxy never reached state {state}"
        );
        std::thread::yield_now();
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// A backend answering each request with its own path as the body.
fn path_echo() -> Backend {
    Backend::start(|req| Reply::Bytes(ok_response(req.path())))
}

/// Each client sends `GET {prefix}{i}` while the proxy is stopped, so they arrive in one
/// batch.
fn send_together(p: &Proc, clients: &mut [Client], prefix: &str) {
    while_stopped(p, || {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(&get(&format!("{prefix}{i}")));
        }
    });
}

/// [`send_together`], then checks that every client got 200 with its own path as the body.
fn round_together(p: &Proc, clients: &mut [Client], prefix: &str) {
    send_together(p, clients, prefix);
    for (i, c) in clients.iter_mut().enumerate() {
        let r = c.read_response();
        assert_eq!((r.status, r.text()), (200, format!("{prefix}{i}")));
    }
}

/// `n` keep-alive clients; one request each, all at once, so that the proxy ends up with a
/// pooled backend connection per client (pipelines form only on pooled connections).
fn warm_clients(p: &Proc, n: usize) -> Vec<Client> {
    let mut clients: Vec<Client> = (0..n).map(|_| p.client()).collect();
    round_together(p, &mut clients, "/warm");
    clients
}

/// The backend connections the requests of `paths` arrived on.
fn conns_of(seen: &[Seen], paths: &[String]) -> Vec<usize> {
    paths
        .iter()
        .map(|p| {
            seen.iter()
                .find(|s| s.path() == p)
                .unwrap_or_else(|| panic!("{p} never reached the backend"))
                .conn
        })
        .collect()
}

/// Four GETs and two POSTs arrive together; returns the backend connection of each GET and
/// of each POST, after checking every client got its own answer.
fn batch_of_four_gets_and_two_posts(depth: &str) -> (Vec<usize>, Vec<usize>) {
    let b = path_echo();
    let p = proxy(&[b.addr], &["--pipeline", depth]);
    let mut clients = warm_clients(&p, 6);
    // Until one answer has come back behind another, the proxy pipelines two at most.
    round_together(&p, &mut clients[..2], "/teach");
    let gets: Vec<String> = (0..4).map(|i| format!("/get{i}")).collect();
    let posts: Vec<String> = (0..2).map(|i| format!("/post{i}")).collect();
    while_stopped(&p, || {
        for (c, path) in clients.iter_mut().zip(&gets) {
            c.send(&get(path));
        }
        for (c, path) in clients[4..].iter_mut().zip(&posts) {
            c.send(
                format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            );
        }
    });
    for (c, path) in clients.iter_mut().zip(gets.iter().chain(&posts)) {
        let r = c.read_response();
        assert_eq!(
            (r.status, r.text()),
            (200, path.clone()),
            "each client gets its own answer"
        );
    }
    let seen = b.seen();
    (conns_of(&seen, &gets), conns_of(&seen, &posts))
}

#[test]
fn gets_arriving_together_share_one_backend_connection_and_posts_never_do() {
    let (gets, posts) = batch_of_four_gets_and_two_posts("4");
    assert!(
        gets.iter().all(|&c| c == gets[0]),
        "one connection carried all four: {gets:?}"
    );
    let distinct: HashSet<usize> = posts.iter().chain(&gets[..1]).copied().collect();
    assert_eq!(
        distinct.len(),
        3,
        "each POST alone: posts {posts:?}, gets {gets:?}"
    );
}

#[test]
fn heads_and_conditional_gets_always_go_alone() {
    // Their answers may have no body whatever the fields say (HEAD, 304): nothing is queued
    // behind one, where a body sent anyway would pass for the next answer.
    let b = path_echo();
    let p = proxy(&[b.addr], &["--pipeline", "8"]);
    let mut clients = warm_clients(&p, 5);
    round_together(&p, &mut clients[..2], "/teach");
    let reqs: [&[u8]; 5] = [
        b"GET /g0 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /g1 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /inm HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\"\r\n\r\n",
        b"GET /ims HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    ];
    while_stopped(&p, || {
        for (c, req) in clients.iter_mut().zip(reqs) {
            c.send(req);
        }
    });
    for (i, c) in clients.iter_mut().enumerate() {
        let method = if i == 2 { Method::Head } else { Method::Get };
        assert_eq!(c.read_response_to(method).status, 200, "request {i}");
    }
    let paths = ["/g0", "/g1", "/h", "/inm", "/ims"].map(String::from);
    let conns = conns_of(&b.seen(), &paths);
    assert_eq!(conns[0], conns[1], "the plain GETs share: {conns:?}");
    let distinct: HashSet<usize> = conns[1..].iter().copied().collect();
    assert_eq!(distinct.len(), 4, "the others each alone: {conns:?}");
}

#[test]
fn pipeline_1_gives_every_request_its_own_backend_connection() {
    let (gets, posts) = batch_of_four_gets_and_two_posts("1");
    let distinct: HashSet<usize> = gets.iter().chain(&posts).copied().collect();
    assert_eq!(distinct.len(), 6, "gets {gets:?}, posts {posts:?}");
}

#[test]
fn a_backend_sending_more_than_its_length_spoils_no_answer_behind_it() {
    // Every answer in the second round carries junk after its declared length: on a shared
    // connection the junk lands in front of the next answer. That one is sent again alone.
    let b = Backend::start(|req| {
        let mut bytes = ok_response(req.path());
        if req.path().starts_with("/lie") {
            bytes.extend_from_slice(b"JUNK\r\n\r\n");
        }
        Reply::Bytes(bytes)
    });
    let p = proxy(&[b.addr], &["--pipeline", "8"]);
    let mut clients = warm_clients(&p, 6);
    round_together(&p, &mut clients, "/lie");
    // And the proxy carries on normally afterwards.
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(
            c.request(&get(&format!("/after{i}"))).text(),
            format!("/after{i}")
        );
    }
}

/// A whole answer, as a backend might send it after one that may have no body.
const FORGED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nFORGED";

#[test]
fn bytes_after_a_204_or_304_are_no_answer_for_the_requests_behind_it() {
    // A 204 or 304 has no body whatever its fields say. Were the proxy to read on after one,
    // the bytes a backend sends anyway (here a whole answer) would become the answer to the
    // next request on the connection: another client's.
    let b = Backend::start(|req| {
        let status = match req.path() {
            p if p.starts_with("/nc") => "304 Not Modified",
            p if p.starts_with("/nb") => "204 No Content",
            p => return Reply::Bytes(ok_response(p)),
        };
        let mut bytes = format!("HTTP/1.1 {status}\r\nContent-Length: 6\r\n\r\n").into_bytes();
        bytes.extend_from_slice(FORGED);
        Reply::Bytes(bytes)
    });
    let p = proxy(&[b.addr], &["--pipeline", "8"]);
    let mut clients = warm_clients(&p, 4);
    round_together(&p, &mut clients[..2], "/teach");
    for (prefix, status) in [("/nc", 304), ("/nb", 204)] {
        send_together(&p, &mut clients, prefix);
        for (i, c) in clients.iter_mut().enumerate() {
            let r = c.read_response();
            assert_eq!((r.status, r.text()), (status, String::new()), "{prefix}{i}");
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let path = format!("/after{prefix}{i}");
            assert_eq!(c.request(&get(&path)).text(), path);
        }
    }
}

#[test]
fn an_answer_ending_at_the_close_never_carries_the_answers_behind_it() {
    // The first request gets an answer without a length, which ends only when the backend
    // closes; the backend then, wrongly, answers the requests queued behind it on the same
    // connection. Relayed as it came, those answers would be the first client's body.
    let first = AtomicBool::new(true);
    let b = Backend::start(move |req| {
        if req.path().starts_with("/r") && first.swap(false, Ordering::SeqCst) {
            return Reply::Bytes(b"HTTP/1.1 200 OK\r\n\r\nno length: ".to_vec());
        }
        Reply::Bytes(ok_response(req.path()))
    });
    let p = proxy(&[b.addr], &["--pipeline", "8", "--backend-timeout", "1s"]);
    let mut clients = warm_clients(&p, 4);
    round_together(&p, &mut clients[..2], "/teach");
    // Every client, the first included (sent again alone), gets its own answer.
    round_together(&p, &mut clients, "/r");
}

#[test]
fn requests_behind_an_answer_too_big_to_wait_for_are_sent_again_and_arrive_whole() {
    // Bodies larger than a relay buffer: no answer is ever whole in the buffer, so no request
    // may wait behind one; each is sent again on a connection of its own.
    let b = Backend::start(|req| {
        if !req.path().starts_with("/big") {
            return Reply::Bytes(ok_response(req.path()));
        }
        let body: String = req.path().repeat(200_000 / req.path().len());
        Reply::Bytes(ok_response(&body))
    });
    let (p, admin) = proxy_with_admin(
        &[b.addr],
        &[
            "--pipeline",
            "8",
            "--buffer-size",
            "16K",
            "--health-interval",
            "0s",
        ],
    );
    let mut clients = warm_clients(&p, 5);
    let started = Instant::now();
    send_together(&p, &mut clients, "/big");
    for (i, c) in clients.iter_mut().enumerate() {
        let r = c.read_response();
        let path = format!("/big{i}");
        assert_eq!(r.status, 200);
        // Compared without printing 200 kB on a failure.
        let want = path.repeat(200_000 / path.len()).into_bytes();
        assert!(
            r.body == want,
            "{path}: {} bytes, not its own body",
            r.body.len()
        );
    }
    // No one waited for a timeout (the default backend timeout is 30 s).
    assert!(started.elapsed() < Duration::from_secs(10));
    // And the requests sent again were counted as retries.
    let name = b.addr.to_string();
    let retries = sample(
        &scrape(admin),
        "rr_proxy_retries_total",
        &[("backend", &name)],
    );
    assert!(retries >= 1.0, "retries {retries}");
}

#[test]
fn a_request_stuck_behind_a_silent_backend_leaves_after_the_backend_timeout() {
    // The first request of the batch meets a backend that never answers; the others waited
    // behind it on the same connection, so after the backend timeout they are sent again and
    // answered, while the first gets 504.
    let silenced = AtomicBool::new(false);
    let b = Backend::start(move |req| {
        if req.path().starts_with("/r") && !silenced.swap(true, Ordering::SeqCst) {
            return Reply::Silence;
        }
        Reply::Bytes(ok_response(req.path()))
    });
    let p = proxy(&[b.addr], &["--pipeline", "8", "--backend-timeout", "1s"]);
    let mut clients = warm_clients(&p, 4);
    send_together(&p, &mut clients, "/r");
    let mut statuses = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let r = c.read_response();
        if r.status == 200 {
            assert_eq!(r.text(), format!("/r{i}"));
        }
        statuses.push(r.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 504]);
}

/// A backend that answers only the first request of whatever one read brings and drops the
/// rest: it cannot take pipelined requests. Counts the reads that held more than one.
struct OneAtATime {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    piled: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OneAtATime {
    fn start() -> OneAtATime {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let piled = Arc::new(AtomicUsize::new(0));
        let (st, pl) = (stop.clone(), piled.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, pl) = (st.clone(), pl.clone());
                conns.push(std::thread::spawn(move || {
                    serve_one_at_a_time(conn, &st, &pl)
                }));
            }
            for c in conns {
                let _ = c.join();
            }
        });
        OneAtATime {
            addr,
            stop,
            piled,
            thread: Some(thread),
        }
    }
}

impl Drop for OneAtATime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one_at_a_time(mut conn: TcpStream, stop: &AtomicBool, piled: &AtomicUsize) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 8192];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.matches("\r\n\r\n").count() > 1 {
                    piled.fetch_add(1, Ordering::SeqCst);
                }
                let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                if conn.write_all(&ok_response(&path)).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn a_backend_that_cannot_read_pipelines_costs_one_short_wait_then_gets_none() {
    // The backend timeout is far beyond what the client waits for a read (`DEADLINE`): the
    // first round only completes because a backend on probation gets a short wait.
    let b = OneAtATime::start();
    let p = proxy(&[b.addr], &["--pipeline", "8", "--backend-timeout", "120s"]);
    let mut clients = warm_clients(&p, 4);
    for round in 0..2 {
        let piled_before = b.piled.load(Ordering::SeqCst);
        round_together(&p, &mut clients, &format!("/round{round}/"));
        let piled = b.piled.load(Ordering::SeqCst) - piled_before;
        if round == 0 {
            // The first batch found out, at the price of one short wait.
            assert!(piled > 0, "the first round was never pipelined");
        } else {
            assert_eq!(piled, 0, "pipelines went on to a backend that drops them");
        }
    }
    assert!(p.stderr().contains("left a pipelined request unanswered"));
}
