//! Reading history lines: JSON to `Operation` / `WatchRecord`, rejecting anything malformed with
//! an error naming the line and the field.
//!
//! Unknown fields are ignored (producers may add more). It does not check cross-line rules such as
//! unique ids; `parse_history` does that one.

use super::base64;
use super::*;
use serde_json::{Map, Value};

/// A malformed history: which line (1-based) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HistoryError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, naming the field.
    pub message: String,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A client operation.
    Op(Operation),
    /// A watch observation.
    Watch(WatchRecord),
}

type Parsed<T> = Result<T, String>;

/// Parses a whole history file (JSON lines; blank lines are skipped).
pub fn parse_history(text: &str) -> Result<History, HistoryError> {
    let mut history = History::default();
    let mut ids = std::collections::BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(raw).map_err(|message| HistoryError {
            line: line_number,
            message,
        })? {
            Line::Op(op) => {
                if let Some(first) = ids.insert(op.id, line_number) {
                    return Err(HistoryError {
                        line: line_number,
                        message: format!("id {} already used on line {first}", op.id),
                    });
                }
                history.ops.push(op);
            }
            Line::Watch(watch) => history.watches.push(watch),
        }
    }
    Ok(history)
}

/// Parses one line; the error names the field at fault.
pub fn parse_line(raw: &str) -> Result<Line, String> {
    let value: Value =
        serde_json::from_str(raw).map_err(|error| format!("invalid JSON: {error}"))?;
    let object = value.as_object().ok_or("expected a JSON object")?;
    if object.contains_key("watch") {
        return parse_watch(object).map(Line::Watch);
    }
    parse_operation(object).map(Line::Op)
}

fn parse_operation(object: &Map<String, Value>) -> Parsed<Operation> {
    let id = required_u64(object, "id")?;
    let client = required_u64(object, "client")?;
    let call = required_i64(object, "call")?;
    let ret = optional_i64(object, "return")?;
    let request = parse_request(field_object(object, "op")?).map_err(|e| format!("op.{e}"))?;
    let result = match object.get("result") {
        None | Some(Value::Null) => None,
        Some(Value::Object(result)) => {
            Some(parse_response(result).map_err(|e| format!("result.{e}"))?)
        }
        Some(_) => return Err("result: expected an object or null".into()),
    };
    match (ret, &result) {
        (None, Some(_)) => return Err("result given but return is null".into()),
        (Some(_), None) => return Err("return given but result is null".into()),
        _ => {}
    }
    if let Some(ret) = ret {
        if ret < call {
            return Err(format!("return {ret} is before call {call}"));
        }
    }
    let user = match object.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return Err("user: expected a string".into()),
    };
    let lock = match object.get("lock") {
        None | Some(Value::Null) => None,
        Some(Value::Object(note)) => Some(parse_lock(note).map_err(|e| format!("lock.{e}"))?),
        Some(_) => return Err("lock: expected an object or null".into()),
    };
    Ok(Operation {
        id,
        client,
        call,
        ret,
        request,
        result,
        user,
        lock,
    })
}

fn parse_lock(object: &Map<String, Value>) -> Parsed<LockNote> {
    let step = match required_str(object, "step")? {
        "acquired" => LockStep::Acquired,
        "fenced" => LockStep::Fenced,
        "released" => LockStep::Released,
        other => return Err(format!("step: unknown step {other:?}")),
    };
    Ok(LockNote {
        name: required_bytes(object, "name")?,
        step,
        key: required_bytes(object, "key")?,
        token: required_i64(object, "token")?,
    })
}

fn parse_request(object: &Map<String, Value>) -> Parsed<Request> {
    let kind = required_str(object, "type")?;
    Ok(match kind {
        "range" => Request::Range(RangeRequest {
            key: required_bytes(object, "key")?,
            range_end: optional_bytes(object, "range_end")?,
            revision: optional_i64(object, "revision")?.unwrap_or(0),
            limit: optional_i64(object, "limit")?.unwrap_or(0),
            serializable: optional_bool(object, "serializable")?.unwrap_or(false),
        }),
        "put" => Request::Put(PutRequest {
            key: required_bytes(object, "key")?,
            value: required_bytes(object, "value")?,
            lease: optional_i64(object, "lease")?.unwrap_or(0),
            prev_kv: optional_bool(object, "prev_kv")?.unwrap_or(false),
        }),
        "delete" => Request::Delete(DeleteRequest {
            key: required_bytes(object, "key")?,
            range_end: optional_bytes(object, "range_end")?,
            prev_kv: optional_bool(object, "prev_kv")?.unwrap_or(false),
        }),
        "txn" => Request::Txn(TxnRequest {
            compare: list(object, "compare", parse_compare)?,
            success: list(object, "success", parse_request)?,
            failure: list(object, "failure", parse_request)?,
        }),
        "lease_grant" => Request::LeaseGrant {
            ttl_seconds: required_i64(object, "ttl")?,
            id: optional_i64(object, "id")?.unwrap_or(0),
        },
        "lease_revoke" => Request::LeaseRevoke {
            id: required_i64(object, "id")?,
        },
        "lease_keepalive" => Request::LeaseKeepAlive {
            id: required_i64(object, "id")?,
        },
        "compact" => Request::Compact {
            revision: required_i64(object, "revision")?,
        },
        other => match super::auth::parse(other, object, optional_bytes) {
            Some(parsed) => Request::Auth(parsed?),
            None => return Err(format!("type: unknown request type {other:?}")),
        },
    })
}

fn parse_compare(object: &Map<String, Value>) -> Parsed<Compare> {
    let target = match required_str(object, "target")? {
        "value" => CompareTarget::Value,
        "version" => CompareTarget::Version,
        "create" => CompareTarget::Create,
        "mod" => CompareTarget::Mod,
        "lease" => CompareTarget::Lease,
        other => {
            return Err(format!(
                "target: {other:?} is not one of value, version, create, mod, lease"
            ))
        }
    };
    let op = match required_str(object, "op")? {
        "=" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        "<" => CompareOp::Less,
        ">" => CompareOp::Greater,
        other => return Err(format!("op: {other:?} is not one of =, !=, <, >")),
    };
    let value = if target == CompareTarget::Value {
        CompareValue::Bytes(required_bytes(object, "value")?)
    } else {
        CompareValue::Int(required_i64(object, "value")?)
    };
    Ok(Compare {
        key: required_bytes(object, "key")?,
        target,
        op,
        value,
    })
}

fn parse_response(object: &Map<String, Value>) -> Parsed<Response> {
    let kind = required_str(object, "type")?;
    let revision = optional_i64(object, "revision")?;
    Ok(match kind {
        "range" => Response::Range {
            revision,
            kvs: optional_list(object, "kvs", parse_kv)?,
            count: optional_i64(object, "count")?,
        },
        "put" => Response::Put {
            revision,
            prev_kv: match object.get("prev_kv") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(Value::Object(kv)) => {
                    Some(Some(parse_kv(kv).map_err(|e| format!("prev_kv.{e}"))?))
                }
                Some(_) => return Err("prev_kv: expected an object or null".into()),
            },
        },
        "delete" => Response::Delete {
            revision,
            deleted: optional_i64(object, "deleted")?,
            prev_kvs: optional_list(object, "prev_kvs", parse_kv)?,
        },
        "txn" => Response::Txn {
            revision,
            succeeded: optional_bool(object, "succeeded")?,
            responses: optional_list(object, "responses", parse_response)?,
        },
        "lease_grant" => Response::LeaseGrant {
            id: optional_i64(object, "id")?,
            ttl_seconds: optional_i64(object, "ttl")?,
        },
        "lease_revoke" => Response::LeaseRevoke { revision },
        "lease_keepalive" => Response::LeaseKeepAlive {
            ttl_seconds: optional_i64(object, "ttl")?,
        },
        "compact" => Response::Compact { revision },
        "auth" => Response::Auth { revision },
        "error" => Response::Error {
            code: required_str(object, "code")?.to_string(),
            message: match object.get("message") {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(text.clone()),
                Some(_) => return Err("message: expected a string".into()),
            },
        },
        other => return Err(format!("type: unknown result type {other:?}")),
    })
}

fn parse_kv(object: &Map<String, Value>) -> Parsed<KeyValue> {
    Ok(KeyValue {
        key: required_bytes(object, "key")?,
        value: optional_bytes(object, "value")?,
        create_revision: optional_i64(object, "create_revision")?,
        mod_revision: optional_i64(object, "mod_revision")?,
        version: optional_i64(object, "version")?,
        lease: optional_i64(object, "lease")?,
    })
}

fn parse_watch(object: &Map<String, Value>) -> Parsed<WatchRecord> {
    let canceled = match object.get("canceled") {
        None | Some(Value::Null) => None,
        Some(Value::Object(cancel)) => Some(WatchCancel {
            time: required_i64(cancel, "time").map_err(|e| format!("canceled.{e}"))?,
            reason: match cancel.get("reason") {
                Some(Value::String(text)) => text.clone(),
                _ => String::new(),
            },
            compact_revision: optional_i64(cancel, "compact_revision")
                .map_err(|e| format!("canceled.{e}"))?,
        }),
        Some(_) => return Err("canceled: expected an object or null".into()),
    };
    let events = optional_list(object, "events", parse_event)?.unwrap_or_default();
    let progress = optional_list(object, "progress", parse_progress)?
        .unwrap_or_default()
        .into_iter()
        .map(|(time, revision, events_before)| {
            place_progress(time, revision, events_before, &events)
        })
        .collect::<Parsed<Vec<WatchProgress>>>()?;
    Ok(WatchRecord {
        watch: required_u64(object, "watch")?,
        client: required_u64(object, "client")?,
        call: required_i64(object, "call")?,
        key: required_bytes(object, "key")?,
        range_end: optional_bytes(object, "range_end")?,
        start_revision: optional_i64(object, "start_revision")?.unwrap_or(0),
        prev_kv: optional_bool(object, "prev_kv")?.unwrap_or(false),
        events,
        progress,
        canceled,
    })
}

/// A progress item as written: time, revision and, optionally, its place among the events.
fn parse_progress(object: &Map<String, Value>) -> Parsed<(i64, i64, Option<u64>)> {
    let events_before = match object.get("events_before") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .ok_or("events_before: expected a non-negative integer")?,
        ),
    };
    Ok((
        required_i64(object, "time")?,
        required_i64(object, "revision")?,
        events_before,
    ))
}

/// Places a progress notification among the stream's events (by its time when the file does
/// not say).
fn place_progress(
    time: i64,
    revision: i64,
    events_before: Option<u64>,
    events: &[WatchEvent],
) -> Parsed<WatchProgress> {
    let events_before = match events_before {
        Some(count) => usize::try_from(count).map_err(|_| "events_before: too large")?,
        None => events.iter().filter(|event| event.time <= time).count(),
    };
    if events_before > events.len() {
        return Err(format!(
            "events_before: {events_before} but the stream has {} events",
            events.len()
        ));
    }
    Ok(WatchProgress {
        time,
        revision,
        events_before,
    })
}

fn parse_event(object: &Map<String, Value>) -> Parsed<WatchEvent> {
    let kind = match required_str(object, "type")? {
        "put" => EventKind::Put,
        "delete" => EventKind::Delete,
        other => return Err(format!("type: {other:?} is not put or delete")),
    };
    let kv = parse_kv(field_object(object, "kv")?).map_err(|e| format!("kv.{e}"))?;
    let prev_kv = match object.get("prev_kv") {
        None | Some(Value::Null) => None,
        Some(Value::Object(prev)) => Some(parse_kv(prev).map_err(|e| format!("prev_kv.{e}"))?),
        Some(_) => return Err("prev_kv: expected an object or null".into()),
    };
    let revision = match optional_i64(object, "revision")? {
        Some(revision) => revision,
        None => kv
            .mod_revision
            .ok_or("revision: missing (and kv.mod_revision absent)")?,
    };
    Ok(WatchEvent {
        time: required_i64(object, "time")?,
        revision,
        kind,
        kv,
        prev_kv,
    })
}

fn field_object<'a>(object: &'a Map<String, Value>, name: &str) -> Parsed<&'a Map<String, Value>> {
    match object.get(name) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(format!("{name}: expected an object")),
        None => Err(format!("{name}: missing")),
    }
}

fn list<T>(
    object: &Map<String, Value>,
    name: &str,
    parse: fn(&Map<String, Value>) -> Parsed<T>,
) -> Parsed<Vec<T>> {
    Ok(optional_list(object, name, parse)?.unwrap_or_default())
}

fn optional_list<T>(
    object: &Map<String, Value>,
    name: &str,
    parse: fn(&Map<String, Value>) -> Parsed<T>,
) -> Parsed<Option<Vec<T>>> {
    let items = match object.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("{name}: expected a list")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let inner = item
            .as_object()
            .ok_or_else(|| format!("{name}[{index}]: expected an object"))?;
        out.push(parse(inner).map_err(|e| format!("{name}[{index}].{e}"))?);
    }
    Ok(Some(out))
}

fn required_str<'a>(object: &'a Map<String, Value>, name: &str) -> Parsed<&'a str> {
    match object.get(name) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(format!("{name}: expected a string")),
        None => Err(format!("{name}: missing")),
    }
}

fn required_u64(object: &Map<String, Value>, name: &str) -> Parsed<u64> {
    match object.get(name) {
        Some(value) => value
            .as_u64()
            .ok_or_else(|| format!("{name}: expected a non-negative integer")),
        None => Err(format!("{name}: missing")),
    }
}

fn required_i64(object: &Map<String, Value>, name: &str) -> Parsed<i64> {
    optional_i64(object, name)?.ok_or_else(|| format!("{name}: missing"))
}

/// The largest revision, version or count a history may name. etcd's counters are int64, but a
/// store would need 2^62 writes to reach this: anything above it is corrupt input, and
/// rejecting it keeps the checkers' arithmetic (revision - 1, revision + 1) from overflowing.
pub const REVISION_MAX: i64 = 1 << 62;

/// Fields that count something (revisions, versions, counts): never negative, at most
/// `REVISION_MAX`.
const COUNTER_FIELDS: [&str; 9] = [
    "revision",
    "create_revision",
    "mod_revision",
    "version",
    "count",
    "deleted",
    "compact_revision",
    "start_revision",
    "limit",
];

fn optional_i64(object: &Map<String, Value>, name: &str) -> Parsed<Option<i64>> {
    let number = match object.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value
            .as_i64()
            .ok_or_else(|| format!("{name}: expected an integer"))?,
    };
    if COUNTER_FIELDS.contains(&name) && !(0..=REVISION_MAX).contains(&number) {
        return Err(format!(
            "{name}: {number} is out of range (a {name} is between 0 and {REVISION_MAX})"
        ));
    }
    Ok(Some(number))
}

fn optional_bool(object: &Map<String, Value>, name: &str) -> Parsed<Option<bool>> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(format!("{name}: expected true or false")),
    }
}

fn required_bytes(object: &Map<String, Value>, name: &str) -> Parsed<Bytes> {
    optional_bytes(object, name)?.ok_or_else(|| format!("{name}: missing (nor {name}_b64)"))
}

fn optional_bytes(object: &Map<String, Value>, name: &str) -> Parsed<Option<Bytes>> {
    if let Some(value) = object.get(name) {
        return match value {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text.as_bytes().to_vec())),
            _ => Err(format!("{name}: expected a string")),
        };
    }
    let encoded_name = format!("{name}_b64");
    match object.get(&encoded_name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => base64::decode(text)
            .map(Some)
            .ok_or_else(|| format!("{encoded_name}: not valid base64")),
        Some(_) => Err(format!("{encoded_name}: expected a string")),
    }
}
