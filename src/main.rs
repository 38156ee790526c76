//! The `detcd` command line: wiring only. Every subcommand delegates to a library crate.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Run the seeded simulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
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
        /// Scenario name (default: `default`; built in: no_faults, partitions_only, crash_restart,
        /// disk_faults, clock_faults, disk_corruption_on_a_majority).
        #[arg(long)]
        scenario: Option<String>,
        /// The seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// End the output with one JSON object.
        #[arg(long)]
        json: bool,
        /// Write history.jsonl, watches.jsonl, trace.jsonl, events.jsonl and summary.json here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run the seed twice and fail if the trace hashes differ.
        #[arg(long)]
        check_determinism: bool,
        /// Switch on a zoo bug by name (repeatable; needs `--features bug-zoo`).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
    },
    /// Run many seeds on worker threads and summarise the failures. Ctrl-C stops starting
    /// seeds and prints what was found. Exit status: 0 every seed met its scenario's
    /// expectation, 1 some seed failed, 2 usage error, 130 interrupted with no failure found.
    Fuzz {
        /// Scenario name (default: `default`).
        #[arg(long)]
        scenario: Option<String>,
        /// Number of seeds, at least 1 (default 100 unless --time is given). With --shard, each
        /// shard runs this many.
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
        /// Write each failing seed's artifacts (history, watches, trace, events, summary) under
        /// DIR/seed-N/.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Switch on a zoo bug by name (repeatable; needs `--features bug-zoo`).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
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
    /// Seeds per second and simulated-to-wall time ratio on one core, checks included.
    Sim {
        /// Scenario name (default: `default`).
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

fn main() -> anyhow::Result<()> {
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
        }) => sim::cli::run_command(&sim::cli::RunArgs {
            scenario,
            seed,
            json,
            out,
            check_determinism,
            bugs,
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
        }) => sim::fuzz::fuzz_command(&sim::fuzz::FuzzArgs {
            scenario,
            seeds,
            time,
            jobs,
            first_seed,
            shard,
            json,
            bugs,
            out,
        }),
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
