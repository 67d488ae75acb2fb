//! Fleet context: which calls identities of the same kind (peer group) make,
//! and which they adopted recently. A release that adds a call to every
//! pipeline is a rollout, not an incident; this is how the engine tells.
//!
//! Counts are kept at two levels (`PeerGroups`, from `peer_group`): the
//! identity's group and its family. A name stem can split one kind into
//! small groups (`deploy-payments`, `deploy-ledger` under `role/ci`); a
//! release rolled out to all of them is seen in the family, where a group of
//! two alone would make its first two adopters look like incidents.
//!
//! Bounded by the identities held: a (group, call) has users only while some
//! identity of the group makes it, and its adopters go with its last user.

use super::counts::Minute;
use super::intern::{FastMap, IdVisitor, Ids, Sym};
use super::pairs;
use super::CallId;
use serde::{Deserialize, Serialize};

/// Most recent adopters remembered per (group, call).
const MAX_ADOPTERS: usize = 16;

/// The two levels of peers an identity has: its group, and the group's
/// family (`peer_group::peer_family`); the same when the group has no parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerGroups {
    pub group: Sym,
    pub family: Sym,
}

impl PeerGroups {
    fn levels(self) -> impl Iterator<Item = Sym> {
        std::iter::once(self.group).chain((self.family != self.group).then_some(self.family))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupCall {
    pub group: Sym,
    pub call: CallId,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    #[serde(with = "pairs")]
    group_sizes: FastMap<Sym, u32>,
    /// Identities of the group whose repertoire holds the call.
    #[serde(with = "pairs")]
    users: FastMap<GroupCall, u32>,
    /// Who adopted the call recently, and when.
    #[serde(with = "pairs")]
    adopters: FastMap<GroupCall, Vec<(Sym, Minute)>>,
    /// Operations taken up by identities that had learned a baseline, and
    /// how many of them were sensitive (`sensitive`): the fleet's own base
    /// rate of sensitive changes.
    #[serde(default)]
    adoptions: Adoptions,
    /// Adoptions before this minute are past the rollout window (`expire`):
    /// not noted, so an identity moved in from another instance brings only
    /// its recent ones.
    #[serde(default)]
    noted_from: Minute,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Adoptions {
    pub all: u64,
    pub sensitive: u64,
}

impl Adoptions {
    /// Chance that an operation a settled identity takes up is sensitive:
    /// `(sensitive + 1) / (all + 10)`, a prior of one in ten that the
    /// fleet's own history replaces as it grows. A fleet whose identities
    /// took up 500 operations, 4 of them sensitive, gives 0.01.
    pub fn p_sensitive(&self) -> f64 {
        (self.sensitive as f64 + 1.0) / (self.all as f64 + 10.0)
    }
}

/// What peers of one level say about one identity's new call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peers {
    pub group_size: u32,
    /// Other identities of the group that make this call.
    pub using: u32,
    /// Other identities of the group that started making it within the rollout window.
    pub recent_adopters: u32,
}

impl Peers {
    /// Share of the other identities of the group that make the call.
    pub fn share(&self) -> f64 {
        if self.group_size > 0 {
            self.using as f64 / self.group_size as f64
        } else {
            0.0
        }
    }
}

/// What the group and the family say about one identity's new call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    pub group: Peers,
    pub family: Peers,
}

impl PeerView {
    /// Recent adopters at the level where most took the call up.
    pub fn recent_adopters(&self) -> u32 {
        self.group.recent_adopters.max(self.family.recent_adopters)
    }

    /// The level where the call is most common, named ("kind" for the
    /// group, "family"), and its counts: what its share and a summary use.
    pub fn commonest(&self) -> (&'static str, &Peers) {
        match self.family.share() > self.group.share() {
            true => ("family", &self.family),
            false => ("kind", &self.group),
        }
    }
}

impl Fleet {
    /// Identities held in a group (or family).
    pub fn group_size(&self, group: Sym) -> u32 {
        self.group_sizes.get(&group).copied().unwrap_or(0)
    }

    pub fn join(&mut self, groups: PeerGroups) {
        for group in groups.levels() {
            increment(&mut self.group_sizes, group);
        }
    }

    pub fn leave(&mut self, groups: PeerGroups, calls: impl Iterator<Item = CallId>) {
        for group in groups.levels() {
            decrement(&mut self.group_sizes, group);
        }
        for call in calls {
            self.forget(groups, call);
        }
    }

    pub fn adopt(&mut self, groups: PeerGroups, call: CallId, identity: Sym, now: Minute) {
        for group in groups.levels() {
            increment(&mut self.users, GroupCall { group, call });
        }
        self.note_adopter(groups, call, identity, now);
    }

    /// Records that an identity started making a call, before it is learned
    /// (a call held by an open incident): a rollout is seen by what
    /// identities do, whether or not it has become their baseline yet.
    pub fn note_adopter(&mut self, groups: PeerGroups, call: CallId, identity: Sym, now: Minute) {
        if now < self.noted_from {
            return;
        }
        for group in groups.levels() {
            let adopters = self.adopters.entry(GroupCall { group, call }).or_default();
            adopters.retain(|(who, _)| *who != identity);
            adopters.insert(0, (identity, now));
            adopters.truncate(MAX_ADOPTERS);
        }
    }

    pub fn forget(&mut self, groups: PeerGroups, call: CallId) {
        for group in groups.levels() {
            let key = GroupCall { group, call };
            if decrement(&mut self.users, key) {
                self.adopters.remove(&key);
            }
        }
    }

    pub fn peers(&self, groups: PeerGroups, call: CallId, identity: Sym, now: Minute, window: Minute) -> PeerView {
        let level = |group| self.level(group, call, identity, now, window);
        PeerView { group: level(groups.group), family: level(groups.family) }
    }

    fn level(&self, group: Sym, call: CallId, identity: Sym, now: Minute, window: Minute) -> Peers {
        let key = GroupCall { group, call };
        // Adoptions later than `now` are left out: only an identity held by another instance
        // that has read further in event time brings them (its share), and replay would not
        // have them yet. Counting them would call a first adopter's new call a rollout.
        let recent = self.adopters.get(&key).map_or(0, |a| {
            a.iter().filter(|(who, at)| *who != identity && *at <= now && now - *at <= window).count() as u32
        });
        Peers {
            group_size: self.group_sizes.get(&group).copied().unwrap_or(0).saturating_sub(1),
            using: self.users.get(&key).copied().unwrap_or(0),
            recent_adopters: recent,
        }
    }

    /// Counts an operation taken up by an identity with a learned baseline.
    pub fn count_adoption(&mut self, sensitive: bool) {
        self.adoptions.all += 1;
        self.adoptions.sensitive += u64::from(sensitive);
    }

    /// Adds (or, with `sign` false, takes back) one identity's adoptions,
    /// when it moves between instances.
    pub fn shift_adoptions(&mut self, by: Adoptions, add: bool) {
        let a = &mut self.adoptions;
        if add {
            a.all += by.all;
            a.sensitive += by.sensitive;
        } else {
            a.all = a.all.saturating_sub(by.all);
            a.sensitive = a.sensitive.saturating_sub(by.sensitive);
        }
    }

    pub fn adoptions(&self) -> Adoptions {
        self.adoptions
    }

    /// Entries held: groups, (group, call) users and adoption lists.
    pub fn size(&self) -> usize {
        self.group_sizes.len() + self.users.len() + self.adopters.len()
    }

    /// Drops adoption records older than the rollout window.
    pub fn expire(&mut self, cutoff: Minute) {
        self.noted_from = self.noted_from.max(cutoff);
        self.adopters.retain(|_, a| {
            a.retain(|(_, at)| *at >= cutoff);
            !a.is_empty()
        });
    }
}

fn increment<K: Eq + std::hash::Hash>(map: &mut FastMap<K, u32>, key: K) {
    let n = map.entry(key).or_default();
    *n = n.saturating_add(1);
}

/// Counts one down, removing the entry at zero; true when it was removed.
fn decrement<K: Eq + std::hash::Hash>(map: &mut FastMap<K, u32>, key: K) -> bool {
    match map.get_mut(&key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            map.remove(&key);
            true
        }
        None => false,
    }
}

impl Ids for GroupCall {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.sym(&mut self.group);
        v.call(&mut self.call);
    }
}

impl Ids for PeerGroups {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.sym(&mut self.group);
        v.sym(&mut self.family);
    }
}

impl Ids for Fleet {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.group_sizes.visit_ids(v);
        self.users.visit_ids(v);
        self.adopters.visit_ids(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_at_both_levels_and_leaving_takes_them_all_back() {
        let (payments, ledger, ci) = (Sym(1), Sym(2), Sym(3));
        let (a, b, c) = (Sym(10), Sym(11), Sym(12));
        let groups = |group| PeerGroups { group, family: ci };
        let call = CallId(7);
        let mut fleet = Fleet::default();
        for (who, group) in [(a, payments), (b, ledger), (c, ledger)] {
            fleet.join(groups(group));
            if who != c {
                fleet.adopt(groups(group), call, who, 100);
            }
        }
        // c's group has one adopter (b); its family has two (a and b).
        let view = fleet.peers(groups(ledger), call, c, 120, 60);
        assert_eq!((view.group.group_size, view.group.using, view.group.recent_adopters), (1, 1, 1));
        assert_eq!((view.family.group_size, view.family.using, view.family.recent_adopters), (2, 2, 2));
        assert_eq!(view.recent_adopters(), 2);
        assert_eq!(view.commonest().0, "kind");
        // A group that is its own family is counted once.
        let alone = PeerGroups { group: Sym(4), family: Sym(4) };
        fleet.join(alone);
        assert_eq!(fleet.peers(alone, call, Sym(13), 120, 60).family.group_size, 0);
        fleet.leave(alone, std::iter::empty());
        for (who, group) in [(a, payments), (b, ledger), (c, ledger)] {
            let calls: Vec<CallId> = if who == c { vec![] } else { vec![call] };
            fleet.leave(groups(group), calls.into_iter());
        }
        assert_eq!(fleet.size(), 0, "{fleet:?}");
    }

    #[test]
    fn an_adoption_later_than_the_judged_call_is_no_rollout_yet() {
        let groups = PeerGroups { group: Sym(1), family: Sym(1) };
        let call = CallId(7);
        let mut fleet = Fleet::default();
        for (who, at) in [(Sym(10), 100), (Sym(11), 130)] {
            fleet.join(groups);
            fleet.adopt(groups, call, who, at);
        }
        // Judged at 120 (another instance's share told of the adoption at 130 early): one.
        assert_eq!(fleet.peers(groups, call, Sym(12), 120, 60).recent_adopters(), 1);
        assert_eq!(fleet.peers(groups, call, Sym(12), 130, 60).recent_adopters(), 2);
        assert_eq!(fleet.peers(groups, call, Sym(12), 161, 60).recent_adopters(), 1, "100 is past the window");
    }
}
