//! "Absent at S" observations for the witness attempt (`pin`): a key that a latest read at
//! revision S did not return (the read had no limit, so it listed every key of its span), or
//! whose recorded lifetime starts at revision C (so it was absent at C - 1), must be gone at S.
//! When the witness's store holds the key at an earlier revision R, something in (R, S] must
//! remove it: a delete, or the expiry or revoke of the lease it is attached to, or, for a key
//! attached to no lease, a put with a lease and then that lease's end (two revisions). Where
//! too few revisions are left before S for that (the others are pinned to definite writes that
//! delete nothing), or where nothing in the history could ever remove the key, the witness
//! prunes the order at once instead of finding out at S after filling every gap below it.
//!
//! Sound for the witness only, which never decides a violation: a rejected order is one the
//! general search would reject later anyway, but the counts here are coarse (any delete of the
//! key counts as possible, whenever it was called), so this only narrows.

use super::prepare::SearchOp;
use crate::model::{KeyId, Op, Rec, Store};

/// Removals that cannot happen: nothing in the history deletes the key or attaches it to a
/// lease.
const NEVER: u8 = u8::MAX;

/// The absences and what removing each key takes (see the module doc).
pub(crate) struct Absences {
    /// Per key id, the revisions at which the key was observed absent, sorted and distinct.
    absent_at: Vec<Vec<i64>>,
    /// Per key id, how many revisions removing it takes while it has no lease: 1 when some
    /// operation deletes it, 2 when some put attaches it to a lease, `NEVER` otherwise.
    removal_revisions: Vec<u8>,
    /// (R, key, capacity): when the store is at revision R, the key's next absence S leaves
    /// only `capacity` (0 or 1) revisions in (R, S] not pinned to a definite write that
    /// deletes nothing. Sorted; for one (R, key) only the nearest absence is kept.
    windows: Vec<(i64, KeyId, u8)>,
}

impl Absences {
    /// Collects the absences that `ops` (the witness's, with definite results) and the
    /// recorded lifetimes' create revisions show.
    pub(crate) fn build(ops: &[SearchOp], creates: &[Vec<i64>], key_count: usize) -> Absences {
        let mut absent_at: Vec<Vec<i64>> = vec![Vec::new(); key_count];
        for op in ops.iter().filter(|op| !op.unknown) {
            let (
                Op::Range {
                    lo,
                    hi,
                    revision: 0,
                    limit: 0,
                },
                Some(Rec::Range {
                    revision: Some(at),
                    kvs: Some(kvs),
                    count,
                }),
            ) = (&op.op, op.rec.as_deref())
            else {
                continue;
            };
            // A count beyond the kvs listed (a count-only read) hides which keys exist.
            if count.is_some_and(|count| count != kvs.len() as i64) {
                continue;
            }
            // The kvs of a range come in key order, so one merge walk finds the missing keys.
            let mut listed = kvs.iter().map(|kv| kv.key).peekable();
            for key in *lo..*hi {
                while listed.next_if(|&listed_key| listed_key < key).is_some() {}
                if listed.next_if_eq(&key).is_none() {
                    absent_at[key as usize].push(*at);
                }
            }
        }
        for (key, list) in creates.iter().enumerate() {
            absent_at[key].extend(list.iter().filter(|&&create| create > 1).map(|c| c - 1));
        }
        for list in &mut absent_at {
            list.sort_unstable();
            list.dedup();
        }
        let mut removal_revisions = vec![NEVER; key_count];
        let mut ever_put = vec![false; key_count];
        for op in ops {
            note_removals(&op.op, &mut removal_revisions, &mut ever_put);
        }
        let keeping = nondeleting_revisions(ops);
        let mut windows = Vec::new();
        for (key, list) in absent_at.iter().enumerate() {
            // A key no operation puts is never in the store.
            if !ever_put[key] {
                continue;
            }
            for &absent in list {
                // Walk down from S: each revision not pinned to a deleting-nothing write adds
                // one to the capacity; at 2 every removal fits, so the window ends.
                let mut capacity: u8 = 0;
                let mut revision = absent;
                while revision >= 1 && capacity < 2 {
                    windows.push((revision, key as KeyId, capacity));
                    if keeping.binary_search(&revision).is_err() {
                        capacity += 1;
                    }
                    revision -= 1;
                }
            }
        }
        windows.sort_unstable();
        windows.dedup_by_key(|&mut (revision, key, _)| (revision, key));
        Absences {
            absent_at,
            removal_revisions,
            windows,
        }
    }

    /// Whether the store, just made revision R by a write that changed `changed`, can still
    /// remove every key it holds before that key's next absence.
    pub(crate) fn admits(&self, store: &Store, changed: &[KeyId]) -> bool {
        let revision = store.revision();
        let removable_in = |key: KeyId, capacity: u8| {
            store.get(key).is_none_or(|state| {
                let needed = if state.lease != 0 {
                    1
                } else {
                    self.removal_revisions[key as usize]
                };
                needed <= capacity
            })
        };
        // A key that nothing can remove must not exist before any absence.
        let forever = changed.iter().all(|&key| {
            let list = &self.absent_at[key as usize];
            list.last().is_none_or(|&last| last < revision) || removable_in(key, 2)
        });
        if !forever {
            return false;
        }
        let start = self
            .windows
            .partition_point(|&(listed, _, _)| listed < revision);
        self.windows[start..]
            .iter()
            .take_while(|&&(listed, _, _)| listed == revision)
            .all(|&(_, key, capacity)| removable_in(key, capacity))
    }
}

/// Lowers each key's removal count by what `op` could do to it (see `removal_revisions`).
/// Also marks the keys `op` puts in `ever_put`.
fn note_removals(op: &Op, removal_revisions: &mut [u8], ever_put: &mut [bool]) {
    match op {
        Op::Delete { lo, hi, .. } => {
            for key in *lo..*hi {
                removal_revisions[key as usize] = 1;
            }
        }
        Op::Put { key, lease, .. } => {
            ever_put[*key as usize] = true;
            if *lease != 0 {
                let entry = &mut removal_revisions[*key as usize];
                *entry = (*entry).min(2);
            }
        }
        Op::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .for_each(|inner| note_removals(inner, removal_revisions, ever_put)),
        _ => {}
    }
}

/// Revisions made by a definite (or pinned) write that cannot delete any key: a put, or a txn
/// with no delete in either branch. Sorted and distinct.
fn nondeleting_revisions(ops: &[SearchOp]) -> Vec<i64> {
    let mut revisions = Vec::new();
    for op in ops.iter().filter(|op| !op.unknown && !deletes(&op.op)) {
        let made = match (&op.op, op.rec.as_deref()) {
            // Pinned: the bound is the revision before the one it made.
            (Op::Put { .. }, None) if op.revision_lo == op.revision_hi => op.revision_hi + 1,
            (
                _,
                Some(Rec::Put {
                    revision: Some(made),
                    ..
                }),
            ) => *made,
            (
                Op::Txn {
                    success, failure, ..
                },
                Some(Rec::Txn {
                    revision: Some(made),
                    succeeded: Some(succeeded),
                    ..
                }),
            ) => {
                let branch = if *succeeded { success } else { failure };
                if !branch.iter().any(|inner| matches!(inner, Op::Put { .. })) {
                    continue;
                }
                *made
            }
            _ => continue,
        };
        revisions.push(made);
    }
    revisions.sort_unstable();
    revisions.dedup();
    revisions
}

/// Whether `op` could delete a key (a delete, a revoke, an expiry, or a txn holding one).
fn deletes(op: &Op) -> bool {
    match op {
        Op::Delete { .. } | Op::LeaseRevoke { .. } | Op::Expire { .. } => true,
        Op::Txn {
            success, failure, ..
        } => success.iter().chain(failure).any(deletes),
        _ => false,
    }
}
