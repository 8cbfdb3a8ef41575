//! All token arithmetic: the listener, the signal pipes and the admin listener have reserved
//! tokens; every other socket's token is its slab key plus `RESERVED`. A token whose key is no
//! longer (or not yet) in the slab is skipped.

use mio::Token;

/// The listening socket.
pub const LISTENER: Token = Token(0);
/// The pipe SIGTERM and SIGINT write to.
pub const STOP: Token = Token(1);
/// The pipe SIGHUP writes to.
pub const RELOAD: Token = Token(2);
/// The admin listener (`--admin`).
pub const ADMIN: Token = Token(3);
/// Tokens below this are reserved.
const RESERVED: usize = 8;

/// What an event's token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The listening socket.
    Listener,
    /// A stop signal arrived.
    Stop,
    /// A reload signal arrived.
    Reload,
    /// The admin listener.
    Admin,
    /// A reserved token nothing uses.
    Unused,
    /// A connection, by slab key.
    Conn(usize),
}

/// The token to register the connection at slab key `key` with.
pub fn of(key: usize) -> Token {
    Token(key.wrapping_add(RESERVED))
}

/// What `token` names.
pub fn source(token: Token) -> Source {
    match token {
        LISTENER => Source::Listener,
        STOP => Source::Stop,
        RELOAD => Source::Reload,
        ADMIN => Source::Admin,
        Token(t) => match t.checked_sub(RESERVED) {
            Some(key) => Source::Conn(key),
            None => Source::Unused,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(source(LISTENER), Source::Listener);
        assert_eq!(source(STOP), Source::Stop);
        assert_eq!(source(Token(5)), Source::Unused);
        for key in [0, 1, 77, usize::MAX - RESERVED] {
            assert_eq!(source(of(key)), Source::Conn(key));
        }
    }
}
