//! The logic behind `detcd sim run`: run seeds, print reports, write artifacts, and the
//! stopwatch that `fuzz` and `bench` share to measure wall time for humans and benchmarks.
//!
//! This is the only place (with `fuzz` and `bench`) that reads the wall clock, and only to report how long
//! runs took; no run ever sees it. Argument parsing stays in the binary.

use std::path::PathBuf;

use crate::report::{run, RunOptions};
use crate::scenario::{Scenario, Verdict};

/// A wall-clock stopwatch for reports.
#[derive(Debug)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts now.
    #[allow(
        clippy::disallowed_methods,
        reason = "wall time is reported to humans, never fed into a run"
    )]
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    /// Milliseconds since the start.
    pub fn elapsed_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    /// Seconds since the start, as a float for rates.
    pub fn elapsed_seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// `detcd sim run` options.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    /// Scenario name; `default` when absent.
    pub scenario: Option<String>,
    /// The seed.
    pub seed: u64,
    /// End with one JSON line.
    pub json: bool,
    /// Write the run's artifact directory here (`sim::artifact`: `artifact.json`,
    /// `scenario.toml`, history, watches, trace, faults, events and summary).
    pub out: Option<PathBuf>,
    /// Run twice and fail if the trace hashes differ.
    pub check_determinism: bool,
    /// Zoo bugs to switch on, by name (needs a build with the `bug-zoo` feature).
    pub bugs: Vec<String>,
    /// Run with buggify on, whatever the scenario's share of buggified seeds.
    pub buggify: bool,
}

/// Resolves a scenario name or file for the command line; see `set_scenario_resolver`.
pub type ScenarioResolver = fn(&str) -> Result<Scenario, String>;

static SCENARIO_RESOLVER: std::sync::OnceLock<ScenarioResolver> = std::sync::OnceLock::new();

/// Installs how the command line turns `--scenario NAME|FILE.toml` into a scenario. The binary
/// installs the `scenarios` crate's loader (the library and TOML files), which this crate cannot
/// call itself (`scenarios` depends on `sim`). Without one, only the built-in names resolve.
/// The first call wins; runs never consult it (they take a `Scenario` value).
pub fn set_scenario_resolver(resolver: ScenarioResolver) {
    let _first_wins = SCENARIO_RESOLVER.set(resolver);
}

/// The scenario called `name` (or the default), or a message listing the known ones.
pub fn scenario_named(name: Option<&str>) -> Result<Scenario, String> {
    let name = name.unwrap_or("default");
    if let Some(resolver) = SCENARIO_RESOLVER.get() {
        return resolver(name);
    }
    Scenario::by_name(name).ok_or_else(|| {
        format!(
            "unknown scenario {name:?}; built-in scenarios: {}",
            Scenario::BUILT_IN.join(", ")
        )
    })
}

/// The zoo bugs called `names`, or why they cannot be switched on: an unknown name (the
/// message lists the zoo), or a build without the `bug-zoo` feature.
pub fn bugs_named(names: &[String]) -> Result<engine::zoo::BugSet, String> {
    if names.is_empty() {
        return Ok(engine::zoo::BugSet::EMPTY);
    }
    if !engine::zoo::COMPILED_IN {
        return Err(
            "this build has no bug zoo: build with `cargo build --release --features bug-zoo`"
                .into(),
        );
    }
    names
        .iter()
        .try_fold(engine::zoo::BugSet::EMPTY, |set, name| {
            engine::zoo::Bug::by_name(name)
                .map(|bug| set.with(bug))
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        engine::zoo::Bug::ALL.iter().map(|bug| bug.name()).collect();
                    format!(
                        "unknown zoo bug {name:?}; the zoo has: {}",
                        known.join(", ")
                    )
                })
        })
}

/// The scenario called `name` (or the default) with the zoo bugs called `bugs` switched on.
pub fn scenario_with_bugs(name: Option<&str>, bugs: &[String]) -> Result<Scenario, String> {
    let mut scenario = scenario_named(name)?;
    scenario.member.bugs = bugs_named(bugs)?;
    Ok(scenario)
}

/// `scenario` with buggify on in every seed when `force` (`--buggify`).
pub fn with_buggify(mut scenario: Scenario, force: bool) -> Scenario {
    if force {
        scenario.member.buggify_seeds_ppm = crate::rng::PPM;
    }
    scenario
}

/// Runs `detcd sim run`; returns the exit status (0 pass, 1 fail, 2 usage error).
pub fn run_command(args: &RunArgs) -> i32 {
    let scenario = match scenario_with_bugs(args.scenario.as_deref(), &args.bugs) {
        Ok(scenario) => with_buggify(scenario, args.buggify),
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    let options = RunOptions {
        keep_artifacts: args.out.is_some(),
    };
    let stopwatch = Stopwatch::start();
    let (mut report, artifacts) = run(&scenario, args.seed, options);
    let wall_ms = stopwatch.elapsed_ms();
    let mut determinism_line = None;
    if args.check_determinism {
        let (again, _) = run(&scenario, args.seed, options);
        determinism_line = Some(format!(
            "determinism: ran seed {} twice: trace hashes {} and {} ({})",
            args.seed,
            report.trace_hash,
            again.trace_hash,
            if again.trace_hash == report.trace_hash {
                "equal"
            } else {
                "DIFFER"
            }
        ));
        if again.trace_hash != report.trace_hash {
            report.verdict = Verdict::Fail;
            report.failures.push(crate::invariants::Failure {
                check: "determinism".into(),
                time_ns: 0,
                message: format!(
                    "the same seed gave trace hashes {} and {}",
                    report.trace_hash, again.trace_hash
                ),
                window: Vec::new(),
            });
        }
    }
    if let Some(dir) = &args.out {
        if let Err(error) = crate::artifact::write(dir, &scenario, &report, &artifacts, wall_ms) {
            eprintln!(
                "error: could not write artifacts to {}: {error}",
                dir.display()
            );
            return 2;
        }
    }
    if args.json {
        // With --json, stdout holds the JSON object only.
        println!("{}", report.to_json(wall_ms));
    } else {
        print!("{}", report.describe(wall_ms));
        if let Some(line) = determinism_line {
            println!("{line}");
        }
        if !report.failures.is_empty() {
            print_path_hint();
        }
    }
    i32::from(report.verdict == Verdict::Fail)
}

/// Replay commands start with `detcd`; when that is not on PATH (after the README's
/// `cargo run`), says once how to run them.
pub fn print_path_hint() {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("detcd").is_file()));
    if !on_path {
        println!(
            "note: `detcd` is not on PATH: run a replay as `cargo run --release -- sim run ...`, or install the binary with `cargo install --path .`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{run_command, scenario_named, RunArgs};

    /// Goal: `sim run --out DIR` writes the four artifacts, the summary carries the fields other
    /// tools rely on, and the exit status follows the verdict. Method: run the default scenario
    /// into a temporary directory and read the files back.
    #[test]
    fn run_command_writes_artifacts_and_summary() {
        let dir = std::env::temp_dir().join(format!("detcd-sim-cli-test-{}", std::process::id()));
        let args = RunArgs {
            seed: 4,
            out: Some(dir.clone()),
            ..RunArgs::default()
        };
        let status = run_command(&args);
        for name in [
            "history.jsonl",
            "watches.jsonl",
            "trace.jsonl",
            "events.jsonl",
            "summary.json",
        ] {
            assert!(dir.join(name).is_file(), "{name} missing");
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        for field in [
            "seed",
            "scenario",
            "verdict",
            "trace_hash",
            "ops",
            "sim_events",
            "sim_ms",
            "wall_ms",
            "failures",
        ] {
            assert!(summary.get(field).is_some(), "summary lacks {field}");
        }
        assert_eq!(status, i32::from(summary["verdict"] == "fail"));
        let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
        assert_eq!(
            history.lines().count() as u64,
            summary["ops"].as_u64().unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(scenario_named(Some("no_such_scenario"))
            .unwrap_err()
            .contains("default"));
    }
}
