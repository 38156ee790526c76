//! Violations that need no search: recorded answers that contradict each other whatever the
//! order. Checked before any search, so a corrupt history is rejected at once, naming the
//! operations, instead of being searched until a budget runs out.
//!
//! Each rule follows from the store the spec defines (`docs/history-format.md`): the revision
//! starts at 1, never goes down, and each write that changes something adds one to it.
//! - Two successful puts cannot report one revision: each made its own.
//! - An operation called after another returned sees the store at least at the revision the
//!   first reported (a put, which adds one, above it).
//! - A read cannot return a key at a mod revision that a plain put reported for a different key
//!   or value, nor at a mod revision above the revision it read at, nor a value that no put of
//!   the history (of any outcome, at any depth of a txn) wrote to that key.
//!
//! It only rejects; finding nothing says nothing, and the search decides. Serializable reads
//! are left out (they may be stale), as are results nested in txns (their revision is not
//! specified) and errors (they took no effect).

use crate::history::{describe_request, HistoryView, Operation, Request, Response};
use std::collections::BTreeMap;

/// The first contradiction found: (the operations' ids, an explanation).
pub(super) fn find(history: HistoryView<'_>) -> Option<(Vec<u64>, String)> {
    let ops = history.ops;
    shared_put_revision(ops)
        .or_else(|| revision_went_back(ops))
        .or_else(|| read_unwritten(ops))
}

fn describe(op: &Operation) -> String {
    format!(
        "op {} (client {}, {})",
        op.id,
        op.client,
        describe_request(&op.request)
    )
}

fn pair(first: &Operation, second: &Operation) -> Vec<u64> {
    let mut ids = vec![first.id, second.id];
    ids.sort_unstable();
    ids
}

/// The revision a plain put reported (the store's revision after it).
fn put_revision(op: &Operation) -> Option<i64> {
    match (&op.request, &op.result) {
        (Request::Put(_), Some(Response::Put { revision, .. })) => revision.filter(|&rev| rev > 0),
        _ => None,
    }
}

/// Whether the operation's answer may be trusted to show the store's latest revision.
fn linearizable_read_or_write(op: &Operation) -> bool {
    !matches!(&op.request, Request::Range(range) if range.serializable)
}

/// The store's revision just after the operation took effect, as its answer reports it, and
/// whether the operation itself added one to it.
fn reported_revision(op: &Operation) -> Option<(i64, bool)> {
    if !linearizable_read_or_write(op) {
        return None;
    }
    let (revision, bumps) = match (&op.request, op.result.as_ref()?) {
        (Request::Put(_), Response::Put { revision, .. }) => (*revision, true),
        (Request::Range(_), Response::Range { revision, .. }) => (*revision, false),
        (
            Request::Delete(_),
            Response::Delete {
                revision, deleted, ..
            },
        ) => (*revision, deleted.is_some_and(|count| count > 0)),
        (Request::Txn(_), Response::Txn { revision, .. }) => (*revision, false),
        _ => return None,
    };
    revision.filter(|&rev| rev > 0).map(|rev| (rev, bumps))
}

/// Two successful puts reporting one revision.
fn shared_put_revision(ops: &[Operation]) -> Option<(Vec<u64>, String)> {
    let mut by_revision: BTreeMap<i64, &Operation> = BTreeMap::new();
    for op in ops {
        let Some(revision) = put_revision(op) else {
            continue;
        };
        if let Some(first) = by_revision.insert(revision, op) {
            return Some((
                pair(first, op),
                format!(
                    "{} and {} both report revision {revision}, but each put that succeeds makes a revision of its own",
                    describe(first),
                    describe(op)
                ),
            ));
        }
    }
    None
}

/// An operation reporting a revision below one reported by an operation that returned before
/// it was called (a put: not above it).
fn revision_went_back(ops: &[Operation]) -> Option<(Vec<u64>, String)> {
    let mut returned: Vec<(i64, i64, usize)> = Vec::new();
    let mut called: Vec<(i64, usize)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        if let (Some((revision, _)), Some(ret)) = (reported_revision(op), op.ret) {
            returned.push((ret, revision, index));
            called.push((op.call, index));
        }
    }
    returned.sort_unstable();
    called.sort_unstable();
    let mut next_returned = 0;
    // The greatest revision reported by an operation returned so far, and which one.
    let mut highest: Option<(i64, usize)> = None;
    for &(call, index) in &called {
        while next_returned < returned.len() && returned[next_returned].0 < call {
            let (_, revision, earlier) = returned[next_returned];
            if highest.is_none_or(|(best, _)| revision > best) {
                highest = Some((revision, earlier));
            }
            next_returned += 1;
        }
        let Some((floor, earlier)) = highest else {
            continue;
        };
        let (revision, bumps) = reported_revision(&ops[index]).expect("listed above");
        let before_hi = if bumps { revision - 1 } else { revision };
        if before_hi < floor {
            return Some((
                pair(&ops[earlier], &ops[index]),
                format!(
                    "{} needs the store at revision {before_hi} at most before it, but {} had reported revision {floor} before it was called (revisions never go back)",
                    describe(&ops[index]),
                    describe(&ops[earlier])
                ),
            ));
        }
    }
    None
}

/// Per (key, value), the operations that may have written it (see `written_values`).
type Writers<'a> = BTreeMap<(&'a [u8], &'a [u8]), Vec<(usize, Option<i64>)>>;

/// Every (key, value) some put of the history may have written, at any depth of a txn, with
/// the writers: (operation index, the revision it reported when it is a plain put that
/// succeeded with one, else `None`: it could have written at any revision).
fn written_values(ops: &[Operation]) -> Writers<'_> {
    fn collect<'a>(request: &'a Request, writer: (usize, Option<i64>), out: &mut Writers<'a>) {
        match request {
            Request::Put(put) => out
                .entry((&put.key[..], &put.value[..]))
                .or_default()
                .push(writer),
            Request::Txn(txn) => txn
                .success
                .iter()
                .chain(&txn.failure)
                .for_each(|inner| collect(inner, (writer.0, None), out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        collect(&op.request, (index, put_revision(op)), &mut out);
    }
    out
}

/// A read returning a key-value no put produced, or one that contradicts the put that reported
/// its mod revision, or one modified after the revision it was read at.
fn read_unwritten(ops: &[Operation]) -> Option<(Vec<u64>, String)> {
    let puts: BTreeMap<i64, &Operation> = ops
        .iter()
        .filter_map(|op| put_revision(op).map(|revision| (revision, op)))
        .collect();
    let written = written_values(ops);
    for op in ops.iter().filter(|op| linearizable_read_or_write(op)) {
        let (Request::Range(range), Some(Response::Range { revision, kvs, .. })) =
            (&op.request, &op.result)
        else {
            continue;
        };
        for kv in kvs.iter().flatten() {
            let (Some(mod_revision), Some(read_at)) = (kv.mod_revision, *revision) else {
                continue;
            };
            let at = if range.revision > 0 {
                range.revision.min(read_at)
            } else {
                read_at
            };
            if mod_revision > at {
                return Some((
                    vec![op.id],
                    format!(
                        "{} read at revision {at} a key modified at revision {mod_revision}, after it",
                        describe(op)
                    ),
                ));
            }
        }
        for kv in kvs.iter().flatten() {
            let Some(value) = &kv.value else {
                continue;
            };
            if let Some(writer) = kv.mod_revision.and_then(|rev| puts.get(&rev)) {
                let Request::Put(put) = &writer.request else {
                    unreachable!("only puts are listed");
                };
                if put.key != kv.key || &put.value != value {
                    return Some((
                        pair(writer, op),
                        format!(
                            "{} read a key-value with mod revision {}, but {} reported that revision for a different write",
                            describe(op),
                            kv.mod_revision.unwrap_or_default(),
                            describe(writer)
                        ),
                    ));
                }
            }
            let Some(writers) = written.get(&(&kv.key[..], &value[..])) else {
                return Some((
                    vec![op.id],
                    format!(
                        "{} read a value that no put of the history wrote to that key",
                        describe(op)
                    ),
                ));
            };
            // Every writer of the value reported a revision, none the one read: no write made it.
            let Some(mod_revision) = kv.mod_revision else {
                continue;
            };
            if writers
                .iter()
                .all(|&(_, revision)| revision.is_some_and(|revision| revision != mod_revision))
            {
                let (writer, revision) = writers[0];
                return Some((
                    pair(&ops[writer], op),
                    format!(
                        "{} read a value with mod revision {mod_revision}, but {} wrote it at revision {} and no other put wrote it",
                        describe(op),
                        describe(&ops[writer]),
                        revision.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    None
}
