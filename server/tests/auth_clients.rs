//! Auth as clients other than etcdctl see it: the `etcd-client` crate (token metadata from
//! its login, its error mapping, its token refresh), raw gRPC with a token no member issued,
//! and the HTTP/JSON gateway (`POST /v3/auth/authenticate`, then the token as the
//! `Authorization` header), over plain HTTP and over HTTPS with a client that verifies the
//! server against the CA and presents a certificate whose Common Name is the user. Expected
//! answers are etcd 3.4's (bodies as etcd 3.4.23's gateway writes them).
#![cfg(not(madsim))]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{AlarmAction, AlarmType, Client, ConnectOptions, Error, Permission, PutOptions};
use server::proto::etcdserverpb as pb;
use server::{serve_until, ServeConfig, ServeOutcome};
use tokio::sync::oneshot;
use tonic::Code;

/// How long a token lives without use in these tests (`--auth-token-ttl`).
const TOKEN_TTL_SECONDS: u64 = 2;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn test_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("detcd-auth-clients-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("makes the test directory");
    dir
}

/// A server in this process; `stop` ends it.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<ServeOutcome>>,
}

impl Running {
    fn start(config: ServeConfig) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_until(config, async {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let outcome = self.task.await.expect("the server task ends");
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}

fn config(dir: &Path, client_url: String) -> ServeConfig {
    ServeConfig {
        data_dir: dir.join("data"),
        listen_client_urls: client_url,
        listen_peer_urls: format!("http://127.0.0.1:{}", free_port()),
        bcrypt_cost: server::auth::BCRYPT_COST_MIN,
        auth_token_ttl_seconds: TOKEN_TTL_SECONDS,
        ..ServeConfig::default()
    }
}

/// The gRPC status inside an etcd-client error.
fn status(error: Error) -> (Code, String) {
    match error {
        Error::GRpcStatus(status) => (status.code(), status.message().to_string()),
        other => panic!("not a gRPC status: {other:?}"),
    }
}

/// Goal: etcd's token auth works for a gRPC client written for etcd, with etcd's codes and
/// texts, which the client maps: the token its login got writes inside the user's prefix and
/// is denied outside, a wrong password and no user are refused, maintenance needs the root
/// role, a token no member issued and an expired one are `etcdserver: invalid auth token`
/// (Unauthenticated, which etcd-client's token refresh keys on). Method: one in-process
/// server; etcd-client's Client for each user; a raw tonic client for a forged token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_client_crate_authenticates_with_tokens() {
    let dir = test_dir("grpc");
    let port = free_port();
    let server = Running::start(config(&dir, format!("http://127.0.0.1:{port}")));
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut anyone = None;
    for _ in 0..200 {
        if let Ok(mut client) = Client::connect([endpoint.as_str()], None).await {
            if client.put("probe", "1", None).await.is_ok() {
                anyone = Some(client);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut anyone = anyone.expect("the server answers");
    anyone.user_add("root", "rootpw", None).await.expect("adds");
    anyone
        .user_grant_role("root", "root")
        .await
        .expect("grants");
    anyone.role_add("app").await.expect("adds");
    let prefix = Permission::read_write("app/").with_prefix();
    anyone
        .role_grant_permission("app", prefix)
        .await
        .expect("grants");
    anyone
        .user_add("alice", "alicepw", None)
        .await
        .expect("adds");
    anyone
        .user_grant_role("alice", "app")
        .await
        .expect("grants");
    anyone.auth_enable().await.expect("enables");

    let login = |user: &str, password: &str| {
        ConnectOptions::new()
            .with_user(user, password)
            .with_timeout(Duration::from_secs(5))
    };
    let mut alice = Client::connect([endpoint.as_str()], Some(login("alice", "alicepw")))
        .await
        .expect("alice logs in");
    alice
        .put("app/x", "1", None)
        .await
        .expect("inside her prefix");
    let denied = alice.put("other", "1", None).await.expect_err("outside it");
    assert_eq!(
        status(denied),
        (
            Code::PermissionDenied,
            "etcdserver: permission denied".into()
        )
    );
    let wrong = Client::connect([endpoint.as_str()], Some(login("alice", "wrong"))).await;
    assert_eq!(
        status(wrong.err().expect("a wrong password is refused")),
        (
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password".into()
        )
    );
    let nobody = anyone.put("app/x", "2", None).await.expect_err("no user");
    assert_eq!(
        status(nobody),
        (
            Code::InvalidArgument,
            "etcdserver: user name is empty".into()
        )
    );

    // Maintenance: hashes need the root role (etcd returns the auth store's own error there),
    // changing alarms too (etcd's gRPC error), listing them and the status any user.
    let hash = alice
        .hash_kv(0)
        .await
        .expect_err("alice is no administrator");
    assert_eq!(
        status(hash),
        (Code::Unknown, "auth: permission denied".into())
    );
    let disarm = alice
        .alarm(AlarmAction::Deactivate, AlarmType::Nospace, None)
        .await
        .expect_err("alice may not clear alarms");
    assert_eq!(
        status(disarm),
        (
            Code::PermissionDenied,
            "etcdserver: permission denied".into()
        )
    );
    let listed = alice
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alice lists alarms");
    assert!(listed.alarms().is_empty());
    let listed = anyone.alarm(AlarmAction::Get, AlarmType::None, None).await;
    assert_eq!(
        status(listed.expect_err("nobody lists nothing")),
        (
            Code::InvalidArgument,
            "etcdserver: user name is empty".into()
        )
    );
    alice.status().await.expect("the status is open");
    let mut root = Client::connect([endpoint.as_str()], Some(login("root", "rootpw")))
        .await
        .expect("root logs in");
    root.hash_kv(0).await.expect("root hashes");

    // A token no member issued, sent as etcd's `token` metadata.
    let mut kv = pb::kv_client::KvClient::connect(endpoint.clone())
        .await
        .expect("connects");
    let mut forged = tonic::Request::new(pb::PutRequest {
        key: b"app/x".to_vec(),
        value: b"3".to_vec(),
        ..Default::default()
    });
    forged
        .metadata_mut()
        .insert("token", "forgedforgedforged".parse().expect("ascii"));
    let refused = kv.put(forged).await.expect_err("a forged token");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::Unauthenticated, "etcdserver: invalid auth token")
    );

    // Idle past the TTL: the token is gone. A client that refreshes expired tokens logs in
    // again on etcd's answer and succeeds.
    let mut refreshing = Client::connect(
        [endpoint.as_str()],
        Some(login("alice", "alicepw").with_auto_token_refresh(true)),
    )
    .await
    .expect("alice logs in again");
    tokio::time::sleep(Duration::from_millis(TOKEN_TTL_SECONDS * 1000 + 1500)).await;
    let expired = alice.put("app/x", "4", None).await.expect_err("expired");
    assert_eq!(
        status(expired),
        (
            Code::Unauthenticated,
            "etcdserver: invalid auth token".into()
        )
    );
    let put = refreshing
        .put("app/x", "5", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("a refreshed token writes");
    assert_eq!(put.prev_key().map(|kv| kv.value()), Some(&b"1"[..]));

    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// One HTTP/1.1 POST with `Connection: close` over `stream`; returns the status code and the
/// de-chunked body.
fn post_over(
    mut stream: impl std::io::Read + std::io::Write,
    token: Option<&str>,
    path: &str,
    body: &str,
) -> (u16, String) {
    let authorization = token.map_or(String::new(), |token| format!("Authorization: {token}\r\n"));
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{authorization}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("writes");
    let mut raw = Vec::new();
    // rustls reports a peer that closed without close_notify as an error after the data.
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {text:?}"));
    let code = head[9..12].parse().expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        code,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        },
    )
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

fn tcp(port: u16) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    stream
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{body:?}: {error}"))
}

/// Sends (token, path, body) to the gateway; returns the status code and the body.
type Post<'a> = &'a dyn Fn(Option<&str>, &str, &str) -> (u16, String);

/// Root, and alice with read-write on `app/`, through the gateway; then auth enabled.
fn set_up_through_the_gateway(post: Post<'_>) {
    let steps = [
        (
            "/v3/auth/user/add",
            r#"{"name":"root","password":"rootpw"}"#,
        ),
        ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
        ("/v3/auth/role/add", r#"{"name":"app"}"#),
        (
            "/v3/auth/role/grant",
            r#"{"name":"app","perm":{"permType":"READWRITE","key":"YXBwLw==","range_end":"YXBwMA=="}}"#,
        ),
        (
            "/v3/auth/user/add",
            r#"{"name":"alice","password":"alicepw"}"#,
        ),
        ("/v3/auth/user/grant", r#"{"user":"alice","role":"app"}"#),
        ("/v3/auth/enable", "{}"),
    ];
    for (path, body) in steps {
        let (code, answer) = post(None, path, body);
        assert_eq!(code, 200, "{path} {body}: {answer}");
    }
}

/// etcd's JSON body for a refused unary call.
fn error_body(message: &str, code: Code) -> String {
    format!(
        r#"{{"error":"{message}","message":"{message}","code":{}}}"#,
        code as i32
    )
}

// Keys as base64: `app/x`, `other`.
const PUT_INSIDE: &str = r#"{"key":"YXBwL3g=","value":"MQ=="}"#;
const PUT_OUTSIDE: &str = r#"{"key":"b3RoZXI=","value":"MQ=="}"#;

/// Goal: a JSON client of the gateway authenticates as with etcd: `auth/authenticate` gives a
/// token, which as the `Authorization` header writes inside the user's prefix and is refused
/// outside it, with etcd's HTTP status and body; no token, a forged one and a wrong password
/// likewise. Method: one in-process server; raw HTTP/1.1 over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_takes_the_token_as_the_authorization_header() {
    let dir = test_dir("gateway");
    let port = free_port();
    let server = Running::start(config(&dir, format!("http://127.0.0.1:{port}")));
    let checks = tokio::task::spawn_blocking(move || {
        let post =
            |token: Option<&str>, path: &str, body: &str| post_over(tcp(port), token, path, body);
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && post(None, "/v3/kv/put", r#"{"key":"cHJvYmU="}"#).0 == 200
        });
        assert!(up, "the gateway answers");
        set_up_through_the_gateway(&post);

        let (code, body) = post(
            None,
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"alicepw"}"#,
        );
        assert_eq!(code, 200, "{body}");
        let token = json(&body)["token"].as_str().expect("a token").to_string();
        let (code, body) = post(Some(&token), "/v3/kv/put", PUT_INSIDE);
        assert_eq!(code, 200, "{body}");
        assert!(json(&body)["header"]["revision"].is_string(), "{body}");
        let (code, body) = post(Some(&token), "/v3/kv/put", PUT_OUTSIDE);
        assert_eq!(
            (code, body),
            (
                403,
                error_body("etcdserver: permission denied", Code::PermissionDenied)
            )
        );
        let (code, body) = post(Some("forged"), "/v3/kv/put", PUT_INSIDE);
        assert_eq!(
            (code, body),
            (
                401,
                error_body("etcdserver: invalid auth token", Code::Unauthenticated)
            )
        );
        let (code, body) = post(None, "/v3/kv/put", PUT_INSIDE);
        assert_eq!(
            (code, body),
            (
                400,
                error_body("etcdserver: user name is empty", Code::InvalidArgument)
            )
        );
        let (code, body) = post(
            None,
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"wrong"}"#,
        );
        assert_eq!(
            (code, body),
            (
                400,
                error_body(
                    "etcdserver: authentication failed, invalid user ID or password",
                    Code::InvalidArgument
                )
            )
        );
        // alice's token reads back what it wrote.
        let (code, body) = post(Some(&token), "/v3/kv/range", r#"{"key":"YXBwL3g="}"#);
        assert_eq!(code, 200, "{body}");
        assert_eq!(json(&body)["kvs"][0]["value"], "MQ==", "{body}");
    })
    .await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    checks.expect("the checks pass");
}

/// A CA, and certificates it signs for 127.0.0.1, written into a directory.
struct Authority {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl Authority {
    fn new(dir: &Path, name: &str) -> Authority {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().expect("a key");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        std::fs::write(dir.join(format!("{name}.crt")), issuer.pem()).expect("writes");
        Authority {
            issuer,
            dir: dir.to_path_buf(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `common_name`, for servers and clients; (cert file, key file).
    fn issue(&self, common_name: &str) -> (PathBuf, PathBuf) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose};
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signs");
        let cert_file = self.dir.join(format!("{common_name}.crt"));
        let key_file = self.dir.join(format!("{common_name}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("writes");
        std::fs::write(&key_file, key.serialize_pem()).expect("writes");
        (cert_file, key_file)
    }
}

/// rustls over *ring*, as the server uses it.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client that trusts `ca_pem` only and presents the certificate in `identity`.
fn tls_client(ca_pem: &str, identity: (&Path, &Path)) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("a CA");
    }
    let certs = CertificateDer::pem_file_iter(identity.0)
        .expect("reads")
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM");
    let key = PrivateKeyDer::from_pem_file(identity.1).expect("a key");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("a client certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to 127.0.0.1:`port` (its handshake runs on first use).
fn tls(port: u16, config: &Arc<rustls::ClientConfig>) -> impl std::io::Read + std::io::Write {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("an IP name");
    let connection = rustls::ClientConnection::new(config.clone(), name).expect("a connection");
    rustls::StreamOwned::new(connection, tcp(port))
}

/// Goal: the gateway over HTTPS serves a client that verifies the server against the CA, and
/// with --client-cert-auth the certificate's Common Name is the user when no token is sent
/// (as etcd does): alice's certificate writes inside her prefix and is refused outside it with
/// etcd's body, a token from `auth/authenticate` outranks the certificate, and a client that
/// trusts another CA does not get through. Method: one in-process server on an https URL; a
/// rustls client speaking HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_over_https_takes_the_certificate_or_the_token() {
    let dir = test_dir("https");
    let ca = Authority::new(&dir, "ca");
    let (server_cert, server_key) = ca.issue("server");
    let root_identity = ca.issue("root");
    let alice_identity = ca.issue("alice");
    let stranger = Authority::new(&dir, "stranger");
    let port = free_port();
    let mut config = config(&dir, format!("https://127.0.0.1:{port}"));
    config.client_tls = server::tls::TlsFiles {
        cert_file: Some(server_cert),
        key_file: Some(server_key),
        trusted_ca_file: Some(dir.join("ca.crt")),
        client_cert_auth: true,
    };
    let server = Running::start(config);
    let ca_pem = ca.pem();
    let stranger_pem = stranger.pem();
    let checks = tokio::task::spawn_blocking(move || {
        let root = tls_client(&ca_pem, (&root_identity.0, &root_identity.1));
        let alice = tls_client(&ca_pem, (&alice_identity.0, &alice_identity.1));
        let as_root = |token: Option<&str>, path: &str, body: &str| {
            post_over(tls(port, &root), token, path, body)
        };
        let as_alice = |token: Option<&str>, path: &str, body: &str| {
            post_over(tls(port, &alice), token, path, body)
        };
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && as_root(None, "/v3/kv/put", r#"{"key":"cHJvYmU="}"#).0 == 200
        });
        assert!(up, "the gateway answers over https");
        set_up_through_the_gateway(&as_root);

        // alice's certificate, no token: her prefix only.
        let (code, body) = as_alice(None, "/v3/kv/put", PUT_INSIDE);
        assert_eq!(code, 200, "{body}");
        let (code, body) = as_alice(None, "/v3/kv/put", PUT_OUTSIDE);
        assert_eq!(
            (code, body),
            (
                403,
                error_body("etcdserver: permission denied", Code::PermissionDenied)
            )
        );
        // root's token, sent on alice's connection, outranks her certificate.
        let (code, body) = as_alice(
            None,
            "/v3/auth/authenticate",
            r#"{"name":"root","password":"rootpw"}"#,
        );
        assert_eq!(code, 200, "{body}");
        let token = json(&body)["token"].as_str().expect("a token").to_string();
        let (code, body) = as_alice(Some(&token), "/v3/kv/put", PUT_OUTSIDE);
        assert_eq!(code, 200, "{body}");
        // root's certificate administers without a password.
        let (code, body) = as_root(None, "/v3/auth/user/list", "{}");
        assert_eq!(code, 200, "{body}");
        assert_eq!(json(&body)["users"], serde_json::json!(["alice", "root"]));

        // A client that trusts another CA refuses the server: nothing is answered.
        let distrustful = tls_client(&stranger_pem, (&alice_identity.0, &alice_identity.1));
        let mut stream = tls(port, &distrustful);
        let written = write!(
            stream,
            "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .and_then(|()| stream.flush());
        let error = written.expect_err("the handshake fails");
        assert!(
            error.to_string().contains("UnknownIssuer"),
            "the server's certificate is refused as unknown: {error}"
        );
    })
    .await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    checks.expect("the checks pass");
}
