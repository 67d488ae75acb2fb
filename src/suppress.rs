//! Suppression rules: an operator's "this is expected, and here is why".
//!
//! Rules are top-level `[[suppress]]` tables of the same TOML file whose
//! `[engine]` table sets the detection settings (`replay`/`backtest --config`,
//! the service's config file); [`Rules`] is their one parser. A rule matches a
//! finding when every matcher it gives matches; the engine keeps a matched
//! finding out of every alert and incident, counts it under the rule's name,
//! and emits it marked `suppressed` when asked to show suppressed findings.
//!
//! Matchers, all optional (a rule with none matches every finding until it
//! expires): `identity` and `delegator` (globs, `*` and `?`, see
//! [`glob_match`]), `detector` (a registered name), `call` (a glob over the
//! call as the engine names it, `target action`), `network` (a CIDR block
//! holding the event's source address, IPv4 or IPv6). `expires` (RFC 3339) is
//! compared with the event's time, never the wall clock, so a replay gives the
//! same alerts whenever it runs.

use crate::detect::{Detector, Finding};
use crate::grants::glob_match;
use crate::model::{AccessEvent, Millis};
use serde::{Deserialize, Serialize, Serializer};
use std::net::IpAddr;

/// Rules a file may declare: each name is a metric label, so the set stays small.
pub const MAX_RULES: usize = 1000;
/// A name is a metric label and an alert field: short, and of characters that
/// need no escaping anywhere (letters, digits, `-`, `_`, `.`).
const MAX_NAME_BYTES: usize = 64;
/// Bound on a reason and on a glob, so that matching a pattern against a
/// field (itself bounded by the decoders) stays cheap: the glob matcher takes
/// at most pattern length times field length steps.
const MAX_TEXT_BYTES: usize = 1024;

/// One `[[suppress]]` table as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique; how counts, metrics and suppressed alerts name the rule. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why the findings it matches are expected. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<TimeValue>,
}

/// A time as TOML allows it: a quoted RFC 3339 string or a bare TOML date-time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeValue {
    Text(String),
    Toml(toml::value::Datetime),
}

impl TimeValue {
    fn text(&self) -> String {
        match self {
            TimeValue::Text(s) => s.clone(),
            TimeValue::Toml(t) => t.to_string(),
        }
    }
}

/// A checked rule, ready to match.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    spec: RuleSpec,
    name: String,
    detector: Option<Detector>,
    network: Option<Network>,
    expires: Option<Millis>,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when every matcher the rule gives matches this finding of this
    /// event, and the rule has not expired at the event's time.
    /// `call` is the event's call as rules name it (`target action`), `source` its address.
    fn matches(&self, finding: &Finding, event: &AccessEvent, call: &str, source: Option<IpAddr>) -> bool {
        let glob = |pattern: &Option<String>, text: &str| pattern.as_deref().is_none_or(|p| glob_match(p, text));
        self.expires.is_none_or(|at| event.time < at)
            && self.detector.is_none_or(|d| d == finding.detector)
            && glob(&self.spec.identity, &event.identity)
            && glob(&self.spec.call, call)
            && self.network.is_none_or(|n| source.is_some_and(|ip| n.contains(ip)))
            && self
                .spec
                .delegator
                .as_deref()
                .is_none_or(|p| event.on_behalf_of.iter().chain(&event.chain).any(|d| glob_match(p, d)))
    }
}

/// Every rule of a configuration, in file order; the first that matches a
/// finding is the one it is counted under.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "Vec<RuleSpec>")]
pub struct Rules(Vec<Rule>);

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|r| r.name == name)
    }

    /// The first rule that matches `finding` of `event`.
    pub fn matching(&self, finding: &Finding, event: &AccessEvent) -> Option<&Rule> {
        if self.0.is_empty() {
            return None;
        }
        let (call, source) = (format!("{} {}", event.target, event.action), source_address(event));
        self.0.iter().find(|r| r.matches(finding, event, &call, source))
    }
}

/// The event's source as an address: `::ffff:10.0.0.5` is the IPv4 address it
/// maps; a DNS name (`ec2.amazonaws.com`) or `AWS Internal` is no address and
/// matches no network.
fn source_address(event: &AccessEvent) -> Option<IpAddr> {
    event.source_ip.as_deref()?.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

impl Serialize for Rules {
    /// As written, for the service's start-up log.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|r| &r.spec))
    }
}

impl TryFrom<Vec<RuleSpec>> for Rules {
    type Error = String;

    fn try_from(specs: Vec<RuleSpec>) -> Result<Rules, String> {
        if specs.len() > MAX_RULES {
            return Err(format!("{} [[suppress]] rules, at most {MAX_RULES} are allowed", specs.len()));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let rule = check(spec).map_err(|(name, reason)| match name {
                Some(name) => format!("suppress rule `{name}`: {reason}"),
                None => format!("suppress rule #{} (of the [[suppress]] tables): {reason}", i + 1),
            })?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(format!("suppress rule `{}`: the name is used by an earlier rule", rule.name));
            }
            rules.push(rule);
        }
        Ok(Rules(rules))
    }
}

/// Checks one rule; on error, the rule's name (when it has a usable one) and why.
fn check(spec: RuleSpec) -> Result<Rule, (Option<String>, String)> {
    let name = match spec.name.as_deref() {
        None => return Err((None, "`name` is required".into())),
        Some(name) if valid_name(name) => name.to_string(),
        Some(_) => {
            let reason = format!("`name` must be 1 to {MAX_NAME_BYTES} letters, digits, `-`, `_` or `.`");
            return Err((None, reason));
        }
    };
    let fail = |reason: String| (Some(name.clone()), reason);
    match spec.reason.as_deref().map(str::trim) {
        None | Some("") => return Err(fail("`reason` is required: say why these findings are expected".into())),
        Some(r) if r.len() > MAX_TEXT_BYTES => return Err(fail(format!("`reason` is over {MAX_TEXT_BYTES} bytes"))),
        Some(_) => {}
    }
    for (field, pattern) in [("identity", &spec.identity), ("call", &spec.call), ("delegator", &spec.delegator)] {
        match pattern.as_deref() {
            Some("") => return Err(fail(format!("`{field}` is empty; leave it out to match any"))),
            Some(p) if p.len() > MAX_TEXT_BYTES => {
                return Err(fail(format!("`{field}` is over {MAX_TEXT_BYTES} bytes")));
            }
            _ => {}
        }
    }
    let detector = spec.detector.as_deref().map(str::parse::<Detector>).transpose().map_err(fail)?;
    let network = spec.network.as_deref().map(Network::parse).transpose().map_err(fail)?;
    let expires = match &spec.expires {
        None => None,
        Some(t) => {
            let text = t.text();
            let at = crate::time::parse_rfc3339(&text)
                .ok_or_else(|| fail(format!("`expires` is not an RFC 3339 time with an offset: {text}")))?;
            Some(at)
        }
    };
    Ok(Rule { spec, name, detector, network, expires })
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A CIDR block: an address and a prefix length; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Network, String> {
        let bad = |why: &str| format!("`network` is not a CIDR block ({why}): {text}");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = addr.parse().map_err(|_| bad("no IPv4 or IPv6 address before the `/`"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(bad(&format!("the prefix length must be 0 to {max}"))),
            },
        };
        let network = Network { base, prefix };
        if network.masked(base) != bits(base) {
            return Err(bad("bits are set past the prefix length"));
        }
        Ok(network)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.base.is_ipv4() && self.masked(ip) == bits(self.base)
    }

    /// `ip`'s first `prefix` bits, the rest cleared.
    fn masked(&self, ip: IpAddr) -> u128 {
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let kept = u32::from(self.prefix);
        let mask = match kept {
            0 => 0,
            k => (u128::MAX << (128 - k)) >> (128 - width),
        };
        bits(ip) & mask
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Reads the `[[suppress]]` tables of a configuration file; the rest of the
/// file is read by the parsers of its own tables.
pub fn rules_from_toml(text: &str) -> Result<Rules, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        suppress: Rules,
    }
    toml::from_str::<File>(text).map(|f| f.suppress).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Evidence, Strength};

    fn finding(detector: &str) -> Finding {
        Finding {
            detector: detector.parse().unwrap(),
            strength: Strength::Alert,
            score: 0.9,
            subject: String::new(),
            summary: String::new(),
            evidence: Evidence::default(),
        }
    }

    fn event(source_ip: &str) -> AccessEvent {
        AccessEvent {
            time: crate::time::parse_rfc3339("2026-03-02T10:00:00Z").unwrap(),
            identity: "ci-payments".into(),
            target: "iam".into(),
            action: "CreateAccessKey".into(),
            on_behalf_of: Some("team-payments".into()),
            chain: vec!["alice@example.com".into()],
            source_ip: Some(source_ip.into()),
            ..AccessEvent::default()
        }
    }

    fn rules(text: &str) -> Result<Rules, String> {
        rules_from_toml(text)
    }

    #[test]
    fn networks_hold_their_addresses_v4_and_v6() {
        let cases = [
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("203.0.113.9", "203.0.113.9", true),
            ("203.0.113.9", "203.0.113.10", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("2001:db8::/32", "10.0.0.1", false),
            ("::/0", "fe80::1", true),
        ];
        for (cidr, ip, want) in cases {
            let n = Network::parse(cidr).unwrap();
            let ip = ip.parse::<IpAddr>().unwrap().to_canonical();
            assert_eq!(n.contains(ip), want, "{cidr} holds {ip}");
        }
        for bad in ["10.0.0/8", "10.0.0.0/33", "2001:db8::/129", "10.1.2.3/8", "10.0.0.0/", "host/24"] {
            assert!(Network::parse(bad).unwrap_err().contains(bad), "{bad} accepted");
        }
    }

    #[test]
    fn a_rule_matches_when_all_its_matchers_do() {
        let r = rules(
            r#"
            [[suppress]]
            name = "payments-key-rotation"
            reason = "The payments pipeline rotates its key from the office."
            identity = "ci-pay*"
            detector = "novel_call"
            call = "iam Create?ccessKey"
            network = "10.0.0.0/8"
            delegator = "*@example.com"
            expires = 2026-04-01T00:00:00Z
            "#,
        )
        .unwrap();
        let novel = finding("novel_call");
        assert_eq!(r.matching(&novel, &event("10.1.2.3")).map(Rule::name), Some("payments-key-rotation"));
        // Each matcher, broken alone, stops the match.
        assert!(r.matching(&finding("new_source"), &event("10.1.2.3")).is_none());
        assert!(r.matching(&novel, &event("192.0.2.1")).is_none());
        assert!(r.matching(&novel, &event("ec2.amazonaws.com")).is_none());
        let other = |f: fn(&mut AccessEvent)| {
            let mut e = event("10.1.2.3");
            f(&mut e);
            r.matching(&novel, &e).is_none()
        };
        assert!(other(|e| e.identity = "ci-billing".into()));
        assert!(other(|e| e.action = "DeleteAccessKey".into()));
        assert!(other(|e| e.chain.clear()));
        assert!(other(|e| e.time = crate::time::parse_rfc3339("2026-04-01T00:00:00Z").unwrap()));
    }

    #[test]
    fn a_bad_rule_is_refused_naming_it_and_why() {
        let cases = [
            ("name = \"a\"\nreason = \"\"", "suppress rule `a`: `reason` is required"),
            ("name = \"a\"", "suppress rule `a`: `reason` is required"),
            ("reason = \"r\"", "suppress rule #1 (of the [[suppress]] tables): `name` is required"),
            ("name = \"a b\"\nreason = \"r\"", "suppress rule #1 (of the [[suppress]] tables): `name` must be"),
            ("name = \"a\"\nreason = \"r\"\nnetwork = \"10.0.0.0/40\"", "suppress rule `a`: `network` is not a CIDR"),
            (
                "name = \"a\"\nreason = \"r\"\ndetector = \"novel_calls\"",
                "suppress rule `a`: unknown detector `novel_calls`",
            ),
            (
                "name = \"a\"\nreason = \"r\"\nexpires = \"next week\"",
                "suppress rule `a`: `expires` is not an RFC 3339",
            ),
            ("name = \"a\"\nreason = \"r\"\nidentity = \"\"", "suppress rule `a`: `identity` is empty"),
        ];
        for (table, want) in cases {
            let err = rules(&format!("[[suppress]]\n{table}\n")).unwrap_err();
            assert!(err.contains(want), "{table}: {err}");
        }
        let twice = "[[suppress]]\nname = \"a\"\nreason = \"r\"\n[[suppress]]\nname = \"a\"\nreason = \"s\"\n";
        assert!(rules(twice).unwrap_err().contains("suppress rule `a`: the name is used by an earlier rule"));
        let unknown = rules("[[suppress]]\nname = \"a\"\nreason = \"r\"\nidentiti = \"x\"\n").unwrap_err();
        assert!(unknown.contains("identiti"), "{unknown}");
        assert!(rules("[engine]\nlearning_days = 3.0\n").unwrap().is_empty());
    }

    #[test]
    fn a_hostile_identity_at_its_bound_is_matched_and_refused_without_blow_up() {
        // 1 KiB of `a` against a pattern that a backtracking matcher would take
        // exponential time over: the answer, not the time, is what is checked.
        let mut e = event("10.0.0.1");
        e.identity = "a".repeat(1024).into();
        let r = rules("[[suppress]]\nname = \"x\"\nreason = \"r\"\nidentity = \"*a*a*a*a*a*a*a*a*b\"\n").unwrap();
        assert!(r.matching(&finding("novel_call"), &e).is_none());
        e.identity.push('b');
        assert!(r.matching(&finding("novel_call"), &e).is_some());
    }
}
