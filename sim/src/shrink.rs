//! `detcd sim shrink ARTIFACT`: searches for a smaller run that fails the same checker as a
//! failure artifact, and writes it as a new artifact. Each step changes the scenario, runs the
//! same seed, and keeps the change when the target check still fails and the run did not grow
//! (fewer or as many faults and operations, weighed together):
//!
//! - drop faults: first the random schedule becomes the faults that ran, as a scripted
//!   timeline (`Scenario::with_timeline_only` of `RunReport::faults_ran`), and delta debugging
//!   drops timeline entries; where the timeline alone does not fail, delta debugging drops fault
//!   kinds from the random schedule instead (each rate in `faults.*_per_minute`, found by name,
//!   so new fault kinds join without code here);
//! - shorten the run (`safety_ms`), then lower the member count (with the fault budget cut to
//!   what the smaller cluster tolerates, unless the scenario is beyond the model);
//! - drop clients and watchers, slow clients down, and drop operation kinds from the mix
//!   (delta debugging again).
//!
//! The passes repeat until one round changes nothing or the time budget runs out. Wall time
//! is read only for that budget (through `cli::Stopwatch`); every run is the ordinary
//! deterministic run of a seed, so the result replays exactly.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::artifact::read_meta;
use crate::cli::Stopwatch;
use crate::report::{run, RunOptions, RunReport};
use crate::scenario::Scenario;

/// `detcd sim shrink` options.
#[derive(Clone, Debug, Default)]
pub struct ShrinkArgs {
    /// The artifact directory to shrink.
    pub artifact: PathBuf,
    /// Wall-time budget (`30s`, `5m`); 5 minutes when absent.
    pub time: Option<String>,
    /// Where to write the shrunk artifact; `ARTIFACT-shrunk` when absent.
    pub out: Option<PathBuf>,
    /// End with one JSON line (the figures before and after).
    pub json: bool,
}

/// The default wall-time budget.
const BUDGET_SECONDS_DEFAULT: u64 = 300;

/// The size of a run, as shrinking weighs it: faults count far more than operations, since
/// each is a cause to rule out while most operations are bystanders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunSize {
    /// Faults that ran (`RunReport::faults_ran`, random and scripted).
    pub faults: u64,
    /// Operations in the history.
    pub ops: u64,
}

/// How many operations one fault weighs.
const FAULT_WEIGHT_OPS: u64 = 50;

impl RunSize {
    /// The size of a report's run.
    pub fn of(report: &RunReport) -> RunSize {
        RunSize {
            faults: report.faults_ran.entries.len() as u64,
            ops: report.counts.ops,
        }
    }

    fn cost(self) -> u64 {
        self.faults
            .saturating_mul(FAULT_WEIGHT_OPS)
            .saturating_add(self.ops)
    }
}

/// The check a shrunk run must still fail: the artifact's first failure other than the
/// scenario-expectation bookkeeping (`expected_verdict`).
pub fn target_check(failures: &[crate::artifact::FailureRecord]) -> Option<String> {
    failures
        .iter()
        .map(|failure| failure.check.clone())
        .find(|check| check != "expected_verdict")
}

/// The search state: the smallest failing scenario so far and what it took to find it.
pub struct Shrinker {
    target: String,
    seed: u64,
    best: Scenario,
    best_size: RunSize,
    stopwatch: Stopwatch,
    budget_seconds: f64,
    runs_count: u64,
    /// The steps that kept the failure, in order, as printed.
    pub steps: Vec<String>,
    quiet: bool,
}

impl Shrinker {
    /// Starts from `scenario` and `seed`, whose run must fail `target`; `None` when it does not
    /// (the artifact no longer reproduces its failure with this build).
    pub fn new(
        scenario: Scenario,
        seed: u64,
        target: String,
        budget_seconds: f64,
        quiet: bool,
    ) -> Result<Shrinker, String> {
        let stopwatch = Stopwatch::start();
        let (report, _) = run(&scenario, seed, RunOptions::default());
        if !fails(&report, &target) {
            return Err(format!(
                "seed {seed} no longer fails {target} with this build: nothing to shrink (`detcd sim replay` shows where it changed)"
            ));
        }
        Ok(Shrinker {
            target,
            seed,
            best_size: RunSize::of(&report),
            best: scenario,
            stopwatch,
            budget_seconds,
            runs_count: 1,
            steps: Vec::new(),
            quiet,
        })
    }

    /// The smallest failing scenario so far.
    pub fn best(&self) -> &Scenario {
        &self.best
    }

    /// Its size.
    pub fn best_size(&self) -> RunSize {
        self.best_size
    }

    /// Runs made so far.
    pub fn runs_count(&self) -> u64 {
        self.runs_count
    }

    fn out_of_time(&self) -> bool {
        self.stopwatch.elapsed_seconds() >= self.budget_seconds
    }

    /// Runs `candidate`; keeps it when it still fails the target and is no larger. Returns
    /// whether it was kept.
    fn attempt(&mut self, candidate: Scenario, what: &str) -> bool {
        if self.out_of_time() || candidate == self.best || candidate.validate().is_err() {
            return false;
        }
        let (report, _) = run(&candidate, self.seed, RunOptions::default());
        self.runs_count += 1;
        let size = RunSize::of(&report);
        if !fails(&report, &self.target) || size.cost() > self.best_size.cost() {
            return false;
        }
        let line = format!(
            "step {}: {what}: still fails {} (faults {} -> {}, ops {} -> {}) after {:.1} s",
            self.steps.len() + 1,
            self.target,
            self.best_size.faults,
            size.faults,
            self.best_size.ops,
            size.ops,
            self.stopwatch.elapsed_seconds()
        );
        if !self.quiet {
            println!("{line}");
        }
        self.steps.push(line);
        self.best = candidate;
        self.best_size = size;
        true
    }

    /// Tries `values` (smallest first) for one numeric setting; keeps the first that fails.
    fn shrink_number(
        &mut self,
        name: &str,
        current: u64,
        values: &[u64],
        set: impl Fn(&mut Scenario, u64),
    ) -> bool {
        let mut tried: Vec<u64> = values
            .iter()
            .copied()
            .filter(|value| *value < current)
            .collect();
        tried.sort_unstable();
        tried.dedup();
        for value in tried {
            let mut candidate = self.best.clone();
            set(&mut candidate, value);
            if self.attempt(candidate, &format!("{name} {current} -> {value}")) {
                return true;
            }
        }
        false
    }

    /// Delta debugging (ddmin): `items` lists what can be removed from the best scenario so
    /// far (recomputed after each kept step), `without` builds the scenario without a chunk of
    /// them. Removes ever smaller chunks until no single item can go.
    fn ddmin(
        &mut self,
        items: impl Fn(&Scenario) -> Vec<String>,
        without: impl Fn(&Scenario, &[usize]) -> Option<Scenario>,
        what: &str,
    ) -> bool {
        let mut changed = false;
        let mut chunk_count = 2_usize;
        loop {
            let names = items(&self.best);
            if names.is_empty() || self.out_of_time() {
                return changed;
            }
            let chunk_len = names.len().div_ceil(chunk_count.min(names.len()));
            let indices: Vec<usize> = (0..names.len()).collect();
            let mut removed_any = false;
            for chunk in indices.chunks(chunk_len) {
                let Some(candidate) = without(&self.best, chunk) else {
                    continue;
                };
                let shown: Vec<&str> = chunk
                    .iter()
                    .take(4)
                    .map(|index| names[*index].as_str())
                    .collect();
                let more = if chunk.len() > shown.len() {
                    format!(" and {} more", chunk.len() - shown.len())
                } else {
                    String::new()
                };
                let step = format!("drop {what} {}{more}", shown.join(", "));
                if self.attempt(candidate, &step) {
                    removed_any = true;
                    changed = true;
                    break;
                }
            }
            if removed_any {
                chunk_count = (chunk_count - 1).max(2);
            } else if chunk_len == 1 {
                return changed;
            } else {
                chunk_count = (chunk_count * 2).min(names.len());
            }
        }
    }

    /// Delta debugging over the nonzero knobs under `section` (fault rates, op-mix shares).
    fn drop_knobs(&mut self, section: &'static str, what: &str) -> bool {
        self.ddmin(
            |scenario| {
                knobs(scenario, section)
                    .into_iter()
                    .map(|knob| knob.label)
                    .collect()
            },
            |scenario, chunk| {
                let all = knobs(scenario, section);
                let picked: Vec<Knob> = chunk.iter().map(|index| all[*index].clone()).collect();
                zeroed(scenario, &picked)
            },
            what,
        )
    }

    /// Replaces the random fault schedule by the faults that ran, as a scripted timeline (the
    /// entries delta debugging can then drop one by one). Returns whether that kept the failure.
    fn script_faults(&mut self) -> bool {
        if knobs(&self.best, "/faults").is_empty() || self.out_of_time() {
            return false;
        }
        let (report, _) = run(&self.best, self.seed, RunOptions::default());
        self.runs_count += 1;
        let count = report.faults_ran.entries.len();
        let candidate = self.best.with_timeline_only(report.faults_ran);
        self.attempt(
            candidate,
            &format!("replace the random faults by the {count} that ran, as a scripted timeline"),
        )
    }

    /// Delta debugging over the timeline's entries.
    fn drop_timeline_entries(&mut self) -> bool {
        self.ddmin(
            |scenario| scenario.timeline.describe(),
            |scenario, chunk| {
                let mut candidate = scenario.clone();
                let mut index = 0;
                candidate.timeline.entries.retain(|_| {
                    let keep = !chunk.contains(&index);
                    index += 1;
                    keep
                });
                Some(candidate)
            },
            "timeline faults",
        )
    }

    /// One round of every pass; returns whether anything was kept.
    pub fn round(&mut self) -> bool {
        // Cheap cuts first: a shorter run with fewer clients makes every later attempt faster.
        let mut changed = self.script_faults();
        let safety_ms = self.best.safety_ms;
        changed |= self.shrink_number(
            "safety_ms",
            safety_ms,
            &[
                1_000,
                safety_ms / 8,
                safety_ms / 4,
                safety_ms / 2,
                safety_ms * 3 / 4,
            ],
            set_safety_ms,
        );
        let clients = u64::from(self.best.workload.client_count);
        changed |= self.shrink_number(
            "clients",
            clients,
            &[1, 2, clients / 4, clients / 2, clients * 3 / 4],
            |scenario, value| scenario.workload.client_count = value as u32,
        );
        let watchers = u64::from(self.best.workload.watcher_count);
        changed |= self.shrink_number(
            "watchers",
            watchers,
            &[0, watchers / 2],
            |scenario, value| scenario.workload.watcher_count = value as u32,
        );
        changed |= self.drop_timeline_entries();
        changed |= self.drop_knobs("/faults", "fault kinds");
        changed |= self.fewer_members();
        changed |= self.drop_knobs("/workload/mix", "operation kinds");
        changed |= self.slow_clients();
        changed
    }

    /// Fewer members: 1, 3, 5 or 7 (smallest first), each tried with the timeline's members
    /// renumbered onto the smaller cluster (its faults keep hitting distinct members), then with
    /// the entries that name a missing member dropped.
    fn fewer_members(&mut self) -> bool {
        let current = self.best.member_count;
        for member_count in [1_u32, 3, 5, 7]
            .into_iter()
            .filter(|count| *count < current)
        {
            if let Some(mut candidate) = renumbered(&self.best, member_count) {
                set_member_count(&mut candidate, member_count);
                let step =
                    format!("member_count {current} -> {member_count} (timeline renumbered)");
                if self.attempt(candidate, &step) {
                    return true;
                }
            }
            let mut candidate = self.best.clone();
            set_member_count(&mut candidate, member_count);
            if self.attempt(
                candidate,
                &format!("member_count {current} -> {member_count}"),
            ) {
                return true;
            }
        }
        false
    }

    /// Fewer operations per client: think times grow by 8, 4 or 2.
    fn slow_clients(&mut self) -> bool {
        for factor in [8_u64, 4, 2] {
            let mut candidate = self.best.clone();
            let workload = &mut candidate.workload;
            workload.think_ns_min = workload.think_ns_min.saturating_mul(factor);
            workload.think_ns_max = workload.think_ns_max.saturating_mul(factor);
            if self.attempt(candidate, &format!("client think time x{factor}")) {
                return true;
            }
        }
        false
    }

    /// Rounds until one changes nothing or the time runs out.
    pub fn run_to_fixpoint(&mut self) {
        while !self.out_of_time() && self.round() {}
    }

    /// Wall seconds spent so far.
    pub fn elapsed_seconds(&self) -> f64 {
        self.stopwatch.elapsed_seconds()
    }
}

fn fails(report: &RunReport, target: &str) -> bool {
    report
        .failures
        .iter()
        .any(|failure| failure.check == target)
}

/// `scenario` with a safety phase of `safety_ms`: timeline entries past its end go too.
fn set_safety_ms(scenario: &mut Scenario, safety_ms: u64) {
    scenario.safety_ms = safety_ms;
    let end_ns = safety_ms.saturating_mul(1_000_000);
    scenario
        .timeline
        .entries
        .retain(|entry| entry.time_ns < end_ns);
}

/// `scenario` with `member_count` members and a fault budget the smaller cluster tolerates
/// (beyond-model scenarios keep theirs, capped at the member count); timeline entries that
/// name a member the smaller cluster lacks go too.
fn set_member_count(scenario: &mut Scenario, member_count: u32) {
    scenario.member_count = member_count;
    scenario.timeline.entries.retain(|entry| {
        entry.fault.targets().iter().all(|target| match target {
            crate::timeline::Target::Member(id) => *id <= u64::from(member_count),
            crate::timeline::Target::Role(_) => true,
        })
    });
    let budget = &mut scenario.budget;
    let (corrupted_max, down_max) = if scenario.beyond_model {
        (member_count, member_count)
    } else {
        ((member_count - 1) / 2, ((member_count - 1) / 2).max(1))
    };
    budget.corrupted_members_max = budget.corrupted_members_max.min(corrupted_max);
    budget.down_members_max = budget.down_members_max.min(down_max);
}

/// `scenario` with the member ids its timeline names renumbered 1, 2, ... in ascending order,
/// entries naming an id beyond `member_count` after that dropped; `None` when nothing changes.
fn renumbered(scenario: &Scenario, member_count: u32) -> Option<Scenario> {
    fn ids(value: &Value, into: &mut Vec<u64>) {
        match value {
            Value::Number(number) => into.extend(number.as_u64()),
            Value::Array(items) => items.iter().for_each(|item| ids(item, into)),
            _ => {}
        }
    }
    fn map(value: &mut Value, mapping: &std::collections::BTreeMap<u64, u64>) {
        match value {
            Value::Number(number) => {
                if let Some(id) = number.as_u64().and_then(|id| mapping.get(&id)) {
                    *value = Value::from(*id);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| map(item, mapping)),
            _ => {}
        }
    }
    const MEMBER_KEYS: [&str; 3] = ["target", "groups", "cut"];
    let mut entries = serde_json::to_value(&scenario.timeline).ok()?;
    let mut used = Vec::new();
    for entry in entries.as_array()? {
        for key in MEMBER_KEYS {
            if let Some(value) = entry.get(key) {
                ids(value, &mut used);
            }
        }
    }
    used.sort_unstable();
    used.dedup();
    let mapping: std::collections::BTreeMap<u64, u64> = used
        .iter()
        .zip(1_u64..)
        .map(|(id, new)| (*id, new))
        .collect();
    if mapping.iter().all(|(id, new)| id == new) {
        return None;
    }
    for entry in entries.as_array_mut()? {
        for key in MEMBER_KEYS {
            if let Some(value) = entry.get_mut(key) {
                map(value, &mapping);
            }
        }
    }
    let mut candidate = scenario.clone();
    candidate.timeline = serde_json::from_value(entries).ok()?;
    set_member_count(&mut candidate, member_count);
    Some(candidate)
}

/// A number in the scenario that can be set to zero: a fault rate or an op-mix share.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Knob {
    /// JSON pointer into the serialised scenario.
    pointer: String,
    /// What a person reads: `crashes_per_minute`, `disk_faults_per_minute bit_flip`, `txn`.
    label: String,
}

/// The nonzero knobs under `section` (a JSON pointer): numbers whose key ends in
/// `_per_minute` (under `/faults`) or any number (under `/workload/mix`), and the rates of
/// `[kind, rate]` lists, found by walking the serialised scenario.
fn knobs(scenario: &Scenario, section: &str) -> Vec<Knob> {
    let value = serde_json::to_value(scenario).expect("a scenario serialises");
    let Some(Value::Object(fields)) = value.pointer(section) else {
        return Vec::new();
    };
    let every_number = section != "/faults";
    let mut found = Vec::new();
    for (key, field) in fields {
        if !every_number && !key.ends_with("_per_minute") {
            continue;
        }
        match field {
            Value::Number(number) if number.as_u64().is_some_and(|rate| rate > 0) => {
                found.push(Knob {
                    pointer: format!("{section}/{key}"),
                    label: key.clone(),
                })
            }
            Value::Array(pairs) => {
                for (index, pair) in pairs.iter().enumerate() {
                    if pair[1].as_u64().is_some_and(|rate| rate > 0) {
                        let kind = pair[0].as_str().unwrap_or("?");
                        found.push(Knob {
                            pointer: format!("{section}/{key}/{index}/1"),
                            label: format!("{key} {kind}"),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// `scenario` with `knobs` set to zero, or `None` when that leaves no operation kind.
fn zeroed(scenario: &Scenario, knobs: &[Knob]) -> Option<Scenario> {
    let mut value = serde_json::to_value(scenario).expect("a scenario serialises");
    for knob in knobs {
        *value.pointer_mut(&knob.pointer)? = Value::from(0);
    }
    let mix_total: u64 = value
        .pointer("/workload/mix")
        .and_then(Value::as_object)
        .map_or(1, |mix| mix.values().filter_map(Value::as_u64).sum());
    if mix_total == 0 {
        return None;
    }
    let mut candidate: Scenario = serde_json::from_value(value).ok()?;
    candidate.source_file = scenario.source_file.clone();
    candidate.member.buggify = scenario.member.buggify;
    Some(candidate)
}

/// Runs `detcd sim shrink`; returns the exit status: 0 a smaller failing run was written,
/// 1 the artifact no longer fails its check, 2 bad input.
pub fn shrink_command(args: &ShrinkArgs) -> i32 {
    match shrink(args) {
        Ok(()) => 0,
        Err((status, message)) => {
            eprintln!("error: {message}");
            status
        }
    }
}

fn shrink(args: &ShrinkArgs) -> Result<(), (i32, String)> {
    let budget_seconds = match args.time.as_deref() {
        Some(text) => crate::fuzz::parse_duration_seconds(text).map_err(|message| (2, message))?,
        None => BUDGET_SECONDS_DEFAULT,
    };
    let meta = read_meta(&args.artifact).map_err(|error| (2, error.to_string()))?;
    let bugs: Vec<&str> = meta
        .scenario
        .member
        .bugs
        .bugs()
        .map(|bug| bug.name())
        .collect();
    if !bugs.is_empty() && !engine::zoo::COMPILED_IN {
        return Err((
            2,
            format!(
                "the artifact switches on zoo bugs ({}): shrink it with a build made with `--features bug-zoo`",
                bugs.join(", ")
            ),
        ));
    }
    let target = target_check(&meta.verdict.failures).ok_or_else(|| {
        (
            2,
            "the artifact records no failed check to keep".to_string(),
        )
    })?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| shrunk_dir(&args.artifact));
    let mut shrinker = Shrinker::new(
        meta.scenario.clone(),
        meta.seed,
        target.clone(),
        budget_seconds as f64,
        args.json,
    )
    .map_err(|message| (1, message))?;
    let before = shrinker.best_size();
    if !args.json {
        println!(
            "shrinking seed {} of {} failing {target}: {} faults, {} ops; budget {budget_seconds} s",
            meta.seed, meta.scenario_name, before.faults, before.ops
        );
    }
    shrinker.run_to_fixpoint();
    let mut best = shrinker.best().clone();
    best.name = format!("{}_shrunk", meta.scenario.name.trim_end_matches("_shrunk"));
    best.source_file = Some(out.join("scenario.toml").display().to_string());
    let (report, artifacts) = run(
        &best,
        meta.seed,
        RunOptions {
            keep_artifacts: true,
        },
    );
    crate::artifact::write(&out, &best, &report, &artifacts, 0)
        .map_err(|error| (2, format!("cannot write {}: {error}", out.display())))?;
    let after = RunSize::of(&report);
    let summary = serde_json::json!({
        "artifact": args.artifact.display().to_string(),
        "out": out.display().to_string(),
        "seed": meta.seed,
        "scenario": meta.scenario_name,
        "check": target,
        "before": before,
        "after": after,
        "members": [meta.scenario.member_count, best.member_count],
        "clients": [meta.scenario.workload.client_count, best.workload.client_count],
        "safety_ms": [meta.scenario.safety_ms, best.safety_ms],
        "steps": shrinker.steps.len(),
        "runs": shrinker.runs_count(),
        "wall_seconds": shrinker.elapsed_seconds(),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "shrunk: faults {} -> {}, ops {} -> {}, members {} -> {}, clients {} -> {}, safety {} ms -> {} ms; {} steps kept of {} runs in {:.1} s",
            before.faults,
            after.faults,
            before.ops,
            after.ops,
            meta.scenario.member_count,
            best.member_count,
            meta.scenario.workload.client_count,
            best.workload.client_count,
            meta.scenario.safety_ms,
            best.safety_ms,
            shrinker.steps.len(),
            shrinker.runs_count(),
            shrinker.elapsed_seconds()
        );
        println!(
            "artifact: {} (detcd sim replay {})",
            out.display(),
            out.display()
        );
    }
    Ok(())
}

/// `ARTIFACT-shrunk` beside the artifact.
fn shrunk_dir(artifact: &Path) -> PathBuf {
    let name = artifact.file_name().map_or("artifact".into(), |name| {
        name.to_string_lossy().into_owned()
    });
    artifact.with_file_name(format!("{name}-shrunk"))
}
