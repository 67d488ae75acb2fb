//! The published schemas and the decoders agree: every fixture line the decoder accepts
//! validates against its schema, and every line it rejects does not.

use overreach::decode::{decode_line, Format, Limits};
use serde_json::{json, Value};
use std::path::PathBuf;

fn read(parts: &[&str]) -> String {
    let path: PathBuf = std::iter::once(env!("CARGO_MANIFEST_DIR")).chain(parts.iter().copied()).collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn validator(schema: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&read(&["schemas", schema])).expect("schema is JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{schema} is not a valid schema: {e}"))
}

/// Checks each fixture line against the schema and the decoder; returns how many lines
/// were accepted and rejected, so a caller can assert both cases were exercised.
fn agree(schema: &str, fixture: &str, format: Format) -> (usize, usize) {
    let validator = validator(schema);
    let (mut accepted, mut rejected) = (0, 0);
    for (i, line) in read(&["tests", "fixtures", fixture]).lines().enumerate() {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{fixture}:{}: {e}", i + 1));
        let decoded = decode_line(line.as_bytes(), format, &Limits::default());
        let decodes = decoded.iter().all(Result::is_ok);
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert_eq!(
            errors.is_empty(),
            decodes,
            "{fixture}:{}: schema errors {errors:?}, decoder gave {decoded:?}",
            i + 1
        );
        if decodes {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    (accepted, rejected)
}

#[test]
fn native_fixture_agrees_with_the_access_event_schema() {
    let (accepted, rejected) = agree("access-event.v1.schema.json", "native.jsonl", Format::Native);
    assert!(accepted >= 3 && rejected >= 3, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn grants_fixture_agrees_with_the_grant_event_schema() {
    let (accepted, rejected) = agree("grant-event.v1.schema.json", "grants.jsonl", Format::Grants);
    assert!(accepted >= 5 && rejected >= 2, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn feedback_fixture_agrees_with_the_verdict_schema() {
    let (accepted, rejected) = agree("verdict.v1.schema.json", "feedback.jsonl", Format::Feedback);
    assert!(accepted >= 3 && rejected >= 5, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn schemas_reject_bad_events() {
    let access = validator("access-event.v1.schema.json");
    let ok = json!({"time": "2026-03-02T10:00:00Z", "identity": "ci", "target": "s3", "action": "GetObject"});
    assert!(access.is_valid(&ok));
    for region in [json!("eu-west-1"), json!(""), json!(null), json!("x".repeat(1024))] {
        let with_region = json!({"time": 1, "identity": "ci", "target": "s3", "action": "x", "region": region});
        assert!(access.is_valid(&with_region), "refused {with_region}");
    }
    let bad_access = [
        json!({"time": "2026-03-02T10:00:00Z", "identity": "ci", "target": "s3"}),
        json!({"time": "2026-03-02T10:00:00Z", "identity": 7, "target": "s3", "action": "GetObject"}),
        json!({"time": "2026-03-02T10:00:00Z", "identity": "ci", "target": "s3", "action": "x", "outcome": "ok"}),
        json!({"time": 1, "identity": "ci", "target": "s3", "action": "x", "chain": ["a"], "act": {"sub": "a"}}),
        json!({"time": 1, "identity": "ci", "target": "s3", "action": "x", "act": {"sub": "a", "act": {}}}),
        json!({"time": 1, "identity": "x".repeat(1025), "target": "s3", "action": "x"}),
        json!({"time": 1, "identity": "ci", "target": "s3", "action": "x", "region": "x".repeat(1025)}),
        json!({"time": 1, "identity": "ci", "target": "s3", "action": "x", "region": " \t"}),
        json!({"time": 1, "identity": "ci", "target": "s3", "action": "x", "region": 5}),
    ];
    for bad in bad_access {
        assert!(!access.is_valid(&bad), "accepted {bad}");
    }

    let grant = validator("grant-event.v1.schema.json");
    assert!(grant.is_valid(&json!({"kind": "credential_revoked", "time": 1, "credential_id": "AKIA1"})));
    let bad_grants = [
        json!({"kind": "credential_revoked", "time": 1}),
        json!({"kind": "grant", "time": 1, "grant_id": "g", "identity": "ci", "scope": {"target": []}}),
        json!({"kind": "grant", "time": 1, "grant_id": "g", "identity": "ci", "windows": [{"days": ["someday"], "start": "08:00", "end": "09:00"}]}),
        json!({"kind": "grant_expired", "time": 1, "grant_id": "g"}),
        json!({"kind": "identity_offboarded", "identity": "ci"}),
    ];
    for bad in bad_grants {
        assert!(!grant.is_valid(&bad), "accepted {bad}");
    }
}
