//! The catalogue of sensitive operations: calls that stop or delete logging, create or
//! obtain credentials, create identities or trust, read secrets, expose data or systems
//! outside, run code elsewhere, or change who may do what.
//!
//! It is a data file, `data/sensitive-operations.toml`, embedded in the binary, so that each
//! entry can be reviewed against the public source it names and extended without touching
//! detection. A call is classified by its (target, action) as the decoders name them; see
//! `docs/sensitive-operations.md` for the classes, the file format and its sources.

use crate::grants::glob_match;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

const EMBEDDED: &str = include_str!("../data/sensitive-operations.toml");

/// Why an operation is sensitive. A closed set: alert text and the engine's weighting
/// match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveClass {
    Logging,
    Credentials,
    Identity,
    Secrets,
    Sharing,
    Execution,
    Policy,
}

impl SensitiveClass {
    pub const ALL: [SensitiveClass; 7] = [
        SensitiveClass::Logging,
        SensitiveClass::Credentials,
        SensitiveClass::Identity,
        SensitiveClass::Secrets,
        SensitiveClass::Sharing,
        SensitiveClass::Execution,
        SensitiveClass::Policy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SensitiveClass::Logging => "logging",
            SensitiveClass::Credentials => "credentials",
            SensitiveClass::Identity => "identity",
            SensitiveClass::Secrets => "secrets",
            SensitiveClass::Sharing => "sharing",
            SensitiveClass::Execution => "execution",
            SensitiveClass::Policy => "policy",
        }
    }

    /// What a call of this class does, as a phrase for alert text ("the call ...").
    pub fn description(self) -> &'static str {
        match self {
            SensitiveClass::Logging => "stops, deletes or weakens audit logging or security monitoring",
            SensitiveClass::Credentials => "creates or obtains credentials: keys, passwords, tokens or certificates",
            SensitiveClass::Identity => "creates users, roles or service accounts, or trust in outside identities",
            SensitiveClass::Secrets => "reads stored secrets",
            SensitiveClass::Sharing => {
                "exposes data or systems outside: shares snapshots or images, removes public access blocks, opens network access"
            }
            SensitiveClass::Execution => "runs code or commands elsewhere: on instances, containers, functions or jobs",
            SensitiveClass::Policy => "changes who may do what: identity, resource or key policies, role bindings",
        }
    }
}

impl fmt::Display for SensitiveClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SensitiveClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SensitiveClass::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            let names: Vec<_> = SensitiveClass::ALL.iter().map(|c| c.name()).collect();
            format!("unknown class `{s}`, expected one of {}", names.join(", "))
        })
    }
}

/// What the catalogue says about one call: its class, and the public source that puts it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sensitive<'a> {
    pub class: SensitiveClass,
    pub source: &'a str,
}

/// Why a catalogue was refused. Entries are counted from 0 in file order, so
/// `entry[3].actions[1]` is the second action of the fourth `[[entry]]`.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {source}")]
    InFile {
        path: String,
        #[source]
        source: Box<CatalogueError>,
    },
    #[error("not valid TOML: {0}")]
    Toml(String),
    #[error("`{key}`: {reason}")]
    TopLevel { key: String, reason: String },
    #[error("entry[{index}].{field}: {reason}")]
    Entry { index: usize, field: String, reason: String },
}

/// The sensitive operations, ready to classify calls.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Class and source of each entry, in file order.
    entries: Vec<Classification>,
    /// target → action → entry, for the names listed without a glob.
    exact: HashMap<String, HashMap<String, usize>>,
    /// Glob actions of an exact target, by target, in file order.
    globs_by_target: HashMap<String, Vec<GlobRule>>,
    /// Rules whose target is a glob, in file order.
    globs_any_target: Vec<GlobRule>,
}

#[derive(Debug)]
struct Classification {
    class: SensitiveClass,
    source: String,
}

#[derive(Debug)]
struct GlobRule {
    entry: usize,
    target: String,
    action: String,
}

/// The embedded catalogue, parsed on first use.
pub fn embedded() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    // The embedded file is loaded by the tests, so a fault in it fails them, not a run.
    CATALOGUE.get_or_init(|| Catalogue::from_toml(EMBEDDED).expect("the embedded sensitive-operations catalogue loads"))
}

impl Catalogue {
    /// A catalogue in the format of `data/sensitive-operations.toml`.
    pub fn from_toml(text: &str) -> Result<Catalogue, CatalogueError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| CatalogueError::Toml(e.to_string()))?;
        if let Some(key) = table.keys().find(|k| k.as_str() != "entry") {
            return Err(CatalogueError::TopLevel {
                key: key.clone(),
                reason: "unknown key, expected only `[[entry]]` tables".into(),
            });
        }
        let entries = match table.get("entry") {
            None => &[][..],
            Some(toml::Value::Array(entries)) => entries.as_slice(),
            Some(other) => {
                return Err(CatalogueError::TopLevel {
                    key: "entry".into(),
                    reason: format!("expected `[[entry]]` tables, found {}", other.type_str()),
                })
            }
        };
        let mut catalogue = Catalogue::default();
        for (index, value) in entries.iter().enumerate() {
            catalogue.add(index, Entry::parse(index, value)?)?;
        }
        Ok(catalogue)
    }

    /// A catalogue read from a file, errors prefixed with its path.
    pub fn from_path(path: &Path) -> Result<Catalogue, CatalogueError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CatalogueError::Read { path: shown.clone(), reason: e.to_string() })?;
        Catalogue::from_toml(&text).map_err(|e| CatalogueError::InFile { path: shown, source: Box::new(e) })
    }

    /// The class of a call, if the catalogue lists it: the first matching entry in file order.
    pub fn classify(&self, target: &str, action: &str) -> Option<Sensitive<'_>> {
        let index = match self.exact.get(target).and_then(|actions| actions.get(action)) {
            // Loading refuses an exact name that an earlier glob matches, so an exact hit is
            // the first match in file order.
            Some(&index) => index,
            None => self.first_glob(target, action)?.entry,
        };
        let entry = &self.entries[index];
        Some(Sensitive { class: entry.class, source: &entry.source })
    }

    fn first_glob(&self, target: &str, action: &str) -> Option<&GlobRule> {
        let same_target =
            self.globs_by_target.get(target).and_then(|rules| rules.iter().find(|r| glob_match(&r.action, action)));
        let any_target =
            self.globs_any_target.iter().find(|r| glob_match(&r.target, target) && glob_match(&r.action, action));
        same_target.into_iter().chain(any_target).min_by_key(|r| r.entry)
    }

    fn add(&mut self, index: usize, entry: Entry) -> Result<(), CatalogueError> {
        let Entry { target, actions, class, source } = entry;
        let (globs, exacts): (Vec<_>, Vec<_>) =
            actions.into_iter().enumerate().partition(|(_, action)| is_glob(&target) || is_glob(action));
        // This entry's globs go in first, so that an exact name one of them already covers
        // is refused like one an earlier entry covers.
        for (_, action) in globs {
            let rule = GlobRule { entry: index, target: target.clone(), action };
            if is_glob(&target) {
                self.globs_any_target.push(rule);
            } else {
                self.globs_by_target.entry(target.clone()).or_default().push(rule);
            }
        }
        for (i, action) in exacts {
            let fault = |reason: String| CatalogueError::Entry { index, field: format!("actions[{i}]"), reason };
            if let Some(earlier) = self.exact.get(&target).and_then(|a| a.get(&action)) {
                return Err(fault(format!("`{target}` `{action}` is already listed by entry[{earlier}]")));
            }
            if let Some(rule) = self.first_glob(&target, &action) {
                return Err(fault(format!(
                    "`{target}` `{action}` is already matched by `{}` `{}` of entry[{}]",
                    rule.target, rule.action, rule.entry
                )));
            }
            self.exact.entry(target.clone()).or_default().insert(action, index);
        }
        self.entries.push(Classification { class, source });
        Ok(())
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// One `[[entry]]`, checked.
struct Entry {
    target: String,
    actions: Vec<String>,
    class: SensitiveClass,
    source: String,
}

const FIELDS: [&str; 5] = ["provider", "target", "actions", "class", "source"];

impl Entry {
    fn parse(index: usize, value: &toml::Value) -> Result<Entry, CatalogueError> {
        let fault = |field: &str, reason: String| CatalogueError::Entry { index, field: field.into(), reason };
        let table = value.as_table().ok_or_else(|| CatalogueError::TopLevel {
            key: format!("entry[{index}]"),
            reason: format!("expected a table, found {}", value.type_str()),
        })?;
        if let Some(key) = table.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(fault(key, format!("unknown field, expected one of {}", FIELDS.join(", "))));
        }
        let text = |field: &str| match table.get(field) {
            None => Err(fault(field, "missing".into())),
            Some(toml::Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(fault(field, format!("expected a string, found {}", other.type_str()))),
        };

        let provider: Provider = text("provider")?.parse().map_err(|e| fault("provider", e))?;
        let class: SensitiveClass = text("class")?.parse().map_err(|e| fault("class", e))?;
        let target = text("target")?;
        provider.check(target, "a target").map_err(|e| fault("target", e))?;
        let actions = match table.get("actions") {
            None => return Err(fault("actions", "missing".into())),
            Some(toml::Value::Array(actions)) if actions.is_empty() => {
                return Err(fault("actions", "empty, expected at least one action".into()))
            }
            Some(toml::Value::Array(actions)) => actions,
            Some(other) => return Err(fault("actions", format!("expected an array, found {}", other.type_str()))),
        };
        let actions = actions
            .iter()
            .enumerate()
            .map(|(i, action)| {
                let field = format!("actions[{i}]");
                let action = action
                    .as_str()
                    .ok_or_else(|| fault(&field, format!("expected a string, found {}", action.type_str())))?;
                provider.check(action, "an action").map_err(|e| fault(&field, e))?;
                Ok(action.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let source = text("source")?;
        if !(source.contains("https://") || cites_attack(source)) {
            return Err(fault(
                "source",
                "expected an ATT&CK technique (T1234 or T1234.567) or an https:// documentation URL".into(),
            ));
        }
        Ok(Entry { target: target.to_string(), actions, class, source: source.to_string() })
    }
}

/// Whose log an entry is for. Used only to check names as that provider logs them: an
/// entry that no decoder's output can match would be silently dead.
#[derive(Debug, Clone, Copy)]
enum Provider {
    Aws,
    Gcp,
    Kubernetes,
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "aws" => Ok(Provider::Aws),
            "gcp" => Ok(Provider::Gcp),
            "kubernetes" => Ok(Provider::Kubernetes),
            _ => Err(format!("unknown provider `{s}`, expected one of aws, gcp, kubernetes")),
        }
    }
}

impl Provider {
    /// Checks a target (`what` is "a target") or an action name for this provider.
    fn check(self, name: &str, what: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("empty".into());
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{}` contains whitespace or a control character", name.escape_debug()));
        }
        let target = what == "a target";
        match self {
            Provider::Aws if target && !name.ends_with(".amazonaws.com") => {
                Err(format!("`{name}` is not a CloudTrail eventSource (`SERVICE.amazonaws.com`)"))
            }
            Provider::Gcp if target && !(name.ends_with(".googleapis.com") || name == "k8s.io") => {
                Err(format!("`{name}` is not a Cloud Audit serviceName (`SERVICE.googleapis.com` or `k8s.io`)"))
            }
            Provider::Kubernetes if target && !name.contains('/') => {
                Err(format!("`{name}` is not a Kubernetes target (`GROUP/RESOURCE[/SUBRESOURCE]`)"))
            }
            // The API server logs resources and verbs in lower case and matches them case
            // for case (`/api/v1/Secrets` is not the secrets resource), so an upper-case name
            // could never match and is refused rather than folded.
            Provider::Kubernetes if name.chars().any(|c| c.is_ascii_uppercase()) => {
                Err(format!("`{name}` has upper case; Kubernetes logs {what} in lower case"))
            }
            _ => Ok(()),
        }
    }
}

/// True when `text` names an ATT&CK Enterprise technique id (`T1234`, `T1234.567`).
fn cites_attack(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(5).enumerate().any(|(i, w)| {
        w.starts_with(b"T1")
            && w[2..].iter().all(u8::is_ascii_digit)
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SensitiveClass::*;

    fn entry(target: &str, actions: &str, class: &str) -> String {
        format!(
            "[[entry]]\nprovider = \"aws\"\ntarget = \"{target}\"\nactions = {actions}\nclass = \"{class}\"\nsource = \"ATT&CK T1098\"\n"
        )
    }

    #[test]
    fn the_embedded_catalogue_loads_and_covers_every_class() {
        let catalogue = embedded();
        assert!(catalogue.entries.len() > 50, "{} entries", catalogue.entries.len());
        for class in SensitiveClass::ALL {
            assert!(catalogue.entries.iter().any(|e| e.class == class), "no entry of class {class}");
        }
    }

    /// Loading already requires an ATT&CK id or a URL; the embedded file is held to more:
    /// every id is followed by the technique's name, and every URL is provider documentation.
    #[test]
    fn every_embedded_source_names_its_technique_or_provider_documentation() {
        const HOSTS: [&str; 3] =
            ["https://docs.aws.amazon.com/", "https://cloud.google.com/", "https://kubernetes.io/docs/"];
        for (i, entry) in embedded().entries.iter().enumerate() {
            let source = &entry.source;
            for part in source.split("; ") {
                if part.starts_with("https://") {
                    assert!(
                        HOSTS.iter().any(|h| part.starts_with(h)),
                        "entry[{i}]: {part} is not provider documentation"
                    );
                    continue;
                }
                let cited = part.strip_prefix("ATT&CK ").unwrap_or_else(|| panic!("entry[{i}]: {part:?}"));
                for technique in cited.split(", ") {
                    let (id, name) = technique.split_once(' ').unwrap_or_else(|| panic!("entry[{i}]: {technique:?}"));
                    assert!(cites_attack(id) && id.len() >= 5, "entry[{i}]: {id:?} is not a technique id");
                    assert!(
                        name.chars().next().is_some_and(char::is_uppercase),
                        "entry[{i}]: {technique:?} has no name"
                    );
                }
            }
        }
    }

    #[test]
    fn classifies_known_sensitive_operations() {
        let cases = [
            ("cloudtrail.amazonaws.com", "StopLogging", Logging),
            ("cloudtrail.amazonaws.com", "PutEventSelectors", Logging),
            ("logs.amazonaws.com", "DeleteLogGroup", Logging),
            ("bedrock.amazonaws.com", "DeleteModelInvocationLoggingConfiguration", Logging),
            ("wafv2.amazonaws.com", "DeleteLoggingConfiguration", Logging),
            ("guardduty.amazonaws.com", "DeleteDetector", Logging),
            ("logging.googleapis.com", "google.logging.v2.ConfigServiceV2.DeleteSink", Logging),
            ("core/events", "deletecollection", Logging),
            ("iam.amazonaws.com", "CreateAccessKey", Credentials),
            ("lightsail.amazonaws.com", "CreateBucketAccessKey", Credentials),
            ("cognito-idp.amazonaws.com", "AdminSetUserPassword", Credentials),
            ("sts.amazonaws.com", "GetFederationToken", Credentials),
            ("ec2.amazonaws.com", "GetPasswordData", Credentials),
            ("iamcredentials.googleapis.com", "GenerateAccessToken", Credentials),
            ("iamcredentials.googleapis.com", "google.iam.credentials.v1.SignBlob", Credentials),
            ("iam.googleapis.com", "google.iam.admin.v1.CreateServiceAccountKey", Credentials),
            ("core/serviceaccounts/token", "create", Credentials),
            ("certificates.k8s.io/certificatesigningrequests/approval", "update", Credentials),
            ("iam.amazonaws.com", "CreateUser", Identity),
            ("iam.amazonaws.com", "UpdateAssumeRolePolicy", Identity),
            ("rolesanywhere.amazonaws.com", "CreateTrustAnchor", Identity),
            ("ds.amazonaws.com", "CreateTrust", Identity),
            ("transfer.amazonaws.com", "CreateUser", Identity),
            ("organizations.amazonaws.com", "LeaveOrganization", Identity),
            ("core/serviceaccounts", "create", Identity),
            ("secretsmanager.amazonaws.com", "BatchGetSecretValue", Secrets),
            ("ssm.amazonaws.com", "GetParametersByPath", Secrets),
            (
                "secretmanager.googleapis.com",
                "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion",
                Secrets,
            ),
            ("core/secrets", "list", Secrets),
            ("k8s.io", "io.k8s.core.v1.secrets.get", Secrets),
            ("ec2.amazonaws.com", "ModifySnapshotAttribute", Sharing),
            ("rds.amazonaws.com", "ModifyDBClusterSnapshotAttribute", Sharing),
            ("elasticache.amazonaws.com", "AuthorizeCacheSecurityGroupIngress", Sharing),
            ("s3.amazonaws.com", "DeleteBucketPublicAccessBlock", Sharing),
            ("compute.googleapis.com", "v1.compute.images.setIamPolicy", Sharing),
            ("compute.googleapis.com", "beta.compute.firewalls.insert", Sharing),
            ("networking.k8s.io/ingresses", "create", Sharing),
            ("ssm.amazonaws.com", "SendCommand", Execution),
            ("ec2-instance-connect.amazonaws.com", "SendSSHPublicKey", Execution),
            ("lambda.amazonaws.com", "UpdateFunctionCode20150331v2", Execution),
            ("compute.googleapis.com", "v1.compute.instances.setMetadata", Execution),
            ("core/pods/exec", "create", Execution),
            ("core/nodes/proxy", "get", Execution),
            ("k8s.io", "io.k8s.core.v1.pods.exec.create", Execution),
            ("iam.amazonaws.com", "AttachRolePolicy", Policy),
            ("iam.amazonaws.com", "PutRolePermissionsBoundary", Policy),
            ("sso.amazonaws.com", "AttachManagedPolicyToPermissionSet", Policy),
            ("lambda.amazonaws.com", "AddPermission20150331v2", Policy),
            ("elasticfilesystem.amazonaws.com", "PutFileSystemPolicy", Policy),
            ("glacier.amazonaws.com", "SetVaultAccessPolicy", Policy),
            ("secretsmanager.amazonaws.com", "PutResourcePolicy", Policy),
            ("kms.amazonaws.com", "PutKeyPolicy", Policy),
            ("cloudresourcemanager.googleapis.com", "SetIamPolicy", Policy),
            ("iam.googleapis.com", "google.iam.admin.v1.SetIAMPolicy", Policy),
            ("k8s.io", "io.k8s.authorization.rbac.v1.clusterrolebindings.create", Policy),
            ("rbac.authorization.k8s.io/clusterrolebindings", "create", Policy),
            ("authorization.openshift.io/rolebindings", "patch", Policy),
            ("admissionregistration.k8s.io/validatingwebhookconfigurations", "delete", Policy),
        ];
        for (target, action, class) in cases {
            let found = embedded().classify(target, action).map(|s| s.class);
            assert_eq!(found, Some(class), "{target} {action}");
        }
    }

    /// What every workload does all day, and reads or near-misses of the names above.
    #[test]
    fn leaves_habitual_and_read_only_operations_alone() {
        let cases = [
            ("s3.amazonaws.com", "GetObject"),
            ("s3.amazonaws.com", "PutObject"),
            ("s3.amazonaws.com", "GetBucketPolicy"),
            ("ecr.amazonaws.com", "PutImage"),
            ("ecr.amazonaws.com", "PutLifecyclePolicy"),
            ("ecr.amazonaws.com", "GetAuthorizationToken"),
            ("sts.amazonaws.com", "GetCallerIdentity"),
            ("sts.amazonaws.com", "AssumeRole"),
            ("kms.amazonaws.com", "Decrypt"),
            ("logs.amazonaws.com", "PutLogEvents"),
            ("logs.amazonaws.com", "CreateLogStream"),
            ("cloudtrail.amazonaws.com", "LookupEvents"),
            ("cloudtrail.amazonaws.com", "GetEventSelectors"),
            ("iam.amazonaws.com", "GetRolePolicy"),
            ("iam.amazonaws.com", "ListAttachedRolePolicies"),
            ("iam.amazonaws.com", "DeleteLoginProfile"),
            ("autoscaling.amazonaws.com", "PutScalingPolicy"),
            ("ssm.amazonaws.com", "DescribeParameters"),
            ("ssm.amazonaws.com", "GetCommandInvocation"),
            ("secretsmanager.amazonaws.com", "DescribeSecret"),
            ("lambda.amazonaws.com", "GetFunction20150331v2"),
            ("ec2.amazonaws.com", "DescribeSnapshots"),
            ("ec2.amazonaws.com", "DescribeInstances"),
            ("dynamodb.amazonaws.com", "PutItem"),
            ("core/pods", "get"),
            ("core/pods", "list"),
            ("core/secrets", "delete"),
            ("core/configmaps", "get"),
            ("apps/deployments", "patch"),
            ("rbac.authorization.k8s.io/clusterroles", "get"),
            ("core/Secrets", "get"),
            ("storage.googleapis.com", "storage.objects.get"),
            ("storage.googleapis.com", "storage.objects.create"),
            ("cloudresourcemanager.googleapis.com", "GetIamPolicy"),
            ("logging.googleapis.com", "google.logging.v2.LoggingServiceV2.WriteLogEntries"),
            ("secretmanager.googleapis.com", "google.cloud.secretmanager.v1.SecretManagerService.GetSecret"),
            ("compute.googleapis.com", "v1.compute.instances.list"),
            ("k8s.io", "io.k8s.core.v1.pods.get"),
        ];
        for (target, action) in cases {
            assert_eq!(embedded().classify(target, action), None, "{target} {action}");
        }
    }

    #[test]
    fn the_first_matching_entry_in_file_order_wins() {
        let text = [
            entry("*.amazonaws.com", r#"["Delete*Log*"]"#, "logging"),
            entry("iam.amazonaws.com", r#"["Delete*", "CreateUser"]"#, "identity"),
        ]
        .concat();
        let catalogue = Catalogue::from_toml(&text).unwrap();
        let class = |t, a| catalogue.classify(t, a).map(|s| s.class);
        assert_eq!(class("iam.amazonaws.com", "DeleteLoginProfile"), Some(Logging));
        assert_eq!(class("iam.amazonaws.com", "DeleteRole"), Some(Identity));
        assert_eq!(class("iam.amazonaws.com", "CreateUser"), Some(Identity));
        assert_eq!(class("logs.amazonaws.com", "DeleteLogGroup"), Some(Logging));
        assert_eq!(class("logs.amazonaws.com", "CreateUser"), None);
        assert_eq!(catalogue.classify("iam.amazonaws.com", "CreateUser").unwrap().source, "ATT&CK T1098");
    }

    #[test]
    fn a_name_listed_twice_or_already_covered_is_refused() {
        let cases = [
            (
                [entry("iam.amazonaws.com", r#"["CreateUser"]"#, "identity"), entry("iam.amazonaws.com", r#"["CreateUser"]"#, "policy")]
                    .concat(),
                "entry[1].actions[0]: `iam.amazonaws.com` `CreateUser` is already listed by entry[0]",
            ),
            (
                [entry("*.amazonaws.com", r#"["Create*"]"#, "identity"), entry("iam.amazonaws.com", r#"["CreateUser"]"#, "policy")]
                    .concat(),
                "entry[1].actions[0]: `iam.amazonaws.com` `CreateUser` is already matched by `*.amazonaws.com` `Create*` of entry[0]",
            ),
            (
                entry("iam.amazonaws.com", r#"["CreateUser", "Create*"]"#, "identity"),
                "entry[0].actions[0]: `iam.amazonaws.com` `CreateUser` is already matched by `iam.amazonaws.com` `Create*` of entry[0]",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Catalogue::from_toml(&text).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn errors_name_the_entry_and_the_field() {
        let ok = entry("iam.amazonaws.com", r#"["CreateUser"]"#, "identity");
        let cases = [
            (
                ok.replace("class = \"identity\"", "class = \"persistence\""),
                "entry[0].class: unknown class `persistence`",
            ),
            (ok.replace("provider = \"aws\"", "provider = \"azure\""), "entry[0].provider: unknown provider `azure`"),
            (
                ok.replace("source = \"ATT&CK T1098\"", "source = \"seen in a blog\""),
                "entry[0].source: expected an ATT&CK",
            ),
            (ok.replace("source = \"ATT&CK T1098\"\n", ""), "entry[0].source: missing"),
            (ok.replace("[\"CreateUser\"]", "[]"), "entry[0].actions: empty"),
            (ok.replace("[\"CreateUser\"]", "\"CreateUser\""), "entry[0].actions: expected an array, found string"),
            (
                ok.replace("[\"CreateUser\"]", "[\"CreateUser\", 7]"),
                "entry[0].actions[1]: expected a string, found integer",
            ),
            (
                ok.replace("[\"CreateUser\"]", "[\"Create User\"]"),
                "entry[0].actions[0]: `Create User` contains whitespace",
            ),
            (ok.replace("iam.amazonaws.com", "iam"), "entry[0].target: `iam` is not a CloudTrail eventSource"),
            (ok.replace("class =", "sources = \"x\"\nclass ="), "entry[0].sources: unknown field"),
            (
                format!("{ok}{}", ok.replace("provider = \"aws\"", "provider = \"kubernetes\"")),
                "entry[1].target: `iam.amazonaws.com` is not a Kubernetes target",
            ),
            (
                ok.replace("provider = \"aws\"", "provider = \"kubernetes\"")
                    .replace("iam.amazonaws.com", "core/Secrets"),
                "entry[0].target: `core/Secrets` has upper case",
            ),
            (
                ok.replace("provider = \"aws\"", "provider = \"gcp\""),
                "entry[0].target: `iam.amazonaws.com` is not a Cloud Audit serviceName",
            ),
            ("version = 2\n".to_string(), "`version`: unknown key"),
            ("entry = 3\n".to_string(), "`entry`: expected `[[entry]]` tables, found integer"),
            ("[[entry]\n".to_string(), "not valid TOML"),
        ];
        for (text, want) in cases {
            let got = Catalogue::from_toml(&text).unwrap_err().to_string();
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn an_empty_catalogue_classifies_nothing() {
        let catalogue = Catalogue::from_toml("").unwrap();
        assert_eq!(catalogue.classify("cloudtrail.amazonaws.com", "StopLogging"), None);
    }

    #[test]
    fn reads_a_user_catalogue_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, entry("billing.amazonaws.com", r#"["PutContactInformation"]"#, "identity")).unwrap();
        let catalogue = Catalogue::from_path(&path).unwrap();
        assert_eq!(
            catalogue.classify("billing.amazonaws.com", "PutContactInformation").map(|s| s.class),
            Some(Identity)
        );

        std::fs::write(&path, "entry = 3\n").unwrap();
        let err = Catalogue::from_path(&path).unwrap_err().to_string();
        assert_eq!(err, format!("{}: `entry`: expected `[[entry]]` tables, found integer", path.display()));
        let missing = dir.path().join("absent.toml");
        assert!(Catalogue::from_path(&missing)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("cannot read {}", missing.display())));
    }

    #[test]
    fn class_names_round_trip() {
        for class in SensitiveClass::ALL {
            assert_eq!(class.name().parse::<SensitiveClass>(), Ok(class));
            assert_eq!(class.to_string(), class.name());
            assert_eq!(serde_json::to_value(class).unwrap(), serde_json::Value::from(class.name()));
            assert!(!class.description().is_empty());
        }
        assert!("Logging".parse::<SensitiveClass>().is_err());
    }

    #[test]
    fn attack_ids_are_recognised_only_as_ids() {
        for (text, want) in
            [("T1098", true), ("ATT&CK T1562.008 Impair", true), ("xT1098", false), ("T109", false), ("T0800", false)]
        {
            assert_eq!(cites_attack(text), want, "{text}");
        }
    }
}
