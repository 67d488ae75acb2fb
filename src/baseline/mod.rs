//! Per-identity baselines, learned in event time: what each identity calls, in
//! which order, for whom, from where, when, how much, and how far it reaches.
//! `IdentityBaseline::learn` is the one place a baseline is updated.

pub mod admission;
pub mod counts;
pub mod fleet;
pub mod hours;
pub mod intern;
pub mod pairs;
pub mod peer_group;
pub mod sorted;
pub mod window;

use crate::features::AddressScope;
use crate::model::{Millis, Outcome};
use counts::{make_room, Counts, Decay, Minute, Novelty};
use fleet::{Adoptions, PeerGroups};
use hours::Hours;
use intern::{IdVisitor, Ids, Sym};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use window::Activity;

/// One kind of downstream call: target, action and resource class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallKey {
    pub target: Sym,
    pub action: Sym,
    pub class: Sym,
}

/// A call's id in the engine's call table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallId(pub u32);

impl CallId {
    /// The start of a session: the "previous call" of a session's first call.
    pub const START: CallId = CallId(u32::MAX);
    /// The end of a session: the "next call" after a session's last.
    pub const END: CallId = CallId(u32::MAX - 1);

    /// `START` and `END` bound a session's path; they are not ids of the call table.
    pub fn is_marker(self) -> bool {
        self == CallId::START || self == CallId::END
    }
}

/// A client: where a call came from and with what software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Client {
    pub network: Sym,
    pub agent: Sym,
}

/// The features of one call that baselines learn on, already interned. Held
/// in state while an open incident keeps it from being learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub minute: Minute,
    /// Index of the rate/fan-out window the call falls in.
    pub window: u32,
    pub call: CallId,
    pub call_key: CallKey,
    /// The call without its resource class (target and action): the unit of
    /// execution paths and of fleet adoption.
    pub op: CallId,
    /// Where the call reaches (target and resource prefix, hashed): the unit of fan-out.
    pub reach: u64,
    /// A hash of the session id: sessions are too many to intern.
    pub session: Option<u64>,
    pub client: Option<Client>,
    /// The wider network (IPv4 /16, IPv6 /32), the address scope and the
    /// client's version, when the call names a source.
    pub place: Option<Place>,
    /// Most calls name a delegator or two: inline, not a heap block per call.
    pub delegators: SmallVec<[Sym; 4]>,
    pub peer_group: Sym,
    /// The group's family (`fleet::PeerGroups`); states saved before it
    /// was kept have none, and their group is its own family.
    #[serde(default)]
    pub peer_family: Option<Sym>,
    /// The environment (account, project, namespace) the call was served in.
    pub environment: Option<Sym>,
    #[serde(default)]
    pub region: Option<Sym>,
    pub outcome: Outcome,
}

/// Where a call came from, beyond its /24 and client family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub wide_network: Sym,
    pub scope: AddressScope,
    pub agent_version: Sym,
}

/// FNV-1a: a stable 64-bit hash for ids that are too many to intern (sessions,
/// credentials). Stable across builds, unlike the standard library's hasher.
pub fn stable_hash(s: &str) -> u64 {
    stable_hash_parts(&[s])
}

/// `stable_hash` over several strings, each ended by a byte no UTF-8 text holds.
pub fn stable_hash_parts(parts: &[&str]) -> u64 {
    let step = |h: u64, b: u8| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    parts.iter().fold(0xcbf2_9ce4_8422_2325, |h, p| step(p.bytes().fold(h, step), 0xff))
}

/// Most distinct values one identity holds of each kind. Past a cap the
/// weakest values make room (`Counts::shed`), so an identity fed distinct
/// values by an attacker (Kubernetes URIs and resource names are chosen by the
/// caller) costs bounded memory and bounded work per call. The simulated
/// fleet's largest identities hold 425 calls, 66 transitions, 40 networks, 3
/// client families and 5 delegators (1,000 identities, 30 days, seeds 7 and
/// 8). Each call's detectors scan the identity's values, so the caps are what
/// one call can cost.
pub const MAX_CALLS: usize = 1024;
/// Credentials an identity remembers having used (for reuse by another identity).
pub const MAX_CREDENTIALS: usize = 4;
pub const MAX_TRANSITIONS: usize = 1024;
pub const MAX_NETWORKS: usize = 512;
pub const MAX_AGENTS: usize = 128;
pub const MAX_DELEGATORS: usize = 1024;
pub const MAX_ENVIRONMENTS: usize = 256;

/// How long a session may idle before its next call counts as a new start.
const SESSION_IDLE_MIN: Minute = 60;
/// Departures from an operation before its own are trusted over the pooled
/// estimate (`new_step`).
const STEP_MIN_DEPARTURES: f64 = 20.0;
/// Sessions remembered per identity for transitions.
const MAX_SESSIONS: usize = 4;
/// Clients remembered per identity for concurrency.
const MAX_CLIENTS: usize = 8;
/// A silence shorter than this is not a gap between active periods.
const MIN_GAP_MIN: Minute = 60;

/// Runs counted for repertoire stability (see `IdentityBaseline::runs`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Runs {
    pub runs: u32,
    pub novel_runs: u32,
    /// The current run's key (a session hash, or a clock hour), and whether
    /// it was already counted as novel.
    current: u64,
    current_novel: bool,
}

impl Runs {
    /// Chance that the next run takes up an operation the identity never
    /// made: the share of its runs that did, with Jeffreys' half-count
    /// (`(novel + 0.5) / (runs + 1)`), so a settled pipeline with 40 runs and
    /// no new operation since its first day gets 0.012, one with 200 runs
    /// 0.0025, and an agent that takes up a new tool every tenth task 0.1.
    pub fn p_new_operation(&self) -> f64 {
        (self.novel_runs as f64 + 0.5) / (self.runs as f64 + 1.0)
    }

    fn record(&mut self, key: u64, novel: bool) {
        if key != self.current || self.runs == 0 {
            self.current = key;
            self.current_novel = false;
            self.runs = self.runs.saturating_add(1);
        }
        if novel && !self.current_novel {
            self.current_novel = true;
            self.novel_runs = self.novel_runs.saturating_add(1);
        }
    }
}

/// One execution path in progress. Packed to 4-byte alignment: 20 bytes,
/// not 24, in every baseline's followed sessions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[repr(C, packed(4))]
pub struct SessionState {
    /// `stable_hash` of the session id.
    pub id: u64,
    pub last_op: CallId,
    pub last: Minute,
    /// Summed surprise (-log10 probability) of the steps this session took
    /// that the identity had never taken.
    pub surprise: f32,
}

/// Every identity's baseline, by name. Boxed: a baseline is about 600 bytes, and a table of
/// them inline held a hash table's slack (up to half its slots) and, on every resize, a copy
/// of it all in resident memory.
pub type Baselines = intern::FastMap<Sym, Box<IdentityBaseline>>;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdentityBaseline {
    pub first_seen: Minute,
    pub last_seen: Minute,
    pub events: u64,
    pub peer_group: Option<Sym>,
    /// See `Observation::peer_family`.
    #[serde(default)]
    pub peer_family: Option<Sym>,
    pub calls: Counts<CallId>,
    /// Consecutive operations (target and action) of one session;
    /// `CallId::START` opens a session and `CallId::END` closes one.
    pub transitions: Counts<(CallId, CallId)>,
    pub delegators: Counts<Sym>,
    pub networks: Counts<Sym>,
    pub agents: Counts<Sym>,
    /// Wider networks (/16, /32), address scopes and client versions used.
    #[serde(default)]
    pub wide_networks: Counts<Sym>,
    #[serde(default)]
    pub scopes: Counts<AddressScope>,
    #[serde(default)]
    pub agent_versions: Counts<Sym>,
    /// Environments served in, and outcomes met (each at most once an hour).
    #[serde(default)]
    pub environments: Counts<Sym>,
    #[serde(default)]
    pub regions: Counts<Sym>,
    #[serde(default)]
    pub outcomes: Counts<Outcome>,
    /// How settled the repertoire is: runs (sessions, or active clock hours
    /// for calls without one) after the identity's first day, and how many
    /// of them took up an operation it had never made.
    #[serde(default)]
    pub runs: Runs,
    pub hours: Hours,
    pub activity: Activity,
    /// Longest silence between active periods so far, in minutes.
    pub longest_gap: Minute,
    /// Most distinct clients seen active together within the concurrency window.
    pub max_concurrent_clients: u8,
    /// Recent sessions, most recent first.
    pub sessions: Vec<SessionState>,
    /// Recent clients with the minute each was last seen.
    pub clients: Vec<(Client, Minute)>,
    /// Operations it took up once its baseline was learned, and how many of
    /// them were sensitive: its share of the fleet's base rate
    /// (`Fleet::adoptions`), which moves with it to another instance.
    #[serde(default)]
    pub adoptions: Adoptions,
    /// Credentials it used lately (by `stable_hash` of the id) and when, most
    /// recent first: its share of the fleet's credential users, likewise.
    #[serde(default)]
    pub credentials: Vec<(u64, Millis)>,
    /// How many calls of the repertoire each operation has, sorted by
    /// operation: derived from `calls` (`index_ops`), so that whether the
    /// identity makes an operation is a lookup, not a scan.
    #[serde(skip)]
    pub ops: Vec<(CallId, u32)>,
    /// No count holds a value last seen before this many whole hours after `first_seen` (a
    /// lower bound; 0: not known). Forgetting scans the counts only once its cutoff passes
    /// it, not on every call. Hours in a `u16` (7 years) fit the padding the baseline had.
    #[serde(skip)]
    pub kept_since_hours: u16,
}

impl Observation {
    pub fn peer_groups(&self) -> PeerGroups {
        PeerGroups { group: self.peer_group, family: self.peer_family.unwrap_or(self.peer_group) }
    }
}

impl IdentityBaseline {
    /// Its peer group and family, once it has joined the fleet.
    pub fn peer_groups(&self) -> Option<PeerGroups> {
        let group = self.peer_group?;
        Some(PeerGroups { group, family: self.peer_family.unwrap_or(group) })
    }

    /// True once the identity has enough history for learned detectors. An
    /// identity never seen has no history at all, whatever the settings: with
    /// `learning_events = 0` its first call would otherwise be judged against
    /// an empty baseline (a "silence" since 1970).
    pub fn is_learned(&self, min_days: f64, min_events: u64) -> bool {
        self.events >= min_events.max(1) && (self.last_seen - self.first_seen) as f64 >= min_days * 1440.0
    }

    /// The session's state, unless it is unknown or idle too long to continue.
    pub fn session(&self, session: u64, now: Minute) -> Option<&SessionState> {
        self.sessions.iter().find(|s| s.id == session && now.saturating_sub(s.last) <= SESSION_IDLE_MIN)
    }

    /// The previous operation in this session, or `START` for a session's first call.
    pub fn previous_call(&self, session: u64, now: Minute) -> CallId {
        self.session(session, now).map_or(CallId::START, |s| s.last_op)
    }

    /// For a step from the session's previous operation to `op` that the
    /// identity never took: the novelty of its steps, whose `p_unseen` is the
    /// step's probability (`leaving`). `None` for a known step.
    pub fn new_step(&self, session: u64, op: CallId, now: Minute, decay: Decay) -> Option<Novelty> {
        let previous = self.previous_call(session, now);
        if self.transitions.get((previous, op)).is_some() {
            return None;
        }
        Some(self.leaving(previous, now, decay))
    }

    /// A session that went idle past `SESSION_IDLE_MIN` (it has ended) and,
    /// when ending after its last operation is a step the identity never
    /// took, that step's novelty.
    pub fn ended_session(&self, session: u64, now: Minute, decay: Decay) -> Option<(SessionState, Option<Novelty>)> {
        let s = *self.sessions.iter().find(|s| s.id == session && now.saturating_sub(s.last) > SESSION_IDLE_MIN)?;
        let known = self.transitions.get((s.last_op, CallId::END)).is_some();
        Some((s, (!known).then(|| self.leaving(s.last_op, now, decay))))
    }

    /// Stops following an ended session, learning its end (`learn`) or not
    /// (an open incident holds it).
    pub fn close_session(&mut self, session: u64, learn: bool, now: Minute, decay: Decay) {
        let Some(i) = self.sessions.iter().position(|s| s.id == session) else { return };
        let s = self.sessions.remove(i);
        if learn {
            learn_end(&mut self.transitions, &s, now, decay);
        }
    }

    /// The novelty of leaving `previous` by a step never taken. Good-Turing
    /// pooled over all the identity's steps is stable long before any one
    /// operation has many; once `previous` has been left
    /// `STEP_MIN_DEPARTURES` times, its own departures say more (an agent
    /// whose paths vary may still always close a task after commenting, and
    /// always start one by reading the ticket), and the smaller of the two is
    /// taken.
    fn leaving(&self, previous: CallId, now: Minute, decay: Decay) -> Novelty {
        let pooled = self.transitions.novelty(now, decay);
        let from_here = self.transitions.novelty_where(now, decay, |(from, _)| from == previous);
        match from_here.observations >= STEP_MIN_DEPARTURES && from_here.p_unseen < pooled.p_unseen {
            true => from_here,
            false => pooled,
        }
    }

    /// The minute the identity's sessions first reached `op`, if they have.
    pub fn first_step_into(&self, op: CallId) -> Option<Minute> {
        self.transitions.iter().filter(|((_, to), _)| *to == op).map(|(_, e)| e.first).min()
    }

    /// Learns how the sessions idle past `SESSION_IDLE_MIN` ended and stops
    /// following them.
    fn end_idle_sessions(&mut self, now: Minute, decay: Decay) {
        let transitions = &mut self.transitions;
        self.sessions.retain(|s| {
            let ended = now.saturating_sub(s.last) > SESSION_IDLE_MIN;
            if ended {
                learn_end(transitions, s, now, decay);
            }
            !ended
        });
    }

    /// Records a use of a credential (by `stable_hash` of its id) at `at`; true when it was
    /// not among the credentials it used lately.
    pub fn used_credential(&mut self, credential: u64, at: Millis) -> bool {
        let before = self.credentials.len();
        self.credentials.retain(|(c, _)| *c != credential);
        let new = self.credentials.len() == before;
        push_recent(&mut self.credentials, (credential, at), MAX_CREDENTIALS);
        new
    }

    /// Distinct clients, other than `client`, seen within `window` minutes before `now`.
    pub fn other_active_clients(&self, client: Client, now: Minute, window: Minute) -> Vec<Client> {
        self.clients
            .iter()
            .filter(|(c, last)| *c != client && now.saturating_sub(*last) <= window)
            .map(|(c, _)| *c)
            .collect()
    }

    /// Folds one call into the baseline. Returns the operation newly added to
    /// the identity's repertoire and those it no longer makes, for the fleet's
    /// adoption counts.
    pub fn learn(
        &mut self,
        obs: &Observation,
        names: &intern::Names,
        decay: Decay,
        forget_after: Minute,
        concurrency: Minute,
    ) -> Learned {
        let now = obs.minute;
        let latest = self.last_seen;
        if self.events == 0 {
            self.first_seen = now;
        } else if now.saturating_sub(self.last_seen) >= MIN_GAP_MIN {
            self.longest_gap = self.longest_gap.max(now - self.last_seen);
        }
        self.events += 1;
        self.last_seen = self.last_seen.max(now);
        // A value inserted below is last seen `now`; a value seen again only moves later.
        if self.kept_since().is_some_and(|since| now < since) {
            self.keep_since(now);
        }

        let new_call = self.calls.get(obs.call).is_none();
        let new_op = new_call && !self.makes_op(obs.op);
        let mut dropped = Vec::new();
        if self.calls.observe(obs.call, now, decay) {
            self.count_op(obs.op, 1);
            dropped = self.calls.shed(MAX_CALLS, obs.call, now, decay);
        }
        if let Some(session) = obs.session {
            self.end_idle_sessions(now, decay);
            let previous = self.previous_call(session, now);
            // A call older than what was learned since, whose session is no
            // longer followed (one an incident held, learned when it closed,
            // after its session ended), has an unknown predecessor: the start
            // of a path is learned only when it was seen.
            let cut = previous == CallId::START && self.events > 1 && now < latest;
            let mut surprise = 0.0;
            if !cut {
                surprise = self.session(session, now).map_or(0.0, |s| s.surprise)
                    + self.new_step(session, obs.op, now, decay).map_or(0.0, |n| -n.p_unseen.log10() as f32);
                observe_capped(&mut self.transitions, (previous, obs.op), now, decay, MAX_TRANSITIONS);
            }
            self.sessions.retain(|s| s.id != session);
            // Past `MAX_SESSIONS` at once the oldest is no longer followed;
            // whether it ended is not known, so no end is learned of it.
            push_recent(
                &mut self.sessions,
                SessionState { id: session, last_op: obs.op, last: now, surprise },
                MAX_SESSIONS,
            );
        }
        // A run is a session, or a clock hour of calls without one; the
        // first day is how a repertoire is learned, not a change of it.
        if now.saturating_sub(self.first_seen) >= 1440 {
            let key = obs.session.unwrap_or((now / 60) as u64 | 1 << 63);
            self.runs.record(key, new_op);
        }
        for &d in &obs.delegators {
            observe_capped(&mut self.delegators, d, now, decay, MAX_DELEGATORS);
        }
        if let Some(place) = obs.place {
            observe_capped(&mut self.wide_networks, place.wide_network, now, decay, MAX_NETWORKS);
            self.scopes.observe(place.scope, now, decay);
            observe_capped(&mut self.agent_versions, place.agent_version, now, decay, MAX_AGENTS);
        }
        if let Some(environment) = obs.environment {
            observe_capped(&mut self.environments, environment, now, decay, MAX_ENVIRONMENTS);
        }
        if let Some(region) = obs.region {
            observe_capped(&mut self.regions, region, now, decay, MAX_ENVIRONMENTS);
        }
        self.outcomes.observe(obs.outcome, now, decay);
        if let Some(client) = obs.client {
            observe_capped(&mut self.networks, client.network, now, decay, MAX_NETWORKS);
            observe_capped(&mut self.agents, client.agent, now, decay, MAX_AGENTS);
            let concurrent = 1 + self.other_active_clients(client, now, concurrency).len();
            self.max_concurrent_clients = self.max_concurrent_clients.max(concurrent.min(255) as u8);
            self.clients.retain(|(c, _)| *c != client);
            push_recent(&mut self.clients, (client, now), MAX_CLIENTS);
        }
        self.hours.record(now, decay.half_life_min);
        self.activity.record(obs.window, obs.reach, now, decay);

        let forgotten_calls = self.forget_before(now.saturating_sub(forget_after));
        let mut forgotten_ops = Vec::new();
        for call in dropped.into_iter().chain(forgotten_calls) {
            let op = names.op_of(call);
            if self.count_op(op, -1) == 0 {
                forgotten_ops.push(op);
            }
        }
        Learned { adopted_op: new_op.then_some(obs.op), forgotten_ops }
    }

    /// Drops every value last seen before `cutoff`; returns the calls dropped.
    fn forget_before(&mut self, cutoff: Minute) -> Vec<CallId> {
        if self.kept_since().is_some_and(|since| cutoff <= since) {
            return Vec::new();
        }
        let forgotten_calls = self.calls.forget_before(cutoff);
        if !forgotten_calls.is_empty() {
            self.transitions.forget_before(cutoff);
        }
        for counts in self.sym_counts_mut() {
            counts.forget_before(cutoff);
        }
        self.scopes.forget_before(cutoff);
        self.outcomes.forget_before(cutoff);
        // Transitions are not in the bound: they are forgotten only with a call.
        let held = self.sym_counts_mut().into_iter().filter_map(|c| c.oldest_last()).min();
        let oldest = [held, self.calls.oldest_last(), self.scopes.oldest_last(), self.outcomes.oldest_last()];
        self.keep_since(oldest.into_iter().flatten().min().unwrap_or(cutoff));
        forgotten_calls
    }

    /// The minute no count holds a value last seen before, when known.
    fn kept_since(&self) -> Option<Minute> {
        let hours = Minute::from(self.kept_since_hours);
        (hours > 0).then(|| self.first_seen.saturating_add(hours * 60))
    }

    /// Sets the bound to `oldest`, rounded down to a whole hour after `first_seen`: not known
    /// when that is less than an hour after it, or too far.
    fn keep_since(&mut self, oldest: Minute) {
        let hours = oldest.saturating_sub(self.first_seen) / 60;
        self.kept_since_hours = u16::try_from(hours).unwrap_or(0);
    }

    /// Every count keyed by a name: what forgetting and id visits walk.
    fn sym_counts_mut(&mut self) -> [&mut Counts<Sym>; 7] {
        [
            &mut self.delegators,
            &mut self.networks,
            &mut self.agents,
            &mut self.wide_networks,
            &mut self.agent_versions,
            &mut self.environments,
            &mut self.regions,
        ]
    }

    /// True when some call in the repertoire has this operation (target and action).
    pub fn makes_op(&self, op: CallId) -> bool {
        self.ops.binary_search_by_key(&op, |(o, _)| *o).is_ok()
    }

    /// Adds `delta` to the calls counted for `op`; returns the new count.
    fn count_op(&mut self, op: CallId, delta: i32) -> u32 {
        match self.ops.binary_search_by_key(&op, |(o, _)| *o) {
            Ok(i) => {
                let n = self.ops[i].1.saturating_add_signed(delta);
                if n == 0 {
                    self.ops.remove(i);
                } else {
                    self.ops[i].1 = n;
                }
                n
            }
            Err(i) if delta > 0 => {
                make_room(&mut self.ops);
                self.ops.insert(i, (op, delta as u32));
                delta as u32
            }
            Err(_) => 0,
        }
    }

    /// Sorts every count again and derives `ops`, after its ids were
    /// renumbered into another engine's tables (see `engine::transfer`).
    pub fn resort(&mut self, names: &intern::Names) {
        self.calls.resort();
        self.transitions.resort();
        for counts in self.sym_counts_mut() {
            counts.resort();
        }
        self.index_ops(names);
    }

    /// Derives `ops` from `calls` (after loading, or after ids were renumbered).
    pub fn index_ops(&mut self, names: &intern::Names) {
        self.ops.clear();
        for (call, _) in self.calls.iter() {
            let op = names.op_of(call);
            match self.ops.binary_search_by_key(&op, |(o, _)| *o) {
                Ok(i) => self.ops[i].1 += 1,
                Err(i) => {
                    make_room(&mut self.ops);
                    self.ops.insert(i, (op, 1))
                }
            }
        }
    }

    /// The operations the identity makes.
    pub fn ops(&self) -> impl Iterator<Item = CallId> + '_ {
        self.ops.iter().map(|(op, _)| *op)
    }

    /// Checks what a loaded baseline must hold for lookups and arithmetic:
    /// sorted values, no session start among calls, a peer group, and time in order.
    pub fn check(&self) -> Result<(), String> {
        let sorted = |what: &str, r: Result<(), String>| r.map_err(|e| format!("{what}: {e}"));
        sorted("calls", self.calls.check_sorted())?;
        sorted("transitions", self.transitions.check_sorted())?;
        sorted("delegators", self.delegators.check_sorted())?;
        sorted("networks", self.networks.check_sorted())?;
        sorted("agents", self.agents.check_sorted())?;
        sorted("wide networks", self.wide_networks.check_sorted())?;
        sorted("scopes", self.scopes.check_sorted())?;
        sorted("agent versions", self.agent_versions.check_sorted())?;
        sorted("environments", self.environments.check_sorted())?;
        sorted("regions", self.regions.check_sorted())?;
        sorted("outcomes", self.outcomes.check_sorted())?;
        if self.calls.iter().any(|(c, _)| c.is_marker()) {
            return Err("calls: holds a session bound".into());
        }
        if self.activity.reached.windows(2).any(|w| w[0] >= w[1]) {
            return Err("activity: reached keys not sorted or repeated".into());
        }
        if self.peer_group.is_none() {
            return Err("no peer group".into());
        }
        if self.first_seen > self.last_seen {
            return Err(format!("first seen (minute {}) after last seen ({})", self.first_seen, self.last_seen));
        }
        Ok(())
    }

    /// Approximate heap and inline bytes this baseline holds (for the benchmark
    /// and the summary; not an allocator measurement).
    pub fn approx_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Self>()
            + self.calls.len() * size_of::<(CallId, counts::Entry)>()
            + self.transitions.len() * size_of::<((CallId, CallId), counts::Entry)>()
            + (self.delegators.len()
                + self.networks.len()
                + self.agents.len()
                + self.wide_networks.len()
                + self.agent_versions.len()
                + self.environments.len()
                + self.regions.len())
                * size_of::<(Sym, counts::Entry)>()
            + (self.scopes.len() + self.outcomes.len()) * size_of::<(Outcome, counts::Entry)>()
            + self.activity.reached.capacity() * size_of::<u64>()
            + self.sessions.capacity() * size_of::<SessionState>()
            + self.clients.capacity() * size_of::<(Client, Minute)>()
            + self.credentials.capacity() * size_of::<(u64, Millis)>()
    }
}

/// Puts `item` first in a most-recent-first list of at most `max`. The oldest
/// goes before the insert, so the list never holds `max + 1` and its
/// allocation never doubles past `max` (a baseline's sessions, clients and
/// credentials were a fifth of its bytes).
fn push_recent<T>(list: &mut Vec<T>, item: T, max: usize) {
    list.truncate(max - 1);
    make_room(list);
    list.insert(0, item);
}

/// Learns that a session ended after its last operation.
fn learn_end(transitions: &mut Counts<(CallId, CallId)>, s: &SessionState, now: Minute, decay: Decay) {
    observe_capped(transitions, (s.last_op, CallId::END), now, decay, MAX_TRANSITIONS);
}

/// Records one observation in a capped count; the weakest values make room.
fn observe_capped<K: Ord + Copy>(counts: &mut Counts<K>, key: K, now: Minute, decay: Decay, max: usize) {
    if counts.observe(key, now, decay) {
        counts.shed(max, key, now, decay);
    }
}

/// What learning one call changed in the identity's repertoire of operations.
#[derive(Debug, Default, PartialEq)]
pub struct Learned {
    /// An operation (target and action) the identity had never made.
    pub adopted_op: Option<CallId>,
    /// Operations no call in the repertoire makes any more.
    pub forgotten_ops: Vec<CallId>,
}

impl Ids for Client {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.sym(&mut self.network);
        v.sym(&mut self.agent);
    }
}

impl Ids for Observation {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.call(&mut self.call);
        self.call_key.visit_ids(v);
        v.call(&mut self.op);
        if let Some(client) = &mut self.client {
            client.visit_ids(v);
        }
        if let Some(place) = &mut self.place {
            v.sym(&mut place.wide_network);
            v.sym(&mut place.agent_version);
        }
        self.delegators.iter_mut().for_each(|d| v.sym(d));
        v.sym(&mut self.peer_group);
        self.peer_family.iter_mut().for_each(|f| v.sym(f));
        for s in self.environment.iter_mut().chain(self.region.iter_mut()) {
            v.sym(s);
        }
    }
}

impl Ids for IdentityBaseline {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        for group in self.peer_group.iter_mut().chain(self.peer_family.iter_mut()) {
            v.sym(group);
        }
        self.calls.keys_mut().for_each(|c| v.call(c));
        self.transitions.keys_mut().for_each(|t| t.visit_ids(v));
        for counts in self.sym_counts_mut() {
            counts.keys_mut().for_each(|s| v.sym(s));
        }
        self.sessions.iter_mut().for_each(|s| v.call(&mut s.last_op));
        self.clients.iter_mut().for_each(|(c, _)| c.visit_ids(v));
        self.ops.iter_mut().for_each(|(op, _)| v.call(op));
    }
}
