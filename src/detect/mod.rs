//! Detectors: one module each, each a function from (baseline, event) to an
//! optional [`Finding`]. The engine turns findings into alerts.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The stable detector names. Scripts and SIEM rules depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    NovelCall,
    RareTransition,
    FanoutBurst,
    VolumeSpike,
    NewSource,
    OffHours,
    NewDelegator,
    SharedIdentity,
    DormantReactivation,
    PostPurpose,
    ExpiredCredential,
    OutsideWindow,
    ScopeViolation,
}

impl Detector {
    pub const ALL: [Detector; 13] = [
        Detector::NovelCall,
        Detector::RareTransition,
        Detector::FanoutBurst,
        Detector::VolumeSpike,
        Detector::NewSource,
        Detector::OffHours,
        Detector::NewDelegator,
        Detector::SharedIdentity,
        Detector::DormantReactivation,
        Detector::PostPurpose,
        Detector::ExpiredCredential,
        Detector::OutsideWindow,
        Detector::ScopeViolation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Detector::NovelCall => "novel_call",
            Detector::RareTransition => "rare_transition",
            Detector::FanoutBurst => "fanout_burst",
            Detector::VolumeSpike => "volume_spike",
            Detector::NewSource => "new_source",
            Detector::OffHours => "off_hours",
            Detector::NewDelegator => "new_delegator",
            Detector::SharedIdentity => "shared_identity",
            Detector::DormantReactivation => "dormant_reactivation",
            Detector::PostPurpose => "post_purpose",
            Detector::ExpiredCredential => "expired_credential",
            Detector::OutsideWindow => "outside_window",
            Detector::ScopeViolation => "scope_violation",
        }
    }

    /// Learned detectors need a baseline and stay silent while an identity learns;
    /// declared and lifecycle detectors fire from the first event.
    pub fn is_learned(self) -> bool {
        !matches!(
            self,
            Detector::PostPurpose | Detector::ExpiredCredential | Detector::OutsideWindow | Detector::ScopeViolation
        )
    }

    /// OWASP Non-Human Identity Top 10 (2025) risks this detector surfaces.
    pub fn owasp_nhi(self) -> &'static [&'static str] {
        match self {
            Detector::NovelCall | Detector::RareTransition => &["NHI5:2025", "NHI2:2025"],
            Detector::FanoutBurst | Detector::VolumeSpike => &["NHI5:2025", "NHI2:2025"],
            Detector::NewSource | Detector::OffHours => &["NHI2:2025", "NHI10:2025"],
            Detector::NewDelegator => &["NHI5:2025", "NHI3:2025"],
            Detector::SharedIdentity => &["NHI9:2025"],
            Detector::DormantReactivation => &["NHI1:2025", "NHI7:2025"],
            Detector::PostPurpose => &["NHI1:2025"],
            Detector::ExpiredCredential => &["NHI7:2025"],
            Detector::OutsideWindow => &["NHI5:2025", "NHI7:2025"],
            Detector::ScopeViolation => &["NHI5:2025"],
        }
    }

    /// MITRE ATT&CK techniques the behaviour is consistent with.
    pub fn attack(self) -> &'static [&'static str] {
        match self {
            Detector::NovelCall | Detector::RareTransition | Detector::OffHours | Detector::ScopeViolation => {
                &["T1078.004"]
            }
            Detector::FanoutBurst => &["T1580", "T1619", "T1526"],
            Detector::VolumeSpike => &["T1530", "T1078.004"],
            Detector::NewSource | Detector::NewDelegator | Detector::SharedIdentity | Detector::PostPurpose => {
                &["T1078.004", "T1550.001"]
            }
            Detector::DormantReactivation | Detector::OutsideWindow => &["T1078.004"],
            Detector::ExpiredCredential => &["T1550.001"],
        }
    }

    /// What an analyst should do first.
    pub fn recommended_action(self) -> &'static str {
        match self {
            Detector::NovelCall => "Confirm with the owner that this call belongs to the identity's purpose; if not, revoke its active credentials and narrow its policy to the calls in its baseline.",
            Detector::RareTransition => "Review the session's full call sequence with the owner of the workflow; if the path was not intended, stop the session and rotate the identity's credentials.",
            Detector::FanoutBurst => "Treat as possible discovery: review the resources touched in the window, and suspend the credential if the owner cannot explain the enumeration.",
            Detector::VolumeSpike => "Treat as possible exfiltration: check what data was read in the window and throttle or suspend the credential until the owner confirms the load.",
            Detector::NewSource => "Verify the new network or client with the workload owner; if unknown, revoke the credential, rotate the secret and check where it was stored.",
            Detector::OffHours => "Confirm a scheduled or emergency job ran at this hour; if none did, treat the credential as exposed and rotate it.",
            Detector::NewDelegator => "Confirm that the new delegator approved this delegation; if not, revoke the delegation and review what was done on its behalf.",
            Detector::SharedIdentity => "Find every client using this identity or credential, give each its own identity, and rotate the shared secret.",
            Detector::DormantReactivation => "Confirm the identity still has an owner and a purpose; if not, offboard it and revoke its credentials.",
            Detector::PostPurpose => "The delegation had ended: revoke every credential the identity still holds, remove its access, and review what it did after the end.",
            Detector::ExpiredCredential => "A credential was used after it expired: find which system still accepts it, and block it there.",
            Detector::OutsideWindow => "Confirm whether an approved change justified use outside the window; if not, suspend the credential and review the actions taken.",
            Detector::ScopeViolation => "Deny the out-of-scope action in the policy, and ask the owner whether the grant or the workload is wrong.",
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Detector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Detector::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| format!("unknown detector `{s}`"))
    }
}

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
    pub evidence: crate::alert::Evidence,
}

pub mod dormant_reactivation;
pub mod expired_credential;
pub mod fanout_burst;
pub mod new_delegator;
pub mod new_source;
pub mod novel_call;
pub mod off_hours;
pub mod outside_window;
pub mod post_purpose;
pub mod rare_transition;
pub mod scope_violation;
pub mod shared_identity;
pub mod volume_spike;

use crate::alert::Evidence;
use crate::baseline::counts::{Decay, Minute, Novelty};
use crate::baseline::fleet::Fleet;
use crate::baseline::intern::{Names, Sym};
use crate::baseline::{IdentityBaseline, Observation};
use crate::engine::EngineConfig;
use crate::grants::{Applicable, Registry};
use crate::model::AccessEvent;
use crate::time::format_rfc3339;

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
    pub grants: &'a Applicable<'a>,
    /// Other identities that used this call's credential within the concurrency window.
    pub credential_sharers: &'a [Sym],
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
    pub fn top<K: Ord + Copy>(
        &self,
        counts: &crate::baseline::counts::Counts<K>,
        n: usize,
        name: impl Fn(K) -> String,
    ) -> Vec<String> {
        let mut all: Vec<(K, f64)> = counts.iter().map(|(k, e)| (k, e.weight_at(self.now(), self.decay()))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.into_iter().take(n).map(|(k, _)| name(k)).collect()
    }
}

impl Finding {
    /// The finding's probability under the identity's baseline; `None` for
    /// declared detectors, which state a fact rather than estimate one.
    pub fn probability(&self) -> Option<f64> {
        self.evidence.probability.filter(|_| self.detector.is_learned())
    }
}

impl Context<'_> {
    /// How strong a finding with probability `p` is for a detector whose own
    /// threshold is `alert_at`: alert strength at or below it, a signal at
    /// or below `signal_max_probability`, nothing above.
    pub fn strength(&self, p: f64, alert_at: f64) -> Option<Strength> {
        if p <= alert_at {
            Some(Strength::Alert)
        } else if p <= self.config.signal_max_probability {
            Some(Strength::Signal)
        } else {
            None
        }
    }
}

/// "45 min", "3 h 12 min", "4 days": a span of event time in a natural unit.
pub fn duration_text(ms: i64) -> String {
    let min = ms.max(0) / 60_000;
    match min {
        m if m < 60 => format!("{m} min"),
        m if m < 2 * 1440 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days", m / 1440),
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
type Check = fn(&Context) -> Option<Finding>;

const CHECKS: [(Detector, Check); 13] = [
    (Detector::PostPurpose, post_purpose::check),
    (Detector::ExpiredCredential, expired_credential::check),
    (Detector::OutsideWindow, outside_window::check),
    (Detector::ScopeViolation, scope_violation::check),
    (Detector::NovelCall, novel_call::check),
    (Detector::RareTransition, rare_transition::check),
    (Detector::FanoutBurst, fanout_burst::check),
    (Detector::VolumeSpike, volume_spike::check),
    (Detector::NewSource, new_source::check),
    (Detector::OffHours, off_hours::check),
    (Detector::NewDelegator, new_delegator::check),
    (Detector::SharedIdentity, shared_identity::check),
    (Detector::DormantReactivation, dormant_reactivation::check),
];

/// Runs every enabled detector on one call, in a fixed order. Learned
/// detectors stay silent while the identity learns.
pub fn run_all(ctx: &Context) -> Vec<Finding> {
    let learned = ctx.baseline.is_learned(ctx.config.learning_days, ctx.config.learning_events);
    let mut purpose_over = false;
    let mut findings = Vec::new();
    for (detector, check) in CHECKS {
        // Once the purpose is over every call is out of bounds; one alert says so.
        let superseded = purpose_over && matches!(detector, Detector::OutsideWindow | Detector::ScopeViolation);
        if ctx.config.disabled.contains(&detector) || (detector.is_learned() && !learned) || superseded {
            continue;
        }
        if let Some(finding) = check(ctx) {
            purpose_over |= detector == Detector::PostPurpose;
            findings.push(finding);
        }
    }
    findings
}

/// One window's count against the identity's past windows, shared by the
/// rate and fan-out detectors.
pub struct Burst<'a> {
    pub detector: Detector,
    /// This window's count, including the call being judged.
    pub observed: u32,
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
    let Burst { detector, observed, history, min_count, min_ratio, verb, measure, evidence_key } = burst;
    if history.windows < ctx.config.min_windows
        || observed < min_count
        || (observed as f64) < min_ratio * history.mean as f64
    {
        return None;
    }
    let p = history.tail(observed);
    let strength = ctx.strength(p, ctx.config.burst_max_probability)?;
    let (window_s, mean, sd) = (ctx.config.window_s, history.mean as f64, (history.var.max(0.0) as f64).sqrt());
    let summary = format!(
        "{} {verb} {observed} {measure} within {} minutes; its past active windows averaged {mean:.1} (sd {sd:.1}), so this many had an estimated probability of {p:.2e}.",
        ctx.event.identity,
        window_s / 60,
    );
    let mut evidence = ctx.evidence(
        serde_json::json!({ evidence_key: observed, "latest": ctx.names.call_name(ctx.obs.call) }),
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
