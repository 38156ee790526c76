//! The gateway's paths for the Auth service (etcd 3.4's `google.api.http` bindings under
//! `/v3/auth/`, plus `auth/status`, which etcd binds from 3.5 on). A client logs in with
//! `auth/authenticate` and sends the token it got as the `Authorization` header, which the
//! gateway passes on as the call's token metadata.

use super::{bind, Binding};

/// The Auth service's paths after `/v3/`.
pub(super) const AUTH_BINDINGS: &[Binding] = &[
    bind("auth/enable", AUTH, "AuthEnable"),
    bind("auth/disable", AUTH, "AuthDisable"),
    bind("auth/status", AUTH, "AuthStatus"),
    bind("auth/authenticate", AUTH, "Authenticate"),
    bind("auth/user/add", AUTH, "UserAdd"),
    bind("auth/user/get", AUTH, "UserGet"),
    bind("auth/user/list", AUTH, "UserList"),
    bind("auth/user/delete", AUTH, "UserDelete"),
    bind("auth/user/changepw", AUTH, "UserChangePassword"),
    bind("auth/user/grant", AUTH, "UserGrantRole"),
    bind("auth/user/revoke", AUTH, "UserRevokeRole"),
    bind("auth/role/add", AUTH, "RoleAdd"),
    bind("auth/role/get", AUTH, "RoleGet"),
    bind("auth/role/list", AUTH, "RoleList"),
    bind("auth/role/delete", AUTH, "RoleDelete"),
    bind("auth/role/grant", AUTH, "RoleGrantPermission"),
    bind("auth/role/revoke", AUTH, "RoleRevokePermission"),
];

const AUTH: &str = "etcdserverpb.Auth";
