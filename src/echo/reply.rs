//! What rr-echo answers, decided from the route, the body and the misbehaviour settings, and
//! the bytes of that answer.
//!
//! Deciding is apart from writing because a delayed answer is decided when its request is
//! complete (so draws follow arrival order) but written only when its timer fires.

use std::time::Duration;

use serde_json::value::RawValue;

use super::behaviour::Behaviour;
use super::control;
use super::request::{Pending, Persist, Route};
use crate::http::response::write_head;

/// `/healthz` while healthy.
const HEALTHY: &[u8] = br#"{"status":"ok"}"#;
/// `/healthz` while made unhealthy through `/control`.
const UNHEALTHY: &[u8] = br#"{"status":"unhealthy"}"#;
/// A simulated failure.
const SIMULATED: &[u8] = br#"{"error":"simulated failure"}"#;
const NOT_FOUND: &[u8] = br#"{"error":"not found"}"#;
const WRONG_METHOD: &[u8] = br#"{"error":"method not allowed"}"#;

/// Where the body of an answer comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// The request's own body, still held by the connection.
    Echo,
    /// Fixed bytes: the hot paths allocate nothing.
    Static(&'static [u8]),
    /// Built for this answer (control state, error messages).
    Owned(Vec<u8>),
}

/// An answer, decided but not yet written.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Body,
    /// The `Allow` field of a 405.
    pub allow: Option<&'static str>,
}

impl Reply {
    fn new(status: u16, body: Body) -> Reply {
        Reply {
            status,
            body,
            allow: None,
        }
    }

    /// An error answer with a JSON body `{"error": msg}`.
    pub fn error(status: u16, msg: &str) -> Reply {
        Reply::new(status, Body::Owned(control::error_json(msg)))
    }
}

/// Decides the answer to a complete request whose body is `body`, and how long to hold it.
/// Only [`Route::Reflect`] draws from the misbehaviour generator, so health checks and control
/// requests neither misbehave nor shift the sequence.
pub fn answer(route: Route, body: &[u8], b: &mut Behaviour, name: &str) -> (Reply, Duration) {
    let reply = match route {
        Route::Reflect => {
            let d = b.decide();
            let reply = if d.fail {
                Reply::new(500, Body::Static(SIMULATED))
            } else {
                reflect(body)
            };
            return (reply, d.delay);
        }
        Route::Health if b.is_healthy() => Reply::new(200, Body::Static(HEALTHY)),
        Route::Health => Reply::new(503, Body::Static(UNHEALTHY)),
        Route::ControlGet => Reply::new(200, Body::Owned(control::state_json(name, b))),
        Route::ControlPost => match control::apply(body, b) {
            Ok(()) => Reply::new(200, Body::Owned(control::state_json(name, b))),
            Err(msg) => Reply::error(400, &msg),
        },
        Route::WrongMethod(allow) => Reply {
            status: 405,
            body: Body::Static(WRONG_METHOD),
            allow: Some(allow),
        },
        Route::NotFound => Reply::new(404, Body::Static(NOT_FOUND)),
    };
    (reply, Duration::ZERO)
}

/// The body itself when it is one JSON value (whitespace around it allowed), else 400. The
/// check builds no tree: `RawValue` only validates and borrows.
fn reflect(body: &[u8]) -> Reply {
    match serde_json::from_slice::<&RawValue>(body) {
        Ok(_) => Reply::new(200, Body::Echo),
        Err(e) => Reply::error(400, &format!("invalid JSON: {e}")),
    }
}

/// Appends the answer to `out`. `echo` is the request body, used when the reply echoes it;
/// `name` goes into `X-Echo-Instance`; `date` (an IMF-fixdate) into `Date`, which an origin
/// server with a clock sends on every answer (RFC 9110 §6.6.1). Allocation-free once `out` has
/// grown to its working size.
pub fn write(
    out: &mut Vec<u8>,
    reply: &Reply,
    req: Pending,
    echo: &[u8],
    name: &[u8],
    date: &[u8],
) {
    let body: &[u8] = match &reply.body {
        Body::Echo => echo,
        Body::Static(b) => b,
        Body::Owned(b) => b,
    };
    let mut fields: [(&str, &[u8]); 4] = [
        ("Content-Type", b"application/json"),
        ("X-Echo-Instance", name),
        ("", b""),
        ("", b""),
    ];
    let mut n = 2;
    if let Some(allow) = reply.allow {
        fields[n] = ("Allow", allow.as_bytes());
        n += 1;
    }
    if req.persist == Persist::KeepAlive10 {
        fields[n] = ("Connection", b"keep-alive");
        n += 1;
    }
    let close = req.persist == Persist::Close;
    write_head(out, reply.status, date, &fields[..n], body.len(), close);
    if !req.head_only {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::behaviour::{DelayMs, Settings};

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    const KEEP: Pending = Pending {
        route: Route::Reflect,
        head_only: false,
        persist: Persist::KeepAlive,
    };

    fn run(route: Route, body: &[u8], b: &mut Behaviour) -> (u16, Vec<u8>) {
        let (reply, _) = answer(route, body, b, "e1");
        let mut out = Vec::new();
        write(&mut out, &reply, KEEP, body, b"e1", DATE);
        let text = String::from_utf8(out).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        (reply.status, body.as_bytes().to_vec())
    }

    #[test]
    fn answers() {
        let mut b = Behaviour::new(Settings::default());
        let cases: &[(Route, &[u8], u16, &[u8])] = &[
            (Route::Reflect, br#"{"a":[1,2]}"#, 200, br#"{"a":[1,2]}"#),
            (Route::Reflect, b" [1] \r\n\t", 200, b" [1] \r\n\t"),
            (Route::Reflect, b"42", 200, b"42"),
            (Route::Health, b"", 200, br#"{"status":"ok"}"#),
            (Route::NotFound, b"", 404, br#"{"error":"not found"}"#),
            (Route::WrongMethod("POST"), b"", 405, WRONG_METHOD),
        ];
        for (route, body, status, want) in cases {
            let got = run(*route, body, &mut b);
            assert_eq!(got, (*status, want.to_vec()), "{route:?}");
        }
        for bad in [&b""[..], b"{", b"{} {}", b"nul", b"\xff"] {
            let (status, body) = run(Route::Reflect, bad, &mut b);
            assert_eq!(status, 400, "{bad:?}");
            assert!(body.starts_with(br#"{"error":"invalid JSON: "#), "{bad:?}");
        }
    }

    #[test]
    fn misbehaviour_spares_health_and_control() {
        let s = Settings {
            error_rate: 1.0,
            delay: DelayMs { min: 50, max: 50 },
            ..Settings::default()
        };
        let mut b = Behaviour::new(s);
        let (r, d) = answer(Route::Reflect, b"{}", &mut b, "e1");
        assert_eq!((r.status, d), (500, Duration::from_millis(50)));
        for route in [Route::Health, Route::ControlGet, Route::NotFound] {
            let (r, d) = answer(route, b"", &mut b, "e1");
            assert!(r.status != 500 && d.is_zero(), "{route:?}");
        }
        assert_eq!(b.requests(), 1);
        let (r, _) = answer(Route::ControlPost, br#"{"healthy":false}"#, &mut b, "e1");
        assert_eq!(r.status, 200);
        assert_eq!(run(Route::Health, b"", &mut b).0, 503);
        assert_eq!(
            answer(Route::ControlPost, b"[]", &mut b, "e1").0.status,
            400
        );
    }

    #[test]
    fn heads_carry_the_instance_and_framing() {
        let reply = Reply {
            status: 405,
            body: Body::Static(WRONG_METHOD),
            allow: Some("GET, HEAD"),
        };
        let req = Pending {
            route: Route::Health,
            head_only: true,
            persist: Persist::KeepAlive10,
        };
        let mut out = Vec::new();
        write(&mut out, &reply, req, b"", b"echo-1", DATE);
        let want = format!(
            "HTTP/1.1 405 Method Not Allowed\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: application/json\r\n\
             X-Echo-Instance: echo-1\r\nAllow: GET, HEAD\r\nConnection: keep-alive\r\n\
             Content-Length: {}\r\n\r\n",
            WRONG_METHOD.len()
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);

        let mut out = Vec::new();
        let close = Pending {
            persist: Persist::Close,
            ..KEEP
        };
        write(
            &mut out,
            &Reply::new(200, Body::Echo),
            close,
            b"[]",
            b"e",
            DATE,
        );
        assert!(out.ends_with(b"Content-Length: 2\r\nConnection: close\r\n\r\n[]"));
    }
}
