//! What the engine keeps so that an analyst's verdict (`model::Verdict`) can
//! act on exactly what an alert named, and what the verdicts leave behind.
//!
//! - `sent`: every alert the engine emitted (findings and incidents), by its
//!   `alert_id`, with its identity, the findings it named (detector and
//!   subject; an incident's signals) and the observation of its call. At most
//!   `MAX_SENT`; past it the entry of the oldest alert (event time of its
//!   last send) goes, and a verdict naming it is refused, never guessed at.
//! - `allowed`: findings judged benign, per identity, detector and subject:
//!   the engine drops them before they alert or join an incident. At most
//!   `MAX_ALLOWED`, the oldest verdict's leaving first (its call was learned
//!   when it was given, so what it allowed is normal by then or forgotten).
//! - `compromised`: identities judged malicious, with the verdict's time, who
//!   gave it and the alert it named. Marks are never dropped to make room: a
//!   malicious verdict past `MAX_MARKS` is refused with its reason.
//!
//! All of it is part of the engine's saved state and depends on the input
//! alone, so a replay with the same verdicts gives the same alerts.

use crate::baseline::intern::{FastMap, IdVisitor, Ids, Names, Sym};
use crate::baseline::{pairs, Observation};
use crate::detect::Detector;
use crate::model::{Judgement, Millis, Verdict, VerdictScope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Alerts remembered for verdicts: weeks of a SOC's alert stream.
pub const MAX_SENT: usize = 8192;
/// Findings allowed by benign verdicts.
pub const MAX_ALLOWED: usize = 8192;
/// Identities marked compromised at once.
pub const MAX_MARKS: usize = 4096;
/// Bytes of subjects one remembered alert keeps: what an incident's signals
/// named past it is not allowed by a benign verdict (and is left to learning).
const MAX_NAMED_BYTES: usize = 4096;

/// What makes two findings "the same": for suppression of repeats, and for
/// what a benign verdict allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FindingKey {
    pub identity: Sym,
    pub detector: Detector,
    pub subject: String,
}

impl Ids for FindingKey {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.sym(&mut self.identity);
    }
}

/// What one emitted alert named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sent {
    /// Event time of its latest send.
    at: Millis,
    identity: Sym,
    /// Detector and subject of each finding it named, each once.
    named: Vec<(Detector, String)>,
    /// The call of its (latest) triggering event, as baselines learn it.
    call: Observation,
    incident: bool,
}

impl Ids for Sent {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        v.sym(&mut self.identity);
        self.call.visit_ids(v);
    }
}

/// A malicious verdict standing on an identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub time: Millis,
    pub by: String,
    pub alert_id: String,
}

impl Ids for Mark {
    fn visit_ids(&mut self, _: &mut dyn IdVisitor) {}
}

/// Why a well-formed verdict was not applied. `Display` is the reason printed
/// after its place; the alert id was checked to be hex, so it prints as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error(
        "unknown alert_id `{0}`: no alert with this id is remembered (never sent, or one of more than {MAX_SENT} older ones)"
    )]
    UnknownAlert(String),
    #[error(
        "{MAX_MARKS} identities are already marked compromised; clear one with a benign verdict of scope identity"
    )]
    TooManyMarks,
}

impl Refused {
    /// A bounded name for the reason, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Refused::UnknownAlert(_) => "unknown_alert_id",
            Refused::TooManyMarks => "too_many_compromised",
        }
    }
}

/// What the engine must do for an applied verdict, beyond what `Feedback` recorded.
#[derive(Debug)]
pub struct Applied {
    pub identity: Sym,
    pub judgement: Judgement,
    /// The alert's call: learned for a benign verdict.
    pub call: Observation,
    /// The alert's id when it is an incident: a benign verdict settles it
    /// (its held calls are learned).
    pub incident: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Feedback {
    #[serde(with = "pairs")]
    sent: FastMap<String, Sent>,
    /// `sent` by the time of each alert's latest send: which goes first. Rebuilt on load.
    #[serde(skip)]
    order: BTreeSet<(Millis, String)>,
    #[serde(with = "pairs")]
    allowed: FastMap<FindingKey, Millis>,
    #[serde(with = "pairs")]
    compromised: FastMap<Sym, Mark>,
}

impl Feedback {
    /// Records an alert sent at `at`. A later send of the same id (an incident's
    /// update) replaces its call and adds what it names.
    pub fn remember(
        &mut self,
        alert_id: &str,
        identity: Sym,
        named: impl IntoIterator<Item = (Detector, String)>,
        call: &Observation,
        at: Millis,
        incident: bool,
    ) {
        let entry = match self.sent.get_mut(alert_id) {
            Some(sent) => {
                self.order.remove(&(sent.at, alert_id.to_string()));
                sent.at = sent.at.max(at);
                sent.call = call.clone();
                sent
            }
            None => self.sent.entry(alert_id.to_string()).or_insert(Sent {
                at,
                identity,
                named: Vec::new(),
                call: call.clone(),
                incident,
            }),
        };
        let mut bytes: usize = entry.named.iter().map(|(_, s)| s.len()).sum();
        for (detector, subject) in named {
            if bytes + subject.len() <= MAX_NAMED_BYTES
                && !entry.named.iter().any(|n| n.0 == detector && n.1 == subject)
            {
                bytes += subject.len();
                entry.named.push((detector, subject));
            }
        }
        self.order.insert((entry.at, alert_id.to_string()));
        while self.sent.len() > MAX_SENT {
            let oldest = self.order.pop_first().expect("order lists every sent alert");
            self.sent.remove(&oldest.1);
        }
    }

    /// Whether a benign verdict allowed this finding for this identity.
    pub fn allows(&self, key: &FindingKey) -> bool {
        !self.allowed.is_empty() && self.allowed.contains_key(key)
    }

    pub fn allows_anything(&self) -> bool {
        !self.allowed.is_empty()
    }

    pub fn compromised(&self, identity: Sym) -> Option<&Mark> {
        self.compromised.get(&identity)
    }

    /// Applies a verdict to what its alert named: allows the findings (benign),
    /// sets or clears the compromised mark. The engine learns and settles the rest.
    pub fn apply(&mut self, v: &Verdict, names: &Names) -> Result<Applied, Refused> {
        let sent = self.sent.get(&v.alert_id).ok_or_else(|| Refused::UnknownAlert(v.alert_id.clone()))?;
        let identity = sent.identity;
        let applied = Applied {
            identity,
            judgement: v.judgement,
            call: sent.call.clone(),
            incident: sent.incident.then(|| v.alert_id.clone()),
        };
        match v.judgement {
            Judgement::Benign => {
                let mut allowed: Vec<(Detector, String)> = sent.named.clone();
                if v.scope >= VerdictScope::Call {
                    // The call is habitual now: never novel for this identity.
                    allowed.push((crate::detect::novel_call::SPEC.detector(), names.call_name(sent.call.call)));
                }
                if v.scope == VerdictScope::Identity {
                    self.compromised.remove(&identity);
                }
                for (detector, subject) in allowed {
                    self.allowed.insert(FindingKey { identity, detector, subject }, v.time);
                }
                self.shed_allowed();
            }
            Judgement::Malicious => {
                if !self.compromised.contains_key(&identity) && self.compromised.len() >= MAX_MARKS {
                    return Err(Refused::TooManyMarks);
                }
                let mark = Mark { time: v.time, by: v.by.clone(), alert_id: v.alert_id.clone() };
                self.compromised.insert(identity, mark);
            }
        }
        Ok(applied)
    }

    /// Drops the oldest allowances past `MAX_ALLOWED` (ties by key, so the same input drops the same).
    fn shed_allowed(&mut self) {
        while self.allowed.len() > MAX_ALLOWED {
            let oldest = self.allowed.iter().min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0))).map(|(k, _)| k.clone());
            self.allowed.remove(&oldest.expect("over the bound, so not empty"));
        }
    }

    /// Rebuilds what is not saved, after a load.
    pub fn reindex(&mut self) {
        self.order = self.sent.iter().map(|(id, s)| (s.at, id.clone())).collect();
    }

    /// Checks a loaded part's bounds: a state file is as hostile as a log.
    pub fn check(&self) -> Result<(), String> {
        let over = |what: &str, len: usize, max: usize| Err(format!("feedback: {len} {what}, over the bound of {max}"));
        match () {
            _ if self.sent.len() > MAX_SENT => over("alerts remembered", self.sent.len(), MAX_SENT),
            _ if self.allowed.len() > MAX_ALLOWED => over("findings allowed", self.allowed.len(), MAX_ALLOWED),
            _ if self.compromised.len() > MAX_MARKS => over("identities marked", self.compromised.len(), MAX_MARKS),
            _ => Ok(()),
        }
    }
}

/// What the feedback holds of one identity: the alerts sent about it, the
/// findings allowed for it and its compromised mark. It moves with the
/// identity when its partition is handed to another engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Part {
    sent: Vec<(String, Sent)>,
    allowed: Vec<(FindingKey, Millis)>,
    mark: Option<Mark>,
}

impl Feedback {
    /// A copy of what is held of `identity`.
    pub fn part(&self, identity: Sym) -> Part {
        let mut sent: Vec<(String, Sent)> =
            self.sent.iter().filter(|(_, s)| s.identity == identity).map(|(id, s)| (id.clone(), s.clone())).collect();
        sent.sort_by(|a, b| a.0.cmp(&b.0));
        let mut allowed: Vec<(FindingKey, Millis)> =
            self.allowed.iter().filter(|(k, _)| k.identity == identity).map(|(k, at)| (k.clone(), *at)).collect();
        allowed.sort();
        Part { sent, allowed, mark: self.compromised.get(&identity).cloned() }
    }

    /// Takes out what is held of `identity`.
    pub fn take(&mut self, identity: Sym) -> Part {
        let part = self.part(identity);
        for (id, s) in &part.sent {
            self.order.remove(&(s.at, id.clone()));
            self.sent.remove(id);
        }
        self.allowed.retain(|k, _| k.identity != identity);
        self.compromised.remove(&identity);
        part
    }

    /// Puts in what another engine held of an identity (its ids already in
    /// this engine's tables), within this engine's bounds.
    pub fn put(&mut self, identity: Sym, part: Part) {
        for (id, mut sent) in part.sent {
            sent.identity = identity;
            self.order.insert((sent.at, id.clone()));
            self.sent.insert(id, sent);
        }
        while self.sent.len() > MAX_SENT {
            let oldest = self.order.pop_first().expect("order lists every sent alert");
            self.sent.remove(&oldest.1);
        }
        for (mut key, at) in part.allowed {
            key.identity = identity;
            self.allowed.insert(key, at);
        }
        self.shed_allowed();
        if let Some(mark) = part.mark {
            if self.compromised.len() < MAX_MARKS {
                self.compromised.insert(identity, mark);
            }
        }
    }
}

impl Ids for Part {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.sent.iter_mut().for_each(|(_, s)| s.visit_ids(v));
        self.allowed.iter_mut().for_each(|(k, _)| k.visit_ids(v));
    }
}

impl Ids for Feedback {
    fn visit_ids(&mut self, v: &mut dyn IdVisitor) {
        self.sent.visit_ids(v);
        self.allowed.visit_ids(v);
        self.compromised.visit_ids(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{CallId, CallKey};
    use crate::model::Outcome;

    fn call() -> Observation {
        let key = CallKey { target: Sym(1), action: Sym(2), class: Sym(3) };
        Observation {
            minute: 0,
            window: 0,
            call: CallId(0),
            call_key: key,
            op: CallId(0),
            reach: 0,
            session: None,
            client: None,
            place: None,
            delegators: Default::default(),
            peer_group: Sym(4),
            peer_family: None,
            environment: None,
            region: None,
            outcome: Outcome::Success,
        }
    }

    fn id(i: usize) -> String {
        format!("{i:032x}")
    }

    fn verdict(alert_id: &str, judgement: Judgement) -> Verdict {
        Verdict {
            time: 0,
            alert_id: alert_id.into(),
            judgement,
            scope: VerdictScope::Alert,
            by: "ana".into(),
            note: None,
        }
    }

    #[test]
    fn the_oldest_alert_is_forgotten_past_the_bound_and_a_verdict_for_it_is_refused() {
        let mut feedback = Feedback::default();
        let detector = crate::detect::scope_violation::SPEC.detector();
        // Sent out of time order: the oldest by event time goes, not the first remembered.
        for i in 0..=MAX_SENT {
            let at = if i == 0 { 10 } else { 1000 + i as Millis };
            feedback.remember(&id(i), Sym(i as u32), [(detector, "g".to_string())], &call(), at, false);
        }
        feedback.remember(&id(MAX_SENT + 1), Sym(0), [], &call(), 5, false);
        assert_eq!(feedback.sent.len(), MAX_SENT);
        let names = Names::default();
        for gone in [0, MAX_SENT + 1] {
            let refused = feedback.apply(&verdict(&id(gone), Judgement::Benign), &names).unwrap_err();
            assert_eq!(refused, Refused::UnknownAlert(id(gone)));
        }
        let applied = feedback.apply(&verdict(&id(1), Judgement::Benign), &names).unwrap();
        assert_eq!(applied.identity, Sym(1));
        assert!(feedback.allows(&FindingKey { identity: Sym(1), detector, subject: "g".into() }));
        assert!(!feedback.allows(&FindingKey { identity: Sym(2), detector, subject: "g".into() }));
        // The loaded state rebuilds its order and passes its bounds.
        let mut loaded: Feedback = serde_json::from_str(&serde_json::to_string(&feedback).unwrap()).unwrap();
        loaded.reindex();
        assert_eq!(loaded.order, feedback.order);
        assert!(loaded.check().is_ok());
    }

    #[test]
    fn marks_are_never_dropped_for_room_a_malicious_verdict_past_the_bound_is_refused() {
        let mut feedback = Feedback::default();
        let names = Names::default();
        for i in 0..=MAX_MARKS {
            feedback.remember(&id(i), Sym(i as u32), [], &call(), i as Millis, false);
        }
        for i in 0..MAX_MARKS {
            feedback.apply(&verdict(&id(i), Judgement::Malicious), &names).unwrap();
        }
        let refused = feedback.apply(&verdict(&id(MAX_MARKS), Judgement::Malicious), &names).unwrap_err();
        assert_eq!(refused, Refused::TooManyMarks);
        assert_eq!(feedback.compromised(Sym(0)).map(|m| m.alert_id.as_str()), Some(id(0).as_str()));
        // Marking an identity already marked again is no new mark.
        assert!(feedback.apply(&verdict(&id(0), Judgement::Malicious), &names).is_ok());
    }
}
