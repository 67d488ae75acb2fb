//! Schema checks every test can run on every alert it sees.
//!
//! Include it with
//! ```ignore
//! #[path = "common/schema.rs"]
//! mod schema;
//! ```
//! and call `schema::assert_valid_alert(&json)` on a native alert, or
//! `schema::assert_valid_ocsf(&json)` on an `--alert-format ocsf` finding. Each schema is
//! compiled once per test binary. The `#[path]` include keeps this file independent of
//! whatever else `tests/common/` holds.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use jsonschema::Validator;
use serde_json::Value;
use std::sync::LazyLock;

pub const ALERT_SCHEMA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/alert.v1.schema.json"));
pub const OCSF_SCHEMA: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/ocsf-detection-finding.v1.schema.json"));

static ALERT: LazyLock<Validator> = LazyLock::new(|| compile(ALERT_SCHEMA, "schemas/alert.v1.schema.json"));
static OCSF: LazyLock<Validator> =
    LazyLock::new(|| compile(OCSF_SCHEMA, "schemas/ocsf-detection-finding.v1.schema.json"));

fn compile(text: &str, path: &str) -> Validator {
    let schema: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    // Formats (date-time) are only annotations in draft 2020-12 unless asked for.
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{path} is not a valid draft 2020-12 schema: {e}"))
}

/// Every way `json` breaks the schema, one `path: reason` line each; empty when valid.
fn violations(validator: &Validator, json: &Value) -> Vec<String> {
    validator.iter_errors(json).map(|e| format!("{}: {e}", e.instance_path)).collect()
}

/// The reasons a native alert breaks `schemas/alert.v1.schema.json`.
pub fn alert_violations(json: &Value) -> Vec<String> {
    violations(&ALERT, json)
}

/// The reasons an OCSF finding breaks `schemas/ocsf-detection-finding.v1.schema.json`.
pub fn ocsf_violations(json: &Value) -> Vec<String> {
    violations(&OCSF, json)
}

/// Panics with every violation and the alert itself when `json` is not a valid native alert.
#[track_caller]
pub fn assert_valid_alert(json: &Value) {
    let errors = alert_violations(json);
    assert!(errors.is_empty(), "alert breaks alert.v1.schema.json:\n  {}\nalert: {json}", errors.join("\n  "));
}

/// Panics with every violation and the finding itself when `json` is not a valid OCSF finding.
#[track_caller]
pub fn assert_valid_ocsf(json: &Value) {
    let errors = ocsf_violations(json);
    assert!(
        errors.is_empty(),
        "finding breaks ocsf-detection-finding.v1.schema.json:\n  {}\nfinding: {json}",
        errors.join("\n  ")
    );
}

/// Checks every line of JSON Lines output (e.g. a replay's stdout) as a native alert;
/// returns the parsed alerts for further assertions.
#[track_caller]
pub fn assert_valid_alert_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let json: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_valid_alert(&json);
            json
        })
        .collect()
}
