//! The recent alerts the triage page lists: a bounded ring the service fills where it hands
//! alerts to the alert topic, read by the HTTP server.

use crate::alert::Alert;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Alerts kept by default: a day of a busy fleet's alerts, a few megabytes at most (every
/// alert field is bounded by `sanitize`).
pub const DEFAULT_CAPACITY: usize = 1_000;

/// The latest alerts, oldest first. An incident is sent again when evidence joins and when it
/// closes, always with the same `alert_id`: its new send replaces the old one (and moves to
/// the newest place), so the page shows each incident once, as it stands now.
pub struct RecentAlerts {
    capacity: usize,
    alerts: Mutex<VecDeque<Arc<Alert>>>,
}

impl RecentAlerts {
    pub fn new(capacity: usize) -> RecentAlerts {
        RecentAlerts { capacity: capacity.max(1), alerts: Mutex::new(VecDeque::new()) }
    }

    /// Adds an alert; past the capacity the oldest goes.
    pub fn push(&self, alert: Alert) {
        let mut alerts = self.alerts.lock().unwrap_or_else(PoisonError::into_inner);
        if alert.incident.is_some() {
            if let Some(earlier) = alerts.iter().position(|a| a.alert_id == alert.alert_id) {
                alerts.remove(earlier);
            }
        }
        if alerts.len() >= self.capacity {
            alerts.pop_front();
        }
        alerts.push_back(Arc::new(alert));
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Every alert held, newest first; a copy, so no lock is held while a page renders.
    pub fn newest_first(&self) -> Vec<Arc<Alert>> {
        self.alerts.lock().unwrap_or_else(PoisonError::into_inner).iter().rev().cloned().collect()
    }
}

impl Default for RecentAlerts {
    fn default() -> Self {
        RecentAlerts::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::alert;
    use super::*;
    use crate::alert::{IncidentInfo, IncidentStatus};

    fn ids(recent: &RecentAlerts) -> Vec<String> {
        recent.newest_first().iter().map(|a| a.alert_id.clone()).collect()
    }

    fn incident(id: &str, status: IncidentStatus) -> Alert {
        let info = IncidentInfo {
            status,
            update: 0,
            started: "2026-03-02T10:00:00Z".into(),
            last_evidence: "2026-03-02T10:00:00Z".into(),
            events: 1,
            combined_probability: 1e-5,
            signals: vec![],
        };
        Alert { incident: Some(info), ..alert(id, "role/x", "novel_call", "high", "2026-03-02T10:00:00Z") }
    }

    #[test]
    fn keeps_the_newest_up_to_its_capacity() {
        let recent = RecentAlerts::new(3);
        for id in ["a", "b", "c", "d"] {
            recent.push(alert(id, "role/x", "novel_call", "high", "2026-03-02T10:00:00Z"));
        }
        assert_eq!(ids(&recent), ["d", "c", "b"]);
    }

    #[test]
    fn an_incident_send_replaces_its_earlier_send_and_a_finding_repeat_does_not() {
        let recent = RecentAlerts::new(10);
        recent.push(incident("inc", IncidentStatus::Open));
        recent.push(alert("f", "role/x", "novel_call", "high", "2026-03-02T10:00:00Z"));
        recent.push(incident("inc", IncidentStatus::Closed));
        assert_eq!(ids(&recent), ["inc", "f"]);
        assert_eq!(recent.newest_first()[0].incident.as_ref().map(|i| i.status), Some(IncidentStatus::Closed));
        recent.push(alert("f", "role/x", "novel_call", "high", "2026-03-02T11:00:00Z"));
        assert_eq!(ids(&recent), ["f", "inc", "f"]);
    }
}
