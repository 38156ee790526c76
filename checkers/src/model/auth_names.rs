//! What `compile` interns for a history with auth requests (format version 2): the user and
//! role names, and every bound a permission or a request's range could split the key space at.
//!
//! A history without auth requests interns nothing more, so its key ids stay as they were.

use crate::history::{AuthOp, Operation, Request};

/// Every user and role name of the history, `"root"` first and the rest in byte order; empty
/// when the history has no auth request.
pub(super) fn collect(ops: &[Operation]) -> Vec<String> {
    if !ops.iter().any(|op| matches!(op.request, Request::Auth(_))) {
        return Vec::new();
    }
    let mut names: Vec<String> = vec!["root".to_string()];
    for op in ops {
        names.extend(op.user.iter().cloned());
        if let Request::Auth(auth) = &op.request {
            match auth {
                AuthOp::Enable | AuthOp::Disable => {}
                AuthOp::UserAdd { name }
                | AuthOp::UserDelete { name }
                | AuthOp::RoleAdd { name }
                | AuthOp::RoleDelete { name }
                | AuthOp::Authenticate { name } => names.push(name.clone()),
                AuthOp::UserGrantRole { user, role } | AuthOp::UserRevokeRole { user, role } => {
                    names.push(user.clone());
                    names.push(role.clone());
                }
                AuthOp::RoleGrantPermission { role, .. }
                | AuthOp::RoleRevokePermission { role, .. } => names.push(role.clone()),
            }
        }
    }
    names.sort_unstable_by(|first, second| {
        (first != "root", first.as_str()).cmp(&(second != "root", second.as_str()))
    });
    names.dedup();
    names
}

/// Calls `insert` on every permission bound and every requested range end (the keys are
/// interned already), so that a span of key ids covers exactly the keys its bytes cover.
pub(super) fn collect_bounds<'a>(request: &'a Request, insert: &mut impl FnMut(&'a [u8])) {
    let end = |range_end: &'a Option<Vec<u8>>, insert: &mut dyn FnMut(&'a [u8])| {
        if let Some(bound) = range_end.as_deref().filter(|bound| *bound != [0]) {
            insert(bound);
        }
    };
    match request {
        Request::Range(range) => end(&range.range_end, insert),
        Request::Delete(delete) => end(&delete.range_end, insert),
        Request::Txn(txn) => {
            for inner in txn.success.iter().chain(&txn.failure) {
                collect_bounds(inner, insert);
            }
        }
        Request::Auth(
            AuthOp::RoleGrantPermission { key, range_end, .. }
            | AuthOp::RoleRevokePermission { key, range_end, .. },
        ) => {
            insert(key);
            end(range_end, insert);
        }
        _ => {}
    }
}
