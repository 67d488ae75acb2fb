//! The sensitive-operations catalogue against real events, decoded by our own decoders so
//! that targets and actions are named as the engine sees them:
//! - the shared real-log corpus (`../shared/datasets/log-formats/`): every event that is
//!   sensitive by the class definitions is classified with its class, and no other is;
//! - the Stratus Red Team development set (`../shared/datasets/attacks/stratus-dev/`): which
//!   techniques the catalogue covers. The catalogue is built from the class definitions and
//!   public sources; these files only check it.

use overreach::decode::{decode_value, Format};
use overreach::model::Record;
use overreach::sensitive::{embedded, SensitiveClass, SensitiveClass::*};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn shared(parts: &[&str]) -> String {
    let path: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "..", "shared", "datasets"].into_iter().chain(parts.iter().copied()).collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("the shared dataset {} is needed by this test and could not be read: {e}", path.display())
    })
}

/// (target, action) of every access event the records decode to; rejected records are
/// skipped, as the engine never sees them.
fn calls(records: impl IntoIterator<Item = Value>, format: Format) -> Vec<(String, String)> {
    records
        .into_iter()
        .flat_map(|record| decode_value(&record, format))
        .filter_map(|decoded| match decoded {
            Ok(Record::Access(e)) => Some((e.target.to_string(), e.action.to_string())),
            _ => None,
        })
        .collect()
}

/// Panther's test events often carry no time; one is supplied so that the rest of each
/// event (its target and action) is decoded as it would be.
fn corpus(file: &str, time_field: &str) -> Vec<Value> {
    shared(&["log-formats", file])
        .lines()
        .map(|line| {
            let case: Value = serde_json::from_str(line).expect("corpus line is JSON");
            let mut log = case["log"].clone();
            if let Some(log) = log.as_object_mut() {
                log.entry(time_field).or_insert_with(|| "2026-03-02T10:00:00Z".into());
            }
            log
        })
        .collect()
}

/// A sensitive call as the engine would name it: (target, action, class).
type Expected<'a> = [(&'a str, &'a str, SensitiveClass)];

/// Checks that the corpus events classified are exactly `expected`, each with its class,
/// and that every expected call occurs in the decoded corpus (so that no row tests nothing).
/// `rejected` are sensitive calls of records our decoder rejects (Panther trimmed them to
/// a few fields): the engine never sees them, and they are checked by name only.
fn check_corpus(name: &str, calls: &[(String, String)], expected: &Expected, rejected: &Expected) {
    let expected: BTreeMap<(&str, &str), SensitiveClass> = expected.iter().map(|&(t, a, c)| ((t, a), c)).collect();
    let mut classified = BTreeSet::new();
    let mut faults = Vec::new();
    for (target, action) in calls {
        let found = embedded().classify(target, action).map(|s| s.class);
        let want = expected.get(&(target.as_str(), action.as_str())).copied();
        if found != want {
            faults.push(format!("{target} {action}: classified {found:?}, expected {want:?}"));
        }
        if found.is_some() {
            classified.insert((target.as_str(), action.as_str()));
        }
    }
    for call in expected.keys().filter(|call| !classified.contains(*call)) {
        faults.push(format!("{} {}: expected but not among the decoded events", call.0, call.1));
    }
    for &(target, action, class) in rejected {
        if calls.iter().any(|(t, a)| (t.as_str(), a.as_str()) == (target, action)) {
            faults.push(format!("{target} {action}: decodes, so it belongs with the expected calls"));
        }
        let found = embedded().classify(target, action).map(|s| s.class);
        if found != Some(class) {
            faults.push(format!("{target} {action} (rejected record): classified {found:?}, expected {class:?}"));
        }
    }
    faults.sort();
    faults.dedup();
    eprintln!("{name}: {} decoded events, {} distinct sensitive calls", calls.len(), classified.len());
    assert!(faults.is_empty(), "{name}:\n{}", faults.join("\n"));
}

#[test]
fn cloudtrail_corpus_events_are_classified_by_their_class() {
    #[rustfmt::skip]
    let expected = [
        ("bedrock.amazonaws.com", "DeleteModelInvocationLoggingConfiguration", Logging),
        ("cloudtrail.amazonaws.com", "DeleteRule", Logging),
        ("cloudtrail.amazonaws.com", "DeleteTrail", Logging),
        ("cloudtrail.amazonaws.com", "PutEventSelectors", Logging),
        ("cloudtrail.amazonaws.com", "StopLogging", Logging),
        ("cloudtrail.amazonaws.com", "UpdateTrail", Logging),
        ("config.amazonaws.com", "DeleteDeliveryChannel", Logging),
        ("config.amazonaws.com", "PutDeliveryChannel", Logging),
        ("ec2.amazonaws.com", "DeleteFlowLogs", Logging),
        // Panther's test event names the wrong service; by its name it changes logging.
        ("ec2.amazonaws.com", "PutBucketLogging", Logging),
        ("macie.amazonaws.com", "UpdateMacieSession", Logging),
        ("macie2.amazonaws.com", "UpdateMacieSession", Logging),
        ("route53resolver.amazonaws.com", "DeleteResolverQueryLogConfig", Logging),
        ("s3.amazonaws.com", "PutBucketLogging", Logging),
        ("securityhub.amazonaws.com", "DeleteInsight", Logging),
        ("securityhub.amazonaws.com", "UpdateFindings", Logging),
        ("ec2.amazonaws.com", "GetPasswordData", Credentials),
        ("iam.amazonaws.com", "ChangePassword", Credentials),
        ("iam.amazonaws.com", "CreateAccessKey", Credentials),
        ("iam.amazonaws.com", "CreateVirtualMFADevice", Credentials),
        ("iam.amazonaws.com", "UpdateLoginProfile", Credentials),
        ("signin.amazonaws.com", "GetSigninToken", Credentials),
        ("sso.amazonaws.com", "CreateToken", Credentials),
        ("sts.amazonaws.com", "GetSessionToken", Credentials),
        ("iam.amazonaws.com", "CreateRole", Identity),
        ("iam.amazonaws.com", "CreateSAMLProvider", Identity),
        ("iam.amazonaws.com", "CreateUser", Identity),
        ("iam.amazonaws.com", "UpdateAssumeRolePolicy", Identity),
        ("iam.amazonaws.com", "UpdateSAMLProvider", Identity),
        ("organizations.amazonaws.com", "LeaveOrganization", Identity),
        ("secretsmanager.amazonaws.com", "GetSecretValue", Secrets),
        ("ssm.amazonaws.com", "GetParameter", Secrets),
        ("ssm.amazonaws.com", "GetParameters", Secrets),
        ("codebuild.amazonaws.com", "UpdateProjectVisibility", Sharing),
        ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", Sharing),
        ("ec2.amazonaws.com", "CreateNetworkAclEntry", Sharing),
        ("ec2.amazonaws.com", "CreateTrafficMirrorFilter", Sharing),
        ("ec2.amazonaws.com", "CreateTrafficMirrorFilterRule", Sharing),
        ("ec2.amazonaws.com", "CreateTrafficMirrorSession", Sharing),
        ("ec2.amazonaws.com", "CreateTrafficMirrorTarget", Sharing),
        ("ec2.amazonaws.com", "ModifyImageAttribute", Sharing),
        ("ec2.amazonaws.com", "ModifySnapshotAttribute", Sharing),
        ("ec2.amazonaws.com", "ModifyTrafficMirrorSession", Sharing),
        ("rds.amazonaws.com", "AuthorizeDBSecurityGroupIngress", Sharing),
        ("rds.amazonaws.com", "ModifyDBSnapshotAttribute", Sharing),
        ("rds.amazonaws.com", "StartExportTask", Sharing),
        ("s3.amazonaws.com", "DeleteBucketPublicAccessBlock", Sharing),
        ("s3.amazonaws.com", "PutBucketAcl", Sharing),
        ("s3.amazonaws.com", "PutBucketPublicAccessBlock", Sharing),
        ("s3.amazonaws.com", "PutBucketReplication", Sharing),
        ("wafv2.amazonaws.com", "DisassociateWebACL", Sharing),
        ("codebuild.amazonaws.com", "CreateProject", Execution),
        ("ec2-instance-connect.amazonaws.com", "SendSSHPublicKey", Execution),
        ("ec2.amazonaws.com", "ModifyInstanceAttribute", Execution),
        ("ec2.amazonaws.com", "RunInstances", Execution),
        ("lambda.amazonaws.com", "UpdateFunctionCode20150331", Execution),
        ("lambda.amazonaws.com", "UpdateFunctionCode20150331v2", Execution),
        ("lambda.amazonaws.com", "UpdateFunctionConfiguration20150331v2", Execution),
        ("ssm.amazonaws.com", "SendCommand", Execution),
        ("ecr.amazonaws.com", "SetRepositoryPolicy", Policy),
        ("iam.amazonaws.com", "AttachRolePolicy", Policy),
        ("iam.amazonaws.com", "AttachUserPolicy", Policy),
        ("iam.amazonaws.com", "DeleteGroupPolicy", Policy),
        // Not a real IAM call (Panther's test event); `Put*Policy` covers it by its name.
        ("iam.amazonaws.com", "PutPolicy", Policy),
        ("iam.amazonaws.com", "PutUserPolicy", Policy),
        ("kms.amazonaws.com", "PutKeyPolicy", Policy),
        ("lambda.amazonaws.com", "AddPermission20150331", Policy),
        ("lambda.amazonaws.com", "AddPermission20150331v2", Policy),
        ("s3.amazonaws.com", "PutBucketPolicy", Policy),
        ("secretsmanager.amazonaws.com", "PutResourcePolicy", Policy),
    ];
    check_corpus(
        "aws_cloudtrail.jsonl",
        &calls(corpus("aws_cloudtrail.jsonl", "eventTime"), Format::Cloudtrail),
        &expected,
        &[],
    );
}

#[test]
fn gcp_corpus_events_are_classified_by_their_class() {
    #[rustfmt::skip]
    let expected = [
        ("logging.googleapis.com", "google.logging.v2.ConfigServiceV2.DeleteBucket", Logging),
        ("logging.googleapis.com", "google.logging.v2.ConfigServiceV2.DeleteSink", Logging),
        ("logging.googleapis.com", "google.logging.v2.ConfigServiceV2.UpdateSink", Logging),
        ("apikeys.googleapis.com", "google.api.apikeys.v2.ApiKeys.CreateKey", Credentials),
        ("iam.googleapis.com", "google.iam.admin.v1.CreateServiceAccountKey", Credentials),
        ("iamcredentials.googleapis.com", "GenerateAccessToken", Credentials),
        ("iamcredentials.googleapis.com", "SignJwt", Credentials),
        ("k8s.io", "io.k8s.certificates.v1.certificatesigningrequests.create", Credentials),
        ("admin.googleapis.com", "google.admin.AdminService.inboundSsoProfileCreated", Identity),
        ("admin.googleapis.com", "google.admin.AdminService.inboundSsoProfileUpdated", Identity),
        ("iam.googleapis.com", "google.iam.admin.v1.CreateServiceAccount", Identity),
        ("iam.googleapis.com", "google.iam.admin.v1.WorkforcePools.CreateWorkforcePool", Identity),
        ("iam.googleapis.com", "google.iam.admin.v1.WorkforcePools.UpdateWorkforcePool", Identity),
        ("iam.googleapis.com", "google.iam.v1.WorkloadIdentityPools.CreateWorkloadIdentityPoolProvider", Identity),
        ("iam.googleapis.com", "google.iam.v1.WorkloadIdentityPools.UpdateWorkloadIdentityPoolProvider", Identity),
        ("k8s.io", "io.k8s.core.v1.secrets.get", Secrets),
        ("k8s.io", "io.k8s.core.v1.secrets.list", Secrets),
        ("appengine.googleapis.com", "google.appengine.v1.Firewall.DeleteIngressRule", Sharing),
        ("compute.googleapis.com", "v1.compute.disks.setIamPolicy", Sharing),
        ("compute.googleapis.com", "v1.compute.firewalls.delete", Sharing),
        ("compute.googleapis.com", "v1.compute.firewalls.insert", Sharing),
        ("compute.googleapis.com", "v1.compute.firewalls.patch", Sharing),
        ("compute.googleapis.com", "v1.compute.images.setIamPolicy", Sharing),
        ("k8s.io", "io.k8s.networking.v1.ingresses.create", Sharing),
        ("cloudbuild.googleapis.com", "google.devtools.cloudbuild.v1.CloudBuild.CreateBuild", Execution),
        ("compute.googleapis.com", "beta.compute.instances.insert", Execution),
        ("compute.googleapis.com", "v1.compute.instances.insert", Execution),
        ("compute.googleapis.com", "v1.compute.instances.setMetadata", Execution),
        ("compute.googleapis.com", "v1.compute.projects.setCommonInstanceMetadata", Execution),
        ("k8s.io", "io.k8s.apps.v1.daemonsets.create", Execution),
        ("k8s.io", "io.k8s.batch.v1.cronjobs.create", Execution),
        ("k8s.io", "io.k8s.core.v1.pods.create", Execution),
        ("k8s.io", "io.k8s.core.v1.pods.exec.create", Execution),
        ("run.googleapis.com", "google.cloud.run.v1.Services.CreateService", Execution),
        ("admin.googleapis.com", "google.admin.AdminService.addGroupMember", Policy),
        ("cloudkms.googleapis.com", "SetIamPolicy", Policy),
        ("cloudresourcemanager.googleapis.com", "InsertProjectOwnershipInvite", Policy),
        ("cloudresourcemanager.googleapis.com", "SetIamPolicy", Policy),
        ("iam.googleapis.com", "google.iam.admin.v1.CreateRole", Policy),
        ("iam.googleapis.com", "google.iam.admin.v1.SetIAMPolicy", Policy),
        ("iap.googleapis.com", "google.cloud.iap.v1.IdentityAwareProxyAdminService.SetIamPolicy", Policy),
        ("k8s.io", "io.k8s.admissionregistration.v1.mutatingwebhookconfigurations.create", Policy),
        ("k8s.io", "io.k8s.rbac.v1.clusterrolebindings.create", Policy),
        ("k8s.io", "io.k8s.rbac.v1.clusterroles.create", Policy),
        ("k8s.io", "io.k8s.rbac.v1.roles.patch", Policy),
        ("run.googleapis.com", "google.cloud.run.v1.Services.SetIamPolicy", Policy),
        ("storage.googleapis.com", "storage.setIamPermissions", Policy),
    ];
    // Without `authenticationInfo`.
    let rejected = [
        ("deploymentmanager.googleapis.com", "v2.deploymentmanager.deployments.insert", Execution),
        ("us-central1-ssh-serialport.googleapis.com", "google.ssh-serialport.v1.connect", Execution),
    ];
    check_corpus(
        "gcp_audit.jsonl",
        &calls(corpus("gcp_audit.jsonl", "timestamp"), Format::GcpAudit),
        &expected,
        &rejected,
    );
}

#[test]
fn kubernetes_corpus_events_are_classified_by_their_class() {
    // Several of Panther's events leave out `objectRef.apiGroup`, so an RBAC resource is
    // decoded as `core/clusterroles`; the catalogue's `*/RESOURCE` targets cover both.
    #[rustfmt::skip]
    let expected = [
        ("core/certificatesigningrequests", "create", Credentials),
        ("core/serviceaccounts/token", "create", Credentials),
        ("core/serviceaccounts", "create", Identity),
        ("core/secrets", "get", Secrets),
        ("core/secrets", "list", Secrets),
        ("core/secrets", "watch", Secrets),
        ("core/ingresses", "create", Sharing),
        ("core/ingresses", "update", Sharing),
        ("networking.k8s.io/ingresses", "create", Sharing),
        ("core/cronjobs", "create", Execution),
        ("core/daemonsets", "create", Execution),
        ("core/pods", "create", Execution),
        ("core/pods/exec", "create", Execution),
        ("admissionregistration.k8s.io/mutatingwebhookconfigurations", "create", Policy),
        ("core/clusterrolebindings", "create", Policy),
        ("core/clusterroles", "create", Policy),
        ("core/clusterroles", "update", Policy),
        ("rbac.authorization.k8s.io/clusterrolebindings", "create", Policy),
        ("rbac.authorization.k8s.io/clusterroles", "create", Policy),
        ("rbac.authorization.k8s.io/clusterroles", "patch", Policy),
        ("rbac.authorization.k8s.io/clusterroles", "update", Policy),
        ("rbac.authorization.k8s.io/rolebindings", "create", Policy),
        ("rbac.authorization.k8s.io/roles", "create", Policy),
    ];
    // Without `user`.
    let rejected = [
        ("core/daemonsets", "update", Execution),
        ("core/mutatingwebhookconfigurations", "update", Policy),
        ("core/validatingwebhookconfigurations", "create", Policy),
    ];
    check_corpus(
        "k8s_audit.jsonl",
        &calls(corpus("k8s_audit.jsonl", "stageTimestamp"), Format::K8sAudit),
        &expected,
        &rejected,
    );
}

/// Which Stratus techniques have a call the catalogue classifies, and with what class. The
/// one left out, `aws.impact.bedrock-invoke-model`, is resource hijacking (ATT&CK T1496):
/// invoking a model, accepting its agreement and checking its availability read or use a
/// service, and fall in none of the classes; it is for the engine's other signals (a new
/// service, a new network, a burst) to catch.
#[test]
fn stratus_techniques_covered_by_the_catalogue() {
    #[rustfmt::skip]
    let expected: BTreeMap<&str, Vec<(&str, SensitiveClass)>> = [
        ("aws.credential-access.ec2-get-password-data", vec![("GetPasswordData", Credentials)]),
        ("aws.credential-access.secretsmanager-batch-retrieve-secrets", vec![("BatchGetSecretValue", Secrets)]),
        ("aws.credential-access.ssm-retrieve-securestring-parameters", vec![("GetParameters", Secrets)]),
        ("aws.defense-evasion.cloudtrail-event-selectors", vec![("PutEventSelectors", Logging)]),
        ("aws.defense-evasion.dns-delete-logs", vec![("DeleteResolverQueryLogConfig", Logging)]),
        ("aws.defense-evasion.vpc-remove-flow-logs", vec![("DeleteFlowLogs", Logging)]),
        ("aws.execution.ec2-launch-unusual-instances", vec![("RunInstances", Execution)]),
        ("aws.execution.ssm-send-command", vec![("SendCommand", Execution)]),
        ("aws.exfiltration.ec2-security-group-open-port-22-ingress", vec![("AuthorizeSecurityGroupIngress", Sharing)]),
        ("aws.exfiltration.ec2-share-ebs-snapshot", vec![("ModifySnapshotAttribute", Sharing)]),
        ("aws.impact.bedrock-invoke-model", vec![]),
        ("aws.lateral-movement.ec2-instance-connect", vec![("SendSSHPublicKey", Execution)]),
        ("aws.persistence.iam-backdoor-role", vec![("UpdateAssumeRolePolicy", Identity)]),
        ("aws.persistence.iam-create-admin-user", vec![("AttachUserPolicy", Policy), ("CreateAccessKey", Credentials), ("CreateUser", Identity)]),
        ("aws.persistence.iam-create-user-login-profile", vec![("CreateLoginProfile", Credentials)]),
        ("aws.persistence.lambda-layer-extension", vec![("UpdateFunctionConfiguration20150331v2", Execution)]),
        ("aws.persistence.rolesanywhere-create-trust-anchor", vec![("CreateProfile", Identity), ("CreateTrustAnchor", Identity)]),
        ("aws.privilege-escalation.iam-update-user-login-profile", vec![("UpdateLoginProfile", Credentials)]),
    ]
    .into_iter()
    .collect();

    let mut found = BTreeMap::new();
    for technique in expected.keys() {
        let text = shared(&["attacks", "stratus-dev", &format!("{technique}.json")]);
        let records: Vec<Value> = serde_json::from_str(&text).expect("a Stratus file is a JSON array");
        let calls = calls(records, Format::Cloudtrail);
        let classified: Vec<(&str, SensitiveClass)> = calls
            .iter()
            .filter_map(|(target, action)| embedded().classify(target, action).map(|s| (action.as_str(), s.class)))
            .collect();
        eprintln!("{technique}: {}/{} events sensitive", classified.len(), calls.len());
        let distinct: BTreeSet<(String, SensitiveClass)> =
            classified.iter().map(|&(a, c)| (a.to_string(), c)).collect();
        found.insert(*technique, distinct);
    }
    let expected: BTreeMap<&str, BTreeSet<(String, SensitiveClass)>> =
        expected.iter().map(|(t, calls)| (*t, calls.iter().map(|&(a, c)| (a.to_string(), c)).collect())).collect();
    assert_eq!(found, expected);
    let covered = found.values().filter(|calls| !calls.is_empty()).count();
    eprintln!("stratus-dev: {covered}/{} techniques have a sensitive call", found.len());
}
