//! Helpers every integration test shares: start a program on port 0 and learn its address,
//! run one to its exit, and speak raw HTTP/1.1 bytes over a real socket, reading answers with
//! the crate's own parser. Every wait has a deadline; nothing sleeps to synchronise.
//!
//! A process started here is killed and reaped when its handle is dropped, so a failing test
//! leaves nothing running.

#![allow(dead_code)] // Each test module uses a different part.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rr_proxy::http::framing::BodyDecoder;
use rr_proxy::http::head::{parse_response, Method, Parse, EMPTY_HEADERS};

/// The rr-echo binary cargo built for this test run.
pub const ECHO: &str = env!("CARGO_BIN_EXE_rr-echo");
/// The rr-proxy binary cargo built for this test run.
pub const PROXY: &str = env!("CARGO_BIN_EXE_rr-proxy");

/// How long any single wait may take before the test fails: far above what a healthy run needs
/// on a loaded CI machine, far below a hung test.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The most a test client buffers for one response head.
const MAX_HEAD: usize = 64 * 1024;
/// The most a test client accepts as one response body.
const MAX_BODY: usize = 64 << 20;
/// How much of a child's stderr is kept for failure messages.
const STDERR_KEEP: usize = 64 * 1024;

/// A running program that printed `listening on ADDR`; killed and reaped on drop.
pub struct Proc {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    /// Lines of stdout after the first, for tests that look at them.
    stdout: Receiver<String>,
}

impl Proc {
    /// Starts `bin` with `args` and waits (up to [`DEADLINE`]) for its `listening on ADDR`
    /// line. Panics, with the program's stderr, if it exits or stays silent.
    pub fn spawn(bin: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(pipe) = child.stderr.take() {
            keep_tail(pipe, Arc::clone(&stderr));
        }
        let lines = child.stdout.take().map(forward_lines);
        let mut proc = Proc {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr,
            stdout: lines.unwrap_or_else(|| mpsc::channel().1),
        };
        let line = match proc.stdout.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{bin} {args:?} printed no address within {DEADLINE:?}; stderr:\n{}",
                proc.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{bin} {args:?} exited before listening ({:?}); stderr:\n{}",
                proc.child.wait().ok(),
                proc.stderr()
            ),
        };
        proc.addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("{bin}: unexpected first line {line:?}"));
        proc
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last [`STDERR_KEEP`] bytes it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        let tail = self.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&Vec::from(tail)).into_owned()
    }

    /// The next line it prints to stdout after the address, waiting up to [`DEADLINE`].
    pub fn next_stdout_line(&self) -> Option<String> {
        self.stdout.recv_timeout(DEADLINE).ok()
    }

    /// Its process id, for tests that signal it.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// A new client connected to it.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// rr-echo on a free port with `args` added.
pub fn echo(args: &[&str]) -> Proc {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    Proc::spawn(ECHO, &all)
}

/// Sends each stdout line of a child into a channel, until the pipe closes.
fn forward_lines(mut pipe: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                // The receiver may be gone; the pipe is still drained so the child never blocks.
                let _ = tx.send(line);
            }
        }
    });
    rx
}

/// Keeps the last [`STDERR_KEEP`] bytes of a pipe, until it closes.
fn keep_tail(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<VecDeque<u8>>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            if let Ok(mut tail) = into.lock() {
                tail.extend(&buf[..n]);
                let excess = tail.len().saturating_sub(STDERR_KEEP);
                tail.drain(..excess);
            }
        }
    });
}

/// How a program run to its end finished.
#[derive(Debug)]
pub struct Exit {
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `bin` with `args` to its exit, which must come within [`DEADLINE`].
pub fn run_to_exit(bin: &str, args: &[&str]) -> Exit {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    // Each reader ends when the child's end of its pipe closes, which is at exit.
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut out);
            }
            let _ = tx.send(String::from_utf8_lossy(&out).into_owned());
        });
        rx
    };
    let out = read_all(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read_all(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + DEADLINE;
    let collect = |rx: Receiver<String>| rx.recv_timeout(remaining(deadline));
    let (stdout, stderr) = match (collect(out), collect(err)) {
        (Ok(o), Ok(e)) => (o, e),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} {args:?} did not exit within {DEADLINE:?}");
        }
    };
    let status = child.wait().unwrap_or_else(|e| panic!("wait {bin}: {e}"));
    Exit {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Time left until `deadline`, at least a millisecond (a zero timeout means "none" to
/// `set_read_timeout`).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// `GET path` with a Host field.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// `POST path` with a JSON body framed by Content-Length.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// One response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Every field in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, blank line included.
    pub head: Vec<u8>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// The server allows another request on this connection.
    pub keep_alive: bool,
}

impl Response {
    /// The value of the first field called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// A test client over one blocking TCP connection. Bytes read past one response are kept for
/// the next, so pipelined answers can be read one by one.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects, with [`DEADLINE`] on the connect and on every read and write.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(DEADLINE));
        let _ = stream.set_read_timeout(Some(DEADLINE));
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Sends one request and reads its response (the request must not be HEAD).
    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response()
    }

    /// Reads the next response to a request that was not HEAD; panics on failure.
    pub fn read_response(&mut self) -> Response {
        self.read_response_to(Method::Get)
    }

    /// Reads the next response (1xx included) to a request with `method`; panics on failure.
    pub fn read_response_to(&mut self, method: Method) -> Response {
        self.try_read_response(method)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads the next response to a request with `method`, within [`DEADLINE`].
    pub fn try_read_response(&mut self, method: Method) -> Result<Response, String> {
        let deadline = Instant::now() + DEADLINE;
        let (mut resp, mut decoder) = loop {
            let mut headers = EMPTY_HEADERS;
            match parse_response(&self.buf, &mut headers, MAX_HEAD).map_err(|e| e.to_string())? {
                Parse::Complete(r) => {
                    let kind = r.body(method).map_err(|e| e.to_string())?;
                    let resp = Response {
                        status: r.status,
                        headers: r
                            .headers
                            .iter()
                            .map(|h| {
                                let v = String::from_utf8_lossy(h.value).into_owned();
                                (h.name.to_string(), v)
                            })
                            .collect(),
                        head: self.buf[..r.head_len].to_vec(),
                        body: Vec::new(),
                        keep_alive: r.keep_alive(),
                    };
                    self.buf.drain(..r.head_len);
                    break (resp, BodyDecoder::new(kind));
                }
                Parse::Partial => {
                    if self.fill(deadline)? == 0 {
                        return Err(format!("closed after {} bytes of head", self.buf.len()));
                    }
                }
            }
        };
        loop {
            while !decoder.is_done() && !self.buf.is_empty() {
                let step = decoder.decode(&self.buf).map_err(|e| e.to_string())?;
                resp.body.extend_from_slice(&self.buf[step.data]);
                self.buf.drain(..step.consumed);
            }
            if decoder.is_done() {
                return Ok(resp);
            }
            if resp.body.len() > MAX_BODY {
                return Err("response body over the test limit".into());
            }
            if self.fill(deadline)? == 0 {
                decoder.finish_at_eof().map_err(|e| e.to_string())?;
                return Ok(resp);
            }
        }
    }

    /// Reads once more into the buffer; 0 at end of stream.
    fn fill(&mut self, deadline: Instant) -> Result<usize, String> {
        if Instant::now() >= deadline {
            return Err(format!("no complete response within {DEADLINE:?}"));
        }
        let _ = self.stream.set_read_timeout(Some(remaining(deadline)));
        let mut chunk = [0u8; 64 * 1024];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Asserts the server closes the connection without sending anything more, within
    /// [`DEADLINE`]. A reset counts as closed.
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.fill(deadline) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.contains("reset") => break,
                Err(e) => panic!("expected the server to close: {e}"),
            }
        }
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// Whether any response byte has arrived, without waiting for one.
    pub fn has_pending_bytes(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let _ = self.stream.set_nonblocking(true);
        let mut probe = [0u8; 1];
        let got = matches!(self.stream.peek(&mut probe), Ok(n) if n > 0);
        let _ = self.stream.set_nonblocking(false);
        got
    }

    /// Shuts the write side, as a client that has nothing more to send.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// A second handle on the socket, for a writer thread.
    pub fn writer(&self) -> TcpStream {
        self.stream
            .try_clone()
            .unwrap_or_else(|e| panic!("clone socket: {e}"))
    }
}
