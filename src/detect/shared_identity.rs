//! `shared_identity` (NHI9): one credential or identity used by several
//! distinct clients at once. Two signals: the same credential used by another
//! identity within the credential reuse window, or a rarely seen client acting while
//! the identity's usual client is active, when the identity never runs more
//! clients at once than that.

use super::{duration, round, Context, Finding, Kind, OcsfKind, Spec};
use serde_json::json;

/// A client with less than this share of the identity's calls counts as rare.
const RARE_SHARE: f64 = 0.05;

pub const SPEC: Spec = Spec {
    name: "shared_identity",
    kind: Kind::Learned,
    owasp_nhi: &["NHI9:2025"],
    attack: &["T1078.004", "T1550.001"],
    recommended_action:
        "Find every client using this identity or credential, give each its own identity, and rotate the shared secret.",
    ocsf: OcsfKind {
        title: "Identity or credential used by several clients at once",
        parameter: "distinct clients",
        observation_type: Some("Distribution Analysis"),
        observed_pattern: None,
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    sharing_identities(ctx).or_else(|| concurrent_clients(ctx))
}

fn sharing_identities(ctx: &Context) -> Option<Finding> {
    let others: Vec<&str> = ctx.credential_sharers.iter().map(|&s| ctx.names.name(s)).collect();
    if others.is_empty() {
        return None;
    }
    let credential = ctx.event.credential_id.as_deref().unwrap_or_default();
    // The engine found the sharers within the credential reuse window.
    let window_s = ctx.config.credential_reuse_window_s;
    let summary = format!(
        "Credential {credential} was used by {} and, within {}, by {}: one credential shared by several identities.",
        ctx.event.identity,
        duration::exact(window_s),
        others.join(", ")
    );
    let mut evidence = ctx.evidence(
        json!({ "credential_id": credential, "other_identities": others }),
        json!({ "identities_expected_per_credential": 1 }),
    );
    evidence.window_s = Some(window_s);
    Some(Finding {
        detector: SPEC.detector(),
        strength: super::Strength::Alert,
        score: 0.85,
        subject: format!("credential {credential}"),
        summary,
        evidence,
    })
}

fn concurrent_clients(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let client = ctx.obs.client?;
    // Baselines count concurrency in whole minutes: that is the window applied.
    let window = (ctx.config.concurrency_window_s / 60) as u32;
    let window_s = i64::from(window) * 60;
    // Subnets of one IPv4 /16 are one network growing (autoscaled nodes), not
    // another client.
    let region =
        |c: crate::baseline::Client| crate::features::ipv4_region(ctx.names.name(c.network)).map(str::to_string);
    let here = region(client);
    let others: Vec<_> = b
        .other_active_clients(client, ctx.now(), window)
        .into_iter()
        .filter(|&c| here.is_none() || region(c) != here)
        .collect();
    let concurrent = 1 + others.len();
    if others.is_empty() || concurrent <= b.max_concurrent_clients as usize {
        return None;
    }
    let share = b.networks.share(client.network, ctx.now(), ctx.decay());
    if share >= RARE_SHARE {
        return None;
    }
    // Identities whose clients come and go (hosted CI runners, autoscaled
    // workers) overlap clients by design; only a stable identity's second
    // client means sharing.
    if b.networks.novelty(ctx.now(), ctx.decay()).p_unseen > ctx.config.novelty_max_probability {
        return None;
    }
    let name = |c: crate::baseline::Client| format!("{} ({})", ctx.names.name(c.network), ctx.names.name(c.agent));
    let others: Vec<String> = others.into_iter().map(name).collect();
    let summary = format!(
        "{} was used from {} while {} was active within {}; it has never run more than {} client(s) at once, and this network carries {:.1}% of its calls.",
        ctx.event.identity,
        name(client),
        others.join(", "),
        duration::exact(window_s),
        b.max_concurrent_clients,
        share * 100.0
    );
    let mut evidence = ctx.evidence(
        json!({ "client": name(client), "concurrent_clients": concurrent, "other_clients": others }),
        json!({ "max_concurrent_clients": b.max_concurrent_clients, "network_share": round(share, 4) }),
    );
    evidence.probability = Some(round(share, 6));
    evidence.window_s = Some(window_s);
    let score = if share == 0.0 { 0.8 } else { 0.65 };
    Some(Finding {
        detector: SPEC.detector(),
        strength: super::Strength::Alert,
        score,
        subject: "concurrent clients".into(),
        summary,
        evidence,
    })
}
