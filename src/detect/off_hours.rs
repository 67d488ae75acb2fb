//! `off_hours`: the identity acts in an hour of the week in which it is almost
//! never active, judged on its own smoothed hour-of-week histogram.

use super::{round, score_from_probability, Context, Detector, Finding};
use serde_json::json;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn hour_name(how: usize) -> String {
    format!("{} {:02}:00", DAYS[how / 24 % 7], how % 24)
}

pub fn check(ctx: &Context) -> Option<Finding> {
    let hours = &ctx.baseline.hours;
    if hours.total() < ctx.config.off_hours_min_events {
        return None;
    }
    let p = hours.probability(ctx.obs.hour_of_week);
    // Relative to an identity active evenly around the clock.
    let ratio = p * 168.0;
    if ratio > ctx.config.off_hours_max_ratio {
        return None;
    }
    let usual: Vec<String> = hours.busiest(5).into_iter().map(|(h, n)| format!("{} ({n})", hour_name(h))).collect();
    let summary = format!(
        "{} acted at {} UTC, an hour in which it is almost never active ({:.3}% of its calls expected, against {:.3}% if it worked around the clock); it is usually busy {}.",
        ctx.event.identity,
        hour_name(ctx.obs.hour_of_week),
        p * 100.0,
        100.0 / 168.0,
        usual.first().cloned().unwrap_or_default()
    );
    let mut evidence = ctx.evidence(
        json!({ "hour_of_week": hour_name(ctx.obs.hour_of_week), "time": ctx.event.time }),
        json!({ "busiest_hours": usual, "calls_counted": hours.total() }),
    );
    evidence.probability = Some(round(p, 8));
    Some(Finding {
        detector: Detector::OffHours,
        score: score_from_probability(p),
        subject: String::new(),
        summary,
        evidence,
    })
}
