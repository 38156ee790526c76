//! Lock traffic in the simulator (`[workload.locks]`): lock clients drive etcd's lock recipe
//! through the simulated cluster under partitions, with holders paused past their leases'
//! TTL, and the mutual-exclusion checker judges every run.

use sim::{RunOptions, Scenario, Verdict};

/// Goal: the scenario's lock clients acquire, hold, write under the fence and release, the
/// checker runs and passes on the correct engine, and paused holders show up as stale holders
/// whose fenced writes the store refused. Method: the first seeds of the library scenario.
#[test]
fn lock_clients_run_and_the_correct_engine_keeps_mutual_exclusion() {
    let scenario = Scenario::locks_under_partitions();
    let mut stale_refused = 0;
    for seed in 0..3 {
        let (report, _) = sim::run(&scenario, seed, RunOptions::default());
        assert!(
            report.failures.is_empty(),
            "seed {seed}: {:?}",
            report.failures
        );
        assert_eq!(report.verdict, Verdict::Pass, "seed {seed}");
        assert!(
            report
                .checks
                .iter()
                .any(|check| check.checker == checkers::locks::CHECKER),
            "seed {seed}: the mutual-exclusion checker ran"
        );
        let locks = report.locks.clone().expect("lock traffic");
        eprintln!("seed {seed}: {locks:?} ops {}", report.counts.ops);
        assert!(locks.holds >= 10, "seed {seed}: {locks:?}");
        assert!(locks.fenced_ok >= 10, "seed {seed}: {locks:?}");
        stale_refused += locks.stale_fenced_refused;
    }
    assert!(stale_refused >= 1, "no paused holder's write was refused");
}
