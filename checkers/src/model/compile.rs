//! Compiling history requests and results into the model's compact form: every key and value is
//! interned to a small integer whose order is the byte order, so the store compares and hashes
//! integers instead of byte strings.
//!
//! It does not decide anything about correctness; it only translates (and renders back).

use super::auth::{AuthCmd, NameId, PermRange};
use super::intern::ByteIndex;
use crate::history::{
    self, Bytes, CompareOp, CompareTarget, CompareValue, KeyValue, Request, Response,
};

/// An interned key; ids are ordered as the keys' bytes.
pub type KeyId = u32;
/// An interned value; ids are ordered as the values' bytes.
pub type ValueId = u32;

/// Sorted tables of every key and value a history mentions.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    keys: Vec<Bytes>,
    values: Vec<Bytes>,
    /// Positions in `keys`, by bytes (see `intern`).
    key_index: ByteIndex,
    /// Positions in `values`, by bytes.
    value_index: ByteIndex,
    /// User and role names (version 2), `"root"` first; empty for a history without auth.
    names: Vec<String>,
}

/// Distinct byte strings borrowed from the history, in first-seen order.
#[derive(Default)]
struct Distinct<'a> {
    list: Vec<&'a [u8]>,
    index: ByteIndex,
}

impl<'a> Distinct<'a> {
    fn insert(&mut self, bytes: &'a [u8]) {
        self.list.push(bytes);
        if !self.index.add(&self.list, self.list.len() - 1) {
            self.list.pop();
        }
    }

    /// The distinct strings in byte order (their ids), and their index.
    fn into_sorted(self) -> (Vec<Bytes>, ByteIndex) {
        let mut sorted = self.list;
        sorted.sort_unstable();
        let list: Vec<Bytes> = sorted.into_iter().map(<[u8]>::to_vec).collect();
        let index = ByteIndex::of(&list);
        (list, index)
    }
}

/// A compiled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Keys `lo..hi` at `revision` (0 latest), at most `limit` (0 unlimited).
    Range {
        /// First key id.
        lo: KeyId,
        /// One past the last key id.
        hi: KeyId,
        /// Read revision, 0 for latest.
        revision: i64,
        /// Limit, 0 for none.
        limit: i64,
    },
    /// Put.
    Put {
        /// Key.
        key: KeyId,
        /// Value.
        value: ValueId,
        /// Lease, 0 for none.
        lease: i64,
        /// Whether the previous kv is returned.
        prev_kv: bool,
    },
    /// Delete keys `lo..hi`.
    Delete {
        /// First key id.
        lo: KeyId,
        /// One past the last key id.
        hi: KeyId,
        /// Whether deleted kvs are returned.
        prev_kv: bool,
    },
    /// Txn.
    Txn {
        /// Compares.
        compares: Vec<Cmp>,
        /// Success branch.
        success: Vec<Op>,
        /// Failure branch.
        failure: Vec<Op>,
    },
    /// Grant lease `id` (0: an id nobody can name, so no observable effect).
    LeaseGrant {
        /// The id.
        id: i64,
        /// TTL, seconds.
        ttl_seconds: i64,
    },
    /// Revoke a lease (deleting its keys).
    LeaseRevoke {
        /// The id.
        id: i64,
    },
    /// One keepalive.
    LeaseKeepAlive {
        /// The id.
        id: i64,
    },
    /// Compact at a revision.
    Compact {
        /// The revision.
        revision: i64,
    },
    /// A lease expiring by itself (a virtual operation the checker adds).
    Expire {
        /// The id.
        id: i64,
    },
    /// An auth request (version 2).
    Auth(AuthCmd),
}

/// A compiled compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmp {
    /// Key.
    pub key: KeyId,
    /// Target.
    pub target: CompareTarget,
    /// Operator.
    pub op: CompareOp,
    /// Right-hand side: a value id for target value, else an integer.
    pub value: i64,
}

/// A recorded kv, compiled; `None` fields were not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecKv {
    /// Key.
    pub key: KeyId,
    /// Value.
    pub value: Option<ValueId>,
    /// Create revision.
    pub create_revision: Option<i64>,
    /// Mod revision.
    pub mod_revision: Option<i64>,
    /// Version.
    pub version: Option<i64>,
    /// Lease.
    pub lease: Option<i64>,
}

/// A recorded result, compiled; `None` fields were not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    /// Range.
    Range {
        /// Header revision.
        revision: Option<i64>,
        /// Kvs.
        kvs: Option<Vec<RecKv>>,
        /// Count.
        count: Option<i64>,
    },
    /// Put.
    Put {
        /// Revision.
        revision: Option<i64>,
        /// Previous kv (outer None: not recorded).
        prev_kv: Option<Option<RecKv>>,
    },
    /// Delete.
    Delete {
        /// Revision.
        revision: Option<i64>,
        /// Deleted count.
        deleted: Option<i64>,
        /// Deleted kvs.
        prev_kvs: Option<Vec<RecKv>>,
    },
    /// Txn.
    Txn {
        /// Revision.
        revision: Option<i64>,
        /// Branch taken.
        succeeded: Option<bool>,
        /// Nested results.
        responses: Option<Vec<Rec>>,
    },
    /// Lease grant.
    LeaseGrant {
        /// TTL.
        ttl_seconds: Option<i64>,
    },
    /// Lease revoke.
    LeaseRevoke {
        /// Revision.
        revision: Option<i64>,
    },
    /// Keepalive.
    LeaseKeepAlive {
        /// TTL.
        ttl_seconds: Option<i64>,
    },
    /// Compact.
    Compact {
        /// Revision.
        revision: Option<i64>,
    },
    /// An auth request succeeded (its recorded revision is not checked).
    Auth,
    /// A modelled error.
    Error(ErrorCode),
}

impl Rec {
    /// Calls `note` on every key-value this result recorded (range kvs, a put's prev_kv, a
    /// delete's prev_kvs), descending into a txn's nested results.
    pub fn for_each_kv(&self, note: &mut impl FnMut(&RecKv)) {
        match self {
            Rec::Range { kvs: Some(kvs), .. }
            | Rec::Delete {
                prev_kvs: Some(kvs),
                ..
            } => kvs.iter().for_each(&mut *note),
            Rec::Put {
                prev_kv: Some(Some(kv)),
                ..
            } => note(kv),
            Rec::Txn {
                responses: Some(list),
                ..
            } => list.iter().for_each(|inner| inner.for_each_kv(note)),
            _ => {}
        }
    }
}

/// The errors the sequential store can produce (others carry no information).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Read or compaction below the compacted revision.
    Compacted,
    /// Read or compaction above the current revision.
    FutureRevision,
    /// The lease does not exist.
    LeaseNotFound,
    /// Granting a lease id that exists.
    LeaseExists,
    /// The user may not do this (version 2).
    PermissionDenied,
    /// Auth is enabled and the request ran as no user. Never read from a history: a request
    /// whose credentials were resolved while auth was disabled gets it when auth is enabled
    /// before it applies, which the history cannot show; it still refuses a success.
    UserEmpty,
    /// No such user.
    UserNotFound,
    /// The user exists.
    UserAlreadyExists,
    /// No such role.
    RoleNotFound,
    /// The role exists.
    RoleAlreadyExists,
    /// Auth enable without the root user.
    RootUserNotExist,
    /// Auth enable while root lacks the root role.
    RootRoleNotExist,
    /// Revoking a role the user lacks.
    RoleNotGranted,
    /// Revoking a permission the role lacks.
    PermissionNotGranted,
    /// Deleting root, or root's root role, while auth is enabled.
    InvalidAuthManagement,
    /// Authenticate while auth is disabled.
    AuthNotEnabled,
    /// Authenticate as an unknown user.
    AuthFailed,
}

impl ErrorCode {
    /// etcd's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Compacted => "compacted",
            ErrorCode::FutureRevision => "future_revision",
            ErrorCode::LeaseNotFound => "lease_not_found",
            ErrorCode::LeaseExists => "lease_exists",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::UserEmpty => "user_empty",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::UserAlreadyExists => "user_already_exists",
            ErrorCode::RoleNotFound => "role_not_found",
            ErrorCode::RoleAlreadyExists => "role_already_exists",
            ErrorCode::RootUserNotExist => "root_user_not_exist",
            ErrorCode::RootRoleNotExist => "root_role_not_exist",
            ErrorCode::RoleNotGranted => "role_not_granted",
            ErrorCode::PermissionNotGranted => "permission_not_granted",
            ErrorCode::InvalidAuthManagement => "invalid_auth_management",
            ErrorCode::AuthNotEnabled => "auth_not_enabled",
            ErrorCode::AuthFailed => "auth_failed",
        }
    }

    fn from_name(name: &str) -> Option<ErrorCode> {
        [
            ErrorCode::Compacted,
            ErrorCode::FutureRevision,
            ErrorCode::LeaseNotFound,
            ErrorCode::LeaseExists,
            ErrorCode::PermissionDenied,
            ErrorCode::UserNotFound,
            ErrorCode::UserAlreadyExists,
            ErrorCode::RoleNotFound,
            ErrorCode::RoleAlreadyExists,
            ErrorCode::RootUserNotExist,
            ErrorCode::RootRoleNotExist,
            ErrorCode::RoleNotGranted,
            ErrorCode::PermissionNotGranted,
            ErrorCode::InvalidAuthManagement,
            ErrorCode::AuthNotEnabled,
            ErrorCode::AuthFailed,
        ]
        .into_iter()
        .find(|code| code.name() == name)
    }
}

impl Tables {
    /// Interns every key and value of the history (and of the watches).
    pub fn build(history: &history::History) -> Tables {
        Tables::build_view(history::HistoryView::of(history))
    }

    /// `build` of a history in parts.
    pub(crate) fn build_view(history: history::HistoryView<'_>) -> Tables {
        let mut keys = Distinct::default();
        let mut values = Distinct::default();
        let names = super::auth_names::collect(history.ops);
        for op in history.ops {
            collect_request(&op.request, &mut keys, &mut values);
            if !names.is_empty() {
                super::auth_names::collect_bounds(&op.request, &mut |key| keys.insert(key));
            }
            if let Some(result) = &op.result {
                collect_response(result, &mut keys, &mut values);
            }
        }
        for watch in history.watches {
            keys.insert(watch.key.as_slice());
            for event in &watch.events {
                collect_kv(&event.kv, &mut keys, &mut values);
                if let Some(prev) = &event.prev_kv {
                    collect_kv(prev, &mut keys, &mut values);
                }
            }
        }
        let (keys, key_index) = keys.into_sorted();
        let (values, value_index) = values.into_sorted();
        Tables {
            keys,
            values,
            key_index,
            value_index,
            names,
        }
    }

    /// Whether the history has auth requests (then operations run as their users).
    pub fn has_auth(&self) -> bool {
        !self.names.is_empty()
    }

    /// The id of a user or role name; `None` without auth requests in the history.
    pub fn name(&self, name: &str) -> Option<NameId> {
        let index = self.names.binary_search_by(|probe| {
            (probe.as_str() != "root", probe.as_str()).cmp(&(name != "root", name))
        });
        index.ok().map(to_id)
    }

    /// Renders a name id.
    pub fn show_name(&self, id: NameId) -> &str {
        &self.names[id as usize]
    }

    /// Number of interned keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The id of a key the history mentions.
    pub fn key(&self, key: &[u8]) -> KeyId {
        let index = self.key_index.find(&self.keys, key);
        to_id(index.expect("every key was interned"))
    }

    /// The id of a key, if the history mentions it.
    pub fn find_key(&self, key: &[u8]) -> Option<KeyId> {
        self.key_index.find(&self.keys, key).map(to_id)
    }

    /// The id of a value the history mentions.
    pub fn value(&self, value: &[u8]) -> ValueId {
        let index = self.value_index.find(&self.values, value);
        to_id(index.expect("every value was interned"))
    }

    /// Key ids `lo..hi` covered by `key` .. `range_end` (etcd's rules, `"\0"` = to the end).
    pub fn span(&self, key: &[u8], range_end: Option<&[u8]>) -> (KeyId, KeyId) {
        let lo = to_id(self.keys.partition_point(|probe| probe.as_slice() < key));
        match range_end {
            None => (self.key(key), self.key(key) + 1),
            Some([0]) => (lo, to_id(self.keys.len())),
            Some(end) => {
                let hi = to_id(self.keys.partition_point(|probe| probe.as_slice() < end));
                (lo, hi.max(lo))
            }
        }
    }

    /// Renders a key for explanations.
    pub fn show_key(&self, key: KeyId) -> String {
        history::show_bytes(&self.keys[key as usize])
    }

    /// Renders a value for explanations.
    pub fn show_value(&self, value: ValueId) -> String {
        history::show_bytes(&self.values[value as usize])
    }

    /// The bytes of a key.
    pub fn key_bytes(&self, key: KeyId) -> &[u8] {
        &self.keys[key as usize]
    }

    /// The bytes of a value.
    pub fn value_bytes(&self, value: ValueId) -> &[u8] {
        &self.values[value as usize]
    }

    /// Compiles a request; `lease_id` names a server-chosen lease id from the result.
    pub fn op(&self, request: &Request, granted_id: Option<i64>) -> Op {
        match request {
            Request::Range(range) => {
                let (lo, hi) = self.span(&range.key, range.range_end.as_deref());
                Op::Range {
                    lo,
                    hi,
                    revision: range.revision,
                    limit: range.limit,
                }
            }
            Request::Put(put) => Op::Put {
                key: self.key(&put.key),
                value: self.value(&put.value),
                lease: put.lease,
                prev_kv: put.prev_kv,
            },
            Request::Delete(delete) => {
                let (lo, hi) = self.span(&delete.key, delete.range_end.as_deref());
                Op::Delete {
                    lo,
                    hi,
                    prev_kv: delete.prev_kv,
                }
            }
            Request::Txn(txn) => Op::Txn {
                compares: txn
                    .compare
                    .iter()
                    .map(|compare| self.cmp(compare))
                    .collect(),
                success: txn
                    .success
                    .iter()
                    .map(|inner| self.op(inner, None))
                    .collect(),
                failure: txn
                    .failure
                    .iter()
                    .map(|inner| self.op(inner, None))
                    .collect(),
            },
            Request::LeaseGrant { ttl_seconds, id } => Op::LeaseGrant {
                id: if *id != 0 {
                    *id
                } else {
                    granted_id.unwrap_or(0)
                },
                ttl_seconds: *ttl_seconds,
            },
            Request::LeaseRevoke { id } => Op::LeaseRevoke { id: *id },
            Request::LeaseKeepAlive { id } => Op::LeaseKeepAlive { id: *id },
            Request::Compact { revision } => Op::Compact {
                revision: *revision,
            },
            Request::Auth(auth) => Op::Auth(self.auth_cmd(auth)),
        }
    }

    fn auth_cmd(&self, auth: &history::AuthOp) -> AuthCmd {
        use history::AuthOp;
        let name = |text: &str| self.name(text).expect("every name was interned");
        let range = |key: &[u8], end: &Option<Bytes>| {
            let (lo, hi) = self.span(key, end.as_deref());
            PermRange {
                lo,
                hi,
                single: end.is_none(),
            }
        };
        match auth {
            AuthOp::Enable => AuthCmd::Enable,
            AuthOp::Disable => AuthCmd::Disable,
            AuthOp::UserAdd { name: user } => AuthCmd::UserAdd(name(user)),
            AuthOp::UserDelete { name: user } => AuthCmd::UserDelete(name(user)),
            AuthOp::UserGrantRole { user, role } => AuthCmd::GrantRole(name(user), name(role)),
            AuthOp::UserRevokeRole { user, role } => AuthCmd::RevokeRole(name(user), name(role)),
            AuthOp::RoleAdd { name: role } => AuthCmd::RoleAdd(name(role)),
            AuthOp::RoleDelete { name: role } => AuthCmd::RoleDelete(name(role)),
            AuthOp::RoleGrantPermission {
                role,
                key,
                range_end,
                permission,
            } => AuthCmd::GrantPermission {
                role: name(role),
                range: range(key, range_end),
                kind: *permission,
            },
            AuthOp::RoleRevokePermission {
                role,
                key,
                range_end,
            } => AuthCmd::RevokePermission {
                role: name(role),
                range: range(key, range_end),
            },
            AuthOp::Authenticate { name: user } => AuthCmd::Authenticate(name(user)),
        }
    }

    fn cmp(&self, compare: &history::Compare) -> Cmp {
        let value = match &compare.value {
            CompareValue::Bytes(bytes) => i64::from(self.value(bytes)),
            CompareValue::Int(number) => *number,
        };
        Cmp {
            key: self.key(&compare.key),
            target: compare.target,
            op: compare.op,
            value,
        }
    }

    /// Compiles a recorded result; `None` for errors the store does not model (no information).
    pub fn rec(&self, response: &Response) -> Option<Rec> {
        Some(match response {
            Response::Range {
                revision,
                kvs,
                count,
            } => Rec::Range {
                revision: *revision,
                kvs: kvs
                    .as_ref()
                    .map(|list| list.iter().map(|kv| self.kv(kv)).collect()),
                count: *count,
            },
            Response::Put { revision, prev_kv } => Rec::Put {
                revision: *revision,
                prev_kv: prev_kv
                    .as_ref()
                    .map(|prev| prev.as_ref().map(|kv| self.kv(kv))),
            },
            Response::Delete {
                revision,
                deleted,
                prev_kvs,
            } => Rec::Delete {
                revision: *revision,
                deleted: *deleted,
                prev_kvs: prev_kvs
                    .as_ref()
                    .map(|list| list.iter().map(|kv| self.kv(kv)).collect()),
            },
            Response::Txn {
                revision,
                succeeded,
                responses,
            } => Rec::Txn {
                revision: *revision,
                succeeded: *succeeded,
                responses: match responses {
                    None => None,
                    Some(list) => Some(
                        list.iter()
                            .map(|inner| self.rec(inner))
                            .collect::<Option<_>>()?,
                    ),
                },
            },
            Response::LeaseGrant { ttl_seconds, .. } => Rec::LeaseGrant {
                ttl_seconds: *ttl_seconds,
            },
            Response::LeaseRevoke { revision } => Rec::LeaseRevoke {
                revision: *revision,
            },
            Response::LeaseKeepAlive { ttl_seconds } => Rec::LeaseKeepAlive {
                ttl_seconds: *ttl_seconds,
            },
            Response::Compact { revision } => Rec::Compact {
                revision: *revision,
            },
            Response::Auth { .. } => Rec::Auth,
            Response::Error { code, .. } => Rec::Error(ErrorCode::from_name(code)?),
        })
    }

    /// Compiles a recorded kv.
    pub fn kv(&self, kv: &KeyValue) -> RecKv {
        RecKv {
            key: self.key(&kv.key),
            value: kv.value.as_ref().map(|value| self.value(value)),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

fn to_id(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 distinct keys and values")
}

fn collect_request<'a>(request: &'a Request, keys: &mut Distinct<'a>, values: &mut Distinct<'a>) {
    match request {
        Request::Range(range) => {
            keys.insert(range.key.as_slice());
        }
        Request::Put(put) => {
            keys.insert(put.key.as_slice());
            values.insert(put.value.as_slice());
        }
        Request::Delete(delete) => {
            keys.insert(delete.key.as_slice());
        }
        Request::Txn(txn) => {
            for compare in &txn.compare {
                keys.insert(compare.key.as_slice());
                if let CompareValue::Bytes(bytes) = &compare.value {
                    values.insert(bytes.as_slice());
                }
            }
            for inner in txn.success.iter().chain(&txn.failure) {
                collect_request(inner, keys, values);
            }
        }
        _ => {}
    }
}

fn collect_response<'a>(
    response: &'a Response,
    keys: &mut Distinct<'a>,
    values: &mut Distinct<'a>,
) {
    match response {
        Response::Range {
            kvs: Some(list), ..
        }
        | Response::Delete {
            prev_kvs: Some(list),
            ..
        } => {
            list.iter().for_each(|kv| collect_kv(kv, keys, values));
        }
        Response::Put {
            prev_kv: Some(Some(kv)),
            ..
        } => collect_kv(kv, keys, values),
        Response::Txn {
            responses: Some(list),
            ..
        } => {
            list.iter()
                .for_each(|inner| collect_response(inner, keys, values));
        }
        _ => {}
    }
}

fn collect_kv<'a>(kv: &'a KeyValue, keys: &mut Distinct<'a>, values: &mut Distinct<'a>) {
    keys.insert(kv.key.as_slice());
    if let Some(value) = &kv.value {
        values.insert(value.as_slice());
    }
}
