//! The `detcd sim` subcommands that work on what runs leave behind: `replay` an artifact,
//! `report` on a campaign or a run, `merge` shards.
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
    /// Regenerate the reports of a `sim fuzz --out DIR` (report.html, junit.xml, report.json,
    /// and a page per failing seed) or the page of a `sim run --out DIR` artifact. Exit status:
    /// 0 every seed passed, 1 some failed, 2 unreadable input.
    Report {
        /// The campaign or artifact directory.
        dir: PathBuf,
        /// Write the campaign report here instead of into DIR.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Combine the outputs of shards (`sim fuzz --shard i/n --out DIR`, of one scenario or
    /// many) into one campaign report and exit status: 0 every seed of every shard passed,
    /// 1 some seed failed, 2 unreadable input.
    Merge {
        /// The shards' output directories (each holds campaign.json).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write report.html, junit.xml and report.json.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs one of the subcommands; returns the exit status.
pub(crate) fn run(command: ToolCommand) -> i32 {
    match command {
        ToolCommand::Replay { artifact } => sim::replay::replay_command(&artifact),
        ToolCommand::Report { dir, out } => {
            let out = out.unwrap_or_else(|| dir.clone());
            reports::report_command(&[dir], &out, &marks_declared())
        }
        ToolCommand::Merge { dirs, out } => reports::report_command(&dirs, &out, &marks_declared()),
    }
}

/// Every coverage mark, so that reports can list the ones a campaign never hit.
fn marks_declared() -> Vec<&'static str> {
    engine::marks::Mark::ALL
        .iter()
        .map(|mark| mark.name())
        .collect()
}

/// After `sim fuzz --out DIR` finished (exit status `status`), writes its campaign report into
/// DIR; stdout stays as the campaign left it (it may be one JSON object), so this speaks on
/// stderr. A report that cannot be written turns a pass into a usage error.
pub(crate) fn campaign_reports(out: Option<&std::path::Path>, status: i32) -> i32 {
    let Some(dir) = out else {
        return status;
    };
    if !dir.join("campaign.json").exists() {
        return status;
    }
    match reports::write_reports(&[dir.to_path_buf()], dir, &marks_declared()) {
        Ok(_) => {
            eprintln!("report: {}", dir.join("report.html").display());
            status
        }
        Err(error) => {
            eprintln!("error: {error}");
            status.max(2)
        }
    }
}

/// Installs the hooks the simulator's artifacts need from other crates.
pub(crate) fn install() {
    sim::artifact::set_scenario_writer(|scenario| scenarios::to_toml(scenario, None));
}
