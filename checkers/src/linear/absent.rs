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
//! Recorded lifetimes (created at C, version V at mod revision M) bound versions the same way:
//! when a key is put at R inside one, the definite puts of it still to come in (R, M] must fit
//! under V; and at R its version must be at least V minus the revisions in (R, M] that could
//! still put it (buggified compaction_heavy 123 and single_member_crashes 655: the witness
//! filled a gap with the wrong number of puts of a key and found out only at M).
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
    /// (R, key, C, least version): a recorded lifetime (created at C, version V at mod
    /// revision M > R) leaves too few revisions in (R, M] to put the key more than
    /// V - `least version` times, so at R the key, if created at C, has at least that version.
    /// Sorted, one entry per (R, key, C).
    versions: Vec<(i64, KeyId, i64, i64)>,
    /// Per key id, the recorded lifetimes (create revision, mod revision, version), sorted.
    lifetimes: Vec<Vec<(i64, i64, i64)>>,
    /// Per key id, the revisions a definite (or pinned) write certainly put it at, sorted.
    pinned_puts: Vec<Vec<i64>>,
}

impl Absences {
    /// Collects the absences that `ops` (the witness's, with definite results) and the
    /// recorded lifetimes' create revisions show.
    pub(crate) fn build(
        ops: &[SearchOp],
        lifetimes: &[Vec<(i64, i64, i64)>],
        key_count: usize,
    ) -> Absences {
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
        for (key, list) in lifetimes.iter().enumerate() {
            let creates = list.iter().map(|&(create, _, _)| create);
            absent_at[key].extend(creates.filter(|&create| create > 1).map(|c| c - 1));
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
        // Whether revision R is pinned to a write that deletes nothing and does not put `key`
        // (a pinned put of the key itself may attach it to a lease, or count as a version).
        let keeps = |revision: i64, key: KeyId| {
            let at = keeping.partition_point(|&(listed, _)| listed < revision);
            let mut pinned = keeping[at..]
                .iter()
                .take_while(|&&(listed, _)| listed == revision)
                .peekable();
            pinned.peek().is_some() && pinned.all(|&(_, put_key)| put_key != key)
        };
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
                    if !keeps(revision, key as KeyId) {
                        capacity += 1;
                    }
                    revision -= 1;
                }
            }
        }
        windows.sort_unstable();
        windows.dedup_by_key(|&mut (revision, key, _)| (revision, key));
        let mut versions = Vec::new();
        for (key, list) in lifetimes.iter().enumerate() {
            for &(create, modified, version) in list {
                // Walk down from M: at R the key needs at least V minus the revisions in
                // (R, M] that could still put it.
                let mut capacity = 0;
                let mut revision = modified;
                while revision >= create && version - capacity > 1 {
                    if revision < modified {
                        versions.push((revision, key as KeyId, create, version - capacity));
                    }
                    if !keeps(revision, key as KeyId) {
                        capacity += 1;
                    }
                    revision -= 1;
                }
            }
        }
        // Per (R, key, create), the greatest least version is the one that binds.
        versions.sort_unstable_by_key(|&(revision, key, create, least)| {
            (revision, key, create, std::cmp::Reverse(least))
        });
        versions.dedup_by_key(|&mut (revision, key, create, _)| (revision, key, create));
        Absences {
            absent_at,
            removal_revisions,
            windows,
            versions,
            lifetimes: lifetimes.to_vec(),
            pinned_puts: pinned_puts(ops, key_count),
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
        if !forever || !changed.iter().all(|&key| self.version_room(store, key)) {
            return false;
        }
        let start = self
            .windows
            .partition_point(|&(listed, _, _)| listed < revision);
        let removable = self.windows[start..]
            .iter()
            .take_while(|&&(listed, _, _)| listed == revision)
            .all(|&(_, key, capacity)| removable_in(key, capacity));
        if !removable {
            return false;
        }
        let start = self
            .versions
            .partition_point(|&(listed, _, _, _)| listed < revision);
        self.versions[start..]
            .iter()
            .take_while(|&&(listed, _, _, _)| listed == revision)
            .all(|&(_, key, create, least)| {
                store
                    .get(key)
                    .is_none_or(|state| state.create_revision != create || state.version >= least)
            })
    }
}

impl Absences {
    /// A key just put at R, inside a recorded lifetime (created at C, version V at M > R),
    /// must leave room for the definite puts of it in (R, M]: its version now is at most V
    /// minus their count. Versions only grow by puts, so checking when the key changes is
    /// enough.
    fn version_room(&self, store: &Store, key: KeyId) -> bool {
        let revision = store.revision();
        let Some(state) = store.get(key) else {
            return true;
        };
        let puts = &self.pinned_puts[key as usize];
        let after = puts.partition_point(|&listed| listed <= revision);
        let lifetimes = &self.lifetimes[key as usize];
        let created_by = lifetimes.partition_point(|&(create, _, _)| create <= revision);
        lifetimes[..created_by]
            .iter()
            .filter(|&&(create, modified, _)| {
                create == state.create_revision && modified > revision
            })
            .all(|&(_, modified, version)| {
                let coming = puts[after..].partition_point(|&listed| listed <= modified);
                state.version + coming as i64 <= version
            })
    }
}

/// Per key id, the revisions at which a definite (or pinned) write certainly put it: a put
/// with a recorded revision, a pinned unknown put, a txn's taken branch. Sorted.
fn pinned_puts(ops: &[SearchOp], key_count: usize) -> Vec<Vec<i64>> {
    let mut puts: Vec<Vec<i64>> = vec![Vec::new(); key_count];
    for op in ops.iter().filter(|op| !op.unknown) {
        match (&op.op, op.rec.as_deref()) {
            (Op::Put { key, .. }, None) if op.revision_lo == op.revision_hi => {
                puts[*key as usize].push(op.revision_hi + 1)
            }
            (
                Op::Put { key, .. },
                Some(Rec::Put {
                    revision: Some(made),
                    ..
                }),
            ) => puts[*key as usize].push(*made),
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
                for inner in branch {
                    if let Op::Put { key, .. } = inner {
                        puts[*key as usize].push(*made);
                    }
                }
            }
            _ => {}
        }
    }
    for list in &mut puts {
        list.sort_unstable();
        list.dedup();
    }
    puts
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

/// (revision, key put) for each revision made by a definite (or pinned) write that cannot
/// delete any key (a put, or a txn with no delete in either branch), one entry per key it may
/// put. Sorted and distinct.
fn nondeleting_revisions(ops: &[SearchOp]) -> Vec<(i64, KeyId)> {
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
        for key in super::pin::puts(&op.op).into_iter().map(|(key, _)| key) {
            revisions.push((made, key));
        }
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
