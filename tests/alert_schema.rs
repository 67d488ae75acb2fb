//! `schemas/alert.v1.schema.json` documents the native alert exactly: every detector's
//! alert, serialized by the real types, validates; broken alerts do not.

#[path = "common/sample_alerts.rs"]
mod sample_alerts;
#[path = "common/schema.rs"]
mod schema;

use overreach::alert::Severity;
use overreach::detect::{self, Detector};
use serde_json::{json, Value};

fn schema_json() -> Value {
    serde_json::from_str(schema::ALERT_SCHEMA).expect("alert schema is JSON")
}

#[test]
fn every_detectors_alert_validates() {
    for alert in sample_alerts::all() {
        schema::assert_valid_alert(&serde_json::to_value(&alert).unwrap());
    }
}

#[test]
fn json_lines_output_validates_line_by_line() {
    let text: String = sample_alerts::all().iter().map(|a| a.to_json_line() + "\n").collect();
    let alerts = schema::assert_valid_alert_lines(&text);
    assert_eq!(alerts.len(), 2 * detect::REGISTRY.len());
}

/// Detector names as every list of them shows them: learned first, each in registry order.
fn detector_names() -> Vec<&'static str> {
    let mut detectors = detect::REGISTRY.to_vec();
    detectors.sort();
    detectors.iter().map(|d| d.name()).collect()
}

#[test]
fn schema_enums_are_the_code_enums() {
    let schema = schema_json();
    assert_eq!(schema["properties"]["detector"]["enum"], json!(detector_names()));
    let ocsf: Value = serde_json::from_str(schema::OCSF_SCHEMA).unwrap();
    assert_eq!(ocsf["$defs"]["detector"]["enum"], json!(detector_names()), "OCSF schema");
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(schema["properties"]["severity"]["enum"], json!(severities));
}

/// The README's detector table and docs/alerts.md name every registered detector
/// and no other, and the table's OWASP NHI and ATT&CK columns are the specs'.
#[test]
fn docs_list_the_registered_detectors() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let table = readme.split("| detector | fires when |").nth(1).expect("README has the detector table");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0].trim_matches('`')).collect();
    assert_eq!(names, detector_names());
    for row in &rows {
        let spec = row[0].trim_matches('`').parse::<Detector>().unwrap().spec();
        let owasp: Vec<&str> = spec.owasp_nhi.iter().map(|id| id.trim_end_matches(":2025")).collect();
        assert_eq!(row[row.len() - 2], owasp.join(", "), "{}", spec.name);
        assert_eq!(row[row.len() - 1], spec.attack.join(", "), "{}", spec.name);
    }

    let alerts_doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.md"));
    let row = alerts_doc.lines().find(|l| l.starts_with("| `detector` |")).expect("docs/alerts.md lists detectors");
    let listed: Vec<&str> = row.split('`').skip(3).step_by(2).collect();
    assert_eq!(listed, detector_names());
}

#[test]
fn schema_requires_every_field_an_alert_serializes() {
    // A sparse alert leaves out the optional evidence members; everything else is always there.
    let alert = serde_json::to_value(sample_alerts::sparse(detect::novel_call::SPEC.detector())).unwrap();
    let mut fields: Vec<&String> = alert.as_object().unwrap().keys().collect();
    fields.sort();
    let schema = schema_json();
    let mut required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    required.sort();
    assert_eq!(fields, required);
}

/// Each case breaks one rule of the schema; a violation must name the broken field.
#[test]
fn broken_alerts_fail_validation() {
    type Break = fn(&mut Value);
    let cases: &[(&str, Break, &str)] = &[
        ("missing alert_id", |a| drop(a.as_object_mut().unwrap().remove("alert_id")), "\"alert_id\" is a required"),
        (
            "missing nested event.action",
            |a| drop(a["event"].as_object_mut().unwrap().remove("action")),
            "/event: \"action\"",
        ),
        ("unknown detector", |a| a["detector"] = json!("novel_calls"), "/detector"),
        ("unknown severity", |a| a["severity"] = json!("severe"), "/severity"),
        ("score above 1", |a| a["score"] = json!(1.5), "/score"),
        ("negative score", |a| a["score"] = json!(-0.1), "/score"),
        ("score as a string", |a| a["score"] = json!("0.9"), "/score"),
        ("alert_id not 32 hex", |a| a["alert_id"] = json!("ABC"), "/alert_id"),
        ("no event ids", |a| a["event_ids"] = json!([]), "/event_ids"),
        ("time with an offset", |a| a["time"] = json!("2026-03-04T03:17:45+01:00"), "/time"),
        ("time not a date", |a| a["time"] = json!("yesterday"), "/time"),
        ("OWASP id out of range", |a| a["owasp_nhi"] = json!(["NHI11:2025"]), "/owasp_nhi/0"),
        ("ATT&CK id malformed", |a| a["attack"] = json!(["T1078.4"]), "/attack/0"),
        ("unknown outcome", |a| a["event"]["outcome"] = json!("ok"), "/event/outcome"),
        ("empty region (it is left out instead)", |a| a["event"]["region"] = json!(""), "/event/region"),
        ("null region (it is left out instead)", |a| a["event"]["region"] = json!(null), "/event/region"),
        ("probability above 1", |a| a["evidence"]["probability"] = json!(2.0), "/evidence/probability"),
        ("negative repeats", |a| a["suppressed_repeats"] = json!(-1), "/suppressed_repeats"),
        ("field the schema does not know", |a| a["secret"] = json!("hunter2"), "'secret' was unexpected"),
        (
            "evidence field the schema does not know",
            |a| a["evidence"]["token"] = json!("x"),
            "/evidence: Additional properties",
        ),
        ("empty truncated (it is left out instead)", |a| a["truncated"] = json!([]), "/truncated"),
        ("truncated names no field", |a| a["truncated"] = json!(["alert_id"]), "/truncated/0"),
    ];
    let valid = serde_json::to_value(sample_alerts::full(detect::scope_violation::SPEC.detector())).unwrap();
    schema::assert_valid_alert(&valid);
    for (what, break_it, path) in cases {
        let mut alert = valid.clone();
        break_it(&mut alert);
        let errors = schema::alert_violations(&alert);
        assert!(!errors.is_empty(), "{what}: validated but should not");
        assert!(errors.iter().any(|e| e.contains(path)), "{what}: expected a violation with `{path}`, got {errors:?}");
    }
}

/// `truncated` is the one optional top-level field: listed in the schema, not required.
#[test]
fn truncated_is_optional_and_names_the_cut_fields() {
    let schema = schema_json();
    let required: Vec<&Value> = schema["required"].as_array().unwrap().iter().collect();
    assert!(!required.contains(&&json!("truncated")));
    let mut alert = serde_json::to_value(sample_alerts::full(detect::novel_call::SPEC.detector())).unwrap();
    alert["truncated"] = json!(["event.resource", "chain", "evidence.observed.resource", "evidence.baseline"]);
    schema::assert_valid_alert(&alert);
}

#[test]
fn the_engines_alerts_validate() {
    let alerts = sample_alerts::from_engine();
    let mut detectors: Vec<Detector> = alerts.iter().map(|a| a.detector).collect();
    detectors.sort();
    detectors.dedup();
    assert!(detectors.len() >= 3, "the made-up history should trip several detectors, got {detectors:?}");
    for alert in &alerts {
        schema::assert_valid_alert(&serde_json::to_value(alert).unwrap());
        // The engine copies the call's region into the alert.
        assert_eq!(alert.event.region.as_deref(), Some("eu-west-1"), "{}", alert.detector);
    }
}

/// `event.region` is optional: a call whose log names no region gives an alert without the
/// key, so alerts of such logs are byte for byte what they were before regions existed.
#[test]
fn region_is_left_out_when_the_log_names_none() {
    let sparse = serde_json::to_value(sample_alerts::sparse(overreach::detect::novel_call::SPEC.detector())).unwrap();
    assert!(sparse["event"].get("region").is_none(), "{sparse}");
    schema::assert_valid_alert(&sparse);
    let full = serde_json::to_value(sample_alerts::full(overreach::detect::novel_call::SPEC.detector())).unwrap();
    assert_eq!(full["event"]["region"], "us-east-1");
    let required = &schema_json()["$defs"]["event"]["required"];
    assert!(!required.as_array().unwrap().contains(&json!("region")), "{required}");
}

#[test]
fn a_suppressed_alert_validates_and_must_name_its_rule() {
    let mut alert = sample_alerts::full(detect::novel_call::SPEC.detector());
    alert.status = Some(overreach::alert::AlertStatus::Suppressed);
    alert.suppression_rule = Some("key-rotation".into());
    let json = serde_json::to_value(&alert).unwrap();
    schema::assert_valid_alert(&json);
    assert_eq!(
        (json["status"].as_str(), json["suppression_rule"].as_str()),
        (Some("suppressed"), Some("key-rotation"))
    );
    let mut no_rule = json.clone();
    no_rule.as_object_mut().unwrap().remove("suppression_rule");
    assert!(!schema::alert_violations(&no_rule).is_empty(), "a suppressed alert without its rule");
    let mut odd_status = json.clone();
    odd_status["status"] = json!("dismissed");
    assert!(!schema::alert_violations(&odd_status).is_empty());
}
