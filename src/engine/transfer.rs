//! One identity's state on its own, to move it between engines: the Kafka
//! service publishes it to the changelog as part of its partition's
//! checkpoint, and the instance that takes the partition over imports it (see
//! docs/service.md).
//!
//! The state carries a name table of its own with only the names it uses, so
//! it reads without the engine it came from; importing renumbers its ids into
//! the importing engine's tables, where they need not keep their order, so
//! every sorted count is sorted again (`IdentityBaseline::resort`). An
//! imported state is checked like a loaded state file: the changelog is as
//! hostile as a log.

use super::{Emitted, Engine, Home, Shard};
use crate::baseline::counts::Minute;
use crate::baseline::intern::{IdVisitor, Ids, Names, RangeCheck, Sym};
use crate::baseline::{CallId, IdentityBaseline};
use crate::facts::{Change, Contribution};
use crate::feedback::{self, FindingKey};
use crate::incident::Episode;
use crate::model::{Lifecycle, Millis};
use serde::{Deserialize, Serialize};

/// The version of `IdentityState` this build writes and reads.
pub const IDENTITY_STATE_VERSION: u32 = 1;

/// Everything an engine holds of one identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityState {
    pub version: u32,
    /// The names this state's ids refer to, and no others.
    names: Names,
    identity: Sym,
    baseline: IdentityBaseline,
    episode: Option<Episode>,
    /// Repeat counts of its findings (`alerts = "findings"`).
    emitted: Vec<(FindingKey, Emitted)>,
    feedback: feedback::Part,
}

impl IdentityState {
    /// The identity's name.
    pub fn identity(&self) -> &str {
        self.names.name(self.identity)
    }
}

/// Why an identity's state could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("identity state has version {found}, this build reads version {IDENTITY_STATE_VERSION}")]
    Version { found: u32 },
    #[error("identity state is not valid: {0}")]
    Invalid(String),
}

/// Rewrites the ids of one name table into another, adding the names there.
struct Translate<'a> {
    from: &'a Names,
    into: &'a mut Names,
}

impl IdVisitor for Translate<'_> {
    fn sym(&mut self, s: &mut Sym) {
        *s = self.into.intern(self.from.name(*s));
    }

    fn call(&mut self, c: &mut CallId) {
        if c.is_marker() {
            return;
        }
        let mut key = self.from.call_key(*c);
        key.visit_ids(self);
        *c = self.into.call(key).0;
    }
}

/// The parts of an identity's state that hold ids, visited together.
struct Parts<'a> {
    identity: &'a mut Sym,
    baseline: &'a mut IdentityBaseline,
    episode: &'a mut Option<Episode>,
    emitted: &'a mut Vec<(FindingKey, Emitted)>,
    feedback: &'a mut feedback::Part,
}

impl Ids for Parts<'_> {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.sym(self.identity);
        self.baseline.visit_ids(v);
        self.episode.visit_ids(v);
        self.emitted.visit_ids(v);
        self.feedback.visit_ids(v);
    }
}

impl IdentityState {
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            identity: &mut self.identity,
            baseline: &mut self.baseline,
            episode: &mut self.episode,
            emitted: &mut self.emitted,
            feedback: &mut self.feedback,
        }
    }
}

/// What changed in one shard since its last checkpoint.
#[derive(Debug, Default, PartialEq)]
pub struct Changed {
    /// Identities whose state changed: export them.
    pub touched: Vec<String>,
    /// Identities evicted: their checkpoints are to be deleted.
    pub gone: Vec<String>,
}

impl Engine {
    /// The identities held, by name.
    pub fn identity_names(&self) -> impl Iterator<Item = &str> {
        self.state.identities.keys().map(|&id| self.state.names.name(id))
    }

    /// The identities of one shard, by name.
    pub fn identities_in(&self, shard: Shard) -> Vec<String> {
        let homes = self.state.homes.iter().filter(|(_, h)| h.shard == shard);
        homes.map(|(&id, _)| self.state.names.name(id).to_string()).collect()
    }

    /// What changed in a shard since the last call for it; marks it all as checkpointed.
    pub fn take_changed(&mut self, shard: Shard) -> Changed {
        let mut changed = Changed::default();
        for (&id, home) in self.state.homes.iter_mut().filter(|(_, h)| h.shard == shard && h.touched) {
            home.touched = false;
            changed.touched.push(self.state.names.name(id).to_string());
        }
        changed.touched.sort();
        self.state.gone.retain(|(s, name)| {
            let theirs = *s == shard;
            if theirs {
                changed.gone.push(name.clone());
            }
            !theirs
        });
        // Evicted, then back: its checkpoint is its new state, not a deletion.
        let state = &self.state;
        let held = |name: &String| state.names.strings.get(name).is_some_and(|id| state.homes.contains_key(&id));
        changed.gone.retain(|name| !held(name));
        changed.gone.sort();
        changed.gone.dedup();
        changed
    }

    /// From now on, notes the identities whose share changes in a way other instances judge
    /// by: a new operation (learned, or held by an open incident) or a credential new to it.
    pub fn collect_fleet_news(&mut self) {
        self.fleet_news.get_or_insert_with(Vec::new);
    }

    /// The identities noted since the last call (`collect_fleet_news`), each once, with the
    /// shard that holds it; identities no longer held are left out.
    pub fn take_fleet_news(&mut self) -> Vec<(Shard, String)> {
        let Some(news) = &mut self.fleet_news else { return Vec::new() };
        let mut names = std::mem::take(news);
        names.sort();
        names.dedup();
        let s = &self.state;
        let shard = |name: &String| Some(s.homes.get(&s.names.strings.get(name)?)?.shard);
        names.into_iter().filter_map(|name| Some((shard(&name)?, name))).collect()
    }

    /// Marks an identity's checkpoint out of date, if it has one.
    pub(super) fn touch(&mut self, identity: Sym) {
        if let Some(home) = self.state.homes.get_mut(&identity) {
            home.touched = true;
        }
    }

    /// A copy of everything held of `identity`, with its own name table.
    pub fn export(&self, identity: &str) -> Option<IdentityState> {
        let s = &self.state;
        let id = s.names.strings.get(identity)?;
        let baseline = IdentityBaseline::clone(s.identities.get(&id)?);
        let emitted = s.emitted.iter().filter(|(k, _)| k.identity == id).map(|(k, e)| (k.clone(), *e)).collect();
        let mut state = IdentityState {
            version: IDENTITY_STATE_VERSION,
            names: Names::default(),
            identity: id,
            baseline,
            episode: s.episodes.get(id).cloned(),
            emitted,
            feedback: s.feedback.part(id),
        };
        let mut names = Names::default();
        state.parts().visit_ids(&mut Translate { from: &s.names, into: &mut names });
        state.names = names;
        state.baseline.resort(&state.names);
        state.emitted.sort_by(|a, b| a.0.cmp(&b.0));
        Some(state)
    }

    /// Takes in an identity another engine held, in place of whatever this
    /// one held of it, and counts its share of the fleet as this engine's own;
    /// with a shard, as that shard's and as checkpointed.
    pub fn import(&mut self, mut state: IdentityState, shard: Option<Shard>) -> Result<(), ImportError> {
        if state.version != IDENTITY_STATE_VERSION {
            return Err(ImportError::Version { found: state.version });
        }
        state.names.index().map_err(ImportError::Invalid)?;
        let mut range = RangeCheck::new(&state.names);
        state.parts().visit_ids(&mut range);
        if let Some(e) = range.error {
            return Err(ImportError::Invalid(e));
        }
        let from = std::mem::take(&mut state.names);
        state.parts().visit_ids(&mut Translate { from: &from, into: &mut self.state.names });
        state.baseline.resort(&self.state.names);
        state.baseline.check().map_err(ImportError::Invalid)?;

        let id = state.identity;
        self.drop_identity(id);
        let learned = state.baseline.is_learned(self.config.learning_days, self.config.learning_events);
        self.state.admission.admit(id, &state.baseline, learned);
        if let Some(episode) = state.episode {
            self.state.episodes.put(id, episode);
        }
        self.state.emitted.extend(state.emitted);
        self.state.feedback.put(id, state.feedback);
        self.state.identities.insert(id, Box::new(state.baseline));
        if let Some(shard) = shard {
            self.state.homes.insert(id, Home { shard, touched: false });
        }
        let own = self.contribution(id).expect("inserted above");
        self.state.facts.take_over(&mut self.state.names, id, &own);
        self.state.stats.identities = self.state.identities.len() as u64;
        Ok(())
    }

    /// Lets go of an identity another engine takes over: drops its state,
    /// and keeps its share of the fleet counted, as remote, until its new
    /// holder publishes it.
    pub fn release(&mut self, identity: &str) {
        let Some(id) = self.state.names.strings.get(identity) else { return };
        let Some(own) = self.contribution(id) else { return };
        self.drop_identity(id);
        self.state.facts.hand_over(id, own);
        self.state.stats.identities = self.state.identities.len() as u64;
    }

    /// Drops what is held of an identity, its fleet share untouched.
    fn drop_identity(&mut self, id: Sym) {
        if let Some(old) = self.state.identities.remove(&id) {
            self.state.admission.remove(id, &old);
        }
        self.state.episodes.take(id);
        self.state.emitted.retain(|k, _| k.identity != id);
        self.state.feedback.take(id);
        self.state.homes.remove(&id);
    }

    /// An identity's share of the fleet facts, by name.
    pub fn share_of(&self, identity: &str) -> Option<Contribution> {
        self.contribution(self.state.names.strings.get(identity)?)
    }

    /// What another instance published of an identity it holds (`None`: it holds it no
    /// more), counted in the fleet facts here (see `Facts::set_remote`).
    pub fn set_remote(&mut self, identity: &str, share: Option<Contribution>) {
        self.state.facts.set_remote(&mut self.state.names, identity, share);
    }

    /// A lifecycle fact another instance read from its logs: in effect from its time on,
    /// like one read here.
    pub fn remote_fact(&mut self, time: Millis, fact: Lifecycle) {
        self.state.facts.record(time, None, Change::Lifecycle(fact));
    }

    /// An identity's share of the fleet facts, in names (see `Contribution`).
    pub fn contribution(&self, id: Sym) -> Option<Contribution> {
        let s = &self.state;
        let b = s.identities.get(&id)?;
        let groups = b.peer_groups()?;
        let names = &s.names;
        let op_name = |op: CallId, minute: Minute| {
            let key = names.call_key(op);
            (names.name(key.target).to_string(), names.name(key.action).to_string(), minute)
        };
        // An operation was taken up when its first call was.
        let mut first: Vec<(CallId, Minute)> = Vec::new();
        for (call, entry) in b.calls.iter() {
            let op = names.op_of(call);
            match first.iter_mut().find(|(o, _)| *o == op) {
                Some((_, m)) => *m = (*m).min(entry.first),
                None => first.push((op, entry.first)),
            }
        }
        let mut ops: Vec<(String, String, Minute)> = first.into_iter().map(|(op, m)| op_name(op, m)).collect();
        ops.sort();
        let held = s.episodes.get(id).map_or(&[][..], |ep| ep.held_observations());
        let mut held: Vec<(String, String, Minute)> =
            held.iter().filter(|o| !b.makes_op(o.op)).map(|o| op_name(o.op, o.minute)).collect();
        held.sort();
        held.dedup_by(|x, y| x.0 == y.0 && x.1 == y.1);
        Some(Contribution {
            group: names.name(groups.group).to_string(),
            family: names.name(groups.family).to_string(),
            ops,
            held,
            adoptions: b.adoptions,
            credentials: b.credentials.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;
    use crate::decode::{decode_line, Format, Limits};
    use crate::engine::{AlertMode, EngineConfig};
    use crate::model::{Origin, Record};
    use crate::simulate::{generate, SimConfig};
    use crate::time::DAY;

    /// A simulated fleet's calls and grant facts, merged by time.
    fn fleet(identities: usize, days: u32, seed: u64) -> (Vec<Record>, i64) {
        let config = SimConfig { identities, days, seed, ..SimConfig::default() };
        let sim = generate(&config);
        let mut records: Vec<Record> = sim.events.into_iter().map(|e| Record::Access(Box::new(e))).collect();
        for grant in &sim.grants {
            let line = grant.to_string();
            records.extend(decode_line(line.as_bytes(), Format::Grants, &Limits::default()).into_iter().flatten());
        }
        records.sort_by_key(Record::time);
        (records, config.start)
    }

    fn feed(engine: &mut Engine, records: &[&Record]) -> Vec<Alert> {
        let origin = Origin::File { path: "fleet".into(), line: 0 };
        records.iter().flat_map(|r| engine.process(r, &origin)).collect()
    }

    fn json(alerts: &[Alert]) -> Vec<String> {
        alerts.iter().map(|a| serde_json::to_string(a).unwrap()).collect()
    }

    /// Every identity of one engine moved into another half-way through a
    /// month (through the changelog's JSON), which has read the same grant
    /// facts: the second half alerts exactly as if nothing had moved.
    fn moved_half_way(mode: AlertMode) {
        let (records, start) = fleet(80, 24, 11);
        let cut = start + 12 * DAY;
        let (before, after): (Vec<&Record>, Vec<&Record>) = records.iter().partition(|r| r.time() < cut);
        let config = EngineConfig { alerts: mode, ..EngineConfig::default() };
        let mut stayed = Engine::new(config.clone());
        feed(&mut stayed, &before);

        let mut moved = Engine::new(config);
        let facts: Vec<&Record> = before.iter().copied().filter(|r| matches!(r, Record::Lifecycle { .. })).collect();
        feed(&mut moved, &facts);
        let names: Vec<String> = stayed.identity_names().map(str::to_string).collect();
        assert!(names.len() > 70, "{} identities", names.len());
        for name in &names {
            let state = stayed.export(name).unwrap();
            let bytes = serde_json::to_vec(&state).unwrap();
            moved.import(serde_json::from_slice(&bytes).unwrap(), None).unwrap();
        }

        let expected = json(&feed(&mut stayed, &after));
        assert!(expected.len() >= 5, "the fleet should alert after the move: {expected:?}");
        assert_eq!(json(&feed(&mut moved, &after)), expected);
    }

    #[test]
    fn a_fleet_moved_half_way_alerts_as_if_it_had_never_moved() {
        moved_half_way(AlertMode::Incidents);
        moved_half_way(AlertMode::Findings);
    }

    #[test]
    fn a_released_identity_stays_counted_as_remote_and_a_re_import_restores_it() {
        let (records, start) = fleet(30, 10, 5);
        let all: Vec<&Record> = records.iter().collect();
        let mut engine = Engine::new(EngineConfig::default());
        feed(&mut engine, &all);
        let name = engine.identity_names().next().unwrap().to_string();
        let state = engine.export(&name).unwrap();
        let fleet_before = engine.state.facts.fleet.clone();
        engine.release(&name);
        assert!(engine.export(&name).is_none());
        assert_eq!(engine.state.facts.fleet, fleet_before, "a released identity's share stays counted");
        engine.import(state.clone(), None).unwrap();
        assert_eq!(engine.state.facts.fleet.size(), fleet_before.size(), "its share counted once, as its own");
        let again = engine.export(&name).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::to_value(&state).unwrap());
        let _ = start;
    }

    #[test]
    fn a_state_with_an_id_out_of_its_table_or_another_version_is_refused() {
        let (records, _) = fleet(10, 9, 3);
        let all: Vec<&Record> = records.iter().collect();
        let mut engine = Engine::new(EngineConfig::default());
        feed(&mut engine, &all);
        let name = engine.identity_names().next().unwrap().to_string();
        let good = serde_json::to_value(engine.export(&name).unwrap()).unwrap();
        let mut bad = good.clone();
        bad["identity"] = 9999.into();
        let err = engine.import(serde_json::from_value(bad).unwrap(), None).unwrap_err().to_string();
        assert!(err.contains("name id 9999 out of range"), "{err}");
        let mut old = good;
        old["version"] = 99.into();
        let err = engine.import(serde_json::from_value(old).unwrap(), None).unwrap_err().to_string();
        assert_eq!(err, "identity state has version 99, this build reads version 1");
    }

    #[test]
    fn a_shard_lists_what_changed_since_its_last_checkpoint_and_who_was_evicted() {
        let (records, _) = fleet(12, 9, 4);
        let origin = Origin::File { path: "fleet".into(), line: 0 };
        let config = EngineConfig { max_identities: 8, ..EngineConfig::default() };
        let mut engine = Engine::new(config);
        for r in &records {
            let shard = match r {
                Record::Access(e) => Some(crate::baseline::stable_hash(&e.identity) as u32 % 2),
                _ => None,
            };
            engine.apply_in(r, &origin, shard).unwrap();
        }
        let (zero, one) = (engine.take_changed(0), engine.take_changed(1));
        let held: usize = [&zero, &one].iter().map(|c| c.touched.len()).sum();
        assert_eq!(held, 8, "every identity held was touched: {zero:?} {one:?}");
        assert_eq!(zero.gone.len() + one.gone.len(), 4, "12 identities under a cap of 8");
        assert_eq!(engine.take_changed(0), Changed::default(), "nothing changed since");
        let mut in_zero = engine.identities_in(0);
        in_zero.sort();
        assert_eq!(in_zero, zero.touched);
    }
}
