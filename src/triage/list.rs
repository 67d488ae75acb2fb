//! `/` and `/alerts`: the recent alerts, newest first, filtered by the query string
//! (`severity=` the lowest severity shown, `detector=` a detector name). Filters are links,
//! so the page needs no script.

use super::html::Html;
use super::{frame, identity_link, query_pairs, Page};
use crate::alert::{Alert, Severity};
use crate::detect::Detector;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest summary shown in the list; the identity's page shows it whole.
const SUMMARY_CHARS: usize = 400;

/// What the query string asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Alerts of at least this severity.
    pub severity: Option<Severity>,
    /// Alerts of this detector, or incidents it has a signal in.
    pub detector: Option<Detector>,
}

impl Filter {
    /// Reads `severity` and `detector`; other parameters are ignored, an unknown value is an
    /// error that names it and what was expected.
    pub fn parse(query: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for (name, value) in query_pairs(query)? {
            match name.as_str() {
                "severity" if value.is_empty() => {}
                "severity" => {
                    filter.severity = Some(Severity::ALL.into_iter().find(|s| s.name() == value).ok_or_else(|| {
                        let names: Vec<&str> = Severity::ALL.iter().map(|s| s.name()).collect();
                        format!("unknown severity {value:?}, expected one of {}", names.join(", "))
                    })?)
                }
                "detector" if value.is_empty() => {}
                "detector" => filter.detector = Some(value.parse()?),
                _ => {}
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        let severity = self.severity.is_none_or(|min| alert.severity >= min);
        let detector = self.detector.is_none_or(|d| detectors(alert).any(|of| of == d));
        severity && detector
    }

    /// The query string of this filter, for links.
    fn query(&self) -> String {
        let parts: Vec<String> = [
            self.severity.map(|s| format!("severity={}", s.name())),
            self.detector.map(|d| format!("detector={}", d.name())),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "/".to_string()
        } else {
            format!("/?{}", parts.join("&"))
        }
    }
}

/// The detectors an alert stands for: its own, and for an incident each signal's.
fn detectors(alert: &Alert) -> impl Iterator<Item = Detector> + '_ {
    std::iter::once(alert.detector).chain(alert.incident.iter().flat_map(|i| i.signals.iter().map(|s| s.detector)))
}

/// `/alerts`: the recent alerts that pass the filter, newest first, as a JSON array of
/// alert.v1 objects.
pub fn json(alerts: &[Arc<Alert>], query: &str) -> Page {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(reason) => return Page::bad_request(&reason),
    };
    let shown: Vec<&Alert> = alerts.iter().map(Arc::as_ref).filter(|a| filter.matches(a)).collect();
    let body = serde_json::to_string(&shown).expect("alerts always serialize");
    Page { status: "200 OK", content_type: "application/json", body }
}

/// `/`: the list page.
pub fn page(alerts: &[Arc<Alert>], query: &str, capacity: usize) -> Page {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(reason) => return Page::bad_request(&reason),
    };
    let shown: Vec<&Alert> = alerts.iter().map(Arc::as_ref).filter(|a| filter.matches(a)).collect();
    Page::html(frame("recent alerts", |page| {
        page.raw("<h1>Recent incidents and alerts</h1><p class=\"muted\">")
            .text(format!(
                "{} shown of the {} held (the last {capacity} are kept), newest first.",
                shown.len(),
                alerts.len()
            ))
            .raw("</p>");
        filters(page, alerts, filter);
        table(page, &shown);
    }))
}

fn filters(page: &mut Html, alerts: &[Arc<Alert>], filter: Filter) {
    page.raw("<nav class=\"filter\">Severity at least: ");
    let levels = std::iter::once(None).chain(Severity::ALL.into_iter().map(Some));
    for severity in levels {
        let target = Filter { severity, ..filter };
        link(page, &target, target == filter, severity.map_or("any", |s| s.name()));
    }
    page.raw("</nav><nav class=\"filter\">Detector: ");
    let mut counts: BTreeMap<Detector, usize> = BTreeMap::new();
    for alert in alerts {
        for detector in detectors(alert) {
            *counts.entry(detector).or_default() += 1;
        }
    }
    let all = Filter { detector: None, ..filter };
    link(page, &all, all == filter, "any");
    for (detector, count) in counts {
        let target = Filter { detector: Some(detector), ..filter };
        link(page, &target, target == filter, &format!("{detector} ({count})"));
    }
    page.raw("</nav>");
}

fn link(page: &mut Html, target: &Filter, on: bool, label: &str) {
    page.raw(if on { "<a class=\"on\" href=\"" } else { "<a href=\"" })
        .text(target.query())
        .raw("\">")
        .text(label)
        .raw("</a>");
}

fn table(page: &mut Html, alerts: &[&Alert]) {
    if alerts.is_empty() {
        page.raw("<p>No alert matches.</p>");
        return;
    }
    page.raw("<table><thead><tr><th>time (UTC)</th><th>severity</th><th>detector</th><th>identity</th>")
        .raw("<th>kind</th><th>summary</th></tr></thead><tbody>");
    for alert in alerts {
        page.raw("<tr class=\"alert\"><td>").text(&alert.time).raw("</td><td>");
        severity(page, alert.severity);
        page.raw("</td><td>").text(alert.detector).raw("</td><td class=\"identity\"><a href=\"");
        page.text(identity_link(&alert.identity, Some(&alert.alert_id)))
            .raw("\">")
            .text(&alert.identity)
            .raw("</a></td><td>");
        match &alert.incident {
            Some(incident) => {
                let status = serde_json::to_value(incident.status).ok();
                let status = status.as_ref().and_then(|s| s.as_str()).unwrap_or_default();
                page.text(format!("incident, {status}, {} signal(s)", incident.signals.len()))
            }
            None => page.raw("finding"),
        };
        page.raw("</td><td class=\"summary\">").text(shortened(&alert.summary)).raw("</td></tr>");
    }
    page.raw("</tbody></table>");
}

/// A severity as a coloured label; the class comes from the closed set, never from a log.
pub fn severity(page: &mut Html, severity: Severity) {
    let class = match severity {
        Severity::Info => "<span class=\"sev sev-info\">",
        Severity::Low => "<span class=\"sev sev-low\">",
        Severity::Medium => "<span class=\"sev sev-medium\">",
        Severity::High => "<span class=\"sev sev-high\">",
        Severity::Critical => "<span class=\"sev sev-critical\">",
    };
    page.raw(class).text(severity).raw("</span>");
}

fn shortened(summary: &str) -> String {
    match summary.char_indices().nth(SUMMARY_CHARS) {
        Some((end, _)) => format!("{}…", &summary[..end]),
        None => summary.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::alert;
    use super::*;

    fn held() -> Vec<Arc<Alert>> {
        vec![
            Arc::new(alert("c", "role/new", "new_source", "critical", "2026-03-03T10:00:00Z")),
            Arc::new(alert("b", "<script>alert(1)</script>", "post_purpose", "high", "2026-03-02T10:00:00Z")),
            Arc::new(alert("a", "role/old", "novel_call", "low", "2026-03-01T10:00:00Z")),
        ]
    }

    #[test]
    fn filters_by_lowest_severity_and_by_detector() {
        let ids = |query: &str| -> Vec<String> {
            let filter = Filter::parse(query).unwrap();
            held().iter().filter(|a| filter.matches(a)).map(|a| a.alert_id.clone()).collect()
        };
        assert_eq!(ids(""), ["c", "b", "a"]);
        assert_eq!(ids("severity=high"), ["c", "b"]);
        assert_eq!(ids("detector=novel_call"), ["a"]);
        assert_eq!(ids("severity=high&detector=novel_call"), Vec::<String>::new());
        assert_eq!(ids("severity=&detector="), ["c", "b", "a"]);
        assert!(Filter::parse("severity=urgent").unwrap_err().contains("expected one of info, low"));
        assert!(Filter::parse("detector=nope").unwrap_err().contains("unknown detector"));
    }

    #[test]
    fn the_list_escapes_identities_and_links_them_encoded() {
        let page = page(&held(), "", 1000);
        assert_eq!(page.status, "200 OK");
        let body = page.body;
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains(">&lt;script&gt;alert(1)&lt;/script&gt;</a>"), "{body}");
        assert!(body.contains("href=\"/triage/identities/%3Cscript%3Ealert%281%29%3C%2Fscript%3E?alert=b\""), "{body}");
        // Newest first.
        let (new, old) = (body.find("role/new").unwrap(), body.find("role/old").unwrap());
        assert!(new < old);
    }

    #[test]
    fn filter_links_keep_the_other_filter_and_mark_the_current_one() {
        let body = page(&held(), "detector=novel_call", 1000).body;
        let links = &body[body.find("<nav").unwrap()..body.find("<table").unwrap()];
        assert!(links.contains("<a href=\"/?severity=high&amp;detector=novel_call\">high</a>"), "{links}");
        assert!(links.contains("<a class=\"on\" href=\"/?detector=novel_call\">novel_call (1)</a>"), "{links}");
        assert!(links.contains("Detector: <a href=\"/\">any</a>"), "{links}");
        assert_eq!(body.matches("<tr class=\"alert\">").count(), 1);
    }

    #[test]
    fn a_bad_filter_is_a_400_that_names_it_and_json_lists_the_matching_alerts() {
        let bad = page(&held(), "severity=%3Cb%3E", 1000);
        assert_eq!(bad.status, "400 Bad Request");
        assert!(bad.body.contains("unknown severity &quot;&lt;b&gt;&quot;"), "{}", bad.body);
        let listed: Vec<Alert> = serde_json::from_str(&json(&held(), "severity=high").body).unwrap();
        assert_eq!(listed.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(), ["c", "b"]);
    }
}
