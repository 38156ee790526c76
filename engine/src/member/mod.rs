//! The member: owns raft, the WAL, MVCC, leases and watches; turns client requests into proposals
//! and applied entries into responses. The one entry point for hosts is [`Member::step`].
//!
//! NB: this is a placeholder with the final signatures: until the store lands it answers every
//! request with `NotLeader`, so hosts can be built against it.

use crate::api::{Actions, DiskImage, Input};
use crate::kv::RequestError;
use crate::types::{Duration, Instant, NodeId};

/// A member's configuration. Every limit is explicit; see [`MemberConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// This member.
    pub id: NodeId,
    /// The initial voters, used when the disk is empty. Must contain `id`.
    pub voters: Vec<NodeId>,
    /// Seeds every random choice of the member (election jitter).
    pub seed: u64,
    /// Logical time per raft tick.
    pub tick_interval: Duration,
    /// Election timeout in ticks (randomised in `[t, 2t)`).
    pub election_timeout_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_interval_ticks: u32,
    /// Take a snapshot and compact the raft log every this many applied entries.
    pub snapshot_interval_entries: u64,
    /// Start a new WAL segment after this many bytes.
    pub wal_segment_bytes_max: u64,
    /// Largest client request accepted.
    pub request_bytes_max: u32,
    /// Most operations in one txn.
    pub txn_ops_count_max: u32,
    /// Most client requests waiting for commit or a read barrier.
    pub pending_requests_count_max: u32,
}

impl MemberConfig {
    /// A configuration with etcd-like defaults (100 ms ticks, 10-tick elections).
    pub fn new(id: NodeId, voters: Vec<NodeId>, seed: u64) -> MemberConfig {
        MemberConfig {
            id,
            voters,
            seed,
            tick_interval: Duration::from_millis(100),
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            snapshot_interval_entries: 10_000,
            wal_segment_bytes_max: 64 * 1024 * 1024,
            request_bytes_max: 1536 * 1024,
            txn_ops_count_max: 128,
            pending_requests_count_max: 4096,
        }
    }

    /// Checks the configuration; the error says which setting is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.0 == 0 {
            return Err("member id 0 is reserved".into());
        }
        if !self.voters.contains(&self.id) {
            return Err(format!("member {} is not among the voters", self.id));
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks
        {
            return Err(
                "heartbeat interval must be at least 1 tick and below the election timeout".into(),
            );
        }
        if self.tick_interval.0 == 0 {
            return Err("tick interval must be positive".into());
        }
        Ok(())
    }
}

/// What recovery found and did, for the host to report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Human-readable notes (for instance, a torn WAL tail that was cut off).
    pub notes: Vec<String>,
}

/// Why a member refused to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryError {
    /// The configuration is invalid.
    Config(String),
}

/// One etcd member as a pure state machine.
#[derive(Debug)]
pub struct Member {
    config: MemberConfig,
}

impl Member {
    /// Starts a member from what its disk held.
    pub fn new(
        config: MemberConfig,
        _image: DiskImage,
    ) -> Result<(Member, RecoveryReport), RecoveryError> {
        config.validate().map_err(RecoveryError::Config)?;
        Ok((Member { config }, RecoveryReport::default()))
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// Feeds one input at logical time `now` and returns what the host must do.
    pub fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut actions = Actions::default();
        if let Input::Request { id, .. } = input {
            actions
                .reply
                .push((id, Err(RequestError::NotLeader { leader_hint: None })));
        }
        actions.wake_at = Some(now + self.config.tick_interval);
        actions
    }
}
