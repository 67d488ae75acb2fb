//! `new_source`: the identity calls from a network it has never used, when
//! its history of networks is narrow enough that a new one is unlikely. A new
//! client software family on top makes it less likely still.

use super::{novelty_json, round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec};
use crate::features::ipv4_region;
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "new_source",
    kind: Kind::Learned,
    owasp_nhi: &["NHI2:2025", "NHI10:2025"],
    attack: &["T1078.004", "T1550.001"],
    recommended_action: "Verify the new network or client with the workload owner; if unknown, revoke the credential, rotate the secret and check where it was stored.",
    ocsf: OcsfKind {
        title: "Delegated identity acted from a new source",
        parameter: "source",
        observation_type: Some("Frequency Analysis"),
        observed_pattern: Some("UNSEEN"),
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let client = ctx.obs.client?;
    if b.networks.is_empty() || b.networks.get(client.network).is_some() {
        return None;
    }
    // A new subnet next to ones it uses (the same IPv4 /16) is the same
    // network growing, not a new source.
    let network = ctx.names.name(client.network);
    if let Some(region) = ipv4_region(network) {
        if b.networks.iter().any(|(n, _)| ipv4_region(ctx.names.name(n)) == Some(region)) {
            return None;
        }
    }
    let (now, decay) = (ctx.now(), ctx.decay());
    let networks = b.networks.novelty(now, decay);
    let new_agent = b.agents.get(client.agent).is_none();
    // Networks and client software vary together only partly; treating them as
    // independent is a simplification that errs towards fewer alerts when the
    // agent is known (its factor is 1).
    let agent_factor = if new_agent { b.agents.novelty(now, decay).p_unseen } else { 1.0 };
    let p = networks.p_unseen * agent_factor;
    if p > ctx.config.novelty_max_probability {
        return None;
    }
    let network = network.to_string();
    let agent = ctx.names.name(client.agent);
    let summary = format!(
        "{} called from network {network}{}, never used by it before; its {} known networks make a new one an estimated {p:.2e} likely.",
        ctx.event.identity,
        if new_agent { format!(" with a new client ({agent})") } else { String::new() },
        networks.distinct
    );
    let mut evidence = ctx.evidence(
        json!({ "network": network, "source_ip": ctx.event.source_ip, "user_agent_family": agent, "new_user_agent_family": new_agent }),
        json!({
            "networks": ctx.top(&b.networks, 5, |n| ctx.names.name(n).to_string()),
            "user_agent_families": ctx.top(&b.agents, 5, |a| ctx.names.name(a).to_string()),
            "novelty": novelty_json(&networks),
        }),
    );
    evidence.probability = Some(round(p, 8));
    Some(Finding { detector: SPEC.detector(), score: score_from_probability(p), subject: network, summary, evidence })
}
