//! The leader-local clocks of the lessor: each lease's expiry instant, the queue of upcoming
//! expiries and revoke retries, and the queue of periodic checkpoints.
//!
//! Nothing here is replicated or encoded: a new leader rebuilds it in `Lessor::promote` from the
//! replicated state. It does not decide anything about lease existence; the parent module does.

use std::collections::{BTreeMap, BTreeSet};

use super::{to_i64, LessorConfig};
use crate::types::{Duration, Instant, LeaseId};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// One lease's clock on the leader.
#[derive(Clone, Debug)]
struct LeaseClock {
    expiry: Instant,
    /// Set once the lease was reported expired: it is not reported again before this instant.
    revoke_retry_at: Option<Instant>,
    /// When its next periodic checkpoint is due, if one is scheduled.
    checkpoint_at: Option<Instant>,
}

impl LeaseClock {
    /// When `expired` next needs to look at this lease.
    fn wake_at(&self) -> Instant {
        self.revoke_retry_at.unwrap_or(self.expiry)
    }
}

/// All lease clocks of a leader.
#[derive(Clone, Debug)]
pub(super) struct LeaderClock {
    clocks: BTreeMap<LeaseId, LeaseClock>,
    /// Invariant: exactly one `(clock.wake_at(), id)` per entry of `clocks`.
    wakes: BTreeSet<(Instant, LeaseId)>,
    /// Invariant: exactly one `(at, id)` per clock whose `checkpoint_at` is `Some(at)`.
    checkpoints: BTreeSet<(Instant, LeaseId)>,
    /// Invariant: the earliest instant in `wakes` or `checkpoints`, kept up to date by every
    /// change to them, because the member asks for it on every step.
    next_deadline: Option<Instant>,
}

impl LeaderClock {
    pub(super) fn new() -> LeaderClock {
        LeaderClock {
            clocks: BTreeMap::new(),
            wakes: BTreeSet::new(),
            checkpoints: BTreeSet::new(),
            next_deadline: None,
        }
    }

    /// Recomputes `next_deadline`; called after every change to `wakes` or `checkpoints`.
    fn refresh_next_deadline(&mut self) {
        let wake = self.wakes.first().map(|(at, _)| *at);
        let checkpoint = self.checkpoints.first().map(|(at, _)| *at);
        self.next_deadline = match (wake, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Starts a freshly granted lease: it expires a full TTL from `now`.
    pub(super) fn start(
        &mut self,
        config: &LessorConfig,
        id: LeaseId,
        ttl_seconds: i64,
        now: Instant,
    ) {
        let ttl = seconds(ttl_seconds);
        self.start_at(config, id, now + ttl, now);
    }

    /// Starts (or restarts) a lease's clock with the given expiry.
    pub(super) fn start_at(
        &mut self,
        config: &LessorConfig,
        id: LeaseId,
        expiry: Instant,
        now: Instant,
    ) {
        self.forget(id);
        // etcd checkpoints only leases that outlive one checkpoint interval; the others expire
        // or are renewed before a checkpoint would matter.
        let checkpoint_at = if expiry.since(now).0 > config.checkpoint_interval.0 {
            Some(now + config.checkpoint_interval)
        } else {
            None
        };
        let clock = LeaseClock {
            expiry,
            revoke_retry_at: None,
            checkpoint_at,
        };
        self.insert(id, clock);
    }

    fn insert(&mut self, id: LeaseId, clock: LeaseClock) {
        let fresh_wake = self.wakes.insert((clock.wake_at(), id));
        assert!(fresh_wake);
        if let Some(at) = clock.checkpoint_at {
            let fresh_checkpoint = self.checkpoints.insert((at, id));
            assert!(fresh_checkpoint);
        }
        let previous = self.clocks.insert(id, clock);
        assert!(previous.is_none(), "lease {id} clock started twice");
        self.refresh_next_deadline();
    }

    /// Drops a lease's clock (revoked), if it has one.
    pub(super) fn forget(&mut self, id: LeaseId) -> Option<()> {
        let clock = self.clocks.remove(&id)?;
        let had_wake = self.wakes.remove(&(clock.wake_at(), id));
        assert!(had_wake);
        if let Some(at) = clock.checkpoint_at {
            let had_checkpoint = self.checkpoints.remove(&(at, id));
            assert!(had_checkpoint);
        }
        self.refresh_next_deadline();
        Some(())
    }

    /// Whether the lease's time is up at `now`. A lease without a clock (none can exist while
    /// the lessor is consistent) counts as expired, so it cannot be renewed.
    pub(super) fn is_expired(&self, id: LeaseId, now: Instant) -> bool {
        self.clocks.get(&id).is_none_or(|clock| clock.expiry <= now)
    }

    /// The time left before expiry, if the lease has a clock.
    pub(super) fn remaining(&self, id: LeaseId, now: Instant) -> Option<Duration> {
        Some(self.clocks.get(&id)?.expiry.since(now))
    }

    fn reschedule_checkpoint(&mut self, id: LeaseId, at: Option<Instant>) {
        let clock = self.clocks.get_mut(&id).expect("a clock to reschedule");
        if let Some(old) = clock.checkpoint_at {
            let had = self.checkpoints.remove(&(old, id));
            assert!(had);
        }
        clock.checkpoint_at = at;
        if let Some(new) = at {
            let fresh = self.checkpoints.insert((new, id));
            assert!(fresh);
        }
        self.refresh_next_deadline();
    }

    /// Expired leases not already reported within the retry interval, oldest first.
    pub(super) fn expired(
        &mut self,
        config: &LessorConfig,
        now: Instant,
        count_max: usize,
    ) -> Vec<LeaseId> {
        let mut reported = Vec::new();
        while reported.len() < count_max {
            let Some(&(wake_at, id)) = self.wakes.first() else {
                break;
            };
            if wake_at > now {
                break;
            }
            let clock = self.clocks.get_mut(&id).expect("wake names a clock");
            assert!(clock.expiry <= now, "lease {id} woken before its expiry");
            self.wakes.pop_first();
            // The revoke travels through raft; until it applies, retry only after an interval so
            // a slow commit does not flood the log with duplicate revokes.
            clock.revoke_retry_at = Some(now + config.revoke_retry_interval);
            let fresh = self.wakes.insert((clock.wake_at(), id));
            assert!(fresh);
            reported.push(id);
        }
        if !reported.is_empty() {
            self.refresh_next_deadline();
        }
        assert!(reported.len() <= count_max);
        reported
    }

    /// Due checkpoints with the remaining TTL rounded up to whole seconds.
    pub(super) fn checkpoints_due(
        &mut self,
        config: &LessorConfig,
        now: Instant,
        count_max: usize,
    ) -> Vec<(LeaseId, i64)> {
        let mut due = Vec::new();
        while due.len() < count_max {
            let Some(&(at, id)) = self.checkpoints.first() else {
                break;
            };
            if at > now {
                break;
            }
            let remaining = self.clocks[&id].expiry.since(now);
            let next = if remaining.0 > config.checkpoint_interval.0 {
                Some(now + config.checkpoint_interval)
            } else {
                None
            };
            self.reschedule_checkpoint(id, next);
            // An expired lease is about to be revoked; checkpointing it would be noise.
            if remaining.0 > 0 {
                let remaining_seconds = to_i64(remaining.0.div_ceil(NANOS_PER_SECOND));
                due.push((id, remaining_seconds));
            }
        }
        assert!(due.len() <= count_max);
        due
    }

    /// The earliest wake or checkpoint instant.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.next_deadline
    }

    /// ` expires=+Nms` and, when set, ` retry=+Nms checkpoint_at=+Nms`, relative to `now`.
    pub(super) fn describe_lease(&self, id: LeaseId, now: Instant) -> String {
        let Some(clock) = self.clocks.get(&id) else {
            return " clock=MISSING".into();
        };
        let mut text = format!(" expires={}", relative(clock.expiry, now));
        if let Some(at) = clock.revoke_retry_at {
            text.push_str(&format!(" revoke_retry={}", relative(at, now)));
        }
        if let Some(at) = clock.checkpoint_at {
            text.push_str(&format!(" checkpoint_at={}", relative(at, now)));
        }
        text
    }
}

fn seconds(value: i64) -> Duration {
    Duration::from_secs(u64::try_from(value).expect("a non-negative TTL"))
}

fn relative(at: Instant, now: Instant) -> String {
    if at >= now {
        format!("+{}ms", at.since(now).as_millis())
    } else {
        format!("-{}ms", now.since(at).as_millis())
    }
}
