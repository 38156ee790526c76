//! The client side of auth, shaped after etcd's Auth service in `rpc.proto`: the requests,
//! their answers, the credentials a request runs with, and etcd's auth errors with their exact
//! strings (clients match on them).
//!
//! Nothing here executes a request; `AuthStore` and the member do.

use super::perm::{KeyRange, Permission};

/// What a client presents with a request. A host resolves neither: the member does, against
/// its auth store and its token table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A token from `Authenticate` (etcd's `token` gRPC metadata).
    Token(String),
    /// A user the host vouches for: the common name of a client certificate the host verified
    /// (etcd's client-cert auth). Its auth revision is the store's when the request arrives.
    User(String),
}

/// etcd's Auth service requests.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum AuthRequest {
    /// AuthEnable: needs the root user with the root role.
    Enable,
    /// AuthDisable.
    Disable,
    /// AuthStatus: whether auth is enabled, and the auth revision.
    Status,
    /// Authenticate, after the host checked the password against `PasswordHash`'s answer:
    /// issues `token` to `name` on every member, unless the store changed since the check.
    Authenticate {
        /// The user.
        name: String,
        /// The token the host generated (random, unguessable; the engine has no entropy).
        token: String,
        /// The auth revision `PasswordHash` answered with.
        checked_revision: u64,
    },
    /// The stored hash of a user's password and the auth revision, answered by the member
    /// from its applied store (etcd's `CheckPassword` reads it the same way).
    PasswordHash {
        /// The user.
        name: String,
    },
    /// UserAdd; `password_hash` is the host's salted hash, `None` for a no-password user.
    UserAdd {
        /// The user.
        name: String,
        /// The hash, or none.
        password_hash: Option<Vec<u8>>,
    },
    /// UserGet: the user's roles.
    UserGet {
        /// The user.
        name: String,
    },
    /// UserList.
    UserList,
    /// UserDelete.
    UserDelete {
        /// The user.
        name: String,
    },
    /// UserChangePassword, with the host's salted hash of the new password.
    UserChangePassword {
        /// The user.
        name: String,
        /// The new hash.
        password_hash: Vec<u8>,
    },
    /// UserGrantRole.
    UserGrantRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// UserRevokeRole.
    UserRevokeRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// RoleAdd.
    RoleAdd {
        /// The role.
        name: String,
    },
    /// RoleGet: the role's permissions.
    RoleGet {
        /// The role.
        name: String,
    },
    /// RoleList.
    RoleList,
    /// RoleDelete (also revoked from every user).
    RoleDelete {
        /// The role.
        name: String,
    },
    /// RoleGrantPermission: adds the permission, or changes the kind of the one on the same
    /// range.
    RoleGrantPermission {
        /// The role.
        role: String,
        /// The permission.
        permission: Permission,
    },
    /// RoleRevokePermission: removes the permission on exactly this range.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// The range.
        range: KeyRange,
    },
    /// Whether the caller may use a maintenance RPC, answered by the member from its applied
    /// store, never proposed (a host cannot resolve a token itself). `admin`: the root role is
    /// needed (etcd's `IsAdminPermitted`: Hash, HashKV, Snapshot, Defragment, MoveLeader,
    /// raising or clearing alarms); otherwise any named user will do, but while auth is enabled
    /// one must be named (etcd's `requireAuthInfo`: listing alarms). Answers `Done`.
    CheckCaller {
        /// Whether the root role is needed.
        admin: bool,
    },
}

impl AuthRequest {
    /// Whether only an administrator (the root role) may send it while auth is enabled.
    pub fn needs_admin(&self) -> bool {
        !matches!(
            self,
            AuthRequest::Authenticate { .. }
                | AuthRequest::PasswordHash { .. }
                | AuthRequest::Status
                | AuthRequest::Enable
                | AuthRequest::CheckCaller { .. }
        )
    }

    /// Whether the member answers it from its applied store, without the log.
    pub fn is_answered_locally(&self) -> bool {
        matches!(
            self,
            AuthRequest::Status
                | AuthRequest::PasswordHash { .. }
                | AuthRequest::CheckCaller { .. }
        )
    }

    /// Whether the member resolves the credentials it came with (a token must then be live).
    /// Those open to anyone ignore them, so a stale token cannot stop a client from logging in
    /// again.
    pub fn resolves_caller(&self) -> bool {
        self.needs_admin() || matches!(self, AuthRequest::CheckCaller { .. })
    }
}

/// The answer to an [`AuthRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthResponse {
    /// A change applied (or changed nothing, as etcd's idempotent ones).
    Done,
    /// To `Status`.
    Status {
        /// Whether auth is enabled.
        enabled: bool,
        /// The auth revision.
        auth_revision: u64,
    },
    /// To `Authenticate`.
    Token {
        /// The token to send as metadata.
        token: String,
    },
    /// To `PasswordHash`.
    PasswordHash {
        /// The stored hash; `None` for a no-password user.
        hash: Option<Vec<u8>>,
        /// The auth revision it was read at.
        auth_revision: u64,
    },
    /// To `UserGet`.
    User {
        /// Granted roles, in name order.
        roles: Vec<String>,
    },
    /// To `RoleGet`.
    Role {
        /// The permissions, in range order.
        permissions: Vec<Permission>,
    },
    /// To `UserList` and `RoleList`, in name order.
    Names {
        /// The names.
        names: Vec<String>,
    },
}

/// etcd's auth errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The user may not do this.
    PermissionDenied,
    /// The request was authorised at an auth revision that a later change superseded.
    AuthOldRevision,
    /// Auth is enabled and the request names no user.
    UserEmpty,
    /// No such user.
    UserNotFound,
    /// The user exists.
    UserAlreadyExists,
    /// No such role.
    RoleNotFound,
    /// The role exists.
    RoleAlreadyExists,
    /// A role name is empty.
    RoleEmpty,
    /// Auth enable without a root user.
    RootUserNotExist,
    /// Auth enable with a root user that lacks the root role.
    RootRoleNotExist,
    /// Unknown user or wrong password: the same answer for both, so neither leaks.
    AuthFailed,
    /// A token that is unknown or expired.
    InvalidAuthToken,
    /// Authenticate while auth is disabled.
    AuthNotEnabled,
    /// Revoking a role the user does not hold.
    RoleNotGranted,
    /// Revoking a permission the role does not hold.
    PermissionNotGranted,
    /// Deleting the root user or role (or the root role from root) while auth is enabled.
    InvalidAuthManagement,
}

impl AuthError {
    /// The name recorded in histories (`result.code`).
    pub fn code(self) -> &'static str {
        match self {
            AuthError::PermissionDenied => "permission_denied",
            AuthError::AuthOldRevision => "auth_old_revision",
            AuthError::UserEmpty => "user_empty",
            AuthError::UserNotFound => "user_not_found",
            AuthError::UserAlreadyExists => "user_already_exists",
            AuthError::RoleNotFound => "role_not_found",
            AuthError::RoleAlreadyExists => "role_already_exists",
            AuthError::RoleEmpty => "role_empty",
            AuthError::RootUserNotExist => "root_user_not_exist",
            AuthError::RootRoleNotExist => "root_role_not_exist",
            AuthError::AuthFailed => "auth_failed",
            AuthError::InvalidAuthToken => "invalid_auth_token",
            AuthError::AuthNotEnabled => "auth_not_enabled",
            AuthError::RoleNotGranted => "role_not_granted",
            AuthError::PermissionNotGranted => "permission_not_granted",
            AuthError::InvalidAuthManagement => "invalid_auth_management",
        }
    }

    /// The auth store's own error string in etcd (`auth/store.go`), which a few RPCs return
    /// unconverted (Hash, HashKV, Snapshot and Defragment refusing a caller), so clients see it
    /// rather than `etcd_text`.
    pub fn store_text(self) -> &'static str {
        match self {
            AuthError::PermissionDenied => "auth: permission denied",
            AuthError::AuthOldRevision => "auth: revision in header is old",
            AuthError::UserEmpty => "auth: user name is empty",
            AuthError::UserNotFound => "auth: user not found",
            AuthError::UserAlreadyExists => "auth: user already exists",
            AuthError::RoleNotFound => "auth: role not found",
            AuthError::RoleAlreadyExists => "auth: role already exists",
            AuthError::RoleEmpty => "auth: role name is empty",
            AuthError::RootUserNotExist => "auth: root user does not exist",
            AuthError::RootRoleNotExist => "auth: root user does not have root role",
            AuthError::AuthFailed => "auth: authentication failed, invalid user ID or password",
            AuthError::InvalidAuthToken => "auth: invalid auth token",
            AuthError::AuthNotEnabled => "auth: authentication is not enabled",
            AuthError::RoleNotGranted => "auth: role is not granted to the user",
            AuthError::PermissionNotGranted => "auth: permission is not granted to the role",
            AuthError::InvalidAuthManagement => "auth: invalid auth management",
        }
    }

    /// etcd's error string, exactly (`rpctypes`).
    pub fn etcd_text(self) -> &'static str {
        match self {
            AuthError::PermissionDenied => "etcdserver: permission denied",
            AuthError::AuthOldRevision => "etcdserver: revision of auth store is old",
            AuthError::UserEmpty => "etcdserver: user name is empty",
            AuthError::UserNotFound => "etcdserver: user name not found",
            AuthError::UserAlreadyExists => "etcdserver: user name already exists",
            AuthError::RoleNotFound => "etcdserver: role name not found",
            AuthError::RoleAlreadyExists => "etcdserver: role name already exists",
            AuthError::RoleEmpty => "etcdserver: role name is empty",
            AuthError::RootUserNotExist => "etcdserver: root user does not exist",
            AuthError::RootRoleNotExist => "etcdserver: root user does not have root role",
            AuthError::AuthFailed => {
                "etcdserver: authentication failed, invalid user ID or password"
            }
            AuthError::InvalidAuthToken => "etcdserver: invalid auth token",
            AuthError::AuthNotEnabled => "etcdserver: authentication is not enabled",
            AuthError::RoleNotGranted => "etcdserver: role is not granted to the user",
            AuthError::PermissionNotGranted => "etcdserver: permission is not granted to the role",
            AuthError::InvalidAuthManagement => "etcdserver: invalid auth management",
        }
    }
}
