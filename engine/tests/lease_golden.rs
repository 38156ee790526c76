//! Golden-file tests of the lessor: small scripts drive three members' lessors through grants,
//! keep-alives, checkpoints, leader changes and expiry; every step's outcome is rendered and
//! compared with an insta snapshot. Replicated commands are applied to every member, as raft
//! would; leader-local commands name the member they run on.

use engine::lease::{Lessor, LessorConfig};
use engine::types::{Duration, Instant, LeaseId};

/// The configuration every script uses: short intervals so scripts stay readable.
fn config() -> LessorConfig {
    LessorConfig {
        ttl_seconds_min: 2,
        ttl_seconds_max: 1000,
        leases_count_max: 8,
        keys_per_lease_count_max: 4,
        checkpoint_interval: Duration::from_secs(3),
        revoke_retry_interval: Duration::from_secs(1),
    }
}

struct Harness {
    members: Vec<Lessor>,
    now: Instant,
    output: String,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            members: (0..3).map(|_| Lessor::new(config())).collect(),
            now: Instant(0),
            output: String::new(),
        }
    }

    fn member(&mut self, word: &str) -> &mut Lessor {
        let index: usize = word.parse().expect("member number");
        &mut self.members[index - 1]
    }

    /// Applies a revoke on every member, as a committed raft entry would, and checks that all
    /// members agree on the keys deleted.
    fn apply_revoke(&mut self, id: LeaseId) -> String {
        let outcomes: Vec<String> = self
            .members
            .iter_mut()
            .map(|lessor| match lessor.revoke(id) {
                Ok(keys) => format!("deleted {}", render_keys(&keys)),
                Err(error) => format!("error {}", error.code()),
            })
            .collect();
        assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
        outcomes[0].clone()
    }

    /// A keep-alive on `member`; a required checkpoint reset is committed on every member
    /// before the keep-alive is answered, as the member does.
    fn renew(&mut self, member: &str, id: LeaseId) -> String {
        let now = self.now;
        match self.member(member).renew(id, now) {
            Ok(renewal) if renewal.checkpoint_reset_required => {
                for lessor in &mut self.members {
                    lessor.checkpoint(id, 0);
                }
                format!("ttl={}s after checkpoint reset", renewal.ttl_seconds)
            }
            Ok(renewal) => format!("ttl={}s", renewal.ttl_seconds),
            Err(error) => format!("error {}", error.code()),
        }
    }

    /// Applies a grant on every member; all must agree.
    fn grant(&mut self, id: LeaseId, ttl_seconds: i64) -> String {
        let now = self.now;
        let outcomes: Vec<String> = self
            .members
            .iter_mut()
            .map(|lessor| match lessor.grant(id, ttl_seconds, now) {
                Ok(granted) => format!("granted {} ttl={}s", granted.id, granted.ttl_seconds),
                Err(error) => format!("error {}", error.code()),
            })
            .collect();
        assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
        outcomes[0].clone()
    }

    /// Applies an attach on every member; all must agree.
    fn attach(&mut self, id: LeaseId, key: &[u8]) -> String {
        let outcomes: Vec<String> = self
            .members
            .iter_mut()
            .map(|lessor| match lessor.attach(id, key) {
                Ok(()) => "ok".to_string(),
                Err(error) => format!("error {}", error.code()),
            })
            .collect();
        assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
        outcomes[0].clone()
    }

    /// Takes the due checkpoints on `member` and commits them on every member.
    fn checkpoint(&mut self, member: &str) -> String {
        let now = self.now;
        let due = self.member(member).checkpoints_due(now, 16);
        for (id, remaining) in &due {
            for lessor in &mut self.members {
                lessor.checkpoint(*id, *remaining);
            }
        }
        let rendered: Vec<String> = due
            .iter()
            .map(|(id, seconds)| format!("{id}:{seconds}s"))
            .collect();
        format!("checkpointed [{}]", rendered.join(" "))
    }

    fn step(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let now = self.now;
        let result = match words.as_slice() {
            ["advance", ms] => {
                self.now = self.now + Duration::from_millis(ms.parse().unwrap());
                format!("now={}ms", self.now.0 / 1_000_000)
            }
            ["grant", id, ttl] => self.grant(LeaseId(id.parse().unwrap()), ttl.parse().unwrap()),
            ["attach", id, key] => self.attach(LeaseId(id.parse().unwrap()), key.as_bytes()),
            ["revoke", id] => self.apply_revoke(LeaseId(id.parse().unwrap())),
            ["promote", member, grace_ms] => {
                let grace = Duration::from_millis(grace_ms.parse().unwrap());
                self.member(member).promote(now, grace);
                "ok".to_string()
            }
            ["demote", member] => {
                self.member(member).demote();
                "ok".to_string()
            }
            ["renew", member, id] => self.renew(member, LeaseId(id.parse().unwrap())),
            ["expire", member] => {
                let expired = self.member(member).expired(now, 16);
                let mut text = format!("expired {}", render_ids(&expired));
                for id in expired {
                    text.push_str(&format!("\n  revoke {id}: {}", self.apply_revoke(id)));
                }
                text
            }
            ["expire-no-apply", member] => {
                let expired = self.member(member).expired(now, 16);
                format!("expired {}", render_ids(&expired))
            }
            ["checkpoint", member] => self.checkpoint(member),
            ["ttl", member, id] => {
                match self
                    .member(member)
                    .time_to_live(LeaseId(id.parse().unwrap()), now, true)
                {
                    Ok(ttl) => format!(
                        "ttl={}s granted={}s keys={}",
                        ttl.ttl_seconds,
                        ttl.granted_ttl_seconds,
                        render_keys(&ttl.keys)
                    ),
                    Err(error) => format!("error {}", error.code()),
                }
            }
            ["deadline", member] => match self.member(member).next_deadline() {
                Some(at) => format!("wake at {}ms", at.0 / 1_000_000),
                None => "no deadline".to_string(),
            },
            ["show", member] => self.member(member).describe(now).trim_end().to_string(),
            _ => panic!("unknown script line {line:?}"),
        };
        self.output.push_str(&format!("> {line}\n{result}\n"));
    }
}

fn render_ids(ids: &[LeaseId]) -> String {
    let ids: Vec<String> = ids.iter().map(LeaseId::to_string).collect();
    format!("[{}]", ids.join(","))
}

fn render_keys(keys: &[Vec<u8>]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|key| String::from_utf8_lossy(key).into_owned())
        .collect();
    format!("[{}]", keys.join(","))
}

fn run(script: &str) -> String {
    let mut harness = Harness::new();
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        harness.step(line);
    }
    // Every member must hold the same replicated state whatever each one's role.
    let images: Vec<Vec<u8>> = harness.members.iter().map(Lessor::encode).collect();
    assert!(images.windows(2).all(|pair| pair[0] == pair[1]));
    harness.output
}

/// Goal: a lease expires exactly once, on the leader, and a leader change neither extends it by
/// more than the grace period nor cuts it. Method: member 1 leads and checkpoints a 10 s lease
/// after 4 s; it loses leadership; member 2 is promoted 1 s later with 1 s grace and must expire
/// the lease at promote + grace + checkpointed remaining (6 s), not earlier and not at 10 s.
/// Followers report nothing at any time.
#[test]
fn lease_expiry_across_leader_change() {
    let output = run("
        promote 1 0
        grant 7 10
        attach 7 b
        attach 7 a
        show 1
        advance 4000
        checkpoint 1
        show 2
        demote 1
        advance 1000
        expire 1
        expire 3
        promote 2 1000
        show 2
        ttl 2 7
        deadline 2
        advance 6999
        expire 2
        advance 1
        expire 2
        show 3
    ");
    insta::assert_snapshot!("lease_expiry_across_leader_change", output);
}

/// Goal: keep-alives, TTL clamping, id choice and the error paths behave as etcd's lessor.
/// Method: grant with a chosen id, a given id, a taken id, a too-small and a too-large TTL; renew
/// on the leader and on a follower; renew after expiry (refused); attach to a missing lease.
#[test]
fn lease_keepalive_and_errors() {
    let output = run("
        promote 1 0
        grant 0 1
        grant 0 5
        grant 2 5
        grant 5 5000
        attach 9 k
        advance 1500
        renew 1 1
        renew 2 1
        ttl 1 1
        advance 1999
        ttl 1 1
        advance 1
        renew 1 1
        ttl 1 1
        expire-no-apply 1
        expire-no-apply 1
        advance 1000
        expire 1
        show 1
    ");
    insta::assert_snapshot!("lease_keepalive_and_errors", output);
}

/// Goal: a renewal clears a stale checkpoint cluster-wide before it is answered, so a later
/// leader does not restart the lease from the old, shorter remaining TTL. Method: checkpoint at
/// 4 s (6 s left), renew at 5 s (which commits a reset), change leader and check the new expiry
/// is a full TTL from the promotion.
#[test]
fn lease_renew_replaces_checkpoint() {
    let output = run("
        promote 1 0
        grant 3 10
        advance 4000
        checkpoint 1
        advance 1000
        renew 1 3
        deadline 1
        checkpoint 1
        show 2
        demote 1
        promote 2 0
        show 2
    ");
    insta::assert_snapshot!("lease_renew_replaces_checkpoint", output);
}

/// Goal: the snapshot codec round-trips the replicated state and rejects corrupt bytes.
/// Method: build leases with keys and a checkpoint, encode, decode, compare renderings and
/// encodings; then truncate the image and expect an error, never a partial lessor.
#[test]
fn lease_snapshot_round_trip() {
    let mut lessor = Lessor::new(config());
    lessor.grant(LeaseId(0), 10, Instant(0)).unwrap();
    lessor.grant(LeaseId(42), 3, Instant(0)).unwrap();
    lessor.attach(LeaseId(42), b"x").unwrap();
    lessor.attach(LeaseId(1), b"y").unwrap();
    lessor.checkpoint(LeaseId(1), 4);
    let image = lessor.encode();
    let decoded = Lessor::decode(config(), &image).expect("decodes");
    assert_eq!(decoded.describe(Instant(0)), lessor.describe(Instant(0)));
    assert_eq!(decoded.encode(), image);
    assert_eq!(decoded.lease_of(b"x"), Some(LeaseId(42)));
    assert!(Lessor::decode(config(), &image[..image.len() - 1]).is_err());
    let mut extended = image.clone();
    extended.push(0);
    assert!(Lessor::decode(config(), &extended).is_err());
}
