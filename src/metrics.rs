//! The proxy's counters and gauges, and their Prometheus text exposition (format 0.0.4).
//!
//! One [`Metrics`] belongs to one event loop: plain integers, no atomics, nothing global. Every
//! recording method is an addition or two on fixed-size arrays indexed by backend, so it costs
//! next to nothing on the request path and never allocates. With several workers each keeps its
//! own and a scrape adds them up with [`Metrics::merge`]. Gauges that the loop can read off its
//! own state at any moment (open connections, backend health) are set just before rendering
//! instead of being kept up to date on every event.
//!
//! Backends are known by name, not only by index, so that a config reload keeps the counters
//! of the backends that survive it and merging workers that disagree on the list stays correct.

use std::io::Write;
use std::time::Duration;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request-duration bucket bounds in nanoseconds, each with its `le` label written out so that
/// rendering formats no floats and the labels read exactly as documented. From half a
/// millisecond (a pooled request on a LAN) to ten seconds (past any sane backend timeout);
/// anything longer lands in `+Inf`. One histogram for the whole proxy, not one per backend:
/// buckets multiply series, and per-backend slowness is the health module's job.
const BUCKETS: [(u64, &str); 14] = [
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
];

/// Status classes. A backend may send any three digits; those outside 100..=599 are counted as
/// `other` rather than dropped, and that series is only written once it is non-zero.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
const OTHER: usize = 5;

/// The `backend` label of requests the proxy answered itself (400, 408, 502, 504, ...).
/// Backend names are `host:port`, so it cannot collide with one.
pub const NO_BACKEND: &str = "none";

/// Per-backend event counters, each its own family with only a `backend` label: index into
/// `BackendStats::events`, name, help.
const CONNECT_FAILURE: usize = 0;
const RETRY: usize = 1;
const EJECTION: usize = 2;
const EVENTS: [(&str, &str); 3] = [
    (
        "rr_proxy_connect_failures_total",
        "Failed or timed-out connects to each backend.",
    ),
    (
        "rr_proxy_retries_total",
        "Requests sent again after this backend failed them.",
    ),
    (
        "rr_proxy_ejections_total",
        "Times failures in real traffic ejected the backend.",
    ),
];

/// One backend's counters.
#[derive(Clone, Debug)]
struct BackendStats {
    /// The `backend` label value: the name as configured, made unique (see `unique_names`).
    name: String,
    /// Responses by status class, indexed like `CLASSES`.
    requests: [u64; CLASSES.len()],
    /// Connect failures, retries, ejections, indexed like `EVENTS`.
    events: [u64; EVENTS.len()],
    /// Probe results: `[success, failure]`.
    probes: [u64; 2],
    /// Whether the loop would send it traffic, as of the last `set_backend_up`.
    up: bool,
}

impl BackendStats {
    fn new(name: String) -> BackendStats {
        BackendStats {
            name,
            requests: [0; CLASSES.len()],
            events: [0; EVENTS.len()],
            probes: [0; 2],
            // Every backend starts usable, as the balancer and the health module assume.
            up: true,
        }
    }

    fn add(&mut self, o: &BackendStats) {
        add_all(&mut self.requests, &o.requests);
        add_all(&mut self.events, &o.events);
        add_all(&mut self.probes, &o.probes);
        // Workers judge health apart: up only if every worker would use it, so a backend one
        // worker has given up on shows.
        self.up &= o.up;
    }
}

/// The proxy's counters and gauges for one event loop (or, after `merge`, for several).
#[derive(Clone, Debug)]
pub struct Metrics {
    backends: Vec<BackendStats>,
    /// Responses the proxy made itself, by status class.
    own: [u64; CLASSES.len()],
    /// Non-cumulative counts per bucket of `BUCKETS`, then the `+Inf` overflow.
    duration_counts: [u64; BUCKETS.len() + 1],
    /// Sum of all observed durations; u128 so that years of traffic cannot overflow it.
    duration_sum_ns: u128,
    open_clients: u64,
    open_backends: u64,
    /// Bytes read from clients.
    bytes_in: u64,
    /// Bytes written to clients.
    bytes_out: u64,
}

impl Metrics {
    /// All zero, for these backends (in the config's order, so indices match).
    pub fn new<S: AsRef<str>>(backend_names: &[S]) -> Metrics {
        let mut m = Metrics {
            backends: Vec::new(),
            own: [0; CLASSES.len()],
            duration_counts: [0; BUCKETS.len() + 1],
            duration_sum_ns: 0,
            open_clients: 0,
            open_backends: 0,
            bytes_in: 0,
            bytes_out: 0,
        };
        m.set_backends(backend_names);
        m
    }

    /// Responses a backend gave, all classes together (for status pages).
    pub fn requests_of(&self, backend: usize) -> u64 {
        self.backends
            .get(backend)
            .map_or(0, |b| b.requests.iter().sum())
    }

    /// After a reload: indices now follow `backend_names`. A backend whose name was there
    /// before keeps its counters (so Prometheus sees no reset); new ones start at zero; the
    /// series of removed ones disappear.
    pub fn set_backends<S: AsRef<str>>(&mut self, backend_names: &[S]) {
        let mut old = std::mem::take(&mut self.backends);
        self.backends = unique_names(backend_names)
            .into_iter()
            .map(|name| match old.iter().position(|b| b.name == name) {
                Some(i) => old.swap_remove(i),
                None => BackendStats::new(name),
            })
            .collect();
    }

    /// A response reached the client (or the client went away after it began): counts it by
    /// backend and status class, its duration (request head read to response end) and its
    /// bytes. `backend` is `None` when the proxy answered by itself. An index past the
    /// backend list (a reload raced the request) still counts everywhere but per backend.
    pub fn record_response(
        &mut self,
        backend: Option<usize>,
        status: u16,
        duration: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => OTHER,
        };
        let row = match backend {
            None => Some(&mut self.own),
            Some(i) => self.backends.get_mut(i).map(|b| &mut b.requests),
        };
        if let Some(row) = row {
            bump(&mut row[class], 1);
        }
        let ns = duration.as_nanos();
        let bucket = BUCKETS
            .iter()
            .position(|&(bound, _)| ns <= u128::from(bound))
            .unwrap_or(BUCKETS.len());
        bump(&mut self.duration_counts[bucket], 1);
        self.duration_sum_ns = self.duration_sum_ns.saturating_add(ns);
        self.record_bytes(bytes_in, bytes_out);
    }

    /// Bytes that belong to no response: a tunnel after `101 Switching Protocols`.
    pub fn record_bytes(&mut self, bytes_in: u64, bytes_out: u64) {
        bump(&mut self.bytes_in, bytes_in);
        bump(&mut self.bytes_out, bytes_out);
    }

    /// A connect to this backend failed or timed out.
    pub fn record_connect_failure(&mut self, backend: usize) {
        self.event(backend, CONNECT_FAILURE);
    }

    /// A request is sent again after this backend failed it (the retry may go elsewhere).
    pub fn record_retry(&mut self, backend: usize) {
        self.event(backend, RETRY);
    }

    /// Failures in real traffic ejected this backend for a while.
    pub fn record_ejection(&mut self, backend: usize) {
        self.event(backend, EJECTION);
    }

    /// One active health probe of this backend finished.
    pub fn record_probe(&mut self, backend: usize, ok: bool) {
        if let Some(b) = self.backends.get_mut(backend) {
            bump(&mut b.probes[usize::from(!ok)], 1);
        }
    }

    fn event(&mut self, backend: usize, event: usize) {
        if let Some(b) = self.backends.get_mut(backend) {
            bump(&mut b.events[event], 1);
        }
    }

    /// Whether the loop would send this backend traffic now (up by probes, not ejected).
    pub fn set_backend_up(&mut self, backend: usize, up: bool) {
        if let Some(b) = self.backends.get_mut(backend) {
            b.up = up;
        }
    }

    /// Connections open now, client side and backend side (pooled ones included).
    pub fn set_open(&mut self, clients: usize, backends: usize) {
        self.open_clients = clients as u64;
        self.open_backends = backends as u64;
    }

    /// Adds another worker's metrics to these. Backends are matched by name; one only the
    /// other knows is appended. Gauges add up too, except `up` (see `BackendStats::add`).
    pub fn merge(&mut self, other: &Metrics) {
        for o in &other.backends {
            match self.backends.iter_mut().find(|b| b.name == o.name) {
                Some(b) => b.add(o),
                None => self.backends.push(o.clone()),
            }
        }
        add_all(&mut self.own, &other.own);
        add_all(&mut self.duration_counts, &other.duration_counts);
        self.duration_sum_ns = self.duration_sum_ns.saturating_add(other.duration_sum_ns);
        bump(&mut self.open_clients, other.open_clients);
        bump(&mut self.open_backends, other.open_backends);
        bump(&mut self.bytes_in, other.bytes_in);
        bump(&mut self.bytes_out, other.bytes_out);
    }

    /// Appends the text exposition to `out`. Only `out` grows: reuse it between scrapes.
    pub fn render(&self, out: &mut Vec<u8>) {
        let bs = &self.backends;
        let name = "rr_proxy_requests_total";
        let help = "Responses by backend and status class.";
        family(out, name, "counter", help);
        for (backend, row) in bs
            .iter()
            .map(|b| (b.name.as_str(), &b.requests))
            .chain([(NO_BACKEND, &self.own)])
        {
            for (class, &n) in CLASSES.iter().zip(row.iter()) {
                if *class != CLASSES[OTHER] || n > 0 {
                    sample(out, name, &[("backend", backend), ("class", class)], n);
                }
            }
        }
        self.render_duration(out);
        for (i, (name, help)) in EVENTS.iter().enumerate() {
            family(out, name, "counter", help);
            for b in bs {
                sample(out, name, &[("backend", &b.name)], b.events[i]);
            }
        }
        let name = "rr_proxy_probes_total";
        family(out, name, "counter", "Active health probes by result.");
        for b in bs {
            for (result, n) in ["success", "failure"].iter().zip(b.probes) {
                sample(out, name, &[("backend", &b.name), ("result", result)], n);
            }
        }
        let name = "rr_proxy_backend_up";
        let help = "1 if the proxy sends the backend traffic (up by probes, not ejected).";
        family(out, name, "gauge", help);
        for b in bs {
            sample(out, name, &[("backend", &b.name)], u8::from(b.up));
        }
        let name = "rr_proxy_open_connections";
        let help = "Open connections, client and backend side.";
        family(out, name, "gauge", help);
        sample(out, name, &[("side", "client")], self.open_clients);
        sample(out, name, &[("side", "backend")], self.open_backends);
        let name = "rr_proxy_bytes_total";
        let help = "Bytes read from clients (in) and written to them (out).";
        family(out, name, "counter", help);
        sample(out, name, &[("direction", "in")], self.bytes_in);
        sample(out, name, &[("direction", "out")], self.bytes_out);
    }

    fn render_duration(&self, out: &mut Vec<u8>) {
        let name = "rr_proxy_request_duration_seconds";
        let help = "Time from a request head read to its response's end.";
        family(out, name, "histogram", help);
        let mut total = 0u64;
        let les = BUCKETS.iter().map(|&(_, le)| le).chain(["+Inf"]);
        for (le, &n) in les.zip(self.duration_counts.iter()) {
            total = total.wrapping_add(n);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {total}");
        }
        let sum = self.duration_sum_ns as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

/// Counters wrap rather than panic: Prometheus reads a wrap as a reset, which it handles.
fn bump(c: &mut u64, n: u64) {
    *c = c.wrapping_add(n);
}

fn add_all(to: &mut [u64], from: &[u64]) {
    for (t, f) in to.iter_mut().zip(from) {
        bump(t, *f);
    }
}

/// The names as label values, a repeat given a `#2`, `#3`, ... suffix: a backend listed twice
/// is two rotation slots, and two series with the same labels would fail the whole scrape.
fn unique_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let name = name.as_ref();
        let mut candidate = name.to_string();
        let mut k = 2;
        while out.contains(&candidate) {
            candidate = format!("{name}#{k}");
            k += 1;
        }
        out.push(candidate);
    }
    out
}

/// The `# HELP` and `# TYPE` lines of one metric family. Help texts are constants free of `\`
/// and newlines, so they need no escaping.
fn family(out: &mut Vec<u8>, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line with its labels, values escaped.
fn sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.extend_from_slice(name.as_bytes());
    for (i, (key, value)) in labels.iter().enumerate() {
        out.push(if i == 0 { b'{' } else { b',' });
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label(out, value);
        out.push(b'"');
    }
    if !labels.is_empty() {
        out.push(b'}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label-value escaping of the text format: backslash, double quote and line feed.
fn escape_label(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use prometheus_parse::{Scrape, Value};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCS: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts allocations per thread, so a test can show that a call does not allocate while
    /// other tests run on other threads. The one global allocator of the unit-test binary.
    struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            System.realloc(ptr, layout, new_size)
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// How many times `f` allocated on this thread.
    pub(crate) fn allocations(f: impl FnOnce()) -> usize {
        let before = ALLOCS.with(Cell::get);
        f();
        ALLOCS.with(Cell::get) - before
    }

    fn parse(m: &Metrics) -> Scrape {
        let mut out = Vec::new();
        m.render(&mut out);
        let text = String::from_utf8(out).unwrap();
        Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    /// The value of the one sample with exactly these labels.
    fn get(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Value {
        let hits: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.metric == metric && x.labels.len() == labels.len())
            .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
            .collect();
        assert_eq!(hits.len(), 1, "{metric} {labels:?}");
        hits[0].value.clone()
    }

    const A: &str = "127.0.0.1:8081";
    const B: &str = "127.0.0.1:8082";
    const MS: Duration = Duration::from_millis(1);

    fn traffic() -> Metrics {
        let mut m = Metrics::new(&[A, B]);
        for _ in 0..3 {
            m.record_response(Some(0), 200, 3 * MS, 100, 1000);
        }
        m.record_response(Some(1), 503, 20 * MS, 50, 10);
        m.record_response(Some(1), 700, MS, 0, 0);
        m.record_response(None, 502, 30 * MS, 80, 120);
        m.record_bytes(7, 9);
        m.record_connect_failure(1);
        m.record_connect_failure(1);
        m.record_retry(1);
        m.record_ejection(1);
        m.record_probe(0, true);
        m.record_probe(1, false);
        m.set_backend_up(1, false);
        m.set_open(3, 2);
        m
    }

    #[test]
    fn render_parses_back_to_what_was_recorded() {
        let s = parse(&traffic());
        let req = "rr_proxy_requests_total";
        let c = |n| Value::Counter(n);
        assert_eq!(get(&s, req, &[("backend", A), ("class", "2xx")]), c(3.0));
        assert_eq!(get(&s, req, &[("backend", A), ("class", "5xx")]), c(0.0));
        assert_eq!(get(&s, req, &[("backend", B), ("class", "5xx")]), c(1.0));
        assert_eq!(get(&s, req, &[("backend", B), ("class", "other")]), c(1.0));
        assert_eq!(
            get(&s, req, &[("backend", "none"), ("class", "5xx")]),
            c(1.0)
        );
        let per = |name, b| get(&s, name, &[("backend", b)]);
        assert_eq!(per("rr_proxy_connect_failures_total", B), c(2.0));
        assert_eq!(per("rr_proxy_connect_failures_total", A), c(0.0));
        assert_eq!(per("rr_proxy_retries_total", B), c(1.0));
        assert_eq!(per("rr_proxy_ejections_total", B), c(1.0));
        assert_eq!(per("rr_proxy_backend_up", A), Value::Gauge(1.0));
        assert_eq!(per("rr_proxy_backend_up", B), Value::Gauge(0.0));
        let probes = "rr_proxy_probes_total";
        assert_eq!(
            get(&s, probes, &[("backend", A), ("result", "success")]),
            c(1.0)
        );
        assert_eq!(
            get(&s, probes, &[("backend", B), ("result", "failure")]),
            c(1.0)
        );
        let open = "rr_proxy_open_connections";
        assert_eq!(get(&s, open, &[("side", "client")]), Value::Gauge(3.0));
        assert_eq!(get(&s, open, &[("side", "backend")]), Value::Gauge(2.0));
        let bytes = "rr_proxy_bytes_total";
        assert_eq!(get(&s, bytes, &[("direction", "in")]), c(437.0));
        assert_eq!(get(&s, bytes, &[("direction", "out")]), c(3139.0));
        assert_eq!(s.docs.len(), 9, "every family has its HELP");
    }

    #[test]
    fn duration_histogram_is_cumulative_with_inclusive_bounds() {
        let mut m = Metrics::new(&[A]);
        let us = Duration::from_micros;
        for d in [
            us(500),
            us(500) + Duration::from_nanos(1),
            3 * MS,
            Duration::from_secs(20),
        ] {
            m.record_response(Some(0), 200, d, 0, 0);
        }
        let s = parse(&m);
        let name = "rr_proxy_request_duration_seconds";
        let Value::Histogram(buckets) = get(&s, name, &[]) else {
            panic!("not a histogram");
        };
        let at = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
        assert_eq!(buckets.len(), BUCKETS.len() + 1);
        assert_eq!((at(0.0005), at(0.001), at(0.0025)), (1.0, 2.0, 2.0));
        assert_eq!((at(0.005), at(10.0), at(f64::INFINITY)), (3.0, 3.0, 4.0));
        let sum = 0.0005 + 0.000500001 + 0.003 + 20.0;
        let Value::Untyped(got) = get(&s, &format!("{name}_sum"), &[]) else {
            panic!("sum");
        };
        assert!((got - sum).abs() < 1e-9, "{got}");
        assert_eq!(get(&s, &format!("{name}_count"), &[]), Value::Untyped(4.0));
    }

    #[test]
    fn status_classes() {
        for (status, class) in [
            (100, 0),
            (199, 0),
            (200, 1),
            (404, 3),
            (599, 4),
            (600, OTHER),
            (99, OTHER),
            (0, OTHER),
        ] {
            let mut m = Metrics::new(&[A]);
            m.record_response(Some(0), status, MS, 0, 0);
            assert_eq!(m.backends[0].requests[class], 1, "{status}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let evil = "a\"b\\c\nd";
        let mut m = Metrics::new(&[evil]);
        m.record_response(Some(0), 200, MS, 0, 0);
        let mut out = Vec::new();
        m.render(&mut out);
        let text = String::from_utf8(out).unwrap();
        let line = r#"rr_proxy_requests_total{backend="a\"b\\c\nd",class="2xx"} 1"#;
        assert!(text.lines().any(|l| l == line), "{text}");
        // The line feed did not split a sample: every line is a comment or parses whole.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let sample = Scrape::parse([Ok(l.to_string())].into_iter()).unwrap();
            assert_eq!(sample.samples.len(), 1, "{l}");
        }
        let s = parse(&m);
        let label = get(&s, "rr_proxy_backend_up", &[("backend", r#"a\"b\\c\nd"#)]);
        assert_eq!(label, Value::Gauge(1.0));
    }

    #[test]
    fn merge_adds_workers_up() {
        let mut total = traffic();
        let mut other = Metrics::new(&[B, A, "10.0.0.9:80"]);
        other.record_response(Some(1), 200, MS, 1, 2);
        other.record_connect_failure(2);
        other.set_backend_up(1, false);
        other.set_open(1, 1);
        total.merge(&other);
        total.merge(&traffic());
        let s = parse(&total);
        let req = "rr_proxy_requests_total";
        let c = |n| Value::Counter(n);
        assert_eq!(get(&s, req, &[("backend", A), ("class", "2xx")]), c(7.0));
        assert_eq!(get(&s, req, &[("backend", B), ("class", "5xx")]), c(2.0));
        let failures = "rr_proxy_connect_failures_total";
        assert_eq!(get(&s, failures, &[("backend", "10.0.0.9:80")]), c(1.0));
        assert_eq!(get(&s, failures, &[("backend", B)]), c(4.0));
        let up = |b| get(&s, "rr_proxy_backend_up", &[("backend", b)]);
        assert_eq!(up(A), Value::Gauge(0.0), "down in one worker");
        assert_eq!(up("10.0.0.9:80"), Value::Gauge(1.0));
        let open = get(&s, "rr_proxy_open_connections", &[("side", "client")]);
        assert_eq!(open, Value::Gauge(7.0));
        let count = get(&s, "rr_proxy_request_duration_seconds_count", &[]);
        assert_eq!(count, Value::Untyped(13.0));
    }

    #[test]
    fn reload_keeps_surviving_backends_and_names_stay_unique() {
        let mut m = traffic();
        m.set_backends(&["10.0.0.9:80", B, B]);
        let s = parse(&m);
        let failures = |b| get(&s, "rr_proxy_connect_failures_total", &[("backend", b)]);
        assert_eq!(failures(B), Value::Counter(2.0), "kept across the reload");
        assert_eq!(failures("127.0.0.1:8082#2"), Value::Counter(0.0));
        assert_eq!(failures("10.0.0.9:80"), Value::Counter(0.0));
        assert!(!s.samples.iter().any(|x| x.labels.get("backend") == Some(A)));
    }

    #[test]
    fn recording_and_rendering_again_do_not_allocate() {
        let mut m = traffic();
        let mut out = Vec::new();
        m.render(&mut out);
        out.reserve(out.len()); // room for numbers that grow a digit
        let n = allocations(|| {
            m.record_response(Some(0), 200, MS, 1, 1);
            m.record_response(None, 408, MS, 1, 1);
            m.record_response(Some(9), 200, MS, 1, 1);
            m.record_bytes(1, 1);
            m.record_connect_failure(0);
            m.record_retry(0);
            m.record_ejection(0);
            m.record_probe(0, false);
            m.set_backend_up(0, true);
            m.set_open(1, 1);
            out.clear();
            m.render(&mut out);
        });
        assert_eq!(n, 0);
    }
}
