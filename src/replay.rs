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
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Read and decode the inputs on a thread of their own, a batch ahead of the engine (see
    /// [`BATCHES_AHEAD`]); the alerts are the same either way. Worth it with a
    /// second core ([`more_than_one_core`]); on one it only adds hand-overs.
    pub read_ahead: bool,
}

/// Records a thread reading ahead hands to the engine at a time, and the bytes of text (as
/// the order stage counts them) after which a batch is handed over sooner, either way.
const BATCH_RECORDS: usize = 512;
const BATCH_BYTES: usize = 4 << 20;
/// Records read at a time when one thread reads and judges (no read-ahead): a small batch
/// is judged while the records it decoded are still in the core's caches. On one core, 32
/// against 512 took 7% off the replay bench's native wall time; read ahead on a second
/// core, batches that small cost more in hand-overs than they save.
const BATCH_RECORDS_IN_LINE: usize = 32;
/// Batches read ahead and waiting for the engine. With the one being read, the one being judged
/// and those judged but not yet dropped, at most four batches (about 16 MiB of text) are held
/// beyond the order stage.
const BATCHES_AHEAD: usize = 1;

/// Whether this process may run on more than one core (its CPU affinity counts: under
/// `taskset -c 0` it may not).
pub fn more_than_one_core() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
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
    let mut judge = Judge {
        engine: &mut engine,
        alerts,
        rejects,
        render,
        summary: Summary::default(),
        progress: Progress::new(opts.progress),
        emitted: 0,
    };
    let read = AtomicU64::new(0);
    std::thread::scope(|scope| -> std::io::Result<()> {
        if !opts.read_ahead {
            loop {
                let batch = read_batch(&mut merge, &read, BATCH_RECORDS_IN_LINE);
                if batch.is_empty() {
                    return Ok(());
                }
                judge.batch(&batch, &read)?;
            }
        }
        let (ahead, batches) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
        // Judged batches go back to be dropped on the reading thread, which allocated their
        // records: freed on the engine's thread, they cost it a ninth of its time.
        let (judged, to_drop) = std::sync::mpsc::channel::<Vec<Item>>();
        let merge = &mut merge;
        let read = &read;
        scope.spawn(move || loop {
            to_drop.try_iter().for_each(drop);
            let batch = read_batch(merge, read, BATCH_RECORDS);
            // Ended, or the engine stopped (its output failed) and let go of the channel.
            if batch.is_empty() || ahead.send(batch).is_err() {
                return;
            }
        });
        for batch in batches {
            judge.batch(&batch, read)?;
            // Once the reading thread has ended the send fails, and the batch is dropped here.
            let _ = judged.send(batch);
        }
        Ok(())
    })?;
    judge.alerts.flush()?;
    judge.rejects.flush()?;
    let Judge { mut summary, progress, .. } = judge;
    summary.released_early = merge.released_early();
    summary.late = merge.counts().late;
    progress.finish();

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

/// The next records (and rejects) of the merged inputs: up to `max_records` or
/// [`BATCH_BYTES`], empty at the end. `read` is kept at the bytes read from the files so far.
fn read_batch(merge: &mut Merge, read: &AtomicU64, max_records: usize) -> Vec<Item> {
    let mut batch = Vec::with_capacity(max_records);
    let mut bytes = 0;
    while batch.len() < max_records && bytes < BATCH_BYTES {
        let Some(item) = merge.next() else { break };
        if let Item::Record(_, held) = &item {
            bytes += held;
        }
        batch.push(item);
    }
    read.store(merge.inputs.iter().map(Input::bytes_read).sum(), Ordering::Relaxed);
    batch
}

/// The engine's side of a replay: each record judged in the order read, its alerts
/// written as they come, rejects written with their place.
struct Judge<'a> {
    engine: &'a mut Engine,
    alerts: &'a mut dyn Write,
    rejects: &'a mut dyn Write,
    render: &'a dyn Fn(&Alert) -> String,
    summary: Summary,
    progress: Progress,
    emitted: u64,
}

impl Judge<'_> {
    fn batch(&mut self, items: &[Item], read: &AtomicU64) -> std::io::Result<()> {
        for item in items {
            let (record, origin) = match item {
                Item::Record(sourced, _) => sourced,
                Item::Reject(reject) => {
                    write_reject(reject, self.rejects, &mut self.summary)?;
                    continue;
                }
            };
            match self.engine.apply(record, origin) {
                Ok(emitted_now) => {
                    for alert in emitted_now {
                        writeln!(self.alerts, "{}", (self.render)(&alert))?;
                        self.emitted += 1;
                    }
                }
                // A verdict the engine cannot apply is a reject like a bad line, with its place.
                Err(refused) => {
                    let reject = Reject { origin: origin.clone(), error: refused.into() };
                    write_reject(&reject, self.rejects, &mut self.summary)?
                }
            }
            let (engine, emitted) = (&self.engine, self.emitted);
            self.progress.tick(|| (read.load(Ordering::Relaxed), engine.stats().events, emitted));
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading ahead on a thread changes nothing a replay writes: the same alerts and the same
    /// rejects, byte for byte, from a fleet with grants and a file of bad lines among good ones.
    #[test]
    fn reading_ahead_writes_exactly_what_reading_inline_writes() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/replay");
        let mut mixed = tempfile::NamedTempFile::new().unwrap();
        for i in 0..2_000 {
            let line = match i % 7 {
                0 => "{not json".to_string(),
                3 => r#"{"event_id":"x","time":"soon","identity":"i","target":"t","action":"a"}"#.to_string(),
                _ => format!(
                    r#"{{"event_id":"m-{i}","time":{},"identity":"mixed-{}","target":"s3","action":"Get{}"}}"#,
                    1_772_409_600_000i64 + i * 60_000,
                    i % 5,
                    i % 11
                ),
            };
            writeln!(mixed, "{line}").unwrap();
        }
        let replay = |read_ahead: bool| {
            let opts = ReplayOptions {
                inputs: vec![format!("{fixtures}/native.jsonl.gz"), mixed.path().to_string_lossy().into_owned()],
                format: Format::Native,
                grants: vec![format!("{fixtures}/native.grants.jsonl")],
                feedback: Vec::new(),
                policy: None,
                limits: Limits::default(),
                lateness_ms: 60_000,
                state_in: None,
                state_out: None,
                engine: EngineConfig::default(),
                suppression: Suppression::default(),
                progress: false,
                read_ahead,
            };
            let (mut alerts, mut rejects) = (Vec::new(), Vec::new());
            let summary = run(&opts, &mut alerts, &mut rejects, &|a| a.to_json_line()).unwrap();
            (String::from_utf8(alerts).unwrap(), String::from_utf8(rejects).unwrap(), summary.events)
        };
        let (inline, ahead) = (replay(false), replay(true));
        assert!(inline.0.lines().count() > 10, "the fleet alerts");
        assert_eq!(inline.1.lines().count(), 572, "two bad lines in seven of the mixed file");
        assert_eq!(inline.0, ahead.0, "alerts");
        assert_eq!(inline.1, ahead.1, "rejects");
        assert_eq!(inline.2, ahead.2, "events");
    }
}
