//! etcd's election service (`v3electionpb.Election`) on this member's KV, lease and watch
//! requests: the recipes are `host::recipe::election`, driven by `crate::recipes`.

use engine::kv::{KeyValue, ResponseHeader};
use engine::types::{LeaseId, Revision};
use host::recipe::election::{Campaign, Leader, LeaderKey, Observe, Proclaim, Resign};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::auth::Caller;
use crate::convert;
use crate::grpc::{ResponseStream, Services};
use crate::proto::v3electionpb as pb;
use crate::recipes::{status, Outcome, Run};

/// Leader changes buffered per Observe stream ahead of its client.
const OBSERVED_COUNT_MAX: usize = 16;

fn leader_key(key: Option<pb::LeaderKey>) -> Option<LeaderKey> {
    key.map(|key| LeaderKey {
        name: key.name,
        key: key.key,
        revision: Revision(key.rev),
        lease: LeaseId(key.lease),
    })
}

fn leader_response((header, kv): &(ResponseHeader, KeyValue)) -> pb::LeaderResponse {
    pb::LeaderResponse {
        header: convert::header(header),
        kv: Some(convert::key_value(kv)),
    }
}

#[tonic::async_trait]
impl pb::election_server::Election for Services {
    type ObserveStream = ResponseStream<pb::LeaderResponse>;

    async fn campaign(
        &self,
        request: tonic::Request<pb::CampaignRequest>,
    ) -> Result<tonic::Response<pb::CampaignResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let recipe = Campaign::new(&request.name, LeaseId(request.lease), request.value)
            .map_err(|error| status(&error))?;
        let elected = Run::new(self.clone(), caller, recipe)
            .finish()
            .await
            .map_err(|error| status(&error))?;
        Ok(tonic::Response::new(pb::CampaignResponse {
            header: convert::header(&elected.header),
            leader: Some(pb::LeaderKey {
                name: elected.leader.name,
                key: elected.leader.key,
                rev: elected.leader.revision.0,
                lease: elected.leader.lease.0,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: tonic::Request<pb::ProclaimRequest>,
    ) -> Result<tonic::Response<pb::ProclaimResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let recipe = Proclaim::new(leader_key(request.leader), request.value)
            .map_err(|error| status(&error))?;
        let header = Run::new(self.clone(), caller, recipe)
            .finish()
            .await
            .map_err(|error| status(&error))?;
        Ok(tonic::Response::new(pb::ProclaimResponse {
            header: convert::header(&header),
        }))
    }

    async fn leader(
        &self,
        request: tonic::Request<pb::LeaderRequest>,
    ) -> Result<tonic::Response<pb::LeaderResponse>, Status> {
        let caller = Caller::of(&request);
        let recipe = Leader::new(&request.into_inner().name);
        let leader = Run::new(self.clone(), caller, recipe)
            .finish()
            .await
            .map_err(|error| status(&error))?;
        Ok(tonic::Response::new(leader_response(&leader)))
    }

    async fn observe(
        &self,
        request: tonic::Request<pb::LeaderRequest>,
    ) -> Result<tonic::Response<Self::ObserveStream>, Status> {
        let caller = Caller::of(&request);
        let recipe = Observe::new(&request.into_inner().name);
        let mut run = Run::new(self.clone(), caller, recipe);
        let (responses, stream) = mpsc::channel(OBSERVED_COUNT_MAX);
        tokio::spawn(async move {
            loop {
                // A client that went away ends the run (and its watch) even while it waits.
                let outcome = select! {
                    outcome = run.advance() => outcome,
                    () = responses.closed() => return,
                };
                let message = match outcome {
                    Outcome::Emit(leader) => Ok(leader_response(&leader)),
                    Outcome::Done(Ok(leader)) => Ok(leader_response(&leader)),
                    Outcome::Done(Err(error)) => {
                        let _ = responses.send(Err(status(&error))).await;
                        return;
                    }
                };
                if responses.send(message).await.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn resign(
        &self,
        request: tonic::Request<pb::ResignRequest>,
    ) -> Result<tonic::Response<pb::ResignResponse>, Status> {
        let caller = Caller::of(&request);
        let recipe =
            Resign::new(leader_key(request.into_inner().leader)).map_err(|error| status(&error))?;
        let header = Run::new(self.clone(), caller, recipe)
            .finish()
            .await
            .map_err(|error| status(&error))?;
        Ok(tonic::Response::new(pb::ResignResponse {
            header: convert::header(&header),
        }))
    }
}
