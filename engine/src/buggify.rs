//! Buggify, as FoundationDB does it: seeded decision points in the engine that make rare but
//! legal paths common in simulation (a one-entry append, a snapshot right now, a WAL segment
//! cut early, an apply put off to the next step, a heartbeat skipped). Each point is a choice a
//! correct member may make at any time, so a member with buggify on must stay correct; it only
//! reaches its rare paths far more often than traffic alone would.
//!
//! Off unless the host turns it on (`MemberConfig::buggify`); the real server never does. Off,
//! a point is one branch on an empty `Option` and draws nothing, so behaviour is identical to a
//! build without the points. On, each component draws from its own generator seeded from the
//! member's seed (never a global one), so a run replays exactly.
//!
//! This module decides nothing about where points go; the components call `fires`.

use crate::rng::Rng;

/// One decision point, with how often it fires when buggify is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// A leader sends an append of at most one entry (many small appends, more inflight).
    TinyAppendBatch,
    /// The member snapshots at this applied entry, whatever the interval says.
    SnapshotNow,
    /// The WAL starts a new segment before this record, whatever the size limit says.
    WalSegmentCut,
    /// The member applies nothing committed during this step; the next step does.
    ApplyDeferred,
    /// A leader skips one periodic heartbeat (followers may time out and campaign).
    HeartbeatSkipped,
}

impl Point {
    /// Chance of firing per visit, in parts per million. Points visited per entry or per
    /// record fire rarely, or the rare path would become the only one.
    fn chance_ppm(self) -> u64 {
        match self {
            Point::TinyAppendBatch => 100_000,
            Point::SnapshotNow => 5_000,
            Point::WalSegmentCut => 10_000,
            Point::ApplyDeferred => 50_000,
            Point::HeartbeatSkipped => 50_000,
        }
    }
}

/// A component's buggify generator: `None` when buggify is off.
#[derive(Clone, Debug, Default)]
pub struct Buggify {
    rng: Option<Rng>,
}

impl Buggify {
    /// Off: no point ever fires and nothing is drawn.
    pub fn off() -> Buggify {
        Buggify { rng: None }
    }

    /// On when `enabled`, drawing from a generator seeded with `seed` (give each component its
    /// own, so one component's draws do not shift another's).
    pub fn new(enabled: bool, seed: u64) -> Buggify {
        Buggify {
            rng: enabled.then(|| Rng::new(seed)),
        }
    }

    /// Whether buggify is on for this component.
    pub fn is_on(&self) -> bool {
        self.rng.is_some()
    }

    /// Whether `point` fires at this visit. Always false, drawing nothing, when off.
    #[inline]
    pub fn fires(&mut self, point: Point) -> bool {
        match &mut self.rng {
            None => false,
            Some(rng) => rng.range(0, 1_000_000) < point.chance_ppm(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Buggify, Point};

    /// Goal: off never fires; on fires sometimes but not always, and the same seed fires at
    /// the same visits. Method: visit one point many times with each setting.
    #[test]
    fn off_never_fires_and_on_replays_by_seed() {
        let mut off = Buggify::off();
        assert!((0..10_000).all(|_| !off.fires(Point::ApplyDeferred)));
        let visits = |seed| {
            let mut on = Buggify::new(true, seed);
            (0..10_000)
                .map(|_| on.fires(Point::ApplyDeferred))
                .collect::<Vec<bool>>()
        };
        let first = visits(9);
        let fired = first.iter().filter(|fired| **fired).count();
        assert!(fired > 0 && fired < first.len(), "fired {fired}");
        assert_eq!(first, visits(9));
        assert_ne!(first, visits(10));
        assert!(!Buggify::new(false, 9).is_on());
    }
}
