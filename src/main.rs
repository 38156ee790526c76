//! The `detcd` command line: wiring only. Every subcommand delegates to a library crate.

use clap::{Parser, Subcommand};

/// detcd: a deterministic etcd-compatible store and the seeded simulator that checks it.
#[derive(Parser, Debug)]
#[command(name = "detcd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version of every component.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("detcd {}", env!("CARGO_PKG_VERSION"));
        }
    }
    Ok(())
}
