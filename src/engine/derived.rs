//! The names `observe` derived from texts seen lately: a user agent's family and version, a
//! resource's class, a source address's networks. A fleet has few distinct user agents,
//! resources and networks, and every call carries them: parsing a user agent and interning
//! its names on every call was 7% of a replay's engine instructions, classing a resource 4%;
//! writing and interning an address's two networks was 3% of all a replay's instructions.
//! The ids are the interner's, so they are good until names are collected, which forgets
//! them all (`Engine::collect_names`).

use crate::baseline::intern::{Sym, TextMap};
use crate::features::{Prefix, Source, Width};
use std::collections::HashMap;

/// Texts remembered, at most, of each kind: a stream of distinct ones (a hostile one, or a
/// fleet of many) costs an occasional fresh start, and never more memory than this many texts
/// (4 MiB at the default bound on a field, 1 KiB).
const MAX_TEXTS: usize = 4_096;

/// An agent's names, each interned the first time a call needs it: the version only for
/// calls with a source (see `Engine::observe`), so that ids are handed out in the order
/// they would be without this memory.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct AgentNames {
    pub family: Option<Sym>,
    pub version: Option<Sym>,
}

/// What was derived from each text of one kind seen lately.
#[derive(Debug)]
pub struct Derived<V> {
    seen: TextMap<Box<str>, V>,
}

impl<V> Default for Derived<V> {
    fn default() -> Self {
        Derived { seen: TextMap::default() }
    }
}

impl<V: Copy> Derived<V> {
    /// What was derived from `text` (none if it was not seen).
    pub fn get(&self, text: &str) -> Option<V> {
        self.seen.get(text).copied()
    }

    pub fn remember(&mut self, text: &str, derived: V) {
        if self.seen.len() >= MAX_TEXTS && self.seen.get(text).is_none() {
            self.seen.clear();
        }
        self.seen.insert(text.into(), derived);
    }

    pub fn forget(&mut self) {
        self.seen.clear();
    }
}

/// The networks of addresses seen lately, by prefix rather than by text: a fleet calls from
/// tens of thousands of addresses (46,000 in the replay bench's fortnight) in a few hundred
/// networks (695 /24s there), so an address's text is seldom met again before a bounded
/// memory of texts is full, while its network is.
#[derive(Debug, Default)]
pub struct Networks {
    seen: HashMap<Prefix, Sym, foldhash::fast::RandomState>,
}

impl Networks {
    /// The id of `source`'s network of `width`; `intern` names it the first time (and
    /// every time for a source that is not an address: those are few, and not parsed).
    pub fn of(&mut self, source: &Source, width: Width, intern: impl FnOnce() -> Sym) -> Sym {
        let Some(prefix) = source.prefix(width) else { return intern() };
        if let Some(&id) = self.seen.get(&prefix) {
            return id;
        }
        if self.seen.len() >= MAX_TEXTS {
            self.seen.clear();
        }
        let id = intern();
        self.seen.insert(prefix, id);
        id
    }

    pub fn forget(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_past_the_bound_start_afresh() {
        let mut agents = Derived::default();
        let names = AgentNames { family: Some(Sym(1)), version: None };
        for n in 0..MAX_TEXTS {
            agents.remember(&format!("agent/{n}"), names);
        }
        assert_eq!(agents.get("agent/7"), Some(names));
        agents.remember("agent/7", AgentNames { version: Some(Sym(2)), ..names });
        assert_eq!(agents.seen.len(), MAX_TEXTS, "a known agent updated is no newcomer");
        agents.remember("one more", names);
        assert_eq!(agents.seen.len(), 1);
        assert_eq!(agents.get("agent/7"), None);
    }

    #[test]
    fn a_network_is_named_once_and_a_name_that_is_no_address_every_time() {
        let mut networks = Networks::default();
        let mut named = Vec::new();
        let mut of = |networks: &mut Networks, source: &str, width: Width| {
            let source = Source::parse(source);
            networks.of(&source, width, || {
                named.push(width);
                Sym(named.len() as u32)
            })
        };
        assert_eq!(of(&mut networks, "10.1.2.3", Width::Network), Sym(1));
        assert_eq!(of(&mut networks, "10.1.2.200", Width::Network), Sym(1), "the same /24");
        assert_eq!(of(&mut networks, "10.1.2.3", Width::WideNetwork), Sym(2), "its /16 is another name");
        assert_eq!(of(&mut networks, "10.1.9.3", Width::WideNetwork), Sym(2));
        assert_eq!(of(&mut networks, "10.1.9.3", Width::Network), Sym(3));
        assert_eq!(of(&mut networks, "lambda.amazonaws.com", Width::Network), Sym(4));
        assert_eq!(of(&mut networks, "lambda.amazonaws.com", Width::Network), Sym(5), "not remembered");
        networks.forget();
        assert_eq!(of(&mut networks, "10.1.2.3", Width::Network), Sym(6));
        for n in 0..MAX_TEXTS as u32 {
            of(&mut networks, &std::net::Ipv4Addr::from(n << 8).to_string(), Width::Network);
        }
        assert!(networks.seen.len() <= MAX_TEXTS, "bounded: {}", networks.seen.len());
    }
}
