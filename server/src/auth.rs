//! Auth in the server: who a request says it runs as (`Caller`), password hashing, and the
//! Auth gRPC service. Every decision (who may do what, whether a token is live, whether the
//! auth store changed under a request) is the engine's: the service turns each RPC into an
//! `engine::auth::AuthRequest`, except that passwords are hashed (and checked against the
//! stored hash) here, before anything reaches the log, so no clear-text password is ever
//! replicated or written to disk.
//!
//! Passwords are hashed with bcrypt, as etcd hashes them, so etcd 3.5 clients that send a
//! pre-hashed password (`hashedPassword`) interoperate.

use engine::auth::{AuthError, AuthRequest, AuthResponse, Credentials, KeyRange, Permission};
use engine::kv::{Request, RequestError, Response};
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::convert;
use crate::grpc::Services;
use crate::proto::authpb;
use crate::proto::etcdserverpb as pb;

/// etcd's default `--bcrypt-cost`. Each unit doubles the time a hash takes (about 50 ms at 10
/// on one core), which is what makes a stolen store slow to brute-force; tests lower it to
/// `BCRYPT_COST_MIN` through `ServeConfig::bcrypt_cost` to stay fast.
pub const BCRYPT_COST_DEFAULT: u32 = 10;

/// bcrypt's lowest cost (tests use it: each hash then takes well under a millisecond).
pub const BCRYPT_COST_MIN: u32 = 4;
/// bcrypt's highest cost.
pub const BCRYPT_COST_MAX: u32 = 31;

/// Random letters in a token: 32 of 52 letters are 182 bits, beyond guessing.
const TOKEN_LETTERS_COUNT: usize = 32;

/// How often Authenticate retries when the auth store changed between the password check and
/// the token's apply (etcd retries likewise); past that the client sees the old-revision error.
const AUTHENTICATE_ATTEMPTS_MAX: usize = 3;

/// Who a client request says it runs as, taken from what arrived with it: etcd's `token`
/// metadata (or `authorization`, which etcd's gateway and some clients send). The one place
/// the server decides this; a verified client certificate's common name would join it here
/// (etcd prefers a token to the certificate when both come).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    credentials: Option<Credentials>,
}

impl Caller {
    /// The caller of a gRPC request: its token if it carries one, else, as etcd does, the
    /// Common Name of the client certificate verified under `--client-cert-auth`.
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        let caller = Caller::from_metadata(request.metadata());
        if caller.credentials.is_some() {
            return caller;
        }
        Caller {
            credentials: crate::tls::common_name(request)
                .filter(|name| !name.is_empty())
                .map(|name| Credentials::User(name.to_string())),
        }
    }

    /// The caller named by gRPC metadata.
    pub fn from_metadata(metadata: &MetadataMap) -> Caller {
        let token = ["token", "authorization"]
            .iter()
            .find_map(|key| metadata.get(*key))
            .and_then(|value| value.to_str().ok())
            .filter(|token| !token.is_empty());
        Caller {
            credentials: token.map(|token| Credentials::Token(token.to_string())),
        }
    }

    /// A caller with no credentials: the member's own requests, and tests.
    pub fn anonymous() -> Caller {
        Caller::default()
    }

    /// The credentials handed to the member with the request, if any.
    pub fn credentials(&self) -> Option<Credentials> {
        self.credentials.clone()
    }
}

/// The server's auth settings.
#[derive(Clone, Copy, Debug)]
pub struct AuthSettings {
    /// bcrypt's cost for new password hashes (`--bcrypt-cost`).
    pub bcrypt_cost: u32,
}

/// A hash of `password` with a fresh salt, off the async threads (bcrypt is slow on purpose).
async fn hash_password(password: String, cost: u32) -> Result<Vec<u8>, Status> {
    #[cfg(not(madsim))]
    let hashed = blocking(move || bcrypt::hash(password, cost)).await;
    // bcrypt draws its salt from the operating system, which madsim does not see on Linux;
    // under madsim the salt comes from the run's seed, so a seed replays byte for byte.
    #[cfg(madsim)]
    let hashed = {
        let mut salt = [0_u8; 16];
        random_bytes(&mut salt)?;
        blocking(move || {
            bcrypt::hash_with_salt(password, cost, salt).map(|parts| parts.to_string())
        })
        .await
    };
    hashed
        .map(String::into_bytes)
        .map_err(|error| Status::internal(format!("etcdserver: cannot hash the password: {error}")))
}

/// Whether `password` matches `hash`. A hash that does not parse matches nothing.
async fn password_matches(password: String, hash: Vec<u8>) -> bool {
    blocking(move || {
        let hash = String::from_utf8_lossy(&hash);
        bcrypt::verify(password, &hash).unwrap_or(false)
    })
    .await
}

/// Runs CPU-heavy `work` where it does not hold up the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(work)
            .await
            .expect("password hashing does not panic")
    }
    // madsim runs one thread; the hash costs virtual time nothing.
    #[cfg(madsim)]
    {
        work()
    }
}

/// A new unguessable token, from the operating system's random source (under madsim, from the
/// run's seed).
fn new_token() -> Result<String, Status> {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut random = [0_u8; TOKEN_LETTERS_COUNT];
    random_bytes(&mut random)?;
    // 256 is not a multiple of 52: the first 48 letters are a little likelier, which costs a
    // fraction of a bit each and leaves well over 128 bits.
    let token = random
        .iter()
        .map(|byte| char::from(LETTERS[usize::from(*byte) % LETTERS.len()]))
        .collect();
    Ok(token)
}

/// Fills `bytes` from the operating system's random source; under madsim from the run's seed
/// (madsim cannot intercept the `getrandom` crate's call on Linux).
fn random_bytes(bytes: &mut [u8]) -> Result<(), Status> {
    #[cfg(not(madsim))]
    {
        getrandom::fill(bytes)
            .map_err(|error| Status::internal(format!("etcdserver: no randomness: {error}")))
    }
    #[cfg(madsim)]
    {
        use madsim::rand::Rng as _;
        madsim::rand::thread_rng().fill(bytes);
        Ok(())
    }
}

fn auth_status(error: AuthError) -> Status {
    convert::status(&RequestError::Auth(error))
}

fn unexpected(response: &AuthResponse) -> Status {
    Status::internal(format!("etcdserver: unexpected answer {response:?}"))
}

impl Services {
    /// Sends an Auth service request as `caller`; the engine's answer and the header.
    async fn auth_call(
        &self,
        caller: &Caller,
        request: AuthRequest,
    ) -> Result<(Option<pb::ResponseHeader>, AuthResponse), Status> {
        match self.call(caller, Request::Auth(request)).await? {
            Response::Auth { header, response } => Ok((convert::header(&header), response)),
            other => Err(Status::internal(format!(
                "etcdserver: unexpected answer {other:?}"
            ))),
        }
    }

    /// A change that answers nothing but its header.
    async fn auth_change(
        &self,
        caller: &Caller,
        request: AuthRequest,
    ) -> Result<Option<pb::ResponseHeader>, Status> {
        match self.auth_call(caller, request).await? {
            (header, AuthResponse::Done) => Ok(header),
            (_, other) => Err(unexpected(&other)),
        }
    }

    /// etcd's Authenticate: the password checked here against the stored hash, then a token
    /// issued through the log. An unknown user, a user without a password and a wrong
    /// password give the same error after the same work (a dummy hash is checked when there
    /// is no real one), so neither the answer nor its time tells them apart.
    async fn authenticate(
        &self,
        name: String,
        password: String,
    ) -> Result<pb::AuthenticateResponse, Status> {
        let anyone = Caller::anonymous();
        for _ in 0..AUTHENTICATE_ATTEMPTS_MAX {
            let enabled = match self.auth_call(&anyone, AuthRequest::Status).await? {
                (_, AuthResponse::Status { enabled, .. }) => enabled,
                (_, other) => return Err(unexpected(&other)),
            };
            if !enabled {
                return Err(auth_status(AuthError::AuthNotEnabled));
            }
            let stored = self
                .auth_call(&anyone, AuthRequest::PasswordHash { name: name.clone() })
                .await;
            let (hash, checked_revision) = match stored {
                Ok((
                    _,
                    AuthResponse::PasswordHash {
                        hash,
                        auth_revision,
                    },
                )) => (hash, auth_revision),
                Ok((_, other)) => return Err(unexpected(&other)),
                Err(status) if status.message() == AuthError::AuthFailed.etcd_text() => (None, 0),
                Err(status) => return Err(status),
            };
            let matches = match hash {
                Some(hash) => password_matches(password.clone(), hash).await,
                None => {
                    let _spent_the_same_time =
                        password_matches(password.clone(), self.dummy_hash().await?).await;
                    false
                }
            };
            if !matches {
                return Err(auth_status(AuthError::AuthFailed));
            }
            let token = new_token()?;
            let request = AuthRequest::Authenticate {
                name: name.clone(),
                token,
                checked_revision,
            };
            match self.auth_call(&anyone, request).await {
                Ok((header, AuthResponse::Token { token })) => {
                    return Ok(pb::AuthenticateResponse { header, token })
                }
                Ok((_, other)) => return Err(unexpected(&other)),
                Err(status) if status.message() == AuthError::AuthOldRevision.etcd_text() => {
                    continue
                }
                Err(status) => return Err(status),
            }
        }
        Err(auth_status(AuthError::AuthOldRevision))
    }

    /// A hash of nothing anyone knows, at the configured cost, made once.
    async fn dummy_hash(&self) -> Result<Vec<u8>, Status> {
        if let Some(hash) = self.info.auth_dummy_hash.get() {
            return Ok(hash.clone());
        }
        let secret = new_token()?;
        let hash = hash_password(secret, self.info.auth.bcrypt_cost).await?;
        Ok(self.info.auth_dummy_hash.get_or_init(|| hash).clone())
    }

    /// The hash a user's new password is stored as: the client's own bcrypt hash (etcd 3.5's
    /// `hashedPassword`) or one made here.
    async fn password_hash(&self, password: String, hashed: String) -> Result<Vec<u8>, Status> {
        if !hashed.is_empty() {
            return Ok(hashed.into_bytes());
        }
        hash_password(password, self.info.auth.bcrypt_cost).await
    }
}

/// etcd's permission type to the engine's.
fn permission_kind(kind: authpb::permission::Type) -> engine::auth::PermissionKind {
    match kind {
        authpb::permission::Type::Read => engine::auth::PermissionKind::Read,
        authpb::permission::Type::Write => engine::auth::PermissionKind::Write,
        authpb::permission::Type::Readwrite => engine::auth::PermissionKind::ReadWrite,
    }
}

fn permission_out(permission: &Permission) -> authpb::Permission {
    let kind = match permission.kind {
        engine::auth::PermissionKind::Read => authpb::permission::Type::Read,
        engine::auth::PermissionKind::Write => authpb::permission::Type::Write,
        engine::auth::PermissionKind::ReadWrite => authpb::permission::Type::Readwrite,
    };
    authpb::Permission {
        perm_type: kind as i32,
        key: permission.range.key.clone(),
        range_end: permission.range.range_end.clone(),
    }
}

type Answer<T> = Result<tonic::Response<T>, Status>;

/// Wraps a message as the RPC's answer.
fn answer<T>(message: T) -> Answer<T> {
    Ok(tonic::Response::new(message))
}

#[tonic::async_trait]
impl pb::auth_server::Auth for Services {
    async fn auth_enable(
        &self,
        request: tonic::Request<pb::AuthEnableRequest>,
    ) -> Answer<pb::AuthEnableResponse> {
        let header = self
            .auth_change(&Caller::of(&request), AuthRequest::Enable)
            .await?;
        answer(pb::AuthEnableResponse { header })
    }

    async fn auth_disable(
        &self,
        request: tonic::Request<pb::AuthDisableRequest>,
    ) -> Answer<pb::AuthDisableResponse> {
        let header = self
            .auth_change(&Caller::of(&request), AuthRequest::Disable)
            .await?;
        answer(pb::AuthDisableResponse { header })
    }

    async fn auth_status(
        &self,
        request: tonic::Request<pb::AuthStatusRequest>,
    ) -> Answer<pb::AuthStatusResponse> {
        match self
            .auth_call(&Caller::of(&request), AuthRequest::Status)
            .await?
        {
            (
                header,
                AuthResponse::Status {
                    enabled,
                    auth_revision,
                },
            ) => answer(pb::AuthStatusResponse {
                header,
                enabled,
                auth_revision,
            }),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn authenticate(
        &self,
        request: tonic::Request<pb::AuthenticateRequest>,
    ) -> Answer<pb::AuthenticateResponse> {
        let request = request.into_inner();
        answer(Services::authenticate(self, request.name, request.password).await?)
    }

    async fn user_add(
        &self,
        request: tonic::Request<pb::AuthUserAddRequest>,
    ) -> Answer<pb::AuthUserAddResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        if request.name.is_empty() {
            return Err(auth_status(AuthError::UserEmpty));
        }
        let no_password = request.options.is_some_and(|options| options.no_password);
        let password_hash = match no_password {
            true => None,
            false => Some(
                self.password_hash(request.password, request.hashed_password)
                    .await?,
            ),
        };
        let change = AuthRequest::UserAdd {
            name: request.name,
            password_hash,
        };
        answer(pb::AuthUserAddResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn user_get(
        &self,
        request: tonic::Request<pb::AuthUserGetRequest>,
    ) -> Answer<pb::AuthUserGetResponse> {
        let caller = Caller::of(&request);
        let name = request.into_inner().name;
        match self
            .auth_call(&caller, AuthRequest::UserGet { name })
            .await?
        {
            (header, AuthResponse::User { roles }) => {
                answer(pb::AuthUserGetResponse { header, roles })
            }
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn user_list(
        &self,
        request: tonic::Request<pb::AuthUserListRequest>,
    ) -> Answer<pb::AuthUserListResponse> {
        match self
            .auth_call(&Caller::of(&request), AuthRequest::UserList)
            .await?
        {
            (header, AuthResponse::Names { names }) => answer(pb::AuthUserListResponse {
                header,
                users: names,
            }),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn user_delete(
        &self,
        request: tonic::Request<pb::AuthUserDeleteRequest>,
    ) -> Answer<pb::AuthUserDeleteResponse> {
        let caller = Caller::of(&request);
        let change = AuthRequest::UserDelete {
            name: request.into_inner().name,
        };
        answer(pb::AuthUserDeleteResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn user_change_password(
        &self,
        request: tonic::Request<pb::AuthUserChangePasswordRequest>,
    ) -> Answer<pb::AuthUserChangePasswordResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let password_hash = self
            .password_hash(request.password, request.hashed_password)
            .await?;
        let change = AuthRequest::UserChangePassword {
            name: request.name,
            password_hash,
        };
        answer(pb::AuthUserChangePasswordResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn user_grant_role(
        &self,
        request: tonic::Request<pb::AuthUserGrantRoleRequest>,
    ) -> Answer<pb::AuthUserGrantRoleResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let change = AuthRequest::UserGrantRole {
            user: request.user,
            role: request.role,
        };
        answer(pb::AuthUserGrantRoleResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn user_revoke_role(
        &self,
        request: tonic::Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Answer<pb::AuthUserRevokeRoleResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let change = AuthRequest::UserRevokeRole {
            user: request.name,
            role: request.role,
        };
        answer(pb::AuthUserRevokeRoleResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn role_add(
        &self,
        request: tonic::Request<pb::AuthRoleAddRequest>,
    ) -> Answer<pb::AuthRoleAddResponse> {
        let caller = Caller::of(&request);
        let change = AuthRequest::RoleAdd {
            name: request.into_inner().name,
        };
        answer(pb::AuthRoleAddResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn role_get(
        &self,
        request: tonic::Request<pb::AuthRoleGetRequest>,
    ) -> Answer<pb::AuthRoleGetResponse> {
        let caller = Caller::of(&request);
        let name = request.into_inner().role;
        match self
            .auth_call(&caller, AuthRequest::RoleGet { name })
            .await?
        {
            (header, AuthResponse::Role { permissions }) => answer(pb::AuthRoleGetResponse {
                header,
                perm: permissions.iter().map(permission_out).collect(),
            }),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn role_list(
        &self,
        request: tonic::Request<pb::AuthRoleListRequest>,
    ) -> Answer<pb::AuthRoleListResponse> {
        match self
            .auth_call(&Caller::of(&request), AuthRequest::RoleList)
            .await?
        {
            (header, AuthResponse::Names { names }) => answer(pb::AuthRoleListResponse {
                header,
                roles: names,
            }),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn role_delete(
        &self,
        request: tonic::Request<pb::AuthRoleDeleteRequest>,
    ) -> Answer<pb::AuthRoleDeleteResponse> {
        let caller = Caller::of(&request);
        let change = AuthRequest::RoleDelete {
            name: request.into_inner().role,
        };
        answer(pb::AuthRoleDeleteResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn role_grant_permission(
        &self,
        request: tonic::Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Answer<pb::AuthRoleGrantPermissionResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let Some(perm) = request.perm else {
            return Err(Status::invalid_argument("etcdserver: permission not given"));
        };
        let permission = Permission {
            kind: permission_kind(perm.perm_type()),
            range: KeyRange::range(&perm.key, &perm.range_end),
        };
        let change = AuthRequest::RoleGrantPermission {
            role: request.name,
            permission,
        };
        answer(pb::AuthRoleGrantPermissionResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }

    async fn role_revoke_permission(
        &self,
        request: tonic::Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Answer<pb::AuthRoleRevokePermissionResponse> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let range = KeyRange::range(&request.key, &request.range_end);
        let change = AuthRequest::RoleRevokePermission {
            role: request.role,
            range,
        };
        answer(pb::AuthRoleRevokePermissionResponse {
            header: self.auth_change(&caller, change).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The caller's token from metadata, and hashes that check.

    use super::*;

    #[test]
    fn the_token_metadata_names_the_caller_and_token_wins_over_authorization() {
        let mut metadata = MetadataMap::new();
        assert_eq!(Caller::from_metadata(&metadata).credentials(), None);
        metadata.insert("authorization", "from-gateway".parse().expect("ascii"));
        assert_eq!(
            Caller::from_metadata(&metadata).credentials(),
            Some(Credentials::Token("from-gateway".into()))
        );
        metadata.insert("token", "from-client".parse().expect("ascii"));
        assert_eq!(
            Caller::from_metadata(&metadata).credentials(),
            Some(Credentials::Token("from-client".into()))
        );
    }

    #[test]
    fn tokens_are_long_letters_and_differ() {
        let (a, b) = (new_token().expect("random"), new_token().expect("random"));
        assert_eq!(a.len(), TOKEN_LETTERS_COUNT);
        assert!(a.chars().all(|letter| letter.is_ascii_alphabetic()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn a_hash_matches_its_password_only() {
        let hash = hash_password("secret".into(), BCRYPT_COST_MIN)
            .await
            .expect("hashes");
        assert!(password_matches("secret".into(), hash.clone()).await);
        assert!(!password_matches("Secret".into(), hash.clone()).await);
        assert!(!password_matches("secret".into(), b"not a hash".to_vec()).await);
        let again = hash_password("secret".into(), BCRYPT_COST_MIN)
            .await
            .expect("hashes");
        assert_ne!(hash, again, "each hash has its own salt");
    }
}
