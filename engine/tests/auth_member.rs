//! Auth through whole members: tokens issued by `Authenticate`, every request checked when it
//! applies (a permission revoked after a write was proposed, but before it applied, refuses
//! the write with `auth_old_revision`), reads checked when served, the auth store carried by
//! snapshots and rebuilt by recovery, and a proptest that nothing unauthorised is ever applied,
//! against a model of etcd's rules.
//!
//! The harness is one member on the in-memory disk; disk operations wait until `settle`, so
//! every request of a batch is resolved against the same applied state and the batch applies
//! in submission order, which is how proposals race with auth changes.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::MemDisk;
use engine::api::{Actions, DiskOp, DiskOpId, Input};
use engine::auth::{AuthRequest, AuthResponse, Credentials, KeyRange, Permission, PermissionKind};
use engine::kv::{
    Compare, CompareResult, CompareTarget, LeaseGrantRequest, PutRequest, RangeRequest, Request,
    RequestError, RequestOp, Response, TxnRequest,
};
use engine::member::{Member, MemberConfig};
use engine::types::{Duration, Instant, LeaseId, NodeId, RequestId};
use proptest::prelude::*;

const STEP: Duration = Duration::from_millis(10);

struct Single {
    member: Member,
    disk: MemDisk,
    held: Vec<(DiskOpId, DiskOp)>,
    now: Instant,
    next_request: u64,
    replies: BTreeMap<RequestId, Result<Response, RequestError>>,
    snapshot_interval_entries: u64,
    incarnation: u64,
}

impl Single {
    fn new(snapshot_interval_entries: u64) -> Single {
        let disk = MemDisk::new();
        let member = Single::start(&disk, snapshot_interval_entries, 1);
        let mut single = Single {
            member,
            disk,
            held: Vec::new(),
            now: Instant(0),
            next_request: 0,
            replies: BTreeMap::new(),
            snapshot_interval_entries,
            incarnation: 1,
        };
        single.step(Input::Timer);
        for _ in 0..1000 {
            single.advance();
            if single.member.status().is_leader {
                return single;
            }
        }
        panic!("a single member elects itself");
    }

    fn start(disk: &MemDisk, snapshot_interval_entries: u64, incarnation: u64) -> Member {
        let mut config = MemberConfig::new(NodeId(1), vec![NodeId(1)], 7 + incarnation);
        config.snapshot_interval_entries = snapshot_interval_entries;
        config.auth_token_ttl = Duration::from_secs(5);
        Member::new(config, disk.image()).expect("recovers").0
    }

    fn step(&mut self, input: Input) {
        let actions: Actions = self.member.step(self.now, input);
        assert!(actions.halt.is_none());
        self.held.extend(actions.disk);
        for (id, result) in actions.reply {
            assert!(self.replies.insert(id, result).is_none());
        }
    }

    /// Performs every held disk operation and reports it done, until nothing is held.
    fn settle(&mut self) {
        while !self.held.is_empty() {
            for (op, disk_op) in std::mem::take(&mut self.held) {
                self.disk.apply(&disk_op);
                self.step(Input::DiskDone { op, result: Ok(()) });
            }
        }
    }

    fn advance(&mut self) {
        self.now = self.now + STEP;
        self.step(Input::Timer);
        self.settle();
    }

    /// Submits a request now; its answer comes after `settle`.
    fn submit(&mut self, request: Request, credentials: Option<Credentials>) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        match credentials {
            Some(credentials) => self.step(Input::RequestAs {
                id,
                request,
                credentials,
            }),
            None => self.step(Input::Request { id, request }),
        }
        id
    }

    fn answer(&mut self, id: RequestId) -> Result<Response, RequestError> {
        self.settle();
        self.replies.remove(&id).expect("answered")
    }

    fn call(
        &mut self,
        request: Request,
        credentials: Option<Credentials>,
    ) -> Result<Response, RequestError> {
        let id = self.submit(request, credentials);
        self.answer(id)
    }

    fn admin(&mut self, request: AuthRequest) {
        let root = Some(Credentials::User("root".into()));
        let result = self.call(Request::Auth(request.clone()), root);
        assert!(result.is_ok(), "{request:?}: {result:?}");
    }

    /// A crash and a restart from what the disk holds.
    fn restart(&mut self) {
        self.settle();
        self.incarnation += 1;
        self.member = Single::start(&self.disk, self.snapshot_interval_entries, self.incarnation);
        self.step(Input::Timer);
        for _ in 0..1000 {
            self.advance();
            if self.member.status().is_leader {
                return;
            }
        }
        panic!("the member is leader again");
    }
}

fn put(key: &str, value: &str) -> Request {
    Request::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

fn get(key: &str) -> Request {
    Request::Range(RangeRequest {
        key: key.into(),
        ..RangeRequest::default()
    })
}

fn user(name: &str) -> Option<Credentials> {
    Some(Credentials::User(name.into()))
}

fn auth_error(result: &Result<Response, RequestError>) -> Option<&'static str> {
    match result {
        Err(RequestError::Auth(error)) => Some(error.code()),
        _ => None,
    }
}

/// Root, and alice with read-write on `a/`, set up and enabled.
fn with_alice(single: &mut Single) {
    single.admin(AuthRequest::UserAdd {
        name: "root".into(),
        password_hash: Some(b"root-hash".to_vec()),
    });
    single.admin(AuthRequest::UserGrantRole {
        user: "root".into(),
        role: "root".into(),
    });
    single.admin(AuthRequest::UserAdd {
        name: "alice".into(),
        password_hash: Some(b"alice-hash".to_vec()),
    });
    single.admin(AuthRequest::RoleAdd { name: "app".into() });
    single.admin(AuthRequest::RoleGrantPermission {
        role: "app".into(),
        permission: Permission {
            kind: PermissionKind::ReadWrite,
            range: KeyRange::range(b"a/", b"a0"),
        },
    });
    single.admin(AuthRequest::UserGrantRole {
        user: "alice".into(),
        role: "app".into(),
    });
    single.admin(AuthRequest::Enable);
}

#[test]
fn a_token_lets_its_user_in_until_it_expires_and_a_bad_one_never() {
    let mut single = Single::new(10_000);
    with_alice(&mut single);
    // The host checks the password against this hash and the revision it was read at.
    let hash = single.call(
        Request::Auth(AuthRequest::PasswordHash {
            name: "alice".into(),
        }),
        None,
    );
    let Ok(Response::Auth {
        response:
            AuthResponse::PasswordHash {
                hash,
                auth_revision,
            },
        ..
    }) = hash
    else {
        panic!("password hash: {hash:?}");
    };
    assert_eq!(hash.as_deref(), Some(&b"alice-hash"[..]));
    let unknown = single.call(
        Request::Auth(AuthRequest::PasswordHash {
            name: "mallory".into(),
        }),
        None,
    );
    assert_eq!(auth_error(&unknown), Some("auth_failed"));
    let login = AuthRequest::Authenticate {
        name: "alice".into(),
        token: "tok-1".into(),
        checked_revision: auth_revision,
    };
    assert!(single.call(Request::Auth(login), None).is_ok());
    let token = || Some(Credentials::Token("tok-1".into()));
    assert!(single.call(put("a/1", "v"), token()).is_ok());
    let denied = single.call(put("b/1", "v"), token());
    assert_eq!(auth_error(&denied), Some("permission_denied"));
    let forged = single.call(put("a/1", "v"), Some(Credentials::Token("forged".into())));
    assert_eq!(auth_error(&forged), Some("invalid_auth_token"));
    let anonymous = single.call(get("a/1"), None);
    assert_eq!(auth_error(&anonymous), Some("user_empty"));
    // Idle past the TTL (5 s here): the token is gone.
    for _ in 0..600 {
        single.advance();
    }
    let expired = single.call(get("a/1"), token());
    assert_eq!(auth_error(&expired), Some("invalid_auth_token"));
    // A login checked before a change is refused: the password may have changed meanwhile.
    let stale = AuthRequest::Authenticate {
        name: "alice".into(),
        token: "tok-2".into(),
        checked_revision: auth_revision - 1,
    };
    let stale = single.call(Request::Auth(stale), None);
    assert_eq!(auth_error(&stale), Some("auth_old_revision"));
}

/// Goal: the maintenance checks (`CheckCaller`) follow etcd's `IsAdminPermitted` and
/// `requireAuthInfo`, resolving tokens in the member, and are answered in the step they arrive
/// in, with nothing written. Method: every kind of caller, before and after auth is enabled.
#[test]
fn maintenance_checks_need_the_root_role_or_a_named_user_and_write_nothing() {
    let mut single = Single::new(10_000);
    let check = |single: &mut Single, admin: bool, credentials: Option<Credentials>| {
        let id = single.submit(
            Request::Auth(AuthRequest::CheckCaller { admin }),
            credentials,
        );
        assert!(single.held.is_empty(), "a check writes nothing");
        let answer = single.replies.remove(&id).expect("answered at once");
        match answer {
            Ok(Response::Auth {
                response: AuthResponse::Done,
                ..
            }) => "allowed",
            other => auth_error(&other).unwrap_or_else(|| panic!("{other:?}")),
        }
    };
    // Auth disabled: anyone, even with a token no member issued.
    let forged = || Some(Credentials::Token("forged".into()));
    assert_eq!(check(&mut single, true, None), "allowed");
    assert_eq!(check(&mut single, true, forged()), "allowed");
    assert_eq!(check(&mut single, false, None), "allowed");
    with_alice(&mut single);
    assert_eq!(check(&mut single, true, user("root")), "allowed");
    assert_eq!(check(&mut single, true, user("alice")), "permission_denied");
    assert_eq!(check(&mut single, true, user("mallory")), "user_not_found");
    assert_eq!(check(&mut single, true, None), "user_empty");
    assert_eq!(check(&mut single, true, forged()), "invalid_auth_token");
    assert_eq!(check(&mut single, false, user("alice")), "allowed");
    assert_eq!(check(&mut single, false, None), "user_empty");
    assert_eq!(check(&mut single, false, forged()), "invalid_auth_token");
    // A token is resolved to its user: alice's token is no administrator's, root's is.
    let hash = single.call(
        Request::Auth(AuthRequest::PasswordHash {
            name: "root".into(),
        }),
        None,
    );
    let Ok(Response::Auth {
        response: AuthResponse::PasswordHash { auth_revision, .. },
        ..
    }) = hash
    else {
        panic!("password hash: {hash:?}");
    };
    for (name, token) in [("alice", "tok-alice"), ("root", "tok-root")] {
        let login = AuthRequest::Authenticate {
            name: name.into(),
            token: token.into(),
            checked_revision: auth_revision,
        };
        assert!(single.call(Request::Auth(login), None).is_ok());
    }
    let token = |token: &str| Some(Credentials::Token(token.into()));
    assert_eq!(
        check(&mut single, true, token("tok-alice")),
        "permission_denied"
    );
    assert_eq!(check(&mut single, false, token("tok-alice")), "allowed");
    assert_eq!(check(&mut single, true, token("tok-root")), "allowed");
}

#[test]
fn a_permission_revoked_before_the_apply_refuses_a_write_proposed_before_it() {
    let mut single = Single::new(10_000);
    with_alice(&mut single);
    // The revocation and the write are proposed in one batch: the write was authorised at
    // the revision before the revocation, which applies first.
    let revoke = AuthRequest::UserRevokeRole {
        user: "alice".into(),
        role: "app".into(),
    };
    let revoked = single.submit(Request::Auth(revoke), user("root"));
    let write = single.submit(put("a/raced", "v"), user("alice"));
    assert!(single.answer(revoked).is_ok());
    let refused = single.answer(write);
    assert_eq!(auth_error(&refused), Some("auth_old_revision"));
    let read = single.call(get("a/raced"), user("root"));
    let Ok(Response::Range(range)) = read else {
        panic!("root reads: {read:?}");
    };
    assert!(range.kvs.is_empty(), "the refused write took no effect");
    // Proposed after the revocation applied: plainly denied.
    let denied = single.call(put("a/later", "v"), user("alice"));
    assert_eq!(auth_error(&denied), Some("permission_denied"));
}

/// Goal: a lease answers for the keys it holds (etcd's `checkLeasePuts`): revoking it, or
/// attaching it to another key, needs write permission on every key it holds when it applies.
/// Method: root attaches a lease to a key alice may not write; alice may neither revoke it nor
/// put with it, a client without credentials gets `user_empty`; alice's own lease, and a lease
/// that holds no key, are hers (and anyone's) to revoke.
#[test]
fn a_lease_answers_for_the_keys_it_holds() {
    let mut single = Single::new(10_000);
    with_alice(&mut single);
    let grant = |id: i64| {
        Request::LeaseGrant(LeaseGrantRequest {
            ttl_seconds: 60,
            id: LeaseId(id),
        })
    };
    let revoke = |id: i64| Request::LeaseRevoke { id: LeaseId(id) };
    let leased_put = |key: &str, lease: i64| {
        Request::Put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease: LeaseId(lease),
            ..PutRequest::default()
        })
    };
    assert!(single.call(grant(1), user("root")).is_ok());
    assert!(single.call(leased_put("b/root", 1), user("root")).is_ok());
    let denied = single.call(revoke(1), user("alice"));
    assert_eq!(auth_error(&denied), Some("permission_denied"));
    let anonymous = single.call(revoke(1), None);
    assert_eq!(auth_error(&anonymous), Some("user_empty"));
    let attach = single.call(leased_put("a/mine", 1), user("alice"));
    assert_eq!(auth_error(&attach), Some("permission_denied"));
    let read = single.call(get("b/root"), user("root"));
    let Ok(Response::Range(range)) = read else {
        panic!("root reads: {read:?}");
    };
    assert_eq!(range.kvs.len(), 1, "the refused revokes took no effect");

    // Alice's own lease on her own keys is hers to revoke; a lease without keys is anyone's.
    assert!(single.call(grant(2), user("alice")).is_ok());
    assert!(single.call(leased_put("a/mine", 2), user("alice")).is_ok());
    assert!(single.call(revoke(2), user("alice")).is_ok());
    assert!(single.call(grant(3), user("alice")).is_ok());
    assert!(single.call(revoke(3), None).is_ok());
    assert!(single.call(revoke(1), user("root")).is_ok());
    let read = single.call(get("b/root"), user("root"));
    let Ok(Response::Range(range)) = read else {
        panic!("root reads: {read:?}");
    };
    assert!(range.kvs.is_empty(), "root's revoke deleted the key");
}

#[test]
fn a_txn_is_checked_on_every_key_of_both_branches_and_its_compares() {
    let mut single = Single::new(10_000);
    with_alice(&mut single);
    let txn = |compare_key: &str, failure_key: &str| {
        Request::Txn(TxnRequest {
            compare: vec![Compare {
                key: compare_key.into(),
                range_end: Vec::new(),
                result: CompareResult::Equal,
                target: CompareTarget::Version(0),
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: b"a/t".to_vec(),
                value: b"1".to_vec(),
                ..PutRequest::default()
            })],
            failure: vec![RequestOp::Put(PutRequest {
                key: failure_key.into(),
                value: b"1".to_vec(),
                ..PutRequest::default()
            })],
        })
    };
    assert!(single.call(txn("a/c", "a/f"), user("alice")).is_ok());
    let branch = single.call(txn("a/c", "z/f"), user("alice"));
    assert_eq!(auth_error(&branch), Some("permission_denied"));
    let compare = single.call(txn("z/c", "a/f"), user("alice"));
    assert_eq!(auth_error(&compare), Some("permission_denied"));
    // A range across the grant's end is denied as a whole.
    let wide = Request::Range(RangeRequest {
        key: b"a/".to_vec(),
        range_end: b"b".to_vec(),
        ..RangeRequest::default()
    });
    assert_eq!(
        auth_error(&single.call(wide, user("alice"))),
        Some("permission_denied")
    );
}

#[test]
fn the_auth_store_survives_snapshots_and_restarts() {
    // Snapshots every 4 entries: the auth changes end up inside a snapshot, not only the WAL.
    let mut single = Single::new(4);
    with_alice(&mut single);
    for index in 0..10 {
        assert!(single
            .call(put(&format!("a/{index}"), "v"), user("alice"))
            .is_ok());
    }
    let before = single.member.auth_store().clone();
    single.restart();
    assert_eq!(single.member.auth_store(), &before);
    assert!(single.member.auth_store().is_enabled());
    assert!(single.call(put("a/after", "v"), user("alice")).is_ok());
    let denied = single.call(put("b/after", "v"), user("alice"));
    assert_eq!(auth_error(&denied), Some("permission_denied"));
}

/// One step of the proptest: an auth change by root, or a put by one of the users.
#[derive(Clone, Debug)]
enum Action {
    Grant {
        role: usize,
        prefix: usize,
        kind: usize,
    },
    Revoke {
        role: usize,
        prefix: usize,
    },
    GrantRole {
        user: usize,
        role: usize,
    },
    RevokeRole {
        user: usize,
        role: usize,
    },
    Enable(bool),
    Put {
        user: usize,
        prefix: usize,
    },
}

const USERS: [&str; 3] = ["u0", "u1", "u2"];
const ROLES: [&str; 2] = ["r0", "r1"];
const PREFIXES: [&str; 3] = ["p0/", "p1/", "p2/"];
const KINDS: [PermissionKind; 3] = [
    PermissionKind::Read,
    PermissionKind::Write,
    PermissionKind::ReadWrite,
];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..2usize, 0..3usize, 0..3usize).prop_map(|(role, prefix, kind)| Action::Grant {
            role,
            prefix,
            kind
        }),
        (0..2usize, 0..3usize).prop_map(|(role, prefix)| Action::Revoke { role, prefix }),
        (0..3usize, 0..2usize).prop_map(|(user, role)| Action::GrantRole { user, role }),
        (0..3usize, 0..2usize).prop_map(|(user, role)| Action::RevokeRole { user, role }),
        any::<bool>().prop_map(Action::Enable),
        (0..3usize, 0..3usize).prop_map(|(user, prefix)| Action::Put { user, prefix }),
        (0..3usize, 0..3usize).prop_map(|(user, prefix)| Action::Put { user, prefix }),
    ]
}

fn prefix_range(prefix: usize) -> KeyRange {
    let start = PREFIXES[prefix].as_bytes();
    let mut end = start.to_vec();
    *end.last_mut().expect("non-empty") += 1;
    KeyRange::range(start, &end)
}

fn key_of(prefix: usize) -> String {
    format!("{}k", PREFIXES[prefix])
}

/// etcd's rules, written plainly: who holds which roles, which role may do what where, and a
/// revision bumped by every change that changed something.
#[derive(Default)]
struct Model {
    enabled: bool,
    revision: u64,
    user_roles: BTreeSet<(usize, usize)>,
    role_perms: BTreeMap<(usize, usize), usize>,
    values: BTreeMap<usize, u64>,
}

impl Model {
    fn allowed_to_write(&self, user: usize, prefix: usize) -> bool {
        (0..ROLES.len()).any(|role| {
            self.user_roles.contains(&(user, role))
                && self
                    .role_perms
                    .get(&(role, prefix))
                    .is_some_and(|kind| *kind != 0)
        })
    }

    /// Applies an action that was resolved when auth was `enabled_at_submit` at revision
    /// `resolved_at`, and returns the error code expected, if any.
    fn apply(
        &mut self,
        action: &Action,
        enabled_at_submit: bool,
        resolved_at: u64,
        value: u64,
    ) -> Option<&'static str> {
        // A request resolved while auth was off carries no user.
        let nobody = self.enabled && !enabled_at_submit;
        if let Action::Put { user, prefix } = *action {
            let error = if !self.enabled {
                None
            } else if nobody {
                Some("user_empty")
            } else if resolved_at < self.revision {
                Some("auth_old_revision")
            } else if !self.allowed_to_write(user, prefix) {
                Some("permission_denied")
            } else {
                None
            };
            if error.is_none() {
                self.values.insert(prefix, value);
            }
            return error;
        }
        if nobody && !matches!(action, Action::Enable(true)) {
            return Some("user_empty");
        }
        let changed = match *action {
            Action::Grant { role, prefix, kind } => {
                self.role_perms.insert((role, prefix), kind);
                true
            }
            Action::Revoke { role, prefix } => {
                if self.role_perms.remove(&(role, prefix)).is_none() {
                    return Some("permission_not_granted");
                }
                true
            }
            Action::GrantRole { user, role } => self.user_roles.insert((user, role)),
            Action::RevokeRole { user, role } => {
                if !self.user_roles.remove(&(user, role)) {
                    return Some("role_not_granted");
                }
                true
            }
            Action::Enable(enabled) => {
                let changed = self.enabled != enabled;
                self.enabled = enabled;
                changed
            }
            Action::Put { .. } => unreachable!("handled above"),
        };
        if changed {
            self.revision += 1;
        }
        None
    }
}

fn request_of(action: &Action, value: u64) -> (Request, &'static str) {
    let auth = |request: AuthRequest| (Request::Auth(request), "root");
    match *action {
        Action::Grant { role, prefix, kind } => auth(AuthRequest::RoleGrantPermission {
            role: ROLES[role].into(),
            permission: Permission {
                kind: KINDS[kind],
                range: prefix_range(prefix),
            },
        }),
        Action::Revoke { role, prefix } => auth(AuthRequest::RoleRevokePermission {
            role: ROLES[role].into(),
            range: prefix_range(prefix),
        }),
        Action::GrantRole { user, role } => auth(AuthRequest::UserGrantRole {
            user: USERS[user].into(),
            role: ROLES[role].into(),
        }),
        Action::RevokeRole { user, role } => auth(AuthRequest::UserRevokeRole {
            user: USERS[user].into(),
            role: ROLES[role].into(),
        }),
        Action::Enable(true) => auth(AuthRequest::Enable),
        Action::Enable(false) => auth(AuthRequest::Disable),
        Action::Put { user, prefix } => (put(&key_of(prefix), &value.to_string()), USERS[user]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Batches of auth changes and puts race (a batch is resolved against one applied state,
    /// then applied in order); every answer must be the model's, and the store must hold
    /// exactly the values of the puts the model allowed.
    #[test]
    fn nothing_unauthorised_is_ever_applied(batches in proptest::collection::vec(
        proptest::collection::vec(action(), 1..5), 1..8)
    ) {
        let mut single = Single::new(10_000);
        single.admin(AuthRequest::UserAdd { name: "root".into(), password_hash: None });
        single.admin(AuthRequest::UserGrantRole { user: "root".into(), role: "root".into() });
        for name in USERS {
            single.admin(AuthRequest::UserAdd { name: name.into(), password_hash: None });
        }
        for name in ROLES {
            single.admin(AuthRequest::RoleAdd { name: name.into() });
        }
        let mut model = Model {
            revision: single.member.auth_store().revision(),
            ..Model::default()
        };
        let mut value = 0u64;
        for batch in batches {
            let (enabled_at_submit, resolved_at) = (model.enabled, model.revision);
            let mut submitted = Vec::new();
            for action in batch {
                value += 1;
                let (request, who) = request_of(&action, value);
                let id = single.submit(request, user(who));
                submitted.push((action, id, value));
            }
            single.settle();
            for (action, id, value) in submitted {
                let result = single.replies.remove(&id).expect("answered");
                let expected = model.apply(&action, enabled_at_submit, resolved_at, value);
                prop_assert_eq!(auth_error(&result), expected, "{:?}: {:?}", action, result);
            }
            prop_assert_eq!(model.revision, single.member.auth_store().revision());
            for prefix in 0..PREFIXES.len() {
                let read = single.call(get(&key_of(prefix)), user("root"));
                let held = match read {
                    Ok(Response::Range(range)) => range.kvs.first().map(|kv| {
                        String::from_utf8_lossy(&kv.value).parse::<u64>().expect("a number")
                    }),
                    other => panic!("root reads: {other:?}"),
                };
                prop_assert_eq!(held, model.values.get(&prefix).copied());
            }
        }
    }
}
