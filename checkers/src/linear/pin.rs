//! Revision-directed pinning: turns a history with recorded revisions into a nearly forced order
//! before any search. Every revision R > 1 was produced by exactly one effective write, so
//! - an unknown-outcome write whose effect some observation shows (a kv with its value and mod
//!   revision, a watch event at R or an event's prev_kv) is pinned to the revision it produced;
//! - an unknown-outcome key write that can fill no unexplained revision (every revision up to the
//!   last one observed has a definite or pinned writer, or its call comes after the last moment
//!   that revision could have been made) is left out.
//!
//! This only narrows the search to a witness candidate: the caller accepts a history only when
//! the search then finds a complete order (which is replayed on the model and respects real
//! time), and otherwise falls back to the unrestricted search. It never decides a violation.

use super::absent::Absences;
use super::counts::RangeCounts;
use super::needs::PutNeeds;
use super::prepare::SearchOp;
use super::runs::{in_runs, merge_runs, minimum_from, push_run, suffix_minima};
use crate::history::{EventKind, WatchRecord};
use crate::model::{ErrorCode, KeyId, Mark, Op, Rec, RecKv, Store, Tables, ValueId};
use std::collections::{BTreeMap, BTreeSet};

/// What some observation shows was written at one revision: (key, value or `None` = deleted),
/// sorted and distinct.
type Changes = [(KeyId, Option<ValueId>)];

/// The observed changes by revision, grouped in revision-sorted Vecs (built once, then only
/// looked up, so binary search over flat storage rather than a map of sets).
pub(super) struct Observed {
    /// Distinct revisions with a change, ascending.
    revisions: Vec<i64>,
    /// `changes[ends[i - 1]..ends[i]]` (from 0 for the first) are `revisions[i]`'s changes.
    ends: Vec<usize>,
    changes: Vec<(KeyId, Option<ValueId>)>,
}

impl Observed {
    /// Groups (revision, key, value) triples in any order, duplicates allowed.
    fn from_triples(mut triples: Vec<(i64, KeyId, Option<ValueId>)>) -> Self {
        triples.sort_unstable();
        triples.dedup();
        let mut observed = Self {
            revisions: Vec::new(),
            ends: Vec::new(),
            changes: Vec::with_capacity(triples.len()),
        };
        for (revision, key, value) in triples {
            if observed.revisions.last() != Some(&revision) {
                if !observed.revisions.is_empty() {
                    observed.ends.push(observed.changes.len());
                }
                observed.revisions.push(revision);
            }
            observed.changes.push((key, value));
        }
        if !observed.revisions.is_empty() {
            observed.ends.push(observed.changes.len());
        }
        assert_eq!(observed.revisions.len(), observed.ends.len());
        observed
    }

    /// The changes observed at `revision`, if any.
    fn get(&self, revision: i64) -> Option<&Changes> {
        let at = self.revisions.binary_search(&revision).ok()?;
        Some(self.group(at))
    }

    fn group(&self, at: usize) -> &Changes {
        let start = if at == 0 { 0 } else { self.ends[at - 1] };
        &self.changes[start..self.ends[at]]
    }

    /// (revision, changes) in ascending revision order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (i64, &Changes)> {
        (0..self.revisions.len()).map(|at| (self.revisions[at], self.group(at)))
    }
}

/// What watch events and recorded kvs show about each revision's changes, for the witness search
/// to hold every write to.
pub(crate) struct Observations {
    changes: Observed,
    /// Revisions whose whole change set some watch over every key delivered, as sorted,
    /// disjoint, non-adjacent runs (first, last).
    complete: Vec<(i64, i64)>,
    /// Per key id, recorded lifetimes (create revision, mod revision, version), sorted and
    /// distinct: the key existed, created at the first, through the second, with that version
    /// there.
    alive: Vec<Vec<(i64, i64, i64)>>,
    /// Per key id, the revisions known puts wrote it at (see `sightings::known_puts`).
    known_puts: Vec<Vec<i64>>,
    /// Per key id, the revisions at which a read showed it unchanged (a latest read at revision
    /// S returned it with mod revision M: M + 1 through S), as sorted, disjoint, non-adjacent
    /// runs (first, last), so a lookup is a binary search rather than a scan of every read.
    unchanged: Vec<Vec<(i64, i64)>>,
    /// (revision, key) for recorded kvs with a mod revision but no value (keys-only reads): that
    /// revision put that key. Sorted and distinct.
    put_keys: Vec<(i64, KeyId, Option<i64>)>,
    /// (revision, key) for every recorded create revision: that revision created that key (it
    /// was absent just before). Sorted and distinct.
    created: Vec<(i64, KeyId)>,
    /// Keys observed absent at some revision, which must be removable before it.
    absences: Absences,
    /// The puts recorded lifetimes still owe, which must fit together in the free revisions.
    needs: PutNeeds,
    /// The counts reads recorded, which the keys live now must still be able to meet.
    counts: RangeCounts,
    /// Per revision R with an event, the earliest arrival of a watch event at R or later: the
    /// write that made R (or any earlier revision) had happened by then, so was called no later.
    /// Revision-sorted (see `suffix_minima`).
    arrivals: Vec<(i64, i64)>,
}

impl Observations {
    /// Whether an operation called at `call` may have made `revision`: not when some watch
    /// event showing that revision arrived before the call (the event reports a write that had
    /// already happened). Sound for the witness only: a history where no called-in-time writer
    /// exists is left to the general search, and the watch checker reports the early event.
    pub(crate) fn called_in_time(&self, revision: i64, call: i64) -> bool {
        minimum_from(&self.arrivals, revision).is_none_or(|arrival| call <= arrival)
    }

    /// Whether some watch event bounds the call of the write that made its revision.
    pub(crate) fn ties_calls(&self) -> bool {
        !self.arrivals.is_empty()
    }

    /// Whether the write just made (changes since `mark`, now at the store's revision) agrees
    /// with what was observed at that revision; `call` is when that write was called.
    pub(crate) fn admits(&self, store: &Store, mark: Mark, call: i64) -> bool {
        let revision = store.revision();
        let start = self
            .put_keys
            .partition_point(|&(listed, _, _)| listed < revision);
        let puts_seen = self.put_keys[start..]
            .iter()
            .take_while(|&&(listed, _, _)| listed == revision)
            .all(|&(_, key, lease)| {
                store.last_change_revision(key) == Some(revision)
                    && store
                        .get(key)
                        .is_some_and(|state| lease.is_none_or(|lease| state.lease == lease))
            });
        if !puts_seen {
            return false;
        }
        let start = self
            .created
            .partition_point(|&(listed, _)| listed < revision);
        let creations_seen = self.created[start..]
            .iter()
            .take_while(|&&(listed, _)| listed == revision)
            .all(|&(_, key)| {
                store
                    .get(key)
                    .is_some_and(|state| state.create_revision == revision)
            });
        if !creations_seen {
            return false;
        }
        let mut changed = store.changed_since(mark);
        changed.sort_unstable();
        changed.dedup();
        let Some(changes) = self.changes.get(revision) else {
            if in_runs(&self.complete, revision) {
                return false;
            }
            return changed.iter().all(|&key| {
                self.unchanged_agrees(revision, key) && self.lifetime_agrees(store, key)
            }) && self.absences.admits(store, &changed)
                && self.needs.hold(store)
                && self.jointly_removable(store)
                && self.counts.hold(store, &changed, &self.needs, call);
        };
        let agrees = changes.iter().all(|&(key, value)| {
            store.last_change_revision(key) == Some(revision)
                && store.get(key).map(|state| state.value) == value
        });
        if !agrees {
            return false;
        }
        if !changed
            .iter()
            .all(|&key| self.lifetime_agrees(store, key) && self.unchanged_agrees(revision, key))
        {
            return false;
        }
        (!in_runs(&self.complete, revision) || changed.len() == changes.len())
            && self.absences.admits(store, &changed)
            && self.needs.hold(store)
            && self.jointly_removable(store)
            && self.counts.hold(store, &changed, &self.needs, call)
    }

    /// The joint lease check (`Absences::jointly_removable`), run where the write just placed
    /// took a free revision: a known write's revision leaves the free revisions before every
    /// absence as they were.
    fn jointly_removable(&self, store: &Store) -> bool {
        self.needs.is_known(store.revision()) || self.absences.jointly_removable(store, &self.needs)
    }

    /// A key changed at revision R must not lie in a span some read showed it unchanged.
    fn unchanged_agrees(&self, revision: i64, key: KeyId) -> bool {
        !in_runs(&self.unchanged[key as usize], revision)
    }

    /// A key changed at the store's revision R must, for every recorded lifetime spanning R,
    /// exist with that create revision and leave room for the known puts still to come before
    /// the lifetime's end: its version plus theirs at most the version seen there.
    fn lifetime_agrees(&self, store: &Store, key: KeyId) -> bool {
        let revision = store.revision();
        let lifetimes = &self.alive[key as usize];
        let state = store.get(key);
        let created_by = lifetimes.partition_point(|&(create, _, _)| create <= revision);
        let known = &self.known_puts[key as usize];
        let after = known.partition_point(|&put| put <= revision);
        lifetimes[..created_by]
            .iter()
            .filter(|(_, mod_revision, _)| *mod_revision >= revision)
            .all(|&(create, mod_revision, version)| {
                let to_come = known[after..].partition_point(|&put| put <= mod_revision);
                state.is_some_and(|state| {
                    state.create_revision == create && state.version + to_come as i64 <= version
                })
            })
    }
}

/// Pins and prunes `ops` for a witness attempt; returns the narrowed operations and the
/// observations the search must respect. With `with_prev_kvs`, watch events' prev_kvs count
/// among the observations.
pub(crate) fn pin_by_revisions(
    ops: &[SearchOp],
    watches: &[WatchRecord],
    stale_kvs: &[KvFields],
    tables: &Tables,
    with_prev_kvs: bool,
) -> (Vec<SearchOp>, Observations) {
    let mut ops = ops.to_vec();
    delay_expiries(&mut ops);
    let leases_gone_by = leases_gone_by(&ops);
    require_expiries(&mut ops, &leases_gone_by);
    let leases_seen = super::counts::leases_seen(&ops);
    hold_expiries_past_sightings(&mut ops, &leases_seen);
    // Retaining below drops only unknown outcomes, which have no result: these are all the kvs.
    let mut kvs = recorded_kvs(&ops, tables.key_count());
    // A watch event's prev_kv is the key's state just before the event's revision: as good a
    // record of the put that made it as a read's kv (seed 12 of compaction_heavy: the only
    // sign of which retry of an unknown put made revision 797 was a later event's prev_kv).
    if with_prev_kvs {
        kvs.extend(watch_prev_kvs(watches, tables));
    }
    // A put event's kv is the key's state at the event's revision, a lifetime as good as a
    // read's (leader_isolated_during_compaction seed 164: an event showed l00374 created at
    // 760, but the witness let an earlier unknown put with a lease create it and the watch
    // checker then reported the event against that order). An event that contradicts the
    // operations only fails this attempt; the one without watches follows.
    kvs.extend(watch_put_kvs(watches, tables));
    kvs.extend_from_slice(stale_kvs);
    let observed = observations(&kvs, watches, tables);
    let arrivals = event_arrivals(watches);
    {
        let deadline = revision_deadlines(&ops, &arrivals, last_revision(&ops, &observed));
        super::sightings::pin_observed(&mut ops, &observed, &kvs, &deadline);
    }
    let written = written_revisions(&ops);
    let last_revision = last_revision(&ops, &observed);
    let deadline = revision_deadlines(&ops, &arrivals, last_revision);
    // Each gap's deadline and observed changes, looked up once rather than once per operation.
    // Every gap must be filled by a distinct unknown-outcome write. With more gaps than such
    // writes the history cannot be linearized whatever is pruned, so pruning is skipped: this
    // keeps memory bounded by the history's size, not by the revision numbers written in it.
    let unknown_writes_count = ops
        .iter()
        .filter(|op| op.unknown && writes_keys(&op.op))
        .count();
    let gaps_count = usize::try_from(last_revision.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .saturating_sub(written.len());
    if gaps_count <= unknown_writes_count.saturating_add(written.len()) {
        let gaps: Vec<(i64, Option<&Changes>)> = (2..=last_revision)
            .filter(|revision| written.binary_search(revision).is_err())
            .map(|revision| (deadline(revision), observed.get(revision)))
            .collect();
        ops.retain(|op| {
            if !op.unknown || !writes_keys(&op.op) {
                return true;
            }
            gaps.iter()
                .any(|&(deadline, changes)| op.call <= deadline && could_make(&op.op, changes))
        });
    }
    // Sorting keys and then permuting moves each (large) operation once.
    ops.sort_by_cached_key(|op| (op.call, op.id));
    let complete = complete_revisions(watches, tables);
    let alive = lifetimes(&kvs, tables.key_count());
    let absences = Absences::build(&ops, &alive, tables.key_count());
    let needs = PutNeeds::build(&ops, &alive, tables.key_count());
    let put_keys = super::reduce::keys_only_puts(&ops);
    let created = creations(&kvs);
    let known_puts = super::sightings::known_puts(&ops, tables.key_count());
    let mut unchanged = unchanged_spans(&ops, tables.key_count());
    if with_prev_kvs {
        note_prev_kv_spans(&mut unchanged, watches, tables);
    }
    let counts = RangeCounts::build(
        &ops,
        &alive,
        &unchanged,
        &leases_seen,
        &leases_gone_by,
        tables.key_count(),
    );
    (
        ops,
        Observations {
            changes: observed,
            complete,
            alive,
            known_puts,
            unchanged,
            put_keys,
            created,
            absences,
            needs,
            counts,
            arrivals,
        },
    )
}

/// A recorded kv's (key, value, create revision, mod revision, version).
pub(crate) type KvFields = (
    KeyId,
    Option<ValueId>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// The kvs the results of `ops` recorded, for building sets from: a kv equal to the last one
/// recorded for its key is left out (most ranges return the same unchanged kvs again).
fn recorded_kvs(ops: &[SearchOp], key_count: usize) -> Vec<KvFields> {
    let mut last_seen: Vec<Option<KvFields>> = vec![None; key_count];
    let mut kvs = Vec::new();
    for rec in ops.iter().filter_map(|op| op.rec.as_deref()) {
        rec.for_each_kv(&mut |kv: &RecKv| {
            let fields = (
                kv.key,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            );
            let last = &mut last_seen[kv.key as usize];
            if *last != Some(fields) {
                *last = Some(fields);
                kvs.push(fields);
            }
        });
    }
    kvs
}

/// The prev_kvs of watch events, as recorded kvs.
fn watch_prev_kvs<'a>(
    watches: &'a [WatchRecord],
    tables: &'a Tables,
) -> impl Iterator<Item = KvFields> + 'a {
    watches
        .iter()
        .flat_map(|watch| &watch.events)
        .filter_map(|event| event.prev_kv.as_ref())
        .map(|kv| {
            (
                tables.key(&kv.key),
                kv.value.as_deref().map(|value| tables.value(value)),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
}

/// The kvs of watch put events, as recorded kvs.
fn watch_put_kvs<'a>(
    watches: &'a [WatchRecord],
    tables: &'a Tables,
) -> impl Iterator<Item = KvFields> + 'a {
    watches
        .iter()
        .flat_map(|watch| &watch.events)
        .filter(|event| event.kind == EventKind::Put)
        .map(|event| {
            let kv = &event.kv;
            (
                tables.key(&kv.key),
                kv.value.as_deref().map(|value| tables.value(value)),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
}

/// A watch event at revision R with a prev_kv modified at M shows its key unchanged through
/// M + 1 ..= R - 1: adds those spans to `spans` (see `unchanged_spans`).
fn note_prev_kv_spans(spans: &mut [Vec<(i64, i64)>], watches: &[WatchRecord], tables: &Tables) {
    let mut added = false;
    for event in watches.iter().flat_map(|watch| &watch.events) {
        let Some(prev) = &event.prev_kv else {
            continue;
        };
        let through = event.revision - 1;
        if let Some(modified) = prev.mod_revision.filter(|&modified| modified < through) {
            spans[tables.key(&prev.key) as usize].push((modified + 1, through));
            added = true;
        }
    }
    if added {
        for runs in spans.iter_mut() {
            merge_runs(runs);
        }
    }
}

/// (create revision, key) of every recorded kv, sorted and distinct: each names the write that
/// made its revision (standalone watch_heavy_with_compaction seed 2: a read at 714 showed s01
/// created at 707, but the witness filled 706-713 with every other order of eight unknown puts
/// before learning at 714 that 707 was not s01's, and gave up after 200M steps).
fn creations(kvs: &[KvFields]) -> Vec<(i64, KeyId)> {
    let mut created: Vec<(i64, KeyId)> = kvs
        .iter()
        .filter_map(|&(key, _, create, _, _)| {
            create
                .filter(|&create| create > 0)
                .map(|create| (create, key))
        })
        .collect();
    created.sort_unstable();
    created.dedup();
    created
}

/// Per key id, the recorded lifetimes (create revision, mod revision, version), sorted and
/// distinct.
fn lifetimes(kvs: &[KvFields], key_count: usize) -> Vec<Vec<(i64, i64, i64)>> {
    let mut alive: Vec<Vec<(i64, i64, i64)>> = vec![Vec::new(); key_count];
    for &(key, _, create, modified, version) in kvs {
        if let (Some(create), Some(modified), Some(version)) = (create, modified, version) {
            alive[key as usize].push((create, modified, version));
        }
    }
    for lifetimes in &mut alive {
        lifetimes.sort_unstable();
        lifetimes.dedup();
    }
    alive
}

/// Per key, the spans (M, S] a read of the latest state showed it unchanged through: a range
/// with header revision S returning it with mod revision M (seed 77 of the simulator: the
/// witness put an unknown write into such a span and found out only at the next read, after a
/// 2M-step search). A range inside a txn gives S - 1 (the txn may itself write at S, after it).
/// Returned as runs of revisions (see `Observations::unchanged`).
fn unchanged_spans(ops: &[SearchOp], key_count: usize) -> Vec<Vec<(i64, i64)>> {
    let mut spans: Vec<Vec<(i64, i64)>> = vec![Vec::new(); key_count];
    let mut note = |kvs: &[RecKv], through: i64| {
        for kv in kvs {
            if let Some(modified) = kv.mod_revision.filter(|&modified| modified < through) {
                push_run(&mut spans[kv.key as usize], (modified + 1, through));
            }
        }
    };
    for op in ops.iter().filter(|op| !op.unknown) {
        match (&op.op, op.rec.as_deref()) {
            (
                Op::Range { revision: 0, .. },
                Some(Rec::Range {
                    revision: Some(through),
                    kvs: Some(kvs),
                    ..
                }),
            ) => note(kvs, *through),
            (
                Op::Txn {
                    success, failure, ..
                },
                Some(Rec::Txn {
                    revision: Some(recorded),
                    succeeded: Some(succeeded),
                    responses: Some(list),
                    ..
                }),
            ) => {
                let branch = if *succeeded { success } else { failure };
                for (inner, rec) in branch.iter().zip(list) {
                    if let (Op::Range { revision: 0, .. }, Rec::Range { kvs: Some(kvs), .. }) =
                        (inner, rec)
                    {
                        note(kvs, recorded - 1);
                    }
                }
            }
            _ => {}
        }
        if let Some(rec) = op.rec.as_deref() {
            note_write_prev_kvs(rec, &mut note);
        }
    }
    for runs in &mut spans {
        merge_runs(runs);
    }
    spans
}

/// A write at revision R that returned a key's previous kv modified at M shows the key
/// unchanged through M + 1 ..= R - 1 (standalone compaction_heavy 67: a delete's prev_kvs
/// showed s05 untouched since 1036, but the witness filled the gaps below it with old unknown
/// puts of s05 and found out only at the delete, after 50M steps). Inside a txn, an earlier
/// request of the same txn may have changed the key at R itself: then M = R and nothing is
/// noted.
fn note_write_prev_kvs(rec: &Rec, note: &mut impl FnMut(&[RecKv], i64)) {
    match rec {
        Rec::Put {
            revision: Some(revision),
            prev_kv: Some(Some(kv)),
        } => note(std::slice::from_ref(kv), revision - 1),
        Rec::Delete {
            revision: Some(revision),
            deleted: Some(deleted),
            prev_kvs: Some(kvs),
        } if *deleted > 0 => note(kvs, revision - 1),
        Rec::Txn {
            responses: Some(responses),
            ..
        } => {
            for inner in responses {
                note_write_prev_kvs(inner, note);
            }
        }
        _ => {}
    }
}

/// Per revision R with an event, the earliest time an event at R or later arrived.
fn event_arrivals(watches: &[WatchRecord]) -> Vec<(i64, i64)> {
    suffix_minima(
        watches
            .iter()
            .flat_map(|watch| &watch.events)
            .map(|event| (event.revision, event.time))
            .collect(),
    )
}

/// Revisions a watch over every key delivered completely: from its start (or first event) up to
/// its last event, every change is an event (the watch checker holds streams to that).
fn complete_revisions(watches: &[WatchRecord], tables: &Tables) -> Vec<(i64, i64)> {
    let mut complete = Vec::new();
    for watch in watches {
        let (lo, hi) = tables.span(&watch.key, watch.range_end.as_deref());
        let (Some(first), Some(last)) = (watch.events.first(), watch.events.last()) else {
            continue;
        };
        if lo != 0 || hi as usize != tables.key_count() {
            continue;
        }
        let start = if watch.start_revision > 0 {
            watch.start_revision
        } else {
            first.revision
        };
        if start <= last.revision {
            complete.push((start, last.revision));
        }
    }
    merge_runs(&mut complete);
    complete
}

/// A lease expires at most once and is gone for good, so its expiry comes after every definite
/// operation that found it alive (including unknown-outcome puts with the lease that pinning
/// showed took effect); the witness attempt only tries expiries after those were
/// called. Not after they returned: a put with the lease may take effect long before its reply
/// arrives, and the expiry can fall in between (in simulator runs: a put with lease 6 made
/// revision 180, the expiry deleted the lease's keys at 181, and only then did the put's reply
/// arrive). Holding expiries past those replies made the witness fail and the general search
/// run out of budget.
fn delay_expiries(ops: &mut [SearchOp]) {
    let mut alive_until: BTreeMap<i64, i64> = BTreeMap::new();
    for op in ops.iter().filter(|op| !op.unknown) {
        let mut leases = Vec::new();
        match (op.rec.as_deref(), &op.op) {
            (Some(Rec::Error(_)), _) => continue,
            (Some(rec), _) => leases_used(&op.op, Some(rec), &mut leases),
            // Pinned or promoted: an observation shows this put took effect, so its lease
            // was alive then (seed 149: the expiry went before such a put and the witness
            // drowned in expiry subsets).
            (None, Op::Put { lease, .. }) if *lease != 0 => leases.push(*lease),
            (None, _) => continue,
        }
        for lease in leases {
            let entry = alive_until.entry(lease).or_insert(op.call);
            *entry = (*entry).max(op.call);
        }
    }
    for op in ops.iter_mut() {
        if let Op::Expire { id } = op.op {
            if let Some(&until) = alive_until.get(&id) {
                op.call = op.call.max(until.saturating_add(1));
            }
        }
    }
}

/// A lease whose key a read at R showed attached to it had not ended by R, so its expiry comes
/// with the store at R or later; `seen` is `counts::leases_seen(ops)`. Otherwise the witness
/// may try an expiry in a revision gap well before such a read (standalone
/// clock_drift_with_leases seed 84: lease 94's, before 878, though a read at 882 showed s05
/// still attached to it).
fn hold_expiries_past_sightings(ops: &mut [SearchOp], seen: &BTreeMap<i64, i64>) {
    for op in ops.iter_mut() {
        if let Op::Expire { id } = op.op {
            if let Some(&revision) = seen.get(&id) {
                op.revision_lo = op.revision_lo.max(revision);
            }
        }
    }
}

/// Per lease id, the earliest return of a definite operation that found it missing after its
/// only grant returned, with no revoke that may have worked: the lease had expired by then,
/// and is gone for good.
pub(super) fn leases_gone_by(ops: &[SearchOp]) -> BTreeMap<i64, i64> {
    let mut granted: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut revoked: BTreeSet<i64> = BTreeSet::new();
    for op in ops.iter() {
        match (&op.op, op.rec.as_deref()) {
            (Op::LeaseGrant { id, .. }, Some(Rec::LeaseGrant { .. })) if !op.unknown => {
                granted.entry(*id).or_default().push(op.ret)
            }
            (Op::LeaseGrant { id, .. }, None) => granted.entry(*id).or_default().push(i64::MAX),
            (Op::LeaseRevoke { id }, rec) if !matches!(rec, Some(Rec::Error(_))) => {
                revoked.insert(*id);
            }
            _ => {}
        }
    }
    let mut gone_by: BTreeMap<i64, i64> = BTreeMap::new();
    for op in ops.iter().filter(|op| !op.unknown) {
        if !matches!(
            op.rec.as_deref(),
            Some(Rec::Error(ErrorCode::LeaseNotFound))
        ) {
            continue;
        }
        let lease = match op.op {
            Op::Put { lease, .. } => lease,
            Op::LeaseKeepAlive { id } | Op::LeaseRevoke { id } => id,
            _ => continue,
        };
        let Some([grant_return]) = granted.get(&lease).map(Vec::as_slice) else {
            continue;
        };
        if lease == 0 || revoked.contains(&lease) || op.call <= *grant_return {
            continue;
        }
        let entry = gone_by.entry(lease).or_insert(op.ret);
        *entry = (*entry).min(op.ret);
    }
    gone_by
}

/// A lease in `gone_by` (`leases_gone_by`) can only have expired, before the operation that
/// found it missing returned: the witness attempt makes its expiry mandatory with that return
/// as its own. The search then places it early rather than trying unobserved writes in the
/// revision gap first and finding out many revisions later (seed 77 of the simulator: a put
/// with lease 66 got lease_not_found; the witness filled the gap the expiry needed with an
/// unknown put and gave up after 3M steps).
fn require_expiries(ops: &mut [SearchOp], gone_by: &BTreeMap<i64, i64>) {
    for op in ops.iter_mut() {
        if let Op::Expire { id } = op.op {
            if let Some(&ret) = gone_by.get(&id) {
                op.unknown = false;
                op.ret = ret;
            }
        }
    }
}

/// The leases `op` used, answered `rec`: a txn's put used its lease only on the branch taken
/// (a txn that failed its compare put nothing, so its success branch's lease may have expired
/// before: an election's proclaim by a leader whose lease expired while it was paused). Both
/// branches count when the branch taken was not recorded.
fn leases_used(op: &Op, rec: Option<&Rec>, leases: &mut Vec<i64>) {
    match op {
        Op::Put { lease, .. } if *lease != 0 => leases.push(*lease),
        Op::LeaseRevoke { id } | Op::LeaseKeepAlive { id } => leases.push(*id),
        Op::Txn {
            success, failure, ..
        } => match rec {
            Some(Rec::Txn {
                succeeded: Some(succeeded),
                responses,
                ..
            }) => {
                let branch = if *succeeded { success } else { failure };
                for (index, inner) in branch.iter().enumerate() {
                    let inner_rec = responses.as_ref().and_then(|list| list.get(index));
                    leases_used(inner, inner_rec, leases);
                }
            }
            _ => success
                .iter()
                .chain(failure)
                .for_each(|inner| leases_used(inner, None, leases)),
        },
        _ => {}
    }
}

/// Every (revision, key, value) some definite result or watch event shows as written.
fn observations(kvs: &[KvFields], watches: &[WatchRecord], tables: &Tables) -> Observed {
    let mut triples = Vec::new();
    for &(key, value, _, modified, _) in kvs {
        if let (Some(value), Some(revision)) = (value, modified) {
            triples.push((revision, key, Some(value)));
        }
    }
    for event in watches.iter().flat_map(|watch| &watch.events) {
        let key = tables.key(&event.kv.key);
        let value = match event.kind {
            EventKind::Put => match &event.kv.value {
                Some(value) => Some(tables.value(value)),
                None => continue,
            },
            EventKind::Delete => None,
        };
        triples.push((event.revision, key, value));
    }
    Observed::from_triples(triples)
}

/// Revisions some definite (or pinned) operation is known to have written, sorted and
/// distinct.
fn written_revisions(ops: &[SearchOp]) -> Vec<i64> {
    let mut written: Vec<i64> = super::needs::known_writes(ops)
        .into_iter()
        .map(|(revision, _)| revision)
        .collect();
    written.dedup();
    written
}

/// The greatest revision any definite result or observation mentions.
fn last_revision(ops: &[SearchOp], observed: &Observed) -> i64 {
    let from_ops = ops
        .iter()
        .filter(|op| !op.unknown && op.revision_hi < i64::MAX)
        .map(|op| op.revision_hi + 1)
        .max()
        .unwrap_or(1);
    let from_observed = observed.revisions.last().copied().unwrap_or(1);
    from_ops.max(from_observed)
}

/// For each revision R, the latest time by which the write making R must have been called: the
/// earliest return of a definite operation that saw R or later, and the earliest arrival of a
/// watch event at R or later.
fn revision_deadlines(
    ops: &[SearchOp],
    arrivals: &[(i64, i64)],
    last_revision: i64,
) -> impl Fn(i64) -> i64 {
    // A result's header revision, not the lower bound of where it ran: a txn that read at 302
    // may have made 302 itself, but either way 302 existed by its return (standalone
    // crash_during_snapshot_install seed 132: a failed txn read at 302 while three identical
    // retried txns could make 302; with 301 as its sighting, the deadline let the retry called
    // after it returned fill 302, and the witness, stuck at 301, gave up after 200M steps).
    let mut pairs: Vec<(i64, i64)> = ops
        .iter()
        .filter(|op| !op.unknown && op.revision_lo > 0)
        .filter_map(|op| {
            let header = super::counts::header_revision(op.rec.as_deref()?);
            Some((header.unwrap_or(op.revision_lo), op.ret))
        })
        .collect();
    // The events' suffix minima stand for all events: the least time at or after R is the same.
    pairs.extend_from_slice(arrivals);
    // Suffix minimum: a result at revision S >= R also bounds R.
    let suffix = suffix_minima(pairs);
    move |revision: i64| {
        if revision > last_revision {
            return i64::MAX;
        }
        minimum_from(&suffix, revision).unwrap_or(i64::MAX)
    }
}

/// Whether `op` could have made exactly the observed changes at one revision (anything when
/// nothing was observed there).
fn could_make(op: &Op, changes: Option<&Changes>) -> bool {
    let Some(changes) = changes else {
        return true;
    };
    let written = puts(op);
    changes.iter().all(|&(key, value)| match value {
        Some(value) => written.contains(&(key, value)),
        None => deletes_key(op, key),
    })
}

pub(super) fn puts(op: &Op) -> Vec<(KeyId, ValueId)> {
    match op {
        Op::Put { key, value, .. } => vec![(*key, *value)],
        Op::Txn {
            success, failure, ..
        } => success.iter().chain(failure).flat_map(puts).collect(),
        _ => Vec::new(),
    }
}

fn deletes_key(op: &Op, key: KeyId) -> bool {
    match op {
        Op::Delete { lo, hi, .. } => (*lo..*hi).contains(&key),
        Op::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .any(|inner| deletes_key(inner, key)),
        _ => false,
    }
}

/// Whether an operation writes keys whenever it changes anything (the ones a gap can hold).
fn writes_keys(op: &Op) -> bool {
    matches!(op, Op::Put { .. } | Op::Delete { .. } | Op::Txn { .. })
}

#[cfg(test)]
mod tests {
    use super::leases_used;
    use crate::model::{Op, Rec};

    /// Goal: a txn used a lease only on the branch it took (a paused leader's refused proclaim
    /// puts with its lease in the branch that did not run, and must not hold the lease's
    /// expiry back). Method: one txn whose success branch puts with lease 7 and whose failure
    /// branch keeps lease 9 alive, answered failed, succeeded and unrecorded.
    #[test]
    fn a_txn_uses_the_leases_of_the_branch_it_took() {
        let put = Op::Put {
            key: 0,
            value: 1,
            lease: 7,
            prev_kv: false,
        };
        let txn = Op::Txn {
            compares: Vec::new(),
            success: vec![put],
            failure: vec![Op::LeaseKeepAlive { id: 9 }],
        };
        let answered = |succeeded: bool| Rec::Txn {
            revision: None,
            succeeded: Some(succeeded),
            responses: None,
        };
        let used = |rec: Option<&Rec>| {
            let mut leases = Vec::new();
            leases_used(&txn, rec, &mut leases);
            leases
        };
        assert_eq!(used(Some(&answered(false))), vec![9]);
        assert_eq!(used(Some(&answered(true))), vec![7]);
        assert_eq!(used(None), vec![7, 9]);
    }
}
