//! Auth requests as history operations (format version 2, `docs/history-format.md`): the
//! recorder's view of etcd's Auth service. Passwords, hashes and tokens are never recorded.
//!
//! Requests that change nothing and that the format has no type for (status, user and role
//! queries, the password-hash lookup) are not recorded.

use checkers::history::{self as ch, AuthOp};
use engine::auth::{AuthRequest, KeyRange, PermissionKind};
use serde_json::Value;

/// The history's auth operation for an engine auth request, if the format has one.
pub fn auth_op(request: &AuthRequest) -> Option<AuthOp> {
    Some(match request {
        AuthRequest::Enable => AuthOp::Enable,
        AuthRequest::Disable => AuthOp::Disable,
        AuthRequest::Authenticate { name, .. } => AuthOp::Authenticate { name: name.clone() },
        AuthRequest::UserAdd { name, .. } => AuthOp::UserAdd { name: name.clone() },
        AuthRequest::UserDelete { name } => AuthOp::UserDelete { name: name.clone() },
        AuthRequest::UserGrantRole { user, role } => AuthOp::UserGrantRole {
            user: user.clone(),
            role: role.clone(),
        },
        AuthRequest::UserRevokeRole { user, role } => AuthOp::UserRevokeRole {
            user: user.clone(),
            role: role.clone(),
        },
        AuthRequest::RoleAdd { name } => AuthOp::RoleAdd { name: name.clone() },
        AuthRequest::RoleDelete { name } => AuthOp::RoleDelete { name: name.clone() },
        AuthRequest::RoleGrantPermission { role, permission } => {
            let (key, range_end) = range_fields(&permission.range);
            AuthOp::RoleGrantPermission {
                role: role.clone(),
                key,
                range_end,
                permission: match permission.kind {
                    PermissionKind::Read => ch::PermissionKind::Read,
                    PermissionKind::Write => ch::PermissionKind::Write,
                    PermissionKind::ReadWrite => ch::PermissionKind::ReadWrite,
                },
            }
        }
        AuthRequest::RoleRevokePermission { role, range } => {
            let (key, range_end) = range_fields(range);
            AuthOp::RoleRevokePermission {
                role: role.clone(),
                key,
                range_end,
            }
        }
        AuthRequest::Status
        | AuthRequest::PasswordHash { .. }
        | AuthRequest::UserGet { .. }
        | AuthRequest::UserList
        | AuthRequest::UserChangePassword { .. }
        | AuthRequest::RoleGet { .. }
        | AuthRequest::RoleList
        | AuthRequest::CheckCaller { .. } => return None,
    })
}

/// A key range as the format's `key` and optional `range_end` (absent for one key).
fn range_fields(range: &KeyRange) -> (Vec<u8>, Option<Vec<u8>>) {
    let end = (!range.range_end.is_empty()).then(|| range.range_end.clone());
    (range.key.clone(), end)
}

/// The spec's `op` object for an auth request, if the format has a type for it.
pub fn auth_op_json(request: &AuthRequest) -> Option<Value> {
    auth_op(request).map(|op| ch::request_to_json(&ch::Request::Auth(op)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::auth::Permission;

    /// Goal: a permission grant renders with the format's fields, passwords never do.
    /// Method: render a grant on a prefix and a user add with a hash.
    #[test]
    fn auth_requests_render_without_secrets() {
        let grant = AuthRequest::RoleGrantPermission {
            role: "writer".into(),
            permission: Permission {
                kind: PermissionKind::ReadWrite,
                range: KeyRange::range(b"s", b"t"),
            },
        };
        let json = auth_op_json(&grant).expect("recorded");
        assert_eq!(json["type"], "role_grant_permission");
        assert_eq!(json["range_end"], "t");
        assert_eq!(json["permission"], "readwrite");
        let add = AuthRequest::UserAdd {
            name: "alice".into(),
            password_hash: Some(b"secret-hash".to_vec()),
        };
        let json = auth_op_json(&add).expect("recorded").to_string();
        assert!(json.contains("alice") && !json.contains("secret"), "{json}");
        assert!(auth_op_json(&AuthRequest::Status).is_none());
    }
}
