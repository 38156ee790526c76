//! Auth in the member: credentials resolved when a request arrives, the user carried in the
//! proposal, and the permission check made again when the entry applies (etcd's rule: a
//! permission revoked between the proposal and the apply takes effect, `ErrAuthOldRevision`).
//!
//! What is checked: puts and deletes need write permission on their key or whole range, ranges
//! and compares read permission (a txn's every key, both branches), a previous value asked for
//! read permission too; watches need read permission when created; auth changes, membership
//! changes and leader transfers need the root role. The host's maintenance checks
//! (`AuthRequest::CheckCaller`: the root role, or a named user) are answered where they arrive.
//! A lease revoke, and a put that attaches a lease, also need write permission on every key
//! the lease holds when they apply (etcd's `checkLeasePuts`: a user who could not revoke the
//! lease must not attach more keys to it either). Lease grants and compactions are not checked;
//! the lease duties of the leader propose revokes with no user, which are never refused.

use super::proposal::Command;
use super::Member;
use crate::auth::{Access, AuthError, AuthInfo, AuthRequest, AuthResponse, Credentials, KeyRange};
use crate::kv::{DeleteRangeRequest, PutRequest, RequestError, RequestOp, Response, TxnRequest};
use crate::types::RequestId;

impl Member {
    /// Who a request runs as: nobody while auth is disabled (credentials are then ignored, as
    /// etcd ignores a token), otherwise the token's user or the certificate's, at the auth
    /// revision applied here now.
    pub(super) fn resolve_credentials(
        &mut self,
        credentials: Option<Credentials>,
    ) -> Result<Option<AuthInfo>, RequestError> {
        if !self.auth.is_enabled() {
            return Ok(None);
        }
        let user = match credentials {
            None => return Ok(None),
            Some(Credentials::Token(token)) => self
                .tokens
                .resolve(&token, self.now)
                .ok_or(RequestError::Auth(AuthError::InvalidAuthToken))?,
            Some(Credentials::User(user)) => user,
        };
        Ok(Some(AuthInfo {
            user,
            revision: self.auth.revision(),
        }))
    }

    /// Who a request without credentials runs as while auth is enabled: nobody, recorded so
    /// that the apply can refuse it (`user_empty`) where a check is due. Only a lease revoke
    /// uses it: other client commands without a user are refused when they apply anyway.
    pub(super) fn anonymous_user(&self) -> Option<AuthInfo> {
        self.auth.is_enabled().then(|| AuthInfo {
            user: String::new(),
            revision: self.auth.revision(),
        })
    }

    /// Wraps a client command with its user once auth is enabled, so the apply checks it.
    pub(super) fn as_user(&self, auth: Option<AuthInfo>, command: Command) -> Command {
        match auth {
            Some(auth) => Command::AsUser {
                auth,
                command: Box::new(command),
            },
            None => command,
        }
    }

    /// The apply-time check of a command run as `auth`.
    pub(super) fn authorize_at_apply(
        &self,
        auth: &AuthInfo,
        command: &Command,
    ) -> Result<(), RequestError> {
        let result = match command {
            // Auth changes check the root role in `apply_auth`, Authenticate nothing.
            Command::Auth(_) => Ok(()),
            command => match self.access_at_apply(command) {
                Some(access) => self.auth.check(Some(auth), &access),
                None => Ok(()),
            },
        };
        result.map_err(RequestError::Auth)
    }

    /// What a client command needs when it applies: its own keys, and the keys attached to the
    /// lease a put attaches or a revoke removes. `None` when nothing is checked at all: a
    /// revoke of a lease that holds no key (etcd checks neither the user nor the revision then).
    fn access_at_apply(&self, command: &Command) -> Option<Access> {
        let (mut access, lease) = match command {
            Command::LeaseRevoke { id } => (Access::default(), *id),
            Command::Put(put) => (command_access(command), put.lease),
            command => return Some(command_access(command)),
        };
        let keys = if crate::bug!(LeaseKeysUnchecked) {
            Vec::new()
        } else {
            self.lessor.keys(lease).unwrap_or_default()
        };
        if keys.is_empty() && access.write.is_empty() {
            return None;
        }
        access
            .write
            .extend(keys.iter().map(|key| KeyRange::key(key)));
        Some(access)
    }

    /// A check made where the request arrives (reads, watches, membership changes), against
    /// the auth store applied here.
    pub(super) fn authorize_now(
        &self,
        auth: Option<&AuthInfo>,
        access: &Access,
    ) -> Result<(), RequestError> {
        self.auth.check(auth, access).map_err(RequestError::Auth)
    }

    /// The root-role check for administrative requests that are not auth changes.
    pub(super) fn authorize_admin(&self, auth: Option<&AuthInfo>) -> Result<(), RequestError> {
        self.auth.check_admin(auth).map_err(RequestError::Auth)
    }

    /// The zoo's `PermissionCheckedOnlyAtRequest`: a client write's permissions checked where
    /// it arrives, against the auth store applied here, in place of the apply-time check.
    pub(super) fn checked_at_request_only(&self, command: &Command) -> Result<(), RequestError> {
        match command {
            Command::AsUser { auth, command } if !matches!(**command, Command::Auth(_)) => {
                match self.access_at_apply(command) {
                    Some(access) => self.authorize_now(Some(auth), &access),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// An Auth service request: the password hash, the status and the caller checks are
    /// answered from the store applied here; everything else goes through the log.
    pub(super) fn on_auth_request(
        &mut self,
        id: RequestId,
        request: AuthRequest,
        auth: Option<AuthInfo>,
    ) {
        if !request.is_answered_locally() {
            let command = self.as_user(auth, Command::Auth(request));
            self.propose_command(id, command);
            return;
        }
        let result = match &request {
            AuthRequest::PasswordHash { name } => {
                self.auth
                    .password_hash(name)
                    .map(|hash| AuthResponse::PasswordHash {
                        hash: hash.map(<[u8]>::to_vec),
                        auth_revision: self.auth.revision(),
                    })
            }
            AuthRequest::Status => Ok(AuthResponse::Status {
                enabled: self.auth.is_enabled(),
                auth_revision: self.auth.revision(),
            }),
            AuthRequest::CheckCaller { admin: true } => self
                .auth
                .check_admin(auth.as_ref())
                .map(|()| AuthResponse::Done),
            AuthRequest::CheckCaller { admin: false } => self
                .auth
                .check_named(auth.as_ref())
                .map(|()| AuthResponse::Done),
            other => unreachable!("{other:?} is not answered locally"),
        };
        let header = self.header();
        let result = result
            .map(|response| Response::Auth { header, response })
            .map_err(RequestError::Auth);
        self.out.reply.push((id, result));
    }

    /// Applies an Auth service request from the log.
    pub(super) fn apply_auth(
        &mut self,
        request: AuthRequest,
        auth: Option<&AuthInfo>,
    ) -> Result<Response, RequestError> {
        if request.needs_admin() {
            self.auth.check_admin(auth).map_err(RequestError::Auth)?;
        }
        let response = match &request {
            AuthRequest::Authenticate {
                name,
                token,
                checked_revision,
            } => self.apply_authenticate(name, token, *checked_revision),
            other => self.auth.apply(other),
        }
        .map_err(RequestError::Auth)?;
        match &request {
            AuthRequest::UserDelete { name } | AuthRequest::UserChangePassword { name, .. } => {
                self.tokens.revoke_user(name);
            }
            AuthRequest::Disable => self.tokens.clear(),
            _ => {}
        }
        Ok(Response::Auth {
            header: self.header(),
            response,
        })
    }

    /// Issues a token on every member (each on its own clock), if the user still exists and
    /// the store did not change since the host checked the password.
    fn apply_authenticate(
        &mut self,
        name: &str,
        token: &str,
        checked_revision: u64,
    ) -> Result<AuthResponse, AuthError> {
        if !self.auth.is_enabled() {
            return Err(AuthError::AuthNotEnabled);
        }
        if !self.auth.has_user(name) {
            return Err(AuthError::AuthFailed);
        }
        if checked_revision != self.auth.revision() {
            return Err(AuthError::AuthOldRevision);
        }
        assert!(!token.is_empty(), "the host issues a non-empty token");
        self.tokens
            .assign(token.to_string(), name.to_string(), self.now);
        Ok(AuthResponse::Token {
            token: token.to_string(),
        })
    }
}

/// What a command reads and writes.
pub(super) fn command_access(command: &Command) -> Access {
    let mut access = Access::default();
    match command {
        Command::Put(put) => put_access(put, &mut access),
        Command::DeleteRange(delete) => delete_access(delete, &mut access),
        Command::Txn(txn) => txn_access(txn, &mut access),
        Command::AsUser { command, .. } => return command_access(command),
        Command::Compact(_)
        | Command::LeaseGrant { .. }
        | Command::LeaseRevoke { .. }
        | Command::LeaseKeepAliveReset { .. }
        | Command::LeaseCheckpoint { .. }
        | Command::Auth(_) => {}
    }
    access
}

fn put_access(put: &PutRequest, access: &mut Access) {
    access.write.push(KeyRange::key(&put.key));
    if put.prev_kv {
        access.read.push(KeyRange::key(&put.key));
    }
}

fn delete_access(delete: &DeleteRangeRequest, access: &mut Access) {
    let range = KeyRange::range(&delete.key, &delete.range_end);
    if delete.prev_kv {
        access.read.push(range.clone());
    }
    access.write.push(range);
}

/// Every key a txn touches: its compares, and the operations of both branches (etcd checks
/// the branch that will not run too, so the outcome of the compares cannot leak).
fn txn_access(txn: &TxnRequest, access: &mut Access) {
    for compare in &txn.compare {
        access
            .read
            .push(KeyRange::range(&compare.key, &compare.range_end));
    }
    for op in txn.success.iter().chain(txn.failure.iter()) {
        match op {
            RequestOp::Range(range) => access
                .read
                .push(KeyRange::range(&range.key, &range.range_end)),
            RequestOp::Put(put) => put_access(put, access),
            RequestOp::DeleteRange(delete) => delete_access(delete, access),
            RequestOp::Txn(inner) => txn_access(inner, access),
        }
    }
}
