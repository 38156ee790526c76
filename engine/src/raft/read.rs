//! Linearizable reads by ReadIndex: the leader records its commit index, confirms it is still
//! leader with a heartbeat round acknowledged by a quorum, then answers with that index.
//!
//! It does not wait for the application to apply through the index (the host does), and it
//! offers no lease-based reads (they depend on bounded clock drift, which the simulator breaks).

use std::collections::{BTreeSet, VecDeque};

use crate::raft::conf::quorum_size;
use crate::raft::{MessageBody, ProposeError, Raft, ReadState, Role, PENDING_READS_COUNT_MAX};
use crate::types::{LogIndex, NodeId};

/// One read waiting for its heartbeat round.
#[derive(Clone, Debug)]
struct ReadRequest {
    /// The heartbeat round that confirms it; later rounds confirm it too.
    sequence: u64,
    /// Who asked: this member or a follower.
    requester: NodeId,
    context: u64,
    /// The leader's commit index when the read arrived.
    index: LogIndex,
    /// Voters that acknowledged a round at or after `sequence` (including the leader).
    acks: BTreeSet<NodeId>,
}

/// Reads in progress on a leader, and answers ready for the host.
#[derive(Clone, Debug, Default)]
pub(super) struct ReadQueue {
    /// The last heartbeat round issued. Only grows within one incarnation.
    last_sequence: u64,
    /// Invariant: sequences ascending.
    confirming: VecDeque<ReadRequest>,
    /// Reads that arrived before the leader committed an entry of its term.
    waiting_for_commit: Vec<(NodeId, u64)>,
    ready_states: Vec<ReadState>,
}

impl ReadQueue {
    pub(super) fn last_sequence(&self) -> u64 {
        self.confirming.back().map_or(0, |request| request.sequence)
    }

    pub(super) fn push_ready_state(&mut self, context: u64, index: LogIndex) {
        assert!(
            self.ready_states.len() < PENDING_READS_COUNT_MAX * 4,
            "host never drains read states"
        );
        self.ready_states.push(ReadState { context, index });
    }

    pub(super) fn ready_states_is_empty(&self) -> bool {
        self.ready_states.is_empty()
    }

    pub(super) fn take_ready_states(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.ready_states)
    }

    /// Leadership was lost: pending reads are dropped (their clients time out and retry), but
    /// answers already given stay deliverable.
    pub(super) fn clear(&mut self) {
        self.confirming.clear();
        self.waiting_for_commit.clear();
    }

    fn pending_count(&self) -> usize {
        self.confirming.len() + self.waiting_for_commit.len()
    }
}

impl Raft {
    /// Asks for a read index for `context`; the answer comes as a `ReadState` in a later Ready.
    /// A follower forwards the request to its leader.
    pub fn read_index(&mut self, context: u64) -> Result<(), ProposeError> {
        match self.role {
            Role::Leader => self.leader_read(self.id(), context),
            Role::Follower if self.leader.0 != 0 => {
                let leader = self.leader;
                self.send(leader, MessageBody::ReadIndexRequest { context });
                Ok(())
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => Err(ProposeError::NoLeader),
        }
    }

    pub(super) fn on_read_index_request(&mut self, from: NodeId, context: u64) {
        if self.role == Role::Leader {
            // A refusal drops the request; the follower's client times out and retries.
            let _ = self.leader_read(from, context);
        }
    }

    fn leader_read(&mut self, requester: NodeId, context: u64) -> Result<(), ProposeError> {
        assert_eq!(self.role, Role::Leader);
        if self.reads.pending_count() >= PENDING_READS_COUNT_MAX {
            return Err(ProposeError::TooManyPendingReads);
        }
        if !self.committed_in_current_term() {
            // Our commit index may lag the true one until an entry of our term commits.
            self.reads.waiting_for_commit.push((requester, context));
            return Ok(());
        }
        self.start_reads(vec![(requester, context)]);
        Ok(())
    }

    /// Records reads at the current commit index and starts one heartbeat round for them.
    fn start_reads(&mut self, requests: Vec<(NodeId, u64)>) {
        if requests.is_empty() {
            return;
        }
        let index = self.log.commit_index();
        let sequence = self.reads.last_sequence + 1;
        self.reads.last_sequence = sequence;
        for (requester, context) in requests {
            let acks = BTreeSet::from([self.id()]);
            self.reads.confirming.push_back(ReadRequest {
                sequence,
                requester,
                context,
                index,
                acks,
            });
        }
        // A single voter is its own quorum.
        self.release_confirmed_reads();
        if !self.reads.confirming.is_empty() {
            self.broadcast_heartbeat();
        }
    }

    pub(super) fn on_first_commit_in_term(&mut self) {
        let waiting = std::mem::take(&mut self.reads.waiting_for_commit);
        self.start_reads(waiting);
    }

    /// A voter acknowledged heartbeat round `sequence`, which confirms every earlier round.
    pub(super) fn on_read_ack(&mut self, from: NodeId, sequence: u64) {
        if sequence == 0 || !self.conf.voters.contains(&from) {
            return;
        }
        for request in self.reads.confirming.iter_mut() {
            if request.sequence > sequence {
                break;
            }
            request.acks.insert(from);
        }
        self.release_confirmed_reads();
    }

    fn release_confirmed_reads(&mut self) {
        // Zoo (etcd #741): the leader takes its own word for its leadership, so a leader that
        // was deposed without knowing it answers from a stale commit index.
        let quorum = if crate::bug!(ReadIndexWithoutQuorum) {
            1
        } else {
            quorum_size(&self.conf)
        };
        while self.reads.confirming.front().is_some_and(|request| {
            request
                .acks
                .iter()
                .filter(|id| self.conf.voters.contains(id))
                .count()
                >= quorum
        }) {
            let request = self
                .reads
                .confirming
                .pop_front()
                .expect("checked non-empty");
            assert!(request.index <= self.log.commit_index());
            if request.requester == self.id() {
                self.reads.push_ready_state(request.context, request.index);
            } else {
                let body = MessageBody::ReadIndexResponse {
                    context: request.context,
                    index: request.index,
                };
                self.send(request.requester, body);
            }
        }
    }
}
