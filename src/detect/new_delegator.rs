//! `new_delegator`: the identity acts on behalf of a delegator (or through a
//! delegation hop) it has never acted for, and no grant declares it.

use super::{novelty_json, round, score_from_probability, Context, Detector, Finding};
use serde_json::json;

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let new = ctx.obs.delegators.iter().copied().find(|&d| {
        b.delegators.get(d).is_none() && !ctx.registry.declares_delegator(&ctx.event.identity, ctx.names.name(d))
    })?;
    let novelty = b.delegators.novelty(ctx.now(), ctx.decay());
    if novelty.p_unseen > ctx.config.novelty_max_probability {
        return None;
    }
    let delegator = ctx.names.name(new).to_string();
    let summary = format!(
        "{} acted on behalf of {delegator} for the first time; it has acted for {} delegators before and no grant declares this one (estimated probability {:.2e}).",
        ctx.event.identity, novelty.distinct, novelty.p_unseen
    );
    let mut evidence = ctx.evidence(
        json!({ "delegator": delegator, "on_behalf_of": ctx.event.on_behalf_of, "chain": ctx.event.chain }),
        json!({ "delegators": ctx.top(&b.delegators, 5, |d| ctx.names.name(d).to_string()), "novelty": novelty_json(&novelty) }),
    );
    evidence.probability = Some(round(novelty.p_unseen, 8));
    Some(Finding {
        detector: Detector::NewDelegator,
        score: score_from_probability(novelty.p_unseen),
        subject: delegator,
        summary,
        evidence,
    })
}
