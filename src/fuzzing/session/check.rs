//! What the client may receive, given what it sent. The client's bytes are read as the proxy
//! reads them (the crate's own head parser and body decoder over the same bytes), which gives
//! the requests in order; the received bytes are then walked as the answers to those requests.
//!
//! Each rule holds for any correct proxy, whatever the backend says:
//!
//! - Every answer starts `HTTP/1.1 ` and a status of 100 to 599 (the proxy speaks HTTP/1.1 and
//!   refuses other codes), and its head parses. Only the last may be cut short, never the first
//!   (it is written whole into an empty socket).
//! - Answers follow requests: interim (1xx) ones, then one final answer per request, in order;
//!   no answer without a request; no 1xx to an HTTP/1.0 request (RFC 9110 §15.2); a 101 only
//!   to a request that asked to upgrade (RFC 9110 §15.2.2), and the tunnel starts after it.
//! - Each body ends where RFC 9112 §6.3 says, and what follows is the next answer: no byte of
//!   a backend's answer leaks past the framing the client sees.
//! - Framing is unambiguous and allowed: no Content-Length with Transfer-Encoding (RFC 9112
//!   §6.2), neither on 1xx and 204 (RFC 9110 §8.6, RFC 9112 §6.1), no Transfer-Encoding to an
//!   HTTP/1.0 request (RFC 9112 §6.1), and the framing fields scan without error.
//! - Nothing follows an answer that says `Connection: close` (RFC 9112 §9.6).
//! - A request the proxy cannot parse is answered, if at all, by the proxy itself: a 4xx or
//!   5xx without `X-Backend-Server`, and nothing after it. Answers that do carry the field
//!   carry it once, naming the scripted backend (the refusing port never answers).

use crate::http::framing::{self, BodyDecoder, Fields};
use crate::http::head::{
    self, after_empty_lines, parse_request, Method, Parse, Version, EMPTY_HEADERS,
};

use super::{Ending, Received};

/// Header fields an answer may carry here: the proxy's 100, plus the few it adds.
const MAX_FIELDS: usize = 256;
/// The proxy's status line starts so.
const STATUS_PREFIX: &[u8] = b"HTTP/1.1 ";
/// How much of the received bytes a failure message shows.
const SHOW: usize = 1024;

/// One request, as the proxy reads it from the client's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// A whole head the parser accepts.
    Request {
        method: Method,
        version: Version,
        /// It asks to switch protocols (and may, being HTTP/1.1).
        upgrade: bool,
    },
    /// Bytes that are not a whole, valid head: the last thing the proxy reads.
    Unparsed,
}

/// The requests in `client`, in order, up to the first the connection cannot go on after: one
/// that does not parse, one whose body does not end, one the proxy answers itself and then
/// closes, or one that asks for the close.
pub fn requests(client: &[u8], max_head: usize) -> Vec<Asked> {
    let mut out = Vec::new();
    let mut rest = client;
    loop {
        rest = after_empty_lines(rest);
        if rest.is_empty() {
            return out;
        }
        let mut headers = EMPTY_HEADERS;
        let Ok(Parse::Complete(req)) = parse_request(rest, &mut headers, max_head) else {
            out.push(Asked::Unparsed);
            return out;
        };
        out.push(Asked::Request {
            method: req.method,
            version: req.version,
            upgrade: req.is_upgrade(),
        });
        let hop_limited = matches!(req.method, Method::Options | Method::Trace);
        let answered_here = req.method == Method::Connect
            || req.fields.expect_other
            || (hop_limited && req.fields.max_forwards == Some(0));
        if answered_here || !req.keep_alive() {
            return out;
        }
        let mut body = BodyDecoder::new(req.body);
        let mut at = req.head_len;
        while !body.is_done() && at < rest.len() {
            match body.decode(&rest[at..]) {
                Ok(step) => at += step.consumed,
                Err(_) => return out,
            }
        }
        if !body.is_done() {
            return out;
        }
        rest = &rest[at..];
    }
}

/// Where the first head in `bytes` ends, if it does.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    head::find_head_end(bytes, 0)
}

/// How far the answers got.
#[derive(Debug, Default)]
struct Walk {
    /// Final answers received whole, bodies included.
    finals: usize,
    /// A 101 was passed on: what follows is the tunnel's.
    tunnel: bool,
}

/// Whether every request has had its final answer (or the connection became a tunnel): the
/// client may half-close without cutting anything short.
pub fn all_answered(asked: &[Asked], got: &[u8]) -> bool {
    match walk(asked, got, None) {
        Ok(w) => w.tunnel || w.finals >= asked.len(),
        Err(_) => true, // the final check reports it
    }
}

/// Panics, with the evidence, if what the client received breaks a rule.
pub fn answers(asked: &[Asked], got: &Received, backend: &str) {
    if let Err(why) = walk(asked, &got.bytes, Some(backend)) {
        let ending = match got.ending {
            Ending::Closed => "closed",
            Ending::Reset => "reset",
        };
        panic!(
            "{why}\n  requests: {asked:?}\n  received ({} bytes, then {ending}): {}",
            got.bytes.len(),
            show(&got.bytes)
        );
    }
}

fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(SHOW)];
    let more = if bytes.len() > SHOW { "..." } else { "" };
    format!("\"{}\"{more}", cut.escape_ascii())
}

/// What one answer in the received bytes was.
enum Next {
    /// A 1xx other than 101, ending here; the final answer is still to come.
    Interim(usize),
    /// A final answer, ending here; `close` when it said `Connection: close`.
    Final { end: usize, close: bool },
    /// A refusal of the proxy's own, whole: nothing may follow it.
    Last,
    /// An answer that runs to the end of the bytes: its head or its body cut short, or a body
    /// delimited by the close.
    Cut,
    /// A 101: the tunnel starts after it.
    Tunnel,
}

/// Walks the received bytes as answers to `asked`. `backend` is the name `X-Backend-Server`
/// must carry, when checking it.
fn walk(asked: &[Asked], got: &[u8], backend: Option<&str>) -> Result<Walk, String> {
    let mut w = Walk::default();
    let mut at = 0;
    let mut n = 0; // answers seen, interim ones included
    while at < got.len() {
        n += 1;
        let next = answer(asked.get(w.finals).copied(), got, at, backend)
            .map_err(|e| format!("answer {n}: {e}"))?;
        match next {
            Next::Interim(end) => at = end,
            Next::Final { end, close } => {
                w.finals += 1;
                at = end;
                if close && at < got.len() {
                    let more = got.len() - at;
                    return Err(format!(
                        "answer {n} said Connection: close, then {more} bytes"
                    ));
                }
            }
            Next::Last => {
                w.finals += 1;
                return Ok(w);
            }
            Next::Cut => return Ok(w),
            Next::Tunnel => {
                w.tunnel = true;
                return Ok(w);
            }
        }
    }
    Ok(w)
}

/// Reads the answer at `at` in `got`, to `req` (`None`: there was no request left).
fn answer(
    req: Option<Asked>,
    got: &[u8],
    at: usize,
    backend: Option<&str>,
) -> Result<Next, String> {
    let rest = &got[at..];
    let mut storage = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut storage);
    let head_len = match resp.parse(rest) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if at > 0 => {
            let k = rest.len().min(STATUS_PREFIX.len());
            if rest[..k] != STATUS_PREFIX[..k] {
                return Err("it does not start with HTTP/1.1".into());
            }
            return Ok(Next::Cut);
        }
        Ok(httparse::Status::Partial) => return Err("the first answer is cut short".into()),
        Err(e) => return Err(format!("its head does not parse: {e}")),
    };
    if !rest.starts_with(STATUS_PREFIX) {
        return Err("it does not start with HTTP/1.1".into());
    }
    let status = resp.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        return Err(format!("status {status}"));
    }
    let fields =
        framing::scan_fields(resp.headers).map_err(|e| format!("its framing fields: {e}"))?;
    let Some(req) = req else {
        return Err(format!("a {status} answering no request"));
    };
    check_fields(req, status, resp.headers, backend)?;
    let Asked::Request {
        method,
        version,
        upgrade,
    } = req
    else {
        // The proxy's own refusal (or 408), with its length or none (to a HEAD), and the end.
        let after = rest.len() - head_len;
        let length = fields.content_length.unwrap_or(0);
        if !(400..=599).contains(&status) || count(resp.headers, "x-backend-server") > 0 {
            return Err(format!("a {status} to a request never parsed"));
        }
        if after != 0 && after as u64 != length {
            return Err(format!("{after} bytes after a refusal"));
        }
        return Ok(Next::Last);
    };
    match status {
        100..=199 if version == Version::Http10 => {
            Err(format!("a {status} to an HTTP/1.0 request"))
        }
        101 if !upgrade => Err("101 to a request that did not upgrade".into()),
        101 => Ok(Next::Tunnel),
        100..=199 => Ok(Next::Interim(at + head_len)),
        _ => match body_end(got, at + head_len, method, status, &fields)
            .map_err(|e| format!("a {status}: {e}"))?
        {
            Some(end) => Ok(Next::Final {
                end,
                close: fields.close,
            }),
            None => Ok(Next::Cut),
        },
    }
}

/// Where the body of a final answer to `method` starting at `from` ends, or `None` when it
/// does not end within `got`.
fn body_end(
    got: &[u8],
    from: usize,
    method: Method,
    status: u16,
    fields: &Fields,
) -> Result<Option<usize>, String> {
    let kind = framing::response_body(method.request_kind(), status, Version::Http11, fields)
        .map_err(|e| format!("its framing: {e}"))?;
    let mut body = BodyDecoder::new(kind);
    let mut at = from;
    while !body.is_done() && at < got.len() {
        let step = body
            .decode(&got[at..])
            .map_err(|e| format!("its body: {e}"))?;
        at += step.consumed;
    }
    Ok(body.is_done().then_some(at))
}

/// The field rules of one answer to `req`.
fn check_fields(
    req: Asked,
    status: u16,
    headers: &[httparse::Header<'_>],
    backend: Option<&str>,
) -> Result<(), String> {
    let length = count(headers, "content-length");
    let coding = count(headers, "transfer-encoding");
    if length > 0 && coding > 0 {
        return Err("both Content-Length and Transfer-Encoding".into());
    }
    if (status < 200 || status == 204) && length + coding > 0 {
        return Err(format!(
            "a {status} with Content-Length or Transfer-Encoding"
        ));
    }
    let old = matches!(
        req,
        Asked::Request {
            version: Version::Http10,
            ..
        }
    );
    if old && coding > 0 {
        return Err("Transfer-Encoding to an HTTP/1.0 request".into());
    }
    let mut named = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-backend-server"));
    if let (Some(first), Some(want)) = (named.next(), backend) {
        if first.value != want.as_bytes() || named.next().is_some() {
            return Err(format!(
                "X-Backend-Server is not once {want}: {}",
                show(first.value)
            ));
        }
    }
    Ok(())
}

fn count(headers: &[httparse::Header<'_>], name: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const NAME: &str = "127.0.0.1:1";

    fn get(n: usize) -> Vec<Asked> {
        requests(&GET.repeat(n), 2048)
    }

    fn ok(asked: &[Asked], got: &[u8]) -> bool {
        walk(asked, got, Some(NAME)).is_ok()
    }

    #[test]
    fn requests_stop_where_the_connection_cannot_go_on() {
        assert_eq!(get(3).len(), 3);
        let partial = [GET, b"\r\nGET / HT"].concat();
        assert_eq!(requests(&partial, 2048).last(), Some(&Asked::Unparsed));
        let close = [
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            GET,
        ]
        .concat();
        assert_eq!(requests(&close, 2048).len(), 1);
        let body = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc";
        assert_eq!(requests(body, 2048).len(), 1);
        assert!(requests(b"\r\n\r\n", 2048).is_empty());
    }

    #[test]
    fn answers_in_order_pass() {
        let one =
            format!("HTTP/1.1 200 OK\r\nX-Backend-Server: {NAME}\r\nContent-Length: 2\r\n\r\nhi");
        let two = [one.as_bytes(), one.as_bytes()].concat();
        assert!(ok(&get(2), &two));
        assert!(ok(&get(2), &two[..two.len() - 1]), "the last cut short");
        let interim = [b"HTTP/1.1 100 Continue\r\n\r\n", one.as_bytes()].concat();
        assert!(ok(&get(1), &interim));
        assert!(ok(&get(1), b""));
        assert!(all_answered(&get(2), &two));
        assert!(!all_answered(&get(2), one.as_bytes()));
    }

    #[test]
    fn broken_answers_fail() {
        let one = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec();
        let leak = [&one[..], b"x"].concat();
        assert!(!ok(&get(2), &leak), "a byte past the body");
        assert!(!ok(&get(1), &[&one[..], &one[..]].concat()), "no request");
        assert!(!ok(&get(1), b"HTTP/1.0 200 OK\r\n\r\n"));
        assert!(!ok(&get(1), b"HTTP/1.1 20"), "the first cut short");
        let both = b"HTTP/1.1 304 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!ok(&get(1), both));
        let closing = b"HTTP/1.1 204 OK\r\nConnection: close\r\n\r\nHTTP/1.1 204 OK\r\n\r\n";
        assert!(!ok(&get(2), closing));
        let other =
            b"HTTP/1.1 200 OK\r\nX-Backend-Server: 10.0.0.1:80\r\nContent-Length: 0\r\n\r\n";
        assert!(!ok(&get(1), other));
        let upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
        assert!(!ok(&get(1), upgrade), "101 unasked");
    }

    #[test]
    fn refusals_are_the_proxys_own() {
        let asked = requests(b"GET / HTTP/1.1\r\n\r\n", 2048); // no Host
        assert_eq!(asked, [Asked::Unparsed]);
        let refusal = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\n\r\nBad Request\n";
        assert!(ok(&asked, refusal));
        assert!(ok(&asked, &refusal[..refusal.len() - 12]), "a HEAD's");
        let forwarded = format!(
            "HTTP/1.1 400 Bad Request\r\nX-Backend-Server: {NAME}\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(!ok(&asked, forwarded.as_bytes()));
        assert!(!ok(&asked, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    }
}
