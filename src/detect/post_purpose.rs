//! `post_purpose` (NHI1): the identity acts after its purpose ended: after it
//! was offboarded, with a revoked credential, or after every grant it acts
//! under ended, was revoked or expired. Fires from the first event.

use super::{declared_score, Context, Finding, Kind, OcsfKind, Spec};
use crate::time::format_rfc3339;
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "post_purpose",
    kind: Kind::Declared,
    owasp_nhi: &["NHI1:2025"],
    attack: &["T1078.004", "T1550.001"],
    recommended_action: "The delegation had ended: revoke every credential the identity still holds, remove its access, and review what it did after the end.",
    ocsf: OcsfKind {
        title: "Identity acted after its delegation ended",
        parameter: "delegation state",
        observation_type: None,
        observed_pattern: None,
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let (e, t) = (ctx.event, ctx.event.time);
    let ago = |at: i64| super::duration::elapsed(t - at);
    if let Some(at) = ctx.registry.offboarded_at(&e.identity, t) {
        let summary = format!(
            "{} called {} {} {} after it was offboarded at {}.",
            e.identity,
            e.target,
            e.action,
            ago(at),
            format_rfc3339(at)
        );
        return Some(finding(ctx, 0.95, "offboarded", summary, json!({ "offboarded_at": format_rfc3339(at) })));
    }
    if let Some((credential, at)) =
        e.credential_id.as_deref().and_then(|c| ctx.registry.revoked_at(c, t).map(|at| (c, at)))
    {
        let summary = format!(
            "{} used credential {credential} {} after it was revoked at {}.",
            e.identity,
            ago(at),
            format_rfc3339(at)
        );
        let baseline = json!({ "credential_id": credential, "revoked_at": format_rfc3339(at) });
        return Some(finding(ctx, 0.95, "credential revoked", summary, baseline));
    }
    let grants = &ctx.grants;
    if grants.all.is_empty() || !grants.live.is_empty() {
        return None;
    }
    let (state, (at, reason)) =
        grants.all.iter().filter_map(|s| s.ended_by(t).map(|end| (s, end))).max_by_key(|(_, end)| end.0)?;
    let summary = format!(
        "{} called {} {} {} after its grant {} ended ({reason}) at {}; no grant covers it now.",
        e.identity,
        e.target,
        e.action,
        ago(at),
        state.grant.grant_id,
        format_rfc3339(at)
    );
    let baseline =
        json!({ "grant_id": state.grant.grant_id, "ended_at": format_rfc3339(at), "reason": reason.to_string() });
    Some(finding(ctx, 0.9, "grant ended", summary, baseline))
}

fn finding(ctx: &Context, score: f64, subject: &str, summary: String, baseline: serde_json::Value) -> Finding {
    let e = ctx.event;
    let evidence =
        ctx.evidence(json!({ "call": format!("{} {}", e.target, e.action), "outcome": e.outcome }), baseline);
    Finding {
        detector: SPEC.detector(),
        strength: super::Strength::Alert,
        score: declared_score(ctx, score),
        subject: subject.into(),
        summary,
        evidence,
    }
}
