//! Kernel limits both programs raise: open descriptors (one per connection) and the queue of
//! connections waiting to be accepted.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// How many connections may wait to be accepted: the default of 128 (what
/// `TcpListener::bind` asks for) overflows under a burst of a few hundred clients, and a
/// client whose SYN is dropped waits a second before it tries again.
pub const BACKLOG: i32 = 1024;

/// A listening socket on `addr` with SO_REUSEADDR and a [`BACKLOG`]-deep accept queue.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Raises the process's soft limit on open files towards `wanted`, never past the hard limit,
/// and returns the soft limit then in force (`None` when it cannot be read or is unlimited).
/// A shell's soft limit (often 1024) is a default for interactive programs; a server that
/// holds thousands of connections raises it, as HAProxy and Go's runtime do, and only the
/// hard limit, which the operator set, bounds it.
pub fn raise_open_files(wanted: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let target = wanted.min(lim.rlim_max);
    if lim.rlim_cur != libc::RLIM_INFINITY && target > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        }
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_connections_waits_in_the_queue_until_accepted() {
        // The kernel caps every backlog at net.core.somaxconn (4096 since Linux 5.4).
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        if cap.is_some_and(|c| c < 300) {
            eprintln!("skipped: net.core.somaxconn is {cap:?}, below the 300 this test queues");
            return;
        }
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        // Nothing accepts yet: every handshake completes in the queue. With a queue of 128
        // the 130th SYN is dropped and its connect times out.
        let held: Vec<TcpStream> = (0..300)
            .map(|n| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .unwrap_or_else(|e| panic!("connection {n}: {e}"))
            })
            .collect();
        assert_eq!(held.len(), 300);
        assert!(l.accept().is_ok());
    }

    #[test]
    fn asking_for_nothing_reads_the_limit_and_leaves_it() {
        let now = raise_open_files(0);
        assert!(now.is_some_and(|n| n > 0));
        assert_eq!(raise_open_files(0), now);
    }
}
