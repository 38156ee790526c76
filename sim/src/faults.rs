//! The fault schedule: when and which faults hit the cluster during the safety phase, within the
//! scenario's fault budget, and the heal that starts the liveness phase.
//!
//! Every choice draws from the fault stream, so the schedule does not shift when the workload
//! or the network draws differently. The menu also holds the aimed faults (`aimed`: crash
//! points, a WAL flip) and the Figure-8 schedule (`nemesis`), within the same budget. Faults the budget refuses are counted and traced, not
//! silently dropped.

use engine::types::{Duration, Instant, NodeId};

use crate::disk::DiskFaultKind;
use crate::network::{NetworkConfig, PartitionKind};
use crate::timeline::{member_target, ScriptedFault, TimedFault};
use crate::world::{Event, Phase, World};

/// A fault the schedule can draw.
#[derive(Clone, Copy, Debug)]
enum FaultChoice {
    /// A timeline fault drawn at random (leader transfer, fall behind, compaction storm,
    /// member replacement), carried out as a scripted one aimed by role.
    Scripted(RandomScripted),
    Partition(PartitionKind),
    Crash,
    Pause,
    Disk(DiskFaultKind),
    Clock,
    CrashPoint,
    WalFlip,
    FigureEight,
}

/// The timeline faults the random schedule can draw too.
#[derive(Clone, Copy, Debug)]
enum RandomScripted {
    TransferLeader,
    FallBehind,
    CompactionStorm,
    ReplaceMember,
}

/// How many toggles a flapping partition makes.
const FLAP_TOGGLES_COUNT: u32 = 6;

impl<M: crate::process::HostedMember> World<M> {
    fn fault_menu(&self) -> Vec<(FaultChoice, u32)> {
        let faults = &self.scenario.faults;
        let mut menu: Vec<(FaultChoice, u32)> = Vec::new();
        menu.extend(
            faults
                .partitions_per_minute
                .iter()
                .map(|(kind, rate)| (FaultChoice::Partition(*kind), *rate)),
        );
        menu.push((FaultChoice::Crash, faults.crashes_per_minute));
        menu.push((FaultChoice::Pause, faults.pauses_per_minute));
        menu.extend(
            faults
                .disk_faults_per_minute
                .iter()
                .map(|(kind, rate)| (FaultChoice::Disk(*kind), *rate)),
        );
        menu.push((FaultChoice::Clock, faults.clock_faults_per_minute));
        menu.push((FaultChoice::CrashPoint, faults.crash_points_per_minute));
        menu.push((FaultChoice::WalFlip, faults.wal_flips_per_minute));
        menu.push((FaultChoice::FigureEight, faults.figure_eights_per_minute));
        // Appended last: with their rates at zero, every other draw is what it was before.
        menu.push((
            FaultChoice::Scripted(RandomScripted::TransferLeader),
            faults.leader_transfers_per_minute,
        ));
        menu.push((
            FaultChoice::Scripted(RandomScripted::FallBehind),
            faults.fall_behinds_per_minute,
        ));
        menu.push((
            FaultChoice::Scripted(RandomScripted::CompactionStorm),
            faults.compaction_storms_per_minute,
        ));
        menu.push((
            FaultChoice::Scripted(RandomScripted::ReplaceMember),
            faults.member_replacements_per_minute,
        ));
        menu
    }

    /// A randomly drawn timeline fault, aimed at a follower chosen when it strikes.
    fn random_scripted(&mut self, now: Instant, kind: RandomScripted) {
        use crate::timeline::{Role, Target};
        let a_follower = Target::Role(Role::AFollower);
        let fault = match kind {
            RandomScripted::TransferLeader => ScriptedFault::TransferLeader { to: a_follower },
            RandomScripted::FallBehind => ScriptedFault::FallBehind {
                target: a_follower,
                heal_after_ms: self.scenario.faults.partition_ms_max,
            },
            RandomScripted::CompactionStorm => ScriptedFault::CompactionStorm {
                duration_ms: crate::scenario::COMPACTION_STORM_MS,
            },
            RandomScripted::ReplaceMember => ScriptedFault::ReplaceMember { target: a_follower },
        };
        if let Err(why) = self.carry_out_scripted(now, &fault) {
            self.refuse(now, fault.name(), &why);
        }
    }

    /// Schedules the next fault after `now`, if faults are on and the safety phase lasts.
    pub(crate) fn schedule_next_fault(&mut self, now: Instant) {
        let per_minute_total: u64 = self
            .fault_menu()
            .iter()
            .map(|(_, rate)| u64::from(*rate))
            .sum();
        if per_minute_total == 0 || self.phase != Phase::Safety {
            return;
        }
        // Uniform gaps with the right mean: 60 s / total rate.
        let mean_gap_ns = 60_000_000_000 / per_minute_total;
        let gap = Duration(self.fault_rng.range_inclusive(1, 2 * mean_gap_ns));
        if (now + gap).0 < Duration::from_millis(self.scenario.safety_ms).0 {
            self.queue.schedule(now + gap, Event::Fault);
        }
    }

    pub(crate) fn inject_fault(&mut self, now: Instant) {
        if self.phase != Phase::Safety {
            return;
        }
        let menu = self.fault_menu();
        let weights: Vec<u32> = menu.iter().map(|(_, rate)| *rate).collect();
        if let Some(choice) = self.fault_rng.weighted(&weights) {
            match menu[choice].0 {
                FaultChoice::Partition(kind) => self.start_partition(now, kind),
                FaultChoice::Crash => self.crash_fault(now),
                FaultChoice::Pause => self.pause_fault(now),
                FaultChoice::Disk(kind) => self.disk_fault(now, kind),
                FaultChoice::Clock => self.clock_fault(now),
                FaultChoice::CrashPoint => self.arm_crash_point(now),
                FaultChoice::WalFlip => self.wal_flip_fault(now),
                FaultChoice::FigureEight => self.start_figure_eight(now),
                FaultChoice::Scripted(kind) => self.random_scripted(now, kind),
            }
        }
        self.schedule_next_fault(now);
    }

    pub(crate) fn refuse(&mut self, now: Instant, what: &str, why: &str) {
        self.counts.faults_refused += 1;
        self.trace
            .event(now, format_args!("fault refused {what} ({why})"));
    }

    pub(crate) fn random_node(&mut self, eligible: &[usize]) -> Option<usize> {
        if eligible.is_empty() {
            return None;
        }
        Some(eligible[self.fault_rng.below(eligible.len() as u64) as usize])
    }

    /// Running members of the cluster (spare slots and removed members are not).
    pub(crate) fn up_nodes(&self) -> Vec<usize> {
        (0..self.processes.len())
            .filter(|node| !self.processes[*node].is_down() && self.membership[*node].is_joined())
            .collect()
    }

    /// The down budget for the membership of the moment: the scenario's, but within a model
    /// run never more than a minority of the voters (counting a member being replaced). A
    /// replacement that stopped after the removal leaves fewer voters, whose minority is
    /// smaller; without this the budget would still allow the old minority and take the
    /// cluster's quorum.
    pub(crate) fn down_members_allowed(&self) -> u32 {
        self.within_membership(self.scenario.budget.down_members_max, true)
    }

    /// The corruption budget for the membership of the moment (see `down_members_allowed`);
    /// a member being replaced takes one place of it, since a corrupted member may not come
    /// back either.
    pub(crate) fn corrupted_members_allowed(&self) -> u32 {
        let allowed = self.within_membership(self.scenario.budget.corrupted_members_max, false);
        if self.scenario.beyond_model {
            return allowed;
        }
        allowed.saturating_sub(self.replacing_count)
    }

    /// Voters that are down or carry a corrupting fault (they may not come back), plus members
    /// being replaced: what a quorum must do without in the worst case.
    pub(crate) fn at_risk_count(&self) -> u32 {
        let at_risk = (0..self.processes.len())
            .filter(|node| {
                self.is_voter(*node)
                    && (self.processes[*node].is_down()
                        || self.corrupted.contains(&self.processes[*node].id()))
            })
            .count() as u32;
        at_risk + self.replacing_count
    }

    fn within_membership(&self, budget: u32, at_least_one: bool) -> u32 {
        if self.scenario.beyond_model || !self.membership_changed {
            return budget;
        }
        let voters = self.voter_count() as u32 + self.replacing_count;
        let minority = voters.saturating_sub(1) / 2;
        let tolerated = if at_least_one {
            minority.max(1)
        } else {
            minority
        };
        budget.min(tolerated)
    }

    /// Members down for the fault budget: voters not running, and members being replaced.
    pub(crate) fn down_count(&self) -> u32 {
        let down_voters = (0..self.processes.len())
            .filter(|node| {
                self.processes[*node].is_down()
                    && self.membership[*node] == crate::membership::Membership::Voter
            })
            .count() as u32;
        down_voters + self.replacing_count
    }

    fn start_partition(&mut self, now: Instant, kind: PartitionKind) {
        if self.partition_active || self.processes.len() < 2 {
            return self.refuse(now, kind.name(), "a partition holds");
        }
        let partition = self.network.plan(kind, self.leader_hint);
        self.apply_partition(now, partition, None);
    }

    /// Applies `partition` (its links cut), traces it and schedules its end: after
    /// `hold_ms`, or drawn when `None` (as the random schedule does). Records it as a
    /// timeline entry with concrete links.
    pub(crate) fn apply_partition(
        &mut self,
        now: Instant,
        partition: crate::network::Partition,
        hold_ms: Option<u64>,
    ) {
        let kind = partition.kind;
        self.network.apply(&partition);
        self.partition_active = true;
        self.partition_epoch += 1;
        self.counts.partitions += 1;
        self.trace.event(
            now,
            format_args!(
                "partition {} cut={}",
                kind.name(),
                self.network.describe_cut()
            ),
        );
        let epoch = self.partition_epoch;
        let flapping = kind == PartitionKind::Flapping;
        let cut = partition
            .cut
            .iter()
            .map(|(from, to)| [from.0, to.0])
            .collect();
        let hold_ms = if flapping {
            let gap_ms = hold_ms.unwrap_or_else(|| self.fault_rng.range_inclusive(200, 800));
            let event = Event::FlapToggle {
                epoch,
                remaining: FLAP_TOGGLES_COUNT,
                cut: false,
            };
            self.queue
                .schedule(now + Duration::from_millis(gap_ms), event);
            self.flapping_partition = Some(partition);
            gap_ms
        } else {
            let hold_ms = hold_ms.unwrap_or_else(|| {
                self.fault_rng
                    .range_inclusive(200, self.scenario.faults.partition_ms_max.max(200))
            });
            self.queue.schedule(
                now + Duration::from_millis(hold_ms),
                Event::PartitionEnd { epoch },
            );
            hold_ms
        };
        self.record_ran(
            now,
            ScriptedFault::Partition {
                groups: Vec::new(),
                cut,
                flapping,
                heal_after_ms: hold_ms,
            },
        );
    }

    pub(crate) fn partition_end(&mut self, now: Instant, epoch: u64) {
        if epoch == self.partition_epoch && self.partition_active {
            self.network.heal_all();
            self.partition_active = false;
            self.flapping_partition = None;
            self.trace.event(now, format_args!("partition healed"));
        }
    }

    pub(crate) fn flap_toggle(&mut self, now: Instant, epoch: u64, remaining: u32, cut: bool) {
        if epoch != self.partition_epoch || !self.partition_active {
            return;
        }
        if remaining == 0 {
            return self.partition_end(now, epoch);
        }
        let Some(partition) = self.flapping_partition.clone() else {
            return;
        };
        if cut {
            self.network.apply(&partition);
        } else {
            self.network.heal_all();
        }
        self.trace.event(
            now,
            format_args!("flap {}", if cut { "cut" } else { "heal" }),
        );
        let gap_ms = self.fault_rng.range_inclusive(200, 800);
        let event = Event::FlapToggle {
            epoch,
            remaining: remaining - 1,
            cut: !cut,
        };
        self.queue
            .schedule(now + Duration::from_millis(gap_ms), event);
    }

    fn crash_fault(&mut self, now: Instant) {
        if self.down_count() >= self.down_members_allowed() {
            return self.refuse(now, "crash", "budget");
        }
        let up = self.up_nodes();
        if let Some(node) = self.random_node(&up) {
            if let Some(downtime_ms) = self.crash_member_for(now, node, None) {
                let target = member_target(self.processes[node].id());
                self.record_ran(
                    now,
                    ScriptedFault::Crash {
                        target,
                        restart_after_ms: downtime_ms,
                    },
                );
            }
        }
    }

    fn pause_fault(&mut self, now: Instant) {
        if self.down_count() >= self.down_members_allowed() {
            return self.refuse(now, "pause", "budget");
        }
        let up = self.up_nodes();
        let Some(node) = self.random_node(&up) else {
            return;
        };
        self.pause_member_for(now, node, None);
    }

    /// Pauses member `node` for `pause_ms` (drawn when `None`) if it runs, and records it.
    pub(crate) fn pause_member_for(&mut self, now: Instant, node: usize, pause_ms: Option<u64>) {
        if self.processes[node].pause() {
            self.counts.pauses += 1;
            let id = self.processes[node].id();
            let pause_ms = pause_ms.unwrap_or_else(|| {
                self.fault_rng
                    .range_inclusive(100, self.scenario.faults.pause_ms_max.max(100))
            });
            self.trace
                .event(now, format_args!("n{id} pause ms={pause_ms}"));
            self.queue.schedule(
                now + Duration::from_millis(pause_ms),
                Event::Resume { node },
            );
            self.record_ran(
                now,
                ScriptedFault::Pause {
                    target: member_target(id),
                    resume_after_ms: pause_ms,
                },
            );
        }
    }

    /// Whether member `node` may take a disk fault of `kind` within the corruption budget.
    pub(crate) fn disk_fault_allowed(&self, node: usize, kind: DiskFaultKind) -> bool {
        !kind.corrupts()
            || (self.corrupted.len() as u32) < self.corrupted_members_allowed()
            || self.corrupted.contains(&self.processes[node].id())
    }

    fn disk_fault(&mut self, now: Instant, kind: DiskFaultKind) {
        let eligible: Vec<usize> = (0..self.processes.len())
            .filter(|node| self.disk_fault_allowed(*node, kind))
            .collect();
        let Some(node) = self.random_node(&eligible) else {
            return self.refuse(now, kind.name(), "budget");
        };
        let window_ms = self.fault_rng.range_inclusive(100, 2_000);
        self.inject_disk_fault(now, node, kind, window_ms);
    }

    /// Injects a disk fault of `kind` into member `node`'s disk (the caller checked the
    /// budget), and records it.
    pub(crate) fn inject_disk_fault(
        &mut self,
        now: Instant,
        node: usize,
        kind: DiskFaultKind,
        window_ms: u64,
    ) {
        let id = self.processes[node].id();
        let Some(description) =
            self.processes[node]
                .disk
                .inject(kind, now, Duration::from_millis(window_ms))
        else {
            return;
        };
        if kind.corrupts() && !self.corrupted.contains(&id) {
            self.corrupted.push(id);
        }
        if kind.corrupts() {
            // Synced data may be silently lost: the member's promises stop binding it.
            self.check_trace
                .push(checkers::trace::TraceEvent::DiskDamaged {
                    member: crate::checking::member(id),
                    time: crate::checking::time_of(now),
                });
        }
        self.counts.disk_faults += 1;
        self.trace
            .event(now, format_args!("n{id} disk {description}"));
        self.record_ran(
            now,
            ScriptedFault::Disk {
                kind,
                target: member_target(id),
                window_ms,
            },
        );
    }

    fn clock_fault(&mut self, now: Instant) {
        let node = self.fault_rng.below(self.processes.len() as u64) as usize;
        let faults = &self.scenario.faults;
        let (drift_max, jump_ms_max) = (faults.clock_drift_ppm_max, faults.clock_jump_ms_max);
        if self.fault_rng.chance_ppm(500_000) {
            let span = u64::try_from(2 * drift_max).unwrap_or(0);
            let drift_ppm = self.fault_rng.range_inclusive(0, span) as i64 - drift_max;
            self.clock_drift(now, node, drift_ppm);
        } else {
            let jump_ms = self.fault_rng.range_inclusive(1, jump_ms_max.max(1));
            self.clock_jump(now, node, jump_ms);
        }
    }

    /// Sets member `node`'s clock drift, and records it.
    pub(crate) fn clock_drift(&mut self, now: Instant, node: usize, drift_ppm: i64) {
        let id = self.processes[node].id();
        self.processes[node].clock.set_drift(now, drift_ppm);
        self.trace
            .event(now, format_args!("n{id} clock drift ppm={drift_ppm}"));
        self.clock_fault_done(now, node);
        let target = member_target(id);
        self.record_ran(now, ScriptedFault::ClockDrift { target, drift_ppm });
    }

    /// Jumps member `node`'s clock forward, and records it.
    pub(crate) fn clock_jump(&mut self, now: Instant, node: usize, jump_ms: u64) {
        let id = self.processes[node].id();
        self.processes[node]
            .clock
            .jump(now, (jump_ms * 1_000_000) as i64);
        self.trace
            .event(now, format_args!("n{id} clock jump ms={jump_ms}"));
        self.clock_fault_done(now, node);
        let target = member_target(id);
        self.record_ran(now, ScriptedFault::ClockJump { target, jump_ms });
    }

    fn clock_fault_done(&mut self, now: Instant, node: usize) {
        self.counts.clock_faults += 1;
        // The member's deadlines moved in true time: wake it now, it re-arms its timer.
        self.set_timer(node, now);
    }

    /// Keeps `fault`, which just ran at `now` with concrete targets, for `RunReport::faults_ran`.
    pub(crate) fn record_ran(&mut self, now: Instant, fault: ScriptedFault) {
        self.faults_ran.push(TimedFault {
            time_ns: now.0,
            fault,
        });
    }

    /// Ends the safety phase: no more faults; the network, disks and clocks heal, and a random
    /// quorum core of members that can still run is brought up at once (restarted or resumed).
    /// Then the cluster must commit a write within the liveness bound, whatever the others do.
    pub(crate) fn heal(&mut self, now: Instant) {
        self.phase = Phase::Liveness { healed_at: now };
        // Aimed faults end with the others: no crash point stays armed, no schedule goes on.
        self.figure_eight = crate::nemesis::FigureEight::Idle;
        self.figure_eight_epoch += 1;
        for process in &mut self.processes {
            process.aim = None;
        }
        self.admin_cancel();
        self.fall_behind = None;
        self.compaction_storm_until = now;
        self.record_event(|| Some(crate::events::faults_healed_line(now)));
        self.check_trace
            .push(checkers::trace::TraceEvent::FaultsHealed {
                time: crate::checking::time_of(now),
            });
        // The logs at the end of the safety phase.
        self.sample_all_logs(now);
        self.network.heal_all();
        self.partition_active = false;
        self.flapping_partition = None;
        let healed_network = NetworkConfig {
            drop_ppm: 0,
            duplicate_ppm: 0,
            ..self.scenario.network.clone()
        };
        self.network.set_config(healed_network);
        let core = self.quorum_core();
        let core_text: Vec<String> = core.iter().map(|node| format!("n{}", node + 1)).collect();
        self.trace.event(
            now,
            format_args!(
                "heal core={} liveness_bound_ms={}",
                core_text.join(","),
                self.scenario.liveness_bound_ms
            ),
        );
        for node in 0..self.processes.len() {
            self.processes[node].disk.heal();
            self.processes[node].clock.set_drift(now, 0);
            if !core.contains(&node) {
                // Outside the core, members come back on their own schedule (or never).
                continue;
            }
            match self.processes[node].state() {
                crate::process::ProcessState::Paused => {
                    self.queue.schedule(now, Event::Resume { node })
                }
                crate::process::ProcessState::Down => {
                    self.queue.schedule(now, Event::Restart { node })
                }
                _ => self.set_timer(node, now),
            }
        }
        self.queue.schedule(
            now + Duration::from_millis(self.scenario.liveness_bound_ms),
            Event::LivenessDeadline,
        );
    }

    /// A random majority of the members that are not dead (all of them if fewer remain), sorted.
    fn quorum_core(&mut self) -> Vec<usize> {
        let mut candidates: Vec<usize> = (0..self.processes.len())
            .filter(|node| {
                self.membership[*node].is_joined()
                    && !matches!(
                        self.processes[*node].state(),
                        crate::process::ProcessState::Dead { .. }
                    )
            })
            .collect();
        for index in (1..candidates.len()).rev() {
            let other = self.fault_rng.below(index as u64 + 1) as usize;
            candidates.swap(index, other);
        }
        if self.membership_changed {
            // The world's view of the membership may lag an answer it never got: every
            // joined member comes back, which holds a quorum of any membership it missed.
            candidates.sort_unstable();
            return candidates;
        }
        candidates.truncate(self.scenario.member_count as usize / 2 + 1);
        candidates.sort_unstable();
        candidates
    }

    /// A write called after the heal succeeded: the cluster is live again.
    pub(crate) fn liveness_shown(&mut self, now: Instant, healed_at: Instant) {
        self.liveness_shown_at = Some(now);
        self.phase = Phase::Drain;
        // The logs at the end of the liveness phase.
        self.sample_all_logs(now);
        self.trace.event(
            now,
            format_args!("liveness ok after_ms={}", now.since(healed_at).as_millis()),
        );
        self.queue.schedule(
            now + Duration::from_millis(self.scenario.drain_ms),
            Event::End,
        );
    }

    pub(crate) fn liveness_deadline(&mut self, now: Instant) {
        if self.liveness_shown_at.is_some() {
            return;
        }
        // The run ends here; the liveness checker (the property's one owner) reports it from
        // the history and the trace, so it is not recorded twice.
        let leaders = self.invariants.leader_terms_count();
        self.trace.event(
            now,
            format_args!("liveness failed leader_terms_seen={leaders}"),
        );
        self.ended = true;
    }

    /// Members whose disks took corrupting faults.
    pub(crate) fn corrupted_members(&self) -> &[NodeId] {
        &self.corrupted
    }
}
