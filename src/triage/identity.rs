//! `/triage/identities/{identity}`: one identity as the baseline holds it now
//! ([`crate::explain::IdentityView`]), drawn against one of its alerts (`?alert=ID`, else its
//! newest): the hour and day it acted at among its active hours, the call it made among its
//! repertoire, its networks with the alert's marked, and the delegation chain.

use super::chart::{self, Bar};
use super::html::Html;
use super::list::severity;
use super::{frame, identity_link, query_pairs, Page};
use crate::alert::Alert;
use crate::baseline::hours::DAY_NAMES;
use crate::explain::{IdentityView, Ranked};
use crate::time::{parse_rfc3339, DAY, HOUR};
use std::sync::Arc;

/// The page for `identity`: `view` is `None` when the engine holds no baseline for it (never
/// seen, or evicted); its alerts still show.
pub fn page(identity: &str, view: Option<&IdentityView>, recent: &[Arc<Alert>], query: &str) -> Page {
    let wanted = match query_pairs(query) {
        Ok(pairs) => pairs.into_iter().find(|(name, _)| name == "alert").map(|(_, id)| id),
        Err(reason) => return Page::bad_request(&reason),
    };
    let alerts: Vec<&Alert> = recent.iter().map(Arc::as_ref).filter(|a| a.identity == identity).collect();
    let selected = match &wanted {
        Some(id) => match alerts.iter().find(|a| &a.alert_id == id) {
            Some(alert) => Some(*alert),
            None => return Page::bad_request(&format!("no recent alert {id:?} of this identity")),
        },
        None => alerts.first().copied(),
    };
    Page::html(frame(identity, |page| {
        page.raw("<h1>").text(identity).raw("</h1>");
        if let Some(alert) = selected {
            alert_card(page, alert);
        }
        match view {
            Some(view) => baseline(page, view, selected),
            None => {
                page.raw(
                    "<p class=\"muted\">The engine holds no baseline for this identity (never seen, or evicted).</p>",
                );
            }
        }
        others(page, &alerts, selected);
    }))
}

/// What the alert points at in the pictures.
struct Marks {
    hour: Option<usize>,
    day: Option<usize>,
    call: Option<String>,
    network: Option<String>,
    wide_network: Option<String>,
}

impl Marks {
    fn of(alert: Option<&Alert>) -> Marks {
        let Some(alert) = alert else {
            return Marks { hour: None, day: None, call: None, network: None, wide_network: None };
        };
        // An incident is drawn at its first evidence: where the episode began.
        let time = alert.incident.as_ref().map_or(&alert.time, |i| &i.started);
        let at = parse_rfc3339(time);
        let source = alert.event.source_ip.as_deref();
        Marks {
            hour: at.map(|t| (t.rem_euclid(DAY) / HOUR) as usize),
            day: at.map(|t| crate::baseline::hours::weekday((t.div_euclid(60_000)) as u32)),
            call: Some(new_call(alert)),
            network: source.map(crate::features::network),
            wide_network: source.map(crate::features::wide_network),
        }
    }
}

/// The call the alert is about, named as the repertoire names calls: `novel_call`'s
/// observed call where it (or an incident's signal of it) has one, else the triggering call.
fn new_call(alert: &Alert) -> String {
    let novel = crate::detect::novel_call::SPEC.detector();
    let observed = std::iter::once((alert.detector, &alert.evidence.observed))
        .chain(alert.incident.iter().flat_map(|i| i.signals.iter().map(|s| (s.detector, &s.observed))))
        .filter(|(detector, _)| *detector == novel)
        .find_map(|(_, observed)| observed.get("call")?.as_str());
    observed.map_or_else(|| format!("{} {}", alert.event.target, alert.event.action), str::to_string)
}

fn alert_card(page: &mut Html, alert: &Alert) {
    page.raw("<section class=\"card alert\"><h2>");
    severity(page, alert.severity);
    page.raw(" ").text(alert.detector).raw(" at ").text(&alert.time).raw("</h2>");
    page.raw("<p class=\"muted\">Call <code>").text(format!("{} {}", alert.event.target, alert.event.action));
    if let Some(resource) = &alert.event.resource {
        page.raw("</code> on <code>").text(resource);
    }
    page.raw("</code> from <code>").text(alert.event.source_ip.as_deref().unwrap_or("(no source)"));
    page.raw("</code> with <code>").text(alert.event.user_agent.as_deref().unwrap_or("(no client)"));
    page.raw("</code>; read at <code>").text(&alert.source).raw("</code>; alert <code>").text(&alert.alert_id);
    page.raw("</code></p>");
    page.raw("<p><b>Recommended:</b> ").text(&alert.recommended_action).raw("</p>");
    // The prose is long; the pictures below say most of it at a glance.
    page.raw("<details><summary>Summary").raw(if alert.incident.is_some() { " and signals" } else { "" });
    page.raw("</summary><p>").text(&alert.summary).raw("</p>");
    if let Some(incident) = &alert.incident {
        page.raw("<p>Incident since ").text(&incident.started).raw(", last evidence ").text(&incident.last_evidence);
        page.text(format!(
            ", {} event(s), combined probability {:.2e}:",
            incident.events, incident.combined_probability
        ));
        page.raw("</p><ul>");
        for signal in &incident.signals {
            page.raw("<li><b>").text(signal.detector).raw("</b> ").text(&signal.summary).raw("</li>");
        }
        page.raw("</ul>");
    }
    page.raw("</details></section>");
}

fn baseline(page: &mut Html, view: &IdentityView, alert: Option<&Alert>) {
    let marks = Marks::of(alert);
    let learning = &view.learning;
    page.raw("<p class=\"muted\">").text(format!(
        "Baseline from {} to {}: {} calls learned over {:.1} days ({}); peer group {} ({} identities).",
        view.first_seen,
        view.last_seen,
        view.events,
        learning.days,
        if learning.learned { "learned" } else { "still learning" },
        view.peers.group,
        view.peers.group_size,
    ));
    page.raw("</p><div class=\"grid\"><section class=\"card\"><h2>When it is active (UTC)</h2>");
    let hours: Vec<Bar> = view
        .rhythm
        .hour_of_day
        .iter()
        .enumerate()
        .map(|(h, &n)| Bar { label: format!("{h:02}"), value: f64::from(n), marked: marks.hour == Some(h) })
        .collect();
    chart::columns(page, "active hours per hour of the day", &hours, "alert");
    let days: Vec<Bar> = view
        .rhythm
        .day_of_week
        .iter()
        .zip(DAY_NAMES)
        .enumerate()
        .map(|(d, (&n, name))| Bar { label: name.to_string(), value: f64::from(n), marked: marks.day == Some(d) })
        .collect();
    chart::columns(page, "active hours per day of the week", &days, "alert");
    page.raw("</section><section class=\"card\"><h2>Call repertoire (active hours)</h2>");
    ranked_rows(page, "calls by active hours", &view.calls, marks.call.as_deref(), "alert");
    page.raw("</section><section class=\"card\"><h2>Networks</h2>");
    ranked_rows(page, "networks (/24, /48) by active hours", &view.networks.narrow, marks.network.as_deref(), "alert");
    ranked_rows(page, "wider networks (/16, /32)", &view.networks.wide, marks.wide_network.as_deref(), "alert");
    page.raw("</section><section class=\"card\"><h2>Delegation</h2>");
    if let Some(alert) = alert.filter(|a| !a.chain.is_empty()) {
        page.raw("<p>Chain of the alert's call, first delegator first:</p><ol class=\"chain\">");
        for hop in &alert.chain {
            page.raw("<li><code>").text(hop).raw("</code></li>");
        }
        page.raw("</ol>");
    }
    let on_behalf = alert.and_then(|a| a.on_behalf_of.as_deref());
    ranked_rows(page, "delegators and chain hops by active hours", &view.delegators, on_behalf, "alert");
    page.raw("</section></div>");
}

/// Ranked values as rows; `mark` is the alert's value, marked `label` where it ranks. When it
/// is not among the rows it is added first as a bar of 0 (it is what the analyst came to see,
/// and a long repertoire would push it off screen), said to be new only when the view lists
/// everything the baseline holds: past the cap it may be learned and merely rare.
fn ranked_rows(page: &mut Html, caption: &str, ranked: &Ranked, mark: Option<&str>, label: &str) {
    let mut bars: Vec<Bar> = ranked
        .top
        .iter()
        .map(|c| Bar {
            label: c.value.clone(),
            value: f64::from(c.active_hours),
            marked: Some(c.value.as_str()) == mark,
        })
        .collect();
    let label = match mark {
        Some(value) if !bars.iter().any(|b| b.marked) => {
            bars.insert(0, Bar { label: value.to_string(), value: 0.0, marked: true });
            match ranked.total > ranked.top.len() {
                true => format!("{label}, not among the {} shown", ranked.top.len()),
                false => format!("{label}, new: not in the baseline"),
            }
        }
        _ => label.to_string(),
    };
    chart::rows(page, caption, &bars, &label);
    if ranked.total > ranked.top.len() {
        page.raw("<p class=\"muted\">")
            .text(format!("{} more not shown.", ranked.total - ranked.top.len()))
            .raw("</p>");
    }
}

fn others(page: &mut Html, alerts: &[&Alert], selected: Option<&Alert>) {
    if alerts.len() < 2 {
        return;
    }
    page.raw("<h2>Its recent alerts</h2><ul>");
    for alert in alerts {
        let current = selected.is_some_and(|s| s.alert_id == alert.alert_id);
        page.raw("<li>").text(&alert.time).raw(" ");
        severity(page, alert.severity);
        page.raw(" <a href=\"").text(identity_link(&alert.identity, Some(&alert.alert_id))).raw("\">");
        page.text(alert.detector).raw("</a>").raw(if current { " (shown)</li>" } else { "</li>" });
    }
    page.raw("</ul>");
}
