//! The hashed timer wheel that holds every deadline of an event loop; it reads no clock.
//!
//! A proxy arms and disarms a deadline for nearly every socket event (connect, head, response,
//! idle, probes), and most are cancelled long before they fire. A wheel makes both `insert` and
//! `cancel` O(1) with no allocation once the slab has warmed up, where a heap would pay
//! O(log n) and leave cancelled entries behind.
//!
//! # Firing rule
//!
//! A timer is due iff `deadline <= now`, exactly, not rounded to the tick:
//! [`TimerWheel::pop_expired`]`(now)` never returns a timer that is not due, and returns `None`
//! only once no pending timer is due. The tick only picks the slot an entry waits in, so a sweep
//! looks at few entries. Deadlines more than one revolution ahead keep their absolute tick and
//! are skipped until the wheel reaches it; deadlines already past fire on the next pop. `now`
//! must not go backwards between calls (an `Instant` from the clock never does); if it did, a
//! timer found due at the later `now` could still be returned.

use std::fmt;
use std::time::{Duration, Instant};

use slab::Slab;

/// Upper bound on the slot count: slots are allocated up front, so a mistyped setting must not
/// reserve gigabytes. A million slots of 10 ms already cover almost three hours per revolution.
const MAX_SLOTS: usize = 1 << 20;

/// How many slots [`TimerWheel::poll_timeout`] looks at: enough that a busy loop rarely wakes
/// early, few enough that a poll never pays for the whole wheel.
pub const POLL_WALK: u64 = 64;

/// Names one armed timer. The generation makes an id whose timer already fired or was cancelled
/// harmless, even after the slab reuses its key for someone else's timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    /// Slab key of the entry; reused once the timer is gone.
    key: usize,
    /// Unique per insert, so it tells this timer apart from later ones under the same key.
    generation: u64,
}

/// One armed timer, linked into exactly one list: its slot's, or the list of due entries.
struct Entry<T> {
    /// When the timer is due; compared exactly, so firing is not rounded to the tick.
    deadline: Instant,
    /// Absolute tick of the deadline (raised to the cursor if already past). An entry whose tick
    /// is beyond the cursor's revolution shares a slot with nearer ones and is skipped until due.
    tick: u64,
    /// Copied into the [`TimerId`] so stale ids can be recognised.
    generation: u64,
    /// Index into `TimerWheel::heads` of the list holding this entry, so unlinking is O(1).
    list: usize,
    /// Neighbours in that list; intrusive links avoid a per-slot `Vec` and its reallocation.
    prev: Option<usize>,
    next: Option<usize>,
    value: T,
}

/// Deadlines hashed by tick into a ring of slots, each an intrusive doubly-linked list in a slab.
pub struct TimerWheel<T> {
    /// Storage for every pending timer; its keys are the list links and half of each id.
    entries: Slab<Entry<T>>,
    /// Head of each list: one per slot, plus a last one holding entries found due but not yet
    /// popped, so one sweep serves many `pop_expired` calls.
    heads: Vec<Option<usize>>,
    /// Slot count minus one; the slot count is a power of two so hashing a tick is a mask.
    mask: u64,
    /// Origin of tick numbering; instants before it count as tick zero.
    start: Instant,
    /// Tick length, at least one nanosecond so the division can never be by zero.
    tick_nanos: u128,
    /// Lowest tick a slot entry may have: every tick below it has been swept.
    cursor: u64,
    /// Source of generations; a u64 never wraps in practice, and wrapping would still be safe
    /// unless an id survived 2^64 later inserts.
    next_generation: u64,
}

impl<T> TimerWheel<T> {
    /// `tick`: resolution (e.g. 10 ms; zero is raised to 1 ns). `slots`: number of buckets,
    /// rounded up to a power of two and clamped to `1..=MAX_SLOTS`. `now`: the wheel's start.
    pub fn new(tick: Duration, slots: usize, now: Instant) -> Self {
        let slots = slots.clamp(1, MAX_SLOTS).next_power_of_two();
        TimerWheel {
            entries: Slab::new(),
            heads: vec![None; slots + 1],
            mask: slots as u64 - 1,
            start: now,
            tick_nanos: tick.as_nanos().max(1),
            cursor: 0,
            next_generation: 0,
        }
    }

    /// Arms a timer; O(1). A deadline already past fires on the next `pop_expired`.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let key = self.entries.insert(Entry {
            deadline,
            tick: 0,
            generation,
            list: 0,
            prev: None,
            next: None,
            value,
        });
        self.place(key);
        TimerId { key, generation }
    }

    /// Disarms a timer and hands back its value; O(1). `None` if it already fired, was
    /// cancelled, or the id is stale.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        if !self.contains(id) {
            return None;
        }
        self.unlink(id.key);
        Some(self.entries.remove(id.key).value)
    }

    /// Moves a pending timer to a new deadline, keeping its id so the owner need not store a new
    /// one (idle timeouts are pushed back on every read). O(1). `false` if the id is not pending.
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.unlink(id.key);
        self.entries[id.key].deadline = deadline;
        self.place(id.key);
        true
    }

    /// Whether `id` names a timer that is still pending.
    pub fn contains(&self, id: TimerId) -> bool {
        self.entries
            .get(id.key)
            .is_some_and(|e| e.generation == id.generation)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pops one timer with `deadline <= now`, in no particular order among due ones; `None` when
    /// nothing more is due. Cost: O(1) per pop, plus, when the due list is empty, a sweep of the
    /// current slot and of each slot the clock passed (at most one revolution).
    pub fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, T)> {
        if self.heads[self.due_list()].is_none() {
            self.advance(now);
        }
        let key = self.heads[self.due_list()]?;
        self.unlink(key);
        let entry = self.entries.remove(key);
        let id = TimerId {
            key,
            generation: entry.generation,
        };
        Some((id, entry.value))
    }

    /// The exact earliest deadline still pending, for the poll timeout; `None` when empty.
    /// Walks slots from the cursor and stops at the first holding an entry due this revolution:
    /// O(slots) plus the entries of the slots walked.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut earliest = None;
        let mut take = |e: &Entry<T>| {
            earliest = Some(earliest.map_or(e.deadline, |d: Instant| d.min(e.deadline)))
        };
        self.list(self.due_list()).for_each(&mut take);
        for i in 0..=self.mask {
            let tick = self.cursor.saturating_add(i);
            let mut settled = false;
            for e in self.list(self.slot_of(tick)) {
                take(e);
                settled |= e.tick == tick;
            }
            if settled {
                // Every entry not yet seen has a later tick, hence a later deadline.
                break;
            }
        }
        earliest
    }

    /// How long the event loop may sleep: `next_deadline - now`, zero if already due, `None`
    /// when no timer is pending.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.next_deadline()
            .map(|d| d.saturating_duration_since(now))
    }

    /// Like [`TimerWheel::timeout`], but cheap enough for every turn of a busy loop: it looks
    /// at no more than [`POLL_WALK`] slots, and when the earliest deadline lies beyond them it
    /// answers the end of the walk instead, a wake-up that is early and harmless. Deadlines a
    /// revolution or more away (idle timeouts, say) would otherwise make every poll walk the
    /// whole wheel and every entry in it.
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if self.is_empty() {
            return None;
        }
        let mut earliest: Option<Instant> = self.list(self.due_list()).map(|e| e.deadline).min();
        let mut settled = false;
        for i in 0..POLL_WALK.min(self.mask + 1) {
            let tick = self.cursor.saturating_add(i);
            for e in self.list(self.slot_of(tick)) {
                earliest = Some(earliest.map_or(e.deadline, |d| d.min(e.deadline)));
                settled |= e.tick == tick;
            }
            if settled {
                break;
            }
        }
        if !settled {
            if let Some(end) = self.instant_of(self.cursor.saturating_add(POLL_WALK)) {
                earliest = Some(earliest.map_or(end, |d| d.min(end)));
            }
        }
        earliest.map(|d| d.saturating_duration_since(now))
    }

    /// The instant tick `tick` begins, if it can be told.
    fn instant_of(&self, tick: u64) -> Option<Instant> {
        let nanos = u128::from(tick).saturating_mul(self.tick_nanos);
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        let sub = (nanos % 1_000_000_000) as u32;
        self.start.checked_add(Duration::new(secs, sub))
    }

    /// Moves every entry with `deadline <= now` onto the due list and brings the cursor to `now`.
    /// Such entries have ticks between the cursor and `now`'s tick, so only those slots are
    /// swept, and at most one revolution of them however long the loop slept.
    fn advance(&mut self, now: Instant) {
        let target = self.tick_of(now).max(self.cursor);
        let slots = (target - self.cursor).saturating_add(1).min(self.mask + 1);
        for i in 0..slots {
            self.sweep(self.slot_of(self.cursor.wrapping_add(i)), now);
        }
        // Entries left with a tick below `target` would have `deadline <= now`, so none remain.
        self.cursor = target;
    }

    /// Links an unlinked entry into the slot of its deadline's tick, raised to the cursor so a
    /// past deadline lands where the next sweep looks.
    fn place(&mut self, key: usize) {
        let tick = self.tick_of(self.entries[key].deadline).max(self.cursor);
        self.entries[key].tick = tick;
        self.push_front(self.slot_of(tick), key);
    }

    /// Moves the entries of `slot` with `deadline <= now` onto the due list.
    fn sweep(&mut self, slot: usize, now: Instant) {
        let mut cur = self.heads[slot];
        while let Some(key) = cur {
            let entry = &self.entries[key];
            cur = entry.next;
            if entry.deadline <= now {
                self.unlink(key);
                self.push_front(self.due_list(), key);
            }
        }
    }

    /// The entries of one list, in link order.
    fn list(&self, list: usize) -> impl Iterator<Item = &Entry<T>> + '_ {
        let first = self.heads[list].map(|k| &self.entries[k]);
        std::iter::successors(first, |e| e.next.map(|k| &self.entries[k]))
    }

    fn due_list(&self) -> usize {
        self.heads.len() - 1
    }

    /// Tick number of `t`, counting from the wheel's start; saturates instead of panicking.
    fn tick_of(&self, t: Instant) -> u64 {
        let since = t.checked_duration_since(self.start).unwrap_or_default();
        u64::try_from(since.as_nanos() / self.tick_nanos).unwrap_or(u64::MAX)
    }

    fn slot_of(&self, tick: u64) -> usize {
        // The mask is below MAX_SLOTS, so the result fits any usize.
        (tick & self.mask) as usize
    }

    fn push_front(&mut self, list: usize, key: usize) {
        let old = self.heads[list].replace(key);
        if let Some(old) = old {
            self.entries[old].prev = Some(key);
        }
        let entry = &mut self.entries[key];
        entry.list = list;
        entry.prev = None;
        entry.next = old;
    }

    fn unlink(&mut self, key: usize) {
        let Entry {
            list, prev, next, ..
        } = self.entries[key];
        match prev {
            Some(p) => self.entries[p].next = next,
            None => self.heads[list] = next,
        }
        if let Some(n) = next {
            self.entries[n].prev = prev;
        }
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len())
            .field("slots", &(self.mask + 1))
            .field("tick_nanos", &self.tick_nanos)
            .field("cursor", &self.cursor)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const TICK: Duration = Duration::from_millis(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(wheel: &mut TimerWheel<u64>, now: Instant) -> Vec<u64> {
        let mut out: Vec<u64> = std::iter::from_fn(|| wheel.pop_expired(now))
            .map(|(_, v)| v)
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn fires_at_deadline_never_before() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(TICK, 8, t0);
        wheel.insert(t0 + ms(25), 1);
        wheel.insert(t0 + ms(5), 2);
        wheel.insert(t0 + Duration::from_micros(25_001), 3);
        assert_eq!(wheel.len(), 3);
        assert!(drain(&mut wheel, t0 + ms(4)).is_empty());
        assert_eq!(drain(&mut wheel, t0 + ms(5)), vec![2]);
        assert!(drain(&mut wheel, t0 + ms(24)).is_empty());
        assert_eq!(drain(&mut wheel, t0 + ms(25)), vec![1]);
        assert_eq!(drain(&mut wheel, t0 + ms(26)), vec![3]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn cancel_before_fire_returns_value() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(TICK, 8, t0);
        let a = wheel.insert(t0 + ms(30), 1);
        let b = wheel.insert(t0 + ms(30), 2);
        assert_eq!(wheel.cancel(a), Some(1));
        assert_eq!(wheel.cancel(a), None);
        assert!(!wheel.contains(a) && wheel.contains(b));
        assert_eq!(drain(&mut wheel, t0 + ms(100)), vec![2]);
    }

    #[test]
    fn stale_id_cancels_nothing() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(TICK, 8, t0);
        let fired = wheel.insert(t0 + ms(10), 1);
        assert_eq!(wheel.pop_expired(t0 + ms(10)), Some((fired, 1)));
        assert_eq!(wheel.cancel(fired), None);
        // The slab reuses the freed key; the old id must not reach the new timer.
        let reused = wheel.insert(t0 + ms(50), 2);
        assert_eq!(reused.key, fired.key);
        assert_eq!(wheel.cancel(fired), None);
        assert!(!wheel.reschedule(fired, t0));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.cancel(reused), Some(2));
    }

    #[test]
    fn far_deadline_waits_whole_revolutions() {
        let t0 = Instant::now();
        // 8 slots of 10 ms: one revolution is 80 ms; this deadline is three and a bit away.
        let mut wheel = TimerWheel::new(TICK, 8, t0);
        wheel.insert(t0 + ms(255), 7);
        for step in (10..=250).step_by(10).chain([254]) {
            assert!(drain(&mut wheel, t0 + ms(step)).is_empty(), "at {step} ms");
        }
        assert_eq!(drain(&mut wheel, t0 + ms(255)), vec![7]);
    }

    #[test]
    fn long_sleep_catches_up_in_one_call() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(TICK, 4, t0);
        for i in 0..20 {
            wheel.insert(t0 + ms(i * 7), i);
        }
        wheel.insert(t0 + ms(10_000), 99);
        assert_eq!(
            drain(&mut wheel, t0 + ms(3_600)),
            (0..20).collect::<Vec<_>>()
        );
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(10_000)));
    }

    #[test]
    fn past_deadline_fires_at_once() {
        let t0 = Instant::now() + ms(1_000);
        let mut wheel = TimerWheel::new(TICK, 8, t0);
        assert!(drain(&mut wheel, t0 + ms(500)).is_empty());
        wheel.insert(t0 + ms(100), 1);
        wheel.insert(t0 - ms(900), 2); // before the wheel's start
        assert_eq!(wheel.timeout(t0 + ms(500)), Some(Duration::ZERO));
        assert_eq!(drain(&mut wheel, t0 + ms(500)), vec![1, 2]);
    }

    #[test]
    fn next_deadline_and_timeout() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(TICK, 8, t0);
        assert_eq!(wheel.next_deadline(), None);
        assert_eq!(wheel.timeout(t0), None);
        let far = wheel.insert(t0 + ms(1_003), 1);
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(1_003)));
        let near = wheel.insert(t0 + ms(42), 2);
        wheel.insert(t0 + ms(47), 3);
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(42)));
        assert_eq!(wheel.timeout(t0 + ms(40)), Some(ms(2)));
        assert_eq!(wheel.timeout(t0 + ms(45)), Some(Duration::ZERO));
        assert!(wheel.reschedule(near, t0 + ms(2_000)));
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(47)));
        assert!(wheel.reschedule(far, t0 + ms(1)));
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(1)));
        assert_eq!(wheel.pop_expired(t0 + ms(1)), Some((far, 1)));
    }

    #[test]
    fn poll_timeout_wakes_early_for_far_deadlines() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(TICK, 1024, t0);
        assert_eq!(wheel.poll_timeout(t0), None);
        wheel.insert(t0 + ms(60_000), ());
        let walk = TICK * POLL_WALK as u32;
        assert_eq!(wheel.poll_timeout(t0), Some(walk));
        assert_eq!(wheel.timeout(t0), Some(ms(60_000)));
        wheel.insert(t0 + ms(25), ());
        assert_eq!(wheel.poll_timeout(t0), Some(ms(25)));
    }

    #[test]
    fn degenerate_settings_are_clamped() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(Duration::ZERO, 0, t0);
        wheel.insert(t0 + ms(3), 1);
        wheel.insert(t0 + ms(1), 2);
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(1)));
        assert_eq!(drain(&mut wheel, t0 + ms(2)), vec![2]);
        assert_eq!(drain(&mut wheel, t0 + ms(3)), vec![1]);
    }

    /// splitmix64: a fixed-seed generator so the model test is reproducible without a crate.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Compares the wheel with a sorted map under the exact rule: a timer is popped iff its
    /// `deadline <= now`, and `next_deadline` is the model's first key, even mid-drain.
    #[test]
    fn random_ops_match_btreemap_model() {
        let base = Instant::now();
        let at = |ns: u64| base + Duration::from_nanos(ns);
        let mut rng = SplitMix(0x5EED_1234);
        let mut now_ns: u64 = 1_000_000_000;
        let mut wheel = TimerWheel::new(TICK, 16, at(now_ns));
        let mut model: BTreeMap<(Instant, u64), TimerId> = BTreeMap::new();
        let mut dead: Vec<TimerId> = Vec::new();
        let mut fired = 0;
        for value in 0..20_000u64 {
            let pick = |rng: &mut SplitMix, n: usize| rng.below(n as u64) as usize;
            match rng.below(100) {
                0..=49 => {
                    // From 60 ms ago (sometimes before the wheel's start) to ~2 s ahead, that is
                    // up to twelve revolutions of 16 × 10 ms.
                    let ns = (now_ns + rng.below(2_000_000_000)).saturating_sub(60_000_000);
                    model.insert((at(ns), value), wheel.insert(at(ns), value));
                }
                50..=64 if !model.is_empty() => {
                    let key = *model.keys().nth(pick(&mut rng, model.len())).unwrap();
                    let id = model.remove(&key).unwrap();
                    assert_eq!(wheel.cancel(id), Some(key.1));
                    dead.push(id);
                }
                65..=74 if !model.is_empty() => {
                    let key = *model.keys().nth(pick(&mut rng, model.len())).unwrap();
                    let id = model.remove(&key).unwrap();
                    let deadline = at(now_ns + rng.below(500_000_000));
                    assert!(wheel.reschedule(id, deadline));
                    model.insert((deadline, key.1), id);
                }
                75..=79 if !dead.is_empty() => {
                    let id = dead[pick(&mut rng, dead.len())];
                    assert_eq!(wheel.cancel(id), None);
                    assert!(!wheel.contains(id));
                }
                _ => {
                    // Mostly small steps; now and then a sleep of many revolutions.
                    let long = rng.below(50) == 0;
                    now_ns += rng.below(if long { 3_000_000_000 } else { 40_000_000 });
                    let now = at(now_ns);
                    while let Some((id, v)) = wheel.pop_expired(now) {
                        let key = *model.iter().find(|e| *e.1 == id).unwrap().0;
                        assert!(key.0 <= now && key.1 == v, "fired early at op {value}");
                        model.remove(&key);
                        dead.push(id);
                        fired += 1;
                        assert_eq!(wheel.next_deadline(), model.keys().next().map(|k| k.0));
                    }
                    assert!(
                        model.keys().next().is_none_or(|k| k.0 > now),
                        "missed at {value}"
                    );
                }
            }
            assert_eq!(wheel.len(), model.len());
            assert_eq!(wheel.next_deadline(), model.keys().next().map(|k| k.0));
            // The cheap poll timeout never sleeps past the earliest deadline.
            let now = at(now_ns);
            match (wheel.poll_timeout(now), wheel.timeout(now)) {
                (Some(cheap), Some(exact)) => assert!(cheap <= exact, "{cheap:?} > {exact:?}"),
                (cheap, exact) => assert_eq!(cheap.is_some(), exact.is_some()),
            }
        }
        assert!(
            fired > 5_000,
            "the model test should exercise firing, fired {fired}"
        );
    }
}
