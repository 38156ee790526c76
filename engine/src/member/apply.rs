//! Applying committed entries, in log order and exactly once: client writes to MVCC, lease
//! commands to the lessor, membership changes to the applied configuration; answering the
//! request that proposed each entry; fanning events out to watchers; taking snapshots.
//!
//! Everything here is replicated state: it must depend only on the entries, never on this
//! member's time or role, or members would fork.

use super::dedupe::AppliedProposals;
use super::proposal::{self, Command, Proposal};
use super::Member;
use crate::api::{HaltReason, Observation};
use crate::auth::AuthStore;
use crate::codec;
use crate::kv::{Event, RequestError, Response};
use crate::lease::{Lessor, LessorConfig};
use crate::mvcc::Store;
use crate::raft::{
    decode_conf_change_with_context, ConfChange, Entry, EntryKind, Snapshot, SnapshotMeta,
};
use crate::types::NodeId;
use crate::types::{LeaseId, Revision};
use std::collections::BTreeMap;

/// A snapshot's application state, decoded.
pub(super) struct DecodedState {
    pub(super) store: Store,
    pub(super) lessor: Lessor,
    pub(super) applied_proposals: AppliedProposals,
    pub(super) contexts: Contexts,
    pub(super) auth: AuthStore,
}

/// The application state inside a raft snapshot.
#[derive(bincode::Encode, bincode::Decode)]
pub(super) struct MemberState {
    pub(super) store: Vec<u8>,
    pub(super) lessor: Vec<u8>,
    pub(super) applied_proposals: AppliedProposals,
}

impl Member {
    pub(super) fn apply_entry(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.applied.index.next(),
            "entries apply in order, once"
        );
        assert!(
            entry.term >= self.applied.term,
            "applied terms never decrease"
        );
        self.out.observe.push(Observation::Applied {
            index: entry.index,
            term: entry.term,
            digest: proposal::digest(&entry.data),
        });
        match entry.kind {
            EntryKind::Normal if entry.data.is_empty() => {}
            EntryKind::Normal => self.apply_proposal(&entry),
            EntryKind::ConfChange => self.apply_conf_change(&entry),
        }
        self.applied.index = entry.index;
        self.applied.term = entry.term;
        if entry
            .index
            .0
            .is_multiple_of(self.config.kv_hash_interval_entries)
        {
            self.out.observe.push(Observation::KvHash {
                index: entry.index,
                revision: self.store.revision(),
                hash: self.store.hash(),
            });
        }
        let since_snapshot = entry.index.0 - self.applied.snapshot_index.0;
        // Buggify: a snapshot at an arbitrary entry, so log compaction, snapshot sending and
        // recovery from a snapshot happen many times per run.
        let due = since_snapshot >= self.config.snapshot_interval_entries
            || (since_snapshot > 0 && self.buggify.fires(crate::buggify::Point::SnapshotNow));
        if due && self.storage.may_snapshot_at(entry.index) {
            self.take_snapshot();
        }
    }

    fn apply_proposal(&mut self, entry: &Entry) {
        let Some(proposal) = Proposal::decode(&entry.data) else {
            // Every member would fail identically here; halting keeps the state machine
            // unforked and the evidence on disk.
            panic!(
                "entry {} does not decode as a proposal: the log is corrupt",
                entry.index
            );
        };
        if !self
            .applied_proposals
            .first_application(proposal.id, entry.index)
        {
            // A second copy of an applied proposal: every member skips it alike.
            crate::marks::hit(crate::marks::Mark::ProposalDeduplicated);
            return;
        }
        let result = self.apply_checked(proposal.command);
        if proposal.id.origin == self.config.id {
            if let Some(pending) = self.pending_writes.remove(&proposal.id) {
                self.out.reply.push((pending.request, result));
            }
        }
    }

    /// Applies a command after the auth checks that hold at this point of the log: a command
    /// run as a user must still be permitted now (a permission revoked after its proposal
    /// takes effect), and a client write without a user is refused once auth is enabled.
    fn apply_checked(&mut self, command: Command) -> Result<Response, RequestError> {
        match command {
            Command::AsUser { auth, command } => {
                // The zoo's defect trusts the check made where the request arrived.
                if !crate::bug!(PermissionCheckedOnlyAtRequest) {
                    self.authorize_at_apply(&auth, &command)?;
                }
                match *command {
                    Command::Auth(request) => self.apply_auth(request, Some(&auth)),
                    command => self.apply_command(command),
                }
            }
            Command::Auth(request) => self.apply_auth(request, None),
            command => {
                if is_client_write(&command) {
                    self.auth
                        .check(None, &Default::default())
                        .map_err(RequestError::Auth)?;
                }
                self.apply_command(command)
            }
        }
    }

    fn apply_command(&mut self, command: Command) -> Result<Response, RequestError> {
        let lessor = &self.lessor;
        let lease_exists = |lease| lessor.exists(lease);
        match command {
            Command::Put(put) => {
                let write = self.store.put(&put, &lease_exists)?;
                self.after_write(write.revision, &write.events);
                let mut response = write.response;
                response.header = self.header();
                Ok(Response::Put(response))
            }
            Command::DeleteRange(delete) => {
                let write = self.store.delete_range(&delete)?;
                self.after_write(write.revision, &write.events);
                let mut response = write.response;
                response.header = self.header();
                Ok(Response::DeleteRange(response))
            }
            Command::Txn(txn) => {
                let write = self.store.txn(&txn, &lease_exists)?;
                self.after_write(write.revision, &write.events);
                let mut response = write.response;
                response.header = self.header();
                Ok(Response::Txn(response))
            }
            Command::Compact(compact) => {
                self.store.compact(compact.revision)?;
                Ok(Response::Compact {
                    header: self.header(),
                })
            }
            Command::LeaseGrant { id, ttl_seconds } => {
                let granted = self.lessor.grant(id, ttl_seconds, self.now)?;
                Ok(Response::LeaseGrant {
                    header: self.header(),
                    id: granted.id,
                    ttl_seconds: granted.ttl_seconds,
                })
            }
            Command::LeaseRevoke { id } => {
                let keys = self.lessor.revoke(id)?;
                let write = self.store.delete_keys(&keys);
                self.after_write(write.revision, &write.events);
                Ok(Response::LeaseRevoke {
                    header: self.header(),
                })
            }
            Command::LeaseCheckpoint { remaining } => {
                for (lease, remaining_ttl_seconds) in remaining {
                    self.lessor.checkpoint(lease, remaining_ttl_seconds);
                }
                Ok(Response::LeaseRevoke {
                    header: self.header(),
                })
            }
            Command::LeaseKeepAliveReset { id, ttl_seconds } => {
                if !self.lessor.exists(id) {
                    return Err(RequestError::LeaseNotFound { lease: id });
                }
                self.lessor.checkpoint(id, 0);
                Ok(Response::LeaseKeepAlive {
                    header: self.header(),
                    id,
                    ttl_seconds,
                })
            }
            Command::AsUser { .. } | Command::Auth(_) => {
                unreachable!("apply_checked unwraps auth commands")
            }
        }
    }

    /// Keeps lease attachments in step with the keys written, then tells the watchers.
    fn after_write(&mut self, revision: Revision, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        for event in events {
            let previous_lease = event
                .prev_kv
                .as_ref()
                .map_or(LeaseId(0), |previous| previous.lease);
            let is_put = event.kind == crate::kv::EventType::Put;
            if is_put && event.kv.lease.0 != 0 {
                // MVCC checked the lease exists before writing, so attaching cannot fail for a
                // missing lease; a per-lease key limit would leave the key unattached on every
                // member alike, which keeps replicas identical.
                let _attached = self.lessor.attach(event.kv.lease, &event.kv.key);
            } else if previous_lease.0 != 0 {
                let _detached = self.lessor.detach(&event.kv.key);
            }
        }
        self.watches
            .on_apply(revision, events, &mut self.out.notify);
    }

    fn apply_conf_change(&mut self, entry: &Entry) {
        let (change, context) = decode_conf_change_with_context(&entry.data)
            .unwrap_or_else(|| panic!("entry {} is not a membership change", entry.index));
        self.apply_member_context(change, context);
        let conf = &mut self.applied.conf;
        match change {
            ConfChange::AddVoter(node) | ConfChange::Promote(node) => {
                conf.learners.retain(|learner| *learner != node);
                if !conf.voters.contains(&node) {
                    conf.voters.push(node);
                    conf.voters.sort();
                }
            }
            ConfChange::AddLearner(node) => {
                if !conf.learners.contains(&node) && !conf.voters.contains(&node) {
                    conf.learners.push(node);
                    conf.learners.sort();
                }
            }
            ConfChange::Remove(node) => {
                conf.voters.retain(|voter| *voter != node);
                conf.learners.retain(|learner| *learner != node);
                if node == self.config.id {
                    self.halt(HaltReason::Removed);
                }
            }
            ConfChange::Update(_) => {}
        }
        if self
            .pending_member_change
            .is_some_and(|(_, pending)| pending == change)
        {
            let (request, _) = self.pending_member_change.take().expect("checked");
            let response = Response::MemberChanged {
                header: self.header(),
                voters: self.applied.conf.voters.clone(),
                learners: self.applied.conf.learners.clone(),
            };
            self.out.reply.push((request, Ok(response)));
        }
    }

    /// Keeps the host's context for the member a change names: an add or update carrying one
    /// sets it, an update without one drops it, a removal forgets it. A change that no longer
    /// fits the membership (raft leaves it out too) changes nothing.
    fn apply_member_context(&mut self, change: ConfChange, context: Vec<u8>) {
        let conf = &self.applied.conf;
        let is_member = |node: NodeId| conf.voters.contains(&node) || conf.learners.contains(&node);
        let contexts = &mut self.applied.contexts;
        match change {
            ConfChange::AddVoter(node) if !conf.voters.contains(&node) && !context.is_empty() => {
                contexts.insert(node, context);
            }
            ConfChange::AddLearner(node) if !is_member(node) && !context.is_empty() => {
                contexts.insert(node, context);
            }
            ConfChange::Update(node) if is_member(node) => {
                if context.is_empty() {
                    contexts.remove(&node);
                } else {
                    contexts.insert(node, context);
                }
            }
            ConfChange::Remove(node) => {
                contexts.remove(&node);
            }
            ConfChange::AddVoter(_)
            | ConfChange::AddLearner(_)
            | ConfChange::Update(_)
            | ConfChange::Promote(_) => {}
        }
    }

    /// Snapshots the applied state, hands it to raft (which compacts its log) and to storage
    /// (which writes it atomically and releases the WAL below it once durable).
    pub(super) fn take_snapshot(&mut self) {
        let state = MemberState {
            store: self.store.encode_snapshot(),
            lessor: self.lessor.encode(),
            applied_proposals: self.applied_proposals.clone(),
        };
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: self.applied.index,
                term: self.applied.term,
                conf: self.applied.conf.clone(),
            },
            data: encode_state(&state, &self.applied.contexts, &self.auth),
        };
        assert!(snapshot.meta.index > self.applied.snapshot_index);
        self.applied.snapshot_index = snapshot.meta.index;
        self.storage.save_snapshot(&snapshot, &mut self.out.disk);
        self.out.observe.push(Observation::Snapshot {
            index: snapshot.meta.index,
            installed: false,
        });
        self.raft.compact(snapshot);
    }

    /// Replaces the state machine with a snapshot received from the leader.
    pub(super) fn install_snapshot(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.meta.index > self.applied.index,
            "a snapshot only moves forward"
        );
        let DecodedState {
            store,
            lessor,
            applied_proposals,
            contexts,
            auth,
        } = decode_state(&snapshot.data).unwrap_or_else(|reason| {
            panic!("snapshot at {} is unusable: {reason}", snapshot.meta.index)
        });
        assert!(
            !self.was_leader,
            "a leader never installs a snapshot from another member"
        );
        self.store = store;
        self.lessor = lessor;
        self.applied_proposals = applied_proposals;
        self.auth = auth;
        self.watches.on_restore(&self.store);
        self.applied.index = snapshot.meta.index;
        self.applied.term = snapshot.meta.term;
        self.applied.conf = snapshot.meta.conf.clone();
        self.applied.contexts = contexts;
        self.applied.snapshot_index = snapshot.meta.index;
        self.out.observe.push(Observation::Snapshot {
            index: snapshot.meta.index,
            installed: true,
        });
    }
}

/// The members' host contexts in a snapshot.
type Contexts = BTreeMap<NodeId, Vec<u8>>;

/// Encodes the application state of a snapshot: the state, then the members' host contexts
/// and the auth store only when there is something in them (contexts, possibly empty, come
/// first whenever the auth store follows), so a cluster that never used contexts or auth writes
/// the same bytes as before they existed.
fn encode_state(state: &MemberState, contexts: &Contexts, auth: &AuthStore) -> Vec<u8> {
    let mut bytes = codec::encode(state);
    if !contexts.is_empty() || !auth.is_pristine() {
        let _contexts_bytes = codec::encode_into(contexts, &mut bytes);
    }
    if !auth.is_pristine() {
        bytes.extend_from_slice(&auth.encode());
    }
    bytes
}

/// Decodes a value from the front of `bytes`, returning it and the bytes after it.
fn decode_prefix<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<(T, &[u8]), String> {
    match codec::decode(bytes) {
        Ok(value) => Ok((value, &[])),
        Err(codec::CodecError::TrailingBytes { consumed_bytes, .. }) => {
            let value =
                codec::decode(&bytes[..consumed_bytes]).map_err(|error| error.to_string())?;
            Ok((value, &bytes[consumed_bytes..]))
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Decodes the application state of a snapshot.
pub(super) fn decode_state(bytes: &[u8]) -> Result<DecodedState, String> {
    let (state, rest): (MemberState, &[u8]) = decode_prefix(bytes)?;
    let (contexts, auth) = if rest.is_empty() {
        (Contexts::new(), AuthStore::default())
    } else {
        let (contexts, rest): (Contexts, &[u8]) = decode_prefix(rest)?;
        let auth = if rest.is_empty() {
            AuthStore::default()
        } else {
            AuthStore::decode(rest)?
        };
        if (contexts.is_empty() && auth.is_pristine()) || contexts.values().any(Vec::is_empty) {
            return Err("member snapshot has malformed member contexts".to_string());
        }
        (contexts, auth)
    };
    let store = Store::decode_snapshot(&state.store)?;
    let lessor = Lessor::decode(LessorConfig::default(), &state.lessor)
        .map_err(|error| format!("{error:?}"))?;
    if !state.applied_proposals.is_well_formed() {
        return Err("member snapshot has malformed applied proposals".to_string());
    }
    Ok(DecodedState {
        store,
        lessor,
        applied_proposals: state.applied_proposals,
        contexts,
        auth,
    })
}

/// Whether a command is a client's write, which auth checks (lease duties and compactions are
/// not: see `member::auth`).
fn is_client_write(command: &Command) -> bool {
    matches!(
        command,
        Command::Put(_) | Command::DeleteRange(_) | Command::Txn(_)
    )
}
