//! A leader's view of one follower's log (etcd's `Progress`): how far it matches, what to send
//! next, and the flow-control state that bounds how much is in flight.
//!
//! It does not send anything; the leader's replication code reads and updates it.
//!
//! NB: `inflight_last_indexes` counts appends, not bytes; a byte budget would need entry sizes.

use std::collections::VecDeque;

use crate::types::{LogIndex, NodeId};

/// How the leader currently replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProgressState {
    /// The follower's match is unknown: one append at a time, paused until answered.
    Probe {
        /// An append is outstanding; wait for its answer or the next heartbeat response.
        paused: bool,
    },
    /// The follower is known to match: stream appends, at most `inflight_appends_count_max`.
    Replicate,
    /// A snapshot at `index` is on its way; send nothing until it is answered, or until the
    /// follower has answered enough heartbeats that the snapshot or its answer must be lost.
    Snapshot {
        /// The snapshot's index.
        index: LogIndex,
        /// Heartbeat responses from the follower since the snapshot was sent.
        heartbeats_answered_count: u32,
    },
}

/// The leader's knowledge of one follower.
#[derive(Clone, Debug)]
pub(super) struct Progress {
    /// Invariant: `match_index < next_index`.
    pub(super) match_index: LogIndex,
    pub(super) next_index: LogIndex,
    pub(super) state: ProgressState,
    /// Last index of each append sent in the replicate state and not yet acknowledged.
    pub(super) inflight_last_indexes: VecDeque<LogIndex>,
    /// Heard from since the last check-quorum round.
    pub(super) recent_active: bool,
}

impl Progress {
    pub(super) fn new(next_index: LogIndex) -> Progress {
        assert!(next_index.0 >= 1);
        Progress {
            match_index: LogIndex(0),
            next_index,
            state: ProgressState::Probe { paused: false },
            inflight_last_indexes: VecDeque::new(),
            recent_active: false,
        }
    }

    /// Whether the leader may send an append now.
    pub(super) fn is_paused(&self, inflight_appends_count_max: usize) -> bool {
        match self.state {
            ProgressState::Probe { paused } => paused,
            ProgressState::Replicate => {
                self.inflight_last_indexes.len() >= inflight_appends_count_max
            }
            ProgressState::Snapshot { .. } => true,
        }
    }

    pub(super) fn become_probe(&mut self) {
        // After a snapshot the follower holds at least the snapshot's index.
        let floor = match self.state {
            ProgressState::Snapshot { index, .. } => index.next(),
            _ => LogIndex(0),
        };
        self.state = ProgressState::Probe { paused: false };
        self.next_index = self.match_index.next().max(floor);
        self.inflight_last_indexes.clear();
    }

    pub(super) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index.next();
        self.inflight_last_indexes.clear();
    }

    pub(super) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot {
            index,
            heartbeats_answered_count: 0,
        };
        self.inflight_last_indexes.clear();
    }

    /// The follower matches through `index`; returns false if that is old news.
    pub(super) fn update_match(&mut self, index: LogIndex) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
        }
        self.next_index = self.next_index.max(index.next());
        while self
            .inflight_last_indexes
            .front()
            .is_some_and(|last| *last <= index)
        {
            self.inflight_last_indexes.pop_front();
        }
        if let ProgressState::Probe { paused } = &mut self.state {
            *paused = false;
        }
        assert!(self.match_index < self.next_index);
        updated
    }

    /// The follower rejected an append at `rejected_index`; move `next_index` back to
    /// `candidate_next` (computed from its hint). Returns false if the rejection is stale.
    pub(super) fn rejected(&mut self, rejected_index: LogIndex, candidate_next: LogIndex) -> bool {
        match self.state {
            // In replicate, only a rejection beyond the match point is news.
            ProgressState::Replicate => {
                if rejected_index <= self.match_index {
                    return false;
                }
                self.become_probe();
                self.next_index = candidate_next
                    .min(rejected_index)
                    .max(self.match_index.next());
                true
            }
            // In probe, only the answer to the one outstanding probe counts.
            ProgressState::Probe { .. } => {
                if self.next_index.0 == 0 || rejected_index.0 + 1 != self.next_index.0 {
                    return false;
                }
                self.next_index = candidate_next
                    .min(rejected_index)
                    .max(self.match_index.next());
                self.state = ProgressState::Probe { paused: false };
                true
            }
            ProgressState::Snapshot { .. } => false,
        }
    }

    /// Record an append ending at `last_index` just sent.
    pub(super) fn sent_append(
        &mut self,
        last_index: Option<LogIndex>,
        inflight_appends_count_max: usize,
    ) {
        match &mut self.state {
            ProgressState::Replicate => {
                if let Some(last) = last_index {
                    self.next_index = last.next();
                    self.inflight_last_indexes.push_back(last);
                    assert!(self.inflight_last_indexes.len() <= inflight_appends_count_max);
                }
            }
            ProgressState::Probe { paused } => *paused = true,
            ProgressState::Snapshot { .. } => {
                unreachable!("no appends while a snapshot is in flight")
            }
        }
    }
}

/// The leader's `Progress` per member, in id order: a short sorted Vec, since clusters have a
/// handful of members and the leader looks one up on every acknowledgement (a BTreeMap's node
/// walk costs more than scanning a few ids).
///
/// Invariant: ids strictly increase; at most one entry per member.
#[derive(Clone, Debug, Default)]
pub(super) struct PeerProgress {
    entries: Vec<(NodeId, Progress)>,
}

impl PeerProgress {
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    fn position(&self, id: NodeId) -> Result<usize, usize> {
        self.entries
            .binary_search_by_key(&id, |(member, _)| *member)
    }

    /// A plain scan: a cluster's handful of members is shorter than a binary search's setup.
    pub(super) fn get(&self, id: &NodeId) -> Option<&Progress> {
        let (_, progress) = self.entries.iter().find(|(member, _)| member == id)?;
        Some(progress)
    }

    pub(super) fn get_mut(&mut self, id: &NodeId) -> Option<&mut Progress> {
        let (_, progress) = self.entries.iter_mut().find(|(member, _)| member == id)?;
        Some(progress)
    }

    pub(super) fn contains_key(&self, id: &NodeId) -> bool {
        self.position(*id).is_ok()
    }

    /// Adds or replaces the progress of `id`, keeping id order.
    pub(super) fn insert(&mut self, id: NodeId, progress: Progress) {
        match self.position(id) {
            Ok(position) => self.entries[position].1 = progress,
            Err(position) => self.entries.insert(position, (id, progress)),
        }
        assert!(
            self.entries.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "peer progress must stay in id order"
        );
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&NodeId, &mut Progress) -> bool) {
        self.entries.retain_mut(|(id, progress)| keep(id, progress));
    }

    /// The members tracked, in id order.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The member at `position` in id order (positions are stable while no member is added or
    /// removed, so a caller may walk them while sending).
    pub(super) fn id_at(&self, position: usize) -> NodeId {
        self.entries[position].0
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&NodeId, &mut Progress)> {
        self.entries
            .iter_mut()
            .map(|(id, progress)| (&*id, progress))
    }
}

impl core::ops::Index<&NodeId> for PeerProgress {
    type Output = Progress;

    fn index(&self, id: &NodeId) -> &Progress {
        self.get(id).expect("no progress for this member")
    }
}
