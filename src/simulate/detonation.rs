//! Real attack detonations read from CloudTrail files: one file per technique (a JSON
//! array of records, or a log file object `{"Records": [...]}`), its name without
//! `.json` naming the technique. Records are decoded by the project's own CloudTrail
//! decoder, so a spliced attack is exactly what `replay` would have read.

use crate::decode::{decode_value, Format};
use crate::model::{AccessEvent, Record};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DetonationError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: expected a JSON array of CloudTrail records or an object with `Records`: {reason}")]
    Shape { path: PathBuf, reason: String },
    #[error("{path}: record {index}: {reason}")]
    Record { path: PathBuf, index: usize, reason: String },
    #[error("{path}: no `.json` detonation files")]
    Empty { path: PathBuf },
}

/// One technique's calls, in the order they happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Detonation {
    pub technique: String,
    pub calls: Vec<DetonationCall>,
}

/// One decoded call, with the account and region it was detonated in: resource ARNs
/// name them, and a splice moves them to the victim's.
#[derive(Debug, Clone, PartialEq)]
pub struct DetonationCall {
    pub event: AccessEvent,
    pub account: Option<String>,
    pub region: Option<String>,
}

/// Every `*.json` file of a directory, by file name.
pub fn read_dir(dir: &Path) -> Result<Vec<Detonation>, DetonationError> {
    let io = |source| DetonationError::Io { path: dir.to_path_buf(), source };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    paths.retain(|p| p.extension().is_some_and(|ext| ext == "json") && p.is_file());
    paths.sort();
    if paths.is_empty() {
        return Err(DetonationError::Empty { path: dir.to_path_buf() });
    }
    paths.iter().map(|p| read_file(p)).collect()
}

/// One detonation file. A record the decoder rejects is an error: a silently
/// dropped call would change the attack.
pub fn read_file(path: &Path) -> Result<Detonation, DetonationError> {
    let bytes = std::fs::read(path).map_err(|source| DetonationError::Io { path: path.to_path_buf(), source })?;
    let shape = |reason: String| DetonationError::Shape { path: path.to_path_buf(), reason };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| shape(e.to_string()))?;
    let records = match &value {
        Value::Array(records) => records,
        Value::Object(log) => match log.get("Records") {
            Some(Value::Array(records)) => records,
            _ => return Err(shape("an object without a `Records` array".into())),
        },
        _ => return Err(shape("neither an array nor an object".into())),
    };
    if records.is_empty() {
        return Err(shape("no records".into()));
    }
    let mut calls = records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let reason = |reason: String| DetonationError::Record { path: path.to_path_buf(), index, reason };
            call(record).map_err(reason)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Files list records newest first, oldest first or mixed; stable, so records of
    // one second keep their file order.
    calls.sort_by_key(|c| c.event.time);
    let technique = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    Ok(Detonation { technique, calls })
}

/// The access event of one record. Lifecycle facts a record states (credentials an
/// `AssumeRole` issued) concern the detonation's own principals and are left out.
fn call(record: &Value) -> Result<DetonationCall, String> {
    if record.get("Records").is_some() {
        return Err("expected one record, found a nested `Records`".into());
    }
    let event = decode_value(record, Format::Cloudtrail)
        .into_iter()
        .find_map(|decoded| match decoded {
            Ok(Record::Access(event)) => Some(Ok(*event)),
            Ok(Record::Lifecycle { .. } | Record::Verdict(_)) => None,
            Err(e) => Some(Err(e.to_string())),
        })
        .unwrap_or_else(|| Err("no access event".into()))?;
    let text = |field: &str| record.get(field).and_then(Value::as_str).map(str::to_string);
    let account =
        text("recipientAccountId").or_else(|| record.pointer("/userIdentity/accountId")?.as_str().map(str::to_string));
    Ok(DetonationCall { event, account, region: text("awsRegion") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;
    use serde_json::json;

    fn record(time: &str, name: &str, error: Option<&str>) -> Value {
        let mut r = json!({
            "eventTime": time, "eventSource": "iam.amazonaws.com", "eventName": name, "eventID": name,
            "awsRegion": "xx-west-1r", "recipientAccountId": "229654561268", "userAgent": "attacker/1.0",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::229654561268:user/x", "accountId": "229654561268"},
            "resources": [{"ARN": "arn:aws:iam::229654561268:user/new"}],
        });
        if let Some(code) = error {
            r["errorCode"] = json!(code);
        }
        r
    }

    fn write(dir: &Path, name: &str, value: &Value) {
        std::fs::write(dir.join(name), serde_json::to_vec(value).unwrap()).unwrap();
    }

    #[test]
    fn reads_arrays_and_log_objects_in_time_order_by_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = json!([
            record("2024-08-01T13:33:29Z", "Second", Some("AccessDenied")),
            record("2024-08-01T13:33:28Z", "First", None),
            record("2024-08-01T13:33:29Z", "Third", None),
        ]);
        write(dir.path(), "b.tactic.two.json", &a);
        write(dir.path(), "a.tactic.one.json", &json!({"Records": [record("2024-08-01T13:00:00Z", "Only", None)]}));
        std::fs::write(dir.path().join("README.md"), "not a detonation").unwrap();
        let found = read_dir(dir.path()).unwrap();
        let techniques: Vec<&str> = found.iter().map(|d| d.technique.as_str()).collect();
        assert_eq!(techniques, ["a.tactic.one", "b.tactic.two"]);
        let two = &found[1];
        let actions: Vec<&str> = two.calls.iter().map(|c| c.event.action.as_str()).collect();
        assert_eq!(actions, ["First", "Second", "Third"], "by time, file order within a second");
        assert_eq!(two.calls[1].event.outcome, Outcome::Denied);
        assert_eq!(two.calls[0].account.as_deref(), Some("229654561268"));
        assert_eq!(two.calls[0].region.as_deref(), Some("xx-west-1r"));
        assert_eq!(two.calls[0].event.resource.as_deref(), Some("arn:aws:iam::229654561268:user/new"));
    }

    #[test]
    fn a_bad_record_or_an_empty_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_dir(dir.path()), Err(DetonationError::Empty { .. })));
        let mut bad = record("2024-08-01T13:33:28Z", "X", None);
        bad.as_object_mut().unwrap().remove("eventSource");
        write(dir.path(), "t.json", &json!([record("2024-08-01T13:33:28Z", "Y", None), bad]));
        let err = read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("t.json: record 1:") && err.contains("eventSource"), "{err}");
        write(dir.path(), "t.json", &json!({"records": []}));
        assert!(matches!(read_dir(dir.path()), Err(DetonationError::Shape { .. })));
    }
}
