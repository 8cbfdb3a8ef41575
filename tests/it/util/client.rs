//! A raw-bytes HTTP/1.1 client over a blocking socket, reading answers with the crate's own
//! response parser and body decoder, every read under a deadline.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Instant;

use rr_proxy::http::framing::BodyDecoder;
use rr_proxy::http::head::{parse_response, Method, Parse, EMPTY_HEADERS};

use super::{remaining, DEADLINE};

/// The most a test client buffers for one response head.
const MAX_HEAD: usize = 64 * 1024;
/// The most a test client accepts as one response body.
const MAX_BODY: usize = 64 << 20;

/// `GET path` with a Host field.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// `POST path` with a JSON body framed by Content-Length.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// One response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Every field in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, blank line included.
    pub head: Vec<u8>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// The server allows another request on this connection.
    pub keep_alive: bool,
}

impl Response {
    /// The value of the first field called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// A test client over one blocking TCP connection. Bytes read past one response are kept for
/// the next, so pipelined answers can be read one by one.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects, with [`DEADLINE`] on the connect and on every read and write.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(DEADLINE));
        let _ = stream.set_read_timeout(Some(DEADLINE));
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Sends one request and reads its response (the request must not be HEAD).
    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response()
    }

    /// Reads the next response to a request that was not HEAD; panics on failure.
    pub fn read_response(&mut self) -> Response {
        self.read_response_to(Method::Get)
    }

    /// Reads the next response (1xx included) to a request with `method`; panics on failure.
    pub fn read_response_to(&mut self, method: Method) -> Response {
        self.try_read_response(method)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads the next response to a request with `method`, within [`DEADLINE`].
    pub fn try_read_response(&mut self, method: Method) -> Result<Response, String> {
        self.try_read_response_by(method, Instant::now() + DEADLINE)
    }

    /// Reads the next response to a request with `method`, by `deadline`.
    pub fn try_read_response_by(
        &mut self,
        method: Method,
        deadline: Instant,
    ) -> Result<Response, String> {
        let (mut resp, mut decoder) = self.read_head(method, deadline)?;
        loop {
            while !decoder.is_done() && !self.buf.is_empty() {
                let step = decoder.decode(&self.buf).map_err(|e| e.to_string())?;
                resp.body.extend_from_slice(&self.buf[step.data]);
                self.buf.drain(..step.consumed);
            }
            if decoder.is_done() {
                return Ok(resp);
            }
            if resp.body.len() > MAX_BODY {
                return Err("response body over the test limit".into());
            }
            if self.fill(deadline)? == 0 {
                decoder.finish_at_eof().map_err(|e| e.to_string())?;
                return Ok(resp);
            }
        }
    }

    /// Reads a response head, and makes the decoder for the body that follows it.
    fn read_head(
        &mut self,
        method: Method,
        deadline: Instant,
    ) -> Result<(Response, BodyDecoder), String> {
        loop {
            let mut headers = EMPTY_HEADERS;
            let parsed = parse_response(&self.buf, &mut headers, MAX_HEAD);
            let Parse::Complete(r) = parsed.map_err(|e| e.to_string())? else {
                if self.fill(deadline)? == 0 {
                    return Err(format!("closed after {} bytes of head", self.buf.len()));
                }
                continue;
            };
            let kind = r.body(method).map_err(|e| e.to_string())?;
            let fields = r.headers.iter().map(|h| {
                let v = String::from_utf8_lossy(h.value).into_owned();
                (h.name.to_string(), v)
            });
            let resp = Response {
                status: r.status,
                headers: fields.collect(),
                head: self.buf[..r.head_len].to_vec(),
                body: Vec::new(),
                keep_alive: r.keep_alive(),
            };
            self.buf.drain(..resp.head.len());
            return Ok((resp, BodyDecoder::new(kind)));
        }
    }

    /// Reads once more into the buffer; 0 at end of stream.
    fn fill(&mut self, deadline: Instant) -> Result<usize, String> {
        if Instant::now() >= deadline {
            return Err(format!("no complete response within {DEADLINE:?}"));
        }
        let _ = self.stream.set_read_timeout(Some(remaining(deadline)));
        let mut chunk = [0u8; 64 * 1024];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Asserts the server closes the connection without sending anything more, within
    /// [`DEADLINE`]. A reset counts as closed.
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.fill(deadline) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.contains("reset") => break,
                Err(e) => panic!("expected the server to close: {e}"),
            }
        }
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// Whether any response byte has arrived, without waiting for one.
    pub fn has_pending_bytes(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let _ = self.stream.set_nonblocking(true);
        let mut probe = [0u8; 1];
        let got = matches!(self.stream.peek(&mut probe), Ok(n) if n > 0);
        let _ = self.stream.set_nonblocking(false);
        got
    }

    /// Shuts the write side, as a client that has nothing more to send.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// A second handle on the socket, for a writer thread.
    pub fn writer(&self) -> TcpStream {
        self.stream
            .try_clone()
            .unwrap_or_else(|e| panic!("clone socket: {e}"))
    }
}
