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
use crate::baseline::fleet::{Fleet, PeerGroups};
use crate::baseline::intern::{FastMap, IdVisitor, Ids, Names, Sym};
use crate::baseline::{pairs, stable_hash, CallId};
use crate::grants::Registry;
use crate::model::{Lifecycle, Millis};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Identities a credential remembers for reuse.
const MAX_CREDENTIAL_USERS: usize = 4;

/// One change to the fleet facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// An identity joined its peer group and family.
    Join { groups: PeerGroups },
    /// An identity left (evicted), with the operations it made.
    Leave { groups: PeerGroups, ops: Vec<CallId> },
    /// An identity learned a new operation; `settled` when it had a learned
    /// baseline then (the fleet's base rate of sensitive adoptions counts those).
    Adopt { groups: PeerGroups, op: CallId, minute: Minute, settled: Option<Sensitive> },
    /// An identity started making an operation its open incident holds back from learning.
    NoteAdopter { groups: PeerGroups, op: CallId, minute: Minute },
    /// An identity forgot an operation.
    Forget { groups: PeerGroups, op: CallId },
    /// An identity used a credential (by `stable_hash` of its id).
    CredentialUse { credential: u64 },
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
    /// Changes not in effect yet, in the order they were recorded.
    #[serde(default)]
    pending: VecDeque<Pending>,
}

impl Facts {
    /// Records a change caused by a record of identity `by` at `at`; it
    /// takes effect for later records.
    pub fn record(&mut self, at: Millis, by: Option<Sym>, change: Change) {
        self.pending.push_back(Pending { at, by, change });
    }

    /// Puts into effect every change recorded before `now`. A record read late
    /// (earlier than changes already recorded) has its changes applied with
    /// the next ones due, never dropped.
    pub fn advance(&mut self, now: Millis, names: &Names) {
        let due = self.pending.iter().take_while(|p| p.at < now).count();
        if due == 0 {
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
                users.retain(|(who, _)| *who != identity);
                users.insert(0, (identity, at));
                users.truncate(MAX_CREDENTIAL_USERS);
            }
            Change::Lifecycle(fact) => self.registry.apply(at, &fact),
        }
    }

    /// Other identities that used `credential` within `window` ms before `now`.
    pub fn credential_sharers(&self, credential: &str, identity: Sym, now: Millis, window: Millis) -> Vec<Sym> {
        let Some(users) = self.credentials.get(&stable_hash(credential)) else { return Vec::new() };
        users.iter().filter(|(who, at)| *who != identity && now - at <= window).map(|(who, _)| *who).collect()
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
        self.credentials.visit_ids(v);
        for p in &mut self.pending {
            p.by.visit_ids(v);
            p.change.visit_ids(v);
        }
    }
}

impl Ids for Change {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        match self {
            Change::Join { groups } => groups.visit_ids(v),
            Change::Leave { groups, ops } => {
                groups.visit_ids(v);
                ops.visit_ids(v);
            }
            Change::Adopt { groups, op, .. } | Change::NoteAdopter { groups, op, .. } | Change::Forget { groups, op } => {
                groups.visit_ids(v);
                v.call(op);
            }
            Change::CredentialUse { .. } | Change::Lifecycle(_) => {}
        }
    }
}
