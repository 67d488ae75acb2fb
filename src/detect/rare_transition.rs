//! `rare_transition`: within one session (a CI run, an agent task) the identity
//! moves from one known operation (target and action) to another in an order
//! it never uses: an unusual execution path. New operations are
//! `novel_call`'s; this judges order. Resources are left out so that reading
//! a new table in the usual order is not a new path.

use super::{novelty_json, round, score_from_probability, Context, Detector, Finding};
use serde_json::json;

/// Fewer departures than this from the previous call say too little about its successors.
const MIN_DEPARTURES: f64 = 5.0;

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let session = ctx.obs.session?;
    if !b.makes_op(ctx.obs.call_key, ctx.names) {
        return None;
    }
    let previous = b.previous_call(session, ctx.now());
    if b.transitions.get((previous, ctx.obs.op)).is_some() {
        return None;
    }
    // The identity's tendency to take new steps is estimated over all its
    // steps (pooled), which is stable long before any one call has many
    // departures; the previous call must still be well known.
    let departures: f64 = b
        .transitions
        .iter()
        .filter(|((from, _), _)| *from == previous)
        .map(|(_, e)| e.weight_at(ctx.now(), ctx.decay()))
        .sum();
    let novelty = b.transitions.novelty(ctx.now(), ctx.decay());
    if departures < MIN_DEPARTURES || novelty.p_unseen > ctx.config.novelty_max_probability {
        return None;
    }
    let (from, to) = (ctx.names.call_name(previous), ctx.names.call_name(ctx.obs.op));
    let usual: Vec<String> = {
        let mut next: Vec<_> = b.transitions.iter().filter(|((f, _), _)| *f == previous).collect();
        next.sort_by(|a, c| c.1.weight.total_cmp(&a.1.weight).then(a.0.cmp(&c.0)));
        next.into_iter().take(5).map(|((_, t), _)| ctx.names.call_name(t)).collect()
    };
    let summary = format!(
        "{} went from {from} to {to} in session {}, a step it has never taken; its sessions hold {} distinct steps in {:.0} observed, so a new step had an estimated probability of {:.2e}.",
        ctx.event.identity,
        ctx.event.session_id.as_deref().unwrap_or_default(),
        novelty.distinct,
        novelty.observations,
        novelty.p_unseen
    );
    let mut evidence = ctx.evidence(
        json!({ "from": from, "to": to, "session_id": ctx.event.session_id }),
        json!({ "usual_next_calls": usual, "departures_from_previous": round(departures, 1), "novelty": novelty_json(&novelty) }),
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
