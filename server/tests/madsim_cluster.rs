//! The real server (`detcd serve`'s code: gRPC services, member task, peer transport, timers,
//! disk worker) under madsim: 3- and 5-member clusters on simulated nodes, driven by gRPC
//! clients, with members killed and restarted, paused and resumed, and links clogged, the
//! clients' history checked for linearizability and etcd's watch guarantees. madsim makes the
//! whole run a function of its seed, so a failing seed replays exactly.
//!
//! Built only with `RUSTFLAGS="--cfg madsim"` (README: the server under madsim):
//! `RUSTFLAGS="--cfg madsim" cargo test --release -p server --target-dir target/madsim --test madsim_cluster`.
//! `MADSIM_TEST_SEED=N` picks the first seed, `MADSIM_TEST_NUM=K` the number of seeds,
//! `DETCD_MADSIM_OPS=M` the operations per seed.

#![cfg(madsim)]

mod madsim_support;

use madsim_support::{check_determinism, run, RunConfig, RunReport};

/// Reads a number from the environment, or the default; a malformed value is refused by name.
fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?}: expected a whole number")),
        Err(_) => default,
    }
}

/// The command that replays one seed of `test`.
fn replay_command(test: &str, seed: u64, operation_count: u64) -> String {
    format!(
        "MADSIM_TEST_SEED={seed} MADSIM_TEST_NUM=1 DETCD_MADSIM_OPS={operation_count} RUSTFLAGS=\"--cfg madsim\" cargo test --release -p server --target-dir target/madsim --test madsim_cluster -- --exact {test} --nocapture"
    )
}

/// Runs the seeds of one test (from the environment, or `default_seeds` of `default_operations`
/// each), printing a line per seed, and fails with every failing seed's replay command.
fn run_seeds(test: &str, member_count: usize, default_seeds: u64, default_operations: u64) {
    let first_seed = env_number("MADSIM_TEST_SEED", 1);
    let seed_count = env_number("MADSIM_TEST_NUM", default_seeds);
    let operation_count = env_number("DETCD_MADSIM_OPS", default_operations);
    let mut failures = Vec::new();
    for seed in first_seed..first_seed + seed_count {
        let config = RunConfig {
            seed,
            member_count,
            operation_count,
            client_count: 4,
            faults: env_number("DETCD_MADSIM_FAULTS", 1) != 0,
        };
        let outcome = std::panic::catch_unwind(|| run(config));
        let replay = replay_command(test, seed, operation_count);
        match outcome {
            Ok(report) => {
                print_report(seed, &report);
                if !report.passed(member_count) {
                    let kept = keep_history(seed, &report);
                    println!("seed {seed} FAILED; history in {kept}; replay: {replay}");
                    failures.push(replay);
                }
            }
            Err(_) => {
                println!("seed {seed} PANICKED; replay: {replay}");
                failures.push(replay);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing seeds, replay with:\n{}",
        failures.join("\n")
    );
}

fn print_report(seed: u64, report: &RunReport) {
    println!(
        "seed {seed}: {} ops ({} unknown), {} watches ({} events), {} faults, final reads {}, linearizability {:?}, watch {:?}, history hash {:016x}",
        report.history.ops.len(),
        report.unknown_count,
        report.history.watches.len(),
        report.history.watches.iter().map(|watch| watch.events.len()).sum::<usize>(),
        report.faults.len(),
        report.final_read_member_count,
        report.linearizability,
        report.watch,
        report.history_hash,
    );
}

/// Writes a failing seed's history and faults where `detcd check` can read them.
fn keep_history(seed: u64, report: &RunReport) -> String {
    let directory = std::env::temp_dir().join(format!("detcd-madsim-failure-seed-{seed}"));
    let _ = std::fs::create_dir_all(&directory);
    let _ = std::fs::write(
        directory.join("history.jsonl"),
        checkers::history::write_history(&report.history),
    );
    let _ = std::fs::write(directory.join("faults.txt"), report.faults.join("\n"));
    directory.display().to_string()
}

/// Goal: a 3-member cluster of the real server keeps every acknowledged write and its watch
/// promises through kills (the leader's too), pauses and clogged links.
/// Method: a few seeds of a few hundred operations each (the long run takes
/// `MADSIM_TEST_NUM=100 DETCD_MADSIM_OPS=2000`); each history is checked, and the members
/// must all answer a linearizable read after healing.
#[test]
fn three_members_under_faults() {
    run_seeds("three_members_under_faults", 3, 3, 400);
}

/// Goal: the same for 5 members. Method: as above, fewer seeds.
#[test]
fn five_members_under_faults() {
    run_seeds("five_members_under_faults", 5, 2, 400);
}

/// Goal: one seed is one run: the same seed twice in one process gives the same faults and the
/// same history, byte for byte (its hash), on 3 and 5 members; other seeds give other histories
/// (so the hash is not blind).
/// Method: seeds 7, 8 and 9 on 3 members and seeds 7 and 8 on 5 members, with faults, 300
/// operations each (`DETCD_MADSIM_OPS` overrides), every seed run twice with the other runs in
/// between (process-wide state, such as counters other crates keep, moves on between the two).
/// A difference prints the first differing history line.
#[test]
fn same_seed_same_history() {
    let operation_count = env_number("DETCD_MADSIM_OPS", 300);
    let cases = [(3, 7), (3, 8), (3, 9), (5, 7), (5, 8)];
    let config = |(member_count, seed)| RunConfig {
        seed,
        member_count,
        operation_count,
        client_count: 4,
        faults: true,
    };
    let first: Vec<RunReport> = cases.iter().map(|case| run(config(*case))).collect();
    let second: Vec<RunReport> = cases.iter().map(|case| run(config(*case))).collect();
    let mut differing = Vec::new();
    for (((member_count, seed), first), second) in cases.iter().zip(&first).zip(&second) {
        assert!(
            first.history.ops.len() as u64 >= operation_count,
            "{}",
            first.history.ops.len()
        );
        println!(
            "{member_count} members, seed {seed}: history hash {:016x} then {:016x}, {} faults",
            first.history_hash,
            second.history_hash,
            first.faults.len()
        );
        if first.history_hash == second.history_hash && first.faults == second.faults {
            continue;
        }
        let first_text = checkers::history::write_history(&first.history);
        let second_text = checkers::history::write_history(&second.history);
        if let Some((line, (a, b))) = first_text
            .lines()
            .zip(second_text.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            println!("first difference at history line {}:\n{a}\n{b}", line + 1);
        }
        println!("faults: {:?} vs {:?}", first.faults, second.faults);
        differing.push(format!("{member_count} members, seed {seed}"));
    }
    assert!(
        differing.is_empty(),
        "ran twice with different histories: {differing:?}"
    );
    let mut hashes: Vec<u64> = first.iter().map(|report| report.history_hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), cases.len(), "two seeds ran alike");
}

/// Goal: the same, as madsim itself checks it: a seed's second run draws the same random
/// numbers at the same virtual times as its first, on 3 and 5 members.
/// Method: `Runtime::check_determinism` on seed 11 of 3 members and seed 12 of 5, with faults,
/// 300 operations each; it panics at the first differing draw, naming its virtual time.
#[test]
fn same_seed_same_schedule() {
    let operation_count = env_number("DETCD_MADSIM_OPS", 300);
    for (member_count, seed) in [(3, 11), (5, 12)] {
        let report = check_determinism(RunConfig {
            seed,
            member_count,
            operation_count,
            client_count: 4,
            faults: true,
        });
        print_report(seed, &report);
        assert!(report.passed(member_count), "seed {seed} failed its checks");
    }
}
