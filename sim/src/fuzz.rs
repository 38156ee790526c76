//! `detcd sim fuzz`: many seeds of one scenario on J worker threads, each run single-threaded,
//! with a progress bar and a summary naming the replay command of every failing seed.
//!
//! Threads exist only here and never share a run; the wall clock is read only for the time
//! budget and the rate, never by a run. Results are reported sorted by seed, so the summary does
//! not depend on thread timing (only which seeds a time budget reached does).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::{scenario_with_bugs, Stopwatch};
use crate::report::{run, RunOptions, RunReport};
use crate::scenario::Verdict;

/// `detcd sim fuzz` options.
#[derive(Clone, Debug, Default)]
pub struct FuzzArgs {
    /// Scenario name; `default` when absent.
    pub scenario: Option<String>,
    /// Run this many seeds.
    pub seeds: Option<u64>,
    /// Or run seeds until this much wall time passed (`30s`, `5m`, `1h`).
    pub time: Option<String>,
    /// Worker threads; all cores when absent.
    pub jobs: Option<usize>,
    /// The first seed; seeds count up from it.
    pub first_seed: u64,
    /// Run only shard `i` of `n` (`i/n`): the seeds `first_seed + k*n + i`, so `n` machines
    /// with the same arguments cover disjoint seeds.
    pub shard: Option<String>,
    /// End with one JSON line.
    pub json: bool,
    /// Zoo bugs to switch on, by name (needs a build with the `bug-zoo` feature).
    pub bugs: Vec<String>,
    /// Run every seed with buggify on.
    pub buggify: bool,
}

/// Parses `90`, `90s`, `5m` or `1h` into seconds.
pub fn parse_duration_seconds(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text
        .char_indices()
        .find(|(_, character)| !character.is_ascii_digit())
    {
        Some((position, _)) => text.split_at(position),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}: use 30s, 5m or 1h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("bad duration unit in {text:?}: use s, m or h")),
    };
    Ok(value * scale)
}

/// Parses a shard `i/n` with `i < n`.
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("bad shard {text:?}: use i/n with 0 <= i < n, e.g. 2/8");
    let (index, count) = text.split_once('/').ok_or_else(bad)?;
    let index: u64 = index.trim().parse().map_err(|_| bad())?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok((index, count))
}

/// A campaign resolved from the arguments.
struct Plan {
    scenario: crate::scenario::Scenario,
    budget_seconds: Option<u64>,
    shard_index: u64,
    shard_count: u64,
    /// `None`: run until the time budget is spent.
    seed_count: Option<u64>,
    first_seed: u64,
    jobs: usize,
}

fn plan(args: &FuzzArgs) -> Result<Plan, String> {
    let scenario = crate::cli::with_buggify(
        scenario_with_bugs(args.scenario.as_deref(), &args.bugs)?,
        args.buggify,
    );
    let budget_seconds = args
        .time
        .as_deref()
        .map(parse_duration_seconds)
        .transpose()?;
    let (shard_index, shard_count) = args
        .shard
        .as_deref()
        .map(parse_shard)
        .transpose()?
        .unwrap_or((0, 1));
    let seed_count = match (args.seeds, budget_seconds) {
        (Some(count), _) => Some(count),
        (None, Some(_)) => None,
        (None, None) => Some(100),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    Ok(Plan {
        scenario,
        budget_seconds,
        shard_index,
        shard_count,
        seed_count,
        first_seed: args.first_seed,
        jobs,
    })
}

fn progress_bar(seed_count: Option<u64>) -> ProgressBar {
    let progress = match seed_count {
        Some(count) => ProgressBar::new(count),
        None => ProgressBar::new_spinner(),
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress
}

/// Runs `detcd sim fuzz`; returns the exit status (1 if any seed failed).
pub fn fuzz_command(args: &FuzzArgs) -> i32 {
    let plan = match plan(args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    let progress = progress_bar(plan.seed_count);
    let stopwatch = Stopwatch::start();
    // Panics inside runs become failing reports with their message; printing each one as well
    // would bury the progress bar, so the hook stays quiet while the pool runs.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let reports = run_pool(&plan, &progress, &stopwatch);
    std::panic::set_hook(previous_hook);
    progress.finish_and_clear();
    summarize(
        &plan.scenario.name,
        reports,
        stopwatch.elapsed_seconds(),
        plan.jobs,
        args.json,
    )
}

/// Runs the plan's seeds on its worker threads and collects every report.
fn run_pool(plan: &Plan, progress: &ProgressBar, stopwatch: &Stopwatch) -> Vec<RunReport> {
    let next_position = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<RunReport>();
    let mut reports: Vec<RunReport> = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs {
            let sender = sender.clone();
            let (next_position, stop) = (&next_position, &stop);
            spawn_worker(scope, move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let position = next_position.fetch_add(1, Ordering::Relaxed);
                if plan.seed_count.is_some_and(|count| position >= count) {
                    break;
                }
                let seed = plan.first_seed + position * plan.shard_count + plan.shard_index;
                let (report, _) = run(&plan.scenario, seed, RunOptions::default());
                if sender.send(report).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        let mut failed_count = 0_u64;
        for report in receiver {
            failed_count += u64::from(report.verdict == Verdict::Fail);
            progress.inc(1);
            progress.set_message(format!("{failed_count} failed"));
            reports.push(report);
            if plan
                .budget_seconds
                .is_some_and(|budget| stopwatch.elapsed_seconds() >= budget as f64)
            {
                stop.store(true, Ordering::Relaxed);
            }
        }
    });
    reports
}

/// Spawns one worker of a scoped pool.
#[allow(
    clippy::disallowed_methods,
    reason = "fuzz workers each run whole seeds; no run is shared between threads"
)]
pub(crate) fn spawn_worker<'scope, 'env, F>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    work: F,
) where
    F: FnOnce() + Send + 'scope,
{
    scope.spawn(work);
}

fn summarize(
    scenario: &str,
    mut reports: Vec<RunReport>,
    wall_seconds: f64,
    jobs: usize,
    as_json: bool,
) -> i32 {
    reports.sort_by_key(|report| report.seed);
    let failed: Vec<&RunReport> = reports
        .iter()
        .filter(|report| report.verdict == Verdict::Fail)
        .collect();
    let seeds_per_second = reports.len() as f64 / wall_seconds.max(1e-9);
    println!(
        "fuzz scenario={scenario} seeds={} failed={} jobs={jobs} wall_s={wall_seconds:.1} seeds_per_second={seeds_per_second:.1}",
        reports.len(),
        failed.len()
    );
    for report in &failed {
        let first = report
            .failures
            .first()
            .map(|failure| format!("{}: {}", failure.check, failure.message))
            .unwrap_or_default();
        println!(
            "FAIL seed={} {first}\n  replay: {}",
            report.seed, report.replay
        );
    }
    if as_json {
        let summary = json!({
            "scenario": scenario,
            "seeds": reports.len(),
            "failed": failed.iter().map(|report| json!({
                "seed": report.seed, "replay": report.replay, "trace_hash": report.trace_hash,
                "failures": report.failures,
            })).collect::<Vec<_>>(),
            "seeds_per_second": seeds_per_second,
            "jobs": jobs,
        });
        println!("{summary}");
    }
    i32::from(!failed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_seconds;

    /// Goal: durations parse with and without units, and garbage is refused with a message.
    /// Method: a few good and bad inputs.
    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_seconds("90"), Ok(90));
        assert_eq!(parse_duration_seconds("30s"), Ok(30));
        assert_eq!(parse_duration_seconds("5m"), Ok(300));
        assert_eq!(parse_duration_seconds("1h"), Ok(3600));
        assert!(parse_duration_seconds("5x").is_err());
        assert!(parse_duration_seconds("m").is_err());
    }

    /// Goal: shards parse only when the index is below the count.
    /// Method: good and bad inputs.
    #[test]
    fn shards_parse() {
        assert_eq!(super::parse_shard("2/8"), Ok((2, 8)));
        assert_eq!(super::parse_shard("0/1"), Ok((0, 1)));
        assert!(super::parse_shard("8/8").is_err());
        assert!(super::parse_shard("1/0").is_err());
        assert!(super::parse_shard("x").is_err());
    }
}
