//! Which identities the engine holds when it may hold only `max_identities`.
//!
//! A flood of new identities must not evict the baselines that took weeks to
//! learn: that would let an attacker blind the detector by inventing names.
//! So a new identity starts on probation, and probationers are the first to
//! go, oldest first (by first sight). An identity that becomes learned is
//! promoted to the protected part, which holds at most the cap less a reserve
//! (a tenth) kept for probation; when it is full, the protected identity seen
//! least recently makes room. Every step is a lookup in an ordered set: the
//! work per event does not grow with the number of identities.

use super::counts::Minute;
use super::intern::{IdVisitor, Ids, Sym};
use super::{Baselines, IdentityBaseline};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    /// Identities on probation, as (first seen, identity).
    probation: BTreeSet<(Minute, Sym)>,
    /// Protected identities, as (last seen, identity): derived (`rebuild`).
    #[serde(skip)]
    recency: BTreeSet<(Minute, Sym)>,
}

/// Who is evicted, and whether it was protected (learned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    pub identity: Sym,
    pub protected: bool,
}

/// Room kept for identities on probation: a tenth of the cap, at least one.
fn protected_cap(cap: usize) -> usize {
    cap - (cap / 10).clamp(1, cap.max(1))
}

impl Admission {
    /// A new identity, first seen at `now`, joins probation; returns who must
    /// go so that at most `cap` of the `held` identities (counting it) stay.
    pub fn join(&mut self, identity: Sym, now: Minute, held: usize, cap: usize) -> Vec<Eviction> {
        self.probation.insert((now, identity));
        let mut gone = Vec::new();
        while held - gone.len() > cap {
            let on_probation = self.probation.iter().find(|(_, id)| *id != identity).copied();
            let victim = match on_probation {
                Some(entry) => {
                    self.probation.remove(&entry);
                    Eviction { identity: entry.1, protected: false }
                }
                None => match self.recency.pop_first() {
                    Some((_, id)) => Eviction { identity: id, protected: true },
                    None => break,
                },
            };
            gone.push(victim);
        }
        gone
    }

    /// After an identity's call was learned: keeps its place by last sight, or
    /// promotes it once `learned`. Returns who must go to make room.
    pub fn seen(
        &mut self,
        identity: Sym,
        last_seen_before: Minute,
        b: &IdentityBaseline,
        learned: bool,
        cap: usize,
    ) -> Vec<Eviction> {
        let mut gone = Vec::new();
        if !self.probation.contains(&(b.first_seen, identity)) {
            if last_seen_before != b.last_seen && self.recency.remove(&(last_seen_before, identity)) {
                self.recency.insert((b.last_seen, identity));
            }
            return gone;
        }
        let room = protected_cap(cap);
        if !learned || room == 0 {
            return gone;
        }
        self.probation.remove(&(b.first_seen, identity));
        while self.recency.len() >= room {
            let Some((_, id)) = self.recency.pop_first() else { break };
            gone.push(Eviction { identity: id, protected: true });
        }
        self.recency.insert((b.last_seen, identity));
        gone
    }

    /// Takes in an identity whose baseline was learned elsewhere (a partition
    /// handed over): on probation until learned, protected after. The cap is
    /// enforced from the next newcomer on.
    pub fn admit(&mut self, identity: Sym, b: &IdentityBaseline, learned: bool) {
        match learned {
            false => self.probation.insert((b.first_seen, identity)),
            true => self.recency.insert((b.last_seen, identity)),
        };
    }

    /// Forgets an identity that left for another reason.
    pub fn remove(&mut self, identity: Sym, b: &IdentityBaseline) {
        if !self.probation.remove(&(b.first_seen, identity)) {
            self.recency.remove(&(b.last_seen, identity));
        }
    }

    /// Derives the protected order from the baselines: every identity not on probation.
    pub fn rebuild(&mut self, identities: &Baselines) {
        self.recency = identities
            .iter()
            .filter(|(id, b)| !self.probation.contains(&(b.first_seen, **id)))
            .map(|(id, b)| (b.last_seen, *id))
            .collect();
    }

    /// Checks a loaded probation list against the baselines.
    pub fn check(&self, identities: &Baselines) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for &(first_seen, id) in &self.probation {
            match identities.get(&id) {
                None => return Err(format!("probation: identity {} has no baseline", id.0)),
                Some(b) if b.first_seen != first_seen => {
                    return Err(format!(
                        "probation: identity {} first seen at minute {first_seen}, its baseline says {}",
                        id.0, b.first_seen
                    ))
                }
                Some(_) if !seen.insert(id) => return Err(format!("probation: identity {} is listed twice", id.0)),
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub fn on_probation(&self) -> usize {
        self.probation.len()
    }
}

impl Ids for Admission {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        for set in [&mut self.probation, &mut self.recency] {
            *set = std::mem::take(set)
                .into_iter()
                .map(|(at, mut id)| {
                    v.sym(&mut id);
                    (at, id)
                })
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(first_seen: Minute, last_seen: Minute) -> IdentityBaseline {
        IdentityBaseline { first_seen, last_seen, ..IdentityBaseline::default() }
    }

    #[test]
    fn the_reserve_is_a_tenth_of_the_cap() {
        assert_eq!([1, 2, 5, 10, 100_000].map(protected_cap), [0, 1, 4, 9, 90_000]);
    }

    #[test]
    fn newcomers_evict_the_oldest_probationer_and_never_a_protected_identity() {
        let mut a = Admission::default();
        let cap = 10;
        // Identity 0 is learned at once and promoted.
        assert!(a.join(Sym(0), 0, 1, cap).is_empty());
        assert!(a.seen(Sym(0), 0, &baseline(0, 5), true, cap).is_empty());
        let mut held = 1;
        let mut evicted = Vec::new();
        for i in 1..100u32 {
            held += 1;
            let gone = a.join(Sym(i), i, held, cap);
            held -= gone.len();
            evicted.extend(gone);
        }
        assert_eq!(held, cap);
        assert_eq!(evicted.len(), 90);
        assert!(evicted.iter().all(|e| !e.protected && e.identity != Sym(0)));
        // Oldest first.
        assert_eq!(evicted[0].identity, Sym(1));
        assert_eq!(evicted[89].identity, Sym(90));
    }

    #[test]
    fn a_full_protected_part_gives_up_its_least_recently_seen() {
        let mut a = Admission::default();
        let cap = 5; // four protected, one in reserve
        for i in 0..4u32 {
            a.join(Sym(i), i, i as usize + 1, cap);
            a.seen(Sym(i), i, &baseline(i, 100 - i), true, cap);
        }
        a.join(Sym(9), 50, 5, cap);
        let gone = a.seen(Sym(9), 50, &baseline(50, 200), true, cap);
        // Identity 3 was last seen at minute 97, the earliest.
        assert_eq!(gone, vec![Eviction { identity: Sym(3), protected: true }]);
        // Seeing a protected identity moves it to the back.
        a.seen(Sym(2), 98, &baseline(2, 300), true, cap);
        assert!(a.join(Sym(10), 60, 5, cap).is_empty());
        assert_eq!(a.join(Sym(11), 61, 6, cap), vec![Eviction { identity: Sym(10), protected: false }]);
        // Identity 1 (last seen at 99) is now the least recent; 2 moved to 300.
        let gone = a.seen(Sym(11), 61, &baseline(61, 400), true, cap);
        assert_eq!(gone, vec![Eviction { identity: Sym(1), protected: true }]);
        assert_eq!(a.on_probation(), 0);
    }
}
