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
//! Both hosts use it: the server's member task, and the simulator's processes (`sim::process`),
//! which inject faults between the steps of one carry-out through the [`Io`] hooks
//! (`keep_running` after the observations, `before_send` once the disk operations were issued)
//! and keep the timer in their own frame of time (`Io::wake_at`).

use std::collections::BTreeMap;

use engine::api::{Actions, DiskFault, DiskImage, DiskOp, DiskOpId, Envelope, HaltReason, Input};
use engine::api::{Observation, PeerMessage};
use engine::kv::{Request, RequestError, Response, WatchResponse};
use engine::member::{Member, MemberConfig, RecoveryError, RecoveryReport};
use engine::types::{Instant, NodeId, RequestId, Revision, WatchId};

use crate::disk::DiskQueue;
pub use crate::timer::TimerSlot;

/// The answer to one request.
pub type Answer = Result<Response, RequestError>;

/// What a host hosts: the engine's `Member`, or a stand-in that a simulator's tests host in its
/// place to exercise the simulator's own paths.
pub trait Hosted: Sized {
    /// Recovers from what the disk held, without stepping (the kick is [`Hosting::kick`]).
    fn recover(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Self, RecoveryReport), RecoveryError>;
    /// Steps once at the member's time `now`, writing what it asks into `out` (which arrives
    /// empty; the member may keep its emptied buffers).
    fn step_into(&mut self, now: Instant, input: Input, out: &mut Actions);
}

impl Hosted for Member {
    fn recover(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Member, RecoveryReport), RecoveryError> {
        Member::new(config, image)
    }

    fn step_into(&mut self, now: Instant, input: Input, out: &mut Actions) {
        Member::step_into(self, now, input, out);
    }
}

/// What a host supplies: the disk, the network and the way back to clients. The hooks with a
/// default body are for hosts that do more than carry actions out (the simulator injects
/// faults between them); the server leaves them as they are.
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
    /// Asked once per step, after the observations and before anything leaves the member:
    /// false when the host stopped the member meanwhile (a fault aimed at what it observed).
    /// The rest of the step is then dropped, as if the process died there, and the host must
    /// not step this hosting again.
    fn keep_running(&mut self) -> bool {
        true
    }
    /// Once per step, after its disk operations were issued and before any message is sent:
    /// a simulator aims crash points at what the step sends (a vote, an acknowledgement).
    fn before_send(&mut self, _messages: &[Envelope]) {}
    /// Every wake the member asks for, in the member's time, unless it halted. [`Hosting`]
    /// keeps the earliest itself (`Hosting::wake_at`); a host whose time differs from the
    /// member's (the simulator's skewed clocks) keeps a [`TimerSlot`] of its own in its frame
    /// and wakes the member with [`Hosting::wake`].
    fn wake_at(&mut self, _at: Instant) {}
    /// The answer to a watch create, after a created watch's stream was registered (so that
    /// the member's `created` response and catch-up events, routed next, reach it). By default
    /// a create that failed is told to its stream as a canceled response in etcd's words; a
    /// created one needs nothing, as the member's own `created` response follows.
    fn watch_answered(&mut self, stream: &Self::Stream, answer: Answer) {
        match answer {
            Ok(Response::WatchCreated { .. }) => {}
            Ok(other) => {
                let refusal = refused(format!("unexpected answer to a watch: {other:?}"), 0);
                let _ = self.deliver(stream, refusal);
            }
            Err(error) => {
                let compacted = match &error {
                    RequestError::Compacted { compacted, .. } => compacted.0,
                    _ => 0,
                };
                let _ = self.deliver(stream, refused(error.etcd_text().to_string(), compacted));
            }
        }
    }
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
pub struct Hosting<R, S, M: Hosted = Member> {
    member: M,
    timer: TimerSlot,
    disk: DiskQueue,
    routes: BTreeMap<RequestId, Route<R, S>>,
    watches: BTreeMap<WatchId, S>,
    /// Watches whose stream went away, cancelled in the member after the step.
    orphaned_watches: Vec<WatchId>,
    /// Invariant: greater than every id handed to the member so far.
    request_id_next: u64,
    halted: Option<HaltReason>,
    /// Whether the kick after the start was given: every other input waits for it.
    kicked: bool,
    actions: Actions,
}

impl<R, S, M: Hosted + core::fmt::Debug> core::fmt::Debug for Hosting<R, S, M> {
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

impl<R, S, M: Hosted> Hosting<R, S, M> {
    /// Starts a member from `image` at `now` and carries out its initial actions: [`recover`]
    /// then [`kick`].
    ///
    /// [`recover`]: Hosting::recover
    /// [`kick`]: Hosting::kick
    pub fn start<I: Io<Reply = R, Stream = S>>(
        config: MemberConfig,
        image: DiskImage,
        now: Instant,
        io: &mut I,
    ) -> Result<(Hosting<R, S, M>, RecoveryReport), RecoveryError> {
        let (mut hosting, report) = Hosting::recover(config, image)?;
        hosting.kick(now, io);
        Ok((hosting, report))
    }

    /// Recovers a member from `image`; it must be kicked ([`Hosting::kick`]) before any other
    /// input. Split from `start` for a host that records the recovery before the member acts.
    pub fn recover(
        config: MemberConfig,
        image: DiskImage,
    ) -> Result<(Hosting<R, S, M>, RecoveryReport), RecoveryError> {
        let (member, report) = M::recover(config, image)?;
        let hosting = Hosting {
            member,
            timer: TimerSlot::new(),
            disk: DiskQueue::new(),
            routes: BTreeMap::new(),
            watches: BTreeMap::new(),
            orphaned_watches: Vec::new(),
            request_id_next: 1,
            halted: None,
            kicked: false,
            actions: Actions::default(),
        };
        Ok((hosting, report))
    }

    /// Steps a recovered member with `Input::Timer` once, right away, and carries out what it
    /// asks. Why: a member asks for its first wake only when stepped, and the repair
    /// operations of its recovery (a torn tail cut, a snapshot marker written) come out with
    /// its first actions; without the kick they would wait for an input that may never come.
    pub fn kick<I: Io<Reply = R, Stream = S>>(&mut self, now: Instant, io: &mut I) {
        assert!(!self.kicked, "a member is kicked once, after its start");
        self.kicked = true;
        self.step(now, Input::Timer, io);
    }

    /// The member, read-only (status, samples).
    pub fn member(&self) -> &M {
        &self.member
    }

    /// The member, for a host's own bookkeeping of it (a simulator's panic guard).
    pub fn member_mut(&mut self) -> &mut M {
        &mut self.member
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
        self.request_as(now, id, request, route, io);
    }

    /// Like [`Hosting::request`], under an id the host chose (the simulator names requests by
    /// its operation ids). The id must not be waiting for an answer; ids the hosting picks
    /// itself stay above every id named so far.
    pub fn request_as<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        id: RequestId,
        request: Request,
        route: Route<R, S>,
        io: &mut I,
    ) {
        let previous = self.routes.insert(id, route);
        assert!(previous.is_none(), "request id {id:?} is already waiting");
        self.request_id_next = self.request_id_next.max(id.0.saturating_add(1));
        self.step(now, Input::Request { id, request }, io);
    }

    /// Hands a client request with its credentials (a token, or a verified certificate's user)
    /// to the member; its outcome goes to `route`.
    pub fn request_with_credentials<I: Io<Reply = R, Stream = S>>(
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

    /// Like [`Hosting::request_with_credentials`], under an id the host chose (as
    /// [`Hosting::request_as`]).
    pub fn request_as_with_credentials<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        id: RequestId,
        request: Request,
        credentials: engine::auth::Credentials,
        route: Route<R, S>,
        io: &mut I,
    ) {
        let previous = self.routes.insert(id, route);
        assert!(previous.is_none(), "request id {id:?} is already waiting");
        self.request_id_next = self.request_id_next.max(id.0.saturating_add(1));
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

    /// Reports that every disk operation in flight up to and including `op` completed
    /// without a fault, as one step. Why: a group commit completes many operations at once,
    /// and the member's storage takes "`op` done" as "everything before it done" (completions
    /// come in order), so one step releases what the whole group made durable. A fault is
    /// reported with [`Hosting::disk_done`], after the operations before it.
    pub fn disk_done_through<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        op: DiskOpId,
        io: &mut I,
    ) {
        self.disk.complete_through(op);
        self.step(now, Input::DiskDone { op, result: Ok(()) }, io);
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

    /// Wakes the member now whether or not its wake is due (the engine allows an early wake):
    /// for a host that keeps the timer in its own frame (`Io::wake_at`) or resumes a paused
    /// member, whose stale timers fire first.
    pub fn wake<I: Io<Reply = R, Stream = S>>(&mut self, now: Instant, io: &mut I) {
        self.timer.clear();
        self.step(now, Input::Timer, io);
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
        assert!(
            self.kicked,
            "a started member is kicked before any other input"
        );
        if self.halted.is_some() {
            if let Input::Request { id, .. } | Input::RequestAs { id, .. } = input {
                self.route_reply(id, Err(RequestError::Stopping), io);
            }
            return;
        }
        self.step_with(now, io, |member, actions| {
            member.step_into(now, input, actions)
        });
    }

    /// Runs one member step (`step`, given the emptied actions buffer) and carries out what it
    /// asks; the buffer is kept for the next step.
    fn step_with<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        io: &mut I,
        step: impl FnOnce(&mut M, &mut Actions),
    ) {
        let mut actions = std::mem::take(&mut self.actions);
        step(&mut self.member, &mut actions);
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
        if !io.keep_running() {
            actions.clear();
            return;
        }
        for (op_id, op) in actions.disk.drain(..) {
            // Hosts take their own time (the simulator keeps its own queue for the timing);
            // this queue holds the order that completions are checked against.
            let _completes_at = self
                .disk
                .issue(op_id, Instant(0), engine::types::Duration(0));
            io.disk(op_id, op);
        }
        io.before_send(&actions.send);
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
            io.wake_at(wake_at);
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
            Some(Route::Watch(stream)) => match &answer {
                // Registered before this step's responses are routed: the member's `created`
                // response and any catch-up events follow in `notify`.
                Ok(Response::WatchCreated { watch_id, .. }) => {
                    let watch_id = *watch_id;
                    self.watches.insert(watch_id, stream);
                    io.watch_answered(&self.watches[&watch_id], answer);
                }
                _ => io.watch_answered(&stream, answer),
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

impl<R, S> Hosting<R, S, Member> {
    /// Hands several client requests (with their credentials, if any) to the member as one
    /// step (`Member::step_requests_into`); each outcome goes to its route.
    pub fn requests<I: Io<Reply = R, Stream = S>>(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = (Request, Option<engine::auth::Credentials>, Route<R, S>)>,
        io: &mut I,
    ) {
        assert!(
            self.kicked,
            "a started member is kicked before any other input"
        );
        let mut inputs = Vec::new();
        for (request, credentials, route) in batch {
            let id = self.next_request_id();
            self.routes.insert(id, route);
            inputs.push((id, request, credentials));
        }
        if self.halted.is_some() {
            for (id, _, _) in inputs {
                self.route_reply(id, Err(RequestError::Stopping), io);
            }
            return;
        }
        self.step_with(now, io, |member, actions| {
            member.step_requests_into(now, inputs, actions)
        });
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
