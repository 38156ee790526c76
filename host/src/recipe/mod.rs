//! etcd's lock and election recipes as sans-I/O state machines over the client API: each takes
//! the answers to the requests it asked for and the watch responses of the watch it opened, and
//! says what to do next ([`Next`]). They hold no socket, clock or task, so the real server drives
//! them against its member task (`server::recipes`) and the simulator can drive the very same
//! machines against simulated members.
//!
//! The recipes are etcd's (`clientv3/concurrency`), which its lock and election services run
//! in-process: an owner puts a key `name/<lease id in hex>` with its lease, created only if
//! absent (a create-revision compare in a txn); the key with the lowest create revision under
//! `name/` owns the lock or leads the election; a waiter waits until every key created before
//! its own is gone. The key's create revision is the fencing token: a write guarded by a txn
//! comparing it can never land once ownership moved on.
//!
//! One deliberate difference from etcd 3.4: a waiter whose own key disappears while it waits
//! (its lease expired or was revoked) fails at once ([`RecipeError::SessionExpired`] or
//! [`RecipeError::NotLeader`]) instead of "acquiring" a lock whose key no longer exists (etcd
//! 3.4 returns success there; later etcd checks the key after waiting, as this does too). To see
//! that deletion while waiting, a waiter watches the deletions under the whole prefix rather
//! than only its predecessor key; it re-reads only when the predecessor (or its own key) goes.
//!
//! The driver's contract: call `start`, then feed the answer of every [`Next::Send`] to
//! `on_answer` and every response of the watch of the latest [`Next::Watch`] to `on_watch`;
//! any `Next` other than [`Next::Wait`] and [`Next::Emit`] ends the watch opened before (the
//! driver cancels it). After an [`Next::Emit`], call `resume`. If the driver gives up before
//! [`Next::Done`] (or `Done` carries an error), it sends `abandon`'s request, if any, so a key
//! left behind does not make every later owner wait for its lease.

pub mod election;
pub mod lock;

use engine::kv::{
    Compare, CompareResult, CompareTarget, KeyValue, LeaseGrantRequest, RangeRequest,
    RangeResponse, Request, RequestError, RequestOp, Response, ResponseHeader, ResponseOp,
    SortOrder, SortTarget, TxnRequest, TxnResponse, WatchCreateRequest, WatchFilters,
    WatchResponse,
};
use engine::types::{LeaseId, Revision};

/// The TTL of the lease etcd's lock and election services grant for a request naming no lease
/// (clientv3/concurrency's default session TTL).
pub const SESSION_TTL_SECONDS: i64 = 60;

/// What a recipe's driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// Send this request; feed its answer to `on_answer`.
    Send(Request),
    /// Open this watch (ending any watch opened before); feed its responses to `on_watch`.
    Watch(WatchCreateRequest),
    /// Keep the open watch and feed its next response to `on_watch`.
    Wait,
    /// Hand this to the caller, then call `resume` (only a stream, `Observe`, emits).
    Emit(T),
    /// Finished; nothing more to send (but see `abandon` on an error).
    Done(Result<T, RecipeError>),
}

/// Why a recipe failed. `message` is etcd's text for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipeError {
    /// The lock or election name is empty. etcd 3.4 accepts it and uses the prefix `/`, which
    /// holds the keys of every name beginning with `/`, so such a lock waits on strangers.
    EmptyName,
    /// Proclaim or Resign named no leader key (etcd's `ErrMissingLeaderKey`).
    MissingLeaderKey,
    /// A request the recipe sent failed.
    Request(RequestError),
    /// The lock's own key was deleted while it waited: its lease expired or was revoked.
    SessionExpired,
    /// The caller does not lead the election (its key is gone or was replaced).
    NotLeader,
    /// Nobody leads the election.
    NoLeader,
    /// An answer of the wrong kind came back (a driver's mistake, never the store's).
    Unexpected(String),
}

impl RecipeError {
    /// etcd's text for the error (clients match on it).
    pub fn message(&self) -> String {
        match self {
            RecipeError::EmptyName => "etcdserver: name is not provided".into(),
            RecipeError::MissingLeaderKey => "\"leader\" field must be provided".into(),
            RecipeError::Request(error) => error.etcd_text().into(),
            RecipeError::SessionExpired => "mutex: session is expired".into(),
            RecipeError::NotLeader => "election: not leader".into(),
            RecipeError::NoLeader => "election: no leader".into(),
            RecipeError::Unexpected(what) => format!("unexpected answer: {what}"),
        }
    }
}

/// The first key after every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range runs to the end of the keyspace.
    vec![0]
}

/// An owner's key: `prefix` (`name/`) followed by the lease id in lower-case hex, as etcd
/// names it (the id's two's-complement bits for a negative id, as Go's `%x` of an unsigned id).
pub fn owner_key(prefix: &[u8], lease: LeaseId) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{:x}", lease.0 as u64).as_bytes());
    key
}

/// The prefix of a lock or election `name`: `name/`.
pub fn name_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// The oldest key under `prefix` (the owner or leader): a range sorted by create revision.
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend,
        sort_target: SortTarget::Create,
        ..RangeRequest::default()
    }
}

/// `key`'s create revision compared with `revision` (0: the key does not exist).
pub fn create_revision_is(key: &[u8], revision: Revision) -> Compare {
    Compare {
        key: key.to_vec(),
        range_end: Vec::new(),
        result: CompareResult::Equal,
        target: CompareTarget::Create(revision),
    }
}

/// A range of the single `key`.
fn single(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..RangeRequest::default()
    }
}

/// The session lease a recipe asks for when its caller gave none (lease 0), as etcd's
/// `concurrency.NewSession` grants one of [`SESSION_TTL_SECONDS`].
fn session_grant<T>() -> Next<T> {
    Next::Send(Request::LeaseGrant(LeaseGrantRequest {
        ttl_seconds: SESSION_TTL_SECONDS,
        id: LeaseId(0),
    }))
}

/// The lease `answer` granted, or the error to finish with.
fn granted(answer: Result<Response, RequestError>) -> Result<LeaseId, RecipeError> {
    match answer.map_err(RecipeError::Request)? {
        Response::LeaseGrant { id, .. } => Ok(id),
        other => Err(RecipeError::Unexpected(format!("{other:?}"))),
    }
}

/// The txn of `answer`, or the error to finish with.
fn txn_of(answer: Result<Response, RequestError>) -> Result<TxnResponse, RecipeError> {
    match answer.map_err(RecipeError::Request)? {
        Response::Txn(txn) => Ok(txn),
        other => Err(RecipeError::Unexpected(format!("{other:?}"))),
    }
}

/// The range of `answer`, or the error to finish with.
fn range_of(answer: Result<Response, RequestError>) -> Result<RangeResponse, RecipeError> {
    match answer.map_err(RecipeError::Request)? {
        Response::Range(range) => Ok(range),
        other => Err(RecipeError::Unexpected(format!("{other:?}"))),
    }
}

/// The `index`-th response of a txn, if it is a range.
fn txn_range(txn: &TxnResponse, index: usize) -> Result<&RangeResponse, RecipeError> {
    match txn.responses.get(index) {
        Some(ResponseOp::Range(range)) => Ok(range),
        other => Err(RecipeError::Unexpected(format!("txn response {other:?}"))),
    }
}

/// The waiting half both recipes share: until no key under `prefix` was created before the
/// owner's `key` (created at `revision`), while the owner's key still exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WaitDeletes {
    prefix: Vec<u8>,
    key: Vec<u8>,
    revision: Revision,
    /// The youngest key created before `key`, while one is watched.
    predecessor: Option<Vec<u8>>,
}

/// Where waiting stands after an answer or a watch response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Waited {
    /// Send or open this.
    Next(Next<()>),
    /// Every older key is gone and the owner's key exists: owned, as of `header`.
    Owned(ResponseHeader),
    /// The owner's key is gone.
    KeyLost,
}

impl WaitDeletes {
    pub(crate) fn new(prefix: Vec<u8>, key: Vec<u8>, revision: Revision) -> WaitDeletes {
        WaitDeletes {
            prefix,
            key,
            revision,
            predecessor: None,
        }
    }

    /// One read of the youngest older key and the owner's own key, at one revision.
    pub(crate) fn read(&mut self) -> Request {
        self.predecessor = None;
        let youngest_older = RangeRequest {
            key: self.prefix.clone(),
            range_end: prefix_end(&self.prefix),
            limit: 1,
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Create,
            max_create_revision: Revision(self.revision.0 - 1),
            ..RangeRequest::default()
        };
        Request::Txn(TxnRequest {
            compare: Vec::new(),
            success: vec![
                RequestOp::Range(youngest_older),
                RequestOp::Range(single(&self.key)),
            ],
            failure: Vec::new(),
        })
    }

    /// The answer to `read`.
    pub(crate) fn on_read(
        &mut self,
        answer: Result<Response, RequestError>,
    ) -> Result<Waited, RecipeError> {
        let txn = txn_of(answer)?;
        if txn_range(&txn, 1)?.kvs.is_empty() {
            return Ok(Waited::KeyLost);
        }
        let Some(older) = txn_range(&txn, 0)?.kvs.first() else {
            return Ok(Waited::Owned(txn.header));
        };
        self.predecessor = Some(older.key.clone());
        // Deletions only, under the whole prefix, from just after the read: the owner's key
        // going is news too (a lease that expired while waiting).
        Ok(Waited::Next(Next::Watch(WatchCreateRequest {
            key: self.prefix.clone(),
            range_end: prefix_end(&self.prefix),
            start_revision: Revision(txn.header.revision.0 + 1),
            filters: WatchFilters {
                no_put: true,
                no_delete: false,
            },
            ..WatchCreateRequest::default()
        })))
    }

    /// A response of the watch `on_read` opened.
    pub(crate) fn on_watch(&mut self, response: &WatchResponse) -> Waited {
        if response.canceled {
            // Compacted or cancelled under it: read again; the read says where things stand.
            return Waited::Next(Next::Send(self.read()));
        }
        for event in &response.events {
            if event.kv.key == self.key {
                return Waited::KeyLost;
            }
            if Some(&event.kv.key) == self.predecessor.as_ref() {
                return Waited::Next(Next::Send(self.read()));
            }
        }
        Waited::Next(Next::Wait)
    }
}

/// The key-value a leader answer carries.
fn first_kv(range: &RangeResponse) -> Option<&KeyValue> {
    range.kvs.first()
}

/// A recipe the server or the simulator drives (see the module's doc for the contract).
pub trait Recipe {
    /// What it finishes with (or emits, for a stream).
    type Output;
    /// The first step.
    fn start(&mut self) -> Next<Self::Output>;
    /// The answer to the last [`Next::Send`].
    fn on_answer(&mut self, answer: Result<Response, RequestError>) -> Next<Self::Output>;
    /// A response of the watch of the last [`Next::Watch`].
    fn on_watch(&mut self, response: &WatchResponse) -> Next<Self::Output>;
    /// The step after an [`Next::Emit`].
    fn resume(&mut self) -> Next<Self::Output> {
        Next::Wait
    }
    /// The request that undoes a half-done recipe when its caller gives up (or it failed while
    /// waiting): the waiter's key is deleted, as etcd's recipes do.
    fn abandon(&mut self) -> Option<Request> {
        None
    }
}

/// `Next<()>` from waiting as a step of a recipe with output `T`.
fn lift<T>(next: Next<()>) -> Next<T> {
    match next {
        Next::Send(request) => Next::Send(request),
        Next::Watch(watch) => Next::Watch(watch),
        Next::Wait | Next::Emit(()) => Next::Wait,
        Next::Done(Ok(())) => Next::Wait,
        Next::Done(Err(error)) => Next::Done(Err(error)),
    }
}

#[cfg(test)]
mod tests;
