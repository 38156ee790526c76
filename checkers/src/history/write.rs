//! Writing history lines: the inverse of `read`, so that `parse(write(h)) == h`.
//!
//! Optional fields that are absent are omitted; bytes that are not UTF-8 go out as `*_b64`.
//! It writes JSON values only; where they go (file, socket) is the caller's business.

use super::base64;
use super::*;
use serde_json::{json, Map, Value};

/// Writes a whole history as JSON lines (operations, then watches).
pub fn write_history(history: &History) -> String {
    let mut out = String::new();
    for op in &history.ops {
        out.push_str(&operation_to_json(op).to_string());
        out.push('\n');
    }
    for watch in &history.watches {
        out.push_str(&watch_to_json(watch).to_string());
        out.push('\n');
    }
    out
}

/// One operation as its JSON line.
pub fn operation_to_json(op: &Operation) -> Value {
    let mut line = json!({
        "id": op.id,
        "client": op.client,
        "call": op.call,
        "return": op.ret,
        "op": request_json(&op.request),
        "result": op.result.as_ref().map(response_json),
    });
    if let Some(user) = &op.user {
        line["user"] = json!(user);
    }
    if let Some(note) = &op.lock {
        line["lock"] = lock_json(note);
    }
    line
}

/// An operation's `lock` note.
pub fn lock_json(note: &LockNote) -> Value {
    let mut object = Map::new();
    put_bytes(&mut object, "name", &note.name);
    object.insert("step".into(), json!(note.step.name()));
    put_bytes(&mut object, "key", &note.key);
    object.insert("token".into(), json!(note.token));
    Value::Object(object)
}

/// One watch record as its JSON line.
pub fn watch_to_json(watch: &WatchRecord) -> Value {
    let mut object = Map::new();
    object.insert("watch".into(), json!(watch.watch));
    object.insert("client".into(), json!(watch.client));
    object.insert("call".into(), json!(watch.call));
    put_bytes(&mut object, "key", &watch.key);
    if let Some(end) = &watch.range_end {
        put_bytes(&mut object, "range_end", end);
    }
    object.insert("start_revision".into(), json!(watch.start_revision));
    object.insert("prev_kv".into(), json!(watch.prev_kv));
    let events: Vec<Value> = watch.events.iter().map(event_json).collect();
    object.insert("events".into(), Value::Array(events));
    if !watch.progress.is_empty() {
        let progress: Vec<Value> = watch
            .progress
            .iter()
            .map(|progress| {
                json!({"time": progress.time, "revision": progress.revision, "events_before": progress.events_before})
            })
            .collect();
        object.insert("progress".into(), Value::Array(progress));
    }
    let canceled = watch.canceled.as_ref().map(|cancel| {
        let mut inner = Map::new();
        inner.insert("time".into(), json!(cancel.time));
        inner.insert("reason".into(), json!(cancel.reason));
        put_opt(&mut inner, "compact_revision", cancel.compact_revision);
        Value::Object(inner)
    });
    object.insert("canceled".into(), canceled.unwrap_or(Value::Null));
    Value::Object(object)
}

fn event_json(event: &WatchEvent) -> Value {
    let mut object = Map::new();
    object.insert("time".into(), json!(event.time));
    object.insert("revision".into(), json!(event.revision));
    let kind = match event.kind {
        EventKind::Put => "put",
        EventKind::Delete => "delete",
    };
    object.insert("type".into(), json!(kind));
    object.insert("kv".into(), kv_json(&event.kv));
    if let Some(prev) = &event.prev_kv {
        object.insert("prev_kv".into(), kv_json(prev));
    }
    Value::Object(object)
}

/// One request as the `op` object of its line.
pub fn request_to_json(request: &Request) -> Value {
    request_json(request)
}

fn request_json(request: &Request) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), json!(request.type_name()));
    match request {
        Request::Range(range) => {
            put_bytes(&mut object, "key", &range.key);
            if let Some(end) = &range.range_end {
                put_bytes(&mut object, "range_end", end);
            }
            if range.revision != 0 {
                object.insert("revision".into(), json!(range.revision));
            }
            if range.limit != 0 {
                object.insert("limit".into(), json!(range.limit));
            }
            if range.serializable {
                object.insert("serializable".into(), json!(true));
            }
        }
        Request::Put(put) => {
            put_bytes(&mut object, "key", &put.key);
            put_bytes(&mut object, "value", &put.value);
            if put.lease != 0 {
                object.insert("lease".into(), json!(put.lease));
            }
            if put.prev_kv {
                object.insert("prev_kv".into(), json!(true));
            }
        }
        Request::Delete(delete) => {
            put_bytes(&mut object, "key", &delete.key);
            if let Some(end) = &delete.range_end {
                put_bytes(&mut object, "range_end", end);
            }
            if delete.prev_kv {
                object.insert("prev_kv".into(), json!(true));
            }
        }
        Request::Txn(txn) => {
            let compare: Vec<Value> = txn.compare.iter().map(compare_json).collect();
            object.insert("compare".into(), Value::Array(compare));
            object.insert(
                "success".into(),
                Value::Array(txn.success.iter().map(request_json).collect()),
            );
            object.insert(
                "failure".into(),
                Value::Array(txn.failure.iter().map(request_json).collect()),
            );
        }
        Request::LeaseGrant { ttl_seconds, id } => {
            object.insert("ttl".into(), json!(ttl_seconds));
            if *id != 0 {
                object.insert("id".into(), json!(id));
            }
        }
        Request::LeaseRevoke { id } | Request::LeaseKeepAlive { id } => {
            object.insert("id".into(), json!(id));
        }
        Request::Compact { revision } => {
            object.insert("revision".into(), json!(revision));
        }
        Request::Auth(op) => super::auth::write(op, &mut object, put_bytes),
    }
    Value::Object(object)
}

fn compare_json(compare: &Compare) -> Value {
    let mut object = Map::new();
    put_bytes(&mut object, "key", &compare.key);
    let target = match compare.target {
        CompareTarget::Value => "value",
        CompareTarget::Version => "version",
        CompareTarget::Create => "create",
        CompareTarget::Mod => "mod",
        CompareTarget::Lease => "lease",
    };
    object.insert("target".into(), json!(target));
    let op = match compare.op {
        CompareOp::Equal => "=",
        CompareOp::NotEqual => "!=",
        CompareOp::Less => "<",
        CompareOp::Greater => ">",
    };
    object.insert("op".into(), json!(op));
    match &compare.value {
        CompareValue::Bytes(bytes) => put_bytes(&mut object, "value", bytes),
        CompareValue::Int(number) => {
            object.insert("value".into(), json!(number));
        }
    }
    Value::Object(object)
}

fn response_json(response: &Response) -> Value {
    let mut object = Map::new();
    let kind = match response {
        Response::Range {
            revision,
            kvs,
            count,
        } => {
            put_opt(&mut object, "revision", *revision);
            put_kvs(&mut object, "kvs", kvs);
            put_opt(&mut object, "count", *count);
            "range"
        }
        Response::Put { revision, prev_kv } => {
            put_opt(&mut object, "revision", *revision);
            if let Some(prev) = prev_kv {
                object.insert(
                    "prev_kv".into(),
                    prev.as_ref().map(kv_json).unwrap_or(Value::Null),
                );
            }
            "put"
        }
        Response::Delete {
            revision,
            deleted,
            prev_kvs,
        } => {
            put_opt(&mut object, "revision", *revision);
            put_opt(&mut object, "deleted", *deleted);
            put_kvs(&mut object, "prev_kvs", prev_kvs);
            "delete"
        }
        Response::Txn {
            revision,
            succeeded,
            responses,
        } => {
            put_opt(&mut object, "revision", *revision);
            if let Some(flag) = succeeded {
                object.insert("succeeded".into(), json!(flag));
            }
            if let Some(list) = responses {
                object.insert(
                    "responses".into(),
                    Value::Array(list.iter().map(response_json).collect()),
                );
            }
            "txn"
        }
        Response::LeaseGrant { id, ttl_seconds } => {
            put_opt(&mut object, "id", *id);
            put_opt(&mut object, "ttl", *ttl_seconds);
            "lease_grant"
        }
        Response::LeaseRevoke { revision } => {
            put_opt(&mut object, "revision", *revision);
            "lease_revoke"
        }
        Response::LeaseKeepAlive { ttl_seconds } => {
            put_opt(&mut object, "ttl", *ttl_seconds);
            "lease_keepalive"
        }
        Response::Compact { revision } => {
            put_opt(&mut object, "revision", *revision);
            "compact"
        }
        Response::Auth { revision } => {
            put_opt(&mut object, "revision", *revision);
            "auth"
        }
        Response::Error { code, message } => {
            object.insert("code".into(), json!(code));
            if let Some(text) = message {
                object.insert("message".into(), json!(text));
            }
            "error"
        }
    };
    object.insert("type".into(), json!(kind));
    Value::Object(object)
}

fn kv_json(kv: &KeyValue) -> Value {
    let mut object = Map::new();
    put_bytes(&mut object, "key", &kv.key);
    if let Some(value) = &kv.value {
        put_bytes(&mut object, "value", value);
    }
    put_opt(&mut object, "create_revision", kv.create_revision);
    put_opt(&mut object, "mod_revision", kv.mod_revision);
    put_opt(&mut object, "version", kv.version);
    put_opt(&mut object, "lease", kv.lease);
    Value::Object(object)
}

fn put_kvs(object: &mut Map<String, Value>, name: &str, kvs: &Option<Vec<KeyValue>>) {
    if let Some(list) = kvs {
        object.insert(
            name.into(),
            Value::Array(list.iter().map(kv_json).collect()),
        );
    }
}

fn put_opt(object: &mut Map<String, Value>, name: &str, value: Option<i64>) {
    if let Some(number) = value {
        object.insert(name.into(), json!(number));
    }
}

fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert(name.into(), json!(text)),
        Err(_) => object.insert(format!("{name}_b64"), json!(base64::encode(bytes))),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_round_trips() {
        // Goal: the example lines of the spec parse, and writing then re-reading gives the same
        // values (the writer is the reader's inverse). Method: parse, write, parse, compare.
        let text = r#"{"id":7,"client":2,"call":1200,"return":1450,"op":{"type":"put","key":"a","value":"1"},"result":{"type":"put","revision":5}}
{"id":8,"client":3,"call":1,"return":null,"op":{"type":"txn","compare":[{"key":"a","target":"value","op":"=","value":"1"},{"key_b64":"/w==","target":"mod","op":"<","value":3}],"success":[{"type":"range","key":"a","range_end":"\u0000"}],"failure":[]},"result":null}
{"id":9,"client":3,"call":2,"return":3,"op":{"type":"range","key":"a"},"result":{"type":"range","revision":5,"kvs":[{"key":"a","value_b64":"/w==","mod_revision":5}],"count":1}}
{"watch":3,"client":4,"call":900,"key":"a","range_end":"b","start_revision":1,"prev_kv":false,"events":[{"time":1500,"revision":5,"type":"put","kv":{"key":"a","value":"1","create_revision":5,"mod_revision":5,"version":1}}],"canceled":null}"#;
        let history = parse_history(text).unwrap();
        assert_eq!(history.ops.len(), 3);
        assert_eq!(history.watches.len(), 1);
        assert_eq!(
            history.ops[2]
                .result
                .as_ref()
                .map(|r| matches!(r, Response::Range { .. })),
            Some(true)
        );
        let again = parse_history(&write_history(&history)).unwrap();
        assert_eq!(again, history);
    }

    #[test]
    fn malformed_lines_name_line_and_field() {
        // Goal: every malformed input is rejected with the line and the field named. Method: a
        // table of bad lines, each placed on line 2 after a good one.
        let good = r#"{"id":1,"client":1,"call":1,"return":2,"op":{"type":"put","key":"a","value":"1"},"result":{"type":"put"}}"#;
        let cases = [
            ("{not json", "invalid JSON"),
            (
                r#"{"client":1,"call":1,"op":{"type":"put","key":"a","value":"1"}}"#,
                "id: missing",
            ),
            (
                r#"{"id":2,"client":1,"call":1,"return":null,"op":{"type":"zap"}}"#,
                "op.type: unknown request type",
            ),
            (
                r#"{"id":2,"client":1,"call":5,"return":4,"op":{"type":"range","key":"a"},"result":{"type":"range"}}"#,
                "before call",
            ),
            (
                r#"{"id":2,"client":1,"call":1,"return":2,"op":{"type":"range","key":"a"},"result":null}"#,
                "return given but result is null",
            ),
            (
                r#"{"id":2,"client":1,"call":1,"return":null,"op":{"type":"txn","compare":[{"key":"a","target":"size","op":"=","value":1}]},"result":null}"#,
                "op.compare[0].target",
            ),
            (
                r#"{"id":1,"client":1,"call":1,"return":null,"op":{"type":"range","key":"a"},"result":null}"#,
                "id 1 already used on line 1",
            ),
            (
                r#"{"id":2,"client":1,"call":1,"return":null,"op":{"type":"put","key_b64":"!!","value":"1"},"result":null}"#,
                "key_b64: not valid base64",
            ),
        ];
        for (bad, expected) in cases {
            let error = parse_history(&format!("{good}\n{bad}\n")).unwrap_err();
            assert_eq!(error.line, 2, "{bad}");
            assert!(
                error.message.contains(expected),
                "{bad}: got {}",
                error.message
            );
        }
    }
}
