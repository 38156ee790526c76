//! `detcd sim replay ARTIFACT_DIR`: runs an artifact's seed and scenario again and says whether
//! the run is the same one ("reproduced: same trace hash") or, when the build changed
//! behaviour, where the two traces first part: the index of the first line whose running hash
//! differs and that line on both sides.
//!
//! It reads artifacts (`sim::artifact`) and runs one seed; it never writes into the artifact.

use std::path::Path;

use crate::artifact::{
    read_jsonl, read_meta, trace_json, ArtifactError, ArtifactMeta, RecordedLine,
};
use crate::report::{run, RunOptions, RunReport};

/// Where two traces first differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The 0-based index of the first differing line (equal to the shorter length when one
    /// trace is a prefix of the other, or to both lengths when only the hidden lines after the
    /// last kept one differ).
    pub index: usize,
    /// The recorded line there, if the recorded trace reaches it.
    pub recorded: Option<RecordedLine>,
    /// The replayed line there, if the replayed trace reaches it.
    pub replayed: Option<RecordedLine>,
}

/// What a replay found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The same trace hash: the run was reproduced event for event.
    Reproduced {
        /// The hash both runs had.
        trace_hash: String,
    },
    /// The trace hashes differ.
    Diverged {
        /// The artifact's hash.
        recorded_hash: String,
        /// This build's hash.
        replayed_hash: String,
        /// Where the traces first differ.
        divergence: Divergence,
    },
}

/// The first line where `recorded` and `replayed` differ, comparing running hashes (which
/// also cover the hidden history lines and facts hashed between two trace lines), or `None`
/// when every line and the length agree.
pub fn first_divergence(
    recorded: &[RecordedLine],
    replayed: &[RecordedLine],
) -> Option<Divergence> {
    let index = recorded
        .iter()
        .zip(replayed)
        .position(|(left, right)| left.hash != right.hash || left.line != right.line)
        .unwrap_or(recorded.len().min(replayed.len()));
    if index == recorded.len() && index == replayed.len() {
        return None;
    }
    Some(Divergence {
        index,
        recorded: recorded.get(index).cloned(),
        replayed: replayed.get(index).cloned(),
    })
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The artifact is missing or corrupt.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The artifact needs zoo bugs this build does not have.
    #[error("the artifact switches on zoo bugs ({0}): replay it with a build made with `--features bug-zoo`")]
    NeedsBugZoo(String),
}

/// Replays the artifact in `dir`: runs its seed of its scenario and compares traces.
pub fn replay(dir: &Path) -> Result<(ArtifactMeta, ReplayOutcome, RunReport), ReplayError> {
    let meta = read_meta(dir)?;
    let recorded: Vec<RecordedLine> = read_jsonl(dir, "trace.jsonl")?;
    let bugs: Vec<&str> = meta
        .scenario
        .member
        .bugs
        .bugs()
        .map(|bug| bug.name())
        .collect();
    if !bugs.is_empty() && !engine::zoo::COMPILED_IN {
        return Err(ReplayError::NeedsBugZoo(bugs.join(", ")));
    }
    let (report, artifacts) = run(
        &meta.scenario,
        meta.seed,
        RunOptions {
            keep_artifacts: true,
        },
    );
    let outcome = if report.trace_hash == meta.trace_hash {
        ReplayOutcome::Reproduced {
            trace_hash: report.trace_hash.clone(),
        }
    } else {
        let replayed: Vec<RecordedLine> = artifacts
            .trace
            .iter()
            .map(|line| serde_json::from_str(&trace_json(line)).expect("a trace line reads back"))
            .collect();
        let divergence = first_divergence(&recorded, &replayed).unwrap_or(Divergence {
            index: recorded.len(),
            recorded: None,
            replayed: None,
        });
        ReplayOutcome::Diverged {
            recorded_hash: meta.trace_hash.clone(),
            replayed_hash: report.trace_hash.clone(),
            divergence,
        }
    };
    Ok((meta, outcome, report))
}

fn describe_side(line: Option<&RecordedLine>) -> String {
    match line {
        Some(line) => format!("{} (running hash {})", line.line, line.hash),
        None => "<the trace ends before this line>".to_string(),
    }
}

/// The text `detcd sim replay` prints for an outcome.
pub fn describe(meta: &ArtifactMeta, outcome: &ReplayOutcome, report: &RunReport) -> String {
    let mut text = format!(
        "artifact: scenario={} seed={} recorded by detcd {} ({}, {})\n",
        meta.scenario_name, meta.seed, meta.build.version, meta.build.git_hash, meta.build.profile
    );
    match outcome {
        ReplayOutcome::Reproduced { trace_hash } => {
            text.push_str(&format!("reproduced: same trace hash {trace_hash}\n"));
        }
        ReplayOutcome::Diverged {
            recorded_hash,
            replayed_hash,
            divergence,
        } => {
            text.push_str(&format!(
                "diverged: trace hash {replayed_hash} now, {recorded_hash} recorded\n"
            ));
            if divergence.recorded.is_none() && divergence.replayed.is_none() {
                text.push_str(&format!(
                    "every one of the {} kept trace lines agrees; the runs differ in lines the trace does not keep after line {}\n",
                    divergence.index, divergence.index
                ));
            } else {
                text.push_str(&format!(
                    "first difference at trace line {}:\n  recorded: {}\n  replayed: {}\n",
                    divergence.index,
                    describe_side(divergence.recorded.as_ref()),
                    describe_side(divergence.replayed.as_ref()),
                ));
            }
        }
    }
    let failures: Vec<&str> = report
        .failures
        .iter()
        .map(|failure| failure.check.as_str())
        .collect();
    text.push_str(&format!(
        "verdict now: {} (recorded: {}){}\n",
        report.verdict.name(),
        meta.verdict.verdict,
        if failures.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failures.join(", "))
        }
    ));
    text
}

/// Runs `detcd sim replay DIR`; returns the exit status: 0 reproduced, 1 diverged, 2 the
/// artifact could not be read (missing, corrupt, or needs the bug zoo).
pub fn replay_command(dir: &Path) -> i32 {
    match replay(dir) {
        Ok((meta, outcome, report)) => {
            print!("{}", describe(&meta, &outcome, &report));
            match outcome {
                ReplayOutcome::Reproduced { .. } => 0,
                ReplayOutcome::Diverged { .. } => 1,
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            2
        }
    }
}
