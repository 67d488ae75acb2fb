//! Alerts: what an analyst and a SIEM receive (`schemas/alert.v1.schema.json`).

/// An alert's evidence is its finding's, as the detector wrote it.
pub use crate::detect::Evidence;
use crate::detect::{Detector, Finding};
use crate::sanitize::sanitize_finding;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Maps a score in [0, 1] to a severity; declared-policy detectors pass their own floor.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 0.95 => Severity::Critical,
            s if s >= 0.8 => Severity::High,
            s if s >= 0.6 => Severity::Medium,
            s if s >= 0.4 => Severity::Low,
            _ => Severity::Info,
        }
    }

    /// The severity of an alert of an identity marked compromised: one level
    /// up, and at least high. Anything it does is the attacker's until cleared.
    pub fn compromised(self) -> Severity {
        match self {
            Severity::Info | Severity::Low | Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The call that triggered an alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertEvent {
    pub target: String,
    pub action: String,
    pub resource: Option<String>,
    pub environment: Option<String>,
    /// Cloud region where the call was served; left out when the log names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub session_id: Option<String>,
    pub grant_id: Option<String>,
    pub credential_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: crate::model::Outcome,
}

/// One alert, serialized as one JSON line. Field order is the schema's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic: derived from detector, identity and triggering event id.
    pub alert_id: String,
    pub detector: Detector,
    pub severity: Severity,
    pub score: f64,
    /// Event time of the triggering event, RFC 3339 UTC.
    pub time: String,
    pub identity: String,
    pub identity_type: Option<String>,
    pub on_behalf_of: Option<String>,
    pub chain: Vec<String>,
    pub event_ids: Vec<String>,
    /// The triggering call as normalized: identifiers, secrets redacted (`redact`).
    pub event: AlertEvent,
    /// Where the triggering event was read: `file:line` or `topic/partition/offset`.
    pub source: String,
    pub summary: String,
    pub evidence: Evidence,
    pub owasp_nhi: Vec<String>,
    pub attack: Vec<String>,
    pub recommended_action: String,
    /// Repeats of this finding for this identity that were counted, not emitted,
    /// since the previous alert of the same kind.
    pub suppressed_repeats: u64,
    /// Fields cut to their bound (`event.resource`, `chain`, `evidence.observed.resource` ...),
    /// see `sanitize`: what they show is not all the log held. Left out when nothing was cut.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    /// Present when the alert is an incident: the signals of one episode
    /// combined (see `incident`). Left out for a finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentInfo>,
    /// `suppressed` when a suppression rule matched the finding (emitted only
    /// with `--show-suppressed`); left out for an alert to act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AlertStatus>,
    /// The name of the suppression rule that matched; left out when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression_rule: Option<String>,
    /// Present when an analyst's malicious verdict marked the identity compromised
    /// (see `feedback`): its severity was raised. Left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised: Option<Compromised>,
}

/// What an alert asks of its reader. Only a suppressed one says so: an alert
/// without a status is one to act on, as every alert was before rules existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// A suppression rule said the finding is expected (`suppress`).
    Suppressed,
}

/// The malicious verdict standing on an alert's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compromised {
    /// The verdict's time, RFC 3339 UTC.
    pub time: String,
    /// Who gave it, as the verdict said (redacted, escaped and bounded like any logged text).
    pub by: String,
    /// The alert the verdict named.
    pub alert_id: String,
}

/// Where an incident stands. Every send of one incident has the same `alert_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// The first send.
    Open,
    /// Evidence joined: a new detector, a tenfold lower probability, or more
    /// activity an update interval after the last send.
    Updated,
    /// No evidence joined for the quiet period; the last send.
    Closed,
}

/// What makes an alert an incident: the episode and each signal in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentInfo {
    pub status: IncidentStatus,
    /// 0 for the first send, then one more per update (and for the close).
    pub update: u32,
    /// Event time of the episode's first and latest evidence.
    pub started: String,
    pub last_evidence: String,
    /// Events that carried evidence; `event_ids` lists the first of them.
    pub events: u64,
    /// Fisher's combination of the signals' probabilities.
    pub combined_probability: f64,
    /// The strongest signal of each detector, in detector order.
    pub signals: Vec<IncidentSignal>,
}

/// One detector's contribution to an incident, with its own baseline vs observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSignal {
    pub detector: Detector,
    pub strength: crate::detect::Strength,
    pub score: f64,
    /// Probability under the identity's baseline; null for declared detectors.
    pub probability: Option<f64>,
    pub time: String,
    pub event_id: String,
    pub summary: String,
    pub observed: serde_json::Value,
    pub baseline: serde_json::Value,
}

/// `alert_id`: a hash of what identifies the finding, never of where it was read.
pub fn alert_id(detector: Detector, identity: &str, event_id: &str) -> String {
    alert_id_parts(&[detector.name(), identity, event_id])
}

/// An incident's `alert_id`, the same for every send: its identity and the
/// first event that carried evidence.
pub fn incident_id(identity: &str, first_event_id: &str) -> String {
    alert_id_parts(&["incident", identity, first_event_id])
}

/// SHA-256 over the parts, each ended by a zero byte; the first 16 bytes in hex.
pub fn alert_id_parts(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    crate::text::hex(&digest[..16])
}

impl Alert {
    /// A finding of a call as an alert without an id of its own: the alert of the call
    /// (its identity, event and source, already sanitized by `sanitize_call`) with the
    /// finding's fields, sanitized alike. An incident weighs every finding but keeps only
    /// the strongest of each detector, so only those are made into alerts.
    pub fn of_finding(call: &Alert, f: Finding) -> Alert {
        let score = f.shown_score();
        let spec = f.detector.spec();
        let mut alert = Alert {
            detector: f.detector,
            severity: Severity::from_score(score),
            score,
            summary: f.summary,
            evidence: f.evidence,
            owasp_nhi: spec.owasp_nhi.iter().map(|s| s.to_string()).collect(),
            attack: spec.attack.iter().map(|s| s.to_string()).collect(),
            recommended_action: spec.recommended_action.to_string(),
            ..call.clone()
        };
        sanitize_finding(&mut alert);
        alert
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("an alert always serializes")
    }
}
