//! Between etcd's protobuf messages and the engine's request and response values, and from the
//! engine's errors to gRPC statuses carrying etcd's codes and error strings (which etcd clients
//! match on). Pure conversions: nothing here decides anything.

use engine::auth::AuthError;
use engine::kv::{
    CompactionRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, Event, EventType, KeyValue, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestError, RequestOp, ResponseHeader, ResponseOp, SortOrder, SortTarget,
    TxnRequest, TxnResponse, WatchCreateRequest, WatchFilters, WatchResponse,
};
use engine::types::{LeaseId, Revision, WatchId};
use tonic::{Code, Status};

use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;

/// The gRPC status etcd answers `error` with: etcd's code and exact error string.
pub fn status(error: &RequestError) -> Status {
    let code = match error {
        RequestError::NotLeader { .. } | RequestError::LeaderChanged | RequestError::Stopping => {
            Code::Unavailable
        }
        RequestError::Compacted { .. }
        | RequestError::FutureRevision { .. }
        | RequestError::LeaseTtlTooLarge { .. } => Code::OutOfRange,
        RequestError::LeaseNotFound { .. } => Code::NotFound,
        RequestError::LeaseExists { .. } | RequestError::MemberChangeRefused => {
            Code::FailedPrecondition
        }
        RequestError::TooManyRequests => Code::ResourceExhausted,
        RequestError::TooLarge { .. }
        | RequestError::TooManyOps { .. }
        | RequestError::DuplicateKey
        | RequestError::EmptyKey
        | RequestError::KeyNotFound
        | RequestError::ValueProvided
        | RequestError::LeaseProvided
        | RequestError::WatchIdExists { .. }
        | RequestError::WatchNotFound { .. } => Code::InvalidArgument,
        RequestError::Auth(auth) => auth_code(*auth),
    };
    // etcd's gRPC errors for revisions carry the "etcdserver: " prefix (rpctypes), while its
    // watch cancel reasons do not: clients match the prefixed text to their typed errors.
    match error {
        RequestError::Compacted { .. } | RequestError::FutureRevision { .. } => {
            Status::new(code, format!("etcdserver: {}", error.etcd_text()))
        }
        _ => Status::new(code, error.etcd_text()),
    }
}

/// An error of etcd's Hash, HashKV, Snapshot and Defragment: those return the auth store's
/// refusal unconverted (etcd's `v3rpc/maintenance.go` calls no `togRPCError` there), so a
/// client sees code Unknown and the store's text (`auth: permission denied`), as etcdctl
/// prints it. Other errors as `status`.
pub fn unconverted_auth_status(error: &RequestError) -> Status {
    match error {
        RequestError::Auth(auth) => Status::new(Code::Unknown, auth.store_text()),
        other => status(other),
    }
}

/// etcd's gRPC code for an auth error (rpctypes).
fn auth_code(error: AuthError) -> Code {
    match error {
        AuthError::PermissionDenied => Code::PermissionDenied,
        AuthError::InvalidAuthToken => Code::Unauthenticated,
        AuthError::AuthOldRevision
        | AuthError::UserEmpty
        | AuthError::RoleEmpty
        | AuthError::AuthFailed
        | AuthError::InvalidAuthManagement => Code::InvalidArgument,
        AuthError::UserNotFound
        | AuthError::UserAlreadyExists
        | AuthError::RoleNotFound
        | AuthError::RoleAlreadyExists
        | AuthError::RootUserNotExist
        | AuthError::RootRoleNotExist
        | AuthError::AuthNotEnabled
        | AuthError::RoleNotGranted
        | AuthError::PermissionNotGranted => Code::FailedPrecondition,
    }
}

/// The header etcd fills in every response.
pub fn header(header: &ResponseHeader) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: header.cluster_id,
        member_id: header.member_id.0,
        revision: header.revision.0,
        raft_term: header.raft_term.0,
    })
}

/// A key-value to protobuf.
pub fn key_value(kv: &KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.clone(),
        create_revision: kv.create_revision.0,
        mod_revision: kv.mod_revision.0,
        version: kv.version,
        value: kv.value.clone(),
        lease: kv.lease.0,
    }
}

/// A range request from protobuf.
pub fn range_request(request: pb::RangeRequest) -> RangeRequest {
    let (sort_order, sort_target) = (request.sort_order(), request.sort_target());
    RangeRequest {
        key: request.key,
        range_end: request.range_end,
        limit: request.limit,
        revision: Revision(request.revision),
        sort_order: match sort_order {
            pb::range_request::SortOrder::None => SortOrder::None,
            pb::range_request::SortOrder::Ascend => SortOrder::Ascend,
            pb::range_request::SortOrder::Descend => SortOrder::Descend,
        },
        sort_target: match sort_target {
            pb::range_request::SortTarget::Key => SortTarget::Key,
            pb::range_request::SortTarget::Version => SortTarget::Version,
            pb::range_request::SortTarget::Create => SortTarget::Create,
            pb::range_request::SortTarget::Mod => SortTarget::Mod,
            pb::range_request::SortTarget::Value => SortTarget::Value,
        },
        serializable: request.serializable,
        keys_only: request.keys_only,
        count_only: request.count_only,
        min_mod_revision: Revision(request.min_mod_revision),
        max_mod_revision: Revision(request.max_mod_revision),
        min_create_revision: Revision(request.min_create_revision),
        max_create_revision: Revision(request.max_create_revision),
    }
}

/// A range response to protobuf.
pub fn range_response(response: &RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header(&response.header),
        kvs: response.kvs.iter().map(key_value).collect(),
        more: response.more,
        count: response.count,
    }
}

/// A put request from protobuf.
pub fn put_request(request: pb::PutRequest) -> PutRequest {
    PutRequest {
        key: request.key,
        value: request.value,
        lease: LeaseId(request.lease),
        prev_kv: request.prev_kv,
        ignore_value: request.ignore_value,
        ignore_lease: request.ignore_lease,
    }
}

/// A put response to protobuf.
pub fn put_response(response: &PutResponse) -> pb::PutResponse {
    pb::PutResponse {
        header: header(&response.header),
        prev_kv: response.prev_kv.as_ref().map(key_value),
    }
}

/// A delete request from protobuf.
pub fn delete_request(request: pb::DeleteRangeRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: request.key,
        range_end: request.range_end,
        prev_kv: request.prev_kv,
    }
}

/// A delete response to protobuf.
pub fn delete_response(response: &DeleteRangeResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header(&response.header),
        deleted: response.deleted,
        prev_kvs: response.prev_kvs.iter().map(key_value).collect(),
    }
}

/// A txn request from protobuf; an op without a request is refused as etcd refuses it.
pub fn txn_request(request: pb::TxnRequest) -> Result<TxnRequest, Status> {
    let compare = request
        .compare
        .into_iter()
        .map(compare)
        .collect::<Result<Vec<_>, _>>()?;
    let ops = |ops: Vec<pb::RequestOp>| -> Result<Vec<RequestOp>, Status> {
        ops.into_iter().map(request_op).collect()
    };
    Ok(TxnRequest {
        compare,
        success: ops(request.success)?,
        failure: ops(request.failure)?,
    })
}

fn request_op(op: pb::RequestOp) -> Result<RequestOp, Status> {
    use pb::request_op::Request as Op;
    match op.request {
        Some(Op::RequestRange(range)) => Ok(RequestOp::Range(range_request(range))),
        Some(Op::RequestPut(put)) => Ok(RequestOp::Put(put_request(put))),
        Some(Op::RequestDeleteRange(delete)) => Ok(RequestOp::DeleteRange(delete_request(delete))),
        Some(Op::RequestTxn(txn)) => Ok(RequestOp::Txn(txn_request(txn)?)),
        None => Err(Status::invalid_argument(
            "etcdserver: a txn operation names no request",
        )),
    }
}

fn compare(compare: pb::Compare) -> Result<Compare, Status> {
    use pb::compare::TargetUnion as Union;
    // An enum value this build does not know is malformed input, not the default target.
    if pb::compare::CompareTarget::try_from(compare.target).is_err()
        || pb::compare::CompareResult::try_from(compare.result).is_err()
    {
        return Err(Status::invalid_argument(format!(
            "etcdserver: unknown compare target {} or result {}",
            compare.target, compare.result
        )));
    }
    let compare_target = compare.target();
    let result = match compare.result() {
        pb::compare::CompareResult::Equal => CompareResult::Equal,
        pb::compare::CompareResult::Greater => CompareResult::Greater,
        pb::compare::CompareResult::Less => CompareResult::Less,
        pb::compare::CompareResult::NotEqual => CompareResult::NotEqual,
    };
    let target = match (compare_target, compare.target_union) {
        (pb::compare::CompareTarget::Version, Some(Union::Version(version))) => {
            CompareTarget::Version(version)
        }
        (pb::compare::CompareTarget::Create, Some(Union::CreateRevision(revision))) => {
            CompareTarget::Create(Revision(revision))
        }
        (pb::compare::CompareTarget::Mod, Some(Union::ModRevision(revision))) => {
            CompareTarget::Mod(Revision(revision))
        }
        (pb::compare::CompareTarget::Value, Some(Union::Value(value))) => {
            CompareTarget::Value(value)
        }
        (pb::compare::CompareTarget::Lease, Some(Union::Lease(lease))) => {
            CompareTarget::Lease(LeaseId(lease))
        }
        // proto3 leaves a zero out of the oneof: a missing number compares against 0.
        (pb::compare::CompareTarget::Version, None) => CompareTarget::Version(0),
        (pb::compare::CompareTarget::Create, None) => CompareTarget::Create(Revision(0)),
        (pb::compare::CompareTarget::Mod, None) => CompareTarget::Mod(Revision(0)),
        (pb::compare::CompareTarget::Value, None) => CompareTarget::Value(Vec::new()),
        (pb::compare::CompareTarget::Lease, None) => CompareTarget::Lease(LeaseId(0)),
        _ => {
            return Err(Status::invalid_argument(
                "etcdserver: a compare's target does not match its value",
            ))
        }
    };
    Ok(Compare {
        key: compare.key,
        range_end: compare.range_end,
        result,
        target,
    })
}

/// A txn response to protobuf.
pub fn txn_response(response: &TxnResponse) -> pb::TxnResponse {
    use pb::response_op::Response as Op;
    pb::TxnResponse {
        header: header(&response.header),
        succeeded: response.succeeded,
        responses: response
            .responses
            .iter()
            .map(|op| pb::ResponseOp {
                response: Some(match op {
                    ResponseOp::Range(range) => Op::ResponseRange(range_response(range)),
                    ResponseOp::Put(put) => Op::ResponsePut(put_response(put)),
                    ResponseOp::DeleteRange(delete) => {
                        Op::ResponseDeleteRange(delete_response(delete))
                    }
                    ResponseOp::Txn(txn) => Op::ResponseTxn(txn_response(txn)),
                }),
            })
            .collect(),
    }
}

/// A compaction request from protobuf.
pub fn compaction_request(request: pb::CompactionRequest) -> CompactionRequest {
    CompactionRequest {
        revision: Revision(request.revision),
        physical: request.physical,
    }
}

/// A watch create request from protobuf.
pub fn watch_create(request: pb::WatchCreateRequest) -> WatchCreateRequest {
    let filters = WatchFilters {
        no_put: request
            .filters
            .contains(&(pb::watch_create_request::FilterType::Noput as i32)),
        no_delete: request
            .filters
            .contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
    };
    WatchCreateRequest {
        key: request.key,
        range_end: request.range_end,
        start_revision: Revision(request.start_revision),
        progress_notify: request.progress_notify,
        filters,
        prev_kv: request.prev_kv,
        watch_id: WatchId(request.watch_id),
        fragment: request.fragment,
    }
}

/// A watch response to protobuf.
pub fn watch_response(response: &WatchResponse) -> pb::WatchResponse {
    pb::WatchResponse {
        header: header(&response.header),
        watch_id: response.watch_id.0,
        created: response.created,
        canceled: response.canceled,
        compact_revision: response.compact_revision.0,
        cancel_reason: response.cancel_reason.clone(),
        fragment: response.fragment,
        events: response.events.iter().map(event).collect(),
    }
}

fn event(event: &Event) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match event.kind {
            EventType::Put => mvccpb::event::EventType::Put as i32,
            EventType::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(key_value(&event.kv)),
        prev_kv: event.prev_kv.as_ref().map(key_value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: errors reach clients with etcd's exact strings and codes (clients map errors by
    /// these), and a compare keeps its target, including proto3's omitted zero.
    /// Method: convert a few errors and compares.
    #[test]
    fn errors_and_compares_convert_as_etcd_does() {
        let compacted = status(&RequestError::Compacted {
            requested: Revision(1),
            compacted: Revision(5),
        });
        assert_eq!(compacted.code(), Code::OutOfRange);
        assert_eq!(
            compacted.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let lease = status(&RequestError::LeaseNotFound { lease: LeaseId(7) });
        assert_eq!(lease.code(), Code::NotFound);
        assert_eq!(lease.message(), "etcdserver: requested lease not found");
        let zero_version = pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Version as i32,
            key: b"a".to_vec(),
            target_union: None,
            range_end: Vec::new(),
        };
        assert_eq!(
            compare(zero_version).expect("converts").target,
            CompareTarget::Version(0)
        );
        let mismatched = pb::Compare {
            target: pb::compare::CompareTarget::Mod as i32,
            target_union: Some(pb::compare::TargetUnion::Value(b"x".to_vec())),
            ..pb::Compare::default()
        };
        assert_eq!(
            compare(mismatched).unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
