//! Real attacks spliced into a simulated fleet, through the real binary: every
//! detonation file in both variants, re-attributed as each variant says, the rest of
//! the fleet untouched, the same bytes for a seed, and a backtest that reports them
//! per variant and per technique.

use overreach::model::AccessEvent;
use overreach::simulate::{AttackVariant, IncidentClass, Label};
use overreach::time::{DAY, MINUTE};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

const IDENTITIES: &str = "60";
const DAYS: &str = "30";

fn development_set() -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "..", "shared", "datasets", "attacks", "stratus-dev"].iter().collect()
}

/// The development set in a directory of our own, its first file rewritten as a
/// CloudTrail log file object (`{"Records": [...]}`), beside a file that is no
/// detonation. Returns each technique's records.
fn attack_dir(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut techniques = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(development_set())
        .unwrap_or_else(|e| panic!("the shared attack set {} is needed: {e}", development_set().display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for (i, file) in files.iter().enumerate() {
        let records: Vec<Value> = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let body = if i == 0 { serde_json::json!({ "Records": records }) } else { Value::Array(records.clone()) };
        std::fs::write(dir.join(file.file_name().unwrap()), serde_json::to_vec(&body).unwrap()).unwrap();
        techniques.insert(file.file_stem().unwrap().to_string_lossy().into_owned(), records);
    }
    std::fs::write(dir.join("README.md"), "not a detonation").unwrap();
    techniques
}

struct Fleet {
    events: Vec<u8>,
    grants: Vec<u8>,
    labels: Vec<u8>,
}

fn simulate(out: &Path, name: &str, seed: &str, extra: &[&str]) -> Fleet {
    let path = |f: &str| out.join(format!("{name}-{f}.jsonl"));
    let output = Command::new(env!("CARGO_BIN_EXE_overreach"))
        .args(["simulate", "--identities", IDENTITIES, "--days", DAYS, "--seed", seed])
        .arg("--out")
        .arg(path("events"))
        .arg("--grants-out")
        .arg(path("grants"))
        .arg("--labels-out")
        .arg(path("labels"))
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let read = |f: &str| std::fs::read(path(f)).unwrap();
    Fleet { events: read("events"), grants: read("grants"), labels: read("labels") }
}

fn lines<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Vec<T> {
    bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
}

fn network(ip: &str) -> &str {
    ip.rsplit_once('.').map_or(ip, |(net, _)| net)
}

#[test]
fn every_technique_is_spliced_in_both_variants_as_each_variant_says() {
    let dir = tempfile::tempdir().unwrap();
    let attacks = dir.path().join("attacks");
    std::fs::create_dir(&attacks).unwrap();
    let techniques = attack_dir(&attacks);
    let attacks = attacks.to_str().unwrap();
    let fleet = simulate(dir.path(), "a", "5", &["--attacks", attacks]);
    let events: Vec<AccessEvent> = lines(&fleet.events);
    let labels: Vec<Label> = lines(&fleet.labels);
    let by_id: HashMap<&str, &AccessEvent> = events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    assert_eq!(by_id.len(), events.len(), "event ids are unique");

    let spliced: Vec<&Label> = labels.iter().filter(|l| l.technique.is_some()).collect();
    let pairs: BTreeSet<(&str, AttackVariant)> =
        spliced.iter().map(|l| (l.technique.as_deref().unwrap(), l.variant.unwrap())).collect();
    let wanted: BTreeSet<(&str, AttackVariant)> =
        techniques.keys().flat_map(|t| AttackVariant::ALL.map(|v| (t.as_str(), v))).collect();
    assert_eq!(pairs, wanted, "every file, both variants, once each");
    assert_eq!(spliced.len(), wanted.len());

    let victims: BTreeSet<&str> = spliced.iter().map(|l| l.identity.as_str()).collect();
    assert_eq!(victims.len(), spliced.len(), "each attack on an identity of its own");
    let synthetic: BTreeSet<&str> =
        labels.iter().filter(|l| l.technique.is_none()).map(|l| l.identity.as_str()).collect();
    assert!(victims.is_disjoint(&synthetic), "never on an identity another incident uses");
    let spliced_ids: BTreeSet<&str> = spliced.iter().flat_map(|l| &l.event_ids).map(String::as_str).collect();
    let own_events = |identity: &str| -> Vec<&AccessEvent> {
        events.iter().filter(|e| e.identity == identity && !spliced_ids.contains(e.event_id.as_str())).collect()
    };
    let start = overreach::simulate::DEFAULT_START;
    let mut types = BTreeSet::new();
    for label in &spliced {
        let technique = label.technique.as_deref().unwrap();
        let records = &techniques[technique];
        assert_eq!(label.class, IncidentClass::RealAttack);
        assert_eq!(label.event_ids.len(), records.len(), "{technique}: one event per record");
        let calls: Vec<&AccessEvent> = label.event_ids.iter().map(|id| by_id[id.as_str()]).collect();
        assert!(calls.iter().all(|e| e.identity == label.identity), "{technique}: re-attributed");
        assert!(calls.windows(2).all(|w| w[0].time <= w[1].time && w[1].time - w[0].time <= 10 * MINUTE));
        assert!(label.start >= start + 8 * DAY, "{technique}: after a baseline");
        let actions: BTreeSet<&str> = records.iter().map(|r| r["eventName"].as_str().unwrap()).collect();
        assert!(calls.iter().all(|e| actions.contains(e.action.as_str())), "{technique}: the detonation's calls");
        let denied = records.iter().filter(|r| r.get("errorCode").is_some()).count();
        let failed = calls.iter().filter(|e| e.outcome != overreach::model::Outcome::Success).count();
        assert_eq!(failed, denied, "{technique}: outcomes as detonated");

        let own = own_events(&label.identity);
        let identity_type = own[0].identity_type.clone();
        types.insert(identity_type.clone().unwrap());
        assert!(calls.iter().all(|e| e.identity_type == identity_type), "{technique}: the identity's own type");
        let one = |f: fn(&AccessEvent) -> Option<&str>| calls.iter().map(|e| f(e)).collect::<BTreeSet<_>>();
        let (sessions, ips, agents) =
            (one(|e| e.session_id.as_deref()), one(|e| e.source_ip.as_deref()), one(|e| e.user_agent.as_deref()));
        let credentials = one(|e| e.credential_id.as_deref());
        assert_eq!((sessions.len(), ips.len(), credentials.len()), (1, 1, 1), "{technique}: one session");
        let (session, ip, credential) = (sessions.first().unwrap(), ips.first().unwrap(), credentials.first().unwrap());
        assert!(
            calls.iter().all(|e| e.credential_expires_at.is_none_or(|expiry| e.time < expiry)),
            "{technique}: the credential is valid for every call"
        );
        match label.variant.unwrap() {
            AttackVariant::Own => {
                let anchor = own.iter().find(|e| {
                    (label.start - 5 * MINUTE..=label.start - MINUTE).contains(&e.time)
                        && e.session_id.as_deref() == *session
                        && e.source_ip.as_deref() == *ip
                        && e.credential_id.as_deref() == *credential
                        && agents.len() == 1
                        && e.user_agent.as_deref() == *agents.first().unwrap()
                });
                assert!(anchor.is_some(), "{technique}: own variant follows one of the identity's own calls as it");
            }
            AttackVariant::Foreign => {
                let networks: BTreeSet<&str> = own.iter().filter_map(|e| e.source_ip.as_deref()).map(network).collect();
                assert!(!networks.contains(network(ip.unwrap())), "{technique}: a network the identity never used");
                assert!(own.iter().all(|e| e.session_id.as_deref() != *session), "{technique}: a new session");
                assert!(own.iter().all(|e| e.credential_id.as_deref() != *credential), "{technique}: a new credential");
                let detonated: BTreeSet<Option<&str>> = records.iter().map(|r| r["userAgent"].as_str()).collect();
                assert!(agents.is_subset(&detonated), "{technique}: the detonation's own client");
            }
        }
    }
    assert!(types.contains("ci_pipeline") && types.len() > 1, "quiet CI roles and busy workloads: {types:?}");

    // Without --attacks the fleet is exactly what is left when the spliced events are taken out.
    let plain = simulate(dir.path(), "plain", "5", &[]);
    let kept: Vec<&[u8]> = fleet
        .events
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter(|l| !spliced_ids.contains(serde_json::from_slice::<AccessEvent>(l).unwrap().event_id.as_str()))
        .collect();
    assert!(kept == plain.events.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect::<Vec<_>>());
    assert!(plain.grants == fleet.grants, "grants do not change");
    let plain_labels: Vec<Label> = lines(&plain.labels);
    assert_eq!(plain_labels, labels.iter().filter(|l| l.technique.is_none()).cloned().collect::<Vec<_>>());

    // Same seed, same bytes; one variant splices only that one.
    let again = simulate(dir.path(), "b", "5", &["--attacks", attacks]);
    assert!(again.events == fleet.events && again.labels == fleet.labels, "two runs with one seed differ");
    let foreign = simulate(dir.path(), "f", "5", &["--attacks", attacks, "--attack-variants", "foreign"]);
    let variants: BTreeSet<Option<AttackVariant>> =
        lines::<Label>(&foreign.labels).into_iter().filter(|l| l.technique.is_some()).map(|l| l.variant).collect();
    assert_eq!(variants, BTreeSet::from([Some(AttackVariant::Foreign)]));

    // The backtest reports them by variant and by technique.
    let path = |f: &str| dir.path().join(format!("a-{f}.jsonl")).to_str().unwrap().to_string();
    let backtest = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_overreach"))
            .args(["backtest", "--events", &path("events"), "--labels", &path("labels")])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let report: Value = serde_json::from_str(&backtest(&["--json"])).unwrap();
    for variant in ["foreign", "own"] {
        let v = &report["variants"][variant];
        assert_eq!(v["incidents"].as_u64(), Some(techniques.len() as u64), "{variant}: {v}");
        assert!(v["caught"].as_u64().unwrap() <= v["incidents"].as_u64().unwrap());
        assert!(v["recall"].is_number());
    }
    let scored = report["techniques"].as_object().unwrap();
    assert_eq!(scored.keys().collect::<BTreeSet<_>>(), techniques.keys().collect::<BTreeSet<_>>());
    for (technique, by_variant) in scored {
        for variant in ["foreign", "own"] {
            let t = &by_variant[variant];
            let caught = t["caught"].as_u64().unwrap();
            assert_eq!(caught > 0, !t["detectors"].as_array().unwrap().is_empty(), "{technique} {variant}: {t}");
        }
    }
    let told = &report["overall"]["alerts_per_incident"];
    assert!(told["mean"].as_f64().unwrap() >= 1.0 && told["max"].as_u64().unwrap() >= 1, "{told}");
    assert!(report["reference"]["variants"]["own"]["incidents"].is_number());
    let table = backtest(&[]);
    assert!(table.contains("real attacks by variant") && table.contains("technique (overreach)"), "{table}");
    assert!(techniques.keys().all(|t| table.contains(t.as_str())), "{table}");
    assert!(table.contains("alerts per caught incident"), "{table}");
}

#[test]
fn a_missing_or_broken_attack_directory_stops_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |attacks: &Path| {
        let out = |f: &str| dir.path().join(f);
        Command::new(env!("CARGO_BIN_EXE_overreach"))
            .args(["simulate", "--identities", "10", "--days", "10"])
            .arg("--out")
            .arg(out("e"))
            .arg("--grants-out")
            .arg(out("g"))
            .arg("--labels-out")
            .arg(out("l"))
            .arg("--attacks")
            .arg(attacks)
            .output()
            .unwrap()
    };
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let output = run(&empty);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no `.json` detonation files"));
    std::fs::write(empty.join("bad.json"), "[{\"eventTime\": \"2024-08-01T13:33:28Z\"}]").unwrap();
    let output = run(&empty);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("bad.json: record 0:"), "{stderr}");
}
