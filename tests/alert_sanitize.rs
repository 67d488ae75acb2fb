//! Every alert leaves the engine redacted and bounded (`src/sanitize.rs`), whichever
//! way it is produced and written: the real binary replays records that carry each
//! secret shape in each field an alert echoes, or one huge field, and neither the native
//! nor the OCSF output holds any piece of a secret or grows past a fixed size.

#[path = "common/schema.rs"]
mod schema;

use overreach::alert::{alert_id, incident_id, Alert};
use overreach::detect::{self, Detector};
use overreach::engine::{AlertMode, Engine, EngineConfig};
use overreach::model::{AccessEvent, Grant, Origin, Record, Scope};
use overreach::ocsf::{render, to_ocsf, AlertFormat};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// A call by `agent-7` out of its grant's scope, with a credential of its own that
/// expired a day before: two alerts (`scope_violation`, `expired_credential`) that echo
/// the call in summary and evidence. Calls are hours apart and no credential repeats,
/// so no alert is a suppressed repeat.
fn call(i: usize, field: &str, value: Value) -> Value {
    let time = 1_772_500_000_000_i64 + i as i64 * 7_200_000;
    let mut call = json!({
        "time": time,
        "event_id": format!("e-{i}"),
        "identity": "agent-7",
        "target": "iam.amazonaws.com",
        "action": "CreateUser",
        "credential_id": format!("cred-{i}"),
        "credential_expires_at": time - 86_400_000,
    });
    call[field] = value;
    call
}

/// Replays `lines` of `input_format` under the policy that gives `agent-7` its grant,
/// alerting per finding; returns the alert lines. No line may be rejected.
fn replay(dir: &Path, lines: &[Value], input_format: &str, alert_format: &str) -> Vec<String> {
    replay_in("findings", dir, lines, input_format, alert_format)
}

/// As `replay`, with `alerts = mode`: `both` puts every finding and the incidents that
/// repeat them in one stream.
fn replay_in(mode: &str, dir: &Path, lines: &[Value], input_format: &str, alert_format: &str) -> Vec<String> {
    let input = dir.join("calls.jsonl");
    std::fs::write(&input, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[grant]]\ngrant_id = \"g-7\"\nidentity = \"agent-7\"\nscope = { targets = [\"s3.amazonaws.com\"] }\n",
    )
    .unwrap();
    let config = dir.join("alerts.toml");
    std::fs::write(&config, format!("[engine]\nalerts = {mode:?}\n")).unwrap();
    let rejects = dir.join("rejects.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["replay", "--quiet", "--format", input_format, "--alert-format", alert_format, "--config"])
        .arg(&config)
        .arg("--policy")
        .arg(&policy)
        .arg("--rejects-out")
        .arg(&rejects)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&rejects).unwrap(), "", "no call may be rejected");
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

// ---- Secrets (issue 9, item 13) ----

/// Each secret as it would appear in a log, and the secret parts of it: none of
/// those may show in any alert, not even in part.
fn corpus() -> Vec<(&'static str, String, Vec<&'static str>)> {
    const JWT_PAYLOAD: &str = "eyJzdWIiOiJhZ2VudC1Ra1p4N3Z3In0";
    const JWT_SIGNATURE: &str = "Qk9HVVMtU0lHTkFUVVJFLTdmM2E5";
    const SIGNATURE: &str = "9c1f7e2d4b6a8035c7e9f1a3b5d7f9e1";
    const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEJr7Zq9Wd3xN5LmP";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE12";
    const PEM_BODY: &str = "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM";
    vec![
        ("bearer", "curl/8.5 Authorization: Bearer tk7Qp2Vx9Lm4Rz8Wn3Ys".into(), vec!["tk7Qp2Vx9Lm4Rz8Wn3Ys"]),
        ("basic", "Basic YWdlbnQ6aHVudGVyMi1wYXNzd29yZA==".into(), vec!["YWdlbnQ6aHVudGVyMi1wYXNzd29yZA"]),
        ("jwt", format!("eyJhbGciOiJSUzI1NiJ9.{JWT_PAYLOAD}.{JWT_SIGNATURE}"), vec![JWT_PAYLOAD, JWT_SIGNATURE]),
        (
            "presigned",
            format!(
                "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Security-Token={SESSION_TOKEN}&X-Amz-Signature={SIGNATURE}"
            ),
            vec![SESSION_TOKEN, SIGNATURE],
        ),
        ("gcs", format!("https://storage.googleapis.com/b/o?X-Goog-Signature={SIGNATURE}"), vec![SIGNATURE]),
        ("sas", format!("https://a.blob.core.windows.net/c/b?sv=2022&sig={SIGNATURE}"), vec![SIGNATURE]),
        ("aws_key_pair", format!("aws_secret_access_key={SECRET_KEY}"), vec![SECRET_KEY]),
        ("session_token", format!("AWS_SESSION_TOKEN={SESSION_TOKEN}"), vec![SESSION_TOKEN]),
        ("bare_aws_key", format!("prod/{SECRET_KEY}"), vec![SECRET_KEY]),
        (
            "pem",
            format!("-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"),
            vec![PEM_BODY],
        ),
        ("github", "ghp_R7kQ2mVx9Lp4Wz8Nn3Ys6Tb1Hc5Jd0Fg2Ae4".into(), vec!["R7kQ2mVx9Lp4Wz8Nn3Ys6Tb1Hc5Jd0Fg2Ae4"]),
        ("github_pat", "github_pat_11AB7kQ2mVx9Lp4Wz8Nn3Ys".into(), vec!["11AB7kQ2mVx9Lp4Wz8Nn3Ys"]),
        ("slack", "xoxb-7391-R7kQ2mVx9Lp4Wz8N".into(), vec!["R7kQ2mVx9Lp4Wz8N"]),
        ("stripe", "sk_live_R7kQ2mVx9Lp4Wz8Nn3Ys".into(), vec!["R7kQ2mVx9Lp4Wz8Nn3Ys"]),
        ("google", "AIzaSyR7kQ2mVx9Lp4Wz8Nn3Ys6Tb1Hc5Jd0Fg2".into(), vec!["R7kQ2mVx9Lp4Wz8Nn3Ys6Tb1Hc5Jd0Fg2"]),
        ("password", "https://h/login?user=ci&password=hunter2-R7kQ2m&next=/".into(), vec!["hunter2-R7kQ2m"]),
        ("api_key", "x-api-key: Zx81-R7kQ2mVx9Lp".into(), vec!["Zx81-R7kQ2mVx9Lp"]),
    ]
}

/// The fields of a native record an alert echoes, each holding `text` once.
const FIELDS: [&str; 16] = [
    "identity",
    "identity_type",
    "on_behalf_of",
    "chain",
    "act",
    "event_id",
    "grant_id",
    "credential_id",
    "target",
    "action",
    "resource",
    "environment",
    "region",
    "session_id",
    "source_ip",
    "user_agent",
];

/// Every piece of `secret` of 10 bytes or more, to catch a secret leaked in part.
fn pieces(secret: &str) -> Vec<&str> {
    let len = 10.min(secret.len());
    (0..=secret.len() - len).filter_map(|at| secret.get(at..at + len)).collect()
}

/// `field` of a native record holding `text` once, in the shape the field takes.
fn holding(field: &str, text: &str) -> Value {
    match field {
        "chain" => json!(["github-actions", text]),
        "act" => json!({ "sub": text, "act": { "sub": "agent-0" } }),
        _ => json!(format!("{field} {text} end")),
    }
}

#[test]
fn no_secret_shape_in_any_echoed_field_reaches_a_native_or_ocsf_alert() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus();
    let calls: Vec<Value> = corpus
        .iter()
        .flat_map(|(_, text, _)| FIELDS.map(|field| (field, text)))
        .enumerate()
        .map(|(i, (field, text))| call(i, field, holding(field, text)))
        .collect();

    for format in ["native", "ocsf"] {
        let lines = replay_in("both", dir.path(), &calls, "native", format);
        let out = lines.join("\n");
        let alerts = parse(&lines);
        for alert in &alerts {
            match format {
                "native" => schema::assert_valid_alert(alert),
                _ => schema::assert_valid_ocsf(alert),
            }
        }
        // Every record alerted (its credential had expired), so every field was echoed.
        assert!(alerts.len() >= calls.len(), "{format}: {} alerts for {} calls", alerts.len(), calls.len());
        assert!(out.contains("[redacted:"), "{format}: no redaction marker at all");
        for (kind, _, secrets) in &corpus {
            for secret in secrets {
                for piece in pieces(secret) {
                    let at = out.find(piece);
                    assert!(
                        at.is_none(),
                        "{format}: {kind} secret piece {piece:?} leaked: ...{}...",
                        &out[at.unwrap().saturating_sub(80)..(at.unwrap() + 80).min(out.len())]
                    );
                }
            }
        }
    }
}

/// Redaction keeps what an analyst needs: identifiers that look a little like secrets
/// come out as logged.
#[test]
fn identifiers_come_out_as_logged() {
    let dir = tempfile::tempdir().unwrap();
    let kept = [
        ("resource", "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"),
        ("credential_id", "AKIAIOSFODNN7EXAMPLE"),
        ("session_id", "9b2c7e4a-1f3d-4c8e-a6b5-0d9e8f7a6b5c"),
        ("user_agent", "aws-cli/2.15.0 Python/3.11.6 Linux/5.10 exe/x86_64.amzn.2 command/s3.cp"),
    ];
    let calls: Vec<Value> = kept.iter().enumerate().map(|(i, (field, value))| call(i, field, json!(value))).collect();
    let out = replay(dir.path(), &calls, "native", "native").join("\n");
    for (field, value) in kept {
        assert!(out.contains(&format!("\"{field}\":\"{value}\"")), "{field} {value} changed:\n{out}");
    }
    assert!(!out.contains("[redacted:"), "{out}");
}

/// CloudTrail names a Secrets Manager secret by `requestParameters.secretId`, which
/// becomes the call's resource. A name or ARN is an identifier and stays; a secret value
/// put there by mistake is redacted like in any field. `AWS Internal` as the source
/// address goes to OCSF `unmapped.source_ip`, never to an IP field.
#[test]
fn a_cloudtrail_secret_id_holding_a_secret_value_is_redacted() {
    const SECRET_KEY: &str = "Zq9Wd3xN5LmP/IQoJb3JpZ2luX2VjEJr7Kt4Ha8Q";
    let dir = tempfile::tempdir().unwrap();
    let call = |i: u32, secret_id: &str, source: &str| {
        json!({
            "eventVersion": "1.09",
            "userIdentity": { "type": "IAMUser", "arn": "agent-7", "accessKeyId": "AKIAIOSFODNN7EXAMPLE" },
            // Hours apart, so the second out-of-scope call is not a suppressed repeat.
            "eventTime": format!("2026-03-02T{:02}:00:00Z", 8 + 2 * i),
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "GetSecretValue",
            "sourceIPAddress": source,
            "userAgent": "aws-sdk-go/1.44 Bearer R7kQ2mVx9Lp4Wz8Nn3Ys",
            "requestParameters": { "secretId": secret_id },
            "eventID": format!("ct-{i}"),
            "recipientAccountId": "111122223333",
        })
    };
    let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf";
    let calls = [call(1, arn, "AWS Internal"), call(2, &format!("prod/{SECRET_KEY}"), "ec2.amazonaws.com")];

    let native = replay(dir.path(), &calls, "cloudtrail", "native").join("\n");
    assert!(native.contains(arn), "the secret's ARN is an identifier and stays:\n{native}");
    assert!(native.contains("prod/[redacted:aws_secret]"), "{native}");
    let ocsf = replay(dir.path(), &calls, "cloudtrail", "ocsf");
    for out in [&native, &ocsf.join("\n")] {
        assert!(!out.contains(SECRET_KEY) && !out.contains("R7kQ2mVx9Lp4Wz8Nn3Ys"), "{out}");
    }
    let findings = parse(&ocsf);
    assert_eq!(findings.len(), 2, "{ocsf:?}");
    for finding in &findings {
        schema::assert_valid_ocsf(finding);
    }
    assert_eq!(findings[0]["unmapped"]["source_ip"], "AWS Internal");
    assert!(findings[0]["evidences"][0].get("src_endpoint").is_none(), "{}", findings[0]);
    assert_eq!(findings[1]["evidences"][0]["src_endpoint"], json!({ "hostname": "ec2.amazonaws.com" }));
}

// ---- Bounds (issue 9, item 1) ----

/// What one alert may weigh when a single field of its call is huge.
const ONE_HUGE_FIELD_MAX_BYTES: usize = 16 * 1024;

const HUGE: usize = 400_000;

#[test]
fn a_huge_resource_user_agent_chain_entry_or_session_id_gives_a_small_alert_that_says_so() {
    let huge = "r".repeat(HUGE);
    let cases = [
        ("resource", json!(format!("arn:aws:s3:::bucket/{huge}")), "event.resource"),
        ("user_agent", json!(format!("aws-cli/2.15 {huge}")), "event.user_agent"),
        ("chain", json!(["github-actions", huge]), "chain"),
        ("session_id", json!(huge), "event.session_id"),
    ];
    let calls: Vec<Value> =
        cases.iter().enumerate().map(|(i, (field, value, _))| call(i, field, value.clone())).collect();
    let dir = tempfile::tempdir().unwrap();
    let native = replay(dir.path(), &calls, "native", "native");
    let ocsf = replay(dir.path(), &calls, "native", "ocsf");
    // Two alerts per call; the calls are hours apart, so none is a suppressed repeat.
    assert_eq!((native.len(), ocsf.len()), (2 * cases.len(), 2 * cases.len()));

    for (i, (field, _, path)) in cases.iter().enumerate() {
        for (line, finding) in native[2 * i..2 * i + 2].iter().zip(&ocsf[2 * i..2 * i + 2]) {
            assert!(line.len() <= ONE_HUGE_FIELD_MAX_BYTES, "{field}: native alert of {} bytes", line.len());
            assert!(finding.len() <= ONE_HUGE_FIELD_MAX_BYTES, "{field}: OCSF alert of {} bytes", finding.len());
            let alert: Value = serde_json::from_str(line).unwrap();
            let finding: Value = serde_json::from_str(finding).unwrap();
            schema::assert_valid_alert(&alert);
            schema::assert_valid_ocsf(&finding);
            let truncated = alert["truncated"].as_array().unwrap();
            assert!(truncated.contains(&json!(path)), "{field}: {truncated:?}");
            assert_eq!(finding["unmapped"]["truncated"], alert["truncated"], "{field}");
            let value = alert.pointer(&format!("/{}", path.replace('.', "/"))).unwrap();
            let value = if *field == "chain" { &value[1] } else { value };
            assert!(value.as_str().unwrap().ends_with(" bytes]"), "{field}: {value}");
            assert!(line.contains("…[truncated "), "{field}");
        }
    }
}

/// The cut identity is what the alert shows; `alert_id` stays that of the identity
/// as logged, so replay and the service deduplicate as before.
#[test]
fn alert_id_is_computed_from_the_identity_as_logged() {
    let identity = format!("arn:aws:iam::111122223333:role/{}", "p".repeat(900));
    let dir = tempfile::tempdir().unwrap();
    let alerts = replay(dir.path(), &[call(0, "identity", json!(identity))], "native", "native");
    let alert: Alert = serde_json::from_str(&alerts[0]).unwrap();
    assert_eq!(alert.detector, detect::expired_credential::SPEC.detector());
    assert!(alert.identity.len() < identity.len() && alert.identity.ends_with(" bytes]"), "{}", alert.identity);
    assert_eq!(alert.truncated.first().map(String::as_str), Some("identity"));
    assert_eq!(alert.alert_id, alert_id(detect::expired_credential::SPEC.detector(), &identity, "e-0"));

    let incidents = replay_in("incidents", dir.path(), &[call(0, "identity", json!(identity))], "native", "native");
    let incident: Alert = serde_json::from_str(&incidents[0]).unwrap();
    assert!(incident.incident.is_some() && incident.identity == alert.identity);
    assert_eq!(incident.alert_id, incident_id(&identity, "e-0"));
}

/// Every field at once, far past any decoder limit, straight into the engine: the alert
/// still has a fixed ceiling, whatever its characters cost to escape in JSON.
#[test]
fn an_alert_made_of_nothing_but_huge_fields_stays_under_a_fixed_ceiling() {
    // Below the sum of every bound at its dearest (under 100 KiB, docs/alerts.md): this is
    // what the two detectors that echo the most come to, with room to spare.
    const ALERT_MAX_BYTES: usize = 64 * 1024;
    // A quote costs two bytes in JSON, and four in evidence that is cut to a JSON string:
    // the dearest text there is once control characters are escaped. 16 KiB is sixteen
    // times the longest bound; longer costs the test memory, not the alert.
    let huge = |tag: &str| format!("{tag}{}", "\"".repeat(16 * 1024));
    let identity = huge("id");
    let mut engine = Engine::new(EngineConfig { alerts: AlertMode::Both, ..EngineConfig::default() });
    engine.add_policy(vec![Grant {
        grant_id: huge("grant"),
        identity: identity.clone(),
        on_behalf_of: None,
        scope: Scope {
            targets: (0..1000).map(|i| huge(&i.to_string())).collect(),
            actions: (0..1000).map(|i| huge(&i.to_string())).collect(),
            resources: vec![huge("r")],
            environments: vec![huge("e")],
        },
        not_before: None,
        expires_at: None,
        windows: vec![],
    }]);
    let event = AccessEvent {
        event_id: huge("ev").into(),
        time: 1_772_500_000_000,
        identity: identity.as_str().into(),
        identity_type: Some(huge("type").into()),
        on_behalf_of: Some(huge("obo").into()),
        chain: (0..1000).map(|i| huge(&i.to_string()).into()).collect(),
        grant_id: Some(huge("grant").into()),
        credential_id: Some(huge("cred").into()),
        credential_expires_at: Some(0),
        target: huge("target").into(),
        action: huge("action").into(),
        resource: Some(huge("resource").into()),
        environment: Some(huge("env").into()),
        region: Some(huge("region").into()),
        session_id: Some(huge("session").into()),
        source_ip: Some(huge("ip").into()),
        user_agent: Some(huge("ua").into()),
        ..AccessEvent::default()
    };
    let origin = Origin::File { path: huge("path").into(), line: 1 };
    let alerts = engine.process(&Record::Access(Box::new(event)), &origin);
    let findings: Vec<Detector> = alerts.iter().filter(|a| a.incident.is_none()).map(|a| a.detector).collect();
    assert_eq!(findings, [detect::expired_credential::SPEC.detector(), detect::scope_violation::SPEC.detector()]);
    assert_eq!(alerts.iter().filter(|a| a.incident.is_some()).count(), 1, "and the incident that holds both");
    for alert in &alerts {
        let (native, ocsf) = (render(alert, AlertFormat::Native), render(alert, AlertFormat::Ocsf));
        eprintln!("{}: native {} bytes, OCSF {} bytes", alert.detector, native.len(), ocsf.len());
        assert!(native.len() <= ALERT_MAX_BYTES, "{}: native alert of {} bytes", alert.detector, native.len());
        assert!(ocsf.len() <= ALERT_MAX_BYTES, "{}: OCSF alert of {} bytes", alert.detector, ocsf.len());
        schema::assert_valid_alert(&serde_json::to_value(alert).unwrap());
        schema::assert_valid_ocsf(&to_ocsf(alert));
        for path in ["identity", "chain", "event_ids", "event.resource", "source", "summary"] {
            assert!(
                alert.truncated.iter().any(|f| f == path),
                "{}: {path} not in {:?}",
                alert.detector,
                alert.truncated
            );
        }
    }
}

/// The ceiling in `docs/alerts.md`: an alert with every field and list at its bound, in
/// the characters dearest to escape, whatever detector would make it.
#[test]
fn every_bound_at_its_dearest_stays_under_100_kib() {
    const CEILING_BYTES: usize = 100 * 1024;
    let huge = || "\"".repeat(8 * 1024);
    let many = || vec![huge(); 100];
    let member = || json!({ "a": many(), "b": huge(), "c": { "d": many() } });
    let mut alert: Alert = serde_json::from_value(json!({
        "alert_id": "0".repeat(32), "detector": "novel_call", "severity": "high", "score": 0.9,
        "time": "2026-03-02T00:00:00Z", "identity": huge(), "identity_type": huge(), "on_behalf_of": huge(),
        "chain": many(), "event_ids": many(),
        "event": {
            "target": huge(), "action": huge(), "resource": huge(), "environment": huge(), "region": huge(),
            "session_id": huge(),
            "grant_id": huge(), "credential_id": huge(), "source_ip": huge(), "user_agent": huge(), "outcome": "success",
        },
        "source": huge(), "summary": huge(),
        "evidence": { "observed": member(), "baseline": member(), "peers": member(), "probability": 0.001 },
        "owasp_nhi": ["NHI5:2025"], "attack": ["T1078.004"], "recommended_action": "Confirm.", "suppressed_repeats": 0,
    }))
    .unwrap();
    overreach::sanitize::sanitize(&mut alert);
    let (native, ocsf) = (render(&alert, AlertFormat::Native), render(&alert, AlertFormat::Ocsf));
    eprintln!("every bound at its dearest: native {} bytes, OCSF {} bytes", native.len(), ocsf.len());
    assert!(native.len() <= CEILING_BYTES && ocsf.len() <= CEILING_BYTES, "{} / {}", native.len(), ocsf.len());
    schema::assert_valid_alert(&serde_json::to_value(&alert).unwrap());
    schema::assert_valid_ocsf(&to_ocsf(&alert));
}
