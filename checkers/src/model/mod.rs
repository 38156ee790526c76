//! The sequential etcd store of the history spec: one revision counter, versions, create and mod
//! revisions, txns with compares, leases and compaction, over interned keys and values.
//!
//! It is the reference the linearizability search replays operations on, and the store the
//! history generator (tests, bench) runs. Every mutation is undoable (the search backtracks) and
//! keeps an incremental state hash (the search memoises). It knows nothing of time: lease expiry
//! is an explicit operation (`Op::Expire`) placed by whoever drives it.

pub mod auth;
mod auth_names;
mod checked;
pub mod compile;
mod intern;
mod matching;

pub use compile::{Cmp, ErrorCode, KeyId, Op, Rec, RecKv, Tables, ValueId};
pub use matching::{describe_outcome, explain_mismatch, matches};

use crate::history::{CompareOp, CompareTarget};
use std::collections::{BTreeMap, BTreeSet};

/// The live state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState {
    /// Value.
    pub value: ValueId,
    /// Revision that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last change.
    pub mod_revision: i64,
    /// Puts since creation.
    pub version: i64,
    /// Attached lease, 0 for none.
    pub lease: i64,
}

/// What the store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Range.
    Range {
        /// Header revision.
        revision: i64,
        /// Kvs after `limit`.
        kvs: Vec<(KeyId, KeyState)>,
        /// Keys in range before `limit`.
        count: i64,
    },
    /// Put.
    Put {
        /// New revision.
        revision: i64,
        /// Previous state of the key.
        prev: Option<(KeyId, KeyState)>,
        /// Whether the request asked for it.
        prev_kv: bool,
    },
    /// Delete.
    Delete {
        /// Revision after.
        revision: i64,
        /// Deleted kvs (always computed; compared only if asked for).
        deleted: Vec<(KeyId, KeyState)>,
        /// Whether the request asked for them.
        prev_kv: bool,
    },
    /// Txn.
    Txn {
        /// Revision after.
        revision: i64,
        /// Branch taken.
        succeeded: bool,
        /// Nested outcomes.
        responses: Vec<Outcome>,
    },
    /// Lease grant.
    LeaseGrant {
        /// TTL.
        ttl_seconds: i64,
    },
    /// Lease revoke.
    LeaseRevoke {
        /// Revision after.
        revision: i64,
    },
    /// Keepalive.
    LeaseKeepAlive {
        /// TTL.
        ttl_seconds: i64,
    },
    /// Compact.
    Compact {
        /// Revision.
        revision: i64,
    },
    /// Lease expiry.
    Expire,
    /// An auth request succeeded.
    Auth,
    /// Error: nothing changed.
    Error(ErrorCode),
}

/// One entry of a key's history. `state` `None` is a deletion (tombstone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    revision: i64,
    state: Option<KeyState>,
    /// `Store::key_hash` of `state` in the store's view (0 for a tombstone), kept so that
    /// replacing or undoing the version rehashes nothing: the hashes were a sixth of a long
    /// witness search's time (standalone membership_churn_on_an_even_cluster seed 89).
    view_hash: u64,
}

#[derive(Debug, Clone)]
enum Undo {
    KeyPushed(KeyId),
    Revision(i64),
    Compacted(i64),
    LeaseAdded(i64),
    LeaseRemoved(i64, i64),
    /// The auth state before an auth request changed it.
    Auth(Option<Box<auth::AuthState>>),
}

/// The sequential store. Invariant: every key's versions are in non-decreasing revision order and
/// no version is above `revision` outside an applying txn.
#[derive(Debug, Clone)]
pub struct Store {
    revision: i64,
    compact_revision: i64,
    keys: Vec<Vec<Version>>,
    leases: BTreeMap<i64, i64>,
    /// (lease, key) for every live key attached to a lease: a lease's expiry or revoke visits
    /// its own keys instead of every key of the history.
    leased: BTreeSet<(i64, KeyId)>,
    /// One bit per key id, set while the key is live: counting the live keys of a range
    /// reads a word per 64 keys instead of every key's versions.
    live: Vec<u64>,
    undo: Vec<Undo>,
    kv_hash: u64,
    lease_hash: u64,
    history_hash: u64,
    /// Which state the hashes cover (see `StateView`).
    view: StateView,
    /// The auth state, once an auth request applied (`None` is auth as it starts: disabled,
    /// no users, no roles).
    auth: Option<Box<auth::AuthState>>,
}

/// What of the store a search distinguishes: two stores that differ only outside the view are
/// the same search state. Narrower views are cheaper per step and merge more states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateView {
    /// Every version of every key (reads at old revisions exist). The default.
    History,
    /// The latest state of every key, the revisions and the leases.
    Latest,
    /// Which keys exist with which values and leases only: sound when nothing in the history can
    /// observe a revision, version, create or mod revision (no recorded revision or such field,
    /// no compare on them, no read at an old revision, no compaction), as in Jepsen's histories.
    ValuesOnly,
}

/// A position in the undo log (see `Store::mark`, `Store::undo_to`).
pub type Mark = usize;

/// SplitMix64 finaliser: a cheap, well-mixing hash of one word.
pub fn mix(word: u64) -> u64 {
    let mut z = word.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn state_hash(key: KeyId, state: &KeyState) -> u64 {
    let mut hash = mix(u64::from(key) ^ 0x51);
    for field in [
        i64::from(state.value),
        state.create_revision,
        state.mod_revision,
        state.version,
        state.lease,
    ] {
        hash = mix(hash ^ field as u64);
    }
    hash
}

/// `state_hash` of the fields `StateView::ValuesOnly` keeps.
fn value_hash(key: KeyId, state: &KeyState) -> u64 {
    mix(mix(mix(u64::from(key) ^ 0x52) ^ u64::from(state.value)) ^ state.lease as u64)
}

/// The history hash's word for one version; only the `History` view keeps that hash, and in
/// it a version's `view_hash` is its `state_hash`.
fn version_hash(key: KeyId, version: &Version) -> u64 {
    let base = match &version.state {
        Some(_) => version.view_hash,
        None => mix(u64::from(key) ^ 0xdead),
    };
    mix(base ^ version.revision as u64)
}

impl Store {
    /// An empty store at revision 1 (etcd's first revision) over `key_count` interned keys.
    pub fn new(key_count: usize) -> Store {
        Store {
            revision: 1,
            compact_revision: 0,
            keys: vec![Vec::new(); key_count],
            leases: BTreeMap::new(),
            leased: BTreeSet::new(),
            live: vec![0; key_count.div_ceil(64)],
            undo: Vec::new(),
            kv_hash: 0,
            lease_hash: 0,
            history_hash: 0,
            view: StateView::History,
            auth: None,
        }
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The live state of a key.
    pub fn get(&self, key: KeyId) -> Option<KeyState> {
        self.keys[key as usize]
            .last()
            .and_then(|version| version.state)
    }

    /// The state of a key as of `revision`.
    pub fn get_at(&self, key: KeyId, revision: i64) -> Option<KeyState> {
        let versions = &self.keys[key as usize];
        let count = versions.partition_point(|version| version.revision <= revision);
        count.checked_sub(1).and_then(|index| versions[index].state)
    }

    /// The changes recorded at `revision`: (key, new state or deletion).
    pub fn changes_at(&self, revision: i64) -> Vec<(KeyId, Option<KeyState>)> {
        let mut out = Vec::new();
        for (key, versions) in self.keys.iter().enumerate() {
            for version in versions
                .iter()
                .filter(|version| version.revision == revision)
            {
                out.push((key as KeyId, version.state));
            }
        }
        out
    }

    /// The whole change log: (revision, key, state) for every change, by revision then key.
    pub fn change_log(&self) -> Vec<(i64, KeyId, Option<KeyState>)> {
        let mut out: Vec<(i64, KeyId, Option<KeyState>)> = Vec::new();
        for (key, versions) in self.keys.iter().enumerate() {
            out.extend(
                versions
                    .iter()
                    .map(|version| (version.revision, key as KeyId, version.state)),
            );
        }
        out.sort_by_key(|(revision, key, _)| (*revision, *key));
        out
    }

    /// A hash of everything that decides future answers; with `with_history`, also of the past
    /// (needed when reads at old revisions exist).
    pub fn hash(&self, with_history: bool) -> u64 {
        let auth_hash = self
            .auth
            .as_ref()
            .map_or(0, |state| state.hash().rotate_left(47));
        if self.view == StateView::ValuesOnly {
            return self.kv_hash ^ self.lease_hash.rotate_left(17) ^ auth_hash;
        }
        let mut hash =
            self.kv_hash ^ mix(self.revision as u64) ^ mix(!(self.compact_revision as u64));
        hash ^= self.lease_hash.rotate_left(17);
        if with_history {
            hash ^= self.history_hash.rotate_left(31);
        }
        hash ^ auth_hash
    }

    /// Appends to `out` words that are equal for two stores exactly when `hash(with_history)`'s
    /// inputs are: the revisions, every key's live state (with `with_history`, every version),
    /// and the leases. The search's memo compares these, so a hash collision cannot prune an
    /// unexplored state.
    pub fn fingerprint(&self, with_history: bool, out: &mut Vec<u64>) {
        let values_only = self.view == StateView::ValuesOnly;
        let with_history = with_history && self.view == StateView::History;
        if !values_only {
            out.push(self.revision as u64);
            out.push(self.compact_revision as u64);
        }
        let push_state = |state: &Option<KeyState>, out: &mut Vec<u64>| match state {
            None => out.push(0),
            Some(state) if values_only => {
                out.extend([1, u64::from(state.value), state.lease as u64]);
            }
            Some(state) => out.extend([
                1,
                u64::from(state.value),
                state.create_revision as u64,
                state.mod_revision as u64,
                state.version as u64,
                state.lease as u64,
            ]),
        };
        for versions in &self.keys {
            if with_history {
                out.push(versions.len() as u64);
                for version in versions {
                    out.push(version.revision as u64);
                    push_state(&version.state, out);
                }
            } else {
                push_state(&versions.last().and_then(|version| version.state), out);
            }
        }
        out.push(self.leases.len() as u64);
        for (&id, &ttl) in &self.leases {
            out.extend([id as u64, ttl as u64]);
        }
        if let Some(state) = &self.auth {
            state.fingerprint(out);
        }
    }

    /// Narrows (or widens) what the hashes cover, recomputing them. A search sets this once,
    /// before it starts.
    pub fn set_view(&mut self, view: StateView) {
        // The hashes follow every change in the view they are in, so only a new view rehashes
        // (each search of a segment sets the view again on the store the last one left, and
        // rehashing every version each time made long histories quadratic).
        if view == self.view {
            return;
        }
        self.view = view;
        self.kv_hash = 0;
        self.history_hash = 0;
        for key in 0..self.keys.len() {
            let key = key as KeyId;
            for at in 0..self.keys[key as usize].len() {
                let version = self.keys[key as usize][at];
                self.keys[key as usize][at].view_hash =
                    version.state.map_or(0, |state| self.key_hash(key, &state));
            }
            if let Some(version) = self.keys[key as usize].last() {
                self.kv_hash ^= version.view_hash;
            }
            if view == StateView::History {
                for version in &self.keys[key as usize] {
                    self.history_hash ^= version_hash(key, version);
                }
            }
        }
    }

    fn key_hash(&self, key: KeyId, state: &KeyState) -> u64 {
        if self.view == StateView::ValuesOnly {
            value_hash(key, state)
        } else {
            state_hash(key, state)
        }
    }

    /// Keys changed since `mark` (in change order; a key may repeat).
    pub fn changed_since(&self, mark: Mark) -> Vec<KeyId> {
        self.undo[mark.min(self.undo.len())..]
            .iter()
            .filter_map(|undo| match undo {
                Undo::KeyPushed(key) => Some(*key),
                _ => None,
            })
            .collect()
    }

    /// Whether, in `StateView::ValuesOnly`, every key changed since `mark` has the value and
    /// lease (or absence) it had at `revision_before`: the change is then invisible to the
    /// view. Always false in the other views, which see revisions.
    pub fn view_unchanged_since(&self, mark: Mark, revision_before: i64) -> bool {
        if self.view != StateView::ValuesOnly {
            return false;
        }
        let same = |now: Option<KeyState>, before: Option<KeyState>| match (now, before) {
            (None, None) => true,
            (Some(now), Some(before)) => now.value == before.value && now.lease == before.lease,
            _ => false,
        };
        self.undo[mark.min(self.undo.len())..]
            .iter()
            .all(|undo| match undo {
                Undo::KeyPushed(key) => same(self.get(*key), self.get_at(*key, revision_before)),
                Undo::Revision(_) => true,
                _ => false,
            })
    }

    /// The revision of a key's latest change (put or deletion), if it ever changed.
    pub fn last_change_revision(&self, key: KeyId) -> Option<i64> {
        self.keys[key as usize]
            .last()
            .map(|version| version.revision)
    }

    /// The current undo position.
    pub fn mark(&self) -> Mark {
        self.undo.len()
    }

    /// Forgets undo information (for drivers that never backtrack).
    pub fn forget_undo(&mut self) {
        self.undo.clear();
    }

    /// Rolls back every change made since `mark`.
    pub fn undo_to(&mut self, mark: Mark) {
        assert!(mark <= self.undo.len(), "undo mark is ahead of the log");
        while self.undo.len() > mark {
            match self.undo.pop().expect("length checked") {
                Undo::KeyPushed(key) => {
                    let version = self.keys[key as usize].pop().expect("pushed version");
                    if self.view == StateView::History {
                        self.history_hash ^= version_hash(key, &version);
                    }
                    if let Some(state) = &version.state {
                        self.kv_hash ^= version.view_hash;
                        self.detach(key, state);
                    }
                    if let Some(&Version {
                        state: Some(state),
                        view_hash,
                        ..
                    }) = self.keys[key as usize].last()
                    {
                        self.kv_hash ^= view_hash;
                        self.attach(key, &state);
                    }
                }
                Undo::Revision(old) => self.revision = old,
                Undo::Compacted(old) => self.compact_revision = old,
                Undo::LeaseAdded(id) => {
                    let ttl = self.leases.remove(&id).expect("added lease");
                    self.lease_hash ^= mix(id as u64 ^ mix(ttl as u64));
                }
                Undo::LeaseRemoved(id, ttl) => {
                    self.leases.insert(id, ttl);
                    self.lease_hash ^= mix(id as u64 ^ mix(ttl as u64));
                }
                Undo::Auth(state) => self.auth = state,
            }
        }
    }

    fn push_version(&mut self, key: KeyId, revision: i64, state: Option<KeyState>) {
        let versions = &self.keys[key as usize];
        assert!(
            versions.last().is_none_or(|last| last.revision <= revision),
            "revisions go back"
        );
        if let Some(&Version {
            state: Some(old),
            view_hash,
            ..
        }) = versions.last()
        {
            self.kv_hash ^= view_hash;
            self.detach(key, &old);
        }
        let view_hash = state.map_or(0, |new| self.key_hash(key, &new));
        let version = Version {
            revision,
            state,
            view_hash,
        };
        if self.view == StateView::History {
            self.history_hash ^= version_hash(key, &version);
        }
        if let Some(new) = &state {
            self.kv_hash ^= view_hash;
            self.attach(key, new);
        }
        self.keys[key as usize].push(version);
        self.undo.push(Undo::KeyPushed(key));
    }

    /// Records a key that becomes live (or changes): its live bit, and its lease in the lease
    /// index (keys without one are not indexed).
    fn attach(&mut self, key: KeyId, state: &KeyState) {
        self.live[key as usize / 64] |= 1 << (key % 64);
        if state.lease != 0 {
            let inserted = self.leased.insert((state.lease, key));
            assert!(inserted, "a key is attached to its lease once");
        }
    }

    /// Removes a key that stops being live (or changes) from the live bits and the lease index.
    fn detach(&mut self, key: KeyId, state: &KeyState) {
        self.live[key as usize / 64] &= !(1 << (key % 64));
        if state.lease != 0 {
            let removed = self.leased.remove(&(state.lease, key));
            assert!(removed, "a leased live key is in the lease index");
        }
    }

    fn set_revision(&mut self, revision: i64) {
        assert!(revision >= self.revision, "the revision counter only grows");
        self.undo.push(Undo::Revision(self.revision));
        self.revision = revision;
    }

    fn remove_lease(&mut self, id: i64) {
        let ttl = self.leases.remove(&id).expect("lease exists");
        self.lease_hash ^= mix(id as u64 ^ mix(ttl as u64));
        self.undo.push(Undo::LeaseRemoved(id, ttl));
    }

    /// Applies one operation; errors leave the store unchanged.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        self.apply_as(op, None)
    }

    /// Applies one operation run as `user` (auth histories, format version 2): refused with
    /// etcd's error when auth is enabled and the user may not run it; errors leave the store
    /// unchanged.
    pub fn apply_as(&mut self, op: &Op, user: Option<auth::NameId>) -> Outcome {
        if let Err(code) = self.permit(op, user) {
            return Outcome::Error(code);
        }
        if let Op::Auth(cmd) = op {
            return match self.apply_auth(cmd) {
                Ok(()) => Outcome::Auth,
                Err(code) => Outcome::Error(code),
            };
        }
        let mark = self.mark();
        let mut wrote = false;
        let outcome = self.apply_inner(op, self.revision + 1, &mut wrote);
        if matches!(outcome, Outcome::Error(_)) {
            self.undo_to(mark);
            return outcome;
        }
        if wrote {
            self.set_revision(self.revision + 1);
        }
        fix_revision(outcome, self.revision)
    }

    /// Applies `op` as part of a write at `write_revision`; sets `wrote` when a key changed.
    fn apply_inner(&mut self, op: &Op, write_revision: i64, wrote: &mut bool) -> Outcome {
        match op {
            Op::Range {
                lo,
                hi,
                revision,
                limit,
            } => self.range(*lo, *hi, *revision, *limit),
            Op::Put {
                key,
                value,
                lease,
                prev_kv,
            } => {
                let prev = match self.put(*key, *value, *lease, write_revision) {
                    Ok(prev) => prev,
                    Err(code) => return Outcome::Error(code),
                };
                *wrote = true;
                Outcome::Put {
                    revision: 0,
                    prev: prev.map(|old| (*key, old)),
                    prev_kv: *prev_kv,
                }
            }
            Op::Delete { lo, hi, prev_kv } => {
                let mut deleted = Vec::new();
                self.delete_span(*lo, *hi, write_revision, |key, state| {
                    deleted.push((key, *state));
                    true
                });
                *wrote |= !deleted.is_empty();
                Outcome::Delete {
                    revision: 0,
                    deleted,
                    prev_kv: *prev_kv,
                }
            }
            Op::Txn {
                compares,
                success,
                failure,
            } => {
                let succeeded = compares
                    .iter()
                    .all(|compare| self.compare(compare, write_revision));
                let branch = if succeeded { success } else { failure };
                let mut responses = Vec::with_capacity(branch.len());
                for inner in branch {
                    let outcome = self.apply_inner(inner, write_revision, wrote);
                    if let Outcome::Error(code) = outcome {
                        return Outcome::Error(code);
                    }
                    responses.push(outcome);
                }
                Outcome::Txn {
                    revision: 0,
                    succeeded,
                    responses,
                }
            }
            Op::LeaseGrant { id, ttl_seconds } => match self.grant_lease(*id, *ttl_seconds) {
                Ok(()) => Outcome::LeaseGrant {
                    ttl_seconds: *ttl_seconds,
                },
                Err(code) => Outcome::Error(code),
            },
            Op::LeaseRevoke { id } | Op::Expire { id } => {
                match self.revoke_lease(*id, write_revision) {
                    Ok(deleted_count) => *wrote |= deleted_count > 0,
                    Err(code) => return Outcome::Error(code),
                }
                if matches!(op, Op::Expire { .. }) {
                    Outcome::Expire
                } else {
                    Outcome::LeaseRevoke { revision: 0 }
                }
            }
            Op::LeaseKeepAlive { id } => match self.leases.get(id) {
                Some(ttl) => Outcome::LeaseKeepAlive { ttl_seconds: *ttl },
                None => Outcome::Error(ErrorCode::LeaseNotFound),
            },
            Op::Compact { revision } => match self.compact_to(*revision) {
                Ok(()) => Outcome::Compact { revision: 0 },
                Err(code) => Outcome::Error(code),
            },
            Op::Auth(_) => unreachable!("auth requests are applied by apply_as"),
        }
    }

    /// Whether `user` may run `op` now; always while no auth request has applied.
    fn permit(&self, op: &Op, user: Option<auth::NameId>) -> Result<(), ErrorCode> {
        let Some(state) = &self.auth else {
            return Ok(());
        };
        state.permit(op, user)?;
        // etcd's `checkLeasePuts`: only a top-level put attaching a lease, and a client's revoke
        // (not an expiry), answer for the keys the lease already holds.
        let lease = match op {
            Op::Put { lease, .. } if *lease != 0 => *lease,
            Op::LeaseRevoke { id } => *id,
            _ => return Ok(()),
        };
        let keys = self
            .leased
            .range((lease, 0)..)
            .take_while(|(owner, _)| *owner == lease)
            .map(|(_, key)| *key);
        state.permit_lease_keys(keys, user)
    }

    /// Applies an auth request whose admin check passed, recording the state before it when
    /// it changed anything.
    fn apply_auth(&mut self, cmd: &auth::AuthCmd) -> Result<(), ErrorCode> {
        let before = self.auth.clone();
        let state = self.auth.get_or_insert_with(Default::default);
        match state.apply(cmd) {
            Ok(true) => {
                self.undo.push(Undo::Auth(before));
                Ok(())
            }
            Ok(false) => {
                self.auth = before;
                Ok(())
            }
            Err(code) => {
                self.auth = before;
                Err(code)
            }
        }
    }

    /// Whether an auth request ever changed this store (its operations are then checked).
    pub fn auth_enabled(&self) -> bool {
        self.auth.as_ref().is_some_and(|state| state.enabled())
    }

    /// Puts `key` at `write_revision`; the key's previous state, or the error.
    fn put(
        &mut self,
        key: KeyId,
        value: ValueId,
        lease: i64,
        write_revision: i64,
    ) -> Result<Option<KeyState>, ErrorCode> {
        if lease != 0 && !self.leases.contains_key(&lease) {
            return Err(ErrorCode::LeaseNotFound);
        }
        let prev = self.get(key);
        let state = KeyState {
            value,
            create_revision: prev.map_or(write_revision, |old| old.create_revision),
            mod_revision: write_revision,
            version: prev.map_or(1, |old| old.version + 1),
            lease,
        };
        self.push_version(key, write_revision, Some(state));
        Ok(prev)
    }

    fn grant_lease(&mut self, id: i64, ttl_seconds: i64) -> Result<(), ErrorCode> {
        // NB: a server-chosen id that the history never learnt cannot be named by any later
        // operation, so such a grant has no observable effect and is not recorded.
        if id == 0 {
            return Ok(());
        }
        if self.leases.contains_key(&id) {
            return Err(ErrorCode::LeaseExists);
        }
        self.leases.insert(id, ttl_seconds);
        self.lease_hash ^= mix(id as u64 ^ mix(ttl_seconds as u64));
        self.undo.push(Undo::LeaseAdded(id));
        Ok(())
    }

    /// Revokes (or expires) a lease, deleting its keys at `write_revision`; how many it deleted.
    fn revoke_lease(&mut self, lease: i64, write_revision: i64) -> Result<usize, ErrorCode> {
        if !self.leases.contains_key(&lease) {
            return Err(ErrorCode::LeaseNotFound);
        }
        let mut deleted_count = 0;
        // Deleting a key takes it out of the index, so the first entry left is the next key.
        while let Some(&(_, key)) = self
            .leased
            .range((lease, 0)..)
            .next()
            .filter(|(owner, _)| *owner == lease)
        {
            let state = self.get(key).expect("indexed keys are live");
            assert!(state.lease == lease, "the lease index agrees with the key");
            self.push_version(key, write_revision, None);
            deleted_count += 1;
        }
        self.remove_lease(lease);
        Ok(deleted_count)
    }

    fn compact_to(&mut self, revision: i64) -> Result<(), ErrorCode> {
        if revision > self.revision {
            return Err(ErrorCode::FutureRevision);
        }
        if revision <= self.compact_revision {
            return Err(ErrorCode::Compacted);
        }
        self.undo.push(Undo::Compacted(self.compact_revision));
        self.compact_revision = revision;
        Ok(())
    }

    fn range(&self, lo: KeyId, hi: KeyId, revision: i64, limit: i64) -> Outcome {
        let mut kvs = Vec::new();
        let mut count = 0;
        let visited = self.range_each(lo, hi, revision, |key, state| {
            count += 1;
            if limit <= 0 || (kvs.len() as i64) < limit {
                kvs.push((key, *state));
            }
            true
        });
        match visited {
            Err(code) => Outcome::Error(code),
            Ok(()) => Outcome::Range {
                revision: 0,
                kvs,
                count,
            },
        }
    }

    /// Visits the keys of `lo..hi` live at `revision` (0: latest) in key order until `visit`
    /// returns false; the error etcd gives for a revision out of reach, before any visit.
    fn range_each(
        &self,
        lo: KeyId,
        hi: KeyId,
        revision: i64,
        mut visit: impl FnMut(KeyId, &KeyState) -> bool,
    ) -> Result<(), ErrorCode> {
        if revision > self.revision {
            return Err(ErrorCode::FutureRevision);
        }
        if revision > 0 && revision < self.compact_revision {
            return Err(ErrorCode::Compacted);
        }
        for key in lo..hi {
            let state = if revision == 0 {
                self.get(key)
            } else {
                self.get_at(key, revision)
            };
            if let Some(state) = state {
                if !visit(key, &state) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Deletes the live keys of `lo..hi` at `write_revision` in key order, showing each deleted
    /// (key, state) to `visit` until it returns false (the caller then abandons the write).
    fn delete_span(
        &mut self,
        lo: KeyId,
        hi: KeyId,
        write_revision: i64,
        mut visit: impl FnMut(KeyId, &KeyState) -> bool,
    ) {
        for key in lo..hi {
            if let Some(state) = self.get(key) {
                self.push_version(key, write_revision, None);
                if !visit(key, &state) {
                    return;
                }
            }
        }
    }

    /// Whether `compare` holds against the store as it was before the txn writing at
    /// `write_revision`. As in etcd (`compareToPath` runs before any write), a nested txn's
    /// compares see the state before the whole txn, not its parent's earlier writes.
    fn compare(&self, compare: &Cmp, write_revision: i64) -> bool {
        let versions = &self.keys[compare.key as usize];
        let state = match versions.last() {
            Some(last) if last.revision >= write_revision => {
                self.get_at(compare.key, write_revision - 1)
            }
            last => last.and_then(|version| version.state),
        };
        let left = match (compare.target, &state) {
            (CompareTarget::Value, None) => return false,
            (CompareTarget::Value, Some(state)) => i64::from(state.value),
            (CompareTarget::Version, _) => state.map_or(0, |state| state.version),
            (CompareTarget::Create, _) => state.map_or(0, |state| state.create_revision),
            (CompareTarget::Mod, _) => state.map_or(0, |state| state.mod_revision),
            (CompareTarget::Lease, _) => state.map_or(0, |state| state.lease),
        };
        match compare.op {
            CompareOp::Equal => left == compare.value,
            CompareOp::NotEqual => left != compare.value,
            CompareOp::Less => left < compare.value,
            CompareOp::Greater => left > compare.value,
        }
    }

    /// Whether any live key is attached to lease `id`.
    pub fn lease_has_keys(&self, id: i64) -> bool {
        self.leased
            .range((id, 0)..)
            .next()
            .is_some_and(|(owner, _)| *owner == id)
    }

    /// The live keys attached to lease `id`, in key order.
    pub fn keys_of_lease(&self, id: i64) -> impl Iterator<Item = KeyId> + '_ {
        self.leased
            .range((id, KeyId::MIN)..=(id, KeyId::MAX))
            .map(|&(_, key)| key)
    }

    /// How many keys of `lo..hi` are live.
    pub fn live_in(&self, lo: KeyId, hi: KeyId) -> i64 {
        let (lo, hi) = (lo as usize, hi as usize);
        if lo >= hi {
            return 0;
        }
        // The bits of `word` from `from` (inclusive) to `to` (exclusive), both within it.
        let bits = |word: usize, from: usize, to: usize| {
            let below_to = if to == 64 { u64::MAX } else { (1u64 << to) - 1 };
            i64::from((self.live[word] & below_to & !((1u64 << from) - 1)).count_ones())
        };
        let (first, last) = (lo / 64, (hi - 1) / 64);
        if first == last {
            return bits(first, lo % 64, (hi - 1) % 64 + 1);
        }
        let middle: i64 = self.live[first + 1..last]
            .iter()
            .map(|word| i64::from(word.count_ones()))
            .sum();
        bits(first, lo % 64, 64) + middle + bits(last, 0, (hi - 1) % 64 + 1)
    }

    /// (lease, key) for every live key attached to a lease, by lease and then key.
    pub fn leased_keys(&self) -> impl Iterator<Item = (i64, KeyId)> + '_ {
        self.leased.iter().copied()
    }

    /// Whether lease `id` is currently granted.
    pub fn has_lease(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Leases currently granted, ascending.
    pub fn lease_ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// Number of interned keys the store was built for.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// Top-level outcomes carry the store's revision after the operation (etcd's header revision).
fn fix_revision(outcome: Outcome, revision: i64) -> Outcome {
    match outcome {
        Outcome::Range { kvs, count, .. } => Outcome::Range {
            revision,
            kvs,
            count,
        },
        Outcome::Put { prev, prev_kv, .. } => Outcome::Put {
            revision,
            prev,
            prev_kv,
        },
        Outcome::Delete {
            deleted, prev_kv, ..
        } => Outcome::Delete {
            revision,
            deleted,
            prev_kv,
        },
        Outcome::Txn {
            succeeded,
            responses,
            ..
        } => Outcome::Txn {
            revision,
            succeeded,
            responses,
        },
        Outcome::LeaseRevoke { .. } => Outcome::LeaseRevoke { revision },
        Outcome::Compact { .. } => Outcome::Compact { revision },
        other => other,
    }
}

#[cfg(test)]
mod tests;
