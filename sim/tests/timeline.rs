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
