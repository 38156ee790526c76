//! Watch coalescing. Client watchers on the same key or range (and the same auth token) share a
//! *broadcast*: one watcher on the cluster, whose events are fanned out to each.
//!
//! A broadcast knows `next_revision`, the lowest revision it has not yet delivered (every event
//! of its range below it has gone to its subscribers). A new client watcher starting at `S`
//! joins a broadcast only if `next_revision <= S`: it then misses nothing, and events below `S`
//! are filtered out for it. A watcher "from now" (`S = 0`) joins any broadcast already created
//! upstream, from its `next_revision`. Otherwise a new broadcast starts at `S`. Each subscriber
//! keeps its own `next_revision`, so it never sees an event twice or out of order, and prev_kv
//! and the NOPUT/NODELETE filters are applied per subscriber (upstream always asks for prev_kv
//! and no filters).
//!
//! When the upstream watch breaks (a member died), the broadcast re-creates it on another
//! endpoint from its `next_revision`, so clients see no gap and no duplicate. A compaction that
//! cancels the upstream watch cancels every subscriber with the compact revision. A broadcast
//! that cannot reach any endpoint before its first upstream `created` fails its clients'
//! streams with `Unavailable`; once established it waits for the cluster to come back.
//! A broadcast with no subscribers left closes its upstream watch.
//!
//! **Invariant:** a subscriber's events and its `next_revision` change together, under the
//! broadcast's lock, and the broadcast's delivery and the joins are serialized by that lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use server::proto::etcdserverpb as pb;
use server::proto::mvccpb;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status, Streaming};

use crate::forward::{outgoing, ResponseStream};
use crate::upstream::{Retry, Upstream};
use crate::Stats;

/// How long an established broadcast waits between attempts to reach the cluster again.
const RECONNECT_DELAY: Duration = Duration::from_millis(300);

type Outbox = mpsc::UnboundedSender<Result<pb::WatchResponse, Status>>;

/// Broadcasts are grouped by (key, range_end, auth token): only these may share one.
type GroupKey = (Vec<u8>, Vec<u8>, Vec<u8>);

/// One client watcher.
struct Subscriber {
    stream_id: u64,
    watch_id: i64,
    /// The lowest revision not yet delivered to it; `None` until a from-now watch is created.
    next_revision: Option<i64>,
    /// Fired once the client has its `created` response (or the watch failed).
    created: Option<oneshot::Sender<()>>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    outbox: Outbox,
}

impl Subscriber {
    fn send(&self, response: pb::WatchResponse) {
        // A client that went away is unsubscribed by its stream task.
        let _ = self.outbox.send(Ok(response));
    }

    fn send_created(&mut self, header: Option<pb::ResponseHeader>) {
        self.send(pb::WatchResponse {
            header,
            watch_id: self.watch_id,
            created: true,
            ..Default::default()
        });
        if let Some(created) = self.created.take() {
            let _ = created.send(());
        }
    }

    fn wants(&self, event: &mvccpb::Event) -> bool {
        let revision = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        let is_put = event.r#type == mvccpb::event::EventType::Put as i32;
        revision >= self.next_revision.unwrap_or(0)
            && !(is_put && self.no_put)
            && (is_put || !self.no_delete)
    }
}

struct BroadcastState {
    next_revision: Option<i64>,
    /// The last header the upstream watch sent; `None` before its first `created`.
    header: Option<pb::ResponseHeader>,
    subscribers: Vec<Subscriber>,
    closed: bool,
}

/// One upstream watcher and its subscribers.
struct Broadcast {
    group: GroupKey,
    start_revision: i64,
    state: Mutex<BroadcastState>,
    /// Wakes the upstream task when the last subscriber leaves.
    emptied: Notify,
}

/// Every broadcast, by group.
pub(crate) struct WatchHub {
    upstream: Arc<Upstream>,
    stats: Arc<Stats>,
    groups: Mutex<BTreeMap<GroupKey, Vec<Arc<Broadcast>>>>,
    next_stream_id: AtomicU64,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("WatchHub")
    }
}

fn event_revision(event: &mvccpb::Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

impl Broadcast {
    fn lock(&self) -> std::sync::MutexGuard<'_, BroadcastState> {
        self.state
            .lock()
            .expect("a broadcast's state is never poisoned")
    }

    /// Hands one upstream response to the subscribers; returns false when the broadcast ended.
    fn deliver(&self, response: pb::WatchResponse) -> bool {
        let mut state = self.lock();
        if response.canceled {
            for subscriber in &mut state.subscribers {
                subscriber.send(pb::WatchResponse {
                    header: response.header,
                    watch_id: subscriber.watch_id,
                    canceled: true,
                    compact_revision: response.compact_revision,
                    cancel_reason: response.cancel_reason.clone(),
                    ..Default::default()
                });
                if let Some(created) = subscriber.created.take() {
                    let _ = created.send(());
                }
            }
            state.subscribers.clear();
            state.closed = true;
            return false;
        }
        let header_revision = response.header.as_ref().map_or(0, |header| header.revision);
        state.header = response.header.or(state.header);
        if response.created {
            if state.next_revision.is_none() {
                state.next_revision = Some(header_revision + 1);
            }
            let (next, header) = (state.next_revision, state.header);
            for subscriber in state.subscribers.iter_mut().filter(|s| s.created.is_some()) {
                subscriber.next_revision = subscriber.next_revision.or(next);
                subscriber.send_created(header);
            }
            return true;
        }
        // Events (whole revisions: fragmentation is never asked for) or a progress notification:
        // either way every event of the range below `reached` has now been delivered.
        let reached = match response.events.last() {
            Some(last) => event_revision(last) + 1,
            None => header_revision + 1,
        };
        for subscriber in state.subscribers.iter_mut().filter(|s| s.created.is_none()) {
            let events: Vec<mvccpb::Event> = response
                .events
                .iter()
                .filter(|event| subscriber.wants(event))
                .map(|event| {
                    let mut event = event.clone();
                    if !subscriber.prev_kv {
                        event.prev_kv = None;
                    }
                    event
                })
                .collect();
            let progress = response.events.is_empty() && subscriber.progress_notify;
            if !events.is_empty() || progress {
                subscriber.send(pb::WatchResponse {
                    header: response.header,
                    watch_id: subscriber.watch_id,
                    events,
                    ..Default::default()
                });
            }
            subscriber.next_revision = subscriber.next_revision.max(Some(reached));
        }
        state.next_revision = state.next_revision.max(Some(reached));
        true
    }

    /// Fails every subscriber's stream with `status` and ends the broadcast.
    fn fail(&self, status: &Status) {
        let mut state = self.lock();
        for subscriber in &mut state.subscribers {
            let _ = subscriber.outbox.send(Err(status.clone()));
            if let Some(created) = subscriber.created.take() {
                let _ = created.send(());
            }
        }
        state.subscribers.clear();
        state.closed = true;
    }
}

impl WatchHub {
    /// A hub with no broadcasts.
    pub(crate) fn new(upstream: Arc<Upstream>, stats: Arc<Stats>) -> WatchHub {
        WatchHub {
            upstream,
            stats,
            groups: Mutex::new(BTreeMap::new()),
            next_stream_id: AtomicU64::new(1),
        }
    }

    /// Adds a client watcher to a compatible broadcast or a new one (module doc). The receiver
    /// fires once the client has its `created` response.
    fn subscribe(
        self: &Arc<Self>,
        create: &pb::WatchCreateRequest,
        subscriber: Subscriber,
        metadata: &MetadataMap,
    ) -> Arc<Broadcast> {
        let token = metadata
            .get("token")
            .map(|value| value.as_bytes().to_vec())
            .unwrap_or_default();
        let group: GroupKey = (create.key.clone(), create.range_end.clone(), token);
        let start = create.start_revision.max(0);
        let mut subscriber = subscriber;
        self.stats
            .client_watch_count
            .fetch_add(1, Ordering::Relaxed);
        let mut groups = self.groups.lock().expect("never poisoned");
        let broadcasts = groups.entry(group.clone()).or_default();
        for broadcast in broadcasts.iter() {
            let mut state = broadcast.lock();
            let joinable = !state.closed
                && if start == 0 {
                    state.header.is_some() || broadcast.start_revision == 0
                } else {
                    state.next_revision.is_some_and(|next| next <= start)
                };
            if !joinable {
                continue;
            }
            subscriber.next_revision = if start == 0 {
                state.next_revision
            } else {
                Some(start)
            };
            if state.header.is_some() {
                let header = state.header;
                subscriber.send_created(header);
            }
            state.subscribers.push(subscriber);
            return broadcast.clone();
        }
        subscriber.next_revision = (start > 0).then_some(start);
        let broadcast = Arc::new(Broadcast {
            group,
            start_revision: start,
            state: Mutex::new(BroadcastState {
                next_revision: subscriber.next_revision,
                header: None,
                subscribers: vec![subscriber],
                closed: false,
            }),
            emptied: Notify::new(),
        });
        broadcasts.push(broadcast.clone());
        drop(groups);
        self.stats
            .upstream_watch_opened_count
            .fetch_add(1, Ordering::Relaxed);
        self.stats
            .upstream_watch_active_count
            .fetch_add(1, Ordering::Relaxed);
        let hub = self.clone();
        let task_broadcast = broadcast.clone();
        let metadata = metadata.clone();
        tokio::spawn(async move { hub.run(task_broadcast, metadata).await });
        broadcast
    }

    /// Removes a client watcher; the broadcast's task closes it when none is left.
    fn unsubscribe(&self, broadcast: &Broadcast, stream_id: u64, watch_id: i64) {
        let mut state = broadcast.lock();
        state
            .subscribers
            .retain(|s| !(s.stream_id == stream_id && s.watch_id == watch_id));
        if state.subscribers.is_empty() {
            broadcast.emptied.notify_one();
        }
    }

    /// Takes `broadcast` out of the hub (its state is already closed).
    fn remove(&self, broadcast: &Arc<Broadcast>) {
        let mut groups = self.groups.lock().expect("never poisoned");
        if let Some(broadcasts) = groups.get_mut(&broadcast.group) {
            broadcasts.retain(|other| !Arc::ptr_eq(other, broadcast));
            if broadcasts.is_empty() {
                groups.remove(&broadcast.group);
            }
        }
        self.stats
            .upstream_watch_active_count
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Closes `broadcast` if nobody subscribes; returns whether it did.
    fn close_if_empty(&self, broadcast: &Arc<Broadcast>) -> bool {
        {
            let _groups = self.groups.lock().expect("never poisoned");
            let mut state = broadcast.lock();
            if !state.subscribers.is_empty() {
                return false;
            }
            state.closed = true;
        }
        true
    }

    /// The broadcast's upstream task: (re)creates the upstream watch and delivers its responses.
    async fn run(self: Arc<Self>, broadcast: Arc<Broadcast>, metadata: MetadataMap) {
        self.serve_upstream(&broadcast, &metadata).await;
        self.remove(&broadcast);
    }

    async fn serve_upstream(&self, broadcast: &Arc<Broadcast>, metadata: &MetadataMap) {
        loop {
            if self.close_if_empty(broadcast) {
                return;
            }
            let (start, established) = {
                let state = broadcast.lock();
                (state.next_revision.unwrap_or(0), state.header.is_some())
            };
            let create = pb::WatchCreateRequest {
                key: broadcast.group.0.clone(),
                range_end: broadcast.group.1.clone(),
                start_revision: start,
                progress_notify: true,
                prev_kv: true,
                ..Default::default()
            };
            let opened = self.open(&create, metadata).await;
            let (_requests, mut responses) = match opened {
                Ok(stream) => stream,
                Err(status) if !established || !retriable(&status) => {
                    broadcast.fail(&status);
                    return;
                }
                Err(_) => {
                    tokio::select! {
                        () = tokio::time::sleep(RECONNECT_DELAY) => {}
                        () = broadcast.emptied.notified() => {}
                    }
                    continue;
                }
            };
            loop {
                let message = tokio::select! {
                    message = responses.message() => message,
                    () = broadcast.emptied.notified() => {
                        if self.close_if_empty(broadcast) {
                            return;
                        }
                        continue;
                    }
                };
                match message {
                    Ok(Some(response)) => {
                        if !broadcast.deliver(response) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(status) if retriable(&status) => break,
                    Err(status) => {
                        broadcast.fail(&status);
                        return;
                    }
                }
            }
        }
    }

    /// Opens an upstream watch stream with `create` on the first endpoint that answers.
    async fn open(
        &self,
        create: &pb::WatchCreateRequest,
        metadata: &MetadataMap,
    ) -> Result<(mpsc::Sender<pb::WatchRequest>, Streaming<pb::WatchResponse>), Status> {
        let first = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                create.clone(),
            )),
        };
        self.upstream
            .call(Retry::Unavailable, |channel| {
                let (requests, receiver) = mpsc::channel(1);
                let request = outgoing(metadata, &()).map(|()| ReceiverStream::new(receiver));
                let first = first.clone();
                async move {
                    requests
                        .send(first)
                        .await
                        .map_err(|_| Status::internal("the request stream closed"))?;
                    let mut client = pb::watch_client::WatchClient::new(channel);
                    let responses = client.watch(request).await?.into_inner();
                    Ok((requests, responses))
                }
            })
            .await
    }

    /// The revision up to which every watcher of stream `stream_id` has had every event.
    fn progress_revision(
        &self,
        watches: &BTreeMap<i64, Arc<Broadcast>>,
        stream_id: u64,
    ) -> Option<(i64, Option<pb::ResponseHeader>)> {
        let mut lowest: Option<(i64, Option<pb::ResponseHeader>)> = None;
        for (watch_id, broadcast) in watches {
            let state = broadcast.lock();
            let found = state
                .subscribers
                .iter()
                .find(|s| s.stream_id == stream_id && s.watch_id == *watch_id);
            if let Some(next) = found
                .filter(|s| s.created.is_none())
                .and_then(|s| s.next_revision)
            {
                if lowest
                    .as_ref()
                    .is_none_or(|(revision, _)| next - 1 < *revision)
                {
                    lowest = Some((next - 1, state.header));
                }
            }
        }
        lowest
    }
}

/// Whether an upstream failure is the connection's (worth trying again elsewhere).
fn retriable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

/// Serves one client's Watch stream.
pub(crate) fn serve_watch(
    hub: Arc<WatchHub>,
    metadata: MetadataMap,
    requests: Streaming<pb::WatchRequest>,
) -> ResponseStream<pb::WatchResponse> {
    let (outbox, receiver) = mpsc::unbounded_channel();
    let stream_id = hub.next_stream_id.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(client_stream(hub, metadata, requests, outbox, stream_id));
    Box::pin(UnboundedReceiverStream::new(receiver))
}

async fn client_stream(
    hub: Arc<WatchHub>,
    metadata: MetadataMap,
    mut requests: Streaming<pb::WatchRequest>,
    outbox: Outbox,
    stream_id: u64,
) {
    use pb::watch_request::RequestUnion;
    let mut watches: BTreeMap<i64, Arc<Broadcast>> = BTreeMap::new();
    let mut next_watch_id: i64 = 0;
    loop {
        let request = tokio::select! {
            request = requests.next() => request,
            () = outbox.closed() => None,
        };
        let Some(Ok(request)) = request else { break };
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                let watch_id = if create.watch_id != 0 {
                    create.watch_id
                } else {
                    while watches.contains_key(&next_watch_id) {
                        next_watch_id += 1;
                    }
                    next_watch_id
                };
                if watches.contains_key(&watch_id) {
                    let _ = outbox.send(Ok(pb::WatchResponse {
                        watch_id,
                        created: true,
                        canceled: true,
                        cancel_reason: "mvcc: duplicate watch ID".into(),
                        ..Default::default()
                    }));
                    continue;
                }
                let (created, created_receiver) = oneshot::channel();
                let filters = |wanted: pb::watch_create_request::FilterType| {
                    create.filters.contains(&(wanted as i32))
                };
                let subscriber = Subscriber {
                    stream_id,
                    watch_id,
                    next_revision: None,
                    created: Some(created),
                    prev_kv: create.prev_kv,
                    no_put: filters(pb::watch_create_request::FilterType::Noput),
                    no_delete: filters(pb::watch_create_request::FilterType::Nodelete),
                    progress_notify: create.progress_notify,
                    outbox: outbox.clone(),
                };
                let broadcast = hub.subscribe(&create, subscriber, &metadata);
                watches.insert(watch_id, broadcast);
                // Creates are answered in order, as a member answers them.
                let _ = created_receiver.await;
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                if let Some(broadcast) = watches.remove(&cancel.watch_id) {
                    hub.unsubscribe(&broadcast, stream_id, cancel.watch_id);
                    let header = broadcast.lock().header;
                    let _ = outbox.send(Ok(pb::WatchResponse {
                        header,
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    }));
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                if let Some((revision, header)) = hub.progress_revision(&watches, stream_id) {
                    let mut header = header.unwrap_or_default();
                    header.revision = revision;
                    let _ = outbox.send(Ok(pb::WatchResponse {
                        header: Some(header),
                        watch_id: -1,
                        ..Default::default()
                    }));
                }
            }
            None => {}
        }
    }
    for (watch_id, broadcast) in watches {
        hub.unsubscribe(&broadcast, stream_id, watch_id);
    }
}

#[tonic::async_trait]
impl pb::watch_server::Watch for crate::forward::Proxy {
    type WatchStream = ResponseStream<pb::WatchResponse>;

    async fn watch(
        &self,
        request: tonic::Request<Streaming<pb::WatchRequest>>,
    ) -> Result<tonic::Response<Self::WatchStream>, Status> {
        let metadata = request.metadata().clone();
        Ok(tonic::Response::new(serve_watch(
            self.watches.clone(),
            metadata,
            request.into_inner(),
        )))
    }
}
