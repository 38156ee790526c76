//! Buggify in the simulator: a seed with buggify on replays to the same trace hash, buggify
//! really changes what the engine does (its rare paths become common), and a seed that draws
//! buggify off runs exactly as it would with buggify never considered.

use sim::{run, RunOptions, Scenario};

/// Snapshots the members took or installed over a run, counted from its kept trace.
fn snapshot_count(scenario: &Scenario, seed: u64) -> (String, usize) {
    let options = RunOptions {
        keep_artifacts: true,
    };
    let (report, artifacts) = run(scenario, seed, options);
    let snapshots = artifacts
        .trace
        .iter()
        .filter(|line| line.text.contains(" snapshot index="))
        .count();
    (report.trace_hash, snapshots)
}

fn with_buggify_seeds_ppm(ppm: u32) -> Scenario {
    let mut scenario = Scenario::no_faults();
    scenario.member.buggify_seeds_ppm = ppm;
    scenario
}

/// Goal: buggify keeps runs deterministic and does what it is for. Method: run two seeds with
/// buggify forced on twice each and compare trace hashes; then compare with the same seeds
/// forced off: the hashes must differ, and the buggified runs must snapshot more often
/// (buggify's "snapshot now" point), summed over the seeds so no single draw decides it.
#[test]
fn a_buggified_seed_replays_to_the_same_hash_and_reaches_rare_paths() {
    let on = with_buggify_seeds_ppm(1_000_000);
    let off = with_buggify_seeds_ppm(0);
    let (mut snapshots_on, mut snapshots_off) = (0, 0);
    for seed in [11, 12] {
        let (first, count_on) = snapshot_count(&on, seed);
        let (again, count_again) = snapshot_count(&on, seed);
        assert_eq!(first, again, "seed {seed} with buggify replays");
        assert_eq!(count_on, count_again);
        let (plain, count_off) = snapshot_count(&off, seed);
        assert_ne!(first, plain, "seed {seed}: buggify changed nothing");
        snapshots_on += count_on;
        snapshots_off += count_off;
    }
    assert!(
        snapshots_on > snapshots_off,
        "buggify made no extra snapshots: {snapshots_on} on, {snapshots_off} off"
    );
}

/// Goal: buggify off costs nothing in behaviour: a seed whose per-seed draw turns buggify off
/// runs exactly as with buggify never on (the draw uses a stream of its own and the engine's
/// points draw nothing when off). Method: among a few seeds of the default share, compare each
/// with a run whose share is zero; those that drew "off" must hash alike, and at least one
/// seed must have drawn "off" and one "on" (or the comparison proves nothing).
#[test]
fn a_seed_that_draws_buggify_off_runs_as_if_buggify_did_not_exist() {
    let sometimes = Scenario::no_faults();
    assert!(
        sometimes.member.buggify_seeds_ppm > 0 && sometimes.member.buggify_seeds_ppm < 1_000_000
    );
    let never = with_buggify_seeds_ppm(0);
    let always = with_buggify_seeds_ppm(1_000_000);
    let (mut drew_off, mut drew_on) = (0, 0);
    for seed in 0..8 {
        let (report, _) = run(&sometimes, seed, RunOptions::default());
        let (plain, _) = run(&never, seed, RunOptions::default());
        if report.trace_hash == plain.trace_hash {
            drew_off += 1;
        } else {
            let (forced, _) = run(&always, seed, RunOptions::default());
            assert_eq!(
                report.trace_hash, forced.trace_hash,
                "seed {seed} is neither the buggify-off run nor the buggify-on run"
            );
            drew_on += 1;
        }
    }
    assert!(drew_off > 0 && drew_on > 0, "off {drew_off}, on {drew_on}");
}
