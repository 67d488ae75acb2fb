//! Backtest: run the real engine (and the first-seen reference rule) over labelled
//! history, and score both per incident class and overall.

pub mod first_seen;
pub mod score;

use crate::decode::{decode_line, Format, Limits};
use crate::engine::{Engine, EngineConfig};
use crate::model::{Millis, Origin, Record};
use crate::simulate::Label;
use first_seen::{FirstSeen, FirstSeenConfig};
use score::{Hit, LabelIndex, Scores, Truth};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: expected a label object, found an invalid one: {reason}")]
    Label { path: PathBuf, line: u64, reason: String },
}

/// What to run over.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub events: PathBuf,
    pub labels: PathBuf,
    pub grants: Option<PathBuf>,
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

/// Runs the engine and the reference rule over the events (merged by time with the
/// grants), and scores both against the labels.
pub fn run(inputs: &Inputs, engine_config: EngineConfig) -> Result<Report, BacktestError> {
    let labels = read_labels(&inputs.labels)?;
    let mut replay = Replay {
        index: LabelIndex::new(&labels),
        engine: Engine::new(engine_config),
        reference: FirstSeen::new(FirstSeenConfig::default()),
        engine_hits: Vec::new(),
        reference_hits: Vec::new(),
        spans: BTreeMap::new(),
        summary: InputSummary::default(),
    };
    let mut rejects = Rejects::default();
    let mut grants = Vec::new();
    if let Some(path) = &inputs.grants {
        read_lines(path, |line, bytes| decode_into(path, line, bytes, &mut rejects, &mut |r, o| grants.push((r, o))))?;
    }
    // Stable: lifecycle facts of the same time keep their file order.
    grants.sort_by_key(|(record, _)| record.time());
    let mut grants = grants.into_iter().peekable();
    let path = &inputs.events;
    read_lines(path, |line, bytes| {
        decode_into(path, line, bytes, &mut rejects, &mut |record, origin| {
            while let Some((grant, grant_origin)) = grants.next_if(|(g, _)| g.time() <= record.time()) {
                replay.feed(&grant, &grant_origin);
            }
            replay.feed(&record, &origin);
        })
    })?;
    for (grant, origin) in grants {
        replay.feed(&grant, &origin);
    }
    replay.summary.rejected = rejects.count;
    replay.summary.first_rejects = rejects.first;
    Ok(replay.report(&labels))
}

/// The state of one backtest run.
struct Replay {
    index: LabelIndex,
    engine: Engine,
    reference: FirstSeen,
    engine_hits: Vec<Hit>,
    reference_hits: Vec<Hit>,
    /// First and last event time per identity, for identity-days.
    spans: BTreeMap<String, (Millis, Millis)>,
    summary: InputSummary,
}

impl Replay {
    fn feed(&mut self, record: &Record, origin: &Origin) {
        for alert in self.engine.process(record, origin) {
            let incidents = self.index.incidents_of(&alert.event_ids);
            self.engine_hits.push(Hit { detector: alert.detector.name().to_string(), time: record.time(), incidents });
        }
        match record {
            Record::Access(e) => {
                self.summary.events += 1;
                let span = self.spans.entry(e.identity.clone()).or_insert((e.time, e.time));
                *span = (span.0.min(e.time), span.1.max(e.time));
                if self.reference.observe(e) {
                    let incidents = self.index.incidents_of(std::slice::from_ref(&e.event_id));
                    self.reference_hits.push(Hit { detector: "first_seen".into(), time: e.time, incidents });
                }
            }
            Record::Lifecycle { .. } => self.summary.lifecycle_events += 1,
        }
    }

    fn report(mut self, labels: &[Label]) -> Report {
        self.summary.identities = self.spans.len();
        let identity_days = score::identity_days(self.spans.into_values());
        let truths: Vec<Truth> = labels.iter().map(|l| Truth { class: l.class, start: l.start }).collect();
        Report {
            engine: score::score(&truths, &self.engine_hits, identity_days),
            reference: score::score(&truths, &self.reference_hits, identity_days),
            input: self.summary,
        }
    }
}

/// Keeps the first few rejected lines for the report; the rest are only counted.
const REJECTS_KEPT: usize = 20;

#[derive(Debug, Default)]
struct Rejects {
    count: u64,
    first: Vec<String>,
}

/// Decodes one line (any format) and hands each record to `sink`; rejects are counted.
fn decode_into(path: &Path, line: u64, bytes: &[u8], rejects: &mut Rejects, sink: &mut dyn FnMut(Record, Origin)) {
    for decoded in decode_line(bytes, Format::Auto, &Limits::default()) {
        match decoded {
            Ok(record) => sink(record, Origin::File { path: path.display().to_string(), line }),
            Err(e) => {
                rejects.count += 1;
                if rejects.first.len() < REJECTS_KEPT {
                    rejects.first.push(format!("{}:{line}: {e}", path.display()));
                }
            }
        }
    }
}

fn read_labels(path: &Path) -> Result<Vec<Label>, BacktestError> {
    let mut labels = Vec::new();
    let mut bad = None;
    read_lines(path, |line, bytes| {
        if bad.is_some() || bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<Label>(bytes) {
            Ok(label) => labels.push(label),
            Err(e) => bad = Some(BacktestError::Label { path: path.to_path_buf(), line, reason: e.to_string() }),
        }
    })?;
    bad.map_or(Ok(labels), Err)
}

/// Calls `f` with each line (1-based number, bytes without the line end) of a file;
/// `.gz` files are read through gzip.
fn read_lines(path: &Path, mut f: impl FnMut(u64, &[u8])) -> Result<(), BacktestError> {
    let io_error = |source| BacktestError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_error)?;
    let mut reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io_error)? == 0 {
            return Ok(());
        }
        line += 1;
        let end = buf.len() - usize::from(buf.ends_with(b"\n")) - usize::from(buf.ends_with(b"\r\n"));
        f(line, &buf[..end]);
    }
}

impl Report {
    /// The report as a table for people: overreach and the reference side by side.
    pub fn to_table(&self) -> String {
        let (e, r) = (&self.engine, &self.reference);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<30} {:>9} | {:>12} {:>7} {:>10} | {:>12} {:>7} {:>10}",
            "class", "incidents", "overreach", "recall", "median TTD", "first-seen", "recall", "median TTD"
        );
        for (class, ours) in &e.classes {
            let theirs = &r.classes[class];
            let _ = writeln!(
                out,
                "{:<30} {:>9} | {:>12} {:>7} {:>10} | {:>12} {:>7} {:>10}",
                class.name(),
                ours.incidents,
                format!("{} caught", ours.caught),
                fixed(ours.recall),
                duration(ours.median_time_to_detect_s),
                format!("{} caught", theirs.caught),
                fixed(theirs.recall),
                duration(theirs.median_time_to_detect_s),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<34} {:>14} {:>14}", "overall", "overreach", "first-seen");
        let rows: [(&str, String, String); 6] = [
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

fn fixed(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

fn duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "n/a".to_string(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.1}min", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}
