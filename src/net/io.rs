//! The one place every socket read and write goes through, so that `Interrupted` is retried and
//! every caller sees the same four outcomes.

use std::io::{self, IoSlice, Read, Write};

/// What one read or write did.
#[derive(Debug)]
pub enum Io {
    /// This many bytes moved (never zero).
    Progress(usize),
    /// Nothing can move until the socket is ready again.
    WouldBlock,
    /// The peer closed (a read of zero bytes), or a write could not take a byte.
    Closed,
    /// The socket failed.
    Failed(io::Error),
}

/// Reads once into `buf`, retrying `Interrupted`. `buf` must not be empty.
pub fn read(r: &mut impl Read, buf: &mut [u8]) -> Io {
    once(|| r.read(buf))
}

/// Writes once from `buf`, retrying `Interrupted`. `buf` must not be empty.
pub fn write(w: &mut impl Write, buf: &[u8]) -> Io {
    once(|| w.write(buf))
}

/// Writes `first` then `second` in one system call (`writev`), retrying `Interrupted`: a
/// response head and the body bytes after it leave together. One of them may be empty, not both.
pub fn write_pair(w: &mut impl Write, first: &[u8], second: &[u8]) -> Io {
    if second.is_empty() {
        return write(w, first);
    }
    if first.is_empty() {
        return write(w, second);
    }
    write_vectored(w, &[IoSlice::new(first), IoSlice::new(second)])
}

/// Writes the slices in order in one system call (`writev`), retrying `Interrupted`: several
/// request heads bound for one backend connection leave together. Not all may be empty.
pub fn write_vectored(w: &mut impl Write, bufs: &[IoSlice<'_>]) -> Io {
    once(|| w.write_vectored(bufs))
}

/// Runs one read or write, again after `Interrupted`, and sorts its outcome.
fn once(mut op: impl FnMut() -> io::Result<usize>) -> Io {
    loop {
        return match op() {
            Ok(0) => Io::Closed,
            Ok(n) => Io::Progress(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::WouldBlock,
            Err(e) => Io::Failed(e),
        };
    }
}

/// After a read of `got` bytes into room for `room`: whether the socket may still hold more.
/// A short read means the kernel had no more at that moment, and edge-triggered readiness
/// will say when more arrives, so asking again would only cost a system call that answers
/// `WouldBlock`. The exception is a peer that has hung up (`hup`): its end of stream is
/// already queued and no new edge will announce it, so the socket stays readable.
pub fn still_readable(got: usize, room: usize, hup: bool) -> bool {
    got == room || hup
}

/// Makes the coming close of `sock` a reset (`SO_LINGER` 0). For an answer cut short: an
/// orderly close could pass what arrived off as the whole of it, and whatever still waits in
/// the kernel for a peer that does not read is dropped at once instead of being kept.
pub fn reset_on_close(sock: &mio::net::TcpStream) {
    let _ = socket2::SockRef::from(sock).set_linger(Some(std::time::Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that is interrupted once, then yields its bytes, then would block.
    struct Flaky {
        calls: u32,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            match self.calls {
                1 => Err(io::ErrorKind::Interrupted.into()),
                2 => {
                    buf[0] = b'x';
                    Ok(1)
                }
                3 => Err(io::ErrorKind::WouldBlock.into()),
                4 => Ok(0),
                _ => Err(io::ErrorKind::ConnectionReset.into()),
            }
        }
    }

    #[test]
    fn read_outcomes() {
        let mut r = Flaky { calls: 0 };
        let mut buf = [0u8; 4];
        assert!(matches!(read(&mut r, &mut buf), Io::Progress(1)));
        assert!(matches!(read(&mut r, &mut buf), Io::WouldBlock));
        assert!(matches!(read(&mut r, &mut buf), Io::Closed));
        assert!(matches!(read(&mut r, &mut buf), Io::Failed(_)));
    }

    #[test]
    fn pairs_are_written_in_order() {
        let mut out = Vec::new();
        assert!(matches!(
            write_pair(&mut out, b"head ", b"body"),
            Io::Progress(9)
        ));
        assert!(matches!(write_pair(&mut out, b"", b"!"), Io::Progress(1)));
        assert_eq!(out, b"head body!");
        assert!(still_readable(4, 4, false));
        assert!(!still_readable(3, 4, false));
        assert!(still_readable(3, 4, true));
    }

    #[test]
    fn write_outcomes() {
        let mut out = Vec::new();
        assert!(matches!(write(&mut out, b"abc"), Io::Progress(3)));
        let mut full: &mut [u8] = &mut [];
        assert!(matches!(write(&mut full, b"abc"), Io::Closed));
    }
}
