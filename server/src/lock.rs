//! etcd's lock service (`v3lockpb.Lock`) on this member's KV, lease and watch requests: the
//! recipe is `host::recipe::lock`, driven by `crate::recipes`.

use engine::types::LeaseId;
use host::recipe::lock::{Lock, Unlock};
use tonic::Status;

use crate::auth::Caller;
use crate::convert;
use crate::grpc::Services;
use crate::proto::v3lockpb as pb;
use crate::recipes::{status, Run};

#[tonic::async_trait]
impl pb::lock_server::Lock for Services {
    async fn lock(
        &self,
        request: tonic::Request<pb::LockRequest>,
    ) -> Result<tonic::Response<pb::LockResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let recipe =
            Lock::new(&request.name, LeaseId(request.lease)).map_err(|error| status(&error))?;
        let held = Run::new(self.clone(), caller, recipe)
            .finish()
            .await
            .map_err(|error| status(&error))?;
        Ok(tonic::Response::new(pb::LockResponse {
            header: convert::header(&held.header),
            key: held.key,
        }))
    }

    async fn unlock(
        &self,
        request: tonic::Request<pb::UnlockRequest>,
    ) -> Result<tonic::Response<pb::UnlockResponse>, Status> {
        let caller = Caller::of(&request);
        let recipe = Unlock::new(request.into_inner().key);
        let header = Run::new(self.clone(), caller, recipe)
            .finish()
            .await
            .map_err(|error| status(&error))?;
        Ok(tonic::Response::new(pb::UnlockResponse {
            header: convert::header(&header),
        }))
    }
}
