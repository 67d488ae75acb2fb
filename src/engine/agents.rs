//! The names `observe` derived from each user agent seen lately. A fleet has few distinct
//! user agents and every call carries one: parsing it and interning its family and version
//! on every call was 7% of a replay's engine instructions. The ids are the interner's, so
//! they are good until names are collected, which forgets them all (`Engine::collect_names`).

use crate::baseline::intern::{Sym, TextMap};

/// User agents remembered, at most: a stream of distinct ones (a hostile one, or a fleet of
/// many) costs an occasional fresh start, and never more memory than this many agents' text
/// (4 MiB at the default bound on a field, 1 KiB).
const MAX_AGENTS: usize = 4_096;

/// An agent's names, each interned the first time a call needs it: the version only for
/// calls with a source (see `Engine::observe`), so that ids are handed out in the order
/// they would be without this memory.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct AgentNames {
    pub family: Option<Sym>,
    pub version: Option<Sym>,
}

#[derive(Debug, Default)]
pub struct Agents {
    seen: TextMap<Box<str>, AgentNames>,
}

impl Agents {
    /// The names of `user_agent` derived so far (none if it was not seen).
    pub fn get(&self, user_agent: &str) -> AgentNames {
        self.seen.get(user_agent).copied().unwrap_or_default()
    }

    pub fn remember(&mut self, user_agent: &str, names: AgentNames) {
        if self.seen.len() >= MAX_AGENTS && self.seen.get(user_agent).is_none() {
            self.seen.clear();
        }
        self.seen.insert(user_agent.into(), names);
    }

    pub fn forget(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_past_the_bound_start_afresh() {
        let mut agents = Agents::default();
        let names = AgentNames { family: Some(Sym(1)), version: None };
        for n in 0..MAX_AGENTS {
            agents.remember(&format!("agent/{n}"), names);
        }
        assert_eq!(agents.get("agent/7"), names);
        agents.remember("agent/7", AgentNames { version: Some(Sym(2)), ..names });
        assert_eq!(agents.seen.len(), MAX_AGENTS, "a known agent updated is no newcomer");
        agents.remember("one more", names);
        assert_eq!(agents.seen.len(), 1);
        assert_eq!(agents.get("agent/7"), AgentNames::default());
    }
}
