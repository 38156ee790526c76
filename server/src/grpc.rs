//! The etcd v3 gRPC services: each handler converts its request, sends it to the member task and
//! converts the answer back. Streams (Watch, LeaseKeepAlive) get a task that reads the client's
//! requests while the member task writes responses.

use std::pin::Pin;
use std::sync::Arc;

use engine::kv::{LeaseGrantRequest, LeaseTimeToLiveRequest, Request, Response};
use engine::types::{LeaseId, WatchId};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Status, Streaming};

use crate::convert;
use crate::proto::etcdserverpb as pb;
use crate::task::{Answer, Command};

/// What Cluster.MemberList and Maintenance.Status say about the cluster and this member.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    /// This member's id.
    pub id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// Every member, this one included.
    pub members: Vec<MemberEntry>,
    /// This member's advertised client URL.
    pub own_client_url: String,
    /// Peers' client URLs, learned from their hellos.
    pub learned_client_urls: crate::peer::ClientUrls,
    /// detcd's version.
    pub version: String,
}

/// One member as MemberList shows it.
#[derive(Clone, Debug)]
pub struct MemberEntry {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

impl MemberInfo {
    /// The client URL of member `id`, if known.
    pub fn client_url(&self, id: u64) -> Option<String> {
        if id == self.id {
            return Some(self.own_client_url.clone());
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
    commands: mpsc::Sender<Command>,
    info: Arc<MemberInfo>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Services {
    /// Services that send to the member task through `commands`.
    pub fn new(commands: mpsc::Sender<Command>, info: MemberInfo) -> Services {
        Services {
            commands,
            info: Arc::new(info),
        }
    }

    async fn call(&self, request: Request) -> Result<Response, Status> {
        let (reply, answer) = oneshot::channel::<Answer>();
        self.commands
            .send(Command::Request { request, reply })
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        match answer.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(convert::status(&error)),
            Err(_) => Err(Status::unavailable("etcdserver: server stopped")),
        }
    }
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
        let request = Request::Range(convert::range_request(request.into_inner()));
        match self.call(request).await? {
            Response::Range(range) => Ok(tonic::Response::new(convert::range_response(&range))),
            other => Err(unexpected(&other)),
        }
    }

    async fn put(
        &self,
        request: tonic::Request<pb::PutRequest>,
    ) -> Result<tonic::Response<pb::PutResponse>, Status> {
        let request = Request::Put(convert::put_request(request.into_inner()));
        match self.call(request).await? {
            Response::Put(put) => Ok(tonic::Response::new(convert::put_response(&put))),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_range(
        &self,
        request: tonic::Request<pb::DeleteRangeRequest>,
    ) -> Result<tonic::Response<pb::DeleteRangeResponse>, Status> {
        let request = Request::DeleteRange(convert::delete_request(request.into_inner()));
        match self.call(request).await? {
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
        let request = Request::Txn(convert::txn_request(request.into_inner())?);
        match self.call(request).await? {
            Response::Txn(txn) => Ok(tonic::Response::new(convert::txn_response(&txn))),
            other => Err(unexpected(&other)),
        }
    }

    async fn compact(
        &self,
        request: tonic::Request<pb::CompactionRequest>,
    ) -> Result<tonic::Response<pb::CompactionResponse>, Status> {
        let request = Request::Compact(convert::compaction_request(request.into_inner()));
        match self.call(request).await? {
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
        let mut incoming = request.into_inner();
        let (events, outgoing) = mpsc::unbounded_channel();
        let services = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = incoming.next().await {
                use pb::watch_request::RequestUnion;
                let command = match message.request_union {
                    Some(RequestUnion::CreateRequest(create)) => Command::WatchCreate {
                        request: convert::watch_create(create),
                        events: events.clone(),
                    },
                    Some(RequestUnion::CancelRequest(cancel)) => {
                        // The member task sends the canceled response on the stream.
                        let request = Request::WatchCancel {
                            watch_id: WatchId(cancel.watch_id),
                        };
                        let _answer_is_on_the_stream = services.call(request).await;
                        continue;
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        let _answer_is_on_the_stream = services.call(Request::WatchProgress).await;
                        continue;
                    }
                    None => continue,
                };
                if services.commands.send(command).await.is_err() {
                    break;
                }
            }
        });
        let stream = UnboundedReceiverStream::new(outgoing)
            .map(|response| Ok(convert::watch_response(&response)));
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
        let request = request.into_inner();
        let request = Request::LeaseGrant(LeaseGrantRequest {
            ttl_seconds: request.ttl,
            id: LeaseId(request.id),
        });
        match self.call(request).await? {
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
        let id = LeaseId(request.into_inner().id);
        match self.call(Request::LeaseRevoke { id }).await? {
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
        let mut incoming = request.into_inner();
        let (responses, outgoing) = mpsc::channel(64);
        let services = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = incoming.next().await {
                let id = LeaseId(message.id);
                let response = match services.call(Request::LeaseKeepAlive { id }).await {
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
                    Err(status) => Err(status),
                };
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
        let request = request.into_inner();
        let request = Request::LeaseTimeToLive(LeaseTimeToLiveRequest {
            id: LeaseId(request.id),
            keys: request.keys,
        });
        match self.call(request).await? {
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
        _request: tonic::Request<pb::LeaseLeasesRequest>,
    ) -> Result<tonic::Response<pb::LeaseLeasesResponse>, Status> {
        match self.call(Request::LeaseLeases).await? {
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

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Services {
    async fn member_list(
        &self,
        _request: tonic::Request<pb::MemberListRequest>,
    ) -> Result<tonic::Response<pb::MemberListResponse>, Status> {
        let status = self.status().await?;
        Ok(tonic::Response::new(pb::MemberListResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: self.info.cluster_id,
                member_id: status.id.0,
                revision: status.revision.0,
                raft_term: status.term.0,
            }),
            members: self
                .info
                .members
                .iter()
                .map(|member| pb::Member {
                    id: member.id,
                    name: member.name.clone(),
                    peer_ur_ls: member.peer_urls.clone(),
                    client_ur_ls: self.info.client_url(member.id).into_iter().collect(),
                    is_learner: false,
                })
                .collect(),
        }))
    }
}

impl Services {
    async fn status(&self) -> Result<engine::member::MemberStatus, Status> {
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

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for Services {
    async fn status(
        &self,
        _request: tonic::Request<pb::StatusRequest>,
    ) -> Result<tonic::Response<pb::StatusResponse>, Status> {
        let status = Services::status(self).await?;
        Ok(tonic::Response::new(pb::StatusResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: self.info.cluster_id,
                member_id: status.id.0,
                revision: status.revision.0,
                raft_term: status.term.0,
            }),
            version: self.info.version.clone(),
            db_size: 0,
            leader: status.leader.map_or(0, |leader| leader.0),
            raft_index: status.commit_index.0,
            raft_term: status.term.0,
            raft_applied_index: status.applied_index.0,
            errors: status
                .halted
                .iter()
                .map(|reason| format!("halted: {reason:?}"))
                .collect(),
            db_size_in_use: 0,
            is_learner: false,
        }))
    }
}
