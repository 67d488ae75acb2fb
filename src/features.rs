//! Coarse features of a call that baselines learn on: a resource's class, a
//! source address's network, a user agent's family. Coarse enough that normal
//! variety (object names, ephemeral IPs, version bumps) does not look new.

/// The class of a resource: ids and numbers become `#`, and only the first
/// three `/`-separated segments are kept (`arn:aws:s3:::bucket/reports/2026/03/x.csv` →
/// `arn:aws:s3:::bucket/reports/*`).
pub fn resource_class(resource: &str) -> String {
    let mut out = String::with_capacity(resource.len().min(96));
    for (i, segment) in resource.split('/').enumerate() {
        if i == 3 {
            out.push_str("/*");
            break;
        }
        if i > 0 {
            out.push('/');
        }
        push_generalized(&mut out, segment);
    }
    out
}

/// The top two levels of a resource path, as written (`bucket/finance/q1/x.csv`
/// → `bucket/finance`): the unit of fan-out, where names matter, not their class.
pub fn resource_prefix(resource: &str) -> &str {
    match resource.match_indices('/').nth(1) {
        Some((second, _)) => &resource[..second],
        None => resource,
    }
}

/// Replaces tokens that look like ids (digit runs, long hex, UUIDs) with `#`.
fn push_generalized(out: &mut String, segment: &str) {
    for (j, token) in segment.split(['-', '_', '.', ':', '=', ' ']).enumerate() {
        if j > 0 {
            // Re-insert the separator that split removed.
            let at = segment_offset(segment, token);
            out.push_str(&segment[at - 1..at]);
        }
        if looks_like_id(token) {
            out.push('#');
        } else {
            out.push_str(token);
        }
    }
}

fn segment_offset(segment: &str, token: &str) -> usize {
    token.as_ptr() as usize - segment.as_ptr() as usize
}

fn looks_like_id(token: &str) -> bool {
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    !token.is_empty()
        && (digits == token.len()
            || (token.len() >= 8 && token.bytes().all(|b| b.is_ascii_hexdigit()) && digits > 0)
            || (token.len() >= 6 && digits * 2 >= token.len())
            // Random tokens (session ids, and secrets pasted where a name
            // belongs): a class never keeps them, so no call name carries one.
            || (token.len() >= 16 && digits > 0 && token.bytes().all(|b| b.is_ascii_alphanumeric())))
}

/// The network a source address belongs to: /24 for IPv4, /48 for IPv6; a
/// non-address source (a service name such as `lambda.amazonaws.com`) as is.
pub fn network(source: &str) -> String {
    match source.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => source.to_ascii_lowercase(),
    }
}

/// The wider network a source address belongs to: /16 for IPv4, /32 for
/// IPv6; a non-address source as is. Runners and autoscaled nodes churn
/// through /24s inside one provider block; a call from another block is a
/// different place.
pub fn wide_network(source: &str) -> String {
    match source.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.0.0/16", o[0], o[1])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}::/32", s[0], s[1])
        }
        Err(_) => source.to_ascii_lowercase(),
    }
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
    pub fn of(source: &str) -> AddressScope {
        match source.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => match v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
            {
                true => AddressScope::Private,
                false => AddressScope::Public,
            },
            // fc00::/7 unique local, fe80::/10 link local, ::1.
            Ok(std::net::IpAddr::V6(v6)) => {
                match v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
                {
                    true => AddressScope::Private,
                    false => AddressScope::Public,
                }
            }
            Err(_) => AddressScope::NotAnAddress,
        }
    }

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

/// A user agent's family: its first product token without the version
/// (`aws-cli/2.15.0 Python/3.11` → `aws-cli`).
pub fn agent_family(user_agent: &str) -> String {
    let first = user_agent.trim().split([' ', '(', ';']).next().unwrap_or("");
    let name = first.split('/').next().unwrap_or("");
    let name = name.trim_matches(|c: char| c == '[' || c == ']' || c == '"');
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name.to_ascii_lowercase()
    }
}

/// A user agent's family and version to the minor (`aws-cli/2.15.30 Python/3.11`
/// → `aws-cli/2.15`): a patch release is the same client, a new minor or
/// major version is a change worth a weak signal.
pub fn agent_version(user_agent: &str) -> String {
    let family = agent_family(user_agent);
    let first = user_agent.trim().split([' ', '(', ';']).next().unwrap_or("");
    let version = first.split_once('/').map_or("", |(_, v)| v);
    let mut parts =
        version.split(['.', '-', '+']).take(2).map(|p| p.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()));
    match (parts.next().filter(|p| !p.is_empty()), parts.next()) {
        (Some(major), Some(minor)) => format!("{family}/{}.{}", bounded(major), bounded(minor)),
        (Some(major), None) => format!("{family}/{}", bounded(major)),
        _ => family,
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

    #[test]
    fn wide_networks_scopes_and_versions() {
        assert_eq!(wide_network("10.1.2.3"), "10.1.0.0/16");
        assert_eq!(wide_network("2001:db8:aa::1"), "2001:db8::/32");
        assert_eq!(wide_network("Lambda.amazonaws.com"), "lambda.amazonaws.com");
        assert_eq!(AddressScope::of("10.1.2.3"), AddressScope::Private);
        assert_eq!(AddressScope::of("100.70.1.1"), AddressScope::Private);
        assert_eq!(AddressScope::of("fd00::1"), AddressScope::Private);
        assert_eq!(AddressScope::of("45.137.21.9"), AddressScope::Public);
        assert_eq!(AddressScope::of("ec2.amazonaws.com"), AddressScope::NotAnAddress);
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
