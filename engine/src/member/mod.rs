//! The member: owns raft, the WAL, MVCC, leases and watches; turns client requests into
//! proposals and applied entries into responses. The one entry point for hosts is
//! [`Member::step`]; [`Member::new`] recovers a member from the bytes its disk held.
//!
//! It performs no I/O itself: disk work leaves as `Actions::disk`, messages as `Actions::send`.
//! It never acts on state that is not yet durable: raft holds back votes and acknowledgements
//! until the WAL sync that records them is reported done (`Input::DiskDone`).

mod apply;
mod auth;
mod config;
mod dedupe;
mod proposal;
mod recovery;
mod requests;
mod storage;

pub use crate::raft::DurableFacts;
pub use config::MemberConfig;
pub use recovery::{RecoveryError, RecoveryReport};

use std::collections::BTreeMap;

use crate::api::{Actions, DiskImage, Envelope, HaltReason, Input, Observation};
use crate::kv::{Request, RequestError, ResponseHeader};
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::raft::{ConfState, Raft, Role};
use crate::types::{Instant, LogIndex, NodeId, RequestId, Term};
use crate::watch::WatchHub;

use proposal::ProposalId;
use storage::Storage;

/// Most raft ready rounds drained in one step; raft settles in two or three, so more means a
/// livelock bug, not work.
const READY_ROUNDS_MAX: usize = 64;

/// A client write waiting for its entry to apply.
#[derive(Debug)]
struct PendingWrite {
    request: RequestId,
    deadline: Instant,
}

/// A request behind a read barrier: a linearizable range, or a leader-local lease request (a
/// keep-alive or TTL query must come from a leader confirmed by a quorum that has applied what
/// was committed before it, or a deposed or new leader could answer from stale lease state).
/// It waits for its read index, then for the apply to reach it.
#[derive(Debug)]
struct PendingRead {
    request: RequestId,
    query: Request,
    deadline: Instant,
    /// Set once raft confirmed the read index.
    index: Option<LogIndex>,
    /// Who the read runs as, checked when it is served (auth enabled only).
    auth: Option<crate::auth::AuthInfo>,
}

/// A keep-alive for a lease whose time ran out on this leader but whose revoke has not applied:
/// answering "not found" before the revoke applies could be contradicted if leadership moves
/// and the next leader extends the lease (etcd's Renew waits likewise).
#[derive(Debug)]
struct PendingKeepAlive {
    request: RequestId,
    lease: crate::types::LeaseId,
    deadline: Instant,
}

/// What the member has applied.
#[derive(Debug, Clone)]
struct AppliedState {
    /// Invariant: index <= raft's commit index.
    index: LogIndex,
    term: Term,
    conf: ConfState,
    /// The host's context per member, from the changes that carried one (replicated state,
    /// kept in snapshots). Invariant: only members of `conf`, and no empty value.
    contexts: BTreeMap<NodeId, Vec<u8>>,
    /// The index of the newest snapshot taken or installed.
    snapshot_index: LogIndex,
}

/// One etcd member as a pure state machine.
pub struct Member {
    config: MemberConfig,
    raft: Raft,
    store: Store,
    lessor: Lessor,
    /// Replicated: users, roles, permissions, the auth revision.
    auth: crate::auth::AuthStore,
    /// Member-local: the tokens issued by applied `Authenticate` entries, on this member's clock.
    tokens: crate::auth::token::Tokens,
    watches: WatchHub,
    storage: Storage,
    /// Distinguishes this incarnation's proposals from those of earlier ones.
    incarnation: u64,
    next_sequence: u64,
    next_read_context: u64,
    /// Invariant: never decreases; the member's view of time even if the host's clock jumps back.
    now: Instant,
    next_tick_at: Option<Instant>,
    was_leader: bool,
    applied: AppliedState,
    /// Replicated: which proposals were applied, so a duplicate in the log is skipped.
    applied_proposals: dedupe::AppliedProposals,
    pending_writes: BTreeMap<ProposalId, PendingWrite>,
    pending_reads: BTreeMap<u64, PendingRead>,
    /// Invariant: at or before the earliest deadline in `pending_writes` and `pending_reads`
    /// (None when both are empty or it must be recomputed). Removals leave it early, which
    /// only costs one look; it lets `expire_pending` skip the maps on most steps.
    pending_deadline_earliest: Option<Instant>,
    /// Invariant: at or below the lowest confirmed read index in `pending_reads` (None when no
    /// read is confirmed or it must be recomputed), so `serve_reads` skips the map until the
    /// apply reaches it.
    read_index_lowest: Option<LogIndex>,
    /// Invariant: at most `pending_requests_count_max` entries.
    pending_keepalives: Vec<PendingKeepAlive>,
    /// The membership change a client waits for: answered when this member applies it. One
    /// at a time, as raft allows one pending change; a newer request replaces it (the older
    /// client has timed out).
    pending_member_change: Option<(RequestId, crate::raft::ConfChange)>,
    halted: Option<HaltReason>,
    /// The member's buggify points (snapshot now, apply deferred); off outside simulation.
    buggify: crate::buggify::Buggify,
    /// Actions accumulated during the current step (and recovery repairs before the first).
    out: Actions,
}

impl core::fmt::Debug for Member {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter
            .debug_struct("Member")
            .field("id", &self.config.id)
            .field("applied_index", &self.applied.index)
            .field("halted", &self.halted)
            .finish_non_exhaustive()
    }
}

/// A summary of a member's state for hosts and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member.
    pub id: NodeId,
    /// Its raft term.
    pub term: Term,
    /// The leader it believes in.
    pub leader: Option<NodeId>,
    /// Whether it is the leader.
    pub is_leader: bool,
    /// Raft's commit index.
    pub commit_index: LogIndex,
    /// The applied index.
    pub applied_index: LogIndex,
    /// The MVCC revision.
    pub revision: crate::types::Revision,
    /// Requests waiting for an answer.
    pub pending_requests_count: usize,
    /// Why it halted, if it did.
    pub halted: Option<HaltReason>,
}

impl Member {
    /// Starts a member from what its disk held. An empty image starts a new member of the
    /// configured voters; otherwise the newest valid snapshot plus the WAL are replayed. A torn
    /// WAL tail is repaired (the repair's disk operations come out with the first step's
    /// actions) and reported; corruption in the middle refuses to start, naming file and offset.
    pub fn new(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Member, RecoveryReport), RecoveryError> {
        let _bugs = crate::zoo::activate(config.bugs);
        recovery::recover(config, image)
    }

    /// Starts a member as [`Member::new`] does and hands out its initial actions: the
    /// `Input::Timer` kick at `now` that every host owes a member right after a start (without
    /// it the WAL repairs queued at recovery, the first timer and any catch-up never leave).
    /// Exactly `Member::new` followed by `step(now, Input::Timer)`.
    pub fn start(
        config: MemberConfig,
        image: DiskImage,
        now: Instant,
    ) -> Result<(Member, RecoveryReport, Actions), RecoveryError> {
        let (mut member, report) = Member::new(config, image)?;
        let actions = member.step(now, Input::Timer);
        Ok((member, report, actions))
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// A summary of the member's state.
    pub fn status(&self) -> MemberStatus {
        let raft = self.raft.status();
        MemberStatus {
            id: self.config.id,
            term: raft.term,
            leader: (raft.leader.0 != 0).then_some(raft.leader),
            is_leader: raft.role == Role::Leader,
            commit_index: raft.commit_index,
            applied_index: self.applied.index,
            revision: self.store.revision(),
            pending_requests_count: self.pending_writes.len()
                + self.pending_reads.len()
                + self.pending_keepalives.len(),
            halted: self.halted.clone(),
        }
    }

    /// The applied membership (voters and learners).
    pub fn applied_conf(&self) -> &ConfState {
        &self.applied.conf
    }

    /// The host's context for each member whose change carried one
    /// (`Request::MemberChangeWithContext`), as of the applied index. A host compares it
    /// after a step to learn members added or updated at run time.
    pub fn member_contexts(&self) -> &BTreeMap<NodeId, Vec<u8>> {
        &self.applied.contexts
    }

    /// What raft holds as durable here: the hard state's term and vote, the last log index and
    /// its term, and the highest index the host has reported synced. Cheap (no copies): hosts
    /// read it at every acknowledgement they carry out and after every restart, to check that
    /// nothing acknowledged as durable was lost (`checkers::trace`).
    pub fn durable_facts(&self) -> DurableFacts {
        self.raft.durable_facts()
    }

    /// The auth store, read-only, for hosts and tests that inspect the applied auth state.
    pub fn auth_store(&self) -> &crate::auth::AuthStore {
        &self.auth
    }

    /// The MVCC store, read-only, for hosts that inspect state after a run (durability checks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The raft log as (index, term, payload digest) from the first retained entry, and raft's
    /// commit index: a read-only sample for hosts that check log matching and leader
    /// completeness. The digest is the one `Observation::Applied` reports for the same entry.
    pub fn raft_log_sample(&self) -> (Vec<(LogIndex, Term, u64)>, LogIndex) {
        let entries = self
            .raft
            .log_entries()
            .iter()
            .map(|entry| (entry.index, entry.term, proposal::digest(&entry.data)))
            .collect();
        (entries, self.raft.status().commit_index)
    }

    /// Feeds one input at logical time `now` and returns what the host must do.
    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut out = Actions::default();
        self.step_into(now, input, &mut out);
        out
    }

    /// Like `step`, but writes the actions into `out`, which must arrive empty (a host drains
    /// the previous step's actions and hands the same value back). The member keeps `out`'s
    /// emptied buffers for its next step, so a host that reuses one `Actions` stops paying for
    /// regrowing and freeing its Vecs on every step.
    pub fn step_into(&mut self, now: Instant, input: Input, out: &mut Actions) {
        let _bugs = self.begin_step(now, out);
        if self.halted.is_some() {
            return self.step_halted(input, out);
        }
        match input {
            Input::Timer => {}
            Input::Receive { from, message } => {
                assert_ne!(from, self.config.id, "a member never messages itself");
                self.raft.step(message);
            }
            Input::Request { id, request } => self.on_request(id, request, None),
            Input::RequestAs {
                id,
                request,
                credentials,
            } => self.on_request(id, request, Some(credentials)),
            Input::DiskDone { op, result } => self.on_disk_done(op, result),
            Input::WatchBackpressure { watch_id, slow } => {
                // A watch that ended meanwhile has nothing to pause or resume.
                let _known = if slow {
                    self.watches.pause(watch_id)
                } else {
                    self.watches.resume(watch_id, &mut self.out.notify)
                };
            }
        }
        if self.halted.is_none() {
            self.after_inputs();
        }
        self.finish_step(out);
    }

    /// Like `step_into` fed each request in turn, but as one step: every request is taken
    /// (proposed, or answered at once) before raft's output is drained. Why: requests that
    /// queued together become one persist batch (one WAL write, one sync) and one append per
    /// follower, instead of one of each per request, as etcd's raft loop batches the
    /// proposals that arrive between two `Ready`s. Only requests are batched: a peer message
    /// or a disk completion may change the role or the commit, which the member mirrors
    /// after each drain.
    pub fn step_requests_into<I>(&mut self, now: Instant, requests: I, out: &mut Actions)
    where
        I: IntoIterator<Item = (RequestId, Request, Option<crate::auth::Credentials>)>,
    {
        let _bugs = self.begin_step(now, out);
        for (id, request, credentials) in requests {
            if self.halted.is_some() {
                self.out.reply.push((id, Err(RequestError::Stopping)));
            } else {
                self.on_request(id, request, credentials);
            }
        }
        if self.halted.is_none() {
            self.after_inputs();
        }
        self.finish_step(out);
    }

    /// What every step does before its inputs: checks `out` arrived empty, switches on the
    /// configured zoo bugs for the step (the guard switches them off) and moves the clock.
    fn begin_step(&mut self, now: Instant, out: &Actions) -> crate::zoo::ActiveGuard {
        assert!(out.is_empty(), "a step needs an emptied Actions");
        let bugs = crate::zoo::activate(self.config.bugs);
        if self.now < now {
            self.now = now;
        }
        bugs
    }

    /// What every step does once its inputs were taken: ticks, raft's output drained, then
    /// the duties that read the state it left.
    fn after_inputs(&mut self) {
        // Buggify: this step applies nothing (committed entries wait for the next step),
        // so replies, reads and watches meet an apply that lags the commit.
        if self.buggify.is_on() {
            let defer = self.buggify.fires(crate::buggify::Point::ApplyDeferred);
            self.raft.hold_apply(defer);
        }
        self.advance_ticks();
        self.drain_raft();
        // The first drain leaves raft with no output; only a duty proposal makes more.
        if self.leader_duties() {
            self.drain_raft();
        }
        self.serve_reads();
        self.settle_keepalives();
        self.feed_watches();
        self.expire_pending();
    }

    /// A halted member answers nothing but `Stopping` and repeats why it halted.
    fn step_halted(&mut self, input: Input, actions: &mut Actions) {
        // The swap leaves the host's emptied buffers in `self.out` for the next step.
        core::mem::swap(actions, &mut self.out);
        if let Input::Request { id, .. } | Input::RequestAs { id, .. } = input {
            actions.reply.push((id, Err(RequestError::Stopping)));
        }
        actions.halt = self.halted.clone();
        actions.wake_at = None;
    }

    fn finish_step(&mut self, actions: &mut Actions) {
        // The swap leaves the host's emptied buffers in `self.out` for the next step.
        core::mem::swap(actions, &mut self.out);
        actions.halt = self.halted.clone();
        actions.wake_at = if self.halted.is_some() {
            None
        } else {
            Some(self.next_wake())
        };
        let header = self.header();
        for response in &mut actions.notify {
            response.header.cluster_id = header.cluster_id;
            response.header.member_id = header.member_id;
            response.header.raft_term = header.raft_term;
        }
    }

    fn next_wake(&self) -> Instant {
        let tick = self
            .next_tick_at
            .unwrap_or(self.now + self.config.tick_interval);
        let mut wake = tick;
        // Lease deadlines wake only a member that acts on them: a past deadline nobody
        // consumes would wake the member at once, forever.
        if let Some(deadline) = self
            .lessor
            .next_deadline()
            .filter(|_| self.runs_lease_duties())
        {
            wake = wake.min(deadline);
        }
        if let Some(deadline) = self.watches.next_deadline() {
            wake = wake.min(deadline);
        }
        wake.max(self.now)
    }

    /// Runs the raft ticks that logical time has reached, at most `ticks_per_step_max`.
    fn advance_ticks(&mut self) {
        let interval = self.config.tick_interval;
        let mut next = self.next_tick_at.unwrap_or(self.now + interval);
        let mut ticks_count = 0;
        while next <= self.now && ticks_count < self.config.ticks_per_step_max {
            self.raft.tick();
            next = next + interval;
            ticks_count += 1;
        }
        if next <= self.now {
            // A long pause: the skipped ticks are lost, as a paused process's timers are.
            next = self.now + interval;
        }
        self.next_tick_at = Some(next);
    }

    /// Takes every raft output batch and carries it out: persist, send, apply, read states.
    fn drain_raft(&mut self) {
        let mut rounds = 0;
        while self.halted.is_none() && self.raft.has_ready() {
            rounds += 1;
            assert!(
                rounds <= READY_ROUNDS_MAX,
                "raft keeps producing output: livelock"
            );
            let mut ready = self.raft.ready();
            if let Some(batch) = ready.persist {
                self.storage.persist(batch, &mut self.out.disk);
            }
            self.out.send.reserve(ready.messages.len());
            for message in ready.messages.drain(..) {
                assert_ne!(message.to, self.config.id);
                self.out.send.push(Envelope {
                    to: message.to,
                    message,
                });
            }
            self.raft.recycle_messages(ready.messages);
            if let Some(snapshot) = ready.apply_snapshot {
                self.install_snapshot(snapshot);
            }
            for entry in ready.committed {
                self.apply_entry(entry);
                if self.halted.is_some() {
                    return;
                }
            }
            for read_state in ready.read_states {
                if let Some(read) = self.pending_reads.get_mut(&read_state.context) {
                    read.index = Some(read_state.index);
                    let lowest = self
                        .read_index_lowest
                        .map_or(read_state.index, |lowest| lowest.min(read_state.index));
                    self.read_index_lowest = Some(lowest);
                }
            }
            self.notice_role_change();
        }
    }

    fn notice_role_change(&mut self) {
        // Called after every ready round: cheap getters, not `status()`, which copies the
        // membership.
        let is_leader = self.raft.role() == Role::Leader;
        if is_leader && !self.was_leader {
            self.lessor.promote(self.now, self.config.lease_grace);
            let term = self.raft.term();
            self.out.observe.push(Observation::BecameLeader { term });
        } else if !is_leader && self.was_leader {
            // Zoo: etcd demotes its lessor from the raft loop; with either lease bug here a
            // deposed leader's lessor stays primary (as a late demotion leaves it), which is
            // what lets it renew (#15247) or expire (#12528) leases it no longer owns.
            let late_demotion =
                crate::bug!(LeaseRenewByNonLeader) || crate::bug!(LeaseExpiryByNonLeader);
            if !late_demotion {
                self.lessor.demote();
            }
        }
        self.was_leader = is_leader;
    }

    /// The response header as of now.
    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.config.cluster_id,
            member_id: self.config.id,
            revision: self.store.revision(),
            raft_term: self.raft.term(),
        }
    }

    fn leader_hint(&self) -> Option<NodeId> {
        let leader = self.raft.leader();
        (leader.0 != 0).then_some(leader)
    }

    pub(super) fn halt(&mut self, reason: HaltReason) {
        if self.halted.is_none() {
            self.halted = Some(reason);
        }
    }
}

/// The MVCC store is the history that watchers catch up from.
impl crate::watch::EventSource for Store {
    fn current_revision(&self) -> crate::types::Revision {
        self.revision()
    }

    fn compacted_revision(&self) -> crate::types::Revision {
        Store::compacted_revision(self)
    }

    fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: crate::types::Revision,
        to_inclusive: crate::types::Revision,
        events_count_max: usize,
    ) -> Result<Vec<crate::kv::Event>, RequestError> {
        Store::events(self, key, range_end, from, to_inclusive, events_count_max)
    }
}
