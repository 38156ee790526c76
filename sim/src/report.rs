//! Running one seed and reporting on it: the verdict against the scenario's expectation, the
//! trace hash, counts, failures with their replay command, and the artifacts (history, watches,
//! trace) when asked for.
//!
//! Wall time is not measured here: callers that want it (the command line, the bench) add it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Value};

use crate::checking::{CheckOutcome, CheckVerdict};
use crate::invariants::Failure;
use crate::process::HostedMember;
use crate::scenario::{Scenario, Verdict};
use crate::timeline::Timeline;
use crate::trace::{hash_hex, TraceLine};
use crate::world::{Counts, World};

/// What to keep besides the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Keep the history, watch and trace lines (for `--out` and golden tests).
    pub keep_artifacts: bool,
}

/// The outcome of one seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The scenario's name.
    pub scenario: String,
    /// Pass when the checks reached the scenario's expected verdict.
    pub verdict: Verdict,
    /// What the checks found, before comparing with the expectation.
    pub checks_verdict: Verdict,
    /// What the scenario expects.
    pub expected_verdict: Verdict,
    /// The scenario goes beyond the faults the design claims to survive.
    pub beyond_model: bool,
    /// FNV-1a over every trace and history line, as 16 hex digits.
    pub trace_hash: String,
    /// Simulated time at the end (ms).
    pub sim_ms: u64,
    /// Counters.
    pub counts: Counts,
    /// Trace lines written.
    pub trace_lines: u64,
    /// Members whose disks took corrupting faults.
    pub corrupted_members: Vec<u64>,
    /// Every checker's result on this run (empty when the run could not finish).
    pub checks: Vec<CheckOutcome>,
    /// What failed, with times: the inline invariants' findings, then the checkers'.
    pub failures: Vec<Failure>,
    /// The command that replays this seed.
    pub replay: String,
    /// Every fault that ran (random or scripted) with concrete targets, in order: with
    /// `Scenario::with_timeline_only` it re-runs this seed's faults without the random schedule.
    #[serde(skip_serializing_if = "Timeline::is_empty")]
    pub faults_ran: Timeline,
    /// How many faults of each kind ran (`sim::artifact::fault_label`), for campaign reports.
    pub fault_kinds: std::collections::BTreeMap<String, u64>,
    /// How often each engine coverage mark (`engine::marks`) was hit, every mark listed.
    pub marks: std::collections::BTreeMap<String, u64>,
    /// What the mutual-exclusion checker counted, when the run had lock traffic
    /// (`[workload.locks]`): holds, stale holders, fenced writes refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks: Option<checkers::locks::LockSummary>,
}

/// The lines a run recorded, when kept.
#[derive(Clone, Debug, Default)]
pub struct Artifacts {
    /// History lines (`docs/history-format.md`).
    pub history: Vec<String>,
    /// Watch lines.
    pub watches: Vec<String>,
    /// Trace lines.
    pub trace: Vec<TraceLine>,
    /// Cluster events for the checkers (`events.jsonl`).
    pub events: Vec<String>,
}

/// The command that replays `seed` of `scenario`, with the zoo bugs it had switched on.
pub fn replay_command(scenario: &Scenario, seed: u64) -> String {
    let name = scenario.source_file.as_deref().unwrap_or(&scenario.name);
    let mut command = format!("detcd sim run --scenario {name} --seed {seed}");
    for bug in scenario.member.bugs.bugs() {
        command.push_str(" --bug ");
        command.push_str(bug.name());
    }
    if scenario.member.buggify_seeds_ppm >= crate::rng::PPM {
        command.push_str(" --buggify");
    }
    command
}

/// Runs one seed of `scenario` with the engine's member. A panic of the simulator itself
/// becomes a failed report.
pub fn run(scenario: &Scenario, seed: u64, options: RunOptions) -> (RunReport, Artifacts) {
    run_with::<engine::member::Member>(scenario, seed, options)
}

/// Runs one seed of `scenario` hosting members of type `M` (tests use stand-ins).
pub fn run_with<M: HostedMember>(
    scenario: &Scenario,
    seed: u64,
    options: RunOptions,
) -> (RunReport, Artifacts) {
    if let Err(problem) = scenario.validate() {
        return (
            failed_report(scenario, seed, "scenario_invalid", problem),
            Artifacts::default(),
        );
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // Coverage marks count per thread: start this run's count from zero (a run before it
        // on this thread, or one that panicked, may have left hits behind).
        let _earlier = engine::marks::take();
        let mut world = World::<M>::new(scenario.clone(), seed, options.keep_artifacts);
        world.run();
        let (mut report, artifacts) = finish(world);
        report.marks = engine::marks::take()
            .iter()
            .map(|(mark, count)| (mark.name().to_string(), count))
            .collect();
        (report, artifacts)
    }));
    match outcome {
        Ok(result) => result,
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            (
                failed_report(scenario, seed, "simulator_panic", text),
                Artifacts::default(),
            )
        }
    }
}

fn failed_report(scenario: &Scenario, seed: u64, check: &str, message: String) -> RunReport {
    RunReport {
        seed,
        scenario: scenario.name.clone(),
        verdict: Verdict::Fail,
        checks_verdict: Verdict::Fail,
        expected_verdict: scenario.expected_verdict,
        beyond_model: scenario.beyond_model,
        trace_hash: hash_hex(0),
        sim_ms: 0,
        counts: Counts::default(),
        trace_lines: 0,
        corrupted_members: Vec::new(),
        checks: Vec::new(),
        failures: vec![Failure {
            check: check.into(),
            time_ns: 0,
            message,
            window: Vec::new(),
        }],
        replay: replay_command(scenario, seed),
        faults_ran: Timeline::default(),
        fault_kinds: std::collections::BTreeMap::new(),
        marks: std::collections::BTreeMap::new(),
        locks: None,
    }
}

/// How early a lease may be found gone before a promise made for it ran out, on true clocks.
/// None: the leader starts a lease's clock no earlier than the request's call, and a new leader
/// extends every lease by `MemberConfig::lease_grace`.
const LEASE_PROMISE_TOLERANCE_NS: i64 = 0;

/// Runs every checker on the world's records and returns their outcomes and the failures they
/// add. A violation fails as `{check: <checker>}`; an unknown verdict (a budget ran out) fails as
/// `{check: <checker>_unknown}`, since unknown is never a pass. The recorded operations move
/// into the checkers' history (nothing reads them from the world afterwards).
#[allow(clippy::type_complexity)]
fn run_checkers<M: HostedMember>(
    world: &mut World<M>,
) -> (
    Vec<CheckOutcome>,
    Vec<Failure>,
    Option<checkers::locks::LockSummary>,
) {
    let history = checkers::history::History {
        ops: std::mem::take(&mut world.check_ops),
        watches: Vec::new(),
    };
    let config = checkers::CheckConfig {
        liveness_bound: i64::try_from(world.scenario.liveness_bound_ms.saturating_mul(1_000_000))
            .unwrap_or(i64::MAX),
        // Members' clocks run true unless the scenario injects clock faults (a fixed skew
        // moves no deadline), and only then can a lease's expiry be held to its promises.
        lease_promise_tolerance: (!world.scenario.has_clock_faults())
            .then_some(LEASE_PROMISE_TOLERANCE_NS),
        ..checkers::CheckConfig::default()
    };
    let results = checkers::check_all(
        &history,
        &world.check_watches(),
        &world.check_trace,
        &config,
    );
    let outcomes = crate::checking::outcomes(results);
    let end_ns = world.queue.now().0;
    let failures = outcomes
        .iter()
        .filter(|outcome| outcome.verdict != CheckVerdict::Pass)
        .map(|outcome| {
            let check = match outcome.verdict {
                CheckVerdict::Unknown => format!("{}_unknown", outcome.checker),
                _ => outcome.checker.clone(),
            };
            // The latest call in the window: when the evidence was complete enough to start.
            let time_ns = history
                .ops
                .iter()
                .filter(|op| outcome.window.contains(&op.id))
                .filter_map(|op| op.ret.or(Some(op.call)))
                .max()
                .map_or(end_ns, |time| time as u64);
            Failure {
                check,
                time_ns,
                message: outcome.explanation.clone(),
                window: outcome.window.clone(),
            }
        })
        .collect();
    let locks = checkers::locks::has_lock_traffic(&history.ops)
        .then(|| checkers::locks::check_locks(&history.ops).summary);
    (outcomes, failures, locks)
}

fn finish<M: HostedMember>(mut world: World<M>) -> (RunReport, Artifacts) {
    let (checks, check_failures, locks) = run_checkers(&mut world);
    for outcome in &checks {
        world.trace.event(
            world.queue.now(),
            format_args!("check {} {}", outcome.checker, outcome.verdict.name()),
        );
    }
    let mut failures = world.invariants.failures().to_vec();
    failures.extend(check_failures);
    let checks_verdict = if failures.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let expected = world.scenario.expected_verdict;
    let verdict = judge(&world.scenario, &failures);
    if verdict == Verdict::Fail && expected == Verdict::Fail {
        let unexpected: Vec<&str> = failures
            .iter()
            .map(|failure| failure.check.as_str())
            .filter(|check| {
                !world
                    .scenario
                    .expected_failures
                    .iter()
                    .any(|name| name == check)
            })
            .collect();
        failures.push(Failure {
            check: "expected_verdict".into(),
            time_ns: world.queue.now().0,
            message: if unexpected.is_empty() {
                format!(
                    "the scenario expects {} to fail, but no check failed",
                    world.scenario.expected_failures.join(" or ")
                )
            } else {
                format!(
                    "the scenario expects only {} to fail, but {} failed",
                    world.scenario.expected_failures.join(" or "),
                    unexpected.join(", ")
                )
            },
            window: Vec::new(),
        });
    }
    world.trace.event(
        world.queue.now(),
        format_args!("verdict {}", verdict.name()),
    );
    let kept = world.history_lines.is_some();
    let artifacts = Artifacts {
        history: world.history_lines.take().unwrap_or_default(),
        watches: if kept {
            world.watch_lines()
        } else {
            Vec::new()
        },
        trace: world.trace.take_lines(),
        events: world.event_lines.take().unwrap_or_default(),
    };
    let report = RunReport {
        seed: world.seed,
        scenario: world.scenario.name.clone(),
        verdict,
        checks_verdict,
        expected_verdict: expected,
        beyond_model: world.scenario.beyond_model,
        trace_hash: hash_hex(world.trace.hash()),
        sim_ms: world.queue.now().0 / 1_000_000,
        counts: world.counts.clone(),
        trace_lines: world.trace.line_count(),
        corrupted_members: world.corrupted_members().iter().map(|id| id.0).collect(),
        checks,
        failures,
        replay: replay_command(&world.scenario, world.seed),
        faults_ran: Timeline {
            entries: std::mem::take(&mut world.faults_ran),
        },
        fault_kinds: world.trace.fault_kinds().clone(),
        marks: std::collections::BTreeMap::new(),
        locks,
    };
    (report, artifacts)
}

/// The run's verdict: a scenario expected to pass passes when nothing failed; one expected to
/// fail passes when some check it names failed and nothing else did (a checker that gave up or
/// a member panic is never the expected outcome).
fn judge(scenario: &Scenario, failures: &[Failure]) -> Verdict {
    let expected = |failure: &Failure| scenario.expected_failures.contains(&failure.check);
    let as_expected = match scenario.expected_verdict {
        Verdict::Pass => failures.is_empty(),
        Verdict::Fail => !failures.is_empty() && failures.iter().all(expected),
    };
    if as_expected {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

impl RunReport {
    /// The summary object: the fields other tools rely on (`seed`, `scenario`, `verdict`,
    /// `trace_hash`, `ops`, `sim_events`, `sim_ms`, `wall_ms`, `failures`) and more.
    pub fn to_json(&self, wall_ms: u64) -> Value {
        let mut value = json!({
            "seed": self.seed,
            "scenario": self.scenario,
            "verdict": self.verdict.name(),
            "checks_verdict": self.checks_verdict.name(),
            "expected_verdict": self.expected_verdict.name(),
            "beyond_model": self.beyond_model,
            "trace_hash": self.trace_hash,
            "ops": self.counts.ops,
            "sim_events": self.counts.events,
            "sim_ms": self.sim_ms,
            "wall_ms": wall_ms,
            "failures": self.failures.iter().map(|failure| json!({
                "check": failure.check, "time_ns": failure.time_ns, "message": failure.message,
                "window": failure.window, "replay": self.replay,
            })).collect::<Vec<_>>(),
            "checks": self.checks.iter().map(|outcome| json!({
                "name": outcome.checker, "verdict": outcome.verdict.name(),
                "window": outcome.window, "explanation": outcome.explanation,
            })).collect::<Vec<_>>(),
            "replay": self.replay,
            "trace_lines": self.trace_lines,
            "corrupted_members": self.corrupted_members,
        });
        value["counts"] = serde_json::to_value(&self.counts).expect("counts serialise");
        value["fault_kinds"] = json!(self.fault_kinds);
        value["marks"] = json!(self.marks);
        value
    }

    /// Whether the run failed the way its scenario expects (and so passes).
    pub fn failed_as_expected(&self) -> bool {
        self.verdict == Verdict::Pass && self.checks_verdict == Verdict::Fail
    }

    /// A few readable lines for a terminal.
    pub fn describe(&self, wall_ms: u64) -> String {
        let counts = &self.counts;
        let judged = if self.failed_as_expected() {
            let failed: Vec<&str> = self
                .failures
                .iter()
                .map(|failure| failure.check.as_str())
                .collect();
            format!(
                "failed as expected: {} failed, every other check held",
                failed.join(", ")
            )
        } else {
            format!(
                "checks {}, expected {}",
                self.checks_verdict.name(),
                self.expected_verdict.name()
            )
        };
        let mut text = format!(
            "scenario={} seed={} verdict={} ({judged}{})\ntrace_hash={} sim_ms={} wall_ms={wall_ms}\n\
             ops={} ok={} error={} unknown={} sim_events={} messages={} crashes={} restarts={} start_refused={} pauses={} partitions={} disk_faults={} clock_faults={} refused={}\n",
            self.scenario,
            self.seed,
            self.verdict.name(),
            if self.beyond_model { ", beyond the fault model" } else { "" },
            self.trace_hash,
            self.sim_ms,
            counts.ops,
            counts.ops_ok,
            counts.ops_error,
            counts.ops_unknown,
            counts.events,
            counts.messages,
            counts.crashes,
            counts.restarts,
            counts.start_refused,
            counts.pauses,
            counts.partitions,
            counts.disk_faults,
            counts.clock_faults,
            counts.faults_refused,
        );
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|outcome| format!("{}={}", outcome.checker, outcome.verdict.name()))
            .collect();
        text.push_str(&format!("checks: {}\n", checks.join(" ")));
        for failure in &self.failures {
            let window = if failure.window.is_empty() {
                String::new()
            } else {
                format!(" (ops {:?})", failure.window)
            };
            text.push_str(&format!(
                "{} {} at t={}ms{window}: {}\n  replay: {}\n",
                if self.failed_as_expected() {
                    "EXPECTED"
                } else {
                    "FAIL"
                },
                failure.check,
                failure.time_ns / 1_000_000,
                failure.message,
                self.replay
            ));
        }
        text
    }
}
