//! A small PRNG of our own (SplitMix64), so a seed gives the same fleet forever:
//! a crate update can never change the simulated bytes.

/// The SplitMix64 finalizer. It is a bijection on `u64`, which makes it usable for
/// ids that must stay unique as well as for seeding.
pub fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// One independent stream per part of the world (an identity, the incident plan...),
    /// so that changing one part does not shift the draws of every other.
    pub fn stream(seed: u64, part: u64) -> Rng {
        Rng { state: mix(seed ^ mix(part.wrapping_add(0x5EED))) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift keeps the bias below 2^-64 * n, far under anything we measure.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [lo, hi); `hi` must be above `lo`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `k` distinct items in their original order (all of them if `k` is larger).
    pub fn sample<T: Clone>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut chosen: Vec<usize> = (0..items.len()).collect();
        for i in 0..k.min(items.len()) {
            let j = i + self.below((items.len() - i) as u64) as usize;
            chosen.swap(i, j);
        }
        chosen.truncate(k.min(items.len()));
        chosen.sort_unstable();
        chosen.into_iter().map(|i| items[i].clone()).collect()
    }

    /// Standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// A Poisson count: exact (Knuth) for small means, normal approximation above 30.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            return (mean + mean.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let limit = (-mean).exp();
        let mut product = self.unit();
        let mut count = 0;
        while product > limit {
            product *= self.unit();
            count += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_fixed_forever() {
        // Pinned values: if these change, every simulated file changes.
        let mut r = Rng::stream(7, 0);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut again = Rng::stream(7, 0);
        assert_eq!(first, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::stream(7, 1).next_u64(), first[0]);
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161D_100B_05E5);
    }

    #[test]
    fn draws_stay_in_range_and_poisson_has_its_mean() {
        let mut r = Rng::stream(1, 2);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            let x = r.range(-3, 3);
            assert!((-3..3).contains(&x));
            assert!((0.0..1.0).contains(&r.unit()));
        }
        for mean in [0.5, 4.0, 50.0] {
            let n = 20_000;
            let total: u64 = (0..n).map(|_| r.poisson(mean)).sum();
            let observed = total as f64 / n as f64;
            assert!((observed - mean).abs() < 0.05 * mean + 0.05, "mean {mean}, observed {observed}");
        }
        let s = r.sample(&[1, 2, 3, 4, 5], 3);
        assert_eq!(s.len(), 3);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }
}
