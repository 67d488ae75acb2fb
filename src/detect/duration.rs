//! Durations in summaries, in words.

/// A setting's length, exactly: the largest unit that divides it ("24 hours"
/// for 86,400 s, "5 minutes" for 300 s, "90 seconds" for 90 s), so the number a
/// summary prints is the one the detector applied.
pub fn exact(seconds: i64) -> String {
    // (unit in seconds, fewest of it to use it, name): days only from two on,
    // as "24 hours" says a window better than "1 day".
    const UNITS: [(i64, i64, &str); 3] = [(86_400, 2, "day"), (3_600, 1, "hour"), (60, 1, "minute")];
    let (size, unit) = UNITS
        .into_iter()
        .find(|&(size, fewest, _)| seconds % size == 0 && seconds >= fewest * size)
        .map_or((1, "second"), |(size, _, unit)| (size, unit));
    let n = seconds / size;
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "3 h 12 min", "4 days": how long after an end a call came, roughly.
pub fn elapsed(ms: i64) -> String {
    let min = ms.max(0) / 60_000;
    match min {
        m if m < 60 => format!("{m} min"),
        m if m < 2 * 1440 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days", m / 1440),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_durations_use_the_largest_unit_that_divides() {
        let table = [
            (0, "0 seconds"),
            (1, "1 second"),
            (90, "90 seconds"),
            (60, "1 minute"),
            (300, "5 minutes"),
            (600, "10 minutes"),
            (5_400, "90 minutes"),
            (3_600, "1 hour"),
            (86_400, "24 hours"),
            (90_000, "25 hours"),
            (172_800, "2 days"),
            (7 * 86_400, "7 days"),
        ];
        for (seconds, words) in table {
            assert_eq!(exact(seconds), words, "{seconds} s");
        }
    }

    #[test]
    fn elapsed_times_round_down_to_minutes_hours_or_days() {
        let table = [(-5, "0 min"), (59 * 60_000, "59 min"), (192 * 60_000, "3 h 12 min"), (4 * 86_400_000, "4 days")];
        for (ms, words) in table {
            assert_eq!(elapsed(ms), words, "{ms} ms");
        }
    }
}
