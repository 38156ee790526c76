//! Mutual exclusion of etcd's lock and election recipes, judged from a history whose lock
//! operations carry `lock` notes (docs/history-format.md, "Locks"; docs/locks.md states the
//! rule). An election is judged as a lock: a leadership is a hold (the leader key is the owner
//! key, its create revision the token), a `Proclaim` is a fenced write (a txn comparing that
//! create revision), and a `Resign` is the release (a txn comparing it, then deleting the key).
//!
//! A **holder** is an acquisition: an operation noted `acquired` with an answer, naming the
//! lock, the owner key and its fencing token (the key's create revision). Its hold is
//! **proven** from the return of that operation to its **proven end**, the latest instant the
//! history shows its owner key still existed with that token afterwards: the call of its last
//! fenced write that succeeded (the txn's compare found the key with the token), or the call of
//! its release when that release deleted the key (an unlock's delete deleted it, or a resign's
//! txn succeeded) and nothing showed the key lost before (no fenced write of the holder was
//! refused, no release deleted nothing or failed its compare). A holder whose lease expired while it was paused
//! has no such evidence after the expiry: its proven hold ends at its last successful fenced
//! write, however long it went on believing it held the lock. Unknown outcomes prove nothing.
//!
//! The store is at fault when, for two holders X and Y of one lock with X's token below Y's,
//! Y's acquisition returned before X's proven end: Y's acquisition read showed no key of the
//! lock created before its own (so X's key was gone), yet X's key, with the same create
//! revision, existed later. With the proven holds overlapping in real time that is
//! `mutual_exclusion`; with Y's hold wholly before X's it is `fencing_order` (the newer token
//! was handed out first). Two holders with one token are a `fencing_order` violation too. And
//! a fenced write of X that succeeded at a revision above Y's acquisition revision is
//! `fenced_write_stale`: a stale holder's write got through the fence.
//!
//! What the checker reports without failing: holders whose belief (acquisition to the call of
//! their unlock, or the end of the history) reaches into a later holder's hold, the Jepsen
//! case of etcd 3.4.3, and how many of their fenced writes the store refused.

use std::collections::BTreeMap;

use crate::history::{Bytes, LockStep, Operation, Response};
use crate::Verdict;

/// The checker's name in reports.
pub const CHECKER: &str = "mutual_exclusion";

/// What the checker saw, besides its verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LockSummary {
    /// Acquisitions (holders).
    pub holds: u64,
    /// Holders that believed they held the lock into a later holder's hold (the paused holder
    /// of Jepsen's etcd 3.4.3 report); not a fault of the store.
    pub stale_holds: u64,
    /// Fenced writes that succeeded.
    pub fenced_ok: u64,
    /// Fenced writes the store refused (the compare failed).
    pub fenced_refused: u64,
    /// Fenced writes of a stale holder, called after a later holder acquired, that the store
    /// refused: the fence at work.
    pub stale_fenced_refused: u64,
    /// Fenced writes of a stale holder, called after a later holder acquired, whose outcome is
    /// unknown or an error.
    pub stale_fenced_unknown: u64,
}

/// The verdict and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockReport {
    /// Pass, or the first violation found.
    pub verdict: Verdict,
    /// What the checker counted.
    pub summary: LockSummary,
}

/// Whether any operation of `ops` carries a lock note (only then is the checker run).
pub fn has_lock_traffic(ops: &[Operation]) -> bool {
    ops.iter().any(|op| op.lock.is_some())
}

#[derive(Debug)]
struct Holder {
    key: Bytes,
    token: i64,
    /// The acquisition: op id, call, return, the store revision of its answer.
    op: u64,
    call: i64,
    acquired_at: i64,
    revision: Option<i64>,
    /// The latest instant its key is proven to exist with its token.
    proven_end: i64,
    /// The op that proves it.
    proven_by: u64,
    /// The call of its first release, if any.
    released_at: Option<i64>,
    /// A fenced write refused, or a release that deleted nothing (or failed its compare).
    lost: bool,
    /// The deleting release's call and id, if one deleted the key.
    deleted_at: Option<(i64, u64)>,
    /// Fenced writes: (call, op id, outcome: Some(revision) when it succeeded, None refused,
    /// and skipped when unknown).
    fenced: Vec<(i64, u64, FencedOutcome)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FencedOutcome {
    Wrote(Option<i64>),
    Refused,
    Unknown,
}

fn revision_of(response: &Response) -> Option<i64> {
    match response {
        Response::Txn { revision, .. }
        | Response::Range { revision, .. }
        | Response::Put { revision, .. }
        | Response::Delete { revision, .. } => *revision,
        _ => None,
    }
}

/// What a release's answer shows of the owner key at its call: `Some(true)` that it existed with
/// the holder's token (an unlock's delete deleted it, or a resign's txn, comparing the token,
/// succeeded), `Some(false)` that it did not (nothing deleted, or the compare failed), `None`
/// nothing (unknown outcome, an error).
fn release_outcome(result: Option<&Response>) -> Option<bool> {
    match result? {
        Response::Delete {
            deleted: Some(deleted),
            ..
        } => Some(*deleted >= 1),
        Response::Txn {
            succeeded: Some(succeeded),
            ..
        } => Some(*succeeded),
        _ => None,
    }
}

/// Checks mutual exclusion and fencing over the lock notes of `ops`.
pub fn check_locks(ops: &[Operation]) -> LockReport {
    // Per lock name, per (key, token): the holder. BTreeMaps keep the order fixed.
    let mut locks: BTreeMap<Bytes, BTreeMap<(i64, Bytes), Holder>> = BTreeMap::new();
    for op in ops {
        let Some(note) = &op.lock else { continue };
        if note.step != LockStep::Acquired {
            continue;
        }
        let (Some(ret), Some(result)) = (op.ret, &op.result) else {
            continue;
        };
        if matches!(result, Response::Error { .. }) {
            continue;
        }
        let holders = locks.entry(note.name.clone()).or_default();
        let holder = holders
            .entry((note.token, note.key.clone()))
            .or_insert_with(|| Holder {
                key: note.key.clone(),
                token: note.token,
                op: op.id,
                call: op.call,
                acquired_at: ret,
                revision: revision_of(result),
                proven_end: ret,
                proven_by: op.id,
                released_at: None,
                lost: false,
                deleted_at: None,
                fenced: Vec::new(),
            });
        if ret < holder.acquired_at {
            // The same key acquired again (a re-entrant lock): the earliest acquisition counts.
            holder.op = op.id;
            holder.call = op.call;
            holder.acquired_at = ret;
            holder.revision = revision_of(result);
        }
    }
    for op in ops {
        let Some(note) = &op.lock else { continue };
        let Some(holder) = locks
            .get_mut(&note.name)
            .and_then(|holders| holders.get_mut(&(note.token, note.key.clone())))
        else {
            continue;
        };
        match note.step {
            LockStep::Acquired => {}
            LockStep::Fenced => {
                let outcome = match &op.result {
                    Some(Response::Txn {
                        succeeded: Some(true),
                        revision,
                        ..
                    }) => FencedOutcome::Wrote(*revision),
                    Some(Response::Txn {
                        succeeded: Some(false),
                        ..
                    }) => FencedOutcome::Refused,
                    _ => FencedOutcome::Unknown,
                };
                if outcome == FencedOutcome::Refused {
                    holder.lost = true;
                }
                holder.fenced.push((op.call, op.id, outcome));
            }
            LockStep::Released => {
                holder.released_at = Some(holder.released_at.map_or(op.call, |t| t.min(op.call)));
                match release_outcome(op.result.as_ref()) {
                    Some(true) if holder.deleted_at.is_none_or(|(call, _)| op.call < call) => {
                        holder.deleted_at = Some((op.call, op.id));
                    }
                    Some(false) => holder.lost = true,
                    _ => {}
                }
            }
        }
    }
    let history_end = ops
        .iter()
        .map(|op| op.ret.unwrap_or(op.call))
        .max()
        .unwrap_or(0);
    let mut summary = LockSummary::default();
    let mut verdict = Verdict::Ok;
    for (name, holders) in &mut locks {
        let mut holders: Vec<&mut Holder> = holders.values_mut().collect();
        for holder in holders.iter_mut() {
            for &(call, op, outcome) in &holder.fenced {
                match outcome {
                    FencedOutcome::Wrote(_) => {
                        summary.fenced_ok += 1;
                        if call > holder.proven_end {
                            holder.proven_end = call;
                            holder.proven_by = op;
                        }
                    }
                    FencedOutcome::Refused => summary.fenced_refused += 1,
                    FencedOutcome::Unknown => {}
                }
            }
            if let (false, Some((call, op))) = (holder.lost, holder.deleted_at) {
                if call > holder.proven_end {
                    holder.proven_end = call;
                    holder.proven_by = op;
                }
            }
        }
        summary.holds += holders.len() as u64;
        // By token (then key): each holder against every later one.
        let name_text = String::from_utf8_lossy(name).into_owned();
        for (index, older) in holders.iter().enumerate() {
            let believed_end = older.released_at.unwrap_or(history_end);
            let mut stale_from: Option<i64> = None;
            for newer in &holders[index + 1..] {
                if verdict == Verdict::Ok {
                    verdict = judge_pair(&name_text, older, newer);
                }
                if newer.acquired_at < believed_end {
                    let from = stale_from.get_or_insert(newer.acquired_at);
                    *from = (*from).min(newer.acquired_at);
                }
            }
            if let Some(from) = stale_from {
                summary.stale_holds += 1;
                for &(call, _, outcome) in &older.fenced {
                    if call > from {
                        match outcome {
                            FencedOutcome::Refused => summary.stale_fenced_refused += 1,
                            FencedOutcome::Unknown => summary.stale_fenced_unknown += 1,
                            FencedOutcome::Wrote(_) => {}
                        }
                    }
                }
            }
        }
    }
    LockReport { verdict, summary }
}

/// The verdict on two holders of lock `name`, `older` with the lower (or equal) token.
fn judge_pair(name: &str, older: &Holder, newer: &Holder) -> Verdict {
    let describe = |holder: &Holder| {
        format!(
            "{} (token {}, acquired by operation {} at {})",
            String::from_utf8_lossy(&holder.key),
            holder.token,
            holder.op,
            holder.acquired_at
        )
    };
    if older.token == newer.token {
        return Verdict::Violation {
            checker: "fencing_order".into(),
            window: vec![older.op, newer.op],
            explanation: format!(
                "lock {name}: two holders share one fencing token: {} and {}",
                describe(older),
                describe(newer)
            ),
        };
    }
    if newer.acquired_at < older.proven_end {
        let overlapping = older.acquired_at < newer.proven_end;
        let checker = if overlapping {
            "mutual_exclusion"
        } else {
            "fencing_order"
        };
        let what = if overlapping {
            "the two holds overlap in real time"
        } else {
            "the newer token was handed out before the older one's hold"
        };
        let mut window = vec![older.op, newer.op, older.proven_by];
        window.sort_unstable();
        window.dedup();
        return Verdict::Violation {
            checker: checker.into(),
            window,
            explanation: format!(
                "lock {name}: {} while {} still held the lock at {} (operation {} \
                 proves its key existed then): {what}",
                describe(newer),
                describe(older),
                older.proven_end,
                older.proven_by
            ),
        };
    }
    if let Some(acquired_revision) = newer.revision {
        for &(_, op, outcome) in &older.fenced {
            if let FencedOutcome::Wrote(Some(revision)) = outcome {
                if revision > acquired_revision {
                    return Verdict::Violation {
                        checker: "fenced_write_stale".into(),
                        window: vec![newer.op, op],
                        explanation: format!(
                            "lock {name}: fenced write {op} of {} succeeded at revision \
                             {revision}, after {} acquired at revision {acquired_revision}",
                            describe(older),
                            describe(newer)
                        ),
                    };
                }
            }
        }
    }
    Verdict::Ok
}

#[cfg(test)]
mod tests;
