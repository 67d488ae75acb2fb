//! Analyst verdicts through the real binary (`replay --feedback FILE`): benign
//! feedback stops a repeat and is learned, malicious feedback keeps an
//! attacker's calls out of the baseline and raises what follows until cleared,
//! a verdict for an unknown alert is rejected with its place, and replays
//! with feedback are deterministic and carry over in the saved state.

mod common;

use common::*;
use overreach::model::{AccessEvent, Grant, Lifecycle, Scope};
use overreach::time::{format_rfc3339, DAY, HOUR, MINUTE};
use serde_json::{json, Value};

/// Day (from `t0`, a Monday) of the integration's out-of-scope call, and of its repeats.
const VIOLATIONS: [i64; 3] = [14, 16, 18];
/// Days of the attacker's 03:00 `iam CreateAccessKey` with the pipeline's credential.
const ATTACKS: [i64; 3] = [22, 24, 29];
/// Day of another odd call of the pipeline's, from elsewhere again.
const LATER: i64 = 30;

/// A pipeline and an integration learn for four weeks; the integration calls
/// outside its grant's scope three times, and the pipeline's identity is used
/// by an attacker three times.
fn scenario() -> Scenario {
    let mut s = Scenario::new();
    s.pipeline("ci-web", 32, 3);
    let scope = Scope { targets: vec!["crm".into()], ..Default::default() };
    let grant = Grant {
        grant_id: "g-sync".into(),
        identity: "saas-sync".into(),
        on_behalf_of: None,
        scope,
        not_before: None,
        expires_at: None,
        windows: vec![],
    };
    s.fact(t0(), Lifecycle::Grant(grant));
    for h in 0..(32 * 24) {
        s.push(ev("saas-sync", t0() + h * HOUR + 7 * MINUTE, "crm", "SyncRecords"));
    }
    for day in VIOLATIONS {
        s.push(ev("saas-sync", t0() + day * DAY + 12 * HOUR + 30 * MINUTE, "s3", "GetObject"));
    }
    for day in ATTACKS {
        s.push(AccessEvent {
            source_ip: Some("203.0.113.50".into()),
            user_agent: Some("curl/8".into()),
            ..ev("ci-web", t0() + day * DAY + 3 * HOUR, "iam", "CreateAccessKey")
        });
    }
    s.push(AccessEvent {
        source_ip: Some("198.51.100.7".into()),
        user_agent: Some("python-requests/2.31".into()),
        ..ev("ci-web", t0() + LATER * DAY + 2 * HOUR, "ec2", "RunInstances")
    });
    s.records.sort_by_key(|r| r.time());
    s
}

struct Files {
    events: String,
    grants: String,
    dir: tempfile::TempDir,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let (events, grants) = write_jsonl(dir.path(), "all", &scenario().records);
    Files { events, grants, dir }
}

impl Files {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// Writes verdict lines (each checked against the verdict schema) and returns the file.
    fn feedback(&self, verdicts: &[Value]) -> String {
        let schema = verdict_schema();
        let mut text = String::new();
        for v in verdicts {
            let errors: Vec<String> = schema.iter_errors(v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{v}: {errors:?}");
            text.push_str(&format!("{v}\n"));
        }
        let path = self.path("feedback.jsonl");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Replays the scenario with `extra` arguments: (alerts, stderr). Alerts are schema-checked.
    fn replay(&self, extra: &[&str]) -> (Vec<Value>, String) {
        let mut args = vec!["replay", &self.events, "--grants", &self.grants, "--quiet"];
        args.extend(extra);
        let (code, out, err) = overreach(&args);
        assert_eq!(code, 0, "{err}");
        (out.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), err)
    }
}

fn verdict_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/verdict.v1.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn verdict(at: i64, alert_id: &str, verdict: &str, scope: &str) -> Value {
    json!({"time": format_rfc3339(at), "alert_id": alert_id, "verdict": verdict, "scope": scope, "by": "ana@soc.example", "note": "checked with the owner"})
}

/// The alerts whose triggering event (the latest of an incident) is on `day` for `identity`.
fn on_day<'a>(alerts: &'a [Value], identity: &str, day: i64) -> Vec<&'a Value> {
    let date = &format_rfc3339(t0() + day * DAY)[..10];
    alerts.iter().filter(|a| a["identity"] == identity && a["time"].as_str().unwrap().starts_with(date)).collect()
}

fn id_of(alert: &Value) -> String {
    alert["alert_id"].as_str().unwrap().to_string()
}

/// The calls `identity`'s saved baseline holds, by name.
fn calls_in_state(state: &str, identity: &str) -> Vec<String> {
    let state: Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    let strings = state["names"]["strings"].as_array().unwrap();
    let name = |v: &Value| strings[v.as_u64().unwrap() as usize].as_str().unwrap().to_string();
    let id = strings.iter().position(|s| s == identity).unwrap() as u64;
    let (_, baseline) =
        state["identities"].as_array().unwrap().iter().map(|p| (&p[0], &p[1])).find(|(i, _)| **i == id).unwrap();
    let table = state["names"]["calls"].as_array().unwrap();
    let entries = baseline["calls"]["entries"].as_array().unwrap();
    entries
        .iter()
        .map(|e| &table[e[0].as_u64().unwrap() as usize])
        .map(|k| format!("{} {}", name(&k["target"]), name(&k["action"])))
        .collect()
}

#[test]
fn a_benign_verdict_stops_the_repeat_of_a_declared_finding() {
    let f = files();
    let (plain, _) = f.replay(&[]);
    for day in VIOLATIONS {
        let alerts = on_day(&plain, "saas-sync", day);
        assert!(alerts.iter().any(|a| a["event"]["action"] == "GetObject"), "day {day}: {alerts:#?}");
    }
    let first = id_of(on_day(&plain, "saas-sync", VIOLATIONS[0])[0]);
    let feedback = f.feedback(&[verdict(t0() + VIOLATIONS[0] * DAY + 14 * HOUR, &first, "benign", "alert")]);
    let (judged, err) = f.replay(&["--feedback", &feedback]);
    assert!(err.contains("1 verdicts applied"), "{err}");
    assert!(!on_day(&judged, "saas-sync", VIOLATIONS[0]).is_empty(), "alerts before the verdict stay");
    for day in &VIOLATIONS[1..] {
        assert!(on_day(&judged, "saas-sync", *day).is_empty(), "day {day}: {:#?}", on_day(&judged, "saas-sync", *day));
    }
}

#[test]
fn a_benign_verdict_of_scope_call_learns_the_call_while_its_incident_is_open() {
    let f = files();
    let (plain, _) = f.replay(&[]);
    let attack = id_of(on_day(&plain, "ci-web", ATTACKS[0])[0]);
    // Cut the replay an hour after the attack: its incident is open and holds the call.
    let cut = f.path("cut.jsonl");
    let limit = t0() + ATTACKS[0] * DAY + 4 * HOUR;
    let lines: Vec<&str> = std::fs::read_to_string(&f.events).unwrap().leak().lines().collect();
    let kept: Vec<&str> = lines
        .into_iter()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["time"].as_i64().unwrap() < limit)
        .collect();
    std::fs::write(&cut, kept.join("\n") + "\n").unwrap();
    let run = |extra: &[&str], state: &str| {
        let mut args = vec!["replay", &cut, "--grants", &f.grants, "--quiet", "--state-out", state];
        args.extend(extra);
        let (code, _, err) = overreach(&args);
        assert_eq!(code, 0, "{err}");
        calls_in_state(state, "ci-web")
    };
    let held = run(&[], &f.path("held.json"));
    assert_eq!(held.len(), PIPELINE.len(), "{held:?}");
    let feedback = f.feedback(&[verdict(limit - 30 * MINUTE, &attack, "benign", "call")]);
    let learned = run(&["--feedback", &feedback], &f.path("learned.json"));
    assert_eq!(learned.len(), PIPELINE.len() + 1, "{learned:?}");
    assert!(learned.contains(&"iam CreateAccessKey".to_string()), "{learned:?}");
}

#[test]
fn a_malicious_verdict_keeps_the_attacker_out_raises_severity_until_cleared() {
    let f = files();
    let (plain, _) = f.replay(&[]);
    let first = on_day(&plain, "ci-web", ATTACKS[0]);
    let attack = id_of(first[0]);
    // Without a verdict the closed incident's calls are learned: the repeat two days later is quiet.
    assert!(on_day(&plain, "ci-web", ATTACKS[1]).is_empty(), "{:#?}", on_day(&plain, "ci-web", ATTACKS[1]));

    let marked_at = t0() + ATTACKS[0] * DAY + 5 * HOUR;
    let cleared_at = t0() + (ATTACKS[1] + 1) * DAY;
    let feedback = f.feedback(&[
        verdict(marked_at, &attack, "malicious", "alert"),
        verdict(cleared_at, &attack, "benign", "identity"),
    ]);
    let state = f.path("state.json");
    let (judged, err) = f.replay(&["--feedback", &feedback, "--state-out", &state]);
    assert!(err.contains("2 verdicts applied"), "{err}");
    // The repeat alerts again (nothing was learned), raised and marked.
    let repeat = on_day(&judged, "ci-web", ATTACKS[1]);
    assert!(!repeat.is_empty(), "the attacker's call was learned");
    for a in &repeat {
        assert!(matches!(a["severity"].as_str(), Some("high" | "critical")), "{a}");
        assert_eq!(
            a["compromised"],
            json!({"time": format_rfc3339(marked_at), "by": "ana@soc.example", "alert_id": attack})
        );
    }
    // The OCSF finding carries it under `unmapped`, valid against its schema.
    let ocsf_args = ["replay", &f.events, "--grants", &f.grants, "--feedback", &feedback, "--alert-format", "ocsf"];
    let (code, ocsf, err) = overreach(&ocsf_args);
    assert_eq!(code, 0, "{err}");
    let marked: Vec<Value> = ocsf.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect();
    for finding in &marked {
        schema::assert_valid_ocsf(finding);
    }
    assert!(marked.iter().any(|o| o["unmapped"]["compromised"]["alert_id"] == attack.as_str()));
    // Cleared by a benign verdict of scope identity on the same alert: what it
    // named is allowed and learned now, and a later odd call alerts unmarked.
    assert!(on_day(&judged, "ci-web", ATTACKS[2]).is_empty(), "{:#?}", on_day(&judged, "ci-web", ATTACKS[2]));
    let later = on_day(&judged, "ci-web", LATER);
    assert!(!later.is_empty() && later.iter().all(|a| a.get("compromised").is_none()), "{later:#?}");
    // Alerts before the verdict are as without one; the incident's close, sent
    // after it, is marked.
    let before = |alerts: &[Value]| -> Vec<Value> {
        let early = |a: &&Value| a["time"].as_str().unwrap() < format_rfc3339(marked_at).as_str();
        alerts.iter().filter(early).filter(|a| a["alert_id"] != attack.as_str()).cloned().collect()
    };
    let closes: Vec<&Value> = judged.iter().filter(|a| a["alert_id"] == attack.as_str()).collect();
    assert_eq!(closes.len(), 2, "{closes:#?}");
    assert!(closes[0].get("compromised").is_none() && closes[1]["compromised"]["alert_id"] == attack.as_str());
    assert_eq!(before(&judged), before(&plain));
    // Cleared on that alert, its call is learned; marked and never cleared,
    // the baseline never takes it up, where without a verdict it did.
    let key = "iam CreateAccessKey".to_string();
    assert!(calls_in_state(&state, "ci-web").contains(&key));
    let only_marked = f.feedback(&[verdict(marked_at, &attack, "malicious", "alert")]);
    f.replay(&["--feedback", &only_marked, "--state-out", &state]);
    assert!(!calls_in_state(&state, "ci-web").contains(&key));
    f.replay(&["--state-out", &state]);
    assert!(calls_in_state(&state, "ci-web").contains(&key));
}

#[test]
fn a_verdict_for_an_unknown_alert_is_rejected_with_its_place_and_the_run_goes_on() {
    let f = files();
    let (plain, _) = f.replay(&[]);
    let known = id_of(on_day(&plain, "saas-sync", VIOLATIONS[0])[0]);
    let unknown = "0".repeat(32);
    let feedback = f.feedback(&[
        verdict(t0() + DAY, &unknown, "malicious", "identity"),
        verdict(t0() + VIOLATIONS[0] * DAY + 14 * HOUR, &known, "benign", "alert"),
    ]);
    // A bad line among them is rejected as any bad line is.
    let mut text = std::fs::read_to_string(&feedback).unwrap();
    text.push_str(r#"{"time":"2026-03-02T10:00:00Z","alert_id":"xyz","verdict":"benign","scope":"alert","by":"a"}"#);
    std::fs::write(&feedback, text + "\n").unwrap();
    let (judged, err) = f.replay(&["--feedback", &feedback]);
    let expected = format!("{feedback}:1: unknown alert_id `{unknown}`: no alert with this id is remembered");
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains(&format!("{feedback}:3: field `alert_id`: expected 32 lower-case hex digits")), "{err}");
    assert!(err.contains("2 rejected (invalid_value=1 unknown_alert_id=1)"), "{err}");
    // Nothing was marked; the known verdict still applied.
    assert!(judged.iter().all(|a| a.get("compromised").is_none()));
    assert!(on_day(&judged, "saas-sync", VIOLATIONS[1]).is_empty());
}

#[test]
fn a_replay_with_feedback_gives_the_same_bytes_and_carries_over_in_state() {
    let f = files();
    let (plain, _) = f.replay(&[]);
    let attack = id_of(on_day(&plain, "ci-web", ATTACKS[0])[0]);
    let marked_at = t0() + ATTACKS[0] * DAY + 5 * HOUR;
    let feedback = f.feedback(&[verdict(marked_at, &attack, "malicious", "alert")]);
    let args = ["replay", &f.events, "--grants", &f.grants, "--feedback", &feedback, "--quiet"];
    let (first, second) = (overreach(&args), overreach(&args));
    assert_eq!(first.0, 0, "{}", first.2);
    assert!(first.1.contains("\"compromised\""));
    assert_eq!(first.1, second.1);

    // The same run cut after the attack's alert and before the verdict: the
    // second half, resumed from the saved state, applies the verdict to the
    // alert the first half sent.
    let records = scenario().records;
    let (a, b): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| r.time() < marked_at - HOUR);
    let (a_events, a_grants) = write_jsonl(f.dir.path(), "a", &a);
    let (b_events, b_grants) = write_jsonl(f.dir.path(), "b", &b);
    let state = f.path("a.state.json");
    let (code, a_out, err) = overreach(&["replay", &a_events, "--grants", &a_grants, "--state-out", &state, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let resumed = overreach(&[
        "replay",
        &b_events,
        "--grants",
        &b_grants,
        "--state-in",
        &state,
        "--feedback",
        &feedback,
        "--quiet",
    ]);
    assert_eq!(resumed.0, 0, "{}", resumed.2);
    let whole = overreach(&[
        "replay",
        &a_events,
        &b_events,
        "--grants",
        &a_grants,
        "--grants",
        &b_grants,
        "--feedback",
        &feedback,
        "--quiet",
    ]);
    assert!(resumed.1.contains("\"compromised\""), "{}", resumed.1);
    assert_eq!(a_out + &resumed.1, whole.1);
}
