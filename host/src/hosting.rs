//! One hosted member and the rules of carrying out its actions. A host (the server's member
//! task, the conformance suite's driver) owns a [`Hosting`], feeds it inputs with its own idea
//! of `now`, and supplies the I/O through [`Io`].
//!
//! The order of carrying out one step's `Actions` is the contract (`carry_out`):
//! 1. observations, for the host's trace;
//! 2. disk operations, queued first in, first out ([`crate::disk::DiskQueue`]);
//! 3. messages, sent (the engine already held back what needed a sync);
//! 4. replies, then watch responses, routed to whoever asked (a watch's `created` reply
//!    registers its stream before that step's responses are routed, so none is lost);
//! 5. a halt: it takes effect only now, after everything the member said before halting left;
//!    a halted member re-arms no timer;
//! 6. the wake, kept as the earliest ([`crate::timer::TimerSlot`]).
//!
//! The simulator's world carries out actions in this same order in its own loop, because it
//! interleaves fault injection (crash points aimed at a disk window, message copies); the
//! order is asserted by the conformance suite on both hosts' disks.

use std::collections::BTreeMap;

use engine::api::{Actions, DiskFault, DiskImage, DiskOp, DiskOpId, Envelope, HaltReason, Input};
use engine::api::{Observation, PeerMessage};
use engine::kv::{Request, RequestError, Response, WatchResponse};
use engine::member::{Member, MemberConfig, RecoveryError, RecoveryReport};
use engine::types::{Instant, NodeId, RequestId, Revision, WatchId};

use crate::disk::DiskQueue;
use crate::timer::TimerSlot;

/// The answer to one request.
pub type Answer = Result<Response, RequestError>;

/// What a host supplies: the disk, the network and the way back to clients.
pub trait Io {
    /// Where the answer to one request goes (a oneshot channel, a client id).
    type Reply;
    /// Where one watch's responses go (a stream's channel).
    type Stream;
    /// Performs `op` after every operation given before it, and later reports its completion
    /// with [`Hosting::disk_done`].
    fn disk(&mut self, op_id: DiskOpId, op: DiskOp);
    /// Sends a message to a peer (best effort: raft retries what is lost).
    fn send(&mut self, envelope: Envelope);
    /// Hands an answer to whoever asked.
    fn answer(&mut self, reply: Self::Reply, answer: Answer);
    /// Hands one watch response to its stream; false when the stream is gone (the watch is
    /// then cancelled in the member).
    fn deliver(&mut self, stream: &Self::Stream, response: WatchResponse) -> bool;
    /// A fact for the host's trace or metrics.
    fn observe(&mut self, _observation: &Observation) {}
}

/// Where the outcome of a request goes.
#[derive(Debug)]
pub enum Route<R, S> {
    /// A plain request: one answer.
    Reply(R),
    /// A watch create: the answer opens (or refuses) the stream; responses follow on it.
    Watch(S),
}

/// A member and the bookkeeping of hosting it.
pub struct Hosting<R, S> {
    member: Member,
    timer: TimerSlot,
    disk: DiskQueue,
    routes: BTreeMap<RequestId, Route<R, S>>,
    watches: BTreeMap<WatchId, S>,
    /// Watches whose stream went away, cancelled in the member after the step.
    orphaned_watches: Vec<WatchId>,
    /// Invariant: greater than every id handed to the member so far.
    request_id_next: u64,
    halted: Option<HaltReason>,
    actions: Actions,
}

impl<R, S> core::fmt::Debug for Hosting<R, S> {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter
            .debug_struct("Hosting")
            .field("member", &self.member)
            .field("timer", &self.timer)
            .field("routes_count", &self.routes.len())
            .field("watches_count", &self.watches.len())
            .field("halted", &self.halted)
            .finish_non_exhaustive()
    }
}

impl<R, S> Hosting<R, S> {
    /// Starts a member from `image` at `now` and carries out its initial actions (the
    /// `Input::Timer` kick of `Member::start`).
    pub fn start<I: Io<Reply = R, Stream = S>>(
        config: MemberConfig,
        image: DiskImage,
        now: Instant,
        io: &mut I,
    ) -> Result<(Hosting<R, S>, RecoveryReport), RecoveryError> {
        let (member, report, mut actions) = Member::start(config, image, now)?;
        let mut hosting = Hosting {
            member,
            timer: TimerSlot::new(),
            disk: DiskQueue::new(),
            routes: BTreeMap::new(),
            watches: BTreeMap::new(),
            orphaned_watches: Vec::new(),
            request_id_next: 1,
            halted: None,
            actions: Actions::default(),
        };
        hosting.carry_out(&mut actions, io);
        hosting.cancel_orphaned_watches(now, io);
        Ok((hosting, report))
    }

    /// The member, read-only (status, samples).
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// Why the member halted, once it has: the host must stop it.
    pub fn halted(&self) -> Option<&HaltReason> {
        self.halted.as_ref()
    }

    /// When the member wants `Input::Timer`, if at all.
    pub fn wake_at(&self) -> Option<Instant> {
        self.timer.at()
    }

    /// Disk operations issued and not yet reported complete.
    pub fn disk_in_flight_count(&self) -> usize {
        self.disk.in_flight_count()
    }

    /// Watches with an open stream.
    pub fn watches_count(&self) -> usize {
        self.watches.len()
    }

    /// Hands a client request to the member; its outcome goes to `route`.
    pub fn request<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        request: Request,
        route: Route<R, S>,
        io: &mut I,
    ) {
        let id = self.next_request_id();
        self.routes.insert(id, route);
        self.step(now, Input::Request { id, request }, io);
    }

    /// Hands a client request with its credentials (a token, or a verified certificate's user)
    /// to the member; its outcome goes to `route`.
    pub fn request_as<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        request: Request,
        credentials: engine::auth::Credentials,
        route: Route<R, S>,
        io: &mut I,
    ) {
        let id = self.next_request_id();
        self.routes.insert(id, route);
        let input = Input::RequestAs {
            id,
            request,
            credentials,
        };
        self.step(now, input, io);
    }

    /// Reports the completion of the oldest disk operation in flight.
    pub fn disk_done<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        op: DiskOpId,
        result: Result<(), DiskFault>,
        io: &mut I,
    ) {
        self.disk.complete(op);
        self.step(now, Input::DiskDone { op, result }, io);
    }

    /// Delivers a message from a peer.
    pub fn receive<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        from: NodeId,
        message: PeerMessage,
        io: &mut I,
    ) {
        self.step(now, Input::Receive { from, message }, io);
    }

    /// Wakes the member if its timer is due at `now`; returns whether it was.
    pub fn fire_timer<I: Io<Reply = R, Stream = S>>(&mut self, now: Instant, io: &mut I) -> bool {
        if !self.timer.fire(now) {
            return false;
        }
        self.step(now, Input::Timer, io);
        true
    }

    /// Tells the member a watch's stream is full (`slow`) or drained.
    pub fn watch_backpressure<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        watch_id: WatchId,
        slow: bool,
        io: &mut I,
    ) {
        self.step(now, Input::WatchBackpressure { watch_id, slow }, io);
    }

    fn next_request_id(&mut self) -> RequestId {
        let id = RequestId(self.request_id_next);
        self.request_id_next += 1;
        id
    }

    /// Steps the member once and carries out what it asks. A halted member is not stepped:
    /// requests are answered `Stopping` here.
    fn step<I: Io<Reply = R, Stream = S>>(&mut self, now: Instant, input: Input, io: &mut I) {
        if self.halted.is_some() {
            if let Input::Request { id, .. } | Input::RequestAs { id, .. } = input {
                self.route_reply(id, Err(RequestError::Stopping), io);
            }
            return;
        }
        let mut actions = std::mem::take(&mut self.actions);
        self.member.step_into(now, input, &mut actions);
        self.carry_out(&mut actions, io);
        actions.clear();
        self.actions = actions;
        self.cancel_orphaned_watches(now, io);
    }

    /// A watch nobody reads any more is cancelled, so the member stops feeding it.
    fn cancel_orphaned_watches<I: Io<Reply = R, Stream = S>>(&mut self, now: Instant, io: &mut I) {
        while let Some(watch_id) = self.orphaned_watches.pop() {
            if self.halted.is_some() {
                self.orphaned_watches.clear();
                return;
            }
            let id = self.next_request_id();
            let request = Request::WatchCancel { watch_id };
            self.step(now, Input::Request { id, request }, io);
        }
    }

    /// Carries out `actions` in the contract's order (see the module's doc), draining them.
    fn carry_out<I: Io<Reply = R, Stream = S>>(&mut self, actions: &mut Actions, io: &mut I) {
        for observation in actions.observe.drain(..) {
            io.observe(&observation);
        }
        for (op_id, op) in actions.disk.drain(..) {
            // Real hosts take their own time; the queue keeps the order.
            let _completes_at = self
                .disk
                .issue(op_id, Instant(0), engine::types::Duration(0));
            io.disk(op_id, op);
        }
        for envelope in actions.send.drain(..) {
            io.send(envelope);
        }
        for (request_id, answer) in actions.reply.drain(..) {
            self.route_reply(request_id, answer, io);
        }
        for response in actions.notify.drain(..) {
            self.route_notify(response, io);
        }
        if let Some(reason) = actions.halt.take() {
            self.halted = Some(reason);
            self.timer.clear();
            return;
        }
        if let Some(wake_at) = actions.wake_at.take() {
            let _newly_armed = self.timer.arm(wake_at);
        }
    }

    fn route_reply<I: Io<Reply = R, Stream = S>>(
        &mut self,
        request_id: RequestId,
        answer: Answer,
        io: &mut I,
    ) {
        match self.routes.remove(&request_id) {
            Some(Route::Reply(reply)) => io.answer(reply, answer),
            Some(Route::Watch(stream)) => match answer {
                // Registered before this step's responses are routed: the member's `created`
                // response and any catch-up events follow in `notify`.
                Ok(Response::WatchCreated { watch_id, .. }) => {
                    self.watches.insert(watch_id, stream);
                }
                Ok(other) => {
                    let refusal = refused(format!("unexpected answer to a watch: {other:?}"), 0);
                    let _ = io.deliver(&stream, refusal);
                }
                Err(error) => {
                    let compacted = match &error {
                        RequestError::Compacted { compacted, .. } => compacted.0,
                        _ => 0,
                    };
                    let refusal = refused(error.etcd_text().to_string(), compacted);
                    let _ = io.deliver(&stream, refusal);
                }
            },
            // Internal requests (watch cancels of orphaned streams) have no route.
            None => {}
        }
    }

    fn route_notify<I: Io<Reply = R, Stream = S>>(&mut self, response: WatchResponse, io: &mut I) {
        let watch_id = response.watch_id;
        let canceled = response.canceled;
        if let Some(stream) = self.watches.get(&watch_id) {
            if !io.deliver(stream, response) {
                self.watches.remove(&watch_id);
                self.orphaned_watches.push(watch_id);
            } else if canceled {
                self.watches.remove(&watch_id);
            }
        }
    }
}

/// The response that tells a client its watch was not created.
fn refused(reason: String, compact_revision: i64) -> WatchResponse {
    WatchResponse {
        created: true,
        canceled: true,
        compact_revision: Revision(compact_revision),
        cancel_reason: reason,
        ..WatchResponse::default()
    }
}
