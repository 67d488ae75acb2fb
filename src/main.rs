//! The `overreach` command line: a thin layer over the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use overreach::backtest;
use overreach::engine::EngineConfig;
use overreach::simulate::{self, EventFormat, SimConfig};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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
    /// Simulate a labelled fleet of delegated machine identities.
    Simulate(SimulateArgs),
    /// Score the engine and a first-seen reference rule against labelled events.
    Backtest(BacktestArgs),
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
    #[arg(long)]
    events: PathBuf,
    #[arg(long)]
    labels: PathBuf,
    #[arg(long)]
    grants: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => simulate_command(args),
        Command::Backtest(args) => backtest_command(args),
    }
}

fn simulate_command(args: SimulateArgs) -> anyhow::Result<()> {
    let config = SimConfig { identities: args.identities, days: args.days, seed: args.seed, ..SimConfig::default() };
    let sim = simulate::generate(&config);
    write_file(&args.out, |w| simulate::write_events(&sim.events, args.format, w))?;
    write_file(&args.grants_out, |w| simulate::write_json_lines(&sim.grants, w))?;
    write_file(&args.labels_out, |w| simulate::write_json_lines(&sim.labels, w))?;
    eprintln!(
        "{} events, {} grant and lifecycle events, {} incidents",
        sim.events.len(),
        sim.grants.len(),
        sim.labels.len()
    );
    Ok(())
}

fn backtest_command(args: BacktestArgs) -> anyhow::Result<()> {
    let inputs = backtest::Inputs { events: args.events, labels: args.labels, grants: args.grants };
    let report = backtest::run(&inputs, EngineConfig::default())?;
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
