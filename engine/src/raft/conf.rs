//! Membership changes: the [`ConfChange`] value carried in `EntryKind::ConfChange` entries, its
//! codec, and the pure functions that check and apply a change to a [`ConfState`] and count
//! quorums.
//!
//! It does not decide when a change takes effect (raft's node does: when the entry is applied),
//! and it supports single-member changes only, never joint consensus.

use crate::raft::ConfState;
use crate::types::NodeId;

/// One membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum ConfChange {
    /// Add a voting member.
    AddVoter(NodeId),
    /// Add a non-voting member that receives the log.
    AddLearner(NodeId),
    /// Remove a voter or learner.
    Remove(NodeId),
    /// Turn a learner into a voter.
    Promote(NodeId),
    /// Change nothing in the voting configuration; only the host's context for the member
    /// (e.g. its peer URLs) is replaced when applied (etcd's MemberUpdate).
    Update(NodeId),
}

impl ConfChange {
    /// A stable rendering, e.g. `add-voter 4`.
    pub fn describe(&self) -> String {
        match self {
            ConfChange::AddVoter(id) => format!("add-voter {id}"),
            ConfChange::AddLearner(id) => format!("add-learner {id}"),
            ConfChange::Remove(id) => format!("remove {id}"),
            ConfChange::Promote(id) => format!("promote {id}"),
            ConfChange::Update(id) => format!("update {id}"),
        }
    }
}

/// Encodes a change into an entry's data (through `crate::codec`).
pub fn encode_conf_change(change: &ConfChange) -> Vec<u8> {
    let bytes = crate::codec::encode(change);
    assert!(!bytes.is_empty());
    bytes
}

/// Encodes a change with the host's opaque `context` for the member (its addresses, say):
/// the change's bytes, then the context's only when it is not empty, so a change without one
/// is the same bytes as [`encode_conf_change`] writes.
pub fn encode_conf_change_with_context(change: &ConfChange, context: &[u8]) -> Vec<u8> {
    let mut bytes = encode_conf_change(change);
    if !context.is_empty() {
        let _context_bytes = crate::codec::encode_into(&context, &mut bytes);
    }
    bytes
}

/// Decodes an entry's data; `None` if it is not a whole, valid change.
pub fn decode_conf_change(bytes: &[u8]) -> Option<ConfChange> {
    decode_conf_change_with_context(bytes).map(|(change, _context)| change)
}

/// Decodes an entry's data into the change and its context (empty when there is none);
/// `None` if it is not a whole, valid change. An empty context written out is refused: it has
/// one encoding, the change alone.
pub fn decode_conf_change_with_context(bytes: &[u8]) -> Option<(ConfChange, Vec<u8>)> {
    match crate::codec::decode::<ConfChange>(bytes) {
        Ok(change) => Some((change, Vec::new())),
        Err(crate::codec::CodecError::TrailingBytes { consumed_bytes, .. }) => {
            let change = crate::codec::decode::<ConfChange>(&bytes[..consumed_bytes]).ok()?;
            let context: Vec<u8> = crate::codec::decode(&bytes[consumed_bytes..]).ok()?;
            (!context.is_empty()).then_some((change, context))
        }
        Err(_) => None,
    }
}

/// True if `id` is a voter or a learner.
pub(super) fn conf_contains(conf: &ConfState, id: NodeId) -> bool {
    conf.voters.contains(&id) || conf.learners.contains(&id)
}

/// Whether `change` makes sense against `conf` (checked when proposing).
pub(super) fn conf_change_valid(conf: &ConfState, change: ConfChange) -> bool {
    match change {
        ConfChange::AddVoter(id) => id.0 != 0 && !conf.voters.contains(&id),
        ConfChange::AddLearner(id) => id.0 != 0 && !conf_contains(conf, id),
        // Removing the last voter would leave a cluster that can never elect a leader.
        ConfChange::Remove(id) => {
            conf.learners.contains(&id) || (conf.voters.contains(&id) && conf.voters.len() > 1)
        }
        ConfChange::Promote(id) => conf.learners.contains(&id),
        ConfChange::Update(id) => conf_contains(conf, id),
    }
}

/// The membership after `change`. A change that no longer fits (it was validated against an
/// older configuration) leaves the membership unchanged rather than corrupting it.
pub(super) fn conf_apply(conf: &ConfState, change: ConfChange) -> ConfState {
    if !conf_change_valid(conf, change) {
        return conf.clone();
    }
    let mut next = conf.clone();
    match change {
        ConfChange::AddVoter(id) | ConfChange::Promote(id) => {
            next.learners.retain(|learner| *learner != id);
            next.voters.push(id);
        }
        ConfChange::AddLearner(id) => next.learners.push(id),
        ConfChange::Remove(id) => {
            next.voters.retain(|voter| *voter != id);
            next.learners.retain(|learner| *learner != id);
        }
        ConfChange::Update(_) => {}
    }
    next.voters.sort();
    next.learners.sort();
    assert!(
        !next.voters.is_empty(),
        "a change must never remove the last voter"
    );
    assert!(next
        .voters
        .iter()
        .all(|voter| !next.learners.contains(voter)));
    next
}

/// The number of voters that make a majority.
pub(super) fn quorum_size(conf: &ConfState) -> usize {
    conf.voters.len() / 2 + 1
}

/// The highest value that a majority of voters has reached, given each voter's value
/// (`value_of` returns 0 for voters it does not know).
pub(super) fn quorum_value(conf: &ConfState, value_of: impl Fn(NodeId) -> u64) -> u64 {
    assert!(!conf.voters.is_empty());
    // The leader asks on every acknowledgement; a usual cluster's values fit on the stack.
    let mut stack = [0u64; VOTERS_ON_STACK_MAX];
    let mut heap = Vec::new();
    let values: &mut [u64] = if conf.voters.len() <= VOTERS_ON_STACK_MAX {
        &mut stack[..conf.voters.len()]
    } else {
        heap.resize(conf.voters.len(), 0);
        &mut heap
    };
    for (value, id) in values.iter_mut().zip(&conf.voters) {
        *value = value_of(*id);
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[quorum_size(conf) - 1]
}

/// Voter counts up to this rank their values without allocating.
const VOTERS_ON_STACK_MAX: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the quorum value is the largest value a majority reached. Method: compare against a
    /// brute-force oracle (the max v such that at least a majority has >= v) on small inputs,
    /// with voter counts on both sides of `VOTERS_ON_STACK_MAX` (stack and heap ranking).
    #[test]
    fn quorum_value_matches_brute_force() {
        for voter_count in 1..=(VOTERS_ON_STACK_MAX as u64 + 3) {
            let conf = ConfState {
                voters: (1..=voter_count).map(NodeId).collect(),
                learners: vec![],
            };
            for seed in 0..200u64 {
                let value_of = |id: NodeId| (seed * 7 + id.0 * 13 + seed * id.0) % 6;
                let oracle = (0..6u64)
                    .filter(|v| {
                        conf.voters.iter().filter(|id| value_of(**id) >= *v).count()
                            >= quorum_size(&conf)
                    })
                    .max()
                    .unwrap_or(0);
                assert_eq!(quorum_value(&conf, value_of), oracle);
            }
        }
    }

    /// Goal: the codec round-trips and rejects junk. Method: encode every variant, decode, and
    /// feed truncated and padded bytes.
    #[test]
    fn conf_change_codec_round_trips_and_rejects_junk() {
        for change in [
            ConfChange::AddVoter(NodeId(4)),
            ConfChange::AddLearner(NodeId(300)),
            ConfChange::Remove(NodeId(1)),
            ConfChange::Promote(NodeId(u64::MAX)),
            ConfChange::Update(NodeId(2)),
        ] {
            let bytes = encode_conf_change(&change);
            assert_eq!(decode_conf_change(&bytes), Some(change));
            let mut padded = bytes.clone();
            padded.push(0);
            assert_eq!(decode_conf_change(&padded), None);
            assert_eq!(decode_conf_change(&bytes[..bytes.len() - 1]), None);
            let with_context = encode_conf_change_with_context(&change, b"peer urls");
            assert_eq!(
                decode_conf_change_with_context(&with_context),
                Some((change, b"peer urls".to_vec()))
            );
            assert_eq!(decode_conf_change(&with_context), Some(change));
            assert_eq!(encode_conf_change_with_context(&change, b""), bytes);
            assert_eq!(
                decode_conf_change_with_context(&with_context[..with_context.len() - 1]),
                None
            );
        }
    }
}
