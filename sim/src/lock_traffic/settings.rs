//! The settings of lock and election traffic (`[workload.locks]`) and the library scenarios
//! built on them.

use crate::rng::PPM;

/// The lock and election traffic of a scenario (`[workload.locks]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockTraffic {
    /// Lock clients.
    #[serde(default = "default_client_count")]
    pub client_count: u32,
    /// Locks they contend for, named `/lock/0`, `/lock/1`, ...; each cycle picks one of the
    /// locks and elections.
    #[serde(default = "default_lock_count")]
    pub lock_count: u32,
    /// Elections they campaign in, named `/election/0`, `/election/1`, ... (none by default).
    #[serde(default)]
    pub election_count: u32,
    /// The TTL of each cycle's lease (s).
    #[serde(default = "default_ttl_seconds")]
    pub ttl_seconds: i64,
    /// One slice of a hold, before each fenced write (ms), drawn uniformly.
    #[serde(default = "default_hold_ms_min")]
    pub hold_ms_min: u64,
    /// See `hold_ms_min`.
    #[serde(default = "default_hold_ms_max")]
    pub hold_ms_max: u64,
    /// Fenced writes per hold at most (at least one).
    #[serde(default = "default_fenced_writes_max")]
    pub fenced_writes_max: u32,
    /// The chance that a hold includes a pause past the lease's TTL (ppm).
    #[serde(default = "default_pause_ppm")]
    pub pause_ppm: u32,
    /// How long a waiter waits for the lock before it gives up (ms).
    #[serde(default = "default_wait_ms_max")]
    pub wait_ms_max: u64,
    /// Pause between two cycles of a client (ms), drawn uniformly.
    #[serde(default = "default_think_ms_min")]
    pub think_ms_min: u64,
    /// See `think_ms_min`.
    #[serde(default = "default_think_ms_max")]
    pub think_ms_max: u64,
}

fn default_client_count() -> u32 {
    4
}
fn default_lock_count() -> u32 {
    2
}
fn default_ttl_seconds() -> i64 {
    2
}
fn default_hold_ms_min() -> u64 {
    50
}
fn default_hold_ms_max() -> u64 {
    600
}
fn default_fenced_writes_max() -> u32 {
    3
}
fn default_pause_ppm() -> u32 {
    150_000
}
fn default_wait_ms_max() -> u64 {
    8_000
}
fn default_think_ms_min() -> u64 {
    50
}
fn default_think_ms_max() -> u64 {
    800
}

impl Default for LockTraffic {
    fn default() -> LockTraffic {
        LockTraffic {
            client_count: default_client_count(),
            lock_count: default_lock_count(),
            election_count: 0,
            ttl_seconds: default_ttl_seconds(),
            hold_ms_min: default_hold_ms_min(),
            hold_ms_max: default_hold_ms_max(),
            fenced_writes_max: default_fenced_writes_max(),
            pause_ppm: default_pause_ppm(),
            wait_ms_max: default_wait_ms_max(),
            think_ms_min: default_think_ms_min(),
            think_ms_max: default_think_ms_max(),
        }
    }
}

impl LockTraffic {
    /// Why these settings cannot run, naming the key (`Scenario::validate`).
    pub fn validate(&self, with_auth: bool) -> Result<(), String> {
        let positive = [
            ("client_count", u64::from(self.client_count)),
            ("ttl_seconds", self.ttl_seconds.max(0) as u64),
            ("fenced_writes_max", u64::from(self.fenced_writes_max)),
            ("wait_ms_max", self.wait_ms_max),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("workload.locks.{key} must be at least 1"));
            }
        }
        if self.lock_count == 0 && self.election_count == 0 {
            return Err(
                "workload.locks.lock_count must be at least 1 when workload.locks.election_count is 0"
                    .into(),
            );
        }
        if self.pause_ppm > PPM {
            return Err(format!(
                "workload.locks.pause_ppm ({}) is above 1000000 (100%)",
                self.pause_ppm
            ));
        }
        for (min_key, min, max_key, max) in [
            (
                "hold_ms_min",
                self.hold_ms_min,
                "hold_ms_max",
                self.hold_ms_max,
            ),
            (
                "think_ms_min",
                self.think_ms_min,
                "think_ms_max",
                self.think_ms_max,
            ),
        ] {
            if min > max {
                return Err(format!(
                    "workload.locks.{min_key} ({min}) is above workload.locks.{max_key} ({max})"
                ));
            }
        }
        if with_auth {
            return Err(
                "workload.locks and workload.auth cannot be combined: lock clients send no credentials"
                    .into(),
            );
        }
        Ok(())
    }
}

impl crate::scenario::Scenario {
    /// Lock clients under partitions with paused holders (the library's
    /// `locks_under_partitions.toml`, which the scenarios crate holds to this): holders whose
    /// leases expire while they are paused, waiters whose keys' leases expire while they wait,
    /// and acquisitions racing with leader changes; members pause too (a paused leader's
    /// lease clocks go stale).
    pub fn locks_under_partitions() -> crate::scenario::Scenario {
        let mut scenario = crate::scenario::Scenario::partitions_only();
        scenario.name = "locks_under_partitions".into();
        scenario.faults.pauses_per_minute = 4;
        // One lock: a waiter is almost always there to take over from a paused holder.
        scenario.workload.locks = Some(LockTraffic {
            lock_count: 1,
            ..LockTraffic::default()
        });
        scenario
    }

    /// `locks_under_partitions` with two elections beside its lock (the library's
    /// `elections_under_partitions.toml`, which the scenarios crate holds to this): campaigns,
    /// proclaims and resigns race with leader changes and paused members as the lock's holders
    /// do, and leaders pause past their leases' TTL; two more clients keep a waiter on most
    /// names.
    pub fn elections_under_partitions() -> crate::scenario::Scenario {
        let mut scenario = crate::scenario::Scenario::locks_under_partitions();
        scenario.name = "elections_under_partitions".into();
        scenario.workload.locks = Some(LockTraffic {
            client_count: 6,
            lock_count: 1,
            election_count: 2,
            ..LockTraffic::default()
        });
        scenario
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: bad settings are refused naming the key, and the defaults run. Method: a few
    /// settings, one bad value at a time.
    #[test]
    fn settings_are_validated_by_key() {
        assert_eq!(LockTraffic::default().validate(false), Ok(()));
        let error = |change: fn(&mut LockTraffic)| {
            let mut traffic = LockTraffic::default();
            change(&mut traffic);
            traffic.validate(false).expect_err("refused")
        };
        assert!(error(|t| t.client_count = 0).contains("workload.locks.client_count"));
        assert!(error(|t| t.ttl_seconds = 0).contains("workload.locks.ttl_seconds"));
        assert!(error(|t| t.pause_ppm = PPM + 1).contains("workload.locks.pause_ppm"));
        assert!(error(|t| t.hold_ms_min = 700).contains("workload.locks.hold_ms_min"));
        assert!(error(|t| t.lock_count = 0).contains("workload.locks.lock_count"));
        let elections_only = LockTraffic {
            lock_count: 0,
            election_count: 1,
            ..LockTraffic::default()
        };
        assert_eq!(elections_only.validate(false), Ok(()));
        let with_auth = LockTraffic::default().validate(true).expect_err("refused");
        assert!(with_auth.contains("workload.auth"), "{with_auth}");
    }
}
