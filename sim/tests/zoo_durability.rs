//! The durability-order and Figure-8 bugs of the zoo are caught, within a bounded number of
//! seeds, by the campaign each is hunted with (`hunt::scenario_for`): the proof that the aimed
//! faults, the Figure-8 schedule, the small-cluster scenarios and the checks of the persistence
//! contract find what random faults missed. The bugs are planted in the real engine, so these
//! are also the planted-bug proofs of `acknowledged_durability` and `ack_after_sync` on real
//! members (their hand-written traces are in `checkers::trace`'s tests).
//!
//! Method: for each bug, run seeds from 0 in its scenario with only that bug on, one after the
//! other on this thread (deterministic, no worker pool), until a run fails with a definite
//! verdict (`hunt::definite_failure`: not a checker that gave up); fail the test if none does
//! within the bug's seed bound. For the bugs whose harm a new check sees directly, also require
//! that check among the catching run's failures. The bounds leave room over the seeds these
//! bugs take today, and the whole file runs in well under a minute in release on one core.
#![cfg(feature = "bug-zoo")]

use engine::zoo::{Bug, BugSet};
use sim::hunt::{definite_failure, scenario_for};
use sim::{run, RunOptions, Scenario};

/// Runs `bug` in its own scenario from seed 0 up to `seeds_max` seeds; returns the first
/// catching seed and the names of every check that failed in that run.
fn first_catch(bug: Bug, seeds_max: u64) -> Option<(u64, Vec<String>)> {
    let mut scenario = Scenario::by_name(scenario_for(bug)).expect("a built-in scenario");
    scenario.member.bugs = BugSet::of(bug);
    (0..seeds_max).find_map(|seed| {
        let (report, _) = run(&scenario, seed, RunOptions::default());
        definite_failure(&report)?;
        let checks = report
            .failures
            .iter()
            .map(|failure| failure.check.clone())
            .collect();
        Some((seed, checks))
    })
}

/// Asserts `bug` is caught within `seeds_max` seeds, and, if `by` names checks, that one of
/// them is among the failures of the catching run.
fn assert_caught(bug: Bug, seeds_max: u64, by: &[&str]) {
    let Some((seed, checks)) = first_catch(bug, seeds_max) else {
        panic!(
            "{} escaped {seeds_max} seeds of scenario {}",
            bug.name(),
            scenario_for(bug)
        );
    };
    assert!(
        by.is_empty() || checks.iter().any(|check| by.contains(&check.as_str())),
        "{} caught at seed {seed}, but not by {by:?}: {checks:?}",
        bug.name()
    );
}

/// Members panic on purpose in some catches (a contradicted commit); keep the output readable.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

#[test]
fn vote_released_before_its_sync_is_caught_by_acknowledged_durability() {
    quiet_panics();
    assert_caught(Bug::VoteBeforeSync, 20, &["acknowledged_durability"]);
}

#[test]
fn ack_released_before_its_sync_is_caught_by_ack_after_sync() {
    quiet_panics();
    assert_caught(Bug::AckBeforeSync, 20, &["ack_after_sync"]);
}

#[test]
fn leader_counting_its_unsynced_entries_is_caught_in_a_one_member_cluster() {
    quiet_panics();
    assert_caught(Bug::LeaderCountsUnsynced, 40, &[]);
}

#[test]
fn missing_election_restriction_is_caught() {
    quiet_panics();
    assert_caught(Bug::MissingElectionRestriction, 80, &[]);
}

#[test]
fn truncation_on_a_stale_append_is_caught() {
    quiet_panics();
    assert_caught(Bug::TruncateOnStaleAppend, 80, &[]);
}

#[test]
fn wal_released_before_the_snapshot_sync_is_caught() {
    quiet_panics();
    assert_caught(Bug::WalReleasedBeforeSnapshotSync, 400, &[]);
}

#[test]
fn corrupt_record_taken_for_a_torn_tail_is_caught_by_acknowledged_durability() {
    quiet_panics();
    assert_caught(
        Bug::CorruptRecordAsTornTail,
        40,
        &["acknowledged_durability"],
    );
}

#[test]
fn figure_eight_commit_is_caught_by_the_figure_eight_schedule() {
    quiet_panics();
    assert_caught(Bug::FigureEightCommit, 200, &[]);
}
