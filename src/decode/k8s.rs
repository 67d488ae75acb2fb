//! Kubernetes audit: an `audit.k8s.io/v1` `Event`. See `docs/formats.md` for the mapping.

use super::fields::{
    derived_id, opt_obj, opt_str, opt_string, opt_utc_time, path_obj, path_str, req_obj, req_str, Obj,
};
use super::{access_with_lifecycle, DecodeError, Decoded};
use crate::model::{AccessEvent, EventText, Lifecycle, Outcome};
use compact_str::format_compact;
use serde_json::Value;

/// The stage at which an event is a call: the API server has sent the whole response.
/// One request is logged once per stage, so counting one stage counts each call once.
pub const DEFAULT_STAGE: &str = "ResponseComplete";

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

pub fn decode(event: &Obj) -> Decoded {
    decode_at_stage(event, DEFAULT_STAGE)
}

/// Decodes an event if it was logged at `stage`; events of other stages yield nothing.
/// An event without a `stage` (some exporters drop it) counts as a call.
pub fn decode_at_stage(event: &Obj, stage: &str) -> Decoded {
    match opt_str(event, "stage") {
        Ok(Some(s)) if s != stage => Vec::new(),
        Err(e) => vec![Err(e)],
        Ok(_) => access_with_lifecycle(access(event), |e| lifecycle(event, e)),
    }
}

fn access(event: &Obj) -> Result<AccessEvent, DecodeError> {
    let time = match opt_utc_time(event, "stageTimestamp")? {
        Some(t) => t,
        None => opt_utc_time(event, "requestReceivedTimestamp")?
            .ok_or(DecodeError::MissingField("stageTimestamp".into()))?,
    };
    let user = req_obj(event, "user")?;
    let username = req_str(user, "username").map_err(|e| e.within("user"))?;
    // With impersonation the API server acts as the impersonated user, on behalf of
    // the authenticated one: the impersonator is the delegator, both are in the chain.
    let impersonated = match opt_obj(event, "impersonatedUser")? {
        Some(imp) => Some(req_str(imp, "username").map_err(|e| e.within("impersonatedUser"))?),
        None => None,
    };
    let (identity, on_behalf_of, chain) = match impersonated {
        Some(imp) => (imp, Some(username.into()), vec![imp.into(), username.into()]),
        None => (username, None, Vec::new()),
    };
    let object = opt_obj(event, "objectRef")?;
    let (target, resource) = match object {
        Some(object) => (target(object).map_err(|e| e.within("objectRef"))?, object_name(object)),
        // A non-resource request (`/healthz`, `/metrics`): the URL path is the target.
        None => {
            let uri = req_str(event, "requestURI").map_err(|_| DecodeError::MissingField("objectRef".into()))?;
            (uri.split('?').next().unwrap_or(uri).into(), None)
        }
    };
    Ok(AccessEvent {
        event_id: opt_string(event, "auditID")?.unwrap_or_else(|| derived_id(event)),
        time,
        identity: identity.into(),
        identity_type: Some(
            if identity.starts_with(SERVICE_ACCOUNT_PREFIX) { "serviceaccount" } else { "user" }.into(),
        ),
        on_behalf_of,
        chain,
        grant_id: None,
        // Since Kubernetes 1.30 the token or certificate is named (`JTI=...`), never shown.
        credential_id: first_extra(user, "authentication.kubernetes.io/credential-id"),
        credential_expires_at: None,
        target,
        action: req_str(event, "verb")?.into(),
        resource,
        environment: None,
        region: None,
        session_id: None,
        source_ip: event
            .get("sourceIPs")
            .and_then(Value::as_array)
            .and_then(|ips| ips.first())
            .and_then(Value::as_str)
            .map(EventText::from),
        user_agent: opt_string(event, "userAgent")?,
        outcome: outcome(event)?,
    })
}

/// `GROUP/RESOURCE[/SUBRESOURCE]`, with `core` for the unnamed core group:
/// `apps/deployments`, `core/pods/exec`, `core/serviceaccounts/token`.
fn target(object: &Obj) -> Result<EventText, DecodeError> {
    let group = opt_str(object, "apiGroup")?.unwrap_or("core");
    let resource = req_str(object, "resource")?;
    Ok(match opt_str(object, "subresource")? {
        Some(sub) => format_compact!("{group}/{resource}/{sub}"),
        None => format_compact!("{group}/{resource}"),
    })
}

/// `NAMESPACE/NAME`; a cluster-scoped object is its name, a namespace-wide request
/// (list, watch, create without a name) is `NAMESPACE/*`.
fn object_name(object: &Obj) -> Option<EventText> {
    match (path_str(object, &["namespace"]), path_str(object, &["name"])) {
        (Some(ns), Some(name)) => Some(format_compact!("{ns}/{name}")),
        (None, Some(name)) => Some(name.into()),
        (Some(ns), None) => Some(format_compact!("{ns}/*")),
        (None, None) => None,
    }
}

fn first_extra(user: &Obj, key: &str) -> Option<EventText> {
    let values = path_obj(user, &["extra"])?.get(key)?.as_array()?;
    values.first()?.as_str().map(EventText::from)
}

/// 401 and 403 are refusals; any other code from 400 up is a failure.
fn outcome(event: &Obj) -> Result<Outcome, DecodeError> {
    let Some(status) = opt_obj(event, "responseStatus")? else {
        return Ok(Outcome::Success);
    };
    Ok(match status.get("code").and_then(Value::as_i64) {
        Some(401 | 403) => Outcome::Denied,
        Some(code) if code >= 400 => Outcome::Failure,
        _ => Outcome::Success,
    })
}

fn lifecycle(event: &Obj, access: &AccessEvent) -> Option<Result<Lifecycle, DecodeError>> {
    let object = path_obj(event, &["objectRef"])?;
    let account = || -> Result<String, DecodeError> {
        let ns = req_str(object, "namespace").map_err(|e| e.within("objectRef"))?;
        let name = req_str(object, "name").map_err(|e| e.within("objectRef"))?;
        Ok(format!("{SERVICE_ACCOUNT_PREFIX}{ns}:{name}"))
    };
    match (access.target.as_str(), access.action.as_str()) {
        ("core/serviceaccounts", "delete") => {
            Some(account().map(|identity| Lifecycle::IdentityOffboarded { identity }))
        }
        // A create's name is often only in its request body, which most audit policies leave
        // out: without one there is no fact, and nothing to reject.
        ("core/serviceaccounts", "create") => {
            account().ok().map(|identity| Ok(Lifecycle::IdentityActivated { identity }))
        }
        ("core/serviceaccounts/token", "create") => {
            // A TokenRequest; `status.token` is the secret and is never read. Only
            // responses logged at RequestResponse level carry the expiry.
            let expiry = path_str(event, &["responseObject", "status", "expirationTimestamp"])?;
            let field = "responseObject.status.expirationTimestamp";
            let expires_at = match super::fields::utc_time(field, expiry, "an RFC 3339 time") {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            // Since Kubernetes 1.29 the issued token's id is an audit annotation.
            let credential_id = path_str(event, &["annotations", "authentication.kubernetes.io/issued-credential-id"])
                .map_or_else(|| access.event_id.to_string(), str::to_string);
            Some(account().map(|identity| Lifecycle::CredentialIssued {
                credential_id,
                identity: Some(identity),
                expires_at,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing;
    use crate::model::Record;
    use serde_json::json;

    fn event(extra: Value) -> Value {
        let base = json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a-1", "stage": "ResponseComplete",
            "stageTimestamp": "2026-03-02T10:00:00.123456Z", "verb": "get",
            "user": {"username": "system:serviceaccount:ci:deployer"},
            "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db", "apiVersion": "v1"},
            "sourceIPs": ["10.0.0.7", "10.0.0.1"], "responseStatus": {"code": 200}});
        testing::with(base, extra)
    }

    fn dec(v: Value) -> Decoded {
        testing::run(decode, v)
    }

    fn access_of(v: Value) -> AccessEvent {
        testing::first_access(decode, v)
    }

    #[test]
    fn maps_a_service_account_call() {
        let e = access_of(event(json!({})));
        assert_eq!(e.identity, "system:serviceaccount:ci:deployer");
        assert_eq!(e.identity_type.as_deref(), Some("serviceaccount"));
        assert_eq!((e.target.as_str(), e.action.as_str()), ("core/secrets", "get"));
        assert_eq!(e.resource.as_deref(), Some("prod/db"));
        assert_eq!(e.source_ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(e.time, 1772445600123);
    }

    #[test]
    fn targets_and_resources() {
        let cases = [
            (
                json!({"resource": "deployments", "apiGroup": "apps", "namespace": "web"}),
                "apps/deployments",
                Some("web/*"),
            ),
            (
                json!({"resource": "pods", "subresource": "exec", "namespace": "web", "name": "p"}),
                "core/pods/exec",
                Some("web/p"),
            ),
            (
                json!({"resource": "clusterroles", "apiGroup": "rbac.authorization.k8s.io", "name": "admin"}),
                "rbac.authorization.k8s.io/clusterroles",
                Some("admin"),
            ),
        ];
        for (object, target, resource) in cases {
            let e = access_of(event(json!({"objectRef": object})));
            assert_eq!((e.target.as_str(), e.resource.as_deref()), (target, resource));
        }
        let mut v = event(json!({"requestURI": "/metrics?x=1"}));
        v.as_object_mut().unwrap().remove("objectRef");
        assert_eq!(access_of(v).target, "/metrics");
    }

    #[test]
    fn impersonation_makes_the_impersonator_the_delegator() {
        let e = access_of(event(json!({"user": {"username": "alice@acme.com"},
            "impersonatedUser": {"username": "system:serviceaccount:ci:deployer"}})));
        assert_eq!(e.identity, "system:serviceaccount:ci:deployer");
        assert_eq!(e.on_behalf_of.as_deref(), Some("alice@acme.com"));
        assert_eq!(e.chain, vec!["system:serviceaccount:ci:deployer", "alice@acme.com"]);
    }

    #[test]
    fn only_the_configured_stage_counts() {
        assert!(dec(event(json!({"stage": "RequestReceived"}))).is_empty());
        assert_eq!(dec(event(json!({}))).len(), 1);
        let v = event(json!({"stage": "ResponseStarted"}));
        assert_eq!(decode_at_stage(v.as_object().unwrap(), "ResponseStarted").len(), 1);
        let mut no_stage = event(json!({}));
        no_stage.as_object_mut().unwrap().remove("stage");
        assert_eq!(dec(no_stage).len(), 1);
    }

    #[test]
    fn outcome_from_response_code() {
        for (code, expected) in [
            (200, Outcome::Success),
            (201, Outcome::Success),
            (403, Outcome::Denied),
            (401, Outcome::Denied),
            (404, Outcome::Failure),
            (409, Outcome::Failure),
        ] {
            assert_eq!(access_of(event(json!({"responseStatus": {"code": code}}))).outcome, expected, "{code}");
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        let no_time = {
            let mut v = event(json!({}));
            v.as_object_mut().unwrap().remove("stageTimestamp");
            v
        };
        let cases = [
            (no_time, "missing required field `stageTimestamp`"),
            (event(json!({"user": {}})), "missing required field `user.username`"),
            (event(json!({"user": null})), "missing required field `user`"),
            (event(json!({"objectRef": {"name": "x"}})), "missing required field `objectRef.resource`"),
            (event(json!({"impersonatedUser": {"groups": []}})), "missing required field `impersonatedUser.username`"),
            (event(json!({"stage": 3})), "field `stage` has the wrong type: expected a string, found a number"),
        ];
        for (input, reason) in cases {
            assert_eq!(dec(input)[0].as_ref().unwrap_err().to_string(), reason);
        }
    }

    #[test]
    fn lifecycle_facts() {
        let deleted = event(
            json!({"verb": "delete", "objectRef": {"resource": "serviceaccounts", "namespace": "ci", "name": "old"}}),
        );
        let token = event(json!({"verb": "create",
            "objectRef": {"resource": "serviceaccounts", "subresource": "token", "namespace": "ci", "name": "deployer"},
            "annotations": {"authentication.kubernetes.io/issued-credential-id": "JTI=7c1d"},
            "responseObject": {"status": {"token": "SECRET-JWT", "expirationTimestamp": "2026-03-02T11:00:00Z"}}}));
        let created = event(
            json!({"verb": "create", "objectRef": {"resource": "serviceaccounts", "namespace": "ci", "name": "old"}}),
        );
        let cases = [
            (deleted, Lifecycle::IdentityOffboarded { identity: "system:serviceaccount:ci:old".into() }),
            (created, Lifecycle::IdentityActivated { identity: "system:serviceaccount:ci:old".into() }),
            (
                token.clone(),
                Lifecycle::CredentialIssued {
                    credential_id: "JTI=7c1d".into(),
                    identity: Some("system:serviceaccount:ci:deployer".into()),
                    expires_at: 1772449200000,
                },
            ),
        ];
        for (input, expected) in cases {
            let out = dec(input);
            assert!(!format!("{out:?}").contains("SECRET"));
            assert!(matches!(out.get(1), Some(Ok(Record::Lifecycle { fact, .. })) if **fact == expected), "{out:?}");
        }
        let mut refused = token;
        refused["responseStatus"] = json!({"code": 403});
        assert_eq!(dec(refused).len(), 1);
        // A create without the account's name (left in the request body) states nothing.
        let unnamed = event(json!({"verb": "create", "objectRef": {"resource": "serviceaccounts", "namespace": "ci"}}));
        assert_eq!(dec(unnamed).len(), 1, "no fact and no reject");
    }
}
