//! The organisation's calendar: daily and weekly rhythm, holidays, and the legit
//! load surges (an outage everyone works on, a traffic peak) that make busy days.

use super::rng::Rng;
use crate::model::Millis;
use crate::time::{DAY, HOUR, MINUTE};
use chrono::{DateTime, Datelike, Utc};

/// Public holidays observed every year (month, day).
const PUBLIC_HOLIDAYS: [(u32, u32); 5] = [(1, 1), (5, 1), (7, 4), (12, 25), (12, 26)];

/// A stretch of legit extra load: more agent tasks, more requests.
#[derive(Debug, Clone)]
pub struct Surge {
    pub from: Millis,
    pub until: Millis,
    /// Load multiplier while it lasts.
    pub factor: f64,
}

#[derive(Debug, Clone)]
pub struct Calendar {
    pub start: Millis,
    pub days: u32,
    holidays: Vec<u32>,
    pub surges: Vec<Surge>,
}

impl Calendar {
    pub fn new(start: Millis, days: u32, rng: &mut Rng) -> Calendar {
        let mut holidays: Vec<u32> = (0..days)
            .filter(|&d| {
                let date = date_of(start + d as Millis * DAY);
                PUBLIC_HOLIDAYS.contains(&(date.month(), date.day()))
            })
            .collect();
        // A company day off every four weeks, always a weekday.
        for block in (0..days).step_by(28) {
            let candidates: Vec<u32> =
                (block..(block + 28).min(days)).filter(|&d| weekday(start, d) < 5 && d > 0).collect();
            if !candidates.is_empty() {
                holidays.push(*rng.pick(&candidates));
            }
        }
        holidays.sort_unstable();
        holidays.dedup();
        let surges = (0..(days / 5).max(1))
            .map(|_| {
                let from = start + rng.range(0, days as i64 * DAY - 6 * HOUR);
                Surge { from, until: from + rng.range(HOUR, 5 * HOUR), factor: 2.0 + 3.0 * rng.unit() }
            })
            .collect();
        Calendar { start, days, holidays, surges }
    }

    pub fn end(&self) -> Millis {
        self.start + self.days as Millis * DAY
    }

    pub fn day_start(&self, day: u32) -> Millis {
        self.start + day as Millis * DAY
    }

    /// Day index of a time since the start (negative before it).
    pub fn day_of(&self, t: Millis) -> i64 {
        (t - self.start).div_euclid(DAY)
    }

    pub fn is_holiday(&self, day: u32) -> bool {
        self.holidays.binary_search(&day).is_ok()
    }

    /// 0 = Monday.
    pub fn weekday(&self, day: u32) -> u32 {
        weekday(self.start, day)
    }

    /// A working day: a weekday that is not a holiday.
    pub fn is_workday(&self, day: u32) -> bool {
        self.weekday(day) < 5 && !self.is_holiday(day)
    }

    /// The last two workdays of a calendar month, when finance closes its books.
    pub fn is_month_end(&self, day: u32) -> bool {
        let next_workdays = (day + 1..day + 6).filter(|&d| self.is_workday(d)).take(2);
        let month = date_of(self.day_start(day)).month();
        self.is_workday(day) && next_workdays.map(|d| date_of(self.day_start(d)).month()).any(|m| m != month)
    }

    /// Relative activity of people-driven work at a time: full in business hours
    /// on workdays, a trickle at night, weekends and holidays.
    pub fn business_weight(&self, t: Millis) -> f64 {
        let day = self.day_of(t).max(0) as u32;
        let hour = (t - self.day_start(day)) / HOUR;
        let by_hour = match hour {
            8..=17 => 1.0,
            6..=7 | 18..=20 => 0.3,
            _ => 0.05,
        };
        let by_day = if self.is_holiday(day) {
            0.1
        } else if self.weekday(day) >= 5 {
            0.15
        } else {
            1.0
        };
        by_hour * by_day
    }

    /// Draws the times of `expected` people-driven starts in one day, shaped by the
    /// business rhythm (rejection sampling against the weight of each minute).
    pub fn business_times(&self, day: u32, expected_on_workday: f64, rng: &mut Rng) -> Vec<Millis> {
        let day_start = self.day_start(day);
        let day_mass: f64 = (0..24).map(|h| self.business_weight(day_start + h * HOUR)).sum::<f64>() / 11.0;
        let count = rng.poisson(expected_on_workday * day_mass);
        let mut times = Vec::with_capacity(count as usize);
        while times.len() < count as usize {
            let t = day_start + rng.range(0, DAY / MINUTE) * MINUTE + rng.range(0, 60) * 1000;
            if rng.unit() < self.business_weight(t) {
                times.push(t);
            }
        }
        times.sort_unstable();
        times
    }
}

fn date_of(t: Millis) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default()
}

fn weekday(start: Millis, day: u32) -> u32 {
    date_of(start + day as Millis * DAY).weekday().num_days_from_monday()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    const SEED: u64 = 5;

    #[test]
    fn knows_weekends_holidays_and_month_end() {
        let start = parse_rfc3339("2026-04-27T00:00:00Z").unwrap(); // a Monday
        let cal = Calendar::new(start, 14, &mut Rng::stream(SEED, 0));
        assert!((1..=3).all(|d| !cal.is_holiday(d)), "this seed puts the company day off elsewhere");
        assert_eq!(cal.weekday(0), 0);
        assert!(cal.is_holiday(4), "1 May is a public holiday");
        assert!(!cal.is_workday(5), "Saturday");
        // 29 and 30 April are the last two workdays of April.
        assert!(cal.is_month_end(2) && cal.is_month_end(3));
        assert!(!cal.is_month_end(1));
        let noon = cal.day_start(1) + 12 * HOUR;
        assert!(cal.business_weight(noon) > 10.0 * cal.business_weight(cal.day_start(1) + 3 * HOUR));
    }
}
