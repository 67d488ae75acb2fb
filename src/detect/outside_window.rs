//! `outside_window`: the identity acts outside every time window (and before
//! the `not_before`) of the grants it holds, e.g. a deploy token used outside
//! its release window.

use super::{declared_score, Context, Finding, Kind, OcsfKind, Spec};
use crate::time::format_rfc3339;
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "outside_window",
    kind: Kind::Declared,
    owasp_nhi: &["NHI5:2025", "NHI7:2025"],
    attack: &["T1078.004"],
    recommended_action: "Confirm whether an approved change justified use outside the window; if not, suspend the credential and review the actions taken.",
    ocsf: OcsfKind {
        title: "Grant used outside its time window",
        parameter: "grant time window",
        observation_type: None,
        observed_pattern: None,
    },
    yields_to_post_purpose: true,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let e = ctx.event;
    let grants = &ctx.grants;
    if grants.live.is_empty() || grants.live.iter().any(|g| g.admits_time(e.time)) {
        return None;
    }
    let declared: Vec<serde_json::Value> = grants
        .live
        .iter()
        .map(|g| {
            json!({
                "grant_id": g.grant.grant_id,
                "not_before": g.grant.not_before.map(format_rfc3339),
                "windows": g.grant.windows,
            })
        })
        .collect();
    let ids: Vec<&str> = grants.live.iter().map(|g| g.grant.grant_id.as_str()).collect();
    let summary = format!(
        "{} called {} {} at {}, outside the time windows of its grant(s) {}.",
        e.identity,
        e.target,
        e.action,
        format_rfc3339(e.time),
        ids.join(", ")
    );
    let evidence = ctx.evidence(
        json!({ "time": format_rfc3339(e.time), "call": format!("{} {}", e.target, e.action) }),
        json!({ "grants": declared }),
    );
    Some(Finding {
        detector: SPEC.detector(),
        strength: super::Strength::Alert,
        score: declared_score(ctx, 0.75),
        subject: ids.join(","),
        summary,
        evidence,
    })
}
