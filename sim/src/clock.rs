//! A member's local clock: the `now` a member is stepped with is its own view of time, which may
//! drift (tick faster or slower), start skewed, and jump forward. Elections and lease expiry in
//! the engine therefore feel clock faults without any engine code knowing about them.
//!
//! The local clock never goes backwards (engines treat `now` as monotonic, as real monotonic
//! clocks are): a backward jump freezes it until true time catches up. Integer math only.

use engine::types::Instant;

/// One drift unit: rates are given in parts per million of true time.
const PPM_I128: i128 = 1_000_000;
/// The same unit for 64-bit arithmetic.
const PPM_I64: i64 = 1_000_000;

/// One member's clock.
#[derive(Clone, Debug)]
pub struct SimClock {
    /// True time at the last rebase.
    base_true_ns: u64,
    /// Local time at the last rebase (may be below `last_local_ns` after a backward jump).
    base_local_ns: i128,
    /// Local ticks per true tick, minus one, in ppm (`+1000` runs 0.1% fast).
    drift_ppm: i64,
    /// Invariant: the largest local time handed out; never decreases.
    last_local_ns: u64,
}

impl SimClock {
    /// A clock that reads `skew_ns` ahead of true time at true time zero.
    pub fn new(skew_ns: u64) -> SimClock {
        SimClock {
            base_true_ns: 0,
            base_local_ns: i128::from(skew_ns),
            drift_ppm: 0,
            last_local_ns: skew_ns,
        }
    }

    #[inline]
    fn raw_local(&self, true_now: Instant) -> i128 {
        assert!(true_now.0 >= self.base_true_ns, "true time went backwards");
        let elapsed_ns = true_now.0 - self.base_true_ns;
        if self.drift_ppm == 0 {
            // The common case (no drift fault): elapsed * PPM / PPM is elapsed exactly.
            return self.base_local_ns + i128::from(elapsed_ns);
        }
        // 64-bit arithmetic when the product fits (for up to about 1.7 hours since the last
        // rebase), which avoids 128-bit division; the 128-bit path gives the same value beyond.
        let rate = PPM_I64 + self.drift_ppm;
        let scaled = i64::try_from(elapsed_ns)
            .ok()
            .and_then(|elapsed| elapsed.checked_mul(rate))
            .map_or_else(
                || i128::from(elapsed_ns) * i128::from(rate) / PPM_I128,
                |product| i128::from(product / PPM_I64),
            );
        self.base_local_ns + scaled
    }

    /// The member's local time at true time `true_now` (monotonic). Inlined: called once per
    /// member step, where the call itself cost as much as the drift-free arithmetic.
    #[inline]
    pub fn local(&mut self, true_now: Instant) -> Instant {
        let raw = self.raw_local(true_now).max(0);
        let raw = u64::try_from(raw).unwrap_or(u64::MAX);
        self.last_local_ns = self.last_local_ns.max(raw);
        Instant(self.last_local_ns)
    }

    /// The earliest true time (at or after `true_now`) at which the local clock reads `local`,
    /// assuming no further faults. Used to turn a member's `wake_at` into an event time.
    /// Inlined for the same reason as `local` (once per step that asks for a wake-up).
    #[inline]
    pub fn true_time_of(&self, local: Instant, true_now: Instant) -> Instant {
        let raw_now = self.raw_local(true_now);
        let wanted = i128::from(local.0);
        if wanted <= raw_now.max(i128::from(self.last_local_ns)) {
            return true_now;
        }
        let rate = PPM_I128 + i128::from(self.drift_ppm);
        assert!(rate > 0, "a clock must move forward");
        let rate_i64 = PPM_I64 + self.drift_ppm;
        let local_needed = wanted - raw_now;
        let true_needed = if self.drift_ppm == 0 {
            // Rate 1: the ceiling division below is the identity.
            local_needed
        } else {
            // Ceiling division, so the member never wakes before its deadline; in 64 bits when
            // it fits (both operands are positive, so the results agree).
            i64::try_from(local_needed)
                .ok()
                .and_then(|needed| needed.checked_mul(PPM_I64)?.checked_add(rate_i64 - 1))
                .map_or_else(
                    || (local_needed * PPM_I128 + rate - 1) / rate,
                    |numerator| i128::from(numerator / rate_i64),
                )
        };
        Instant(
            true_now
                .0
                .saturating_add(u64::try_from(true_needed).unwrap_or(u64::MAX)),
        )
    }

    fn rebase(&mut self, true_now: Instant) {
        self.base_local_ns = self.raw_local(true_now);
        self.base_true_ns = true_now.0;
    }

    /// From `true_now` on, the clock runs `drift_ppm` parts per million fast (or slow if negative).
    pub fn set_drift(&mut self, true_now: Instant, drift_ppm: i64) {
        assert!(
            drift_ppm > -500_000 && drift_ppm < 500_000,
            "drift beyond ±50%: {drift_ppm}"
        );
        self.rebase(true_now);
        self.drift_ppm = drift_ppm;
    }

    /// The clock jumps by `delta_ns` at `true_now` (a backward jump freezes the clock instead).
    pub fn jump(&mut self, true_now: Instant, delta_ns: i64) {
        self.rebase(true_now);
        self.base_local_ns += i128::from(delta_ns);
    }

    /// The current drift in ppm.
    pub fn drift_ppm(&self) -> i64 {
        self.drift_ppm
    }
}

#[cfg(test)]
mod tests {
    use super::SimClock;
    use engine::types::Instant;

    /// Goal: skew offsets, drift scales elapsed time, and wake times convert back exactly.
    /// Method: a clock 5 ms ahead running 10% fast; check readings and the inverse mapping.
    #[test]
    fn skew_and_drift_scale_local_time() {
        let mut clock = SimClock::new(5_000_000);
        assert_eq!(clock.local(Instant(0)), Instant(5_000_000));
        clock.set_drift(Instant(0), 100_000);
        assert_eq!(clock.local(Instant(1_000_000_000)), Instant(1_105_000_000));
        let wake = clock.true_time_of(Instant(2_205_000_000), Instant(1_000_000_000));
        assert_eq!(wake, Instant(2_000_000_000));
        assert!(clock.local(wake) >= Instant(2_205_000_000));
        assert_eq!(
            clock.true_time_of(Instant(3), Instant(1_000_000_000)),
            Instant(1_000_000_000)
        );
    }

    /// Goal: a forward jump moves local time ahead at once; a backward jump never makes the clock
    /// go back but freezes it until true time catches up. Method: jump both ways and read.
    #[test]
    fn jumps_keep_the_clock_monotonic() {
        let mut clock = SimClock::new(0);
        clock.jump(Instant(1_000), 10_000);
        assert_eq!(clock.local(Instant(1_000)), Instant(11_000));
        clock.jump(Instant(2_000), -5_000);
        // The last reading handed out was 11_000; the raw clock now reads 7_000 and catches up
        // with true time, so the member sees 11_000 until raw time passes it.
        assert_eq!(
            clock.local(Instant(2_000)),
            Instant(11_000),
            "frozen at its high mark"
        );
        assert_eq!(clock.local(Instant(6_000)), Instant(11_000));
        assert_eq!(clock.local(Instant(9_000)), Instant(14_000));
    }

    /// Goal: the 64-bit and drift-free shortcuts give exactly what the 128-bit formulas give.
    /// Method: for drifts (including zero) and elapsed times up to far beyond the 64-bit range
    /// of the product, compare `local` and `true_time_of` with the formulas evaluated in i128.
    #[test]
    fn shortcuts_match_the_128_bit_formulas() {
        let ppm = 1_000_000_i128;
        for drift_ppm in [0_i64, 1, -1, 1_000, -250_000, 499_999, -499_999] {
            for elapsed_ns in [
                0_u64,
                1,
                999_999,
                61_000_000_123,
                7_000_000_000_000,
                u64::MAX / 4,
            ] {
                let mut clock = SimClock::new(5);
                clock.set_drift(Instant(10), drift_ppm);
                let rate = ppm + i128::from(drift_ppm);
                // Skew 5 plus 10 drift-free ns before the drift starts.
                let raw = 15 + i128::from(elapsed_ns) * rate / ppm;
                let true_now = Instant(10 + elapsed_ns);
                let expected_local = u64::try_from(raw).unwrap_or(u64::MAX);
                assert_eq!(clock.clone().local(true_now), Instant(expected_local));
                for ahead_ns in [1_u64, 7, 1_000_000_007] {
                    let wanted = raw + i128::from(ahead_ns);
                    let Ok(wanted_u64) = u64::try_from(wanted) else {
                        continue;
                    };
                    let needed = (i128::from(ahead_ns) * ppm + rate - 1) / rate;
                    let expected = (10 + elapsed_ns).saturating_add(needed as u64);
                    assert_eq!(
                        clock.true_time_of(Instant(wanted_u64), true_now),
                        Instant(expected),
                        "drift={drift_ppm} elapsed={elapsed_ns} ahead={ahead_ns}"
                    );
                }
            }
        }
    }

    /// Goal: a slow clock wakes a member later in true time than a fast one.
    /// Method: same local deadline under -20% and +20% drift.
    #[test]
    fn slow_clocks_fire_late_and_fast_clocks_early() {
        let mut slow = SimClock::new(0);
        slow.set_drift(Instant(0), -200_000);
        let mut fast = SimClock::new(0);
        fast.set_drift(Instant(0), 200_000);
        let deadline = Instant(1_200_000_000);
        assert_eq!(
            slow.true_time_of(deadline, Instant(0)),
            Instant(1_500_000_000)
        );
        assert_eq!(
            fast.true_time_of(deadline, Instant(0)),
            Instant(1_000_000_000)
        );
    }
}
