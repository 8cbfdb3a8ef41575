//! Choosing a backend: smooth weighted round robin (the rotation nginx uses) over the backends
//! the caller says are usable. Knows nothing of health; it asks. Does no I/O, reads no clock.
//!
//! Each turn, every usable backend's credit grows by its weight; the one with the most credit
//! is chosen and pays back the total. With weights 5, 1, 1 that gives `a a b a c a a`: the heavy
//! backend's turns are spread out, not sent in a burst. With equal weights it is plain round
//! robin. A backend that is skipped earns no credit, so skipping it does not hand its turns to
//! one neighbour.

/// A rotation over weighted backends.
#[derive(Clone, Debug)]
pub struct Balancer {
    weights: Vec<i64>,
    credit: Vec<i64>,
}

impl Balancer {
    /// A rotation over backends with these weights (each at least 1).
    pub fn new(weights: &[u32]) -> Balancer {
        Balancer {
            weights: weights.iter().map(|&w| i64::from(w.max(1))).collect(),
            credit: vec![0; weights.len()],
        }
    }

    /// The next usable backend. Asks about each backend once: the scan is bounded by their number.
    pub fn next(&mut self, mut usable: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut total = 0;
        let mut best: Option<usize> = None;
        for i in 0..self.weights.len() {
            if !usable(i) {
                continue;
            }
            self.credit[i] += self.weights[i];
            total += self.weights[i];
            if best.is_none_or(|b| self.credit[i] > self.credit[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.credit[b] -= total;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(weights: &[u32], n: usize, usable: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut b = Balancer::new(weights);
        (0..n).map(|_| b.next(&usable).unwrap()).collect()
    }

    #[test]
    fn equal_weights_rotate_strictly() {
        assert_eq!(run(&[1, 1, 1], 7, |_| true), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn skipping_keeps_the_rest_even() {
        assert_eq!(run(&[1, 1, 1], 6, |i| i != 1), [0, 2, 0, 2, 0, 2]);
        let mut counts = [0; 4];
        for i in run(&[1, 1, 1, 1], 300, |i| i != 0) {
            counts[i] += 1;
        }
        assert_eq!(counts, [0, 100, 100, 100]);
    }

    #[test]
    fn weights_are_smooth_and_exact() {
        let seq = run(&[5, 1, 1], 700, |_| true);
        assert_eq!(&seq[..7], &[0, 0, 1, 0, 2, 0, 0]);
        for window in seq.windows(7) {
            let mut c = [0; 3];
            for &i in window {
                c[i] += 1;
            }
            assert_eq!(c, [5, 1, 1], "window {window:?}");
        }
        let mut counts = [0; 3];
        for i in seq {
            counts[i] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn none_usable_or_empty() {
        let mut b = Balancer::new(&[1, 1, 1]);
        let mut asked = 0;
        let got = b.next(|_| {
            asked += 1;
            false
        });
        assert_eq!((got, asked), (None, 3));
        assert_eq!(Balancer::new(&[]).next(|_| true), None);
    }
}
