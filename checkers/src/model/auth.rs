//! The auth state of the sequential store (history format version 2): users and their roles,
//! roles and their permissions, and whether auth is enabled, with etcd's rules for who may do
//! what. A store holds it only once an auth operation applied, so a history without auth pays
//! one branch per operation.
//!
//! The rules are etcd's (and detcd's engine's): while auth is enabled, a request without a user
//! is refused (`user_empty`), a user that does not exist or lacks the permission is refused
//! (`permission_denied`), and a user with the `root` role may do anything. Ranges and compares
//! need read permission on everything they cover, puts and deletes write permission (and read
//! permission too when they ask for previous values), a txn needs the permissions of both its
//! branches. A lease revoke, and a put attaching a lease, need write permission on every key the
//! lease holds (`Store::permit`); lease grants, keep-alives and compactions are not checked.
//! Auth changes other than
//! `auth_enable` and `authenticate` need the root role.
//!
//! Permissions are over key ids: `compile` interns every permission bound and every requested
//! range end of a history with auth operations, so that coverage over ids is coverage over bytes.

use super::{ErrorCode, KeyId, Op};
use crate::history::PermissionKind;
use std::collections::{BTreeMap, BTreeSet};

/// An interned user or role name; `ROOT` is `"root"` (both the user and the role).
pub type NameId = u32;

/// The id of `"root"` in every history's name table.
pub const ROOT: NameId = 0;

/// A permission's range: key ids `lo..hi`, and whether it was granted on one key (`range_end`
/// absent), which tells it from a range with the same ids when revoking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PermRange {
    /// First key id.
    pub lo: KeyId,
    /// One past the last key id.
    pub hi: KeyId,
    /// Granted on a single key.
    pub single: bool,
}

/// A compiled auth request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthCmd {
    /// `auth_enable`.
    Enable,
    /// `auth_disable`.
    Disable,
    /// `user_add`.
    UserAdd(NameId),
    /// `user_delete`.
    UserDelete(NameId),
    /// `user_grant_role` (user, role).
    GrantRole(NameId, NameId),
    /// `user_revoke_role` (user, role).
    RevokeRole(NameId, NameId),
    /// `role_add`.
    RoleAdd(NameId),
    /// `role_delete`.
    RoleDelete(NameId),
    /// `role_grant_permission`.
    GrantPermission {
        /// The role.
        role: NameId,
        /// The range.
        range: PermRange,
        /// The kind.
        kind: PermissionKind,
    },
    /// `role_revoke_permission`.
    RevokePermission {
        /// The role.
        role: NameId,
        /// The range.
        range: PermRange,
    },
    /// `authenticate`.
    Authenticate(NameId),
}

impl AuthCmd {
    /// Whether only the root role may send it while auth is enabled.
    fn needs_admin(&self) -> bool {
        !matches!(self, AuthCmd::Enable | AuthCmd::Authenticate(_))
    }
}

/// The auth state. Invariant: `hash` is `compute_hash()` of the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthState {
    enabled: bool,
    /// Users and their roles.
    users: BTreeMap<NameId, BTreeSet<NameId>>,
    /// Roles and their permissions.
    roles: BTreeMap<NameId, BTreeMap<PermRange, PermissionKind>>,
    hash: u64,
}

impl AuthState {
    /// Whether auth is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A hash of the whole state (cached).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Appends words equal for two states exactly when the states are equal.
    pub fn fingerprint(&self, out: &mut Vec<u64>) {
        out.push(u64::from(self.enabled));
        out.push(self.users.len() as u64);
        for (user, roles) in &self.users {
            out.push(u64::from(*user));
            out.push(roles.len() as u64);
            out.extend(roles.iter().map(|role| u64::from(*role)));
        }
        out.push(self.roles.len() as u64);
        for (role, permissions) in &self.roles {
            out.push(u64::from(*role));
            out.push(permissions.len() as u64);
            for (range, kind) in permissions {
                out.extend([
                    u64::from(range.lo),
                    u64::from(range.hi),
                    u64::from(range.single),
                    *kind as u64,
                ]);
            }
        }
    }

    fn rehash(&mut self) {
        let mut words = Vec::new();
        self.fingerprint(&mut words);
        self.hash = words
            .iter()
            .fold(0xa17u64, |hash, word| super::mix(hash ^ word));
    }

    /// Whether `user` may run `op` (etcd's checks), as the error it would get.
    pub fn permit(&self, op: &Op, user: Option<NameId>) -> Result<(), ErrorCode> {
        if !self.enabled {
            return Ok(());
        }
        if let Op::Auth(cmd) = op {
            if !cmd.needs_admin() {
                return Ok(());
            }
            let user = user.ok_or(ErrorCode::UserEmpty)?;
            let roles = self.users.get(&user).ok_or(ErrorCode::UserNotFound)?;
            return if roles.contains(&ROOT) {
                Ok(())
            } else {
                Err(ErrorCode::PermissionDenied)
            };
        }
        let mut access = Access::default();
        access.of(op);
        self.permit_access(&access, user)
    }

    /// Whether `user` may write every key of `keys`: the keys attached to the lease a put
    /// attaches or a revoke removes (etcd's `checkLeasePuts`). Nothing is checked, not even
    /// the user, when there is no key.
    pub fn permit_lease_keys(
        &self,
        keys: impl Iterator<Item = KeyId>,
        user: Option<NameId>,
    ) -> Result<(), ErrorCode> {
        if !self.enabled {
            return Ok(());
        }
        let access = Access {
            read: Vec::new(),
            write: keys.map(|key| (key, key + 1)).collect(),
        };
        self.permit_access(&access, user)
    }

    fn permit_access(&self, access: &Access, user: Option<NameId>) -> Result<(), ErrorCode> {
        if access.read.is_empty() && access.write.is_empty() {
            return Ok(());
        }
        let user = user.ok_or(ErrorCode::UserEmpty)?;
        let roles = self.users.get(&user).ok_or(ErrorCode::PermissionDenied)?;
        if roles.contains(&ROOT) {
            return Ok(());
        }
        for (wanted, spans) in [
            (PermissionKind::Read, &access.read),
            (PermissionKind::Write, &access.write),
        ] {
            if spans.is_empty() {
                continue;
            }
            let mut granted: Vec<(KeyId, KeyId)> = roles
                .iter()
                .filter_map(|role| self.roles.get(role))
                .flat_map(|permissions| permissions.iter())
                .filter(|(_, kind)| kind.allows(wanted))
                .map(|(range, _)| (range.lo, range.hi))
                .collect();
            granted.sort_unstable();
            if !spans.iter().all(|span| covered(*span, &granted)) {
                return Err(ErrorCode::PermissionDenied);
            }
        }
        Ok(())
    }

    /// Applies an auth request (its admin check already passed); `Ok(true)` when the state
    /// changed.
    pub fn apply(&mut self, cmd: &AuthCmd) -> Result<bool, ErrorCode> {
        let changed = self.apply_inner(cmd)?;
        if changed {
            self.rehash();
        }
        Ok(changed)
    }

    fn apply_inner(&mut self, cmd: &AuthCmd) -> Result<bool, ErrorCode> {
        match cmd {
            AuthCmd::Enable => {
                if self.enabled {
                    return Ok(false);
                }
                let root = self.users.get(&ROOT).ok_or(ErrorCode::RootUserNotExist)?;
                if !root.contains(&ROOT) {
                    return Err(ErrorCode::RootRoleNotExist);
                }
                self.enabled = true;
            }
            AuthCmd::Disable => {
                if !self.enabled {
                    return Ok(false);
                }
                self.enabled = false;
            }
            AuthCmd::UserAdd(name) => {
                if self.users.contains_key(name) {
                    return Err(ErrorCode::UserAlreadyExists);
                }
                self.users.insert(*name, BTreeSet::new());
            }
            AuthCmd::UserDelete(name) => {
                if self.enabled && *name == ROOT {
                    return Err(ErrorCode::InvalidAuthManagement);
                }
                self.users.remove(name).ok_or(ErrorCode::UserNotFound)?;
            }
            AuthCmd::GrantRole(user, role) => {
                // The root role need not have been added (etcd grants it regardless).
                if *role != ROOT && !self.roles.contains_key(role) {
                    return Err(ErrorCode::RoleNotFound);
                }
                let roles = self.users.get_mut(user).ok_or(ErrorCode::UserNotFound)?;
                return Ok(roles.insert(*role));
            }
            AuthCmd::RevokeRole(user, role) => {
                if self.enabled && *user == ROOT && *role == ROOT {
                    return Err(ErrorCode::InvalidAuthManagement);
                }
                let roles = self.users.get_mut(user).ok_or(ErrorCode::UserNotFound)?;
                if !roles.remove(role) {
                    return Err(ErrorCode::RoleNotGranted);
                }
            }
            AuthCmd::RoleAdd(name) => {
                if self.roles.contains_key(name) {
                    return Err(ErrorCode::RoleAlreadyExists);
                }
                self.roles.insert(*name, BTreeMap::new());
            }
            AuthCmd::RoleDelete(name) => {
                if self.enabled && *name == ROOT {
                    return Err(ErrorCode::InvalidAuthManagement);
                }
                self.roles.remove(name).ok_or(ErrorCode::RoleNotFound)?;
                for roles in self.users.values_mut() {
                    roles.remove(name);
                }
            }
            AuthCmd::GrantPermission { role, range, kind } => {
                let permissions = self.roles.get_mut(role).ok_or(ErrorCode::RoleNotFound)?;
                return Ok(permissions.insert(*range, *kind) != Some(*kind));
            }
            AuthCmd::RevokePermission { role, range } => {
                let permissions = self.roles.get_mut(role).ok_or(ErrorCode::RoleNotFound)?;
                permissions
                    .remove(range)
                    .ok_or(ErrorCode::PermissionNotGranted)?;
            }
            AuthCmd::Authenticate(name) => {
                if !self.enabled {
                    return Err(ErrorCode::AuthNotEnabled);
                }
                if !self.users.contains_key(name) {
                    return Err(ErrorCode::AuthFailed);
                }
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// What an operation reads and writes, as key-id spans.
#[derive(Default)]
struct Access {
    read: Vec<(KeyId, KeyId)>,
    write: Vec<(KeyId, KeyId)>,
}

impl Access {
    fn of(&mut self, op: &Op) {
        match op {
            Op::Range { lo, hi, .. } => self.read.push((*lo, *hi)),
            Op::Put { key, prev_kv, .. } => {
                self.write.push((*key, key + 1));
                if *prev_kv {
                    self.read.push((*key, key + 1));
                }
            }
            Op::Delete { lo, hi, prev_kv } => {
                self.write.push((*lo, *hi));
                if *prev_kv {
                    self.read.push((*lo, *hi));
                }
            }
            Op::Txn {
                compares,
                success,
                failure,
            } => {
                for compare in compares {
                    self.read.push((compare.key, compare.key + 1));
                }
                for inner in success.iter().chain(failure) {
                    self.of(inner);
                }
            }
            Op::LeaseGrant { .. }
            | Op::LeaseRevoke { .. }
            | Op::LeaseKeepAlive { .. }
            | Op::Compact { .. }
            | Op::Expire { .. }
            | Op::Auth(_) => {}
        }
    }
}

/// Whether `granted` (sorted by start) covers every id of `span`.
fn covered(span: (KeyId, KeyId), granted: &[(KeyId, KeyId)]) -> bool {
    let (mut at, end) = span;
    for &(lo, hi) in granted {
        if at >= end {
            break;
        }
        if lo > at {
            return false;
        }
        at = at.max(hi);
    }
    at >= end
}

#[cfg(test)]
mod tests {
    use super::covered;

    /// Goal: coverage over ids is a union of intervals, gaps refused. Method: a few cases.
    #[test]
    fn coverage_is_a_union_without_gaps() {
        assert!(covered((2, 5), &[(0, 3), (3, 6)]));
        assert!(covered((2, 5), &[(1, 4), (2, 5)]));
        assert!(!covered((2, 5), &[(0, 3), (4, 6)]));
        assert!(!covered((2, 5), &[]));
        assert!(covered((3, 3), &[]));
        assert!(!covered((0, 1), &[(1, 2)]));
    }
}
