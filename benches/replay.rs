//! Replay throughput and baseline memory, printed as numbers (never asserted).
//!
//! `cargo bench --bench replay -- [IDENTITIES] [DAYS]` (defaults 1000, 14):
//! simulates a fleet, writes it as native JSON Lines and as CloudTrail records, then
//! 1. native: times three bare parses of the file that count calls per identity (a
//!    `serde_json::Value` tree, and a borrowed serde struct of every event field, the
//!    reference issue 10 sets) against `overreach replay`'s library path;
//! 2. CloudTrail: a `Value` parse counting calls per role against the replay of the same
//!    fleet in CloudTrail form;
//! 3. reports baseline bytes per identity, and for identities with about 20 distinct calls.
//!
//! The bare parses and the replays whose ratios the issue sets run on the calling thread alone;
//! run without `taskset` and each replay also runs reading ahead on a second core, with how it
//! scales from one. Pinned to one core (`taskset -c 0`) only the one-core figures are printed.

use overreach::decode::{Format, Limits};
use overreach::engine::{Engine, EngineConfig};
use overreach::replay::{self, ReplayOptions};
use overreach::simulate::{cloudtrail, generate, write_events, write_json_lines, EventFormat, SimConfig};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// Every field of a native event, borrowed from the line where it has no escapes: what a
/// hand-written consumer of the format would parse.
#[derive(Deserialize)]
#[allow(dead_code)] // the fields are parsed to be paid for, not read
struct BorrowedEvent<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    time: i64,
    #[serde(borrow)]
    identity: Cow<'a, str>,
    #[serde(borrow)]
    identity_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    on_behalf_of: Option<Cow<'a, str>>,
    #[serde(borrow)]
    chain: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    grant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    credential_id: Option<Cow<'a, str>>,
    credential_expires_at: Option<i64>,
    #[serde(borrow)]
    target: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    environment: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    region: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
}

/// Times `count_line` (parse one line, count its identity's call) over every line of `path`
/// and prints events/s; returns the rate.
fn bare(label: &str, path: &Path, count_line: impl Fn(&str, &mut HashMap<String, u64>)) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let started = Instant::now();
    let mut calls = HashMap::new();
    let mut lines = 0u64;
    for line in text.lines() {
        count_line(line, &mut calls);
        lines += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = lines as f64 / secs;
    println!("{label:<40} {rate:>10.0} events/s ({secs:.2} s, {} identities)", calls.len());
    rate
}

/// Counts one call of `identity`, allocating its key only the first time.
fn count(calls: &mut HashMap<String, u64>, identity: &str) {
    match calls.get_mut(identity) {
        Some(n) => *n += 1,
        None => {
            calls.insert(identity.to_string(), 1);
        }
    }
}

/// Replays `events` (with `grants`, if any) through the library path and prints events/s:
/// on the calling thread alone, or reading ahead on a second one.
fn replay_rate(label: &str, events: &Path, format: Format, grants: Option<&Path>, read_ahead: bool) -> f64 {
    let opts = ReplayOptions {
        inputs: vec![events.to_string_lossy().into_owned()],
        format,
        grants: grants.iter().map(|g| g.to_string_lossy().into_owned()).collect(),
        feedback: Vec::new(),
        policy: None,
        limits: Limits::default(),
        lateness_ms: 300_000,
        state_in: None,
        state_out: None,
        engine: EngineConfig::default(),
        suppression: Default::default(),
        progress: false,
        read_ahead,
    };
    let summary = replay::run(&opts, &mut std::io::sink(), &mut std::io::sink(), &|a| a.to_json_line()).unwrap();
    let secs = summary.elapsed.as_secs_f64();
    let rate = summary.events as f64 / secs;
    println!("{label:<40} {rate:>10.0} events/s ({secs:.2} s, {} alerts)", summary.alerts.values().sum::<u64>());
    rate
}

/// With a second core to run on, the replay reading ahead on it, and how it scales from one.
fn two_cores(format: &str, one_core: f64, replay: impl FnOnce() -> f64) {
    if replay::more_than_one_core() {
        println!("{:<40} {:>10.2}", format!("replay ({format}) 2 cores / 1 core:"), replay() / one_core);
    } else {
        println!("replay ({format}) on 2 cores: not run (one core; run without taskset)");
    }
}

fn write(path: &Path, fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> f64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    fill(&mut f).unwrap();
    drop(f);
    std::fs::metadata(path).unwrap().len() as f64 / 1048576.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let identities = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let days = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(14);
    let dir = tempfile::tempdir().expect("temp dir");
    let native = dir.path().join("events.jsonl");
    let grants = dir.path().join("grants.jsonl");
    let trail = dir.path().join("cloudtrail.jsonl");
    let trail_grants = dir.path().join("cloudtrail-grants.jsonl");

    let sim = generate(&SimConfig { identities, days, seed: 7, ..SimConfig::default() });
    let native_mib = write(&native, |w| write_events(&sim.events, EventFormat::Native, w));
    write(&grants, |w| write_json_lines(&sim.grants, w));
    let trail_mib = write(&trail, |w| write_events(&sim.events, EventFormat::Cloudtrail, w));
    write(&trail_grants, |w| write_json_lines(&cloudtrail::grants(&sim.grants), w));
    println!(
        "fleet: {identities} identities x {days} days = {} events, {native_mib:.1} MiB native, {trail_mib:.1} MiB CloudTrail",
        sim.events.len()
    );

    // 1. Native: bare parses that count calls per identity, then the full replay (read, decode,
    // merge with grants by time, detect, render alerts to a sink).
    let value_rate = bare("native Value parse + count", &native, |line, calls| {
        let v: Value = serde_json::from_str(line).unwrap();
        count(calls, v["identity"].as_str().unwrap());
    });
    let struct_rate = bare("native borrowed struct + count", &native, |line, calls| {
        let e: BorrowedEvent = serde_json::from_str(line).unwrap();
        count(calls, &e.identity);
    });
    let native_rate = replay_rate("overreach replay (native)", &native, Format::Native, Some(&grants), false);
    println!("replay / Value parse:                    {:>10.2}", native_rate / value_rate);
    println!("replay / borrowed struct:                {:>10.2}  (aim: 0.5)", native_rate / struct_rate);
    two_cores("native", native_rate, || {
        replay_rate("overreach replay (native), 2 cores", &native, Format::Native, Some(&grants), true)
    });

    // 2. CloudTrail: a Value parse counting calls per role (the session issuer of an assumed
    // role, else the principal's ARN), then the replay of the same fleet as CloudTrail.
    let trail_value_rate = bare("CloudTrail Value parse + count", &trail, |line, calls| {
        let v: Value = serde_json::from_str(line).unwrap();
        let user = &v["userIdentity"];
        let role = user.pointer("/sessionContext/sessionIssuer/arn").unwrap_or(&user["arn"]);
        count(calls, role.as_str().unwrap());
    });
    let trail_rate =
        replay_rate("overreach replay (CloudTrail)", &trail, Format::Cloudtrail, Some(&trail_grants), false);
    println!("replay / Value parse (CloudTrail):       {:>10.2}  (aim: 1.0)", trail_rate / trail_value_rate);
    two_cores("CloudTrail", trail_rate, || {
        replay_rate("overreach replay (CloudTrail), 2 cores", &trail, Format::Cloudtrail, Some(&trail_grants), true)
    });

    // 3. Baseline memory.
    let mut engine = Engine::new(EngineConfig::default());
    let origin = overreach::model::Origin::File { path: "bench".into(), line: 0 };
    for e in &sim.events {
        engine.process(&overreach::model::Record::Access(Box::new(e.clone())), &origin);
    }
    let n = engine.stats().identities.max(1) as usize;
    println!("baseline bytes/identity: {:>10.0} (mean over {n} identities)", engine.baseline_bytes() as f64 / n as f64);
    if let Some((calls, bytes)) = engine.baseline_bytes_near_calls(20) {
        println!("baseline bytes/identity with ~20 distinct calls: {bytes:.0} (mean over identities with {calls})");
    }
}
