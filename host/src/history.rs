//! The history recorder: renders client operations and watch streams as the JSON lines of
//! `docs/history-format.md` (version 2 when auth requests or users are recorded, else v1), with times in the host's nanoseconds (simulated in the simulator).
//!
//! It only renders what clients saw; it does not judge it (the inline invariants and, later, the
//! checkers do). Requests the format has no type for (watch control, lease queries) are not
//! recorded as operations.

use engine::kv::{
    Compare, CompareResult, CompareTarget, Event, EventType, KeyValue, Request, RequestError,
    RequestOp, Response, ResponseOp, SortOrder,
};
use engine::types::Instant;
use serde_json::{json, Map, Value};

/// Puts `bytes` under `field`, or under `field_b64` when they are not UTF-8.
fn put_bytes(object: &mut Map<String, Value>, field: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            object.insert(field.to_string(), Value::from(text));
        }
        Err(_) => {
            object.insert(
                format!("{field}_b64"),
                Value::from(checkers::history::encode_base64(bytes)),
            );
        }
    }
}

/// The spec's `op` object for a request, or `None` when the format has no type for it.
pub fn op_json(request: &Request) -> Option<Value> {
    let mut object = Map::new();
    match request {
        Request::Range(range) => {
            object.insert("type".into(), "range".into());
            put_bytes(&mut object, "key", &range.key);
            if !range.range_end.is_empty() {
                put_bytes(&mut object, "range_end", &range.range_end);
            }
            object.insert("revision".into(), range.revision.0.into());
            object.insert("limit".into(), range.limit.into());
            object.insert("serializable".into(), range.serializable.into());
            // Not in the format's range request: informative only. The result leaves out what
            // these options hid (see `operation_line`), and sorted kvs are recorded in key order.
            if range.count_only {
                object.insert("count_only".into(), true.into());
            }
            if range.keys_only {
                object.insert("keys_only".into(), true.into());
            }
            if range.sort_order != SortOrder::None {
                object.insert(
                    "sort_order".into(),
                    format!("{:?}", range.sort_order).into(),
                );
                object.insert(
                    "sort_target".into(),
                    format!("{:?}", range.sort_target).into(),
                );
            }
        }
        Request::Put(put) => {
            object.insert("type".into(), "put".into());
            put_bytes(&mut object, "key", &put.key);
            put_bytes(&mut object, "value", &put.value);
            object.insert("lease".into(), put.lease.0.into());
            object.insert("prev_kv".into(), put.prev_kv.into());
        }
        Request::DeleteRange(delete) => {
            object.insert("type".into(), "delete".into());
            put_bytes(&mut object, "key", &delete.key);
            if !delete.range_end.is_empty() {
                put_bytes(&mut object, "range_end", &delete.range_end);
            }
            object.insert("prev_kv".into(), delete.prev_kv.into());
        }
        Request::Txn(txn) => {
            object.insert("type".into(), "txn".into());
            object.insert(
                "compare".into(),
                txn.compare.iter().map(compare_json).collect(),
            );
            object.insert(
                "success".into(),
                txn.success.iter().filter_map(request_op_json).collect(),
            );
            object.insert(
                "failure".into(),
                txn.failure.iter().filter_map(request_op_json).collect(),
            );
        }
        Request::LeaseGrant(grant) => {
            object.insert("type".into(), "lease_grant".into());
            object.insert("ttl".into(), grant.ttl_seconds.into());
            if grant.id.0 != 0 {
                object.insert("id".into(), grant.id.0.into());
            }
        }
        Request::LeaseRevoke { id } => return Some(json!({"type": "lease_revoke", "id": id.0})),
        Request::LeaseKeepAlive { id } => {
            return Some(json!({"type": "lease_keepalive", "id": id.0}))
        }
        Request::Compact(compact) => {
            return Some(json!({"type": "compact", "revision": compact.revision.0}))
        }
        Request::Auth(auth) => return crate::history_auth::auth_op_json(auth),
        _ => return None,
    }
    Some(Value::Object(object))
}

fn request_op_json(op: &RequestOp) -> Option<Value> {
    match op {
        RequestOp::Range(range) => op_json(&Request::Range(range.clone())),
        RequestOp::Put(put) => op_json(&Request::Put(put.clone())),
        RequestOp::DeleteRange(delete) => op_json(&Request::DeleteRange(delete.clone())),
        RequestOp::Txn(txn) => op_json(&Request::Txn(txn.clone())),
    }
}

fn compare_json(compare: &Compare) -> Value {
    let mut object = Map::new();
    put_bytes(&mut object, "key", &compare.key);
    let (target, value): (&str, Value) = match &compare.target {
        CompareTarget::Version(version) => ("version", (*version).into()),
        CompareTarget::Create(revision) => ("create", revision.0.into()),
        CompareTarget::Mod(revision) => ("mod", revision.0.into()),
        CompareTarget::Lease(lease) => ("lease", lease.0.into()),
        CompareTarget::Value(bytes) => {
            ("value", String::from_utf8_lossy(bytes).into_owned().into())
        }
    };
    object.insert("target".into(), target.into());
    let op = match compare.result {
        CompareResult::Equal => "=",
        CompareResult::NotEqual => "!=",
        CompareResult::Less => "<",
        CompareResult::Greater => ">",
    };
    object.insert("op".into(), op.into());
    object.insert("value".into(), value);
    Value::Object(object)
}

/// The spec's `kvs` entry for a key-value.
pub fn kv_json(kv: &KeyValue) -> Value {
    let mut object = Map::new();
    put_bytes(&mut object, "key", &kv.key);
    put_bytes(&mut object, "value", &kv.value);
    object.insert("create_revision".into(), kv.create_revision.0.into());
    object.insert("mod_revision".into(), kv.mod_revision.0.into());
    object.insert("version".into(), kv.version.into());
    object.insert("lease".into(), kv.lease.0.into());
    Value::Object(object)
}

/// The spec's `result` object for a reply.
pub fn result_json(result: &Result<Response, RequestError>) -> Value {
    match result {
        Err(error) => {
            json!({"type": "error", "code": error.code(), "message": error.message()})
        }
        Ok(response) => response_json(response),
    }
}

fn response_json(response: &Response) -> Value {
    match response {
        Response::Range(range) => json!({
            "type": "range", "revision": range.header.revision.0,
            "kvs": range.kvs.iter().map(kv_json).collect::<Vec<_>>(), "count": range.count,
        }),
        Response::Put(put) => {
            let mut value = json!({"type": "put", "revision": put.header.revision.0});
            if let Some(prev) = &put.prev_kv {
                value["prev_kv"] = kv_json(prev);
            }
            value
        }
        Response::DeleteRange(delete) => json!({
            "type": "delete", "revision": delete.header.revision.0, "deleted": delete.deleted,
            "prev_kvs": delete.prev_kvs.iter().map(kv_json).collect::<Vec<_>>(),
        }),
        Response::Txn(txn) => json!({
            "type": "txn", "revision": txn.header.revision.0, "succeeded": txn.succeeded,
            "responses": txn.responses.iter().map(response_op_json).collect::<Vec<_>>(),
        }),
        Response::LeaseGrant {
            id, ttl_seconds, ..
        } => json!({"type": "lease_grant", "id": id.0, "ttl": ttl_seconds}),
        Response::LeaseRevoke { header } => {
            json!({"type": "lease_revoke", "revision": header.revision.0})
        }
        Response::LeaseKeepAlive { ttl_seconds, .. } => {
            json!({"type": "lease_keepalive", "ttl": ttl_seconds})
        }
        Response::Compact { header } => json!({"type": "compact", "revision": header.revision.0}),
        Response::Auth { header, .. } => json!({"type": "auth", "revision": header.revision.0}),
        other => json!({"type": "other", "debug": format!("{other:?}")}),
    }
}

fn response_op_json(op: &ResponseOp) -> Value {
    match op {
        ResponseOp::Range(range) => response_json(&Response::Range(range.clone())),
        ResponseOp::Put(put) => response_json(&Response::Put(put.clone())),
        ResponseOp::DeleteRange(delete) => response_json(&Response::DeleteRange(delete.clone())),
        ResponseOp::Txn(txn) => response_json(&Response::Txn(txn.clone())),
    }
}

/// One history line. `outcome` is `None` when the outcome is unknown (timeout).
pub fn operation_line(
    id: u64,
    client: u32,
    call: Instant,
    op: &Value,
    outcome: Option<(Instant, &Result<Response, RequestError>)>,
) -> String {
    operation_line_as(id, client, None, call, op, outcome)
}

/// [`operation_line`] of a request run as `user` (format version 2's `user`; left out when
/// `None`, so a line without credentials is a version 1 line).
pub fn operation_line_as(
    id: u64,
    client: u32,
    user: Option<&str>,
    call: Instant,
    op: &Value,
    outcome: Option<(Instant, &Result<Response, RequestError>)>,
) -> String {
    let (return_time, mut result) = match outcome {
        Some((time, result)) => (Value::from(time.0), result_json(result)),
        None => (Value::Null, Value::Null),
    };
    // A count-only reply has no kvs and a keys-only one no values: leave them out rather than
    // record empty ones (as `checking::RangeShape` does for the checkers).
    if result["type"] == "range" {
        if op["count_only"] == true {
            result.as_object_mut().map(|object| object.remove("kvs"));
        } else if op["keys_only"] == true {
            if let Some(kvs) = result["kvs"].as_array_mut() {
                for kv in kvs {
                    kv.as_object_mut().map(|object| object.remove("value"));
                }
            }
        }
    }
    let mut line = json!({"id": id, "client": client, "call": call.0, "return": return_time, "op": op, "result": result});
    if let Some(user) = user {
        line["user"] = Value::from(user);
    }
    serde_json::to_string(&line).expect("a JSON value always serialises")
}

/// Where recorded facts are hashed (the simulator's trace hash): words, then byte strings.
pub trait FactHasher {
    /// Feeds one fact.
    fn hash_fact(&mut self, words: &[u64], byte_strings: &[&[u8]]);
}

/// One watch stream as it is recorded (structured; rendered as JSON only when asked).
#[derive(Clone, Debug)]
pub struct WatchRecord {
    /// The spec's `watch` id (unique per run).
    pub watch: u64,
    /// The watching client.
    pub client: u32,
    /// When the watch was requested.
    pub call: Instant,
    /// First key.
    pub key: Vec<u8>,
    /// End of the range.
    pub range_end: Vec<u8>,
    /// Requested start revision.
    pub start_revision: i64,
    /// Whether the stream asked for previous key-values.
    pub prev_kv: bool,
    /// Events received, with their arrival times.
    pub events: Vec<(Instant, Event)>,
    /// Progress notifications received: arrival time, revision, and how many events came first.
    pub progress: Vec<(Instant, i64, usize)>,
    /// The cancellation (time, reason, compact revision), if the stream ended.
    pub canceled: Option<(Instant, String, i64)>,
}

impl WatchRecord {
    /// Adds the events of one watch response received at `time`.
    pub fn push_events(&mut self, time: Instant, events: &[Event]) {
        self.events
            .extend(events.iter().map(|event| (time, event.clone())));
    }

    /// Records a progress notification at `revision` received at `time`.
    pub fn push_progress(&mut self, time: Instant, revision: i64) {
        self.progress.push((time, revision, self.events.len()));
    }

    /// Marks the stream ended at `time`.
    pub fn cancel(&mut self, time: Instant, reason: &str, compact_revision: i64) {
        if self.canceled.is_none() {
            self.canceled = Some((time, reason.to_string(), compact_revision));
        }
    }

    /// Feeds the record into the trace hash field by field (rendering JSON per run would cost
    /// more than the run).
    pub fn hash_into(&self, trace: &mut impl FactHasher) {
        // Tag 2: a watch stream.
        let words = [
            2,
            self.watch,
            u64::from(self.client),
            self.call.0,
            self.start_revision as u64,
            u64::from(self.prev_kv),
        ];
        trace.hash_fact(&words, &[&self.key, &self.range_end]);
        for (time, event) in &self.events {
            let kv = &event.kv;
            let kind = match event.kind {
                EventType::Put => 0,
                EventType::Delete => 1,
            };
            let words = [
                3,
                time.0,
                kind,
                kv.mod_revision.0 as u64,
                kv.create_revision.0 as u64,
                kv.version as u64,
                kv.lease.0 as u64,
            ];
            trace.hash_fact(&words, &[&kv.key, &kv.value]);
            if let Some(prev) = &event.prev_kv {
                let words = [5, prev.mod_revision.0 as u64, prev.version as u64];
                trace.hash_fact(&words, &[&prev.key, &prev.value]);
            }
        }
        for (time, revision, events_before) in &self.progress {
            trace.hash_fact(&[6, time.0, *revision as u64, *events_before as u64], &[]);
        }
        if let Some((time, reason, compact_revision)) = &self.canceled {
            trace.hash_fact(&[4, time.0, *compact_revision as u64], &[reason.as_bytes()]);
        }
    }

    /// The spec's watch line.
    pub fn line(&self) -> String {
        let mut object = Map::new();
        object.insert("watch".into(), self.watch.into());
        object.insert("client".into(), self.client.into());
        object.insert("call".into(), self.call.0.into());
        put_bytes(&mut object, "key", &self.key);
        put_bytes(&mut object, "range_end", &self.range_end);
        object.insert("start_revision".into(), self.start_revision.into());
        object.insert("prev_kv".into(), self.prev_kv.into());
        let events = self
            .events
            .iter()
            .map(|(time, event)| {
                let kind = match event.kind {
                    EventType::Put => "put",
                    EventType::Delete => "delete",
                };
                let mut line = json!({
                    "time": time.0, "revision": event.kv.mod_revision.0, "type": kind, "kv": kv_json(&event.kv),
                });
                if let Some(prev) = &event.prev_kv {
                    line["prev_kv"] = kv_json(prev);
                }
                line
            })
            .collect();
        object.insert("events".into(), Value::Array(events));
        if !self.progress.is_empty() {
            let progress = self
                .progress
                .iter()
                .map(|(time, revision, events_before)| {
                    json!({"time": time.0, "revision": revision, "events_before": events_before})
                })
                .collect();
            object.insert("progress".into(), Value::Array(progress));
        }
        let canceled = match &self.canceled {
            Some((time, reason, compact_revision)) => {
                json!({"time": time.0, "reason": reason, "compact_revision": compact_revision})
            }
            None => Value::Null,
        };
        object.insert("canceled".into(), canceled);
        serde_json::to_string(&Value::Object(object)).expect("a JSON value always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::{op_json, operation_line};
    use engine::kv::{PutRequest, PutResponse, Request, RequestError, Response, ResponseHeader};
    use engine::types::{Instant, Revision};

    /// Goal: lines follow the spec's example shape exactly (field names, null for unknown).
    /// Method: render a put with a result and one with an unknown outcome; compare text.
    #[test]
    fn put_lines_match_the_spec() {
        let request = Request::Put(PutRequest {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        });
        let op = op_json(&request).unwrap();
        let reply = Ok(Response::Put(PutResponse {
            header: ResponseHeader {
                revision: Revision(5),
                ..Default::default()
            },
            prev_kv: None,
        }));
        insta::assert_snapshot!(operation_line(7, 2, Instant(1200), &op, Some((Instant(1450), &reply))), @r#"{"call":1200,"client":2,"id":7,"op":{"key":"a","lease":0,"prev_kv":false,"type":"put","value":"1"},"result":{"revision":5,"type":"put"},"return":1450}"#);
        insta::assert_snapshot!(operation_line(8, 2, Instant(1500), &op, None), @r#"{"call":1500,"client":2,"id":8,"op":{"key":"a","lease":0,"prev_kv":false,"type":"put","value":"1"},"result":null,"return":null}"#);
        let error = Err(RequestError::NotLeader { leader_hint: None });
        let line = operation_line(9, 1, Instant(1), &op, Some((Instant(2), &error)));
        assert!(line.contains(r#""code":"unavailable""#), "{line}");
        // etcd's error string, not a Rust debug rendering.
        assert!(
            line.contains(r#""message":"etcdserver: no leader""#),
            "{line}"
        );
    }

    /// Goal: bytes that are not UTF-8 go under the spec's `*_b64` field, RFC 4648-encoded, and
    /// text stays plain. Method: write both kinds into one object and read the fields back (the
    /// encoder's own RFC vectors are tested where it lives, in checkers::history).
    #[test]
    fn bytes_that_are_not_text_go_under_b64_fields() {
        let mut object = serde_json::Map::new();
        super::put_bytes(&mut object, "key", b"foobar");
        super::put_bytes(&mut object, "value", &[0xff, 0x00]);
        assert_eq!(object["key"], "foobar");
        assert_eq!(object["value_b64"], "/wA=");
        assert!(!object.contains_key("value"));
    }
}
