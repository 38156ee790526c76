//! Joint put needs for the witness attempt (`pin`). Each recorded lifetime (created at C,
//! version V at mod revision M) says how many puts its key still owes by M: V less its version
//! now (or, before C, all V) less the puts that writes at known revisions may make up to M.
//! Every revision is made by one write, so the puts owed by M, summed over keys, must fit in
//! the revisions up to M that no known write holds. The version floors in `absent` check each
//! key alone; this checks them together, which catches a revision spent on a write no
//! lifetime needs at once (standalone single_member_crashes seed 38: a lease expiry placed
//! first in a run of 13 revisions that 13 retried puts had to fill, since reads after it
//! showed every one of them landed; the witness tried every order of the puts before backing
//! out of the expiry, 30M steps).
//!
//! Sound for the witness only, which never decides a violation. A key counts only when no
//! write that may fill an unknown revision puts it together with another key (a txn branch
//! with two puts could pay two keys' needs in one revision).

use super::prepare::SearchOp;
use crate::model::{KeyId, Op, Rec, Store};

/// Lifetimes ending this many revisions past the store's at most are summed: needs far ahead
/// are met by the many revisions before them, and a wide window costs every placement.
const NEEDS_WINDOW_REVISIONS: i64 = 64;

/// Key incarnations summed at most per check; past it the rest are left out, which only
/// weakens the check (a fixed array: the check runs at every placement).
const NEEDS_GROUPS_MAX: usize = 32;

/// What the joint check needs (see the module doc).
pub(crate) struct PutNeeds {
    /// Revisions a write at a known revision certainly made, sorted and distinct.
    known: Vec<i64>,
    /// Per key id, the known revisions whose write may put the key, sorted and distinct.
    known_puts: Vec<Vec<i64>>,
    /// Lifetimes whose version the known puts alone do not explain, by mod revision.
    ends: Vec<NeedEnd>,
    /// Per key id, whether a write that may fill a free revision puts it together with another
    /// key (see `shared_put_keys`).
    shared: Vec<bool>,
}

/// One recorded lifetime that owes puts to unknown revisions.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct NeedEnd {
    modified: i64,
    key: KeyId,
    create: i64,
    version: i64,
}

impl PutNeeds {
    /// Collects the known writes of `ops` (the witness's, pinned) and the lifetimes that owe
    /// puts beyond them.
    pub(crate) fn build(
        ops: &[SearchOp],
        lifetimes: &[Vec<(i64, i64, i64)>],
        key_count: usize,
    ) -> PutNeeds {
        let writes = known_writes(ops);
        let mut known: Vec<i64> = writes.iter().map(|&(revision, _)| revision).collect();
        known.dedup();
        let mut known_puts: Vec<Vec<i64>> = vec![Vec::new(); key_count];
        let mut makes_known = vec![false; ops.len()];
        for &(revision, index) in &writes {
            makes_known[index] = true;
            for (key, _) in super::pin::puts(&ops[index].op) {
                known_puts[key as usize].push(revision);
            }
        }
        for list in &mut known_puts {
            list.sort_unstable();
            list.dedup();
        }
        let shared = shared_put_keys(ops, &makes_known, key_count);
        let mut ends = Vec::new();
        for (key, list) in lifetimes.iter().enumerate() {
            if shared[key] {
                continue;
            }
            for &(create, modified, version) in list {
                if create < 1 || modified < create {
                    continue;
                }
                let explained = count_in(&known_puts[key], create - 1, modified);
                if version > explained {
                    ends.push(NeedEnd {
                        modified,
                        key: key as KeyId,
                        create,
                        version,
                    });
                }
            }
        }
        ends.sort_unstable();
        PutNeeds {
            known,
            known_puts,
            ends,
            shared,
        }
    }

    /// Whether the puts owed by each lifetime ending within the window fit, together, in the
    /// revisions between the store's and that end that no known write holds.
    pub(crate) fn hold(&self, store: &Store) -> bool {
        let revision = store.revision();
        let horizon = revision.saturating_add(NEEDS_WINDOW_REVISIONS);
        self.owed(store, horizon, |total, modified| {
            total <= self.free_revisions(revision, modified)
        })
        .is_some()
    }

    /// The puts owed, together, by the lifetimes ending by `through`.
    pub(crate) fn owed_by(&self, store: &Store, through: i64) -> i64 {
        self.owed(store, through, |_, _| true).unwrap_or(i64::MAX)
    }

    /// Whether a write at a known revision made `revision`.
    pub(crate) fn is_known(&self, revision: i64) -> bool {
        self.known.binary_search(&revision).is_ok()
    }

    /// Whether every write that may put `key` in a free revision puts no other key with it.
    pub(crate) fn puts_alone(&self, key: KeyId) -> bool {
        !self.shared[key as usize]
    }

    /// Whether a write at a known revision in (`after`, `through`] may put `key`.
    pub(crate) fn known_put_between(&self, key: KeyId, after: i64, through: i64) -> bool {
        count_in(&self.known_puts[key as usize], after, through) > 0
    }

    /// The revisions in (`after`, `through`] that no known write holds.
    pub(crate) fn free_revisions(&self, after: i64, through: i64) -> i64 {
        (through - after) - count_in(&self.known, after, through)
    }

    /// Sums the puts owed by the lifetimes ending after the store's revision and by
    /// `horizon`, in order of their ends; `None` as soon as `fits(total so far, end)` fails.
    fn owed(&self, store: &Store, horizon: i64, fits: impl Fn(i64, i64) -> bool) -> Option<i64> {
        let revision = store.revision();
        let start = self.ends.partition_point(|end| end.modified <= revision);
        // (key, create, need counted): a key's need only grows with M, so each incarnation
        // adds its greatest need so far once.
        let mut groups = [(0 as KeyId, 0i64, 0i64); NEEDS_GROUPS_MAX];
        let mut groups_len = 0;
        let mut total = 0i64;
        for end in self.ends[start..]
            .iter()
            .take_while(|end| end.modified <= horizon)
        {
            let puts = &self.known_puts[end.key as usize];
            let need = match store.get(end.key) {
                Some(state) if state.create_revision == end.create => {
                    end.version - state.version - count_in(puts, revision, end.modified)
                }
                _ if end.create > revision => {
                    end.version - count_in(puts, end.create - 1, end.modified)
                }
                _ => continue,
            };
            if need <= 0 {
                continue;
            }
            let counted = groups[..groups_len]
                .iter_mut()
                .find(|(key, create, _)| *key == end.key && *create == end.create);
            match counted {
                Some((_, _, counted)) => {
                    if need > *counted {
                        total += need - *counted;
                        *counted = need;
                    }
                }
                None => {
                    if groups_len == NEEDS_GROUPS_MAX {
                        break;
                    }
                    groups[groups_len] = (end.key, end.create, need);
                    groups_len += 1;
                    total += need;
                }
            }
            if !fits(total, end.modified) {
                return None;
            }
        }
        Some(total)
    }
}

/// How many of `sorted` lie in (after, through].
fn count_in(sorted: &[i64], after: i64, through: i64) -> i64 {
    let upto = |bound: i64| sorted.partition_point(|&listed| listed <= bound);
    upto(through).saturating_sub(upto(after)) as i64
}

/// (revision, index) for every definite (or pinned) write of `ops` known to have made that
/// revision, sorted: a recorded put's, a recorded delete's that deleted something, a recorded
/// txn's whose taken branch puts, and a pinned put's.
pub(super) fn known_writes(ops: &[SearchOp]) -> Vec<(i64, usize)> {
    let mut written = Vec::new();
    for (index, op) in ops.iter().enumerate().filter(|(_, op)| !op.unknown) {
        let made = op.revision_hi.saturating_add(1);
        let writes = match op.rec.as_deref() {
            // Pinned unknown outcomes: their bound is the revision they produced.
            None => op.revision_lo == op.revision_hi && op.revision_hi < i64::MAX,
            Some(Rec::Put {
                revision: Some(_), ..
            }) => true,
            Some(Rec::Delete {
                revision: Some(_),
                deleted: Some(deleted),
                ..
            }) => *deleted > 0,
            Some(Rec::Txn {
                revision: Some(recorded),
                succeeded: Some(succeeded),
                ..
            }) => {
                // A taken branch with a put always writes at the recorded revision.
                let Op::Txn {
                    success, failure, ..
                } = &op.op
                else {
                    continue;
                };
                let branch = if *succeeded { success } else { failure };
                if branch
                    .iter()
                    .any(|inner| !super::pin::puts(inner).is_empty())
                {
                    written.push((*recorded, index));
                }
                continue;
            }
            _ => false,
        };
        if writes {
            written.push((made, index));
        }
    }
    written.sort_unstable();
    written
}

/// Per key id, whether some write that may fill a revision no known write holds puts it
/// together with another key in one branch it may have taken (nested txns count both their
/// branches).
fn shared_put_keys(ops: &[SearchOp], makes_known: &[bool], key_count: usize) -> Vec<bool> {
    let mut shared = vec![false; key_count];
    for (op, _) in ops.iter().zip(makes_known).filter(|(_, known)| !**known) {
        let Op::Txn {
            success, failure, ..
        } = &op.op
        else {
            continue;
        };
        let taken = match op.rec.as_deref() {
            Some(Rec::Error(_)) => continue,
            Some(Rec::Txn {
                succeeded: Some(succeeded),
                ..
            }) => Some(*succeeded),
            _ => None,
        };
        let branches = [(true, success), (false, failure)];
        for (_, branch) in branches
            .iter()
            .filter(|(which, _)| taken.is_none_or(|taken| taken == *which))
        {
            let keys: Vec<KeyId> = branch
                .iter()
                .flat_map(super::pin::puts)
                .map(|(key, _)| key)
                .collect();
            if keys.len() > 1 {
                for key in keys {
                    shared[key as usize] = true;
                }
            }
        }
    }
    shared
}

#[cfg(test)]
pub(super) mod tests {
    use super::PutNeeds;
    use crate::linear::prepare::SearchOp;
    use crate::model::{Op, Rec, Store};
    use std::rc::Rc;

    /// A put of `key` without a lease.
    pub(in crate::linear) fn put(key: u32) -> Op {
        Op::Put {
            key,
            value: 1,
            lease: 0,
            prev_kv: false,
        }
    }

    /// An operation for the witness: definite at the revision a recorded put made, or of
    /// unknown outcome without a record.
    pub(in crate::linear) fn search_op(id: u64, op: Op, rec: Option<Rec>) -> SearchOp {
        let made = match &rec {
            Some(Rec::Put {
                revision: Some(made),
                ..
            }) => *made,
            _ => 0,
        };
        SearchOp {
            source: None,
            id,
            call: 0,
            ret: if rec.is_some() { 1 } else { i64::MAX },
            unknown: rec.is_none(),
            op,
            rec: rec.map(Rc::new),
            revision_lo: if made > 0 { made - 1 } else { 0 },
            revision_hi: if made > 0 { made - 1 } else { i64::MAX },
            user: None,
        }
    }

    /// Goal: two keys that each owe a put by revision 5 do not fit in one free revision,
    /// though each alone does; they fit in two, and not when a possible filler could pay both
    /// at once. Method: keys 0 and 1 created at 2 and 3 with version 2 recorded at 5, the store
    /// at 3, and a definite put of key 2 at 5 (or none), with unknown puts (or a txn putting
    /// both keys) to fill the rest.
    #[test]
    fn needs_of_several_keys_must_fit_together() {
        let lifetimes = vec![vec![(2, 5, 2)], vec![(3, 5, 2)], Vec::new()];
        let mut store = Store::new(3);
        store.apply(&put(0));
        store.apply(&put(1));
        assert_eq!(store.revision(), 3);
        let known = search_op(
            1,
            put(2),
            Some(Rec::Put {
                revision: Some(5),
                prev_kv: None,
            }),
        );
        let singles = [search_op(2, put(0), None), search_op(3, put(1), None)];
        let both = search_op(
            4,
            Op::Txn {
                compares: Vec::new(),
                success: vec![put(0), put(1)],
                failure: Vec::new(),
            },
            None,
        );
        let hold = |ops: &[SearchOp]| PutNeeds::build(ops, &lifetimes, 3).hold(&store);
        let with_known: Vec<SearchOp> =
            [known.clone()].into_iter().chain(singles.clone()).collect();
        assert!(!hold(&with_known), "two needs, one free revision");
        assert!(hold(&singles), "two needs, two free revisions");
        assert!(
            hold(&[known, both]),
            "a txn may pay both needs in one revision"
        );
    }
}
