//! Membership changes under load, as faults: an admin client that adds a learner, promotes it,
//! removes a member or replaces one with a spare slot started on an empty disk, and hands
//! leadership over, the way etcd operators do (`etcdctl member add --learner`, `member
//! promote`, `member remove`, `move-leader`).
//!
//! The admin client knows what an operator knows: it sends to the member the world last saw
//! elected, retries on "not leader", and learns the membership from the answers. One change is
//! in flight at a time (raft allows one). A member being replaced counts as down for the fault
//! budget until its replacement is promoted. This module does not decide when changes happen
//! (the timeline does) and records no history: membership is not part of the KV model.

use std::collections::VecDeque;

use engine::kv::{Request, RequestError, Response};
use engine::raft::ConfChange;
use engine::types::{Duration, Instant, NodeId};

use crate::clients::RequestRoute;
use crate::process::HostedMember;
use crate::world::{Event, World};

/// Where a member slot stands, as the world knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Membership {
    /// A voter.
    Voter,
    /// A learner: receives the log, never votes.
    Learner,
    /// A spare slot, never started.
    Spare,
    /// Removed from the cluster and stopped for good.
    Removed,
}

impl Membership {
    /// Voters and learners: members the cluster replicates to.
    pub(crate) fn is_joined(self) -> bool {
        matches!(self, Membership::Voter | Membership::Learner)
    }
}

/// One step of an admin operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AdminStep {
    /// Propose a membership change at the leader.
    Change(ConfChange),
    /// Ask the leader to hand leadership over.
    MoveLeader(NodeId),
    /// Let a new learner catch up before the next step (ms).
    Wait(u64),
}

/// The admin client's operation in flight.
#[derive(Debug)]
pub(crate) struct AdminOp {
    steps: VecDeque<AdminStep>,
    /// The request the admin client waits for, if one is out.
    in_flight: Option<u64>,
    /// After this the operation gives up.
    deadline: Instant,
    /// A replacement counts one member down until it ends.
    replacing: bool,
}

/// How long an admin operation may take in all before it gives up.
const ADMIN_DEADLINE_MS: u64 = 20_000;
/// How long the admin client waits for one answer before it asks again.
const ADMIN_ATTEMPT_MS: u64 = 2_000;
/// Pause before retrying after "not leader" or no leader known.
const ADMIN_RETRY_MS: u64 = 300;
/// How long a new learner catches up before a replacement promotes it.
const LEARNER_CATCH_UP_MS: u64 = 3_000;

impl<M: HostedMember> World<M> {
    /// Starts an admin operation of `steps`; refused while another is in flight.
    pub(crate) fn start_admin(
        &mut self,
        now: Instant,
        steps: Vec<AdminStep>,
        replacing: bool,
    ) -> Result<(), String> {
        if self.admin.is_some() {
            return Err("a membership change is in flight".into());
        }
        if replacing {
            self.replacing_count += 1;
        }
        self.admin = Some(AdminOp {
            steps: steps.into(),
            in_flight: None,
            deadline: now + Duration::from_millis(ADMIN_DEADLINE_MS),
            replacing,
        });
        self.admin_next(now, self.admin_epoch);
        Ok(())
    }

    /// Sends the admin operation's next step (or ends it), unless `epoch` is stale.
    pub(crate) fn admin_next(&mut self, now: Instant, epoch: u64) {
        if epoch != self.admin_epoch {
            return;
        }
        self.admin_epoch += 1;
        let Some(admin) = &mut self.admin else {
            return;
        };
        if now >= admin.deadline {
            self.trace.event(now, format_args!("admin gives up"));
            return self.admin_end();
        }
        admin.in_flight = None;
        let Some(step) = admin.steps.front().copied() else {
            return self.admin_end();
        };
        let request = match step {
            AdminStep::Wait(wait_ms) => {
                admin.steps.pop_front();
                let epoch = self.admin_epoch;
                return self.queue.schedule(
                    now + Duration::from_millis(wait_ms),
                    Event::AdminNext { epoch },
                );
            }
            AdminStep::Change(change) => Request::MemberChange(change),
            AdminStep::MoveLeader(target) => Request::MoveLeader { target },
        };
        if let AdminStep::Change(ConfChange::AddLearner(id)) = step {
            self.start_spare(id);
        }
        let leader = self
            .leader_hint
            .and_then(|id| self.node_index(id))
            .filter(|node| !self.processes[*node].is_down());
        let epoch = self.admin_epoch;
        let Some(node) = leader else {
            return self.queue.schedule(
                now + Duration::from_millis(ADMIN_RETRY_MS),
                Event::AdminNext { epoch },
            );
        };
        let op_id = self.take_request_id();
        self.routes.insert(op_id, RequestRoute::Admin);
        if let Some(admin) = &mut self.admin {
            admin.in_flight = Some(op_id);
        }
        let id = self.processes[node].id();
        self.trace
            .event(now, format_args!("admin n{id} {}", describe_step(step)));
        self.queue.schedule(
            now + Duration::from_millis(1),
            Event::RequestArrives {
                op_id,
                node,
                request,
            },
        );
        self.queue.schedule(
            now + Duration::from_millis(ADMIN_ATTEMPT_MS),
            Event::AdminNext { epoch },
        );
    }

    /// An answer to the admin client.
    pub(crate) fn admin_reply(
        &mut self,
        now: Instant,
        request_id: u64,
        result: Result<Response, RequestError>,
    ) {
        let Some(admin) = &mut self.admin else {
            return;
        };
        if admin.in_flight != Some(request_id) {
            return;
        }
        let epoch = self.admin_epoch;
        match result {
            Ok(Response::MemberChanged {
                voters, learners, ..
            }) => {
                let step = admin.steps.pop_front();
                self.learn_membership(now, &voters, &learners);
                if let Some(AdminStep::Change(ConfChange::Remove(id))) = step {
                    if let Some(node) = self.node_index(id) {
                        self.retire(now, node);
                    }
                }
                self.admin_next(now, epoch);
            }
            Ok(_) => {
                admin.steps.pop_front();
                self.admin_next(now, epoch);
            }
            Err(RequestError::MemberChangeRefused) => {
                self.trace.event(now, format_args!("admin refused"));
                self.counts.faults_refused += 1;
                self.admin_end();
            }
            Err(_) => {
                // Not the leader any more, or busy: ask again shortly.
                admin.in_flight = None;
                self.admin_epoch += 1;
                let epoch = self.admin_epoch;
                self.queue.schedule(
                    now + Duration::from_millis(ADMIN_RETRY_MS),
                    Event::AdminNext { epoch },
                );
            }
        }
    }

    fn admin_end(&mut self) {
        if let Some(admin) = self.admin.take() {
            if admin.replacing {
                self.replacing_count -= 1;
            }
        }
        self.admin_epoch += 1;
    }

    /// Ends any admin operation (the heal: no faults after the safety phase).
    pub(crate) fn admin_cancel(&mut self) {
        self.admin_end();
    }

    /// The membership an answer reported, as the world's view.
    fn learn_membership(&mut self, now: Instant, voters: &[NodeId], learners: &[NodeId]) {
        self.membership_changed = true;
        for node in 0..self.processes.len() {
            let id = self.processes[node].id();
            let current = self.membership[node];
            self.membership[node] = if voters.contains(&id) {
                Membership::Voter
            } else if learners.contains(&id) {
                Membership::Learner
            } else if current.is_joined() {
                Membership::Removed
            } else {
                current
            };
        }
        let render = |ids: &[NodeId]| {
            ids.iter()
                .map(|id| format!("n{id}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        self.trace.event(
            now,
            format_args!(
                "membership voters={} learners={}",
                render(voters),
                render(learners)
            ),
        );
    }

    /// Starts spare slot `id` on its empty disk, if it never ran.
    fn start_spare(&mut self, id: NodeId) {
        let Some(node) = self.node_index(id) else {
            return;
        };
        if self.membership[node] == Membership::Spare && self.processes[node].incarnation() == 0 {
            self.membership[node] = Membership::Learner;
            self.last_learner = Some(node);
            self.start_member(node);
        }
    }

    /// Stops member `node` for good: it was removed from the cluster.
    pub(crate) fn retire(&mut self, now: Instant, node: usize) {
        self.membership[node] = Membership::Removed;
        let _ = self.crash_member_for(now, node, Some(0));
        let id = self.processes[node].id();
        self.trace.event(now, format_args!("n{id} retired"));
    }

    /// The lowest spare slot that never ran.
    pub(crate) fn next_spare(&self) -> Option<usize> {
        (0..self.processes.len()).find(|node| {
            self.membership[*node] == Membership::Spare && self.processes[*node].incarnation() == 0
        })
    }
}

fn describe_step(step: AdminStep) -> String {
    match step {
        AdminStep::Change(change) => change.describe(),
        AdminStep::MoveLeader(target) => format!("move-leader {target}"),
        AdminStep::Wait(wait_ms) => format!("wait {wait_ms}ms"),
    }
}

/// The steps of replacing `removed` with spare `spare`: remove, add as learner, let it catch
/// up, promote.
pub(crate) fn replace_steps(removed: NodeId, spare: NodeId) -> Vec<AdminStep> {
    vec![
        AdminStep::Change(ConfChange::Remove(removed)),
        AdminStep::Change(ConfChange::AddLearner(spare)),
        AdminStep::Wait(LEARNER_CATCH_UP_MS),
        AdminStep::Change(ConfChange::Promote(spare)),
    ]
}

impl crate::scenario::Scenario {
    /// Three voters and two spare slots under a lossy network: a learner joins, is cut off
    /// together with the leader, is promoted while a follower is cut off, then a follower is
    /// replaced by a fresh member and leadership moves. Hunts quorum bugs around learners
    /// (a learner counted toward commit) and membership changes under load.
    pub fn learner_promoted_during_partition() -> crate::scenario::Scenario {
        use crate::timeline::{Role, ScriptedFault, Target, TimedFault, Timeline};
        let at = |seconds: u64, fault| TimedFault {
            time_ns: seconds * 1_000_000_000,
            fault,
        };
        let role = Target::Role;
        let mut scenario = crate::scenario::Scenario::no_faults();
        scenario.name = "learner_promoted_during_partition".into();
        scenario.member_count = 3;
        scenario.spare_member_count = 2;
        scenario.budget = crate::scenario::FaultBudget::in_model(3);
        scenario.network = crate::network::NetworkConfig::lossy();
        scenario.timeline = Timeline {
            entries: vec![
                at(3, ScriptedFault::AddLearner { member: None }),
                at(
                    8,
                    ScriptedFault::Partition {
                        groups: vec![vec![role(Role::Leader), role(Role::TheLearner)]],
                        cut: Vec::new(),
                        flapping: false,
                        heal_after_ms: 4_000,
                    },
                ),
                at(
                    16,
                    ScriptedFault::Partition {
                        groups: vec![vec![role(Role::AFollower)]],
                        cut: Vec::new(),
                        flapping: false,
                        heal_after_ms: 5_000,
                    },
                ),
                at(
                    17,
                    ScriptedFault::PromoteLearner {
                        target: role(Role::TheLearner),
                    },
                ),
                at(
                    28,
                    ScriptedFault::ReplaceMember {
                        target: role(Role::AFollower),
                    },
                ),
                at(
                    45,
                    ScriptedFault::TransferLeader {
                        to: role(Role::AFollower),
                    },
                ),
            ],
        };
        scenario
    }
}

impl crate::scenario::Scenario {
    /// `default` on four voters with three spare slots and membership churn at random (the
    /// library's `membership_churn_on_an_even_cluster`, which the scenarios crate holds equal to
    /// this): a replacement removes a voter first, leaving three voters and a learner, where a
    /// learner counted toward commit lets a leader commit alone. The zoo test of that bug hunts
    /// here as well as in its scripted scenario.
    pub fn membership_churn_on_an_even_cluster() -> crate::scenario::Scenario {
        let mut scenario = crate::scenario::Scenario::default_scenario();
        scenario.name = "membership_churn_on_an_even_cluster".into();
        scenario.member_count = 4;
        scenario.spare_member_count = 3;
        scenario.budget = crate::scenario::FaultBudget {
            corrupted_members_max: 1,
            down_members_max: 1,
        };
        scenario.faults.leader_transfers_per_minute = 4;
        scenario.faults.fall_behinds_per_minute = 2;
        scenario.faults.compaction_storms_per_minute = 2;
        scenario.faults.member_replacements_per_minute = 2;
        scenario
    }
}
