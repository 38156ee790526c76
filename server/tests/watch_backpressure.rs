//! Watch backpressure: a watcher that stops reading while many writes happen gets every event
//! once it reads again, in order and with no gap, while the server holds only a bounded buffer
//! for it (its stream's buffer fills, the engine pauses the watch and later feeds it from its
//! own buffer and from MVCC history). One in-process server on free loopback ports.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use server::proto::etcdserverpb as pb;
use server::{serve_until, ServeConfig, ServeOutcome};
use tokio::sync::oneshot;
use tokio_stream::StreamExt as _;

/// Writes made while the watcher does not read.
const WRITES_COUNT: usize = 1500;
/// Bytes per written value: the writes (6 MB) overflow every buffer on the way (HTTP/2 windows,
/// the stream's channel and buffer) so that the server has to push back.
const VALUE_BYTES: usize = 4096;
/// Writers at once.
const WRITERS_COUNT: usize = 8;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A metric's value from `/metrics` (plain HTTP/1.0).
fn metric(port: u16, name: &str) -> i64 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("writes");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("reads");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics: {text}"))
}

/// Goal: a slow reader gets backpressure, never a gap. Method: open a watch on a prefix and do
/// not read it; write 1500 keys of 4 KiB from 8 writers; check the server paused the watch
/// (its counter on /metrics); then read: every revision from the first write to the last
/// arrives once, in order, with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_stops_reading_misses_nothing() {
    let dir = std::env::temp_dir().join(format!("detcd-backpressure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (port, metrics_port) = (free_port(), free_port());
    let config = ServeConfig {
        data_dir: dir.clone(),
        listen_client_urls: format!("http://127.0.0.1:{port}"),
        listen_peer_urls: format!("http://127.0.0.1:{}", free_port()),
        listen_metrics_urls: Some(format!("http://127.0.0.1:{metrics_port}")),
        ..ServeConfig::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(config, async {
        let _ = stopped.await;
    }));
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut first_revision = 0;
    for _ in 0..200 {
        if let Ok(mut kv) = pb::kv_client::KvClient::connect(endpoint.clone()).await {
            let probe = pb::PutRequest {
                key: b"probe".to_vec(),
                ..Default::default()
            };
            if let Ok(put) = kv.put(probe).await {
                first_revision = put.into_inner().header.expect("a header").revision + 1;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(first_revision > 0, "the server answers");

    let mut watch = pb::watch_client::WatchClient::connect(endpoint.clone())
        .await
        .expect("connects");
    let (requests, receiver) = tokio::sync::mpsc::channel(4);
    requests
        .send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: b"bp/".to_vec(),
                    range_end: b"bp0".to_vec(),
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

    // Writes while nobody reads the watch.
    let mut writers = Vec::new();
    for writer in 0..WRITERS_COUNT {
        let endpoint = endpoint.clone();
        writers.push(tokio::spawn(async move {
            let mut kv = pb::kv_client::KvClient::connect(endpoint)
                .await
                .expect("connects");
            for index in (writer..WRITES_COUNT).step_by(WRITERS_COUNT) {
                let put = pb::PutRequest {
                    key: format!("bp/{index:05}").into_bytes(),
                    value: vec![(index % 251) as u8; VALUE_BYTES],
                    ..Default::default()
                };
                kv.put(put).await.expect("writes");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("the writer finishes");
    }
    let last_revision = first_revision + WRITES_COUNT as i64 - 1;
    assert!(
        metric(metrics_port, "detcd_server_watch_stream_full_total") > 0,
        "the stream never filled: the test did not exercise backpressure"
    );

    let created = responses.next().await.expect("a response").expect("ok");
    assert!(created.created && !created.canceled, "{created:?}");
    let mut next_revision = first_revision;
    while next_revision <= last_revision {
        let response = tokio::time::timeout(Duration::from_secs(20), responses.next())
            .await
            .expect("events keep coming")
            .expect("the stream stays open")
            .expect("ok");
        assert!(!response.canceled, "{:?}", response.cancel_reason);
        for event in response.events {
            let kv = event.kv.expect("a key");
            assert_eq!(kv.mod_revision, next_revision, "no gap, no repeat");
            let index: usize = String::from_utf8_lossy(&kv.key[3..])
                .parse()
                .expect("a key");
            assert_eq!(kv.value, vec![(index % 251) as u8; VALUE_BYTES]);
            next_revision += 1;
        }
    }
    assert_eq!(next_revision, last_revision + 1);

    drop((requests, responses, watch));
    let _ = stop.send(());
    let outcome = task.await.expect("joins").expect("serves");
    assert!(matches!(outcome, ServeOutcome::Stopped), "{outcome:?}");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
