//! The fault schedule of a madsim run, drawn from the seed: one fault at a time, held for a
//! while and then healed, so at most one member is ever down (within any cluster's fault
//! budget; a crash is always survivable). Kinds: kill and restart a member (the leader half of
//! the time: the real process's crash, its data directory kept), pause and resume one (a
//! stopped process: its timers and connections freeze), clog a member's links both ways (a
//! partition), clog one link one way (an asymmetric partition), and clog the leader's
//! outgoing traffic (it hears the others, they do not hear it).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::rand::Rng as _;
use madsim::runtime::Handle;

use super::{draw, Cluster};

/// Injects faults until the workload is done; returns what it injected, one line each.
pub(crate) async fn run(cluster: Arc<Cluster>, handle: Handle) -> Vec<String> {
    let started = madsim::time::Instant::now();
    let net = NetSim::current();
    let member_count = cluster.nodes.len();
    let mut log = Vec::new();
    loop {
        madsim::time::sleep(draw(
            Duration::from_millis(200),
            Duration::from_millis(1_500),
        ))
        .await;
        if cluster.done.load(Ordering::Relaxed) {
            break;
        }
        let hold = draw(Duration::from_millis(300), Duration::from_millis(3_000));
        let (kind, target, other) = {
            let mut rng = madsim::rand::thread_rng();
            let leader = *cluster.leader.lock().expect("never poisoned");
            let target = match leader {
                Some(leader) if rng.gen_bool(0.5) => leader,
                _ => rng.gen_range(0..member_count),
            };
            let other = (target + rng.gen_range(1..member_count)) % member_count;
            (rng.gen_range(0..5u32), target, other)
        };
        let node = cluster.nodes[target].id();
        let at_ms = started.elapsed().as_millis();
        let description = match kind {
            0 => {
                handle.kill(node);
                madsim::time::sleep(hold).await;
                handle.restart(node);
                format!("kill m{} for {} ms, restart", target + 1, hold.as_millis())
            }
            1 => {
                handle.pause(node);
                madsim::time::sleep(hold).await;
                handle.resume(node);
                format!("pause m{} for {} ms", target + 1, hold.as_millis())
            }
            2 => {
                net.clog_node(node);
                madsim::time::sleep(hold).await;
                net.unclog_node(node);
                format!("isolate m{} for {} ms", target + 1, hold.as_millis())
            }
            3 => {
                let to = cluster.nodes[other].id();
                net.clog_link(node, to);
                madsim::time::sleep(hold).await;
                net.unclog_link(node, to);
                format!(
                    "clog link m{} -> m{} for {} ms",
                    target + 1,
                    other + 1,
                    hold.as_millis()
                )
            }
            _ => {
                net.clog_node_out(node);
                madsim::time::sleep(hold).await;
                net.unclog_node_out(node);
                format!(
                    "clog m{}'s outgoing for {} ms",
                    target + 1,
                    hold.as_millis()
                )
            }
        };
        log.push(format!("{at_ms} {description}"));
    }
    log
}

/// Makes sure every member runs and every link carries traffic (each fault heals itself; this
/// holds even if a run ended in the middle of one).
pub(crate) fn heal(cluster: &Cluster, handle: &Handle) {
    let net = NetSim::current();
    for node in &cluster.nodes {
        net.unclog_node(node.id());
        handle.resume(node.id());
    }
}
