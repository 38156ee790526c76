//! Auth traffic (opt-in per scenario, `[workload.auth]`): client 0 becomes the administrator,
//! running as `root`, and every other client runs as one of a few users with different
//! permissions, so that permission grants, revocations and auth enable/disable race with the
//! users' reads and writes.
//!
//! The administrator first sets up etcd's auth the way an operator does (the root user with the
//! root role; role `reader`, read on every key; role `writer`, readwrite on the hot keys and read
//! on every key; users `alice` (reader), `bob` (writer) and `carol` (no role); auth enabled),
//! then at its wakes changes permissions at random: revokes and re-grants the writer's hot-key
//! permission, alice's role, a cold-key permission of the writer's, and now and then disables
//! auth and enables it again. Users are certificate users (`Credentials::User`), as with etcd's
//! client-cert auth, so no password or token is involved.
//!
//! Without `[workload.auth]` nothing here runs, draws or records, so a scenario without it keeps
//! its trace hashes. The admin's choices come from a stream of their own (`Stream::AuthAdmin`).

use engine::auth::{AuthRequest, Credentials, KeyRange, Permission, PermissionKind};
use engine::kv::Request;

use crate::rng::{SimRng, Stream, PPM};
use crate::workload::WorkloadConfig;

/// The auth traffic of a scenario (`[workload.auth]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthTraffic {
    /// At each of its wakes after the setup, the chance that the administrator changes
    /// something (ppm); otherwise it waits for its next wake (clients wake every think time).
    #[serde(default = "default_change_ppm")]
    pub change_ppm: u32,
    /// Of those changes, the share that toggles auth (disable, and at the next toggle enable
    /// again) rather than a permission or a role (ppm).
    #[serde(default = "default_toggle_ppm")]
    pub toggle_ppm: u32,
}

fn default_change_ppm() -> u32 {
    250_000
}

fn default_toggle_ppm() -> u32 {
    100_000
}

impl Default for AuthTraffic {
    fn default() -> AuthTraffic {
        AuthTraffic {
            change_ppm: default_change_ppm(),
            toggle_ppm: default_toggle_ppm(),
        }
    }
}

impl AuthTraffic {
    /// Why these settings cannot run, naming the key (`Scenario::validate`).
    pub fn validate(&self, client_count: u32) -> Result<(), String> {
        for (key, value) in [
            ("change_ppm", self.change_ppm),
            ("toggle_ppm", self.toggle_ppm),
        ] {
            if value > PPM {
                return Err(format!(
                    "workload.auth.{key} ({value}) is above 1000000 (100%)"
                ));
            }
        }
        if client_count < 2 {
            return Err(format!(
                "workload.client_count ({client_count}) must be at least 2 with workload.auth: client 0 administers, the others run as users"
            ));
        }
        Ok(())
    }
}

impl crate::scenario::Scenario {
    /// Permission changes racing with writes on a lossy, partitioned network (the library's
    /// `permissions_revoked_under_load.toml`, which the scenarios crate holds to this): a revoke
    /// acknowledged by one member while another has not applied it yet, and writes authorised
    /// before a revoke that apply after it.
    pub fn permissions_revoked_under_load() -> crate::scenario::Scenario {
        let mut scenario = crate::scenario::Scenario::partitions_only();
        scenario.name = "permissions_revoked_under_load".into();
        scenario.workload.auth = Some(AuthTraffic::default());
        scenario
    }
}

/// The users the non-admin clients run as, by client index (client 1 is `bob`, 2 `alice`, ...).
const USERS: [&str; 4] = ["bob", "alice", "carol", "root"];

/// Every key the workload uses sorts at or after this (`l…` cold keys, `s…` hot keys).
const ALL_KEYS_FROM: &[u8] = b"a";

fn every_key() -> KeyRange {
    KeyRange::range(ALL_KEYS_FROM, b"\0")
}

fn hot_keys() -> KeyRange {
    KeyRange::range(b"s", b"t")
}

fn cold_keys() -> KeyRange {
    KeyRange::range(b"l", b"m")
}

fn grant(role: &str, kind: PermissionKind, range: KeyRange) -> AuthRequest {
    AuthRequest::RoleGrantPermission {
        role: role.into(),
        permission: Permission { kind, range },
    }
}

fn user_add(name: &str) -> AuthRequest {
    AuthRequest::UserAdd {
        name: name.into(),
        password_hash: None,
    }
}

fn grant_role(user: &str, role: &str) -> AuthRequest {
    AuthRequest::UserGrantRole {
        user: user.into(),
        role: role.into(),
    }
}

/// The setup, in order.
fn setup() -> Vec<AuthRequest> {
    vec![
        user_add("root"),
        grant_role("root", "root"),
        AuthRequest::RoleAdd {
            name: "reader".into(),
        },
        grant("reader", PermissionKind::Read, every_key()),
        AuthRequest::RoleAdd {
            name: "writer".into(),
        },
        grant("writer", PermissionKind::Read, every_key()),
        grant("writer", PermissionKind::ReadWrite, hot_keys()),
        user_add("alice"),
        grant_role("alice", "reader"),
        user_add("bob"),
        grant_role("bob", "writer"),
        user_add("carol"),
        AuthRequest::Enable,
    ]
}

/// The auth side of the clients: who runs as whom, and the administrator's plan.
#[derive(Debug)]
pub(crate) struct AuthClients {
    config: AuthTraffic,
    rng: SimRng,
    /// Setup requests still to send, in order.
    setup: std::collections::VecDeque<AuthRequest>,
    /// Whether the administrator's last toggle disabled auth.
    disabled: bool,
}

impl AuthClients {
    /// The auth side of a run, when the scenario asks for auth traffic.
    pub(crate) fn new(workload: &WorkloadConfig, seed: u64) -> Option<AuthClients> {
        let config = workload.auth.clone()?;
        Some(AuthClients {
            config,
            rng: SimRng::for_stream(seed, Stream::AuthAdmin),
            setup: setup().into(),
            disabled: false,
        })
    }

    /// The user client `client` runs as: `root` for the administrator (client 0).
    pub(crate) fn user_of(client: usize) -> &'static str {
        match client {
            0 => "root",
            other => USERS[(other - 1) % USERS.len()],
        }
    }

    /// Notes the answer to one of the administrator's requests: a setup step that applied, or
    /// was refused by the auth store (it exists already, say), is done; one that failed on the
    /// way (no leader yet, a timeout) is sent again.
    pub(crate) fn observe_admin_reply(
        &mut self,
        request: &Request,
        result: &Result<engine::kv::Response, engine::kv::RequestError>,
    ) {
        let settled = matches!(result, Ok(_) | Err(engine::kv::RequestError::Auth(_)));
        let is_front = matches!(
            (request, self.setup.front()),
            (Request::Auth(sent), Some(front)) if sent == front
        );
        if settled && is_front {
            self.setup.pop_front();
        }
    }

    /// The credentials of client `client`'s requests.
    pub(crate) fn credentials(client: usize) -> Credentials {
        Credentials::User(Self::user_of(client).to_string())
    }

    /// The administrator's next request, or `None` to let this wake pass. A setup step is
    /// sent again until an answer settles it (`observe_admin_reply`).
    pub(crate) fn next_admin_request(&mut self) -> Option<Request> {
        if let Some(request) = self.setup.front() {
            return Some(Request::Auth(request.clone()));
        }
        if !self.rng.chance_ppm(self.config.change_ppm.min(PPM)) {
            return None;
        }
        if self.rng.chance_ppm(self.config.toggle_ppm.min(PPM)) {
            self.disabled = !self.disabled;
            let toggle = if self.disabled {
                AuthRequest::Disable
            } else {
                AuthRequest::Enable
            };
            return Some(Request::Auth(toggle));
        }
        let change = match self.rng.below(6) {
            0 => AuthRequest::RoleRevokePermission {
                role: "writer".into(),
                range: hot_keys(),
            },
            1 => grant("writer", PermissionKind::ReadWrite, hot_keys()),
            2 => AuthRequest::UserRevokeRole {
                user: "alice".into(),
                role: "reader".into(),
            },
            3 => grant_role("alice", "reader"),
            4 => grant("writer", PermissionKind::Write, cold_keys()),
            _ => AuthRequest::RoleRevokePermission {
                role: "writer".into(),
                range: cold_keys(),
            },
        };
        Some(Request::Auth(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the setup ends with auth enabled and the churn only ever touches the roles and
    /// users the setup made. Method: draw many admin requests from a fixed seed.
    #[test]
    fn the_admin_sets_up_then_churns_known_roles() {
        let mut workload = WorkloadConfig::etcd_like();
        assert!(AuthClients::new(&workload, 1).is_none(), "auth is opt-in");
        workload.auth = Some(AuthTraffic {
            change_ppm: PPM,
            toggle_ppm: 200_000,
        });
        let mut clients = AuthClients::new(&workload, 1).expect("auth traffic");
        let setup_count = setup().len();
        let mut sent = Vec::new();
        let done = Ok(engine::kv::Response::Compact {
            header: Default::default(),
        });
        let lost = Err(engine::kv::RequestError::LeaderChanged);
        for index in 0..200 {
            let request = clients.next_admin_request().expect("always changes");
            // Every third answer is lost on the way: the step is sent again.
            let answer = if index % 3 == 1 { &lost } else { &done };
            clients.observe_admin_reply(&request, answer);
            if index % 3 != 1 {
                sent.push(request);
            }
        }
        assert_eq!(sent[0], Request::Auth(setup()[0].clone()));
        assert!(matches!(
            sent[setup_count - 1],
            Request::Auth(AuthRequest::Enable)
        ));
        let toggles = sent[setup_count..]
            .iter()
            .filter(|request| {
                matches!(
                    request,
                    Request::Auth(AuthRequest::Enable | AuthRequest::Disable)
                )
            })
            .count();
        assert!((10..=80).contains(&toggles), "{toggles} toggles");
        assert_eq!(AuthClients::user_of(0), "root");
        assert_eq!(AuthClients::user_of(1), "bob");
        assert_eq!(AuthClients::user_of(5), "bob");
    }
}
