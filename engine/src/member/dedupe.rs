//! Exactly-once application of proposals. A proposal can reach the log twice: a network that
//! duplicates a forwarded proposal makes the leader append it twice, and a client retry through
//! another member would too. Applying both would bump a key's version and revision twice for one
//! request, so the member remembers which proposal ids it applied and skips repeats.
//!
//! This is replicated state: every member makes the same decisions from the same log, and the
//! state travels in snapshots. It does not deduplicate client requests that carry no proposal id
//! (two separate requests with equal content are two writes, as in etcd).

use std::collections::{BTreeMap, BTreeSet};

use super::proposal::ProposalId;
use crate::types::{LogIndex, NodeId};

/// Recent sequences remembered per proposer incarnation. Anything older counts as applied.
const SEQUENCES_PER_SOURCE_MAX: usize = 1024;

/// Proposer incarnations remembered; the least recently applied is forgotten first.
const SOURCES_COUNT_MAX: usize = 64;

/// What one proposer incarnation has had applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
struct Window {
    /// Every sequence at or below this is treated as applied. Rejecting a late first copy is
    /// safe: its client is never told it succeeded (the request times out as unknown).
    floor: u64,
    /// Applied sequences above `floor`. Invariant: all > floor, at most
    /// `SEQUENCES_PER_SOURCE_MAX`.
    recent: BTreeSet<u64>,
    /// The log index of the last application, for eviction.
    last_index: LogIndex,
}

/// The applied proposal ids, per proposer incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(super) struct AppliedProposals {
    sources: BTreeMap<(NodeId, u64), Window>,
}

impl AppliedProposals {
    /// Records that the proposal at `index` is being applied. Returns false if it was applied
    /// before, in which case the caller must skip it.
    pub(super) fn first_application(&mut self, id: ProposalId, index: LogIndex) -> bool {
        let source = (id.origin, id.incarnation);
        if !self.sources.contains_key(&source) && self.sources.len() >= SOURCES_COUNT_MAX {
            self.evict_oldest_source();
        }
        let window = self.sources.entry(source).or_default();
        if id.sequence <= window.floor || !window.recent.insert(id.sequence) {
            return false;
        }
        window.last_index = index;
        if window.recent.len() > SEQUENCES_PER_SOURCE_MAX {
            let oldest = window
                .recent
                .pop_first()
                .expect("over the limit, so not empty");
            window.floor = oldest;
        }
        assert!(window
            .recent
            .first()
            .is_none_or(|first| *first > window.floor));
        assert!(window.recent.len() <= SEQUENCES_PER_SOURCE_MAX);
        true
    }

    fn evict_oldest_source(&mut self) {
        let oldest = self
            .sources
            .iter()
            .min_by_key(|(source, window)| (window.last_index, **source))
            .map(|(source, _)| *source)
            .expect("evicting from a full map");
        self.sources.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: u64, sequence: u64) -> ProposalId {
        ProposalId {
            origin: NodeId(origin),
            incarnation: 7,
            sequence,
        }
    }

    /// Goal: a repeated proposal id is refused, distinct ones (in any order) are not, and the
    /// memory stays bounded while old sequences stay refused. Method: apply ids out of order,
    /// repeat some, then push past the per-source limit.
    #[test]
    fn repeats_are_refused_and_memory_is_bounded() {
        let mut applied = AppliedProposals::default();
        assert!(applied.first_application(id(1, 2), LogIndex(1)));
        assert!(applied.first_application(id(1, 1), LogIndex(2)));
        assert!(!applied.first_application(id(1, 2), LogIndex(3)));
        assert!(
            applied.first_application(id(2, 2), LogIndex(4)),
            "another origin"
        );
        for sequence in 3..(SEQUENCES_PER_SOURCE_MAX as u64 + 10) {
            assert!(applied.first_application(id(1, sequence), LogIndex(sequence + 4)));
        }
        let window = &applied.sources[&(NodeId(1), 7)];
        assert_eq!(window.recent.len(), SEQUENCES_PER_SOURCE_MAX);
        assert!(
            !applied.first_application(id(1, 1), LogIndex(9999)),
            "below the floor"
        );
        for origin in 3..(SOURCES_COUNT_MAX as u64 + 5) {
            assert!(applied.first_application(id(origin, 1), LogIndex(10_000 + origin)));
        }
        assert_eq!(applied.sources.len(), SOURCES_COUNT_MAX);
    }
}
