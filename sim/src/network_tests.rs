//! Tests of the network: reachability per partition kind, healing, and message fates.

use engine::types::NodeId;

use super::{Network, NetworkConfig, Partition, PartitionKind};
use crate::rng::{SimRng, Stream};

fn nodes(count: u64) -> Vec<NodeId> {
    (1..=count).map(NodeId).collect()
}

fn network_with(kind: PartitionKind, count: u64, seed: u64, leader: Option<NodeId>) -> Network {
    let mut network = Network::new(
        &nodes(count),
        NetworkConfig::reliable(),
        SimRng::for_stream(seed, Stream::Network),
    );
    let partition = network.plan(kind, leader);
    network.apply(&partition);
    network
}

/// The groups of members that reach each other both ways (strongly connected components).
fn components(network: &Network, count: u64) -> Vec<Vec<NodeId>> {
    let mut groups: Vec<Vec<NodeId>> = Vec::new();
    for node in nodes(count) {
        match groups
            .iter_mut()
            .find(|group| network.can_reach(group[0], node) && network.can_reach(node, group[0]))
        {
            Some(group) => group.push(node),
            None => groups.push(vec![node]),
        }
    }
    groups
}

/// Goal: a symmetric split cuts both directions between two non-empty groups and nothing inside
/// them. Method: for many seeds, check the graph splits into exactly two mutually unreachable,
/// internally connected groups.
#[test]
fn symmetric_split_is_two_closed_groups() {
    for seed in 0..50 {
        let network = network_with(PartitionKind::Symmetric, 5, seed, None);
        let groups = components(&network, 5);
        assert_eq!(groups.len(), 2, "seed {seed}: {}", network.describe_cut());
        for group in &groups {
            assert!(network.is_connected_group(group));
        }
        assert!(!network.can_reach(groups[0][0], groups[1][0]));
        assert!(!network.can_reach(groups[1][0], groups[0][0]));
    }
}

/// Goal: a one-way partition cuts exactly one direction. Method: every cut link's reverse must
/// still be open, and at least one link is cut.
#[test]
fn one_way_cuts_a_single_direction() {
    for seed in 0..50 {
        let network = network_with(PartitionKind::OneWay, 5, seed, None);
        let mut cut_count = 0;
        for from in nodes(5) {
            for to in nodes(5) {
                if !network.can_reach(from, to) {
                    cut_count += 1;
                    assert!(
                        network.can_reach(to, from),
                        "seed {seed}: both directions cut"
                    );
                }
            }
        }
        assert!(cut_count > 0);
    }
}

/// Goal: isolating the leader cuts it from everyone and leaves the rest connected.
/// Method: isolate n3 in a 5-member cluster and check each pair.
#[test]
fn isolate_leader_cuts_only_the_leader() {
    let network = network_with(PartitionKind::IsolateLeader, 5, 1, Some(NodeId(3)));
    for other in nodes(5).into_iter().filter(|node| *node != NodeId(3)) {
        assert!(!network.can_reach(NodeId(3), other));
        assert!(!network.can_reach(other, NodeId(3)));
    }
    assert!(network.is_connected_group(&[NodeId(1), NodeId(2), NodeId(4), NodeId(5)]));
}

/// Goal: a majority/minority split leaves exactly one group with a quorum.
/// Method: for several sizes and seeds, the larger component has n/2+1 members.
#[test]
fn majority_minority_leaves_one_quorum() {
    for count in [3_u64, 4, 5, 7] {
        for seed in 0..20 {
            let network = network_with(PartitionKind::MajorityMinority, count, seed, None);
            let mut sizes: Vec<usize> = components(&network, count).iter().map(Vec::len).collect();
            sizes.sort();
            let majority = (count / 2 + 1) as usize;
            assert_eq!(
                sizes,
                vec![count as usize - majority, majority],
                "count {count} seed {seed}"
            );
            assert_eq!(sizes.iter().sum::<usize>(), count as usize);
        }
    }
}

/// Goal: a bridge member reaches both sides while the sides cannot reach each other.
/// Method: find the member with no cut link; every other pair across sides must be cut.
#[test]
fn bridge_member_sees_both_sides() {
    for seed in 0..30 {
        let network = network_with(PartitionKind::Bridge, 5, seed, None);
        let bridges: Vec<NodeId> = nodes(5)
            .into_iter()
            .filter(|node| {
                nodes(5).iter().all(|other| {
                    network.can_reach(*node, *other) && network.can_reach(*other, *node)
                })
            })
            .collect();
        assert_eq!(bridges.len(), 1, "seed {seed}: {}", network.describe_cut());
        let others: Vec<NodeId> = nodes(5)
            .into_iter()
            .filter(|node| *node != bridges[0])
            .collect();
        assert!(
            !network.is_connected_group(&others),
            "the sides must be split"
        );
    }
}

/// Goal: healing restores every link, and a plan is reproducible from its seed.
/// Method: partition, heal, check full reachability; plan twice with the same stream.
#[test]
fn heal_restores_everything_and_plans_are_reproducible() {
    let mut network = network_with(PartitionKind::Flapping, 5, 9, None);
    assert_ne!(network.describe_cut(), "full");
    network.heal_all();
    assert_eq!(network.describe_cut(), "full");
    let plan = |seed| {
        Partition::plan(
            PartitionKind::Symmetric,
            &nodes(5),
            None,
            &mut SimRng::for_stream(seed, Stream::Network),
        )
    };
    assert_eq!(plan(4), plan(4));
}

/// Goal: a cut link delivers nothing, a lossy link sometimes drops and sometimes duplicates.
/// Method: count fates over many messages.
#[test]
fn transmit_respects_cuts_and_loss() {
    let mut network = Network::new(
        &nodes(3),
        NetworkConfig::lossy(),
        SimRng::for_stream(3, Stream::Network),
    );
    let partition = Partition {
        kind: PartitionKind::OneWay,
        cut: vec![(NodeId(1), NodeId(2))],
    };
    network.apply(&partition);
    assert!(network.transmit(NodeId(1), NodeId(2)).is_empty());
    let fates: Vec<usize> = (0..20_000)
        .map(|_| network.transmit(NodeId(2), NodeId(1)).len())
        .collect();
    assert!(fates.contains(&0) && fates.contains(&1) && fates.contains(&2));
    assert!(fates.iter().filter(|copies| **copies == 1).count() > 18_000);
}
