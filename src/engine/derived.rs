//! The names `observe` derived from texts seen lately: a user agent's family and version, a
//! resource's class. A fleet has few distinct user agents and resources, and every call
//! carries them: parsing a user agent and interning its names on every call was 7% of a
//! replay's engine instructions, classing a resource 4%. The ids are the interner's, so they
//! are good until names are collected, which forgets them all (`Engine::collect_names`).

use crate::baseline::intern::{Sym, TextMap};

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
}
