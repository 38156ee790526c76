//! Watches over the MVCC store, with etcd's guarantees: ordered, unique, atomic (one revision's
//! events in one response, or in consecutive fragments), reliable (no gaps), resumable and
//! bookmarkable.
//!
//! A watcher is either *synced* (it has seen every applied revision; `on_apply` feeds it) or
//! *unsynced* (it lags: `catch_up` feeds it from MVCC history through [`EventSource`] until it
//! reaches the applied revision, then it becomes synced again). A slow consumer (`pause`) buffers
//! up to `pending_events_count_max` events; past that it becomes unsynced and is later fed from
//! history, so it is never skipped and the hub's memory stays bounded.
//!
//! It deliberately does not read the store directly, know about streams or the network, or
//! decide when to run: the member calls `on_apply` after every applied revision, and
//! `catch_up` / `progress_due` on its own schedule.

pub mod model;
mod watcher;

use std::collections::{BTreeMap, BTreeSet};

use crate::kv::{Event, RequestError, ResponseHeader, WatchCreateRequest, WatchResponse};
use crate::types::{Duration, Instant, Revision, WatchId};

pub use watcher::{describe_response, key_in_range};
use watcher::{Batch, Watcher};

/// Read access to MVCC history that the hub needs; `mvcc::Store` implements it.
pub trait EventSource {
    /// The store's latest applied revision.
    fn current_revision(&self) -> Revision;

    /// The latest compacted revision: history at or below it is gone.
    fn compacted_revision(&self) -> Revision;

    /// Events of keys in `[key, range_end)` (etcd's range rules) with revisions in
    /// `[from, to_inclusive]`, in revision order (and key order within one revision), `prev_kv`
    /// filled where a previous version existed. `Compacted` if `from <= compacted_revision()`.
    ///
    /// Contract on the limit: a revision's events are never split. Whole revisions are taken
    /// while fewer than `events_count_max` events are collected, so the answer may exceed the
    /// limit by the rest of its last revision (a txn or a delete-range can change many keys at
    /// once). An answer with fewer than `events_count_max` events covers every revision through
    /// `to_inclusive`; a longer one covers exactly through its last event's revision. The MVCC
    /// store and the model both keep this promise (a test runs the hub on each).
    fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Revision,
        to_inclusive: Revision,
        events_count_max: usize,
    ) -> Result<Vec<Event>, RequestError>;
}

/// The hub's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// Most watches alive on this member; creating more fails with `TooManyRequests`.
    pub watchers_count_max: usize,
    /// Most events buffered for one paused watcher before it is moved to catch-up.
    pub pending_events_count_max: usize,
    /// Target size of one response (estimated); see `WatchCreateRequest::fragment`.
    pub response_bytes_max: usize,
    /// How often idle watches with `progress_notify` get a progress notification.
    pub progress_interval: Duration,
}

impl WatchConfig {
    /// etcd-like defaults (10 minute progress interval, 1.5 MiB responses).
    pub fn new() -> WatchConfig {
        WatchConfig {
            watchers_count_max: 1 << 20,
            pending_events_count_max: 1024,
            response_bytes_max: 1536 * 1024,
            progress_interval: Duration::from_secs(600),
        }
    }

    /// Checks the limits; the error names the wrong one.
    pub fn validate(&self) -> Result<(), String> {
        if self.watchers_count_max == 0 || self.pending_events_count_max == 0 {
            return Err("watchers_count_max and pending_events_count_max must be positive".into());
        }
        if self.response_bytes_max == 0 || self.progress_interval.0 == 0 {
            return Err("response_bytes_max and progress_interval must be positive".into());
        }
        Ok(())
    }
}

impl Default for WatchConfig {
    fn default() -> WatchConfig {
        WatchConfig::new()
    }
}

/// Every watch of a member.
#[derive(Clone, Debug)]
pub struct WatchHub {
    config: WatchConfig,
    /// Copied into every response; `revision` is set per response.
    header: ResponseHeader,
    watchers: BTreeMap<WatchId, Watcher>,
    /// Synced single-key watchers by key. Invariant: exactly the synced watchers with an empty
    /// `range_end`.
    key_index: BTreeMap<Vec<u8>, BTreeSet<WatchId>>,
    /// Synced watchers over a range (scanned per event).
    range_synced: BTreeSet<WatchId>,
    /// Invariant: exactly the watchers with `synced == false`.
    unsynced: BTreeSet<WatchId>,
    next_watch_id: i64,
    /// The last revision applied (or seen at the source). Synced watchers have every event up to
    /// it delivered or pending.
    last_revision: Revision,
    /// Where the next `catch_up` starts, so a bounded call is fair across lagging watchers.
    catch_up_cursor: WatchId,
    progress_next_at: Option<Instant>,
}

impl WatchHub {
    /// An empty hub. `header` is copied into every response (its revision is overwritten).
    pub fn new(config: WatchConfig, header: ResponseHeader) -> WatchHub {
        assert!(config.validate().is_ok(), "invalid watch config");
        WatchHub {
            config,
            header,
            watchers: BTreeMap::new(),
            key_index: BTreeMap::new(),
            range_synced: BTreeSet::new(),
            unsynced: BTreeSet::new(),
            next_watch_id: 1,
            last_revision: Revision(0),
            catch_up_cursor: WatchId(0),
            progress_next_at: None,
        }
    }

    /// Replaces the header template (for instance after a term change).
    pub fn set_header(&mut self, header: ResponseHeader) {
        self.header = header;
    }

    /// The number of watches.
    pub fn watchers_count(&self) -> usize {
        self.watchers.len()
    }

    /// The number of watches being fed from history.
    pub fn unsynced_count(&self) -> usize {
        self.unsynced.len()
    }

    /// Creates a watch. `start_revision` 0 (or in the future) makes it synced from the next
    /// write on; a past one replays history through `catch_up` (and a compacted one is cancelled
    /// there with its compact revision, as etcd does after confirming the creation).
    pub fn create(
        &mut self,
        request: WatchCreateRequest,
        source: &dyn EventSource,
    ) -> Result<WatchId, RequestError> {
        if request.key.is_empty() && request.range_end.is_empty() {
            return Err(RequestError::EmptyKey);
        }
        if request.watch_id.0 != 0 && self.watchers.contains_key(&request.watch_id) {
            return Err(RequestError::WatchIdExists {
                watch_id: request.watch_id,
            });
        }
        if self.watchers.len() >= self.config.watchers_count_max {
            return Err(RequestError::TooManyRequests);
        }
        self.observe_source(source);
        let id = if request.watch_id.0 != 0 {
            request.watch_id
        } else {
            self.choose_id()
        };
        let start = request.start_revision;
        let synced = start.0 <= 0 || start > self.last_revision;
        let next_revision = if synced {
            start.max(self.last_revision.next())
        } else {
            start
        };
        let watcher = Watcher {
            id,
            request,
            next_revision,
            synced,
            paused: false,
            pending: Default::default(),
            pending_events_count: 0,
            progress_requested: false,
            sent_since_progress: false,
        };
        self.insert(watcher);
        Ok(id)
    }

    /// The `created` confirmation etcd sends first on the stream, for the member to put in
    /// `Actions::notify` right after a successful `create` (before any event of the watch).
    pub fn created_response(&self, id: WatchId) -> WatchResponse {
        assert!(
            self.watchers.contains_key(&id),
            "confirming an unknown watch {id}"
        );
        let mut header = self.header.clone();
        header.revision = self.last_revision;
        WatchResponse {
            header,
            watch_id: id,
            created: true,
            ..WatchResponse::default()
        }
    }

    fn choose_id(&mut self) -> WatchId {
        while self.watchers.contains_key(&WatchId(self.next_watch_id)) {
            self.next_watch_id += 1;
        }
        let id = WatchId(self.next_watch_id);
        self.next_watch_id += 1;
        id
    }

    /// The member applied revisions up to the source's current one; nothing may be missed.
    fn observe_source(&mut self, source: &dyn EventSource) {
        let current = source.current_revision();
        assert!(
            current >= self.last_revision,
            "the store went back from revision {} to {current}",
            self.last_revision
        );
        self.last_revision = current;
    }

    fn insert(&mut self, watcher: Watcher) {
        let id = watcher.id;
        self.index(&watcher);
        let previous = self.watchers.insert(id, watcher);
        assert!(previous.is_none());
    }

    fn index(&mut self, watcher: &Watcher) {
        let fresh = if !watcher.synced {
            self.unsynced.insert(watcher.id)
        } else if watcher.is_single_key() {
            let ids = self
                .key_index
                .entry(watcher.request.key.clone())
                .or_default();
            ids.insert(watcher.id)
        } else {
            self.range_synced.insert(watcher.id)
        };
        assert!(fresh, "watch {} indexed twice", watcher.id);
    }

    fn unindex(&mut self, watcher: &Watcher) {
        let found = if !watcher.synced {
            self.unsynced.remove(&watcher.id)
        } else if watcher.is_single_key() {
            let ids = self
                .key_index
                .get_mut(&watcher.request.key)
                .expect("indexed key");
            let found = ids.remove(&watcher.id);
            if ids.is_empty() {
                self.key_index.remove(&watcher.request.key);
            }
            found
        } else {
            self.range_synced.remove(&watcher.id)
        };
        assert!(found, "watch {} missing from its index", watcher.id);
    }

    /// Cancels a watch at the client's request (no response is emitted; the member replies).
    pub fn cancel(&mut self, id: WatchId) -> Result<(), RequestError> {
        let watcher = self
            .watchers
            .remove(&id)
            .ok_or(RequestError::WatchNotFound { watch_id: id })?;
        self.unindex(&watcher);
        Ok(())
    }

    /// Feeds one applied revision to the synced watchers. `events` are all events of that
    /// revision with `prev_kv` filled; revisions must arrive strictly increasing, and the store
    /// must already be at `revision` (responses go out after apply).
    pub fn on_apply(&mut self, revision: Revision, events: &[Event], out: &mut Vec<WatchResponse>) {
        assert!(
            revision > self.last_revision,
            "revision {revision} applied after {}",
            self.last_revision
        );
        assert!(events.iter().all(|event| event.kv.mod_revision == revision));
        self.last_revision = revision;
        // (watch, event index) pairs, sorted so each watcher's events stay in event order and
        // watchers are served in id order; cheaper than a map for wide fan-out.
        let mut matched: Vec<(WatchId, usize)> = Vec::new();
        for (event_index, event) in events.iter().enumerate() {
            if let Some(ids) = self.key_index.get(&event.kv.key) {
                matched.extend(ids.iter().map(|id| (*id, event_index)));
            }
            for id in &self.range_synced {
                if self.watchers[id].matches(&event.kv.key) {
                    matched.push((*id, event_index));
                }
            }
        }
        matched.sort_unstable();
        for group in matched.chunk_by(|a, b| a.0 == b.0) {
            let id = group[0].0;
            let watcher = self.watchers.get(&id).expect("indexed watch exists");
            assert!(watcher.synced);
            if revision < watcher.next_revision {
                continue; // A future start revision not reached yet.
            }
            let watcher_events = group.iter().map(|(_, event_index)| &events[*event_index]);
            if let Some(batch) = watcher.batch(watcher_events) {
                self.deliver_synced(id, batch, out);
            }
        }
    }

    /// Emits a synced watcher's batch, buffers it while the consumer is paused, or moves the
    /// watcher to catch-up when its buffer would overflow.
    fn deliver_synced(&mut self, id: WatchId, batch: Batch, out: &mut Vec<WatchResponse>) {
        let watcher = self.watchers.get_mut(&id).expect("watch exists");
        if !watcher.paused && watcher.pending.is_empty() {
            watcher.emit([batch], &self.header, self.config.response_bytes_max, out);
            return;
        }
        let fits = watcher.pending_events_count + batch.events.len()
            <= self.config.pending_events_count_max;
        if fits {
            watcher.pending_events_count += batch.events.len();
            watcher.pending.push_back(batch);
            assert!(watcher.pending_events_count <= self.config.pending_events_count_max);
            return;
        }
        // Overflow: keep what is buffered and resume from this revision out of history later.
        let mut watcher = self.watchers.remove(&id).expect("watch exists");
        self.unindex(&watcher);
        watcher.synced = false;
        watcher.next_revision = if crate::bug!(SlowWatcherGap) {
            // Zoo (etcd #17529): catch-up resumes after the revision that overflowed.
            batch.revision.next()
        } else {
            batch.revision
        };
        self.insert(watcher);
    }

    /// The consumer of `id` stopped taking responses: buffer its events from now on.
    pub fn pause(&mut self, id: WatchId) -> Result<(), RequestError> {
        let watcher = self
            .watchers
            .get_mut(&id)
            .ok_or(RequestError::WatchNotFound { watch_id: id })?;
        watcher.paused = true;
        Ok(())
    }

    /// The consumer of `id` takes responses again: its buffered events go out now; if it fell
    /// behind, `catch_up` feeds it the rest.
    pub fn resume(
        &mut self,
        id: WatchId,
        out: &mut Vec<WatchResponse>,
    ) -> Result<(), RequestError> {
        let last_revision = self.last_revision;
        let watcher = self
            .watchers
            .get_mut(&id)
            .ok_or(RequestError::WatchNotFound { watch_id: id })?;
        watcher.paused = false;
        watcher.flush_pending(&self.header, self.config.response_bytes_max, out);
        if watcher.synced && watcher.progress_requested {
            watcher.push_progress(last_revision, &self.header, out);
        }
        Ok(())
    }

    /// The store jumped (a snapshot was installed): no `on_apply` came for the skipped
    /// revisions, so every synced watcher is moved to catch-up from where it was.
    pub fn on_restore(&mut self, source: &dyn EventSource) {
        let resume_from = self.last_revision.next();
        let synced: Vec<WatchId> = self
            .watchers
            .values()
            .filter(|watcher| watcher.synced)
            .map(|watcher| watcher.id)
            .collect();
        for id in synced {
            let mut watcher = self.watchers.remove(&id).expect("watch exists");
            self.unindex(&watcher);
            watcher.synced = false;
            if !crate::bug!(WatchResentAfterRestore) {
                // Zoo (etcd #15271) when skipped: the watch replays from where it was created.
                watcher.next_revision = watcher.next_revision.max(resume_from);
            }
            self.insert(watcher);
        }
        self.observe_source(source);
    }

    /// Feeds lagging watchers from history, reading at most about `events_count_max` events in
    /// this call (a single revision larger than that is still read whole). A watcher whose next
    /// revision was compacted is cancelled with `compact_revision` set. Returns whether lagging
    /// watchers remain.
    pub fn catch_up(
        &mut self,
        source: &dyn EventSource,
        out: &mut Vec<WatchResponse>,
        events_count_max: usize,
    ) -> bool {
        assert!(events_count_max > 0);
        self.observe_source(source);
        // Runs every step; usually no watcher lags, so skip building the visiting order.
        if self.unsynced.is_empty() {
            return false;
        }
        let mut budget = events_count_max;
        let order: Vec<WatchId> = self
            .unsynced
            .range(WatchId(self.catch_up_cursor.0.saturating_add(1))..)
            .chain(self.unsynced.range(..=self.catch_up_cursor))
            .copied()
            .collect();
        for id in order {
            if budget == 0 {
                break;
            }
            self.catch_up_cursor = id;
            let read = self.catch_up_one(id, source, out, budget);
            budget = budget.saturating_sub(read.max(1));
        }
        !self.unsynced.is_empty()
    }

    /// Catches up one watcher; returns how many events it read.
    fn catch_up_one(
        &mut self,
        id: WatchId,
        source: &dyn EventSource,
        out: &mut Vec<WatchResponse>,
        budget: usize,
    ) -> usize {
        let watcher = self.watchers.get_mut(&id).expect("unsynced watch exists");
        assert!(!watcher.synced);
        if watcher.paused {
            return 0;
        }
        watcher.flush_pending(&self.header, self.config.response_bytes_max, out);
        let compacted = source.compacted_revision();
        // Zoo (etcd #18089): see `Store::events`; the compacted revision counts as watchable.
        let compacted_floor = if crate::bug!(CompactionEatsDeleteEvent) {
            Revision(compacted.0 - 1)
        } else {
            compacted
        };
        if watcher.next_revision <= compacted_floor {
            self.cancel_compacted(id, compacted, out);
            return 0;
        }
        let from = watcher.next_revision;
        let to = self.last_revision;
        if from > to {
            // Nothing exists yet at the watcher's next revision (it started in the future, or
            // a snapshot install moved it here): it waits for new writes like a synced one.
            self.mark_synced(id, out);
            return 0;
        }
        let fetched = fetch_whole_revisions(source, watcher, from, to, budget);
        let (events, through) = match fetched {
            Ok(found) => found,
            Err(RequestError::Compacted { compacted, .. }) => {
                self.cancel_compacted(id, compacted, out);
                return 0;
            }
            Err(error) => panic!("event source failed on a valid range: {error:?}"),
        };
        let read = events.len();
        let batches = group_by_revision(watcher, &events);
        watcher.emit(batches, &self.header, self.config.response_bytes_max, out);
        assert!(through >= from.0 - 1 && through <= to.0);
        watcher.next_revision = Revision(through + 1);
        if through == to.0 {
            self.mark_synced(id, out);
        }
        read
    }

    fn mark_synced(&mut self, id: WatchId, out: &mut Vec<WatchResponse>) {
        let mut watcher = self.watchers.remove(&id).expect("watch exists");
        self.unindex(&watcher);
        assert!(watcher.pending.is_empty());
        watcher.synced = true;
        if watcher.progress_requested {
            watcher.push_progress(self.last_revision, &self.header, out);
        }
        self.insert(watcher);
    }

    fn cancel_compacted(&mut self, id: WatchId, compacted: Revision, out: &mut Vec<WatchResponse>) {
        let watcher = self.watchers.remove(&id).expect("watch exists");
        crate::marks::hit(crate::marks::Mark::WatchCancelledByCompaction);
        self.unindex(&watcher);
        let mut header = self.header.clone();
        header.revision = self.last_revision;
        out.push(WatchResponse {
            header,
            watch_id: id,
            canceled: true,
            compact_revision: compacted,
            cancel_reason: "mvcc: required revision has been compacted".into(),
            ..WatchResponse::default()
        });
    }

    /// On-demand progress: every watcher that has all events up to the applied revision
    /// delivered gets a notification at that revision now; the others get one as soon as they
    /// are caught up and drained (etcd sends none to a lagging watcher).
    pub fn request_progress(&mut self, out: &mut Vec<WatchResponse>) {
        for watcher in self.watchers.values_mut() {
            // Zoo (etcd #15220): a lagging watcher gets the bookmark too.
            let caught_up = watcher.synced || crate::bug!(ProgressAheadOfEvents);
            if caught_up && !watcher.paused && watcher.pending.is_empty() {
                watcher.push_progress(self.last_revision, &self.header, out);
            } else {
                watcher.progress_requested = true;
            }
        }
    }

    /// Periodic progress for watches with `progress_notify` that sent nothing in the last
    /// interval and are fully delivered. The first call only starts the timer.
    pub fn progress_due(&mut self, now: Instant, out: &mut Vec<WatchResponse>) {
        let Some(due_at) = self.progress_next_at else {
            self.progress_next_at = Some(now + self.config.progress_interval);
            return;
        };
        if now < due_at {
            return;
        }
        for watcher in self.watchers.values_mut() {
            let idle = !watcher.sent_since_progress;
            let delivered = watcher.synced && !watcher.paused && watcher.pending.is_empty();
            if watcher.request.progress_notify && idle && delivered {
                watcher.push_progress(self.last_revision, &self.header, out);
            }
            watcher.sent_since_progress = false;
        }
        self.progress_next_at = Some(now + self.config.progress_interval);
    }

    /// When `progress_due` next has work, for the member's `wake_at`.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.progress_next_at
    }
}

/// Reads events of `[from, to]` for a watcher. The source never splits a revision (see
/// [`EventSource::events`]), so every revision in the answer is whole and may be delivered.
/// Returns the events and the last revision they cover completely.
fn fetch_whole_revisions(
    source: &dyn EventSource,
    watcher: &Watcher,
    from: Revision,
    to: Revision,
    budget: usize,
) -> Result<(Vec<Event>, i64), RequestError> {
    assert!(budget > 0);
    if from > to {
        return Ok((Vec::new(), to.0));
    }
    let (key, range_end) = (&watcher.request.key, &watcher.request.range_end);
    let events = source.events(key, range_end, from, to, budget)?;
    if events.len() < budget {
        // Short of the limit: the source read every revision through `to`.
        return Ok((events, to.0));
    }
    // At or past the limit: the source stopped after a whole revision, possibly going over the
    // budget to finish it (one revision larger than the budget still comes whole).
    let last = events.last().expect("budget is positive").kv.mod_revision;
    assert!(
        last >= from && last <= to,
        "event source answered outside its window"
    );
    let first_of_last = events.partition_point(|event| event.kv.mod_revision < last);
    assert!(
        first_of_last < budget,
        "event source went past its limit with more than one revision"
    );
    Ok((events, last.0))
}

/// Splits revision-ordered events into the watcher's batches.
fn group_by_revision(watcher: &Watcher, events: &[Event]) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut start_index = 0;
    while start_index < events.len() {
        let revision = events[start_index].kv.mod_revision;
        let mut end_index = start_index;
        while end_index < events.len() && events[end_index].kv.mod_revision == revision {
            end_index += 1;
        }
        if let Some(batch) = watcher.batch(events[start_index..end_index].iter()) {
            batches.push(batch);
        }
        start_index = end_index;
    }
    assert!(batches
        .windows(2)
        .all(|pair| pair[0].revision < pair[1].revision));
    batches
}
