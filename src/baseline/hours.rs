//! When in the week an identity is active: how many of its active hours fell
//! in each UTC hour of the day and on each day of the week. An hour with many
//! calls counts once, so one busy run does not outweigh weeks of rhythm.

use super::counts::Minute;
use serde::{Deserialize, Serialize};

const HOURS: usize = 24;
const DAYS: usize = 7;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Hours {
    /// Active hours per hour of the day; halved every half-life so old
    /// rhythms fade and `u16` never saturates.
    counts: [u16; HOURS],
    /// Active hours per day of the week, Monday first, halved with `counts`.
    #[serde(default)]
    days: [u16; DAYS],
    /// The clock hour (minutes / 60) last counted.
    last_hour: u32,
    halved_at: Minute,
}

impl Hours {
    /// Counts the clock hour of `now` as active, once.
    pub fn record(&mut self, now: Minute, half_life_min: f64) {
        if self.halved_at == 0 {
            self.halved_at = now;
        }
        while (now.saturating_sub(self.halved_at)) as f64 >= half_life_min {
            self.counts.iter_mut().chain(self.days.iter_mut()).for_each(|c| *c /= 2);
            self.halved_at += half_life_min as Minute;
        }
        let hour = now / 60;
        if hour != self.last_hour {
            self.last_hour = hour;
            let h = (hour % HOURS as u32) as usize;
            self.counts[h] = self.counts[h].saturating_add(1);
            let d = weekday(now);
            self.days[d] = self.days[d].saturating_add(1);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }

    /// Probability that an active hour falls at each hour of the day. Counts are
    /// smoothed over two hours either side (a job at 14:00 may run at 13:58,
    /// a working day may run long), and mixed with the Good-Turing mass of "an
    /// hour not used before", (n1 + 1) / (N + 1) with n1 the hours used once,
    /// spread evenly: an identity that often turns up at new hours is not
    /// surprising when it does again.
    fn probabilities(&self) -> [f64; HOURS] {
        let total = self.total() as f64;
        if total == 0.0 {
            return [1.0 / HOURS as f64; HOURS];
        }
        let near = |h: usize| {
            let c = |h: usize| self.counts[h % HOURS] as f64;
            c(h) + 0.5 * (c(h + HOURS - 1) + c(h + 1)) + 0.25 * (c(h + HOURS - 2) + c(h + 2))
        };
        let used_once = self.counts.iter().filter(|&&c| c == 1).count() as f64;
        let p_new = ((used_once + 1.0) / (total + 1.0)).min(1.0);
        std::array::from_fn(|h| (1.0 - p_new) * near(h) / (2.5 * total) + p_new / HOURS as f64)
    }

    /// How likely this hour of the day is for the identity (`probabilities`),
    /// and how unusual, as a tail probability: the share of its active hours
    /// that fall in hours at most as likely as this one. An identity active
    /// evenly around the clock gets a tail of about 1 for every hour; a
    /// pipeline that runs only in the afternoon gets a tiny one at 03:00.
    /// Both from one computation of every hour's: the detector wants both on
    /// every call.
    pub fn hour_odds(&self, hour: usize) -> (f64, f64) {
        let all = self.probabilities();
        let here = all[hour % HOURS];
        (here, all.iter().filter(|&&p| p <= here * (1.0 + 1e-9)).sum::<f64>().min(1.0))
    }

    /// The same tail over days of the week: the share of active hours on
    /// days at most as likely as this one. Each day's count has add-one
    /// smoothing (as if one hour of each day had been seen), so a week of
    /// history makes no day impossible.
    pub fn day_tail(&self, minute: Minute) -> f64 {
        let total = self.days.iter().map(|&c| c as f64 + 1.0).sum::<f64>();
        let p = |d: usize| (self.days[d] as f64 + 1.0) / total;
        let here = p(weekday(minute));
        (0..DAYS).map(p).filter(|&q| q <= here * (1.0 + 1e-9)).sum::<f64>().min(1.0)
    }

    /// Active hours counted in each hour of the day (UTC).
    pub fn hours(&self) -> [u16; HOURS] {
        self.counts
    }

    /// Active hours counted on each day of the week, Monday first.
    pub fn days(&self) -> [u16; DAYS] {
        self.days
    }

    /// The hours of the day it is active in, as "09-16" style ranges.
    pub fn active_ranges(&self) -> Vec<String> {
        let mut ranges = Vec::new();
        let mut h = 0;
        while h < HOURS {
            if self.counts[h] == 0 {
                h += 1;
                continue;
            }
            let start = h;
            while h < HOURS && self.counts[h] > 0 {
                h += 1;
            }
            ranges.push(format!("{start:02}:00-{h:02}:00"));
        }
        ranges
    }
}

/// Day of the week of an event-time minute, Monday = 0 (1970-01-01 was a Thursday).
pub fn weekday(minute: Minute) -> usize {
    ((minute / 1440 + 3) % 7) as usize
}

pub const DAY_NAMES: [&str; DAYS] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_hours_are_likely_and_quiet_hours_are_not() {
        let mut h = Hours::default();
        // Four weeks of work from 14:00 to 16:00, one call a minute.
        for day in 1..29u32 {
            for minute in 0..120 {
                h.record(day * 1440 + 14 * 60 + minute, 1e9);
            }
        }
        assert_eq!(h.total(), 56);
        assert!(h.hour_odds(14).0 * 24.0 > 5.0);
        assert!(h.hour_odds(16).0 > h.hour_odds(17).0);
        assert!(h.hour_odds(3).0 * 24.0 < 0.05, "{}", h.hour_odds(3).0);
        assert_eq!(h.active_ranges(), vec!["14:00-16:00"]);
    }

    #[test]
    fn an_identity_that_roams_the_clock_is_never_off_hours() {
        let mut h = Hours::default();
        for i in 0..60u32 {
            h.record(i * 1440 / 3 + (i * 7 % 24) * 60, 1e9);
        }
        assert!((0..24).all(|hour| h.hour_odds(hour).0 * 24.0 > 0.05));
    }

    #[test]
    fn a_weekday_schedule_makes_the_weekend_and_the_night_unusual() {
        let mut h = Hours::default();
        // 2026-03-02 is a Monday: four weeks of weekday afternoons.
        let monday = (1_772_409_600_000i64 / 60_000) as u32;
        for day in 0..28u32 {
            if day % 7 < 5 {
                for minute in 0..90 {
                    h.record(monday + day * 1440 + 14 * 60 + minute, 1e9);
                }
            }
        }
        assert_eq!(weekday(monday), 0);
        let saturday_night = monday + 5 * 1440 + 23 * 60;
        assert!(h.day_tail(saturday_night) < 0.05, "{}", h.day_tail(saturday_night));
        assert!(h.day_tail(monday + 2 * 1440) > 0.5);
        assert!(h.hour_odds(23).1 < 0.02, "{}", h.hour_odds(23).1);
        assert!(h.hour_odds(14).1 > 0.5);
    }

    #[test]
    fn counts_halve_every_half_life() {
        let mut h = Hours::default();
        for i in 1..9 {
            h.record(i * 60 * 24, 1e5);
        }
        h.record(200_000, 1e5);
        assert!(h.total() < 8);
    }
}
