//! The scoring arithmetic, as pure functions of incidents and alert hits.

use crate::model::Millis;
use crate::simulate::{IncidentClass, Label};
use crate::time::{DAY, SECOND};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// An incident as the scorer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub class: IncidentClass,
    pub start: Millis,
}

impl From<&Label> for Truth {
    fn from(label: &Label) -> Truth {
        Truth { class: label.class, start: label.start }
    }
}

/// One alert: who raised it, when (event time of the record that raised it), and
/// the incidents whose events it names (empty for a false alert).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub detector: String,
    pub time: Millis,
    pub incidents: Vec<usize>,
}

impl Hit {
    /// Adds the incidents a later send of the same alert names.
    pub fn merge(&mut self, incidents: Vec<usize>) {
        self.incidents.extend(incidents);
        self.incidents.sort_unstable();
        self.incidents.dedup();
    }
}

/// Finds the incidents an alert's event ids belong to.
#[derive(Debug, Default)]
pub struct LabelIndex {
    by_event: HashMap<String, Vec<usize>>,
}

impl LabelIndex {
    pub fn new(labels: &[Label]) -> LabelIndex {
        let mut by_event: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, label) in labels.iter().enumerate() {
            for id in &label.event_ids {
                by_event.entry(id.clone()).or_default().push(i);
            }
        }
        LabelIndex { by_event }
    }

    /// The incidents any of these events belongs to, sorted and without repeats.
    pub fn incidents_of(&self, event_ids: &[String]) -> Vec<usize> {
        let mut found: Vec<usize> =
            event_ids.iter().filter_map(|id| self.by_event.get(id)).flatten().copied().collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overall {
    /// Incidents with at least one alert on their events, over all incidents.
    pub recall: Option<f64>,
    /// Alerts on labelled events over all alerts.
    pub precision: Option<f64>,
    pub false_per_1k_identity_days: f64,
    pub incidents: usize,
    pub caught: usize,
    pub alerts: usize,
    pub false_alerts: usize,
    pub identity_days: f64,
    pub median_time_to_detect_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub incidents: usize,
    pub caught: usize,
    pub recall: Option<f64>,
    pub median_time_to_detect_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorScore {
    pub alerts: usize,
    pub false_alerts: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub overall: Overall,
    pub classes: BTreeMap<IncidentClass, ClassScore>,
    pub detectors: BTreeMap<String, DetectorScore>,
}

/// Scores alert hits against the incidents over `identity_days` of activity.
pub fn score(truths: &[Truth], hits: &[Hit], identity_days: f64) -> Scores {
    // First alert time per incident.
    let mut first_alert: Vec<Option<Millis>> = vec![None; truths.len()];
    for hit in hits {
        for &i in &hit.incidents {
            first_alert[i] = Some(first_alert[i].map_or(hit.time, |t| t.min(hit.time)));
        }
    }
    let delay_s = |i: usize| first_alert[i].map(|t| (t - truths[i].start) as f64 / SECOND as f64);
    let class_score = |members: &[usize]| {
        let mut delays: Vec<f64> = members.iter().filter_map(|&i| delay_s(i)).collect();
        ClassScore {
            incidents: members.len(),
            caught: delays.len(),
            recall: ratio(delays.len(), members.len()),
            median_time_to_detect_s: median(&mut delays),
        }
    };

    let mut by_class: BTreeMap<IncidentClass, Vec<usize>> = BTreeMap::new();
    for (i, truth) in truths.iter().enumerate() {
        by_class.entry(truth.class).or_default().push(i);
    }
    let classes = by_class.iter().map(|(class, members)| (*class, class_score(members))).collect();
    let everyone = class_score(&(0..truths.len()).collect::<Vec<_>>());

    let mut detectors: BTreeMap<String, DetectorScore> = BTreeMap::new();
    for hit in hits {
        let d = detectors.entry(hit.detector.clone()).or_insert(DetectorScore { alerts: 0, false_alerts: 0 });
        d.alerts += 1;
        d.false_alerts += usize::from(hit.incidents.is_empty());
    }
    let false_alerts = hits.iter().filter(|h| h.incidents.is_empty()).count();
    Scores {
        overall: Overall {
            recall: everyone.recall,
            precision: ratio(hits.len() - false_alerts, hits.len()),
            false_per_1k_identity_days: if identity_days > 0.0 {
                false_alerts as f64 * 1000.0 / identity_days
            } else {
                0.0
            },
            incidents: truths.len(),
            caught: everyone.caught,
            alerts: hits.len(),
            false_alerts,
            identity_days,
            median_time_to_detect_s: everyone.median_time_to_detect_s,
        },
        classes,
        detectors,
    }
}

/// Identity-days: for each identity, the days between its first and last event,
/// at least one.
pub fn identity_days(spans: impl IntoIterator<Item = (Millis, Millis)>) -> f64 {
    spans.into_iter().map(|(first, last)| ((last - first) as f64 / DAY as f64).max(1.0)).sum()
}

/// `None` when there is nothing to divide by: a recall without incidents or a
/// precision without alerts is undefined, not zero.
pub fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn identity_days_count_at_least_one_each() {
        assert_eq!(identity_days([(0, 3 * DAY), (DAY, DAY + 1000), (0, DAY / 2 * 5)]), 3.0 + 1.0 + 2.5);
    }

    #[test]
    fn label_index_finds_incidents_of_events() {
        let label = |id: &str, events: &[&str]| Label {
            incident_id: id.into(),
            class: IncidentClass::ScopeViolation,
            identity: "i".into(),
            start: 0,
            end: 0,
            event_ids: events.iter().map(|e| e.to_string()).collect(),
        };
        let index = LabelIndex::new(&[label("a", &["e1", "e2"]), label("b", &["e2", "e3"])]);
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(index.incidents_of(&ids(&["e2", "e1"])), vec![0, 1]);
        assert_eq!(index.incidents_of(&ids(&["e3"])), vec![1]);
        assert!(index.incidents_of(&ids(&["zz"])).is_empty());
    }
}
