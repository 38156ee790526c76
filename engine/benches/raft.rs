//! Throughput benchmark for `engine::raft`: committed proposals per second on a 3-member
//! in-memory cluster with instant delivery and instant persistence, batched (many proposals per
//! ready round) and unbatched (one proposal per round). Prints one JSON object.
//!
//! This is a host, so it may read the clock; it measures raft's own cost only (no disk, no
//! network, no application).

use std::time::Instant;

use engine::raft::{ConfState, Config, Raft, Restored, Role};
use engine::types::NodeId;

const MEMBER_COUNT: u64 = 3;

fn cluster(batch_size: usize) -> Vec<Raft> {
    let conf = ConfState {
        voters: (1..=MEMBER_COUNT).map(NodeId).collect(),
        learners: vec![],
    };
    let mut members: Vec<Raft> = (1..=MEMBER_COUNT)
        .map(|id| {
            let config = Config {
                uncommitted_entries_count_max: batch_size.max(1) * 4,
                ..Config::new(NodeId(id), id)
            };
            Raft::new(
                config,
                Restored {
                    conf: conf.clone(),
                    ..Restored::default()
                },
            )
        })
        .collect();
    members[0].campaign();
    settle(&mut members);
    assert_eq!(members[0].status().role, Role::Leader, "member 1 must lead");
    members
}

/// Runs ready rounds until quiet: persist instantly, deliver every message instantly.
/// Returns how many entries member 1 applied.
fn settle(members: &mut [Raft]) -> u64 {
    let mut applied_count = 0;
    loop {
        let mut messages = Vec::new();
        for (position, member) in members.iter_mut().enumerate() {
            if !member.has_ready() {
                continue;
            }
            let ready = member.ready();
            if position == 0 {
                applied_count += ready.committed.len() as u64;
            }
            messages.extend(ready.messages);
            if let Some(batch) = ready.persist {
                member.on_persisted(batch.id);
            }
        }
        if messages.is_empty() && members.iter().all(|member| !member.has_ready()) {
            return applied_count;
        }
        for message in messages {
            members[(message.to.0 - 1) as usize].step(message);
        }
    }
}

/// Proposes `total` entries, `batch_size` per round, and returns committed proposals per second.
fn proposals_per_second(total: usize, batch_size: usize) -> f64 {
    let mut members = cluster(batch_size);
    let payload = vec![7u8; 64];
    // Benches are hosts, not engine: reading the clock here is the point (see the file header).
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut applied = 0u64;
    let mut proposed = 0usize;
    while proposed < total {
        for _ in 0..batch_size.min(total - proposed) {
            members[0].propose(payload.clone()).expect("leader accepts");
            proposed += 1;
        }
        applied += settle(&mut members);
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        applied, total as u64,
        "every proposal is applied exactly once"
    );
    total as f64 / seconds
}

fn main() {
    let unbatched = proposals_per_second(50_000, 1);
    let batched = proposals_per_second(500_000, 256);
    {
        println!(
            "{{\"bench\":\"raft\",\"members\":{MEMBER_COUNT},\"unbatched_proposals_per_second\":{unbatched:.0},\"batched_proposals_per_second\":{batched:.0},\"batch_size\":256,\"batched_over_unbatched\":{:.2}}}",
            batched / unbatched
        );
    }
}
