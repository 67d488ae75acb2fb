//! `dormant_reactivation`: the identity's first call after a silence far
//! beyond its usual cadence (its longest silence so far).

use super::{format_minute, round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec};
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "dormant_reactivation",
    kind: Kind::Learned,
    owasp_nhi: &["NHI1:2025", "NHI7:2025"],
    attack: &["T1078.004"],
    recommended_action:
        "Confirm the identity still has an owner and a purpose; if not, offboard it and revoke its credentials.",
    ocsf: OcsfKind {
        title: "Dormant identity became active again",
        parameter: "silence before activity",
        observation_type: Some("Time Pattern Analysis"),
        observed_pattern: Some("UNUSUAL_TIME"),
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let gap = ctx.now().saturating_sub(b.last_seen);
    let min_gap = (ctx.config.dormant_min_days * 1440.0) as u32;
    let usual = b.longest_gap.max(60);
    // Silences modelled as exponential with the longest one as scale: a
    // deliberately generous tail, so only silences many times longer alert.
    let p = (-(gap as f64) / usual as f64).exp();
    if gap < min_gap {
        return None;
    }
    let strength = ctx.strength(p, ctx.config.novelty_max_probability)?;
    let days = gap as f64 / 1440.0;
    let summary = format!(
        "{} acted after {days:.1} days of silence (last call {}); its longest silence before was {:.1} days.",
        ctx.event.identity,
        format_minute(b.last_seen),
        usual as f64 / 1440.0
    );
    let mut evidence = ctx.evidence(
        json!({ "silence_days": round(days, 2), "call": ctx.names.call_name(ctx.obs.call) }),
        json!({ "longest_silence_days": round(usual as f64 / 1440.0, 2) }),
    );
    evidence.probability = Some(round(p, 10));
    evidence.window_s = Some(gap as i64 * 60);
    Some(Finding {
        detector: SPEC.detector(),
        strength,
        score: score_from_probability(p).max(0.5),
        subject: String::new(),
        summary,
        evidence,
    })
}
