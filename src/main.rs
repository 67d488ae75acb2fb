//! The `overreach` command line: a thin layer over the library.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use overreach::backtest;
use overreach::decode::{Format, Limits};
use overreach::engine::EngineConfig;
use overreach::ocsf::{self, AlertFormat};
use overreach::replay::{self, ReplayOptions};
use overreach::simulate::{self, EventFormat, SimConfig};
use std::fs::File;
use std::io::{BufWriter, Write};
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
    /// Detection settings: a TOML file whose `[engine]` table sets any EngineConfig key.
    #[arg(long)]
    config: Option<String>,
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
        Some(p) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("cannot write {p}"))?))
        }
        None => default,
    })
}

fn replay(args: ReplayArgs) -> anyhow::Result<std::process::ExitCode> {
    let engine = engine_config(&args.config)?;
    let opts = ReplayOptions {
        inputs: args.files,
        format: args.format,
        grants: args.grants,
        policy: args.policy,
        limits: Limits { max_line_bytes: args.max_line_bytes, ..Limits::default() },
        lateness_ms: args.lateness_s * 1000,
        state_in: args.state_in,
        state_out: args.state_out,
        engine: args.engine.apply(engine),
        progress: !args.quiet,
    };
    let mut alerts = output(&args.alerts_out, Box::new(std::io::BufWriter::new(std::io::stdout().lock())))?;
    let mut rejects = output(&args.rejects_out, Box::new(std::io::stderr()))?;
    let format = args.alert_format;
    let summary = replay::run(&opts, &mut alerts, &mut rejects, &|a| ocsf::render(a, format))?;
    eprintln!("{}", summary.render());
    for e in &summary.read_errors {
        eprintln!("overreach: {e}");
    }
    Ok(if summary.read_errors.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
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
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Detection settings: a TOML file whose `[engine]` table sets any EngineConfig key.
    #[arg(long)]
    config: Option<String>,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay(args),
        Command::Simulate(args) => simulate_command(args).map(|()| ExitCode::SUCCESS),
        Command::Backtest(args) => backtest_command(args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => overreach::service::command(&args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => overreach::demo::command(&args).map(|()| ExitCode::SUCCESS),
    }
}

fn simulate_command(args: SimulateArgs) -> anyhow::Result<()> {
    let config = SimConfig { identities: args.identities, days: args.days, seed: args.seed, ..SimConfig::default() };
    let sim = simulate::generate(&config);
    write_file(&args.out, |w| simulate::write_events(&sim.events, args.format, w))?;
    let grants = match args.format {
        EventFormat::Native => sim.grants.clone(),
        EventFormat::Cloudtrail => simulate::cloudtrail::grants(&sim.grants),
    };
    write_file(&args.grants_out, |w| simulate::write_json_lines(&grants, w))?;
    write_file(&args.labels_out, |w| simulate::write_json_lines(&sim.labels, w))?;
    eprintln!(
        "{} events, {} grant and lifecycle events, {} incidents",
        sim.events.len(),
        sim.grants.len(),
        sim.labels.len()
    );
    Ok(())
}

/// Detection settings from the `[engine]` table of a TOML file, or the defaults.
fn engine_config(path: &Option<String>) -> anyhow::Result<EngineConfig> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
            overreach::engine::config_from_toml(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))
        }
        None => Ok(EngineConfig::default()),
    }
}

fn backtest_command(args: BacktestArgs) -> anyhow::Result<()> {
    let inputs = backtest::Inputs { events: args.events, labels: args.labels, grants: args.grants };
    let report = backtest::run(&inputs, engine_config(&args.config)?)?;
    for reject in &report.input.first_rejects {
        eprintln!("{reject}");
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

fn write_file(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write(&mut w).and_then(|()| w.flush()).with_context(|| format!("cannot write {}", path.display()))
}
