//! The discrete-event queue: events ordered by virtual time, then by insertion sequence, so two
//! events at the same instant always run in the order they were scheduled.
//!
//! It knows nothing about what the events mean and never reads a clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use engine::types::Instant;

/// Bits of a key that name the slab slot; `events_count_max` must fit in them.
const SLOT_BITS: u32 = 21;
/// Bits of a key left for the insertion sequence (2^43 schedules is far beyond any run).
const SEQUENCE_BITS: u32 = 64 - SLOT_BITS;

/// A heap entry, packed into one integer so that ordering is one 128-bit comparison and sifting
/// moves 16 bytes, not whole events (the events never move while they wait):
/// `time << 64 | sequence << SLOT_BITS | slot`. Ordering by it is ordering by (time, sequence),
/// since sequences are unique and the slot sits below them.
type Key = Reverse<u128>;

fn pack_key(time: Instant, sequence: u64, slot: u32) -> Key {
    assert!(sequence < 1 << SEQUENCE_BITS, "sequence numbers exhausted");
    assert!(slot < 1 << SLOT_BITS);
    Reverse(u128::from(time.0) << 64 | u128::from(sequence << SLOT_BITS | u64::from(slot)))
}

/// The (time, slot) of a key.
fn unpack_key(Reverse(key): Key) -> (Instant, u32) {
    let low = key as u64;
    let slot = u32::try_from(low & ((1 << SLOT_BITS) - 1)).expect("masked to SLOT_BITS");
    (Instant((key >> 64) as u64), slot)
}

/// A priority queue of events over virtual time.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// Min-heap (by `Reverse`) of waiting events' keys.
    heap: BinaryHeap<Key>,
    /// Waiting events by slot; `None` for a free slot.
    /// Invariant: slot `s` is `Some` exactly when one key in `heap` names `s`.
    slots: Vec<Option<E>>,
    /// Free slots of `slots`, reused before the slab grows.
    free_slots: Vec<u32>,
    /// Invariant: strictly greater than every sequence number in the heap.
    sequence_next: u64,
    /// Invariant: never decreases; no event is scheduled before it.
    now: Instant,
    events_count_max: usize,
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero holding at most `events_count_max` events.
    pub fn new(events_count_max: usize) -> EventQueue<E> {
        assert!(events_count_max > 0);
        assert!(
            events_count_max <= 1 << SLOT_BITS,
            "slots must fit in a key's slot bits"
        );
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            sequence_next: 0,
            now: Instant(0),
            events_count_max,
        }
    }

    /// The time of the last event popped.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Schedules `event` at `time`, which must not be in the past.
    pub fn schedule(&mut self, time: Instant, event: E) {
        assert!(
            time >= self.now,
            "event scheduled in the past: {} < {}",
            time.0,
            self.now.0
        );
        assert!(
            self.heap.len() < self.events_count_max,
            "event queue is full: a runaway feedback loop"
        );
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let free = &mut self.slots[slot as usize];
                assert!(free.is_none(), "a free slot holds no event");
                *free = Some(event);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("bounded by events_count_max");
                self.slots.push(Some(event));
                slot
            }
        };
        self.heap.push(pack_key(time, self.sequence_next, slot));
        self.sequence_next += 1;
    }

    /// Removes and returns the earliest event, advancing `now` to its time. Inlined into the
    /// one loop that calls it, so the event is copied out of its slot once, not twice.
    #[inline]
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let (time, slot) = unpack_key(self.heap.pop()?);
        assert!(time >= self.now);
        self.now = time;
        let event = self.slots[slot as usize]
            .take()
            .expect("a queued key names a filled slot");
        self.free_slots.push(slot);
        Some((time, event))
    }

    /// The time of the earliest event, if any.
    pub fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|key| unpack_key(*key).0)
    }

    /// How many events are waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::EventQueue;
    use engine::types::Instant;

    /// Goal: events come out by time, and ties keep insertion order. Method: schedule events out
    /// of order with several at one instant, pop them all, compare with a sort-based oracle.
    #[test]
    fn orders_by_time_then_insertion() {
        let mut queue = EventQueue::new(100);
        let times = [5_u64, 1, 5, 3, 1, 5, 0];
        for (label, time) in times.iter().enumerate() {
            queue.schedule(Instant(*time), label);
        }
        let mut expected: Vec<(u64, usize)> = times
            .iter()
            .enumerate()
            .map(|(label, time)| (*time, label))
            .collect();
        expected.sort();
        let mut popped = Vec::new();
        while let Some((time, label)) = queue.pop() {
            popped.push((time.0, label));
            assert_eq!(queue.now(), time);
        }
        assert_eq!(popped, expected);
    }

    /// Goal: slots freed by pops are reused without disturbing the order of what still waits.
    /// Method: interleave schedules and pops (so freed slots are refilled by later events with
    /// earlier times), and compare the pop order with a sort-based oracle of (time, insertion).
    #[test]
    fn reused_slots_keep_time_then_insertion_order() {
        let mut queue = EventQueue::new(100);
        let mut expected: Vec<(u64, usize)> = Vec::new();
        let mut popped = Vec::new();
        let mut label = 0_usize;
        for round in 0..20_u64 {
            for offset in [7_u64, 3, 3, 9] {
                let time = queue.now().0 + (offset * (round + 1)) % 11;
                queue.schedule(Instant(time), label);
                expected.push((time, label));
                label += 1;
            }
            for _ in 0..3 {
                let (time, label) = queue.pop().expect("events are waiting");
                popped.push((time.0, label));
            }
        }
        while let Some((time, label)) = queue.pop() {
            popped.push((time.0, label));
        }
        assert!(queue.slots.len() < label, "freed slots were reused");
        expected.sort();
        // Popping interleaved with scheduling still yields a time-ordered sequence here, since
        // every event is scheduled at or after the last popped time.
        assert_eq!(popped.len(), expected.len());
        let mut sorted_popped = popped.clone();
        sorted_popped.sort();
        assert_eq!(sorted_popped, expected);
        assert!(popped.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        for pair in popped.windows(2) {
            if pair[0].0 == pair[1].0 {
                assert!(
                    pair[0].1 < pair[1].1,
                    "ties pop in insertion order: {pair:?}"
                );
            }
        }
    }

    /// Goal: scheduling in the past is a programmer error and must panic.
    /// Method: pop an event at t=10, then schedule at t=5.
    #[test]
    #[should_panic(expected = "in the past")]
    fn rejects_the_past() {
        let mut queue = EventQueue::new(10);
        queue.schedule(Instant(10), ());
        let _ = queue.pop();
        queue.schedule(Instant(5), ());
    }
}
