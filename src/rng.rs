//! A small seeded pseudo-random generator (SplitMix64), so that simulated misbehaviour and
//! probe jitter are reproducible from a seed and need no dependency.
//!
//! Not for anything secret: the sequence is fully determined by the seed. SplitMix64 is chosen
//! because every seed, zero included, gives a good sequence, its state is one `u64`, and each
//! output costs a handful of multiplications.

/// Added to the state on every step: the odd 64-bit constant closest to 2^64 / φ, which visits
/// every state once before repeating.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A seeded generator; the same seed always yields the same sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    /// Advanced by [`GOLDEN_GAMMA`] per output; the output is a mix of it.
    state: u64,
}

impl Rng {
    /// A generator whose sequence is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniformly spread over `[0, 1)`: the top 53 bits, which is all an `f64` mantissa
    /// holds, so every value is equally likely and 1.0 is never returned.
    pub fn next_f64(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }

    /// A value in `0..n`, without the bias of a plain modulo (Lemire's multiply-and-reject).
    /// `n == 0` has no valid answer and gives 0 rather than panicking.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // The high half of x * n is uniform in 0..n except for the `2^64 mod n` lowest values
        // of the low half, which are drawn again; fewer than one draw in two is rejected.
        let threshold = n.wrapping_neg() % n;
        loop {
            let wide = u128::from(self.next_u64()) * u128::from(n);
            if (wide as u64) >= threshold {
                return (wide >> 64) as u64;
            }
        }
    }

    /// A value in `lo..=hi`; `lo` when `hi < lo`.
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            // The whole u64 range: every output is already uniform over it.
            None => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64_sequence() {
        // The first outputs of the reference C implementation for seeds 0 and 1.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
        let mut r = Rng::new(1);
        assert_eq!(r.next_u64(), 0x910A_2DEC_8902_5CC1);
        assert_eq!(r.next_u64(), 0xBEEB_8DA1_658E_EC67);
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn floats_stay_in_the_unit_interval_and_spread() {
        let mut r = Rng::new(42);
        let mut low = 0;
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x), "{x}");
            if x < 0.5 {
                low += 1;
            }
        }
        // A fair coin over 10,000 throws lands within ±500 of half far beyond 6 sigma.
        assert!((4_500..5_500).contains(&low), "{low}");
    }

    #[test]
    fn below_is_in_range_and_hits_every_value() {
        let mut r = Rng::new(3);
        let mut seen = [0u32; 7];
        for _ in 0..7_000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
        // A bound near the top of the range still terminates and stays below it.
        for _ in 0..100 {
            assert!(r.below(u64::MAX - 1) < u64::MAX - 1);
        }
    }

    #[test]
    fn inclusive_ranges() {
        let mut r = Rng::new(9);
        let mut hit_lo = false;
        let mut hit_hi = false;
        for _ in 0..1_000 {
            let v = r.range_inclusive(10, 13);
            assert!((10..=13).contains(&v));
            hit_lo |= v == 10;
            hit_hi |= v == 13;
        }
        assert!(hit_lo && hit_hi);
        assert_eq!(r.range_inclusive(5, 5), 5);
        assert_eq!(r.range_inclusive(6, 5), 6);
        let _ = r.range_inclusive(0, u64::MAX);
    }
}
