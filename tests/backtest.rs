//! The backtest: its arithmetic on a hand-made case, and a smoke run of
//! `simulate` then `backtest --json` through the real binary.

use overreach::backtest::score::{score, Hit, Truth};
use overreach::simulate::IncidentClass;
use serde_json::Value;
use std::process::Command;

#[test]
fn scores_a_hand_made_case() {
    let (x, y) = (IncidentClass::ExfiltrationBurst, IncidentClass::NewDelegator);
    let truth = |class, start| Truth { class, start, attack: None };
    let truths = [truth(x, 0), truth(x, 100_000), truth(y, 0)];
    let hit = |time: i64, incidents: &[usize]| Hit {
        alert_id: time.to_string(),
        detector: "d".into(),
        time,
        incidents: incidents.to_vec(),
    };
    let hits = [
        hit(10_000, &[0]),
        hit(5_000, &[0]), // the earliest alert on incident 0 counts, whatever the order
        hit(400_000, &[1]),
        hit(1, &[]),
        hit(2, &[]),
    ];
    let s = score(&truths, &hits, 40.0);
    // Caught: incident 0 after 5 s, incident 1 after 300 s; incident 2 missed.
    assert_eq!(s.overall.recall, Some(2.0 / 3.0));
    assert_eq!(s.overall.precision, Some(3.0 / 5.0));
    assert_eq!(s.overall.false_per_1k_identity_days, 2.0 * 1000.0 / 40.0);
    assert_eq!(s.overall.median_time_to_detect_s, Some(152.5));
    let cx = &s.classes[&x];
    assert_eq!((cx.incidents, cx.caught, cx.recall, cx.median_time_to_detect_s), (2, 2, Some(1.0), Some(152.5)));
    let cy = &s.classes[&y];
    assert_eq!((cy.incidents, cy.caught, cy.recall, cy.median_time_to_detect_s), (1, 0, Some(0.0), None));
    assert_eq!((s.detectors["d"].alerts, s.detectors["d"].false_alerts), (5, 2));
}

#[test]
fn no_alerts_means_no_precision_and_no_false_rate() {
    let s = score(&[Truth { class: IncidentClass::ScopeViolation, start: 0, attack: None }], &[], 10.0);
    assert_eq!(s.overall.recall, Some(0.0));
    assert_eq!(s.overall.precision, None);
    assert_eq!(s.overall.false_per_1k_identity_days, 0.0);
}

#[test]
fn simulate_then_backtest_prints_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let bin = env!("CARGO_BIN_EXE_overreach");
    let status = Command::new(bin)
        .args(["simulate", "--identities", "30", "--days", "10", "--seed", "4"])
        .args(["--out", &path("events.jsonl"), "--grants-out", &path("grants.jsonl")])
        .args(["--labels-out", &path("labels.jsonl")])
        .status()
        .unwrap();
    assert!(status.success());
    let labels = std::fs::read_to_string(path("labels.jsonl")).unwrap().lines().count();
    assert!(labels > 0);

    let backtest = |extra: &[&str]| {
        let out = Command::new(bin)
            .args(["backtest", "--events", &path("events.jsonl"), "--labels", &path("labels.jsonl")])
            .args(["--grants", &path("grants.jsonl")])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let stdout = backtest(&["--json"]);
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON object");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    for scores in [&report, &report["reference"]] {
        for key in ["recall", "precision", "false_per_1k_identity_days"] {
            let v = &scores["overall"][key];
            assert!(v.is_number() || v.is_null(), "overall.{key} = {v}");
        }
        let classes = scores["classes"].as_object().unwrap();
        let incidents: u64 = classes.values().map(|c| c["incidents"].as_u64().unwrap()).sum();
        assert_eq!(incidents as usize, labels, "every label is scored once");
        for (name, class) in classes {
            assert!(name.parse::<IncidentClass>().is_ok(), "{name}");
            assert!(class["caught"].as_u64().unwrap() <= class["incidents"].as_u64().unwrap());
            assert!(class["recall"].is_number());
            assert!(class.as_object().unwrap().contains_key("median_time_to_detect_s"));
        }
    }
    assert!(report["overall"]["recall"].as_f64().unwrap() > 0.0, "the engine catches something");

    let table = backtest(&[]);
    assert!(table.contains("first-seen") && table.contains("false alerts / 1k identity-days"), "{table}");
}

#[test]
fn a_broken_label_line_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.jsonl");
    let events = dir.path().join("events.jsonl");
    std::fs::write(&labels, "{\"incident_id\": \"i\"}\n").unwrap();
    std::fs::write(&events, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["backtest", "--events", events.to_str().unwrap(), "--labels", labels.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("labels.jsonl:1:"), "{stderr}");
}
