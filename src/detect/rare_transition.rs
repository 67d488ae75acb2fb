//! `rare_transition`: within one session (a CI run, an agent task) the identity
//! takes steps between operations (target and action) that it never takes:
//! an unusual execution path. Resources are left out so that reading a new
//! table in the usual order is not a new path.
//!
//! One new step is weak evidence for an agent that varies its paths, so the
//! surprise (-log10 probability) of every never-taken step in the session is
//! summed, and the detector fires when the path as a whole is unlikely: a
//! pipeline jumping around its fixed sequence, or an agent whose task takes
//! several steps it has never taken. Steps that touch an operation peers of
//! the same kind took up within the rollout window are part of a rollout.

use super::{round, Context, Finding, Kind, OcsfKind, Spec};
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "rare_transition",
    kind: Kind::Learned,
    owasp_nhi: &["NHI5:2025", "NHI2:2025"],
    attack: &["T1078.004"],
    recommended_action: "Review the session's full call sequence with the owner of the workflow; if the path was not intended, stop the session and rotate the identity's credentials.",
    ocsf: OcsfKind {
        title: "Delegated identity took a rare path between calls",
        parameter: "call transition",
        observation_type: Some("Sequence Analysis"),
        observed_pattern: Some("RARE"),
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let session = ctx.obs.session?;
    let (now, decay) = (ctx.now(), ctx.decay());
    let novelty = b.new_step(session, ctx.obs.op, now, decay)?;
    let step = -novelty.p_unseen.log10();
    let previous = b.previous_call(session, now);
    // Steps into or out of an operation the fleet is rolling out are new for
    // everyone of the kind: a release, not an unusual path.
    let window = ctx.config.rollout_window_min();
    let rolling_out = |op| {
        op != crate::baseline::CallId::START
            && ctx.fleet.peers(ctx.obs.peer_groups(), op, ctx.identity, now, window).recent_adopters()
                >= ctx.config.rollout_min_peers
    };
    if rolling_out(previous) || rolling_out(ctx.obs.op) {
        return None;
    }
    let departures: f64 =
        b.transitions.iter().filter(|((from, _), _)| *from == previous).map(|(_, e)| e.weight_at(now, decay)).sum();
    let path = b.session(session, now).map_or(0.0, |s| s.surprise as f64) + step;
    let p = 10f64.powf(-path);
    if departures < ctx.config.path_min_departures {
        return None;
    }
    let strength = ctx.strength(p, ctx.config.path_max_probability)?;
    let (from, to) = (ctx.names.call_name(previous), ctx.names.call_name(ctx.obs.op));
    let usual: Vec<String> = {
        let mut next: Vec<_> = b.transitions.iter().filter(|((f, _), _)| *f == previous).collect();
        next.sort_by(|a, c| c.1.weight.total_cmp(&a.1.weight).then(a.0.cmp(&c.0)));
        next.into_iter().take(5).map(|((_, t), _)| ctx.names.call_name(t)).collect()
    };
    let summary = format!(
        "{} went from {from} to {to} in session {}, a step it has never taken; with the session's other new steps the path had an estimated probability of {p:.2e} (its sessions hold {} distinct steps in {:.0} observed).",
        ctx.event.identity,
        ctx.event.session_id.as_deref().unwrap_or_default(),
        novelty.distinct,
        novelty.observations,
    );
    let mut evidence = ctx.evidence(
        json!({ "from": from, "to": to, "session_id": ctx.event.session_id, "step_probability": round(10f64.powf(-step), 8) }),
        json!({ "usual_next_calls": usual, "departures_from_previous": round(departures, 1), "novelty": super::novelty_json(&novelty) }),
    );
    evidence.probability = Some(round(p, 10));
    Some(Finding {
        detector: SPEC.detector(),
        strength,
        score: super::score_from_probability(p),
        subject: ctx.event.session_id.clone().unwrap_or_default(),
        summary,
        evidence,
    })
}
