//! The bridge to the `checkers` crate: converts the run's in-memory records (engine requests and
//! replies, watch streams, member observations and samples) straight into `checkers` values, runs
//! every checker on them, and turns each verdict into a [`CheckOutcome`] of the run.
//!
//! No JSON is built on this path (the `--out` files are rendered separately by `history`, and a
//! test checks both views agree). It judges nothing itself: the checkers do.

use checkers::history as ch;
use checkers::trace::{LogEntry, LogIndex as ChIndex, MemberId, StoreChange, Term as ChTerm};
use engine::kv::{
    Compare, CompareResult, CompareTarget, KeyValue, Request, RequestError, RequestOp, Response,
    ResponseOp,
};
use engine::types::{Instant, LogIndex, NodeId, Term};

/// How a checker's verdict shows in a run: `pass`, `fail` (a violation) or `unknown` (it gave
/// up). An unknown verdict is never a pass: it makes the run fail with check `<name>_unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    /// The property holds.
    Pass,
    /// The property is violated.
    Fail,
    /// The checker ran out of budget undecided.
    Unknown,
}

impl CheckVerdict {
    /// The lowercase name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            CheckVerdict::Pass => "pass",
            CheckVerdict::Fail => "fail",
            CheckVerdict::Unknown => "unknown",
        }
    }
}

/// One checker's result on a run (no wall time: this is part of the deterministic report).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CheckOutcome {
    /// The checker's name (`linearizability`, `watch`, `election_safety`, ...).
    pub checker: String,
    /// Its verdict.
    pub verdict: CheckVerdict,
    /// For a violation: the smallest window of operation ids that shows it (may be empty for
    /// trace-level checks).
    pub window: Vec<u64>,
    /// Why it failed or gave up; empty on a pass.
    pub explanation: String,
}

/// Converts checkers' results into outcomes.
pub fn outcomes(results: Vec<checkers::CheckResult>) -> Vec<CheckOutcome> {
    results
        .into_iter()
        .map(|result| {
            let (verdict, checker, window, explanation) = match result.verdict {
                checkers::Verdict::Ok => (
                    CheckVerdict::Pass,
                    result.checker.to_string(),
                    Vec::new(),
                    String::new(),
                ),
                // A checker may name a sub-check (`kv_hash` inside state-machine safety).
                checkers::Verdict::Violation {
                    checker,
                    window,
                    explanation,
                } => (CheckVerdict::Fail, checker, window, explanation),
                checkers::Verdict::Unknown { reason } => (
                    CheckVerdict::Unknown,
                    result.checker.to_string(),
                    Vec::new(),
                    reason,
                ),
            };
            CheckOutcome {
                checker,
                verdict,
                window,
                explanation,
            }
        })
        .collect()
}

fn optional_bytes(bytes: &[u8]) -> Option<ch::Bytes> {
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

/// `optional_bytes` for owned bytes: moves them instead of copying.
fn optional_owned(bytes: Vec<u8>) -> Option<ch::Bytes> {
    (!bytes.is_empty()).then_some(bytes)
}

/// The checkers' request for an engine request, or `None` when the history format has no type
/// for it (watch control, lease queries). Takes the request, so that keys and values move.
pub fn request(request: Request) -> Option<ch::Request> {
    Some(match request {
        Request::Range(range) => range_request(range),
        Request::Put(put) => put_request(put),
        Request::DeleteRange(delete) => delete_request(delete),
        Request::Txn(txn) => txn_request(txn),
        Request::LeaseGrant(grant) => ch::Request::LeaseGrant {
            ttl_seconds: grant.ttl_seconds,
            id: grant.id.0,
        },
        Request::LeaseRevoke { id } => ch::Request::LeaseRevoke { id: id.0 },
        Request::LeaseKeepAlive { id } => ch::Request::LeaseKeepAlive { id: id.0 },
        Request::Auth(auth) => ch::Request::Auth(host::history_auth::auth_op(&auth)?),
        Request::Compact(compact) => ch::Request::Compact {
            revision: compact.revision.0,
        },
        _ => return None,
    })
}

fn range_request(range: engine::kv::RangeRequest) -> ch::Request {
    ch::Request::Range(ch::RangeRequest {
        key: range.key,
        range_end: optional_owned(range.range_end),
        revision: range.revision.0,
        limit: range.limit,
        serializable: range.serializable,
    })
}

fn put_request(put: engine::kv::PutRequest) -> ch::Request {
    ch::Request::Put(ch::PutRequest {
        key: put.key,
        value: put.value,
        lease: put.lease.0,
        prev_kv: put.prev_kv,
    })
}

fn delete_request(delete: engine::kv::DeleteRangeRequest) -> ch::Request {
    ch::Request::Delete(ch::DeleteRequest {
        key: delete.key,
        range_end: optional_owned(delete.range_end),
        prev_kv: delete.prev_kv,
    })
}

fn txn_request(txn: engine::kv::TxnRequest) -> ch::Request {
    ch::Request::Txn(ch::TxnRequest {
        compare: txn.compare.iter().map(compare).collect(),
        success: txn.success.into_iter().map(request_op).collect(),
        failure: txn.failure.into_iter().map(request_op).collect(),
    })
}

fn request_op(op: RequestOp) -> ch::Request {
    match op {
        RequestOp::Range(range) => range_request(range),
        RequestOp::Put(put) => put_request(put),
        RequestOp::DeleteRange(delete) => delete_request(delete),
        RequestOp::Txn(txn) => txn_request(txn),
    }
}

fn compare(compare: &Compare) -> ch::Compare {
    let (target, value) = match &compare.target {
        CompareTarget::Version(version) => {
            (ch::CompareTarget::Version, ch::CompareValue::Int(*version))
        }
        CompareTarget::Create(revision) => {
            (ch::CompareTarget::Create, ch::CompareValue::Int(revision.0))
        }
        CompareTarget::Mod(revision) => (ch::CompareTarget::Mod, ch::CompareValue::Int(revision.0)),
        CompareTarget::Lease(lease) => (ch::CompareTarget::Lease, ch::CompareValue::Int(lease.0)),
        CompareTarget::Value(bytes) => (
            ch::CompareTarget::Value,
            ch::CompareValue::Bytes(bytes.clone()),
        ),
    };
    let op = match compare.result {
        CompareResult::Equal => ch::CompareOp::Equal,
        CompareResult::NotEqual => ch::CompareOp::NotEqual,
        CompareResult::Less => ch::CompareOp::Less,
        CompareResult::Greater => ch::CompareOp::Greater,
    };
    ch::Compare {
        key: compare.key.clone(),
        target,
        op,
        value,
    }
}

/// The checkers' key-value for an engine one (every field recorded); takes it, so bytes move.
pub fn key_value(kv: KeyValue) -> ch::KeyValue {
    ch::KeyValue {
        key: kv.key,
        value: Some(kv.value),
        create_revision: Some(kv.create_revision.0),
        mod_revision: Some(kv.mod_revision.0),
        version: Some(kv.version),
        lease: Some(kv.lease.0),
    }
}

fn key_values(kvs: Vec<KeyValue>) -> Vec<ch::KeyValue> {
    kvs.into_iter().map(key_value).collect()
}

/// The checkers' result for a reply; `None` for a reply kind the format cannot express (the
/// outcome is then recorded as unknown, which constrains nothing). Takes the reply, so that
/// keys and values move.
pub fn response(result: Result<Response, RequestError>) -> Option<ch::Response> {
    Some(match result {
        Err(error) => ch::Response::Error {
            code: error.code().to_string(),
            message: None,
        },
        Ok(Response::Range(range)) => range_response(range),
        Ok(Response::Put(put)) => put_response(put),
        Ok(Response::DeleteRange(delete)) => delete_response(delete),
        Ok(Response::Txn(txn)) => txn_response(txn),
        Ok(Response::LeaseGrant {
            id, ttl_seconds, ..
        }) => ch::Response::LeaseGrant {
            id: Some(id.0),
            ttl_seconds: Some(ttl_seconds),
        },
        Ok(Response::LeaseRevoke { header }) => ch::Response::LeaseRevoke {
            revision: Some(header.revision.0),
        },
        Ok(Response::LeaseKeepAlive { ttl_seconds, .. }) => ch::Response::LeaseKeepAlive {
            ttl_seconds: Some(ttl_seconds),
        },
        Ok(Response::Compact { header }) => ch::Response::Compact {
            revision: Some(header.revision.0),
        },
        Ok(Response::Auth { header, .. }) => ch::Response::Auth {
            revision: Some(header.revision.0),
        },
        Ok(_) => return None,
    })
}

fn range_response(range: engine::kv::RangeResponse) -> ch::Response {
    ch::Response::Range {
        revision: Some(range.header.revision.0),
        kvs: Some(key_values(range.kvs)),
        count: Some(range.count),
    }
}

fn put_response(put: engine::kv::PutResponse) -> ch::Response {
    ch::Response::Put {
        revision: Some(put.header.revision.0),
        prev_kv: put.prev_kv.map(|kv| Some(key_value(kv))),
    }
}

fn delete_response(delete: engine::kv::DeleteRangeResponse) -> ch::Response {
    ch::Response::Delete {
        revision: Some(delete.header.revision.0),
        deleted: Some(delete.deleted),
        prev_kvs: Some(key_values(delete.prev_kvs)),
    }
}

fn txn_response(txn: engine::kv::TxnResponse) -> ch::Response {
    ch::Response::Txn {
        revision: Some(txn.header.revision.0),
        succeeded: Some(txn.succeeded),
        responses: Some(txn.responses.into_iter().map(response_op).collect()),
    }
}

fn response_op(op: ResponseOp) -> ch::Response {
    match op {
        ResponseOp::Range(range) => range_response(range),
        ResponseOp::Put(put) => put_response(put),
        ResponseOp::DeleteRange(delete) => delete_response(delete),
        ResponseOp::Txn(txn) => txn_response(txn),
    }
}

/// What a range's options leave out of its answer, so the record claims only what the reply
/// shows: count-only replies carry no kvs, keys-only ones no values. The history format's range
/// request has no field for these options; leaving the fields out keeps any checker sound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeShape {
    /// The reply has only a count.
    pub count_only: bool,
    /// The reply's kvs have no values.
    pub keys_only: bool,
}

impl RangeShape {
    /// The shape of a top-level range request's answer (other requests: the full shape).
    pub fn of(request: &Request) -> RangeShape {
        match request {
            Request::Range(range) => RangeShape {
                count_only: range.count_only,
                keys_only: range.keys_only,
            },
            _ => RangeShape::default(),
        }
    }

    fn apply(self, response: &mut ch::Response) {
        if let ch::Response::Range { kvs, .. } = response {
            if self.count_only {
                *kvs = None;
            } else if self.keys_only {
                for kv in kvs.iter_mut().flatten() {
                    kv.value = None;
                }
            }
        }
    }
}

/// One operation of the history; `outcome` is `None` when the outcome is unknown.
pub fn operation(
    id: u64,
    client: usize,
    call: Instant,
    request: ch::Request,
    outcome: Option<(Instant, Result<Response, RequestError>)>,
    shape: RangeShape,
) -> ch::Operation {
    let recorded = outcome.and_then(|(time, reply)| {
        let mut result = response(reply)?;
        shape.apply(&mut result);
        Some((time, result))
    });
    let (ret, result) = match recorded {
        Some((time, result)) => (Some(time_of(time)), Some(result)),
        None => (None, None),
    };
    ch::Operation {
        id,
        client: client as u64,
        call: time_of(call),
        ret,
        request,
        result,
        user: None,
        lock: None,
    }
}

/// A simulated instant on the history's clock (nanoseconds).
pub fn time_of(time: Instant) -> i64 {
    i64::try_from(time.0).expect("simulated time fits in i64 nanoseconds")
}

/// A member id for the trace.
pub fn member(id: NodeId) -> MemberId {
    MemberId(id.0)
}

/// A `LogState` trace event from a member's log sample.
pub fn log_state(
    id: NodeId,
    time: Instant,
    entries: &[(LogIndex, Term, u64)],
    commit_index: LogIndex,
) -> checkers::trace::TraceEvent {
    checkers::trace::TraceEvent::LogState {
        member: member(id),
        time: time_of(time),
        entries: entries
            .iter()
            .map(|(index, term, digest)| LogEntry {
                index: ChIndex(index.0),
                term: ChTerm(term.0),
                digest: *digest,
            })
            .collect(),
        commit_index: ChIndex(commit_index.0),
    }
}

/// A member's final MVCC change log: every retained change after its compaction point.
pub fn final_store(store: &engine::mvcc::Store) -> (i64, Vec<StoreChange>) {
    let compacted = store.compacted_revision();
    let changes = store
        .events(b"\0", b"\0", compacted.next(), store.revision(), usize::MAX)
        .unwrap_or_default()
        .into_iter()
        .map(|event| StoreChange {
            revision: event.kv.mod_revision.0,
            value: match event.kind {
                engine::kv::EventType::Put => Some(event.kv.value),
                engine::kv::EventType::Delete => None,
            },
            key: event.kv.key,
        })
        .collect();
    (compacted.0, changes)
}

/// The checkers' watch record for a recorded stream.
pub fn watch(record: &crate::history::WatchRecord) -> ch::WatchRecord {
    ch::WatchRecord {
        watch: record.watch,
        client: u64::from(record.client),
        call: time_of(record.call),
        key: record.key.clone(),
        range_end: optional_bytes(&record.range_end),
        start_revision: record.start_revision,
        prev_kv: record.prev_kv,
        events: record
            .events
            .iter()
            .map(|(time, event)| ch::WatchEvent {
                time: time_of(*time),
                revision: event.kv.mod_revision.0,
                kind: match event.kind {
                    engine::kv::EventType::Put => ch::EventKind::Put,
                    engine::kv::EventType::Delete => ch::EventKind::Delete,
                },
                kv: key_value(event.kv.clone()),
                prev_kv: event.prev_kv.clone().map(key_value),
            })
            .collect(),
        progress: record
            .progress
            .iter()
            .map(|(time, revision, events_before)| ch::WatchProgress {
                time: time_of(*time),
                revision: *revision,
                events_before: *events_before,
            })
            .collect(),
        canceled: record
            .canceled
            .as_ref()
            .map(|(time, reason, compact_revision)| ch::WatchCancel {
                time: time_of(*time),
                reason: reason.clone(),
                compact_revision: Some(*compact_revision),
            }),
    }
}
