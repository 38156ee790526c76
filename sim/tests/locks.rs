//! Lock traffic in the simulator (`[workload.locks]`): lock clients drive etcd's lock and
//! election recipes through the simulated cluster under partitions, with holders and leaders
//! paused past their leases' TTL, and the mutual-exclusion checker judges every run.

use checkers::history::{LockStep, Response};
use sim::{RunOptions, Scenario, Verdict};

/// Goal: the scenario's lock clients acquire, hold, write under the fence and release, the
/// checker runs and passes on the correct engine, and paused holders show up as stale holders
/// whose fenced writes the store refused. Method: the first seeds of the library scenario, up
/// to the first that shows a stale holder's fenced write refused (within a bound).
#[test]
fn lock_clients_run_and_the_correct_engine_keeps_mutual_exclusion() {
    let scenario = Scenario::locks_under_partitions();
    let mut stale_refused = 0;
    for seed in 0..12 {
        if stale_refused > 0 && seed >= 3 {
            break;
        }
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
        assert!(locks.holds >= 5, "seed {seed}: {locks:?}");
        assert!(locks.fenced_ok >= 5, "seed {seed}: {locks:?}");
        stale_refused += locks.stale_fenced_refused;
    }
    assert!(stale_refused >= 1, "no paused holder's write was refused");
}

/// Goal: elections run beside the lock and are judged like it: leaders are elected, proclaim
/// under the fence and resign, the checker passes on the correct engine, and a leader paused
/// past its lease finds its proclaim refused. Method: the first seeds of the library scenario;
/// the histories are read for the elections' notes (a leadership acquired, a proclaim that
/// succeeded, a resign), and the paused leaders' refused proclaims are counted up to the first
/// seed that shows one (within a bound).
#[test]
fn elections_run_beside_the_lock_and_the_correct_engine_keeps_one_leader() {
    let scenario = Scenario::elections_under_partitions();
    let mut stale_refused = 0;
    for seed in 0..12 {
        if stale_refused > 0 && seed >= 3 {
            break;
        }
        let (report, artifacts) = sim::run(
            &scenario,
            seed,
            RunOptions {
                keep_artifacts: true,
            },
        );
        assert!(
            report.failures.is_empty(),
            "seed {seed}: {:?}",
            report.failures
        );
        assert_eq!(report.verdict, Verdict::Pass, "seed {seed}");
        let history = checkers::history::parse_history(&artifacts.history.join("\n"))
            .expect("the history parses");
        let (elections, locks): (Vec<_>, Vec<_>) = history
            .ops
            .iter()
            .filter(|op| op.lock.is_some())
            .cloned()
            .partition(|op| {
                op.lock
                    .as_ref()
                    .is_some_and(|note| note.name.starts_with(b"/election/"))
            });
        assert!(!locks.is_empty(), "seed {seed}: the lock ran too");
        let resigned = elections
            .iter()
            .filter(|op| {
                op.lock.as_ref().map(|note| note.step) == Some(LockStep::Released)
                    && matches!(op.result, Some(Response::Txn { .. }))
            })
            .count();
        let summary = checkers::locks::check_locks(&elections).summary;
        eprintln!("seed {seed}: elections {summary:?}, resigns answered {resigned}");
        assert!(summary.holds >= 3, "seed {seed}: {summary:?}");
        assert!(summary.fenced_ok >= 3, "seed {seed}: {summary:?}");
        assert!(resigned >= 1, "seed {seed}");
        let stale_leaders = summary.stale_fenced_refused;
        stale_refused += stale_leaders;
    }
    assert!(
        stale_refused >= 1,
        "no paused leader's proclaim was refused"
    );
}

/// Goal: a run with lock traffic is deterministic, and its written history says what the
/// checkers were given: the lock notes and the blinded answers survive the JSON lines, so
/// `detcd check` on the artifacts judges the locks as the run did. Method: run one seed twice,
/// keeping artifacts once; parse the history lines and check them again.
#[test]
fn lock_runs_are_deterministic_and_their_history_checks_alike() {
    for scenario in [
        Scenario::locks_under_partitions(),
        Scenario::elections_under_partitions(),
    ] {
        runs_alike_and_checks_alike(&scenario);
    }
}

fn runs_alike_and_checks_alike(scenario: &Scenario) {
    let seed = 2;
    let (plain, _) = sim::run(scenario, seed, RunOptions::default());
    let (kept, artifacts) = sim::run(
        scenario,
        seed,
        RunOptions {
            keep_artifacts: true,
        },
    );
    assert_eq!(plain.trace_hash, kept.trace_hash);
    let text = artifacts.history.join("\n");
    let history = checkers::history::parse_history(&text).expect("the history parses");
    assert!(history.ops.iter().any(|op| op.lock.is_some()));
    let report = checkers::locks::check_locks(&history.ops);
    assert_eq!(report.verdict, checkers::Verdict::Ok);
    assert_eq!(Some(report.summary), kept.locks);
    let watches = artifacts.watches.join("\n");
    let watches =
        checkers::history::parse_history(&format!("{text}\n{watches}")).expect("the watches parse");
    // The lock clients' watch streams are recorded next to the watchers'.
    let lock_streams: Vec<_> = watches
        .watches
        .iter()
        .filter(|watch| watch.key.starts_with(b"/lock/") || watch.key.starts_with(b"/election/"))
        .collect();
    assert!(!lock_streams.is_empty(), "no lock client watched");
    // Waiters hear the deletions they wait for (a stream the member never fed would leave
    // every waiter to its deadline).
    assert!(
        lock_streams.iter().any(|watch| !watch.events.is_empty()),
        "no lock stream delivered an event"
    );
}

/// Goal: lock traffic is opt-in: a scenario without it records no lock note and reports no
/// lock summary. Method: one seed of the same scenario with the section removed.
#[test]
fn without_the_section_nothing_of_locks_runs() {
    let mut scenario = Scenario::locks_under_partitions();
    scenario.workload.locks = None;
    let (report, _) = sim::run(&scenario, 0, RunOptions::default());
    assert!(report.locks.is_none());
    assert!(report
        .checks
        .iter()
        .all(|check| check.checker != checkers::locks::CHECKER));
}

/// The correct engine over 100 seeds of the scenario (about 25 s in release on one core of a
/// shared machine): run by hand after a change to the lock recipe, the lock clients or the
/// lock checker.
#[test]
#[ignore]
fn a_hundred_seeds_of_the_correct_engine_pass() {
    let scenario = Scenario::locks_under_partitions();
    let mut stale_refused = 0;
    let failed: Vec<_> = (0..100)
        .filter_map(|seed| {
            let (report, _) = sim::run(&scenario, seed, RunOptions::default());
            stale_refused += report.locks.map_or(0, |locks| locks.stale_fenced_refused);
            (report.verdict != Verdict::Pass).then_some((seed, report.failures))
        })
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(stale_refused > 0);
    eprintln!("stale fenced writes refused over 100 seeds: {stale_refused}");
}
