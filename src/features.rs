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
    for (j, token) in segment.split(['-', '_', '.', ':', '=']).enumerate() {
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
            || (token.len() >= 6 && digits * 2 >= token.len()))
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
        ];
        for (input, class) in cases {
            assert_eq!(resource_class(input), class, "{input}");
        }
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
