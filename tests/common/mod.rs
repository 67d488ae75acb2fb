//! Builders for test histories: events and lifecycle records, run through the
//! real engine.
#![allow(dead_code)]

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
        event_id: format!("{identity}-{time}-{target}-{action}"),
        time,
        identity: identity.to_string(),
        target: target.to_string(),
        action: action.to_string(),
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
        self.records.push(Record::Access(e));
        self
    }

    pub fn fact(&mut self, time: Millis, fact: Lifecycle) -> &mut Self {
        self.records.push(Record::Lifecycle { time, event_id: format!("fact-{time}"), fact });
        self
    }

    /// A CI pipeline: `runs` runs a weekday at 14:00, 14:20, 14:40 for `days`
    /// days, each a session of the same six calls from one client.
    pub fn pipeline(&mut self, identity: &str, days: i64, runs: i64) -> &mut Self {
        for day in 0..days {
            let base = t0() + day * DAY;
            if crate::common::weekday(base) >= 5 {
                continue;
            }
            for run in 0..runs {
                let start = base + 14 * HOUR + run * 20 * MINUTE;
                for (i, (target, action)) in PIPELINE.iter().enumerate() {
                    self.push(AccessEvent {
                        session_id: Some(format!("{identity}-run-{day}-{run}")),
                        identity_type: Some("ci_pipeline".into()),
                        on_behalf_of: Some("team-payments".into()),
                        resource: (*target == "s3")
                            .then(|| format!("arn:aws:s3:::releases/{identity}/build-{day}-{run}.zip")),
                        ..ev(identity, start + i as i64 * MINUTE, target, action)
                    });
                }
            }
        }
        self
    }

    /// Runs every record through a fresh engine; returns all alerts.
    pub fn run(&self, config: EngineConfig) -> Vec<Alert> {
        let mut engine = Engine::new(config);
        self.records.iter().enumerate().flat_map(|(i, r)| engine.process(r, &origin(i))).collect()
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
/// with `event_id-` (a burst of probe events).
pub fn fired(alerts: &[Alert], detector: Detector, event_id: &str) -> bool {
    let matches = |e: &String| e == event_id || e.strip_prefix(event_id).is_some_and(|rest| rest.starts_with('-'));
    alerts.iter().any(|a| a.detector == detector && a.event_ids.iter().any(matches))
}
