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
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
