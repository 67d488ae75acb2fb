//! The triage page: a read-only view of recent alerts and of one identity's baseline, served
//! by the service's HTTP port (`telemetry::http`). Server-rendered HTML with inline SVG and
//! no script: nothing is fetched at run time, and every value that came from a log is written
//! through [`html::Html::text`], the one escaping path.
//!
//! Routes: `/` lists the recent alerts ([`list`]), `/triage/identities/{identity}` shows one
//! identity ([`identity`]), `/alerts` returns the recent alerts as JSON.

pub mod chart;
pub mod html;
pub mod identity;
pub mod list;
pub mod recent;

use html::Html;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// The prefix of an identity's page; the identity follows, percent-encoded.
pub const IDENTITY_PATH: &str = "/triage/identities/";

/// A rendered answer for the HTTP server to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Page {
    pub fn html(body: String) -> Page {
        Page { status: "200 OK", content_type: "text/html; charset=utf-8", body }
    }

    /// A 400 that says what was wrong with the request, as a page.
    pub fn bad_request(reason: &str) -> Page {
        let body = frame("bad request", |page| {
            page.raw("<p class=\"error\">").text(reason).raw("</p>");
        });
        Page { status: "400 Bad Request", ..Page::html(body) }
    }
}

/// The link to an identity's page, optionally opened at one of its alerts.
pub fn identity_link(identity: &str, alert_id: Option<&str>) -> String {
    let mut link = format!("{IDENTITY_PATH}{}", utf8_percent_encode(identity, NON_ALPHANUMERIC));
    if let Some(id) = alert_id {
        link.push_str("?alert=");
        link.extend(utf8_percent_encode(id, NON_ALPHANUMERIC));
    }
    link
}

/// The `name=value` pairs of a query string, percent-decoded (`+` is a space, as forms send
/// it) by the HTTP server's one decoder. A pair it cannot read is an error naming the pair.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    // The request holding the query is itself bounded, so the decoded pair is too.
    let decode = |s: &str| crate::telemetry::http::percent_decoded(&s.replace('+', " "), s.len());
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (decode(name), decode(value)) {
                (Ok(name), Ok(value)) => Ok((name, value)),
                _ => {
                    Err(format!("query parameter {:?} is not percent-encoded UTF-8", crate::text::printable(pair, 80)))
                }
            }
        })
        .collect()
}

/// A whole page: head, style, the navigation, and `body`.
pub fn frame(title: &str, body: impl FnOnce(&mut Html)) -> String {
    let mut page = Html::new();
    page.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
        .text(title)
        .raw(" · overreach</title><style>")
        .raw(STYLE)
        .raw("</style></head><body><header><a class=\"home\" href=\"/\">overreach triage</a>")
        .raw("<a href=\"/alerts\">alerts as JSON</a><a href=\"/metrics\">metrics</a></header><main>");
    body(&mut page);
    page.raw("</main></body></html>\n");
    page.into_string()
}

/// One stylesheet for every page, inline: the page fetches nothing.
const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;padding:8px 16px;display:flex;gap:16px}header a{color:#cfd6e4;text-decoration:none}\
header a.home{color:#fff;font-weight:600}main{padding:12px 16px}\
h1{font-size:18px;margin:4px 0 8px}h2{font-size:15px;margin:16px 0 6px}\
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:4px 8px;\
border-bottom:1px solid #e3e6ec;vertical-align:top}th{background:#eef0f4;font-weight:600}\
td.summary{max-width:640px;overflow-wrap:anywhere}td.identity{overflow-wrap:anywhere;max-width:360px}\
nav.filter{margin:6px 0}nav.filter a{margin-right:8px;padding:1px 6px;border-radius:3px;color:#2450a6}\
nav.filter a.on{background:#2450a6;color:#fff;text-decoration:none}\
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}\
.sev-info{background:#7a8394}.sev-low{background:#3c7d3f}.sev-medium{background:#b7791f}\
.sev-high{background:#c2410c}.sev-critical{background:#b91c1c}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px}\
section.card{background:#fff;border:1px solid #e3e6ec;border-radius:4px;padding:8px 12px}\
.muted{color:#667085}.error{color:#b91c1c}code{overflow-wrap:anywhere}\
svg text{font:11px system-ui,sans-serif;fill:#1d2330}svg .bar{fill:#8aa4d6}svg .mark{fill:#c2410c}\
svg .marktext{fill:#c2410c;font-weight:600}ol.chain li{overflow-wrap:anywhere}";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::Alert;
    use serde_json::json;

    /// An alert as the engine writes one, with the fields a page shows.
    pub(crate) fn alert(id: &str, identity: &str, detector: &str, severity: &str, time: &str) -> Alert {
        serde_json::from_value(json!({
            "alert_id": id, "detector": detector, "severity": severity, "score": 0.9, "time": time,
            "identity": identity, "chain": ["app:payments", identity], "event_ids": [format!("e-{id}")],
            "event": {"target": "iam.amazonaws.com", "action": "CreateUser", "outcome": "success",
                      "source_ip": "203.0.113.7"},
            "source": "in/0/7", "summary": format!("{identity} did something"),
            "evidence": {"observed": {"call": "iam.amazonaws.com CreateUser"}, "baseline": {}},
            "owasp_nhi": [], "attack": [], "recommended_action": "look", "suppressed_repeats": 0,
        }))
        .expect("a valid alert")
    }

    #[test]
    fn identity_links_round_trip_any_identity() {
        for identity in ["arn:aws:iam::1:role/ci", "<script>alert(1)</script>", "a b/c?d=e&f#g%", "ünï ✓"] {
            let link = identity_link(identity, Some("ab12"));
            let (path, query) = link.split_once('?').unwrap();
            let rest = path.strip_prefix(IDENTITY_PATH).unwrap();
            assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'%'), "{link}");
            assert_eq!(crate::telemetry::http::identity_in_path(rest).unwrap(), identity);
            assert_eq!(query_pairs(query).unwrap(), vec![("alert".to_string(), "ab12".to_string())]);
        }
    }

    #[test]
    fn query_pairs_decode_plus_and_percent_and_reject_bad_utf8() {
        assert_eq!(
            query_pairs("severity=high&detector=novel%5Fcall&q=a+b&flag").unwrap(),
            vec![
                ("severity".into(), "high".into()),
                ("detector".into(), "novel_call".into()),
                ("q".into(), "a b".into()),
                ("flag".into(), String::new())
            ]
        );
        assert!(query_pairs("severity=%ff").unwrap_err().contains("severity=%ff"));
    }
}
