//! Fleet facts: what the engine knows across identities. The peer fleet's
//! repertoires and rollouts (`Fleet`), declared grants and lifecycle facts
//! (`Registry`), and which identities used each credential lately.
//!
//! Every change to them is recorded with the event time of the record that
//! caused it and takes effect only for records strictly later (`advance`).
//! Calls of one millisecond may reach the engine in any order (two partitions
//! of a topic, two files, a CloudTrail object read whole), and none of them
//! then sees what another of that millisecond changed: judgements do not depend
//! on which partition's records happened to arrive first. Changes of one
//! millisecond are applied in a canonical order (by identity name, then in the
//! order that identity made them), so the facts come out the same too.

use crate::baseline::counts::Minute;
use crate::baseline::fleet::{Adoptions, Fleet, PeerGroups};
use crate::baseline::intern::{forget_least_recent, FastMap, IdVisitor, Ids, Names, Sym};
use crate::baseline::{pairs, CallId, CallKey};
use crate::grants::Registry;
use crate::model::{Lifecycle, Millis};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Identities a credential remembers for reuse.
const MAX_CREDENTIAL_USERS: usize = 4;
/// Credentials whose recent users are remembered, the most recently used kept
/// ([`Facts::shed_credentials`]). A record names any credential it likes: without a bound,
/// distinct credential ids held the fleet's memory for the whole reuse window (a day), 1.2
/// million of them 200 MB, and at 10,000 records a second a day holds 864 million.
const MAX_CREDENTIALS: usize = 1_000_000;

/// One identity's share of the fleet facts, in names: what an instance
/// publishes for each identity it holds, and what every other instance counts
/// for it (`Facts::set_remote`), so that peer, rollout and credential-reuse
/// judgements see the whole fleet whichever instance holds which identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub group: String,
    pub family: String,
    /// Operations (target, action) it makes, with the minute it took each up.
    pub ops: Vec<(String, String, Minute)>,
    /// Operations its open incident holds back from learning, with the minute it started each.
    pub held: Vec<(String, String, Minute)>,
    pub adoptions: Adoptions,
    /// Credentials (by `stable_hash`) it used lately, and when.
    pub credentials: Vec<(u64, Millis)>,
}

/// One change to the fleet facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// An identity joined its peer group and family.
    Join {
        groups: PeerGroups,
    },
    /// An identity left (evicted), with the operations it made.
    Leave {
        groups: PeerGroups,
        ops: Vec<CallId>,
    },
    /// An identity learned a new operation; `settled` when it had a learned
    /// baseline then (the fleet's base rate of sensitive adoptions counts those).
    Adopt {
        groups: PeerGroups,
        op: CallId,
        minute: Minute,
        settled: Option<Sensitive>,
    },
    /// An identity started making an operation its open incident holds back from learning.
    NoteAdopter {
        groups: PeerGroups,
        op: CallId,
        minute: Minute,
    },
    /// An identity forgot an operation.
    Forget {
        groups: PeerGroups,
        op: CallId,
    },
    /// An identity used a credential (by `stable_hash` of its id).
    CredentialUse {
        credential: u64,
    },
    Lifecycle(Lifecycle),
}

/// A change not in effect yet: when, and by which identity's record (`None`
/// for a lifecycle fact, which names its own subject).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    at: Millis,
    by: Option<Sym>,
    change: Change,
}

/// Whether an operation a settled identity took up is in the sensitive catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sensitive(pub bool);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub fleet: Fleet,
    pub registry: Registry,
    /// Recent identities per credential (by hash of its id), most recent first.
    #[serde(default, with = "pairs")]
    credentials: FastMap<u64, Vec<(Sym, Millis)>>,
    /// Changes not in effect yet, by time, then in the order they were recorded: a record
    /// read late (earlier than others already read) has its changes take effect with the
    /// others of its time, not behind later ones. A queue, not a tree: nearly every change
    /// goes at the back and leaves from the front (a tree cost 5% of a replay's instructions).
    #[serde(default, with = "pending_list")]
    pending: VecDeque<Pending>,
    /// What other instances publish of the identities they hold, as counted here.
    #[serde(default, with = "pairs")]
    remote: FastMap<Sym, Contribution>,
}

impl Facts {
    /// Records a change caused by a record of identity `by` at `at`; it
    /// takes effect for later records.
    pub fn record(&mut self, at: Millis, by: Option<Sym>, change: Change) {
        let place = self.pending.partition_point(|p| p.at <= at);
        self.pending.insert(place, Pending { at, by, change });
    }

    /// Puts into effect every change recorded at a time before `now`.
    pub fn advance(&mut self, now: Millis, names: &Names) {
        let due = self.pending.partition_point(|p| p.at < now);
        // Nearly every call leaves one change due at the next.
        if due == 1 {
            let only = self.pending.pop_front().expect("one change due");
            self.apply(only);
            return;
        }
        let mut batch: Vec<Pending> = self.pending.drain(..due).collect();
        // Stable: one identity's changes keep the order it made them in.
        let name = |by: Option<Sym>| by.map_or("", |s| names.name(s));
        batch.sort_by(|x, y| x.at.cmp(&y.at).then_with(|| name(x.by).cmp(name(y.by))));
        for p in batch {
            self.apply(p);
        }
    }

    fn apply(&mut self, Pending { at, by, change }: Pending) {
        // Every change but a lifecycle fact has the identity it is about.
        let identity = || by.expect("a fleet change names its identity");
        match change {
            Change::Join { groups } => self.fleet.join(groups),
            Change::Leave { groups, ops } => self.fleet.leave(groups, ops.into_iter()),
            Change::Adopt { groups, op, minute, settled } => {
                self.fleet.adopt(groups, op, identity(), minute);
                if let Some(Sensitive(sensitive)) = settled {
                    self.fleet.count_adoption(sensitive);
                }
            }
            Change::NoteAdopter { groups, op, minute } => self.fleet.note_adopter(groups, op, identity(), minute),
            Change::Forget { groups, op } => self.fleet.forget(groups, op),
            Change::CredentialUse { credential } => {
                let identity = identity();
                let users = self.credentials.entry(credential).or_default();
                match users.first_mut() {
                    // Nearly always: the identity that used the credential last uses it again.
                    Some((last, when)) if *last == identity => *when = at,
                    _ => {
                        users.retain(|(who, _)| *who != identity);
                        users.insert(0, (identity, at));
                        users.truncate(MAX_CREDENTIAL_USERS);
                    }
                }
                self.shed_credentials(MAX_CREDENTIALS);
            }
            Change::Lifecycle(fact) => self.registry.apply(at, &fact),
        }
    }

    /// Counts what another instance published of an identity it holds
    /// (`None`: it holds it no more), in place of what it published before.
    /// Takes effect at once: a remote identity's facts reach here later than
    /// a local one's by the time it takes to publish them (see docs/service.md).
    pub fn set_remote(&mut self, names: &mut Names, identity: &str, contribution: Option<Contribution>) {
        let id = names.intern(identity);
        if let Some(old) = self.remote.remove(&id) {
            self.count(names, id, &old, false);
        }
        if let Some(new) = contribution {
            self.count(names, id, &new, true);
            self.remote.insert(id, new);
        }
    }

    /// An identity this engine took over: what was counted for it as remote
    /// gives way to its own state's share.
    pub fn take_over(&mut self, names: &mut Names, identity: Sym, own: &Contribution) {
        if let Some(old) = self.remote.remove(&identity) {
            self.count(names, identity, &old, false);
        }
        self.count(names, identity, own, true);
    }

    /// An identity this engine hands over: its share stays counted, now as
    /// remote, until its new holder publishes it.
    pub fn hand_over(&mut self, identity: Sym, own: Contribution) {
        self.remote.insert(identity, own);
    }

    /// Adds (`add`) or takes back one identity's share.
    fn count(&mut self, names: &mut Names, identity: Sym, c: &Contribution, add: bool) {
        let groups = PeerGroups { group: names.intern(&c.group), family: names.intern(&c.family) };
        let mut op = |target: &str, action: &str| {
            let key = CallKey { target: names.intern(target), action: names.intern(action), class: names.intern("") };
            names.call(key).1
        };
        let ops: Vec<(CallId, Minute)> = c.ops.iter().map(|(t, a, m)| (op(t, a), *m)).collect();
        let held: Vec<(CallId, Minute)> = c.held.iter().map(|(t, a, m)| (op(t, a), *m)).collect();
        self.fleet.shift_adoptions(c.adoptions, add);
        if !add {
            self.fleet.leave(groups, ops.into_iter().map(|(op, _)| op));
            // Only the credentials this share names can be left without users: the others
            // are not looked at (the whole map was, on every share taken back).
            for (credential, _) in &c.credentials {
                let Some(users) = self.credentials.get_mut(credential) else { continue };
                users.retain(|(who, _)| *who != identity);
                if users.is_empty() {
                    self.credentials.remove(credential);
                }
            }
            return;
        }
        self.fleet.join(groups);
        for (op, minute) in ops {
            self.fleet.adopt(groups, op, identity, minute);
        }
        for (op, minute) in held {
            self.fleet.note_adopter(groups, op, identity, minute);
        }
        for &(credential, at) in &c.credentials {
            let users = self.credentials.entry(credential).or_default();
            users.retain(|(who, _)| *who != identity);
            let place = users.iter().position(|(_, t)| *t < at).unwrap_or(users.len());
            users.insert(place, (identity, at));
            users.truncate(MAX_CREDENTIAL_USERS);
        }
        self.shed_credentials(MAX_CREDENTIALS);
    }

    /// Past `max` credentials, forgets the least recently used ([`forget_least_recent`]).
    fn shed_credentials(&mut self, max: usize) {
        let last_use = |users: &Vec<(Sym, Millis)>| users.iter().map(|&(_, at)| at).max().unwrap_or(Millis::MIN);
        forget_least_recent(&mut self.credentials, max, last_use);
    }

    /// How many credentials have their recent users remembered.
    pub fn credentials_held(&self) -> usize {
        self.credentials.len()
    }

    /// Other identities that used `credential` within `window` ms before `now`.
    /// `credential`: the `stable_hash` of the credential's id, as its uses are recorded.
    pub fn credential_sharers(&self, credential: u64, identity: Sym, now: Millis, window: Millis) -> Vec<Sym> {
        let Some(users) = self.credentials.get(&credential) else { return Vec::new() };
        // Uses at `now` or later are left out: they come only in another instance's share,
        // from further on in event time than this record (see `Fleet::peers`).
        users
            .iter()
            .filter(|(who, at)| *who != identity && *at < now && now - at <= window)
            .map(|(who, _)| *who)
            .collect()
    }

    /// Drops what is too old to matter: credential uses past the reuse
    /// window, adoptions past the rollout window, lifecycle facts past `forget`.
    pub fn expire(&mut self, now: Millis, reuse_window: Millis, rollout_cutoff: Minute, forget_before: Millis) {
        self.credentials.retain(|_, users| {
            users.retain(|(_, at)| now - at <= reuse_window);
            !users.is_empty()
        });
        self.fleet.expire(rollout_cutoff);
        self.registry.forget_before(forget_before);
    }
}

impl Ids for Facts {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.fleet.visit_ids(v);
        // Keyed by a hash, not an id: visited in place (a map is rebuilt when visited whole,
        // which for up to `MAX_CREDENTIALS` of them was most of a collection's work).
        self.credentials.values_mut().for_each(|users| users.visit_ids(v));
        self.remote.visit_ids(v);
        for p in &mut self.pending {
            p.by.visit_ids(v);
            p.change.visit_ids(v);
        }
    }
}

impl Ids for Contribution {
    fn visit_ids(&mut self, _: &mut dyn IdVisitor) {}
}

impl Ids for Change {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        match self {
            Change::Join { groups } => groups.visit_ids(v),
            Change::Leave { groups, ops } => {
                groups.visit_ids(v);
                ops.visit_ids(v);
            }
            Change::Adopt { groups, op, .. }
            | Change::NoteAdopter { groups, op, .. }
            | Change::Forget { groups, op } => {
                groups.visit_ids(v);
                v.call(op);
            }
            Change::CredentialUse { .. } | Change::Lifecycle(_) => {}
        }
    }
}

/// Pending changes are saved as a list in their order; a loaded list is put in order of
/// time again (stable: the order of one time is kept), as a saved state is as hostile as a log.
mod pending_list {
    use super::Pending;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::VecDeque;

    pub fn serialize<S: Serializer>(pending: &VecDeque<Pending>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(pending)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VecDeque<Pending>, D::Error> {
        let mut list = Vec::<Pending>::deserialize(d)?;
        list.sort_by_key(|p| p.at);
        Ok(list.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::stable_hash;

    fn offboarded(identity: &str) -> Change {
        Change::Lifecycle(Lifecycle::IdentityOffboarded { identity: identity.into() })
    }

    #[test]
    fn a_change_takes_effect_strictly_after_its_time_whatever_was_recorded_before_it() {
        let names = Names::default();
        let mut facts = Facts::default();
        // Read out of order: a later fact first, then an earlier one.
        facts.record(2_000, None, offboarded("late"));
        facts.record(1_000, None, offboarded("early"));
        facts.advance(1_000, &names);
        assert_eq!(facts.registry.offboarded_at("early", Millis::MAX), None, "same millisecond: not yet");
        facts.advance(1_001, &names);
        assert_eq!(facts.registry.offboarded_at("early", Millis::MAX), Some(1_000));
        assert_eq!(facts.registry.offboarded_at("late", Millis::MAX), None);
        facts.advance(2_001, &names);
        assert_eq!(facts.registry.offboarded_at("late", Millis::MAX), Some(2_000));
    }

    #[test]
    fn credential_uses_of_one_millisecond_come_out_the_same_in_any_order() {
        let mut names = Names::default();
        let (a, b) = (names.intern("id-a"), names.intern("id-b"));
        let use_of = |facts: &mut Facts, who| facts.record(5, Some(who), Change::CredentialUse { credential: 7 });
        let (mut ab, mut ba) = (Facts::default(), Facts::default());
        use_of(&mut ab, a);
        use_of(&mut ab, b);
        use_of(&mut ba, b);
        use_of(&mut ba, a);
        for facts in [&mut ab, &mut ba] {
            facts.advance(6, &names);
        }
        assert_eq!(ab.credentials, ba.credentials);
        assert_eq!(ab.credentials[&7], [(b, 5), (a, 5)], "both users, the later name first");
    }

    /// A flood of distinct credentials keeps the map bounded, and the credentials kept are
    /// the most recently used: an old one used again outlives newer ones used once.
    #[test]
    fn past_the_cap_the_least_recently_used_credentials_are_forgotten() {
        let mut names = Names::default();
        let me = names.intern("svc");
        let mut facts = Facts::default();
        let use_at = |facts: &mut Facts, credential: u64, at: Millis| {
            facts.apply(Pending { at, by: Some(me), change: Change::CredentialUse { credential } });
            facts.shed_credentials(64);
        };
        use_at(&mut facts, 0, 0);
        for credential in 1..=100 {
            use_at(&mut facts, credential, credential as Millis * 10);
            if credential == 50 {
                use_at(&mut facts, 0, 505);
            }
            assert!(facts.credentials.len() <= 64, "{} credentials", facts.credentials.len());
        }
        let mut kept: Vec<u64> = facts.credentials.keys().copied().collect();
        kept.sort_unstable();
        // Past 64, down to 60 (the five least recently used go), every fifth new one from the
        // 65th: the last shed, at 99, left 0 (used at 505) and 41 to 99 (used at 410 to 990);
        // 100 came after it.
        let want: Vec<u64> = std::iter::once(0).chain(41..=100).collect();
        assert_eq!(kept, want);
    }

    #[test]
    fn a_credential_use_another_instance_published_from_later_in_event_time_is_no_sharer_yet() {
        let mut names = Names::default();
        let mut facts = Facts::default();
        let remote = |at| Contribution {
            group: "g".into(),
            family: "g".into(),
            credentials: vec![(stable_hash("AKIA1"), at)],
            ..Contribution::default()
        };
        facts.set_remote(&mut names, "elsewhere", Some(remote(5_000)));
        let me = names.intern("me");
        assert!(facts.credential_sharers(stable_hash("AKIA1"), me, 5_000, 60_000).is_empty(), "same millisecond");
        assert_eq!(facts.credential_sharers(stable_hash("AKIA1"), me, 5_001, 60_000), [names.intern("elsewhere")]);
    }
}
