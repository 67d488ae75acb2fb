//! A table of cases per detector: a history, a probe event, and whether the
//! detector fires on the probe. Everything runs through the real engine.

mod common;

use common::*;
use overreach::alert::{Alert, IncidentSignal};
use overreach::detect::{self, Detector};
use overreach::engine::{AlertMode, EngineConfig};
use overreach::model::{AccessEvent, Grant, GrantEndReason, Lifecycle, Outcome, Record, Scope, TimeWindow};
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

/// Six weeks of a pipeline that deploys to one account, four times a day.
fn one_account_pipeline(s: &mut Scenario) {
    for day in 0..LEARNED_DAYS {
        for run in 0..4 {
            s.push(AccessEvent {
                environment: Some("111111111111".into()),
                session_id: Some(format!("run-{day}-{run}").into()),
                ..pipeline_call("ecs", "UpdateService")
            });
            let time = t0() + day * DAY + (10 + run) * HOUR;
            if let Some(overreach::model::Record::Access(e)) = s.records.last_mut() {
                (e.time, e.event_id) = (time, format!("h-{day}-{run}").into());
            }
        }
    }
}

/// Two days of a pipeline, offboarded on the third.
fn offboarded_pipeline(s: &mut Scenario) {
    s.pipeline("ci-payments", 2, 1);
    s.fact(t0() + 3 * DAY, Lifecycle::IdentityOffboarded { identity: "ci-payments".into() });
}

/// The default settings, alerting in incidents.
fn incidents() -> EngineConfig {
    EngineConfig { alerts: AlertMode::Incidents, ..EngineConfig::default() }
}

/// The default settings, alerting in findings: the cases say what each detector
/// alone makes of a call.
fn findings() -> EngineConfig {
    EngineConfig { alerts: AlertMode::Findings, ..EngineConfig::default() }
}

/// Monday of the seventh week, 10:05, inside the usual run hours.
fn probe_time() -> i64 {
    t0() + LEARNED_DAYS * DAY + 10 * HOUR + 5 * MINUTE
}

/// A name without digits, so resource classes keep it: aa, ab, ... .
fn word(i: i64) -> String {
    let letter = |n: i64| char::from(b'a' + (n % 26) as u8);
    format!("{}{}", letter(i / 26), letter(i))
}

/// Six weeks of a job reading eight objects at each working hour (09:00 to 17:00 on
/// weekdays): eight calls in each active ten-minute window.
fn steady_reader(s: &mut Scenario) {
    for day in (0..LEARNED_DAYS).filter(|day| weekday(t0() + day * DAY) < 5) {
        for hour in 9..17 {
            for i in 0..8 {
                s.push(AccessEvent {
                    event_id: format!("h-{day}-{hour}-{i}").into(),
                    ..ev("etl-reader", t0() + day * DAY + hour * HOUR + i * 30_000, "s3", "GetObject")
                });
            }
        }
    }
}

/// Forty reads ten seconds apart from the start of the ten-minute window `after` the
/// probe's hour: five times the steady reader's usual window, under the eightfold one
/// window alone needs.
fn paced_reads(s: &mut Scenario, prefix: &str, after: i64) {
    let start = probe_time() - 5 * MINUTE + after;
    for i in 0..40 {
        s.push(AccessEvent {
            event_id: format!("{prefix}-{i}").into(),
            ..ev("etl-reader", start + i * 10_000, "s3", "GetObject")
        });
    }
}

fn probe(s: &mut Scenario, e: AccessEvent) -> String {
    let id = "probe".to_string();
    s.push(AccessEvent { event_id: id.as_str().into(), ..e });
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
            session_id: Some(format!("task-{}", i / 4).into()),
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

/// CloudTrail form: role ARNs and no `identity_type`. Three learned roles:
/// two deploy pipelines take up `ssm GetParameter` on the probe's day, then
/// `prober` (a third pipeline, or another kind of role) makes it. Without a
/// type, peers come from the names' stems (`baseline::peer_group`).
fn untyped_rollout(s: &mut Scenario, prober: &str) -> String {
    let adopters = [
        "arn:aws:iam::111111111111:role/ci/deploy-payments-0001",
        "arn:aws:iam::111111111111:role/ci/deploy-payments-0002",
    ];
    for role in adopters.iter().chain([&prober]) {
        s.pipeline(role, LEARNED_DAYS, 6);
    }
    for (i, role) in adopters.iter().enumerate() {
        s.push(ev(role, probe_time() - (2 - i as i64) * HOUR, "ssm", "GetParameter"));
    }
    for r in &mut s.records {
        if let overreach::model::Record::Access(e) = r {
            e.identity_type = None;
        }
    }
    probe(s, ev(prober, probe_time(), "ssm", "GetParameter"))
}

const CASES: &[Case] = &[
    Case {
        name: "a pipeline's 7th call after thousands of the same 6",
        detector: detect::novel_call::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(s, pipeline_call("iam", "CreateAccessKey"))
        },
    },
    Case {
        name: "a broad agent trying one more tool",
        detector: detect::novel_call::SPEC.detector(),
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
        detector: detect::novel_call::SPEC.detector(),
        fires: false,
        build: |s| {
            s.pipeline("ci-payments", 3, 3);
            probe(s, AccessEvent { time: t0() + 3 * DAY + 14 * HOUR, ..pipeline_call("iam", "CreateAccessKey") })
        },
    },
    Case {
        name: "a new call that two peers adopted the same day (a rollout)",
        detector: detect::novel_call::SPEC.detector(),
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
        name: "CloudTrail form, no type: a new call two roles of the same name stem adopted the same day",
        detector: detect::novel_call::SPEC.detector(),
        fires: false,
        build: |s| untyped_rollout(s, "arn:aws:iam::111111111111:role/ci/deploy-payments-0003"),
    },
    Case {
        name: "CloudTrail form, no type: the same call on a role whose name stem no adopter shares",
        detector: detect::novel_call::SPEC.detector(),
        fires: true,
        build: |s| untyped_rollout(s, "arn:aws:iam::111111111111:role/agents/sre-agent-0012"),
    },
    Case {
        name: "a session jumping around the pipeline's fixed order",
        detector: detect::rare_transition::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - 2 * MINUTE, ..pipeline_call("sts", "AssumeRole") });
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("ecr", "PutImage") });
            probe(s, pipeline_call("ecr", "GetAuthorizationToken"))
        },
    },
    Case {
        name: "the same jump while two newcomers of its kind take up the pipeline's operations (not a rollout to it)",
        detector: detect::rare_transition::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            // Joined the day before, with every operation of the kind from their first run.
            for newcomer in ["ci-orders", "ci-refunds"] {
                for (i, (target, action)) in PIPELINE.iter().enumerate() {
                    let time = probe_time() - DAY + i as i64 * MINUTE;
                    let session_id = Some(format!("{newcomer}-run"));
                    s.push(AccessEvent { session_id: session_id.map(Into::into), ..pipeline_call(target, action) });
                    if let Some(Record::Access(e)) = s.records.last_mut() {
                        (e.identity, e.time, e.event_id) = (newcomer.into(), time, format!("{newcomer}-{i}").into());
                    }
                }
            }
            s.push(AccessEvent { time: probe_time() - 2 * MINUTE, ..pipeline_call("sts", "AssumeRole") });
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("ecr", "PutImage") });
            probe(s, pipeline_call("ecr", "GetAuthorizationToken"))
        },
    },
    Case {
        name: "a single new step (weak evidence on its own)",
        detector: detect::rare_transition::SPEC.detector(),
        fires: false,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("sts", "AssumeRole") });
            probe(s, pipeline_call("ecs", "UpdateService"))
        },
    },
    Case {
        name: "the usual order",
        detector: detect::rare_transition::SPEC.detector(),
        fires: false,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("sts", "AssumeRole") });
            probe(s, pipeline_call("ecr", "GetAuthorizationToken"))
        },
    },
    Case {
        name: "forty storage prefixes in ten minutes",
        detector: detect::fanout_burst::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            for i in 0..40 {
                s.push(AccessEvent {
                    event_id: format!("probe-{i}").into(),
                    resource: Some(format!("arn:aws:s3:::lake/{}/x", word(i)).into()),
                    ..ev("ci-payments", probe_time() + i * 5_000, "s3", "ListObjects")
                });
            }
            "probe".into()
        },
    },
    Case {
        name: "three hundred calls in ten minutes from a pipeline of six",
        detector: detect::volume_spike::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            for i in 0..300 {
                s.push(AccessEvent {
                    event_id: format!("probe-{i}").into(),
                    ..ev("ci-payments", probe_time() + i * 1_000, "s3", "GetObject")
                });
            }
            "probe".into()
        },
    },
    Case {
        name: "forty calls in each of two windows in a row, under the ratio in each",
        detector: detect::volume_spike::SPEC.detector(),
        fires: true,
        build: |s| {
            steady_reader(s);
            paced_reads(s, "lead", 10 * MINUTE);
            paced_reads(s, "probe", 20 * MINUTE);
            "probe".into()
        },
    },
    Case {
        name: "forty calls in one window, under the ratio",
        detector: detect::volume_spike::SPEC.detector(),
        fires: false,
        build: |s| {
            steady_reader(s);
            paced_reads(s, "probe", 20 * MINUTE);
            "probe".into()
        },
    },
    Case {
        name: "a usual run's volume",
        detector: detect::volume_spike::SPEC.detector(),
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
        detector: detect::new_source::SPEC.detector(),
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
        detector: detect::new_source::SPEC.detector(),
        fires: false,
        build: |s| {
            for i in 0..400i64 {
                s.push(AccessEvent {
                    source_ip: Some(format!("10.{}.{}.7", i % 97, i % 13).into()),
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
        detector: detect::off_hours::SPEC.detector(),
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
        detector: detect::off_hours::SPEC.detector(),
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
        detector: detect::new_delegator::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(s, AccessEvent { on_behalf_of: Some("team-hr".into()), ..pipeline_call("s3", "PutObject") })
        },
    },
    Case {
        name: "acting for a new business unit that a grant declares",
        detector: detect::new_delegator::SPEC.detector(),
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
        detector: detect::shared_identity::SPEC.detector(),
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
        detector: detect::shared_identity::SPEC.detector(),
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
        detector: detect::shared_identity::SPEC.detector(),
        fires: false,
        build: |s| {
            learned_pipeline(s);
            s.push(AccessEvent { time: probe_time() - MINUTE, ..pipeline_call("s3", "PutObject") });
            probe(s, pipeline_call("s3", "PutObject"))
        },
    },
    Case {
        name: "a daily pipeline back after 40 days of silence",
        detector: detect::dormant_reactivation::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(s, AccessEvent { time: probe_time() + 40 * DAY, ..pipeline_call("sts", "AssumeRole") })
        },
    },
    Case {
        name: "a weekend gap",
        detector: detect::dormant_reactivation::SPEC.detector(),
        fires: false,
        build: |s| {
            learned_pipeline(s);
            probe(s, pipeline_call("sts", "AssumeRole"))
        },
    },
    Case {
        name: "a call after the identity was offboarded",
        detector: detect::post_purpose::SPEC.detector(),
        fires: true,
        build: |s| {
            offboarded_pipeline(s);
            probe(s, ev("ci-payments", t0() + 4 * DAY, "s3", "GetObject"))
        },
    },
    Case {
        name: "a call with a revoked credential",
        detector: detect::post_purpose::SPEC.detector(),
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
        name: "a call with a credential revoked and set active again",
        detector: detect::post_purpose::SPEC.detector(),
        fires: false,
        build: |s| {
            s.fact(t0(), Lifecycle::CredentialRevoked { credential_id: "AKIAOLD".into() });
            s.fact(t0() + MINUTE, Lifecycle::CredentialActivated { credential_id: "AKIAOLD".into() });
            probe(
                s,
                AccessEvent { credential_id: Some("AKIAOLD".into()), ..ev("saas-sync", t0() + HOUR, "crm", "Sync") },
            )
        },
    },
    Case {
        name: "a call after the only grant ended",
        detector: detect::post_purpose::SPEC.detector(),
        fires: true,
        build: |s| {
            s.fact(t0(), grant("g1", "saas-sync", Scope::default(), vec![]));
            s.push(ev("saas-sync", t0() + HOUR, "crm", "Sync"));
            s.fact(t0() + DAY, Lifecycle::GrantEnded { grant_id: "g1".into(), reason: GrantEndReason::PurposeEnded });
            probe(s, ev("saas-sync", t0() + 2 * DAY, "crm", "Sync"))
        },
    },
    Case {
        name: "a call after the identity was offboarded and created again",
        detector: detect::post_purpose::SPEC.detector(),
        fires: false,
        build: |s| {
            offboarded_pipeline(s);
            s.fact(t0() + 3 * DAY + HOUR, Lifecycle::IdentityActivated { identity: "ci-payments".into() });
            probe(s, ev("ci-payments", t0() + 4 * DAY, "s3", "GetObject"))
        },
    },
    Case {
        name: "a call before the offboarding",
        detector: detect::post_purpose::SPEC.detector(),
        fires: false,
        build: |s| {
            s.fact(t0(), grant("g1", "saas-sync", Scope::default(), vec![]));
            s.fact(t0() + 3 * DAY, Lifecycle::IdentityOffboarded { identity: "saas-sync".into() });
            probe(s, ev("saas-sync", t0() + 2 * DAY, "crm", "Sync"))
        },
    },
    Case {
        name: "a call with a credential past its stated expiry",
        detector: detect::expired_credential::SPEC.detector(),
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
        detector: detect::expired_credential::SPEC.detector(),
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
        detector: detect::expired_credential::SPEC.detector(),
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
        detector: detect::outside_window::SPEC.detector(),
        fires: true,
        build: |s| {
            s.fact(t0(), grant("g-deploy", "ci-payments", Scope::default(), weekdays_14_to_16()));
            probe(s, ev("ci-payments", t0() + 20 * HOUR, "ecs", "UpdateService"))
        },
    },
    Case {
        name: "a deploy inside the window",
        detector: detect::outside_window::SPEC.detector(),
        fires: false,
        build: |s| {
            s.fact(t0(), grant("g-deploy", "ci-payments", Scope::default(), weekdays_14_to_16()));
            probe(s, ev("ci-payments", t0() + 15 * HOUR, "ecs", "UpdateService"))
        },
    },
    Case {
        name: "a denied new call by a pipeline never denied (with the new call, an incident)",
        detector: detect::unusual_outcome::SPEC.detector(),
        fires: true,
        build: |s| {
            learned_pipeline(s);
            probe(s, AccessEvent { outcome: Outcome::Denied, ..pipeline_call("iam", "CreateAccessKey") })
        },
    },
    Case {
        name: "the same new call, allowed",
        detector: detect::unusual_outcome::SPEC.detector(),
        fires: false,
        build: |s| {
            learned_pipeline(s);
            probe(s, pipeline_call("iam", "CreateAccessKey"))
        },
    },
    Case {
        name: "a deploy to an account the pipeline never deployed to",
        detector: detect::new_environment::SPEC.detector(),
        fires: true,
        build: |s| {
            one_account_pipeline(s);
            probe(s, AccessEvent { environment: Some("999999999999".into()), ..pipeline_call("ecs", "UpdateService") })
        },
    },
    Case {
        name: "a deploy to its usual account",
        detector: detect::new_environment::SPEC.detector(),
        fires: false,
        build: |s| {
            one_account_pipeline(s);
            probe(s, AccessEvent { environment: Some("111111111111".into()), ..pipeline_call("ecs", "UpdateService") })
        },
    },
    Case {
        name: "a read outside the granted prefix",
        detector: detect::scope_violation::SPEC.detector(),
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
        detector: detect::scope_violation::SPEC.detector(),
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
        // A signal-only detector speaks only inside an incident.
        let signal_only = case.detector == detect::unusual_outcome::SPEC.detector();
        let alerts = s.run(if signal_only { incidents() } else { findings() });
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
    for &d in detect::REGISTRY {
        let fires = CASES.iter().any(|c| c.detector == d && c.fires);
        let silent = CASES.iter().any(|c| c.detector == d && !c.fires);
        assert!(fires, "{d} has no firing case");
        assert!(silent || d == detect::fanout_burst::SPEC.detector(), "{d} has no silent case");
    }
}

/// A burst held over two windows says so: the count of the window before, in the summary
/// and beside the window's own count in the evidence.
#[test]
fn a_held_burst_names_the_window_before() {
    let mut s = Scenario::new();
    steady_reader(&mut s);
    paced_reads(&mut s, "lead", 10 * MINUTE);
    paced_reads(&mut s, "probe", 20 * MINUTE);
    let alerts = s.run(findings());
    let spike = alerts
        .iter()
        .find(|a| a.detector == detect::volume_spike::SPEC.detector())
        .expect("a volume spike on the second window");
    assert!(spike.event_ids[0].starts_with("probe-"), "{:?}", spike.event_ids);
    assert!(spike.summary.contains("after 40 in the 10 minutes before"), "{}", spike.summary);
    assert_eq!(spike.evidence.observed["in_window_before"], 40);
    assert!(spike.evidence.observed["calls_in_window"].as_u64().unwrap() < 64, "under the eightfold ratio alone");
}

#[test]
fn a_disabled_detector_stays_silent() {
    let mut s = Scenario::new();
    learned_pipeline(&mut s);
    let probe = probe(&mut s, pipeline_call("iam", "CreateAccessKey"));
    let config = EngineConfig { disabled: vec![detect::novel_call::SPEC.detector()], ..findings() };
    assert!(!fired(&s.run(config), detect::novel_call::SPEC.detector(), &probe));
}

#[test]
fn repeats_within_the_suppression_window_are_counted_not_emitted() {
    let mut s = Scenario::new();
    s.fact(t0(), Lifecycle::IdentityOffboarded { identity: "gone".into() });
    for i in 0..5 {
        s.push(ev("gone", t0() + HOUR + i * 10 * MINUTE, "s3", "GetObject"));
    }
    s.push(ev("gone", t0() + 3 * HOUR, "s3", "GetObject"));
    let alerts = s.run(findings());
    let post: Vec<_> = alerts.iter().filter(|a| a.detector == detect::post_purpose::SPEC.detector()).collect();
    assert_eq!(post.len(), 2, "one at the start, one after the window");
    assert_eq!(post[0].suppressed_repeats, 0);
    assert_eq!(post[1].suppressed_repeats, 4);
}

/// The alert the case's detector raised on the case's probe under `config`.
fn probe_alert(case_name: &str, config: EngineConfig) -> Option<Alert> {
    let case = CASES.iter().find(|c| c.name == case_name).expect("no such case");
    let mut s = Scenario::new();
    let probe = (case.build)(&mut s);
    s.run(config).into_iter().find(|a| fired(std::slice::from_ref(a), case.detector, &probe))
}

/// Every window a summary names is the one the detector applied, in the
/// evidence too: here the credential reuse window, not the concurrency one.
#[test]
fn shared_credential_summary_names_the_reuse_window_applied() {
    // The other identity used the credential an hour before the probe.
    let case = "one credential used by two identities";
    for (window_s, words) in [(86_400, "within 24 hours"), (2 * 3_600, "within 2 hours")] {
        let config = EngineConfig { credential_reuse_window_s: window_s, ..findings() };
        let alert = probe_alert(case, config).unwrap_or_else(|| panic!("no alert with a {window_s} s reuse window"));
        assert!(alert.summary.starts_with("Credential AKIAEXAMPLE1"), "{}", alert.summary);
        assert!(alert.summary.contains(words), "{window_s} s: {}", alert.summary);
        assert_eq!(alert.evidence.window_s, Some(window_s));
    }
    let shorter = EngineConfig { credential_reuse_window_s: 1_800, ..findings() };
    assert!(probe_alert(case, shorter).is_none(), "uses an hour apart are outside a 30 minute window");
}

/// Baselines count concurrency in whole minutes, so that is what the summary says.
#[test]
fn concurrent_clients_summary_names_the_window_applied() {
    let case = "a second, unknown client while the usual one is active";
    for (setting_s, applied_s, words) in [(600, 600, "within 10 minutes"), (150, 120, "within 2 minutes")] {
        let config = EngineConfig { concurrency_window_s: setting_s, ..findings() };
        let alert = probe_alert(case, config).unwrap_or_else(|| panic!("no alert with a {setting_s} s window"));
        assert!(alert.summary.contains(words), "{setting_s} s: {}", alert.summary);
        assert_eq!(alert.evidence.window_s, Some(applied_s));
    }
}

/// A rate window that is not whole minutes is printed as it is, not cut to minutes.
#[test]
fn burst_summary_names_the_window_applied() {
    let case = "three hundred calls in ten minutes from a pipeline of six";
    for (window_s, words) in [(900, "within 15 minutes"), (630, "within 630 seconds")] {
        let config = EngineConfig { window_s, ..findings() };
        let alert = probe_alert(case, config).unwrap_or_else(|| panic!("no alert with a {window_s} s window"));
        assert!(alert.summary.contains(words), "{window_s} s: {}", alert.summary);
        assert_eq!(alert.evidence.window_s, Some(window_s));
    }
}

#[test]
fn an_identity_acting_for_days_after_offboarding_is_one_incident_that_stays_visible() {
    let mut s = Scenario::new();
    s.fact(t0(), Lifecycle::IdentityOffboarded { identity: "sync".into() });
    // A sync every 10 minutes for four days.
    for i in 0..(4 * 24 * 6) {
        s.push(ev("sync", t0() + HOUR + i * 10 * MINUTE, "s3", "PutObject"));
    }
    let alerts = s.run(incidents());
    let ids: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one incident: {ids:?}");
    // Sent when opened and again every 6 hours of ongoing evidence: never silent.
    assert_eq!(alerts.len(), 1 + 4 * 24 / 6 - 1, "{}", alerts.len());
    let updates: Vec<u32> = alerts.iter().map(|a| a.incident.as_ref().unwrap().update).collect();
    assert_eq!(updates, (0..alerts.len() as u32).collect::<Vec<_>>());
    let last = alerts.last().unwrap().incident.as_ref().unwrap();
    // The last send is at most 6 hours (36 syncs) before the input ends.
    assert!(4 * 24 * 6 - last.events < 36, "{}", last.events);
    assert_eq!(alerts.last().unwrap().event_ids.len(), 256, "event ids are bounded, events counted");
}

/// The learned pipeline calling `iam CreateAccessKey` at `at`, as event `id`.
fn attack(s: &mut Scenario, at: i64, id: &str) {
    s.push(AccessEvent { event_id: id.into(), time: at, ..pipeline_call("iam", "CreateAccessKey") });
}

/// The learned pipeline, and three attack calls an hour apart from the probe
/// time (`atk-0` to `atk-2`): the first opens an incident, the others are
/// still new (not learned) and join it as evidence.
fn attacked_pipeline(s: &mut Scenario) {
    learned_pipeline(s);
    for (i, h) in [0, 1, 2].into_iter().enumerate() {
        attack(s, probe_time() + h * HOUR, &format!("atk-{i}"));
    }
}

#[test]
fn an_open_incident_holds_the_attack_back_from_the_baseline_and_a_closed_one_lets_it_in() {
    let mut s = Scenario::new();
    attacked_pipeline(&mut s);
    // Long after the incident closed, the same call: learned at the close, so quiet.
    attack(&mut s, probe_time() + 3 * DAY, "later");
    let alerts = s.run(incidents());
    let first = alerts.iter().find(|a| a.event_ids.contains(&"atk-0".to_string())).expect("an incident");
    let sends: Vec<_> = alerts.iter().filter(|a| a.alert_id == first.alert_id).collect();
    let last = sends.last().unwrap().incident.as_ref().unwrap();
    assert_eq!(last.status, overreach::alert::IncidentStatus::Closed);
    assert_eq!(last.events, 3, "every attack call carried evidence: none was learned while open");
    assert!(!fired(&alerts, detect::novel_call::SPEC.detector(), "later"), "{alerts:#?}");
}

// ---- Weak signals, seen in the incident a declared finding raises ----

/// The learned detectors that found `e` unusual: the probe also uses a credential past its
/// expiry, a declared finding that raises an incident whatever else it shows, and every
/// signal on the probe joins that incident.
fn signals_on(s: &mut Scenario, e: AccessEvent) -> Vec<IncidentSignal> {
    let expired =
        AccessEvent { credential_id: Some("cred-old".into()), credential_expires_at: Some(e.time - DAY), ..e };
    let probe = probe(s, expired);
    let alerts = s.run(incidents());
    let incident = alerts
        .iter()
        .filter_map(|a| a.incident.as_ref())
        .find(|i| i.signals.iter().any(|signal| signal.event_id == probe))
        .expect("the expired credential raises an incident");
    incident.signals.iter().filter(|signal| signal.event_id == probe).cloned().collect()
}

fn detectors(signals: &[IncidentSignal]) -> Vec<Detector> {
    signals.iter().map(|signal| signal.detector).collect()
}

/// The first call of every run of the learned pipeline.
fn habitual_call() -> AccessEvent {
    pipeline_call(PIPELINE[0].0, PIPELINE[0].1)
}

/// The learned pipeline, its runners' /24s churning inside 10.20.0.0/16: each run
/// (six calls) from a /24 it has not used for many runs.
fn churning_runners(s: &mut Scenario) {
    learned_pipeline(s);
    for (i, record) in s.records.iter_mut().enumerate() {
        if let Record::Access(e) = record {
            e.source_ip = Some(format!("10.20.{}.{}", (i / 6) % 250, 10 + i % 6).into());
        }
    }
}

/// The `new_source` signal on `e` after the history `history` builds, if any.
fn new_source_on(history: fn(&mut Scenario), e: AccessEvent) -> Option<IncidentSignal> {
    let mut s = Scenario::new();
    history(&mut s);
    signals_on(&mut s, e).into_iter().find(|signal| signal.detector == detect::new_source::SPEC.detector())
}

#[test]
fn runners_churning_inside_one_16_a_new_24_there_is_no_signal_another_16_is() {
    let from = |ip: &str| AccessEvent { source_ip: Some(ip.into()), ..habitual_call() };
    assert!(new_source_on(churning_runners, from("10.20.77.5")).is_none(), "a new /24 in the usual /16");
    let signal = new_source_on(churning_runners, from("10.99.1.5")).expect("another /16 is a signal");
    assert_eq!(signal.observed["new_wide_network"], true, "{:?}", signal.observed);
    assert_eq!(signal.observed["new_address_scope"], false, "still a private address");
}

#[test]
fn a_private_only_pipeline_from_a_public_address_is_a_signal() {
    let public = AccessEvent { source_ip: Some("198.51.100.7".into()), ..habitual_call() };
    let signal = new_source_on(churning_runners, public).expect("a public address is a signal");
    assert_eq!(signal.observed["new_address_scope"], true, "{:?}", signal.observed);
    assert_eq!(signal.baseline["address_scopes"], serde_json::json!(["private"]));
}

#[test]
fn a_weekday_pipeline_at_its_usual_hour_on_a_sunday_is_a_signal_on_a_monday_is_not() {
    let off_hours = detect::off_hours::SPEC.detector();
    // probe_time() is a Monday at 10:05, inside the usual run hours.
    let at = |time: i64| AccessEvent { time, ..habitual_call() };
    let mut s = Scenario::new();
    learned_pipeline(&mut s);
    let monday = detectors(&signals_on(&mut s, at(probe_time())));
    assert!(!monday.contains(&off_hours), "Monday: {monday:?}");
    let mut s = Scenario::new();
    learned_pipeline(&mut s);
    let sunday = detectors(&signals_on(&mut s, at(probe_time() - DAY)));
    assert!(sunday.contains(&off_hours), "Sunday: {sunday:?}");
}

#[test]
fn a_new_client_version_is_a_signal_a_new_patch_of_the_usual_one_is_not() {
    // The learned pipeline always calls with aws-cli/2.15.
    let with = |agent: &str| AccessEvent { user_agent: Some(agent.into()), ..habitual_call() };
    let patch = new_source_on(learned_pipeline, with("aws-cli/2.15.31 Python/3.11.8 Linux/6.1"));
    assert!(patch.is_none(), "a new patch of the usual version: {patch:?}");
    let signal = new_source_on(learned_pipeline, with("aws-cli/2.16.1 Python/3.11.8 Linux/6.1"))
        .expect("a new minor version is a signal");
    assert_eq!(signal.observed["new_user_agent_version"], true, "{:?}", signal.observed);
    assert_eq!(signal.observed["new_user_agent_family"], false);
    assert_eq!(signal.observed["new_network"], false);
    assert_eq!(signal.strength, overreach::detect::Strength::Signal, "a version bump alone never alerts");
}

#[test]
fn a_quiet_incident_closes_at_the_identity_next_call_even_between_sweeps() {
    let mut s = Scenario::new();
    attacked_pipeline(&mut s);
    // Another identity's call sweeps ten minutes before the incident has
    // been quiet six hours; the attacker comes back five minutes after.
    s.push(ev("other", probe_time() + 8 * HOUR - 10 * MINUTE, "s3", "GetObject"));
    attack(&mut s, probe_time() + 8 * HOUR + 5 * MINUTE, "later");
    let alerts = s.run(incidents());
    let first = alerts.iter().find(|a| a.event_ids.contains(&"atk-0".to_string())).expect("an incident");
    let closed = alerts.iter().rfind(|a| a.alert_id == first.alert_id).unwrap();
    assert_eq!(closed.incident.as_ref().unwrap().status, overreach::alert::IncidentStatus::Closed);
    // Closed, and its held calls learned, before the call was judged: not new.
    assert!(!fired(&alerts, detect::novel_call::SPEC.detector(), "later"), "{alerts:#?}");
}

// ---- How a session ends is a step of its path ----

/// The learned pipeline's probe run: `AssumeRole`, then `PutImage` (one step
/// it never takes, a path signal too weak to alert), then `rest`; then the
/// identity is quiet and another identity's call two hours later brings the
/// hourly sweep past the run's end. The path incidents raised, if any.
fn path_incidents_after_run(rest: &[(&str, &str)]) -> Vec<Alert> {
    let mut s = Scenario::new();
    learned_pipeline(&mut s);
    let steps = [("sts", "AssumeRole"), ("ecr", "PutImage")].into_iter().chain(rest.iter().copied());
    for (i, (target, action)) in steps.enumerate() {
        let time = probe_time() + i as i64 * MINUTE;
        // The release it uploads, as every run does: a call it knows.
        let resource = (target == "s3").then(|| "arn:aws:s3:::releases/ci-payments/build-42-0.zip".to_string());
        s.push(AccessEvent {
            event_id: format!("step-{i}").into(),
            time,
            resource: resource.map(Into::into),
            ..pipeline_call(target, action)
        });
    }
    s.push(ev("other", probe_time() + 3 * HOUR, "s3", "GetObject"));
    let path = detect::rare_transition::SPEC.detector();
    s.run(incidents()).into_iter().filter(|a| a.incident.is_some() && a.detector == path).collect()
}

#[test]
fn a_run_that_ends_where_its_runs_never_end_raises_the_weak_path_signal_to_an_incident() {
    // PutObject, and the run stops: its runs always end after UpdateService.
    let alerts = path_incidents_after_run(&[("s3", "PutObject")]);
    let [alert] = alerts.as_slice() else { panic!("one incident: {alerts:#?}") };
    assert_eq!(alert.evidence.observed["from"], "s3 PutObject", "{:?}", alert.evidence);
    assert_eq!(alert.evidence.observed["to"], "(session end)");
    assert_eq!(alert.evidence.observed["session_id"], "probe-run");
    assert!(alert.summary.contains("ended session probe-run after s3 PutObject"), "{}", alert.summary);
    // The incident carries the run's new step, where the path left its usual order.
    assert!(alert.event_ids.contains(&"step-1".to_string()), "{:?}", alert.event_ids);
    assert!(alert.evidence.probability.unwrap() <= EngineConfig::default().path_max_probability);
}

#[test]
fn a_run_with_one_new_step_that_ends_as_its_runs_do_stays_quiet() {
    let usual_end = [("s3", "PutObject"), ("ecs", "RegisterTaskDefinition"), ("ecs", "UpdateService")];
    let alerts = path_incidents_after_run(&usual_end);
    assert!(alerts.is_empty(), "{alerts:#?}");
}
