//! Whole runs of `overreach replay` through the real binary: determinism,
//! state carried over between runs, bad lines, unreadable files.

mod common;

use common::*;
use overreach::time::DAY;

#[test]
fn the_same_input_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &mixed_scenario().records);
    let first = overreach(&["replay", &events, "--grants", &grants]);
    let second = overreach(&["replay", &events, "--grants", &grants]);
    assert_eq!(first.0, 0, "{}", first.2);
    assert!(first.1.lines().count() >= 4, "expected several alerts, got:\n{}", first.1);
    assert_eq!(first.1, second.1);
}

#[test]
fn alerts_come_out_in_event_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &mixed_scenario().records);
    let (_, out, _) = overreach(&["replay", &events, "--grants", &grants]);
    let times: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["time"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}

#[test]
fn replaying_a_then_b_with_state_equals_replaying_a_and_b() {
    let dir = tempfile::tempdir().unwrap();
    let records = mixed_scenario().records;
    let split = t0() + 22 * DAY;
    let (a, b): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| r.time() < split);
    let (a_events, a_grants) = write_jsonl(dir.path(), "a", &a);
    let (b_events, b_grants) = write_jsonl(dir.path(), "b", &b);
    let state = dir.path().join("state.json").to_string_lossy().into_owned();

    let (code, whole, err) = overreach(&["replay", &a_events, &b_events, "--grants", &a_grants, "--grants", &b_grants]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = overreach(&["replay", &a_events, "--grants", &a_grants, "--state-out", &state]);
    assert_eq!(code, 0, "{err}");
    let (code, resumed, err) = overreach(&["replay", &b_events, "--grants", &b_grants, "--state-in", &state]);
    assert_eq!(code, 0, "{err}");

    let b_part: Vec<&str> = whole.lines().filter(|l| l.contains(&format!("\"source\":\"{b_events}:"))).collect();
    assert!(!b_part.is_empty(), "the scenario must alert after the split");
    assert_eq!(resumed.lines().collect::<Vec<_>>(), b_part);
}

#[test]
fn bad_lines_are_rejected_with_place_and_reason_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let good = |id: &str| {
        format!(r#"{{"event_id":"{id}","time":"2026-03-02T10:00:00Z","identity":"i","target":"t","action":"a"}}"#)
    };
    let long_identity = "x".repeat(2000);
    let lines = [
        good("e1"),
        "{not json".to_string(),
        r#"{"time":"2026-03-02T10:00:00Z","identity":"i","action":"a"}"#.to_string(),
        r#"{"time":"2026-03-02T10:00:00Z","identity":7,"target":"t","action":"a"}"#.to_string(),
        format!(r#"{{"time":"2026-03-02T10:00:00Z","identity":"{long_identity}","target":"t","action":"a"}}"#),
        "[1,2]".to_string(),
        good("e2"),
    ];
    let mut bytes = lines.join("\n").into_bytes();
    bytes.extend_from_slice(b"\n\xff\xfe\n");
    bytes.extend_from_slice(good("e3").as_bytes());
    std::fs::write(&path, bytes).unwrap();
    let p = path.to_string_lossy().into_owned();
    let rejects = dir.path().join("rejects.txt");
    let (code, _, err) = overreach(&["replay", &p, "--rejects-out", rejects.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rejects = std::fs::read_to_string(rejects).unwrap();
    let expected = [
        format!("{p}:2: not valid JSON: key must be a string at line 1 column 2"),
        format!("{p}:3: missing required field `target`"),
        format!("{p}:4: field `identity` has the wrong type: expected a string, found a number"),
        format!("{p}:5: field `identity` is 2000 bytes, over the limit of 1024"),
        format!("{p}:6: expected a JSON object, found an array"),
        format!("{p}:8: not valid UTF-8 (first bad byte at offset 0)"),
    ];
    assert_eq!(rejects.lines().collect::<Vec<_>>(), expected);
    assert!(err.contains("3 events"), "{err}");
    assert!(err.contains("6 rejected"), "{err}");
}

#[test]
fn an_over_long_line_is_rejected_without_losing_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.jsonl");
    let good = r#"{"time":1,"identity":"i","target":"t","action":"a"}"#;
    std::fs::write(&path, format!("{good}\n{}\n{good}\n", "y".repeat(5000))).unwrap();
    let p = path.to_string_lossy().into_owned();
    let (code, _, err) = overreach(&["replay", &p, "--max-line-bytes", "1000", "--quiet"]);
    assert_eq!(code, 0);
    assert!(err.contains(&format!("{p}:2: line is 5000 bytes, over the limit of 1000")), "{err}");
    assert!(err.contains("2 events"), "{err}");
}

#[test]
fn an_unreadable_file_fails_the_run_naming_it() {
    let (code, out, err) = overreach(&["replay", "/nonexistent/events.jsonl"]);
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert!(err.contains("/nonexistent/events.jsonl"), "{err}");
}

#[test]
fn gzip_input_gives_the_same_alerts_as_plain() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &mixed_scenario().records);
    let gz_path = dir.path().join("all.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&gz_path).unwrap(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&events).unwrap()).unwrap();
    gz.finish().unwrap();
    let (_, plain, _) = overreach(&["replay", &events, "--grants", &grants]);
    let (_, zipped, _) = overreach(&["replay", gz_path.to_str().unwrap(), "--grants", &grants]);
    let strip = |s: &str| s.lines().map(|l| l.split("\"source\"").next().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(strip(&plain), strip(&zipped));
    assert!(!plain.is_empty());
}

#[test]
fn ocsf_output_carries_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &mixed_scenario().records);
    let (_, native, _) = overreach(&["replay", &events, "--grants", &grants]);
    let (code, ocsf, err) = overreach(&["replay", &events, "--grants", &grants, "--alert-format", "ocsf"]);
    assert_eq!(code, 0, "{err}");
    let ids = |text: &str, pointer: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()[pointer].as_str().unwrap_or_default().to_string()
            })
            .collect()
    };
    let native_ids = ids(&native, "alert_id");
    let ocsf_ids: Vec<String> = ocsf
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            schema::assert_valid_ocsf(&v);
            v["finding_info"]["uid"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(!native_ids.is_empty());
    assert_eq!(native_ids, ocsf_ids);
}

#[test]
fn identities_past_the_cap_are_evicted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &mixed_scenario().records);
    let (code, _, err) = overreach(&["replay", &events, "--grants", &grants, "--max-identities", "2"]);
    assert_eq!(code, 0, "{err}");
    let summary = err.lines().last().unwrap();
    assert!(summary.contains("identities tracked"), "{summary}");
    let tracked: u64 =
        summary.split(" identities tracked").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(tracked <= 2, "{summary}");
    assert!(!summary.contains("(0 evicted)"), "{summary}");
}

#[test]
fn stdin_is_read_with_a_dash() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let line = r#"{"event_id":"x","time":"2026-03-02T10:00:00Z","identity":"gone","target":"t","action":"a"}"#;
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("g.jsonl");
    std::fs::write(&grants, r#"{"kind":"identity_offboarded","time":"2026-03-01T00:00:00Z","identity":"gone"}"#)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["replay", "-", "--grants", grants.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let alerts = schema::assert_valid_alert_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["detector"], "post_purpose");
    assert_eq!(alerts[0]["source"], "-:1");
}
