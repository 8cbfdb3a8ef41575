//! Issue #6: the proxy makes no heap allocation per request once it has warmed up.
//!
//! A test binary of its own, because it installs a counting global allocator. The proxy runs
//! in this process on a thread of its own, and only that thread's allocations are counted, so
//! the in-process backends and the client (which allocate freely) do not disturb the count.
//!
//! After a warm-up that fills the backend pools, sizes the slab and the timer wheel and grows
//! every reused vector to its working size, three windows must cost the proxy thread no
//! allocation at all: small keep-alive requests (GET with a sized answer, POST with a small
//! body, GET with a chunked answer, pipelined GETs), then large bodies each way, which stream
//! through the relay buffer many times and make the session yield for fairness, then GETs from
//! several clients at once, which the proxy sends together on shared backend connections (the
//! backend counts how often it found a request waiting behind another, so the window is known
//! to have exercised that path). On failure the
//! message carries the backtraces of the first allocations in the window: they name the
//! culprit.
//!
//! Per-connection costs (the session and what it owns) are outside the windows by design: one
//! client connection carries every request. No logger is installed, so log lines cost nothing
//! here; probes are off, since each opens a connection.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rr_proxy::proxy::{self, config};

/// Wraps the system allocator, counting the allocations made on threads that opted in.
struct Counting;

/// Allocations (alloc, alloc_zeroed, realloc) made on counted threads.
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// While set, the first few counted allocations also record where they came from.
static TRACING: AtomicBool = AtomicBool::new(false);
/// Backtraces of the first allocations seen while tracing.
static TRACES: Mutex<Vec<Backtrace>> = Mutex::new(Vec::new());
/// Backtraces kept at most: the first few name the culprit; more only slow the window down.
const TRACES_KEPT: usize = 4;

thread_local! {
    /// Whether this thread's allocations count. `const` and `Cell<bool>`: reading it neither
    /// allocates nor registers a destructor, so the allocator may touch it.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

impl Counting {
    fn note(&self) {
        if !COUNTED.try_with(Cell::get).unwrap_or(false) {
            return;
        }
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        if TRACING.load(Ordering::Relaxed) {
            // Capturing allocates: stop counting this thread meanwhile so it does not recurse.
            COUNTED.with(|c| c.set(false));
            if let Ok(mut traces) = TRACES.lock() {
                if traces.len() < TRACES_KEPT {
                    traces.push(Backtrace::force_capture());
                }
            }
            COUNTED.with(|c| c.set(true));
        }
    }
}

// SAFETY: every call is passed unchanged to `System`; the bookkeeping around it touches only
// atomics, a `const` thread-local and (with counting switched off) a mutex.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Small requests before the first window: enough for every pool, slab and vector to reach
/// its size.
const WARM_UP: usize = 2_000;
/// Small requests in the first window.
const MEASURED: usize = 10_000;
/// Large exchanges before and in the second window.
const LARGE_WARM_UP: usize = 10;
const LARGE_MEASURED: usize = 100;
/// Bodies of the large exchanges: 64 times the default 16K relay buffer, so a session moves
/// more than its fairness quota in one go and yields.
const LARGE: usize = 1 << 20;
/// Requests written at once in the pipelined case.
const PIPELINED: usize = 4;
/// Longest any single socket wait may take before the test fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Backends behind the proxy: more than one, so the rotation and each backend's pool are used.
const BACKENDS: usize = 2;
/// Clients sending at once in the third window, so that requests share backend connections.
const CROWD: usize = 6;
/// Rounds of the crowd (each a request from every client) before and in the third window.
const CROWD_WARM_UP: usize = 500;
const CROWD_MEASURED: usize = 2_000;

/// Times a backend found the next request already waiting after answering one: requests
/// from different clients that the proxy sent together on one connection.
static PILED: AtomicU64 = AtomicU64::new(0);

/// The body of the small POST requests, echoed back by the backend.
const POST_BODY: &[u8] = br#"{"hello":"world","n":12345}"#;
/// The body of `/small`.
const SMALL_BODY: &[u8] = b"hello";
/// The body of `/chunked` as the backend sends it; the proxy passes it through unchanged.
const CHUNKED_BODY: &[u8] = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
/// The byte `/big` answers are made of.
const BIG_BYTE: u8 = b'x';

#[test]
fn steady_state_requests_do_not_allocate() {
    let started = Instant::now();
    let backends: Vec<SocketAddr> = (0..BACKENDS).map(|_| start_backend()).collect();
    let proxy = start_proxy(&backends);
    let mut client = Client::connect(proxy);

    let small = [
        Case::get("/small", SMALL_BODY, false),
        Case::post(POST_BODY),
        Case::get("/chunked", CHUNKED_BODY, true),
        Case::get("/small", SMALL_BODY, false).pipelined(PIPELINED),
    ];
    let large = [
        Case::get("/big", &vec![BIG_BYTE; LARGE], false),
        Case::post(&vec![b'y'; LARGE]),
    ];
    let mut crowd: Vec<Client> = (0..CROWD).map(|_| Client::connect(proxy)).collect();
    let crowd_case = Case::get("/small", SMALL_BODY, false);
    let piled_before = PILED.load(Ordering::SeqCst);
    let windows = [
        measure("small requests", &mut client, &small, WARM_UP, MEASURED),
        measure(
            "large bodies",
            &mut client,
            &large,
            LARGE_WARM_UP,
            LARGE_MEASURED,
        ),
        measure_with(
            "GETs from several clients at once",
            CROWD_WARM_UP,
            CROWD_MEASURED,
            || {
                for c in crowd.iter_mut() {
                    c.send(&crowd_case);
                }
                for c in crowd.iter_mut() {
                    c.receive(&crowd_case);
                }
            },
        ),
    ];
    let piled = PILED.load(Ordering::SeqCst) - piled_before;
    eprintln!("backends found {piled} requests already waiting behind another");
    assert!(piled > 0, "the crowd never shared a backend connection");
    for w in &windows {
        eprintln!(
            "proxy thread: {} allocations in {} exchanges of {}",
            w.allocations, w.exchanges, w.name
        );
    }
    eprintln!("{:?} in all", started.elapsed());
    for w in &windows {
        assert!(
            w.allocations == 0,
            "{} allocations on the proxy thread in {} steady-state exchanges of {}; \
             the first ones came from:\n{}",
            w.allocations,
            w.exchanges,
            w.name,
            w.traces.join("\n---\n")
        );
    }
}

/// What one measured window cost the proxy thread.
struct Window {
    name: &'static str,
    exchanges: usize,
    allocations: u64,
    /// Where the first allocations came from.
    traces: Vec<String>,
}

/// Runs `warm_up` exchanges, then counts the proxy thread's allocations over `measured` more,
/// taking the cases in turn.
fn measure(
    name: &'static str,
    client: &mut Client,
    cases: &[Case],
    warm_up: usize,
    measured: usize,
) -> Window {
    let mut next = cases.iter().cycle();
    measure_with(name, warm_up, measured, || {
        if let Some(case) = next.next() {
            client.exchange(case);
        }
    })
}

/// Runs `step` `warm_up` times, then counts the proxy thread's allocations over `measured`
/// more.
fn measure_with(
    name: &'static str,
    warm_up: usize,
    measured: usize,
    mut step: impl FnMut(),
) -> Window {
    for _ in 0..warm_up {
        step();
    }
    if let Ok(mut traces) = TRACES.lock() {
        traces.clear();
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    TRACING.store(true, Ordering::SeqCst);
    for _ in 0..measured {
        step();
    }
    TRACING.store(false, Ordering::SeqCst);
    let allocations = ALLOCS.load(Ordering::SeqCst) - before;
    let traces = TRACES
        .lock()
        .map(|t| t.iter().map(Backtrace::to_string).collect())
        .unwrap_or_default();
    Window {
        name,
        exchanges: measured,
        allocations,
        traces,
    }
}

/// Starts the proxy on its own thread, counting that thread's allocations. The thread runs
/// until the test process exits.
fn start_proxy(backends: &[SocketAddr]) -> SocketAddr {
    let list = backends
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--backends",
        &list,
        "--health-interval",
        "0s",
        // The default, spelled out: the crowd window needs the shared-connection path.
        "--pipeline",
        "8",
    ];
    let cfg = match config::from_args(args.iter().map(|s| s.to_string()), None) {
        Ok(config::Command::Run(cfg)) => *cfg,
        Ok(_) => panic!("the test's flags did not ask to run"),
        Err(e) => panic!("config: {}", e.0),
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy listener");
    let addr = listener.local_addr().expect("proxy address");
    thread::Builder::new()
        .name("proxy".into())
        .spawn(move || {
            COUNTED.with(|c| c.set(true));
            if let Err(e) = proxy::run(listener, cfg) {
                eprintln!("proxy stopped: {e}");
            }
        })
        .expect("spawn proxy thread");
    addr
}

/// One request as the client writes it, and what must come back.
struct Case {
    /// The request bytes: one request, or several pipelined.
    request: Vec<u8>,
    /// The body of each response, byte for byte (a chunked one as framed on the wire).
    body: Vec<u8>,
    /// The responses are chunked rather than sized.
    chunked: bool,
    /// How many responses the request bytes ask for.
    responses: usize,
}

impl Case {
    fn get(path: &str, body: &[u8], chunked: bool) -> Case {
        Case {
            request: format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes(),
            body: body.to_vec(),
            chunked,
            responses: 1,
        }
    }

    fn post(body: &[u8]) -> Case {
        let mut request = format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        Case {
            request,
            body: body.to_vec(),
            chunked: false,
            responses: 1,
        }
    }

    fn pipelined(self, n: usize) -> Case {
        Case {
            request: self.request.repeat(n),
            responses: n,
            ..self
        }
    }
}

/// A keep-alive client connection.
struct Client {
    conn: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let conn = TcpStream::connect(addr).expect("connect to the proxy");
        conn.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        conn.set_nodelay(true).expect("nodelay");
        Client {
            conn,
            buf: Vec::new(),
        }
    }

    /// Sends a case's request bytes and checks every answer: status 200, the framing the
    /// backend chose, the body byte for byte, and nothing after the last one. A large request
    /// body cannot fill every buffer on the way: the backend reads it all before answering.
    fn exchange(&mut self, case: &Case) {
        self.send(case);
        self.receive(case);
    }

    fn send(&mut self, case: &Case) {
        self.conn.write_all(&case.request).expect("send a request");
    }

    /// Reads and checks the answers to a case sent before.
    fn receive(&mut self, case: &Case) {
        for _ in 0..case.responses {
            let head_len = read_head(&mut self.conn, &mut self.buf).expect("a response head");
            let head = String::from_utf8_lossy(&self.buf[..head_len]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200 "), "{head}");
            if case.chunked {
                assert!(head.contains("transfer-encoding: chunked"), "{head}");
            } else {
                assert_eq!(content_length(&head), Some(case.body.len()), "{head}");
            }
            let end = head_len + case.body.len();
            assert!(
                fill(&mut self.conn, &mut self.buf, end),
                "response body cut short"
            );
            assert!(self.buf[head_len..end] == case.body[..], "body differs");
            self.buf.drain(..end);
        }
        assert!(self.buf.is_empty(), "bytes after the last response");
    }
}

/// Starts a backend answering keep-alive requests on a thread per connection: `/small` with
/// a sized body, `/chunked` with a chunked one, `/big` with a large sized one, and a request
/// with a body with that body. Its threads end when their connection does.
fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            thread::spawn(move || serve_backend(conn));
        }
    });
    addr
}

fn serve_backend(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::new();
    while let Some(head_len) = read_head(&mut conn, &mut buf) {
        let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
        let end = head_len + content_length(&head).unwrap_or(0);
        if !fill(&mut conn, &mut buf, end) {
            return;
        }
        let answer = if head.starts_with("get /chunked ") {
            let mut a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            a.extend_from_slice(CHUNKED_BODY);
            a
        } else if head.starts_with("get /big ") {
            sized(&vec![BIG_BYTE; LARGE])
        } else if end > head_len {
            sized(&buf[head_len..end])
        } else {
            sized(SMALL_BODY)
        };
        if conn.write_all(&answer).is_err() {
            return;
        }
        buf.drain(..end);
        if !buf.is_empty() {
            PILED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A 200 response with a `Content-Length` body.
fn sized(body: &[u8]) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    a.extend_from_slice(body);
    a
}

/// Reads until `buf` holds a whole head; its length, or `None` at a close or timeout.
fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if !read_more(conn, buf) {
            return None;
        }
    }
}

/// Reads until `buf` holds at least `len` bytes; `false` at a close or timeout.
fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> bool {
    while buf.len() < len {
        if !read_more(conn, buf) {
            return false;
        }
    }
    true
}

/// One read appended to `buf`; `false` at a close, an error or the read timeout.
fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        return match conn.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => false,
        };
    }
}

/// The `Content-Length` of a lowercased head, if it has one.
fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
}
