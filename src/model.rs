//! The normalized records every decoder produces and the engine consumes.
//!
//! One type per stage boundary: a decoder turns raw bytes into [`Record`]s, each
//! carrying its [`Origin`]; the engine turns records into alerts. Times are epoch
//! milliseconds (UTC) taken from the event itself, never from the wall clock.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Event time in milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Where a record was read from: a file line (or a record inside one) or a Kafka message. The file
/// path and topic are shared, not copied, by every record read from them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    File {
        path: Arc<str>,
        line: u64,
    },
    /// One record of a CloudTrail log file object (`{"Records": [...]}`) that
    /// fills a whole line: `path:line:Records[element]`, element from 0.
    Element {
        path: Arc<str>,
        line: u64,
        element: u32,
    },
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Element { path, line, element } => write!(f, "{path}:{line}:Records[{element}]"),
            Origin::Kafka { topic, partition, offset } => write!(f, "{topic}/{partition}/{offset}"),
        }
    }
}

/// Result of a call as the log reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Success,
    Failure,
    Denied,
}

/// A decoded field's text. Most fields of a call (a target, an action, an IP address, a
/// credential id) are 24 bytes or less, and those are kept inside the event instead of in
/// a heap block each: fewer allocations per record, and an event's fields sit together in
/// memory, so a record that waits in the order stage is cheaper to judge when its turn
/// comes. A longer text goes to the heap as a `String` would.
pub type EventText = compact_str::CompactString;

/// One downstream call made by a delegate: the unit every detector judges.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccessEvent {
    /// The log's own id, or a stable id derived from the record's content.
    pub event_id: EventText,
    pub time: Millis,
    /// The delegate acting (role ARN, service account, client id ...).
    pub identity: EventText,
    pub identity_type: Option<EventText>,
    /// The delegator on whose behalf the delegate acts.
    pub on_behalf_of: Option<EventText>,
    /// Delegation hops, outermost first.
    pub chain: Vec<EventText>,
    pub grant_id: Option<EventText>,
    /// An identifier of the credential, never its secret value.
    pub credential_id: Option<EventText>,
    pub credential_expires_at: Option<Millis>,
    /// Downstream system called (e.g. `s3.amazonaws.com`).
    pub target: EventText,
    /// Operation (e.g. `GetObject`).
    pub action: EventText,
    pub resource: Option<EventText>,
    pub environment: Option<EventText>,
    /// Cloud region or location where the call was served (`us-east-1`, `europe-west1`).
    /// Left out of the JSON when unknown, so records of logs without one read as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<EventText>,
    /// Groups the calls of one execution path (a CI run, an agent task).
    pub session_id: Option<EventText>,
    pub source_ip: Option<EventText>,
    pub user_agent: Option<EventText>,
    pub outcome: Outcome,
}

/// Which windows of the week a grant may be used in (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Lower-case three-letter day names; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// "HH:MM", inclusive.
    pub start: String,
    /// "HH:MM", exclusive; an end before the start wraps past midnight.
    pub end: String,
}

/// What a grant allows. An empty list means unrestricted on that axis.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    /// IAM-style globs: `*` spans any characters including `/` and `:`, `?` one character.
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub environments: Vec<String>,
}

/// A declared delegation: who may act, for whom, on what, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub grant_id: String,
    pub identity: String,
    pub on_behalf_of: Option<String>,
    pub scope: Scope,
    pub not_before: Option<Millis>,
    pub expires_at: Option<Millis>,
    pub windows: Vec<TimeWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantEndReason {
    Revoked,
    Expired,
    PurposeEnded,
}

impl fmt::Display for GrantEndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrantEndReason::Revoked => "revoked",
            GrantEndReason::Expired => "expired",
            GrantEndReason::PurposeEnded => "purpose_ended",
        })
    }
}

/// A fact about the life of a grant, identity or credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Lifecycle {
    Grant(Grant),
    GrantEnded {
        grant_id: String,
        reason: GrantEndReason,
    },
    IdentityOffboarded {
        identity: String,
    },
    /// The identity was created, or enabled, again: an offboarding recorded before it no
    /// longer holds (a role deleted and created under its name by a deployment is a new role).
    IdentityActivated {
        identity: String,
    },
    CredentialRevoked {
        credential_id: String,
    },
    /// A revoked credential was made usable again (an access key set back to active): a
    /// revocation recorded before it no longer holds.
    CredentialActivated {
        credential_id: String,
    },
    /// A credential was issued (e.g. by STS) and stops being valid at `expires_at`.
    CredentialIssued {
        credential_id: String,
        identity: Option<String>,
        expires_at: Millis,
    },
}

/// An analyst's judgement of an alert (`schemas/verdict.v1.schema.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// What the alert named is normal for the identity: learn it, do not alert on it again.
    Benign,
    /// The identity is compromised: learn nothing from it until cleared.
    Malicious,
}

/// How far a verdict reaches (see `feedback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictScope {
    /// The findings the alert named, for their subjects.
    Alert,
    /// As `alert`, and the alert's call becomes habitual for the identity.
    Call,
    /// As `call`, and a benign verdict clears the identity's compromised mark.
    Identity,
}

/// One verdict record, decoded and bounded (`decode::feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Event time at which the verdict applies: merged with the events by it.
    pub time: Millis,
    pub alert_id: String,
    pub judgement: Judgement,
    pub scope: VerdictScope,
    /// Who gave it; shown on the alerts of a compromised identity.
    pub by: String,
    pub note: Option<String>,
}

/// What a decoder yields: a call, a lifecycle fact or an analyst's verdict, at an event time.
/// Serialized (tagged by `record`) where a record waits in a checkpoint of the order stage.
/// Each variant's body is boxed: a record is moved from the decoder through the order stage to
/// the engine half a dozen times, and moving 400 bytes instead of 40 each time cost 2.6% of a
/// replay's instructions (callgrind, BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Access(Box<AccessEvent>),
    Lifecycle { time: Millis, event_id: String, fact: Box<Lifecycle> },
    Verdict(Box<Verdict>),
}

impl Record {
    pub fn time(&self) -> Millis {
        match self {
            Record::Access(e) => e.time,
            Record::Lifecycle { time, .. } => *time,
            Record::Verdict(v) => v.time,
        }
    }
}
