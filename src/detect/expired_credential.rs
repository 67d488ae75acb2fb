//! `expired_credential` (NHI7): a call made with a credential past its expiry,
//! taken from the call itself or from the issuing event (e.g. STS AssumeRole).

use super::{declared_score, Context, Finding, Kind, OcsfKind, Spec};
use crate::time::format_rfc3339;
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "expired_credential",
    kind: Kind::Declared,
    owasp_nhi: &["NHI7:2025"],
    attack: &["T1550.001"],
    recommended_action:
        "A credential was used after it expired: find which system still accepts it, and block it there.",
    ocsf: OcsfKind {
        title: "Expired credential was used",
        parameter: "credential expiry",
        observation_type: None,
        observed_pattern: None,
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let e = ctx.event;
    let from_registry = || e.credential_id.as_deref().and_then(|c| ctx.registry.expiry(c));
    let expires = e.credential_expires_at.or_else(from_registry)?;
    if e.time <= expires + ctx.config.clock_skew_s * 1000 {
        return None;
    }
    let credential = e.credential_id.as_deref().unwrap_or("(unnamed)");
    let summary = format!(
        "{} used credential {credential} {} after it expired at {}.",
        e.identity,
        super::duration::elapsed(e.time - expires),
        format_rfc3339(expires)
    );
    let evidence = ctx.evidence(
        json!({ "credential_id": credential, "call": format!("{} {}", e.target, e.action), "outcome": e.outcome }),
        json!({ "expires_at": format_rfc3339(expires) }),
    );
    Some(Finding {
        detector: SPEC.detector(),
        strength: super::Strength::Alert,
        score: declared_score(ctx, 0.85),
        subject: credential.to_string(),
        summary,
        evidence,
    })
}
