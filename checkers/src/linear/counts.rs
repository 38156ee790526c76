//! Range counts for the witness attempt (`pin`). A read's count is the number of keys live in
//! its range at its revision R, whatever its limit. Between the store's revision and R only the
//! writes still to come can change that number: a key absent now joins it only if some write
//! that may still run puts it, a key live now leaves it only if some write that may still run
//! deletes it (or a lease, which an expiry or revoke may end, holds it). When the live count
//! now plus every key that may join is below the count seen, or less every key that may leave
//! is above it, no order from here on explains the read.
//!
//! This catches a key created by the wrong unknown-outcome put far before the read that counts
//! it (standalone membership_churn_on_an_even_cluster seed 89: a retried put of a new key
//! filled a revision gap at 586 that a retry of an existing key's put had made; a read at 595
//! with limit 2 counted 123 keys under "l", one fewer than that order left, and the witness
//! tried the orders of the twenty writes between before backing out of the fill).
//!
//! What may still run is judged tightly, since a loose bound lets the wrong fill through:
//! - a lease a read showed alive at R or later cannot end before R;
//! - a lease a definite request found gone before the write just placed was called neither
//!   ends later nor lets a put with it work (standalone clock_drift_with_leases seed 84: a put
//!   of s06 with lease 50, which had got lease_not_found at 35.9 s, seemed able to remove an
//!   s06 created wrongly at 865, long after; gave up after 200M steps, now 6.5k);
//! - a put with a lease removes its key only if that lease may end, and never once the store
//!   no longer holds a lease that one grant alone made and that grant returned before the
//!   write just placed was called (see `lease_ended_in`);
//! - a delete of several keys cannot run while another key it covers is kept from every
//!   revision up to R (inside a recorded lifetime, or shown unchanged) (standalone
//!   clock_drift_with_leases seed 116: an unknown delete of s03..s05 called at 6.6 s seemed
//!   able to remove an s04 put wrongly at 515 before a read of s04 absent at 524, though s03
//!   was read unchanged through 528; 6.6 s, now 76 ms).
//!
//! A key a delete of its range may remove also gets its absences as counts of 0 over the key
//! alone, from full listings and from recorded creations (see `note_absences`), so the rules
//! above judge what may remove it.
//!
//! Writes not yet placed are needed after the store's revision: one of unknown revision needs
//! a revision no known write holds, and the puts lifetimes owe (`needs`) take some of those.
//!
//! Sound for the witness only, which never decides a violation: a write that may still run is
//! one at a known revision after the store's up to R, or one of unknown outcome called before
//! the read returned.

use super::by_revision::RevisionStarts;
use super::needs::PutNeeds;
use super::prepare::SearchOp;
use super::runs::merge_runs;
use crate::model::{KeyId, Op, Rec, Store};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// Counts seen at most this many revisions past the store's are checked: one far ahead leaves
/// room for many writes before it, and every check walks the range.
const COUNTS_WINDOW_REVISIONS: i64 = 64;

/// Counted ranges of at most this many keys are walked key by key for their known bounds;
/// wider ones look up the known writes of the window instead (watch_heavy_with_compaction
/// seed 131 counts all 337 l-keys in 45 reads and a single key in 480).
const KNOWN_WALK_KEYS_MAX: KeyId = 16;

/// What the count check needs (see the module doc).
pub(crate) struct RangeCounts {
    /// Counts recorded by definite reads, by revision.
    seen: Vec<CountSeen>,
    /// Where each revision's counts start in `seen`.
    seen_starts: RevisionStarts,
    /// Per key id, the writes that may put it.
    puts: Vec<Writers>,
    /// Per key id, the writes that may delete it.
    deletes: Vec<Writers>,
    /// Per lease id, sorted, the revokes and expiries that may end it.
    lease_ends: Vec<(i64, Writers)>,
    /// Per lease id, sorted, the last revision a read showed a key attached to it.
    leases_seen: Vec<(i64, i64)>,
    /// Per lease id, sorted, the time by which it was gone for good (`pin::leases_gone_by`).
    leases_gone_by: Vec<(i64, i64)>,
    /// Per lease id granted by one operation alone, sorted, when that grant returned
    /// (`i64::MAX` for one of unknown outcome).
    single_grants: Vec<(i64, i64)>,
    /// Deletes of several keys at unknown revisions (not in `deletes`).
    range_deletes: Vec<RangeDelete>,
    /// Per key id, indexes into `range_deletes` of those that cover it.
    range_deletes_of: Vec<Vec<u32>>,
    /// Per key id, the puts that attach it to a lease: (lease, revision made if known, call).
    leased_puts: Vec<Vec<(i64, Option<i64>, i64)>>,
    /// Per key id covered by a range delete, the revisions no delete of it can make, as
    /// sorted, disjoint runs (first, last): inside a recorded lifetime (after its create, to
    /// its mod revision) or a span a read showed it unchanged.
    kept: Vec<Vec<(i64, i64)>>,
    /// Every known write's change to a key, sorted: (revision, key, whether it puts the key
    /// rather than deletes it). `puts` and `deletes` by revision, so a count's check walks
    /// only the writes of its window, not every key of its range.
    known_changes: Vec<(i64, KeyId, bool)>,
    /// Every revoke or expiry of a lease at a known revision, sorted: (revision, lease).
    known_lease_ends: Vec<(i64, i64)>,
    /// The keys `known_bounds` finds a known way in or out for, reused between checks.
    scratch: RefCell<Vec<(KeyId, bool)>>,
}

/// A delete of keys `lo..hi` at an unknown revision, called at `call`; `also_puts` when it is
/// a txn that puts some key. It removes every key of the range live when it runs, so it cannot
/// run while one of them keeps a recorded lifetime.
struct RangeDelete {
    lo: KeyId,
    hi: KeyId,
    call: i64,
    also_puts: bool,
}

/// One recorded count: `count` keys of `lo..hi` were live at `revision`, read by an operation
/// that returned at `returned`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CountSeen {
    revision: i64,
    lo: KeyId,
    hi: KeyId,
    count: i64,
    returned: i64,
}

/// Leases whose end alone may remove a live key of a counted range, at most this many: past
/// it the count check needs one write, as when keys may leave otherwise.
const LEASE_ENDS_MAX: usize = 32;

/// The live keys of a counted range that only their lease's end may remove, by lease: the
/// expiry or revoke of one lease is one revision, and ends of distinct leases are distinct
/// revisions, none of them a put a lifetime owes. So when k keys must leave and no other
/// write may remove any, it takes at least as many revisions as the fewest leases holding k
/// keys, not one. Seen in standalone lease_heavy seed 178: leases 91 and 97 left to end after
/// 1090, with a count at 1102 showing their three keys gone, need two revisions.
///
/// Keys that a delete (or a put moving them to another lease) may remove are counted apart:
/// all of them may leave in one revision, or with a lease end counted already, so they lower
/// the keys the lease ends must remove by their number and cost nothing more. Before, a single
/// such key in the range made the count ask for one revision, however many leases had to end
/// (standalone lease_heavy seed 39: 1.10M steps, now 69k). lease_heavy 178 still gives up:
/// at 1063 its witness holds three l-keys that a count at 1102 shows gone, of which one lease
/// end and a key a delete may remove are enough here, while the two free revisions left are
/// owed to a put and to the delete of s02 that an absence needs, which no check sums with it.
#[derive(Default)]
struct LeaseEnds {
    /// (lease, live keys attached to it) for the keys only its end may remove.
    leases: [(i64, i64); LEASE_ENDS_MAX],
    len: usize,
    /// Live keys that may leave by a delete or by a put attaching them to another lease.
    flexible_keys: i64,
    /// More leases than `LEASE_ENDS_MAX` hold keys only their ends may remove.
    overflow: bool,
}

impl LeaseEnds {
    fn note(&mut self, lease: i64) {
        if let Some(entry) = self.leases[..self.len]
            .iter_mut()
            .find(|(listed, _)| *listed == lease)
        {
            entry.1 += 1;
        } else if self.len == LEASE_ENDS_MAX {
            self.overflow = true;
        } else {
            self.leases[self.len] = (lease, 1);
            self.len += 1;
        }
    }

    /// The fewest lease ends that remove `leaving` keys when the flexible keys leave for free;
    /// `None` when the flexible keys alone may be enough (or too many leases were seen).
    fn needed(&mut self, leaving: i64) -> Option<i64> {
        let by_lease_ends = leaving - self.flexible_keys;
        if self.overflow || by_lease_ends <= 0 {
            return None;
        }
        let leases = &mut self.leases[..self.len];
        leases.sort_unstable_by_key(|&(_, keys)| std::cmp::Reverse(keys));
        let mut removed = 0;
        for (at, &(_, keys)) in leases.iter().enumerate() {
            if removed >= by_lease_ends {
                return Some(at as i64);
            }
            removed += keys;
        }
        Some(leases.len() as i64)
    }
}

/// Whether a change may come, and from which writes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MayRun {
    No,
    /// Only from writes of unknown revision, which need a revision no known write holds.
    Unknown,
    /// From a write at a known revision.
    Known,
}

/// The writes that may change one key one way.
#[derive(Clone)]
struct Writers {
    /// Revisions known writes made, sorted (duplicates allowed).
    known: Vec<i64>,
    /// The earliest call of a write whose revision is unknown (`i64::MAX` when none).
    unknown_call: i64,
    /// ... of such a write that also puts some key, so may pay a lifetime's put in the same
    /// revision.
    unknown_putting_call: i64,
}

impl Writers {
    const NONE: Writers = Writers {
        known: Vec::new(),
        unknown_call: i64::MAX,
        unknown_putting_call: i64::MAX,
    };

    /// Which of these writes may run after `revision` and by the count `seen`.
    fn may_run(&self, revision: i64, seen: &CountSeen) -> MayRun {
        let after = self.known.partition_point(|&known| known <= revision);
        if self
            .known
            .get(after)
            .is_some_and(|&known| known <= seen.revision)
        {
            MayRun::Known
        } else if self.unknown_call <= seen.returned {
            MayRun::Unknown
        } else {
            MayRun::No
        }
    }

    fn note(&mut self, made: Option<i64>, call: i64, also_puts: bool) {
        match made {
            Some(revision) => self.known.push(revision),
            None => {
                self.unknown_call = self.unknown_call.min(call);
                if also_puts {
                    self.unknown_putting_call = self.unknown_putting_call.min(call);
                }
            }
        }
    }
}

impl RangeCounts {
    /// Collects the counts definite reads recorded and, per key, the writes of `ops` (the
    /// witness's, pinned) that may change whether it is live; `leases_seen` is `leases_seen(ops)`,
    /// `leases_gone_by` is `pin::leases_gone_by(ops)`.
    pub(crate) fn build(
        ops: &[SearchOp],
        lifetimes: &[Vec<(i64, i64, i64)>],
        unchanged: &[Vec<(i64, i64)>],
        leases_seen: &BTreeMap<i64, i64>,
        leases_gone_by: &BTreeMap<i64, i64>,
        key_count: usize,
    ) -> RangeCounts {
        let mut counts = RangeCounts {
            range_deletes: Vec::new(),
            range_deletes_of: vec![Vec::new(); key_count],
            leased_puts: vec![Vec::new(); key_count],
            kept: vec![Vec::new(); key_count],
            leases_seen: leases_seen
                .iter()
                .map(|(&lease, &seen)| (lease, seen))
                .collect(),
            leases_gone_by: leases_gone_by
                .iter()
                .map(|(&lease, &gone)| (lease, gone))
                .collect(),
            single_grants: single_grants(ops),
            seen: Vec::new(),
            seen_starts: RevisionStarts::build(&[]),
            puts: vec![Writers::NONE; key_count],
            deletes: vec![Writers::NONE; key_count],
            lease_ends: Vec::new(),
            known_changes: Vec::new(),
            known_lease_ends: Vec::new(),
            scratch: RefCell::new(Vec::new()),
        };
        let mut lease_ends: BTreeMap<i64, Writers> = BTreeMap::new();
        // Per revision a known write made, when that write returned.
        let mut made_returns: BTreeMap<i64, i64> = BTreeMap::new();
        for op in ops {
            let rec = op.rec.as_deref();
            if let Some(Rec::Error(_)) = rec {
                continue;
            }
            counts.note_counts(op, rec);
            let made = made_revision(op);
            if let Some(made) = made {
                made_returns.insert(made, op.ret);
            }
            let also_puts = matches!(op.op, Op::Txn { .. }) && !super::pin::puts(&op.op).is_empty();
            counts.note_writes(&op.op, made, op.call, also_puts);
            if let Op::LeaseRevoke { id } | Op::Expire { id } = op.op {
                lease_ends
                    .entry(id)
                    .or_insert(Writers::NONE)
                    .note(made, op.call, false);
            }
        }
        counts.lease_ends = lease_ends.into_iter().collect();
        counts.note_absences(ops, lifetimes, &made_returns);
        for key in 0..key_count {
            if counts.range_deletes_of[key].is_empty() {
                continue;
            }
            let mut runs: Vec<(i64, i64)> = unchanged.get(key).cloned().unwrap_or_default();
            if let Some(list) = lifetimes.get(key) {
                runs.extend(
                    list.iter()
                        .filter(|&&(create, modified, _)| create >= 1 && modified > create)
                        .map(|&(create, modified, _)| (create + 1, modified)),
                );
            }
            merge_runs(&mut runs);
            counts.kept[key] = runs;
        }
        counts.seen.sort_unstable();
        counts.seen.dedup();
        let revisions: Vec<i64> = counts.seen.iter().map(|seen| seen.revision).collect();
        counts.seen_starts = RevisionStarts::build(&revisions);
        let leases = counts.lease_ends.iter_mut().map(|(_, writers)| writers);
        for writers in counts
            .puts
            .iter_mut()
            .chain(&mut counts.deletes)
            .chain(leases)
        {
            writers.known.sort_unstable();
        }
        for (key, (puts, deletes)) in counts.puts.iter().zip(&counts.deletes).enumerate() {
            let key = key as KeyId;
            let changes = (puts.known.iter().map(|&made| (made, key, true)))
                .chain(deletes.known.iter().map(|&made| (made, key, false)));
            counts.known_changes.extend(changes);
        }
        counts.known_changes.sort_unstable();
        for (lease, writers) in &counts.lease_ends {
            let ends = writers.known.iter().map(|&made| (made, *lease));
            counts.known_lease_ends.extend(ends);
        }
        counts.known_lease_ends.sort_unstable();
        counts
    }

    /// Whether every count seen within the window can still be met, with the puts `needs`
    /// owes by then sharing the revisions no known write holds. Only counts over a key in
    /// `changed` are checked after a write at a known revision: the others' free revisions
    /// stay as they were. `call` is when the write just placed was called: every write still to
    /// come takes effect after that.
    pub(crate) fn hold(
        &self,
        store: &Store,
        changed: &[KeyId],
        needs: &PutNeeds,
        call: i64,
    ) -> bool {
        let revision = store.revision();
        let unknown_made = !needs.is_known(revision);
        // A count at the store's own revision is final: the next write makes the next one.
        let start = self.seen_starts.first_at(revision, || {
            self.seen.partition_point(|seen| seen.revision < revision)
        });
        let horizon = revision.saturating_add(COUNTS_WINDOW_REVISIONS);
        self.seen[start..]
            .iter()
            .take_while(|seen| seen.revision <= horizon)
            .filter(|seen| {
                unknown_made || changed.iter().any(|&key| seen.lo <= key && key < seen.hi)
            })
            .all(|seen| {
                let free = || needs.free_revisions(revision, seen.revision);
                match self.unknown_writes_needed(store, seen, call, || free() > 0) {
                    None => false,
                    Some(0) => true,
                    Some(needed) => needed + needs.owed_by(store, seen.revision) <= free(),
                }
            })
    }

    /// Whether lease `id` (0: none) may be revoked or expire after `revision` and by `seen`,
    /// with writes still to come taking effect after `call`.
    fn lease_may_end(&self, id: i64, revision: i64, seen: &CountSeen, call: i64) -> MayRun {
        if id == 0 || self.lease_gone_before(id, call) {
            return MayRun::No;
        }
        let seen_alive = self
            .leases_seen
            .binary_search_by_key(&id, |&(lease, _)| lease)
            .is_ok_and(|at| self.leases_seen[at].1 >= seen.revision);
        if seen_alive {
            return MayRun::No;
        }
        match self
            .lease_ends
            .binary_search_by_key(&id, |&(lease, _)| lease)
        {
            Ok(at) => self.lease_ends[at].1.may_run(revision, seen),
            Err(_) => MayRun::No,
        }
    }

    /// Whether lease `id` was gone for good before `call`: it ended before any write called
    /// then takes effect, and no put with it can work after.
    fn lease_gone_before(&self, id: i64, call: i64) -> bool {
        self.leases_gone_by
            .binary_search_by_key(&id, |&(lease, _)| lease)
            .is_ok_and(|at| self.leases_gone_by[at].1 < call)
    }

    /// A delete of a range over `key` that may run by `seen`: called before its read returned,
    /// and no key of its range live now kept from every revision up to `seen`'s.
    fn range_delete_may_run(
        &self,
        store: &Store,
        key: KeyId,
        seen: &CountSeen,
    ) -> Option<&RangeDelete> {
        self.range_deletes_of[key as usize]
            .iter()
            .map(|&index| &self.range_deletes[index as usize])
            .filter(|range| range.call <= seen.returned)
            .find(|range| {
                (range.lo..range.hi).all(|other| {
                    store.get(other).is_none()
                        || !covers(
                            &self.kept[other as usize],
                            store.revision() + 1,
                            seen.revision,
                        )
                })
            })
    }

    /// Whether a put still to come may attach `key` to a lease that may then end by `seen`
    /// (in a revision of its own, so never at a known one), with writes still to come taking
    /// effect after `call`.
    fn leased_put_may_end(&self, store: &Store, key: KeyId, seen: &CountSeen, call: i64) -> bool {
        let revision = store.revision();
        self.leased_puts[key as usize]
            .iter()
            .any(|&(lease, made, put_call)| {
                let put_may_run = match made {
                    Some(made) => revision < made && made <= seen.revision,
                    None => put_call <= seen.returned,
                };
                put_may_run
                    && !self.lease_ended_in(store, lease, call)
                    && self.lease_may_end(lease, revision, seen, call) != MayRun::No
            })
    }

    /// Whether lease `id` has ended in `store` for good: its one grant returned before `call`
    /// (so it took effect before any write still to come), and the store no longer holds it.
    /// A put with it can then only fail (standalone clock_drift_with_leases seed 159: the
    /// witness ended lease 74 at 723, before the unknown put of s06 with it that the run made
    /// at 723 and that lease's expiry removed; s06, read absent at 749, was left with nothing
    /// that could remove it, which the search learned only after every order of 723 to 749).
    fn lease_ended_in(&self, store: &Store, id: i64, call: i64) -> bool {
        self.single_grants
            .binary_search_by_key(&id, |&(lease, _)| lease)
            .is_ok_and(|at| self.single_grants[at].1 < call)
            && !store.has_lease(id)
    }

    /// How many writes of unknown revision, besides the puts lifetimes owe, `seen` needs at
    /// least: one when keys must leave (a delete of a range or an expiry may remove many) and
    /// no write that may remove one also puts; none when keys must join (the put of a new key
    /// may be one a lifetime owes). `None` when no writes still to come can meet it (when
    /// `free()`, those of unknown revision may; asked only when the known writes fall short).
    fn unknown_writes_needed(
        &self,
        store: &Store,
        seen: &CountSeen,
        call: i64,
        free: impl FnOnce() -> bool,
    ) -> Option<i64> {
        // Most counts hold on the known writes alone; the unknown ones' reach is dearer.
        if self.known_bounds(store, seen, call).contains(&seen.count) {
            return Some(0);
        }
        if !free() {
            return None;
        }
        let revision = store.revision();
        let (mut live, mut leave, mut join) = (0i64, [0i64; 3], [0i64; 3]);
        let mut leave_with_put = false;
        let mut ends = LeaseEnds::default();
        for key in seen.lo..seen.hi {
            match store.get(key) {
                Some(state) => {
                    live += 1;
                    let deletes = &self.deletes[key as usize];
                    let mut by_delete = deletes.may_run(revision, seen);
                    leave_with_put |= deletes.unknown_putting_call <= seen.returned;
                    if by_delete == MayRun::No {
                        if let Some(range) = self.range_delete_may_run(store, key, seen) {
                            by_delete = MayRun::Unknown;
                            leave_with_put |= range.also_puts;
                        } else if self.leased_put_may_end(store, key, seen, call) {
                            by_delete = MayRun::Unknown;
                        }
                    }
                    let by_lease = self.lease_may_end(state.lease, revision, seen, call);
                    match (by_delete, by_lease) {
                        (MayRun::No, MayRun::Unknown) => ends.note(state.lease),
                        (MayRun::Unknown, MayRun::No | MayRun::Unknown) => ends.flexible_keys += 1,
                        _ => {}
                    }
                    leave[by_delete.max(by_lease) as usize] += 1;
                }
                None => join[self.puts[key as usize].may_run(revision, seen) as usize] += 1,
            }
        }
        let (known, unknown) = (MayRun::Known as usize, MayRun::Unknown as usize);
        let (low, high) = (live - leave[known], live + join[known]);
        debug_assert!(
            !(low..=high).contains(&seen.count),
            "known_bounds disagrees"
        );
        if seen.count < low && low - leave[unknown] <= seen.count {
            if let Some(needed) = ends.needed(low - seen.count) {
                return Some(needed);
            }
            // A txn that deletes a key here and puts another may pay a lifetime's put too.
            return Some(i64::from(!leave_with_put));
        }
        // A key that must join may be one whose lifetime `needs` already owes the put of.
        (seen.count > high && seen.count <= high + join[unknown]).then_some(0)
    }

    /// The counts `seen` may show with only the writes at known revisions (and the known lease
    /// ends) still to come: the keys live now less those such a write may remove, up to those
    /// live now plus those such a put may add. The same classes as
    /// `unknown_writes_needed`'s `Known` ones: a range delete or a leased put of unknown
    /// revision only ever adds an `Unknown` way.
    fn known_bounds(&self, store: &Store, seen: &CountSeen, call: i64) -> RangeInclusive<i64> {
        if seen.hi - seen.lo <= KNOWN_WALK_KEYS_MAX {
            return self.known_bounds_by_key(store, seen, call);
        }
        let revision = store.revision();
        let window = |at: i64| revision < at && at <= seen.revision;
        let in_range = |key: KeyId| seen.lo <= key && key < seen.hi;
        let mut found = self.scratch.borrow_mut();
        found.clear();
        // A live key a known delete removes leaves; an absent key a known put creates joins.
        let start = self
            .known_changes
            .partition_point(|&(made, ..)| made <= revision);
        for &(_, key, puts) in self.known_changes[start..]
            .iter()
            .take_while(|&&(made, ..)| window(made))
            .filter(|&&(_, key, _)| in_range(key))
        {
            let live = store.get(key).is_some();
            if live != puts {
                found.push((key, live));
            }
        }
        // A live key whose lease a known revoke or expiry must end leaves.
        let start = self
            .known_lease_ends
            .partition_point(|&(made, _)| made <= revision);
        for &(_, lease) in self.known_lease_ends[start..]
            .iter()
            .take_while(|&&(made, _)| window(made))
        {
            if self.lease_may_end(lease, revision, seen, call) == MayRun::Known {
                let keys = store.keys_of_lease(lease).filter(|&key| in_range(key));
                found.extend(keys.map(|key| (key, true)));
            }
        }
        found.sort_unstable();
        found.dedup();
        let leave = found.iter().filter(|&&(_, live)| live).count() as i64;
        let join = found.len() as i64 - leave;
        let live = store.live_in(seen.lo, seen.hi);
        debug_assert_eq!(
            (live - leave)..=(live + join),
            self.known_bounds_by_key(store, seen, call),
            "the known writes' index disagrees with the per-key walk"
        );
        (live - leave)..=(live + join)
    }

    /// `known_bounds` key by key: for small ranges, and to check the index against in debug
    /// builds.
    fn known_bounds_by_key(
        &self,
        store: &Store,
        seen: &CountSeen,
        call: i64,
    ) -> RangeInclusive<i64> {
        let revision = store.revision();
        let (mut live, mut leave, mut join) = (0i64, 0i64, 0i64);
        for key in seen.lo..seen.hi {
            match store.get(key) {
                Some(state) => {
                    live += 1;
                    let known = self.deletes[key as usize].may_run(revision, seen) == MayRun::Known
                        || self.lease_may_end(state.lease, revision, seen, call) == MayRun::Known;
                    leave += i64::from(known);
                }
                None => {
                    join +=
                        i64::from(self.puts[key as usize].may_run(revision, seen) == MayRun::Known);
                }
            }
        }
        (live - leave)..=(live + join)
    }

    fn note_counts(&mut self, op: &SearchOp, rec: Option<&Rec>) {
        match (&op.op, rec) {
            (Op::Range { .. }, Some(rec)) => self.note_count(&op.op, rec, op.ret),
            (
                Op::Txn {
                    success, failure, ..
                },
                Some(Rec::Txn {
                    succeeded: Some(succeeded),
                    responses: Some(responses),
                    ..
                }),
            ) => {
                let branch = if *succeeded { success } else { failure };
                // A read after a write in the same branch counts the txn's own changes.
                if branch.iter().all(|inner| matches!(inner, Op::Range { .. })) {
                    for (inner, rec) in branch.iter().zip(responses) {
                        self.note_count(inner, rec, op.ret);
                    }
                }
            }
            _ => {}
        }
    }

    fn note_count(&mut self, op: &Op, rec: &Rec, returned: i64) {
        let (
            Op::Range {
                lo, hi, revision, ..
            },
            Rec::Range {
                revision: Some(header),
                count: Some(count),
                ..
            },
        ) = (op, rec)
        else {
            return;
        };
        if lo >= hi {
            return;
        }
        self.seen.push(CountSeen {
            revision: if *revision > 0 { *revision } else { *header },
            lo: *lo,
            hi: *hi,
            count: *count,
            returned,
        });
    }

    /// Notes, as a count of 0 over the key alone, every absence of a key that a delete of
    /// several keys at an unknown revision covers: those full listings show, and the revision
    /// before each recorded creation. The capacity windows check such an absence too, but take
    /// any delete of the key for one that may run; as a count, the delete of the range may run
    /// only where no other key of its range is kept, and a put with a lease removes nothing
    /// once that lease is gone (standalone clock_drift_with_leases seed 159: s06, created
    /// again at 750 so absent at 749, was left only the delete of s06..s09 once the witness
    /// ended lease 74 at 723, before the unknown put of s06 with it).
    fn note_absences(
        &mut self,
        ops: &[SearchOp],
        lifetimes: &[Vec<(i64, i64, i64)>],
        made_returns: &BTreeMap<i64, i64>,
    ) {
        // A recorded lifetime created at C shows the key absent at C - 1. What ran before C
        // was called before an operation whose header shows C returned; when none does, any
        // write may have (`i64::MAX - 1`: `Writers::NONE`'s call stays out of reach).
        for (key, list) in lifetimes.iter().enumerate() {
            if self.range_deletes_of[key].is_empty() {
                continue;
            }
            for &(create, _, _) in list.iter().filter(|&&(create, _, _)| create > 1) {
                self.seen.push(CountSeen {
                    revision: create - 1,
                    lo: key as KeyId,
                    hi: key as KeyId + 1,
                    count: 0,
                    returned: made_returns.get(&create).copied().unwrap_or(i64::MAX - 1),
                });
            }
        }
        let mut absences = Vec::new();
        super::absent::listed_absences(ops, |key, at, read| {
            if !self.range_deletes_of[key as usize].is_empty() {
                absences.push(CountSeen {
                    revision: at,
                    lo: key,
                    hi: key + 1,
                    count: 0,
                    returned: read.ret,
                });
            }
        });
        self.seen.extend(absences);
    }

    /// Notes what `op` may put and delete; `also_puts` when it is a txn that puts some key.
    fn note_writes(&mut self, op: &Op, made: Option<i64>, call: i64, also_puts: bool) {
        match op {
            Op::Put { key, lease, .. } => {
                self.puts[*key as usize].note(made, call, also_puts);
                if *lease != 0 {
                    self.leased_puts[*key as usize].push((*lease, made, call));
                }
            }
            Op::Delete { lo, hi, .. } if made.is_none() && hi - lo > 1 => {
                let index = self.range_deletes.len() as u32;
                for key in *lo..*hi {
                    self.range_deletes_of[key as usize].push(index);
                }
                self.range_deletes.push(RangeDelete {
                    lo: *lo,
                    hi: *hi,
                    call,
                    also_puts,
                });
            }
            Op::Delete { lo, hi, .. } => {
                for key in *lo..*hi {
                    self.deletes[key as usize].note(made, call, also_puts);
                }
            }
            Op::Txn {
                success, failure, ..
            } => {
                for inner in success.iter().chain(failure) {
                    self.note_writes(inner, made, call, also_puts);
                }
            }
            _ => {}
        }
    }
}

/// Per lease id granted by exactly one operation, when it returned (`i64::MAX`: unknown outcome).
fn single_grants(ops: &[SearchOp]) -> Vec<(i64, i64)> {
    let mut grants: BTreeMap<i64, (usize, i64)> = BTreeMap::new();
    for op in ops {
        let returned = match (&op.op, op.rec.as_deref()) {
            (Op::LeaseGrant { .. }, Some(Rec::Error(_))) => continue,
            (Op::LeaseGrant { .. }, Some(_)) if !op.unknown => op.ret,
            (Op::LeaseGrant { .. }, _) => i64::MAX,
            _ => continue,
        };
        let Op::LeaseGrant { id, .. } = op.op else {
            continue;
        };
        let entry = grants.entry(id).or_insert((0, returned));
        entry.0 += 1;
    }
    let single = grants.into_iter().filter(|&(_, (count, _))| count == 1);
    single.map(|(id, (_, returned))| (id, returned)).collect()
}

/// Whether one of `runs` holds every revision of `first..=last`.
fn covers(runs: &[(i64, i64)], first: i64, last: i64) -> bool {
    let after = runs.partition_point(|&(start, _)| start <= first);
    after > 0 && runs[after - 1].1 >= last
}

/// Per lease id, the last revision at which a definite read showed a key attached to it: the
/// lease had not ended by then.
pub(super) fn leases_seen(ops: &[SearchOp]) -> BTreeMap<i64, i64> {
    let mut seen = BTreeMap::new();
    for op in ops.iter().filter(|op| !op.unknown) {
        if let Some(rec) = op.rec.as_deref() {
            note_leases_seen(&op.op, rec, None, &mut seen);
        }
    }
    seen
}

/// Notes the leases of the kvs `rec` read, at the revision read (`at`: a txn's).
fn note_leases_seen(op: &Op, rec: &Rec, at: Option<i64>, seen: &mut BTreeMap<i64, i64>) {
    match (op, rec) {
        (
            Op::Range { revision, .. },
            Rec::Range {
                revision: header,
                kvs: Some(kvs),
                ..
            },
        ) => {
            let read_at = if *revision > 0 {
                Some(*revision)
            } else {
                at.or(*header)
            };
            let Some(read_at) = read_at else {
                return;
            };
            for lease in kvs.iter().filter_map(|kv| kv.lease).filter(|&id| id != 0) {
                let entry = seen.entry(lease).or_insert(read_at);
                *entry = (*entry).max(read_at);
            }
        }
        (
            Op::Txn {
                success, failure, ..
            },
            Rec::Txn {
                revision: Some(revision),
                succeeded: Some(succeeded),
                responses: Some(responses),
            },
        ) => {
            let branch = if *succeeded { success } else { failure };
            for (inner, rec) in branch.iter().zip(responses) {
                note_leases_seen(inner, rec, Some(*revision), seen);
            }
        }
        _ => {}
    }
}

/// The revision `op` made if it wrote, when known: a definite write's recorded revision, or
/// a pinned unknown outcome's. `None` means any time after its call.
pub(super) fn made_revision(op: &SearchOp) -> Option<i64> {
    if op.unknown {
        return None;
    }
    match op.rec.as_deref() {
        None if op.revision_lo == op.revision_hi && op.revision_hi < i64::MAX => {
            Some(op.revision_hi + 1)
        }
        Some(Rec::Range { .. }) | None => None,
        Some(rec) => header_revision(rec),
    }
}

/// The store revision a result's header shows, when recorded (a write's: the one it made).
pub(super) fn header_revision(rec: &Rec) -> Option<i64> {
    match rec {
        Rec::Range {
            revision: Some(revision),
            ..
        }
        | Rec::LeaseRevoke {
            revision: Some(revision),
        }
        | Rec::Put {
            revision: Some(revision),
            ..
        }
        | Rec::Delete {
            revision: Some(revision),
            ..
        }
        | Rec::Txn {
            revision: Some(revision),
            ..
        } => Some(*revision),
        _ => None,
    }
}

#[cfg(test)]
#[path = "counts_tests.rs"]
pub(super) mod tests;
