//! Carrying out the scripted timeline (`timeline`): each entry strikes at its time, its roles
//! resolved to members at that moment, within the same fault budget as the random schedule.
//!
//! An entry the budget or the cluster's state refuses (no leader known, a partition already
//! holds, the budget is spent) is traced and counted like a refused random fault, never
//! silently dropped. Role choices draw from the script stream, never from the random
//! schedule's. What ran is recorded with concrete targets by the primitives it calls (`faults`).

use engine::raft::ConfChange;
use engine::types::{Duration, Instant, LogIndex, NodeId};

use crate::membership::{replace_steps, AdminStep, Membership};

use crate::network::{Partition, PartitionKind};
use crate::process::HostedMember;
use crate::timeline::{Role, ScriptedFault, Target};
use crate::world::World;

impl<M: HostedMember> World<M> {
    /// Entry `index` of the timeline strikes.
    pub(crate) fn run_scripted(&mut self, now: Instant, index: usize) {
        if self.phase != crate::world::Phase::Safety {
            return;
        }
        let fault = self.scenario.timeline.entries[index].fault.clone();
        self.trace
            .event(now, format_args!("script at[{index}] {}", fault.describe()));
        if let Err(why) = self.carry_out_scripted(now, &fault) {
            self.refuse(now, fault.name(), &why);
        }
    }

    pub(crate) fn carry_out_scripted(
        &mut self,
        now: Instant,
        fault: &ScriptedFault,
    ) -> Result<(), String> {
        match fault {
            ScriptedFault::Partition {
                groups,
                cut,
                flapping,
                heal_after_ms,
            } => self.scripted_partition(now, groups, cut, *flapping, *heal_after_ms),
            ScriptedFault::Crash {
                target,
                restart_after_ms,
            } => {
                for node in self.resolve(target)? {
                    self.within_down_budget()?;
                    if let Some(downtime_ms) =
                        self.crash_member_for(now, node, Some(*restart_after_ms))
                    {
                        let target = crate::timeline::member_target(self.processes[node].id());
                        self.record_ran(
                            now,
                            ScriptedFault::Crash {
                                target,
                                restart_after_ms: downtime_ms,
                            },
                        );
                    }
                }
                Ok(())
            }
            ScriptedFault::Pause {
                target,
                resume_after_ms,
            } => {
                for node in self.resolve(target)? {
                    self.within_down_budget()?;
                    self.pause_member_for(now, node, Some(*resume_after_ms));
                }
                Ok(())
            }
            ScriptedFault::Disk {
                kind,
                target,
                window_ms,
            } => {
                for node in self.resolve(target)? {
                    if !self.disk_fault_allowed(node, *kind) {
                        return Err("budget".into());
                    }
                    self.inject_disk_fault(now, node, *kind, *window_ms);
                }
                Ok(())
            }
            ScriptedFault::ClockDrift { target, drift_ppm } => {
                for node in self.resolve(target)? {
                    self.clock_drift(now, node, *drift_ppm);
                }
                Ok(())
            }
            ScriptedFault::ClockJump { target, jump_ms } => {
                for node in self.resolve(target)? {
                    self.clock_jump(now, node, *jump_ms);
                }
                Ok(())
            }
            ScriptedFault::CrashPoint { target, trigger } => {
                for node in self.resolve(target)? {
                    self.within_down_budget()?;
                    self.arm_crash_point_on(now, node, *trigger);
                }
                Ok(())
            }
            ScriptedFault::WalFlip { target } => {
                for node in self.resolve(target)? {
                    if !self.wal_flip_allowed(node) {
                        return Err("budget".into());
                    }
                    self.wal_flip_on(now, node);
                }
                Ok(())
            }
            ScriptedFault::FigureEight => {
                self.start_figure_eight(now);
                Ok(())
            }
            ScriptedFault::TransferLeader { to } => {
                let node = self.resolve_one(to)?;
                self.resolve(&Target::Role(Role::Leader))?;
                let id = self.processes[node].id();
                self.start_admin(now, vec![AdminStep::MoveLeader(id)], false)?;
                self.record_ran(
                    now,
                    ScriptedFault::TransferLeader {
                        to: Target::Member(id.0),
                    },
                );
                Ok(())
            }
            ScriptedFault::FallBehind {
                target,
                heal_after_ms,
            } => self.scripted_fall_behind(now, target, *heal_after_ms),
            ScriptedFault::CompactionStorm { duration_ms } => {
                let until = now + Duration::from_millis(*duration_ms);
                self.compaction_storm_until = self.compaction_storm_until.max(until);
                self.record_ran(now, fault.clone());
                Ok(())
            }
            ScriptedFault::AddLearner { member } => {
                let node = match member {
                    Some(id) => self
                        .node_index(NodeId(*id))
                        .filter(|node| self.membership[*node] == Membership::Spare)
                        .ok_or_else(|| format!("member {id} is not a spare slot"))?,
                    None => self.next_spare().ok_or("no spare member slot left")?,
                };
                let id = self.processes[node].id();
                let steps = vec![AdminStep::Change(ConfChange::AddLearner(id))];
                self.start_admin(now, steps, false)?;
                let member = Some(id.0);
                self.record_ran(now, ScriptedFault::AddLearner { member });
                Ok(())
            }
            ScriptedFault::PromoteLearner { target } => {
                let node = self.resolve_one(target)?;
                let id = self.processes[node].id();
                let steps = vec![AdminStep::Change(ConfChange::Promote(id))];
                self.start_admin(now, steps, false)?;
                let target = Target::Member(id.0);
                self.record_ran(now, ScriptedFault::PromoteLearner { target });
                Ok(())
            }
            ScriptedFault::RemoveMember { target } => {
                let node = self.resolve_one(target)?;
                let id = self.processes[node].id();
                let steps = vec![AdminStep::Change(ConfChange::Remove(id))];
                self.start_admin(now, steps, false)?;
                let target = Target::Member(id.0);
                self.record_ran(now, ScriptedFault::RemoveMember { target });
                Ok(())
            }
            ScriptedFault::ReplaceMember { target } => {
                let node = self.resolve_one(target)?;
                self.within_down_budget()?;
                // A corrupted voter may die at its next restart: with it, the member being
                // replaced must still leave a quorum.
                if self.at_risk_count() >= self.down_members_allowed() {
                    return Err("budget (corrupted members)".into());
                }
                let spare = self.next_spare().ok_or("no spare member slot left")?;
                let (id, spare_id) = (self.processes[node].id(), self.processes[spare].id());
                self.start_admin(now, replace_steps(id, spare_id), true)?;
                let target = Target::Member(id.0);
                self.record_ran(now, ScriptedFault::ReplaceMember { target });
                Ok(())
            }
        }
    }

    /// The one member `target` names (a role naming several, `a_minority`, gives its first).
    fn resolve_one(&mut self, target: &Target) -> Result<usize, String> {
        Ok(self.resolve(target)?[0])
    }

    /// Cuts the target off; the heal comes when another member snapshots past the target's
    /// last entry (`World::observe`), or after `heal_after_ms` at the latest.
    fn scripted_fall_behind(
        &mut self,
        now: Instant,
        target: &Target,
        heal_after_ms: u64,
    ) -> Result<(), String> {
        let node = self.resolve_one(target)?;
        if self.partition_active {
            return Err("a partition holds".into());
        }
        let id = self.processes[node].id();
        let last_index = self.processes[node]
            .member()
            .and_then(|member| member.durable_facts())
            .map_or(LogIndex(0), |facts| facts.last_index);
        let group = vec![vec![Target::Member(id.0)]];
        self.scripted_partition(now, &group, &[], false, heal_after_ms)?;
        self.fall_behind = Some((node, last_index, self.partition_epoch));
        // The partition was recorded as such; the entry says why it holds.
        self.faults_ran.pop();
        let target = Target::Member(id.0);
        self.record_ran(
            now,
            ScriptedFault::FallBehind {
                target,
                heal_after_ms,
            },
        );
        Ok(())
    }

    fn within_down_budget(&self) -> Result<(), String> {
        if self.down_count() >= self.down_members_allowed() {
            return Err("budget".into());
        }
        Ok(())
    }

    /// Groups cut from each other both ways (members named in none form one more group), plus
    /// the directed links of `cut`.
    fn scripted_partition(
        &mut self,
        now: Instant,
        groups: &[Vec<Target>],
        links: &[[u64; 2]],
        flapping: bool,
        heal_after_ms: u64,
    ) -> Result<(), String> {
        if self.partition_active || self.processes.len() < 2 {
            return Err("a partition holds".into());
        }
        let mut sides: Vec<Vec<NodeId>> = Vec::new();
        for group in groups {
            let mut side = Vec::new();
            for target in group {
                for node in self.resolve(target)? {
                    side.push(self.processes[node].id());
                }
            }
            sides.push(side);
        }
        let named: Vec<NodeId> = sides.iter().flatten().copied().collect();
        let rest: Vec<NodeId> = self
            .processes
            .iter()
            .map(|process| process.id())
            .filter(|id| !named.contains(id))
            .collect();
        if !rest.is_empty() && !groups.is_empty() {
            sides.push(rest);
        }
        let mut cut: Vec<(NodeId, NodeId)> = links
            .iter()
            .map(|[from, to]| (NodeId(*from), NodeId(*to)))
            .collect();
        for (side_index, side) in sides.iter().enumerate() {
            for other in sides.iter().skip(side_index + 1) {
                for inside in side {
                    for outside in other {
                        if inside != outside {
                            cut.push((*inside, *outside));
                            cut.push((*outside, *inside));
                        }
                    }
                }
            }
        }
        cut.sort();
        cut.dedup();
        let kind = if flapping {
            PartitionKind::Flapping
        } else {
            PartitionKind::Symmetric
        };
        self.apply_partition(now, Partition { kind, cut }, Some(heal_after_ms));
        Ok(())
    }

    /// The members `target` names now, as positions in `processes`; an error when a role has
    /// no member to name (no leader known, no follower up).
    pub(crate) fn resolve(&mut self, target: &Target) -> Result<Vec<usize>, String> {
        let role = match target {
            Target::Member(id) => {
                return self
                    .node_index(NodeId(*id))
                    .map(|node| vec![node])
                    .ok_or_else(|| format!("member {id} does not exist"));
            }
            Target::Role(role) => *role,
        };
        let leader = self
            .leader_hint
            .and_then(|id| self.node_index(id))
            .filter(|node| !self.processes[*node].is_down());
        let followers: Vec<usize> = self
            .up_nodes()
            .into_iter()
            .filter(|node| Some(*node) != leader && self.is_voter(*node))
            .collect();
        match role {
            Role::Leader => leader
                .map(|node| vec![node])
                .ok_or("no leader known".into()),
            Role::AFollower => {
                if followers.is_empty() {
                    return Err("no follower up".into());
                }
                let pick = self.script_rng.below(followers.len() as u64) as usize;
                Ok(vec![followers[pick]])
            }
            Role::TheMostBehind => {
                let behind = self
                    .up_nodes()
                    .into_iter()
                    .filter(|node| Some(*node) != leader)
                    .min_by_key(|node| {
                        self.processes[*node]
                            .member()
                            .and_then(|member| member.durable_facts())
                            .map_or(0, |facts| facts.last_index.0)
                    });
                behind.map(|node| vec![node]).ok_or("no follower up".into())
            }
            Role::AMinority => {
                let minority_count = (self.voter_count().saturating_sub(1) / 2).max(1);
                let mut pool = followers;
                if pool.len() < minority_count {
                    return Err("too few followers up".into());
                }
                for index in (1..pool.len()).rev() {
                    let other = self.script_rng.below(index as u64 + 1) as usize;
                    pool.swap(index, other);
                }
                pool.truncate(minority_count);
                pool.sort_unstable();
                Ok(pool)
            }
            Role::TheLearner => self.the_learner().ok_or("no learner added".into()),
        }
    }

    /// Whether member `node` votes, as the world knows the membership.
    pub(crate) fn is_voter(&self, node: usize) -> bool {
        self.membership[node] == Membership::Voter
    }

    /// Voters in the membership the world knows of.
    pub(crate) fn voter_count(&self) -> usize {
        (0..self.processes.len())
            .filter(|node| self.is_voter(*node))
            .count()
    }

    /// The learner added last, if it is still a member and running.
    pub(crate) fn the_learner(&self) -> Option<Vec<usize>> {
        self.last_learner
            .filter(|node| self.membership[*node].is_joined() && !self.processes[*node].is_down())
            .map(|node| vec![node])
    }
}
