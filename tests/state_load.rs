//! The state loader against corrupted states: a property test mutates a valid
//! saved state (ids flipped, names dropped, arrays cut) and checks that loading
//! either refuses it or gives an engine that goes on processing without panic.
//! `PROPTEST_CASES=5000 cargo test --profile test-release --test state_load` runs it longer.

mod common;

use common::*;
use overreach::engine::{Engine, EngineConfig};
use overreach::model::{AccessEvent, Record};
use overreach::time::{DAY, HOUR};
use proptest::prelude::*;
use serde_json::Value;

/// A saved state with pipelines, an agent, a delegation and a credential, and
/// the calls that go on after it.
fn fixture() -> (Value, Vec<Record>) {
    let mut s = Scenario::new();
    s.pipeline("ci-payments", 10, 2).pipeline("ci-web", 10, 1);
    for i in 0..40 {
        s.push(AccessEvent {
            identity_type: Some("ai_agent".into()),
            session_id: Some(format!("task-{}", i / 4).into()),
            credential_id: Some("agent-key".into()),
            ..ev("agent-7", t0() + i * 5 * HOUR, "tools", &format!("tool-{}", i % 9))
        });
    }
    s.records.sort_by_key(|r| r.time());
    let mut engine = Engine::new(EngineConfig::default());
    for (i, r) in s.records.iter().enumerate() {
        engine.process(r, &origin(i));
    }
    let mut saved = Vec::new();
    engine.save_state(&mut saved).unwrap();
    let mut after = Scenario::new();
    after.pipeline("ci-payments", 12, 2);
    after.push(ev("agent-7", t0() + 11 * DAY, "tools", "tool-new"));
    after.push(ev("newcomer", t0() + 11 * DAY, "s3", "GetObject"));
    let later: Vec<Record> = after.records.into_iter().filter(|r| r.time() >= t0() + 10 * DAY).collect();
    (serde_json::from_slice(&saved).unwrap(), later)
}

/// Paths to every number and every array in a JSON tree.
fn places(v: &Value, path: &mut Vec<usize>, numbers: &mut Vec<Vec<usize>>, arrays: &mut Vec<Vec<usize>>) {
    let children: Vec<&Value> = match v {
        Value::Number(_) => {
            numbers.push(path.clone());
            return;
        }
        Value::Array(items) => {
            arrays.push(path.clone());
            items.iter().collect()
        }
        Value::Object(fields) => fields.values().collect(),
        _ => return,
    };
    for (i, child) in children.into_iter().enumerate() {
        path.push(i);
        places(child, path, numbers, arrays);
        path.pop();
    }
}

fn at<'a>(v: &'a mut Value, path: &[usize]) -> &'a mut Value {
    path.iter().fold(v, |v, &i| match v {
        Value::Array(items) => &mut items[i],
        Value::Object(fields) => fields.values_mut().nth(i).unwrap(),
        _ => unreachable!("a path leads through arrays and objects"),
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace a number (an id, a count, a time) with another.
    Flip { place: usize, value: u32 },
    /// Drop one element of an array (a name, an entry).
    Drop { place: usize, index: usize },
    /// Cut an array short.
    Truncate { place: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), prop_oneof![0..64u32, any::<u32>()])
            .prop_map(|(place, value)| Mutation::Flip { place, value }),
        (any::<usize>(), any::<usize>()).prop_map(|(place, index)| Mutation::Drop { place, index }),
        (any::<usize>(), 0..4usize).prop_map(|(place, len)| Mutation::Truncate { place, len }),
    ]
}

fn apply(state: &mut Value, m: &Mutation) {
    let (mut numbers, mut arrays) = (Vec::new(), Vec::new());
    places(state, &mut Vec::new(), &mut numbers, &mut arrays);
    match *m {
        Mutation::Flip { place, value } => *at(state, &numbers[place % numbers.len()]) = value.into(),
        Mutation::Drop { place, index } => {
            if let Value::Array(items) = at(state, &arrays[place % arrays.len()]) {
                if !items.is_empty() {
                    items.remove(index % items.len());
                }
            }
        }
        Mutation::Truncate { place, len } => {
            if let Value::Array(items) = at(state, &arrays[place % arrays.len()]) {
                items.truncate(len);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_corrupted_state_is_refused_or_runs_without_panic(mutations in prop::collection::vec(mutation(), 1..4)) {
        let (mut state, later) = fixture_cached();
        for m in &mutations {
            apply(&mut state, m);
        }
        let text = state.to_string();
        if let Ok(mut engine) = Engine::load_state(EngineConfig::default(), &mut text.as_bytes()) {
            for (i, r) in later.iter().enumerate() {
                engine.process(r, &origin(i));
            }
            let mut saved = Vec::new();
            engine.save_state(&mut saved).unwrap();
        }
    }
}

fn fixture_cached() -> (Value, Vec<Record>) {
    static FIXTURE: std::sync::OnceLock<(Value, Vec<Record>)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(fixture).clone()
}

#[test]
fn the_fixture_loads_and_every_mutation_kind_can_be_refused() {
    let (state, _) = fixture_cached();
    assert!(Engine::load_state(EngineConfig::default(), &mut state.to_string().as_bytes()).is_ok());
    let mut names_cut = state.clone();
    names_cut["names"]["strings"].as_array_mut().unwrap().truncate(3);
    let err = Engine::load_state(EngineConfig::default(), &mut names_cut.to_string().as_bytes()).err().unwrap();
    assert!(err.to_string().contains("out of range"), "{err}");
}
