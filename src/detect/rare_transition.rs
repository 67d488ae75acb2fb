//! `rare_transition`: within one session (a CI run, an agent task) the identity
//! takes steps between operations (target and action) that it never takes:
//! an unusual execution path. Resources are left out so that reading a new
//! table in the usual order is not a new path.
//!
//! One new step is weak evidence for an agent that varies its paths, so the
//! surprise (-log10 probability) of every never-taken step in the session is
//! summed, and the detector fires when the path as a whole is unlikely: a
//! pipeline jumping around its fixed sequence, or an agent whose task takes
//! several steps it has never taken.
//!
//! A step into or out of an operation still finding its place is not judged:
//! one the identity took up within `ROLLOUT_SETTLE_MIN`, after its learning
//! period (a release's new call turns up between different calls for days;
//! what it took up while learning is its repertoire), or one it never made
//! that peers of its kind are taking up now (a rollout; `novel_call` judges
//! the operation itself). An operation it has made for longer is not being
//! rolled out to it, whoever else takes it up now: newcomers to the fleet
//! take up every operation of their kind at once.
//!
//! How a session ends is a step too (its last operation, then the end): an
//! agent that reports and then acts ends its task after the action, where
//! its tasks never end. An end is known only once the session has been idle
//! for an hour, so it is judged then (`session_end`), for a session an open
//! episode already holds a path signal of: the end's surprise joins the
//! session's, and the episode's signal is replaced by the stronger one.

use super::{round, Context, Finding, Kind, OcsfKind, Spec};
use crate::alert::Alert;
use crate::baseline::counts::{Decay, Minute, Novelty};
use crate::baseline::intern::Names;
use crate::baseline::{CallId, IdentityBaseline, SessionState};
use crate::engine::EngineConfig;
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

/// How long after an identity took up an operation new steps around it are
/// still taken as part of its rollout: a release's new call finds its place
/// in the identity's paths over days (measured: new steps around it for up
/// to ten days after the first use).
const ROLLOUT_SETTLE_MIN: Minute = 14 * 1440;

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    let session = ctx.obs.session?;
    let (now, decay) = (ctx.now(), ctx.decay());
    let novelty = b.new_step(session, ctx.obs.op, now, decay)?;
    let step = -novelty.p_unseen.log10();
    let previous = b.previous_call(session, now);
    let window = ctx.config.rollout_window_min();
    let learned_from = b.first_seen.saturating_add((ctx.config.learning_days * 1440.0) as Minute);
    let rolling_out = |op| match b.first_step_into(op) {
        _ if op == CallId::START => false,
        Some(first) => first >= learned_from && now.saturating_sub(first) <= ROLLOUT_SETTLE_MIN,
        None => {
            ctx.fleet.peers(ctx.obs.peer_groups(), op, ctx.identity, now, window).recent_adopters()
                >= ctx.config.rollout_min_peers
        }
    };
    if rolling_out(previous) || rolling_out(ctx.obs.op) {
        return None;
    }
    let departures = departures(b, previous, now, decay);
    let path = b.session(session, now).map_or(0.0, |s| s.surprise as f64) + step;
    let p = 10f64.powf(-path);
    if departures < ctx.config.path_min_departures {
        return None;
    }
    let strength = ctx.strength(p, ctx.config.path_max_probability)?;
    let (from, to) = (ctx.names.call_name(previous), ctx.names.call_name(ctx.obs.op));
    let usual = usual_next_calls(b, previous, ctx.names);
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
        subject: ctx.event.session_id.as_deref().unwrap_or_default().to_string(),
        summary,
        evidence,
    })
}

/// The end of a session that an open episode holds this detector's signal
/// of, once the session has ended (`IdentityBaseline::ended_session`) after
/// an operation its sessions never end after (`novelty` of that step): the
/// signal again, with the end's surprise added to the path's. `signal` is
/// the episode's alert for the path, whose call and event its alert keeps.
pub fn session_end(
    b: &IdentityBaseline,
    signal: &Alert,
    session: &SessionState,
    novelty: &Novelty,
    config: &EngineConfig,
    names: &Names,
    now: Minute,
) -> Option<Finding> {
    let decay = config.decay();
    if departures(b, session.last_op, now, decay) < config.path_min_departures {
        return None;
    }
    let step = -novelty.p_unseen.log10();
    let p = 10f64.powf(-(session.surprise as f64 + step));
    let strength = super::strength(config, p, config.path_max_probability)?;
    let last = names.call_name(session.last_op);
    let session_id = signal.event.session_id.clone().unwrap_or_default();
    let summary = format!(
        "{} ended session {session_id} after {last}, where its sessions never end; with the session's new steps the path had an estimated probability of {p:.2e} (its sessions hold {} distinct steps in {:.0} observed).",
        signal.identity, novelty.distinct, novelty.observations,
    );
    let mut evidence = signal.evidence.clone();
    evidence.observed = json!({ "from": last, "to": names.call_name(CallId::END), "session_id": session_id, "step_probability": round(novelty.p_unseen, 8) });
    evidence.baseline = json!({
        "usual_next_calls": usual_next_calls(b, session.last_op, names),
        "departures_from_previous": round(departures(b, session.last_op, now, decay), 1),
        "novelty": super::novelty_json(novelty),
    });
    evidence.probability = Some(round(p, 10));
    let score = super::score_from_probability(p);
    Some(Finding { detector: SPEC.detector(), strength, score, subject: session_id, summary, evidence })
}

/// The decayed number of steps the identity took out of `from`.
fn departures(b: &IdentityBaseline, from: CallId, now: Minute, decay: Decay) -> f64 {
    b.transitions.iter().filter(|((f, _), _)| *f == from).map(|(_, e)| e.weight_at(now, decay)).sum()
}

/// Where the identity usually goes after `from`, most taken first.
fn usual_next_calls(b: &IdentityBaseline, from: CallId, names: &Names) -> Vec<String> {
    let mut next: Vec<_> = b.transitions.iter().filter(|((f, _), _)| *f == from).collect();
    next.sort_by(|a, c| c.1.weight.total_cmp(&a.1.weight).then(a.0.cmp(&c.0)));
    next.into_iter().take(5).map(|((_, t), _)| names.call_name(t)).collect()
}
