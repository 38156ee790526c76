//! History types (`docs/history-format.md`) and the checkers that judge them: linearizability,
//! watch guarantees, raft invariants, durability and liveness.
//!
//! It knows nothing of the engine: it reads histories, which any system can produce. A checker
//! answers pass, violation (with evidence) or unknown (budget exhausted); unknown is never a pass.
//! Dependencies: serde, serde_json, thiserror only.

pub mod generate;
pub mod history;
pub mod lease;
pub mod linear;
pub mod locks;
pub mod model;

/// A checker's answer. "Unknown" (a budget ran out) is never a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The property holds.
    Ok,
    /// The property is violated; the evidence.
    Violation {
        /// Which checker.
        checker: String,
        /// The smallest window of operation ids that shows it.
        window: Vec<u64>,
        /// Why, in plain words.
        explanation: String,
    },
    /// The checker gave up undecided.
    Unknown {
        /// Why.
        reason: String,
    },
}

pub mod cli;
pub mod trace;
pub mod watch;

pub use cli::{bench_check, check_command};
use history::{History, HistoryView, WatchRecord};
use trace::TraceEvent;

/// Limits and bounds for `check_all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckConfig {
    /// Linearizability search limits.
    pub linear: linear::LinearConfig,
    /// After the last fault heals, a write must commit within this (history time units).
    pub liveness_bound: i64,
    /// History time units per millisecond, when known (the simulator records nanoseconds), so
    /// that messages show times as milliseconds; `None` shows raw units.
    pub time_units_per_ms: Option<i64>,
    /// Check the lease promise (`lease::check_lease_promises`), allowing expiries this early
    /// (history time units). `None` leaves it out: the rule holds only when the system's
    /// clocks run true, which the caller knows and the history does not say.
    pub lease_promise_tolerance: Option<i64>,
}

/// Steps `check_all`'s linearizability search may take by default (a few seconds at most): it
/// runs on every simulated run, where the revision-directed witness decides most real
/// histories in a few thousand steps, so a search that needs more is reported unknown sooner
/// than after the minute `LinearConfig::default()` (the `detcd check` budget) may take. It was
/// 3M until a 6,400-seed library campaign found two runs (compaction_heavy 63 and
/// leader_isolated_during_compaction 140) whose histories with their watch streams need more:
/// each a false "unknown" in a campaign, while deciding them takes under 2 s.
pub const CHECK_ALL_LINEAR_STEPS_MAX: u64 = 20_000_000;

impl Default for CheckConfig {
    fn default() -> CheckConfig {
        CheckConfig {
            linear: linear::LinearConfig {
                steps_max: CHECK_ALL_LINEAR_STEPS_MAX,
                ..linear::LinearConfig::default()
            },
            liveness_bound: 10_000_000_000,
            time_units_per_ms: Some(1_000_000),
            lease_promise_tolerance: None,
        }
    }
}

/// One checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The checker's name.
    pub checker: &'static str,
    /// Its verdict.
    pub verdict: Verdict,
}

/// Runs every checker on one run: the history (with `watches` added to its own), and the trace.
pub fn check_all(
    history: &History,
    watches: &[WatchRecord],
    trace: &[TraceEvent],
    config: &CheckConfig,
) -> Vec<CheckResult> {
    // The history's own watches and `watches` together, copied only when both have some.
    let merged: Vec<WatchRecord>;
    let all_watches: &[WatchRecord] = if history.watches.is_empty() {
        watches
    } else if watches.is_empty() {
        &history.watches
    } else {
        merged = history.watches.iter().chain(watches).cloned().collect();
        &merged
    };
    let view = HistoryView {
        ops: &history.ops,
        watches: all_watches,
    };
    let report = linear::check_view(view, &config.linear);
    let mut results = vec![
        CheckResult {
            checker: linear::CHECKER,
            verdict: report.verdict.clone(),
        },
        CheckResult {
            checker: watch::CHECKER,
            verdict: watch::check_view(view, report.linearization.as_ref()),
        },
        CheckResult {
            checker: "election_safety",
            verdict: trace::check_election_safety(trace),
        },
        CheckResult {
            checker: "log_matching",
            verdict: trace::check_log_matching(trace),
        },
        CheckResult {
            checker: "leader_completeness",
            verdict: trace::check_leader_completeness(trace),
        },
        CheckResult {
            checker: "state_machine_safety",
            verdict: trace::check_state_machine_safety(trace),
        },
        CheckResult {
            checker: "durability",
            verdict: trace::check_durability(history, trace),
        },
        CheckResult {
            checker: "acknowledged_durability",
            verdict: trace::check_acknowledged_durability(trace),
        },
        CheckResult {
            checker: "ack_after_sync",
            verdict: trace::check_ack_after_sync(trace),
        },
        CheckResult {
            checker: "liveness",
            verdict: trace::check_liveness(
                history,
                trace,
                config.liveness_bound,
                config.time_units_per_ms,
            ),
        },
    ];
    if locks::has_lock_traffic(&history.ops) {
        results.push(CheckResult {
            checker: locks::CHECKER,
            verdict: locks::check_locks(&history.ops).verdict,
        });
    }
    if let Some(tolerance) = config.lease_promise_tolerance {
        results.push(CheckResult {
            checker: lease::CHECKER,
            verdict: lease::check_lease_promises(&history.ops, tolerance),
        });
    }
    results
}
