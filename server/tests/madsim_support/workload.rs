//! The clients of a madsim run: key-value clients (puts, txns, deletes, ranges linearizable
//! and serializable, leases) sharing a count of operations, and one watch client per member,
//! each recording what it saw. A client has one request outstanding at a time; after an
//! unknown outcome it carries on under a new client id (the history format's rule: the unknown
//! request may still be outstanding) and on another member, as etcd's clients do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use checkers::history::{
    Compare, CompareOp, CompareTarget, CompareValue, DeleteRequest, PutRequest, RangeRequest,
    Request, Response, TxnRequest, WatchCancel, WatchRecord,
};
use madsim::rand::Rng as _;
use server::history_rpc::{self as rpc, Outcome};
use server::proto::etcdserverpb as pb;
use tokio_stream::StreamExt as _;

use super::{Cluster, Recorder, RunConfig};

/// Keys the clients share: few, so that operations contend.
const KEY_COUNT: u64 = 6;
const KEYS_START: &[u8] = b"k";
const KEYS_END: &[u8] = b"l";
/// Longer than any run, so no lease expires while a client holds it.
const LEASE_TTL_SECONDS: i64 = 3_600;

fn key(index: u64) -> Vec<u8> {
    format!("k{index}").into_bytes()
}

/// A linearizable read of every workload key.
pub(crate) fn read_all() -> Request {
    Request::Range(RangeRequest {
        key: KEYS_START.to_vec(),
        range_end: Some(KEYS_END.to_vec()),
        revision: 0,
        limit: 0,
        serializable: false,
    })
}

/// Waits for a leader, runs the clients until they issued `config.operation_count` operations,
/// then tells the watch clients and the fault schedule to stop.
pub(crate) async fn run(cluster: Arc<Cluster>, recorder: Arc<Recorder>, config: RunConfig) {
    wait_for_leader(&cluster).await;
    super::trace_stage("leader elected");
    let remaining = Arc::new(AtomicU64::new(config.operation_count));
    let mut watchers = Vec::new();
    for member in 0..cluster.channels.len() {
        watchers.push(tokio::spawn(watch_client(
            cluster.clone(),
            recorder.clone(),
            member,
        )));
    }
    let mut clients = Vec::new();
    for index in 0..config.client_count {
        clients.push(tokio::spawn(kv_client(
            cluster.clone(),
            recorder.clone(),
            remaining.clone(),
            index,
        )));
    }
    for client in clients {
        client.await.expect("a client completes");
    }
    cluster.done.store(true, Ordering::Relaxed);
    for watcher in watchers {
        watcher.await.expect("a watch client completes");
    }
}

async fn wait_for_leader(cluster: &Cluster) {
    loop {
        for channel in &cluster.channels {
            let mut maintenance = pb::maintenance_client::MaintenanceClient::new(channel.clone());
            let asked = maintenance.status(pb::StatusRequest {});
            match madsim::time::timeout(Duration::from_millis(300), asked).await {
                Ok(Ok(status)) if status.get_ref().leader != 0 => return,
                other => super::trace_stage(&format!("status: {other:?}")),
            }
        }
        super::trace_stage("no leader yet");
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One key-value client: random requests over the shared keys until the shared count runs out.
async fn kv_client(
    cluster: Arc<Cluster>,
    recorder: Arc<Recorder>,
    remaining: Arc<AtomicU64>,
    start_member: usize,
) {
    let mut member = start_member % cluster.channels.len();
    let mut client = recorder.new_client();
    let mut sequence: u64 = 0;
    let mut lease: Option<i64> = None;
    // The last value this client saw of each key: txns compare against it.
    let mut seen: Vec<Option<Vec<u8>>> = vec![None; KEY_COUNT as usize];
    while remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
    {
        sequence += 1;
        let value = format!("c{client}-{sequence}").into_bytes();
        let request = draw_request(&seen, lease, value);
        let revoking = matches!(request, Request::LeaseRevoke { .. });
        match recorder
            .run(client, &cluster.channels[member], request.clone())
            .await
        {
            Outcome::Known(response) => {
                let definite_error = matches!(response, Response::Error { .. });
                remember(&request, &response, &mut seen, &mut lease);
                if revoking || (definite_error && lease.is_some()) {
                    lease = None;
                }
            }
            Outcome::Unknown(_) => {
                client = recorder.new_client();
                member = (member + 1) % cluster.channels.len();
                if revoking {
                    lease = None;
                }
                // Give an election or a restart a moment rather than spinning on a dead member.
                madsim::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One request of the mix: 35% puts, 30% ranges (a sixth of them serializable, some over every
/// key), 12% txns (compare-and-set on the value last seen), 5% deletes, 18% lease traffic.
fn draw_request(seen: &[Option<Vec<u8>>], lease: Option<i64>, value: Vec<u8>) -> Request {
    let mut rng = madsim::rand::thread_rng();
    let key_index = rng.gen_range(0..KEY_COUNT);
    let put = |lease: i64, value: Vec<u8>| {
        Request::Put(PutRequest {
            key: key(key_index),
            value,
            lease,
            prev_kv: false,
        })
    };
    let read = |serializable: bool| {
        Request::Range(RangeRequest {
            key: key(key_index),
            range_end: None,
            revision: 0,
            limit: 0,
            serializable,
        })
    };
    let roll = rng.gen_range(0..100u32);
    match roll {
        0..35 => put(0, value),
        35..60 => read(false),
        60..65 => read_all(),
        65..70 => read(true),
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
                success: vec![put(0, value)],
                failure: vec![read(false)],
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
            Some(id) => match rng.gen_range(0..10u32) {
                0..4 => put(id, value),
                4..7 => Request::LeaseKeepAlive { id },
                _ => Request::LeaseRevoke { id },
            },
        },
    }
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

/// One watch client: a watch over every workload key from revision 1 with previous values,
/// resumed on another member after the last revision it saw whenever its stream breaks, until
/// the run is done.
async fn watch_client(cluster: Arc<Cluster>, recorder: Arc<Recorder>, start_member: usize) {
    let mut member = start_member % cluster.channels.len();
    let mut next_revision: i64 = 1;
    while !cluster.done.load(Ordering::Relaxed) {
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
        let mut client = pb::watch_client::WatchClient::new(cluster.channels[member].clone());
        let opened = madsim::time::timeout(Duration::from_secs(2), client.watch(requests)).await;
        let mut stream = match opened {
            Ok(Ok(response)) => response.into_inner(),
            _ => {
                member = (member + 1) % cluster.channels.len();
                madsim::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut created = false;
        let reason = loop {
            // `biased;`: tokio's unbiased order is not drawn from madsim's seed.
            let message = tokio::select! {
                biased;
                message = stream.next() => message,
                () = madsim::time::sleep(Duration::from_millis(100)) => {
                    if cluster.done.load(Ordering::Relaxed) {
                        break None;
                    }
                    continue;
                }
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
            member = (member + 1) % cluster.channels.len();
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
