//! Coverage marks: named counters at rare engine paths (a snapshot sent or installed, a
//! check-quorum step-down, a torn WAL tail repaired, ...), so that a campaign can say which
//! rare paths it reached and how often, and a test can hold a campaign to reaching them.
//!
//! Counting must cost next to nothing and never steer the engine: a mark is one increment of a
//! thread-local counter, read by nothing inside the engine. NB: the counters are per thread,
//! not per member; a host that wants one run's counts takes them (`take`) when the run starts
//! and when it ends, on the thread that runs it (the simulator runs a whole seed on one
//! thread, so the counts of a seed are exactly that seed's and are deterministic). This module
//! does not decide where marks go: call sites do, with `hit(Mark::...)`.

use core::cell::Cell;

/// A rare engine path worth counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mark {
    /// A leader sent a snapshot to a follower whose next entries were compacted away.
    SnapshotSent,
    /// A follower replaced its log with a snapshot from the leader.
    SnapshotInstalled,
    /// A leader stepped down because no quorum was recently active (check quorum).
    CheckQuorumStepDown,
    /// A vote request was ignored because a leader's lease was still on (check quorum).
    VoteIgnoredInLeaderLease,
    /// A follower rejected an append and the leader probed back from its hint.
    AppendRejected,
    /// Recovery cut off a torn WAL tail.
    TornTailRepaired,
    /// Recovery skipped a snapshot file it could not use and fell back to an older one.
    SnapshotSkippedAtRecovery,
    /// A leader proposed the revoke of a lease whose TTL ran out.
    LeaseRevokedByExpiry,
    /// A watch was cancelled because its start revision was compacted.
    WatchCancelledByCompaction,
    /// A proposal that reached the log twice was applied once and skipped the second time.
    ProposalDeduplicated,
}

impl Mark {
    /// Every mark, in declaration order.
    pub const ALL: [Mark; 10] = [
        Mark::SnapshotSent,
        Mark::SnapshotInstalled,
        Mark::CheckQuorumStepDown,
        Mark::VoteIgnoredInLeaderLease,
        Mark::AppendRejected,
        Mark::TornTailRepaired,
        Mark::SnapshotSkippedAtRecovery,
        Mark::LeaseRevokedByExpiry,
        Mark::WatchCancelledByCompaction,
        Mark::ProposalDeduplicated,
    ];

    /// The mark's name in reports (snake_case).
    pub fn name(self) -> &'static str {
        match self {
            Mark::SnapshotSent => "snapshot_sent",
            Mark::SnapshotInstalled => "snapshot_installed",
            Mark::CheckQuorumStepDown => "check_quorum_step_down",
            Mark::VoteIgnoredInLeaderLease => "vote_ignored_in_leader_lease",
            Mark::AppendRejected => "append_rejected",
            Mark::TornTailRepaired => "torn_tail_repaired",
            Mark::SnapshotSkippedAtRecovery => "snapshot_skipped_at_recovery",
            Mark::LeaseRevokedByExpiry => "lease_revoked_by_expiry",
            Mark::WatchCancelledByCompaction => "watch_cancelled_by_compaction",
            Mark::ProposalDeduplicated => "proposal_deduplicated",
        }
    }

    fn position(self) -> usize {
        self as usize
    }
}

/// Counts of every mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    counts: [u64; Mark::ALL.len()],
}

impl Marks {
    /// How often `mark` was hit.
    pub fn count(&self, mark: Mark) -> u64 {
        self.counts[mark.position()]
    }

    /// Every mark with its count, in `Mark::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (Mark, u64)> + '_ {
        Mark::ALL.into_iter().map(|mark| (mark, self.count(mark)))
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Marks) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count = count.saturating_add(more);
        }
    }
}

std::thread_local! {
    static COUNTS: [Cell<u64>; Mark::ALL.len()] = const { [const { Cell::new(0) }; Mark::ALL.len()] };
}

/// Counts one hit of `mark` on this thread.
pub fn hit(mark: Mark) {
    COUNTS.with(|counts| {
        let cell = &counts[mark.position()];
        cell.set(cell.get().saturating_add(1));
    });
}

/// This thread's counts since the last `take`, and zero from now on.
pub fn take() -> Marks {
    COUNTS.with(|counts| {
        let mut marks = Marks::default();
        for (into, cell) in marks.counts.iter_mut().zip(counts.iter()) {
            *into = cell.replace(0);
        }
        marks
    })
}

#[cfg(test)]
mod tests {
    use super::{hit, take, Mark};

    /// Goal: hits count per mark, `take` hands them out once and starts again from zero, and
    /// every mark has a distinct name and position. Method: hit, take, take again.
    #[test]
    fn hits_are_counted_and_taken() {
        let _earlier = take();
        hit(Mark::SnapshotSent);
        hit(Mark::SnapshotSent);
        hit(Mark::ProposalDeduplicated);
        let marks = take();
        assert_eq!(marks.count(Mark::SnapshotSent), 2);
        assert_eq!(marks.count(Mark::ProposalDeduplicated), 1);
        assert_eq!(marks.count(Mark::TornTailRepaired), 0);
        assert_eq!(take().iter().map(|(_, count)| count).sum::<u64>(), 0);
        let mut names: Vec<&str> = Mark::ALL.iter().map(|mark| mark.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mark::ALL.len());
        for (position, mark) in Mark::ALL.iter().enumerate() {
            assert_eq!(mark.position(), position);
        }
    }
}
