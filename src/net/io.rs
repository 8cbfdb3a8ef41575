//! The one place every socket read and write goes through, so that `Interrupted` is retried and
//! every caller sees the same four outcomes.

use std::io::{self, Read, Write};

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
    loop {
        return match r.read(buf) {
            Ok(0) => Io::Closed,
            Ok(n) => Io::Progress(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::WouldBlock,
            Err(e) => Io::Failed(e),
        };
    }
}

/// Writes once from `buf`, retrying `Interrupted`. `buf` must not be empty.
pub fn write(w: &mut impl Write, buf: &[u8]) -> Io {
    loop {
        return match w.write(buf) {
            Ok(0) => Io::Closed,
            Ok(n) => Io::Progress(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::WouldBlock,
            Err(e) => Io::Failed(e),
        };
    }
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
    fn write_outcomes() {
        let mut out = Vec::new();
        assert!(matches!(write(&mut out, b"abc"), Io::Progress(3)));
        let mut full: &mut [u8] = &mut [];
        assert!(matches!(write(&mut full, b"abc"), Io::Closed));
    }
}
