//! Message-body framing: how long a body is (RFC 9112 §6), decided from the header fields, and
//! the incremental decoder that finds where a body ends in a stream of bytes.
//!
//! Ambiguous framing is an error, never a guess: a message that two parsers could read in two
//! ways is how requests are smuggled past a proxy.

use std::ops::Range;

use super::chunked::{is_tchar, ChunkedDecoder, ChunkedError};
use super::head::Version;

/// How the body of one message is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all (requests without CL or TE; HEAD, 1xx, 204 and 304 responses).
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// Chunked transfer coding; the message ends after the last chunk and the trailers.
    Chunked,
    /// Responses only: the body runs until the server closes the connection.
    UntilClose,
}

/// Why the framing of a message cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// Content-Length is not plain digits, is a list, or overflows u64 (RFC 9110 §8.6).
    BadContentLength,
    /// More than one Content-Length field (RFC 9110 §8.6 allows rejecting duplicates).
    DuplicateContentLength,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.3 item 3).
    LengthAndEncoding,
    /// Transfer-Encoding whose final coding is not `chunked`, in a request (RFC 9112 §6.3 item 4).
    ChunkedNotFinal,
    /// `chunked` applied more than once (RFC 9112 §7.1).
    ChunkedTwice,
    /// A request transfer coding besides `chunked`: the proxy would pass on a coding it does
    /// not decode, and a backend that frames only by `chunked` would misread the body
    /// (RFC 9112 §6.1: 501 for a coding the server does not implement).
    UnknownCoding,
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1).
    EncodingOnHttp10,
    /// A field name that reads as Content-Length or Transfer-Encoding once `_` is taken for `-`;
    /// some servers normalise it, so passing it on would frame the message two ways.
    LookalikeFramingField,
}

impl FramingError {
    /// A short reason, for logs and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            FramingError::BadContentLength => "invalid Content-Length",
            FramingError::DuplicateContentLength => "more than one Content-Length",
            FramingError::LengthAndEncoding => "both Content-Length and Transfer-Encoding",
            FramingError::ChunkedNotFinal => "chunked is not the final transfer coding",
            FramingError::ChunkedTwice => "chunked applied more than once",
            FramingError::UnknownCoding => "a transfer coding besides chunked",
            FramingError::EncodingOnHttp10 => "Transfer-Encoding in an HTTP/1.0 message",
            FramingError::LookalikeFramingField => "framing field name with an underscore",
        }
    }
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What Transfer-Encoding said, after reading every field line of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// No Transfer-Encoding field.
    #[default]
    Absent,
    /// Present, and the final coding is `chunked`.
    ChunkedLast,
    /// Present, and the final coding is something else (or the list is empty).
    OtherLast,
}

/// The header fields that decide framing and connection handling, gathered in one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// The valid Content-Length, if any.
    pub content_length: Option<u64>,
    /// Content-Length came more than once (as a list, or on more lines), each time with the
    /// same value: a response is read with that value, as RFC 9112 §6.3 item 5 says; a
    /// request is refused, as RFC 9110 §8.6 allows, since a server behind could count it
    /// differently.
    pub length_repeated: bool,
    /// What Transfer-Encoding said.
    pub encoding: Encoding,
    /// A coding besides `chunked` appeared (`gzip, chunked`): answered with 501 for requests,
    /// passed on in responses, where the client decodes it.
    pub other_coding: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Connection: upgrade`.
    pub connection_upgrade: bool,
    /// An `Upgrade` field is present.
    pub upgrade: bool,
    /// How many `Host` fields there are (requests must have exactly one in HTTP/1.1).
    pub hosts: u32,
    /// A `Host` value that is not `uri-host [":" port]`.
    pub bad_host: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// An `Expect` member other than `100-continue`, which nobody on the path can meet
    /// (RFC 9110 §10.1.1: answered with 417).
    pub expect_other: bool,
    /// The first valid `Max-Forwards` (RFC 9110 §7.6.2: `1*DIGIT`); one that is not a number
    /// is ignored. Only OPTIONS and TRACE heed it.
    pub max_forwards: Option<u32>,
    /// `If-None-Match` or `If-Modified-Since`: the answer may well be a 304, which has no
    /// body whatever its fields say (RFC 9110 §15.4.5).
    pub conditional: bool,
}

/// A `Max-Forwards` value: digits, held at `u32::MAX` if longer (only "is it 0" and "one
/// less" matter). None for anything else.
pub fn parse_max_forwards(v: &[u8]) -> Option<u32> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u32, |n, &d| {
        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    }))
}

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2), or
/// empty (allowed when the target has no authority). RFC 9112 §3.2 asks for 400 otherwise:
/// a `Host` with userinfo, a path or spaces in it names no server the proxy could vouch for.
pub fn valid_host(v: &[u8]) -> bool {
    let (host, rest) = if v.first() == Some(&b'[') {
        // IP-literal: IPv6 or IPvFuture between brackets.
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..end];
        let ok = !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b == b':' || is_unreserved(b) || is_sub_delim(b));
        if !ok {
            return false;
        }
        (&[][..], &v[end + 1..])
    } else {
        let end = v.iter().position(|&b| b == b':').unwrap_or(v.len());
        (&v[..end], &v[end..])
    };
    let port_ok = match rest.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok && reg_name(host)
}

/// `*( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2).
fn reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            let hex = s.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(b) || is_sub_delim(b)) {
            return false;
        }
        i += 1;
    }
    true
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Reads every field once and gathers what framing needs. Errors are the rules that hold for
/// requests and responses alike; the message-specific rules are in [`request_body`] and
/// [`response_body`].
pub fn scan_fields(headers: &[httparse::Header<'_>]) -> Result<Fields, FramingError> {
    let mut f = Fields::default();
    let mut chunked_seen = false;
    for h in headers {
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                f.hosts = f.hosts.saturating_add(1);
                f.bad_host |= !valid_host(h.value);
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                // RFC 9110 §10.1.1: `Expect = #expectation`, and `100-continue` is the only
                // expectation defined; the token is case-insensitive.
                for item in list_items(h.value) {
                    if item.eq_ignore_ascii_case(b"100-continue") {
                        f.expect_continue = true;
                    } else {
                        f.expect_other = true;
                    }
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                f.upgrade |= list_items(h.value).any(upgrade_offerable);
            }
            12 if name.eq_ignore_ascii_case(b"max-forwards") && f.max_forwards.is_none() => {
                f.max_forwards = parse_max_forwards(h.value);
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in list_items(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        f.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        f.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        f.connection_upgrade = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                // RFC 9110 §8.6: Content-Length = 1*DIGIT. The same value repeated, in a list
                // ("5, 5") or on more lines, is one length (RFC 9112 §6.3 item 5); two
                // different ones are an error wherever they come from.
                for item in h.value.split(|&b| b == b',') {
                    let n = parse_content_length(trim_ows(item))?;
                    match f.content_length {
                        None => f.content_length = Some(n),
                        Some(m) if m == n => f.length_repeated = true,
                        Some(_) => return Err(FramingError::DuplicateContentLength),
                    }
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                // RFC 9112 §6.1: the codings are listed in the order applied, across all field
                // lines; chunked must be last and must not repeat.
                if f.encoding == Encoding::Absent {
                    f.encoding = Encoding::OtherLast;
                }
                for coding in list_items(h.value) {
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        if chunked_seen {
                            return Err(FramingError::ChunkedTwice);
                        }
                        chunked_seen = true;
                        f.encoding = Encoding::ChunkedLast;
                    } else {
                        f.other_coding = true;
                        f.encoding = Encoding::OtherLast;
                    }
                }
            }
            13 if name.eq_ignore_ascii_case(b"if-none-match") => f.conditional = true,
            17 if name.eq_ignore_ascii_case(b"if-modified-since") => f.conditional = true,
            14 | 17 if is_lookalike(name) => return Err(FramingError::LookalikeFramingField),
            _ => {}
        }
    }
    if chunked_seen && f.encoding != Encoding::ChunkedLast {
        // `chunked, gzip`: the body would have to be read until close, never for a request,
        // and a sign of a confused sender for a response.
        f.encoding = Encoding::OtherLast;
    }
    Ok(f)
}

/// The body of a request (RFC 9112 §6.3, items 3 to 6 as they apply to requests).
pub fn request_body(version: Version, f: &Fields) -> Result<BodyKind, FramingError> {
    if f.length_repeated {
        return Err(FramingError::DuplicateContentLength);
    }
    match (f.encoding, f.content_length) {
        (Encoding::Absent, None) => Ok(BodyKind::Empty), // §6.3 item 6
        (Encoding::Absent, Some(n)) => Ok(length(n)),    // §6.3 item 5
        (_, Some(_)) => Err(FramingError::LengthAndEncoding), // §6.3 item 3: reject, don't guess
        (_, None) if version == Version::Http10 => Err(FramingError::EncodingOnHttp10), // §6.1
        (Encoding::OtherLast, None) => Err(FramingError::ChunkedNotFinal), // §6.3 item 4: 400
        // §6.1: no coding the proxy does not decode goes to a backend (nginx answers so too);
        // a backend reading only `chunked` would take the body for the next request.
        (Encoding::ChunkedLast, None) if f.other_coding => Err(FramingError::UnknownCoding),
        (Encoding::ChunkedLast, None) => Ok(BodyKind::Chunked),
    }
}

/// What the request was, as far as the response's framing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A HEAD request: the response never has a body.
    Head,
    /// A CONNECT request: a 2xx response turns the connection into a tunnel.
    Connect,
    /// Anything else.
    Other,
}

/// The body of a response to a request of `kind` (RFC 9112 §6.3, items 1 to 7).
pub fn response_body(
    kind: RequestKind,
    status: u16,
    version: Version,
    f: &Fields,
) -> Result<BodyKind, FramingError> {
    // §6.3 item 1: HEAD, 1xx, 204 and 304 responses end at the head, whatever the fields say.
    if kind == RequestKind::Head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyKind::Empty);
    }
    // §6.3 item 2: a 2xx answer to CONNECT is a tunnel; the caller handles it before framing.
    if kind == RequestKind::Connect && (200..300).contains(&status) {
        return Ok(BodyKind::UntilClose);
    }
    match (f.encoding, f.content_length) {
        (Encoding::Absent, None) => Ok(BodyKind::UntilClose), // §6.3 item 7
        (Encoding::Absent, Some(n)) => Ok(length(n)),         // §6.3 item 5
        // §6.3 item 3 lets TE override CL, but calls it a sign of smuggling "to be handled as
        // an error"; a proxy that forwards it would pass the ambiguity on.
        (_, Some(_)) => Err(FramingError::LengthAndEncoding),
        (_, None) if version == Version::Http10 => Err(FramingError::EncodingOnHttp10), // §6.1
        (Encoding::ChunkedLast, None) => Ok(BodyKind::Chunked),
        // §6.3 item 4: final coding not chunked in a response: read until close.
        (Encoding::OtherLast, None) => Ok(BodyKind::UntilClose),
    }
}

fn length(n: u64) -> BodyKind {
    if n == 0 {
        BodyKind::Empty
    } else {
        BodyKind::Length(n)
    }
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`, with checked arithmetic so a long run of digits is
/// an error rather than a wrapped number.
pub fn parse_content_length(value: &[u8]) -> Result<u64, FramingError> {
    // Past 2^63 - 1 most servers cannot hold the number (a signed 64-bit length): one that
    // clamps or wraps it would read a different body than the proxy (RFC 9110 §8.6).
    const MAX: u64 = i64::MAX as u64;
    if value.is_empty() {
        return Err(FramingError::BadContentLength);
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(FramingError::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .filter(|&n| n <= MAX)
            .ok_or(FramingError::BadContentLength)?;
    }
    Ok(n)
}

/// `Content_Length` or `Transfer_Encoding` in any case.
fn is_lookalike(name: &[u8]) -> bool {
    let target: &[u8] = match name.len() {
        14 => b"content-length",
        17 => b"transfer-encoding",
        _ => return false,
    };
    name.contains(&b'_')
        && name
            .iter()
            .zip(target)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// The non-empty items of a comma-separated field value, with optional whitespace trimmed
/// (RFC 9110 §5.6.1).
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

/// Whether an item of a request's `Upgrade` list is passed on: a well-formed protocol
/// (`name["/" version]`, both tokens, RFC 9110 §7.8), and not `h2c`. HTTP/2's upgrade from
/// HTTP/1.1 is deprecated (RFC 9113 §3.1), and a tunnel to a backend speaking it would carry
/// requests the proxy never sees.
pub fn upgrade_offerable(protocol: &[u8]) -> bool {
    let mut parts = protocol.splitn(2, |&b| b == b'/');
    let name = parts.next().unwrap_or_default();
    let token = |t: &[u8]| !t.is_empty() && t.iter().all(|&b| is_tchar(b));
    token(name) && parts.next().is_none_or(token) && !name.eq_ignore_ascii_case(b"h2c")
}

/// Strips spaces and tabs from both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// One decoding step over the bytes at hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// How many input bytes belong to this body and were consumed.
    pub consumed: usize,
    /// Where, within the input, payload bytes of this step lie (empty when none). For chunked
    /// bodies this excludes sizes, extensions, CRLFs and trailers.
    pub data: Range<usize>,
    /// The body is complete; bytes after `consumed` belong to the next message.
    pub done: bool,
}

/// Why a body could not be read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The chunked coding was invalid.
    Chunked(ChunkedError),
    /// The peer closed the connection before the body was complete.
    Truncated,
}

impl BodyError {
    /// A short reason, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyError::Chunked(e) => e.as_str(),
            BodyError::Truncated => "connection closed before the body ended",
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Chunked(e) => write!(f, "invalid chunked body: {e}"),
            BodyError::Truncated => f.write_str("connection closed before the body ended"),
        }
    }
}

/// Finds the end of one body in a stream of bytes, incrementally: feed it whatever arrived,
/// it says how much of it was body and whether the body is over.
#[derive(Clone, Debug)]
pub enum BodyDecoder {
    /// This many bytes are still to come.
    Length { remaining: u64 },
    /// A chunked body in progress.
    Chunked(ChunkedDecoder),
    /// Everything until the peer closes.
    UntilClose,
    /// The body is complete.
    Done,
}

impl BodyDecoder {
    /// A decoder for a body of the given kind.
    pub fn new(kind: BodyKind) -> BodyDecoder {
        match kind {
            BodyKind::Empty | BodyKind::Length(0) => BodyDecoder::Done,
            BodyKind::Length(n) => BodyDecoder::Length { remaining: n },
            BodyKind::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
            BodyKind::UntilClose => BodyDecoder::UntilClose,
        }
    }

    /// The body is complete.
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Consumes a prefix of `input`. Whenever `input` is non-empty and the body is not done,
    /// `consumed > 0`; call again with the rest until the input is used up or `done` is set.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        let step = match self {
            BodyDecoder::Done => Step {
                consumed: 0,
                data: 0..0,
                done: true,
            },
            BodyDecoder::Length { remaining } => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                // take <= remaining, so this cannot underflow.
                *remaining -= take as u64;
                Step {
                    consumed: take,
                    data: 0..take,
                    done: *remaining == 0,
                }
            }
            BodyDecoder::UntilClose => Step {
                consumed: input.len(),
                data: 0..input.len(),
                done: false,
            },
            BodyDecoder::Chunked(dec) => dec.decode(input).map_err(BodyError::Chunked)?,
        };
        if step.done {
            *self = BodyDecoder::Done;
        }
        Ok(step)
    }

    /// The peer closed its side: fine for a read-until-close body, which ends here; an error for
    /// any other body that is not complete.
    pub fn finish_at_eof(&mut self) -> Result<(), BodyError> {
        match self {
            BodyDecoder::Done => Ok(()),
            BodyDecoder::UntilClose => {
                *self = BodyDecoder::Done;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_forwards_values() {
        for (v, want) in [
            (&b"0"[..], Some(0)),
            (b" 12 ", Some(12)),
            (b"007", Some(7)),
            (b"99999999999999999999", Some(u32::MAX)),
            (b"", None),
            (b"-1", None),
            (b"1,2", None),
            (b"0x1", None),
        ] {
            assert_eq!(
                parse_max_forwards(v),
                want,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn host_values() {
        let good: &[&[u8]] = &[
            b"",
            b"a",
            b"example.com",
            b"example.com:8080",
            b"a:",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:8080",
            b"[v1.x]",
            b"ex%41mple.com",
            b"a!$&'()*+,;=b",
        ];
        for v in good {
            assert!(valid_host(v), "{:?}", String::from_utf8_lossy(v));
        }
        let bad: &[&[u8]] = &[
            b"u@a", b"a b", b"a/b", b"a?b", b"a#b", b"a:8x", b"a:1:2", b"a%4", b"a%zz", b"[::1",
            b"[]", b"[::1]x", b"[::1]:x", b"a\"b",
        ];
        for v in bad {
            assert!(!valid_host(v), "{:?}", String::from_utf8_lossy(v));
        }
    }

    fn fields(lines: &[(&str, &str)]) -> Result<Fields, FramingError> {
        let headers: Vec<httparse::Header<'_>> = lines
            .iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect();
        scan_fields(&headers)
    }

    fn req(lines: &[(&str, &str)]) -> Result<BodyKind, FramingError> {
        request_body(Version::Http11, &fields(lines)?)
    }

    #[test]
    fn request_body_rules() {
        use BodyKind::*;
        use FramingError::*;
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<BodyKind, FramingError>);
        let cases: &[Case<'_>] = &[
            // §6.3 item 6: no CL, no TE: no body.
            (&[], Ok(Empty)),
            (&[("Content-Length", "0")], Ok(Empty)),
            (&[("Content-Length", "42")], Ok(Length(42))),
            (&[("content-length", "007")], Ok(Length(7))),
            (
                &[("Content-Length", "9223372036854775807")],
                Ok(Length(i64::MAX as u64)),
            ),
            // RFC 9110 §8.6: only digits, no sign, no list, nothing past 2^63 - 1.
            (
                &[("Content-Length", "9223372036854775808")],
                Err(BadContentLength),
            ),
            (
                &[("Content-Length", "18446744073709551616")],
                Err(BadContentLength),
            ),
            (&[("Content-Length", "-1")], Err(BadContentLength)),
            (&[("Content-Length", "+5")], Err(BadContentLength)),
            (&[("Content-Length", "0x10")], Err(BadContentLength)),
            // §6.3 item 5 reads a repeated length as one; a request with one is refused all
            // the same (RFC 9110 §8.6 allows it), and different lengths always.
            (&[("Content-Length", "5, 5")], Err(DuplicateContentLength)),
            (&[("Content-Length", "5, 6")], Err(DuplicateContentLength)),
            (&[("Content-Length", "5,")], Err(BadContentLength)),
            (&[("Content-Length", "5 5")], Err(BadContentLength)),
            (&[("Content-Length", "")], Err(BadContentLength)),
            (
                &[("Content-Length", "5"), ("Content-Length", "6")],
                Err(DuplicateContentLength),
            ),
            (
                &[("Content-Length", "5"), ("content-length", "5")],
                Err(DuplicateContentLength),
            ),
            // §6.3 item 3: CL with TE.
            (
                &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                Err(LengthAndEncoding),
            ),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
                Err(LengthAndEncoding),
            ),
            // §6.1 and §6.3 item 4.
            (&[("Transfer-Encoding", "chunked")], Ok(Chunked)),
            (&[("Transfer-Encoding", "CHUNKED")], Ok(Chunked)),
            (
                &[("Transfer-Encoding", "gzip, chunked")],
                Err(UnknownCoding),
            ),
            (
                &[("Transfer-Encoding", "x-gzip, chunked")],
                Err(UnknownCoding),
            ),
            (
                &[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Err(UnknownCoding),
            ),
            (&[("Transfer-Encoding", ", chunked,")], Ok(Chunked)),
            (&[("Transfer-Encoding", "gzip")], Err(ChunkedNotFinal)),
            (
                &[("Transfer-Encoding", "chunked, gzip")],
                Err(ChunkedNotFinal),
            ),
            (&[("Transfer-Encoding", "xchunked")], Err(ChunkedNotFinal)),
            (
                &[("Transfer-Encoding", "chunked;x=1")],
                Err(ChunkedNotFinal),
            ),
            (&[("Transfer-Encoding", "")], Err(ChunkedNotFinal)),
            (
                &[("Transfer-Encoding", "chunked, chunked")],
                Err(ChunkedTwice),
            ),
            (
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Err(ChunkedTwice),
            ),
            (&[("Transfer-Encoding", "foo, chunked")], Err(UnknownCoding)),
            // Names that some servers read as framing fields.
            (
                &[("Transfer_Encoding", "chunked")],
                Err(LookalikeFramingField),
            ),
            (&[("Content_Length", "5")], Err(LookalikeFramingField)),
            (&[("Content-Lengths", "5")], Ok(Empty)),
        ];
        for (lines, want) in cases {
            assert_eq!(&req(lines), want, "fields {lines:?}");
        }
    }

    #[test]
    fn transfer_encoding_on_http10_request_is_rejected() {
        let f = fields(&[("Transfer-Encoding", "chunked")]).unwrap();
        assert_eq!(
            request_body(Version::Http10, &f),
            Err(FramingError::EncodingOnHttp10)
        );
    }

    #[test]
    fn response_body_rules() {
        use BodyKind::*;
        let none = Fields::default();
        let cl = fields(&[("Content-Length", "3")]).unwrap();
        let te = fields(&[("Transfer-Encoding", "chunked")]).unwrap();
        let gz = fields(&[("Transfer-Encoding", "gzip")]).unwrap();
        // §6.3 item 5: the same length repeated is that length.
        let twice = fields(&[("Content-Length", "3 , 3"), ("content-length", "3")]).unwrap();
        assert!(twice.length_repeated);
        let v11 = Version::Http11;
        let cases = [
            (RequestKind::Head, 200, &cl, Ok(Empty)),
            (RequestKind::Other, 100, &cl, Ok(Empty)),
            (RequestKind::Other, 204, &te, Ok(Empty)),
            (RequestKind::Other, 304, &cl, Ok(Empty)),
            (RequestKind::Connect, 200, &none, Ok(UntilClose)),
            (RequestKind::Other, 200, &none, Ok(UntilClose)),
            (RequestKind::Other, 200, &cl, Ok(Length(3))),
            (RequestKind::Other, 200, &te, Ok(Chunked)),
            (RequestKind::Other, 200, &gz, Ok(UntilClose)),
            (RequestKind::Other, 200, &twice, Ok(Length(3))),
        ];
        for (kind, status, f, want) in cases {
            assert_eq!(
                response_body(kind, status, v11, f),
                want,
                "{kind:?} {status}"
            );
        }
        let both = Fields {
            content_length: Some(3),
            ..te
        };
        assert_eq!(
            response_body(RequestKind::Other, 200, v11, &both),
            Err(FramingError::LengthAndEncoding)
        );
        assert_eq!(
            response_body(RequestKind::Other, 200, Version::Http10, &te),
            Err(FramingError::EncodingOnHttp10)
        );
    }

    #[test]
    fn connection_tokens() {
        let f = fields(&[
            ("Connection", "Keep-Alive, Upgrade"),
            ("Upgrade", "websocket"),
        ])
        .unwrap();
        assert!(f.keep_alive && f.connection_upgrade && f.upgrade && !f.close);
        for (value, asks) in [
            ("h2c", false),
            ("H2C/2", false),
            ("", false),
            ("h2c;", false),
            ("a/", false),
            ("h2c, websocket", true),
            ("websocket/13", true),
        ] {
            let f = fields(&[("Connection", "Upgrade"), ("Upgrade", value)]).unwrap();
            assert_eq!(f.upgrade, asks, "{value:?}");
        }
        let f = fields(&[("connection", " close ")]).unwrap();
        assert!(f.close);
        let f = fields(&[("Expect", "100-Continue"), ("Host", "a"), ("Host", "b")]).unwrap();
        assert!(f.expect_continue && !f.expect_other);
        assert_eq!(f.hosts, 2);
        let f = fields(&[("Expect", "")]).unwrap();
        assert!(!f.expect_continue && !f.expect_other);
        let f = fields(&[("Expect", "100-continue, x-later")]).unwrap();
        assert!(f.expect_continue && f.expect_other);
        let f = fields(&[("Expect", "100-continue=1")]).unwrap();
        assert!(!f.expect_continue && f.expect_other);
        for name in ["If-None-Match", "if-modified-since"] {
            assert!(fields(&[(name, "x")]).unwrap().conditional, "{name}");
        }
        for name in [
            "If-Match",
            "If-Range",
            "If-Unmodified-Since",
            "X-If-None-Match",
        ] {
            assert!(!fields(&[(name, "x")]).unwrap().conditional, "{name}");
        }
    }

    #[test]
    fn length_decoder_stops_at_the_end_of_the_body() {
        let mut d = BodyDecoder::new(BodyKind::Length(5));
        let s = d.decode(b"abc").unwrap();
        assert_eq!((s.consumed, s.data, s.done), (3, 0..3, false));
        let s = d.decode(b"deGET /").unwrap();
        assert_eq!((s.consumed, s.data, s.done), (2, 0..2, true));
        assert!(d.is_done());
        assert_eq!(d.finish_at_eof(), Ok(()));
    }

    #[test]
    fn eof_ends_only_until_close_bodies() {
        assert_eq!(
            BodyDecoder::new(BodyKind::Length(1)).finish_at_eof(),
            Err(BodyError::Truncated)
        );
        assert_eq!(
            BodyDecoder::new(BodyKind::Chunked).finish_at_eof(),
            Err(BodyError::Truncated)
        );
        let mut d = BodyDecoder::new(BodyKind::UntilClose);
        assert_eq!(d.decode(b"xyz").unwrap().consumed, 3);
        assert_eq!(d.finish_at_eof(), Ok(()));
        assert!(d.is_done());
    }

    #[test]
    fn trim_and_list() {
        let items: Vec<&[u8]> = list_items(b" a ,, b\t,c").collect();
        assert_eq!(items, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(trim_ows(b" \t "), b"");
    }
}
