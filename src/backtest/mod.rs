//! Backtest: run the real engine (and the first-seen reference rule) over labelled
//! history, and score both per incident class and overall.

pub mod first_seen;
pub mod score;

use crate::decode::{Format, Limits};
use crate::engine::{Engine, EngineConfig, Suppression};
use crate::model::{Millis, Origin, Record};
use crate::simulate::AttackVariant;
use crate::simulate::Label;
use crate::source::file::{self, Line};
use crate::source::merge::{Input, Item, Merge};
use crate::suppress::Rules;
use crate::time::SECOND;
use first_seen::{FirstSeen, FirstSeenConfig};
use score::{AlertsPerIncident, ClassScore, Hit, LabelIndex, Scores, Truth};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}:{line}: expected a label object: {reason}")]
    Label { path: String, line: u64, reason: String },
}

/// What to run over: JSON Lines files, plain or gzip.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Access events in any format `decode` reads (lifecycle records too).
    pub events: String,
    pub labels: String,
    /// Grant and lifecycle events, merged with the events by time.
    pub grants: Option<String>,
    /// Analyst verdicts, merged with the events by time (as `replay --feedback`).
    pub feedback: Option<String>,
}

/// Both scorings, side by side. JSON names are what scripts depend on.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub engine: Scores,
    pub reference: Scores,
    pub input: InputSummary,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InputSummary {
    pub events: u64,
    pub lifecycle_events: u64,
    pub rejected: u64,
    /// The first rejected lines, as `file:line: reason`.
    pub first_rejects: Vec<String>,
    pub identities: usize,
}

impl InputSummary {
    fn reject(&mut self, origin: &Origin, reason: &dyn std::fmt::Display) {
        self.rejected += 1;
        if self.first_rejects.len() < REJECTS_KEPT {
            self.first_rejects.push(format!("{origin}: {reason}"));
        }
    }
}

/// Disorder within an input absorbed before detection, as `replay` does by default.
const LATENESS: Millis = 300 * SECOND;

/// Keeps the first few rejected lines for the report; the rest are only counted.
const REJECTS_KEPT: usize = 20;

/// Runs the engine and the reference rule over the events merged by time with the
/// grants (the same merge `replay` uses), and scores both against the labels.
/// Findings the suppression rules match are scored as not alerted.
pub fn run(inputs: &Inputs, engine_config: EngineConfig, rules: Rules) -> Result<Report, BacktestError> {
    let labels = read_labels(&inputs.labels)?;
    let limits = Limits::default();
    let mut sources = vec![open(&inputs.events, Format::Auto, &limits)?];
    if let Some(grants) = &inputs.grants {
        sources.push(open(grants, Format::Grants, &limits)?);
    }
    if let Some(feedback) = &inputs.feedback {
        sources.push(open(feedback, Format::Feedback, &limits)?);
    }
    let mut merge = Merge::new(sources, limits, LATENESS);
    let mut engine = Engine::new(engine_config);
    engine.set_suppression(Suppression { rules, show: false });
    let mut replay = Replay {
        index: LabelIndex::new(&labels),
        engine,
        reference: FirstSeen::new(FirstSeenConfig::default()),
        engine_hits: Vec::new(),
        by_alert_id: HashMap::new(),
        reference_hits: Vec::new(),
        spans: BTreeMap::new(),
        summary: InputSummary::default(),
    };
    for item in merge.by_ref() {
        match item {
            Item::Record((record, origin), _) => replay.feed(&record, &origin),
            Item::Reject(reject) => replay.summary.reject(&reject.origin, &reject.error),
        }
    }
    if let Some((input, e)) = merge.inputs.iter().find_map(|i| i.read_error.as_ref().map(|e| (i, e))) {
        let source = io::Error::new(e.kind(), e.to_string());
        return Err(BacktestError::Io { path: input.path.to_string(), source });
    }
    Ok(replay.report(&labels))
}

fn open(path: &str, format: Format, limits: &Limits) -> Result<Input, BacktestError> {
    let reader = file::open(path, limits.max_line_bytes)
        .map_err(|source| BacktestError::Io { path: path.to_string(), source })?;
    Ok(Input::new(path.to_string(), reader, format))
}

/// The state of one backtest run.
struct Replay {
    index: LabelIndex,
    engine: Engine,
    reference: FirstSeen,
    engine_hits: Vec<Hit>,
    /// Index in `engine_hits` of each alert id: the later sends of an
    /// incident (updates, the close) are the same alert, not new ones.
    by_alert_id: HashMap<String, usize>,
    reference_hits: Vec<Hit>,
    /// First and last event time per identity, for identity-days.
    spans: BTreeMap<String, (Millis, Millis)>,
    summary: InputSummary,
}

impl Replay {
    fn feed(&mut self, record: &Record, origin: &Origin) {
        let alerts = match self.engine.apply(record, origin) {
            Ok(alerts) => alerts,
            Err(refused) => return self.summary.reject(origin, &refused),
        };
        for alert in alerts {
            let incidents = self.index.incidents_of(&alert.event_ids);
            // A later send of an incident (an update, its close) is the same
            // alert: it may name more events, never count twice.
            match self.by_alert_id.get(&alert.alert_id) {
                Some(&i) => self.engine_hits[i].merge(incidents),
                None => {
                    self.by_alert_id.insert(alert.alert_id.clone(), self.engine_hits.len());
                    let detector = alert.detector.name().to_string();
                    self.engine_hits.push(Hit { alert_id: alert.alert_id, detector, time: record.time(), incidents });
                }
            }
        }
        match record {
            Record::Access(e) => {
                self.summary.events += 1;
                let span = self.spans.entry(e.identity.to_string()).or_insert((e.time, e.time));
                *span = (span.0.min(e.time), span.1.max(e.time));
                if self.reference.observe(e) {
                    // One alert per event: the event id serves as its alert id.
                    let alert_id = e.event_id.to_string();
                    let incidents = self.index.incidents_of(std::slice::from_ref(&alert_id));
                    self.reference_hits.push(Hit { alert_id, detector: "first_seen".into(), time: e.time, incidents });
                }
            }
            Record::Lifecycle { .. } => self.summary.lifecycle_events += 1,
            // Applied by the engine above, or rejected there.
            Record::Verdict(_) => {}
        }
    }

    fn report(mut self, labels: &[Label]) -> Report {
        self.summary.identities = self.spans.len();
        let identity_days = score::identity_days(self.spans.into_values());
        let truths: Vec<Truth> = labels.iter().map(Truth::from).collect();
        Report {
            engine: score::score(&truths, &self.engine_hits, identity_days),
            reference: score::score(&truths, &self.reference_hits, identity_days),
            input: self.summary,
        }
    }
}

/// A label lists its event ids, so a big incident makes a long line.
const LABEL_LINE_BYTES: usize = 64 << 20;

fn read_labels(path: &str) -> Result<Vec<Label>, BacktestError> {
    let io_error = |source| BacktestError::Io { path: path.to_string(), source };
    let mut reader = file::open(path, LABEL_LINE_BYTES).map_err(io_error)?;
    let mut labels = Vec::new();
    while let Some((line, text)) = reader.next_line().map_err(io_error)? {
        let Line::Ok(bytes) = text else { continue };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let label = serde_json::from_slice::<Label>(bytes).map_err(|e| BacktestError::Label {
            path: path.to_string(),
            line,
            reason: e.to_string(),
        })?;
        labels.push(label);
    }
    Ok(labels)
}

impl Report {
    /// The report as a table for people: overreach and the reference side by side.
    pub fn to_table(&self) -> String {
        let (e, r) = (&self.engine, &self.reference);
        let mut out = String::new();
        scores_header(&mut out, "class");
        for (class, ours) in &e.classes {
            scores_row(&mut out, class.name(), ours, &r.classes[class]);
        }
        if !e.variants.is_empty() {
            let _ = writeln!(out);
            scores_header(&mut out, "real attacks by variant");
            for (variant, ours) in &e.variants {
                scores_row(&mut out, variant.name(), ours, &r.variants[variant]);
            }
            let _ = writeln!(out);
            techniques_table(&mut out, e);
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<34} {:>14} {:>14}", "overall", "overreach", "first-seen");
        let rows: [(&str, String, String); 7] = [
            ("recall", fixed(e.overall.recall), fixed(r.overall.recall)),
            ("precision", fixed(e.overall.precision), fixed(r.overall.precision)),
            (
                "false alerts / 1k identity-days",
                format!("{:.2}", e.overall.false_per_1k_identity_days),
                format!("{:.2}", r.overall.false_per_1k_identity_days),
            ),
            ("alerts", e.overall.alerts.to_string(), r.overall.alerts.to_string()),
            ("false alerts", e.overall.false_alerts.to_string(), r.overall.false_alerts.to_string()),
            (
                "median time to detect",
                duration(e.overall.median_time_to_detect_s),
                duration(r.overall.median_time_to_detect_s),
            ),
            ("alerts per caught incident", told(&e.overall.alerts_per_incident), told(&r.overall.alerts_per_incident)),
        ];
        for (name, ours, theirs) in rows {
            let _ = writeln!(out, "{name:<34} {ours:>14} {theirs:>14}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "overreach alerts by detector (false of all):");
        for (detector, d) in &e.detectors {
            let _ = writeln!(out, "  {detector:<24} {:>7} of {:>7}", d.false_alerts, d.alerts);
        }
        let i = &self.input;
        let _ = writeln!(
            out,
            "\ninput: {} events, {} lifecycle events, {} identities ({:.0} identity-days), {} rejected lines",
            i.events, i.lifecycle_events, i.identities, e.overall.identity_days, i.rejected
        );
        out
    }
}

/// Per technique and variant: caught or missed by overreach, how soon, by which
/// detectors (the reference's results are in `--json`).
fn techniques_table(out: &mut String, scores: &Scores) {
    let variants: Vec<AttackVariant> = scores.variants.keys().copied().collect();
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("technique (overreach)".to_string())
        .chain(variants.iter().map(|v| v.name().to_string()))
        .collect()];
    for (technique, by_variant) in &scores.techniques {
        let cells = variants.iter().map(|variant| match by_variant.get(variant) {
            None => "-".to_string(),
            Some(t) if t.score.caught == 0 => "missed".to_string(),
            Some(t) => {
                let detectors = t.detectors.iter().map(String::as_str).collect::<Vec<_>>().join(",");
                let of = match t.score.incidents {
                    1 => String::new(),
                    n => format!(" {}/{n}", t.score.caught),
                };
                format!("caught{of} {} {detectors}", duration(t.score.median_time_to_detect_s))
            }
        });
        rows.push(std::iter::once(technique.clone()).chain(cells).collect());
    }
    let widths: Vec<usize> =
        (0..=variants.len()).map(|c| rows.iter().map(|row| row[c].len()).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, &w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join(" | ").trim_end());
    }
}

fn scores_header(out: &mut String, what: &str) {
    let _ = writeln!(
        out,
        "{:<30} {:>9} | {:>12} {:>7} {:>10} | {:>12} {:>7} {:>10}",
        what, "incidents", "overreach", "recall", "median TTD", "first-seen", "recall", "median TTD"
    );
}

fn scores_row(out: &mut String, name: &str, ours: &ClassScore, theirs: &ClassScore) {
    let _ = writeln!(
        out,
        "{:<30} {:>9} | {:>12} {:>7} {:>10} | {:>12} {:>7} {:>10}",
        name,
        ours.incidents,
        format!("{} caught", ours.caught),
        fixed(ours.recall),
        duration(ours.median_time_to_detect_s),
        format!("{} caught", theirs.caught),
        fixed(theirs.recall),
        duration(theirs.median_time_to_detect_s),
    );
}

/// Mean and maximum alerts per caught incident; `n/a` when nothing was caught.
fn told(value: &Option<AlertsPerIncident>) -> String {
    value.as_ref().map_or_else(|| "n/a".to_string(), |t| format!("{:.2} / {}", t.mean, t.max))
}

fn fixed(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// A time to detect for people: seconds, minutes or hours; `n/a` when nothing was caught.
pub fn duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "n/a".to_string(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.1}min", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}
