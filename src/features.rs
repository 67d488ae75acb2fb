//! Coarse features of a call that baselines learn on: a resource's class, a
//! source address's network, a user agent's family. Coarse enough that normal
//! variety (object names, ephemeral IPs, version bumps) does not look new.
//!
//! Each is appended to a caller's buffer (`push_*`): the engine derives them
//! for every call and interns them, and a string per feature per call was a
//! tenth of a replay's instructions.

use std::fmt::Write as _;
use std::net::IpAddr;

/// The class of a resource: ids and numbers become `#`, and only the first
/// three `/`-separated segments are kept (`arn:aws:s3:::bucket/reports/2026/03/x.csv` →
/// `arn:aws:s3:::bucket/reports/*`).
pub fn resource_class(resource: &str) -> String {
    let mut out = String::with_capacity(resource.len().min(96));
    push_resource_class(&mut out, resource);
    out
}

/// [`resource_class`], appended to a caller's buffer. One pass over the bytes: a token
/// (between separators or `/`) is judged by what the pass counted in it, and the text
/// between id-like tokens is copied in one piece; the third `/` ends the class. It runs on
/// every call: copying token by token, with three scans of each, cost 1.4% more of a replay's
/// instructions, and testing each byte's kinds one by one instead of in [`BYTE_KINDS`] 6%.
pub fn push_resource_class(out: &mut String, resource: &str) {
    let bytes = resource.as_bytes();
    // `copied` is where the text not yet in `out` starts; `token` where the current one does.
    let (mut copied, mut token) = (0, 0);
    let mut counts = TokenCounts::default();
    let mut slashes = 0;
    for at in 0..=bytes.len() {
        let b = bytes.get(at).copied();
        let kinds = b.map_or(ENDS_TOKEN, |b| BYTE_KINDS[usize::from(b)]);
        if kinds & ENDS_TOKEN == 0 {
            counts.count(kinds);
            continue;
        }
        if counts.looks_like_id(at - token) {
            out.push_str(&resource[copied..token]);
            out.push('#');
            copied = at;
        }
        if b == Some(b'/') {
            slashes += 1;
            if slashes == 3 {
                out.push_str(&resource[copied..at]);
                out.push_str("/*");
                return;
            }
        }
        token = at + 1;
        counts = TokenCounts::default();
    }
    out.push_str(&resource[copied..]);
}

/// The top two levels of a resource path, as written (`bucket/finance/q1/x.csv`
/// → `bucket/finance`): the unit of fan-out, where names matter, not their class.
pub fn resource_prefix(resource: &str) -> &str {
    match resource.match_indices('/').nth(1) {
        Some((second, _)) => &resource[..second],
        None => resource,
    }
}

/// What separates the tokens of a path segment. All ASCII, so splitting at
/// these bytes splits at character boundaries.
const fn is_separator(b: u8) -> bool {
    matches!(b, b'-' | b'_' | b'.' | b':' | b'=' | b' ')
}

// The kinds of a byte a resource's tokens are judged by, as bits of `BYTE_KINDS`.
const DIGIT: u8 = 1;
const HEX: u8 = 2;
const ALPHANUMERIC: u8 = 4;
/// A separator or `/`.
const ENDS_TOKEN: u8 = 8;

/// Each byte's kinds, looked up once per byte of every call's resource.
const BYTE_KINDS: [u8; 256] = {
    let mut kinds = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let mut k = 0;
        if byte.is_ascii_digit() {
            k |= DIGIT;
        }
        if byte.is_ascii_hexdigit() {
            k |= HEX;
        }
        if byte.is_ascii_alphanumeric() {
            k |= ALPHANUMERIC;
        }
        if byte == b'/' || is_separator(byte) {
            k |= ENDS_TOKEN;
        }
        kinds[b] = k;
        b += 1;
    }
    kinds
};

/// What a token of a resource held, counted as it is read.
struct TokenCounts {
    digits: usize,
    /// The kinds every byte so far had.
    all: u8,
}

impl Default for TokenCounts {
    fn default() -> Self {
        TokenCounts { digits: 0, all: HEX | ALPHANUMERIC }
    }
}

impl TokenCounts {
    fn count(&mut self, kinds: u8) {
        self.digits += usize::from(kinds & DIGIT);
        self.all &= kinds;
    }

    /// Whether a token of `len` bytes with these counts is an id: a digit run, mostly digits,
    /// long hex, or a long random token (session ids, and secrets pasted where a name
    /// belongs): a class never keeps them, so no call name carries one.
    fn looks_like_id(&self, len: usize) -> bool {
        let digits = self.digits;
        let (all_hex, all_alphanumeric) = (self.all & HEX != 0, self.all & ALPHANUMERIC != 0);
        len > 0
            && (digits == len
                || (len >= 6 && digits * 2 >= len)
                || (digits > 0 && len >= 8 && all_hex)
                || (digits > 0 && len >= 16 && all_alphanumeric))
    }
}

/// A call's source as written, and as an address when it is one: parsed once
/// for the networks and the scope the engine learns of it.
pub struct Source<'a> {
    text: &'a str,
    addr: Option<IpAddr>,
}

impl<'a> Source<'a> {
    pub fn parse(text: &'a str) -> Source<'a> {
        Source { text, addr: text.parse().ok() }
    }

    /// The address's network of `width`, as `10.1.2.0/24` or `2001:db8:1::/48`; a
    /// non-address source (a service name such as `lambda.amazonaws.com`) lower-cased.
    pub fn push_prefix(&self, out: &mut String, width: Width) {
        let parts = width.parts();
        match self.addr {
            Some(IpAddr::V4(v4)) => {
                push_octets(out, &v4.octets()[..parts]);
                (parts..4).for_each(|_| out.push_str(".0"));
                out.push('/');
                push_decimal(out, parts * 8);
            }
            Some(IpAddr::V6(v6)) => {
                for segment in &v6.segments()[..parts] {
                    let _ = write!(out, "{segment:x}:");
                }
                out.push_str(":/");
                push_decimal(out, parts * 16);
            }
            None => push_lowercase(out, self.text),
        }
    }

    /// The network `push_prefix` writes, as a value: two addresses have the same prefix
    /// exactly when it writes the same text for them. `None` for a non-address source.
    pub fn prefix(&self, width: Width) -> Option<Prefix> {
        let parts = width.parts() as u32;
        let addr = match self.addr? {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & !(u32::MAX >> (8 * parts))).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !(u128::MAX >> (16 * parts))).into()),
        };
        Some(Prefix { addr, width })
    }

    pub fn scope(&self) -> AddressScope {
        match self.addr {
            Some(IpAddr::V4(v4)) => match v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
            {
                true => AddressScope::Private,
                false => AddressScope::Public,
            },
            // fc00::/7 unique local, fe80::/10 link local, ::1.
            Some(IpAddr::V6(v6)) => {
                match v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
                {
                    true => AddressScope::Private,
                    false => AddressScope::Public,
                }
            }
            None => AddressScope::NotAnAddress,
        }
    }
}

/// Which of a source's two networks (`Source::push_prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// The network the address belongs to: /24 for IPv4, /48 for IPv6.
    Network,
    /// The wider network: /16 for IPv4, /32 for IPv6. Runners and autoscaled nodes churn
    /// through /24s inside one provider block; a call from another block is a different place.
    WideNetwork,
}

impl Width {
    /// The octets (IPv4) or segments (IPv6) the network keeps.
    fn parts(self) -> usize {
        match self {
            Width::Network => 3,
            Width::WideNetwork => 2,
        }
    }
}

/// An address's network as a value (`Source::prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    width: Width,
}

/// The network of a source (`Width::Network`), as a string.
pub fn network(source: &str) -> String {
    let mut out = String::new();
    Source::parse(source).push_prefix(&mut out, Width::Network);
    out
}

/// The wider network of a source (`Width::WideNetwork`), as a string.
pub fn wide_network(source: &str) -> String {
    let mut out = String::new();
    Source::parse(source).push_prefix(&mut out, Width::WideNetwork);
    out
}

/// Dotted decimal octets, without `format!` (this runs twice on every call).
fn push_octets(out: &mut String, octets: &[u8]) {
    for (i, &octet) in octets.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_decimal(out, octet.into());
    }
}

/// A number below 1000 in decimal.
fn push_decimal(out: &mut String, n: usize) {
    for (digit, unit) in [(n / 100, 100), (n / 10 % 10, 10), (n % 10, 1)] {
        if n >= unit || unit == 1 {
            out.push(char::from(b'0' + digit as u8));
        }
    }
}

fn push_lowercase(out: &mut String, text: &str) {
    let at = out.len();
    out.push_str(text);
    out[at..].make_ascii_lowercase();
}

/// Where a source address sits: a private or internal range, the public
/// internet, or not an address at all (a service name such as
/// `lambda.amazonaws.com`, or nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressScope {
    Private,
    Public,
    NotAnAddress,
}

impl AddressScope {
    pub fn name(self) -> &'static str {
        match self {
            AddressScope::Private => "private",
            AddressScope::Public => "public",
            AddressScope::NotAnAddress => "not_an_address",
        }
    }
}

/// The /16 of an IPv4 network name (`10.100.73.0/24` → `10.100.`).
pub fn ipv4_region(network: &str) -> Option<&str> {
    let second_dot = network.match_indices('.').nth(1)?.0;
    network.ends_with("/24").then(|| &network[..=second_dot])
}

/// A user agent as the engine learns it: the name and version of its first
/// product token (`aws-cli/2.15.0 Python/3.11` → `aws-cli`, `2.15.0`), from one parse.
pub struct Agent<'a> {
    name: &'a str,
    version: &'a str,
}

impl<'a> Agent<'a> {
    pub fn parse(user_agent: &'a str) -> Agent<'a> {
        // The first token ends at an ASCII delimiter, found by byte (a search for any of three
        // characters decoded each one: 0.7% more of a replay's instructions); a byte equal to
        // one is that character, so the cut is on a character boundary.
        let agent = user_agent.trim();
        let end = agent.bytes().position(|b| matches!(b, b' ' | b'(' | b';')).unwrap_or(agent.len());
        let first = &agent[..end];
        let (name, version) = first.split_once('/').unwrap_or((first, ""));
        Agent { name: name.trim_matches(|c: char| c == '[' || c == ']' || c == '"'), version }
    }

    /// The family: the name without the version, lower-cased (`aws-cli`).
    pub fn push_family(&self, out: &mut String) {
        if self.name.is_empty() {
            out.push_str("unknown");
        } else {
            push_lowercase(out, self.name);
        }
    }

    /// The family and version to the minor (`aws-cli/2.15.30` → `aws-cli/2.15`): a
    /// patch release is the same client, a new minor or major version is a change
    /// worth a weak signal.
    pub fn push_version(&self, out: &mut String) {
        self.push_family(out);
        let mut parts = self
            .version
            .split(['.', '-', '+'])
            .take(2)
            .map(|p| p.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()));
        if let Some(major) = parts.next().filter(|p| !p.is_empty()) {
            out.push('/');
            out.push_str(bounded(major));
            if let Some(minor) = parts.next() {
                out.push('.');
                out.push_str(bounded(minor));
            }
        }
    }
}

/// A version part as written, cut to a short length: a hostile agent string
/// must not make every call a new version name of unbounded size.
fn bounded(part: &str) -> &str {
    let mut end = part.len().min(16);
    while !part.is_char_boundary(end) {
        end -= 1;
    }
    &part[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_of(source: &str) -> AddressScope {
        Source::parse(source).scope()
    }

    fn agent_family(user_agent: &str) -> String {
        let mut out = String::new();
        Agent::parse(user_agent).push_family(&mut out);
        out
    }

    fn agent_version(user_agent: &str) -> String {
        let mut out = String::new();
        Agent::parse(user_agent).push_version(&mut out);
        out
    }

    #[test]
    fn resource_classes_drop_ids_and_depth() {
        let cases = [
            ("arn:aws:s3:::bucket/reports/2026/03/x.csv", "arn:aws:s3:::bucket/reports/#/*"),
            ("tickets/12345", "tickets/#"),
            ("projects/p-1/secrets/db-password", "projects/p-#/secrets/*"),
            ("i-0abc12def3456789a", "i-#"),
            ("table/orders", "table/orders"),
            ("job_7f3e2a1b9c", "job_#"),
            ("hooks/xoxb-7391-R7kQ2mVx9Lp4Wz8N", "hooks/xoxb-#-#"),
        ];
        for (input, class) in cases {
            assert_eq!(resource_class(input), class, "{input}");
        }
    }

    /// The class as first written (split at `/`, then at separators, each token rescanned and
    /// copied): the one-pass reader must give exactly this, or baselines would learn new names.
    fn class_by_splitting(resource: &str) -> String {
        fn looks_like_id(token: &str) -> bool {
            let len = token.len();
            let digits = token.bytes().filter(u8::is_ascii_digit).count();
            let all = |class: fn(&u8) -> bool| token.bytes().all(|b| class(&b));
            len > 0
                && (digits == len
                    || (len >= 6 && digits * 2 >= len)
                    || (digits > 0 && len >= 8 && all(u8::is_ascii_hexdigit))
                    || (digits > 0 && len >= 16 && all(u8::is_ascii_alphanumeric)))
        }
        let mut out = String::new();
        for (i, segment) in resource.split('/').enumerate() {
            if i == 3 {
                out.push_str("/*");
                break;
            }
            if i > 0 {
                out.push('/');
            }
            let mut rest = segment;
            loop {
                let end = rest.bytes().position(is_separator).unwrap_or(rest.len());
                out.push_str(if looks_like_id(&rest[..end]) { "#" } else { &rest[..end] });
                let Some(separator) = rest[end..].chars().next() else { break };
                out.push(separator);
                rest = &rest[end + 1..];
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn an_agent_is_cut_where_a_split_at_its_delimiters_cuts_it(user_agent in "[a-z/.( ;é\t\"\\[\\]-]{0,30}") {
            let first = user_agent.trim().split([' ', '(', ';']).next().unwrap_or("");
            let (name, version) = first.split_once('/').unwrap_or((first, ""));
            let name = name.trim_matches(|c: char| c == '[' || c == ']' || c == '"');
            let agent = Agent::parse(&user_agent);
            proptest::prop_assert_eq!((agent.name, agent.version), (name, version));
        }
    }

    proptest::proptest! {
        #[test]
        fn one_pass_classes_match_the_split_reading(resource in "[a-fA-Z0-9/:._= xé-]{0,60}") {
            proptest::prop_assert_eq!(resource_class(&resource), class_by_splitting(&resource));
        }
    }

    /// An address from a small space, so that pairs often share a network and often do not.
    fn address() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let v4 = (0u8..3, 0u8..3, 0u8..3, 0u8..3).prop_map(|(a, b, c, d)| format!("10.{a}.{b}.{}", c * 100 + d));
        let v6 = (0u16..3, 0u16..3, 0u16..3, 0u16..3).prop_map(|(a, b, c, d)| format!("2001:{a:x}:{b:x}:{c:x}::{d:x}"));
        prop_oneof![v4, v6, Just("ec2.amazonaws.com".to_string())]
    }

    proptest::proptest! {
        #[test]
        fn two_addresses_share_a_prefix_exactly_when_they_share_its_text(a in address(), b in address()) {
            for width in [Width::Network, Width::WideNetwork] {
                let (a, b) = (Source::parse(&a), Source::parse(&b));
                let text = |s: &Source| {
                    let mut out = String::new();
                    s.push_prefix(&mut out, width);
                    out
                };
                proptest::prop_assert_eq!(a.prefix(width).is_some(), a.addr.is_some(), "a prefix is an address's");
                if let (Some(pa), Some(pb)) = (a.prefix(width), b.prefix(width)) {
                    proptest::prop_assert_eq!(pa == pb, text(&a) == text(&b));
                }
            }
        }
    }

    #[test]
    fn wide_networks_scopes_and_versions() {
        assert_eq!(wide_network("10.1.2.3"), "10.1.0.0/16");
        assert_eq!(wide_network("2001:db8:aa::1"), "2001:db8::/32");
        assert_eq!(wide_network("Lambda.amazonaws.com"), "lambda.amazonaws.com");
        assert_eq!(scope_of("10.1.2.3"), AddressScope::Private);
        assert_eq!(scope_of("100.70.1.1"), AddressScope::Private);
        assert_eq!(scope_of("fd00::1"), AddressScope::Private);
        assert_eq!(scope_of("45.137.21.9"), AddressScope::Public);
        assert_eq!(scope_of("ec2.amazonaws.com"), AddressScope::NotAnAddress);
        assert_eq!(agent_version("aws-cli/2.15.30 Python/3.11.8"), "aws-cli/2.15");
        assert_eq!(agent_version("Boto3/1.34.69 md/Botocore#1.34.69"), "boto3/1.34");
        assert_eq!(agent_version("curl/8"), "curl/8");
        assert_eq!(agent_version("console.amazonaws.com"), "console.amazonaws.com");
        assert_eq!(agent_version(&format!("x/{}.1", "9".repeat(100))).len(), "x/".len() + 16 + 2);
    }

    #[test]
    fn networks_agents_and_prefixes() {
        assert_eq!(resource_prefix("arn:aws:s3:::lake/finance/q1/x.csv"), "arn:aws:s3:::lake/finance");
        assert_eq!(resource_prefix("tickets/12345"), "tickets/12345");
        assert_eq!(network("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(ipv4_region("10.100.73.0/24"), Some("10.100."));
        assert_eq!(ipv4_region("2001:db8:1::/48"), None);
        assert_eq!(ipv4_region("lambda.amazonaws.com"), None);
        assert_eq!(network("2001:db8:1:2::1"), "2001:db8:1::/48");
        assert_eq!(network("Lambda.amazonaws.com"), "lambda.amazonaws.com");
        assert_eq!(agent_family("aws-cli/2.15.0 Python/3.11"), "aws-cli");
        assert_eq!(agent_family("[Boto3/1.34.0 md/Botocore]"), "boto3");
        assert_eq!(agent_family(""), "unknown");
    }
}
