//! The member's configuration: every limit explicit, validated once at start.

use crate::types::{Duration, NodeId};

/// A member's configuration. Every limit is explicit; see [`MemberConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// This member.
    pub id: NodeId,
    /// The cluster's id, echoed in every response header.
    pub cluster_id: u64,
    /// The initial voters, used when the disk is empty. Must contain `id`, unless `joining`.
    pub voters: Vec<NodeId>,
    /// This member joins a running cluster (etcd's `--initial-cluster-state existing`):
    /// `voters` are the cluster's initial voters, without this member, which does not vote or
    /// stand for election until the log it receives makes it a member.
    pub joining: bool,
    /// Seeds every random choice of the member (election jitter, chosen lease ids). A host
    /// should give each incarnation (each restart) a different seed.
    pub seed: u64,
    /// Logical time per raft tick.
    pub tick_interval: Duration,
    /// Election timeout in ticks (randomised in `[t, 2t)`).
    pub election_timeout_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_interval_ticks: u32,
    /// Take a snapshot and compact the raft log every this many applied entries.
    pub snapshot_interval_entries: u64,
    /// Emit `Observation::KvHash` at every applied index that is a multiple of this.
    pub kv_hash_interval_entries: u64,
    /// Start a new WAL segment after this many bytes.
    pub wal_segment_bytes_max: u64,
    /// Largest client request accepted.
    pub request_bytes_max: u32,
    /// Most operations in one txn (all branches, nested ones included).
    pub txn_ops_count_max: u32,
    /// Most client requests waiting for commit or a read barrier.
    pub pending_requests_count_max: u32,
    /// A request still waiting after this long is answered with an indefinite error.
    pub request_timeout: Duration,
    /// How long a newly elected leader extends every lease (etcd: an election timeout and more).
    pub lease_grace: Duration,
    /// Most raft ticks run in one step after a pause; the rest are skipped as a paused
    /// process's timers would be.
    pub ticks_per_step_max: u32,
    /// Most events buffered for one watch whose consumer stopped reading, before the watch
    /// is moved to catch-up from history (`WatchConfig::pending_events_count_max`).
    pub watch_pending_events_count_max: usize,
    /// Most history events fed to lagging watches per step; a lag longer than this is caught
    /// up over several steps (a revision is never split, so one step may read more).
    pub watch_catch_up_events_per_step_max: usize,
    /// An auth token is forgotten this long after its last use (etcd's `--auth-token-ttl`).
    pub auth_token_ttl: Duration,
    /// Zoo bugs to switch on (inert unless the engine is built with the `bug-zoo` feature).
    pub bugs: crate::zoo::BugSet,
    /// Turns on the buggify points (`crate::buggify`) of raft, the WAL and the member. Only a
    /// simulator sets it: it makes rare legal paths common, at some cost in throughput.
    pub buggify: bool,
}

impl MemberConfig {
    /// A configuration with etcd-like defaults (100 ms ticks, 10-tick elections).
    pub fn new(id: NodeId, voters: Vec<NodeId>, seed: u64) -> MemberConfig {
        MemberConfig {
            id,
            cluster_id: 0x00de_7cd0,
            voters,
            joining: false,
            seed,
            tick_interval: Duration::from_millis(100),
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            snapshot_interval_entries: 10_000,
            kv_hash_interval_entries: 64,
            wal_segment_bytes_max: 64 * 1024 * 1024,
            request_bytes_max: 1536 * 1024,
            txn_ops_count_max: 128,
            pending_requests_count_max: 4096,
            request_timeout: Duration::from_secs(7),
            lease_grace: Duration::from_millis(1500),
            ticks_per_step_max: 30,
            watch_pending_events_count_max: 1024,
            watch_catch_up_events_per_step_max: 1024,
            auth_token_ttl: Duration::from_secs(300),
            bugs: crate::zoo::BugSet::EMPTY,
            buggify: false,
        }
    }

    /// Checks the configuration; the error names the setting that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.0 == 0 {
            return Err("member id 0 is reserved".into());
        }
        if self.joining && self.voters.contains(&self.id) {
            return Err(format!(
                "member {} joins, so it is not among the initial voters",
                self.id
            ));
        }
        if !self.joining && !self.voters.contains(&self.id) {
            return Err(format!("member {} is not among the voters", self.id));
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks
        {
            return Err(
                "heartbeat_interval_ticks must be at least 1 and below election_timeout_ticks"
                    .into(),
            );
        }
        if self.auth_token_ttl.0 == 0 {
            return Err("auth_token_ttl must be positive".into());
        }
        if self.tick_interval.0 == 0 {
            return Err("tick_interval must be positive".into());
        }
        if self.snapshot_interval_entries == 0 || self.kv_hash_interval_entries == 0 {
            return Err("snapshot and kv-hash intervals must be positive".into());
        }
        if self.pending_requests_count_max == 0 || self.ticks_per_step_max == 0 {
            return Err(
                "pending_requests_count_max and ticks_per_step_max must be positive".into(),
            );
        }
        if self.watch_pending_events_count_max == 0 || self.watch_catch_up_events_per_step_max == 0
        {
            return Err(
                "watch_pending_events_count_max and watch_catch_up_events_per_step_max must be positive"
                    .into(),
            );
        }
        if self.wal_segment_bytes_max < 4096 {
            return Err("wal_segment_bytes_max must be at least 4096".into());
        }
        Ok(())
    }
}
