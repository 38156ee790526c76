//! The etcd v3 gRPC services: each handler converts its request, sends it to the member task and
//! converts the answer back. Streams (Watch, LeaseKeepAlive) get a task that reads the client's
//! requests while the member task writes responses.

use std::pin::Pin;
use std::sync::Arc;

use engine::kv::{LeaseGrantRequest, LeaseTimeToLiveRequest, Request, Response};
use engine::types::{LeaseId, WatchId};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Status, Streaming};

use crate::auth::Caller;
use crate::convert;
use crate::proto::etcdserverpb as pb;
use crate::task::{Answer, Command};

/// Watch responses buffered per stream between the member task and the client.
const WATCH_RESPONSES_COUNT_MAX: usize = 64;

/// What Cluster.MemberList and Maintenance.Status say about the cluster and this member.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    /// This member's id.
    pub id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// Every member, this one included, as the applied membership says.
    pub membership: crate::membership::SharedView,
    /// `--initial-cluster-token`: ids of members added at run time derive from it.
    pub token: String,
    /// This member's advertised client URL.
    pub own_client_url: String,
    /// Peers' client URLs, learned from their hellos.
    pub learned_client_urls: crate::peer::ClientUrls,
    /// detcd's version.
    pub version: String,
    /// How passwords are hashed.
    pub auth: crate::auth::AuthSettings,
    /// The hash Authenticate checks an unknown user's password against (`crate::auth`).
    pub auth_dummy_hash: std::sync::OnceLock<Vec<u8>>,
    /// How this member dials the leader's client URL when it passes a lease request on.
    #[cfg(not(madsim))]
    pub(crate) leader_dialer: crate::tls::LeaderDialer,
}

impl MemberInfo {
    /// The client URL of member `id`, if known: its own, the one its attributes in the log
    /// name, or the one its hello said.
    pub fn client_url(&self, id: u64) -> Option<String> {
        if id == self.id {
            return Some(self.own_client_url.clone());
        }
        let published = self
            .membership
            .lock()
            .expect("the membership view is never poisoned")
            .attributes(engine::types::NodeId(id))
            .client_urls
            .first()
            .cloned();
        if published.is_some() {
            return published;
        }
        self.learned_client_urls
            .lock()
            .expect("the URL map is never poisoned")
            .get(&engine::types::NodeId(id))
            .cloned()
    }
}

/// The handle every service holds.
#[derive(Clone, Debug)]
pub struct Services {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) info: Arc<MemberInfo>,
}

pub(crate) type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Services {
    /// Services that send to the member task through `commands`.
    pub fn new(commands: mpsc::Sender<Command>, info: MemberInfo) -> Services {
        Services {
            commands,
            info: Arc::new(info),
        }
    }

    /// Sends a request as `caller` and waits for the engine's answer, errors as etcd's.
    pub(crate) async fn call(&self, caller: &Caller, request: Request) -> Result<Response, Status> {
        match self.ask(caller, request).await? {
            Ok(response) => Ok(response),
            Err(error) => Err(convert::status(&error)),
        }
    }

    /// Sends a request to the member task and waits for the engine's answer.
    pub(crate) async fn ask(&self, caller: &Caller, request: Request) -> Result<Answer, Status> {
        let (reply, answer) = oneshot::channel::<Answer>();
        let credentials = caller.credentials();
        self.commands
            .send(Command::Request {
                request,
                credentials,
                reply,
            })
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))
    }

    /// The leader's client URL when the engine said "not leader" and named one this member
    /// knows: lease keep-alives and TTL queries are leader-local, so a follower passes them on
    /// (as etcd's followers do).
    fn leader_url(&self, answer: &Answer) -> Option<String> {
        match answer {
            Err(engine::kv::RequestError::NotLeader {
                leader_hint: Some(leader),
            }) if leader.0 != self.info.id => self.info.client_url(leader.0),
            _ => None,
        }
    }

    /// A lease keep-alive round, passed on to the leader when this member is a follower.
    async fn keep_alive_once(
        &self,
        caller: &Caller,
        id: LeaseId,
    ) -> Result<pb::LeaseKeepAliveResponse, Status> {
        let answer = self.ask(caller, Request::LeaseKeepAlive { id }).await?;
        if let Some(url) = self.leader_url(&answer) {
            let mut client = self.leader_lease_client(url).await?;
            let request = pb::LeaseKeepAliveRequest { id: id.0 };
            let request = as_caller(caller, tokio_stream::once(request))?;
            let mut responses = client.lease_keep_alive(request).await?.into_inner();
            return match responses.next().await {
                Some(response) => response,
                None => Err(Status::unavailable("etcdserver: leader closed the stream")),
            };
        }
        match answer {
            Ok(Response::LeaseKeepAlive {
                header,
                id,
                ttl_seconds,
            }) => Ok(pb::LeaseKeepAliveResponse {
                header: convert::header(&header),
                id: id.0,
                ttl: ttl_seconds,
            }),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => Err(convert::status(&error)),
        }
    }
}

impl Services {
    /// A Lease client of the leader at `url` (its client URL), over TLS for an https URL.
    async fn leader_lease_client(
        &self,
        url: String,
    ) -> Result<pb::lease_client::LeaseClient<tonic::transport::Channel>, Status> {
        let unreachable =
            |error: String| Status::unavailable(format!("etcdserver: leader unreachable: {error}"));
        #[cfg(not(madsim))]
        {
            let channel = self.info.leader_dialer.channel(&url).map_err(unreachable)?;
            Ok(pb::lease_client::LeaseClient::new(channel))
        }
        #[cfg(madsim)]
        {
            pb::lease_client::LeaseClient::connect(url)
                .await
                .map_err(|error| unreachable(error.to_string()))
        }
    }
}

/// A request passed on to the leader, carrying the caller's token as etcd's followers do (a
/// certificate's user cannot be passed on: the leader sees this member's certificate).
fn as_caller<T>(caller: &Caller, message: T) -> Result<tonic::Request<T>, Status> {
    let mut request = tonic::Request::new(message);
    if let Some(engine::auth::Credentials::Token(token)) = caller.credentials() {
        let value = token
            .parse()
            .map_err(|_| Status::invalid_argument("etcdserver: invalid auth token"))?;
        request.metadata_mut().insert("token", value);
    }
    Ok(request)
}

fn unexpected(response: &Response) -> Status {
    Status::internal(format!("etcdserver: unexpected answer {response:?}"))
}

#[tonic::async_trait]
impl pb::kv_server::Kv for Services {
    async fn range(
        &self,
        request: tonic::Request<pb::RangeRequest>,
    ) -> Result<tonic::Response<pb::RangeResponse>, Status> {
        let caller = Caller::of(&request);
        let request = Request::Range(convert::range_request(request.into_inner()));
        match self.call(&caller, request).await? {
            Response::Range(range) => Ok(tonic::Response::new(convert::range_response(&range))),
            other => Err(unexpected(&other)),
        }
    }

    async fn put(
        &self,
        request: tonic::Request<pb::PutRequest>,
    ) -> Result<tonic::Response<pb::PutResponse>, Status> {
        let caller = Caller::of(&request);
        let request = Request::Put(convert::put_request(request.into_inner()));
        match self.call(&caller, request).await? {
            Response::Put(put) => Ok(tonic::Response::new(convert::put_response(&put))),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_range(
        &self,
        request: tonic::Request<pb::DeleteRangeRequest>,
    ) -> Result<tonic::Response<pb::DeleteRangeResponse>, Status> {
        let caller = Caller::of(&request);
        let request = Request::DeleteRange(convert::delete_request(request.into_inner()));
        match self.call(&caller, request).await? {
            Response::DeleteRange(delete) => {
                Ok(tonic::Response::new(convert::delete_response(&delete)))
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn txn(
        &self,
        request: tonic::Request<pb::TxnRequest>,
    ) -> Result<tonic::Response<pb::TxnResponse>, Status> {
        let caller = Caller::of(&request);
        let request = Request::Txn(convert::txn_request(request.into_inner())?);
        match self.call(&caller, request).await? {
            Response::Txn(txn) => Ok(tonic::Response::new(convert::txn_response(&txn))),
            other => Err(unexpected(&other)),
        }
    }

    async fn compact(
        &self,
        request: tonic::Request<pb::CompactionRequest>,
    ) -> Result<tonic::Response<pb::CompactionResponse>, Status> {
        let caller = Caller::of(&request);
        let request = Request::Compact(convert::compaction_request(request.into_inner()));
        match self.call(&caller, request).await? {
            Response::Compact { header } => Ok(tonic::Response::new(pb::CompactionResponse {
                header: convert::header(&header),
            })),
            other => Err(unexpected(&other)),
        }
    }
}

#[tonic::async_trait]
impl pb::watch_server::Watch for Services {
    type WatchStream = ResponseStream<pb::WatchResponse>;

    async fn watch(
        &self,
        request: tonic::Request<Streaming<pb::WatchRequest>>,
    ) -> Result<tonic::Response<Self::WatchStream>, Status> {
        let caller = Caller::of(&request);
        let mut incoming = request.into_inner();
        let (events, mut outgoing) = crate::watch_stream::channel();
        let (closed, mut closed_signal) = oneshot::channel::<()>();
        let services = self.clone();
        tokio::spawn(async move {
            // Ends when the client closes its side or goes away. A client that went away ends
            // the stream (and the member cancels its watches); one that only closed its side
            // keeps its watches, as with etcd, whose receive loop ends quietly at EOF (the
            // HTTP gateway closes its side once the request body is read).
            let mut closed = closed;
            loop {
                let message = match incoming.next().await {
                    Some(Ok(message)) => message,
                    Some(Err(_)) => break,
                    None => {
                        // Until the forwarder ends (the client stopped reading).
                        closed.closed().await;
                        break;
                    }
                };
                use pb::watch_request::RequestUnion;
                let command = match message.request_union {
                    Some(RequestUnion::CreateRequest(create)) => Command::WatchCreate {
                        request: convert::watch_create(create),
                        credentials: caller.credentials(),
                        events: events.clone(),
                    },
                    Some(RequestUnion::CancelRequest(cancel)) => {
                        // The member task sends the canceled response on the stream.
                        let request = Request::WatchCancel {
                            watch_id: WatchId(cancel.watch_id),
                        };
                        let _answer_is_on_the_stream = services.call(&caller, request).await;
                        continue;
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        let _answer_is_on_the_stream =
                            services.call(&caller, Request::WatchProgress).await;
                        continue;
                    }
                    None => continue,
                };
                if services.commands.send(command).await.is_err() {
                    break;
                }
            }
        });
        // Forwards the member's responses until the client stops reading or goes away;
        // dropping `outgoing` then makes the member task's next delivery fail, which cancels
        // the stream's watches in the member. A client that reads slowly fills `responses`,
        // then the buffer behind `outgoing`, whose watches the engine then pauses
        // (`crate::watch_stream`); they are resumed here once it drained.
        let (responses, stream) = mpsc::channel(WATCH_RESPONSES_COUNT_MAX);
        let commands = self.commands.clone();
        tokio::spawn(async move {
            loop {
                select! {
                    next = outgoing.next() => match next {
                        Some((response, resumed)) => {
                            if !resumed.is_empty() {
                                let resume = Command::WatchResume { watch_ids: resumed };
                                if commands.send(resume).await.is_err() {
                                    break;
                                }
                            }
                            let response = Ok(convert::watch_response(&response));
                            if responses.send(response).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = &mut closed_signal => break,
                    () = responses.closed() => break,
                }
            }
        });
        let stream = ReceiverStream::new(stream);
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl pb::lease_server::Lease for Services {
    type LeaseKeepAliveStream = ResponseStream<pb::LeaseKeepAliveResponse>;

    async fn lease_grant(
        &self,
        request: tonic::Request<pb::LeaseGrantRequest>,
    ) -> Result<tonic::Response<pb::LeaseGrantResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let request = Request::LeaseGrant(LeaseGrantRequest {
            ttl_seconds: request.ttl,
            id: LeaseId(request.id),
        });
        match self.call(&caller, request).await? {
            Response::LeaseGrant {
                header,
                id,
                ttl_seconds,
            } => Ok(tonic::Response::new(pb::LeaseGrantResponse {
                header: convert::header(&header),
                id: id.0,
                ttl: ttl_seconds,
                error: String::new(),
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_revoke(
        &self,
        request: tonic::Request<pb::LeaseRevokeRequest>,
    ) -> Result<tonic::Response<pb::LeaseRevokeResponse>, Status> {
        let caller = Caller::of(&request);
        let id = LeaseId(request.into_inner().id);
        match self.call(&caller, Request::LeaseRevoke { id }).await? {
            Response::LeaseRevoke { header } => Ok(tonic::Response::new(pb::LeaseRevokeResponse {
                header: convert::header(&header),
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_keep_alive(
        &self,
        request: tonic::Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<tonic::Response<Self::LeaseKeepAliveStream>, Status> {
        let caller = Caller::of(&request);
        let mut incoming = request.into_inner();
        let (responses, outgoing) = mpsc::channel(64);
        let services = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = incoming.next().await {
                let response = services.keep_alive_once(&caller, LeaseId(message.id)).await;
                if responses.send(response).await.is_err() {
                    break;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(
            outgoing,
        ))))
    }

    async fn lease_time_to_live(
        &self,
        request: tonic::Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<tonic::Response<pb::LeaseTimeToLiveResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let forwarded = request;
        let request = Request::LeaseTimeToLive(LeaseTimeToLiveRequest {
            id: LeaseId(request.id),
            keys: request.keys,
        });
        let answer = self.ask(&caller, request).await?;
        if let Some(url) = self.leader_url(&answer) {
            let mut client = self.leader_lease_client(url).await?;
            return client
                .lease_time_to_live(as_caller(&caller, forwarded)?)
                .await;
        }
        match answer.map_err(|error| convert::status(&error))? {
            Response::LeaseTimeToLive {
                header,
                id,
                ttl_seconds,
                granted_ttl_seconds,
                keys,
            } => Ok(tonic::Response::new(pb::LeaseTimeToLiveResponse {
                header: convert::header(&header),
                id: id.0,
                ttl: ttl_seconds,
                granted_ttl: granted_ttl_seconds,
                keys,
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_leases(
        &self,
        request: tonic::Request<pb::LeaseLeasesRequest>,
    ) -> Result<tonic::Response<pb::LeaseLeasesResponse>, Status> {
        match self
            .call(&Caller::of(&request), Request::LeaseLeases)
            .await?
        {
            Response::LeaseLeases { header, leases } => {
                Ok(tonic::Response::new(pb::LeaseLeasesResponse {
                    header: convert::header(&header),
                    leases: leases
                        .iter()
                        .map(|lease| pb::LeaseStatus { id: lease.0 })
                        .collect(),
                }))
            }
            other => Err(unexpected(&other)),
        }
    }
}

impl Services {
    pub(crate) async fn status(&self) -> Result<engine::member::MemberStatus, Status> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status { reply })
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))
    }
}
