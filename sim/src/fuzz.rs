//! `detcd sim fuzz`: many seeds of one scenario on J worker threads, each run single-threaded,
//! with a progress bar and a summary naming the replay command of every failing seed.
//!
//! Threads exist only here and never share a run; the wall clock is read only for the time
//! budget and the rate, never by a run. Results are reported sorted by seed, so the summary does
//! not depend on thread timing (only which seeds a time budget reached does).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
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
    /// Write each failing seed's artifact directory (`sim::artifact`) under `DIR/seed-N/`.
    pub out: Option<PathBuf>,
    /// Run every seed with buggify on.
    pub buggify: bool,
}

/// Worker threads at most: a typo such as `--jobs 100000` must not start that many threads.
pub const JOBS_COUNT_MAX: usize = 256;
/// Longest time budget accepted (a year): anything longer is a typo.
pub const BUDGET_SECONDS_MAX: u64 = 366 * 24 * 3600;
/// How often a progress line is printed when stderr is not a terminal (CI logs).
const PROGRESS_LINE_SECONDS: f64 = 10.0;

/// Set by the Ctrl-C handler: stop starting seeds and report what was found.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Parses a duration of wall time into seconds: `90` (seconds), `90s`, `5m` or `1h`. Zero and
/// durations beyond a year are refused.
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
    let seconds = value
        .checked_mul(scale)
        .filter(|seconds| *seconds <= BUDGET_SECONDS_MAX)
        .ok_or_else(|| format!("duration {text:?} is longer than a year"))?;
    if seconds == 0 {
        return Err(format!("duration {text:?} is zero: give at least 1s"));
    }
    Ok(seconds)
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
    /// `None`: run until the time budget is spent (or the seeds run out).
    seed_count: Option<u64>,
    first_seed: u64,
    jobs: usize,
}

impl Plan {
    /// The seed at `position` of this shard, or `None` past the last representable seed.
    fn seed_at(&self, position: u64) -> Option<u64> {
        position
            .checked_mul(self.shard_count)?
            .checked_add(self.shard_index)?
            .checked_add(self.first_seed)
    }
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
        (Some(0), _) => return Err("--seeds must be at least 1".into()),
        (Some(count), _) => Some(count),
        (None, Some(_)) => None,
        (None, None) => Some(100),
    };
    let jobs = match args.jobs {
        Some(0) => return Err("--jobs must be at least 1".into()),
        Some(jobs) if jobs > JOBS_COUNT_MAX => {
            return Err(format!(
                "--jobs {jobs} is more than {JOBS_COUNT_MAX} worker threads"
            ))
        }
        Some(jobs) => jobs,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let plan = Plan {
        scenario,
        budget_seconds,
        shard_index,
        shard_count,
        seed_count,
        first_seed: args.first_seed,
        jobs,
    };
    if plan.seed_at(0).is_none() {
        return Err(format!(
            "--first-seed {} plus shard index {shard_index} is past the largest seed {}",
            args.first_seed,
            u64::MAX
        ));
    }
    if let Some(count) = seed_count {
        if plan.seed_at(count - 1).is_none() {
            return Err(format!(
                "{count} seeds from --first-seed {} (shard {shard_index}/{shard_count}) run past the largest seed {}",
                args.first_seed,
                u64::MAX
            ));
        }
    }
    Ok(plan)
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

/// Runs `detcd sim fuzz`; returns the exit status (0 every seed passed, 1 some failed, 2 usage
/// error, 130 interrupted with no failure found).
pub fn fuzz_command(args: &FuzzArgs) -> i32 {
    let plan = match plan(args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    // A second handler cannot be installed (tests run several campaigns); the first one serves.
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    INTERRUPTED.store(false, Ordering::SeqCst);
    let progress = progress_bar(plan.seed_count);
    let stopwatch = Stopwatch::start();
    // Panics inside runs become failing reports with their message (`simulator_panic`,
    // `member_panic`); printing each one as well would bury the progress bar, so the hook stays
    // quiet while the pool runs. A panic outside a run is reported by `run_pool`.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = run_pool(&plan, &progress, &stopwatch, &INTERRUPTED);
    std::panic::set_hook(previous_hook);
    progress.finish_and_clear();
    let reports = match outcome {
        Ok(reports) => reports,
        Err(message) => {
            eprintln!("error: a fuzz worker failed outside any run: {message}");
            return 101;
        }
    };
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    if let Some(dir) = &args.out {
        let campaign = campaign_json(
            &plan,
            &reports,
            dir,
            stopwatch.elapsed_seconds(),
            interrupted,
        );
        if let Err(message) =
            write_failures(dir, &plan, &reports).and_then(|()| write_campaign(dir, &campaign))
        {
            eprintln!("error: {message}");
            return 2;
        }
    }
    let status = summarize(
        &plan.scenario.name,
        reports,
        stopwatch.elapsed_seconds(),
        plan.jobs,
        args.json,
        interrupted,
    );
    if interrupted && status == 0 {
        130
    } else {
        status
    }
}

/// Runs the plan's seeds on its worker threads and collects every report. Stops starting seeds
/// when the seeds or the time budget run out, or `interrupted` is set; seeds already running
/// finish and are reported. A worker that panicked outside a run is an error with its message.
fn run_pool(
    plan: &Plan,
    progress: &ProgressBar,
    stopwatch: &Stopwatch,
    interrupted: &AtomicBool,
) -> Result<Vec<RunReport>, String> {
    let next_position = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<RunReport>();
    let mut reports: Vec<RunReport> = Vec::new();
    let to_terminal = std::io::stderr().is_terminal();
    let mut worker_panic: Option<String> = None;
    std::thread::scope(|scope| {
        let mut workers = Vec::with_capacity(plan.jobs);
        for _ in 0..plan.jobs {
            let sender = sender.clone();
            let (next_position, stop) = (&next_position, &stop);
            workers.push(spawn_worker(scope, move || loop {
                if stop.load(Ordering::Relaxed) || interrupted.load(Ordering::Relaxed) {
                    break;
                }
                let position = next_position.fetch_add(1, Ordering::Relaxed);
                if plan.seed_count.is_some_and(|count| position >= count) {
                    break;
                }
                let Some(seed) = plan.seed_at(position) else {
                    break;
                };
                let (report, _) = run(&plan.scenario, seed, RunOptions::default());
                if sender.send(report).is_err() {
                    break;
                }
            }));
        }
        drop(sender);
        let mut failed_count = 0_u64;
        let mut last_line_seconds = 0.0;
        for report in receiver {
            failed_count += u64::from(report.verdict == Verdict::Fail);
            progress.inc(1);
            progress.set_message(format!("{failed_count} failed"));
            reports.push(report);
            let elapsed = stopwatch.elapsed_seconds();
            if !to_terminal && elapsed - last_line_seconds >= PROGRESS_LINE_SECONDS {
                last_line_seconds = elapsed;
                eprintln!(
                    "fuzz progress: {} seeds, {failed_count} failed, {elapsed:.0} s",
                    reports.len()
                );
            }
            if plan
                .budget_seconds
                .is_some_and(|budget| elapsed >= budget as f64)
            {
                stop.store(true, Ordering::Relaxed);
            }
        }
        for worker in workers {
            if let Err(panic) = worker.join() {
                worker_panic = Some(crate::process::panic_text(&panic));
            }
        }
    });
    match worker_panic {
        Some(message) => Err(message),
        None => Ok(reports),
    }
}

/// Spawns one worker of a scoped pool.
#[allow(
    clippy::disallowed_methods,
    reason = "fuzz workers each run whole seeds; no run is shared between threads"
)]
pub(crate) fn spawn_worker<'scope, 'env, F>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    work: F,
) -> std::thread::ScopedJoinHandle<'scope, ()>
where
    F: FnOnce() + Send + 'scope,
{
    scope.spawn(work)
}

/// Re-runs every failing seed with its artifacts kept and writes them under `dir/seed-N/`.
fn write_failures(dir: &Path, plan: &Plan, reports: &[RunReport]) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    for report in reports
        .iter()
        .filter(|report| report.verdict == Verdict::Fail)
    {
        let (again, artifacts) = run(
            &plan.scenario,
            report.seed,
            RunOptions {
                keep_artifacts: true,
            },
        );
        let seed_dir = dir.join(format!("seed-{}", report.seed));
        crate::artifact::write(&seed_dir, &plan.scenario, &again, &artifacts, 0)
            .map_err(|error| format!("cannot write {}: {error}", seed_dir.display()))?;
    }
    Ok(())
}

/// The campaign format's version (`campaign.json`); readers refuse a newer one.
pub const CAMPAIGN_FORMAT_VERSION: u32 = 1;

/// `campaign.json`: what one `sim fuzz --out DIR` ran and found, for the `reports` crate
/// (docs/artifacts.md describes the fields). Seeds run are positions `0..seeds_run` of the
/// shard: every seed a worker started finishes, so they are contiguous.
fn campaign_json(
    plan: &Plan,
    reports: &[RunReport],
    dir: &Path,
    wall_seconds: f64,
    interrupted: bool,
) -> serde_json::Value {
    let mut sorted: Vec<&RunReport> = reports.iter().collect();
    sorted.sort_by_key(|report| report.seed);
    let mut fault_kinds: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    let mut marks: std::collections::BTreeMap<&str, u64> = engine::marks::Mark::ALL
        .iter()
        .map(|mark| (mark.name(), 0))
        .collect();
    for report in &sorted {
        for (label, count) in &report.fault_kinds {
            *fault_kinds.entry(label.as_str()).or_insert(0) += count;
        }
        for (name, count) in &report.marks {
            *marks.entry(name.as_str()).or_insert(0) += count;
        }
    }
    let failures: Vec<serde_json::Value> = sorted
        .iter()
        .filter(|report| report.verdict == Verdict::Fail)
        .map(|report| {
            let artifact = format!("seed-{}", report.seed);
            json!({
                "seed": report.seed,
                "checks": report.failures.iter().map(|failure| failure.check.as_str()).collect::<Vec<_>>(),
                "explanation": report.failures.first().map(|failure| failure.message.as_str()).unwrap_or(""),
                "artifact": artifact,
                "replay": format!("detcd sim replay {}", dir.join(&artifact).display()),
                "run_command": report.replay,
                "trace_hash": report.trace_hash,
            })
        })
        .collect();
    json!({
        "format_version": CAMPAIGN_FORMAT_VERSION,
        "scenario": plan.scenario.name,
        "first_seed": plan.first_seed,
        "shard_index": plan.shard_index,
        "shard_count": plan.shard_count,
        "seeds_run": sorted.len(),
        "seeds_failed": failures.len(),
        "failed_as_expected": sorted.iter().filter(|report| report.failed_as_expected()).count(),
        "ops": sorted.iter().map(|report| report.counts.ops).sum::<u64>(),
        "failures": failures,
        "fault_kinds": fault_kinds,
        "marks": marks,
        "wall_seconds": wall_seconds,
        "seeds_per_second": sorted.len() as f64 / wall_seconds.max(1e-9),
        "jobs": plan.jobs,
        "interrupted": interrupted,
        "build": crate::artifact::BuildInfo::current(),
    })
}

/// Writes `campaign` as `dir/campaign.json`.
fn write_campaign(dir: &Path, campaign: &serde_json::Value) -> Result<(), String> {
    let path = dir.join("campaign.json");
    std::fs::write(&path, format!("{campaign:#}\n"))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

fn summarize(
    scenario: &str,
    mut reports: Vec<RunReport>,
    wall_seconds: f64,
    jobs: usize,
    as_json: bool,
    interrupted: bool,
) -> i32 {
    reports.sort_by_key(|report| report.seed);
    let failed: Vec<&RunReport> = reports
        .iter()
        .filter(|report| report.verdict == Verdict::Fail)
        .collect();
    let as_expected_count = reports
        .iter()
        .filter(|report| report.failed_as_expected())
        .count();
    let seeds_per_second = reports.len() as f64 / wall_seconds.max(1e-9);
    if as_json {
        let summary = json!({
            "scenario": scenario,
            "seeds": reports.len(),
            "failed_count": failed.len(),
            "failed_as_expected": as_expected_count,
            "interrupted": interrupted,
            "failed": failed.iter().map(|report| json!({
                "seed": report.seed, "replay": report.replay, "trace_hash": report.trace_hash,
                "failures": report.failures,
            })).collect::<Vec<_>>(),
            "seeds_per_second": seeds_per_second,
            "wall_seconds": wall_seconds,
            "jobs": jobs,
        });
        println!("{summary}");
        return i32::from(!failed.is_empty());
    }
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
    if interrupted {
        println!("interrupted: the summary covers the seeds that finished");
    }
    let expected_part = if as_expected_count > 0 {
        format!(" failed_as_expected={as_expected_count}")
    } else {
        String::new()
    };
    println!(
        "fuzz scenario={scenario} seeds={} failed={}{expected_part} jobs={jobs} wall_s={wall_seconds:.1} seeds_per_second={seeds_per_second:.1}",
        reports.len(),
        failed.len()
    );
    if !failed.is_empty() {
        crate::cli::print_path_hint();
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
        assert!(
            parse_duration_seconds("0s").is_err(),
            "a zero budget runs nothing"
        );
        assert!(
            parse_duration_seconds("99999999999999999h").is_err(),
            "overflow is refused, not a panic"
        );
    }

    /// Goal: nonsense campaign arguments are refused with a message before anything runs:
    /// zero seeds or jobs, too many jobs, and seed ranges that overflow u64 (they used to panic
    /// silently); a range that ends exactly at the largest seed is fine.
    /// Method: plan each argument set.
    #[test]
    fn campaign_arguments_are_validated() {
        let base = super::FuzzArgs {
            seeds: Some(3),
            ..super::FuzzArgs::default()
        };
        let refused = |args: super::FuzzArgs| super::plan(&args).err().unwrap_or_default();
        assert!(refused(super::FuzzArgs {
            seeds: Some(0),
            ..base.clone()
        })
        .contains("--seeds"));
        assert!(refused(super::FuzzArgs {
            jobs: Some(0),
            ..base.clone()
        })
        .contains("--jobs"));
        assert!(refused(super::FuzzArgs {
            jobs: Some(100_000),
            ..base.clone()
        })
        .contains("256"));
        let past_end = super::FuzzArgs {
            first_seed: u64::MAX,
            ..base.clone()
        };
        assert!(refused(past_end).contains("largest seed"));
        let wide_shard = super::FuzzArgs {
            shard: Some(format!("0/{}", u64::MAX)),
            ..base.clone()
        };
        assert!(refused(wide_shard).contains("largest seed"));
        let plan = super::plan(&super::FuzzArgs {
            first_seed: u64::MAX - 2,
            ..base
        })
        .expect("the last three seeds are valid");
        assert_eq!(plan.seed_at(2), Some(u64::MAX));
        assert_eq!(plan.seed_at(3), None);
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
