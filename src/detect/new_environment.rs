//! `new_environment`: the identity acts in an environment (account, project,
//! namespace) or a region it has never acted in, when its own history makes
//! that unlikely. Each is a Good-Turing estimate over the identity's own
//! values (`Counts::novelty`); when both are new they multiply. A role that
//! always deploys to one account in one region and now calls another is
//! reaching sideways, or someone else holds its credential.

use super::{novelty_json, round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec};
use crate::baseline::counts::Counts;
use crate::baseline::intern::Sym;
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "new_environment",
    kind: Kind::Learned,
    owasp_nhi: &["NHI5:2025", "NHI2:2025"],
    attack: &["T1078.004", "T1535"],
    recommended_action: "Confirm with the owner that the identity should act in this environment or region; if not, revoke its credentials and restrict its policy to the environments it uses.",
    ocsf: OcsfKind {
        title: "Delegated identity acted in an environment or region it never used",
        parameter: "environment",
        observation_type: Some("Frequency Analysis"),
        observed_pattern: Some("UNSEEN"),
    },
    yields_to_post_purpose: true,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let (now, decay) = (ctx.now(), ctx.decay());
    // Judged only against a history that holds some: a log without
    // environments (or regions) says nothing new when it names one.
    let new = |counts: &Counts<Sym>, value: Option<Sym>| {
        value.filter(|&v| !counts.is_empty() && counts.get(v).is_none()).map(|v| (v, counts.novelty(now, decay)))
    };
    let environment = new(&b.environments, ctx.obs.environment);
    let region = new(&b.regions, ctx.obs.region);
    if environment.is_none() && region.is_none() {
        return None;
    }
    let p: f64 = [environment, region].iter().flatten().map(|(_, n)| n.p_unseen).product();
    let strength = ctx.strength(p, ctx.config.novelty_max_probability)?;
    let name = |v: Option<(Sym, _)>| v.map(|(s, _)| ctx.names.name(s).to_string());
    let (env_name, region_name) = (name(environment), name(region));
    let what: Vec<String> =
        [env_name.as_ref().map(|e| format!("environment {e}")), region_name.as_ref().map(|r| format!("region {r}"))]
            .into_iter()
            .flatten()
            .collect();
    let summary = format!(
        "{} acted in {}, where it never acted before; its {} environments and {} regions make this an estimated {p:.2e} likely.",
        ctx.event.identity,
        what.join(" and "),
        b.environments.len(),
        b.regions.len(),
    );
    let mut evidence = ctx.evidence(
        json!({ "environment": ctx.event.environment, "region": ctx.event.region, "new_environment": env_name.is_some(), "new_region": region_name.is_some(), "call": ctx.names.call_name(ctx.obs.call) }),
        json!({
            "environments": ctx.top(&b.environments, 5, |e| ctx.names.name(e).to_string()),
            "regions": ctx.top(&b.regions, 5, |r| ctx.names.name(r).to_string()),
            "novelty": environment.or(region).map(|(_, n)| novelty_json(&n)),
        }),
    );
    evidence.probability = Some(round(p, 8));
    Some(Finding {
        detector: SPEC.detector(),
        strength,
        score: score_from_probability(p),
        subject: what.join(" "),
        summary,
        evidence,
    })
}
