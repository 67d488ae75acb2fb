//! A table of cases per detector: a history, a probe event, and whether the
//! detector fires on the probe. Everything runs through the real engine.

mod common;

use common::*;
use overreach::detect::Detector;
use overreach::engine::EngineConfig;
use overreach::model::{AccessEvent, Grant, GrantEndReason, Lifecycle, Scope, TimeWindow};
use overreach::time::{DAY, HOUR, MINUTE};

struct Case {
    name: &'static str,
    detector: Detector,
    fires: bool,
    /// Builds the history and returns the probe's event id; a burst of probe
    /// events shares it as a prefix (`probe-1`, `probe-2` ...).
    build: fn(&mut Scenario) -> String,
}

/// Six weeks of a pipeline, six runs a weekday (09:00 to 14:00): 1,080
/// calls of 6 kinds in 180 active hours.
fn learned_pipeline(s: &mut Scenario) {
    s.pipeline("ci-payments", LEARNED_DAYS, 6);
}

const LEARNED_DAYS: i64 = 42;

/// Monday of the seventh week, 10:05, inside the usual run hours.
fn probe_time() -> i64 {
    t0() + LEARNED_DAYS * DAY + 10 * HOUR + 5 * MINUTE
}

/// A name without digits, so resource classes keep it: aa, ab, ... .
fn word(i: i64) -> String {
    let letter = |n: i64| char::from(b'a' + (n % 26) as u8);
    format!("{}{}", letter(i / 26), letter(i))
}

fn probe(s: &mut Scenario, e: AccessEvent) -> String {
    let id = "probe".to_string();
    s.push(AccessEvent { event_id: id.clone(), ..e });
    id
}

fn pipeline_call(target: &str, action: &str) -> AccessEvent {
    AccessEvent {
        identity_type: Some("ci_pipeline".into()),
        on_behalf_of: Some("team-payments".into()),
        session_id: Some("probe-run".into()),
        ..ev("ci-payments", probe_time(), target, action)
    }
}

/// An agent with a broad toolset: 120 tools over four weeks, many used once.
fn broad_agent(s: &mut Scenario) {
    for i in 0..600i64 {
        let tool = if i % 5 == 0 { format!("tool-{}", i / 5) } else { format!("tool-{}", i % 20) };
        s.push(AccessEvent {
            identity_type: Some("ai_agent".into()),
            session_id: Some(format!("task-{}", i / 4)),
            ..ev("agent-helpdesk", t0() + i * 67 * MINUTE, "tools", &tool)
        });
    }
}

fn grant(id: &str, identity: &str, scope: Scope, windows: Vec<TimeWindow>) -> Lifecycle {
    Lifecycle::Grant(Grant {
        grant_id: id.into(),
        identity: identity.into(),
        on_behalf_of: None,
        scope,
        not_before: None,
        expires_at: None,
        windows,
    })
}

fn weekdays_14_to_16() -> Vec<TimeWindow> {
    vec![TimeWindow {
        days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
        start: "14:00".into(),
        end: "16:00".into(),
    }]
}

const CASES: &[Case] = &[
    Case {
        name: "a pipeline's 7th call after thousands of the same 6",
        detector: Detector::NovelCall,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(s, pipeline_call("iam", "CreateAccessKey"))
        },
    },
    Case {
        name: "a broad agent trying one more tool",
        detector: Detector::NovelCall,
        fires: false,
        build: |s| {
            broad_agent(s);
            probe(
                s,
                AccessEvent {
                    identity_type: Some("ai_agent".into()),
                    ..ev("agent-helpdesk", t0() + 29 * DAY, "tools", "tool-new")
                },
            )
        },
    },
    Case {
        name: "a new call while the identity still learns",
        detector: Detector::NovelCall,
        fires: false,
        build: |s| {
            s.pipeline("ci-payments", 3, 3);
            probe(s, AccessEvent { time: t0() + 3 * DAY + 14 * HOUR, ..pipeline_call("iam", "CreateAccessKey") })
        },
    },
    Case {
        name: "a new call that two peers adopted the same day (a rollout)",
        detector: Detector::NovelCall,
        fires: false,
        build: |s| {
            for p in ["ci-a", "ci-b", "ci-c"] {
                s.pipeline(p, LEARNED_DAYS, 6);
            }
            for (i, p) in ["ci-a", "ci-b"].iter().enumerate() {
                s.push(AccessEvent {
                    identity_type: Some("ci_pipeline".into()),
                    ..ev(p, probe_time() - (2 - i as i64) * HOUR, "ssm", "GetParameter")
                });
            }
            probe(
                s,
                AccessEvent {
                    identity_type: Some("ci_pipeline".into()),
                    ..ev("ci-c", probe_time(), "ssm", "GetParameter")
                },
            )
        },
    },
    Case {
        name: "known calls in an order the pipeline never uses",
        detector: Detector::RareTransition,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("sts", "AssumeRole") });
            probe(s, pipeline_call("ecs", "UpdateService"))
        },
    },
    Case {
        name: "the usual order",
        detector: Detector::RareTransition,
        fires: false,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("sts", "AssumeRole") });
            probe(s, pipeline_call("ecr", "GetAuthorizationToken"))
        },
    },
    Case {
        name: "forty storage prefixes in ten minutes",
        detector: Detector::FanoutBurst,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            for i in 0..40 {
                s.push(AccessEvent {
                    event_id: format!("probe-{i}"),
                    resource: Some(format!("arn:aws:s3:::lake/{}/x", word(i))),
                    ..ev("ci-payments", probe_time() + i * 5_000, "s3", "ListObjects")
                });
            }
            "probe".into()
        },
    },
    Case {
        name: "three hundred calls in ten minutes from a pipeline of six",
        detector: Detector::VolumeSpike,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            for i in 0..300 {
                s.push(AccessEvent {
                    event_id: format!("probe-{i}"),
                    ..ev("ci-payments", probe_time() + i * 1_000, "s3", "GetObject")
                });
            }
            "probe".into()
        },
    },
    Case {
        name: "a usual run's volume",
        detector: Detector::VolumeSpike,
        fires: false,
        build: |s| {
            learned_pipeline(s);
            for i in 0..5 {
                s.push(ev("ci-payments", probe_time() + i * 1_000, "s3", "PutObject"));
            }
            probe(s, ev("ci-payments", probe_time() + 6_000, "s3", "PutObject"))
        },
    },
    Case {
        name: "a new network and client for a single-homed pipeline",
        detector: Detector::NewSource,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(
                s,
                AccessEvent {
                    source_ip: Some("203.0.113.9".into()),
                    user_agent: Some("curl/8.0".into()),
                    ..pipeline_call("s3", "PutObject")
                },
            )
        },
    },
    Case {
        name: "a new network for a workload that roams across many",
        detector: Detector::NewSource,
        fires: false,
        build: |s| {
            for i in 0..400i64 {
                s.push(AccessEvent {
                    source_ip: Some(format!("10.{}.{}.7", i % 97, i % 13)),
                    ..ev("federated-etl", t0() + i * 97 * MINUTE, "bigquery", "Query")
                });
            }
            probe(
                s,
                AccessEvent {
                    source_ip: Some("10.200.1.7".into()),
                    ..ev("federated-etl", t0() + 28 * DAY, "bigquery", "Query")
                },
            )
        },
    },
    Case {
        name: "a weekday-afternoon pipeline acting on Sunday at 03:00",
        detector: Detector::OffHours,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(
                s,
                AccessEvent { time: t0() + (LEARNED_DAYS - 1) * DAY + 3 * HOUR, ..pipeline_call("s3", "PutObject") },
            )
        },
    },
    Case {
        name: "an hourly integration at 03:00",
        detector: Detector::OffHours,
        fires: false,
        build: |s| {
            for h in 0..(28 * 24) {
                s.push(ev("saas-sync", t0() + h * HOUR + 5 * MINUTE, "crm", "SyncRecords"));
            }
            probe(s, ev("saas-sync", t0() + 28 * DAY + 3 * HOUR + 10 * MINUTE, "crm", "SyncRecords"))
        },
    },
    Case {
        name: "acting for a business unit never served and not declared",
        detector: Detector::NewDelegator,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(s, AccessEvent { on_behalf_of: Some("team-hr".into()), ..pipeline_call("s3", "PutObject") })
        },
    },
    Case {
        name: "acting for a new business unit that a grant declares",
        detector: Detector::NewDelegator,
        fires: false,
        build: |s| {
            learned_pipeline(s);
            s.fact(
                probe_time() - HOUR,
                Lifecycle::Grant(Grant {
                    grant_id: "g-hr".into(),
                    identity: "ci-payments".into(),
                    on_behalf_of: Some("team-hr".into()),
                    scope: Scope::default(),
                    not_before: None,
                    expires_at: None,
                    windows: vec![],
                }),
            );
            probe(s, AccessEvent { on_behalf_of: Some("team-hr".into()), ..pipeline_call("s3", "PutObject") })
        },
    },
    Case {
        name: "a second, unknown client while the usual one is active",
        detector: Detector::SharedIdentity,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("s3", "PutObject") });
            probe(
                s,
                AccessEvent {
                    source_ip: Some("198.51.100.4".into()),
                    user_agent: Some("python-requests/2.31".into()),
                    ..pipeline_call("s3", "GetObject")
                },
            )
        },
    },
    Case {
        name: "one credential used by two identities",
        detector: Detector::SharedIdentity,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            s.pipeline("ci-ledger", LEARNED_DAYS, 6);
            s.push(AccessEvent {
                credential_id: Some("AKIAEXAMPLE1".into()),
                ..ev("ci-ledger", probe_time() - HOUR, "s3", "PutObject")
            });
            probe(s, AccessEvent { credential_id: Some("AKIAEXAMPLE1".into()), ..pipeline_call("s3", "PutObject") })
        },
    },
    Case {
        name: "the usual client only",
        detector: Detector::SharedIdentity,
        fires: false,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("s3", "PutObject") });
            probe(s, pipeline_call("s3", "PutObject"))
        },
    },
    Case {
        name: "a daily pipeline back after 40 days of silence",
        detector: Detector::DormantReactivation,
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(s, AccessEvent { time: probe_time() + 40 * DAY, ..pipeline_call("sts", "AssumeRole") })
        },
    },
    Case {
        name: "a weekend gap",
        detector: Detector::DormantReactivation,
        fires: false,
        build: |s| {
            learned_pipeline(s);
            probe(s, pipeline_call("sts", "AssumeRole"))
        },
    },
    Case {
        name: "a call after the identity was offboarded",
        detector: Detector::PostPurpose,
        fires: true,
        build: |s| {
            s.pipeline("ci-payments", 2, 1);
            s.fact(t0() + 3 * DAY, Lifecycle::IdentityOffboarded { identity: "ci-payments".into() });
            probe(s, ev("ci-payments", t0() + 4 * DAY, "s3", "GetObject"))
        },
    },
    Case {
        name: "a call with a revoked credential",
        detector: Detector::PostPurpose,
        fires: true,
        build: |s| {
            s.fact(t0(), Lifecycle::CredentialRevoked { credential_id: "AKIAOLD".into() });
            probe(
                s,
                AccessEvent { credential_id: Some("AKIAOLD".into()), ..ev("saas-sync", t0() + HOUR, "crm", "Sync") },
            )
        },
    },
    Case {
        name: "a call after the only grant ended",
        detector: Detector::PostPurpose,
        fires: true,
        build: |s| {
            s.fact(t0(), grant("g1", "saas-sync", Scope::default(), vec![]));
            s.push(ev("saas-sync", t0() + HOUR, "crm", "Sync"));
            s.fact(t0() + DAY, Lifecycle::GrantEnded { grant_id: "g1".into(), reason: GrantEndReason::PurposeEnded });
            probe(s, ev("saas-sync", t0() + 2 * DAY, "crm", "Sync"))
        },
    },
    Case {
        name: "a call before the offboarding",
        detector: Detector::PostPurpose,
        fires: false,
        build: |s| {
            s.fact(t0(), grant("g1", "saas-sync", Scope::default(), vec![]));
            s.fact(t0() + 3 * DAY, Lifecycle::IdentityOffboarded { identity: "saas-sync".into() });
            probe(s, ev("saas-sync", t0() + 2 * DAY, "crm", "Sync"))
        },
    },
    Case {
        name: "a call with a credential past its stated expiry",
        detector: Detector::ExpiredCredential,
        fires: true,
        build: |s| {
            probe(
                s,
                AccessEvent {
                    credential_id: Some("ASIA1".into()),
                    credential_expires_at: Some(t0()),
                    ..ev("fed", t0() + HOUR, "api", "Get")
                },
            )
        },
    },
    Case {
        name: "a call with an STS credential past the expiry its issue recorded",
        detector: Detector::ExpiredCredential,
        fires: true,
        build: |s| {
            s.fact(
                t0(),
                Lifecycle::CredentialIssued { credential_id: "ASIA2".into(), identity: None, expires_at: t0() + HOUR },
            );
            probe(s, AccessEvent { credential_id: Some("ASIA2".into()), ..ev("fed", t0() + 2 * HOUR, "api", "Get") })
        },
    },
    Case {
        name: "a call within the clock-skew tolerance of expiry",
        detector: Detector::ExpiredCredential,
        fires: false,
        build: |s| {
            probe(
                s,
                AccessEvent {
                    credential_id: Some("ASIA3".into()),
                    credential_expires_at: Some(t0()),
                    ..ev("fed", t0() + 30_000, "api", "Get")
                },
            )
        },
    },
    Case {
        name: "a deploy at 20:00, outside the 14:00-16:00 release window",
        detector: Detector::OutsideWindow,
        fires: true,
        build: |s| {
            s.fact(t0(), grant("g-deploy", "ci-payments", Scope::default(), weekdays_14_to_16()));
            probe(s, ev("ci-payments", t0() + 20 * HOUR, "ecs", "UpdateService"))
        },
    },
    Case {
        name: "a deploy inside the window",
        detector: Detector::OutsideWindow,
        fires: false,
        build: |s| {
            s.fact(t0(), grant("g-deploy", "ci-payments", Scope::default(), weekdays_14_to_16()));
            probe(s, ev("ci-payments", t0() + 15 * HOUR, "ecs", "UpdateService"))
        },
    },
    Case {
        name: "a read outside the granted prefix",
        detector: Detector::ScopeViolation,
        fires: true,
        build: |s| {
            let scope = Scope { resources: vec!["arn:aws:s3:::lake/finance/*".into()], ..Scope::default() };
            s.fact(t0(), grant("g-fin", "data-platform", scope, vec![]));
            probe(
                s,
                AccessEvent {
                    resource: Some("arn:aws:s3:::lake/hr/salaries.csv".into()),
                    ..ev("data-platform", t0() + HOUR, "s3", "GetObject")
                },
            )
        },
    },
    Case {
        name: "a read inside the granted prefix, at any depth",
        detector: Detector::ScopeViolation,
        fires: false,
        build: |s| {
            let scope = Scope { resources: vec!["arn:aws:s3:::lake/finance/*".into()], ..Scope::default() };
            s.fact(t0(), grant("g-fin", "data-platform", scope, vec![]));
            probe(
                s,
                AccessEvent {
                    resource: Some("arn:aws:s3:::lake/finance/q1/x:y.csv".into()),
                    ..ev("data-platform", t0() + HOUR, "s3", "GetObject")
                },
            )
        },
    },
];

#[test]
fn every_case_fires_or_stays_silent_as_expected() {
    let mut failures = Vec::new();
    for case in CASES {
        let mut s = Scenario::new();
        let probe = (case.build)(&mut s);
        let alerts = s.run(EngineConfig::default());
        if fired(&alerts, case.detector, &probe) != case.fires {
            let on_probe: Vec<String> = alerts
                .iter()
                .filter(|a| a.event_ids.iter().any(|e| e.starts_with(probe.as_str())))
                .map(|a| format!("{}: {}", a.detector, a.summary))
                .collect();
            failures.push(format!(
                "{} [{}] expected fires={}; alerts on probe: {on_probe:?}",
                case.name, case.detector, case.fires
            ));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_detector_has_a_case_that_fires_and_one_that_does_not() {
    for d in Detector::ALL {
        let fires = CASES.iter().any(|c| c.detector == d && c.fires);
        let silent = CASES.iter().any(|c| c.detector == d && !c.fires);
        assert!(fires, "{d} has no firing case");
        assert!(silent || d == Detector::FanoutBurst, "{d} has no silent case");
    }
}

#[test]
fn a_disabled_detector_stays_silent() {
    let mut s = Scenario::new();
    learned_pipeline(&mut s);
    let probe = probe(&mut s, pipeline_call("iam", "CreateAccessKey"));
    let config = EngineConfig { disabled: vec![Detector::NovelCall], ..EngineConfig::default() };
    assert!(!fired(&s.run(config), Detector::NovelCall, &probe));
}

#[test]
fn repeats_within_the_suppression_window_are_counted_not_emitted() {
    let mut s = Scenario::new();
    s.fact(t0(), Lifecycle::IdentityOffboarded { identity: "gone".into() });
    for i in 0..5 {
        s.push(ev("gone", t0() + HOUR + i * 10 * MINUTE, "s3", "GetObject"));
    }
    s.push(ev("gone", t0() + 3 * HOUR, "s3", "GetObject"));
    let alerts = s.run(EngineConfig::default());
    let post: Vec<_> = alerts.iter().filter(|a| a.detector == Detector::PostPurpose).collect();
    assert_eq!(post.len(), 2, "one at the start, one after the window");
    assert_eq!(post[0].suppressed_repeats, 0);
    assert_eq!(post[1].suppressed_repeats, 4);
}
