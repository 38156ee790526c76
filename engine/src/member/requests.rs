//! Client requests on their way in: validation at the gateway, proposals for writes, read-index
//! barriers for linearizable reads, local answers for what needs no consensus, and the leader's
//! own duties (lease expiry and checkpoints). Applying committed entries is `apply.rs`'s job.

use super::proposal::{Command, Proposal, ProposalId};
use super::{Member, PendingKeepAlive, PendingRead, PendingWrite};
use crate::auth::{Access, AuthInfo, Credentials, KeyRange};
use crate::kv::WatchResponse;
use crate::kv::{PutRequest, RangeRequest, Request, RequestError, RequestOp, Response, TxnRequest};
use crate::raft::ProposeError;
use crate::types::{Instant, LogIndex, RequestId};

/// Most leases revoked or checkpointed per step, so a mass expiry cannot flood the log at once.
const LEASE_DUTIES_PER_STEP_MAX: usize = 64;

impl Member {
    pub(super) fn on_request(
        &mut self,
        id: RequestId,
        request: Request,
        credentials: Option<Credentials>,
    ) {
        if let Err(error) = self.validate(&request) {
            self.out.reply.push((id, Err(error)));
            return;
        }
        let auth = match self.authorize_request(&request, credentials) {
            Ok(auth) => auth,
            Err(error) => {
                self.out.reply.push((id, Err(error)));
                return;
            }
        };
        let pending_count = self.pending_writes.len() + self.pending_reads.len();
        let needs_slot = matches!(
            request,
            Request::Range(_)
                | Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compact(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke { .. }
        );
        if needs_slot && pending_count >= self.config.pending_requests_count_max as usize {
            self.out
                .reply
                .push((id, Err(RequestError::TooManyRequests)));
            return;
        }
        match request {
            Request::Range(range) if range.serializable => {
                let result = self.serve_range(&range, auth.as_ref());
                self.out.reply.push((id, result));
            }
            Request::Range(range) => self.start_read(id, Request::Range(range), auth),
            // Zoo (etcd #15247): a deposed leader whose lessor still runs its clocks renews
            // from them at once, without a read barrier that would show it is not the leader.
            keepalive @ Request::LeaseKeepAlive { .. }
                if crate::bug!(LeaseRenewByNonLeader)
                    && !self.was_leader
                    && self.lessor.is_leader() =>
            {
                self.answer_locally(id, keepalive);
            }
            Request::LeaseKeepAlive { .. } | Request::LeaseTimeToLive(_) if !self.was_leader => {
                let hint = self.leader_hint();
                self.out
                    .reply
                    .push((id, Err(RequestError::NotLeader { leader_hint: hint })));
            }
            query @ (Request::LeaseKeepAlive { .. } | Request::LeaseTimeToLive(_)) => {
                self.start_read(id, query, None);
            }
            Request::Put(put) => self.propose_command(id, self.as_user(auth, Command::Put(put))),
            Request::DeleteRange(delete) => {
                let command = self.as_user(auth, Command::DeleteRange(delete));
                self.propose_command(id, command);
            }
            Request::Txn(txn) => self.propose_command(id, self.as_user(auth, Command::Txn(txn))),
            Request::Auth(request) => self.on_auth_request(id, request, auth),
            Request::Compact(compact) => self.propose_command(id, Command::Compact(compact)),
            Request::LeaseGrant(grant) => {
                // Id 0 is resolved at apply time from the lessor's replicated counter.
                let command = Command::LeaseGrant {
                    id: grant.id,
                    ttl_seconds: grant.ttl_seconds,
                };
                self.propose_command(id, command);
            }
            Request::LeaseRevoke { id: lease } => {
                // A client's revoke is checked against the lease's keys when it applies, even
                // without credentials (etcd's `user_empty` once the lease holds a key); the
                // leader's expiry duty proposes a bare revoke, which nothing refuses.
                let auth = auth.or_else(|| self.anonymous_user());
                let command = self.as_user(auth, Command::LeaseRevoke { id: lease });
                self.propose_command(id, command);
            }
            Request::MemberChange(change) => self.propose_member_change(id, change, &[]),
            Request::MemberChangeWithContext { change, context } => {
                self.propose_member_change(id, change, &context);
            }
            Request::MoveLeader { target } => self.move_leader(id, target),
            other => self.answer_locally(id, other),
        }
    }

    /// Resolves who the request runs as and makes the checks due where it arrives: the root
    /// role for membership changes and leader transfers, read permission for a watch. Auth
    /// requests open to anyone (Authenticate, the status) ignore the credentials, so a stale
    /// token cannot stop a client from logging in again (`AuthRequest::resolves_caller`).
    fn authorize_request(
        &mut self,
        request: &Request,
        credentials: Option<Credentials>,
    ) -> Result<Option<AuthInfo>, RequestError> {
        if let Request::Auth(auth_request) = request {
            if !auth_request.resolves_caller() {
                return Ok(None);
            }
        }
        let auth = self.resolve_credentials(credentials)?;
        match request {
            Request::MemberChange(_)
            | Request::MemberChangeWithContext { .. }
            | Request::MoveLeader { .. } => self.authorize_admin(auth.as_ref())?,
            Request::WatchCreate(create) => {
                let access = Access {
                    read: vec![KeyRange::range(&create.key, &create.range_end)],
                    write: Vec::new(),
                };
                self.authorize_now(auth.as_ref(), &access)?;
            }
            _ => {}
        }
        Ok(auth)
    }

    /// Rejects what can be rejected without consensus: empty keys, oversize requests, txns with
    /// too many operations.
    fn validate(&self, request: &Request) -> Result<(), RequestError> {
        match request {
            Request::Put(put) if put.key.is_empty() => Err(RequestError::EmptyKey),
            Request::Range(range) if range.key.is_empty() => Err(RequestError::EmptyKey),
            Request::DeleteRange(delete) if delete.key.is_empty() => Err(RequestError::EmptyKey),
            Request::Put(put) => {
                check_put_flags(put)?;
                self.check_size(put.key.len() + put.value.len())
            }
            Request::Txn(txn) => {
                check_txn_puts(txn)?;
                let ops_count = txn_ops_count(txn);
                if ops_count > self.config.txn_ops_count_max as usize {
                    return Err(RequestError::TooManyOps {
                        ops_count: ops_count.min(u32::MAX as usize) as u32,
                        ops_count_max: self.config.txn_ops_count_max,
                    });
                }
                self.check_size(txn_size_bytes(txn))
            }
            _ => Ok(()),
        }
    }

    fn check_size(&self, size_bytes: usize) -> Result<(), RequestError> {
        if size_bytes > self.config.request_bytes_max as usize {
            return Err(RequestError::TooLarge {
                size_bytes: size_bytes.min(u32::MAX as usize) as u32,
                size_bytes_max: self.config.request_bytes_max,
            });
        }
        Ok(())
    }

    fn next_proposal_id(&mut self) -> ProposalId {
        self.next_sequence += 1;
        ProposalId {
            origin: self.config.id,
            incarnation: self.incarnation,
            sequence: self.next_sequence,
        }
    }

    pub(super) fn propose_command(&mut self, request: RequestId, command: Command) {
        if crate::bug!(PermissionCheckedOnlyAtRequest) {
            if let Err(error) = self.checked_at_request_only(&command) {
                self.out.reply.push((request, Err(error)));
                return;
            }
        }
        let proposal_id = self.next_proposal_id();
        let bytes = Proposal {
            id: proposal_id,
            command,
        }
        .encode();
        match self.raft.propose(bytes) {
            Ok(()) => {
                let deadline = self.now + self.config.request_timeout;
                let previous = self
                    .pending_writes
                    .insert(proposal_id, PendingWrite { request, deadline });
                assert!(previous.is_none(), "proposal ids are unique");
                self.note_pending_deadline(deadline);
            }
            Err(error) => {
                let error = self.propose_error(error);
                self.out.reply.push((request, Err(error)));
            }
        }
    }

    /// A membership change goes through the log as raft's own entry kind; the answer waits
    /// for this member to apply it (`apply_conf_change`).
    fn propose_member_change(
        &mut self,
        request: RequestId,
        change: crate::raft::ConfChange,
        context: &[u8],
    ) {
        match self.raft.propose_conf_change_with_context(change, context) {
            Ok(()) => self.pending_member_change = Some((request, change)),
            Err(ProposeError::ConfChangeInvalid | ProposeError::ConfChangePending) => {
                self.out
                    .reply
                    .push((request, Err(RequestError::MemberChangeRefused)));
            }
            Err(error) => {
                let error = self.propose_error(error);
                self.out.reply.push((request, Err(error)));
            }
        }
    }

    /// The leader hands leadership to `target`, a voter other than itself; the answer says the
    /// transfer started (proposals are refused until it ends or times out).
    fn move_leader(&mut self, request: RequestId, target: crate::types::NodeId) {
        let result = if self.raft.role() != crate::raft::Role::Leader {
            Err(RequestError::NotLeader {
                leader_hint: self.leader_hint(),
            })
        } else if target == self.config.id || !self.raft.voters().contains(&target) {
            Err(RequestError::MemberChangeRefused)
        } else {
            self.raft.transfer_leadership(target);
            Ok(Response::MoveLeaderStarted {
                header: self.header(),
            })
        };
        self.out.reply.push((request, result));
    }

    /// A proposal of the member's own (lease duties): nobody waits for its answer.
    fn propose_duty(&mut self, command: Command) -> bool {
        let proposal_id = self.next_proposal_id();
        let bytes = Proposal {
            id: proposal_id,
            command,
        }
        .encode();
        self.raft.propose(bytes).is_ok()
    }

    fn propose_error(&self, error: ProposeError) -> RequestError {
        match error {
            ProposeError::TooManyUncommitted => RequestError::TooManyRequests,
            _ => RequestError::NotLeader {
                leader_hint: self.leader_hint(),
            },
        }
    }

    fn start_read(&mut self, request: RequestId, query: Request, auth: Option<AuthInfo>) {
        self.next_read_context += 1;
        let context = self.next_read_context;
        match self.raft.read_index(context) {
            Ok(()) => {
                let deadline = self.now + self.config.request_timeout;
                let read = PendingRead {
                    request,
                    query,
                    deadline,
                    index: None,
                    auth,
                };
                self.pending_reads.insert(context, read);
                self.note_pending_deadline(deadline);
            }
            Err(error) => {
                let error = self.propose_error(error);
                self.out.reply.push((request, Err(error)));
            }
        }
    }

    /// Serves a range, if `auth` may read all of it (checked at serve time, against the auth
    /// store applied by then).
    pub(super) fn serve_range(
        &self,
        range: &RangeRequest,
        auth: Option<&AuthInfo>,
    ) -> Result<Response, RequestError> {
        let access = Access {
            read: vec![KeyRange::range(&range.key, &range.range_end)],
            write: Vec::new(),
        };
        self.authorize_now(auth, &access)?;
        let mut response = self.store.range(range)?;
        response.header = self.header();
        Ok(Response::Range(response))
    }

    /// Serves every linearizable read whose read index has been applied.
    pub(super) fn serve_reads(&mut self) {
        // Runs every step; most steps have no read ready, so skip building the list.
        // Zoo: serving a read once its index is confirmed, without waiting for the apply to
        // reach it, answers from a state older than the read (a lagging follower's, say).
        let applied_index = if crate::bug!(ReadBeforeApply) {
            LogIndex(u64::MAX)
        } else {
            self.applied.index
        };
        // Nothing confirmed, or the apply has not reached the lowest confirmed index yet.
        if self
            .read_index_lowest
            .is_none_or(|lowest| applied_index < lowest)
        {
            return;
        }
        let is_ready = |read: &PendingRead| read.index.is_some_and(|index| index <= applied_index);
        if !self.pending_reads.values().any(is_ready) {
            self.read_index_lowest = self.lowest_read_index();
            return;
        }
        let ready: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, read)| is_ready(read))
            .map(|(context, _)| *context)
            .collect();
        for context in ready {
            let read = self.pending_reads.remove(&context).expect("listed above");
            match read.query {
                Request::Range(range) => {
                    let result = self.serve_range(&range, read.auth.as_ref());
                    self.out.reply.push((read.request, result));
                }
                other => self.answer_locally(read.request, other),
            }
        }
        self.read_index_lowest = self.lowest_read_index();
    }

    /// The lowest confirmed read index of any pending read, by a full look.
    fn lowest_read_index(&self) -> Option<LogIndex> {
        self.pending_reads
            .values()
            .filter_map(|read| read.index)
            .min()
    }

    /// Answers requests that need no log entry: keep-alives and TTL queries (after their read
    /// barrier), the lease list, and watch management.
    fn answer_locally(&mut self, id: RequestId, request: Request) {
        let header = self.header();
        let hint = self.leader_hint();
        let with_hint = |error: RequestError| match error {
            RequestError::NotLeader { .. } => RequestError::NotLeader { leader_hint: hint },
            other => other,
        };
        let result = match request {
            Request::LeaseKeepAlive { id: lease } => match self.lessor.renew(lease, self.now) {
                Ok(renewal) if renewal.checkpoint_reset_required => {
                    // A checkpointed lease must have its checkpoint cleared through raft before
                    // the renewal is promised, or a new leader would restart it from the old
                    // checkpoint and cut it short (etcd's Renew does the same).
                    let command = Command::LeaseKeepAliveReset {
                        id: lease,
                        ttl_seconds: renewal.ttl_seconds,
                    };
                    self.propose_command(id, command);
                    return;
                }
                Err(RequestError::LeaseNotFound { .. })
                    if self.lessor.exists(lease)
                        && self.pending_keepalives.len()
                            < self.config.pending_requests_count_max as usize =>
                {
                    let deadline = self.now + self.config.request_timeout;
                    self.pending_keepalives.push(PendingKeepAlive {
                        request: id,
                        lease,
                        deadline,
                    });
                    return;
                }
                Ok(renewal) => Ok(Response::LeaseKeepAlive {
                    header,
                    id: lease,
                    ttl_seconds: renewal.ttl_seconds,
                }),
                Err(error) => Err(with_hint(error)),
            },
            Request::LeaseTimeToLive(query) => self
                .lessor
                .time_to_live(query.id, self.now, query.keys)
                .map(|info| Response::LeaseTimeToLive {
                    header,
                    id: query.id,
                    ttl_seconds: info.ttl_seconds,
                    granted_ttl_seconds: info.granted_ttl_seconds,
                    keys: info.keys,
                })
                .map_err(with_hint),
            Request::LeaseLeases => Ok(Response::LeaseLeases {
                header,
                leases: self.lessor.leases(),
            }),
            Request::WatchCreate(create) => match self.watches.create(create, &self.store) {
                Ok(watch_id) => {
                    let created = self.watches.created_response(watch_id);
                    self.out.notify.push(created);
                    Ok(Response::WatchCreated { header, watch_id })
                }
                Err(error) => Err(error),
            },
            Request::WatchCancel { watch_id } => match self.watches.cancel(watch_id) {
                Ok(()) => {
                    // The stream learns of the end too, as etcd's canceled response.
                    self.out.notify.push(WatchResponse {
                        header: header.clone(),
                        watch_id,
                        canceled: true,
                        cancel_reason: String::from("canceled by the client"),
                        ..WatchResponse::default()
                    });
                    Ok(Response::WatchCanceled { header, watch_id })
                }
                Err(error) => Err(error),
            },
            Request::WatchProgress => {
                self.watches.request_progress(&mut self.out.notify);
                Ok(Response::WatchProgressRequested { header })
            }
            other => unreachable!("request {other:?} is proposed, not answered locally"),
        };
        self.out.reply.push((id, result));
    }

    /// The leader's periodic duties: revoke expired leases and checkpoint remaining TTLs, both
    /// through raft so every member applies them at the same point in the log. Returns false
    /// when it proposed nothing (raft then has no new output to drain).
    pub(super) fn leader_duties(&mut self) -> bool {
        if !self.runs_lease_duties() {
            return false;
        }
        // Both duties below are due only once the lessor's earliest deadline has passed.
        if self
            .lessor
            .next_deadline()
            .is_none_or(|deadline| self.now < deadline)
        {
            return false;
        }
        for lease in self.lessor.expired(self.now, LEASE_DUTIES_PER_STEP_MAX) {
            if !self.propose_duty(Command::LeaseRevoke { id: lease }) {
                break;
            }
            crate::marks::hit(crate::marks::Mark::LeaseRevokedByExpiry);
        }
        let remaining = self
            .lessor
            .checkpoints_due(self.now, LEASE_DUTIES_PER_STEP_MAX);
        if !remaining.is_empty() {
            let _accepted = self.propose_duty(Command::LeaseCheckpoint { remaining });
        }
        true
    }

    /// Whether this member acts on its lease deadlines: the leader does, and nobody else.
    pub(super) fn runs_lease_duties(&self) -> bool {
        // Zoo (etcd #12528): a member that is not the leader but still runs lease clocks
        // expires leases on them, though the keep-alives went to the real leader.
        let expires_as_non_leader = crate::bug!(LeaseExpiryByNonLeader) && self.lessor.is_leader();
        self.was_leader || expires_as_non_leader
    }

    /// Feeds watchers that fell behind from MVCC history, and due progress notifications.
    pub(super) fn feed_watches(&mut self) {
        let _still_lagging = self.watches.catch_up(
            &self.store,
            &mut self.out.notify,
            self.config.watch_catch_up_events_per_step_max,
        );
        self.watches.progress_due(self.now, &mut self.out.notify);
    }

    /// Answers keep-alives that waited for an expired lease's revoke: "not found" once it
    /// applied; "not leader" (the keep-alive did nothing) if leadership or time ran out first.
    pub(super) fn settle_keepalives(&mut self) {
        if self.pending_keepalives.is_empty() {
            return;
        }
        let hint = self.leader_hint();
        let waiting = core::mem::take(&mut self.pending_keepalives);
        for keepalive in waiting {
            let result = if !self.lessor.exists(keepalive.lease) {
                Err(RequestError::LeaseNotFound {
                    lease: keepalive.lease,
                })
            } else if !self.was_leader || keepalive.deadline <= self.now {
                Err(RequestError::NotLeader { leader_hint: hint })
            } else {
                self.pending_keepalives.push(keepalive);
                continue;
            };
            self.out.reply.push((keepalive.request, result));
        }
    }

    /// Answers requests that waited too long. A write's outcome is then unknown (its entry may
    /// still commit), so it gets the indefinite `LeaderChanged`; a read never took effect.
    pub(super) fn expire_pending(&mut self) {
        // Runs every step: answer and drop in one pass each (key order, as the replies were
        // always ordered), without listing the expired ids first; nothing waiting, no pass.
        if self.pending_writes.is_empty() && self.pending_reads.is_empty() {
            return;
        }
        let now = self.now;
        // Most steps come before the earliest deadline: no look at the maps at all.
        if self
            .pending_deadline_earliest
            .is_some_and(|earliest| now < earliest)
        {
            return;
        }
        // A read-only look first: many steps expire nothing, and a retain pass costs more.
        let any_expired = self
            .pending_writes
            .values()
            .any(|write| write.deadline <= now)
            || self.pending_reads.values().any(|read| read.deadline <= now);
        if !any_expired {
            self.pending_deadline_earliest = self.earliest_pending_deadline();
            return;
        }
        let reply = &mut self.out.reply;
        self.pending_writes.retain(|_, write| {
            let expired = write.deadline <= now;
            if expired {
                reply.push((write.request, Err(RequestError::LeaderChanged)));
            }
            !expired
        });
        let hint = self.leader_hint();
        let reply = &mut self.out.reply;
        self.pending_reads.retain(|_, read| {
            let expired = read.deadline <= now;
            if expired {
                reply.push((
                    read.request,
                    Err(RequestError::NotLeader { leader_hint: hint }),
                ));
            }
            !expired
        });
        self.pending_deadline_earliest = self.earliest_pending_deadline();
    }

    /// Keeps `pending_deadline_earliest` at or before a newly added deadline.
    fn note_pending_deadline(&mut self, deadline: Instant) {
        let earliest = self
            .pending_deadline_earliest
            .map_or(deadline, |earliest| earliest.min(deadline));
        self.pending_deadline_earliest = Some(earliest);
    }

    /// The earliest deadline of any pending write or read, by a full look.
    fn earliest_pending_deadline(&self) -> Option<Instant> {
        let writes = self.pending_writes.values().map(|write| write.deadline);
        let reads = self.pending_reads.values().map(|read| read.deadline);
        writes.chain(reads).min()
    }
}

/// etcd's gateway rules for a put: `ignore_value` forbids a value, `ignore_lease` a lease.
fn check_put_flags(put: &PutRequest) -> Result<(), RequestError> {
    if put.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    if put.ignore_value && !put.value.is_empty() {
        return Err(RequestError::ValueProvided);
    }
    if put.ignore_lease && put.lease.0 != 0 {
        return Err(RequestError::LeaseProvided);
    }
    Ok(())
}

/// The put rules for every put in a txn, nested ones included (etcd checks both branches).
fn check_txn_puts(txn: &TxnRequest) -> Result<(), RequestError> {
    for op in txn.success.iter().chain(txn.failure.iter()) {
        match op {
            RequestOp::Put(put) => check_put_flags(put)?,
            RequestOp::Txn(inner) => check_txn_puts(inner)?,
            RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
        }
    }
    Ok(())
}

fn txn_ops_count(txn: &TxnRequest) -> usize {
    let nested = |ops: &[RequestOp]| -> usize {
        ops.iter()
            .map(|op| match op {
                RequestOp::Txn(inner) => 1 + txn_ops_count(inner),
                _ => 1,
            })
            .sum()
    };
    txn.compare.len() + nested(&txn.success) + nested(&txn.failure)
}

fn txn_size_bytes(txn: &TxnRequest) -> usize {
    let op_size = |op: &RequestOp| -> usize {
        match op {
            RequestOp::Range(range) => range.key.len() + range.range_end.len(),
            RequestOp::Put(put) => put.key.len() + put.value.len(),
            RequestOp::DeleteRange(delete) => delete.key.len() + delete.range_end.len(),
            RequestOp::Txn(inner) => txn_size_bytes(inner),
        }
    };
    let compares: usize = txn
        .compare
        .iter()
        .map(|compare| compare.key.len() + 16)
        .sum();
    compares
        + txn.success.iter().map(op_size).sum::<usize>()
        + txn.failure.iter().map(op_size).sum::<usize>()
}
