//! The server through a third-party client: the `etcd-client` crate (the Rust client of etcd's
//! v3 API), as an application would use it against etcd: KV, a txn, a watch stream (events
//! with previous values, a progress request) and a lease keep-alive stream. One in-process
//! server on a free loopback port.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use server::{serve_until, ServeConfig, ServeOutcome};
use tokio::sync::oneshot;

/// A free loopback port (bound and released; a race with another process is possible but rare).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Goal: an etcd v3 client written for etcd works unchanged against detcd. Method: one
/// server, the etcd-client crate's Client for every call, answers compared with what etcd
/// gives (revisions, previous values, txn branches, the watch's events in order, progress
/// notifications with the current revision, keep-alives with the TTL, an error's text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_client_crate_works_against_detcd() {
    let dir = std::env::temp_dir().join(format!("detcd-etcd-client-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let config = ServeConfig {
        data_dir: dir.clone(),
        listen_client_urls: format!("http://127.0.0.1:{port}"),
        listen_peer_urls: format!("http://127.0.0.1:{}", free_port()),
        ..ServeConfig::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(config, async {
        let _ = stopped.await;
    }));
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut client = None;
    // Wait until it accepts connections and has elected itself (a write succeeds).
    for _ in 0..200 {
        if let Ok(mut connected) = Client::connect([endpoint.as_str()], None).await {
            if connected.put("probe", "1", None).await.is_ok() {
                client = Some(connected);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("the server answers");

    // KV: a write's revision, a prefix read, a previous value.
    let put = client.put("app/a", "1", None).await.expect("puts");
    let first_revision = put.header().expect("a header").revision();
    client.put("app/b", "2", None).await.expect("puts");
    let replaced = client
        .put("app/a", "3", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("puts");
    assert_eq!(replaced.prev_key().map(|kv| kv.value()), Some(&b"1"[..]));
    let read = client
        .get("app/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("reads");
    let pairs: Vec<(&[u8], &[u8])> = read.kvs().iter().map(|kv| (kv.key(), kv.value())).collect();
    assert_eq!(pairs, vec![(&b"app/a"[..], &b"3"[..]), (b"app/b", b"2")]);
    assert_eq!(read.count(), 2);

    // A txn: the compare fails, so the else branch runs.
    let txn = Txn::new()
        .when([Compare::value("app/a", CompareOp::Equal, "1")])
        .and_then([TxnOp::put("app/c", "then", None)])
        .or_else([TxnOp::get("app/a", None)]);
    let answered = client.txn(txn).await.expect("txn");
    assert!(!answered.succeeded());
    assert_eq!(answered.op_responses().len(), 1);
    assert!(client
        .get("app/c", None)
        .await
        .expect("reads")
        .kvs()
        .is_empty());

    // A future revision is refused with etcd's text.
    let error = client
        .get("app/a", Some(GetOptions::new().with_revision(1_000_000)))
        .await
        .expect_err("a future revision");
    assert!(
        error
            .to_string()
            .contains("etcdserver: mvcc: required revision is a future revision"),
        "{error}"
    );

    // The watch stream: history from the first write with previous values, then live events,
    // then a progress notification at the current revision.
    let mut watch = client
        .watch(
            "app/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_prev_key()
                    .with_start_revision(first_revision),
            ),
        )
        .await
        .expect("watches");
    let mut seen = Vec::new();
    client.delete("app/b", None).await.expect("deletes");
    while seen.len() < 4 {
        let response = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("events arrive")
            .expect("the stream holds")
            .expect("the stream stays open");
        for event in response.events() {
            let kv = event.kv().expect("a key");
            let previous = event.prev_kv().map(|kv| kv.value().to_vec());
            seen.push((event.event_type(), kv.key().to_vec(), previous));
        }
    }
    assert_eq!(
        seen,
        vec![
            (EventType::Put, b"app/a".to_vec(), None),
            (EventType::Put, b"app/b".to_vec(), None),
            (EventType::Put, b"app/a".to_vec(), Some(b"1".to_vec())),
            (EventType::Delete, b"app/b".to_vec(), Some(b"2".to_vec())),
        ]
    );
    let current = client
        .get("app/a", None)
        .await
        .expect("reads")
        .header()
        .expect("a header")
        .revision();
    watch.request_progress().await.expect("asks for progress");
    let progress = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("progress arrives")
        .expect("the stream holds")
        .expect("the stream stays open");
    assert!(progress.events().is_empty());
    assert_eq!(progress.header().expect("a header").revision(), current);

    // The lease keep-alive stream: each keep-alive answers with the lease's TTL.
    let lease = client.lease_grant(7, None).await.expect("grants");
    client
        .put(
            "app/leased",
            "v",
            Some(PutOptions::new().with_lease(lease.id())),
        )
        .await
        .expect("puts with the lease");
    let (mut keeper, mut keep_alives) = client.lease_keep_alive(lease.id()).await.expect("streams");
    for _ in 0..3 {
        keeper.keep_alive().await.expect("sends");
        let answer = tokio::time::timeout(Duration::from_secs(5), keep_alives.message())
            .await
            .expect("an answer arrives")
            .expect("the stream holds")
            .expect("the stream stays open");
        assert_eq!((answer.id(), answer.ttl()), (lease.id(), 7));
    }
    client.lease_revoke(lease.id()).await.expect("revokes");
    assert!(client
        .get("app/leased", None)
        .await
        .expect("reads")
        .kvs()
        .is_empty());

    drop((watch, keeper, keep_alives, client));
    let _ = stop.send(());
    let outcome = task.await.expect("joins").expect("serves");
    assert!(matches!(outcome, ServeOutcome::Stopped), "{outcome:?}");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
