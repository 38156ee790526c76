//! Raft consensus as a sans-I/O state machine, in the spirit of etcd-io/raft's `RawNode`.
//!
//! A host feeds [`Raft`] ticks, peer messages and proposals, and drains a [`Ready`] that separates
//! what must be made durable ([`PersistBatch`]) from messages that are safe to send now. Messages
//! that depend on a write (vote grants, a candidate's vote requests, append acknowledgements) are
//! held inside until the host reports [`Raft::on_persisted`]; a leader counts its own log towards
//! commit only once it is durable. So a host may send, persist and apply in any relative order
//! without breaking safety, as long as it persists batches in id order.
//!
//! Decisions worth knowing:
//! - Membership changes take effect when their entry is *applied* (handed out in
//!   `Ready::committed`), one at a time; a new leader may propose one only after it has applied its
//!   own first (empty) entry, which avoids the single-server-change bug of the Raft thesis.
//! - Entries are handed out for apply only once committed *and* durable locally, and a snapshot
//!   received from the leader is handed out in `Ready::apply_snapshot` only once persisted.
//! - `Ready::committed` entries count as applied as soon as they are handed out.
//! - Read-index requests are matched to heartbeat acks by an internal sequence number, so client
//!   contexts need not be unique across members.
//!
//! This module does no I/O, reads no clock and knows nothing of the WAL format or the application.

mod conf;
mod election;
mod log;
mod message;
mod node;
mod progress;
mod read;
mod replication;
mod types;

pub use conf::{
    decode_conf_change, decode_conf_change_with_context, encode_conf_change,
    encode_conf_change_with_context, ConfChange,
};
pub use message::{Message, MessageBody};
pub use node::Raft;
pub use types::{ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta};

use crate::types::{LogIndex, NodeId, Term};
use std::fmt;

/// Most messages held back waiting for a persist; a host that never reports persistence is a bug.
pub const HELD_MESSAGES_COUNT_MAX: usize = 1 << 20;
/// Most read-index requests a leader queues (waiting for its first commit or for acks).
pub const PENDING_READS_COUNT_MAX: usize = 4096;

/// Identifies one [`PersistBatch`]. Ids grow by one per batch within one incarnation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub u64);

impl fmt::Display for PersistId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// Raft's configuration. Every limit is explicit; see [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This member (never 0).
    pub id: NodeId,
    /// Base election timeout; the effective one is drawn from `[t, 2t)` at every reset.
    pub election_timeout_ticks: u32,
    /// A leader sends heartbeats this often.
    pub heartbeat_interval_ticks: u32,
    /// Run a pre-vote round before incrementing the term (avoids disruption by partitioned nodes).
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a quorum within an election timeout, and
    /// followers ignore vote requests while they hear from a leader (the lease).
    pub check_quorum: bool,
    /// Most appends in flight to one follower in the replicate state.
    pub inflight_appends_count_max: usize,
    /// Most entries in one append request.
    pub append_entries_count_max: usize,
    /// Most entries a leader holds uncommitted before refusing proposals.
    pub uncommitted_entries_count_max: usize,
    /// Seeds election jitter.
    pub seed: u64,
    /// Turns on raft's buggify points (`crate::buggify`): simulation only.
    pub buggify: bool,
}

impl Config {
    /// A configuration with etcd-like defaults for member `id`.
    pub fn new(id: NodeId, seed: u64) -> Config {
        Config {
            id,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            inflight_appends_count_max: 256,
            append_entries_count_max: 64,
            uncommitted_entries_count_max: 4096,
            seed,
            buggify: false,
        }
    }

    /// Checks the configuration; the error names the wrong setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.0 == 0 {
            return Err("raft id 0 is reserved for \"nobody\"".into());
        }
        if self.heartbeat_interval_ticks == 0 {
            return Err("heartbeat_interval_ticks must be at least 1".into());
        }
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks {
            return Err("election_timeout_ticks must exceed heartbeat_interval_ticks".into());
        }
        if self.inflight_appends_count_max == 0 {
            return Err("inflight_appends_count_max must be at least 1".into());
        }
        if self.append_entries_count_max == 0 {
            return Err("append_entries_count_max must be at least 1".into());
        }
        if self.uncommitted_entries_count_max == 0 {
            return Err("uncommitted_entries_count_max must be at least 1".into());
        }
        Ok(())
    }
}

/// What a restarting member recovered from its disk. Raft restarts with its applied index at
/// the snapshot's index: the application restores the snapshot's state itself, and raft hands out
/// the committed entries after it again (once durable, as always).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The last persisted hard state (default on a fresh disk).
    pub hard_state: HardState,
    /// The latest persisted snapshot's metadata. NB: raft needs the snapshot's bytes to send it to
    /// lagging followers; after a restart the host passes them again through [`Raft::compact`].
    pub snapshot: Option<SnapshotMeta>,
    /// The log after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// The initial membership, used when there is no snapshot.
    pub conf: ConfState,
}

/// The role of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a pre-vote round (its term is unchanged).
    PreCandidate,
    /// Runs an election in its term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// One batch the host must make durable, in id order, then report with [`Raft::on_persisted`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistBatch {
    /// This batch's id.
    pub id: PersistId,
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to append. The first entry's index may be <= the last persisted index: it
    /// overwrites that suffix.
    pub entries: Vec<Entry>,
    /// A snapshot to save: one received from the leader, or one the application handed to
    /// [`Raft::compact`]. It replaces the whole durable log: the host discards every entry it
    /// holds, keeps the snapshot, then appends `entries` (which then start right after it; raft
    /// re-sends any entries it keeps after a compaction point).
    pub snapshot: Option<Snapshot>,
}

/// The answer to a read-index request: reads at `context` may be served once the application
/// has applied through `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The context given to [`Raft::read_index`].
    pub context: u64,
    /// The commit index the read must wait for.
    pub index: LogIndex,
}

/// Everything raft asks of its host since the previous call to [`Raft::ready`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// What to make durable, if anything.
    pub persist: Option<PersistBatch>,
    /// Messages safe to send now (durability-gated ones were held until persisted).
    pub messages: Vec<Message>,
    /// A snapshot from the leader to install in the application, before `committed`.
    pub apply_snapshot: Option<Snapshot>,
    /// Committed entries to apply, in order, each exactly once; they count as applied now.
    pub committed: Vec<Entry>,
    /// Answers to read-index requests.
    pub read_states: Vec<ReadState>,
}

/// Why a proposal or read request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader is known; retry later.
    NoLeader,
    /// The leader is handing leadership over and accepts no proposals.
    TransferInProgress,
    /// Too many entries are uncommitted (`uncommitted_entries_count_max`).
    TooManyUncommitted,
    /// A membership change is proposed but not yet applied.
    ConfChangePending,
    /// The membership change does not fit the current configuration.
    ConfChangeInvalid,
    /// Too many read-index requests are pending (`PENDING_READS_COUNT_MAX`).
    TooManyPendingReads,
}

/// A snapshot of raft's state for hosts, tests and checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This member.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// Whom it voted for in `term` (0 = nobody).
    pub vote: NodeId,
    /// The leader it knows of (0 = none).
    pub leader: NodeId,
    /// The highest index known committed.
    pub commit_index: LogIndex,
    /// The highest index handed out for apply.
    pub applied_index: LogIndex,
    /// The first index still in the log (after the snapshot).
    pub first_index: LogIndex,
    /// The last index in the log.
    pub last_index: LogIndex,
    /// The highest index known durable locally.
    pub persisted_index: LogIndex,
    /// The membership as of `applied_index`.
    pub conf: ConfState,
}

/// What a member holds as durable, for hosts that check the persistence contract from outside:
/// after a restart these are exactly what the disk gave back; while running, `synced_index` is
/// the highest index a batch whose sync the host has reported wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableFacts {
    /// The current term (durable before any message of it is sent).
    pub term: Term,
    /// The vote in `term` (0 = none).
    pub vote: NodeId,
    /// The last log index (a snapshot's index if the log after it is empty).
    pub last_index: LogIndex,
    /// The term of that entry.
    pub last_term: Term,
    /// The highest index any synced batch wrote (kept even when a snapshot or a newer leader
    /// has since replaced that entry).
    pub synced_index: LogIndex,
}

impl Status {
    /// A stable one-line rendering.
    pub fn describe(&self) -> String {
        format!(
            "{} {:?} term={} vote={} leader={} commit={} applied={} log=[{}..{}] persisted={} voters={:?} learners={:?}",
            self.id,
            self.role,
            self.term,
            self.vote,
            self.leader,
            self.commit_index,
            self.applied_index,
            self.first_index,
            self.last_index,
            self.persisted_index,
            self.conf.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
            self.conf.learners.iter().map(|id| id.0).collect::<Vec<_>>(),
        )
    }
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_none()
            && self.messages.is_empty()
            && self.apply_snapshot.is_none()
            && self.committed.is_empty()
            && self.read_states.is_empty()
    }
}

/// A stable one-line rendering of an entry: `term/index`, kind and data.
pub fn describe_entry(entry: &Entry) -> String {
    match entry.kind {
        EntryKind::Normal if entry.data.is_empty() => {
            format!("{}/{} empty", entry.term, entry.index)
        }
        EntryKind::Normal => format!(
            "{}/{} {:?}",
            entry.term,
            entry.index,
            String::from_utf8_lossy(&entry.data)
        ),
        EntryKind::ConfChange => match decode_conf_change(&entry.data) {
            Some(change) => format!("{}/{} {}", entry.term, entry.index, change.describe()),
            None => format!("{}/{} conf-change(undecodable)", entry.term, entry.index),
        },
    }
}
