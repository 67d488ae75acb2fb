//! `overreach explain` through the real binary on a replayed simulated fleet: the view holds
//! what the input made the identity do, its JSON follows schemas/identity-explain.v1.schema.json,
//! text is escaped for a terminal, and an unknown identity fails.

mod common;

use common::overreach;
use jsonschema::Validator;
use overreach::features::resource_class;
use overreach::model::AccessEvent;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SCHEMA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/identity-explain.v1.schema.json"));

fn validator() -> Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).expect("a valid schema")
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// Simulates a small fleet and replays it into a state file; returns the events and the state path.
fn replayed_fleet(dir: &Path) -> (Vec<AccessEvent>, Vec<Value>, String) {
    let (events, grants, labels, state) =
        (path(dir, "ev.jsonl"), path(dir, "gr.jsonl"), path(dir, "lb.jsonl"), path(dir, "state.json"));
    let sim = ["simulate", "--identities", "20", "--days", "14", "--seed", "7"];
    let (code, _, err) =
        overreach(&[&sim[..], &["--out", &events, "--grants-out", &grants, "--labels-out", &labels]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = overreach(&["replay", &events, "--grants", &grants, "--state-out", &state, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    let events = read(&events).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let labels = read(&labels).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (events, labels, state)
}

/// A call as explain names it: `target action [resource class]`.
fn call_name(e: &AccessEvent) -> String {
    let class = e.resource.as_deref().map(resource_class).unwrap_or_default();
    [e.target.as_str(), &e.action, &class].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

fn clock_hour(e: &AccessEvent) -> i64 {
    e.time / 3_600_000
}

#[test]
fn explain_lists_the_habitual_calls_and_hours_of_a_replayed_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (events, labels, state) = replayed_fleet(dir.path());
    // The busiest identity no incident was injected into: all its calls were learned.
    let attacked: BTreeSet<&str> = labels.iter().filter_map(|l| l["identity"].as_str()).collect();
    let mut per_identity: BTreeMap<&str, Vec<&AccessEvent>> = BTreeMap::new();
    for e in &events {
        per_identity.entry(e.identity.as_str()).or_default().push(e);
    }
    let (identity, mine) = per_identity
        .iter()
        .filter(|(id, _)| !attacked.contains(*id))
        .max_by_key(|(id, evs)| (evs.len(), *id))
        .expect("an identity without an incident");

    let (code, out, err) = overreach(&["explain", "--state", &state, identity, "--json"]);
    assert_eq!(code, 0, "{err}");
    let view: Value = serde_json::from_str(&out).unwrap();
    let errors: Vec<String> = validator().iter_errors(&view).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "breaks the schema:\n  {}", errors.join("\n  "));

    assert_eq!(view["identity"], *identity);
    assert_eq!(view["events"], mine.len());
    assert_eq!(view["learning"]["learned"], true);
    // Each call counted once per clock hour it was made in, as the baseline counts.
    let mut hours: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for e in mine {
        hours.entry(call_name(e)).or_default().insert(clock_hour(e));
    }
    let top = &view["calls"]["top"];
    let most = hours.values().map(BTreeSet::len).max().unwrap();
    assert_eq!(top[0]["active_hours"], most, "{top}");
    assert_eq!(hours[top[0]["value"].as_str().unwrap()].len(), most, "the top call is the most habitual: {top}");
    let listed: BTreeSet<&str> = top.as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    assert_eq!(view["calls"]["total"], hours.len());
    assert_eq!(listed, hours.keys().map(String::as_str).collect(), "every call of the input, no other");
    // 14 days is under the 30-day half-life: no count was halved yet.
    let active: BTreeSet<i64> = mine.iter().map(|e| clock_hour(e)).collect();
    let mut by_hour = [0u64; 24];
    active.iter().for_each(|h| by_hour[(h % 24) as usize] += 1);
    assert_eq!(view["rhythm"]["hour_of_day"], serde_json::json!(by_hour));
    let days: u64 = view["rhythm"]["day_of_week"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).sum();
    assert_eq!(days, active.len() as u64);

    let (code, text, err) = overreach(&["explain", "--state", &state, identity]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains(identity) && text.contains(top[0]["value"].as_str().unwrap()), "{text}");
}

#[test]
fn an_unknown_identity_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, state) = replayed_fleet(dir.path());
    let (code, out, err) = overreach(&["explain", "--state", &state, "role/nobody", "--json"]);
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(err.contains("no baseline for identity `role/nobody`"), "{err}");
}

#[test]
fn text_escapes_what_came_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "role/ci\u{1b}[2J\nforged: line";
    let mut e = common::ev(evil, common::t0(), "s3.amazonaws.com", "Get\u{7}Object");
    e.source_ip = Some("10.0.0.1".into());
    let mut scenario = common::Scenario::new();
    scenario.push(e);
    let (events, _) = common::write_jsonl(dir.path(), "evil", &scenario.records);
    let state = path(dir.path(), "state.json");
    let (code, _, err) = overreach(&["replay", &events, "--state-out", &state, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let (code, text, err) = overreach(&["explain", "--state", &state, evil]);
    assert_eq!(code, 0, "{err}");
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains("\nforged"), "{text}");
    assert!(text.contains("role/ci\\u{1b}[2J\\u{a}forged: line") && text.contains("Get\\u{7}Object"), "{text}");
}
