//! The `Date` field: a time written as an IMF-fixdate (RFC 9110 §5.6.7), and a cache that
//! writes it once per second however many answers carry it.
//!
//! RFC 9110 §6.6.1: an origin server with a clock sends `Date` in its answers, and a proxy
//! with a clock adds one to a forwarded response that lacks it. Both programs here have a
//! clock, so every final answer either of them makes carries one.
//!
//! Formatting allocates nothing and uses no calendar crate: days since the epoch become a
//! civil date by the era arithmetic of Howard Hinnant's `civil_from_days`. This module reads
//! no clock; the loops hand it the wall-clock time.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;

/// An IMF-fixdate, ready to be copied into a head.
pub type HttpDate = [u8; IMF_FIXDATE_LEN];

/// The last second an IMF-fixdate can show: its year has four digits (9999-12-31 23:59:59).
const LAST_SECOND: u64 = 253_402_300_799;

const SECS_PER_DAY: u64 = 86_400;
/// Day names from Sunday, as `day-name` spells them (RFC 9110 §5.6.7).
const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
/// Month names from January, as `month` spells them.
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `t` as an IMF-fixdate. A time before 1970 shows the epoch and one past year 9999 shows the
/// last second of 9999: a clock that far off is wrong anyway, and the field stays well formed.
pub fn imf_fixdate(t: SystemTime) -> HttpDate {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_secs(secs.min(LAST_SECOND))
}

/// Seconds since the epoch (at most [`LAST_SECOND`]) as an IMF-fixdate.
fn format_secs(secs: u64) -> HttpDate {
    let days = secs / SECS_PER_DAY;
    let in_day = secs % SECS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday: day 0 is weekday 4 counting from Sunday.
    out[0..3].copy_from_slice(DAYS[((days + 4) % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], in_day / 3600);
    two_digits(&mut out[20..22], in_day / 60 % 60);
    two_digits(&mut out[23..25], in_day % 60);
    out
}

/// Writes `n` (below 100) as two decimal digits.
fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1–12) and day (1–31) of the day `days` after 1970-01-01, in the proleptic
/// Gregorian calendar. The count is shifted to start on 0000-03-01, so that the leap day ends
/// its year, and split into 400-year eras of 146 097 days, within which the pattern repeats.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146_096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

/// The current date for the `Date` field, formatted at most once per wall-clock second. The
/// loop refreshes it once per turn; answers copy its 29 bytes.
///
/// The fields are cells so that one cache can be shared (behind an `Rc`) between the loop,
/// which refreshes it, and the connections that read it while writing answers of their own;
/// everything runs on the loop's one thread.
#[derive(Debug)]
pub struct DateCache {
    /// The formatted date.
    bytes: Cell<HttpDate>,
    /// The wall-clock second `bytes` shows.
    shown: Cell<u64>,
    /// When, by the monotonic clock, the wall clock reaches its next second. Until then a
    /// refresh is one comparison; `None` before the first refresh.
    next: Cell<Option<Instant>>,
}

impl DateCache {
    /// A cache showing `wall`, refreshed next at the wall clock's next second.
    pub fn new(now: Instant, wall: SystemTime) -> DateCache {
        let cache = DateCache {
            bytes: Cell::new(imf_fixdate(UNIX_EPOCH)),
            shown: Cell::new(0),
            next: Cell::new(None),
        };
        cache.refresh(now, || wall);
        cache
    }

    /// Brings the date up to `now`. `wall` is called for the wall-clock time only once a
    /// second has begun since the last call, and the date is formatted again only when the
    /// second it shows changed.
    pub fn refresh(&self, now: Instant, wall: impl FnOnce() -> SystemTime) {
        if self.next.get().is_some_and(|next| now < next) {
            return;
        }
        let since = wall().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = since.as_secs();
        if self.next.get().is_none() || secs != self.shown.get() {
            self.bytes.set(format_secs(secs.min(LAST_SECOND)));
            self.shown.set(secs);
        }
        let to_next_second =
            Duration::from_secs(1) - Duration::from_nanos(since.subsec_nanos().into());
        self.next.set(Some(now + to_next_second));
    }

    /// The current date as an IMF-fixdate.
    pub fn bytes(&self) -> HttpDate {
        self.bytes.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> String {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        String::from_utf8(imf_fixdate(t).to_vec()).unwrap()
    }

    #[test]
    fn known_dates() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            // RFC 9110 §5.6.7's own example.
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            // 2000 is a leap year although divisible by 100 (it is by 400).
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_208_000, "Thu, 29 Feb 2024 12:00:00 GMT"),
            // Day 366 of a leap year.
            (1_735_689_599, "Tue, 31 Dec 2024 23:59:59 GMT"),
            (2_147_483_648, "Tue, 19 Jan 2038 03:14:08 GMT"),
            // 2100 is not a leap year: February ends on the 28th.
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (LAST_SECOND, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for &(secs, want) in cases {
            assert_eq!(at(secs), want, "{secs}");
        }
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        assert_eq!(at(LAST_SECOND + 1), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(at(u64::MAX / 2), "Fri, 31 Dec 9999 23:59:59 GMT");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(&imf_fixdate(before), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    /// Every day from 1970 to past 2400 against a plain day-by-day count, so each month
    /// length and leap rule is checked, not only the dates listed above.
    #[test]
    fn civil_dates_follow_a_plain_count() {
        let leap =
            |y: u64| y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..160_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert!(y > 2400);
    }

    #[test]
    fn the_cache_reads_the_clock_once_a_second() {
        let start = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(784_111_777_250);
        let cache = DateCache::new(start, wall);
        assert_eq!(&cache.bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        // Within the same second the wall clock is not even asked.
        cache.refresh(start + Duration::from_millis(749), || {
            panic!("read the clock within the second")
        });
        // The next second began 750 ms after the first reading.
        let mut asked = false;
        cache.refresh(start + Duration::from_millis(750), || {
            asked = true;
            wall + Duration::from_millis(750)
        });
        assert!(asked);
        assert_eq!(&cache.bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        // A wall clock set back shows at the next refresh.
        cache.refresh(start + Duration::from_secs(5), || {
            wall - Duration::from_secs(60)
        });
        assert_eq!(&cache.bytes(), b"Sun, 06 Nov 1994 08:48:37 GMT");
    }
}
