//! The auth operations of the history format, version 2 (docs/history-format.md): etcd's Auth
//! service requests as history values, and their reading and writing.
//!
//! Version 2 is a superset of version 1: these request types, the result type `auth`, and the
//! optional `user` of an operation. A version 1 history has none of them and reads as before.

use super::Bytes;
use serde_json::{json, Map, Value};

/// A permission's kind, as etcd's `Permission.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PermissionKind {
    /// Ranges and compares.
    Read,
    /// Puts and deletes.
    Write,
    /// Both.
    ReadWrite,
}

impl PermissionKind {
    /// The name in histories.
    pub fn name(self) -> &'static str {
        match self {
            PermissionKind::Read => "read",
            PermissionKind::Write => "write",
            PermissionKind::ReadWrite => "readwrite",
        }
    }

    /// Whether holding `self` allows what `wanted` needs.
    pub fn allows(self, wanted: PermissionKind) -> bool {
        self == PermissionKind::ReadWrite || self == wanted
    }

    fn from_name(name: &str) -> Option<PermissionKind> {
        [
            PermissionKind::Read,
            PermissionKind::Write,
            PermissionKind::ReadWrite,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// An Auth service request (`op.type` of version 2). Passwords are never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOp {
    /// `auth_enable`.
    Enable,
    /// `auth_disable`.
    Disable,
    /// `user_add`.
    UserAdd {
        /// The user.
        name: String,
    },
    /// `user_delete`.
    UserDelete {
        /// The user.
        name: String,
    },
    /// `user_grant_role`.
    UserGrantRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// `user_revoke_role`.
    UserRevokeRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// `role_add`.
    RoleAdd {
        /// The role.
        name: String,
    },
    /// `role_delete` (also revoked from every user).
    RoleDelete {
        /// The role.
        name: String,
    },
    /// `role_grant_permission`: adds the permission, or changes the kind of the one on the same
    /// range.
    RoleGrantPermission {
        /// The role.
        role: String,
        /// First key.
        key: Bytes,
        /// End of the range; `None` is the key alone, `"\0"` every key from `key` on.
        range_end: Option<Bytes>,
        /// The kind.
        permission: PermissionKind,
    },
    /// `role_revoke_permission`: removes the permission on exactly this range.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// First key.
        key: Bytes,
        /// End of the range, as in the grant.
        range_end: Option<Bytes>,
    },
    /// `authenticate`: a token for `name` (the password is not recorded).
    Authenticate {
        /// The user.
        name: String,
    },
}

impl AuthOp {
    /// The `op.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AuthOp::Enable => "auth_enable",
            AuthOp::Disable => "auth_disable",
            AuthOp::UserAdd { .. } => "user_add",
            AuthOp::UserDelete { .. } => "user_delete",
            AuthOp::UserGrantRole { .. } => "user_grant_role",
            AuthOp::UserRevokeRole { .. } => "user_revoke_role",
            AuthOp::RoleAdd { .. } => "role_add",
            AuthOp::RoleDelete { .. } => "role_delete",
            AuthOp::RoleGrantPermission { .. } => "role_grant_permission",
            AuthOp::RoleRevokePermission { .. } => "role_revoke_permission",
            AuthOp::Authenticate { .. } => "authenticate",
        }
    }

    /// A one-line human rendering, e.g. `role_grant_permission r1 readwrite "a".."b"`.
    pub fn describe(&self) -> String {
        let span = |key: &[u8], end: &Option<Bytes>| match end {
            None => super::show_bytes(key),
            Some(end) if end.as_slice() == [0] => format!("{}..", super::show_bytes(key)),
            Some(end) => format!("{}..{}", super::show_bytes(key), super::show_bytes(end)),
        };
        let name = self.type_name();
        match self {
            AuthOp::Enable | AuthOp::Disable => name.to_string(),
            AuthOp::UserAdd { name: who }
            | AuthOp::UserDelete { name: who }
            | AuthOp::RoleAdd { name: who }
            | AuthOp::RoleDelete { name: who }
            | AuthOp::Authenticate { name: who } => format!("{name} {who}"),
            AuthOp::UserGrantRole { user, role } | AuthOp::UserRevokeRole { user, role } => {
                format!("{name} {user} {role}")
            }
            AuthOp::RoleGrantPermission {
                role,
                key,
                range_end,
                permission,
            } => format!(
                "{name} {role} {} {}",
                permission.name(),
                span(key, range_end)
            ),
            AuthOp::RoleRevokePermission {
                role,
                key,
                range_end,
            } => format!("{name} {role} {}", span(key, range_end)),
        }
    }
}

type Parsed<T> = Result<T, String>;

/// The `op.type`s of auth requests.
const TYPES: [&str; 11] = [
    "auth_enable",
    "auth_disable",
    "user_add",
    "user_delete",
    "user_grant_role",
    "user_revoke_role",
    "role_add",
    "role_delete",
    "role_grant_permission",
    "role_revoke_permission",
    "authenticate",
];

/// Parses an auth request of type `kind`; `None` when `kind` is not an auth type.
pub(super) fn parse(
    kind: &str,
    object: &Map<String, Value>,
    bytes: fn(&Map<String, Value>, &str) -> Parsed<Option<Bytes>>,
) -> Option<Parsed<AuthOp>> {
    TYPES
        .contains(&kind)
        .then(|| parse_fields(kind, object, bytes))
}

fn parse_fields(
    kind: &str,
    object: &Map<String, Value>,
    bytes: fn(&Map<String, Value>, &str) -> Parsed<Option<Bytes>>,
) -> Parsed<AuthOp> {
    let text = |name: &str| -> Parsed<String> {
        match object.get(name) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(format!("{name}: expected a string")),
            None => Err(format!("{name}: missing")),
        }
    };
    let key = || -> Parsed<Bytes> {
        bytes(object, "key")?.ok_or_else(|| "key: missing (nor key_b64)".to_string())
    };
    Ok(match kind {
        "auth_enable" => AuthOp::Enable,
        "auth_disable" => AuthOp::Disable,
        "user_add" => AuthOp::UserAdd {
            name: text("name")?,
        },
        "user_delete" => AuthOp::UserDelete {
            name: text("name")?,
        },
        "user_grant_role" => AuthOp::UserGrantRole {
            user: text("user")?,
            role: text("role")?,
        },
        "user_revoke_role" => AuthOp::UserRevokeRole {
            user: text("user")?,
            role: text("role")?,
        },
        "role_add" => AuthOp::RoleAdd {
            name: text("name")?,
        },
        "role_delete" => AuthOp::RoleDelete {
            name: text("name")?,
        },
        "role_grant_permission" => {
            let permission = text("permission")?;
            AuthOp::RoleGrantPermission {
                role: text("role")?,
                key: key()?,
                range_end: bytes(object, "range_end")?,
                permission: PermissionKind::from_name(&permission).ok_or_else(|| {
                    format!("permission: {permission:?} is not one of read, write, readwrite")
                })?,
            }
        }
        "role_revoke_permission" => AuthOp::RoleRevokePermission {
            role: text("role")?,
            key: key()?,
            range_end: bytes(object, "range_end")?,
        },
        _ => AuthOp::Authenticate {
            name: text("name")?,
        },
    })
}

/// Writes the fields of an auth request into `object` (its `type` is written by the caller).
pub(super) fn write(
    op: &AuthOp,
    object: &mut Map<String, Value>,
    put_bytes: fn(&mut Map<String, Value>, &str, &[u8]),
) {
    match op {
        AuthOp::Enable | AuthOp::Disable => {}
        AuthOp::UserAdd { name }
        | AuthOp::UserDelete { name }
        | AuthOp::RoleAdd { name }
        | AuthOp::RoleDelete { name }
        | AuthOp::Authenticate { name } => {
            object.insert("name".into(), json!(name));
        }
        AuthOp::UserGrantRole { user, role } | AuthOp::UserRevokeRole { user, role } => {
            object.insert("user".into(), json!(user));
            object.insert("role".into(), json!(role));
        }
        AuthOp::RoleGrantPermission {
            role,
            key,
            range_end,
            permission,
        } => {
            object.insert("role".into(), json!(role));
            put_bytes(object, "key", key);
            if let Some(end) = range_end {
                put_bytes(object, "range_end", end);
            }
            object.insert("permission".into(), json!(permission.name()));
        }
        AuthOp::RoleRevokePermission {
            role,
            key,
            range_end,
        } => {
            object.insert("role".into(), json!(role));
            put_bytes(object, "key", key);
            if let Some(end) = range_end {
                put_bytes(object, "range_end", end);
            }
        }
    }
}
