//! `detcd gateway start` in front of a real 3-member `detcd serve` cluster, driven by etcdctl
//! 3.4: requests pass through; with one of its two endpoints SIGKILLed every new connection
//! still works (the dead endpoint is skipped); bad flags are refused with a clear message.
//!
//! Without etcdctl on PATH the etcdctl test says so and passes, except under CI (`CI=true`).

mod proxy_support;

use std::process::Command;
use std::time::Duration;

use proxy_support::{etcdctl, eventually, free_port, Cluster, Process};

/// Goal: the TCP gateway forwards etcd clients and survives an endpoint's death. Method: a
/// 3-member cluster, a gateway over members 0 and 1; put and get through it; SIGKILL member 0;
/// once the two left have a leader, ten etcdctl runs in a row (each a new connection, dialed
/// round robin, so half would go to the dead member) must all succeed at the first try.
#[test]
fn etcdctl_through_the_gateway_survives_an_endpoint_s_death() {
    if !proxy_support::etcdctl_present() {
        return;
    }
    let mut cluster = Cluster::start("gateway-test", 3);
    let gateway_port = free_port();
    let gateway_address = format!("127.0.0.1:{gateway_port}");
    let _gateway = Process::detcd(
        &[
            "gateway".into(),
            "start".into(),
            format!("--endpoints={}", cluster.endpoints(&[0, 1])),
            format!("--listen-addr={gateway_address}"),
            "--retry-delay=1m0s".into(),
        ],
        &cluster.root.join("gateway.log"),
    );
    eventually(&gateway_address, &["put", "through", "gateway"], "OK\n");
    eventually(&gateway_address, &["get", "through"], "through\ngateway\n");

    cluster.kill(0);
    // A new leader may be being elected; after that, no request may fail.
    eventually(&gateway_address, &["put", "after", "kill"], "OK\n");
    for attempt in 0..10 {
        let (success, text) = etcdctl(&gateway_address, &["get", "after"]);
        assert!(
            success && text == "after\nkill\n",
            "attempt {attempt} through the gateway failed: {text}"
        );
    }
    let (success, text) = etcdctl(&gateway_address, &["endpoint", "health"]);
    assert!(success, "{text}");
}

/// Runs `detcd ARGS` to its end; (exit status, standard error).
fn detcd_status(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_detcd"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("detcd starts");
    // A proxy that accepted its flags would serve forever: give it a moment, then stop it.
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("detcd ends");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Goal: bad flags of both proxies end them at once with status 2 and a message naming the
/// flag, instead of a proxy that forwards nowhere. Method: each bad flag in turn.
#[test]
fn bad_proxy_flags_are_refused_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let taken_address = taken.local_addr().expect("has an address").to_string();
    let cases: [(&[&str], &str); 6] = [
        (&["gateway", "start", "--endpoints="], "--endpoints"),
        (
            &[
                "gateway",
                "start",
                "--endpoints=127.0.0.1:2379",
                "--retry-delay=5",
            ],
            "--retry-delay",
        ),
        (&["gateway", "start", "--endpoints=localhost"], "host:port"),
        (
            &["grpc-proxy", "start", "--endpoints=https://127.0.0.1:2379"],
            "TLS",
        ),
        (
            &["grpc-proxy", "start", "--endpoints=127.0.0.1:notaport"],
            "port",
        ),
        (
            &[
                "grpc-proxy",
                "start",
                "--endpoints=127.0.0.1:2379",
                &format!("--listen-addr={taken_address}"),
            ],
            "--listen-addr",
        ),
    ];
    for (args, expected) in cases {
        let (status, stderr) = detcd_status(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
