//! Grant and lifecycle events (`schemas/grant-event.v1.schema.json`), from the
//! `--grants` file or the grants topic.

use super::fields::{derived_id, opt_obj, opt_str, opt_string, opt_time, req_str, req_time, Obj};
use super::DecodeError;
use crate::model::{Grant, GrantEndReason, Lifecycle, Record, Scope, TimeWindow};
use serde_json::Value;

const KINDS: [&str; 4] = ["grant", "grant_ended", "identity_offboarded", "credential_revoked"];

pub fn is_kind(kind: &str) -> bool {
    KINDS.contains(&kind)
}

pub fn decode(obj: &Obj) -> Result<Record, DecodeError> {
    let time = req_time(obj, "time")?;
    let fact = match req_str(obj, "kind")? {
        "grant" => Lifecycle::Grant(grant(obj)?),
        "grant_ended" => Lifecycle::GrantEnded {
            grant_id: req_str(obj, "grant_id")?.to_string(),
            reason: match opt_str(obj, "reason")? {
                None | Some("revoked") => GrantEndReason::Revoked,
                Some("expired") => GrantEndReason::Expired,
                Some("purpose_ended") => GrantEndReason::PurposeEnded,
                Some(other) => {
                    return Err(DecodeError::InvalidValue {
                        field: "reason".into(),
                        reason: format!("expected revoked, expired or purpose_ended, found `{other}`"),
                    })
                }
            },
        },
        "identity_offboarded" => Lifecycle::IdentityOffboarded { identity: req_str(obj, "identity")?.to_string() },
        "credential_revoked" => {
            Lifecycle::CredentialRevoked { credential_id: req_str(obj, "credential_id")?.to_string() }
        }
        other => {
            return Err(DecodeError::InvalidValue {
                field: "kind".into(),
                reason: format!("expected one of {}, found `{other}`", KINDS.join(", ")),
            })
        }
    };
    let event_id = opt_string(obj, "event_id")?.unwrap_or_else(|| derived_id(obj).into());
    Ok(Record::Lifecycle { time, event_id, fact: Box::new(fact) })
}

fn grant(obj: &Obj) -> Result<Grant, DecodeError> {
    let scope = match opt_obj(obj, "scope")? {
        None => Scope::default(),
        Some(s) => serde_json::from_value(Value::Object(s.clone()))
            .map_err(|e| DecodeError::InvalidValue { field: "scope".into(), reason: e.to_string() })?,
    };
    let windows: Vec<TimeWindow> = match obj.get("windows") {
        None | Some(Value::Null) => Vec::new(),
        Some(w) => serde_json::from_value(w.clone())
            .map_err(|e| DecodeError::InvalidValue { field: "windows".into(), reason: e.to_string() })?,
    };
    for w in &windows {
        crate::grants::check_window(w)
            .map_err(|reason| DecodeError::InvalidValue { field: "windows".into(), reason })?;
    }
    Ok(Grant {
        grant_id: req_str(obj, "grant_id")?.to_string(),
        identity: req_str(obj, "identity")?.to_string(),
        on_behalf_of: opt_string(obj, "on_behalf_of")?,
        scope,
        not_before: opt_time(obj, "not_before")?,
        expires_at: opt_time(obj, "expires_at")?,
        windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(v: serde_json::Value) -> Result<Record, DecodeError> {
        decode(v.as_object().unwrap())
    }

    #[test]
    fn decodes_each_kind() {
        let g = dec(json!({"kind": "grant", "time": "2026-03-01T00:00:00Z", "grant_id": "g1", "identity": "ci",
            "scope": {"targets": ["s3"], "resources": ["arn:aws:s3:::b/*"]},
            "windows": [{"days": ["mon"], "start": "14:00", "end": "16:00"}]}))
        .unwrap();
        let Record::Lifecycle { fact, .. } = g else { panic!("not a lifecycle fact") };
        let Lifecycle::Grant(g) = *fact else { panic!("not a grant") };
        assert_eq!(g.scope.targets, vec!["s3"]);
        assert_eq!(g.windows[0].start, "14:00");

        let e = dec(json!({"kind": "grant_ended", "time": 5, "grant_id": "g1", "reason": "purpose_ended"})).unwrap();
        let fact_at = |r: Record| match r {
            Record::Lifecycle { time, fact, .. } => (time, *fact),
            other => panic!("not a lifecycle fact: {other:?}"),
        };
        assert!(matches!(fact_at(e), (5, Lifecycle::GrantEnded { reason: GrantEndReason::PurposeEnded, .. })));
        let o = dec(json!({"kind": "identity_offboarded", "time": 5, "identity": "ci"})).unwrap();
        assert!(matches!(fact_at(o), (5, Lifecycle::IdentityOffboarded { .. })));
        let c = dec(json!({"kind": "credential_revoked", "time": 5, "credential_id": "AKIA1"})).unwrap();
        assert!(matches!(fact_at(c), (5, Lifecycle::CredentialRevoked { .. })));
    }

    #[test]
    fn rejects_bad_grants_with_reasons() {
        let cases = [
            (json!({"kind": "grant", "time": 1, "identity": "ci"}), "missing required field `grant_id`"),
            (json!({"kind": "grant", "time": 1, "grant_id": "g", "identity": "ci", "scope": {"target": []}}), "field `scope`: unknown field `target`, expected one of `targets`, `actions`, `resources`, `environments`"),
            (json!({"kind": "grant", "time": 1, "grant_id": "g", "identity": "ci", "windows": [{"start": "25:00", "end": "26:00"}]}), "field `windows`: `25:00` is not a time of day HH:MM"),
            (json!({"kind": "grant_ended", "time": 1, "grant_id": "g", "reason": "bored"}), "field `reason`: expected revoked, expired or purpose_ended, found `bored`"),
        ];
        for (input, reason) in cases {
            assert_eq!(dec(input).unwrap_err().to_string(), reason);
        }
    }
}
