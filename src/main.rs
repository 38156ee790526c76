//! The `detcd` command line: wiring only. Every subcommand delegates to a library crate.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod sim_tools;

// Simulated runs allocate heavily (messages, entries, actions); mimalloc roughly halves the
// allocator's share of a run. Allocation never influences a run's logic, so determinism holds.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// detcd: a deterministic etcd-compatible store and the seeded simulator that checks it.
#[derive(Parser, Debug)]
#[command(name = "detcd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version of every component and of the formats it reads and writes.
    Version,
    /// Serve one member of an etcd-compatible cluster over etcd's v3 gRPC API, on real disks.
    /// Flags have etcd's names and meanings. Exit status: 0 stopped by a signal, 2 bad flags or
    /// data dir, 10 a sync failed, 11 a write failed, 12 removed from the cluster.
    Serve(Box<ServeArgs>),
    /// Run the seeded simulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Start a loopback cluster of `detcd serve` processes with a proxy on every peer link,
    /// drive it with gRPC clients while a seeded schedule kills (SIGKILL), restarts, pauses
    /// (SIGSTOP/SIGCONT) and cuts off members, then check the recorded history for
    /// linearizability and watch guarantees. Exit status: 0 pass, 1 a violation or a member
    /// that never recovered, 2 the cluster could not be run, 3 a check gave up undecided.
    Chaos(ChaosArgs),
    /// etcd's TCP gateway: a stateless proxy that forwards each client connection to one of
    /// the endpoints, round robin, leaving out for --retry-delay an endpoint that fails a dial.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// etcd's gRPC proxy: serves KV, Watch, Lease, Cluster and Maintenance from the cluster,
    /// coalescing watchers on one key or range and keep-alives of one lease.
    #[command(subcommand)]
    GrpcProxy(GrpcProxyCommand),
    /// Check recorded histories (docs/history-format.md) for linearizability and, with
    /// --watches, etcd's watch guarantees. Exit status: 0 all linearizable, 1 a violation,
    /// 2 an unreadable input, 3 a check gave up undecided.
    Check {
        /// History files (JSON lines).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Watch observations to check against the histories.
        #[arg(long)]
        watches: Option<PathBuf>,
        /// One JSON object per file instead of a verdict line.
        #[arg(long)]
        json: bool,
        /// How to explain a violation: `fast` shows where every order got stuck, `full` also
        /// shrinks the failing window (within a step budget). The verdict is the same.
        #[arg(long, value_enum, default_value = "fast")]
        explain: ExplainArg,
    },
}

/// `detcd chaos` flags.
#[derive(clap::Args, Debug)]
struct ChaosArgs {
    /// Seeds the fault schedule and the clients' choices (real processes keep their own timing).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long the clients run: 30s, 5m (a bare number is seconds).
    #[arg(long, default_value = "30s")]
    time: String,
    /// Members in the cluster, 1 to 9.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Key-value clients (one watch client per member is added).
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Directory for the members' data and logs, the history and the watches (default: a new
    /// directory under the system's temporary directory). Kept when the run fails.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the directory after a passing run too.
    #[arg(long)]
    keep: bool,
}

/// Runs `detcd chaos`; returns the exit status.
fn chaos_command(args: ChaosArgs) -> i32 {
    let seconds = match sim::fuzz::parse_duration_seconds(&args.time) {
        Ok(seconds) => seconds,
        Err(error) => {
            eprintln!("error: --time: {error}");
            return 2;
        }
    };
    let executable = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("error: cannot find the detcd binary to start members from: {error}");
            return 2;
        }
    };
    let out = args.out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "detcd-chaos-seed{}-{}",
            args.seed,
            std::process::id()
        ))
    });
    chaos::chaos_command(&chaos::ChaosConfig {
        executable,
        seed: args.seed,
        duration: std::time::Duration::from_secs(seconds),
        member_count: args.members,
        client_count: args.clients,
        out,
        keep: args.keep,
    })
}

/// Runs `detcd bench serve`; returns the exit status.
fn bench_serve_command(
    members: Vec<usize>,
    phase_seconds: u64,
    sequential: usize,
    rounds: usize,
    out: Option<PathBuf>,
    no_etcd: bool,
) -> i32 {
    if phase_seconds == 0 || sequential == 0 {
        eprintln!("error: --phase-seconds and --sequential must be at least 1");
        return 2;
    }
    if !(1..=chaos::bench::ROUND_COUNT_MAX).contains(&rounds) {
        eprintln!(
            "error: --rounds {rounds}: expected 1 to {}",
            chaos::bench::ROUND_COUNT_MAX
        );
        return 2;
    }
    let executable = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("error: cannot find the detcd binary to start members from: {error}");
            return 2;
        }
    };
    let config = chaos::bench::BenchServeConfig {
        executable,
        etcd: if no_etcd {
            None
        } else {
            chaos::bench::find_etcd()
        },
        member_counts: members,
        phase: std::time::Duration::from_secs(phase_seconds),
        sequential_count: sequential,
        round_count: rounds,
        work_dir: std::env::temp_dir().join(format!("detcd-bench-serve-{}", std::process::id())),
    };
    chaos::bench::bench_serve_command(&config, out.as_deref())
}

/// `detcd gateway`.
#[derive(Subcommand, Debug)]
enum GatewayCommand {
    /// Start the gateway. Exit status: 0 interrupted, 2 bad flags or the address is taken.
    Start {
        /// Comma-separated etcd cluster endpoints (host:port).
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoints: String,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:23790")]
        listen_addr: String,
        /// Duration of delay before retrying failed endpoints (Go form: 1m0s, 30s, 500ms).
        #[arg(long, default_value = "1m0s")]
        retry_delay: String,
    },
}

/// `detcd grpc-proxy`.
#[derive(Subcommand, Debug)]
enum GrpcProxyCommand {
    /// Start the gRPC proxy. Exit status: 0 interrupted, 2 bad flags or the address is taken.
    Start {
        /// Comma-separated etcd cluster endpoints (host:port or http://host:port).
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoints: String,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:23790")]
        listen_addr: String,
        /// Enable debug-level logging.
        #[arg(long)]
        debug: bool,
    },
}

/// `detcd serve` flags, as etcd names them.
#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    name: String,
    /// Path to the data directory.
    #[arg(long, default_value = "default.detcd")]
    data_dir: PathBuf,
    /// URLs to listen on for client traffic.
    #[arg(long, default_value = "http://localhost:2379")]
    listen_client_urls: String,
    /// Client URLs to advertise to the rest of the cluster (default: the listen URLs).
    #[arg(long)]
    advertise_client_urls: Option<String>,
    /// URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380")]
    listen_peer_urls: String,
    /// This member's peer URLs to advertise to the rest of the cluster.
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Initial cluster configuration for bootstrapping (name=peer-url,...).
    #[arg(long)]
    initial_cluster: Option<String>,
    /// Initial cluster state: new or existing.
    #[arg(long, default_value = "new")]
    initial_cluster_state: String,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot.
    #[arg(long, default_value_t = 100_000)]
    snapshot_count: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = 1536 * 1024)]
    max_request_bytes: u32,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, default_value_t = 128)]
    max_txn_ops: u32,
    /// List of URLs to listen on for the metrics and health endpoints (/metrics, /health).
    #[arg(long)]
    listen_metrics_urls: Option<String>,
    /// Input cost for bcrypt hashing of passwords (4 to 31).
    #[arg(long, default_value_t = 10)]
    bcrypt_cost: u32,
    /// Seconds an auth token lives after its last use.
    #[arg(long, default_value_t = 300)]
    auth_token_ttl: u64,
    /// Path to the client server TLS cert file (an https:// --listen-client-urls).
    #[arg(long)]
    cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA cert file (verifies client certificates).
    #[arg(long)]
    trusted_ca_file: Option<PathBuf>,
    /// Enable client cert authentication: clients present a certificate the trusted CA signed;
    /// its Common Name is the user.
    #[arg(long)]
    client_cert_auth: bool,
    /// Path to the peer server TLS cert file (an https:// --listen-peer-urls).
    #[arg(long)]
    peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long)]
    peer_key_file: Option<PathBuf>,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long)]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long)]
    peer_client_cert_auth: bool,
    /// Configures log level: debug, info, warn, error, panic, or fatal.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log line format: text (human-readable) or json (one object per line).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Runs `detcd serve` on a tokio runtime; returns the exit status.
fn serve_command(args: ServeArgs) -> i32 {
    if let Err(error) = server::init_logging(&args.log_level, args.log_format == "json") {
        eprintln!("error: {error}");
        return 2;
    }
    let config = server::ServeConfig {
        name: args.name,
        data_dir: args.data_dir,
        listen_client_urls: args.listen_client_urls,
        advertise_client_urls: args.advertise_client_urls,
        listen_peer_urls: args.listen_peer_urls,
        initial_advertise_peer_urls: args.initial_advertise_peer_urls,
        initial_cluster: args.initial_cluster,
        initial_cluster_state: args.initial_cluster_state,
        initial_cluster_token: args.initial_cluster_token,
        heartbeat_interval_ms: args.heartbeat_interval,
        election_timeout_ms: args.election_timeout,
        snapshot_count: args.snapshot_count,
        max_request_bytes: args.max_request_bytes,
        max_txn_ops: args.max_txn_ops,
        listen_metrics_urls: args.listen_metrics_urls,
        bcrypt_cost: args.bcrypt_cost,
        auth_token_ttl_seconds: args.auth_token_ttl,
        client_tls: server::tls::TlsFiles {
            cert_file: args.cert_file,
            key_file: args.key_file,
            trusted_ca_file: args.trusted_ca_file,
            client_cert_auth: args.client_cert_auth,
        },
        peer_tls: server::tls::TlsFiles {
            cert_file: args.peer_cert_file,
            key_file: args.peer_key_file,
            trusted_ca_file: args.peer_trusted_ca_file,
            client_cert_auth: args.peer_client_cert_auth,
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(server::serve(config)) {
        Ok(server::ServeOutcome::Stopped) => {
            eprintln!("detcd: stopped");
            0
        }
        Ok(server::ServeOutcome::Halted { exit_code, reason }) => {
            eprintln!("detcd: the member halted: {reason}");
            exit_code
        }
        Err(error) => {
            eprintln!("error: {error}");
            2
        }
    }
}

/// `detcd check --explain`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ExplainArg {
    Fast,
    Full,
}

#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Run one seed of a scenario and print its verdict and trace hash. Exit status: 0 the run
    /// met its scenario's expectation, 1 it did not, 2 usage error.
    Run {
        /// A library scenario's name (default: `default`; `detcd sim scenarios` lists them) or a
        /// scenario file (FILE.toml, see docs/scenarios.md).
        #[arg(long)]
        scenario: Option<String>,
        /// The seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// End the output with one JSON object.
        #[arg(long)]
        json: bool,
        /// Write the run's artifact directory here (artifact.json, scenario.toml, history, watches,
        /// trace, faults, events, summary; docs/artifacts.md).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run the seed twice and fail if the trace hashes differ.
        #[arg(long)]
        check_determinism: bool,
        /// Switch on a zoo bug by name (repeatable; needs `--features bug-zoo`).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Turn buggify on in every seed (by default a scenario turns it on in some seeds).
        #[arg(long)]
        buggify: bool,
    },
    /// Run many seeds on worker threads and summarise the failures. Ctrl-C stops starting
    /// seeds and prints what was found. Exit status: 0 every seed met its scenario's
    /// expectation, 1 some seed failed, 2 usage error, 130 interrupted with no failure found.
    Fuzz {
        /// A library scenario's name (default: `default`) or a scenario file (FILE.toml);
        /// repeat it or separate names by commas to share the seeds among several, round-robin
        /// (`all`: every library scenario). The summary has a line per scenario.
        #[arg(long, value_delimiter = ',')]
        scenario: Vec<String>,
        /// Number of seeds, at least 1 (default 100 unless --time is given). With --shard, each
        /// shard runs this many. Several scenarios share them.
        #[arg(long, conflicts_with = "time")]
        seeds: Option<u64>,
        /// Wall-time budget: 30s, 5m, 1h (a bare number is seconds).
        #[arg(long)]
        time: Option<String>,
        /// Worker threads, 1 to 256 (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Run only shard i of n (`i/n`): seeds first_seed + k*n + i, for spreading a campaign
        /// over machines; --seeds counts per shard.
        #[arg(long)]
        shard: Option<String>,
        /// Print one JSON object (and nothing else) on stdout.
        #[arg(long)]
        json: bool,
        /// Write each failing seed's artifact directory under DIR/seed-N/ (docs/artifacts.md).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Switch on a zoo bug by name (repeatable; needs `--features bug-zoo`).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Turn buggify on in every seed (by default a scenario turns it on in some seeds).
        #[arg(long)]
        buggify: bool,
    },
    /// List the library's scenarios, one line each; `show NAME` prints one as a TOML file to
    /// copy and edit (see docs/scenarios.md).
    Scenarios {
        #[command(subcommand)]
        action: Option<ScenariosAction>,
    },
    /// Measure how fast the campaign catches bugs of the zoo: run seeds with one bug switched on
    /// until a seed fails with a definite verdict (needs `--features bug-zoo`). Exit status: 0
    /// every bug caught, 1 some escaped, 2 usage error.
    Hunt {
        /// The bug to hunt (repeatable).
        #[arg(long = "bug", value_name = "NAME", required_unless_present = "all")]
        bugs: Vec<String>,
        /// Hunt every bug of the zoo, each in its own scenario, and print the table.
        #[arg(long, conflicts_with = "bugs")]
        all: bool,
        /// Scenario to hunt in (default: each bug's own scenario).
        #[arg(long)]
        scenario: Option<String>,
        /// Give up on a bug after this many seeds.
        #[arg(long)]
        seeds: Option<u64>,
        /// Give up on a bug after this much wall time: 30s, 5m (default 60s when --seeds is absent).
        #[arg(long)]
        time: Option<String>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Tool(sim_tools::ToolCommand),
}

#[derive(Subcommand, Debug)]
enum ScenariosAction {
    /// Print a library scenario as a TOML file.
    Show {
        /// The scenario's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time the linearizability checker on generated histories (1k to 100k operations at
    /// concurrency 4, 16 and 64, with and without unknown outcomes); prints JSON.
    Check {
        /// Only the small sizes (for a quick look).
        #[arg(long)]
        quick: bool,
        /// Also check every `*history.jsonl` in this directory or its subdirectories (such as
        /// `detcd sim run --out DIR` writes) without watches, reporting summed and worst times.
        #[arg(long)]
        histories: Option<PathBuf>,
    },
    /// etcd (when `etcd` is on PATH) and detcd side by side on loopback, one after the other,
    /// under the same gRPC load generator: sequential put latency, puts at 8, 64 and 256
    /// clients, Range at 64 clients (linearizable and serializable), put-to-watch-event
    /// latency, for each topology; prints JSON with detcd's ratio to etcd per figure.
    Serve {
        /// Topologies: member counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,3")]
        members: Vec<usize>,
        /// Seconds each throughput phase runs.
        #[arg(long, default_value_t = 5)]
        phase_seconds: u64,
        /// Requests of the sequential put and put-to-event phases.
        #[arg(long, default_value_t = 1000)]
        sequential: usize,
        /// Times each system is measured per topology, alternating which goes first; every
        /// figure reported is its median over the rounds (one slow moment on a shared machine
        /// then moves no figure).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also write the JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Measure detcd alone even when etcd is on PATH.
        #[arg(long)]
        no_etcd: bool,
    },
    /// Seeds per second and simulated-to-wall time ratio on one core, checks included.
    Sim {
        /// A library scenario's name (default: `default`) or a scenario file (FILE.toml).
        #[arg(long)]
        scenario: Option<String>,
        /// Seeds per pass.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Passes over the same seeds; the median pass gives the headline figures.
        #[arg(long, default_value_t = 3)]
        passes: u32,
    },
}

/// Every component's version and the formats this build reads and writes.
fn print_versions() {
    let version = env!("CARGO_PKG_VERSION");
    println!("detcd {version}");
    // The workspace shares one version; each crate is listed so a report names what ran.
    for component in [
        "engine",
        "sim",
        "checkers",
        "scenarios",
        "reports",
        "server",
    ] {
        println!("  {component} {version}");
    }
    println!("  history format v1 (docs/history-format.md)");
    println!(
        "  wal format v{}, snapshot format v{}",
        engine::wal::WAL_FORMAT_VERSION,
        engine::snap::SNAP_FORMAT_VERSION
    );
    println!(
        "  bug zoo {}",
        if engine::zoo::COMPILED_IN {
            "compiled in (--features bug-zoo)"
        } else {
            "absent"
        }
    );
    println!(
        "  profile {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

/// `--scenario NAME|FILE.toml`: a library scenario or a scenario file.
/// `--scenario` values of `sim fuzz` as one comma-separated list (`None`: the default), with
/// `all` standing for every library scenario.
fn fuzz_scenarios(names: &[String]) -> Option<String> {
    let mut expanded: Vec<String> = Vec::new();
    for name in names {
        if name == "all" {
            expanded.extend(
                scenarios::LIBRARY
                    .iter()
                    .map(|(entry, _)| entry.to_string()),
            );
        } else {
            expanded.push(name.clone());
        }
    }
    (!expanded.is_empty()).then(|| expanded.join(","))
}

fn resolve_scenario(name_or_path: &str) -> Result<sim::Scenario, String> {
    scenarios::load(name_or_path).map(|file| file.scenario)
}

/// `detcd sim scenarios [show NAME]`.
fn scenarios_command(action: Option<ScenariosAction>) -> i32 {
    match action {
        None => {
            for (name, description) in scenarios::list() {
                println!("{name:<32} {description}");
            }
            0
        }
        Some(ScenariosAction::Show { name }) => match scenarios::show(&name) {
            Some(text) => {
                print!("{text}");
                0
            }
            None => {
                eprintln!(
                    "error: no library scenario is called {name:?}; `detcd sim scenarios` lists them"
                );
                2
            }
        },
    }
}

fn main() -> anyhow::Result<()> {
    sim::cli::set_scenario_resolver(resolve_scenario);
    sim_tools::install();
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Version => {
            print_versions();
            0
        }
        Command::Sim(SimCommand::Run {
            scenario,
            seed,
            json,
            out,
            check_determinism,
            bugs,
            buggify,
        }) => sim::cli::run_command(&sim::cli::RunArgs {
            scenario,
            seed,
            json,
            out,
            check_determinism,
            bugs,
            buggify,
        }),
        Command::Sim(SimCommand::Fuzz {
            scenario,
            seeds,
            time,
            jobs,
            first_seed,
            shard,
            json,
            out,
            bugs,
            buggify,
        }) => {
            let status = sim::fuzz::fuzz_command(&sim::fuzz::FuzzArgs {
                scenario: fuzz_scenarios(&scenario),
                seeds,
                time,
                jobs,
                first_seed,
                shard,
                json,
                bugs,
                out: out.clone(),
                buggify,
            });
            sim_tools::campaign_reports(out.as_deref(), status)
        }
        Command::Serve(args) => serve_command(*args),
        Command::Chaos(args) => chaos_command(args),
        Command::Gateway(GatewayCommand::Start {
            endpoints,
            listen_addr,
            retry_delay,
        }) => {
            let _ = server::init_logging("info", false);
            proxy::gateway_command(&endpoints, &listen_addr, &retry_delay)
        }
        Command::GrpcProxy(GrpcProxyCommand::Start {
            endpoints,
            listen_addr,
            debug,
        }) => {
            let _ = server::init_logging(if debug { "debug" } else { "info" }, false);
            proxy::grpc_proxy_command(&endpoints, &listen_addr)
        }
        Command::Sim(SimCommand::Tool(command)) => sim_tools::run(command),
        Command::Sim(SimCommand::Scenarios { action }) => scenarios_command(action),
        Command::Sim(SimCommand::Hunt {
            bugs,
            all,
            scenario,
            seeds,
            time,
            jobs,
            first_seed,
            json,
        }) => sim::hunt::hunt_command(&sim::hunt::HuntArgs {
            bugs,
            all,
            scenario,
            seeds,
            time,
            jobs,
            first_seed,
            json,
        }),
        Command::Check {
            files,
            watches,
            json,
            explain,
        } => checkers::check_command(
            &files,
            watches.as_deref(),
            json,
            match explain {
                ExplainArg::Fast => checkers::linear::Explain::Fast,
                ExplainArg::Full => checkers::linear::Explain::Full,
            },
            &mut std::io::stdout(),
        ),
        Command::Bench(BenchCommand::Check { quick, histories }) => {
            println!("{}", checkers::bench_check(quick, histories.as_deref()));
            0
        }
        Command::Bench(BenchCommand::Serve {
            members,
            phase_seconds,
            sequential,
            rounds,
            out,
            no_etcd,
        }) => bench_serve_command(members, phase_seconds, sequential, rounds, out, no_etcd),
        Command::Bench(BenchCommand::Sim {
            scenario,
            seeds,
            passes,
        }) => sim::bench::bench_command(&sim::bench::BenchArgs {
            scenario,
            seeds,
            passes,
        }),
    };
    std::process::exit(status);
}
