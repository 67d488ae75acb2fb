//! The scoring arithmetic, as pure functions of incidents and alert hits.

use crate::model::Millis;
use crate::simulate::{AttackVariant, IncidentClass, Label};
use crate::time::{DAY, SECOND};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An incident as the scorer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub class: IncidentClass,
    pub start: Millis,
    /// For a spliced real attack: its technique and variant.
    pub attack: Option<Attack>,
}

/// Which real attack an incident is, and how it was spliced in.
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    pub technique: String,
    pub variant: AttackVariant,
}

impl From<&Label> for Truth {
    fn from(label: &Label) -> Truth {
        let attack =
            label.technique.clone().zip(label.variant).map(|(technique, variant)| Attack { technique, variant });
        Truth { class: label.class, start: label.start, attack }
    }
}

/// One alert as emitted: its id (an update of an open incident is emitted again
/// under the same id), who raised it, when (event time of the record that raised
/// it), and the incidents whose events it names (empty for a false alert).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub alert_id: String,
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
    /// Distinct alert ids naming a caught incident's events: how many alerts the SOC
    /// reads for one incident. `None` when nothing was caught.
    pub alerts_per_incident: Option<AlertsPerIncident>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertsPerIncident {
    pub mean: f64,
    pub max: usize,
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

/// One technique in one variant: whether it was caught, and by which detectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TechniqueScore {
    #[serde(flatten)]
    pub score: ClassScore,
    /// Detectors with an alert on its events, by name.
    pub detectors: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub overall: Overall,
    pub classes: BTreeMap<IncidentClass, ClassScore>,
    pub detectors: BTreeMap<String, DetectorScore>,
    /// Spliced real attacks by variant; absent when no label names a technique.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<AttackVariant, ClassScore>,
    /// Spliced real attacks by technique, then variant; absent like `variants`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub techniques: BTreeMap<String, BTreeMap<AttackVariant, TechniqueScore>>,
}

/// Scores alert hits against the incidents over `identity_days` of activity.
pub fn score(truths: &[Truth], hits: &[Hit], identity_days: f64) -> Scores {
    // First alert time and alerting detectors per incident.
    let mut first_alert: Vec<Option<Millis>> = vec![None; truths.len()];
    let mut alerted_by: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); truths.len()];
    for hit in hits {
        for &i in &hit.incidents {
            first_alert[i] = Some(first_alert[i].map_or(hit.time, |t| t.min(hit.time)));
            alerted_by[i].insert(&hit.detector);
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
    let mut by_variant: BTreeMap<AttackVariant, Vec<usize>> = BTreeMap::new();
    let mut by_technique: BTreeMap<&str, BTreeMap<AttackVariant, Vec<usize>>> = BTreeMap::new();
    for (i, truth) in truths.iter().enumerate() {
        by_class.entry(truth.class).or_default().push(i);
        if let Some(attack) = &truth.attack {
            by_variant.entry(attack.variant).or_default().push(i);
            by_technique.entry(&attack.technique).or_default().entry(attack.variant).or_default().push(i);
        }
    }
    let classes = by_class.iter().map(|(class, members)| (*class, class_score(members))).collect();
    let variants = by_variant.iter().map(|(variant, members)| (*variant, class_score(members))).collect();
    let techniques = by_technique
        .into_iter()
        .map(|(technique, variants)| {
            let scored = variants.into_iter().map(|(variant, members)| {
                let detectors = members.iter().flat_map(|&i| &alerted_by[i]).map(|d| d.to_string()).collect();
                (variant, TechniqueScore { score: class_score(&members), detectors })
            });
            (technique.to_string(), scored.collect())
        })
        .collect();
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
            alerts_per_incident: alerts_per_incident(hits, truths.len()),
        },
        classes,
        detectors,
        variants,
        techniques,
    }
}

/// Distinct alert ids per caught incident, mean and maximum: an alert re-emitted as
/// an update keeps its id and counts once.
pub fn alerts_per_incident(hits: &[Hit], incidents: usize) -> Option<AlertsPerIncident> {
    let mut ids: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); incidents];
    for hit in hits {
        for &i in &hit.incidents {
            ids[i].insert(&hit.alert_id);
        }
    }
    let counts: Vec<usize> = ids.iter().map(BTreeSet::len).filter(|&n| n > 0).collect();
    let max = *counts.iter().max()?;
    Some(AlertsPerIncident { mean: counts.iter().sum::<usize>() as f64 / counts.len() as f64, max })
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
            technique: None,
            variant: None,
        };
        let index = LabelIndex::new(&[label("a", &["e1", "e2"]), label("b", &["e2", "e3"])]);
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(index.incidents_of(&ids(&["e2", "e1"])), vec![0, 1]);
        assert_eq!(index.incidents_of(&ids(&["e3"])), vec![1]);
        assert!(index.incidents_of(&ids(&["zz"])).is_empty());
    }

    fn hit(alert_id: &str, detector: &str, time: Millis, incidents: &[usize]) -> Hit {
        Hit { alert_id: alert_id.into(), detector: detector.into(), time, incidents: incidents.to_vec() }
    }

    fn attack(technique: &str, variant: AttackVariant, start: Millis) -> Truth {
        let attack = Some(Attack { technique: technique.into(), variant });
        Truth { class: IncidentClass::RealAttack, start, attack }
    }

    #[test]
    fn an_update_under_the_same_id_is_one_alert_for_its_incident() {
        let hits = [
            hit("a", "incident", 10, &[0]),
            hit("a", "incident", 20, &[0]), // the same incident alert, updated
            hit("b", "novel_call", 30, &[0, 1]),
            hit("c", "novel_call", 40, &[]),
        ];
        let told = alerts_per_incident(&hits, 3).unwrap();
        // Incident 0 is told by a and b, incident 1 by b; incident 2 was missed and does not count.
        assert_eq!((told.mean, told.max), (1.5, 2));
        assert_eq!(alerts_per_incident(&hits[3..], 3), None, "nothing caught");
    }

    #[test]
    fn real_attacks_score_by_variant_and_by_technique() {
        use AttackVariant::{Foreign, Own};
        let truths = [
            attack("t.one", Foreign, 0),
            attack("t.one", Own, 1_000),
            attack("t.two", Foreign, 0),
            attack("t.two", Own, 0),
            Truth { class: IncidentClass::ScopeViolation, start: 0, attack: None },
        ];
        let hits = [
            hit("a", "novel_call", 5_000, &[0]),
            hit("b", "new_source", 2_000, &[0]),
            hit("c", "off_hours", 4_000, &[1]),
            hit("d", "scope_violation", 0, &[4]),
        ];
        let s = score(&truths, &hits, 10.0);
        let (foreign, own) = (&s.variants[&Foreign], &s.variants[&Own]);
        assert_eq!((foreign.incidents, foreign.caught, foreign.recall), (2, 1, Some(0.5)));
        assert_eq!((own.incidents, own.caught, own.recall, own.median_time_to_detect_s), (2, 1, Some(0.5), Some(3.0)));
        let one = &s.techniques["t.one"];
        assert_eq!(one[&Foreign].score.caught, 1);
        assert_eq!(one[&Foreign].score.median_time_to_detect_s, Some(2.0), "the earliest alert");
        assert_eq!(one[&Foreign].detectors.iter().collect::<Vec<_>>(), ["new_source", "novel_call"]);
        let two = &s.techniques["t.two"];
        assert_eq!((two[&Own].score.caught, two[&Own].detectors.len()), (0, 0));
        assert_eq!(s.techniques.len(), 2, "the synthetic incident is no technique");
        assert_eq!(s.classes[&IncidentClass::RealAttack].incidents, 4);
    }

    #[test]
    fn without_real_attacks_the_json_has_no_attack_sections() {
        let truths = [Truth { class: IncidentClass::ScopeViolation, start: 0, attack: None }];
        let json = serde_json::to_value(score(&truths, &[hit("a", "d", 1, &[0])], 1.0)).unwrap();
        assert!(json.get("variants").is_none() && json.get("techniques").is_none(), "{json}");
        assert_eq!(json["overall"]["alerts_per_incident"], serde_json::json!({"mean": 1.0, "max": 1}));
    }

    #[test]
    fn a_label_gives_its_attack_only_with_both_technique_and_variant() {
        let mut label = Label {
            incident_id: "inc-1".into(),
            class: IncidentClass::RealAttack,
            identity: "i".into(),
            start: 7,
            end: 9,
            event_ids: vec![],
            technique: Some("t".into()),
            variant: Some(AttackVariant::Own),
        };
        assert_eq!(Truth::from(&label).attack, Some(Attack { technique: "t".into(), variant: AttackVariant::Own }));
        label.variant = None;
        assert_eq!(Truth::from(&label).attack, None);
    }
}
