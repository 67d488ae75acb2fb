//! `scope_violation` (NHI5): the identity calls a target, action, resource or
//! environment that none of its live grants allows.

use super::{declared_score, Context, Finding, Kind, OcsfKind, Spec};
use crate::grants::{glob_match, glob_match_ignore_case};
use crate::model::{AccessEvent, Scope};
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
    let grants = ctx.grants;
    if grants.live.is_empty() {
        return None;
    }
    let failures: Vec<(&str, Vec<&'static str>)> =
        grants.live.iter().map(|g| (g.grant.grant_id.as_str(), outside_axes(&g.grant.scope, e))).collect();
    if failures.iter().any(|(_, axes)| axes.is_empty()) {
        return None;
    }
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
pub fn explicitly_allows(scope: &Scope, e: &AccessEvent) -> bool {
    let restricted = !(scope.targets.is_empty()
        && scope.actions.is_empty()
        && scope.resources.is_empty()
        && scope.environments.is_empty());
    restricted && outside_axes(scope, e).is_empty()
}

/// The axes on which `scope` does not allow the call. An empty list in the
/// scope allows anything; a call without a resource or environment cannot be
/// judged on that axis and passes it.
fn outside_axes(scope: &Scope, e: &AccessEvent) -> Vec<&'static str> {
    let allows = |patterns: &[String], value: Option<&str>, fold_case: bool| {
        patterns.is_empty()
            || value.is_none_or(|v| {
                patterns.iter().any(|p| if fold_case { glob_match_ignore_case(p, v) } else { glob_match(p, v) })
            })
    };
    let mut axes = Vec::new();
    if !allows(&scope.targets, Some(&e.target), true) {
        axes.push("target");
    }
    if !allows(&scope.actions, Some(&e.action), true) {
        axes.push("action");
    }
    if !allows(&scope.resources, e.resource.as_deref(), false) {
        axes.push("resource");
    }
    if !allows(&scope.environments, e.environment.as_deref(), false) {
        axes.push("environment");
    }
    axes
}
