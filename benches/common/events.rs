//! The native access events the Kafka benchmarks send.

use serde_json::json;

/// Event time of the first event: 2026-03-01T01:00:00Z.
pub const START: i64 = 1_772_326_800_000;

/// Event `i` of a fleet of `identities`, keyed by identity: identity `i % identities`, one of
/// 5 calls (the next after each pass over the fleet), event time one second apart.
pub fn native(i: usize, identities: usize) -> (String, String) {
    let identity = format!("svc-{}", i % identities);
    let calls = [("s3", "GetObject"), ("s3", "PutObject"), ("sts", "AssumeRole"), ("kms", "Decrypt"), ("ecr", "Pull")];
    let (target, action) = calls[(i / identities) % calls.len()];
    let v = json!({"event_id": format!("e-{i}"), "time": START + i as i64 * 1_000, "identity": identity,
        "target": target, "action": action, "source_ip": "10.0.0.1", "session_id": format!("s-{}", i / 20)});
    (identity, v.to_string())
}
