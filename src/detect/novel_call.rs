//! `novel_call`: the identity makes a kind of call it has never made, and its
//! own history says that is unlikely.
//!
//! Two levels: a new operation (target and action) is judged against how
//! often the identity took up new operations, measured two ways, and the
//! smaller estimate is used: Good-Turing over its active hours, and the share
//! of its runs (sessions) that took up a new operation (`Runs`). A quiet CI
//! role has few active hours but every one of its runs says the same thing:
//! forty runs with nothing new since its first day make a new operation about
//! 1e-2 likely, where its 70 active hours alone leave it near 1.4e-2. A known
//! operation on a new
//! resource class against how varied that operation's resources are. Both
//! estimates are Good-Turing (see `Counts::novelty`): a pipeline that made the
//! same 6 calls 10,000 times gets a tiny probability for a 7th, an agent with
//! 200 calls a large one. Fleet context tempers a new operation: one that
//! peers of the same kind took up within the rollout window is a rollout, not
//! an incident, and one common among peers is less surprising (the estimate
//! is interpolated with the share of peers that make it). Peers are counted
//! at two levels, the identity's group and its family (`fleet::PeerGroups`):
//! a rollout seen at either is a rollout, and the share is the larger. A call that a live
//! grant's scope names explicitly is declared, and never novel.
//!
//! A new operation in a sensitive class (the catalogue in
//! `data/sensitive-operations.toml`: stopping logs, creating credentials,
//! users or trust, reading secrets, sharing data, running code elsewhere,
//! changing policy) is judged as what it is: a new operation *and* a
//! sensitive one, `p_new × p_sensitive`, where `p_sensitive` is the share of
//! operations settled identities of this fleet took up that were sensitive
//! (`Adoptions::p_sensitive`). A habitual sensitive call is never novel.

use super::{novelty_json, round, score_from_probability, Context, Finding, Kind, OcsfKind, Spec};
use crate::baseline::counts::Novelty;
use crate::baseline::intern::IdMap;
use crate::baseline::{CallId, IdentityBaseline};
use serde_json::json;

pub const SPEC: Spec = Spec {
    name: "novel_call",
    kind: Kind::Learned,
    owasp_nhi: &["NHI5:2025", "NHI2:2025"],
    attack: &["T1078.004"],
    recommended_action: "Confirm with the owner that this call belongs to the identity's purpose; if not, revoke its active credentials and narrow its policy to the calls in its baseline.",
    ocsf: OcsfKind {
        title: "Delegated identity made a call outside its baseline",
        parameter: "call",
        observation_type: Some("Frequency Analysis"),
        observed_pattern: Some("UNSEEN"),
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let b = ctx.baseline;
    if b.calls.get(ctx.obs.call).is_some() {
        return None;
    }
    // A call a live grant names explicitly was declared: new, but not overreach.
    if ctx.grants.live.iter().any(|g| super::scope_violation::explicitly_allows(g, ctx.event)) {
        return None;
    }
    let same_op = |c: CallId| ctx.names.op_of(c) == ctx.obs.op;
    let known_op = b.makes_op(ctx.obs.op);
    let p_runs = b.runs.p_new_operation();
    let (novelty, p, peers) = if known_op {
        let novelty = b.calls.novelty_where(ctx.now(), ctx.decay(), same_op);
        (novelty, novelty.p_unseen, None)
    } else {
        let novelty = op_novelty(b, ctx);
        let p_new = novelty.p_unseen.min(p_runs);
        let peers = ctx.fleet.peers(
            ctx.obs.peer_groups(),
            ctx.obs.op,
            ctx.identity,
            ctx.now(),
            ctx.config.rollout_window_min(),
        );
        if peers.recent_adopters() >= ctx.config.rollout_min_peers {
            return None;
        }
        let share = peers.commonest().1.share();
        let lambda = ctx.config.peer_weight;
        (novelty, (1.0 - lambda) * p_new + lambda * share, Some((peers, share)))
    };
    let sensitive = (!known_op).then(|| super::sensitive(ctx.names, ctx.obs)).flatten();
    let p_sensitive = ctx.fleet.adoptions().p_sensitive();
    let p = if sensitive.is_some() { p * p_sensitive } else { p };
    let strength = ctx.strength(p, ctx.config.novelty_max_probability)?;
    let call = ctx.names.call_name(ctx.obs.call);
    let what = if known_op {
        format!(
            "a resource it has never used with {} ({call}); that operation has touched {} resource classes in {:.0} active hours",
            ctx.names.call_name(ctx.obs.op),
            novelty.distinct,
            novelty.observations
        )
    } else {
        format!(
            "an operation it has never made ({call}); its history holds {} operations in {:.0} active hours, and {} of its {} runs since its first day took up a new one",
            novelty.distinct, novelty.observations, b.runs.novel_runs, b.runs.runs
        )
    };
    let peer_note = match &peers {
        None => String::new(),
        Some((view, _)) => {
            let (level, peers) = view.commonest();
            match (peers.using, peers.recent_adopters) {
                (0, _) => ", and no peer of its kind makes it".to_string(),
                (n, 0) => format!(", and {n} of {} peers of its {level} make it", peers.group_size),
                (n, r) => {
                    format!(", and {n} of {} peers of its {level} make it, {r} took it up recently", peers.group_size)
                }
            }
        }
    };
    let sensitive_note = match sensitive {
        Some(s) => format!(
            "; it is sensitive ({}: {}), and {:.1}% of the operations settled identities here took up were",
            s.class.name(),
            s.class.description(),
            p_sensitive * 100.0
        ),
        None => String::new(),
    };
    let summary = format!(
        "{} made {what}{sensitive_note}, so this had an estimated probability of {p:.2e}{peer_note}.",
        ctx.event.identity
    );
    let mut evidence = ctx.evidence(
        json!({
            "call": call, "target": ctx.event.target, "action": ctx.event.action, "resource": ctx.event.resource,
            "new_operation": !known_op, "sensitive_class": sensitive.map(|s| s.class.name()),
            "sensitive_source": sensitive.map(|s| s.source),
        }),
        json!({
            "known_calls": b.calls.len(),
            "top_calls": ctx.top(&b.calls, 5, |c| ctx.names.call_name(c)),
            "novelty": novelty_json(&novelty),
            "runs": b.runs.runs,
            "runs_with_new_operation": b.runs.novel_runs,
            "fleet_share_sensitive": round(p_sensitive, 4),
        }),
    );
    evidence.probability = Some(round(p, 8));
    evidence.peers = peers.map(|(view, share)| {
        let (group, family) = (&view.group, &view.family);
        json!({
            "group": ctx.names.name(ctx.obs.peer_group), "group_size": group.group_size, "using": group.using,
            "recent_adopters": group.recent_adopters, "peer_share": round(share, 4),
            "family": ctx.names.name(ctx.obs.peer_groups().family), "family_size": family.group_size,
            "family_using": family.using, "family_recent_adopters": family.recent_adopters,
        })
    });
    Some(Finding {
        detector: SPEC.detector(),
        strength,
        score: score_from_probability(p),
        subject: call,
        summary,
        evidence,
    })
}

/// Good-Turing over operations: a call's hits count for its operation, and an
/// operation is a singleton when all its calls together were seen once. One
/// pass over the calls, summing in the order of the calls.
fn op_novelty(b: &IdentityBaseline, ctx: &Context) -> Novelty {
    // Per operation, in the order the calls first name it: (decayed weight, hits).
    let mut ops: Vec<(f64, u32)> = Vec::with_capacity(b.ops.len());
    let mut index = IdMap::with_capacity_and_hasher(b.ops.len(), Default::default());
    for (c, e) in b.calls.iter() {
        let i = *index.entry(ctx.names.op_of(c)).or_insert_with(|| {
            ops.push((0.0, 0));
            ops.len() - 1
        });
        ops[i].0 += e.weight_at(ctx.now(), ctx.decay());
        ops[i].1 = ops[i].1.saturating_add(e.hits);
    }
    let observations: f64 = ops.iter().map(|o| o.0).sum();
    Novelty::estimate(observations, ops.len(), ops.iter().filter(|o| o.1 == 1).count())
}
