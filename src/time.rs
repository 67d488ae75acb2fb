//! Event-time parsing and formatting. Detection never reads the wall clock.

use crate::model::Millis;
use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// The event times a record may carry: from 1970-01-01 to the end of 9999.
/// Anything outside is a broken or hostile value (`1e300` saturates to
/// `i64::MAX`): baselines count minutes since 1970, and every alert time
/// must format as an RFC 3339 date with a four-digit year.
pub const EARLIEST: Millis = 0;
pub const LATEST: Millis = 253_402_300_799_999;

pub fn in_range(t: Millis) -> bool {
    (EARLIEST..=LATEST).contains(&t)
}

/// Parses an RFC 3339 timestamp ("2026-03-01T12:00:00Z", offsets and fractions allowed).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// Parses a JSON time value: an RFC 3339 string, or epoch milliseconds as a number
/// or a string of digits.
pub fn parse_json_time(v: &serde_json::Value) -> Option<Millis> {
    match v {
        serde_json::Value::String(s) => parse_rfc3339(s).or_else(|| s.parse::<i64>().ok()),
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

/// Formats event time as RFC 3339 UTC with milliseconds, the form every alert uses.
pub fn format_rfc3339(t: Millis) -> String {
    match DateTime::<Utc>::from_timestamp_millis(t) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => t.to_string(),
    }
}

/// Day of week (0 = Monday) and minute of the day, in UTC.
pub fn weekday_and_minute(t: Millis) -> (usize, u32) {
    let dt = DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default();
    (dt.weekday().num_days_from_monday() as usize, dt.hour() * 60 + dt.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        let t = parse_rfc3339("2026-03-02T14:05:06.789+01:00").unwrap();
        assert_eq!(format_rfc3339(t), "2026-03-02T13:05:06.789Z");
        assert_eq!(parse_json_time(&serde_json::json!(t)), Some(t));
        assert_eq!(parse_json_time(&serde_json::json!(t.to_string())), Some(t));
        assert_eq!(parse_json_time(&serde_json::json!("yesterday")), None);
    }

    #[test]
    fn the_range_is_1970_to_the_end_of_9999() {
        assert_eq!(format_rfc3339(EARLIEST), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(LATEST), "9999-12-31T23:59:59.999Z");
        assert!(in_range(EARLIEST) && in_range(LATEST));
        assert!(!in_range(EARLIEST - 1) && !in_range(LATEST + 1) && !in_range(i64::MAX));
    }

    #[test]
    fn weekday_and_minute_start_monday() {
        // 2026-03-02 is a Monday.
        assert_eq!(weekday_and_minute(parse_rfc3339("2026-03-04T14:05:00Z").unwrap()), (2, 845));
    }
}
