//! Simulated events as CloudTrail records, mapped so that the project's CloudTrail
//! decoder reads back what matters to detection:
//!
//! | native field | CloudTrail |
//! |---|---|
//! | `identity` | `userIdentity.sessionContext.sessionIssuer.arn` (`AssumedRole`), `userIdentity.arn` (`IAMUser`) |
//! | `on_behalf_of` | `userIdentity.sessionContext.sourceIdentity` (also for IAM users) |
//! | `chain` | `userIdentity.invokedBy` (the hop nearest the identity) |
//! | `session_id` | the role session name in `userIdentity.arn` and `principalId` |
//! | `credential_id` | `userIdentity.accessKeyId` |
//! | `target`, `action` | `eventSource`, `eventName` |
//! | `resource` | `resources[0].ARN` |
//! | `outcome` | `errorCode` (`AccessDenied`, `ExpiredToken`) |
//! | `source_ip`, `user_agent`, `event_id`, `time` | `sourceIPAddress`, `userAgent`, `eventID`, `eventTime` |
//!
//! | `environment` | `recipientAccountId`: each environment is its own account |
//! | (`region`) | `awsRegion`: the resource ARN's region, else `us-east-1`. Simulated native events name no region; the decoder reads this one back as `region` |
//!
//! CloudTrail has no place for `grant_id`, `identity_type` or `credential_expires_at`:
//! grants match by identity, and an expired token shows as `ExpiredToken`. Because
//! the decoder names an environment by its account, [`grants`] rewrites the grants'
//! environments to account ids for a CloudTrail run.

use super::fleet;
use crate::model::{AccessEvent, Outcome};
use crate::time::format_rfc3339;
use serde_json::{json, Value};

/// The CloudTrail record AWS would write for this call.
pub fn record(e: &AccessEvent) -> Value {
    let account = arn_field(&e.identity, 4).unwrap_or("000000000000");
    let session = e.session_id.as_deref().unwrap_or("session");
    let mut user_identity = if e.identity.contains(":user/") {
        json!({
            "type": "IAMUser",
            "principalId": format!("AIDA{}", principal_suffix(&e.identity)),
            "arn": e.identity,
            "accountId": account,
            "accessKeyId": e.credential_id,
            "userName": e.identity.rsplit('/').next(),
        })
    } else {
        let role_name = e.identity.rsplit('/').next().unwrap_or("role");
        let role_id = format!("AROA{}", principal_suffix(&e.identity));
        json!({
            "type": "AssumedRole",
            "principalId": format!("{role_id}:{session}"),
            "arn": format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"),
            "accountId": account,
            "accessKeyId": e.credential_id,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": e.identity, "accountId": account, "userName": role_name},
                "attributes": {"creationDate": format_rfc3339(e.time), "mfaAuthenticated": "false"},
            },
        })
    };
    if let Some(delegator) = &e.on_behalf_of {
        user_identity["sessionContext"]["sourceIdentity"] = json!(delegator);
    }
    if let Some(hop) = e.chain.last() {
        user_identity["invokedBy"] = json!(hop);
    }
    // The account that received the call: the environment, as the decoder reads it.
    let recipient: &str = match e.environment.as_deref() {
        Some(environment) => fleet::account(environment),
        None => account,
    };
    let region = e.resource.as_deref().and_then(|r| arn_field(r, 3)).unwrap_or("us-east-1");
    let mut record = json!({
        "eventVersion": "1.09",
        "userIdentity": user_identity,
        "eventTime": format_rfc3339(e.time).replace(".000Z", "Z"),
        "eventSource": e.target,
        "eventName": e.action,
        "awsRegion": region,
        "sourceIPAddress": e.source_ip,
        "userAgent": e.user_agent,
        "requestParameters": null,
        "responseElements": null,
        "requestID": e.event_id.chars().rev().collect::<String>(),
        "eventID": e.event_id,
        "readOnly": is_read_only(&e.action),
        "eventType": "AwsApiCall",
        "managementEvent": !e.target.starts_with("s3."),
        "recipientAccountId": recipient,
    });
    if let Some(resource) = &e.resource {
        record["resources"] = json!([{"ARN": resource, "accountId": arn_field(resource, 4).filter(|a| !a.is_empty()).unwrap_or(account)}]);
    }
    match e.outcome {
        Outcome::Success => {}
        Outcome::Denied => {
            record["errorCode"] = json!("AccessDenied");
            record["errorMessage"] = json!(format!("User is not authorized to perform: {}", e.action));
        }
        Outcome::Failure => {
            record["errorCode"] = json!("ExpiredToken");
            record["errorMessage"] = json!("The security token included in the request is expired");
        }
    }
    record
}

/// The grants as a CloudTrail world states them: environments are account ids.
pub fn grants(grants: &[Value]) -> Vec<Value> {
    grants
        .iter()
        .map(|g| {
            let mut g = g.clone();
            if let Some(Value::Array(envs)) = g.pointer_mut("/scope/environments") {
                for env in envs.iter_mut() {
                    if let Some(name) = env.as_str() {
                        *env = json!(fleet::account(name));
                    }
                }
            }
            g
        })
        .collect()
}

/// The n-th `:`-separated field of an ARN (3 = region, 4 = account), if present.
fn arn_field(arn: &str, n: usize) -> Option<&str> {
    arn.strip_prefix("arn:")?.split(':').nth(n - 1)
}

/// A stable, IAM-looking unique id for a principal.
fn principal_suffix(arn: &str) -> String {
    let hash = arn.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    fleet::key_id("", hash)
}

fn is_read_only(action: &str) -> bool {
    ["Get", "List", "Describe", "Search", "Filter", "Query", "Scan"].iter().any(|p| action.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_an_assumed_role_call() {
        let e = AccessEvent {
            event_id: "e-1".into(),
            time: 1_772_445_600_000,
            identity: "arn:aws:iam::104729384756:role/ci/deploy-checkout-0001".into(),
            on_behalf_of: Some("github:acme/checkout".into()),
            chain: vec!["github:acme/checkout".into(), "oidc:token.actions.githubusercontent.com".into()],
            credential_id: Some("ASIAEXAMPLE".into()),
            target: "ecs.amazonaws.com".into(),
            action: "UpdateService".into(),
            resource: Some("arn:aws:ecs:eu-west-1:427365901834:service/prod/checkout".into()),
            session_id: Some("run-1".into()),
            environment: Some("prod".into()),
            source_ip: Some("10.20.1.10".into()),
            outcome: Outcome::Denied,
            ..AccessEvent::default()
        };
        let r = record(&e);
        assert_eq!(r["userIdentity"]["type"], "AssumedRole");
        assert_eq!(r["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"], e.identity.as_str());
        assert_eq!(r["userIdentity"]["sessionContext"]["sourceIdentity"], "github:acme/checkout");
        assert_eq!(r["userIdentity"]["arn"], "arn:aws:sts::104729384756:assumed-role/deploy-checkout-0001/run-1");
        assert_eq!(r["userIdentity"]["accessKeyId"], "ASIAEXAMPLE");
        assert_eq!(r["eventTime"], "2026-03-02T10:00:00Z");
        assert_eq!(r["awsRegion"], "eu-west-1");
        assert_eq!(r["resources"][0]["ARN"], "arn:aws:ecs:eu-west-1:427365901834:service/prod/checkout");
        assert_eq!(r["resources"][0]["accountId"], "427365901834");
        assert_eq!(r["errorCode"], "AccessDenied");
        assert_eq!(r["eventID"], "e-1");
        assert_eq!(r["recipientAccountId"], "427365901834");
    }

    #[test]
    fn grants_name_environments_by_account() {
        let g = json!({"kind": "grant", "scope": {"environments": ["staging", "prod"], "targets": ["s3"]}});
        let rewritten = grants(&[g]);
        assert_eq!(rewritten[0]["scope"]["environments"], json!(["318274659012", "427365901834"]));
        assert_eq!(rewritten[0]["scope"]["targets"], json!(["s3"]));
    }

    #[test]
    fn maps_an_iam_user_call() {
        let e = AccessEvent {
            identity: "arn:aws:iam::427365901834:user/integrations/zendesk-sync-0004".into(),
            target: "s3.amazonaws.com".into(),
            action: "GetObject".into(),
            resource: Some("arn:aws:s3:::acme-integrations/zendesk-sync-0004/inbound/a.csv".into()),
            ..AccessEvent::default()
        };
        let r = record(&e);
        assert_eq!(r["userIdentity"]["type"], "IAMUser");
        assert_eq!(r["userIdentity"]["arn"], e.identity.as_str());
        assert_eq!(r["resources"][0]["accountId"], "427365901834", "S3 ARNs carry no account");
        assert!(r.get("errorCode").is_none());
        assert_eq!(r["readOnly"], true);
    }
}
