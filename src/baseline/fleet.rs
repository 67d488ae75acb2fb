//! Fleet context: which calls identities of the same kind (peer group) make,
//! and which they adopted recently. A release that adds a call to every
//! pipeline is a rollout, not an incident; this is how the engine tells.
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

/// What peers say about one identity's new call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peers {
    pub group_size: u32,
    /// Other identities of the group that make this call.
    pub using: u32,
    /// Other identities of the group that started making it within the rollout window.
    pub recent_adopters: u32,
}

impl Fleet {
    pub fn join(&mut self, group: Sym) {
        increment(&mut self.group_sizes, group);
    }

    pub fn leave(&mut self, group: Sym, calls: impl Iterator<Item = CallId>) {
        decrement(&mut self.group_sizes, group);
        for call in calls {
            self.forget(group, call);
        }
    }

    pub fn adopt(&mut self, group: Sym, call: CallId, identity: Sym, now: Minute) {
        increment(&mut self.users, GroupCall { group, call });
        self.note_adopter(group, call, identity, now);
    }

    /// Records that an identity started making a call, before it is learned
    /// (a call held by an open incident): a rollout is seen by what
    /// identities do, whether or not it has become their baseline yet.
    pub fn note_adopter(&mut self, group: Sym, call: CallId, identity: Sym, now: Minute) {
        let adopters = self.adopters.entry(GroupCall { group, call }).or_default();
        adopters.retain(|(who, _)| *who != identity);
        adopters.insert(0, (identity, now));
        adopters.truncate(MAX_ADOPTERS);
    }

    pub fn forget(&mut self, group: Sym, call: CallId) {
        let key = GroupCall { group, call };
        if decrement(&mut self.users, key) {
            self.adopters.remove(&key);
        }
    }

    pub fn peers(&self, group: Sym, call: CallId, identity: Sym, now: Minute, window: Minute) -> Peers {
        let key = GroupCall { group, call };
        let recent = self.adopters.get(&key).map_or(0, |a| {
            a.iter().filter(|(who, at)| *who != identity && now.saturating_sub(*at) <= window).count() as u32
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

    pub fn adoptions(&self) -> Adoptions {
        self.adoptions
    }

    /// Entries held: groups, (group, call) users and adoption lists.
    pub fn size(&self) -> usize {
        self.group_sizes.len() + self.users.len() + self.adopters.len()
    }

    /// Drops adoption records older than the rollout window.
    pub fn expire(&mut self, cutoff: Minute) {
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

impl Ids for Fleet {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.group_sizes.visit_ids(v);
        self.users.visit_ids(v);
        self.adopters.visit_ids(v);
    }
}
