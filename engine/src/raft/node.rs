//! The [`Raft`] state machine: its state, its public entry points, the step dispatcher, and the
//! persistence contract (building [`PersistBatch`]es and holding back messages until their batch
//! is durable).
//!
//! Elections live in `election.rs`, replication in `replication.rs`, read-index in `read.rs`.
//! Nothing here performs I/O.

use std::collections::{BTreeMap, VecDeque};

use crate::raft::conf::{conf_apply, conf_change_valid, conf_contains};
use crate::raft::log::RaftLog;
use crate::raft::progress::{PeerProgress, Progress};
use crate::raft::read::ReadQueue;
use crate::raft::{
    decode_conf_change, encode_conf_change, ConfChange, ConfState, Config, DurableFacts, Entry,
    EntryKind, HardState, Message, MessageBody, PersistBatch, PersistId, ProposeError, Ready,
    Restored, Role, Snapshot, SnapshotMeta, Status, HELD_MESSAGES_COUNT_MAX,
};
use crate::rng::Rng;
use crate::types::{LogIndex, NodeId, Term};

/// What one issued persist batch wrote, to learn what became durable when it is reported.
#[derive(Clone, Debug)]
pub(super) struct BatchRecord {
    pub(super) id: PersistId,
    pub(super) last_entry: Option<(LogIndex, Term)>,
    pub(super) snapshot: Option<(LogIndex, Term)>,
}

/// Mixed into the member's seed for raft's buggify generator ("buggraft").
const BUGGIFY_SALT: u64 = 0x6275_6767_7261_6674;

/// One raft member. See the module documentation of `raft` for the contract.
#[derive(Debug)]
pub struct Raft {
    pub(super) config: Config,
    pub(super) rng: Rng,
    pub(super) role: Role,
    /// Invariant: only grows.
    pub(super) term: Term,
    pub(super) vote: NodeId,
    /// The known leader of `term` (0: none).
    pub(super) leader: NodeId,
    pub(super) log: RaftLog,
    /// Membership as of the applied index.
    pub(super) conf: ConfState,
    /// Leader only: one entry per voter and learner, including this member.
    pub(super) progress: PeerProgress,
    /// (Pre-)candidate only: the answers received so far.
    pub(super) votes: BTreeMap<NodeId, bool>,
    pub(super) election_elapsed_ticks: u32,
    pub(super) heartbeat_elapsed_ticks: u32,
    /// Drawn from `[t, 2t)` at each reset.
    pub(super) randomized_election_timeout_ticks: u32,
    /// Leader only: a leadership transfer in progress, and how long it has run.
    pub(super) transfer_target: Option<NodeId>,
    pub(super) transfer_elapsed_ticks: u32,
    /// Leader only: the index of the last membership change proposed (or of its first entry).
    pub(super) pending_conf_index: LogIndex,
    pub(super) reads: ReadQueue,
    pub(super) outbox: Vec<Message>,
    /// Messages waiting for the batch with that id to be durable. Gate ids never decrease.
    pub(super) held: VecDeque<(PersistId, Message)>,
    /// The hard state as last handed to a batch.
    pub(super) batched_hard_state: HardState,
    pub(super) next_persist_id: PersistId,
    pub(super) persisted_id: PersistId,
    pub(super) batches_in_flight: VecDeque<BatchRecord>,
    /// A snapshot to hand to the next batch.
    pub(super) unbatched_snapshot: Option<Snapshot>,
    /// A received snapshot to hand out for apply once the batch holding it is durable.
    pub(super) snapshot_to_apply: Option<(PersistId, Snapshot)>,
    pub(super) snapshot_ready_to_apply: Option<Snapshot>,
    /// Leader only: entries were appended since the last broadcast.
    pub(super) append_broadcast_pending: bool,
    /// Set by the host for one step: committed entries stay with raft until it is cleared.
    pub(super) apply_held: bool,
    /// Raft's buggify points (tiny appends, skipped heartbeats); off outside simulation.
    pub(super) buggify: crate::buggify::Buggify,
    /// The highest index any synced batch wrote (an entry or a snapshot), whether or not it is
    /// still in the log: unlike the log's persisted index, a snapshot or a newer leader replacing
    /// the entry does not take it back. Only for `durable_facts`.
    pub(super) synced_index_max: LogIndex,
}

impl Raft {
    /// A member recovered from `restored` (a fresh disk is `Restored` with default values).
    pub fn new(config: Config, restored: Restored) -> Raft {
        if let Err(reason) = config.validate() {
            panic!("invalid raft config: {reason}");
        }
        let snapshot_meta = restored.snapshot.clone().unwrap_or(SnapshotMeta {
            index: LogIndex(0),
            term: Term(0),
            conf: restored.conf.clone(),
        });
        let conf = snapshot_meta.conf.clone();
        let log = RaftLog::restored(snapshot_meta, restored.entries, restored.hard_state.commit);
        let mut raft = Raft {
            rng: Rng::new(config.seed),
            // Its own generator, so that buggify draws never shift election jitter.
            buggify: crate::buggify::Buggify::new(config.buggify, config.seed ^ BUGGIFY_SALT),
            config,
            role: Role::Follower,
            term: restored.hard_state.term,
            vote: restored.hard_state.vote,
            leader: NodeId(0),
            log,
            conf,
            progress: PeerProgress::default(),
            votes: BTreeMap::new(),
            election_elapsed_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            randomized_election_timeout_ticks: 0,
            transfer_target: None,
            transfer_elapsed_ticks: 0,
            pending_conf_index: LogIndex(0),
            reads: ReadQueue::default(),
            outbox: Vec::new(),
            held: VecDeque::new(),
            batched_hard_state: HardState::default(),
            next_persist_id: PersistId(1),
            persisted_id: PersistId(0),
            batches_in_flight: VecDeque::new(),
            unbatched_snapshot: None,
            snapshot_to_apply: None,
            snapshot_ready_to_apply: None,
            append_broadcast_pending: false,
            apply_held: false,
            synced_index_max: LogIndex(0),
        };
        raft.synced_index_max = raft.log.last_index();
        raft.batched_hard_state = raft.hard_state();
        raft.reset_election_timer();
        assert!(raft.log.commit_index() <= raft.log.last_index());
        raft
    }

    pub(super) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.commit_index(),
        }
    }

    pub(super) fn id(&self) -> NodeId {
        self.config.id
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                self.election_elapsed_ticks += 1;
                if self.election_elapsed_ticks >= self.randomized_election_timeout_ticks {
                    self.election_elapsed_ticks = 0;
                    self.campaign();
                }
            }
        }
    }

    /// Proposes application data. A follower forwards it to its leader.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), ProposeError> {
        self.propose_entry(EntryKind::Normal, data)
    }

    /// Proposes a membership change. A follower forwards it to its leader.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<(), ProposeError> {
        self.propose_entry(EntryKind::ConfChange, encode_conf_change(&change))
    }

    /// Proposes a membership change carrying the host's opaque context for the member (raft
    /// ignores it; the application keeps it).
    pub fn propose_conf_change_with_context(
        &mut self,
        change: ConfChange,
        context: &[u8],
    ) -> Result<(), ProposeError> {
        let data = crate::raft::encode_conf_change_with_context(&change, context);
        self.propose_entry(EntryKind::ConfChange, data)
    }

    fn propose_entry(&mut self, kind: EntryKind, data: Vec<u8>) -> Result<(), ProposeError> {
        match self.role {
            Role::Leader => self.leader_append(kind, data),
            Role::Follower if self.leader.0 != 0 => {
                let leader = self.leader;
                self.send(leader, MessageBody::ForwardProposal { kind, data });
                Ok(())
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => Err(ProposeError::NoLeader),
        }
    }

    /// A leader appends a proposal of its own or one forwarded to it.
    pub(super) fn leader_append(
        &mut self,
        kind: EntryKind,
        data: Vec<u8>,
    ) -> Result<(), ProposeError> {
        assert_eq!(self.role, Role::Leader);
        if self.transfer_target.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        let uncommitted_count = self.log.last_index().0 - self.log.commit_index().0;
        if uncommitted_count >= self.config.uncommitted_entries_count_max as u64 {
            return Err(ProposeError::TooManyUncommitted);
        }
        if kind == EntryKind::ConfChange {
            // Checked again here because forwarded changes skip the follower-side check.
            let change = decode_conf_change(&data).ok_or(ProposeError::ConfChangeInvalid)?;
            if self.pending_conf_index > self.log.applied_index() {
                return Err(ProposeError::ConfChangePending);
            }
            if !conf_change_valid(&self.conf, change) {
                return Err(ProposeError::ConfChangeInvalid);
            }
            self.pending_conf_index = self.log.last_index().next();
        }
        self.leader_append_unchecked(kind, data);
        Ok(())
    }

    /// Appends an entry of our term and sends it; limits are the caller's business.
    pub(super) fn leader_append_unchecked(&mut self, kind: EntryKind, data: Vec<u8>) {
        assert_eq!(self.role, Role::Leader);
        let entry = Entry {
            term: self.term,
            index: self.log.last_index().next(),
            kind,
            data: data.into(),
        };
        self.log.append_one(entry);
        let last_index = self.log.last_index();
        let own = self
            .progress
            .get_mut(&self.config.id)
            .expect("leader tracks itself");
        own.next_index = last_index.next();
        if crate::bug!(LeaderCountsUnsynced) {
            // etcd #14370: the leader's own match moves on append, not on its sync, so a
            // one-member cluster commits (and applies) what its disk may still lose.
            own.update_match(last_index);
            if self.maybe_commit() {
                self.append_broadcast_pending = true;
            }
        }
        // Sent at the next `ready`, so that a burst of proposals travels in few appends.
        self.append_broadcast_pending = true;
    }

    /// The voters of the membership raft works with now (changes count once applied).
    pub fn voters(&self) -> &[NodeId] {
        &self.conf.voters
    }

    /// Starts leadership transfer to `to` (leader only; otherwise ignored).
    pub fn transfer_leadership(&mut self, to: NodeId) {
        if self.role != Role::Leader || to == self.id() || !self.conf.voters.contains(&to) {
            return;
        }
        if self.transfer_target == Some(to) {
            return;
        }
        self.transfer_target = Some(to);
        self.transfer_elapsed_ticks = 0;
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if caught_up {
            self.send(to, MessageBody::TimeoutNow);
        } else {
            self.send_append(to, true);
        }
    }

    /// Whether [`Raft::ready`] would return something.
    pub fn has_ready(&self) -> bool {
        self.has_unbatched_writes()
            || self.append_broadcast_pending
            || !self.outbox.is_empty()
            || self.snapshot_ready_to_apply.is_some()
            || !self.reads.ready_states_is_empty()
            || (self.snapshot_to_apply.is_none()
                && !self.apply_held
                && self.applicable_index() > self.log.applied_index())
    }

    pub(super) fn has_unbatched_writes(&self) -> bool {
        self.hard_state() != self.batched_hard_state
            || self.log.has_unbatched()
            || self.unbatched_snapshot.is_some()
    }

    /// Takes everything pending: a batch to persist, messages to send, what to apply.
    pub fn ready(&mut self) -> Ready {
        if std::mem::take(&mut self.append_broadcast_pending) && self.role == Role::Leader {
            self.broadcast_append();
        }
        let persist = self
            .has_unbatched_writes()
            .then(|| self.take_persist_batch());
        let apply_snapshot = self.snapshot_ready_to_apply.take();
        let committed = if self.snapshot_to_apply.is_some() || self.apply_held {
            Vec::new()
        } else {
            let through = self.applicable_index();
            self.log.take_committed(through)
        };
        for entry in &committed {
            if entry.kind == EntryKind::ConfChange {
                self.apply_conf_change_entry(entry);
            }
        }
        Ready {
            persist,
            messages: std::mem::take(&mut self.outbox),
            apply_snapshot,
            committed,
            read_states: self.reads.take_ready_states(),
        }
    }

    /// Holds committed entries back from `ready` while `held` (the host defers its apply to a
    /// later step; they stay committed and come out once it is cleared).
    pub fn hold_apply(&mut self, held: bool) {
        self.apply_held = held;
    }

    /// Hands back the emptied message list of a [`Ready`], so the next round's messages reuse
    /// its buffer instead of growing a fresh one message by message.
    pub fn recycle_messages(&mut self, mut spent: Vec<Message>) {
        spent.clear();
        if self.outbox.is_empty() && self.outbox.capacity() < spent.capacity() {
            self.outbox = spent;
        }
    }

    fn take_persist_batch(&mut self) -> PersistBatch {
        let id = self.next_persist_id;
        self.next_persist_id = PersistId(id.0 + 1);
        let hard_state = self.hard_state();
        let hard_state_changed = hard_state != self.batched_hard_state;
        self.batched_hard_state = hard_state;
        let snapshot = self.unbatched_snapshot.take();
        let entries = match &snapshot {
            // A snapshot replaces the whole durable log, so the batch carries every entry after it.
            Some(snapshot) => {
                assert_eq!(
                    snapshot.meta.index,
                    self.log.snapshot_meta().index,
                    "only the latest snapshot is persisted"
                );
                self.log.take_all_after_snapshot()
            }
            None => self.log.take_unbatched(),
        };
        if let Some(first) = entries.first() {
            assert!(snapshot
                .as_ref()
                .is_none_or(|snapshot| first.index == snapshot.meta.index.next()));
        }
        self.batches_in_flight.push_back(BatchRecord {
            id,
            last_entry: entries.last().map(|entry| (entry.index, entry.term)),
            snapshot: snapshot
                .as_ref()
                .map(|snapshot| (snapshot.meta.index, snapshot.meta.term)),
        });
        if let (Some(written), Some((gate, pending))) = (&snapshot, &self.snapshot_to_apply) {
            if written.meta == pending.meta {
                assert_eq!(
                    *gate, id,
                    "a received snapshot is persisted in the batch it was gated on"
                );
            }
        }
        PersistBatch {
            id,
            hard_state: hard_state_changed.then_some(hard_state),
            entries,
            snapshot,
        }
    }

    /// The host made batch `id` and all earlier ones durable.
    pub fn on_persisted(&mut self, id: PersistId) {
        assert!(id < self.next_persist_id, "batch {id} was never issued");
        if id <= self.persisted_id {
            return;
        }
        self.persisted_id = id;
        while self
            .batches_in_flight
            .front()
            .is_some_and(|record| record.id <= id)
        {
            let record = self
                .batches_in_flight
                .pop_front()
                .expect("checked non-empty");
            if let Some((index, term)) = record.snapshot {
                self.log.persisted_to(index, term);
                self.synced_index_max = self.synced_index_max.max(index);
            }
            if let Some((index, term)) = record.last_entry {
                self.log.persisted_to(index, term);
                self.synced_index_max = self.synced_index_max.max(index);
            }
        }
        if self
            .snapshot_to_apply
            .as_ref()
            .is_some_and(|(gate, _)| *gate <= id)
        {
            let (_, snapshot) = self.snapshot_to_apply.take().expect("checked present");
            self.log
                .snapshot_applied(snapshot.meta.index, snapshot.meta.term);
            self.conf = snapshot.meta.conf.clone();
            self.snapshot_ready_to_apply = Some(snapshot);
        }
        while self.held.front().is_some_and(|(gate, _)| *gate <= id) {
            let (_, message) = self.held.pop_front().expect("checked non-empty");
            self.outbox.push(message);
        }
        if self.role == Role::Leader {
            let persisted_index = self.log.persisted_index();
            let own = self
                .progress
                .get_mut(&self.config.id)
                .expect("leader tracks itself");
            own.update_match(persisted_index);
            if self.maybe_commit() {
                // Followers learn the new commit index at the next `ready`, in one round.
                self.append_broadcast_pending = true;
            }
        }
    }

    /// The application took `snapshot` at an applied index: compact the log through it. Also
    /// used after a restart to hand raft the bytes of the snapshot it restored from.
    pub fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        assert!(
            index >= self.log.snapshot_meta().index,
            "compacting to {index}, behind the last snapshot"
        );
        if index == self.log.snapshot_meta().index && self.log.snapshot_data().is_none() {
            self.log.compact(snapshot);
            return;
        }
        if index <= self.log.snapshot_meta().index {
            return;
        }
        self.log.compact(snapshot.clone());
        self.unbatched_snapshot = Some(snapshot);
    }

    /// The facts a host checks durability against (cheap: no copies).
    pub fn durable_facts(&self) -> DurableFacts {
        DurableFacts {
            term: self.term,
            vote: self.vote,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            synced_index: self.synced_index_max,
        }
    }

    /// The current term (cheap: `status()` also copies the membership).
    pub fn term(&self) -> Term {
        self.term
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this member knows of (`NodeId(0)` = none).
    pub fn leader(&self) -> NodeId {
        self.leader
    }

    /// The member's state for hosts and checkers.
    pub fn status(&self) -> Status {
        Status {
            id: self.id(),
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit_index: self.log.commit_index(),
            applied_index: self.log.applied_index(),
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            persisted_index: self.log.persisted_index(),
            conf: self.conf.clone(),
        }
    }

    /// The log after the compaction point (for checkers and tests).
    pub fn log_entries(&self) -> &[Entry] {
        self.log.entries()
    }

    /// The compaction point (for checkers and tests).
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        self.log.snapshot_meta()
    }

    /// Queues a message, holding it back if it depends on state not yet durable.
    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    pub(super) fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        assert_ne!(to, self.id(), "raft never messages itself");
        let message = Message {
            from: self.id(),
            to,
            term,
            body,
        };
        let gate = if !message.needs_durability() || Self::released_unsynced(&message) {
            None
        } else if self.has_unbatched_writes() {
            Some(self.next_persist_id)
        } else if self.next_persist_id.0 - 1 > self.persisted_id.0 {
            Some(PersistId(self.next_persist_id.0 - 1))
        } else {
            None
        };
        match gate {
            Some(gate) => {
                assert!(self.held.back().is_none_or(|(last, _)| *last <= gate));
                assert!(
                    self.held.len() < HELD_MESSAGES_COUNT_MAX,
                    "host never reports persistence"
                );
                self.held.push_back((gate, message));
            }
            None => self.outbox.push(message),
        }
    }

    /// Zoo sites: a vote or an append acknowledgement released before the write it depends on
    /// is durable (raft paper section 5.2; etcd-io/raft's MsgAppResp after stable). Always false
    /// in a normal build.
    fn released_unsynced(message: &Message) -> bool {
        match message.body {
            MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
            } => crate::bug!(VoteBeforeSync),
            MessageBody::AppendResponse { success: true, .. } => crate::bug!(AckBeforeSync),
            _ => false,
        }
    }

    /// The highest index whose entry may be handed out for apply: committed and durable here.
    /// Zoo site (etcd #14370): a leader that counted its unsynced entries toward commit also
    /// applies them before its own sync, as etcd's server did with the entries raft called
    /// committed.
    pub(super) fn applicable_index(&self) -> LogIndex {
        if crate::bug!(LeaderCountsUnsynced) && self.role == Role::Leader {
            return self.log.commit_index();
        }
        self.log.commit_index().min(self.log.persisted_index())
    }

    /// Applies a committed membership change (they take effect when applied).
    fn apply_conf_change_entry(&mut self, entry: &Entry) {
        let Some(change) = decode_conf_change(&entry.data) else {
            return;
        };
        self.conf = conf_apply(&self.conf, change);
        if self.role != Role::Leader {
            return;
        }
        if !self.conf.voters.contains(&self.id()) {
            // A leader that removed itself steps down now that the change is committed.
            let term = self.term;
            self.become_follower(term, NodeId(0));
            return;
        }
        self.progress.retain(|id, _| conf_contains(&self.conf, *id));
        let members: Vec<NodeId> = self
            .conf
            .voters
            .iter()
            .chain(&self.conf.learners)
            .copied()
            .collect();
        let mut added = Vec::new();
        for member in members {
            if !self.progress.contains_key(&member) {
                self.progress
                    .insert(member, Progress::new(self.log.last_index().next()));
                added.push(member);
            }
        }
        if self
            .transfer_target
            .is_some_and(|target| !self.conf.voters.contains(&target))
        {
            self.transfer_target = None;
        }
        // A smaller quorum may commit more; new members need the log either way.
        if self.maybe_commit() {
            // Followers learn the new commit index at the next `ready`, in one round.
            self.append_broadcast_pending = true;
        } else {
            for member in added {
                self.send_append(member, true);
            }
        }
    }

    /// Any message from a peer. Stale and misdirected ones are ignored.
    pub fn step(&mut self, message: Message) {
        if message.to != self.id() || message.from == self.id() || message.from.0 == 0 {
            return;
        }
        if message.term > self.term && !self.step_higher_term(&message) {
            return;
        }
        if message.term < self.term {
            self.step_lower_term(&message);
            return;
        }
        self.step_current_term(message);
    }

    fn step_current_term(&mut self, message: Message) {
        let from = message.from;
        match message.body {
            MessageBody::VoteRequest {
                pre_vote,
                last_log_index,
                last_log_term,
                ..
            } => self.on_vote_request(&message, pre_vote, last_log_index, last_log_term),
            MessageBody::VoteResponse { pre_vote, granted } => {
                self.on_vote_response(from, message.term, pre_vote, granted)
            }
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit_index,
            } => {
                self.follow(from);
                self.on_append_request(from, prev_log_index, prev_log_term, &entries, commit_index);
            }
            MessageBody::Heartbeat {
                commit_index,
                read_sequence,
            } => {
                self.follow(from);
                self.on_heartbeat(from, commit_index, read_sequence);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                self.follow(from);
                self.on_install_snapshot(from, snapshot);
            }
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
            } => self.on_append_response(from, success, index, hint_index, hint_term),
            MessageBody::HeartbeatResponse { read_sequence } => {
                self.on_heartbeat_response(from, read_sequence)
            }
            MessageBody::InstallSnapshotResponse { index } => {
                self.on_install_snapshot_response(from, index)
            }
            MessageBody::TimeoutNow => self.on_timeout_now(),
            MessageBody::ForwardProposal { kind, data } => {
                if self.role == Role::Leader {
                    // The follower's caller was told Ok; a refusal here is a lost proposal, which
                    // clients must already tolerate (they retry on timeout).
                    let _ = self.leader_append(kind, data);
                }
            }
            MessageBody::ReadIndexRequest { context } => self.on_read_index_request(from, context),
            MessageBody::ReadIndexResponse { context, index } => {
                if self.role == Role::Follower {
                    self.reads.push_ready_state(context, index);
                }
            }
        }
    }

    /// A message from the leader of our term: recognise it and restart the election timer.
    fn follow(&mut self, leader: NodeId) {
        assert_ne!(self.role, Role::Leader, "two leaders in term {}", self.term);
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(term, leader);
        }
        self.leader = leader;
        self.election_elapsed_ticks = 0;
    }
}
