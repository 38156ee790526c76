//! Stable one-line renderings of MVCC responses, events and errors, for golden files and logs
//! (etcd's `Describe*` habit). The formats change only on purpose: golden files depend on them.
//!
//! This module only formats; it holds no state and never parses.

use core::fmt::Write;

use crate::kv::{
    DeleteRangeResponse, Event, EventType, KeyValue, PutResponse, RangeResponse, RequestError,
    ResponseOp, TxnResponse,
};

/// Bytes as text: printable ASCII as is, anything else (and `\`) as `\xNN`; empty as `""`.
pub fn describe_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "\"\"".to_string();
    }
    let mut text = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_graphic() && byte != b'\\' {
            text.push(char::from(byte));
        } else {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    text
}

/// `key=value create=C mod=M ver=V` plus ` lease=L` when attached.
pub fn describe_key_value(kv: &KeyValue) -> String {
    let mut text = format!(
        "{}={} create={} mod={} ver={}",
        describe_bytes(&kv.key),
        describe_bytes(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version
    );
    if kv.lease.0 != 0 {
        let _ = write!(text, " lease={}", kv.lease);
    }
    text
}

/// `range rev=R count=N more=B` and one indented line per key-value.
pub fn describe_range(response: &RangeResponse) -> String {
    let mut text = format!(
        "range rev={} count={} more={}",
        response.header.revision, response.count, response.more
    );
    for kv in &response.kvs {
        let _ = write!(text, "\n  {}", describe_key_value(kv));
    }
    text
}

/// `put rev=R` plus ` prev=(...)` when a previous key-value is returned.
pub fn describe_put(response: &PutResponse) -> String {
    let mut text = format!("put rev={}", response.header.revision);
    if let Some(prev) = &response.prev_kv {
        let _ = write!(text, " prev=({})", describe_key_value(prev));
    }
    text
}

/// `delete rev=R deleted=N` and one indented `prev` line per returned key-value.
pub fn describe_delete(response: &DeleteRangeResponse) -> String {
    let mut text = format!(
        "delete rev={} deleted={}",
        response.header.revision, response.deleted
    );
    for prev in &response.prev_kvs {
        let _ = write!(text, "\n  prev {}", describe_key_value(prev));
    }
    text
}

/// `txn rev=R succeeded=B` and each operation's response indented beneath, recursively.
pub fn describe_txn(response: &TxnResponse) -> String {
    let mut text = format!(
        "txn rev={} succeeded={}",
        response.header.revision, response.succeeded
    );
    for op in &response.responses {
        let inner = match op {
            ResponseOp::Range(range) => describe_range(range),
            ResponseOp::Put(put) => describe_put(put),
            ResponseOp::DeleteRange(delete) => describe_delete(delete),
            ResponseOp::Txn(nested) => describe_txn(nested),
        };
        for line in inner.lines() {
            let _ = write!(text, "\n  {line}");
        }
    }
    text
}

/// `PUT key=value ...` or `DELETE key mod=M`, plus ` prev=(...)` when present.
pub fn describe_event(event: &Event) -> String {
    let mut text = match event.kind {
        EventType::Put => format!("PUT {}", describe_key_value(&event.kv)),
        EventType::Delete => {
            format!(
                "DELETE {} mod={}",
                describe_bytes(&event.kv.key),
                event.kv.mod_revision
            )
        }
    };
    if let Some(prev) = &event.prev_kv {
        let _ = write!(text, " prev=({})", describe_key_value(prev));
    }
    text
}

/// `error CODE` plus the revisions for the revision errors.
pub fn describe_error(error: &RequestError) -> String {
    match error {
        RequestError::Compacted {
            requested,
            compacted,
        } => {
            format!("error compacted requested={requested} compacted={compacted}")
        }
        RequestError::FutureRevision { requested, current } => {
            format!("error future_revision requested={requested} current={current}")
        }
        RequestError::LeaseNotFound { lease } => format!("error lease_not_found lease={lease}"),
        other => format!("error {}", other.code()),
    }
}
