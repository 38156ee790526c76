//! The server through etcd's v3 gRPC API, with the generated clients: KV, txn, watch stream,
//! lease keep-alive stream, etcd's error codes and strings, and recovery from the data directory
//! after a restart. Each test starts an in-process server on a free loopback port.

use std::time::Duration;

use server::proto::etcdserverpb as pb;
use server::{serve_until, ServeConfig, ServeOutcome};
use tokio::sync::oneshot;
use tokio_stream::StreamExt as _;

/// A free loopback port (bound and released; a race with another process is possible but rare).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<ServeOutcome>>,
    endpoint: String,
}

async fn start(data_dir: &std::path::Path) -> Running {
    let port = free_port();
    let config = ServeConfig {
        data_dir: data_dir.to_path_buf(),
        listen_client_urls: format!("http://127.0.0.1:{port}"),
        listen_peer_urls: format!("http://127.0.0.1:{}", free_port()),
        ..ServeConfig::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(config, async {
        let _ = stopped.await;
    }));
    let endpoint = format!("http://127.0.0.1:{port}");
    // Wait until it accepts connections (and has elected itself).
    for _ in 0..100 {
        if let Ok(mut kv) = pb::kv_client::KvClient::connect(endpoint.clone()).await {
            let probe = pb::RangeRequest {
                key: b"probe".to_vec(),
                ..Default::default()
            };
            if kv.range(probe).await.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Running {
        stop,
        task,
        endpoint,
    }
}

async fn stop(running: Running) {
    let _ = running.stop.send(());
    let outcome = running.task.await.expect("joins").expect("serves");
    assert!(matches!(outcome, ServeOutcome::Stopped), "{outcome:?}");
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("detcd-server-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

/// Goal: a client's writes, reads, txns and compaction behave as etcd's, errors carry etcd's
/// codes and strings, and a restarted server recovers every acknowledged write from its data
/// directory. Method: drive one server with the generated KV client, stop it, start another on
/// the same directory and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_txn_compaction_and_recovery() {
    let dir = temp_dir("kv");
    let running = start(&dir).await;
    let mut kv = pb::kv_client::KvClient::connect(running.endpoint.clone())
        .await
        .expect("connects");
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        let put = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        kv.put(put).await.expect("put");
    }
    let range = kv
        .range(pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(range.count, 2);
    assert_eq!(range.kvs[0].value, b"3");
    assert_eq!(range.kvs[0].version, 2);
    assert_eq!(range.header.expect("header").revision, 4);
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            key: b"a".to_vec(),
            target: pb::compare::CompareTarget::Value as i32,
            result: pb::compare::CompareResult::Equal as i32,
            target_union: Some(pb::compare::TargetUnion::Value(b"3".to_vec())),
            ..Default::default()
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: b"a".to_vec(),
                value: b"4".to_vec(),
                ..Default::default()
            })),
        }],
        failure: Vec::new(),
    };
    assert!(kv.txn(txn).await.expect("txn").into_inner().succeeded);
    kv.compact(pb::CompactionRequest {
        revision: 4,
        physical: false,
    })
    .await
    .expect("compacts");
    let compacted = kv
        .range(pb::RangeRequest {
            key: b"a".to_vec(),
            revision: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(compacted.code(), tonic::Code::OutOfRange);
    assert_eq!(
        compacted.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let empty_key = kv.put(pb::PutRequest::default()).await.unwrap_err();
    assert_eq!(empty_key.message(), "etcdserver: key is not provided");
    stop(running).await;

    let running = start(&dir).await;
    let mut kv = pb::kv_client::KvClient::connect(running.endpoint.clone())
        .await
        .expect("connects");
    let range = kv
        .range(pb::RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range after restart")
        .into_inner();
    assert_eq!(
        range.kvs[0].value, b"4",
        "the txn's write survived the restart"
    );
    assert_eq!(range.header.expect("header").revision, 5);
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Goal: the watch stream confirms creation first, then delivers every change in order with
/// prev_kv, and a lease keep-alive stream answers each round. Method: open a watch, write and
/// delete, read the stream; grant a lease and keep it alive twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_lease_streams() {
    let dir = temp_dir("streams");
    let running = start(&dir).await;
    let endpoint = running.endpoint.clone();
    let mut watch = pb::watch_client::WatchClient::connect(endpoint.clone())
        .await
        .expect("connects");
    let (requests, receiver) = tokio::sync::mpsc::channel(4);
    requests
        .send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: b"w".to_vec(),
                    prev_kv: true,
                    ..Default::default()
                },
            )),
        })
        .await
        .expect("sends");
    let mut responses = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("watch")
        .into_inner();
    let created = responses.next().await.expect("a response").expect("ok");
    assert!(created.created && !created.canceled, "{created:?}");
    let mut kv = pb::kv_client::KvClient::connect(endpoint.clone())
        .await
        .expect("connects");
    kv.put(pb::PutRequest {
        key: b"w".to_vec(),
        value: b"1".to_vec(),
        ..Default::default()
    })
    .await
    .expect("put");
    kv.delete_range(pb::DeleteRangeRequest {
        key: b"w".to_vec(),
        ..Default::default()
    })
    .await
    .expect("delete");
    let mut events = Vec::new();
    while events.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(5), responses.next())
            .await
            .expect("events arrive")
            .expect("a response")
            .expect("ok");
        events.extend(response.events);
    }
    assert_eq!(events[0].r#type, 0, "a put first");
    assert_eq!(events[0].kv.as_ref().expect("kv").value, b"1");
    assert_eq!(events[1].r#type, 1, "then the delete");
    assert_eq!(events[1].prev_kv.as_ref().expect("prev_kv").value, b"1");

    let mut lease = pb::lease_client::LeaseClient::connect(endpoint)
        .await
        .expect("connects");
    let granted = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 10, id: 0 })
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(granted.ttl, 10);
    let (keepalives, receiver) = tokio::sync::mpsc::channel(4);
    let mut answers = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("keep-alive stream")
        .into_inner();
    for _ in 0..2 {
        keepalives
            .send(pb::LeaseKeepAliveRequest { id: granted.id })
            .await
            .expect("sends");
        let answer = answers.next().await.expect("an answer").expect("ok");
        assert_eq!((answer.id, answer.ttl), (granted.id, 10));
    }
    let missing = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: 999 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(missing.message(), "etcdserver: requested lease not found");
    drop(keepalives);
    stop(running).await;
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
