//! `detcd sim hunt`: how fast the testbed catches each bug of the zoo (`engine::zoo`). A hunt runs
//! seeds of a scenario with one bug switched on until a seed fails with a definite verdict, and
//! reports the first catching seed, the seeds and wall seconds it took, and the checker.
//!
//! A checker that gave up (`*_unknown`) does not count as a catch: only a violation, an inline
//! invariant, or a member panic (an engine assertion) does. Threads run whole seeds, as in
//! `fuzz`; the first catching seed is the lowest one, whatever the threads' timing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use engine::zoo::{Bug, BugSet};
use serde_json::json;

use crate::cli::{scenario_named, Stopwatch};
use crate::report::{run, RunOptions, RunReport};

/// `detcd sim hunt` options.
#[derive(Clone, Debug, Default)]
pub struct HuntArgs {
    /// The bugs to hunt, by name; every bug of the zoo with `all`.
    pub bugs: Vec<String>,
    /// Hunt every bug of the zoo.
    pub all: bool,
    /// Scenario name; each bug's own scenario (`scenario_for`) when absent.
    pub scenario: Option<String>,
    /// Give up after this many seeds per bug.
    pub seeds: Option<u64>,
    /// Give up after this much wall time per bug (`60s`, `5m`).
    pub time: Option<String>,
    /// Worker threads; all cores when absent.
    pub jobs: Option<usize>,
    /// The first seed.
    pub first_seed: u64,
    /// Print one JSON object instead of the table.
    pub json: bool,
}

/// The scenario a bug is hunted with unless another is named: the default campaign, except for
/// bugs that only a specific fault shape reaches.
pub fn scenario_for(bug: Bug) -> &'static str {
    match bug {
        // The shaped schedule runs once a minute in the default mix, among faults that often
        // refuse it; its own scenario runs it six times a minute.
        Bug::FigureEightCommit => "figure_eight",
        // etcd #14370 showed only in a one-member cluster: with peers, the others' synced
        // copies hide the leader's lost entry.
        Bug::LeaderCountsUnsynced => "single_member_crashes",
        Bug::VoteBeforeSync
        | Bug::AckBeforeSync
        | Bug::MissingElectionRestriction
        | Bug::TruncateOnStaleAppend
        | Bug::ReadBeforeApply
        | Bug::WalReleasedBeforeSnapshotSync
        | Bug::WatchResentAfterRestore
        | Bug::ProgressAheadOfEvents
        | Bug::SlowWatcherGap
        | Bug::TxnCompareWrongField
        | Bug::DeleteMissingBumpsRevision
        | Bug::CountCutByLimit
        | Bug::DuplicateApplyOfRetry
        | Bug::CorruptRecordAsTornTail => "default",
        // A lease cut short is judged only on true clocks (the default campaign jumps them),
        // and shows only when a deposed leader outlives a new one's grace period. A read
        // without a quorum is stale only at a deposed leader that does not know it yet: the
        // default campaign catches it in about one seed in forty, this one in one in three.
        Bug::ReadIndexWithoutQuorum | Bug::LeaseExpiryByNonLeader | Bug::LeaseRenewByNonLeader => {
            "leader_isolated_under_lease_traffic"
        }
        // Compacted history has to meet restarts and watches at the compacted revision.
        Bug::RevisionRegressionAfterCompaction | Bug::CompactionEatsDeleteEvent => {
            "compaction_heavy"
        }
        // A learner must exist, and the leader must be cut off with it from the other voters.
        Bug::LearnerCountedInQuorum => "learner_promoted_during_partition",
        // Revokes must race with writes arriving at members that have not applied them yet.
        // Users' leases must hold keys whose write permission is then revoked from them.
        Bug::PermissionCheckedOnlyAtRequest | Bug::LeaseKeysUnchecked => {
            "permissions_revoked_under_load"
        }
        // Only the lock recipe reads "the oldest key under a prefix" (sorted, with a limit),
        // and only the mutual-exclusion checker sees what that read decided.
        Bug::LimitBeforeSort => "locks_under_partitions",
        // Campaigns wait on the youngest older key through the create-revision filter; only
        // the mutual-exclusion checker sees what that read decided.
        Bug::MaxCreateRevisionExclusive => "elections_under_partitions",
    }
}

/// The outcome of hunting one bug.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HuntOutcome {
    /// The bug's name.
    pub bug: &'static str,
    /// Where the real bug comes from.
    pub origin: &'static str,
    /// The scenario hunted.
    pub scenario: String,
    /// The lowest seed that caught it, if any did.
    pub first_seed: Option<u64>,
    /// Seeds from the first seed up to and including the catching one (or all seeds run).
    pub seeds_to_catch: u64,
    /// Seeds run in all (threads may run a few past the catching seed).
    pub seeds_run: u64,
    /// Wall seconds until the catch was known (or the hunt gave up).
    pub seconds: f64,
    /// The checker (or invariant) that caught it, e.g. `linearizability` or `member_panic`.
    pub checker: Option<String>,
    /// Its message, shortened.
    pub message: Option<String>,
    /// The command that replays the catching seed.
    pub replay: Option<String>,
}

/// The first failure of `report` that is a definite catch: not a checker that gave up, not a
/// scenario that could not run.
pub fn definite_failure(report: &RunReport) -> Option<&crate::invariants::Failure> {
    report
        .failures
        .iter()
        .find(|failure| !failure.check.ends_with("_unknown") && failure.check != "scenario_invalid")
}

/// Runs `detcd sim hunt`; returns the exit status (0 every bug caught, 1 some escaped, 2 usage).
pub fn hunt_command(args: &HuntArgs) -> i32 {
    match plan(args) {
        Ok((bugs, limits)) => {
            let previous_hook = std::panic::take_hook();
            // Member panics are findings with their message in the report; printing each one
            // as well would bury the table.
            std::panic::set_hook(Box::new(|_| {}));
            let outcomes: Vec<HuntOutcome> = bugs
                .iter()
                .map(|(bug, scenario)| {
                    let outcome = hunt(*bug, scenario, &limits);
                    if !args.json {
                        eprintln!("{}", describe_row(&outcome));
                    }
                    outcome
                })
                .collect();
            std::panic::set_hook(previous_hook);
            print_outcomes(&outcomes, args.json);
            i32::from(outcomes.iter().any(|outcome| outcome.first_seed.is_none()))
        }
        Err(message) => {
            eprintln!("error: {message}");
            2
        }
    }
}

/// How long one bug is hunted.
#[derive(Clone, Copy, Debug)]
pub struct HuntLimits {
    /// Seeds at most.
    pub seeds_max: Option<u64>,
    /// Wall seconds at most.
    pub seconds_max: Option<u64>,
    /// Worker threads.
    pub jobs: usize,
    /// The first seed.
    pub first_seed: u64,
}

fn plan(args: &HuntArgs) -> Result<(Vec<(Bug, String)>, HuntLimits), String> {
    if !engine::zoo::COMPILED_IN {
        return Err(
            "this build has no bug zoo: build with `cargo build --release --features bug-zoo`"
                .into(),
        );
    }
    let chosen: Vec<Bug> = if args.all {
        Bug::ALL.to_vec()
    } else if args.bugs.is_empty() {
        return Err("name a bug with --bug NAME, or hunt every one with --all".into());
    } else {
        let set = crate::cli::bugs_named(&args.bugs)?;
        set.bugs().collect()
    };
    let bugs = chosen
        .into_iter()
        .map(|bug| {
            let name = args.scenario.as_deref().unwrap_or(scenario_for(bug));
            scenario_named(Some(name)).map(|_| (bug, name.to_string()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let seconds_max = args
        .time
        .as_deref()
        .map(crate::fuzz::parse_duration_seconds)
        .transpose()?;
    if args.seeds == Some(0) {
        return Err("--seeds must be at least 1".into());
    }
    let jobs = match args.jobs {
        Some(0) => return Err("--jobs must be at least 1".into()),
        Some(jobs) if jobs > crate::fuzz::JOBS_COUNT_MAX => {
            return Err(format!(
                "--jobs {jobs} is more than {} worker threads",
                crate::fuzz::JOBS_COUNT_MAX
            ))
        }
        Some(jobs) => jobs,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let limits = HuntLimits {
        seeds_max: args.seeds,
        // Without either limit a hunt stops after a minute, the target the zoo is held to.
        seconds_max: seconds_max.or(if args.seeds.is_none() { Some(60) } else { None }),
        jobs,
        first_seed: args.first_seed,
    };
    Ok((bugs, limits))
}

/// Hunts `bug` in scenario `scenario_name` within `limits`.
pub fn hunt(bug: Bug, scenario_name: &str, limits: &HuntLimits) -> HuntOutcome {
    let mut scenario = scenario_named(Some(scenario_name)).expect("a checked scenario name");
    scenario.member.bugs = BugSet::of(bug);
    let stopwatch = Stopwatch::start();
    let next_position = AtomicU64::new(0);
    // The lowest catching position so far; workers take no position past it.
    let caught_position = AtomicU64::new(u64::MAX);
    let stop = AtomicBool::new(false);
    let seeds_run = AtomicU64::new(0);
    let best: Mutex<Option<(u64, RunReport, f64)>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..limits.jobs.max(1) {
            let (scenario, next_position, caught_position, stop, seeds_run, best, stopwatch) = (
                &scenario,
                &next_position,
                &caught_position,
                &stop,
                &seeds_run,
                &best,
                &stopwatch,
            );
            let _worker = crate::fuzz::spawn_worker(scope, move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let position = next_position.fetch_add(1, Ordering::Relaxed);
                let beyond_seeds = limits.seeds_max.is_some_and(|count| position >= count);
                if beyond_seeds || position > caught_position.load(Ordering::Relaxed) {
                    break;
                }
                let seed = limits.first_seed.wrapping_add(position);
                let (report, _) = run(scenario, seed, RunOptions::default());
                seeds_run.fetch_add(1, Ordering::Relaxed);
                if definite_failure(&report).is_some() {
                    caught_position.fetch_min(position, Ordering::Relaxed);
                    let mut best = best.lock().unwrap_or_else(|poison| poison.into_inner());
                    if best.as_ref().is_none_or(|(known, _, _)| position < *known) {
                        *best = Some((position, report, stopwatch.elapsed_seconds()));
                    }
                }
                if limits
                    .seconds_max
                    .is_some_and(|budget| stopwatch.elapsed_seconds() >= budget as f64)
                {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
    });
    let best = best
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner());
    let seeds_run = seeds_run.into_inner();
    match best {
        Some((position, report, seconds)) => {
            let failure = definite_failure(&report).expect("kept only catching reports");
            HuntOutcome {
                bug: bug.name(),
                origin: bug.origin(),
                scenario: scenario.name.clone(),
                first_seed: Some(report.seed),
                seeds_to_catch: position + 1,
                seeds_run,
                seconds,
                checker: Some(failure.check.clone()),
                message: Some(failure.message.chars().take(160).collect()),
                replay: Some(report.replay.clone()),
            }
        }
        None => HuntOutcome {
            bug: bug.name(),
            origin: bug.origin(),
            scenario: scenario.name.clone(),
            first_seed: None,
            seeds_to_catch: seeds_run,
            seeds_run,
            seconds: stopwatch.elapsed_seconds(),
            checker: None,
            message: None,
            replay: None,
        },
    }
}

fn describe_row(outcome: &HuntOutcome) -> String {
    match (&outcome.first_seed, &outcome.checker) {
        (Some(seed), Some(checker)) => format!(
            "{:<38} caught  seed={seed:<6} seeds={:<5} s={:<7.1} by {checker}",
            outcome.bug, outcome.seeds_to_catch, outcome.seconds
        ),
        _ => format!(
            "{:<38} ESCAPED seeds={} s={:.1} (scenario {})",
            outcome.bug, outcome.seeds_run, outcome.seconds, outcome.scenario
        ),
    }
}

fn print_outcomes(outcomes: &[HuntOutcome], as_json: bool) {
    let caught = outcomes
        .iter()
        .filter(|outcome| outcome.first_seed.is_some())
        .count();
    if as_json {
        println!(
            "{}",
            json!({"caught": caught, "bugs": outcomes.len(), "outcomes": outcomes})
        );
        return;
    }
    // Columns as wide as their longest entry, so that long scenario names keep the table aligned.
    let bug_width = outcomes
        .iter()
        .map(|o| o.bug.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let scenario_width = outcomes
        .iter()
        .map(|o| o.scenario.len())
        .max()
        .unwrap_or(0)
        .max(8);
    println!(
        "{:<bug_width$} {:<scenario_width$} {:>6} {:>6} {:>8}  checker",
        "bug", "scenario", "seed", "seeds", "seconds"
    );
    for outcome in outcomes {
        println!(
            "{:<bug_width$} {:<scenario_width$} {:>6} {:>6} {:>8.1}  {}",
            outcome.bug,
            outcome.scenario,
            outcome
                .first_seed
                .map_or_else(|| "-".to_string(), |seed| seed.to_string()),
            outcome.seeds_to_catch,
            outcome.seconds,
            outcome.checker.as_deref().unwrap_or("ESCAPED"),
        );
    }
    println!("caught {caught} of {}", outcomes.len());
    for outcome in outcomes {
        if let Some(replay) = &outcome.replay {
            println!("  {}: {replay}", outcome.bug);
        }
    }
}
