//! Inline safety checks that every run asserts until the checkers crate is connected: at most one
//! leader per term, no two members applying different entries at one index, and no acknowledged
//! write missing after recovery (no read or write that starts after a write was acknowledged may
//! see an older revision than that write's). The clients also record here when one watch stream
//! delivers a revision below one it already delivered.
//!
//! A violation becomes a [`Failure`] of the run, never a panic. These checks see only the
//! members' observations and client replies; they do not replace the linearizability checker.

use std::collections::BTreeMap;

use engine::types::{Instant, LogIndex, NodeId, Revision, Term};

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The check that failed, in snake_case.
    pub check: String,
    /// Simulated time of the violation (ns).
    pub time_ns: u64,
    /// What was seen, for humans.
    pub message: String,
    /// For a checker's violation: the smallest window of operation ids that shows it.
    pub window: Vec<u64>,
}

/// Most failures kept per run; later ones are counted only.
pub const FAILURES_MAX: usize = 32;

/// Applied indices below this are looked up in a dense vector (a run applies thousands, and
/// every member applies each one: a map lookup per entry showed in profiles); higher ones, which
/// only a member reporting nonsense would send, go to a map, so memory stays bounded.
pub const APPLIED_DENSE_INDEX_MAX: u64 = 1 << 20;

/// Who first applied an entry: (member, term, digest).
type FirstApplied = (NodeId, Term, u64);

/// The inline checks' state.
#[derive(Debug, Default)]
pub struct Invariants {
    leader_of_term: BTreeMap<Term, NodeId>,
    /// The first (member, term, digest) applied at each index below `APPLIED_DENSE_INDEX_MAX`,
    /// indexed by the log index.
    applied_dense: Vec<Option<FirstApplied>>,
    /// The same for indices at or above `APPLIED_DENSE_INDEX_MAX`.
    applied_sparse: BTreeMap<LogIndex, FirstApplied>,
    /// The highest index in either.
    applied_index_max: LogIndex,
    /// Acknowledged writes in return order: (return time, largest revision acknowledged so far).
    /// Invariant: both components are non-decreasing.
    acknowledged: Vec<(Instant, Revision)>,
    failures: Vec<Failure>,
    failures_dropped_count: u64,
}

impl Invariants {
    /// No violation yet.
    pub fn new() -> Invariants {
        Invariants::default()
    }

    fn fail(&mut self, check: &str, time: Instant, message: String) {
        if self.failures.len() < FAILURES_MAX {
            self.failures.push(Failure {
                check: check.to_string(),
                time_ns: time.0,
                message,
                window: Vec::new(),
            });
        } else {
            self.failures_dropped_count += 1;
        }
    }

    /// Records a failure found elsewhere (liveness, a member panic).
    pub fn record(&mut self, check: &str, time: Instant, message: String) {
        self.fail(check, time, message);
    }

    /// `node` became leader of `term`.
    pub fn on_leader(&mut self, time: Instant, node: NodeId, term: Term) {
        match self.leader_of_term.get(&term) {
            Some(existing) if *existing != node => {
                let message = format!("n{node} and n{existing} both became leader of term {term}");
                self.fail("one_leader_per_term", time, message);
            }
            Some(_) => {}
            None => {
                self.leader_of_term.insert(term, node);
            }
        }
    }

    /// `node` applied the entry (`term`, `digest`) at `index`.
    pub fn on_applied(
        &mut self,
        time: Instant,
        node: NodeId,
        index: LogIndex,
        term: Term,
        digest: u64,
    ) {
        match self.first_applied(index) {
            Some((first, first_term, first_digest))
                if (first_term, first_digest) != (term, digest) =>
            {
                let message = format!(
                    "at index {index} n{first} applied term={first_term} digest={first_digest:016x} but n{node} applied term={term} digest={digest:016x}"
                );
                self.fail("same_entry_at_each_index", time, message);
            }
            Some(_) => {}
            None => self.set_first_applied(index, (node, term, digest)),
        }
    }

    fn first_applied(&self, index: LogIndex) -> Option<FirstApplied> {
        if index.0 < APPLIED_DENSE_INDEX_MAX {
            let slot = usize::try_from(index.0).expect("below the dense bound");
            self.applied_dense.get(slot).copied().flatten()
        } else {
            self.applied_sparse.get(&index).copied()
        }
    }

    fn set_first_applied(&mut self, index: LogIndex, first: FirstApplied) {
        assert!(self.first_applied(index).is_none(), "set once per index");
        if index.0 < APPLIED_DENSE_INDEX_MAX {
            let slot = usize::try_from(index.0).expect("below the dense bound");
            if slot >= self.applied_dense.len() {
                self.applied_dense.resize(slot + 1, None);
            }
            self.applied_dense[slot] = Some(first);
        } else {
            self.applied_sparse.insert(index, first);
        }
        self.applied_index_max = self.applied_index_max.max(index);
    }

    /// A write was acknowledged at `time` with `revision`.
    pub fn on_write_acknowledged(&mut self, time: Instant, revision: Revision) {
        let previous = self
            .acknowledged
            .last()
            .copied()
            .unwrap_or((Instant(0), Revision(0)));
        assert!(
            time >= previous.0,
            "acknowledgements are recorded in time order"
        );
        self.acknowledged.push((time, previous.1.max(revision)));
    }

    /// A linearizable operation called at `call` saw the store at `revision`: every write
    /// acknowledged strictly before `call` must be at or below it.
    pub fn on_linearizable_result(
        &mut self,
        time: Instant,
        call: Instant,
        revision: Revision,
        what: &str,
    ) {
        // The entries with return < call form a prefix; take the max revision over it.
        let prefix_len = self
            .acknowledged
            .partition_point(|(returned, _)| *returned < call);
        if prefix_len == 0 {
            return;
        }
        let (returned, floor) = self.acknowledged[prefix_len - 1];
        if revision < floor {
            let message = format!(
                "{what} called at {}ns saw revision {revision}, but revision {floor} was acknowledged by {}ns",
                call.0, returned.0
            );
            self.fail("acknowledged_write_lost", time, message);
        }
    }

    /// The failures found so far.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Failures beyond `FAILURES_MAX`, counted only.
    pub fn failures_dropped_count(&self) -> u64 {
        self.failures_dropped_count
    }

    /// How many terms had a leader.
    pub fn leader_terms_count(&self) -> usize {
        self.leader_of_term.len()
    }

    /// The highest index applied by anyone.
    pub fn applied_index_max(&self) -> LogIndex {
        self.applied_index_max
    }
}

#[cfg(test)]
mod tests {
    use super::Invariants;
    use engine::types::{Instant, LogIndex, NodeId, Revision, Term};

    /// Goal: two leaders in one term is caught, one leader re-announcing is not.
    /// Method: feed BecameLeader facts and count failures.
    #[test]
    fn two_leaders_in_a_term_fail() {
        let mut checks = Invariants::new();
        checks.on_leader(Instant(1), NodeId(1), Term(2));
        checks.on_leader(Instant(2), NodeId(1), Term(2));
        checks.on_leader(Instant(3), NodeId(2), Term(3));
        assert!(checks.failures().is_empty());
        checks.on_leader(Instant(4), NodeId(3), Term(3));
        assert_eq!(checks.failures()[0].check, "one_leader_per_term");
    }

    /// Goal: divergent applies at one index are caught; identical ones are not.
    /// Method: three members apply index 5, the third with another digest.
    #[test]
    fn divergent_applies_fail() {
        let mut checks = Invariants::new();
        checks.on_applied(Instant(1), NodeId(1), LogIndex(5), Term(2), 0xaa);
        checks.on_applied(Instant(2), NodeId(2), LogIndex(5), Term(2), 0xaa);
        assert!(checks.failures().is_empty());
        checks.on_applied(Instant(3), NodeId(3), LogIndex(5), Term(2), 0xbb);
        assert_eq!(checks.failures()[0].check, "same_entry_at_each_index");
        assert_eq!(checks.applied_index_max(), LogIndex(5));
    }

    /// Goal: indices beyond the dense vector's bound are checked the same way, and the highest
    /// index is tracked across both stores. Method: agreeing and divergent applies far above the
    /// bound, then one below it.
    #[test]
    fn divergent_applies_fail_beyond_the_dense_bound() {
        let far = LogIndex(super::APPLIED_DENSE_INDEX_MAX + 17);
        let mut checks = Invariants::new();
        checks.on_applied(Instant(1), NodeId(1), far, Term(2), 0xaa);
        checks.on_applied(Instant(2), NodeId(2), far, Term(2), 0xaa);
        assert!(checks.failures().is_empty());
        checks.on_applied(Instant(3), NodeId(3), LogIndex(3), Term(1), 0xcc);
        checks.on_applied(Instant(4), NodeId(3), far, Term(3), 0xaa);
        assert_eq!(checks.failures().len(), 1);
        assert_eq!(checks.failures()[0].check, "same_entry_at_each_index");
        assert_eq!(checks.applied_index_max(), far);
    }

    /// Goal: a read that starts after a write was acknowledged must not see an older revision;
    /// concurrent operations may. Method: ack revision 10 at t=100, then reads called at t=100
    /// (concurrent: fine) and t=101 seeing revision 9 (lost: failure).
    #[test]
    fn stale_revision_after_acknowledgement_fails() {
        let mut checks = Invariants::new();
        checks.on_write_acknowledged(Instant(50), Revision(4));
        checks.on_write_acknowledged(Instant(100), Revision(10));
        checks.on_linearizable_result(Instant(120), Instant(100), Revision(9), "range");
        checks.on_linearizable_result(Instant(120), Instant(60), Revision(4), "range");
        assert!(checks.failures().is_empty());
        checks.on_linearizable_result(Instant(130), Instant(101), Revision(9), "range");
        assert_eq!(checks.failures()[0].check, "acknowledged_write_lost");
    }
}
