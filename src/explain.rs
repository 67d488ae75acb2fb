//! What the engine holds about one identity, for an analyst: its repertoire,
//! networks, clients, rhythm, delegators, grants, open incident, learning
//! status and peers. `explain` reads the engine and invents nothing: every
//! number is one the baseline keeps (`baseline::IdentityBaseline`).
//!
//! Counts are the baseline's: a value counts at most once per clock hour
//! (`Counts::observe`), so `active_hours` of a call is the number of distinct
//! clock hours it was made in, not its number of calls. Lists are cut to
//! `MAX_LISTED` values, most used first; each says how many it holds in all.

use crate::baseline::counts::{Counts, Decay, Entry, Minute};
use crate::baseline::fleet::Fleet;
use crate::baseline::intern::Names;
use crate::baseline::{Baselines, IdentityBaseline};
use crate::engine::Engine;
use crate::grants::{GrantState, Registry};
use crate::incident::Episodes;
use crate::model::Millis;
use crate::text::escape_control;
use crate::time::format_rfc3339;
use serde::{Deserialize, Serialize};

/// Most values listed of each kind (calls, networks ...); the rest are counted.
pub const MAX_LISTED: usize = 50;
/// Most grants listed.
pub const MAX_GRANTS: usize = 20;

/// One identity as the baseline holds it: `overreach explain`, `GET /identities/{identity}`.
/// Serialized as schemas/identity-explain.v1.schema.json; fields are only added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityView {
    pub identity: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Calls learned into the baseline (not those held by an open incident).
    pub events: u64,
    pub learning: Learning,
    /// How settled the repertoire is (`baseline::Runs`).
    pub repertoire: Repertoire,
    pub calls: Ranked,
    pub networks: Networks,
    pub clients: Clients,
    pub rhythm: Rhythm,
    pub environments: Ranked,
    pub regions: Ranked,
    pub outcomes: Ranked,
    /// Delegators and chain hops seen on its calls (the baseline keeps them together).
    pub delegators: Ranked,
    pub grants: Grants,
    pub lifecycle: Lifecycle,
    /// The open episode of evidence, if any (at most one per identity).
    pub open_incident: Option<OpenIncident>,
    pub peers: Peers,
}

/// Values of one kind, most used first, cut to `limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// Distinct values the baseline holds.
    pub total: usize,
    /// Most values listed.
    pub limit: usize,
    pub top: Vec<Counted>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub value: String,
    /// Distinct clock hours the value was seen in.
    pub active_hours: u32,
    /// Its decayed weight at the identity's last call (what detectors weigh).
    pub weight: f64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learning {
    /// True once detectors that need history judge it.
    pub learned: bool,
    /// Days between its first and last call, and calls learned, so far.
    pub days: f64,
    pub events: u64,
    /// What learning needs (`learning_days`, `learning_events`): both.
    pub days_needed: f64,
    pub events_needed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repertoire {
    /// Runs (sessions, or active clock hours of calls without one) after its first day.
    pub runs: u32,
    /// Of them, those that took up an operation it had never made.
    pub novel_runs: u32,
    /// Chance the next run takes up a new operation.
    pub p_new_operation: f64,
    /// Longest silence between active periods, in minutes.
    pub longest_gap_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Networks {
    /// IPv4 /24 and IPv6 /48 (or the source as logged when it is not an address).
    pub narrow: Ranked,
    /// IPv4 /16 and IPv6 /32.
    pub wide: Ranked,
    /// private, public, not_an_address.
    pub scopes: Ranked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clients {
    pub families: Ranked,
    pub versions: Ranked,
    /// Most distinct clients seen active together.
    pub max_concurrent: u8,
}

/// When it is active: active clock hours per UTC hour of the day and per day
/// of the week (Monday first), halved every half-life as the baseline keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rhythm {
    pub hour_of_day: Vec<u16>,
    pub day_of_week: Vec<u16>,
    /// The hours it is active in, as "09:00-17:00" ranges.
    pub active_ranges: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grants {
    pub total: usize,
    pub limit: usize,
    pub top: Vec<GrantView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantView {
    pub grant_id: String,
    pub on_behalf_of: Option<String>,
    pub targets: Vec<String>,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub environments: Vec<String>,
    pub not_before: Option<String>,
    pub expires_at: Option<String>,
    /// Declared at (event time); absent for a static policy grant.
    pub declared_at: Option<String>,
    pub ended_at: Option<String>,
    /// revoked, expired, purpose_ended.
    pub ended_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// When the identity was offboarded (deleted, disabled), if it was.
    pub offboarded_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    /// The incident's alert id.
    pub id: String,
    pub since: String,
    pub last_evidence: String,
    /// Detectors with evidence in it.
    pub detectors: Vec<String>,
    pub events: u64,
    /// True once it was sent as an alert.
    pub raised: bool,
    /// Calls kept out of the baseline while it is open, and those dropped past the cap.
    pub held_calls: usize,
    pub dropped_calls: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peers {
    /// Its peer group (purpose label or name stem) and the group's family.
    pub group: String,
    pub group_size: u32,
    pub family: String,
    pub family_size: u32,
}

/// What the engine holds for `identity`; `None` when it holds no baseline for it.
pub fn explain(engine: &Engine, identity: &str) -> Option<IdentityView> {
    let held = engine.held();
    let baseline = held.baseline(identity)?;
    let names = held.names;
    let config = engine.config();
    let now = baseline.last_seen;
    let decay = config.decay();
    let ranked_syms = |counts: &Counts<_>| ranked(counts, now, decay, |s| names.name(s).to_string());
    let grants = held.registry.applicable(identity, None, None, Millis::MAX).all;
    Some(IdentityView {
        identity: identity.to_string(),
        first_seen: minute_time(baseline.first_seen),
        last_seen: minute_time(baseline.last_seen),
        events: baseline.events,
        learning: Learning {
            learned: baseline.is_learned(config.learning_days, config.learning_events),
            days: f64::from(baseline.last_seen - baseline.first_seen) / 1440.0,
            events: baseline.events,
            days_needed: config.learning_days,
            events_needed: config.learning_events,
        },
        repertoire: Repertoire {
            runs: baseline.runs.runs,
            novel_runs: baseline.runs.novel_runs,
            p_new_operation: baseline.runs.p_new_operation(),
            longest_gap_minutes: baseline.longest_gap,
        },
        calls: ranked(&baseline.calls, now, decay, |c| names.call_name(c)),
        networks: Networks {
            narrow: ranked_syms(&baseline.networks),
            wide: ranked_syms(&baseline.wide_networks),
            scopes: ranked(&baseline.scopes, now, decay, |s| snake_case(&s)),
        },
        clients: Clients {
            families: ranked_syms(&baseline.agents),
            versions: ranked_syms(&baseline.agent_versions),
            max_concurrent: baseline.max_concurrent_clients,
        },
        rhythm: rhythm(baseline),
        environments: ranked_syms(&baseline.environments),
        regions: ranked_syms(&baseline.regions),
        outcomes: ranked(&baseline.outcomes, now, decay, |o| snake_case(&o)),
        delegators: ranked_syms(&baseline.delegators),
        grants: Grants {
            total: grants.len(),
            limit: MAX_GRANTS,
            top: grants.iter().take(MAX_GRANTS).copied().map(grant_view).collect(),
        },
        lifecycle: Lifecycle { offboarded_at: held.registry.offboarded_at(identity, Millis::MAX).map(format_rfc3339) },
        open_incident: held.incident(identity),
        peers: held.peers(baseline),
    })
}

/// The most used values first (active hours, then the most recent, then by
/// name, so the order is the same every time), cut to `MAX_LISTED`.
fn ranked<K: Ord + Copy>(counts: &Counts<K>, now: Minute, decay: Decay, name: impl Fn(K) -> String) -> Ranked {
    let mut entries: Vec<(String, &Entry)> = counts.iter().map(|(k, e)| (name(k), e)).collect();
    entries.sort_by(|(a, x), (b, y)| y.hits.cmp(&x.hits).then(y.last.cmp(&x.last)).then(a.cmp(b)));
    Ranked {
        total: entries.len(),
        limit: MAX_LISTED,
        top: entries
            .into_iter()
            .take(MAX_LISTED)
            .map(|(value, e)| Counted {
                value,
                active_hours: e.hits,
                weight: e.weight_at(now, decay),
                first_seen: minute_time(e.first),
                last_seen: minute_time(e.last),
            })
            .collect(),
    }
}

fn rhythm(baseline: &IdentityBaseline) -> Rhythm {
    Rhythm {
        hour_of_day: baseline.hours.hours().to_vec(),
        day_of_week: baseline.hours.days().to_vec(),
        active_ranges: baseline.hours.active_ranges(),
    }
}

fn grant_view(g: &GrantState) -> GrantView {
    let scope = &g.grant.scope;
    GrantView {
        grant_id: g.grant.grant_id.clone(),
        on_behalf_of: g.grant.on_behalf_of.clone(),
        targets: scope.targets.clone(),
        actions: scope.actions.clone(),
        resources: scope.resources.clone(),
        environments: scope.environments.clone(),
        not_before: g.grant.not_before.map(format_rfc3339),
        expires_at: g.grant.expires_at.map(format_rfc3339),
        declared_at: g.declared_at.map(format_rfc3339),
        ended_at: g.ended.map(|(at, _)| format_rfc3339(at)),
        ended_reason: g.ended.map(|(_, why)| why.to_string()),
    }
}

fn minute_time(m: Minute) -> String {
    format_rfc3339(i64::from(m) * 60_000)
}

/// A closed set's serde name (`Outcome`, `AddressScope` are snake_case enums).
fn snake_case<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The parts of the engine's state `explain` reads.
pub struct Held<'a> {
    pub names: &'a Names,
    pub identities: &'a Baselines,
    pub fleet: &'a Fleet,
    pub registry: &'a Registry,
    pub episodes: &'a Episodes,
}

impl Held<'_> {
    fn baseline(&self, identity: &str) -> Option<&IdentityBaseline> {
        self.identities.get(&self.names.strings.get(identity)?).map(|b| &**b)
    }

    /// Its peer group and family with their sizes; empty names for a baseline
    /// that has not joined the fleet (none does once loaded: `check`).
    fn peers(&self, baseline: &IdentityBaseline) -> Peers {
        let level = |s| (self.names.name(s).to_string(), self.fleet.group_size(s));
        let ((group, group_size), (family, family_size)) = match baseline.peer_groups() {
            Some(g) => (level(g.group), level(g.family)),
            None => Default::default(),
        };
        Peers { group, group_size, family, family_size }
    }

    fn incident(&self, identity: &str) -> Option<OpenIncident> {
        let ep = self.episodes.get(self.names.strings.get(identity)?)?;
        Some(OpenIncident {
            id: ep.id().to_string(),
            since: format_rfc3339(ep.opened()),
            last_evidence: format_rfc3339(ep.last_evidence()),
            detectors: ep.detectors().map(|d| d.to_string()).collect(),
            events: ep.events(),
            raised: ep.raised(),
            held_calls: ep.held_calls(),
            dropped_calls: ep.dropped_calls(),
        })
    }
}

/// The view for a terminal. Every value that came from a log (names, networks,
/// clients, grants) is escaped (`text::escape_control`): an identity may be
/// named to move the cursor or forge a line.
pub fn render_text(view: &IdentityView) -> String {
    use std::fmt::Write as _;
    let e = |s: &str| escape_control(s).into_owned();
    let mut out = String::new();
    let l = &view.learning;
    let r = &view.repertoire;
    let _ = writeln!(out, "identity     {}", e(&view.identity));
    let _ = writeln!(
        out,
        "peers        group {} ({} identities), family {} ({})",
        e(&view.peers.group),
        view.peers.group_size,
        e(&view.peers.family),
        view.peers.family_size
    );
    let _ = writeln!(out, "seen         {} to {}, {} calls learned", view.first_seen, view.last_seen, view.events);
    let _ = writeln!(
        out,
        "learning     {}: {:.1} of {} days, {} of {} events",
        if l.learned { "learned" } else { "still learning" },
        l.days,
        l.days_needed,
        l.events,
        l.events_needed
    );
    let _ = writeln!(
        out,
        "repertoire   {} runs, {} took up a new operation (p next {:.3}); longest gap {} min",
        r.runs, r.novel_runs, r.p_new_operation, r.longest_gap_minutes
    );
    match &view.open_incident {
        Some(i) => {
            let _ = writeln!(
                out,
                "incident     {} open since {} ({}), last evidence {}, detectors {}, {} calls held{}",
                e(&i.id),
                i.since,
                if i.raised { "raised" } else { "not raised yet" },
                i.last_evidence,
                i.detectors.join(", "),
                i.held_calls,
                if i.dropped_calls > 0 { format!(", {} dropped", i.dropped_calls) } else { String::new() }
            );
        }
        None => out.push_str("incident     none open\n"),
    }
    if let Some(at) = &view.lifecycle.offboarded_at {
        let _ = writeln!(out, "offboarded   {at}");
    }
    let _ = writeln!(out, "clients      at most {} active together", view.clients.max_concurrent);
    let rhythm = &view.rhythm;
    let _ = writeln!(out, "\nactive hours by hour of day (UTC): {}", rhythm.active_ranges.join(" "));
    let row = |values: &[u16]| values.iter().map(|v| format!("{v:>4}")).collect::<String>();
    let _ = writeln!(out, "  {}", (0..24).map(|h| format!("{h:>4}")).collect::<String>());
    let _ = writeln!(out, "  {}", row(&rhythm.hour_of_day));
    let _ = writeln!(
        out,
        "by day of week:\n  {}",
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map(|d| format!("{d:>5}")).concat()
    );
    let _ = writeln!(out, "  {}", rhythm.day_of_week.iter().map(|v| format!("{v:>5}")).collect::<String>());
    let lists: [(&str, &Ranked); 10] = [
        ("calls", &view.calls),
        ("networks (/24, /48)", &view.networks.narrow),
        ("networks (/16, /32)", &view.networks.wide),
        ("address scopes", &view.networks.scopes),
        ("client families", &view.clients.families),
        ("client versions", &view.clients.versions),
        ("environments", &view.environments),
        ("regions", &view.regions),
        ("outcomes", &view.outcomes),
        ("delegators and chain", &view.delegators),
    ];
    for (title, ranked) in lists {
        let _ = writeln!(out, "\n{title}: {} held{}", ranked.total, shown(ranked.top.len(), ranked.total));
        for c in &ranked.top {
            let _ = writeln!(out, "  {:>6} h  last {}  {}", c.active_hours, c.last_seen, e(&c.value));
        }
    }
    let _ = writeln!(out, "\ngrants: {}{}", view.grants.total, shown(view.grants.top.len(), view.grants.total));
    for g in &view.grants.top {
        let ended = match (&g.ended_at, &g.ended_reason) {
            (Some(at), Some(why)) => format!(", {why} {at}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} for {}: targets [{}] actions [{}]{ended}",
            e(&g.grant_id),
            e(g.on_behalf_of.as_deref().unwrap_or("-")),
            e(&g.targets.join(", ")),
            e(&g.actions.join(", "))
        );
    }
    out
}

/// ", top N shown" when a list was cut.
fn shown(listed: usize, total: usize) -> String {
    match listed < total {
        true => format!(", top {listed} shown"),
        false => String::new(),
    }
}

/// Questions queued for the service loop at most; past this an HTTP request is
/// told the service is busy rather than queued without bound.
const MAX_QUERIES_QUEUED: usize = 16;

/// One question to the owner of the engine, and where its answer goes.
pub struct Query {
    pub identity: String,
    pub reply: tokio::sync::oneshot::Sender<Option<IdentityView>>,
}

/// Why a question got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    #[error("too many identity queries waiting")]
    Busy,
    #[error("the engine is not running")]
    Stopped,
}

/// The asking side, for HTTP handlers (cheap to clone): the service loop owns
/// the engine and answers between batches (`Answers`), so a request never
/// takes a lock the hot path would wait on.
#[derive(Clone)]
pub struct Identities {
    queries: tokio::sync::mpsc::Sender<Query>,
}

/// The answering side, held by whoever owns the engine.
pub struct Answers {
    queries: tokio::sync::mpsc::Receiver<Query>,
}

pub fn channel() -> (Identities, Answers) {
    let (queries, rx) = tokio::sync::mpsc::channel(MAX_QUERIES_QUEUED);
    (Identities { queries }, Answers { queries: rx })
}

impl Identities {
    /// The engine's view of `identity`: `Ok(None)` when it holds no baseline for it.
    pub async fn view(&self, identity: &str) -> Result<Option<IdentityView>, Unanswered> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queries.try_send(Query { identity: identity.to_string(), reply }).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => Unanswered::Busy,
            tokio::sync::mpsc::error::TrySendError::Closed(_) => Unanswered::Stopped,
        })?;
        answer.await.map_err(|_| Unanswered::Stopped)
    }
}

impl Answers {
    /// The next question; pending forever once every asker is gone.
    pub async fn next(&mut self) -> Query {
        match self.queries.recv().await {
            Some(query) => query,
            None => std::future::pending().await,
        }
    }
}

impl Query {
    /// Answers from the engine; an asker that gave up is no error.
    pub fn answer(self, engine: &Engine) {
        let _ = self.reply.send(explain(engine, &self.identity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::model::{AccessEvent, Lifecycle, Origin, Record};

    fn access(identity: &str, time: Millis, action: &str) -> Record {
        let event = AccessEvent {
            event_id: format!("{identity}-{time}").into(),
            time,
            identity: identity.into(),
            target: "crm.internal".into(),
            action: action.into(),
            ..AccessEvent::default()
        };
        Record::Access(Box::new(event))
    }

    #[test]
    fn an_offboarded_identity_shows_the_fact_and_its_open_incident() {
        let mut engine = Engine::new(EngineConfig::default());
        let origin = Origin::File { path: "t".into(), line: 1 };
        let t0 = 1_772_409_600_000;
        engine.process(&access("agent-1", t0, "ReadCustomer"), &origin);
        let gone = Lifecycle::IdentityOffboarded { identity: "agent-1".into() };
        engine.process(&Record::Lifecycle { time: t0 + 60_000, event_id: "off".into(), fact: Box::new(gone) }, &origin);
        let before = explain(&engine, "agent-1").unwrap();
        assert_eq!(before.open_incident, None);
        let alerts = engine.process(&access("agent-1", t0 + 120_000, "ExportCustomers"), &origin);
        assert!(!alerts.is_empty(), "an access after offboarding raises an incident");

        let view = explain(&engine, "agent-1").unwrap();
        assert_eq!(view.lifecycle.offboarded_at.as_deref(), Some("2026-03-02T00:01:00.000Z"));
        let incident = view.open_incident.expect("the incident is open");
        assert_eq!(incident.id, alerts[0].alert_id);
        assert_eq!(incident.detectors, ["post_purpose"]);
        assert!(incident.raised);
        assert_eq!(incident.since, "2026-03-02T00:02:00.000Z");
        // Still learning: an identity without a learned baseline learns everything.
        assert!(!view.learning.learned);
        assert_eq!((incident.held_calls, view.events, view.calls.total), (0, 2, 2));
        assert_eq!(view.calls.top[0].value, "crm.internal ExportCustomers", "most recent first among equals");
        assert_eq!(explain(&engine, "agent-2"), None);
    }
}
