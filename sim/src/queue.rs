//! The discrete-event queue: events ordered by virtual time, then by insertion sequence, so two
//! events at the same instant always run in the order they were scheduled.
//!
//! It knows nothing about what the events mean and never reads a clock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use engine::types::Instant;

/// One scheduled event.
#[derive(Debug)]
struct Scheduled<E> {
    time: Instant,
    sequence: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time && self.sequence == other.sequence
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    // Reversed, because BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.sequence).cmp(&(self.time, self.sequence))
    }
}

/// A priority queue of events over virtual time.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
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
        EventQueue {
            heap: BinaryHeap::new(),
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
        self.heap.push(Scheduled {
            time,
            sequence: self.sequence_next,
            event,
        });
        self.sequence_next += 1;
    }

    /// Removes and returns the earliest event, advancing `now` to its time.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let scheduled = self.heap.pop()?;
        assert!(scheduled.time >= self.now);
        self.now = scheduled.time;
        Some((scheduled.time, scheduled.event))
    }

    /// The time of the earliest event, if any.
    pub fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|scheduled| scheduled.time)
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
