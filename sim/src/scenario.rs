//! What one run simulates: cluster size, durations, workload, network, disks, the fault kinds
//! with their rates, and the fault budget. Plain data with a few built-in named scenarios.
//!
//! Scenario files (the `scenarios` crate) will build these values; this module does not parse
//! anything. Names are sentences in snake_case.

use engine::zoo::BugSet;

use crate::disk::{DiskConfig, DiskFaultKind};
use crate::network::{NetworkConfig, PartitionKind};
use crate::timeline::Timeline;
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
    /// Leadership handed to a random follower under load (etcd's MoveLeader), per minute.
    #[serde(default)]
    pub leader_transfers_per_minute: u32,
    /// A random follower cut off until the leader has compacted past it, so that it must
    /// install a snapshot (healed after `partition_ms_max` at the latest), per minute.
    #[serde(default)]
    pub fall_behinds_per_minute: u32,
    /// Compaction storms per minute: every other client compacts at the newest revision it
    /// saw, for `COMPACTION_STORM_MS`.
    #[serde(default)]
    pub compaction_storms_per_minute: u32,
    /// A random follower replaced by an empty member (remove, add as a learner, promote), per
    /// minute; needs spare member slots (`spare_member_count`), each used once.
    #[serde(default)]
    pub member_replacements_per_minute: u32,
}

/// How long a randomly drawn compaction storm lasts (ms).
pub const COMPACTION_STORM_MS: u64 = 3_000;

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
    /// Events a member buffers for a watch whose consumer stopped reading before moving it to
    /// catch-up (the engine's default is 1,024; smaller here so a few seconds of backpressure
    /// overflow it).
    #[serde(default = "watch_pending_events_count_max_default")]
    pub watch_pending_events_count_max: usize,
    /// History events a member feeds lagging watches per step (the engine's default is 1,024;
    /// smaller here so that a long catch-up spans many steps, as etcd's batched sync does).
    #[serde(default = "watch_catch_up_events_per_step_max_default")]
    pub watch_catch_up_events_per_step_max: usize,
    /// Zoo bugs switched on in every member (`detcd sim hunt`); empty in a normal run, and
    /// inert in a build without the `bug-zoo` feature.
    #[serde(
        default,
        with = "bug_names",
        skip_serializing_if = "bug_names::is_empty"
    )]
    pub bugs: BugSet,
    /// Share of seeds (ppm) whose members run with buggify on (`engine::buggify`), drawn per
    /// seed from the simulator's own buggify stream; `1_000_000` turns it on in every seed
    /// (`--buggify`), so a campaign with it can be measured.
    #[serde(default = "buggify_seeds_ppm_default")]
    pub buggify_seeds_ppm: u32,
    /// This run's draw from `buggify_seeds_ppm`: set by the world when a run starts, never
    /// read from a scenario file.
    #[serde(skip)]
    pub buggify: bool,
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

fn watch_pending_events_count_max_default() -> usize {
    32
}

fn watch_catch_up_events_per_step_max_default() -> usize {
    64
}

fn kv_hash_interval_entries_default() -> u64 {
    256
}

/// One seed in four runs with buggify: rare paths get exercised in every campaign while most
/// seeds keep the engine's ordinary timing.
fn buggify_seeds_ppm_default() -> u32 {
    250_000
}

impl MemberTuning {
    /// Snapshots every 500 entries and 256 KiB WAL segments: both happen several times in a
    /// one-minute run.
    pub fn frequent_snapshots() -> MemberTuning {
        MemberTuning {
            snapshot_interval_entries: 500,
            wal_segment_bytes_max: 256 * 1024,
            kv_hash_interval_entries: kv_hash_interval_entries_default(),
            watch_pending_events_count_max: watch_pending_events_count_max_default(),
            watch_catch_up_events_per_step_max: watch_catch_up_events_per_step_max_default(),
            bugs: BugSet::EMPTY,
            buggify_seeds_ppm: buggify_seeds_ppm_default(),
            buggify: false,
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
    /// Member slots beyond `member_count` that are not started: membership changes
    /// (`add_learner`, `replace_member`) start them with empty disks. Their ids follow the
    /// members' (6 and 7 after five members).
    #[serde(default)]
    pub spare_member_count: u32,
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
    /// For a scenario expected to fail: the checks that may fail, at least one of which must.
    /// A failure of any other check (a checker that gave up, a member panic, another safety
    /// property) is not the expected outcome and fails the run.
    #[serde(default)]
    pub expected_failures: Vec<String>,
    /// Faults at fixed times, the same on every seed (`[[at]]` in files), besides the random
    /// ones drawn from `faults`.
    #[serde(default, skip_serializing_if = "Timeline::is_empty")]
    pub timeline: Timeline,
    /// The file the scenario was read from, when it is not a library scenario: replay commands
    /// name the file, since the name alone would not find it.
    #[serde(skip)]
    pub source_file: Option<String>,
}

impl Scenario {
    /// Names of the built-in scenarios.
    pub const BUILT_IN: [&'static str; 14] = [
        "default",
        "compaction_heavy",
        "lease_heavy",
        "no_faults",
        "partitions_only",
        "crash_restart",
        "disk_faults",
        "clock_faults",
        "leader_isolated_under_lease_traffic",
        "disk_corruption_on_a_majority",
        "single_member_crashes",
        "three_members_crash_points",
        "figure_eight",
        "learner_promoted_during_partition",
    ];

    /// The built-in scenario called `name`.
    pub fn by_name(name: &str) -> Option<Scenario> {
        Some(match name {
            "default" => Scenario::default_scenario(),
            "compaction_heavy" => Scenario::compaction_heavy(),
            "lease_heavy" => Scenario::lease_heavy(),
            "no_faults" => Scenario::no_faults(),
            "partitions_only" => Scenario::partitions_only(),
            "crash_restart" => Scenario::crash_restart(),
            "disk_faults" => Scenario::disk_faults(),
            "clock_faults" => Scenario::clock_faults(),
            "leader_isolated_under_lease_traffic" => {
                Scenario::leader_isolated_under_lease_traffic()
            }
            "disk_corruption_on_a_majority" => Scenario::disk_corruption_on_a_majority(),
            "single_member_crashes" => Scenario::single_member_crashes(),
            "three_members_crash_points" => Scenario::three_members_crash_points(),
            "figure_eight" => Scenario::figure_eight(),
            "learner_promoted_during_partition" => Scenario::learner_promoted_during_partition(),
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

    /// The default faults with compaction-heavy traffic (compactions close behind the head,
    /// reads at past revisions, range deletes) and a snapshot every 100 entries, so compacted
    /// history meets restarts and snapshot installs often.
    pub fn compaction_heavy() -> Scenario {
        let mut scenario = Scenario::default_scenario();
        scenario.name = "compaction_heavy".into();
        scenario.workload.mix = crate::workload::OpMix::compaction_heavy();
        scenario.member.snapshot_interval_entries = 100;
        scenario
    }

    /// The default faults with lease-heavy traffic: grants, attached puts, keep-alives,
    /// time-to-live queries, revokes and expiries dominate.
    pub fn lease_heavy() -> Scenario {
        let mut scenario = Scenario::default_scenario();
        scenario.name = "lease_heavy".into();
        scenario.workload.mix = crate::workload::OpMix::lease_heavy();
        scenario
    }

    /// 5 members, a reliable network, no faults: the baseline.
    pub fn no_faults() -> Scenario {
        Scenario {
            name: "no_faults".into(),
            member_count: 5,
            spare_member_count: 0,
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
            expected_failures: Vec::new(),
            timeline: Timeline::default(),
            source_file: None,
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

    /// The leader cut off again and again, long enough for a new leader to expire leases,
    /// under lease-heavy traffic; clocks run true, so every lease promise is checked. This is
    /// where a deposed leader that renews (etcd #15247) or a member that expires leases it does
    /// not own (etcd #12528) shows: the default campaign has clock faults, which make expiry
    /// times unjudgeable, and too few keep-alives per lease to notice a lease cut short. A
    /// deposed leader that still answers reads (etcd #741) shows here far more often too.
    pub fn leader_isolated_under_lease_traffic() -> Scenario {
        let mut scenario = Scenario::no_faults();
        scenario.name = "leader_isolated_under_lease_traffic".into();
        scenario.network = NetworkConfig::lossy();
        scenario.faults.partitions_per_minute = vec![(PartitionKind::IsolateLeader, 6)];
        // Longer than an election plus the grace plus a lease's TTL.
        scenario.faults.partition_ms_max = 10_000;
        scenario.faults.crashes_per_minute = 1;
        scenario.faults.pauses_per_minute = 2;
        let workload = &mut scenario.workload;
        // Few leases per client, kept alive often: a lease cut short is then seen quickly.
        workload.lease_ttl_seconds = 3;
        workload.leases_per_client_max = 2;
        workload.mix = crate::workload::OpMix {
            range: 15,
            range_serializable: 3,
            put: 10,
            delete: 2,
            txn: 5,
            lease_grant: 5,
            put_with_lease: 10,
            lease_keepalive: 50,
            lease_revoke: 1,
            range_historical: 2,
            range_options: 2,
            delete_range: 1,
            compact: 0,
            lease_time_to_live: 3,
        };
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
        // Members refuse to start from disks whose records fail their checksums, so a majority
        // cannot come back and no write commits after the heal: availability is lost, and
        // every safety check must still hold (no corrupt data is served).
        scenario.expected_failures = vec!["liveness".into()];
        scenario
    }

    /// This scenario with every random fault off and `timeline` as its only faults: how a
    /// failing run is re-run from the faults it recorded (`RunReport::faults_ran`), and how a
    /// shrinker tries a timeline with entries dropped. The network keeps its loss and latency.
    pub fn with_timeline_only(&self, timeline: Timeline) -> Scenario {
        let mut scenario = self.clone();
        let faults = &mut scenario.faults;
        faults.partitions_per_minute.clear();
        faults.disk_faults_per_minute.clear();
        faults.crashes_per_minute = 0;
        faults.pauses_per_minute = 0;
        faults.clock_faults_per_minute = 0;
        faults.crash_points_per_minute = 0;
        faults.wal_flips_per_minute = 0;
        faults.figure_eights_per_minute = 0;
        scenario.timeline = timeline;
        scenario
    }

    /// Whether any fault, random or scripted, moves a member's clock (lease expiry times are
    /// then unjudgeable).
    pub fn has_clock_faults(&self) -> bool {
        self.faults.clock_faults_per_minute > 0
            || self.timeline.entries.iter().any(|entry| {
                matches!(
                    entry.fault,
                    crate::timeline::ScriptedFault::ClockDrift { .. }
                        | crate::timeline::ScriptedFault::ClockJump { .. }
                )
            })
    }

    /// Checks the scenario's limits; the error names the wrong setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.member_count == 0 || self.member_count > 9 {
            return Err(format!("member_count {} must be 1..=9", self.member_count));
        }
        if self.member_count + self.spare_member_count > 9 {
            return Err(format!(
                "spare_member_count {} leaves more than 9 member slots with member_count {}",
                self.spare_member_count, self.member_count
            ));
        }
        if self.workload.client_count == 0 {
            return Err("workload.client_count must be at least 1".into());
        }
        self.validate_numbers()?;
        if let Some(locks) = &self.workload.locks {
            locks.validate(self.workload.auth.is_some())?;
        }
        if let Some(auth) = &self.workload.auth {
            auth.validate(self.workload.client_count)?;
        }
        let tolerated = (self.member_count - 1) / 2;
        let beyond = self.budget.corrupted_members_max > tolerated
            || self.budget.down_members_max > down_tolerated(self.member_count);
        if (self.expected_verdict == Verdict::Fail) == self.expected_failures.is_empty() {
            return Err(
                "expected_failures must name the checks that fail exactly when expected_verdict is fail"
                    .into(),
            );
        }
        let slots_count = u64::from(self.member_count + self.spare_member_count);
        self.timeline.validate(slots_count, self.safety_ms)?;
        if beyond && !self.beyond_model {
            return Err(
                "the fault budget exceeds a minority: set beyond_model and an expected verdict"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Longest duration a scenario may name (a day): longer is a typo, and the limit keeps every
/// ms-to-ns conversion and sum of times far from overflow.
pub const SCENARIO_MS_MAX: u64 = 24 * 3600 * 1000;
const SCENARIO_NS_MAX: u64 = SCENARIO_MS_MAX * 1_000_000;
const PPM_MAX: u32 = 1_000_000;

impl Scenario {
    /// Ranges, shares and durations: every min at most its max, every share a part of a
    /// million, every duration at most a day; the error names the setting.
    fn validate_numbers(&self) -> Result<(), String> {
        let (workload, network, disk, faults) =
            (&self.workload, &self.network, &self.disk, &self.faults);
        let ranges = [
            (
                "workload.think_ns",
                workload.think_ns_min,
                workload.think_ns_max,
            ),
            (
                "network.link_latency_ns",
                network.link_latency_ns_min,
                network.link_latency_ns_max,
            ),
            (
                "disk.op_latency_ns",
                disk.op_latency_ns_min,
                disk.op_latency_ns_max,
            ),
            (
                "disk.sync_latency_ns",
                disk.sync_latency_ns_min,
                disk.sync_latency_ns_max,
            ),
        ];
        for (name, min, max) in ranges {
            if min > max {
                return Err(format!("{name}_min ({min}) is above {name}_max ({max})"));
            }
        }
        let durations_ns = [
            ("workload.think_ns_max", workload.think_ns_max),
            ("workload.request_timeout_ns", workload.request_timeout_ns),
            ("network.link_latency_ns_max", network.link_latency_ns_max),
            ("network.jitter_ns_max", network.jitter_ns_max),
            ("network.reorder_delay_ns_max", network.reorder_delay_ns_max),
            ("disk.op_latency_ns_max", disk.op_latency_ns_max),
            ("disk.sync_latency_ns_max", disk.sync_latency_ns_max),
        ];
        for (name, value) in durations_ns {
            if value > SCENARIO_NS_MAX {
                return Err(format!("{name} ({value} ns) is longer than a day"));
            }
        }
        let durations_ms = [
            ("safety_ms", self.safety_ms),
            ("liveness_bound_ms", self.liveness_bound_ms),
            ("drain_ms", self.drain_ms),
            ("faults.partition_ms_max", faults.partition_ms_max),
            ("faults.downtime_ms_max", faults.downtime_ms_max),
            ("faults.pause_ms_max", faults.pause_ms_max),
            ("faults.clock_jump_ms_max", faults.clock_jump_ms_max),
            ("faults.clock_skew_ms_max", faults.clock_skew_ms_max),
        ];
        for (name, value) in durations_ms {
            if value > SCENARIO_MS_MAX {
                return Err(format!("{name} ({value} ms) is longer than a day"));
            }
        }
        let shares = [
            ("workload.small_key_share_ppm", workload.small_key_share_ppm),
            ("network.spike_ppm", network.spike_ppm),
            ("network.drop_ppm", network.drop_ppm),
            ("network.duplicate_ppm", network.duplicate_ppm),
            ("network.reorder_ppm", network.reorder_ppm),
            ("disk.torn_tail_ppm", disk.torn_tail_ppm),
        ];
        for (name, value) in shares {
            if value > PPM_MAX {
                return Err(format!(
                    "{name} ({value}) is more than a million parts per million"
                ));
            }
        }
        if workload.request_timeout_ns == 0 {
            return Err("workload.request_timeout_ns must be positive".into());
        }
        if workload.small_keys_count == 0 || workload.large_keys_count == 0 {
            return Err("workload.small_keys_count and large_keys_count must be at least 1".into());
        }
        if !(1..=1_000_000).contains(&workload.lease_ttl_seconds) {
            return Err(format!(
                "workload.lease_ttl_seconds ({}) must be 1..=1000000",
                workload.lease_ttl_seconds
            ));
        }
        if !(1..=1_000).contains(&network.spike_factor) {
            return Err(format!(
                "network.spike_factor ({}) must be 1..=1000",
                network.spike_factor
            ));
        }
        if !(0..=1_000_000).contains(&faults.clock_drift_ppm_max) {
            return Err(format!(
                "faults.clock_drift_ppm_max ({}) must be 0..=1000000",
                faults.clock_drift_ppm_max
            ));
        }
        let member = &self.member;
        if member.snapshot_interval_entries == 0
            || member.kv_hash_interval_entries == 0
            || member.wal_segment_bytes_max == 0
        {
            return Err("member intervals and wal_segment_bytes_max must be positive".into());
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

    /// Goal: impossible numbers are a usage error naming the setting, not a simulator panic
    /// mid-run: a min above its max, a share above a million ppm, a duration beyond a day
    /// (whose conversion to ns would overflow). Method: break one field at a time, validate,
    /// and run the broken scenario (it must fail as `scenario_invalid`, not panic).
    #[test]
    fn impossible_numbers_are_refused_naming_the_setting() {
        type Breaker = fn(&mut Scenario);
        let cases: [(&str, Breaker); 4] = [
            ("think_ns_min", |scenario| {
                scenario.workload.think_ns_min = scenario.workload.think_ns_max + 1
            }),
            ("link_latency_ns_min", |scenario| {
                scenario.network.link_latency_ns_min = u64::MAX
            }),
            ("drop_ppm", |scenario| scenario.network.drop_ppm = 2_000_000),
            ("safety_ms", |scenario| scenario.safety_ms = u64::MAX / 1000),
        ];
        for (name, break_it) in cases {
            let mut scenario = Scenario::default_scenario();
            break_it(&mut scenario);
            let error = scenario.validate().unwrap_err();
            assert!(error.contains(name), "{name}: {error}");
            let (report, _) = crate::run(&scenario, 1, crate::RunOptions::default());
            assert_eq!(report.failures[0].check, "scenario_invalid", "{name}");
        }
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
