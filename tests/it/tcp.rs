//! L4 mode: rr-proxy `--mode tcp` relaying raw bytes, passing half-closes on, failing over,
//! and carrying HTTP untouched with a backend per connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::proxy::proxy;
use crate::util::{self, DEADLINE};

/// A raw TCP echo server: returns every byte, and shuts its write side when the peer does.
struct RawEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawEcho {
    fn start() -> RawEcho {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || echo(conn));
                }
            }
        });
        RawEcho {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RawEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn echo(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(DEADLINE));
    let mut buf = [0u8; 16384];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => {
                let _ = conn.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s
}

#[test]
fn bytes_pass_untouched_and_half_close_passes_on() {
    let e = RawEcho::start();
    let p = proxy(&[e.addr], &["--mode", "tcp"]);
    let mut s = connect(p.addr());
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut writer = s.try_clone().expect("clone");
    let sent = payload.clone();
    let w = std::thread::spawn(move || {
        writer.write_all(&sent).expect("write");
        // Our end of sending: the proxy shuts the backend's write half, the echo answers EOF.
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to the end");
    w.join().expect("writer");
    assert!(
        got == payload,
        "{} bytes back of {}",
        got.len(),
        payload.len()
    );
}

#[test]
fn a_refused_backend_is_skipped_per_connection() {
    let e = RawEcho::start();
    let dead = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let p = proxy(
        &[dead, e.addr],
        &["--mode", "tcp", "--connect-timeout", "500ms"],
    );
    for i in 0..6 {
        let mut s = connect(p.addr());
        let msg = format!("hello {i}");
        s.write_all(msg.as_bytes()).expect("write");
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).expect("echoed");
        assert_eq!(got, msg.as_bytes());
    }
}

#[test]
fn http_through_tcp_mode_stays_on_one_backend_per_connection() {
    let echoes: Vec<_> = (1..=2)
        .map(|i| util::echo(&["--name", &format!("t{i}")]))
        .collect();
    let addrs: Vec<SocketAddr> = echoes.iter().map(|e| e.addr()).collect();
    let p = proxy(&addrs, &["--mode", "tcp"]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut c = p.client();
        let names: Vec<String> = (0..3)
            .map(|_| {
                let r = c.request(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
                assert_eq!(r.status, 200);
                // Untouched: the proxy adds nothing in TCP mode.
                assert_eq!(r.header("x-backend-server"), None);
                r.header("x-echo-instance").unwrap_or("").to_string()
            })
            .collect();
        assert!(names.iter().all(|n| *n == names[0]), "{names:?}");
        seen.push(names[0].clone());
    }
    assert_eq!(seen, ["t1", "t2"]);
}

/// A backend that takes one connection and hands it to `serve` on its own thread.
fn one_shot(serve: impl FnOnce(TcpStream) + Send + 'static) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = std::thread::spawn(move || {
        if let Ok((conn, _)) = listener.accept() {
            let _ = conn.set_read_timeout(Some(DEADLINE));
            serve(conn);
        }
    });
    (addr, thread)
}

/// Reads `s` to its end, which must be a reset.
fn expect_reset(s: &mut TcpStream) {
    let mut got = Vec::new();
    let end = s.read_to_end(&mut got).map_err(|e| e.kind());
    let n = got.len();
    assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset), "{n} bytes");
}

fn reset(conn: TcpStream) {
    let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
}

#[test]
fn a_backend_reset_reaches_the_client_as_a_reset() {
    // An aborted stream must not end like a finished one: whatever the protocol inside, the
    // client has to be able to tell.
    // (It waits for the client's first bytes, so the pair is relaying when it aborts: a
    // reset before that is a failed connect, tried on the next backend.)
    let (addr, backend) = one_shot(|mut conn| {
        let mut go = [0u8; 2];
        if conn.read_exact(&mut go).is_ok() {
            let _ = conn.write_all(&[b'x'; 10_000]);
        }
        reset(conn);
    });
    let p = proxy(&[addr], &["--mode", "tcp"]);
    let mut s = connect(p.addr());
    s.write_all(b"go").expect("write");
    expect_reset(&mut s);
    let _ = backend.join();
}

#[test]
fn a_client_reset_reaches_the_backend_as_a_reset() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (addr, backend) = one_shot(move |mut conn| {
        let mut buf = [0u8; 16];
        let first = conn.read(&mut buf).map(|n| n > 0).unwrap_or(false);
        let _ = tx.send(());
        let mut rest = Vec::new();
        let end = conn.read_to_end(&mut rest).map_err(|e| e.kind());
        let _ = tx.send(());
        assert!(first);
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
    });
    let p = proxy(&[addr], &["--mode", "tcp"]);
    let mut s = connect(p.addr());
    s.write_all(b"hello").expect("write");
    rx.recv_timeout(DEADLINE)
        .expect("the backend got the bytes");
    reset(s);
    rx.recv_timeout(DEADLINE).expect("the backend saw the end");
    backend
        .join()
        .expect("the backend saw a reset, not an orderly end");
}

#[test]
fn a_tunnel_stalled_with_bytes_in_flight_is_reset_at_the_idle_timeout() {
    // The client stops reading while the backend still sends: at the idle timeout the stream
    // is cut, and the client, reading at last, must see a reset after what it got, not an
    // end that passes the part off as the whole.
    let (tx, rx) = std::sync::mpsc::channel();
    let (addr, backend) = one_shot(move |mut conn| {
        let chunk = [b'x'; 65536];
        let mut sent = 0usize;
        // Bounded: 256 MiB is far more than the proxy and both kernels buffer together.
        while sent < 256 << 20 {
            match conn.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let _ = tx.send(sent);
    });
    let p = proxy(&[addr], &["--mode", "tcp", "--idle-timeout", "300ms"]);
    let mut s = connect(p.addr());
    let sent = rx
        .recv_timeout(DEADLINE)
        .expect("the backend's writes ended");
    assert!(sent < 256 << 20, "the proxy never gave up");
    expect_reset(&mut s);
    let _ = backend.join();
}

#[test]
fn an_idle_tcp_pair_is_closed_after_the_idle_timeout() {
    let e = RawEcho::start();
    let p = proxy(&[e.addr], &["--mode", "tcp", "--idle-timeout", "300ms"]);
    let mut s = connect(p.addr());
    s.write_all(b"x").expect("write");
    let mut one = [0u8; 1];
    s.read_exact(&mut one).expect("echo");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed by the idle timeout, took {:?}; stderr: {}",
        started.elapsed(),
        p.stderr()
    );
}
