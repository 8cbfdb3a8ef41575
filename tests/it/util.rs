//! Helpers every integration test shares: start a program on port 0 and learn its address,
//! run one to its exit, and speak raw HTTP/1.1 bytes over a real socket, reading answers with
//! the crate's own parser. Every wait has a deadline; nothing sleeps to synchronise.
//!
//! A process started here is killed and reaped when its handle is dropped, so a failing test
//! leaves nothing running.

#![allow(dead_code)] // Each test module uses a different part.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod client;

pub use client::{get, post, Client, Response};

/// The rr-echo binary cargo built for this test run.
pub const ECHO: &str = env!("CARGO_BIN_EXE_rr-echo");
/// The rr-proxy binary cargo built for this test run.
pub const PROXY: &str = env!("CARGO_BIN_EXE_rr-proxy");

/// How long any single wait may take before the test fails: far above what a healthy run needs
/// on a loaded CI machine, far below a hung test.
pub const DEADLINE: Duration = Duration::from_secs(10);
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
        let mut child = start(bin, args);
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

    /// Sends it a signal by name (`TERM`, `HUP`, ...) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill -{name}: {e}"));
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (up to [`DEADLINE`]) for it to exit by itself; its exit code, `None` if a signal
    /// ended it. Panics if it is still running at the deadline.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => {
                    // Exit is only visible by asking; ask every few milliseconds.
                    thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => panic!(
                    "still running after {DEADLINE:?}; stderr:\n{}",
                    self.stderr()
                ),
                Err(e) => panic!("wait: {e}"),
            }
        }
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

/// rr-proxy listening on a free port of 127.0.0.1, with `args` added.
pub fn proxy_on(args: &[&str]) -> Proc {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Proc::spawn(PROXY, &all)
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

/// Starts `bin` with `args`, no stdin, stdout and stderr piped to the test.
fn start(bin: &str, args: &[&str]) -> Child {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"))
}

/// Runs `bin` with `args` to its exit, which must come within [`DEADLINE`].
pub fn run_to_exit(bin: &str, args: &[&str]) -> Exit {
    let mut child = start(bin, args);
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
pub fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
