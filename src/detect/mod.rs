//! Detectors: one module each, each a function from (baseline, event) to an
//! optional [`Finding`]. The engine turns findings into alerts.
//!
//! A detector is one file: its `SPEC` (name, kind, OWASP NHI and ATT&CK ids,
//! recommended action, OCSF wording) and its check. Adding one is that file, its
//! `mod` line and its line in [`REGISTRY`]; the schemas' detector enums and the
//! README's detector table then list its name (tests hold them to the registry).

use serde::{Deserialize, Serialize};

/// How much one finding says on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// Below the signal ceiling but above the detector's own threshold:
    /// evidence for an incident, never an alert alone.
    Signal,
    /// Passes the detector's own threshold: an alert alone in `findings` mode.
    Alert,
}

/// What a detector found for one event, before it becomes an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub detector: Detector,
    pub strength: Strength,
    /// 0 to 1: how sure we are that this is not normal for the identity.
    pub score: f64,
    /// What makes two findings "the same" for suppression (e.g. the new call).
    pub subject: String,
    pub summary: String,
    pub evidence: Evidence,
}

/// Observed behaviour against the identity's own baseline: the "why" of an alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// What this identity did now, e.g. `{"call": "iam.amazonaws.com CreateUser"}`.
    pub observed: serde_json::Value,
    /// What it usually does, e.g. its known calls, sources or rate.
    pub baseline: serde_json::Value,
    /// Estimated probability of the observation under the baseline (learned detectors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Events of history the baseline holds, and since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// The window the observation covers, in seconds, where it is a window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_s: Option<i64>,
    /// Fleet context: how peers of the same kind behave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<serde_json::Value>,
}

pub mod dormant_reactivation;
pub mod duration;
pub mod expired_credential;
pub mod fanout_burst;
pub mod new_delegator;
pub mod new_environment;
pub mod new_source;
pub mod novel_call;
pub mod off_hours;
pub mod outside_window;
pub mod post_purpose;
pub mod rare_transition;
pub mod scope_violation;
pub mod settings;
pub mod shared_identity;
pub mod spec;
pub mod unusual_outcome;
pub mod volume_spike;

use crate::baseline::counts::{Decay, Minute, Novelty};
use crate::baseline::fleet::Fleet;
use crate::baseline::intern::{Names, Sym};
use crate::baseline::{IdentityBaseline, Observation};
use crate::grants::{Applicable, Registry};
use crate::model::AccessEvent;
use crate::time::format_rfc3339;
use settings::EngineConfig;
pub use spec::{Detector, Kind, OcsfKind, Spec};

/// Everything a detector may read about one call. Detectors only read: the
/// engine learns from the call after every detector has judged it.
pub struct Context<'a> {
    pub event: &'a AccessEvent,
    pub obs: &'a Observation,
    pub identity: Sym,
    /// The identity's baseline as it was before this call.
    pub baseline: &'a IdentityBaseline,
    pub config: &'a EngineConfig,
    pub names: &'a Names,
    pub fleet: &'a Fleet,
    pub registry: &'a Registry,
    /// The grants that bear on this call, looked up once for all detectors.
    pub grants: Applicable<'a>,
    /// Other identities that used this call's credential within `credential_reuse_window_s`.
    pub credential_sharers: &'a [Sym],
    /// Whether findings are wanted with their words (summary and evidence). The engine
    /// first judges a call without them, then words only the findings it will show
    /// ([`worded`]): most findings are weak signals that rank no higher than one the
    /// identity's open incident already holds, and wording each (`off_hours` above all,
    /// every call in a quiet hour) was 1.5% of a replay's instructions. A detector whose
    /// findings are rare may word them anyway.
    pub words: bool,
}

impl Context<'_> {
    pub fn decay(&self) -> Decay {
        self.config.decay()
    }

    pub fn now(&self) -> Minute {
        self.obs.minute
    }

    /// Evidence with the history fields every learned alert carries.
    pub fn evidence(&self, observed: serde_json::Value, baseline: serde_json::Value) -> Evidence {
        Evidence {
            observed,
            baseline,
            history_events: Some(self.baseline.events),
            history_since: Some(format_minute(self.baseline.first_seen)),
            last_seen: (self.baseline.events > 0).then(|| format_minute(self.baseline.last_seen)),
            ..Evidence::default()
        }
    }

    /// Names of the most used values of a count, for "usually does X" evidence.
    /// Ties go by name, not by id: ids follow the order in which this engine
    /// first saw each name, which another engine (another instance, after a
    /// partition moved) need not share.
    pub fn top<K: Ord + Copy>(
        &self,
        counts: &crate::baseline::counts::Counts<K>,
        n: usize,
        name: impl Fn(K) -> String,
    ) -> Vec<String> {
        let mut all: Vec<(f64, K)> = counts.iter().map(|(k, e)| (e.weight_at(self.now(), self.decay()), k)).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        // Only the values that can make the cut need a name.
        let cut = all.get(n.saturating_sub(1)).map_or(f64::NEG_INFINITY, |(w, _)| *w);
        let mut named: Vec<(f64, String)> =
            all.into_iter().take_while(|(w, _)| *w >= cut).map(|(w, k)| (w, name(k))).collect();
        named.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        named.into_iter().take(n).map(|(_, name)| name).collect()
    }
}

impl Finding {
    /// The finding's probability under the identity's baseline; `None` for
    /// declared detectors, which state a fact rather than estimate one.
    pub fn probability(&self) -> Option<f64> {
        self.evidence.probability.filter(|_| self.detector.is_learned())
    }

    /// The score as an alert shows it (and an incident ranks its signals by).
    pub fn shown_score(&self) -> f64 {
        round(self.score, 4)
    }

    /// A finding judged without its words (`Context::words` false): what ranks it
    /// (strength, score, probability) and what names it (subject), nothing to show.
    pub fn unworded(
        detector: Detector,
        strength: Strength,
        score: f64,
        subject: String,
        probability: Option<f64>,
    ) -> Finding {
        Finding {
            detector,
            strength,
            score,
            subject,
            summary: String::new(),
            evidence: Evidence { probability, ..Evidence::default() },
        }
    }

    /// Whether the finding has its words (every detector gives a summary when asked).
    pub fn is_worded(&self) -> bool {
        !self.summary.is_empty()
    }
}

impl Context<'_> {
    /// How strong a finding with probability `p` is for a detector whose own
    /// threshold is `alert_at`: alert strength at or below it, a signal at
    /// or below `signal_max_probability`, nothing above.
    pub fn strength(&self, p: f64, alert_at: f64) -> Option<Strength> {
        strength(self.config, p, alert_at)
    }
}

/// How strong a finding with probability `p` is (`Context::strength`).
pub fn strength(config: &EngineConfig, p: f64, alert_at: f64) -> Option<Strength> {
    if p <= alert_at {
        Some(Strength::Alert)
    } else if p <= config.signal_max_probability {
        Some(Strength::Signal)
    } else {
        None
    }
}

/// The catalogue's class of a call's operation (`sensitive::embedded`).
pub fn sensitive<'a>(names: &Names, obs: &Observation) -> Option<crate::sensitive::Sensitive<'a>> {
    let key = obs.call_key;
    crate::sensitive::embedded().classify(names.name(key.target), names.name(key.action))
}

pub fn format_minute(m: Minute) -> String {
    format_rfc3339(m as i64 * 60_000)
}

/// Maps an estimated probability to a score: 1e-2 → 0.4, 1e-3 → 0.6,
/// 1e-4 → 0.8, 1e-5 and below → 1.
pub fn score_from_probability(p: f64) -> f64 {
    ((-p.max(1e-300).log10()) / 5.0).clamp(0.0, 1.0)
}

/// Novelty evidence: how diverse the identity's own history is.
pub fn novelty_json(n: &Novelty) -> serde_json::Value {
    serde_json::json!({
        "observations": round(n.observations, 1),
        "distinct": n.distinct,
        "seen_once": n.singletons,
        "p_unseen": round(n.p_unseen, 6),
    })
}

/// Rounds for display in evidence, so alerts stay readable and stable.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Every detector in the order it runs: declared ones first, so that
/// `post_purpose` can speak for a call made after the purpose ended.
pub const REGISTRY: &[Detector] = &[
    post_purpose::SPEC.detector(),
    expired_credential::SPEC.detector(),
    outside_window::SPEC.detector(),
    scope_violation::SPEC.detector(),
    novel_call::SPEC.detector(),
    rare_transition::SPEC.detector(),
    fanout_burst::SPEC.detector(),
    volume_spike::SPEC.detector(),
    new_source::SPEC.detector(),
    off_hours::SPEC.detector(),
    new_delegator::SPEC.detector(),
    shared_identity::SPEC.detector(),
    dormant_reactivation::SPEC.detector(),
    unusual_outcome::SPEC.detector(),
    new_environment::SPEC.detector(),
];

/// Runs every enabled detector on one call, in registry order. Learned
/// detectors stay silent while the identity learns.
pub fn run_all(ctx: &Context) -> Vec<Finding> {
    let learned = ctx.baseline.is_learned(ctx.config.learning_days, ctx.config.learning_events);
    let post_purpose = post_purpose::SPEC.detector();
    let mut purpose_over = false;
    let mut findings = Vec::new();
    for &detector in REGISTRY {
        let spec = detector.spec();
        let superseded = purpose_over && spec.yields_to_post_purpose;
        if ctx.config.disabled.contains(&detector) || (detector.is_learned() && !learned) || superseded {
            continue;
        }
        if let Some(finding) = (spec.check)(ctx) {
            purpose_over |= detector == post_purpose;
            findings.push(finding);
        }
    }
    findings
}

/// The finding `detector` makes of the call again, with its words: `ctx` as the call was
/// judged, with `words` set. A detector judges a call the same each time it is asked.
pub fn worded(ctx: &Context, detector: Detector) -> Option<Finding> {
    debug_assert!(ctx.words);
    (detector.spec().check)(ctx)
}

/// One window's count against the identity's past windows, shared by the
/// rate and fan-out detectors.
pub struct Burst<'a> {
    pub detector: Detector,
    /// This window's count, including the call being judged.
    pub observed: u32,
    /// The count of the window just before (0 when it had none, or when not tracked).
    pub before: u32,
    pub history: &'a crate::baseline::window::Moments,
    /// Floors below which no burst is judged: an absolute count, and a
    /// multiple of the usual window.
    pub min_count: u32,
    pub min_ratio: f64,
    /// How the summary says it: "made" 40 "calls".
    pub verb: &'static str,
    pub measure: &'static str,
    /// The evidence field holding the count.
    pub evidence_key: &'static str,
}

/// A finding when the window's count has a tail probability of at most
/// `burst_max_probability` under the identity's own history.
pub fn window_burst(ctx: &Context, burst: Burst) -> Option<Finding> {
    let Burst { detector, observed, before, history, min_count, min_ratio, verb, measure, evidence_key } = burst;
    let mean = history.mean as f64;
    let steep = observed as f64 >= min_ratio * mean;
    // Paced to stay under the ratio in every window, exfiltration still moves far more
    // than the identity ever does: two windows in a row, each at half the ratio, count too.
    let held = !steep && before > 0 && before >= min_count && before.min(observed) as f64 >= min_ratio / 2.0 * mean;
    if history.windows < ctx.config.min_windows || observed < min_count || !(steep || held) {
        return None;
    }
    let p = history.tail(observed);
    let strength = ctx.strength(p, ctx.config.burst_max_probability)?;
    let (window_s, sd) = (ctx.config.window_s, (history.var.max(0.0) as f64).sqrt());
    let window = duration::exact(window_s);
    let held_for = if held { format!(", after {before} in the {window} before") } else { String::new() };
    let summary = format!(
        "{} {verb} {observed} {measure} within {window}{held_for}; its past active windows averaged {mean:.1} (sd {sd:.1}), so this many had an estimated probability of {p:.2e}.",
        ctx.event.identity,
    );
    let mut observed_json = serde_json::json!({ evidence_key: observed, "latest": ctx.names.call_name(ctx.obs.call) });
    if held {
        observed_json["in_window_before"] = before.into();
    }
    let mut evidence = ctx.evidence(
        observed_json,
        serde_json::json!({ "mean_per_window": round(mean, 2), "sd_per_window": round(sd, 2), "windows": history.windows }),
    );
    evidence.probability = Some(round(p, 10));
    evidence.window_s = Some(window_s);
    Some(Finding { detector, strength, score: score_from_probability(p), subject: String::new(), summary, evidence })
}

/// Declared detectors are sure of the fact; a call the target denied shows the
/// guardrail held, so it scores lower than one that went through.
pub fn declared_score(ctx: &Context, score: f64) -> f64 {
    match ctx.event.outcome {
        crate::model::Outcome::Success => score,
        _ => round(score * 0.8, 3),
    }
}
