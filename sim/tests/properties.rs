//! Property tests of the simulator's pure parts against dumb models: the event queue against a
//! sort, and the lost-acknowledged-write check against a brute-force scan.

use engine::types::{Instant, Revision};
use proptest::prelude::*;
use sim::invariants::Invariants;
use sim::queue::EventQueue;

proptest! {
    /// Goal: whatever the schedule, events pop in (time, insertion) order, even when pops and
    /// schedules interleave. Method: schedule batches at times at or after `now`, pop some after
    /// each batch, and compare the whole pop sequence with a stable sort of what was scheduled.
    #[test]
    fn queue_pops_in_time_then_insertion_order(batches in prop::collection::vec((prop::collection::vec(0_u64..50, 0..8), 0_usize..6), 1..20)) {
        let mut queue = EventQueue::new(10_000);
        let mut scheduled: Vec<(u64, usize)> = Vec::new();
        let mut popped: Vec<(u64, usize)> = Vec::new();
        for (offsets, pops) in batches {
            for offset in offsets {
                let label = scheduled.len();
                let time = queue.now().0 + offset;
                queue.schedule(Instant(time), label);
                scheduled.push((time, label));
            }
            for _ in 0..pops {
                if let Some((time, label)) = queue.pop() {
                    popped.push((time.0, label));
                }
            }
        }
        while let Some((time, label)) = queue.pop() {
            popped.push((time.0, label));
        }
        // Times never go back, and equal times keep insertion order.
        for pair in popped.windows(2) {
            prop_assert!(pair[0].0 <= pair[1].0);
            if pair[0].0 == pair[1].0 {
                prop_assert!(pair[0].1 < pair[1].1);
            }
        }
        let mut expected = scheduled.clone();
        expected.sort();
        let mut sorted_popped = popped.clone();
        sorted_popped.sort();
        prop_assert_eq!(sorted_popped, expected);
    }

    /// Goal: the prefix-maximum shortcut of `acknowledged_write_lost` flags exactly what a
    /// brute-force scan flags. Method: random acknowledgements in time order, then random
    /// reads; the oracle scans every acknowledgement that returned strictly before the call.
    #[test]
    fn lost_write_check_matches_brute_force(
        acks in prop::collection::vec((0_u64..5, 1_i64..30), 0..20),
        reads in prop::collection::vec((0_u64..120, 0_i64..30), 1..20),
    ) {
        let mut time = 0;
        let mut acknowledged: Vec<(u64, i64)> = Vec::new();
        let mut checks = Invariants::new();
        for (gap, revision) in acks {
            time += gap;
            checks.on_write_acknowledged(Instant(time), Revision(revision));
            acknowledged.push((time, revision));
        }
        let mut expected_failures = 0;
        for (call, revision) in reads {
            let floor = acknowledged.iter().filter(|(returned, _)| *returned < call).map(|(_, revision)| *revision).max();
            if floor.is_some_and(|floor| revision < floor) {
                expected_failures += 1;
            }
            checks.on_linearizable_result(Instant(1_000), Instant(call), Revision(revision), "range");
        }
        prop_assert_eq!(checks.failures().len(), expected_failures.min(sim::invariants::FAILURES_MAX));
    }
}
