//! Lock and election traffic (opt-in per scenario, `[workload.locks]`): lock clients that drive
//! etcd's lock and election recipes (`host::recipe::lock` and `host::recipe::election`, the very
//! machines `detcd serve` runs for the Lock and Election services) through the simulated
//! cluster, hold the lock or the leadership for a while, write under it with a fence, and
//! release it; the mutual-exclusion checker (`checkers::locks`) judges the history they leave.
//!
//! One lock client runs cycles: it grants a lease of `ttl_seconds` (as clientv3's session does)
//! and keeps it alive every third of its TTL, picks one of the locks and elections, and
//! acquires it with that lease (`Lock`, or `Campaign`). It then holds for a few slices of
//! `hold_ms_min..=hold_ms_max`, each ended by a fenced write: for a lock a txn comparing the
//! owner key's create revision with the token and putting `/fenced/<lock>`, for an election a
//! `Proclaim` (the same compare on the leader key, putting a new value on it). It then
//! releases (`Unlock`, or `Resign`) and revokes the lease. With `pause_ppm`, a holder pauses
//! past its lease's TTL inside its hold (no keep-alive, no request: a stopped process), so the
//! lease expires, the next waiter acquires, and the paused holder wakes believing it still
//! holds: its fenced write must be refused (Jepsen's etcd 3.4.3 finding). `kind` holds what
//! differs between locks and elections; the rest of the cycle is one.
//!
//! Every request a recipe asks for is a client request recorded in the history as a normal
//! operation, under the lock client's history client number; the keep-alives go under a second
//! number, since a client has one operation outstanding at most. The acquisition, the fenced
//! writes and the release carry a `lock` note (docs/history-format.md). A recipe's watch is the
//! client's watch stream, recorded like a watcher's (`watch`): it is opened without the recipe's
//! `no_put` filter (the format has no filters) and the driver drops the put events before the
//! recipe sees them, which is what the filter does in the member. Nested ranges the format
//! cannot express (sorted with a limit, or filtered by create revision) are recorded with their
//! answers' kvs and count left out, so they constrain nothing (`recorded`).
//!
//! Without `[workload.locks]` nothing here runs, draws or records, so a scenario without it
//! keeps its trace hashes. Each lock client draws from a stream of its own
//! (`Stream::LockClient`).

mod kind;
mod recorded;
mod settings;
mod watch;

pub use kind::{election_name, fenced_key, lock_name};
pub(crate) use recorded::{blind_checked, noted_line};
pub use settings::LockTraffic;

use engine::kv::{Request, RequestError, Response};
use engine::types::{Duration, Instant, LeaseId};
use host::recipe::lock::Held;
use host::recipe::Next;

use crate::history::WatchRecord;
use crate::rng::{SimRng, Stream};
use crate::world::{Event, World};
use kind::{Acquiring, Kind, Releasing};

/// Attempts of one request at most, as the other clients make.
const REQUEST_ATTEMPTS_MAX: u32 = 3;
/// One-way client link latency range (ns), as the other clients'.
const LATENCY_NS_MIN: u64 = 100_000;
const LATENCY_NS_MAX: u64 = 500_000;
/// How much longer than the lease's TTL a pause lasts at most (ms).
const PAUSE_BEYOND_TTL_MS_MAX: u64 = 1_500;

#[derive(Debug)]
enum Phase {
    Idle,
    Granting,
    Acquiring(Box<Acquiring>),
    Holding,
    Fencing,
    Releasing(Releasing),
    Abandoning,
    Revoking,
}

#[derive(Debug)]
struct Outstanding {
    op_id: u64,
    call: Instant,
    request: Request,
    attempt: u32,
    note: Option<checkers::history::LockNote>,
}

#[derive(Debug)]
struct OpenWatch {
    op_id: u64,
    node: usize,
    watch_id: Option<engine::types::WatchId>,
    last_arrival: Instant,
}

#[derive(Debug)]
struct Session {
    lease: LeaseId,
    outstanding: Option<Outstanding>,
    expired: bool,
}

/// One lock client.
#[derive(Debug)]
pub(crate) struct LockClient {
    rng: SimRng,
    endpoint: usize,
    cycle: u64,
    phase: Phase,
    /// What this cycle contends for, and its name.
    kind: Kind,
    name: Vec<u8>,
    lease: LeaseId,
    held: Option<Held>,
    fenced_left: u32,
    paused_until: Instant,
    outstanding: Option<Outstanding>,
    watch: Option<OpenWatch>,
    records: Vec<WatchRecord>,
    session: Option<Session>,
    sequence: u64,
}

/// The lock side of a run.
#[derive(Debug)]
pub(crate) struct LockClients {
    config: LockTraffic,
    /// History client number of lock client 0's recipe; its keep-alives use the next one.
    client_base: u32,
    clients: Vec<LockClient>,
}

impl LockClients {
    /// The lock clients of a run, when the scenario asks for lock traffic.
    pub(crate) fn new(
        workload: &crate::workload::WorkloadConfig,
        seed: u64,
        member_count: usize,
    ) -> Option<LockClients> {
        let config = workload.locks.clone()?;
        let clients = (0..config.client_count)
            .map(|index| {
                let mut rng = SimRng::for_stream(seed, Stream::LockClient(index));
                let endpoint = rng.below(member_count as u64) as usize;
                LockClient {
                    rng,
                    endpoint,
                    cycle: 0,
                    phase: Phase::Idle,
                    kind: Kind::Lock,
                    name: Vec::new(),
                    lease: LeaseId(0),
                    held: None,
                    fenced_left: 0,
                    paused_until: Instant(0),
                    outstanding: None,
                    watch: None,
                    records: Vec::new(),
                    session: None,
                    sequence: 0,
                }
            })
            .collect();
        Some(LockClients {
            config,
            client_base: workload.client_count + workload.watcher_count,
            clients,
        })
    }

    /// How many lock clients.
    pub(crate) fn len(&self) -> usize {
        self.clients.len()
    }

    fn history_client(&self, client: usize, session: bool) -> usize {
        self.client_base as usize + 2 * client + usize::from(session)
    }

    /// The lock clients' recorded watch streams.
    pub(crate) fn records(&self) -> impl Iterator<Item = &WatchRecord> + '_ {
        self.clients.iter().flat_map(|client| client.records.iter())
    }
}

fn latency(rng: &mut SimRng) -> Duration {
    Duration(rng.range_inclusive(LATENCY_NS_MIN, LATENCY_NS_MAX))
}

/// Whether an answer leaves a request worth sending again elsewhere (it did not take effect,
/// or its outcome is unknown and sending it again is harmless: every request of the recipes
/// and of this driver is idempotent in effect).
fn retryable(result: &Option<Result<Response, RequestError>>) -> bool {
    matches!(
        result,
        None | Some(Err(RequestError::NotLeader { .. }
            | RequestError::Stopping
            | RequestError::LeaderChanged
            | RequestError::TooManyRequests))
    )
}

impl<M: crate::process::HostedMember> World<M> {
    fn locks(&mut self) -> &mut LockClients {
        self.locks.as_mut().expect("lock traffic runs")
    }

    fn lock_client(&mut self, client: usize) -> &mut LockClient {
        &mut self.locks().clients[client]
    }

    /// Schedules every lock client's first cycle (at the start of the run).
    pub(crate) fn start_lock_clients(&mut self, now: Instant) {
        let count = self.locks.as_ref().map_or(0, LockClients::len);
        for client in 0..count {
            self.schedule_lock_cycle(now, client);
        }
    }

    fn schedule_lock_cycle(&mut self, now: Instant, client: usize) {
        let (min, max) = {
            let config = &self.locks().config;
            (config.think_ms_min, config.think_ms_max)
        };
        // A keep-alive still in flight is recorded with unknown outcome: the cycle forgets it.
        let in_flight = self
            .lock_client(client)
            .session
            .take()
            .and_then(|session| session.outstanding);
        if let Some(outstanding) = in_flight {
            self.routes.remove(&outstanding.op_id);
            self.lock_record(now, client, true, outstanding, None, None);
        }
        let state = self.lock_client(client);
        state.cycle += 1;
        state.phase = Phase::Idle;
        state.held = None;
        let cycle = state.cycle;
        let think = Duration::from_millis(state.rng.range_inclusive(min, max));
        self.queue
            .schedule(now + think, Event::LockWake { client, cycle });
    }

    /// A lock client's wake: a new cycle when idle, the next fenced write when holding.
    pub(crate) fn lock_wake(&mut self, now: Instant, client: usize, cycle: u64) {
        if self.lock_client(client).cycle != cycle {
            return;
        }
        let paused = now < self.lock_client(client).paused_until;
        match self.lock_client(client).phase {
            Phase::Idle => {
                let (lock_count, election_count, ttl) = {
                    let config = &self.locks().config;
                    (config.lock_count, config.election_count, config.ttl_seconds)
                };
                let state = self.lock_client(client);
                // Without elections this is the very draw lock traffic always made, so those
                // scenarios keep their trace hashes.
                let names = u64::from(lock_count) + u64::from(election_count);
                let index = state.rng.below(names) as u32;
                (state.kind, state.name) = kind::pick(index, lock_count);
                state.phase = Phase::Granting;
                let grant = Request::LeaseGrant(engine::kv::LeaseGrantRequest {
                    ttl_seconds: ttl,
                    id: LeaseId(0),
                });
                self.lock_send(now, client, grant, None, 1);
            }
            Phase::Holding if paused => {}
            Phase::Holding => {
                let state = self.lock_client(client);
                if state.fenced_left == 0 {
                    let held = state.held.clone().expect("a holder holds");
                    let (releasing, request) = Releasing::new(state.kind, &state.name, &held);
                    state.phase = Phase::Releasing(releasing);
                    let note = note_of(&state.name, &held, checkers::history::LockStep::Released);
                    self.lock_send(now, client, request, Some(note), 1);
                    return;
                }
                state.fenced_left -= 1;
                state.phase = Phase::Fencing;
                state.sequence += 1;
                let held = state.held.clone().expect("a holder holds");
                let value = format!("{}:{}:{}", held.revision.0, client, state.sequence);
                let request = kind::fenced_write(state.kind, &state.name, &held, value.into());
                let note = note_of(&state.name, &held, checkers::history::LockStep::Fenced);
                self.lock_send(now, client, request, Some(note), 1);
            }
            _ => {}
        }
    }

    fn lock_send(
        &mut self,
        now: Instant,
        client: usize,
        request: Request,
        note: Option<checkers::history::LockNote>,
        attempt: u32,
    ) {
        let op_id = self.take_request_id();
        let state = self.lock_client(client);
        let node = state.endpoint;
        let arrival = now + latency(&mut state.rng);
        state.outstanding = Some(Outstanding {
            op_id,
            call: now,
            request: request.clone(),
            attempt,
            note,
        });
        self.routes
            .insert(op_id, crate::clients::RequestRoute::Lock(client));
        self.queue.schedule(
            arrival,
            Event::RequestArrives {
                op_id,
                node,
                request,
            },
        );
        let timeout = Duration(self.scenario.workload.request_timeout_ns);
        self.queue
            .schedule(now + timeout, Event::LockTimeout { client, op_id });
    }

    /// A member answered a lock client's request: the answer travels back over its link.
    pub(crate) fn lock_route_reply(
        &mut self,
        now: Instant,
        client: usize,
        op_id: u64,
        result: Result<Response, RequestError>,
    ) {
        let arrival = now + latency(&mut self.lock_client(client).rng);
        self.queue.schedule(
            arrival,
            Event::LockReply {
                client,
                op_id,
                result,
            },
        );
    }

    /// An answer reached lock client `client`.
    pub(crate) fn lock_reply(
        &mut self,
        now: Instant,
        client: usize,
        op_id: u64,
        result: Result<Response, RequestError>,
    ) {
        self.lock_settle(now, client, op_id, Some(result));
    }

    /// A lock client's request went unanswered.
    pub(crate) fn lock_timeout(&mut self, now: Instant, client: usize, op_id: u64) {
        self.routes.remove(&op_id);
        self.lock_settle(now, client, op_id, None);
    }

    fn lock_settle(
        &mut self,
        now: Instant,
        client: usize,
        op_id: u64,
        result: Option<Result<Response, RequestError>>,
    ) {
        let session_op = self
            .lock_client(client)
            .session
            .as_ref()
            .and_then(|session| session.outstanding.as_ref())
            .is_some_and(|outstanding| outstanding.op_id == op_id);
        if session_op {
            return self.session_settle(now, client, result);
        }
        let state = self.lock_client(client);
        let Some(outstanding) = state
            .outstanding
            .take_if(|outstanding| outstanding.op_id == op_id)
        else {
            return;
        };
        if retryable(&result) && outstanding.attempt < REQUEST_ATTEMPTS_MAX {
            let hint = match &result {
                Some(Err(RequestError::NotLeader {
                    leader_hint: Some(leader),
                })) => self.node_index(*leader),
                _ => None,
            };
            let member_count = self.processes.len();
            let state = self.lock_client(client);
            match hint.filter(|node| *node != state.endpoint) {
                Some(node) => state.endpoint = node,
                None => move_endpoint(state, member_count),
            }
            let (request, attempt) = (outstanding.request.clone(), outstanding.attempt);
            let note = outstanding.note.clone();
            self.lock_record(now, client, false, outstanding, result, None);
            return self.lock_send(now, client, request, note, attempt + 1);
        }
        let answer = result.clone().unwrap_or(Err(RequestError::LeaderChanged));
        let phase = std::mem::replace(&mut self.lock_client(client).phase, Phase::Idle);
        match phase {
            Phase::Granting => {
                self.lock_record(now, client, false, outstanding, result, None);
                match answer {
                    Ok(Response::LeaseGrant { id, .. }) => self.lock_granted(now, client, id),
                    _ => self.schedule_lock_cycle(now, client),
                }
            }
            Phase::Acquiring(mut acquiring) => {
                let next = acquiring.on_answer(answer);
                let note = match &next {
                    Next::Done(Ok(held)) => Some(note_of(
                        &self.lock_client(client).name,
                        held,
                        checkers::history::LockStep::Acquired,
                    )),
                    _ => None,
                };
                self.lock_record(now, client, false, outstanding, result, note);
                self.lock_client(client).phase = Phase::Acquiring(acquiring);
                self.lock_drive(now, client, next);
            }
            Phase::Fencing => {
                self.lock_record(now, client, false, outstanding, result, None);
                self.lock_client(client).phase = Phase::Holding;
                self.schedule_hold_slice(now, client);
            }
            Phase::Releasing(mut releasing) => {
                releasing.on_answer(answer);
                self.lock_record(now, client, false, outstanding, result, None);
                self.lock_revoke(now, client);
            }
            Phase::Abandoning => {
                self.lock_record(now, client, false, outstanding, result, None);
                self.lock_revoke(now, client);
            }
            Phase::Revoking | Phase::Idle | Phase::Holding => {
                self.lock_record(now, client, false, outstanding, result, None);
                self.schedule_lock_cycle(now, client);
            }
        }
    }

    /// The cycle's lease is granted: keep it alive and start locking.
    fn lock_granted(&mut self, now: Instant, client: usize, lease: LeaseId) {
        let (ttl, wait_ms) = {
            let config = &self.locks().config;
            (config.ttl_seconds, config.wait_ms_max)
        };
        let state = self.lock_client(client);
        state.lease = lease;
        state.session = Some(Session {
            lease,
            outstanding: None,
            expired: false,
        });
        let cycle = state.cycle;
        // The campaign's value names the client and cycle, so a leader's value says who leads.
        let value = format!("c{client}:{cycle}").into_bytes();
        let mut acquiring = Box::new(Acquiring::new(state.kind, &state.name, lease, value));
        let next = acquiring.start();
        state.phase = Phase::Acquiring(acquiring);
        self.queue.schedule(
            now + keepalive_interval(ttl),
            Event::LockKeepAlive { client, cycle },
        );
        self.queue.schedule(
            now + Duration::from_millis(wait_ms),
            Event::LockWaitDeadline { client, cycle },
        );
        self.lock_drive(now, client, next);
    }

    /// Carries out the lock recipe's next step.
    fn lock_drive(&mut self, now: Instant, client: usize, next: Next<Held>) {
        match next {
            Next::Send(request) => {
                self.lock_close_watch(now, client);
                self.lock_send(now, client, request, None, 1);
            }
            Next::Watch(create) => {
                self.lock_close_watch(now, client);
                self.lock_open_watch(now, client, create);
            }
            Next::Wait | Next::Emit(_) => {}
            Next::Done(Ok(held)) => {
                self.lock_close_watch(now, client);
                let (writes_max, ttl, pause_ppm) = {
                    let config = &self.locks().config;
                    (
                        config.fenced_writes_max,
                        config.ttl_seconds,
                        config.pause_ppm,
                    )
                };
                let state = self.lock_client(client);
                state.held = Some(held);
                state.phase = Phase::Holding;
                state.fenced_left = 1 + state.rng.below(u64::from(writes_max)) as u32;
                if state.rng.chance_ppm(pause_ppm) {
                    // A stopped process: past the lease's TTL, no keep-alive, no request.
                    let beyond = state.rng.range_inclusive(1, PAUSE_BEYOND_TTL_MS_MAX);
                    let pause = Duration::from_millis(ttl as u64 * 1_000 + beyond);
                    state.paused_until = now + pause;
                    let cycle = state.cycle;
                    self.trace.event(
                        now,
                        format_args!("lock client {client} pauses while holding"),
                    );
                    self.queue
                        .schedule(now + pause, Event::LockWake { client, cycle });
                } else {
                    self.schedule_hold_slice(now, client);
                }
            }
            Next::Done(Err(_)) => {
                self.lock_close_watch(now, client);
                let state = self.lock_client(client);
                let abandon = match &mut state.phase {
                    Phase::Acquiring(acquiring) => acquiring.abandon(),
                    _ => None,
                };
                match abandon {
                    Some(request) => {
                        state.phase = Phase::Abandoning;
                        self.lock_send(now, client, request, None, 1);
                    }
                    None => self.lock_revoke(now, client),
                }
            }
        }
    }

    fn schedule_hold_slice(&mut self, now: Instant, client: usize) {
        let (min, max) = {
            let config = &self.locks().config;
            (config.hold_ms_min, config.hold_ms_max)
        };
        let state = self.lock_client(client);
        let slice = Duration::from_millis(state.rng.range_inclusive(min, max));
        let cycle = state.cycle;
        self.queue
            .schedule(now + slice, Event::LockWake { client, cycle });
    }

    fn lock_revoke(&mut self, now: Instant, client: usize) {
        let state = self.lock_client(client);
        state.phase = Phase::Revoking;
        let id = state.lease;
        self.lock_send(now, client, Request::LeaseRevoke { id }, None, 1);
    }

    /// A waiter that waited too long gives up (its key deleted, its lease revoked).
    pub(crate) fn lock_wait_deadline(&mut self, now: Instant, client: usize, cycle: u64) {
        let state = self.lock_client(client);
        if state.cycle != cycle || !matches!(state.phase, Phase::Acquiring(_)) {
            return;
        }
        if state.outstanding.is_some() {
            let retry = Duration(self.scenario.workload.request_timeout_ns);
            self.queue
                .schedule(now + retry, Event::LockWaitDeadline { client, cycle });
            return;
        }
        self.lock_drive(
            now,
            client,
            Next::Done(Err(host::recipe::RecipeError::SessionExpired)),
        );
    }

    /// The session's keep-alive: every third of the TTL, unless paused or expired.
    pub(crate) fn lock_keepalive(&mut self, now: Instant, client: usize, cycle: u64) {
        let ttl = self.locks().config.ttl_seconds;
        let state = self.lock_client(client);
        if state.cycle != cycle {
            return;
        }
        let paused_until = state.paused_until;
        let Some(session) = state.session.as_mut() else {
            return;
        };
        if session.expired {
            return;
        }
        let next = now.max(paused_until) + keepalive_interval(ttl);
        if now >= paused_until && session.outstanding.is_none() {
            let id = session.lease;
            let op_id = self.take_request_id();
            let state = self.lock_client(client);
            let node = state.endpoint;
            let arrival = now + latency(&mut state.rng);
            let request = Request::LeaseKeepAlive { id };
            if let Some(session) = state.session.as_mut() {
                session.outstanding = Some(Outstanding {
                    op_id,
                    call: now,
                    request: request.clone(),
                    attempt: 1,
                    note: None,
                });
            }
            self.routes
                .insert(op_id, crate::clients::RequestRoute::Lock(client));
            self.queue.schedule(
                arrival,
                Event::RequestArrives {
                    op_id,
                    node,
                    request,
                },
            );
            let timeout = Duration(self.scenario.workload.request_timeout_ns);
            self.queue
                .schedule(now + timeout, Event::LockTimeout { client, op_id });
        }
        self.queue
            .schedule(next, Event::LockKeepAlive { client, cycle });
    }

    fn session_settle(
        &mut self,
        now: Instant,
        client: usize,
        result: Option<Result<Response, RequestError>>,
    ) {
        let state = self.lock_client(client);
        let Some(session) = state.session.as_mut() else {
            return;
        };
        let Some(outstanding) = session.outstanding.take() else {
            return;
        };
        if matches!(result, Some(Err(RequestError::LeaseNotFound { .. }))) {
            session.expired = true;
        }
        if matches!(result, Some(Err(RequestError::NotLeader { .. })) | None) {
            let member_count = self.processes.len();
            move_endpoint(self.lock_client(client), member_count);
        }
        self.lock_record(now, client, true, outstanding, result, None);
    }

    fn lock_record(
        &mut self,
        now: Instant,
        client: usize,
        session: bool,
        outstanding: Outstanding,
        result: Option<Result<Response, RequestError>>,
        acquired: Option<checkers::history::LockNote>,
    ) {
        let history_client = self.locks().history_client(client, session);
        let note = acquired.or(outstanding.note);
        match &result {
            Some(Ok(response)) => {
                self.counts.ops_ok += 1;
                self.check_response(now, outstanding.call, &outstanding.request, response);
            }
            Some(Err(_)) => self.counts.ops_error += 1,
            None => self.counts.ops_unknown += 1,
        }
        self.record_op(
            history_client,
            outstanding.op_id,
            outstanding.call,
            outstanding.request,
            result.map(|result| (now, result)),
            None,
            note,
        );
    }

    /// Records the lock clients' requests still outstanding (the run ended).
    pub(crate) fn finish_lock_operations(&mut self) {
        let count = self.locks.as_ref().map_or(0, LockClients::len);
        let now = self.queue.now();
        for client in 0..count {
            if let Some(outstanding) = self.lock_client(client).outstanding.take() {
                self.lock_record(now, client, false, outstanding, None, None);
            }
            let session = self
                .lock_client(client)
                .session
                .as_mut()
                .and_then(|session| session.outstanding.take());
            if let Some(outstanding) = session {
                self.lock_record(now, client, true, outstanding, None, None);
            }
        }
    }
}

fn keepalive_interval(ttl_seconds: i64) -> Duration {
    Duration::from_millis((ttl_seconds.max(1) as u64 * 1_000 / 3).max(1))
}

fn move_endpoint(state: &mut LockClient, member_count: usize) {
    if member_count < 2 {
        return;
    }
    let other = state.rng.below(member_count as u64 - 1) as usize;
    state.endpoint = if other >= state.endpoint {
        other + 1
    } else {
        other
    };
}

fn note_of(
    name: &[u8],
    held: &Held,
    step: checkers::history::LockStep,
) -> checkers::history::LockNote {
    checkers::history::LockNote {
        name: name.to_vec(),
        step,
        key: held.key.clone(),
        token: held.revision.0,
    }
}
