//! The in-memory raft log: the compaction point (snapshot metadata), the entries after it, and
//! the three positions that move along it: what was handed to a persist batch, what is durable,
//! and what is committed and applied.
//!
//! It does not decide anything about the protocol (who may append, when to commit); it only keeps
//! the log's shape valid and asserts it.

use crate::raft::{Entry, Snapshot, SnapshotMeta};
use crate::types::{LogIndex, Term};

/// The raft log of one member.
#[derive(Clone, Debug)]
pub(super) struct RaftLog {
    /// The compaction point. Invariant: `snapshot_meta.index <= applied_index`.
    snapshot_meta: SnapshotMeta,
    /// The latest full snapshot, kept to send to lagging followers (None after a restart until
    /// the host passes it again).
    snapshot_data: Option<Snapshot>,
    /// Invariant: `entries[i].index == snapshot_meta.index + 1 + i`, terms non-decreasing.
    entries: Vec<Entry>,
    /// Invariant: `applied_index <= commit_index <= last_index()`.
    commit_index: LogIndex,
    applied_index: LogIndex,
    /// The first index not yet handed to a persist batch.
    unbatched_from_index: LogIndex,
    /// The highest index known durable and still part of this log.
    persisted_index: LogIndex,
}

impl RaftLog {
    /// A log recovered from disk: everything given is durable.
    pub(super) fn restored(
        snapshot_meta: SnapshotMeta,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) -> RaftLog {
        for (offset, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index.0,
                snapshot_meta.index.0 + 1 + offset as u64,
                "restored log has a gap"
            );
            assert!(
                entry.term >= snapshot_meta.term,
                "restored log goes back in term"
            );
        }
        let applied_index = snapshot_meta.index;
        let mut log = RaftLog {
            snapshot_meta,
            snapshot_data: None,
            entries,
            commit_index: LogIndex(0),
            applied_index,
            unbatched_from_index: LogIndex(0),
            persisted_index: LogIndex(0),
        };
        let last_index = log.last_index();
        log.unbatched_from_index = last_index.next();
        log.persisted_index = last_index;
        // The snapshot is at an applied, hence committed, index even if the hard state lags.
        log.commit_index = LogIndex(commit.0.max(applied_index.0).min(last_index.0));
        log
    }

    pub(super) fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot_meta
    }

    pub(super) fn snapshot_data(&self) -> Option<&Snapshot> {
        self.snapshot_data.as_ref()
    }

    pub(super) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(super) fn first_index(&self) -> LogIndex {
        self.snapshot_meta.index.next()
    }

    pub(super) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot_meta.index.0 + self.entries.len() as u64)
    }

    pub(super) fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.snapshot_meta.term, |entry| entry.term)
    }

    pub(super) fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    pub(super) fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    pub(super) fn persisted_index(&self) -> LogIndex {
        self.persisted_index
    }

    /// The term at `index`, or None if it is compacted away (before the snapshot) or absent.
    pub(super) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_meta.index {
            return Some(self.snapshot_meta.term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    pub(super) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snapshot_meta.index || index > self.last_index() {
            return None;
        }
        let entry = &self.entries[(index.0 - self.snapshot_meta.index.0 - 1) as usize];
        assert_eq!(entry.index, index);
        Some(entry)
    }

    /// Entries from `from` through at most `count_max` entries, or None if `from` is compacted.
    pub(super) fn entries_from(&self, from: LogIndex, count_max: usize) -> Option<Vec<Entry>> {
        if from <= self.snapshot_meta.index {
            return None;
        }
        let offset = (from.0 - self.snapshot_meta.index.0 - 1) as usize;
        let end = self.entries.len().min(offset.saturating_add(count_max));
        Some(
            self.entries
                .get(offset..end)
                .map_or_else(Vec::new, <[Entry]>::to_vec),
        )
    }

    /// Whether a candidate whose log ends at `last_term/last_index` is at least as up to date.
    pub(super) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The first index of the run of entries with the same term as `index` (never at or below
    /// the commit index, which no leader can contradict).
    pub(super) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let term = self.term(index).expect("hint for an index this log holds");
        let mut first = index;
        while first.0 > self.commit_index.0 + 1 && self.term(LogIndex(first.0 - 1)) == Some(term) {
            first = LogIndex(first.0 - 1);
        }
        first
    }

    /// A leader appends its own new entry.
    pub(super) fn append_one(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index().next());
        assert!(entry.term >= self.last_term());
        self.entries.push(entry);
    }

    /// A follower accepts entries following `prev`; returns the index of the last new entry, or
    /// None if its log does not contain `prev`.
    pub(super) fn try_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        entries: &[Entry],
    ) -> Option<LogIndex> {
        if self.term(prev_index) != Some(prev_term) {
            return None;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        // Skip what already matches; duplicates and reordered appends must not truncate.
        let conflict = entries
            .iter()
            .find(|entry| self.term(entry.index) != Some(entry.term));
        if let Some(first_new) = conflict {
            assert!(
                first_new.index > self.commit_index,
                "a leader contradicted a committed entry"
            );
            self.truncate_after(LogIndex(first_new.index.0 - 1));
            let start = (first_new.index.0 - prev_index.0 - 1) as usize;
            for entry in &entries[start..] {
                self.append_one(entry.clone());
            }
        } else if crate::bug!(TruncateOnStaleAppend) && last_new < self.last_index() {
            // hashicorp/raft #87: a stale (duplicated or reordered) append whose entries all
            // match still cuts the log after them, dropping entries this follower acknowledged.
            self.truncate_after(last_new);
        }
        Some(last_new)
    }

    fn truncate_after(&mut self, index: LogIndex) {
        assert!(index >= self.snapshot_meta.index);
        self.entries
            .truncate((index.0 - self.snapshot_meta.index.0) as usize);
        self.unbatched_from_index = self.unbatched_from_index.min(index.next());
        self.persisted_index = self.persisted_index.min(index);
    }

    pub(super) fn commit_to(&mut self, index: LogIndex) {
        if index <= self.commit_index {
            return;
        }
        assert!(
            index <= self.last_index(),
            "commit {index} beyond last {}",
            self.last_index()
        );
        self.commit_index = index;
    }

    /// Takes the entries not yet handed to a persist batch.
    pub(super) fn take_unbatched(&mut self) -> Vec<Entry> {
        let from = self.unbatched_from_index.max(self.first_index());
        self.unbatched_from_index = self.last_index().next();
        self.entries_from(from, usize::MAX).unwrap_or_default()
    }

    /// Takes every entry after the compaction point (a batch that writes a snapshot rewrites the
    /// log after it).
    pub(super) fn take_all_after_snapshot(&mut self) -> Vec<Entry> {
        self.unbatched_from_index = self.last_index().next();
        self.entries.clone()
    }

    pub(super) fn has_unbatched(&self) -> bool {
        self.unbatched_from_index <= self.last_index()
    }

    /// A batch that ended at `index/term` is durable; it counts only if that entry is still ours.
    pub(super) fn persisted_to(&mut self, index: LogIndex, term: Term) {
        if self.term(index) == Some(term) && index > self.persisted_index {
            self.persisted_index = index;
        }
    }

    /// The committed entries not yet applied through `through` (raft passes the committed,
    /// locally durable index), which become applied.
    pub(super) fn take_committed(&mut self, through: LogIndex) -> Vec<Entry> {
        assert!(
            through <= self.commit_index,
            "applying beyond the commit index"
        );
        if through <= self.applied_index {
            return Vec::new();
        }
        let count = (through.0 - self.applied_index.0) as usize;
        let entries = self
            .entries_from(self.applied_index.next(), count)
            .expect("applied entries are never compacted");
        assert_eq!(entries.len(), count);
        self.applied_index = through;
        entries
    }

    /// Whether a committed, unapplied entry satisfies `predicate`.
    pub(super) fn unapplied_committed_any(&self, predicate: impl Fn(&Entry) -> bool) -> bool {
        let count = (self.commit_index.0 - self.applied_index.0) as usize;
        self.entries_from(self.applied_index.next(), count)
            .unwrap_or_default()
            .iter()
            .any(predicate)
    }

    /// The application snapshotted at an applied index: drop the log through it.
    pub(super) fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        assert!(
            index <= self.applied_index,
            "snapshot at {index} beyond applied {}",
            self.applied_index
        );
        assert!(
            index >= self.snapshot_meta.index,
            "snapshot goes back before the compaction point"
        );
        assert_eq!(
            self.term(index),
            Some(snapshot.meta.term),
            "snapshot term differs from the log"
        );
        self.entries
            .drain(..(index.0 - self.snapshot_meta.index.0) as usize);
        self.snapshot_meta = snapshot.meta.clone();
        self.snapshot_data = Some(snapshot);
        assert!(self
            .entries
            .first()
            .is_none_or(|entry| entry.index == index.next()));
    }

    /// Replace everything with a snapshot from the leader (whose index is beyond our commit).
    pub(super) fn restore(&mut self, snapshot: Snapshot) {
        assert!(snapshot.meta.index > self.commit_index);
        self.entries.clear();
        self.snapshot_meta = snapshot.meta.clone();
        self.snapshot_data = Some(snapshot);
        self.commit_index = self.snapshot_meta.index;
        self.unbatched_from_index = self.snapshot_meta.index.next();
        self.persisted_index = self.persisted_index.min(self.snapshot_meta.index);
    }

    /// The restored snapshot was persisted and handed out for apply.
    pub(super) fn snapshot_applied(&mut self, index: LogIndex, term: Term) {
        if self.term(index) == Some(term) {
            self.persisted_index = self.persisted_index.max(index);
            self.applied_index = self.applied_index.max(index);
        }
    }
}
