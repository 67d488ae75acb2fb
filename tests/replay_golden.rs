//! Golden replay tests: the real binary replays checked-in access logs of a simulated fleet,
//! native and CloudTrail, and its alerts (stdout) must equal the checked-in goldens byte for
//! byte. Every alert is checked against `schemas/alert.v1.schema.json`.
//!
//! After a deliberate change to detection, regenerate the goldens and review the diff:
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test --profile test-release --test replay_golden
//! git diff --stat tests/fixtures/replay/
//! ```
//!
//! The inputs in `tests/fixtures/replay/` were made once with the simulator and do not change
//! with the engine (labels are not needed and not kept):
//!
//! ```sh
//! for f in native cloudtrail; do
//!   overreach simulate --identities 25 --days 21 --seed 3 --format $f \
//!     --out $f.jsonl --grants-out $f.grants.jsonl --labels-out /dev/null
//!   gzip -9n $f.jsonl
//! done
//! ```

#[path = "common/schema.rs"]
mod schema;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "replay"].iter().collect()
}

/// Replays `<format>.jsonl.gz` with `<format>.grants.jsonl` from inside the fixture directory,
/// so the `source` of each alert (`file:line`) names the file the same way on every machine.
fn replay(format: &str) -> String {
    let rejects = tempfile::NamedTempFile::new().expect("temporary file");
    let out = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .current_dir(fixtures())
        .args(["replay", "--quiet", "--format", format, "--grants"])
        .arg(format!("{format}.grants.jsonl"))
        .arg(format!("{format}.jsonl.gz"))
        .arg("--rejects-out")
        .arg(rejects.path())
        .output()
        .expect("cannot run overreach");
    assert!(out.status.success(), "replay of {format} failed: {}", String::from_utf8_lossy(&out.stderr));
    let rejected = std::fs::read_to_string(rejects.path()).expect("rejects file");
    assert!(rejected.is_empty(), "replay of {format} rejected lines of the fixture:\n{rejected}");
    String::from_utf8(out.stdout).expect("alerts are UTF-8")
}

/// Alerts per detector, for a short account of how two outputs differ.
fn by_detector(alerts: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for alert in alerts {
        *counts.entry(alert["detector"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    counts
}

/// The first differing line and the per-detector counts, not the whole files.
fn difference(golden: &Path, expected: &str, actual: &str) -> String {
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let line = exp.iter().zip(&act).position(|(e, a)| e != a).unwrap_or(exp.len().min(act.len()));
    let parse = |text: &str| text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect::<Vec<Value>>();
    let (before, after) = (by_detector(&parse(expected)), by_detector(&parse(actual)));
    let mut counts = String::new();
    for detector in before.keys().chain(after.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (b, a) = (before.get(detector).copied().unwrap_or(0), after.get(detector).copied().unwrap_or(0));
        if b != a {
            counts.push_str(&format!("\n  {detector}: {b} -> {a}"));
        }
    }
    format!(
        "replay output differs from {} ({} lines expected, {} found); first difference at line {}:\n\
         - {}\n+ {}\nalerts by detector, golden -> actual:{}\n\
         If the change is intended: UPDATE_GOLDEN=1 cargo test --profile test-release --test replay_golden",
        golden.display(),
        exp.len(),
        act.len(),
        line + 1,
        exp.get(line).unwrap_or(&"(end of file)"),
        act.get(line).unwrap_or(&"(end of file)"),
        if counts.is_empty() { " the same".to_string() } else { counts },
    )
}

fn check_golden(format: &str) {
    let actual = replay(format);
    // What makes a golden worth keeping holds before it is written or compared.
    let alerts = schema::assert_valid_alert_lines(&actual);
    assert!(!alerts.is_empty(), "replay of {format} raised no alert");
    let detectors = by_detector(&alerts);
    assert!(detectors.len() >= 3, "the {format} fixture exercises fewer than 3 detectors: {detectors:?}");

    let golden = fixtures().join(format!("{format}.alerts.jsonl"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &actual).unwrap_or_else(|e| panic!("cannot write {}: {e}", golden.display()));
        return;
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("cannot read {} (UPDATE_GOLDEN=1 creates it): {e}", golden.display()));
    assert!(actual == expected, "{}", difference(&golden, &expected, &actual));
}

#[test]
fn native_replay_matches_its_golden() {
    check_golden("native");
}

#[test]
fn cloudtrail_replay_matches_its_golden() {
    check_golden("cloudtrail");
}
