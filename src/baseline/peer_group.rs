//! Peer groups: which identities are "of the same kind", for the fleet's
//! rollouts and for "no peer of its kind makes it" (`fleet`, `novel_call`,
//! `rare_transition`).
//!
//! A type label that says what an identity is for (`ci_pipeline`,
//! `ai_agent`) names its group, as it always did. A label that only says
//! what kind of principal the provider has (`AssumedRole`, `IAMUser`,
//! `serviceAccount`, ...) says nothing about purpose: CloudTrail gives every
//! role the same one, which made the whole fleet one group, diluted every
//! peer share to nothing and let any two identities anywhere make a
//! "rollout". Such identities, and those with no label, are grouped by the
//! stem of their name instead: organisations name machine identities after
//! what they do and number the copies (`role/ci/deploy-payments-0042`,
//! `role/agents/sre-agent-0012`, `system:serviceaccount:shop:worker-7f9c`,
//! `etl-7@proj-123.iam.gserviceaccount.com`). The stem keeps the words and
//! drops what varies between copies of one kind:
//!
//! - account ids and regions of an ARN, the session of an assumed-role ARN
//!   (so a role and its sessions are one name), the project of a GCP service
//!   account;
//! - numbers, numeric suffixes (`node07`, `agent-0012`) and random-looking
//!   ids (`4JL51Q6AU6SH`, `635426549a280cc6`, `7f9c`: a token with digits of 8
//!   or more characters, or of 4 or more hex digits);
//! - case, punctuation and characters that are not letters or digits.
//!
//! The group is a pure function of the first event of an identity, so it is
//! the same in one replay and across `--state-out`/`--state-in`, and it never
//! changes: the fleet's counts never have to move an identity. Bounded:
//! only the first `MAX_NAME_READ` bytes of a name are read and a group name
//! holds at most `MAX_GROUP_BYTES`, so a 10 kB name costs what a 512-byte one
//! does, and groups are never more than the identities held.
//!
//! A group's family (`peer_family`) is its parent: the role path, the
//! namespace, every service account of a provider. The fleet counts
//! rollouts and shares at both levels (`fleet::PeerGroups`).
//!
//! What a stem cannot see: two kinds under one naming scheme, or one kind
//! named at random. Shared repertoires (identities whose learned call sets
//! overlap) would catch those; they are not built yet.

use crate::text::printable;

/// Bytes of a name read for its stem.
const MAX_NAME_READ: usize = 512;
/// Longest group name kept, in bytes.
pub const MAX_GROUP_BYTES: usize = 128;
/// A token with digits this long or longer is an id, not a word.
const MIN_ID_TOKEN: usize = 8;

/// Labels that name a provider's kind of principal, not a purpose: every
/// role, user or service account of a provider has one of them (AWS
/// `userIdentity.type`, GCP and Kubernetes as the decoders set them, OCSF
/// `user.type`). Compared without case.
const GENERIC_TYPES: &[&str] = &[
    "AssumedRole",
    "IAMUser",
    "Root",
    "FederatedUser",
    "WebIdentityUser",
    "SAMLUser",
    "AWSService",
    "AWSAccount",
    "IdentityCenterUser",
    "Role",
    "User",
    "ServiceAccount",
    "Principal",
    "Admin",
    "System",
    "Service",
    "Other",
    "Unknown",
];

/// The peer group of an identity first seen with this name and type label.
pub fn peer_group(identity: &str, identity_type: Option<&str>) -> String {
    match identity_type.map(str::trim).filter(|t| !t.is_empty() && !is_generic(t)) {
        Some(label) => printable(label, MAX_GROUP_BYTES),
        None => name_stem(identity),
    }
}

/// The family of a group: the group without its last segment (a role's
/// path, `iam:role/ci` for `iam:role/ci/deploy-payments`; a service
/// account's namespace), or without the local part of an address (every
/// GCP service account); a group with neither (a purpose label) is its
/// own family.
pub fn peer_family(group: &str) -> &str {
    if let Some((parent, _)) = group.rsplit_once('/').filter(|(parent, _)| !parent.is_empty()) {
        return parent;
    }
    match group.find('@') {
        Some(at) if at > 0 => &group[at..],
        _ => group,
    }
}

fn is_generic(label: &str) -> bool {
    GENERIC_TYPES.iter().any(|g| g.eq_ignore_ascii_case(label))
}

/// The stem of an identity's name: its shape's fixed parts and its words,
/// without what tells copies of one kind apart (see the module doc). Empty
/// when the name has no words.
pub fn name_stem(name: &str) -> String {
    let name = head(name, MAX_NAME_READ);
    let mut stem = String::new();
    if let Some(arn) = name.strip_prefix("arn:") {
        stem_arn(arn, &mut stem);
    } else if let Some(account) = name.strip_prefix("system:serviceaccount:") {
        stem.push_str("k8s:serviceaccount:");
        stem_words(account, &mut stem);
    } else if let Some((local, domain)) = name.rsplit_once('@') {
        stem_words(local, &mut stem);
        match domain.split_once('.') {
            // A service account's project is an account id: drop it.
            Some((_project, "iam.gserviceaccount.com")) => stem.push_str("@iam.gserviceaccount.com"),
            _ => {
                stem.push('@');
                stem_words(domain, &mut stem);
            }
        }
    } else {
        stem_words(name, &mut stem);
    }
    let end = head(&stem, MAX_GROUP_BYTES).len();
    stem.truncate(end);
    stem
}

/// `partition:service:region:account:resource` → `service:resource`, with
/// an assumed-role session ARN read as its role (`assumed-role/R/S` is `role/R`).
fn stem_arn(arn: &str, stem: &mut String) {
    let mut parts = arn.splitn(5, ':');
    let (_partition, service) = (parts.next(), parts.next().unwrap_or(""));
    let resource = parts.nth(2).unwrap_or("");
    match resource.strip_prefix("assumed-role/") {
        Some(session) => {
            stem.push_str("iam:role/");
            stem_words(session.split('/').next().unwrap_or(""), stem);
        }
        None => {
            stem_words(service, stem);
            stem.push(':');
            stem_words(resource, stem);
        }
    }
}

/// Appends the words of `text`: segments split by `/` and `:` keep their
/// separators, words inside a segment are joined by `-`, and ids, numbers
/// and empty segments are left out.
fn stem_words(text: &str, stem: &mut String) {
    let mut first_segment = true;
    for segment in text.split(['/', ':']) {
        let mut words = segment.split(|c: char| !c.is_alphanumeric()).filter_map(word).peekable();
        if words.peek().is_none() {
            continue;
        }
        if !first_segment {
            stem.push('/');
        }
        first_segment = false;
        for (i, w) in words.enumerate() {
            if i > 0 {
                stem.push('-');
            }
            stem.extend(w.chars().flat_map(char::to_lowercase));
        }
    }
}

/// A token as a word of the stem, or `None` for a number or an id. A
/// trailing run of two or more digits is a copy's number (`node07`), while
/// one digit is often part of the name (`ec2`, `s3`, `k8s`).
fn word(token: &str) -> Option<&str> {
    let digits = token.chars().filter(char::is_ascii_digit).count();
    let hex = token.len() >= 4 && token.chars().all(|c| c.is_ascii_hexdigit());
    if token.is_empty() || digits == token.len() || (digits > 0 && (token.len() >= MIN_ID_TOKEN || hex)) {
        return None;
    }
    let kept = token.trim_end_matches(|c: char| c.is_ascii_digit());
    Some(if token.len() - kept.len() >= 2 { kept } else { token })
}

/// The first `max` bytes of `s`, cut on a character boundary.
fn head(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_one_kind_share_a_stem_across_real_name_shapes() {
        let cases: &[(&str, &str)] = &[
            // AWS: account, region and session dropped; paths and words kept.
            ("arn:aws:iam::104729384756:role/ci/deploy-payments-0042", "iam:role/ci/deploy-payments"),
            ("arn:aws:iam::427365901834:role/agents/sre-agent-0012", "iam:role/agents/sre-agent"),
            ("arn:aws:iam::427365901834:user/integrations/docusign-sync-0954", "iam:user/integrations/docusign-sync"),
            ("arn:aws:sts::012345678910:assumed-role/DevAdministrator/example_user", "iam:role/devadministrator"),
            ("arn:aws:sts::123456789012:assumed-role/okta/tester@domain.tld", "iam:role/okta"),
            (
                "arn:aws:iam::111222333444:role/panther-Panther-4JL51Q6AU6SH-LogAnal-CompactorRole-W1WCIV3PHU0S",
                "iam:role/panther-panther-loganal-compactorrole",
            ),
            (
                "arn:aws:iam::123123123123:role/aws-reserved/sso.amazonaws.com/us-west-2/AWSReservedSSO_DevAdmin_635426549a280cc6",
                "iam:role/aws-reserved/sso-amazonaws-com/us-west/awsreservedsso-devadmin",
            ),
            ("arn:aws:iam::0123456789:role/CodeBuild-US-East", "iam:role/codebuild-us-east"),
            // Kubernetes: namespace and name, a pod-template hash dropped.
            ("system:serviceaccount:kube-system:coredns", "k8s:serviceaccount:kube-system/coredns"),
            ("system:serviceaccount:shop:worker-7f9c", "k8s:serviceaccount:shop/worker"),
            ("system:node:ip-192-168-3-178.us-west-2.compute.internal", "system/node/ip-us-west-compute-internal"),
            // GCP: a service account's project is dropped, other domains kept.
            ("terraform@platform.iam.gserviceaccount.com", "terraform@iam.gserviceaccount.com"),
            ("test-no-perms@test-project-123456.iam.gserviceaccount.com", "test-no-perms@iam.gserviceaccount.com"),
            ("0000000000000@cloudbuild.gserviceaccount.com", "@cloudbuild-gserviceaccount-com"),
            ("john.doe@company.com", "john-doe@company-com"),
            // Entra service principals are plain names.
            ("very-normal-service-principal", "very-normal-service-principal"),
            // One digit is part of a name; two are a copy's number.
            ("ec2-runner-node07", "ec2-runner-node"),
        ];
        for (name, want) in cases {
            assert_eq!(name_stem(name), *want, "{name}");
        }
        let fleet = ["-0001", "-0002", "-0417"].map(|n| name_stem(&format!("arn:aws:iam::1:role/ci/deploy-x{n}")));
        assert!(fleet.iter().all(|s| *s == fleet[0]), "{fleet:?}");
    }

    #[test]
    fn hostile_names_give_bounded_stems() {
        assert_eq!(name_stem(""), "");
        assert_eq!(name_stem("123456789"), "");
        assert_eq!(name_stem("arn:"), ":");
        assert_eq!(name_stem("@@@"), "@");
        // Letters of any script are words; controls and symbols separate them.
        assert_eq!(name_stem("дев-Агент-0001"), "дев-агент");
        assert_eq!(name_stem("ci\u{1b}\u{202e}deploy\r\n-0001"), "ci-deploy");
        // 10 kB names: bounded, cut on a character boundary, and copies that
        // differ past what is read share a group.
        let long = "é".repeat(5000);
        let stem = name_stem(&long);
        assert!(stem.len() <= MAX_GROUP_BYTES && stem.chars().all(|c| c == 'é'), "{}", stem.len());
        let a = name_stem(&format!("{}-a", "w".repeat(10_000)));
        let b = name_stem(&format!("{}-b", "w".repeat(10_000)));
        assert!(a == b && a.len() == MAX_GROUP_BYTES);
    }

    #[test]
    fn a_family_is_the_group_without_its_last_part() {
        let cases: &[(&str, &str)] = &[
            ("iam:role/ci/deploy-payments", "iam:role/ci"),
            ("iam:role/devadministrator", "iam:role"),
            ("k8s:serviceaccount:kube-system/coredns", "k8s:serviceaccount:kube-system"),
            ("terraform@iam.gserviceaccount.com", "@iam.gserviceaccount.com"),
            ("@cloudbuild-gserviceaccount-com", "@cloudbuild-gserviceaccount-com"),
            ("ci_pipeline", "ci_pipeline"),
            ("/x", "/x"),
            ("", ""),
        ];
        for (group, want) in cases {
            assert_eq!(peer_family(group), *want, "{group}");
        }
    }

    #[test]
    fn a_purpose_label_names_the_group_and_a_provider_kind_does_not() {
        let role = "arn:aws:iam::1:role/ci/deploy-payments-0042";
        assert_eq!(peer_group(role, Some("ci_pipeline")), "ci_pipeline");
        for generic in ["AssumedRole", "IAMUser", "serviceAccount", "serviceaccount", "user", " ", ""] {
            assert_eq!(peer_group(role, Some(generic)), "iam:role/ci/deploy-payments", "{generic:?}");
        }
        assert_eq!(peer_group(role, None), "iam:role/ci/deploy-payments");
        // A label is bounded and escaped like any other log text.
        let label = peer_group(role, Some(&format!("kind\u{1b}{}", "x".repeat(10_000))));
        assert!(label.len() <= MAX_GROUP_BYTES && !label.contains('\u{1b}'), "{label}");
    }
}
