//! Choosing a backend: round robin over the backends the caller says are usable. Knows
//! nothing of health; it asks. Does no I/O and reads no clock.

/// A round-robin cursor over `n` backends.
#[derive(Clone, Debug)]
pub struct RoundRobin {
    n: usize,
    /// The backend the next turn starts looking at.
    cursor: usize,
}

impl RoundRobin {
    /// A rotation over `n` backends, starting at the first.
    pub fn new(n: usize) -> RoundRobin {
        RoundRobin { n, cursor: 0 }
    }

    /// The next usable backend, looking at each backend at most once. The cursor moves just
    /// past the backend chosen, so skipping an unusable one does not give its turn to the same
    /// neighbour every time, and the rotation among the usable ones stays even.
    pub fn next(&mut self, mut usable: impl FnMut(usize) -> bool) -> Option<usize> {
        for step in 0..self.n {
            let i = (self.cursor + step) % self.n;
            if usable(i) {
                self.cursor = (i + 1) % self.n;
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_rotation() {
        let mut rr = RoundRobin::new(3);
        let got: Vec<_> = (0..7).map(|_| rr.next(|_| true).unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn skipping_keeps_the_rest_even() {
        let mut rr = RoundRobin::new(3);
        let got: Vec<_> = (0..6).map(|_| rr.next(|i| i != 1).unwrap()).collect();
        assert_eq!(got, [0, 2, 0, 2, 0, 2]);
        let mut rr = RoundRobin::new(4);
        let mut counts = [0; 4];
        for _ in 0..300 {
            counts[rr.next(|i| i != 0).unwrap()] += 1;
        }
        assert_eq!(counts, [0, 100, 100, 100]);
    }

    #[test]
    fn none_usable_or_empty() {
        let mut rr = RoundRobin::new(3);
        let mut asked = 0;
        assert_eq!(
            rr.next(|_| {
                asked += 1;
                false
            }),
            None
        );
        assert_eq!(asked, 3, "each backend is asked once");
        assert_eq!(RoundRobin::new(0).next(|_| true), None);
    }
}
