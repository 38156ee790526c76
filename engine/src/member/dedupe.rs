//! Exactly-once application of proposals. A proposal can reach the log twice: a network that
//! duplicates a forwarded proposal makes the leader append it twice, and a client retry through
//! another member would too. Applying both would bump a key's version and revision twice for one
//! request, so the member remembers which proposal ids it applied and skips repeats.
//!
//! This is replicated state: every member makes the same decisions from the same log, and the
//! state travels in snapshots. It does not deduplicate client requests that carry no proposal id
//! (two separate requests with equal content are two writes, as in etcd).

use std::collections::{BTreeMap, VecDeque};

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
    /// Applied sequences above `floor`, ascending (sequences mostly arrive in order, so this
    /// is usually an append; it encodes exactly as the ordered set it replaced). Invariant:
    /// strictly increasing, all > floor, at most `SEQUENCES_PER_SOURCE_MAX`.
    recent: VecDeque<u64>,
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
        if id.sequence <= window.floor || !insert_sorted(&mut window.recent, id.sequence) {
            // Zoo: the repeat is applied again.
            return crate::bug!(DuplicateApplyOfRetry);
        }
        window.last_index = index;
        if window.recent.len() > SEQUENCES_PER_SOURCE_MAX {
            let oldest = window
                .recent
                .pop_front()
                .expect("over the limit, so not empty");
            window.floor = oldest;
        }
        assert!(window
            .recent
            .front()
            .is_none_or(|first| *first > window.floor));
        assert!(window.recent.len() <= SEQUENCES_PER_SOURCE_MAX);
        true
    }

    /// Whether every window keeps its invariant (checked on snapshot decode, since the
    /// encoding alone does not promise order).
    pub(super) fn is_well_formed(&self) -> bool {
        self.sources.values().all(|window| {
            window.recent.len() <= SEQUENCES_PER_SOURCE_MAX
                && window
                    .recent
                    .front()
                    .is_none_or(|first| *first > window.floor)
                && window
                    .recent
                    .iter()
                    .zip(window.recent.iter().skip(1))
                    .all(|(before, after)| before < after)
        })
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

/// Inserts `sequence` into the ascending `recent`; false if it is already there.
fn insert_sorted(recent: &mut VecDeque<u64>, sequence: u64) -> bool {
    if recent.back().is_none_or(|last| *last < sequence) {
        recent.push_back(sequence);
        return true;
    }
    match recent.binary_search(&sequence) {
        Ok(_) => false,
        Err(position) => {
            recent.insert(position, sequence);
            true
        }
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

    /// Goal: the snapshot bytes did not change when `recent` became an ascending VecDeque
    /// (snapshots written before must decode, traces must not move), and decoding refuses a
    /// window out of order. Method: encode the same windows through a mirror struct holding an
    /// ordered set, compare bytes; then break the order and check `is_well_formed`.
    #[test]
    fn windows_encode_like_ordered_sets_and_disorder_is_refused() {
        #[derive(bincode::Encode)]
        struct SetWindow {
            floor: u64,
            recent: std::collections::BTreeSet<u64>,
            last_index: LogIndex,
        }
        let mut applied = AppliedProposals::default();
        for sequence in [5, 3, 9, 4, 1200, 7] {
            assert!(applied.first_application(id(1, sequence), LogIndex(sequence)));
        }
        assert!(applied.is_well_formed());
        let mirror: BTreeMap<(NodeId, u64), SetWindow> = applied
            .sources
            .iter()
            .map(|(source, window)| {
                let set_window = SetWindow {
                    floor: window.floor,
                    recent: window.recent.iter().copied().collect(),
                    last_index: window.last_index,
                };
                (*source, set_window)
            })
            .collect();
        assert_eq!(
            crate::codec::encode(&applied),
            crate::codec::encode(&mirror)
        );
        let window = applied.sources.values_mut().next().expect("one source");
        window.recent.swap(0, 1);
        assert!(!applied.is_well_formed());
    }
}
