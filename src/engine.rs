//! The engine: one downstream path for replay and the Kafka service. It takes
//! records in event-time order and returns the alerts they cause. Time comes
//! only from the records, so the same input gives the same alerts.
//!
//! Per call: intern its features (`observe`), let every detector judge it
//! against the identity's baseline as it was (`detect::run_all`, without words;
//! `detect::worded` for the findings that will be shown), then learn
//! from it (`IdentityBaseline::learn`), and turn findings into alerts (the
//! call's part once, `call_alert`, then each finding's, `Alert::of_finding`;
//! an episode's signals combine in `incident`), counting
//! repeats within the suppression window. Findings an analyst's benign verdict
//! allowed (`feedback`) or a suppression rule matches (`suppress`) are set
//! aside before either.

use crate::alert::{
    alert_id, incident_id, Alert, AlertEvent, AlertStatus, Compromised, IncidentStatus::Closed, Severity,
};
use crate::baseline::admission::{Admission, Eviction};
use crate::baseline::counts::{minute, Minute};
use crate::baseline::fleet::PeerGroups;
use crate::baseline::intern::{forget_least_recent, FastMap, IdVisitor, Ids, Live, Names, RangeCheck, Sym};
use crate::baseline::peer_group::{peer_family, peer_group};
use crate::baseline::{pairs, stable_hash, Baselines, CallKey, Client, IdentityBaseline, Observation, Place};
use crate::detect::{self, Context, Detector, Evidence, Finding, Strength};
use crate::facts::{Change, Facts, Sensitive};
// The settings live beside the detectors that read them; the engine's callers
// build them here.
pub use crate::detect::settings::{config_from_toml, AlertMode, EngineConfig, InvalidSetting};
use crate::features::{push_resource_class, Agent, Source, Width};
use crate::feedback::{Feedback, FindingKey, Refused};
use crate::incident::{self, Episodes};
use crate::model::{AccessEvent, EventText, Grant, Judgement, Millis, Origin, Record, Verdict};
use crate::sanitize::{sanitize, sanitize_call};
use crate::suppress::Rules;
use crate::text;
use crate::time::{format_rfc3339, DAY, HOUR};
use derived::{AgentNames, Derived, Networks};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeMap;

mod derived;
pub mod transfer;

/// The settings incidents read, from the engine's.
fn incident_settings(config: &EngineConfig) -> incident::Settings {
    incident::Settings {
        incident_max_probability: config.incident_max_probability,
        close_after_ms: config.incident_close_after_s * 1000,
        update_interval_ms: config.incident_update_interval_s * 1000,
    }
}

/// Counters for the end-of-run summary and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub events: u64,
    pub lifecycle_events: u64,
    pub alerts: BTreeMap<Detector, u64>,
    pub suppressed: u64,
    pub identities: u64,
    pub evicted: u64,
    /// Of the evicted, those that had learned a baseline.
    #[serde(default)]
    pub evicted_learned: u64,
    /// Incidents raised, and sends of them after the first (updates, closes).
    #[serde(default)]
    pub incidents: u64,
    #[serde(default)]
    pub incident_updates: u64,
    /// Findings each suppression rule kept out of alerts and incidents, by
    /// rule name; only the rules in force are kept (`Engine::set_suppression`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub suppressed_by_rule: BTreeMap<String, u64>,
    /// Analyst verdicts applied, and refused (unknown alert, too many marks).
    #[serde(default)]
    pub verdicts: u64,
    #[serde(default)]
    pub verdicts_refused: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Emitted {
    at: Millis,
    repeats: u64,
}

/// Everything the engine knows; saved whole by `save_state`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    names: Names,
    #[serde(with = "pairs")]
    identities: Baselines,
    /// Flattened, so a state saved before the facts had a struct of their own still loads.
    #[serde(flatten)]
    facts: Facts,
    #[serde(with = "pairs")]
    emitted: FastMap<FindingKey, Emitted>,
    stats: Stats,
    /// Event time of the last housekeeping pass: a whole hour.
    swept_at: Millis,
    #[serde(default)]
    admission: Admission,
    /// (strings, calls) in use at the last collection of names.
    #[serde(default)]
    names_live: (usize, usize),
    /// Every identity's open episode of evidence (incidents mode).
    #[serde(default)]
    episodes: Episodes,
    /// What emitted alerts named, and what analysts' verdicts left (`feedback`).
    #[serde(default)]
    feedback: Feedback,
    /// Which shard (the Kafka service's input partition) each identity's
    /// records come from, and whether it changed since its shard's last
    /// checkpoint (`transfer`); empty in replay.
    #[serde(default, with = "pairs")]
    homes: FastMap<Sym, Home>,
    /// Identities evicted since their shard's last checkpoint.
    #[serde(default)]
    gone: Vec<(Shard, String)>,
}

/// A shard of the engine's identities: the Kafka service's input partition,
/// whose checkpoint holds them.
pub type Shard = u32;

/// Where an identity's checkpoint lives, and whether it is out of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    pub shard: Shard,
    pub touched: bool,
}

impl Ids for Home {
    fn visit_ids(&mut self, _: &mut dyn IdVisitor) {}
}

impl State {
    /// Every part of the state that holds ids (all but the name tables
    /// themselves), named for error messages.
    fn id_parts(&mut self) -> [(&'static str, &mut dyn Ids); 7] {
        [
            ("identities", &mut self.identities),
            ("fleet", &mut self.facts),
            ("suppression entries", &mut self.emitted),
            ("probation", &mut self.admission),
            ("episodes", &mut self.episodes),
            ("feedback", &mut self.feedback),
            ("homes", &mut self.homes),
        ]
    }
}

impl Ids for State {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        for (_, part) in self.id_parts() {
            part.visit_ids(v);
        }
    }
}

impl Ids for Emitted {
    fn visit_ids(&mut self, _: &mut dyn IdVisitor) {}
}

const STATE_VERSION: u32 = 1;
/// Identities noted for the service to publish before their checkpoint, at most, between two
/// takes (`take_fleet_news`): a cold start, when every identity takes up its operations, sends
/// no more than this per take; the rest wait for their checkpoint.
const MAX_FLEET_NEWS: usize = 1_024;
/// Evicted identities remembered for their shard's next checkpoint, at most.
const MAX_GONE: usize = 65_536;
/// Alerts remembered to suppress their repeats (findings and both modes), at most; past it
/// the least recently sent are forgotten. One per identity, detector and subject, and a
/// record chooses the subject (a target and action, a delegator): the suppression window
/// alone let a stream of distinct ones grow without end.
const MAX_SUPPRESSION_ENTRIES: usize = 1_000_000;
/// Names are collected once a table holds twice what was in use at the last
/// collection, and never while it is smaller than twice this: the work of a
/// collection is paid for by the names added since the last.
const MIN_NAMES_COLLECTED: usize = 1024;

pub struct Engine {
    config: EngineConfig,
    state: State,
    suppression: Suppression,
    /// Identities whose share of the fleet facts changed in a way other instances judge by
    /// (a new operation, a new credential), since the service last took them
    /// (`take_fleet_news`); `None` outside the service, which alone publishes shares.
    fleet_news: Option<Vec<String>>,
    /// Where `observe` writes each derived name before interning it: one buffer for the
    /// engine's life instead of an allocation per call.
    scratch: String,
    /// The names derived from user agents seen lately.
    agents: Derived<AgentNames>,
    /// The resource classes derived from resources seen lately.
    resources: Derived<Sym>,
    /// The networks derived from addresses seen lately.
    networks: Networks,
}

/// The suppression rules in force, and whether what they match is emitted
/// (marked `suppressed`) or only counted. Configuration, not state: every run
/// gives its own.
#[derive(Debug, Clone, Default)]
pub struct Suppression {
    pub rules: Rules,
    pub show: bool,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            config,
            state: State { version: STATE_VERSION, ..State::default() },
            suppression: Suppression::default(),
            fleet_news: None,
            scratch: String::new(),
            agents: Derived::default(),
            resources: Derived::default(),
            networks: Networks::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// Sets the suppression rules. Counts of rules no longer in force are
    /// dropped, so the saved counts stay as few as the rules.
    pub fn set_suppression(&mut self, suppression: Suppression) {
        self.state.stats.suppressed_by_rule.retain(|name, _| suppression.rules.contains(name));
        self.suppression = suppression;
    }

    /// What the engine holds, read-only, for `explain`.
    pub fn held(&self) -> crate::explain::Held<'_> {
        let s = &self.state;
        crate::explain::Held {
            names: &s.names,
            identities: &s.identities,
            fleet: &s.facts.fleet,
            registry: &s.facts.registry,
            episodes: &s.episodes,
        }
    }

    /// Adds grants from a static policy file; they hold from the beginning of time.
    pub fn add_policy(&mut self, grants: Vec<Grant>) {
        self.state.facts.registry.add_static(grants);
    }

    /// Processes one record and returns the alerts it causes, in a deterministic order,
    /// or why a verdict was refused (it is counted either way): the caller reports it at
    /// the record's place, like a bad line.
    pub fn apply(&mut self, record: &Record, origin: &Origin) -> Result<Vec<Alert>, Refused> {
        self.apply_in(record, origin, None)
    }

    /// `apply` for a record of a shard (see `Home`): the identity is counted
    /// in that shard's checkpoint.
    pub fn apply_in(&mut self, record: &Record, origin: &Origin, shard: Option<Shard>) -> Result<Vec<Alert>, Refused> {
        match record {
            Record::Lifecycle { time, fact, .. } => {
                self.state.stats.lifecycle_events += 1;
                let alerts = self.advance_to(*time);
                self.state.facts.record(*time, None, Change::Lifecycle((**fact).clone()));
                Ok(alerts)
            }
            Record::Access(event) => Ok(self.access(event, origin, shard)),
            Record::Verdict(verdict) => self.judge(verdict).map(|()| Vec::new()),
        }
    }

    /// `apply` for callers with no place to report a refused verdict (benchmarks, tests of
    /// access and lifecycle records).
    pub fn process(&mut self, record: &Record, origin: &Origin) -> Vec<Alert> {
        self.apply(record, origin).unwrap_or_default()
    }

    /// Applies an analyst's verdict at its place in event time (see `feedback`),
    /// or says why not; never to anything but the alert it names.
    fn judge(&mut self, v: &Verdict) -> Result<(), Refused> {
        let applied = match self.state.feedback.apply(v, &self.state.names) {
            Ok(applied) => applied,
            Err(refused) => {
                self.state.stats.verdicts_refused += 1;
                return Err(refused);
            }
        };
        self.state.stats.verdicts += 1;
        let identity = applied.identity;
        self.touch(identity);
        match applied.judgement {
            // Held calls first, in their order, then the alert's own call.
            Judgement::Benign => {
                let held = applied.incident.map(|id| self.state.episodes.settle(identity, &id)).unwrap_or_default();
                for obs in held.iter().chain([&applied.call]) {
                    self.learn(identity, obs, v.time);
                }
            }
            Judgement::Malicious => self.state.episodes.drop_held(identity),
        }
        Ok(())
    }

    fn access(&mut self, event: &AccessEvent, origin: &Origin, shard: Option<Shard>) -> Vec<Alert> {
        self.state.stats.events += 1;
        let mut alerts = self.advance_to(event.time);
        self.collect_names_if_grown();
        let identity = self.state.names.intern(&event.identity);
        if let Some(shard) = shard {
            self.state.homes.entry(identity).or_insert(Home { shard, touched: true }).touched = true;
        }
        let groups = match self.state.identities.get(&identity).and_then(|b| b.peer_groups()) {
            Some(groups) => groups,
            None => self.join(identity, event),
        };
        // The identity's quiet episode closes before its call is judged (the
        // hourly sweep may come up to an hour late), so that detectors see
        // the calls it held as learned, not as news again.
        if let Some((closed, held)) =
            self.state.episodes.close_if_quiet(identity, event.time, &incident_settings(&self.config))
        {
            alerts.extend(self.end_episode(identity, closed, held, event.time));
        }
        alerts.extend(self.judge_session_end(identity, event.time));
        let obs = self.observe(event, groups);
        let sharers = self.credential_sharers(event, identity);

        let mode = self.config.alerts;
        let settings = incident_settings(&self.config);
        let mut findings = {
            let s = &self.state;
            let grants = s.facts.registry.applicable(
                &event.identity,
                event.grant_id.as_deref(),
                event.on_behalf_of.as_deref(),
                event.time,
            );
            let ctx = Context {
                event,
                obs: &obs,
                identity,
                baseline: &s.identities[&identity],
                config: &self.config,
                names: &s.names,
                fleet: &s.facts.fleet,
                registry: &s.facts.registry,
                grants,
                credential_sharers: &sharers,
                words: false,
            };
            let mut findings = detect::run_all(&ctx);
            // Worded only when shown: alone (alert strength), or as the signal the identity's
            // incident keeps (a weak finding no stronger than the one it holds is not).
            let to_word = |f: &Finding| {
                !f.is_worded()
                    && (f.strength == Strength::Alert
                        || (mode.incidents() && s.episodes.would_keep(identity, f, event.time, &settings)))
            };
            if findings.iter().any(to_word) {
                let ctx = Context { words: true, ..ctx };
                for f in findings.iter_mut().filter(|f| to_word(f)) {
                    if let Some(worded) = detect::worded(&ctx, f.detector) {
                        *f = worded;
                    }
                }
            }
            findings
        };
        if self.state.feedback.allows_anything() {
            findings.retain(|f| {
                let key = FindingKey { identity, detector: f.detector, subject: f.subject.clone() };
                !self.state.feedback.allows(&key)
            });
        }
        let compromised = self.state.feedback.compromised(identity).is_some();
        let first_alert = alerts.len();

        // What every finding's alert takes from the call, made once, and only when a finding
        // may become an alert: any in incidents mode, one of alert strength otherwise. Most
        // findings are weak signals, and making each a whole alert was a twentieth of a replay.
        let call = findings
            .iter()
            .find(|f| mode.incidents() || f.strength == Strength::Alert)
            .map(|f| self.call_alert(event, origin, f.detector));
        let mut findings = match &call {
            Some(call) => self.set_aside_suppressed(findings, event, call, &mut alerts),
            None => findings,
        };
        let mut hold = false;
        // Only a learned baseline is held back from: an identity still
        // learning learns everything, and its history must start somewhere.
        let learned =
            self.state.identities[&identity].is_learned(self.config.learning_days, self.config.learning_events);
        // No findings, no incident to open or add to (`accept` would return nothing). The
        // incident id is hashed only for an episode that opens: on every quiet event it cost
        // 15% of a replay.
        let mut call = call.filter(|_| !findings.is_empty());
        // In `both` mode the findings and the call's part are also sent alone, so the
        // incident takes copies; in incidents mode it takes them.
        let incident = match (mode.incidents(), mode.findings()) {
            (false, _) => None,
            (true, true) => call.clone().map(|call| (findings.clone(), call)),
            (true, false) => call.take().map(|call| (std::mem::take(&mut findings), call)),
        };
        if let Some((signals, call)) = incident {
            let id = || incident_id(&event.identity, &event.event_id);
            let accepted = self.state.episodes.accept(identity, id, signals, call, event.time, &settings);
            self.state.episodes.note_call(identity, &obs);
            for held in accepted.release {
                self.learn(identity, &held, event.time);
            }
            self.sent_incident_alerts(identity, &accepted.alerts, &obs, event.time);
            alerts.extend(accepted.alerts);
            hold = accepted.hold && learned;
        }
        if let (true, Some(call)) = (mode.findings(), &call) {
            for f in findings.into_iter().filter(|f| f.strength == Strength::Alert) {
                let named = [(f.detector, f.subject.clone())];
                if let Some(alert) = self.suppress_or_alert(f, identity, event, call) {
                    self.state.feedback.remember(&alert.alert_id, identity, named, &obs, event.time, false);
                    alerts.push(alert);
                }
            }
        }
        self.mark_compromised(identity, &mut alerts[first_alert..]);
        match hold {
            // While the identity is marked compromised nothing it does is learned, or held to be.
            _ if compromised => {}
            true => {
                let (op, minute, new_op) = (obs.op, obs.minute, !self.state.identities[&identity].makes_op(obs.op));
                // Bounded with what is held: a flood of distinct calls under
                // an open incident costs no more than the incident holds.
                if self.state.episodes.hold(identity, obs) && new_op {
                    self.state.facts.record(event.time, Some(identity), Change::NoteAdopter { groups, op, minute });
                    self.note_fleet_news(identity);
                }
            }
            false => self.learn(identity, &obs, event.time),
        }
        alerts
    }

    /// Folds one call into its identity's baseline (`IdentityBaseline::learn`)
    /// and, from `at` on, the fleet's adoption counts; may evict other
    /// identities. Nothing is learned of an identity marked compromised.
    fn learn(&mut self, identity: Sym, obs: &Observation, at: Millis) {
        if self.state.feedback.compromised(identity).is_some() {
            return;
        }
        let forget_after = (self.config.forget_after_days * 1440.0) as Minute;
        let concurrency = (self.config.concurrency_window_s / 60) as Minute;
        let Some(baseline) = self.state.identities.get_mut(&identity) else { return };
        let last_seen_before = baseline.last_seen;
        let was_learned = baseline.is_learned(self.config.learning_days, self.config.learning_events);
        let learned = baseline.learn(obs, &self.state.names, self.config.decay(), forget_after, concurrency);
        let groups = obs.peer_groups();
        let is_learned = baseline.is_learned(self.config.learning_days, self.config.learning_events);
        let gone =
            self.state.admission.seen(identity, last_seen_before, baseline, is_learned, self.config.max_identities);
        let facts = &mut self.state.facts;
        if let Some(op) = learned.adopted_op {
            let settled = was_learned.then(|| Sensitive(detect::sensitive(&self.state.names, obs).is_some()));
            if let Some(Sensitive(sensitive)) = settled {
                baseline.adoptions.all += 1;
                baseline.adoptions.sensitive += u64::from(sensitive);
            }
            facts.record(at, Some(identity), Change::Adopt { groups, op, minute: obs.minute, settled });
        }
        for op in learned.forgotten_ops {
            facts.record(at, Some(identity), Change::Forget { groups, op });
        }
        if learned.adopted_op.is_some() {
            self.note_fleet_news(identity);
        }
        self.evict(gone, at);
    }

    /// Remembers that an identity's share changed in a way other instances judge by, for the
    /// service to publish before the next checkpoint (`take_fleet_news`).
    fn note_fleet_news(&mut self, identity: Sym) {
        let Some(news) = &mut self.fleet_news else { return };
        let name = self.state.names.name(identity);
        // Bounded: past the bound the rest waits for the partition's checkpoint, which
        // publishes every changed share anyway.
        if news.len() < MAX_FLEET_NEWS && news.last().is_none_or(|last| last != name) {
            news.push(name.to_string());
        }
    }

    /// Raises the severity of an identity's alerts while it is marked
    /// compromised (`Severity::compromised`), and says why on each.
    fn mark_compromised(&self, identity: Sym, alerts: &mut [Alert]) {
        let Some(mark) = self.state.feedback.compromised(identity) else { return };
        for alert in alerts {
            alert.severity = alert.severity.compromised();
            alert.compromised = Some(Compromised {
                time: format_rfc3339(mark.time),
                by: mark.by.clone(),
                alert_id: mark.alert_id.clone(),
            });
            // `by` is the analyst's text: bounded and escaped like the log's.
            sanitize(alert);
        }
    }

    /// Counts incident sends and remembers them for analysts' verdicts, with
    /// the call they are about. A close of the identity's earlier episode is
    /// remembered from its first send.
    fn sent_incident_alerts(&mut self, identity: Sym, alerts: &[Alert], call: &Observation, at: Millis) {
        self.count_incidents(alerts);
        for alert in alerts.iter().filter(|a| !a.incident.as_ref().is_some_and(|i| i.status == Closed)) {
            let named = self.state.episodes.named(identity);
            self.state.feedback.remember(&alert.alert_id, identity, named, call, at, true);
        }
    }

    /// Judges how a session ended once it has (`rare_transition::session_end`),
    /// for the session an open episode holds a path signal of: at the hourly
    /// sweep after it went idle, or at the identity's next call if sooner.
    /// The session is followed no longer; its end is learned unless an open
    /// incident holds it.
    fn judge_session_end(&mut self, identity: Sym, now: Millis) -> Vec<Alert> {
        let detector = detect::rare_transition::SPEC.detector();
        let (at, decay) = (minute(now), self.config.decay());
        let Some((subject, signal)) = self.state.episodes.signal(identity, detector) else { return Vec::new() };
        let session = stable_hash(subject);
        let Some(b) = self.state.identities.get(&identity) else { return Vec::new() };
        let Some((state, novelty)) = b.ended_session(session, at, decay) else { return Vec::new() };
        let judged = novelty.and_then(|n| {
            detect::rare_transition::session_end(b, signal, &state, &n, &self.config, &self.state.names, at)
        });
        let mut alerts = Vec::new();
        let mut hold = false;
        if let Some(finding) = judged {
            let settings = incident_settings(&self.config);
            let (accepted, call) = self.state.episodes.add(identity, finding, signal.clone(), now, &settings);
            match call {
                Some(call) => self.sent_incident_alerts(identity, &accepted.alerts, &call, now),
                None => self.count_incidents(&accepted.alerts),
            }
            hold = accepted.hold;
            alerts = accepted.alerts;
            self.mark_compromised(identity, &mut alerts);
        }
        let learn = !hold && self.state.feedback.compromised(identity).is_none();
        if let Some(b) = self.state.identities.get_mut(&identity) {
            b.close_session(session, learn, at, decay);
        }
        self.touch(identity);
        alerts
    }

    /// Ends a closed episode: its closing send (for a raised one, marked if
    /// the identity is compromised), counted, and its held calls learned.
    fn end_episode(
        &mut self,
        identity: Sym,
        closed: Option<Alert>,
        held: Vec<Observation>,
        at: Millis,
    ) -> Option<Alert> {
        let mut closed = closed;
        self.mark_compromised(identity, closed.as_mut_slice());
        self.count_incidents(closed.as_slice());
        for obs in held {
            self.learn(identity, &obs, at);
        }
        closed
    }

    fn count_incidents(&mut self, alerts: &[Alert]) {
        for alert in alerts {
            *self.state.stats.alerts.entry(alert.detector).or_default() += 1;
            match alert.incident.as_ref().map(|i| i.update) {
                Some(0) => self.state.stats.incidents += 1,
                _ => self.state.stats.incident_updates += 1,
            }
        }
    }

    /// First sight of an identity: a fresh baseline in its peer group (its
    /// purpose label, or its name's stem: `peer_group`) and that group's
    /// family, on probation.
    fn join(&mut self, identity: Sym, event: &AccessEvent) -> PeerGroups {
        let name = peer_group(&event.identity, event.identity_type.as_deref());
        let groups =
            PeerGroups { group: self.state.names.intern(&name), family: self.state.names.intern(peer_family(&name)) };
        let baseline = IdentityBaseline {
            peer_group: Some(groups.group),
            peer_family: Some(groups.family),
            ..IdentityBaseline::default()
        };
        if let Some(old) = self.state.identities.insert(identity, Box::new(baseline)) {
            // A loaded baseline without a group: start it again.
            self.state.admission.remove(identity, &old);
        }
        self.state.facts.record(event.time, Some(identity), Change::Join { groups });
        let held = self.state.identities.len();
        let gone = self.state.admission.join(identity, minute(event.time), held, self.config.max_identities);
        self.evict(gone, event.time);
        groups
    }

    /// Drops evicted identities' baselines and, from `at` on, their share of the fleet.
    fn evict(&mut self, gone: Vec<Eviction>, at: Millis) {
        for Eviction { identity, protected } in gone {
            let Some(b) = self.state.identities.remove(&identity) else { continue };
            self.state.episodes.forget(identity);
            // Bounded under a flood of newcomers: a deletion not remembered leaves
            // a stale checkpoint, restored as an identity the cap evicts again.
            if let Some(home) = self.state.homes.remove(&identity).filter(|_| self.state.gone.len() < MAX_GONE) {
                self.state.gone.push((home.shard, self.state.names.name(identity).to_string()));
            }
            if let Some(groups) = b.peer_groups() {
                let ops = b.ops().collect();
                self.state.facts.record(at, Some(identity), Change::Leave { groups, ops });
            }
            self.state.stats.evicted += 1;
            self.state.stats.evicted_learned += u64::from(protected);
        }
        self.state.stats.identities = self.state.identities.len() as u64;
    }

    /// Collects unused names once the tables have doubled since the last
    /// collection. Runs at a point of the input alone (before an event's names
    /// are interned), and renumbers in order, so detection cannot tell.
    fn collect_names_if_grown(&mut self) {
        let (strings, calls) = self.state.names_live;
        // A collection visits every id the state holds, each credential's recent users too:
        // after one, at least an eighth as many new names as credentials held, or a flood of
        // distinct credentials and names made each collection a pass over all of them for a
        // few new names (45% of such a replay).
        let floor = MIN_NAMES_COLLECTED.max(self.state.facts.credentials_held() / 8);
        let grown = |len: usize, live: usize| len > 2 * live.max(floor);
        if grown(self.state.names.strings.len(), strings) || grown(self.state.names.call_count(), calls) {
            self.collect_names();
        }
    }

    fn collect_names(&mut self) {
        let mut live = Live::new(&self.state.names);
        self.state.visit_ids(&mut live);
        live.close_over_calls(&self.state.names);
        let mut renumber = self.state.names.retain(&live);
        self.state.visit_ids(&mut renumber);
        self.state.admission.rebuild(&self.state.identities);
        self.state.names_live = live.counts();
        self.agents.forget();
        self.resources.forget();
        self.networks.forget();
    }

    /// Interns the features of a call that baselines learn on. Each derived name
    /// is written into the engine's one scratch buffer and interned from there; the
    /// order of interning is the order ids are handed out in, so it stays as it is.
    fn observe(&mut self, e: &AccessEvent, peers: PeerGroups) -> Observation {
        let names = &mut self.state.names;
        let buf = &mut self.scratch;
        let mut derived = |names: &mut Names, push: &dyn Fn(&mut String)| {
            buf.clear();
            push(buf);
            names.intern(buf)
        };
        let (target, action) = (names.intern(&e.target), names.intern(&e.action));
        let class = match e.resource.as_deref() {
            Some(resource) => self.resources.get(resource).unwrap_or_else(|| {
                let class = derived(names, &|out| push_resource_class(out, resource));
                self.resources.remember(resource, class);
                class
            }),
            None => names.no_class(),
        };
        let call_key = CallKey { target, action, class };
        let (call, op) = names.call(call_key);
        let source = e.source_ip.as_deref().map(Source::parse);
        let user_agent = e.user_agent.as_deref().unwrap_or("");
        let known = self.agents.get(user_agent).unwrap_or_default();
        let mut agent = known;
        let client = (e.source_ip.is_some() || e.user_agent.is_some()).then(|| Client {
            network: match &source {
                Some(source) => self
                    .networks
                    .of(source, Width::Network, || derived(names, &|out| source.push_prefix(out, Width::Network))),
                None => names.intern("unknown"),
            },
            agent: *agent
                .family
                .get_or_insert_with(|| derived(names, &|out| Agent::parse(user_agent).push_family(out))),
        });
        let place = source.as_ref().map(|source| Place {
            wide_network: self
                .networks
                .of(source, Width::WideNetwork, || derived(names, &|out| source.push_prefix(out, Width::WideNetwork))),
            scope: source.scope(),
            agent_version: *agent
                .version
                .get_or_insert_with(|| derived(names, &|out| Agent::parse(user_agent).push_version(out))),
        });
        if agent != known {
            self.agents.remember(user_agent, agent);
        }
        let delegators = delegators(e, names);
        Observation {
            minute: minute(e.time),
            window: (e.time.max(0) / (self.config.window_s.max(1) * 1000)) as u32,
            call,
            call_key,
            op,
            reach: names.reach_of(call),
            session: e.session_id.as_deref().map(stable_hash),
            client,
            place,
            delegators,
            peer_group: peers.group,
            peer_family: Some(peers.family),
            environment: e.environment.as_deref().map(|env| names.intern(env)),
            region: e.region.as_deref().map(|region| names.intern(region)),
            outcome: e.outcome,
        }
    }

    /// Other identities that used this call's credential recently; records this use.
    fn credential_sharers(&mut self, e: &AccessEvent, identity: Sym) -> Vec<Sym> {
        let Some(credential) = e.credential_id.as_deref() else { return Vec::new() };
        let window = self.config.credential_reuse_window_s * 1000;
        let facts = &mut self.state.facts;
        let credential = stable_hash(credential);
        let sharers = facts.credential_sharers(credential, identity, e.time, window);
        facts.record(e.time, Some(identity), Change::CredentialUse { credential });
        let new = self.state.identities.get_mut(&identity).is_some_and(|b| b.used_credential(credential, e.time));
        if new {
            self.note_fleet_news(identity);
        }
        sharers
    }

    /// Keeps the findings no suppression rule matches. One a rule matches is
    /// counted under the rule when it would have been used (alert strength,
    /// or a signal an incident would have weighed) and, when suppressed
    /// findings are shown, emitted marked as such if it has alert strength: a
    /// signal alone is never an alert. It joins no incident and no repeat count.
    fn set_aside_suppressed(
        &mut self,
        findings: Vec<Finding>,
        e: &AccessEvent,
        call: &Alert,
        alerts: &mut Vec<Alert>,
    ) -> Vec<Finding> {
        if self.suppression.rules.is_empty() {
            return findings;
        }
        let mut kept = Vec::with_capacity(findings.len());
        for f in findings {
            let Some(rule) = self.suppression.rules.matching(&f, e) else {
                kept.push(f);
                continue;
            };
            let alert_strength = f.strength == Strength::Alert;
            if alert_strength || self.config.alerts.incidents() {
                *self.state.stats.suppressed_by_rule.entry(rule.name().to_string()).or_default() += 1;
            }
            if alert_strength && self.suppression.show {
                let rule = Some(rule.name().to_string());
                alerts.push(Alert {
                    status: Some(AlertStatus::Suppressed),
                    suppression_rule: rule,
                    ..finding_alert(f, e, call)
                });
            }
        }
        kept
    }

    /// A finding as an alert of its own, unless it repeats one sent within the
    /// suppression window (then it is counted, and reported with the next).
    fn suppress_or_alert(&mut self, f: Finding, identity: Sym, e: &AccessEvent, call: &Alert) -> Option<Alert> {
        let key = FindingKey { identity, detector: f.detector, subject: f.subject.clone() };
        let window = self.config.suppression_window_s * 1000;
        let repeats = match self.state.emitted.get_mut(&key) {
            Some(last) if e.time >= last.at && e.time - last.at < window => {
                last.repeats += 1;
                self.state.stats.suppressed += 1;
                return None;
            }
            Some(last) => last.repeats,
            None => 0,
        };
        self.state.emitted.insert(key, Emitted { at: e.time, repeats: 0 });
        forget_least_recent(&mut self.state.emitted, MAX_SUPPRESSION_ENTRIES, |sent| sent.at);
        *self.state.stats.alerts.entry(f.detector).or_default() += 1;
        Some(Alert { suppressed_repeats: repeats, ..finding_alert(f, e, call) })
    }

    /// What every alert of a call takes from it (`Alert::of_finding` adds a finding's part,
    /// `detector` among it), redacted and bounded; without an id of its own. An incident is
    /// sent under its own id: not hashing one per finding (weak ones included), with the
    /// incident id hashed only when an episode opens, saved 1.2% of a replay's instructions.
    fn call_alert(&self, e: &AccessEvent, origin: &Origin, detector: Detector) -> Alert {
        let mut alert = Alert {
            alert_id: String::new(),
            detector,
            severity: Severity::Info,
            score: 0.0,
            time: format_rfc3339(e.time),
            identity: e.identity.to_string(),
            identity_type: owned(&e.identity_type),
            on_behalf_of: owned(&e.on_behalf_of),
            chain: e.chain.iter().map(EventText::to_string).collect(),
            event_ids: vec![e.event_id.to_string()],
            event: AlertEvent {
                target: e.target.to_string(),
                action: e.action.to_string(),
                resource: owned(&e.resource),
                environment: owned(&e.environment),
                region: owned(&e.region),
                session_id: owned(&e.session_id),
                grant_id: owned(&e.grant_id),
                credential_id: owned(&e.credential_id),
                source_ip: owned(&e.source_ip),
                user_agent: owned(&e.user_agent),
                outcome: e.outcome,
            },
            source: origin.to_string(),
            summary: String::new(),
            evidence: Evidence::default(),
            owasp_nhi: Vec::new(),
            attack: Vec::new(),
            recommended_action: String::new(),
            suppressed_repeats: 0,
            truncated: Vec::new(),
            incident: None,
            status: None,
            suppression_rule: None,
            compromised: None,
        };
        // Every alert leaves the engine redacted and bounded, whatever the sink or format.
        sanitize_call(&mut alert);
        alert
    }

    /// Moves the engine's clock to a record at `now`: at each whole hour
    /// passed, the facts due by then take effect and the hour's housekeeping
    /// runs (`sweep`); then the facts due before `now` take effect. Returns
    /// the alerts of incidents the housekeeping closed.
    fn advance_to(&mut self, now: Millis) -> Vec<Alert> {
        let hour = now - now.rem_euclid(HOUR);
        let mut closed = Vec::new();
        if hour > self.state.swept_at {
            self.state.swept_at = hour;
            self.state.facts.advance(hour, &self.state.names);
            closed = self.sweep(hour);
        }
        self.state.facts.advance(now, &self.state.names);
        closed
    }

    /// Hourly housekeeping in event time, at a whole hour: closes quiet
    /// episodes (returning the alerts that close their incidents, and
    /// learning what they held), drops suppression entries, adoption records
    /// and credential uses too old to matter, so state stays bounded. At a
    /// whole hour, so that when it runs depends on event time alone, not on
    /// which record happened to come first after the hour.
    fn sweep(&mut self, now: Millis) -> Vec<Alert> {
        let mut closed = Vec::new();
        for (identity, alert, held) in self.state.episodes.close_quiet(now, &incident_settings(&self.config)) {
            self.touch(identity);
            closed.extend(self.end_episode(identity, alert, held, now));
        }
        for identity in self.state.episodes.identities() {
            closed.extend(self.judge_session_end(identity, now));
        }
        // An entry with counted repeats stays until the next alert reports them
        // (or the identity's behaviour would be forgotten anyway).
        let window = self.config.suppression_window_s * 1000;
        let forget = (self.config.forget_after_days * DAY as f64) as Millis;
        self.state.emitted.retain(|_, e| now - e.at < if e.repeats > 0 { forget } else { window });
        let reuse = self.config.credential_reuse_window_s * 1000;
        let rollout_cutoff = minute(now).saturating_sub(self.config.rollout_window_min());
        self.state.facts.expire(now, reuse, rollout_cutoff, now - forget);
        closed
    }

    /// Approximate bytes held by all identity baselines (see `IdentityBaseline::approx_bytes`).
    pub fn baseline_bytes(&self) -> usize {
        self.state.identities.values().map(|b| b.approx_bytes()).sum()
    }

    /// Mean baseline bytes of the identities whose distinct calls are closest
    /// to `calls` (for the benchmark): (distinct calls, mean bytes).
    pub fn baseline_bytes_near_calls(&self, calls: usize) -> Option<(usize, f64)> {
        let nearest = self.state.identities.values().map(|b| b.calls.len().abs_diff(calls)).min()?;
        let picked: Vec<&IdentityBaseline> =
            self.state.identities.values().map(|b| &**b).filter(|b| b.calls.len().abs_diff(calls) == nearest).collect();
        let mean = picked.iter().map(|b| b.approx_bytes()).sum::<usize>() as f64 / picked.len() as f64;
        Some((picked[0].calls.len(), mean))
    }
}

/// Why a state file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state: {0}")]
    Io(#[from] std::io::Error),
    #[error("state file is not valid: {0}")]
    Invalid(String),
    #[error("state file has version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
}

impl Engine {
    /// Writes every baseline and lifecycle fact as versioned JSON; the same
    /// state gives the same bytes.
    pub fn save_state(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, &self.state).map_err(std::io::Error::other)?;
        w.flush()
    }

    /// Restores an engine saved by `save_state`; `config` replaces the saved one.
    pub fn load_state(config: EngineConfig, r: &mut dyn std::io::Read) -> Result<Engine, StateError> {
        let mut state: State =
            serde_json::from_reader(std::io::BufReader::new(r)).map_err(|e| StateError::Invalid(e.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(StateError::Version { found: state.version, expected: STATE_VERSION });
        }
        state.check().map_err(StateError::Invalid)?;
        state.facts.registry.reindex();
        for b in state.identities.values_mut() {
            b.index_ops(&state.names);
        }
        state.admission.rebuild(&state.identities);
        state.feedback.reindex();
        Ok(Engine { state, ..Engine::new(config) })
    }
}

impl State {
    /// Checks a loaded state before anything relies on it: every id in the
    /// tables, every count sorted, the probation list matching the baselines.
    /// The first fault is named; nothing is repaired.
    fn check(&mut self) -> Result<(), String> {
        self.names.index()?;
        let mut range = RangeCheck::new(&self.names);
        // Identity by identity first, so that a fault names its identity.
        let mut ids: Vec<Sym> = self.identities.keys().copied().collect();
        ids.sort_unstable();
        for mut id in ids {
            let b = self.identities.get_mut(&id).expect("listed above");
            b.visit_ids(&mut range);
            let number = id.0;
            id.visit_ids(&mut range);
            if let Some(e) = range.error.take() {
                return Err(format!("identity {number}: {e}"));
            }
            b.check().map_err(|e| format!("identity {number}: {e}"))?;
        }
        for (what, part) in self.id_parts() {
            part.visit_ids(&mut range);
            if let Some(e) = range.error.take() {
                return Err(format!("{what}: {e}"));
            }
        }
        self.feedback.check()?;
        self.admission.check(&self.identities)
    }
}

/// A finding of a call as an alert of its own.
fn finding_alert(f: Finding, e: &AccessEvent, call: &Alert) -> Alert {
    Alert { alert_id: alert_id(f.detector, &e.identity, &e.event_id), ..Alert::of_finding(call, f) }
}

/// Delegation hops an observation takes: the delegator, then the chain. Real chains have a
/// few; one record of 60,000 distinct hops (660 KB) took 1.2 s to judge, each hop compared
/// with every one before it, and filled the name table.
/// Past this many, the rest count as one more delegator, [`LONG_CHAIN`], so that an
/// identity's first overlong chain is itself news (`new_delegator`), not a hiding place.
const MAX_HOPS: usize = 16;
const LONG_CHAIN: &str = "[more than 16 delegation hops]";

/// The distinct delegators of a call, in order (see [`MAX_HOPS`]). The delegator is usually
/// the chain's first hop too: a name met before is not looked up again (the table's entry
/// for it is seldom in the cache).
fn delegators(e: &AccessEvent, names: &mut Names) -> SmallVec<[Sym; 4]> {
    let mut hops = e.on_behalf_of.iter().chain(&e.chain);
    let mut seen: SmallVec<[&str; MAX_HOPS]> = SmallVec::new();
    let mut delegators = SmallVec::new();
    for hop in hops.by_ref().take(MAX_HOPS) {
        if !seen.iter().any(|before| text::same(before, hop)) {
            seen.push(hop);
            delegators.push(names.intern(hop));
        }
    }
    if hops.next().is_some() {
        let more = names.intern(LONG_CHAIN);
        if !delegators.contains(&more) {
            delegators.push(more);
        }
    }
    delegators
}

/// An event's optional field as an alert's.
fn owned(text: &Option<EventText>) -> Option<String> {
    text.as_deref().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{MAX_CALLS, MAX_TRANSITIONS};
    use crate::time::MINUTE;

    /// 2026-03-02T00:00:00Z, a Monday.
    const T0: Millis = 1_772_409_600_000;

    fn ev(identity: &str, time: Millis, target: &str, action: &str) -> AccessEvent {
        AccessEvent {
            event_id: format!("{identity}-{time}-{target}-{action}").into(),
            time,
            identity: identity.into(),
            target: target.into(),
            action: action.into(),
            ..AccessEvent::default()
        }
    }

    /// A pipeline's run: six calls a minute apart in one session, on behalf of
    /// a team, from one client, with one credential.
    fn run(identity: &str, start: Millis) -> Vec<AccessEvent> {
        let calls = [("sts", "AssumeRole"), ("ecr", "GetAuthorizationToken"), ("ecr", "PutImage")];
        let calls =
            calls.into_iter().chain([("s3", "PutObject"), ("ecs", "RegisterTaskDefinition"), ("ecs", "UpdateService")]);
        calls
            .enumerate()
            .map(|(i, (target, action))| AccessEvent {
                identity_type: Some("ci_pipeline".into()),
                on_behalf_of: Some("team-payments".into()),
                session_id: Some(format!("{identity}-{start}").into()),
                credential_id: Some(format!("{identity}-key").into()),
                source_ip: Some("10.0.0.5".into()),
                user_agent: Some("aws-cli/2.15".into()),
                resource: (target == "s3").then(|| "arn:aws:s3:::releases/build.zip".into()),
                ..ev(identity, start + i as i64 * MINUTE, target, action)
            })
            .collect()
    }

    /// Two runs a day (09:00 and 15:00) for `days` days from `T0`: learned after a week.
    fn pipeline(identity: &str, days: i64) -> Vec<AccessEvent> {
        (0..days).flat_map(|d| [9, 15].map(|h| run(identity, T0 + d * DAY + h * HOUR)).concat()).collect()
    }

    fn feed(engine: &mut Engine, events: &[AccessEvent]) -> Vec<Alert> {
        let origin = Origin::File { path: "test".into(), line: 0 };
        events.iter().flat_map(|e| engine.process(&Record::Access(Box::new(e.clone())), &origin)).collect()
    }

    /// Findings mode: these tests count what each detector says, and learn
    /// every call (no incident holds any).
    fn capped(max_identities: usize) -> EngineConfig {
        EngineConfig { max_identities, alerts: AlertMode::Findings, ..EngineConfig::default() }
    }

    fn novel(alerts: &[Alert], identity: &str) -> usize {
        alerts.iter().filter(|a| a.detector == detect::novel_call::SPEC.detector() && a.identity == identity).count()
    }

    #[test]
    fn a_held_call_learned_after_its_session_is_gone_is_no_session_start() {
        let mut engine = Engine::new(EngineConfig::default());
        let mut events = pipeline("ci", 14);
        // 10:00 on day 14: a call the pipeline never makes opens an incident
        // that holds it; the 15:00 run is learned as always; the next
        // morning's run closes the quiet incident and learns the held call.
        let attack = AccessEvent { session_id: Some("stolen".into()), ..run("ci", 0)[0].clone() };
        events.push(AccessEvent {
            action: "CreateUser".into(),
            target: "iam".into(),
            time: T0 + 14 * DAY + 10 * HOUR,
            event_id: "atk".into(),
            ..attack
        });
        events.extend(run("ci", T0 + 14 * DAY + 15 * HOUR));
        events.extend(run("ci", T0 + 15 * DAY + 9 * HOUR));
        let alerts = feed(&mut engine, &events);
        assert!(alerts.iter().any(|a| a.event_ids.contains(&"atk".to_string())), "{alerts:#?}");
        let mut names = engine.state.names.clone();
        let (target, action, class) = (names.intern("iam"), names.intern("CreateUser"), names.intern(""));
        let create_user = names.call(CallKey { target, action, class }).1;
        let b = &engine.state.identities[&names.intern("ci")];
        assert!(b.makes_op(create_user), "the held call was learned when its incident closed");
        // Its session was never followed: what came before it is unknown.
        assert!(b.transitions.get((crate::baseline::CallId::START, create_user)).is_none());
    }

    /// Forgetting skips its scan while no value can be old enough (`kept_since_hours`); a
    /// baseline whose bound is reset before every call scans on every call, as before the
    /// bound. Both must hold exactly the same after every call, through forgetting, long
    /// gaps and calls that arrive hours late.
    #[test]
    fn the_forgetting_bound_forgets_exactly_what_a_scan_on_every_call_forgets() {
        let config = EngineConfig { forget_after_days: 3.0, ..capped(1_000) };
        let (mut bounded, mut scanning) = (Engine::new(config.clone()), Engine::new(config));
        let mut events = pipeline("ci", 5);
        for (i, day) in [9, 10, 14, 15, 16, 21].into_iter().enumerate() {
            for (k, late_hours) in [0, 5, -2, 30].into_iter().enumerate() {
                events.push(AccessEvent {
                    source_ip: Some(format!("10.{i}.{k}.1").into()),
                    user_agent: Some(format!("tool/{k}.{i}").into()),
                    environment: Some(["prod", "dev"][k % 2].into()),
                    ..ev(
                        "ci",
                        T0 + day * DAY + late_hours * HOUR,
                        "s3",
                        ["GetObject", "PutObject", "ListBucket"][k % 3],
                    )
                });
            }
        }
        let id = |engine: &Engine| engine.state.names.strings.get("ci").expect("interned");
        let mut forgot = false;
        for event in &events {
            feed(&mut bounded, std::slice::from_ref(event));
            if let Some(b) =
                scanning.state.names.strings.get("ci").and_then(|ci| scanning.state.identities.get_mut(&ci))
            {
                b.kept_since_hours = 0;
            }
            feed(&mut scanning, std::slice::from_ref(event));
            let (b, s) = (&bounded.state.identities[&id(&bounded)], &scanning.state.identities[&id(&scanning)]);
            assert_eq!(serde_json::to_value(b).unwrap(), serde_json::to_value(s).unwrap(), "after {}", event.event_id);
            forgot |= b.calls.len() < 6;
        }
        assert!(forgot, "the sequence forgets calls, so the bound is put to the test");
    }

    /// What the service publishes ahead of a checkpoint: an identity that took up an operation
    /// or a credential new to it, once per take, and nothing for a call it makes again.
    #[test]
    fn fleet_news_names_an_identity_that_took_up_an_operation_or_a_credential() {
        let mut engine = Engine::new(capped(1_000));
        engine.collect_fleet_news();
        let origin = Origin::File { path: "test".into(), line: 0 };
        let call = |engine: &mut Engine, minutes: i64, action: &str, credential: &str| {
            let e =
                AccessEvent { credential_id: Some(credential.into()), ..ev("ci", T0 + minutes * 60_000, "s3", action) };
            engine.apply_in(&Record::Access(Box::new(e)), &origin, Some(7)).expect("an access is never refused");
            engine.take_fleet_news()
        };
        let ci = vec![(7, "ci".to_string())];
        assert_eq!(call(&mut engine, 0, "GetObject", "AKIA1"), ci, "a first call: an operation and a credential");
        assert_eq!(call(&mut engine, 1, "GetObject", "AKIA1"), [], "the same call again: nothing new");
        assert_eq!(call(&mut engine, 2, "GetObject", "AKIA2"), ci, "a new credential");
        assert_eq!(call(&mut engine, 3, "PutObject", "AKIA2"), ci, "a new operation");
    }

    /// A call through thousands of distinct hops costs what one through `MAX_HOPS` does (it
    /// took a second of comparisons and a name per hop), and its cut is itself news: an
    /// identity that never had so long a chain gets a `new_delegator` finding for it, even
    /// with only known delegators among the hops taken.
    #[test]
    fn an_overlong_chain_is_cut_at_the_hop_limit_and_its_cut_is_news() {
        assert!(LONG_CHAIN.contains(&MAX_HOPS.to_string()), "the marker names the limit");
        // Two weeks of one delegator make a new one a signal; here any new one alerts.
        let mut engine = Engine::new(EngineConfig { novelty_max_probability: 0.5, ..capped(1000) });
        feed(&mut engine, &pipeline("ci-payments", 14));
        let names_before = engine.state.names.strings.len();
        let known = std::iter::repeat_n("team-payments".to_string(), MAX_HOPS);
        let chain = known.chain((0..5_000).map(|i| format!("hop-{i}"))).map(EventText::from).collect();
        let probe = AccessEvent {
            identity_type: Some("ci_pipeline".into()),
            on_behalf_of: Some("team-payments".into()),
            chain,
            ..ev("ci-payments", T0 + 14 * DAY + 9 * HOUR, "sts", "AssumeRole")
        };
        let alerts = feed(&mut engine, &[probe]);
        let grown = engine.state.names.strings.len() - names_before;
        assert!(grown <= MAX_HOPS + 1, "{grown} names added by one call");
        let id = engine.state.names.strings.get("ci-payments").unwrap();
        let delegators: Vec<&str> =
            engine.state.identities[&id].delegators.iter().map(|(d, _)| engine.state.names.name(d)).collect();
        assert_eq!(delegators.len(), 2, "{delegators:?}");
        assert!(delegators.contains(&LONG_CHAIN), "{delegators:?}");
        let new_delegator = detect::new_delegator::SPEC.detector();
        let named: Vec<&str> = alerts
            .iter()
            .filter(|a| a.detector == new_delegator)
            .filter_map(|a| a.evidence.observed["delegator"].as_str())
            .collect();
        assert_eq!(named, [LONG_CHAIN], "{alerts:#?}");
    }

    #[test]
    fn identities_past_the_cap_leave_no_names_behind() {
        let mut engine = Engine::new(capped(1000));
        // 1 KiB names, each identity seen once.
        let flood: Vec<AccessEvent> =
            (0..30_000).map(|i| ev(&format!("{i:0>1024}"), T0 + i * 1000, "t", &format!("a{}", i % 7))).collect();
        feed(&mut engine, &flood);
        let s = &engine.state;
        assert_eq!(s.identities.len(), 1000);
        assert_eq!(s.stats.evicted, 29_000);
        // At most twice what is in use (1,000 identity names and a few more).
        assert!(s.names.strings.len() <= 2 * 1024 + 1, "{} names", s.names.strings.len());
        assert!(s.names.call_count() <= 16, "{} calls", s.names.call_count());
        let mut saved = Vec::new();
        engine.save_state(&mut saved).unwrap();
        assert!(saved.len() < 4 << 20, "saved state is {} bytes", saved.len());
    }

    #[test]
    fn a_flood_of_new_identities_does_not_evict_an_established_one() {
        let mut engine = Engine::new(capped(100));
        feed(&mut engine, &pipeline("ci-payments", 14));
        let flood: Vec<AccessEvent> =
            (0..10_000).map(|i| ev(&format!("flood-{i}"), T0 + 14 * DAY + i * 1000, "s3", "GetObject")).collect();
        feed(&mut engine, &flood);
        assert_eq!(engine.state.stats.evicted, 10_001 - 100);
        assert_eq!(engine.state.stats.evicted_learned, 0);
        // It still knows its baseline: its usual run is quiet, a new call alerts.
        let day = T0 + 15 * DAY;
        assert!(feed(&mut engine, &run("ci-payments", day + 9 * HOUR)).is_empty());
        let probe = AccessEvent {
            identity_type: Some("ci_pipeline".into()),
            ..ev("ci-payments", day + 10 * HOUR, "iam", "CreateAccessKey")
        };
        let alerts = feed(&mut engine, &[probe]);
        assert_eq!(novel(&alerts, "ci-payments"), 1, "{alerts:#?}");
    }

    #[test]
    fn a_cap_below_the_working_set_evicts_one_newcomer_per_newcomer() {
        let mut engine = Engine::new(capped(5));
        // Four pipelines learn and go quiet for a day.
        for p in ["ci-a", "ci-b", "ci-c", "ci-d"] {
            let mut events = pipeline(p, 8);
            events.sort_by_key(|e| e.time);
            feed(&mut engine, &events);
        }
        // Ten other identities take turns, 20,000 calls.
        let churn: Vec<AccessEvent> =
            (0..20_000).map(|i| ev(&format!("churn-{}", i % 10), T0 + 9 * DAY + i * 1000, "t", "a")).collect();
        feed(&mut engine, &churn);
        let s = &engine.state;
        // Every churning call but the first finds its identity evicted and evicts the one before it.
        assert_eq!(s.stats.evicted, 20_000 - 1);
        assert_eq!(s.stats.evicted_learned, 0);
        assert_eq!(s.identities.len(), 5);
        for p in ["ci-a", "ci-b", "ci-c", "ci-d"] {
            assert!(s.identities.contains_key(&s.names.strings.get(p).unwrap()), "{p} was evicted");
        }
    }

    #[test]
    fn distinct_actions_past_the_cap_keep_the_baseline_bounded_and_alerting() {
        let config = EngineConfig { forget_after_days: 10.0, ..capped(1_000_000) };
        let mut engine = Engine::new(config);
        feed(&mut engine, &pipeline("ci-payments", 14));
        // 100,000 distinct actions in sessions, one every two seconds (about 2.3 days).
        let start = T0 + 14 * DAY;
        let id = engine.state.names.strings.get("ci-payments").unwrap();
        for chunk in 0..100 {
            let flood: Vec<AccessEvent> = (0..1000)
                .map(|i| {
                    let n = chunk * 1000 + i;
                    AccessEvent {
                        session_id: Some(format!("probe-{}", n / 10).into()),
                        ..ev("ci-payments", start + n * 2000, "k8s", &format!("get /api/x{n}"))
                    }
                })
                .collect();
            feed(&mut engine, &flood);
            let b = &engine.state.identities[&id];
            assert!(b.calls.len() <= MAX_CALLS && b.transitions.len() <= MAX_TRANSITIONS, "{}", b.calls.len());
            assert_eq!(b.ops.len(), b.ops().count());
            // Its group, and users and adopters of its operations.
            let fleet = &engine.state.facts.fleet;
            assert!(fleet.size() <= 1 + 2 * MAX_CALLS, "{}", fleet.size());
        }
        // Its usual calls survived the flood; once the flood is forgotten they
        // are all it knows, and a new call alerts again.
        let after = T0 + 17 * DAY;
        let normal: Vec<AccessEvent> = (0..12).flat_map(|d| run("ci-payments", after + d * DAY + 9 * HOUR)).collect();
        let alerts = feed(&mut engine, &normal);
        assert_eq!(novel(&alerts, "ci-payments"), 0, "{alerts:#?}");
        assert_eq!(engine.state.identities[&id].calls.len(), 6);
        let probe = AccessEvent {
            identity_type: Some("ci_pipeline".into()),
            ..ev("ci-payments", after + 12 * DAY + 10 * HOUR, "iam", "CreateAccessKey")
        };
        assert_eq!(novel(&feed(&mut engine, &[probe]), "ci-payments"), 1);
    }

    /// The state as saved, less what depends on how much input was seen.
    fn comparable_state(engine: &mut Engine) -> serde_json::Value {
        engine.collect_names();
        let mut state = serde_json::to_value(&engine.state).unwrap();
        let fields = state.as_object_mut().unwrap();
        for counter in ["stats", "names_live"] {
            fields.remove(counter);
        }
        state
    }

    fn without_source(alerts: &[Alert]) -> Vec<serde_json::Value> {
        let strip = |a: &Alert| {
            let mut v = serde_json::to_value(a).unwrap();
            v.as_object_mut().unwrap().remove("source");
            v
        };
        alerts.iter().map(strip).collect()
    }

    #[test]
    fn collecting_names_keeps_exactly_what_the_survivors_hold() {
        // A pipeline learns; then 3,000 identities, each with names of its
        // own, pass through a cap of 3; half-way through, the pipeline makes a
        // new call from a new client for a new delegator. One more identity
        // comes before the pipeline, so that every id of the pipeline moves
        // when its names are collected.
        let other = |i: i64, time: Millis| AccessEvent {
            identity_type: Some(format!("kind-{i}").into()),
            on_behalf_of: Some(format!("delegator-{i}").into()),
            source_ip: Some(format!("host-{i}.example").into()),
            user_agent: Some(format!("agent{i}/1.0").into()),
            ..ev(&format!("other-{i}"), time, &format!("target-{i}"), &format!("action-{i}"))
        };
        let first = other(-1, T0 - HOUR);
        let mut stream = pipeline("ci-x", 10);
        stream.push(first.clone());
        let flood = T0 + 10 * DAY;
        for i in 0..3000 {
            stream.push(other(i, flood + i * 10_000));
        }
        stream.push(AccessEvent {
            identity_type: Some("ci_pipeline".into()),
            on_behalf_of: Some("team-new".into()),
            session_id: Some("odd-run".into()),
            credential_id: Some("ci-x-key".into()),
            source_ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8.0".into()),
            ..ev("ci-x", flood + 4 * HOUR, "iam", "CreateAccessKey")
        });
        stream.extend(run("ci-x", T0 + 11 * DAY + 9 * HOUR));
        stream.sort_by_key(|e| e.time);

        // Suppression entries are kept to the end, so they are compared too.
        let config = EngineConfig { suppression_window_s: 3 * 86_400, ..capped(3) };
        let mut mixed = Engine::new(config.clone());
        let alerts = feed(&mut mixed, &stream);
        assert!(mixed.state.names_live != (0, 0), "names were never collected on the way");
        assert_eq!(mixed.state.stats.evicted, 2999);
        let survivors: Vec<String> =
            mixed.state.identities.keys().map(|&id| mixed.state.names.name(id).to_string()).collect();

        // An engine that only ever saw the survivors (and the first identity,
        // evicted there as well).
        let mut only = Engine::new(config);
        let theirs = |e: &&AccessEvent| survivors.iter().any(|s| *s == e.identity) || e.identity == first.identity;
        let their_stream: Vec<AccessEvent> = stream.iter().filter(theirs).cloned().collect();
        let their_alerts = feed(&mut only, &their_stream);

        assert!(alerts.iter().any(|a| a.detector == detect::novel_call::SPEC.detector()), "{alerts:#?}");
        assert_eq!(without_source(&alerts), without_source(&their_alerts));
        // Every id in every structure was renumbered to what the other engine holds.
        let (collected, theirs) = (comparable_state(&mut mixed), comparable_state(&mut only));
        assert_eq!(collected["names"], theirs["names"]);
        assert!(
            !collected["emitted"].as_array().unwrap().is_empty()
                && !collected["credentials"].as_array().unwrap().is_empty()
        );
        assert_eq!(collected, theirs);
    }

    /// A small saved state: a learned pipeline and a second identity.
    fn saved_state() -> serde_json::Value {
        let mut engine = Engine::new(EngineConfig::default());
        feed(&mut engine, &pipeline("ci-payments", 10));
        feed(&mut engine, &[ev("agent-7", T0 + 10 * DAY, "tools", "search")]);
        let mut saved = Vec::new();
        engine.save_state(&mut saved).unwrap();
        serde_json::from_slice(&saved).unwrap()
    }

    fn load(state: &serde_json::Value) -> Result<Engine, StateError> {
        Engine::load_state(EngineConfig::default(), &mut state.to_string().as_bytes())
    }

    fn invalid(state: &serde_json::Value) -> String {
        match load(state) {
            Err(StateError::Invalid(reason)) => reason,
            Err(e) => panic!("not an invalid-state error: {e}"),
            Ok(_) => panic!("a corrupt state was accepted"),
        }
    }

    #[test]
    fn a_state_with_ids_out_of_range_is_refused_naming_the_fault() {
        let good = saved_state();
        assert!(load(&good).is_ok());
        let calls = good["names"]["calls"].as_array().unwrap().len();
        let names = good["names"]["strings"].as_array().unwrap().len();
        // identities: [[identity id, baseline], ...], sorted by id.
        let first_id = good["identities"][0][0].as_u64().unwrap();

        let mut bad_call = good.clone();
        bad_call["identities"][0][1]["calls"]["entries"][0][0] = 912.into();
        let want = format!("identity {first_id}: call id 912 out of range (table has {calls})");
        assert_eq!(invalid(&bad_call), want);

        let mut bad_identity = good.clone();
        bad_identity["identities"][1][0] = 7000.into();
        assert_eq!(invalid(&bad_identity), format!("identity 7000: name id 7000 out of range (table has {names})"));

        let mut short_names = good.clone();
        short_names["names"]["strings"].as_array_mut().unwrap().truncate(names - 3);
        assert!(invalid(&short_names).contains("out of range"), "{}", invalid(&short_names));

        let mut bad_fleet = good.clone();
        bad_fleet["fleet"]["users"][0][0]["call"] = 5000.into();
        assert_eq!(invalid(&bad_fleet), format!("fleet: call id 5000 out of range (table has {calls})"));

        let mut unsorted = good.clone();
        unsorted["identities"][0][1]["calls"]["entries"].as_array_mut().unwrap().reverse();
        assert!(invalid(&unsorted).starts_with(&format!("identity {first_id}: calls: values not sorted")));

        let mut twice = good.clone();
        let key = twice["names"]["calls"][0].clone();
        twice["names"]["calls"].as_array_mut().unwrap().push(key);
        assert_eq!(invalid(&twice), "call 0: the same call is in the table twice");
    }
}
