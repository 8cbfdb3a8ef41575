//! A scripted backend for proxy tests: a thread that accepts connections on 127.0.0.1:0, reads
//! whole requests with the crate's own parsers, records them, and answers what the test's
//! script says, so a test can assert exactly what reached the backend.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rr_proxy::http::framing::BodyDecoder;
use rr_proxy::http::head::{parse_request, Parse, EMPTY_HEADERS};

/// One request as the backend received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The head, byte for byte.
    pub head: String,
    /// The decoded body.
    pub body: Vec<u8>,
    /// Which connection it came on, numbered from 0 in the order they were accepted.
    pub conn: usize,
}

impl Seen {
    /// The request target.
    pub fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// The value of the first field called `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// What the backend does with a request.
pub enum Reply {
    /// Write these bytes and keep the connection.
    Bytes(Vec<u8>),
    /// Write these bytes, then shut the connection down both ways and close it.
    BytesThenClose(Vec<u8>),
    /// Write these bytes, then just close (what most servers do when they keep nothing
    /// alive): a request that arrives after it, or that it never read, gets a reset.
    BytesThenDrop(Vec<u8>),
    /// Write these bytes (perhaps none), then close with a reset (`SO_LINGER` 0): an
    /// application that read the request, perhaps acted on it, and aborted.
    Reset(Vec<u8>),
    /// Say nothing and keep the connection open until the test ends.
    Silence,
    /// Wait this long, write these bytes, then say nothing more (a backend that stalls).
    LateThenSilence(std::time::Duration, Vec<u8>),
    /// Write these bytes, then relay raw bytes back (an echo tunnel) until the peer closes.
    Tunnel(Vec<u8>),
    /// Write the first bytes, wait until the test opens the gate, write the rest, and keep
    /// the connection: an answer that arrives in two parts, the test choosing when.
    Gated(Vec<u8>, Arc<Gate>, Vec<u8>),
}

/// A signal from a test to a backend thread: opened once, waited for (within the backend's
/// read limit) by a [`Reply::Gated`].
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    /// Lets every waiting and future [`Reply::Gated`] go on.
    pub fn open(&self) {
        if let Ok(mut open) = self.open.lock() {
            *open = true;
            self.opened.notify_all();
        }
    }

    fn wait(&self) {
        if let Ok(open) = self.open.lock() {
            let _ = self
                .opened
                .wait_timeout_while(open, READ_LIMIT, |open| !*open);
        }
    }
}

type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A running scripted backend; stops when dropped.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How long any backend read may wait; tests never hang longer than this on one read.
const READ_LIMIT: Duration = Duration::from_secs(10);

impl Backend {
    /// Starts a backend answering with `script`.
    pub fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (s2, st2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for (n, conn) in listener.incoming().enumerate() {
                if st2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (seen, script, stop) = (s2.clone(), script.clone(), st2.clone());
                workers.push(std::thread::spawn(move || {
                    serve(conn, n, &seen, &*script, &stop)
                }));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Backend {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// A backend answering every request with `200 OK` and `body`.
    pub fn ok(body: &'static str) -> Backend {
        Backend::start(move |_| Reply::Bytes(ok_response(body)))
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `200 OK` with a body and its length.
pub fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve(
    mut conn: TcpStream,
    n: usize,
    seen: &Mutex<Vec<Seen>>,
    script: &Script,
    stop: &AtomicBool,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    let mut waited = Duration::ZERO;
    loop {
        if stop.load(Ordering::SeqCst) || waited > READ_LIMIT {
            return;
        }
        let Some((mut req, used)) = take_request(&buf) else {
            let mut chunk = [0u8; 65536];
            match conn.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    waited = Duration::ZERO;
                }
                Err(e) if is_timeout(&e) => waited += Duration::from_millis(100),
                Err(_) => return,
            }
            continue;
        };
        buf.drain(..used);
        req.conn = n;
        if let Ok(mut v) = seen.lock() {
            v.push(req.clone());
        }
        match script(&req) {
            Reply::Bytes(b) => {
                if conn.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::BytesThenClose(b) => {
                let _ = conn.write_all(&b);
                let _ = conn.shutdown(Shutdown::Both);
                return;
            }
            Reply::BytesThenDrop(b) => {
                let _ = conn.write_all(&b);
                return;
            }
            Reply::LateThenSilence(wait, b) => {
                std::thread::sleep(wait);
                if conn.write_all(&b).is_ok() {
                    hold(&mut conn, stop);
                }
                return;
            }
            Reply::Reset(b) => {
                let _ = conn.write_all(&b);
                let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
                return;
            }
            Reply::Silence => {
                hold(&mut conn, stop);
                return;
            }
            Reply::Tunnel(b) => {
                let _ = conn.write_all(&b);
                echo_raw(conn, stop);
                return;
            }
            Reply::Gated(first, gate, rest) => {
                if conn.write_all(&first).is_err() {
                    return;
                }
                gate.wait();
                if conn.write_all(&rest).is_err() {
                    return;
                }
            }
        }
    }
}

/// Keeps the connection open, reading and dropping what arrives, until the peer closes or the
/// test ends.
fn hold(conn: &mut TcpStream, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let mut chunk = [0u8; 1024];
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Err(e) if !is_timeout(&e) => return,
            _ => {}
        }
    }
}

fn echo_raw(mut conn: TcpStream, stop: &AtomicBool) {
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                if conn.write_all(&chunk[..n]).is_err() {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A whole request at the front of `buf`, and how many bytes it took.
fn take_request(buf: &[u8]) -> Option<(Seen, usize)> {
    let mut headers = EMPTY_HEADERS;
    let Ok(Parse::Complete(req)) = parse_request(buf, &mut headers, 1 << 20) else {
        return None;
    };
    let head_len = req.head_len;
    let mut dec = BodyDecoder::new(req.body);
    let mut body = Vec::new();
    let mut at = head_len;
    while !dec.is_done() {
        let step = dec.decode(&buf[at..]).ok()?;
        if step.consumed == 0 {
            return None;
        }
        body.extend_from_slice(&buf[at..][step.data]);
        at += step.consumed;
    }
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    Some((
        Seen {
            head,
            body,
            conn: 0,
        },
        at,
    ))
}
