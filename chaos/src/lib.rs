//! Real processes under real faults, and the benchmark beside etcd.
//!
//! `detcd chaos` starts a loopback cluster of `detcd serve` processes with a proxy on every peer
//! link, drives it with real gRPC clients while a seeded schedule kills, restarts and pauses
//! members and cuts their links, records what the clients saw in the history format, and judges
//! it with the same checkers as the simulator (linearizability, watch guarantees). After the
//! faults every member is healed and read linearizably, so a write that was acknowledged and
//! then lost makes the history non-linearizable.
//!
//! `detcd bench serve` (module `bench`) drives etcd and detcd with one load generator.
//!
//! Unlike the simulator, nothing here is deterministic: the seed fixes the fault schedule and
//! the clients' choices, not the timing of real processes.

pub mod bench;
pub mod cluster;
pub mod faults;
pub mod load;
pub mod proxy;
/// Requests of the history format over gRPC (shared with the server's madsim tests).
pub use server::history_rpc as rpc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use checkers::history::{RangeRequest, Request};
use checkers::Verdict;

/// `detcd chaos` settings.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// The `detcd` binary to start members from.
    pub executable: PathBuf,
    /// Seeds the fault schedule and the clients' choices.
    pub seed: u64,
    /// How long the clients run (faults stop a few seconds earlier).
    pub duration: Duration,
    /// Members in the cluster.
    pub member_count: usize,
    /// Key-value clients (watch clients are added: one per member).
    pub client_count: usize,
    /// Where data directories, logs, the history and the watches go (kept on failure).
    pub out: PathBuf,
    /// Keep `out` after a passing run too.
    pub keep: bool,
}

/// What a run found.
#[derive(Debug)]
pub struct ChaosReport {
    /// Faults injected.
    pub faults: Vec<faults::InjectedFault>,
    /// Operations recorded (known and unknown outcomes).
    pub operation_count: usize,
    /// Operations whose outcome is unknown.
    pub unknown_count: u64,
    /// Acknowledged writes, all of which the final reads must reflect.
    pub acknowledged_write_count: u64,
    /// Watch streams recorded, and the events they delivered.
    pub watch_count: usize,
    /// Events delivered on all watch streams.
    pub watch_event_count: usize,
    /// Leaders the members reported during the load.
    pub leadership: load::Leadership,
    /// Members that answered a linearizable read after healing.
    pub final_read_member_count: usize,
    /// Linearizability verdict.
    pub linearizability: Verdict,
    /// Watch guarantees verdict.
    pub watch: Verdict,
    /// Wall time the two checks took.
    pub check_seconds: f64,
}

impl ChaosReport {
    /// 0 when everything holds, 1 on a violation or a member that never recovered, 3 when a
    /// checker gave up undecided.
    pub fn exit_code(&self, member_count: usize) -> i32 {
        let verdicts = [&self.linearizability, &self.watch];
        if verdicts
            .iter()
            .any(|verdict| matches!(verdict, Verdict::Violation { .. }))
            || self.final_read_member_count < member_count
        {
            1
        } else if verdicts
            .iter()
            .any(|verdict| matches!(verdict, Verdict::Unknown { .. }))
        {
            3
        } else {
            0
        }
    }
}

/// How long after healing every member must answer a linearizable read.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Client request timeout: longer than an election, shorter than a stall worth reporting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Quiet seconds at the end of the load, after the last fault is healed.
const QUIET_TAIL: Duration = Duration::from_secs(3);

/// Runs `detcd chaos`: prints faults as they happen and the summary; returns the exit status.
pub fn chaos_command(config: &ChaosConfig) -> i32 {
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
    if let Err(error) = validate(config) {
        eprintln!("error: {error}");
        return 2;
    }
    let report = match runtime.block_on(run(config)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            if config.out.exists() {
                eprintln!("chaos: kept {}", config.out.display());
            }
            return 2;
        }
    };
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for fault in &report.faults {
        *by_kind.entry(fault.kind).or_default() += 1;
    }
    let kinds = by_kind
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("faults injected: {} ({kinds})", report.faults.len());
    println!(
        "operations checked: {} ({} with unknown outcome), acknowledged writes: {}",
        report.operation_count, report.unknown_count, report.acknowledged_write_count
    );
    println!(
        "watch streams checked: {} ({} events); checks took {:.2} s",
        report.watch_count, report.watch_event_count, report.check_seconds
    );
    println!(
        "leaders elected: {} (highest term {})",
        report.leadership.leader_count, report.leadership.term_max
    );
    println!(
        "members read after healing: {}/{}",
        report.final_read_member_count, config.member_count
    );
    for (name, verdict) in [
        ("linearizability", &report.linearizability),
        ("watch", &report.watch),
    ] {
        match verdict {
            Verdict::Ok => println!("{name}: ok"),
            Verdict::Violation {
                window,
                explanation,
                ..
            } => println!("{name}: VIOLATION in ops {window:?}: {explanation}"),
            Verdict::Unknown { reason } => println!("{name}: unknown ({reason})"),
        }
    }
    let status = report.exit_code(config.member_count);
    println!(
        "verdict: {}",
        match status {
            0 => "pass",
            3 => "undecided",
            _ => "FAIL",
        }
    );
    if status == 0 && !config.keep {
        let _ = std::fs::remove_dir_all(&config.out);
    } else {
        println!(
            "kept {} (history.jsonl, watches.jsonl, faults.txt, member data and logs); replay the check with `detcd check {}`",
            config.out.display(),
            config.out.join("history.jsonl").display()
        );
    }
    status
}

/// Refuses settings a run cannot use, naming the flag.
fn validate(config: &ChaosConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=9).contains(&config.member_count),
        "--members {}: expected 1 to 9",
        config.member_count
    );
    anyhow::ensure!(config.client_count >= 1, "--clients must be at least 1");
    anyhow::ensure!(
        config.duration > QUIET_TAIL + Duration::from_secs(2),
        "--time must be over {} seconds",
        (QUIET_TAIL + Duration::from_secs(2)).as_secs()
    );
    // Never clear a directory the run did not make: a passing run removes `out` afterwards.
    let occupied = std::fs::read_dir(&config.out).is_ok_and(|mut entries| entries.next().is_some());
    anyhow::ensure!(
        !occupied,
        "--out {}: the directory is not empty; name a new one",
        config.out.display()
    );
    Ok(())
}

/// Runs the cluster, the clients and the faults, then checks the history.
pub async fn run(config: &ChaosConfig) -> anyhow::Result<ChaosReport> {
    validate(config)?;
    let cluster = cluster::Cluster::new(
        config.executable.clone(),
        &config.out,
        config.member_count,
        config.seed,
    )
    .await?;
    for index in 0..cluster.size() {
        cluster.start(index)?;
    }
    let channels: Arc<Vec<_>> = Arc::new(
        (0..cluster.size())
            .map(|index| cluster.channel(index, REQUEST_TIMEOUT))
            .collect::<anyhow::Result<_>>()?,
    );
    wait_for_leader(&cluster).await?;
    let recorder = Arc::new(load::Recorder::new());
    let started = tokio::time::Instant::now();
    let load_deadline = started + config.duration;
    let mut clients = Vec::new();
    for index in 0..config.client_count {
        let seed = config.seed.wrapping_mul(1_000).wrapping_add(index as u64);
        clients.push(tokio::spawn(load::kv_client(
            recorder.clone(),
            channels.clone(),
            index,
            seed,
            load_deadline,
        )));
    }
    let mut watchers = Vec::new();
    for index in 0..cluster.size() {
        watchers.push(tokio::spawn(load::watch_client(
            recorder.clone(),
            channels.clone(),
            index,
            load_deadline,
        )));
    }
    let monitor = tokio::spawn(load::monitor_leaders(channels.clone(), load_deadline));
    let faults = faults::inject(&cluster, config.seed, started, load_deadline - QUIET_TAIL).await;
    cluster.heal()?;
    let faults = faults?;
    let mut counts = load::ClientCounts::default();
    for client in clients {
        let client_counts = client.await?;
        counts.known_count += client_counts.known_count;
        counts.unknown_count += client_counts.unknown_count;
        counts.acknowledged_write_count += client_counts.acknowledged_write_count;
    }
    for watcher in watchers {
        watcher.await?;
    }
    let leadership = monitor.await?;
    let final_read_member_count = final_reads(&recorder, &channels).await;
    let history = recorder.history();
    std::fs::write(
        config.out.join("history.jsonl"),
        checkers::history::write_history(&checkers::history::History {
            ops: history.ops.clone(),
            watches: Vec::new(),
        }),
    )?;
    std::fs::write(
        config.out.join("watches.jsonl"),
        checkers::history::write_history(&checkers::history::History {
            ops: Vec::new(),
            watches: history.watches.clone(),
        }),
    )?;
    let fault_lines: String = faults
        .iter()
        .map(|fault| format!("{:.2}s {}\n", fault.at_seconds, fault.description))
        .collect();
    std::fs::write(config.out.join("faults.txt"), fault_lines)?;
    cluster.shutdown();
    let linear_config = checkers::linear::LinearConfig {
        explain: checkers::linear::Explain::Fast,
        ..checkers::linear::LinearConfig::default()
    };
    let check_started = std::time::Instant::now();
    let linear = checkers::linear::check_linearizable(&history, &linear_config);
    let watch = checkers::watch::check_watches(&history, linear.linearization.as_ref());
    Ok(ChaosReport {
        faults,
        operation_count: history.ops.len(),
        unknown_count: counts.unknown_count,
        acknowledged_write_count: counts.acknowledged_write_count,
        watch_count: history.watches.len(),
        watch_event_count: history.watches.iter().map(|watch| watch.events.len()).sum(),
        leadership,
        final_read_member_count,
        linearizability: linear.verdict,
        watch,
        check_seconds: check_started.elapsed().as_secs_f64(),
    })
}

/// Waits until some member reports a leader (the cluster has formed).
async fn wait_for_leader(cluster: &cluster::Cluster) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    while cluster.leader().await.is_none() {
        anyhow::ensure!(
            started.elapsed() < RECOVERY_TIMEOUT,
            "the cluster elected no leader within {} s; see the members' logs",
            RECOVERY_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// After healing, reads every workload key linearizably through each member, retrying until
/// it answers (recorded like any operation); returns how many members answered.
async fn final_reads(recorder: &load::Recorder, channels: &[tonic::transport::Channel]) -> usize {
    let started = tokio::time::Instant::now();
    let mut answered = 0;
    for channel in channels {
        loop {
            let read = Request::Range(RangeRequest {
                key: b"k".to_vec(),
                range_end: Some(b"l".to_vec()),
                revision: 0,
                limit: 0,
                serializable: false,
            });
            let client = recorder.new_client();
            if let rpc::Outcome::Known(response) = recorder.run(client, channel, read).await {
                if !matches!(response, checkers::history::Response::Error { .. }) {
                    answered += 1;
                    break;
                }
            }
            if started.elapsed() > RECOVERY_TIMEOUT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    answered
}

#[cfg(test)]
mod tests {
    use super::{ChaosReport, Verdict};

    fn report(linearizability: Verdict, final_read_member_count: usize) -> ChaosReport {
        ChaosReport {
            faults: Vec::new(),
            operation_count: 0,
            unknown_count: 0,
            acknowledged_write_count: 0,
            watch_count: 0,
            watch_event_count: 0,
            leadership: super::load::Leadership::default(),
            final_read_member_count,
            linearizability,
            watch: Verdict::Ok,
            check_seconds: 0.0,
        }
    }

    /// Goal: a run passes only when both checks pass and every member answered after healing;
    /// an undecided check is not a pass. Method: the exit status of each case.
    #[test]
    fn only_a_clean_run_exits_zero() {
        let violation = Verdict::Violation {
            checker: "linearizability".into(),
            window: vec![1],
            explanation: "lost write".into(),
        };
        let unknown = Verdict::Unknown {
            reason: "budget".into(),
        };
        assert_eq!(report(Verdict::Ok, 3).exit_code(3), 0);
        assert_eq!(report(violation, 3).exit_code(3), 1);
        assert_eq!(report(Verdict::Ok, 2).exit_code(3), 1);
        assert_eq!(report(unknown, 3).exit_code(3), 3);
    }
}
