//! The seeded fault schedule: one fault at a time (SIGKILL and restart of a random member or of
//! the leader, SIGSTOP/SIGCONT, a member or the leader cut off by its links black-holed, lossy
//! or slow), held for a while, then healed, until the fault window closes.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};

use crate::cluster::Cluster;
use crate::proxy::LinkMode;

/// One fault as it was injected.
#[derive(Clone, Debug)]
pub struct InjectedFault {
    /// Seconds since the run started.
    pub at_seconds: f64,
    /// What was done, in words.
    pub description: String,
    /// Its kind, for the summary: `kill`, `kill_leader`, `pause` or `partition`.
    pub kind: &'static str,
}

fn between(rng: &mut ChaCha8Rng, low_ms: u64, high_ms: u64) -> Duration {
    Duration::from_millis(low_ms + rng.next_u64() % (high_ms - low_ms + 1))
}

/// Sets every link to and from `member` to `mode`.
fn cut_off(cluster: &Cluster, member: usize, mode: LinkMode) {
    for other in 0..cluster.size() {
        if other != member {
            cluster
                .links
                .set(cluster.ids[member], cluster.ids[other], mode);
            cluster
                .links
                .set(cluster.ids[other], cluster.ids[member], mode);
        }
    }
}

/// Injects faults from `seed` until `until`, healing each before the next; returns them.
pub async fn inject(
    cluster: &Cluster,
    seed: u64,
    started: tokio::time::Instant,
    until: tokio::time::Instant,
) -> anyhow::Result<Vec<InjectedFault>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut injected = Vec::new();
    loop {
        tokio::time::sleep(between(&mut rng, 500, 1_500)).await;
        let hold = between(&mut rng, 500, 2_500);
        if tokio::time::Instant::now() + hold >= until {
            return Ok(injected);
        }
        let kind_roll = rng.next_u64() % 5;
        let mut member = (rng.next_u64() % cluster.size() as u64) as usize;
        let mut kind = match kind_roll {
            0 => "kill",
            1 => "kill_leader",
            2 => "pause",
            _ => "partition",
        };
        let mut leader_note = "";
        // Half the partitions cut off the leader, which forces an election; the rest a member.
        if kind == "partition" && rng.next_u64() % 2 == 0 {
            if let Some(leader) = cluster.leader().await {
                member = leader;
                leader_note = " (the leader)";
            }
        }
        if kind == "kill_leader" {
            match cluster.leader().await {
                Some(leader) => {
                    member = leader;
                    leader_note = " (the leader)";
                }
                None => kind = "kill",
            }
        }
        let at_seconds = started.elapsed().as_secs_f64();
        let name = format!("member {}", member + 1);
        let hold_ms = hold.as_millis();
        let description = match kind {
            "kill" | "kill_leader" => {
                cluster.kill(member);
                tokio::time::sleep(hold).await;
                cluster.start(member)?;
                format!("SIGKILL {name}{leader_note}, restarted {hold_ms} ms later")
            }
            "pause" => {
                cluster.set_paused(member, true);
                tokio::time::sleep(hold).await;
                cluster.set_paused(member, false);
                format!("SIGSTOP {name} for {hold_ms} ms, then SIGCONT")
            }
            _ => {
                let mode = match kind_roll {
                    3 => LinkMode::Blackhole,
                    _ => match rng.next_u64() % 2 {
                        0 => LinkMode::Drop { percent: 70 },
                        _ => LinkMode::Delay { latency_ms: 150 },
                    },
                };
                cut_off(cluster, member, mode);
                tokio::time::sleep(hold).await;
                cluster.links.heal_all();
                format!(
                    "links of {name}{leader_note}: {mode} both ways for {hold_ms} ms, then healed"
                )
            }
        };
        eprintln!("chaos: {at_seconds:7.2}s {description}");
        injected.push(InjectedFault {
            at_seconds,
            description,
            kind,
        });
    }
}
