//! Failure artifacts and their replay: what an artifact directory holds, that replaying it
//! reproduces the run, that a changed run is located at its first differing trace line, and
//! that bad artifacts get a clear error.

use std::path::{Path, PathBuf};

use sim::artifact::{read_jsonl, read_meta, FaultRecord, RecordedLine};
use sim::replay::{replay, replay_command, ReplayError, ReplayOutcome};
use sim::{run, RunOptions, Scenario};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detcd-artifacts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Writes seed `seed` of the crash/restart scenario as an artifact in `dir`.
fn write_artifact(dir: &Path, seed: u64) -> sim::RunReport {
    let scenario = Scenario::by_name("crash_restart").expect("built-in");
    let (report, artifacts) = run(
        &scenario,
        seed,
        RunOptions {
            keep_artifacts: true,
        },
    );
    sim::artifact::write(dir, &scenario, &report, &artifacts, 0).expect("artifact written");
    report
}

/// Goal: an artifact holds the metadata (seed, scenario, build, trace hash, verdict), the
/// history, the watches, the trace whose last running hash is the run's, and the faults that
/// ran. Method: write one, read every file back and compare with the report.
#[test]
fn artifact_holds_the_run() {
    let dir = scratch("holds");
    let report = write_artifact(&dir, 3);
    let meta = read_meta(&dir).expect("artifact.json reads back");
    assert_eq!(meta.seed, 3);
    assert_eq!(meta.scenario_name, "crash_restart");
    assert_eq!(meta.scenario, Scenario::by_name("crash_restart").unwrap());
    assert_eq!(meta.trace_hash, report.trace_hash);
    assert_eq!(meta.verdict.verdict, report.verdict.name());
    assert!(!meta.build.version.is_empty() && !meta.build.git_hash.is_empty());
    assert!(meta.replay_command.starts_with("detcd sim replay "));
    let trace: Vec<RecordedLine> = read_jsonl(&dir, "trace.jsonl").unwrap();
    assert_eq!(trace.last().unwrap().hash, report.trace_hash);
    let faults: Vec<FaultRecord> = read_jsonl(&dir, "faults.jsonl").unwrap();
    assert_eq!(faults.len() as u64, meta.faults_count);
    let crashes = faults.iter().filter(|fault| fault.kind == "crash").count() as u64;
    assert!(crashes > 0 && crashes <= report.counts.crashes);
    assert!(faults
        .windows(2)
        .all(|pair| pair[0].start_ns <= pair[1].start_ns));
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count() as u64, report.counts.ops);
    assert!(dir.join("watches.jsonl").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Goal: replaying an artifact reproduces the same trace hash (exit 0), and a run that differs
/// (here: the recorded scenario edited to one more client) is reported as diverged at the
/// first differing line, with both sides shown (exit 1). Method: write, replay, edit, replay.
#[test]
fn replay_reproduces_and_locates_divergence() {
    let dir = scratch("replay");
    write_artifact(&dir, 5);
    let (_, outcome, _) = replay(&dir).expect("replays");
    assert!(
        matches!(outcome, ReplayOutcome::Reproduced { .. }),
        "{outcome:?}"
    );
    assert_eq!(replay_command(&dir), 0);

    let path = dir.join("artifact.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let clients = meta["scenario"]["workload"]["client_count"]
        .as_u64()
        .unwrap();
    meta["scenario"]["workload"]["client_count"] = (clients + 1).into();
    std::fs::write(&path, meta.to_string()).unwrap();
    let (_, outcome, _) = replay(&dir).expect("replays");
    let ReplayOutcome::Diverged {
        divergence,
        recorded_hash,
        replayed_hash,
    } = outcome
    else {
        panic!("a different scenario must diverge");
    };
    assert_ne!(recorded_hash, replayed_hash);
    let recorded: Vec<RecordedLine> = read_jsonl(&dir, "trace.jsonl").unwrap();
    assert!(divergence.index > 0, "the start line is the same");
    assert_eq!(divergence.recorded.as_ref(), recorded.get(divergence.index));
    assert!(divergence.replayed.is_some());
    assert_eq!(replay_command(&dir), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Goal: a missing directory, a corrupt artifact.json and a corrupt trace line are errors that
/// name the file (exit 2), never a panic or a pass. Method: replay each.
#[test]
fn bad_artifacts_get_clear_errors() {
    let missing = scratch("missing");
    let error = replay(&missing).unwrap_err().to_string();
    assert!(
        error.contains("cannot read") && error.contains("artifact"),
        "{error}"
    );
    assert_eq!(replay_command(&missing), 2);

    let dir = scratch("corrupt");
    write_artifact(&dir, 1);
    let trace = std::fs::read_to_string(dir.join("trace.jsonl")).unwrap();
    std::fs::write(dir.join("trace.jsonl"), trace.replacen('{', "{oops", 1)).unwrap();
    let error = replay(&dir).unwrap_err();
    assert!(matches!(error, ReplayError::Artifact(_)));
    assert!(error.to_string().contains("trace.jsonl: line 1"), "{error}");

    std::fs::write(dir.join("artifact.json"), "{\"seed\": 1,").unwrap();
    let error = replay(&dir).unwrap_err().to_string();
    assert!(error.contains("artifact.json"), "{error}");
    assert_eq!(replay_command(&dir), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
