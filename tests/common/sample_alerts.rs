//! Alerts built through the real types, one or more per detector, for tests that check
//! the alert's shape rather than the detection that produced it.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use overreach::alert::{alert_id, Alert, AlertEvent, Evidence, Severity};
use overreach::detect::{self, Detector};
use overreach::model::Outcome;
use overreach::time::{format_rfc3339, parse_rfc3339, DAY, HOUR};
use serde_json::json;

/// An alert of `detector` with every optional field filled, as a busy delegated identity
/// in AWS would produce it.
pub fn full(detector: Detector) -> Alert {
    let time = parse_rfc3339("2026-03-04T02:17:45.250Z").expect("fixture time");
    let identity = "arn:aws:iam::111122223333:role/ci-deployer";
    let event_id = format!("evt-{}", detector.name());
    let score = if detector.is_learned() { 0.87 } else { 1.0 };
    Alert {
        alert_id: alert_id(detector, identity, &event_id),
        detector,
        severity: Severity::from_score(score),
        score,
        time: format_rfc3339(time),
        identity: identity.into(),
        identity_type: Some("AssumedRole".into()),
        on_behalf_of: Some("repo:acme/payments:ref:refs/heads/main".into()),
        chain: vec!["token.actions.githubusercontent.com".into(), identity.into()],
        event_ids: vec![event_id],
        event: AlertEvent {
            target: "iam.amazonaws.com".into(),
            action: "CreateUser".into(),
            resource: Some("arn:aws:iam::111122223333:user/backdoor".into()),
            environment: Some("prod".into()),
            region: Some("us-east-1".into()),
            session_id: Some("run-4711".into()),
            grant_id: Some("grant-ci-deploy".into()),
            credential_id: Some("ASIAEXAMPLEKEYID0001".into()),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("aws-cli/2.15.0".into()),
            outcome: Outcome::Success,
        },
        source: "tests/fixtures/native.jsonl:42".into(),
        summary: format!("{identity} triggered {detector} when it called iam.amazonaws.com CreateUser."),
        evidence: evidence(detector, time),
        owasp_nhi: detector.spec().owasp_nhi.iter().map(|s| s.to_string()).collect(),
        attack: detector.spec().attack.iter().map(|s| s.to_string()).collect(),
        recommended_action: detector.spec().recommended_action.into(),
        suppressed_repeats: 3,
        truncated: vec![],
        incident: None,
        status: None,
        suppression_rule: None,
        compromised: None,
    }
}

/// An alert of `detector` with every optional field empty: what a sparse log gives.
pub fn sparse(detector: Detector) -> Alert {
    Alert {
        identity_type: None,
        on_behalf_of: None,
        chain: vec![],
        event: AlertEvent { target: "s3.amazonaws.com".into(), action: "GetObject".into(), ..AlertEvent::default() },
        evidence: Evidence {
            observed: json!("s3.amazonaws.com GetObject"),
            baseline: json!(null),
            ..Evidence::default()
        },
        suppressed_repeats: 0,
        ..full(detector)
    }
}

/// Every detector, full and sparse.
pub fn all() -> Vec<Alert> {
    detect::REGISTRY.iter().copied().flat_map(|d| [full(d), sparse(d)]).collect()
}

fn evidence(detector: Detector, time: i64) -> Evidence {
    let learned = Evidence {
        observed: json!({ "call": "iam.amazonaws.com CreateUser" }),
        baseline: json!({
            "distinct_calls": 6,
            "top_calls": ["s3.amazonaws.com PutObject", "ecr.amazonaws.com PutImage"],
        }),
        probability: Some(0.0004),
        history_events: Some(10_000),
        history_since: Some(format_rfc3339(time - 30 * DAY)),
        first_seen: None,
        last_seen: Some(format_rfc3339(time - HOUR)),
        window_s: None,
        peers: Some(json!({ "identities": 12, "made_this_call": 0 })),
    };
    match detector.name() {
        "fanout_burst" | "volume_spike" => Evidence {
            observed: json!({ "calls": 950, "distinct_resources": 240 }),
            baseline: json!({ "calls_p99": 40, "distinct_resources_p99": 8 }),
            window_s: Some(300),
            ..learned
        },
        "dormant_reactivation" => Evidence {
            observed: json!({ "silence_s": 90 * DAY / 1000 }),
            baseline: json!({ "usual_silence_s_p99": 2 * DAY / 1000 }),
            first_seen: Some(format_rfc3339(time - 400 * DAY)),
            last_seen: Some(format_rfc3339(time - 90 * DAY)),
            ..learned
        },
        _ if detector.is_learned() => learned,
        _ => Evidence {
            observed: json!({ "call": "iam.amazonaws.com CreateUser", "at": format_rfc3339(time) }),
            baseline: json!({ "grant_id": "grant-ci-deploy", "scope": { "targets": ["s3.amazonaws.com"] } }),
            ..Evidence::default()
        },
    }
}

/// Alerts of the real engine on a small made-up history: ten days of one routine call,
/// then calls that break a grant, use an expired credential, and act after the grant ended.
pub fn from_engine() -> Vec<Alert> {
    use overreach::engine::{AlertMode, Engine, EngineConfig};
    use overreach::model::{AccessEvent, Grant, GrantEndReason, Lifecycle, Origin, Record, Scope};

    let start = parse_rfc3339("2026-03-02T00:00:00Z").expect("fixture time");
    let identity = "svc-reporting";
    let call = |n: usize, time: i64, target: &str, action: &str, ip: &str| {
        Record::Access(Box::new(AccessEvent {
            event_id: format!("e{n}").into(),
            time,
            identity: identity.into(),
            on_behalf_of: Some("finance-team".into()),
            credential_id: Some("AKIAEXAMPLE".into()),
            target: target.into(),
            action: action.into(),
            source_ip: Some(ip.into()),
            region: Some("eu-west-1".into()),
            ..AccessEvent::default()
        }))
    };
    let grant = Grant {
        grant_id: "g-report".into(),
        identity: identity.into(),
        on_behalf_of: Some("finance-team".into()),
        scope: Scope { targets: vec!["s3.amazonaws.com".into()], ..Scope::default() },
        not_before: None,
        expires_at: None,
        windows: vec![],
    };
    let mut records =
        vec![Record::Lifecycle { time: start, event_id: "grant".into(), fact: Box::new(Lifecycle::Grant(grant)) }];
    let routine = 10 * 24;
    records.extend((0..routine).map(|h| call(h, start + h as i64 * HOUR, "s3.amazonaws.com", "GetObject", "10.0.0.5")));
    let now = start + routine as i64 * HOUR;
    records.push(call(routine, now, "iam.amazonaws.com", "CreateUser", "198.51.100.9"));
    if let Record::Access(mut expired) = call(routine + 1, now + HOUR, "s3.amazonaws.com", "GetObject", "10.0.0.5") {
        expired.credential_id = Some("ASIAEXPIRED".into());
        expired.credential_expires_at = Some(now);
        records.push(Record::Access(expired));
    }
    records.push(Record::Lifecycle {
        time: now + 2 * HOUR,
        event_id: "end".into(),
        fact: Box::new(Lifecycle::GrantEnded { grant_id: "g-report".into(), reason: GrantEndReason::PurposeEnded }),
    });
    records.push(call(routine + 2, now + 3 * HOUR, "s3.amazonaws.com", "GetObject", "10.0.0.5"));

    // Both streams, so that the schemas are checked on findings and incidents alike.
    let mut engine = Engine::new(EngineConfig { alerts: AlertMode::Both, ..EngineConfig::default() });
    records
        .iter()
        .enumerate()
        .flat_map(|(line, record)| {
            engine.process(record, &Origin::File { path: "made-up.jsonl".into(), line: line as u64 + 1 })
        })
        .collect()
}
