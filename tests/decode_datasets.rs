//! Every record of the shared real-log corpus (`../shared/datasets/log-formats/`, the
//! panther-analysis unit-test events) either normalizes or is rejected with a reason
//! that names a field or the JSON problem, with `auto` and with its explicit format.

use overreach::decode::{decode_value, DecodeError, Format};
use overreach::model::{AccessEvent, Record};
use serde_json::Value;
use std::path::PathBuf;

fn dataset(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "shared", "datasets", "log-formats", name].iter().collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("the shared dataset {} is needed by this test and could not be read: {e}", path.display())
    })
}

/// A reason names a field (`field \`...\``, `missing required field`) or the JSON problem.
fn is_precise(e: &DecodeError) -> bool {
    let text = e.to_string();
    match e {
        DecodeError::MissingField(f)
        | DecodeError::WrongType { field: f, .. }
        | DecodeError::InvalidValue { field: f, .. } => !f.is_empty() && text.contains(&format!("`{f}`")),
        DecodeError::UnknownFormat(_) | DecodeError::NotAnObject(_) | DecodeError::InvalidJson(_) => true,
        DecodeError::LineTooLong { .. }
        | DecodeError::ElementTooLong { .. }
        | DecodeError::NotUtf8(_)
        | DecodeError::FieldTooLong { .. }
        | DecodeError::Refused(_) => true,
    }
}

#[derive(Debug, Default)]
struct Counts {
    records: usize,
    normalized: usize,
    rejected: usize,
}

/// Decodes each record's `log` with `format` and with `auto`, after `prepare`. A record
/// counts as normalized when its access event decodes (a lifecycle fact beside it may
/// still be rejected on its own). Checks every reason, and that `auto` decodes exactly
/// as the explicit format does whenever it recognises the record.
fn measure(file: &str, format: Format, prepare: Prepare) -> Counts {
    let mut counts = Counts::default();
    for (i, line) in dataset(file).lines().enumerate() {
        let at = format!("{file}:{}", i + 1);
        let case: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: {e}"));
        let mut log = case.get("log").unwrap_or_else(|| panic!("{at}: no `log`")).clone();
        prepare(&mut log);
        counts.records += 1;
        let explicit = decode_value(&log, format);
        let auto = decode_value(&log, Format::Auto);
        for e in explicit.iter().chain(&auto).filter_map(|r| r.as_ref().err()) {
            assert!(is_precise(e), "{at}: imprecise reason: {e}");
        }
        if !matches!(auto.first(), Some(Err(DecodeError::UnknownFormat(_)))) {
            assert_eq!(auto, explicit, "{at}: auto and {format} disagree");
        }
        match explicit.first() {
            Some(Ok(_)) => counts.normalized += 1,
            Some(Err(_)) => counts.rejected += 1,
            None => panic!("{at}: yielded nothing"),
        }
    }
    eprintln!("{file} as {format}: {counts:?}");
    counts
}

/// Changes a record before it is decoded.
type Prepare = fn(&mut Value);

fn as_is(_: &mut Value) {}

/// Panther's Kubernetes test events carry no time; this supplies one so that the rest
/// of the mapping is exercised on their real shapes.
fn with_stage_timestamp(log: &mut Value) {
    if let Some(log) = log.as_object_mut() {
        log.entry("stageTimestamp").or_insert_with(|| "2026-03-02T10:00:00Z".into());
    }
}

/// Floors (normalized / records) a little below what decodes today.
///
/// CloudTrail 427/453: the rejects are trimmed test events: `userIdentity` with only a
/// `userName` (11 without `arn`, 8 assumed roles without `sessionContext`), no
/// `eventTime` (3) or `eventTime` "redacted" / "...", and two records Panther lower-cased
/// (`useridentity`, `eventtime`).
///
/// GCP 107/198: the rejects are entries without `timestamp` (44), without
/// `authenticationInfo` (22), without `serviceName` (13), lower-cased `protopayload` (6),
/// or with "..." in place of `requestMetadata` (4) or `receiveTimestamp`.
///
/// Kubernetes 0/165: none of the events has both a time (`stageTimestamp` or
/// `requestReceivedTimestamp`) and a `verb`, and a call without a time cannot be placed.
/// With a time supplied, 130/165 normalize; the rest lack `user` (31), `verb` (2) or
/// `objectRef`.
const FLOORS: [(&str, Format, Prepare, f64); 4] = [
    ("aws_cloudtrail.jsonl", Format::Cloudtrail, as_is, 0.93),
    ("gcp_audit.jsonl", Format::GcpAudit, as_is, 0.52),
    ("k8s_audit.jsonl", Format::K8sAudit, as_is, 0.0),
    ("k8s_audit.jsonl", Format::K8sAudit, with_stage_timestamp, 0.75),
];

#[test]
fn every_record_normalizes_or_is_rejected_precisely() {
    for (file, format, prepare, floor) in FLOORS {
        let counts = measure(file, format, prepare);
        assert_eq!(counts.normalized + counts.rejected, counts.records);
        let share = counts.normalized as f64 / counts.records as f64;
        assert!(share >= floor, "{file}: {share:.3} of records normalized, expected at least {floor}");
    }
}

#[test]
fn kubernetes_events_without_a_time_are_rejected_for_it() {
    let reasons: Vec<String> = dataset("k8s_audit.jsonl")
        .lines()
        .filter_map(|line| {
            let case: Value = serde_json::from_str(line).ok()?;
            let out = decode_value(case.get("log")?, Format::K8sAudit);
            out.into_iter().find_map(|r| r.err()).map(|e| e.to_string())
        })
        .collect();
    let on_time = reasons.iter().filter(|r| r.as_str() == "missing required field `stageTimestamp`").count();
    assert_eq!(on_time, 164, "{reasons:?}");
}

/// Every decoder meets every corpus record, Azure sign-ins and every sub-object
/// included: foreign shapes must be rejected with a precise reason, never panic.
#[test]
fn no_decoder_panics_on_foreign_records() {
    let mut decoded = 0;
    for file in ["aws_cloudtrail.jsonl", "gcp_audit.jsonl", "k8s_audit.jsonl", "azure_signin.jsonl"] {
        for line in dataset(file).lines() {
            let case: Value = serde_json::from_str(line).expect("corpus line is JSON");
            let log = case.get("log").cloned().unwrap_or_default();
            let parts =
                std::iter::once(log.clone()).chain(log.as_object().into_iter().flat_map(|o| o.values().cloned()));
            for part in parts {
                for format in Format::ALL {
                    for e in decode_value(&part, format).iter().filter_map(|r| r.as_ref().err()) {
                        assert!(is_precise(e), "{file} as {format}: imprecise reason: {e}");
                    }
                    decoded += 1;
                }
            }
        }
    }
    assert!(decoded > 10_000, "only {decoded} decodes ran");
}

/// The access events of a corpus file that decode, each with the log it came from.
fn decoded_calls(file: &str, format: Format) -> Vec<(Value, AccessEvent)> {
    dataset(file)
        .lines()
        .filter_map(|line| {
            let log = serde_json::from_str::<Value>(line).ok()?.get("log")?.clone();
            match decode_value(&log, format).into_iter().next() {
                Some(Ok(Record::Access(event))) => Some((log, *event)),
                _ => None,
            }
        })
        .collect()
}

/// Real records keep where they were served: CloudTrail's `awsRegion` as logged, and a
/// GCP zone as its region (`us-central1-f` is `us-central1`).
#[test]
fn real_records_keep_their_region() {
    let cloudtrail = decoded_calls("aws_cloudtrail.jsonl", Format::Cloudtrail);
    for (log, event) in &cloudtrail {
        assert_eq!(event.region.as_deref(), log["awsRegion"].as_str().filter(|r| !r.is_empty()), "{log}");
    }
    let regional = cloudtrail.iter().filter(|(_, e)| e.region.is_some()).count();
    assert!(regional >= 400, "only {regional} CloudTrail records with a region");

    let gcp = decoded_calls("gcp_audit.jsonl", Format::GcpAudit);
    let mut zoned = 0;
    for (log, event) in &gcp {
        if let Some(zone) = log.pointer("/resource/labels/zone").and_then(Value::as_str).filter(|z| !z.is_empty()) {
            assert_eq!(event.region.as_deref(), zone.rsplit_once('-').map(|(region, _)| region), "{log}");
            zoned += 1;
        }
        if let Some(region) = &event.region {
            assert_eq!(region, &region.to_lowercase(), "{log}");
        }
    }
    assert!(zoned >= 5, "only {zoned} GCP records with a zone");
}
