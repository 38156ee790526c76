//! The chaos run's clients: key-value clients (puts, txns, deletes, ranges, leases) and watch
//! clients, each recording what it saw as history operations and watch streams.
//!
//! A client has one request outstanding at a time. When a request's outcome is unknown
//! (timeout, lost connection) the client carries on under a new client id, as the history
//! format requires (the unknown request may still be outstanding), and on another member.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkers::history::{
    Compare, CompareOp, CompareTarget, CompareValue, DeleteRequest, Operation, PutRequest,
    RangeRequest, Request, Response, TxnRequest, WatchCancel, WatchRecord,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};
use server::proto::etcdserverpb as pb;
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;

use crate::rpc::{self, Outcome};

/// Keys the clients share: few, so that operations contend.
pub const KEY_COUNT: u64 = 8;
/// The first key of the workload's range; `KEYS_END` ends it.
const KEYS_START: &[u8] = b"k";
const KEYS_END: &[u8] = b"l";
/// TTL of the workload's leases: longer than a bounded run, so none expires while held.
const LEASE_TTL_SECONDS: i64 = 120;

/// What every client records into, with one clock.
pub struct Recorder {
    start: std::time::Instant,
    ops: Mutex<Vec<Operation>>,
    watches: Mutex<Vec<WatchRecord>>,
    next_op_id: AtomicU64,
    next_client_id: AtomicU64,
    next_watch_id: AtomicU64,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: std::time::Instant::now(),
            ops: Mutex::new(Vec::new()),
            watches: Mutex::new(Vec::new()),
            next_op_id: AtomicU64::new(1),
            next_client_id: AtomicU64::new(1),
            next_watch_id: AtomicU64::new(1),
        }
    }

    /// Nanoseconds since the recorder started: the history's clock.
    pub fn now(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    /// A fresh client id.
    pub fn new_client(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `request` on `channel` as `client` and records the operation; returns its outcome.
    pub async fn run(&self, client: u64, channel: &Channel, request: Request) -> Outcome {
        let call = self.now();
        let outcome = rpc::execute(channel, &request).await;
        let (ret, result) = match &outcome {
            Outcome::Known(response) => (Some(self.now()), Some(response.clone())),
            Outcome::Unknown(_) => (None, None),
        };
        let id = self.next_op_id.fetch_add(1, Ordering::Relaxed);
        self.ops.lock().expect("never poisoned").push(Operation {
            id,
            client,
            call,
            ret,
            request,
            result,
            user: None,
            lock: None,
        });
        outcome
    }

    /// The history recorded so far, operations by id and watches by id.
    pub fn history(&self) -> checkers::history::History {
        let mut ops = self.ops.lock().expect("never poisoned").clone();
        ops.sort_by_key(|op| op.id);
        let mut watches = self.watches.lock().expect("never poisoned").clone();
        watches.sort_by_key(|watch| watch.watch);
        checkers::history::History { ops, watches }
    }
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

/// What one key-value client did.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCounts {
    /// Requests answered.
    pub known_count: u64,
    /// Requests with an unknown outcome.
    pub unknown_count: u64,
    /// Writes acknowledged (puts, deletes, txns, lease grants and revokes answered).
    pub acknowledged_write_count: u64,
}

fn key(index: u64) -> Vec<u8> {
    format!("k{index}").into_bytes()
}

/// Runs one key-value client until `deadline`: random requests over the shared keys on
/// `channels[start_member]`, moving to the next member after an unknown outcome.
pub async fn kv_client(
    recorder: Arc<Recorder>,
    channels: Arc<Vec<Channel>>,
    start_member: usize,
    seed: u64,
    deadline: tokio::time::Instant,
) -> ClientCounts {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut counts = ClientCounts::default();
    let mut member = start_member % channels.len();
    let mut client = recorder.new_client();
    let mut sequence: u64 = 0;
    let mut lease: Option<i64> = None;
    // The last value this client saw of each key: txns compare against it.
    let mut seen: Vec<Option<Vec<u8>>> = vec![None; KEY_COUNT as usize];
    while tokio::time::Instant::now() < deadline {
        sequence += 1;
        let key_index = rng.next_u64() % KEY_COUNT;
        let value = format!("c{client}-{sequence}").into_bytes();
        let roll = rng.next_u64() % 100;
        let request = match roll {
            0..35 => Request::Put(PutRequest {
                key: key(key_index),
                value: value.clone(),
                lease: 0,
                prev_kv: false,
            }),
            35..60 | 65..70 => Request::Range(RangeRequest {
                key: key(key_index),
                range_end: None,
                revision: 0,
                limit: 0,
                serializable: roll >= 65,
            }),
            60..65 => Request::Range(RangeRequest {
                key: KEYS_START.to_vec(),
                range_end: Some(KEYS_END.to_vec()),
                revision: 0,
                limit: 0,
                serializable: false,
            }),
            70..82 => {
                let compare = match &seen[key_index as usize] {
                    Some(last) => Compare {
                        key: key(key_index),
                        target: CompareTarget::Value,
                        op: CompareOp::Equal,
                        value: CompareValue::Bytes(last.clone()),
                    },
                    None => Compare {
                        key: key(key_index),
                        target: CompareTarget::Version,
                        op: CompareOp::Equal,
                        value: CompareValue::Int(0),
                    },
                };
                Request::Txn(TxnRequest {
                    compare: vec![compare],
                    success: vec![Request::Put(PutRequest {
                        key: key(key_index),
                        value: value.clone(),
                        lease: 0,
                        prev_kv: false,
                    })],
                    failure: vec![Request::Range(RangeRequest {
                        key: key(key_index),
                        range_end: None,
                        revision: 0,
                        limit: 0,
                        serializable: false,
                    })],
                })
            }
            82..87 => Request::Delete(DeleteRequest {
                key: key(key_index),
                range_end: None,
                prev_kv: false,
            }),
            _ => match lease {
                None => Request::LeaseGrant {
                    ttl_seconds: LEASE_TTL_SECONDS,
                    id: 0,
                },
                Some(id) => match rng.next_u64() % 10 {
                    0..4 => Request::Put(PutRequest {
                        key: key(key_index),
                        value: value.clone(),
                        lease: id,
                        prev_kv: false,
                    }),
                    4..7 => Request::LeaseKeepAlive { id },
                    _ => Request::LeaseRevoke { id },
                },
            },
        };
        let is_write = !matches!(request, Request::Range(_) | Request::LeaseKeepAlive { .. });
        let revoking = matches!(request, Request::LeaseRevoke { .. });
        match recorder
            .run(client, &channels[member], request.clone())
            .await
        {
            Outcome::Known(response) => {
                counts.known_count += 1;
                let definite_error = matches!(response, Response::Error { .. });
                if is_write && !definite_error {
                    counts.acknowledged_write_count += 1;
                }
                remember(&request, &response, &mut seen, &mut lease);
                if revoking || (definite_error && lease.is_some()) {
                    lease = None;
                }
            }
            Outcome::Unknown(_) => {
                counts.unknown_count += 1;
                client = recorder.new_client();
                member = (member + 1) % channels.len();
                if revoking {
                    lease = None;
                }
                // Give an election or a restart a moment rather than spinning on a dead member.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    counts
}

/// Updates what the client knows from an answer: values seen per key, the lease it holds.
fn remember(
    request: &Request,
    response: &Response,
    seen: &mut [Option<Vec<u8>>],
    lease: &mut Option<i64>,
) {
    let index_of = |key: &[u8]| -> Option<usize> {
        std::str::from_utf8(key.strip_prefix(b"k")?)
            .ok()?
            .parse::<usize>()
            .ok()
    };
    match (request, response) {
        (Request::Put(put), Response::Put { .. }) => {
            if let Some(index) = index_of(&put.key) {
                seen[index] = Some(put.value.clone());
            }
        }
        (Request::Range(_), Response::Range { kvs: Some(kvs), .. }) => {
            for kv in kvs {
                if let (Some(index), Some(value)) = (index_of(&kv.key), &kv.value) {
                    seen[index] = Some(value.clone());
                }
            }
        }
        (Request::LeaseGrant { .. }, Response::LeaseGrant { id: Some(id), .. }) => {
            *lease = Some(*id);
        }
        _ => {}
    }
}

/// Runs one watch client until `deadline`: a watch over every workload key from revision 1,
/// resumed on another member after the last revision it saw whenever its stream breaks.
pub async fn watch_client(
    recorder: Arc<Recorder>,
    channels: Arc<Vec<Channel>>,
    start_member: usize,
    deadline: tokio::time::Instant,
) {
    let mut member = start_member % channels.len();
    let mut next_revision: i64 = 1;
    while tokio::time::Instant::now() < deadline {
        let mut record = WatchRecord {
            watch: recorder.next_watch_id.fetch_add(1, Ordering::Relaxed),
            client: recorder.new_client(),
            call: recorder.now(),
            key: KEYS_START.to_vec(),
            range_end: Some(KEYS_END.to_vec()),
            start_revision: next_revision,
            prev_kv: true,
            events: Vec::new(),
            progress: Vec::new(),
            canceled: None,
        };
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: record.key.clone(),
                    range_end: KEYS_END.to_vec(),
                    start_revision: next_revision,
                    prev_kv: true,
                    ..Default::default()
                },
            )),
        };
        // The request stream stays open (pending) so the server keeps the watch.
        let requests = tokio_stream::iter([create]).chain(tokio_stream::pending());
        let mut client = pb::watch_client::WatchClient::new(channels[member].clone());
        let opened = tokio::time::timeout(Duration::from_secs(2), client.watch(requests)).await;
        let mut stream = match opened {
            Ok(Ok(response)) => response.into_inner(),
            _ => {
                member = (member + 1) % channels.len();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut created = false;
        let reason = loop {
            let message = tokio::select! {
                message = stream.next() => message,
                () = tokio::time::sleep_until(deadline) => break None,
            };
            let time = recorder.now();
            match message {
                Some(Ok(reply)) => {
                    created |= reply.created;
                    for event in &reply.events {
                        if let Some(event) = rpc::watch_event(time, event) {
                            next_revision = next_revision.max(event.revision + 1);
                            record.events.push(event);
                        }
                    }
                    if reply.canceled {
                        record.canceled = Some(WatchCancel {
                            time,
                            reason: reply.cancel_reason.clone(),
                            compact_revision: (reply.compact_revision > 0)
                                .then_some(reply.compact_revision),
                        });
                        break Some("canceled by the server".to_string());
                    }
                }
                Some(Err(status)) => break Some(format!("stream failed: {}", status.message())),
                None => break Some("stream ended".to_string()),
            }
        };
        if let Some(reason) = reason {
            if record.canceled.is_none() {
                record.canceled = Some(WatchCancel {
                    time: recorder.now(),
                    reason,
                    compact_revision: None,
                });
            }
            member = (member + 1) % channels.len();
        }
        if created || !record.events.is_empty() {
            recorder
                .watches
                .lock()
                .expect("never poisoned")
                .push(record);
        }
    }
}

/// What the leadership monitor saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Leadership {
    /// Distinct (term, leader) pairs the members reported: leaders elected during the run.
    pub leader_count: usize,
    /// The highest raft term a member reported.
    pub term_max: u64,
}

/// Asks every member for its status every 200 ms until `deadline`, counting the leaders it
/// hears of: evidence that the faults forced elections.
pub async fn monitor_leaders(
    channels: Arc<Vec<Channel>>,
    deadline: tokio::time::Instant,
) -> Leadership {
    let mut leaders = std::collections::BTreeSet::new();
    let mut term_max = 0;
    while tokio::time::Instant::now() < deadline {
        for channel in channels.iter() {
            let mut maintenance = pb::maintenance_client::MaintenanceClient::new(channel.clone());
            let asked = maintenance.status(pb::StatusRequest {});
            if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_millis(200), asked).await {
                let status = status.into_inner();
                term_max = term_max.max(status.raft_term);
                if status.leader != 0 {
                    leaders.insert((status.raft_term, status.leader));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Leadership {
        leader_count: leaders.len(),
        term_max,
    }
}
