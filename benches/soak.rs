//! Memory under hostile churn, printed as numbers (never asserted).
//!
//! `cargo bench --bench soak -- [IDENTITIES] [ACTIONS] [CALLS]` (defaults 5,000,000, 100,000
//! and 2,000,000):
//! 1. IDENTITIES distinct identities, one call each, under `max_identities = 100000`:
//!    resident memory (VmRSS) and its peak (VmHWM) every 500,000 identities, and time;
//!    memory should stay flat once the cap is reached.
//! 2. ACTIONS distinct actions by one learned identity (in sessions): memory and time.
//! 3. CALLS calls by three identities within a day, each naming a credential, a delegator, a
//!    client and an agent never seen before (default 2,000,000, past the 1,000,000
//!    credentials remembered): memory and time every 500,000; memory should stay flat past
//!    the cap, and the time per call even.
//!
//! `cargo bench --bench soak -- held N` instead holds N identities (no eviction) that each
//! make three distinct calls in one session, and prints peak resident memory per identity.
//! It runs alone in its own process: memory freed by an earlier phase stays resident and
//! would be reused, hiding part of the peak.

use overreach::engine::{Engine, EngineConfig};
use overreach::model::{AccessEvent, Origin, Record};
use std::time::Instant;

const T0: i64 = 1_772_409_600_000;

/// (VmRSS, VmHWM) in MiB, from /proc/self/status.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    };
    (kib("VmRSS:").unwrap_or(0.0) / 1024.0, kib("VmHWM:").unwrap_or(0.0) / 1024.0)
}

/// Peak memory per identity held, with nothing evicted.
fn held(n: u64) {
    let origin = Origin::File { path: "soak".into(), line: 0 };
    let (before, _) = memory();
    let mut engine = Engine::new(EngineConfig { max_identities: n as usize, ..EngineConfig::default() });
    let started = Instant::now();
    for i in 0..n {
        let name = format!("arn:aws:iam::111122223333:role/held-{i:09}");
        for (j, action) in ["get", "list", "watch"].into_iter().enumerate() {
            let t = T0 + i as i64 * 10 + j as i64;
            engine.process(&call(name.clone(), t, action.into(), Some(format!("s-{i}"))), &origin);
        }
    }
    let (rss, peak) = memory();
    let held = engine.stats().identities.max(1);
    println!(
        "{held} identities held: rss {rss:.1} MiB, peak {peak:.1} MiB (was {before:.1} at start), {:.0} peak bytes per identity, {:.1} s",
        (peak - before) * 1048576.0 / held as f64,
        started.elapsed().as_secs_f64()
    );
}

fn call(identity: String, time: i64, action: String, session: Option<String>) -> Record {
    Record::Access(Box::new(AccessEvent {
        event_id: format!("{identity}-{time}").into(),
        time,
        identity: identity.into(),
        target: "k8s".into(),
        action: action.into(),
        session_id: session.map(Into::into),
        source_ip: Some("10.0.0.5".into()),
        user_agent: Some("kubectl/1.30".into()),
        ..AccessEvent::default()
    }))
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if raw.first().map(String::as_str) == Some("held") {
        let n = raw.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
        return held(n);
    }
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let identities = args.first().copied().unwrap_or(5_000_000);
    let actions = args.get(1).copied().unwrap_or(100_000);
    let calls = args.get(2).copied().unwrap_or(2_000_000);
    let origin = Origin::File { path: "soak".into(), line: 0 };

    let mut engine = Engine::new(EngineConfig { max_identities: 100_000, ..EngineConfig::default() });
    let started = Instant::now();
    println!("{identities} distinct identities, max_identities = 100000");
    println!("{:>10} {:>10} {:>10} {:>10} {:>10}", "identities", "held", "rss MiB", "peak MiB", "seconds");
    for i in 0..identities {
        let name = format!("arn:aws:iam::111122223333:role/churn-{i:09}");
        engine.process(&call(name, T0 + i as i64 * 100, "get".into(), None), &origin);
        if (i + 1) % 500_000 == 0 || i + 1 == identities {
            let (rss, peak) = memory();
            let held = engine.stats().identities;
            let secs = started.elapsed().as_secs_f64();
            println!("{:>10} {held:>10} {rss:>10.1} {peak:>10.1} {secs:>10.2}", i + 1);
        }
    }
    drop(engine);

    // One identity learns a week of the same few calls, then makes ACTIONS distinct ones.
    let mut engine = Engine::new(EngineConfig::default());
    for h in 0..(8 * 24) {
        for (j, action) in ["list pods", "get deployment", "patch deployment"].into_iter().enumerate() {
            let t = T0 + h * 3_600_000 + j as i64 * 60_000;
            engine.process(&call("ci-deploy".into(), t, action.into(), Some(format!("run-{h}"))), &origin);
        }
    }
    let (before, _) = memory();
    let started = Instant::now();
    let start = T0 + 8 * 86_400_000;
    for n in 0..actions {
        let action = format!("get /api/v1/namespaces/ns/pods/p-{n}");
        let t = start + n as i64 * 1000;
        engine.process(&call("ci-deploy".into(), t, action, Some(format!("probe-{}", n / 10))), &origin);
    }
    let secs = started.elapsed().as_secs_f64();
    let (rss, peak) = memory();
    println!(
        "{actions} distinct actions for one identity: {secs:.2} s ({:.1} µs a call), rss {rss:.1} MiB (was {before:.1}), peak {peak:.1} MiB, baseline {} bytes",
        secs * 1e6 / actions as f64,
        engine.baseline_bytes()
    );
    drop(engine);

    // Every call names what was never seen: a credential, a delegator, a client, an agent.
    let mut engine = Engine::new(EngineConfig::default());
    let started = Instant::now();
    println!("{calls} calls by 3 identities, each with a new credential, delegator, client and agent");
    println!("{:>10} {:>10} {:>10} {:>10}", "calls", "rss MiB", "peak MiB", "seconds");
    for n in 0..calls {
        let mut record = call(format!("svc-{}", n % 3), T0 + n as i64 * 40, "get".into(), None);
        if let Record::Access(e) = &mut record {
            e.credential_id = Some(format!("ASIA{n:016}").into());
            e.on_behalf_of = Some(format!("user-{n}").into());
            e.source_ip = Some(format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255).into());
            e.user_agent = Some(format!("agent-{n}/1.0").into());
        }
        engine.process(&record, &origin);
        if (n + 1) % 500_000 == 0 || n + 1 == calls {
            let (rss, peak) = memory();
            println!("{:>10} {rss:>10.1} {peak:>10.1} {:>10.2}", n + 1, started.elapsed().as_secs_f64());
        }
    }
}
