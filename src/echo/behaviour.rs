//! The misbehaviour rr-echo shows on demand (failures, delays, sickness), decided per request
//! from a seeded generator so that a load-balancer test can replay the same run.
//!
//! Pure: no clock, no I/O. The server asks for a [`Decision`] when an application request is
//! complete and carries it out itself.

use std::time::Duration;

use crate::rng::Rng;

/// The longest delay accepted: an hour is already a hung backend rather than a slow one, and the
/// bound keeps `now + delay` far from any overflow.
pub const MAX_DELAY_MS: u64 = 60 * 60 * 1000;

/// An inclusive range of delays in milliseconds; `0..=0` is no delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DelayMs {
    /// The shortest delay.
    pub min: u64,
    /// The longest delay; at least `min`.
    pub max: u64,
}

/// Everything that can be tuned, at start-up by flags and later through `/control`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// `/healthz` answers 200 when true, 503 when false.
    pub healthy: bool,
    /// The fraction of application requests answered with 500, in `0..=1`.
    pub error_rate: f64,
    /// How long application answers are held back.
    pub delay: DelayMs,
    /// Every Nth application request fails with 500; 0 turns this off.
    pub fail_every: u64,
    /// The seed the generator was last started from, reported so a run can be replayed.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            healthy: true,
            error_rate: 0.0,
            delay: DelayMs::default(),
            fail_every: 0,
            seed: 1,
        }
    }
}

/// A rule a setting broke; flags and `/control` report the same rules the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// The error rate is not a number in `0..=1`.
    ErrorRate,
    /// The delay range has its minimum above its maximum.
    DelayOrder,
    /// A delay is over [`MAX_DELAY_MS`].
    DelayTooLong,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SettingsError::ErrorRate => "must be a number between 0 and 1",
            SettingsError::DelayOrder => "the minimum delay is above the maximum",
            SettingsError::DelayTooLong => "a delay may be at most 3600000 ms (one hour)",
        })
    }
}

impl Settings {
    /// Checks every rule; the first broken one is reported.
    pub fn validate(&self) -> Result<(), SettingsError> {
        // `contains` is false for NaN, so NaN is refused too.
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(SettingsError::ErrorRate);
        }
        if self.delay.min > self.delay.max {
            return Err(SettingsError::DelayOrder);
        }
        if self.delay.max > MAX_DELAY_MS {
            return Err(SettingsError::DelayTooLong);
        }
        Ok(())
    }
}

/// What to do with one application request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Answer 500 instead of the real answer.
    pub fail: bool,
    /// Hold the answer back this long (zero: answer at once).
    pub delay: Duration,
}

/// The settings in force, the generator, and the request count that `fail_every` and
/// `/control` read.
#[derive(Clone, Debug)]
pub struct Behaviour {
    settings: Settings,
    rng: Rng,
    /// Application requests decided so far.
    requests: u64,
}

impl Behaviour {
    /// Starts with `settings`, the generator seeded from `settings.seed`.
    pub fn new(settings: Settings) -> Behaviour {
        Behaviour {
            rng: Rng::new(settings.seed),
            settings,
            requests: 0,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How many application requests have been decided.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// `/healthz` should answer 200.
    pub fn is_healthy(&self) -> bool {
        self.settings.healthy
    }

    /// Decides the next application request. Exactly two values are drawn every time, whatever
    /// the settings, so the failures of a seeded run do not shift when only the delay changes.
    pub fn decide(&mut self) -> Decision {
        self.requests = self.requests.wrapping_add(1);
        let s = &self.settings;
        let nth = s.fail_every > 0 && self.requests.is_multiple_of(s.fail_every);
        let coin = self.rng.next_f64() < s.error_rate;
        let delay_ms = Rng::new(self.rng.next_u64()).range_inclusive(s.delay.min, s.delay.max);
        Decision {
            fail: nth || coin,
            delay: Duration::from_millis(delay_ms),
        }
    }

    /// Replaces the settings after checking them; a new seed restarts the generator. Nothing
    /// changes when the new settings are refused.
    pub fn replace(&mut self, settings: Settings) -> Result<(), SettingsError> {
        settings.validate()?;
        if settings.seed != self.settings.seed {
            self.rng = Rng::new(settings.seed);
        }
        self.settings = settings;
        Ok(())
    }

    /// Restarts the generator from `seed` even if it is the seed in force, so a test can replay
    /// a sequence without restarting the server.
    pub fn reseed(&mut self, seed: u64) {
        self.settings.seed = seed;
        self.rng = Rng::new(seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings::default();
        f(&mut s);
        s
    }

    #[test]
    fn validation_rules() {
        use SettingsError::*;
        let cases: [(Settings, Result<(), SettingsError>); 8] = [
            (Settings::default(), Ok(())),
            (with(|s| s.error_rate = 1.0), Ok(())),
            (with(|s| s.error_rate = 1.01), Err(ErrorRate)),
            (with(|s| s.error_rate = -0.1), Err(ErrorRate)),
            (with(|s| s.error_rate = f64::NAN), Err(ErrorRate)),
            (
                with(|s| s.delay = DelayMs { min: 5, max: 4 }),
                Err(DelayOrder),
            ),
            (
                with(|s| {
                    s.delay = DelayMs {
                        min: 0,
                        max: MAX_DELAY_MS + 1,
                    }
                }),
                Err(DelayTooLong),
            ),
            (
                with(|s| {
                    s.delay = DelayMs {
                        min: MAX_DELAY_MS,
                        max: MAX_DELAY_MS,
                    }
                }),
                Ok(()),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.validate(), want, "{s:?}");
        }
    }

    fn statuses(b: &mut Behaviour, n: usize) -> Vec<bool> {
        (0..n).map(|_| b.decide().fail).collect()
    }

    #[test]
    fn well_behaved_by_default() {
        let mut b = Behaviour::new(Settings::default());
        for _ in 0..100 {
            assert_eq!(
                b.decide(),
                Decision {
                    fail: false,
                    delay: Duration::ZERO
                }
            );
        }
        assert_eq!(b.requests(), 100);
    }

    #[test]
    fn fail_every_counts_application_requests() {
        let mut b = Behaviour::new(with(|s| s.fail_every = 2));
        assert_eq!(statuses(&mut b, 6), [false, true, false, true, false, true]);
        let mut b = Behaviour::new(with(|s| s.fail_every = 3));
        assert_eq!(
            statuses(&mut b, 6),
            [false, false, true, false, false, true]
        );
    }

    #[test]
    fn error_rate_is_reproducible_and_roughly_right() {
        let s = with(|s| {
            s.error_rate = 0.5;
            s.seed = 7;
        });
        let a = statuses(&mut Behaviour::new(s), 1000);
        let b = statuses(&mut Behaviour::new(s), 1000);
        assert_eq!(a, b);
        let fails = a.iter().filter(|&&f| f).count();
        assert!((400..600).contains(&fails), "{fails}");
        let all = with(|s| s.error_rate = 1.0);
        assert!(statuses(&mut Behaviour::new(all), 100).iter().all(|&f| f));
    }

    #[test]
    fn failures_do_not_depend_on_the_delay() {
        let plain = with(|s| s.error_rate = 0.3);
        let slow = with(|s| {
            s.error_rate = 0.3;
            s.delay = DelayMs { min: 10, max: 20 };
        });
        let mut slow_b = Behaviour::new(slow);
        assert_eq!(
            statuses(&mut Behaviour::new(plain), 200),
            statuses(&mut slow_b, 200)
        );
        for _ in 0..200 {
            let d = slow_b.decide().delay;
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
        }
    }

    #[test]
    fn replace_validates_and_reseeds() {
        let mut b = Behaviour::new(with(|s| s.error_rate = 0.5));
        let first = statuses(&mut b, 50);
        assert_eq!(
            b.replace(with(|s| s.error_rate = 2.0)),
            Err(SettingsError::ErrorRate)
        );
        assert_eq!(b.settings().error_rate, 0.5);
        b.reseed(1);
        assert_eq!(statuses(&mut b, 50), first);
        let s = with(|s| {
            s.error_rate = 0.5;
            s.seed = 9;
        });
        b.replace(s).unwrap();
        assert_eq!(statuses(&mut b, 50), statuses(&mut Behaviour::new(s), 50));
    }
}
