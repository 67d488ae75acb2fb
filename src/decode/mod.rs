//! Raw bytes to normalized [`Record`]s: one file per log format.
//!
//! Every decoder works on an already parsed JSON object, so `auto` parses each
//! line once and dispatches on the keys it finds. Limits and required fields are
//! checked here, the same way for every format.

pub mod cloudtrail;
pub mod feedback;
mod fields;
mod flat;
pub mod gcp;
pub mod grants;
pub mod k8s;
pub mod native;
pub mod ocsf;
mod typed;

use crate::model::{AccessEvent, Lifecycle, Millis, Outcome, Record};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// Input formats. `Auto` decides per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Auto,
    Native,
    Cloudtrail,
    /// Cloud Audit Logs `LogEntry` with an `AuditLog` `protoPayload`.
    GcpAudit,
    /// Kubernetes `audit.k8s.io/v1` `Event`.
    K8sAudit,
    /// OCSF API Activity (class_uid 6003).
    Ocsf,
    /// Grant and lifecycle events (`schemas/grant-event.v1.schema.json`).
    Grants,
    /// Analyst verdicts (`schemas/verdict.v1.schema.json`); never chosen by `auto`.
    Feedback,
    /// A record as decoded, tagged by `record`: what the service writes to its repartition
    /// topic; never chosen by `auto`.
    Record,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::Auto,
        Format::Native,
        Format::Cloudtrail,
        Format::GcpAudit,
        Format::K8sAudit,
        Format::Ocsf,
        Format::Grants,
        Format::Feedback,
        Format::Record,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Native => "native",
            Format::Cloudtrail => "cloudtrail",
            Format::GcpAudit => "gcp-audit",
            Format::K8sAudit => "k8s-audit",
            Format::Ocsf => "ocsf",
            Format::Grants => "grants",
            Format::Feedback => "feedback",
            Format::Record => "record",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format `{s}`, expected one of {}", names.join(", "))
        })
    }
}

/// Size limits that protect the engine from hostile or broken input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line_bytes: usize,
    /// Longest identity, target, action or region accepted.
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_line_bytes: 1 << 20, max_field_bytes: 1024 }
    }
}

/// Why a record was rejected. `Display` is the reason printed after `file:line: `.
/// Every string it holds may quote the input, so `Display` bounds each one and
/// escapes its control characters: a reason is always one printable line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("line is {len} bytes, over the limit of {max}")]
    LineTooLong { len: usize, max: usize },
    #[error("element is {len} bytes, over the limit of {max}")]
    ElementTooLong { len: usize, max: usize },
    #[error("not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("not valid JSON: {}", shown(.0))]
    InvalidJson(String),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("missing required field `{}`", shown(.0))]
    MissingField(String),
    #[error("field `{}` has the wrong type: expected {expected}, found {found}", shown(.field))]
    WrongType { field: String, expected: &'static str, found: &'static str },
    #[error("field `{field}` is {len} bytes, over the limit of {max}")]
    FieldTooLong { field: &'static str, len: usize, max: usize },
    #[error("field `{}`: {}", shown(.field), shown(.reason))]
    InvalidValue { field: String, reason: String },
    #[error("record matches no known format (expected {0})")]
    UnknownFormat(&'static str),
    /// A well-formed verdict the engine cannot apply (`feedback`).
    #[error(transparent)]
    Refused(#[from] crate::feedback::Refused),
}

/// Longest quote of the input a reason carries.
const MAX_SHOWN_BYTES: usize = 256;

fn shown(s: &str) -> String {
    crate::text::printable(s, MAX_SHOWN_BYTES)
}

impl DecodeError {
    /// A bounded name for the reason, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::LineTooLong { .. } => "line_too_long",
            DecodeError::ElementTooLong { .. } => "element_too_long",
            DecodeError::NotUtf8(_) => "not_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::NotAnObject(_) => "not_an_object",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::FieldTooLong { .. } => "field_too_long",
            DecodeError::InvalidValue { .. } => "invalid_value",
            DecodeError::UnknownFormat(_) => "unknown_format",
            DecodeError::Refused(r) => r.kind(),
        }
    }

    /// Prefixes the field path, for errors inside a nested record (e.g. `Records[3]`).
    pub fn within(self, prefix: &str) -> DecodeError {
        match self {
            DecodeError::MissingField(f) => DecodeError::MissingField(format!("{prefix}.{f}")),
            DecodeError::WrongType { field, expected, found } => {
                DecodeError::WrongType { field: format!("{prefix}.{field}"), expected, found }
            }
            DecodeError::InvalidValue { field, reason } => {
                DecodeError::InvalidValue { field: format!("{prefix}.{field}"), reason }
            }
            other => other,
        }
    }
}

/// What one input line decodes to: usually one record, several for a CloudTrail
/// log file object, none for a blank line or a record the format says to skip.
pub type Decoded = Vec<Result<Record, DecodeError>>;

/// The quoted keys `auto` picks a fast path by, searched for with memchr's vectorised
/// finders, built once: `str::contains` cost 2% of a replay's instructions, and building a
/// finder per line more than that.
struct Sniff {
    identity: memchr::memmem::Finder<'static>,
    target: memchr::memmem::Finder<'static>,
    event_source: memchr::memmem::Finder<'static>,
}

fn sniff() -> &'static Sniff {
    static SNIFF: std::sync::OnceLock<Sniff> = std::sync::OnceLock::new();
    SNIFF.get_or_init(|| Sniff {
        identity: memchr::memmem::Finder::new("\"identity\""),
        target: memchr::memmem::Finder::new("\"target\""),
        event_source: memchr::memmem::Finder::new("\"eventSource\""),
    })
}

/// Decodes one line of input. Never panics; a bad line yields one `Err`.
pub fn decode_line(line: &[u8], format: Format, limits: &Limits) -> Decoded {
    if line.len() > limits.max_line_bytes {
        return vec![Err(DecodeError::LineTooLong { len: line.len(), max: limits.max_line_bytes })];
    }
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => return vec![Err(DecodeError::NotUtf8(e.valid_up_to()))],
    };
    if text.trim().is_empty() {
        return Vec::new();
    }
    // Most native lines take the fast path; `auto` tries it only on lines
    // that name the native fields, so other formats are not parsed twice.
    let native_looking = || {
        let (sniff, bytes) = (sniff(), text.as_bytes());
        sniff.identity.find(bytes).is_some() && sniff.target.find(bytes).is_some()
    };
    if format == Format::Native || (format == Format::Auto && native_looking()) {
        if let Some(ev) = native::decode_fast(text, format == Format::Auto) {
            return vec![check_limits(&ev, limits).map(|()| Record::Access(Box::new(ev)))];
        }
    }
    // A CloudTrail record on its own line takes a typed path too; `auto` tries it
    // only on lines that name its event source.
    if format == Format::Cloudtrail || (format == Format::Auto && sniff().event_source.find(text.as_bytes()).is_some())
    {
        if let Some(ev) = cloudtrail::decode_fast(text) {
            return vec![check_limits(&ev, limits).map(|()| Record::Access(Box::new(ev)))];
        }
    }
    if format == Format::Record {
        let record = serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()));
        return vec![record.and_then(|r| check_record(&r, limits).map(|()| r))];
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![Err(DecodeError::InvalidJson(e.to_string()))],
    };
    let mut out = decode_value(&value, format);
    for r in &mut out {
        let checked = match r {
            Ok(Record::Access(ev)) => check_limits(ev, limits),
            // A fact is kept (a deletion for good), so a fact from any format gets the bounds
            // the repartition topic's records get: without them, a stream of deletions with
            // long names cost memory without limit.
            Ok(fact @ Record::Lifecycle { .. }) => check_record(fact, limits),
            _ => Ok(()),
        };
        if let Err(e) = checked {
            *r = Err(e);
        }
    }
    out
}

/// Decodes one parsed JSON value in the given format.
pub fn decode_value(value: &Value, format: Format) -> Decoded {
    let Some(obj) = value.as_object() else {
        return vec![Err(DecodeError::NotAnObject(fields::type_name(value)))];
    };
    let format = match format {
        Format::Auto => match detect(obj) {
            Some(f) => f,
            None => return vec![Err(DecodeError::UnknownFormat(AUTO_EXPECTED))],
        },
        f => f,
    };
    match format {
        Format::Native => vec![native::decode(obj)],
        Format::Grants => vec![grants::decode(obj)],
        Format::Feedback => vec![feedback::decode(obj)],
        Format::Record => {
            vec![serde_json::from_value(value.clone()).map_err(|e| DecodeError::InvalidJson(e.to_string()))]
        }
        Format::Cloudtrail => cloudtrail::decode(obj),
        Format::GcpAudit => gcp::decode(obj),
        Format::K8sAudit => k8s::decode(obj),
        Format::Ocsf => ocsf::decode(obj),
        Format::Auto => unreachable!("auto was resolved above"),
    }
}

const AUTO_EXPECTED: &str = "native `identity`/`target`/`action`, grant `kind`, CloudTrail `eventSource`/`Records`, \
     GCP `protoPayload`, Kubernetes `auditID`/`objectRef`/`verb`, or OCSF `class_uid`";

/// Recognizes a record's format by keys only that format has: a few map lookups, so
/// `auto` costs nothing next to the JSON parse.
fn detect(obj: &Map<String, Value>) -> Option<Format> {
    let has_any = |keys: &[&str]| keys.iter().any(|k| obj.contains_key(*k));
    if has_any(&["eventSource", "Records", "eventVersion"]) {
        Some(Format::Cloudtrail)
    } else if has_any(&["protoPayload"]) {
        Some(Format::GcpAudit)
    } else if has_any(&["auditID", "objectRef", "verb"]) {
        Some(Format::K8sAudit)
    } else if has_any(&["class_uid"]) {
        Some(Format::Ocsf)
    } else if obj.get("kind").and_then(Value::as_str).is_some_and(grants::is_kind) {
        Some(Format::Grants)
    } else if has_any(&["identity", "target", "action"]) {
        Some(Format::Native)
    } else {
        None
    }
}

/// One access event, followed by the lifecycle fact its call states. Facts come only
/// from calls that succeeded: a refused `DeleteRole` deleted nothing. A fact that cannot
/// be read is rejected on its own, and the access event still counts.
fn access_with_lifecycle(
    event: Result<AccessEvent, DecodeError>,
    lifecycle: impl FnOnce(&AccessEvent) -> Option<Result<Lifecycle, DecodeError>>,
) -> Decoded {
    let event = match event {
        Ok(event) => event,
        Err(e) => return vec![Err(e)],
    };
    let fact = if event.outcome == Outcome::Success { lifecycle(&event) } else { None };
    let fact = fact.map(|fact| {
        fact.map(|fact| Record::Lifecycle {
            time: event.time,
            event_id: format!("{}:{}", event.event_id, lifecycle_kind(&fact)),
            fact: Box::new(fact),
        })
    });
    let mut out = vec![Ok(Record::Access(Box::new(event)))];
    out.extend(fact);
    out
}

/// The `kind` tag a lifecycle fact serializes with.
fn lifecycle_kind(fact: &Lifecycle) -> &'static str {
    match fact {
        Lifecycle::Grant(_) => "grant",
        Lifecycle::GrantEnded { .. } => "grant_ended",
        Lifecycle::IdentityOffboarded { .. } => "identity_offboarded",
        Lifecycle::IdentityActivated { .. } => "identity_activated",
        Lifecycle::CredentialRevoked { .. } => "credential_revoked",
        Lifecycle::CredentialActivated { .. } => "credential_activated",
        Lifecycle::CredentialIssued { .. } => "credential_issued",
    }
}

/// The fields every baseline is keyed by: bounded, and naming something. The region is
/// optional, but when a log gives one it is a name a baseline may learn per identity, like
/// a target, so it keeps the same rules.
/// A record of the internal `record` form (the repartition topic) gets the checks the input
/// decoders made before it was written there: anyone who can write to that topic can write
/// anything, so its fields are bounded and its times in range like any input's.
fn check_record(record: &Record, limits: &Limits) -> Result<(), DecodeError> {
    let out_of_range = |field: &str, t: Millis| {
        crate::time::in_range(t).then_some(()).ok_or_else(|| DecodeError::InvalidValue {
            field: field.into(),
            reason: "is outside the years 1970 to 9999".into(),
        })
    };
    let bounded = |field: &'static str, value: &str| match value.len() > limits.max_field_bytes {
        true => Err(DecodeError::FieldTooLong { field, len: value.len(), max: limits.max_field_bytes }),
        false => Ok(()),
    };
    match record {
        Record::Access(ev) => {
            check_limits(ev, limits)?;
            out_of_range("time", ev.time)?;
            ev.credential_expires_at.map_or(Ok(()), |t| out_of_range("credential_expires_at", t))
        }
        Record::Lifecycle { time, event_id, fact } => {
            out_of_range("time", *time)?;
            bounded("event_id", event_id)?;
            match &**fact {
                Lifecycle::Grant(g) => {
                    bounded("grant_id", &g.grant_id)?;
                    bounded("identity", &g.identity)?;
                    bounded("on_behalf_of", g.on_behalf_of.as_deref().unwrap_or_default())?;
                    let scope = &g.scope;
                    let patterns = [&scope.targets, &scope.actions, &scope.resources, &scope.environments];
                    patterns.into_iter().flatten().try_for_each(|p| bounded("scope", p))?;
                    g.not_before.into_iter().chain(g.expires_at).try_for_each(|t| out_of_range("grant time", t))
                }
                Lifecycle::GrantEnded { grant_id, .. } => bounded("grant_id", grant_id),
                Lifecycle::IdentityOffboarded { identity } | Lifecycle::IdentityActivated { identity } => {
                    bounded("identity", identity)
                }
                Lifecycle::CredentialRevoked { credential_id } | Lifecycle::CredentialActivated { credential_id } => {
                    bounded("credential_id", credential_id)
                }
                Lifecycle::CredentialIssued { credential_id, identity, expires_at } => {
                    bounded("credential_id", credential_id)?;
                    bounded("identity", identity.as_deref().unwrap_or_default())?;
                    out_of_range("expires_at", *expires_at)
                }
            }
        }
        Record::Verdict(_) => Err(DecodeError::InvalidValue {
            field: "record".into(),
            reason: "verdicts come from the feedback topic, not the repartition topic".into(),
        }),
    }
}

fn check_limits(ev: &AccessEvent, limits: &Limits) -> Result<(), DecodeError> {
    let required = [("identity", &ev.identity), ("target", &ev.target), ("action", &ev.action)];
    let present = ev.region.as_ref().map(|region| ("region", region));
    for (field, value) in required.into_iter().chain(present) {
        if value.len() > limits.max_field_bytes {
            return Err(DecodeError::FieldTooLong { field, len: value.len(), max: limits.max_field_bytes });
        }
        // `trim().is_empty()`, decided at the first character that is not white space.
        if value.chars().all(char::is_whitespace) {
            return Err(DecodeError::InvalidValue {
                field: field.into(),
                reason: "is empty or only whitespace".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal record of each format that keeps a region, with `REGION` where it goes.
    /// Native twice: with an `event_id` it takes the fast path, without one the general path.
    const REGIONAL: [(Format, &str); 5] = [
        (Format::Native, r#"{"event_id":"e","time":1,"identity":"i","target":"t","action":"a","region":REGION}"#),
        (Format::Native, r#"{"time":1,"identity":"i","target":"t","action":"a","region":REGION}"#),
        (
            Format::Cloudtrail,
            r#"{"eventTime":"2026-03-02T10:00:00Z","eventSource":"s3","eventName":"Get","userIdentity":{"type":"IAMUser","arn":"u"},"awsRegion":REGION}"#,
        ),
        (
            Format::GcpAudit,
            r#"{"timestamp":"2026-03-02T10:00:00Z","resource":{"labels":{"location":REGION}},"protoPayload":{"authenticationInfo":{"principalEmail":"a@b.c"},"serviceName":"storage","methodName":"get"}}"#,
        ),
        (
            Format::Ocsf,
            r#"{"class_uid":6003,"time":1,"actor":{"user":{"uid":"u"}},"api":{"service":{"name":"s3"},"operation":"Get"},"cloud":{"provider":"AWS","region":REGION}}"#,
        ),
    ];

    fn region_of(format: Format, template: &str, region: &str) -> Result<Option<String>, String> {
        let line = template.replace("REGION", region);
        match decode_line(line.as_bytes(), format, &Limits::default()).as_slice() {
            [Ok(Record::Access(e))] => Ok(e.region.as_deref().map(str::to_string)),
            [Err(e)] => Err(e.to_string()),
            other => panic!("{format} {line}: {other:?}"),
        }
    }

    #[test]
    fn a_region_is_kept_bounded_and_not_blank_in_every_format() {
        let longest = format!("\"{}\"", "x".repeat(1024));
        let over = format!("\"{}\"", "x".repeat(1025));
        let cases: [(&str, Result<Option<String>, String>); 6] = [
            (r#""eu-west-1""#, Ok(Some("eu-west-1".into()))),
            ("null", Ok(None)),
            (r#""""#, Ok(None)),
            (longest.as_str(), Ok(Some("x".repeat(1024)))),
            (over.as_str(), Err("field `region` is 1025 bytes, over the limit of 1024".into())),
            (r#"" \t""#, Err("field `region`: is empty or only whitespace".into())),
        ];
        for (format, template) in REGIONAL {
            for (region, expected) in &cases {
                assert_eq!(&region_of(format, template, region), expected, "{format} {template} {region}");
            }
            // A record without the field at all has no region either.
            let absent = template.replace(",\"awsRegion\":REGION", "").replace(",\"region\":REGION", "");
            let absent = absent.replace("\"location\":REGION", "");
            assert!(!absent.contains("REGION"), "{absent}");
            assert_eq!(region_of(format, &absent, ""), Ok(None), "{format} {absent}");
        }
    }

    /// A fact is kept, so its names are bounded in every format, as the repartition topic's
    /// are: an over-long one is rejected on its own, and the call that stated it still counts.
    #[test]
    fn facts_from_logs_and_grants_are_bounded() {
        let deletion = |name: &str| {
            format!(
                r#"{{"eventTime":"2026-03-02T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"DeleteRole","recipientAccountId":"111122223333","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/admin"}},"requestParameters":{{"roleName":"{name}"}}}}"#
            )
        };
        let decoded = decode_line(deletion("deployer").as_bytes(), Format::Auto, &Limits::default());
        assert!(matches!(decoded.as_slice(), [Ok(Record::Access(_)), Ok(Record::Lifecycle { .. })]), "{decoded:?}");
        let decoded = decode_line(deletion(&"r".repeat(2000)).as_bytes(), Format::Auto, &Limits::default());
        match decoded.as_slice() {
            [Ok(Record::Access(_)), Err(DecodeError::FieldTooLong { field: "identity", .. })] => {}
            other => panic!("{other:?}"),
        }
        let revoked = format!(r#"{{"kind":"credential_revoked","time":1,"credential_id":"{}"}}"#, "k".repeat(1025));
        let decoded = decode_line(revoked.as_bytes(), Format::Grants, &Limits::default());
        assert!(
            matches!(decoded.as_slice(), [Err(DecodeError::FieldTooLong { field: "credential_id", .. })]),
            "{decoded:?}"
        );
        let grant = |resource: &str| {
            format!(
                r#"{{"kind":"grant","time":1,"grant_id":"g","identity":"ci","scope":{{"resources":["{resource}"]}}}}"#
            )
        };
        let decoded = decode_line(grant("arn:aws:s3:::b/*").as_bytes(), Format::Grants, &Limits::default());
        assert!(matches!(decoded.as_slice(), [Ok(Record::Lifecycle { .. })]), "{decoded:?}");
        let decoded = decode_line(grant(&"b".repeat(1025)).as_bytes(), Format::Grants, &Limits::default());
        assert!(matches!(decoded.as_slice(), [Err(DecodeError::FieldTooLong { field: "scope", .. })]), "{decoded:?}");
    }
}

/// Helpers shared by the decoders' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{fields::Obj, Decoded};
    use crate::model::{AccessEvent, Record};
    use serde_json::Value;

    /// Runs a decoder on a JSON object literal.
    pub fn run(decode: fn(&Obj) -> Decoded, input: Value) -> Decoded {
        decode(input.as_object().expect("test input is an object"))
    }

    /// The access event a decoder yields first; panics with what it yielded instead.
    pub fn first_access(decode: fn(&Obj) -> Decoded, input: Value) -> AccessEvent {
        match run(decode, input).into_iter().next() {
            Some(Ok(Record::Access(e))) => *e,
            other => panic!("expected an access event, got {other:?}"),
        }
    }

    /// `base` with each top-level field of `extra` set over it.
    pub fn with(mut base: Value, extra: Value) -> Value {
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        base
    }
}
