//! Election timeouts are drawn from `[t, 2t)` ticks, per member and per seed, as raft requires
//! for split votes to be rare. The script `election_timeouts_are_randomized_between_t_and_2t`
//! shows three members at work; this test holds the bound over many seeds.

use engine::raft::{ConfState, Config, Raft, Restored};
use engine::types::NodeId;

/// Ticks a fresh follower until it has output (its first campaign message) and returns how
/// many ticks that took, or `None` if it stayed silent for `limit_ticks`.
fn ticks_until_campaign(seed: u64, limit_ticks: u32) -> Option<u32> {
    let config = Config::new(NodeId(1), seed);
    let restored = Restored {
        conf: ConfState {
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            learners: Vec::new(),
        },
        ..Restored::default()
    };
    let mut raft = Raft::new(config, restored);
    (1..=limit_ticks).find(|_| {
        raft.tick();
        raft.has_ready()
    })
}

/// Goal: every election timeout lies in `[t, 2t)` and the draw really varies: over 500 seeds
/// the timeouts take most of the t values the range allows, both ends included.
/// Method: measure the ticks to the first campaign of a fresh member for each seed.
#[test]
fn election_timeouts_stay_within_t_and_2t_over_many_seeds() {
    let timeout_ticks = Config::new(NodeId(1), 0).election_timeout_ticks;
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..500 {
        let ticks = ticks_until_campaign(seed, 4 * timeout_ticks).unwrap_or_else(|| {
            panic!(
                "seed {seed}: no campaign within {} ticks",
                4 * timeout_ticks
            )
        });
        // The campaign starts on the tick the elapsed count reaches the timeout.
        assert!(
            (timeout_ticks..2 * timeout_ticks).contains(&ticks),
            "seed {seed}: campaigned after {ticks} ticks, outside [{timeout_ticks}, {})",
            2 * timeout_ticks
        );
        seen.insert(ticks);
    }
    assert!(
        seen.contains(&timeout_ticks),
        "the low end is drawn: {seen:?}"
    );
    assert!(
        seen.contains(&(2 * timeout_ticks - 1)),
        "the high end is drawn: {seen:?}"
    );
    assert!(
        seen.len() as u32 >= timeout_ticks * 8 / 10,
        "the draw varies: {seen:?}"
    );
}
