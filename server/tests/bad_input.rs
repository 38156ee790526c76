//! Bad input and failure, through the server as clients and operators meet it: each gets a
//! clear error and loses nothing acknowledged. Oversized and malformed requests, an unknown
//! lease, compacted and future revisions, a txn over `--max-txn-ops`, a client that goes away
//! mid-stream (its watch is cancelled: the watcher gauge on `/metrics` falls back), `/health`,
//! and data directories with a torn WAL tail (repaired) or a corrupt record in the middle
//! (refused, naming file and offset). Each test starts in-process servers on free ports.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use server::proto::etcdserverpb as pb;
use server::{serve_until, ServeConfig, ServeOutcome};
use tokio::sync::oneshot;
use tokio_stream::StreamExt as _;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("detcd-bad-input-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<ServeOutcome>>,
    endpoint: String,
    metrics_port: u16,
}

fn config(data_dir: &std::path::Path, port: u16, metrics_port: u16) -> ServeConfig {
    ServeConfig {
        data_dir: data_dir.to_path_buf(),
        listen_client_urls: format!("http://127.0.0.1:{port}"),
        listen_peer_urls: format!("http://127.0.0.1:{}", free_port()),
        listen_metrics_urls: Some(format!("http://127.0.0.1:{metrics_port}")),
        max_request_bytes: 4096,
        max_txn_ops: 3,
        heartbeat_interval_ms: 20,
        election_timeout_ms: 200,
        ..ServeConfig::default()
    }
}

async fn start(data_dir: &std::path::Path) -> Running {
    let (port, metrics_port) = (free_port(), free_port());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(config(data_dir, port, metrics_port), async {
        let _ = stopped.await;
    }));
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(mut kv) = pb::kv_client::KvClient::connect(endpoint.clone()).await {
            let probe = pb::RangeRequest {
                key: b"probe".to_vec(),
                ..Default::default()
            };
            if kv.range(probe).await.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Running {
        stop,
        task,
        endpoint,
        metrics_port,
    }
}

async fn stop(running: Running) {
    let _ = running.stop.send(());
    let outcome = running.task.await.expect("joins").expect("serves");
    assert!(matches!(outcome, ServeOutcome::Stopped), "{outcome:?}");
}

/// A plain HTTP/1.0 GET; returns the status line and the body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("writes");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("reads");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

fn metric(port: u16, name: &str) -> i64 {
    let (_, body) = http_get(port, "/metrics");
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics: {body}"))
}

/// Goal: every bad request gets etcd's code and text, and the server keeps serving.
/// Method: send each to one server, then a good write and read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let dir = temp_dir("requests");
    let running = start(&dir).await;
    let mut kv = pb::kv_client::KvClient::connect(running.endpoint.clone())
        .await
        .expect("connects");
    let put = |key: &str, value: Vec<u8>| pb::PutRequest {
        key: key.as_bytes().to_vec(),
        value,
        ..Default::default()
    };
    let too_large = kv.put(put("big", vec![b'x'; 8192])).await.unwrap_err();
    assert_eq!(too_large.code(), tonic::Code::InvalidArgument);
    assert_eq!(too_large.message(), "etcdserver: request is too large");

    let malformed = pb::TxnRequest {
        compare: vec![pb::Compare {
            key: b"a".to_vec(),
            target: 99,
            ..Default::default()
        }],
        ..Default::default()
    };
    let malformed = kv.txn(malformed).await.unwrap_err();
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
    assert_eq!(
        malformed.message(),
        "etcdserver: unknown compare target 99 or result 0"
    );
    let mismatched = pb::TxnRequest {
        compare: vec![pb::Compare {
            key: b"a".to_vec(),
            target: pb::compare::CompareTarget::Value as i32,
            target_union: Some(pb::compare::TargetUnion::Version(3)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mismatched = kv.txn(mismatched).await.unwrap_err();
    assert_eq!(
        mismatched.message(),
        "etcdserver: a compare's target does not match its value"
    );

    let unknown_lease = pb::PutRequest {
        lease: 777,
        ..put("k", b"v".to_vec())
    };
    let unknown_lease = kv.put(unknown_lease).await.unwrap_err();
    assert_eq!(unknown_lease.code(), tonic::Code::NotFound);
    assert_eq!(
        unknown_lease.message(),
        "etcdserver: requested lease not found"
    );
    let mut lease = pb::lease_client::LeaseClient::connect(running.endpoint.clone())
        .await
        .expect("connects");
    let revoke = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: 778 })
        .await
        .unwrap_err();
    assert_eq!(revoke.message(), "etcdserver: requested lease not found");

    let ops = (0..4)
        .map(|index| pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(put(
                &format!("k{index}"),
                b"v".to_vec(),
            ))),
        })
        .collect();
    let too_many = kv
        .txn(pb::TxnRequest {
            success: ops,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        too_many.message(),
        "etcdserver: too many operations in txn request"
    );

    for value in ["1", "2", "3"] {
        kv.put(put("a", value.as_bytes().to_vec()))
            .await
            .expect("put");
    }
    kv.compact(pb::CompactionRequest {
        revision: 3,
        ..Default::default()
    })
    .await
    .expect("compacts");
    let at = |revision: i64| pb::RangeRequest {
        key: b"a".to_vec(),
        revision,
        ..Default::default()
    };
    let compacted = kv.range(at(2)).await.unwrap_err();
    assert_eq!(compacted.code(), tonic::Code::OutOfRange);
    assert_eq!(
        compacted.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let future = kv.range(at(99)).await.unwrap_err();
    assert_eq!(future.code(), tonic::Code::OutOfRange);
    assert_eq!(
        future.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    let latest = kv.range(at(0)).await.expect("reads").into_inner();
    assert_eq!(latest.kvs[0].value, b"3");
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Goal: a client that goes away mid-stream costs nothing: its watch is cancelled in the
/// member, and `/health` and `/metrics` tell the truth. Method: open a watch, see the watcher
/// gauge at 1, drop the client, write to the key (the failed delivery cancels the watch), and
/// see the gauge back at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_stream_and_observability() {
    let dir = temp_dir("stream");
    let running = start(&dir).await;
    let port = running.metrics_port;
    let (status, body) = http_get(port, "/health");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "{\"health\":\"true\"}");
    // The client runs on its own runtime: dropping the runtime closes its connection, as a
    // client process that dies does.
    let endpoint = running.endpoint.clone();
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let mut watch = pb::watch_client::WatchClient::connect(endpoint)
                .await
                .expect("connects");
            let create = pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: b"w".to_vec(),
                        ..Default::default()
                    },
                )),
            };
            let mut responses = watch
                .watch(tokio_stream::iter([create]).chain(tokio_stream::pending()))
                .await
                .expect("watches")
                .into_inner();
            let created = responses
                .next()
                .await
                .expect("a response")
                .expect("created");
            assert!(created.created);
            assert_eq!(metric(port, "etcd_debugging_mvcc_watcher_total"), 1);
        });
    });
    client.join().expect("the client ran");
    let mut kv = pb::kv_client::KvClient::connect(running.endpoint.clone())
        .await
        .expect("connects");
    let mut watchers = metric(port, "etcd_debugging_mvcc_watcher_total");
    for attempt in 0..50 {
        let put = pb::PutRequest {
            key: b"w".to_vec(),
            value: format!("{attempt}").into_bytes(),
            ..Default::default()
        };
        kv.put(put).await.expect("the server keeps serving");
        watchers = metric(port, "etcd_debugging_mvcc_watcher_total");
        if watchers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(watchers, 0, "the gone client's watch was cancelled");
    assert_eq!(metric(port, "etcd_server_has_leader"), 1);
    assert!(metric(port, "etcd_server_proposals_applied_total") >= 2);
    assert!(metric(port, "etcd_mvcc_db_total_size_in_bytes") > 0);
    let (_, body) = http_get(port, "/metrics");
    assert!(
        body.contains("etcd_disk_wal_fsync_duration_seconds_count "),
        "{body}"
    );
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// The newest WAL segment of a data directory.
fn newest_segment(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("lists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("wal-") && name.ends_with(".log"))
        })
        .max()
        .expect("a WAL segment")
}

async fn write_keys(dir: &std::path::Path) {
    let running = start(dir).await;
    let mut kv = pb::kv_client::KvClient::connect(running.endpoint.clone())
        .await
        .expect("connects");
    for index in 0..6 {
        let put = pb::PutRequest {
            key: format!("key{index}").into_bytes(),
            value: b"value".to_vec(),
            ..Default::default()
        };
        kv.put(put).await.expect("put");
    }
    stop(running).await;
}

/// Goal: a torn WAL tail is repaired at start and every acknowledged write is kept; a
/// damaged record in the middle refuses the start with an error naming the file and offset.
/// Method: write keys, stop; append half a record; restart and read; then flip a byte in the
/// middle of the segment and start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_repaired_corrupt_middle_refused() {
    let dir = temp_dir("wal");
    write_keys(&dir).await;
    let segment = newest_segment(&dir);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("opens");
    file.write_all(&[0x21; 7]).expect("appends");
    drop(file);
    let running = start(&dir).await;
    let mut kv = pb::kv_client::KvClient::connect(running.endpoint.clone())
        .await
        .expect("connects");
    let all = kv
        .range(pb::RangeRequest {
            key: b"key".to_vec(),
            range_end: b"kez".to_vec(),
            ..Default::default()
        })
        .await
        .expect("reads")
        .into_inner();
    assert_eq!(all.count, 6, "every acknowledged write survived the repair");
    stop(running).await;
    assert!(
        !std::fs::read(&segment)
            .expect("reads")
            .ends_with(&[0x21; 7]),
        "the torn tail was cut off on disk"
    );

    let mut bytes = std::fs::read(&segment).expect("reads");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, &bytes).expect("writes");
    let outcome = serve_until(config(&dir, free_port(), free_port()), async {}).await;
    let error = outcome
        .expect_err("a WAL corrupt in the middle must not start")
        .to_string();
    let name = segment
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a name");
    assert!(
        error.contains(name) && error.contains("offset"),
        "the refusal names file and offset: {error}"
    );
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
