//! Suppression rules through the real engine and the real binary: a rule keeps
//! a finding out of alerts and incidents, counts it under its name, and shows
//! it marked `suppressed` when asked; a bad rule stops the run naming itself.

mod common;

use common::*;
use overreach::alert::{Alert, AlertStatus};
use overreach::detect::{self, Detector};
use overreach::engine::{AlertMode, Engine, EngineConfig, Suppression};
use overreach::model::AccessEvent;
use overreach::suppress::rules_from_toml;
use overreach::time::{DAY, HOUR, MINUTE};

const LEARNED_DAYS: i64 = 42;

fn novel() -> Detector {
    detect::novel_call::SPEC.detector()
}

fn findings() -> EngineConfig {
    EngineConfig { alerts: AlertMode::Findings, ..EngineConfig::default() }
}

/// Six weeks of a pipeline, then `probe`: a call it never made, on the
/// Monday of the seventh week inside its usual hours.
fn scenario(probe: AccessEvent) -> Scenario {
    let mut s = Scenario::new();
    s.pipeline("ci-payments", LEARNED_DAYS, 6);
    s.push(AccessEvent { event_id: "probe".into(), ..probe });
    s
}

fn new_call() -> AccessEvent {
    AccessEvent {
        identity_type: Some("ci_pipeline".into()),
        on_behalf_of: Some("team-payments".into()),
        session_id: Some("probe-run".into()),
        ..ev("ci-payments", t0() + LEARNED_DAYS * DAY + 10 * HOUR + 5 * MINUTE, "iam", "CreateAccessKey")
    }
}

/// A rules file: each rule a `[[suppress]]` table of `key = value` lines.
fn rules(tables: &[&str]) -> String {
    tables.iter().map(|t| format!("[[suppress]]\n{t}\n")).collect()
}

fn engine(config: EngineConfig, rules_text: &str, show: bool) -> Engine {
    let mut engine = Engine::new(config);
    engine.set_suppression(Suppression { rules: rules_from_toml(rules_text).unwrap(), show });
    engine
}

fn on_probe(alerts: &[Alert]) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.event_ids.iter().any(|e| e == "probe")).collect()
}

const KEY_ROTATION: &str = "name = \"key-rotation\"\nreason = \"Rotates its key monthly.\"\n\
                            identity = \"ci-*\"\ndetector = \"novel_call\"\ncall = \"iam Create*\"";

#[test]
fn a_rule_suppresses_a_finding_that_would_alert_and_counts_it() {
    let s = scenario(new_call());
    // Without the rule the new call alerts.
    assert!(fired(&s.run(findings()), novel(), "probe"));

    let mut e = engine(findings(), &rules(&[KEY_ROTATION]), false);
    let alerts = s.run_on(&mut e);
    assert!(!fired(&alerts, novel(), "probe"), "{:#?}", on_probe(&alerts));
    assert_eq!(e.stats().suppressed_by_rule.get("key-rotation"), Some(&1));
    assert!(!e.stats().alerts.contains_key(&novel()), "a suppressed finding is no alert");

    // The same rule in incidents mode: the finding raises no incident.
    let mut e = engine(EngineConfig::default(), &rules(&[KEY_ROTATION]), false);
    let alerts = s.run_on(&mut e);
    assert!(!fired(&alerts, novel(), "probe"), "{:#?}", on_probe(&alerts));
    assert!(fired(&s.run(EngineConfig::default()), novel(), "probe"), "without the rule, an incident");
    assert_eq!(e.stats().suppressed_by_rule.get("key-rotation"), Some(&1));
}

#[test]
fn a_rule_that_expired_before_the_event_does_not_suppress() {
    let s = scenario(new_call());
    // The probe is at 2026-04-13T10:05Z.
    for (expires, suppressed) in [("2026-04-13T10:00:00Z", false), ("2026-04-13T10:10:00Z", true)] {
        let rule = format!("{KEY_ROTATION}\nexpires = \"{expires}\"");
        let mut e = engine(findings(), &rules(&[&rule]), false);
        let alerts = s.run_on(&mut e);
        assert_eq!(fired(&alerts, novel(), "probe"), !suppressed, "expires {expires}");
        assert_eq!(e.stats().suppressed_by_rule.contains_key("key-rotation"), suppressed, "expires {expires}");
    }
}

#[test]
fn a_network_rule_matches_the_source_address_v4_and_v6() {
    let office = |n: &str| {
        format!("name = \"office\"\nreason = \"The office may.\"\ndetector = \"novel_call\"\nnetwork = \"{n}\"")
    };
    for (source, network, suppressed) in [
        ("10.0.0.5", "10.0.0.0/8", true),
        ("10.0.0.5", "192.168.0.0/16", false),
        ("2001:db8:1::5", "2001:db8::/32", true),
        ("2001:db8:1::5", "10.0.0.0/8", false),
        ("2001:db8:1::5", "2001:db9::/32", false),
    ] {
        let s = scenario(AccessEvent { source_ip: Some(source.into()), ..new_call() });
        let mut e = engine(findings(), &rules(&[&office(network)]), false);
        let alerts = s.run_on(&mut e);
        assert_eq!(fired(&alerts, novel(), "probe"), !suppressed, "{source} in {network}");
    }
}

#[test]
fn shown_suppressed_findings_are_marked_and_name_their_rule() {
    let s = scenario(new_call());
    // The first rule that matches counts it; the second is never reached.
    let other = "name = \"any-novel\"\nreason = \"Everything is fine.\"\ndetector = \"novel_call\"";
    let mut e = engine(findings(), &rules(&[KEY_ROTATION, other]), true);
    let alerts = s.run_on(&mut e);
    let shown: Vec<&Alert> = on_probe(&alerts).into_iter().filter(|a| a.detector == novel()).collect();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert_eq!(shown[0].status, Some(AlertStatus::Suppressed));
    assert_eq!(shown[0].suppression_rule.as_deref(), Some("key-rotation"));
    assert!(!e.stats().suppressed_by_rule.contains_key("any-novel"));
    let json = serde_json::to_value(shown[0]).unwrap();
    assert_eq!(
        (json["status"].as_str(), json["suppression_rule"].as_str()),
        (Some("suppressed"), Some("key-rotation"))
    );
    // Alerts no rule matched carry neither field.
    for a in alerts.iter().filter(|a| a.status.is_none()) {
        let line = a.to_json_line();
        assert!(!line.contains("\"status\":\"suppressed\"") && !line.contains("suppression_rule"), "{line}");
    }
}

#[test]
fn a_rule_on_one_detector_leaves_an_incident_of_other_evidence_standing() {
    // The new call also uses a credential past its expiry: a declared finding
    // that raises an incident on its own.
    let expired = AccessEvent {
        credential_id: Some("cred-old".into()),
        credential_expires_at: Some(new_call().time - DAY),
        ..new_call()
    };
    let s = scenario(expired);
    let incident_on_probe = |alerts: &[Alert]| -> Vec<Detector> {
        let incident = alerts
            .iter()
            .filter_map(|a| a.incident.as_ref())
            .find(|i| i.signals.iter().any(|signal| signal.event_id == "probe"))
            .expect("the expired credential raises an incident");
        incident.signals.iter().map(|signal| signal.detector).collect()
    };
    let without = incident_on_probe(&s.run(EngineConfig::default()));
    assert!(without.contains(&novel()) && without.contains(&detect::expired_credential::SPEC.detector()));

    let mut e = engine(EngineConfig::default(), &rules(&[KEY_ROTATION]), false);
    let with = incident_on_probe(&s.run_on(&mut e));
    assert!(with.contains(&detect::expired_credential::SPEC.detector()), "{with:?}");
    assert!(!with.contains(&novel()), "the suppressed signal joined the incident: {with:?}");
    assert_eq!(without.len(), with.len() + 1, "{without:?} vs {with:?}");
}

/// `replay --config` with rules, through the binary.
fn replay(s: &Scenario, config: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "in", &s.records);
    let config_path = dir.path().join("overreach.toml");
    std::fs::write(&config_path, config).unwrap();
    let config_path = config_path.to_string_lossy().into_owned();
    let mut args = vec!["replay", "--quiet", "--config", &config_path, "--grants", &grants, &events];
    args.extend(extra);
    overreach(&args)
}

#[test]
fn replay_shows_suppressed_alerts_valid_in_both_formats_and_counts_them_by_rule() {
    let s = scenario(new_call());
    let config = format!("[engine]\nalerts = \"findings\"\n\n{}", rules(&[KEY_ROTATION]));

    let (code, stdout, stderr) = replay(&s, &config, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("suppressed"), "{stdout}");
    assert!(stderr.contains("1 findings suppressed by rule (key-rotation=1)"), "{stderr}");

    // The binary's native output is checked against the alert schema line by line.
    let (code, stdout, stderr) = replay(&s, &config, &["--show-suppressed"]);
    assert_eq!(code, 0, "{stderr}");
    let shown: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["status"] == "suppressed")
        .collect();
    assert_eq!(shown.len(), 1, "{stdout}");
    assert_eq!(
        (shown[0]["detector"].as_str(), shown[0]["suppression_rule"].as_str()),
        (Some("novel_call"), Some("key-rotation"))
    );

    let (code, stdout, stderr) = replay(&s, &config, &["--show-suppressed", "--alert-format", "ocsf"]);
    assert_eq!(code, 0, "{stderr}");
    let findings: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for f in &findings {
        schema::assert_valid_ocsf(f);
    }
    let suppressed: Vec<&serde_json::Value> = findings.iter().filter(|f| f["status_id"] == 3).collect();
    assert_eq!(suppressed.len(), 1, "{stdout}");
    assert_eq!(suppressed[0]["status"], "Suppressed");
    assert_eq!(suppressed[0]["status_detail"], "key-rotation");
    assert!(findings.iter().filter(|f| f["status_id"] == 1).all(|f| f.get("status_detail").is_none()));
}

#[test]
fn a_bad_rule_stops_the_run_naming_the_rule_and_the_reason() {
    let s = scenario(new_call());
    let cases = [
        ("name = \"no-why\"", "suppress rule `no-why`: `reason` is required"),
        (
            "name = \"office\"\nreason = \"r\"\nnetwork = \"10.0.0.0/33\"",
            "suppress rule `office`: `network` is not a CIDR block",
        ),
        (
            "name = \"typo\"\nreason = \"r\"\ndetector = \"novel_calls\"",
            "suppress rule `typo`: unknown detector `novel_calls`",
        ),
    ];
    for (table, want) in cases {
        let (code, stdout, stderr) = replay(&s, &rules(&[table]), &[]);
        assert_ne!(code, 0, "{table}");
        assert!(stdout.is_empty(), "nothing runs before the rules are checked: {stdout}");
        assert!(stderr.contains(want), "{table}: {stderr}");
    }
    let twice = rules(&[KEY_ROTATION, KEY_ROTATION]);
    let (code, _, stderr) = replay(&s, &twice, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("suppress rule `key-rotation`: the name is used by an earlier rule"), "{stderr}");
}
