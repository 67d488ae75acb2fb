//! The reference rule overreach must beat: a bare first-seen rule, as Elastic's
//! New Terms and Datadog's New Value rules work. It alerts when an identity makes
//! a call (target, action) or uses a source network (/24) it has not used in the
//! previous N days, once the identity has a short history.

use crate::model::{AccessEvent, Millis};
use crate::time::DAY;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirstSeenConfig {
    /// A term unseen for this long counts as new again (New Terms' history window).
    pub lookback: Millis,
    /// No alerts before an identity has this much history, to be fair to the rule.
    pub history: Millis,
}

impl Default for FirstSeenConfig {
    fn default() -> Self {
        FirstSeenConfig { lookback: 30 * DAY, history: 7 * DAY }
    }
}

/// A call an identity makes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallKey {
    target: String,
    action: String,
}

#[derive(Debug)]
struct History {
    first: Millis,
    calls: HashMap<CallKey, Millis>,
    networks: HashMap<String, Millis>,
}

#[derive(Debug, Default)]
pub struct FirstSeen {
    config: FirstSeenConfig,
    identities: HashMap<String, History>,
}

impl FirstSeen {
    pub fn new(config: FirstSeenConfig) -> FirstSeen {
        FirstSeen { config, identities: HashMap::new() }
    }

    /// Records the event and says whether the rule alerts on it.
    pub fn observe(&mut self, e: &AccessEvent) -> bool {
        let lookback = self.config.lookback;
        let history = self.identities.entry(e.identity.to_string()).or_insert_with(|| History {
            first: e.time,
            calls: HashMap::new(),
            networks: HashMap::new(),
        });
        let is_new = |last: Option<&Millis>| last.is_none_or(|&t| e.time - t > lookback);
        let key = CallKey { target: e.target.to_string(), action: e.action.to_string() };
        let mut new_term = is_new(history.calls.get(&key));
        history.calls.insert(key, e.time);
        if let Some(ip) = &e.source_ip {
            let network = network_of(ip);
            new_term |= is_new(history.networks.get(network));
            history.networks.insert(network.to_string(), e.time);
        }
        new_term && e.time - history.first >= self.config.history
    }
}

/// The /24 of an IPv4 address; any other address as it is.
fn network_of(ip: &str) -> &str {
    match ip.rfind('.') {
        Some(dot) if ip.bytes().filter(|&b| b == b'.').count() == 3 => &ip[..dot],
        _ => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(day: f64, action: &str, ip: &str) -> AccessEvent {
        AccessEvent {
            identity: "ci".into(),
            time: (day * DAY as f64) as Millis,
            target: "s3".into(),
            action: action.into(),
            source_ip: Some(ip.into()),
            ..AccessEvent::default()
        }
    }

    #[test]
    fn alerts_on_new_terms_after_the_history() {
        let mut rule = FirstSeen::new(FirstSeenConfig::default());
        // (event, alerts?)
        let cases = [
            (event(0.0, "Get", "10.0.0.1"), false),
            (event(1.0, "Put", "10.0.0.1"), false),   // new, but still learning
            (event(8.0, "Get", "10.0.0.9"), false),   // same /24
            (event(8.5, "Delete", "10.0.0.1"), true), // new call
            (event(9.0, "Get", "10.0.1.1"), true),    // new /24
            (event(9.5, "Delete", "10.0.1.1"), false),
            (event(45.0, "Put", "10.0.0.1"), true), // unseen for more than 30 days
        ];
        for (i, (e, alerts)) in cases.iter().enumerate() {
            assert_eq!(rule.observe(e), *alerts, "case {i}");
        }
    }

    #[test]
    fn network_is_the_slash_24() {
        assert_eq!(network_of("192.0.2.77"), "192.0.2");
        assert_eq!(network_of("2001:db8::1"), "2001:db8::1");
        assert_eq!(network_of("ec2.amazonaws.com"), "ec2.amazonaws.com");
    }
}
