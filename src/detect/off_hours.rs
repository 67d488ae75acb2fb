//! `off_hours`: the identity acts at a time of the week (UTC) in which it is
//! almost never active, judged on how its own active hours spread over the
//! day and over the week.
//!
//! Alone it alerts on the hour of the day: when that hour is at most
//! `off_hours_max_ratio` as likely as it would be for an identity active
//! evenly around the clock. As a signal for an incident it weighs the hour
//! and the day together: the hour's tail probability (the share of active
//! hours in hours at most as likely, `Hours::hour_odds`) times the day's
//! (`Hours::day_tail`). A weekday pipeline at 23:00 on a Saturday gets both
//! small; an identity that works every day at every hour gets both near 1.

use super::{round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec, Strength};
use crate::baseline::hours::{weekday, DAY_NAMES};
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "off_hours",
    kind: Kind::Learned,
    owasp_nhi: &["NHI2:2025", "NHI10:2025"],
    attack: &["T1078.004"],
    recommended_action: "Confirm a scheduled or emergency job ran at this hour; if none did, treat the credential as exposed and rotate it.",
    ocsf: OcsfKind {
        title: "Delegated identity acted at an unusual hour",
        parameter: "hour of week",
        observation_type: Some("Time Pattern Analysis"),
        observed_pattern: Some("OFF_HOURS"),
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let hours = &ctx.baseline.hours;
    // A signal needs half the history an alert does: it only ever adds to
    // other evidence.
    if hours.total() < ctx.config.off_hours_min_active_hours / 2 {
        return None;
    }
    let hour = (ctx.now() / 60 % 24) as usize;
    let day = DAY_NAMES[weekday(ctx.now())];
    let (p_hour, hour_tail) = hours.hour_odds(hour);
    let tail = hour_tail * hours.day_tail(ctx.now());
    // Relative to an identity active evenly around the clock.
    let alone =
        hours.total() >= ctx.config.off_hours_min_active_hours && p_hour * 24.0 <= ctx.config.off_hours_max_ratio;
    let (strength, p) = match alone {
        true => (Strength::Alert, p_hour),
        false => (ctx.strength(tail, 0.0)?, tail),
    };
    let unworded =
        Finding::unworded(SPEC.detector(), strength, score_from_probability(p), String::new(), Some(round(p, 8)));
    if !ctx.words {
        return Some(unworded);
    }
    let usual = hours.active_ranges();
    let days: Vec<String> =
        hours.days().iter().zip(DAY_NAMES).filter(|(&n, _)| n > 0).map(|(_, d)| d.to_string()).collect();
    let summary = format!(
        "{} acted at {hour:02}:00 UTC on a {day}, a time it is almost never active: over {} active hours it has worked {} UTC, on {} (estimated probability {p:.2e}).",
        ctx.event.identity,
        hours.total(),
        usual.join(", "),
        days.join(", "),
    );
    let mut evidence = ctx.evidence(
        json!({ "hour_utc": hour, "day": day, "call": ctx.names.call_name(ctx.obs.call) }),
        json!({ "active_hours_utc": usual, "active_days": days, "active_hours_counted": hours.total() }),
    );
    evidence.probability = unworded.evidence.probability;
    Some(Finding { summary, evidence, ..unworded })
}
