//! Carrying out the scripted timeline (`timeline`): each entry strikes at its time, its roles
//! resolved to members at that moment, within the same fault budget as the random schedule.
//!
//! An entry the budget or the cluster's state refuses (no leader known, a partition already
//! holds, the budget is spent) is traced and counted like a refused random fault, never
//! silently dropped. Role choices draw from the script stream, never from the random
//! schedule's. What ran is recorded with concrete targets by the primitives it calls (`faults`).

use engine::types::{Instant, NodeId};

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

    fn carry_out_scripted(&mut self, now: Instant, fault: &ScriptedFault) -> Result<(), String> {
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
        }
    }

    fn within_down_budget(&self) -> Result<(), String> {
        if self.down_count() >= self.scenario.budget.down_members_max {
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
                            .and_then(HostedMember::durable_facts)
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

    /// Whether member `node` votes (every member does until membership changes say otherwise).
    pub(crate) fn is_voter(&self, _node: usize) -> bool {
        true
    }

    /// Voters in the configuration the world knows of.
    pub(crate) fn voter_count(&self) -> usize {
        self.processes.len()
    }

    /// The learner most recently added, if any.
    pub(crate) fn the_learner(&self) -> Option<Vec<usize>> {
        None
    }
}
