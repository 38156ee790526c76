//! The raft values that are persisted or applied: log entries, hard state, configuration and
//! snapshot metadata. The WAL frames these; the member applies committed entries.
//!
//! Messages and the protocol's volatile state live elsewhere in `raft`.

use std::sync::Arc;

use crate::types::{LogIndex, NodeId, Term};

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum EntryKind {
    /// Application data (an encoded client request); empty data is a leader's no-op.
    Normal,
    /// An encoded membership change.
    ConfChange,
}

/// One raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Entry {
    /// The leader's term when the entry was created.
    pub term: Term,
    /// Its position in the log (>= 1).
    pub index: LogIndex,
    /// What `data` holds.
    pub kind: EntryKind,
    /// The payload. Shared (`Arc`): an entry is copied into persist batches, append messages
    /// and committed batches, and none of those copies should copy the payload. Encodes
    /// exactly as a `Vec<u8>` would.
    pub data: Arc<[u8]>,
}

/// The state raft must make durable before acting on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct HardState {
    /// The current term.
    pub term: Term,
    /// Whom this member voted for in `term` (`NodeId(0)` = nobody).
    pub vote: NodeId,
    /// The commit index known to this member.
    pub commit: LogIndex,
}

/// The cluster membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ConfState {
    /// Voting members, sorted.
    pub voters: Vec<NodeId>,
    /// Non-voting members, sorted.
    pub learners: Vec<NodeId>,
}

/// What a snapshot covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapshotMeta {
    /// The last log index the snapshot includes.
    pub index: LogIndex,
    /// The term of that entry.
    pub term: Term,
    /// Membership as of `index`.
    pub conf: ConfState,
}

/// A snapshot: metadata plus the application's state bytes (opaque to raft).
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The application state.
    pub data: Vec<u8>,
}
