//! The multi-version key-value store (etcd's `mvcc` package), in memory: revisions, the key
//! index with generations, range, put, delete, txn, compaction, the event history that watches
//! catch up from, a deterministic hash and snapshots.
//!
//! Revisions follow etcd: a fresh store is at revision 1 (nothing written yet), every write
//! request that changes something takes the next main revision, and the changes of one request
//! share it with increasing sub revisions. A request that changes nothing (a delete of missing
//! keys, a txn whose branch only reads) does not bump the revision. A failing request leaves the
//! store unchanged: every check runs before the first change is made.
//!
//! This module does not know leases (the caller says whether a lease exists, and revokes leases
//! through `delete_keys`), watchers (see `watch`, which reads `events`), raft or the member's
//! response headers (only `header.revision` is filled here). It performs no I/O: persistence is
//! the host's business, through `encode_snapshot`/`decode_snapshot` and the raft log.

mod describe;
mod index;
mod range;
mod snapshot;
mod txn;

pub use describe::{
    describe_bytes, describe_delete, describe_error, describe_event, describe_key_value,
    describe_put, describe_range, describe_txn,
};

use std::collections::{BTreeMap, BTreeSet};

use crate::kv::{
    DeleteRangeRequest, DeleteRangeResponse, Event, EventType, KeyValue, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestError, TxnRequest, TxnResponse,
};
use crate::types::{LeaseId, Revision};
use index::{key_value, ChangeRevision, KeyHistory, KeyRange};

/// The revision of a fresh store, as in etcd: the first write gets revision 2.
pub const REVISION_INITIAL: Revision = Revision(1);

/// The outcome of a write request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteResult<R> {
    /// The response to the client (header fields other than `revision` left default).
    pub response: R,
    /// The store revision after the write (unchanged if the request changed nothing).
    pub revision: Revision,
    /// The changes, in order. `prev_kv` is always filled when the key existed before the
    /// change; the member strips it for watchers that did not ask for it.
    pub events: Vec<Event>,
}

/// etcd's multi-version store.
///
/// Invariants: `compacted <= current`; every change in
/// `keys` has a main revision in `(.., current]`, and `log` holds exactly the revisions of the
/// changes in `keys`, each with its key, in strictly increasing revision order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    /// Every key with retained history, in key order.
    keys: BTreeMap<Vec<u8>, KeyHistory>,
    /// Every retained change by revision, for event catch-up in revision order. Revisions
    /// only grow, so appending keeps it sorted and lookups are binary searches.
    log: Vec<(ChangeRevision, Vec<u8>)>,
    /// The last written main revision.
    current: i64,
    /// Reads below this main revision fail; 0 before the first compaction.
    compacted: i64,
}

/// The changes of one write request being applied: they all take main revision `main`.
struct WriteBatch {
    main: i64,
    sub_next: u32,
    events: Vec<Event>,
}

impl WriteBatch {
    fn new(store: &Store) -> WriteBatch {
        WriteBatch {
            main: store.current + 1,
            sub_next: 0,
            events: Vec::new(),
        }
    }

    /// The revision a read inside this request sees: its own changes once it has made one.
    fn read_main(&self) -> i64 {
        if self.sub_next > 0 {
            self.main
        } else {
            self.main - 1
        }
    }

    fn take_revision(&mut self) -> ChangeRevision {
        let revision = ChangeRevision {
            main: self.main,
            sub: self.sub_next,
        };
        self.sub_next += 1;
        revision
    }
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

impl Store {
    /// An empty store at revision 1, never compacted.
    pub fn new() -> Store {
        Store {
            keys: BTreeMap::new(),
            log: Vec::new(),
            current: REVISION_INITIAL.0,
            compacted: 0,
        }
    }

    /// The last written revision (1 on a fresh store).
    pub fn revision(&self) -> Revision {
        Revision(self.current)
    }

    /// The revision of the last compaction (0 if never compacted). Reads at revisions below it
    /// fail with `Compacted`; reads at it succeed.
    pub fn compacted_revision(&self) -> Revision {
        Revision(self.compacted)
    }

    /// How many keys have retained history (live or deleted but not yet compacted away).
    pub fn key_history_count(&self) -> usize {
        self.keys.len()
    }

    /// etcd's Range at `request.revision` (0 = latest). `header.revision` is the current revision.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, RequestError> {
        range::check_range(request, self.current, self.compacted)?;
        Ok(self.range_at(request, self.current))
    }

    /// etcd's Put. `lease_exists` is asked only when `request.lease` is not 0.
    pub fn put(
        &mut self,
        request: &PutRequest,
        lease_exists: &dyn Fn(LeaseId) -> bool,
    ) -> Result<WriteResult<PutResponse>, RequestError> {
        self.check_put(request, self.current, lease_exists)?;
        let mut batch = WriteBatch::new(self);
        let response = self.apply_put(request, &mut batch);
        Ok(self.finish(batch, response))
    }

    /// etcd's DeleteRange. Deleting nothing does not bump the revision.
    pub fn delete_range(
        &mut self,
        request: &DeleteRangeRequest,
    ) -> Result<WriteResult<DeleteRangeResponse>, RequestError> {
        if request.key.is_empty() {
            return Err(RequestError::EmptyKey);
        }
        let mut batch = WriteBatch::new(self);
        let response = self.apply_delete_range(request, &mut batch);
        let mut written = self.finish(batch, response);
        if crate::bug!(DeleteMissingBumpsRevision) && written.events.is_empty() {
            // Zoo: a delete that removed nothing still takes a revision.
            self.current += 1;
            written.revision = Revision(self.current);
            written.response.header.revision = Revision(self.current);
        }
        Ok(written)
    }

    /// etcd's Txn: compares are evaluated against the state before the txn; the lease and
    /// key checks apply to the puts of the branches that run. A failed check leaves the store
    /// unchanged.
    pub fn txn(
        &mut self,
        request: &TxnRequest,
        lease_exists: &dyn Fn(LeaseId) -> bool,
    ) -> Result<WriteResult<TxnResponse>, RequestError> {
        txn::check_static(request)?;
        let mut path = Vec::new();
        self.txn_path(request, &mut path);
        self.check_txn(request, &path, &mut 0, lease_exists)?;
        let mut batch = WriteBatch::new(self);
        let mut cursor = 0;
        let mut response = self.apply_txn(request, &path, &mut cursor, &mut batch);
        assert_eq!(
            cursor,
            path.len(),
            "txn execution must follow the whole path"
        );
        response.header.revision = Revision(batch.read_main());
        Ok(self.finish(batch, response))
    }

    /// Deletes `keys` (those that exist) in one revision, as a lease revoke or expiry does.
    /// Deleting nothing does not bump the revision.
    pub fn delete_keys(&mut self, keys: &[Vec<u8>]) -> WriteResult<()> {
        let mut batch = WriteBatch::new(self);
        for key in keys {
            self.apply_delete_key(key, &mut batch);
        }
        self.finish(batch, ())
    }

    /// Discards history that no read at or above `revision` can see. Fails with `Compacted` if
    /// `revision` is at or below the last compaction and `FutureRevision` if above the current.
    pub fn compact(&mut self, revision: Revision) -> Result<(), RequestError> {
        if revision.0 <= self.compacted {
            return Err(RequestError::Compacted {
                requested: revision,
                compacted: Revision(self.compacted),
            });
        }
        if revision.0 > self.current {
            return Err(RequestError::FutureRevision {
                requested: revision,
                current: Revision(self.current),
            });
        }
        let touched = self.compact_candidates(revision.0);
        let mut dropped_changes: Vec<(ChangeRevision, Vec<u8>)> = Vec::new();
        for key in touched {
            let history = self
                .keys
                .get_mut(&key)
                .expect("log names a key without history");
            for dropped in history.compact(revision.0) {
                dropped_changes.push((dropped, key.clone()));
            }
            if history.changes.is_empty() {
                self.keys.remove(&key);
            }
        }
        self.remove_from_log(dropped_changes);
        self.compacted = revision.0;
        Ok(())
    }

    /// Removes the given changes from the log in one pass, checking that each is there with
    /// its key.
    fn remove_from_log(&mut self, mut dropped_changes: Vec<(ChangeRevision, Vec<u8>)>) {
        dropped_changes.sort_unstable_by_key(|(revision, _)| *revision);
        let mut next = 0;
        self.log.retain(|(revision, key)| {
            let Some((dropped, dropped_key)) = dropped_changes.get(next) else {
                return true;
            };
            if revision != dropped {
                return true;
            }
            assert!(key == dropped_key, "log and key index disagree");
            next += 1;
            false
        });
        assert_eq!(
            next,
            dropped_changes.len(),
            "log and key index disagree: a dropped change is not in the log"
        );
    }

    /// The log's changes with revisions in `from..=to`, in revision order.
    fn log_range(&self, from: ChangeRevision, to: ChangeRevision) -> &[(ChangeRevision, Vec<u8>)] {
        let start = self.log.partition_point(|(revision, _)| *revision < from);
        let end = self.log.partition_point(|(revision, _)| *revision <= to);
        &self.log[start..end.max(start)]
    }

    /// Records a change of `key` at `revision`, which must be newer than every logged one.
    fn log_push(&mut self, revision: ChangeRevision, key: &[u8]) {
        if let Some((last, _)) = self.log.last() {
            assert!(*last < revision, "two changes at one revision");
        }
        self.log.push((revision, key.to_vec()));
    }

    /// Keys that may hold history to drop at `at`: those changed since the last compaction.
    /// A key untouched since then already holds at most one change at or below `at`, a put.
    fn compact_candidates(&self, at: i64) -> BTreeSet<Vec<u8>> {
        let from = ChangeRevision {
            main: self.compacted + 1,
            sub: 0,
        };
        let to = ChangeRevision {
            main: at,
            sub: u32::MAX,
        };
        self.log_range(from, to)
            .iter()
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The changes to keys in `key`/`range_end` (as in a range) with main revision in
    /// `from..=to_inclusive`, in revision order, `prev_kv` filled where the key existed before.
    /// `to_inclusive` is clamped to the current revision. Events of one revision are never
    /// split: whole revisions are returned while fewer than `events_count_max` events are
    /// collected, so one revision larger than the limit still comes out whole.
    /// Fails with `Compacted` when `from <= compacted_revision()`.
    pub fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Revision,
        to_inclusive: Revision,
        events_count_max: usize,
    ) -> Result<Vec<Event>, RequestError> {
        assert!(events_count_max > 0, "events_count_max must be positive");
        // Zoo (etcd #18089): the compacted revision itself counts as still watchable, though
        // compaction dropped its tombstones and the versions before it.
        let compacted_floor = if crate::bug!(CompactionEatsDeleteEvent) {
            self.compacted - 1
        } else {
            self.compacted
        };
        if from.0 <= compacted_floor {
            return Err(RequestError::Compacted {
                requested: from,
                compacted: Revision(self.compacted),
            });
        }
        let to = to_inclusive.0.min(self.current);
        let mut events = Vec::new();
        if from.0 > to {
            return Ok(events);
        }
        let lower = ChangeRevision {
            main: from.0,
            sub: 0,
        };
        let upper = ChangeRevision {
            main: to,
            sub: u32::MAX,
        };
        // One key changes at most once per revision, so its own history is the short way and
        // the limit can never split a revision there.
        if range_end.is_empty() {
            let Some(history) = self.keys.get(key) else {
                return Ok(events);
            };
            let first = history
                .changes
                .partition_point(|change| change.revision < lower);
            // This key's own history bounds the answer: sized once instead of regrown.
            events.reserve((history.changes.len() - first).min(events_count_max));
            for change in &history.changes[first..] {
                if change.revision > upper || events.len() >= events_count_max {
                    break;
                }
                events.push(self.event_at(key, change.revision));
            }
            return Ok(events);
        }
        let range = KeyRange::new(key, range_end);
        for (revision, changed_key) in self.log_range(lower, upper) {
            let last_main = events.last().map(|event: &Event| event.kv.mod_revision.0);
            if events.len() >= events_count_max && last_main != Some(revision.main) {
                break;
            }
            if range.contains(changed_key) {
                events.push(self.event_at(changed_key, *revision));
            }
        }
        Ok(events)
    }

    /// The event for the change of `key` at `revision`, with the key's previous state.
    fn event_at(&self, key: &[u8], revision: ChangeRevision) -> Event {
        let history = &self.keys[key];
        let index = history
            .index_of(revision)
            .expect("log names a change the key lacks");
        let prev_kv = index.checked_sub(1).and_then(|prev_index| {
            let prev = &history.changes[prev_index];
            prev.put
                .as_ref()
                .map(|put| key_value(key, prev.revision, put, true))
        });
        match &history.changes[index].put {
            Some(put) => Event {
                kind: EventType::Put,
                kv: key_value(key, revision, put, true),
                prev_kv,
            },
            None => Event {
                kind: EventType::Delete,
                kv: tombstone_kv(key, revision),
                prev_kv,
            },
        }
    }

    /// Ends a write request: the revision moves on only if something changed.
    fn finish<R>(&mut self, batch: WriteBatch, response: R) -> WriteResult<R> {
        assert_eq!(batch.main, self.current + 1, "one write request at a time");
        assert_eq!(
            batch.events.len(),
            batch.sub_next as usize,
            "one event per change"
        );
        if batch.sub_next > 0 {
            self.current = batch.main;
        }
        WriteResult {
            response,
            revision: Revision(self.current),
            events: batch.events,
        }
    }

    /// Deletes `key` in `batch` if it exists; returns its previous key-value.
    fn apply_delete_key(&mut self, key: &[u8], batch: &mut WriteBatch) -> Option<KeyValue> {
        let read_main = batch.read_main();
        let history = self.keys.get_mut(key)?;
        let prev_kv = history
            .live_at(read_main)
            .map(|(rev, put)| key_value(key, rev, put, true))?;
        let revision = batch.take_revision();
        history.push_tombstone(revision);
        self.log_push(revision, key);
        batch.events.push(Event {
            kind: EventType::Delete,
            kv: tombstone_kv(key, revision),
            prev_kv: Some(prev_kv.clone()),
        });
        Some(prev_kv)
    }

    fn apply_put(&mut self, request: &PutRequest, batch: &mut WriteBatch) -> PutResponse {
        let key = request.key.as_slice();
        assert!(!key.is_empty(), "put of an empty key");
        let read_main = batch.read_main();
        let needs_current = request.ignore_value || request.ignore_lease;
        // Checked before the write's lookup so that a failure leaves no empty history behind.
        assert!(
            !needs_current
                || self
                    .keys
                    .get(key)
                    .is_some_and(|history| history.live_at(read_main).is_some()),
            "ignore_* on a missing key passed checks"
        );
        let revision = batch.take_revision();
        // One lookup serves the ignore_* rules, the previous key-value and the write.
        let history = self.keys.entry(request.key.clone()).or_default();
        let current = history.live_at(read_main);
        let prev_kv = current.map(|(rev, put)| key_value(key, rev, put, true));
        // Only the value that is kept gets copied.
        let value = match current {
            Some((_, put)) if request.ignore_value => put.value.clone(),
            _ => request.value.clone(),
        };
        let lease = match current {
            Some((_, put)) if request.ignore_lease => put.lease,
            _ => request.lease,
        };
        history.push_put(revision, value, lease);
        let (_, put) = history
            .live_at(revision.main)
            .expect("a put makes the key live");
        let kv = key_value(key, revision, put, true);
        self.log_push(revision, key);
        // The event always carries the previous key-value; the response only if asked.
        let (event_prev_kv, response_prev_kv) = if request.prev_kv {
            (prev_kv.clone(), prev_kv)
        } else {
            (prev_kv, None)
        };
        batch.events.push(Event {
            kind: EventType::Put,
            kv,
            prev_kv: event_prev_kv,
        });
        let mut response = PutResponse::default();
        response.header.revision = Revision(batch.main);
        response.prev_kv = response_prev_kv;
        response
    }

    fn apply_delete_range(
        &mut self,
        request: &DeleteRangeRequest,
        batch: &mut WriteBatch,
    ) -> DeleteRangeResponse {
        let range = KeyRange::new(&request.key, &request.range_end);
        let read_main = batch.read_main();
        let live_keys: Vec<Vec<u8>> = match range.bounds() {
            None => Vec::new(),
            Some(bounds) => self
                .keys
                .range::<[u8], _>(bounds)
                .filter(|(_, history)| history.live_at(read_main).is_some())
                .map(|(key, _)| key.clone())
                .collect(),
        };
        let mut response = DeleteRangeResponse::default();
        for key in &live_keys {
            let prev_kv = self
                .apply_delete_key(key, batch)
                .expect("live key must delete");
            if request.prev_kv {
                response.prev_kvs.push(prev_kv);
            }
        }
        response.deleted = live_keys.len() as i64;
        response.header.revision = Revision(batch.read_main());
        response
    }

    /// Checks a put against the state at main revision `at`: key, lease and ignore_* rules.
    fn check_put(
        &self,
        request: &PutRequest,
        at: i64,
        lease_exists: &dyn Fn(LeaseId) -> bool,
    ) -> Result<(), RequestError> {
        if request.key.is_empty() {
            return Err(RequestError::EmptyKey);
        }
        if request.lease != LeaseId(0) && !request.ignore_lease && !lease_exists(request.lease) {
            return Err(RequestError::LeaseNotFound {
                lease: request.lease,
            });
        }
        if request.ignore_value || request.ignore_lease {
            let exists = self
                .keys
                .get(request.key.as_slice())
                .is_some_and(|history| history.live_at(at).is_some());
            if !exists {
                return Err(RequestError::KeyNotFound);
            }
        }
        Ok(())
    }

    /// Debug check of the struct invariant; O(history), for tests.
    pub fn check_invariants(&self) {
        let mut change_count = 0;
        for (key, history) in &self.keys {
            assert!(
                history.is_well_formed(self.current),
                "malformed history of {key:?}"
            );
            for change in &history.changes {
                let logged = self
                    .log
                    .binary_search_by_key(&change.revision, |(revision, _)| *revision)
                    .ok()
                    .map(|position| &self.log[position].1);
                assert_eq!(logged, Some(key), "log misses a change");
            }
            change_count += history.changes.len();
        }
        assert_eq!(change_count, self.log.len(), "log holds changes no key has");
        assert!(
            self.log.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "log out of revision order"
        );
        assert!(self.compacted <= self.current, "compacted past current");
    }
}

/// The key-value of a deletion event: key and mod revision only, as in etcd.
fn tombstone_kv(key: &[u8], revision: ChangeRevision) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        mod_revision: Revision(revision.main),
        ..KeyValue::default()
    }
}
