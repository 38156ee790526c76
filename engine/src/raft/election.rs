//! Elections: role transitions, pre-vote and vote rounds, the term rules for incoming messages,
//! check-quorum on the leader's tick, and the target side of leadership transfer.
//!
//! Votes and a candidate's own vote are durable before anyone hears of them: the messages that
//! carry them are held by `Raft::send` until their batch is persisted. Replication is elsewhere.

use crate::raft::conf::quorum_size;
use crate::raft::progress::Progress;
use crate::raft::{EntryKind, Message, MessageBody, Raft, Role};
use crate::types::{LogIndex, NodeId, Term};

impl Raft {
    /// Starts an election now (with a pre-vote round if configured). Ignored by a leader and by a
    /// member that is not a voter.
    pub fn campaign(&mut self) {
        if self.role == Role::Leader {
            return;
        }
        if self.config.pre_vote {
            self.campaign_round(true, false);
        } else {
            self.campaign_round(false, false);
        }
    }

    /// Whether this member may stand for election: a voter whose membership is current.
    fn promotable(&self) -> bool {
        // A committed but unapplied membership change may change who votes; wait for it.
        self.conf.voters.contains(&self.id())
            && !self
                .log
                .unapplied_committed_any(|entry| entry.kind == EntryKind::ConfChange)
            && self.snapshot_to_apply.is_none()
    }

    /// One round: a pre-vote (term unchanged) or a real vote in the next term.
    pub(super) fn campaign_round(&mut self, pre_vote: bool, transfer: bool) {
        if !self.promotable() {
            return;
        }
        let campaign_term = Term(self.term.0 + 1);
        if pre_vote {
            self.role = Role::PreCandidate;
            self.leader = NodeId(0);
        } else {
            self.term = campaign_term;
            self.vote = self.id();
            self.role = Role::Candidate;
            self.leader = NodeId(0);
        }
        self.reset_election_timer();
        self.progress.clear();
        self.votes.clear();
        self.votes.insert(self.id(), true);
        if self.votes_won() {
            self.after_round_won(pre_vote);
            return;
        }
        let voters: Vec<NodeId> = self
            .conf
            .voters
            .iter()
            .copied()
            .filter(|voter| *voter != self.id())
            .collect();
        for voter in voters {
            let body = MessageBody::VoteRequest {
                pre_vote,
                last_log_index: self.log.last_index(),
                last_log_term: self.log.last_term(),
                transfer,
            };
            self.send_with_term(voter, campaign_term, body);
        }
    }

    fn votes_won(&self) -> bool {
        let granted = self
            .conf
            .voters
            .iter()
            .filter(|voter| self.votes.get(voter) == Some(&true))
            .count();
        granted >= quorum_size(&self.conf)
    }

    fn votes_lost(&self) -> bool {
        let rejected = self
            .conf
            .voters
            .iter()
            .filter(|voter| self.votes.get(voter) == Some(&false))
            .count();
        rejected >= quorum_size(&self.conf)
    }

    fn after_round_won(&mut self, pre_vote: bool) {
        if pre_vote {
            self.campaign_round(false, false);
        } else {
            self.become_leader();
        }
    }

    pub(super) fn reset_election_timer(&mut self) {
        let timeout = u64::from(self.config.election_timeout_ticks);
        self.randomized_election_timeout_ticks = self.rng.range(timeout, 2 * timeout) as u32;
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: NodeId) {
        assert!(term >= self.term);
        if term > self.term {
            self.term = term;
            self.vote = NodeId(0);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.transfer_target = None;
        self.reads.clear();
        self.reset_election_timer();
    }

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate);
        assert_eq!(self.vote, self.id());
        self.role = Role::Leader;
        self.leader = self.id();
        self.votes.clear();
        self.reset_election_timer();
        self.progress.clear();
        let members: Vec<NodeId> = self
            .conf
            .voters
            .iter()
            .chain(&self.conf.learners)
            .copied()
            .collect();
        for member in members {
            self.progress
                .insert(member, Progress::new(self.log.last_index().next()));
        }
        let persisted_index = self.log.persisted_index();
        let own = self
            .progress
            .get_mut(&self.config.id)
            .expect("a leader is a voter");
        own.update_match(persisted_index);
        own.become_replicate();
        own.recent_active = true;
        // The empty entry of our term lets earlier entries commit with it (never by counting),
        // and no membership change may be proposed until it is applied.
        self.pending_conf_index = self.log.last_index().next();
        // It bypasses the uncommitted limit: without it nothing could ever commit again.
        self.leader_append_unchecked(EntryKind::Normal, Vec::new());
    }

    /// A message from a higher term. Returns whether to go on processing it.
    pub(super) fn step_higher_term(&mut self, message: &Message) -> bool {
        match message.body {
            MessageBody::VoteRequest {
                pre_vote, transfer, ..
            } => {
                let in_lease = self.config.check_quorum
                    && self.leader.0 != 0
                    && self.election_elapsed_ticks < self.config.election_timeout_ticks;
                if in_lease && !transfer {
                    crate::marks::hit(crate::marks::Mark::VoteIgnoredInLeaderLease);
                    return false;
                }
                if !pre_vote {
                    self.become_follower(message.term, NodeId(0));
                }
                true
            }
            // A granted pre-vote carries the term we would campaign in; it is not a new term.
            MessageBody::VoteResponse {
                pre_vote: true,
                granted: true,
            } => true,
            MessageBody::AppendRequest { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, message.from);
                true
            }
            _ => {
                self.become_follower(message.term, NodeId(0));
                true
            }
        }
    }

    /// A message from a lower term: ignored, but stale leaders and pre-candidates are told the
    /// current term so that they step down instead of disrupting the cluster later.
    pub(super) fn step_lower_term(&mut self, message: &Message) {
        match message.body {
            MessageBody::AppendRequest { .. } | MessageBody::Heartbeat { .. } => {
                let body = MessageBody::AppendResponse {
                    success: false,
                    index: LogIndex(0),
                    hint_index: LogIndex(0),
                    hint_term: Term(0),
                };
                self.send(message.from, body);
            }
            MessageBody::VoteRequest { pre_vote: true, .. } => {
                self.send(
                    message.from,
                    MessageBody::VoteResponse {
                        pre_vote: true,
                        granted: false,
                    },
                );
            }
            _ => {}
        }
    }

    pub(super) fn on_vote_request(
        &mut self,
        message: &Message,
        pre_vote: bool,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let candidate = message.from;
        let can_vote = self.vote == candidate
            || (self.vote.0 == 0 && self.leader.0 == 0)
            || (pre_vote && message.term > self.term);
        // Zoo site (raft paper 5.4.1): without the election restriction a stale log wins votes.
        let up_to_date = self.log.is_up_to_date(last_log_index, last_log_term)
            || crate::bug!(MissingElectionRestriction);
        let granted = can_vote && up_to_date;
        if granted && !pre_vote {
            assert!(
                self.vote.0 == 0 || self.vote == candidate,
                "voting twice in term {}",
                self.term
            );
            self.vote = candidate;
            self.election_elapsed_ticks = 0;
        }
        // A granted pre-vote answers in the term the candidate would campaign in.
        let term = if granted { message.term } else { self.term };
        self.send_with_term(
            candidate,
            term,
            MessageBody::VoteResponse { pre_vote, granted },
        );
    }

    pub(super) fn on_vote_response(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        granted: bool,
    ) {
        let expected_role = if pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        let expected_term = if pre_vote {
            Term(self.term.0 + 1)
        } else {
            self.term
        };
        if self.role != expected_role || term != expected_term {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        if self.votes_won() {
            self.after_round_won(pre_vote);
        } else if self.votes_lost() {
            let term = self.term;
            self.become_follower(term, NodeId(0));
        }
    }

    /// The leader asks us to take over: campaign at once, skipping pre-vote, past leases.
    pub(super) fn on_timeout_now(&mut self) {
        if self.role == Role::Leader {
            return;
        }
        self.campaign_round(false, true);
    }

    /// The leader's clock: heartbeats, check-quorum, and the transfer deadline.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        if self.transfer_target.is_some() {
            self.transfer_elapsed_ticks += 1;
            if self.transfer_elapsed_ticks >= self.config.election_timeout_ticks {
                self.transfer_target = None;
            }
        }
        if self.election_elapsed_ticks >= self.config.election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                crate::marks::hit(crate::marks::Mark::CheckQuorumStepDown);
                let term = self.term;
                self.become_follower(term, NodeId(0));
                return;
            }
        }
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            // Buggify: a lost heartbeat round, as a slow leader would have; followers near
            // their timeout campaign, and check-quorum sees fewer acknowledgements.
            if !self.buggify.fires(crate::buggify::Point::HeartbeatSkipped) {
                self.broadcast_heartbeat();
            }
        }
    }

    /// Whether a quorum was heard from since the last check; resets the marks for the next one.
    fn quorum_recently_active(&mut self) -> bool {
        let id = self.id();
        let active = self
            .conf
            .voters
            .iter()
            .filter(|voter| {
                **voter == id
                    || self
                        .progress
                        .get(voter)
                        .is_some_and(|progress| progress.recent_active)
            })
            .count();
        for (member, progress) in self.progress.iter_mut() {
            progress.recent_active = *member == id;
        }
        active >= quorum_size(&self.conf)
    }
}
