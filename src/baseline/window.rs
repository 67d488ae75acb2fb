//! Per-window activity: how many calls an identity makes in a window and how
//! many distinct places it reaches, against the decayed mean and variance of
//! its past active windows.

use super::counts::{Decay, Minute};
use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

/// Most distinct keys remembered for one window; past it, fan-out is at least this.
const MAX_DISTINCT: usize = 512;

/// Decayed mean and variance of a per-window quantity (West's weighted update).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Moments {
    pub weight: f32,
    pub mean: f32,
    pub var: f32,
    /// Undecayed number of windows folded in.
    pub windows: u32,
}

impl Moments {
    fn add(&mut self, x: f64, keep: f64) {
        let w = self.weight as f64 * keep + 1.0;
        let (mean, var) = (self.mean as f64, self.var as f64);
        let delta = x - mean;
        let new_mean = mean + delta / w;
        let new_var = if self.windows == 0 { 0.0 } else { (var * (w - 1.0) + delta * (x - new_mean)) / w };
        *self = Moments { weight: w as f32, mean: new_mean as f32, var: new_var as f32, windows: self.windows + 1 };
    }

    /// P(X >= k) for the next window, from a negative binomial with this mean and
    /// variance (a Poisson when the history is not over-dispersed). Bursty
    /// identities get the wide tail they have earned.
    pub fn tail(&self, k: u32) -> f64 {
        let mean = (self.mean as f64).max(0.5);
        let var = (self.var as f64).max(mean);
        if k == 0 {
            return 1.0;
        }
        let x = (k - 1) as u64;
        if var <= mean * 1.05 {
            Poisson::new(mean).map(|d| d.sf(x)).unwrap_or(1.0)
        } else {
            let r = mean * mean / (var - mean);
            let p = r / (r + mean);
            NegativeBinomial::new(r, p).map(|d| d.sf(x)).unwrap_or(1.0)
        }
    }

    /// The smallest count whose tail probability is below `alpha`.
    pub fn threshold(&self, alpha: f64) -> u32 {
        let (mut lo, mut hi) = (1u32, 16u32.max((self.mean * 4.0) as u32 + 16));
        while self.tail(hi) >= alpha && hi < u32::MAX / 2 {
            lo = hi;
            hi *= 2;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.tail(mid) < alpha {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }
}

/// The current window of one identity, and the history of its past windows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Activity {
    /// Index of the current window (minute / window length).
    pub window: u32,
    pub calls: u32,
    /// Calls of the window just before the current one (0 when that window had none).
    #[serde(default)]
    pub previous_calls: u32,
    /// Distinct keys reached in the window (sorted), capped at `MAX_DISTINCT`.
    pub reached: Vec<u64>,
    pub calls_history: Moments,
    pub reach_history: Moments,
    /// When the history was last folded, for decay.
    pub folded_at: Minute,
}

impl Activity {
    /// The counts this window would have with one more call reaching `key`.
    pub fn preview(&self, window: u32, key: u64) -> (u32, u32) {
        if window != self.window {
            return (1, 1);
        }
        let new = self.reached.binary_search(&key).is_err() && self.reached.len() < MAX_DISTINCT;
        (self.calls + 1, self.reached.len() as u32 + u32::from(new))
    }

    /// Calls of the window before `window`, as far as this activity knows: a burst held
    /// over two windows in a row is judged on both (see `detect::window_burst`).
    pub fn calls_before(&self, window: u32) -> u32 {
        match window.checked_sub(self.window) {
            Some(0) => self.previous_calls,
            Some(1) => self.calls,
            _ => 0,
        }
    }

    /// Adds a call to the current window, first folding a finished window into history.
    pub fn record(&mut self, window: u32, key: u64, now: Minute, decay: Decay) {
        if window != self.window {
            if self.calls > 0 {
                let keep = decay.factor(now.saturating_sub(self.folded_at));
                self.calls_history.add(self.calls as f64, keep);
                self.reach_history.add(self.reached.len() as f64, keep);
                self.folded_at = now;
            }
            self.previous_calls = self.calls_before(window);
            self.window = window;
            self.calls = 0;
            // A burst's keys are not kept past its window: without the
            // shrink, one busy window's allocation stayed with the baseline
            // for good (about 100 bytes of an identity with 20 calls).
            self.reached.clear();
            self.reached.shrink_to(4);
        }
        self.calls += 1;
        if let Err(i) = self.reached.binary_search(&key) {
            if self.reached.len() < MAX_DISTINCT {
                super::counts::make_room(&mut self.reached);
                self.reached.insert(i, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: Decay = Decay { half_life_min: 43_200.0 };

    #[test]
    fn moments_track_mean_and_variance() {
        let mut m = Moments::default();
        for x in [10.0, 12.0, 8.0, 10.0] {
            m.add(x, 1.0);
        }
        assert!((m.mean - 10.0).abs() < 1e-4);
        assert!((m.var - 2.0).abs() < 1e-3, "{}", m.var);
    }

    #[test]
    fn bursty_history_widens_the_tail() {
        let steady = Moments { weight: 50.0, mean: 10.0, var: 10.0, windows: 50 };
        let bursty = Moments { weight: 50.0, mean: 10.0, var: 100.0, windows: 50 };
        assert!(steady.tail(30) < 1e-5);
        assert!(bursty.tail(30) > 1e-3);
        let t = steady.threshold(1e-4);
        assert!(steady.tail(t) < 1e-4 && steady.tail(t - 1) >= 1e-4);
        assert!(bursty.threshold(1e-4) > t);
    }

    #[test]
    fn windows_fold_into_history() {
        let mut a = Activity::default();
        a.record(1, 7, 10, DECAY);
        a.record(1, 7, 11, DECAY);
        a.record(1, 8, 12, DECAY);
        assert_eq!(a.preview(1, 9), (4, 3));
        assert_eq!(a.preview(2, 9), (1, 1));
        a.record(2, 9, 20, DECAY);
        assert_eq!(a.calls_history.windows, 1);
        assert_eq!(a.calls_history.mean, 3.0);
        assert_eq!(a.reach_history.mean, 2.0);
        assert_eq!((a.calls, a.reached.len()), (1, 1));
    }

    #[test]
    fn the_window_before_is_known_only_when_adjacent() {
        let mut a = Activity::default();
        for minute in 10..13 {
            a.record(1, 7, minute, DECAY);
        }
        assert_eq!(a.calls_before(1), 0);
        assert_eq!(a.calls_before(2), 3);
        assert_eq!(a.calls_before(3), 0);
        a.record(2, 7, 20, DECAY);
        assert_eq!((a.previous_calls, a.calls_before(2), a.calls_before(3)), (3, 3, 1));
        a.record(4, 7, 40, DECAY);
        assert_eq!((a.previous_calls, a.calls_before(4)), (0, 0));
    }
}
