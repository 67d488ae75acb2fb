//! Values no log or operator can mean (issue 9, item 17): event times outside
//! 1970..9999, identities that are only whitespace, engine settings that would
//! quietly switch detectors off, and the reasons that quote them.

use overreach::baseline::IdentityBaseline;
use overreach::config::{RunArgs, ServiceConfig};
use overreach::decode::{decode_line, DecodeError, Format, Limits};
use overreach::engine::EngineConfig;
use overreach::model::Record;

/// A minimal valid record of each format, with `TIME` and `WHO` to fill in.
const RECORDS: [(Format, &str, bool); 6] = [
    (Format::Native, r#"{"time":TIME,"identity":WHO,"target":"t","action":"a"}"#, false),
    (Format::Grants, r#"{"kind":"identity_offboarded","time":TIME,"identity":WHO}"#, false),
    (
        Format::Ocsf,
        r#"{"class_uid":6003,"time":TIME,"actor":{"user":{"uid":WHO}},"api":{"service":{"name":"s3"},"operation":"Get"}}"#,
        false,
    ),
    (
        Format::Cloudtrail,
        r#"{"eventTime":TIME,"eventSource":"s3","eventName":"Get","userIdentity":{"type":"IAMUser","arn":WHO}}"#,
        true,
    ),
    (
        Format::GcpAudit,
        r#"{"timestamp":TIME,"protoPayload":{"authenticationInfo":{"principalEmail":WHO},"serviceName":"storage","methodName":"get"}}"#,
        true,
    ),
    (
        Format::K8sAudit,
        r#"{"auditID":"a","stageTimestamp":TIME,"user":{"username":WHO},"verb":"get","objectRef":{"resource":"pods"}}"#,
        true,
    ),
];

fn decode(format: Format, template: &str, time: &str, who: &str) -> Result<Record, String> {
    let line = template.replace("TIME", time).replace("WHO", who);
    let mut out = decode_line(line.as_bytes(), format, &Limits::default());
    assert_eq!(out.len(), 1, "{line}: {out:?}");
    out.remove(0).map_err(|e| e.to_string())
}

#[test]
fn every_decoder_bounds_event_times_to_1970_through_9999() {
    for (format, template, vendor) in RECORDS {
        let (inside, outside): (&[&str], &[&str]) = if vendor {
            (
                &[r#""1970-01-01T00:00:00Z""#, r#""9999-12-31 23:59:59.999""#],
                &[r#""1969-12-31T23:59:59Z""#, r#""0001-01-01T00:00:00Z""#],
            )
        } else {
            (
                &["0", "253402300799999", r#""2026-03-02T10:00:00Z""#],
                &["1e300", "-1", "253402300800000", "9223372036854775807"],
            )
        };
        for time in inside {
            assert!(decode(format, template, time, r#""who""#).is_ok(), "{format} {time}");
        }
        for time in outside {
            let err = decode(format, template, time, r#""who""#).expect_err(time);
            assert!(err.contains("expected a time from 1970-01-01 to 9999-12-31, found"), "{format} {time}: {err}");
        }
    }
}

#[test]
fn lifecycle_times_are_bounded_too() {
    let native = r#"{"event_id":"e","time":1,"identity":"i","target":"t","action":"a","credential_expires_at":1e300}"#;
    let sts = r#"{"eventTime":"2026-03-02T10:00:00Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole",
        "userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/u"},"requestParameters":{"roleArn":"arn:aws:iam::1:role/r"},
        "responseElements":{"credentials":{"accessKeyId":"ASIA","expiration":"Jan 01, 1969, 1:00:00 AM"}}}"#
        .replace('\n', "");
    let grant = r#"{"kind":"grant","time":1,"grant_id":"g","identity":"i","expires_at":1e300}"#;
    for (format, line, field) in [
        (Format::Native, native.to_string(), "credential_expires_at"),
        (Format::Cloudtrail, sts, "responseElements.credentials.expiration"),
        (Format::Grants, grant.to_string(), "expires_at"),
    ] {
        let reasons: Vec<String> = decode_line(line.as_bytes(), format, &Limits::default())
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        assert!(
            reasons.iter().any(|r| r.starts_with(&format!("field `{field}`: expected a time from 1970-01-01"))),
            "{format}: {reasons:?}"
        );
    }
}

#[test]
fn an_identity_of_only_whitespace_is_rejected_in_every_format() {
    // Grant records name identities too, but key no baseline: only the access formats here.
    for (format, template, vendor) in RECORDS.into_iter().filter(|(f, ..)| *f != Format::Grants) {
        let time = if vendor { r#""2026-03-02T10:00:00Z""# } else { "1" };
        for who in [r#"" ""#, r#""\t \u00a0""#] {
            let got = decode(format, template, time, who);
            assert_eq!(got, Err("field `identity`: is empty or only whitespace".into()), "{format} {who}");
        }
    }
    // The native fast path (with an event id) steps aside for the same check.
    let line = r#"{"event_id":"e","time":1,"identity":"  ","target":"t","action":"a"}"#;
    let out = decode_line(line.as_bytes(), Format::Native, &Limits::default());
    assert_eq!(
        out,
        vec![Err(DecodeError::InvalidValue { field: "identity".into(), reason: "is empty or only whitespace".into() })]
    );
}

#[test]
fn a_reason_is_one_printable_bounded_line_whatever_it_quotes() {
    let hostile = format!("\x1b[2J\r\nforged.jsonl:1: missing required field `identity`{}", "x".repeat(10_000));
    let errors = [
        DecodeError::InvalidValue { field: hostile.clone(), reason: hostile.clone() },
        DecodeError::InvalidJson(hostile.clone()),
        DecodeError::MissingField(hostile.clone()),
        DecodeError::WrongType { field: hostile.clone(), expected: "a string", found: "a number" },
    ];
    for e in errors {
        let shown = e.to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("\\u{1b}[2J\\u{d}\\u{a}forged"), "{shown}");
        assert!(shown.len() < 1200, "{} bytes", shown.len());
    }
}

/// One bad value per setting; each must be refused naming its key.
#[test]
fn every_engine_setting_is_validated_naming_its_key() {
    assert_eq!(EngineConfig::default().validate(), Ok(()));
    type Set = fn(&mut EngineConfig);
    let cases: &[(&str, Set)] = &[
        ("learning_days", |c| c.learning_days = f64::NAN),
        ("learning_days", |c| c.learning_days = -1.0),
        ("learning_days", |c| c.learning_days = f64::INFINITY),
        ("half_life_days", |c| c.half_life_days = 0.0),
        ("forget_after_days", |c| c.forget_after_days = f64::NAN),
        ("max_identities", |c| c.max_identities = 0),
        ("suppression_window_s", |c| c.suppression_window_s = -1),
        ("suppression_window_s", |c| c.suppression_window_s = i64::MAX),
        ("novelty_max_probability", |c| c.novelty_max_probability = 0.0),
        ("novelty_max_probability", |c| c.novelty_max_probability = 1.5),
        ("peer_weight", |c| c.peer_weight = f64::NAN),
        ("rollout_min_peers", |c| c.rollout_min_peers = 0),
        ("rollout_window_days", |c| c.rollout_window_days = -3.0),
        ("window_s", |c| c.window_s = 0),
        ("min_windows", |c| c.min_windows = 0),
        ("burst_max_probability", |c| c.burst_max_probability = f64::NAN),
        ("path_max_probability", |c| c.path_max_probability = -0.1),
        ("path_min_departures", |c| c.path_min_departures = f64::NAN),
        ("volume_min_ratio", |c| c.volume_min_ratio = -8.0),
        ("fanout_min_ratio", |c| c.fanout_min_ratio = f64::INFINITY),
        ("off_hours_max_ratio", |c| c.off_hours_max_ratio = f64::NAN),
        ("dormant_min_days", |c| c.dormant_min_days = 1e9),
        ("concurrency_window_s", |c| c.concurrency_window_s = -300),
        ("credential_reuse_window_s", |c| c.credential_reuse_window_s = -1),
        ("clock_skew_s", |c| c.clock_skew_s = -60),
    ];
    for (key, set) in cases {
        let mut config = EngineConfig::default();
        set(&mut config);
        let err = config.validate().expect_err(key);
        assert_eq!(err.key, *key);
        assert!(err.to_string().starts_with(&format!("engine setting `{key}` is ")), "{err}");
    }
    // Zero is a setting where it means "none": learn nothing, suppress nothing.
    let zeros = EngineConfig {
        learning_days: 0.0,
        learning_events: 0,
        suppression_window_s: 0,
        dormant_min_days: 0.0,
        clock_skew_s: 0,
        ..EngineConfig::default()
    };
    assert_eq!(zeros.validate(), Ok(()));
}

#[test]
fn the_service_config_validates_its_engine_settings() {
    let args = RunArgs { input_topics: vec!["in".into()], alert_topic: Some("alerts".into()), ..RunArgs::default() };
    let env = [("OVERREACH_ENGINE__LEARNING_DAYS".to_string(), "nan".to_string())];
    let err = ServiceConfig::resolve(&args, env).unwrap_err().to_string();
    assert!(err.contains("`learning_days` is NaN"), "{err}");
    let env = [("OVERREACH_ENGINE__MAX_IDENTITIES".to_string(), "0".to_string())];
    let err = ServiceConfig::resolve(&args, env).unwrap_err().to_string();
    assert!(err.contains("`max_identities` is 0"), "{err}");
}

#[test]
fn a_baseline_without_history_is_never_learned() {
    let fresh = IdentityBaseline::default();
    assert!(!fresh.is_learned(0.0, 0), "no event seen: nothing to judge against");
    let seen_once = IdentityBaseline { events: 1, ..IdentityBaseline::default() };
    assert!(seen_once.is_learned(0.0, 0));
    assert!(!seen_once.is_learned(0.0, 2));
}
