//! Incidents: the findings of one identity within one episode, combined into
//! one alert that is raised once, updated as evidence joins, and closed after
//! a quiet period.
//!
//! An episode is a stretch of one identity's event time in which findings
//! follow each other with no gap longer than `incident_close_after_s`. Every
//! finding of the identity in that stretch joins it, weak ones included: a
//! detector reports a *signal* when what it saw has a probability of at most
//! `signal_max_probability` under the identity's baseline, and an *alert*-
//! strength finding when it passes its own threshold (what `findings` mode
//! emits alone).
//!
//! How signals combine: each detector contributes its strongest signal of the
//! episode (its smallest probability `p`), so thirty denied calls are one piece
//! of evidence, not thirty. With `k` detectors contributing and `S = -Σ ln p`,
//! the combined probability is Fisher's: `P = e^-S Σ_{j<k} S^j / j!`, the
//! chance that `k` independent tail probabilities have a product this small.
//! It is calibrated to the extent that each `p` is (a tail probability under
//! the identity's own history) and the detectors look at different things
//! (what was called, from where, when, how much, how it ended), which is why
//! each detector counts once. Fisher penalises combining: two signals of 0.05
//! give 0.017, not 0.0025. An episode is raised as an incident when one of its
//! findings has alert strength, or when at least two detectors contribute and
//! `P <= incident_max_probability`. That threshold is per episode, and an
//! identity has an episode's chance every active hour or so, about ten a day:
//! 1e-5 keeps chance incidents near one per 10,000 identity-days where the
//! signals' probabilities are honest, leaving room for where they are not.
//!
//! After it is raised, the incident is re-sent with the same `alert_id` (OCSF
//! activity Update) when a detector joins it, when its combined probability
//! falls tenfold, or when evidence keeps coming `incident_update_interval_s`
//! after the last send: an identity still active days after its purpose ended
//! stays visible. When no evidence has joined for `incident_close_after_s` of
//! event time it is sent once more as closed.
//!
//! While an incident is open, calls that carry evidence are held, not learned:
//! an attacker who keeps going must not become the baseline. When the incident
//! closes, the held calls are learned in their order: the episode passed, and a
//! change nobody stopped (a new job, a new runner pool) should not alert again
//! and again. A call that carries no evidence is learned as always.

use crate::alert::{Alert, Evidence, IncidentInfo, IncidentSignal, IncidentStatus, Severity};
use crate::baseline::intern::{FastMap, IdVisitor, Ids, Sym};
use crate::baseline::{pairs, Observation};
use crate::detect::{self, Detector, Finding, Strength};
use crate::model::Millis;
use crate::time::format_rfc3339;
use serde::{Deserialize, Serialize};

/// Calls held per open incident; past it, further evidence calls are dropped
/// unlearned (an incident this long is being handled, or should be).
const MAX_HELD: usize = 256;
/// Event ids an incident carries; `events` counts them all.
pub const MAX_EVENT_IDS: usize = 256;

/// The settings incidents use, taken from `EngineConfig`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub incident_max_probability: f64,
    pub close_after_ms: Millis,
    pub update_interval_ms: Millis,
}

/// One signal as the episode keeps it: a finding already made into an alert,
/// so that the incident can show its own summary and evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Signal {
    detector: Detector,
    strength: Strength,
    /// The finding's probability under the baseline; `None` for declared
    /// detectors, which state a fact.
    probability: Option<f64>,
    /// The finding's subject (`Finding::subject`): what a benign verdict allows.
    #[serde(default)]
    subject: String,
    alert: Alert,
}

impl Signal {
    /// The stronger of two signals of one detector: alert strength first, then
    /// the smaller probability, then the higher score, then the earlier.
    fn stronger_than(&self, other: &Signal) -> bool {
        self.rank() > other.rank()
    }

    fn rank(&self) -> (bool, f64, f64) {
        rank(self.strength, self.probability, self.alert.score)
    }
}

/// What `Signal::stronger_than` compares, from a signal's parts.
fn rank(strength: Strength, probability: Option<f64>, score: f64) -> (bool, f64, f64) {
    (strength == Strength::Alert, -probability.unwrap_or(0.0), score)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Raised {
    /// 0 for the first send, then one more per update.
    update: u32,
    at: Millis,
    probability: f64,
    detectors: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The incident's alert id: fixed by the episode's first evidence.
    id: String,
    opened: Millis,
    last_evidence: Millis,
    /// Strongest signal per detector, in detector order.
    signals: Vec<Signal>,
    event_ids: Vec<String>,
    events: u64,
    /// The alert of the latest evidence's call (`Alert::of_finding`): the incident's
    /// `event`, `time` and `source`. What it holds of a finding is not read.
    latest: Alert,
    raised: Option<Raised>,
    /// Calls not learned while the incident is open, and how many were dropped.
    held: Vec<Observation>,
    dropped: u64,
    /// The call of the latest evidence: what an analyst's verdict on an
    /// incident raised later, between calls (`Episodes::add`), is about.
    #[serde(default)]
    call: Option<Observation>,
}

/// What an analyst is shown of an open episode (`explain`).
impl Episode {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn opened(&self) -> Millis {
        self.opened
    }

    pub fn last_evidence(&self) -> Millis {
        self.last_evidence
    }

    /// Detectors with evidence, in detector order.
    pub fn detectors(&self) -> impl Iterator<Item = Detector> + '_ {
        self.signals.iter().map(|s| s.detector)
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// True once the episode was sent as an incident alert.
    pub fn raised(&self) -> bool {
        self.raised.is_some()
    }

    pub fn held_calls(&self) -> usize {
        self.held.len()
    }

    /// The calls held back from learning, in the order they came.
    pub fn held_observations(&self) -> &[Observation] {
        &self.held
    }

    pub fn dropped_calls(&self) -> u64 {
        self.dropped
    }
}

impl Episode {
    fn open(id: String, call: Alert, now: Millis) -> Episode {
        Episode {
            id,
            opened: now,
            last_evidence: now,
            signals: Vec::new(),
            event_ids: Vec::new(),
            events: 0,
            latest: call,
            raised: None,
            held: Vec::new(),
            dropped: 0,
            call: None,
        }
    }

    /// Fisher's combined probability of the episode's signals (see the module
    /// comment), and the number of detectors it combines.
    fn combined(&self) -> (f64, usize) {
        let ps: Vec<f64> = self.signals.iter().filter_map(|s| s.probability).collect();
        (fisher(&ps), ps.len())
    }

    fn has_alert_strength(&self) -> bool {
        self.signals.iter().any(|s| s.strength == Strength::Alert)
    }

    /// Adds a finding of `call` (its alert: `Alert::of_finding`) as evidence. The finding
    /// becomes an alert only when it is its detector's strongest signal so far.
    fn add(&mut self, finding: Finding, call: &Alert, now: Millis) {
        let event_id = &call.event_ids[0];
        if !self.event_ids.contains(event_id) {
            self.events += 1;
            if self.event_ids.len() < MAX_EVENT_IDS {
                self.event_ids.push(event_id.clone());
            }
        }
        self.last_evidence = self.last_evidence.max(now);
        if !self.keeps(&finding) {
            return;
        }
        debug_assert!(finding.is_worded(), "a kept finding is shown, so the engine worded it");
        let (detector, strength, probability) = (finding.detector, finding.strength, finding.probability());
        let signal = |mut finding: Finding| Signal {
            detector,
            strength,
            probability,
            subject: std::mem::take(&mut finding.subject),
            alert: Alert::of_finding(call, finding),
        };
        match self.signals.iter().position(|s| s.detector == detector) {
            Some(i) => self.signals[i] = signal(finding),
            None => {
                let at = self.signals.partition_point(|s| s.detector < detector);
                self.signals.insert(at, signal(finding));
            }
        }
    }

    /// Whether `finding` would be its detector's signal: it is the first, or stronger.
    fn keeps(&self, finding: &Finding) -> bool {
        let rank = rank(finding.strength, finding.probability(), finding.shown_score());
        self.signals.iter().find(|s| s.detector == finding.detector).is_none_or(|s| rank > s.rank())
    }

    /// No evidence joined it for `close_after`: it closes before taking more.
    fn quiet(&self, now: Millis, s: &Settings) -> bool {
        now - self.last_evidence > s.close_after_ms
    }

    /// Whether this evidence is reason to send the incident (again), and how.
    fn due(&self, now: Millis, settings: &Settings) -> Option<IncidentStatus> {
        let (p, detectors) = self.combined();
        match self.raised {
            // One signal alone stays below its detector's own threshold by
            // definition: only evidence from two detectors or more combines.
            None => (self.has_alert_strength() || (detectors >= 2 && p <= settings.incident_max_probability))
                .then_some(IncidentStatus::Open),
            Some(r) => {
                (detectors > r.detectors || p * 10.0 <= r.probability || now - r.at >= settings.update_interval_ms)
                    .then_some(IncidentStatus::Updated)
            }
        }
    }

    /// The incident as an alert, in its current state.
    fn alert(&self, status: IncidentStatus) -> Alert {
        let (p, _) = self.combined();
        let lead = self
            .signals
            .iter()
            .reduce(|best, s| if s.stronger_than(best) { s } else { best })
            .expect("an episode holds a signal");
        // Declared findings are facts: the incident is as sure as the surest.
        let declared = self.signals.iter().filter(|s| s.probability.is_none()).map(|s| s.alert.score);
        let score = detect::round(declared.fold(detect::score_from_probability(p), f64::max), 4);
        let mut alert = self.latest.clone();
        alert.alert_id = self.id.clone();
        alert.detector = lead.detector;
        alert.score = score;
        alert.severity = Severity::from_score(score);
        alert.event_ids = self.event_ids.clone();
        alert.summary = self.summary(p);
        alert.evidence = Evidence { probability: Some(detect::round(p, 10)), ..lead.alert.evidence.clone() };
        alert.owasp_nhi = union(self.signals.iter().map(|s| &s.alert.owasp_nhi));
        alert.attack = union(self.signals.iter().map(|s| &s.alert.attack));
        alert.recommended_action = lead.alert.recommended_action.clone();
        alert.suppressed_repeats = 0;
        alert.incident = Some(IncidentInfo {
            status,
            update: self.raised.map_or(0, |r| r.update + u32::from(status != IncidentStatus::Open)),
            started: format_rfc3339(self.opened),
            last_evidence: format_rfc3339(self.last_evidence),
            events: self.events,
            combined_probability: detect::round(p, 10),
            signals: self.signals.iter().map(|s| s.as_incident_signal()).collect(),
        });
        // Its signals came sanitized; the incident, which repeats them, is bounded as a whole.
        crate::sanitize::sanitize(&mut alert);
        alert
    }

    /// One signal in one event reads as that signal; otherwise the episode is
    /// named first, with the learned signals' combined probability when there
    /// are any (declared findings are facts and carry none).
    fn summary(&self, p: f64) -> String {
        let signals: Vec<&str> = self.signals.iter().map(|s| s.alert.summary.as_str()).collect();
        if self.signals.len() == 1 && self.events == 1 {
            return signals[0].to_string();
        }
        let span = detect::duration::elapsed(self.last_evidence - self.opened);
        let detectors: Vec<&str> = self.signals.iter().map(|s| s.detector.name()).collect();
        let combined = match self.signals.iter().filter(|s| s.probability.is_some()).count() {
            0 => String::new(),
            1 => format!("; the learned one had an estimated probability of {p:.2e} under its baseline"),
            n => format!("; together the {n} learned ones had an estimated probability of {p:.2e} under its baseline"),
        };
        format!(
            "{} shows {} signal(s) ({}) over {span} in {} event(s){combined}. {}",
            self.latest.identity,
            self.signals.len(),
            detectors.join(", "),
            self.events,
            signals.join(" "),
        )
    }
}

impl Signal {
    fn as_incident_signal(&self) -> IncidentSignal {
        IncidentSignal {
            detector: self.detector,
            strength: self.strength,
            score: self.alert.score,
            probability: self.probability,
            time: self.alert.time.clone(),
            event_id: self.alert.event_ids[0].clone(),
            summary: self.alert.summary.clone(),
            observed: self.alert.evidence.observed.clone(),
            baseline: self.alert.evidence.baseline.clone(),
        }
    }
}

/// The items of several lists, each once, in first-seen order.
fn union<'a>(lists: impl Iterator<Item = &'a Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in lists.flatten() {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}

/// Fisher's method: the probability that `ps.len()` independent uniform tail
/// probabilities have a product at most `Π ps`. 1 for no signals.
pub fn fisher(ps: &[f64]) -> f64 {
    if ps.is_empty() {
        return 1.0;
    }
    let s: f64 = ps.iter().map(|p| -p.clamp(1e-300, 1.0).ln()).sum();
    let (mut term, mut sum) = (1.0, 1.0);
    for j in 1..ps.len() {
        term *= s / j as f64;
        sum += term;
    }
    ((-s).exp() * sum).min(1.0)
}

/// What the engine does with one call's findings in incidents mode.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Incident alerts to send now (a close of an earlier episode, then this one's).
    pub alerts: Vec<Alert>,
    /// The call carries evidence of an open incident: hold it, do not learn it.
    pub hold: bool,
    /// Calls to learn now: those held by an episode that has closed.
    pub release: Vec<Observation>,
}

/// Every identity's open episode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Episodes {
    #[serde(with = "pairs")]
    open: FastMap<Sym, Episode>,
}

impl Episodes {
    /// Adds one call's findings to the identity's episode, opening one when there is none
    /// or the last has gone quiet; `call` is the call's alert (`Alert::of_finding`), `id`
    /// makes the `alert_id` a new episode takes (`alert::incident_id` of the identity and
    /// event as logged, before any cut).
    pub fn accept(
        &mut self,
        identity: Sym,
        id: impl FnOnce() -> String,
        findings: Vec<Finding>,
        call: Alert,
        now: Millis,
        s: &Settings,
    ) -> Accepted {
        let mut accepted = Accepted::default();
        if findings.is_empty() {
            return accepted;
        }
        if let Some((closed, held)) = self.close_if_quiet(identity, now, s) {
            accepted.alerts.extend(closed);
            accepted.release = held;
        }
        let ep = self.open.entry(identity).or_insert_with(|| Episode::open(id(), call.clone(), now));
        for finding in findings {
            ep.add(finding, &call, now);
        }
        ep.latest = call;
        if let Some(status) = ep.due(now, s) {
            accepted.alerts.push(ep.alert(status));
            let (probability, detectors) = ep.combined();
            let update = ep.raised.map_or(0, |r| r.update + 1);
            ep.raised = Some(Raised { update, at: now, probability, detectors });
        }
        accepted.hold = ep.raised.is_some();
        accepted
    }

    /// Whether `accept`, given `finding` of the identity's call now, would keep it as its
    /// detector's signal (and so show it): when it opens an episode, or is the first or
    /// the strongest of its detector in the open one. The engine words only such findings.
    pub fn would_keep(&self, identity: Sym, finding: &Finding, now: Millis, s: &Settings) -> bool {
        match self.open.get(&identity) {
            Some(ep) if !ep.quiet(now, s) => ep.keeps(finding),
            _ => true,
        }
    }

    /// Remembers the call whose findings `accept` just took.
    pub fn note_call(&mut self, identity: Sym, call: &Observation) {
        if let Some(ep) = self.open.get_mut(&identity) {
            ep.call = Some(call.clone());
        }
    }

    /// Identities with an open episode, in order.
    pub fn identities(&self) -> Vec<Sym> {
        let mut ids: Vec<Sym> = self.open.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The subject and alert of the signal `detector` gave the identity's open episode.
    pub fn signal(&self, identity: Sym, detector: Detector) -> Option<(&str, &Alert)> {
        let ep = self.open.get(&identity)?;
        ep.signals.iter().find(|s| s.detector == detector).map(|s| (s.subject.as_str(), &s.alert))
    }

    /// Adds evidence found between calls (a session's end) to the identity's
    /// open episode, as `accept` does; also the call its incident is about.
    pub fn add(
        &mut self,
        identity: Sym,
        finding: Finding,
        call: Alert,
        now: Millis,
        s: &Settings,
    ) -> (Accepted, Option<Observation>) {
        let Some(id) = self.open.get(&identity).map(|ep| ep.id.clone()) else { return (Accepted::default(), None) };
        let accepted = self.accept(identity, || id, vec![finding], call, now, s);
        (accepted, self.open.get(&identity).and_then(|ep| ep.call.clone()))
    }

    /// Closes the identity's episode if no evidence joined it for
    /// `close_after`: the alert that says so (for a raised one) and its held
    /// calls.
    pub fn close_if_quiet(
        &mut self,
        identity: Sym,
        now: Millis,
        s: &Settings,
    ) -> Option<(Option<Alert>, Vec<Observation>)> {
        if self.open.get(&identity).is_none_or(|ep| !ep.quiet(now, s)) {
            return None;
        }
        let ep = self.open.remove(&identity)?;
        Some((ep.raised.map(|_| ep.alert(IncidentStatus::Closed)), ep.held))
    }

    /// Keeps a call of an open incident from being learned; false when the
    /// incident holds all it may and the call is dropped.
    pub fn hold(&mut self, identity: Sym, obs: Observation) -> bool {
        let ep = self.open.get_mut(&identity).expect("held only while an incident is open");
        let kept = ep.held.len() < MAX_HELD;
        match kept {
            true => ep.held.push(obs),
            false => ep.dropped += 1,
        }
        kept
    }

    /// Closes the episodes quiet for `close_after`: the alerts that say so
    /// (for raised ones) and every identity's held calls, in identity order.
    pub fn close_quiet(&mut self, now: Millis, s: &Settings) -> Vec<(Sym, Option<Alert>, Vec<Observation>)> {
        let mut quiet: Vec<Sym> = self.open.iter().filter(|(_, ep)| ep.quiet(now, s)).map(|(&id, _)| id).collect();
        quiet.sort_unstable();
        quiet
            .into_iter()
            .map(|id| {
                let ep = self.open.remove(&id).expect("listed above");
                (id, ep.raised.map(|_| ep.alert(IncidentStatus::Closed)), ep.held)
            })
            .collect()
    }

    /// The identity's open episode.
    pub fn get(&self, identity: Sym) -> Option<&Episode> {
        self.open.get(&identity)
    }

    /// Detector and subject of each signal of alert strength in the
    /// identity's open episode: what a benign verdict on the incident allows.
    /// Weaker signals never alert alone; learning the held calls answers them.
    pub fn named(&self, identity: Sym) -> Vec<(Detector, String)> {
        let signals = self.open.get(&identity).map_or(&[][..], |ep| &ep.signals[..]);
        signals.iter().filter(|s| s.strength == Strength::Alert).map(|s| (s.detector, s.subject.clone())).collect()
    }

    /// Ends the identity's open episode if it is incident `id`, judged benign
    /// by an analyst: its held calls, to be learned. No closing send follows:
    /// the analyst closed it.
    pub fn settle(&mut self, identity: Sym, id: &str) -> Vec<Observation> {
        match self.open.get(&identity) {
            Some(ep) if ep.id == id => self.open.remove(&identity).map(|ep| ep.held).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Drops what the identity's open episode holds, unlearned: the identity
    /// was judged compromised, and its calls are the attacker's.
    pub fn drop_held(&mut self, identity: Sym) {
        if let Some(ep) = self.open.get_mut(&identity) {
            ep.dropped += ep.held.len() as u64;
            ep.held.clear();
        }
    }

    /// Drops an evicted identity's episode.
    pub fn forget(&mut self, identity: Sym) {
        self.open.remove(&identity);
    }

    /// Takes an identity's open episode out (it moves to another engine).
    pub fn take(&mut self, identity: Sym) -> Option<Episode> {
        self.open.remove(&identity)
    }

    /// Puts an identity's open episode in (it moved from another engine).
    pub fn put(&mut self, identity: Sym, episode: Episode) {
        self.open.insert(identity, episode);
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

impl Ids for Episodes {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.open.visit_ids(v);
    }
}

impl Ids for Episode {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.held.visit_ids(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_is_the_tail_of_a_product_of_uniforms() {
        assert_eq!(fisher(&[]), 1.0);
        assert!((fisher(&[0.01]) - 0.01).abs() < 1e-12);
        // Two of 0.05: e^-S (1 + S) with S = -ln 0.0025.
        let two = fisher(&[0.05, 0.05]);
        assert!((two - 0.0025 * (1.0 - 0.0025f64.ln())).abs() < 1e-12, "{two}");
        assert!(two > 0.0025 && two < 0.05);
        // More weak signals of the same size make the whole less likely.
        assert!(fisher(&[0.05, 0.05, 0.05]) < two);
        // A signal of 1 adds nothing but the penalty of one more term.
        assert!(fisher(&[0.01, 1.0]) > 0.01);
    }
}

#[cfg(test)]
mod episode_tests {
    use super::*;
    use crate::alert::AlertEvent;
    use crate::detect::{novel_call, off_hours, post_purpose, unusual_outcome, Evidence};

    const HOUR: Millis = 3_600_000;

    fn settings() -> Settings {
        Settings { incident_max_probability: 1e-3, close_after_ms: 6 * HOUR, update_interval_ms: 6 * HOUR }
    }

    /// A finding of `detector` with probability `p`.
    fn finding(detector: Detector, strength: Strength, p: Option<f64>) -> Finding {
        Finding {
            detector,
            strength,
            score: 0.5,
            subject: String::new(),
            summary: format!("{detector} on the call."),
            evidence: Evidence { probability: p, ..Evidence::default() },
        }
    }

    fn weak(detector: Detector, p: f64) -> Finding {
        finding(detector, Strength::Signal, Some(p))
    }

    /// The alert of the call with event id `id` (`Alert::of_finding`).
    fn call(id: &str) -> Alert {
        Alert {
            alert_id: String::new(),
            detector: novel_call::SPEC.detector(),
            severity: Severity::Info,
            score: 0.0,
            time: "2026-03-02T00:00:00Z".into(),
            identity: "ci".into(),
            identity_type: None,
            on_behalf_of: None,
            chain: vec![],
            event_ids: vec![id.into()],
            event: AlertEvent::default(),
            source: "test:1".into(),
            summary: String::new(),
            evidence: Evidence::default(),
            owasp_nhi: vec![],
            attack: vec![],
            recommended_action: String::new(),
            suppressed_repeats: 0,
            truncated: vec![],
            incident: None,
            status: None,
            suppression_rule: None,
            compromised: None,
        }
    }

    const ID: Sym = Sym(1);

    /// A `post_purpose` finding (alert strength) of the call `event` at `at`.
    fn declared(episodes: &mut Episodes, incident: &str, event: &str, at: Millis) -> Accepted {
        let post = finding(post_purpose::SPEC.detector(), Strength::Alert, None);
        episodes.accept(ID, || incident.into(), vec![post], call(event), at, &settings())
    }

    #[test]
    fn one_weak_signal_stays_quiet_two_from_different_detectors_combine() {
        let (novel, hours) = (novel_call::SPEC.detector(), off_hours::SPEC.detector());
        let mut episodes = Episodes::default();
        let a = episodes.accept(ID, || "inc".into(), vec![weak(novel, 0.004)], call("e1"), 0, &settings());
        assert!(a.alerts.is_empty() && !a.hold);
        // The same detector again is the same evidence, not more.
        let a = episodes.accept(ID, || "inc".into(), vec![weak(novel, 0.004)], call("e2"), HOUR, &settings());
        assert!(a.alerts.is_empty());
        // Fisher of 0.004 and 0.01 is 5.6e-4, under 1e-3: one incident with both.
        let a = episodes.accept(ID, || "inc".into(), vec![weak(hours, 0.01)], call("e3"), 2 * HOUR, &settings());
        assert_eq!(a.alerts.len(), 1);
        let incident = a.alerts[0].incident.as_ref().unwrap();
        assert_eq!((incident.status, incident.update, incident.events), (IncidentStatus::Open, 0, 3));
        assert_eq!(incident.signals.len(), 2);
        assert!((incident.combined_probability - fisher(&[0.004, 0.01])).abs() < 1e-9);
        assert_eq!(a.alerts[0].event_ids, ["e1", "e2", "e3"]);
        // A finding no stronger than its detector's signal leaves the signal (made from e1) as it was.
        let novel_signal = incident.signals.iter().find(|s| s.detector == novel).unwrap();
        assert_eq!(novel_signal.event_id, "e1");
        // A stronger one takes its place.
        let a = episodes.accept(ID, || "inc".into(), vec![weak(novel, 0.0001)], call("e4"), 3 * HOUR, &settings());
        let incident = a.alerts[0].incident.as_ref().unwrap();
        assert_eq!(incident.status, IncidentStatus::Updated);
        let novel_signal = incident.signals.iter().find(|s| s.detector == novel).unwrap();
        assert_eq!((novel_signal.event_id.as_str(), novel_signal.probability), ("e4", Some(0.0001)));
        assert!(a.hold, "calls of an open incident are held");
    }

    #[test]
    fn an_incident_is_updated_under_its_id_and_closed_after_a_quiet_period() {
        let mut episodes = Episodes::default();
        let first = declared(&mut episodes, "inc", "e0", 0);
        let id = first.alerts[0].alert_id.clone();
        // Every 10 minutes for two days: an update at least every 6 hours, never silent.
        let mut sends = vec![];
        for i in 1..288 {
            let at = i * HOUR / 6;
            let a = declared(&mut episodes, "inc", &format!("e{i}"), at);
            sends.extend(a.alerts.into_iter().map(|alert| (at, alert)));
        }
        assert_eq!(sends.len(), 7, "one update per 6 hours of ongoing evidence");
        assert!(sends.iter().all(|(_, a)| a.alert_id == id));
        let updates: Vec<u32> = sends.iter().map(|(_, a)| a.incident.as_ref().unwrap().update).collect();
        assert_eq!(updates, (1..=7).collect::<Vec<_>>());
        // A new detector joining is news at once.
        let a = episodes.accept(
            ID,
            || "inc".into(),
            vec![weak(unusual_outcome::SPEC.detector(), 0.01)],
            call("x"),
            48 * HOUR,
            &settings(),
        );
        assert_eq!(a.alerts[0].incident.as_ref().unwrap().status, IncidentStatus::Updated);
        // Quiet for longer than the close period: closed once, and gone.
        assert!(episodes.close_quiet(53 * HOUR, &settings()).is_empty());
        let closed = episodes.close_quiet(55 * HOUR, &settings());
        assert_eq!(closed.len(), 1);
        let alert = closed[0].1.as_ref().unwrap();
        assert_eq!(
            (alert.alert_id.as_str(), alert.incident.as_ref().unwrap().status),
            (id.as_str(), IncidentStatus::Closed)
        );
        assert!(episodes.is_empty());
    }

    /// The engine words a finding only when `would_keep` says the episode keeps it: it must
    /// say so exactly when `accept` then makes the finding its detector's signal.
    #[test]
    fn would_keep_says_what_accept_then_keeps() {
        let (novel, hours) = (novel_call::SPEC.detector(), off_hours::SPEC.detector());
        let signal_event = |episodes: &Episodes, detector| {
            let ep = &episodes.open[&ID];
            ep.signals.iter().find(|s| s.detector == detector).map(|s| s.alert.event_ids[0].clone())
        };
        let mut episodes = Episodes::default();
        let steps = [
            (weak(novel, 0.004), 0, true),                                  // no episode: opens one
            (weak(novel, 0.004), HOUR, false),                              // as strong as the signal held
            (weak(novel, 0.01), 2 * HOUR, false),                           // weaker
            (weak(hours, 0.01), 2 * HOUR, true),                            // the detector's first
            (weak(novel, 0.001), 3 * HOUR, true),                           // stronger
            (finding(novel, Strength::Alert, Some(0.001)), 3 * HOUR, true), // alert strength ranks first
            (weak(novel, 0.5), 10 * HOUR, true),                            // quiet for 7 h: a new episode
        ];
        for (i, (finding, at, kept)) in steps.into_iter().enumerate() {
            let event = format!("e{i}");
            assert_eq!(episodes.would_keep(ID, &finding, at, &settings()), kept, "step {i}");
            let detector = finding.detector;
            episodes.accept(ID, || format!("inc{i}"), vec![finding], call(&event), at, &settings());
            assert_eq!(signal_event(&episodes, detector) == Some(event), kept, "step {i}");
        }
    }

    #[test]
    fn evidence_after_the_quiet_period_opens_a_new_incident_and_releases_the_held_calls() {
        let mut episodes = Episodes::default();
        let first = declared(&mut episodes, "inc-e0", "e0", 0);
        assert!(first.hold);
        let later = declared(&mut episodes, "inc-e1", "e1", 7 * HOUR);
        assert_eq!(later.alerts.len(), 2, "the old one closes, a new one opens");
        assert_eq!(later.alerts[0].incident.as_ref().unwrap().status, IncidentStatus::Closed);
        assert_eq!(later.alerts[1].incident.as_ref().unwrap().status, IncidentStatus::Open);
        assert_ne!(later.alerts[0].alert_id, later.alerts[1].alert_id);
    }
}
