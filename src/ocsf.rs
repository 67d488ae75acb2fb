//! OCSF output: each alert as an OCSF 1.5.0 Detection Finding (class_uid 2004), so a
//! SIEM that speaks OCSF ingests it without a custom parser.
//!
//! The mapping is documented field by field in `docs/siem.md` and checked by
//! `schemas/ocsf-detection-finding.v1.schema.json`. What OCSF has no attribute for
//! (the delegation chain, OWASP NHI ids, our score) goes under `unmapped`.
//! The output depends on the alert alone: same alert, same bytes.

use crate::alert::{Alert, AlertStatus, IncidentStatus, Severity};
use crate::detect::OcsfKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::str::FromStr;

/// The OCSF schema version the findings follow (`metadata.version`). 1.5.0 is the
/// first version whose Detection Finding carries `anomaly_analyses`.
pub const OCSF_VERSION: &str = "1.5.0";

const CLASS_UID: u32 = 2004;
const CATEGORY_UID: u32 = 2;
/// Activities of a Detection Finding: a finding, and the first send of an
/// incident, are Create; later sends of an incident (same `finding_info.uid`)
/// are Update, and its last one Close.
fn activity(alert: &Alert) -> (u32, &'static str) {
    match alert.incident.as_ref().map(|i| i.status) {
        None | Some(IncidentStatus::Open) => (1, "Create"),
        Some(IncidentStatus::Updated) => (2, "Update"),
        Some(IncidentStatus::Closed) => (3, "Close"),
    }
}
/// Finding status (OCSF 1.5.0 `status_id`): 1 New, not yet reviewed by anyone; 3
/// Suppressed, a suppression rule said it is expected (the rule's name is `status_detail`).
fn status(alert: &Alert) -> (u32, &'static str) {
    match alert.status {
        None => (1, "New"),
        Some(AlertStatus::Suppressed) => (3, "Suppressed"),
    }
}

/// Observable type ids of OCSF 1.5.0 (`observable.type_id`).
const OBSERVABLE_HOSTNAME: (u32, &str) = (1, "Hostname");
const OBSERVABLE_IP_ADDRESS: (u32, &str) = (2, "IP Address");
const OBSERVABLE_USER_NAME: (u32, &str) = (4, "User Name");
const OBSERVABLE_CREDENTIAL: (u32, &str) = (19, "User Credential ID");

/// How alerts are written, on stdout, to a file, or to the Kafka alert topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// Our own flat alert (`schemas/alert.v1.schema.json`).
    #[default]
    Native,
    /// An OCSF Detection Finding (`schemas/ocsf-detection-finding.v1.schema.json`).
    Ocsf,
}

impl AlertFormat {
    pub const ALL: [AlertFormat; 2] = [AlertFormat::Native, AlertFormat::Ocsf];

    pub fn name(self) -> &'static str {
        match self {
            AlertFormat::Native => "native",
            AlertFormat::Ocsf => "ocsf",
        }
    }
}

impl fmt::Display for AlertFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AlertFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AlertFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown alert format `{s}`, expected `native` or `ocsf`"))
    }
}

/// One alert as one JSON line (without the newline) in the chosen format.
pub fn render(alert: &Alert, format: AlertFormat) -> String {
    match format {
        AlertFormat::Native => alert.to_json_line(),
        AlertFormat::Ocsf => to_ocsf(alert).to_string(),
    }
}

/// The alert as an OCSF Detection Finding, activity Create.
pub fn to_ocsf(alert: &Alert) -> Value {
    let time = epoch_ms(&alert.time);
    let (severity_id, severity) = severity(alert.severity);
    let (confidence_id, confidence) = confidence(alert.score);
    let kind = &alert.detector.spec().ocsf;
    let (activity_id, activity_name) = activity(alert);
    let (status_id, status_name) = status(alert);
    let mut finding = json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity_name}"),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status_name,
        "confidence_id": confidence_id,
        "confidence": confidence,
        // OCSF types the score as an integer; ours is 0..1, so it is given in percent.
        "confidence_score": (alert.score.clamp(0.0, 1.0) * 100.0).round() as i64,
        "is_alert": true,
        // Event time of the triggering call, never the wall clock: replay stays byte-identical.
        "time": time,
        "timezone_offset": 0,
        "message": alert.summary,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "overreach",
                "vendor_name": "overreach",
                "version": env!("CARGO_PKG_VERSION"),
            },
        },
        "finding_info": finding_info(alert, kind, time),
        "observables": observables(alert),
        "evidences": [evidence(alert)],
        "anomaly_analyses": [anomaly_analysis(alert, kind, time)],
        "remediation": { "desc": alert.recommended_action },
        "unmapped": unmapped(alert),
    });
    if let Some(rule) = &alert.suppression_rule {
        finding["status_detail"] = rule.as_str().into();
    }
    finding
}

fn finding_info(alert: &Alert, kind: &OcsfKind, time: i64) -> Value {
    // Learned detectors judge behaviour against a baseline; declared ones apply a rule.
    let (type_id, analytic_type) = if alert.detector.is_learned() { (2, "Behavioral") } else { (1, "Rule") };
    let related: Vec<Value> = alert.event_ids.iter().map(|id| json!({ "uid": id })).collect();
    json!({
        "uid": alert.alert_id,
        "title": kind.title,
        "desc": alert.summary,
        "analytic": {
            "type_id": type_id,
            "type": analytic_type,
            "name": alert.detector.name(),
            "uid": alert.detector.name(),
        },
        "attacks": alert.attack.iter().map(|id| attack(id)).collect::<Vec<_>>(),
        "related_events": related,
        // A finding is one call, first and last seen at its event time; an
        // incident spans its episode.
        "first_seen_time": alert.incident.as_ref().map_or(time, |i| epoch_ms(&i.started)),
        "last_seen_time": alert.incident.as_ref().map_or(time, |i| epoch_ms(&i.last_evidence)),
    })
}

/// Names and tactics of the ATT&CK Enterprise techniques the detectors map to.
const TECHNIQUE_NAMES: &[(&str, &str)] = &[
    ("T1078", "Valid Accounts"),
    ("T1078.004", "Cloud Accounts"),
    ("T1526", "Cloud Service Discovery"),
    ("T1530", "Data from Cloud Storage"),
    ("T1535", "Unused/Unsupported Cloud Regions"),
    ("T1550", "Use Alternate Authentication Material"),
    ("T1550.001", "Application Access Token"),
    ("T1580", "Cloud Infrastructure Discovery"),
    ("T1619", "Cloud Storage Object Discovery"),
];
const TECHNIQUE_TACTICS: &[(&str, &[&str])] = &[
    ("T1078", &["TA0001", "TA0003", "TA0004", "TA0005"]),
    ("T1526", &["TA0007"]),
    ("T1530", &["TA0009"]),
    ("T1535", &["TA0005"]),
    ("T1550", &["TA0005", "TA0008"]),
    ("T1580", &["TA0007"]),
    ("T1619", &["TA0007"]),
];
const TACTIC_NAMES: &[(&str, &str)] = &[
    ("TA0001", "Initial Access"),
    ("TA0003", "Persistence"),
    ("TA0004", "Privilege Escalation"),
    ("TA0005", "Defense Evasion"),
    ("TA0007", "Discovery"),
    ("TA0008", "Lateral Movement"),
    ("TA0009", "Collection"),
];

fn lookup<V: Copy>(table: &[(&str, V)], key: &str) -> Option<V> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// `{"uid": ..., "name": ...}`, the name left out when the table does not know the id.
fn named(uid: &str, names: &[(&str, &str)]) -> Value {
    let mut object = Map::new();
    object.insert("uid".into(), uid.into());
    put(&mut object, "name", lookup(names, uid));
    Value::Object(object)
}

/// One OCSF `attack`: a sub-technique id (`T1078.004`) is given with its parent technique.
fn attack(id: &str) -> Value {
    let technique = id.split('.').next().unwrap_or(id);
    let mut attack = Map::new();
    attack.insert("technique".into(), named(technique, TECHNIQUE_NAMES));
    if technique != id {
        attack.insert("sub_technique".into(), named(id, TECHNIQUE_NAMES));
    }
    let tactics = lookup(TECHNIQUE_TACTICS, technique).unwrap_or_default();
    if !tactics.is_empty() {
        attack.insert("tactics".into(), tactics.iter().map(|t| named(t, TACTIC_NAMES)).collect());
    }
    Value::Object(attack)
}

/// Pivots a SIEM indexes: each points at the attribute of this finding that holds the value.
fn observables(alert: &Alert) -> Vec<Value> {
    let mut out = vec![observable("evidences.actor.user.name", OBSERVABLE_USER_NAME, &alert.identity)];
    if let Some(delegator) = &alert.on_behalf_of {
        out.push(observable("unmapped.on_behalf_of", OBSERVABLE_USER_NAME, delegator));
    }
    match alert.event.source_ip.as_deref().map(Source::of) {
        Some(Source::Ip(ip)) => out.push(observable("evidences.src_endpoint.ip", OBSERVABLE_IP_ADDRESS, ip)),
        Some(Source::Hostname(host)) => {
            out.push(observable("evidences.src_endpoint.hostname", OBSERVABLE_HOSTNAME, host))
        }
        Some(Source::Other(_)) | None => {}
    }
    if let Some(credential) = &alert.event.credential_id {
        out.push(observable("evidences.actor.session.credential_uid", OBSERVABLE_CREDENTIAL, credential));
    }
    out
}

/// A call's source as OCSF can hold it. CloudTrail's `sourceIPAddress` is not always
/// an address: a call an AWS service made names the service (`ec2.amazonaws.com`), and
/// some calls say `AWS Internal`. Only an address goes to `src_endpoint.ip`; a DNS name
/// is the endpoint's fully qualified name (`hostname`); anything else has no OCSF
/// attribute and goes under `unmapped.source_ip`.
enum Source<'a> {
    Ip(&'a str),
    Hostname(&'a str),
    Other(&'a str),
}

impl Source<'_> {
    fn of(source: &str) -> Source<'_> {
        if source.parse::<std::net::IpAddr>().is_ok() {
            Source::Ip(source)
        } else if is_dns_name(source) {
            Source::Hostname(source)
        } else {
            Source::Other(source)
        }
    }
}

/// A fully qualified DNS name (RFC 1123): dot-separated labels of letters, digits and
/// inner hyphens, 63 bytes each, 253 in all, with a top-level label that is not a number.
fn is_dns_name(name: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| label_ok(label))
        && !labels[labels.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

fn observable(name: &str, (type_id, type_name): (u32, &str), value: &str) -> Value {
    json!({ "name": name, "type_id": type_id, "type": type_name, "value": value })
}

/// The triggering call: who (actor), what (api, resources), from where (src_endpoint).
fn evidence(alert: &Alert) -> Value {
    let event = &alert.event;
    let mut user = Map::new();
    user.insert("name".into(), alert.identity.as_str().into());
    // OCSF 1.5.0 has no user type for a machine identity: Other, with the log's own name.
    if let Some(identity_type) = &alert.identity_type {
        user.insert("type_id".into(), 99.into());
        user.insert("type".into(), identity_type.as_str().into());
    }
    let mut actor = Map::new();
    actor.insert("user".into(), Value::Object(user));
    let mut session = Map::new();
    put(&mut session, "uid", event.session_id.as_deref());
    put(&mut session, "credential_uid", event.credential_id.as_deref());
    if !session.is_empty() {
        actor.insert("session".into(), Value::Object(session));
    }

    let mut evidence = Map::new();
    evidence.insert("actor".into(), Value::Object(actor));
    evidence.insert("api".into(), json!({ "operation": event.action, "service": { "name": event.target } }));
    let endpoint = match event.source_ip.as_deref().map(Source::of) {
        Some(Source::Ip(ip)) => Some(json!({ "ip": ip })),
        Some(Source::Hostname(host)) => Some(json!({ "hostname": host })),
        Some(Source::Other(_)) | None => None,
    };
    put(&mut evidence, "src_endpoint", endpoint);
    if let Some(resource) = &event.resource {
        evidence.insert("resources".into(), json!([{ "uid": resource }]));
    }
    if let Some(user_agent) = &event.user_agent {
        evidence.insert("http_request".into(), json!({ "user_agent": user_agent }));
    }
    Value::Object(evidence)
}

/// The why of the alert: the identity's baseline next to what it did now.
fn anomaly_analysis(alert: &Alert, kind: &OcsfKind, time: i64) -> Value {
    let evidence = &alert.evidence;
    let measured = |observation: Map<String, Value>, pattern: Option<&str>| {
        let mut measured = Map::new();
        measured.insert("observation_parameter".into(), kind.parameter.into());
        put(&mut measured, "observation_type", kind.observation_type);
        put(&mut measured, "observed_pattern", pattern);
        measured.insert("observations".into(), json!([observation]));
        Value::Object(measured)
    };

    let mut observed = Map::new();
    observed.insert("value".into(), observation_value(&evidence.observed).into());
    // The window the observation covers ends at the triggering call (a burst's window, a dormant silence).
    if let Some(window_s) = evidence.window_s {
        observed.insert("timespan".into(), json!({ "start_time": time - window_s * 1_000, "end_time": time }));
    }

    let mut baseline = Map::new();
    baseline.insert("value".into(), observation_value(&evidence.baseline).into());
    put(&mut baseline, "count", evidence.history_events);
    let mut span = Map::new();
    put(&mut span, "start_time", evidence.history_since.as_deref().or(evidence.first_seen.as_deref()).map(epoch_ms));
    put(&mut span, "end_time", evidence.last_seen.as_deref().map(epoch_ms));
    if !span.is_empty() {
        baseline.insert("timespan".into(), Value::Object(span));
    }

    json!({
        "analysis_targets": [{ "name": alert.identity, "type": "Machine Identity" }],
        "anomalies": [measured(observed, kind.observed_pattern)],
        "baselines": [measured(baseline, None)],
    })
}

/// OCSF observation values are strings: a string is kept, anything else is compact JSON.
fn observation_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What OCSF has no attribute for, under our own names.
fn unmapped(alert: &Alert) -> Value {
    let mut unmapped = Map::new();
    unmapped.insert("detector".into(), alert.detector.name().into());
    unmapped.insert("score".into(), alert.score.into());
    unmapped.insert("chain".into(), alert.chain.clone().into());
    put(&mut unmapped, "on_behalf_of", alert.on_behalf_of.as_deref());
    unmapped.insert("owasp_nhi".into(), alert.owasp_nhi.clone().into());
    unmapped.insert("suppressed_repeats".into(), alert.suppressed_repeats.into());
    unmapped.insert("source".into(), alert.source.as_str().into());
    put(&mut unmapped, "environment", alert.event.environment.as_deref());
    // OCSF's `cloud.region` sits in a `cloud` object whose `provider` is required, and an
    // alert does not know its provider (a native log need not say): the region is unmapped.
    put(&mut unmapped, "region", alert.event.region.as_deref());
    put(&mut unmapped, "grant_id", alert.event.grant_id.as_deref());
    unmapped.insert("outcome".into(), json!(alert.event.outcome));
    put(&mut unmapped, "probability", alert.evidence.probability);
    put(&mut unmapped, "peers", alert.evidence.peers.clone());
    if let Some(Source::Other(source)) = alert.event.source_ip.as_deref().map(Source::of) {
        unmapped.insert("source_ip".into(), source.into());
    }
    if !alert.truncated.is_empty() {
        unmapped.insert("truncated".into(), alert.truncated.clone().into());
    }
    if let Some(incident) = &alert.incident {
        unmapped.insert("incident".into(), json!(incident));
    }
    // OCSF has no attribute for an analyst's standing verdict on the actor.
    if let Some(compromised) = &alert.compromised {
        unmapped.insert("compromised".into(), json!(compromised));
    }
    Value::Object(unmapped)
}

/// Inserts `value` only when present: OCSF leaves unknown attributes out rather than null.
fn put<V: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<V>) {
    if let Some(value) = value {
        map.insert(key.into(), value.into());
    }
}

/// Alert times are written by `time::format_rfc3339`, which falls back to bare epoch
/// milliseconds outside chrono's range; both forms parse here.
fn epoch_ms(time: &str) -> i64 {
    crate::time::parse_json_time(&Value::String(time.to_owned())).unwrap_or_default()
}

fn severity(severity: Severity) -> (u32, &'static str) {
    match severity {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// OCSF confidence levels from our score, cut where severity turns Medium and High.
fn confidence(score: f64) -> (u32, &'static str) {
    match score {
        s if s >= 0.8 => (3, "High"),
        s if s >= 0.6 => (2, "Medium"),
        _ => (1, "Low"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_format_round_trips_by_name() {
        for format in AlertFormat::ALL {
            assert_eq!(format.to_string().parse::<AlertFormat>(), Ok(format));
            assert_eq!(serde_json::to_value(format).unwrap(), json!(format.name()));
        }
        assert!("OCSF".parse::<AlertFormat>().is_err());
        assert_eq!(AlertFormat::default(), AlertFormat::Native);
    }

    #[test]
    fn sub_technique_carries_its_parent_and_tactics() {
        let attack = attack("T1078.004");
        assert_eq!(attack["technique"], json!({ "uid": "T1078", "name": "Valid Accounts" }));
        assert_eq!(attack["sub_technique"], json!({ "uid": "T1078.004", "name": "Cloud Accounts" }));
        assert_eq!(attack["tactics"].as_array().unwrap().len(), 4);
        // An id outside the table still yields a valid attack, by uid alone.
        assert_eq!(super::attack("T9999"), json!({ "technique": { "uid": "T9999" } }));
    }

    #[test]
    fn confidence_follows_the_severity_cut_points() {
        let table = [(0.0, 1), (0.59, 1), (0.6, 2), (0.79, 2), (0.8, 3), (1.0, 3)];
        for (score, expected) in table {
            assert_eq!(confidence(score).0, expected, "score {score}");
        }
    }

    #[test]
    fn only_an_address_is_an_ip_and_only_a_dns_name_a_hostname() {
        let cases = [
            ("203.0.113.7", "ip"),
            ("2001:db8::7", "ip"),
            ("ec2.amazonaws.com", "hostname"),
            ("build-7.ci.example.com", "hostname"),
            ("AWS Internal", "other"),
            ("localhost", "other"),
            ("10.0.0", "other"),
            ("1.2.3.4.5", "other"),
            ("-bad.example.com", "other"),
            ("fe80::1%eth0", "other"),
            ("", "other"),
        ];
        for (source, expected) in cases {
            let kind = match Source::of(source) {
                Source::Ip(_) => "ip",
                Source::Hostname(_) => "hostname",
                Source::Other(_) => "other",
            };
            assert_eq!(kind, expected, "{source:?}");
        }
    }

    #[test]
    fn epoch_ms_reads_both_time_forms() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.500Z"), 1_500);
        assert_eq!(epoch_ms("1500"), 1_500);
    }
}
