//! What a search works out from its operations once, before it starts: which reads of the
//! past it checks early, whether the past must enter its memo, which unknown-outcome
//! operations only write keys, and how lease expiries are ordered against their users.

use super::prepare::SearchOp;
use crate::model::{Op, Rec};

/// Whether two search states with the same placed operations and the same latest store, but a
/// different past, can still have different futures. Not when every reader of the past is a
/// definite plain read with a recorded result or error: an error (compacted, future revision,
/// permission) depends on the latest store alone, and `historical_reads_agree` checks each result against the
/// state at its revision as soon as the store passes it, so any path that reaches revision R
/// has already matched every such read at or below R against its own past (and the past below
/// the search's start state is common to all paths), while reads above R see states built from
/// the latest one on. Unknown-outcome reads change nothing and never matter. Leaving the past
/// out of the memo then lets fills of a revision gap that end alike merge, and keeps the memo's
/// key to the latest state (a history with reads of old revisions paid for hashing every
/// version at every step). Standalone single_member_crashes seed 38, where a crash left 14
/// revisions filled only by retries and two reads at old revisions answered "compacted", gave
/// up after 200M steps while the past was kept; the fills now merge once the retries' definite
/// twins overwrite every key they wrote.
pub(super) fn past_matters(ops: &[SearchOp]) -> bool {
    ops.iter().any(|op| {
        !op.unknown
            && super::reads_history(&op.op)
            && !matches!(
                (&op.op, op.rec.as_deref()),
                (Op::Range { .. }, Some(Rec::Range { .. } | Rec::Error(_)))
            )
    })
}

/// The definite plain reads at an old revision with a recorded result, as (that revision, op
/// index, the result without its header revision), sorted by revision.
pub(super) fn historical_reads(ops: &[SearchOp]) -> Vec<(i64, u32, Rec)> {
    let mut reads: Vec<(i64, u32, Rec)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let (Op::Range { revision, .. }, Some(Rec::Range { kvs, count, .. })) =
            (&op.op, op.rec.as_deref())
        else {
            continue;
        };
        if *revision > 0 && !op.unknown {
            let rec = Rec::Range {
                revision: None,
                kvs: kvs.clone(),
                count: *count,
            };
            reads.push((*revision, index as u32, rec));
        }
    }
    reads.sort_by_key(|(revision, index, _)| (*revision, *index));
    reads
}

/// Whether applying the operation either changes nothing or writes keys (bumping the revision).
pub(super) fn writes_keys_only(op: &SearchOp) -> bool {
    matches!(
        op.op,
        crate::model::Op::Put { .. }
            | crate::model::Op::Delete { .. }
            | crate::model::Op::Txn { .. }
    )
}

/// For each lease end among `ops` (an expiry, or a revoke of unknown outcome: placed, it
/// ended the lease), the other operations whose outcome may depend on whether its lease is
/// gone, sorted by call; empty for everything else: the definite ones naming the
/// lease (in a put, a txn's put, a grant, revoke or keep-alive) and the unknown-outcome grants
/// of its id. An unknown-outcome put, revoke, keep-alive or txn naming an expired lease fails
/// and changes nothing, so placing it after the expiry is the same as leaving it out.
pub(super) fn lease_users(ops: &[SearchOp]) -> Vec<Vec<u32>> {
    use crate::model::Op;
    fn names(op: &Op, leases: &mut Vec<i64>) {
        match op {
            Op::Put { lease, .. } => leases.push(*lease),
            Op::LeaseGrant { id, .. } | Op::LeaseRevoke { id } | Op::LeaseKeepAlive { id } => {
                leases.push(*id)
            }
            Op::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure)
                .for_each(|inner| names(inner, leases)),
            _ => {}
        }
    }
    let mut expiries: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    for (index, op) in ops.iter().enumerate() {
        match op.op {
            Op::Expire { id } => expiries.entry(id).or_default().push(index as u32),
            Op::LeaseRevoke { id } if op.unknown => {
                expiries.entry(id).or_default().push(index as u32)
            }
            _ => {}
        }
    }
    let mut users = vec![Vec::new(); ops.len()];
    if expiries.is_empty() {
        return users;
    }
    // One pass over the operations, rather than one per expiry.
    let mut named = Vec::new();
    for (other, op) in ops.iter().enumerate() {
        if op.unknown && !matches!(op.op, Op::LeaseGrant { .. }) {
            continue;
        }
        named.clear();
        names(&op.op, &mut named);
        named.sort_unstable();
        named.dedup();
        for lease in &named {
            for &expiry in expiries.get(lease).into_iter().flatten() {
                users[expiry as usize].push(other as u32);
            }
        }
    }
    for list in &mut users {
        list.sort_by_key(|&other| (ops[other as usize].call, other));
    }
    users
}

/// For each lease expiry among `ops`, the definite operations whose recorded result shows the
/// lease alive (a put with it that succeeded or that an observation shows took effect, a
/// successful revoke or keep-alive, its grant):
/// returns, per operation, the expiries it precedes, and per expiry the count of those. A lease
/// id granted more than once gets no constraint: after an expiry a new grant could revive it.
pub(super) fn expiry_precedence(ops: &[SearchOp]) -> (Vec<Vec<u32>>, Vec<u32>) {
    use crate::model::{Op, Rec};
    let mut grants: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    for op in ops {
        if let Op::LeaseGrant { id, .. } = op.op {
            *grants.entry(id).or_default() += 1;
        }
    }
    let expiry_of: std::collections::BTreeMap<i64, u32> = (0..ops.len() as u32)
        .filter_map(|index| match ops[index as usize].op {
            Op::Expire { id } => Some((id, index)),
            _ => None,
        })
        .collect();
    let mut precedes = vec![Vec::new(); ops.len()];
    let mut waits = vec![0_u32; ops.len()];
    for (index, op) in ops.iter().enumerate().filter(|(_, op)| !op.unknown) {
        let lease = match (&op.op, op.rec.as_deref()) {
            // A mandatory put without a result was pinned or promoted: observed to take effect.
            (Op::Put { lease, .. }, Some(Rec::Put { .. }) | None) => *lease,
            (Op::LeaseRevoke { id }, Some(Rec::LeaseRevoke { .. }))
            | (Op::LeaseGrant { id, .. }, Some(Rec::LeaseGrant { .. })) => *id,
            (Op::LeaseKeepAlive { id }, Some(Rec::LeaseKeepAlive { ttl_seconds }))
                if ttl_seconds.is_none_or(|ttl| ttl > 0) =>
            {
                *id
            }
            _ => continue,
        };
        let granted_once = grants.get(&lease).is_none_or(|&count| count <= 1);
        if let Some(&expiry) = expiry_of.get(&lease).filter(|_| lease != 0 && granted_once) {
            precedes[index].push(expiry);
            waits[expiry as usize] += 1;
        }
    }
    (precedes, waits)
}
