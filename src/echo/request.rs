//! From the bytes of a request head to what rr-echo needs to know about it: which endpoint it
//! is for, how its body is framed, and whether the connection stays open after the answer.
//!
//! Pure and allocation-free: the result holds no borrow of the bytes, so the caller can consume
//! the head from its buffer right away.

use crate::http::framing::BodyKind;
use crate::http::head::{self, HeadError, Method, Parse, Version, EMPTY_HEADERS};

/// The endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /` or `POST /reflect`: echo a JSON body. Misbehaviour applies here.
    Reflect,
    /// `GET` or `HEAD /healthz`.
    Health,
    /// `GET /control`: report the settings.
    ControlGet,
    /// `POST /control`: change the settings.
    ControlPost,
    /// A known path with a method it does not take; the value is the `Allow` field.
    WrongMethod(&'static str),
    /// No such path.
    NotFound,
}

/// Whether the connection outlives this exchange, and how the answer must say so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// The answer carries `Connection: close` and the connection ends after it.
    Close,
    /// HTTP/1.1: persistent without saying so.
    KeepAlive,
    /// HTTP/1.0 with `Connection: keep-alive`: the answer must confirm it, or a 1.0 client
    /// (ApacheBench, for one) assumes the connection ends.
    KeepAlive10,
}

/// What is kept of a request while its body arrives and its answer is prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Which endpoint answers.
    pub route: Route,
    /// A HEAD request: the answer has a head only.
    pub head_only: bool,
    /// What happens to the connection after the answer.
    pub persist: Persist,
}

/// A request head, read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// What the answer depends on.
    pub pending: Pending,
    /// How the body is framed.
    pub body: BodyKind,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// How many bytes of the buffer the head took.
    pub head_len: usize,
}

/// The answer of [`read_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadStep {
    /// The head is not complete yet.
    Partial,
    /// The head is refused; the connection must close after the error answer.
    Bad(HeadError),
    /// A whole head.
    Ready(Head),
}

/// Reads the request head at the start of `buf`, looking at no more than `max_head` bytes.
pub fn read_head(buf: &[u8], max_head: usize) -> HeadStep {
    let mut headers = EMPTY_HEADERS;
    let req = match head::parse_request(buf, &mut headers, max_head) {
        Ok(Parse::Complete(req)) => req,
        Ok(Parse::Partial) => return HeadStep::Partial,
        Err(e) => return HeadStep::Bad(e),
    };
    let persist = match (req.keep_alive(), req.version) {
        (false, _) => Persist::Close,
        (true, Version::Http10) => Persist::KeepAlive10,
        (true, Version::Http11) => Persist::KeepAlive,
    };
    HeadStep::Ready(Head {
        pending: Pending {
            route: route(req.method, req.target),
            head_only: req.method == Method::Head,
            persist,
        },
        body: req.body,
        expect_continue: req.expects_continue(),
        head_len: req.head_len,
    })
}

/// The endpoint for `method` on `target`.
pub fn route(method: Method, target: &str) -> Route {
    use Method::*;
    match (path_of(target), method) {
        ("/" | "/reflect", Post) => Route::Reflect,
        ("/" | "/reflect", _) => Route::WrongMethod("POST"),
        ("/healthz", Get | Head) => Route::Health,
        ("/healthz", _) => Route::WrongMethod("GET, HEAD"),
        ("/control", Get) => Route::ControlGet,
        ("/control", Post) => Route::ControlPost,
        ("/control", _) => Route::WrongMethod("GET, POST"),
        _ => Route::NotFound,
    }
}

/// The path of a request target: the query is dropped, and the absolute form
/// (`http://host/path`, which a proxy may send) is cut down to its path.
fn path_of(target: &str) -> &str {
    let t = match target.split_once("://") {
        Some((_, rest)) if !target.starts_with('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    t.split(['?', '#']).next().unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use Method::*;
        let cases = [
            (Post, "/", Route::Reflect),
            (Post, "/reflect", Route::Reflect),
            (Post, "/?x=1", Route::Reflect),
            (Post, "http://a:8/reflect?q", Route::Reflect),
            (Get, "/", Route::WrongMethod("POST")),
            (Put, "/reflect", Route::WrongMethod("POST")),
            (Get, "/healthz", Route::Health),
            (Head, "/healthz", Route::Health),
            (Get, "http://a/healthz", Route::Health),
            (Post, "/healthz", Route::WrongMethod("GET, HEAD")),
            (Get, "/control", Route::ControlGet),
            (Post, "/control", Route::ControlPost),
            (Delete, "/control", Route::WrongMethod("GET, POST")),
            (Get, "/healthz/", Route::NotFound),
            (Get, "/nope", Route::NotFound),
            (Options, "*", Route::NotFound),
            (Get, "http://a", Route::WrongMethod("POST")),
        ];
        for (m, t, want) in cases {
            assert_eq!(route(m, t), want, "{m:?} {t}");
        }
    }

    fn ready(raw: &[u8]) -> Head {
        match read_head(raw, 1024) {
            HeadStep::Ready(h) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn heads() {
        let h = ready(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n{}x");
        assert_eq!(h.pending.route, Route::Reflect);
        assert_eq!(h.pending.persist, Persist::KeepAlive);
        assert_eq!((h.body, h.head_len), (BodyKind::Length(3), 47));
        assert!(!h.expect_continue);

        let h = ready(b"HEAD /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(
            h.pending,
            Pending {
                route: Route::Health,
                head_only: true,
                persist: Persist::KeepAlive10
            }
        );
        let h = ready(b"GET /healthz HTTP/1.0\r\n\r\n");
        assert_eq!(h.pending.persist, Persist::Close);
        let h = ready(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert_eq!(h.pending.persist, Persist::Close);

        let h = ready(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(h.body, BodyKind::Chunked);
        assert!(h.expect_continue);
    }

    #[test]
    fn partial_and_bad_heads() {
        assert_eq!(
            read_head(b"GET /healthz HTTP/1.1\r\nHo", 1024),
            HeadStep::Partial
        );
        let bad = |raw: &[u8], max| match read_head(raw, max) {
            HeadStep::Bad(e) => e.status(),
            other => panic!("{other:?}"),
        };
        assert_eq!(bad(b"GET / HTTP/1.1\r\n\r\n", 1024), 400);
        assert_eq!(bad(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 1024), 505);
        assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: yyyyyyyy", 30), 431);
        assert_eq!(
            bad(
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: br, chunked\r\n\r\n",
                1024
            ),
            501
        );
    }
}
