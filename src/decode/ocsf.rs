//! OCSF API Activity events (class_uid 6003), as AWS Security Lake and SIEM pipelines
//! write them. See `docs/formats.md` for the field mapping.

use super::cloudtrail::error_outcome;
use super::fields::{derived_id, first_str, path_obj, path_str, req_obj, req_str, req_time, type_name, Obj};
use super::{DecodeError, Decoded};
use crate::model::{AccessEvent, EventText, Outcome, Record};
use serde_json::Value;

const API_ACTIVITY: i64 = 6003;
/// OCSF `status_id` values; 0 (Unknown) and 99 (Other) say nothing against the call.
const STATUS_FAILURE: i64 = 2;

pub fn decode(event: &Obj) -> Decoded {
    vec![access(event).map(|e| Record::Access(Box::new(e)))]
}

fn access(event: &Obj) -> Result<AccessEvent, DecodeError> {
    match event.get("class_uid") {
        Some(Value::Number(n)) if n.as_i64() == Some(API_ACTIVITY) => {}
        Some(Value::Number(n)) => {
            return Err(DecodeError::InvalidValue {
                field: "class_uid".into(),
                reason: format!("expected {API_ACTIVITY} (API Activity), found {n}"),
            })
        }
        Some(other) => {
            return Err(DecodeError::WrongType {
                field: "class_uid".into(),
                expected: "a number",
                found: type_name(other),
            })
        }
        None => return Err(DecodeError::MissingField("class_uid".into())),
    }
    let actor = req_obj(event, "actor")?;
    let user = path_obj(actor, &["user"]);
    let issuer = path_str(actor, &["session", "issuer"]);
    // Like CloudTrail: the role that issued the session is the delegate, so that all its
    // sessions share one baseline; without a session, the user itself.
    let identity = issuer
        .or_else(|| user.and_then(|u| first_str(u, &["uid", "name", "email_addr"])))
        .ok_or(DecodeError::MissingField("actor.user.uid".into()))?;
    let invoked_by = path_str(actor, &["invoked_by"]);

    // Outermost (nearest the call) first, as for CloudTrail.
    let mut chain = Vec::new();
    chain.extend(invoked_by.filter(|by| *by != identity).map(EventText::from));
    chain.extend(issuer.map(EventText::from));

    let api = req_obj(event, "api")?;
    let service = req_obj(api, "service").map_err(|e| e.within("api"))?;
    Ok(AccessEvent {
        event_id: path_str(event, &["metadata", "uid"]).map_or_else(|| derived_id(event), EventText::from),
        time: req_time(event, "time")?,
        identity: identity.into(),
        identity_type: user.and_then(|u| path_str(u, &["type"])).map(EventText::from),
        on_behalf_of: None,
        chain,
        grant_id: None,
        credential_id: user.and_then(|u| path_str(u, &["credential_uid"])).map(EventText::from),
        credential_expires_at: None,
        target: req_str(service, "name").map_err(|e| e.within("api.service"))?.into(),
        action: req_str(api, "operation").map_err(|e| e.within("api"))?.into(),
        resource: resource(event),
        environment: path_str(event, &["cloud", "account", "uid"]).map(EventText::from),
        region: path_str(event, &["cloud", "region"]).map(EventText::from),
        session_id: path_str(actor, &["session", "uid"]).map(EventText::from),
        source_ip: path_str(event, &["src_endpoint", "ip"]).map(EventText::from),
        user_agent: path_str(event, &["http_request", "user_agent"]).map(EventText::from),
        outcome: outcome(event),
    })
}

/// The first resource's `uid` (an ARN or id), else its `name`.
fn resource(event: &Obj) -> Option<EventText> {
    let first = event.get("resources")?.as_array()?.first()?.as_object()?;
    first_str(first, &["uid", "name"]).map(EventText::from)
}

/// OCSF has no "denied" status: a failure whose `status_code` or `status_detail` names
/// a refusal (`AccessDenied`, `Forbidden` ...) is denied, as for CloudTrail error codes.
fn outcome(event: &Obj) -> Outcome {
    if event.get("status_id").and_then(Value::as_i64) != Some(STATUS_FAILURE) {
        return Outcome::Success;
    }
    let code = first_str(event, &["status_code", "status_detail"]).unwrap_or_default();
    error_outcome(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing;
    use serde_json::json;

    fn event(extra: Value) -> Value {
        let base = json!({"class_uid": 6003, "time": 1772445600000_i64, "metadata": {"uid": "m-1", "version": "1.1.0"},
            "actor": {"user": {"uid": "AIDAEXAMPLE", "name": "etl", "type": "IAMUser", "credential_uid": "AKIAEXAMPLE"}},
            "api": {"service": {"name": "s3.amazonaws.com"}, "operation": "GetObject"},
            "resources": [{"uid": "arn:aws:s3:::b/k", "type": "AWS::S3::Object"}],
            "src_endpoint": {"ip": "198.51.100.7"}, "cloud": {"provider": "AWS", "account": {"uid": "111122223333"}},
            "status_id": 1});
        testing::with(base, extra)
    }

    fn access_of(v: Value) -> Result<AccessEvent, String> {
        access(v.as_object().expect("test input is an object")).map_err(|e| e.to_string())
    }

    #[test]
    fn maps_an_api_activity() {
        let e = access_of(event(json!({}))).unwrap();
        assert_eq!(
            (e.identity.as_str(), e.target.as_str(), e.action.as_str()),
            ("AIDAEXAMPLE", "s3.amazonaws.com", "GetObject")
        );
        assert_eq!(e.resource.as_deref(), Some("arn:aws:s3:::b/k"));
        assert_eq!(e.credential_id.as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(e.environment.as_deref(), Some("111122223333"));
        assert_eq!(e.event_id, "m-1");
        assert!(e.chain.is_empty());
    }

    #[test]
    fn a_session_issuer_is_the_identity() {
        let e = access_of(event(json!({"actor": {
            "user": {"uid": "AROAEXAMPLE:run-42", "type": "AssumedRole"},
            "session": {"uid": "sess-9", "issuer": "arn:aws:iam::111122223333:role/deployer"},
            "invoked_by": "cloudformation.amazonaws.com"}})))
        .unwrap();
        assert_eq!(e.identity, "arn:aws:iam::111122223333:role/deployer");
        assert_eq!(e.session_id.as_deref(), Some("sess-9"));
        assert_eq!(e.chain, vec!["cloudformation.amazonaws.com", "arn:aws:iam::111122223333:role/deployer"]);
    }

    #[test]
    fn outcome_from_status() {
        let cases = [
            (json!({"status_id": 1}), Outcome::Success),
            (json!({"status_id": 0}), Outcome::Success),
            (json!({"status_id": 2, "status_code": "AccessDenied"}), Outcome::Denied),
            (json!({"status_id": 2, "status_detail": "Forbidden by policy"}), Outcome::Denied),
            (json!({"status_id": 2, "status_code": "ThrottlingException"}), Outcome::Failure),
            (json!({"status_id": 2}), Outcome::Failure),
        ];
        for (status, expected) in cases {
            assert_eq!(access_of(event(status.clone())).unwrap().outcome, expected, "{status}");
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        let cases = [
            (json!({"class_uid": 3002}), "field `class_uid`: expected 6003 (API Activity), found 3002"),
            (json!({"class_uid": "6003"}), "field `class_uid` has the wrong type: expected a number, found a string"),
            (json!({"actor": {"user": {}}}), "missing required field `actor.user.uid`"),
            (json!({"api": {"operation": "GetObject"}}), "missing required field `api.service`"),
            (json!({"api": {"service": {"name": "s3"}}}), "missing required field `api.operation`"),
            (
                json!({"time": "yesterday"}),
                "field `time`: expected an RFC 3339 time or epoch milliseconds, found \"yesterday\"",
            ),
        ];
        for (extra, reason) in cases {
            assert_eq!(access_of(event(extra)).unwrap_err(), reason);
        }
    }
}
