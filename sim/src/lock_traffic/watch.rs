//! The lock clients' watch streams: a recipe's watch opened at the client's endpoint, recorded
//! like a watcher's, its responses travelling back over the client's link in stream order,
//! ended when the recipe moves on or its member crashes.

use engine::kv::{
    Request, RequestError, Response, WatchCreateRequest, WatchFilters, WatchResponse,
};
use engine::types::{Duration, Instant};

use super::{latency, LockClients, OpenWatch, Phase};
use crate::history::WatchRecord;
use crate::world::{Event, World};

impl<M: crate::process::HostedMember> World<M> {
    pub(super) fn lock_open_watch(
        &mut self,
        now: Instant,
        client: usize,
        create: WatchCreateRequest,
    ) {
        let op_id = self.take_request_id();
        let history_client = self.locks().history_client(client, false) as u32;
        // The recipe's filter is applied here, not in the member: the recorded stream must be
        // complete for the watch checker (the format has no filters).
        let request = WatchCreateRequest {
            filters: WatchFilters::default(),
            ..create
        };
        let state = self.lock_client(client);
        let node = state.endpoint;
        state.records.push(WatchRecord {
            watch: op_id,
            client: history_client,
            call: now,
            key: request.key.clone(),
            range_end: request.range_end.clone(),
            start_revision: request.start_revision.0,
            prev_kv: request.prev_kv,
            events: Vec::new(),
            progress: Vec::new(),
            canceled: None,
        });
        state.watch = Some(OpenWatch {
            op_id,
            node,
            watch_id: None,
            last_arrival: now,
        });
        let arrival = now + latency(&mut state.rng);
        self.counts.watches += 1;
        self.routes
            .insert(op_id, crate::clients::RequestRoute::LockWatch(client));
        self.queue.schedule(
            arrival,
            Event::RequestArrives {
                op_id,
                node,
                request: Request::WatchCreate(request),
            },
        );
        let timeout = Duration(self.scenario.workload.request_timeout_ns);
        self.queue
            .schedule(now + timeout, Event::LockWatchTimeout { client, op_id });
    }

    /// Ends the client's open watch (the recipe moved on): cancelled in the member too.
    pub(super) fn lock_close_watch(&mut self, now: Instant, client: usize) {
        let state = self.lock_client(client);
        let Some(watch) = state.watch.take() else {
            return;
        };
        if let Some(record) = state.records.last_mut() {
            record.cancel(now, "closed by the client", 0);
        }
        self.routes.remove(&watch.op_id);
        if let Some(watch_id) = watch.watch_id {
            let op_id = self.take_request_id();
            let arrival = now + latency(&mut self.lock_client(client).rng);
            self.routes
                .insert(op_id, crate::clients::RequestRoute::WatcherControl);
            self.queue.schedule(
                arrival,
                Event::RequestArrives {
                    op_id,
                    node: watch.node,
                    request: Request::WatchCancel { watch_id },
                },
            );
        }
    }

    /// The member answered the watch creation.
    pub(crate) fn lock_watch_reply(
        &mut self,
        now: Instant,
        client: usize,
        node: usize,
        result: Result<Response, RequestError>,
    ) {
        let state = self.lock_client(client);
        match (&mut state.watch, result) {
            (Some(watch), Ok(Response::WatchCreated { watch_id, .. })) if watch.node == node => {
                watch.watch_id = Some(watch_id);
            }
            (Some(_), result) => {
                let reason = match &result {
                    Err(error) => error.code().to_string(),
                    Ok(_) => "unexpected response".to_string(),
                };
                self.lock_watch_ended(now, client, &reason, 0);
            }
            (None, _) => {}
        }
    }

    /// A watch creation that got no answer ends the stream; the recipe reads again.
    pub(crate) fn lock_watch_timeout(&mut self, now: Instant, client: usize, op_id: u64) {
        let pending = self
            .lock_client(client)
            .watch
            .as_ref()
            .is_some_and(|watch| watch.op_id == op_id && watch.watch_id.is_none());
        if pending {
            self.routes.remove(&op_id);
            self.lock_watch_ended(now, client, "timeout", 0);
        }
    }

    /// The open watch ended (cancelled by the member, its member crashed, or it was never
    /// created): the recipe hears a cancellation and reads the store again.
    fn lock_watch_ended(&mut self, now: Instant, client: usize, reason: &str, compact: i64) {
        let state = self.lock_client(client);
        if state.watch.take().is_none() {
            return;
        }
        if let Some(record) = state.records.last_mut() {
            record.cancel(now, reason, compact);
        }
        let cancelled = WatchResponse {
            canceled: true,
            ..WatchResponse::default()
        };
        self.lock_feed_watch(now, client, &cancelled);
    }

    fn lock_feed_watch(&mut self, now: Instant, client: usize, response: &WatchResponse) {
        let state = self.lock_client(client);
        let next = match &mut state.phase {
            Phase::Acquiring(acquiring) => acquiring.on_watch(response),
            _ => return,
        };
        self.lock_drive(now, client, next);
    }

    /// A member's watch response for a lock client's stream, if one is open there: it arrives
    /// after the link's latency, in stream order.
    pub(crate) fn lock_route_notify(
        &mut self,
        now: Instant,
        node: usize,
        response: WatchResponse,
    ) -> Option<WatchResponse> {
        let Some(locks) = self.locks.as_mut() else {
            return Some(response);
        };
        let Some(client) = locks.clients.iter().position(|state| {
            state.watch.as_ref().is_some_and(|watch| {
                watch.node == node && watch.watch_id == Some(response.watch_id)
            })
        }) else {
            return Some(response);
        };
        let state = &mut locks.clients[client];
        let lat = latency(&mut state.rng);
        let watch = state.watch.as_mut().expect("found above");
        let arrival = (now + lat).max(watch.last_arrival);
        watch.last_arrival = arrival;
        let op_id = watch.op_id;
        self.queue.schedule(
            arrival,
            Event::LockWatchArrives {
                client,
                op_id,
                response,
            },
        );
        None
    }

    /// A watch response reached the lock client.
    pub(crate) fn lock_watch_arrives(
        &mut self,
        now: Instant,
        client: usize,
        op_id: u64,
        response: WatchResponse,
    ) {
        let state = self.lock_client(client);
        if state
            .watch
            .as_ref()
            .is_none_or(|watch| watch.op_id != op_id)
        {
            return;
        }
        let record = state
            .records
            .last_mut()
            .expect("an open watch has a record");
        let progress = response.events.is_empty() && !response.created && !response.canceled;
        if progress {
            record.push_progress(now, response.header.revision.0);
        }
        record.push_events(now, &response.events);
        if response.canceled {
            let reason = if response.cancel_reason.is_empty() {
                "canceled".to_string()
            } else {
                response.cancel_reason.clone()
            };
            return self.lock_watch_ended(now, client, &reason, response.compact_revision.0);
        }
        // The recipe's `no_put` filter.
        let mut deletions = response;
        deletions
            .events
            .retain(|event| event.kind == engine::kv::EventType::Delete);
        self.lock_feed_watch(now, client, &deletions);
    }

    /// Ends the lock clients' streams served by member `node` (it crashed).
    pub(crate) fn lock_cancel_watches_on(&mut self, now: Instant, node: usize, reason: &str) {
        let count = self.locks.as_ref().map_or(0, LockClients::len);
        for client in 0..count {
            let served = self
                .lock_client(client)
                .watch
                .as_ref()
                .is_some_and(|watch| watch.node == node);
            if served {
                self.lock_watch_ended(now, client, reason, 0);
            }
        }
    }
}
