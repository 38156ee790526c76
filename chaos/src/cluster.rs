//! A loopback cluster of `detcd serve` processes: each member's peer URL (the one the cluster
//! knows it by) is its proxy's address, and the member listens behind it, so every peer link
//! crosses a proxy. Members can be killed (SIGKILL), restarted on their data directories, and
//! paused (SIGSTOP) and resumed (SIGCONT).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use server::proto::etcdserverpb as pb;
use tonic::transport::{Channel, Endpoint};

use crate::proxy::{self, Links};

/// The token every chaos cluster is started with (member ids derive from it).
pub const CLUSTER_TOKEN: &str = "detcd-chaos";

/// A free loopback port (bound and released; another process could take it, rarely).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One member process and what is being done to it.
struct Process {
    child: Option<Child>,
    paused: bool,
}

/// The cluster: its layout, its processes and its links.
pub struct Cluster {
    executable: PathBuf,
    root: PathBuf,
    names: Vec<String>,
    /// Member ids, as the members compute them from their peer URLs and the token.
    pub ids: Vec<u64>,
    client_ports: Vec<u16>,
    listen_peer_ports: Vec<u16>,
    /// Each member's advertised peer URL: its proxy.
    peer_urls: Vec<String>,
    initial_cluster: String,
    processes: std::sync::Mutex<Vec<Process>>,
    /// The peer links, through the proxies.
    pub links: Links,
}

impl Cluster {
    /// Lays out `member_count` members under `root` (data directories and logs) and starts a
    /// proxy in front of each one's peer port. `executable` is the `detcd` binary.
    pub async fn new(
        executable: PathBuf,
        root: &Path,
        member_count: usize,
        seed: u64,
    ) -> anyhow::Result<Cluster> {
        let names: Vec<String> = (1..=member_count)
            .map(|index| format!("m{index}"))
            .collect();
        let mut client_ports = Vec::new();
        let mut listen_peer_ports = Vec::new();
        let mut proxy_ports = Vec::new();
        for _ in 0..member_count {
            client_ports.push(free_port()?);
            listen_peer_ports.push(free_port()?);
            proxy_ports.push(free_port()?);
        }
        let peer_urls: Vec<String> = proxy_ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect();
        let initial_cluster = names
            .iter()
            .zip(&peer_urls)
            .map(|(name, url)| format!("{name}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        let ids = peer_urls
            .iter()
            .map(|url| server::cluster::member_id(url, CLUSTER_TOKEN).0)
            .collect();
        let links = Links::default();
        for (index, (&proxy_port, &peer_port)) in
            proxy_ports.iter().zip(&listen_peer_ports).enumerate()
        {
            let listen = SocketAddr::from(([127, 0, 0, 1], proxy_port));
            let upstream = SocketAddr::from(([127, 0, 0, 1], peer_port));
            proxy::start(listen, upstream, links.clone(), seed ^ index as u64).await?;
        }
        std::fs::create_dir_all(root)?;
        let processes = (0..member_count)
            .map(|_| Process {
                child: None,
                paused: false,
            })
            .collect();
        Ok(Cluster {
            executable,
            root: root.to_path_buf(),
            names,
            ids,
            client_ports,
            listen_peer_ports,
            peer_urls,
            initial_cluster,
            processes: std::sync::Mutex::new(processes),
            links,
        })
    }

    /// How many members.
    pub fn size(&self) -> usize {
        self.names.len()
    }

    /// The client URL of member `index`.
    pub fn client_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.client_ports[index])
    }

    /// Every member's client URL, in member order.
    pub fn client_urls(&self) -> Vec<String> {
        (0..self.size())
            .map(|index| self.client_url(index))
            .collect()
    }

    /// A lazily connecting channel to member `index`; every request times out after `timeout`.
    pub fn channel(&self, index: usize, timeout: Duration) -> anyhow::Result<Channel> {
        Ok(Endpoint::from_shared(self.client_url(index))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(timeout)
            .connect_lazy())
    }

    /// Starts member `index` (again, on its data directory, when it ran before). Its log goes
    /// to `m<N>.log` under the root.
    pub fn start(&self, index: usize) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{}.log", self.names[index])))?;
        let child = Command::new(&self.executable)
            .arg("serve")
            .args(["--name", &self.names[index]])
            .arg("--data-dir")
            .arg(self.root.join(&self.names[index]))
            .args([
                "--listen-client-urls",
                &self.client_url(index),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", self.listen_peer_ports[index]),
                "--initial-advertise-peer-urls",
                &self.peer_urls[index],
                "--initial-cluster",
                &self.initial_cluster,
                "--initial-cluster-token",
                CLUSTER_TOKEN,
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut processes = self.processes.lock().expect("never poisoned");
        processes[index] = Process {
            child: Some(child),
            paused: false,
        };
        Ok(())
    }

    /// SIGKILLs member `index`, if it runs.
    pub fn kill(&self, index: usize) {
        let mut processes = self.processes.lock().expect("never poisoned");
        if let Some(mut child) = processes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        processes[index].paused = false;
    }

    /// Whether member `index` runs (paused or not).
    pub fn is_running(&self, index: usize) -> bool {
        self.processes.lock().expect("never poisoned")[index]
            .child
            .is_some()
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) member `index`, if it runs.
    pub fn set_paused(&self, index: usize, paused: bool) {
        let mut processes = self.processes.lock().expect("never poisoned");
        let process = &mut processes[index];
        if let Some(child) = &process.child {
            let signal = if paused {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            };
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), signal);
                process.paused = paused;
            }
        }
    }

    /// Whether every member runs and none is paused.
    pub fn all_healthy(&self) -> bool {
        self.processes
            .lock()
            .expect("never poisoned")
            .iter()
            .all(|process| process.child.is_some() && !process.paused)
    }

    /// Resumes every paused member, restarts every killed one and heals every link.
    pub fn heal(&self) -> anyhow::Result<()> {
        self.links.heal_all();
        for index in 0..self.size() {
            if self.is_running(index) {
                self.set_paused(index, false);
            } else {
                self.start(index)?;
            }
        }
        Ok(())
    }

    /// The index of the member that the running members say leads, asking each in turn.
    pub async fn leader(&self) -> Option<usize> {
        for index in 0..self.size() {
            if !self.is_running(index) {
                continue;
            }
            let Ok(channel) = self.channel(index, Duration::from_millis(300)) else {
                continue;
            };
            let mut maintenance = pb::maintenance_client::MaintenanceClient::new(channel);
            if let Ok(status) = maintenance.status(pb::StatusRequest {}).await {
                let leader = status.into_inner().leader;
                if let Some(position) = self.ids.iter().position(|id| *id == leader) {
                    return Some(position);
                }
            }
        }
        None
    }

    /// Kills every member (resuming paused ones first so none is left stopped).
    pub fn shutdown(&self) {
        for index in 0..self.size() {
            self.set_paused(index, false);
            self.kill(index);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
