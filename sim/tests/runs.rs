//! Whole runs of the default scenario: what a run reports, its artifacts in the history format,
//! and the golden trace of a short fixed seed.

use std::collections::BTreeMap;

use serde_json::Value;
use sim::{run, RunOptions, Scenario, Verdict};

/// Checks that are about safety (everything except liveness).
fn safety_failures(report: &sim::RunReport) -> Vec<String> {
    report
        .failures
        .iter()
        .filter(|failure| failure.check != "liveness")
        .map(|failure| format!("{failure:?}"))
        .collect()
}

/// Goal: the default scenario meets its shape (5 members, 60 s of faults, at least 2,000
/// operations, faults injected), passes every check, and carries the exact replay command.
/// Method: run three seeds and inspect the reports and their JSON.
#[test]
fn default_scenario_reports_verdict_and_replay() {
    let scenario = Scenario::default_scenario();
    for seed in [1_u64, 2, 3] {
        let (report, _) = run(&scenario, seed, RunOptions::default());
        assert!(
            report.counts.ops >= 2_000,
            "seed {seed}: only {} ops",
            report.counts.ops
        );
        assert!(report.sim_ms >= 60_000);
        let injected = report.counts.crashes
            + report.counts.partitions
            + report.counts.disk_faults
            + report.counts.pauses;
        assert!(injected > 0, "seed {seed}: no fault injected");
        assert!(
            safety_failures(&report).is_empty(),
            "seed {seed}: {:?}",
            safety_failures(&report)
        );
        assert_eq!(
            report.replay,
            format!("detcd sim run --scenario default --seed {seed}")
        );
        assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.failures);
        let json = report.to_json(0);
        assert_eq!(json["verdict"], "pass");
        assert_eq!(json["failures"], Value::Array(Vec::new()));
        assert_eq!(json["seed"], Value::from(seed));
    }
}

/// Goal: the history follows docs/history-format.md: every line has the required fields, ids
/// are unique, an unknown outcome has both `return` and `result` null, and one client never has
/// two operations outstanding at once. Method: run with artifacts and check every line.
#[test]
fn history_lines_follow_the_spec() {
    let (report, artifacts) = run(
        &Scenario::default_scenario(),
        9,
        RunOptions {
            keep_artifacts: true,
        },
    );
    let mut ids = std::collections::BTreeSet::new();
    let mut per_client: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for line in &artifacts.history {
        let value: Value = serde_json::from_str(line).expect("valid JSON");
        assert!(
            ids.insert(value["id"].as_u64().expect("id")),
            "duplicate id in {line}"
        );
        assert!(value["op"]["type"].is_string());
        let call = value["call"].as_u64().expect("call");
        match value["return"].as_u64() {
            Some(returned) => {
                assert!(returned >= call);
                assert!(value["result"]["type"].is_string(), "{line}");
                per_client
                    .entry(value["client"].as_u64().unwrap())
                    .or_default()
                    .push((call, returned));
            }
            None => {
                assert!(
                    value["return"].is_null() && value["result"].is_null(),
                    "{line}"
                );
                per_client
                    .entry(value["client"].as_u64().unwrap())
                    .or_default()
                    .push((call, call + 1));
            }
        }
    }
    assert_eq!(ids.len() as u64, report.counts.ops);
    for (client, mut spans) in per_client {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "client {client} issued two operations at once"
            );
        }
    }
    for line in &artifacts.watches {
        let value: Value = serde_json::from_str(line).expect("valid JSON");
        assert!(
            value["watch"].is_u64()
                && value["events"].is_array()
                && value.get("canceled").is_some()
        );
    }
    assert!(!artifacts.watches.is_empty());
}

/// Goal: the traces of short fixed seeds stay the same; a diff means behaviour changed or
/// determinism broke. Method: snapshot the first 40 lines (VOPR style) of a crash-heavy default
/// run and of a partition-heavy run, which show every partition kind's cut links.
#[test]
fn golden_traces_of_short_seeds() {
    let mut crashes = Scenario::default_scenario();
    crashes.safety_ms = 10_000;
    crashes.liveness_bound_ms = 2_000;
    crashes.faults.crashes_per_minute = 30;
    crashes.faults.pauses_per_minute = 12;
    let mut partitions = Scenario::partitions_only();
    partitions.safety_ms = 20_000;
    partitions.liveness_bound_ms = 2_000;
    for (name, scenario, seed) in [
        ("default_seed_7", crashes, 7),
        ("partitions_only_seed_3", partitions, 3),
    ] {
        let (_, artifacts) = run(
            &scenario,
            seed,
            RunOptions {
                keep_artifacts: true,
            },
        );
        let lines: Vec<&str> = artifacts
            .trace
            .iter()
            .take(40)
            .map(|line| line.text.as_str())
            .collect();
        insta::assert_snapshot!(name, lines.join("\n"));
    }
}

/// Goal: the beyond-model scenario fails the way it claims (members refuse corrupt disks, so
/// liveness is lost) while every safety checker holds; and the verdict requires the named
/// checker: the same run judged against another expected checker fails.
/// Method: run the corruption-on-a-majority scenario, read each checker's own result, then
/// re-run the seed expecting `durability` instead.
#[test]
fn beyond_model_runs_fail_only_in_the_named_checker() {
    let scenario = Scenario::disk_corruption_on_a_majority();
    assert_eq!(scenario.expected_failures, vec!["liveness".to_string()]);
    for seed in [1_u64, 2] {
        let (report, _) = run(&scenario, seed, RunOptions::default());
        assert!(report.beyond_model);
        assert!(
            report.corrupted_members.len() > 2,
            "corruption reached a majority: {:?}",
            report.corrupted_members
        );
        for outcome in &report.checks {
            let failed = outcome.verdict.name() != "pass";
            assert_eq!(
                failed,
                outcome.checker == "liveness",
                "seed {seed}: {} was {}",
                outcome.checker,
                outcome.verdict.name()
            );
        }
        assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.failures);
        assert!(report.failed_as_expected());
        let mut wrong_expectation = scenario.clone();
        wrong_expectation.expected_failures = vec!["durability".into()];
        let (judged, _) = run(&wrong_expectation, seed, RunOptions::default());
        assert_eq!(judged.verdict, Verdict::Fail);
        assert!(judged
            .failures
            .iter()
            .any(|failure| failure.check == "expected_verdict"
                && failure.message.contains("liveness failed")));
    }
}

/// Goal: in-model scenarios never corrupt a majority and never have more than a minority down
/// because of injected crashes. Method: run the disk and crash scenarios and check the report.
#[test]
fn in_model_faults_respect_the_budget() {
    for name in ["disk_faults", "crash_restart", "default"] {
        let scenario = Scenario::by_name(name).unwrap();
        for seed in 0..4 {
            let (report, _) = run(&scenario, seed, RunOptions::default());
            assert!(
                report.corrupted_members.len() <= 2,
                "{name} seed {seed}: {:?}",
                report.corrupted_members
            );
            assert!(
                safety_failures(&report).is_empty(),
                "{name} seed {seed}: {:?}",
                safety_failures(&report)
            );
        }
    }
}

/// Goal: injected crashes and pauses never leave more than a minority down at once during the
/// safety phase. Method: replay the trace of crash-heavy runs, tracking which members are down
/// (crash or pause until restart or resume), and check the peak against the budget.
#[test]
fn crashes_and_pauses_stay_within_the_down_budget() {
    let scenario = Scenario::crash_restart();
    for seed in 0..4 {
        let (_, artifacts) = run(
            &scenario,
            seed,
            RunOptions {
                keep_artifacts: true,
            },
        );
        let mut down = std::collections::BTreeSet::new();
        let mut peak = 0;
        let mut saw_crash = false;
        for line in &artifacts.trace {
            let words: Vec<&str> = line.text.split(' ').collect();
            if words.get(1) == Some(&"heal") {
                break;
            }
            match words.get(2).copied() {
                Some("crash") | Some("pause") => {
                    saw_crash |= words[2] == "crash";
                    down.insert(words[1].to_string());
                }
                Some("restart") | Some("resume") => {
                    down.remove(words[1]);
                }
                _ => {}
            }
            peak = peak.max(down.len());
        }
        assert!(saw_crash, "seed {seed}: no crash injected");
        assert!(
            peak <= scenario.budget.down_members_max as usize,
            "seed {seed}: {peak} down at once"
        );
        assert!(peak >= 1);
    }
}

/// Goal: the history file a run writes says the same as what the run checked in memory: parsed
/// back with the checkers' reader (with the watch lines), it has as many operations and checks
/// linearizable too.
/// Method: run a seed with artifacts, check in memory (the run's own verdict), then parse the
/// written lines and check them again.
#[test]
fn written_history_checks_like_the_in_memory_one() {
    let (report, artifacts) = run(
        &Scenario::default_scenario(),
        11,
        RunOptions {
            keep_artifacts: true,
        },
    );
    let in_memory = report
        .checks
        .iter()
        .find(|check| check.checker == "linearizability")
        .expect("the run checked linearizability");
    assert_eq!(in_memory.verdict, sim::checking::CheckVerdict::Pass);
    // The spec allows watch lines in the same file; the checker uses their events as evidence.
    let text = [artifacts.history.join("\n"), artifacts.watches.join("\n")].join("\n");
    let history = checkers::history::parse_history(&text).expect("the written history parses");
    assert_eq!(history.ops.len() as u64, report.counts.ops);
    let written = checkers::linear::check_linearizable(&history, &Default::default());
    assert_eq!(written.verdict, checkers::Verdict::Ok);
}

/// Goal: a client retries a failed attempt as a new operation and never hides a possible
/// double effect: when one client sends the same put twice in a row (the retry), the earlier
/// attempt was not acknowledged: its outcome is unknown or a definite error, and the retry has
/// its own operation id and a later call. Method: parse the recorded histories of a few
/// default seeds (faults make timeouts and "not leader" answers), pair each put with the
/// client's previous operation, and check every pair with the same key and value; at least one
/// retry must occur, or the check proved nothing.
#[test]
fn a_retried_put_is_a_new_operation_after_an_unacknowledged_one() {
    use checkers::history::{parse_history, Request, Response};
    let scenario = Scenario::default_scenario();
    let mut retries_count = 0;
    for seed in [1, 2, 3] {
        let options = RunOptions {
            keep_artifacts: true,
        };
        let (_, artifacts) = run(&scenario, seed, options);
        let history = parse_history(&artifacts.history.join("\n")).expect("a valid history");
        let mut previous_by_client = BTreeMap::new();
        for op in &history.ops {
            if let Some(previous) = previous_by_client.insert(op.client, op) {
                let (Request::Put(retry), Request::Put(first)) = (&op.request, &previous.request)
                else {
                    continue;
                };
                if (&retry.key, &retry.value) != (&first.key, &first.value) {
                    continue;
                }
                retries_count += 1;
                assert!(op.id != previous.id && op.call > previous.call);
                assert!(
                    !matches!(previous.result, Some(Response::Put { .. })),
                    "seed {seed}: put {} was retried as {} after it was acknowledged",
                    previous.id,
                    op.id
                );
            }
        }
    }
    assert!(retries_count > 0, "no retried put in three faulty seeds");
}

/// Goal: a client's retries of one request (identical unknown-outcome operations) never turn
/// into a false watch violation. Method: two correct-engine seeds whose watch check once failed
/// (the linearization search tried only the latest-called of identical retries even with watch
/// observations, and the watch check then held an event against a retry called after it
/// arrived, or fell back to a witness the events disagree with): both must pass every check.
#[test]
fn retried_requests_do_not_fail_the_watch_check() {
    for (name, seed) in [("compaction_heavy", 34), ("default", 23)] {
        let scenario = Scenario::by_name(name).expect("a built-in scenario");
        let (report, _) = run(&scenario, seed, RunOptions::default());
        let failures = safety_failures(&report);
        assert!(failures.is_empty(), "{name} seed {seed}: {failures:?}");
        assert_eq!(report.verdict, Verdict::Pass, "{name} seed {seed}");
    }
}
