//! How a session ends or stops being HTTP: the raw two-way tunnel (after a 101, and for every
//! connection in TCP mode) with half-close passed on, and the polite close that lets the last
//! answer arrive before the connection goes.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::session::{abort, Ending, Phase, Session, Step};
use crate::net::io::{self, Io};

/// After a 101: bytes both ways until both sides have finished sending.
pub(super) fn tunnel(s: &mut Session, now: Instant, idle: Duration) -> Step {
    let Phase::Tunnel(up) = &mut s.phase else {
        return Step::Idle;
    };
    let mut step = Step::Idle;
    while up.writable && !s.inbuf.is_empty() {
        match io::write(&mut up.sock, s.inbuf.data()) {
            Io::Progress(n) => {
                s.inbuf.consume(n);
                s.ledger.bytes_in += n as u64;
                step = Step::Progress;
            }
            Io::WouldBlock => up.writable = false,
            Io::Closed | Io::Failed(_) => return abort(s),
        }
    }
    if up.readable && !up.eof && !up.inbuf.is_full() {
        let room = up.inbuf.space().len();
        match io::read(&mut up.sock, up.inbuf.space()) {
            Io::Progress(n) => {
                up.inbuf.commit(n);
                up.readable = io::still_readable(n, room, up.hup);
                step = Step::Progress;
            }
            Io::WouldBlock => up.readable = false,
            Io::Closed => {
                up.eof = true;
                step = Step::Progress;
            }
            // A backend's reset reaches the client as one: an orderly end would make a cut
            // stream look finished.
            Io::Failed(_) => return abort(s),
        }
    }
    if step == Step::Progress {
        s.deadline = now + idle;
    }
    // Half-close passes on: each side's end of sending becomes a shutdown of the other's write.
    let client_done = s.eof && s.inbuf.is_empty();
    let backend_done = up.eof && up.inbuf.is_empty();
    if client_done && !up.write_shut {
        up.write_shut = true;
        let _ = up.sock.shutdown(Shutdown::Write);
    }
    if backend_done && !s.write_shut {
        s.write_shut = true;
        let _ = s.sock.shutdown(Shutdown::Write);
    }
    if client_done && backend_done {
        return Step::Close;
    }
    step
}

/// Once the last answer is out: close, or half-close and wait (bounded by the deadline) for
/// the client to hang up, so unread request bytes do not turn the close into a reset that
/// destroys the answer.
pub(super) fn closing(s: &mut Session) -> Step {
    let Phase::Closing(ending) = &mut s.phase else {
        return Step::Idle;
    };
    match *ending {
        Ending::Flush { .. } if !s.out.is_empty() => Step::Idle,
        Ending::Flush { linger: false } => Step::Close,
        Ending::Flush { linger: true } => {
            *ending = Ending::Lingering;
            s.inbuf.clear();
            if s.sock.shutdown(Shutdown::Write).is_err() {
                return Step::Close;
            }
            Step::Progress
        }
        Ending::Lingering if s.eof => Step::Close,
        Ending::Lingering => Step::Idle,
    }
}
