//! The HTTP/JSON gateway on the client port, driven as etcd's documentation drives it with curl:
//! POST a JSON body to `/v3/...` and read etcd's JSON back (base64 keys and values, 64-bit
//! integers as strings, the proto field names), beside gRPC on the same port. The expected
//! texts are what etcd 3.4 answered to the same requests (recorded from a real etcd; only the
//! ids differ). A plain HTTP/1.1 client over a TCP socket, so nothing hides what is on the wire.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use server::proto::etcdserverpb as pb;
use server::{serve_until, ServeConfig};
use tokio::sync::oneshot;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Sends one request with `Connection: close`; returns the status code and the (de-chunked) body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("writes");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reads the answer");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().expect("a status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

/// The answer with the header's ids replaced, so it compares with etcd's text.
fn without_ids(body: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(body).expect("JSON");
    if let Some(header) = value.get_mut("header").and_then(|h| h.as_object_mut()) {
        header.remove("cluster_id");
        header.remove("member_id");
        header.remove("raft_term");
    }
    value.to_string()
}

fn ok(port: u16, path: &str, body: &str) -> String {
    let (status, answer) = http(port, "POST", path, body);
    assert_eq!(status, 200, "{path} {body}: {answer}");
    answer
}

/// Goal: every call etcd's gateway documentation shows answers as etcd 3.4 does, errors carry
/// etcd's JSON shape, gRPC code and HTTP status, bad input is a 400 with code 3, unknown paths
/// are 404, and gRPC keeps working on the same port. Method: one in-process server; requests
/// over raw HTTP/1.1; answers compared as JSON with etcd's recorded ones (ids removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_as_etcd() {
    let dir = std::env::temp_dir().join(format!("detcd-gateway-{}", std::process::id()));
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
    let mut grpc_ready = false;
    for _ in 0..100 {
        if let Ok(mut kv) = pb::kv_client::KvClient::connect(endpoint.clone()).await {
            let probe = pb::RangeRequest {
                key: b"probe".to_vec(),
                ..Default::default()
            };
            if kv.range(probe).await.is_ok() {
                grpc_ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(grpc_ready, "gRPC answers on the shared port");

    let checks = tokio::task::spawn_blocking(move || {
        let put = ok(port, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
        assert_eq!(without_ids(&put), r#"{"header":{"revision":"2"}}"#);
        let range = ok(port, "/v3/kv/range", r#"{"key":"Zm9v"}"#);
        assert_eq!(
            without_ids(&range),
            r#"{"count":"1","header":{"revision":"2"},"kvs":[{"create_revision":"2","key":"Zm9v","mod_revision":"2","value":"YmFy","version":"1"}]}"#
        );
        // The exact bytes (field order included) as etcd writes them.
        assert!(range.contains(r#""kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#), "{range}");
        let count = ok(
            port,
            "/v3beta/kv/range",
            r#"{"key":"Zm9v","count_only":true}"#,
        );
        assert_eq!(
            without_ids(&count),
            r#"{"count":"1","header":{"revision":"2"}}"#
        );
        let txn = ok(
            port,
            "/v3/kv/txn",
            r#"{"compare":[{"target":"VALUE","key":"Zm9v","value":"YmFy"}],"success":[{"requestPut":{"key":"Zm9v","value":"YmF6"}}],"failure":[{"requestRange":{"key":"Zm9v"}}]}"#,
        );
        assert_eq!(
            without_ids(&txn),
            r#"{"header":{"revision":"3"},"responses":[{"response_put":{"header":{"revision":"3"}}}],"succeeded":true}"#
        );
        let delete = ok(
            port,
            "/v3/kv/deleterange",
            r#"{"key":"Zm9v","prev_kv":true}"#,
        );
        assert_eq!(
            without_ids(&delete),
            r#"{"deleted":"1","header":{"revision":"4"},"prev_kvs":[{"create_revision":"2","key":"Zm9v","mod_revision":"3","value":"YmF6","version":"2"}]}"#
        );
        let compaction = ok(port, "/v3/kv/compaction", r#"{"revision":"3"}"#);
        assert_eq!(without_ids(&compaction), r#"{"header":{"revision":"4"}}"#);
        let (status, compacted) = http(
            port,
            "POST",
            "/v3/kv/range",
            r#"{"key":"Zm9v","revision":2}"#,
        );
        assert_eq!(
            (status, compacted.as_str()),
            (
                400,
                r#"{"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11}"#
            )
        );

        let grant = ok(port, "/v3/lease/grant", r#"{"TTL":30,"ID":7}"#);
        assert_eq!(
            without_ids(&grant),
            r#"{"ID":"7","TTL":"30","header":{"revision":"4"}}"#
        );
        let (status, exists) = http(port, "POST", "/v3/lease/grant", r#"{"TTL":30,"ID":7}"#);
        assert_eq!(
            (status, exists.as_str()),
            (
                412,
                r#"{"error":"etcdserver: lease already exists","message":"etcdserver: lease already exists","code":9}"#
            )
        );
        let keepalive = ok(port, "/v3/lease/keepalive", r#"{"ID":7}"#);
        assert!(
            keepalive.starts_with(r#"{"result":{"header":"#)
                && keepalive.ends_with("\"ID\":\"7\",\"TTL\":\"30\"}}\n"),
            "{keepalive}"
        );
        let leases = ok(port, "/v3/lease/leases", "{}");
        assert!(leases.ends_with(r#""leases":[{"ID":"7"}]}"#), "{leases}");
        let (status, missing) = http(port, "POST", "/v3/kv/lease/revoke", r#"{"ID":8}"#);
        assert_eq!(
            (status, missing.as_str()),
            (
                404,
                r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#
            )
        );

        let members = ok(port, "/v3/cluster/member/list", "");
        assert!(
            members.contains(r#""name":"default","peerURLs":["#),
            "{members}"
        );
        assert!(
            members.contains(&format!(r#""clientURLs":["http://127.0.0.1:{port}"]"#)),
            "{members}"
        );
        let status = ok(port, "/v3/maintenance/status", "{}");
        assert!(
            status.contains(r#""raftIndex":""#) && status.contains(r#""leader":""#),
            "{status}"
        );

        // Bad input and unknown paths: clear errors, never a hang or a 500.
        for bad in [
            r#"{"key":"#,
            r#"{"key":"Zm9v!!"}"#,
            r#"{"key":12}"#,
            "[]",
            r#"{"sort_order":"BOGUS"}"#,
        ] {
            let (status, answer) = http(port, "POST", "/v3/kv/range", bad);
            assert_eq!(status, 400, "{bad}: {answer}");
            let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
            assert_eq!(answer["code"], 3, "{bad}: {answer}");
        }
        let (status, unknown_field) =
            http(port, "POST", "/v3/kv/range", r#"{"key":"Zm9v","newer":1}"#);
        assert_eq!(status, 200, "{unknown_field}");
        assert_eq!(
            http(port, "POST", "/v3/kv/nothing", "{}"),
            (404, "Not Found\n".into())
        );
        assert_eq!(
            http(port, "POST", "/v3alpha/kv/range", "{}"),
            (404, "404 page not found\n".into())
        );
        assert_eq!(http(port, "GET", "/v3/kv/range", "").0, 405);
    });
    checks.await.expect("the checks pass");

    // A watch streams one line per response and stays open after the request body ended.
    let watch = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        let body = r#"{"create_request":{"key":"Zm9v","start_revision":"4"}}"#;
        write!(
            stream,
            "POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("writes");
        let mut seen = String::new();
        let mut buffer = [0u8; 4096];
        let mut put_done = false;
        while !seen.contains("cXV4") {
            let read = stream.read(&mut buffer).expect("the stream stays open");
            assert!(read > 0, "the watch ended early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
            if seen.contains(r#""created":true"#) && !put_done {
                put_done = true;
                ok(port, "/v3/kv/put", r#"{"key":"Zm9v","value":"cXV4"}"#);
            }
        }
        seen
    });
    let seen = watch.await.expect("the watch sees the put");
    assert!(seen.contains(r#"{"result":{"header":"#), "{seen}");
    assert!(
        seen.contains(r#""events":[{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"4"}}]"#),
        "{seen}"
    );
    assert!(seen.contains(r#""events":[{"kv":{"key":"Zm9v","create_revision":"5","mod_revision":"5","version":"1","value":"cXV4"}}]"#), "{seen}");

    let _ = stop.send(());
    let _ = task.await;
    let _ = std::fs::remove_dir_all(&dir);
}
