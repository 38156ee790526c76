//! Data-driven interaction tests for `engine::raft`, in the manner of etcd-io/raft's testdata:
//! each `scripts/*.txt` file is a story of commands (add-nodes, campaign, propose, stabilize,
//! deliver, tick, crash, restart, ...) and its snapshot holds every step's rendered output.
//!
//! The harness is a host: an in-memory network (ordered, with cuts), an in-memory disk per member
//! that loses unsynced batches on crash, and an application that records applied entries. It
//! also checks, on every apply, that no two members apply different entries at one index and
//! that each member applies in order. It does not decide anything a script did not ask for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use engine::raft::{
    describe_entry, ConfChange, ConfState, Config, Entry, HardState, Message, PersistBatch, Raft,
    Ready, Restored, Snapshot, SnapshotMeta,
};
use engine::types::{LogIndex, NodeId, Term};

/// What a member's disk durably holds.
#[derive(Default)]
struct Disk {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    initial_conf: ConfState,
    /// Batches handed out by `ready` but not yet synced; lost on crash.
    unsynced: Vec<PersistBatch>,
}

impl Disk {
    fn write(&mut self, batch: &PersistBatch) {
        if let Some(snapshot) = &batch.snapshot {
            // A snapshot replaces the whole log; the batch re-sends the entries that follow it.
            self.entries.clear();
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(first) = batch.entries.first() {
            self.entries.retain(|entry| entry.index < first.index);
            let expected = self.entries.last().map_or_else(
                || {
                    self.snapshot
                        .as_ref()
                        .map_or(LogIndex(1), |s| s.meta.index.next())
                },
                |entry| entry.index.next(),
            );
            assert_eq!(
                first.index, expected,
                "a persist batch leaves a gap in the log"
            );
            self.entries.extend(batch.entries.iter().cloned());
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = hard_state;
        }
    }
}

struct Member {
    config: Config,
    raft: Option<Raft>,
    disk: Disk,
    /// The application's state: applied data in order, and the index applied through.
    app_state: Vec<String>,
    app_applied_index: LogIndex,
}

#[derive(Default)]
struct Cluster {
    members: BTreeMap<u64, Member>,
    network: Vec<Message>,
    /// Directed links that drop everything.
    cut: BTreeSet<(u64, u64)>,
    /// Every entry any member applied, by index: the cross-member safety check.
    applied_anywhere: BTreeMap<LogIndex, (Term, std::sync::Arc<[u8]>)>,
}

fn parse_ids(text: &str) -> Vec<u64> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().expect("node id"))
        .collect()
}

fn node_ids(conf: &[NodeId]) -> String {
    conf.iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Cluster {
    fn raft(&mut self, id: u64) -> &mut Raft {
        self.members
            .get_mut(&id)
            .and_then(|member| member.raft.as_mut())
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    fn add_nodes(&mut self, args: &[&str], out: &mut String) {
        let count: u64 = args[0].parse().expect("count");
        let first = self.members.keys().last().map_or(1, |last| last + 1);
        let ids: Vec<u64> = (first..first + count).collect();
        let mut voters = ids.clone();
        let mut learners = Vec::new();
        let mut config_template = Config::new(NodeId(0), 0);
        for option in &args[1..] {
            let (key, value) = option.split_once('=').expect("key=value");
            match key {
                "voters" => voters = parse_ids(value),
                "learners" => learners = parse_ids(value),
                "pre-vote" => config_template.pre_vote = value == "true",
                "check-quorum" => config_template.check_quorum = value == "true",
                "inflight" => {
                    config_template.inflight_appends_count_max = value.parse().expect("inflight")
                }
                "max-entries" => {
                    config_template.append_entries_count_max = value.parse().expect("max-entries")
                }
                "uncommitted" => {
                    config_template.uncommitted_entries_count_max =
                        value.parse().expect("uncommitted")
                }
                _ => panic!("unknown add-nodes option {key}"),
            }
        }
        let conf = ConfState {
            voters: voters.into_iter().map(NodeId).collect(),
            learners: learners.into_iter().map(NodeId).collect(),
        };
        for id in ids {
            let config = Config {
                id: NodeId(id),
                seed: id,
                ..config_template.clone()
            };
            let disk = Disk {
                initial_conf: conf.clone(),
                ..Disk::default()
            };
            let mut member = Member {
                config,
                raft: None,
                disk,
                app_state: Vec::new(),
                app_applied_index: LogIndex(0),
            };
            member.raft = Some(Raft::new(
                member.config.clone(),
                restored_from(&member.disk),
            ));
            self.members.insert(id, member);
            writeln!(
                out,
                "node {id} voters=[{}] learners=[{}]",
                node_ids(&conf.voters),
                node_ids(&conf.learners)
            )
            .unwrap();
        }
    }

    /// Takes one member's Ready: records its batch as unsynced, queues its messages, applies.
    fn process_ready(&mut self, id: u64, out: &mut String) -> bool {
        let ready = {
            let raft = self.raft(id);
            if !raft.has_ready() {
                return false;
            }
            raft.ready()
        };
        writeln!(out, "{id} ready:").unwrap();
        render_ready(&ready, out);
        let member = self.members.get_mut(&id).expect("running");
        if let Some(batch) = ready.persist {
            member.disk.unsynced.push(batch);
        }
        self.network.extend(ready.messages);
        self.apply(id, ready.apply_snapshot, ready.committed);
        true
    }

    fn apply(&mut self, id: u64, snapshot: Option<Snapshot>, committed: Vec<Entry>) {
        let member = self.members.get_mut(&id).expect("running");
        if let Some(snapshot) = snapshot {
            assert!(
                snapshot.meta.index > member.app_applied_index,
                "snapshot goes back in time"
            );
            member.app_state = app_state_from(&snapshot.data);
            member.app_applied_index = snapshot.meta.index;
        }
        for entry in committed {
            assert_eq!(
                entry.index,
                member.app_applied_index.next(),
                "node {id} applies out of order"
            );
            member.app_applied_index = entry.index;
            if entry.kind == engine::raft::EntryKind::Normal && !entry.data.is_empty() {
                member
                    .app_state
                    .push(String::from_utf8_lossy(&entry.data).into_owned());
            }
            let seen = self
                .applied_anywhere
                .entry(entry.index)
                .or_insert((entry.term, entry.data.clone()));
            assert_eq!(
                *seen,
                (entry.term, entry.data.clone()),
                "two members applied different entries at {}",
                entry.index
            );
        }
    }

    /// Syncs a member's unsynced batches and reports the last one persisted.
    fn persist(&mut self, id: u64, out: &mut String) -> bool {
        let member = self.members.get_mut(&id).expect("known node");
        let batches = std::mem::take(&mut member.disk.unsynced);
        let Some(last) = batches.last().map(|batch| batch.id) else {
            return false;
        };
        for batch in &batches {
            member.disk.write(batch);
        }
        member.raft.as_mut().expect("running").on_persisted(last);
        writeln!(out, "{id} persisted through #{last}").unwrap();
        true
    }

    /// Delivers every queued message addressed to `id`, in order.
    fn deliver(&mut self, id: u64, drop: bool, out: &mut String) -> bool {
        let (to_deliver, rest): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|message| message.to.0 == id);
        self.network = rest;
        if to_deliver.is_empty() {
            return false;
        }
        let running = self
            .members
            .get(&id)
            .is_some_and(|member| member.raft.is_some());
        for message in to_deliver {
            let cut = self.cut.contains(&(message.from.0, message.to.0));
            if drop || cut || !running {
                writeln!(out, "  dropped: {}", message.describe()).unwrap();
                continue;
            }
            writeln!(out, "  {}", message.describe()).unwrap();
            self.raft(id).step(message);
        }
        true
    }

    fn stabilize(&mut self, ids: &[u64], out: &mut String) {
        for _round in 0..1000 {
            let mut progressed = false;
            for &id in ids {
                if self.members[&id].raft.is_none() {
                    continue;
                }
                progressed |= self.process_ready(id, out);
                progressed |= self.persist(id, out);
            }
            for &id in ids {
                if self.network.iter().any(|message| message.to.0 == id) {
                    writeln!(out, "{id} receiving:").unwrap();
                    progressed |= self.deliver(id, false, out);
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("stabilize did not converge");
    }

    fn crash(&mut self, id: u64) {
        let member = self.members.get_mut(&id).expect("known node");
        member.raft = None;
        member.disk.unsynced.clear();
        // Messages in flight to a crashed process are lost with it.
        self.network.retain(|message| message.to.0 != id);
    }

    fn restart(&mut self, id: u64) {
        let member = self.members.get_mut(&id).expect("known node");
        assert!(member.raft.is_none(), "restart a crashed node");
        let mut raft = Raft::new(member.config.clone(), restored_from(&member.disk));
        // The application restores from its snapshot and replays committed entries after it.
        match &member.disk.snapshot {
            Some(snapshot) => {
                member.app_state = app_state_from(&snapshot.data);
                member.app_applied_index = snapshot.meta.index;
                raft.compact(snapshot.clone());
            }
            None => {
                member.app_state.clear();
                member.app_applied_index = LogIndex(0);
            }
        }
        member.raft = Some(raft);
    }

    fn compact(&mut self, id: u64, out: &mut String) {
        let member = self.members.get_mut(&id).expect("known node");
        let raft = member.raft.as_mut().expect("running");
        let status = raft.status();
        let index = status.applied_index;
        let term = if index == raft.snapshot_meta().index {
            raft.snapshot_meta().term
        } else {
            raft.log_entries()
                .iter()
                .find(|entry| entry.index == index)
                .expect("applied entry in log")
                .term
        };
        let meta = SnapshotMeta {
            index,
            term,
            conf: status.conf,
        };
        let data = member.app_state.join(",").into_bytes();
        raft.compact(Snapshot { meta, data });
        writeln!(out, "{id} compacted through {term}/{index}").unwrap();
    }
}

fn app_state_from(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

fn restored_from(disk: &Disk) -> Restored {
    Restored {
        hard_state: disk.hard_state,
        snapshot: disk.snapshot.as_ref().map(|snapshot| snapshot.meta.clone()),
        entries: disk.entries.clone(),
        conf: disk.initial_conf.clone(),
    }
}

fn render_ready(ready: &Ready, out: &mut String) {
    if let Some(batch) = &ready.persist {
        let mut line = format!("  persist #{}:", batch.id);
        if let Some(hard_state) = batch.hard_state {
            write!(
                line,
                " hard_state term={} vote={} commit={}",
                hard_state.term, hard_state.vote, hard_state.commit
            )
            .unwrap();
        }
        if let Some(snapshot) = &batch.snapshot {
            write!(
                line,
                " snapshot={}/{}",
                snapshot.meta.term, snapshot.meta.index
            )
            .unwrap();
        }
        if !batch.entries.is_empty() {
            let entries: Vec<String> = batch.entries.iter().map(describe_entry).collect();
            write!(line, " entries=[{}]", entries.join(", ")).unwrap();
        }
        writeln!(out, "{line}").unwrap();
    }
    for message in &ready.messages {
        writeln!(out, "  send {}", message.describe()).unwrap();
    }
    if let Some(snapshot) = &ready.apply_snapshot {
        writeln!(
            out,
            "  apply snapshot {}/{} data={:?}",
            snapshot.meta.term,
            snapshot.meta.index,
            String::from_utf8_lossy(&snapshot.data)
        )
        .unwrap();
    }
    for entry in &ready.committed {
        writeln!(out, "  apply {}", describe_entry(entry)).unwrap();
    }
    for read_state in &ready.read_states {
        writeln!(
            out,
            "  read-state context={} index={}",
            read_state.context, read_state.index
        )
        .unwrap();
    }
}

fn parse_conf_change(kind: &str, target: &str) -> ConfChange {
    let target = NodeId(target.parse().expect("target id"));
    match kind {
        "add-voter" => ConfChange::AddVoter(target),
        "add-learner" => ConfChange::AddLearner(target),
        "remove" => ConfChange::Remove(target),
        "promote" => ConfChange::Promote(target),
        _ => panic!("unknown conf change {kind}"),
    }
}

fn all_or(cluster: &Cluster, args: &[&str]) -> Vec<u64> {
    if args.is_empty() {
        cluster.members.keys().copied().collect()
    } else {
        args.iter()
            .map(|arg| arg.parse().expect("node id"))
            .collect()
    }
}

fn run_command(cluster: &mut Cluster, command: &str, args: &[&str], out: &mut String) {
    let id = || -> u64 { args[0].parse().expect("node id") };
    match command {
        "add-nodes" => cluster.add_nodes(args, out),
        "campaign" => cluster.raft(id()).campaign(),
        "propose" => {
            let result = cluster.raft(id()).propose(args[1].as_bytes().to_vec());
            writeln!(out, "{result:?}").unwrap();
        }
        "propose-conf-change" => {
            let change = parse_conf_change(args[1], args[2]);
            let result = cluster.raft(id()).propose_conf_change(change);
            writeln!(out, "{result:?}").unwrap();
        }
        "read-index" => {
            let result = cluster
                .raft(id())
                .read_index(args[1].parse().expect("context"));
            writeln!(out, "{result:?}").unwrap();
        }
        "transfer-leadership" => cluster
            .raft(id())
            .transfer_leadership(NodeId(args[1].parse().expect("target"))),
        "tick" => run_tick(cluster, id(), args.get(1).copied(), out),
        "process-ready" => {
            for node in all_or(cluster, args) {
                cluster.process_ready(node, out);
            }
        }
        "persist" => {
            for node in all_or(cluster, args) {
                cluster.persist(node, out);
            }
        }
        "deliver" | "drop" => {
            for node in all_or(cluster, args) {
                if cluster.network.iter().any(|message| message.to.0 == node) {
                    writeln!(out, "{node} receiving:").unwrap();
                    cluster.deliver(node, command == "drop", out);
                }
            }
        }
        "stabilize" => {
            let ids = all_or(cluster, args);
            cluster.stabilize(&ids, out);
        }
        "isolate" => {
            let node = id();
            for other in cluster.members.keys().copied().collect::<Vec<_>>() {
                cluster.cut.insert((node, other));
                cluster.cut.insert((other, node));
            }
        }
        "cut" => {
            let (a, b) = (id(), args[1].parse::<u64>().expect("node id"));
            cluster.cut.insert((a, b));
            cluster.cut.insert((b, a));
        }
        "heal" => cluster.cut.clear(),
        "crash" => cluster.crash(id()),
        "restart" => cluster.restart(id()),
        "compact" => cluster.compact(id(), out),
        "status" | "log" | "app" => run_inspect(cluster, command, args, out),
        _ => panic!("unknown command {command}"),
    }
}

/// Commands that only render state: `status [ids]`, `log id`, `app id`.
fn run_inspect(cluster: &Cluster, command: &str, args: &[&str], out: &mut String) {
    let id = || -> u64 { args[0].parse().expect("node id") };
    match command {
        "status" => {
            for node in all_or(cluster, args) {
                match cluster.members[&node].raft.as_ref() {
                    Some(raft) => writeln!(out, "{}", raft.status().describe()).unwrap(),
                    None => writeln!(out, "{node} crashed").unwrap(),
                }
            }
        }
        "log" => {
            let member = &cluster.members[&id()];
            let raft = member.raft.as_ref().expect("running");
            let meta = raft.snapshot_meta();
            let entries: Vec<String> = raft.log_entries().iter().map(describe_entry).collect();
            writeln!(
                out,
                "{} snapshot={}/{} entries=[{}]",
                id(),
                meta.term,
                meta.index,
                entries.join(", ")
            )
            .unwrap();
        }
        "app" => {
            let member = &cluster.members[&id()];
            writeln!(
                out,
                "{} applied={} state=[{}]",
                id(),
                member.app_applied_index,
                member.app_state.join(",")
            )
            .unwrap();
        }
        _ => unreachable!("dispatched by run_command"),
    }
}

/// `tick N [count]` ticks N count times; `tick N election` ticks until the node has output,
/// at most twice the election timeout (the longest randomized timeout).
fn run_tick(cluster: &mut Cluster, id: u64, count: Option<&str>, out: &mut String) {
    let raft = cluster.raft(id);
    match count {
        Some("election") => {
            let limit = 2 * raft_election_ticks(cluster, id);
            let raft = cluster.raft(id);
            for tick in 1..=limit {
                raft.tick();
                if raft.has_ready() {
                    writeln!(out, "{id} ticked {tick} times until it had output").unwrap();
                    return;
                }
            }
            writeln!(out, "{id} ticked {limit} times without output").unwrap();
        }
        count => {
            let count: u32 = count.map_or(1, |text| text.parse().expect("tick count"));
            for _ in 0..count {
                raft.tick();
            }
        }
    }
}

fn raft_election_ticks(cluster: &Cluster, id: u64) -> u32 {
    cluster.members[&id].config.election_timeout_ticks
}

/// Runs one script and returns its whole rendered transcript.
fn run_script(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable script");
    let mut cluster = Cluster::default();
    let mut transcript = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            writeln!(transcript, "{line}").unwrap();
            continue;
        }
        writeln!(transcript, "> {line}").unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut out = String::new();
        run_command(&mut cluster, words[0], &words[1..], &mut out);
        transcript.push_str(&out);
    }
    transcript
}

/// Goal: every raft behaviour is shown as a readable story whose output is reviewed once and then
/// guarded against change. Method: run each `scripts/*.txt` and compare its transcript with the
/// snapshot; the harness also asserts apply safety and order on every step.
#[test]
fn raft_scripts() {
    insta::glob!("scripts/*.txt", |path| {
        insta::assert_snapshot!(run_script(path));
    });
}
