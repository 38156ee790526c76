//! The bug zoo is absent from a normal build: whatever bugs a run names, the engine behaves as
//! the correct one, event for event.
//!
//! Only compiled without the `bug-zoo` feature (with it, the zoo tests prove the opposite).
#![cfg(not(feature = "bug-zoo"))]

use engine::zoo::{Bug, BugSet};
use sim::{run, RunOptions, Scenario};

/// Goal: a normal build has no zoo bug: not one site can be switched on. Method: run seeds of
/// the default and crash scenarios with every bug of the zoo named in the members' config, and
/// require the same trace hash, verdict and operation count as the run with none. A single
/// live defect site would change some event and so the hash.
#[test]
fn naming_every_bug_changes_nothing_in_a_normal_build() {
    const { assert!(!engine::zoo::COMPILED_IN) };
    let every_bug = Bug::ALL
        .into_iter()
        .fold(BugSet::EMPTY, |set, bug| set.with(bug));
    for (scenario, seed) in [
        (Scenario::default_scenario(), 5_u64),
        (Scenario::crash_restart(), 6),
    ] {
        let (correct, _) = run(&scenario, seed, RunOptions::default());
        let mut bugged_scenario = scenario.clone();
        bugged_scenario.member.bugs = every_bug;
        let (bugged, _) = run(&bugged_scenario, seed, RunOptions::default());
        assert_eq!(
            bugged.trace_hash, correct.trace_hash,
            "{} seed {seed}",
            scenario.name
        );
        assert_eq!(bugged.verdict, correct.verdict);
        assert_eq!(bugged.counts.ops, correct.counts.ops);
        assert!(
            bugged.replay.contains("--bug vote_before_sync"),
            "{}",
            bugged.replay
        );
    }
}
