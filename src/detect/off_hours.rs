//! `off_hours`: the identity acts at an hour of the day (UTC) in which it is
//! almost never active, judged on how its own active hours spread over the day.

use super::{round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec};
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
    if hours.total() < ctx.config.off_hours_min_active_hours {
        return None;
    }
    let hour = (ctx.now() / 60 % 24) as usize;
    let p = hours.probability(hour);
    // Relative to an identity active evenly around the clock.
    let ratio = p * 24.0;
    if ratio > ctx.config.off_hours_max_ratio {
        return None;
    }
    let usual = hours.active_ranges();
    let summary = format!(
        "{} acted at {hour:02}:00 UTC, an hour in which it is almost never active: over {} active hours it has worked {} UTC (estimated probability of this hour {p:.2e}).",
        ctx.event.identity,
        hours.total(),
        usual.join(", ")
    );
    let mut evidence = ctx.evidence(
        json!({ "hour_utc": hour, "call": ctx.names.call_name(ctx.obs.call) }),
        json!({ "active_hours_utc": usual, "active_hours_counted": hours.total() }),
    );
    evidence.probability = Some(round(p, 8));
    Some(Finding {
        detector: SPEC.detector(),
        score: score_from_probability(p),
        subject: String::new(),
        summary,
        evidence,
    })
}
