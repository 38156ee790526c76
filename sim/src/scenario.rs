//! What one run simulates: cluster size, durations, workload, network, disks, the fault kinds
//! with their rates, and the fault budget. Plain data with a few built-in named scenarios.
//!
//! Scenario files (the `scenarios` crate) will build these values; this module does not parse
//! anything. Names are sentences in snake_case.

use engine::zoo::BugSet;

use crate::disk::{DiskConfig, DiskFaultKind};
use crate::network::{NetworkConfig, PartitionKind};
use crate::workload::WorkloadConfig;

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check held.
    Pass,
    /// At least one check failed.
    Fail,
}

impl Verdict {
    /// `pass` or `fail`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

/// Fault kinds and how often each is injected, in events per simulated minute.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultRates {
    /// Partitions of each kind, per minute.
    pub partitions_per_minute: Vec<(PartitionKind, u32)>,
    /// How long a partition holds (ms), drawn uniformly up to this.
    pub partition_ms_max: u64,
    /// Member crashes per minute (a restart follows after a downtime).
    pub crashes_per_minute: u32,
    /// Longest downtime after a crash (ms).
    pub downtime_ms_max: u64,
    /// Member pauses per minute (stop, then resume with stale timers).
    pub pauses_per_minute: u32,
    /// Longest pause (ms).
    pub pause_ms_max: u64,
    /// Disk faults of each kind, per minute.
    pub disk_faults_per_minute: Vec<(DiskFaultKind, u32)>,
    /// Clock faults per minute (drift change, jump).
    pub clock_faults_per_minute: u32,
    /// Largest drift (ppm) a clock fault sets.
    pub clock_drift_ppm_max: i64,
    /// Largest forward jump (ms) a clock fault makes.
    pub clock_jump_ms_max: u64,
    /// Largest initial skew (ms) between member clocks.
    pub clock_skew_ms_max: u64,
    /// Crash points armed per minute (`aimed`): a member crashes right after it next sends a
    /// vote, an acknowledgement or a snapshot, or while a sync or a snapshot save is in flight.
    #[serde(default)]
    pub crash_points_per_minute: u32,
    /// Bit flips per minute in the synced middle of a WAL segment, each followed by a crash
    /// (corrupting: within the corruption budget).
    #[serde(default)]
    pub wal_flips_per_minute: u32,
    /// Figure-8 schedules started per minute (`nemesis`); they need five members or more.
    #[serde(default)]
    pub figure_eights_per_minute: u32,
}

/// Member settings a scenario may change from the engine's defaults, so that rare paths
/// (snapshots, WAL segment rotation) happen within a short run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberTuning {
    /// Snapshot and compact the raft log every this many applied entries.
    pub snapshot_interval_entries: u64,
    /// Start a new WAL segment after this many bytes.
    pub wal_segment_bytes_max: u64,
    /// Members report a hash of their key-value state at every applied index that is a
    /// multiple of this (hashing the whole store is the run's costliest check).
    #[serde(default = "kv_hash_interval_entries_default")]
    pub kv_hash_interval_entries: u64,
    /// Zoo bugs switched on in every member (`detcd sim hunt`); empty in a normal run, and
    /// inert in a build without the `bug-zoo` feature.
    #[serde(
        default,
        with = "bug_names",
        skip_serializing_if = "bug_names::is_empty"
    )]
    pub bugs: BugSet,
}

/// Bug sets as lists of bug names in scenario files and reports.
mod bug_names {
    use engine::zoo::{Bug, BugSet};

    pub(super) fn is_empty(bugs: &BugSet) -> bool {
        bugs.is_empty()
    }

    pub(super) fn serialize<S: serde::Serializer>(
        bugs: &BugSet,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(bugs.bugs().map(Bug::name))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BugSet, D::Error> {
        let names: Vec<String> = serde::Deserialize::deserialize(deserializer)?;
        names.iter().try_fold(BugSet::EMPTY, |set, name| {
            Bug::by_name(name)
                .map(|bug| set.with(bug))
                .ok_or_else(|| serde::de::Error::custom(format!("unknown zoo bug {name:?}")))
        })
    }
}

fn kv_hash_interval_entries_default() -> u64 {
    256
}

impl MemberTuning {
    /// Snapshots every 500 entries and 256 KiB WAL segments: both happen several times in a
    /// one-minute run.
    pub fn frequent_snapshots() -> MemberTuning {
        MemberTuning {
            snapshot_interval_entries: 500,
            wal_segment_bytes_max: 256 * 1024,
            kv_hash_interval_entries: kv_hash_interval_entries_default(),
            bugs: BugSet::EMPTY,
        }
    }
}

/// The faults the design claims to survive, as limits the schedule respects.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultBudget {
    /// Members that may receive corrupting disk faults over the run (at most a minority keeps
    /// every entry intact on a majority).
    pub corrupted_members_max: u32,
    /// Members that may be down (crashed, paused, halted) at once.
    pub down_members_max: u32,
}

impl FaultBudget {
    /// The budget the design claims to survive for `member_count` members: a minority.
    pub fn in_model(member_count: u32) -> FaultBudget {
        let tolerated = (member_count - 1) / 2;
        FaultBudget {
            corrupted_members_max: tolerated,
            down_members_max: down_tolerated(member_count),
        }
    }
}

/// Members that may be down at once within the model: a minority, but at least one. A crashed
/// member restarts from its durable state, so safety holds with every member down; only
/// availability needs a quorum up, and the liveness phase restores one. A lone member must be
/// allowed to crash, or its durability is never tested.
fn down_tolerated(member_count: u32) -> u32 {
    ((member_count - 1) / 2).max(1)
}

/// One simulated scenario.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scenario {
    /// A sentence in snake_case, e.g. `default` or `leader_partitioned_during_compaction`.
    pub name: String,
    /// Members in the cluster.
    pub member_count: u32,
    /// Length of the safety phase, with faults (ms of simulated time).
    pub safety_ms: u64,
    /// After healing, the cluster must elect a leader and commit a write within this (ms).
    pub liveness_bound_ms: u64,
    /// How long the run goes on after liveness was shown, so members catch up (ms).
    pub drain_ms: u64,
    /// Member settings.
    pub member: MemberTuning,
    /// Client traffic.
    pub workload: WorkloadConfig,
    /// Links during the safety phase.
    pub network: NetworkConfig,
    /// Each member's disk.
    pub disk: DiskConfig,
    /// Faults to inject.
    pub faults: FaultRates,
    /// Limits on faults.
    pub budget: FaultBudget,
    /// The scenario exceeds what the design claims to survive.
    pub beyond_model: bool,
    /// The verdict the checks are expected to reach (`Pass` unless beyond the model).
    pub expected_verdict: Verdict,
}

impl Scenario {
    /// Names of the built-in scenarios.
    pub const BUILT_IN: [&'static str; 10] = [
        "default",
        "no_faults",
        "partitions_only",
        "crash_restart",
        "disk_faults",
        "clock_faults",
        "disk_corruption_on_a_majority",
        "single_member_crashes",
        "three_members_crash_points",
        "figure_eight",
    ];

    /// The built-in scenario called `name`.
    pub fn by_name(name: &str) -> Option<Scenario> {
        Some(match name {
            "default" => Scenario::default_scenario(),
            "no_faults" => Scenario::no_faults(),
            "partitions_only" => Scenario::partitions_only(),
            "crash_restart" => Scenario::crash_restart(),
            "disk_faults" => Scenario::disk_faults(),
            "clock_faults" => Scenario::clock_faults(),
            "disk_corruption_on_a_majority" => Scenario::disk_corruption_on_a_majority(),
            "single_member_crashes" => Scenario::single_member_crashes(),
            "three_members_crash_points" => Scenario::three_members_crash_points(),
            "figure_eight" => Scenario::figure_eight(),
            _ => return None,
        })
    }

    /// 5 members, 60 s of faults of every kind within the budget, then a liveness phase.
    pub fn default_scenario() -> Scenario {
        Scenario {
            name: "default".into(),
            faults: FaultRates {
                partitions_per_minute: PartitionKind::ALL.iter().map(|kind| (*kind, 1)).collect(),
                crashes_per_minute: 4,
                pauses_per_minute: 3,
                disk_faults_per_minute: DiskFaultKind::ALL.iter().map(|kind| (*kind, 1)).collect(),
                clock_faults_per_minute: 3,
                // Aimed faults: the durability-order and Figure-8 bugs hide from random ones.
                crash_points_per_minute: 8,
                wal_flips_per_minute: 1,
                figure_eights_per_minute: 4,
                ..Scenario::no_faults().faults
            },
            network: NetworkConfig::lossy(),
            ..Scenario::no_faults()
        }
    }

    /// 5 members, a reliable network, no faults: the baseline.
    pub fn no_faults() -> Scenario {
        Scenario {
            name: "no_faults".into(),
            member_count: 5,
            safety_ms: 60_000,
            liveness_bound_ms: 10_000,
            drain_ms: 1_000,
            member: MemberTuning::frequent_snapshots(),
            workload: WorkloadConfig::etcd_like(),
            network: NetworkConfig::reliable(),
            disk: DiskConfig::ssd(),
            faults: FaultRates {
                partition_ms_max: 5_000,
                downtime_ms_max: 5_000,
                pause_ms_max: 3_000,
                clock_drift_ppm_max: 50_000,
                clock_jump_ms_max: 2_000,
                clock_skew_ms_max: 500,
                ..FaultRates::default()
            },
            budget: FaultBudget::in_model(5),
            beyond_model: false,
            expected_verdict: Verdict::Pass,
        }
    }

    /// Every partition kind, frequently, on a lossy network; no process, disk or clock faults.
    pub fn partitions_only() -> Scenario {
        let mut scenario = Scenario::no_faults();
        scenario.name = "partitions_only".into();
        scenario.network = NetworkConfig::lossy();
        scenario.faults.partitions_per_minute =
            PartitionKind::ALL.iter().map(|kind| (*kind, 3)).collect();
        scenario
    }

    /// Frequent crashes (torn tails) and pauses, within the budget.
    pub fn crash_restart() -> Scenario {
        let mut scenario = Scenario::no_faults();
        scenario.name = "crash_restart".into();
        scenario.faults.crashes_per_minute = 12;
        scenario.faults.pauses_per_minute = 6;
        scenario
    }

    /// One member that crashes often, at random and at crash points, on a disk with slow syncs:
    /// a lone member's durability rests on its own sync alone (etcd #14370 showed only here).
    pub fn single_member_crashes() -> Scenario {
        let mut scenario = Scenario::crash_restart();
        scenario.name = "single_member_crashes".into();
        scenario.member_count = 1;
        scenario.budget = FaultBudget::in_model(1);
        scenario.disk = DiskConfig::slow_sync();
        scenario.faults.crashes_per_minute = 6;
        scenario.faults.pauses_per_minute = 2;
        scenario.faults.crash_points_per_minute = 12;
        scenario.faults.downtime_ms_max = 1_000;
        scenario
    }

    /// Three members, crashes and crash points on slow-sync disks, a lossy network and every
    /// partition kind: a quorum of two, where one lost promise is half the quorum.
    pub fn three_members_crash_points() -> Scenario {
        let mut scenario = Scenario::crash_restart();
        scenario.name = "three_members_crash_points".into();
        scenario.member_count = 3;
        scenario.budget = FaultBudget::in_model(3);
        scenario.disk = DiskConfig::slow_sync();
        scenario.network = NetworkConfig::lossy();
        scenario.faults.partitions_per_minute =
            PartitionKind::ALL.iter().map(|kind| (*kind, 1)).collect();
        scenario.faults.crashes_per_minute = 4;
        scenario.faults.crash_points_per_minute = 12;
        scenario.faults.downtime_ms_max = 2_000;
        scenario
    }

    /// Five members under the Figure-8 schedule, often, with crash points on slow-sync disks.
    pub fn figure_eight() -> Scenario {
        let mut scenario = Scenario::no_faults();
        scenario.name = "figure_eight".into();
        scenario.disk = DiskConfig::slow_sync();
        scenario.faults.figure_eights_per_minute = 6;
        scenario.faults.crash_points_per_minute = 4;
        scenario
    }

    /// Every disk fault kind, corrupting ones on a minority only.
    pub fn disk_faults() -> Scenario {
        let mut scenario = Scenario::no_faults();
        scenario.name = "disk_faults".into();
        scenario.faults.disk_faults_per_minute =
            DiskFaultKind::ALL.iter().map(|kind| (*kind, 4)).collect();
        scenario.faults.crashes_per_minute = 2;
        scenario
    }

    /// Clock drift, skew and jumps on every member.
    pub fn clock_faults() -> Scenario {
        let mut scenario = Scenario::no_faults();
        scenario.name = "clock_faults".into();
        scenario.faults.clock_faults_per_minute = 20;
        scenario.faults.clock_skew_ms_max = 5_000;
        scenario
    }

    /// Beyond the model: silent corruption on every member, then crashes that force recovery
    /// from the damaged disks. The checks are expected to fail.
    pub fn disk_corruption_on_a_majority() -> Scenario {
        let mut scenario = Scenario::disk_faults();
        scenario.name = "disk_corruption_on_a_majority".into();
        scenario.faults.disk_faults_per_minute =
            vec![(DiskFaultKind::BitFlip, 30), (DiskFaultKind::LostWrite, 30)];
        // Crashes must reach a majority too: corruption is found when a member restarts and
        // reads its disk, and a majority that cannot start leaves the cluster without a quorum.
        scenario.faults.crashes_per_minute = 30;
        scenario.budget.corrupted_members_max = scenario.member_count;
        scenario.budget.down_members_max = scenario.member_count;
        scenario.beyond_model = true;
        scenario.expected_verdict = Verdict::Fail;
        scenario
    }

    /// Checks the scenario's limits; the error names the wrong setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.member_count == 0 || self.member_count > 9 {
            return Err(format!("member_count {} must be 1..=9", self.member_count));
        }
        if self.workload.client_count == 0 {
            return Err("workload.client_count must be at least 1".into());
        }
        let tolerated = (self.member_count - 1) / 2;
        let beyond = self.budget.corrupted_members_max > tolerated
            || self.budget.down_members_max > down_tolerated(self.member_count);
        if beyond && !self.beyond_model {
            return Err(
                "the fault budget exceeds a minority: set beyond_model and an expected verdict"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Scenario, Verdict};

    /// Goal: every built-in scenario exists under its own name, validates, and only the
    /// beyond-model one expects a failure. Method: look each one up by name.
    #[test]
    fn built_ins_are_named_and_valid() {
        for name in Scenario::BUILT_IN {
            let scenario = Scenario::by_name(name).expect(name);
            assert_eq!(scenario.name, name);
            scenario.validate().unwrap();
            assert_eq!(
                scenario.beyond_model,
                scenario.expected_verdict == Verdict::Fail,
                "{name}"
            );
        }
        assert!(Scenario::by_name("nope").is_none());
        let mut too_much = Scenario::no_faults();
        too_much.budget.down_members_max = 3;
        assert!(too_much.validate().is_err());
    }

    /// Goal: scenarios survive a round trip through JSON, so the scenarios crate can store them
    /// as files with serde. Method: serialise and parse every built-in, compare.
    #[test]
    fn scenarios_round_trip_through_json() {
        for name in Scenario::BUILT_IN {
            let scenario = Scenario::by_name(name).unwrap();
            let text = serde_json::to_string(&scenario).unwrap();
            let parsed: Scenario = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, scenario, "{name}");
        }
        let text = serde_json::to_string(&Scenario::default_scenario()).unwrap();
        assert!(
            text.contains("\"isolate_leader\"") && text.contains("\"bit_flip\""),
            "{text}"
        );
    }
}
