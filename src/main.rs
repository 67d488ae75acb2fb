//! The `overreach` command line: a thin layer over the library.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use overreach::backtest;
use overreach::decode::{Format, Limits};
use overreach::engine::{EngineConfig, InvalidSetting, Suppression};
use overreach::ocsf::{self, AlertFormat};
use overreach::paths::{self, Named, SameFile};
use overreach::replay::{self, ReplayOptions};
use overreach::simulate::{self, detonation, AttackVariant, Attacks, EventFormat, SimConfig};
use overreach::suppress::Rules;
use overreach::text::escape_control;
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "overreach",
    version,
    about = "Watches what delegated machine identities do and says when one oversteps."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay historical logs from files (or `-` for stdin) and print alerts.
    Replay(ReplayArgs),
    /// Simulate a labelled fleet of delegated machine identities.
    Simulate(SimulateArgs),
    /// Score the engine and a first-seen reference rule against labelled events.
    Backtest(BacktestArgs),
    /// Runs the Kafka service: access logs in, alerts out, at least once.
    Run(overreach::config::RunArgs),
    /// Streams a simulated fleet through the Kafka service on an embedded broker and prints the alerts.
    Demo(overreach::demo::DemoArgs),
    /// Shows what a saved state holds for one identity: its calls, networks, clients, rhythm,
    /// delegators, grants, open incident, learning status and peers.
    Explain(ExplainArgs),
}

#[derive(Args)]
struct ExplainArgs {
    /// A state written by `replay --state-out` or the service's `--state` snapshot.
    #[arg(long)]
    state: String,
    /// The identity as logged (e.g. a role ARN).
    identity: String,
    /// One JSON object (schemas/identity-explain.v1.schema.json) instead of text.
    #[arg(long)]
    json: bool,
    /// Detection settings (TOML `[engine]` table): the learning thresholds the view compares with.
    #[arg(long)]
    config: Option<String>,
}

#[derive(Args)]
struct ReplayArgs {
    /// JSON Lines inputs, plain or gzip; `-` reads stdin.
    #[arg(required = true)]
    files: Vec<String>,
    /// Input format; `auto` decides per record.
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Grant and lifecycle events (grant-event.v1), merged with the inputs by time.
    #[arg(long)]
    grants: Vec<String>,
    /// Analyst verdicts (verdict.v1, see docs/feedback.md), merged with the inputs by time.
    #[arg(long)]
    feedback: Vec<String>,
    /// Static delegations (TOML `[[grant]]` tables) that hold from the start.
    #[arg(long)]
    policy: Option<String>,
    /// Write alerts here instead of stdout.
    #[arg(long)]
    alerts_out: Option<String>,
    /// `native` (alert.v1) or `ocsf` (OCSF 1.5.0 Detection Finding).
    #[arg(long, default_value = "native")]
    alert_format: AlertFormat,
    /// Write rejected lines (`file:line: reason`) here instead of stderr.
    #[arg(long)]
    rejects_out: Option<String>,
    /// Resume from baselines saved by `--state-out`.
    #[arg(long)]
    state_in: Option<String>,
    /// Save all baselines here at the end.
    #[arg(long)]
    state_out: Option<String>,
    /// Lines longer than this are rejected.
    #[arg(long, default_value_t = 1 << 20)]
    max_line_bytes: usize,
    /// Disorder within an input (seconds of event time) reordered before detection.
    #[arg(long, default_value_t = 300)]
    lateness_s: i64,
    /// Detection settings: a TOML file whose `[engine]` table sets any EngineConfig key
    /// and whose `[[suppress]]` tables are suppression rules.
    #[arg(long)]
    config: Option<String>,
    /// Emit the findings suppression rules match, marked `status: suppressed`.
    #[arg(long)]
    show_suppressed: bool,
    #[command(flatten)]
    engine: EngineFlags,
    /// No progress line on stderr, even on a terminal.
    #[arg(long)]
    quiet: bool,
}

/// The most used detection settings as flags; they override the config file.
#[derive(Args)]
struct EngineFlags {
    /// Days of history before learned detectors judge an identity.
    #[arg(long)]
    learning_days: Option<f64>,
    /// Events of history before learned detectors judge an identity.
    #[arg(long)]
    learning_events: Option<u64>,
    /// Seconds of event time within which repeats of a finding are counted, not emitted.
    #[arg(long)]
    suppression_window_s: Option<i64>,
    /// Cap on identities held in memory.
    #[arg(long)]
    max_identities: Option<usize>,
}

impl EngineFlags {
    fn apply(&self, mut config: EngineConfig) -> EngineConfig {
        if let Some(v) = self.learning_days {
            config.learning_days = v;
        }
        if let Some(v) = self.learning_events {
            config.learning_events = v;
        }
        if let Some(v) = self.suppression_window_s {
            config.suppression_window_s = v;
        }
        if let Some(v) = self.max_identities {
            config.max_identities = v;
        }
        config
    }
}

fn output(path: &Option<String>, default: Box<dyn Write>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(File::create(p).with_context(|| format!("cannot write {p}"))?)),
        None => default,
    })
}

fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    refuse_overlap_for_replay(&args)?;
    let (engine, rules) = detection_config(&args.config)?;
    let engine = validated(args.engine.apply(engine))?;
    let opts = ReplayOptions {
        inputs: args.files,
        format: args.format,
        grants: args.grants,
        feedback: args.feedback,
        policy: args.policy,
        limits: Limits { max_line_bytes: args.max_line_bytes, ..Limits::default() },
        lateness_ms: args.lateness_s * 1000,
        state_in: args.state_in,
        state_out: args.state_out,
        engine,
        suppression: Suppression { rules, show: args.show_suppressed },
        progress: !args.quiet,
        read_ahead: replay::more_than_one_core(),
    };
    let mut alerts = output(&args.alerts_out, Box::new(BufWriter::new(std::io::stdout().lock())))?;
    let mut rejects = output(&args.rejects_out, Box::new(std::io::stderr()))?;
    let format = args.alert_format;
    let summary = replay::run(&opts, &mut alerts, &mut rejects, &|a| ocsf::render(a, format))?;
    say(&summary.render());
    for e in &summary.read_errors {
        say(&format!("overreach: {e}"));
    }
    Ok(if summary.read_errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Every file `replay` reads against every file it writes.
fn refuse_overlap_for_replay(args: &ReplayArgs) -> Result<(), SameFile> {
    let inputs: Vec<Named> = (args.files.iter().map(|p| Named::new("input", p)))
        .chain(args.grants.iter().map(|p| Named::new("--grants", p)))
        .chain(args.feedback.iter().map(|p| Named::new("--feedback", p)))
        .chain(args.policy.iter().map(|p| Named::new("--policy", p)))
        .chain(args.config.iter().map(|p| Named::new("--config", p)))
        .collect();
    let state_in: Vec<Named> = args.state_in.iter().map(|p| Named::new("--state-in", p)).collect();
    let state_out: Vec<Named> = args.state_out.iter().map(|p| Named::new("--state-out", p)).collect();
    let streams: Vec<Named> = [("--alerts-out", &args.alerts_out), ("--rejects-out", &args.rejects_out)]
        .into_iter()
        .filter_map(|(role, path)| Some(Named::new(role, path.as_deref()?)))
        .collect();
    // Alerts and rejects are created (truncated) before anything is read.
    paths::refuse_overlap(&[&inputs[..], &state_in].concat(), &streams)?;
    // The state is read whole at the start and replaced by a rename at the end,
    // so `--state-out` may roll `--state-in` forward; it may be nothing else.
    paths::refuse_overlap(&inputs, &[streams, state_out].concat())
}

/// Engine settings from the user are checked before anything runs.
fn validated(config: EngineConfig) -> Result<EngineConfig, InvalidSetting> {
    config.validate().map(|()| config)
}

#[derive(Args)]
struct SimulateArgs {
    #[arg(long, default_value_t = 100)]
    identities: usize,
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Access events, one per line.
    #[arg(long)]
    out: PathBuf,
    /// Grant and lifecycle events, one per line.
    #[arg(long)]
    grants_out: PathBuf,
    /// Incident labels, one per line.
    #[arg(long)]
    labels_out: PathBuf,
    #[arg(long, value_enum, default_value_t = EventFormat::Native)]
    format: EventFormat,
    /// Splice the real attack detonations of this directory into the fleet: each
    /// `*.json` (CloudTrail records) is one technique, labelled `real_attack`.
    #[arg(long)]
    attacks: Option<PathBuf>,
    /// How each technique is spliced in: `foreign` (stolen credential used elsewhere),
    /// `own` (from inside the identity's own session), or both.
    #[arg(long, value_delimiter = ',', default_value = "foreign,own", requires = "attacks")]
    attack_variants: Vec<AttackVariant>,
}

#[derive(Args)]
struct BacktestArgs {
    /// Access events (any input format), plain or gzip.
    #[arg(long)]
    events: String,
    /// Incident labels written by `simulate --labels-out`.
    #[arg(long)]
    labels: String,
    /// Grant and lifecycle events, merged with the events by time.
    #[arg(long)]
    grants: Option<String>,
    /// Analyst verdicts (verdict.v1), merged with the events by time.
    #[arg(long)]
    feedback: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Detection settings: a TOML file whose `[engine]` table sets any EngineConfig key
    /// and whose `[[suppress]]` tables are suppression rules.
    #[arg(long)]
    config: Option<String>,
}

/// The exit status when a reader closed our output (`replay ... | head -1`):
/// 128 + SIGPIPE, what a shell reports for `cat` in the same place. The run
/// stopped early (no summary, no `--state-out`), so it must not look complete
/// to a script with `pipefail`, yet it is no error worth a message.
const OUTPUT_CLOSED: u8 = 141;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay(args),
        Command::Simulate(args) => simulate_command(args).map(|()| ExitCode::SUCCESS),
        Command::Backtest(args) => backtest_command(args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => overreach::service::command(&args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => overreach::demo::command(&args).map(|()| ExitCode::SUCCESS),
        Command::Explain(args) => explain_command(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(OUTPUT_CLOSED),
        Err(e) => {
            // Errors quote paths and input; `{:#}` is the whole chain on one line.
            say(&format!("overreach: {}", escape_control(&format!("{e:#}"))));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == ErrorKind::BrokenPipe))
}

/// A line on stderr. A closed stderr is ignored: there is nowhere left to say anything.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn simulate_command(args: SimulateArgs) -> anyhow::Result<()> {
    // In one order whatever the command line's, so the splice depends on the set only.
    let variants: Vec<AttackVariant> =
        AttackVariant::ALL.into_iter().filter(|v| args.attack_variants.contains(v)).collect();
    let attacks = match &args.attacks {
        Some(dir) => Some(Attacks { detonations: detonation::read_dir(dir)?, variants }),
        None => None,
    };
    let wanted = attacks.as_ref().map_or(0, |a| a.detonations.len() * a.variants.len());
    let config =
        SimConfig { identities: args.identities, days: args.days, seed: args.seed, attacks, ..SimConfig::default() };
    let outputs = [("--out", &args.out), ("--grants-out", &args.grants_out), ("--labels-out", &args.labels_out)];
    let outputs: Vec<Named> = outputs.iter().map(|(role, path)| Named::new(role, path.as_path())).collect();
    paths::refuse_overlap(&[], &outputs)?;
    let sim = simulate::generate(&config);
    write_file(&args.out, |w| simulate::write_events(&sim.events, args.format, w))?;
    let grants = match args.format {
        EventFormat::Native => sim.grants.clone(),
        EventFormat::Cloudtrail => simulate::cloudtrail::grants(&sim.grants),
    };
    write_file(&args.grants_out, |w| simulate::write_json_lines(&grants, w))?;
    write_file(&args.labels_out, |w| simulate::write_json_lines(&sim.labels, w))?;
    say(&format!(
        "{} events, {} grant and lifecycle events, {} incidents",
        sim.events.len(),
        sim.grants.len(),
        sim.labels.len()
    ));
    if wanted > 0 {
        let spliced = sim.labels.iter().filter(|l| l.technique.is_some()).count();
        say(&format!("{spliced} of {wanted} real attacks spliced (technique x variant)"));
        if spliced < wanted {
            say("overreach: some real attacks found no free identity with 8 days of history; use a larger fleet");
        }
    }
    Ok(())
}

/// Detection settings from the `[engine]` table of a TOML file and its
/// `[[suppress]]` rules, or the defaults and no rules.
fn detection_config(path: &Option<String>) -> anyhow::Result<(EngineConfig, Rules)> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
            let in_file = |e: String| anyhow::anyhow!("{path}: {e}");
            let engine = overreach::engine::config_from_toml(&text).map_err(in_file)?;
            Ok((engine, overreach::suppress::rules_from_toml(&text).map_err(in_file)?))
        }
        None => Ok((EngineConfig::default(), Rules::default())),
    }
}

fn backtest_command(args: BacktestArgs) -> anyhow::Result<()> {
    let inputs =
        backtest::Inputs { events: args.events, labels: args.labels, grants: args.grants, feedback: args.feedback };
    let (engine, rules) = detection_config(&args.config)?;
    let report = backtest::run(&inputs, validated(engine)?, rules)?;
    for reject in &report.input.first_rejects {
        say(&escape_control(reject));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(out, "{}", report.to_table())?;
    }
    out.flush()?;
    Ok(())
}

fn explain_command(args: ExplainArgs) -> anyhow::Result<()> {
    let config = validated(detection_config(&args.config)?.0)?;
    let engine = overreach::kafka::snapshot::read_engine(Path::new(&args.state), config)?;
    let Some(view) = overreach::explain::explain(&engine, &args.identity) else {
        anyhow::bail!("{}: no baseline for identity `{}`", args.state, args.identity);
    };
    let mut out = std::io::stdout().lock();
    match args.json {
        true => writeln!(out, "{}", serde_json::to_string(&view)?)?,
        false => write!(out, "{}", overreach::explain::render_text(&view))?,
    }
    out.flush()?;
    Ok(())
}

fn write_file(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write(&mut w).and_then(|()| w.flush()).with_context(|| format!("cannot write {}", path.display()))
}
