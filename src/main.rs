//! The `overreach` command line: a thin layer over the library.

use clap::{Parser, Subcommand};

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
    /// Runs the Kafka service: access logs in, alerts out, at least once.
    Run(overreach::config::RunArgs),
    /// Streams a simulated fleet through the Kafka service on an embedded broker and prints the alerts.
    Demo(overreach::demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => overreach::service::command(&args),
        Command::Demo(args) => overreach::demo::command(&args),
    }
}
