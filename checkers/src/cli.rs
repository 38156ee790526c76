//! The command-line layer of the checkers: `detcd check FILE...` and `detcd bench check`.
//!
//! This is the only module that reads files and clocks: verdicts never depend on time, but the
//! user is told how long checking took (`check_ms`, which excludes reading). It prints; it does
//! not decide anything a library caller could not decide through `check_all`.

use crate::generate::{generate, generate_jepsen, GenerateConfig, JEPSEN_OPS_COUNT};
use crate::history::{parse_history, History, HistoryError};
use crate::linear::{check_linearizable, Explain, LinearConfig, LinearReport};
use crate::watch::check_watches;
use crate::Verdict;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit status: every file linearizable and every watch held.
pub const EXIT_OK: i32 = 0;
/// Exit status: some history is not linearizable (or a watch guarantee broke).
pub const EXIT_VIOLATION: i32 = 1;
/// Exit status: an input could not be read or parsed.
pub const EXIT_UNREADABLE: i32 = 2;
/// Exit status: a check gave up undecided.
pub const EXIT_UNKNOWN: i32 = 3;

#[allow(clippy::disallowed_methods)] // Reason: check_ms is reported to the user; verdicts never read it.
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn read(path: &Path) -> Result<History, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
    parse_history(&text).map_err(|error: HistoryError| format!("{}: {error}", path.display()))
}

/// A history to check must hold operations: an empty file, or a file of watch lines passed
/// where the history belongs, is a mistake to report, not a history that trivially passes.
fn has_operations(path: &Path, history: History) -> Result<History, String> {
    if !history.ops.is_empty() {
        return Ok(history);
    }
    if history.watches.is_empty() {
        return Err(format!(
            "{}: no operation lines: a history holds one JSON object per line with \"op\" (see docs/history-format.md)",
            path.display()
        ));
    }
    Err(format!(
        "{}: {} watch lines and no operation line: pass watch streams with --watches FILE beside the history",
        path.display(),
        history.watches.len()
    ))
}

/// A `--watches` file must hold watch lines.
fn read_watches(path: &Path) -> Result<History, String> {
    let history = read(path)?;
    if history.watches.is_empty() {
        return Err(format!(
            "{}: no watch lines: a watch file holds one JSON object per line with \"watch\" (see docs/history-format.md)",
            path.display()
        ));
    }
    Ok(history)
}

fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "linearizable",
        Verdict::Violation { .. } => "not linearizable",
        Verdict::Unknown { .. } => "unknown",
    }
}

fn status_of(verdict: &Verdict) -> i32 {
    match verdict {
        Verdict::Ok => EXIT_OK,
        Verdict::Violation { .. } => EXIT_VIOLATION,
        Verdict::Unknown { .. } => EXIT_UNKNOWN,
    }
}

/// Unreadable beats violation beats unknown beats ok.
fn worse(left: i32, right: i32) -> i32 {
    let rank = |status: i32| match status {
        EXIT_UNREADABLE => 3,
        EXIT_VIOLATION => 2,
        EXIT_UNKNOWN => 1,
        _ => 0,
    };
    if rank(right) > rank(left) {
        right
    } else {
        left
    }
}

/// `detcd check FILE... [--watches FILE] [--json] [--explain fast|full]`: one verdict line per
/// file; returns the exit status (0 all linearizable, 1 a violation, 2 unreadable input, 3
/// undecided). `explain` chooses how much to spend shrinking a violation's window; the verdict
/// is the same either way.
pub fn check_command(
    files: &[PathBuf],
    watches: Option<&Path>,
    json: bool,
    explain: Explain,
    out: &mut dyn Write,
) -> i32 {
    let config = LinearConfig {
        explain,
        ..LinearConfig::default()
    };
    let extra_watches = match watches.map(read_watches).transpose() {
        Ok(found) => found.map(|history| history.watches).unwrap_or_default(),
        Err(message) => {
            let line = if json {
                json!({"file": watches.map(|path| path.display().to_string()), "verdict": "unreadable", "error": message}).to_string()
            } else {
                message
            };
            let _ = writeln!(out, "{line}");
            return EXIT_UNREADABLE;
        }
    };
    let mut status = EXIT_OK;
    for file in files {
        let mut history = match read(file).and_then(|history| has_operations(file, history)) {
            Ok(history) => history,
            Err(message) => {
                let line = if json {
                    json!({"file": file.display().to_string(), "verdict": "unreadable", "error": message}).to_string()
                } else {
                    message
                };
                let _ = writeln!(out, "{line}");
                status = worse(status, EXIT_UNREADABLE);
                continue;
            }
        };
        history.watches.extend(extra_watches.iter().cloned());
        let started = now();
        let report = check_linearizable(&history, &config);
        let watch_verdict = (!history.watches.is_empty())
            .then(|| check_watches(&history, report.linearization.as_ref()));
        let check_ms = started.elapsed().as_secs_f64() * 1000.0;
        status = worse(status, status_of(&report.verdict));
        if let Some(verdict) = &watch_verdict {
            status = worse(status, status_of(verdict));
        }
        let line = render(
            file,
            &history,
            &report,
            watch_verdict.as_ref(),
            check_ms,
            json,
        );
        let _ = writeln!(out, "{line}");
    }
    status
}

/// One file's line: the verdict, and how long the check took; with `json`, also the search
/// steps it took (`steps`: the same on every machine, unlike `check_ms`).
fn render(
    file: &Path,
    history: &History,
    report: &LinearReport,
    watches: Option<&Verdict>,
    check_ms: f64,
    json: bool,
) -> String {
    let verdict = &report.verdict;
    if json {
        let mut object = json!({
            "file": file.display().to_string(),
            "verdict": verdict_name(verdict),
            "ops": history.ops.len(),
            "check_ms": (check_ms * 1000.0).round() / 1000.0,
            "steps": report.steps,
        });
        add_details(&mut object, verdict);
        if let Some(watch_verdict) = watches {
            let mut inner = json!({"verdict": match watch_verdict { Verdict::Ok => "ok", Verdict::Violation { .. } => "violation", Verdict::Unknown { .. } => "unknown" }});
            add_details(&mut inner, watch_verdict);
            object["watches"] = inner;
        }
        return object.to_string();
    }
    let counts = format!("({} ops, {:.1} ms)", history.ops.len(), check_ms);
    let history_part = format!("{}{}", verdict_name(verdict), detail_text(verdict));
    match watches {
        None => format!("{}: {history_part} {counts}", file.display()),
        Some(Verdict::Ok) => format!("{}: {history_part}; watches hold {counts}", file.display()),
        // A broken watch guarantee leads the line, so nobody reads "linearizable" and stops.
        Some(watch_verdict) => format!(
            "{}: watches {}{}; history {history_part} {counts}",
            file.display(),
            match watch_verdict {
                Verdict::Violation { .. } => "violated",
                _ => "undecided",
            },
            detail_text(watch_verdict)
        ),
    }
}

fn detail_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Ok => String::new(),
        Verdict::Violation {
            checker,
            window,
            explanation,
        } => format!(": [{checker}] window {window:?}: {explanation}"),
        Verdict::Unknown { reason } => format!(": {reason}"),
    }
}

fn add_details(object: &mut Value, verdict: &Verdict) {
    match verdict {
        Verdict::Ok => {}
        Verdict::Violation {
            checker,
            window,
            explanation,
        } => {
            object["checker"] = json!(checker);
            object["window"] = json!(window);
            object["explanation"] = json!(explanation);
        }
        Verdict::Unknown { reason } => object["reason"] = json!(reason),
    }
}

/// `detcd bench check`: times the linearizability check of generated linearizable histories
/// (1k, 10k, 100k operations at concurrency 4, 16, 64, with and without unknown outcomes), of
/// small hard ones (one key, 5 clients, many unknown outcomes, no revisions), of the hard set
/// of Jepsen-shaped histories (`generate_jepsen`, mostly not linearizable), and, given
/// `histories`, of every `*history.jsonl` file in that directory or its subdirectories (such as
/// `detcd sim run --out` writes), checked without their watch streams. `quick` shrinks it.
pub fn bench_check(quick: bool, histories: Option<&Path>) -> Value {
    let mut report = bench_generated(quick);
    report["jepsen_hard"] = bench_jepsen(quick);
    if let Some(directory) = histories {
        report["standalone_histories"] = bench_directory(directory);
    }
    report
}

/// Totals over a set of timed checks: count, verdicts, summed and worst time.
#[derive(Default)]
struct Tally {
    count: usize,
    linearizable: usize,
    violations: usize,
    unknown: usize,
    unreadable: usize,
    total_ms: f64,
    worst_ms: f64,
    worst: String,
    steps: u64,
}

impl Tally {
    fn add(&mut self, name: String, verdict: &Verdict, check_ms: f64, steps: u64) {
        self.count += 1;
        match verdict {
            Verdict::Ok => self.linearizable += 1,
            Verdict::Violation { .. } => self.violations += 1,
            Verdict::Unknown { .. } => self.unknown += 1,
        }
        self.total_ms += check_ms;
        self.steps += steps;
        if check_ms >= self.worst_ms {
            self.worst_ms = check_ms;
            self.worst = name;
        }
    }

    fn to_json(&self) -> Value {
        let round = |ms: f64| (ms * 1000.0).round() / 1000.0;
        json!({
            "histories": self.count,
            "linearizable": self.linearizable,
            "not_linearizable": self.violations,
            "unknown": self.unknown,
            "unreadable": self.unreadable,
            "total_check_ms": round(self.total_ms),
            "worst_check_ms": round(self.worst_ms),
            "worst": self.worst,
            "total_steps": self.steps,
        })
    }
}

/// The Jepsen-shaped hard set: seeds 0..25 at 5, 10, 15 and 20 clients, explained fast (as
/// `detcd check` does by default), each timed alone.
fn bench_jepsen(quick: bool) -> Value {
    let seeds = if quick { 0..3 } else { 0..25 };
    let config = LinearConfig {
        explain: Explain::Fast,
        ..LinearConfig::default()
    };
    let mut tally = Tally::default();
    for clients_count in [5, 10, 15, 20] {
        for seed in seeds.clone() {
            let history = generate_jepsen(seed, clients_count);
            let started = now();
            let report = check_linearizable(&history, &config);
            let check_ms = started.elapsed().as_secs_f64() * 1000.0;
            tally.add(
                format!("clients={clients_count} seed={seed}"),
                &report.verdict,
                check_ms,
                report.steps,
            );
        }
    }
    let mut out = tally.to_json();
    out["ops_each"] = json!(JEPSEN_OPS_COUNT);
    out
}

/// Every `*history.jsonl` under `directory` (one level of subdirectories), without watches.
fn bench_directory(directory: &Path) -> Value {
    let mut files = Vec::new();
    let mut pending = vec![(directory.to_path_buf(), 0)];
    while let Some((folder, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && depth == 0 {
                pending.push((path, depth + 1));
            } else if path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with("history.jsonl"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    let config = LinearConfig {
        explain: Explain::Fast,
        ..LinearConfig::default()
    };
    let mut tally = Tally::default();
    let mut rows = Vec::new();
    for file in files {
        let Ok(mut history) = read(&file) else {
            tally.unreadable += 1;
            continue;
        };
        history.watches.clear();
        let started = now();
        let report = check_linearizable(&history, &config);
        let check_ms = started.elapsed().as_secs_f64() * 1000.0;
        let name = file.display().to_string();
        rows.push(json!({
            "file": name,
            "ops": history.ops.len(),
            "verdict": verdict_name(&report.verdict),
            "steps": report.steps,
            "check_ms": (check_ms * 10.0).round() / 10.0,
        }));
        tally.add(name, &report.verdict, check_ms, report.steps);
    }
    let mut out = tally.to_json();
    out["files"] = json!(rows);
    out
}

fn bench_generated(quick: bool) -> Value {
    let sizes: &[usize] = if quick {
        &[200, 1_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let mut rows = Vec::new();
    for &ops_count in sizes {
        for clients_count in [4, 16, 64] {
            for unknown_percent in [0, 5] {
                let config = GenerateConfig {
                    ops_count,
                    clients_count,
                    keys_count: 64,
                    unknown_percent,
                    revisions: true,
                    seed: 42,
                };
                rows.push(time_one(&config));
            }
        }
    }
    let hard_count = if quick { 5 } else { 50 };
    let mut hard_ms = 0.0;
    let mut hard_verdicts = Vec::new();
    for seed in 0..hard_count {
        let config = GenerateConfig {
            ops_count: 80,
            clients_count: 5,
            keys_count: 1,
            unknown_percent: 30,
            revisions: false,
            seed,
        };
        let row = time_one(&config);
        hard_ms += row["check_ms"].as_f64().unwrap_or(0.0);
        hard_verdicts.push(row["verdict"].clone());
    }
    json!({
        "generated": rows,
        "hard_single_key": {"histories": hard_count, "ops_each": 80, "clients": 5, "unknown_percent": 30,
                            "total_check_ms": hard_ms, "verdicts_all_linearizable": hard_verdicts.iter().all(|v| v == "linearizable")},
    })
}

#[cfg(test)]
mod tests;

fn time_one(config: &GenerateConfig) -> Value {
    let mut history = generate(config);
    history.watches.clear();
    let started = now();
    let report = check_linearizable(&history, &LinearConfig::default());
    let check_ms = started.elapsed().as_secs_f64() * 1000.0;
    json!({
        "ops": config.ops_count,
        "concurrency": config.clients_count,
        "unknown_percent": config.unknown_percent,
        "verdict": verdict_name(&report.verdict),
        "steps": report.steps,
        "check_ms": (check_ms * 10.0).round() / 10.0,
    })
}
