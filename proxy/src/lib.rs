//! What stands between clients and a cluster: `detcd gateway start` (module `tcp`: a stateless
//! TCP proxy, round robin over the endpoints that answer) and `detcd grpc-proxy start` (a gRPC
//! proxy that serves KV, Watch, Lease, Cluster and Maintenance by passing them to the cluster,
//! coalescing client watchers on one key or range into one upstream watcher (`watch`) and lease
//! keep-alives into one upstream stream per lease (`lease`)). It owns no data and holds no state
//! that outlives a connection: restarting it loses nothing, and its clients resume.
//! May use: `server` (only for the generated etcd protos).
//! Not built under madsim: it runs on real sockets only.

mod coordination;
mod forward;
mod lease;
mod tcp;
mod upstream;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use server::proto::etcdserverpb as pb;
use tokio::net::TcpListener;

pub use tcp::{serve_gateway, GatewayConfig};

/// What the grpc-proxy has done, for its tests and logs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Watchers clients created through the proxy.
    pub client_watch_count: AtomicU64,
    /// Watchers the proxy created on the cluster (one per broadcast).
    pub upstream_watch_opened_count: AtomicU64,
    /// Broadcasts open now.
    pub upstream_watch_active_count: AtomicU64,
    /// Keep-alives clients sent.
    pub keep_alive_client_count: AtomicU64,
    /// Keep-alives the proxy sent to the cluster.
    pub keep_alive_upstream_count: AtomicU64,
}

impl Stats {
    /// One counter's value now.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Parses etcd's `--endpoints` (`host:port` or `http://host:port`, comma-separated) into
/// `host:port` strings. TLS endpoints (`https://`) are refused: the proxies speak plain TCP.
pub fn parse_endpoints(text: &str) -> Result<Vec<String>, String> {
    let mut endpoints = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        if item.starts_with("https://") || item.starts_with("unixs://") {
            return Err(format!(
                "--endpoints: {item:?}: TLS endpoints are not supported (use http://)"
            ));
        }
        let address = item.strip_prefix("http://").unwrap_or(item);
        let address = address.strip_suffix('/').unwrap_or(address);
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("--endpoints: {item:?}: expected host:port"))?;
        if host.is_empty() || address.contains('/') {
            return Err(format!("--endpoints: {item:?}: expected host:port"));
        }
        port.parse::<u16>()
            .map_err(|_| format!("--endpoints: {item:?}: {port:?} is not a port number"))?;
        endpoints.push(address.to_string());
    }
    if endpoints.is_empty() {
        return Err("--endpoints: no endpoint given".into());
    }
    Ok(endpoints)
}

/// Parses a Go duration (`1m0s`, `30s`, `1.5s`, `250ms`), as etcd's `--retry-delay` takes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let error = || format!("{text:?} is not a duration (e.g. 1m0s, 30s, 500ms)");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(error());
    }
    let mut total_seconds = 0.0_f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(error)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| error())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(error()),
        };
        total_seconds += number * seconds_per_unit;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total_seconds))
}

/// The grpc-proxy's settings (etcd's `grpc-proxy start` flags).
#[derive(Clone, Debug)]
pub struct GrpcProxyConfig {
    /// `--endpoints`: `host:port` of each member's client port.
    pub endpoints: Vec<String>,
}

/// A grpc-proxy, ready to serve.
#[derive(Debug)]
pub struct GrpcProxy {
    proxy: forward::Proxy,
}

impl GrpcProxy {
    /// A proxy in front of `config.endpoints` (nothing is dialed until a client asks). Must be
    /// called within a tokio runtime (the channels are made there).
    pub fn new(config: &GrpcProxyConfig) -> Result<GrpcProxy, String> {
        let urls: Vec<String> = config
            .endpoints
            .iter()
            .map(|address| format!("http://{address}"))
            .collect();
        let upstream = Arc::new(upstream::Upstream::new(&urls)?);
        let stats = Arc::new(Stats::default());
        Ok(GrpcProxy {
            proxy: forward::Proxy {
                watches: Arc::new(watch::WatchHub::new(upstream.clone(), stats.clone())),
                leases: Arc::new(lease::LeaseHub::new(upstream.clone(), stats.clone())),
                upstream,
                stats,
            },
        })
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> Arc<Stats> {
        self.proxy.stats.clone()
    }

    /// Serves clients on `listener` until the future is dropped or the listener fails.
    pub async fn serve(self, listener: TcpListener) -> Result<(), String> {
        use pb::auth_server::AuthServer;
        use pb::cluster_server::ClusterServer;
        use pb::kv_server::KvServer;
        use pb::lease_server::LeaseServer;
        use pb::maintenance_server::MaintenanceServer;
        use pb::watch_server::WatchServer;
        use server::proto::v3electionpb::election_server::ElectionServer;
        use server::proto::v3lockpb::lock_server::LockServer;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let proxy = self.proxy;
        tonic::transport::Server::builder()
            .add_service(KvServer::new(proxy.clone()))
            .add_service(WatchServer::new(proxy.clone()))
            .add_service(LeaseServer::new(proxy.clone()))
            .add_service(ClusterServer::new(proxy.clone()))
            .add_service(AuthServer::new(proxy.clone()))
            .add_service(LockServer::new(proxy.clone()))
            .add_service(ElectionServer::new(proxy.clone()))
            .add_service(MaintenanceServer::new(proxy))
            .serve_with_incoming(incoming)
            .await
            .map_err(|error| format!("grpc-proxy: serving failed: {error}"))
    }
}

/// Binds `--listen-addr`, naming the flag in the error.
async fn bind(listen_addr: &str) -> Result<TcpListener, String> {
    TcpListener::bind(listen_addr)
        .await
        .map_err(|error| format!("--listen-addr {listen_addr:?}: cannot listen: {error}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))
}

/// `detcd gateway start`: runs until interrupted; returns the exit status (2: bad flags).
pub fn gateway_command(endpoints: &str, listen_addr: &str, retry_delay: &str) -> i32 {
    let config = match parse_endpoints(endpoints).and_then(|endpoints| {
        let retry_delay =
            parse_duration(retry_delay).map_err(|error| format!("--retry-delay: {error}"))?;
        Ok(GatewayConfig {
            endpoints,
            retry_delay,
        })
    }) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return 2;
        }
    };
    run_until_interrupted(async move {
        let listener = bind(listen_addr).await?;
        eprintln!(
            "detcd gateway: listening on {listen_addr}, endpoints {}",
            config.endpoints.join(",")
        );
        serve_gateway(listener, config)
            .await
            .map_err(|error| format!("gateway: accepting failed: {error}"))
    })
}

/// `detcd grpc-proxy start`: runs until interrupted; returns the exit status (2: bad flags).
pub fn grpc_proxy_command(endpoints: &str, listen_addr: &str) -> i32 {
    let endpoints = match parse_endpoints(endpoints) {
        Ok(endpoints) => endpoints,
        Err(error) => {
            eprintln!("error: {error}");
            return 2;
        }
    };
    run_until_interrupted(async move {
        let listing = endpoints.join(",");
        let proxy = GrpcProxy::new(&GrpcProxyConfig { endpoints })?;
        let listener = bind(listen_addr).await?;
        eprintln!("detcd grpc-proxy: listening on {listen_addr}, endpoints {listing}");
        proxy.serve(listener).await
    })
}

/// Runs `serve` on a fresh runtime until it fails or SIGINT/SIGTERM arrives.
fn run_until_interrupted(serve: impl std::future::Future<Output = Result<(), String>>) -> i32 {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    eprintln!("error: cannot watch for SIGTERM: {error}");
                    return 1;
                }
            };
        tokio::select! {
            result = serve => match result {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("error: {error}");
                    2
                }
            },
            _ = tokio::signal::ctrl_c() => 0,
            _ = terminate.recv() => 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_etcd_s_forms_and_refuse_what_cannot_work() {
        assert_eq!(
            parse_endpoints("127.0.0.1:2379, http://localhost:22379/").unwrap(),
            vec!["127.0.0.1:2379".to_string(), "localhost:22379".to_string()]
        );
        assert!(parse_endpoints("").unwrap_err().contains("no endpoint"));
        assert!(parse_endpoints("https://a:1").unwrap_err().contains("TLS"));
        assert!(parse_endpoints("localhost")
            .unwrap_err()
            .contains("host:port"));
        assert!(parse_endpoints("a:99999")
            .unwrap_err()
            .contains("port number"));
    }

    #[test]
    fn durations_are_read_as_go_writes_them() {
        assert_eq!(parse_duration("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 minutes").is_err());
    }
}
