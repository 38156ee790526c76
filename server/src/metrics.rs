//! Observability over HTTP on `--listen-metrics-urls`: Prometheus `/metrics` with etcd's
//! metric names where etcd has one (`etcd_server_has_leader`, `etcd_server_leader_changes_seen_total`,
//! `etcd_server_proposals_committed_total`, `..._applied_total`, `..._pending`, `..._failed_total`,
//! `etcd_disk_wal_fsync_duration_seconds`, `etcd_mvcc_db_total_size_in_bytes`,
//! `etcd_debugging_mvcc_watcher_total`) and `detcd_server_term` where it has none, and `/health`
//! answering as etcd's does (`{"health":"true"}` while the member knows a leader).
//!
//! The values are read from the member task after each step; nothing here changes the member.

use std::net::SocketAddr;
use std::sync::Arc;

use engine::kv::RequestError;
use engine::member::MemberStatus;
use prometheus::{Encoder as _, Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use tokio::sync::mpsc;

use crate::task::Command;

/// The member's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    has_leader: IntGauge,
    is_leader: IntGauge,
    term: IntGauge,
    leader_changes: IntCounter,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    proposals_pending: IntGauge,
    proposals_failed: IntCounter,
    /// WAL fsync latency, observed by the disk thread.
    pub wal_fsync_seconds: Histogram,
    db_size_bytes: IntGauge,
    watchers: IntGauge,
    /// Times a watch's stream filled and the engine was told to hold its events back.
    pub watch_slow: IntCounter,
    /// The leader seen at the last sample (0: none), to count changes.
    last_leader: std::sync::atomic::AtomicU64,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("a valid metric name");
    registry
        .register(Box::new(gauge.clone()))
        .expect("registered once");
    gauge
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("a valid metric name");
    registry
        .register(Box::new(counter.clone()))
        .expect("registered once");
    counter
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // etcd's buckets for fsync: 1 ms doubling 14 times.
        let fsync_opts = HistogramOpts::new(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
        )
        .buckets(prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets"));
        let wal_fsync_seconds = Histogram::with_opts(fsync_opts).expect("a valid histogram");
        registry
            .register(Box::new(wal_fsync_seconds.clone()))
            .expect("registered once");
        Metrics {
            has_leader: gauge(
                &registry,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                &registry,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            term: gauge(
                &registry,
                "detcd_server_term",
                "The raft term this member is in.",
            ),
            leader_changes: counter(
                &registry,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            proposals_committed: gauge(
                &registry,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                &registry,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                &registry,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                &registry,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            db_size_bytes: gauge(
                &registry,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            watchers: gauge(
                &registry,
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            ),
            watch_slow: counter(
                &registry,
                "detcd_server_watch_stream_full_total",
                "Times a watch stream's buffer filled and its watch was paused (backpressure).",
            ),
            wal_fsync_seconds,
            registry,
            last_leader: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records the member's state after a step.
    pub fn sample(&self, status: &MemberStatus, watchers_count: usize) {
        let leader = status.leader.map_or(0, |leader| leader.0);
        self.has_leader.set(i64::from(leader != 0));
        self.is_leader.set(i64::from(status.is_leader));
        self.term.set(status.term.0 as i64);
        self.proposals_committed.set(status.commit_index.0 as i64);
        self.proposals_applied.set(status.applied_index.0 as i64);
        self.proposals_pending
            .set(status.pending_requests_count as i64);
        self.watchers.set(watchers_count as i64);
        let previous = self
            .last_leader
            .swap(leader, std::sync::atomic::Ordering::Relaxed);
        if leader != 0 && leader != previous {
            self.leader_changes.inc();
            tracing::info!(leader = %format!("{leader:x}"), term = status.term.0, "leader changed");
        } else if leader == 0 && previous != 0 {
            // As etcd's "lost leader" line: an operator reading the log sees where elections began.
            tracing::warn!(previous = %format!("{previous:x}"), term = status.term.0, "lost the leader");
        }
    }

    /// Counts an answer that tells a client its proposal failed or may not have taken effect.
    pub fn answered(&self, error: &RequestError) {
        if matches!(
            error,
            RequestError::NotLeader { .. }
                | RequestError::LeaderChanged
                | RequestError::Stopping
                | RequestError::TooManyRequests
        ) {
            self.proposals_failed.inc();
        }
    }

    /// The Prometheus text exposition of every metric, the data dir's size sampled now.
    pub fn render(&self, data_dir: &std::path::Path) -> String {
        let size_bytes: u64 = std::fs::read_dir(data_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.metadata().ok())
                    .filter(std::fs::Metadata::is_file)
                    .map(|metadata| metadata.len())
                    .sum()
            })
            .unwrap_or(0);
        self.db_size_bytes.set(size_bytes as i64);
        let mut bytes = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut bytes)
            .expect("text encoding never fails");
        String::from_utf8(bytes).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Under madsim there is no HTTP server to serve on (axum needs real sockets): the flag is
/// refused, naming it, rather than silently ignored.
#[cfg(madsim)]
pub async fn serve(
    address: SocketAddr,
    _metrics: Arc<Metrics>,
    _commands: mpsc::Sender<Command>,
    _data_dir: std::path::PathBuf,
) -> Result<(), String> {
    Err(format!(
        "--listen-metrics-urls http://{address}: the metrics endpoint is not served under madsim"
    ))
}

/// Serves `/metrics` and `/health` on `address` until the process ends.
#[cfg(not(madsim))]
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    commands: mpsc::Sender<Command>,
    data_dir: std::path::PathBuf,
) -> Result<(), String> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen for metrics on {address}: {error}"))?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                let data_dir = data_dir.clone();
                async move { metrics.render(&data_dir) }
            }),
        )
        .route(
            "/health",
            get(move || {
                let commands = commands.clone();
                async move { health(commands).await }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(())
}

/// etcd's health answer: healthy while the member runs and knows a leader.
#[cfg(not(madsim))]
async fn health(commands: mpsc::Sender<Command>) -> (axum::http::StatusCode, String) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let status = match commands.send(Command::Status { reply }).await {
        Ok(()) => tokio::time::timeout(std::time::Duration::from_secs(1), answer)
            .await
            .ok()
            .and_then(Result::ok),
        Err(_) => None,
    };
    let healthy = status.is_some_and(|status| status.leader.is_some() && status.halted.is_none());
    if healthy {
        (axum::http::StatusCode::OK, "{\"health\":\"true\"}".into())
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "{\"health\":\"false\"}".into(),
        )
    }
}
