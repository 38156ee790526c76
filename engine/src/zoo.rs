//! The bug zoo: realistic defects from etcd's and raft's history, each a small change where the
//! real bug was, so that the testbed's power to catch bugs is measured instead of assumed
//! (`detcd sim hunt`).
//!
//! A defect site reads `if crate::bug!(VoteBeforeSync) { ... }`. Without the cargo feature
//! `bug-zoo` the macro is the constant `false`, so the defective branch is dead code that the
//! compiler removes, and no setting can switch it on: a normal build has no bugs. With the
//! feature, a member switches on the bugs named in `MemberConfig::bugs`; the set is made active
//! for the duration of each `Member::new` and `Member::step` (a thread-local, scoped to the call,
//! so members hosted on one thread never see each other's set and a run stays deterministic).
//!
//! This module does not decide where bugs go or how they are caught; it only names them.

/// One defect of the zoo. The names are stable: `detcd sim hunt --bug NAME` and the hunt table
/// use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Bug {
    /// A leader commits an entry of an earlier term by counting replicas (raft paper, Figure 8).
    FigureEightCommit,
    /// A vote is sent before the hard state that records it is synced.
    VoteBeforeSync,
    /// A follower acknowledges appended entries before they are synced.
    AckBeforeSync,
    /// A leader counts its own unsynced entries toward the commit quorum (etcd #14370).
    LeaderCountsUnsynced,
    /// A voter grants its vote to a candidate whose log is behind its own.
    MissingElectionRestriction,
    /// A follower truncates its log on a stale append that it already holds entries past.
    TruncateOnStaleAppend,
    /// A leader serves a linearizable read without confirming leadership with a heartbeat
    /// quorum (etcd #741).
    ReadIndexWithoutQuorum,
    /// A read is served at the read index before the apply has caught up to it.
    ReadBeforeApply,
    /// A member that is not the leader expires leases on its own clock (etcd #12528).
    LeaseExpiryByNonLeader,
    /// A deposed leader keeps renewing leases from keep-alives (etcd #15247).
    LeaseRenewByNonLeader,
    /// The WAL before a snapshot is released before the snapshot file is synced (etcd #10219).
    WalReleasedBeforeSnapshotSync,
    /// The current revision goes back after a compaction and a restart (etcd #17780).
    RevisionRegressionAfterCompaction,
    /// Watch events are sent again after a snapshot is restored (etcd #15271).
    WatchResentAfterRestore,
    /// A progress notification carries a revision ahead of events still to be sent (etcd #15220).
    ProgressAheadOfEvents,
    /// A slow watcher that catches up skips the events of one revision (etcd #17529).
    SlowWatcherGap,
    /// Compaction removes the delete event that a watcher still needs (etcd #18089).
    CompactionEatsDeleteEvent,
    /// A txn compare on `mod` revision reads the `create` revision.
    TxnCompareWrongField,
    /// Deleting a key that does not exist still bumps the revision.
    DeleteMissingBumpsRevision,
    /// A range's `count` is cut by its `limit`.
    CountCutByLimit,
    /// A proposal retried by its client is applied twice.
    DuplicateApplyOfRetry,
    /// A corrupt record in the middle of the WAL is taken for a torn tail and cut away.
    CorruptRecordAsTornTail,
    /// A leader ranks learners' acknowledgements with the voters' when it computes the commit
    /// index, so a learner stands in for a missing voter.
    LearnerCountedInQuorum,
    /// A write's permission is checked only when it arrives, against the member's applied
    /// auth store, and the apply trusts that check: a permission revoked between the two (or
    /// revoked already but not yet applied where the write arrived) does not stop it.
    PermissionCheckedOnlyAtRequest,
    /// A range sorted by anything but the key, with a limit, takes its first `limit` keys in
    /// key order and sorts only those (the limit pushed into the key-order scan): "the oldest
    /// key under a prefix" answers the first key by name, so a lock waiter whose key sorts
    /// first takes a held lock.
    LimitBeforeSort,
    /// A lease revoke, and a put attaching a lease, are checked on the request's own keys
    /// only, not on the keys the lease already holds: a user who may not write a key deletes
    /// it by revoking the lease it is attached to.
    LeaseKeysUnchecked,
    /// A range's `max_create_revision` filter is taken as exclusive: a waiter that asks for
    /// "the youngest key created at or before the revision just before mine" misses the key
    /// created right before its own, and takes a lock or leadership that is still held.
    MaxCreateRevisionExclusive,
}

impl Bug {
    /// Every bug of the zoo, in a fixed order (the order of the hunt table).
    pub const ALL: [Bug; 26] = [
        Bug::FigureEightCommit,
        Bug::VoteBeforeSync,
        Bug::AckBeforeSync,
        Bug::LeaderCountsUnsynced,
        Bug::MissingElectionRestriction,
        Bug::TruncateOnStaleAppend,
        Bug::ReadIndexWithoutQuorum,
        Bug::ReadBeforeApply,
        Bug::LeaseExpiryByNonLeader,
        Bug::LeaseRenewByNonLeader,
        Bug::WalReleasedBeforeSnapshotSync,
        Bug::RevisionRegressionAfterCompaction,
        Bug::WatchResentAfterRestore,
        Bug::ProgressAheadOfEvents,
        Bug::SlowWatcherGap,
        Bug::CompactionEatsDeleteEvent,
        Bug::TxnCompareWrongField,
        Bug::DeleteMissingBumpsRevision,
        Bug::CountCutByLimit,
        Bug::DuplicateApplyOfRetry,
        Bug::CorruptRecordAsTornTail,
        Bug::LearnerCountedInQuorum,
        Bug::PermissionCheckedOnlyAtRequest,
        Bug::LimitBeforeSort,
        Bug::LeaseKeysUnchecked,
        Bug::MaxCreateRevisionExclusive,
    ];

    /// The bug's name in snake_case, as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            Bug::FigureEightCommit => "figure_eight_commit",
            Bug::VoteBeforeSync => "vote_before_sync",
            Bug::AckBeforeSync => "ack_before_sync",
            Bug::LeaderCountsUnsynced => "leader_counts_unsynced",
            Bug::MissingElectionRestriction => "missing_election_restriction",
            Bug::TruncateOnStaleAppend => "truncate_on_stale_append",
            Bug::ReadIndexWithoutQuorum => "read_index_without_quorum",
            Bug::ReadBeforeApply => "read_before_apply",
            Bug::LeaseExpiryByNonLeader => "lease_expiry_by_non_leader",
            Bug::LeaseRenewByNonLeader => "lease_renew_by_non_leader",
            Bug::WalReleasedBeforeSnapshotSync => "wal_released_before_snapshot_sync",
            Bug::RevisionRegressionAfterCompaction => "revision_regression_after_compaction",
            Bug::WatchResentAfterRestore => "watch_resent_after_restore",
            Bug::ProgressAheadOfEvents => "progress_ahead_of_events",
            Bug::SlowWatcherGap => "slow_watcher_gap",
            Bug::CompactionEatsDeleteEvent => "compaction_eats_delete_event",
            Bug::TxnCompareWrongField => "txn_compare_wrong_field",
            Bug::DeleteMissingBumpsRevision => "delete_missing_bumps_revision",
            Bug::CountCutByLimit => "count_cut_by_limit",
            Bug::DuplicateApplyOfRetry => "duplicate_apply_of_retry",
            Bug::CorruptRecordAsTornTail => "corrupt_record_as_torn_tail",
            Bug::LearnerCountedInQuorum => "learner_counted_in_quorum",
            Bug::PermissionCheckedOnlyAtRequest => "permission_checked_only_at_request",
            Bug::LimitBeforeSort => "limit_before_sort",
            Bug::LeaseKeysUnchecked => "lease_keys_unchecked",
            Bug::MaxCreateRevisionExclusive => "max_create_revision_exclusive",
        }
    }

    /// Where the real bug comes from.
    pub fn origin(self) -> &'static str {
        match self {
            Bug::FigureEightCommit => "raft paper, section 5.4.2 (Figure 8)",
            Bug::VoteBeforeSync => "raft paper, section 5.2: persist before responding",
            Bug::AckBeforeSync => "etcd-io/raft: MsgAppResp only after the append is stable",
            Bug::LeaderCountsUnsynced => "etcd #14370",
            Bug::MissingElectionRestriction => "raft paper, section 5.4.1",
            Bug::TruncateOnStaleAppend => "raft paper, section 5.3; hashicorp/raft #87",
            Bug::ReadIndexWithoutQuorum => "etcd #741",
            Bug::ReadBeforeApply => "etcd-io/raft ReadIndex: serve after applied >= index",
            Bug::LeaseExpiryByNonLeader => "etcd #12528",
            Bug::LeaseRenewByNonLeader => "etcd #15247",
            Bug::WalReleasedBeforeSnapshotSync => "etcd #10219",
            Bug::RevisionRegressionAfterCompaction => "etcd #17780",
            Bug::WatchResentAfterRestore => "etcd #15271",
            Bug::ProgressAheadOfEvents => "etcd #15220",
            Bug::SlowWatcherGap => "etcd #17529",
            Bug::CompactionEatsDeleteEvent => "etcd #18089",
            Bug::TxnCompareWrongField => "a compare reading the wrong field",
            Bug::DeleteMissingBumpsRevision => "etcd semantics: a no-op delete keeps the revision",
            Bug::CountCutByLimit => "etcd semantics: count ignores limit",
            Bug::DuplicateApplyOfRetry => "etcd #4374-style duplicate apply",
            Bug::CorruptRecordAsTornTail => "etcd #10346-style WAL repair",
            Bug::LearnerCountedInQuorum => {
                "raft thesis, section 4.2.1: learners (non-voting members) never count toward a quorum"
            }
            Bug::PermissionCheckedOnlyAtRequest => {
                "etcd's apply-time auth check (ErrAuthOldRevision): a write authorised before a revoke must be refused when it applies after it"
            }
            Bug::LimitBeforeSort => {
                "etcd's range: with a sort other than ascending by key, the limit is applied after sorting every key in range (etcd fetches with no limit then)"
            }
            Bug::LeaseKeysUnchecked => {
                "etcd's checkLeasePuts: revoking a lease, or attaching it to a key, needs write permission on every key the lease holds"
            }
            Bug::MaxCreateRevisionExclusive => {
                "etcd's RangeRequest: max_create_revision is inclusive (keys created after it are filtered out); clientv3/concurrency's waitDeletes asks for create revision <= its own - 1"
            }
        }
    }

    /// The bug called `name`, if the zoo has it.
    pub fn by_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|bug| bug.name() == name)
    }

    fn bit(self) -> u64 {
        1 << (self as u8)
    }
}

/// A set of zoo bugs, switched on for one member. Empty by default; in a build without the
/// `bug-zoo` feature the set is inert (see [`COMPILED_IN`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BugSet(u64);

impl BugSet {
    /// No bugs.
    pub const EMPTY: BugSet = BugSet(0);

    /// The set holding only `bug`.
    pub fn of(bug: Bug) -> BugSet {
        BugSet(bug.bit())
    }

    /// This set with `bug` added.
    pub fn with(self, bug: Bug) -> BugSet {
        BugSet(self.0 | bug.bit())
    }

    /// Whether `bug` is in the set (whether or not this build can act on it).
    pub fn contains(self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bugs in the set, in `Bug::ALL` order.
    pub fn bugs(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |bug| self.contains(*bug))
    }
}

/// Whether this build has the zoo compiled in (the `bug-zoo` cargo feature).
pub const COMPILED_IN: bool = cfg!(feature = "bug-zoo");

#[cfg(feature = "bug-zoo")]
std::thread_local! {
    static ACTIVE: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// Makes `bugs` the active set until the returned guard drops (which restores the previous one,
/// so nested members, as in tests that step one member from another's harness, stay apart).
#[must_use]
pub(crate) fn activate(bugs: BugSet) -> ActiveGuard {
    #[cfg(feature = "bug-zoo")]
    {
        let previous = ACTIVE.with(|active| active.replace(bugs.0));
        ActiveGuard { previous }
    }
    #[cfg(not(feature = "bug-zoo"))]
    {
        let _ = bugs;
        ActiveGuard {}
    }
}

/// Restores the previously active set on drop.
pub(crate) struct ActiveGuard {
    #[cfg(feature = "bug-zoo")]
    previous: u64,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        #[cfg(feature = "bug-zoo")]
        ACTIVE.with(|active| active.set(self.previous));
    }
}

/// Whether `bug` is on for the member being stepped. Use the `bug!` macro at defect sites.
#[cfg(feature = "bug-zoo")]
pub fn is_active(bug: Bug) -> bool {
    ACTIVE.with(|active| active.get() & bug.bit() != 0)
}

/// `crate::bug!(Name)`: whether zoo bug `Bug::Name` is on. Always `false` (a constant, so the
/// defective branch is compiled out) without the `bug-zoo` feature.
#[cfg(feature = "bug-zoo")]
#[macro_export]
macro_rules! bug {
    ($bug:ident) => {
        $crate::zoo::is_active($crate::zoo::Bug::$bug)
    };
}

/// `crate::bug!(Name)`: whether zoo bug `Bug::Name` is on. Always `false` (a constant, so the
/// defective branch is compiled out) without the `bug-zoo` feature.
#[cfg(not(feature = "bug-zoo"))]
#[macro_export]
macro_rules! bug {
    ($bug:ident) => {{
        // Type-checks the name even in normal builds, so a site cannot rot unseen.
        let _ = $crate::zoo::Bug::$bug;
        false
    }};
}

#[cfg(test)]
mod tests {
    use super::{activate, Bug, BugSet};

    /// Goal: every bug has a unique name that parses back, and sets hold what was put in.
    /// Method: round-trip every name; build a set of two and list it.
    #[test]
    fn names_round_trip_and_sets_hold_their_bugs() {
        let mut names: Vec<&str> = Bug::ALL.iter().map(|bug| bug.name()).collect();
        for bug in Bug::ALL {
            assert_eq!(Bug::by_name(bug.name()), Some(bug));
            assert!(!bug.origin().is_empty());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Bug::ALL.len(), "names are unique");
        assert_eq!(Bug::by_name("no_such_bug"), None);
        let set = BugSet::of(Bug::SlowWatcherGap).with(Bug::VoteBeforeSync);
        let listed: Vec<Bug> = set.bugs().collect();
        assert_eq!(listed, vec![Bug::VoteBeforeSync, Bug::SlowWatcherGap]);
        assert!(!set.contains(Bug::CountCutByLimit));
    }

    /// Goal: a normal build cannot switch a bug on, whatever the set says; a zoo build switches
    /// on exactly the active set, and only while its guard lives.
    /// Method: activate a set holding every bug and ask the macro for each.
    #[test]
    fn the_macro_sees_only_the_active_set_and_only_in_zoo_builds() {
        let all = Bug::ALL
            .into_iter()
            .fold(BugSet::EMPTY, |set, bug| set.with(bug));
        {
            let _guard = activate(all);
            assert_eq!(crate::bug!(VoteBeforeSync), super::COMPILED_IN);
            assert_eq!(crate::bug!(CountCutByLimit), super::COMPILED_IN);
            let _inner = activate(BugSet::EMPTY);
            assert!(!crate::bug!(VoteBeforeSync));
        }
        assert!(
            !crate::bug!(VoteBeforeSync),
            "the guard restored the empty set"
        );
    }
}
