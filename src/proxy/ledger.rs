//! What each request cost and how it ended, for the metrics and the access log: kept on the
//! session while the request runs, recorded once when it ends.

use std::time::{Instant, SystemTime};

use super::session::Session;
use super::Proxy;
use crate::logging::{self, AccessRecord};

/// One request's account.
#[derive(Clone, Copy, Debug)]
pub struct Ledger {
    /// When its first byte arrived.
    pub started: Instant,
    /// Bytes read from the client for it (head and body).
    pub bytes_in: u64,
    /// Bytes written to the client for it.
    pub bytes_out: u64,
    /// The final status sent.
    pub status: u16,
    /// The backend that answered, if one did.
    pub backend: Option<usize>,
    /// A head was parsed, so the rewritten head names its method and path.
    pub parsed: bool,
}

impl Ledger {
    /// A fresh account starting `now`.
    pub fn new(now: Instant) -> Ledger {
        Ledger {
            started: now,
            bytes_in: 0,
            bytes_out: 0,
            status: 0,
            backend: None,
            parsed: false,
        }
    }
}

impl Proxy {
    /// Records a request that ended, answered by a backend (`reason` is `None`) or by the
    /// proxy itself (`reason` says why), then starts a fresh account.
    pub(super) fn record(&mut self, s: &mut Session, reason: Option<&'static str>, now: Instant) {
        let l = s.ledger;
        s.ledger = Ledger::new(now);
        if l.status == 0 && reason.is_none() {
            return; // TCP mode, or nothing was answered
        }
        let duration = now.saturating_duration_since(l.started);
        self.metrics
            .record_response(l.backend, l.status, duration, l.bytes_in, l.bytes_out);
        if !self.cfg.access_log {
            return;
        }
        let (method, path) = if l.parsed {
            logging::request_line(&s.reqhead)
        } else {
            ("-", "-")
        };
        let rec = AccessRecord {
            time: SystemTime::now(),
            client: s.peer,
            method,
            path,
            status: l.status,
            backend: l
                .backend
                .and_then(|b| self.cfg.backends.get(b))
                .map(|b| b.name.as_str()),
            bytes_in: l.bytes_in,
            bytes_out: l.bytes_out,
            duration,
            reason,
        };
        logging::log_access(&mut self.access_buf, &rec, self.cfg.log_format);
    }

    /// Records a canned answer the session just queued.
    pub(super) fn record_answer(
        &mut self,
        s: &mut Session,
        answer: (u16, &'static str),
        now: Instant,
    ) {
        s.ledger.status = answer.0;
        s.ledger.backend = None;
        self.record(s, Some(answer.1), now);
    }
}
