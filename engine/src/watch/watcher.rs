//! One watcher's state and the pure helpers that turn a revision's events into its responses:
//! range matching, filters, `prev_kv` pruning, and packing batches into size-bounded responses.
//!
//! It does not decide when a watcher is synced or caught up; `WatchHub` owns that.

use std::collections::VecDeque;

use crate::kv::{Event, EventType, ResponseHeader, WatchCreateRequest, WatchResponse};
use crate::types::{Revision, WatchId};

/// Fixed per-event overhead counted by the size estimate (revisions, versions, lease, framing).
const EVENT_OVERHEAD_BYTES: usize = 48;

/// Whether `key` lies in a watch's or range's key set, with etcd's `range_end` rules: empty means
/// the single `start` key, `[0]` every key `>= start`, otherwise `[start, range_end)`.
pub fn key_in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        key == start
    } else if range_end == [0] {
        key >= start
    } else {
        key >= start && key < range_end
    }
}

/// The events of one revision that a watcher wants, filtered and pruned.
/// Invariant: not empty, and every event's `kv.mod_revision == revision`.
#[derive(Clone, Debug)]
pub(super) struct Batch {
    pub(super) revision: Revision,
    pub(super) events: Vec<Event>,
}

/// One watch.
#[derive(Clone, Debug)]
pub(super) struct Watcher {
    pub(super) id: WatchId,
    pub(super) request: WatchCreateRequest,
    /// Synced: events of revisions below this are not wanted (a future start revision).
    /// Unsynced: the first revision neither delivered nor pending; catch-up resumes here.
    pub(super) next_revision: Revision,
    pub(super) synced: bool,
    /// The consumer is not taking responses: new batches go to `pending`.
    pub(super) paused: bool,
    /// Batches not yet emitted, oldest first. Invariant: revisions strictly increase and are all
    /// below `next_revision` when unsynced.
    pub(super) pending: VecDeque<Batch>,
    /// Invariant: the total event count of `pending`, at most `pending_events_count_max`.
    pub(super) pending_events_count: usize,
    /// A progress request arrived while the watcher could not answer it truthfully.
    pub(super) progress_requested: bool,
    /// A response went out since the last periodic progress tick.
    pub(super) sent_since_progress: bool,
}

impl Watcher {
    /// Whether the watch's key set contains `key`.
    pub(super) fn matches(&self, key: &[u8]) -> bool {
        key_in_range(key, &self.request.key, &self.request.range_end)
    }

    /// Whether the watch covers exactly one key (so the hub can index it by key).
    pub(super) fn is_single_key(&self) -> bool {
        self.request.range_end.is_empty()
    }

    /// The events of one revision this watcher wants, or `None` when none is left after
    /// filtering. `events` are all of one revision and all within the watcher's range.
    pub(super) fn batch<'a>(&self, events: impl Iterator<Item = &'a Event>) -> Option<Batch> {
        let filters = self.request.filters;
        let mut wanted = Vec::new();
        for event in events {
            debug_assert!(self.matches(&event.kv.key));
            let dropped = match event.kind {
                EventType::Put => filters.no_put,
                EventType::Delete => filters.no_delete,
            };
            if dropped {
                continue;
            }
            // Clone prev_kv only when asked: it doubles the allocations of the hot path.
            wanted.push(Event {
                kind: event.kind,
                kv: event.kv.clone(),
                prev_kv: if self.request.prev_kv {
                    event.prev_kv.clone()
                } else {
                    None
                },
            });
        }
        let revision = wanted.first()?.kv.mod_revision;
        assert!(wanted.iter().all(|event| event.kv.mod_revision == revision));
        Some(Batch {
            revision,
            events: wanted,
        })
    }

    /// Packs batches into responses of at most `response_bytes_max` (estimated), appending them
    /// to `out`. A revision is never split unless the watch asked for fragments, in which case
    /// an oversized revision goes out as fragments, every one but the last marked `fragment`.
    pub(super) fn emit(
        &mut self,
        batches: impl IntoIterator<Item = Batch>,
        header: &ResponseHeader,
        response_bytes_max: usize,
        out: &mut Vec<WatchResponse>,
    ) {
        let mut events: Vec<Event> = Vec::new();
        let mut events_bytes = 0usize;
        for batch in batches {
            let batch_bytes: usize = batch.events.iter().map(event_bytes).sum();
            if !events.is_empty() && events_bytes + batch_bytes > response_bytes_max {
                self.push_response(std::mem::take(&mut events), false, header, out);
                events_bytes = 0;
            }
            if batch_bytes > response_bytes_max && self.request.fragment {
                assert!(events.is_empty());
                self.push_fragments(batch, header, response_bytes_max, out);
                continue;
            }
            events_bytes += batch_bytes;
            events.extend(batch.events);
        }
        if !events.is_empty() {
            self.push_response(events, false, header, out);
        }
    }

    fn push_fragments(
        &mut self,
        batch: Batch,
        header: &ResponseHeader,
        response_bytes_max: usize,
        out: &mut Vec<WatchResponse>,
    ) {
        let mut chunks: Vec<Vec<Event>> = vec![Vec::new()];
        let mut chunk_bytes = 0usize;
        for event in batch.events {
            let bytes = event_bytes(&event);
            let chunk = chunks.last_mut().expect("one chunk at least");
            if !chunk.is_empty() && chunk_bytes + bytes > response_bytes_max {
                chunks.push(Vec::new());
                chunk_bytes = 0;
            }
            chunk_bytes += bytes;
            chunks.last_mut().expect("one chunk at least").push(event);
        }
        let chunks_count = chunks.len();
        for (chunk_index, chunk) in chunks.into_iter().enumerate() {
            assert!(!chunk.is_empty());
            self.push_response(chunk, chunk_index + 1 < chunks_count, header, out);
        }
    }

    fn push_response(
        &mut self,
        events: Vec<Event>,
        fragment: bool,
        header: &ResponseHeader,
        out: &mut Vec<WatchResponse>,
    ) {
        let last = events.last().expect("a response carries events");
        let mut header = header.clone();
        header.revision = last.kv.mod_revision;
        self.sent_since_progress = true;
        out.push(WatchResponse {
            header,
            watch_id: self.id,
            fragment,
            events,
            ..WatchResponse::default()
        });
    }

    /// A progress notification: every event of this watcher up to `revision` was delivered.
    pub(super) fn push_progress(
        &mut self,
        revision: Revision,
        header: &ResponseHeader,
        out: &mut Vec<WatchResponse>,
    ) {
        assert!(self.pending.is_empty(), "progress past undelivered events");
        let mut header = header.clone();
        header.revision = revision;
        self.progress_requested = false;
        out.push(WatchResponse {
            header,
            watch_id: self.id,
            ..WatchResponse::default()
        });
    }

    /// Emits every pending batch.
    pub(super) fn flush_pending(
        &mut self,
        header: &ResponseHeader,
        response_bytes_max: usize,
        out: &mut Vec<WatchResponse>,
    ) {
        let pending = std::mem::take(&mut self.pending);
        self.pending_events_count = 0;
        self.emit(pending, header, response_bytes_max, out);
    }
}

/// The estimated encoded size of an event, for fragmenting.
pub(super) fn event_bytes(event: &Event) -> usize {
    let prev_bytes = event
        .prev_kv
        .as_ref()
        .map_or(0, |kv| kv.key.len() + kv.value.len() + EVENT_OVERHEAD_BYTES);
    event.kv.key.len() + event.kv.value.len() + EVENT_OVERHEAD_BYTES + prev_bytes
}

/// A stable one-line rendering of a watch response for golden tests, e.g.
/// `watch=1 rev=5 [PUT a=x@5 prev=a=w@4, DEL b@5] fragment`.
pub fn describe_response(response: &WatchResponse) -> String {
    let mut text = format!(
        "watch={} rev={}",
        response.watch_id, response.header.revision
    );
    if response.created {
        text.push_str(" created");
    }
    if response.canceled {
        text.push_str(&format!(
            " canceled compact_revision={} reason={:?}",
            response.compact_revision, response.cancel_reason
        ));
    }
    if response.events.is_empty() && !response.created && !response.canceled {
        text.push_str(" progress");
    }
    if !response.events.is_empty() {
        let events: Vec<String> = response.events.iter().map(describe_event).collect();
        text.push_str(&format!(" [{}]", events.join(", ")));
    }
    if response.fragment {
        text.push_str(" fragment");
    }
    text
}

fn describe_event(event: &Event) -> String {
    let key = String::from_utf8_lossy(&event.kv.key);
    let mut text = match event.kind {
        EventType::Put => format!(
            "PUT {key}={}@{}",
            String::from_utf8_lossy(&event.kv.value),
            event.kv.mod_revision
        ),
        EventType::Delete => format!("DEL {key}@{}", event.kv.mod_revision),
    };
    if let Some(prev) = &event.prev_kv {
        text.push_str(&format!(
            " prev={}={}@{}",
            String::from_utf8_lossy(&prev.key),
            String::from_utf8_lossy(&prev.value),
            prev.mod_revision
        ));
    }
    text
}
