//! The harness of the madsim tests: a cluster of the real server (`server::serve_until`, the
//! code `detcd serve` runs) on simulated nodes, gRPC clients on a node of their own recording
//! what they saw in the history format, a seeded fault schedule (kills and restarts, pauses,
//! clogged nodes and links), and the checkers' verdicts on the history.
//!
//! Everything inside a run is driven by madsim from the seed: virtual time, the network's
//! latencies, task scheduling, and every choice made here (`madsim::rand`). The members keep
//! their data on real files (a directory per run), which madsim does not simulate; what they
//! hold is the same for the same seed. Each run gets a fresh thread, as madsim's own test
//! runner does, so no thread-local state leaks from one run into the next.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkers::history::{History, Operation, Request, Response, WatchRecord};
use checkers::Verdict;
use madsim::rand::Rng as _;
use madsim::runtime::{Handle, NodeHandle};
use server::history_rpc::{self as rpc, Outcome};
use server::proto::etcdserverpb as pb;
use tonic::transport::{Channel, Endpoint};

mod faults;
mod workload;

/// The client port every member listens on (each member has its own simulated address).
const CLIENT_PORT: u16 = 2379;
/// The peer port.
const PEER_PORT: u16 = 2380;
/// A client's request timeout: longer than an election, so most requests outlast one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after healing every member must answer a linearizable read.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Virtual time a run may take at most.
const RUN_TIME_LIMIT: Duration = Duration::from_secs(3_600);

/// One run's shape.
#[derive(Clone, Copy, Debug)]
pub struct RunConfig {
    /// madsim's seed: the whole run follows from it.
    pub seed: u64,
    /// Members in the cluster.
    pub member_count: usize,
    /// Key-value operations the clients issue in all (final reads come on top).
    pub operation_count: u64,
    /// Key-value clients, each with one request outstanding at a time.
    pub client_count: usize,
    /// Whether the fault schedule runs.
    pub faults: bool,
}

/// What a run found.
#[derive(Debug)]
pub struct RunReport {
    /// The recorded history (operations and watches).
    pub history: History,
    /// FNV-1a of the history as written in the history format: equal runs, equal hashes.
    pub history_hash: u64,
    /// The faults injected, in order, as `time_ms description`.
    pub faults: Vec<String>,
    /// Operations whose outcome is unknown.
    pub unknown_count: usize,
    /// Members that answered a linearizable read after healing.
    pub final_read_member_count: usize,
    /// Linearizability.
    pub linearizability: Verdict,
    /// etcd's watch guarantees.
    pub watch: Verdict,
}

impl RunReport {
    /// Whether both checks passed and every member answered after healing.
    pub fn passed(&self, member_count: usize) -> bool {
        self.linearizability == Verdict::Ok
            && self.watch == Verdict::Ok
            && self.final_read_member_count == member_count
    }
}

/// Runs one seed on a thread of its own and returns its report; a panic inside the run is
/// passed on (after the replay line is printed by the caller).
pub fn run(config: RunConfig) -> RunReport {
    if std::env::var_os("DETCD_MADSIM_TRACE").is_some() {
        server::init_logging("info", false).expect("a valid level");
    }
    let data_root = data_root(config.seed);
    let root = data_root.clone();
    let joined = std::thread::Builder::new()
        .name(format!("madsim-seed-{}", config.seed))
        .spawn(move || {
            let mut runtime = madsim::runtime::Runtime::with_seed_and_config(
                config.seed,
                madsim::Config::default(),
            );
            // A run that stops making progress (no leader ever, a client stuck) fails rather
            // than spinning through virtual time forever.
            runtime.set_time_limit(RUN_TIME_LIMIT);
            runtime.block_on(scenario(config, root))
        })
        .expect("the run's thread starts")
        .join();
    let _ = std::fs::remove_dir_all(&data_root);
    match joined {
        Ok(report) => report,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `config` twice under madsim's own determinism check: the second run must draw the same
/// random numbers at the same virtual times as the first (every choice of the next task, every
/// latency, every poll's charge of virtual time), or it panics at the first difference, naming
/// its virtual time. Stricter than comparing histories: it sees drift no client observed.
/// Returns the second run's report.
pub fn check_determinism(config: RunConfig) -> RunReport {
    // madsim takes a plain function (no captures); the config reaches it through here.
    static CHECKED: Mutex<Option<RunConfig>> = Mutex::new(None);
    fn checked_run() -> impl std::future::Future<Output = RunReport> {
        let config = CHECKED
            .lock()
            .expect("never poisoned")
            .expect("the config is set");
        let root = data_root(config.seed);
        async move {
            let report = scenario(config, root.clone()).await;
            let _ = std::fs::remove_dir_all(&root);
            report
        }
    }
    let mut checked = CHECKED.lock().expect("never poisoned");
    *checked = Some(config);
    drop(checked);
    madsim::runtime::Runtime::check_determinism(config.seed, madsim::Config::default(), checked_run)
}

/// Where a run's members keep their files: tmpfs when the machine has it (fsync there costs
/// nothing, and the simulation charges its own latency), else the temporary directory.
fn data_root(seed: u64) -> PathBuf {
    static RUN_COUNT: AtomicU64 = AtomicU64::new(0);
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "detcd-madsim-{}-{seed}-{}",
        std::process::id(),
        RUN_COUNT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The simulated address of member `index` (0-based): its own node, as a machine of its own.
fn member_ip(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, index as u8 + 1))
}

/// The cluster as the harness sees it: madsim's node handles and the clients' channels.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<NodeHandle>,
    pub(crate) channels: Vec<Channel>,
    /// Member id (from Status headers) to index, learned as members answer.
    pub(crate) ids: Mutex<BTreeMap<u64, usize>>,
    /// The member the last Status poll named leader.
    pub(crate) leader: Mutex<Option<usize>>,
    /// Set once the workload issued every operation: faults and watches stop.
    pub(crate) done: AtomicBool,
}

fn start_members(
    handle: &Handle,
    config: &RunConfig,
    data_root: &std::path::Path,
) -> Vec<NodeHandle> {
    let initial_cluster = (0..config.member_count)
        .map(|index| format!("m{}=http://{}:{PEER_PORT}", index + 1, member_ip(index)))
        .collect::<Vec<_>>()
        .join(",");
    (0..config.member_count)
        .map(|index| {
            let ip = member_ip(index);
            let serve = server::ServeConfig {
                name: format!("m{}", index + 1),
                data_dir: data_root.join(format!("m{}", index + 1)),
                listen_client_urls: format!("http://{ip}:{CLIENT_PORT}"),
                listen_peer_urls: format!("http://{ip}:{PEER_PORT}"),
                initial_cluster: Some(initial_cluster.clone()),
                initial_cluster_token: "madsim".into(),
                ..server::ServeConfig::default()
            };
            handle
                .create_node()
                .name(format!("m{}", index + 1))
                .ip(ip)
                .init(move || {
                    let serve = serve.clone();
                    async move {
                        // A refused start (it should not happen) shows in the log and as a
                        // member that never answers, which fails the final reads.
                        if let Err(error) = server::serve_until(serve, std::future::pending()).await
                        {
                            tracing::error!("member stopped: {error:#}");
                        }
                    }
                })
                .build()
        })
        .collect()
}

/// The whole run, inside the simulation.
async fn scenario(config: RunConfig, data_root: PathBuf) -> RunReport {
    let handle = Handle::current();
    let nodes = start_members(&handle, &config, &data_root);
    let client_node = handle
        .create_node()
        .name("clients")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)))
        .build();
    let channels = (0..config.member_count)
        .map(|index| {
            Endpoint::from_shared(format!("http://{}:{CLIENT_PORT}", member_ip(index)))
                .expect("a valid URI")
                .timeout(REQUEST_TIMEOUT)
                .connect_lazy()
        })
        .collect();
    let cluster = Arc::new(Cluster {
        nodes,
        channels,
        ids: Mutex::new(BTreeMap::new()),
        leader: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let recorder = Arc::new(Recorder::new());
    trace_stage("members started");
    let clients = client_node.spawn(workload::run(cluster.clone(), recorder.clone(), config));
    let fault_log = if config.faults {
        // The leader monitor aims faults; it runs on the clients' node (it needs the network).
        let monitor = client_node.spawn(monitor_leader(cluster.clone()));
        let log = faults::run(cluster.clone(), handle.clone()).await;
        let _ = monitor.await;
        log
    } else {
        Vec::new()
    };
    clients.await.expect("the clients' task completes");
    trace_stage("clients done");
    faults::heal(&cluster, &handle);
    let final_read_member_count = client_node
        .spawn(final_reads(cluster.clone(), recorder.clone()))
        .await
        .expect("the final reads complete");
    let history = recorder.history();
    let history_hash = fnv1a(checkers::history::write_history(&history).as_bytes());
    let linear_config = checkers::linear::LinearConfig {
        explain: checkers::linear::Explain::Fast,
        ..checkers::linear::LinearConfig::default()
    };
    let linear = checkers::linear::check_linearizable(&history, &linear_config);
    let watch = checkers::watch::check_watches(&history, linear.linearization.as_ref());
    let unknown_count = history.ops.iter().filter(|op| op.ret.is_none()).count();
    RunReport {
        history,
        history_hash,
        faults: fault_log,
        unknown_count,
        final_read_member_count,
        linearizability: linear.verdict,
        watch,
    }
}

/// After healing, reads every workload key linearizably through each member, retrying until it
/// answers (recorded like any operation); returns how many members answered.
async fn final_reads(cluster: Arc<Cluster>, recorder: Arc<Recorder>) -> usize {
    let started = madsim::time::Instant::now();
    let mut answered = 0;
    for channel in &cluster.channels {
        loop {
            let client = recorder.new_client();
            let read = workload::read_all();
            if let Outcome::Known(response) = recorder.run(client, channel, read).await {
                if !matches!(response, Response::Error { .. }) {
                    answered += 1;
                    break;
                }
            }
            if started.elapsed() > RECOVERY_TIMEOUT {
                break;
            }
            madsim::time::sleep(Duration::from_millis(200)).await;
        }
    }
    answered
}

/// What every client records into, on the simulation's clock.
pub(crate) struct Recorder {
    start: madsim::time::Instant,
    ops: Mutex<Vec<Operation>>,
    pub(crate) watches: Mutex<Vec<WatchRecord>>,
    next_op_id: AtomicU64,
    next_client_id: AtomicU64,
    pub(crate) next_watch_id: AtomicU64,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            start: madsim::time::Instant::now(),
            ops: Mutex::new(Vec::new()),
            watches: Mutex::new(Vec::new()),
            next_op_id: AtomicU64::new(1),
            next_client_id: AtomicU64::new(1),
            next_watch_id: AtomicU64::new(1),
        }
    }

    /// Virtual nanoseconds since the run started: the history's clock.
    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    /// A fresh client id.
    pub(crate) fn new_client(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `request` on `channel` as `client`, records the operation, returns its outcome.
    pub(crate) async fn run(&self, client: u64, channel: &Channel, request: Request) -> Outcome {
        let call = self.now();
        let outcome =
            match madsim::time::timeout(REQUEST_TIMEOUT, rpc::execute(channel, &request)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Unknown("timed out".into()),
            };
        let (ret, result) = match &outcome {
            Outcome::Known(response) => (Some(self.now()), Some(response.clone())),
            Outcome::Unknown(_) => (None, None),
        };
        let id = self.next_op_id.fetch_add(1, Ordering::Relaxed);
        self.ops.lock().expect("never poisoned").push(Operation {
            id,
            client,
            call,
            ret,
            request,
            result,
            user: None,
            lock: None,
        });
        outcome
    }

    fn history(&self) -> History {
        let mut ops = self.ops.lock().expect("never poisoned").clone();
        ops.sort_by_key(|op| op.id);
        let mut watches = self.watches.lock().expect("never poisoned").clone();
        watches.sort_by_key(|watch| watch.watch);
        History { ops, watches }
    }
}

/// Asks every member for its status until the run is done, keeping the id-to-member map and
/// the current leader, which the fault schedule aims at.
pub(crate) async fn monitor_leader(cluster: Arc<Cluster>) {
    while !cluster.done.load(Ordering::Relaxed) {
        for (index, channel) in cluster.channels.iter().enumerate() {
            let mut maintenance = pb::maintenance_client::MaintenanceClient::new(channel.clone());
            let asked = maintenance.status(pb::StatusRequest {});
            let Ok(Ok(status)) = madsim::time::timeout(Duration::from_millis(300), asked).await
            else {
                continue;
            };
            let status = status.into_inner();
            let own_id = status.header.as_ref().map_or(0, |header| header.member_id);
            let mut ids = cluster.ids.lock().expect("never poisoned");
            ids.insert(own_id, index);
            *cluster.leader.lock().expect("never poisoned") = ids.get(&status.leader).copied();
        }
        madsim::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A uniformly drawn duration in `[low, high)` from the run's seed.
pub(crate) fn draw(low: Duration, high: Duration) -> Duration {
    let nanos = madsim::rand::thread_rng().gen_range(low.as_nanos() as u64..high.as_nanos() as u64);
    Duration::from_nanos(nanos)
}

/// Prints a stage of the run when `DETCD_MADSIM_TRACE` is set (to find where a run stalls).
pub(crate) fn trace_stage(stage: &str) {
    if std::env::var_os("DETCD_MADSIM_TRACE").is_some() {
        eprintln!("[{:?}] {stage}", madsim::time::Instant::now());
    }
}

/// FNV-1a, 64 bits: a stable hash of the history text across builds and machines.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
