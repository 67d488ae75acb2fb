//! `unusual_outcome`: a call was denied or failed, and the identity's history
//! says it rarely meets that outcome. A stolen credential probes: it calls
//! what the role may not do, replays an expired token, guesses resources.
//!
//! The estimate is the share of the identity's active hours in which it met
//! this outcome, with Jeffreys' half-count: `(hours with it + 0.5) / (active
//! hours + 1)`. A role that has never been denied in 200 hours gets 2.5e-3; a
//! workload that is denied every day gets a large value. Only ever a signal:
//! a denial shows the guardrail held, so it adds to other evidence (a new
//! operation, a new network) rather than alerting alone.

use super::{round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec};
use crate::model::Outcome;
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "unusual_outcome",
    kind: Kind::Learned,
    owasp_nhi: &["NHI5:2025", "NHI2:2025"],
    attack: &["T1078.004", "T1580"],
    recommended_action: "Find out what the identity tried and was refused; if its owner did not change its work, treat the credential as probed by someone else and rotate it.",
    ocsf: OcsfKind {
        title: "Delegated identity was refused where it never is",
        parameter: "outcome",
        observation_type: Some("Frequency Analysis"),
        observed_pattern: Some("UNUSUAL_OUTCOME"),
    },
    yields_to_post_purpose: true,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let outcome = ctx.obs.outcome;
    if outcome == Outcome::Success {
        return None;
    }
    let outcomes = &ctx.baseline.outcomes;
    let hours: u64 = outcomes.iter().map(|(_, e)| e.hits as u64).sum();
    let met = outcomes.get(outcome).map_or(0, |e| e.hits as u64);
    let p = (met as f64 + 0.5) / (hours as f64 + 1.0);
    let strength = ctx.strength(p, 0.0)?;
    let name = match outcome {
        Outcome::Denied => "denied",
        _ => "failed",
    };
    let summary = format!(
        "{}'s call {} was {name}; in {hours} active hours it met that outcome in {met}, so this had an estimated probability of {p:.2e}.",
        ctx.event.identity,
        ctx.names.call_name(ctx.obs.call),
    );
    let mut evidence = ctx.evidence(
        json!({ "outcome": outcome, "call": ctx.names.call_name(ctx.obs.call) }),
        json!({ "active_hours": hours, "hours_with_outcome": met }),
    );
    evidence.probability = Some(round(p, 8));
    Some(Finding {
        detector: SPEC.detector(),
        strength,
        score: score_from_probability(p),
        subject: name.to_string(),
        summary,
        evidence,
    })
}
