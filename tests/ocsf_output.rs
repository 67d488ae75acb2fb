//! `--alert-format ocsf`: every detector's alert becomes an OCSF 1.5.0 Detection Finding
//! that has the class's required attributes, valid enum values, and our alert's facts.

#[path = "common/sample_alerts.rs"]
mod sample_alerts;
#[path = "common/schema.rs"]
mod schema;

use overreach::alert::{Alert, Severity};
use overreach::detect;
use overreach::ocsf::{render, to_ocsf, AlertFormat, OCSF_VERSION};
use overreach::time::parse_rfc3339;
use serde_json::{json, Value};

/// Attributes OCSF 1.5.0 requires in every Detection Finding (from base_event, finding
/// and detection_finding), and in the objects we fill.
const REQUIRED: &[&str] = &[
    "/activity_id",
    "/category_uid",
    "/class_uid",
    "/type_uid",
    "/severity_id",
    "/time",
    "/metadata/version",
    "/metadata/product",
    "/finding_info/uid",
    "/finding_info/analytic/type_id",
    "/remediation/desc",
];

#[test]
fn every_detectors_finding_validates_against_the_schema() {
    for alert in sample_alerts::all() {
        schema::assert_valid_ocsf(&to_ocsf(&alert));
    }
}

#[test]
fn every_finding_has_the_required_attributes_and_class_ids() {
    for alert in sample_alerts::all() {
        let finding = to_ocsf(&alert);
        for pointer in REQUIRED {
            assert!(finding.pointer(pointer).is_some(), "{}: no {pointer}", alert.detector);
        }
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["category_uid"], 2);
        assert_eq!(finding["activity_id"], 1);
        assert_eq!(finding["type_uid"], 200401);
        assert_eq!(finding["metadata"]["version"], OCSF_VERSION);
        assert_eq!(finding["metadata"]["product"]["version"], env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn finding_carries_the_alerts_identity_and_ids() {
    for alert in sample_alerts::all() {
        let finding = to_ocsf(&alert);
        let info = &finding["finding_info"];
        assert_eq!(info["uid"], alert.alert_id.as_str());
        assert_eq!(info["analytic"]["name"], alert.detector.name());
        let related: Vec<&str> =
            info["related_events"].as_array().unwrap().iter().map(|e| e["uid"].as_str().unwrap()).collect();
        assert_eq!(related, alert.event_ids);
        assert_eq!(finding["time"], parse_rfc3339(&alert.time).unwrap());
        assert_eq!(finding["message"], alert.summary.as_str());
        assert_eq!(finding["remediation"]["desc"], alert.recommended_action.as_str());
        assert_eq!(finding["evidences"][0]["actor"]["user"]["name"], alert.identity.as_str());
        assert_eq!(finding["evidences"][0]["api"]["operation"], alert.event.action.as_str());
        assert_eq!(finding["evidences"][0]["api"]["service"]["name"], alert.event.target.as_str());
        let unmapped = &finding["unmapped"];
        assert_eq!(unmapped["chain"], json!(alert.chain));
        assert_eq!(unmapped["owasp_nhi"], json!(alert.owasp_nhi));
        assert_eq!(unmapped["score"], alert.score);
        assert_eq!(unmapped["suppressed_repeats"], alert.suppressed_repeats);
        assert_eq!(unmapped["detector"], alert.detector.name());
        assert_eq!(unmapped.get("region").and_then(Value::as_str), alert.event.region.as_deref());
    }
}

#[test]
fn analytic_is_behavioral_for_learned_detectors_and_rule_for_declared_ones() {
    for &detector in detect::REGISTRY {
        let analytic = &to_ocsf(&sample_alerts::full(detector))["finding_info"]["analytic"];
        let expected = if detector.is_learned() { json!([2, "Behavioral"]) } else { json!([1, "Rule"]) };
        assert_eq!(json!([analytic["type_id"], analytic["type"]]), expected, "{detector}");
    }
}

#[test]
fn severity_maps_to_the_ocsf_severity_of_the_same_name() {
    let table = [
        (Severity::Info, 1, "Informational"),
        (Severity::Low, 2, "Low"),
        (Severity::Medium, 3, "Medium"),
        (Severity::High, 4, "High"),
        (Severity::Critical, 5, "Critical"),
    ];
    for (severity, id, caption) in table {
        let alert = Alert { severity, ..sample_alerts::full(detect::novel_call::SPEC.detector()) };
        let finding = to_ocsf(&alert);
        assert_eq!((finding["severity_id"].as_u64(), finding["severity"].as_str()), (Some(id), Some(caption)));
    }
}

#[test]
fn every_attack_id_of_every_detector_has_a_named_technique_and_tactics() {
    for &detector in detect::REGISTRY {
        let finding = to_ocsf(&sample_alerts::full(detector));
        let attacks = finding["finding_info"]["attacks"].as_array().unwrap();
        assert_eq!(attacks.len(), detector.spec().attack.len(), "{detector}");
        for (attack, id) in attacks.iter().zip(detector.spec().attack) {
            let named = if id.contains('.') { &attack["sub_technique"] } else { &attack["technique"] };
            assert_eq!(named["uid"], *id, "{detector}");
            assert!(named["name"].is_string(), "{detector}: {id} has no name");
            assert!(attack["technique"]["name"].is_string(), "{detector}: {id} has no technique name");
            assert!(!attack["tactics"].as_array().unwrap().is_empty(), "{detector}: {id} has no tactic");
        }
    }
}

/// An observable only points at data the finding already holds (OCSF's rule): follow
/// its `name` through the finding (first element of arrays) and find its `value` there.
#[test]
fn observables_point_at_their_values() {
    for alert in sample_alerts::all() {
        let finding = to_ocsf(&alert);
        let observables = finding["observables"].as_array().unwrap();
        for observable in observables {
            let name = observable["name"].as_str().unwrap();
            let mut at = &finding;
            for part in name.split('.') {
                at = &at[part];
                if let Some(first) = at.as_array().and_then(|a| a.first()) {
                    at = first;
                }
            }
            assert_eq!(at, &observable["value"], "{}: observable {name}", alert.detector);
        }
        let expected =
            1 + [alert.on_behalf_of.is_some(), alert.event.source_ip.is_some(), alert.event.credential_id.is_some()]
                .iter()
                .filter(|present| **present)
                .count();
        assert_eq!(observables.len(), expected, "{}", alert.detector);
    }
}

#[test]
fn anomaly_analysis_shows_baseline_and_observation() {
    let alert = sample_alerts::full(detect::volume_spike::SPEC.detector());
    let analysis = &to_ocsf(&alert)["anomaly_analyses"][0];
    assert_eq!(analysis["analysis_targets"][0]["name"], alert.identity.as_str());
    let observed = &analysis["anomalies"][0]["observations"][0];
    assert_eq!(observed["value"], alert.evidence.observed.to_string());
    // The observation spans its window; the finding itself is the triggering call.
    let end = parse_rfc3339(&alert.time).unwrap();
    assert_eq!(observed["timespan"], json!({ "start_time": end - 300_000, "end_time": end }));
    let baseline = &analysis["baselines"][0]["observations"][0];
    assert_eq!(baseline["value"], alert.evidence.baseline.to_string());
    assert_eq!(baseline["count"], 10_000);
    let finding = to_ocsf(&alert);
    assert_eq!(finding["finding_info"]["first_seen_time"], end);
    assert_eq!(finding["finding_info"]["last_seen_time"], end);
}

#[test]
fn render_writes_one_deterministic_line_per_format() {
    for alert in sample_alerts::all() {
        let native = render(&alert, AlertFormat::Native);
        assert_eq!(native, alert.to_json_line());
        let ocsf = render(&alert, AlertFormat::Ocsf);
        assert_eq!(ocsf, render(&alert.clone(), AlertFormat::Ocsf), "same alert, same bytes");
        assert!(!ocsf.contains('\n') && !native.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&ocsf).unwrap(), to_ocsf(&alert));
    }
}

/// One finding in full, so that a change of the mapping shows in review. The product
/// version is masked: it changes with every release, not with the mapping.
#[test]
fn golden_finding_for_a_novel_call() {
    let mut finding = to_ocsf(&sample_alerts::full(detect::novel_call::SPEC.detector()));
    finding["metadata"]["product"]["version"] = json!("VERSION");
    let actual = serde_json::to_string_pretty(&finding).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/ocsf_novel_call.json");
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(actual == expected, "{path} differs; the finding is now:\n{actual}");
}

#[test]
fn the_engines_alerts_render_to_valid_findings() {
    let alerts = sample_alerts::from_engine();
    assert!(!alerts.is_empty());
    for alert in &alerts {
        let finding: Value = serde_json::from_str(&render(alert, AlertFormat::Ocsf)).unwrap();
        schema::assert_valid_ocsf(&finding);
        assert_eq!(finding["finding_info"]["uid"], alert.alert_id.as_str());
    }
}

/// CloudTrail's `sourceIPAddress` may be `AWS Internal` or the service that made the
/// call: only an IP address goes to `src_endpoint.ip` (and an IP observable), a DNS name
/// to `src_endpoint.hostname`, anything else under `unmapped.source_ip`.
#[test]
fn a_source_that_is_not_an_ip_never_lands_in_an_ip_field() {
    let cases = [
        ("203.0.113.7", Some(json!({ "ip": "203.0.113.7" })), Some((2, "evidences.src_endpoint.ip"))),
        ("2001:db8::7", Some(json!({ "ip": "2001:db8::7" })), Some((2, "evidences.src_endpoint.ip"))),
        (
            "ec2.amazonaws.com",
            Some(json!({ "hostname": "ec2.amazonaws.com" })),
            Some((1, "evidences.src_endpoint.hostname")),
        ),
        ("AWS Internal", None, None),
    ];
    for (source, endpoint, observable) in cases {
        let mut alert = sample_alerts::full(detect::new_source::SPEC.detector());
        alert.event.source_ip = Some(source.into());
        let finding = to_ocsf(&alert);
        schema::assert_valid_ocsf(&finding);
        assert_eq!(finding["evidences"][0].get("src_endpoint"), endpoint.as_ref(), "{source}");
        let found: Vec<(u64, &str)> = finding["observables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["value"] == source)
            .map(|o| (o["type_id"].as_u64().unwrap(), o["name"].as_str().unwrap()))
            .collect();
        assert_eq!(found, observable.into_iter().collect::<Vec<_>>(), "{source}");
        let unmapped = finding["unmapped"].get("source_ip");
        assert_eq!(unmapped, endpoint.is_none().then(|| json!(source)).as_ref(), "{source}");
    }
}

/// The schema itself refuses a non-address in `ip` and a non-name in `hostname`, so a
/// regression in the mapping fails every test that validates a finding.
#[test]
fn the_schema_refuses_a_non_ip_in_an_ip_field() {
    let valid = to_ocsf(&sample_alerts::full(detect::new_source::SPEC.detector()));
    let broken = [
        json!({ "ip": "AWS Internal" }),
        json!({ "ip": "ec2.amazonaws.com" }),
        json!({ "ip": "10.0.0" }),
        json!({ "hostname": "AWS Internal" }),
        json!({ "hostname": "10.0.0.1" }),
        json!({}),
    ];
    for endpoint in broken {
        let mut finding = valid.clone();
        finding["evidences"][0]["src_endpoint"] = endpoint.clone();
        let errors = schema::ocsf_violations(&finding);
        assert!(errors.iter().any(|e| e.starts_with("/evidences/0/src_endpoint")), "{endpoint} accepted: {errors:?}");
    }
    let mut observable = valid.clone();
    observable["observables"][1] =
        json!({ "name": "evidences.src_endpoint.ip", "type_id": 1, "type": "IP Address", "value": "x" });
    assert!(!schema::ocsf_violations(&observable).is_empty(), "an observable's type id and caption must agree");
}

/// A cut alert says so in OCSF too, under `unmapped.truncated`; an alert with nothing cut
/// leaves it out.
#[test]
fn truncated_fields_are_listed_under_unmapped() {
    let mut alert = sample_alerts::full(detect::scope_violation::SPEC.detector());
    assert!(to_ocsf(&alert)["unmapped"].get("truncated").is_none());
    alert.truncated = vec!["event.resource".into(), "summary".into()];
    let finding = to_ocsf(&alert);
    schema::assert_valid_ocsf(&finding);
    assert_eq!(finding["unmapped"]["truncated"], json!(["event.resource", "summary"]));
}

#[test]
fn a_suppressed_alert_is_status_suppressed_with_its_rule_as_detail() {
    let mut alert = sample_alerts::full(detect::novel_call::SPEC.detector());
    let active = to_ocsf(&alert);
    assert_eq!((active["status_id"].as_u64(), active["status"].as_str()), (Some(1), Some("New")));
    assert!(active.get("status_detail").is_none());
    alert.status = Some(overreach::alert::AlertStatus::Suppressed);
    alert.suppression_rule = Some("key-rotation".into());
    let finding = to_ocsf(&alert);
    schema::assert_valid_ocsf(&finding);
    assert_eq!((finding["status_id"].as_u64(), finding["status"].as_str()), (Some(3), Some("Suppressed")));
    assert_eq!(finding["status_detail"], "key-rotation");
    // The id and its caption must agree, and a suppressed finding names its rule.
    let mut mismatched = finding.clone();
    mismatched["status"] = json!("New");
    assert!(!schema::ocsf_violations(&mismatched).is_empty());
    let mut unnamed = finding.clone();
    unnamed.as_object_mut().unwrap().remove("status_detail");
    assert!(!schema::ocsf_violations(&unnamed).is_empty());
}
