//! The scripted timeline end to end: entries strike at their times on every seed, roles resolve
//! to members, and the faults a run hands back (`RunReport::faults_ran`) re-run as a timeline
//! with the random schedule off.

use sim::timeline::{Role, ScriptedFault, Target, TimedFault, Timeline};
use sim::{run, RunOptions, Scenario, Verdict};

fn at(time_ms: u64, fault: ScriptedFault) -> TimedFault {
    TimedFault {
        time_ns: time_ms * 1_000_000,
        fault,
    }
}

fn scripted() -> Scenario {
    let mut scenario = Scenario::no_faults();
    scenario.name = "scripted".into();
    scenario.safety_ms = 20_000;
    scenario.timeline = Timeline {
        entries: vec![
            at(
                3_000,
                ScriptedFault::Crash {
                    target: Target::Role(Role::Leader),
                    restart_after_ms: 1_000,
                },
            ),
            at(
                8_000,
                ScriptedFault::Partition {
                    groups: vec![vec![Target::Role(Role::Leader)]],
                    cut: Vec::new(),
                    flapping: false,
                    heal_after_ms: 2_000,
                },
            ),
            at(
                12_000,
                ScriptedFault::Pause {
                    target: Target::Role(Role::AFollower),
                    resume_after_ms: 500,
                },
            ),
        ],
    };
    scenario
}

/// Goal: a scripted timeline runs the same entries at the same times on every seed, with roles
/// resolved to concrete members, and the run passes. Method: run three seeds of a scripted
/// scenario with no random faults; each must report exactly the three entries, at their times,
/// each naming a member id, and count one crash, one partition and one pause.
#[test]
fn timeline_strikes_on_every_seed_with_concrete_targets() {
    let scenario = scripted();
    for seed in [1, 2, 3] {
        let (report, _) = run(&scenario, seed, RunOptions::default());
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "seed {seed}: {:?}",
            report.failures
        );
        let ran = &report.faults_ran.entries;
        let times: Vec<u64> = ran.iter().map(|entry| entry.time_ns / 1_000_000).collect();
        assert_eq!(times, vec![3_000, 8_000, 12_000], "seed {seed}: {ran:?}");
        for entry in ran {
            assert!(
                entry.fault.targets().is_empty()
                    || entry
                        .fault
                        .targets()
                        .iter()
                        .all(|target| matches!(target, Target::Member(_))),
                "{entry:?}"
            );
        }
        assert!(
            matches!(ran[1].fault, ScriptedFault::Partition { ref cut, .. } if cut.len() == 8),
            "one member cut from four, both ways: {:?}",
            ran[1]
        );
        assert_eq!(report.counts.crashes, 1, "seed {seed}");
        assert_eq!(report.counts.partitions, 1, "seed {seed}");
        assert_eq!(report.counts.pauses, 1, "seed {seed}");
    }
}

/// Goal: every fault the random schedule injects comes back as a concrete timeline entry, and
/// that timeline, run with the random schedule off, injects the same faults at the same times.
/// Method: run seeds of scenarios with random partitions, crashes, pauses, disk and clock
/// faults; re-run each with `with_timeline_only(faults_ran)` and compare what ran.
#[test]
fn faults_ran_re_run_as_a_timeline() {
    for (name, seed) in [
        ("crash_restart", 3),
        ("partitions_only", 4),
        ("disk_faults", 5),
    ] {
        let scenario = Scenario::by_name(name).expect("built in");
        let (report, _) = run(&scenario, seed, RunOptions::default());
        assert!(
            report.faults_ran.entries.len() >= 5,
            "{name}: {:?}",
            report.faults_ran
        );
        let replay = scenario.with_timeline_only(report.faults_ran.clone());
        replay.validate().expect("a recorded timeline is valid");
        let (again, _) = run(&replay, seed, RunOptions::default());
        assert_eq!(
            again.faults_ran.describe(),
            report.faults_ran.describe(),
            "{name} seed {seed}"
        );
    }
}

fn trace_of(scenario: &Scenario, seed: u64) -> (sim::RunReport, Vec<String>) {
    let (report, artifacts) = run(
        scenario,
        seed,
        RunOptions {
            keep_artifacts: true,
        },
    );
    let lines = artifacts.trace.into_iter().map(|line| line.text).collect();
    (report, lines)
}

fn line_after(lines: &[String], start: usize, needle: &str) -> Option<usize> {
    lines
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, line)| line.contains(needle))
        .map(|(index, _)| index)
}

/// Goal: the new faults do what they say, on a correct engine that passes: a follower cut
/// off until the leader compacted past it comes back through a snapshot install; a leader
/// transfer elects the named member; a learner joins from an empty disk; a compaction storm
/// sends compactions. Method: one scripted scenario with small snapshot intervals, its trace
/// read for the effect of each entry, on three seeds.
#[test]
fn new_faults_take_effect() {
    let mut scenario = Scenario::no_faults();
    scenario.name = "new_faults".into();
    scenario.safety_ms = 30_000;
    scenario.spare_member_count = 1;
    scenario.member.snapshot_interval_entries = 100;
    scenario.timeline = Timeline {
        entries: vec![
            at(
                2_000,
                ScriptedFault::FallBehind {
                    target: Target::Role(Role::AFollower),
                    heal_after_ms: 15_000,
                },
            ),
            at(20_000, ScriptedFault::AddLearner { member: None }),
            at(
                22_000,
                ScriptedFault::TransferLeader {
                    to: Target::Role(Role::AFollower),
                },
            ),
            at(
                24_000,
                ScriptedFault::CompactionStorm { duration_ms: 3_000 },
            ),
        ],
    };
    for seed in [1, 2, 3] {
        let (report, lines) = trace_of(&scenario, seed);
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "seed {seed}: {:?}",
            report.failures
        );
        let ran = &report.faults_ran.entries;
        let ScriptedFault::FallBehind {
            target: Target::Member(behind),
            ..
        } = ran[0].fault
        else {
            panic!("seed {seed}: {ran:?}");
        };
        let healed = line_after(&lines, 0, "partition healed").expect("healed");
        assert!(
            lines[healed].starts_with("t=") && !lines[healed].starts_with("t=17."),
            "healed by the snapshot, before its deadline: {}",
            lines[healed]
        );
        assert!(
            line_after(&lines, healed, &format!("n{behind} snapshot index="))
                .is_some_and(|index| lines[index].contains("installed=true")),
            "seed {seed}: n{behind} did not install a snapshot after the heal"
        );
        assert!(
            line_after(&lines, 0, "membership voters=n1,n2,n3,n4,n5 learners=n6").is_some(),
            "seed {seed}: the learner did not join"
        );
        let ScriptedFault::TransferLeader {
            to: Target::Member(to),
        } = ran[2].fault
        else {
            panic!("seed {seed}: {ran:?}");
        };
        let moved = line_after(&lines, 0, "move-leader").expect("transfer sent");
        let next_leader = line_after(&lines, moved, "leader term=").expect("a new leader");
        assert!(
            lines[next_leader].contains(&format!(" n{to} leader")),
            "seed {seed}: {}",
            lines[next_leader]
        );
        assert!(ran.len() == 4, "seed {seed}: {ran:?}");
    }
}

/// Goal: a member being replaced counts as down for the fault budget until its replacement is
/// promoted. Method: three members (one may be down), replace a follower, and script a crash
/// while the new learner catches up: it must be refused; the same crash after the promotion
/// must run.
#[test]
fn a_replaced_member_counts_as_down() {
    let mut scenario = Scenario::no_faults();
    scenario.name = "replace_budget".into();
    scenario.member_count = 3;
    scenario.spare_member_count = 1;
    scenario.budget = sim::scenario::FaultBudget::in_model(3);
    scenario.safety_ms = 20_000;
    let crash = || ScriptedFault::Crash {
        target: Target::Role(Role::AFollower),
        restart_after_ms: 500,
    };
    scenario.timeline = Timeline {
        entries: vec![
            at(
                3_000,
                ScriptedFault::ReplaceMember {
                    target: Target::Role(Role::AFollower),
                },
            ),
            at(4_000, crash()),
            at(12_000, crash()),
        ],
    };
    for seed in [1, 2] {
        let (report, lines) = trace_of(&scenario, seed);
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "seed {seed}: {:?}",
            report.failures
        );
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("t=4.000s fault refused crash (budget)")),
            "seed {seed}: the crash during the replacement ran"
        );
        assert!(
            line_after(&lines, 0, "membership voters=n1,n2,n3,n4").is_some()
                || line_after(&lines, 0, "learners=")
                    .is_some_and(|index| lines[index..].iter().any(|line| line.contains("n4"))),
            "seed {seed}: the spare did not join"
        );
        let crashes_after: Vec<&String> = lines
            .iter()
            .filter(|line| line.starts_with("t=12.000s") && line.ends_with(" crash"))
            .collect();
        assert_eq!(crashes_after.len(), 1, "seed {seed}: {crashes_after:?}");
    }
}
