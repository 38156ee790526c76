//! Carries out a history request (`checkers::history::Request`) through etcd's v3 gRPC API with
//! the generated clients, and renders the reply as a history result. Any etcd-compatible server
//! answers it, so the same code drives detcd and etcd (`detcd chaos`, `detcd bench serve`), and,
//! built under madsim, the simulated clusters of `server/tests/madsim_cluster.rs`.

use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;
use checkers::history::{
    CompareOp, CompareTarget, CompareValue, EventKind, KeyValue, Request, Response, WatchEvent,
};
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// An answer, or a definite error (the request did not take effect).
    Known(Response),
    /// No answer: the request may have taken effect once, or never.
    Unknown(String),
}

/// Sends `request` on `channel` and waits for its answer.
pub async fn execute(channel: &Channel, request: &Request) -> Outcome {
    match call(channel, request).await {
        Ok(response) => Outcome::Known(response),
        // etcd answers NotFound only for a lease it does not hold: a definite error.
        Err(status) if status.code() == tonic::Code::NotFound => Outcome::Known(Response::Error {
            code: "lease_not_found".into(),
            message: Some(status.message().to_string()),
        }),
        // Anything else (unavailable, timed out, connection lost) says nothing of the effect.
        Err(status) => Outcome::Unknown(format!("{:?}: {}", status.code(), status.message())),
    }
}

async fn call(channel: &Channel, request: &Request) -> Result<Response, tonic::Status> {
    match request {
        Request::LeaseGrant { ttl_seconds, id } => {
            let mut lease = pb::lease_client::LeaseClient::new(channel.clone());
            let reply = lease
                .lease_grant(pb::LeaseGrantRequest {
                    ttl: *ttl_seconds,
                    id: *id,
                })
                .await?
                .into_inner();
            Ok(Response::LeaseGrant {
                id: Some(reply.id),
                ttl_seconds: Some(reply.ttl),
            })
        }
        Request::LeaseRevoke { id } => {
            let mut lease = pb::lease_client::LeaseClient::new(channel.clone());
            let reply = lease
                .lease_revoke(pb::LeaseRevokeRequest { id: *id })
                .await?
                .into_inner();
            Ok(Response::LeaseRevoke {
                revision: reply.header.map(|header| header.revision),
            })
        }
        Request::LeaseKeepAlive { id } => {
            let mut lease = pb::lease_client::LeaseClient::new(channel.clone());
            let one_round = tokio_stream::iter([pb::LeaseKeepAliveRequest { id: *id }]);
            let mut replies = lease.lease_keep_alive(one_round).await?.into_inner();
            match replies.next().await {
                // etcd's clients read a TTL of zero or less as "lease not found".
                Some(Ok(reply)) if reply.ttl <= 0 => Ok(Response::Error {
                    code: "lease_not_found".into(),
                    message: Some("keep-alive answered TTL 0".into()),
                }),
                Some(Ok(reply)) => Ok(Response::LeaseKeepAlive {
                    ttl_seconds: Some(reply.ttl),
                }),
                Some(Err(status)) => Err(status),
                None => Err(tonic::Status::unavailable("keep-alive stream ended")),
            }
        }
        Request::Compact { revision } => {
            let mut kv = pb::kv_client::KvClient::new(channel.clone());
            let reply = kv
                .compact(pb::CompactionRequest {
                    revision: *revision,
                    physical: false,
                })
                .await?
                .into_inner();
            Ok(Response::Compact {
                revision: reply.header.map(|header| header.revision),
            })
        }
        // The Auth service has no replay here (history format version 2's auth requests).
        Request::Auth(_) => Err(tonic::Status::unimplemented(
            "auth requests are not replayed over gRPC",
        )),
        Request::Range(_) | Request::Put(_) | Request::Delete(_) | Request::Txn(_) => {
            let mut kv = pb::kv_client::KvClient::new(channel.clone());
            let op = request_op(request);
            match op.request.expect("a key-value request") {
                pb::request_op::Request::RequestRange(range) => {
                    Ok(range_result(kv.range(range).await?.into_inner()))
                }
                pb::request_op::Request::RequestPut(put) => {
                    Ok(put_result(kv.put(put).await?.into_inner()))
                }
                pb::request_op::Request::RequestDeleteRange(delete) => {
                    Ok(delete_result(kv.delete_range(delete).await?.into_inner()))
                }
                pb::request_op::Request::RequestTxn(txn) => {
                    Ok(txn_result(kv.txn(txn).await?.into_inner()))
                }
            }
        }
    }
}

/// A key-value request as a txn operation (the lease and compact requests have none).
fn request_op(request: &Request) -> pb::RequestOp {
    use pb::request_op::Request as Op;
    let op = match request {
        Request::Range(range) => Op::RequestRange(pb::RangeRequest {
            key: range.key.clone(),
            range_end: range.range_end.clone().unwrap_or_default(),
            revision: range.revision,
            limit: range.limit,
            serializable: range.serializable,
            ..Default::default()
        }),
        Request::Put(put) => Op::RequestPut(pb::PutRequest {
            key: put.key.clone(),
            value: put.value.clone(),
            lease: put.lease,
            prev_kv: put.prev_kv,
            ..Default::default()
        }),
        Request::Delete(delete) => Op::RequestDeleteRange(pb::DeleteRangeRequest {
            key: delete.key.clone(),
            range_end: delete.range_end.clone().unwrap_or_default(),
            prev_kv: delete.prev_kv,
        }),
        Request::Txn(txn) => Op::RequestTxn(pb::TxnRequest {
            compare: txn.compare.iter().map(compare).collect(),
            success: txn.success.iter().map(request_op).collect(),
            failure: txn.failure.iter().map(request_op).collect(),
        }),
        other => panic!("{} has no txn form", other.type_name()),
    };
    pb::RequestOp { request: Some(op) }
}

fn compare(compare: &checkers::history::Compare) -> pb::Compare {
    use pb::compare::{CompareResult, CompareTarget as Target, TargetUnion};
    let int = |value: &CompareValue| match value {
        CompareValue::Int(number) => *number,
        CompareValue::Bytes(_) => 0,
    };
    let (target, union) = match compare.target {
        CompareTarget::Value => (
            Target::Value,
            TargetUnion::Value(match &compare.value {
                CompareValue::Bytes(bytes) => bytes.clone(),
                CompareValue::Int(number) => number.to_string().into_bytes(),
            }),
        ),
        CompareTarget::Version => (Target::Version, TargetUnion::Version(int(&compare.value))),
        CompareTarget::Create => (
            Target::Create,
            TargetUnion::CreateRevision(int(&compare.value)),
        ),
        CompareTarget::Mod => (Target::Mod, TargetUnion::ModRevision(int(&compare.value))),
        CompareTarget::Lease => (Target::Lease, TargetUnion::Lease(int(&compare.value))),
    };
    let result = match compare.op {
        CompareOp::Equal => CompareResult::Equal,
        CompareOp::NotEqual => CompareResult::NotEqual,
        CompareOp::Less => CompareResult::Less,
        CompareOp::Greater => CompareResult::Greater,
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: compare.key.clone(),
        range_end: Vec::new(),
        target_union: Some(union),
    }
}

/// A key-value as the history records it (every field present).
pub fn key_value(kv: &mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key.clone(),
        value: Some(kv.value.clone()),
        create_revision: Some(kv.create_revision),
        mod_revision: Some(kv.mod_revision),
        version: Some(kv.version),
        lease: Some(kv.lease),
    }
}

fn revision(header: Option<&pb::ResponseHeader>) -> Option<i64> {
    header.map(|header| header.revision)
}

fn range_result(reply: pb::RangeResponse) -> Response {
    Response::Range {
        revision: revision(reply.header.as_ref()),
        kvs: Some(reply.kvs.iter().map(key_value).collect()),
        count: Some(reply.count),
    }
}

fn put_result(reply: pb::PutResponse) -> Response {
    Response::Put {
        revision: revision(reply.header.as_ref()),
        prev_kv: None,
    }
}

fn delete_result(reply: pb::DeleteRangeResponse) -> Response {
    Response::Delete {
        revision: revision(reply.header.as_ref()),
        deleted: Some(reply.deleted),
        prev_kvs: None,
    }
}

fn txn_result(reply: pb::TxnResponse) -> Response {
    use pb::response_op::Response as Op;
    let responses = reply
        .responses
        .into_iter()
        .filter_map(|op| op.response)
        .map(|op| match op {
            Op::ResponseRange(range) => range_result(range),
            Op::ResponsePut(put) => put_result(put),
            Op::ResponseDeleteRange(delete) => delete_result(delete),
            Op::ResponseTxn(txn) => txn_result(txn),
        })
        .collect();
    Response::Txn {
        revision: revision(reply.header.as_ref()),
        succeeded: Some(reply.succeeded),
        responses: Some(responses),
    }
}

/// A watch event as the history records it, arriving at `time`. A delete's kv records only
/// the key and the deletion's revision, which is all etcd promises of it.
pub fn watch_event(time: i64, event: &mvccpb::Event) -> Option<WatchEvent> {
    let kv = event.kv.as_ref()?;
    let deleted = event.r#type == mvccpb::event::EventType::Delete as i32;
    let recorded = if deleted {
        KeyValue {
            key: kv.key.clone(),
            mod_revision: Some(kv.mod_revision),
            ..KeyValue::default()
        }
    } else {
        key_value(kv)
    };
    Some(WatchEvent {
        time,
        revision: kv.mod_revision,
        kind: if deleted {
            EventKind::Delete
        } else {
            EventKind::Put
        },
        kv: recorded,
        prev_kv: event.prev_kv.as_ref().map(key_value),
    })
}
