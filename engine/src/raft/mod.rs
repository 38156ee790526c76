//! Raft consensus as a sans-I/O state machine. (Being built: this placeholder names the persisted
//! types and the peer message type so that other modules and hosts can already use them.)

mod types;

pub use types::{ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta};

use crate::types::NodeId;

/// A raft message between members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
}
