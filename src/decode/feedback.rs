//! Analyst verdicts (`schemas/verdict.v1.schema.json`), from the `--feedback`
//! file or the feedback topic. Every field is hostile: each is bounded here,
//! and `alert_id` must have the shape the engine gives its ids, so a verdict
//! can only ever name an alert by its exact id (`feedback` refuses one it does
//! not remember).

use super::fields::{opt_str, req_str, req_time, Obj};
use super::DecodeError;
use crate::model::{Judgement, Record, Verdict, VerdictScope};

/// Longest `by` accepted: a principal's name (an e-mail, an ARN).
pub const MAX_BY_BYTES: usize = 256;
/// Longest `note` accepted.
pub const MAX_NOTE_BYTES: usize = 1024;
/// `alert::alert_id_parts`: 16 bytes of SHA-256 in lower-case hex.
const ALERT_ID_LEN: usize = 32;

pub fn decode(obj: &Obj) -> Result<Record, DecodeError> {
    let time = req_time(obj, "time")?;
    let alert_id = req_str(obj, "alert_id")?;
    if alert_id.len() != ALERT_ID_LEN || !alert_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("alert_id", format!("expected {ALERT_ID_LEN} lower-case hex digits, found `{alert_id}`")));
    }
    let judgement = match req_str(obj, "verdict")? {
        "benign" => Judgement::Benign,
        "malicious" => Judgement::Malicious,
        other => return Err(invalid("verdict", format!("expected benign or malicious, found `{other}`"))),
    };
    let scope = match req_str(obj, "scope")? {
        "alert" => VerdictScope::Alert,
        "call" => VerdictScope::Call,
        "identity" => VerdictScope::Identity,
        other => return Err(invalid("scope", format!("expected alert, call or identity, found `{other}`"))),
    };
    let by = bounded(req_str(obj, "by")?, "by", MAX_BY_BYTES)?;
    if by.trim().is_empty() {
        return Err(invalid("by", "is only whitespace".into()));
    }
    let note = opt_str(obj, "note")?.map(|n| bounded(n, "note", MAX_NOTE_BYTES)).transpose()?;
    Ok(Record::Verdict(Box::new(Verdict { time, alert_id: alert_id.to_string(), judgement, scope, by, note })))
}

fn invalid(field: &str, reason: String) -> DecodeError {
    DecodeError::InvalidValue { field: field.into(), reason }
}

fn bounded(value: &str, field: &'static str, max: usize) -> Result<String, DecodeError> {
    match value.len() {
        len if len > max => Err(DecodeError::FieldTooLong { field, len, max }),
        _ => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn dec(v: serde_json::Value) -> Result<Record, String> {
        decode(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    fn good() -> serde_json::Value {
        json!({"time": "2026-03-02T10:00:00Z", "alert_id": ID, "verdict": "benign", "scope": "call", "by": "ana@soc"})
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut v = good();
        v[field] = value;
        v
    }

    #[test]
    fn a_good_verdict_decodes_whole() {
        let Ok(Record::Verdict(v)) = dec(with("note", json!("new deploy job"))) else { panic!() };
        assert_eq!(
            *v,
            Verdict {
                time: 1_772_445_600_000,
                alert_id: ID.into(),
                judgement: Judgement::Benign,
                scope: VerdictScope::Call,
                by: "ana@soc".into(),
                note: Some("new deploy job".into()),
            }
        );
    }

    #[test]
    fn every_field_is_checked_and_bounded() {
        let cases = [
            (with("alert_id", json!("0123")), "field `alert_id`: expected 32 lower-case hex digits, found `0123`"),
            (with("alert_id", json!(ID.to_uppercase())), "field `alert_id`: expected 32 lower-case hex digits"),
            (with("verdict", json!("maybe")), "field `verdict`: expected benign or malicious, found `maybe`"),
            (with("scope", json!("fleet")), "field `scope`: expected alert, call or identity, found `fleet`"),
            (with("scope", json!(null)), "missing required field `scope`"),
            (with("by", json!("x".repeat(257))), "field `by` is 257 bytes, over the limit of 256"),
            (with("by", json!("  ")), "field `by`: is only whitespace"),
            (with("note", json!("n".repeat(1025))), "field `note` is 1025 bytes, over the limit of 1024"),
            (with("time", json!("yesterday")), "field `time`: expected an RFC 3339 time or epoch milliseconds"),
            (with("by", json!(7)), "field `by` has the wrong type: expected a string, found a number"),
        ];
        for (input, want) in cases {
            let got = dec(input.clone()).expect_err(&input.to_string());
            assert!(got.starts_with(want), "{input}: {got}");
        }
    }
}
