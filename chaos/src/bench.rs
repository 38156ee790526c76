//! `detcd bench serve`: etcd and detcd side by side, in one run, under one load generator.
//!
//! For each topology (1 and 3 members on loopback) it starts etcd (when an `etcd` binary is
//! found) and then detcd with the same flags (etcd's names: heartbeat 100 ms, election 1000 ms),
//! drives each with the same gRPC load (the server crate's generated clients), stops it, and
//! writes one JSON object: sequential put latency; puts at 8, 64 and 256 clients (ops/s, p50,
//! p99); Range at 64 clients, linearizable and serializable; put-to-watch-event latency; and
//! detcd's ratio to etcd for each figure, and what each request cost in CPU time (servers and
//! load generator apart). Clients spread over the members' client URLs, round robin, on at most
//! `CONNECTION_COUNT_MAX` HTTP/2 connections. Each system is measured several rounds, in
//! alternating order, and each figure reported is its median: on a shared machine a single
//! round can be far off, and alternation keeps a drifting machine from favouring either system.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};
use serde_json::{json, Value};
use server::proto::etcdserverpb as pb;
use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint};

use crate::cluster::free_port;

/// Client counts of the put phases (the list).
const PUT_CLIENT_COUNTS: [usize; 3] = [8, 64, 256];
/// Client count of the range phases.
const RANGE_CLIENT_COUNT: usize = 64;
/// HTTP/2 connections shared by a phase's clients at most.
const CONNECTION_COUNT_MAX: usize = 16;
/// Bytes of every value written (as etcd's benchmark tool's usual runs).
const VALUE_BYTES: usize = 256;
/// Distinct keys the put phases write.
const KEY_SPACE_COUNT: u64 = 100_000;
/// Rounds a run may ask for at most (each round measures every system once per topology).
pub const ROUND_COUNT_MAX: usize = 20;
/// How long a cluster may take to answer its first write.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `detcd bench serve` settings.
#[derive(Clone, Debug)]
pub struct BenchServeConfig {
    /// The `detcd` binary.
    pub executable: PathBuf,
    /// The etcd binary, when one was found.
    pub etcd: Option<PathBuf>,
    /// Topologies to measure (member counts).
    pub member_counts: Vec<usize>,
    /// Length of each throughput phase.
    pub phase: Duration,
    /// Requests of the sequential put and put-to-event phases.
    pub sequential_count: usize,
    /// Times each system is measured per topology, alternating which goes first; the figures
    /// reported are each figure's median over the rounds.
    pub round_count: usize,
    /// Where the members' data directories go (removed afterwards).
    pub work_dir: PathBuf,
}

/// A system under test: how to start one of its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Etcd,
    Detcd,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Etcd => "etcd",
            System::Detcd => "detcd",
        }
    }
}

/// A running cluster of one system; its processes are killed when it is dropped.
struct Servers {
    children: Vec<Child>,
    client_urls: Vec<String>,
    /// Each member's metrics address (`--listen-metrics-urls`).
    metrics_addresses: Vec<std::net::SocketAddr>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_servers(
    config: &BenchServeConfig,
    system: System,
    member_count: usize,
    dir: &Path,
) -> anyhow::Result<Servers> {
    let binary = match system {
        System::Etcd => config
            .etcd
            .clone()
            .expect("etcd is measured only when found"),
        System::Detcd => config.executable.clone(),
    };
    let names: Vec<String> = (1..=member_count)
        .map(|index| format!("b{index}"))
        .collect();
    let mut client_urls = Vec::new();
    let mut peer_urls = Vec::new();
    let mut metrics_addresses = Vec::new();
    for _ in 0..member_count {
        client_urls.push(format!("http://127.0.0.1:{}", free_port()?));
        peer_urls.push(format!("http://127.0.0.1:{}", free_port()?));
        metrics_addresses.push(std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?)));
    }
    let initial_cluster = names
        .iter()
        .zip(&peer_urls)
        .map(|(name, url)| format!("{name}={url}"))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::create_dir_all(dir)?;
    let mut servers = Servers {
        children: Vec::new(),
        client_urls: client_urls.clone(),
        metrics_addresses: metrics_addresses.clone(),
    };
    for index in 0..member_count {
        let log = std::fs::File::create(dir.join(format!("{}.log", names[index])))?;
        let mut command = Command::new(&binary);
        if system == System::Detcd {
            command.arg("serve");
        }
        command
            .args(["--name", &names[index]])
            .arg("--data-dir")
            .arg(dir.join(&names[index]))
            .args(["--listen-client-urls", &client_urls[index]])
            .args(["--advertise-client-urls", &client_urls[index]])
            .args(["--listen-peer-urls", &peer_urls[index]])
            .args(["--initial-advertise-peer-urls", &peer_urls[index]])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", "detcd-bench"])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .arg("--listen-metrics-urls")
            .arg(format!("http://{}", metrics_addresses[index]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        servers.children.push(command.spawn()?);
    }
    Ok(servers)
}

fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .timeout(Duration::from_secs(10))
        .connect_lazy())
}

fn value() -> Vec<u8> {
    vec![b'v'; VALUE_BYTES]
}

async fn wait_ready(servers: &Servers) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    for url in &servers.client_urls {
        let mut kv = pb::kv_client::KvClient::new(channel(url)?);
        loop {
            let probe = pb::PutRequest {
                key: b"bench-probe".to_vec(),
                value: b"1".to_vec(),
                ..Default::default()
            };
            if kv.put(probe).await.is_ok() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < READY_TIMEOUT,
                "{url} did not accept a write within {} s",
                READY_TIMEOUT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// p50 and p99 of latencies (nanoseconds), in milliseconds.
fn percentiles(latencies_ns: &mut [u64]) -> (f64, f64) {
    if latencies_ns.is_empty() {
        return (0.0, 0.0);
    }
    latencies_ns.sort_unstable();
    let at = |fraction: f64| {
        let index = ((latencies_ns.len() as f64 * fraction).ceil() as usize)
            .clamp(1, latencies_ns.len())
            - 1;
        latencies_ns[index] as f64 / 1e6
    };
    (at(0.50), at(0.99))
}

fn round3(number: f64) -> f64 {
    (number * 1000.0).round() / 1000.0
}

/// One request per loop of a throughput phase.
#[derive(Clone, Copy, Debug)]
enum Workload {
    Put,
    Range { serializable: bool },
}

/// Runs `client_count` clients for `phase`; returns the phase's JSON figures.
async fn throughput(
    urls: &[String],
    client_count: usize,
    workload: Workload,
    phase: Duration,
) -> anyhow::Result<Value> {
    let connection_count = client_count.min(CONNECTION_COUNT_MAX);
    let channels: Vec<Channel> = (0..connection_count)
        .map(|index| channel(&urls[index % urls.len()]))
        .collect::<anyhow::Result<_>>()?;
    let channels = Arc::new(channels);
    let started = tokio::time::Instant::now();
    let deadline = started + phase;
    let mut tasks = Vec::new();
    for client in 0..client_count {
        let channels = channels.clone();
        tasks.push(tokio::spawn(async move {
            let mut kv = pb::kv_client::KvClient::new(channels[client % channels.len()].clone());
            let mut rng = ChaCha8Rng::seed_from_u64(client as u64);
            let value = value();
            let mut latencies_ns = Vec::new();
            let mut error_count: u64 = 0;
            while tokio::time::Instant::now() < deadline {
                let sent = tokio::time::Instant::now();
                let result = match workload {
                    Workload::Put => {
                        let key = format!("key{:08}", rng.next_u64() % KEY_SPACE_COUNT);
                        kv.put(pb::PutRequest {
                            key: key.into_bytes(),
                            value: value.clone(),
                            ..Default::default()
                        })
                        .await
                        .map(drop)
                    }
                    Workload::Range { serializable } => kv
                        .range(pb::RangeRequest {
                            key: b"bench-range".to_vec(),
                            serializable,
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                };
                match result {
                    Ok(()) => latencies_ns.push(sent.elapsed().as_nanos() as u64),
                    Err(_) => error_count += 1,
                }
            }
            (latencies_ns, error_count)
        }));
    }
    let mut latencies_ns = Vec::new();
    let mut error_count = 0;
    for task in tasks {
        let (latencies, errors) = task.await?;
        latencies_ns.extend(latencies);
        error_count += errors;
    }
    let elapsed_seconds = started.elapsed().as_secs_f64();
    let (p50_ms, p99_ms) = percentiles(&mut latencies_ns);
    Ok(json!({
        "clients": client_count,
        "connections": connection_count,
        "ops_per_second": (latencies_ns.len() as f64 / elapsed_seconds).round(),
        "p50_ms": round3(p50_ms),
        "p99_ms": round3(p99_ms),
        "requests": latencies_ns.len(),
        "errors": error_count,
    }))
}

/// One client putting `count` times, one after the other.
async fn sequential_puts(url: &str, count: usize) -> anyhow::Result<Value> {
    let mut kv = pb::kv_client::KvClient::new(channel(url)?);
    let mut latencies_ns = Vec::with_capacity(count);
    let started = tokio::time::Instant::now();
    for index in 0..count {
        let sent = tokio::time::Instant::now();
        kv.put(pb::PutRequest {
            key: format!("seq{index:08}").into_bytes(),
            value: value(),
            ..Default::default()
        })
        .await?;
        latencies_ns.push(sent.elapsed().as_nanos() as u64);
    }
    let ops_per_second = count as f64 / started.elapsed().as_secs_f64();
    let (p50_ms, p99_ms) = percentiles(&mut latencies_ns);
    Ok(json!({
        "requests": count,
        "ops_per_second": ops_per_second.round(),
        "p50_ms": round3(p50_ms),
        "p99_ms": round3(p99_ms),
    }))
}

/// Put-to-watch-event latency: a watcher on one key of the first member, `count` puts one
/// after the other through the last member, each timed from its send to its event's arrival.
async fn put_to_event(urls: &[String], count: usize) -> anyhow::Result<Value> {
    let key = b"bench-watch".to_vec();
    let mut watch = pb::watch_client::WatchClient::new(channel(&urls[0])?);
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: key.clone(),
                ..Default::default()
            },
        )),
    };
    let requests = tokio_stream::iter([create]).chain(tokio_stream::pending());
    let mut events = watch.watch(requests).await?.into_inner();
    // The first reply confirms the watch exists, so no put can precede it.
    let created = events.next().await;
    anyhow::ensure!(
        matches!(&created, Some(Ok(reply)) if reply.created),
        "the watch was not created: {created:?}"
    );
    let mut kv = pb::kv_client::KvClient::new(channel(&urls[urls.len() - 1])?);
    let mut latencies_ns = Vec::with_capacity(count);
    for index in 0..count {
        let sent = tokio::time::Instant::now();
        kv.put(pb::PutRequest {
            key: key.clone(),
            value: format!("{index}").into_bytes(),
            ..Default::default()
        })
        .await?;
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .map_err(|_| anyhow::anyhow!("no watch event within 10 s"))?
                .ok_or_else(|| anyhow::anyhow!("the watch stream ended"))??;
            if !reply.events.is_empty() {
                break;
            }
        }
        latencies_ns.push(sent.elapsed().as_nanos() as u64);
    }
    let (p50_ms, p99_ms) = percentiles(&mut latencies_ns);
    Ok(json!({
        "events": count,
        "p50_ms": round3(p50_ms),
        "p99_ms": round3(p99_ms),
    }))
}

/// Metric samples summed over the members, one per name in `names`, read from `/metrics` with
/// a bare HTTP/1.0 GET. Both systems export the ones used here under etcd's names.
async fn metric_sums(servers: &Servers, names: &[&str]) -> Option<Vec<f64>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut sums = vec![0.0; names.len()];
    for address in &servers.metrics_addresses {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text))
            .await
            .ok()?
            .ok()?;
        for (sum, name) in sums.iter_mut().zip(names) {
            // The name alone, not a longer one it prefixes (`_count` vs `_count_total`).
            let line = text.lines().find(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })?;
            *sum += line.split_whitespace().last()?.parse::<f64>().ok()?;
        }
    }
    Some(sums)
}

/// WAL fsyncs over the members: `etcd_disk_wal_fsync_duration_seconds` count and summed seconds.
async fn fsync_totals(servers: &Servers) -> Option<(u64, f64)> {
    let sums = metric_sums(
        servers,
        &[
            "etcd_disk_wal_fsync_duration_seconds_count",
            "etcd_disk_wal_fsync_duration_seconds_sum",
        ],
    )
    .await?;
    Some((sums[0] as u64, sums[1]))
}

/// Leader changes the members have seen, summed (`etcd_server_leader_changes_seen_total`).
async fn leader_changes(servers: &Servers) -> Option<u64> {
    let sums = metric_sums(servers, &["etcd_server_leader_changes_seen_total"]).await?;
    Some(sums[0] as u64)
}

/// Runs one throughput phase and adds to its figures the leader changes the members saw
/// meanwhile: a phase that lost its leader measures an election, not the steady state.
async fn throughput_watched(
    servers: &Servers,
    client_count: usize,
    workload: Workload,
    phase: Duration,
) -> anyhow::Result<Value> {
    let before = leader_changes(servers).await;
    let cpu_before = cpu_totals(servers);
    let mut figures = throughput(&servers.client_urls, client_count, workload, phase).await?;
    let cpu_after = cpu_totals(servers);
    add_cpu_costs(&mut figures, cpu_before, cpu_after);
    let after = leader_changes(servers).await;
    figures["leader_changes_seen"] = match (before, after) {
        (Some(before), Some(after)) => json!(after.saturating_sub(before)),
        _ => Value::Null,
    };
    Ok(figures)
}

/// CPU seconds (user and system, all threads) a process has used so far, from
/// `/proc/<pid>/stat`; `None` where there is no such file (not Linux, or the process ended).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its `)`.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks as f64 / ticks_per_second as f64)
}

/// CPU seconds the servers' processes and this load generator have used so far.
fn cpu_totals(servers: &Servers) -> Option<(f64, f64)> {
    let mut server_seconds = 0.0;
    for child in &servers.children {
        server_seconds += cpu_seconds(&child.id().to_string())?;
    }
    Some((server_seconds, cpu_seconds("self")?))
}

/// Adds to a phase's figures the CPU time its requests cost, in microseconds per request:
/// the servers' (all members together) and the load generator's. On a shared machine this
/// says where the cores went, which throughput alone does not.
fn add_cpu_costs(figures: &mut Value, before: Option<(f64, f64)>, after: Option<(f64, f64)>) {
    let request_count = requests(figures).max(1) as f64;
    let per_request = |seconds: f64| (seconds * 1e6 / request_count).round();
    if let (Some((server_before, client_before)), Some((server_after, client_after))) =
        (before, after)
    {
        figures["server_cpu_us_per_request"] = json!(per_request(server_after - server_before));
        figures["client_cpu_us_per_request"] = json!(per_request(client_after - client_before));
    } else {
        figures["server_cpu_us_per_request"] = Value::Null;
        figures["client_cpu_us_per_request"] = Value::Null;
    }
}

/// Requests a phase completed.
fn requests(phase: &Value) -> u64 {
    phase["requests"].as_u64().unwrap_or(0)
}

/// Measures one system in one topology.
async fn measure(
    config: &BenchServeConfig,
    system: System,
    member_count: usize,
) -> anyhow::Result<Value> {
    let dir = config
        .work_dir
        .join(format!("{}-{member_count}", system.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let servers = start_servers(config, system, member_count, &dir)?;
    wait_ready(&servers).await?;
    let urls = servers.client_urls.clone();
    eprintln!(
        "bench serve: {} with {member_count} member(s)",
        system.name()
    );
    let sequential = sequential_puts(&urls[0], config.sequential_count).await?;
    let mut puts = Vec::new();
    for client_count in PUT_CLIENT_COUNTS {
        puts.push(throughput_watched(&servers, client_count, Workload::Put, config.phase).await?);
    }
    let mut kv = pb::kv_client::KvClient::new(channel(&urls[0])?);
    kv.put(pb::PutRequest {
        key: b"bench-range".to_vec(),
        value: value(),
        ..Default::default()
    })
    .await?;
    let linearizable = throughput_watched(
        &servers,
        RANGE_CLIENT_COUNT,
        Workload::Range {
            serializable: false,
        },
        config.phase,
    )
    .await?;
    let serializable = throughput_watched(
        &servers,
        RANGE_CLIENT_COUNT,
        Workload::Range { serializable: true },
        config.phase,
    )
    .await?;
    let watch = put_to_event(&urls, config.sequential_count).await?;
    let fsyncs = fsync_totals(&servers).await;
    drop(servers);
    // Every member's fsyncs over the puts the cluster acknowledged (the put phases, the
    // sequential and the put-to-event puts, and the probes), for where the write path's
    // time goes: one fsync per put means no group commit.
    let put_count = requests(&sequential)
        + puts.iter().map(requests).sum::<u64>()
        + watch["events"].as_u64().unwrap_or(0)
        + member_count as u64
        + 1;
    let disk = match fsyncs {
        Some((total, seconds)) => json!({
            "wal_fsync_mean_ms": round3(seconds * 1000.0 / total.max(1) as f64),
            "wal_fsyncs_all_members": total,
            "puts_acknowledged": put_count,
            "wal_fsyncs_per_put_per_member": round3(total as f64 / put_count as f64 / member_count as f64),
        }),
        None => json!({"note": "the members' /metrics could not be read"}),
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "system": system.name(),
        "members": member_count,
        "sequential_put": sequential,
        "put": puts,
        "range_linearizable": linearizable,
        "range_serializable": serializable,
        "put_to_watch_event": watch,
        "disk": disk,
    }))
}

/// The version line `etcd --version` prints first.
fn etcd_version(etcd: &Path) -> String {
    Command::new(etcd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// detcd's figure over etcd's, for every figure both measured.
fn ratios(etcd: &Value, detcd: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let mut add = |name: String, etcd_figure: &Value, detcd_figure: &Value| {
        if let (Some(etcd_number), Some(detcd_number)) =
            (etcd_figure.as_f64(), detcd_figure.as_f64())
        {
            if etcd_number > 0.0 {
                out.insert(name, json!(round3(detcd_number / etcd_number)));
            }
        }
    };
    for field in ["ops_per_second", "p50_ms", "p99_ms"] {
        add(
            format!("sequential_put_{field}"),
            &etcd["sequential_put"][field],
            &detcd["sequential_put"][field],
        );
        for (index, client_count) in PUT_CLIENT_COUNTS.iter().enumerate() {
            add(
                format!("put_{client_count}_clients_{field}"),
                &etcd["put"][index][field],
                &detcd["put"][index][field],
            );
        }
        for phase in ["range_linearizable", "range_serializable"] {
            add(
                format!("{phase}_{field}"),
                &etcd[phase][field],
                &detcd[phase][field],
            );
        }
    }
    for field in ["p50_ms", "p99_ms"] {
        add(
            format!("put_to_watch_event_{field}"),
            &etcd["put_to_watch_event"][field],
            &detcd["put_to_watch_event"][field],
        );
    }
    Value::Object(out)
}

/// The median of each figure over `rounds` (JSON values of one shape): numbers by median
/// (whole numbers stay whole), objects and arrays figure by figure, anything else as in the
/// first round.
fn median_figures(rounds: &[&Value]) -> Value {
    let Some(first) = rounds.first() else {
        return Value::Null;
    };
    match first {
        Value::Number(_) => {
            let mut numbers: Vec<f64> = rounds.iter().filter_map(|round| round.as_f64()).collect();
            if numbers.len() != rounds.len() {
                return Value::Null;
            }
            numbers.sort_by(f64::total_cmp);
            let middle = numbers.len() / 2;
            let median = if numbers.len() % 2 == 1 {
                numbers[middle]
            } else {
                (numbers[middle - 1] + numbers[middle]) / 2.0
            };
            if rounds.iter().all(|round| round.is_u64()) {
                json!(median.round() as u64)
            } else {
                json!(round3(median))
            }
        }
        Value::Object(fields) => Value::Object(
            fields
                .keys()
                .map(|name| {
                    let values: Vec<&Value> = rounds.iter().map(|round| &round[name]).collect();
                    (name.clone(), median_figures(&values))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            (0..items.len())
                .map(|index| {
                    let values: Vec<&Value> = rounds.iter().map(|round| &round[index]).collect();
                    median_figures(&values)
                })
                .collect(),
        ),
        other => (*other).clone(),
    }
}

/// Measures every system of `systems` `config.round_count` times in one topology, the order
/// reversed every other round (etcd, detcd, detcd, etcd, ...) so that a machine that slows or
/// speeds up during the run weighs on both alike. Returns each system's rounds.
async fn measure_rounds(
    config: &BenchServeConfig,
    systems: &[System],
    member_count: usize,
) -> anyhow::Result<Vec<Vec<Value>>> {
    let mut rounds = vec![Vec::new(); systems.len()];
    for round in 0..config.round_count {
        let mut order: Vec<usize> = (0..systems.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            eprintln!("bench serve: round {} of {}", round + 1, config.round_count);
            rounds[index].push(measure(config, systems[index], member_count).await?);
        }
    }
    Ok(rounds)
}

/// Runs the benchmark; returns its JSON.
pub async fn bench_serve(config: &BenchServeConfig) -> anyhow::Result<Value> {
    anyhow::ensure!(
        (1..=ROUND_COUNT_MAX).contains(&config.round_count),
        "--rounds {}: expected 1 to {ROUND_COUNT_MAX}",
        config.round_count
    );
    let mut results = Vec::new();
    let mut comparisons = Vec::new();
    let systems: &[System] = match config.etcd {
        Some(_) => &[System::Etcd, System::Detcd],
        None => &[System::Detcd],
    };
    for &member_count in &config.member_counts {
        anyhow::ensure!(
            (1..=9).contains(&member_count),
            "--members {member_count}: expected 1 to 9"
        );
        let rounds = measure_rounds(config, systems, member_count).await?;
        let medians: Vec<Value> = rounds
            .iter()
            .map(|system_rounds| {
                let mut median = median_figures(&system_rounds.iter().collect::<Vec<_>>());
                median["rounds"] = json!(system_rounds.len());
                median
            })
            .collect();
        if let [etcd, detcd] = medians.as_slice() {
            let by_round: Vec<Value> = rounds[0]
                .iter()
                .zip(&rounds[1])
                .map(|(etcd, detcd)| ratios(etcd, detcd))
                .collect();
            comparisons.push(json!({
                "members": member_count,
                "detcd_over_etcd": ratios(etcd, detcd),
                "detcd_over_etcd_by_round": by_round,
            }));
        }
        results.extend(medians);
    }
    let etcd = match &config.etcd {
        Some(path) => json!({"found": true, "version": etcd_version(path)}),
        None => json!({
            "found": false,
            "note": "no etcd binary on PATH: detcd measured alone (apt-get install etcd-server to compare)",
        }),
    };
    Ok(json!({
        "bench": "serve",
        "cores": std::thread::available_parallelism().map_or(0, |cores| cores.get()),
        "phase_seconds": config.phase.as_secs_f64(),
        "rounds": config.round_count,
        "figures": "each figure is its median over the rounds; detcd_over_etcd divides the medians",
        "value_bytes": VALUE_BYTES,
        "etcd": etcd,
        "results": results,
        "comparison": comparisons,
    }))
}

/// `detcd bench serve`: prints the JSON (and writes it to `out` when given); returns the exit
/// status.
pub fn bench_serve_command(config: &BenchServeConfig, out: Option<&Path>) -> i32 {
    if config.etcd.is_none() {
        eprintln!("bench serve: etcd is not on PATH: measuring detcd alone");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return 2;
        }
    };
    let result = runtime.block_on(bench_serve(config));
    let _ = std::fs::remove_dir_all(&config.work_dir);
    match result {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).expect("JSON serialises");
            println!("{text}");
            if let Some(path) = out {
                if let Err(error) = std::fs::write(path, format!("{text}\n")) {
                    eprintln!("error: cannot write {}: {error}", path.display());
                    return 2;
                }
            }
            0
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    }
}

/// The `etcd` binary on PATH, if any.
pub fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{cpu_seconds, median_figures, percentiles};

    /// Goal: a round that ran slow moves no reported figure, and the report keeps its shape.
    /// Method: three rounds of one shape, one of them far off; each number is the middle one,
    /// whole numbers stay whole, texts come from the first round; an even count averages the
    /// middle two.
    #[test]
    fn each_figure_is_its_median_over_the_rounds() {
        let rounds = [
            json!({"system": "detcd", "put": [{"ops_per_second": 100, "p99_ms": 2.5}]}),
            json!({"system": "detcd", "put": [{"ops_per_second": 10, "p99_ms": 40.0}]}),
            json!({"system": "detcd", "put": [{"ops_per_second": 120, "p99_ms": 2.0}]}),
        ];
        let all: Vec<_> = rounds.iter().collect();
        assert_eq!(
            median_figures(&all),
            json!({"system": "detcd", "put": [{"ops_per_second": 100, "p99_ms": 2.5}]})
        );
        assert_eq!(
            median_figures(&all[..2]),
            json!({"system": "detcd", "put": [{"ops_per_second": 55, "p99_ms": 21.25}]})
        );
        // A figure one round could not measure is not made up from the others.
        let missing = json!({"system": "detcd", "put": [{"ops_per_second": null, "p99_ms": 1.0}]});
        assert_eq!(
            median_figures(&[&rounds[0], &missing])["put"][0]["ops_per_second"],
            serde_json::Value::Null
        );
    }

    /// Goal: the CPU time read for a process is its own and grows as it works. Method: read
    /// this process's, spin a little, read again.
    #[test]
    fn cpu_seconds_of_this_process_grow_as_it_works() {
        let Some(before) = cpu_seconds("self") else {
            // No /proc here: the figure is reported as null, which the bench tolerates.
            assert!(!std::path::Path::new("/proc/self/stat").exists());
            return;
        };
        let mut sum = 0u64;
        while cpu_seconds("self").expect("still readable") < before + 0.05 {
            sum = sum.wrapping_add(std::hint::black_box(sum) | 1);
        }
        assert!(cpu_seconds("self").expect("readable") >= before + 0.05);
        assert!(cpu_seconds("no-such-process").is_none());
    }

    /// Goal: percentiles pick the nearest rank, in milliseconds. Method: 100 latencies of
    /// 1..=100 ms; p50 is 50 ms, p99 is 99 ms; no latencies give zeros.
    #[test]
    fn percentiles_are_nearest_rank() {
        let mut latencies_ns: Vec<u64> = (1..=100).rev().map(|ms| ms * 1_000_000).collect();
        assert_eq!(percentiles(&mut latencies_ns), (50.0, 99.0));
        assert_eq!(percentiles(&mut []), (0.0, 0.0));
    }
}
