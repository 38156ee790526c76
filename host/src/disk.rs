//! The member's disk queue: operations are carried out one at a time, first in, first out, and
//! each completion is reported in that order (`engine::api::DiskOp`'s contract: a later
//! operation never overtakes an earlier one). The simulator also derives completion times from
//! it; the server performs the operations on one thread and checks the completions against it.

use std::collections::VecDeque;

use engine::api::{DiskOp, DiskOpId};
use engine::types::{Duration, Instant};

/// Operations issued and not yet reported complete, oldest first.
#[derive(Debug, Default)]
pub struct DiskQueue {
    /// Invariant: ids strictly increase from front to back.
    in_flight: VecDeque<DiskOpId>,
    /// Invariant: no operation issued so far completes after this (operations are serial).
    busy_until: Instant,
}

impl DiskQueue {
    /// An idle queue.
    pub fn new() -> DiskQueue {
        DiskQueue::default()
    }

    /// Records `op_id` as issued at `now` taking `latency` once the disk is free; returns when
    /// it completes: after every earlier operation.
    pub fn issue(&mut self, op_id: DiskOpId, now: Instant, latency: Duration) -> Instant {
        if let Some(last) = self.in_flight.back() {
            assert!(*last < op_id, "disk operations are issued in id order");
        }
        self.in_flight.push_back(op_id);
        self.reserve(now, latency)
    }

    /// Reserves the disk for `latency` from `now` (or from when it frees up), without tracking
    /// an id; returns when that use ends.
    pub fn reserve(&mut self, now: Instant, latency: Duration) -> Instant {
        let start = self.busy_until.max(now);
        let done = start + latency;
        assert!(
            done >= self.busy_until,
            "the disk never completes out of order"
        );
        self.busy_until = done;
        done
    }

    /// Records that `op_id` completed. Panics when it is not the oldest in flight: the host
    /// broke the FIFO rule, and the member would act on a durability it does not have.
    pub fn complete(&mut self, op_id: DiskOpId) {
        let oldest = self.in_flight.pop_front();
        assert_eq!(
            oldest,
            Some(op_id),
            "disk completions must come in issue order"
        );
    }

    /// Records that every operation up to and including `op_id` completed. Panics when
    /// `op_id` is not in flight: the host reported an operation it never issued, or twice.
    pub fn complete_through(&mut self, op_id: DiskOpId) {
        assert!(
            self.in_flight.contains(&op_id),
            "disk completions must name an operation in flight"
        );
        while self
            .in_flight
            .pop_front()
            .is_some_and(|oldest| oldest != op_id)
        {}
    }

    /// Operations issued and not yet complete.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// Forgets everything in flight (the member crashed; its operations' fate is the disk's).
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }
}

/// A disk a host performs a member's operations on: the simulated disk and the real data
/// directory both implement it, and [`crate::conformance`] holds them to one contract.
pub trait HostDisk {
    /// Performs one operation now.
    fn perform(&mut self, op: &DiskOp) -> Result<(), engine::api::DiskFault>;
    /// Every file and its bytes, as a restarted member would find them.
    fn image(&mut self) -> Result<engine::api::DiskImage, String>;
    /// Loses whatever is not durable, as a power cut would (real files: nothing is lost that
    /// the OS already holds, which is a weaker crash, and allowed).
    fn crash(&mut self);
}

#[cfg(test)]
mod tests {
    use super::DiskQueue;
    use engine::api::DiskOpId;
    use engine::types::{Duration, Instant};

    /// Goal: operations complete serially and in order, and an out-of-order completion is
    /// caught. Method: issue three at one instant; complete them; complete one twice.
    #[test]
    fn serial_and_in_order() {
        let mut queue = DiskQueue::new();
        let latency = Duration::from_millis(1);
        let times: Vec<Instant> = (1..=3)
            .map(|id| queue.issue(DiskOpId(id), Instant(100), latency))
            .collect();
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
        assert_eq!(queue.in_flight_count(), 3);
        queue.complete(DiskOpId(1));
        queue.complete(DiskOpId(2));
        let out_of_order = std::panic::catch_unwind(move || queue.complete(DiskOpId(1)));
        assert!(out_of_order.is_err(), "a repeated completion is a host bug");
    }
}
