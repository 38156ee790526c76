//! Lease keep-alive coalescing. Every lease has one keeper with at most one upstream
//! keep-alive stream, shared by every client that keeps that lease alive through the proxy.
//! Client keep-alives for a lease wait in the keeper's list; one of them sends a single
//! upstream keep-alive for all that are waiting when it is sent, and its answer goes to each.
//! A keep-alive that arrives while one is in flight waits for the next upstream round, so no
//! client is answered with a renewal made before it asked.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::proto::etcdserverpb as pb;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status, Streaming};

use crate::forward::{outgoing, ResponseStream};
use crate::upstream::Upstream;
use crate::Stats;

/// A keeper unused this long is dropped (closing its upstream stream).
const KEEPER_IDLE: Duration = Duration::from_secs(60);
/// Keep-alive answers buffered per client stream.
const CLIENT_BUFFER_COUNT: usize = 64;

type Answer = Result<pb::LeaseKeepAliveResponse, Status>;

/// One upstream keep-alive stream.
struct UpstreamStream {
    requests: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    responses: Streaming<pb::LeaseKeepAliveResponse>,
}

/// One lease's keep-alives.
struct Keeper {
    id: i64,
    waiters: Mutex<Vec<oneshot::Sender<Answer>>>,
    stream: tokio::sync::Mutex<Option<UpstreamStream>>,
    last_used: Mutex<Instant>,
}

/// Every lease's keeper.
pub(crate) struct LeaseHub {
    upstream: Arc<Upstream>,
    stats: Arc<Stats>,
    keepers: Mutex<BTreeMap<i64, Arc<Keeper>>>,
}

impl std::fmt::Debug for LeaseHub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LeaseHub")
    }
}

impl LeaseHub {
    /// A hub with no keepers.
    pub(crate) fn new(upstream: Arc<Upstream>, stats: Arc<Stats>) -> LeaseHub {
        LeaseHub {
            upstream,
            stats,
            keepers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Lease `id`'s keeper (made if new); idle keepers of other leases are dropped.
    fn keeper(&self, id: i64) -> Arc<Keeper> {
        let now = Instant::now();
        let mut keepers = self.keepers.lock().expect("never poisoned");
        keepers.retain(|_, keeper| {
            Arc::strong_count(keeper) > 1
                || now.duration_since(*keeper.last_used.lock().expect("never poisoned"))
                    < KEEPER_IDLE
        });
        let keeper = keepers
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Keeper {
                    id,
                    waiters: Mutex::new(Vec::new()),
                    stream: tokio::sync::Mutex::new(None),
                    last_used: Mutex::new(now),
                })
            })
            .clone();
        *keeper.last_used.lock().expect("never poisoned") = now;
        keeper
    }

    /// Keeps lease `id` alive once for a client; coalesced with the other clients of the lease.
    async fn keep_alive(self: &Arc<Self>, metadata: &MetadataMap, id: i64) -> Answer {
        self.stats
            .keep_alive_client_count
            .fetch_add(1, Ordering::Relaxed);
        let keeper = self.keeper(id);
        let (sender, receiver) = oneshot::channel();
        let lead = {
            let mut waiters = keeper.waiters.lock().expect("never poisoned");
            waiters.push(sender);
            waiters.len() == 1
        };
        if lead {
            let hub = self.clone();
            let metadata = metadata.clone();
            tokio::spawn(async move { hub.round(&keeper, &metadata).await });
        }
        receiver
            .await
            .unwrap_or_else(|_| Err(Status::internal("grpc-proxy: the keep-alive was dropped")))
    }

    /// One upstream round: waits for the stream, takes every waiting client, renews once, and
    /// answers them all.
    async fn round(&self, keeper: &Keeper, metadata: &MetadataMap) {
        let mut stream = keeper.stream.lock().await;
        let waiters = std::mem::take(&mut *keeper.waiters.lock().expect("never poisoned"));
        if waiters.is_empty() {
            return;
        }
        let answer = self.renew(&mut stream, keeper.id, metadata).await;
        for waiter in waiters {
            // A client that went away needs no answer.
            let _ = waiter.send(answer.clone());
        }
    }

    /// Sends one keep-alive for `id` upstream and reads its answer, reopening the stream on
    /// another endpoint when the current one fails.
    async fn renew(
        &self,
        stream: &mut Option<UpstreamStream>,
        id: i64,
        metadata: &MetadataMap,
    ) -> Answer {
        self.stats
            .keep_alive_upstream_count
            .fetch_add(1, Ordering::Relaxed);
        if let Some(open) = stream.as_mut() {
            match exchange(open, id).await {
                Ok(answer) => return Ok(answer),
                Err(status) if status.code() != Code::Unavailable => {
                    *stream = None;
                    return Err(status);
                }
                Err(_) => *stream = None,
            }
        }
        let mut last = Status::unavailable("no endpoint tried");
        for (index, url, channel) in self.upstream.rotation() {
            let (requests, receiver) = mpsc::channel(1);
            let request = outgoing(metadata, &()).map(|()| ReceiverStream::new(receiver));
            let mut client = pb::lease_client::LeaseClient::new(channel);
            let opened = client.lease_keep_alive(request).await;
            let result = match opened {
                Ok(responses) => {
                    let mut open = UpstreamStream {
                        requests,
                        responses: responses.into_inner(),
                    };
                    exchange(&mut open, id).await.map(|answer| (open, answer))
                }
                Err(status) => Err(status),
            };
            match result {
                Ok((open, answer)) => {
                    self.upstream.answered(index);
                    *stream = Some(open);
                    return Ok(answer);
                }
                Err(status) if status.code() == Code::Unavailable => {
                    tracing::debug!(%url, error = %status.message(), "grpc-proxy: keep-alive failed");
                    last = status;
                }
                Err(status) => return Err(status),
            }
        }
        Err(self.upstream.all_down(&last))
    }
}

/// One request and its answer on an open upstream stream.
async fn exchange(stream: &mut UpstreamStream, id: i64) -> Answer {
    stream
        .requests
        .send(pb::LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| Status::unavailable("the keep-alive stream closed"))?;
    match stream.responses.message().await {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(Status::unavailable("the keep-alive stream ended")),
        Err(status) => Err(status),
    }
}

/// Serves one client's LeaseKeepAlive stream: each request is answered through the hub.
pub(crate) fn serve_keep_alive(
    hub: Arc<LeaseHub>,
    metadata: MetadataMap,
    mut requests: Streaming<pb::LeaseKeepAliveRequest>,
) -> ResponseStream<pb::LeaseKeepAliveResponse> {
    let (answers, receiver) = mpsc::channel(CLIENT_BUFFER_COUNT);
    tokio::spawn(async move {
        while let Some(Ok(request)) = requests.next().await {
            let (hub, answers, metadata) = (hub.clone(), answers.clone(), metadata.clone());
            tokio::spawn(async move {
                let answer = hub.keep_alive(&metadata, request.id).await;
                // The client may have gone; then nobody needs the answer.
                let _ = answers.send(answer).await;
            });
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}
