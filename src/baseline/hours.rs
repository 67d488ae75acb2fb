//! When in the week an identity is active: a 168-bucket histogram of its calls
//! by UTC hour of the week.

use super::counts::Minute;
use serde::{Deserialize, Serialize};

const HOURS: usize = 168;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hours {
    /// Calls per hour of the week; `u16` keeps it at 336 bytes, and halving
    /// every half-life keeps it from saturating and lets old rhythms fade.
    counts: Vec<u16>,
    halved_at: Minute,
}

impl Default for Hours {
    fn default() -> Self {
        Hours { counts: vec![0; HOURS], halved_at: 0 }
    }
}

impl Hours {
    pub fn record(&mut self, hour: usize, now: Minute, half_life_min: f64) {
        if self.halved_at == 0 {
            self.halved_at = now;
        }
        while (now.saturating_sub(self.halved_at)) as f64 >= half_life_min {
            self.counts.iter_mut().for_each(|c| *c /= 2);
            self.halved_at += half_life_min as Minute;
        }
        self.counts[hour % HOURS] = self.counts[hour % HOURS].saturating_add(1);
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }

    /// Probability of a call in `hour`. Counts are smoothed over the
    /// neighbouring hours (a job that runs at 14:00 may run at 13:58 or 14:59);
    /// hours still empty share the Good-Turing mass of "an hour not used
    /// before", (n1 + 1) / (N + 1) with n1 the hours used once, so an identity
    /// that often turns up at new hours is not surprising when it does again.
    pub fn probability(&self, hour: usize) -> f64 {
        let total = self.total() as f64;
        if total == 0.0 {
            return 1.0 / HOURS as f64;
        }
        let near = |h: usize| {
            let c = |h: usize| self.counts[h % HOURS] as f64;
            c(h) + 0.5 * (c(h + HOURS - 1) + c(h + 1))
        };
        let used_once = self.counts.iter().filter(|&&c| c == 1).count() as f64;
        let p_new = ((used_once + 1.0) / (total + 1.0)).min(1.0);
        match near(hour % HOURS) {
            n if n > 0.0 => (1.0 - p_new) * n / (2.0 * total),
            _ => {
                let empty = (0..HOURS).filter(|&h| near(h) == 0.0).count().max(1) as f64;
                p_new / empty
            }
        }
    }

    /// The busiest hours, for evidence: (hour of week, calls), most first.
    pub fn busiest(&self, n: usize) -> Vec<(usize, u16)> {
        let mut hours: Vec<(usize, u16)> = self.counts.iter().copied().enumerate().filter(|&(_, c)| c > 0).collect();
        hours.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        hours.truncate(n);
        hours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_hours_are_likely_and_quiet_hours_are_not() {
        let mut h = Hours::default();
        for day in 0..5 {
            for _ in 0..20 {
                h.record(day * 24 + 14, 1, 1e9);
            }
        }
        assert!(h.probability(14) * 168.0 > 10.0);
        assert!(h.probability(15) > h.probability(16));
        assert!(h.probability(3) * 168.0 < 0.05, "{}", h.probability(3));
        assert_eq!(h.busiest(1), vec![(14, 20)]);
    }

    #[test]
    fn counts_halve_every_half_life() {
        let mut h = Hours::default();
        for _ in 0..8 {
            h.record(0, 1, 100.0);
        }
        h.record(1, 201, 100.0);
        assert_eq!(h.total(), 3);
    }
}
