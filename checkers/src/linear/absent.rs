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
//! Recorded lifetimes (created at C, version V at mod revision M) bound versions from below the
//! same way: at R a key's version must be at least V minus the revisions in (R, M] that could
//! still put it (buggified compaction_heavy 123 and single_member_crashes 655: the witness
//! filled a gap with the wrong number of puts of a key and found out only at M). The bound from
//! above is `pin`'s, and the floors of several keys together are `needs`'.
//!
//! Sound for the witness only, which never decides a violation: a rejected order is one the
//! general search would reject later anyway, but the counts here are coarse (any delete of the
//! key counts as possible, whenever it was called), so this only narrows.

use super::by_revision::RevisionStarts;
use super::needs::PutNeeds;
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
    /// Where each revision's entries start in `windows`.
    window_starts: RevisionStarts,
    /// The version floors the recorded lifetimes set (see `VersionFloors`).
    floors: VersionFloors,
    /// Per key id, when only definite writes at known revisions can start the key's removal
    /// (see `strict_removals`), those revisions, sorted; `None` when something else might.
    strict_removals: Vec<Option<Vec<i64>>>,
    /// Per key id, (create revision, greatest mod revision) of each incarnation a recorded
    /// lifetime shows, sorted.
    incarnations: Vec<Vec<(i64, i64)>>,
    /// The keys observed absent somewhere that only a lease's end can remove (a removal count
    /// of 2), ascending.
    lease_only: Vec<KeyId>,
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
        listed_absences(ops, |key, at, _| absent_at[key as usize].push(at));
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
        let mut windows = Vec::new();
        for (key, list) in absent_at.iter().enumerate() {
            // A key no operation puts is never in the store.
            if !ever_put[key] {
                continue;
            }
            for &absent in list {
                // Walk down from S: each revision not pinned to a deleting-nothing write adds
                // one to the capacity; at 2 every removal fits, so the window ends.
                // `keeping[..end]` are the entries at or below `revision`; the walk moves it
                // down with the revision instead of searching at every step.
                let mut capacity: u8 = 0;
                let mut revision = absent;
                let mut end = keeping.partition_point(|&(listed, _)| listed <= revision);
                while revision >= 1 && capacity < 2 {
                    windows.push((revision, key as KeyId, capacity));
                    let mut start = end;
                    while start > 0 && keeping[start - 1].0 == revision {
                        start -= 1;
                    }
                    let pinned = &keeping[start..end];
                    if pinned.is_empty() || pinned.iter().any(|&(_, put)| put == key as KeyId) {
                        capacity += 1;
                    }
                    end = start;
                    revision -= 1;
                }
            }
        }
        // Keys come in ascending order and one key's absences too, so within a revision the
        // entries are by key, and for one key the nearest absence (least capacity) comes first.
        let mut windows = by_revision(windows);
        windows.dedup_by_key(|&mut (revision, key, _)| (revision, key));
        let floors = VersionFloors::build(lifetimes, &keeping, key_count);
        let incarnations = lifetimes
            .iter()
            .map(|list| {
                list.chunk_by(|a, b| a.0 == b.0)
                    .map(|same| (same[0].0, same.iter().map(|l| l.1).max().unwrap_or(0)))
                    .collect()
            })
            .collect();
        let lease_only = (0..key_count as KeyId)
            .filter(|&key| {
                removal_revisions[key as usize] == 2 && !absent_at[key as usize].is_empty()
            })
            .collect();
        let revisions: Vec<i64> = windows.iter().map(|&(revision, ..)| revision).collect();
        Absences {
            absent_at,
            removal_revisions,
            window_starts: RevisionStarts::build(&revisions),
            windows,
            floors,
            strict_removals: strict_removals(ops, key_count),
            incarnations,
            lease_only,
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
        if !forever
            || !changed
                .iter()
                .all(|&key| self.strictly_removable(store, key))
        {
            return false;
        }
        let start = self.window_starts.first_at(revision, || {
            self.windows
                .partition_point(|&(listed, _, _)| listed < revision)
        });
        let removable = self.windows[start..]
            .iter()
            .take_while(|&&(listed, _, _)| listed == revision)
            .all(|&(_, key, capacity)| removable_in(key, capacity));
        if !removable {
            return false;
        }
        self.floors.hold(store, revision)
    }
}

impl Absences {
    /// Whether the keys that only their leases' ends can remove fit, together with the puts
    /// recorded lifetimes owe, in the free revisions before their absences (revisions no
    /// known write holds, `PutNeeds::free_revisions`). The capacity windows check each key
    /// alone, so where several
    /// keys of distinct leases are read absent after an outage, an expiry placed early in it
    /// is found out only when the last free revision is gone, after every order of the
    /// revisions between has been tried (standalone lease_heavy seed 125: lease 23's expiry
    /// placed at 942, where the run made it at 948, and the keys of leases 84, 77 and 83 read
    /// absent at 963 with 953 to 962 all known writes).
    ///
    /// Sound for the witness: a key counted here is deleted by nothing in the history and put
    /// by no write at a known revision before its absence, nor by a txn with another key, and
    /// its incarnation has no recorded lifetime past R, so no owed put is one of its puts. It
    /// leaves by its lease's end, or by a put with another lease (a free revision moving that
    /// one key) and that lease's end; ends of distinct leases are distinct revisions, none of
    /// them a known write or a put. So each distinct lease among the keys due by S costs at
    /// least one free revision in (R, S], on top of the owed puts.
    pub(crate) fn jointly_removable(&self, store: &Store, needs: &PutNeeds) -> bool {
        let revision = store.revision();
        let horizon = revision.saturating_add(JOINT_WINDOW_REVISIONS);
        let mut due = [(0i64, 0i64); JOINT_KEYS_MAX];
        let mut due_len = 0;
        let unleased = self.lease_only.iter().filter_map(|&key| {
            store
                .get(key)
                .filter(|state| state.lease == 0)
                .map(|_| (0, key))
        });
        for (lease, key) in store.leased_keys().chain(unleased) {
            if self.removal_revisions[key as usize] != 2 || !needs.puts_alone(key) {
                continue;
            }
            let absences = &self.absent_at[key as usize];
            let Some(&absent) = absences.get(absences.partition_point(|&at| at <= revision)) else {
                continue;
            };
            if absent > horizon || needs.known_put_between(key, revision, absent) {
                continue;
            }
            let state = store.get(key).expect("a leased key is live");
            let incarnations = self
                .incarnations
                .get(key as usize)
                .map_or(&[][..], Vec::as_slice);
            let recorded_later = incarnations
                .binary_search_by_key(&state.create_revision, |&(create, _)| create)
                .is_ok_and(|at| incarnations[at].1 > revision);
            if recorded_later {
                continue;
            }
            if due_len == JOINT_KEYS_MAX {
                break;
            }
            due[due_len] = (absent, lease);
            due_len += 1;
        }
        let due = &mut due[..due_len];
        due.sort_unstable();
        let mut leases = [0i64; JOINT_KEYS_MAX];
        let mut distinct = 0;
        let mut moves = 0;
        for (at, &(deadline, lease)) in due.iter().enumerate() {
            if lease == 0 {
                moves += 1;
            } else if !leases[..distinct].contains(&lease) {
                leases[distinct] = lease;
                distinct += 1;
            }
            if due.get(at + 1).is_some_and(|next| next.0 == deadline) {
                continue;
            }
            // An unleased key may join a lease counted already, but some lease must end.
            let ends = distinct.max(usize::from(moves > 0));
            let needed = needs
                .owed_by(store, deadline)
                .saturating_add((ends + moves) as i64);
            if needed > needs.free_revisions(revision, deadline) {
                return false;
            }
        }
        true
    }

    /// A key just written at R, attached to no lease, that only definite writes can start
    /// removing (`strict_removals`) needs one of them in (R, S], S its next absence. The capacity windows count every unpinned
    /// revision as a possible removal, so without this a put of such a key fills a gap far
    /// below S and is found out only at S, after every gap between has been tried with every
    /// filler (standalone permissions_revoked_under_load seed 8: unknown puts of s01, s02 and
    /// s05 tried in the nine gaps lease expiries made at 769 to 777, each key read absent at
    /// 780 to 786 with no delete of it in between).
    fn strictly_removable(&self, store: &Store, key: KeyId) -> bool {
        let Some(removals) = &self.strict_removals[key as usize] else {
            return true;
        };
        if store.get(key).is_none_or(|state| state.lease != 0) {
            return true;
        }
        let revision = store.revision();
        let absences = &self.absent_at[key as usize];
        let Some(&absent) = absences.get(absences.partition_point(|&at| at < revision)) else {
            return true;
        };
        let after = removals.partition_point(|&made| made <= revision);
        removals.get(after).is_some_and(|&made| made <= absent)
    }
}

/// Calls `absent(key, revision, read)` for every key a full listing (a definite range at the
/// latest revision, no limit, every key it counts listed) shows absent.
pub(super) fn listed_absences(ops: &[SearchOp], mut absent: impl FnMut(KeyId, i64, &SearchOp)) {
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
                absent(key, *at, op);
            }
        }
    }
}

/// Absences this many revisions past the store's at most take part in the joint lease check:
/// a bound on the keys it walks, wide enough to span an outage's unobserved revisions (on the
/// simulator's histories its cost did not show beside a window of 64).
const JOINT_WINDOW_REVISIONS: i64 = 1000;

/// Leased keys the joint lease check counts at most (a fixed array: the check runs at every
/// placement in a free revision); past it the rest are left out, which only weakens it.
const JOINT_KEYS_MAX: usize = 64;

/// `entries` sorted by revision, keeping their order within one revision: a counting sort
/// over the revisions spanned (the simulator's histories make tens of thousands of window
/// entries over a few thousand revisions, and a comparison sort of them was a fifth of a
/// check), or a stable comparison sort when the span is far wider than the entries.
fn by_revision(mut entries: Vec<(i64, KeyId, u8)>) -> Vec<(i64, KeyId, u8)> {
    let (Some(lowest), Some(highest)) = (
        entries.iter().map(|entry| entry.0).min(),
        entries.iter().map(|entry| entry.0).max(),
    ) else {
        return entries;
    };
    let span = highest
        .checked_sub(lowest)
        .and_then(|span| usize::try_from(span).ok())
        .filter(|&span| span <= entries.len().saturating_mul(4).saturating_add(1024));
    let Some(span) = span else {
        entries.sort_by_key(|entry| entry.0);
        return entries;
    };
    let slot = |revision: i64| (revision - lowest) as usize;
    let mut starts = vec![0usize; span + 2];
    for entry in &entries {
        starts[slot(entry.0) + 1] += 1;
    }
    for at in 1..starts.len() {
        starts[at] += starts[at - 1];
    }
    let mut sorted = vec![(0, 0, 0); entries.len()];
    for entry in entries {
        let next = &mut starts[slot(entry.0)];
        sorted[*next] = entry;
        *next += 1;
    }
    sorted
}

/// Per key id, the revisions of the writes that could start its removal, when each of them is
/// a definite (or pinned) write whose revision is known; `None` for every other key. A key
/// attached to no lease leaves the store only by a delete, or by a put with a lease and then
/// that lease's end: the list holds the revisions of the deletes of the key and of its puts with
/// a lease. So a key is listed when no unknown-outcome operation deletes it or puts it with a
/// lease. A write that failed removes nothing and is not listed; one that deleted nothing is
/// listed anyway (the list only has to hold every possible removal).
fn strict_removals(ops: &[SearchOp], key_count: usize) -> Vec<Option<Vec<i64>>> {
    let mut removals: Vec<Option<Vec<i64>>> = vec![Some(Vec::new()); key_count];
    let mut spans = Vec::new();
    for op in ops {
        if matches!(op.rec.as_deref(), Some(Rec::Error(_))) {
            continue;
        }
        spans.clear();
        removal_spans(&op.op, &mut spans);
        if spans.is_empty() {
            continue;
        }
        let made = super::counts::made_revision(op);
        for &(lo, hi) in &spans {
            for key in lo..hi {
                let entry = &mut removals[key as usize];
                match (made, entry.as_mut()) {
                    (Some(made), Some(list)) => list.push(made),
                    _ => *entry = None,
                }
            }
        }
    }
    for list in removals.iter_mut().flatten() {
        list.sort_unstable();
        list.dedup();
    }
    removals
}

/// The key spans `op` may delete or put with a lease (either branch of a txn).
fn removal_spans(op: &Op, spans: &mut Vec<(KeyId, KeyId)>) {
    match op {
        Op::Delete { lo, hi, .. } => spans.push((*lo, *hi)),
        Op::Put { key, lease, .. } if *lease != 0 => spans.push((*key, *key + 1)),
        Op::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .for_each(|inner| removal_spans(inner, spans)),
        _ => {}
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

/// Revisions per bucket of `VersionFloors`' index: a lifetime is listed once per bucket its
/// binding span meets, not once per revision (a table entry per revision, built and sorted for
/// every check, was most of the check's time on the simulator's histories).
const FLOOR_BUCKET_REVISIONS: i64 = 64;

/// Index entries at most: past it, further lifetimes set no floor. Dropping a floor only
/// narrows the witness less, so this bounds memory on histories with huge revision numbers
/// without changing any verdict.
const FLOOR_INDEX_ENTRIES_MAX: usize = 1 << 22;

/// Version floors from recorded lifetimes. A lifetime (created at C, version V at mod revision
/// M) leaves in (R, M] only `capacity(R, M]` revisions that could put the key (those not pinned
/// to a definite write that deletes nothing and puts other keys), so at any R in [C, M) the
/// key, if created at C, has at least version V - capacity(R, M]. With K(r) the kept revisions
/// up to r and P(r) those among them whose write may put the key,
/// capacity(R, M] = (M - R) - (K(M) - K(R)) + (P(M) - P(R)), so the floor at R is
/// F + g(R), with F = V - M + K(M) - P(M) fixed per lifetime and g(R) = R - K(R) + P(R)
/// nondecreasing: the binding floor is the greatest F among the lifetimes ending after R.
struct VersionFloors {
    /// Distinct revisions pinned to a definite write that deletes nothing, sorted.
    kept: Vec<i64>,
    /// Per key id, the kept revisions whose write may put the key, sorted.
    kept_puts: Vec<Vec<i64>>,
    /// One group per (key, create revision) with a lifetime that can bind.
    groups: Vec<FloorGroup>,
    /// (bucket, group index): the groups whose binding span meets the bucket. Sorted.
    index: Vec<(i64, u32)>,
}

/// The lifetimes of one key's incarnation created at one revision.
struct FloorGroup {
    key: KeyId,
    create: i64,
    /// (M, greatest F over this group's lifetimes ending at M or later), sorted by M.
    ends: Vec<(i64, i64)>,
}

impl VersionFloors {
    fn build(
        lifetimes: &[Vec<(i64, i64, i64)>],
        keeping: &[(i64, KeyId)],
        key_count: usize,
    ) -> VersionFloors {
        // `keeping` is sorted by (revision, key) and distinct.
        let mut kept: Vec<i64> = keeping.iter().map(|&(revision, _)| revision).collect();
        kept.dedup();
        let mut kept_puts: Vec<Vec<i64>> = vec![Vec::new(); key_count];
        for &(revision, key) in keeping {
            kept_puts[key as usize].push(revision);
        }
        let mut floors = VersionFloors {
            kept,
            kept_puts,
            groups: Vec::new(),
            index: Vec::new(),
        };
        for (key, list) in lifetimes.iter().enumerate() {
            // Sorted by create revision, so one incarnation's lifetimes are adjacent.
            for same in list.chunk_by(|a, b| a.0 == b.0) {
                let create = same[0].0;
                let mut ends = Vec::with_capacity(same.len());
                let mut lowest = i64::MAX;
                let mut last_end = create;
                for &(_, modified, version) in same.iter().filter(|&&(_, m, _)| m > create) {
                    let fixed = version - floors.gain(key as KeyId, modified);
                    // The floor binds (exceeds 1, which every version meets) from the first R
                    // in [C, M) where F + g(R) >= 2; g is nondecreasing, so bisect.
                    let (mut lo, mut hi) = (create, modified);
                    while lo < hi {
                        let mid = lo + (hi - lo) / 2;
                        if fixed + floors.gain(key as KeyId, mid) >= 2 {
                            hi = mid;
                        } else {
                            lo = mid + 1;
                        }
                    }
                    if lo < modified {
                        lowest = lowest.min(lo);
                        last_end = last_end.max(modified);
                        ends.push((modified, fixed));
                    }
                }
                if ends.is_empty() {
                    continue;
                }
                ends.sort_unstable();
                for at in (1..ends.len()).rev() {
                    ends[at - 1].1 = ends[at - 1].1.max(ends[at].1);
                }
                let first = lowest.div_euclid(FLOOR_BUCKET_REVISIONS);
                let last = (last_end - 1).div_euclid(FLOOR_BUCKET_REVISIONS);
                let entries = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
                if floors.index.len().saturating_add(entries) > FLOOR_INDEX_ENTRIES_MAX {
                    continue;
                }
                let group = u32::try_from(floors.groups.len()).expect("groups fit in u32");
                floors
                    .index
                    .extend((first..=last).map(|bucket| (bucket, group)));
                floors.groups.push(FloorGroup {
                    key: key as KeyId,
                    create,
                    ends,
                });
            }
        }
        floors.index.sort_unstable();
        floors
    }

    /// g(R) = R - K(R) + P(R) for `key` (see the type's doc).
    fn gain(&self, key: KeyId, revision: i64) -> i64 {
        let upto = |list: &[i64]| list.partition_point(|&listed| listed <= revision) as i64;
        revision - upto(&self.kept) + upto(&self.kept_puts[key as usize])
    }

    /// Whether every key in `store` (at `revision`) meets the floors its lifetimes set.
    fn hold(&self, store: &Store, revision: i64) -> bool {
        self.groups_at(revision).all(|group| {
            store.get(group.key).is_none_or(|state| {
                state.create_revision != group.create
                    || self
                        .group_floor(group, revision)
                        .is_none_or(|least| state.version >= least)
            })
        })
    }

    /// The groups whose binding span may hold `revision`.
    fn groups_at(&self, revision: i64) -> impl Iterator<Item = &FloorGroup> {
        let bucket = revision.div_euclid(FLOOR_BUCKET_REVISIONS);
        let start = self.index.partition_point(|&(listed, _)| listed < bucket);
        self.index[start..]
            .iter()
            .take_while(move |&&(listed, _)| listed == bucket)
            .map(|&(_, group)| &self.groups[group as usize])
    }

    /// The least version `group`'s lifetimes ending after `revision` allow at it.
    fn group_floor(&self, group: &FloorGroup, revision: i64) -> Option<i64> {
        let at = group
            .ends
            .partition_point(|&(modified, _)| modified <= revision);
        let &(_, fixed) = group.ends.get(at)?;
        Some(fixed + self.gain(group.key, revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The binding floor above 1 for (key, create) at `revision`, through the index.
    fn floor_via_index(
        floors: &VersionFloors,
        key: KeyId,
        create: i64,
        revision: i64,
    ) -> Option<i64> {
        floors
            .groups_at(revision)
            .filter(|group| group.key == key && group.create == create && revision >= create)
            .filter_map(|group| floors.group_floor(group, revision))
            .max()
            .filter(|&least| least > 1)
    }

    /// The table the floors replace, built as it was: walk down from each lifetime's M,
    /// counting the revisions that could put the key, one entry per revision.
    fn reference(
        lifetimes: &[Vec<(i64, i64, i64)>],
        keeping: &[(i64, KeyId)],
    ) -> std::collections::BTreeMap<(i64, KeyId, i64), i64> {
        let keeps = |revision: i64, key: KeyId| {
            let listed: Vec<KeyId> = keeping
                .iter()
                .filter(|&&(at, _)| at == revision)
                .map(|&(_, put)| put)
                .collect();
            !listed.is_empty() && listed.iter().all(|&put| put != key)
        };
        let mut table = std::collections::BTreeMap::new();
        for (key, list) in lifetimes.iter().enumerate() {
            for &(create, modified, version) in list {
                let mut capacity = 0;
                let mut revision = modified;
                while revision >= create && version - capacity > 1 {
                    if revision < modified {
                        let least = table.entry((revision, key as KeyId, create)).or_insert(0);
                        *least = (*least).max(version - capacity);
                    }
                    if !keeps(revision, key as KeyId) {
                        capacity += 1;
                    }
                    revision -= 1;
                }
            }
        }
        table
    }

    /// Goal: keys read absent that only their leases' ends can remove need a free revision
    /// per distinct lease before the absence, together. Method: keys 0 to 2 live at revision 4
    /// on three leases, or on two, and a read at 6 listing none of them: revisions 5 and 6
    /// are free, so three leases do not fit, two do, and a known put at 6 leaves room for one.
    #[test]
    fn leases_ending_before_an_absence_need_a_revision_each() {
        use crate::linear::counts::tests::{finds_none_of_keys_0_to_2_at_6, leased_keys};
        use crate::linear::needs::tests::{put, search_op};
        let lists_none_at_6 = finds_none_of_keys_0_to_2_at_6(Some(Vec::new()));
        let known_put_at_6 = search_op(
            2,
            put(3),
            Some(Rec::Put {
                revision: Some(6),
                prev_kv: None,
            }),
        );
        let removable = |leases: [i64; 3], extra: &[SearchOp]| {
            let (store, mut ops) = leased_keys(leases);
            ops.push(lists_none_at_6.clone());
            ops.extend_from_slice(extra);
            let needs = PutNeeds::build(&ops, &[], 4);
            Absences::build(&ops, &[], 4).jointly_removable(&store, &needs)
        };
        assert!(
            !removable([7, 8, 9], &[]),
            "three lease ends, two revisions"
        );
        assert!(removable([7, 7, 8], &[]), "two lease ends, two revisions");
        assert!(
            !removable([7, 7, 8], &[known_put_at_6]),
            "two lease ends, one revision"
        );
    }

    proptest! {
        /// The prefix-count floors equal the per-revision table at every revision and key.
        #[test]
        fn floors_match_the_per_revision_walk(
            raw_lifetimes in proptest::collection::vec((0u32..3, 1i64..40, 0i64..40, 1i64..30), 0..12),
            raw_keeping in proptest::collection::vec((1i64..80, 0u32..3), 0..40),
        ) {
            let key_count = 3;
            let mut lifetimes: Vec<Vec<(i64, i64, i64)>> = vec![Vec::new(); key_count];
            for (key, create, length, version) in raw_lifetimes {
                lifetimes[key as usize].push((create, create + length, version));
            }
            for list in &mut lifetimes {
                list.sort_unstable();
                list.dedup();
            }
            let mut keeping = raw_keeping;
            keeping.sort_unstable();
            keeping.dedup();
            let floors = VersionFloors::build(&lifetimes, &keeping, key_count);
            let table = reference(&lifetimes, &keeping);
            for revision in 0..100 {
                for key in 0..key_count as KeyId {
                    for create in 1..40 {
                        prop_assert_eq!(
                            floor_via_index(&floors, key, create, revision),
                            table.get(&(revision, key, create)).copied(),
                            "revision {} key {} create {}", revision, key, create
                        );
                    }
                }
            }
        }
    }
}
