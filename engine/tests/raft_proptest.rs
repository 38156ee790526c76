//! Randomised safety tests for `engine::raft`: clusters of 3 and 5 members run random schedules of
//! delivery, drops, duplicates, reordering, ticks, persistence, proposals, compaction and
//! crash-restart (from persisted state only), and Raft's safety properties are asserted after
//! every step.
//!
//! This file holds its own tiny host (network, disks, application); it checks safety only, not
//! liveness (random schedules may legitimately never elect a leader).

use std::collections::BTreeMap;

use engine::raft::{
    ConfChange, ConfState, Config, Entry, HardState, Message, PersistBatch, Raft, Restored, Role,
    Snapshot, SnapshotMeta,
};
use engine::types::{LogIndex, NodeId, Term};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Action {
    Tick(usize),
    TickAll,
    Settle(usize),
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    ProcessReady(usize),
    Persist(usize),
    Propose(usize),
    Compact(usize),
    CrashRestart(usize),
    ChangeMembership(usize, usize, u8),
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..5usize).prop_map(Action::Tick),
        3 => Just(Action::TickAll),
        6 => (0..5usize).prop_map(Action::Settle),
        20 => (0..64usize).prop_map(Action::Deliver),
        2 => (0..64usize).prop_map(Action::Drop),
        1 => (0..64usize).prop_map(Action::Duplicate),
        8 => (0..5usize).prop_map(Action::ProcessReady),
        6 => (0..5usize).prop_map(Action::Persist),
        3 => (0..5usize).prop_map(Action::Propose),
        1 => (0..5usize).prop_map(Action::Compact),
        1 => (0..5usize).prop_map(Action::CrashRestart),
        1 => (0..5usize, 0..5usize, 0..4u8).prop_map(|(node, target, kind)| Action::ChangeMembership(node, target, kind)),
    ]
}

#[derive(Default)]
struct Disk {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    unsynced: Vec<PersistBatch>,
}

struct Node {
    config: Config,
    raft: Raft,
    disk: Disk,
    applied_index: LogIndex,
}

struct World {
    nodes: Vec<Node>,
    conf: ConfState,
    network: Vec<Message>,
    leaders_by_term: BTreeMap<Term, NodeId>,
    /// Applied entries by index, with the highest term any member had when it was first seen
    /// applied: every leader of a later term must hold it.
    applied: BTreeMap<LogIndex, (Entry, Term)>,
    proposal_count: u64,
}

fn restored(disk: &Disk, conf: &ConfState) -> Restored {
    Restored {
        hard_state: disk.hard_state,
        snapshot: disk.snapshot.as_ref().map(|snapshot| snapshot.meta.clone()),
        entries: disk.entries.clone(),
        conf: conf.clone(),
    }
}

impl World {
    fn new(member_count: u64, pre_vote: bool, check_quorum: bool) -> World {
        let conf = ConfState {
            voters: (1..=member_count).map(NodeId).collect(),
            learners: vec![],
        };
        let nodes = (1..=member_count)
            .map(|id| {
                let config = Config {
                    election_timeout_ticks: 5,
                    pre_vote,
                    check_quorum,
                    inflight_appends_count_max: 2,
                    append_entries_count_max: 3,
                    uncommitted_entries_count_max: 20,
                    ..Config::new(NodeId(id), id * 7919)
                };
                let disk = Disk::default();
                let raft = Raft::new(config.clone(), restored(&disk, &conf));
                Node {
                    config,
                    raft,
                    disk,
                    applied_index: LogIndex(0),
                }
            })
            .collect();
        World {
            nodes,
            conf,
            network: Vec::new(),
            leaders_by_term: BTreeMap::new(),
            applied: BTreeMap::new(),
            proposal_count: 0,
        }
    }

    fn step(&mut self, action: Action) {
        let count = self.nodes.len();
        match action {
            Action::Tick(node) => self.nodes[node % count].raft.tick(),
            Action::TickAll => self.nodes.iter_mut().for_each(|node| node.raft.tick()),
            Action::Settle(node) => {
                self.process_ready(node % count);
                let node = &mut self.nodes[node % count];
                let batches = std::mem::take(&mut node.disk.unsynced);
                for batch in &batches {
                    write_batch(&mut node.disk, batch);
                }
                if let Some(last) = batches.last() {
                    node.raft.on_persisted(last.id);
                }
            }
            Action::Deliver(slot) | Action::Drop(slot) | Action::Duplicate(slot)
                if !self.network.is_empty() =>
            {
                let slot = slot % self.network.len();
                let message = match action {
                    Action::Duplicate(_) => self.network[slot].clone(),
                    _ => self.network.remove(slot),
                };
                if !matches!(action, Action::Drop(_)) {
                    self.nodes[(message.to.0 - 1) as usize].raft.step(message);
                }
            }
            Action::Deliver(_) | Action::Drop(_) | Action::Duplicate(_) => {}
            Action::ProcessReady(node) => self.process_ready(node % count),
            Action::Persist(node) => {
                let node = &mut self.nodes[node % count];
                if !node.disk.unsynced.is_empty() {
                    let batch = node.disk.unsynced.remove(0);
                    write_batch(&mut node.disk, &batch);
                    node.raft.on_persisted(batch.id);
                }
            }
            Action::Propose(node) => {
                self.proposal_count += 1;
                let data = format!("p{}", self.proposal_count).into_bytes();
                let _ = self.nodes[node % count].raft.propose(data);
            }
            Action::Compact(node) => compact(&mut self.nodes[node % count]),
            Action::ChangeMembership(node, target, kind) => {
                let target = NodeId((target % count) as u64 + 1);
                let change = match kind {
                    0 => ConfChange::AddVoter(target),
                    1 => ConfChange::AddLearner(target),
                    2 => ConfChange::Remove(target),
                    _ => ConfChange::Promote(target),
                };
                let _ = self.nodes[node % count].raft.propose_conf_change(change);
            }
            Action::CrashRestart(node) => {
                let node = &mut self.nodes[node % count];
                node.disk.unsynced.clear();
                node.raft = Raft::new(node.config.clone(), restored(&node.disk, &self.conf));
                node.applied_index = LogIndex(0);
                if let Some(snapshot) = node.disk.snapshot.clone() {
                    node.applied_index = snapshot.meta.index;
                    node.raft.compact(snapshot);
                }
            }
        }
    }

    fn process_ready(&mut self, node_index: usize) {
        let max_term = self
            .nodes
            .iter()
            .map(|node| node.raft.status().term)
            .max()
            .expect("nodes");
        let node = &mut self.nodes[node_index];
        let ready = node.raft.ready();
        if let Some(batch) = ready.persist {
            node.disk.unsynced.push(batch);
        }
        self.network.extend(ready.messages);
        if let Some(snapshot) = ready.apply_snapshot {
            assert!(snapshot.meta.index > node.applied_index);
            node.applied_index = snapshot.meta.index;
        }
        for entry in ready.committed {
            assert_eq!(
                entry.index,
                node.applied_index.next(),
                "applied out of order"
            );
            node.applied_index = entry.index;
            let seen = self
                .applied
                .entry(entry.index)
                .or_insert((entry.clone(), max_term));
            assert_eq!(
                seen.0, entry,
                "two members applied different entries at {}",
                entry.index
            );
        }
    }

    fn check_invariants(&mut self) {
        for node in &self.nodes {
            let status = node.raft.status();
            if status.role == Role::Leader {
                let previous = self.leaders_by_term.insert(status.term, status.id);
                assert!(
                    previous.is_none_or(|id| id == status.id),
                    "two leaders in term {}",
                    status.term
                );
                check_leader_completeness(&node.raft, &self.applied);
            }
        }
        for (position, first) in self.nodes.iter().enumerate() {
            for second in &self.nodes[position + 1..] {
                check_log_matching(&first.raft, &second.raft);
            }
        }
    }
}

fn write_batch(disk: &mut Disk, batch: &PersistBatch) {
    if let Some(snapshot) = &batch.snapshot {
        // A snapshot replaces the whole log; the batch re-sends the entries that follow it.
        disk.entries.clear();
        disk.snapshot = Some(snapshot.clone());
    }
    if let Some(first) = batch.entries.first() {
        disk.entries.retain(|entry| entry.index < first.index);
        disk.entries.extend(batch.entries.iter().cloned());
    }
    if let Some(hard_state) = batch.hard_state {
        disk.hard_state = hard_state;
    }
}

fn compact(node: &mut Node) {
    let status = node.raft.status();
    let index = status.applied_index;
    if index <= node.raft.snapshot_meta().index {
        return;
    }
    let term = node
        .raft
        .log_entries()
        .iter()
        .find(|entry| entry.index == index)
        .expect("applied entry")
        .term;
    let meta = SnapshotMeta {
        index,
        term,
        conf: status.conf,
    };
    node.raft.compact(Snapshot {
        meta,
        data: format!("state@{index}").into_bytes(),
    });
}

fn term_at(raft: &Raft, index: LogIndex) -> Option<Term> {
    if index == raft.snapshot_meta().index {
        return Some(raft.snapshot_meta().term);
    }
    raft.log_entries()
        .iter()
        .find(|entry| entry.index == index)
        .map(|entry| entry.term)
}

/// Log matching: if two logs hold an entry with the same index and term, they hold the same
/// entries up to it (within what both still have).
fn check_log_matching(first: &Raft, second: &Raft) {
    let by_index: BTreeMap<LogIndex, &Entry> = first
        .log_entries()
        .iter()
        .map(|entry| (entry.index, entry))
        .collect();
    let common: Vec<(&Entry, &Entry)> = second
        .log_entries()
        .iter()
        .filter_map(|entry| by_index.get(&entry.index).map(|other| (*other, entry)))
        .collect();
    let Some(highest_match) = common.iter().rev().find(|(a, b)| a.term == b.term) else {
        return;
    };
    for (a, b) in &common {
        if a.index <= highest_match.0.index {
            assert_eq!(a, b, "log matching violated at {}", a.index);
        }
    }
}

/// Leader completeness: a leader of a term later than any term seen when an entry was first
/// applied holds that entry (unless it compacted it into a snapshot).
fn check_leader_completeness(leader: &Raft, applied: &BTreeMap<LogIndex, (Entry, Term)>) {
    let status = leader.status();
    for (index, (entry, max_term_then)) in applied {
        if status.term <= *max_term_then || *index < leader.snapshot_meta().index {
            continue;
        }
        assert_eq!(
            term_at(leader, *index),
            Some(entry.term),
            "leader {} of term {} lacks committed {}",
            status.id,
            status.term,
            index
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Goal: Raft's safety properties hold under any schedule of network and process faults.
    /// Method: run a random schedule on 3 or 5 members and assert one leader per term, log
    /// matching, leader completeness and identical applied entries after every step.
    #[test]
    fn raft_is_safe_under_random_schedules(
        member_count in prop_oneof![Just(3u64), Just(5u64)],
        pre_vote in any::<bool>(),
        check_quorum in any::<bool>(),
        actions in prop::collection::vec(action_strategy(), 1..1500),
    ) {
        let mut world = World::new(member_count, pre_vote, check_quorum);
        for action in actions {
            world.step(action);
            world.check_invariants();
        }
    }
}

/// Goal: the random harness is strong enough to make progress, so the safety test is not vacuous.
/// Method: a fair schedule (deliver everything, persist everything, tick everyone) must elect a
/// leader and apply proposals on every member.
#[test]
fn fair_schedule_elects_a_leader_and_applies_everywhere() {
    let mut world = World::new(3, true, true);
    for round in 0..200u64 {
        for node in 0..3 {
            world.step(Action::Tick(node));
            world.step(Action::ProcessReady(node));
            while !world.nodes[node].disk.unsynced.is_empty() {
                world.step(Action::Persist(node));
            }
            if round % 10 == 0 {
                world.step(Action::Propose(node));
            }
        }
        while !world.network.is_empty() {
            world.step(Action::Deliver(0));
        }
        world.check_invariants();
    }
    assert!(world
        .nodes
        .iter()
        .any(|node| node.raft.status().role == Role::Leader));
    assert!(
        world.nodes.iter().all(|node| node.applied_index.0 >= 10),
        "every member applies"
    );
}
