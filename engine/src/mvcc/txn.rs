//! etcd's Txn on the MVCC store: the static checks (empty keys, one key written twice), the
//! branch path chosen by the compares, the checks of the chosen path, and its execution.
//!
//! As in etcd, every compare (nested ones too) is evaluated against the state before the txn,
//! and a range inside the txn sees the txn's earlier writes. The duplicate-key rule is the one
//! etcd means: a txn is rejected if some execution path could write one key twice (put/put, or a
//! put inside a deleted range). It deliberately differs from etcd's implementation in two edge
//! cases where etcd misses a conflict: a nested put followed by a later sibling's nested delete
//! of the same key, and deletes with `range_end == "\0"` (etcd's interval tree treats them as
//! empty). Those txns are rejected here. This module does no range or lease bookkeeping.

use std::collections::BTreeSet;

use super::index::KeyRange;
use super::{Store, WriteBatch};
use crate::kv::{DeleteRangeRequest, RequestError, RequestOp, ResponseOp, TxnRequest, TxnResponse};
use crate::types::{LeaseId, Revision};

/// Rejects empty keys anywhere in the txn, and any path that writes one key twice.
pub(super) fn check_static(request: &TxnRequest) -> Result<(), RequestError> {
    check_empty_keys(request)?;
    check_branch_writes(&request.success)?;
    check_branch_writes(&request.failure)?;
    Ok(())
}

fn check_empty_keys(request: &TxnRequest) -> Result<(), RequestError> {
    if request.compare.iter().any(|compare| compare.key.is_empty()) {
        return Err(RequestError::EmptyKey);
    }
    for op in request.success.iter().chain(&request.failure) {
        let key_empty = match op {
            RequestOp::Range(range) => range.key.is_empty(),
            RequestOp::Put(put) => put.key.is_empty(),
            RequestOp::DeleteRange(delete) => delete.key.is_empty(),
            RequestOp::Txn(nested) => {
                check_empty_keys(nested)?;
                false
            }
        };
        if key_empty {
            return Err(RequestError::EmptyKey);
        }
    }
    Ok(())
}

/// The writes some path through a list of operations may make.
#[derive(Default)]
struct ReachableWrites<'a> {
    puts: BTreeSet<&'a [u8]>,
    deletes: Vec<&'a DeleteRangeRequest>,
}

impl<'a> ReachableWrites<'a> {
    /// Whether a path may combine a write of `self` with one of `other`.
    fn conflicts_with(&self, other: &ReachableWrites<'a>) -> bool {
        let put_put = other.puts.iter().any(|key| self.puts.contains(key));
        let put_delete = |puts: &BTreeSet<&[u8]>, deletes: &[&DeleteRangeRequest]| {
            deletes.iter().any(|delete| {
                let range = KeyRange::new(&delete.key, &delete.range_end);
                range
                    .bounds()
                    .is_some_and(|bounds| puts.range::<[u8], _>(bounds).next().is_some())
            })
        };
        put_put || put_delete(&self.puts, &other.deletes) || put_delete(&other.puts, &self.deletes)
    }

    fn absorb(&mut self, other: ReachableWrites<'a>) {
        self.puts.extend(other.puts);
        self.deletes.extend(other.deletes);
    }
}

/// Checks that no path through `ops` writes a key twice, and returns every write some path
/// through `ops` may make. Two sibling operations run together on every path, so any of their
/// reachable writes may combine; the two branches of one nested txn never do.
fn check_branch_writes(ops: &[RequestOp]) -> Result<ReachableWrites<'_>, RequestError> {
    let mut reachable = ReachableWrites::default();
    for op in ops {
        let mut own = ReachableWrites::default();
        match op {
            RequestOp::Range(_) => continue,
            RequestOp::Put(put) => {
                own.puts.insert(put.key.as_slice());
            }
            RequestOp::DeleteRange(delete) => own.deletes.push(delete),
            RequestOp::Txn(nested) => {
                own = check_branch_writes(&nested.success)?;
                own.absorb(check_branch_writes(&nested.failure)?);
            }
        }
        if reachable.conflicts_with(&own) {
            return Err(RequestError::DuplicateKey);
        }
        reachable.absorb(own);
    }
    Ok(reachable)
}

fn branch(request: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &request.success
    } else {
        &request.failure
    }
}

impl Store {
    /// Appends to `path`, in pre-order, whether each txn on the executed path succeeds, all
    /// evaluated against the current state (etcd's `compareToPath`).
    pub(super) fn txn_path(&self, request: &TxnRequest, path: &mut Vec<bool>) {
        let succeeded = request
            .compare
            .iter()
            .all(|compare| self.compare_holds(compare, self.current));
        path.push(succeeded);
        for op in branch(request, succeeded) {
            if let RequestOp::Txn(nested) = op {
                self.txn_path(nested, path);
            }
        }
    }

    /// Checks the operations on `path` against the state before the txn: range revisions,
    /// leases and the ignore_* rules of puts.
    pub(super) fn check_txn(
        &self,
        request: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
        lease_exists: &dyn Fn(LeaseId) -> bool,
    ) -> Result<(), RequestError> {
        let succeeded = path[*cursor];
        *cursor += 1;
        for op in branch(request, succeeded) {
            match op {
                RequestOp::Range(range) => {
                    super::range::check_range(range, self.current, self.compacted)?;
                }
                RequestOp::Put(put) => self.check_put(put, self.current, lease_exists)?,
                RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(nested) => self.check_txn(nested, path, cursor, lease_exists)?,
            }
        }
        Ok(())
    }

    /// Runs the branch `path` chose; cannot fail once `check_static` and `check_txn` passed.
    pub(super) fn apply_txn(
        &mut self,
        request: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
        batch: &mut WriteBatch,
    ) -> TxnResponse {
        let succeeded = path[*cursor];
        *cursor += 1;
        let ops = branch(request, succeeded);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op {
                RequestOp::Range(range) => {
                    ResponseOp::Range(self.range_at(range, batch.read_main()))
                }
                RequestOp::Put(put) => ResponseOp::Put(self.apply_put(put, batch)),
                RequestOp::DeleteRange(delete) => {
                    ResponseOp::DeleteRange(self.apply_delete_range(delete, batch))
                }
                RequestOp::Txn(nested) => {
                    let mut response = self.apply_txn(nested, path, cursor, batch);
                    response.header.revision = Revision(batch.read_main());
                    ResponseOp::Txn(response)
                }
            };
            responses.push(response);
        }
        TxnResponse {
            succeeded,
            responses,
            ..TxnResponse::default()
        }
    }
}
