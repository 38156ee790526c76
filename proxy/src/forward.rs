//! The grpc-proxy's services that need no coalescing: KV, the unary Lease calls, Cluster and
//! Maintenance are passed to the cluster as they are (with the caller's auth token), through
//! `Upstream`'s failover. Watch and LeaseKeepAlive live in `watch` and `lease`; Auth, Lock and
//! Election in `coordination`.

use std::pin::Pin;
use std::sync::Arc;

use server::proto::etcdserverpb as pb;
use tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::lease::LeaseHub;
use crate::upstream::{Retry, Upstream};
use crate::watch::WatchHub;
use crate::Stats;

/// A stream of responses to a client.
pub(crate) type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Metadata keys passed on to the cluster: etcd's auth token (and its HTTP spelling).
const FORWARDED_METADATA: [&str; 2] = ["token", "authorization"];

/// Every service of the proxy shares this.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) watches: Arc<WatchHub>,
    pub(crate) leases: Arc<LeaseHub>,
    pub(crate) stats: Arc<Stats>,
}

/// The request to send upstream: `message` with the caller's forwarded metadata.
pub(crate) fn outgoing<T: Clone>(metadata: &MetadataMap, message: &T) -> Request<T> {
    let mut request = Request::new(message.clone());
    for key in FORWARDED_METADATA {
        if let Some(value) = metadata.get(key) {
            request.metadata_mut().insert(key, value.clone());
        }
    }
    request
}

/// Passes one unary call to the cluster: `forward!(self, request, client type, method, retry)`.
macro_rules! forward {
    ($proxy:ident, $request:ident, $client:ty, $method:ident, $retry:expr) => {{
        let metadata = $request.metadata().clone();
        let message = $request.into_inner();
        $proxy
            .upstream
            .call($retry, |channel| {
                let request = outgoing(&metadata, &message);
                async move {
                    <$client>::new(channel)
                        .$method(request)
                        .await
                        .map(Response::into_inner)
                }
            })
            .await
            .map(Response::new)
    }};
}
pub(crate) use forward;

/// Passes one server-streaming call to the cluster (a read: retried while no answer came):
/// `forward_stream!(self, request, client type, method)`.
macro_rules! forward_stream {
    ($proxy:ident, $request:ident, $client:ty, $method:ident) => {{
        let metadata = $request.metadata().clone();
        let message = $request.into_inner();
        let stream = $proxy
            .upstream
            .call(Retry::Unavailable, |channel| {
                let request = outgoing(&metadata, &message);
                async move {
                    <$client>::new(channel)
                        .$method(request)
                        .await
                        .map(Response::into_inner)
                }
            })
            .await?;
        Ok(Response::new(Box::pin(stream)))
    }};
}
pub(crate) use forward_stream;

type KvClient = pb::kv_client::KvClient<tonic::transport::Channel>;
type LeaseClient = pb::lease_client::LeaseClient<tonic::transport::Channel>;
type ClusterClient = pb::cluster_client::ClusterClient<tonic::transport::Channel>;
type MaintenanceClient = pb::maintenance_client::MaintenanceClient<tonic::transport::Channel>;

#[tonic::async_trait]
impl pb::kv_server::Kv for Proxy {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        forward!(self, request, KvClient, range, Retry::Unavailable)
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        forward!(self, request, KvClient, put, Retry::Unreached)
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        forward!(self, request, KvClient, delete_range, Retry::Unreached)
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        forward!(self, request, KvClient, txn, Retry::Unreached)
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        forward!(self, request, KvClient, compact, Retry::Unreached)
    }
}

#[tonic::async_trait]
impl pb::lease_server::Lease for Proxy {
    type LeaseKeepAliveStream = ResponseStream<pb::LeaseKeepAliveResponse>;

    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        forward!(self, request, LeaseClient, lease_grant, Retry::Unreached)
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        forward!(self, request, LeaseClient, lease_revoke, Retry::Unreached)
    }

    async fn lease_keep_alive(
        &self,
        request: Request<tonic::Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let metadata = request.metadata().clone();
        Ok(Response::new(crate::lease::serve_keep_alive(
            self.leases.clone(),
            metadata,
            request.into_inner(),
        )))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        forward!(
            self,
            request,
            LeaseClient,
            lease_time_to_live,
            Retry::Unavailable
        )
    }

    async fn lease_leases(
        &self,
        request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        forward!(self, request, LeaseClient, lease_leases, Retry::Unavailable)
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Proxy {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        forward!(self, request, ClusterClient, member_add, Retry::Unreached)
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        forward!(
            self,
            request,
            ClusterClient,
            member_remove,
            Retry::Unreached
        )
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        forward!(
            self,
            request,
            ClusterClient,
            member_update,
            Retry::Unreached
        )
    }

    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        forward!(
            self,
            request,
            ClusterClient,
            member_list,
            Retry::Unavailable
        )
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        forward!(
            self,
            request,
            ClusterClient,
            member_promote,
            Retry::Unreached
        )
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for Proxy {
    type SnapshotStream = ResponseStream<pb::SnapshotResponse>;

    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        forward!(self, request, MaintenanceClient, alarm, Retry::Unreached)
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        forward!(self, request, MaintenanceClient, status, Retry::Unavailable)
    }

    async fn defragment(
        &self,
        request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        forward!(
            self,
            request,
            MaintenanceClient,
            defragment,
            Retry::Unreached
        )
    }

    async fn hash(
        &self,
        request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        forward!(self, request, MaintenanceClient, hash, Retry::Unavailable)
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        forward!(
            self,
            request,
            MaintenanceClient,
            hash_kv,
            Retry::Unavailable
        )
    }

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        forward_stream!(self, request, MaintenanceClient, snapshot)
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        forward!(
            self,
            request,
            MaintenanceClient,
            move_leader,
            Retry::Unreached
        )
    }
}
