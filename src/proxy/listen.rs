//! The sockets the proxy listens on: the traffic address, bound with SO_REUSEPORT so several
//! workers (threads, each with its own event loop) can accept on the same port, and the
//! optional admin address.
//!
//! In HTTP mode the traffic socket starts its connections with delayed ACKs (`TCP_QUICKACK`
//! off, set after `listen`, which would reset it, and inherited by each accepted socket): the
//! kernel then does not acknowledge a new client's first request on its own, and the answer
//! carries the ACK instead. That is one packet fewer for every client that opens a connection
//! per request, as HAProxy's default `tcp-smart-accept` does. Later segments are acknowledged
//! as the kernel sees fit. TCP mode keeps the default: the protocol behind it may wait for the
//! server to speak first.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

use super::config::{Config, Mode};
use crate::net::limit::BACKLOG;

/// Bound, listening sockets for one worker.
#[derive(Debug)]
pub struct Listeners {
    /// Where clients connect.
    pub traffic: TcpListener,
    /// Where `/metrics` and `/status` are served (worker 0 only).
    pub admin: Option<TcpListener>,
    /// Whether the traffic socket delays the ACK of a connection's first request (HTTP mode).
    delayed_ack: bool,
}

impl Listeners {
    /// Binds the traffic address and, if configured, the admin address. Errors name the
    /// address that failed.
    pub fn bind(cfg: &Config) -> io::Result<Listeners> {
        let named =
            |addr: SocketAddr| move |e: io::Error| io::Error::new(e.kind(), format!("{addr}: {e}"));
        // SO_REUSEPORT would let this share the port with another running proxy, which then
        // takes half its traffic unnoticed: the port must be free first.
        if cfg.listen.port() != 0 {
            drop(bind_plain(cfg.listen).map_err(named(cfg.listen))?);
        }
        let delayed_ack = cfg.mode == Mode::Http;
        let traffic = bind_shared(cfg.listen, delayed_ack).map_err(named(cfg.listen))?;
        let admin = match cfg.admin {
            Some(addr) => Some(TcpListener::bind(addr).map_err(named(addr))?),
            None => None,
        };
        Ok(Listeners {
            traffic,
            admin,
            delayed_ack,
        })
    }

    /// Another worker's listeners: the same traffic port (the first worker's actual one, so
    /// port 0 works), no admin.
    pub fn another(&self) -> io::Result<Listeners> {
        Ok(Listeners {
            traffic: bind_shared(self.traffic.local_addr()?, self.delayed_ack)?,
            admin: None,
            delayed_ack: self.delayed_ack,
        })
    }
}

impl From<TcpListener> for Listeners {
    /// A traffic listener alone, bound by the caller.
    fn from(traffic: TcpListener) -> Listeners {
        Listeners {
            traffic,
            admin: None,
            delayed_ack: false,
        }
    }
}

/// A socket bound (not listening) with SO_REUSEADDR only: it fails while anything listens on
/// `addr`, with SO_REUSEPORT or not.
fn bind_plain(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// A listening socket with SO_REUSEADDR and SO_REUSEPORT, and with `delayed_ack`, quick ACKs
/// off (see the module's text).
fn bind_shared(addr: SocketAddr, delayed_ack: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    if delayed_ack {
        socket.set_tcp_quickack(false)?;
    }
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_listeners_share_a_port() {
        let a = bind_shared("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_shared(addr, false).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // Another program's check finds the port taken, though it is shared among workers.
        assert_eq!(
            bind_plain(addr).map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::AddrInUse)
        );
    }

    #[test]
    fn http_connections_start_with_delayed_acks_and_tcp_ones_do_not() {
        for delayed_ack in [true, false] {
            let l = bind_shared("127.0.0.1:0".parse().unwrap(), delayed_ack).unwrap();
            let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (accepted, _) = l.accept().unwrap();
            // The kernel reports quick ACKs off while the socket is in its delayed-ACK mode.
            let quick = socket2::SockRef::from(&accepted).tcp_quickack().unwrap();
            assert_eq!(quick, !delayed_ack, "delayed_ack {delayed_ack}");
        }
    }
}
