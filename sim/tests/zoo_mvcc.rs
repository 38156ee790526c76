//! The bug zoo's MVCC, watch and apply defects are caught by the simulated campaign, each within
//! a bounded number of seeds.
//!
//! Goal: prove that the widened workload (compactions, past revisions, limits, every compare
//! target, range deletes, watches from old revisions with prev_kv, bookmarks and backpressure)
//! and the checkers reach and judge each of these defects, and keep proving it as the code
//! moves. Method: for each bug, run seeds of the scenario `detcd sim hunt` uses for it
//! (`hunt::scenario_for`) with only that bug switched on, until a seed fails with a definite
//! verdict (a checker that gave up does not count, as in the hunt); the catch must come within
//! the bug's seed bound. The catching seed is then run again with the bug off and must not fail
//! the same way, so the catch is the bug's doing and not a fault of the correct engine.
//!
//! The bounds are about twice the seeds the hunt needed when they were set, so that unrelated
//! changes to the simulator (which reshuffle every seed) do not turn this red by chance, while a
//! change that makes a bug unreachable does. The whole file runs in well under a minute in
//! release on one core.
#![cfg(feature = "bug-zoo")]

use engine::zoo::{Bug, BugSet};
use sim::hunt::{definite_failure, scenario_for};
use sim::{run, RunOptions, Scenario};

/// The bugs this file answers for, with the most seeds each may take to be caught.
const BUGS: [(Bug, u64); 9] = [
    (Bug::RevisionRegressionAfterCompaction, 300),
    (Bug::WatchResentAfterRestore, 60),
    (Bug::ProgressAheadOfEvents, 400),
    (Bug::SlowWatcherGap, 20),
    (Bug::CompactionEatsDeleteEvent, 30),
    (Bug::TxnCompareWrongField, 10),
    (Bug::DeleteMissingBumpsRevision, 10),
    (Bug::CountCutByLimit, 10),
    (Bug::DuplicateApplyOfRetry, 10),
];

/// The first seed below `seeds_max` at which `bug` is caught, with the check that caught it.
fn first_catch(bug: Bug, seeds_max: u64) -> Option<(u64, String)> {
    let mut scenario = Scenario::by_name(scenario_for(bug)).expect("a built-in scenario");
    scenario.member.bugs = BugSet::of(bug);
    (0..seeds_max).find_map(|seed| {
        let (report, _) = run(&scenario, seed, RunOptions::default());
        definite_failure(&report).map(|failure| (seed, failure.check.clone()))
    })
}

#[test]
fn every_mvcc_and_watch_bug_is_caught_within_its_bound() {
    // Member panics are findings here (the run records them); printing each would bury the
    // test's own output.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut escaped = Vec::new();
    for (bug, seeds_max) in BUGS {
        match first_catch(bug, seeds_max) {
            None => escaped.push(format!("{} escaped {seeds_max} seeds", bug.name())),
            Some((seed, check)) => {
                let scenario = Scenario::by_name(scenario_for(bug)).expect("built in");
                let (clean, _) = run(&scenario, seed, RunOptions::default());
                let clean_failure = definite_failure(&clean).map(|failure| failure.check.clone());
                if clean_failure.as_deref() == Some(check.as_str()) {
                    escaped.push(format!(
                        "{}: seed {seed} fails by {check} with the bug off too",
                        bug.name()
                    ));
                }
            }
        }
    }
    std::panic::set_hook(previous_hook);
    assert!(escaped.is_empty(), "{escaped:#?}");
}
