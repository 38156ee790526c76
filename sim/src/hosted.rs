//! The simulator's side of the host contract: the world lends itself to a member's hosting
//! (`host::Hosting`) as its `host::Io` for the length of one step. The hosting decides the
//! order of carrying out the step's actions, keeps the routes of requests and watch streams,
//! checks the disk queue and kicks a started member, exactly as it does in the real server;
//! this module supplies what a simulated host supplies: completion times and events for disk
//! operations, copies of messages on the simulated network, answers travelling back to the
//! simulated clients, timers in true time, and the faults aimed between the steps of one
//! carry-out (the Figure-8 schedule after the observations, crash points before the sends).
//!
//! It decides nothing about the member and reads no clock; one seed decides every event.

use engine::api::{DiskOp, DiskOpId, Envelope, Input, Observation, PeerMessage};
use engine::kv::WatchResponse;
use engine::types::{Instant, NodeId, RequestId, Term};
use host::{Answer, Route};

use crate::clients::RequestRoute;
use crate::process::{HostedMember, SimHosting, StartFailure};
use crate::world::{Event, World};

/// The world as one member's `host::Io` during one step.
struct SimIo<'world, M: HostedMember> {
    world: &'world mut World<M>,
    node: usize,
    id: NodeId,
    /// True time of the step (the member sees its local clock).
    now: Instant,
    /// The process's life, for its events (a crash retires them).
    incarnation: u32,
    /// The crash point armed on the process when the step's disk operations are issued.
    aim: Option<crate::aimed::Aim>,
    /// When the step's last disk operation completes, and whether an armed crash point aims at
    /// one of the step's operations: together, the window a crash point may fire in.
    disk_window_end: Option<Instant>,
    disk_aim_matched: bool,
    /// Terms of the entries the step applied (for the Figure-8 schedule).
    applied_terms: Vec<Term>,
}

impl<M: HostedMember> host::Io for SimIo<'_, M> {
    type Reply = u64;
    type Stream = u64;

    fn observe(&mut self, observation: &Observation) {
        if let Observation::Applied { term, .. } = observation {
            self.applied_terms.push(*term);
        }
        self.world.observe(self.now, self.id, observation);
    }

    fn keep_running(&mut self) -> bool {
        if let crate::nemesis::FigureEight::Recommit {
            leader,
            leader_term,
            ..
        } = self.world.figure_eight
        {
            if leader == self.node {
                let (mut applied_old, mut applied_own) = (false, false);
                for term in &self.applied_terms {
                    applied_old |= *term < leader_term;
                    applied_own |= *term == leader_term;
                }
                self.world
                    .figure_eight_on_applied(self.now, self.node, applied_old, applied_own);
                if self.world.processes[self.node].is_down() {
                    return false;
                }
            }
        }
        self.aim = self.world.processes[self.node].aim;
        true
    }

    fn disk(&mut self, op_id: DiskOpId, op: DiskOp) {
        let done = self.world.processes[self.node].disk_completion_time(&op, self.now);
        self.disk_window_end = Some(done);
        self.disk_aim_matched |= self.aim.is_some_and(|aim| aim.matches_disk(&op));
        self.world.queue.schedule(
            done,
            Event::DiskDone {
                node: self.node,
                incarnation: self.incarnation,
                op_id,
                op,
            },
        );
    }

    fn before_send(&mut self, messages: &[Envelope]) {
        let disk_window_end = self.disk_window_end.filter(|_| self.disk_aim_matched);
        self.world
            .inspect_actions(self.now, self.node, messages, disk_window_end);
    }

    fn send(&mut self, envelope: Envelope) {
        let world = &mut *self.world;
        world.counts.messages += 1;
        let Some(target) = world.node_index(envelope.to) else {
            return;
        };
        let copies = world.network.transmit(self.id, envelope.to);
        // Earlier copies (of a duplicated message) get clones; the last takes the message.
        if let Some((last, earlier)) = copies.as_slice().split_last() {
            for delay in earlier {
                world.deliver_later(self.now + *delay, self.id, target, envelope.message.clone());
            }
            world.deliver_later(self.now + *last, self.id, target, envelope.message);
        }
    }

    fn answer(&mut self, op_id: u64, answer: Answer) {
        self.world
            .route_reply(self.now, self.node, RequestId(op_id), answer);
    }

    fn watch_answered(&mut self, op_id: &u64, answer: Answer) {
        // The watcher reads the answer itself (created, or the error that ends its stream).
        self.world
            .route_reply(self.now, self.node, RequestId(*op_id), answer);
    }

    fn deliver(&mut self, _op_id: &u64, response: WatchResponse) -> bool {
        // A simulated stream never closes under the member: a watcher that moved on ignores
        // what still comes (`route_notify` finds no open stream for it).
        self.world.route_notify(self.now, self.node, response);
        true
    }

    fn wake_at(&mut self, wake_local: Instant) {
        let wake_true = self.world.processes[self.node]
            .clock
            .true_time_of(wake_local, self.now);
        self.world.set_timer(self.node, wake_true);
    }
}

impl<M: HostedMember> World<M> {
    /// Starts (or restarts) member `node` from its disk: recovers it, records the start, and
    /// kicks it (`host::Hosting::kick`).
    pub(crate) fn start_member(&mut self, node: usize) {
        let now = self.queue.now();
        let id = self.processes[node].id();
        let started = self.processes[node]
            .prepare_start(now)
            .and_then(|prepared| {
                let engine_bytes = prepared.engine_bytes;
                let notes = self.processes[node]
                    .recover(prepared)
                    .map_err(StartFailure::Refused)?;
                Ok((notes, engine_bytes))
            });
        let (notes, engine_bytes) = match started {
            Ok(started) => started,
            Err(StartFailure::NotRecorded(reason)) => {
                // As after a halt on a failed write: down for a while, then another try.
                self.trace
                    .event(now, format_args!("n{id} start failed {reason}"));
                let downtime_ms = self
                    .fault_rng
                    .range_inclusive(100, self.scenario.faults.downtime_ms_max.max(100));
                self.queue.schedule(
                    now + engine::types::Duration::from_millis(downtime_ms),
                    Event::Restart { node },
                );
                return;
            }
            Err(StartFailure::Refused(reason)) => {
                self.counts.start_refused += 1;
                self.trace.event(now, format_args!("n{id} dead {reason}"));
                // Refusing to start on a disk that took silent corruption is a fair fail-stop
                // (the rest of the cluster still has a quorum); refusing after crashes and
                // torn writes alone is not, since the design claims to survive those.
                if !self.scenario.beyond_model && !self.corrupted.contains(&id) {
                    self.invariants
                        .record("member_recovery", now, format!("n{id}: {reason}"));
                }
                return;
            }
        };
        let incarnation = self.processes[node].incarnation();
        let verb = if incarnation == 0 { "start" } else { "restart" };
        if incarnation > 0 {
            self.counts.restarts += 1;
            self.record_event(|| Some(crate::events::restarted_line(id, now)));
            self.check_trace
                .push(checkers::trace::TraceEvent::Restarted {
                    member: crate::checking::member(id),
                    time: crate::checking::time_of(now),
                });
        }
        self.trace.event(
            now,
            format_args!(
                "n{id} {verb} incarnation={incarnation} disk_bytes={engine_bytes} notes={}{}",
                notes.len(),
                notes
                    .iter()
                    .map(|note| format!(" | {note}"))
                    .collect::<String>()
            ),
        );
        if incarnation > 0 {
            self.record_recovered(now, node);
        }
        self.step_hosting(now, node, |hosting, local_now, io| {
            hosting.kick(local_now, io)
        });
    }

    /// Steps member `node` with `input` through its hosting, which carries out what it asks.
    /// A paused process buffers the input; a down one loses it.
    pub(crate) fn step_member(&mut self, now: Instant, node: usize, input: Input) {
        match self.processes[node].state() {
            crate::process::ProcessState::Up => {}
            crate::process::ProcessState::Paused => return self.processes[node].buffer(input),
            _ => return,
        }
        match input {
            Input::Timer => {
                self.step_hosting(now, node, |hosting, local_now, io| {
                    hosting.wake(local_now, io)
                });
            }
            Input::Receive { from, message } => {
                self.step_hosting(now, node, |hosting, local_now, io| {
                    hosting.receive(local_now, from, message, io);
                })
            }
            Input::Request { id, request } => {
                // A watcher's (or a lock client's) create opens a stream; anything else (a request whose client
                // gave up included) has one answer, which the world routes or drops.
                let route = match self.routes.get(&id.0) {
                    Some(RequestRoute::Watcher(_) | RequestRoute::LockWatch(_)) => {
                        Route::Watch(id.0)
                    }
                    _ => Route::Reply(id.0),
                };
                self.step_hosting(now, node, |hosting, local_now, io| {
                    hosting.request_as(local_now, id, request, route, io);
                });
            }
            Input::DiskDone { op, result } => {
                self.step_hosting(now, node, |hosting, local_now, io| {
                    hosting.disk_done(local_now, op, result, io);
                })
            }
            Input::WatchBackpressure { watch_id, slow } => {
                self.step_hosting(now, node, |hosting, local_now, io| {
                    hosting.watch_backpressure(local_now, watch_id, slow, io);
                });
            }
            Input::RequestAs {
                id,
                request,
                credentials,
            } => {
                let route = Route::Reply(id.0);
                self.step_hosting(now, node, |hosting, local_now, io| {
                    hosting.request_as_with_credentials(
                        local_now,
                        id,
                        request,
                        credentials,
                        route,
                        io,
                    );
                });
            }
        }
    }

    /// Lends the world to member `node`'s hosting for one call, then settles its outcome: a
    /// panic kills the process, a halt crashes it (or retires it, when it applied its own
    /// removal).
    fn step_hosting(
        &mut self,
        now: Instant,
        node: usize,
        call: impl FnOnce(&mut SimHosting<M>, Instant, &mut SimIo<'_, M>),
    ) {
        let Some(mut hosting) = self.processes[node].take_hosting() else {
            unreachable!("a running process has its hosting between steps");
        };
        let incarnation = self.processes[node].incarnation();
        let local_now = self.processes[node].clock.local(now);
        let applied_terms = std::mem::take(&mut self.applied_terms_spare);
        let mut io = SimIo {
            id: self.processes[node].id(),
            world: self,
            node,
            now,
            incarnation,
            aim: None,
            disk_window_end: None,
            disk_aim_matched: false,
            applied_terms,
        };
        call(&mut hosting, local_now, &mut io);
        let mut applied_terms = io.applied_terms;
        applied_terms.clear();
        self.applied_terms_spare = applied_terms;
        let id = self.processes[node].id();
        if let Some(reason) = hosting.member_mut().take_panic() {
            self.trace.event(now, format_args!("n{id} panic"));
            self.invariants
                .record("member_panic", now, format!("n{id}: {reason}"));
            self.processes[node].die(reason);
            return;
        }
        if let Some(reason) = hosting.halted().cloned() {
            self.counts.halts += 1;
            self.trace.event(now, format_args!("n{id} halt {reason:?}"));
            if reason == engine::api::HaltReason::Removed {
                // It applied its own removal: an operator stops it for good.
                self.retire(now, node);
            } else {
                self.crash_member(now, node);
            }
            return;
        }
        self.processes[node].put_hosting(hosting, incarnation);
    }

    /// Queues one copy of a peer message for member `node` at `time`.
    fn deliver_later(&mut self, time: Instant, from: NodeId, node: usize, message: PeerMessage) {
        self.queue.schedule(
            time,
            Event::Deliver {
                from,
                node,
                message,
            },
        );
    }

    /// Makes sure member `node` gets a timer event at `time` (keeping an earlier one).
    pub(crate) fn set_timer(&mut self, node: usize, time: Instant) {
        let process = &mut self.processes[node];
        if !process.timer.arm(time) {
            // The earlier event wakes it first, and the member re-arms its timer then.
            return;
        }
        let incarnation = process.incarnation();
        self.queue
            .schedule(time, Event::MemberTimer { node, incarnation });
    }
}
