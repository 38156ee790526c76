//! The Cluster and Maintenance services: membership as the cluster was laid out, the member's
//! status, hashes of its key-value history, alarms (none are ever raised: detcd has no space
//! quota and checks corruption at start), defragmentation (nothing to do: there is no B-tree
//! file to compact), and a snapshot of the key-value store (detcd's own encoding, not a bbolt file, padded
//! and followed by its SHA-256 as etcd's is) as a stream of chunks.
//!
//! While auth is enabled, Hash, HashKV, Snapshot, Defragment, MoveLeader and raising or
//! clearing an alarm need the root role, and listing alarms a named user, as in etcd 3.4 (the
//! member decides: `AuthRequest::CheckCaller`); Status is open to anyone, as etcd 3.4 before
//! 3.4.42 answers it. The first four refuse with the auth store's own text and code Unknown
//! (`auth: permission denied`), as etcd returns it unconverted; the others with etcd's gRPC
//! errors (`etcdserver: permission denied`).
//!
//! MoveLeader and every membership change go through the engine's requests. MemberAdd and
//! MemberUpdate carry the member's attributes (peer URLs) as the change's context, so every
//! member learns where to reach it from the log (`crate::membership`).

use engine::auth::{AuthRequest, AuthResponse};
use engine::kv::{Request, RequestError, Response};
use engine::raft::ConfChange;
use engine::types::{NodeId, Revision};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::auth::Caller;
use crate::grpc::{ResponseStream, Services};
use crate::proto::etcdserverpb as pb;
use crate::task::{Command, Inspection};

/// Bytes of the snapshot per streamed message (etcd sends 32 KiB chunks).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

impl Services {
    async fn inspect(&self, with_snapshot: bool) -> Result<Inspection, Status> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Inspect {
                with_snapshot,
                reply,
            })
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))
    }

    /// Whether `caller` may use a maintenance RPC (`admin`: the root role; otherwise any named
    /// user), decided by the member, which resolves tokens; always while auth is disabled.
    async fn check_caller(&self, caller: &Caller, admin: bool) -> Result<(), RequestError> {
        let request = Request::Auth(AuthRequest::CheckCaller { admin });
        let answer = self
            .ask(caller, request)
            .await
            .map_err(|_| RequestError::Stopping)?;
        match answer? {
            Response::Auth {
                response: AuthResponse::Done,
                ..
            } => Ok(()),
            other => panic!("the member answers a caller check with Done, not {other:?}"),
        }
    }

    /// The root-role check of Hash, HashKV, Snapshot and Defragment, refused as etcd does
    /// there (`convert::unconverted_auth_status`).
    async fn check_admin_unconverted<T>(&self, request: &tonic::Request<T>) -> Result<(), Status> {
        self.check_caller(&Caller::of(request), true)
            .await
            .map_err(|error| crate::convert::unconverted_auth_status(&error))
    }

    fn header_of(&self, status: &engine::member::MemberStatus) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.info.cluster_id,
            member_id: status.id.0,
            revision: status.revision.0,
            raft_term: status.term.0,
        })
    }

    fn members(&self) -> Vec<pb::Member> {
        let known = self
            .info
            .membership
            .lock()
            .expect("the membership view is never poisoned")
            .members();
        known
            .into_iter()
            .map(|member| {
                // A member added at run time that has not started yet has no name and no
                // client URL (etcdctl prints it as unstarted).
                let client_ur_ls = if member.attributes.client_urls.is_empty()
                    && !member.attributes.name.is_empty()
                {
                    self.info.client_url(member.id.0).into_iter().collect()
                } else {
                    member.attributes.client_urls
                };
                pb::Member {
                    id: member.id.0,
                    name: member.attributes.name,
                    peer_ur_ls: member.attributes.peer_urls,
                    client_ur_ls,
                    is_learner: member.is_learner,
                }
            })
            .collect()
    }

    /// The member `id` if it is in the membership, else etcd's error.
    fn member(&self, id: u64) -> Result<pb::Member, Status> {
        self.members()
            .into_iter()
            .find(|member| member.id == id)
            .ok_or_else(|| Status::not_found("etcdserver: member not found"))
    }

    /// Checks peer URLs as etcd does: present, each a URL, none already a member's.
    fn check_peer_urls(&self, urls: &[String], except: Option<u64>) -> Result<(), Status> {
        let bad = || Status::invalid_argument("etcdserver: given member URLs are invalid");
        if urls.is_empty() {
            return Err(bad());
        }
        for url in urls {
            crate::parse_url("peer URL", url).map_err(|_| bad())?;
        }
        let taken = self.members().into_iter().any(|member| {
            Some(member.id) != except
                && member
                    .peer_ur_ls
                    .iter()
                    .any(|known| urls.iter().any(|url| same_url(known, url)))
        });
        if taken {
            return Err(Status::failed_precondition(
                "etcdserver: Peer URLs already exists",
            ));
        }
        Ok(())
    }
}

/// Whether two URLs name the same place (a trailing slash aside).
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl Services {
    /// Proposes a membership change and answers with the membership once it applied.
    async fn member_change(
        &self,
        caller: &Caller,
        change: ConfChange,
        context: Vec<u8>,
        changed: Option<pb::Member>,
    ) -> Result<(Option<pb::ResponseHeader>, Vec<pb::Member>), Status> {
        let request = Request::MemberChangeWithContext { change, context };
        match self.call(caller, request).await? {
            Response::MemberChanged {
                header,
                voters,
                learners,
            } => {
                // The view may not have taken the change in yet: the changed member is known
                // from the request.
                let known: Vec<pb::Member> = changed.into_iter().chain(self.members()).collect();
                let entry = |id: NodeId, is_learner: bool| {
                    let mut member = known
                        .iter()
                        .find(|member| member.id == id.0)
                        .cloned()
                        .unwrap_or(pb::Member {
                            id: id.0,
                            ..pb::Member::default()
                        });
                    member.is_learner = is_learner;
                    member
                };
                let members = voters
                    .iter()
                    .map(|id| entry(*id, false))
                    .chain(learners.iter().map(|id| entry(*id, true)))
                    .collect();
                Ok((crate::convert::header(&header), members))
            }
            other => Err(Status::internal(format!(
                "etcdserver: unexpected answer {other:?}"
            ))),
        }
    }
}

/// Bytes of a snapshot file before its checksum are a multiple of this (etcd's page size;
/// etcdctl's `snapshot save` refuses a file whose length is not).
const SNAPSHOT_ALIGN_BYTES: usize = 512;

/// The snapshot as a file: the store's snapshot length (u64 little endian), its bytes, zeros
/// up to a multiple of 512 bytes, then the SHA-256 of everything before it, as etcd ends its
/// snapshots (etcdctl checks for the checksum).
fn snapshot_file(store: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut bytes = Vec::with_capacity(store.len() + SNAPSHOT_ALIGN_BYTES + 40);
    bytes.extend_from_slice(&(store.len() as u64).to_le_bytes());
    bytes.extend_from_slice(store);
    let padded = bytes.len().div_ceil(SNAPSHOT_ALIGN_BYTES) * SNAPSHOT_ALIGN_BYTES;
    bytes.resize(padded, 0);
    let digest = sha2::Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// etcd's hashes are 32 bits; the store's is 64: fold the halves.
fn hash32(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Services {
    async fn member_add(
        &self,
        request: tonic::Request<pb::MemberAddRequest>,
    ) -> Result<tonic::Response<pb::MemberAddResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        self.check_peer_urls(&request.peer_ur_ls, None)?;
        // The id derives from the peer URL and the token, so the new member computes the same
        // one from its flags when it starts.
        let first_url = request.peer_ur_ls[0].trim_end_matches('/');
        let id = crate::cluster::member_id(first_url, &self.info.token);
        if self.member(id.0).is_ok() {
            return Err(Status::failed_precondition(
                "etcdserver: member ID already exist",
            ));
        }
        let attributes = crate::membership::Attributes {
            name: String::new(),
            peer_urls: request.peer_ur_ls.clone(),
            client_urls: Vec::new(),
        };
        let change = if request.is_learner {
            ConfChange::AddLearner(id)
        } else {
            ConfChange::AddVoter(id)
        };
        let member = pb::Member {
            id: id.0,
            name: String::new(),
            peer_ur_ls: request.peer_ur_ls,
            client_ur_ls: Vec::new(),
            is_learner: request.is_learner,
        };
        let (header, members) = self
            .member_change(&caller, change, attributes.encode(), Some(member.clone()))
            .await?;
        Ok(tonic::Response::new(pb::MemberAddResponse {
            header,
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: tonic::Request<pb::MemberRemoveRequest>,
    ) -> Result<tonic::Response<pb::MemberRemoveResponse>, Status> {
        let caller = Caller::of(&request);
        let id = NodeId(request.into_inner().id);
        self.member(id.0)?;
        let (header, members) = self
            .member_change(&caller, ConfChange::Remove(id), Vec::new(), None)
            .await?;
        Ok(tonic::Response::new(pb::MemberRemoveResponse {
            header,
            members,
        }))
    }

    async fn member_update(
        &self,
        request: tonic::Request<pb::MemberUpdateRequest>,
    ) -> Result<tonic::Response<pb::MemberUpdateResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let mut member = self.member(request.id)?;
        self.check_peer_urls(&request.peer_ur_ls, Some(request.id))?;
        // Only the peer URLs change (etcd's MemberUpdate); name and client URLs stay.
        let attributes = crate::membership::Attributes {
            name: member.name.clone(),
            peer_urls: request.peer_ur_ls.clone(),
            client_urls: member.client_ur_ls.clone(),
        };
        member.peer_ur_ls = request.peer_ur_ls;
        let change = ConfChange::Update(NodeId(request.id));
        let (header, members) = self
            .member_change(&caller, change, attributes.encode(), Some(member))
            .await?;
        Ok(tonic::Response::new(pb::MemberUpdateResponse {
            header,
            members,
        }))
    }

    async fn member_promote(
        &self,
        request: tonic::Request<pb::MemberPromoteRequest>,
    ) -> Result<tonic::Response<pb::MemberPromoteResponse>, Status> {
        let caller = Caller::of(&request);
        let id = NodeId(request.into_inner().id);
        if !self.member(id.0)?.is_learner {
            return Err(Status::failed_precondition(
                "etcdserver: can only promote a learner member",
            ));
        }
        let (header, members) = self
            .member_change(&caller, ConfChange::Promote(id), Vec::new(), None)
            .await?;
        Ok(tonic::Response::new(pb::MemberPromoteResponse {
            header,
            members,
        }))
    }

    async fn member_list(
        &self,
        _request: tonic::Request<pb::MemberListRequest>,
    ) -> Result<tonic::Response<pb::MemberListResponse>, Status> {
        let status = self.status().await?;
        Ok(tonic::Response::new(pb::MemberListResponse {
            header: self.header_of(&status),
            members: self.members(),
        }))
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for Services {
    type SnapshotStream = ResponseStream<pb::SnapshotResponse>;

    async fn alarm(
        &self,
        request: tonic::Request<pb::AlarmRequest>,
    ) -> Result<tonic::Response<pb::AlarmResponse>, Status> {
        use pb::alarm_request::AlarmAction;
        let action = request.get_ref().action();
        // Listing needs a named user, changing the root role (etcd 3.4.44).
        let admin = action != AlarmAction::Get;
        self.check_caller(&Caller::of(&request), admin)
            .await
            .map_err(|error| crate::convert::status(&error))?;
        let status = self.status().await?;
        match action {
            // No alarm is ever raised, so the list is empty and deactivating is a no-op.
            AlarmAction::Get | AlarmAction::Deactivate => {
                Ok(tonic::Response::new(pb::AlarmResponse {
                    header: self.header_of(&status),
                    alarms: Vec::new(),
                }))
            }
            AlarmAction::Activate => Err(Status::invalid_argument(
                "etcdserver: detcd raises no alarms (no space quota; corruption refuses the start)",
            )),
        }
    }

    async fn status(
        &self,
        _request: tonic::Request<pb::StatusRequest>,
    ) -> Result<tonic::Response<pb::StatusResponse>, Status> {
        let status = Services::status(self).await?;
        Ok(tonic::Response::new(pb::StatusResponse {
            header: self.header_of(&status),
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

    async fn defragment(
        &self,
        request: tonic::Request<pb::DefragmentRequest>,
    ) -> Result<tonic::Response<pb::DefragmentResponse>, Status> {
        self.check_admin_unconverted(&request).await?;
        // The store lives in memory and on disk as WAL plus snapshots: nothing to defragment.
        let status = self.status().await?;
        Ok(tonic::Response::new(pb::DefragmentResponse {
            header: self.header_of(&status),
        }))
    }

    async fn hash(
        &self,
        request: tonic::Request<pb::HashRequest>,
    ) -> Result<tonic::Response<pb::HashResponse>, Status> {
        self.check_admin_unconverted(&request).await?;
        let inspection = self.inspect(false).await?;
        Ok(tonic::Response::new(pb::HashResponse {
            header: self.header_of(&inspection.status),
            hash: hash32(inspection.kv_hash),
        }))
    }

    async fn hash_kv(
        &self,
        request: tonic::Request<pb::HashKvRequest>,
    ) -> Result<tonic::Response<pb::HashKvResponse>, Status> {
        self.check_admin_unconverted(&request).await?;
        let revision = Revision(request.into_inner().revision);
        let inspection = self.inspect(false).await?;
        let current = inspection.status.revision;
        if revision.0 != 0 && revision < inspection.compacted_revision {
            return Err(Status::out_of_range(
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        if revision > current {
            return Err(Status::out_of_range(
                "etcdserver: mvcc: required revision is a future revision",
            ));
        }
        if revision.0 != 0 && revision != current {
            return Err(Status::unimplemented(format!(
                "etcdserver: HashKV at a past revision ({revision}) is not implemented by detcd yet; the current one is {current}"
            )));
        }
        Ok(tonic::Response::new(pb::HashKvResponse {
            header: self.header_of(&inspection.status),
            hash: hash32(inspection.kv_hash),
            compact_revision: inspection.compacted_revision.0,
        }))
    }

    async fn snapshot(
        &self,
        request: tonic::Request<pb::SnapshotRequest>,
    ) -> Result<tonic::Response<Self::SnapshotStream>, Status> {
        self.check_admin_unconverted(&request).await?;
        let inspection = self.inspect(true).await?;
        let header = self.header_of(&inspection.status);
        let bytes = snapshot_file(&inspection.snapshot.unwrap_or_default());
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut remaining = bytes.len();
            for chunk in bytes.chunks(SNAPSHOT_CHUNK_BYTES) {
                remaining -= chunk.len();
                let response = pb::SnapshotResponse {
                    header,
                    remaining_bytes: remaining as u64,
                    blob: chunk.to_vec(),
                };
                // A client that went away ends the stream.
                if sender.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(
            receiver,
        ))))
    }

    async fn move_leader(
        &self,
        request: tonic::Request<pb::MoveLeaderRequest>,
    ) -> Result<tonic::Response<pb::MoveLeaderResponse>, Status> {
        let caller = Caller::of(&request);
        let target = NodeId(request.into_inner().target_id);
        // The caller first (etcd 3.4.42 checks it before anything else); the member checks it
        // again when the transfer starts.
        self.check_caller(&caller, true)
            .await
            .map_err(|error| crate::convert::status(&error))?;
        // etcd refuses a transferee outside the membership before it touches raft.
        if !self.members().iter().any(|member| member.id == target.0) {
            return Err(Status::failed_precondition(
                "etcdserver: bad leader transferee",
            ));
        }
        match self.call(&caller, Request::MoveLeader { target }).await? {
            Response::MoveLeaderStarted { header } => {
                Ok(tonic::Response::new(pb::MoveLeaderResponse {
                    header: crate::convert::header(&header),
                }))
            }
            other => Err(Status::internal(format!(
                "etcdserver: unexpected answer {other:?}"
            ))),
        }
    }
}
