//! The per-key history of the MVCC store: every retained modification of one key (puts and
//! deletion tombstones) in revision order, with the value stored inline, and the key-range
//! helper that turns etcd's `key`/`range_end` pair into map bounds.
//!
//! This module knows nothing about requests, txns or events; it answers "what did this key look
//! like at revision R" and trims history on compaction. Generations are implicit: a generation
//! starts at a put that follows a tombstone (or at the first put) and ends at the next tombstone.

use core::ops::Bound;

use crate::kv::KeyValue;
use crate::types::{LeaseId, Revision};

/// A position in the store's history: the main revision of a write request and the index of the
/// change within it (etcd's `(main, sub)`). Ordered by main, then sub.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, bincode::Encode, bincode::Decode,
)]
pub(crate) struct ChangeRevision {
    /// The revision of the write request (what clients see as `mod_revision`).
    pub(crate) main: i64,
    /// The change's position inside that request, from 0.
    pub(crate) sub: u32,
}

/// The contents of a key written by a put.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct PutRecord {
    pub(crate) value: Vec<u8>,
    pub(crate) lease: LeaseId,
    /// Main revision of the put that started this generation.
    pub(crate) create_revision: i64,
    /// Puts in this generation up to and including this one; >= 1.
    pub(crate) version: i64,
}

/// One modification of a key: a put (`Some`) or a deletion tombstone (`None`).
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct Change {
    pub(crate) revision: ChangeRevision,
    pub(crate) put: Option<PutRecord>,
}

/// The retained history of one key.
///
/// Invariant: `changes` is non-empty, strictly increasing in revision, starts with a put, and
/// never holds two tombstones in a row (a key is only deleted while it exists).
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct KeyHistory {
    pub(crate) changes: Vec<Change>,
}

impl KeyHistory {
    /// The index of the latest change at or below main revision `at`, if any.
    pub(crate) fn index_at(&self, at: i64) -> Option<usize> {
        let after = self
            .changes
            .partition_point(|change| change.revision.main <= at);
        after.checked_sub(1)
    }

    /// The put that is visible at main revision `at`, with its revision, if the key exists then.
    pub(crate) fn live_at(&self, at: i64) -> Option<(ChangeRevision, &PutRecord)> {
        let change = &self.changes[self.index_at(at)?];
        change.put.as_ref().map(|put| (change.revision, put))
    }

    /// The index of the change at exactly `revision`.
    pub(crate) fn index_of(&self, revision: ChangeRevision) -> Option<usize> {
        self.changes
            .binary_search_by(|change| change.revision.cmp(&revision))
            .ok()
    }

    /// Appends a put at `revision`, continuing the current generation if the key exists.
    pub(crate) fn push_put(&mut self, revision: ChangeRevision, value: Vec<u8>, lease: LeaseId) {
        let (create_revision, version) = match self.changes.last() {
            Some(Change {
                put: Some(last), ..
            }) => (last.create_revision, last.version + 1),
            _ => (revision.main, 1),
        };
        self.push(Change {
            revision,
            put: Some(PutRecord {
                value,
                lease,
                create_revision,
                version,
            }),
        });
    }

    /// Appends a tombstone at `revision`. The key must exist.
    pub(crate) fn push_tombstone(&mut self, revision: ChangeRevision) {
        assert!(
            matches!(self.changes.last(), Some(Change { put: Some(_), .. })),
            "tombstone of a key that does not exist"
        );
        self.push(Change {
            revision,
            put: None,
        });
    }

    fn push(&mut self, change: Change) {
        if let Some(last) = self.changes.last() {
            assert!(
                last.revision < change.revision,
                "key history must grow in revision order"
            );
        }
        self.changes.push(change);
    }

    /// Drops every change that no read at or above main revision `at` can see: all changes
    /// before the latest one at or below `at`, and that one too if it is a tombstone. Returns the
    /// dropped revisions (for the revision log). The history may become empty.
    pub(crate) fn compact(&mut self, at: i64) -> Vec<ChangeRevision> {
        let Some(keep_from) = self.index_at(at) else {
            return Vec::new();
        };
        let drop_count = if self.changes[keep_from].put.is_none() {
            keep_from + 1
        } else {
            keep_from
        };
        let dropped: Vec<ChangeRevision> = self
            .changes
            .drain(..drop_count)
            .map(|change| change.revision)
            .collect();
        if let Some(first) = self.changes.first() {
            // A tombstone never follows a tombstone, so the new head is a put.
            assert!(
                first.put.is_some(),
                "compacted history must start with a put"
            );
        }
        dropped
    }

    /// Checks the type's invariant and the version bookkeeping (used on snapshot decode).
    pub(crate) fn is_well_formed(&self, current: i64) -> bool {
        let Some(first) = self.changes.first() else {
            return false;
        };
        let ordered = self
            .changes
            .windows(2)
            .all(|pair| pair[0].revision < pair[1].revision);
        let no_double_tombstone = self
            .changes
            .windows(2)
            .all(|pair| pair[0].put.is_some() || pair[1].put.is_some());
        let in_past = self
            .changes
            .iter()
            .all(|change| change.revision.main <= current);
        let head_ok = first.put.as_ref().is_some_and(|put| {
            put.version >= 1
                && put.create_revision >= 1
                && put.create_revision <= first.revision.main
        });
        // Within a generation versions count up from the creation; a new generation restarts.
        let versions_ok = self
            .changes
            .windows(2)
            .all(|pair| match (&pair[0].put, &pair[1].put) {
                (Some(before), Some(after)) => {
                    after.version == before.version + 1
                        && after.create_revision == before.create_revision
                }
                (None, Some(after)) => {
                    after.version == 1 && after.create_revision == pair[1].revision.main
                }
                _ => true,
            });
        head_ok && ordered && no_double_tombstone && in_past && versions_ok
    }
}

/// Builds the client-visible key-value of a put.
pub(crate) fn key_value(
    key: &[u8],
    revision: ChangeRevision,
    put: &PutRecord,
    with_value: bool,
) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: Revision(put.create_revision),
        mod_revision: Revision(revision.main),
        version: put.version,
        value: if with_value {
            put.value.clone()
        } else {
            Vec::new()
        },
        lease: put.lease,
    }
}

/// Map bounds over byte-string keys.
pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// etcd's key range: `end` empty = the single key `start`; `end == [0]` = every key `>= start`;
/// otherwise `[start, end)`, which is empty when `end <= start`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRange<'a> {
    start: &'a [u8],
    end: &'a [u8],
}

impl<'a> KeyRange<'a> {
    /// The range named by a request's `key` and `range_end`.
    pub(crate) fn new(start: &'a [u8], end: &'a [u8]) -> KeyRange<'a> {
        KeyRange { start, end }
    }

    fn is_single(&self) -> bool {
        self.end.is_empty()
    }

    fn is_unbounded(&self) -> bool {
        self.end == [0]
    }

    /// Whether `key` lies in the range.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        if self.is_single() {
            key == self.start
        } else if self.is_unbounded() {
            key >= self.start
        } else {
            key >= self.start && key < self.end
        }
    }

    /// Map bounds for the range, or `None` when it holds no key (BTreeMap::range panics on
    /// inverted bounds, so the empty case must never reach it).
    pub(crate) fn bounds(&self) -> Option<KeyBounds<'a>> {
        if self.is_single() {
            Some((Bound::Included(self.start), Bound::Included(self.start)))
        } else if self.is_unbounded() {
            Some((Bound::Included(self.start), Bound::Unbounded))
        } else if self.end > self.start {
            Some((Bound::Included(self.start), Bound::Excluded(self.end)))
        } else {
            None
        }
    }
}
