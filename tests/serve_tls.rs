//! `detcd serve` over TLS, driven by etcdctl 3.4 as etcd would be: a one-member server on an
//! https client URL with client-cert auth answers etcdctl with `--cacert/--cert/--key`, and
//! refuses a client without a certificate and one whose certificate another CA signed; a
//! three-member cluster with https peer URLs and peer client-cert auth elects a leader and
//! replicates a put; bad TLS flags fail the start with the flag and file named.
//!
//! Every certificate and key is made at test time with rcgen, in a temporary directory.
//! Without etcdctl on PATH the etcdctl tests say so and pass, except under CI (`CI=true`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// How long a read or write may keep failing while a server starts or a cluster elects.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

fn etcdctl_present() -> bool {
    let present = Command::new("etcdctl")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !present {
        assert!(
            std::env::var("CI").is_err(),
            "etcdctl is missing under CI: .ci/run must install etcd-client"
        );
        eprintln!("etcdctl is not installed: skipping (apt-get install etcd-client to run this)");
    }
    present
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detcd-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("makes the test directory");
    dir
}

/// A CA that signs certificates into `dir`.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

impl Authority {
    /// A new CA; its certificate is `<dir>/<name>.crt`.
    fn new(dir: &Path, name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key"))
            .expect("a CA certificate");
        std::fs::write(dir.join(format!("{name}.crt")), issuer.pem()).expect("writes");
        Authority {
            issuer,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}.crt", self.name))
    }

    /// A certificate for `common_name` valid for 127.0.0.1 and localhost, for servers and
    /// clients alike (etcd's peers use one certificate both ways); returns (cert, key) files.
    fn issue(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signs");
        let cert_file = self.dir.join(format!("{common_name}.crt"));
        let key_file = self.dir.join(format!("{common_name}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("writes");
        std::fs::write(&key_file, key.serialize_pem()).expect("writes");
        (cert_file, key_file)
    }
}

/// One server process; killed when dropped.
struct Member {
    child: Child,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn detcd_serve(args: &[String], log: &Path) -> Member {
    let child = Command::new(env!("CARGO_BIN_EXE_detcd"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).map_or_else(|_| Stdio::null(), Stdio::from))
        .spawn()
        .expect("detcd serve starts");
    Member { child }
}

/// Runs etcdctl against `https://127.0.0.1:port` with `tls` flags; returns (success, output).
fn etcdctl(port: u16, tls: &[String], args: &[&str]) -> (bool, String) {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://127.0.0.1:{port}"))
        .arg("--command-timeout=3s")
        .arg("--dial-timeout=2s")
        .args(tls)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("etcdctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn eventually(port: u16, tls: &[String], args: &[&str], expected: &str) {
    let started = Instant::now();
    loop {
        let (success, text) = etcdctl(port, tls, args);
        if success && text == expected {
            return;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "etcdctl {args:?} on port {port} never printed {expected:?}; last: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn client_flags(ca: &Path, cert: &Path, key: &Path) -> Vec<String> {
    vec![
        format!("--cacert={}", ca.display()),
        format!("--cert={}", cert.display()),
        format!("--key={}", key.display()),
    ]
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

/// Goal: a client over TLS with a certificate the trusted CA signed is served; one without a
/// certificate, and one whose certificate another CA signed, are refused; the CA-verified
/// connection answers put and get as etcd does. Method: a one-member server on an https URL
/// with --client-cert-auth; etcdctl with each set of credentials.
#[test]
fn one_member_over_https_with_client_cert_auth() {
    if !etcdctl_present() {
        return;
    }
    let dir = test_dir("one");
    let ca = Authority::new(&dir, "ca");
    let (server_cert, server_key) = ca.issue("server");
    let (client_cert, client_key) = ca.issue("root");
    let stranger = Authority::new(&dir, "stranger-ca");
    let (stranger_cert, stranger_key) = stranger.issue("mallory");
    let port = free_port();
    let peer_port = free_port();
    let _member = detcd_serve(
        &[
            "--data-dir".into(),
            path(&dir.join("data")),
            "--listen-client-urls".into(),
            format!("https://127.0.0.1:{port}"),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--cert-file".into(),
            path(&server_cert),
            "--key-file".into(),
            path(&server_key),
            "--trusted-ca-file".into(),
            path(&ca.ca_file()),
            "--client-cert-auth".into(),
        ],
        &dir.join("server.log"),
    );
    let good = client_flags(&ca.ca_file(), &client_cert, &client_key);
    eventually(port, &good, &["put", "foo", "bar"], "OK\n");
    eventually(port, &good, &["get", "foo"], "foo\nbar\n");

    // No client certificate: the handshake is refused, so nothing is served.
    let no_cert = vec![format!("--cacert={}", ca.ca_file().display())];
    let (success, text) = etcdctl(port, &no_cert, &["get", "foo"]);
    assert!(
        !success,
        "a client without a certificate was served: {text}"
    );
    assert!(!text.contains("bar"), "{text}");
    // A certificate another CA signed is refused likewise.
    let untrusted = client_flags(&ca.ca_file(), &stranger_cert, &stranger_key);
    let (success, text) = etcdctl(port, &untrusted, &["put", "foo", "evil"]);
    assert!(!success, "a client of an untrusted CA was served: {text}");
    // The client does not trust a server its CA did not sign either.
    let wrong_ca = client_flags(&stranger.ca_file(), &client_cert, &client_key);
    let (success, text) = etcdctl(port, &wrong_ca, &["get", "foo"]);
    assert!(!success, "etcdctl trusted a server of another CA: {text}");
    // Nothing the refused clients sent was applied.
    eventually(port, &good, &["get", "foo"], "foo\nbar\n");
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    assert!(log.contains("client TLS handshake failed"), "{log}");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Goal: with client-cert auth, the certificate's Common Name is the user, as in etcd: once
/// auth is enabled a client with alice's certificate and no password may write inside alice's
/// prefix and is denied outside it, root's certificate administers, and a token (from
/// `--user`) still takes precedence over the certificate. Method: a one-member https server
/// with --client-cert-auth; etcdctl with root's and alice's certificates.
#[test]
fn client_certificate_common_name_is_the_user() {
    if !etcdctl_present() {
        return;
    }
    let dir = test_dir("cn");
    let ca = Authority::new(&dir, "ca");
    let (server_cert, server_key) = ca.issue("server");
    let (root_cert, root_key) = ca.issue("root");
    let (alice_cert, alice_key) = ca.issue("alice");
    let port = free_port();
    let peer_port = free_port();
    let _member = detcd_serve(
        &[
            "--data-dir".into(),
            path(&dir.join("data")),
            "--listen-client-urls".into(),
            format!("https://127.0.0.1:{port}"),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--cert-file".into(),
            path(&server_cert),
            "--key-file".into(),
            path(&server_key),
            "--trusted-ca-file".into(),
            path(&ca.ca_file()),
            "--client-cert-auth".into(),
        ],
        &dir.join("server.log"),
    );
    let root = client_flags(&ca.ca_file(), &root_cert, &root_key);
    let alice = client_flags(&ca.ca_file(), &alice_cert, &alice_key);
    eventually(
        port,
        &root,
        &["user", "add", "root:rootpw"],
        "User root created\n",
    );
    let admin = [
        (vec!["role", "add", "app"], "Role app created\n"),
        (
            vec![
                "role",
                "grant-permission",
                "--prefix=true",
                "app",
                "readwrite",
                "app/",
            ],
            "Role app updated\n",
        ),
        (vec!["user", "add", "alice:alicepw"], "User alice created\n"),
        (
            vec!["user", "grant-role", "alice", "app"],
            "Role app is granted to user alice\n",
        ),
    ];
    for (args, expected) in admin {
        let (success, text) = etcdctl(port, &root, &args);
        assert!(success && text == expected, "{args:?}: {text}");
    }
    let (success, text) = etcdctl(port, &root, &["auth", "enable"]);
    assert!(
        success && text.starts_with("Authentication Enabled"),
        "{text}"
    );

    // alice's certificate, no password: her prefix only.
    let (success, text) = etcdctl(port, &alice, &["put", "app/x", "1"]);
    assert!(success && text == "OK\n", "{text}");
    let (success, text) = etcdctl(port, &alice, &["put", "other", "1"]);
    assert!(
        !success && text.contains("etcdserver: permission denied"),
        "{text}"
    );
    let (success, text) = etcdctl(port, &alice, &["user", "list"]);
    assert!(
        !success && text.contains("etcdserver: permission denied"),
        "{text}"
    );
    // root's certificate administers without a password.
    let (success, text) = etcdctl(port, &root, &["user", "list"]);
    assert!(success && text == "alice\nroot\n", "{text}");
    // A token outranks the certificate: alice's certificate with root's password is root.
    let (success, text) = etcdctl(
        port,
        &alice,
        &["--user", "root:rootpw", "put", "other", "2"],
    );
    assert!(success && text == "OK\n", "{text}");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Starts three members `infra0..2` with https client URLs and `peer_scheme` peer URLs, each
/// with its own certificate from `ca` and the TLS flags `tls(cert, key)` makes; returns them and
/// their client ports.
fn three_members(
    dir: &Path,
    ca: &Authority,
    peer_scheme: &str,
    tls: impl Fn(&Path, &Path) -> Vec<String>,
) -> (Vec<Member>, Vec<u16>) {
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peer_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let initial_cluster = peer_ports
        .iter()
        .enumerate()
        .map(|(index, port)| format!("infra{index}={peer_scheme}://127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let members = (0..3)
        .map(|index| {
            let (cert, key) = ca.issue(&format!("infra{index}"));
            let mut args: Vec<String> = vec![
                "--name".into(),
                format!("infra{index}"),
                "--data-dir".into(),
                path(&dir.join(format!("infra{index}"))),
                "--listen-client-urls".into(),
                format!("https://127.0.0.1:{}", client_ports[index]),
                "--listen-peer-urls".into(),
                format!("{peer_scheme}://127.0.0.1:{}", peer_ports[index]),
                "--initial-cluster".into(),
                initial_cluster.clone(),
                "--heartbeat-interval".into(),
                "50".into(),
                "--election-timeout".into(),
                "500".into(),
            ];
            args.extend(tls(&cert, &key));
            detcd_serve(&args, &dir.join(format!("infra{index}.log")))
        })
        .collect();
    (members, client_ports)
}

/// Goal: members talk over peer TLS with peer client-cert auth, elect a leader and replicate.
/// Method: three members on https peer URLs (and an https client URL each); a put through one
/// is read with a serializable (local) read at every member.
#[test]
fn three_members_with_peer_tls_elect_and_replicate() {
    if !etcdctl_present() {
        return;
    }
    let dir = test_dir("cluster");
    let ca = Authority::new(&dir, "ca");
    let (client_cert, client_key) = ca.issue("client");
    let (members, client_ports) = three_members(&dir, &ca, "https", |cert, key| {
        vec![
            "--cert-file".into(),
            path(cert),
            "--key-file".into(),
            path(key),
            "--peer-cert-file".into(),
            path(cert),
            "--peer-key-file".into(),
            path(key),
            "--peer-trusted-ca-file".into(),
            path(&ca.ca_file()),
            "--peer-client-cert-auth".into(),
        ]
    });
    let tls = client_flags(&ca.ca_file(), &client_cert, &client_key);
    eventually(client_ports[0], &tls, &["put", "replicated", "yes"], "OK\n");
    for &port in &client_ports {
        eventually(
            port,
            &tls,
            &["get", "replicated", "--consistency=s"],
            "replicated\nyes\n",
        );
    }
    let (success, status) = etcdctl(client_ports[1], &tls, &["endpoint", "status"]);
    assert!(success, "{status}");
    drop(members);
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Goal: a follower passes lease keep-alives and TTL queries (leader-local) on to the leader
/// over its https client URL, as etcd's followers do: verifying the leader's certificate
/// against --trusted-ca-file and presenting its own, which the leader's --client-cert-auth
/// asks for. Method: three members with https client URLs and client-cert auth; a lease
/// granted, then `lease keep-alive --once` and `lease timetolive` against each follower.
#[test]
fn lease_keep_alive_through_a_follower_over_https() {
    if !etcdctl_present() {
        return;
    }
    let dir = test_dir("lease");
    let ca = Authority::new(&dir, "ca");
    let (client_cert, client_key) = ca.issue("client");
    let (members, client_ports) = three_members(&dir, &ca, "http", |cert, key| {
        vec![
            "--cert-file".into(),
            path(cert),
            "--key-file".into(),
            path(key),
            "--trusted-ca-file".into(),
            path(&ca.ca_file()),
            "--client-cert-auth".into(),
        ]
    });
    let tls = client_flags(&ca.ca_file(), &client_cert, &client_key);
    eventually(client_ports[0], &tls, &["put", "settled", "yes"], "OK\n");
    // The followers, as each member's status says (its id is not the leader's).
    let started = Instant::now();
    let followers: Vec<u16> = loop {
        let followers: Vec<u16> = client_ports
            .iter()
            .copied()
            .filter(|&port| {
                let (success, status) = etcdctl(port, &tls, &["endpoint", "status"]);
                success && status.split(", ").nth(4) == Some("false")
            })
            .collect();
        if followers.len() == 2 {
            break followers;
        }
        assert!(started.elapsed() < SETTLE_TIMEOUT, "no two followers");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (success, granted) = etcdctl(followers[0], &tls, &["lease", "grant", "60"]);
    assert!(success, "{granted}");
    let id = granted
        .strip_prefix("lease ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{granted}"))
        .to_string();
    for port in followers {
        let (success, text) = etcdctl(port, &tls, &["lease", "keep-alive", "--once", &id]);
        assert!(
            success && text == format!("lease {id} keepalived with TTL(60)\n"),
            "keep-alive through the follower on {port}: {text}"
        );
        let (success, text) = etcdctl(port, &tls, &["lease", "timetolive", &id]);
        assert!(
            success && text.starts_with(&format!("lease {id} granted with TTL(60s), remaining(")),
            "time-to-live through the follower on {port}: {text}"
        );
    }
    drop(members);
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

/// Runs `detcd serve` with `args`, which must fail to start; returns its standard error.
fn start_fails(dir: &Path, args: &[String]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_detcd"));
    command.arg("serve");
    if !args.iter().any(|arg| arg == "--listen-peer-urls") {
        command.args([
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{}", free_port()),
        ]);
    }
    command
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .stdin(Stdio::null());
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            let output = child.wait_with_output().expect("ends");
            let text = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(status.code(), Some(2), "{args:?}: {text}");
            return text;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("detcd serve {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Goal: bad TLS input fails the start with the flag and the file named. Method: an https URL
/// without certificate files, a missing file, a file that is not PEM, a key of another
/// certificate, client-cert auth without a CA, https peers without a peer CA.
#[test]
fn bad_tls_flags_are_refused_naming_the_flag_and_file() {
    let dir = test_dir("flags");
    let ca = Authority::new(&dir, "ca");
    let (cert, key) = ca.issue("server");
    let (_, other_key) = ca.issue("other");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("writes");
    let missing = dir.join("missing.pem");
    let https = || {
        vec![
            "--listen-client-urls".to_string(),
            format!("https://127.0.0.1:{}", free_port()),
        ]
    };
    let with = |extra: &[&str]| {
        let mut args = https();
        args.extend(extra.iter().map(|text| text.to_string()));
        args
    };
    let (cert, key, other_key) = (path(&cert), path(&key), path(&other_key));
    let (garbage, missing) = (path(&garbage), path(&missing));

    let text = start_fails(&dir, &https());
    assert!(
        text.contains("--listen-client-urls https://")
            && text.contains("needs --cert-file and --key-file"),
        "{text}"
    );
    let text = start_fails(&dir, &with(&["--cert-file", &missing, "--key-file", &key]));
    assert!(
        text.contains(&format!("--cert-file {missing}: No such file")),
        "{text}"
    );
    let text = start_fails(&dir, &with(&["--cert-file", &garbage, "--key-file", &key]));
    assert!(
        text.contains(&format!("--cert-file {garbage}: no PEM certificate")),
        "{text}"
    );
    let text = start_fails(&dir, &with(&["--cert-file", &cert, "--key-file", &garbage]));
    assert!(
        text.contains(&format!("--key-file {garbage}: no PEM private key")),
        "{text}"
    );
    let text = start_fails(
        &dir,
        &with(&["--cert-file", &cert, "--key-file", &other_key]),
    );
    assert!(
        text.contains(&format!(
            "--key-file {other_key} does not fit --cert-file {cert}"
        )),
        "{text}"
    );
    let text = start_fails(
        &dir,
        &with(&[
            "--cert-file",
            &cert,
            "--key-file",
            &key,
            "--client-cert-auth",
        ]),
    );
    assert!(
        text.contains("--client-cert-auth needs --trusted-ca-file"),
        "{text}"
    );
    let peer = format!("https://127.0.0.1:{}", free_port());
    let text = start_fails(
        &dir,
        &[
            "--listen-peer-urls".into(),
            peer,
            "--peer-cert-file".into(),
            cert.clone(),
            "--peer-key-file".into(),
            key.clone(),
        ],
    );
    assert!(text.contains("needs --peer-trusted-ca-file"), "{text}");
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
