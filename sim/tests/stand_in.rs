//! The simulator's own paths, end to end, with stand-in members instead of the engine's: replies,
//! disk durability and recovery, the liveness phase, and the inline checks catching planted bugs
//! that a correct engine never shows. The stand-ins are deliberately tiny; they test the host,
//! not consensus.

use engine::api::{Actions, DiskImage, DiskOp, DiskOpId, FileName, HaltReason, Input, Observation};
use engine::kv::{
    DeleteRangeResponse, Event, EventType, KeyValue, PutResponse, RangeResponse, Request,
    RequestError, Response, ResponseHeader, TxnResponse, WatchResponse,
};
use engine::member::{MemberConfig, RecoveryError, RecoveryReport};
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
/// Plants a bug: every write is answered with a put response, whatever it was.
const WRONG_KIND: u8 = 5;

const LEADER: NodeId = NodeId(1);
const RECORD_BYTES: usize = 8;

fn log_file() -> FileName {
    FileName("log".into())
}

/// A fixed-leader store: n1 leads term 1 forever and counts writes in a log of 8-byte records,
/// made durable before it acknowledges them (unless a bug is planted); the others redirect.
struct FixedLeader<const MODE: u8> {
    id: NodeId,
    /// Writes accepted (durable or not); the store's revision.
    revision: i64,
    has_file: bool,
    ready: bool,
    started: bool,
    op_next: u64,
    /// Replies held until their sync completes: (sync op, request id, request, revision).
    held: Vec<(DiskOpId, RequestId, Request, i64)>,
    writes_count: u64,
    /// Open watches; each durable write notifies all of them.
    watches: Vec<WatchId>,
}

impl<const MODE: u8> HostedMember for FixedLeader<MODE> {
    fn start(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Self, RecoveryReport), RecoveryError> {
        let stored = image.get(&log_file());
        let member = FixedLeader {
            id: config.id,
            revision: stored.map_or(0, |bytes| (bytes.len() / RECORD_BYTES) as i64),
            has_file: stored.is_some(),
            ready: false,
            started: false,
            op_next: 0,
            held: Vec::new(),
            writes_count: 0,
            watches: Vec::new(),
        };
        Ok((member, RecoveryReport::default()))
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
            }
            Input::Request { id, request } => self.on_request(id, request, &mut actions),
            Input::DiskDone { op, result } => self.on_disk_done(op, result, &mut actions),
            _ => {}
        }
        actions
    }
}

impl<const MODE: u8> FixedLeader<MODE> {
    fn next_op(&mut self) -> DiskOpId {
        self.op_next += 1;
        DiskOpId(self.op_next)
    }

    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            member_id: self.id,
            revision: Revision(self.revision),
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
            Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_) => {
                self.on_write(id, request, actions)
            }
            Request::WatchCreate(_) => {
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
            Request::Range(_) => {
                let range = RangeResponse {
                    header: self.header(),
                    kvs: Vec::new(),
                    more: false,
                    count: 0,
                };
                actions.reply.push((id, Ok(Response::Range(range))));
            }
            _ => actions.reply.push((id, Err(RequestError::TooManyRequests))),
        }
    }

    fn on_write(&mut self, id: RequestId, request: Request, actions: &mut Actions) {
        self.writes_count += 1;
        assert!(
            !(MODE == PANIC && self.writes_count == 50),
            "planted panic on the 50th write"
        );
        self.revision += 1;
        let append = self.next_op();
        let bytes = self.revision.to_le_bytes().to_vec();
        actions.disk.push((
            append,
            DiskOp::Append {
                file: log_file(),
                bytes,
            },
        ));
        if MODE == ACK_BEFORE_SYNC {
            actions
                .reply
                .push((id, Ok(write_response(&request, self.header()))));
            return;
        }
        let sync = self.next_op();
        actions.disk.push((sync, DiskOp::Sync { file: log_file() }));
        self.held.push((sync, id, request, self.revision));
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
        for (_, id, request, revision) in done {
            let header = ResponseHeader {
                revision: Revision(revision),
                ..self.header()
            };
            let request = if MODE == WRONG_KIND {
                Request::Put(Default::default())
            } else {
                request
            };
            actions
                .reply
                .push((id, Ok(write_response(&request, header))));
            let digest = revision as u64;
            actions.observe.push(Observation::Applied {
                index: LogIndex(revision as u64),
                term: Term(1),
                digest,
            });
            self.notify_watches(revision, actions);
        }
    }

    fn notify_watches(&self, revision: i64, actions: &mut Actions) {
        let shown = if MODE == WATCH_DISORDER && revision % 10 == 0 {
            revision - 5
        } else {
            revision
        };
        for watch_id in &self.watches {
            let kv = KeyValue {
                key: b"s00".to_vec(),
                mod_revision: Revision(shown),
                version: 1,
                ..KeyValue::default()
            };
            let event = Event {
                kind: EventType::Put,
                kv,
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

/// The reply to a write the stand-in performed (every write "changes" one key).
fn write_response(request: &Request, header: ResponseHeader) -> Response {
    match request {
        Request::DeleteRange(_) => Response::DeleteRange(DeleteRangeResponse {
            header,
            deleted: 1,
            prev_kvs: Vec::new(),
        }),
        Request::Txn(_) => Response::Txn(TxnResponse {
            header,
            succeeded: true,
            responses: Vec::new(),
        }),
        _ => Response::Put(PutResponse {
            header,
            prev_kv: None,
        }),
    }
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
    for name in [
        "no_faults",
        "partitions_only",
        "crash_restart",
        "clock_faults",
    ] {
        let scenario = Scenario::by_name(name).unwrap();
        for seed in 0..3 {
            let (report, _) =
                run_with::<FixedLeader<CORRECT>>(&scenario, seed, RunOptions::default());
            assert_eq!(
                report.verdict,
                Verdict::Pass,
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
