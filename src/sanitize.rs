//! The one step every alert passes before it leaves the engine, so replay, the
//! Kafka service and both output formats get it alike: every string that
//! carries text from a log has its secrets redacted (`redact`) and its control
//! characters escaped (`text::escape_control`), then is cut to a bound
//! (`text::truncate`), and every list is cut to a number of items.
//! The alert says which fields were cut in `truncated`.
//!
//! Why: an alert repeats its fields (summary, evidence, and up to four times in
//! OCSF), so one 400 KB `resource` made a 1.2 MB alert that no broker took.
//! With these bounds an alert stays under a fixed size whatever the input
//! (see `docs/alerts.md`). The bounds are far above anything ordinary, so an
//! ordinary alert comes out byte for byte as it went in.
//!
//! Fields the engine writes itself (ids, detector, time, ATT&CK and OWASP ids,
//! recommended action, evidence keys and numbers) are left as they are.
//! `alert_id` is computed before, from the identity and event id as logged.

use crate::alert::Alert;
use crate::redact::redact;
use crate::text::{escape_control, truncate};
use serde_json::Value;
use std::borrow::Cow;

/// Ids of events, sessions, grants and credentials; targets, actions,
/// environments, regions, source addresses and identity types.
pub const ID_MAX_BYTES: usize = 256;
/// Principals: the identity, its delegator and each hop of the chain (long
/// ARNs with paths, federated subjects).
pub const PRINCIPAL_MAX_BYTES: usize = 512;
/// Free text from a log: resource, user agent, where the event was read, and
/// each string inside `evidence`.
pub const TEXT_MAX_BYTES: usize = 1024;
pub const SUMMARY_MAX_BYTES: usize = 2048;
/// Items of a list (`chain`, a finding's `event_ids`, arrays inside `evidence`); a cut list
/// ends with a marker item `…[truncated N items]` within this count.
pub const MAX_ITEMS: usize = 16;
/// Each of `evidence.observed`, `evidence.baseline` and `evidence.peers` as
/// compact JSON; past it the member becomes that JSON as a cut string.
pub const EVIDENCE_MAX_BYTES: usize = 4096;
/// An incident repeats each signal's summary, observed and baseline (at most
/// one signal per detector), so each is held to a quarter of its bound there:
/// the incident's own summary and evidence already tell the lead signal whole.
pub const SIGNAL_SUMMARY_MAX_BYTES: usize = SUMMARY_MAX_BYTES / 4;
pub const SIGNAL_EVIDENCE_MAX_BYTES: usize = EVIDENCE_MAX_BYTES / 4;

/// Redacts and bounds `alert` in place and lists the fields it cut.
/// Cuts already listed stay listed, so an alert made from sanitized ones (an
/// incident) still says what its parts lost.
pub fn sanitize(alert: &mut Alert) {
    cut(alert, |cuts, alert| {
        cuts.call(alert);
        cuts.finding(alert);
        for signal in alert.incident.iter_mut().flat_map(|i| i.signals.iter_mut()) {
            cuts.text("incident.signals.summary", &mut signal.summary, SIGNAL_SUMMARY_MAX_BYTES);
            cuts.text("incident.signals.event_id", &mut signal.event_id, ID_MAX_BYTES);
            cuts.evidence_within("incident.signals.observed", &mut signal.observed, SIGNAL_EVIDENCE_MAX_BYTES);
            cuts.evidence_within("incident.signals.baseline", &mut signal.baseline, SIGNAL_EVIDENCE_MAX_BYTES);
        }
        if let Some(mark) = &mut alert.compromised {
            cuts.text("compromised.by", &mut mark.by, ID_MAX_BYTES);
        }
    });
}

/// `sanitize` of the fields an alert takes from its call (the identity, the event and
/// where it was read): what every finding of one call shares, done once per call.
pub fn sanitize_call(alert: &mut Alert) {
    cut(alert, Cuts::call);
}

/// `sanitize` of the fields an alert takes from its finding (summary and evidence), for an
/// alert made from a call's already sanitized (`sanitize_call`): together the two cut and
/// list exactly what `sanitize` would.
pub fn sanitize_finding(alert: &mut Alert) {
    cut(alert, Cuts::finding);
}

/// Runs `visit` over `alert` with the cuts it already lists, and lists them with the new.
fn cut(alert: &mut Alert, visit: impl FnOnce(&mut Cuts, &mut Alert)) {
    let mut cuts = Cuts { fields: std::mem::take(&mut alert.truncated) };
    visit(&mut cuts, alert);
    alert.truncated = cuts.fields;
}

/// The fields cut so far, each named once by its path in the native alert
/// (array items by the array's path), in the order they were visited.
#[derive(Default)]
struct Cuts {
    fields: Vec<String>,
}

impl Cuts {
    fn call(&mut self, alert: &mut Alert) {
        self.text("identity", &mut alert.identity, PRINCIPAL_MAX_BYTES);
        self.optional("identity_type", &mut alert.identity_type, ID_MAX_BYTES);
        self.optional("on_behalf_of", &mut alert.on_behalf_of, PRINCIPAL_MAX_BYTES);
        self.list("chain", &mut alert.chain, MAX_ITEMS, PRINCIPAL_MAX_BYTES);
        // A finding names one event; an incident the first `incident::MAX_EVENT_IDS`
        // of its evidence (its `events` counts them all).
        let max_ids = if alert.incident.is_some() { crate::incident::MAX_EVENT_IDS } else { MAX_ITEMS };
        self.list("event_ids", &mut alert.event_ids, max_ids, ID_MAX_BYTES);

        let event = &mut alert.event;
        self.text("event.target", &mut event.target, ID_MAX_BYTES);
        self.text("event.action", &mut event.action, ID_MAX_BYTES);
        self.optional("event.resource", &mut event.resource, TEXT_MAX_BYTES);
        self.optional("event.environment", &mut event.environment, ID_MAX_BYTES);
        self.optional("event.region", &mut event.region, ID_MAX_BYTES);
        self.optional("event.session_id", &mut event.session_id, ID_MAX_BYTES);
        self.optional("event.grant_id", &mut event.grant_id, ID_MAX_BYTES);
        self.optional("event.credential_id", &mut event.credential_id, ID_MAX_BYTES);
        self.optional("event.source_ip", &mut event.source_ip, ID_MAX_BYTES);
        self.optional("event.user_agent", &mut event.user_agent, TEXT_MAX_BYTES);
        self.text("source", &mut alert.source, TEXT_MAX_BYTES);
    }

    fn finding(&mut self, alert: &mut Alert) {
        self.text("summary", &mut alert.summary, SUMMARY_MAX_BYTES);
        let evidence = &mut alert.evidence;
        self.evidence("evidence.observed", &mut evidence.observed);
        self.evidence("evidence.baseline", &mut evidence.baseline);
        if let Some(peers) = &mut evidence.peers {
            self.evidence("evidence.peers", peers);
        }
    }

    fn note(&mut self, path: &str) {
        if !self.fields.iter().any(|f| f == path) {
            self.fields.push(path.to_string());
        }
    }

    /// Redaction first, so that a secret is found whole, never half cut. Control
    /// characters are escaped for whoever prints the alert's text (`jq -r`, a
    /// ticket), and so that the bound holds in JSON too, where a raw one costs six bytes.
    fn text(&mut self, path: &str, text: &mut String, max_bytes: usize) {
        if let Cow::Owned(clean) = redact(text) {
            *text = clean;
        }
        if let Cow::Owned(escaped) = escape_control(text) {
            *text = escaped;
        }
        if let Some(cut) = truncate(text, max_bytes) {
            *text = cut;
            self.note(path);
        }
    }

    fn optional(&mut self, path: &str, text: &mut Option<String>, max_bytes: usize) {
        if let Some(text) = text {
            self.text(path, text, max_bytes);
        }
    }

    fn list(&mut self, path: &str, items: &mut Vec<String>, max_items: usize, max_bytes: usize) {
        if let Some(marker) = cut_items(items, max_items) {
            items.push(marker);
            self.note(path);
        }
        for item in items {
            self.text(path, item, max_bytes);
        }
    }

    fn evidence(&mut self, path: &str, member: &mut Value) {
        self.evidence_within(path, member, EVIDENCE_MAX_BYTES);
    }

    fn evidence_within(&mut self, path: &str, member: &mut Value, max_bytes: usize) {
        self.value(&mut path.to_string(), member);
        if json_len(member) > max_bytes {
            let cut = truncate(&member.to_string(), max_bytes).expect("it is longer than the bound");
            *member = Value::String(cut);
            self.note(path);
        }
    }

    /// `path` is the value's, and is given back as it came: each member's key is appended
    /// for its visit and taken off after, rather than a path made per member.
    fn value(&mut self, path: &mut String, value: &mut Value) {
        match value {
            Value::String(text) => self.text(path, text, TEXT_MAX_BYTES),
            Value::Array(items) => {
                if let Some(marker) = cut_items(items, MAX_ITEMS) {
                    items.push(Value::String(marker));
                    self.note(path);
                }
                for item in items {
                    self.value(path, item);
                }
            }
            Value::Object(members) => {
                let len = path.len();
                for (key, member) in members.iter_mut() {
                    path.push('.');
                    path.push_str(key);
                    self.value(path, member);
                    path.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// The length of `value` as compact JSON, counted as it is written, not kept.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("a JSON value always serializes");
    count.0
}

/// Keeps the first `MAX_ITEMS - 1` items of a longer list and returns the
/// marker that takes the last place.
fn cut_items<T>(items: &mut Vec<T>, max_items: usize) -> Option<String> {
    if items.len() <= max_items {
        return None;
    }
    let dropped = items.len() - (max_items - 1);
    items.truncate(max_items - 1);
    Some(format!("…[truncated {dropped} items]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertEvent, Evidence, Severity};
    use crate::detect;
    use serde_json::json;

    fn alert() -> Alert {
        Alert {
            alert_id: "0".repeat(32),
            detector: detect::novel_call::SPEC.detector(),
            severity: Severity::High,
            score: 0.9,
            time: "2026-03-02T00:00:00Z".into(),
            identity: "arn:aws:iam::111122223333:role/ci".into(),
            identity_type: Some("AssumedRole".into()),
            on_behalf_of: None,
            chain: vec!["github-actions".into()],
            event_ids: vec!["e1".into()],
            event: AlertEvent {
                target: "s3.amazonaws.com".into(),
                action: "GetObject".into(),
                resource: Some("arn:aws:s3:::b/k".into()),
                region: Some("eu-west-1".into()),
                ..AlertEvent::default()
            },
            source: "in.jsonl:1".into(),
            summary: "arn:aws:iam::111122223333:role/ci made a call.".into(),
            evidence: Evidence {
                observed: json!({ "call": "s3.amazonaws.com GetObject", "chain": ["github-actions"] }),
                baseline: json!({ "top_calls": ["s3.amazonaws.com PutObject"], "known_calls": 3 }),
                ..Evidence::default()
            },
            owasp_nhi: vec!["NHI5:2025".into()],
            attack: vec!["T1078.004".into()],
            recommended_action: "Confirm.".into(),
            suppressed_repeats: 0,
            truncated: Vec::new(),
            incident: None,
            status: None,
            suppression_rule: None,
            compromised: None,
        }
    }

    #[test]
    fn an_ordinary_alert_is_left_exactly_as_it_is() {
        let mut sanitized = alert();
        sanitize(&mut sanitized);
        assert_eq!(sanitized, alert());
        assert!(!sanitized.to_json_line().contains("truncated"));
    }

    /// An alert with every field of its call and of its finding past its bound.
    fn long_alert() -> Alert {
        let long = |n: usize| "x".repeat(n);
        let mut a = alert();
        a.identity = long(5_000);
        a.chain = (0..100).map(|i| format!("hop-{i}")).collect();
        a.chain[0] = long(5_000);
        a.event.resource = Some(long(400_000));
        a.event.user_agent = Some(long(400_000));
        a.event.region = Some(long(400_000));
        a.event.session_id = Some(long(400_000));
        a.summary = long(400_000);
        // Keys in sorted order: the visiting order is the same whether or not serde_json keeps insertion order.
        a.evidence.observed = json!({ "many": (0..1000).collect::<Vec<_>>(), "resource": long(400_000) });
        a.evidence.baseline = json!({ "grants": (0..MAX_ITEMS).map(|_| json!({ "scope": vec![long(2_000); MAX_ITEMS] })).collect::<Vec<_>>() });
        a
    }

    #[test]
    fn every_long_field_is_cut_to_its_bound_and_named() {
        let mut a = long_alert();
        sanitize(&mut a);

        assert!(a.identity.len() <= PRINCIPAL_MAX_BYTES && a.identity.ends_with("…[truncated 4520 bytes]"));
        assert_eq!(a.chain.len(), MAX_ITEMS);
        assert_eq!(a.chain[MAX_ITEMS - 1], "…[truncated 85 items]");
        assert!(a.chain[0].len() <= PRINCIPAL_MAX_BYTES && a.chain[1] == "hop-1");
        assert!(a.event.resource.as_ref().unwrap().len() <= TEXT_MAX_BYTES);
        assert!(a.event.user_agent.as_ref().unwrap().len() <= TEXT_MAX_BYTES);
        assert!(a.event.region.as_ref().unwrap().len() <= ID_MAX_BYTES);
        assert!(a.event.session_id.as_ref().unwrap().len() <= ID_MAX_BYTES);
        assert!(a.summary.len() <= SUMMARY_MAX_BYTES);
        let many = a.evidence.observed["many"].as_array().unwrap();
        assert_eq!((many.len(), &many[MAX_ITEMS - 1]), (MAX_ITEMS, &json!("…[truncated 985 items]")));
        assert!(a.evidence.observed["resource"].as_str().unwrap().len() <= TEXT_MAX_BYTES);
        // Too much even with every string and list cut: the member becomes its cut JSON.
        assert!(a
            .evidence
            .baseline
            .as_str()
            .is_some_and(|s| s.len() <= EVIDENCE_MAX_BYTES && s.starts_with("{\"grants\"")));
        assert_eq!(
            a.truncated,
            [
                "identity",
                "chain",
                "event.resource",
                "event.region",
                "event.session_id",
                "event.user_agent",
                "summary",
                "evidence.observed.many",
                "evidence.observed.resource",
                "evidence.baseline.grants.scope",
                "evidence.baseline",
            ]
        );
    }

    /// The engine sanitizes a call's part once and each finding's part on its own.
    #[test]
    fn a_call_then_its_finding_sanitize_as_the_whole_alert_does() {
        let mut whole = long_alert();
        whole.event.user_agent = Some("curl Authorization: Bearer R7kQ2mVx9Lp4Wz8Nn3Ys".into());
        let mut parts = whole.clone();
        sanitize(&mut whole);
        sanitize_call(&mut parts);
        assert!(parts.summary.len() > SUMMARY_MAX_BYTES, "the finding's part is left to sanitize_finding");
        sanitize_finding(&mut parts);
        assert_eq!(parts, whole);
        assert!(whole.truncated.len() > 5 && whole.event.user_agent.unwrap().contains("[redacted:"));
    }

    #[test]
    fn secrets_are_redacted_before_the_cut() {
        let mut a = alert();
        // The token sits across the bound: cut first, its head would survive.
        let head = "x".repeat(TEXT_MAX_BYTES - 40);
        a.event.user_agent = Some(format!("{head} Bearer {}", "A".repeat(2_000)));
        a.chain = vec!["eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig".into()];
        a.evidence.observed = json!({ "resource": "s3://b/k?X-Amz-Signature=abcdef" });
        sanitize(&mut a);
        let ua = a.event.user_agent.as_deref().unwrap();
        assert!(ua.ends_with(" Bearer [redacted:authorization]") && !ua.contains("AAAA"), "{ua}");
        assert_eq!(a.chain, ["[redacted:jwt]"]);
        assert_eq!(a.evidence.observed["resource"], "s3://b/k?X-Amz-Signature=[redacted:signature]");
        assert!(a.truncated.is_empty(), "{:?}", a.truncated);
    }
}
