//! `novel_call`: the identity makes a kind of call it has never made, and its
//! own history says that is unlikely.
//!
//! The estimate is Good-Turing on the identity's repertoire (see
//! `Counts::novelty`): a pipeline that made the same 6 calls 10,000 times gets
//! a tiny probability for a 7th, an agent with 200 calls a large one. Fleet
//! context tempers it: a call that peers of the same kind started making in
//! the rollout window is a rollout, not an incident, and a call common among
//! peers is less surprising (the estimate is interpolated with the share of
//! peers that make it).

use super::{novelty_json, round, score_from_probability, Context, Detector, Finding};
use serde_json::json;

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    if b.calls.get(ctx.obs.call).is_some() {
        return None;
    }
    let (now, decay) = (ctx.now(), ctx.decay());
    let novelty = b.calls.novelty(now, decay);
    let peers = ctx.fleet.peers(ctx.obs.peer_group, ctx.obs.call, ctx.identity, now, ctx.config.rollout_window_min());
    if peers.recent_adopters >= ctx.config.rollout_min_peers {
        return None;
    }
    let peer_share = if peers.group_size > 0 { peers.using as f64 / peers.group_size as f64 } else { 0.0 };
    let lambda = ctx.config.peer_weight;
    let p = (1.0 - lambda) * novelty.p_unseen + lambda * peer_share;
    if p > ctx.config.novelty_max_probability {
        return None;
    }
    let call = ctx.names.call_name(ctx.obs.call);
    let group = ctx.names.name(ctx.obs.peer_group);
    let peer_note = match (peers.using, peers.recent_adopters) {
        (0, _) => "no peer of its kind makes it".to_string(),
        (n, 0) => format!("{n} of {} peers of its kind make it", peers.group_size),
        (n, r) => format!("{n} of {} peers make it, {r} started recently (a possible rollout)", peers.group_size),
    };
    let summary = format!(
        "{} made a call it has never made before ({call}); with {} distinct calls in {:.0} observed, a new call had an estimated probability of {:.2e}, and {peer_note}.",
        ctx.event.identity, novelty.distinct, novelty.observations, p
    );
    let mut evidence = ctx.evidence(
        json!({ "call": call, "target": ctx.event.target, "action": ctx.event.action, "resource": ctx.event.resource }),
        json!({
            "known_calls": novelty.distinct,
            "top_calls": ctx.top(&b.calls, 5, |c| ctx.names.call_name(c)),
            "novelty": novelty_json(&novelty),
        }),
    );
    evidence.probability = Some(round(p, 8));
    evidence.peers = Some(json!({
        "group": group, "group_size": peers.group_size, "using": peers.using,
        "recent_adopters": peers.recent_adopters, "peer_share": round(peer_share, 4),
    }));
    Some(Finding { detector: Detector::NovelCall, score: score_from_probability(p), subject: call, summary, evidence })
}
