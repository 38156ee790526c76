//! Hosting one engine member in a real process: one tokio task owns the `Member` and is the only
//! caller of `Member::step`; gRPC handlers send it commands; a disk thread performs the member's
//! disk operations strictly in order and reports each completion; a timer wakes the member at
//! `Actions::wake_at`. The task carries out each step's actions in the order the simulator does:
//! disk operations queued, replies and watch events routed, then a halt takes effect.
//!
//! NB: the simulator hosts members by the same rules in its own code (`sim::world`); moving
//! the shared rules into one `host` crate that both use is the next step.

use std::collections::BTreeMap;

use engine::api::{Actions, DiskFault, DiskOp, DiskOpId, HaltReason, Input};
use engine::kv::{Request, RequestError, Response, WatchCreateRequest, WatchResponse};
use engine::member::{Member, MemberStatus};
use engine::types::{Instant, RequestId, WatchId};
use tokio::sync::{mpsc, oneshot};

use crate::disk::DataDir;

/// Commands queued for the member task at most; a full queue makes handlers wait.
pub const COMMANDS_COUNT_MAX: usize = 4096;

/// The answer to one request.
pub type Answer = Result<Response, RequestError>;

/// What a gRPC handler can ask of the member task.
#[derive(Debug)]
pub enum Command {
    /// A client request; the answer comes back on `reply`.
    Request {
        /// The request.
        request: Request,
        /// Where the answer goes (dropped if the client went away).
        reply: oneshot::Sender<Answer>,
    },
    /// Open a watch whose responses (created, events, canceled) go to `events`, in order.
    WatchCreate {
        /// The watch.
        request: WatchCreateRequest,
        /// The stream's channel.
        events: mpsc::UnboundedSender<WatchResponse>,
    },
    /// The member's status, for Maintenance.Status.
    Status {
        /// Where the status goes.
        reply: oneshot::Sender<MemberStatus>,
    },
}

/// Where the answer of a request in flight goes.
enum Route {
    Reply(oneshot::Sender<Answer>),
    Watch(mpsc::UnboundedSender<WatchResponse>),
}

/// The member task's state.
struct Host {
    member: Member,
    started: tokio::time::Instant,
    routes: BTreeMap<RequestId, Route>,
    watches: BTreeMap<WatchId, mpsc::UnboundedSender<WatchResponse>>,
    request_id_next: u64,
    disk: std::sync::mpsc::Sender<(DiskOpId, DiskOp)>,
    wake_at: Option<Instant>,
    actions: Actions,
    /// Watches whose client stream went away: cancelled in the member after the step.
    orphaned_watches: Vec<WatchId>,
}

/// The exit status of a member that halted, one per reason (as etcd's fatal exits differ).
pub fn halt_exit_code(reason: &HaltReason) -> i32 {
    match reason {
        HaltReason::SyncFailed { .. } => 10,
        HaltReason::WriteFailed { .. } => 11,
        HaltReason::Removed => 12,
    }
}

/// Runs the member task until the command channel closes or `stop` turns true (the server
/// stopped). Returns the halt reason if the member stopped itself.
pub async fn run(
    member: Member,
    mut data_dir: DataDir,
    mut commands: mpsc::Receiver<Command>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<HaltReason> {
    let (disk_sender, disk_receiver) = std::sync::mpsc::channel::<(DiskOpId, DiskOp)>();
    let (done_sender, mut done_receiver) =
        mpsc::unbounded_channel::<(DiskOpId, Result<(), DiskFault>)>();
    // One thread performs every disk operation, so they complete in the order issued.
    let disk_thread = std::thread::Builder::new()
        .name("detcd-disk".into())
        .spawn(move || {
            while let Ok((op_id, op)) = disk_receiver.recv() {
                let result = data_dir.perform(&op);
                if done_sender.send((op_id, result)).is_err() {
                    break;
                }
            }
        })
        .expect("the disk thread starts");
    let mut host = Host {
        member,
        started: tokio::time::Instant::now(),
        routes: BTreeMap::new(),
        watches: BTreeMap::new(),
        request_id_next: 1,
        disk: disk_sender,
        wake_at: None,
        actions: Actions::default(),
        orphaned_watches: Vec::new(),
    };
    // A member that just started must be kicked, or repairs it queued at recovery never leave.
    let mut halted = host.step(Input::Timer);
    while halted.is_none() {
        let wake = host
            .wake_at
            .map(|at| host.started + std::time::Duration::from_nanos(at.0));
        let input = tokio::select! {
            command = commands.recv() => match command {
                Some(command) => host.accept(command),
                None => break,
            },
            Some((op, result)) = done_receiver.recv() => Some(Input::DiskDone { op, result }),
            () = sleep_until(wake) => Some(Input::Timer),
            // Stopping: what is on disk is what a restart recovers; nothing else needs saving.
            _ = stop.changed() => break,
        };
        if let Some(input) = input {
            halted = host.step(input);
        }
    }
    drop(host);
    let _ = disk_thread.join();
    halted
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Host {
    fn now(&self) -> Instant {
        Instant(u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Turns a command into the member's input (or answers it here, for status).
    fn accept(&mut self, command: Command) -> Option<Input> {
        let id = RequestId(self.request_id_next);
        self.request_id_next += 1;
        match command {
            Command::Request { request, reply } => {
                self.routes.insert(id, Route::Reply(reply));
                Some(Input::Request { id, request })
            }
            Command::WatchCreate { request, events } => {
                self.routes.insert(id, Route::Watch(events));
                Some(Input::Request {
                    id,
                    request: Request::WatchCreate(request),
                })
            }
            Command::Status { reply } => {
                let _client_may_be_gone = reply.send(self.member.status());
                None
            }
        }
    }

    /// Steps the member and carries out its actions; returns the halt reason if it halted.
    fn step(&mut self, input: Input) -> Option<HaltReason> {
        let now = self.now();
        let mut actions = std::mem::take(&mut self.actions);
        self.member.step_into(now, input, &mut actions);
        let halted = self.carry_out(&mut actions);
        actions.clear();
        self.actions = actions;
        if halted.is_some() {
            return halted;
        }
        // A watch nobody reads any more is cancelled, so the member stops feeding it.
        while let Some(watch_id) = self.orphaned_watches.pop() {
            let id = RequestId(self.request_id_next);
            self.request_id_next += 1;
            let halted = self.step(Input::Request {
                id,
                request: Request::WatchCancel { watch_id },
            });
            if halted.is_some() {
                return halted;
            }
        }
        None
    }

    fn carry_out(&mut self, actions: &mut Actions) -> Option<HaltReason> {
        for (op_id, op) in actions.disk.drain(..) {
            // The disk thread only stops when this task does.
            let _ = self.disk.send((op_id, op));
        }
        // One member has no peers to send to; a multi-member cluster needs the peer transport.
        actions.send.clear();
        for (request_id, answer) in actions.reply.drain(..) {
            self.route_reply(request_id, answer);
        }
        for response in actions.notify.drain(..) {
            self.route_notify(response);
        }
        if let Some(reason) = actions.halt.take() {
            return Some(reason);
        }
        if let Some(wake_at) = actions.wake_at.take() {
            self.wake_at = Some(wake_at);
        }
        None
    }

    fn route_reply(&mut self, request_id: RequestId, answer: Answer) {
        match self.routes.remove(&request_id) {
            // The member itself puts the canceled response in `notify`, after this reply.
            Some(Route::Reply(reply)) => {
                let _client_may_be_gone = reply.send(answer);
            }
            Some(Route::Watch(events)) => match answer {
                Ok(Response::WatchCreated { watch_id, .. }) => {
                    // Registered before this step's notifications are routed: the member's
                    // `created` response and any catch-up events follow in `notify`.
                    self.watches.insert(watch_id, events);
                }
                Ok(other) => {
                    let _ = events.send(WatchResponse {
                        created: true,
                        canceled: true,
                        cancel_reason: format!("unexpected answer to a watch: {other:?}"),
                        ..WatchResponse::default()
                    });
                }
                Err(error) => {
                    let compact_revision = match &error {
                        RequestError::Compacted { compacted, .. } => *compacted,
                        _ => engine::types::Revision(0),
                    };
                    let _ = events.send(WatchResponse {
                        created: true,
                        canceled: true,
                        compact_revision,
                        cancel_reason: error.etcd_text().to_string(),
                        ..WatchResponse::default()
                    });
                }
            },
            None => {}
        }
    }

    fn route_notify(&mut self, response: WatchResponse) {
        let watch_id = response.watch_id;
        let canceled = response.canceled;
        if let Some(events) = self.watches.get(&watch_id) {
            if events.send(response).is_err() {
                self.watches.remove(&watch_id);
                self.orphaned_watches.push(watch_id);
            } else if canceled {
                self.watches.remove(&watch_id);
            }
        }
    }
}
