//! A test binary of its own, because it puts SIGPIPE back to its default (terminate), as a C
//! host or a non-Rust `main` would leave it: `proxy::run` must then survive writing to
//! clients that have gone. Rust's own `main` ignores SIGPIPE, so no other test can see this.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use rr_proxy::proxy::{self, config};

/// A backend answering every request it reads with a short `200`, on a thread per connection.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    let answers = buf[..n].windows(4).filter(|w| w == b"\r\n\r\n").count();
                    let one = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if conn.write_all(&one.repeat(answers)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Starts the proxy in this process; its thread runs until the process exits.
fn start_proxy(backend: SocketAddr) -> SocketAddr {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--backends",
        &backend.to_string(),
        "--health-interval",
        "0s",
    ];
    let cfg = match config::from_args(args.iter().map(|s| s.to_string()), None) {
        Ok(config::Command::Run(cfg)) => *cfg,
        Ok(_) => panic!("the test's flags did not ask to run"),
        Err(e) => panic!("config: {}", e.0),
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy listener");
    let addr = listener.local_addr().expect("proxy address");
    thread::spawn(move || proxy::run(listener, cfg));
    addr
}

/// One whole request and its answer on a fresh connection.
fn get(proxy: SocketAddr) -> String {
    let mut c = TcpStream::connect(proxy).expect("connect to the proxy");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("send request");
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("read answer");
    answer
}

/// Clients pipeline requests, half-close and go away without reading: the proxy answers the
/// first, the client's kernel resets, and the next answer meets a socket already closed
/// (EPIPE). With SIGPIPE at its default that write would kill this whole process.
#[test]
fn writing_to_a_client_that_has_gone_does_not_kill_the_host_process() {
    // SAFETY: setting a signal's disposition to its default has no memory-safety
    // requirements; no other thread depends on SIGPIPE being ignored.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let proxy = start_proxy(backend());
    let requests = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(50);
    for _ in 0..50 {
        let mut c = TcpStream::connect(proxy).expect("connect to the proxy");
        c.write_all(&requests).expect("send requests");
        c.shutdown(Shutdown::Write).expect("half-close");
        drop(c);
        // The loop goes on (a SIGPIPE would have ended the process, not just the test).
        assert!(
            get(proxy).starts_with("HTTP/1.1 200 "),
            "the proxy still answers"
        );
    }
}
