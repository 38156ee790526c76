//! The Figure-8 nemesis (raft paper, section 5.4.2): a shaped schedule of partitions and
//! crashes that gives a leader uncommitted entries of an old term on a minority, lets a later
//! leader write a different entry at their index and vanish, then brings the old entries back
//! under a newer leader and crashes that leader at the moment it applies an old-term entry
//! before one of its own term, restarting the vanished leader at once.
//!
//! Against a correct member this is just faults within the budget (at most two members down, one
//! partition at a time). A leader that commits an old-term entry by counting replicas applies it
//! here while its own-term entry may still be lost; the vanished leader can then win and
//! overwrite an applied entry, which the state-machine-safety and log checks see.
//!
//! Steps advance on what the world observes (a leader elected, entries applied); each step has
//! a deadline after which the schedule gives up and heals. It never looks inside a member.

use engine::types::{Duration, Instant, LogIndex, NodeId, Term};

use crate::network::{Partition, PartitionKind};
use crate::process::HostedMember;
use crate::world::{Event, World};

/// Where the schedule is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FigureEight {
    /// Not running.
    #[default]
    Idle,
    /// The old leader and one follower are cut off from the rest, which elect a new leader.
    /// Members are named by their position in the world's processes, not by id.
    MinorityAppend {
        old_leader: usize,
        follower: usize,
        old_term: Term,
    },
    /// The majority's new leader was cut off the moment it won; it crashes shortly.
    NewLeaderCut {
        old_leader: usize,
        follower: usize,
        vanished: usize,
        vanished_term: Term,
    },
    /// Waiting for a leader of a later term from the old pair to apply an old-term entry.
    /// `own_index` is its first entry of its own term.
    Recommit {
        vanished: usize,
        leader: usize,
        leader_term: Term,
        own_index: LogIndex,
    },
}

/// How long one step may wait for the cluster before the schedule gives up.
const STEP_DEADLINE_MS: u64 = 6_000;
/// How long the vanished leader runs alone before it crashes (its own entry gets synced).
const VANISH_DELAY_MS: u64 = 50;
/// How long the followers holding the re-commit leader's own entry stay cut off after a strike.
const HOLDERS_CUT_MS: u64 = 3_000;
/// The crashed re-commit leader comes back this soon, to vote for the vanished one.
const RECOMMIT_DOWNTIME_MS: u64 = 150;

impl<M: HostedMember> World<M> {
    /// Starts the schedule, if nothing else holds the network, everyone is up and a leader is
    /// known. Needs five members (two cut off, two down at the end).
    pub(crate) fn start_figure_eight(&mut self, now: Instant) {
        if self.processes.len() < 5
            || self.partition_active
            || self.figure_eight != FigureEight::Idle
            || self.down_count() > 0
            || self.down_members_allowed() < 2
        {
            return self.refuse(
                now,
                "figure_eight",
                "needs five members all up, no partition",
            );
        }
        let Some(old_leader) = self.leader_hint.and_then(|id| self.node_index(id)) else {
            return self.refuse(now, "figure_eight", "no leader known");
        };
        let Some(old_term) = self.processes[old_leader]
            .member()
            .and_then(|member| member.durable_facts())
            .map(|facts| facts.term)
        else {
            return;
        };
        let others: Vec<usize> = (0..self.processes.len())
            .filter(|node| *node != old_leader)
            .collect();
        let follower = others[self.fault_rng.below(others.len() as u64) as usize];
        let pair = [
            self.processes[old_leader].id(),
            self.processes[follower].id(),
        ];
        self.cut_off(&pair);
        self.figure_eight = FigureEight::MinorityAppend {
            old_leader,
            follower,
            old_term,
        };
        self.trace.event(
            now,
            format_args!(
                "figure_eight start old_leader=n{} follower=n{} term={old_term}",
                pair[0], pair[1]
            ),
        );
        self.figure_eight_deadline(now);
        self.record_ran(now, crate::timeline::ScriptedFault::FigureEight);
    }

    /// Cuts `group` off from every other member, both ways, and marks the network as held.
    fn cut_off(&mut self, group: &[NodeId]) {
        let ids: Vec<NodeId> = self.processes.iter().map(|process| process.id()).collect();
        let mut cut = Vec::new();
        for inside in group {
            for outside in ids.iter().filter(|id| !group.contains(id)) {
                cut.push((*inside, *outside));
                cut.push((*outside, *inside));
            }
        }
        cut.sort();
        cut.dedup();
        self.network.apply(&Partition {
            kind: PartitionKind::Symmetric,
            cut,
        });
        self.partition_active = true;
        self.partition_epoch += 1;
    }

    fn figure_eight_deadline(&mut self, now: Instant) {
        self.figure_eight_epoch += 1;
        let epoch = self.figure_eight_epoch;
        self.queue.schedule(
            now + Duration::from_millis(STEP_DEADLINE_MS),
            Event::FigureEightDeadline { epoch },
        );
    }

    /// A step's deadline passed: give up, heal the network.
    pub(crate) fn figure_eight_timeout(&mut self, now: Instant, epoch: u64) {
        if epoch != self.figure_eight_epoch || self.figure_eight == FigureEight::Idle {
            return;
        }
        // Named by step, not `{:?}`: the state holds process positions, not member ids.
        let step = match self.figure_eight {
            FigureEight::Idle => "idle",
            FigureEight::MinorityAppend { .. } => "minority_append",
            FigureEight::NewLeaderCut { .. } => "new_leader_cut",
            FigureEight::Recommit { .. } => "recommit",
        };
        self.trace
            .event(now, format_args!("figure_eight gives up at {step}"));
        let vanished = match self.figure_eight {
            FigureEight::NewLeaderCut { vanished, .. } | FigureEight::Recommit { vanished, .. } => {
                Some(vanished)
            }
            FigureEight::Idle | FigureEight::MinorityAppend { .. } => None,
        };
        if let Some(node) = vanished {
            if self.processes[node].state() == &crate::process::ProcessState::Down {
                self.queue.schedule(now, Event::Restart { node });
            }
        }
        self.figure_eight_end();
    }

    fn figure_eight_end(&mut self) {
        self.figure_eight = FigureEight::Idle;
        self.figure_eight_epoch += 1;
        self.network.heal_all();
        self.partition_active = false;
        self.flapping_partition = None;
    }

    /// A member became leader: the schedule may move on.
    pub(crate) fn figure_eight_on_leader(&mut self, now: Instant, node: usize, term: Term) {
        match self.figure_eight {
            FigureEight::MinorityAppend {
                old_leader,
                follower,
                old_term,
            } if node != old_leader && node != follower && term > old_term => {
                // Cut the new leader off before its first append leaves: its own entry stays
                // on its disk alone.
                let id = self.processes[node].id();
                self.network.heal_all();
                self.cut_off(&[id]);
                let pair = [
                    self.processes[old_leader].id(),
                    self.processes[follower].id(),
                ];
                self.cut_off(&pair);
                self.figure_eight = FigureEight::NewLeaderCut {
                    old_leader,
                    follower,
                    vanished: node,
                    vanished_term: term,
                };
                self.trace
                    .event(now, format_args!("figure_eight vanish n{id} term={term}"));
                self.queue.schedule(
                    now + Duration::from_millis(VANISH_DELAY_MS),
                    Event::FigureEightVanish {
                        epoch: self.figure_eight_epoch,
                    },
                );
            }
            FigureEight::NewLeaderCut {
                old_leader,
                follower,
                vanished,
                vanished_term,
            } if (node == old_leader || node == follower) && term > vanished_term => {
                // A new leader appends its own empty entry in the step that elects it.
                let own_index = self.processes[node]
                    .member()
                    .and_then(|member| member.durable_facts())
                    .map_or(LogIndex(0), |facts| facts.last_index);
                self.figure_eight_acked = vec![LogIndex(0); self.processes.len()];
                self.figure_eight = FigureEight::Recommit {
                    vanished,
                    leader: node,
                    leader_term: term,
                    own_index,
                };
                self.trace.event(
                    now,
                    format_args!(
                        "figure_eight recommit leader=n{} term={term}",
                        self.processes[node].id()
                    ),
                );
                self.figure_eight_deadline(now);
            }
            _ => {}
        }
    }

    /// The vanished leader crashes, and the old pair rejoins the rest.
    pub(crate) fn figure_eight_vanish(&mut self, now: Instant, epoch: u64) {
        let FigureEight::NewLeaderCut { vanished, .. } = self.figure_eight else {
            return;
        };
        if epoch != self.figure_eight_epoch {
            return;
        }
        if self.down_count() >= self.down_members_allowed() {
            self.refuse(now, "figure_eight", "budget");
            return self.figure_eight_end();
        }
        // Long enough that it stays down until the re-commit step restarts it.
        self.crash_member_for(now, vanished, Some(STEP_DEADLINE_MS * 2));
        self.network.heal_all();
        self.partition_active = false;
        self.figure_eight_deadline(now);
    }

    /// Member `node` applied entries in one step: `old` of an earlier term than its own, `own`
    /// of its own term. The re-commit leader applying old entries before any of its own is the
    /// moment the schedule strikes.
    pub(crate) fn figure_eight_on_applied(
        &mut self,
        now: Instant,
        node: usize,
        applied_old: bool,
        applied_own: bool,
    ) {
        let FigureEight::Recommit {
            vanished,
            leader,
            own_index,
            ..
        } = self.figure_eight
        else {
            return;
        };
        if node != leader || !applied_old || applied_own {
            return;
        }
        let id = self.processes[leader].id();
        self.trace
            .event(now, format_args!("figure_eight strike n{id}"));
        if self.down_count() < self.down_members_allowed() {
            self.crash_member_for(now, leader, Some(RECOMMIT_DOWNTIME_MS));
        }
        if self.processes[vanished].state() == &crate::process::ProcessState::Down {
            self.queue.schedule(now, Event::Restart { node: vanished });
        }
        // Followers that acknowledged the leader's own entry hold it; cut them off for a while,
        // so the vanished leader (whose entry of a later term than the old ones wins the
        // election restriction) faces only members without it, as in Figure 8 (d).
        let holders: Vec<NodeId> = (0..self.processes.len())
            .filter(|node| *node != leader && self.figure_eight_acked[*node] >= own_index)
            .map(|node| self.processes[node].id())
            .collect();
        self.figure_eight_end();
        if !holders.is_empty() {
            self.cut_off(&holders);
            self.trace.event(
                now,
                format_args!("figure_eight cut holders={}", holders.len()),
            );
            let epoch = self.partition_epoch;
            self.queue.schedule(
                now + Duration::from_millis(HOLDERS_CUT_MS),
                Event::PartitionEnd { epoch },
            );
        }
    }

    /// Follower `node` acknowledged `index` to member `to` (the world reports every successful
    /// acknowledgement it carries out): the re-commit step learns who holds the leader's entry.
    pub(crate) fn figure_eight_on_ack(&mut self, node: usize, to: NodeId, index: LogIndex) {
        if let FigureEight::Recommit { leader, .. } = self.figure_eight {
            if self.processes[leader].id() == to {
                let acked = &mut self.figure_eight_acked[node];
                *acked = (*acked).max(index);
            }
        }
    }
}
