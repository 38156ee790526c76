//! The client-facing API of a member, shaped after etcd's v3 `rpc.proto`: KV (range, put,
//! delete, txn, compact), Lease and Watch requests and their responses, and the errors a client
//! can be told. These are plain values: the simulator passes them directly, the server converts
//! them to and from protobuf, and raft log entries carry write requests encoded by `codec`.
//!
//! This module does not execute anything; `mvcc`, `lease`, `watch` and `member` do.

use crate::types::{LeaseId, NodeId, Revision, Term, WatchId};

/// A key with its value and MVCC metadata, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct KeyValue {
    /// The key bytes. Never empty.
    pub key: Vec<u8>,
    /// Revision of the last creation of this key.
    pub create_revision: Revision,
    /// Revision of the last modification of this key.
    pub mod_revision: Revision,
    /// Number of puts since the key's creation (1 after creation); reset by a delete.
    pub version: i64,
    /// The value bytes.
    pub value: Vec<u8>,
    /// The lease the key is attached to, or `LeaseId(0)`.
    pub lease: LeaseId,
}

/// The header every response carries, as etcd's `ResponseHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The cluster's id.
    pub cluster_id: u64,
    /// The member that answered.
    pub member_id: NodeId,
    /// The store's revision when the response was produced.
    pub revision: Revision,
    /// The raft term of the member when the response was produced.
    pub raft_term: Term,
}

/// Sort order of a range result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum SortOrder {
    /// Key order, the store's natural order.
    #[default]
    None,
    /// Ascending by the sort target.
    Ascend,
    /// Descending by the sort target.
    Descend,
}

/// What a range result is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value bytes.
    Value,
}

/// etcd's `RangeRequest`. `range_end` empty means the single key; `range_end == [0]` means every
/// key `>= key`; otherwise the half-open interval `[key, range_end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct RangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range, exclusive; see the type's doc.
    pub range_end: Vec<u8>,
    /// At most this many keys; 0 means no limit.
    pub limit: i64,
    /// Read at this revision; 0 means the latest.
    pub revision: Revision,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort target.
    pub sort_target: SortTarget,
    /// Serve from local state without a linearizable read barrier.
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Filter: mod revision >= this (0 = no filter).
    pub min_mod_revision: Revision,
    /// Filter: mod revision <= this (0 = no filter).
    pub max_mod_revision: Revision,
    /// Filter: create revision >= this (0 = no filter).
    pub min_create_revision: Revision,
    /// Filter: create revision <= this (0 = no filter).
    pub max_create_revision: Revision,
}

/// etcd's `RangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The header; `revision` is the store revision the read was served at.
    pub header: ResponseHeader,
    /// The matching keys (empty when `count_only`).
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched than `limit` allowed.
    pub more: bool,
    /// How many keys matched, ignoring `limit`.
    pub count: i64,
}

/// etcd's `PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PutRequest {
    /// The key. Must not be empty.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Attach the key to this lease (0 = none). The lease must exist.
    pub lease: LeaseId,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// etcd's `PutResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The header; `revision` is the revision of this put.
    pub header: ResponseHeader,
    /// The previous key-value, if asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's `DeleteRangeRequest`; `range_end` as in [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct DeleteRangeRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range, exclusive.
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// etcd's `DeleteRangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    /// The header; `revision` is the store revision after the delete.
    pub header: ResponseHeader,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted key-values, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// The comparison of a txn compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum CompareResult {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

/// What a txn compare looks at, with the operand to compare against.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum CompareTarget {
    /// The key's version.
    Version(i64),
    /// The key's create revision.
    Create(Revision),
    /// The key's mod revision.
    Mod(Revision),
    /// The key's value.
    Value(Vec<u8>),
    /// The key's lease.
    Lease(LeaseId),
}

/// etcd's `Compare`.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Compare {
    /// The key compared.
    pub key: Vec<u8>,
    /// Compare every key in `[key, range_end)` (empty = the single key).
    pub range_end: Vec<u8>,
    /// The comparison.
    pub result: CompareResult,
    /// The target and operand.
    pub target: CompareTarget,
}

/// One operation inside a txn branch.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum RequestOp {
    /// A range.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested txn.
    Txn(TxnRequest),
}

/// etcd's `TxnRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TxnRequest {
    /// All must hold for the success branch to run.
    pub compare: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    pub failure: Vec<RequestOp>,
}

/// The response of one operation inside a txn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseOp {
    /// A range's response.
    Range(RangeResponse),
    /// A put's response.
    Put(PutResponse),
    /// A delete's response.
    DeleteRange(DeleteRangeResponse),
    /// A nested txn's response.
    Txn(TxnResponse),
}

/// etcd's `TxnResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// The header; `revision` is the store revision after the txn.
    pub header: ResponseHeader,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// etcd's `CompactionRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CompactionRequest {
    /// Discard history below this revision.
    pub revision: Revision,
    /// Reply only once the compaction is physically done (always true here: it is synchronous).
    pub physical: bool,
}

/// etcd's `LeaseGrantRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct LeaseGrantRequest {
    /// Time to live in seconds.
    pub ttl_seconds: i64,
    /// The id to use; 0 lets the member choose.
    pub id: LeaseId,
}

/// etcd's `LeaseTimeToLiveRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseTimeToLiveRequest {
    /// The lease.
    pub id: LeaseId,
    /// Also list the attached keys.
    pub keys: bool,
}

/// Filters of a watch: events of these kinds are not delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchFilters {
    /// Drop put events.
    pub no_put: bool,
    /// Drop delete events.
    pub no_delete: bool,
}

/// etcd's `WatchCreateRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchCreateRequest {
    /// First key (or the only key).
    pub key: Vec<u8>,
    /// End of the range, exclusive, as in [`RangeRequest`].
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 means "from the next write".
    pub start_revision: Revision,
    /// Send periodic progress notifications when idle.
    pub progress_notify: bool,
    /// Event filters.
    pub filters: WatchFilters,
    /// Include the previous key-value in events.
    pub prev_kv: bool,
    /// Use this id; 0 lets the member choose.
    pub watch_id: WatchId,
    /// Split large responses into fragments.
    pub fragment: bool,
}

/// The kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// A put.
    Put,
    /// A delete (the kv carries the key and the delete's mod revision).
    Delete,
}

/// etcd's `mvccpb.Event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventType,
    /// The key-value after the event (for a delete: key and mod revision only).
    pub kv: KeyValue,
    /// The key-value before the event, if the watch asked for it and it existed.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's `WatchResponse`: events, a progress notification, a creation or a cancellation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchResponse {
    /// The header; for a progress notification `revision` is the bookmark.
    pub header: ResponseHeader,
    /// The watch this response belongs to.
    pub watch_id: WatchId,
    /// This response confirms the creation of the watch.
    pub created: bool,
    /// The watch is cancelled; no more responses follow.
    pub canceled: bool,
    /// Set when cancelled because the start revision was compacted.
    pub compact_revision: Revision,
    /// Why the watch was cancelled, for humans.
    pub cancel_reason: String,
    /// More fragments of this revision batch follow.
    pub fragment: bool,
    /// The events, in revision order.
    pub events: Vec<Event>,
}

/// Every request a client can send to a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// KV Range.
    Range(RangeRequest),
    /// KV Put.
    Put(PutRequest),
    /// KV DeleteRange.
    DeleteRange(DeleteRangeRequest),
    /// KV Txn.
    Txn(TxnRequest),
    /// KV Compact.
    Compact(CompactionRequest),
    /// Lease grant.
    LeaseGrant(LeaseGrantRequest),
    /// Lease revoke.
    LeaseRevoke {
        /// The lease.
        id: LeaseId,
    },
    /// One lease keep-alive round.
    LeaseKeepAlive {
        /// The lease.
        id: LeaseId,
    },
    /// Lease time-to-live query.
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    /// List every lease.
    LeaseLeases,
    /// Create a watch; its events arrive in `Actions::notify`.
    WatchCreate(WatchCreateRequest),
    /// Cancel a watch.
    WatchCancel {
        /// The watch.
        watch_id: WatchId,
    },
    /// Ask for a progress notification on every watch of the member.
    WatchProgress,
    /// Change the membership (etcd's MemberAdd as a learner, MemberPromote, MemberRemove):
    /// proposed through the log and answered once this member applied it.
    MemberChange(crate::raft::ConfChange),
    /// A membership change carrying the host's opaque context for the member (etcd's member
    /// attributes: its peer URLs), replicated with the change, kept with the membership and in
    /// snapshots, and read back with `Member::member_contexts`.
    MemberChangeWithContext {
        /// The change.
        change: crate::raft::ConfChange,
        /// The host's bytes for the member; empty keeps none (and drops one on `Update`).
        context: Vec<u8>,
    },
    /// Hand leadership to `target` (etcd's MoveLeader); the leader answers once the transfer
    /// started, and stops taking proposals until it ends.
    MoveLeader {
        /// The voter to hand leadership to.
        target: NodeId,
    },
    /// etcd's Auth service.
    Auth(crate::auth::AuthRequest),
}

/// The successful response to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// To `Range`.
    Range(RangeResponse),
    /// To `Put`.
    Put(PutResponse),
    /// To `DeleteRange`.
    DeleteRange(DeleteRangeResponse),
    /// To `Txn`.
    Txn(TxnResponse),
    /// To `Compact`.
    Compact {
        /// The header.
        header: ResponseHeader,
    },
    /// To `LeaseGrant`.
    LeaseGrant {
        /// The header.
        header: ResponseHeader,
        /// The granted lease.
        id: LeaseId,
        /// Its time to live in seconds.
        ttl_seconds: i64,
    },
    /// To `LeaseRevoke`.
    LeaseRevoke {
        /// The header.
        header: ResponseHeader,
    },
    /// To `LeaseKeepAlive`.
    LeaseKeepAlive {
        /// The header.
        header: ResponseHeader,
        /// The lease.
        id: LeaseId,
        /// The renewed time to live in seconds.
        ttl_seconds: i64,
    },
    /// To `LeaseTimeToLive`.
    LeaseTimeToLive {
        /// The header.
        header: ResponseHeader,
        /// The lease.
        id: LeaseId,
        /// Remaining seconds (-1 if the lease has expired or does not exist).
        ttl_seconds: i64,
        /// The TTL the lease was granted with.
        granted_ttl_seconds: i64,
        /// Attached keys, when asked for.
        keys: Vec<Vec<u8>>,
    },
    /// To `LeaseLeases`.
    LeaseLeases {
        /// The header.
        header: ResponseHeader,
        /// Every lease, in id order.
        leases: Vec<LeaseId>,
    },
    /// To `WatchCreate`: the created watch (its events follow in `Actions::notify`).
    WatchCreated {
        /// The header.
        header: ResponseHeader,
        /// The new watch's id.
        watch_id: WatchId,
    },
    /// To `WatchCancel`.
    WatchCanceled {
        /// The header.
        header: ResponseHeader,
        /// The cancelled watch.
        watch_id: WatchId,
    },
    /// To `WatchProgress`: the notifications go out in `Actions::notify`.
    WatchProgressRequested {
        /// The header.
        header: ResponseHeader,
    },
    /// To `MemberChange`: the membership after the change applied.
    MemberChanged {
        /// The header.
        header: ResponseHeader,
        /// The voters.
        voters: Vec<NodeId>,
        /// The learners.
        learners: Vec<NodeId>,
    },
    /// To `MoveLeader`: the transfer started.
    MoveLeaderStarted {
        /// The header.
        header: ResponseHeader,
    },
    /// To `Auth`.
    Auth {
        /// The header.
        header: ResponseHeader,
        /// The answer.
        response: crate::auth::AuthResponse,
    },
}

/// What a client can be told when its request failed. Every variant is definite (the request did
/// not take effect) except `Timeout`-like host outcomes, which the host records, not the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// This member cannot serve the request now (no leader known, or it is not the leader and
    /// could not forward). Retry, preferably at `leader_hint`.
    NotLeader {
        /// The leader this member believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// The requested revision was compacted away.
    Compacted {
        /// What was asked for.
        requested: Revision,
        /// The compaction point.
        compacted: Revision,
    },
    /// The requested revision is in the future.
    FutureRevision {
        /// What was asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The named lease does not exist.
    LeaseNotFound {
        /// The lease.
        lease: LeaseId,
    },
    /// A lease grant named an id that is taken.
    LeaseExists {
        /// The lease.
        lease: LeaseId,
    },
    /// A lease grant asked for a TTL beyond the maximum.
    LeaseTtlTooLarge {
        /// Requested seconds.
        ttl_seconds: i64,
    },
    /// The request is larger than the member accepts.
    TooLarge {
        /// Encoded size.
        size_bytes: u32,
        /// The limit.
        size_bytes_max: u32,
    },
    /// A txn has more operations than allowed.
    TooManyOps {
        /// Operations in the txn.
        ops_count: u32,
        /// The limit.
        ops_count_max: u32,
    },
    /// A txn writes one key twice.
    DuplicateKey,
    /// A key is empty.
    EmptyKey,
    /// `ignore_value` or `ignore_lease` on a key that does not exist.
    KeyNotFound,
    /// A put with `ignore_value` also carries a value.
    ValueProvided,
    /// A put with `ignore_lease` also names a lease.
    LeaseProvided,
    /// A watch id given by the client is taken.
    WatchIdExists {
        /// The watch.
        watch_id: WatchId,
    },
    /// The named watch does not exist.
    WatchNotFound {
        /// The watch.
        watch_id: WatchId,
    },
    /// The member's queue for this kind of request is full; retry later.
    TooManyRequests,
    /// Leadership changed or the member stepped down while the request was in flight: the
    /// outcome of a write is then unknown, so this error is not definite for writes.
    LeaderChanged,
    /// The member is stopping or halted.
    Stopping,
    /// A membership change or leader transfer that does not fit the membership now (a
    /// learner added twice, a promotion of a voter, removing the last voter, a transfer to a
    /// member that does not vote), or another change is still being applied.
    MemberChangeRefused,
    /// Refused by auth (etcd's auth errors: permission denied, old auth revision, ...).
    Auth(crate::auth::AuthError),
}

impl RequestError {
    /// etcd's name for the error, as recorded in histories (`result.code`).
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::NotLeader { .. } => "unavailable",
            RequestError::Compacted { .. } => "compacted",
            RequestError::FutureRevision { .. } => "future_revision",
            RequestError::LeaseNotFound { .. } => "lease_not_found",
            RequestError::LeaseExists { .. } => "lease_exists",
            RequestError::LeaseTtlTooLarge { .. } => "lease_ttl_too_large",
            RequestError::TooLarge { .. } => "request_too_large",
            RequestError::TooManyOps { .. } => "too_many_operations",
            RequestError::DuplicateKey => "duplicate_key",
            RequestError::EmptyKey => "empty_key",
            RequestError::KeyNotFound => "key_not_found",
            RequestError::ValueProvided => "value_provided",
            RequestError::LeaseProvided => "lease_provided",
            RequestError::WatchIdExists { .. } => "watch_id_exists",
            RequestError::WatchNotFound { .. } => "watch_not_found",
            RequestError::TooManyRequests => "too_many_requests",
            RequestError::LeaderChanged => "leader_changed",
            RequestError::Stopping => "stopping",
            RequestError::MemberChangeRefused => "member_change_refused",
            RequestError::Auth(error) => error.code(),
        }
    }

    /// etcd's error string, exactly as etcd's gRPC status carries it: etcd clients recognise
    /// errors by this text, so it must not change.
    pub fn etcd_text(&self) -> &'static str {
        match self {
            RequestError::NotLeader { leader_hint: None } => "etcdserver: no leader",
            RequestError::NotLeader { .. } => "etcdserver: not leader",
            RequestError::Compacted { .. } => "mvcc: required revision has been compacted",
            RequestError::FutureRevision { .. } => "mvcc: required revision is a future revision",
            RequestError::LeaseNotFound { .. } => "etcdserver: requested lease not found",
            RequestError::LeaseExists { .. } => "etcdserver: lease already exists",
            RequestError::LeaseTtlTooLarge { .. } => "etcdserver: too large lease TTL",
            RequestError::TooLarge { .. } => "etcdserver: request is too large",
            RequestError::TooManyOps { .. } => "etcdserver: too many operations in txn request",
            RequestError::DuplicateKey => "etcdserver: duplicate key given in txn request",
            RequestError::EmptyKey => "etcdserver: key is not provided",
            RequestError::KeyNotFound => "etcdserver: key not found",
            RequestError::ValueProvided => "etcdserver: value is provided",
            RequestError::LeaseProvided => "etcdserver: lease is provided",
            RequestError::WatchIdExists { .. } => {
                "mvcc: duplicate watch ID provided on the WatchStream"
            }
            RequestError::WatchNotFound { .. } => "mvcc: watcher does not exist",
            RequestError::TooManyRequests => "etcdserver: too many requests",
            RequestError::LeaderChanged => "etcdserver: leader changed",
            RequestError::Stopping => "etcdserver: server stopped",
            RequestError::MemberChangeRefused => "etcdserver: unhealthy cluster",
            RequestError::Auth(error) => error.etcd_text(),
        }
    }

    /// etcd's error string for the error (what etcd's gRPC status carries and clients match on),
    /// with the details etcd leaves out added after a semicolon where they help a reader.
    pub fn message(&self) -> String {
        match self {
            RequestError::NotLeader { leader_hint: None } => "etcdserver: no leader".into(),
            RequestError::NotLeader {
                leader_hint: Some(leader),
            } => format!("etcdserver: not leader; leader is member {leader}"),
            RequestError::Compacted {
                requested,
                compacted,
            } => format!(
                "mvcc: required revision has been compacted; asked for {requested}, compacted at {compacted}"
            ),
            RequestError::FutureRevision { requested, current } => format!(
                "mvcc: required revision is a future revision; asked for {requested}, current is {current}"
            ),
            RequestError::LeaseNotFound { lease } => {
                format!("etcdserver: requested lease not found; lease {lease}")
            }
            RequestError::LeaseExists { lease } => {
                format!("etcdserver: lease already exists; lease {lease}")
            }
            RequestError::LeaseTtlTooLarge { ttl_seconds } => {
                format!("etcdserver: too large lease TTL; {ttl_seconds} s")
            }
            RequestError::TooLarge {
                size_bytes,
                size_bytes_max,
            } => format!(
                "etcdserver: request is too large; {size_bytes} bytes, at most {size_bytes_max}"
            ),
            RequestError::TooManyOps {
                ops_count,
                ops_count_max,
            } => format!(
                "etcdserver: too many operations in txn request; {ops_count}, at most {ops_count_max}"
            ),
            RequestError::DuplicateKey => "etcdserver: duplicate key given in txn request".into(),
            RequestError::EmptyKey => "etcdserver: key is not provided".into(),
            RequestError::KeyNotFound => "etcdserver: key not found".into(),
            RequestError::ValueProvided => "etcdserver: value is provided".into(),
            RequestError::LeaseProvided => "etcdserver: lease is provided".into(),
            RequestError::WatchIdExists { watch_id } => {
                format!("mvcc: duplicate watch ID provided on the WatchStream; watch {watch_id}")
            }
            RequestError::WatchNotFound { watch_id } => {
                format!("mvcc: watcher does not exist; watch {watch_id}")
            }
            RequestError::TooManyRequests => "etcdserver: too many requests".into(),
            RequestError::LeaderChanged => "etcdserver: leader changed".into(),
            RequestError::Stopping => "etcdserver: server stopped".into(),
            RequestError::MemberChangeRefused => {
                "etcdserver: unhealthy cluster; the membership change does not fit now".into()
            }
            RequestError::Auth(error) => error.etcd_text().into(),
        }
    }

    /// Whether the error proves the request did not take effect. `LeaderChanged` on a write
    /// does not: the proposal may still commit.
    pub fn is_definite(&self) -> bool {
        !matches!(self, RequestError::LeaderChanged | RequestError::Stopping)
    }
}
