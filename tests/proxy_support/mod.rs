//! What the gateway and grpc-proxy tests share: a loopback cluster of `detcd serve` processes
//! (each with a metrics port, so a test can count the watchers the members hold), the proxy
//! processes, and etcdctl.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a request may keep failing while a cluster elects a leader or a proxy starts.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether etcdctl 3 is on PATH; under CI (`CI` set) its absence fails the test.
pub fn etcdctl_present() -> bool {
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

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A child process, SIGKILLed when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `detcd ARGS`, its standard error into `log`.
    pub fn detcd(args: &[String], log: &std::path::Path) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_detcd"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).map_or_else(|_| Stdio::null(), Stdio::from))
            .spawn()
            .expect("detcd starts");
        Process { child }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback cluster laid out under a temporary directory (removed when dropped).
pub struct Cluster {
    pub root: PathBuf,
    pub client_ports: Vec<u16>,
    pub metrics_ports: Vec<u16>,
    peer_ports: Vec<u16>,
    initial_cluster: String,
    pub members: Vec<Option<Process>>,
}

impl Cluster {
    /// Starts `size` members.
    pub fn start(test: &str, size: usize) -> Cluster {
        let root = std::env::temp_dir().join(format!("detcd-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("makes the test directory");
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let peer_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let metrics_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let initial_cluster = peer_ports
            .iter()
            .enumerate()
            .map(|(index, port)| format!("m{index}=http://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            root,
            client_ports,
            metrics_ports,
            peer_ports,
            initial_cluster,
            members: Vec::new(),
        };
        for index in 0..size {
            let member = cluster.spawn(index);
            cluster.members.push(Some(member));
        }
        cluster
    }

    fn spawn(&self, index: usize) -> Process {
        let args: Vec<String> = [
            "serve",
            "--name",
            &format!("m{index}"),
            "--data-dir",
            &self.root.join(format!("m{index}")).display().to_string(),
            "--listen-client-urls",
            &format!("http://127.0.0.1:{}", self.client_ports[index]),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{}", self.peer_ports[index]),
            "--listen-metrics-urls",
            &format!("http://127.0.0.1:{}", self.metrics_ports[index]),
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-token",
            "detcd-proxy-test",
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
        ]
        .map(String::from)
        .to_vec();
        Process::detcd(&args, &self.root.join(format!("m{index}.log")))
    }

    /// SIGKILLs member `index`.
    pub fn kill(&mut self, index: usize) {
        self.members[index] = None;
    }

    /// Starts member `index` again on its data directory.
    pub fn restart(&mut self, index: usize) {
        let member = self.spawn(index);
        self.members[index] = Some(member);
    }

    /// `host:port` of every member's client port, comma-separated.
    pub fn endpoints(&self, indexes: &[usize]) -> String {
        indexes
            .iter()
            .map(|&index| format!("127.0.0.1:{}", self.client_ports[index]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The watchers every running member holds now (`etcd_debugging_mvcc_watcher_total`).
    pub fn watcher_count(&self) -> u64 {
        let mut total = 0;
        for (index, port) in self.metrics_ports.iter().enumerate() {
            if self.members[index].is_none() {
                continue;
            }
            let text = http_get(*port, "/metrics").unwrap_or_default();
            total += text
                .lines()
                .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
        }
        total
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.members.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A plain HTTP/1.0 GET on loopback; the body.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// Runs etcdctl against `endpoints`; (success, stdout + stderr).
pub fn etcdctl(endpoints: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=3s")
        .arg("--dial-timeout=2s")
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

/// Retries an etcdctl command until it prints `expected`.
pub fn eventually(endpoints: &str, args: &[&str], expected: &str) {
    let started = Instant::now();
    loop {
        let (success, text) = etcdctl(endpoints, args);
        if success && text == expected {
            return;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "etcdctl {args:?} via {endpoints} never printed {expected:?}; last: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
