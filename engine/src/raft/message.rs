//! The messages raft members exchange, and their stable one-line renderer.
//!
//! Messages are plain values; this module does not encode them for a network (the server's
//! transport does) and holds no protocol logic.

use crate::raft::{describe_entry, Entry, EntryKind, Snapshot};
use crate::types::{LogIndex, NodeId, Term};

/// A raft message between members.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The sender's term (for a granted pre-vote: the term the pre-candidate would campaign in).
    pub term: Term,
    /// What it says.
    pub body: MessageBody,
}

/// The kinds of raft messages.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum MessageBody {
    /// A (pre-)candidate asks for a vote.
    VoteRequest {
        /// A pre-vote: the sender's term is unchanged and nobody records a vote.
        pre_vote: bool,
        /// The candidate's last log index.
        last_log_index: LogIndex,
        /// The term of that entry.
        last_log_term: Term,
        /// Sent after TimeoutNow: lets the vote bypass the check-quorum lease.
        transfer: bool,
    },
    /// The answer to a vote request.
    VoteResponse {
        /// Answers a pre-vote.
        pre_vote: bool,
        /// The vote was granted.
        granted: bool,
    },
    /// The leader replicates entries following `prev_log_index`.
    AppendRequest {
        /// The index before the first entry.
        prev_log_index: LogIndex,
        /// Its term.
        prev_log_term: Term,
        /// The entries, contiguous.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit_index: LogIndex,
    },
    /// The answer to an append.
    AppendResponse {
        /// The follower's log now matches the leader's through `index`.
        success: bool,
        /// On success the matched index; on rejection the rejected `prev_log_index`.
        index: LogIndex,
        /// On rejection: the follower's last index if its log is shorter than `index`, else the
        /// first index of its conflicting term.
        hint_index: LogIndex,
        /// On rejection: the follower's conflicting term (0 when its log is too short).
        hint_term: Term,
    },
    /// The leader asserts leadership and advances followers' commit index.
    Heartbeat {
        /// The commit index the follower may adopt (never beyond what it matches).
        commit_index: LogIndex,
        /// The latest read-index round this heartbeat confirms (0: none).
        read_sequence: u64,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// Echoes the heartbeat's read round.
        read_sequence: u64,
    },
    /// The leader sends a snapshot to a follower whose next entry it has compacted away.
    InstallSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// The follower's log now matches the leader's through `index`.
    InstallSnapshotResponse {
        /// The snapshot's index, or the follower's commit index if the snapshot was stale.
        index: LogIndex,
    },
    /// The leader asks the transfer target to campaign at once.
    TimeoutNow,
    /// A follower passes a proposal to its leader.
    ForwardProposal {
        /// What kind of entry.
        kind: EntryKind,
        /// Its data.
        data: Vec<u8>,
    },
    /// A follower asks its leader for a read index.
    ReadIndexRequest {
        /// The follower's request context.
        context: u64,
    },
    /// The leader answers a follower's read-index request.
    ReadIndexResponse {
        /// The follower's request context.
        context: u64,
        /// The index the read must wait for.
        index: LogIndex,
    },
}

impl Message {
    /// A stable one-line rendering, e.g. `1->2 AppendRequest term=2 prev=1/11 commit=11 entries=[2/12]`
    /// (`term/index` for log positions).
    pub fn describe(&self) -> String {
        let head = format!("{}->{}", self.from, self.to);
        let term = self.term;
        match &self.body {
            MessageBody::VoteRequest { .. } | MessageBody::VoteResponse { .. } => {
                self.describe_vote(&head)
            }
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit_index,
            } => format!(
                "{head} AppendRequest term={term} prev={prev_log_term}/{prev_log_index} commit={commit_index} entries=[{}]",
                entries.iter().map(describe_entry).collect::<Vec<_>>().join(", ")
            ),
            MessageBody::AppendResponse {
                success: true,
                index,
                ..
            } => format!("{head} AppendResponse term={term} match={index}"),
            MessageBody::AppendResponse {
                success: false,
                index,
                hint_index,
                hint_term,
            } => format!(
                "{head} AppendResponse term={term} reject={index} hint={hint_term}/{hint_index}"
            ),
            MessageBody::Heartbeat {
                commit_index,
                read_sequence,
            } => format!(
                "{head} Heartbeat term={term} commit={commit_index} read_sequence={read_sequence}"
            ),
            MessageBody::HeartbeatResponse { read_sequence } => {
                format!("{head} HeartbeatResponse term={term} read_sequence={read_sequence}")
            }
            MessageBody::InstallSnapshot { snapshot } => format!(
                "{head} InstallSnapshot term={term} snapshot={}/{} voters={:?} learners={:?}",
                snapshot.meta.term,
                snapshot.meta.index,
                snapshot.meta.conf.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
                snapshot.meta.conf.learners.iter().map(|id| id.0).collect::<Vec<_>>(),
            ),
            MessageBody::InstallSnapshotResponse { index } => {
                format!("{head} InstallSnapshotResponse term={term} match={index}")
            }
            MessageBody::TimeoutNow => format!("{head} TimeoutNow term={term}"),
            MessageBody::ForwardProposal { kind, data } => format!(
                "{head} ForwardProposal term={term} {kind:?} {:?}",
                String::from_utf8_lossy(data)
            ),
            MessageBody::ReadIndexRequest { context } => {
                format!("{head} ReadIndexRequest term={term} context={context}")
            }
            MessageBody::ReadIndexResponse { context, index } => {
                format!("{head} ReadIndexResponse term={term} context={context} index={index}")
            }
        }
    }

    fn describe_vote(&self, head: &str) -> String {
        let term = self.term;
        match &self.body {
            MessageBody::VoteRequest {
                pre_vote,
                last_log_index,
                last_log_term,
                transfer,
            } => format!(
                "{head} {} term={term} last={last_log_term}/{last_log_index}{}",
                if *pre_vote {
                    "PreVoteRequest"
                } else {
                    "VoteRequest"
                },
                if *transfer { " transfer" } else { "" }
            ),
            MessageBody::VoteResponse { pre_vote, granted } => format!(
                "{head} {} term={term} {}",
                if *pre_vote {
                    "PreVoteResponse"
                } else {
                    "VoteResponse"
                },
                if *granted { "granted" } else { "rejected" }
            ),
            _ => unreachable!("only votes are described here"),
        }
    }

    /// True for messages that promise something about this member's durable state (a vote, a
    /// log match, a term) and so are held until the state they depend on is persisted.
    ///
    /// A heartbeat response is not held (as in etcd-io/raft). It promises only that this member
    /// had seen no term above the leader's when it answered, which stays true if a crash then
    /// loses the term; it claims no log entry and gives no vote. Held behind the next fsync, it
    /// made one slow disk look like a dead follower: under load every response waited for an
    /// fsync, so an fsync stall longer than the election timeout starved the leader's
    /// check-quorum and it stepped down (`detcd serve` with 3 members, a disk writer beside it).
    pub(super) fn needs_durability(&self) -> bool {
        match &self.body {
            MessageBody::VoteRequest { pre_vote, .. }
            | MessageBody::VoteResponse { pre_vote, .. } => !pre_vote,
            MessageBody::AppendResponse { .. } | MessageBody::InstallSnapshotResponse { .. } => {
                true
            }
            MessageBody::HeartbeatResponse { .. }
            | MessageBody::AppendRequest { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::TimeoutNow
            | MessageBody::ForwardProposal { .. }
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::ReadIndexResponse { .. } => false,
        }
    }
}
