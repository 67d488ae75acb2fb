//! Secrets a log may carry, found by their shape and replaced before any text
//! from the log reaches an alert. Every field of a record is attacker- or
//! accident-controlled: a bearer token pasted into a user agent, a presigned
//! URL as a resource, a JWT as a delegation hop. An alert travels far (SIEM,
//! tickets, chat), so a secret copied into it is a secret leaked.
//!
//! Each rule names a kind; a match becomes `[redacted:KIND]` and the text around
//! it stays, so `X-Amz-Signature=[redacted:signature]&X-Amz-Date=...` still
//! reads as a presigned URL. Identifiers stay: an ARN, a UUID, a hash, an AWS
//! access key id (`AKIA...`, which AWS logs itself and the engine uses as a
//! credential id). The rules are listed, with what they keep, in `docs/alerts.md`.

use regex::{Captures, Regex, RegexSet};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

/// One secret shape. When the pattern has a group named `secret`, only that
/// group is replaced and the rest of the match (a parameter name, a scheme) is
/// kept; otherwise the whole match is the secret.
struct Rule {
    kind: &'static str,
    regex: Regex,
    /// Finds the secret inside the candidate, for shapes a regex cannot tell
    /// alone. Without it the candidate is the secret.
    locate: Option<Locate>,
}

/// Where in a candidate its secret is; `None` declines the candidate.
type Locate = fn(&str) -> Option<Range<usize>>;

impl Rule {
    fn new(kind: &'static str, pattern: &str) -> Rule {
        Rule { kind, regex: Regex::new(pattern).expect("redaction patterns are valid"), locate: None }
    }
}

/// `NAME=value`, `NAME: value` or `"NAME": "value"` for any of `names` (an
/// alternation), case-insensitive. A colon needs a space after it or a quote
/// before it, so that `arn:aws:secretsmanager:...:secret:prod/db` (an
/// identifier) is never read as a `secret:` pair. The value is a quoted string
/// to its closing quote, else runs to a delimiter of query strings, headers and JSON.
fn pair(names: &str) -> String {
    format!(r#"(?i)\b(?:{names})(?:\s*=\s*|\s*:\s+|"\s*:\s*)(?P<secret>"[^"]*"?|'[^']*'?|[^\s&"',;<>]+)"#)
}

/// Every rule's pattern in one set: one pass tells whether a text holds any
/// secret shape at all. Almost no field does, and running the rules one by one
/// on each field of every finding was a tenth of a replay.
static ANY_RULE: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(RULES.iter().map(|r| r.regex.as_str())).expect("redaction patterns are valid"));

/// Most specific first, so that a JWT inside `token=` is reported as a JWT.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // To the end of the text when the block was cut before its END line.
        Rule::new(
            "private_key",
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY-----(?s:.*?)(?:-----END[ A-Z0-9]*PRIVATE KEY-----|$)",
        ),
        // Header (always `{"...` in base64url), payload, signature; a JWE has five parts.
        Rule::new("jwt", r"\beyJ[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*){2,4}"),
        // GitHub, GitLab, Slack, Stripe and Google API key prefixes.
        Rule::new(
            "token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35})",
        ),
        // Lower-case words after the scheme are prose (`Basic authentication-disabled`), not a credential.
        Rule {
            locate: Some(|value| {
                (!value.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')).then_some(0..value.len())
            }),
            ..Rule::new("authorization", r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})")
        },
        // Also the `X-Amz-Security-Token` of presigned URLs.
        Rule::new(
            "aws_secret",
            &pair(r"(?:aws[_-]?)?(?:secret[_-]?access[_-]?key|session[_-]?token|security[_-]?token)"),
        ),
        // Presigned URL parameters (S3, GCS, Azure SAS). The credential scope
        // names a key id, dropped with the signature it belongs to.
        Rule::new(
            "signature",
            r#"(?i)\b(?:x-amz-signature|x-amz-credential|x-goog-signature|x-goog-credential|signature|sig)=(?P<secret>[^\s&#"'<>]+)"#,
        ),
        // `password=`, `client_secret: `, `"api_key": "..."`, `x-auth-token=` ...
        Rule::new(
            "secret",
            &pair(r"(?:[a-z0-9]+[_-])*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|private[_-]?key)"),
        ),
        // A bare secret access key, alone or as a segment of a path.
        Rule { locate: Some(aws_secret_key_in), ..Rule::new("aws_secret", r"[A-Za-z0-9/+]{40,}") },
    ]
});

const MARKER_PREFIX: &str = "[redacted:";

/// `text` with every secret shape replaced by `[redacted:KIND]`; borrowed as it
/// is when it holds none, which is every ordinary field.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    // No rule matches the text as it is: none can match after an earlier one, which changes nothing.
    if !ANY_RULE.is_match(text) {
        return out;
    }
    for rule in RULES.iter() {
        // A match the rule declined comes back as it was, but owned: keep the borrow then.
        if let Cow::Owned(changed) = rule.regex.replace_all(&out, |caps: &Captures| replace(rule, caps)) {
            if changed != *out {
                out = Cow::Owned(changed);
            }
        }
    }
    out
}

fn replace(rule: &Rule, caps: &Captures) -> String {
    let whole = caps.get(0).expect("group 0 is the match");
    let candidate = caps.name("secret").unwrap_or(whole);
    // A value an earlier rule already replaced stays as that rule wrote it.
    let marked = candidate.as_str().trim_start_matches(['"', '\'']).starts_with(MARKER_PREFIX);
    let secret = match rule.locate {
        _ if marked => None,
        Some(locate) => locate(candidate.as_str()),
        None => Some(0..candidate.len()),
    };
    let Some(secret) = secret else { return whole.as_str().to_string() };
    let offset = candidate.start() - whole.start();
    let whole = whole.as_str();
    format!("{}{MARKER_PREFIX}{}]{}", &whole[..offset + secret.start], rule.kind, &whole[offset + secret.end..])
}

/// A span of exactly 40 characters of `run` (a run of base64 characters) that
/// starts and ends at the run's ends or at a `/`, and looks like a secret
/// access key: in `prod/KEY` the key.
fn aws_secret_key_in(run: &str) -> Option<Range<usize>> {
    const KEY_LEN: usize = 40;
    let starts = std::iter::once(0).chain(run.match_indices('/').map(|(at, _)| at + 1));
    starts.map(|start| start..start + KEY_LEN).find(|span| {
        let ends_at_boundary = span.end == run.len() || run.as_bytes().get(span.end) == Some(&b'/');
        ends_at_boundary && looks_like_aws_secret_key(&run[span.clone()])
    })
}

/// 40 characters with upper and lower case and digits, spread like random
/// bytes: a SHA-1 in hex (no upper case) or a path of words (repeated letters)
/// is not a key.
fn looks_like_aws_secret_key(run: &str) -> bool {
    let has = |class: fn(&u8) -> bool| run.bytes().any(|b| class(&b));
    run.len() == 40
        && has(u8::is_ascii_uppercase)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_digit)
        && shannon_bits_per_char(run) >= 4.35
}

fn shannon_bits_per_char(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret-shaped corpus: each input, and what must come out.
    #[test]
    fn replaces_each_secret_shape_and_keeps_the_text_around_it() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudC03In0.c2lnbmF0dXJlLWJ5dGVz";
        let cases: &[(&str, &str)] = &[
            ("Bearer abcdef0123456789", "Bearer [redacted:authorization]"),
            ("curl/8.5 Authorization: bearer sk.live.0123456789", "curl/8.5 Authorization: bearer [redacted:authorization]"),
            ("Basic dXNlcjpodW50ZXIy", "Basic [redacted:authorization]"),
            (&format!("Bearer {jwt}"), "Bearer [redacted:jwt]"),
            (jwt, "[redacted:jwt]"),
            (&format!("agent://{jwt}/hop"), "agent://[redacted:jwt]/hop"),
            (
                "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE/20260302/us-east-1/s3/aws4_request&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr%2F%2F&X-Amz-Signature=3f1c0a9b",
                "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[redacted:signature]&X-Amz-Security-Token=[redacted:aws_secret]&X-Amz-Signature=[redacted:signature]",
            ),
            ("https://h/f?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D&Expires=1", "https://h/f?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=[redacted:signature]&Expires=1"),
            ("https://acct.blob.core.windows.net/c/b?sv=2022&sig=abc%2Bdef&se=2026", "https://acct.blob.core.windows.net/c/b?sv=2022&sig=[redacted:signature]&se=2026"),
            ("https://storage.googleapis.com/b/o?X-Goog-Signature=9a8b7c", "https://storage.googleapis.com/b/o?X-Goog-Signature=[redacted:signature]"),
            ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key=[redacted:aws_secret]"),
            (r#"{"SecretAccessKey": "wJalrXUtnFEMI", "SessionToken":"FwoGZXIvYXdz"}"#, r#"{"SecretAccessKey": [redacted:aws_secret], "SessionToken":[redacted:aws_secret]}"#),
            ("AWS_SESSION_TOKEN=FwoGZXIvYXdzEBYaDH", "AWS_SESSION_TOKEN=[redacted:aws_secret]"),
            ("key wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE12 used", "key [redacted:aws_secret] used"),
            ("prod/wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE12", "prod/[redacted:aws_secret]"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY----- tail",
                "[redacted:private_key] tail",
            ),
            ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq (cut", "[redacted:private_key]"),
            ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "[redacted:token]"),
            ("t=gho_0123456789abcdefghijABCDEFGHIJ012345;", "t=[redacted:token];"),
            ("ghs_0123456789abcdefghijABCDEFGHIJ012345", "[redacted:token]"),
            ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[redacted:token]"),
            ("xoxb-1234567890-abcdefghij", "[redacted:token]"),
            ("sk_live_0123456789abcdefABCD", "[redacted:token]"),
            ("AIzaSyA-0123456789abcdefghijklmnopqrstu", "[redacted:token]"),
            ("login?user=bob&password=hunter2&next=/", "login?user=bob&password=[redacted:secret]&next=/"),
            ("client_secret: s3cr3t rest", "client_secret: [redacted:secret] rest"),
            (r#"{"api_key":"abc def"}"#, r#"{"api_key":[redacted:secret]}"#),
            ("x-auth-token=abc123", "x-auth-token=[redacted:secret]"),
            ("token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "token=[redacted:jwt]"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact(raw), *want, "{raw:?}");
        }
    }

    /// Identifiers and ordinary text that look a little like secrets stay as they are.
    #[test]
    fn keeps_identifiers_and_ordinary_text() {
        let kept = [
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf",
            "arn:aws:iam::111122223333:role/ci-payments",
            "prod/db/password",
            "projects/p/secrets/db-password/versions/3",
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAEXAMPLEKEYID0001",
            "ghs_EXAMPLEID01",
            "9b2c7e4a-1f3d-4c8e-a6b5-0d9e8f7a6b5c",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "arn:aws:s3:::releases/payments/build-17-2.zip",
            "Data/Exports2024/Customers/Regions/Part1",
            "/api/v1/namespaces/default/secrets/token-cleaner",
            "system:serviceaccount:kube-system:token-cleaner",
            "aws-cli/2.15.0 Python/3.11.6 Linux/5.10 exe/x86_64.amzn.2 prompt/off command/s3.cp",
            "sts.amazonaws.com GetSessionToken",
            "Basic auth disabled, bearer of news",
            "Basic authentication-disabled; Bearer authorization-required",
            "X-Amz-SignedHeaders=host&X-Amz-Expires=900",
            "Rotate the secret and check where it was stored.",
        ];
        for text in kept {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text:?} became {:?}", redact(text));
        }
    }

    #[test]
    fn a_bare_key_needs_the_randomness_of_one() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE12";
        assert_eq!(aws_secret_key_in(&format!("prod/{key}")), Some(5..45));
        assert_eq!(aws_secret_key_in(&format!("{key}/x")), Some(0..40));
        assert_eq!(aws_secret_key_in(&format!("x{key}")), None);
        assert!(looks_like_aws_secret_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE12"));
        // 40 characters of words and digits: too regular for a key.
        assert!(!looks_like_aws_secret_key("Data/Exports2024/Customers/Regions/Part1"));
        assert!(!looks_like_aws_secret_key("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    }
}
