//! Pinning unknown-outcome puts to the revisions observations show they made (part of the
//! witness attempt, `pin`). A (key, value) pair is sighted at revision R when a recorded kv or
//! a watch event shows that value written at R, or when a recorded lifetime shows the key
//! created at R and every put of the key in the history writes that one value.
//!
//! - A pair that one operation alone puts, sighted at R, was put by it at R.
//! - A pair that only retries of one request put (equal unknown-outcome requests) is pinned to
//!   its first sighting, with the earliest-called retry: whichever retry made that revision,
//!   the earliest can be placed wherever it was. That misses an order only where a retry made
//!   an earlier revision nobody saw; the witness then fails and the general search decides.
//!   Creations are what narrow that: standalone lease_heavy seed 10 has two retries of
//!   l00461 = c8-14, seen by reads only at 88 (version 2, created at 63). Pinned to 88, the
//!   first retry left the creation at 63 without a writer, the witness failed after 900 steps
//!   and the general search gave up after 200M; with the creation sighted it is pinned to 63.
//!   (Holding the pin back wherever the lifetime's version shows unseen puts before the
//!   sighting decided seed 10 too, but made lease_heavy seed 3 take 2.7 s instead of 10 ms.)

use super::pin::{puts, KvFields, Observed};
use super::prepare::SearchOp;
use crate::model::{KeyId, ValueId};

/// An unknown write that alone puts a (key, value) sighted at revision R took effect at R; the
/// first of a retried pair's writers is pinned to the pair's first sighting (module doc).
pub(super) fn pin_observed(ops: &mut [SearchOp], observed: &Observed, kvs: &[KvFields]) {
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
    let is_first_retry = |index: usize, pair: &(KeyId, ValueId)| {
        let at = retried.partition_point(|(listed, _)| listed < pair);
        retried
            .get(at)
            .is_some_and(|(listed, first)| listed == pair && *first == index)
    };
    for (index, op) in ops.iter_mut().enumerate().filter(|(_, op)| op.unknown) {
        let pinned = puts(&op.op).into_iter().find_map(|pair| {
            let revision = first_seen(&pair)?;
            let alone = writer_count(&pair) == 1;
            (alone || is_first_retry(index, &pair)).then_some(revision)
        });
        if let Some(revision) = pinned {
            op.unknown = false;
            op.revision_lo = revision - 1;
            op.revision_hi = revision - 1;
        }
    }
}
