//! AWS CloudTrail: one record per line, or a log file object `{"Records": [...]}` as
//! AWS writes it to S3. See `docs/formats.md` for the field mapping.

use super::fields::{
    derived_id, first_str, in_range, opt_str, opt_string, parse_utc_time, path_obj, path_str, req_obj, req_str,
    req_utc_time, type_name, Obj,
};
use super::{access_with_lifecycle, DecodeError, Decoded};
use crate::model::{AccessEvent, EventText, Lifecycle, Millis, Outcome};
use compact_str::format_compact;
use serde_json::Value;

/// Request parameters that name the resource of a call, most specific first. `bucketName`
/// is handled before these because it combines with `key` into an S3 ARN.
const RESOURCE_PARAMETERS: [&str; 17] = [
    "functionName",
    "tableName",
    "secretId",
    "roleArn",
    "roleName",
    "userName",
    "queueUrl",
    "topicArn",
    "keyId",
    "policyArn",
    "logGroupName",
    "stackName",
    "clusterName",
    "dbInstanceIdentifier",
    "trailName",
    "resourceArn",
    "name",
];

/// STS calls whose response carries temporary credentials.
const ISSUING_CALLS: [&str; 5] =
    ["AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML", "GetSessionToken", "GetFederationToken"];

/// Decodes one line: a single record, or every record of a log file object. A bad
/// record inside `Records` rejects that record only, its path prefixed (`Records[3].eventName`).
pub fn decode(obj: &Obj) -> Decoded {
    let Some(records) = obj.get("Records") else {
        return decode_record(obj);
    };
    let Value::Array(records) = records else {
        return vec![Err(DecodeError::WrongType {
            field: "Records".into(),
            expected: "an array",
            found: type_name(records),
        })];
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let at = format!("Records[{i}]");
        match record.as_object() {
            Some(record) => out.extend(decode_record(record).into_iter().map(|r| r.map_err(|e| e.within(&at)))),
            None => {
                out.push(Err(DecodeError::WrongType { field: at, expected: "an object", found: type_name(record) }))
            }
        }
    }
    out
}

fn decode_record(obj: &Obj) -> Decoded {
    access_with_lifecycle(access(obj), |event| lifecycle(obj, event))
}

/// The fast path for one CloudTrail record on a line: parse straight into the
/// fields the decoder reads, borrowed from the line, without building a JSON tree
/// (a tree of every record was two thirds of a CloudTrail replay). Every value it
/// does not read is still parsed as the tree would (see `typed`), so it takes only
/// lines the general path accepts. It returns `None` whenever the record needs the
/// general path, which then decides (and words any error) exactly as for every
/// other record: a field missing, empty where required or of another type (also
/// where the general path would skip it), a `Records` key, no `eventID` (its
/// derived id hashes the tree), web identity claims (read in key order there), or
/// a call that may state a lifecycle fact.
pub fn decode_fast(text: &str) -> Option<AccessEvent> {
    use super::flat::{FromFlat, Reader};
    use super::typed::{json_object, present, Checked, Given, Text};

    json_object! {
        Record<'a> {
            user_identity: Option<User<'a>> = "userIdentity",
            source_identity: Option<Text<'a>> = "sourceIdentity",
            event_id: Option<Text<'a>> = "eventID",
            event_time: Option<Text<'a>> = "eventTime",
            event_source: Option<Text<'a>> = "eventSource",
            event_name: Option<Text<'a>> = "eventName",
            resources: Option<Resources<'a>> = "resources",
            request_parameters: Option<Parameters<'a>> = "requestParameters",
            recipient_account_id: Option<Text<'a>> = "recipientAccountId",
            aws_region: Option<Text<'a>> = "awsRegion",
            source_ip_address: Option<Text<'a>> = "sourceIPAddress",
            user_agent: Option<Text<'a>> = "userAgent",
            error_code: Option<Text<'a>> = "errorCode",
            records: Given = "Records",
        }
    }

    json_object! {
        User<'a> {
            kind: Option<Text<'a>> = "type",
            arn: Option<Text<'a>> = "arn",
            principal_id: Option<Text<'a>> = "principalId",
            invoked_by: Option<Text<'a>> = "invokedBy",
            access_key_id: Option<Text<'a>> = "accessKeyId",
            session_context: Option<SessionContext<'a>> = "sessionContext",
        }
    }

    json_object! {
        SessionContext<'a> {
            source_identity: Option<Text<'a>> = "sourceIdentity",
            session_issuer: Option<Arn<'a>> = "sessionIssuer",
            web_id_federation_data: Option<WebIdentity<'a>> = "webIdFederationData",
        }
    }

    json_object! {
        Arn<'a> {
            arn: Option<Text<'a>> = "arn",
        }
    }

    json_object! {
        WebIdentity<'a> {
            federated_provider: Option<Text<'a>> = "federatedProvider",
            attributes: Option<Checked> = "attributes",
        }
    }

    json_object! {
        Resource<'a> {
            arn: Option<Text<'a>> = "ARN",
        }
    }

    json_object! {
        /// `bucketName`, `key`, then `RESOURCE_PARAMETERS` in their order.
        Parameters<'a> {
            bucket_name: Option<Text<'a>> = "bucketName",
            key: Option<Text<'a>> = "key",
            function_name: Option<Text<'a>> = "functionName",
            table_name: Option<Text<'a>> = "tableName",
            secret_id: Option<Text<'a>> = "secretId",
            role_arn: Option<Text<'a>> = "roleArn",
            role_name: Option<Text<'a>> = "roleName",
            user_name: Option<Text<'a>> = "userName",
            queue_url: Option<Text<'a>> = "queueUrl",
            topic_arn: Option<Text<'a>> = "topicArn",
            key_id: Option<Text<'a>> = "keyId",
            policy_arn: Option<Text<'a>> = "policyArn",
            log_group_name: Option<Text<'a>> = "logGroupName",
            stack_name: Option<Text<'a>> = "stackName",
            cluster_name: Option<Text<'a>> = "clusterName",
            db_instance_identifier: Option<Text<'a>> = "dbInstanceIdentifier",
            trail_name: Option<Text<'a>> = "trailName",
            resource_arn: Option<Text<'a>> = "resourceArn",
            name: Option<Text<'a>> = "name",
        }
    }

    impl Parameters<'_> {
        /// What `resource` reads from the parameters, in the same order.
        fn resource(&self) -> Option<EventText> {
            if let Some(bucket) = present(&self.bucket_name) {
                return Some(s3_arn(bucket, present(&self.key)));
            }
            let named = [
                &self.function_name,
                &self.table_name,
                &self.secret_id,
                &self.role_arn,
                &self.role_name,
                &self.user_name,
                &self.queue_url,
                &self.topic_arn,
                &self.key_id,
                &self.policy_arn,
                &self.log_group_name,
                &self.stack_name,
                &self.cluster_name,
                &self.db_instance_identifier,
                &self.trail_name,
                &self.resource_arn,
                &self.name,
            ];
            named.into_iter().find_map(present).map(EventText::from)
        }
    }

    /// The first listed resource's ARN, without collecting the list. Every element
    /// must be an object whose `ARN` is a string or absent: the general path skips
    /// any other, so such a list steps aside.
    struct Resources<'a>(Option<Text<'a>>);

    impl<'de: 'a, 'a> serde::Deserialize<'de> for Resources<'a> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct List<'a>(std::marker::PhantomData<&'a str>);
            impl<'de: 'a, 'a> serde::de::Visitor<'de> for List<'a> {
                type Value = Resources<'a>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an array of resources")
                }
                fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Resources<'a>, S::Error> {
                    let mut first = None;
                    while let Some(resource) = seq.next_element::<Resource>()? {
                        if first.is_none() && present(&resource.arn).is_some() {
                            first = resource.arn;
                        }
                    }
                    Ok(Resources(first))
                }
            }
            d.deserialize_seq(List(std::marker::PhantomData))
        }
    }

    impl<'a> FromFlat<'a> for Resources<'a> {
        fn from_flat(at: &mut Reader<'a>) -> Option<Self> {
            let mut first = None;
            at.array(|at| {
                let resource = Resource::from_flat(at)?;
                if first.is_none() && present(&resource.arn).is_some() {
                    first = resource.arn;
                }
                Some(())
            })?;
            Some(Resources(first))
        }
    }

    let record: Record = super::typed::read(text)?;
    let user = record.user_identity?;
    let context = user.session_context.as_ref();
    let web = context.and_then(|c| c.web_id_federation_data.as_ref());
    if record.records.0 || web.is_some_and(|w| w.attributes.is_some()) {
        return None;
    }
    let target = present(&record.event_source)?;
    let action = present(&record.event_name)?;
    if fact_call(target, action).is_some() {
        return None;
    }
    let time = present(&record.event_time).and_then(parse_utc_time).filter(|t| crate::time::in_range(*t))?;
    let identity_type = present(&user.kind);
    let assumed_role = identity_type == Some("AssumedRole");
    let issuer = context.and_then(|c| c.session_issuer.as_ref()).and_then(|i| present(&i.arn));
    let identity = if assumed_role {
        issuer.map(EventText::from).or_else(|| present(&user.arn).and_then(role_arn))?
    } else {
        [&user.arn, &user.principal_id, &user.invoked_by].into_iter().find_map(present)?.into()
    };
    let on_behalf_of = present(&record.source_identity)
        .or_else(|| context.and_then(|c| present(&c.source_identity)))
        .map(EventText::from);
    // As `access`: outermost first.
    let mut chain = Vec::new();
    chain.extend(present(&user.invoked_by).filter(|by| *by != identity).map(EventText::from));
    chain.extend(issuer.map(EventText::from));
    chain.extend(web.and_then(|w| present(&w.federated_provider)).map(EventText::from));
    chain.extend(on_behalf_of.clone());
    let listed = record.resources.as_ref().and_then(|r| present(&r.0)).map(EventText::from);
    let owned = |t: &Option<Text>| present(t).map(EventText::from);
    Some(AccessEvent {
        event_id: owned(&record.event_id)?,
        time,
        identity,
        identity_type: identity_type.map(EventText::from),
        on_behalf_of,
        chain,
        grant_id: None,
        credential_id: owned(&user.access_key_id),
        credential_expires_at: None,
        target: target.into(),
        action: action.into(),
        resource: listed.or_else(|| record.request_parameters.as_ref().and_then(Parameters::resource)),
        environment: owned(&record.recipient_account_id),
        region: owned(&record.aws_region),
        session_id: if assumed_role { [&user.arn, &user.principal_id].into_iter().find_map(owned) } else { None },
        source_ip: owned(&record.source_ip_address),
        user_agent: owned(&record.user_agent),
        outcome: present(&record.error_code).map_or(Outcome::Success, error_outcome),
    })
}

fn access(obj: &Obj) -> Result<AccessEvent, DecodeError> {
    let user = req_obj(obj, "userIdentity")?;
    let in_user = |e: DecodeError| e.within("userIdentity");
    let identity_type = opt_str(user, "type").map_err(in_user)?;
    let assumed_role = identity_type == Some("AssumedRole");
    let identity = principal(user, assumed_role).map_err(in_user)?;

    let on_behalf_of = match opt_str(obj, "sourceIdentity")? {
        Some(source) => Some(source.into()),
        None => {
            path_str(user, &["sessionContext", "sourceIdentity"]).map(EventText::from).or_else(|| web_subject(user))
        }
    };

    // Outermost (nearest the call) first: the service that made the call for the
    // principal, the role or user that issued the session, the web identity provider,
    // and last the person or workload on whose behalf it all runs.
    let mut chain = Vec::new();
    chain.extend(path_str(user, &["invokedBy"]).filter(|by| *by != identity).map(EventText::from));
    chain.extend(path_str(user, &["sessionContext", "sessionIssuer", "arn"]).map(EventText::from));
    chain.extend(path_str(user, &["sessionContext", "webIdFederationData", "federatedProvider"]).map(EventText::from));
    chain.extend(on_behalf_of.clone());

    // The session ARN (`assumed-role/ROLE/SESSION`) groups the calls of one role session.
    let session_id = if assumed_role { first_str(user, &["arn", "principalId"]).map(EventText::from) } else { None };

    Ok(AccessEvent {
        event_id: opt_string(obj, "eventID")?.unwrap_or_else(|| derived_id(obj)),
        time: req_utc_time(obj, "eventTime")?,
        identity,
        identity_type: identity_type.map(EventText::from),
        on_behalf_of,
        chain,
        grant_id: None,
        credential_id: opt_string(user, "accessKeyId").map_err(in_user)?,
        credential_expires_at: None,
        target: req_str(obj, "eventSource")?.into(),
        action: req_str(obj, "eventName")?.into(),
        resource: resource(obj),
        environment: opt_string(obj, "recipientAccountId")?,
        region: opt_string(obj, "awsRegion")?,
        session_id,
        source_ip: opt_string(obj, "sourceIPAddress")?,
        user_agent: opt_string(obj, "userAgent")?,
        outcome: opt_str(obj, "errorCode")?.map_or(Outcome::Success, error_outcome),
    })
}

/// The delegate: the role behind an assumed-role session (so all its sessions share one
/// baseline), else the principal itself. Errors name fields inside `userIdentity`.
fn principal(user: &Obj, assumed_role: bool) -> Result<EventText, DecodeError> {
    if assumed_role {
        return path_str(user, &["sessionContext", "sessionIssuer", "arn"])
            .map(EventText::from)
            .or_else(|| path_str(user, &["arn"]).and_then(role_arn))
            .ok_or_else(|| DecodeError::MissingField("sessionContext.sessionIssuer.arn".into()));
    }
    for field in ["arn", "principalId", "invokedBy"] {
        if let Some(principal) = opt_str(user, field)? {
            return Ok(principal.into());
        }
    }
    Err(DecodeError::MissingField("arn".into()))
}

/// Maps an assumed-role session ARN `arn:aws:sts::ACCT:assumed-role/NAME/SESSION` to the
/// role ARN `arn:aws:iam::ACCT:role/NAME`. A role's path is not in the session ARN, so
/// a role under a path comes out without it.
pub(crate) fn role_arn(session_arn: &str) -> Option<EventText> {
    let (prefix, rest) = session_arn.split_once(":assumed-role/")?;
    let (service, account) = prefix.rsplit_once(':')?;
    let partition = service.strip_prefix("arn:")?.strip_suffix(":sts:")?;
    let role = rest.split('/').next().filter(|r| !r.is_empty())?;
    Some(format_compact!("arn:{partition}:iam::{account}:role/{role}"))
}

/// The subject claim of a web identity token (`...:sub`, e.g. GitHub's
/// `repo:ORG/REPO:ref:refs/heads/main`): the workload the role acts for.
fn web_subject(user: &Obj) -> Option<EventText> {
    let attributes = path_obj(user, &["sessionContext", "webIdFederationData", "attributes"])?;
    attributes
        .iter()
        .find(|(claim, _)| claim.as_str() == "sub" || claim.ends_with(":sub"))
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty())
        .map(EventText::from)
}

/// The first `resources[].ARN`, else the call's main request parameter.
fn resource(obj: &Obj) -> Option<EventText> {
    let listed = obj
        .get("resources")
        .and_then(Value::as_array)
        .and_then(|resources| resources.iter().find_map(|r| r.as_object().and_then(|r| path_str(r, &["ARN"]))));
    if let Some(arn) = listed {
        return Some(arn.into());
    }
    let params = path_obj(obj, &["requestParameters"])?;
    if let Some(bucket) = path_str(params, &["bucketName"]) {
        return Some(s3_arn(bucket, path_str(params, &["key"])));
    }
    first_str(params, &RESOURCE_PARAMETERS).map(EventText::from)
}

/// The ARN of an S3 bucket, or of an object in it, from the names a call's parameters give.
fn s3_arn(bucket: &str, key: Option<&str>) -> EventText {
    match key {
        Some(key) => format_compact!("arn:aws:s3:::{bucket}/{key}"),
        None => format_compact!("arn:aws:s3:::{bucket}"),
    }
}

/// Classifies an error code: refusals of authorization are `denied`, anything else
/// (throttling, validation, missing entity) is a `failure`.
pub(crate) fn error_outcome(code: &str) -> Outcome {
    if ["AccessDenied", "Unauthorized", "Forbidden"].iter().any(|word| code.contains(word)) {
        Outcome::Denied
    } else {
        Outcome::Failure
    }
}

/// The calls whose success may state a lifecycle fact.
#[derive(Clone, Copy)]
enum FactCall {
    CreateRole,
    CreateUser,
    DeleteRole,
    DeleteUser,
    DeleteAccessKey,
    UpdateAccessKey,
    IssueCredentials,
}

fn fact_call(target: &str, action: &str) -> Option<FactCall> {
    match (target, action) {
        ("iam.amazonaws.com", "CreateRole") => Some(FactCall::CreateRole),
        ("iam.amazonaws.com", "CreateUser") => Some(FactCall::CreateUser),
        ("iam.amazonaws.com", "DeleteRole") => Some(FactCall::DeleteRole),
        ("iam.amazonaws.com", "DeleteUser") => Some(FactCall::DeleteUser),
        ("iam.amazonaws.com", "DeleteAccessKey") => Some(FactCall::DeleteAccessKey),
        ("iam.amazonaws.com", "UpdateAccessKey") => Some(FactCall::UpdateAccessKey),
        ("sts.amazonaws.com", call) if ISSUING_CALLS.contains(&call) => Some(FactCall::IssueCredentials),
        _ => None,
    }
}

/// The lifecycle fact a successful call states, if any.
fn lifecycle(obj: &Obj, event: &AccessEvent) -> Option<Result<Lifecycle, DecodeError>> {
    match fact_call(&event.target, &event.action)? {
        // Only a named creation states a fact; one that names nothing is no reason to reject.
        FactCall::CreateRole => activated(obj, "role", "roleName"),
        FactCall::CreateUser => activated(obj, "user", "userName"),
        FactCall::DeleteRole => Some(offboarded(obj, "role", "roleName")),
        FactCall::DeleteUser => Some(offboarded(obj, "user", "userName")),
        FactCall::DeleteAccessKey => Some(revoked_key(obj)),
        FactCall::UpdateAccessKey => match path_str(obj, &["requestParameters", "status"]) {
            Some("Inactive") => Some(revoked_key(obj)),
            Some("Active") => {
                let key = path_str(obj, &["requestParameters", "accessKeyId"])?;
                Some(Ok(Lifecycle::CredentialActivated { credential_id: key.to_string() }))
            }
            _ => None,
        },
        FactCall::IssueCredentials => {
            // A console sign-in or a redacted record carries no credentials: no fact.
            let credentials = path_obj(obj, &["responseElements", "credentials"])?;
            Some(issued(obj, credentials, event))
        }
    }
}

fn activated(obj: &Obj, kind: &str, name_parameter: &str) -> Option<Result<Lifecycle, DecodeError>> {
    let identity = iam_identity(obj, kind, name_parameter).ok()?;
    Some(Ok(Lifecycle::IdentityActivated { identity }))
}

fn offboarded(obj: &Obj, kind: &str, name_parameter: &str) -> Result<Lifecycle, DecodeError> {
    iam_identity(obj, kind, name_parameter).map(|identity| Lifecycle::IdentityOffboarded { identity })
}

/// The ARN (without a path) of the role or user a `CreateRole`, `DeleteUser` ... names.
fn iam_identity(obj: &Obj, kind: &str, name_parameter: &str) -> Result<String, DecodeError> {
    let params = req_obj(obj, "requestParameters")?;
    let name = req_str(params, name_parameter).map_err(|e| e.within("requestParameters"))?;
    let account = req_str(obj, "recipientAccountId")?;
    Ok(format!("arn:aws:iam::{account}:{kind}/{name}"))
}

fn revoked_key(obj: &Obj) -> Result<Lifecycle, DecodeError> {
    let params = req_obj(obj, "requestParameters")?;
    let key = req_str(params, "accessKeyId").map_err(|e| e.within("requestParameters"))?;
    Ok(Lifecycle::CredentialRevoked { credential_id: key.to_string() })
}

/// Reads only the key id and the expiry: `sessionToken` and `secretAccessKey` are
/// secrets and are never touched.
fn issued(obj: &Obj, credentials: &Obj, event: &AccessEvent) -> Result<Lifecycle, DecodeError> {
    const AT: &str = "responseElements.credentials";
    let credential_id = req_str(credentials, "accessKeyId").map_err(|e| e.within(AT))?.to_string();
    let expiration = req_str(credentials, "expiration").map_err(|e| e.within(AT))?;
    let field = format!("{AT}.expiration");
    let expires_at = parse_expiration(expiration).ok_or_else(|| DecodeError::InvalidValue {
        field: field.clone(),
        reason: format!("expected a time like `Jan 18, 2021, 8:46:52 PM` or RFC 3339, found {expiration:?}"),
    })?;
    let expires_at = in_range(&field, expires_at, &format_args!("{expiration:?}"))?;
    let identity = path_str(obj, &["responseElements", "assumedRoleUser", "arn"])
        .and_then(role_arn)
        .map(String::from)
        .or_else(|| path_str(obj, &["requestParameters", "roleArn"]).map(str::to_string))
        .or_else(|| path_str(obj, &["responseElements", "federatedUser", "arn"]).map(str::to_string))
        .or_else(|| (event.action == "GetSessionToken").then(|| event.identity.to_string()));
    Ok(Lifecycle::CredentialIssued { credential_id, identity, expires_at })
}

/// CloudTrail writes STS expirations as `Jan 18, 2021, 8:46:52 PM` (UTC), sometimes as RFC 3339.
fn parse_expiration(s: &str) -> Option<Millis> {
    parse_utc_time(s).or_else(|| {
        chrono::NaiveDateTime::parse_from_str(s, "%b %d, %Y, %I:%M:%S %p").ok().map(|t| t.and_utc().timestamp_millis())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing;
    use crate::model::Record;
    use serde_json::json;

    fn dec(v: Value) -> Decoded {
        testing::run(decode, v)
    }

    fn access_of(v: Value) -> AccessEvent {
        testing::first_access(decode, v)
    }

    fn base(user: Value) -> Value {
        json!({"eventTime": "2026-03-02T10:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
               "eventID": "ev-1", "recipientAccountId": "111122223333", "userIdentity": user})
    }

    #[test]
    fn identity_by_user_type() {
        let cases = [
            (
                json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/deployer/run-42",
                       "principalId": "AROAEXAMPLE:run-42",
                       "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/ci/deployer"}}}),
                "arn:aws:iam::111122223333:role/ci/deployer",
                Some("arn:aws:sts::111122223333:assumed-role/deployer/run-42"),
            ),
            (
                // No session issuer: the role comes from the session ARN.
                json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/deployer/run-42"}),
                "arn:aws:iam::111122223333:role/deployer",
                Some("arn:aws:sts::111122223333:assumed-role/deployer/run-42"),
            ),
            (
                json!({"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/etl", "principalId": "AIDAEXAMPLE"}),
                "arn:aws:iam::111122223333:user/etl",
                None,
            ),
            (json!({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}), "lambda.amazonaws.com", None),
            (json!({"type": "AWSAccount", "principalId": "AIDAEXAMPLE:lambda"}), "AIDAEXAMPLE:lambda", None),
        ];
        for (user, identity, session) in cases {
            let e = access_of(base(user));
            assert_eq!(e.identity, identity);
            assert_eq!(e.session_id.as_deref(), session);
        }
    }

    #[test]
    fn web_identity_subject_is_the_delegator() {
        let e = access_of(base(json!({
            "type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/gha/GitHubActions",
            "invokedBy": "athena.amazonaws.com",
            "sessionContext": {
                "sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/gha"},
                "webIdFederationData": {
                    "federatedProvider": "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com",
                    "attributes": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                   "token.actions.githubusercontent.com:sub": "repo:acme/web:ref:refs/heads/main"}}}
        })));
        assert_eq!(e.on_behalf_of.as_deref(), Some("repo:acme/web:ref:refs/heads/main"));
        assert_eq!(
            e.chain,
            vec![
                "athena.amazonaws.com",
                "arn:aws:iam::111122223333:role/gha",
                "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com",
                "repo:acme/web:ref:refs/heads/main",
            ]
        );
    }

    #[test]
    fn source_identity_wins_over_the_web_subject() {
        let mut v = base(json!({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s",
            "sessionContext": {"sourceIdentity": "alice", "webIdFederationData": {"attributes": {"sub": "x"}}}}));
        assert_eq!(access_of(v.clone()).on_behalf_of.as_deref(), Some("alice"));
        v["sourceIdentity"] = json!("bob");
        assert_eq!(access_of(v).on_behalf_of.as_deref(), Some("bob"));
    }

    #[test]
    fn outcome_from_error_code() {
        let cases = [
            (None, Outcome::Success),
            (Some(""), Outcome::Success),
            (Some("AccessDenied"), Outcome::Denied),
            (Some("Client.UnauthorizedOperation"), Outcome::Denied),
            (Some("VpceAccessDenied"), Outcome::Denied),
            (Some("Forbidden"), Outcome::Denied),
            (Some("NoSuchEntity"), Outcome::Failure),
            (Some("ThrottlingException"), Outcome::Failure),
        ];
        for (code, outcome) in cases {
            let mut v = base(json!({"type": "IAMUser", "arn": "arn:aws:iam::1:user/u"}));
            if let Some(code) = code {
                v["errorCode"] = json!(code);
            }
            assert_eq!(access_of(v).outcome, outcome, "{code:?}");
        }
    }

    #[test]
    fn resource_from_resources_or_parameters() {
        let cases = [
            (json!({"resources": [{"ARN": "arn:aws:s3:::b/k"}, {"ARN": "arn:aws:s3:::b"}]}), Some("arn:aws:s3:::b/k")),
            (json!({"requestParameters": {"bucketName": "b", "key": "a/b.txt"}}), Some("arn:aws:s3:::b/a/b.txt")),
            (json!({"requestParameters": {"bucketName": "b"}}), Some("arn:aws:s3:::b")),
            (json!({"requestParameters": {"functionName": "f", "name": "n"}}), Some("f")),
            (json!({"requestParameters": {"secretId": "prod/db"}}), Some("prod/db")),
            (json!({"resources": ["not an object"], "requestParameters": {"name": 5}}), None),
            (json!({"requestParameters": null}), None),
        ];
        for (extra, expected) in cases {
            let v = testing::with(base(json!({"type": "IAMUser", "arn": "arn:aws:iam::1:user/u"})), extra);
            assert_eq!(access_of(v).resource.as_deref(), expected);
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        let user = json!({"type": "IAMUser", "arn": "arn:aws:iam::1:user/u"});
        let cases = [
            (
                json!({"eventTime": "2026-03-02T10:00:00Z", "eventName": "x", "userIdentity": user}),
                "missing required field `eventSource`",
            ),
            (
                json!({"eventTime": "2026-03-02T10:00:00Z", "eventSource": "s", "eventName": "x"}),
                "missing required field `userIdentity`",
            ),
            (
                json!({"eventTime": "soon", "eventSource": "s", "eventName": "x", "userIdentity": user}),
                "field `eventTime`: expected an RFC 3339 or `YYYY-MM-DD HH:MM:SS` UTC time, found \"soon\"",
            ),
            (
                json!({"eventTime": "2026-03-02T10:00:00Z", "eventSource": "s", "eventName": "x", "userIdentity": {"type": "Root"}}),
                "missing required field `userIdentity.arn`",
            ),
            (
                json!({"eventTime": "2026-03-02T10:00:00Z", "eventSource": "s", "eventName": "x", "userIdentity": {"type": "AssumedRole"}}),
                "missing required field `userIdentity.sessionContext.sessionIssuer.arn`",
            ),
            (
                json!({"eventTime": "2026-03-02T10:00:00Z", "eventSource": "s", "eventName": "x", "userIdentity": {"arn": 7}}),
                "field `userIdentity.arn` has the wrong type: expected a string, found a number",
            ),
            (json!({"Records": {}}), "field `Records` has the wrong type: expected an array, found an object"),
            (json!({"Records": [user, 3]}), "missing required field `Records[0].userIdentity`"),
        ];
        for (input, reason) in cases {
            let out = dec(input);
            assert_eq!(out[0].as_ref().unwrap_err().to_string(), reason);
        }
    }

    #[test]
    fn a_bad_record_in_a_log_file_rejects_only_itself() {
        let good = base(json!({"type": "IAMUser", "arn": "arn:aws:iam::1:user/u"}));
        let out = dec(json!({"Records": [good, 3, {"eventTime": "2026-03-02T10:00:00Z"}, good]}));
        let reasons: Vec<String> =
            out.iter().map(|r| r.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into())).collect();
        assert_eq!(
            reasons,
            vec![
                "ok",
                "field `Records[1]` has the wrong type: expected an object, found a number",
                "missing required field `Records[2].userIdentity`",
                "ok",
            ]
        );
    }

    fn lifecycle_of(v: Value) -> Vec<Result<Lifecycle, String>> {
        dec(v)
            .into_iter()
            .skip(1)
            .map(|r| match r {
                Ok(Record::Lifecycle { fact, .. }) => Ok(*fact),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => Err(e.to_string()),
            })
            .collect()
    }

    fn iam_call(name: &str, params: Value) -> Value {
        let mut v = base(json!({"type": "IAMUser", "arn": "arn:aws:iam::1:user/admin"}));
        v["eventSource"] = json!("iam.amazonaws.com");
        v["eventName"] = json!(name);
        v["requestParameters"] = params;
        v
    }

    #[test]
    fn lifecycle_facts_from_iam_calls() {
        let offboarded = |identity: &str| Ok(Lifecycle::IdentityOffboarded { identity: identity.into() });
        let activated = |identity: &str| Ok(Lifecycle::IdentityActivated { identity: identity.into() });
        let revoked = |key: &str| Ok(Lifecycle::CredentialRevoked { credential_id: key.into() });
        let cases = [
            (
                iam_call("DeleteRole", json!({"roleName": "deployer"})),
                vec![offboarded("arn:aws:iam::111122223333:role/deployer")],
            ),
            (
                iam_call("CreateRole", json!({"roleName": "deployer", "path": "/ci/"})),
                vec![activated("arn:aws:iam::111122223333:role/deployer")],
            ),
            (iam_call("CreateUser", json!({"userName": "etl"})), vec![activated("arn:aws:iam::111122223333:user/etl")]),
            (iam_call("CreateUser", Value::Null), vec![]),
            (
                iam_call("DeleteUser", json!({"userName": "etl"})),
                vec![offboarded("arn:aws:iam::111122223333:user/etl")],
            ),
            (iam_call("DeleteAccessKey", json!({"accessKeyId": "AKIAOLD"})), vec![revoked("AKIAOLD")]),
            (
                iam_call("UpdateAccessKey", json!({"accessKeyId": "AKIAOLD", "status": "Inactive"})),
                vec![revoked("AKIAOLD")],
            ),
            (
                iam_call("UpdateAccessKey", json!({"accessKeyId": "AKIAOLD", "status": "Active"})),
                vec![Ok(Lifecycle::CredentialActivated { credential_id: "AKIAOLD".into() })],
            ),
            (iam_call("UpdateAccessKey", json!({"status": "Active"})), vec![]),
            (
                iam_call("DeleteRole", json!({})),
                vec![Err("missing required field `requestParameters.roleName`".into())],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(lifecycle_of(input), expected);
        }
        let mut denied = iam_call("DeleteRole", json!({"roleName": "deployer"}));
        denied["errorCode"] = json!("AccessDenied");
        assert_eq!(lifecycle_of(denied), vec![], "a refused DeleteRole deleted nothing");
    }

    #[test]
    fn issued_credentials_never_copy_secrets() {
        let mut v = base(json!({"type": "IAMUser", "arn": "arn:aws:iam::1:user/admin"}));
        v["eventSource"] = json!("sts.amazonaws.com");
        v["eventName"] = json!("AssumeRole");
        v["requestParameters"] = json!({"roleArn": "arn:aws:iam::111122223333:role/path/deployer"});
        v["responseElements"] = json!({
            "assumedRoleUser": {"arn": "arn:aws:sts::111122223333:assumed-role/deployer/s1"},
            "credentials": {"accessKeyId": "ASIATEMP", "expiration": "Jan 18, 2021, 8:46:52 PM",
                            "sessionToken": "SECRET-TOKEN", "secretAccessKey": "SECRET-KEY"}});
        let out = dec(v.clone());
        let Some(Ok(Record::Lifecycle { event_id, fact, .. })) = out.get(1) else { panic!("no lifecycle in {out:?}") };
        assert_eq!(event_id, "ev-1:credential_issued");
        assert_eq!(
            &**fact,
            &Lifecycle::CredentialIssued {
                credential_id: "ASIATEMP".into(),
                identity: Some("arn:aws:iam::111122223333:role/deployer".into()),
                expires_at: 1611002812000,
            }
        );
        assert!(!format!("{out:?}").contains("SECRET"));

        v["responseElements"]["credentials"]["expiration"] = json!("2021-01-18T20:46:52Z");
        assert!(matches!(
            &lifecycle_of(v.clone())[..],
            [Ok(Lifecycle::CredentialIssued { expires_at: 1611002812000, .. })]
        ));
        v["responseElements"]["credentials"]["expiration"] = json!("Jan 01, 2019 0:00:00 PM");
        assert_eq!(
            lifecycle_of(v),
            vec![Err("field `responseElements.credentials.expiration`: expected a time like `Jan 18, 2021, 8:46:52 PM` or RFC 3339, found \"Jan 01, 2019 0:00:00 PM\"".into())]
        );
    }

    #[test]
    fn maps_session_arns_to_role_arns() {
        let cases = [
            ("arn:aws:sts::111122223333:assumed-role/deployer/s1", Some("arn:aws:iam::111122223333:role/deployer")),
            ("arn:aws-cn:sts::111122223333:assumed-role/deployer", Some("arn:aws-cn:iam::111122223333:role/deployer")),
            ("arn:aws:iam::111122223333:user/etl", None),
            ("arn:aws:sts::111122223333:assumed-role/", None),
        ];
        for (input, expected) in cases {
            assert_eq!(role_arn(input).as_deref(), expected, "{input}");
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;

    /// The fixture records, and the records of the shared corpus when it is beside the repository.
    fn seeds() -> Vec<Value> {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let fixtures = read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudtrail.jsonl"));
        let corpus = read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/log-formats/aws_cloudtrail.jsonl"));
        let mut out: Vec<Value> = fixtures.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        out.extend(corpus.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("log").cloned()));
        out
    }

    /// The fast path gives exactly what the general path gives, or steps aside.
    /// Returns whether it took the line.
    fn agrees(line: &str) -> Result<bool, String> {
        let Some(fast) = decode_fast(line) else { return Ok(false) };
        let value: Value = serde_json::from_str(line).map_err(|e| format!("{e}: general path rejects {line}"))?;
        let general = decode(value.as_object().ok_or("not an object")?);
        match general.as_slice() {
            [Ok(crate::model::Record::Access(e))] if **e == fast => Ok(true),
            other => Err(format!("fast {fast:?}\ngeneral {other:?}\nline {line}")),
        }
    }

    #[test]
    fn fast_path_agrees_with_the_general_path_on_every_seed() {
        let taken = seeds().iter().map(|v| agrees(&v.to_string()).unwrap()).filter(|&t| t).count();
        assert!(taken > 5, "only {taken} seed records took the fast path");
    }

    /// The simulator's records, like most real ones, have no escapes: the flat reader takes
    /// every one (nested objects and arrays included), and the fast path gives what the
    /// general path gives.
    #[test]
    fn the_flat_reader_takes_the_simulated_fleets_records() {
        use crate::simulate::{cloudtrail, generate, SimConfig};
        let sim = generate(&SimConfig { identities: 20, days: 2, seed: 7, ..SimConfig::default() });
        for event in &sim.events {
            let line = serde_json::to_string(&cloudtrail::record(event)).unwrap();
            assert!(crate::decode::flat::line::<crate::decode::typed::Checked>(&line).is_some(), "{line}");
            assert_eq!(agrees(&line), Ok(true), "{line}");
        }
        assert!(sim.events.len() > 100);
    }

    #[test]
    fn fast_path_steps_aside_for_what_only_the_general_path_reads_or_words() {
        let base = r#"{"eventTime":"2026-03-02T10:00:00Z","eventSource":"s3","eventName":"Get","eventID":"e","userIdentity":{"type":"IAMUser","arn":"u"}EXTRA}"#;
        assert!(decode_fast(&base.replace("EXTRA", "")).is_some());
        let aside = [
            r#","resources":[3]"#,
            r#","requestParameters":"x""#,
            r#","Records":[]"#,
            r#","Records":null"#,
            r#","userIdentity":{"arn":5}"#,
            r#","userIdentity":["IAMUser","u"]"#,
            r#","errorCode":7"#,
            r#","resources":[["arn:x"]]"#,
            r#","resources":[null]"#,
            r#","requestParameters":["b"]"#,
            r#","responseElements":{"n":1e400}"#,
            r#","eventVersion":-1e999"#,
            r#","other":"\ud800""#,
        ];
        for extra in aside {
            let line = base.replace("EXTRA", extra);
            assert!(decode_fast(&line).is_none(), "{extra}");
        }
        // The last of a repeated key wins, as in the tree.
        let twice = base.replace("EXTRA", r#","eventID":"f""#);
        assert_eq!(decode_fast(&twice).map(|e| e.event_id).as_deref(), Some("f"));
        assert_eq!(agrees(&twice), Ok(true));
        let without_id = base.replace(r#","eventID":"e""#, "").replace("EXTRA", "");
        assert!(decode_fast(&without_id).is_none());
        let deletes_a_role = base.replace(
            r#""eventSource":"s3","eventName":"Get""#,
            r#""eventSource":"iam.amazonaws.com","eventName":"DeleteRole""#,
        );
        assert!(decode_fast(&deletes_a_role.replace("EXTRA", "")).is_none());
        let array = r#"[{"type":"IAMUser","arn":"u"},null,"e","2026-03-02T10:00:00Z","s3","Get"]"#;
        assert!(decode_fast(array).is_none());
    }

    /// Places the decoder reads, and a few it does not.
    const PATHS: &[&[&str]] = &[
        &["eventID"],
        &["eventTime"],
        &["eventSource"],
        &["eventName"],
        &["sourceIdentity"],
        &["resources"],
        &["requestParameters"],
        &["requestParameters", "bucketName"],
        &["requestParameters", "key"],
        &["requestParameters", "name"],
        &["requestParameters", "functionName"],
        &["recipientAccountId"],
        &["awsRegion"],
        &["sourceIPAddress"],
        &["userAgent"],
        &["errorCode"],
        &["userIdentity"],
        &["userIdentity", "type"],
        &["userIdentity", "arn"],
        &["userIdentity", "principalId"],
        &["userIdentity", "invokedBy"],
        &["userIdentity", "accessKeyId"],
        &["userIdentity", "sessionContext"],
        &["userIdentity", "sessionContext", "sourceIdentity"],
        &["userIdentity", "sessionContext", "sessionIssuer"],
        &["userIdentity", "sessionContext", "sessionIssuer", "arn"],
        &["userIdentity", "sessionContext", "webIdFederationData"],
        &["userIdentity", "sessionContext", "webIdFederationData", "federatedProvider"],
        &["userIdentity", "sessionContext", "webIdFederationData", "attributes"],
        &["responseElements"],
        &["eventVersion"],
        &["Records"],
    ];

    fn set(value: &mut Value, path: &[&str], to: Option<Value>) {
        let (last, parents) = path.split_last().expect("a path");
        let mut cur = value;
        for key in parents {
            let Some(next) = cur.as_object_mut().and_then(|o| o.get_mut(*key)) else { return };
            cur = next;
        }
        if let Some(obj) = cur.as_object_mut() {
            match to {
                Some(v) => obj.insert(last.to_string(), v),
                None => obj.remove(*last),
            };
        }
    }

    fn replacement() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(Value::from(""))),
            Just(Some(Value::from(7))),
            Just(Some(serde_json::json!({"arn": "arn:aws:iam::1:role/r", "ARN": "x"}))),
            Just(Some(serde_json::json!([{"ARN": "arn:aws:s3:::b/k"}, 3]))),
            Just(Some(serde_json::json!(["arn:aws:iam::1:role/r", "x"]))),
            Just(Some(serde_json::json!({"deep": [1, {"n": -2.5e-3}], "s": "t"}))),
            Just(Some(Value::from("AssumedRole"))),
            Just(Some(Value::from("arn:aws:sts::1:assumed-role/r/s"))),
            Just(Some(Value::from("2026-03-02 10:00:00"))),
            Just(Some(Value::from("with \"escapes\" \\ and \u{e9}"))),
            ".{0,12}".prop_map(|s| Some(Value::from(s))),
        ]
    }

    proptest! {
        #[test]
        fn fast_path_agrees_on_mutated_records(
            seed in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), replacement()), 1..4),
        ) {
            let seeds = seeds();
            let mut record = seeds[seed.index(seeds.len())].clone();
            for (path, to) in edits {
                set(&mut record, PATHS[path.index(PATHS.len())], to);
            }
            prop_assert!(agrees(&record.to_string()).is_ok(), "{}", agrees(&record.to_string()).unwrap_err());
        }
    }
}
