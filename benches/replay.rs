//! Replay throughput and baseline memory, printed as numbers (never asserted).
//!
//! `cargo bench --bench replay -- [IDENTITIES] [DAYS]` (defaults 1000, 14):
//! simulates a fleet, writes it as native JSON Lines, then on one core
//! 1. parses every line with serde_json into a `Value` and nothing else;
//! 2. replays the file through `overreach replay`'s library path;
//!    and prints events/s of both and their ratio;
//! 3. reports baseline bytes per identity, and for identities with about 20
//!    distinct calls.

use overreach::decode::{Format, Limits};
use overreach::engine::{Engine, EngineConfig};
use overreach::replay::{self, ReplayOptions};
use overreach::simulate::{generate, SimConfig};
use std::io::Write;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let identities = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let days = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(14);
    let dir = tempfile::tempdir().expect("temp dir");
    let events_path = dir.path().join("events.jsonl");
    let grants_path = dir.path().join("grants.jsonl");

    let sim = generate(&SimConfig { identities, days, seed: 7, ..SimConfig::default() });
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&events_path).unwrap());
        for e in &sim.events {
            writeln!(f, "{}", serde_json::to_string(e).unwrap()).unwrap();
        }
        let mut g = std::io::BufWriter::new(std::fs::File::create(&grants_path).unwrap());
        for v in &sim.grants {
            writeln!(g, "{v}").unwrap();
        }
    }
    let bytes = std::fs::metadata(&events_path).unwrap().len();
    println!(
        "fleet: {identities} identities x {days} days = {} events, {:.1} MiB native JSON Lines",
        sim.events.len(),
        bytes as f64 / 1048576.0
    );

    // 1. Bare parse: read lines and build a serde_json::Value, nothing more.
    let text = std::fs::read_to_string(&events_path).unwrap();
    let started = Instant::now();
    let mut parsed = 0u64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        parsed += u64::from(v.is_object());
    }
    let parse_s = started.elapsed().as_secs_f64();
    let parse_rate = parsed as f64 / parse_s;
    println!("bare serde_json parse:   {parse_rate:>10.0} events/s ({parse_s:.2} s)");

    // 2. Full replay: read, decode, merge with grants, detect, render alerts.
    let opts = ReplayOptions {
        inputs: vec![events_path.to_string_lossy().into_owned()],
        format: Format::Native,
        grants: vec![grants_path.to_string_lossy().into_owned()],
        policy: None,
        limits: Limits::default(),
        lateness_ms: 300_000,
        state_in: None,
        state_out: None,
        engine: EngineConfig::default(),
        progress: false,
    };
    let mut sink = std::io::sink();
    let summary = replay::run(&opts, &mut sink, &mut std::io::sink(), &|a| a.to_json_line()).unwrap();
    let replay_rate = summary.events as f64 / summary.elapsed.as_secs_f64();
    println!(
        "overreach replay:        {replay_rate:>10.0} events/s ({:.2} s, {} alerts)",
        summary.elapsed.as_secs_f64(),
        summary.alerts.values().sum::<u64>()
    );
    println!("replay / bare parse:     {:>10.2}", replay_rate / parse_rate);

    // 3. Baseline memory.
    let mut engine = Engine::new(EngineConfig::default());
    let origin = overreach::model::Origin::File { path: "bench".into(), line: 0 };
    for e in &sim.events {
        engine.process(&overreach::model::Record::Access(e.clone()), &origin);
    }
    let n = engine.stats().identities.max(1) as usize;
    println!("baseline bytes/identity: {:>10.0} (mean over {n} identities)", engine.baseline_bytes() as f64 / n as f64);
    if let Some((calls, bytes)) = engine.baseline_bytes_near_calls(20) {
        println!("baseline bytes/identity with ~20 distinct calls: {bytes:.0} (mean over identities with {calls})");
    }
}
