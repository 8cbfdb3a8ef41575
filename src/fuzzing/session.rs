//! The whole proxy driven over loopback sockets, in this process: one fuzz input is one client
//! connection's bytes and the bytes a scripted backend answers with. A session owns its mio
//! sockets, so it cannot be driven without them; real sockets on 127.0.0.1 are the next best
//! thing, and they reach every phase (head, exchange, retry, relay, tunnel, closing).
//!
//! # Input
//!
//! `[flags] client bytes [SEPARATOR script]`: the first byte picks how each side behaves
//! ([`Flags`]), the client bytes are written to the proxy, and every connection the proxy
//! opens to the scripted backend is answered with the script. Without a separator the script
//! is empty (a backend that closes without a word).
//!
//! # What runs
//!
//! On the first call, in background threads: the scripted backend (`backend`) and the proxy
//! itself (`rr_proxy::proxy::run`, one worker, short timeouts, small buffers so that limits are
//! crossed), in front of the backend and of a port that refuses connections. Inputs of odd
//! length go to a second such pair whose relay buffers are larger than the head buffers.
//! Each call then connects one client, writes, half-closes when its flags say, and reads until
//! the proxy closes or resets. Before the next input, the backend's connections are ended, so the
//! proxy's pool is empty again and an input means the same alone as in a run.
//!
//! # Invariants (a panic is the fuzzer's signal)
//!
//! - The proxy thread is alive before and after every input.
//! - The proxy answers or closes in time: no read waits [`SILENCE`], and the whole exchange
//!   ends well within a bound that grows with the number of requests.
//! - What the client receives is a well-formed sequence of answers to its requests (see
//!   `check`).
//!
//! `fuzz/proxy_session.dict` holds tokens that help the fuzzer build requests and answers.
//!
//! The process must not die of SIGPIPE when the proxy writes to a peer that reset: Rust
//! binaries ignore it before `main`, a libFuzzer binary has no Rust `main`, so its target calls
//! [`survive_sigpipe`] first.

mod backend;
mod check;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::proxy::control::Stop;
use crate::proxy::{self, config, Listeners};
use backend::Backend;

/// Splits the client's bytes from the backend's script: bytes no HTTP message needs, short
/// enough for mutations to keep it whole.
pub const SEPARATOR: &[u8] = b"\x00\xff\x00";

/// The proxy's head cap: small, so heads cross it (431, 414, 502) and a head outgrowing the
/// first buffer moves into a head-sized one.
const MAX_HEAD: usize = 2048;
/// The relay buffer of the first proxy, the smallest allowed: bodies outgrow it and move in
/// pieces.
const BUFFER_SIZE: usize = 1024;
/// The relay buffer of the second proxy, which odd-length inputs go to: larger than the 4 KiB
/// head buffers, so small answers and bodies move between the two sizes.
const BUFFER_SIZE_LARGE: usize = 8192;

/// Longest the client waits for one byte or the close: far above every proxy timeout (at most
/// 200 ms) and the backend's longest wait, so only a proxy that stopped answering reaches it,
/// even on a loaded machine.
pub const SILENCE: Duration = Duration::from_secs(5);
/// The bound on a whole exchange is this plus [`PER_REQUEST`] for each request sent: a
/// proxy that keeps trickling bytes forever is a hang too.
const TOTAL_BASE: Duration = Duration::from_secs(20);
/// A request may legitimately cost a backend's wait for the next request on a kept-open
/// connection (50 ms) and a retry; four times that.
const PER_REQUEST: Duration = Duration::from_millis(200);
/// With [`Flags::HOLD`], the client half-closes after this long without a byte, if its
/// requests have not all been answered by then.
const QUIET: Duration = Duration::from_millis(20);
/// Between the pieces of a split write, so the proxy reads them apart.
const PAUSE: Duration = Duration::from_millis(1);
/// The most the client keeps of what it receives; it reads on past it, unchecked.
const KEEP: usize = 16 << 20;

/// How each side behaves, from the input's first byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// The client writes in three pieces: up to its first head's end, then the rest in halves.
    pub const CLIENT_PIECES: u8 = 1;
    /// The client half-closes only once every request is answered (or after `QUIET`):
    /// pipelined requests are served instead of cut short by the client's end.
    pub const HOLD: u8 = 2;
    /// The backend writes its script in two pieces, split after its first head.
    pub const SCRIPT_PIECES: u8 = 4;
    /// The backend writes before reading anything: an answer racing the request.
    pub const SCRIPT_FIRST: u8 = 8;
    /// The backend answers every read with the script and keeps the connection open until
    /// quiet, so the proxy may pool and reuse it.
    pub const KEEP_OPEN: u8 = 16;
    /// The backend ends with a reset (SO_LINGER 0) rather than a half-close.
    pub const RESET: u8 = 32;
    /// Both top bits: the client never half-closes, so the proxy's own head and idle
    /// timeouts end the connection (408, or a silent close).
    pub const WAIT: u8 = 0xc0;

    fn has(self, bit: u8) -> bool {
        self.0 & bit == bit
    }
}

/// One input, taken apart.
struct Case<'d> {
    /// How the client and the backend behave.
    flags: Flags,
    /// What the client writes to the proxy.
    client: &'d [u8],
    /// What every backend connection answers with.
    script: &'d [u8],
}

impl Case<'_> {
    fn parse(data: &[u8]) -> Case<'_> {
        let (flags, rest) = match data {
            [f, rest @ ..] => (Flags(*f), rest),
            [] => (Flags::default(), data),
        };
        let at = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR);
        let (client, script) = match at {
            Some(i) => (&rest[..i], &rest[i + SEPARATOR.len()..]),
            None => (rest, &[][..]),
        };
        Case {
            flags,
            client,
            script,
        }
    }
}

/// The proxy and the backend, started once per process.
struct Rig {
    /// Where the proxy listens.
    proxy: SocketAddr,
    /// The proxy's thread, taken out once it is found ended, to say how it ended.
    thread: Mutex<Option<JoinHandle<io::Result<Stop>>>>,
    /// The scripted backend in front of which the proxy runs.
    backend: Backend,
}

static RIG: OnceLock<Rig> = OnceLock::new();
static RIG_LARGE: OnceLock<Rig> = OnceLock::new();

/// Keeps SIGPIPE from killing the process: it is only counted. Call once, before fuzzing.
pub fn survive_sigpipe() {
    let seen = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGPIPE, seen) {
        panic!("harness broken: cannot catch SIGPIPE: {e}");
    }
}

/// Runs one input through the proxy and checks what the client got back.
pub fn proxy_session(data: &[u8]) {
    // Mutations change lengths freely, so both proxies see every kind of input.
    let rig = if data.len().is_multiple_of(2) {
        RIG.get_or_init(|| Rig::start(BUFFER_SIZE))
    } else {
        RIG_LARGE.get_or_init(|| Rig::start(BUFFER_SIZE_LARGE))
    };
    rig.check_alive();
    let case = Case::parse(data);
    let asked = check::requests(case.client, MAX_HEAD);
    rig.backend.set_script(case.script, case.flags);
    let got = talk(rig, &case, &asked);
    rig.check_alive();
    check::answers(&asked, &got, &rig.backend.name());
    rig.backend.settle();
}

impl Rig {
    fn start(buffer_size: usize) -> Rig {
        let backend = Backend::start();
        let refused = backend::refusing_port();
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--backends",
            &format!("{},{refused}", backend.name()),
            "--health-interval",
            "0s",
            "--eject-after",
            "0",
            "--connect-timeout",
            "200ms",
            "--head-timeout",
            "100ms",
            "--backend-timeout",
            "200ms",
            "--idle-timeout",
            "100ms",
            "--max-head",
            &MAX_HEAD.to_string(),
            "--buffer-size",
            &buffer_size.to_string(),
        ];
        let cfg = match config::from_args(args.iter().map(|s| s.to_string()), None) {
            Ok(config::Command::Run(cfg)) => *cfg,
            Ok(config::Command::Help) => panic!("harness broken: the flags asked for help"),
            Err(e) => panic!("harness broken: config: {}", e.0),
        };
        let listeners = Listeners::bind(&cfg)
            .unwrap_or_else(|e| panic!("harness broken: cannot listen on {e}"));
        let proxy = listeners
            .traffic
            .local_addr()
            .unwrap_or_else(|e| panic!("harness broken: proxy address: {e}"));
        let thread = thread::Builder::new()
            .name("proxy".into())
            .spawn(move || proxy::run(listeners, cfg))
            .unwrap_or_else(|e| panic!("harness broken: cannot start the proxy thread: {e}"));
        Rig {
            proxy,
            thread: Mutex::new(Some(thread)),
            backend,
        }
    }

    /// Panics, saying how, if the proxy thread has ended: a panic there, or `run` returning.
    fn check_alive(&self) {
        let mut slot = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        let ended = match slot.as_ref() {
            Some(t) => t.is_finished(),
            None => true,
        };
        if !ended {
            return;
        }
        let how = match slot.take().map(JoinHandle::join) {
            Some(Ok(Ok(stop))) => format!("run returned {stop:?}"),
            Some(Ok(Err(e))) => format!("run failed: {e}"),
            Some(Err(_)) => "it panicked".to_string(),
            None => "seen earlier".to_string(),
        };
        panic!("the proxy thread stopped: {how}");
    }
}

/// How the proxy ended the client's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// An orderly end of stream.
    Closed,
    /// A reset, or another error that ends the stream.
    Reset,
}

/// What the client got back.
#[derive(Debug)]
pub struct Received {
    /// The bytes, up to `KEEP`; the checks look at those.
    pub bytes: Vec<u8>,
    /// How the stream ended.
    pub ending: Ending,
}

/// One client connection: connect, write, then read to the end.
fn talk(rig: &Rig, case: &Case<'_>, asked: &[check::Asked]) -> Received {
    let mut sock = match TcpStream::connect_timeout(&rig.proxy, SILENCE) {
        Ok(s) => s,
        Err(e) => {
            rig.check_alive();
            panic!("hang: the proxy did not accept a connection within {SILENCE:?}: {e}");
        }
    };
    let _ = sock.set_nodelay(true);
    if let Err(e) = sock.set_write_timeout(Some(SILENCE)) {
        panic!("harness broken: set_write_timeout: {e}");
    }
    write_client(&mut sock, case);
    read_to_end(&mut sock, case.flags, asked)
}

/// Reads until the proxy closes or resets, half-closing as the flags say: at once, once every
/// request is answered or the proxy goes quiet ([`Flags::HOLD`]), or never ([`Flags::WAIT`]).
/// Panics on a hang: a read that waits [`SILENCE`], or an exchange past its bound.
fn read_to_end(sock: &mut TcpStream, flags: Flags, asked: &[check::Asked]) -> Received {
    let started = Instant::now();
    let limit = TOTAL_BASE + PER_REQUEST * u32::try_from(asked.len()).unwrap_or(u32::MAX);
    // Whether the client's sending side is settled: half-closed, or never to be (WAIT).
    let mut settled = flags.has(Flags::WAIT);
    if !flags.has(Flags::HOLD) && !settled {
        let _ = sock.shutdown(Shutdown::Write);
        settled = true;
    }
    let mut got = Received {
        bytes: Vec::new(),
        ending: Ending::Closed,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    loop {
        if !settled && check::all_answered(asked, &got.bytes) {
            let _ = sock.shutdown(Shutdown::Write);
            settled = true;
        }
        let wait = if settled { SILENCE } else { QUIET };
        if let Err(e) = sock.set_read_timeout(Some(wait)) {
            panic!("harness broken: set_read_timeout: {e}");
        }
        match sock.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                last = Instant::now();
                let room = KEEP - got.bytes.len();
                got.bytes.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if is_timeout(&e) && !settled => {
                let _ = sock.shutdown(Shutdown::Write);
                settled = true;
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                got.ending = Ending::Reset;
                return got;
            }
        }
        let silent = last.elapsed();
        assert!(
            silent < SILENCE,
            "hang: no byte and no close from the proxy for {silent:?} ({} bytes so far)",
            got.bytes.len()
        );
        let spent = started.elapsed();
        assert!(
            spent < limit,
            "hang: the connection is still open after {spent:?} ({} bytes so far)",
            got.bytes.len()
        );
    }
}

/// Writes the client's bytes, in pieces when the flags say. A write the proxy refuses (it
/// answered and closed, or reset) ends the writing, not the exchange.
fn write_client(sock: &mut TcpStream, case: &Case<'_>) {
    let bytes = case.client;
    let cuts = if case.flags.has(Flags::CLIENT_PIECES) {
        let first = check::head_end(bytes).unwrap_or(bytes.len() / 3);
        vec![first, first + (bytes.len() - first) / 2, bytes.len()]
    } else {
        vec![bytes.len()]
    };
    let mut from = 0;
    for (i, &to) in cuts.iter().enumerate() {
        if i > 0 {
            thread::sleep(PAUSE);
        }
        match sock.write_all(&bytes[from..to]) {
            Ok(()) => from = to,
            Err(e) if is_timeout(&e) => panic!(
                "hang: the proxy took none of {} client bytes for {SILENCE:?}",
                to - from
            ),
            Err(_) => return,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_split_at_the_separator() {
        let case = Case::parse(b"\x05GET\x00\xff\x00HTTP");
        assert_eq!(case.flags, Flags(5));
        assert_eq!((case.client, case.script), (&b"GET"[..], &b"HTTP"[..]));
        let case = Case::parse(b"\x00abc");
        assert_eq!((case.client, case.script), (&b"abc"[..], &b""[..]));
        let case = Case::parse(b"");
        assert_eq!((case.client, case.script), (&b""[..], &b""[..]));
    }

    #[test]
    fn wait_is_both_top_bits() {
        assert!(Flags(0xc0).has(Flags::WAIT));
        assert!(!Flags(0x80).has(Flags::WAIT));
    }
}
