//! `detcd grpc-proxy` in front of real `detcd serve` clusters: many watchers through the proxy
//! keep every watch guarantee (judged by the watch checker against the linearized history)
//! across a SIGKILL and restart of the proxy, while the cluster holds far fewer watchers than
//! the clients (coalescing); keep-alives of one lease are coalesced; with every endpoint down
//! a client gets `Unavailable` naming the endpoints, and the proxy recovers when one returns.

mod proxy_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::load::Recorder;
use checkers::history::{History, WatchCancel, WatchProgress, WatchRecord};
use checkers::Verdict;
use proxy_support::{free_port, Cluster, Process, SETTLE_TIMEOUT};
use server::proto::etcdserverpb as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// Watchers through the proxy.
const WATCHER_COUNT: usize = 50;
/// Workload keys (`k0`..`k7`, chaos's key-value clients' keys).
const KEY_COUNT: usize = 8;

fn channel(port: u16, timeout: Option<Duration>) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a valid URL")
        .connect_timeout(Duration::from_millis(500));
    match timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    }
    .connect_lazy()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// What one watcher watches.
#[derive(Clone, Debug)]
struct WatchSpec {
    key: Vec<u8>,
    /// `None`: the key alone.
    range_end: Option<Vec<u8>>,
    prev_kv: bool,
}

/// Watcher `index`'s spec: every fifth watches the whole workload range, the others one key;
/// every other asks for prev_kv (which must not stop them sharing an upstream watcher).
fn spec(index: usize) -> WatchSpec {
    let (key, range_end) = if index.is_multiple_of(5) {
        (b"k".to_vec(), Some(b"l".to_vec()))
    } else {
        (format!("k{}", index % KEY_COUNT).into_bytes(), None)
    };
    WatchSpec {
        key,
        range_end,
        prev_kv: index.is_multiple_of(2),
    }
}

/// Shared by the watchers and the test.
struct Watching {
    recorder: Arc<Recorder>,
    records: Mutex<Vec<WatchRecord>>,
    next_watch_id: AtomicU64,
    /// Watchers whose first watch was created.
    created_count: AtomicUsize,
    stop: AtomicBool,
}

/// One client watcher through the proxy: watches from revision 1, asks for progress now and
/// then (recording the bookmarks), and whenever its stream breaks opens a new watch from the
/// revision after the last event it saw, recording each stream as one watch.
async fn watcher(watching: Arc<Watching>, spec: WatchSpec, proxy: Channel, next: Arc<AtomicI64>) {
    let mut ever_created = false;
    while !watching.stop.load(Ordering::Relaxed) {
        let start_revision = next.load(Ordering::Relaxed);
        let mut record = WatchRecord {
            watch: watching.next_watch_id.fetch_add(1, Ordering::Relaxed),
            client: watching.recorder.new_client(),
            call: watching.recorder.now(),
            key: spec.key.clone(),
            range_end: spec.range_end.clone(),
            start_revision,
            prev_kv: spec.prev_kv,
            events: Vec::new(),
            progress: Vec::new(),
            canceled: None,
        };
        let (requests, receiver) = tokio::sync::mpsc::channel(4);
        let create = pb::watch_request::RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: spec.key.clone(),
            range_end: spec.range_end.clone().unwrap_or_default(),
            start_revision,
            prev_kv: spec.prev_kv,
            ..Default::default()
        });
        let _ = requests
            .send(pb::WatchRequest {
                request_union: Some(create),
            })
            .await;
        let mut client = pb::watch_client::WatchClient::new(proxy.clone());
        let opened = tokio::time::timeout(
            Duration::from_secs(2),
            client.watch(ReceiverStream::new(receiver)),
        )
        .await;
        let Ok(Ok(stream)) = opened else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        let mut created = false;
        let mut ticker = tokio::time::interval(Duration::from_millis(700));
        let reason = loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = ticker.tick() => {
                    if watching.stop.load(Ordering::Relaxed) {
                        break None;
                    }
                    let progress = pb::watch_request::RequestUnion::ProgressRequest(
                        pb::WatchProgressRequest {},
                    );
                    let _ = requests.send(pb::WatchRequest { request_union: Some(progress) }).await;
                    continue;
                }
            };
            let time = watching.recorder.now();
            match message {
                Ok(Some(reply)) => {
                    if reply.created && !created {
                        created = true;
                        if !ever_created {
                            ever_created = true;
                            watching.created_count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    for event in &reply.events {
                        if let Some(event) = chaos::rpc::watch_event(time, event) {
                            next.fetch_max(event.revision + 1, Ordering::Relaxed);
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
                        break Some(String::new());
                    }
                    if !reply.created && reply.events.is_empty() {
                        record.progress.push(WatchProgress {
                            time,
                            revision: reply.header.map_or(0, |header| header.revision),
                            events_before: record.events.len(),
                        });
                    }
                }
                Ok(None) => break Some("stream ended".to_string()),
                Err(status) => break Some(format!("stream failed: {}", status.message())),
            }
        };
        if let Some(reason) = reason {
            if record.canceled.is_none() {
                record.canceled = Some(WatchCancel {
                    time: watching.recorder.now(),
                    reason,
                    compact_revision: None,
                });
            }
        }
        if created || !record.events.is_empty() {
            watching
                .records
                .lock()
                .expect("never poisoned")
                .push(record);
        }
    }
}

fn start_proxy(cluster: &Cluster, port: u16, log: &str) -> Process {
    Process::detcd(
        &[
            "grpc-proxy".into(),
            "start".into(),
            format!("--endpoints={}", cluster.endpoints(&[0, 1, 2])),
            format!("--listen-addr=127.0.0.1:{port}"),
        ],
        &cluster.root.join(log),
    )
}

/// Waits (up to the settle timeout) for `done`, checking every 100 ms.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = tokio::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Goal: watchers behind the grpc-proxy keep etcd's watch guarantees (ordered, no gaps, no
/// duplicates, correct prev_kv, bookmarks honest) through a proxy crash, while the proxy
/// coalesces them. Method: a 3-member cluster; 50 watchers through a `detcd grpc-proxy`
/// process on overlapping keys (the whole range, or one of 8 keys) from revision 1; chaos's
/// key-value clients write for 6 s straight to the members, recording the history; at 2.5 s
/// the proxy is SIGKILLed and restarted on the same port 0.7 s later, and every watcher
/// resumes from its last revision. Finally every key is written once more and each watcher
/// must see its last write; the history is checked for linearizability and every watch by the
/// watch checker. The members' watcher gauge must show fewer upstream watchers than clients.
/// A compaction then makes a watch from revision 1 through the proxy cancel with it.
#[test]
fn fifty_watchers_through_the_grpc_proxy_survive_its_restart_coalesced() {
    let mut cluster = Cluster::start("grpc-proxy-test", 3);
    let proxy_port = free_port();
    let proxy_process = start_proxy(&cluster, proxy_port, "proxy-1.log");
    let runtime = runtime();
    let _context = runtime.enter();
    let members: Arc<Vec<Channel>> = Arc::new(
        cluster
            .client_ports
            .iter()
            .map(|&port| channel(port, Some(Duration::from_secs(3))))
            .collect(),
    );
    let proxy_channel = channel(proxy_port, None);
    let recorder = Arc::new(Recorder::new());
    let watching = Arc::new(Watching {
        recorder: recorder.clone(),
        records: Mutex::new(Vec::new()),
        next_watch_id: AtomicU64::new(1),
        created_count: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let nexts: Vec<Arc<AtomicI64>> = (0..WATCHER_COUNT)
        .map(|_| Arc::new(AtomicI64::new(1)))
        .collect();
    let cluster_ref = &mut cluster;
    let mut proxy_process = Some(proxy_process);
    runtime.block_on(async {
        // The cluster has a leader once a linearizable read through the proxy succeeds.
        let mut kv =
            pb::kv_client::KvClient::new(channel(proxy_port, Some(Duration::from_secs(3))));
        let started = tokio::time::Instant::now();
        // A read, not a write: the recorded history starts at revision 1.
        while kv
            .range(pb::RangeRequest {
                key: b"proxy-ready".to_vec(),
                ..Default::default()
            })
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < SETTLE_TIMEOUT,
                "no read through the proxy"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut watchers = Vec::new();
        for (index, next) in nexts.iter().enumerate() {
            watchers.push(tokio::spawn(watcher(
                watching.clone(),
                spec(index),
                proxy_channel.clone(),
                next.clone(),
            )));
        }
        wait_for("every watcher created", || {
            watching.created_count.load(Ordering::Relaxed) == WATCHER_COUNT
        })
        .await;
        let upstream_watchers = cluster_ref.watcher_count();
        eprintln!("{WATCHER_COUNT} client watchers, {upstream_watchers} upstream watchers");
        assert!(
            (1..WATCHER_COUNT as u64 / 2).contains(&upstream_watchers),
            "{upstream_watchers} upstream watchers for {WATCHER_COUNT} clients: not coalesced"
        );

        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        let writers: Vec<_> = (0..3)
            .map(|index| {
                tokio::spawn(chaos::load::kv_client(
                    recorder.clone(),
                    members.clone(),
                    index,
                    0x5eed + index as u64,
                    deadline,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        proxy_process = None;
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy_process = Some(start_proxy(cluster_ref, proxy_port, "proxy-2.log"));
        for writer in writers {
            writer.await.expect("the writer runs");
        }

        // A last put to every key, recorded; each watcher must see its key's.
        let client = recorder.new_client();
        for key in 0..KEY_COUNT {
            let put = checkers::history::Request::Put(checkers::history::PutRequest {
                key: format!("k{key}").into_bytes(),
                value: b"last".to_vec(),
                lease: 0,
                prev_kv: false,
            });
            let outcome = recorder.run(client, &members[0], put).await;
            assert!(
                matches!(outcome, chaos::rpc::Outcome::Known(_)),
                "{outcome:?}"
            );
        }
        let mut kv = pb::kv_client::KvClient::new(members[0].clone());
        let range = kv
            .range(pb::RangeRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                ..Default::default()
            })
            .await
            .expect("the final read")
            .into_inner();
        let last_revisions: BTreeMap<Vec<u8>, i64> = range
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.mod_revision))
            .collect();
        let top = range.header.as_ref().map_or(0, |header| header.revision);
        wait_for("every watcher's last event", || {
            (0..WATCHER_COUNT).all(|index| {
                let spec = spec(index);
                let target = if spec.range_end.is_some() {
                    top
                } else {
                    last_revisions[&spec.key]
                };
                nexts[index].load(Ordering::Relaxed) > target
            })
        })
        .await;
        eprintln!(
            "after the restart: {} upstream watchers",
            cluster_ref.watcher_count()
        );
        watching.stop.store(true, Ordering::Relaxed);
        for watcher in watchers {
            watcher.await.expect("the watcher runs");
        }

        // A watch from a compacted revision through the proxy is canceled with the compaction.
        kv.compact(pb::CompactionRequest {
            revision: top,
            physical: true,
        })
        .await
        .expect("compacts");
        let (requests, receiver) = tokio::sync::mpsc::channel(1);
        requests
            .send(pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: b"k".to_vec(),
                        range_end: b"l".to_vec(),
                        start_revision: 1,
                        ..Default::default()
                    },
                )),
            })
            .await
            .expect("sends");
        let mut watch = pb::watch_client::WatchClient::new(proxy_channel.clone());
        let mut stream = watch
            .watch(ReceiverStream::new(receiver))
            .await
            .expect("the proxy answers")
            .into_inner();
        let canceled = loop {
            let reply = tokio::time::timeout(Duration::from_secs(5), stream.message())
                .await
                .expect("an answer in time")
                .expect("no error")
                .expect("the stream stays open");
            if reply.canceled {
                break reply;
            }
        };
        assert_eq!(canceled.compact_revision, top, "{canceled:?}");
    });
    drop(proxy_process);

    let mut watches = watching.records.lock().expect("never poisoned").clone();
    watches.sort_by_key(|watch| watch.watch);
    let history = History {
        ops: recorder.history().ops,
        watches,
    };
    let resumed = history
        .watches
        .iter()
        .filter(|watch| watch.start_revision > 1)
        .count();
    let events: usize = history.watches.iter().map(|watch| watch.events.len()).sum();
    let bookmarks: usize = history
        .watches
        .iter()
        .map(|watch| watch.progress.len())
        .sum();
    eprintln!(
        "{} operations, {} watch streams ({resumed} resumed), {events} events, {bookmarks} bookmarks",
        history.ops.len(),
        history.watches.len()
    );
    assert!(
        resumed >= WATCHER_COUNT,
        "every watcher resumed after the restart"
    );
    assert!(bookmarks > 0, "progress requests were answered");
    let linear =
        checkers::linear::check_linearizable(&history, &checkers::linear::LinearConfig::default());
    assert_eq!(linear.verdict, Verdict::Ok);
    let verdict = checkers::watch::check_watches(&history, linear.linearization.as_ref());
    if verdict != Verdict::Ok {
        std::fs::write(
            cluster.root.join("watches.jsonl"),
            checkers::history::write_history(&history),
        )
        .expect("keeps the history");
    }
    assert_eq!(
        verdict,
        Verdict::Ok,
        "history kept under {}",
        cluster.root.display()
    );
}

/// Goal: keep-alives of one lease from many clients are coalesced, and a proxy whose cluster is
/// down answers `Unavailable` naming its endpoints, then serves again once a member is back.
/// Method: one member; an in-process proxy (to read its counters); 20 clients each send 5
/// keep-alives of one lease on their own streams at once: all are answered with the lease's
/// TTL, in fewer upstream keep-alives. etcdctl's put, get and lease commands work through the
/// proxy (when installed). Then the member is SIGKILLed: a put and a new watch through the
/// proxy fail with `Unavailable`; the member restarts on its data and a put succeeds again.
#[test]
fn keep_alives_coalesce_and_a_dead_cluster_is_reported_then_recovered() {
    const CLIENT_COUNT: usize = 20;
    const KEEP_ALIVES_PER_CLIENT: usize = 5;
    let mut cluster = Cluster::start("grpc-proxy-lease-test", 1);
    let runtime = runtime();
    let _context = runtime.enter();
    let proxy = proxy::GrpcProxy::new(&proxy::GrpcProxyConfig {
        endpoints: vec![cluster.endpoints(&[0])],
    })
    .expect("a proxy");
    let stats = proxy.stats();
    let (proxy_port, proxy_channel) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("has an address").port();
        tokio::spawn(proxy.serve(listener));
        (port, channel(port, Some(Duration::from_secs(3))))
    });
    let lease_id = runtime.block_on(async {
        let mut lease = pb::lease_client::LeaseClient::new(proxy_channel.clone());
        let started = tokio::time::Instant::now();
        loop {
            match lease
                .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 0 })
                .await
            {
                Ok(granted) => break granted.into_inner().id,
                Err(status) => assert!(
                    started.elapsed() < SETTLE_TIMEOUT,
                    "no lease through the proxy: {status}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    runtime.block_on(async {
        let clients: Vec<_> = (0..CLIENT_COUNT)
            .map(|_| {
                let channel = proxy_channel.clone();
                tokio::spawn(async move {
                    let (requests, receiver) = tokio::sync::mpsc::channel(KEEP_ALIVES_PER_CLIENT);
                    let mut lease = pb::lease_client::LeaseClient::new(channel);
                    let mut answers = lease
                        .lease_keep_alive(ReceiverStream::new(receiver))
                        .await
                        .expect("a keep-alive stream")
                        .into_inner();
                    for _ in 0..KEEP_ALIVES_PER_CLIENT {
                        requests
                            .send(pb::LeaseKeepAliveRequest { id: lease_id })
                            .await
                            .expect("sends");
                        let answer = answers
                            .message()
                            .await
                            .expect("no error")
                            .expect("an answer");
                        assert_eq!(answer.id, lease_id);
                        assert!((1..=30).contains(&answer.ttl), "{answer:?}");
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.expect("the client runs");
        }
    });
    let client_count = proxy::Stats::get(&stats.keep_alive_client_count);
    let upstream_count = proxy::Stats::get(&stats.keep_alive_upstream_count);
    eprintln!("{client_count} client keep-alives, {upstream_count} upstream");
    assert_eq!(client_count, (CLIENT_COUNT * KEEP_ALIVES_PER_CLIENT) as u64);
    assert!(
        upstream_count < client_count,
        "keep-alives were not coalesced"
    );

    let proxy_address = format!("127.0.0.1:{proxy_port}");
    if proxy_support::etcdctl_present() {
        proxy_support::eventually(&proxy_address, &["put", "via", "proxy"], "OK\n");
        proxy_support::eventually(&proxy_address, &["get", "via"], "via\nproxy\n");
        let (success, text) = proxy_support::etcdctl(
            &proxy_address,
            &["lease", "keep-alive", "--once", &format!("{lease_id:x}")],
        );
        assert!(success && text.contains("keepalived with TTL"), "{text}");
    }

    cluster.kill(0);
    runtime.block_on(async {
        let mut kv = pb::kv_client::KvClient::new(proxy_channel.clone());
        // The first put may still go out on the proxy's connection to the member just killed
        // and fail as a broken connection (a put is never retried after it may have been
        // sent); from then on the proxy knows no endpoint answers, and says so.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let status = kv
                .put(pb::PutRequest {
                    key: b"down".to_vec(),
                    ..Default::default()
                })
                .await
                .expect_err("no member is up");
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
            if status
                .message()
                .contains("no endpoint of the cluster answers")
                && status.message().contains(&cluster.endpoints(&[0]))
            {
                break;
            }
            assert!(
                attempts < 3,
                "no clear error after {attempts} puts: {status}"
            );
        }
        let (requests, receiver) = tokio::sync::mpsc::channel(1);
        requests
            .send(pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: b"down".to_vec(),
                        ..Default::default()
                    },
                )),
            })
            .await
            .expect("sends");
        let mut watch = pb::watch_client::WatchClient::new(proxy_channel.clone());
        let failure = match watch.watch(ReceiverStream::new(receiver)).await {
            Err(status) => status,
            Ok(stream) => stream
                .into_inner()
                .message()
                .await
                .expect_err("the watch cannot be created"),
        };
        assert_eq!(failure.code(), tonic::Code::Unavailable, "{failure}");
        assert!(failure.message().contains("no endpoint"), "{failure}");
    });

    cluster.restart(0);
    runtime.block_on(async {
        let mut kv = pb::kv_client::KvClient::new(proxy_channel.clone());
        let started = tokio::time::Instant::now();
        loop {
            let put = kv.put(pb::PutRequest {
                key: b"back".to_vec(),
                value: b"up".to_vec(),
                ..Default::default()
            });
            match put.await {
                Ok(_) => break,
                Err(status) => assert!(
                    started.elapsed() < SETTLE_TIMEOUT,
                    "the proxy never recovered: {status}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Goal: the proxy serves the Lock, Election and Auth services by passing them to the cluster
/// with the caller's token, as etcd's grpc-proxy does: a second Lock on a name waits until the
/// first is unlocked, a campaign's value is the leader and what Observe sees, and once auth is
/// enabled a put without a token is refused while one with the token Authenticate handed out
/// through the proxy is applied. Method: an in-process proxy before a one-member cluster,
/// driven with gRPC clients.
#[test]
fn lock_election_and_auth_pass_through_the_proxy() {
    use server::proto::v3electionpb as election;
    use server::proto::v3lockpb as lock;
    let cluster = Cluster::start("grpc-proxy-coordination-test", 1);
    let runtime = runtime();
    let _context = runtime.enter();
    let proxy = proxy::GrpcProxy::new(&proxy::GrpcProxyConfig {
        endpoints: vec![cluster.endpoints(&[0])],
    })
    .expect("a proxy");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("has an address").port();
        tokio::spawn(proxy.serve(listener));
        let channel = channel(port, Some(Duration::from_secs(10)));
        let leases = pb::lease_client::LeaseClient::new(channel.clone());
        let started = tokio::time::Instant::now();
        let grant = || {
            let mut leases = leases.clone();
            async move {
                loop {
                    match leases
                        .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
                        .await
                    {
                        Ok(granted) => return granted.into_inner().id,
                        Err(status) => assert!(
                            started.elapsed() < SETTLE_TIMEOUT,
                            "no lease through the proxy: {status}"
                        ),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let (first, second) = (grant().await, grant().await);

        let mut locks = lock::lock_client::LockClient::new(channel.clone());
        let held = locks
            .lock(lock::LockRequest {
                name: b"job".to_vec(),
                lease: first,
            })
            .await
            .expect("the first lock")
            .into_inner();
        assert_eq!(held.key, format!("job/{first:x}").into_bytes());
        let mut waiter = locks.clone();
        let waiting = tokio::spawn(async move {
            waiter
                .lock(lock::LockRequest {
                    name: b"job".to_vec(),
                    lease: second,
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!waiting.is_finished(), "the second lock did not wait");
        locks
            .unlock(lock::UnlockRequest { key: held.key })
            .await
            .expect("unlocks");
        let second_held = waiting.await.expect("runs").expect("the second lock");
        assert_eq!(
            second_held.into_inner().key,
            format!("job/{second:x}").into_bytes()
        );

        let mut elections = election::election_client::ElectionClient::new(channel.clone());
        elections
            .campaign(election::CampaignRequest {
                name: b"e".to_vec(),
                lease: first,
                value: b"v1".to_vec(),
            })
            .await
            .expect("campaigns");
        let leader = elections
            .leader(election::LeaderRequest {
                name: b"e".to_vec(),
            })
            .await
            .expect("a leader")
            .into_inner();
        assert_eq!(leader.kv.expect("a kv").value, b"v1");
        let mut observed = elections
            .observe(election::LeaderRequest {
                name: b"e".to_vec(),
            })
            .await
            .expect("observes")
            .into_inner();
        let first_seen = observed
            .message()
            .await
            .expect("no error")
            .expect("a leader");
        assert_eq!(first_seen.kv.expect("a kv").value, b"v1");

        let mut auth = pb::auth_client::AuthClient::new(channel.clone());
        auth.user_add(pb::AuthUserAddRequest {
            name: "root".into(),
            password: "rootpw".into(),
            ..Default::default()
        })
        .await
        .expect("adds root");
        auth.user_grant_role(pb::AuthUserGrantRoleRequest {
            user: "root".into(),
            role: "root".into(),
        })
        .await
        .expect("grants root");
        auth.auth_enable(pb::AuthEnableRequest {})
            .await
            .expect("enables auth");
        let mut kv = pb::kv_client::KvClient::new(channel.clone());
        let put = pb::PutRequest {
            key: b"guarded".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        };
        let refused = kv.put(put.clone()).await.expect_err("no token");
        assert!(
            refused.message().contains("user name is empty"),
            "{refused}"
        );
        let token = auth
            .authenticate(pb::AuthenticateRequest {
                name: "root".into(),
                password: "rootpw".into(),
            })
            .await
            .expect("authenticates")
            .into_inner()
            .token;
        let mut request = tonic::Request::new(put);
        request
            .metadata_mut()
            .insert("token", token.parse().expect("ASCII"));
        kv.put(request).await.expect("the token is passed on");
    });
}
