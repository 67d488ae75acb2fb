//! `overreach replay`: historical logs from files through the engine, alerts
//! out in event-time order, a summary at the end.

use crate::alert::Alert;
use crate::decode::{Format, Limits};
use crate::detect::Detector;
use crate::engine::{Engine, EngineConfig, Suppression};
use crate::source::file;
use crate::source::merge::{Input, Item, Merge, Reject};
use crate::state_file;
use crate::text::escape_control;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct ReplayOptions {
    pub inputs: Vec<String>,
    pub format: Format,
    pub grants: Vec<String>,
    /// Analyst verdicts (verdict.v1), merged with the inputs by time.
    pub feedback: Vec<String>,
    pub policy: Option<String>,
    pub limits: Limits,
    /// Disorder within an input absorbed before records reach the engine, in ms.
    pub lateness_ms: i64,
    pub state_in: Option<String>,
    pub state_out: Option<String>,
    pub engine: EngineConfig,
    /// The `[[suppress]]` rules of `--config`, and `--show-suppressed`.
    pub suppression: Suppression,
    pub progress: bool,
}

/// What a replay did, for the summary line and for tests.
#[derive(Debug, Default)]
pub struct Summary {
    pub events: u64,
    pub lifecycle_events: u64,
    pub alerts: BTreeMap<Detector, u64>,
    pub suppressed: u64,
    /// Findings each suppression rule kept out, by rule name.
    pub suppressed_by_rule: BTreeMap<String, u64>,
    /// Verdicts applied (refused ones are rejects).
    pub verdicts: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Records the full reorder buffer let go before their lateness allowance.
    pub released_early: u64,
    /// Records later than the lateness allowance, handed on out of order (see `order`).
    pub late: u64,
    pub identities: u64,
    pub evicted: u64,
    pub read_errors: Vec<String>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn events_per_second(&self) -> f64 {
        (self.events + self.lifecycle_events) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The end-of-run summary, for stderr.
    pub fn render(&self) -> String {
        let total: u64 = self.alerts.values().sum();
        let by: Vec<String> = self.alerts.iter().map(|(d, n)| format!("{d}={n}")).collect();
        let reasons: Vec<String> = self.rejected_by_reason.iter().map(|(r, n)| format!("{r}={n}")).collect();
        let by_rule: Vec<String> = self.suppressed_by_rule.iter().map(|(r, n)| format!("{r}={n}")).collect();
        format!(
            "overreach: {} events, {} lifecycle records{}, {total} alerts ({}), {} repeats suppressed{}, {} rejected{}{}{}, {} identities tracked ({} evicted), {:.0} events/s in {:.2}s",
            self.events,
            self.lifecycle_events,
            match self.verdicts {
                0 => String::new(),
                n => format!(", {n} verdicts applied"),
            },
            if by.is_empty() { "none".to_string() } else { by.join(" ") },
            self.suppressed,
            match by_rule.len() {
                0 => String::new(),
                _ => format!(
                    ", {} findings suppressed by rule ({})",
                    self.suppressed_by_rule.values().sum::<u64>(),
                    by_rule.join(" ")
                ),
            },
            self.rejected,
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(" ")) },
            match self.released_early {
                0 => String::new(),
                n => format!(", {n} released early from a full reorder buffer"),
            },
            match self.late {
                0 => String::new(),
                n => format!(", {n} later than the lateness allowance (handled out of order)"),
            },
            self.identities,
            self.evicted,
            self.events_per_second(),
            self.elapsed.as_secs_f64(),
        )
    }
}

/// Runs a replay: alerts go to `alerts` (one JSON line each, via `render`),
/// rejects to `rejects` as `file:line: reason`.
pub fn run(
    opts: &ReplayOptions,
    alerts: &mut dyn Write,
    rejects: &mut dyn Write,
    render: &dyn Fn(&Alert) -> String,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    // A state that cannot be saved is found now, not after the whole replay.
    if let Some(path) = &opts.state_out {
        state_file::check_writable(Path::new(path))?;
    }
    let mut engine = match &opts.state_in {
        Some(path) => {
            let mut f = std::fs::File::open(path).with_context(|| format!("cannot open state file {path}"))?;
            Engine::load_state(opts.engine.clone(), &mut f).with_context(|| format!("cannot load state from {path}"))?
        }
        None => Engine::new(opts.engine.clone()),
    };
    engine.set_suppression(opts.suppression.clone());
    if let Some(path) = &opts.policy {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read policy file {path}"))?;
        let grants = crate::grants::load_policy(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        engine.add_policy(grants);
    }

    // Open everything first: a missing file stops the run before any output.
    let mut inputs = Vec::new();
    let side_inputs =
        opts.grants.iter().map(|p| (p, Format::Grants)).chain(opts.feedback.iter().map(|p| (p, Format::Feedback)));
    for (path, format) in opts.inputs.iter().map(|p| (p, opts.format)).chain(side_inputs) {
        let reader = file::open(path, opts.limits.max_line_bytes).with_context(|| format!("cannot read {path}"))?;
        inputs.push(Input::new(path.clone(), reader, format));
    }
    let mut merge = Merge::new(inputs, opts.limits, opts.lateness_ms);
    let mut summary = Summary::default();
    let mut progress = Progress::new(opts.progress);
    let mut emitted = 0u64;

    while let Some(item) = merge.next() {
        let (record, origin) = match item {
            Item::Record(sourced) => sourced,
            Item::Reject(reject) => {
                write_reject(&reject, rejects, &mut summary)?;
                continue;
            }
        };
        match engine.apply(&record, &origin) {
            Ok(emitted_now) => {
                for alert in emitted_now {
                    writeln!(alerts, "{}", render(&alert))?;
                    emitted += 1;
                }
            }
            // A verdict the engine cannot apply is a reject like a bad line, with its place.
            Err(refused) => write_reject(&Reject { origin, error: refused.into() }, rejects, &mut summary)?,
        }
        progress.tick(|| (merge.inputs.iter().map(Input::bytes_read).sum(), engine.stats().events, emitted));
    }
    summary.released_early = merge.released_early();
    summary.late = merge.counts().late;
    progress.finish();
    alerts.flush()?;
    rejects.flush()?;

    for input in &merge.inputs {
        if let Some(e) = &input.read_error {
            let place = format!("{}:{}: read error: {e}", input.path, input.lines_read() + 1);
            summary.read_errors.push(escape_control(&place).into_owned());
        }
    }
    if let Some(path) = &opts.state_out {
        save_state(&engine, path)?;
    }
    let stats = engine.stats();
    summary.events = stats.events;
    summary.lifecycle_events = stats.lifecycle_events;
    summary.alerts = stats.alerts.clone();
    summary.suppressed = stats.suppressed;
    summary.suppressed_by_rule = stats.suppressed_by_rule.clone();
    summary.verdicts = stats.verdicts;
    summary.identities = stats.identities;
    summary.evicted = stats.evicted;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn write_reject(r: &Reject, out: &mut dyn Write, summary: &mut Summary) -> std::io::Result<()> {
    // The file name is as untrusted as the record: one reject, one line.
    writeln!(out, "{}", escape_control(&format!("{}: {}", r.origin, r.error)))?;
    summary.rejected += 1;
    *summary.rejected_by_reason.entry(r.error.kind()).or_default() += 1;
    Ok(())
}

/// Writes the state atomically (see [`state_file`]): a crash mid-write leaves the old file intact.
pub fn save_state(engine: &Engine, path: &str) -> anyhow::Result<()> {
    state_file::write(Path::new(path), |w| engine.save_state(w))?;
    Ok(())
}

/// A one-line progress display on stderr, only when stderr is a terminal.
/// It reads the wall clock for display only; detection never does.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    calls: u32,
}

impl Progress {
    fn new(wanted: bool) -> Progress {
        let now = Instant::now();
        Progress { enabled: wanted && std::io::stderr().is_terminal(), started: now, last: now, calls: 0 }
    }

    fn tick(&mut self, read: impl FnOnce() -> (u64, u64, u64)) {
        self.calls += 1;
        if !self.enabled || self.calls % 4096 != 0 || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let (bytes, events, alerts) = read();
        let rate = events as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!("\r{:>8.1} MiB read, {events} events ({rate:.0}/s), {alerts} alerts ", bytes as f64 / 1048576.0);
    }

    fn finish(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
