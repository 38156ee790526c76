//! The lessor: etcd leases (time-to-live ownership of keys), split in two halves.
//!
//! - The replicated half (`grant`, `revoke`, `attach`, `detach`, `checkpoint`, `encode`) is applied
//!   in raft log order and is identical on every member: it never looks at time.
//! - The leader-local half (`promote`, `demote`, `renew`, `expired`, `checkpoints_due`,
//!   `time_to_live`, `next_deadline`) lives in [`leader::LeaderClock`] and exists only while this
//!   member leads. It is driven by the `now` the member passes in.
//!
//! It deliberately does not delete keys, propose entries or read a clock: expiry only *reports*
//! leases whose time is up; the member proposes their revoke through raft and, when the revoke
//! applies, deletes the returned keys in one MVCC revision. A follower never expires a lease.

mod leader;

use std::collections::{BTreeMap, BTreeSet};

use crate::kv::RequestError;
use crate::types::{Duration, Instant, LeaseId};

use leader::LeaderClock;

/// etcd's largest accepted TTL (`MaxLeaseTTL`), in seconds.
pub const TTL_SECONDS_MAX: i64 = 9_000_000_000;

/// Limits and intervals of the lessor. Every member of a cluster must use the same replicated
/// settings (`ttl_seconds_min`, `ttl_seconds_max`, `leases_count_max`), or their states diverge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LessorConfig {
    /// Granted TTLs below this are raised to it (etcd: 1.5 election timeouts, rounded up).
    pub ttl_seconds_min: i64,
    /// Granted TTLs above this are refused with `LeaseTtlTooLarge`.
    pub ttl_seconds_max: i64,
    /// Most leases alive at once; a grant beyond it is refused with `TooManyRequests`.
    pub leases_count_max: usize,
    /// Most keys attached to one lease; an attach beyond it is refused with `TooManyRequests`.
    pub keys_per_lease_count_max: usize,
    /// How often the leader checkpoints a lease's remaining TTL (etcd: 5 minutes).
    pub checkpoint_interval: Duration,
    /// How long the leader waits before reporting an expired lease again while its revoke is in
    /// flight (etcd: 3 s).
    pub revoke_retry_interval: Duration,
}

impl LessorConfig {
    /// etcd's defaults for 100 ms ticks and a 10-tick election timeout.
    pub fn new() -> LessorConfig {
        LessorConfig {
            ttl_seconds_min: 2,
            ttl_seconds_max: TTL_SECONDS_MAX,
            leases_count_max: 1 << 20,
            keys_per_lease_count_max: 1 << 20,
            checkpoint_interval: Duration::from_secs(300),
            revoke_retry_interval: Duration::from_secs(3),
        }
    }

    /// Checks the settings; the error names the wrong one.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_seconds_min < 1 || self.ttl_seconds_min > self.ttl_seconds_max {
            return Err("ttl_seconds_min must be in [1, ttl_seconds_max]".into());
        }
        if self.ttl_seconds_max > TTL_SECONDS_MAX {
            return Err(format!("ttl_seconds_max must be at most {TTL_SECONDS_MAX}"));
        }
        if self.leases_count_max == 0 || self.keys_per_lease_count_max == 0 {
            return Err("leases_count_max and keys_per_lease_count_max must be positive".into());
        }
        if self.checkpoint_interval.0 == 0 || self.revoke_retry_interval.0 == 0 {
            return Err("checkpoint_interval and revoke_retry_interval must be positive".into());
        }
        Ok(())
    }
}

impl Default for LessorConfig {
    fn default() -> LessorConfig {
        LessorConfig::new()
    }
}

/// The outcome of a successful grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    /// The lease's id (chosen by the lessor when the request named 0).
    pub id: LeaseId,
    /// The TTL actually granted, after raising it to the minimum.
    pub ttl_seconds: i64,
}

/// The outcome of a successful keep-alive on the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The TTL the lease now has again, in seconds.
    pub ttl_seconds: i64,
    /// The member must commit `checkpoint(id, 0)` before answering; see [`Lessor::renew`].
    pub checkpoint_reset_required: bool,
}

/// The answer to a time-to-live query on the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeToLive {
    /// The lease.
    pub id: LeaseId,
    /// Whole seconds left (truncated, as etcd); -1 once expired but not yet revoked.
    pub ttl_seconds: i64,
    /// The TTL the lease was granted with.
    pub granted_ttl_seconds: i64,
    /// Attached keys in key order, when asked for.
    pub keys: Vec<Vec<u8>>,
}

/// Why a snapshot of the lessor could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LessorDecodeError {
    /// The bytes are not a lessor snapshot (truncated or corrupt).
    Malformed(String),
    /// The bytes decode but break an invariant (for instance, a key attached to two leases).
    Invalid(String),
}

/// The replicated state of one lease.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
struct Lease {
    /// Invariant: `ttl_seconds_min <= ttl_seconds <= ttl_seconds_max`.
    ttl_seconds: i64,
    /// The last checkpointed remaining TTL; 0 means "none, use `ttl_seconds`" (etcd's encoding).
    remaining_ttl_seconds: i64,
    /// Invariant: every key here maps back to this lease in `Lessor::key_leases`.
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    /// The TTL a new leader starts this lease from: the checkpoint if one was taken.
    fn restart_ttl_seconds(&self) -> i64 {
        if self.remaining_ttl_seconds > 0 {
            self.remaining_ttl_seconds
        } else {
            self.ttl_seconds
        }
    }
}

/// The snapshot form of the replicated state.
#[derive(bincode::Encode, bincode::Decode)]
struct LessorImage {
    version: u32,
    next_id: i64,
    leases: Vec<(i64, Lease)>,
}

const IMAGE_VERSION: u32 = 1;

/// All leases of a member: the replicated state plus, on the leader, their clocks.
#[derive(Clone, Debug)]
pub struct Lessor {
    config: LessorConfig,
    /// The next id tried when a grant lets the lessor choose. Replicated, so every member
    /// chooses the same id for the same log entry.
    next_id: i64,
    leases: BTreeMap<LeaseId, Lease>,
    /// Invariant: the inverse of every `Lease::keys`; a key has at most one lease.
    key_leases: BTreeMap<Vec<u8>, LeaseId>,
    /// Present exactly while this member is leader.
    leader: Option<LeaderClock>,
}

impl Lessor {
    /// An empty lessor in follower mode.
    pub fn new(config: LessorConfig) -> Lessor {
        assert!(config.validate().is_ok(), "invalid lessor config");
        Lessor {
            config,
            next_id: 1,
            leases: BTreeMap::new(),
            key_leases: BTreeMap::new(),
            leader: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LessorConfig {
        &self.config
    }

    // ---------------------------------------------------------------------------------------
    // Replicated half: applied in log order, identical everywhere.
    // ---------------------------------------------------------------------------------------

    /// Applies a grant. `id == 0` lets the lessor choose the lowest free id from its replicated
    /// counter. `now` only starts the lease's clock when this member leads; it never changes the
    /// replicated outcome.
    pub fn grant(
        &mut self,
        id: LeaseId,
        ttl_seconds: i64,
        now: Instant,
    ) -> Result<Granted, RequestError> {
        if ttl_seconds > self.config.ttl_seconds_max {
            return Err(RequestError::LeaseTtlTooLarge { ttl_seconds });
        }
        if id.0 != 0 && self.leases.contains_key(&id) {
            return Err(RequestError::LeaseExists { lease: id });
        }
        if self.leases.len() >= self.config.leases_count_max {
            return Err(RequestError::TooManyRequests);
        }
        let id = if id.0 == 0 { self.choose_id() } else { id };
        assert!(id.0 != 0);
        assert!(!self.leases.contains_key(&id));
        // etcd raises a short TTL to the minimum so a lease cannot expire during an election.
        let ttl_seconds = ttl_seconds.max(self.config.ttl_seconds_min);
        let lease = Lease {
            ttl_seconds,
            remaining_ttl_seconds: 0,
            keys: BTreeSet::new(),
        };
        self.leases.insert(id, lease);
        if let Some(clock) = self.leader.as_mut() {
            clock.start(&self.config, id, ttl_seconds, now);
        }
        Ok(Granted { id, ttl_seconds })
    }

    /// Picks the lowest free id at or after the counter, then moves the counter past it.
    fn choose_id(&mut self) -> LeaseId {
        let mut candidate = self.next_id.max(1);
        while self.leases.contains_key(&LeaseId(candidate)) {
            candidate = candidate.checked_add(1).unwrap_or(1);
        }
        self.next_id = candidate.checked_add(1).unwrap_or(1);
        LeaseId(candidate)
    }

    /// Applies a revoke: forgets the lease and returns its keys, sorted, which the member must
    /// delete in one MVCC revision.
    pub fn revoke(&mut self, id: LeaseId) -> Result<Vec<Vec<u8>>, RequestError> {
        let lease = self
            .leases
            .remove(&id)
            .ok_or(RequestError::LeaseNotFound { lease: id })?;
        for key in &lease.keys {
            let owner = self.key_leases.remove(key);
            assert_eq!(owner, Some(id), "key index out of step with lease {id}");
        }
        if let Some(clock) = self.leader.as_mut() {
            clock.forget(id);
        }
        Ok(lease.keys.into_iter().collect())
    }

    /// Attaches `key` to lease `id` (a put with a lease). The key leaves any previous lease.
    /// Fails with `LeaseNotFound` when the lease is missing: the put must then fail too.
    pub fn attach(&mut self, id: LeaseId, key: &[u8]) -> Result<(), RequestError> {
        assert!(
            id.0 != 0,
            "attach to lease 0: the member must call detach instead"
        );
        let lease = self
            .leases
            .get(&id)
            .ok_or(RequestError::LeaseNotFound { lease: id })?;
        if !lease.keys.contains(key) && lease.keys.len() >= self.config.keys_per_lease_count_max {
            return Err(RequestError::TooManyRequests);
        }
        self.detach(key);
        let lease = self.leases.get_mut(&id).expect("checked above");
        let inserted = lease.keys.insert(key.to_vec());
        assert!(inserted);
        let previous = self.key_leases.insert(key.to_vec(), id);
        assert!(previous.is_none());
        Ok(())
    }

    /// Detaches `key` from its lease, if any (a delete, or a put without a lease), and returns
    /// the lease it left.
    pub fn detach(&mut self, key: &[u8]) -> Option<LeaseId> {
        let id = self.key_leases.remove(key)?;
        let lease = self
            .leases
            .get_mut(&id)
            .expect("key index names a live lease");
        let removed = lease.keys.remove(key);
        assert!(removed, "key index out of step with lease {id}");
        Some(id)
    }

    /// Checks, before a put is proposed or applied, that the lease it names exists.
    pub fn check_attachable(&self, id: LeaseId) -> Result<(), RequestError> {
        if id.0 == 0 || self.leases.contains_key(&id) {
            Ok(())
        } else {
            Err(RequestError::LeaseNotFound { lease: id })
        }
    }

    /// Applies a checkpoint of a lease's remaining TTL, so that a future leader restarts it from
    /// there instead of from the full TTL. A missing lease is ignored: it was revoked after the
    /// checkpoint was proposed. The leader's own clock is left alone: the checkpoint was computed
    /// from it, and re-deriving the expiry from an older value would cut the lease.
    pub fn checkpoint(&mut self, id: LeaseId, remaining_ttl_seconds: i64) {
        assert!(remaining_ttl_seconds >= 0, "negative checkpoint");
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.remaining_ttl_seconds = remaining_ttl_seconds.min(lease.ttl_seconds);
        }
    }

    /// Whether the lease exists.
    pub fn exists(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Every lease, in id order.
    pub fn leases(&self) -> Vec<LeaseId> {
        self.leases.keys().copied().collect()
    }

    /// The lease `key` is attached to, if any.
    pub fn lease_of(&self, key: &[u8]) -> Option<LeaseId> {
        self.key_leases.get(key).copied()
    }

    /// The keys attached to `id`, in key order.
    pub fn keys(&self, id: LeaseId) -> Option<Vec<Vec<u8>>> {
        Some(self.leases.get(&id)?.keys.iter().cloned().collect())
    }

    /// Encodes the replicated state for a snapshot (leader clocks are not replicated).
    pub fn encode(&self) -> Vec<u8> {
        let image = LessorImage {
            version: IMAGE_VERSION,
            next_id: self.next_id,
            leases: self
                .leases
                .iter()
                .map(|(id, lease)| (id.0, lease.clone()))
                .collect(),
        };
        crate::codec::encode(&image)
    }

    /// Rebuilds a follower-mode lessor from [`Lessor::encode`] output, checking its invariants.
    pub fn decode(config: LessorConfig, bytes: &[u8]) -> Result<Lessor, LessorDecodeError> {
        let image: LessorImage = crate::codec::decode(bytes)
            .map_err(|error| LessorDecodeError::Malformed(error.to_string()))?;
        if image.version != IMAGE_VERSION {
            return Err(LessorDecodeError::Malformed(format!(
                "unknown version {}",
                image.version
            )));
        }
        let mut lessor = Lessor::new(config);
        lessor.next_id = image.next_id;
        for (id, lease) in image.leases {
            let id = LeaseId(id);
            if id.0 == 0 || lessor.leases.contains_key(&id) {
                return Err(LessorDecodeError::Invalid(format!(
                    "bad or repeated lease {id}"
                )));
            }
            for key in &lease.keys {
                if lessor.key_leases.insert(key.clone(), id).is_some() {
                    return Err(LessorDecodeError::Invalid(format!(
                        "key attached to two leases, one of them {id}"
                    )));
                }
            }
            lessor.leases.insert(id, lease);
        }
        Ok(lessor)
    }

    // ---------------------------------------------------------------------------------------
    // Leader-local half: driven by `now`, exists only on the leader.
    // ---------------------------------------------------------------------------------------

    /// This member became leader: every lease restarts its clock at `now + grace +` its
    /// checkpointed remaining TTL (or its full TTL), as etcd's `Promote(extend)` does, so that a
    /// leader change never cuts a lease and never extends one by more than the grace period.
    ///
    /// NB: etcd also spreads the new expiries when many leases would expire at once after a
    /// promotion; here the burst is bounded instead by `expired(now, count_max)` per call.
    pub fn promote(&mut self, now: Instant, grace: Duration) {
        let mut clock = LeaderClock::new();
        for (id, lease) in &self.leases {
            let restart = Duration::from_secs(to_u64(lease.restart_ttl_seconds()));
            clock.start_at(&self.config, *id, now + grace + restart, now);
        }
        self.leader = Some(clock);
    }

    /// This member is no longer leader: its clocks are dropped, leases live forever here until
    /// a leader revokes them through raft.
    pub fn demote(&mut self) {
        self.leader = None;
    }

    /// Whether this lessor runs the leader clocks.
    pub fn is_leader(&self) -> bool {
        self.leader.is_some()
    }

    /// A keep-alive on the leader: the lease expires a full TTL from `now`. An expired lease
    /// (revoke pending) cannot be renewed, as in etcd.
    ///
    /// When the lease carries a checkpoint, `checkpoint_reset_required` is set: the member must
    /// propose `checkpoint(id, 0)` and answer the keep-alive only once it applied (as etcd's
    /// `Renew` does), or a leader elected in between would restart the lease from the stale,
    /// shorter checkpoint and cut the TTL the client was promised.
    pub fn renew(&mut self, id: LeaseId, now: Instant) -> Result<Renewal, RequestError> {
        let clock = self
            .leader
            .as_mut()
            .ok_or(RequestError::NotLeader { leader_hint: None })?;
        let lease = self
            .leases
            .get(&id)
            .ok_or(RequestError::LeaseNotFound { lease: id })?;
        if clock.is_expired(id, now) {
            return Err(RequestError::LeaseNotFound { lease: id });
        }
        clock.start(&self.config, id, lease.ttl_seconds, now);
        assert!(!clock.is_expired(id, now));
        Ok(Renewal {
            ttl_seconds: lease.ttl_seconds,
            checkpoint_reset_required: lease.remaining_ttl_seconds > 0,
        })
    }

    /// Up to `count_max` leases whose time is up, oldest expiry first, for the member to revoke
    /// through raft. A reported lease is not reported again before `revoke_retry_interval`.
    pub fn expired(&mut self, now: Instant, count_max: usize) -> Vec<LeaseId> {
        match self.leader.as_mut() {
            Some(clock) => clock.expired(&self.config, now, count_max),
            None => Vec::new(),
        }
    }

    /// Up to `count_max` leases whose periodic checkpoint is due, with their remaining TTL
    /// (rounded up, so a checkpoint never cuts a lease), for the member to propose.
    pub fn checkpoints_due(&mut self, now: Instant, count_max: usize) -> Vec<(LeaseId, i64)> {
        match self.leader.as_mut() {
            Some(clock) => clock.checkpoints_due(&self.config, now, count_max),
            None => Vec::new(),
        }
    }

    /// The time-to-live of a lease, answered by the leader (a follower forwards the request).
    pub fn time_to_live(
        &self,
        id: LeaseId,
        now: Instant,
        keys: bool,
    ) -> Result<TimeToLive, RequestError> {
        let clock = self
            .leader
            .as_ref()
            .ok_or(RequestError::NotLeader { leader_hint: None })?;
        let lease = self
            .leases
            .get(&id)
            .ok_or(RequestError::LeaseNotFound { lease: id })?;
        let ttl_seconds = match clock.remaining(id, now) {
            Some(remaining) if remaining.0 > 0 => to_i64(remaining.0 / 1_000_000_000),
            _ => -1,
        };
        Ok(TimeToLive {
            id,
            ttl_seconds,
            granted_ttl_seconds: lease.ttl_seconds,
            keys: if keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// The earliest instant at which `expired` or `checkpoints_due` has work, for `wake_at`.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.leader.as_ref()?.next_deadline()
    }

    /// A stable, line-per-lease rendering for golden tests. Times are shown relative to `now`
    /// in milliseconds.
    pub fn describe(&self, now: Instant) -> String {
        let mut text = String::new();
        let role = if self.leader.is_some() {
            "leader"
        } else {
            "follower"
        };
        text.push_str(&format!("lessor {role} next_id={}\n", self.next_id));
        for (id, lease) in &self.leases {
            let keys: Vec<String> = lease
                .keys
                .iter()
                .map(|key| String::from_utf8_lossy(key).into_owned())
                .collect();
            text.push_str(&format!(
                "  lease {id} ttl={}s checkpoint={}s keys=[{}]",
                lease.ttl_seconds,
                lease.remaining_ttl_seconds,
                keys.join(",")
            ));
            if let Some(clock) = self.leader.as_ref() {
                text.push_str(&clock.describe_lease(*id, now));
            }
            text.push('\n');
        }
        text
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).expect("a non-negative count")
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).expect("fits in i64")
}
