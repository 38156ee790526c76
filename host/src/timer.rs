//! One timer per member, kept as the earliest wake asked for. A member asks for a wake at every
//! step (`Actions::wake_at`); a host that scheduled a timer per step would wake it once per
//! step it ever took. Keeping only the earliest is enough, because the member re-arms its timer
//! whenever it is woken, and a wake that comes early is harmless (the engine allows spurious
//! wakes).

use engine::types::Instant;

/// The member's pending wake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSlot {
    /// Invariant: the earliest wake asked for since the last one fired.
    at: Option<Instant>,
}

impl TimerSlot {
    /// An empty slot.
    pub fn new() -> TimerSlot {
        TimerSlot { at: None }
    }

    /// Asks for a wake at `at`. Returns true when the host must schedule it (nothing was
    /// scheduled, or it is earlier than what was); false when an earlier or equal wake already
    /// stands and will wake the member first.
    pub fn arm(&mut self, at: Instant) -> bool {
        if self.at.is_some_and(|scheduled| scheduled <= at) {
            return false;
        }
        self.at = Some(at);
        true
    }

    /// When the member wants waking, if at all.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// Whether a wake scheduled for `at` is the standing one: a host whose timers cannot be
    /// cancelled fires all it scheduled and steps the member only for the standing one.
    pub fn is_current(&self, at: Instant) -> bool {
        self.at == Some(at)
    }

    /// Takes the wake if it is due at `now`; the member is then stepped with `Input::Timer`.
    pub fn fire(&mut self, now: Instant) -> bool {
        if self.at.is_some_and(|at| at <= now) {
            self.at = None;
            return true;
        }
        false
    }

    /// Forgets the wake (the member stopped).
    pub fn clear(&mut self) {
        self.at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::TimerSlot;
    use engine::types::Instant;

    /// Goal: the slot keeps the earliest wake and tells the host when to schedule one.
    /// Method: arm later, earlier and equal times; fire before and at the wake.
    #[test]
    fn keeps_the_earliest_wake() {
        let mut slot = TimerSlot::new();
        assert!(slot.arm(Instant(100)));
        assert!(
            !slot.arm(Instant(200)),
            "a later wake waits for the earlier"
        );
        assert!(
            !slot.arm(Instant(100)),
            "an equal wake is already scheduled"
        );
        assert!(slot.arm(Instant(50)));
        assert_eq!(slot.at(), Some(Instant(50)));
        assert!(!slot.is_current(Instant(100)), "a superseded wake is stale");
        assert!(!slot.fire(Instant(49)));
        assert!(slot.fire(Instant(50)));
        assert_eq!(slot.at(), None);
        assert!(
            slot.arm(Instant(200)),
            "after firing, any wake is scheduled"
        );
    }
}
