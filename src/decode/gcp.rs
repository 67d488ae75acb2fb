//! GCP Cloud Audit Logs: a `LogEntry` whose `protoPayload` is an `AuditLog`.
//! See `docs/formats.md` for the field mapping.

use super::fields::{
    derived_id, first_str, opt_obj, opt_str, opt_string, opt_utc_time, path_obj, path_str, req_obj, req_str, type_name,
    wrong, Obj,
};
use super::{access_with_lifecycle, DecodeError, Decoded};
use crate::model::{AccessEvent, EventText, Lifecycle, Outcome};
use serde_json::Value;

/// `google.rpc.Code` values that mean the caller was refused.
const PERMISSION_DENIED: i64 = 7;
const UNAUTHENTICATED: i64 = 16;

pub fn decode(entry: &Obj) -> Decoded {
    access_with_lifecycle(access(entry), |event| lifecycle(entry, event))
}

fn access(entry: &Obj) -> Result<AccessEvent, DecodeError> {
    let payload = req_obj(entry, "protoPayload")?;
    let in_payload = |e: DecodeError| e.within("protoPayload");
    let auth = req_obj(payload, "authenticationInfo").map_err(in_payload)?;
    let in_auth = |e: DecodeError| e.within("protoPayload.authenticationInfo");

    let time = match opt_utc_time(entry, "timestamp")? {
        Some(t) => t,
        None => opt_utc_time(entry, "receiveTimestamp")?.ok_or(DecodeError::MissingField("timestamp".into()))?,
    };
    // Workload identity federation principals have a subject and no email.
    let (identity, identity_type) = match opt_str(auth, "principalEmail").map_err(in_auth)? {
        Some(email) if email.ends_with(".gserviceaccount.com") => (email, "serviceAccount"),
        Some(email) => (email, "user"),
        None => match opt_str(auth, "principalSubject").map_err(in_auth)? {
            Some(subject) => (subject, "principal"),
            None => return Err(in_auth(DecodeError::MissingField("principalEmail".into()))),
        },
    };

    // GCP lists the delegation hops in the order they happened, the original caller
    // first. Our chain is outermost first: the acting account, then each hop back to
    // the original caller, who is also the delegator.
    let hops = delegation_hops(auth).map_err(in_auth)?;
    let on_behalf_of = hops.first().cloned();
    let chain = if hops.is_empty() {
        Vec::new()
    } else {
        std::iter::once(EventText::from(identity)).chain(hops.into_iter().rev()).collect()
    };

    let metadata = opt_obj(payload, "requestMetadata").map_err(in_payload)?;
    Ok(AccessEvent {
        event_id: opt_string(entry, "insertId")?.unwrap_or_else(|| derived_id(entry)),
        time,
        identity: identity.into(),
        identity_type: Some(identity_type.into()),
        on_behalf_of,
        chain,
        grant_id: None,
        credential_id: path_str(auth, &["serviceAccountKeyName"]).map(|name| key_id(name).into()),
        credential_expires_at: None,
        target: req_str(payload, "serviceName").map_err(in_payload)?.into(),
        action: req_str(payload, "methodName").map_err(in_payload)?.into(),
        resource: opt_string(payload, "resourceName").map_err(in_payload)?,
        environment: path_str(entry, &["resource", "labels", "project_id"]).map(EventText::from),
        region: region(entry),
        session_id: None,
        // The documented key is `callerIp`; some exporters write `callerIP`.
        source_ip: metadata.and_then(|m| first_str(m, &["callerIp", "callerIP"])).map(EventText::from),
        user_agent: metadata.and_then(|m| path_str(m, &["callerSuppliedUserAgent"])).map(EventText::from),
        outcome: outcome(payload).map_err(in_payload)?,
    })
}

/// Where the call was served: the most specific location the entry names, first of the
/// monitored resource's `zone`, `region` and `location` labels, then the resource's
/// `protoPayload.resourceLocation.currentLocations[0]`. A zone counts as its region
/// (`us-central1-a` is `us-central1`), so the zones of one region are one region, as
/// CloudTrail's `awsRegion` is; a multi-region (`us`, `eu`) or `global` stays as it is.
/// GCP names locations in lower case but some services log multi-regions in upper case
/// (`US`), so every location is lower-cased.
fn region(entry: &Obj) -> Option<EventText> {
    let labelled = path_obj(entry, &["resource", "labels"]).and_then(|l| first_str(l, &["zone", "region", "location"]));
    let location = labelled.or_else(|| {
        let current = path_obj(entry, &["protoPayload", "resourceLocation"])?.get("currentLocations")?;
        current.as_array()?.first()?.as_str().filter(|s| !s.is_empty())
    })?;
    let mut location = location.to_ascii_lowercase();
    if let Some(region) = zone_region(&location).map(str::len) {
        location.truncate(region);
    }
    Some(location.into())
}

/// The region of a zone name (`REGION-X`: a region, which ends in a digit, and a one-letter
/// zone), or `None` for anything else.
fn zone_region(location: &str) -> Option<&str> {
    let (region, zone) = location.rsplit_once('-')?;
    let one_letter = zone.len() == 1 && zone.bytes().all(|b| b.is_ascii_lowercase());
    (one_letter && region.ends_with(|c: char| c.is_ascii_digit())).then_some(region)
}

/// Every hop of `serviceAccountDelegationInfo`, in log order. A first-party hop is named
/// by its email, a third-party (federated) one by its principal subject or `sub` claim; a
/// hop that names no one (`{}`) says nothing and is skipped.
fn delegation_hops(auth: &Obj) -> Result<Vec<EventText>, DecodeError> {
    const FIELD: &str = "serviceAccountDelegationInfo";
    let hops = match auth.get(FIELD) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(hops)) => hops,
        Some(other) => return Err(wrong(FIELD, "an array", other)),
    };
    Ok(hops
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|hop| {
            path_str(hop, &["firstPartyPrincipal", "principalEmail"])
                .or_else(|| path_str(hop, &["principalSubject"]))
                .or_else(|| path_str(hop, &["thirdPartyPrincipal", "thirdPartyClaims", "sub"]))
        })
        .map(EventText::from)
        .collect())
}

/// `status` is a `google.rpc.Status`; absent or code 0 is success.
fn outcome(payload: &Obj) -> Result<Outcome, DecodeError> {
    let Some(status) = opt_obj(payload, "status")? else {
        return Ok(Outcome::Success);
    };
    match status.get("code") {
        None | Some(Value::Null) => Ok(Outcome::Success),
        Some(Value::Number(n)) => Ok(match n.as_i64() {
            Some(0) => Outcome::Success,
            Some(PERMISSION_DENIED | UNAUTHENTICATED) => Outcome::Denied,
            _ => Outcome::Failure,
        }),
        Some(other) => {
            Err(DecodeError::WrongType { field: "status.code".into(), expected: "a number", found: type_name(other) })
        }
    }
}

/// The key id, the last segment of `projects/P/serviceAccounts/SA/keys/KEY` (or of the
/// `//iam.googleapis.com/...` form `serviceAccountKeyName` uses), so that the key named
/// by a call and by its deletion compare equal.
fn key_id(name: &str) -> String {
    name.rsplit_once("/keys/").map_or(name, |(_, key)| key).to_string()
}

fn lifecycle(entry: &Obj, event: &AccessEvent) -> Option<Result<Lifecycle, DecodeError>> {
    // `google.iam.admin.v1.DeleteServiceAccount` and bare `GenerateAccessToken` both occur.
    let method = event.action.rsplit('.').next().unwrap_or_default();
    match method {
        "DeleteServiceAccount" | "DisableServiceAccount" => {
            Some(account(entry, event).map(|identity| Lifecycle::IdentityOffboarded { identity }))
        }
        // A new account's resource name is its project's: only the label names it.
        "CreateServiceAccount" | "EnableServiceAccount" | "UndeleteServiceAccount" => {
            account(entry, event).ok().map(|identity| Ok(Lifecycle::IdentityActivated { identity }))
        }
        "DeleteServiceAccountKey" | "DisableServiceAccountKey" => Some(match &event.resource {
            Some(name) => Ok(Lifecycle::CredentialRevoked { credential_id: key_id(name) }),
            None => Err(DecodeError::MissingField("protoPayload.resourceName".into())),
        }),
        "EnableServiceAccountKey" => {
            event.resource.as_deref().map(|name| Ok(Lifecycle::CredentialActivated { credential_id: key_id(name) }))
        }
        "GenerateAccessToken" => {
            // The token itself is a secret and never logged; only its expiry is. The
            // issuing entry's id stands in for the token's id.
            let expiry = path_str(entry, &["protoPayload", "response", "expireTime"])?;
            let expires_at = super::fields::utc_time("protoPayload.response.expireTime", expiry, "an RFC 3339 time");
            Some(expires_at.map(|expires_at| Lifecycle::CredentialIssued {
                credential_id: event.event_id.to_string(),
                identity: account(entry, event).ok(),
                expires_at,
            }))
        }
        _ => None,
    }
}

/// The service account a call acts on: the monitored resource's `email_id`, else the
/// account segment of `projects/P/serviceAccounts/ACCOUNT[/...]`.
fn account(entry: &Obj, event: &AccessEvent) -> Result<String, DecodeError> {
    if let Some(email) = path_obj(entry, &["resource", "labels"]).and_then(|l| path_str(l, &["email_id"])) {
        return Ok(email.to_string());
    }
    event
        .resource
        .as_deref()
        .and_then(|name| name.split_once("serviceAccounts/"))
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|account| !account.is_empty())
        .map(str::to_string)
        .ok_or(DecodeError::MissingField("protoPayload.resourceName".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing;
    use crate::model::Record;
    use serde_json::json;

    fn entry(payload: Value) -> Value {
        json!({"insertId": "ins-1", "timestamp": "2026-03-02T10:00:00Z",
               "resource": {"type": "gcs_bucket", "labels": {"project_id": "acme-prod"}}, "protoPayload": payload})
    }

    fn dec(v: Value) -> Decoded {
        testing::run(decode, v)
    }

    fn access_of(v: Value) -> AccessEvent {
        testing::first_access(decode, v)
    }

    #[test]
    fn impersonation_chain_is_outermost_first() {
        let e = access_of(entry(json!({
            "serviceName": "storage.googleapis.com", "methodName": "storage.objects.get",
            "resourceName": "projects/_/buckets/b/objects/o",
            "authenticationInfo": {
                "principalEmail": "deployer@acme-prod.iam.gserviceaccount.com",
                "serviceAccountKeyName": "//iam.googleapis.com/projects/acme-prod/serviceAccounts/x/keys/abc123",
                "serviceAccountDelegationInfo": [
                    {"firstPartyPrincipal": {"principalEmail": "alice@acme.com"}},
                    {"firstPartyPrincipal": {"principalEmail": "broker@acme-prod.iam.gserviceaccount.com"}},
                    {}
                ]},
            "requestMetadata": {"callerIp": "10.1.2.3", "callerSuppliedUserAgent": "gcloud/460"}
        })));
        assert_eq!(e.identity, "deployer@acme-prod.iam.gserviceaccount.com");
        assert_eq!(e.identity_type.as_deref(), Some("serviceAccount"));
        assert_eq!(e.on_behalf_of.as_deref(), Some("alice@acme.com"));
        assert_eq!(
            e.chain,
            vec![
                "deployer@acme-prod.iam.gserviceaccount.com",
                "broker@acme-prod.iam.gserviceaccount.com",
                "alice@acme.com"
            ]
        );
        assert_eq!(e.credential_id.as_deref(), Some("abc123"));
        assert_eq!(e.environment.as_deref(), Some("acme-prod"));
        assert_eq!(e.source_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(e.event_id, "ins-1");
    }

    #[test]
    fn region_is_the_most_specific_location_and_a_zone_counts_as_its_region() {
        let cases = [
            (json!({"zone": "us-central1-f"}), json!(null), Some("us-central1")),
            (json!({"zone": "us-central1-f", "region": "europe-west1"}), json!(null), Some("us-central1")),
            (json!({"region": "asia-northeast2", "location": "asia"}), json!(null), Some("asia-northeast2")),
            (json!({"zone": "", "location": "europe-west1"}), json!(null), Some("europe-west1")),
            (json!({"location": "US"}), json!(null), Some("us")),
            (json!({"location": "global"}), json!(null), Some("global")),
            (json!({"location": "nam4"}), json!(null), Some("nam4")),
            // Not a zone: the suffix is more than one letter, or what precedes it is no region.
            (json!({"location": "us-central1-ab"}), json!(null), Some("us-central1-ab")),
            (json!({"location": "us-central-a"}), json!(null), Some("us-central-a")),
            (json!({}), json!({"currentLocations": ["europe-north1-a"]}), Some("europe-north1")),
            (json!({"location": "us"}), json!({"currentLocations": ["us-east1"]}), Some("us")),
            (json!({}), json!("..."), None),
            (json!({}), json!({"currentLocations": [5]}), None),
            (json!({"zone": 3}), json!(null), None),
            (json!({}), json!(null), None),
        ];
        for (labels, location, expected) in cases {
            let mut v = entry(json!({"serviceName": "s", "methodName": "m", "resourceLocation": location,
                "authenticationInfo": {"principalEmail": "a@b.c"}}));
            v["resource"]["labels"] = labels.clone();
            assert_eq!(access_of(v).region.as_deref(), expected, "{labels} {location}");
        }
    }

    #[test]
    fn outcome_from_status_code() {
        let cases = [
            (json!(null), Outcome::Success),
            (json!({}), Outcome::Success),
            (json!({"code": 0}), Outcome::Success),
            (json!({"code": 7, "message": "PERMISSION_DENIED"}), Outcome::Denied),
            (json!({"code": 16}), Outcome::Denied),
            (json!({"code": 5}), Outcome::Failure),
        ];
        for (status, expected) in cases {
            let e = access_of(entry(json!({"serviceName": "s", "methodName": "m", "status": status,
                "authenticationInfo": {"principalEmail": "a@b.c"}})));
            assert_eq!(e.outcome, expected, "{status}");
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        let auth = json!({"principalEmail": "a@b.c"});
        let cases = [
            (json!({"timestamp": "2026-03-02T10:00:00Z"}), "missing required field `protoPayload`"),
            (
                entry(json!({"serviceName": "s", "methodName": "m"})),
                "missing required field `protoPayload.authenticationInfo`",
            ),
            (
                entry(json!({"serviceName": "s", "methodName": "m", "authenticationInfo": {}})),
                "missing required field `protoPayload.authenticationInfo.principalEmail`",
            ),
            (
                entry(json!({"methodName": "m", "authenticationInfo": auth})),
                "missing required field `protoPayload.serviceName`",
            ),
            (
                entry(
                    json!({"serviceName": "s", "methodName": "m", "authenticationInfo": auth, "status": {"code": "7"}}),
                ),
                "field `protoPayload.status.code` has the wrong type: expected a number, found a string",
            ),
            (
                json!({"protoPayload": {"serviceName": "s", "methodName": "m", "authenticationInfo": auth}}),
                "missing required field `timestamp`",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(dec(input)[0].as_ref().unwrap_err().to_string(), reason);
        }
    }

    #[test]
    fn lifecycle_facts() {
        let admin = json!({"principalEmail": "admin@acme.com"});
        let call = |method: &str, resource: &str, extra: Value| {
            let payload = json!({"serviceName": "iam.googleapis.com", "methodName": method,
                                 "resourceName": resource, "authenticationInfo": admin});
            entry(testing::with(payload, extra))
        };
        let sa = "projects/acme-prod/serviceAccounts/ci@acme-prod.iam.gserviceaccount.com";
        let cases = [
            (
                call("google.iam.admin.v1.DeleteServiceAccount", sa, json!({})),
                Some(Lifecycle::IdentityOffboarded { identity: "ci@acme-prod.iam.gserviceaccount.com".into() }),
            ),
            (
                call("google.iam.admin.v1.EnableServiceAccount", sa, json!({})),
                Some(Lifecycle::IdentityActivated { identity: "ci@acme-prod.iam.gserviceaccount.com".into() }),
            ),
            // Created, the account is named only by the entry's resource labels.
            (call("google.iam.admin.v1.CreateServiceAccount", "projects/acme-prod", json!({})), None),
            (
                call("google.iam.admin.v1.DisableServiceAccountKey", &format!("{sa}/keys/k1"), json!({})),
                Some(Lifecycle::CredentialRevoked { credential_id: "k1".into() }),
            ),
            (
                call("google.iam.admin.v1.EnableServiceAccountKey", &format!("{sa}/keys/k1"), json!({})),
                Some(Lifecycle::CredentialActivated { credential_id: "k1".into() }),
            ),
            (
                call(
                    "GenerateAccessToken",
                    "projects/-/serviceAccounts/ci@acme-prod.iam.gserviceaccount.com",
                    json!({"response": {"expireTime": "2026-03-02T11:00:00Z"}}),
                ),
                Some(Lifecycle::CredentialIssued {
                    credential_id: "ins-1".into(),
                    identity: Some("ci@acme-prod.iam.gserviceaccount.com".into()),
                    expires_at: 1772449200000,
                }),
            ),
            (call("GenerateAccessToken", sa, json!({})), None),
            (call("google.iam.admin.v1.DeleteServiceAccount", sa, json!({"status": {"code": 7}})), None),
        ];
        for (input, expected) in cases {
            let facts: Vec<Lifecycle> = dec(input)
                .into_iter()
                .filter_map(|r| match r {
                    Ok(Record::Lifecycle { fact, .. }) => Some(*fact),
                    _ => None,
                })
                .collect();
            assert_eq!(facts, expected.into_iter().collect::<Vec<_>>());
        }
    }
}
