//! Shrinking (`sim::shrink`): a failing run shrinks to a smaller one that fails the same check,
//! every kept step says so, and the written artifact replays to the same failure.

use sim::artifact::read_meta;
use sim::replay::{replay, ReplayOutcome};
use sim::shrink::{shrink_command, target_check, RunSize, ShrinkArgs, Shrinker};
use sim::{run, RunOptions, Scenario, Verdict};

/// Corruption on every member (beyond the fault model), held to the ordinary expectation that
/// every check passes: its seeds fail liveness, a real failure with many faults and operations.
fn strict_corruption() -> Scenario {
    let mut scenario = Scenario::by_name("disk_corruption_on_a_majority").expect("built-in");
    scenario.name = "corruption_expected_to_pass".into();
    scenario.expected_verdict = Verdict::Pass;
    scenario.expected_failures.clear();
    scenario
}

/// Goal: the shrinker finds a run at least ten times smaller in operations, with at most five
/// faults, that still fails liveness, and every step it kept fails it too. Method: shrink seed
/// 2 with a generous budget; rerun the result and check the figures.
#[test]
fn shrinks_a_failing_run_and_keeps_the_check() {
    let scenario = strict_corruption();
    let (report, _) = run(&scenario, 2, RunOptions::default());
    let before = RunSize::of(&report);
    assert!(report
        .failures
        .iter()
        .any(|failure| failure.check == "liveness"));
    let mut shrinker =
        Shrinker::new(scenario, 2, "liveness".into(), 120.0, true).expect("it fails");
    shrinker.run_to_fixpoint();
    let (after_report, _) = run(shrinker.best(), 2, RunOptions::default());
    let after = RunSize::of(&after_report);
    assert_eq!(after, shrinker.best_size());
    assert!(after_report
        .failures
        .iter()
        .any(|failure| failure.check == "liveness"));
    assert!(
        after.faults <= 5,
        "faults {} -> {}",
        before.faults,
        after.faults
    );
    assert!(
        after.ops * 10 <= before.ops,
        "ops {} -> {}",
        before.ops,
        after.ops
    );
    assert!(!shrinker.steps.is_empty());
    assert!(shrinker
        .steps
        .iter()
        .all(|step| step.contains("still fails liveness")));
}

/// Goal: `sim shrink` writes a new artifact whose replay reproduces and whose verdict names the
/// same check, and refuses an artifact that no longer fails. Method: write an artifact, shrink
/// it, replay the result; then shrink a passing run's artifact.
#[test]
fn shrink_command_writes_a_replayable_artifact() {
    let root = std::env::temp_dir().join(format!("detcd-shrink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let failing = root.join("seed-1");
    let scenario = strict_corruption();
    let (report, artifacts) = run(
        &scenario,
        1,
        RunOptions {
            keep_artifacts: true,
        },
    );
    sim::artifact::write(&failing, &scenario, &report, &artifacts, 0).unwrap();
    let out = root.join("small");
    let status = shrink_command(&ShrinkArgs {
        artifact: failing.clone(),
        time: Some("60s".into()),
        out: Some(out.clone()),
        json: true,
    });
    assert_eq!(status, 0);
    let meta = read_meta(&out).expect("a shrunk artifact");
    assert_eq!(
        target_check(&meta.verdict.failures).as_deref(),
        Some("liveness")
    );
    assert!(meta.ops_count < report.counts.ops);
    let (_, outcome, _) = replay(&out).expect("replays");
    assert!(
        matches!(outcome, ReplayOutcome::Reproduced { .. }),
        "{outcome:?}"
    );

    let passing = root.join("passing");
    let fine = Scenario::by_name("no_faults").unwrap();
    let (report, artifacts) = run(
        &fine,
        1,
        RunOptions {
            keep_artifacts: true,
        },
    );
    sim::artifact::write(&passing, &fine, &report, &artifacts, 0).unwrap();
    let status = shrink_command(&ShrinkArgs {
        artifact: passing,
        time: Some("5s".into()),
        out: None,
        json: true,
    });
    assert_eq!(status, 2, "no failed check to keep");
    std::fs::remove_dir_all(&root).unwrap();
}
