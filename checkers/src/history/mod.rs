//! The history format (docs/history-format.md; version 2, a superset of version 1) as Rust values: operations, their requests and
//! results, and watch observations, with a reader and a writer that follow the format exactly.
//!
//! These types carry bytes and recorded fields only; they do not interpret them (the sequential
//! store in `model` does). Every result field is optional because producers may record less.

mod auth;
mod base64;
mod read;
mod write;

pub use auth::{AuthOp, PermissionKind};
pub use base64::encode as encode_base64;
pub use read::{parse_history, parse_line, HistoryError, Line};
pub use write::{lock_json, operation_to_json, request_to_json, watch_to_json, write_history};

/// Keys and values are arbitrary bytes; UTF-8 ones are written as strings, others as base64.
pub type Bytes = Vec<u8>;

/// A whole history: client operations and watch observations, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The client operations.
    pub ops: Vec<Operation>,
    /// The watch streams observed (may also come from a separate file).
    pub watches: Vec<WatchRecord>,
}

/// A history borrowed in parts: `check_all` judges a history's operations with watches kept
/// apart, without copying either into one `History`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistoryView<'a> {
    /// The client operations.
    pub ops: &'a [Operation],
    /// The watch streams observed.
    pub watches: &'a [WatchRecord],
}

impl<'a> HistoryView<'a> {
    /// The whole of `history`.
    pub(crate) fn of(history: &'a History) -> HistoryView<'a> {
        HistoryView {
            ops: &history.ops,
            watches: &history.watches,
        }
    }
}

/// One client operation: a request, when it was issued, and what came back (if anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Unique per operation within the history.
    pub id: u64,
    /// The client; one client has at most one operation outstanding.
    pub client: u64,
    /// Time the request was issued.
    pub call: i64,
    /// Time the response arrived; `None` when the outcome is unknown.
    pub ret: Option<i64>,
    /// The request.
    pub request: Request,
    /// The response; `None` exactly when `ret` is `None`.
    pub result: Option<Response>,
    /// The user the request ran as (version 2); `None` when it carried no credentials.
    pub user: Option<String>,
    /// What a lock client says the operation was for (the optional `lock` field); `None` for
    /// every operation that is not a lock's acquisition, fenced write or release.
    pub lock: Option<LockNote>,
}

/// A lock client's note on one of its operations (the optional `lock` field of an operation,
/// docs/history-format.md "Locks"): which lock, which step, the holder's owner key and its
/// fencing token (the owner key's create revision). The mutual-exclusion checker (`locks`)
/// reads these; every other checker ignores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockNote {
    /// The lock's name (its keys are under `name/`).
    pub name: Bytes,
    /// What the operation did for the holder.
    pub step: LockStep,
    /// The holder's owner key.
    pub key: Bytes,
    /// The owner key's create revision: the fencing token.
    pub token: i64,
}

/// The step of a lock operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStep {
    /// The client concluded from this operation's answer that it holds the lock.
    Acquired,
    /// A write made under the lock, fenced: a txn comparing the owner key's create revision
    /// with the token.
    Fenced,
    /// The unlock: the delete of the owner key.
    Released,
}

impl LockStep {
    /// The step's name in the format.
    pub fn name(self) -> &'static str {
        match self {
            LockStep::Acquired => "acquired",
            LockStep::Fenced => "fenced",
            LockStep::Released => "released",
        }
    }
}

/// A client request (`op.type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Range read.
    Range(RangeRequest),
    /// Put one key.
    Put(PutRequest),
    /// DeleteRange.
    Delete(DeleteRequest),
    /// Transaction with compares.
    Txn(TxnRequest),
    /// LeaseGrant; `id` 0 lets the server choose.
    LeaseGrant {
        /// Requested time to live, seconds.
        ttl_seconds: i64,
        /// Requested id, 0 for "server chooses".
        id: i64,
    },
    /// LeaseRevoke.
    LeaseRevoke {
        /// The lease.
        id: i64,
    },
    /// One LeaseKeepAlive round.
    LeaseKeepAlive {
        /// The lease.
        id: i64,
    },
    /// Compact.
    Compact {
        /// Compact all revisions below this one.
        revision: i64,
    },
    /// An Auth service request (version 2).
    Auth(AuthOp),
}

/// A range read; `range_end` `Some(b"\0")` means "every key from `key`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    /// First key.
    pub key: Bytes,
    /// End of the range (exclusive); `None` reads `key` alone.
    pub range_end: Option<Bytes>,
    /// Read at this revision; 0 is the latest.
    pub revision: i64,
    /// At most this many kvs; 0 is unlimited.
    pub limit: i64,
    /// Serializable reads may be stale and are not constrained by linearizability.
    pub serializable: bool,
}

/// A put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// Lease to attach, 0 for none.
    pub lease: i64,
    /// Ask for the previous kv.
    pub prev_kv: bool,
}

/// A delete of one key or a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// First key.
    pub key: Bytes,
    /// End of the range (exclusive); `None` deletes `key` alone.
    pub range_end: Option<Bytes>,
    /// Ask for the deleted kvs.
    pub prev_kv: bool,
}

/// A transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRequest {
    /// All must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Requests run when every compare holds.
    pub success: Vec<Request>,
    /// Requests run otherwise.
    pub failure: Vec<Request>,
}

/// One txn compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: Bytes,
    /// What is compared.
    pub target: CompareTarget,
    /// How.
    pub op: CompareOp,
    /// Against what.
    pub value: CompareValue,
}

/// The field a compare looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareTarget {
    /// The value bytes.
    Value,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The lease id.
    Lease,
}

/// A compare operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

/// The right-hand side of a compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareValue {
    /// For target `value`.
    Bytes(Bytes),
    /// For the integer targets.
    Int(i64),
}

/// A key-value as recorded; every field but the key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Option<Bytes>,
    /// Revision of the key's creation.
    pub create_revision: Option<i64>,
    /// Revision of the key's last modification.
    pub mod_revision: Option<i64>,
    /// Puts since creation.
    pub version: Option<i64>,
    /// Attached lease, 0 for none.
    pub lease: Option<i64>,
}

/// A result (`result.type`); every field optional, a checker constrains only what is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Range result.
    Range {
        /// Store revision at the read.
        revision: Option<i64>,
        /// The kvs returned.
        kvs: Option<Vec<KeyValue>>,
        /// The number of keys in the range (before `limit`).
        count: Option<i64>,
    },
    /// Put result. `prev_kv`: absent = not recorded, `Some(None)` = recorded as no previous key.
    Put {
        /// Revision of the put.
        revision: Option<i64>,
        /// Previous kv.
        prev_kv: Option<Option<KeyValue>>,
    },
    /// Delete result.
    Delete {
        /// Store revision after the delete.
        revision: Option<i64>,
        /// Number of keys deleted.
        deleted: Option<i64>,
        /// The deleted kvs.
        prev_kvs: Option<Vec<KeyValue>>,
    },
    /// Txn result.
    Txn {
        /// Store revision after the txn.
        revision: Option<i64>,
        /// Whether the compares held.
        succeeded: Option<bool>,
        /// One result per request of the branch taken.
        responses: Option<Vec<Response>>,
    },
    /// LeaseGrant result.
    LeaseGrant {
        /// The lease id.
        id: Option<i64>,
        /// Granted TTL, seconds.
        ttl_seconds: Option<i64>,
    },
    /// LeaseRevoke result.
    LeaseRevoke {
        /// Store revision after the revoke.
        revision: Option<i64>,
    },
    /// LeaseKeepAlive result.
    LeaseKeepAlive {
        /// Remaining TTL, seconds.
        ttl_seconds: Option<i64>,
    },
    /// Compact result.
    Compact {
        /// Store revision at the compaction.
        revision: Option<i64>,
    },
    /// An auth request's success (version 2).
    Auth {
        /// Store revision when it applied.
        revision: Option<i64>,
    },
    /// A definite error: the operation did not take effect.
    Error {
        /// etcd's error name (`compacted`, `future_revision`, `lease_not_found`, ...).
        code: String,
        /// Free text.
        message: Option<String>,
    },
}

/// A watch stream as observed by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRecord {
    /// Unique per watch.
    pub watch: u64,
    /// The client.
    pub client: u64,
    /// Time the watch was created.
    pub call: i64,
    /// First key.
    pub key: Bytes,
    /// End of the range; `None` watches `key` alone.
    pub range_end: Option<Bytes>,
    /// First revision asked for; 0 means "from now".
    pub start_revision: i64,
    /// Whether events carry the previous kv.
    pub prev_kv: bool,
    /// The events, in arrival order.
    pub events: Vec<WatchEvent>,
    /// Progress notifications (bookmarks) received, in arrival order. An optional extension
    /// of the format (`"progress"`): a reader that ignores it stays sound, it only checks less.
    pub progress: Vec<WatchProgress>,
    /// `None` while the stream was still open at the end of the history.
    pub canceled: Option<WatchCancel>,
}

/// One progress notification on a watch stream: etcd promises that every event of the watch's
/// range up to `revision` was sent before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchProgress {
    /// Arrival time.
    pub time: i64,
    /// The bookmark revision.
    pub revision: i64,
    /// How many of the stream's events arrived before it (the notification's place in the
    /// stream; without it in the file, the events that arrived at or before `time`).
    pub events_before: usize,
}

/// One watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Arrival time.
    pub time: i64,
    /// Revision of the change.
    pub revision: i64,
    /// Put or delete.
    pub kind: EventKind,
    /// The kv after the change (for a delete: the key, with its deletion revision).
    pub kv: KeyValue,
    /// The kv before the change, when asked for.
    pub prev_kv: Option<KeyValue>,
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// How a watch stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchCancel {
    /// When.
    pub time: i64,
    /// Why (free text).
    pub reason: String,
    /// Set when canceled because the start revision was compacted.
    pub compact_revision: Option<i64>,
}

impl Request {
    /// The etcd request name, as in `op.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::Range(_) => "range",
            Request::Put(_) => "put",
            Request::Delete(_) => "delete",
            Request::Txn(_) => "txn",
            Request::LeaseGrant { .. } => "lease_grant",
            Request::LeaseRevoke { .. } => "lease_revoke",
            Request::LeaseKeepAlive { .. } => "lease_keepalive",
            Request::Compact { .. } => "compact",
            Request::Auth(op) => op.type_name(),
        }
    }
}

/// Renders bytes for humans: as a quoted string when UTF-8, else as hex.
pub fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// A one-line human rendering of a request, e.g. `put "a"="1"`.
pub fn describe_request(request: &Request) -> String {
    let span = |key: &[u8], end: &Option<Bytes>| match end {
        None => show_bytes(key),
        Some(end) if end.as_slice() == [0] => format!("{}..", show_bytes(key)),
        Some(end) => format!("{}..{}", show_bytes(key), show_bytes(end)),
    };
    match request {
        Request::Range(range) if range.revision != 0 => {
            format!(
                "range {} at revision {}",
                span(&range.key, &range.range_end),
                range.revision
            )
        }
        Request::Range(range) => format!("range {}", span(&range.key, &range.range_end)),
        Request::Put(put) => format!("put {}={}", show_bytes(&put.key), show_bytes(&put.value)),
        Request::Delete(delete) => format!("delete {}", span(&delete.key, &delete.range_end)),
        Request::Txn(txn) => {
            let inner = |list: &[Request]| {
                list.iter()
                    .map(describe_request)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            format!(
                "txn ({} compares) then [{}] else [{}]",
                txn.compare.len(),
                inner(&txn.success),
                inner(&txn.failure)
            )
        }
        Request::LeaseGrant { ttl_seconds, id } => format!("lease_grant id={id} ttl={ttl_seconds}"),
        Request::LeaseRevoke { id } => format!("lease_revoke {id}"),
        Request::LeaseKeepAlive { id } => format!("lease_keepalive {id}"),
        Request::Compact { revision } => format!("compact {revision}"),
        Request::Auth(op) => op.describe(),
    }
}
