//! The `detcd sim` subcommands that work on what runs leave behind: `replay` an artifact.
//! Wiring only: each delegates to a library crate.

use std::path::PathBuf;

use clap::Subcommand;

/// Subcommands over artifacts and campaign outputs, flattened into `detcd sim`.
#[derive(Subcommand, Debug)]
pub(crate) enum ToolCommand {
    /// Re-run a failure artifact (a directory written by `sim fuzz --out` or `sim run --out`)
    /// and say "reproduced: same trace hash" or where the two traces first differ. Exit
    /// status: 0 reproduced, 1 diverged, 2 the artifact is missing or corrupt.
    Replay {
        /// The artifact directory (holds artifact.json).
        artifact: PathBuf,
    },
}

/// Runs one of the subcommands; returns the exit status.
pub(crate) fn run(command: ToolCommand) -> i32 {
    match command {
        ToolCommand::Replay { artifact } => sim::replay::replay_command(&artifact),
    }
}

/// Installs the hooks the simulator's artifacts need from other crates.
pub(crate) fn install() {
    sim::artifact::set_scenario_writer(|scenario| scenarios::to_toml(scenario, None));
}
