//! The engine: one downstream path for replay and the Kafka service. It takes
//! records in event-time order and returns the alerts they cause. Time comes
//! only from the records, so the same input gives the same alerts.
//!
//! Per call: intern its features (`observe`), let every detector judge it
//! against the identity's baseline as it was (`detect::run_all`), then learn
//! from it (`IdentityBaseline::learn`), and turn findings into alerts
//! (`make_alert`), counting repeats within the suppression window.

use crate::alert::{alert_id, Alert, AlertEvent, Severity};
use crate::baseline::counts::{minute, Decay, Minute};
use crate::baseline::fleet::Fleet;
use crate::baseline::intern::{Names, Sym};
use crate::baseline::{pairs, stable_hash, stable_hash_parts, CallKey, Client, IdentityBaseline, Observation};
use crate::detect::{self, Context, Detector, Finding};
use crate::features::{agent_family, network, resource_class, resource_prefix};
use crate::grants::Registry;
use crate::model::{AccessEvent, Grant, Millis, Origin, Record};
use crate::sanitize::sanitize;
use crate::time::{format_rfc3339, DAY, HOUR};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Detection settings. Every field has a documented default (see README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// An identity learns until it has this many days of history...
    pub learning_days: f64,
    /// ...and this many events. Learned detectors are silent while it learns.
    pub learning_events: u64,
    /// Old behaviour fades: a count loses half its weight after this many days.
    pub half_life_days: f64,
    /// Behaviour not seen for this many days is forgotten.
    pub forget_after_days: f64,
    /// Cap on identities held; the least recently seen are evicted past it.
    pub max_identities: usize,
    /// Repeats of the same finding for the same identity within this many
    /// seconds of event time are counted, not emitted.
    pub suppression_window_s: i64,
    /// Novelty detectors alert when the estimated probability of what they saw
    /// is at most this.
    pub novelty_max_probability: f64,
    /// Weight of the peer group's repertoire in a call's probability.
    pub peer_weight: f64,
    /// A new call that this many peers also started making within the rollout
    /// window is a rollout, not an incident.
    pub rollout_min_peers: u32,
    pub rollout_window_days: f64,
    /// Length of the rate and fan-out windows, in seconds.
    pub window_s: i64,
    /// Past active windows needed before rate and fan-out detectors judge.
    pub min_windows: u32,
    /// Rate and fan-out detectors alert when the tail probability is at most this.
    pub burst_max_probability: f64,
    /// `rare_transition` alerts when a session's never-taken steps together
    /// have at most this probability...
    pub path_max_probability: f64,
    /// ...and the step leaves an operation the identity has left this often.
    pub path_min_departures: f64,
    /// Rate and fan-out also need at least this multiple of the usual window:
    /// legitimate load bursts are rarely this far above the mean.
    pub volume_min_ratio: f64,
    pub fanout_min_ratio: f64,
    pub volume_min_calls: u32,
    pub fanout_min_distinct: u32,
    /// Active hours of history needed before `off_hours` judges.
    pub off_hours_min_active_hours: u64,
    /// `off_hours` alerts when an hour of the day is at most this fraction as
    /// likely as it would be for an identity active evenly around the clock.
    pub off_hours_max_ratio: f64,
    /// `dormant_reactivation` needs a silence of at least this many days, and
    /// one that the identity's longest silence makes at most
    /// `novelty_max_probability` likely.
    pub dormant_min_days: f64,
    /// Clients active within this many seconds count as concurrent.
    pub concurrency_window_s: i64,
    /// A credential used by two identities within this many seconds is shared.
    pub credential_reuse_window_s: i64,
    /// Tolerance for clock differences when judging expiry, in seconds.
    pub clock_skew_s: i64,
    /// Detectors switched off.
    pub disabled: Vec<Detector>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            learning_days: 7.0,
            learning_events: 50,
            half_life_days: 30.0,
            forget_after_days: 90.0,
            max_identities: 1_000_000,
            suppression_window_s: 3600,
            novelty_max_probability: 0.01,
            peer_weight: 0.1,
            rollout_min_peers: 2,
            rollout_window_days: 3.0,
            window_s: 600,
            min_windows: 10,
            burst_max_probability: 1e-4,
            path_max_probability: 1e-3,
            path_min_departures: 5.0,
            volume_min_ratio: 8.0,
            fanout_min_ratio: 4.0,
            volume_min_calls: 30,
            fanout_min_distinct: 8,
            off_hours_min_active_hours: 40,
            off_hours_max_ratio: 0.02,
            dormant_min_days: 7.0,
            concurrency_window_s: 300,
            credential_reuse_window_s: 86_400,
            clock_skew_s: 60,
            disabled: Vec::new(),
        }
    }
}

impl EngineConfig {
    pub fn decay(&self) -> Decay {
        Decay { half_life_min: self.half_life_days * 1440.0 }
    }

    pub fn rollout_window_min(&self) -> Minute {
        (self.rollout_window_days * 1440.0) as Minute
    }

    /// Checks every setting against what it can mean. A NaN, a negative
    /// duration or a probability of 0 would not fail anywhere: it would quietly
    /// switch detectors off (or on for everything), so it is refused up front.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let check = |key, ok: bool, value: &dyn std::fmt::Display, expected| match ok {
            true => Ok(()),
            false => Err(InvalidSetting { key, value: value.to_string(), expected }),
        };
        // A zero length is a setting (learn nothing, suppress nothing) except
        // where the detector divides by it or needs a window to count in.
        let days = |key, v: f64, zero: Zero| {
            let ok = v.is_finite() && v <= MAX_DAYS && (v > 0.0 || (v == 0.0 && zero == Zero::Allowed));
            check(key, ok, &v, zero.pick("a number of days from 0 to 36525", "a number of days above 0, at most 36525"))
        };
        let seconds = |key, v: i64, zero: Zero| {
            let ok = v <= MAX_SECONDS && (v > 0 || (v == 0 && zero == Zero::Allowed));
            check(
                key,
                ok,
                &v,
                zero.pick("a number of seconds from 0 to 3155760000", "a number of seconds from 1 to 3155760000"),
            )
        };
        let probability = |key, v: f64| check(key, v > 0.0 && v <= 1.0, &v, "a probability above 0, at most 1");
        let non_negative = |key, v: f64, expected| check(key, v.is_finite() && v >= 0.0, &v, expected);
        days("learning_days", self.learning_days, Zero::Allowed)?;
        days("half_life_days", self.half_life_days, Zero::Refused)?;
        days("forget_after_days", self.forget_after_days, Zero::Refused)?;
        days("rollout_window_days", self.rollout_window_days, Zero::Allowed)?;
        days("dormant_min_days", self.dormant_min_days, Zero::Allowed)?;
        seconds("suppression_window_s", self.suppression_window_s, Zero::Allowed)?;
        seconds("window_s", self.window_s, Zero::Refused)?;
        seconds("concurrency_window_s", self.concurrency_window_s, Zero::Allowed)?;
        seconds("credential_reuse_window_s", self.credential_reuse_window_s, Zero::Allowed)?;
        seconds("clock_skew_s", self.clock_skew_s, Zero::Allowed)?;
        check("max_identities", self.max_identities >= 1, &self.max_identities, "at least 1")?;
        let peers = self.rollout_min_peers;
        check("rollout_min_peers", peers >= 1, &peers, "at least 1 (0 makes every new call a rollout)")?;
        let windows = self.min_windows;
        check("min_windows", windows >= 1, &windows, "at least 1 (a burst is judged against past windows)")?;
        probability("novelty_max_probability", self.novelty_max_probability)?;
        probability("burst_max_probability", self.burst_max_probability)?;
        probability("path_max_probability", self.path_max_probability)?;
        let weight = self.peer_weight;
        check("peer_weight", (0.0..=1.0).contains(&weight), &weight, "a weight from 0 to 1")?;
        non_negative("path_min_departures", self.path_min_departures, "a count of 0 or more")?;
        non_negative("volume_min_ratio", self.volume_min_ratio, "a ratio of 0 or more")?;
        non_negative("fanout_min_ratio", self.fanout_min_ratio, "a ratio of 0 or more")?;
        non_negative("off_hours_max_ratio", self.off_hours_max_ratio, "a ratio of 0 or more")?;
        Ok(())
    }
}

/// Whether a duration setting may be 0.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zero {
    Allowed,
    Refused,
}

impl Zero {
    fn pick(self, allowed: &'static str, refused: &'static str) -> &'static str {
        match self {
            Zero::Allowed => allowed,
            Zero::Refused => refused,
        }
    }
}

/// The longest duration a setting may hold, a century: long past any real
/// history, and short enough that every product in milliseconds or minutes
/// stays far inside its integer type.
const MAX_DAYS: f64 = 36_525.0;
const MAX_SECONDS: i64 = 36_525 * 86_400;

/// A detection setting outside what it can mean.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("engine setting `{key}` is {value}; expected {expected}")]
pub struct InvalidSetting {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
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
}

/// What makes two findings "the same" for suppression.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct SuppressKey {
    identity: Sym,
    detector: Detector,
    subject: String,
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
    identities: HashMap<Sym, IdentityBaseline>,
    fleet: Fleet,
    registry: Registry,
    /// Recent identities per credential (by hash of its id), for reuse.
    #[serde(with = "pairs")]
    credentials: HashMap<u64, Vec<(Sym, Millis)>>,
    #[serde(with = "pairs")]
    emitted: HashMap<SuppressKey, Emitted>,
    stats: Stats,
    /// Event time of the last housekeeping pass.
    swept_at: Millis,
}

const STATE_VERSION: u32 = 1;
/// Identities a credential remembers for reuse.
const MAX_CREDENTIAL_USERS: usize = 4;

pub struct Engine {
    config: EngineConfig,
    state: State,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine { config, state: State { version: STATE_VERSION, ..State::default() } }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// Adds grants from a static policy file; they hold from the beginning of time.
    pub fn add_policy(&mut self, grants: Vec<Grant>) {
        self.state.registry.add_static(grants);
    }

    /// Processes one record and returns the alerts it causes, in a deterministic order.
    pub fn process(&mut self, record: &Record, origin: &Origin) -> Vec<Alert> {
        match record {
            Record::Lifecycle { time, fact, .. } => {
                self.state.stats.lifecycle_events += 1;
                self.state.registry.apply(*time, fact);
                Vec::new()
            }
            Record::Access(event) => self.access(event, origin),
        }
    }

    fn access(&mut self, event: &AccessEvent, origin: &Origin) -> Vec<Alert> {
        self.state.stats.events += 1;
        self.sweep(event.time);
        let identity = self.state.names.intern(&event.identity);
        let group = match self.state.identities.get(&identity).and_then(|b| b.peer_group) {
            Some(group) => group,
            None => self.join(identity, event),
        };
        let obs = self.observe(event, group);
        let sharers = self.credential_sharers(event, identity);

        let findings = {
            let s = &self.state;
            let grants = s.registry.applicable(
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
                fleet: &s.fleet,
                registry: &s.registry,
                grants: &grants,
                credential_sharers: &sharers,
            };
            detect::run_all(&ctx)
        };

        let forget_after = (self.config.forget_after_days * 1440.0) as Minute;
        let concurrency = (self.config.concurrency_window_s / 60) as Minute;
        let baseline = self.state.identities.get_mut(&identity).expect("joined above");
        let learned = baseline.learn(&obs, &self.state.names, self.config.decay(), forget_after, concurrency);
        if let Some(op) = learned.adopted_op {
            self.state.fleet.adopt(group, op, identity, obs.minute);
        }
        for key in learned.forgotten_ops {
            let empty = self.state.names.intern("");
            let op = self.state.names.call_id(CallKey { class: empty, ..key });
            self.state.fleet.forget(group, op);
        }
        findings.into_iter().filter_map(|f| self.make_alert(f, identity, event, origin)).collect()
    }

    /// First sight of an identity: a fresh baseline in its peer group.
    fn join(&mut self, identity: Sym, event: &AccessEvent) -> Sym {
        let group = self.state.names.intern(event.identity_type.as_deref().unwrap_or(""));
        let baseline = IdentityBaseline { peer_group: Some(group), ..IdentityBaseline::default() };
        self.state.identities.insert(identity, baseline);
        self.state.fleet.join(group);
        self.state.stats.identities = self.state.identities.len() as u64;
        if self.state.identities.len() > self.config.max_identities {
            self.evict(identity);
        }
        group
    }

    /// Evicts the least recently seen identities, down to 90% of the cap so
    /// eviction runs rarely; `keep` (the identity being added) stays.
    fn evict(&mut self, keep: Sym) {
        let target = (self.config.max_identities * 9 / 10).max(1);
        let mut by_age: Vec<(Minute, Sym)> =
            self.state.identities.iter().filter(|(id, _)| **id != keep).map(|(id, b)| (b.last_seen, *id)).collect();
        by_age.sort_unstable();
        let excess = self.state.identities.len().saturating_sub(target);
        for (_, id) in by_age.into_iter().take(excess) {
            if let Some(b) = self.state.identities.remove(&id) {
                if let Some(group) = b.peer_group {
                    let empty = self.state.names.intern("");
                    let mut ops: Vec<_> =
                        b.calls.iter().map(|(c, _)| CallKey { class: empty, ..self.state.names.call_key(c) }).collect();
                    ops.sort_unstable();
                    ops.dedup();
                    let ops: Vec<_> = ops.into_iter().map(|k| self.state.names.call_id(k)).collect();
                    self.state.fleet.leave(group, ops.into_iter());
                }
                self.state.stats.evicted += 1;
            }
        }
        self.state.stats.identities = self.state.identities.len() as u64;
    }

    /// Interns the features of a call that baselines learn on.
    fn observe(&mut self, e: &AccessEvent, peer_group: Sym) -> Observation {
        let names = &mut self.state.names;
        let class = e.resource.as_deref().map(resource_class).unwrap_or_default();
        let call_key =
            CallKey { target: names.intern(&e.target), action: names.intern(&e.action), class: names.intern(&class) };
        let no_class = names.intern("");
        let op = names.call_id(CallKey { class: no_class, ..call_key });
        let client = (e.source_ip.is_some() || e.user_agent.is_some()).then(|| Client {
            network: names.intern(&network(e.source_ip.as_deref().unwrap_or("unknown"))),
            agent: names.intern(&agent_family(e.user_agent.as_deref().unwrap_or(""))),
        });
        let mut delegators = Vec::new();
        for d in e.on_behalf_of.iter().chain(&e.chain) {
            let sym = names.intern(d);
            if !delegators.contains(&sym) {
                delegators.push(sym);
            }
        }
        Observation {
            minute: minute(e.time),
            window: (e.time.max(0) / (self.config.window_s.max(1) * 1000)) as u32,
            call: names.call_id(call_key),
            call_key,
            op,
            reach: stable_hash_parts(&[&e.target, resource_prefix(&class)]),
            session: e.session_id.as_deref().map(stable_hash),
            client,
            delegators,
            peer_group,
        }
    }

    /// Other identities that used this call's credential recently; records this use.
    fn credential_sharers(&mut self, e: &AccessEvent, identity: Sym) -> Vec<Sym> {
        let Some(credential) = e.credential_id.as_deref() else { return Vec::new() };
        let window = self.config.credential_reuse_window_s * 1000;
        let users = self.state.credentials.entry(stable_hash(credential)).or_default();
        let sharers =
            users.iter().filter(|(who, at)| *who != identity && e.time - at <= window).map(|(who, _)| *who).collect();
        users.retain(|(who, _)| *who != identity);
        users.insert(0, (identity, e.time));
        users.truncate(MAX_CREDENTIAL_USERS);
        sharers
    }

    fn make_alert(&mut self, f: Finding, identity: Sym, e: &AccessEvent, origin: &Origin) -> Option<Alert> {
        let key = SuppressKey { identity, detector: f.detector, subject: f.subject };
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
        *self.state.stats.alerts.entry(f.detector).or_default() += 1;
        let score = detect::round(f.score, 4);
        let mut alert = Alert {
            alert_id: alert_id(f.detector, &e.identity, &e.event_id),
            detector: f.detector,
            severity: Severity::from_score(score),
            score,
            time: format_rfc3339(e.time),
            identity: e.identity.clone(),
            identity_type: e.identity_type.clone(),
            on_behalf_of: e.on_behalf_of.clone(),
            chain: e.chain.clone(),
            event_ids: vec![e.event_id.clone()],
            event: AlertEvent {
                target: e.target.clone(),
                action: e.action.clone(),
                resource: e.resource.clone(),
                environment: e.environment.clone(),
                session_id: e.session_id.clone(),
                grant_id: e.grant_id.clone(),
                credential_id: e.credential_id.clone(),
                source_ip: e.source_ip.clone(),
                user_agent: e.user_agent.clone(),
                outcome: e.outcome,
            },
            source: origin.to_string(),
            summary: f.summary,
            evidence: f.evidence,
            owasp_nhi: f.detector.owasp_nhi().iter().map(|s| s.to_string()).collect(),
            attack: f.detector.attack().iter().map(|s| s.to_string()).collect(),
            recommended_action: f.detector.recommended_action().to_string(),
            suppressed_repeats: repeats,
            truncated: Vec::new(),
        };
        // Every alert leaves the engine redacted and bounded, whatever the sink or format.
        sanitize(&mut alert);
        Some(alert)
    }

    /// Hourly housekeeping in event time: drops suppression entries, adoption
    /// records and credential uses too old to matter, so state stays bounded.
    fn sweep(&mut self, now: Millis) {
        if now - self.state.swept_at < HOUR {
            return;
        }
        self.state.swept_at = now;
        // An entry with counted repeats stays until the next alert reports them
        // (or the identity's behaviour would be forgotten anyway).
        let window = self.config.suppression_window_s * 1000;
        let forget = (self.config.forget_after_days * DAY as f64) as Millis;
        self.state.emitted.retain(|_, e| now - e.at < if e.repeats > 0 { forget } else { window });
        let reuse = self.config.credential_reuse_window_s * 1000;
        self.state.credentials.retain(|_, users| {
            users.retain(|(_, at)| now - at <= reuse);
            !users.is_empty()
        });
        self.state.fleet.expire(minute(now).saturating_sub(self.config.rollout_window_min()));
        self.state.registry.forget_before(now - (self.config.forget_after_days * DAY as f64) as Millis);
    }

    /// Approximate bytes held by all identity baselines (see `IdentityBaseline::approx_bytes`).
    pub fn baseline_bytes(&self) -> usize {
        self.state.identities.values().map(IdentityBaseline::approx_bytes).sum()
    }

    /// Mean baseline bytes of the identities whose distinct calls are closest
    /// to `calls` (for the benchmark): (distinct calls, mean bytes).
    pub fn baseline_bytes_near_calls(&self, calls: usize) -> Option<(usize, f64)> {
        let nearest = self.state.identities.values().map(|b| b.calls.len().abs_diff(calls)).min()?;
        let picked: Vec<&IdentityBaseline> =
            self.state.identities.values().filter(|b| b.calls.len().abs_diff(calls) == nearest).collect();
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
        state.registry.reindex();
        Ok(Engine { config, state })
    }
}

/// Reads the `[engine]` table of a TOML configuration file; other tables (the
/// service's) are left to their readers.
pub fn config_from_toml(text: &str) -> Result<EngineConfig, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        engine: EngineConfig,
    }
    toml::from_str::<File>(text).map(|f| f.engine).map_err(|e| e.to_string())
}
