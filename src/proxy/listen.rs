//! The sockets the proxy listens on: the traffic address, bound with SO_REUSEPORT so several
//! workers (threads, each with its own event loop) can accept on the same port, and the
//! optional admin address.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

use super::config::Config;
use crate::net::limit::BACKLOG;

/// Bound, listening sockets for one worker.
#[derive(Debug)]
pub struct Listeners {
    /// Where clients connect.
    pub traffic: TcpListener,
    /// Where `/metrics` and `/status` are served (worker 0 only).
    pub admin: Option<TcpListener>,
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
        let traffic = bind_shared(cfg.listen).map_err(named(cfg.listen))?;
        let admin = match cfg.admin {
            Some(addr) => Some(TcpListener::bind(addr).map_err(named(addr))?),
            None => None,
        };
        Ok(Listeners { traffic, admin })
    }

    /// Another worker's listeners: the same traffic port (the first worker's actual one, so
    /// port 0 works), no admin.
    pub fn another(&self) -> io::Result<Listeners> {
        Ok(Listeners {
            traffic: bind_shared(self.traffic.local_addr()?)?,
            admin: None,
        })
    }
}

impl From<TcpListener> for Listeners {
    /// A traffic listener alone, bound by the caller.
    fn from(traffic: TcpListener) -> Listeners {
        Listeners {
            traffic,
            admin: None,
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

/// A listening socket with SO_REUSEADDR and SO_REUSEPORT.
fn bind_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_listeners_share_a_port() {
        let a = bind_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_shared(addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // Another program's check finds the port taken, though it is shared among workers.
        assert_eq!(
            bind_plain(addr).map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::AddrInUse)
        );
    }
}
