//! The protocol side of a connection: buffered bytes in, requests found, answers decided and
//! queued. No socket is touched here; the I/O side in the parent module reads and writes.

use super::{Conn, Due, Pending, Persist, Phase, Shared, OUT_HIGH_WATER, REFUSED, RETAIN};
use crate::echo::reply::{self, Reply};
use crate::echo::request::{self, HeadStep};
use crate::http::framing::{BodyDecoder, BodyError, BodyKind};
use crate::http::head::find_head_end;
use crate::http::response::{is_head_request, CONTINUE};
use crate::net::buffer::Buffer;

impl Conn {
    /// Handles buffered input for as long as it moves the connection on.
    pub(super) fn process(&mut self, sh: &mut Shared<'_>) {
        loop {
            let moved = match self.phase {
                Phase::Head { .. } => self.on_head(sh),
                Phase::Body { .. } => self.on_body(sh),
                Phase::Lingering => {
                    self.input.clear();
                    if self.eof {
                        self.phase = Phase::Closed;
                    }
                    false
                }
                Phase::Delayed { .. } | Phase::Closing | Phase::Closed => false,
            };
            if !moved {
                return;
            }
        }
    }

    /// Looks for a whole head; true if the phase changed.
    fn on_head(&mut self, sh: &mut Shared<'_>) -> bool {
        let Phase::Head { scanned } = self.phase else {
            return false;
        };
        if self.out.len() - self.written > OUT_HIGH_WATER {
            return false;
        }
        let data = self.input.data();
        let max = sh.limits.max_head;
        // Parse only once the end is in sight, so a head that trickles in is scanned once.
        let whole = find_head_end(data, scanned).is_some() || data.len() >= max;
        let step = if whole {
            request::read_head(data, max)
        } else {
            HeadStep::Partial
        };
        match step {
            HeadStep::Partial if self.eof => self.phase = Phase::Closing,
            HeadStep::Partial => {
                self.phase = Phase::Head {
                    scanned: data.len(),
                };
                return false;
            }
            HeadStep::Bad(e) => self.refuse(e.status(), e.as_str(), sh),
            HeadStep::Ready(head) => {
                if matches!(head.body, BodyKind::Length(n) if n > sh.limits.max_body as u64) {
                    // Refused with the head still buffered, so the refusal knows its method.
                    self.refuse(413, "body larger than the limit", sh);
                    return true;
                }
                self.input.consume(head.head_len);
                if head.expect_continue {
                    self.out.extend_from_slice(CONTINUE);
                }
                self.body.clear();
                self.deadline = sh.now + sh.limits.timeout;
                self.phase = Phase::Body {
                    req: head.pending,
                    decoder: BodyDecoder::new(head.body),
                };
            }
        }
        true
    }

    /// Moves body bytes out of the input; true if the phase changed.
    fn on_body(&mut self, sh: &mut Shared<'_>) -> bool {
        let Conn {
            phase, input, body, ..
        } = self;
        let Phase::Body { req, decoder } = phase else {
            return false;
        };
        let req = *req;
        let collected = collect(decoder, input, body, sh.limits.max_body);
        let done = decoder.is_done();
        match collected {
            Err(Refusal::TooLarge) => self.refuse(413, "body larger than the limit", sh),
            Err(Refusal::Framing(e)) => self.refuse(400, &e.to_string(), sh),
            Ok(_) if done => self.complete(req, sh),
            Ok(_) if self.eof => self.phase = Phase::Closing,
            Ok(moved) => {
                if moved > 0 {
                    self.deadline = sh.now + sh.limits.timeout;
                }
                return false;
            }
        }
        true
    }

    /// The request is whole: decide its answer, and write it now or hold it back.
    fn complete(&mut self, req: Pending, sh: &mut Shared<'_>) {
        self.served += 1;
        let (reply, delay) = reply::answer(req.route, &self.body, sh.behaviour, &sh.limits.name);
        if delay.is_zero() {
            self.emit(req, &reply, sh);
        } else {
            let timer = sh.wheel.insert(sh.now + delay, Due::Delay(self.key));
            self.phase = Phase::Delayed { timer, req, reply };
        }
    }

    /// Queues the answer and moves on to the next request, or to closing.
    pub(super) fn emit(&mut self, req: Pending, reply: &Reply, sh: &Shared<'_>) {
        reply::write(
            &mut self.out,
            reply,
            req,
            &self.body,
            sh.limits.name.as_bytes(),
            &sh.date.bytes(),
        );
        if self.body.capacity() > RETAIN {
            self.body = Vec::new();
        }
        self.body.clear();
        self.deadline = sh.now + sh.limits.timeout;
        self.phase = match req.persist {
            Persist::Close => Phase::Closing,
            Persist::KeepAlive | Persist::KeepAlive10 => Phase::Head { scanned: 0 },
        };
    }

    /// Queues an error answer and ends the connection after it: after a refused head or body
    /// there is no telling where the next request would start.
    ///
    /// A refused HEAD gets the head alone (RFC 9110 §9.3.2). Its method is the request's once
    /// the head was read, and before that the buffered request line's; when neither says HEAD
    /// the body is sent, which is harmless as the connection closes after it.
    fn refuse(&mut self, status: u16, msg: &str, sh: &Shared<'_>) {
        let head_only = match &self.phase {
            Phase::Body { req, .. } | Phase::Delayed { req, .. } => req.head_only,
            _ => is_head_request(self.input.data()),
        };
        let reply = Reply::error(status, msg);
        reply::write(
            &mut self.out,
            &reply,
            Pending {
                head_only,
                ..REFUSED
            },
            b"",
            sh.limits.name.as_bytes(),
            &sh.date.bytes(),
        );
        self.input.clear();
        self.deadline = sh.now + sh.limits.timeout;
        self.phase = Phase::Closing;
    }

    /// The deadline passed: 408 for a client in the middle of a request (or that never sent
    /// its first), a plain close for an idle keep-alive connection or a stalled write.
    pub(super) fn expire(&mut self, sh: &mut Shared<'_>) {
        let unsent = self.out.len() > self.written;
        let mid_request = match self.phase {
            Phase::Head { .. } => !self.input.is_empty() || self.served == 0,
            Phase::Body { .. } => true,
            // Waiting on our own timer, not on the client.
            Phase::Delayed { .. } => return,
            Phase::Closing | Phase::Lingering | Phase::Closed => false,
        };
        if mid_request && !unsent {
            log::debug!("conn {}: request timeout", self.key);
            self.refuse(408, "request timeout", sh);
        } else {
            self.phase = Phase::Closed;
        }
    }
}

/// Why a body was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// It is over the limit (413).
    TooLarge,
    /// Its framing is broken (400).
    Framing(BodyError),
}

/// Moves the body bytes at the front of `input` into `body`, at most `max` in all. Returns how
/// many input bytes were consumed; stops when the input is used up or the body is complete.
fn collect(
    decoder: &mut BodyDecoder,
    input: &mut Buffer,
    body: &mut Vec<u8>,
    max: usize,
) -> Result<usize, Refusal> {
    let mut moved = 0;
    while !decoder.is_done() && !input.is_empty() {
        let step = decoder.decode(input.data()).map_err(Refusal::Framing)?;
        let data = &input.data()[step.data];
        if body.len().saturating_add(data.len()) > max {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(data);
        input.consume(step.consumed);
        moved += step.consumed;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::chunked::ChunkedError;

    fn run(kind: BodyKind, chunks: &[&[u8]], max: usize) -> (Result<Vec<u8>, Refusal>, Vec<u8>) {
        let mut dec = BodyDecoder::new(kind);
        let mut input = Buffer::with_capacity(64);
        let mut body = Vec::new();
        for c in chunks {
            input.push(c);
            if let Err(e) = collect(&mut dec, &mut input, &mut body, max) {
                return (Err(e), input.data().to_vec());
            }
        }
        assert!(dec.is_done(), "body not complete");
        (Ok(body), input.data().to_vec())
    }

    #[test]
    fn collects_bodies_and_leaves_the_next_request() {
        let (body, rest) = run(BodyKind::Length(5), &[b"ab", b"cdeGET"], 10);
        assert_eq!((body, rest), (Ok(b"abcde".to_vec()), b"GET".to_vec()));
        let (body, rest) = run(
            BodyKind::Chunked,
            &[b"3\r\nabc\r\n", b"2\r\nde\r", b"\n0\r\n\r\nNEXT"],
            10,
        );
        assert_eq!((body, rest), (Ok(b"abcde".to_vec()), b"NEXT".to_vec()));
    }

    #[test]
    fn refuses_as_soon_as_the_limit_is_passed() {
        let (r, _) = run(BodyKind::Chunked, &[b"4\r\nabcd\r\n", b"2\r\nef"], 5);
        assert_eq!(r, Err(Refusal::TooLarge));
        let (r, _) = run(BodyKind::Chunked, &[b"5\r\nabcde\r\n0\r\n\r\n"], 5);
        assert_eq!(r, Ok(b"abcde".to_vec()));
        let (r, _) = run(BodyKind::Chunked, &[b"zz\r\n"], 5);
        assert_eq!(
            r,
            Err(Refusal::Framing(BodyError::Chunked(ChunkedError::BadSize)))
        );
    }
}
