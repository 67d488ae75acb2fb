//! Golden tests: each fixture in `tests/fixtures/` decodes to exactly its checked-in
//! `.golden` file, one normalized record per line and `file:line: reason` per reject.
//! `UPDATE_GOLDEN=1 cargo test --test decode_golden` rewrites the goldens; review the
//! diff by eye before committing it.

use overreach::decode::{decode_line, Format, Limits};
use overreach::model::Record;
use serde_json::json;
use std::path::PathBuf;

const FIXTURES: [(&str, Format); 6] = [
    ("cloudtrail.jsonl", Format::Cloudtrail),
    ("gcp_audit.jsonl", Format::GcpAudit),
    ("k8s_audit.jsonl", Format::K8sAudit),
    ("ocsf.jsonl", Format::Ocsf),
    ("native.jsonl", Format::Native),
    ("grants.jsonl", Format::Grants),
];

/// Secret values planted in the fixtures (STS session tokens and secret keys, a
/// Kubernetes service-account token) that no decoded record may carry.
const PLANTED_SECRETS: [&str; 2] = ["SESSION-TOKEN", "SECRET"];

fn fixture(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name].iter().collect()
}

fn render(record: &Record) -> String {
    let value = match record {
        Record::Access(event) => json!({ "access": event }),
        Record::Lifecycle { time, event_id, fact } => {
            json!({ "lifecycle": { "time": time, "event_id": event_id, "fact": fact } })
        }
        // No golden holds verdicts (tests/decode_schemas.rs and the unit tests check them).
        Record::Verdict(v) => json!({ "verdict": format!("{v:?}") }),
    };
    value.to_string()
}

fn decode_file(name: &str, format: Format) -> String {
    let input = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("reading fixture {name}: {e}"));
    let mut out = String::new();
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        for result in decode_line(line, format, &Limits::default()) {
            match result {
                Ok(record) => out.push_str(&render(&record)),
                Err(e) => out.push_str(&format!("{name}:{}: {e}", i + 1)),
            }
            out.push('\n');
        }
    }
    out
}

#[test]
fn fixtures_decode_to_their_goldens() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, format) in FIXTURES {
        let actual = decode_file(name, format);
        let golden = fixture(&name.replace(".jsonl", ".golden"));
        if update {
            std::fs::write(&golden, &actual).unwrap_or_else(|e| panic!("writing {}: {e}", golden.display()));
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("reading {} (run with UPDATE_GOLDEN=1 to create it): {e}", golden.display()));
        if actual != expected {
            eprintln!("--- {}\n+++ actual\n{actual}", golden.display());
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "output differs from the golden for {stale:?}");
}

#[test]
fn auto_decodes_every_fixture_as_its_format() {
    for (name, format) in FIXTURES {
        assert_eq!(decode_file(name, Format::Auto), decode_file(name, format), "{name}");
    }
}

#[test]
fn no_secret_reaches_a_record() {
    for (name, format) in FIXTURES {
        let out = decode_file(name, format);
        for secret in PLANTED_SECRETS {
            assert!(!out.contains(secret), "{name}: `{secret}` leaked into:\n{out}");
        }
    }
    // The planted values are really in the inputs, so the check above can fail.
    let cloudtrail = std::fs::read_to_string(fixture("cloudtrail.jsonl")).expect("cloudtrail fixture");
    assert!(PLANTED_SECRETS.iter().all(|s| cloudtrail.contains(s)));
}
