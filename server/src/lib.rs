//! The thin real-network adapter behind `detcd serve`: hosts the engine over tokio and tonic with
//! the etcd v3 gRPC services and real files with fsync. It carries out the engine's actions and
//! adds no consensus or storage logic of its own. May use: `engine`, `checkers` (to record
//! histories).

pub mod proto {
    //! The etcd v3 protos, compiled by build.rs.
    #![allow(missing_docs, clippy::all, unreachable_pub)]
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
    }
    pub mod v3electionpb {
        tonic::include_proto!("v3electionpb");
    }
}

/// `tokio::select!`, as is in the normal build. Under madsim its branches are polled in the
/// order written (`biased;`): tokio draws the unbiased order from a thread-local generator
/// seeded from process-wide state (a counter shared by every thread), not from madsim's seed,
/// so two runs of one seed in one process would pick differently whenever two branches are
/// ready at once. madsim still draws the order of ready tasks from the seed.
#[cfg(not(madsim))]
macro_rules! select {
    ($($branches:tt)*) => { tokio::select! { $($branches)* } };
}
#[cfg(madsim)]
macro_rules! select {
    ($($branches:tt)*) => { tokio::select! { biased; $($branches)* } };
}

mod admin;
pub mod auth;
pub mod cluster;
mod convert;
pub mod disk;
mod election;
#[cfg(not(madsim))]
pub mod gateway;
mod grpc;
pub mod history_rpc;
mod lock;
pub mod membership;
pub mod metrics;
pub mod peer;
mod recipes;

/// Starts the log: `level` as etcd's `--log-level` (debug, info, warn, error; panic and fatal
/// read as error), one JSON object per line when `json` is set, else human-readable lines, on
/// standard error. Fails on an unknown level, naming it.
pub fn init_logging(level: &str, json: bool) -> Result<(), String> {
    let filter = match level {
        "debug" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "warn" => tracing::Level::WARN,
        "error" | "dpanic" | "panic" | "fatal" => tracing::Level::ERROR,
        other => {
            return Err(format!(
                "--log-level {other:?}: expected debug, info, warn, error, panic or fatal"
            ))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second call (tests start several servers in one process) keeps the first log.
    let _already_installed = installed;
    Ok(())
}
pub mod task;
pub mod tls;
pub mod watch_stream;

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

use engine::member::MemberConfig;
use engine::types::Duration;
use tokio::sync::mpsc;

/// `detcd serve`'s settings, named and defaulted as etcd's flags are.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// `--name`: the member's human-readable name.
    pub name: String,
    /// `--data-dir`: where the WAL and snapshots live.
    pub data_dir: PathBuf,
    /// `--listen-client-urls`: where clients connect (`http://host:port`, comma-separated).
    pub listen_client_urls: String,
    /// `--advertise-client-urls`: the client URLs told to clients (defaults to the listen ones).
    pub advertise_client_urls: Option<String>,
    /// `--listen-peer-urls`: where peers connect.
    pub listen_peer_urls: String,
    /// `--initial-advertise-peer-urls`: the peer URLs told to the cluster.
    pub initial_advertise_peer_urls: Option<String>,
    /// `--initial-cluster`: `name=peer-url,...` of every initial member.
    pub initial_cluster: Option<String>,
    /// `--initial-cluster-state`: `new` or `existing`.
    pub initial_cluster_state: String,
    /// `--initial-cluster-token`: distinguishes clusters started with the same members.
    pub initial_cluster_token: String,
    /// `--heartbeat-interval` in ms: one raft tick.
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout` in ms.
    pub election_timeout_ms: u64,
    /// `--snapshot-count`: applied entries between snapshots.
    pub snapshot_count: u64,
    /// `--max-request-bytes`: the largest client request accepted.
    pub max_request_bytes: u32,
    /// `--max-txn-ops`: the most operations in one txn.
    pub max_txn_ops: u32,
    /// `--listen-metrics-urls`: where `/metrics` and `/health` are served, if anywhere.
    pub listen_metrics_urls: Option<String>,
    /// `--bcrypt-cost`: bcrypt's cost for password hashes (4 to 31).
    pub bcrypt_cost: u32,
    /// `--auth-token-ttl` in seconds: a simple token is forgotten this long after its last use.
    pub auth_token_ttl_seconds: u64,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`: client TLS.
    pub client_tls: tls::TlsFiles,
    /// `--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`,
    /// `--peer-client-cert-auth`: peer TLS.
    pub peer_tls: tls::TlsFiles,
}

impl Default for ServeConfig {
    /// etcd's defaults, with detcd's data directory name (`default.detcd`).
    fn default() -> ServeConfig {
        ServeConfig {
            name: "default".into(),
            data_dir: PathBuf::from("default.detcd"),
            listen_client_urls: "http://localhost:2379".into(),
            advertise_client_urls: None,
            listen_peer_urls: "http://localhost:2380".into(),
            initial_advertise_peer_urls: None,
            initial_cluster: None,
            initial_cluster_state: "new".into(),
            initial_cluster_token: "etcd-cluster".into(),
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_count: 100_000,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            listen_metrics_urls: None,
            bcrypt_cost: auth::BCRYPT_COST_DEFAULT,
            auth_token_ttl_seconds: 300,
            client_tls: tls::TlsFiles::default(),
            peer_tls: tls::TlsFiles::default(),
        }
    }
}

/// Why serving ended.
#[derive(Debug)]
pub enum ServeOutcome {
    /// Stopped by a signal, cleanly.
    Stopped,
    /// The member halted (fail-stop); exit with this status.
    Halted {
        /// The process exit status for the reason.
        exit_code: i32,
        /// What happened.
        reason: String,
    },
}

/// Parses `http://host:port` or `https://host:port` (the first of a comma-separated list) into
/// a socket address; whether the scheme asks for TLS is `tls::is_https`'s to say.
pub fn parse_url(flag: &str, urls: &str) -> Result<SocketAddr, String> {
    let first = urls.split(',').next().unwrap_or_default().trim();
    let rest = first
        .strip_prefix("http://")
        .or_else(|| first.strip_prefix("https://"))
        .ok_or_else(|| format!("{flag} {first:?}: expected a URL such as http://127.0.0.1:2379"))?;
    let host_port = rest.trim_end_matches('/');
    host_port
        .to_socket_addrs()
        .map_err(|error| format!("{flag} {first}: {error}"))?
        .next()
        .ok_or_else(|| format!("{flag} {first}: the host has no address"))
}

impl ServeConfig {
    /// Checks the flags; the error names the flag. Returns the client address to listen on.
    pub fn validate(&self) -> Result<SocketAddr, String> {
        let client = parse_url("--listen-client-urls", &self.listen_client_urls)?;
        parse_url("--listen-peer-urls", &self.listen_peer_urls)?;
        if let Some(urls) = &self.advertise_client_urls {
            parse_url("--advertise-client-urls", urls)?;
        }
        if self.heartbeat_interval_ms == 0 {
            return Err("--heartbeat-interval must be at least 1 (ms)".into());
        }
        if self.election_timeout_ms <= self.heartbeat_interval_ms {
            return Err(format!(
                "--election-timeout ({} ms) must be longer than --heartbeat-interval ({} ms)",
                self.election_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        if self.max_txn_ops == 0 {
            return Err("--max-txn-ops must be at least 1".into());
        }
        if let Some(urls) = &self.listen_metrics_urls {
            parse_url("--listen-metrics-urls", urls)?;
        }
        if !(auth::BCRYPT_COST_MIN..=auth::BCRYPT_COST_MAX).contains(&self.bcrypt_cost) {
            return Err(format!(
                "--bcrypt-cost {}: expected {} to {}",
                self.bcrypt_cost,
                auth::BCRYPT_COST_MIN,
                auth::BCRYPT_COST_MAX
            ));
        }
        if self.auth_token_ttl_seconds == 0 {
            return Err("--auth-token-ttl must be at least 1 (s)".into());
        }
        if self.snapshot_count == 0 {
            return Err("--snapshot-count must be at least 1".into());
        }
        if self.initial_cluster_state != "new" && self.initial_cluster_state != "existing" {
            return Err(format!(
                "--initial-cluster-state {:?}: expected new or existing",
                self.initial_cluster_state
            ));
        }
        self.layout()?;
        self.check_tls()?;
        Ok(client)
    }

    /// Checks the TLS flags against the URLs' schemes and loads every file they name, so a
    /// missing file, bad PEM or a key that does not fit its certificate fails at the start.
    fn check_tls(&self) -> Result<(), String> {
        if tls::check_side(
            &self.client_tls,
            "",
            "--listen-client-urls",
            &self.listen_client_urls,
        )? {
            #[cfg(not(madsim))]
            tls::server_config(&self.client_tls, "")?;
        }
        if let Some(urls) = &self.advertise_client_urls {
            if tls::is_https(urls) && !tls::is_https(&self.listen_client_urls) {
                return Err(format!(
                    "--advertise-client-urls {urls}: https, but --listen-client-urls {} serves \
                     plain http",
                    self.listen_client_urls
                ));
            }
        }
        self.peer_tls_config().map(drop)
    }

    /// Peer TLS when `--listen-peer-urls` is https (checked and loaded), else `None`.
    fn peer_tls_config(&self) -> Result<Option<tls::PeerTls>, String> {
        let https = tls::check_side(
            &self.peer_tls,
            "peer-",
            "--listen-peer-urls",
            &self.listen_peer_urls,
        )?;
        let own = self.own_peer_url();
        if tls::is_https(&own) != https {
            return Err(format!(
                "--initial-advertise-peer-urls {own}: its scheme differs from --listen-peer-urls {}",
                self.listen_peer_urls
            ));
        }
        if !https {
            return Ok(None);
        }
        #[cfg(not(madsim))]
        {
            tls::PeerTls::load(&self.peer_tls).map(Some)
        }
        #[cfg(madsim)]
        {
            Err("peer TLS is not available under madsim".into())
        }
    }

    /// The peer URL this member advertises.
    fn own_peer_url(&self) -> String {
        let urls = self
            .initial_advertise_peer_urls
            .as_deref()
            .unwrap_or(&self.listen_peer_urls);
        urls.split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The client URL this member advertises.
    fn own_client_url(&self) -> String {
        let urls = self
            .advertise_client_urls
            .as_deref()
            .unwrap_or(&self.listen_client_urls);
        urls.split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The cluster's members and ids from `--initial-cluster`, `--name` and the token.
    pub fn layout(&self) -> Result<cluster::ClusterLayout, String> {
        cluster::layout(
            &self.name,
            self.initial_cluster.as_deref(),
            &self.own_peer_url(),
            &self.initial_cluster_token,
        )
    }

    /// Whether this member joins a running cluster (`--initial-cluster-state existing`).
    fn joins(&self) -> bool {
        self.initial_cluster_state == "existing"
    }

    fn member_config(&self, layout: &cluster::ClusterLayout, seed: u64) -> MemberConfig {
        // A joining member is not among the voters it starts from: the cluster's log (or a
        // snapshot) makes it a learner or voter once it applies its addition.
        let voters = layout
            .members
            .iter()
            .map(|member| member.id)
            .filter(|id| !self.joins() || *id != layout.self_id)
            .collect();
        let mut config = MemberConfig::new(layout.self_id, voters, seed);
        config.joining = self.joins();
        config.cluster_id = layout.cluster_id;
        config.tick_interval = Duration::from_millis(self.heartbeat_interval_ms);
        config.heartbeat_interval_ticks = 1;
        config.election_timeout_ticks =
            u32::try_from(self.election_timeout_ms / self.heartbeat_interval_ms)
                .unwrap_or(u32::MAX);
        config.snapshot_interval_entries = self.snapshot_count;
        // The server does not observe the member's periodic kv hashes (a simulator's check):
        // each one hashes the whole store, a cost that grows with it, so it is never asked for.
        // HashKV hashes on demand.
        config.kv_hash_interval_entries = u64::MAX;
        config.request_bytes_max = self.max_request_bytes;
        config.txn_ops_count_max = self.max_txn_ops;
        config.auth_token_ttl = Duration::from_secs(self.auth_token_ttl_seconds);
        config
    }
}

/// Serves one member until SIGINT or SIGTERM stops it or the member halts.
pub async fn serve(config: ServeConfig) -> anyhow::Result<ServeOutcome> {
    serve_until(config, shutdown_signal()).await
}

/// How this member dials the leader for lease requests: with the client port's TLS files when
/// it serves https (with http ones they are ignored, as etcd ignores them, so they cannot fail
/// the start).
#[cfg(not(madsim))]
fn leader_dialer(config: &ServeConfig) -> anyhow::Result<tls::LeaderDialer> {
    let files = match tls::is_https(&config.listen_client_urls) {
        true => config.client_tls.clone(),
        false => tls::TlsFiles::default(),
    };
    tls::LeaderDialer::load(&files).map_err(anyhow::Error::msg)
}

/// Serves one member until `shutdown` completes or the member halts (tests stop it this way).
pub async fn serve_until(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ServeOutcome> {
    let client_address = config.validate().map_err(anyhow::Error::msg)?;
    let mut data_dir = disk::DataDir::open(&config.data_dir).map_err(anyhow::Error::msg)?;
    let mut image = data_dir.image().map_err(anyhow::Error::msg)?;
    // A new seed per start, persisted before the member runs (the host contract's rule).
    let base =
        host::incarnation::base_seed(&format!("{}/{}", config.initial_cluster_token, config.name));
    let (incarnation, ops) = host::incarnation::next(&mut image, base)
        .map_err(|error| anyhow::anyhow!("{}: {error}", config.data_dir.display()))?;
    for op in &ops {
        data_dir.perform(op).map_err(|fault| {
            anyhow::anyhow!(
                "{}: cannot record the start count: {fault:?}",
                config.data_dir.display()
            )
        })?;
    }
    let fresh = image.is_empty();
    let layout = config.layout().map_err(anyhow::Error::msg)?;
    let prepared = task::Prepared {
        config: config.member_config(&layout, incarnation.seed),
        image,
    };
    let (commands, receiver) = mpsc::channel(task::COMMANDS_COUNT_MAX);
    let metrics = std::sync::Arc::new(metrics::Metrics::new());
    if let Some(urls) = &config.listen_metrics_urls {
        let address = parse_url("--listen-metrics-urls", urls).map_err(anyhow::Error::msg)?;
        metrics::serve(
            address,
            metrics.clone(),
            commands.clone(),
            config.data_dir.clone(),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        tracing::info!(%address, "serving /metrics and /health");
    }
    let client_urls = peer::ClientUrls::default();
    let peer_table = peer::PeerTable::default();
    let membership = std::sync::Arc::new(std::sync::Mutex::new(membership::View::new(
        &layout,
        peer_table.clone(),
    )));
    // The transport runs even for one member: members added at run time reach it there.
    let peer_config = peer::PeerConfig {
        id: layout.self_id,
        cluster_hash: layout.cluster_id,
        listen: parse_url("--listen-peer-urls", &config.listen_peer_urls)
            .map_err(anyhow::Error::msg)?,
        peers: peer_table,
        client_url: config.own_client_url(),
        tls: config.peer_tls_config().map_err(anyhow::Error::msg)?,
    };
    let outbox = Some(
        peer::start(peer_config, commands.clone(), client_urls.clone())
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let (stop_member, member_stop) = tokio::sync::watch::channel(false);
    let (started_reply, started) = tokio::sync::oneshot::channel();
    let member_task = tokio::spawn(task::run(
        prepared,
        data_dir,
        task::ClusterLinks {
            outbox,
            membership: membership.clone(),
        },
        metrics.clone(),
        receiver,
        member_stop,
        started_reply,
    ));
    match started.await {
        Ok(Ok(report)) => {
            for note in &report.notes {
                tracing::warn!(data_dir = %config.data_dir.display(), "recovery: {note}");
            }
        }
        Ok(Err(error)) => {
            let _ = member_task.await;
            anyhow::bail!("{}: {error}", config.data_dir.display());
        }
        Err(_) => anyhow::bail!("the member task ended before it started"),
    }
    let info = grpc::MemberInfo {
        id: layout.self_id.0,
        cluster_id: layout.cluster_id,
        membership: membership.clone(),
        token: config.initial_cluster_token.clone(),
        own_client_url: config.own_client_url(),
        learned_client_urls: client_urls,
        version: env!("CARGO_PKG_VERSION").to_string(),
        auth: auth::AuthSettings {
            bcrypt_cost: config.bcrypt_cost,
        },
        auth_dummy_hash: std::sync::OnceLock::new(),
        #[cfg(not(madsim))]
        leader_dialer: leader_dialer(&config)?,
    };
    // A member added at run time tells the cluster its name and client URL once it runs (etcd
    // publishes its attributes likewise); members of `--initial-cluster` are known by all.
    let own = membership::Attributes {
        name: config.name.clone(),
        peer_urls: vec![config.own_peer_url()],
        client_urls: vec![config.own_client_url()],
    };
    tokio::spawn(membership::publish(
        layout.self_id,
        own,
        membership,
        commands.clone(),
    ));
    let services = grpc::Services::new(commands, info);
    let client_scheme = if tls::is_https(&config.listen_client_urls) {
        "https"
    } else {
        "http"
    };
    let incoming = client_listener::bind(client_address, &config).await?;
    eprintln!(
        "detcd: serving member {:?} (id {:x}) of {} for clients on {client_scheme}://{client_address}; data in {} ({}, start {})",
        config.name,
        layout.self_id.0,
        match layout.members.len() {
            1 => "a one-member cluster".to_string(),
            count => format!("{count} members"),
        },
        config.data_dir.display(),
        if fresh { "new" } else { "recovered" },
        incarnation.number
    );
    let (member_done, mut member_done_receiver) = tokio::sync::oneshot::channel();
    let member_task = tokio::spawn(async move {
        let halted = member_task.await.ok().flatten();
        let _ = member_done.send(halted.clone());
        halted
    });
    let stop_requested = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut halted = None;
    let body_bytes_max = gateway_body_bytes_max(config.max_request_bytes);
    let server = client_listener::serve(services, body_bytes_max, incoming, {
        let stop_requested = stop_requested.clone();
        let halted = &mut halted;
        async move {
            select! {
                () = shutdown => {}
                result = &mut member_done_receiver => *halted = result.ok().flatten(),
            }
            stop_requested.notify_one();
        }
    });
    // Graceful shutdown waits for open streams (watches, keep-alives) that a client may never
    // close: after the grace period the server stops regardless, closing them.
    select! {
        result = server => result?,
        () = async {
            stop_requested.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {}
    }
    // The member task ends and releases the data dir's lock before this returns, so a restart
    // on the same directory finds it free.
    let _ = stop_member.send(true);
    let member_halted = member_task.await.ok().flatten();
    Ok(match halted.or(member_halted) {
        Some(reason) => ServeOutcome::Halted {
            exit_code: task::halt_exit_code(&reason),
            reason: format!("{reason:?}"),
        },
        None => ServeOutcome::Stopped,
    })
}

/// The largest JSON body (or message of a JSON stream) the gateway reads: a request of
/// `--max-request-bytes` in base64 (4/3 larger) with room for the JSON around it.
fn gateway_body_bytes_max(max_request_bytes: u32) -> usize {
    usize::try_from(max_request_bytes).unwrap_or(usize::MAX) / 3 * 4 + 64 * 1024
}

/// How long open streams get to finish once a stop was asked for.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    // madsim simulates Ctrl-C only (`Handle::send_ctrl_c`); a test kills a node otherwise.
    #[cfg(all(unix, not(madsim)))]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler installs");
        select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(any(not(unix), madsim))]
    {
        let _ = interrupt.await;
    }
}

/// Where clients connect: the one seam between real sockets and madsim's simulated network
/// for the gRPC services (madsim-tonic serves on an address, not on a listener).
mod client_listener {
    use std::net::SocketAddr;

    /// The bound client listener (real sockets), bound before the member reports it serves:
    /// plain, or handing out connections after their TLS handshakes.
    #[cfg(not(madsim))]
    pub(crate) enum Incoming {
        /// `http://`.
        Plain(tonic::transport::server::TcpIncoming),
        /// `https://`.
        Tls(crate::tls::ClientIncoming),
    }
    /// The client address (madsim binds it when the server starts).
    #[cfg(madsim)]
    pub(crate) type Incoming = SocketAddr;

    /// Binds the client address, failing with a message naming it.
    #[cfg(not(madsim))]
    pub(crate) async fn bind(
        address: SocketAddr,
        config: &crate::ServeConfig,
    ) -> anyhow::Result<Incoming> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))?;
        if crate::tls::is_https(&config.listen_client_urls) {
            let tls =
                crate::tls::server_config(&config.client_tls, "").map_err(anyhow::Error::msg)?;
            return Ok(Incoming::Tls(crate::tls::client_incoming(
                listener,
                tls,
                config.client_tls.client_cert_auth,
            )));
        }
        // Nagle's algorithm would hold small replies back behind delayed ACKs (tens of ms);
        // tonic sets TCP_NODELAY only on listeners it binds itself, so say it here, as etcd does.
        Ok(Incoming::Plain(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        ))
    }

    /// Keeps the address for `serve` (madsim-tonic binds it itself).
    #[cfg(madsim)]
    pub(crate) async fn bind(
        address: SocketAddr,
        _config: &crate::ServeConfig,
    ) -> anyhow::Result<Incoming> {
        Ok(address)
    }

    /// Serves the services until `shutdown` completes: gRPC and the HTTP/JSON gateway on one
    /// port (HTTP/1.1 for JSON clients), gRPC alone under madsim, whose tonic has no HTTP/1.1.
    pub(crate) async fn serve(
        services: crate::grpc::Services,
        body_bytes_max: usize,
        incoming: Incoming,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        use crate::proto::etcdserverpb::{
            auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
            lease_server::LeaseServer, maintenance_server::MaintenanceServer,
            watch_server::WatchServer,
        };
        use crate::proto::v3electionpb::election_server::ElectionServer;
        use crate::proto::v3lockpb::lock_server::LockServer;
        #[cfg(not(madsim))]
        {
            let grpc_routes = tonic::service::Routes::new(KvServer::new(services.clone()))
                .add_service(WatchServer::new(services.clone()))
                .add_service(LeaseServer::new(services.clone()))
                .add_service(ClusterServer::new(services.clone()))
                .add_service(AuthServer::new(services.clone()))
                .add_service(LockServer::new(services.clone()))
                .add_service(ElectionServer::new(services.clone()))
                .add_service(MaintenanceServer::new(services));
            let routes = crate::gateway::routes(grpc_routes, body_bytes_max);
            let builder = tonic::transport::Server::builder();
            let router = builder.accept_http1(true).add_routes(routes);
            match incoming {
                Incoming::Plain(incoming) => {
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
                Incoming::Tls(incoming) => {
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
            }
        }
        #[cfg(madsim)]
        {
            let _ = body_bytes_max;
            tonic::transport::Server::builder()
                .add_service(KvServer::new(services.clone()))
                .add_service(WatchServer::new(services.clone()))
                .add_service(LeaseServer::new(services.clone()))
                .add_service(ClusterServer::new(services.clone()))
                .add_service(AuthServer::new(services.clone()))
                .add_service(LockServer::new(services.clone()))
                .add_service(ElectionServer::new(services.clone()))
                .add_service(MaintenanceServer::new(services))
                .serve_with_shutdown(incoming, shutdown)
                .await
        }
    }
}
