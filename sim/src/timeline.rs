//! The scripted timeline: faults at fixed times of the safety phase, the same on every seed, each
//! aimed at members by id or by their role at that moment (`leader`, `a_follower`,
//! `the_most_behind`, `a_minority`).
//!
//! Every fault the random schedule (`faults`, `aimed`, `nemesis`) injects is also expressible
//! here with concrete targets, and a run hands back the faults that ran as a `Timeline`
//! (`RunReport::faults_ran`): a failing run can be re-run with random faults off and that
//! timeline on, and a shrinker can drop entries. This module is plain data and its checks; the
//! world carries entries out (`scripted`). It parses nothing (the `scenarios` crate does).

use engine::types::NodeId;

use crate::disk::DiskFaultKind;

/// The scripted faults of a scenario, in the order they were written (or ran).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timeline {
    /// The entries; the world schedules each at its time, ties in this order.
    pub entries: Vec<TimedFault>,
}

/// One scripted fault and when it strikes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimedFault {
    /// Simulated time from the start of the run (ns); within the safety phase.
    pub time_ns: u64,
    /// What happens.
    #[serde(flatten)]
    pub fault: ScriptedFault,
}

/// Whom a fault hits: members by id, or a role resolved when the fault strikes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Target {
    /// One member, by id (1-based).
    Member(u64),
    /// A role at the moment the fault strikes.
    Role(Role),
}

/// A role a target can name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The member the world last saw elected, if it is still up.
    Leader,
    /// One running voter that is not the leader, drawn from the script stream.
    AFollower,
    /// The running member with the shortest log.
    TheMostBehind,
    /// As many running members as a minority of the voters, never the leader, drawn.
    AMinority,
    /// The learner most recently added by the timeline or the schedule.
    TheLearner,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 5] = [
        Role::Leader,
        Role::AFollower,
        Role::TheMostBehind,
        Role::AMinority,
        Role::TheLearner,
    ];

    /// The snake_case name used in files and traces.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::AFollower => "a_follower",
            Role::TheMostBehind => "the_most_behind",
            Role::AMinority => "a_minority",
            Role::TheLearner => "the_learner",
        }
    }

    /// The role called `name`.
    pub fn by_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Member(id) => write!(formatter, "n{id}"),
            Target::Role(role) => formatter.write_str(role.name()),
        }
    }
}

fn leader() -> Target {
    Target::Role(Role::Leader)
}

fn a_follower() -> Target {
    Target::Role(Role::AFollower)
}

/// Where a crash point fires (the triggers of `aimed`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CrashPointTrigger {
    /// Right after the member sends a granted vote.
    VoteSent,
    /// Right after it sends a successful append acknowledgement.
    AckSent,
    /// Right after it (as leader) sends a snapshot.
    SnapshotSent,
    /// While a sync it issued is in flight.
    SyncInFlight,
    /// Inside the disk operations that write a snapshot file or remove a WAL segment.
    SnapshotRelease,
}

impl CrashPointTrigger {
    /// The snake_case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            CrashPointTrigger::VoteSent => "vote_sent",
            CrashPointTrigger::AckSent => "ack_sent",
            CrashPointTrigger::SnapshotSent => "snapshot_sent",
            CrashPointTrigger::SyncInFlight => "sync_in_flight",
            CrashPointTrigger::SnapshotRelease => "snapshot_release",
        }
    }

    /// Every trigger, in a fixed order (the random schedule draws an index into this).
    pub const ALL: [CrashPointTrigger; 5] = [
        CrashPointTrigger::VoteSent,
        CrashPointTrigger::AckSent,
        CrashPointTrigger::SnapshotSent,
        CrashPointTrigger::SyncInFlight,
        CrashPointTrigger::SnapshotRelease,
    ];
}

/// What a timeline entry does. Durations are ms (drawn durations of the random schedule are
/// whole ms, so a recorded fault is exact); `fault` names the variant in files.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum ScriptedFault {
    /// Members in different groups cannot reach each other, both ways; members named in no
    /// group form one more group. `cut` adds directed links `[from, to]` that carry nothing
    /// (the form a recorded random partition takes). Holds `heal_after_ms`, or with
    /// `flapping` it is healed and re-cut every 200-800 ms, six times.
    Partition {
        /// Groups of members.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<Vec<Target>>,
        /// Directed links cut besides the groups, by member id.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cut: Vec<[u64; 2]>,
        /// Heal and re-cut repeatedly instead of holding.
        #[serde(default, skip_serializing_if = "is_false")]
        flapping: bool,
        /// How long it holds (ms).
        heal_after_ms: u64,
    },
    /// The targets crash (unsynced data may be lost) and restart after `restart_after_ms`.
    Crash {
        /// Who crashes.
        #[serde(default = "leader")]
        target: Target,
        /// Downtime (ms).
        restart_after_ms: u64,
    },
    /// The targets stop and resume with stale timers after `resume_after_ms`.
    Pause {
        /// Who pauses.
        #[serde(default = "leader")]
        target: Target,
        /// Pause length (ms).
        resume_after_ms: u64,
    },
    /// A disk fault on the targets' disks (`latency_spike` on the leader is a slow disk on the
    /// leader only); `window_ms` bounds the timed kinds.
    Disk {
        /// The disk fault.
        kind: DiskFaultKind,
        /// Whose disk.
        #[serde(default = "leader")]
        target: Target,
        /// How long a timed fault (latency spike, disk full) lasts (ms).
        #[serde(default = "window_ms_default")]
        window_ms: u64,
    },
    /// The targets' clocks start drifting by `drift_ppm` (negative: slow).
    ClockDrift {
        /// Whose clock.
        #[serde(default = "leader")]
        target: Target,
        /// Parts per million.
        drift_ppm: i64,
    },
    /// The targets' clocks jump forward.
    ClockJump {
        /// Whose clock.
        #[serde(default = "leader")]
        target: Target,
        /// How far (ms).
        jump_ms: u64,
    },
    /// A crash point armed on the targets (`aimed`): each crashes when it next reaches it.
    CrashPoint {
        /// Who.
        #[serde(default = "leader")]
        target: Target,
        /// Where it fires.
        trigger: CrashPointTrigger,
    },
    /// A bit flip in the synced middle of the target's WAL, then a crash (corrupting).
    WalFlip {
        /// Whose WAL.
        #[serde(default = "a_follower")]
        target: Target,
    },
    /// The Figure-8 schedule (`nemesis`) starts, around the leader of the moment.
    FigureEight,
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

fn window_ms_default() -> u64 {
    2_000
}

/// A target is out of range, an entry falls outside the safety phase, or a duration is absurd.
pub type TimelineError = String;

impl Timeline {
    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks every entry against a cluster of `member_ids_max` ids (voters and spare slots)
    /// and a safety phase of `safety_ms`; the error starts with `at[i].key` naming the entry
    /// (0-based) and its key.
    pub fn validate(&self, member_ids_max: u64, safety_ms: u64) -> Result<(), TimelineError> {
        for (index, entry) in self.entries.iter().enumerate() {
            let place = format!("at[{index}]");
            let safety_ns = safety_ms.saturating_mul(1_000_000);
            if entry.time_ns >= safety_ns {
                return Err(format!(
                    "{place}.time: {} ms is not within the safety phase (safety_ms = {safety_ms})",
                    entry.time_ns / 1_000_000
                ));
            }
            entry.fault.validate(&place, member_ids_max)?;
        }
        Ok(())
    }

    /// One line per entry, for traces and reports.
    pub fn describe(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|entry| format!("{}ms {}", entry.time_ns / 1_000_000, entry.fault.describe()))
            .collect()
    }
}

impl ScriptedFault {
    /// The entry's `fault` name.
    pub fn name(&self) -> &'static str {
        match self {
            ScriptedFault::Partition { .. } => "partition",
            ScriptedFault::Crash { .. } => "crash",
            ScriptedFault::Pause { .. } => "pause",
            ScriptedFault::Disk { .. } => "disk",
            ScriptedFault::ClockDrift { .. } => "clock_drift",
            ScriptedFault::ClockJump { .. } => "clock_jump",
            ScriptedFault::CrashPoint { .. } => "crash_point",
            ScriptedFault::WalFlip { .. } => "wal_flip",
            ScriptedFault::FigureEight => "figure_eight",
        }
    }

    /// Every target the entry names.
    pub fn targets(&self) -> Vec<&Target> {
        match self {
            ScriptedFault::Partition { groups, .. } => groups.iter().flatten().collect(),
            ScriptedFault::Crash { target, .. }
            | ScriptedFault::Pause { target, .. }
            | ScriptedFault::Disk { target, .. }
            | ScriptedFault::ClockDrift { target, .. }
            | ScriptedFault::ClockJump { target, .. }
            | ScriptedFault::CrashPoint { target, .. }
            | ScriptedFault::WalFlip { target } => vec![target],
            ScriptedFault::FigureEight => Vec::new(),
        }
    }

    fn validate(&self, place: &str, member_ids_max: u64) -> Result<(), TimelineError> {
        let key = match self {
            ScriptedFault::Partition { .. } => "groups",
            _ => "target",
        };
        for target in self.targets() {
            if let Target::Member(id) = target {
                if *id == 0 || *id > member_ids_max {
                    return Err(format!(
                        "{place}.{key}: member {id} does not exist (members are 1..={member_ids_max})"
                    ));
                }
            }
        }
        match self {
            ScriptedFault::Partition {
                groups,
                cut,
                heal_after_ms,
                ..
            } => {
                let mut seen: Vec<&Target> = Vec::new();
                for target in groups.iter().flatten() {
                    if seen.contains(&target) {
                        return Err(format!("{place}.groups: {target} is named twice"));
                    }
                    seen.push(target);
                }
                if groups.is_empty() && cut.is_empty() {
                    return Err(format!("{place}: a partition needs `groups` or `cut`"));
                }
                for [from, to] in cut {
                    for id in [from, to] {
                        if *id == 0 || *id > member_ids_max {
                            return Err(format!(
                                "{place}.cut: member {id} does not exist (members are 1..={member_ids_max})"
                            ));
                        }
                    }
                }
                positive(place, "heal_after", *heal_after_ms)
            }
            ScriptedFault::Crash {
                restart_after_ms, ..
            } => positive(place, "restart_after", *restart_after_ms),
            ScriptedFault::Pause {
                resume_after_ms, ..
            } => positive(place, "resume_after", *resume_after_ms),
            ScriptedFault::Disk { window_ms, .. } => positive(place, "window", *window_ms),
            ScriptedFault::ClockDrift { drift_ppm, .. } => {
                if drift_ppm.unsigned_abs() > 1_000_000 {
                    return Err(format!(
                        "{place}.drift_ppm: {drift_ppm} is not within -1000000..=1000000"
                    ));
                }
                Ok(())
            }
            ScriptedFault::ClockJump { jump_ms, .. } => positive(place, "jump", *jump_ms),
            ScriptedFault::CrashPoint { .. }
            | ScriptedFault::WalFlip { .. }
            | ScriptedFault::FigureEight => Ok(()),
        }
    }

    /// The entry on one line: its name and settings.
    pub fn describe(&self) -> String {
        let targets = |targets: &[&Target]| {
            targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            ScriptedFault::Partition {
                groups,
                cut,
                flapping,
                heal_after_ms,
            } => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|group| format!("[{}]", targets(&group.iter().collect::<Vec<_>>())))
                    .collect();
                format!(
                    "partition groups={} cut_links={} flapping={flapping} heal_after_ms={heal_after_ms}",
                    groups.join(""),
                    cut.len()
                )
            }
            ScriptedFault::Crash {
                target,
                restart_after_ms,
            } => format!("crash {target} restart_after_ms={restart_after_ms}"),
            ScriptedFault::Pause {
                target,
                resume_after_ms,
            } => format!("pause {target} resume_after_ms={resume_after_ms}"),
            ScriptedFault::Disk {
                kind,
                target,
                window_ms,
            } => format!("disk {} {target} window_ms={window_ms}", kind.name()),
            ScriptedFault::ClockDrift { target, drift_ppm } => {
                format!("clock_drift {target} ppm={drift_ppm}")
            }
            ScriptedFault::ClockJump { target, jump_ms } => {
                format!("clock_jump {target} ms={jump_ms}")
            }
            ScriptedFault::CrashPoint { target, trigger } => {
                format!("crash_point {target} {}", trigger.name())
            }
            ScriptedFault::WalFlip { target } => format!("wal_flip {target}"),
            ScriptedFault::FigureEight => "figure_eight".into(),
        }
    }
}

fn positive(place: &str, key: &str, value_ms: u64) -> Result<(), TimelineError> {
    if value_ms == 0 {
        return Err(format!("{place}.{key}: must be longer than zero"));
    }
    if value_ms > crate::scenario::SCENARIO_MS_MAX {
        return Err(format!("{place}.{key}: {value_ms} ms is longer than a day"));
    }
    Ok(())
}

/// The id of a member as a timeline target.
pub fn member_target(id: NodeId) -> Target {
    Target::Member(id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a timeline survives JSON (how reports and the scenarios crate carry it), with the
    /// fault named by `fault` and defaults filled in. Method: parse a hand-written entry list,
    /// compare with the expected values, write it back and parse again.
    #[test]
    fn timeline_round_trips_through_json() {
        let text = r#"[
            {"time_ns": 12000000000, "fault": "partition", "groups": [[1, 2], ["leader"]], "heal_after_ms": 3000},
            {"time_ns": 5, "fault": "crash", "restart_after_ms": 100},
            {"time_ns": 6, "fault": "disk", "kind": "latency_spike"},
            {"time_ns": 7, "fault": "figure_eight"}
        ]"#;
        let timeline: Timeline = serde_json::from_str(text).unwrap();
        assert_eq!(
            timeline.entries[0].fault,
            ScriptedFault::Partition {
                groups: vec![
                    vec![Target::Member(1), Target::Member(2)],
                    vec![Target::Role(Role::Leader)]
                ],
                cut: Vec::new(),
                flapping: false,
                heal_after_ms: 3_000,
            }
        );
        assert_eq!(
            timeline.entries[1].fault,
            ScriptedFault::Crash {
                target: Target::Role(Role::Leader),
                restart_after_ms: 100
            }
        );
        assert_eq!(
            timeline.entries[2].fault,
            ScriptedFault::Disk {
                kind: DiskFaultKind::LatencySpike,
                target: Target::Role(Role::Leader),
                window_ms: 2_000
            }
        );
        let again: Timeline =
            serde_json::from_str(&serde_json::to_string(&timeline).unwrap()).unwrap();
        assert_eq!(again, timeline);
        timeline.validate(5, 60_000).unwrap();
    }

    /// Goal: impossible entries are refused naming the entry and key. Method: one broken entry
    /// at a time, compared with the exact message.
    #[test]
    fn impossible_entries_are_refused_exactly() {
        let entry = |time_ns, fault| Timeline {
            entries: vec![TimedFault { time_ns, fault }],
        };
        let partition = ScriptedFault::Partition {
            groups: vec![vec![Target::Member(7)], vec![Target::Member(1)]],
            cut: Vec::new(),
            flapping: false,
            heal_after_ms: 1_000,
        };
        assert_eq!(
            entry(0, partition).validate(5, 60_000).unwrap_err(),
            "at[0].groups: member 7 does not exist (members are 1..=5)"
        );
        let crash = ScriptedFault::Crash {
            target: Target::Member(1),
            restart_after_ms: 10,
        };
        assert_eq!(
            entry(61_000_000_000, crash.clone())
                .validate(5, 60_000)
                .unwrap_err(),
            "at[0].time: 61000 ms is not within the safety phase (safety_ms = 60000)"
        );
        let twice = ScriptedFault::Partition {
            groups: vec![vec![leader()], vec![leader()]],
            cut: Vec::new(),
            flapping: false,
            heal_after_ms: 1_000,
        };
        assert_eq!(
            entry(0, twice).validate(5, 60_000).unwrap_err(),
            "at[0].groups: leader is named twice"
        );
        let zero = ScriptedFault::Pause {
            target: leader(),
            resume_after_ms: 0,
        };
        assert_eq!(
            entry(0, zero).validate(5, 60_000).unwrap_err(),
            "at[0].resume_after: must be longer than zero"
        );
        entry(0, crash).validate(5, 60_000).unwrap();
    }
}
