//! Connections to backends: a non-blocking connect, the check that it finished, and the pool
//! of idle keep-alive connections each backend keeps for reuse.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::net::buffer::Buffer;

/// Where a backend connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The handshake is in progress.
    Connecting,
    /// Connected and usable.
    Open,
}

/// One connection to a backend.
#[derive(Debug)]
pub struct Upstream {
    /// The socket, registered under this connection's own slab key.
    pub sock: TcpStream,
    /// The slab key its token is made from.
    pub key: usize,
    /// Index of the backend in the config.
    pub backend: usize,
    /// Connecting or open.
    pub link: Link,
    /// Came from the pool: it may have been closed by the backend while idle, so a failure
    /// before any response byte is retried rather than reported.
    pub reused: bool,
    /// Readable since the last `WouldBlock`.
    pub readable: bool,
    /// Writable since the last `WouldBlock`.
    pub writable: bool,
    /// The backend hung up (seen in an event): its end of stream is waiting to be read.
    pub hup: bool,
    /// The backend closed its side.
    pub eof: bool,
    /// The backend's kernel reset the connection: whatever it was sending may be cut short.
    pub reset: bool,
    /// The reset answered bytes that reached a socket the backend had already closed: its
    /// application cannot have read them (see [`closed_first`]).
    pub closed_first: bool,
    /// The proxy shut this connection's sending side (a tunnel passing a half-close on).
    pub write_shut: bool,
    /// Bytes read from the backend: a response head, then body bytes waiting for the client.
    pub inbuf: Buffer,
    /// Sessions whose requests went out on this connection behind the one it serves (slab
    /// keys as `u32`, so an idle pooled connection stays small).
    pub followers: Followers,
    /// Answers to requests nobody waits for any more may still arrive: never reuse it.
    pub dirty: bool,
}

/// Most requests one backend connection carries at once (the ceiling of `--pipeline`).
pub const MAX_PIPELINE: usize = 16;

/// The sessions queued on a backend connection, oldest first: a fixed ring, so queueing
/// costs no allocation.
#[derive(Debug, Default)]
pub struct Followers {
    keys: [u32; MAX_PIPELINE],
    start: u8,
    len: u8,
}

impl Followers {
    /// Queues a session; false when the ring is full (or the key is beyond any slab).
    pub fn push(&mut self, key: usize) -> bool {
        let (Ok(key), len) = (u32::try_from(key), usize::from(self.len)) else {
            return false;
        };
        if len == MAX_PIPELINE {
            return false;
        }
        self.keys[(usize::from(self.start) + len) % MAX_PIPELINE] = key;
        self.len += 1;
        true
    }

    /// The oldest queued session.
    pub fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let key = self.keys[usize::from(self.start)];
        self.start = ((usize::from(self.start) + 1) % MAX_PIPELINE) as u8;
        self.len -= 1;
        Some(key as usize)
    }

    /// None are queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Starts a non-blocking connect. An error here (no route, no ports) fails this backend at
/// once; a refused or slow connect shows up later as an event or a timeout.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    Ok(sock)
}

/// Whether a failed connect or accept is the proxy's own shortage (no descriptor or buffer
/// left here), which says nothing about the backend or the client.
pub fn is_local_shortage(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// After a writable event on a connecting socket, tells whether the handshake finished
/// (`Ok(true)`), is still going (`Ok(false)`, a spurious wake-up), or failed. This is the check
/// mio's `TcpStream::connect` documentation asks for.
pub fn finish_connect(sock: &TcpStream) -> io::Result<bool> {
    if let Some(e) = sock.take_error()? {
        return Err(e);
    }
    match sock.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) => Ok(false),
        Err(e) => Err(e),
    }
}

/// EINPROGRESS on Linux; named so the check above reads as the documentation says.
fn libc_einprogress() -> i32 {
    115
}

/// Whether an idle pooled connection is still open and quiet, asked of the kernel without
/// waiting: a backend that closed it since the loop last looked has queued an end of stream,
/// and bytes nobody asked for make it unusable too.
pub fn still_open(sock: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match sock.peek(&mut byte) {
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        Ok(_) => false,
    }
}

/// Whether a failed read or write says the peer's kernel reset the connection.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// Whether a reset followed the peer's own close, so the bytes it answered met a socket whose
/// application had already let go of it. Linux reports a reset that arrives after the peer's
/// FIN as `EPIPE` and one out of the blue as `ECONNRESET` (`tcp_reset`). Only the first proves
/// the request was not read: an application can read a request, act on it, and then abort
/// (`SO_LINGER` 0, a crash with bytes unread), which is the second.
pub fn closed_first(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// The idle connections of one backend, most recently used last, so the freshest is reused
/// first and the stalest are the ones the backend closes.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Vec<usize>,
}

impl Pool {
    /// Takes the most recently parked connection.
    pub fn take(&mut self) -> Option<usize> {
        self.idle.pop()
    }

    /// Takes the connection parked longest ago: the one to give up when descriptors run
    /// short, being the likeliest to be closed by the backend anyway.
    pub fn take_oldest(&mut self) -> Option<usize> {
        (!self.idle.is_empty()).then(|| self.idle.remove(0))
    }

    /// Parks a connection, unless `cap` are parked already (the caller closes it then).
    pub fn park(&mut self, key: usize, cap: usize) -> bool {
        if self.idle.len() >= cap {
            return false;
        }
        self.idle.push(key);
        true
    }

    /// Forgets a connection that closed while parked.
    pub fn remove(&mut self, key: usize) {
        self.idle.retain(|&k| k != key);
    }

    /// How many are parked.
    pub fn len(&self) -> usize {
        self.idle.len()
    }

    /// None are parked.
    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_bounded_and_lifo() {
        let mut p = Pool::default();
        assert!(p.park(1, 2));
        assert!(p.park(2, 2));
        assert!(!p.park(3, 2));
        p.remove(1);
        assert_eq!(p.len(), 1);
        assert_eq!(p.take(), Some(2));
        assert_eq!(p.take(), None);
    }

    #[test]
    fn followers_come_out_in_order_and_are_bounded() {
        let mut f = Followers::default();
        for round in 0..3 {
            for k in 0..MAX_PIPELINE {
                assert!(f.push(round * 100 + k));
            }
            assert!(!f.push(999), "a full ring refuses");
            for k in 0..MAX_PIPELINE {
                assert_eq!(f.pop(), Some(round * 100 + k));
            }
            assert!(f.is_empty());
            assert_eq!(f.pop(), None);
            // Wrap the ring's start around before the next round.
            assert!(f.push(1));
            assert_eq!(f.pop(), Some(1));
        }
    }
}
