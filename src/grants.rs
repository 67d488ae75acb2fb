//! Declared delegations and lifecycle facts: what each identity may do, and
//! what has ended.

use crate::model::TimeWindow;

/// Checks a window's times are `HH:MM`; returns the reason when not.
pub fn check_window(w: &TimeWindow) -> Result<(), String> {
    for t in [&w.start, &w.end] {
        parse_hhmm(t).ok_or_else(|| format!("`{t}` is not a time of day HH:MM"))?;
    }
    Ok(())
}

/// "HH:MM" to minutes since midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}
