//! Fuzzing entry points, not an API (`#[doc(hidden)]` in spirit): each runs one parser over
//! arbitrary bytes and panics when an invariant breaks, the signal a fuzzer looks for. The
//! targets in `fuzz/` call them, and so does the test that replays the committed corpus.
//!
//! Each function takes any bytes and must return quietly on any of them; a panic is a bug in
//! the parser or in the invariant it checks.

pub mod session;

use crate::http::chunked::ChunkedDecoder;
use crate::http::framing::{
    self, BodyDecoder, BodyError, BodyKind, Encoding, Fields, FramingError, Step,
};
use crate::http::head::{
    check_partial_request, find_head_end, parse_request, parse_response, HeadError, Method, Parse,
    Request, Response, Version, DEFAULT_MAX_HEAD, EMPTY_HEADERS, MAX_HEADERS,
};

/// A cap small enough that most seed heads cross it, so the 431 path is exercised as often as
/// the complete one.
const SMALL_CAP: usize = 48;

/// The methods whose responses frame differently, and one that does not.
const METHODS: [Method; 5] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Connect,
    Method::Other,
];

/// The shortest chunked body: `0\r\n\r\n`.
const MIN_CHUNKED: usize = 5;

/// What a request parse came to, in a form two parses can be compared by.
#[derive(Debug, PartialEq, Eq)]
struct ReqSummary<'b> {
    method: Method,
    method_str: &'b str,
    target: &'b str,
    version: Version,
    body: BodyKind,
    headers: usize,
    head_len: usize,
}

/// What a response parse came to.
#[derive(Debug, PartialEq, Eq)]
struct RespSummary<'b> {
    status: u16,
    reason: &'b str,
    version: Version,
    fields: Fields,
    headers: usize,
    head_len: usize,
}

type Outcome<T> = Result<Parse<T>, HeadError>;

/// Parses a request head with the default cap and a small one and checks that each answer is
/// sound on its own, that the two agree, and that the head alone parses the same.
pub fn request_head(data: &[u8]) {
    early_refusals_hold(data);
    let full = parse_req(data, DEFAULT_MAX_HEAD);
    let small = parse_req(data, SMALL_CAP);
    caps_agree(data, &full, &small, |s| s.head_len);
    for (cap, got) in [(DEFAULT_MAX_HEAD, &full), (SMALL_CAP, &small)] {
        check_outcome(data, cap, got, |s| s.head_len);
        if let Ok(Parse::Complete(s)) = got {
            assert_eq!(
                &parse_req(&data[..s.head_len], cap),
                got,
                "head alone differs"
            );
        }
    }
}

/// A head refused before its end ([`check_partial_request`], what the proxy asks while the
/// head trickles in) is refused once more bytes came: early refusal never turns away a head
/// that would have been served. The status may differ when a head has two faults (a bad target
/// seen early, too many fields seen at the end: 400 early, 431 whole); either is a refusal.
fn early_refusals_hold(data: &[u8]) {
    let whole_status = || {
        let mut h = EMPTY_HEADERS;
        if find_head_end(data, 0).is_some() {
            parse_request(data, &mut h, DEFAULT_MAX_HEAD)
                .err()
                .map(|e| e.status())
        } else {
            check_partial_request(data).err().map(|e| e.status())
        }
    };
    for cut in [data.len() / 3, data.len() / 2, data.len()] {
        let prefix = &data[..cut];
        if find_head_end(prefix, 0).is_some() {
            continue; // the proxy asks only while the end has not arrived
        }
        if let Err(early) = check_partial_request(prefix) {
            let whole = whole_status();
            assert!(
                whole.is_some(),
                "refused early at {cut} ({early}), not whole"
            );
        }
    }
}

/// Parses a response head with both caps, as [`request_head`] does, and asks every parsed head
/// how its body is framed for each kind of request.
pub fn response_head(data: &[u8]) {
    let full = parse_resp(data, DEFAULT_MAX_HEAD);
    let small = parse_resp(data, SMALL_CAP);
    caps_agree(data, &full, &small, |s| s.head_len);
    for (cap, got) in [(DEFAULT_MAX_HEAD, &full), (SMALL_CAP, &small)] {
        check_outcome(data, cap, got, |s| s.head_len);
        if let Ok(Parse::Complete(s)) = got {
            assert_eq!(
                &parse_resp(&data[..s.head_len], cap),
                got,
                "head alone differs"
            );
        }
    }
}

/// Runs a chunked decoder over `data` to its end or its first error, checking each step.
pub fn chunked(data: &[u8]) {
    let mut dec = ChunkedDecoder::new();
    let (mut at, mut payload) = (0, 0);
    while at < data.len() && !dec.is_done() {
        let input = &data[at..];
        let Ok(step) = dec.decode(input) else { return };
        assert!(step.consumed > 0, "no progress on {} bytes", input.len());
        assert!(step.consumed <= input.len(), "consumed past the input");
        assert!(step.data.start <= step.data.end && step.data.end <= step.consumed);
        assert_eq!(
            step.done,
            dec.is_done(),
            "step and decoder disagree on done"
        );
        payload += step.data.len();
        at += step.consumed;
    }
    assert!(payload <= at, "more payload than input");
    if dec.is_done() {
        assert!(
            payload + MIN_CHUNKED <= at,
            "a chunked body ended without its framing"
        );
        // Done stays done, and takes nothing that belongs to the next message.
        let again = dec.decode(&data[at..]);
        let idle = Step {
            consumed: 0,
            data: 0..0,
            done: true,
        };
        assert_eq!(again, Ok(idle), "decoding after the end");
        assert!(dec.is_done());
    }
}

/// Feeds the same bytes whole and in pieces and checks the answers match. The first byte picks
/// what the rest is (a request head and its body, or a body of one kind), the second how it is
/// cut.
pub fn split_invariance(data: &[u8]) {
    let [mode, seed, rest @ ..] = data else {
        return;
    };
    match mode % 4 {
        0 => head_then_body(rest, *seed),
        1 => same_body(BodyKind::Chunked, rest, *seed),
        2 => same_body(BodyKind::Length(u64::from(mode >> 2)), rest, *seed),
        _ => same_body(BodyKind::UntilClose, rest, *seed),
    }
}

fn parse_req(data: &[u8], cap: usize) -> Outcome<ReqSummary<'_>> {
    let mut h = EMPTY_HEADERS;
    Ok(match parse_request(data, &mut h, cap)? {
        Parse::Partial => Parse::Partial,
        Parse::Complete(r) => {
            check_request(&r);
            Parse::Complete(ReqSummary {
                method: r.method,
                method_str: r.method_str,
                target: r.target,
                version: r.version,
                body: r.body,
                headers: r.headers.len(),
                head_len: r.head_len,
            })
        }
    })
}

fn parse_resp(data: &[u8], cap: usize) -> Outcome<RespSummary<'_>> {
    let mut h = EMPTY_HEADERS;
    Ok(match parse_response(data, &mut h, cap)? {
        Parse::Partial => Parse::Partial,
        Parse::Complete(r) => {
            check_response(&r);
            Parse::Complete(RespSummary {
                status: r.status,
                reason: r.reason,
                version: r.version,
                fields: r.fields,
                headers: r.headers.len(),
                head_len: r.head_len,
            })
        }
    })
}

/// A parsed request means what its fields say: one Host in 1.1, and a body kind that follows
/// from Content-Length and Transfer-Encoding.
fn check_request(r: &Request<'_, '_>) {
    assert!(!r.method_str.is_empty() && !r.target.is_empty());
    assert!(r.headers.len() <= MAX_HEADERS);
    assert_eq!(framing::scan_fields(r.headers), Ok(r.fields), "fields");
    assert_eq!(framing::request_body(r.version, &r.fields), Ok(r.body));
    let f = &r.fields;
    match r.version {
        Version::Http11 => assert_eq!(f.hosts, 1, "Host count"),
        Version::Http10 => assert!(f.hosts <= 1, "Host count"),
    }
    let no_te = f.encoding == Encoding::Absent;
    match r.body {
        BodyKind::Empty => assert!(no_te && matches!(f.content_length, None | Some(0))),
        BodyKind::Length(n) => assert!(no_te && n > 0 && f.content_length == Some(n)),
        BodyKind::Chunked => assert!(
            f.encoding == Encoding::ChunkedLast
                && f.content_length.is_none()
                && !f.other_coding
                && r.version == Version::Http11
        ),
        BodyKind::UntilClose => panic!("a request body framed by close"),
    }
    if r.expects_continue() {
        assert_ne!(r.body, BodyKind::Empty);
    }
    let _ = (r.keep_alive(), r.is_upgrade(), r.method.is_idempotent());
}

/// A parsed response has a three-digit status, and its body framing follows RFC 9112 §6.3 for
/// every kind of request it may answer.
fn check_response(r: &Response<'_, '_>) {
    assert!((100..=999).contains(&r.status), "status {}", r.status);
    assert!(r.headers.len() <= MAX_HEADERS);
    assert_eq!(framing::scan_fields(r.headers), Ok(r.fields), "fields");
    let bodiless = (100..200).contains(&r.status) || r.status == 204 || r.status == 304;
    let f = &r.fields;
    for m in METHODS {
        let body = r.body(m);
        match body {
            _ if m == Method::Head || bodiless => assert_eq!(body, Ok(BodyKind::Empty)),
            _ if m == Method::Connect && (200..300).contains(&r.status) => {
                assert_eq!(body, Ok(BodyKind::UntilClose))
            }
            Ok(BodyKind::Empty) => assert_eq!(f.content_length, Some(0)),
            Ok(BodyKind::Length(n)) => assert!(n > 0 && f.content_length == Some(n)),
            Ok(BodyKind::Chunked) => assert_eq!(f.encoding, Encoding::ChunkedLast),
            Ok(BodyKind::UntilClose) => assert!(f.content_length.is_none()),
            Err(e) => assert!(matches!(
                e,
                FramingError::LengthAndEncoding | FramingError::EncodingOnHttp10
            )),
        }
    }
    let _ = r.keep_alive();
}

/// How many bytes of empty lines (CRLF or bare LF) start `data`, and how many lines: httparse
/// skips them before the start line, so they are not part of what [`find_head_end`] looks for.
fn leading_empty_lines(data: &[u8]) -> (usize, usize) {
    let (mut at, mut lines) = (0, 0);
    loop {
        match &data[at..] {
            [b'\n', ..] => at += 1,
            [b'\r', b'\n', ..] => at += 2,
            _ => return (at, lines),
        }
        lines += 1;
    }
}

/// One parse, checked against the cap and against [`find_head_end`].
///
/// The scan and httparse agree on where a head ends once the leading empty lines are set
/// aside: httparse skips any number of them, while the scan, which looks only for a line end
/// followed by an empty line, stops at the second of them. So with two or more leading empty
/// lines the scan answers early, and a caller that parses then gets `Partial` and must wait on.
fn check_outcome<T>(data: &[u8], cap: usize, got: &Outcome<T>, head_len: impl Fn(&T) -> usize) {
    let window = &data[..data.len().min(cap)];
    let (skip, lines) = leading_empty_lines(window);
    let scan = find_head_end(&window[skip..], 0).map(|e| e + skip);
    match got {
        Ok(Parse::Complete(s)) => {
            let n = head_len(s);
            assert!(n <= window.len(), "head_len {n} past the cap or the input");
            assert_eq!(scan, Some(n), "scan disagrees with a complete parse");
            let from_start = find_head_end(window, 0);
            if lines < 2 {
                assert_eq!(from_start, Some(n), "scan from 0");
            } else {
                assert!(from_start.is_some_and(|e| e <= skip), "scan from 0");
            }
        }
        Ok(Parse::Partial) => {
            assert!(data.len() < cap, "partial at the cap");
            assert_eq!(scan, None, "scan found an end httparse did not");
        }
        Err(HeadError::TooLarge) => {
            assert!(data.len() >= cap, "too large under the cap");
            assert_eq!(scan, None, "too large with a whole head in the window");
        }
        Err(e) => assert!(matches!(e.status(), 400 | 431 | 501 | 505), "{e:?}"),
    }
}

/// A small cap changes an answer only by refusing a head that does not fit in it.
fn caps_agree<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    full: &Outcome<T>,
    small: &Outcome<T>,
    head_len: impl Fn(&T) -> usize,
) {
    if data.len() < SMALL_CAP {
        assert_eq!(full, small, "both caps see the same bytes");
        return;
    }
    match (full, small) {
        (Ok(Parse::Complete(f)), _) if head_len(f) > SMALL_CAP => {
            assert_eq!(
                small,
                &Err(HeadError::TooLarge),
                "a head over the small cap"
            )
        }
        (_, Ok(Parse::Complete(_))) => assert_eq!(full, small, "a head under the small cap"),
        (_, Err(HeadError::TooLarge)) => {}
        // The small window may cut the first line, which can turn a 505 into a 400.
        (Err(_), Err(_)) => {}
        _ => panic!("caps disagree: {full:?} with the default, {small:?} with {SMALL_CAP}"),
    }
}

/// The head's end is found the same whether the bytes come at once or in pieces with the
/// scan resumed where it stopped; then the body after it decodes the same either way.
fn head_then_body(rest: &[u8], seed: u8) {
    let whole = find_head_end(rest, 0);
    let mut from = 0;
    let mut found = None;
    for end in cuts(rest.len(), seed) {
        found = find_head_end(&rest[..end], from);
        if found.is_some() {
            break;
        }
        from = end;
    }
    assert_eq!(found, whole, "resumed scan");
    let Some(end) = whole else { return };
    let mut h = EMPTY_HEADERS;
    let kind = match parse_request(&rest[..end], &mut h, DEFAULT_MAX_HEAD) {
        Ok(Parse::Complete(r)) => r.body,
        _ => BodyKind::Chunked,
    };
    same_body(kind, &rest[end..], seed);
}

/// What decoding one body came to.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    payload: Vec<u8>,
    done: bool,
    /// Input bytes the body took; differs between splits only after an error.
    consumed: usize,
    error: Option<BodyError>,
}

fn same_body(kind: BodyKind, input: &[u8], seed: u8) {
    let mut whole = decode(kind, input, &[input.len()]);
    let mut split = decode(kind, input, &cuts(input.len(), seed));
    if whole.error.is_some() {
        // Bytes before the bad one were reported in earlier steps only when split.
        (whole.consumed, split.consumed) = (0, 0);
    }
    assert_eq!(whole, split, "whole and split decodes differ");
}

/// Decodes `input` as it would arrive in pieces ending at `ends`, as a relay would: decode
/// each piece until it is used up or the body ends.
fn decode(kind: BodyKind, input: &[u8], ends: &[usize]) -> Decoded {
    let mut dec = BodyDecoder::new(kind);
    let mut out = Decoded {
        payload: Vec::new(),
        done: false,
        consumed: 0,
        error: None,
    };
    'pieces: for &end in ends {
        while out.consumed < end && !dec.is_done() {
            let piece = &input[out.consumed..end];
            match dec.decode(piece) {
                Ok(s) => {
                    assert!(s.consumed > 0 && s.consumed <= piece.len(), "step {s:?}");
                    out.payload.extend_from_slice(&piece[s.data]);
                    out.consumed += s.consumed;
                }
                Err(e) => {
                    out.error = Some(e);
                    break 'pieces;
                }
            }
        }
        if dec.is_done() {
            break;
        }
    }
    out.done = dec.is_done();
    out
}

/// Where to cut `len` bytes into pieces: `seed` picks the largest piece (1 to 16 bytes) and a
/// xorshift sequence the sizes, so one byte of fuzz input spans many ways to split.
fn cuts(len: usize, seed: u8) -> Vec<usize> {
    let max = usize::from(seed % 16) + 1;
    let mut x = u32::from(seed) | 0x100;
    let mut at = 0;
    let mut out = Vec::new();
    while at < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        at = (at + 1 + x as usize % max).min(len);
        out.push(at);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUESTS: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\nGET / HTTP/1.0\n\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"",
        b"\xff\x00\r\n",
    ];

    const RESPONSES: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"\n\nHTTP/1.1 304 Not Modified\r\n\r\n",
    ];

    const BODIES: &[&[u8]] = &[
        b"0\r\n\r\n",
        b"5;ext=1\r\nhello\r\n0\r\nT: v\r\n\r\nNEXT",
        b"3\r\nabcX",
        b"zz\r\n",
        b"ffffffffffffffff\r\nabc",
    ];

    #[test]
    fn heads() {
        for raw in REQUESTS.iter().chain(RESPONSES) {
            request_head(raw);
            response_head(raw);
        }
    }

    #[test]
    fn chunked_bodies() {
        for raw in BODIES.iter().chain(REQUESTS) {
            chunked(raw);
        }
    }

    #[test]
    fn splits() {
        for raw in REQUESTS.iter().chain(RESPONSES).chain(BODIES) {
            for mode in 0..8 {
                for seed in [0, 1, 7, 15, 200] {
                    split_invariance(&[&[mode, seed][..], raw].concat());
                }
            }
        }
    }

    #[test]
    fn leading_empty_lines_end_the_scan_early() {
        let raw = b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(leading_empty_lines(raw), (3, 2));
        assert_eq!(find_head_end(raw, 0), Some(3));
        let mut h = EMPTY_HEADERS;
        assert!(matches!(
            parse_request(&raw[..3], &mut h, DEFAULT_MAX_HEAD),
            Ok(Parse::Partial)
        ));
        request_head(raw);
    }

    #[test]
    fn cuts_cover_the_input() {
        for seed in 0..=255 {
            let c = cuts(40, seed);
            assert_eq!(c.last(), Some(&40));
            assert!(c.windows(2).all(|w| w[0] < w[1] && w[1] - w[0] <= 16));
        }
        assert!(cuts(0, 3).is_empty());
    }
}
