//! What a member writes into the raft log: one [`Proposal`] per client write or lease duty,
//! tagged with its origin so the member that took the request can answer it once applied.
//!
//! Encoding goes through `crate::codec`; this module does not frame or checksum anything.

use crate::auth::{AuthInfo, AuthRequest};
use crate::codec;
use crate::kv::{CompactionRequest, DeleteRangeRequest, PutRequest, TxnRequest};
use crate::types::{LeaseId, NodeId};

/// Identifies a proposal: the member that took the request, an incarnation nonce (so that an
/// entry proposed before a restart is never mistaken for one proposed after it), and a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, bincode::Encode, bincode::Decode)]
pub(crate) struct ProposalId {
    pub(crate) origin: NodeId,
    pub(crate) incarnation: u64,
    pub(crate) sequence: u64,
}

/// The state-machine command carried by a log entry.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    LeaseGrant {
        id: LeaseId,
        ttl_seconds: i64,
    },
    LeaseRevoke {
        id: LeaseId,
    },
    /// A keep-alive that must clear the lease's checkpoint before it is answered.
    LeaseKeepAliveReset {
        id: LeaseId,
        ttl_seconds: i64,
    },
    /// Remaining TTLs checkpointed by the leader, so a new leader neither extends nor cuts them.
    LeaseCheckpoint {
        remaining: Vec<(LeaseId, i64)>,
    },
    /// A client command proposed while auth was enabled, with who it runs as: checked against
    /// the auth store when it applies. Appended after the older variants so their encoding,
    /// and every log written without auth, stays the same.
    AsUser {
        auth: AuthInfo,
        command: Box<Command>,
    },
    /// An auth change (or `Authenticate`), applied to the auth store in log order.
    Auth(AuthRequest),
}

/// One log entry's payload.
/// The initial buffer for an encoded proposal: a small put's id, key and value fit.
const PROPOSAL_BYTES_GUESS: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct Proposal {
    pub(crate) id: ProposalId,
    pub(crate) command: Command,
}

impl Proposal {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Most proposals are a small put: starting with room for one spares the doublings from
        // an empty buffer. Only a capacity guess; the bytes are `codec::encode`'s.
        let mut bytes = Vec::with_capacity(PROPOSAL_BYTES_GUESS);
        let _encoded_bytes = codec::encode_into(self, &mut bytes);
        bytes
    }

    /// Decodes an entry payload. A payload that does not decode was written by a bug or
    /// corrupted past every checksum: applying it differently on different members would
    /// fork the state machine, so the caller treats it as fatal.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Proposal> {
        codec::decode(bytes).ok()
    }
}

/// A stable 64-bit FNV-1a digest of entry payloads for `Observation::Applied`.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
