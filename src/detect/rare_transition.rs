//! `rare_transition`: within one session (a CI run, an agent task) the identity
//! moves from one known call to another known call in an order it never uses:
//! an unusual execution path. New calls are `novel_call`'s; this judges order.

use super::{novelty_json, round, score_from_probability, Context, Detector, Finding};
use serde_json::json;

/// Fewer departures than this from the previous call say too little about its successors.
const MIN_DEPARTURES: f64 = 5.0;

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let session = ctx.obs.session?;
    if b.calls.get(ctx.obs.call).is_none() {
        return None;
    }
    let previous = b.previous_call(session, ctx.now());
    if b.transitions.get((previous, ctx.obs.call)).is_some() {
        return None;
    }
    let novelty = b.transitions.novelty_where(ctx.now(), ctx.decay(), |(from, _)| from == previous);
    if novelty.observations < MIN_DEPARTURES || novelty.p_unseen > ctx.config.novelty_max_probability {
        return None;
    }
    let (from, to) = (ctx.names.call_name(previous), ctx.names.call_name(ctx.obs.call));
    let usual: Vec<String> = {
        let mut next: Vec<_> = b.transitions.iter().filter(|((f, _), _)| *f == previous).collect();
        next.sort_by(|a, c| c.1.weight.total_cmp(&a.1.weight).then(a.0.cmp(&c.0)));
        next.into_iter().take(5).map(|((_, t), _)| ctx.names.call_name(t)).collect()
    };
    let summary = format!(
        "{} went from {from} to {to} in session {}, a step it has never taken; after {from} it has gone to {} distinct calls in {:.0} sessions (estimated probability of a new step {:.2e}).",
        ctx.event.identity,
        ctx.event.session_id.as_deref().unwrap_or_default(),
        novelty.distinct,
        novelty.observations,
        novelty.p_unseen
    );
    let mut evidence = ctx.evidence(
        json!({ "from": from, "to": to, "session_id": ctx.event.session_id }),
        json!({ "usual_next_calls": usual, "novelty": novelty_json(&novelty) }),
    );
    evidence.probability = Some(round(novelty.p_unseen, 8));
    Some(Finding {
        detector: Detector::RareTransition,
        score: score_from_probability(novelty.p_unseen),
        subject: format!("{from} -> {to}"),
        summary,
        evidence,
    })
}
