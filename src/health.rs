//! What the proxy believes about each backend: up or down from active probes (with rise and
//! fall), ejected for a while after failures seen in real traffic, and slow compared with its
//! peers. Pure: results and `now` go in, transitions come out; it does no I/O and reads no clock.

use std::time::{Duration, Instant};

/// Health settings, validated by the proxy's config.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    /// Good probes in a row that bring a down backend back.
    pub rise: u32,
    /// Failed probes in a row that take an up backend down.
    pub fall: u32,
    /// Failed requests in a row that eject a backend (0: never).
    pub eject_after: u32,
    /// Count 5xx answers as failures for ejection.
    pub eject_5xx: bool,
    /// The first ejection's length; each further one doubles it.
    pub eject_base: Duration,
    /// The longest an ejection lasts.
    pub eject_max: Duration,
    /// At most this share of the backends is ejected at once, so misbehaving clients cannot
    /// empty the pool.
    pub max_ejected_percent: u32,
    /// A backend whose average response time is this many times the fastest peer's is skipped
    /// for some turns (0: off).
    pub slow_factor: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            rise: 2,
            fall: 3,
            eject_after: 3,
            eject_5xx: false,
            eject_base: Duration::from_secs(1),
            eject_max: Duration::from_secs(30),
            max_ejected_percent: 50,
            slow_factor: 0.0,
        }
    }
}

/// How a request to a backend went, as far as its health goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer that is not a server error.
    Ok,
    /// A server error (5xx).
    ServerError,
    /// The connect was refused or failed.
    ConnectFailed,
    /// The connect or the response timed out.
    Timeout,
    /// The connection broke before any response byte.
    Reset,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ServerError => "server error",
            Outcome::ConnectFailed => "connect failed",
            Outcome::Timeout => "timed out",
            Outcome::Reset => "connection reset before answering",
        }
    }
}

/// A change worth one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Which backend.
    pub backend: usize,
    /// It can take traffic now.
    pub usable: bool,
    /// Why, in words.
    pub reason: String,
    /// For an ejection: when it ends and the backend is back on probation.
    pub until: Option<Instant>,
}

/// The most turns a slow backend sits out in a row.
const MAX_SKIP: u32 = 16;
/// Weight of the newest sample in the response-time average.
const EWMA_ALPHA: f64 = 0.2;

/// One backend's state.
#[derive(Clone, Debug, Default)]
struct State {
    /// Down by probes.
    down: bool,
    /// Probes in a row that disagree with `down`.
    streak: u32,
    /// Failed requests in a row.
    failures: u32,
    /// Ejected until then.
    ejected_until: Option<Instant>,
    /// How many ejections in a row without a good spell; sets the next length.
    level: u32,
    /// Average response time in seconds (0 until the first sample).
    ewma: f64,
    /// Turns still to sit out for slowness.
    skip: u32,
}

/// The health of every backend.
#[derive(Clone, Debug)]
pub struct Health {
    cfg: HealthConfig,
    states: Vec<State>,
}

impl Health {
    /// Every backend up, none ejected.
    pub fn new(n: usize, cfg: HealthConfig) -> Health {
        Health {
            cfg,
            states: vec![State::default(); n],
        }
    }

    /// Tracks `n` backends: new ones start up, extra ones are dropped.
    pub fn resize(&mut self, n: usize) {
        self.states.resize(n, State::default());
    }

    /// Forgets what was known of backend `i` (its slot now holds another backend).
    pub fn reset(&mut self, i: usize) {
        if let Some(s) = self.states.get_mut(i) {
            *s = State::default();
        }
    }

    /// New rules; what is known of each backend stays.
    pub fn set_config(&mut self, cfg: HealthConfig) {
        self.cfg = cfg;
    }

    /// How many backends it tracks.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// It tracks none.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Up by probes and not ejected.
    pub fn usable(&self, i: usize, now: Instant) -> bool {
        self.states
            .get(i)
            .is_some_and(|s| !s.down && s.ejected_until.is_none_or(|t| t <= now))
    }

    /// Like [`Health::usable`], and also uses up one of a slow backend's turns to sit out.
    pub fn take_turn(&mut self, i: usize, now: Instant) -> bool {
        if !self.usable(i, now) {
            return false;
        }
        match self.states.get_mut(i) {
            Some(s) if s.skip > 0 => {
                s.skip -= 1;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// When its current ejection ends, if it is ejected.
    pub fn ejected_until(&self, i: usize) -> Option<Instant> {
        self.states.get(i).and_then(|s| s.ejected_until)
    }

    /// Whether probes say it is up, and until when it is ejected (for status pages).
    pub fn describe(&self, i: usize, now: Instant) -> (bool, Option<Duration>) {
        match self.states.get(i) {
            Some(s) => (
                !s.down,
                s.ejected_until.and_then(|t| t.checked_duration_since(now)),
            ),
            None => (false, None),
        }
    }

    /// Records a probe. `detail` says what happened ("status 200", "connection refused").
    pub fn probe(&mut self, i: usize, ok: bool, detail: &str) -> Option<Transition> {
        let cfg = &self.cfg;
        let s = self.states.get_mut(i)?;
        if ok != s.down {
            s.streak = 0;
            return None;
        }
        s.streak += 1;
        let (needed, verb) = if s.down {
            (cfg.rise, "passed")
        } else {
            (cfg.fall, "failed")
        };
        if s.streak < needed {
            return None;
        }
        s.down = !s.down;
        s.streak = 0;
        if !s.down {
            // Back by probes: a clean slate for traffic too, the ejection length included, or
            // a backend that was restarted would be ejected longer each time it next stumbles.
            s.failures = 0;
            s.ejected_until = None;
            s.level = 0;
        }
        Some(Transition {
            backend: i,
            usable: !s.down,
            reason: format!("{needed} probes {verb}, last: {detail}"),
            until: None,
        })
    }

    /// Records how a request went. `jitter` in `[0, 1)` spreads ejection lengths so that
    /// backends ejected together do not return together.
    pub fn request(
        &mut self,
        i: usize,
        outcome: Outcome,
        latency: Option<Duration>,
        now: Instant,
        jitter: f64,
    ) -> Option<Transition> {
        if let Some(l) = latency {
            self.sample_latency(i, l);
        }
        let failed = match outcome {
            Outcome::Ok => false,
            Outcome::ServerError => self.cfg.eject_5xx,
            _ => true,
        };
        let s = self.states.get_mut(i)?;
        if !failed {
            s.failures = 0;
            if s.ejected_until.is_some_and(|t| t <= now) {
                // Probation passed.
                s.ejected_until = None;
                s.level = s.level.saturating_sub(1);
            }
            return None;
        }
        s.failures += 1;
        if self.cfg.eject_after == 0 || s.failures < self.cfg.eject_after {
            return None;
        }
        if self.ejected_now(now) >= self.max_ejected() {
            return None;
        }
        let s = &mut self.states[i];
        let length = ejection_length(&self.cfg, s.level, jitter);
        let until = now + length;
        s.ejected_until = Some(until);
        s.level = s.level.saturating_add(1);
        s.failures = 0;
        Some(Transition {
            backend: i,
            usable: false,
            reason: format!(
                "ejected for {length:?}: {} failed requests in a row, last: {}",
                self.cfg.eject_after,
                outcome.as_str()
            ),
            until: Some(until),
        })
    }

    fn ejected_now(&self, now: Instant) -> usize {
        self.states
            .iter()
            .filter(|s| s.ejected_until.is_some_and(|t| t > now))
            .count()
    }

    /// How many may be ejected at once: the configured share, but never every backend.
    fn max_ejected(&self) -> usize {
        let n = self.states.len();
        let share = n * self.cfg.max_ejected_percent.min(100) as usize / 100;
        share.clamp(usize::from(n > 1), n.saturating_sub(1))
    }

    /// Folds a response time into the backend's average and sets how many turns it sits out.
    fn sample_latency(&mut self, i: usize, latency: Duration) {
        let secs = latency.as_secs_f64();
        let Some(s) = self.states.get_mut(i) else {
            return;
        };
        s.ewma = if s.ewma == 0.0 {
            secs
        } else {
            s.ewma + EWMA_ALPHA * (secs - s.ewma)
        };
        let factor = self.cfg.slow_factor;
        if factor <= 0.0 {
            return;
        }
        let mine = self.states[i].ewma;
        let fastest = self
            .states
            .iter()
            .enumerate()
            .filter(|(j, s)| *j != i && s.ewma > 0.0)
            .map(|(_, s)| s.ewma)
            .fold(f64::INFINITY, f64::min);
        if fastest.is_finite() && fastest > 0.0 && mine > factor * fastest {
            // The slower it is, the more turns it sits out; it never stops getting traffic.
            let turns = (mine / (factor * fastest)).floor() as u32;
            self.states[i].skip = turns.clamp(1, MAX_SKIP);
        }
    }
}

/// base × 2^level, capped, then up to a quarter longer by `jitter`.
fn ejection_length(cfg: &HealthConfig, level: u32, jitter: f64) -> Duration {
    let doubled = cfg
        .eject_base
        .checked_mul(1u32.checked_shl(level.min(20)).unwrap_or(u32::MAX))
        .unwrap_or(cfg.eject_max);
    let capped = doubled.min(cfg.eject_max);
    capped + capped.mul_f64(jitter.clamp(0.0, 1.0) * 0.25)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(n: usize) -> Health {
        Health::new(n, HealthConfig::default())
    }

    #[test]
    fn probes_need_fall_failures_to_go_down_and_rise_passes_to_come_back() {
        let mut h = health(2);
        let now = Instant::now();
        assert_eq!(h.probe(0, false, "refused"), None);
        assert_eq!(h.probe(0, false, "refused"), None);
        let t = h.probe(0, false, "connection refused").unwrap();
        assert!(!t.usable);
        assert_eq!(t.reason, "3 probes failed, last: connection refused");
        assert!(!h.usable(0, now) && h.usable(1, now));
        assert_eq!(h.probe(0, true, "status 200"), None);
        assert_eq!(
            h.probe(0, false, "refused"),
            None,
            "a failure breaks the streak"
        );
        assert_eq!(h.probe(0, true, "status 200"), None);
        let t = h.probe(0, true, "status 200").unwrap();
        assert!(t.usable && h.usable(0, now));
    }

    #[test]
    fn coming_back_by_probes_resets_the_ejection_length() {
        let mut h = health(3);
        let t0 = Instant::now();
        for _ in 0..6 {
            h.request(0, Outcome::ConnectFailed, None, t0, 0.0); // two ejections: level 2
        }
        for _ in 0..3 {
            h.probe(0, false, "refused");
        }
        for _ in 0..2 {
            h.probe(0, true, "status 200");
        }
        assert!(h.usable(0, t0), "back by probes, ejection cleared");
        let t = (0..3)
            .filter_map(|_| h.request(0, Outcome::ConnectFailed, None, t0, 0.0))
            .last()
            .unwrap();
        assert!(t.reason.starts_with("ejected for 1s"), "{}", t.reason);
        assert_eq!(h.ejected_until(0), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn failures_in_a_row_eject_for_a_growing_time() {
        let mut h = health(3);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(h.request(1, Outcome::ConnectFailed, None, t0, 0.0), None);
        }
        let t = h.request(1, Outcome::ConnectFailed, None, t0, 0.0).unwrap();
        assert!(t.reason.starts_with("ejected for 1s"), "{}", t.reason);
        assert!(!h.usable(1, t0 + Duration::from_millis(999)));
        assert!(
            h.usable(1, t0 + Duration::from_secs(1)),
            "probation after the time"
        );
        // Failing on probation ejects again, for twice as long.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..3 {
            h.request(1, Outcome::Timeout, None, t1, 0.0);
        }
        assert!(!h.usable(1, t1 + Duration::from_millis(1999)));
        assert!(h.usable(1, t1 + Duration::from_secs(2)));
    }

    #[test]
    fn a_success_resets_the_count_and_probation_shrinks_the_next_ejection() {
        let mut h = health(3);
        let t0 = Instant::now();
        h.request(0, Outcome::Reset, None, t0, 0.0);
        h.request(0, Outcome::Reset, None, t0, 0.0);
        h.request(0, Outcome::Ok, None, t0, 0.0);
        assert_eq!(h.request(0, Outcome::Reset, None, t0, 0.0), None);
        for _ in 0..2 {
            h.request(0, Outcome::Reset, None, t0, 0.0);
        }
        assert!(!h.usable(0, t0));
        let later = t0 + Duration::from_secs(2);
        h.request(0, Outcome::Ok, None, later, 0.0);
        for _ in 0..3 {
            h.request(0, Outcome::Reset, None, later, 0.0);
        }
        assert!(
            h.usable(0, later + Duration::from_secs(1)),
            "back to a 1 s ejection"
        );
    }

    #[test]
    fn server_errors_count_only_when_asked() {
        let t0 = Instant::now();
        let mut h = health(3);
        for _ in 0..5 {
            assert_eq!(h.request(0, Outcome::ServerError, None, t0, 0.0), None);
        }
        let mut h = Health::new(
            3,
            HealthConfig {
                eject_5xx: true,
                ..HealthConfig::default()
            },
        );
        for _ in 0..3 {
            h.request(0, Outcome::ServerError, None, t0, 0.0);
        }
        assert!(!h.usable(0, t0));
    }

    #[test]
    fn ejection_is_capped_by_share_and_never_empties_the_pool() {
        let t0 = Instant::now();
        let mut h = health(3); // 50 % of 3: one at a time
        for b in 0..3 {
            for _ in 0..3 {
                h.request(b, Outcome::ConnectFailed, None, t0, 0.0);
            }
        }
        let usable = (0..3).filter(|&b| h.usable(b, t0)).count();
        assert_eq!(usable, 2);
        let mut one = health(1);
        for _ in 0..10 {
            assert_eq!(one.request(0, Outcome::Timeout, None, t0, 0.0), None);
        }
        assert!(one.usable(0, t0));
    }

    #[test]
    fn ejection_length_doubles_caps_and_jitters() {
        let cfg = HealthConfig::default();
        assert_eq!(ejection_length(&cfg, 0, 0.0), Duration::from_secs(1));
        assert_eq!(ejection_length(&cfg, 3, 0.0), Duration::from_secs(8));
        assert_eq!(ejection_length(&cfg, 10, 0.0), Duration::from_secs(30));
        assert_eq!(ejection_length(&cfg, 99, 0.0), Duration::from_secs(30));
        assert_eq!(ejection_length(&cfg, 0, 0.5), Duration::from_millis(1125));
    }

    #[test]
    fn slow_backends_sit_out_turns_in_proportion() {
        let mut h = Health::new(
            3,
            HealthConfig {
                slow_factor: 2.0,
                ..HealthConfig::default()
            },
        );
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        h.request(0, Outcome::Ok, Some(ms(10)), t0, 0.0);
        h.request(1, Outcome::Ok, Some(ms(10)), t0, 0.0);
        h.request(2, Outcome::Ok, Some(ms(80)), t0, 0.0); // 8x: sits out 4 turns
        let turns: Vec<bool> = (0..5).map(|_| h.take_turn(2, t0)).collect();
        assert_eq!(turns, [false, false, false, false, true]);
        assert!(h.take_turn(0, t0));
    }
}
