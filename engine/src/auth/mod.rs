//! The auth store, etcd's users, roles and key-range permissions, applied from the log like
//! MVCC and the replicated half of the lessor: every change comes from a committed entry and
//! bumps the auth revision, so members that applied the same entries hold the same store.
//!
//! It never hashes a password (the host hashes with a salt before proposing, and checks a
//! password against the stored hash itself), reads no clock and keeps no member-local state:
//! tokens, which expire on a member's clock, live in `token`, outside the replicated store.

mod api;
mod perm;
pub mod token;

pub use api::{AuthError, AuthRequest, AuthResponse, Credentials};
pub use perm::{KeyRange, Permission, PermissionKind};

use std::collections::{BTreeMap, BTreeSet};

use crate::codec;

/// The name of etcd's superuser, whose presence (with the root role) auth enable requires.
pub const ROOT_USER: &str = "root";
/// The name of the role that is granted every permission on every key.
pub const ROOT_ROLE: &str = "root";

/// Who a request runs as, and the auth revision it was authorised at (etcd's `AuthInfo`).
/// Carried by every write proposed while auth is enabled and checked when the entry applies.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct AuthInfo {
    /// The user name.
    pub user: String,
    /// The auth revision when the member that took the request resolved the user; a store
    /// whose revision moved past it refuses the request (`AuthError::AuthOldRevision`).
    pub revision: u64,
}

/// A user: a salted password hash (none for a user who logs in with a certificate only) and
/// the roles granted.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct User {
    /// The host's salted hash; `None` for a no-password user.
    pub password_hash: Option<Vec<u8>>,
    /// Granted roles, in name order.
    pub roles: BTreeSet<String>,
}

/// A role: its permissions, each on a key or a range.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Role {
    /// Invariant: at most one permission per key range, sorted by range (etcd's order).
    pub permissions: Vec<Permission>,
}

/// The replicated auth state.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct AuthStore {
    enabled: bool,
    /// Invariant: grows by one with every change, never otherwise.
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Default for AuthStore {
    fn default() -> AuthStore {
        // Revision 1, as etcd's store starts: a request resolved while auth is disabled carries
        // revision 0 ("no user"), which is always older.
        AuthStore {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

/// What a write touches, for the apply-time check: `read` ranges need read permission, `write`
/// ranges write permission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Ranges read (ranges, compares, previous values asked for).
    pub read: Vec<KeyRange>,
    /// Ranges written (puts, deletes).
    pub write: Vec<KeyRange>,
}

impl AuthStore {
    /// Whether auth is enabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether the store was never changed (snapshots then leave it out, so a cluster that
    /// never used auth writes the same bytes as before auth existed).
    pub fn is_pristine(&self) -> bool {
        *self == AuthStore::default()
    }

    /// A user's stored password hash, for the host's password check; `None` inside when the
    /// user has no password.
    pub fn password_hash(&self, name: &str) -> Result<Option<&[u8]>, AuthError> {
        let user = self.users.get(name).ok_or(AuthError::AuthFailed)?;
        Ok(user.password_hash.as_deref())
    }

    /// Whether `name` exists.
    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// Checks that `info` may touch what `access` lists (etcd's `isOpPermitted`): nothing is
    /// checked while auth is disabled; revision 0 is a request without a user; a revision older
    /// than the store's was authorised before a change, which might have revoked it.
    pub fn check(&self, info: Option<&AuthInfo>, access: &Access) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let info = info.filter(|info| info.revision != 0 && !info.user.is_empty());
        let info = info.ok_or(AuthError::UserEmpty)?;
        if info.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        assert!(
            info.revision <= self.revision,
            "a request is never authorised at an auth revision not yet applied"
        );
        let user = self
            .users
            .get(&info.user)
            .ok_or(AuthError::PermissionDenied)?;
        if user.roles.contains(ROOT_ROLE) {
            return Ok(());
        }
        let granted = |kind: PermissionKind| -> Vec<KeyRange> {
            let roles = user.roles.iter().filter_map(|name| self.roles.get(name));
            roles
                .flat_map(|role| role.permissions.iter())
                .filter(|permission| permission.kind.allows(kind))
                .map(|permission| permission.range.clone())
                .collect()
        };
        let checks = [
            (PermissionKind::Read, &access.read),
            (PermissionKind::Write, &access.write),
        ];
        for (kind, ranges) in checks {
            if ranges.is_empty() {
                continue;
            }
            let granted = granted(kind);
            if !ranges.iter().all(|range| perm::covered(range, &granted)) {
                return Err(AuthError::PermissionDenied);
            }
        }
        Ok(())
    }

    /// Checks that `info` is an administrator (etcd's `IsAdminPermitted`: the root role),
    /// always true while auth is disabled.
    pub fn check_admin(&self, info: Option<&AuthInfo>) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let info = info.filter(|info| !info.user.is_empty());
        let info = info.ok_or(AuthError::UserEmpty)?;
        let user = self.users.get(&info.user).ok_or(AuthError::UserNotFound)?;
        if user.roles.contains(ROOT_ROLE) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Checks that `info` names a user while auth is enabled (etcd's `requireAuthInfo`: any
    /// user, existing or not, as etcd does not look it up), always true while auth is disabled.
    pub fn check_named(&self, info: Option<&AuthInfo>) -> Result<(), AuthError> {
        if !self.enabled || info.is_some_and(|info| !info.user.is_empty()) {
            return Ok(());
        }
        Err(AuthError::UserEmpty)
    }

    /// Applies one management request (not `Authenticate`, nor those the member answers
    /// locally: `AuthRequest::is_answered_locally`). A change bumps the revision; a refusal
    /// changes nothing.
    pub fn apply(&mut self, request: &AuthRequest) -> Result<AuthResponse, AuthError> {
        let before = self.revision;
        let response = self.apply_inner(request)?;
        assert!(self.revision == before || self.revision == before + 1);
        Ok(response)
    }

    fn bump(&mut self) -> AuthResponse {
        self.revision += 1;
        AuthResponse::Done
    }

    fn apply_inner(&mut self, request: &AuthRequest) -> Result<AuthResponse, AuthError> {
        match request {
            AuthRequest::Enable => self.enable(),
            AuthRequest::Disable => {
                if !self.enabled {
                    return Ok(AuthResponse::Done);
                }
                self.enabled = false;
                Ok(self.bump())
            }
            AuthRequest::UserAdd {
                name,
                password_hash,
            } => {
                if name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthError::UserAlreadyExists);
                }
                let user = User {
                    password_hash: password_hash.clone(),
                    roles: BTreeSet::new(),
                };
                self.users.insert(name.clone(), user);
                Ok(self.bump())
            }
            AuthRequest::UserDelete { name } => {
                if self.enabled && name == ROOT_USER {
                    return Err(AuthError::InvalidAuthManagement);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
                Ok(self.bump())
            }
            AuthRequest::UserChangePassword {
                name,
                password_hash,
            } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                user.password_hash = Some(password_hash.clone());
                Ok(self.bump())
            }
            AuthRequest::UserGrantRole { user, role } => self.grant_role(user, role),
            AuthRequest::UserRevokeRole { user, role } => {
                if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
                    return Err(AuthError::InvalidAuthManagement);
                }
                let entry = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
                if !entry.roles.remove(role) {
                    return Err(AuthError::RoleNotGranted);
                }
                Ok(self.bump())
            }
            AuthRequest::UserGet { name } => {
                let user = self.users.get(name).ok_or(AuthError::UserNotFound)?;
                let roles = user.roles.iter().cloned().collect();
                Ok(AuthResponse::User { roles })
            }
            AuthRequest::UserList => Ok(AuthResponse::Names {
                names: self.users.keys().cloned().collect(),
            }),
            AuthRequest::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExists);
                }
                self.roles.insert(name.clone(), Role::default());
                Ok(self.bump())
            }
            AuthRequest::RoleDelete { name } => {
                if self.enabled && name == ROOT_ROLE {
                    return Err(AuthError::InvalidAuthManagement);
                }
                self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
                // etcd revokes the role from every user that had it.
                for user in self.users.values_mut() {
                    let _had_role = user.roles.remove(name);
                }
                Ok(self.bump())
            }
            AuthRequest::RoleGet { name } => {
                let role = self.roles.get(name).ok_or(AuthError::RoleNotFound)?;
                Ok(AuthResponse::Role {
                    permissions: role.permissions.clone(),
                })
            }
            AuthRequest::RoleList => Ok(AuthResponse::Names {
                names: self.roles.keys().cloned().collect(),
            }),
            AuthRequest::RoleGrantPermission { role, permission } => {
                let entry = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let position = entry
                    .permissions
                    .binary_search_by(|held| held.range.cmp(&permission.range));
                match position {
                    Ok(index) => entry.permissions[index].kind = permission.kind,
                    Err(index) => entry.permissions.insert(index, permission.clone()),
                }
                Ok(self.bump())
            }
            AuthRequest::RoleRevokePermission { role, range } => {
                let entry = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let before = entry.permissions.len();
                entry.permissions.retain(|held| held.range != *range);
                if entry.permissions.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
                Ok(self.bump())
            }
            AuthRequest::Authenticate { .. }
            | AuthRequest::Status
            | AuthRequest::PasswordHash { .. }
            | AuthRequest::CheckCaller { .. } => {
                unreachable!("{request:?} is answered by the member, not applied to the store")
            }
        }
    }

    /// etcd's `AuthEnable`: the root user must exist and hold the root role.
    fn enable(&mut self) -> Result<AuthResponse, AuthError> {
        if self.enabled {
            return Ok(AuthResponse::Done);
        }
        let root = self
            .users
            .get(ROOT_USER)
            .ok_or(AuthError::RootUserNotExist)?;
        if !root.roles.contains(ROOT_ROLE) {
            return Err(AuthError::RootRoleNotExist);
        }
        self.enabled = true;
        Ok(self.bump())
    }

    fn grant_role(&mut self, user: &str, role: &str) -> Result<AuthResponse, AuthError> {
        // The root role need not have been added (etcd grants it regardless).
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let entry = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
        if !entry.roles.insert(role.to_string()) {
            // Granting a role twice changes nothing, as in etcd.
            return Ok(AuthResponse::Done);
        }
        Ok(self.bump())
    }

    /// The store as snapshot bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes snapshot bytes, refusing a store that breaks its invariants.
    pub fn decode(bytes: &[u8]) -> Result<AuthStore, String> {
        let store: AuthStore = codec::decode(bytes).map_err(|error| error.to_string())?;
        if store.revision == 0 {
            return Err("auth store has revision 0".to_string());
        }
        let sorted = |role: &Role| {
            role.permissions
                .windows(2)
                .all(|pair| pair[0].range < pair[1].range)
        };
        if !store.roles.values().all(sorted) {
            return Err("auth store has unsorted or repeated permissions".to_string());
        }
        Ok(store)
    }
}
