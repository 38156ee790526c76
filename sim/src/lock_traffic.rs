//! Lock traffic (opt-in per scenario, `[workload.locks]`): lock clients that drive etcd's lock
//! recipe (`host::recipe::lock`, the very machines `detcd serve` runs for the Lock service)
//! through the simulated cluster, hold the lock for a while, write under it with a fence, and
//! unlock; the mutual-exclusion checker (`checkers::locks`) judges the history they leave.
//!
//! One lock client runs cycles: it grants a lease of `ttl_seconds` (as clientv3's session does)
//! and keeps it alive every third of its TTL, runs `Lock` with that lease, holds the lock for a
//! few slices of `hold_ms_min..=hold_ms_max`, each ended by a fenced write (a txn comparing the
//! owner key's create revision with the token, putting `/fenced/<lock>`), then runs `Unlock`
//! and revokes the lease. With `pause_ppm`, a holder pauses past its lease's TTL inside its hold
//! (no keep-alive, no request: a stopped process), so the lease expires, the next waiter
//! acquires, and the paused holder wakes believing it still holds the lock: its fenced write
//! must be refused (Jepsen's etcd 3.4.3 finding).
//!
//! Every request a recipe asks for is a client request recorded in the history as a normal
//! operation, under the lock client's history client number; the keep-alives go under a second
//! number, since a client has one operation outstanding at most. The acquisition, the fenced
//! writes and the unlock carry a `lock` note (docs/history-format.md). A recipe's watch is the
//! client's watch stream, recorded like a watcher's: it is opened without the recipe's `no_put`
//! filter (the format has no filters) and the driver drops the put events before the recipe
//! sees them, which is what the filter does in the member. Nested ranges the format cannot
//! express (sorted with a limit, or filtered by create revision) are recorded with their
//! answers' kvs and count left out, so they constrain nothing.
//!
//! Without `[workload.locks]` nothing here runs, draws or records, so a scenario without it
//! keeps its trace hashes. Each lock client draws from a stream of its own
//! (`Stream::LockClient`).

use engine::kv::{
    PutRequest, RangeRequest, Request, RequestError, RequestOp, Response, SortOrder, TxnRequest,
    WatchCreateRequest, WatchFilters, WatchResponse,
};
use engine::types::{Duration, Instant, LeaseId, WatchId};
use host::recipe::lock::{Held, Lock, Unlock};
use host::recipe::{create_revision_is, Next, Recipe};

use crate::history::WatchRecord;
use crate::rng::{SimRng, Stream, PPM};
use crate::world::{Event, World};

/// The lock traffic of a scenario (`[workload.locks]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockTraffic {
    /// Lock clients.
    #[serde(default = "default_client_count")]
    pub client_count: u32,
    /// Locks they contend for, named `/lock/0`, `/lock/1`, ...; each cycle picks one.
    #[serde(default = "default_lock_count")]
    pub lock_count: u32,
    /// The TTL of each cycle's lease (s).
    #[serde(default = "default_ttl_seconds")]
    pub ttl_seconds: i64,
    /// One slice of a hold, before each fenced write (ms), drawn uniformly.
    #[serde(default = "default_hold_ms_min")]
    pub hold_ms_min: u64,
    /// See `hold_ms_min`.
    #[serde(default = "default_hold_ms_max")]
    pub hold_ms_max: u64,
    /// Fenced writes per hold at most (at least one).
    #[serde(default = "default_fenced_writes_max")]
    pub fenced_writes_max: u32,
    /// The chance that a hold includes a pause past the lease's TTL (ppm).
    #[serde(default = "default_pause_ppm")]
    pub pause_ppm: u32,
    /// How long a waiter waits for the lock before it gives up (ms).
    #[serde(default = "default_wait_ms_max")]
    pub wait_ms_max: u64,
    /// Pause between two cycles of a client (ms), drawn uniformly.
    #[serde(default = "default_think_ms_min")]
    pub think_ms_min: u64,
    /// See `think_ms_min`.
    #[serde(default = "default_think_ms_max")]
    pub think_ms_max: u64,
}

fn default_client_count() -> u32 {
    4
}
fn default_lock_count() -> u32 {
    2
}
fn default_ttl_seconds() -> i64 {
    2
}
fn default_hold_ms_min() -> u64 {
    50
}
fn default_hold_ms_max() -> u64 {
    600
}
fn default_fenced_writes_max() -> u32 {
    3
}
fn default_pause_ppm() -> u32 {
    150_000
}
fn default_wait_ms_max() -> u64 {
    8_000
}
fn default_think_ms_min() -> u64 {
    50
}
fn default_think_ms_max() -> u64 {
    800
}

impl Default for LockTraffic {
    fn default() -> LockTraffic {
        LockTraffic {
            client_count: default_client_count(),
            lock_count: default_lock_count(),
            ttl_seconds: default_ttl_seconds(),
            hold_ms_min: default_hold_ms_min(),
            hold_ms_max: default_hold_ms_max(),
            fenced_writes_max: default_fenced_writes_max(),
            pause_ppm: default_pause_ppm(),
            wait_ms_max: default_wait_ms_max(),
            think_ms_min: default_think_ms_min(),
            think_ms_max: default_think_ms_max(),
        }
    }
}

impl LockTraffic {
    /// Why these settings cannot run, naming the key (`Scenario::validate`).
    pub fn validate(&self, with_auth: bool) -> Result<(), String> {
        let positive = [
            ("client_count", u64::from(self.client_count)),
            ("lock_count", u64::from(self.lock_count)),
            ("ttl_seconds", self.ttl_seconds.max(0) as u64),
            ("fenced_writes_max", u64::from(self.fenced_writes_max)),
            ("wait_ms_max", self.wait_ms_max),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("workload.locks.{key} must be at least 1"));
            }
        }
        if self.pause_ppm > PPM {
            return Err(format!(
                "workload.locks.pause_ppm ({}) is above 1000000 (100%)",
                self.pause_ppm
            ));
        }
        for (min_key, min, max_key, max) in [
            (
                "hold_ms_min",
                self.hold_ms_min,
                "hold_ms_max",
                self.hold_ms_max,
            ),
            (
                "think_ms_min",
                self.think_ms_min,
                "think_ms_max",
                self.think_ms_max,
            ),
        ] {
            if min > max {
                return Err(format!(
                    "workload.locks.{min_key} ({min}) is above workload.locks.{max_key} ({max})"
                ));
            }
        }
        if with_auth {
            return Err(
                "workload.locks and workload.auth cannot be combined: lock clients send no credentials"
                    .into(),
            );
        }
        Ok(())
    }
}

impl crate::scenario::Scenario {
    /// Lock clients under partitions with paused holders (the library's
    /// `locks_under_partitions.toml`, which the scenarios crate holds to this): holders whose
    /// leases expire while they are paused, waiters whose keys' leases expire while they wait,
    /// and acquisitions racing with leader changes; members pause too (a paused leader's
    /// lease clocks go stale).
    pub fn locks_under_partitions() -> crate::scenario::Scenario {
        let mut scenario = crate::scenario::Scenario::partitions_only();
        scenario.name = "locks_under_partitions".into();
        scenario.faults.pauses_per_minute = 4;
        // One lock: a waiter is almost always there to take over from a paused holder.
        scenario.workload.locks = Some(LockTraffic {
            lock_count: 1,
            ..LockTraffic::default()
        });
        scenario
    }
}

/// Attempts of one request at most, as the other clients make.
const REQUEST_ATTEMPTS_MAX: u32 = 3;
/// One-way client link latency range (ns), as the other clients'.
const LATENCY_NS_MIN: u64 = 100_000;
const LATENCY_NS_MAX: u64 = 500_000;
/// How much longer than the lease's TTL a pause lasts at most (ms).
const PAUSE_BEYOND_TTL_MS_MAX: u64 = 1_500;

/// The name of lock `index`.
pub fn lock_name(index: u32) -> Vec<u8> {
    format!("/lock/{index}").into_bytes()
}

/// The key a holder of lock `name` writes under the fence.
pub fn fenced_key(name: &[u8]) -> Vec<u8> {
    let mut key = b"/fenced".to_vec();
    key.extend_from_slice(name);
    key
}

#[derive(Debug)]
enum Phase {
    Idle,
    Granting,
    Locking(Box<Lock>),
    Holding,
    Fencing,
    Unlocking(Unlock),
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
    watch_id: Option<WatchId>,
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

/// Whether a range's answer cannot be recorded in the format (it sorts with a limit, or
/// filters by revision): the format's range has neither.
fn unrecordable(range: &RangeRequest) -> bool {
    (range.sort_order != SortOrder::None && range.limit > 0)
        || range.min_create_revision.0 != 0
        || range.max_create_revision.0 != 0
        || range.min_mod_revision.0 != 0
        || range.max_mod_revision.0 != 0
}

/// Leaves out, in a txn's recorded answer, the kvs and count of nested ranges the format
/// cannot express.
pub(crate) fn blind_checked(request: &Request, response: &mut checkers::history::Response) {
    if let Request::Txn(txn) = request {
        blind_checked_txn(txn, response);
    }
}

fn blind_checked_txn(txn: &TxnRequest, response: &mut checkers::history::Response) {
    use checkers::history::Response as R;
    let R::Txn {
        succeeded: Some(succeeded),
        responses: Some(responses),
        ..
    } = response
    else {
        return;
    };
    let branch = if *succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    for (op, answer) in branch.iter().zip(responses.iter_mut()) {
        match (op, answer) {
            (RequestOp::Range(range), R::Range { kvs, count, .. }) if unrecordable(range) => {
                *kvs = None;
                *count = None;
            }
            (RequestOp::Txn(inner), answer) => blind_checked_txn(inner, answer),
            _ => {}
        }
    }
}

/// `blind_checked` on a history line's `result`.
fn blind_json(request: &Request, result: &mut serde_json::Value) {
    if let Request::Txn(txn) = request {
        blind_json_txn(txn, result);
    }
}

fn blind_json_txn(txn: &TxnRequest, result: &mut serde_json::Value) {
    let branch = match result["succeeded"].as_bool() {
        Some(true) => &txn.success,
        Some(false) => &txn.failure,
        None => return,
    };
    let Some(responses) = result["responses"].as_array_mut() else {
        return;
    };
    for (op, answer) in branch.iter().zip(responses.iter_mut()) {
        match op {
            RequestOp::Range(range) if unrecordable(range) => {
                if let Some(object) = answer.as_object_mut() {
                    object.remove("kvs");
                    object.remove("count");
                }
            }
            RequestOp::Txn(inner) => blind_json_txn(inner, answer),
            _ => {}
        }
    }
}

/// A history line with the answers `blind_checked` leaves out removed and the lock note added.
pub(crate) fn noted_line(
    line: String,
    request: &Request,
    note: Option<&checkers::history::LockNote>,
) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&line).expect("a line we rendered");
    blind_json(request, &mut value["result"]);
    if let Some(note) = note {
        value["lock"] = checkers::history::lock_json(note);
    }
    serde_json::to_string(&value).expect("a JSON value always serialises")
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
                let (lock_count, ttl) = {
                    let config = &self.locks().config;
                    (config.lock_count, config.ttl_seconds)
                };
                let state = self.lock_client(client);
                let index = state.rng.below(u64::from(lock_count)) as u32;
                state.name = lock_name(index);
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
                    let mut unlock = Unlock::new(held.key.clone());
                    let Next::Send(request) = unlock.start() else {
                        unreachable!("an unlock starts with its delete")
                    };
                    state.phase = Phase::Unlocking(unlock);
                    let note = note_of(&state.name, &held, checkers::history::LockStep::Released);
                    self.lock_send(now, client, request, Some(note), 1);
                    return;
                }
                state.fenced_left -= 1;
                state.phase = Phase::Fencing;
                state.sequence += 1;
                let held = state.held.clone().expect("a holder holds");
                let value = format!("{}:{}:{}", held.revision.0, client, state.sequence);
                let request = Request::Txn(TxnRequest {
                    compare: vec![create_revision_is(&held.key, held.revision)],
                    success: vec![RequestOp::Put(PutRequest {
                        key: fenced_key(&state.name),
                        value: value.into_bytes(),
                        ..PutRequest::default()
                    })],
                    failure: Vec::new(),
                });
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
                let request = outstanding.request.clone();
                self.lock_record(now, client, false, outstanding, result, None);
                let _ = request;
                match answer {
                    Ok(Response::LeaseGrant { id, .. }) => self.lock_granted(now, client, id),
                    _ => self.schedule_lock_cycle(now, client),
                }
            }
            Phase::Locking(mut lock) => {
                let next = lock.on_answer(answer);
                let note = match &next {
                    Next::Done(Ok(held)) => Some(note_of(
                        &self.lock_client(client).name,
                        held,
                        checkers::history::LockStep::Acquired,
                    )),
                    _ => None,
                };
                self.lock_record(now, client, false, outstanding, result, note);
                self.lock_client(client).phase = Phase::Locking(lock);
                self.lock_drive(now, client, next);
            }
            Phase::Fencing => {
                self.lock_record(now, client, false, outstanding, result, None);
                self.lock_client(client).phase = Phase::Holding;
                self.schedule_hold_slice(now, client);
            }
            Phase::Unlocking(mut unlock) => {
                let _done = unlock.on_answer(answer);
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
        let mut lock = match Lock::new(&state.name, lease) {
            Ok(lock) => Box::new(lock),
            Err(_) => unreachable!("lock names are never empty"),
        };
        let next = lock.start();
        state.phase = Phase::Locking(lock);
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
                    Phase::Locking(lock) => lock.abandon(),
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
        if state.cycle != cycle || !matches!(state.phase, Phase::Locking(_)) {
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

    fn lock_open_watch(&mut self, now: Instant, client: usize, create: WatchCreateRequest) {
        let op_id = self.take_request_id();
        let history_client = self.locks().history_client(client, false) as u32;
        // The recipe's filter is applied here, not in the member: the recorded stream must be
        // complete for the watch checker (the format has no filters).
        let request = WatchCreateRequest {
            filters: WatchFilters::default(),
            ..create
        };
        let state = self.lock_client(client);
        let node = state.endpoint;
        state.records.push(WatchRecord {
            watch: op_id,
            client: history_client,
            call: now,
            key: request.key.clone(),
            range_end: request.range_end.clone(),
            start_revision: request.start_revision.0,
            prev_kv: request.prev_kv,
            events: Vec::new(),
            progress: Vec::new(),
            canceled: None,
        });
        state.watch = Some(OpenWatch {
            op_id,
            node,
            watch_id: None,
            last_arrival: now,
        });
        let arrival = now + latency(&mut state.rng);
        self.counts.watches += 1;
        self.routes
            .insert(op_id, crate::clients::RequestRoute::LockWatch(client));
        self.queue.schedule(
            arrival,
            Event::RequestArrives {
                op_id,
                node,
                request: Request::WatchCreate(request),
            },
        );
        let timeout = Duration(self.scenario.workload.request_timeout_ns);
        self.queue
            .schedule(now + timeout, Event::LockWatchTimeout { client, op_id });
    }

    /// Ends the client's open watch (the recipe moved on): cancelled in the member too.
    fn lock_close_watch(&mut self, now: Instant, client: usize) {
        let state = self.lock_client(client);
        let Some(watch) = state.watch.take() else {
            return;
        };
        if let Some(record) = state.records.last_mut() {
            record.cancel(now, "closed by the client", 0);
        }
        self.routes.remove(&watch.op_id);
        if let Some(watch_id) = watch.watch_id {
            let op_id = self.take_request_id();
            let arrival = now + latency(&mut self.lock_client(client).rng);
            self.routes
                .insert(op_id, crate::clients::RequestRoute::WatcherControl);
            self.queue.schedule(
                arrival,
                Event::RequestArrives {
                    op_id,
                    node: watch.node,
                    request: Request::WatchCancel { watch_id },
                },
            );
        }
    }

    /// The member answered the watch creation.
    pub(crate) fn lock_watch_reply(
        &mut self,
        now: Instant,
        client: usize,
        node: usize,
        result: Result<Response, RequestError>,
    ) {
        let state = self.lock_client(client);
        match (&mut state.watch, result) {
            (Some(watch), Ok(Response::WatchCreated { watch_id, .. })) if watch.node == node => {
                watch.watch_id = Some(watch_id);
            }
            (Some(_), result) => {
                let reason = match &result {
                    Err(error) => error.code().to_string(),
                    Ok(_) => "unexpected response".to_string(),
                };
                self.lock_watch_ended(now, client, &reason, 0);
            }
            (None, _) => {}
        }
    }

    /// A watch creation that got no answer ends the stream; the recipe reads again.
    pub(crate) fn lock_watch_timeout(&mut self, now: Instant, client: usize, op_id: u64) {
        let pending = self
            .lock_client(client)
            .watch
            .as_ref()
            .is_some_and(|watch| watch.op_id == op_id && watch.watch_id.is_none());
        if pending {
            self.routes.remove(&op_id);
            self.lock_watch_ended(now, client, "timeout", 0);
        }
    }

    /// The open watch ended (cancelled by the member, its member crashed, or it was never
    /// created): the recipe hears a cancellation and reads the store again.
    fn lock_watch_ended(&mut self, now: Instant, client: usize, reason: &str, compact: i64) {
        let state = self.lock_client(client);
        if state.watch.take().is_none() {
            return;
        }
        if let Some(record) = state.records.last_mut() {
            record.cancel(now, reason, compact);
        }
        let cancelled = WatchResponse {
            canceled: true,
            ..WatchResponse::default()
        };
        self.lock_feed_watch(now, client, &cancelled);
    }

    fn lock_feed_watch(&mut self, now: Instant, client: usize, response: &WatchResponse) {
        let state = self.lock_client(client);
        let next = match &mut state.phase {
            Phase::Locking(lock) => lock.on_watch(response),
            _ => return,
        };
        self.lock_drive(now, client, next);
    }

    /// A member's watch response for a lock client's stream, if one is open there: it arrives
    /// after the link's latency, in stream order.
    pub(crate) fn lock_route_notify(
        &mut self,
        now: Instant,
        node: usize,
        response: WatchResponse,
    ) -> Option<WatchResponse> {
        let Some(locks) = self.locks.as_mut() else {
            return Some(response);
        };
        let Some(client) = locks.clients.iter().position(|state| {
            state.watch.as_ref().is_some_and(|watch| {
                watch.node == node && watch.watch_id == Some(response.watch_id)
            })
        }) else {
            return Some(response);
        };
        let state = &mut locks.clients[client];
        let lat = latency(&mut state.rng);
        let watch = state.watch.as_mut().expect("found above");
        let arrival = (now + lat).max(watch.last_arrival);
        watch.last_arrival = arrival;
        let op_id = watch.op_id;
        self.queue.schedule(
            arrival,
            Event::LockWatchArrives {
                client,
                op_id,
                response,
            },
        );
        None
    }

    /// A watch response reached the lock client.
    pub(crate) fn lock_watch_arrives(
        &mut self,
        now: Instant,
        client: usize,
        op_id: u64,
        response: WatchResponse,
    ) {
        let state = self.lock_client(client);
        if state
            .watch
            .as_ref()
            .is_none_or(|watch| watch.op_id != op_id)
        {
            return;
        }
        let record = state
            .records
            .last_mut()
            .expect("an open watch has a record");
        let progress = response.events.is_empty() && !response.created && !response.canceled;
        if progress {
            record.push_progress(now, response.header.revision.0);
        }
        record.push_events(now, &response.events);
        if response.canceled {
            let reason = if response.cancel_reason.is_empty() {
                "canceled".to_string()
            } else {
                response.cancel_reason.clone()
            };
            return self.lock_watch_ended(now, client, &reason, response.compact_revision.0);
        }
        // The recipe's `no_put` filter.
        let mut deletions = response;
        deletions
            .events
            .retain(|event| event.kind == engine::kv::EventType::Delete);
        self.lock_feed_watch(now, client, &deletions);
    }

    /// Ends the lock clients' streams served by member `node` (it crashed).
    pub(crate) fn lock_cancel_watches_on(&mut self, now: Instant, node: usize, reason: &str) {
        let count = self.locks.as_ref().map_or(0, LockClients::len);
        for client in 0..count {
            let served = self
                .lock_client(client)
                .watch
                .as_ref()
                .is_some_and(|watch| watch.node == node);
            if served {
                self.lock_watch_ended(now, client, reason, 0);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::kv::{KeyValue, RangeResponse, ResponseOp, SortTarget, TxnResponse};

    /// Goal: bad settings are refused naming the key, and the defaults run. Method: a few
    /// settings, one bad value at a time.
    #[test]
    fn settings_are_validated_by_key() {
        assert_eq!(LockTraffic::default().validate(false), Ok(()));
        let error = |change: fn(&mut LockTraffic)| {
            let mut traffic = LockTraffic::default();
            change(&mut traffic);
            traffic.validate(false).expect_err("refused")
        };
        assert!(error(|t| t.client_count = 0).contains("workload.locks.client_count"));
        assert!(error(|t| t.ttl_seconds = 0).contains("workload.locks.ttl_seconds"));
        assert!(error(|t| t.pause_ppm = PPM + 1).contains("workload.locks.pause_ppm"));
        assert!(error(|t| t.hold_ms_min = 700).contains("workload.locks.hold_ms_min"));
        let with_auth = LockTraffic::default().validate(true).expect_err("refused");
        assert!(with_auth.contains("workload.auth"), "{with_auth}");
    }

    /// Goal: the recipe's reads the format cannot express are recorded without kvs and count,
    /// in both views (the checkers' values and the JSON line), and every other answer is
    /// recorded whole. Method: the lock recipe's acquiring txn, answered on its success branch.
    #[test]
    fn unrecordable_ranges_are_blinded_in_both_views() {
        let prefix = b"/lock/0/".to_vec();
        let key = b"/lock/0/7".to_vec();
        let oldest = host::recipe::first_created(&prefix);
        assert!(unrecordable(&oldest));
        let plain = RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        };
        assert!(!unrecordable(&plain));
        let sorted_unlimited = RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Mod,
            ..plain.clone()
        };
        assert!(!unrecordable(&sorted_unlimited));
        let request = Request::Txn(TxnRequest {
            compare: Vec::new(),
            success: vec![RequestOp::Range(oldest), RequestOp::Range(plain)],
            failure: Vec::new(),
        });
        let kv = KeyValue {
            key: key.clone(),
            create_revision: engine::types::Revision(5),
            ..KeyValue::default()
        };
        let range = RangeResponse {
            kvs: vec![kv],
            count: 1,
            ..RangeResponse::default()
        };
        let response = Response::Txn(TxnResponse {
            succeeded: true,
            responses: vec![ResponseOp::Range(range.clone()), ResponseOp::Range(range)],
            ..TxnResponse::default()
        });
        let mut checked = crate::checking::response(Ok(response.clone())).expect("a txn");
        blind_checked(&request, &mut checked);
        let checkers::history::Response::Txn {
            responses: Some(responses),
            ..
        } = &checked
        else {
            panic!("{checked:?}")
        };
        assert!(matches!(
            &responses[0],
            checkers::history::Response::Range {
                kvs: None,
                count: None,
                ..
            }
        ));
        assert!(matches!(
            &responses[1],
            checkers::history::Response::Range {
                kvs: Some(kvs),
                count: Some(1),
                ..
            } if kvs.len() == 1
        ));
        let op = crate::history::op_json(&request).expect("a txn renders");
        let line = crate::history::operation_line(
            3,
            1,
            Instant(1),
            &op,
            Some((Instant(2), &Ok(response))),
        );
        let note = checkers::history::LockNote {
            name: b"/lock/0".to_vec(),
            step: checkers::history::LockStep::Acquired,
            key,
            token: 5,
        };
        let line = noted_line(line, &request, Some(&note));
        let checkers::history::Line::Op(parsed) =
            checkers::history::parse_line(&line).expect("parses")
        else {
            panic!("{line}")
        };
        assert_eq!(parsed.result, Some(checked));
        assert_eq!(parsed.lock, Some(note));
    }
}
