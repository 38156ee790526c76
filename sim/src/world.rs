//! The discrete-event loop of one run: the world owns the queue, the processes, the network, the
//! clients and the recorder, pops events in time order and routes each member's `Actions`.
//!
//! Client handling lives in `clients`, fault injection in `faults`, the run's report in `report`.
//! Nothing here reads the wall clock; one seed and one scenario determine every event.

use std::collections::BTreeMap;

use engine::api::{DiskOp, DiskOpId, Input, Observation, PeerMessage};
use engine::kv::{Request, RequestError, Response};
use engine::types::{Duration, Instant, LogIndex, NodeId, RequestId, WatchId};

use crate::clients::{ClientState, RequestRoute, WatcherState};
use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::invariants::Invariants;
use crate::network::Network;
use crate::process::{HostedMember, Process, ProcessState};
use crate::queue::EventQueue;
use crate::rng::{SimRng, Stream};
use crate::scenario::Scenario;
use crate::trace::Trace;
use crate::workload::Generator;

/// Events waiting in the queue at most (a guard against feedback loops).
pub const QUEUE_EVENTS_COUNT_MAX: usize = 2_000_000;
/// Events processed per run at most; a run that needs more fails instead of hanging.
pub const RUN_EVENTS_COUNT_MAX: u64 = 50_000_000;
/// Trace lines kept in memory when asked to keep them.
pub const TRACE_LINES_KEPT_MAX: usize = 1_000_000;

/// Everything that can happen at an instant. Payloads are held inline, not boxed: the queue keeps
/// events in a slab where they do not move while waiting, so a box would only add an allocation.
#[derive(Debug)]
pub(crate) enum Event {
    MemberTimer {
        node: usize,
        incarnation: u32,
    },
    Deliver {
        from: NodeId,
        node: usize,
        message: PeerMessage,
    },
    DiskDone {
        node: usize,
        incarnation: u32,
        op_id: DiskOpId,
        op: DiskOp,
    },
    ClientWake {
        client: usize,
    },
    RequestArrives {
        op_id: u64,
        node: usize,
        request: Request,
    },
    ReplyArrives {
        client: usize,
        op_id: u64,
        result: Result<Response, RequestError>,
    },
    ClientTimeout {
        client: usize,
        op_id: u64,
    },
    WatcherStart {
        watcher: usize,
    },
    WatchTimeout {
        watcher: usize,
        op_id: u64,
    },
    /// A watcher asks for progress on its stream `watch` (the record's id), if still open.
    WatcherProgress {
        watcher: usize,
        watch: u64,
    },
    /// A watcher stops or resumes reading its stream `watch`, if still open.
    WatchBackpressure {
        watcher: usize,
        watch: u64,
        slow: bool,
    },
    /// The watcher's stop or resume reaches the member.
    BackpressureArrives {
        node: usize,
        watch_id: WatchId,
        slow: bool,
    },
    /// A lock client's next step (`lock_traffic`), unless `cycle` is stale.
    LockWake {
        client: usize,
        cycle: u64,
    },
    /// An answer reaches a lock client.
    LockReply {
        client: usize,
        op_id: u64,
        result: Result<Response, RequestError>,
    },
    /// A lock client's request (or keep-alive) `op_id` times out, unless answered.
    LockTimeout {
        client: usize,
        op_id: u64,
    },
    /// A lock client's session sends its next keep-alive.
    LockKeepAlive {
        client: usize,
        cycle: u64,
    },
    /// A lock client's waiter gives up, unless it acquired or moved on.
    LockWaitDeadline {
        client: usize,
        cycle: u64,
    },
    /// A lock client's watch creation `op_id` times out, unless answered.
    LockWatchTimeout {
        client: usize,
        op_id: u64,
    },
    /// A watch response reaches a lock client on its stream `op_id`.
    LockWatchArrives {
        client: usize,
        op_id: u64,
        response: engine::kv::WatchResponse,
    },
    Fault,
    /// Entry `index` of the scenario's timeline strikes (`scripted`).
    Scripted {
        index: usize,
    },
    /// The admin client's next step, or its retry (`membership`), unless `epoch` is stale.
    AdminNext {
        epoch: u64,
    },
    /// An armed crash point fires (`aimed`).
    CrashPoint {
        node: usize,
        incarnation: u32,
    },
    /// A step of the Figure-8 schedule timed out (`nemesis`).
    FigureEightDeadline {
        epoch: u64,
    },
    /// The Figure-8 schedule's vanished leader crashes.
    FigureEightVanish {
        epoch: u64,
    },
    PartitionEnd {
        epoch: u64,
    },
    FlapToggle {
        epoch: u64,
        remaining: u32,
        cut: bool,
    },
    Restart {
        node: usize,
    },
    Resume {
        node: usize,
    },
    Heal,
    LivenessDeadline,
    End,
}

/// The run's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Safety,
    Liveness { healed_at: Instant },
    Drain,
}

/// Counters for the report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    /// Operations recorded in the history.
    pub ops: u64,
    /// Operations with a successful response.
    pub ops_ok: u64,
    /// Operations with a definite error.
    pub ops_error: u64,
    /// Operations with unknown outcome (timeouts, end of run).
    pub ops_unknown: u64,
    /// Simulator queue events processed (every delivery, timer, disk completion, client and
    /// fault event); `events.jsonl` holds only the cluster events the checkers read.
    pub events: u64,
    /// Messages sent between members.
    pub messages: u64,
    /// Crashes, including halts.
    pub crashes: u64,
    /// Halts requested by members.
    pub halts: u64,
    /// Restarts that started a member again.
    pub restarts: u64,
    /// Restarts refused: the member would not recover from its disk (it stays dead).
    pub start_refused: u64,
    /// Pauses.
    pub pauses: u64,
    /// Partitions applied.
    pub partitions: u64,
    /// Disk faults injected.
    pub disk_faults: u64,
    /// Clock faults injected.
    pub clock_faults: u64,
    /// Faults the budget refused.
    pub faults_refused: u64,
    /// Watch streams opened.
    pub watches: u64,
}

/// One run in progress.
pub(crate) struct World<M: HostedMember> {
    pub(crate) scenario: Scenario,
    pub(crate) seed: u64,
    pub(crate) queue: EventQueue<Event>,
    pub(crate) processes: Vec<Process<M>>,
    pub(crate) network: Network,
    pub(crate) clients: Vec<ClientState>,
    pub(crate) watchers: Vec<WatcherState>,
    /// Requests a member may still answer, by request id.
    pub(crate) routes: BTreeMap<u64, RequestRoute>,
    pub(crate) request_id_next: u64,
    pub(crate) fault_rng: SimRng,
    /// Role choices of the scripted timeline (`a_follower`, `a_minority`), apart from the
    /// random schedule's stream so that a timeline shifts none of its draws.
    pub(crate) script_rng: SimRng,
    /// Every fault that ran, random or scripted, with concrete targets (`RunReport::faults_ran`).
    pub(crate) faults_ran: Vec<crate::timeline::TimedFault>,
    /// Per member slot, where it stands (`membership`); all voters unless the scenario has
    /// spare slots and the timeline changes the membership.
    pub(crate) membership: Vec<crate::membership::Membership>,
    /// The admin client's operation in flight, and the epoch that retires its stale events.
    pub(crate) admin: Option<crate::membership::AdminOp>,
    pub(crate) admin_epoch: u64,
    /// Members being replaced: each counts as down for the fault budget.
    pub(crate) replacing_count: u32,
    /// Some membership change was answered: the heal restarts every joined member.
    pub(crate) membership_changed: bool,
    /// The learner added last (`the_learner`).
    pub(crate) last_learner: Option<usize>,
    /// A member cut off until the leader compacts past its last entry (`fall_behind`):
    /// (its position, its last index then, the partition's epoch).
    pub(crate) fall_behind: Option<(usize, LogIndex, u64)>,
    /// Until then, a compaction storm runs (`compaction_storm`).
    pub(crate) compaction_storm_until: Instant,
    /// When armed crash points fire inside their window (`aimed`).
    pub(crate) aim_rng: SimRng,
    /// The Figure-8 schedule (`nemesis`), and the epoch that retires its stale events.
    pub(crate) figure_eight: crate::nemesis::FigureEight,
    pub(crate) figure_eight_epoch: u64,
    /// Per member, the highest index it acknowledged to the Figure-8 re-commit leader.
    pub(crate) figure_eight_acked: Vec<LogIndex>,
    pub(crate) invariants: Invariants,
    pub(crate) trace: Trace,
    pub(crate) history_lines: Option<Vec<String>>,
    /// Cluster events for the checkers (`events.jsonl`), when artifacts are kept.
    pub(crate) event_lines: Option<Vec<String>>,
    /// Every recorded operation, as the checkers read it (always kept: every run is checked).
    pub(crate) check_ops: Vec<checkers::history::Operation>,
    /// Cluster facts for the trace checkers (always kept).
    pub(crate) check_trace: Vec<checkers::trace::TraceEvent>,
    pub(crate) phase: Phase,
    /// The latest leader the world saw elected: the nemesis's knowledge, for aiming faults
    /// ("isolate the leader"). Clients never read it; they route on what members answer.
    pub(crate) leader_hint: Option<NodeId>,
    pub(crate) partition_epoch: u64,
    pub(crate) partition_active: bool,
    pub(crate) flapping_partition: Option<crate::network::Partition>,
    pub(crate) corrupted: Vec<NodeId>,
    pub(crate) counts: Counts,
    pub(crate) liveness_shown_at: Option<Instant>,
    pub(crate) ended: bool,
    /// The buffer a step collects its applied terms in (`hosted`), kept between steps so its
    /// capacity is reused.
    pub(crate) applied_terms_spare: Vec<engine::types::Term>,
    /// Auth traffic, when the scenario has it: clients then run as users.
    pub(crate) auth: Option<crate::auth_traffic::AuthClients>,
    /// Lock traffic, when the scenario has it.
    pub(crate) locks: Option<crate::lock_traffic::LockClients>,
}

impl<M: HostedMember> World<M> {
    /// A world at time zero, with every member started on an empty disk.
    pub(crate) fn new(mut scenario: Scenario, seed: u64, keep_artifacts: bool) -> World<M> {
        // One draw from a stream of its own: turning buggify on or off shifts no other stream.
        scenario.member.buggify = SimRng::for_stream(seed, Stream::Buggify)
            .chance_ppm(scenario.member.buggify_seeds_ppm.min(crate::rng::PPM));
        let member_count = scenario.member_count;
        // Spare slots follow the members: ids beyond `member_count`, never among the voters.
        let slots_count = member_count + scenario.spare_member_count;
        let ids: Vec<NodeId> = (1..=u64::from(slots_count)).map(NodeId).collect();
        let voters: Vec<NodeId> = ids[..member_count as usize].to_vec();
        let membership = (0..slots_count)
            .map(|index| {
                if index < member_count {
                    crate::membership::Membership::Voter
                } else {
                    crate::membership::Membership::Spare
                }
            })
            .collect();
        let processes = (0..slots_count)
            .map(|index| {
                let disk = SimDisk::new(
                    scenario.disk.clone(),
                    SimRng::for_stream(seed, Stream::Disk(index)),
                );
                let mut clock_rng = SimRng::for_stream(seed, Stream::Clock(index));
                let skew_ns =
                    clock_rng.range_inclusive(0, scenario.faults.clock_skew_ms_max * 1_000_000);
                let member_rng = SimRng::for_stream(seed, Stream::Member(index));
                Process::new(
                    ids[index as usize],
                    voters.clone(),
                    scenario.member.clone(),
                    disk,
                    SimClock::new(skew_ns),
                    member_rng,
                )
            })
            .collect();
        let network = Network::new(
            &ids,
            scenario.network.clone(),
            SimRng::for_stream(seed, Stream::Network),
        );
        let clients = (0..scenario.workload.client_count)
            .map(|index| {
                let rng = SimRng::for_stream(seed, Stream::Client(index));
                let routing = SimRng::for_stream(seed, Stream::ClientRouting(index));
                let generator = Generator::new(scenario.workload.clone(), index, rng);
                ClientState::new(generator, routing, member_count as usize)
            })
            .collect();
        let watchers = (0..scenario.workload.watcher_count)
            .map(|index| {
                let client_index = scenario.workload.client_count + index;
                WatcherState::new(
                    client_index,
                    SimRng::for_stream(seed, Stream::Client(client_index)),
                )
            })
            .collect();
        let auth = crate::auth_traffic::AuthClients::new(&scenario.workload, seed);
        let locks =
            crate::lock_traffic::LockClients::new(&scenario.workload, seed, member_count as usize);
        World {
            auth,
            locks,
            fault_rng: SimRng::for_stream(seed, Stream::Faults),
            script_rng: SimRng::for_stream(seed, Stream::Script),
            faults_ran: Vec::new(),
            membership,
            admin: None,
            admin_epoch: 0,
            replacing_count: 0,
            membership_changed: false,
            last_learner: None,
            fall_behind: None,
            compaction_storm_until: Instant(0),
            aim_rng: SimRng::for_stream(seed, Stream::Aim),
            figure_eight: crate::nemesis::FigureEight::Idle,
            figure_eight_epoch: 0,
            figure_eight_acked: Vec::new(),
            scenario,
            seed,
            queue: EventQueue::new(QUEUE_EVENTS_COUNT_MAX),
            processes,
            applied_terms_spare: Vec::new(),
            network,
            clients,
            watchers,
            routes: BTreeMap::new(),
            request_id_next: 1,
            invariants: Invariants::new(),
            trace: Trace::new(keep_artifacts, TRACE_LINES_KEPT_MAX),
            history_lines: keep_artifacts.then(Vec::new),
            event_lines: keep_artifacts.then(Vec::new),
            check_ops: Vec::new(),
            check_trace: Vec::new(),
            phase: Phase::Safety,
            leader_hint: None,
            partition_epoch: 0,
            partition_active: false,
            flapping_partition: None,
            corrupted: Vec::new(),
            counts: Counts::default(),
            liveness_shown_at: None,
            ended: false,
        }
    }

    /// Runs the world to its end.
    pub(crate) fn run(&mut self) {
        self.trace.event(
            Instant(0),
            format_args!(
                "start scenario={} seed={} members={} budget=corrupted<={},down<={} beyond_model={} buggify={}",
                self.scenario.name,
                self.seed,
                self.processes.len(),
                self.scenario.budget.corrupted_members_max,
                self.scenario.budget.down_members_max,
                self.scenario.beyond_model,
                self.scenario.member.buggify,
            ),
        );
        for node in 0..self.scenario.member_count as usize {
            self.start_member(node);
        }
        for client in 0..self.clients.len() {
            self.schedule_next_request(Instant(0), client);
        }
        self.start_lock_clients(Instant(0));
        for watcher in 0..self.watchers.len() {
            self.queue.schedule(
                Instant(0) + Duration::from_millis(10),
                Event::WatcherStart { watcher },
            );
        }
        self.schedule_next_fault(Instant(0));
        for (index, entry) in self.scenario.timeline.entries.iter().enumerate() {
            self.queue
                .schedule(Instant(entry.time_ns), Event::Scripted { index });
        }
        self.queue.schedule(
            Instant(0) + Duration::from_millis(self.scenario.safety_ms),
            Event::Heal,
        );
        while let Some((now, event)) = self.queue.pop() {
            self.counts.events += 1;
            if self.counts.events > RUN_EVENTS_COUNT_MAX {
                self.invariants.record(
                    "event_budget",
                    now,
                    format!("more than {RUN_EVENTS_COUNT_MAX} events"),
                );
                break;
            }
            self.handle(now, event);
            if self.ended {
                break;
            }
        }
        self.finish_open_operations();
        let now = self.queue.now();
        self.sample_all_logs(now);
        self.record_final_stores();
    }

    /// Inlined into the event loop, its one caller: passed by value to an outlined call, each
    /// event (136 bytes) took one more copy per event.
    #[inline(always)]
    fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::MemberTimer { node, incarnation } => {
                let process = &mut self.processes[node];
                // Timers cannot be cancelled here: only the standing one wakes the member.
                if process.incarnation() == incarnation && process.timer.is_current(now) {
                    let _due = process.timer.fire(now);
                    self.step_member(now, node, Input::Timer);
                }
            }
            Event::Deliver {
                from,
                node,
                message,
            } => {
                // A link cut while the message was in flight loses it too.
                if self.network.can_reach(from, self.processes[node].id()) {
                    self.step_member(now, node, Input::Receive { from, message });
                }
            }
            Event::DiskDone {
                node,
                incarnation,
                op_id,
                op,
            } => {
                if self.processes[node].incarnation() == incarnation {
                    let result = self.processes[node].disk.perform(&op, now);
                    self.step_member(now, node, Input::DiskDone { op: op_id, result });
                }
            }
            Event::ClientWake { client } => self.client_wake(now, client),
            Event::RequestArrives {
                op_id,
                node,
                request,
            } => {
                let input = self.request_input(RequestId(op_id), request);
                self.step_member(now, node, input);
            }
            Event::ReplyArrives {
                client,
                op_id,
                result,
            } => self.client_reply(now, client, op_id, result),
            Event::ClientTimeout { client, op_id } => self.client_timeout(now, client, op_id),
            Event::WatcherStart { watcher } => self.watcher_start(now, watcher),
            Event::WatchTimeout { watcher, op_id } => self.watch_timeout(now, watcher, op_id),
            Event::WatcherProgress { watcher, watch } => self.watcher_progress(now, watcher, watch),
            Event::WatchBackpressure {
                watcher,
                watch,
                slow,
            } => self.watch_backpressure(now, watcher, watch, slow),
            Event::BackpressureArrives {
                node,
                watch_id,
                slow,
            } => self.step_member(now, node, Input::WatchBackpressure { watch_id, slow }),
            Event::LockWake { client, cycle } => self.lock_wake(now, client, cycle),
            Event::LockReply {
                client,
                op_id,
                result,
            } => self.lock_reply(now, client, op_id, result),
            Event::LockTimeout { client, op_id } => self.lock_timeout(now, client, op_id),
            Event::LockKeepAlive { client, cycle } => self.lock_keepalive(now, client, cycle),
            Event::LockWaitDeadline { client, cycle } => {
                self.lock_wait_deadline(now, client, cycle)
            }
            Event::LockWatchTimeout { client, op_id } => {
                self.lock_watch_timeout(now, client, op_id)
            }
            Event::LockWatchArrives {
                client,
                op_id,
                response,
            } => self.lock_watch_arrives(now, client, op_id, response),
            Event::Fault => self.inject_fault(now),
            Event::Scripted { index } => self.run_scripted(now, index),
            Event::AdminNext { epoch } => self.admin_next(now, epoch),
            Event::CrashPoint { node, incarnation } => self.crash_point(now, node, incarnation),
            Event::FigureEightDeadline { epoch } => self.figure_eight_timeout(now, epoch),
            Event::FigureEightVanish { epoch } => self.figure_eight_vanish(now, epoch),
            Event::PartitionEnd { epoch } => self.partition_end(now, epoch),
            Event::FlapToggle {
                epoch,
                remaining,
                cut,
            } => self.flap_toggle(now, epoch, remaining, cut),
            Event::Restart { node } => self.restart_member(node),
            Event::Resume { node } => self.resume_member(now, node),
            Event::Heal => self.heal(now),
            Event::LivenessDeadline => self.liveness_deadline(now),
            Event::End => {
                self.trace.event(now, format_args!("end"));
                self.ended = true;
            }
        }
    }

    /// Keeps a cluster event line, rendered only when artifacts are kept.
    pub(crate) fn record_event(&mut self, render: impl FnOnce() -> Option<String>) {
        if let Some(lines) = &mut self.event_lines {
            if let Some(line) = render() {
                lines.push(line);
            }
        }
    }

    pub(crate) fn observe(&mut self, now: Instant, id: NodeId, observation: &Observation) {
        self.record_event(|| crate::events::observation_line(id, now, observation));
        match observation {
            Observation::BecameLeader { term } => {
                if self.figure_eight != crate::nemesis::FigureEight::Idle {
                    if let Some(node) = self.node_index(id) {
                        self.figure_eight_on_leader(now, node, *term);
                    }
                }
                self.trace
                    .event(now, format_args!("n{id} leader term={term}"));
                self.leader_hint = Some(id);
                self.invariants.on_leader(now, id, *term);
                self.check_trace
                    .push(checkers::trace::TraceEvent::LeaderElected {
                        member: crate::checking::member(id),
                        term: checkers::trace::Term(term.0),
                        time: crate::checking::time_of(now),
                    });
                // The new leader's log, for leader completeness (it must hold every entry
                // committed before its term).
                if let Some(node) = self.node_index(id) {
                    self.sample_log(now, node);
                }
            }
            Observation::Applied {
                index,
                term,
                digest,
            } => {
                // Tag 1: an applied entry.
                self.trace
                    .hash_fact(&[1, id.0, index.0, term.0, *digest], &[]);
                self.invariants.on_applied(now, id, *index, *term, *digest);
                self.check_trace.push(checkers::trace::TraceEvent::Applied {
                    member: crate::checking::member(id),
                    index: checkers::trace::LogIndex(index.0),
                    term: checkers::trace::Term(term.0),
                    digest: *digest,
                });
            }
            Observation::KvHash {
                index,
                revision,
                hash,
            } => {
                self.check_trace.push(checkers::trace::TraceEvent::KvHash {
                    member: crate::checking::member(id),
                    index: checkers::trace::LogIndex(index.0),
                    revision: revision.0,
                    hash: *hash,
                });
                self.trace.event(
                    now,
                    format_args!(
                        "n{id} kv_hash index={index} revision={revision} hash={hash:016x}"
                    ),
                );
            }
            Observation::Snapshot { index, installed } => {
                self.trace.event(
                    now,
                    format_args!("n{id} snapshot index={index} installed={installed}"),
                );
                if let Some((behind, last_index, epoch)) = self.fall_behind {
                    // The leader compacted its log past everything the cut-off member holds:
                    // it can only catch up from a snapshot now.
                    if !installed
                        && *index > last_index
                        && self.leader_hint == Some(id)
                        && self.node_index(id) != Some(behind)
                    {
                        self.fall_behind = None;
                        self.partition_end(now, epoch);
                    }
                }
            }
        }
    }

    /// Records a `LogState` sample of member `node`'s raft log, if it is running and has one.
    pub(crate) fn sample_log(&mut self, now: Instant, node: usize) {
        let id = self.processes[node].id();
        if let Some((entries, commit_index)) = self.processes[node]
            .member()
            .and_then(|member| member.log_sample())
        {
            self.check_trace
                .push(crate::checking::log_state(id, now, &entries, commit_index));
        }
    }

    /// Samples every running member's log (at the heal and at the end of the run).
    pub(crate) fn sample_all_logs(&mut self, now: Instant) {
        for node in 0..self.processes.len() {
            self.sample_log(now, node);
        }
    }

    /// Records every running member's final MVCC change log, for the durability check.
    pub(crate) fn record_final_stores(&mut self) {
        for process in &self.processes {
            if let Some((compacted_revision, changes)) =
                process.member().and_then(|member| member.final_store())
            {
                self.check_trace
                    .push(checkers::trace::TraceEvent::FinalStore {
                        member: crate::checking::member(process.id()),
                        compacted_revision,
                        changes,
                    });
            }
        }
    }

    /// The position of member `id` in `processes`.
    pub(crate) fn node_index(&self, id: NodeId) -> Option<usize> {
        let index = usize::try_from(id.0).ok()?.checked_sub(1)?;
        (index < self.processes.len()).then_some(index)
    }

    /// Crashes member `node` now and cancels what it had in flight for clients.
    pub(crate) fn crash_member(&mut self, now: Instant, node: usize) {
        let _ = self.crash_member_for(now, node, None);
    }

    /// `crash_member` with a chosen downtime (ms) instead of a drawn one. Returns the downtime
    /// if the member was running (and so crashed).
    pub(crate) fn crash_member_for(
        &mut self,
        now: Instant,
        node: usize,
        downtime_ms: Option<u64>,
    ) -> Option<u64> {
        if self.processes[node].crash() {
            self.counts.crashes += 1;
            let id = self.processes[node].id();
            self.trace.event(now, format_args!("n{id} crash"));
            self.record_event(|| Some(crate::events::crashed_line(id, now)));
            self.check_trace.push(checkers::trace::TraceEvent::Crashed {
                member: crate::checking::member(id),
                time: crate::checking::time_of(now),
            });
            self.cancel_watches_on(now, node, "member crashed");
            if self.leader_hint == Some(id) {
                self.leader_hint = None;
            }
            let downtime_ms = downtime_ms.unwrap_or_else(|| {
                self.fault_rng
                    .range_inclusive(100, self.scenario.faults.downtime_ms_max.max(100))
            });
            self.queue.schedule(
                now + Duration::from_millis(downtime_ms),
                Event::Restart { node },
            );
            return Some(downtime_ms);
        }
        None
    }

    /// Restarts member `node` if it is still down (the heal may have restarted it already).
    pub(crate) fn restart_member(&mut self, node: usize) {
        if self.processes[node].state() == &ProcessState::Down && self.membership[node].is_joined()
        {
            self.start_member(node);
        }
    }

    /// Resumes member `node` if it is still paused (it may have crashed, or the heal resumed it).
    fn resume_member(&mut self, now: Instant, node: usize) {
        if self.processes[node].state() != &ProcessState::Paused {
            return;
        }
        let buffered = self.processes[node].resume();
        let id = self.processes[node].id();
        self.trace.event(
            now,
            format_args!("n{id} resume buffered={}", buffered.len()),
        );
        // Stale timers fire first, as after a long GC pause.
        self.step_member(now, node, Input::Timer);
        for input in buffered {
            self.step_member(now, node, input);
        }
    }
}
