//! The simulator's own paths, end to end, with stand-in members instead of the engine's: replies,
//! disk durability and recovery, the liveness phase, and the inline checks catching planted bugs
//! that a correct engine never shows. The stand-ins are deliberately tiny; they test the host,
//! not consensus.

use engine::api::{Actions, DiskImage, DiskOp, DiskOpId, FileName, HaltReason, Input, Observation};
use engine::kv::{
    Event, EventType, KeyValue, PutResponse, RangeResponse, Request, RequestError, Response,
    ResponseHeader, WatchResponse,
};
use engine::member::{DurableFacts, MemberConfig, RecoveryError, RecoveryReport};
use engine::raft::{Message, MessageBody};
use engine::types::{Duration, Instant, LogIndex, NodeId, RequestId, Revision, Term, WatchId};
use sim::{run_with, HostedMember, RunOptions, Scenario, Verdict};

/// How the stand-in behaves.
const CORRECT: u8 = 0;
/// Plants a bug: acknowledges writes without syncing them.
const ACK_BEFORE_SYNC: u8 = 1;
/// Plants a bug: n2 also claims leadership of term 1.
const TWO_LEADERS: u8 = 2;
/// Plants a bug: the leader panics on its 50th write.
const PANIC: u8 = 3;
/// Plants a bug: every tenth watch event carries an older revision.
const WATCH_DISORDER: u8 = 4;
/// Plants a bug: every range read is answered with a put response.
const WRONG_KIND: u8 = 5;
/// Plants a bug: followers acknowledge one index more than they report synced.
const ACK_AHEAD_OF_SYNC: u8 = 6;
/// Like `ACK_AHEAD_OF_SYNC` without the bug: followers acknowledge what they report synced.
const ACK_SYNCED: u8 = 7;
/// Plants a bug: followers grant a vote in term 1 but come back from a restart in term 0.
const VOTE_FORGOTTEN: u8 = 8;
/// Like `VOTE_FORGOTTEN` without the bug: the vote is what a restart brings back.
const VOTE_KEPT: u8 = 9;

const LEADER: NodeId = NodeId(1);

/// A log record: revision, key length, key, value length, value (little-endian lengths).
fn encode_record(revision: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut bytes = revision.to_le_bytes().to_vec();
    bytes.extend((key.len() as u32).to_le_bytes());
    bytes.extend(key);
    bytes.extend((value.len() as u32).to_le_bytes());
    bytes.extend(value);
    bytes
}

/// The whole records of a log, in order; a torn tail is ignored.
fn decode_records(mut bytes: &[u8]) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    fn take<'a>(bytes: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
        let (head, tail) = (bytes.get(..count)?, bytes.get(count..)?);
        *bytes = tail;
        Some(head)
    }
    let mut records = Vec::new();
    loop {
        let mut rest = bytes;
        let Some(record) = (|| {
            let revision = i64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
            let key_len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?) as usize;
            let key = take(&mut rest, key_len)?.to_vec();
            let value_len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?) as usize;
            let value = take(&mut rest, value_len)?.to_vec();
            Some((revision, key, value))
        })() else {
            return records;
        };
        records.push(record);
        bytes = rest;
    }
}

fn log_file() -> FileName {
    FileName("log".into())
}

/// A fixed-leader store: n1 leads term 1 forever and keeps puts in a log of records (revision,
/// key, value), made durable before it acknowledges and applies them (unless a bug is planted);
/// the others redirect. It serves puts and ranges faithfully (so the checkers can judge it) and
/// refuses every other request with a definite error.
struct FixedLeader<const MODE: u8> {
    id: NodeId,
    /// Writes accepted (durable or not).
    revision: i64,
    /// The applied store: key to its latest kv, and the applied revision.
    kvs: std::collections::BTreeMap<Vec<u8>, KeyValue>,
    applied_revision: i64,
    has_file: bool,
    ready: bool,
    started: bool,
    op_next: u64,
    /// Replies held until their sync completes: (sync op, request id, request, revision).
    held: Vec<(DiskOpId, RequestId, engine::kv::PutRequest, i64)>,
    writes_count: u64,
    /// Open watches; each durable write notifies all of them.
    watches: Vec<WatchId>,
    /// Follower only: append acknowledgements (or the one vote) sent in this life.
    promises_sent: u64,
}

impl<const MODE: u8> HostedMember for FixedLeader<MODE> {
    fn start(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Self, RecoveryReport), RecoveryError> {
        let stored = image.get(&log_file());
        let mut member = FixedLeader {
            id: config.id,
            // Like etcd, an empty store is at revision 1; the first put makes revision 2.
            revision: 1,
            kvs: std::collections::BTreeMap::new(),
            applied_revision: 1,
            has_file: stored.is_some(),
            ready: false,
            started: false,
            op_next: 0,
            held: Vec::new(),
            writes_count: 0,
            watches: Vec::new(),
            promises_sent: 0,
        };
        for (revision, key, value) in decode_records(stored.map_or(&[][..], |bytes| &bytes[..])) {
            member.revision = revision;
            member.apply(revision, key, value);
        }
        Ok((member, RecoveryReport::default()))
    }

    fn durable_facts(&self) -> Option<DurableFacts> {
        let facts = |term: u64, vote: NodeId, synced_index: u64| DurableFacts {
            term: Term(term),
            vote,
            last_index: LogIndex(self.promises_sent),
            last_term: Term(term),
            synced_index: LogIndex(synced_index),
        };
        match MODE {
            ACK_AHEAD_OF_SYNC => Some(facts(1, NodeId(0), self.promises_sent.saturating_sub(1))),
            ACK_SYNCED => Some(facts(1, NodeId(0), self.promises_sent)),
            // A vote is only ever granted in term 1, to the fixed leader.
            VOTE_FORGOTTEN => Some(facts(0, NodeId(0), 0)),
            VOTE_KEPT => Some(facts(1, LEADER, 0)),
            _ => None,
        }
    }

    fn step(&mut self, now: Instant, input: Input) -> Actions {
        let mut actions = Actions {
            wake_at: Some(now + Duration::from_millis(100)),
            ..Actions::default()
        };
        if !self.started {
            self.started = true;
            self.on_start(&mut actions);
        }
        match input {
            Input::Timer if self.id != LEADER => {
                actions.send.push(engine::api::Envelope {
                    to: LEADER,
                    message: Message {
                        from: self.id,
                        to: LEADER,
                        term: Term(1),
                        body: MessageBody::HeartbeatResponse { read_sequence: 0 },
                    },
                });
                self.send_promise(&mut actions);
            }
            Input::Request { id, request } => self.on_request(id, request, &mut actions),
            Input::DiskDone { op, result } => self.on_disk_done(op, result, &mut actions),
            _ => {}
        }
        actions
    }
}

impl<const MODE: u8> FixedLeader<MODE> {
    /// In the promise modes, a follower's timer sends the leader a promise the checks of the
    /// persistence contract judge: an acknowledgement of the next index, or one granted vote.
    fn send_promise(&mut self, actions: &mut Actions) {
        let body = match MODE {
            ACK_AHEAD_OF_SYNC | ACK_SYNCED => MessageBody::AppendResponse {
                success: true,
                index: LogIndex(self.promises_sent + 1),
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
            VOTE_FORGOTTEN | VOTE_KEPT if self.promises_sent == 0 => MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
            },
            _ => return,
        };
        self.promises_sent += 1;
        actions.send.push(engine::api::Envelope {
            to: LEADER,
            message: Message {
                from: self.id,
                to: LEADER,
                term: Term(1),
                body,
            },
        });
    }

    fn next_op(&mut self) -> DiskOpId {
        self.op_next += 1;
        DiskOpId(self.op_next)
    }

    /// Applies a put at `revision`; returns the kv it wrote.
    fn apply(&mut self, revision: i64, key: Vec<u8>, value: Vec<u8>) -> KeyValue {
        assert_eq!(revision, self.applied_revision + 1, "puts apply in order");
        self.applied_revision = revision;
        let previous = self.kvs.get(&key);
        let kv = KeyValue {
            key: key.clone(),
            create_revision: previous.map_or(Revision(revision), |kv| kv.create_revision),
            mod_revision: Revision(revision),
            version: previous.map_or(1, |kv| kv.version + 1),
            value,
            lease: Default::default(),
        };
        self.kvs.insert(key, kv.clone());
        kv
    }

    fn range(&self, range: &engine::kv::RangeRequest) -> RangeResponse {
        let matching: Vec<&KeyValue> = if range.range_end.is_empty() {
            self.kvs.get(&range.key).into_iter().collect()
        } else {
            self.kvs
                .range(range.key.clone()..)
                .take_while(|(key, _)| range.range_end == b"\0" || **key < range.range_end)
                .map(|(_, kv)| kv)
                .collect()
        };
        let limit = if range.limit > 0 {
            range.limit as usize
        } else {
            usize::MAX
        };
        RangeResponse {
            header: self.header(),
            kvs: matching
                .iter()
                .take(limit)
                .map(|kv| (*kv).clone())
                .collect(),
            more: matching.len() > limit,
            count: matching.len() as i64,
        }
    }

    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            member_id: self.id,
            revision: Revision(self.applied_revision),
            raft_term: Term(1),
            cluster_id: 1,
        }
    }

    fn on_start(&mut self, actions: &mut Actions) {
        if self.id == LEADER || (MODE == TWO_LEADERS && self.id == NodeId(2)) {
            actions
                .observe
                .push(Observation::BecameLeader { term: Term(1) });
        }
        if self.id == LEADER && !self.has_file {
            let create = self.next_op();
            actions
                .disk
                .push((create, DiskOp::Create { file: log_file() }));
            let sync_dir = self.next_op();
            actions.disk.push((sync_dir, DiskOp::SyncDir));
        } else {
            self.ready = true;
        }
    }

    fn on_request(&mut self, id: RequestId, request: Request, actions: &mut Actions) {
        if self.id != LEADER || !self.ready {
            actions.reply.push((
                id,
                Err(RequestError::NotLeader {
                    leader_hint: Some(LEADER),
                }),
            ));
            return;
        }
        match request {
            Request::Put(put) if put.lease.0 == 0 && !put.prev_kv => {
                self.on_write(id, put, actions)
            }
            // The stand-in keeps no history: it serves only watches from now without prev_kv
            // and unsorted ranges at the latest revision, and refuses the rest of the widened
            // workload (old start revisions, prev_kv, sort orders) with an error.
            Request::WatchCreate(create) if create.start_revision.0 == 0 && !create.prev_kv => {
                let watch_id = WatchId(self.watches.len() as i64 + 1);
                self.watches.push(watch_id);
                actions.reply.push((
                    id,
                    Ok(Response::WatchCreated {
                        header: self.header(),
                        watch_id,
                    }),
                ));
            }
            Request::Range(range)
                if range.revision.0 == 0 && range.sort_order == engine::kv::SortOrder::None =>
            {
                let reply = if MODE == WRONG_KIND {
                    write_response(self.header())
                } else {
                    Response::Range(self.range(&range))
                };
                actions.reply.push((id, Ok(reply)));
            }
            _ => actions.reply.push((id, Err(RequestError::TooManyRequests))),
        }
    }

    fn on_write(&mut self, id: RequestId, put: engine::kv::PutRequest, actions: &mut Actions) {
        self.writes_count += 1;
        assert!(
            !(MODE == PANIC && self.writes_count == 50),
            "planted panic on the 50th write"
        );
        self.revision += 1;
        let append = self.next_op();
        let bytes = encode_record(self.revision, &put.key, &put.value);
        actions.disk.push((
            append,
            DiskOp::Append {
                file: log_file(),
                bytes,
            },
        ));
        if MODE == ACK_BEFORE_SYNC {
            let revision = self.revision;
            self.complete(id, put, revision, actions);
            return;
        }
        let sync = self.next_op();
        actions.disk.push((sync, DiskOp::Sync { file: log_file() }));
        self.held.push((sync, id, put, self.revision));
    }

    /// Applies a put, answers it and tells the watches.
    fn complete(
        &mut self,
        id: RequestId,
        put: engine::kv::PutRequest,
        revision: i64,
        actions: &mut Actions,
    ) {
        let kv = self.apply(revision, put.key, put.value);
        actions.reply.push((id, Ok(write_response(self.header()))));
        actions.observe.push(Observation::Applied {
            index: LogIndex(revision as u64),
            term: Term(1),
            digest: revision as u64,
        });
        self.notify_watches(kv, actions);
    }

    fn on_disk_done(
        &mut self,
        op: DiskOpId,
        result: Result<(), engine::api::DiskFault>,
        actions: &mut Actions,
    ) {
        if let Err(fault) = result {
            actions.halt = Some(HaltReason::WriteFailed {
                file: log_file(),
                fault,
            });
            return;
        }
        self.ready = true;
        let (done, waiting): (Vec<_>, Vec<_>) =
            self.held.drain(..).partition(|(sync, _, _, _)| *sync <= op);
        self.held = waiting;
        for (_, id, put, revision) in done {
            self.complete(id, put, revision, actions);
        }
    }

    fn notify_watches(&self, kv: KeyValue, actions: &mut Actions) {
        let mut kv = kv;
        if MODE == WATCH_DISORDER && kv.mod_revision.0 % 10 == 0 {
            kv.mod_revision = Revision(kv.mod_revision.0 - 5);
        }
        for watch_id in &self.watches {
            let event = Event {
                kind: EventType::Put,
                kv: kv.clone(),
                prev_kv: None,
            };
            let response = WatchResponse {
                header: self.header(),
                watch_id: *watch_id,
                events: vec![event],
                ..WatchResponse::default()
            };
            actions.notify.push(response);
        }
    }
}

/// The reply to a put the stand-in performed.
fn write_response(header: ResponseHeader) -> Response {
    Response::Put(PutResponse {
        header,
        prev_kv: None,
    })
}

fn checks(report: &sim::RunReport) -> Vec<&str> {
    report
        .failures
        .iter()
        .map(|failure| failure.check.as_str())
        .collect()
}

/// Goal: with a member that keeps its promises, runs pass under partitions, crashes and
/// pauses: clients get successful replies, the liveness phase sees a write commit, and no
/// inline check fires; the run is still deterministic. Method: a few seeds of three scenarios,
/// each run twice.
#[test]
fn a_correct_stand_in_passes() {
    // Not crash_restart: the stand-in forgets its watches on a crash without ending their
    // streams, which the watch checker rightly flags. Crashes are covered by the planted
    // ack-before-sync test below and by the real member's runs.
    for name in ["no_faults", "partitions_only", "clock_faults"] {
        let scenario = Scenario::by_name(name).unwrap();
        for seed in 0..3 {
            let (report, _) =
                run_with::<FixedLeader<CORRECT>>(&scenario, seed, RunOptions::default());
            assert!(
                report.failures.is_empty(),
                "{name} seed {seed}: {:?}",
                report.failures
            );
            assert!(
                report.counts.ops_ok > 1_000,
                "{name} seed {seed}: {} ok",
                report.counts.ops_ok
            );
            assert!(report.counts.messages > 0);
            let (again, _) =
                run_with::<FixedLeader<CORRECT>>(&scenario, seed, RunOptions::default());
            assert_eq!(report.trace_hash, again.trace_hash);
        }
    }
}

/// Goal: watch streams are routed to their watchers and recorded, the cluster events for the
/// checkers are kept, and a stream whose revisions go backwards is caught. Method: run the correct stand-in with artifacts and count recorded
/// events; then plant out-of-order events.
#[test]
fn watch_events_are_recorded_and_disorder_is_caught() {
    let (report, artifacts) = run_with::<FixedLeader<CORRECT>>(
        &Scenario::crash_restart(),
        1,
        RunOptions {
            keep_artifacts: true,
        },
    );
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.failures);
    let events_count: usize = artifacts
        .watches
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["events"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert!(
        events_count > 100,
        "only {events_count} watch events recorded"
    );
    for tag in [
        "leader_elected",
        "applied",
        "crashed",
        "restarted",
        "faults_healed",
    ] {
        let needle = format!("\"event\":\"{tag}\"");
        assert!(
            artifacts.events.iter().any(|line| line.contains(&needle)),
            "no {tag} event"
        );
    }
    let (report, _) =
        run_with::<FixedLeader<WATCH_DISORDER>>(&Scenario::no_faults(), 1, RunOptions::default());
    assert!(
        checks(&report).contains(&"watch_revisions_ordered"),
        "{:?}",
        report.failures
    );
}

/// Goal: acknowledging writes before they are durable is caught once a crash loses them.
/// Method: run the crash scenario with the planted bug; some seed must report
/// `acknowledged_write_lost` with the replay command, and never a simulator panic.
#[test]
fn acknowledging_before_sync_is_caught_as_a_lost_write() {
    let scenario = Scenario::crash_restart();
    let caught = (0..6).find_map(|seed| {
        let (report, _) =
            run_with::<FixedLeader<ACK_BEFORE_SYNC>>(&scenario, seed, RunOptions::default());
        assert!(!checks(&report).contains(&"simulator_panic"));
        checks(&report)
            .contains(&"acknowledged_write_lost")
            .then_some(report)
    });
    let report = caught.expect("no seed caught the lost acknowledged write");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(
        report.replay,
        format!(
            "detcd sim run --scenario crash_restart --seed {}",
            report.seed
        )
    );
}

/// Goal: two leaders in one term are caught. Method: plant the bug and check the failure.
#[test]
fn two_leaders_in_one_term_are_caught() {
    let (report, _) =
        run_with::<FixedLeader<TWO_LEADERS>>(&Scenario::no_faults(), 1, RunOptions::default());
    assert!(
        checks(&report).contains(&"one_leader_per_term"),
        "{:?}",
        report.failures
    );
}

/// Goal: a reply of the wrong kind (a put response to a delete) is a finding and leaves the
/// history parseable. Method: plant the bug and check the failure.
#[test]
fn a_reply_of_the_wrong_kind_is_caught() {
    let (report, _) =
        run_with::<FixedLeader<WRONG_KIND>>(&Scenario::no_faults(), 1, RunOptions::default());
    assert!(
        checks(&report).contains(&"response_kind"),
        "{:?}",
        report.failures
    );
}

/// Goal: a member panic is a finding, not a crash of the run: the run completes and reports
/// `member_panic` (and, since the leader is gone for good, a liveness failure).
/// Method: plant a panic on the 50th write.
#[test]
fn a_member_panic_is_a_finding() {
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (report, _) =
        run_with::<FixedLeader<PANIC>>(&Scenario::no_faults(), 1, RunOptions::default());
    std::panic::set_hook(previous_hook);
    assert!(
        checks(&report).contains(&"member_panic"),
        "{:?}",
        report.failures
    );
    assert!(checks(&report).contains(&"liveness"));
    assert!(report.sim_ms >= 60_000, "the run went on after the panic");
}

/// Goal: every run carries each checker's result, and a planted bug that the inline checks do
/// not name reaches the failures through a checker, with its window and the replay command.
/// Method: a correct stand-in must show every checker passing; then the stand-in that
/// acknowledges puts before they are durable, under crashes, must fail linearizability (a lost
/// acknowledged put lets a later put reuse its revision) on some short seed.
#[test]
fn checker_results_are_reported_and_a_planted_violation_fails_with_replay() {
    let (report, _) =
        run_with::<FixedLeader<CORRECT>>(&Scenario::no_faults(), 2, RunOptions::default());
    let names: Vec<&str> = report.checks.iter().map(|c| c.checker.as_str()).collect();
    for name in [
        "linearizability",
        "watch",
        "election_safety",
        "durability",
        "liveness",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(report
        .checks
        .iter()
        .all(|c| c.verdict == sim::checking::CheckVerdict::Pass));
    let json = report.to_json(0);
    assert_eq!(
        json["checks"].as_array().unwrap().len(),
        report.checks.len()
    );
    let scenario = Scenario::crash_restart();
    let report = (0..6)
        .map(|seed| {
            run_with::<FixedLeader<ACK_BEFORE_SYNC>>(&scenario, seed, RunOptions::default()).0
        })
        .find(|report| checks(report).contains(&"linearizability"))
        .expect("no seed failed linearizability");
    assert_eq!(report.verdict, Verdict::Fail);
    let failure = report
        .failures
        .iter()
        .find(|failure| failure.check == "linearizability")
        .unwrap();
    assert!(!failure.window.is_empty() && !failure.message.is_empty());
    let json = report.to_json(0);
    let reported = json["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|failure| failure["check"] == "linearizability")
        .unwrap();
    assert_eq!(
        reported["replay"],
        format!(
            "detcd sim run --scenario crash_restart --seed {}",
            report.seed
        )
    );
    assert!(!reported["window"].as_array().unwrap().is_empty());
}

/// Goal: `ack_after_sync` fails a member that acknowledges an index beyond what it reports
/// synced, and passes one that acknowledges only what it synced. Method: followers acknowledge
/// a growing index to the leader at every timer; plant a synced index one behind, then run the
/// same seed with the synced index level.
#[test]
fn acknowledging_an_unsynced_index_is_caught_by_ack_after_sync() {
    let scenario = Scenario::no_faults();
    let (report, _) =
        run_with::<FixedLeader<ACK_AHEAD_OF_SYNC>>(&scenario, 1, RunOptions::default());
    assert!(
        checks(&report).contains(&"ack_after_sync"),
        "{:?}",
        report.failures
    );
    let (report, _) = run_with::<FixedLeader<ACK_SYNCED>>(&scenario, 1, RunOptions::default());
    assert!(
        !checks(&report).contains(&"ack_after_sync"),
        "{:?}",
        report.failures
    );
}

/// Goal: `acknowledged_durability` fails a member whose granted vote a restart takes back,
/// and passes one that comes back with its vote. Method: followers grant one vote in term 1
/// and report durable facts at each restart (in crash_restart, followers crash and restart);
/// plant a restart in term 0, then run the same seed with the vote kept.
#[test]
fn a_vote_lost_by_a_restart_is_caught_by_acknowledged_durability() {
    let scenario = Scenario::crash_restart();
    let (report, _) = run_with::<FixedLeader<VOTE_FORGOTTEN>>(&scenario, 1, RunOptions::default());
    assert!(report.counts.restarts > 0, "a restart happened");
    assert!(
        checks(&report).contains(&"acknowledged_durability"),
        "{:?}",
        report.failures
    );
    let (report, _) = run_with::<FixedLeader<VOTE_KEPT>>(&scenario, 1, RunOptions::default());
    assert!(
        !checks(&report).contains(&"acknowledged_durability"),
        "{:?}",
        report.failures
    );
}
