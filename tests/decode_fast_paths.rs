//! The typed fast paths (native and CloudTrail records on a line) decode every real and
//! fixture record exactly as the general path does: the same records, or the same
//! error with its place. `OVERREACH_FAST_PATH_FILES` (paths separated by `:`) adds
//! JSON Lines files, e.g. simulated fleets.

use overreach::decode::{decode_line, decode_value, DecodeError, Decoded, Format, Limits};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn shared(parts: &[&str]) -> PathBuf {
    let mut path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "shared", "datasets"].iter().collect();
    path.extend(parts);
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the general path alone makes of a line: parse the tree, then decode it.
fn general(line: &str, format: Format) -> Decoded {
    match serde_json::from_str::<Value>(line) {
        Ok(value) => decode_value(&value, format),
        Err(e) => vec![Err(DecodeError::InvalidJson(e.to_string()))],
    }
}

/// Checks one line with each format; returns how many records it gave.
fn check(at: &str, line: &str) -> usize {
    // No field limit: `check_limits` is the same on both paths.
    let limits = Limits { max_line_bytes: usize::MAX, max_field_bytes: usize::MAX };
    let mut n = 0;
    for format in [Format::Auto, Format::Native, Format::Cloudtrail] {
        let fast = decode_line(line.as_bytes(), format, &limits);
        assert_eq!(fast, general(line, format), "{at} ({format}): {line}");
        n = n.max(fast.len());
    }
    n
}

/// Every record of a file that holds one JSON value a line, or of a JSON array file.
fn lines_of(path: &Path) -> Vec<String> {
    let text = read(path);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(records)) => records.iter().map(Value::to_string).collect(),
        _ => text.lines().map(str::to_string).collect(),
    }
}

#[test]
fn fast_paths_agree_with_the_general_path_on_every_corpus_record() {
    let mut records = 0;
    let corpus = std::fs::read_dir(shared(&["log-formats"])).expect("the shared log-format corpus");
    for entry in corpus {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for (i, line) in read(&path).lines().enumerate() {
            let case: Value = serde_json::from_str(line).unwrap();
            let log = case.get("log").expect("a `log`").to_string();
            records += check(&format!("{}:{}", path.display(), i + 1), &log);
        }
    }
    let attacks = std::fs::read_dir(shared(&["attacks", "stratus-dev"])).expect("the shared attack corpus");
    for entry in attacks {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        for (i, line) in lines_of(&path).iter().enumerate() {
            records += check(&format!("{}[{i}]", path.display()), line);
        }
    }
    let fixtures: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures"].iter().collect();
    for name in ["native.jsonl", "cloudtrail.jsonl", "gcp_audit.jsonl", "k8s_audit.jsonl", "ocsf.jsonl", "grants.jsonl"]
    {
        let path = fixtures.join(name);
        for (i, line) in read(&path).lines().enumerate() {
            records += check(&format!("{}:{}", path.display(), i + 1), line);
        }
    }
    for path in std::env::var("OVERREACH_FAST_PATH_FILES").unwrap_or_default().split(':').filter(|p| !p.is_empty()) {
        for (i, line) in lines_of(Path::new(path)).iter().enumerate() {
            records += check(&format!("{path}:{}", i + 1), line);
        }
    }
    assert!(records > 100, "only {records} records");
}

#[test]
fn fast_paths_reject_what_the_tree_rejects() {
    let lines = [
        r#"{"identity":"a","target":"t","action":"x","time":1,"event_id":"e","extra":1e400}"#,
        r#"["e","2026-03-02T10:00:00Z","a"]"#,
        r#"{"eventTime":"2026-03-02T10:00:00Z","eventSource":"s3","eventName":"Get","eventID":"e","userIdentity":{"type":"IAMUser","arn":"u"},"responseElements":{"n":-1e999}}"#,
        r#"[{"type":"IAMUser","arn":"u"},null,"e","2026-03-02T10:00:00Z","s3","Get"]"#,
        r#"{"eventTime":"2026-03-02T10:00:00Z","eventSource":"s3","eventName":"Get","eventID":"e","userIdentity":{"type":"IAMUser","arn":"u"},"Records":null}"#,
        // Native fields beside another format's key: `auto` decodes them as that format.
        r#"{"identity":"a","target":"t","action":"x","time":1,"event_id":"e","verb":"get"}"#,
        r#"{"identity":"a","target":"t","action":"x","time":1,"event_id":"e","eventVersion":"1.08"}"#,
        r#"{"identity":"a","target":"t","action":"x","time":1,"event_id":"e","class_uid":6003}"#,
        r#"{"identity":"a","target":"t","action":"x","time":1,"event_id":"e","protoPayload":{}}"#,
    ];
    for (i, line) in lines.iter().enumerate() {
        check(&format!("case {i}"), line);
    }
}
