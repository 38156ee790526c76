//! The read and lease bugs of the zoo are caught, within a bound, by the campaign a hunt runs
//! for them. Goal: keep the testbed's power to catch them from eroding unnoticed (a routing,
//! workload, scenario or checker change that lets one escape fails here). Method: for each bug,
//! run the hunt (`sim::hunt::hunt`) in the bug's own scenario on one thread, over a bounded
//! number of seeds from seed 0, and require a definite catch: a violation, an inline invariant
//! or a member panic, never a checker that gave up. The bounds leave room above the seeds each
//! bug took when this test was written (one to three), while keeping the file well under a
//! minute in release on one core.
//!
//! Compiled only with the `bug-zoo` feature: `cargo test --release -p sim --features bug-zoo
//! --test zoo_reads`.

#![cfg(feature = "bug-zoo")]

use engine::zoo::Bug;
use sim::hunt::{definite_failure, hunt, scenario_for, HuntLimits};

/// Seeds each bug may take at most.
const SEEDS_MAX: u64 = 40;

fn assert_caught(bug: Bug) {
    let limits = HuntLimits {
        seeds_max: Some(SEEDS_MAX),
        seconds_max: None,
        jobs: 1,
        first_seed: 0,
    };
    let scenario = scenario_for(bug);
    let outcome = hunt(bug, scenario, &limits);
    let checker = outcome.checker.clone().unwrap_or_default();
    assert!(
        outcome.first_seed.is_some(),
        "{} escaped {} seeds of scenario {scenario}",
        bug.name(),
        outcome.seeds_run
    );
    assert!(
        !checker.ends_with("_unknown") && !checker.is_empty(),
        "{}: caught only by {checker:?}",
        bug.name()
    );
    assert!(outcome.seeds_to_catch <= SEEDS_MAX);
}

/// A leader that answers reads without a heartbeat quorum (etcd #741) serves stale reads once
/// it is deposed without knowing it.
#[test]
fn read_index_without_quorum_is_caught() {
    assert_caught(Bug::ReadIndexWithoutQuorum);
}

/// A read served at its read index before the apply reached it returns an older state.
#[test]
fn read_before_apply_is_caught() {
    assert_caught(Bug::ReadBeforeApply);
}

/// A member that is not the leader expiring leases on its own clock (etcd #12528) cuts short
/// leases that clients kept alive at the leader: the lease promise catches it.
#[test]
fn lease_expiry_by_non_leader_is_caught() {
    assert_caught(Bug::LeaseExpiryByNonLeader);
}

/// A deposed leader answering keep-alives (etcd #15247) promises TTLs the new leader never
/// heard of: the lease promise catches it.
#[test]
fn lease_renew_by_non_leader_is_caught() {
    assert_caught(Bug::LeaseRenewByNonLeader);
}

/// The correct engine in the same scenarios and seeds fails no check, so the catches above are
/// the bugs' doing, not the scenario's. Checked on the first seeds only, to keep the file fast.
#[test]
fn the_correct_engine_passes_the_same_scenarios() {
    for bug in [Bug::ReadBeforeApply, Bug::LeaseRenewByNonLeader] {
        let scenario = sim::Scenario::by_name(scenario_for(bug)).expect("a built-in scenario");
        for seed in 0..3 {
            let (report, _) = sim::run(&scenario, seed, sim::RunOptions::default());
            assert!(
                definite_failure(&report).is_none() && report.failures.is_empty(),
                "{} seed {seed}: {:?}",
                scenario.name,
                report.failures
            );
        }
    }
}
