//! Bytes a program writes to a peer itself (canned answers, rewritten heads), kept in order
//! until the socket takes them.

/// Bytes the proxy writes to the client itself: canned answers, `100 Continue`, rewritten
/// response heads and de-chunked data. A `Vec` so that a head of any allowed size fits; what
/// is put in is bounded by the callers (one head, or at most a buffer of data).
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    pos: usize,
}

impl Outbox {
    /// Bytes waiting.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// How many bytes are waiting.
    pub fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Drops `n` written bytes.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// The vector to append to.
    pub fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The storage, for reuse.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}
