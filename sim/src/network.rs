//! The simulated network between members: per-link latency, drop, duplication and reordering,
//! and partitions kept as an explicit reachability graph (an edge `a -> b` means a can send to b).
//!
//! Messages are opaque here: the network only decides whether and when each copy arrives. It
//! does not carry client traffic (clients reach members over their own links) and never reads a
//! clock.

use std::fmt::Write as _;

use engine::types::{Duration, NodeId};
use petgraph::graphmap::DiGraphMap;

use crate::rng::SimRng;

/// Link behaviour, in integer units (nanoseconds, parts per million).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkConfig {
    /// Each link's base one-way latency is drawn once from this range (ns).
    pub link_latency_ns_min: u64,
    /// See `link_latency_ns_min`.
    pub link_latency_ns_max: u64,
    /// Each message adds a uniform jitter up to this (ns).
    pub jitter_ns_max: u64,
    /// Chance that a message's latency is multiplied by `spike_factor` (a slow path).
    pub spike_ppm: u32,
    /// See `spike_ppm`.
    pub spike_factor: u64,
    /// Chance that a message is dropped.
    pub drop_ppm: u32,
    /// Chance that a message is delivered twice.
    pub duplicate_ppm: u32,
    /// Chance that a message is held back long enough for later ones to overtake it.
    pub reorder_ppm: u32,
    /// The longest hold-back of a reordered message (ns).
    pub reorder_delay_ns_max: u64,
}

impl NetworkConfig {
    /// A fast, reliable LAN: 0.2–1 ms links, no loss.
    pub fn reliable() -> NetworkConfig {
        NetworkConfig {
            link_latency_ns_min: 200_000,
            link_latency_ns_max: 1_000_000,
            jitter_ns_max: 200_000,
            spike_ppm: 0,
            spike_factor: 1,
            drop_ppm: 0,
            duplicate_ppm: 0,
            reorder_ppm: 0,
            reorder_delay_ns_max: 0,
        }
    }

    /// A lossy network: drops, duplicates, reordering and latency spikes.
    pub fn lossy() -> NetworkConfig {
        NetworkConfig {
            spike_ppm: 10_000,
            spike_factor: 20,
            drop_ppm: 20_000,
            duplicate_ppm: 10_000,
            reorder_ppm: 20_000,
            reorder_delay_ns_max: 20_000_000,
            ..NetworkConfig::reliable()
        }
    }
}

/// The partition shapes the fault schedule can ask for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// Two random groups that cannot reach each other in either direction.
    Symmetric,
    /// One group cannot send to the other, but hears from it.
    OneWay,
    /// The current leader (or a random member) is cut off from everyone.
    IsolateLeader,
    /// A majority and a minority that cannot reach each other.
    MajorityMinority,
    /// Two sides that cannot reach each other, plus one member that reaches both.
    Bridge,
    /// A symmetric split that the schedule heals and re-applies repeatedly.
    Flapping,
}

impl PartitionKind {
    /// Every kind, in a fixed order.
    pub const ALL: [PartitionKind; 6] = [
        PartitionKind::Symmetric,
        PartitionKind::OneWay,
        PartitionKind::IsolateLeader,
        PartitionKind::MajorityMinority,
        PartitionKind::Bridge,
        PartitionKind::Flapping,
    ];

    /// The snake_case name used in traces.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::Symmetric => "symmetric",
            PartitionKind::OneWay => "one_way",
            PartitionKind::IsolateLeader => "isolate_leader",
            PartitionKind::MajorityMinority => "majority_minority",
            PartitionKind::Bridge => "bridge",
            PartitionKind::Flapping => "flapping",
        }
    }
}

/// A planned partition: the directed links it cuts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its shape.
    pub kind: PartitionKind,
    /// Directed links `(from, to)` that carry nothing while it holds, sorted.
    pub cut: Vec<(NodeId, NodeId)>,
}

impl Partition {
    /// Plans a partition of `kind` over `nodes` (at least 2). `leader` is who the host believes
    /// leads, used by `IsolateLeader`.
    pub fn plan(
        kind: PartitionKind,
        nodes: &[NodeId],
        leader: Option<NodeId>,
        rng: &mut SimRng,
    ) -> Partition {
        assert!(nodes.len() >= 2, "a partition needs two members");
        let mut shuffled = nodes.to_vec();
        shuffle(&mut shuffled, rng);
        let count = shuffled.len();
        let mut cut = Vec::new();
        match kind {
            PartitionKind::Symmetric | PartitionKind::Flapping => {
                let split = rng.range_inclusive(1, count as u64 - 1) as usize;
                cut_both(&shuffled[..split], &shuffled[split..], &mut cut);
            }
            PartitionKind::OneWay => {
                let split = rng.range_inclusive(1, count as u64 - 1) as usize;
                cut_one_way(&shuffled[..split], &shuffled[split..], &mut cut);
            }
            PartitionKind::IsolateLeader => {
                let isolated = leader
                    .filter(|node| nodes.contains(node))
                    .unwrap_or(shuffled[0]);
                let others: Vec<NodeId> = nodes
                    .iter()
                    .copied()
                    .filter(|node| *node != isolated)
                    .collect();
                cut_both(&[isolated], &others, &mut cut);
            }
            PartitionKind::MajorityMinority => {
                let majority = count / 2 + 1;
                cut_both(&shuffled[..majority], &shuffled[majority..], &mut cut);
            }
            PartitionKind::Bridge => {
                // A bridge needs two non-empty sides besides itself; with two members, it degrades
                // to a symmetric split.
                if count >= 3 {
                    let rest = &shuffled[1..];
                    let split = rng.range_inclusive(1, rest.len() as u64 - 1) as usize;
                    cut_both(&rest[..split], &rest[split..], &mut cut);
                } else {
                    cut_both(&shuffled[..1], &shuffled[1..], &mut cut);
                }
            }
        }
        cut.sort();
        cut.dedup();
        assert!(!cut.is_empty(), "a partition must cut at least one link");
        Partition { kind, cut }
    }
}

fn cut_one_way(senders: &[NodeId], receivers: &[NodeId], cut: &mut Vec<(NodeId, NodeId)>) {
    for from in senders {
        for to in receivers {
            cut.push((*from, *to));
        }
    }
}

fn cut_both(left: &[NodeId], right: &[NodeId], cut: &mut Vec<(NodeId, NodeId)>) {
    cut_one_way(left, right, cut);
    cut_one_way(right, left, cut);
}

/// Fisher–Yates with the given stream.
fn shuffle<T>(items: &mut [T], rng: &mut SimRng) {
    for index in (1..items.len()).rev() {
        let other = rng.below(index as u64 + 1) as usize;
        items.swap(index, other);
    }
}

/// A fixed hasher for the graph's index maps. Their iteration follows insertion order anyway;
/// a fixed hasher keeps even their internal layout identical from run to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedHasher(u64);

impl std::hash::Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
        }
    }
}

type ReachGraph = DiGraphMap<u64, (), std::hash::BuildHasherDefault<FixedHasher>>;

/// The copies of one message that will arrive, by delay: none (dropped or cut), one, or two
/// (duplicated). A fixed array, since every message sent asks for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copies {
    delays: [Duration; 2],
    /// Invariant: at most 2.
    count: usize,
}

impl Copies {
    /// The delays of the copies, in the order they were drawn.
    pub fn as_slice(&self) -> &[Duration] {
        &self.delays[..self.count]
    }

    /// How many copies arrive.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no copy arrives.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The network: reachability graph plus per-link latency.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    nodes: Vec<NodeId>,
    /// Invariant: holds every node; an edge a->b means a can reach b. The source of truth for
    /// reachability; `reachable` is its dense copy for the per-message check.
    reach: ReachGraph,
    /// `reachable[from_index * n + to_index]`: whether the edge is in `reach` (indices are
    /// positions in `nodes`). Invariant: equal to `reach` after every change to it.
    reachable: Vec<bool>,
    /// Base latency of each link, indexed like `reachable` (zero on the diagonal).
    link_latency: Vec<Duration>,
    rng: SimRng,
}

impl Network {
    /// A fully connected network over `nodes`.
    pub fn new(nodes: &[NodeId], config: NetworkConfig, mut rng: SimRng) -> Network {
        assert!(config.link_latency_ns_min <= config.link_latency_ns_max);
        let mut link_latency = Vec::with_capacity(nodes.len() * nodes.len());
        for from in nodes {
            for to in nodes {
                let base = if from == to {
                    0
                } else {
                    rng.range_inclusive(config.link_latency_ns_min, config.link_latency_ns_max)
                };
                link_latency.push(Duration(base));
            }
        }
        let mut network = Network {
            config,
            nodes: nodes.to_vec(),
            reach: ReachGraph::default(),
            reachable: vec![false; nodes.len() * nodes.len()],
            link_latency,
            rng,
        };
        network.heal_all();
        network
    }

    /// Restores every link.
    pub fn heal_all(&mut self) {
        for from in &self.nodes {
            self.reach.add_node(from.0);
            for to in &self.nodes {
                if from != to {
                    self.reach.add_edge(from.0, to.0, ());
                }
            }
        }
        self.refresh_reachable();
    }

    /// Cuts the links of `partition` (on top of any already cut).
    pub fn apply(&mut self, partition: &Partition) {
        for (from, to) in &partition.cut {
            self.reach.remove_edge(from.0, to.0);
        }
        self.refresh_reachable();
    }

    /// Rebuilds the dense copy of the graph (after each partition change, which is rare).
    fn refresh_reachable(&mut self) {
        let count = self.nodes.len();
        for (from_index, from) in self.nodes.iter().enumerate() {
            for (to_index, to) in self.nodes.iter().enumerate() {
                self.reachable[from_index * count + to_index] =
                    self.reach.contains_edge(from.0, to.0);
            }
        }
    }

    /// The position of `id` in `nodes` (members are usually numbered from 1 in order).
    fn index_of(&self, id: NodeId) -> Option<usize> {
        let guess = usize::try_from(id.0).ok()?.checked_sub(1)?;
        if self.nodes.get(guess) == Some(&id) {
            return Some(guess);
        }
        self.nodes.iter().position(|node| *node == id)
    }

    /// The dense index of link `from -> to`, if both ends are in the network.
    fn link_index(&self, from: NodeId, to: NodeId) -> Option<usize> {
        Some(self.index_of(from)? * self.nodes.len() + self.index_of(to)?)
    }

    /// Plans a partition of `kind` with the network's stream.
    pub fn plan(&mut self, kind: PartitionKind, leader: Option<NodeId>) -> Partition {
        let nodes = self.nodes.clone();
        Partition::plan(kind, &nodes, leader, &mut self.rng)
    }

    /// Whether `from` can currently send to `to`.
    pub fn can_reach(&self, from: NodeId, to: NodeId) -> bool {
        from == to
            || self
                .link_index(from, to)
                .is_some_and(|link| self.reachable[link])
    }

    /// Replaces the loss, duplication and reordering rates (the liveness phase turns them off).
    pub fn set_config(&mut self, config: NetworkConfig) {
        self.config = config;
    }

    /// Decides the fate of one message: the delays of the copies that will arrive (none if it
    /// is dropped or the link is cut, two if it is duplicated). The link is looked up once, for
    /// both the reachability check and the base latency.
    pub fn transmit(&mut self, from: NodeId, to: NodeId) -> Copies {
        let mut copies = Copies {
            delays: [Duration(0); 2],
            count: 0,
        };
        let link = self.link_index(from, to);
        let reachable = from == to || link.is_some_and(|link| self.reachable[link]);
        if !reachable || self.rng.chance_ppm(self.config.drop_ppm) {
            return copies;
        }
        copies.count = if self.rng.chance_ppm(self.config.duplicate_ppm) {
            2
        } else {
            1
        };
        let base = link.map_or(Duration(0), |link| self.link_latency[link]);
        for delay in &mut copies.delays[..copies.count] {
            *delay = self.latency(base);
        }
        copies
    }

    /// One copy's delay over a link of latency `base`.
    fn latency(&mut self, base: Duration) -> Duration {
        let mut latency_ns = base.0 + self.rng.range_inclusive(0, self.config.jitter_ns_max);
        if self.rng.chance_ppm(self.config.spike_ppm) {
            latency_ns = latency_ns.saturating_mul(self.config.spike_factor);
        }
        if self.rng.chance_ppm(self.config.reorder_ppm) {
            latency_ns += self
                .rng
                .range_inclusive(0, self.config.reorder_delay_ns_max);
        }
        Duration(latency_ns)
    }

    /// The cut links as a readable list, e.g. `n1->n2 n2->n1`, or `full` when none is cut.
    pub fn describe_cut(&self) -> String {
        let mut text = String::new();
        for from in &self.nodes {
            for to in &self.nodes {
                if from != to && !self.can_reach(*from, *to) {
                    let _ = write!(
                        text,
                        "{}n{}->n{}",
                        if text.is_empty() { "" } else { " " },
                        from,
                        to
                    );
                }
            }
        }
        if text.is_empty() {
            text.push_str("full");
        }
        text
    }

    /// Whether the members in `group` can all reach each other both ways.
    pub fn is_connected_group(&self, group: &[NodeId]) -> bool {
        group
            .iter()
            .all(|from| group.iter().all(|to| self.can_reach(*from, *to)))
    }
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
