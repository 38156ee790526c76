//! Tests of scenario files: the library against the built-ins, round trips, and every kind of
//! bad file with its exact message.

use super::*;
use sim::Scenario;

/// Goal: each library file is exactly its built-in scenario written out (so `--scenario NAME`
/// from the library keeps every seed's trace hash), and the file parses back to the built-in.
/// Method: write each built-in and compare with the embedded text; parse the text and compare
/// with the built-in. With `DETCD_WRITE_LIBRARY=1` the files are rewritten instead, for after a
/// deliberate change to a built-in.
#[test]
fn library_files_are_the_built_ins() {
    for name in Scenario::BUILT_IN {
        let built_in = Scenario::by_name(name).expect("built in");
        let expected_text = built_in_file(&built_in);
        if std::env::var_os("DETCD_WRITE_LIBRARY").is_some() {
            let path = format!("{}/library/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            std::fs::write(&path, &expected_text).expect("write library file");
            continue;
        }
        let text = show(name).unwrap_or_else(|| panic!("{name} is in the library"));
        assert_eq!(
            text, expected_text,
            "library/{name}.toml differs from the built-in: rerun this test with DETCD_WRITE_LIBRARY=1 after a deliberate change"
        );
        let parsed = library_scenario(name).expect("present").expect("parses");
        assert_eq!(parsed.scenario, built_in, "{name}");
        assert!(parsed.description.is_some(), "{name} says what it hunts");
    }
    for (name, text) in &LIBRARY[Scenario::BUILT_IN.len()..] {
        assert!(
            text.starts_with("# Hunts: "),
            "library/{name}.toml opens with the bug class it hunts"
        );
        let parsed = library_scenario(name).expect("present").expect("parses");
        assert_eq!(parsed.scenario.name, *name);
        assert!(parsed.description.is_some(), "{name} says what it hunts");
        assert!(Scenario::by_name(name).is_none(), "{name} is a file only");
    }
    let names: Vec<&str> = LIBRARY.iter().map(|(name, _)| *name).collect();
    assert_eq!(&names[..Scenario::BUILT_IN.len()], &Scenario::BUILT_IN[..]);
    assert!(LIBRARY.len() >= Scenario::BUILT_IN.len() + 15);
}

/// Goal: every library scenario runs, and one seed of each reaches the verdict it expects.
/// Method: parse each file and run seed 1 with the engine.
#[test]
fn every_library_scenario_runs_one_seed_to_its_verdict() {
    for (name, _) in LIBRARY {
        let scenario = library_scenario(name)
            .expect("present")
            .expect("parses")
            .scenario;
        let (report, _) = sim::run(&scenario, 1, sim::RunOptions::default());
        assert_eq!(
            report.verdict,
            sim::Verdict::Pass,
            "{name} seed 1 did not meet its expectation: {:?}",
            report.failures
        );
        assert_eq!(report.expected_verdict, scenario.expected_verdict, "{name}");
    }
}

/// Goal: a short file overrides only what it names, in human units, and keeps every other
/// field of its base. Method: parse a small file and compare with the base changed by hand.
#[test]
fn a_short_file_overrides_its_base() {
    let text = r#"
name = "slow_disks_with_crashes"
description = "Slow syncs widen the window between a write and its sync."
extends = "crash_restart"
safety_ms = "2m"

[disk]
sync_latency_ns_min = "2ms"
sync_latency_ns_max = "20ms"

[faults]
crashes_per_minute = "1/s"
disk_faults_per_minute = { bit_flip = "2/min", lost_write = 1 }

[network]
drop_ppm = "0.5%"
"#;
    let parsed = parse(text, "slow.toml").expect("parses");
    let mut expected = Scenario::crash_restart();
    expected.name = "slow_disks_with_crashes".into();
    expected.safety_ms = 120_000;
    expected.disk.sync_latency_ns_min = 2_000_000;
    expected.disk.sync_latency_ns_max = 20_000_000;
    expected.faults.crashes_per_minute = 60;
    expected.faults.disk_faults_per_minute = vec![
        (sim::disk::DiskFaultKind::BitFlip, 2),
        (sim::disk::DiskFaultKind::LostWrite, 1),
    ];
    expected.network.drop_ppm = 5_000;
    assert_eq!(parsed.scenario, expected);
    assert_eq!(
        parsed.description.as_deref(),
        Some("Slow syncs widen the window between a write and its sync.")
    );
    let unnamed = parse(
        "member_count = 3\n[budget]\ncorrupted_members_max = 1\ndown_members_max = 1\n",
        "dir/three_members.toml",
    )
    .expect("parses");
    assert_eq!(
        unnamed.scenario.name, "three_members",
        "the file's stem names it"
    );
}

/// Goal: writing any built-in changed in many fields and reading it back gives the same value
/// (Scenario -> TOML -> Scenario). Method: change fields of several kinds and round-trip.
#[test]
fn scenarios_round_trip_through_files() {
    let mut scenario = Scenario::default_scenario();
    scenario.name = "round_trip".into();
    scenario.workload.think_ns_min = 1_500_000;
    scenario.network.drop_ppm = 12_345;
    scenario.faults.clock_drift_ppm_max = 7;
    scenario.member.kv_hash_interval_entries = 99;
    let text = to_toml(&scenario, Some("a \"quoted\" description"));
    let parsed = parse(&text, "round_trip.toml").expect("parses");
    assert_eq!(parsed.scenario, scenario, "{text}");
    assert_eq!(
        parsed.description.as_deref(),
        Some("a \"quoted\" description")
    );
}

fn error_of(text: &str) -> String {
    parse(text, "bad.toml")
        .expect_err("must be refused")
        .to_string()
}

/// Goal: each kind of bad file is refused with file, line, key and why, in the exact words a
/// user sees. Method: one small bad file per kind.
#[test]
fn bad_files_say_file_line_key_and_why() {
    assert_eq!(
        error_of("member_count = 3\nmembr_count = 5\n"),
        "bad.toml:2: membr_count: unknown key; did you mean `member_count`? (valid here: at, beyond_model, budget, description, disk, drain_ms, expected_failures, expected_verdict, extends, faults, liveness_bound_ms, member, member_count, name, network, safety_ms, spare_member_count, workload)"
    );
    assert_eq!(
        error_of("[network]\ndrop_ppm = true\n"),
        "bad.toml:2: network.drop_ppm: expected a whole number or text such as \"5%\""
    );
    assert_eq!(
        error_of("safety_ms = \"-5s\"\n"),
        "bad.toml:1: safety_ms: \"-5s\" is negative: a duration is at least 0"
    );
    assert_eq!(
        error_of("safety_ms = -5\n"),
        "bad.toml:1: safety_ms: -5 is negative: expected 0 or more"
    );
    assert_eq!(
        error_of("[faults]\ncrashes_per_minute = \"3 a minute\"\n"),
        "bad.toml:2: faults.crashes_per_minute: \"3 a minute\" is not a rate: write e.g. \"3/min\", \"1/s\" or \"30/h\""
    );
    assert_eq!(
        error_of("[faults]\npartitions_per_minute = { isolate_everyone = 1 }\n"),
        "bad.toml:2: faults.partitions_per_minute[0][0]: unknown variant `isolate_everyone`, expected one of `symmetric`, `one_way`, `isolate_leader`, `majority_minority`, `bridge`, `flapping`"
    );
    assert_eq!(
        error_of("[budget]\ndown_members_max = 3\n"),
        "bad.toml:1: budget: the fault budget exceeds a minority: set beyond_model and an expected verdict"
    );
    assert_eq!(
        error_of("[workload]\nthink_ns_min = \"2s\"\nthink_ns_max = \"1s\"\n"),
        "bad.toml:2: workload.think_ns_min: workload.think_ns_min (2000000000) is above workload.think_ns_max (1000000000)"
    );
    assert_eq!(
        error_of("extends = \"nightly\"\n"),
        format!(
            "bad.toml:1: extends: no built-in scenario is called \"nightly\"; built in: {}",
            Scenario::BUILT_IN.join(", ")
        )
    );
    let invalid_toml = error_of("member_count = \n");
    assert!(
        invalid_toml.starts_with("bad.toml:1: not valid TOML:"),
        "{invalid_toml}"
    );
}

/// Goal: `load` finds library scenarios by name, files by path, and says what it tried
/// otherwise. Method: load a name, a written file and a missing one.
#[test]
fn load_takes_names_and_paths() {
    assert_eq!(
        load("crash_restart").expect("library").scenario,
        Scenario::crash_restart()
    );
    let path = std::env::temp_dir().join(format!("detcd-scenario-{}.toml", std::process::id()));
    std::fs::write(&path, "name = \"from_a_file\"\nmember_count = 3\n[budget]\ncorrupted_members_max = 1\ndown_members_max = 1\n").expect("write");
    let loaded = load(path.to_str().expect("utf-8 path")).expect("file");
    assert_eq!(loaded.scenario.member_count, 3);
    std::fs::remove_file(&path).expect("remove");
    let missing = load("no_such_scenario").unwrap_err();
    assert!(
        missing.contains("default") && missing.contains(".toml"),
        "{missing}"
    );
}

/// Goal: docs/scenarios.md documents every key a file can set, so a field added to the
/// simulator cannot stay undocumented. Method: walk the serialised default scenario and look
/// for each key, in backticks, in the document.
#[test]
fn every_key_is_documented() {
    let doc = include_str!("../../docs/scenarios.md");
    let mut value = serde_json::to_value(Scenario::default_scenario()).expect("serialises");
    value["member"]["bugs"] = serde_json::Value::Array(Vec::new());
    let mut missing = Vec::new();
    let mut stack = vec![value];
    while let Some(current) = stack.pop() {
        if let serde_json::Value::Object(fields) = current {
            for (key, inner) in fields {
                // A key is documented in backticks; a section as its TOML header.
                let documented = if inner.is_object() {
                    doc.contains(&format!("[{key}]")) || doc.contains(&format!(".{key}]"))
                } else {
                    doc.contains(&format!("`{key}`"))
                };
                if !documented {
                    missing.push(key);
                }
                stack.push(inner);
            }
        }
    }
    assert!(missing.is_empty(), "docs/scenarios.md lacks {missing:?}");
}

/// Goal: the issue's example timeline reads into the simulator's timeline exactly, roles and
/// ids alike, and survives a round trip through a written file. Method: parse a file with
/// several entries, compare with hand-built entries, write and parse again.
#[test]
fn timeline_entries_parse_and_round_trip() {
    use sim::timeline::{CrashPointTrigger, Role, ScriptedFault, Target, TimedFault};
    let text = r#"
member_count = 5

[[at]]
time = "12s"
fault = "partition"
groups = [[1, 2], [3, 4, 5]]
heal_after = "3s"

[[at]]
time = "20s"
fault = "crash"
target = "leader"
restart_after = "500ms"

[[at]]
time = "25s"
fault = "disk"
kind = "latency_spike"
target = "leader"
window = "4s"

[[at]]
time = "30s"
fault = "clock_drift"
target = "a_follower"
drift_ppm = "-5%"

[[at]]
time = "31s"
fault = "crash_point"
target = 3
trigger = "ack_sent"
"#;
    let parsed = parse(text, "script.toml").expect("parses").scenario;
    let entries = &parsed.timeline.entries;
    assert_eq!(entries.len(), 5);
    assert_eq!(
        entries[0],
        TimedFault {
            time_ns: 12_000_000_000,
            fault: ScriptedFault::Partition {
                groups: vec![
                    vec![Target::Member(1), Target::Member(2)],
                    vec![Target::Member(3), Target::Member(4), Target::Member(5)],
                ],
                cut: Vec::new(),
                flapping: false,
                heal_after_ms: 3_000,
            },
        }
    );
    assert_eq!(
        entries[1].fault,
        ScriptedFault::Crash {
            target: Target::Role(Role::Leader),
            restart_after_ms: 500
        }
    );
    assert_eq!(
        entries[3].fault,
        ScriptedFault::ClockDrift {
            target: Target::Role(Role::AFollower),
            drift_ppm: -50_000
        }
    );
    assert_eq!(
        entries[4].fault,
        ScriptedFault::CrashPoint {
            target: Target::Member(3),
            trigger: CrashPointTrigger::AckSent
        }
    );
    let written = to_toml(&parsed, None);
    assert!(written.contains("[[at]]\ntime = \"12s\"\n"), "{written}");
    let again = parse(&written, "script.toml")
        .expect("parses again")
        .scenario;
    assert_eq!(again, parsed, "{written}");
}

/// Goal: each bad timeline entry is refused with file, line, entry, key and why, in the exact
/// words a user sees. Method: one small bad file per mistake.
#[test]
fn bad_timeline_entries_say_where_and_why() {
    let cases = [
        (
            "[[at]]\ntime = \"1s\"\nfault = \"partiton\"\n",
            "bad.toml:3: at[0].fault: unknown fault \"partiton\"; did you mean `partition`? (valid: partition, crash, pause, disk, clock_drift, clock_jump, crash_point, wal_flip, figure_eight, transfer_leader, fall_behind, compaction_storm, add_learner, promote_learner, remove_member, replace_member)",
        ),
        (
            "[[at]]\ntime = \"1s\"\nfault = \"crash\"\nrestart_after = \"1s\"\ntarget = \"leader\"\nheal_afterr = \"1s\"\n",
            "bad.toml:6: at[0].heal_afterr: unknown key for fault \"crash\" (valid: time, fault, target, restart_after)",
        ),
        (
            "[[at]]\ntime = \"1s\"\nfault = \"crash\"\nrestart_aftr = \"1s\"\n",
            "bad.toml:4: at[0].restart_aftr: unknown key for fault \"crash\"; did you mean `restart_after`? (valid: time, fault, target, restart_after)",
        ),
        (
            "[[at]]\ntime = \"1s\"\nfault = \"partition\"\ngroups = [[1, 2], [3]]\n",
            "bad.toml:2: at[0]: fault \"partition\" needs key `heal_after`",
        ),
        (
            "[[at]]\nfault = \"figure_eight\"\n",
            "bad.toml:2: at[0]: fault \"figure_eight\" needs key `time`",
        ),
        (
            "[[at]]\ntime = 12\nfault = \"figure_eight\"\n",
            "bad.toml:2: at[0].time: expected a duration such as \"3s\"",
        ),
        (
            "[[at]]\ntime = \"-1s\"\nfault = \"figure_eight\"\n",
            "bad.toml:2: at[0].time: \"-1s\" is negative: a duration is at least 0",
        ),
        (
            "[[at]]\ntime = \"1s\"\nfault = \"crash\"\ntarget = \"leadr\"\nrestart_after = \"1s\"\n",
            "bad.toml:4: at[0].target: unknown role \"leadr\"; did you mean `leader`? (valid: leader, a_follower, the_most_behind, a_minority, the_learner)",
        ),
        (
            "[[at]]\ntime = \"1s\"\nfault = \"partition\"\ngroups = [[1, 2], [7]]\nheal_after = \"1s\"\n",
            "bad.toml:4: at[0].groups: member 7 does not exist (members are 1..=5)",
        ),
        (
            "safety_ms = \"10s\"\n[[at]]\ntime = \"12s\"\nfault = \"figure_eight\"\n",
            "bad.toml:3: at[0].time: 12000 ms is not within the safety phase (safety_ms = 10000)",
        ),
        (
            "[[at]]\ntime = \"1s\"\nfault = \"disk\"\nkind = \"bit_flop\"\n",
            "bad.toml:4: at[0].kind: unknown kind \"bit_flop\"; did you mean `bit_flip`? (valid: failed_sync, write_error, bit_flip, latent_read_error, lost_write, misdirected_write, latency_spike, disk_full)",
        ),
        (
            "timeline = []\n",
            "bad.toml:1: timeline: write the timeline as [[at]] tables, one per fault",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error_of(text), expected, "{text}");
    }
}

/// Goal: a reader sees exactly what a file turns into, and a change to the parser or to a
/// library file that alters a parsed scenario shows up in review. Method: insta snapshots of the
/// parsed form (every field, defaults filled in) of a short override file and of two library
/// files, one with a scripted timeline aimed by role and one with membership changes.
#[test]
fn parsed_forms_are_snapshotted() {
    let short = parse(
        "extends = \"crash_restart\"\nsafety_ms = \"90s\"\n[faults]\ncrashes_per_minute = \"4/min\"\n",
        "short_override.toml",
    )
    .expect("parses");
    insta::assert_debug_snapshot!("short_override", short);
    for name in [
        "leader_isolated_during_compaction",
        "member_replaced_under_load",
    ] {
        let parsed = library_scenario(name)
            .expect("in the library")
            .expect("parses");
        insta::assert_debug_snapshot!(name, parsed);
    }
}

/// Goal: random member replacements never take the cluster's quorum within the model. Method:
/// two seeds of `membership_churn_at_random` on which the correct engine once lost liveness (a
/// replacement that stopped after the removal left four voters while the budget still allowed
/// two down; a replacement started while two voters carried corrupting faults that then killed
/// them) must pass every check.
#[test]
fn random_replacements_keep_a_quorum() {
    let file = library_scenario("membership_churn_at_random")
        .expect("in the library")
        .expect("parses");
    for seed in [130, 158] {
        let (report, _) = sim::run(&file.scenario, seed, sim::RunOptions::default());
        assert!(
            report.failures.is_empty(),
            "seed {seed}: {:?}",
            report.failures
        );
    }
}

#[test]
fn the_nightly_workflow_runs_every_library_scenario() {
    // The nightly campaign's matrix is a list in YAML; a scenario added to the library but not
    // there would never run at night. Each name must appear as a matrix entry line.
    let workflow = include_str!("../../.github/workflows/nightly.yml");
    let entries: Vec<&str> = workflow
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .collect();
    let missing: Vec<String> = list()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !entries.contains(&name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not in nightly.yml's matrix: {missing:?}"
    );
}

/// The zoo test of random churn on four voters (sim/tests/zoo_membership.rs) builds its scenario
/// in Rust; it must be the library file a user runs.
#[test]
fn the_even_cluster_churn_file_is_the_zoo_tests_scenario() {
    let file = library_scenario("membership_churn_on_an_even_cluster")
        .expect("in the library")
        .expect("parses");
    assert_eq!(
        file.scenario,
        Scenario::membership_churn_on_an_even_cluster()
    );
}

/// The zoo test of the auth bug (sim/tests/zoo_auth.rs) builds its scenario in Rust; it must be
/// the library file a user runs.
#[test]
fn the_permissions_file_is_the_zoo_tests_scenario() {
    let file = library_scenario("permissions_revoked_under_load")
        .expect("in the library")
        .expect("parses");
    assert_eq!(file.scenario, Scenario::permissions_revoked_under_load());
}

/// The zoo test of the lock bug (sim/tests/zoo_locks.rs) and the lock tests build their
/// scenario in Rust; it must be the library file a user runs.
#[test]
fn the_locks_file_is_the_zoo_tests_scenario() {
    let file = library_scenario("locks_under_partitions")
        .expect("in the library")
        .expect("parses");
    assert_eq!(file.scenario, Scenario::locks_under_partitions());
}

/// The election tests (sim/tests/locks.rs, sim/tests/zoo_locks.rs) build their scenario in
/// Rust; it must be the library file a user runs.
#[test]
fn the_elections_file_is_the_election_tests_scenario() {
    let file = library_scenario("elections_under_partitions")
        .expect("in the library")
        .expect("parses");
    assert_eq!(file.scenario, Scenario::elections_under_partitions());
}

/// Goal: lock traffic is opt-in and its keys are checked like any other: a built-in has none,
/// `[workload.locks]` turns it on with documented defaults, and a bad value names the file,
/// line and key. Method: parse a few short files.
#[test]
fn lock_traffic_keys_parse_with_defaults_and_errors() {
    assert!(Scenario::default_scenario().workload.locks.is_none());
    let on = crate::parse("[workload.locks]\n", "locks.toml").expect("parses");
    assert_eq!(
        on.scenario.workload.locks,
        Some(sim::lock_traffic::LockTraffic::default())
    );
    let set =
        crate::parse("[workload.locks]\nhold_ms_max = \"2s\"\n", "locks.toml").expect("parses");
    assert_eq!(
        set.scenario.workload.locks.map(|locks| locks.hold_ms_max),
        Some(2_000)
    );
    let error = error_of("[workload.locks]\npause_ppm = \"150%\"\n");
    assert!(error.contains("workload.locks.pause_ppm"), "{error}");
    let error = error_of("[workload.locks]\nhold_ms = 3\n");
    assert!(
        error.contains(":2: workload.locks.hold_ms") && error.contains("hold_ms_min"),
        "{error}"
    );
}

/// Goal: auth traffic is opt-in and its keys are checked like any other: a built-in has none,
/// `[workload.auth]` turns it on with documented defaults, and a bad value names the file,
/// line and key. Method: parse a few short files.
#[test]
fn auth_traffic_keys_parse_with_defaults_and_errors() {
    assert!(Scenario::default_scenario().workload.auth.is_none());
    let on = crate::parse("[workload.auth]\n", "auth.toml").expect("parses");
    assert_eq!(
        on.scenario.workload.auth,
        Some(sim::auth_traffic::AuthTraffic::default())
    );
    let error = error_of("[workload.auth]\nchange_ppm = \"150%\"\n");
    assert!(error.contains(":2: workload.auth.change_ppm"), "{error}");
    let error = error_of("[workload.auth]\nchange_pm = 3\n");
    assert!(
        error.contains(":2: workload.auth.change_pm") && error.contains("change_ppm"),
        "{error}"
    );
    let error = error_of("[workload]\nclient_count = 1\n[workload.auth]\n");
    assert!(error.contains("workload.client_count"), "{error}");
}
