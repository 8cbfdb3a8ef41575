//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally one byte state at a time,
//! so a body split anywhere decodes the same, and every size and line is bounded.
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-val = token / quoted-string
//! ```
//!
//! The body passes on to the next hop as it came, so anything a stricter or a looser parser
//! could frame differently is refused here: extensions must follow the grammar, and a size
//! has at most 16 hex digits, leading zeros included (as Go's server counts them).

use super::framing::Step;

/// The longest chunk-size line (size, extensions, CRLF) accepted. Extensions carry nothing we
/// use; a sender that needs more than this is hostile or broken.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;

/// The most hex digits of a chunk-size, leading zeros included.
const MAX_SIZE_DIGITS: usize = 16;

/// The most bytes of trailer fields accepted after the last chunk.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Fields no trailer section may carry: they frame or route the message, which must be
/// settled before its content (RFC 9110 §6.5.1). Trailers pass on as they came, and a
/// recipient that merged these into the header section (which §6.5.2 forbids, but not every
/// backend is careful) would re-frame or re-route the message after the fact.
const NOT_IN_TRAILERS: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"host"];

/// Why a chunked body is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size that is empty, not hex, or overflows u64.
    BadSize,
    /// An extension or size line longer than [`MAX_CHUNK_LINE`], or a bad byte in it.
    BadExtension,
    /// A line that does not end in CRLF, or a CR not followed by LF.
    BadLineEnd,
    /// Chunk data not followed by CRLF.
    MissingDataCrlf,
    /// A trailer field that is malformed or over [`MAX_TRAILER_BYTES`].
    BadTrailer,
    /// A trailer field that frames or routes the message: `Content-Length`,
    /// `Transfer-Encoding` or `Host`.
    FramingTrailer,
}

impl ChunkedError {
    /// A short reason, for logs and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkedError::BadSize => "invalid chunk size",
            ChunkedError::BadExtension => "invalid chunk extension",
            ChunkedError::BadLineEnd => "chunk line not ended by CRLF",
            ChunkedError::MissingDataCrlf => "chunk data not followed by CRLF",
            ChunkedError::BadTrailer => "invalid trailer section",
            ChunkedError::FramingTrailer => "framing or routing field in the trailer section",
        }
    }
}

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the decoder stands. Each state knows only what it needs to go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` counts them so an empty size is caught.
    Size { size: u64, digits: usize },
    /// Spaces after the size or an extension, allowed only before `;` (the BWS of chunk-ext).
    SizeSpace { size: u64, line: usize },
    /// Inside the extensions, up to the CR.
    Extension { size: u64, line: usize, at: Ext },
    /// Saw the CR ending the size line; LF must follow.
    SizeLf { size: u64 },
    /// This many data bytes remain in the current chunk.
    Data { remaining: u64 },
    /// Chunk data ended; CR must follow.
    DataCr,
    /// CR after data; LF must follow.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart { total: usize },
    /// Inside a trailer field name, `len` bytes into it; `like` has a bit for each name of
    /// [`NOT_IN_TRAILERS`] it could still be.
    TrailerName { total: usize, len: u8, like: u8 },
    /// Inside a trailer field value, up to the CR.
    TrailerValue { total: usize },
    /// CR ending a trailer line; LF must follow.
    TrailerLf { total: usize },
    /// CR of the final empty line; LF must follow.
    EndLf,
    /// The body is complete.
    Done,
}

/// Where an extension stands (see the grammar at the top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// After `;`: spaces, then the name.
    Start,
    /// In the name.
    Name,
    /// Spaces after the name: `=` or `;` must follow.
    NameEnd,
    /// After `=`: spaces, then a token or a quoted string.
    ValueStart,
    /// In a token value.
    Token,
    /// In a quoted string.
    Quoted,
    /// After a backslash in a quoted string.
    Escape,
    /// After the closing quote.
    ValueEnd,
}

/// Which names of [`NOT_IN_TRAILERS`] in the set `like` (a bit each) have `b` at `at`,
/// ignoring case.
fn still_like(like: u8, at: u8, b: u8) -> u8 {
    let mut out = 0;
    for (i, name) in NOT_IN_TRAILERS.iter().enumerate() {
        let fits = name
            .get(usize::from(at))
            .is_some_and(|c| c.eq_ignore_ascii_case(&b));
        if like & (1 << i) != 0 && fits {
            out |= 1 << i;
        }
    }
    out
}

/// Whether a name `len` bytes long that is still `like` these is one of them.
fn is_named(like: u8, len: u8) -> bool {
    NOT_IN_TRAILERS
        .iter()
        .enumerate()
        .any(|(i, name)| like & (1 << i) != 0 && name.len() == usize::from(len))
}

/// What one byte of an extension leads to.
enum ExtMove {
    To(Ext),
    /// Spaces that only `;` may follow.
    Space,
    /// The CR ending the line.
    End,
}

/// One byte of an extension, or `None` when the byte breaks the grammar.
fn ext_next(at: Ext, b: u8) -> Option<ExtMove> {
    use Ext::*;
    let ws = matches!(b, b' ' | b'\t');
    Some(match (at, b) {
        (Start | ValueStart | NameEnd, _) if ws => ExtMove::To(at),
        (Start, _) if is_tchar(b) => ExtMove::To(Name),
        (Name, _) if is_tchar(b) => ExtMove::To(Name),
        (Name, _) if ws => ExtMove::To(NameEnd),
        (Name | NameEnd, b'=') => ExtMove::To(ValueStart),
        (Name | NameEnd | Token | ValueEnd, b';') => ExtMove::To(Start),
        (Name | Token | ValueEnd, b'\r') => ExtMove::End,
        (Token | ValueEnd, _) if ws => ExtMove::Space,
        (ValueStart, b'"') => ExtMove::To(Quoted),
        (ValueStart | Token, _) if is_tchar(b) => ExtMove::To(Token),
        (Quoted, b'"') => ExtMove::To(ValueEnd),
        (Quoted, b'\\') => ExtMove::To(Escape),
        // qdtext, and what a backslash may quote: tab, space, visible bytes, obs-text.
        (Quoted | Escape, b'\t' | b' '..=b'~' | 0x80..=0xff) => ExtMove::To(Quoted),
        _ => return None,
    })
}

/// An incremental decoder for one chunked body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
        }
    }

    /// The last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes a prefix of `input`, stopping after one run of chunk data so the caller can use
    /// it, or when the body ends. Consumes at least one byte when `input` is non-empty and the
    /// body is not done, and none once it is: what follows belongs to the next message.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, ChunkedError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { remaining } = self.state {
                let avail = input.len() - i;
                let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(avail);
                let rest = remaining - take as u64;
                self.state = if rest == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: rest }
                };
                return Ok(Step {
                    consumed: i + take,
                    data: i..i + take,
                    done: false,
                });
            }
            self.state = self.next(input[i])?;
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: i..i,
            done: self.state == State::Done,
        })
    }

    /// One byte of framing (anything but chunk data).
    fn next(&self, b: u8) -> Result<State, ChunkedError> {
        use ChunkedError::*;
        Ok(match self.state {
            State::Size { size, digits } => match (hex_value(b), b) {
                (Some(v), _) => {
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(v)))
                        .ok_or(BadSize)?;
                    if digits + 1 > MAX_SIZE_DIGITS {
                        return Err(BadSize);
                    }
                    State::Size {
                        size,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(BadSize),
                (_, b'\r') => State::SizeLf { size },
                (_, b';') => State::Extension {
                    size,
                    line: digits,
                    at: Ext::Start,
                },
                (_, b' ' | b'\t') => State::SizeSpace { size, line: digits },
                _ => return Err(BadSize),
            },
            State::SizeSpace { size, line } => match b {
                b' ' | b'\t' => State::SizeSpace {
                    size,
                    line: bounded(line, MAX_CHUNK_LINE, BadExtension)?,
                },
                b';' => State::Extension {
                    size,
                    line,
                    at: Ext::Start,
                },
                _ => return Err(BadExtension),
            },
            State::Extension { size, line, at } => {
                let line = bounded(line, MAX_CHUNK_LINE, BadExtension)?;
                match ext_next(at, b).ok_or(BadExtension)? {
                    ExtMove::To(at) => State::Extension { size, line, at },
                    ExtMove::Space => State::SizeSpace { size, line },
                    ExtMove::End => State::SizeLf { size },
                }
            }
            State::SizeLf { size } => match b {
                b'\n' if size == 0 => State::TrailerStart { total: 0 },
                b'\n' => State::Data { remaining: size },
                _ => return Err(BadLineEnd),
            },
            // `decode` takes data runs whole before it calls `next`.
            State::Data { remaining } => State::Data { remaining },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(MissingDataCrlf),
            },
            State::DataLf => match b {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(MissingDataCrlf),
            },
            State::TrailerStart { total } => match b {
                b'\r' => State::EndLf,
                _ if is_tchar(b) => State::TrailerName {
                    total: bounded(total, MAX_TRAILER_BYTES, BadTrailer)?,
                    len: 1,
                    like: still_like(u8::MAX, 0, b),
                },
                _ => return Err(BadTrailer),
            },
            State::TrailerName { total, len, like } => {
                let total = bounded(total, MAX_TRAILER_BYTES, BadTrailer)?;
                match b {
                    b':' if is_named(like, len) => return Err(FramingTrailer),
                    b':' => State::TrailerValue { total },
                    _ if is_tchar(b) => State::TrailerName {
                        total,
                        len: len.saturating_add(1),
                        like: still_like(like, len, b),
                    },
                    _ => return Err(BadTrailer),
                }
            }
            State::TrailerValue { total } => {
                let total = bounded(total, MAX_TRAILER_BYTES, BadTrailer)?;
                match b {
                    b'\r' => State::TrailerLf { total },
                    b'\t' | b' '..=b'~' | 0x80..=0xff => State::TrailerValue { total },
                    _ => return Err(BadTrailer),
                }
            }
            State::TrailerLf { total } => match b {
                b'\n' => State::TrailerStart {
                    total: bounded(total, MAX_TRAILER_BYTES, BadTrailer)?,
                },
                _ => return Err(BadLineEnd),
            },
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return Err(BadLineEnd),
            },
            State::Done => State::Done,
        })
    }
}

/// Counts one more byte of a bounded line or section.
fn bounded(n: usize, max: usize, err: ChunkedError) -> Result<usize, ChunkedError> {
    if n + 1 > max {
        Err(err)
    } else {
        Ok(n + 1)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 9110 §5.6.2 token characters.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes; returns the payload, whether it ended,
    /// and how many bytes of the input the body took.
    fn run(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool, usize), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        let mut fed = 0;
        while fed < input.len() && !d.is_done() {
            let end = (fed + piece).min(input.len());
            let mut at = fed;
            while at < end && !d.is_done() {
                let s = d.decode(&input[at..end])?;
                assert!(s.consumed > 0, "no progress");
                out.extend_from_slice(&input[at..end][s.data]);
                at += s.consumed;
            }
            used = at;
            fed = end;
        }
        Ok((out, d.is_done(), used))
    }

    #[test]
    fn valid_bodies() {
        // (input, payload, how many bytes at the end belong to the next message)
        let cases: &[(&[u8], &[u8], usize)] = &[
            (b"0\r\n\r\n", b"", 0),
            (b"4\r\nRust\r\n0\r\n\r\n", b"Rust", 0),
            (b"4\r\nRust\r\n0\r\n\r\nGET / HTTP/1.1", b"Rust", 14),
            (b"3;a=b;c=\"d\"\r\nabc\r\n0\r\n\r\n", b"abc", 0),
            (b"3 ;x\r\nabc\r\n0\r\n\r\n", b"abc", 0),
            (
                b"3 ; a = b ;c= \"d;\\\"\xff\" ;e\r\nabc\r\n0\r\n\r\n",
                b"abc",
                0,
            ),
            (b"3;a=b \t;c\r\nabc\r\n0;last\r\n\r\n", b"abc", 0),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 0),
            (
                b"1\r\na\r\n1\r\nb\r\n0\r\nX-Sum: 1\r\nY: \r\n\r\n",
                b"ab",
                0,
            ),
            (b"00000002\r\nhi\r\n000\r\n\r\n", b"hi", 0),
            // Names that only look like the ones a trailer may not carry.
            (
                b"0\r\nHos: a\r\nHosts: b\r\nX-Host: c\r\nContent-Lengt: 1\r\n\r\n",
                b"",
                0,
            ),
            (
                b"0\r\nContent-Length-X: 1\r\nTransfer-Encoding2: x\r\n\r\n",
                b"",
                0,
            ),
            (b"0000000000000002\r\nhi\r\n0\r\n\r\n", b"hi", 0),
            (b"ffffffffffffffff\r\n", b"", 0),
        ];
        for (input, payload, rest) in cases {
            let used = input.len() - rest;
            let (out, done, n) = run(input, input.len()).unwrap();
            assert_eq!(&out[..], *payload, "{:?}", String::from_utf8_lossy(input));
            if payload.is_empty() && !done {
                continue; // the huge chunk: still waiting for data
            }
            assert!(done);
            assert_eq!(n, used, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn invalid_bodies() {
        use ChunkedError::*;
        let cases: &[(&[u8], ChunkedError)] = &[
            (b"\r\n", BadSize),
            (b"g\r\n", BadSize),
            (b"-1\r\n", BadSize),
            (b"0x5\r\n", BadSize),
            (b"10000000000000000\r\n", BadSize), // 2^64 overflows
            (b"1\n", BadSize),                   // bare LF after the size
            (b"1\rX", BadLineEnd),               // bare CR
            (b"1 x\r\n", BadExtension),
            (b"1;a\x00\r\n", BadExtension),
            (b"1;a\nb\r\n", BadExtension),
            (b"00000000000000001\r\n", BadSize), // 17 digits
            (b"1;\r\n", BadExtension),           // no name
            (b"1;a=\r\n", BadExtension),         // no value
            (b"1;a \r\n", BadExtension),         // space before the end
            (b"1;a=b \r\n", BadExtension),
            (b"1;a=\"x\r\n", BadExtension),  // the quote never ends
            (b"1;a=\xff\r\n", BadExtension), // obs-text outside quotes
            (b"1;a=\"x\"y\r\n", BadExtension),
            (b"1;a=b=c\r\n", BadExtension),
            (b"1;a=\"\\\x01\"\r\n", BadExtension),
            (b"3\r\nabcX\r\n", MissingDataCrlf),
            (b"3\r\nabc\rX", MissingDataCrlf),
            (b"3\r\nabc\n0\r\n\r\n", MissingDataCrlf),
            (b"0\r\nbad header\r\n\r\n", BadTrailer),
            (b"0\r\n:x\r\n\r\n", BadTrailer),
            (b"0\r\nA: b\x01\r\n\r\n", BadTrailer),
            (b"0\r\nA: b\rc\r\n\r\n", BadLineEnd),
            (b"0\r\n\rX", BadLineEnd),
            (b"0\r\n\n", BadTrailer),
            (b"0\r\nContent-Length: 5\r\n\r\n", FramingTrailer),
            (b"0\r\nX: 1\r\nhOsT: evil\r\n\r\n", FramingTrailer),
            (b"0\r\ntransfer-encoding:chunked\r\n\r\n", FramingTrailer),
        ];
        for (input, want) in cases {
            assert_eq!(
                run(input, input.len()).map(|_| ()),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn lines_and_trailers_are_bounded() {
        let mut long_ext = b"1;".to_vec();
        long_ext.resize(MAX_CHUNK_LINE + 10, b'a');
        assert_eq!(
            run(&long_ext, 7).map(|_| ()),
            Err(ChunkedError::BadExtension)
        );

        let mut zeros = vec![b'0'; MAX_CHUNK_LINE + 10];
        zeros.push(b'\r');
        assert_eq!(run(&zeros, 100).map(|_| ()), Err(ChunkedError::BadSize));

        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILER_BYTES + 100 {
            trailers.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaa\r\n");
        }
        trailers.extend_from_slice(b"\r\n");
        assert_eq!(
            run(&trailers, 999).map(|_| ()),
            Err(ChunkedError::BadTrailer)
        );
    }

    #[test]
    fn nothing_is_consumed_after_the_end() {
        // Found by fuzzing: a finished decoder took one byte of the next message per call.
        let mut d = ChunkedDecoder::new();
        let s = d.decode(b"0\r\n\r\nG").unwrap();
        assert_eq!((s.consumed, s.done), (5, true));
        let s = d.decode(b"GET").unwrap();
        assert_eq!((s.consumed, s.data, s.done), (0, 0..0, true));
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let bodies: &[&[u8]] = &[
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\nNEXT",
            b"5 ; a = \"q;\\\"\" ;b\r\nhello\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\rX",
            b"2\r\nab\r\n1x\r\n",
        ];
        for body in bodies {
            let whole = run(body, body.len());
            for piece in 1..body.len() {
                assert_eq!(run(body, piece), whole, "piece {piece}");
            }
        }
    }
}
