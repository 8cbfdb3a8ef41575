//! The scripted backend: a blocking listener on 127.0.0.1 with a thread per connection, each
//! answering with the current input's script. Every connection is bounded in time (each wait
//! has a deadline) and in number ([`MAX_LIVE`]), so a run cannot pile them up.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use slab::Slab;
use socket2::{Domain, SockRef, Socket, Type};

use super::{check, Flags, PAUSE};

/// Connections served at once; more are closed at accept. Far above what one input opens
/// (a request tries two backends at most, and they run one after another).
const MAX_LIVE: usize = 64;
/// How long a connection waits for the proxy's next bytes: for the request before answering
/// (it comes at once), and for another request on a kept-open connection.
const READ_WAIT: Duration = Duration::from_millis(50);
/// How long a write may block on a proxy that does not read.
const WRITE_WAIT: Duration = Duration::from_secs(1);
/// How long a connection that said everything reads on before closing.
const DRAIN_WAIT: Duration = Duration::from_millis(200);
/// Answers one kept-open connection gives at most.
const KEEP_OPEN_ROUNDS: usize = 8;
/// The longest [`Backend::settle`] waits for the connections to end; past it the next input
/// starts anyway (each connection ends by its own deadlines within about a second).
const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// What the current input has the backend say.
#[derive(Clone, Default)]
struct Script {
    bytes: Arc<[u8]>,
    flags: Flags,
}

/// The connections being served: a clone of each socket, so [`Backend::settle`] can end them.
#[derive(Default)]
struct Live {
    conns: Mutex<Slab<TcpStream>>,
    ended: Condvar,
}

/// The backend, shared by the accept thread, the connection threads and the harness.
pub struct Backend {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    live: Arc<Live>,
}

/// A port on 127.0.0.1 that refuses connections: bound and never listened on, and held for
/// the life of the process so nothing else can take it (nor can an outgoing connection use it
/// as its own port and connect to itself).
pub fn refusing_port() -> SocketAddr {
    static HELD: Mutex<Vec<Socket>> = Mutex::new(Vec::new());
    let bind = || -> io::Result<(Socket, SocketAddr)> {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let addr = sock.local_addr()?.as_socket();
        Ok((
            sock,
            addr.ok_or_else(|| io::Error::other("not an IP address"))?,
        ))
    };
    let (sock, addr) = bind().unwrap_or_else(|e| panic!("harness broken: refusing port: {e}"));
    lock(&HELD).push(sock);
    addr
}

impl Backend {
    /// Listens on an OS-chosen port of 127.0.0.1 and serves from a background thread.
    pub fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("harness broken: backend listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("harness broken: backend address: {e}"));
        let backend = Backend {
            addr,
            script: Arc::default(),
            live: Arc::default(),
        };
        let (script, live) = (Arc::clone(&backend.script), Arc::clone(&backend.live));
        thread::Builder::new()
            .name("backend".into())
            .spawn(move || accept(&listener, &script, &live))
            .unwrap_or_else(|e| panic!("harness broken: cannot start the backend: {e}"));
        backend
    }

    /// Its name in the proxy's `--backends`, and so in `X-Backend-Server`.
    pub fn name(&self) -> String {
        self.addr.to_string()
    }

    /// What every connection says from now on.
    pub fn set_script(&self, bytes: &[u8], flags: Flags) {
        *lock(&self.script) = Script {
            bytes: bytes.into(),
            flags,
        };
    }

    /// Ends what is left of the last input's connections: each is half-closed, so a proxy that
    /// pooled it closes it, and the thread serving it sees that close and ends. Waits for them
    /// (up to [`SETTLE_WAIT`]).
    pub fn settle(&self) {
        let deadline = Instant::now() + SETTLE_WAIT;
        let mut conns = lock(&self.live.conns);
        for (_, sock) in conns.iter() {
            let _ = sock.shutdown(Shutdown::Write);
        }
        while !conns.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            conns = match self.live.ended.wait_timeout(conns, left) {
                Ok((c, _)) => c,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept(listener: &TcpListener, script: &Arc<Mutex<Script>>, live: &Arc<Live>) {
    loop {
        let Ok((sock, _)) = listener.accept() else {
            thread::sleep(PAUSE); // out of descriptors, say: try again soon
            continue;
        };
        let key = {
            let mut conns = lock(&live.conns);
            let Ok(clone) = sock.try_clone() else {
                continue;
            };
            if conns.len() >= MAX_LIVE {
                continue; // closed at once
            }
            conns.insert(clone)
        };
        let (mine, ours) = (Arc::clone(script), Arc::clone(live));
        let spawned = thread::Builder::new()
            .name("backend-conn".into())
            .spawn(move || {
                serve(sock, &mine);
                let mut conns = lock(&ours.conns);
                conns.try_remove(key);
                ours.ended.notify_all();
            });
        if spawned.is_err() {
            lock(&live.conns).try_remove(key);
        }
    }
}

/// One connection: read the request (or not), answer with the script (once, or for every
/// read while kept open), then end as the flags say.
fn serve(mut sock: TcpStream, script: &Mutex<Script>) {
    let flags = lock(script).flags;
    let _ = sock.set_nodelay(true);
    if sock.set_read_timeout(Some(READ_WAIT)).is_err()
        || sock.set_write_timeout(Some(WRITE_WAIT)).is_err()
    {
        return;
    }
    let rounds = if flags.has(Flags::KEEP_OPEN) {
        KEEP_OPEN_ROUNDS
    } else {
        1
    };
    let mut buf = [0u8; 4096];
    for round in 0..rounds {
        let first_unasked = round == 0 && flags.has(Flags::SCRIPT_FIRST);
        if !first_unasked && !matches!(sock.read(&mut buf), Ok(n) if n > 0) {
            break;
        }
        // The current script, not the one at accept: a connection pooled by the proxy and
        // reused says what this input has it say.
        let now = lock(script).clone();
        if write_script(&mut sock, &now.bytes, now.flags).is_err() {
            return;
        }
    }
    if flags.has(Flags::RESET) {
        let _ = SockRef::from(&sock).set_linger(Some(Duration::ZERO));
        return;
    }
    let _ = sock.shutdown(Shutdown::Write);
    let deadline = Instant::now() + DRAIN_WAIT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes the script, in two pieces split after its first head when the flags say.
fn write_script(sock: &mut TcpStream, bytes: &[u8], flags: Flags) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !flags.has(Flags::SCRIPT_PIECES) {
        return sock.write_all(bytes);
    }
    let cut = check::head_end(bytes).unwrap_or(bytes.len() / 2);
    sock.write_all(&bytes[..cut])?;
    thread::sleep(PAUSE);
    sock.write_all(&bytes[cut..])
}
