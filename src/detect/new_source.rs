//! `new_source`: the identity calls from somewhere it has never called from,
//! when its own history makes that unlikely. Where is judged at several
//! levels, each a Good-Turing estimate over the identity's own values
//! (`Counts::novelty`), and the levels that are new multiply:
//!
//! - the network: a new IPv4 /16 (IPv6 /32) is judged against the /16s it
//!   used; a new /24 inside a known /16 is the same network growing (runner
//!   pools and autoscaled nodes churn through /24s), judged against its /24s
//!   and only ever a signal;
//! - the address scope: a public address for an identity that always called
//!   from private ranges (or the reverse);
//! - the client: a new software family, or a new minor version of a known one.
//!
//! Treating the levels as independent is a simplification; they are
//! correlated (a new /16 often brings a new client), which errs towards
//! stronger evidence when everything is new at once, as with a stolen
//! credential used from an attacker's host.

use super::{novelty_json, round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec, Strength};
use crate::baseline::counts::Counts;
use crate::baseline::intern::Sym;
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
    let place = ctx.obs.place;
    if b.networks.is_empty() {
        return None;
    }
    let (now, decay) = (ctx.now(), ctx.decay());
    let p_new = |counts: &Counts<Sym>, key: Sym| counts.get(key).is_none().then(|| counts.novelty(now, decay).p_unseen);
    let new_24 = b.networks.get(client.network).is_none();
    // States saved before wide networks were learned hold none: judge only /24s then.
    let new_16 = place.filter(|_| !b.wide_networks.is_empty()).and_then(|pl| p_new(&b.wide_networks, pl.wide_network));
    let new_scope = place
        .filter(|pl| !b.scopes.is_empty() && b.scopes.get(pl.scope).is_none())
        .map(|_| b.scopes.novelty(now, decay).p_unseen);
    let new_family = p_new(&b.agents, client.agent);
    let new_version = match (new_family, place) {
        (None, Some(pl)) if !b.agent_versions.is_empty() => p_new(&b.agent_versions, pl.agent_version),
        _ => None,
    };
    if !new_24 && [new_scope, new_family, new_version].iter().all(Option::is_none) {
        return None;
    }
    let rest: f64 = [new_scope, new_family, new_version].iter().flatten().product();
    // The network's factor as evidence: the /16's estimate when the /16 is
    // new, else the /24's. Alone the stricter of the two counts: an identity
    // that roams hundreds of /24s in a hundred /16s finds a new /16
    // unremarkable, however few of its /16s were seen once.
    let p_24 = b.networks.novelty(now, decay).p_unseen;
    let (signal_net, alert_net) = match (new_24, new_16) {
        (false, _) => (1.0, 1.0),
        (true, Some(p16)) => (p16, p16.max(p_24)),
        (true, None) => (p_24, p_24),
    };
    // Alone, only a new wide network (with whatever else is new) or a new
    // client family alerts; a /24 inside a known /16 or a version bump only
    // adds to other evidence.
    let may_alert = new_16.is_some() || (new_24 && b.wide_networks.is_empty()) || new_family.is_some();
    let (p, strength) = match may_alert && rest * alert_net <= ctx.config.novelty_max_probability {
        true => (rest * alert_net, Strength::Alert),
        false => (rest * signal_net, ctx.strength(rest * signal_net, 0.0)?),
    };

    let network = ctx.names.name(client.network).to_string();
    let agent = ctx.names.name(client.agent);
    let mut what = Vec::new();
    if new_16.is_some() {
        what.push(format!("network {network} in a wider network it never used"));
    } else if new_24 {
        what.push(format!("a new subnet {network} of a network it uses"));
    }
    if let (Some(_), Some(pl)) = (new_scope, place) {
        what.push(format!("a {} address, which it never used before", pl.scope.name()));
    }
    if new_family.is_some() {
        what.push(format!("a new client ({agent})"));
    } else if let (Some(_), Some(pl)) = (new_version, place) {
        what.push(format!("a new client version ({})", ctx.names.name(pl.agent_version)));
    }
    let summary = format!(
        "{} called from {}; its {} networks in {} wider networks and {} client families make this an estimated {p:.2e} likely.",
        ctx.event.identity,
        what.join(", with "),
        b.networks.len(),
        b.wide_networks.len(),
        b.agents.len(),
    );
    let mut evidence = ctx.evidence(
        json!({
            "network": network,
            "wide_network": place.map(|pl| ctx.names.name(pl.wide_network)),
            "address_scope": place.map(|pl| pl.scope.name()),
            "source_ip": ctx.event.source_ip,
            "user_agent_family": agent,
            "user_agent_version": place.map(|pl| ctx.names.name(pl.agent_version)),
            "new_network": new_24,
            "new_wide_network": new_16.is_some(),
            "new_address_scope": new_scope.is_some(),
            "new_user_agent_family": new_family.is_some(),
            "new_user_agent_version": new_version.is_some(),
        }),
        json!({
            "networks": ctx.top(&b.networks, 5, |n| ctx.names.name(n).to_string()),
            "wide_networks": ctx.top(&b.wide_networks, 5, |n| ctx.names.name(n).to_string()),
            "address_scopes": b.scopes.iter().map(|(s, _)| s.name()).collect::<Vec<_>>(),
            "user_agent_families": ctx.top(&b.agents, 5, |a| ctx.names.name(a).to_string()),
            "novelty": novelty_json(&b.networks.novelty(now, decay)),
        }),
    );
    evidence.probability = Some(round(p, 8));
    Some(Finding {
        detector: SPEC.detector(),
        strength,
        score: score_from_probability(p),
        subject: if new_24 { network } else { agent.to_string() },
        summary,
        evidence,
    })
}
