//! Turning a history into the search's operations: compiled requests and results, real-time
//! intervals, revision bounds, virtual lease expiries; and the sound decompositions (per-key
//! partitions, quiescent segments).
//!
//! It drops only what cannot constrain the verdict (serializable reads, unknown read-only
//! operations, errors the store does not model) and never decides the verdict itself.

use crate::history::{Operation, Request, Response};
use crate::model::{ErrorCode, Op, Rec, RecKv, Tables};
use std::collections::BTreeMap;
use std::rc::Rc;

/// One operation as the search sees it.
#[derive(Debug, Clone)]
pub(crate) struct SearchOp {
    /// Index into `History::ops`, or `None` for a virtual lease expiry.
    pub source: Option<usize>,
    /// The operation id (virtual ones count down from `u64::MAX`).
    pub id: u64,
    /// Call time.
    pub call: i64,
    /// Return time, `i64::MAX` when the outcome is unknown.
    pub ret: i64,
    /// Outcome unknown: may be placed any time after `call`, or left out.
    pub unknown: bool,
    /// The request.
    pub op: Op,
    /// The recorded result (`None` for unknown outcomes); shared, since the witness attempt and
    /// the per-key partitions copy operations and a result's kv lists can be long.
    pub rec: Option<Rc<Rec>>,
    /// The store's revision before this operation must be at least this.
    pub revision_lo: i64,
    /// ... and at most this.
    pub revision_hi: i64,
    /// The user it ran as, in a history with auth requests (format version 2).
    pub user: Option<crate::model::auth::NameId>,
}

/// Compiles the history's operations for the search.
pub(crate) fn prepare(history_ops: &[Operation], tables: &Tables) -> Vec<SearchOp> {
    let mut ops = Vec::with_capacity(history_ops.len());
    let mut lease_first_call: BTreeMap<i64, i64> = BTreeMap::new();
    for (index, op) in history_ops.iter().enumerate() {
        let granted = match &op.result {
            Some(Response::LeaseGrant { id, .. }) => *id,
            _ => None,
        };
        let compiled = tables.op(&op.request, granted);
        note_leases(&compiled, op.call, &mut lease_first_call);
        if matches!(&op.request, Request::Range(range) if range.serializable) {
            continue;
        }
        let rec = match &op.result {
            None => None,
            Some(response) => match tables.rec(response) {
                Some(rec) => Some(Rc::new(rec)),
                // An error the store does not model: definite, took no effect, says nothing.
                None => continue,
            },
        };
        let unknown = rec.is_none();
        if unknown && read_only(&compiled) {
            continue;
        }
        let (revision_lo, revision_hi) = match rec.as_deref() {
            None => (0, i64::MAX),
            Some(Rec::Error(code)) => error_revision_bounds(&compiled, *code),
            Some(rec) => revision_bounds(rec),
        };
        ops.push(SearchOp {
            source: Some(index),
            id: op.id,
            call: op.call,
            ret: op.ret.unwrap_or(i64::MAX),
            unknown,
            op: compiled,
            rec,
            revision_lo,
            revision_hi,
            user: op.user.as_deref().and_then(|user| tables.name(user)),
        });
    }
    promote_observed_writes(&mut ops, tables.key_count());
    for (count, (id, call)) in lease_first_call.into_iter().enumerate() {
        ops.push(SearchOp {
            source: None,
            id: u64::MAX - count as u64,
            call,
            ret: i64::MAX,
            unknown: true,
            op: Op::Expire { id },
            rec: None,
            revision_lo: 0,
            revision_hi: i64::MAX,
            user: None,
        });
    }
    ops
}

/// An unknown-outcome put whose (key, value) no other operation writes, and which some definite
/// result shows, did take effect: it becomes mandatory, and if the result showed its mod revision,
/// its revision is forced too. Sound: in any linearization that value can only come from it.
fn promote_observed_writes(ops: &mut [SearchOp], key_count: usize) {
    // Every (key, value) put, sorted with repeats: a pair's writers are its run.
    let mut writers: Vec<(u32, u32)> = Vec::new();
    for op in ops.iter() {
        collect_puts(&op.op, &mut writers);
    }
    writers.sort_unstable();
    let writer_count = |pair: &(u32, u32)| {
        let start = writers.partition_point(|listed| listed < pair);
        writers[start..].partition_point(|listed| listed == pair)
    };
    let mut observed: Vec<Sighting> = Vec::new();
    let mut last_seen: Vec<Option<RecKv>> = vec![None; key_count];
    for rec in ops.iter().filter_map(|op| op.rec.as_deref()) {
        observe(rec, &mut observed, &mut last_seen);
    }
    // Sorted, a pair's first sighting is its earliest with a mod revision, if it has one.
    observed.sort_unstable();
    let first_sighting = |&(key, value): &(u32, u32)| {
        let at = observed.partition_point(|sighting| (sighting.0, sighting.1) < (key, value));
        observed
            .get(at)
            .filter(|sighting| (sighting.0, sighting.1) == (key, value))
            .map(|sighting| sighting.4)
    };
    for op in ops.iter_mut().filter(|op| op.unknown) {
        let mut puts = Vec::new();
        collect_puts(&op.op, &mut puts);
        let witnessed = puts
            .iter()
            .filter(|pair| writer_count(pair) == 1)
            .find_map(first_sighting);
        let Some(mod_revision) = witnessed else {
            continue;
        };
        op.unknown = false;
        if let Some(revision) = mod_revision {
            op.revision_lo = revision - 1;
            op.revision_hi = revision - 1;
        }
    }
}

fn collect_puts(op: &Op, puts: &mut Vec<(u32, u32)>) {
    match op {
        Op::Put { key, value, .. } => puts.push((*key, *value)),
        Op::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .for_each(|inner| collect_puts(inner, puts)),
        _ => {}
    }
}

/// A recorded (key, value, no mod revision, sequence number, mod revision): sorting puts a
/// pair's earliest sighting with a mod revision first, else its earliest without.
type Sighting = (u32, u32, bool, u32, Option<i64>);

/// Notes each kv's (key, value) sighting with its mod revision, in order; a kv equal to the
/// last one noted for its key changes nothing and is skipped.
fn observe(rec: &Rec, observed: &mut Vec<Sighting>, last_seen: &mut [Option<RecKv>]) {
    let mut note = |kv: &RecKv| {
        let last = &mut last_seen[kv.key as usize];
        if last.as_ref() == Some(kv) {
            return;
        }
        *last = Some(kv.clone());
        if let Some(value) = kv.value {
            let sequence = u32::try_from(observed.len()).expect("fewer than 2^32 sightings");
            observed.push((
                kv.key,
                value,
                kv.mod_revision.is_none(),
                sequence,
                kv.mod_revision,
            ));
        }
    };
    rec.for_each_kv(&mut note);
}

fn note_leases(op: &Op, call: i64, first: &mut BTreeMap<i64, i64>) {
    let mut note = |id: i64| {
        if id != 0 {
            let entry = first.entry(id).or_insert(call);
            *entry = (*entry).min(call);
        }
    };
    match op {
        Op::Put { lease, .. } => note(*lease),
        Op::LeaseGrant { id, .. } | Op::LeaseRevoke { id } | Op::LeaseKeepAlive { id } => note(*id),
        Op::Txn {
            success, failure, ..
        } => {
            for inner in success.iter().chain(failure) {
                note_leases(inner, call, first);
            }
        }
        _ => {}
    }
}

/// Whether an operation can never change the store.
fn read_only(op: &Op) -> bool {
    match op {
        Op::Range { .. } | Op::LeaseKeepAlive { .. } => true,
        Op::Txn {
            success, failure, ..
        } => success.iter().chain(failure).all(read_only),
        _ => false,
    }
}

/// Bounds on the store's revision just before the operation, from its recorded result: this is
/// what nearly serialises writes when revisions are recorded.
/// The store revisions a request that failed with `code` may have run at: a read or a
/// compaction at a revision past the store's failed with future_revision, one at a revision
/// compacted away with compacted. The search prunes as soon as the store passes the bound of a
/// pending definite operation; without these it learnt only at the end that a read found in
/// the future could no longer be placed (standalone single_member_crashes seed 182: a read at
/// 990 got future_revision while the restarted member was at 989, and the witness, which had
/// placed the expiries at 990 to 997 before it, tried the orders of the twenty writes after
/// and gave up after 200M steps).
fn error_revision_bounds(op: &Op, code: ErrorCode) -> (i64, i64) {
    let revision = match op {
        Op::Range { revision, .. } if *revision > 0 => *revision,
        Op::Compact { revision } => *revision,
        _ => return (0, i64::MAX),
    };
    match (code, op) {
        (ErrorCode::FutureRevision, _) => (0, revision - 1),
        // A read below the compacted revision; a compaction at or below it.
        (ErrorCode::Compacted, Op::Range { .. }) => (revision + 1, i64::MAX),
        (ErrorCode::Compacted, _) => (revision, i64::MAX),
        _ => (0, i64::MAX),
    }
}

fn revision_bounds(rec: &Rec) -> (i64, i64) {
    let kv_floor = |kvs: &[RecKv]| {
        kvs.iter()
            .filter_map(|kv| kv.mod_revision)
            .max()
            .unwrap_or(0)
    };
    match rec {
        Rec::Range { revision, kvs, .. } => {
            let floor = kvs.as_deref().map_or(0, kv_floor);
            revision.map_or((floor, i64::MAX), |revision| (revision, revision))
        }
        Rec::Put { revision, prev_kv } => {
            let floor = prev_kv
                .as_ref()
                .and_then(|prev| prev.as_ref())
                .and_then(|kv| kv.mod_revision)
                .unwrap_or(0);
            revision.map_or((floor, i64::MAX), |revision| (revision - 1, revision - 1))
        }
        Rec::Delete {
            revision, deleted, ..
        } => match (revision, deleted) {
            (Some(revision), Some(0)) => (*revision, *revision),
            (Some(revision), Some(_)) => (revision - 1, revision - 1),
            (Some(revision), None) => (revision - 1, *revision),
            (None, _) => (0, i64::MAX),
        },
        Rec::Txn {
            revision: Some(revision),
            ..
        }
        | Rec::LeaseRevoke {
            revision: Some(revision),
        } => (revision - 1, *revision),
        Rec::Compact {
            revision: Some(revision),
        } => (*revision, *revision),
        _ => (0, i64::MAX),
    }
}

/// When no result carries a revision and every operation touches one key without revision
/// compares or leases, keys are independent (etcd's per-key state is then all that is visible):
/// returns each key's operations. `None` when some revision couples keys.
pub(crate) fn partition_by_key(ops: &[SearchOp]) -> Option<Vec<Vec<SearchOp>>> {
    let mut parts: BTreeMap<u32, Vec<SearchOp>> = BTreeMap::new();
    for op in ops {
        let key = single_key(&op.op)?;
        if let Some(rec) = &op.rec {
            if rec_has_revision(rec) {
                return None;
            }
        }
        parts.entry(key).or_default().push(op.clone());
    }
    Some(parts.into_values().collect())
}

fn single_key(op: &Op) -> Option<u32> {
    match op {
        Op::Range {
            lo,
            hi,
            revision: 0,
            ..
        }
        | Op::Delete { lo, hi, .. }
            if *hi == lo + 1 =>
        {
            Some(*lo)
        }
        Op::Put { key, lease: 0, .. } => Some(*key),
        Op::Txn {
            compares,
            success,
            failure,
        } => {
            let mut keys = compares
                .iter()
                .map(|compare| match compare.target {
                    crate::history::CompareTarget::Mod | crate::history::CompareTarget::Create => {
                        None
                    }
                    _ => Some(compare.key),
                })
                .chain(success.iter().chain(failure).map(single_key));
            let first = keys.next()??;
            keys.all(|key| key == Some(first)).then_some(first)
        }
        _ => None,
    }
}

fn rec_has_revision(rec: &Rec) -> bool {
    let kv_has = |kv: &RecKv| kv.mod_revision.is_some() || kv.create_revision.is_some();
    match rec {
        Rec::Range { revision, kvs, .. } => revision.is_some() || kvs.iter().flatten().any(kv_has),
        Rec::Put { revision, prev_kv } => {
            revision.is_some() || prev_kv.iter().flatten().any(kv_has)
        }
        Rec::Delete {
            revision, prev_kvs, ..
        } => revision.is_some() || prev_kvs.iter().flatten().any(kv_has),
        Rec::Txn {
            revision,
            responses,
            ..
        } => revision.is_some() || responses.iter().flatten().any(rec_has_revision),
        _ => true,
    }
}

/// Splits operations (sorted by call) at points where nothing is pending: every operation before
/// the cut returned before any after it was called. Unknown outcomes stay pending forever.
pub(crate) fn quiescent_segments(ops: &[SearchOp]) -> Vec<std::ops::Range<usize>> {
    assert!(
        ops.windows(2).all(|pair| pair[0].call <= pair[1].call),
        "sorted by call"
    );
    let mut segments = Vec::new();
    let mut start = 0;
    let mut latest_return = i64::MIN;
    for (index, op) in ops.iter().enumerate() {
        if index > start && latest_return < op.call {
            segments.push(start..index);
            start = index;
        }
        latest_return = latest_return.max(op.ret);
    }
    if start < ops.len() {
        segments.push(start..ops.len());
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::error_revision_bounds;
    use crate::model::{ErrorCode, Op};

    /// Goal: a revision error bounds the store's revision the request ran at, and only a
    /// revision error does. Method: a read and a compaction at revision 10, failed with
    /// future_revision, with compacted, and with another error; a latest read's error.
    #[test]
    fn revision_errors_bound_the_revision_run_at() {
        let read = Op::Range {
            lo: 0,
            hi: 1,
            revision: 10,
            limit: 0,
        };
        let compact = Op::Compact { revision: 10 };
        let latest = Op::Range {
            lo: 0,
            hi: 1,
            revision: 0,
            limit: 0,
        };
        let any = (0, i64::MAX);
        assert_eq!(
            error_revision_bounds(&read, ErrorCode::FutureRevision),
            (0, 9)
        );
        assert_eq!(
            error_revision_bounds(&compact, ErrorCode::FutureRevision),
            (0, 9)
        );
        assert_eq!(
            error_revision_bounds(&read, ErrorCode::Compacted),
            (11, i64::MAX)
        );
        assert_eq!(
            error_revision_bounds(&compact, ErrorCode::Compacted),
            (10, i64::MAX)
        );
        assert_eq!(error_revision_bounds(&read, ErrorCode::LeaseNotFound), any);
        assert_eq!(
            error_revision_bounds(&latest, ErrorCode::FutureRevision),
            any
        );
    }
}
