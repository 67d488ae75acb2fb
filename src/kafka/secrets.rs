//! Credentials among the librdkafka options: which keys hold one (their values are shown as
//! `***` in the start-up log) and scrubbing those values out of the text librdkafka writes.
//!
//! Masking the start-up log is not enough: librdkafka quotes configured values back in its
//! own text. A configuration error repeats the offending value (rust-rdkafka appends key and
//! value to it), and a parse error of `sasl.oauthbearer.config` quotes the part it stopped
//! at. So every line from librdkafka (log callback, error callback, client-creation error)
//! goes through [`Secrets::scrub`] before it is logged.

use crate::config::ServiceConfig;
use std::borrow::Cow;

/// What a secret is replaced with, in the start-up log and in librdkafka's text.
pub const MASK: &str = "***";

/// A key holding one of these is a credential: passwords and passphrases (`sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`), OAuth client secrets and tokens,
/// `sasl.oauthbearer.extensions` and `sasl.oauthbearer.config` (they carry claims and
/// tenant ids), a Java `sasl.jaas.config` pasted by mistake (it holds the password).
const SECRET_WORDS: [&str; 8] =
    ["password", "passphrase", "secret", "token", "credential", "extensions", "jaas", "oauthbearer.config"];

/// Parts of a list-valued secret shorter than this are not scrubbed on their own (the whole
/// value still is): removing `1` or `on` from every librdkafka line would hide more than it protects.
const MIN_PART_BYTES: usize = 4;

/// True for a librdkafka key whose value must never be logged.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word)) || is_key_material(&key)
}

/// A `key` segment names private key material (`ssl.key.pem`, `ssl_key`); a path to it
/// (`ssl.key.location`, `...private.key.file`) is not secret and stays visible, so that a
/// wrong path can be found in the log.
fn is_key_material(key: &str) -> bool {
    let segments: Vec<&str> = key.split(['.', '_']).collect();
    segments.contains(&"key") && !matches!(segments.last(), Some(&("location" | "file")))
}

/// The secret values of one configuration, to scrub out of text before it is logged.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Longest first, so that a secret containing another one is replaced whole.
    values: Vec<String>,
}

impl Secrets {
    /// The values of every secret key of the `[kafka]`, `[kafka_consumer]` and `[kafka_producer]`
    /// tables, and their parts: librdkafka quotes `k=v` lists (separated by spaces or commas)
    /// piece by piece, so each `k=v` and each `v` is scrubbed as well as the whole value.
    pub fn of(config: &ServiceConfig) -> Secrets {
        let mut values = Vec::new();
        for (key, value) in config.kafka.iter().chain(&config.kafka_consumer).chain(&config.kafka_producer) {
            if !is_secret_key(key) || value.is_empty() {
                continue;
            }
            values.push(value.clone());
            for part in value.split([' ', ',']) {
                let bare = part.split_once('=').map_or(part, |(_, v)| v);
                values.extend([part, bare].into_iter().filter(|p| p.len() >= MIN_PART_BYTES).map(str::to_string));
            }
        }
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Secrets { values }
    }

    /// `text` with every secret replaced by [`MASK`]; borrowed when it holds none.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in &self.values {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), MASK));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kafka: &[(&str, &str)]) -> ServiceConfig {
        let mut config: ServiceConfig = toml::from_str("input_topics=[\"i\"]\nalert_topic=\"a\"").unwrap();
        config.kafka = kafka.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        config
    }

    #[test]
    fn credentials_and_key_material_are_secret_paths_and_settings_are_not() {
        let secret = [
            "sasl.password",
            "SASL.PASSWORD",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "ssl_key",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.extensions",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.token.endpoint.url",
            "sasl.jaas.config",
        ];
        for key in secret {
            assert!(is_secret_key(key), "{key} should be secret");
        }
        let shown = [
            "security.protocol",
            "sasl.mechanisms",
            "sasl.username",
            "ssl.ca.location",
            "ssl.key.location",
            "ssl.keystore.location",
            "ssl.certificate.location",
            "sasl.oauthbearer.assertion.private.key.file",
            "ssl.endpoint.identification.algorithm",
            "linger.ms",
        ];
        for key in shown {
            assert!(!is_secret_key(key), "{key} should be shown");
        }
    }

    #[test]
    fn scrub_removes_whole_values_and_the_parts_librdkafka_quotes() {
        let secrets = Secrets::of(&config(&[
            ("sasl.password", "hunter2"),
            ("sasl.oauthbearer.config", "principal=svc-principal extension_tenant=acme-prod-7 lifeSeconds=60"),
            ("sasl.oauthbearer.extensions", "traceId=tr-1234,logicalCluster=lkc-9z9z"),
            ("sasl.username", "overreach-user"),
        ]));
        let cases: &[(&str, &str)] = &[
            ("Authentication failed for hunter2", "Authentication failed for ***"),
            (
                "Unrecognized sasl.oauthbearer.config beginning at: extension_tenant=acme-prod-7 lifeSeconds=60",
                "Unrecognized sasl.oauthbearer.config beginning at: *** ***",
            ),
            ("bad extension tr-1234 for lkc-9z9z", "bad extension *** for ***"),
            // Not secret, so not scrubbed; and a short part (`60`) alone is left in place.
            ("user overreach-user, lifeSeconds 60", "user overreach-user, lifeSeconds 60"),
        ];
        for (text, want) in cases {
            assert_eq!(secrets.scrub(text), *want, "{text}");
        }
        assert!(matches!(secrets.scrub("Connection refused"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let secrets = Secrets::of(&config(&[("sasl.password", "abcd"), ("ssl.key.password", "abcdefgh")]));
        assert_eq!(secrets.scrub("x abcdefgh y abcd"), "x *** y ***");
    }
}
