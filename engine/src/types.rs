//! Newtypes used at every module boundary of the engine, so that a raft index can never be passed
//! where an MVCC revision is expected (see the glossary in ARCHITECTURE.md).
//!
//! This module holds plain values only; it does not know about raft, storage or any host.

use core::fmt;

macro_rules! newtype {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            bincode::Encode, bincode::Decode,
        )]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}", self.0)
            }
        }
    };
}

newtype!(
    /// A member of the cluster. Zero is never a valid member id ("no member").
    NodeId(u64)
);
newtype!(
    /// A raft term. Terms only grow on a member; zero is the term before any election.
    Term(u64)
);
newtype!(
    /// A position in the raft log. Index 0 is the empty prefix; the first entry has index 1.
    LogIndex(u64)
);
newtype!(
    /// An MVCC revision: the store's logical clock, bumped once per applied write request.
    /// Signed as in etcd's API, where 0 means "latest" in requests.
    Revision(i64)
);
newtype!(
    /// An etcd lease id (time-to-live key ownership). Zero means "no lease".
    LeaseId(i64)
);
newtype!(
    /// A watch id, unique on the member that created the watch.
    WatchId(i64)
);
newtype!(
    /// The host's handle for one client request; echoed in the reply.
    RequestId(u64)
);
newtype!(
    /// Logical time in nanoseconds, chosen by the host. The engine never reads a clock: a host
    /// passes `now` with every step, so clock faults are just a different `now` per member.
    Instant(u64)
);
newtype!(
    /// A span of logical time in nanoseconds.
    Duration(u64)
);

impl Instant {
    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;

    /// The instant `duration` after `self`, saturating at the end of time.
    fn add(self, duration: Duration) -> Instant {
        Instant(self.0.saturating_add(duration.0))
    }
}

impl Duration {
    /// A duration of `milliseconds` ms.
    pub const fn from_millis(milliseconds: u64) -> Duration {
        Duration(milliseconds * 1_000_000)
    }

    /// A duration of `seconds` s.
    pub const fn from_secs(seconds: u64) -> Duration {
        Duration(seconds * 1_000_000_000)
    }

    /// Whole milliseconds in this duration.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
}

impl LogIndex {
    /// The next index.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }
}

impl Revision {
    /// The next revision.
    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}
