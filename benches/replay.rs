//! Replay throughput and baseline memory, printed as numbers (never asserted).
//!
//! `cargo bench --bench replay -- [IDENTITIES] [DAYS]` (defaults 1000, 14):
//! simulates a fleet, writes it as native JSON Lines and as CloudTrail records, then
//! 1. native: times two bare parses of the file that count calls per identity (a
//!    `serde_json::Value` tree, and a borrowed serde struct of every event field, the
//!    reference issue 10 sets) against `overreach replay` of the file with its grants;
//! 2. CloudTrail: a `Value` parse counting calls per role against the replay of the same
//!    fleet in CloudTrail form;
//! 3. reports baseline bytes per identity, and for identities with about 20 distinct calls.
//!
//! Each side is timed as the issue sets it: the wall time of a whole process (start, read the
//! file, parse or replay it, exit), on one core (`taskset -c 0`). The bare parses run as this
//! bench's own executable in a reference mode (`--reference KIND FILE`), the replays as the
//! `overreach` executable. With a second core, each replay runs again unpinned, reading ahead
//! on it, with how it scales from one.

use overreach::engine::{Engine, EngineConfig};
use overreach::replay;
use overreach::simulate::{cloudtrail, generate, write_events, write_json_lines, EventFormat, SimConfig};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
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

/// The bare parses, each a whole process of this executable (`--reference KIND FILE`): read
/// the file, parse each line, count calls per identity (per role for CloudTrail), print the
/// number of identities.
fn reference(kind: &str, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut calls = HashMap::new();
    for line in text.lines() {
        match kind {
            "native-value" => {
                let v: Value = serde_json::from_str(line).unwrap();
                count(&mut calls, v["identity"].as_str().unwrap());
            }
            "native-struct" => {
                let e: BorrowedEvent = serde_json::from_str(line).unwrap();
                count(&mut calls, &e.identity);
            }
            // The session issuer of an assumed role, else the principal's ARN.
            "cloudtrail-value" => {
                let v: Value = serde_json::from_str(line).unwrap();
                let user = &v["userIdentity"];
                let role = user.pointer("/sessionContext/sessionIssuer/arn").unwrap_or(&user["arn"]);
                count(&mut calls, role.as_str().unwrap());
            }
            other => panic!("no reference parse `{other}`"),
        }
    }
    println!("{} identities", calls.len());
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

/// How a timed process is placed: pinned to one core, or on every core the bench has.
#[derive(Clone, Copy, PartialEq)]
enum Cores {
    One,
    All,
}

/// Runs `program args` as a whole process and prints its rate over `events`, with the last word
/// of what it printed (a reference's identities, a replay's alerts); returns the rate.
fn timed(label: &str, events: usize, cores: Cores, program: &Path, args: &[&str]) -> f64 {
    let mut command = match cores {
        Cores::One => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg("0").arg(program);
            c
        }
        Cores::All => Command::new(program),
    };
    let started = Instant::now();
    let out = command.args(args).output().expect("taskset (util-linux) and the executables to time");
    let secs = started.elapsed().as_secs_f64();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{label}: {stdout}{stderr}");
    let rate = events as f64 / secs;
    println!("{label:<40} {rate:>10.0} events/s ({secs:.2} s, {})", what_it_printed(&stdout, &stderr));
    rate
}

/// "N identities" from a reference; "N alerts" from a replay's summary line.
fn what_it_printed(stdout: &str, stderr: &str) -> String {
    let alerts = stderr.split(", ").find(|part| part.contains(" alerts")).and_then(|part| part.split(" (").next());
    alerts.unwrap_or(stdout.trim()).to_string()
}

/// `overreach replay` of `events` with its grants, as a process.
fn replay(label: &str, events: usize, cores: Cores, format: &str, file: &Path, grants: &Path) -> f64 {
    let (file, grants) = (file.to_str().unwrap(), grants.to_str().unwrap());
    let args = ["replay", "--format", format, "--grants", grants, "--alerts-out", "/dev/null", file];
    timed(label, events, cores, Path::new(env!("CARGO_BIN_EXE_overreach")), &args)
}

/// With a second core to run on, the replay unpinned (reading ahead on the second core), and how
/// it scales from one.
fn two_cores(format: &str, one_core: f64, replay: impl FnOnce() -> f64) {
    if replay::more_than_one_core() {
        println!("{:<40} {:>10.2}", format!("replay ({format}) 2 cores / 1 core:"), replay() / one_core);
    } else {
        println!("replay ({format}) on 2 cores: not run (the bench has one core)");
    }
}

fn write(path: &Path, fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> f64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    fill(&mut f).unwrap();
    drop(f);
    std::fs::metadata(path).unwrap().len() as f64 / 1048576.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let [mode, kind, file] = &args[..] {
        if mode == "--reference" {
            return reference(kind, Path::new(file));
        }
    }
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
    let n = sim.events.len();
    println!("fleet: {identities} identities x {days} days = {n} events, {native_mib:.1} MiB native, {trail_mib:.1} MiB CloudTrail");
    let me = std::env::current_exe().expect("the bench's own executable");
    let bare = |label: &str, kind: &str, file: &Path| {
        timed(label, n, Cores::One, &me, &["--reference", kind, file.to_str().unwrap()])
    };

    // 1. Native: bare parses that count calls per identity, then the full replay (read, decode,
    // merge with grants by time, detect, render alerts to a sink).
    let value_rate = bare("native Value parse + count", "native-value", &native);
    let struct_rate = bare("native borrowed struct + count", "native-struct", &native);
    let native_rate = replay("overreach replay (native)", n, Cores::One, "native", &native, &grants);
    println!("replay / Value parse:                    {:>10.2}", native_rate / value_rate);
    println!("replay / borrowed struct:                {:>10.2}  (aim: 0.5)", native_rate / struct_rate);
    two_cores("native", native_rate, || {
        replay("overreach replay (native), 2 cores", n, Cores::All, "native", &native, &grants)
    });

    // 2. CloudTrail: a Value parse counting calls per role, then the replay of the same fleet as
    // CloudTrail.
    let trail_value_rate = bare("CloudTrail Value parse + count", "cloudtrail-value", &trail);
    let trail_rate = replay("overreach replay (CloudTrail)", n, Cores::One, "cloudtrail", &trail, &trail_grants);
    println!("replay / Value parse (CloudTrail):       {:>10.2}  (aim: 1.0)", trail_rate / trail_value_rate);
    two_cores("CloudTrail", trail_rate, || {
        replay("overreach replay (CloudTrail), 2 cores", n, Cores::All, "cloudtrail", &trail, &trail_grants)
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
