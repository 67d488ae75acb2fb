//! Builders for test histories: events and lifecycle records, run through the
//! real engine.
#![allow(dead_code)]

pub mod schema;

use overreach::alert::Alert;
use overreach::detect::Detector;
use overreach::engine::{Engine, EngineConfig};
use overreach::model::{AccessEvent, Lifecycle, Millis, Origin, Record};
use overreach::time::{parse_rfc3339, DAY, HOUR, MINUTE};

/// 2026-03-02, a Monday.
pub fn t0() -> Millis {
    parse_rfc3339("2026-03-02T00:00:00Z").unwrap()
}

/// An event with the fields most tests need; adjust the rest with struct update.
pub fn ev(identity: &str, time: Millis, target: &str, action: &str) -> AccessEvent {
    AccessEvent {
        event_id: format!("{identity}-{time}-{target}-{action}").into(),
        time,
        identity: identity.into(),
        target: target.into(),
        action: action.into(),
        source_ip: Some("10.0.0.5".into()),
        user_agent: Some("aws-cli/2.15".into()),
        ..AccessEvent::default()
    }
}

pub struct Scenario {
    pub records: Vec<Record>,
}

impl Scenario {
    pub fn new() -> Scenario {
        Scenario { records: Vec::new() }
    }

    pub fn push(&mut self, e: AccessEvent) -> &mut Self {
        self.records.push(Record::Access(Box::new(e)));
        self
    }

    pub fn fact(&mut self, time: Millis, fact: Lifecycle) -> &mut Self {
        self.records.push(Record::Lifecycle { time, event_id: format!("fact-{time}"), fact: Box::new(fact) });
        self
    }

    /// A CI pipeline: `runs` runs a weekday, one an hour from 09:00, for
    /// `days` days, each a session of the same six calls from one client.
    pub fn pipeline(&mut self, identity: &str, days: i64, runs: i64) -> &mut Self {
        for day in 0..days {
            let base = t0() + day * DAY;
            if crate::common::weekday(base) >= 5 {
                continue;
            }
            for run in 0..runs {
                let start = base + (9 + run) * HOUR + 5 * MINUTE;
                for (i, (target, action)) in PIPELINE.iter().enumerate() {
                    self.push(AccessEvent {
                        session_id: Some(format!("{identity}-run-{day}-{run}").into()),
                        identity_type: Some("ci_pipeline".into()),
                        on_behalf_of: Some("team-payments".into()),
                        resource: (*target == "s3")
                            .then(|| format!("arn:aws:s3:::releases/{identity}/build-{day}-{run}.zip").into()),
                        ..ev(identity, start + i as i64 * MINUTE, target, action)
                    });
                }
            }
        }
        self
    }

    /// Runs every record through a fresh engine; returns all alerts, each
    /// checked against the alert schema.
    pub fn run(&self, config: EngineConfig) -> Vec<Alert> {
        self.run_on(&mut Engine::new(config))
    }

    /// Runs every record through `engine` (set up as the test needs); returns
    /// all alerts, each checked against the alert schema.
    pub fn run_on(&self, engine: &mut Engine) -> Vec<Alert> {
        let alerts: Vec<Alert> =
            self.records.iter().enumerate().flat_map(|(i, r)| engine.process(r, &origin(i))).collect();
        for a in &alerts {
            schema::assert_valid_alert(&serde_json::to_value(a).unwrap());
        }
        alerts
    }
}

pub const PIPELINE: [(&str, &str); 6] = [
    ("sts", "AssumeRole"),
    ("ecr", "GetAuthorizationToken"),
    ("ecr", "PutImage"),
    ("s3", "PutObject"),
    ("ecs", "RegisterTaskDefinition"),
    ("ecs", "UpdateService"),
];

pub fn origin(i: usize) -> Origin {
    Origin::File { path: "test".into(), line: i as u64 + 1 }
}

pub fn weekday(t: Millis) -> usize {
    overreach::time::weekday_and_minute(t).0
}

/// True when `detector` alerted on an event whose id is `event_id` or starts
/// with `event_id-` (a burst of probe events), or, for an incident, when one
/// of its signals is that detector's on such an event.
pub fn fired(alerts: &[Alert], detector: Detector, event_id: &str) -> bool {
    let matches = |e: &str| e == event_id || e.strip_prefix(event_id).is_some_and(|rest| rest.starts_with('-'));
    alerts.iter().any(|a| match &a.incident {
        None => a.detector == detector && a.event_ids.iter().any(|e| matches(e)),
        Some(incident) => incident.signals.iter().any(|s| s.detector == detector && matches(&s.event_id)),
    })
}

/// Writes records as the files a user would replay: access events in the
/// native format, lifecycle facts in the grants format.
pub fn write_jsonl(dir: &std::path::Path, name: &str, records: &[Record]) -> (String, String) {
    use std::fmt::Write as _;
    let (mut events, mut grants) = (String::new(), String::new());
    for r in records {
        match r {
            Record::Access(e) => writeln!(events, "{}", serde_json::to_string(e).unwrap()).unwrap(),
            Record::Lifecycle { time, fact, .. } => {
                let mut v = serde_json::to_value(fact).unwrap();
                v["time"] = (*time).into();
                writeln!(grants, "{v}").unwrap();
            }
            Record::Verdict(_) => unimplemented!("verdicts are written as feedback files by their own tests"),
        }
    }
    let paths = (dir.join(format!("{name}.jsonl")), dir.join(format!("{name}.grants.jsonl")));
    std::fs::write(&paths.0, events).unwrap();
    std::fs::write(&paths.1, grants).unwrap();
    (paths.0.to_string_lossy().into_owned(), paths.1.to_string_lossy().into_owned())
}

/// Runs the real binary; returns (exit code, stdout, stderr). Native alerts
/// that `replay` prints are checked against the alert schema.
pub fn overreach(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_overreach")).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    if args.first() == Some(&"replay") && !args.contains(&"ocsf") {
        schema::assert_valid_alert_lines(&stdout);
    }
    (out.status.code().unwrap_or(-1), stdout, String::from_utf8(out.stderr).unwrap())
}

/// A varied history for whole-run tests: pipelines, an agent, a revoked
/// integration, and a few oversteps.
pub fn mixed_scenario() -> Scenario {
    let mut s = Scenario::new();
    for p in ["ci-payments", "ci-ledger", "ci-web"] {
        s.pipeline(p, 35, 3);
    }
    s.fact(
        t0(),
        Lifecycle::Grant(overreach::model::Grant {
            grant_id: "g-sync".into(),
            identity: "saas-sync".into(),
            on_behalf_of: None,
            scope: overreach::model::Scope { targets: vec!["crm".into()], ..Default::default() },
            not_before: None,
            expires_at: None,
            windows: vec![],
        }),
    );
    for h in 0..(35 * 24) {
        s.push(ev("saas-sync", t0() + h * HOUR + 7 * MINUTE, "crm", "SyncRecords"));
    }
    s.push(ev("saas-sync", t0() + 20 * DAY + 30 * MINUTE, "s3", "GetObject"));
    s.push(AccessEvent {
        source_ip: Some("203.0.113.50".into()),
        user_agent: Some("curl/8".into()),
        ..ev("ci-web", t0() + 29 * DAY + 3 * HOUR, "iam", "CreateAccessKey")
    });
    s.fact(
        t0() + 30 * DAY,
        Lifecycle::GrantEnded { grant_id: "g-sync".into(), reason: overreach::model::GrantEndReason::Revoked },
    );
    s.records.sort_by_key(|r| r.time());
    s
}
