//! Two reductions of the search's operations that keep the verdict exact and shrink the state
//! space where unknown outcomes abound (Jepsen-shaped histories: 30% of the writes time out):
//! - values that nothing can observe are one value (`merge_unobserved_values`);
//! - among unknown-outcome operations with the same request, only the one called latest among
//!   those real time allows is tried (`identical_successors`, used by the search).
//!
//! Neither decides anything; both only merge search states that cannot be told apart.
//!
//! Also here, for the witness attempt (`pin`), which only narrows a candidate order and never
//! decides a violation: the keys-only reads' "this revision put this key" (`keys_only_puts`)
//! and the retries of one put whose first call is pinned (`retried_pairs`).

use super::prepare::SearchOp;
use crate::history::CompareTarget;
use crate::model::{KeyId, Op, RecKv, ValueId};
use std::collections::BTreeMap;

/// Replaces every put value that no recorded result shows and no compare names by one of them
/// (the least id), so that stores differing only in such values become one search state.
/// Returns whether anything changed.
///
/// Sound without watch streams and without ordering compares on values: a value nothing reads
/// or compares can only be told apart from another such value by a read that returns it (none
/// does) or an equality compare against it (none names it), so every result is the same with
/// either. Revisions, versions and leases are untouched. An ordering compare (`<`, `>`) could
/// tell two such values apart, so then nothing is merged.
///
/// NB: the representative is a real value of the history, so an explanation rendering the
/// store may show it where the history had another unobserved value.
pub(crate) fn merge_unobserved_values(ops: &mut [SearchOp]) -> bool {
    let mut observed: Vec<ValueId> = Vec::new();
    let mut written: Vec<ValueId> = Vec::new();
    for op in ops.iter() {
        if !note_compares(&op.op, &mut observed) {
            return false;
        }
        note_puts(&op.op, &mut written);
        if let Some(rec) = op.rec.as_deref() {
            rec.for_each_kv(&mut |kv| observed.extend(kv.value));
        }
    }
    observed.sort_unstable();
    observed.dedup();
    written.sort_unstable();
    written.dedup();
    let unobserved: Vec<ValueId> = written
        .into_iter()
        .filter(|value| observed.binary_search(value).is_err())
        .collect();
    let Some(&representative) = unobserved.first() else {
        return false;
    };
    if unobserved.len() < 2 {
        return false;
    }
    for op in ops.iter_mut() {
        replace_values(&mut op.op, &unobserved, representative);
    }
    true
}

/// Notes the values compares name; false when a compare orders values (`<`, `>`).
fn note_compares(op: &Op, observed: &mut Vec<ValueId>) -> bool {
    let Op::Txn {
        compares,
        success,
        failure,
    } = op
    else {
        return true;
    };
    for compare in compares {
        if compare.target != CompareTarget::Value {
            continue;
        }
        if !matches!(
            compare.op,
            crate::history::CompareOp::Equal | crate::history::CompareOp::NotEqual
        ) {
            return false;
        }
        match ValueId::try_from(compare.value) {
            Ok(value) => observed.push(value),
            Err(_) => return false,
        }
    }
    success
        .iter()
        .chain(failure)
        .all(|inner| note_compares(inner, observed))
}

fn note_puts(op: &Op, written: &mut Vec<ValueId>) {
    match op {
        Op::Put { value, .. } => written.push(*value),
        Op::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .for_each(|inner| note_puts(inner, written)),
        _ => {}
    }
}

fn replace_values(op: &mut Op, unobserved: &[ValueId], representative: ValueId) {
    match op {
        Op::Put { value, .. } if unobserved.binary_search(value).is_ok() => {
            *value = representative;
        }
        Op::Txn {
            success, failure, ..
        } => success
            .iter_mut()
            .chain(failure.iter_mut())
            .for_each(|inner| replace_values(inner, unobserved, representative)),
        _ => {}
    }
}

/// Per operation, the next unknown-outcome operation with the same request (by call, then
/// index), or `u32::MAX`. Only requests that name no lease take part (the search's lease
/// reductions reason about which operation names a lease).
///
/// Why the search may skip an operation whose successor is unplaced and callable: in any
/// linearization that places the earlier one there, the later one is either unused (swap
/// them: same request, same effect, and it was callable there) or placed further on (swap
/// their places: the earlier one was called first, so it is callable wherever the later one
/// is). Either way an order placing the later one first exists.
pub(crate) fn identical_successors(ops: &[SearchOp]) -> Vec<u32> {
    let mut successors = vec![u32::MAX; ops.len()];
    let mut classes: BTreeMap<String, Vec<(i64, u32)>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        if op.unknown && names_no_lease(&op.op) {
            classes
                .entry(format!("{:?}", op.op))
                .or_default()
                .push((op.call, index as u32));
        }
    }
    for members in classes.values_mut() {
        members.sort_unstable();
        for pair in members.windows(2) {
            successors[pair[0].1 as usize] = pair[1].1;
        }
    }
    successors
}

fn names_no_lease(op: &Op) -> bool {
    match op {
        Op::Put { lease, .. } => *lease == 0,
        Op::Delete { .. } | Op::Range { .. } => true,
        Op::Txn {
            success, failure, ..
        } => success.iter().chain(failure).all(names_no_lease),
        _ => false,
    }
}

/// (mod revision, key, lease) of every recorded kv without a value (a keys-only read) but with
/// a mod revision: that revision put that key (with that lease). Sorted and distinct.
pub(super) fn keys_only_puts(ops: &[SearchOp]) -> Vec<(i64, KeyId, Option<i64>)> {
    let mut puts = Vec::new();
    for rec in ops.iter().filter_map(|op| op.rec.as_deref()) {
        rec.for_each_kv(&mut |kv: &RecKv| {
            if let (None, Some(revision)) = (kv.value, kv.mod_revision) {
                puts.push((revision, kv.key, kv.lease));
            }
        });
    }
    puts.sort_unstable();
    puts.dedup();
    puts
}

/// A retried (key, value) pair and its writers as (call, index into the operations).
pub(super) type RetriedPair = ((KeyId, ValueId), Vec<(i64, usize)>);

/// The (key, value) pairs every writer of which is an unknown-outcome retry of one request
/// (equal requests), each with its writers as (call, index into `ops`) in call order, sorted by
/// pair. A retried put whose value was seen took effect at least once; the witness pins one
/// retry to the first sighting (see `sightings`) and leaves the others unknown.
pub(super) fn retried_pairs(ops: &[SearchOp]) -> Vec<RetriedPair> {
    let mut writers: Vec<((KeyId, ValueId), i64, usize)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        for pair in super::pin::puts(&op.op) {
            writers.push((pair, op.call, index));
        }
    }
    writers.sort_unstable();
    let mut out = Vec::new();
    for run in writers.chunk_by(|left, right| left.0 == right.0) {
        let first = &ops[run[0].2];
        let all_retries = run.len() > 1
            && run
                .iter()
                .all(|&(_, _, index)| ops[index].unknown && ops[index].op == first.op);
        if all_retries {
            let writers = run.iter().map(|&(_, call, index)| (call, index)).collect();
            out.push((run[0].0, writers));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cmp, Rec, RecKv};
    use std::rc::Rc;

    fn op(id: u64, call: i64, op: Op, rec: Option<Rec>) -> SearchOp {
        SearchOp {
            source: Some(id as usize),
            id,
            call,
            ret: if rec.is_some() { call + 1 } else { i64::MAX },
            unknown: rec.is_none(),
            op,
            rec: rec.map(Rc::new),
            revision_lo: 0,
            revision_hi: i64::MAX,
            user: None,
        }
    }

    fn put(value: ValueId) -> Op {
        Op::Put {
            key: 0,
            value,
            lease: 0,
            prev_kv: false,
        }
    }

    fn read_of(value: ValueId) -> Rec {
        Rec::Range {
            revision: None,
            kvs: Some(vec![RecKv {
                key: 0,
                value: Some(value),
                create_revision: None,
                mod_revision: None,
                version: None,
                lease: None,
            }]),
            count: None,
        }
    }

    #[test]
    fn unobserved_values_merge_and_observed_ones_stay() {
        // Goal: only values nothing reads or compares merge, and an ordering compare turns the
        // reduction off. Method: puts of 1..=4, a read of 2 and a compare on 3; then the same
        // with a `<` compare.
        let range = Op::Range {
            lo: 0,
            hi: 1,
            revision: 0,
            limit: 0,
        };
        let compare = |op| Op::Txn {
            compares: vec![Cmp {
                key: 0,
                target: CompareTarget::Value,
                op,
                value: 3,
            }],
            success: vec![put(4)],
            failure: vec![],
        };
        let mut ops = vec![
            op(0, 0, put(1), None),
            op(1, 1, put(2), None),
            op(2, 2, compare(crate::history::CompareOp::Equal), None),
            op(3, 3, put(3), None),
            op(4, 4, range.clone(), Some(read_of(2))),
            op(5, 5, put(5), None),
        ];
        assert!(merge_unobserved_values(&mut ops));
        let values: Vec<Option<ValueId>> = ops
            .iter()
            .map(|op| match &op.op {
                Op::Put { value, .. } => Some(*value),
                Op::Txn { success, .. } => match success[0] {
                    Op::Put { value, .. } => Some(value),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(
            values,
            vec![Some(1), Some(2), Some(1), Some(3), None, Some(1)]
        );
        let mut ordered = vec![
            op(0, 0, put(1), None),
            op(1, 1, put(2), None),
            op(2, 2, compare(crate::history::CompareOp::Less), None),
        ];
        assert!(!merge_unobserved_values(&mut ordered));
        assert!(matches!(ordered[1].op, Op::Put { value: 2, .. }));
    }

    #[test]
    fn identical_unknown_requests_chain_by_call() {
        // Goal: successors link unknown operations with equal requests in call order, and
        // leave out definite ones, other requests and lease puts. Method: a small set.
        let leased = Op::Put {
            key: 0,
            value: 1,
            lease: 7,
            prev_kv: false,
        };
        let ops = vec![
            op(0, 5, put(1), None),
            op(1, 2, put(1), None),
            op(2, 3, put(2), None),
            op(
                3,
                1,
                put(1),
                Some(Rec::Put {
                    revision: None,
                    prev_kv: None,
                }),
            ),
            op(4, 9, put(1), None),
            op(5, 1, leased.clone(), None),
            op(6, 2, leased, None),
        ];
        let successors = identical_successors(&ops);
        assert_eq!(
            successors,
            vec![4, 0, u32::MAX, u32::MAX, u32::MAX, u32::MAX, u32::MAX]
        );
    }
}
