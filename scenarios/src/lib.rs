//! Scenario files and the library of named scenarios. A scenario is a TOML file that a
//! researcher writes without Rust: cluster size, phases, workload, network, disks, fault rates
//! and budget, over the fields of `sim::Scenario` (see docs/scenarios.md). This crate parses such
//! files into `sim::Scenario` with errors that name file, line and key, writes scenarios back as
//! files, and embeds the library (`scenarios/library/*.toml`) in the binary.
//!
//! It never runs anything and holds no engine code. May use: `sim`.

mod at;
mod file;
mod units;

pub use file::{parse, to_toml, FileError, ScenarioFile, DEFAULT_BASE};

use sim::Scenario;

/// The library: (name, file text) of every named scenario, embedded at build time. The
/// built-ins come first (each file is its built-in written out); the rest are files only,
/// each extending a built-in and opening with a comment on the bug class it hunts.
pub const LIBRARY: &[(&str, &str)] = &[
    ("default", include_str!("../library/default.toml")),
    (
        "compaction_heavy",
        include_str!("../library/compaction_heavy.toml"),
    ),
    ("lease_heavy", include_str!("../library/lease_heavy.toml")),
    ("no_faults", include_str!("../library/no_faults.toml")),
    (
        "partitions_only",
        include_str!("../library/partitions_only.toml"),
    ),
    (
        "crash_restart",
        include_str!("../library/crash_restart.toml"),
    ),
    ("disk_faults", include_str!("../library/disk_faults.toml")),
    ("clock_faults", include_str!("../library/clock_faults.toml")),
    (
        "leader_isolated_under_lease_traffic",
        include_str!("../library/leader_isolated_under_lease_traffic.toml"),
    ),
    (
        "disk_corruption_on_a_majority",
        include_str!("../library/disk_corruption_on_a_majority.toml"),
    ),
    (
        "single_member_crashes",
        include_str!("../library/single_member_crashes.toml"),
    ),
    (
        "three_members_crash_points",
        include_str!("../library/three_members_crash_points.toml"),
    ),
    ("figure_eight", include_str!("../library/figure_eight.toml")),
    (
        "learner_promoted_during_partition",
        include_str!("../library/learner_promoted_during_partition.toml"),
    ),
    (
        "leader_isolated_during_compaction",
        include_str!("../library/leader_isolated_during_compaction.toml"),
    ),
    (
        "one_way_partition_livelock",
        include_str!("../library/one_way_partition_livelock.toml"),
    ),
    (
        "bridge_member",
        include_str!("../library/bridge_member.toml"),
    ),
    (
        "flapping_links",
        include_str!("../library/flapping_links.toml"),
    ),
    (
        "crash_during_snapshot_install",
        include_str!("../library/crash_during_snapshot_install.toml"),
    ),
    (
        "bit_flips_on_a_minority",
        include_str!("../library/bit_flips_on_a_minority.toml"),
    ),
    (
        "failed_fsyncs",
        include_str!("../library/failed_fsyncs.toml"),
    ),
    ("lost_writes", include_str!("../library/lost_writes.toml")),
    (
        "clock_drift_with_leases",
        include_str!("../library/clock_drift_with_leases.toml"),
    ),
    (
        "member_replaced_under_load",
        include_str!("../library/member_replaced_under_load.toml"),
    ),
    (
        "rolling_restarts",
        include_str!("../library/rolling_restarts.toml"),
    ),
    (
        "leader_transfer_under_load",
        include_str!("../library/leader_transfer_under_load.toml"),
    ),
    (
        "slow_disk_on_the_leader",
        include_str!("../library/slow_disk_on_the_leader.toml"),
    ),
    (
        "watch_heavy_with_compaction",
        include_str!("../library/watch_heavy_with_compaction.toml"),
    ),
    (
        "lease_heavy_with_pauses",
        include_str!("../library/lease_heavy_with_pauses.toml"),
    ),
    (
        "member_far_behind_installs_snapshot",
        include_str!("../library/member_far_behind_installs_snapshot.toml"),
    ),
    (
        "learner_added_under_partitions",
        include_str!("../library/learner_added_under_partitions.toml"),
    ),
    (
        "membership_churn_at_random",
        include_str!("../library/membership_churn_at_random.toml"),
    ),
    (
        "membership_churn_on_an_even_cluster",
        include_str!("../library/membership_churn_on_an_even_cluster.toml"),
    ),
    (
        "permissions_revoked_under_load",
        include_str!("../library/permissions_revoked_under_load.toml"),
    ),
    (
        "locks_under_partitions",
        include_str!("../library/locks_under_partitions.toml"),
    ),
    (
        "elections_under_partitions",
        include_str!("../library/elections_under_partitions.toml"),
    ),
];

/// The library scenario called `name`, parsed.
pub fn library_scenario(name: &str) -> Option<Result<ScenarioFile, FileError>> {
    LIBRARY
        .iter()
        .find(|(entry, _)| *entry == name)
        .map(|(entry, text)| parse(text, &format!("library/{entry}.toml")))
}

/// A scenario by library name, or from a file path (anything ending in `.toml` or naming an
/// existing file). The error says what was tried.
pub fn load(name_or_path: &str) -> Result<ScenarioFile, String> {
    if let Some(parsed) = library_scenario(name_or_path) {
        return parsed.map_err(|error| error.to_string());
    }
    let path = std::path::Path::new(name_or_path);
    if name_or_path.ends_with(".toml") || path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{name_or_path}: cannot read: {error}"))?;
        let mut file = parse(&text, name_or_path).map_err(|error| error.to_string())?;
        file.scenario.source_file = Some(name_or_path.to_string());
        return Ok(file);
    }
    let names: Vec<&str> = LIBRARY.iter().map(|(name, _)| *name).collect();
    Err(format!(
        "unknown scenario {name_or_path:?}: name a library scenario ({}) or a .toml file",
        names.join(", ")
    ))
}

/// One line per library scenario: its name and description.
pub fn list() -> Vec<(String, String)> {
    LIBRARY
        .iter()
        .map(|(name, text)| {
            let description = parse(text, name)
                .ok()
                .and_then(|file| file.description)
                .unwrap_or_default();
            (name.to_string(), description)
        })
        .collect()
}

/// The library text of `name`, to print as a starting point.
pub fn show(name: &str) -> Option<&'static str> {
    LIBRARY
        .iter()
        .find(|(entry, _)| *entry == name)
        .map(|(_, text)| *text)
}

/// Descriptions of the built-in scenarios (what each hunts), written into their library files.
pub fn built_in_description(name: &str) -> Option<&'static str> {
    Some(match name {
        "default" => "Every fault kind within the budget on a lossy network: the nightly campaign.",
        "compaction_heavy" => "Frequent compactions, historical reads and frequent snapshots under every fault: revision and watch bugs around compaction.",
        "lease_heavy" => "Lease grants, attached keys, keep-alives and TTL queries dominate: lease bookkeeping bugs.",
        "no_faults" => "A reliable network and no faults: the baseline every other scenario departs from.",
        "partitions_only" => "Every partition shape, three a minute each: election, stale-leader and forwarding bugs.",
        "crash_restart" => "Frequent crashes with torn tails and pauses: recovery and durability bugs.",
        "disk_faults" => "Every disk fault kind, corrupting ones on a minority: WAL repair and corruption handling.",
        "clock_faults" => "Clock drift, skew and jumps on every member: lease and timeout bugs.",
        "leader_isolated_under_lease_traffic" => "Long leader isolations under keep-alive-heavy traffic with true clocks: leases expired or renewed by a deposed leader, reads served without a quorum.",
        "disk_corruption_on_a_majority" => "Beyond the fault model: silent corruption on every member. Members must refuse corrupt disks (liveness is lost) and never serve wrong data.",
        "single_member_crashes" => "One member, crashed at durability boundaries with slow syncs: a leader that counts or applies its own unsynced entries (etcd #14370).",
        "three_members_crash_points" => "Three members crashed right after votes, acknowledgements and snapshots leave, or while syncs are in flight: durability-order bugs.",
        "figure_eight" => "The raft paper's Figure 8 schedule, over and over: committing an old term's entry by counting replicas.",
        "learner_promoted_during_partition" => "A learner joins, is cut off with the leader, is promoted while a follower is cut off; then a follower is replaced by an empty member and leadership moves: a learner counted toward commit, membership changes under load.",
        _ => return None,
    })
}

/// Writes built-in `scenario` as its library file.
pub fn built_in_file(scenario: &Scenario) -> String {
    to_toml(scenario, built_in_description(&scenario.name))
}

#[cfg(test)]
mod tests;
