//! All token arithmetic: the listener has a reserved token, every other socket's token is its
//! slab key plus one. A token whose key is no longer (or not yet) in the slab is skipped.

use mio::Token;

/// The listening socket.
pub const LISTENER: Token = Token(0);

/// What an event's token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The listening socket.
    Listener,
    /// A connection, by slab key.
    Conn(usize),
}

/// The token to register the connection at slab key `key` with.
pub fn of(key: usize) -> Token {
    Token(key.wrapping_add(1))
}

/// What `token` names.
pub fn source(token: Token) -> Source {
    match token.0.checked_sub(1) {
        None => Source::Listener,
        Some(key) => Source::Conn(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(source(LISTENER), Source::Listener);
        for key in [0, 1, 77, usize::MAX - 1] {
            assert_eq!(source(of(key)), Source::Conn(key));
        }
    }
}
