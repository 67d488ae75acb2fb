//! `new_delegator`: the identity acts on behalf of a delegator (or through a
//! delegation hop) it has never acted for, and no grant declares it. When its
//! grants name the delegators it may act for and this one is not among them,
//! that alone is enough; otherwise its own history must make a new delegator
//! unlikely.

use super::{novelty_json, round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec};
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "new_delegator",
    kind: Kind::Learned,
    owasp_nhi: &["NHI5:2025", "NHI3:2025"],
    attack: &["T1078.004", "T1550.001"],
    recommended_action: "Confirm that the new delegator approved this delegation; if not, revoke the delegation and review what was done on its behalf.",
    ocsf: OcsfKind {
        title: "Delegated identity acted for a new delegator",
        parameter: "delegator",
        observation_type: Some("Frequency Analysis"),
        observed_pattern: Some("UNSEEN"),
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let new = ctx.obs.delegators.iter().copied().find(|&d| {
        b.delegators.get(d).is_none() && !ctx.registry.declares_delegator(&ctx.event.identity, ctx.names.name(d))
    })?;
    let delegator = ctx.names.name(new).to_string();
    let declared = ctx.registry.declared_delegators(&ctx.event.identity);
    let novelty = b.delegators.novelty(ctx.now(), ctx.decay());
    let undeclared = !declared.is_empty() && ctx.event.on_behalf_of.as_deref() == Some(delegator.as_str());
    let strength = match undeclared {
        true => super::Strength::Alert,
        false => ctx.strength(novelty.p_unseen, ctx.config.novelty_max_probability)?,
    };
    let reason = if undeclared {
        format!("its grants name only {}", declared.join(", "))
    } else {
        format!("no grant declares it (estimated probability {:.2e})", novelty.p_unseen)
    };
    let summary = format!(
        "{} acted on behalf of {delegator} for the first time; it has acted for {} delegators before and {reason}.",
        ctx.event.identity, novelty.distinct
    );
    let mut evidence = ctx.evidence(
        json!({ "delegator": delegator, "on_behalf_of": ctx.event.on_behalf_of, "chain": ctx.event.chain }),
        json!({
            "delegators": ctx.top(&b.delegators, 5, |d| ctx.names.name(d).to_string()),
            "declared_delegators": declared,
            "novelty": novelty_json(&novelty),
        }),
    );
    evidence.probability = Some(round(novelty.p_unseen, 8));
    let score = if undeclared { 0.85 } else { score_from_probability(novelty.p_unseen) };
    Some(Finding { detector: SPEC.detector(), strength, score, subject: delegator, summary, evidence })
}
