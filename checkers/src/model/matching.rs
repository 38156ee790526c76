//! Comparing a recorded result with what the store answered, constraining only recorded fields,
//! and rendering both for explanations.
//!
//! It does not apply anything; the store does.

use super::{KeyId, KeyState, Outcome, Rec, RecKv, Tables};

/// Whether the recorded result is what the store answered (absent fields match anything).
pub fn matches(rec: &Rec, outcome: &Outcome) -> bool {
    matches_at(rec, outcome, false)
}

fn same(recorded: Option<i64>, actual: i64) -> bool {
    recorded.is_none_or(|value| value == actual)
}

fn matches_at(rec: &Rec, outcome: &Outcome, nested: bool) -> bool {
    // Nested results' revisions are unspecified by the format.
    let revision_ok = |recorded: Option<i64>, actual: i64| nested || same(recorded, actual);
    match (rec, outcome) {
        (
            Rec::Range {
                revision,
                kvs,
                count,
            },
            Outcome::Range {
                revision: actual,
                kvs: got,
                count: got_count,
            },
        ) => {
            revision_ok(*revision, *actual)
                && same(*count, *got_count)
                && kvs_match(kvs.as_deref(), got)
        }
        (
            Rec::Put { revision, prev_kv },
            Outcome::Put {
                revision: actual,
                prev,
                prev_kv: asked,
            },
        ) => {
            let prev_ok = match (prev_kv, asked) {
                (Some(recorded), true) => match (recorded, prev) {
                    (None, None) => true,
                    (Some(kv), Some((key, state))) => kv_matches(kv, *key, state),
                    _ => false,
                },
                _ => true,
            };
            revision_ok(*revision, *actual) && prev_ok
        }
        (
            Rec::Delete {
                revision,
                deleted,
                prev_kvs,
            },
            Outcome::Delete {
                revision: actual,
                deleted: got,
                prev_kv,
            },
        ) => {
            let list_ok = !*prev_kv || kvs_match(prev_kvs.as_deref(), got);
            revision_ok(*revision, *actual) && same(*deleted, got.len() as i64) && list_ok
        }
        (
            Rec::Txn {
                revision,
                succeeded,
                responses,
            },
            Outcome::Txn {
                revision: actual,
                succeeded: took,
                responses: got,
            },
        ) => {
            let responses_ok = match responses {
                None => true,
                Some(list) => {
                    list.len() == got.len()
                        && list
                            .iter()
                            .zip(got)
                            .all(|(inner, out)| matches_at(inner, out, true))
                }
            };
            revision_ok(*revision, *actual)
                && succeeded.is_none_or(|flag| flag == *took)
                && responses_ok
        }
        (Rec::LeaseGrant { .. }, Outcome::LeaseGrant { .. }) => true,
        (Rec::LeaseRevoke { revision }, Outcome::LeaseRevoke { revision: actual }) => {
            revision_ok(*revision, *actual)
        }
        (Rec::LeaseKeepAlive { ttl_seconds }, Outcome::LeaseKeepAlive { .. }) => {
            ttl_seconds.is_none_or(|ttl| ttl > 0)
        }
        (
            Rec::LeaseKeepAlive {
                ttl_seconds: Some(ttl),
            },
            Outcome::Error(super::ErrorCode::LeaseNotFound),
        ) => *ttl <= 0,
        (Rec::Compact { revision }, Outcome::Compact { revision: actual }) => {
            revision_ok(*revision, *actual)
        }
        (Rec::Auth, Outcome::Auth) => true,
        (Rec::Error(code), Outcome::Error(actual)) => code == actual,
        _ => false,
    }
}

fn kvs_match(recorded: Option<&[RecKv]>, actual: &[(KeyId, KeyState)]) -> bool {
    match recorded {
        None => true,
        Some(list) => {
            list.len() == actual.len()
                && list
                    .iter()
                    .zip(actual)
                    .all(|(kv, (key, state))| kv_matches(kv, *key, state))
        }
    }
}

pub(super) fn kv_matches(kv: &RecKv, key: KeyId, state: &KeyState) -> bool {
    kv.key == key
        && kv.value.is_none_or(|value| value == state.value)
        && same(kv.create_revision, state.create_revision)
        && same(kv.mod_revision, state.mod_revision)
        && same(kv.version, state.version)
        && same(kv.lease, state.lease)
}

/// A plain sentence saying how the recorded result differs from the store's answer.
pub fn explain_mismatch(rec: &Rec, outcome: &Outcome, tables: &Tables) -> String {
    format!(
        "it returned {} but at that point the store would answer {}",
        describe_rec(rec, tables),
        describe_outcome(outcome, tables)
    )
}

fn opt(value: Option<i64>) -> String {
    value.map_or_else(|| "?".to_string(), |number| number.to_string())
}

fn describe_rec_kv(kv: &RecKv, tables: &Tables) -> String {
    let value = kv
        .value
        .map_or_else(|| "?".to_string(), |value| tables.show_value(value));
    let mut out = format!("{}={value}", tables.show_key(kv.key));
    for (name, field) in [
        ("mod", kv.mod_revision),
        ("create", kv.create_revision),
        ("version", kv.version),
    ] {
        if let Some(number) = field {
            out.push_str(&format!(" {name}={number}"));
        }
    }
    if let Some(lease) = kv.lease.filter(|lease| *lease != 0) {
        out.push_str(&format!(" lease={lease}"));
    }
    out
}

fn describe_kv(key: KeyId, state: &KeyState, tables: &Tables) -> String {
    let mut out = format!(
        "{}={} mod={} create={} version={}",
        tables.show_key(key),
        tables.show_value(state.value),
        state.mod_revision,
        state.create_revision,
        state.version
    );
    if state.lease != 0 {
        out.push_str(&format!(" lease={}", state.lease));
    }
    out
}

fn describe_rec(rec: &Rec, tables: &Tables) -> String {
    let list = |kvs: &Option<Vec<RecKv>>| match kvs {
        None => "?".to_string(),
        Some(list) => format!(
            "[{}]",
            list.iter()
                .map(|kv| describe_rec_kv(kv, tables))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    match rec {
        Rec::Range {
            revision,
            kvs,
            count,
        } => format!(
            "range rev={} kvs={} count={}",
            opt(*revision),
            list(kvs),
            opt(*count)
        ),
        Rec::Put { revision, prev_kv } => {
            let prev = match prev_kv {
                None => "?".to_string(),
                Some(None) => "none".to_string(),
                Some(Some(kv)) => describe_rec_kv(kv, tables),
            };
            format!("put rev={} prev={prev}", opt(*revision))
        }
        Rec::Delete {
            revision,
            deleted,
            prev_kvs,
        } => {
            format!(
                "delete rev={} deleted={} prev={}",
                opt(*revision),
                opt(*deleted),
                list(prev_kvs)
            )
        }
        Rec::Txn {
            revision,
            succeeded,
            responses,
        } => {
            let branch = succeeded.map_or("?", |flag| if flag { "success" } else { "failure" });
            let inner = responses.as_ref().map_or_else(
                || "?".to_string(),
                |list| {
                    list.iter()
                        .map(|inner| describe_rec(inner, tables))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            );
            format!("txn rev={} {branch} [{inner}]", opt(*revision))
        }
        Rec::LeaseGrant { ttl_seconds } => format!("lease_grant ttl={}", opt(*ttl_seconds)),
        Rec::LeaseRevoke { revision } => format!("lease_revoke rev={}", opt(*revision)),
        Rec::LeaseKeepAlive { ttl_seconds } => format!("lease_keepalive ttl={}", opt(*ttl_seconds)),
        Rec::Compact { revision } => format!("compact rev={}", opt(*revision)),
        Rec::Auth => "auth ok".to_string(),
        Rec::Error(code) => format!("error {}", code.name()),
    }
}

/// Renders what the store answered.
pub fn describe_outcome(outcome: &Outcome, tables: &Tables) -> String {
    let list = |kvs: &[(KeyId, KeyState)]| {
        format!(
            "[{}]",
            kvs.iter()
                .map(|(key, state)| describe_kv(*key, state, tables))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match outcome {
        Outcome::Range {
            revision,
            kvs,
            count,
        } => format!("range rev={revision} kvs={} count={count}", list(kvs)),
        Outcome::Put { revision, prev, .. } => {
            let prev = prev.map_or_else(
                || "none".to_string(),
                |(key, state)| describe_kv(key, &state, tables),
            );
            format!("put rev={revision} prev={prev}")
        }
        Outcome::Delete {
            revision, deleted, ..
        } => {
            format!(
                "delete rev={revision} deleted={} prev={}",
                deleted.len(),
                list(deleted)
            )
        }
        Outcome::Txn {
            revision,
            succeeded,
            responses,
        } => {
            let branch = if *succeeded { "success" } else { "failure" };
            let inner: Vec<String> = responses
                .iter()
                .map(|inner| describe_outcome(inner, tables))
                .collect();
            format!("txn rev={revision} {branch} [{}]", inner.join("; "))
        }
        Outcome::LeaseGrant { ttl_seconds } => format!("lease_grant ttl={ttl_seconds}"),
        Outcome::LeaseRevoke { revision } => format!("lease_revoke rev={revision}"),
        Outcome::LeaseKeepAlive { ttl_seconds } => format!("lease_keepalive ttl={ttl_seconds}"),
        Outcome::Compact { revision } => format!("compact rev={revision}"),
        Outcome::Expire => "lease expiry".to_string(),
        Outcome::Auth => "auth ok".to_string(),
        Outcome::Error(code) => format!("error {}", code.name()),
    }
}
