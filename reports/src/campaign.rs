//! The campaign model: one `campaign.json` per `sim fuzz --out DIR` (a shard), and the merge of
//! any number of shards, of one scenario or many, into one campaign with a verdict per scenario.
//!
//! Everything here is ordered (scenarios by name, shards by index and first seed, failures by
//! seed), so the JSON and JUnit rendered from a merge do not depend on the order of the inputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One failing seed of a shard, as `campaign.json` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardFailure {
    /// The seed.
    pub seed: u64,
    /// Every check that failed.
    pub checks: Vec<String>,
    /// The first failure's explanation.
    pub explanation: String,
    /// The artifact directory, relative to the shard's directory (`seed-N`).
    pub artifact: String,
    /// The command that replays the artifact.
    pub replay: String,
    /// The command that runs the seed from its scenario.
    pub run_command: String,
    /// The run's trace hash.
    pub trace_hash: String,
}

/// `campaign.json`: one `sim fuzz --out DIR`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// The writer's campaign format version.
    pub format_version: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The first seed of the campaign (before sharding).
    pub first_seed: u64,
    /// This shard's index `i` of `i/n`.
    pub shard_index: u64,
    /// The shard count `n`.
    pub shard_count: u64,
    /// Seeds run: positions `0..seeds_run`, seed `first_seed + position * n + i`.
    pub seeds_run: u64,
    /// Seeds that failed.
    pub seeds_failed: u64,
    /// Seeds that failed the way their scenario expects (and so passed).
    pub failed_as_expected: u64,
    /// Operations over all seeds.
    pub ops: u64,
    /// The failing seeds.
    pub failures: Vec<ShardFailure>,
    /// Faults that ran, by kind and variant, over all seeds.
    pub fault_kinds: BTreeMap<String, u64>,
    /// Coverage marks hit, by name, over all seeds (absent in outputs of older builds).
    #[serde(default)]
    pub marks: BTreeMap<String, u64>,
    /// Wall seconds the shard took.
    pub wall_seconds: f64,
    /// Seeds per wall second.
    pub seeds_per_second: f64,
    /// Worker threads.
    pub jobs: u64,
    /// Whether Ctrl-C stopped it early.
    pub interrupted: bool,
}

impl Shard {
    /// The seeds this shard ran, said briefly: `seeds 0..=99`, or with a shard
    /// `seeds 3..=795 step 8 (shard 3/8)`.
    pub fn seed_range(&self) -> String {
        let first = self.first_seed.saturating_add(self.shard_index);
        if self.seeds_run == 0 {
            return format!("no seeds (shard {}/{})", self.shard_index, self.shard_count);
        }
        let last = first.saturating_add((self.seeds_run - 1).saturating_mul(self.shard_count));
        if self.shard_count == 1 {
            format!("seeds {first}..={last}")
        } else {
            format!(
                "seeds {first}..={last} step {} (shard {}/{})",
                self.shard_count, self.shard_index, self.shard_count
            )
        }
    }
}

/// One shard in a merged campaign, with where its outputs are.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShardEntry {
    /// The shard's directory, as a link from the merged report (relative where it can be).
    pub dir: String,
    /// The shard.
    #[serde(flatten)]
    pub shard: Shard,
}

/// The campaign's result for one scenario, over its shards.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioSummary {
    /// The scenario's name.
    pub name: String,
    /// Whether every seed passed.
    pub passed: bool,
    /// Seeds run over all shards.
    pub seeds_run: u64,
    /// Seeds failed over all shards.
    pub seeds_failed: u64,
    /// Seeds per second, summed over shards (shards run side by side).
    pub seeds_per_second: f64,
    /// Faults that ran, by kind and variant.
    pub fault_kinds: BTreeMap<String, u64>,
    /// The shards, by index and first seed.
    pub shards: Vec<ShardEntry>,
}

/// A merged campaign.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Campaign {
    /// Whether every seed of every scenario passed.
    pub passed: bool,
    /// Seeds run in all.
    pub seeds_run: u64,
    /// Seeds failed in all.
    pub seeds_failed: u64,
    /// Operations in all.
    pub ops: u64,
    /// Whether some shard was interrupted.
    pub interrupted: bool,
    /// Per scenario, by name.
    pub scenarios: Vec<ScenarioSummary>,
    /// Coverage marks hit, by name, summed over every shard.
    pub marks: BTreeMap<String, u64>,
    /// Marks the engine declares that no seed of the campaign hit.
    pub marks_never_hit: Vec<String>,
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (name, count) in from {
        *into.entry(name.clone()).or_insert(0) += count;
    }
}

/// Merges shards (each with the directory it came from, as a link) into one campaign.
/// `marks_declared` names every coverage mark the engine has, so that the ones no seed hit can
/// be listed.
pub fn merge(shards: Vec<(String, Shard)>, marks_declared: &[&str]) -> Campaign {
    let mut by_scenario: BTreeMap<String, Vec<ShardEntry>> = BTreeMap::new();
    for (dir, shard) in shards {
        by_scenario
            .entry(shard.scenario.clone())
            .or_default()
            .push(ShardEntry { dir, shard });
    }
    let mut marks: BTreeMap<String, u64> = BTreeMap::new();
    let mut scenarios = Vec::new();
    for (name, mut entries) in by_scenario {
        entries.sort_by(|left, right| {
            (left.shard.shard_index, left.shard.first_seed, &left.dir).cmp(&(
                right.shard.shard_index,
                right.shard.first_seed,
                &right.dir,
            ))
        });
        let mut fault_kinds = BTreeMap::new();
        for entry in &mut entries {
            entry.shard.failures.sort_by_key(|failure| failure.seed);
            add_counts(&mut fault_kinds, &entry.shard.fault_kinds);
            add_counts(&mut marks, &entry.shard.marks);
        }
        let seeds_run = entries.iter().map(|entry| entry.shard.seeds_run).sum();
        let seeds_failed: u64 = entries.iter().map(|entry| entry.shard.seeds_failed).sum();
        scenarios.push(ScenarioSummary {
            name,
            passed: seeds_failed == 0,
            seeds_run,
            seeds_failed,
            seeds_per_second: entries
                .iter()
                .map(|entry| entry.shard.seeds_per_second)
                .sum(),
            fault_kinds,
            shards: entries,
        });
    }
    let marks_never_hit = marks_declared
        .iter()
        .filter(|name| marks.get(**name).copied().unwrap_or(0) == 0)
        .map(|name| name.to_string())
        .collect();
    let all = || scenarios.iter().flat_map(|scenario| scenario.shards.iter());
    Campaign {
        passed: scenarios.iter().all(|scenario| scenario.passed),
        seeds_run: scenarios.iter().map(|scenario| scenario.seeds_run).sum(),
        seeds_failed: scenarios.iter().map(|scenario| scenario.seeds_failed).sum(),
        ops: all().map(|entry| entry.shard.ops).sum(),
        interrupted: all().any(|entry| entry.shard.interrupted),
        marks,
        marks_never_hit,
        scenarios,
    }
}

impl Campaign {
    /// The campaign as pretty JSON (the `report.json` file).
    pub fn to_json(&self) -> String {
        format!(
            "{}\n",
            serde_json::to_string_pretty(self).expect("a campaign serialises")
        )
    }
}
