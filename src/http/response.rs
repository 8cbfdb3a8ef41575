//! Answers a server gives by itself: static bytes for the error statuses, and a writer for
//! the head of a response whose body length is known.

use std::io::Write;

/// The answers either program gives without asking anyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canned {
    /// 400: the request cannot be parsed or framed.
    BadRequest,
    /// 404: no such path (rr-echo).
    NotFound,
    /// 405: the path exists, the method does not (rr-echo adds `Allow` itself).
    MethodNotAllowed,
    /// 408: the head did not arrive before its deadline.
    RequestTimeout,
    /// 413: the body is over the configured limit.
    PayloadTooLarge,
    /// 414: the request line alone is over the head cap.
    UriTooLong,
    /// 417: an `Expect` other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationFailed,
    /// 431: the head is over its size or field-count cap.
    HeaderFieldsTooLarge,
    /// 500: the server failed (rr-echo's simulated errors).
    InternalError,
    /// 501: a transfer coding we do not implement.
    NotImplemented,
    /// 502: the backend could not be reached or answered garbage.
    BadGateway,
    /// 503: no backend is usable.
    ServiceUnavailable,
    /// 504: the backend did not answer in time.
    GatewayTimeout,
    /// 505: not HTTP/1.0 or 1.1.
    VersionNotSupported,
}

/// One canned answer: `Connection: close`, a plain-text body and its exact length. The length
/// is written out by hand and checked by a test against the body.
macro_rules! canned {
    ($code:literal, $reason:literal, $len:literal, $body:literal) => {
        concat!(
            "HTTP/1.1 ",
            $code,
            " ",
            $reason,
            "\r\nContent-Type: text/plain\r\nContent-Length: ",
            $len,
            "\r\nConnection: close\r\n\r\n",
            $body
        )
        .as_bytes()
    };
}

impl Canned {
    /// The answer for a head refused with this status, if there is one.
    pub fn for_status(status: u16) -> Option<Canned> {
        Some(match status {
            400 => Canned::BadRequest,
            404 => Canned::NotFound,
            405 => Canned::MethodNotAllowed,
            408 => Canned::RequestTimeout,
            413 => Canned::PayloadTooLarge,
            414 => Canned::UriTooLong,
            417 => Canned::ExpectationFailed,
            431 => Canned::HeaderFieldsTooLarge,
            500 => Canned::InternalError,
            501 => Canned::NotImplemented,
            502 => Canned::BadGateway,
            503 => Canned::ServiceUnavailable,
            504 => Canned::GatewayTimeout,
            505 => Canned::VersionNotSupported,
            _ => return None,
        })
    }

    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            Canned::BadRequest => 400,
            Canned::NotFound => 404,
            Canned::MethodNotAllowed => 405,
            Canned::RequestTimeout => 408,
            Canned::PayloadTooLarge => 413,
            Canned::UriTooLong => 414,
            Canned::ExpectationFailed => 417,
            Canned::HeaderFieldsTooLarge => 431,
            Canned::InternalError => 500,
            Canned::NotImplemented => 501,
            Canned::BadGateway => 502,
            Canned::ServiceUnavailable => 503,
            Canned::GatewayTimeout => 504,
            Canned::VersionNotSupported => 505,
        }
    }

    /// The whole response, ending the connection: after any of these the server cannot be sure
    /// where the next request would start, or has no reason to wait for one.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Canned::BadRequest => canned!("400", "Bad Request", "12", "Bad Request\n"),
            Canned::NotFound => canned!("404", "Not Found", "10", "Not Found\n"),
            Canned::MethodNotAllowed => {
                canned!("405", "Method Not Allowed", "19", "Method Not Allowed\n")
            }
            Canned::RequestTimeout => canned!("408", "Request Timeout", "16", "Request Timeout\n"),
            Canned::PayloadTooLarge => {
                canned!("413", "Content Too Large", "18", "Content Too Large\n")
            }
            Canned::UriTooLong => canned!("414", "URI Too Long", "13", "URI Too Long\n"),
            Canned::ExpectationFailed => {
                canned!("417", "Expectation Failed", "19", "Expectation Failed\n")
            }
            Canned::HeaderFieldsTooLarge => canned!(
                "431",
                "Request Header Fields Too Large",
                "32",
                "Request Header Fields Too Large\n"
            ),
            Canned::InternalError => {
                canned!(
                    "500",
                    "Internal Server Error",
                    "22",
                    "Internal Server Error\n"
                )
            }
            Canned::NotImplemented => canned!("501", "Not Implemented", "16", "Not Implemented\n"),
            Canned::BadGateway => canned!("502", "Bad Gateway", "12", "Bad Gateway\n"),
            Canned::ServiceUnavailable => {
                canned!("503", "Service Unavailable", "20", "Service Unavailable\n")
            }
            Canned::GatewayTimeout => canned!("504", "Gateway Timeout", "16", "Gateway Timeout\n"),
            Canned::VersionNotSupported => canned!(
                "505",
                "HTTP Version Not Supported",
                "27",
                "HTTP Version Not Supported\n"
            ),
        }
    }
}

/// The reason phrase for the codes these programs send.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `100 Continue`, sent when a client that asked for it may send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends a response head with a known body length to `out`: status line, the given extra
/// fields (each written as `name: value`), `Content-Length`, and `Connection: close` when the
/// connection ends after this answer. Writing into a `Vec` with spare capacity does not allocate.
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    extra: &[(&str, &[u8])],
    content_length: usize,
    close: bool,
) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "Content-Length: {content_length}\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::framing::BodyKind;
    use crate::http::head::Method;
    use crate::http::head::{parse_response, Parse, EMPTY_HEADERS};

    const ALL: [u16; 14] = [
        400, 404, 405, 408, 413, 414, 417, 431, 500, 501, 502, 503, 504, 505,
    ];

    #[test]
    fn canned_answers_are_valid_and_framed_exactly() {
        for code in ALL {
            let c = Canned::for_status(code).unwrap();
            assert_eq!(c.status(), code);
            let bytes = c.bytes();
            let mut h = EMPTY_HEADERS;
            let Ok(Parse::Complete(r)) = parse_response(bytes, &mut h, 4096) else {
                panic!("{code} does not parse");
            };
            assert_eq!(r.status, code);
            assert_eq!(r.reason, reason(code));
            assert!(!r.keep_alive(), "{code} must close");
            let body_len = bytes.len() - r.head_len;
            assert_eq!(r.body(Method::Get), Ok(BodyKind::Length(body_len as u64)));
        }
        assert_eq!(Canned::for_status(200), None);
    }

    #[test]
    fn written_heads_parse_back() {
        let mut out = Vec::new();
        write_head(&mut out, 200, &[("X-Backend", b"e1")], 5, false);
        out.extend_from_slice(b"hello");
        let mut h = EMPTY_HEADERS;
        let Ok(Parse::Complete(r)) = parse_response(&out, &mut h, 4096) else {
            panic!("does not parse");
        };
        assert_eq!(r.status, 200);
        assert!(r.keep_alive());
        assert_eq!(r.headers[0].name, "X-Backend");
        assert_eq!(r.body(Method::Get), Ok(BodyKind::Length(5)));
    }
}
