//! `scope_violation` (NHI5): the identity calls a target, action, resource or
//! environment that none of its live grants allows.

use super::{declared_score, Context, Finding, Kind, OcsfKind, Spec};
use crate::grants::GrantState;
use crate::model::AccessEvent;
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "scope_violation",
    kind: Kind::Declared,
    owasp_nhi: &["NHI5:2025"],
    attack: &["T1078.004"],
    recommended_action:
        "Deny the out-of-scope action in the policy, and ask the owner whether the grant or the workload is wrong.",
    ocsf: OcsfKind {
        title: "Call outside the grant's declared scope",
        parameter: "grant scope",
        observation_type: None,
        observed_pattern: None,
    },
    yields_to_post_purpose: true,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let e = ctx.event;
    let grants = &ctx.grants;
    // Most calls are in scope: stop at the first grant that allows every axis,
    // before naming the axes each grant fails on.
    if grants.live.is_empty() || grants.live.iter().any(|g| allows(g, e)) {
        return None;
    }
    let failures: Vec<(&str, Vec<&'static str>)> =
        grants.live.iter().map(|g| (g.grant.grant_id.as_str(), outside(g, e).collect())).collect();
    // The grant that fails on the fewest axes is the one the call was closest to.
    let (closest, axes) = failures.iter().min_by_key(|(_, axes)| axes.len())?;
    let scope = &grants.live.iter().find(|g| g.grant.grant_id == *closest)?.grant.scope;
    let summary = format!(
        "{} called {} {}{}{} outside the scope of its grant {closest} (not allowed: {}).",
        e.identity,
        e.target,
        e.action,
        e.resource.as_deref().map(|r| format!(" on {r}")).unwrap_or_default(),
        e.environment.as_deref().map(|env| format!(" in {env}")).unwrap_or_default(),
        axes.join(", ")
    );
    let evidence = ctx.evidence(
        json!({ "target": e.target, "action": e.action, "resource": e.resource, "environment": e.environment, "outcome": e.outcome }),
        json!({ "grant_id": closest, "scope": scope, "outside": axes }),
    );
    Some(Finding {
        detector: SPEC.detector(),
        strength: super::Strength::Alert,
        score: declared_score(ctx, 0.8),
        subject: format!("{} {}", e.target, e.action),
        summary,
        evidence,
    })
}

/// True when a grant's scope names what it allows (some axis is restricted)
/// and allows this call: the call was declared, whatever history says.
pub fn explicitly_allows(g: &GrantState, e: &AccessEvent) -> bool {
    let p = g.patterns();
    let restricted =
        !(p.targets.is_empty() && p.actions.is_empty() && p.resources.is_empty() && p.environments.is_empty());
    restricted && allows(g, e)
}

fn allows(g: &GrantState, e: &AccessEvent) -> bool {
    outside(g, e).next().is_none()
}

/// The axes on which the grant's scope does not allow the call, lazily: an
/// empty list in the scope allows anything; a call without a resource or
/// environment cannot be judged on that axis and passes it. Targets and
/// actions are names of services and operations, compared ignoring case.
fn outside<'a>(g: &'a GrantState, e: &'a AccessEvent) -> impl Iterator<Item = &'static str> + 'a {
    let p = g.patterns();
    let axes = [
        ("target", &p.targets, Some(e.target.as_str()), true),
        ("action", &p.actions, Some(e.action.as_str()), true),
        ("resource", &p.resources, e.resource.as_deref(), false),
        ("environment", &p.environments, e.environment.as_deref(), false),
    ];
    axes.into_iter()
        .filter(|(_, patterns, value, fold_case)| {
            !(patterns.is_empty() || value.is_none_or(|v| patterns.matches(v, *fold_case)))
        })
        .map(|(axis, ..)| axis)
}
