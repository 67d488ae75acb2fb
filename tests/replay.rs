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

/// The mixed scenario cut at day 22 into files A and B, and where a state goes.
struct Split {
    a_events: String,
    a_grants: String,
    b_events: String,
    b_grants: String,
    state: String,
}

fn split(dir: &std::path::Path) -> Split {
    let at = t0() + 22 * DAY;
    let (a, b): (Vec<_>, Vec<_>) = mixed_scenario().records.into_iter().partition(|r| r.time() < at);
    let (a_events, a_grants) = write_jsonl(dir, "a", &a);
    let (b_events, b_grants) = write_jsonl(dir, "b", &b);
    Split { a_events, a_grants, b_events, b_grants, state: dir.join("state.json").to_string_lossy().into_owned() }
}

#[test]
fn replaying_a_then_b_with_state_equals_replaying_a_and_b() {
    let dir = tempfile::tempdir().unwrap();
    let Split { a_events, a_grants, b_events, b_grants, state } = split(dir.path());

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

/// Issue 9, item 9: an output that names an input would be truncated before it is read.
#[test]
fn outputs_that_are_inputs_or_each_other_are_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let line = r#"{"event_id":"e","time":"2026-03-02T10:00:00Z","identity":"i","target":"t","action":"a"}"#;
    let (events, grants, policy, state) = (at("events.jsonl"), at("grants.jsonl"), at("policy.toml"), at("state.json"));
    std::fs::write(&events, format!("{line}\n")).unwrap();
    std::fs::write(&grants, "").unwrap();
    std::fs::write(&policy, "").unwrap();
    let (code, _, err) = overreach(&["replay", &events, "--state-out", &state]);
    assert_eq!(code, 0, "{err}");
    let originals: Vec<(String, Vec<u8>)> =
        [&events, &grants, &policy, &state].iter().map(|p| (p.to_string(), std::fs::read(p).unwrap())).collect();
    let fresh = at("alerts.jsonl");
    let cases: [(&[&str], &str, &str); 6] = [
        (&["--alerts-out", &events], "--alerts-out", "input"),
        (&["--rejects-out", &grants, "--grants", &grants], "--rejects-out", "--grants"),
        (&["--state-out", &events], "--state-out", "input"),
        (&["--alerts-out", &policy, "--policy", &policy], "--alerts-out", "--policy"),
        (&["--rejects-out", &state, "--state-in", &state], "--rejects-out", "--state-in"),
        (&["--alerts-out", &fresh, "--rejects-out", &fresh], "--rejects-out", "--alerts-out"),
    ];
    for (extra, output, other) in cases {
        let args: Vec<&str> = ["replay", events.as_str()].into_iter().chain(extra.iter().copied()).collect();
        let (code, out, err) = overreach(&args);
        assert_ne!(code, 0, "{args:?} must be refused");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(output) && err.contains(&format!("same file as {other}")), "{args:?}: {err}");
        for (path, bytes) in &originals {
            assert_eq!(&std::fs::read(path).unwrap(), bytes, "{args:?} changed {path}");
        }
        assert!(!std::path::Path::new(&fresh).exists(), "{args:?} created an output before refusing");
    }
    // Rolling one state file forward is safe: it is read whole first and replaced by a rename.
    let (code, _, err) = overreach(&["replay", &events, "--state-in", &state, "--state-out", &state]);
    assert_eq!(code, 0, "{err}");
}

/// A CloudTrail S3 log object: `{"Records":[...]}` on one line. Record 100 is over the
/// line limit on its own, record 200 is not JSON (with a `]` and a `,` inside a string,
/// which must not end it early).
fn s3_log_object(records: usize) -> String {
    let record = |i: usize| {
        let key = if i == 100 { "k".repeat(1_100_000) } else { format!("logs/{i}") };
        serde_json::json!({"eventVersion": "1.09", "eventTime": format!("2026-03-02T10:{:02}:{:02}Z", i / 60 % 60, i % 60),
            "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventID": format!("ev-{i}"),
            "recipientAccountId": "111122223333", "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::111122223333:user/u{}", i % 7)},
            "requestParameters": {"bucketName": "b", "key": key}, "sourceIPAddress": "10.0.0.1",
            "userAgent": format!("aws-cli/2.15 {}", "x".repeat(1500))})
        .to_string()
    };
    let elements: Vec<String> = (0..records)
        .map(|i| if i == 200 { r#"{"eventTime": nope, "x": ["],", {"y": "\"]"}]}"#.to_string() } else { record(i) })
        .collect();
    format!("  {{ \"Records\" : [{}] }}\n", elements.join(", "))
}

#[test]
fn a_cloudtrail_log_object_over_the_line_limit_is_read_record_by_record() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let object = s3_log_object(3000);
    assert!(object.len() > 5_000_000, "{} bytes", object.len());
    let plain = dir.path().join("s3.json");
    std::fs::write(&plain, &object).unwrap();
    let zipped = dir.path().join("s3.json.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&zipped).unwrap(), flate2::Compression::fast());
    gz.write_all(object.as_bytes()).unwrap();
    gz.finish().unwrap();
    for path in [plain, zipped] {
        let p = path.to_string_lossy().into_owned();
        let rejects = dir.path().join("rejects.txt");
        let (code, _, err) = overreach(&["replay", &p, "--rejects-out", rejects.to_str().unwrap(), "--quiet"]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("2998 events"), "{err}");
        assert!(err.contains("2 rejected (element_too_long=1 invalid_json=1)"), "{err}");
        let rejects = std::fs::read_to_string(rejects).unwrap();
        let lines: Vec<&str> = rejects.lines().collect();
        assert_eq!(lines.len(), 2, "{rejects}");
        assert!(lines[0].starts_with(&format!("{p}:1:Records[100]: element is ")), "{}", lines[0]);
        assert!(lines[0].ends_with("bytes, over the limit of 1048576"), "{}", lines[0]);
        assert!(lines[1].starts_with(&format!("{p}:1:Records[200]: not valid JSON: ")), "{}", lines[1]);
    }
}

#[test]
fn records_objects_keep_their_neighbours_and_say_where_a_record_failed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let native = r#"{"event_id":"n","time":"2026-03-02T09:00:00Z","identity":"i","target":"t","action":"a"}"#;
    let good = r#"{"eventTime":"2026-03-02T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/u"}}"#;
    let lines = [
        native.to_string(),
        format!(r#"{{"Records":[{good}, 3, {{"eventTime":"2026-03-02T10:00:00Z"}}, {good}]}}"#),
        r#"{"Records":[]}"#.to_string(),
        format!(r#"{{"Records":[{good},]}}"#),
        format!(r#"{{"Records":[{good}]}} trailing"#),
        format!(r#"{{"Records":[{good}, {{"eventTime": "2026"#),
        native.to_string(),
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let p = path.to_string_lossy().into_owned();
    let rejects = dir.path().join("rejects.txt");
    let (code, _, err) = overreach(&["replay", &p, "--rejects-out", rejects.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(rejects).unwrap().lines().collect::<Vec<_>>(),
        [
            format!("{p}:2:Records[1]: expected a JSON object, found a number"),
            format!("{p}:2:Records[2]: missing required field `userIdentity`"),
            format!("{p}:4:Records[1]: not valid JSON: empty element in the `Records` array"),
            format!("{p}:5:Records[1]: not valid JSON: expected only `}}` after the `Records` array"),
            format!("{p}:6:Records[1]: not valid JSON: the line ends before the `Records` array is closed"),
        ]
    );
    assert!(err.contains("7 events"), "2 native and 5 CloudTrail records: {err}");
}

/// Issue 9, item 14: a field (or a file name) that clears the screen or forges a reject
/// line must reach neither the terminal nor the rejects file raw.
#[test]
fn control_characters_in_records_and_file_names_never_reach_stderr_or_the_rejects_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil\x1b[2J\r\nforged.jsonl:1: x.jsonl");
    let hostile = "\\u001b[2J\\r\\nforged.jsonl:1: missing required field `identity`";
    let lines = [
        format!(r#"{{"time":"2026-03-02T10:00:00Z","identity":"i","target":"t","action":"a","outcome":"{hostile}"}}"#),
        format!(
            r#"{{"kind":"grant","time":"2026-03-02T10:00:00Z","grant_id":"g","identity":"i","scope":{{"{hostile}":1}}}}"#
        ),
        format!(r#"{{"time":"{hostile}","identity":"i","target":"t","action":"a"}}"#),
        r#"{"time":"2026-03-02T10:00:00Z","identity":"i","target":"t","action":"a"}"#.to_string(),
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let p = path.to_str().unwrap();
    let printable = |text: &str| text.chars().all(|c| c == '\n' || !c.is_control());

    let rejects = dir.path().join("rejects.txt");
    let (code, _, err) = overreach(&["replay", p, "--rejects-out", rejects.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    assert!(printable(&rejected) && printable(&err), "{rejected:?}\n{err:?}");
    assert_eq!(rejected.lines().count(), 3, "{rejected}");
    assert!(
        rejected.lines().all(|l| l.contains("evil\\u{1b}[2J\\u{d}\\u{a}forged")),
        "the file name, escaped: {rejected}"
    );
    assert!(
        rejected.contains("\\u{1b}[2J\\u{d}\\u{a}forged.jsonl:1: missing"),
        "the field is shown, escaped: {rejected}"
    );

    let (code, _, err) = overreach(&["replay", p, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(printable(&err), "{err:?}");
    assert_eq!(err.lines().count(), 4, "three rejects and the summary:\n{err}");
}

/// Issue 9, item 17: values no log can mean are rejected with the field named.
#[test]
fn event_times_out_of_range_and_blank_identities_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.jsonl");
    let lines = [
        r#"{"event_id":"a","time":1e300,"identity":"i","target":"t","action":"a"}"#,
        r#"{"event_id":"b","time":-1,"identity":"i","target":"t","action":"a"}"#,
        r#"{"event_id":"c","time":"2026-03-02T10:00:00Z","identity":"   ","target":"t","action":"a"}"#,
        r#"{"kind":"identity_offboarded","time":"2026-03-01T00:00:00Z","identity":"gone"}"#,
        r#"{"event_id":"d","time":9223372036854775807,"identity":"gone","target":"t","action":"a"}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let p = path.to_string_lossy().into_owned();
    let (code, out, err) = overreach(&["replay", &p, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "no alert may carry such a time: {out}");
    let range = "field `time`: expected a time from 1970-01-01 to 9999-12-31, found";
    for expected in [
        format!("{p}:1: {range} 1e+300"),
        format!("{p}:2: {range} -1"),
        format!("{p}:3: field `identity`: is empty or only whitespace"),
        format!("{p}:5: {range} 9223372036854775807"),
    ] {
        assert!(err.lines().any(|l| l == expected), "missing {expected:?} in\n{err}");
    }
}

#[test]
fn engine_settings_that_mean_nothing_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("e.jsonl");
    std::fs::write(&events, r#"{"time":1,"identity":"i","target":"t","action":"a"}"#).unwrap();
    let config = dir.path().join("engine.toml");
    std::fs::write(&config, "[engine]\nnovelty_max_probability = 0.0\n").unwrap();
    let e = events.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--learning-days", "nan"], "`learning_days` is NaN"),
        (&["--learning-days=-1"], "`learning_days` is -1"),
        (&["--max-identities", "0"], "`max_identities` is 0"),
        (&["--suppression-window-s=-5"], "`suppression_window_s` is -5"),
        (&["--config", config.to_str().unwrap()], "`novelty_max_probability` is 0"),
    ];
    for (flags, expected) in cases {
        let args: Vec<&str> = ["replay", e].into_iter().chain(flags.iter().copied()).collect();
        let (code, out, err) = overreach(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(out.is_empty());
        assert!(err.contains(expected) && err.contains("expected"), "{args:?}: {err}");
    }
}

/// With no learning period at all, a first call has no history: it cannot end a silence.
#[test]
fn no_learning_period_gives_no_dormancy_from_1970() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Scenario::new();
    for i in 0..50 {
        for day in 0..3 {
            s.push(ev(&format!("svc-{i}"), t0() + day * DAY + i * 60_000, "s3", "GetObject"));
        }
    }
    s.records.sort_by_key(|r| r.time());
    let (events, _) = write_jsonl(dir.path(), "all", &s.records);
    let (code, out, err) = overreach(&["replay", &events, "--learning-days", "0", "--learning-events", "0"]);
    assert_eq!(code, 0, "{err}");
    let dormant: Vec<&str> = out.lines().filter(|l| l.contains("\"dormant_reactivation\"")).collect();
    assert!(dormant.is_empty(), "{} false dormancy alerts, e.g. {}", dormant.len(), dormant[0]);
}

/// Issue 9, item 18: `overreach replay ... | head -1` ends quietly, as `cat` does.
#[test]
fn a_reader_that_closes_stdout_early_ends_the_run_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    // Every call of an offboarded identity alerts: far more output than a pipe holds.
    let mut s = Scenario::new();
    for i in 0..3000 {
        let identity = format!("gone-{i}");
        s.fact(t0(), overreach::model::Lifecycle::IdentityOffboarded { identity: identity.clone() });
        s.push(ev(&identity, t0() + DAY, "s3", "GetObject"));
    }
    let (events, grants) = write_jsonl(dir.path(), "all", &s.records);
    let state = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["replay", &events, "--grants", &grants, "--state-out", state.to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("post_purpose"), "{first}");
    let out = child.wait_with_output().unwrap(); // the reader is dropped: stdout is closed
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(141), "128 + SIGPIPE, as a shell reports for `cat`: {err}");
    assert!(err.is_empty(), "no message, no backtrace: {err}");
    assert!(!state.exists(), "a run cut short saves no state");
}

#[test]
fn in_incidents_mode_a_then_b_with_state_equals_a_and_b_and_replays_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("incidents.toml");
    std::fs::write(&config, "[engine]\nalerts = \"incidents\"\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let Split { a_events, a_grants, b_events, b_grants, state } = split(dir.path());
    let both = ["replay", "--config", &config, &a_events, &b_events, "--grants", &a_grants, "--grants", &b_grants];

    let (code, whole, err) = overreach(&both);
    assert_eq!(code, 0, "{err}");
    assert_eq!(overreach(&both).1, whole, "the same input gives the same incidents, byte for byte");
    assert!(whole.contains("\"incident\":{"), "{whole}");
    let (code, first, err) =
        overreach(&["replay", "--config", &config, &a_events, "--grants", &a_grants, "--state-out", &state]);
    assert_eq!(code, 0, "{err}");
    let (code, resumed, err) =
        overreach(&["replay", "--config", &config, &b_events, "--grants", &b_grants, "--state-in", &state]);
    assert_eq!(code, 0, "{err}");
    // Every send, updates and closes included, comes out as in one replay:
    // A's sends, then B's (a close triggered by B's time carries the source
    // of its last evidence, which may be in A).
    let (whole, first, resumed): (Vec<&str>, Vec<&str>, Vec<&str>) =
        (whole.lines().collect(), first.lines().collect(), resumed.lines().collect());
    assert!(!resumed.is_empty(), "the scenario must alert after the split");
    assert_eq!(whole.len(), first.len() + resumed.len());
    assert_eq!(&whole[..first.len()], &first[..]);
    assert_eq!(&whole[first.len()..], &resumed[..]);
}
