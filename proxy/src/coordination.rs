//! The grpc-proxy's Auth, Lock and Election services, passed to the cluster as they are (with
//! the caller's auth token), as etcd's grpc-proxy passes them. A Lock or Campaign call may wait
//! for a long time: it stays one upstream call, so a cluster that loses the connection fails it
//! (Unavailable) rather than the proxy re-sending a write that may have taken effect.

use server::proto::etcdserverpb as pb;
use server::proto::v3electionpb as election;
use server::proto::v3lockpb as lock;
use tonic::{Request, Response, Status};

use crate::forward::{forward, forward_stream, outgoing, Proxy, ResponseStream};
use crate::upstream::Retry;

type AuthClient = pb::auth_client::AuthClient<tonic::transport::Channel>;
type LockClient = lock::lock_client::LockClient<tonic::transport::Channel>;
type ElectionClient = election::election_client::ElectionClient<tonic::transport::Channel>;

#[tonic::async_trait]
impl pb::auth_server::Auth for Proxy {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        forward!(self, request, AuthClient, auth_enable, Retry::Unreached)
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        forward!(self, request, AuthClient, auth_disable, Retry::Unreached)
    }

    async fn auth_status(
        &self,
        request: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        forward!(self, request, AuthClient, auth_status, Retry::Unavailable)
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        forward!(self, request, AuthClient, authenticate, Retry::Unreached)
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        forward!(self, request, AuthClient, user_add, Retry::Unreached)
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        forward!(self, request, AuthClient, user_get, Retry::Unavailable)
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        forward!(self, request, AuthClient, user_list, Retry::Unavailable)
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        forward!(self, request, AuthClient, user_delete, Retry::Unreached)
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        forward!(
            self,
            request,
            AuthClient,
            user_change_password,
            Retry::Unreached
        )
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        forward!(self, request, AuthClient, user_grant_role, Retry::Unreached)
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        forward!(
            self,
            request,
            AuthClient,
            user_revoke_role,
            Retry::Unreached
        )
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        forward!(self, request, AuthClient, role_add, Retry::Unreached)
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        forward!(self, request, AuthClient, role_get, Retry::Unavailable)
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        forward!(self, request, AuthClient, role_list, Retry::Unavailable)
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        forward!(self, request, AuthClient, role_delete, Retry::Unreached)
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        forward!(
            self,
            request,
            AuthClient,
            role_grant_permission,
            Retry::Unreached
        )
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        forward!(
            self,
            request,
            AuthClient,
            role_revoke_permission,
            Retry::Unreached
        )
    }
}

#[tonic::async_trait]
impl lock::lock_server::Lock for Proxy {
    async fn lock(
        &self,
        request: Request<lock::LockRequest>,
    ) -> Result<Response<lock::LockResponse>, Status> {
        forward!(self, request, LockClient, lock, Retry::Unreached)
    }

    async fn unlock(
        &self,
        request: Request<lock::UnlockRequest>,
    ) -> Result<Response<lock::UnlockResponse>, Status> {
        forward!(self, request, LockClient, unlock, Retry::Unreached)
    }
}

#[tonic::async_trait]
impl election::election_server::Election for Proxy {
    type ObserveStream = ResponseStream<election::LeaderResponse>;

    async fn campaign(
        &self,
        request: Request<election::CampaignRequest>,
    ) -> Result<Response<election::CampaignResponse>, Status> {
        forward!(self, request, ElectionClient, campaign, Retry::Unreached)
    }

    async fn proclaim(
        &self,
        request: Request<election::ProclaimRequest>,
    ) -> Result<Response<election::ProclaimResponse>, Status> {
        forward!(self, request, ElectionClient, proclaim, Retry::Unreached)
    }

    async fn leader(
        &self,
        request: Request<election::LeaderRequest>,
    ) -> Result<Response<election::LeaderResponse>, Status> {
        forward!(self, request, ElectionClient, leader, Retry::Unavailable)
    }

    async fn resign(
        &self,
        request: Request<election::ResignRequest>,
    ) -> Result<Response<election::ResignResponse>, Status> {
        forward!(self, request, ElectionClient, resign, Retry::Unreached)
    }

    async fn observe(
        &self,
        request: Request<election::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        forward_stream!(self, request, ElectionClient, observe)
    }
}
