//! Hosting one engine member in a real process: one tokio task owns the member (through the
//! host contract's `host::Hosting`, which carries out its actions in the contract's order) and
//! is the only one that steps it; gRPC handlers and the peer transport send it commands; a disk
//! thread performs the member's disk operations strictly in order and reports each completion;
//! a timer wakes the member at the earliest wake it asked for.
//!
//! It decides nothing: ordering, routing and timers are `host`'s, the rest is the engine's.

use engine::api::{DiskFault, DiskImage, DiskOp, DiskOpId, Envelope, HaltReason, PeerMessage};
use engine::kv::{Request, WatchCreateRequest, WatchResponse};
use engine::member::{MemberConfig, MemberStatus, RecoveryError, RecoveryReport};
use engine::types::{Instant, NodeId, WatchId};
use host::{Hosting, Io, Route};
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use crate::disk::DataDir;
use crate::metrics::Metrics;
use crate::watch_stream::WatchSink;

/// Commands queued for the member task at most; a full queue makes handlers wait.
pub const COMMANDS_COUNT_MAX: usize = 4096;

/// The answer to one request.
pub type Answer = host::Answer;

/// What a gRPC handler or the peer transport can ask of the member task.
#[derive(Debug)]
pub enum Command {
    /// A client request; the answer comes back on `reply`.
    Request {
        /// The request.
        request: Request,
        /// Who the client says it is (`crate::auth::Caller`), if it said.
        credentials: Option<engine::auth::Credentials>,
        /// Where the answer goes (dropped if the client went away).
        reply: oneshot::Sender<Answer>,
    },
    /// Open a watch whose responses (created, events, canceled) go to `events`, in order.
    WatchCreate {
        /// The watch.
        request: WatchCreateRequest,
        /// Who the client says it is, if it said.
        credentials: Option<engine::auth::Credentials>,
        /// The stream's buffer.
        events: WatchSink,
    },
    /// A watch stream drained: resume these watches (the engine feeds what they missed).
    WatchResume {
        /// The watches reported slow on that stream.
        watch_ids: Vec<WatchId>,
    },
    /// The member's status, for Maintenance.Status.
    Status {
        /// Where the status goes.
        reply: oneshot::Sender<MemberStatus>,
    },
    /// A read-only look at the member's state, for the maintenance services.
    Inspect {
        /// Whether to include the store's snapshot bytes (Maintenance.Snapshot).
        with_snapshot: bool,
        /// Where the inspection goes.
        reply: oneshot::Sender<Inspection>,
    },
    /// A raft message from a peer.
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
    },
}

/// What the member task reports of the member's state, read-only.
#[derive(Debug)]
pub struct Inspection {
    /// The member's status.
    pub status: MemberStatus,
    /// The hash of the whole retained key-value history (`engine::mvcc::Store::hash`).
    pub kv_hash: u64,
    /// The compaction point.
    pub compacted_revision: engine::types::Revision,
    /// The store as snapshot bytes, when asked for.
    pub snapshot: Option<Vec<u8>>,
}

/// Where the member's outbound peer messages go (the peer transport), if it has peers.
pub type PeerOutbox = mpsc::UnboundedSender<Envelope>;

/// The exit status of a member that halted, one per reason (as etcd's fatal exits differ).
pub fn halt_exit_code(reason: &HaltReason) -> i32 {
    match reason {
        HaltReason::SyncFailed { .. } => 10,
        HaltReason::WriteFailed { .. } => 11,
        HaltReason::Removed => 12,
    }
}

/// The server's side of the host contract: a disk thread, the peer outbox, client channels.
struct ServerIo {
    disk: mpsc::UnboundedSender<(DiskOpId, DiskOp)>,
    peers: Option<PeerOutbox>,
    metrics: Arc<Metrics>,
    /// Watches whose stream filled during the last step, to report to the engine after it.
    slow_watches: Vec<WatchId>,
}

impl Io for ServerIo {
    type Reply = oneshot::Sender<Answer>;
    type Stream = WatchSink;

    fn disk(&mut self, op_id: DiskOpId, op: DiskOp) {
        // The disk thread only stops when the member task does.
        let _ = self.disk.send((op_id, op));
    }

    fn send(&mut self, envelope: Envelope) {
        if let Some(peers) = &self.peers {
            // The transport only stops when the server does; raft retries what is lost.
            let _ = peers.send(envelope);
        }
    }

    fn answer(&mut self, reply: Self::Reply, answer: Answer) {
        if let Err(error) = &answer {
            self.metrics.answered(error);
        }
        let _client_may_be_gone = reply.send(answer);
    }

    fn deliver(&mut self, stream: &Self::Stream, response: WatchResponse) -> bool {
        match stream.push(response) {
            Ok(Some(slow)) => {
                self.slow_watches.push(slow);
                true
            }
            Ok(None) => true,
            Err(_reader_gone) => false,
        }
    }
}

/// How the member task reaches the rest of the cluster.
#[derive(Debug)]
pub struct ClusterLinks {
    /// The peer transport's outbox.
    pub outbox: Option<PeerOutbox>,
    /// The membership view it keeps in step with the applied membership.
    pub membership: crate::membership::SharedView,
}

/// A member ready to be hosted: its configuration and what its disk held.
#[derive(Debug)]
pub struct Prepared {
    /// The configuration, seeded for this incarnation.
    pub config: MemberConfig,
    /// The engine's files (the incarnation record taken out).
    pub image: DiskImage,
}

/// Runs the member task until the command channel closes or `stop` turns true (the server
/// stopped). Returns the halt reason if the member stopped itself, or why it refused to start.
pub async fn run(
    prepared: Prepared,
    data_dir: DataDir,
    links: ClusterLinks,
    metrics: Arc<Metrics>,
    mut commands: mpsc::Receiver<Command>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    started_reply: oneshot::Sender<Result<RecoveryReport, RecoveryError>>,
) -> Option<HaltReason> {
    let (disk_sender, disk_receiver) = mpsc::unbounded_channel::<(DiskOpId, DiskOp)>();
    let (done_sender, mut done_receiver) =
        mpsc::unbounded_channel::<(DiskOpId, Result<(), DiskFault>)>();
    let disk_worker = disk_worker::start(data_dir, disk_receiver, done_sender, metrics.clone());
    let ClusterLinks {
        outbox: peers,
        membership,
    } = links;
    let mut io = ServerIo {
        disk: disk_sender,
        peers,
        metrics: metrics.clone(),
        slow_watches: Vec::new(),
    };
    let started = tokio::time::Instant::now();
    let now = move || Instant(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    // `Hosting::start` carries out the start-up `Input::Timer` kick.
    let mut hosting = match Hosting::start(prepared.config, prepared.image, now(), &mut io) {
        Ok((hosting, report)) => {
            let _ = started_reply.send(Ok(report));
            hosting
        }
        Err(error) => {
            let _ = started_reply.send(Err(error));
            drop(io);
            disk_worker.finish().await;
            return None;
        }
    };
    refresh_membership(&hosting, &membership);
    let mut completions = Vec::new();
    let mut batch = Vec::new();
    while hosting.halted().is_none() {
        let wake = hosting
            .wake_at()
            .map(|at| started + std::time::Duration::from_nanos(at.0));
        let mut first_command = None;
        select! {
            command = commands.recv() => match command {
                Some(command) => first_command = Some(command),
                None => break,
            },
            Some(done) = done_receiver.recv() => completions.push(done),
            () = sleep_until(wake) => {
                let _fired = hosting.fire_timer(now(), &mut io);
            }
            // Stopping: what is on disk is what a restart recovers; nothing else needs saving.
            _ = stop.changed() => break,
        }
        // Everything already waiting is taken now, so the member steps once per kind of input
        // rather than once per input: a group commit's completions are one step, the requests
        // queued meanwhile are one persist batch (`Member::step_requests_into`).
        while let Ok(done) = done_receiver.try_recv() {
            completions.push(done);
        }
        let now = now();
        report_completions(&mut hosting, now, &mut completions, &mut io);
        let mut taken_count = 0;
        let mut next = first_command;
        loop {
            let command = match next.take() {
                Some(command) => command,
                None if taken_count < COMMANDS_PER_STEP_MAX => match commands.try_recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
                None => break,
            };
            taken_count += 1;
            if let Some(other) = join_batch(command, &mut batch) {
                flush_requests(&mut hosting, now, &mut batch, &mut io);
                accept(&mut hosting, other, now, &mut io);
            }
        }
        flush_requests(&mut hosting, now, &mut batch, &mut io);
        report_slow_watches(&mut hosting, now, &mut io);
        metrics.sample(&hosting.member().status(), hosting.watches_count());
        refresh_membership(&hosting, &membership);
    }
    let halted = hosting.halted().cloned();
    drop(hosting);
    drop(io);
    disk_worker.finish().await;
    halted
}

/// Where the member's disk operations are carried out, one at a time in the order issued, each
/// completion reported back: the seam between real files and madsim. Under madsim the same
/// files are written, from a task (madsim forbids threads), with a seeded simulated latency
/// per sync so that completions interleave with the network as a real disk's would.
mod disk_worker {
    use std::sync::Arc;

    use engine::api::{DiskFault, DiskOp, DiskOpId};
    use tokio::sync::mpsc;

    use crate::disk::DataDir;
    use crate::metrics::Metrics;

    /// The running worker; `finish` waits until it stopped (the data dir's lock released).
    pub(super) struct DiskWorker {
        #[cfg(not(madsim))]
        thread: std::thread::JoinHandle<()>,
        #[cfg(madsim)]
        task: tokio::task::JoinHandle<()>,
    }

    /// Operations carried out as one group at most, so one group's latency stays bounded.
    const GROUP_OPS_COUNT_MAX: usize = 1024;

    /// Takes the next group: waits for one operation, then takes every one already queued
    /// behind it (up to [`GROUP_OPS_COUNT_MAX`]). False when the channel closed.
    fn take_group(
        first: Option<(DiskOpId, DiskOp)>,
        ops: &mut mpsc::UnboundedReceiver<(DiskOpId, DiskOp)>,
        group: &mut Vec<(DiskOpId, DiskOp)>,
    ) -> bool {
        let Some(first) = first else {
            return false;
        };
        group.push(first);
        while group.len() < GROUP_OPS_COUNT_MAX {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        true
    }

    /// Performs `group` as one group commit (`DataDir::perform_group`), leaving one result
    /// per operation in `results`; returns how many fsyncs it made.
    fn perform(
        data_dir: &mut DataDir,
        group: &[(DiskOpId, DiskOp)],
        results: &mut Vec<Result<(), DiskFault>>,
    ) -> usize {
        let borrowed: Vec<&DiskOp> = group.iter().map(|(_, op)| op).collect();
        data_dir.perform_group(&borrowed, results)
    }

    /// Reports every completion of `group` in order, emptying it and `results`; `None` when
    /// the member task stopped listening.
    fn report(
        group: &mut Vec<(DiskOpId, DiskOp)>,
        results: &mut Vec<Result<(), DiskFault>>,
        done: &mpsc::UnboundedSender<(DiskOpId, Result<(), DiskFault>)>,
    ) -> Option<()> {
        for ((op_id, _), result) in group.drain(..).zip(results.drain(..)) {
            done.send((op_id, result)).ok()?;
        }
        Some(())
    }

    /// Starts performing the operations of `ops`, reporting each on `done`.
    #[cfg(not(madsim))]
    pub(super) fn start(
        mut data_dir: DataDir,
        mut ops: mpsc::UnboundedReceiver<(DiskOpId, DiskOp)>,
        done: mpsc::UnboundedSender<(DiskOpId, Result<(), DiskFault>)>,
        metrics: Arc<Metrics>,
    ) -> DiskWorker {
        // One thread performs every disk operation, so they complete in the order issued and an
        // fsync never blocks the member task. Whatever queued while it was busy is one group:
        // the proposals that arrive during an fsync share the next one.
        let thread = std::thread::Builder::new()
            .name("detcd-disk".into())
            .spawn(move || {
                let mut group = Vec::new();
                let mut results = Vec::new();
                while take_group(ops.blocking_recv(), &mut ops, &mut group) {
                    let started = std::time::Instant::now();
                    let fsyncs_count = perform(&mut data_dir, &group, &mut results);
                    if fsyncs_count > 0 {
                        // The group's time, spread over its fsyncs (they dominate it).
                        let seconds = started.elapsed().as_secs_f64() / fsyncs_count as f64;
                        for _ in 0..fsyncs_count {
                            metrics.wal_fsync_seconds.observe(seconds);
                        }
                    }
                    if report(&mut group, &mut results, &done).is_none() {
                        break;
                    }
                }
            })
            .expect("the disk thread starts");
        DiskWorker { thread }
    }

    /// Starts performing the operations of `ops`, reporting each on `done`.
    #[cfg(madsim)]
    pub(super) fn start(
        mut data_dir: DataDir,
        mut ops: mpsc::UnboundedReceiver<(DiskOpId, DiskOp)>,
        done: mpsc::UnboundedSender<(DiskOpId, Result<(), DiskFault>)>,
        metrics: Arc<Metrics>,
    ) -> DiskWorker {
        use madsim::rand::Rng as _;
        let task = tokio::spawn(async move {
            let mut group = Vec::new();
            let mut results = Vec::new();
            while take_group(ops.recv().await, &mut ops, &mut group) {
                let fsyncs_count = perform(&mut data_dir, &group, &mut results);
                for _ in 0..fsyncs_count {
                    // A sync's latency, from the run's seed: 0.1 to 2 ms of virtual time.
                    let micros = madsim::rand::thread_rng().gen_range(100..2_000);
                    let latency = std::time::Duration::from_micros(micros);
                    tokio::time::sleep(latency).await;
                    metrics.wal_fsync_seconds.observe(latency.as_secs_f64());
                }
                if report(&mut group, &mut results, &done).is_none() {
                    break;
                }
            }
        });
        DiskWorker { task }
    }

    impl DiskWorker {
        /// Waits until the worker stopped (its operations channel closed).
        pub(super) async fn finish(self) {
            #[cfg(not(madsim))]
            let _ = self.thread.join();
            #[cfg(madsim)]
            let _ = self.task.await;
        }
    }
}

type ServerHosting = Hosting<oneshot::Sender<Answer>, WatchSink>;

/// Tells the engine which watches' streams filled: it holds their events back (never drops
/// them) until they are resumed. Pausing emits nothing, so one pass empties the list.
fn report_slow_watches(hosting: &mut ServerHosting, now: Instant, io: &mut ServerIo) {
    while let Some(watch_id) = io.slow_watches.pop() {
        io.metrics.watch_slow.inc();
        hosting.watch_backpressure(now, watch_id, true, io);
    }
}

/// Commands taken in one turn of the member task at most, so a flood of requests cannot
/// delay the timer and the disk completions for long.
const COMMANDS_PER_STEP_MAX: usize = 256;

/// A request that opens no new kind of work (`Request`, `WatchCreate`) joins `batch`; any
/// other command is handed back, to be accepted after the batch.
fn join_batch(
    command: Command,
    batch: &mut Vec<(Request, Option<engine::auth::Credentials>, ServerRoute)>,
) -> Option<Command> {
    match command {
        Command::Request {
            request,
            credentials,
            reply,
        } => batch.push((request, credentials, Route::Reply(reply))),
        Command::WatchCreate {
            request,
            credentials,
            events,
        } => batch.push((
            Request::WatchCreate(request),
            credentials,
            Route::Watch(events),
        )),
        other => return Some(other),
    }
    None
}

type ServerRoute = Route<oneshot::Sender<Answer>, WatchSink>;

/// Steps the member once with every request of `batch`, emptying it.
fn flush_requests(
    hosting: &mut ServerHosting,
    now: Instant,
    batch: &mut Vec<(Request, Option<engine::auth::Credentials>, ServerRoute)>,
    io: &mut ServerIo,
) {
    if !batch.is_empty() {
        hosting.requests(now, batch.drain(..), io);
    }
}

/// Reports disk completions in order, emptying `completions`: each run of successes as one
/// step (`Hosting::disk_done_through`), a failure on its own.
fn report_completions(
    hosting: &mut ServerHosting,
    now: Instant,
    completions: &mut Vec<(DiskOpId, Result<(), DiskFault>)>,
    io: &mut ServerIo,
) {
    let mut done_through = None;
    for (op, result) in completions.drain(..) {
        match result {
            Ok(()) => done_through = Some(op),
            Err(fault) => {
                if let Some(through) = done_through.take() {
                    hosting.disk_done_through(now, through, io);
                }
                hosting.disk_done(now, op, Err(fault), io);
            }
        }
    }
    if let Some(through) = done_through {
        hosting.disk_done_through(now, through, io);
    }
}

fn accept(hosting: &mut ServerHosting, command: Command, now: Instant, io: &mut ServerIo) {
    match command {
        Command::Request {
            request,
            credentials,
            reply,
        } => request_as(hosting, now, request, credentials, Route::Reply(reply), io),
        Command::WatchCreate {
            request,
            credentials,
            events,
        } => {
            let request = Request::WatchCreate(request);
            request_as(hosting, now, request, credentials, Route::Watch(events), io);
        }
        Command::Status { reply } => {
            let _client_may_be_gone = reply.send(hosting.member().status());
        }
        Command::Inspect {
            with_snapshot,
            reply,
        } => {
            let store = hosting.member().store();
            let inspection = Inspection {
                status: hosting.member().status(),
                kv_hash: store.hash(),
                compacted_revision: store.compacted_revision(),
                snapshot: with_snapshot.then(|| store.encode_snapshot()),
            };
            let _client_may_be_gone = reply.send(inspection);
        }
        Command::Peer { from, message } => hosting.receive(now, from, message, io),
        Command::WatchResume { watch_ids } => {
            for watch_id in watch_ids {
                hosting.watch_backpressure(now, watch_id, false, io);
            }
        }
    }
}

/// Hands a client request to the member with its credentials, if it came with any.
fn request_as(
    hosting: &mut ServerHosting,
    now: Instant,
    request: Request,
    credentials: Option<engine::auth::Credentials>,
    route: Route<oneshot::Sender<Answer>, WatchSink>,
    io: &mut ServerIo,
) {
    match credentials {
        Some(credentials) => hosting.request_with_credentials(now, request, credentials, route, io),
        None => hosting.request(now, request, route, io),
    }
}

/// Hands the applied membership to the view the peer transport and MemberList read.
fn refresh_membership(hosting: &ServerHosting, membership: &crate::membership::SharedView) {
    let member = hosting.member();
    let changed = membership
        .lock()
        .expect("the membership view is never poisoned")
        .refresh(member.applied_conf(), member.member_contexts());
    if changed {
        let conf = member.applied_conf();
        tracing::info!(voters = ?conf.voters, learners = ?conf.learners, "membership applied");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
