//! Simulated clients and watchers: they send requests to members, time out, record what they
//! saw in the history, and feed the inline invariants.
//!
//! A client routes as etcd's clientv3 balancer does, with no knowledge a real client lacks: it
//! knows every member as an endpoint, pins one (drawn from its own routing stream) and sends
//! there. A "not leader" answer moves it to the leader it names, or to another endpoint when it
//! names none; a timeout or an unavailable member moves it to another endpoint. The request is
//! then retried there as a new operation in the history: a write whose first attempt timed out
//! stays recorded with an unknown outcome, so a double effect can never hide behind the retry.
//! The world's own knowledge of the leader serves fault targeting only, never a client.
//!
//! Clients reach members over their own links (latency from the client's routing stream);
//! partitions do not cut them, but a crashed or paused member never answers, so the client
//! times out and records an unknown outcome.
//!
//! Watchers open streams over every key, from now, from where the last stream ended, or from an
//! old revision (possibly compacted); some ask for prev_kv; while a stream is open they ask the
//! member for progress notifications and now and then stop reading for a while (backpressure),
//! so the member's slow-watcher and catch-up paths run.

use engine::api::Input;
use engine::kv::{
    KeyValue, Request, RequestError, Response, SortOrder, SortTarget, WatchCreateRequest,
    WatchResponse,
};
use engine::types::{Duration, Instant, Revision, WatchId};

use crate::history::{op_json, operation_line_as, WatchRecord};
use crate::rng::SimRng;
use crate::trace::LineHash;
use crate::workload::{Generator, WorkloadConfig};
use crate::world::{Event, Phase, World};

/// One-way client link latency range (ns).
const CLIENT_LATENCY_NS_MIN: u64 = 100_000;
const CLIENT_LATENCY_NS_MAX: u64 = 500_000;
/// Watch streams recorded per watcher at most; later ones are not opened.
pub const WATCHES_PER_WATCHER_MAX: usize = 256;
/// A watcher waits this long before re-opening a stream that ended.
const WATCH_RETRY_MS: u64 = 500;
/// Attempts of one request at most (the first and its retries on other endpoints); after that
/// the client gives up on it and draws its next request, as clientv3's retry budget does.
const REQUEST_ATTEMPTS_MAX: u32 = 3;
/// Pause between a watcher's progress requests on an open stream (ms), drawn uniformly.
const WATCH_PROGRESS_MS_MIN: u64 = 200;
/// See `WATCH_PROGRESS_MS_MIN`.
const WATCH_PROGRESS_MS_MAX: u64 = 2_000;
/// How long a watcher reads a stream before it may stop reading, and how long it stops (ms).
const WATCH_SLOW_MS_MAX: u64 = 3_000;
/// How far back an old start revision reaches behind the newest revision the watcher saw.
const WATCH_START_BACK_MAX: u64 = 200;

/// Who a request belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RequestRoute {
    Client(usize),
    Watcher(usize),
    /// A progress request of a watcher: its answer carries nothing to record (the
    /// notifications come on the streams).
    WatcherControl,
    /// A request of the admin client (`membership`): never recorded in the history.
    Admin,
    /// A request of lock client `client` (`lock_traffic`): its recipe's, or its session's
    /// keep-alive.
    Lock(usize),
    /// The watch creation of lock client `client`.
    LockWatch(usize),
}

/// A request a client is waiting for.
#[derive(Debug)]
pub(crate) struct Outstanding {
    op_id: u64,
    call: Instant,
    request: Request,
    /// 1 for the first attempt of a request, 2 for its first retry, and so on.
    attempt: u32,
}

/// One client: its generator, its pinned endpoint and at most one outstanding request.
#[derive(Debug)]
pub(crate) struct ClientState {
    generator: Generator,
    /// Latency of the client's link and its endpoint choices.
    routing: SimRng,
    /// The member index the client sends to. Invariant: below the member count.
    endpoint: usize,
    outstanding: Option<Outstanding>,
    /// A request to send again at the next wake, with the attempts it has used.
    retry: Option<(Request, u32)>,
}

impl ClientState {
    /// A client over `member_count` endpoints; it pins one drawn from `routing`.
    pub(crate) fn new(
        generator: Generator,
        mut routing: SimRng,
        member_count: usize,
    ) -> ClientState {
        assert!(member_count > 0, "a client needs an endpoint");
        let endpoint = routing.below(member_count as u64) as usize;
        ClientState {
            generator,
            routing,
            endpoint,
            outstanding: None,
            retry: None,
        }
    }

    pub(crate) fn think_time(&mut self, workload: &WorkloadConfig) -> Duration {
        Duration(
            self.generator
                .rng()
                .range_inclusive(workload.think_ns_min, workload.think_ns_max),
        )
    }

    /// Pins another endpoint than the current one, drawn uniformly (clientv3 moves on when its
    /// pinned endpoint fails).
    fn move_endpoint(&mut self, member_count: usize) {
        if member_count < 2 {
            return;
        }
        let other = self.routing.below(member_count as u64 - 1) as usize;
        self.endpoint = if other >= self.endpoint {
            other + 1
        } else {
            other
        };
        assert!(self.endpoint < member_count);
    }
}

/// One watcher: a stream over every key, re-opened when it ends.
#[derive(Debug)]
pub(crate) struct WatcherState {
    client_index: u32,
    rng: SimRng,
    /// The member and its watch id of the open stream.
    open: Option<(usize, Option<WatchId>)>,
    records: Vec<WatchRecord>,
    /// The highest revision seen over every stream, where a re-opened stream resumes.
    last_revision: Revision,
    /// The highest revision seen on the open stream (non-decreasing within a stream).
    stream_revision: Revision,
    /// When the open stream's last response arrived.
    last_arrival: Instant,
    /// The compact revision the last stream was cancelled with (0 if it was not), where
    /// etcd's clients resume a compacted watch.
    compact_revision: i64,
}

impl WatcherState {
    pub(crate) fn new(client_index: u32, rng: SimRng) -> WatcherState {
        WatcherState {
            client_index,
            rng,
            open: None,
            records: Vec::new(),
            last_revision: Revision(0),
            stream_revision: Revision(0),
            last_arrival: Instant(0),
            compact_revision: 0,
        }
    }

    /// The recorded streams' lines.
    pub(crate) fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.records.iter().map(WatchRecord::line)
    }
}

fn client_latency(rng: &mut SimRng) -> Duration {
    Duration(rng.range_inclusive(CLIENT_LATENCY_NS_MIN, CLIENT_LATENCY_NS_MAX))
}

impl<M: crate::process::HostedMember> World<M> {
    pub(crate) fn take_request_id(&mut self) -> u64 {
        let id = self.request_id_next;
        self.request_id_next += 1;
        id
    }

    pub(crate) fn client_wake(&mut self, now: Instant, client: usize) {
        if self.clients[client].outstanding.is_some() {
            return;
        }
        let (request, attempt) = match self.clients[client].retry.take() {
            Some((request, used)) => (request, used + 1),
            // A compaction storm (`scripted`): every other client compacts at the newest
            // revision it saw instead of its next request.
            None if now < self.compaction_storm_until && client.is_multiple_of(2) => {
                let generator = &mut self.clients[client].generator;
                let request = generator
                    .next_compaction()
                    .unwrap_or_else(|| generator.next_request());
                (request, 1)
            }
            None => match self.auth.as_mut().filter(|_| client == 0) {
                Some(admin) => match admin.next_admin_request() {
                    Some(request) => (request, 1),
                    None => return self.schedule_next_request(now, client),
                },
                None => (self.clients[client].generator.next_request(), 1),
            },
        };
        let node = self.clients[client].endpoint;
        let op_id = self.take_request_id();
        let arrival = now + client_latency(&mut self.clients[client].routing);
        self.routes.insert(op_id, RequestRoute::Client(client));
        self.queue.schedule(
            arrival,
            Event::RequestArrives {
                op_id,
                node,
                request: request.clone(),
            },
        );
        let timeout = Duration(self.scenario.workload.request_timeout_ns);
        self.queue
            .schedule(now + timeout, Event::ClientTimeout { client, op_id });
        self.clients[client].outstanding = Some(Outstanding {
            op_id,
            call: now,
            request,
            attempt,
        });
    }

    /// After a failed attempt: re-pins the client where its answer points (the named leader,
    /// or another endpoint) and keeps the request for one more attempt if it has any left.
    /// `leader_hint` is what the member said, never what the world knows.
    fn reroute_after_failure(
        &mut self,
        client: usize,
        request: &Request,
        attempt: u32,
        leader_hint: Option<engine::types::NodeId>,
    ) {
        let member_count = self.processes.len();
        let hinted = leader_hint
            .and_then(|leader| self.node_index(leader))
            .filter(|node| *node != self.clients[client].endpoint);
        let state = &mut self.clients[client];
        match hinted {
            Some(node) => state.endpoint = node,
            None => state.move_endpoint(member_count),
        }
        if attempt < REQUEST_ATTEMPTS_MAX {
            state.retry = Some((request.clone(), attempt));
        }
    }

    /// The input that hands request `id` to a member: with the client's credentials when the
    /// run has auth traffic and a client sent it (watchers and the membership admin send none).
    pub(crate) fn request_input(&self, id: engine::types::RequestId, request: Request) -> Input {
        match (&self.auth, self.routes.get(&id.0)) {
            (Some(_), Some(RequestRoute::Client(client))) => Input::RequestAs {
                id,
                request,
                credentials: crate::auth_traffic::AuthClients::credentials(*client),
            },
            _ => Input::Request { id, request },
        }
    }

    /// The user client `client` runs as, when the run has auth traffic.
    fn user_of(&self, client: usize) -> Option<&'static str> {
        self.auth
            .as_ref()
            .map(|_| crate::auth_traffic::AuthClients::user_of(client))
    }

    /// A member answered request `request_id`: send the reply back over the client's link.
    pub(crate) fn route_reply(
        &mut self,
        now: Instant,
        node: usize,
        request_id: engine::types::RequestId,
        result: Result<Response, RequestError>,
    ) {
        match self.routes.remove(&request_id.0) {
            Some(RequestRoute::Client(client)) => {
                let arrival = now + client_latency(&mut self.clients[client].routing);
                self.queue.schedule(
                    arrival,
                    Event::ReplyArrives {
                        client,
                        op_id: request_id.0,
                        result,
                    },
                );
            }
            Some(RequestRoute::Watcher(watcher)) => self.watcher_reply(now, watcher, node, result),
            Some(RequestRoute::Admin) => self.admin_reply(now, request_id.0, result),
            Some(RequestRoute::Lock(client)) => {
                self.lock_route_reply(now, client, request_id.0, result)
            }
            Some(RequestRoute::LockWatch(client)) => {
                self.lock_watch_reply(now, client, node, result)
            }
            Some(RequestRoute::WatcherControl) | None => {}
        }
    }

    /// The client's outstanding request, if it is `op_id`.
    fn take_outstanding(&mut self, client: usize, op_id: u64) -> Option<Outstanding> {
        let slot = &mut self.clients[client].outstanding;
        if slot
            .as_ref()
            .is_some_and(|outstanding| outstanding.op_id == op_id)
        {
            slot.take()
        } else {
            None
        }
    }

    /// Wakes the client for its next request after a think time.
    pub(crate) fn schedule_next_request(&mut self, now: Instant, client: usize) {
        let think = self.clients[client].think_time(&self.scenario.workload);
        self.queue
            .schedule(now + think, Event::ClientWake { client });
    }

    pub(crate) fn client_reply(
        &mut self,
        now: Instant,
        client: usize,
        op_id: u64,
        result: Result<Response, RequestError>,
    ) {
        let Some(outstanding) = self.take_outstanding(client, op_id) else {
            // A late reply or timeout for a request already settled.
            return;
        };
        let result = self.sorted_in_key_order(now, op_id, &outstanding.request, result);
        if let Some(auth) = self.auth.as_mut().filter(|_| client == 0) {
            auth.observe_admin_reply(&outstanding.request, &result);
        }
        if let Ok(response) = &result {
            if !response_fits(&outstanding.request, response) {
                // A reply of the wrong kind is a member bug; what the request did is unknown.
                let message = format!(
                    "request {op_id} of kind {:?} got a reply of another kind",
                    recorded_kind(&outstanding.request)
                );
                self.invariants.record("response_kind", now, message);
                self.counts.ops_unknown += 1;
                self.record_operation(client, outstanding, None);
                self.schedule_next_request(now, client);
                return;
            }
        }
        match &result {
            Ok(response) => {
                self.counts.ops_ok += 1;
                self.clients[client]
                    .generator
                    .observe(&outstanding.request, response);
                self.check_response(now, outstanding.call, &outstanding.request, response);
            }
            Err(error) => {
                self.counts.ops_error += 1;
                match error {
                    RequestError::LeaseNotFound { lease } => {
                        self.clients[client].generator.forget_lease(*lease);
                    }
                    RequestError::NotLeader { leader_hint } => {
                        let hint = *leader_hint;
                        let (request, attempt) = (&outstanding.request, outstanding.attempt);
                        self.reroute_after_failure(client, request, attempt, hint);
                    }
                    // The member stopped or lost the request's leader: try elsewhere. A write
                    // so answered stays unknown in the history; its retry is a new operation.
                    RequestError::Stopping | RequestError::LeaderChanged => {
                        let (request, attempt) = (&outstanding.request, outstanding.attempt);
                        self.reroute_after_failure(client, request, attempt, None);
                    }
                    _ => {}
                }
            }
        }
        self.record_operation(client, outstanding, Some((now, result)));
        self.schedule_next_request(now, client);
    }

    /// A sorted range's reply, checked for its order (inline invariant `range_sorted`) and put
    /// back in key order, the only order the history format's kvs have.
    fn sorted_in_key_order(
        &mut self,
        now: Instant,
        op_id: u64,
        request: &Request,
        result: Result<Response, RequestError>,
    ) -> Result<Response, RequestError> {
        let (Request::Range(range), Ok(Response::Range(mut reply))) = (request, result.clone())
        else {
            return result;
        };
        if range.sort_order == SortOrder::None {
            return result;
        }
        let sort_key = |kv: &KeyValue| -> (i64, Vec<u8>) {
            match range.sort_target {
                SortTarget::Key => (0, kv.key.clone()),
                SortTarget::Version => (kv.version, Vec::new()),
                SortTarget::Create => (kv.create_revision.0, Vec::new()),
                SortTarget::Mod => (kv.mod_revision.0, Vec::new()),
                SortTarget::Value => (0, kv.value.clone()),
            }
        };
        let in_order = reply.kvs.windows(2).all(|pair| {
            let (first, second) = (sort_key(&pair[0]), sort_key(&pair[1]));
            match range.sort_order {
                SortOrder::Descend => first >= second,
                _ => first <= second,
            }
        });
        if !in_order {
            let message = format!(
                "range {op_id} sorted {:?} by {:?} came back out of order",
                range.sort_order, range.sort_target
            );
            self.invariants.record("range_sorted", now, message);
        }
        reply
            .kvs
            .sort_by(|first, second| first.key.cmp(&second.key));
        Ok(Response::Range(reply))
    }

    pub(crate) fn client_timeout(&mut self, now: Instant, client: usize, op_id: u64) {
        let Some(outstanding) = self.take_outstanding(client, op_id) else {
            // A late reply or timeout for a request already settled.
            return;
        };
        self.routes.remove(&op_id);
        self.counts.ops_unknown += 1;
        let (request, attempt) = (&outstanding.request, outstanding.attempt);
        self.reroute_after_failure(client, request, attempt, None);
        self.record_operation(client, outstanding, None);
        self.schedule_next_request(now, client);
    }

    /// Feeds a successful response to the inline checks and to the liveness probe.
    pub(crate) fn check_response(
        &mut self,
        now: Instant,
        call: Instant,
        request: &Request,
        response: &Response,
    ) {
        let (revision, acknowledged_write, linearizable) = match (request, response) {
            (Request::Put(_), Response::Put(put)) => (put.header.revision, true, true),
            (Request::DeleteRange(_), Response::DeleteRange(delete)) => {
                (delete.header.revision, delete.deleted > 0, true)
            }
            (Request::Txn(_), Response::Txn(txn)) => (txn.header.revision, txn.succeeded, true),
            (Request::Range(range), Response::Range(result)) => {
                (result.header.revision, false, !range.serializable)
            }
            _ => return,
        };
        if linearizable {
            self.invariants
                .on_linearizable_result(now, call, revision, request_kind(request));
        }
        if acknowledged_write {
            self.invariants.on_write_acknowledged(now, revision);
        }
        let is_write = matches!(
            request,
            Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_)
        );
        if let Phase::Liveness { healed_at } = self.phase {
            if is_write && call >= healed_at && self.liveness_shown_at.is_none() {
                self.liveness_shown(now, healed_at);
            }
        }
    }

    /// Records a settled operation: hashes it, keeps it for the checkers (taking the request
    /// and the reply, which nothing needs afterwards) and renders it when the history is kept.
    fn record_operation(
        &mut self,
        client: usize,
        outstanding: Outstanding,
        outcome: Option<(Instant, Result<Response, RequestError>)>,
    ) {
        let user = self.user_of(client);
        self.record_op(
            client,
            outstanding.op_id,
            outstanding.call,
            outstanding.request,
            outcome,
            user,
            None,
        );
    }

    /// Records one settled operation of history client `client` (a client, or a lock client's
    /// number), with the user it ran as and a lock client's note.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_op(
        &mut self,
        client: usize,
        op_id: u64,
        call: Instant,
        request: Request,
        outcome: Option<(Instant, Result<Response, RequestError>)>,
        user: Option<&'static str>,
        lock: Option<checkers::history::LockNote>,
    ) {
        let Some(kind) = recorded_kind(&request) else {
            return;
        };
        self.counts.ops += 1;
        let outcome_ref = outcome.as_ref().map(|(time, result)| (*time, result));
        // The hash covers a compact rendering of every operation: building the JSON line costs
        // more than the rest of a run, so it is built only when the history is kept.
        self.trace.hash_only_pieces(|line| {
            compact_line(line, op_id, client, call, kind, outcome_ref);
            if let Some(user) = user {
                line.text(" as=").text(user);
            }
            if let Some(note) = &lock {
                line.text(" lock=")
                    .text(note.step.name())
                    .text(" token=")
                    .signed(note.token);
            }
        });
        let blind = self.locks.is_some();
        if let Some(lines) = &mut self.history_lines {
            let op = op_json(&request).expect("recorded kinds render");
            let line = operation_line_as(op_id, client as u32, user, call, &op, outcome_ref);
            lines.push(match blind {
                true => crate::lock_traffic::noted_line(line, &request, lock.as_ref()),
                false => line,
            });
        }
        let shape = crate::checking::RangeShape::of(&request);
        let blinded = blind.then(|| request.clone());
        let request = crate::checking::request(request).expect("recorded kinds convert");
        let mut operation =
            crate::checking::operation(op_id, client, call, request, outcome, shape);
        if let (Some(original), Some(result)) = (&blinded, operation.result.as_mut()) {
            crate::lock_traffic::blind_checked(original, result);
        }
        operation.user = user.map(str::to_string);
        operation.lock = lock;
        self.check_ops.push(operation);
    }

    /// Records every still-outstanding operation with unknown outcome (the run ended).
    pub(crate) fn finish_open_operations(&mut self) {
        for client in 0..self.clients.len() {
            if let Some(outstanding) = self.clients[client].outstanding.take() {
                self.counts.ops_unknown += 1;
                self.record_operation(client, outstanding, None);
            }
        }
        self.finish_lock_operations();
        for watcher in &mut self.watchers {
            for record in &watcher.records {
                record.hash_into(&mut self.trace);
            }
        }
        if let Some(locks) = &self.locks {
            for record in locks.records() {
                record.hash_into(&mut self.trace);
            }
        }
    }

    pub(crate) fn watcher_start(&mut self, now: Instant, watcher: usize) {
        if self.watchers[watcher].open.is_some()
            || self.watchers[watcher].records.len() >= WATCHES_PER_WATCHER_MAX
        {
            return;
        }
        let node = self.watchers[watcher]
            .rng
            .below(self.processes.len() as u64) as usize;
        let state = &mut self.watchers[watcher];
        let last_revision = state.last_revision.0;
        let compact_revision = core::mem::take(&mut state.compact_revision);
        // The first stream starts now. After a compaction cancelled the stream, start at the
        // compact revision (etcd allows it; this engine refuses it as compacted) or just after
        // it. Otherwise resume where the last stream ended (etcd's clients do), or, one time in
        // four, replay from an old revision (anywhere back to 1, or a little behind). Never
        // "from now" again: the revisions skipped would be a hole in what the watchers saw,
        // and the linearizability search leans on watch events to place unknown writes.
        let start_revision = match state.rng.below(8) {
            _ if compact_revision > 0 => Revision(compact_revision + state.rng.below(2) as i64),
            0 | 1 if last_revision > 1 => {
                Revision(1 + state.rng.below(last_revision as u64) as i64)
            }
            2 if last_revision > 1 => {
                let back = state
                    .rng
                    .below(WATCH_START_BACK_MAX.min(last_revision as u64));
                Revision((last_revision - back as i64).max(1))
            }
            _ if last_revision > 0 => Revision(last_revision + 1),
            _ => Revision(0),
        };
        let prev_kv = state.rng.below(2) == 0;
        let request = WatchCreateRequest {
            key: b"\0".to_vec(),
            range_end: b"\0".to_vec(),
            start_revision,
            prev_kv,
            ..Default::default()
        };
        let op_id = self.take_request_id();
        let state = &mut self.watchers[watcher];
        state.records.push(WatchRecord {
            watch: op_id,
            client: state.client_index,
            call: now,
            key: request.key.clone(),
            range_end: request.range_end.clone(),
            start_revision: start_revision.0,
            prev_kv,
            events: Vec::new(),
            progress: Vec::new(),
            canceled: None,
        });
        state.open = Some((node, None));
        state.stream_revision = Revision(0);
        self.counts.watches += 1;
        self.routes.insert(op_id, RequestRoute::Watcher(watcher));
        let arrival = now + client_latency(&mut self.watchers[watcher].rng);
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
            .schedule(now + timeout, Event::WatchTimeout { watcher, op_id });
    }

    /// A watch creation that got no answer ends its stream, so the watcher can try elsewhere.
    pub(crate) fn watch_timeout(&mut self, now: Instant, watcher: usize, op_id: u64) {
        let state = &self.watchers[watcher];
        let waiting = state.open.is_some_and(|(_, watch_id)| watch_id.is_none());
        if waiting
            && state
                .records
                .last()
                .is_some_and(|record| record.watch == op_id)
        {
            self.routes.remove(&op_id);
            self.end_watch(now, watcher, "timeout", 0);
        }
    }

    fn watcher_reply(
        &mut self,
        now: Instant,
        watcher: usize,
        node: usize,
        result: Result<Response, RequestError>,
    ) {
        let state = &mut self.watchers[watcher];
        match result {
            Ok(Response::WatchCreated { watch_id, .. }) => {
                state.open = Some((node, Some(watch_id)));
                let watch = state.records.last().map_or(0, |record| record.watch);
                let progress_at = Duration::from_millis(
                    state
                        .rng
                        .range_inclusive(WATCH_PROGRESS_MS_MIN, WATCH_PROGRESS_MS_MAX),
                );
                let slow = state.rng.below(3) == 0;
                let slow_at =
                    Duration::from_millis(state.rng.range_inclusive(1, WATCH_SLOW_MS_MAX));
                self.queue
                    .schedule(now + progress_at, Event::WatcherProgress { watcher, watch });
                if slow {
                    self.queue.schedule(
                        now + slow_at,
                        Event::WatchBackpressure {
                            watcher,
                            watch,
                            slow: true,
                        },
                    );
                }
            }
            Ok(_) | Err(_) => {
                let reason = match &result {
                    Err(error) => error.code().to_string(),
                    Ok(_) => "unexpected response".to_string(),
                };
                self.end_watch(now, watcher, &reason, 0);
            }
        }
    }

    /// Routes a member's watch response to the watcher whose stream it belongs to.
    pub(crate) fn route_notify(&mut self, now: Instant, node: usize, response: WatchResponse) {
        let Some(watcher) = self
            .watchers
            .iter()
            .position(|state| state.open == Some((node, Some(response.watch_id))))
        else {
            if self.locks.is_some() {
                let _not_a_lock_stream = self.lock_route_notify(now, node, response);
            }
            return;
        };
        let latency = client_latency(&mut self.watchers[watcher].rng);
        let state = &mut self.watchers[watcher];
        // One stream is one ordered connection: a later response never arrives earlier.
        let arrival = (now + latency).max(state.last_arrival);
        state.last_arrival = arrival;
        let record = state
            .records
            .last_mut()
            .expect("an open stream has a record");
        let stream_floor = Revision(record.start_revision).max(state.stream_revision);
        let out_of_order = response
            .events
            .iter()
            .map(|event| event.kv.mod_revision)
            .find(|revision| *revision < stream_floor);
        let progress = response.events.is_empty() && !response.created && !response.canceled;
        if progress {
            record.push_progress(arrival, response.header.revision.0);
        }
        record.push_events(arrival, &response.events);
        if let Some(last) = response.events.last() {
            state.last_revision = state.last_revision.max(last.kv.mod_revision);
            state.stream_revision = state.stream_revision.max(last.kv.mod_revision);
        }
        if let Some(revision) = out_of_order {
            let message = format!(
                "watch {} on n{} delivered revision {revision} after revision {stream_floor}",
                record.watch,
                node + 1
            );
            self.invariants
                .record("watch_revisions_ordered", now, message);
        }
        if response.canceled {
            let reason = if response.cancel_reason.is_empty() {
                "canceled".to_string()
            } else {
                response.cancel_reason.clone()
            };
            self.end_watch(arrival, watcher, &reason, response.compact_revision.0);
        }
    }

    /// The open stream of `watcher`, if it is still the one recorded as `watch`: its member and
    /// watch id.
    fn open_stream(&self, watcher: usize, watch: u64) -> Option<(usize, WatchId)> {
        let state = &self.watchers[watcher];
        let current = state
            .records
            .last()
            .is_some_and(|record| record.watch == watch);
        match state.open {
            Some((node, Some(watch_id))) if current => Some((node, watch_id)),
            _ => None,
        }
    }

    /// Asks the member of an open stream for progress notifications (on every watch it
    /// serves), then schedules the next ask.
    pub(crate) fn watcher_progress(&mut self, now: Instant, watcher: usize, watch: u64) {
        let Some((node, _)) = self.open_stream(watcher, watch) else {
            return;
        };
        let op_id = self.take_request_id();
        self.routes.insert(op_id, RequestRoute::WatcherControl);
        let rng = &mut self.watchers[watcher].rng;
        let arrival = now + client_latency(rng);
        let next = Duration::from_millis(
            rng.range_inclusive(WATCH_PROGRESS_MS_MIN, WATCH_PROGRESS_MS_MAX),
        );
        self.queue.schedule(
            arrival,
            Event::RequestArrives {
                op_id,
                node,
                request: Request::WatchProgress,
            },
        );
        self.queue
            .schedule(now + next, Event::WatcherProgress { watcher, watch });
    }

    /// The watcher stops (`slow`) or resumes reading an open stream: the member buffers, and
    /// past its buffer moves the watch to catch-up from history. A stop is followed by a resume.
    pub(crate) fn watch_backpressure(
        &mut self,
        now: Instant,
        watcher: usize,
        watch: u64,
        slow: bool,
    ) {
        let Some((node, watch_id)) = self.open_stream(watcher, watch) else {
            return;
        };
        let arrival = now + client_latency(&mut self.watchers[watcher].rng);
        self.queue.schedule(
            arrival,
            Event::BackpressureArrives {
                node,
                watch_id,
                slow,
            },
        );
        if slow {
            let resume_at = Duration::from_millis(
                self.watchers[watcher]
                    .rng
                    .range_inclusive(1, WATCH_SLOW_MS_MAX),
            );
            self.queue.schedule(
                now + resume_at,
                Event::WatchBackpressure {
                    watcher,
                    watch,
                    slow: false,
                },
            );
        }
    }

    fn end_watch(&mut self, now: Instant, watcher: usize, reason: &str, compact_revision: i64) {
        let state = &mut self.watchers[watcher];
        state.compact_revision = compact_revision;
        if let Some(record) = state.records.last_mut() {
            record.cancel(now, reason, compact_revision);
        }
        state.open = None;
        self.queue.schedule(
            now + Duration::from_millis(WATCH_RETRY_MS),
            Event::WatcherStart { watcher },
        );
    }

    /// Ends the streams served by member `node` (it crashed).
    pub(crate) fn cancel_watches_on(&mut self, now: Instant, node: usize, reason: &str) {
        if self.locks.is_some() {
            self.lock_cancel_watches_on(now, node, reason);
        }
        for watcher in 0..self.watchers.len() {
            if self.watchers[watcher]
                .open
                .is_some_and(|(served_by, _)| served_by == node)
            {
                self.end_watch(now, watcher, reason, 0);
            }
        }
    }

    /// The recorded watch streams as the checkers read them, in watcher order.
    pub(crate) fn check_watches(&self) -> Vec<checkers::history::WatchRecord> {
        let locks = self.locks.iter().flat_map(|locks| locks.records());
        self.watchers
            .iter()
            .flat_map(|state| state.records.iter())
            .chain(locks)
            .map(crate::checking::watch)
            .collect()
    }

    /// The recorded watch lines, in watcher order.
    pub(crate) fn watch_lines(&self) -> Vec<String> {
        let locks = self.locks.iter().flat_map(|locks| locks.records());
        self.watchers
            .iter()
            .flat_map(WatcherState::lines)
            .chain(locks.map(WatchRecord::line))
            .collect()
    }
}

/// The history's `op.type` of a request, or `None` when the format has no type for it.
fn recorded_kind(request: &Request) -> Option<&'static str> {
    Some(match request {
        Request::Range(_) => "range",
        Request::Put(_) => "put",
        Request::DeleteRange(_) => "delete",
        Request::Txn(_) => "txn",
        Request::LeaseGrant(_) => "lease_grant",
        Request::LeaseRevoke { .. } => "lease_revoke",
        Request::LeaseKeepAlive { .. } => "lease_keepalive",
        Request::Compact(_) => "compact",
        Request::Auth(auth) => return host::history_auth::auth_op(auth).map(|op| op.type_name()),
        _ => return None,
    })
}

/// Whether `response` is the kind of answer `request` calls for.
fn response_fits(request: &Request, response: &Response) -> bool {
    matches!(
        (request, response),
        (Request::Range(_), Response::Range(_))
            | (Request::Put(_), Response::Put(_))
            | (Request::DeleteRange(_), Response::DeleteRange(_))
            | (Request::Txn(_), Response::Txn(_))
            | (Request::Compact(_), Response::Compact { .. })
            | (Request::LeaseGrant(_), Response::LeaseGrant { .. })
            | (Request::LeaseRevoke { .. }, Response::LeaseRevoke { .. })
            | (
                Request::LeaseKeepAlive { .. },
                Response::LeaseKeepAlive { .. }
            )
            | (
                Request::LeaseTimeToLive(_),
                Response::LeaseTimeToLive { .. }
            )
            | (Request::LeaseLeases, Response::LeaseLeases { .. })
            | (Request::Auth(_), Response::Auth { .. })
            | (Request::WatchCreate(_), Response::WatchCreated { .. })
            | (Request::WatchCancel { .. }, Response::WatchCanceled { .. })
            | (
                Request::WatchProgress,
                Response::WatchProgressRequested { .. }
            )
    )
}

/// A one-line summary of an operation and its outcome for the trace hash, fed to `line`, e.g.
/// `op 7 c2 put call=100 return=250 ok revision=5`.
fn compact_line(
    line: &mut LineHash<'_>,
    op_id: u64,
    client: usize,
    call: Instant,
    kind: &str,
    outcome: Option<(Instant, &Result<Response, RequestError>)>,
) {
    line.text("op ")
        .unsigned(op_id)
        .text(" c")
        .unsigned(client as u64)
        .text(" ")
        .text(kind)
        .text(" call=")
        .unsigned(call.0);
    let (returned, response) = match outcome {
        None => {
            line.text(" unknown");
            return;
        }
        Some((returned, Err(error))) => {
            line.text(" return=")
                .unsigned(returned.0)
                .text(" error=")
                .text(error.code());
            return;
        }
        Some((returned, Ok(response))) => (returned, response),
    };
    line.text(" return=").unsigned(returned.0).text(" ok");
    match response {
        Response::Range(range) => {
            line.text(" revision=")
                .signed(range.header.revision.0)
                .text(" count=")
                .signed(range.count);
        }
        Response::Put(put) => {
            line.text(" revision=").signed(put.header.revision.0);
        }
        Response::DeleteRange(delete) => {
            line.text(" revision=")
                .signed(delete.header.revision.0)
                .text(" deleted=")
                .signed(delete.deleted);
        }
        Response::Txn(txn) => {
            line.text(" revision=")
                .signed(txn.header.revision.0)
                .text(if txn.succeeded {
                    " succeeded=true"
                } else {
                    " succeeded=false"
                });
        }
        Response::LeaseGrant { id, .. } => {
            line.text(" lease=").signed(id.0);
        }
        _ => {}
    }
}

fn request_kind(request: &Request) -> &'static str {
    match request {
        Request::Range(_) => "range",
        Request::Put(_) => "put",
        Request::DeleteRange(_) => "delete",
        Request::Txn(_) => "txn",
        _ => "request",
    }
}

#[cfg(test)]
mod tests {
    use super::ClientState;
    use crate::rng::{SimRng, Stream};
    use crate::workload::{Generator, WorkloadConfig};

    /// Goal: a client that moves on from a failing endpoint never re-pins the same one and, over
    /// many moves, reaches every other member (so no member is a dead end it cannot leave, and
    /// none is favoured the way a leader oracle would favour it). Method: move a five-endpoint
    /// client many times, checking each move and counting where it lands.
    #[test]
    fn moving_on_picks_another_endpoint_and_reaches_them_all() {
        let workload = WorkloadConfig::etcd_like();
        let generator = Generator::new(workload, 0, SimRng::for_stream(4, Stream::Client(0)));
        let routing = SimRng::for_stream(4, Stream::ClientRouting(0));
        let mut client = ClientState::new(generator, routing, 5);
        let mut landed = [0_u32; 5];
        for _ in 0..1_000 {
            let before = client.endpoint;
            client.move_endpoint(5);
            assert_ne!(client.endpoint, before, "moved to the endpoint that failed");
            landed[client.endpoint] += 1;
        }
        assert!(landed.iter().all(|count| *count > 100), "{landed:?}");
        let mut alone = ClientState::new(
            Generator::new(
                WorkloadConfig::etcd_like(),
                1,
                SimRng::for_stream(4, Stream::Client(1)),
            ),
            SimRng::for_stream(4, Stream::ClientRouting(1)),
            1,
        );
        alone.move_endpoint(1);
        assert_eq!(
            alone.endpoint, 0,
            "a one-member cluster has nowhere else to go"
        );
    }
}
