//! Failure artifacts: one self-contained directory per failing run, holding everything a
//! developer needs to reproduce and study it without the campaign that found it.
//!
//! ```text
//! artifact.json   seed, scenario (name and every field), build, trace hash, verdict, replay
//! scenario.toml   the scenario as a scenario file (when the binary installed a writer)
//! history.jsonl   the client history (docs/history-format.md)
//! watches.jsonl   the watch streams
//! trace.jsonl     the trace, each line with the running trace hash after it
//! faults.jsonl    the faults that ran, in time order, with their ends where they have one
//! events.jsonl    cluster events for the checkers
//! summary.json    the run's report
//! ```
//!
//! docs/artifacts.md describes every file. This module writes and reads artifacts; replaying
//! one is `sim::replay`. It runs nothing itself.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::report::{Artifacts, RunReport};
use crate::scenario::Scenario;
use crate::trace::{hash_hex, TraceLine};

/// The artifact layout's version; readers refuse a newer one.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;

/// The build that produced an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The workspace version.
    pub version: String,
    /// The commit built (`DETCD_GIT_HASH` or `git rev-parse HEAD` at build time; `unknown`
    /// outside a checkout).
    pub git_hash: String,
    /// `release` or `debug`.
    pub profile: String,
    /// Whether the engine's bug zoo was compiled in.
    pub bug_zoo: bool,
}

impl BuildInfo {
    /// This build.
    pub fn current() -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            git_hash: env!("DETCD_GIT_HASH").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            bug_zoo: engine::zoo::COMPILED_IN,
        }
    }
}

/// One failure of the run, as the artifact records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The check that failed (`linearizability`, `liveness`, `simulator_panic`, ...).
    pub check: String,
    /// Simulated time of the failure (ns).
    pub time_ns: u64,
    /// The smallest window of operation ids that shows it (empty for trace-level checks).
    pub window: Vec<u64>,
    /// The checker's explanation.
    pub explanation: String,
}

/// The verdict part of an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictRecord {
    /// `pass` or `fail`, judged against the scenario's expectation.
    pub verdict: String,
    /// What the checks found before that comparison.
    pub checks_verdict: String,
    /// What the scenario expects.
    pub expected_verdict: String,
    /// Every failure, in the report's order.
    pub failures: Vec<FailureRecord>,
}

/// `artifact.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMeta {
    /// `ARTIFACT_FORMAT_VERSION` of the writer.
    pub format_version: u32,
    /// The seed.
    pub seed: u64,
    /// The scenario's name.
    pub scenario_name: String,
    /// The scenario, every field (what replay runs; `scenario.toml` is the same for people).
    pub scenario: Scenario,
    /// The build that ran it.
    pub build: BuildInfo,
    /// The run's trace hash (16 hex digits).
    pub trace_hash: String,
    /// The verdict with the checkers' windows and explanations.
    pub verdict: VerdictRecord,
    /// Operations in the history.
    pub ops_count: u64,
    /// Faults in `faults.jsonl`.
    pub faults_count: u64,
    /// Simulated time at the end (ms).
    pub sim_ms: u64,
    /// The command that runs the seed again from the library or file scenario.
    pub run_command: String,
    /// The command that replays this artifact.
    pub replay_command: String,
}

/// One fault that ran, from the trace: its kind, the member it hit (if one), when it started
/// and, for faults that last, when it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// `partition`, `crash`, `crash_point`, `pause`, `disk`, `clock` or `figure_eight`.
    pub kind: String,
    /// The member it hit (1-based id), when it hit one.
    pub member: Option<u64>,
    /// When it started (simulated ns).
    pub start_ns: u64,
    /// When it ended: the partition healed, the member restarted or resumed; `None` for
    /// instant faults and for ones still in effect at the end.
    pub end_ns: Option<u64>,
    /// The trace line that started it, without its time.
    pub detail: String,
}

/// Resolves a scenario to TOML text; installed by the binary (`scenarios::to_toml`), which
/// this crate cannot call itself (`scenarios` depends on `sim`).
pub type ScenarioWriter = fn(&Scenario) -> String;

static SCENARIO_WRITER: std::sync::OnceLock<ScenarioWriter> = std::sync::OnceLock::new();

/// Installs how artifacts write `scenario.toml`. The first call wins; without one, artifacts
/// carry the scenario in `artifact.json` only.
pub fn set_scenario_writer(writer: ScenarioWriter) {
    let _first_wins = SCENARIO_WRITER.set(writer);
}

/// The member id in a trace text such as `n3 crash`, if it starts with one.
fn member_of(text: &str) -> Option<u64> {
    text.strip_prefix('n')?.split(' ').next()?.parse().ok()
}

/// The text of a trace line after its `t=...s ` prefix.
fn body(line: &TraceLine) -> &str {
    line.text.split_once(' ').map_or("", |(_, rest)| rest)
}

/// What kind of fault a trace line starts, if any.
fn fault_kind(text: &str) -> Option<&'static str> {
    let after_member = match member_of(text) {
        Some(_) => text.split_once(' ').map_or("", |(_, rest)| rest),
        None => text,
    };
    let kind = if text.starts_with("partition ") && text != "partition healed" {
        "partition"
    } else if text.starts_with("figure_eight start") {
        "figure_eight"
    } else if after_member == "crash" {
        "crash"
    } else if after_member.starts_with("crash point armed") {
        "crash_point"
    } else if after_member.starts_with("pause ") {
        "pause"
    } else if after_member.starts_with("disk ") {
        "disk"
    } else if after_member.starts_with("clock ") {
        "clock"
    } else {
        return None;
    };
    Some(kind)
}

/// A label for the fault a trace text (after its time) starts, naming its kind and variant:
/// `partition isolate_leader`, `disk bit_flip`, `crash_point vote_sent`, `clock jump`,
/// `crash`, `pause`, `figure_eight`; `None` when the line starts no fault.
pub fn fault_label(text: &str) -> Option<String> {
    let kind = fault_kind(text)?;
    let after_member = match member_of(text) {
        Some(_) => text.split_once(' ').map_or("", |(_, rest)| rest),
        None => text,
    };
    let variant = match kind {
        "partition" => after_member.split(' ').nth(1),
        "disk" | "clock" => after_member.split(' ').nth(1),
        "crash_point" => after_member.rsplit(' ').next(),
        _ => None,
    };
    Some(match variant {
        Some(variant) => format!("{kind} {variant}"),
        None => kind.to_string(),
    })
}

/// The faults that ran, read off the trace: a partition ends when it heals, a crash when the
/// member restarts, a pause when it resumes, a Figure-8 schedule when it ends or gives up.
/// Refused faults are left out (they did not run).
pub fn fault_schedule(trace: &[TraceLine]) -> Vec<FaultRecord> {
    let mut faults: Vec<FaultRecord> = Vec::new();
    for line in trace {
        let text = body(line);
        let time = line.time.0;
        if let Some(kind) = fault_kind(text) {
            faults.push(FaultRecord {
                kind: kind.to_string(),
                member: member_of(text),
                start_ns: time,
                end_ns: None,
                detail: text.to_string(),
            });
            continue;
        }
        let ends: Option<(&str, Option<u64>)> = if text == "partition healed"
            || text.starts_with("heal core=")
        {
            Some(("partition", None))
        } else if text.starts_with("figure_eight gives up") || text.starts_with("figure_eight end")
        {
            Some(("figure_eight", None))
        } else if let Some(member) = member_of(text) {
            let rest = text.split_once(' ').map_or("", |(_, rest)| rest);
            if rest.starts_with("restart ") {
                Some(("crash", Some(member)))
            } else if rest.starts_with("resume ") {
                Some(("pause", Some(member)))
            } else {
                None
            }
        } else {
            None
        };
        if let Some((kind, member)) = ends {
            if let Some(open) = faults.iter_mut().rev().find(|fault| {
                fault.kind == kind && fault.member == member && fault.end_ns.is_none()
            }) {
                open.end_ns = Some(time);
            }
        }
    }
    faults
}

/// The artifact's metadata for a run of `scenario`, whose artifacts land in `dir`.
pub fn meta(
    scenario: &Scenario,
    report: &RunReport,
    faults_count: u64,
    dir: &Path,
) -> ArtifactMeta {
    ArtifactMeta {
        format_version: ARTIFACT_FORMAT_VERSION,
        seed: report.seed,
        scenario_name: scenario.name.clone(),
        scenario: scenario.clone(),
        build: BuildInfo::current(),
        trace_hash: report.trace_hash.clone(),
        verdict: VerdictRecord {
            verdict: report.verdict.name().to_string(),
            checks_verdict: report.checks_verdict.name().to_string(),
            expected_verdict: report.expected_verdict.name().to_string(),
            failures: report
                .failures
                .iter()
                .map(|failure| FailureRecord {
                    check: failure.check.clone(),
                    time_ns: failure.time_ns,
                    window: failure.window.clone(),
                    explanation: failure.message.clone(),
                })
                .collect(),
        },
        ops_count: report.counts.ops,
        faults_count,
        sim_ms: report.sim_ms,
        run_command: report.replay.clone(),
        replay_command: format!("detcd sim replay {}", dir.display()),
    }
}

/// Writes a run of `scenario` as an artifact directory `dir` (created if missing). `artifacts`
/// must have been kept (`RunOptions::keep_artifacts`).
pub fn write(
    dir: &Path,
    scenario: &Scenario,
    report: &RunReport,
    artifacts: &Artifacts,
    wall_ms: u64,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_lines(
        &dir.join("history.jsonl"),
        artifacts.history.iter().cloned(),
    )?;
    write_lines(
        &dir.join("watches.jsonl"),
        artifacts.watches.iter().cloned(),
    )?;
    write_lines(
        &dir.join("trace.jsonl"),
        artifacts.trace.iter().map(trace_json),
    )?;
    write_lines(&dir.join("events.jsonl"), artifacts.events.iter().cloned())?;
    let faults = fault_schedule(&artifacts.trace);
    write_lines(
        &dir.join("faults.jsonl"),
        faults
            .iter()
            .map(|fault| serde_json::to_string(fault).expect("a fault serialises")),
    )?;
    std::fs::write(
        dir.join("summary.json"),
        format!("{:#}\n", report.to_json(wall_ms)),
    )?;
    if let Some(writer) = SCENARIO_WRITER.get() {
        std::fs::write(dir.join("scenario.toml"), writer(scenario))?;
    }
    let meta = meta(scenario, report, faults.len() as u64, dir);
    std::fs::write(
        dir.join("artifact.json"),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&meta).expect("artifact metadata serialises")
        ),
    )
}

/// A trace line as `trace.jsonl` holds it.
pub fn trace_json(line: &TraceLine) -> String {
    json!({"time_ns": line.time.0, "line": line.text, "hash": hash_hex(line.hash)}).to_string()
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.flush()
}

/// Why an artifact could not be read; the message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The directory or one of its files is missing or unreadable.
    #[error("{path}: cannot read: {error} (an artifact is a directory written by `detcd sim fuzz --out` or `sim run --out`)")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file is not what the format says.
    #[error("{path}: line {line}: {message}")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// 1-based line (1 for whole-file JSON).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One line of a recorded `trace.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RecordedLine {
    /// Simulated time (ns).
    pub time_ns: u64,
    /// The text.
    pub line: String,
    /// The running hash after it (16 hex digits).
    pub hash: String,
}

/// Reads `artifact.json` of the artifact directory `dir`.
pub fn read_meta(dir: &Path) -> Result<ArtifactMeta, ArtifactError> {
    if !dir.is_dir() {
        return Err(ArtifactError::Unreadable {
            path: dir.to_path_buf(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let path = dir.join("artifact.json");
    let text = std::fs::read_to_string(&path).map_err(|error| ArtifactError::Unreadable {
        path: path.clone(),
        error,
    })?;
    let meta: ArtifactMeta =
        serde_json::from_str(&text).map_err(|error| ArtifactError::Corrupt {
            path: path.clone(),
            line: error.line(),
            message: error.to_string(),
        })?;
    if meta.format_version > ARTIFACT_FORMAT_VERSION {
        return Err(ArtifactError::Corrupt {
            path,
            line: 1,
            message: format!(
                "artifact format {} is newer than this build reads ({ARTIFACT_FORMAT_VERSION}): use a newer detcd",
                meta.format_version
            ),
        });
    }
    Ok(meta)
}

/// Reads the JSON lines of `file` in `dir` as values of `T`, naming the line of any bad one.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(
    dir: &Path,
    file: &str,
) -> Result<Vec<T>, ArtifactError> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|error| ArtifactError::Unreadable {
        path: path.clone(),
        error,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| ArtifactError::Corrupt {
                path: path.clone(),
                line: index + 1,
                message: error.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{fault_schedule, member_of};
    use crate::trace::TraceLine;
    use engine::types::Instant;

    fn line(time_ns: u64, text: &str) -> TraceLine {
        TraceLine {
            time: Instant(time_ns),
            text: format!("t=0.000s {text}"),
            hash: 0,
        }
    }

    /// Goal: the fault schedule holds the faults that ran with their ends, and leaves out
    /// what is not a fault (refusals, restarts, leaders). Method: a hand-written trace.
    #[test]
    fn fault_schedule_pairs_starts_with_ends() {
        let trace = [
            line(1, "n1 start incarnation=0 disk_bytes=0 notes=0"),
            line(2, "n3 crash"),
            line(3, "partition isolate_leader cut=n1->n3"),
            line(4, "fault refused pause (budget)"),
            line(5, "n2 pause ms=100"),
            line(6, "n2 resume buffered=0"),
            line(7, "partition healed"),
            line(8, "n3 restart incarnation=1 disk_bytes=10 notes=0"),
            line(9, "n4 disk bit_flip file=wal offset=3 bit=0"),
            line(10, "n5 crash"),
        ];
        let faults = fault_schedule(&trace);
        let summary: Vec<(String, Option<u64>, u64, Option<u64>)> = faults
            .iter()
            .map(|fault| {
                (
                    fault.kind.clone(),
                    fault.member,
                    fault.start_ns,
                    fault.end_ns,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("crash".to_string(), Some(3), 2, Some(8)),
                ("partition".to_string(), None, 3, Some(7)),
                ("pause".to_string(), Some(2), 5, Some(6)),
                ("disk".to_string(), Some(4), 9, None),
                ("crash".to_string(), Some(5), 10, None),
            ]
        );
        assert_eq!(member_of("n12 crash"), Some(12));
        assert_eq!(member_of("partition healed"), None);
    }
}
