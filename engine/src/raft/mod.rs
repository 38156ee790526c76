//! Raft consensus as a sans-I/O state machine. (Being built: this placeholder only names the
//! peer message type so that hosts can already pass messages around.)

use crate::types::NodeId;

/// A raft message between members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
}
