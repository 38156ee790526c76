//! Pinning unknown-outcome puts to the revisions observations show they made (part of the
//! witness attempt, `pin`). A (key, value) pair is sighted at revision R when a recorded kv or
//! a watch event shows that value written at R, or when a recorded lifetime shows the key
//! created at R and every put of the key in the history writes that one value.
//!
//! - A pair that one operation alone puts, sighted at R, was put by it at R.
//! - A pair that only retries of one request put (equal unknown-outcome requests) is pinned to
//!   its first sighting R, with the latest-called retry that may have made R (called by R's
//!   deadline: no definite result at R or later had come back before the call). Whichever
//!   retry made R was called no later, so could take any place that retry takes instead, and
//!   the earlier ones stay free to fill revisions before R that nobody saw (standalone
//!   disk_faults seed 41: three retries of s00 = c7-105, seen only at 509; the first also made
//!   487, overwritten unseen at 490, and only it was called in time for 487. Pinned to 509 it
//!   left 487 without a writer, the witness failed and the general search gave up after 200M
//!   steps). That still misses an order where the retry pinned is the one that made an
//!   earlier unseen revision too; the witness then fails and the general search decides.
//!   Creations narrow it further: standalone lease_heavy seed 10 has two retries of
//!   l00461 = c8-14, seen by reads only at 88 (version 2, created at 63). Pinned to 88, the
//!   first retry left the creation at 63 without a writer, the witness failed after 900 steps
//!   and the general search gave up after 200M; with the creation sighted it is pinned to 63.
//!   (Holding the pin back wherever the lifetime's version shows unseen puts before the
//!   sighting decided seed 10 too, but made lease_heavy seed 3 take 2.7 s instead of 10 ms.)

use super::pin::{puts, KvFields, Observed};
use super::prepare::SearchOp;
use crate::model::{KeyId, Op, Rec, RecKv, Tables, ValueId};

/// An unknown write that alone puts a (key, value) sighted at revision R took effect at R; of a
/// retried pair's writers, the latest called by `deadline` of the pair's first sighting is
/// pinned there (module doc).
pub(super) fn pin_observed(
    ops: &mut [SearchOp],
    observed: &Observed,
    kvs: &[KvFields],
    deadline: &dyn Fn(i64) -> i64,
) {
    // Every (key, value) any op puts, sorted with repeats: its writers are its run.
    let mut writers: Vec<(KeyId, ValueId)> = ops.iter().flat_map(|op| puts(&op.op)).collect();
    writers.sort_unstable();
    let writer_count = |pair: &(KeyId, ValueId)| {
        let start = writers.partition_point(|listed| listed < pair);
        writers[start..].partition_point(|listed| listed == pair)
    };
    // (key, value, revision) sorted: a pair's first entry is the earliest revision it was seen.
    let mut seen_at: Vec<(KeyId, ValueId, i64)> = observed
        .iter()
        .flat_map(|(revision, changes)| {
            changes
                .iter()
                .filter_map(move |&(key, value)| value.map(|value| (key, value, revision)))
        })
        .collect();
    // A creation sights the key's one value, when every put of the key writes that value.
    for &(key, _, create, _, _) in kvs {
        let Some(create) = create.filter(|&create| create > 0) else {
            continue;
        };
        let start = writers.partition_point(|&(listed, _)| listed < key);
        let run = &writers[start..];
        let run = &run[..run.partition_point(|&(listed, _)| listed == key)];
        if let Some(&(_, value)) = run.first() {
            if run.iter().all(|&(_, listed)| listed == value) {
                seen_at.push((key, value, create));
            }
        }
    }
    seen_at.sort_unstable();
    seen_at.dedup();
    let first_seen = |&(key, value): &(KeyId, ValueId)| {
        let at = seen_at.partition_point(|&(k, v, _)| (k, v) < (key, value));
        seen_at
            .get(at)
            .filter(|&&(k, v, _)| (k, v) == (key, value))
            .map(|&(_, _, revision)| revision)
    };
    let retried = super::reduce::retried_pairs(ops);
    // The retry pinned for a pair first sighted at `revision`: the latest called in time.
    let is_pinned_retry = |index: usize, pair: &(KeyId, ValueId), revision: i64| {
        let at = retried.partition_point(|(listed, _)| listed < pair);
        let Some((_, writers)) = retried.get(at).filter(|(listed, _)| listed == pair) else {
            return false;
        };
        let by = deadline(revision);
        let in_time = writers.partition_point(|&(call, _)| call <= by);
        writers[in_time.saturating_sub(1)].1 == index
    };
    for (index, op) in ops.iter_mut().enumerate().filter(|(_, op)| op.unknown) {
        let pinned = puts(&op.op).into_iter().find_map(|pair| {
            let revision = first_seen(&pair)?;
            let alone = writer_count(&pair) == 1;
            (alone || is_pinned_retry(index, &pair, revision)).then_some(revision)
        });
        if let Some(revision) = pinned {
            op.unknown = false;
            op.revision_lo = revision - 1;
            op.revision_hi = revision - 1;
        }
    }
}

/// Per key id, the revisions at which a definite or pinned put is known to have written it,
/// sorted: a recorded put's revision, a pinned put's, and a recorded txn's when the branch it
/// took puts the key. Within a recorded lifetime every one of them adds a version, so a key
/// changed at R may have at most the lifetime's version less those still to come after R
/// (standalone disk_faults seed 41: an unknown retry of l00177 = c0-201 made version 2 at 861,
/// before the definite put of the same value at 868 that reads show made version 2; that was
/// found out only at 868, after every order of the writes between).
pub(super) fn known_puts(ops: &[SearchOp], key_count: usize) -> Vec<Vec<i64>> {
    let mut by_key: Vec<Vec<i64>> = vec![Vec::new(); key_count];
    for op in ops.iter().filter(|op| !op.unknown) {
        let (keys, revision): (Vec<KeyId>, i64) = match (&op.op, op.rec.as_deref()) {
            (
                Op::Put { key, .. },
                Some(Rec::Put {
                    revision: Some(revision),
                    ..
                }),
            ) => (vec![*key], *revision),
            (Op::Put { key, .. }, None)
                if op.revision_lo == op.revision_hi && op.revision_hi < i64::MAX =>
            {
                (vec![*key], op.revision_hi + 1)
            }
            (
                Op::Txn {
                    success, failure, ..
                },
                Some(Rec::Txn {
                    revision: Some(revision),
                    succeeded: Some(succeeded),
                    ..
                }),
            ) => {
                let branch = if *succeeded { success } else { failure };
                let keys = branch
                    .iter()
                    .filter_map(|inner| match inner {
                        Op::Put { key, .. } => Some(*key),
                        _ => None,
                    })
                    .collect();
                (keys, *revision)
            }
            _ => continue,
        };
        for key in keys {
            by_key[key as usize].push(revision);
        }
    }
    for revisions in &mut by_key {
        revisions.sort_unstable();
        revisions.dedup();
    }
    by_key
}

/// The kvs serializable reads returned. The search leaves those reads out (they may be stale,
/// so they bind nothing in real time), but each still shows the store as it was at its header
/// revision, as good a record for the witness as a watch event (standalone disk_faults seed
/// 41: only a serializable read showed l00177 at version 2 after the definite put at 868, so
/// nothing kept an unknown retry of that put from taking effect at 861 as well, and the
/// witness found out only through a count at 869, after every order of the writes between).
pub(super) fn serializable_kvs(
    history_ops: &[crate::history::Operation],
    tables: &Tables,
) -> Vec<KvFields> {
    let mut kvs = Vec::new();
    for op in history_ops {
        if !matches!(&op.request, crate::history::Request::Range(range) if range.serializable) {
            continue;
        }
        let Some(rec) = op.result.as_ref().and_then(|response| tables.rec(response)) else {
            continue;
        };
        rec.for_each_kv(&mut |kv: &RecKv| {
            kvs.push((
                kv.key,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            ))
        });
    }
    kvs.sort_unstable();
    kvs.dedup();
    kvs
}
