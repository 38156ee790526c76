//! etcd's auth through etcdctl 3.4 against `detcd serve`: users, roles, a prefix permission,
//! auth enable, then puts and gets with `--user` allowed and denied, a wrong password, and
//! auth disable; each output compared with what etcdctl prints against etcd 3.4.
//!
//! Without etcdctl on PATH the test says so and passes, except under CI (`CI=true`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port_pair() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn etcdctl(port: u16, args: &[&str]) -> (bool, String) {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=127.0.0.1:{port}"))
        .arg("--command-timeout=5s")
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

fn ok(port: u16, args: &[&str]) -> String {
    let (success, text) = etcdctl(port, args);
    assert!(success, "etcdctl {args:?} failed: {text}");
    text
}

fn fails(port: u16, args: &[&str]) -> String {
    let (success, text) = etcdctl(port, args);
    assert!(!success, "etcdctl {args:?} succeeded: {text}");
    text
}

/// A `detcd serve` on fresh ports with a fresh data directory, answering.
fn start(name: &str) -> (Server, u16, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("detcd-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port_pair();
    let child = Command::new(env!("CARGO_BIN_EXE_detcd"))
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{port}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{}", port + 1),
            "--bcrypt-cost",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("detcd serve starts");
    let server = Server(child);
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        etcdctl(port, &["get", "probe"]).0
    });
    assert!(up, "detcd serve did not answer");
    (server, port, dir)
}

fn etcdctl_missing() -> bool {
    if Command::new("etcdctl").arg("version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "CI must have etcdctl");
        eprintln!("etcdctl is not installed; skipping");
        return true;
    }
    false
}

/// Goal: etcdctl's auth workflow works against detcd and refuses what etcd refuses, with
/// etcd's error text. Method: the workflow step by step, asserting each output.
#[test]
fn etcdctl_auth_workflow() {
    if etcdctl_missing() {
        return;
    }
    let (_server, port, dir) = start("workflow");

    // Without a root user, auth cannot be enabled.
    let text = fails(port, &["auth", "enable"]);
    assert!(
        text.contains("etcdserver: root user does not exist"),
        "{text}"
    );

    assert_eq!(
        ok(port, &["user", "add", "root:rootpw"]),
        "User root created\n"
    );
    assert_eq!(ok(port, &["role", "add", "app"]), "Role app created\n");
    assert_eq!(
        ok(
            port,
            &[
                "role",
                "grant-permission",
                "--prefix=true",
                "app",
                "readwrite",
                "app/"
            ]
        ),
        "Role app updated\n"
    );
    assert_eq!(
        ok(port, &["user", "add", "alice:alicepw"]),
        "User alice created\n"
    );
    assert_eq!(
        ok(port, &["user", "grant-role", "alice", "app"]),
        "Role app is granted to user alice\n"
    );
    assert_eq!(
        ok(port, &["role", "get", "app"]),
        "Role app\nKV Read:\n\t[app/, app0) (prefix app/)\nKV Write:\n\t[app/, app0) (prefix app/)\n"
    );
    // etcdctl grants root the root role itself after etcd's "root user does not have root
    // role" (logging the first attempt's error), then enables.
    let text = ok(port, &["auth", "enable"]);
    assert!(text.starts_with("Authentication Enabled\n"), "{text}");

    // Inside the granted prefix: allowed. Outside: etcd's permission denied.
    assert_eq!(
        ok(port, &["--user", "alice:alicepw", "put", "app/x", "1"]),
        "OK\n"
    );
    assert_eq!(
        ok(
            port,
            &[
                "--user",
                "alice:alicepw",
                "get",
                "app/x",
                "--print-value-only"
            ]
        ),
        "1\n"
    );
    let text = fails(port, &["--user", "alice:alicepw", "put", "other", "1"]);
    assert!(text.contains("etcdserver: permission denied"), "{text}");
    let text = fails(port, &["--user", "alice:alicepw", "get", "other"]);
    assert!(text.contains("etcdserver: permission denied"), "{text}");
    // No user at all, a wrong password and an unknown user.
    let text = fails(port, &["put", "app/x", "2"]);
    assert!(text.contains("etcdserver: user name is empty"), "{text}");
    let wrong = fails(port, &["--user", "alice:wrong", "get", "app/x"]);
    assert!(
        wrong.contains("etcdserver: authentication failed, invalid user ID or password"),
        "{wrong}"
    );
    let unknown = fails(port, &["--user", "mallory:alicepw", "get", "app/x"]);
    let error_line = |text: &str| {
        let line = text.lines().find(|line| line.starts_with("Error:"));
        line.map(str::to_string)
    };
    assert_eq!(
        error_line(&wrong),
        error_line(&unknown),
        "an unknown user and a wrong password look the same"
    );
    // Only root administers.
    let text = fails(port, &["--user", "alice:alicepw", "user", "list"]);
    assert!(text.contains("etcdserver: permission denied"), "{text}");
    assert_eq!(
        ok(port, &["--user", "root:rootpw", "user", "list"]),
        "alice\nroot\n"
    );

    // etcdctl's lock (a client-side recipe on KV, lease and watch) is bound by the same
    // permissions: inside alice's prefix she holds it, outside it its key may not be written.
    let text = ok(
        port,
        &[
            "--user",
            "alice:alicepw",
            "lock",
            "app/l",
            "--",
            "echo",
            "held",
        ],
    );
    assert_eq!(text, "held\n");
    let text = fails(port, &["--user", "alice:alicepw", "lock", "other/l"]);
    assert!(text.contains("etcdserver: permission denied"), "{text}");

    // A lease answers for its keys (etcd's checkLeasePuts): alice may not revoke root's lease
    // holding a key outside her prefix, nor attach it to a key of her own; root may.
    let granted = ok(port, &["--user", "root:rootpw", "lease", "grant", "60"]);
    let lease = granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{granted}"))
        .to_string();
    let lease_flag = format!("--lease={lease}");
    let root_put = [
        "--user",
        "root:rootpw",
        "put",
        &lease_flag,
        "other/leased",
        "1",
    ];
    assert_eq!(ok(port, &root_put), "OK\n");
    let text = fails(
        port,
        &["--user", "alice:alicepw", "lease", "revoke", &lease],
    );
    assert!(text.contains("etcdserver: permission denied"), "{text}");
    let alice_put = [
        "--user",
        "alice:alicepw",
        "put",
        &lease_flag,
        "app/leased",
        "1",
    ];
    let text = fails(port, &alice_put);
    assert!(text.contains("etcdserver: permission denied"), "{text}");
    let text = ok(port, &["--user", "root:rootpw", "lease", "revoke", &lease]);
    assert_eq!(text, format!("lease {lease} revoked\n"));

    assert_eq!(
        ok(port, &["--user", "root:rootpw", "auth", "disable"]),
        "Authentication Disabled\n"
    );
    assert_eq!(ok(port, &["put", "other", "1"]), "OK\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Goal: while auth is enabled, maintenance needs what etcd 3.4 asks for: the root role for
/// hashes, snapshots, defragmentation, leader moves and alarm changes, a named user to list
/// alarms, nothing for the status; refusals carry etcd's exact text (Hash, HashKV, Snapshot and
/// Defragment the auth store's own, as etcd 3.4 returns it unconverted, e.g. etcdctl 3.4.23
/// against etcd 3.4.23 prints `Failed to get the hash of endpoint 127.0.0.1:23791 (rpc error:
/// code = Unknown desc = auth: permission denied)`). Method: etcdctl as alice (a user without
/// the root role), as nobody, and as root.
#[test]
fn etcdctl_maintenance_needs_the_root_role() {
    if etcdctl_missing() {
        return;
    }
    let (_server, port, dir) = start("maintenance");
    ok(port, &["user", "add", "root:rootpw"]);
    ok(port, &["user", "grant-role", "root", "root"]);
    ok(port, &["role", "add", "app"]);
    ok(port, &["user", "add", "alice:alicepw"]);
    ok(port, &["user", "grant-role", "alice", "app"]);
    ok(port, &["auth", "enable"]);
    let alice = |args: &[&'static str]| [&["--user", "alice:alicepw"][..], args].concat();
    let root = |args: &[&'static str]| [&["--user", "root:rootpw"][..], args].concat();
    let endpoint = format!("127.0.0.1:{port}");

    let text = fails(port, &alice(&["endpoint", "hashkv"]));
    let expected = format!(
        "Failed to get the hash of endpoint {endpoint} (rpc error: code = Unknown desc = auth: permission denied)"
    );
    assert!(text.contains(&expected), "{text}");
    let text = fails(port, &["endpoint", "hashkv"]);
    assert!(
        text.contains("(rpc error: code = Unknown desc = auth: user name is empty)"),
        "{text}"
    );
    let text = fails(port, &alice(&["defrag"]));
    let expected = format!(
        "Failed to defragment etcd member[{endpoint}] (rpc error: code = Unknown desc = auth: permission denied)"
    );
    assert!(text.contains(&expected), "{text}");
    let snapshot = dir.with_extension("snapshot.db");
    let path = snapshot.to_str().expect("a UTF-8 path");
    let text = fails(port, &[&alice(&["snapshot", "save"])[..], &[path]].concat());
    assert!(
        text.contains("Error: rpc error: code = Unknown desc = auth: permission denied"),
        "{text}"
    );
    assert!(!snapshot.exists(), "a refused snapshot leaves no file");
    // Leader moves and alarm changes: etcd's gRPC error; listing alarms: any named user.
    let text = fails(port, &alice(&["move-leader", "1234"]));
    assert!(
        text.contains("Error: etcdserver: permission denied"),
        "{text}"
    );
    assert_eq!(ok(port, &alice(&["alarm", "list"])), "");
    // etcdctl disarms only the alarms it lists (none), so it sends no change to refuse.
    assert_eq!(ok(port, &alice(&["alarm", "disarm"])), "");
    let text = fails(port, &["alarm", "list"]);
    assert!(text.contains("etcdserver: user name is empty"), "{text}");
    // The status is anyone's.
    let status = ok(port, &alice(&["endpoint", "status"]));
    assert!(status.starts_with(&format!("{endpoint}, ")), "{status}");

    // Root may do all of it.
    let hashkv = ok(port, &root(&["endpoint", "hashkv"]));
    assert!(hashkv.starts_with(&format!("{endpoint}, ")), "{hashkv}");
    assert_eq!(
        ok(port, &root(&["defrag"])),
        format!("Finished defragmenting etcd member[{endpoint}]\n")
    );
    let saved = ok(port, &[&root(&["snapshot", "save"])[..], &[path]].concat());
    assert!(
        saved.starts_with(&format!("Snapshot saved at {path}\n")),
        "{saved}"
    );
    assert!(std::fs::metadata(&snapshot).expect("saved").len() > 0);
    let text = fails(port, &root(&["move-leader", "1234"]));
    assert!(text.contains("etcdserver: bad leader transferee"), "{text}");
    let _ = std::fs::remove_file(&snapshot);
    let _ = std::fs::remove_dir_all(&dir);
}
